/* SPDX-License-Identifier: Apache-2.0 */
/* reconcile: the CA's order inventory against the journals here, so that
 * every order p11enroll placed (or that names a configured certificate's
 * domains) is either installed, on its way, or shown to the operator with
 * what to do (docs/orders.md, "Reconciling with the CA's inventory"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <time.h>

#include <cjson/cJSON.h>

#include "ca.h"
#include "cli.h"
#include "journal.h"
#include "log.h"
#include "util.h"

/* Incremental runs list from the last run minus this (clock skew, late rows). */
#define RECONCILE_SLACK 86400
#define RECONCILE_MAX_PAGES 1000

enum rclass {
	RC_INSTALLED,         /* installed here and current */
	RC_IN_PROGRESS,       /* a journal here follows it (pending, being installed) */
	RC_UNUSED,            /* issued but installed nowhere here: paid and unused */
	RC_ORPHAN_PENDING,    /* pending at the CA, no journal waits for it */
	RC_REVOKED_INSTALLED, /* revoked at the CA, still installed here */
	RC_EXPIRED_INSTALLED, /* expired at the CA, still installed here */
	RC_ENDED,             /* failed, revoked or expired and not installed: nothing to do */
	RC_N,
};

static const char *const class_names[RC_N] = {
	"installed",         "in-progress",       "unused", "orphan-pending",
	"revoked-installed", "expired-installed", "ended",
};

static bool class_needs_attention(enum rclass c)
{
	return c == RC_UNUSED || c == RC_ORPHAN_PENDING || c == RC_REVOKED_INSTALLED ||
	       c == RC_EXPIRED_INSTALLED;
}

/* What a journal here knows of one certificate's orders. */
struct known {
	const struct p11e_cert_conf *cert;
	struct p11e_journal j;
	bool found;
	const char *inst_ca, *inst_order; /* the order of the installed certificate */
};

static const char *jstr(const struct known *k, const char *sect, const char *key)
{
	return k->found ? p11e_journal_str(&k->j, sect, key) : NULL;
}

static bool same(const char *a, const char *b)
{
	return a && b && *a && strcmp(a, b) == 0;
}

static void read_known(const struct p11e_config *cfg, struct known *k)
{
	struct p11e_err ignore = { 0 };

	if (p11e_journal_peek(cfg->state_dir, k->cert->name, &k->j, &k->found, &ignore) != P11E_OK)
		k->found = false;
	if (!k->found || !p11e_journal_num(&k->j, "cert", "installed_at"))
		return;
	/* During a renewal the installed certificate is the previous order's. */
	if (same(jstr(k, "cert", "serial"), jstr(k, "previous", "serial"))) {
		k->inst_ca = jstr(k, "previous", "ca");
		k->inst_order = jstr(k, "previous", "order_id");
	} else {
		k->inst_ca = jstr(k, "order", "ca");
		k->inst_order = jstr(k, "order", "order_id");
	}
}

static bool names_domain(const struct p11e_cert_conf *cert, const char *domain)
{
	if (!*domain)
		return false;
	for (size_t i = 0; i < cert->dns.n; i++)
		if (strcasecmp(cert->dns.v[i], domain) == 0)
			return true;
	return false;
}

struct run {
	struct p11e_cli *cli;
	struct known *known;
	size_t n_known;
	bool include_expired;
	unsigned counts[RC_N];
	unsigned attention;
	cJSON *orders; /* JSON rows, or NULL */
	FILE *metrics; /* per-CA counts, or NULL */
};

/* What the journals here know of one row of the CA's inventory. */
struct match {
	const struct known *who; /* the certificate it belongs to, or NULL */
	bool installed;          /* its certificate is the one installed here */
	bool waiting;            /* a journal follows this very order (or its placement by its tag) */
};

/* False when no journal knows the row and p11enroll did not place it. */
static bool match_row(const struct run *r, const char *ca, const struct p11e_order_row *row,
		      struct match *m)
{
	const struct known *by_order = NULL, *by_tag = NULL, *by_name = NULL, *follows;

