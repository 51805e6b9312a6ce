/* SPDX-License-Identifier: Apache-2.0 */
/* revoke: asks the CA that issued the current certificate of [cert:NAME]
 * to revoke it (a CA without a revocation call may file a refund request
 * instead), and records that in the journal's `revocation` section. The state is left as it is, so
 * enroll's restart rules still hold; `renew` sees the section and renews
 * at once, and the next installation drops it. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "cli.h"
#include "journal.h"
#include "log.h"

#define USAGE                                                                            \
	"usage: p11enroll revoke NAME [--reason unspecified|keyCompromise|caCompromise|" \
	"affiliationChanged|superseded|cessationOfOperation]\n"                          \
	"       p11enroll revoke --ca CA --order ID [--reason R]\n"                      \
	"       options: --no-refund (revoke, keep the order paid), --refund-status"

/* The subscriber's usual reason when it replaces a certificate, which is
 * what follows a revocation here (renew runs next); some CAs refuse
 * `unspecified` and `caCompromise` anyway. */
#define DEFAULT_REASON P11E_REVOKE_SUPERSEDED

/* The revocation itself: without a refund when asked and the CA tells the
 * two apart; --refund-status asks where a refund stands instead. */
static void do_revoke(const struct p11e_ca_handle *h, const struct p11e_order_ref *ref,
		      p11e_revoke_reason reason, bool no_refund, bool refund_status,
		      struct p11e_ca_result *res)
{
	if (refund_status && !h->ops->refund_status)
		p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
			     "[ca:%s] (%s) refunds nothing on revocation: there is no refund status",
			     h->conf->name, h->ops->type);
	else if (refund_status)
		h->ops->refund_status(h->ca, ref, res);
	else if (no_refund && h->ops->revoke_no_refund)
		h->ops->revoke_no_refund(h->ca, ref, reason, res);
	else
		h->ops->revoke(h->ca, ref, reason, res);
}

/* --ca CA --order ID: an order no journal here holds (reconcile's
 * "unused"), so there is no journal to record in. */
static p11e_status revoke_order(struct p11e_cli *cli, const struct p11e_order_args *a,
				p11e_revoke_reason reason, struct p11e_err *err)
{
	struct p11e_order_ref ref = { a->order_id, "" };
	struct p11e_ca_handle h = { 0 };
	struct p11e_ca_result res = { 0 };
	p11e_status rc = p11e_cli_config(cli, err);

	if (rc == P11E_OK)
		rc = p11e_ca_handle_open(cli->cfg, a->ca_name, &h, err);
	if (rc != P11E_OK)
		return rc;
	p11e_info("asking [ca:%s] to revoke order %s (reason %s)", a->ca_name, a->order_id,
		  p11e_revoke_reason_name(reason));
	do_revoke(&h, &ref, reason, a->no_refund, a->refund_status, &res);
	if (res.outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(&res,
				     a->refund_status ? "no refund status"
						      : "the revocation was not done",
				     err);
		p11e_err_prefix(err, "[ca:%s] order %s", a->ca_name, a->order_id);
	} else {
		printf("%s: %s\n", a->order_id, res.message[0] ? res.message : "revoked");
	}
	p11e_ca_result_clear(&res);
	p11e_ca_handle_close(&h);
	return rc;
}

/* The order whose certificate is installed, and the CA that holds it. */
static p11e_status installed_order(const struct p11e_journal *j, const struct p11e_cert_conf *cert,
				   struct p11e_order_ref *ref, const char **ca_name,
				   struct p11e_err *err)
{
	const char *serial = p11e_journal_str(j, "cert", "serial");
	const char *prev_serial = p11e_journal_str(j, "previous", "serial");
	const char *sect = "order";

	/* During a renewal the installed certificate is the previous order's. */
	if (serial && prev_serial && strcmp(serial, prev_serial) == 0 &&
	    p11e_journal_str(j, "previous", "order_id"))
		sect = "previous";
	ref->order_id = p11e_journal_str(j, sect, "order_id");
	ref->request_id = p11e_journal_str(j, sect, "request_id");
	if (!ref->order_id || !*ref->order_id)
		return p11e_err_set(err, P11E_EFAIL,
				    "[cert:%s] has no order to revoke (journal state %s): nothing was "
				    "ordered, or its order number is not known yet",
				    cert->name, p11e_state_name(j->state));
	if (!ref->request_id)
		ref->request_id = "";
	/* The CA that holds the order, even if the configuration moved on. */
	*ca_name = p11e_journal_str(j, sect, "ca");
	if (!*ca_name || !**ca_name)
		*ca_name = cert->ca;
	if (!*ca_name)
		return p11e_err_set(err, P11E_EUSAGE, "%s:%d: [cert:%s] has no ca = NAME", cert->file,
				    cert->line, cert->name);
	return P11E_OK;
}

/* --refund-status for [cert:NAME]: the answer goes to the journal's
 * revocation section and to standard output. */
