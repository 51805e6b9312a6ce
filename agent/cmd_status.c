/* SPDX-License-Identifier: Apache-2.0 */
/* status: where each certificate stands, for people, for scripts (JSON)
 * and for monitoring (exit status, Prometheus textfile). Reads journals
 * without locking, so it never waits for a running enroll or renew. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "status.h"

#define USAGE "usage: p11enroll status [NAME…] [--json] [--prometheus FILE]"

static const char *when(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!t || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(buf, len, "-");
	return buf;
}

/* "in 3d 4h", "2h 5m ago": how far `t` is from `now`. */
static const char *span(time_t t, time_t now, char *buf, size_t len)
{
	long long d = (long long)(t - now), a = d < 0 ? -d : d;

	if (a < 60)
		snprintf(buf, len, "now");
	else if (a < 3600)
		snprintf(buf, len, "%s%lldm%s", d > 0 ? "in " : "", a / 60, d < 0 ? " ago" : "");
	else if (a < 86400)
		snprintf(buf, len, "%s%lldh %lldm%s", d > 0 ? "in " : "", a / 3600, a % 3600 / 60,
			 d < 0 ? " ago" : "");
	else
		snprintf(buf, len, "%s%lldd %lldh%s", d > 0 ? "in " : "", a / 86400, a % 86400 / 3600,
			 d < 0 ? " ago" : "");
	return buf;
}

static void print_text(const struct p11e_cert_status *s, time_t now)
{
	char t1[40], t2[40];

	printf("%s: %s%s%s\n", s->cert->name, s->damaged ? "damaged" : p11e_state_name(s->state),
	       s->problem ? " — NEEDS ATTENTION: " : "", s->problem ? s->problem : "");
	printf("  ca          %s%s%s%s\n", s->ca ? s->ca : "-", s->ca_type ? " (" : "",
	       s->ca_type ? s->ca_type : "", s->ca_type ? ")" : "");
	if (s->issued_by)
		printf("  issued by   %s%s%s%s\n", s->issued_by,
		       s->on_fallback ? " (the fallback of [ca:" : "",
		       s->on_fallback ? s->cert->ca : "",
		       s->on_fallback ? "]; the next renewal tries it again)" : "");
	if (s->order_id || s->request_id)
		printf("  order       %s%s%s%s%s%s\n", s->order_id ? s->order_id : "-",
		       s->request_id ? " / " : "", s->request_id ? s->request_id : "",
		       s->order_status ? " (" : "", s->order_status ? s->order_status : "",
		       s->order_status ? ")" : "");
	if (s->serial)
		printf("  serial      %s\n", s->serial);
	if (s->not_after > now)
		printf("  not after   %s (%s, %lld days left)\n", when(s->not_after, t1, sizeof(t1)),
		       span(s->not_after, now, t2, sizeof(t2)),
		       (long long)((s->not_after - now) / 86400));
	else if (s->not_after)
		printf("  not after   %s (expired %s)\n", when(s->not_after, t1, sizeof(t1)),
		       span(s->not_after, now, t2, sizeof(t2)));
	if (s->installed_at)
		printf("  installed   %s\n", when(s->installed_at, t1, sizeof(t1)));
	printf("  next        %s %s (%s)\n", s->next_action, when(s->next_at, t1, sizeof(t1)),
	       span(s->next_at, now, t2, sizeof(t2)));
	if (s->revoked_at)
		printf("  revoked     %s (%s): %s\n", when(s->revoked_at, t1, sizeof(t1)),
		       s->revocation_reason ? s->revocation_reason : "?",
		       s->revocation_message ? s->revocation_message : "");
	/* domain validation the operator must do (docs/orders.md) */
	if (s->dcv_instructions)
		printf("  publish     %s\n", s->dcv_instructions);
	if (s->last_error)
		printf("  last error  %s: %s%s%s\n", when(s->last_error_at, t1, sizeof(t1)),
		       s->last_error_code ? s->last_error_code : "", s->last_error_code ? ": " : "",
		       s->last_error);
}

/* The certificates named on the command line (or every one) and the options. */
struct args {
	const struct p11e_cert_conf **certs;
	size_t n;
	bool json;
	const char *prom;
};

