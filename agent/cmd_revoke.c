/* SPDX-License-Identifier: Apache-2.0 */
/* revoke: asks the CA that issued the current certificate of [cert:NAME]
 * to revoke it (The SSL Store: files a refund request), and records that
 * in the journal's `revocation` section. The state is left as it is, so
 * enroll's restart rules still hold; `renew` sees the section and renews
 * at once, and the next installation drops it. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ca.h"
#include "cli.h"
#include "journal.h"
#include "log.h"

#define USAGE                                                                               \
	"usage: p11enroll revoke NAME [--reason unspecified|keyCompromise|caCompromise|"     \
	"affiliationChanged|superseded|cessationOfOperation]\n"                              \
	"       p11enroll revoke --ca CA --order ID [--reason R]\n"                           \
	"       options: --no-refund (revoke, keep the order paid), --refund-status"

/* The subscriber's usual reason when it replaces a certificate, which is
 * what follows a revocation here (renew runs next); CERTInext refuses
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

p11e_status p11e_cmd_revoke(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	p11e_revoke_reason reason = DEFAULT_REASON;
	const struct p11e_cert_conf *cert;
	struct p11e_journal j = { .lock_fd = -1 };
	struct p11e_ca_handle h = { 0 };
	struct p11e_ca_result res = { 0 };
	struct p11e_order_ref ref;
	const char *name = NULL, *ca_name = NULL, *serial, *prev_serial, *sect = "order";
	const char *order_only = NULL;
	bool no_refund = false, refund_status = false;
	bool ca_open = false;
	p11e_status rc;

	for (int i = 1; i < argc; i++) {
		const char *r = NULL;
		int parsed;

		if (strcmp(argv[i], "--no-refund") == 0) {
			no_refund = true;
			continue;
		} else if (strcmp(argv[i], "--refund-status") == 0) {
			refund_status = true;
			continue;
		} else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc) {
			ca_name = argv[++i];
			continue;
		} else if (strcmp(argv[i], "--order") == 0 && i + 1 < argc) {
			order_only = argv[++i];
			continue;
		} else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc)
			r = argv[++i];
		else if (strncmp(argv[i], "--reason=", 9) == 0)
			r = argv[i] + 9;
		else if (argv[i][0] != '-' && !name) {
			name = argv[i];
			continue;
		} else
			return p11e_err_set(err, P11E_EUSAGE, USAGE);
		parsed = p11e_revoke_reason_parse(r);
		if (parsed < 0)
			return p11e_err_set(err, P11E_EUSAGE, "--reason %s: not a reason; %s", r, USAGE);
		reason = (p11e_revoke_reason)parsed;
	}
	if (!name == !(ca_name && order_only) || !ca_name != !order_only || (no_refund && refund_status))
		return p11e_err_set(err, P11E_EUSAGE, USAGE);
	/* An order no journal here holds (reconcile's "unused"): no journal to record in. */
	if (!name) {
		ref.order_id = order_only;
		ref.request_id = "";
		rc = p11e_cli_config(cli, err);
		if (rc == P11E_OK)
			rc = p11e_ca_handle_open(cli->cfg, ca_name, &h, err);
		if (rc != P11E_OK)
			return rc;
		p11e_info("asking [ca:%s] to revoke order %s (reason %s)", ca_name, order_only,
			  p11e_revoke_reason_name(reason));
		do_revoke(&h, &ref, reason, no_refund, refund_status, &res);
		if (res.outcome != P11E_CA_OK) {
			rc = p11e_ca_failure(&res, refund_status ? "no refund status" : "the revocation was not done", err);
			p11e_err_prefix(err, "[ca:%s] order %s", ca_name, order_only);
		} else {
			printf("%s: %s\n", order_only, res.message[0] ? res.message : "revoked");
		}
		p11e_ca_result_clear(&res);
		p11e_ca_handle_close(&h);
		return rc;
	}
	rc = p11e_cli_cert(cli, name, &cert, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_journal_open(cli->cfg->state_dir, cert->name, 10, &j, err);
	if (rc != P11E_OK)
		goto out;
	/* During a renewal the installed certificate is the previous order's. */
	serial = p11e_journal_str(&j, "cert", "serial");
	prev_serial = p11e_journal_str(&j, "previous", "serial");
	if (serial && prev_serial && strcmp(serial, prev_serial) == 0 &&
	    p11e_journal_str(&j, "previous", "order_id"))
		sect = "previous";
	ref.order_id = p11e_journal_str(&j, sect, "order_id");
	ref.request_id = p11e_journal_str(&j, sect, "request_id");
	if (!ref.order_id || !*ref.order_id) {
		rc = p11e_err_set(err, P11E_EFAIL,
				  "[cert:%s] has no order to revoke (journal state %s): nothing was "
				  "ordered, or its order number is not known yet",
				  cert->name, p11e_state_name(j.state));
		goto out;
	}
	if (!ref.request_id)
		ref.request_id = "";
	/* The CA that holds the order, even if the configuration moved on. */
	ca_name = p11e_journal_str(&j, sect, "ca");
	if (!ca_name || !*ca_name)
		ca_name = cert->ca;
	if (!ca_name) {
		rc = p11e_err_set(err, P11E_EUSAGE, "%s:%d: [cert:%s] has no ca = NAME", cert->file,
				  cert->line, cert->name);
		goto out;
	}
	rc = p11e_ca_handle_open(cli->cfg, ca_name, &h, err);
	if (rc != P11E_OK)
		goto out;
	ca_open = true;
	p11e_info("[cert:%s] asking [ca:%s] to revoke order %s (reason %s)", cert->name, ca_name,
		  ref.order_id, p11e_revoke_reason_name(reason));
	if (refund_status) {
		/* The order the refund was asked for, when revoke recorded it. */
		if (p11e_journal_str(&j, "revocation", "order_id"))
			ref.order_id = p11e_journal_str(&j, "revocation", "order_id");
		do_revoke(&h, &ref, reason, false, true, &res);
		if (res.outcome != P11E_CA_OK) {
			rc = p11e_ca_failure(&res, "no refund status", err);
			p11e_err_prefix(err, "[cert:%s] order %s", cert->name, ref.order_id);
			goto out;
		}
		p11e_journal_set_str(&j, "revocation", "refund_status", res.status_text);
		p11e_journal_save(&j, j.state, res.message, &(struct p11e_err){ 0 });
		printf("%s: %s\n", cert->name, res.message);
		goto out;
	}
	do_revoke(&h, &ref, reason, no_refund, false, &res);
	if (res.outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(&res, "the revocation was not done", err);
		p11e_err_prefix(err, "[cert:%s] order %s", cert->name, ref.order_id);
		/* A note in the history, not last_error: the enrolment did not fail. */
		p11e_journal_save(&j, j.state, "revocation refused or failed", &(struct p11e_err){ 0 });
		goto out;
	}
	p11e_journal_clear(&j, "revocation");
	p11e_journal_set_num(&j, "revocation", "at", (double)time(NULL));
	p11e_journal_set_str(&j, "revocation", "reason", p11e_revoke_reason_name(reason));
	p11e_journal_set_str(&j, "revocation", "order_id", ref.order_id);
	p11e_journal_set_str(&j, "revocation", "serial", serial);
	p11e_journal_set_str(&j, "revocation", "message", res.message);
	p11e_journal_set_str(&j, "revocation", "refund", no_refund ? "no" : NULL);
	rc = p11e_journal_save(&j, j.state, res.status_text[0] ? res.status_text : "revoked", err);
	if (rc != P11E_OK) {
		p11e_err_prefix(err, "[cert:%s] the CA accepted the revocation (%s), but the journal "
				     "could not record it",
				cert->name, res.message);
		goto out;
	}
	/* The CA's own words: for The SSL Store, that this is a refund request. */
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
