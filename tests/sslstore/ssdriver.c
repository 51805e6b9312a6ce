/* SPDX-License-Identifier: Apache-2.0 */
/* Test driver: calls the sslstore provider's operations directly, so that
 * the integration tests do not depend on the p11enroll command line.
 *
 *   ssdriver [-v] CONF COMMAND [--name value]…
 *
 * CONF holds `key = value` lines of a [ca:NAME] section; lines after a line
 * `[cert]` are the per-certificate overrides. Results go to stdout as
 * key=value lines; the exit status is the outcome (see outcome_exit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/pem.h>

#include "chain.h"
#include "log.h"
#include "provider.h"
#include "util.h"

#define MAX_SETTINGS 256

struct conf {
	struct p11e_setting ca[MAX_SETTINGS], cert[MAX_SETTINGS];
	size_t nca, ncert;
	char *lines[2 * MAX_SETTINGS];
	size_t nlines;
};

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int read_conf(const char *path, struct conf *c)
{
	char buf[4096];
	int line = 0;
	bool in_cert = false;
	FILE *f = fopen(path, "r");

	if (!f) {
		perror(path);
		return -1;
	}
	while (fgets(buf, sizeof(buf), f)) {
		char *s = trim(buf), *eq, *copy;
		struct p11e_setting *st;

		line++;
		if (!*s || *s == '#' || *s == ';')
			continue;
		if (strcmp(s, "[cert]") == 0) {
			in_cert = true;
			continue;
		}
		eq = strchr(s, '=');
		if (!eq || c->nlines >= 2 * MAX_SETTINGS)
			continue;
		copy = strdup(s);
		if (!copy)
			break;
		c->lines[c->nlines++] = copy;
		eq = copy + (eq - s);
		*eq = '\0';
		st = in_cert ? &c->cert[c->ncert++] : &c->ca[c->nca++];
		st->key = trim(copy);
		st->value = trim(eq + 1);
		st->file = path;
		st->line = line;
	}
	fclose(f);
	return 0;
}

static int outcome_exit(p11e_ca_outcome o)
{
	switch (o) {
	case P11E_CA_OK:
	case P11E_CA_ISSUED:
		return 0;
	case P11E_CA_UNREACHABLE:
		return 1;
	case P11E_CA_MISCONFIGURED:
		return 2;
	case P11E_CA_PENDING:
		return 3;
	case P11E_CA_REJECTED:
		return 4;
	case P11E_CA_UNKNOWN:
		return 6;
	case P11E_CA_NOT_FOUND:
		return 7;
	}
	return 1;
}

static void print_result(const struct p11e_ca_result *res, p11e_ca_outcome o)
{
	printf("outcome=%s\n", p11e_ca_outcome_name(o));
	printf("order_id=%s\nrequest_id=%s\nca_code=%s\nstatus=%s\nserial=%s\nnot_after=%lld\n"
	       "retry_after=%u\nmessage=%s\n",
	       res->order_id, res->request_id, res->ca_code, res->status_text, res->serial,
	       (long long)res->not_after, res->retry_after, res->message);
}

static const char *opt(int argc, char **argv, const char *name, const char *fallback)
{
	for (int i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return fallback;
}

static char *slurp(const char *path)
{
	struct p11e_err err = { 0 };
	char *data = NULL;
	size_t len;

	if (p11e_read_file(path, 1 << 20, &data, &len, &err) != P11E_OK) {
		fprintf(stderr, "%s\n", err.msg);
		return NULL;
	}
	return data;
}

/* fetch --csr: what the agent does with the certificates the provider
 * returns (common/chain.h): the leaf for the CSR's key, its chain in order
 * (the root too when sent), the leaf's serial and notAfter. */
static int as_the_agent(struct p11e_ca_result *res, const char *csr_pem)
{
	BIO *bio = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	struct p11e_err err = { 0 };
	STACK_OF(X509) *cas = NULL;
	X509 *leaf = NULL;
	char *ordered = NULL;

	if (req &&
	    p11e_chain_build(res->chain_pem, X509_REQ_get0_pubkey(req), &leaf, &cas, &err) == P11E_OK)
		ordered = p11e_certs_pem(leaf, cas, -1);
	if (ordered) {
		free(res->chain_pem);
		res->chain_pem = ordered;
		p11e_cert_serial(leaf, res->serial, sizeof(res->serial));
		res->not_after = p11e_cert_not_after(leaf);
	} else {
		fprintf(stderr, "the chain for the CSR's key: %s\n", err.msg[0] ? err.msg : "no CSR");
	}
	X509_free(leaf);
	sk_X509_pop_free(cas, X509_free);
	X509_REQ_free(req);
	BIO_free(bio);
	return ordered ? 0 : -1;
}

