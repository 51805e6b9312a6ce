/* SPDX-License-Identifier: Apache-2.0 */
/* Renewal: what is due, and the renewal itself through the enrolment's
 * journal and restart rules. */
#ifndef P11E_RENEW_H
#define P11E_RENEW_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cli.h"

struct p11e_renew_opts {
	bool force;    /* renew even when not inside the window */
	bool dry_run;  /* say what would be done; no CA order, no token change */
	int64_t wait;  /* seconds to wait for issuance; <0: the configured wait */
	int lock_wait; /* seconds to wait for another p11enroll on the same certificate */
};

/* When [cert:NAME] is next due: notAfter - renew_before for a monitored
 * certificate, now for one that has no certificate yet or an unfinished
 * enrolment. Reads the journal without locking. */
time_t p11e_renew_due(const struct p11e_config *cfg, const struct p11e_cert_conf *cert);
/* The same from a journal already read (status reads each one once). */
struct p11e_journal;
time_t p11e_renew_due_journal(const struct p11e_journal *j, const struct p11e_cert_conf *cert);
/* Seconds before renew_before at which this host renews `cert`: fixed per
 * host (machine-id) and certificate, in [0, renew_before/3). */
int64_t p11e_renew_spread(const struct p11e_cert_conf *cert);
/* With [agent] fleet_slot = K/N instead: seconds before `latest`
 * (notAfter - renew_before) to the last point of phase K/N in the period
 * renew_before/3, in [0, renew_before/3); 0 without a slot. */
int64_t p11e_renew_slot_spread(const struct p11e_cert_conf *cert, int64_t latest);

/* Renews `cert` when due (or forced), or resumes its unfinished enrolment.
 * Not due: P11E_OK and nothing done (*did = false). */
p11e_status p11e_renew(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
		       const struct p11e_renew_opts *opts, bool *did, struct p11e_err *err);

#endif
