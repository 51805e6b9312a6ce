/* SPDX-License-Identifier: Apache-2.0 */
/* The enrolment of one certificate as a journalled state machine: key →
 * CSR → order → wait → verify → install → monitoring. */
#ifndef P11E_ENROLL_H
#define P11E_ENROLL_H

#include <stdint.h>

#include "cli.h"

struct p11e_enroll_opts {
	int64_t wait;  /* seconds to wait for issuance; <0: the configured wait */
	int lock_wait; /* seconds to wait for another p11enroll on the same certificate */
};

/* Runs (or resumes) the enrolment of `cert` as far as it can go now.
 * P11E_OK installed, P11E_EPENDING order waiting, P11E_EREJECTED refused,
 * others as their rooms say. */
p11e_status p11e_enroll(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
			const struct p11e_enroll_opts *opts, struct p11e_err *err);

/* enroll --dry-run: the CA checks the order [cert:] would place, with a CSR
 * of a throwaway software key; no token, journal or order (dryrun.c). */
p11e_status p11e_enroll_dry_run(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
				struct p11e_err *err);

#endif
