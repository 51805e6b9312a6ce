/* SPDX-License-Identifier: Apache-2.0 */
/* Many certificates in one run: `enroll --all`, `renew --all` and the
 * agent's rounds hand their work list here. With parallel > 1 each
 * certificate runs in a worker process of its own (fork), at most
 * `parallel` at once; with 1 they run one after the other in this process,
 * in configuration order. See docs/architecture.md, "Many certificates". */
#ifndef P11E_FLEET_H
#define P11E_FLEET_H

#include <stdbool.h>

#include "cli.h"

struct p11e_fleet_item {
	const struct p11e_cert_conf *cert;
	/* filled in by p11e_fleet_run */
	p11e_status rc;
	bool did; /* work was done (renew: it was due) */
	bool ran; /* false: never started (stop request) */
	char msg[sizeof(((struct p11e_err *)0)->msg)];
};

/* The work for one certificate, run in the worker (or in this process). */
typedef p11e_status (*p11e_fleet_fn)(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
				     const void *opts, bool *did, struct p11e_err *err);

/* [agent] parallel: how many certificates at once (default 8). */
unsigned p11e_fleet_parallel(const struct p11e_config *cfg);

/* Runs fn for every item, `parallel` at a time. A stop request
 * (SIGTERM/SIGINT) is passed on to the running workers and starts no
 * new ones. Returns P11E_OK unless workers could not be started at all. */
p11e_status p11e_fleet_run(struct p11e_cli *cli, struct p11e_fleet_item *items, size_t n,
			   unsigned parallel, p11e_fleet_fn fn, const void *opts,
			   struct p11e_err *err);

/* Tallies for the closing summary and the exit status of the whole run:
 * a failure's status (1 when failures differ) over 4 refused over 3
 * pending over 0. */
struct p11e_fleet_tally {
	size_t done, pending, refused, failed, skipped;
};
p11e_status p11e_fleet_tally(const struct p11e_fleet_item *items, size_t n,
			     struct p11e_fleet_tally *t);


/* Logs the error of a finished item, naming its certificate. */
void p11e_fleet_report(const struct p11e_fleet_item *it);

#endif