	for (size_t i = 0; i < r->n_known; i++) {
		const struct known *k = &r->known[i];

		if ((same(jstr(k, "order", "ca"), ca) &&
		     same(jstr(k, "order", "order_id"), row->order_id)) ||
		    (same(jstr(k, "previous", "ca"), ca) &&
		     same(jstr(k, "previous", "order_id"), row->order_id)))
			by_order = by_order ? by_order : k;
		if (row->tag[0] && same(jstr(k, "order", "idempotency_id"), row->tag))
			by_tag = by_tag ? by_tag : k;
		if (names_domain(k->cert, row->domain))
			by_name = by_name ? by_name : k;
	}
	if (!by_order && !by_tag && !by_name && !row->tag[0])
		return false;
	m->who = by_order ? by_order : by_tag ? by_tag : by_name;
	m->installed = false;
	for (size_t i = 0; i < r->n_known; i++)
		if (same(r->known[i].inst_ca, ca) && same(r->known[i].inst_order, row->order_id)) {
			m->installed = true;
			m->who = &r->known[i];
		}
	follows = by_order ? by_order : by_tag;
	m->waiting = follows && follows->j.state >= P11E_ST_ORDER_PLACING &&
		     follows->j.state <= P11E_ST_INSTALLED && !m->installed &&
		     (same(jstr(follows, "order", "order_id"), row->order_id) ||
		      same(jstr(follows, "order", "idempotency_id"), row->tag));
	return true;
}

/* The class of a row the journals know (m), and what to do about it. */
static enum rclass class_of(const char *ca, const struct p11e_order_row *row, const struct match *m,
			    char *action, size_t len)
{
	const char *name = m->who ? m->who->cert->name : NULL;

	action[0] = '\0';
	switch (row->state) {
	case P11E_ROW_ISSUED:
		if (m->installed)
			return RC_INSTALLED;
		if (m->waiting) {
			snprintf(action, len, "`p11enroll enroll %s` installs it", name);
			return RC_IN_PROGRESS;
		}
		snprintf(action, len,
			 "issued and paid for, but installed nowhere here: install it, or "
			 "`p11enroll revoke --ca %s --order %s` if nobody needs it",
			 ca, row->order_id);
		return RC_UNUSED;
	case P11E_ROW_PENDING:
	case P11E_ROW_UNKNOWN:
		if (m->waiting) {
			snprintf(action, len, "`p11enroll enroll %s` follows it", name);
			return RC_IN_PROGRESS;
		}
		snprintf(action, len,
			 "pending with no journal here waiting for it: `p11enroll cancel "
			 "--ca %s --order %s`",
			 ca, row->order_id);
		return RC_ORPHAN_PENDING;
	case P11E_ROW_REVOKED:
	case P11E_ROW_EXPIRED:
		if (!m->installed)
			return RC_ENDED;
		if (row->state == P11E_ROW_REVOKED && jstr(m->who, "revocation", "at")) {
			/* revoked by `p11enroll revoke`: renew replaces it, status says so */
			snprintf(action, len,
				 "revoked here by p11enroll: `p11enroll renew %s` replaces it", name);
			return RC_REVOKED_INSTALLED;
		}
		snprintf(action, len, "%s at the CA but installed here: `p11enroll renew --force %s`",
			 row->state == P11E_ROW_REVOKED ? "revoked" : "expired", name);
		return row->state == P11E_ROW_REVOKED ? RC_REVOKED_INSTALLED : RC_EXPIRED_INSTALLED;
	default:
		return RC_ENDED;
	}
}

/* Classifies one row; returns false when the row is not ours to judge. */
static bool classify(struct run *r, const char *ca, const struct p11e_order_row *row, enum rclass *cls,
		     const struct known **who, char *action, size_t len)
{
	struct match m;

	if (!match_row(r, ca, row, &m))
		return false;
	*who = m.who;
	*cls = class_of(ca, row, &m, action, len);
	return true;
}

