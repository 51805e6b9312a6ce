/* SPDX-License-Identifier: Apache-2.0 */
/* Restart rules (what a run that finds the journal in a state does):
 *   new, rejected    → find or make the key, new CSR, new order
 *   key-generating   → look the key up by label first; make it only if absent
 *   key-ready        → CSR from the recorded key (id), never a new key
 *   csr-ready        → place an order with the recorded CSR
 *   order-placing,
 *   order-unknown    → reconcile with the CA; place again only when the CA
 *                      says for certain that no order exists
 *   order-pending    → poll the recorded order
 *   cert-issued,
 *   verify-failed    → verify (re-fetching after a failed verification), install
 *   installing       → install again (idempotent)
 *   installed        → remove keys replaced by rotation, run post_install
 *   monitoring       → nothing to do (renewal is `renew`)
 * Every step writes its intent to the journal before the call it guards. */
#include "enroll.h"
#include "renew.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "ca.h"
#include "http.h"
#include "fleet.h"
#include "install.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "ratelimit.h"
#include "stop.h"

/* Placement happened at or after placed_at minus this (clock skew). */
#define PLACE_WINDOW_SLACK 300
#define POLL_MIN 1
#define POLL_MAX 300

struct flow {
	struct p11e_cli *cli;
	const struct p11e_cert_conf *cert;
	struct p11e_journal j;
	struct p11e_cert_key ck;
	bool key_open;
	struct p11e_ca_handle ca;
	bool ca_open;
	const char *ca_name;   /* the CA of this run's orders: ca, or fallback_ca */
	bool refused_outright; /* the last placement was refused and no order exists */
	int64_t wait;
	unsigned placements;    /* order placements sent in this run */
	double first_placement; /* when the first of them started (monotonic) */
	bool dcv_shown;         /* this run has shown the DCV instructions */
	struct timespec t0;
	double t_token, t_csr, t_ca, t_install;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static p11e_status save(struct flow *f, p11e_state state, const char *note, struct p11e_err *err)
{
	p11e_status rc = p11e_journal_save(&f->j, state, note, err);

	if (rc != P11E_OK)
		p11e_err_prefix(err, "[cert:%s] cannot write its journal", f->cert->name);
	return rc;
}

/* Records a failure in the journal without moving the state. */
static p11e_status fail(struct flow *f, const struct p11e_err *err, const char *ca_code)
{
	struct p11e_err ignore = { 0 };

	p11e_journal_error(&f->j, err->msg, ca_code);
	p11e_journal_save(&f->j, f->j.state, "error", &ignore);
	return err->status;
}

/* ---- key and CSR ------------------------------------------------------------ */

static p11e_status record_key(struct flow *f, const char *note, struct p11e_err *err)
{
	char id_hex[129], *uri;

	p11e_cert_key_id_hex(&f->ck, id_hex, sizeof(id_hex));
	uri = p11e_cert_key_uri(&f->ck);
	p11e_journal_set_str(&f->j, "key", "id", id_hex);
	p11e_journal_set_str(&f->j, "key", "uri", uri);
	p11e_journal_set_str(&f->j, "key", "label", f->ck.key.label);
	p11e_journal_set_str(&f->j, "key", "type", f->ck.key.spec->name);
	p11e_journal_set_str(&f->j, "key", "next_id", NULL);
	free(uri);
	return save(f, P11E_ST_KEY_READY, note, err);
}

/* Renewal with a new key: its id was chosen and journalled before, so a
 * crash right after the generation finds that key instead of making one
 * more. */
static p11e_status rotate_key(struct flow *f, struct p11e_err *err)
{
	const char *next = p11e_journal_str(&f->j, "key", "next_id");
	double t = now_s();
	p11e_status rc;

	rc = p11e_cert_key_open(f->cert, next, &f->ck, err);
	f->key_open = true; /* closing a half-opened key is safe and frees its URI */
	if (rc == P11E_OK)
		rc = p11e_cert_key_rotate(f->cert, &f->ck, next, err);
	if (rc != P11E_OK)
		return fail(f, err, NULL);
	p11e_fault_point("key-generated");
	if (f->ck.generated)
		p11e_info("[cert:%s] generated a new %s key on %s to replace the previous one",
			  f->cert->name, f->ck.key.spec->name, p11e_cert_key_where(&f->ck));
	f->t_token += now_s() - t;
	return record_key(f, "new key for the renewal", err);
}

static p11e_status open_key(struct flow *f, struct p11e_err *err)
{
	const char *id = p11e_journal_str(&f->j, "key", "id");
	double t = now_s();
	p11e_status rc;

	if (f->key_open)
		return P11E_OK;
	if (f->j.state == P11E_ST_KEY_GENERATING && p11e_journal_str(&f->j, "key", "next_id"))
		return rotate_key(f, err);
	if (f->j.state == P11E_ST_KEY_GENERATING || f->j.state == P11E_ST_NEW)
		id = NULL; /* no key recorded yet: find by label, or make one */
	rc = p11e_cert_key_open(f->cert, id, &f->ck, err);
	f->key_open = true; /* closing a half-opened key is safe and frees its URI */
	if (rc != P11E_OK)
		return rc;
	if (!f->ck.have_key && id)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key recorded for [cert:%s] (CKA_ID %s) is no longer on "
				    "%s; its order and CSR belong to it, so nothing more is done: "
				    "restore the token, or remove %s to start over",
				    f->cert->name, id, p11e_cert_key_where(&f->ck), f->j.path);
	if (!f->ck.have_key) {
		p11e_journal_set_str(&f->j, "key", "label", f->ck.key.label);
		p11e_journal_set_str(&f->j, "key", "type", f->cert->key_spec->name);
		rc = save(f, P11E_ST_KEY_GENERATING, "making the key", err);
		if (rc != P11E_OK)
			return rc;
		rc = p11e_cert_key_ensure(f->cert, &f->ck, err);
		if (rc != P11E_OK)
			return fail(f, err, NULL);
		p11e_fault_point("key-generated");
		p11e_info("[cert:%s] generated a %s key on %s", f->cert->name, f->ck.key.spec->name,
			  p11e_cert_key_where(&f->ck));
	}
	f->t_token += now_s() - t;
	if (f->j.state >= P11E_ST_KEY_READY && f->j.state != P11E_ST_REJECTED)
		return P11E_OK;
	return record_key(f, f->ck.generated ? "key generated" : "existing key reused", err);
}

static p11e_status make_csr(struct flow *f, struct p11e_err *err)
{
	X509_REQ *req = NULL;
	char *pem = NULL;
	double t = now_s();
	p11e_status rc = p11e_cert_key_csr(f->cert, &f->ck, &req, err);

	/* The token's part is done: its lock is not held over the journal's fsyncs. */
	p11e_cert_key_release(&f->ck);
	if (rc != P11E_OK)
		return fail(f, err, NULL);
	pem = p11e_csr_to_pem(req);
	X509_REQ_free(req);
	if (!pem)
		return p11e_err_set(err, P11E_EFAIL, "cannot encode the CSR");
	p11e_journal_set_str(&f->j, "csr", "pem", pem);
	free(pem);
	/* A new CSR is a new order intent: it gets its own idempotency id. */
	p11e_journal_clear(&f->j, "order");
	f->t_csr += now_s() - t;
	return save(f, P11E_ST_CSR_READY, "CSR made", err);
}