static p11e_status ask_refund_status(struct p11e_journal *j, const struct p11e_cert_conf *cert,
				     const struct p11e_ca_handle *h, struct p11e_order_ref *ref,
				     struct p11e_ca_result *res, struct p11e_err *err)
{
	/* The order the refund was asked for, when revoke recorded it. */
	if (p11e_journal_str(j, "revocation", "order_id"))
		ref->order_id = p11e_journal_str(j, "revocation", "order_id");
	do_revoke(h, ref, DEFAULT_REASON, false, true, res);
	if (res->outcome != P11E_CA_OK) {
		p11e_status rc = p11e_ca_failure(res, "no refund status", err);

		p11e_err_prefix(err, "[cert:%s] order %s", cert->name, ref->order_id);
		return rc;
	}
	p11e_journal_set_str(j, "revocation", "refund_status", res->status_text);
	p11e_journal_save(j, j->state, res->message, &(struct p11e_err){ 0 });
	printf("%s: %s\n", cert->name, res->message);
	return P11E_OK;
}

/* The revocation the CA accepted, in the journal's revocation section. */
static p11e_status record_revocation(struct p11e_journal *j, const struct p11e_cert_conf *cert,
				     const struct p11e_order_ref *ref, p11e_revoke_reason reason,
				     bool no_refund, const struct p11e_ca_result *res,
				     struct p11e_err *err)
{
	p11e_status rc;

	p11e_journal_clear(j, "revocation");
	p11e_journal_set_num(j, "revocation", "at", (double)time(NULL));
	p11e_journal_set_str(j, "revocation", "reason", p11e_revoke_reason_name(reason));
	p11e_journal_set_str(j, "revocation", "order_id", ref->order_id);
	p11e_journal_set_str(j, "revocation", "serial", p11e_journal_str(j, "cert", "serial"));
	p11e_journal_set_str(j, "revocation", "message", res->message);
	p11e_journal_set_str(j, "revocation", "refund", no_refund ? "no" : NULL);
	rc = p11e_journal_save(j, j->state, res->status_text[0] ? res->status_text : "revoked", err);
	if (rc != P11E_OK)
		p11e_err_prefix(err,
				"[cert:%s] the CA accepted the revocation (%s), but the journal "
				"could not record it",
				cert->name, res->message);
	return rc;
}

p11e_status p11e_cmd_revoke(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	const struct p11e_cert_conf *cert;
	struct p11e_journal j = { .lock_fd = -1 };
	struct p11e_ca_handle h = { 0 };
	struct p11e_ca_result res = { 0 };
	struct p11e_order_ref ref;
	struct p11e_order_args a;
	p11e_revoke_reason reason;
	const char *ca_name = NULL;
	bool ca_open = false;
	p11e_status rc = p11e_order_args_parse(argc, argv, true, USAGE, &a, err);

	if (rc != P11E_OK)
		return rc;
	if (a.no_refund && a.refund_status)
		return p11e_err_set(err, P11E_EUSAGE, USAGE);
	reason = a.reason >= 0 ? (p11e_revoke_reason)a.reason : DEFAULT_REASON;
	if (!a.name)
		return revoke_order(cli, &a, reason, err);
	rc = p11e_cli_cert(cli, a.name, &cert, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_journal_open(cli->cfg->state_dir, cert->name, 10, &j, err);
	if (rc == P11E_OK)
		rc = installed_order(&j, cert, &ref, &ca_name, err);
	if (rc == P11E_OK) {
		rc = p11e_ca_handle_open(cli->cfg, ca_name, &h, err);
		ca_open = rc == P11E_OK;
	}
	if (rc != P11E_OK)
		goto out;
	p11e_info("[cert:%s] asking [ca:%s] to revoke order %s (reason %s)", cert->name, ca_name,
		  ref.order_id, p11e_revoke_reason_name(reason));
	if (a.refund_status) {
		rc = ask_refund_status(&j, cert, &h, &ref, &res, err);
		goto out;
	}
	do_revoke(&h, &ref, reason, a.no_refund, false, &res);
	if (res.outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(&res, "the revocation was not done", err);
		p11e_err_prefix(err, "[cert:%s] order %s", cert->name, ref.order_id);
		/* A note in the history, not last_error: the enrolment did not fail. */
		p11e_journal_save(&j, j.state, "revocation refused or failed",
				  &(struct p11e_err){ 0 });
		goto out;
	}
	rc = record_revocation(&j, cert, &ref, reason, a.no_refund, &res, err);
	if (rc != P11E_OK)
		goto out;
	/* The CA's own words: for a CA that refunds, that this is a refund request. */
	printf("%s: %s\n", cert->name, res.message[0] ? res.message : "revoked");
	p11e_info("[cert:%s] `p11enroll renew %s` (or the timer/agent) now replaces it", cert->name,
		  cert->name);
out:
	p11e_ca_result_clear(&res);
	if (ca_open)
		p11e_ca_handle_close(&h);
	p11e_journal_close(&j);
	return rc;
}
