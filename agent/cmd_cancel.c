/* SPDX-License-Identifier: Apache-2.0 */
/* cancel: withdraws an order that is not issued yet, either the one the
 * journal of [cert:NAME] waits for, or one `reconcile` found pending with
 * no journal here (--ca CA --order ID). A cancelled order of a journal
 * ends its intent like a refusal: the next `enroll` orders again with a
 * new key, since the CA has seen this one (docs/orders.md). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "cli.h"
#include "journal.h"
#include "log.h"

#define USAGE "usage: p11enroll cancel NAME | p11enroll cancel --ca CA --order ID"

static p11e_status cancel_at(struct p11e_cli *cli, const char *ca_name, const char *order_id,
			     const char *request_id, struct p11e_ca_result *res, struct p11e_err *err)
{
	struct p11e_order_ref ref = { order_id, request_id ? request_id : "" };
	struct p11e_ca_handle h;
	p11e_status rc = p11e_ca_handle_open(cli->cfg, ca_name, &h, err);

	if (rc != P11E_OK)
		return rc;
	if (!h.ops->cancel) {
		rc = p11e_err_set(err, P11E_EUSAGE, "[ca:%s] (%s) has no way to cancel an order",
				  ca_name, h.ops->type);
		goto out;
	}
	p11e_info("asking [ca:%s] to cancel order %s", ca_name, order_id);
	h.ops->cancel(h.ca, &ref, res);
	if (res->outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(res, "the order was not cancelled", err);
		p11e_err_prefix(err, "[ca:%s] order %s", ca_name, order_id);
	}
out:
	p11e_ca_handle_close(&h);
	return rc;
}

p11e_status p11e_cmd_cancel(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	const char *ca_name, *order_id;
	const struct p11e_cert_conf *cert;
	struct p11e_journal j = { .lock_fd = -1 };
	struct p11e_ca_result res = { 0 };
	struct p11e_order_args a;
	bool j_open = false;
	p11e_status rc = p11e_order_args_parse(argc, argv, false, USAGE, &a, err);

	if (rc != P11E_OK)
		return rc;
	rc = p11e_cli_config(cli, err);
	if (rc != P11E_OK)
		return rc;
	if (!a.name) {
		rc = cancel_at(cli, a.ca_name, a.order_id, NULL, &res, err);
		if (rc == P11E_OK)
			printf("%s: %s\n", a.order_id, res.message[0] ? res.message : "cancelled");
		goto out;
	}
	rc = p11e_cli_cert(cli, a.name, &cert, err);
	if (rc != P11E_OK)
		goto out;
	rc = p11e_journal_open(cli->cfg->state_dir, cert->name, 10, &j, err);
	if (rc != P11E_OK)
		goto out;
	j_open = true;
	order_id = p11e_journal_str(&j, "order", "order_id");
	ca_name = p11e_journal_str(&j, "order", "ca");
	if (j.state != P11E_ST_ORDER_PENDING || !order_id || !*order_id || !ca_name) {
		rc = p11e_err_set(err, P11E_EFAIL,
				  "[cert:%s] has no pending order to cancel (journal state %s)%s",
				  cert->name, p11e_state_name(j.state),
				  j.state == P11E_ST_ORDER_PLACING || j.state == P11E_ST_ORDER_UNKNOWN
					  ? "; its placement is not reconciled yet: run `p11enroll "
					    "enroll` first, or find it with `p11enroll reconcile`"
					  : "");
		goto out;
	}
	rc = cancel_at(cli, ca_name, order_id, p11e_journal_str(&j, "order", "request_id"), &res, err);
	if (rc != P11E_OK) {
		p11e_journal_save(&j, j.state, "cancellation refused or failed",
				  &(struct p11e_err){ 0 });
		goto out;
	}
	/* Ended like a failed order: its key is retired, the next enroll starts anew. */
	p11e_journal_clear(&j, "failed_order");
	p11e_journal_set_str(&j, "failed_order", "order_id", order_id);
	p11e_journal_set_str(&j, "failed_order", "status", "cancelled");
	p11e_journal_set_str(&j, "failed_order", "key_id", p11e_journal_str(&j, "key", "id"));
	p11e_journal_set_num(&j, "failed_order", "failed_at", (double)time(NULL));
	p11e_journal_error(&j, "the order was cancelled by the operator (p11enroll cancel)", NULL);
	rc = p11e_journal_save(&j, P11E_ST_REJECTED, "cancelled", err);
	if (rc != P11E_OK) {
		p11e_err_prefix(err,
				"[cert:%s] the CA cancelled order %s, but the journal could not "
				"record it",
				cert->name, order_id);
		goto out;
	}
	printf("%s: %s\n", cert->name, res.message[0] ? res.message : "cancelled");
	p11e_info("[cert:%s] `p11enroll enroll %s` places a new order (with a new key)", cert->name,
		  cert->name);
out:
	p11e_ca_result_clear(&res);
	if (j_open)
		p11e_journal_close(&j);
	return rc;
}
