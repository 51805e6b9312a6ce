/* SPDX-License-Identifier: Apache-2.0 */
/* Calls the CERTInext provider's ops directly, so that the integration tests
 * do not depend on the command line of the agent.
 *
 *   cn_driver [-v] CONFIG COMMAND [options]
 *
 * CONFIG holds `key = value` lines (the [ca:NAME] section body; `#`/`;`
 * comments). COMMAND: check, products, place, reconcile, poll, fetch,
 * revoke, list, enroll (place, reconcile on an unknown outcome, poll until
 * issued, fetch — what the agent does). Results go to stdout as key=value
 * lines; the exit status names the last outcome (see outcome_exit). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "certinext.h"
#include "log.h"
#include "provider.h"
#include "util.h"

#define MAX_SETTINGS 256

struct kv {
	struct p11e_setting v[MAX_SETTINGS];
	size_t n;
};

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
		return 5;
	case P11E_CA_NOT_FOUND:
		return 6;
	}
	return 1;
}

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

static int add_kv(struct kv *kv, const char *key, const char *value, const char *file, int line)
{
	if (kv->n >= MAX_SETTINGS)
		return -1;
	kv->v[kv->n].key = strdup(key);
	kv->v[kv->n].value = strdup(value);
	kv->v[kv->n].file = file;
	kv->v[kv->n].line = line;
	kv->n++;
	return 0;
}

static int load_config(const char *path, struct kv *kv)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int no = 0;

	if (!f) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq;

		no++;
		if (!*s || *s == '#' || *s == ';' || *s == '[')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr, "%s:%d: not key = value\n", path, no);
			fclose(f);
			return -1;
		}
		*eq = '\0';
		if (add_kv(kv, trim(s), trim(eq + 1), path, no) != 0) {
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	return 0;
}

static char *read_all(const char *path)
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

static void print_result(const char *what, const struct p11e_ca_result *r)
{
	printf("%s.outcome=%s\n", what, p11e_ca_outcome_name(r->outcome));
	printf("%s.ca_code=%s\n", what, r->ca_code);
	printf("%s.message=%s\n", what, r->message);
	printf("%s.order_id=%s\n", what, r->order_id);
	printf("%s.request_id=%s\n", what, r->request_id);
	printf("%s.status=%s\n", what, r->status_text);
	printf("%s.retry_after=%u\n", what, r->retry_after);
	if (r->serial[0])
		printf("%s.serial=%s\n", what, r->serial);
	if (r->not_after)
		printf("%s.not_after=%lld\n", what, (long long)r->not_after);
	fflush(stdout);
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: cn_driver [-v] CONFIG COMMAND [--csr F] [--cn N] [--dns a,b] [--id ID]\n"
		"       [--order N] [--request N] [--reason R] [--placed-after T] [--since T]\n"
		"       [--page N] [--set key=value]... [--max-sleep S] [--max-polls N]\n"
		"       [--chain-out F] [--name CERT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "csr", 1, NULL, 'c' },       { "cn", 1, NULL, 'n' },
		{ "dns", 1, NULL, 'd' },       { "id", 1, NULL, 'i' },
		{ "order", 1, NULL, 'o' },     { "request", 1, NULL, 'r' },
		{ "reason", 1, NULL, 'R' },    { "placed-after", 1, NULL, 'p' },
		{ "since", 1, NULL, 's' },     { "page", 1, NULL, 'P' },
		{ "set", 1, NULL, 'S' },       { "max-sleep", 1, NULL, 'm' },
		{ "max-polls", 1, NULL, 'M' }, { "chain-out", 1, NULL, 'C' },
		{ "name", 1, NULL, 'N' },      { "verbose", 0, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	const struct p11e_ca_ops *ops = p11e_ca_lookup("certinext");
	struct kv ca_kv = { 0 }, over_kv = { 0 };
	struct p11e_settings ca_settings, overrides;
	struct p11e_strlist dns = { 0 };
	struct p11e_order order = { 0 };
	struct p11e_order_ref ref = { "", "" };
	struct p11e_ca_result res = { 0 };
	struct p11e_err err = { 0 };
	struct p11e_ca *ca = NULL;
	const char *csr_path = NULL, *reason = "superseded", *chain_out = NULL;
	char *csr = NULL;
	time_t since = 0;
	unsigned page = 1, max_sleep = 3600, max_polls = 60;
	int opt, rc = 1, set_line = 0;
	const char *config, *command;

	order.name = "test";
	order.placed_after = time(NULL);
	/* -v may stand anywhere */
	for (int i = 1; i < argc;) {
		if (strcmp(argv[i], "-v") == 0) {
			p11e_log_set_level(P11E_LOG_DEBUG);
			memmove(&argv[i], &argv[i + 1], (size_t)(argc - i) * sizeof(*argv));
			argc--;
		} else {
			i++;
		}
	}
	optind = 1;
	if (argc - optind < 2)
		usage();
	config = argv[optind];
	command = argv[optind + 1];
	optind += 2;
	while ((opt = getopt_long(argc, argv, "v", longopts, NULL)) != -1) {
		switch (opt) {
		case 'v':
			p11e_log_set_level(P11E_LOG_DEBUG);
			break;
		case 'c':
			csr_path = optarg;
			break;
		case 'n':
			order.common_name = optarg;
			break;
		case 'd':
			p11e_strlist_split(&dns, optarg, ',');
			break;
		case 'i':
			order.idempotency_id = optarg;
			break;
		case 'o':
			ref.order_id = optarg;
			break;
		case 'r':
			ref.request_id = optarg;
			break;
		case 'R':
			reason = optarg;
			break;
		case 'p':
			order.placed_after = (time_t)strtoll(optarg, NULL, 10);
			break;
		case 's':
			since = (time_t)strtoll(optarg, NULL, 10);
			break;
		case 'P':
			page = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			max_sleep = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'M':
			max_polls = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'C':
			chain_out = optarg;
			break;
		case 'N':
			order.name = optarg;
			break;
		case 'S': {
			char *eq = strchr(optarg, '=');

			if (!eq)
				usage();
			*eq = '\0';
			add_kv(&over_kv, optarg, eq + 1, "[cert:test]", ++set_line);
			break;
		}
		default:
			usage();
		}
	}
	if (!ops) {
		fprintf(stderr, "certinext is not registered\n");
		return 1;
	}
	if (load_config(config, &ca_kv) != 0)
		return 2;
	ca_settings.v = ca_kv.v;
	ca_settings.n = ca_kv.n;
	overrides.v = over_kv.v;
	overrides.n = over_kv.n;
	order.overrides = &overrides;
	order.dns = &dns;
	if (csr_path && !(csr = read_all(csr_path)))
		return 2;
	order.csr_pem = csr;

	if (ops->open("test", &ca_settings, &ca, &err) != P11E_OK) {
		printf("open.outcome=misconfigured\nopen.message=%s\n", err.msg);
		fprintf(stderr, "cn_driver: %s\n", err.msg);
		rc = 2;
		goto out;
	}

	if (strcmp(command, "check") == 0) {
		rc = outcome_exit(ops->check(ca, &res));
		print_result("check", &res);
	} else if (strcmp(command, "products") == 0) {
		struct p11e_product *list = NULL;
		size_t n = 0;

		rc = outcome_exit(ops->products(ca, &list, &n, &res));
		print_result("products", &res);
		for (size_t i = 0; i < n; i++)
			printf("product=%s|%s|%s\n", list[i].code, list[i].name, list[i].category);
		free(list);
	} else if (strcmp(command, "place") == 0) {
		rc = outcome_exit(ops->place(ca, &order, &res));
		print_result("place", &res);
	} else if (strcmp(command, "reconcile") == 0) {
		rc = outcome_exit(ops->reconcile(ca, &order, &res));
		print_result("reconcile", &res);
	} else if (strcmp(command, "poll") == 0) {
		rc = outcome_exit(ops->poll(ca, &order, &ref, &res));
		print_result("poll", &res);
	} else if (strcmp(command, "fetch") == 0) {
		rc = outcome_exit(ops->fetch(ca, &ref, &res));
		print_result("fetch", &res);
		if (res.chain_pem && chain_out)
			write_file(chain_out, res.chain_pem);
	} else if (strcmp(command, "revoke") == 0) {
		int r = p11e_revoke_reason_parse(reason);

		if (r < 0)
			usage();
		rc = outcome_exit(ops->revoke(ca, &ref, (p11e_revoke_reason)r, &res));
		print_result("revoke", &res);
	} else if (strcmp(command, "list") == 0) {
		struct p11e_order_page pg = { 0 };

		rc = outcome_exit(ops->list_orders(ca, since, page, &pg, &res));
		print_result("list", &res);
		printf("list.page=%u\nlist.pages=%u\n", pg.page, pg.pages);
		for (size_t i = 0; i < pg.n; i++)
			printf("row=%s|%s|%s|%s|%s|%s|%s|%s\n", pg.rows[i].order_id,
			       pg.rows[i].request_id, pg.rows[i].status, pg.rows[i].domain,
			       pg.rows[i].product, pg.rows[i].ordered, pg.rows[i].expires,
			       pg.rows[i].serial);
		free(pg.rows);
	} else if (strcmp(command, "enroll") == 0) {
		/* The agent's flow: an unknown placement is reconciled, and only
		 * a certain NOT_FOUND allows a second placement. */
		static char order_id[128], request_id[128];
		p11e_ca_outcome o = ops->place(ca, &order, &res);

		print_result("place", &res);
		if (o == P11E_CA_UNKNOWN) {
			p11e_ca_result_clear(&res);
			o = ops->reconcile(ca, &order, &res);
			print_result("reconcile", &res);
			if (o == P11E_CA_NOT_FOUND) {
				p11e_ca_result_clear(&res);
				o = ops->place(ca, &order, &res);
				print_result("place2", &res);
			}
		}
		snprintf(order_id, sizeof(order_id), "%s", res.order_id);
		snprintf(request_id, sizeof(request_id), "%s", res.request_id);
		ref.order_id = order_id;
		ref.request_id = request_id;
		for (unsigned polls = 0; o == P11E_CA_PENDING && polls < max_polls; polls++) {
			unsigned wait = res.retry_after < max_sleep ? res.retry_after : max_sleep;

			sleep(wait);
			p11e_ca_result_clear(&res);
			o = ops->poll(ca, &order, &ref, &res);
			print_result("poll", &res);
		}
		if (o == P11E_CA_ISSUED) {
			p11e_ca_result_clear(&res);
			o = ops->fetch(ca, &ref, &res);
			print_result("fetch", &res);
			if (res.chain_pem && chain_out)
				write_file(chain_out, res.chain_pem);
		}
		printf("final.outcome=%s\n", p11e_ca_outcome_name(o));
		rc = outcome_exit(o);
	} else {
		usage();
	}
out:
	p11e_ca_result_clear(&res);
	if (ca)
		ops->close(ca);
	for (size_t i = 0; i < ca_kv.n; i++) {
		free((char *)ca_kv.v[i].key);
		free((char *)ca_kv.v[i].value);
	}
	for (size_t i = 0; i < over_kv.n; i++) {
		free((char *)over_kv.v[i].key);
		free((char *)over_kv.v[i].value);
	}
	p11e_strlist_free(&dns);
	free(csr);
	return rc;
}