/* ---- the order -------------------------------------------------------------- */

static const char *common_name(const struct p11e_cert_conf *cert, char *buf, size_t len)
{
	X509_NAME *name = NULL;
	struct p11e_err ignore = { 0 };

	buf[0] = '\0';
	if (p11e_subject_parse(cert->subject, &name, &ignore) == P11E_OK)
		X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)len);
	X509_NAME_free(name);
	return buf[0] ? buf : NULL;
}

static void order_input(struct flow *f, struct p11e_order *o, char *cn, size_t cn_len)
{
	memset(o, 0, sizeof(*o));
	o->name = f->cert->name;
	o->csr_pem = p11e_journal_str(&f->j, "csr", "pem");
	o->common_name = common_name(f->cert, cn, cn_len);
	o->dns = &f->cert->dns;
	o->idempotency_id = p11e_journal_str(&f->j, "order", "idempotency_id");
	o->placed_as = p11e_journal_str(&f->j, "order", "placed_as");
	o->dcv_instructions = p11e_journal_str(&f->j, "order", "dcv_instructions");
	o->placed_after = (time_t)p11e_journal_num(&f->j, "order", "placed_after");
	o->previous.order_id = p11e_journal_str(&f->j, "previous", "order_id");
	o->previous.request_id = p11e_journal_str(&f->j, "previous", "request_id");
	o->previous_not_after = (time_t)p11e_journal_num(&f->j, "previous", "not_after");
	o->overrides = &f->cert->overrides;
	/* A certificate from the other CA cannot be renewed through this one:
	 * a new order (docs/orders.md, the fallback CA). */
	if (f->ca_name && p11e_journal_str(&f->j, "previous", "ca") &&
	    strcmp(p11e_journal_str(&f->j, "previous", "ca"), f->ca_name) != 0) {
		o->previous.order_id = o->previous.request_id = NULL;
		o->previous_not_after = 0;
	}
	/* The overrides of [cert:] were written for the primary CA. */
	if (f->ca_name && f->cert->fallback_ca && strcmp(f->ca_name, f->cert->fallback_ca) == 0) {
		static const struct p11e_settings none = { NULL, 0 };

		o->overrides = &none;
	}
}

static p11e_status open_ca(struct flow *f, struct p11e_err *err)
{
	const char *ordered_at = p11e_journal_str(&f->j, "order", "ca");
	bool in_flight = f->j.state >= P11E_ST_ORDER_PLACING && f->j.state <= P11E_ST_CERT_ISSUED;
	p11e_status rc;

	if (f->ca_open)
		return P11E_OK;
	if (!f->cert->ca)
		return p11e_err_set(err, P11E_EUSAGE, "%s:%d: [cert:%s] has no ca = NAME",
				    f->cert->file, f->cert->line, f->cert->name);
	if (!f->ca_name)
		f->ca_name = f->cert->ca;
	/* An order in flight at the fallback CA is followed there. */
	if (ordered_at && in_flight && f->cert->fallback_ca &&
	    strcmp(ordered_at, f->cert->fallback_ca) == 0)
		f->ca_name = f->cert->fallback_ca;
	/* An order in flight belongs to the CA it was placed with. */
	if (ordered_at && strcmp(ordered_at, f->ca_name) != 0 && in_flight)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[cert:%s] has order %s in progress at [ca:%s], but its "
				    "configuration now names [ca:%s]; put ca = %s back until it "
				    "is installed, or revoke/cancel it there and move %s aside",
				    f->cert->name,
				    p11e_journal_str(&f->j, "order", "order_id")
					    ? p11e_journal_str(&f->j, "order", "order_id")
					    : "(unknown)",
				    ordered_at, f->cert->ca, ordered_at, f->j.path);
	rc = p11e_ca_handle_open(f->cli->cfg, f->ca_name, &f->ca, err);
	f->ca_open = rc == P11E_OK;
	return rc;
}

/* Domain validation the operator must do (no dcv_hook, file/CNAME DCV):
 * journalled, shown on stderr once per run and whenever they change, and
 * by `status`. Returns true when they changed (the journal needs saving). */
static bool note_instructions(struct flow *f, const struct p11e_ca_result *res, bool *tty_line)
{
	const char *old = p11e_journal_str(&f->j, "order", "dcv_instructions");
	const char *p = res->instructions;
	bool same = old && strcmp(old, p) == 0;

	if (!p[0] || (same && f->dcv_shown))
		return false;
	f->dcv_shown = true;
	if (tty_line && *tty_line) {
		fputc('\n', stderr);
		*tty_line = false;
	}
	p11e_warn("[cert:%s] order %s waits for domain validation; publish:", f->cert->name,
		  res->order_id[0] ? res->order_id : "?");
	while (*p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		p11e_warn("[cert:%s]   %.*s", f->cert->name, len, p);
		p += len + (nl ? 1 : 0);
	}
	if (same)
		return false;
	p11e_journal_set_str(&f->j, "order", "dcv_instructions", res->instructions);
	return true;
}

static p11e_status record_order(struct flow *f, const struct p11e_ca_result *res, const char *note,
				struct p11e_err *err)
{
	p11e_journal_set_str(&f->j, "order", "order_id", res->order_id);
	p11e_journal_set_str(&f->j, "order", "request_id", res->request_id);
	p11e_journal_set_str(&f->j, "order", "status", res->status_text);
	p11e_journal_set_num(&f->j, "order", "recorded_at", (double)time(NULL));
	p11e_journal_error(&f->j, NULL, NULL);
	p11e_info("[cert:%s] %s: order %s%s%s at [ca:%s]", f->cert->name, note, res->order_id,
		  res->request_id[0] ? " / " : "", res->request_id, f->ca_name);
	note_instructions(f, res, NULL);
	return save(f, P11E_ST_ORDER_PENDING, note, err);
}

/* The CA refused the order, or an order it held failed (docs/orders.md).
 * When an order existed, the CA has seen this key in it (CERTInext refuses
 * a key twice): the key is marked for retirement in `failed_order` and the
 * next enroll orders with a new one. */
static p11e_status rejected(struct flow *f, const struct p11e_ca_result *res, struct p11e_err *err)
{
	const char *order_id =
		res->order_id[0] ? res->order_id : p11e_journal_str(&f->j, "order", "order_id");

	p11e_ca_failure(res,
			order_id && *order_id ? "the order failed at the CA"
					      : "the CA refused the order",
			err);
	if (order_id && *order_id) {
		char id[sizeof(res->order_id)];

		snprintf(id, sizeof(id), "%s", order_id);
		p11e_journal_clear(&f->j, "failed_order");
		p11e_journal_set_str(&f->j, "failed_order", "order_id", id);
		p11e_journal_set_str(&f->j, "failed_order", "status",
				     res->status_text[0] ? res->status_text : NULL);
		p11e_journal_set_str(&f->j, "failed_order", "key_id",
				     p11e_journal_str(&f->j, "key", "id"));
		p11e_journal_set_num(&f->j, "failed_order", "failed_at", (double)time(NULL));
	}
	p11e_journal_error(&f->j, err->msg, res->ca_code);
	save(f, P11E_ST_REJECTED,
	     order_id && *order_id ? "order failed at the CA" : "refused by the CA",
	     &(struct p11e_err){ 0 });
	if (order_id && *order_id)
		p11e_info("[cert:%s] the next `p11enroll enroll %s` places a new order with a new key "
			  "(the CA has seen this one in order %s)",
			  f->cert->name, f->cert->name,
			  p11e_journal_str(&f->j, "failed_order", "order_id"));
	return P11E_EREJECTED;
}