int main(int argc, char **argv)
{
	const struct p11e_ca_ops *ops = p11e_ca_lookup("sslstore");
	struct p11e_ca_result res = { 0 };
	struct p11e_settings ca_settings, overrides;
	struct p11e_strlist dns = { 0 };
	struct p11e_order order = { 0 };
	struct p11e_order_ref ref;
	struct p11e_err err = { 0 };
	struct p11e_ca *ca = NULL;
	struct conf *conf;
	p11e_ca_outcome o = P11E_CA_UNREACHABLE;
	const char *cmd, *v;
	char *csr = NULL;
	int rc = 1;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		p11e_log_set_level(P11E_LOG_DEBUG);
		argv++;
		argc--;
	}
	if (argc < 3 || !ops) {
		fprintf(stderr, "usage: ssdriver [-v] CONF COMMAND [--name value]...\n");
		return 2;
	}
	conf = calloc(1, sizeof(*conf));
	if (!conf || read_conf(argv[1], conf) != 0)
		return 2;
	ca_settings.v = conf->ca;
	ca_settings.n = conf->nca;
	overrides.v = conf->cert;
	overrides.n = conf->ncert;
	cmd = argv[2];
	argc -= 3;
	argv += 3;

	if (ops->open("store", &ca_settings, &ca, &err) != P11E_OK) {
		fprintf(stderr, "open: %s\n", err.msg);
		rc = 2;
		goto out;
	}
	ref.order_id = opt(argc, argv, "--order", "");
	ref.request_id = opt(argc, argv, "--request", "");

	order.name = "web";
	order.idempotency_id = opt(argc, argv, "--id", NULL);
	order.common_name = opt(argc, argv, "--cn", NULL);
	if ((v = opt(argc, argv, "--dns", NULL)) && p11e_strlist_split(&dns, v, ',') != 0)
		goto out;
	for (size_t i = 0; i < dns.n; i++) {
		char *t = trim(dns.v[i]);

		memmove(dns.v[i], t, strlen(t) + 1);
	}
	order.dns = &dns;
	order.overrides = &overrides;
	order.placed_after = time(NULL) - 3600;
	if ((v = opt(argc, argv, "--placed-after", NULL)))
		order.placed_after = (time_t)atoll(v);
	order.previous.order_id = opt(argc, argv, "--prev-order", NULL);
	order.previous.request_id = opt(argc, argv, "--prev-request", NULL);
	if ((v = opt(argc, argv, "--prev-not-after-days", NULL)))
		order.previous_not_after = time(NULL) + (time_t)(atof(v) * 86400);
	if ((v = opt(argc, argv, "--csr", NULL))) {
		csr = slurp(v);
		if (!csr)
			goto out;
		order.csr_pem = csr;
	}

	if (strcmp(cmd, "check") == 0) {
		o = ops->check(ca, &res);
	} else if (strcmp(cmd, "products") == 0) {
		struct p11e_product *list = NULL;
		size_t n = 0;

		o = ops->products(ca, &list, &n, &res);
		for (size_t i = 0; i < n; i++)
			printf("product=%s|%s|%s\n", list[i].code, list[i].name, list[i].category);
		free(list);
	} else if (strcmp(cmd, "place") == 0) {
		o = ops->place(ca, &order, &res);
	} else if (strcmp(cmd, "reconcile") == 0) {
		o = ops->reconcile(ca, &order, &res);
	} else if (strcmp(cmd, "poll") == 0) {
		o = ops->poll(ca, &order, &ref, &res);
	} else if (strcmp(cmd, "fetch") == 0) {
		o = ops->fetch(ca, &ref, &res);
		if (o == P11E_CA_ISSUED && csr && as_the_agent(&res, csr) != 0)
			goto out;
		if (o == P11E_CA_ISSUED && (v = opt(argc, argv, "--out", NULL))) {
			FILE *f = fopen(v, "w");

			if (!f || fputs(res.chain_pem, f) < 0 || fclose(f) != 0) {
				perror(v);
				goto out;
			}
		}
	} else if (strcmp(cmd, "revoke") == 0) {
		int reason = p11e_revoke_reason_parse(opt(argc, argv, "--reason", "unspecified"));

		o = ops->revoke(ca, &ref, reason < 0 ? P11E_REVOKE_UNSPECIFIED : reason, &res);
	} else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "list-all") == 0) {
		time_t since = (time_t)atoll(opt(argc, argv, "--since", "0"));
		unsigned page = (unsigned)atoi(opt(argc, argv, "--page", "1"));
		size_t total = 0;

		for (;;) {
			struct p11e_order_page pg = { 0 };

			o = ops->list_orders(ca, since, page, &pg, &res);
			if (o != P11E_CA_OK) {
				free(pg.rows);
				break;
			}
			for (size_t i = 0; i < pg.n; i++)
				printf("row=%s|%s|%s|%s|%s|%s|%s|%s\n", pg.rows[i].order_id,
				       pg.rows[i].request_id, pg.rows[i].status, pg.rows[i].domain,
				       pg.rows[i].product, pg.rows[i].ordered, pg.rows[i].expires,
				       pg.rows[i].serial);
			total += pg.n;
			printf("page=%u pages=%u n=%zu\n", pg.page, pg.pages, pg.n);
			free(pg.rows);
			if (strcmp(cmd, "list") == 0 || page >= pg.pages)
				break;
			page++;
		}
		printf("total=%zu\n", total);
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		rc = 2;
		goto out;
	}
	print_result(&res, o);
	rc = outcome_exit(o);
out:
	p11e_ca_result_clear(&res);
	if (ca)
		ops->close(ca);
	p11e_strlist_free(&dns);
	free(csr);
	if (conf)
		for (size_t i = 0; i < conf->nlines; i++)
			free(conf->lines[i]);
	free(conf);
	return rc;
}
