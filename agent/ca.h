/* SPDX-License-Identifier: Apache-2.0 */
/* A configured CA, opened through its provider. */
#ifndef P11E_CA_H
#define P11E_CA_H

#include <time.h>

#include "config.h"
#include "provider.h"

struct p11e_ca_handle {
	const struct p11e_ca_conf *conf;
	const struct p11e_ca_ops *ops;
	struct p11e_ca *ca;
};

/* Opens [ca:NAME]; an unknown NAME is a usage error listing those there are. */
p11e_status p11e_ca_handle_open(const struct p11e_config *cfg, const char *name,
				struct p11e_ca_handle *h, struct p11e_err *err);
void p11e_ca_handle_close(struct p11e_ca_handle *h);

/* The process exit status for a provider outcome that is not a success,
 * with the CA's code and message put into err. */
p11e_status p11e_ca_failure(const struct p11e_ca_result *res, const char *context,
			    struct p11e_err *err);

/* The arguments of `revoke` and `cancel`: [cert:NAME], or an order no
 * journal here holds (--ca CA --order ID, which reconcile reports). */
struct p11e_order_args {
	const char *name;
	const char *ca_name, *order_id;
	int reason;                    /* --reason R: a p11e_revoke_reason, -1 when not given */
	bool no_refund, refund_status; /* --no-refund, --refund-status */
};

/* Parses argv[1..] into a: NAME or --ca CA --order ID, plus --reason R,
 * --no-refund and --refund-status when `revoke_options`. Anything else,
 * or neither or both of NAME and --ca/--order, is a usage error that says
 * `usage`. */
p11e_status p11e_order_args_parse(int argc, char **argv, bool revoke_options, const char *usage,
				  struct p11e_order_args *a, struct p11e_err *err);

/* --since YYYY-MM-DD of `orders` and `reconcile`: midnight UTC of that day. */
p11e_status p11e_since_parse(const char *text, time_t *out, struct p11e_err *err);

#endif