static void one_row(struct run *r, const char *ca, const struct p11e_order_row *row, unsigned *counts)
{
	const struct known *who = NULL;
	char action[600];
	enum rclass cls;

	if (row->state == P11E_ROW_EXPIRED && !r->include_expired)
		return;
	if (!classify(r, ca, row, &cls, &who, action, sizeof(action)))
		return;
	counts[cls]++;
	r->counts[cls]++;
	if (class_needs_attention(cls))
		r->attention++;
	if (r->orders) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "ca", ca);
		cJSON_AddStringToObject(o, "order_id", row->order_id);
		cJSON_AddStringToObject(o, "status", row->status);
		cJSON_AddStringToObject(o, "domain", row->domain);
		if (who)
			cJSON_AddStringToObject(o, "cert", who->cert->name);
		else
			cJSON_AddNullToObject(o, "cert");
		cJSON_AddBoolToObject(o, "placed_by_p11enroll", row->tag[0] != '\0');
		cJSON_AddStringToObject(o, "class", class_names[cls]);
		cJSON_AddBoolToObject(o, "attention", class_needs_attention(cls));
		if (action[0])
			cJSON_AddStringToObject(o, "action", action);
		else
			cJSON_AddNullToObject(o, "action");
		cJSON_AddItemToArray(r->orders, o);
	} else if (class_needs_attention(cls) || r->cli->verbosity > 0) {
		printf("%-8s %-12s %-16s %-28s %-18s %s\n",
		       class_needs_attention(cls) ? "ATTENTION" : "ok", ca, row->order_id,
		       row->domain[0] ? row->domain : "-", class_names[cls], action[0] ? action : "");
	}
}

static char *state_path(const struct p11e_config *cfg, const char *ca)
{
	char *path = NULL;

	if (asprintf(&path, "%s/reconcile-%s.json", cfg->state_dir, ca) < 0)
		return NULL;
	return path;
}

static time_t last_run(const struct p11e_config *cfg, const char *ca)
{
	char *path = state_path(cfg, ca), *text = NULL;
	struct p11e_err ignore = { 0 };
	size_t len = 0;
	time_t t = 0;

	if (path && p11e_read_file(path, 65536, &text, &len, &ignore) == P11E_OK) {
		cJSON *doc = cJSON_ParseWithLength(text, len);
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "last_run");

		if (cJSON_IsNumber(v) && v->valuedouble > 0)
			t = (time_t)v->valuedouble;
		cJSON_Delete(doc);
	}
	free(text);
	free(path);
	return t;
}

static p11e_status save_run(const struct p11e_config *cfg, const char *ca, time_t at,
			    struct p11e_err *err)
{
	char *path = state_path(cfg, ca), *text = NULL;
	cJSON *doc = cJSON_CreateObject();
	p11e_status rc;

	cJSON_AddNumberToObject(doc, "version", 1);
	cJSON_AddNumberToObject(doc, "last_run", (double)at);
	text = cJSON_Print(doc);
	cJSON_Delete(doc);
	if (!path || !text) {
		free(path);
		free(text);
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	rc = p11e_mkdirs(cfg->state_dir, 0700, err);
	if (rc == P11E_OK)
		rc = p11e_write_atomic(path, text, strlen(text), 0600, (uid_t)-1, (gid_t)-1, err);
	free(path);
	free(text);
	return rc;
}

static p11e_status one_ca(struct run *r, const char *ca, time_t since_opt, bool full,
			  struct p11e_err *err)
{
	struct p11e_ca_handle h;
	unsigned counts[RC_N] = { 0 };
	time_t started = time(NULL), since = since_opt;
	unsigned pages = 1, seen = 0;
	p11e_status rc;