static p11e_status parse_args(struct p11e_cli *cli, int argc, char **argv, struct args *a,
			      struct p11e_err *err)
{
	a->json = cli->json;
	a->certs = calloc((size_t)argc + cli->cfg->n_certs + 1, sizeof(*a->certs));
	if (!a->certs)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			a->json = true;
		} else if (strcmp(argv[i], "--prometheus") == 0 && i + 1 < argc) {
			a->prom = argv[++i];
		} else if (strncmp(argv[i], "--prometheus=", 13) == 0 && argv[i][13]) {
			a->prom = argv[i] + 13;
		} else if (argv[i][0] != '-') {
			p11e_status rc = p11e_cli_cert(cli, argv[i], &a->certs[a->n], err);

			if (rc != P11E_OK)
				return rc;
			a->n++;
		} else {
			return p11e_err_set(err, P11E_EUSAGE, USAGE);
		}
	}
	/* The configured textfile holds every certificate or none: a partial
	 * one would make the others' series vanish. */
	if (!a->prom && a->n == 0)
		a->prom = p11e_settings_get(&cli->cfg->agent, "prometheus_file", NULL);
	if (a->n == 0)
		for (size_t i = 0; i < cli->cfg->n_certs; i++)
			a->certs[a->n++] = &cli->cfg->certs[i];
	return P11E_OK;
}

/* The metrics to FILE (atomically) or, for "-", to standard output. */
static p11e_status write_prometheus(const char *prom, const struct p11e_cert_status *st, size_t n,
				    time_t now, struct p11e_err *err)
{
	char *text = p11e_status_prometheus(st, n, now);
	p11e_status rc = P11E_OK;

	if (!text)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (strcmp(prom, "-") == 0)
		fputs(text, stdout);
	else
		rc = p11e_write_atomic(prom, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1, err);
	free(text);
	if (rc != P11E_OK)
		p11e_err_prefix(err, "cannot write the metrics file");
	return rc;
}

static p11e_status print_status(const struct p11e_config *cfg, const struct p11e_cert_status *st,
				size_t n, bool json, time_t now, struct p11e_err *err)
{
	if (json) {
		if (!p11e_status_json_print(stdout, st, n, now) || fflush(stdout) != 0)
			return p11e_err_set(err, P11E_EFAIL,
					    "status --json: cannot print the document (out of memory, "
					    "or standard output is closed or full)");
		return P11E_OK;
	}
	for (size_t i = 0; i < n; i++)
		print_text(&st[i], now);
	if (n == 0)
		p11e_warn("%s has no [cert:NAME] sections", cfg->path);
	return P11E_OK;
}

p11e_status p11e_cmd_status(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct p11e_cert_status *st = NULL;
	struct args a = { 0 };
	size_t bad = 0;
	time_t now = time(NULL);
	char names[512] = "";
	p11e_status rc;

	rc = p11e_cli_config(cli, err);
	if (rc != P11E_OK)
		return rc;
	rc = parse_args(cli, argc, argv, &a, err);
	if (rc != P11E_OK)
		goto out;
	st = calloc(a.n + 1, sizeof(*st));
	if (!st) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < a.n; i++) {
		p11e_status_read(cli->cfg, a.certs[i], now, &st[i]);
		if (st[i].problem) {
			bad++;
			if (strlen(names) + strlen(a.certs[i]->name) + 40 < sizeof(names))
				snprintf(names + strlen(names), sizeof(names) - strlen(names),
					 "%s%s (%s)", *names ? ", " : "", a.certs[i]->name,
					 st[i].problem_code);
		}
	}
	if (a.prom && (rc = write_prometheus(a.prom, st, a.n, now, err)) != P11E_OK)
		goto out;
	/* The metrics on standard output are the whole output. */
	if ((!a.prom || strcmp(a.prom, "-") != 0) &&
	    (rc = print_status(cli->cfg, st, a.n, a.json, now, err)) != P11E_OK)
		goto out;
	/* One code for "needs attention", whatever the reason (p11enroll(1)). */
	if (bad)
		rc = p11e_err_set(err, P11E_EFAIL, "%zu certificate(s) need attention: %s", bad,
				  names);
out:
	for (size_t i = 0; st && i < a.n; i++)
		p11e_status_release(&st[i]);
	free(st);
	free(a.certs);
	return rc;
}