/* max_retries and max_retry_time of the CA bound the placements of one run
 * like any other call; false (with err set) when they are used up. */
static bool placement_allowed(struct flow *f, struct p11e_err *err)
{
	struct p11e_http_opts opts = { 0 };
	struct p11e_err ignore = { 0 };
	unsigned max_retries = P11E_HTTP_DEFAULT_MAX_RETRIES,
		 max_time = P11E_HTTP_DEFAULT_MAX_RETRY_TIME;
	double elapsed = f->placements ? now_s() - f->first_placement : 0;
	unsigned char rnd;
	unsigned delay_ms;

	if (f->placements == 0)
		return true;
	if (p11e_http_opts_from_settings(&opts, &f->ca.conf->settings, &ignore) == P11E_OK) {
		max_retries = opts.max_retries;
		max_time = opts.max_retry_time;
	}
	p11e_http_opts_free(&opts);
	if (RAND_bytes(&rnd, 1) != 1)
		rnd = 128;
	delay_ms = p11e_http_backoff_ms(f->placements, P11E_HTTP_BACKOFF_BASE_MS,
					P11E_HTTP_BACKOFF_CAP_MS, rnd / 255.0);
	if (f->placements > max_retries || elapsed + delay_ms / 1000.0 > (double)max_time) {
		p11e_err_set(err, P11E_EFAIL,
			     "[cert:%s] %u placement%s of this order got no certain answer from [ca:%s] "
			     "(max_retries = %u, max_retry_time = %us), and the CA says no order holds "
			     "its id %s; nothing more is sent in this run: the next `p11enroll enroll %s` "
			     "(or renew) places it again with the same id",
			     f->cert->name, f->placements, f->placements == 1 ? "" : "s", f->ca_name,
			     max_retries, max_time, p11e_journal_str(&f->j, "order", "idempotency_id"),
			     f->cert->name);
		return false;
	}
	p11e_info("[cert:%s] placing the order again in %.1fs (attempt %u of at most %u)",
		  f->cert->name, delay_ms / 1000.0, f->placements + 1, max_retries + 1);
	usleep(delay_ms * 1000u);
	return true;
}

/* One order intent has one idempotency id: journalled before the first
 * attempt and reused by every retry and every later run, until the
 * intent ends (issued, refused for certain: a new CSR clears it). */