	if (!since && !full) {
		since = last_run(r->cli->cfg, ca);
		since = since > RECONCILE_SLACK ? since - RECONCILE_SLACK : 0;
	}
	rc = p11e_ca_handle_open(r->cli->cfg, ca, &h, err);
	if (rc != P11E_OK)
		return rc;
	if (!h.ops->list_orders) {
		p11e_ca_handle_close(&h);
		return p11e_err_set(err, P11E_EUSAGE, "[ca:%s] (%s) cannot list its orders", ca,
				    h.ops->type);
	}
	for (unsigned page = 1; page <= pages && page <= RECONCILE_MAX_PAGES; page++) {
		struct p11e_order_page pg = { 0 };
		struct p11e_ca_result res = { 0 };

		h.ops->list_orders(h.ca, since, page, &pg, &res);
		if (res.outcome != P11E_CA_OK) {
			rc = p11e_ca_failure(&res, "cannot list the orders", err);
			p11e_err_prefix(err, "[ca:%s] page %u", ca, page);
			p11e_ca_result_clear(&res);
			free(pg.rows);
			goto out;
		}
		pages = pg.pages;
		for (size_t i = 0; i < pg.n; i++)
			one_row(r, ca, &pg.rows[i], counts);
		seen += (unsigned)pg.n;
		free(pg.rows);
		p11e_ca_result_clear(&res);
	}
	p11e_info("[ca:%s] %u order(s) listed%s", ca, seen,
		  since ? " (since the last reconcile)" : "");
	/* Only a complete listing (not one from --since) moves the incremental start. */
	if (!since_opt)
		rc = save_run(r->cli->cfg, ca, started, err);
	if (r->metrics) {
		for (int c = 0; c < RC_N; c++)
			fprintf(r->metrics, "p11enroll_reconcile_orders{ca=\"%s\",class=\"%s\"} %u\n",
				ca, class_names[c], counts[c]);
		fprintf(r->metrics, "p11enroll_reconcile_last_run_timestamp_seconds{ca=\"%s\"} %lld\n",
			ca, (long long)started);
	}
out:
	p11e_ca_handle_close(&h);
	return rc;
}

#define USAGE                                                                        \
	"usage: p11enroll reconcile [CA…] [--json] [--since YYYY-MM-DD] [--full] " \
	"[--include-expired] [--prometheus FILE]"

/* What the command line asks for. */
struct args {
	const char **cas; /* the CAs named, or every configured CA */
	size_t n_cas;
	time_t since;
	bool full;
	const char *prom;
};

static p11e_status parse_args(struct p11e_cli *cli, struct run *r, int argc, char **argv,
			      struct args *a, struct p11e_err *err)
{
	a->cas = calloc((size_t)argc + 1, sizeof(*a->cas));
	if (!a->cas)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		p11e_status rc;

		if (strcmp(arg, "--json") == 0) {
			cli->json = true;
		} else if (strcmp(arg, "--full") == 0) {
			a->full = true;
		} else if (strcmp(arg, "--include-expired") == 0) {
			r->include_expired = true;
		} else if (strcmp(arg, "--since") == 0 || strncmp(arg, "--since=", 8) == 0) {
			const char *v = arg[7] == '=' ? arg + 8 : (i + 1 < argc ? argv[++i] : NULL);

			rc = v ? p11e_since_parse(v, &a->since, err)
			       : p11e_err_set(err, P11E_EUSAGE, USAGE);
			if (rc != P11E_OK)
				return rc;
		} else if (strcmp(arg, "--prometheus") == 0 ||
			   strncmp(arg, "--prometheus=", 13) == 0) {
			a->prom = arg[12] == '=' ? arg + 13 : (i + 1 < argc ? argv[++i] : NULL);
			if (!a->prom)
				return p11e_err_set(err, P11E_EUSAGE, USAGE);
		} else if (arg[0] == '-') {
			return p11e_err_set(err, P11E_EUSAGE, "reconcile: unknown option %s; " USAGE,
					    arg);
		} else {
			a->cas[a->n_cas++] = arg;
		}
	}
	return P11E_OK;
}

/* Every configured CA when none is named; a name that is not one is a
 * usage error naming those there are. */
static p11e_status check_cas(const struct p11e_config *cfg, struct args *a, struct p11e_err *err)
{
	if (a->n_cas == 0)
		for (size_t i = 0; i < cfg->n_cas; i++)
			a->cas[a->n_cas++] = cfg->cas[i].name;
	for (size_t i = 0; i < a->n_cas; i++)
		if (!p11e_config_ca(cfg, a->cas[i])) {
			struct p11e_ca_handle h;

			return p11e_ca_handle_open(cfg, a->cas[i], &h,
						   err); /* names those there are */
		}
	return P11E_OK;
}

static p11e_status read_journals(struct run *r, const struct p11e_config *cfg, struct p11e_err *err)
{
	r->known = calloc(cfg->n_certs + 1, sizeof(*r->known));
	if (!r->known)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	r->n_known = cfg->n_certs;
	for (size_t i = 0; i < r->n_known; i++) {
		r->known[i].cert = &cfg->certs[i];
		read_known(cfg, &r->known[i]);
	}
	return P11E_OK;
}

