/* SPDX-License-Identifier: Apache-2.0 */
/* renew: the timer's entry point. Nothing due is success. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "cli.h"
#include "fleet.h"
#include "log.h"
#include "renew.h"
#include "stop.h"
#include "util.h"

#define USAGE "usage: p11enroll renew [NAME… | --all] [--force] [--dry-run] [--wait DUR]"

static p11e_status renew_one(struct p11e_cli *cli, const struct p11e_cert_conf *cert, const void *opts,
			     bool *did, struct p11e_err *err)
{
	return p11e_renew(cli, cert, opts, did, err);
}

/* The outcome of the certificates that ran: the first failure's status
 * over pending over success, and a line of counts. */
static p11e_status summarise(const struct p11e_fleet_item *items, size_t n_items, bool dry_run,
			     struct p11e_err *err)
{
	size_t renewed = 0, pending = 0, failed = 0;
	p11e_status rc, worst = P11E_OK;

	for (size_t i = 0; i < n_items; i++) {
		if (!items[i].ran)
			continue;
		rc = items[i].rc;
		if (rc == P11E_EPENDING) {
			pending++;
		} else if (rc != P11E_OK) {
			failed++;
			p11e_fleet_report(&items[i]);
			if (worst == P11E_OK || worst == P11E_EPENDING)
				worst = rc;
		} else if (items[i].did) {
			renewed++;
		}
		if (rc == P11E_EPENDING && worst == P11E_OK)
			worst = rc;
	}
	if (renewed || pending || failed || dry_run)
		p11e_info("renew: %zu done, %zu pending, %zu failed", renewed, pending, failed);
	if (worst != P11E_OK)
		p11e_err_set(err, worst, "renew: %zu failed, %zu pending", failed, pending);
	return worst;
}

p11e_status p11e_cmd_renew(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct p11e_renew_opts opts = { .wait = -1, .lock_wait = 10 };
	const char *names[256];
	size_t n_names = 0, n, n_items = 0;
	struct p11e_fleet_item *items;
	time_t now = time(NULL);
	p11e_status rc;
	bool all = false;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0)
			all = true;
		else if (strcmp(argv[i], "--force") == 0)
			opts.force = true;
		else if (strcmp(argv[i], "--dry-run") == 0)
			opts.dry_run = true;
		else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			opts.wait = p11e_parse_duration(argv[++i]);
			if (opts.wait < 0)
				return p11e_err_set(err, P11E_EUSAGE, "--wait %s: not a duration",
						    argv[i]);
		} else if (argv[i][0] != '-' && n_names < sizeof(names) / sizeof(names[0]))
			names[n_names++] = argv[i];
		else
			return p11e_err_set(err, P11E_EUSAGE, USAGE);
	}
	if (all == (n_names > 0))
		return p11e_err_set(err, P11E_EUSAGE, "%s (name certificates or give --all)", USAGE);
	rc = p11e_cli_config(cli, err);
	if (rc != P11E_OK)
		return rc;
	for (size_t i = 0; i < n_names; i++) {
		const struct p11e_cert_conf *cert;

		rc = p11e_cli_cert(cli, names[i], &cert, err);
		if (rc != P11E_OK)
			return rc;
	}
	n = all ? cli->cfg->n_certs : n_names;
	items = calloc(n + 1, sizeof(*items));
	if (!items)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		const struct p11e_cert_conf *cert =
			all ? &cli->cfg->certs[i] : p11e_config_cert(cli->cfg, names[i]);

		/* Only what is due gets a worker (p11e_renew checks again under the lock). */
		if (!opts.force && p11e_renew_due(cli->cfg, cert) > now)
			continue;
		items[n_items++].cert = cert;
	}
	/* One certificate's failure does not stop the others. */
	rc = p11e_fleet_run(cli, items, n_items, opts.dry_run ? 1 : p11e_fleet_parallel(cli->cfg),
			    renew_one, &opts, err);
	if (rc == P11E_OK)
		rc = summarise(items, n_items, opts.dry_run, err);
	free(items);
	return rc;
}
