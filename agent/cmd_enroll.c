/* SPDX-License-Identifier: Apache-2.0 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "enroll.h"
#include "fleet.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#define USAGE "usage: p11enroll enroll NAME|--all [--wait DUR] [--dry-run]"

static p11e_status enroll_one(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
			      const void *opts, bool *did, struct p11e_err *err)
{
	*did = true;
	return p11e_enroll(cli, cert, opts, err);
}

/* Every configured certificate that is not installed yet (journal state
 * other than monitoring), `[agent] parallel` at once. */
static p11e_status enroll_all(struct p11e_cli *cli, const struct p11e_enroll_opts *opts,
			      struct p11e_err *err)
{
	const struct p11e_config *cfg = cli->cfg;
	struct p11e_fleet_item *items = calloc(cfg->n_certs + 1, sizeof(*items));
	struct p11e_fleet_tally t;
	size_t n = 0, installed = 0;
	p11e_status rc;

	if (!items)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct p11e_journal j;
		struct p11e_err ignore = { 0 };
		bool found = false, done;

		/* A damaged journal goes to the worker, which reports it. */
		done = p11e_journal_peek(cfg->state_dir, cfg->certs[i].name, &j, &found, &ignore) ==
			       P11E_OK &&
		       found && j.state == P11E_ST_MONITORING;
		p11e_journal_close(&j);
		if (done)
			installed++;
		else
			items[n++].cert = &cfg->certs[i];
	}
	rc = p11e_fleet_run(cli, items, n, p11e_fleet_parallel(cfg), enroll_one, opts, err);
	if (rc != P11E_OK)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (items[i].ran && items[i].rc != P11E_OK && items[i].rc != P11E_EPENDING)
			p11e_fleet_report(&items[i]);
	rc = p11e_fleet_tally(items, n, &t);
	p11e_info("enroll --all: %zu issued, %zu pending, %zu refused, %zu failed%s (%zu already "
		  "installed)",
		  t.done, t.pending, t.refused, t.failed,
		  t.skipped ? ", some not started (stopped)" : "", installed);
	if (rc != P11E_OK)
		p11e_err_set(err, rc, "enroll --all: %zu issued, %zu pending, %zu refused, %zu failed",
			     t.done, t.pending, t.refused, t.failed);
	else if (t.skipped)
		rc = p11e_err_set(err, P11E_EPENDING,
				  "enroll --all: stopped before %zu certificate(s) "
				  "started; run it again",
				  t.skipped);
out:
	free(items);
	return rc;
}

p11e_status p11e_cmd_enroll(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct p11e_enroll_opts opts = { .wait = -1, .lock_wait = 10 };
	const struct p11e_cert_conf *cert;
	const char *name = NULL;
	bool all = false;
	bool dry_run = false;
	p11e_status rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			opts.wait = p11e_parse_duration(argv[++i]);
			if (opts.wait < 0)
				return p11e_err_set(err, P11E_EUSAGE,
						    "--wait %s: not a duration (e.g. 90s, 10m)",
						    argv[i]);
		} else if (strcmp(argv[i], "--all") == 0) {
			all = true;
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			dry_run = true;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			return p11e_err_set(err, P11E_EUSAGE, USAGE);
		}
	}
	if (all == (name != NULL))
		return p11e_err_set(err, P11E_EUSAGE, "%s (name a certificate or give --all)", USAGE);
	if (all && dry_run)
		return p11e_err_set(err, P11E_EUSAGE, "%s (--dry-run checks one certificate: name it)",
				    USAGE);
	if (all) {
		rc = p11e_cli_config(cli, err);
		return rc == P11E_OK ? enroll_all(cli, &opts, err) : rc;
	}
	rc = p11e_cli_cert(cli, name, &cert, err);
	if (rc != P11E_OK)
		return rc;
	if (dry_run)
		return p11e_enroll_dry_run(cli, cert, err);
	return p11e_enroll(cli, cert, &opts, err);
}