static p11e_status open_metrics(struct run *r, char **text, size_t *len, struct p11e_err *err)
{
	r->metrics = open_memstream(text, len);
	if (!r->metrics)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	fprintf(r->metrics,
		"# HELP p11enroll_reconcile_orders Orders in the CA's inventory by reconcile class.\n"
		"# TYPE p11enroll_reconcile_orders gauge\n"
		"# HELP p11enroll_reconcile_last_run_timestamp_seconds When reconcile last listed the CA.\n"
		"# TYPE p11enroll_reconcile_last_run_timestamp_seconds gauge\n");
	return P11E_OK;
}

/* The metrics to FILE (atomically) or, for "-", to standard output. */
static p11e_status write_metrics(struct run *r, const char *prom, char **text, size_t *len,
				 struct p11e_err *err)
{
	fclose(r->metrics);
	r->metrics = NULL;
	if (strcmp(prom, "-") == 0) {
		fputs(*text ? *text : "", stdout);
		return P11E_OK;
	}
	return p11e_write_atomic(prom, *text, *len, 0644, (uid_t)-1, (gid_t)-1, err);
}

/* The classified orders (--json) or the counts, on standard output. */
static void print_result(struct run *r)
{
	if (r->orders) {
		cJSON *doc = cJSON_CreateObject(), *counts = cJSON_CreateObject();
		char *text;

		cJSON_AddNumberToObject(doc, "version", 1);
		cJSON_AddNumberToObject(doc, "time", (double)time(NULL));
		cJSON_AddBoolToObject(doc, "ok", r->attention == 0);
		for (int c = 0; c < RC_N; c++)
			cJSON_AddNumberToObject(counts, class_names[c], r->counts[c]);
		cJSON_AddItemToObject(doc, "counts", counts);
		cJSON_AddItemToObject(doc, "orders", r->orders);
		r->orders = NULL;
		text = cJSON_Print(doc);
		printf("%s\n", text ? text : "null");
		free(text);
		cJSON_Delete(doc);
		return;
	}
	printf("reconcile: %u installed, %u in progress, %u unused, %u pending without a journal, "
	       "%u revoked and %u expired while installed\n",
	       r->counts[RC_INSTALLED], r->counts[RC_IN_PROGRESS], r->counts[RC_UNUSED],
	       r->counts[RC_ORPHAN_PENDING], r->counts[RC_REVOKED_INSTALLED],
	       r->counts[RC_EXPIRED_INSTALLED]);
}

p11e_status p11e_cmd_reconcile(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct run r = { .cli = cli };
	struct args a = { 0 };
	char *mtext = NULL;
	size_t mlen = 0;
	p11e_status rc = parse_args(cli, &r, argc, argv, &a, err);

	if (rc == P11E_OK)
		rc = p11e_cli_config(cli, err);
	if (rc == P11E_OK)
		rc = check_cas(cli->cfg, &a, err);
	if (rc == P11E_OK)
		rc = read_journals(&r, cli->cfg, err);
	if (rc != P11E_OK)
		goto out;
	if (cli->json)
		r.orders = cJSON_CreateArray();
	if (a.prom && (rc = open_metrics(&r, &mtext, &mlen, err)) != P11E_OK)
		goto out;
	for (size_t i = 0; i < a.n_cas && rc == P11E_OK; i++)
		rc = one_ca(&r, a.cas[i], a.since, a.full || a.since, err);
	if (rc == P11E_OK && r.metrics)
		rc = write_metrics(&r, a.prom, &mtext, &mlen, err);
	if (rc != P11E_OK)
		goto out;
	print_result(&r);
	if (r.attention)
		rc = p11e_err_set(err, P11E_EFAIL, "%u order(s) at the CA need attention (see above)",
				  r.attention);
out:
	if (r.metrics)
		fclose(r.metrics);
	free(mtext);
	cJSON_Delete(r.orders);
	for (size_t i = 0; r.known && i < r.n_known; i++)
		p11e_journal_close(&r.known[i].j);
	free(r.known);
	free(a.cas);
	return rc;
}