static p11e_status order_intent(struct flow *f, char *idem, size_t len, struct p11e_err *err)
{
	const char *kept = p11e_journal_str(&f->j, "order", "idempotency_id");
	const char *kept_ca = p11e_journal_str(&f->j, "order", "ca");
	unsigned char rnd[12];
	char hex[25];

	if (kept && *kept && kept_ca && strcmp(kept_ca, f->ca_name) == 0) {
		snprintf(idem, len, "%s", kept);
		p11e_journal_set_str(&f->j, "order", "order_id", NULL);
		p11e_journal_set_str(&f->j, "order", "request_id", NULL);
		return P11E_OK;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return p11e_err_set(err, P11E_EFAIL, "no randomness for the order id");
	p11e_hex(rnd, sizeof(rnd), hex);
	snprintf(idem, len, "p11e-%s", hex);
	p11e_journal_clear(&f->j, "order");
	p11e_journal_set_num(&f->j, "order", "placed_after",
			     (double)(time(NULL) - PLACE_WINDOW_SLACK));
	return P11E_OK;
}

/* What the placement's answer means for the journal (docs/orders.md). */
static p11e_status placement_answer(struct flow *f, const struct p11e_ca_result *res, unsigned *retry,
				    struct p11e_err *err)
{
	p11e_status rc;

	switch (res->outcome) {
	case P11E_CA_ISSUED:
	case P11E_CA_PENDING:
		/* The primary answers again: its failure clock starts afresh. */
		if (strcmp(f->ca_name, f->cert->ca) == 0)
			p11e_journal_clear(&f->j, "fallback");
		else
			p11e_journal_set_str(&f->j, "fallback", "active", f->ca_name);
		return record_order(f, res, "order placed", err);
	case P11E_CA_REJECTED:
		f->refused_outright = !res->order_id[0];
		return rejected(f, res, err);
	case P11E_CA_MISCONFIGURED:
	case P11E_CA_UNREACHABLE:
		/* The provider answers these only when no order can exist: the
		 * intent and its id stay for the next attempt. */
		if (res->outcome == P11E_CA_UNREACHABLE)
			*retry = res->retry_after; /* a rate limit says when */
		p11e_ca_failure(res, "the order was not placed", err);
		p11e_journal_error(&f->j, err->msg, res->ca_code);
		save(f, P11E_ST_CSR_READY, "order not placed", &(struct p11e_err){ 0 });
		return err->status;
	default:
		p11e_ca_failure(res, "the outcome of the order placement is unknown", err);
		p11e_journal_error(&f->j, err->msg, res->ca_code);
		rc = save(f, P11E_ST_ORDER_UNKNOWN, "placement outcome unknown", err);
		if (rc == P11E_OK) {
			p11e_warn("[cert:%s] %s; asking the CA before anything else", f->cert->name,
				  err->msg);
			p11e_err_clear(err);
		}
		return rc;
	}
}

static p11e_status place_once(struct flow *f, unsigned *retry, p11e_ca_outcome *outcome,
			      struct p11e_err *err)
{
	struct p11e_ca_result res = { 0 };
	char idem[64], cn[256];
	struct p11e_order o;
	double t = now_s();
	p11e_status rc = order_intent(f, idem, sizeof(idem), err);

	if (rc != P11E_OK)
		return rc;
	if (!placement_allowed(f, err)) {
		p11e_journal_error(&f->j, err->msg, NULL);
		save(f, P11E_ST_CSR_READY, "placements of this run used up", &(struct p11e_err){ 0 });
		return err->status;
	}
	/* The idempotency id and time window go to disk before the CA call,
	 * so that a crash right after it can still find the order. */
	p11e_journal_set_str(&f->j, "order", "ca", f->ca_name);
	p11e_journal_set_str(&f->j, "order", "ca_type", f->ca.ops->type);
	p11e_journal_set_str(&f->j, "order", "idempotency_id", idem);
	p11e_journal_set_str(&f->j, "order", "placed_as", NULL);
	p11e_journal_set_num(&f->j, "order", "attempts",
			     p11e_journal_num(&f->j, "order", "attempts") + 1);
	rc = save(f, P11E_ST_ORDER_PLACING, idem, err);
	if (rc != P11E_OK)
		return rc;
	if (f->placements++ == 0)
		f->first_placement = now_s();
	order_input(f, &o, cn, sizeof(cn));
	f->ca.ops->place(f->ca.ca, &o, &res);
	p11e_fault_point("order-placed");
	f->t_ca += now_s() - t;
	if (res.placed_as[0])
		p11e_journal_set_str(&f->j, "order", "placed_as", res.placed_as);
	*outcome = res.outcome;
	rc = placement_answer(f, &res, retry, err);
	p11e_ca_result_clear(&res);
	return rc;
}

/* The client-side limit of placements per CA account (order_rate): the
 * CA's own rate-limit answers are never needed under it. */
static p11e_status rate_limit(struct flow *f, struct p11e_err *err)
{
	const struct p11e_ca_conf *ca = p11e_config_ca(f->cli->cfg, f->ca_name);
	const char *account;
	char key[256];

	if (!ca || !ca->order_rate_n)
		return P11E_OK;
	account = ca->ops->account_key
			  ? p11e_settings_get(&ca->settings, ca->ops->account_key, ca->name)
			  : ca->name;
	snprintf(key, sizeof(key), "%s-%s", ca->ops->type, account);
	return p11e_ratelimit_take(f->cli->cfg->state_dir, key, ca->order_rate_n,
				   ca->order_rate_window, err);
}

/* A placement the CA turned away for its rate (or while unreachable, when
 * it said when to come back) is placed again after that wait, inside the
 * certificate's wait: no order exists, so this is never a second one. */
static p11e_status place_at(struct flow *f, p11e_ca_outcome *outcome, struct p11e_err *err)
{
	time_t deadline = time(NULL) + (time_t)f->wait;

	for (;;) {
		unsigned retry = 0;
		p11e_status rc = rate_limit(f, err);

		if (rc == P11E_OK)
			rc = place_once(f, &retry, outcome, err);
		if (rc == P11E_OK || !retry || deadline - time(NULL) < 1 || p11e_stop_requested())
			return rc;
		if (time(NULL) + (time_t)retry > deadline)
			retry = (unsigned)(deadline - time(NULL));
		p11e_warn("[cert:%s] %s; placing it again in %us", f->cert->name, err->msg, retry);
		if (!p11e_stop_sleep_ms((long long)retry * 1000))
			return rc;
		p11e_err_clear(err);
		/* The CA said for certain that nothing was placed: max_retries and
		 * max_retry_time bound answers that leave it unknown, not waits the
		 * CA asked for, which the certificate's wait bounds. */
		f->placements = 0;
	}
}

/* When the primary CA has been unreachable for fallback_after since its
 * first failure, or refuses the order outright (no order exists), the same
 * CSR is ordered from fallback_ca (docs/orders.md). Only a placement
 * counts: an order in flight is never moved. */
static p11e_status place(struct flow *f, struct p11e_err *err)
{
	p11e_ca_outcome outcome = P11E_CA_UNKNOWN;
	p11e_status rc = place_at(f, &outcome, err);
	const char *fb = f->cert->fallback_ca;
	double since, now = (double)time(NULL);
	char why[2048];

	if (!fb || strcmp(f->ca_name, f->cert->ca) != 0)
		return rc;
	if (outcome == P11E_CA_UNREACHABLE) {
		since = p11e_journal_num(&f->j, "fallback", "primary_failing_since");
		if (since <= 0) {
			p11e_journal_set_num(&f->j, "fallback", "primary_failing_since", now);
			save(f, f->j.state, "primary CA unreachable", &(struct p11e_err){ 0 });
			since = now;
		}
		if (now - since < (double)f->cert->fallback_after) {
			p11e_info("[cert:%s] [ca:%s] unreachable since %.0fs; the order goes to [ca:%s] "
				  "once that lasts %llds (fallback_after)",
				  f->cert->name, f->cert->ca, now - since, fb,
				  (long long)f->cert->fallback_after);
			return rc;
		}
		snprintf(why, sizeof(why), "unreachable for %.0fs (fallback_after = %llds): %s",
			 now - since, (long long)f->cert->fallback_after, err->msg);
	} else if (outcome == P11E_CA_REJECTED && f->refused_outright) {
		snprintf(why, sizeof(why), "refused the order: %s", err->msg);
	} else {
		return rc;
	}
	p11e_warn("[cert:%s] [ca:%s] %s; ordering from the fallback [ca:%s]", f->cert->name,
		  f->cert->ca, why, fb);
	p11e_err_clear(err);
	p11e_journal_set_str(&f->j, "fallback", "reason", why);
	p11e_journal_error(&f->j, NULL, NULL);
	rc = save(f, P11E_ST_CSR_READY, "falling back", err);
	if (rc != P11E_OK)
		return rc;
	if (f->ca_open)
		p11e_ca_handle_close(&f->ca);
	f->ca_open = false;
	f->ca_name = fb;
	f->placements = 0;
	rc = p11e_ca_handle_open(f->cli->cfg, fb, &f->ca, err);
	f->ca_open = rc == P11E_OK;
	if (rc == P11E_OK)
		rc = place_at(f, &outcome, err);
	return rc;
}

static p11e_status reconcile(struct flow *f, struct p11e_err *err)
{
	struct p11e_ca_result res = { 0 };
	struct p11e_order o;
	char cn[256];
	double t = now_s();
	p11e_status rc;

	order_input(f, &o, cn, sizeof(cn));
	f->ca.ops->reconcile(f->ca.ca, &o, &res);
	f->t_ca += now_s() - t;
	switch (res.outcome) {
	case P11E_CA_ISSUED:
	case P11E_CA_PENDING:
		rc = record_order(f, &res, "found the order placed before the interruption", err);
		break;
	case P11E_CA_REJECTED:
		/* found, and it failed (or a certain refusal): never a lost order */
		rc = rejected(f, &res, err);
		break;
	case P11E_CA_NOT_FOUND:
		p11e_info("[cert:%s] the CA says no order holds id %s: the placement may be sent again "
			  "with the same id",
			  f->cert->name, p11e_journal_str(&f->j, "order", "idempotency_id"));
		rc = save(f, P11E_ST_CSR_READY, "reconciled: no order exists", err);
		break;
	default:
		p11e_ca_failure(&res,
				"cannot tell whether the interrupted order placement reached the CA",
				err);
		p11e_err_prefix(err, "[cert:%s] no second order is placed until it can be checked",
				f->cert->name);
		p11e_journal_error(&f->j, err->msg, res.ca_code);
		save(f, P11E_ST_ORDER_UNKNOWN, "reconciliation failed", &(struct p11e_err){ 0 });
		rc = P11E_EFAIL;
		break;
	}
	p11e_ca_result_clear(&res);
	return rc;
}

#include <pthread.h>

/* The progress line of a terminal, redrawn in place every second by a
 * helper thread until the next poll is due, so that the wait counts down.
 * The thread stops drawing a second before the poll, before the caller
 * writes anything else. */
static struct {
	pthread_mutex_t mu;
	bool running;
	char head[400];       /* "[cert:web] order 123: Pending" */
	time_t since;         /* when the order was placed, or the wait began */
	struct timespec next; /* CLOCK_MONOTONIC time of the next poll */
	char last[400];       /* without a terminal: the last line written */
} progress_line = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void progress_draw(double left)
{
	long e = (long)(time(NULL) - progress_line.since);
	char elapsed[40];

	if (e >= 3600)
		snprintf(elapsed, sizeof(elapsed), "%ldh %02ldm %02lds", e / 3600, e % 3600 / 60,
			 e % 60);
	else if (e >= 60)
		snprintf(elapsed, sizeof(elapsed), "%ldm %02lds", e / 60, e % 60);
	else
		snprintf(elapsed, sizeof(elapsed), "%lds", e < 0 ? 0 : e);
	fprintf(stderr, "\r\033[K%s — %s elapsed, next poll in %lds", progress_line.head, elapsed,
		(long)(left + 0.5));
	fflush(stderr);
}

static double progress_left(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(progress_line.next.tv_sec - now.tv_sec) +
	       (double)(progress_line.next.tv_nsec - now.tv_nsec) / 1e9;
}

static void *progress_tick(void *unused)
{
	(void)unused;
	for (;;) {
		const struct timespec second = { 1, 0 };
		double left;

		nanosleep(&second, NULL);
		pthread_mutex_lock(&progress_line.mu);
		left = progress_left();
		if (left < 1.0) {
			progress_line.running = false;
			pthread_mutex_unlock(&progress_line.mu);
			return NULL;
		}
		progress_draw(left);
		pthread_mutex_unlock(&progress_line.mu);
	}
}

/* Where a pending order stands: on a terminal one line kept up to date in
 * place (order id, CA status, time since the order was placed, next poll
 * counting down); otherwise one log line whenever the status changes. */
static void progress(struct flow *f, const struct p11e_ca_result *res, unsigned delay)
{
	const char *id = p11e_journal_str(&f->j, "order", "order_id");
	const char *status =
		res->status_text[0] ? res->status_text : p11e_ca_outcome_name(res->outcome);
	time_t placed = (time_t)p11e_journal_num(&f->j, "order", "recorded_at");
	char head[sizeof(progress_line.head)];
	pthread_t thread;

	snprintf(head, sizeof(head), "[cert:%s] order %s: %s", f->cert->name, id ? id : "?", status);
	pthread_mutex_lock(&progress_line.mu);
	if (!isatty(STDERR_FILENO) || p11e_log_get_level() < P11E_LOG_INFO) {
		if (strcmp(head, progress_line.last) != 0)
			p11e_info("%s; next poll in %us", head, delay);
		snprintf(progress_line.last, sizeof(progress_line.last), "%s", head);
		pthread_mutex_unlock(&progress_line.mu);
		return;
	}
	/* A new order (or certificate) restarts the clock when the journal
	 * does not say when the order was placed. */
	if (placed > 0)
		progress_line.since = placed;
	else if (!progress_line.since ||
		 strncmp(head, progress_line.head, (size_t)(strstr(head, ": ") - head)) != 0)
		progress_line.since = time(NULL);
	snprintf(progress_line.head, sizeof(progress_line.head), "%s", head);
	clock_gettime(CLOCK_MONOTONIC, &progress_line.next);
	progress_line.next.tv_sec += delay;
	progress_draw((double)delay);
	if (!progress_line.running && delay > 1) {
		progress_line.running = pthread_create(&thread, NULL, progress_tick, NULL) == 0;
		if (progress_line.running)
			pthread_detach(thread);
	}
	pthread_mutex_unlock(&progress_line.mu);
}

static p11e_status fetch(struct flow *f, struct p11e_err *err)
{
	struct p11e_order_ref ref = { p11e_journal_str(&f->j, "order", "order_id"),
				      p11e_journal_str(&f->j, "order", "request_id") };
	struct p11e_ca_result res = { 0 };
	p11e_status rc;

	f->ca.ops->fetch(f->ca.ca, &ref, &res);
	if (res.outcome == P11E_CA_REJECTED) {
		rc = rejected(f, &res, err);
	} else if (res.outcome != P11E_CA_ISSUED && res.outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(&res, "cannot download the issued certificate", err);
		fail(f, err, res.ca_code);
	} else if (!res.chain_pem) {
		rc = p11e_err_set(err, P11E_EFAIL, "the CA sent no certificate for order %s",
				  ref.order_id);
		fail(f, err, NULL);
	} else {
		p11e_journal_set_str(&f->j, "cert", "chain", res.chain_pem);
		p11e_journal_set_num(&f->j, "order", "issued_at", (double)time(NULL));
		p11e_journal_error(&f->j, NULL, NULL);
		rc = save(f, P11E_ST_CERT_ISSUED, "certificate downloaded", err);
	}
	p11e_ca_result_clear(&res);
	return rc;
}

/* What a poll said that the journal keeps: the domain validation
 * instructions, the CA's word for the order's state. */
static void record_poll(struct flow *f, const struct p11e_ca_result *res, struct p11e_order *o,
			bool *tty_line)
{
	const char *status;

	if (note_instructions(f, res, tty_line)) {
		save(f, P11E_ST_ORDER_PENDING, "domain validation instructions",
		     &(struct p11e_err){ 0 });
		o->dcv_instructions = p11e_journal_str(&f->j, "order", "dcv_instructions");
	}
	status = p11e_journal_str(&f->j, "order", "status");
	if (res->status_text[0] && strcmp(res->status_text, status ? status : "") != 0) {
		p11e_journal_set_str(&f->j, "order", "status", res->status_text);
		save(f, P11E_ST_ORDER_PENDING, res->status_text, &(struct p11e_err){ 0 });
	}
}

/* True (with *rc) when the poll ends the wait: issued (then fetched),
 * refused, or a failure; false while the order is pending or the CA is
 * out of reach. */
static bool poll_ends_wait(struct flow *f, struct p11e_ca_result *res, bool tty_line, p11e_status *rc,
			   struct p11e_err *err)
{
	double t;

	if (res->outcome == P11E_CA_PENDING || res->outcome == P11E_CA_UNREACHABLE)
		return false;
	if (tty_line)
		fputc('\n', stderr);
	if (res->outcome == P11E_CA_ISSUED) {
		p11e_ca_result_clear(res);
		t = now_s();
		*rc = fetch(f, err);
		f->t_ca += now_s() - t;
	} else if (res->outcome == P11E_CA_REJECTED) {
		*rc = rejected(f, res, err);
	} else {
		*rc = p11e_ca_failure(res, "cannot follow the order", err);
		fail(f, err, res->ca_code);
	}
	return true;
}

/* Seconds to the next poll: the CA's retry_after, else a doubling backoff. */
static unsigned poll_delay(const struct p11e_ca_result *res, unsigned *backoff)
{
	unsigned delay = res->retry_after ? res->retry_after : *backoff;

	*backoff = *backoff * 2 > POLL_MAX ? POLL_MAX : *backoff * 2;
	return delay < POLL_MIN ? POLL_MIN : delay > POLL_MAX ? POLL_MAX : delay;
}

/* The wait is over with the order pending: the next run continues it. */
static p11e_status still_pending(struct flow *f, const struct p11e_order_ref *ref,
				 const struct p11e_ca_result *res, time_t next_poll,
				 struct p11e_err *err)
{
	p11e_journal_set_num(&f->j, "order", "next_poll", (double)next_poll);
	save(f, P11E_ST_ORDER_PENDING, "still pending", &(struct p11e_err){ 0 });
	p11e_err_set(err, P11E_EPENDING,
		     "[cert:%s] order %s is still pending at the CA (%s); run "
		     "`p11enroll enroll %s` (or renew) later to continue it — no new "
		     "order will be placed",
		     f->cert->name, ref->order_id, res->status_text[0] ? res->status_text : "pending",
		     f->cert->name);
	p11e_info("%s", err->msg);
	return P11E_EPENDING;
}

static p11e_status wait_issued(struct flow *f, struct p11e_err *err)
{
	struct p11e_order_ref ref = { p11e_journal_str(&f->j, "order", "order_id"),
				      p11e_journal_str(&f->j, "order", "request_id") };
	time_t deadline = time(NULL) + (time_t)f->wait;
	unsigned backoff = 2;
	bool tty_line = false;
	p11e_status rc;
	char cn[256];
	struct p11e_order o;

	order_input(f, &o, cn, sizeof(cn));
	for (;;) {
		struct p11e_ca_result res = { 0 };
		double t = now_s();
		unsigned delay;
		time_t now;

		f->ca.ops->poll(f->ca.ca, &o, &ref, &res);
		f->t_ca += now_s() - t;
		if (p11e_stop_requested()) {
			p11e_ca_result_clear(&res);
			break;
		}
		record_poll(f, &res, &o, &tty_line);
		if (poll_ends_wait(f, &res, tty_line, &rc, err)) {
			p11e_ca_result_clear(&res);
			return rc;
		}
		if (res.outcome == P11E_CA_UNREACHABLE)
			p11e_warn("[cert:%s] the CA could not be reached (%s); will try again",
				  f->cert->name, res.message);
		delay = poll_delay(&res, &backoff);
		now = time(NULL);
		/* One last poll at the deadline rather than giving up early. */
		if (now + (time_t)delay > deadline && deadline - now >= POLL_MIN) {
			delay = (unsigned)(deadline - now);
		} else if (now + (time_t)delay > deadline) {
			if (tty_line)
				fputc('\n', stderr);
			rc = still_pending(f, &ref, &res, now + (time_t)delay, err);
			p11e_ca_result_clear(&res);
			return rc;
		}
		progress(f, &res, delay);
		tty_line = isatty(STDERR_FILENO) && p11e_log_get_level() >= P11E_LOG_INFO;
		p11e_ca_result_clear(&res);
		if (!p11e_stop_sleep_ms((long long)delay * 1000))
			break;
	}
	/* SIGTERM/SIGINT: the order stays pending in the journal. */
	if (tty_line)
		fputc('\n', stderr);
	return p11e_err_set(err, P11E_EPENDING,
			    "[cert:%s] stopped while order %s is pending; the next run resumes it",
			    f->cert->name, ref.order_id ? ref.order_id : "?");
}

/* ---- verify and install ----------------------------------------------------- */

/* The CA issued a certificate that has already expired: fetching again
 * gives the same one, so the order has failed. */
static p11e_status issued_expired(struct flow *f, const struct p11e_issued *issued,
				  struct p11e_err *err)
{
	struct p11e_ca_result res = { .outcome = P11E_CA_REJECTED };
	const char *order_id = p11e_journal_str(&f->j, "order", "order_id");
	time_t end = p11e_issued_not_after(issued);
	char when[32];

	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", gmtime(&end));
	snprintf(res.status_text, sizeof(res.status_text), "certificate expired");
	snprintf(res.message, sizeof(res.message),
		 "order %s: the CA issued a certificate that has already expired (notAfter %s); "
		 "it was not installed",
		 order_id ? order_id : "?", when);
	return rejected(f, &res, err);
}

/* The files, the provider key's name, the token objects: each idempotent,
 * so the installing state can do them all again. */
static p11e_status put_in_place(struct flow *f, const struct p11e_issued *issued, struct p11e_err *err)
{
	p11e_status rc = p11e_install_files(f->cert, issued, err);

	if (rc != P11E_OK)
		return rc;
	p11e_fault_point("files-written");
	/* A provider key's file name moves to the new key only now. */
	rc = p11e_cert_key_commit(&f->ck, err);
	if (rc != P11E_OK || !f->cert->store_in_token)
		return rc;
	rc = p11e_cert_key_store_chain(&f->ck, issued->leaf, issued->cas, err);
	if (rc == P11E_OK)
		p11e_fault_point("token-stored");
	return rc;
}

static p11e_status install(struct flow *f, struct p11e_err *err)
{
	struct p11e_issued issued = { 0 };
	const char *pem = p11e_journal_str(&f->j, "cert", "chain");
	char serial[130];
	double t = now_s();
	p11e_status rc;

	rc = p11e_issued_parse(pem ? pem : "", p11e_cert_key_public(&f->ck), &issued, err);
	if (rc == P11E_OK && p11e_issued_not_after(&issued) > 0 &&
	    p11e_issued_not_after(&issued) < time(NULL)) {
		rc = issued_expired(f, &issued, err);
		goto out;
	}
	if (rc == P11E_OK)
		rc = p11e_issued_verify(&issued, f->cert, err);
	if (rc != P11E_OK) {
		p11e_err_prefix(err, "[cert:%s] the issued certificate was not installed",
				f->cert->name);
		p11e_journal_error(&f->j, err->msg, NULL);
		save(f, P11E_ST_VERIFY_FAILED, "verification failed; nothing installed",
		     &(struct p11e_err){ 0 });
		goto out;
	}
	p11e_issued_serial(&issued, serial, sizeof(serial));
	p11e_journal_set_str(&f->j, "cert", "serial", serial);
	p11e_journal_set_num(&f->j, "cert", "not_after", (double)p11e_issued_not_after(&issued));
	rc = save(f, P11E_ST_INSTALLING, serial, err);
	if (rc != P11E_OK)
		goto out;
	rc = put_in_place(f, &issued, err);
	if (rc != P11E_OK) {
		fail(f, err, NULL);
		goto out;
	}
	p11e_journal_set_num(&f->j, "cert", "installed_at", (double)time(NULL));
	p11e_journal_clear(&f->j, "revocation");
	rc = save(f, P11E_ST_INSTALLED, "installed", err);
	if (rc != P11E_OK)
		goto out;
	f->t_install += now_s() - t;
	{
		time_t not_after = p11e_issued_not_after(&issued);
		char when[32];

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", gmtime(&not_after));
		p11e_info("[cert:%s] installed certificate %s, valid until %s", f->cert->name, serial,
			  when);
	}
out:
	p11e_issued_free(&issued);
	return rc;
}

/* Keys replaced by rotation go once the new certificate is installed,
 * except the newest keep_old_keys of them. */
static p11e_status remove_old_keys(struct flow *f, struct p11e_err *err)
{
	cJSON *old = cJSON_GetObjectItemCaseSensitive(f->j.doc, "old_keys");
	int n = cJSON_GetArraySize(old);

	while (n > (int)f->cert->keep_old_keys) {
		const char *id = cJSON_GetStringValue(cJSON_GetArrayItem(old, 0));
		p11e_status rc = id ? p11e_cert_key_remove(&f->ck, id, err) : P11E_OK;

		if (rc != P11E_OK)
			return rc;
		p11e_info("[cert:%s] removed the replaced key %s", f->cert->name, id);
		cJSON_DeleteItemFromArray(old, 0);
		n--;
		rc = save(f, P11E_ST_INSTALLED, "old key removed", err);
		if (rc != P11E_OK)
			return rc;
	}
	return P11E_OK;
}

/* installed → post_install, old keys removed → monitoring. */
static p11e_status finish(struct flow *f, struct p11e_err *err)
{
	struct p11e_issued issued = { 0 };
	const char *pem = p11e_journal_str(&f->j, "cert", "chain");
	struct p11e_err hook_err = { 0 };
	p11e_status rc, hook_rc;
	char *uri = NULL;

	rc = p11e_issued_parse(pem ? pem : "", p11e_cert_key_public(&f->ck), &issued, err);
	if (rc != P11E_OK)
		return fail(f, err, NULL);
	rc = remove_old_keys(f, err);
	if (rc != P11E_OK) {
		p11e_warn("[cert:%s] %s", f->cert->name, err->msg);
		p11e_err_clear(err);
	}
	p11e_cert_key_release(&f->ck); /* the hook may use the token */
	uri = p11e_cert_key_uri(&f->ck);
	hook_rc = p11e_run_post_install(f->cert, &issued, uri, &hook_err);
	p11e_journal_error(&f->j, hook_rc == P11E_OK ? NULL : hook_err.msg, NULL);
	rc = save(f, P11E_ST_MONITORING,
		  hook_rc == P11E_OK ? "monitoring" : "monitoring; post_install failed", err);
	if (rc == P11E_OK && hook_rc != P11E_OK) {
		*err = hook_err;
		rc = hook_rc;
	}
	free(uri);
	p11e_issued_free(&issued);
	return rc;
}

/* The current key joins old_keys (removed after the next install) and the
 * id of its successor is journalled before it is made. */
static p11e_status plan_rotation(struct flow *f, struct p11e_err *err)
{
	unsigned char rnd[16];
	cJSON *old_keys;
	char hex[33];

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return p11e_err_set(err, P11E_EFAIL, "no randomness for the key id");
	p11e_hex(rnd, sizeof(rnd), hex);
	old_keys = cJSON_GetObjectItemCaseSensitive(f->j.doc, "old_keys");
	if (!cJSON_IsArray(old_keys)) {
		cJSON_DeleteItemFromObjectCaseSensitive(f->j.doc, "old_keys");
		old_keys = cJSON_AddArrayToObject(f->j.doc, "old_keys");
	}
	cJSON_AddItemToArray(old_keys, cJSON_CreateString(p11e_journal_str(&f->j, "key", "id")));
	p11e_journal_set_str(&f->j, "key", "next_id", hex);
	return save(f, P11E_ST_KEY_GENERATING, "renewal with a new key", err);
}

/* The key id that section `sect` records is the current key's. */
static bool is_current_key(struct flow *f, const char *sect)
{
	const char *id = p11e_journal_str(&f->j, sect, "key_id");
	const char *current = p11e_journal_str(&f->j, "key", "id");

	return id && strcmp(id, current ? current : "") == 0;
}

/* A new order after a refused one: true (with *rc) when it needs a new key
 * first, false when it starts as a new enrolment would. */
static bool restart_rejected(struct flow *f, p11e_status *rc, struct p11e_err *err)
{
	const char *why = p11e_journal_str(&f->j, "last_error", "message");

	p11e_info("[cert:%s] the last order was refused (%s); starting a new one", f->cert->name,
		  why ? why : "");
	/* A failed order's key is retired: the CA has seen it (docs/orders.md). */
	if (is_current_key(f, "failed_order")) {
		p11e_info("[cert:%s] order %s failed at the CA; its key is retired and a new "
			  "key is made for the next order",
			  f->cert->name, p11e_journal_str(&f->j, "failed_order", "order_id"));
		*rc = plan_rotation(f, err);
		return true;
	}
	/* A refused renewal with rotate_key gets its new key now. */
	if (f->cert->rotate_key && is_current_key(f, "previous")) {
		*rc = plan_rotation(f, err);
		return true;
	}
	return false;
}

static p11e_status run(struct flow *f, struct p11e_err *err)
{
	p11e_status rc = P11E_OK;

	/* A stop request ends the run between steps; the journal resumes it. */
	while (rc == P11E_OK && !p11e_stop_requested()) {
		p11e_state state = f->j.state;

		switch (state) {
		case P11E_ST_MONITORING:
			return P11E_OK;
		case P11E_ST_REJECTED:
			if (restart_rejected(f, &rc, err))
				break;
			/* fall through */
		case P11E_ST_NEW:
		case P11E_ST_KEY_GENERATING:
			/* The CA's credentials (secret files) are read before a key is
			 * made, so a missing or exposed one costs no key on the token. */
			rc = open_ca(f, err);
			if (rc == P11E_OK)
				rc = open_key(f, err);
			break;
		case P11E_ST_KEY_READY:
			rc = open_key(f, err);
			if (rc == P11E_OK)
				rc = make_csr(f, err);
			/* No session or token lock held while the CA works (docs/tokens.md). */
			p11e_cert_key_release(&f->ck);
			break;
		case P11E_ST_CSR_READY:
			rc = open_ca(f, err);
			if (rc == P11E_OK)
				rc = place(f, err);
			break;
		case P11E_ST_ORDER_PLACING:
		case P11E_ST_ORDER_UNKNOWN:
			rc = open_ca(f, err);
			if (rc == P11E_OK)
				rc = reconcile(f, err);
			break;
		case P11E_ST_ORDER_PENDING:
			rc = open_ca(f, err);
			if (rc == P11E_OK)
				rc = wait_issued(f, err);
			break;
		case P11E_ST_VERIFY_FAILED:
			/* The CA may have put it right: fetch again before verifying. */
			rc = open_ca(f, err);
			if (rc == P11E_OK)
				rc = fetch(f, err);
			if (rc == P11E_OK)
				rc = open_key(f, err);
			if (rc == P11E_OK)
				rc = install(f, err);
			if (rc == P11E_OK)
				rc = finish(f, err);
			return rc;
		case P11E_ST_CERT_ISSUED:
		case P11E_ST_INSTALLING:
			rc = open_key(f, err);
			if (rc == P11E_OK)
				rc = install(f, err);
			break;
		case P11E_ST_INSTALLED:
			rc = open_key(f, err);
			if (rc == P11E_OK)
				rc = finish(f, err);
			break;
		}
		if (rc == P11E_OK && f->j.state == state && state != P11E_ST_MONITORING)
			return p11e_err_set(err, P11E_EFAIL, "[cert:%s] no progress from state %s",
					    f->cert->name, p11e_state_name(state));
	}
	return rc;
}

static void close_flow(struct flow *f)
{
	if (f->ca_open)
		p11e_ca_handle_close(&f->ca);
	if (f->key_open)
		p11e_cert_key_close(&f->ck);
	p11e_journal_close(&f->j);
}

static p11e_status run_timed(struct flow *f, struct p11e_err *err)
{
	double start = now_s();
	p11e_status rc = run(f, err);

	p11e_debug("[cert:%s] time: total %.3fs, token %.3fs, CSR %.3fs, CA %.3fs, install %.3fs",
		   f->cert->name, now_s() - start, f->t_token, f->t_csr, f->t_ca, f->t_install);
	return rc;
}

p11e_status p11e_enroll(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
			const struct p11e_enroll_opts *opts, struct p11e_err *err)
{
	struct flow f = { .cli = cli, .cert = cert };
	p11e_status rc;

	f.wait = opts->wait >= 0 ? opts->wait : cert->wait;
	rc = p11e_journal_open(cli->cfg->state_dir, cert->name, opts->lock_wait, &f.j, err);
	if (rc != P11E_OK)
		goto out;
	if (f.j.state == P11E_ST_MONITORING) {
		p11e_info("[cert:%s] is enrolled (certificate %s); nothing to do — `p11enroll renew` "
			  "renews it when due",
			  cert->name, p11e_journal_str(&f.j, "cert", "serial"));
		goto out;
	}
	if (f.j.state != P11E_ST_NEW)
		p11e_info("[cert:%s] resuming from state %s", cert->name, p11e_state_name(f.j.state));
	rc = run_timed(&f, err);
out:
	close_flow(&f);
	return rc;
}

/* ---- renewal ---------------------------------------------------------------- */

time_t p11e_renew_due(const struct p11e_config *cfg, const struct p11e_cert_conf *cert)
{
	struct p11e_journal j;
	struct p11e_err ignore = { 0 };
	bool found = false;
	time_t due = 0;

	if (p11e_journal_peek(cfg->state_dir, cert->name, &j, &found, &ignore) == P11E_OK && found)
		due = p11e_renew_due_journal(&j, cert);
	p11e_journal_close(&j);
	return due;
}

/* This host's identity for the spread: machine-id, else the host name. */
static const char *host_id(void)
{
	static char id[256];
	FILE *f;

	if (id[0])
		return id;
	f = fopen("/etc/machine-id", "r");
	if (!f || !fgets(id, sizeof(id), f))
		if (gethostname(id, sizeof(id) - 1) != 0)
			snprintf(id, sizeof(id), "p11enroll");
	if (f)
		fclose(f);
	id[strcspn(id, "\n")] = '\0';
	if (!id[0])
		snprintf(id, sizeof(id), "p11enroll");
	return id;
}

int64_t p11e_renew_spread(const struct p11e_cert_conf *cert)
{
	const char *parts[] = { host_id(), "\n", cert->name };
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		for (const char *c = parts[i]; *c; c++)
			h = (h ^ (unsigned char)*c) * 1099511628211ULL;
	h ^= h >> 29; /* FNV's low bits mix poorly: fold the high ones in */
	return cert->renew_before > 3 ? (int64_t)(h % (uint64_t)(cert->renew_before / 3)) : 0;
}

/* fleet_slot K/N: the latest point at or before `latest` whose place in
 * the repeating period of renew_before/3 (counted from the epoch) is K/N
 * of it: N numbered hosts fall due evenly spaced, whatever their
 * certificates' dates (docs/architecture.md, "Spreading a fleet"). */
int64_t p11e_renew_slot_spread(const struct p11e_cert_conf *cert, int64_t latest)
{
	int64_t period = cert->renew_before / 3, phase, off;

	if (period < 1 || cert->fleet_slots == 0)
		return 0;
	phase = (int64_t)((uint64_t)period * cert->fleet_slot / cert->fleet_slots);
	off = (latest - phase) % period;
	return off < 0 ? off + period : off;
}

time_t p11e_renew_due_journal(const struct p11e_journal *j, const struct p11e_cert_conf *cert)
{
	int64_t latest;

	if (j->state != P11E_ST_MONITORING || cJSON_GetObjectItemCaseSensitive(j->doc, "revocation"))
		return 0;
	/* A fleet whose certificates were issued together renews spread over
	 * the first third of the window, each host and certificate at its own
	 * fixed point (or its fleet_slot's), never later than renew_before
	 * (docs/architecture.md). */
	latest = (int64_t)p11e_journal_num(j, "cert", "not_after") - cert->renew_before;
	return (time_t)(latest - (cert->fleet_slots ? p11e_renew_slot_spread(cert, latest)
						    : p11e_renew_spread(cert)));
}

/* Turns a monitored certificate into a renewal: the current order becomes
 * `previous` (the CA links or reissues through it), a rotation journals
 * the id of the key to make, and the installed certificate stays
 * recorded until its successor is installed. */
static p11e_status start_renewal(struct flow *f, struct p11e_err *err)
{
	static const char *const carried[] = { "order_id", "request_id", "ca", "ca_type" };

	p11e_journal_clear(&f->j, "previous");
	for (size_t i = 0; i < sizeof(carried) / sizeof(carried[0]); i++)
		p11e_journal_set_str(&f->j, "previous", carried[i],
				     p11e_journal_str(&f->j, "order", carried[i]));
	p11e_journal_set_str(&f->j, "previous", "serial", p11e_journal_str(&f->j, "cert", "serial"));
	p11e_journal_set_num(&f->j, "previous", "not_after",
			     p11e_journal_num(&f->j, "cert", "not_after"));
	p11e_journal_set_str(&f->j, "previous", "key_id", p11e_journal_str(&f->j, "key", "id"));
	p11e_journal_clear(&f->j, "order");
	p11e_journal_clear(&f->j, "csr");
	/* The next renewal tries the primary CA again, with a fresh clock. */
	p11e_journal_clear(&f->j, "fallback");
	p11e_journal_error(&f->j, NULL, NULL);
	if (!f->cert->rotate_key)
		return save(f, P11E_ST_KEY_READY, "renewal with the same key", err);
	return plan_rotation(f, err);
}

p11e_status p11e_renew(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
		       const struct p11e_renew_opts *opts, bool *did, struct p11e_err *err)
{
	struct flow f = { .cli = cli, .cert = cert };
	time_t due = p11e_renew_due(cli->cfg, cert), now = time(NULL);
	char when[32];
	p11e_status rc;

	*did = false;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", gmtime(&due));
	if (due > now && !opts->force) {
		p11e_debug("[cert:%s] not due until %s", cert->name, when);
		return P11E_OK;
	}
	if (opts->dry_run) {
		p11e_info("[cert:%s] would %s (due %s)", cert->name,
			  due == 0 ? "enrol or resume its enrolment" : "renew",
			  due == 0 ? "now" : when);
		return P11E_OK;
	}
	*did = true;
	f.wait = opts->wait >= 0 ? opts->wait : cert->wait;
	rc = p11e_journal_open(cli->cfg->state_dir, cert->name, opts->lock_wait, &f.j, err);
	if (rc != P11E_OK)
		goto out;
	/* A refusal or a failed verification waits for the operator: the timer
	 * must not order again and again on its own. */
	if ((f.j.state == P11E_ST_REJECTED || f.j.state == P11E_ST_VERIFY_FAILED) && !opts->force) {
		*did = false;
		rc = p11e_err_set(err, f.j.state == P11E_ST_REJECTED ? P11E_EREJECTED : P11E_EFAIL,
				  "[cert:%s] needs operator action (%s: %s); fix the cause, then "
				  "run `p11enroll enroll %s` (or renew --force)",
				  cert->name, p11e_state_name(f.j.state),
				  p11e_journal_str(&f.j, "last_error", "message")
					  ? p11e_journal_str(&f.j, "last_error", "message")
					  : "see status",
				  cert->name);
		goto out;
	}
	if (f.j.state == P11E_ST_MONITORING) {
		p11e_info("[cert:%s] renewing%s (certificate %s)", cert->name,
			  cert->rotate_key ? " with a new key" : "",
			  p11e_journal_str(&f.j, "cert", "serial"));
		rc = start_renewal(&f, err);
	} else if (f.j.state != P11E_ST_NEW) {
		p11e_info("[cert:%s] resuming from state %s", cert->name, p11e_state_name(f.j.state));
	}
	if (rc == P11E_OK)
		rc = run_timed(&f, err);
out:
	close_flow(&f);
	return rc;
}
