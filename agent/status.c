/* SPDX-License-Identifier: Apache-2.0 */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "renew.h"

#define STATUS_JSON_VERSION 1

static const char *jstr(const struct p11e_journal *j, const char *sect, const char *key)
{
	const char *s = p11e_journal_str(j, sect, key);

	return s && *s ? s : NULL;
}

static void set_problem(struct p11e_cert_status *st, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_problem(struct p11e_cert_status *st, const char *code, const char *fmt, ...)
{
	va_list ap;

	if (st->problem)
		return; /* the first (worst) one is enough for a check */
	va_start(ap, fmt);
	vsnprintf(st->problem_buf, sizeof(st->problem_buf), fmt, ap);
	va_end(ap);
	st->problem = st->problem_buf;
	st->problem_code = code;
}

static const char *next_action(const struct p11e_cert_status *st)
{
	if (st->damaged)
		return "operator";
	if (!st->found)
		return "enroll";
	switch (st->state) {
	case P11E_ST_NEW:
		return "enroll";
	case P11E_ST_ORDER_PLACING:
	case P11E_ST_ORDER_UNKNOWN:
		return "reconcile";
	case P11E_ST_ORDER_PENDING:
		return "poll";
	case P11E_ST_MONITORING:
		return "renew";
	case P11E_ST_REJECTED:
	case P11E_ST_VERIFY_FAILED:
		return "operator"; /* renew waits for enroll after the fix */
	default:
		return "resume";
	}
}

/* Healthy means one thing: a certificate is installed, valid for more
 * than a day, not revoked, and nothing waits for a person. Everything else
 * gets a problem (the worst first) and a short code for scripts. */
static void assess(const struct p11e_config *cfg, struct p11e_cert_status *st, time_t now)
{
	const char *ordered_at = jstr(&st->j, "order", "ca");
	bool installed = st->installed_at && st->not_after;

	switch (st->state) {
	case P11E_ST_REJECTED:
		set_problem(st, "rejected", "the CA refused the order");
		break;
	case P11E_ST_VERIFY_FAILED:
		set_problem(st, "verify-failed", "the issued certificate failed verification");
		break;
	case P11E_ST_ORDER_UNKNOWN:
		set_problem(st, "order-unknown", "the outcome of an order placement is unknown");
		break;
	case P11E_ST_MONITORING:
		/* Only post_install leaves an error on a monitored certificate. */
		if (st->last_error)
			set_problem(st, "post-install-failed", "post_install failed");
		break;
	default:
		break;
	}
	/* An order in flight that the configuration no longer leads to:
	 * enroll refuses to go on until the operator decides. */
	if (!st->damaged && ordered_at && st->state >= P11E_ST_ORDER_PLACING &&
	    st->state <= P11E_ST_CERT_ISSUED &&
	    (!st->cert->ca || strcmp(ordered_at, st->cert->ca) != 0 ||
	     !p11e_config_ca(cfg, ordered_at)) &&
	    !(st->cert->fallback_ca && strcmp(ordered_at, st->cert->fallback_ca) == 0))
		set_problem(st, "untracked",
			    "order %.40s is at [ca:%.40s], which the configuration no longer names "
			    "for it; enroll cannot follow it",
			    st->order_id ? st->order_id : "(unknown)", ordered_at);
	if (!st->found || st->state == P11E_ST_NEW)
		set_problem(st, "not-enrolled", "no certificate yet: never enrolled");
	else if (!installed && st->last_error)
		set_problem(st, "failed", "no certificate yet: the last attempt failed (%s)",
			    p11e_state_name(st->state));
	else if (!installed && st->state == P11E_ST_ORDER_PENDING)
		set_problem(st, "pending", "no certificate yet: the order is pending at the CA");
	else if (!installed)
		set_problem(st, "in-progress", "no certificate yet: enrolment stopped at %s",
			    p11e_state_name(st->state));
	if (st->not_after && st->not_after <= now)
		set_problem(st, "expired", "the certificate has expired");
	else if (st->not_after && st->not_after - now < P11E_STATUS_EXPIRY_ALARM)
		set_problem(st, "expiring", "the certificate expires in less than a day");
	if (st->revoked_at)
		set_problem(st, "revoked", "the certificate is revoked; renew replaces it");
}

void p11e_status_read(const struct p11e_config *cfg, const struct p11e_cert_conf *cert, time_t now,
		      struct p11e_cert_status *st)
{
	struct p11e_err err = { 0 };
	time_t due;

	memset(st, 0, sizeof(*st));
	st->cert = cert;
	st->state = P11E_ST_NEW;
	st->ca = cert->ca;
	if (p11e_journal_peek(cfg->state_dir, cert->name, &st->j, &st->found, &err) != P11E_OK) {
		/* A journal that exists but cannot be used needs a person. */
		st->damaged = true;
		st->found = true;
		set_problem(st, "damaged", "journal damaged: %s",
			    st->j.damage ? st->j.damage : err.msg);
	}
	if (st->found && !st->damaged) {
		st->state = st->j.state;
		if (jstr(&st->j, "order", "ca"))
			st->ca = jstr(&st->j, "order", "ca");
		st->ca_type = jstr(&st->j, "order", "ca_type");
		st->order_id = jstr(&st->j, "order", "order_id");
		st->request_id = jstr(&st->j, "order", "request_id");
		st->order_status = jstr(&st->j, "order", "status");
		st->key_type = jstr(&st->j, "key", "type");
		/* During a renewal `cert` still describes the installed certificate. */
		st->serial = jstr(&st->j, "cert", "serial");
		st->not_after = (time_t)p11e_journal_num(&st->j, "cert", "not_after");
		st->installed_at = (time_t)p11e_journal_num(&st->j, "cert", "installed_at");
		st->last_error = jstr(&st->j, "last_error", "message");
		st->last_error_code = jstr(&st->j, "last_error", "ca_code");
		st->last_error_at = (time_t)p11e_journal_num(&st->j, "last_error", "at");
		st->revoked_at = (time_t)p11e_journal_num(&st->j, "revocation", "at");
		st->revocation_reason = jstr(&st->j, "revocation", "reason");
		st->revocation_message = jstr(&st->j, "revocation", "message");
		/* During a renewal the installed certificate is the previous order's. */
		if (st->installed_at && st->serial && jstr(&st->j, "previous", "serial") &&
		    strcmp(st->serial, jstr(&st->j, "previous", "serial")) == 0)
			st->issued_by = jstr(&st->j, "previous", "ca");
		else if (st->installed_at)
			st->issued_by = jstr(&st->j, "order", "ca");
		st->on_fallback = st->issued_by && cert->fallback_ca &&
				  strcmp(st->issued_by, cert->fallback_ca) == 0;
	}
	if (!st->ca_type && st->ca) {
		const struct p11e_ca_conf *ca = p11e_config_ca(cfg, st->ca);

		st->ca_type = ca && ca->ops ? ca->ops->type : NULL;
	}
	st->next_action = next_action(st);
	due = st->damaged ? now : st->found ? p11e_renew_due_journal(&st->j, cert) : 0;
	st->next_at = due < now ? now : due;

	assess(cfg, st, now);
}

void p11e_status_release(struct p11e_cert_status *st)
{
	p11e_journal_close(&st->j);
}

/* ---- JSON ------------------------------------------------------------------- */

static void add_str(cJSON *obj, const char *key, const char *value)
{
	if (value)
		cJSON_AddStringToObject(obj, key, value);
	else
		cJSON_AddNullToObject(obj, key);
}

static void add_time(cJSON *obj, const char *key, time_t t)
{
	if (t)
		cJSON_AddNumberToObject(obj, key, (double)t);
	else
		cJSON_AddNullToObject(obj, key);
}

static long long floor_div(long long a, long long b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

cJSON *p11e_status_json(const struct p11e_cert_status *st, size_t n, time_t now)
{
	cJSON *doc = cJSON_CreateObject(), *arr;
	bool ok = true;

	cJSON_AddNumberToObject(doc, "version", STATUS_JSON_VERSION);
	cJSON_AddNumberToObject(doc, "time", (double)now);
	arr = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		const struct p11e_cert_status *s = &st[i];
		cJSON *c = cJSON_CreateObject(), *o;

		cJSON_AddStringToObject(c, "name", s->cert->name);
		add_str(c, "ca", s->ca);
		add_str(c, "ca_type", s->ca_type);
		add_str(c, "issued_by", s->issued_by);
		cJSON_AddBoolToObject(c, "on_fallback", s->on_fallback);
		cJSON_AddBoolToObject(c, "journal", s->found);
		cJSON_AddStringToObject(c, "state",
					s->damaged ? "damaged" : p11e_state_name(s->state));
		cJSON_AddBoolToObject(c, "ok", s->problem == NULL);
		add_str(c, "problem", s->problem);
		add_str(c, "problem_code", s->problem_code);
		add_str(c, "key_type", s->key_type ? s->key_type : s->cert->key_spec->name);
		if (s->order_id || s->request_id) {
			o = cJSON_AddObjectToObject(c, "order");
			add_str(o, "order_id", s->order_id);
			add_str(o, "request_id", s->request_id);
			add_str(o, "status", s->order_status);
			/* only while pending: what to publish for domain validation (docs/orders.md) */
			if (s->found && !s->damaged && s->state == P11E_ST_ORDER_PENDING &&
			    jstr(&s->j, "order", "dcv_instructions"))
				add_str(o, "dcv_instructions",
					jstr(&s->j, "order", "dcv_instructions"));
		} else {
			cJSON_AddNullToObject(c, "order");
		}
		add_str(c, "serial", s->serial);
		add_time(c, "not_after", s->not_after);
		if (s->not_after) {
			cJSON_AddNumberToObject(c, "seconds_left", (double)(s->not_after - now));
			cJSON_AddNumberToObject(c, "days_left",
						(double)floor_div((long long)(s->not_after - now),
								  86400));
		} else {
			cJSON_AddNullToObject(c, "seconds_left");
			cJSON_AddNullToObject(c, "days_left");
		}
		add_time(c, "installed_at", s->installed_at);
		cJSON_AddStringToObject(c, "next_action", s->next_action);
		cJSON_AddNumberToObject(c, "next_action_at", (double)s->next_at);
		if (s->last_error) {
			o = cJSON_AddObjectToObject(c, "last_error");
			add_time(o, "at", s->last_error_at);
			cJSON_AddStringToObject(o, "message", s->last_error);
			add_str(o, "ca_code", s->last_error_code);
		} else {
			cJSON_AddNullToObject(c, "last_error");
		}
		if (s->revoked_at) {
			o = cJSON_AddObjectToObject(c, "revocation");
			add_time(o, "at", s->revoked_at);
			add_str(o, "reason", s->revocation_reason);
			add_str(o, "message", s->revocation_message);
		} else {
			cJSON_AddNullToObject(c, "revocation");
		}
		if (s->problem)
			ok = false;
		cJSON_AddItemToArray(arr, c);
	}
	cJSON_AddBoolToObject(doc, "ok", ok);
	cJSON_AddItemToObject(doc, "certificates", arr);
	return doc;
}

/* ---- Prometheus textfile ------------------------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *grown = realloc(b->p, cap);

		if (!grown) {
			b->oom = true;
			return;
		}
		b->p = grown;
		b->cap = cap;
	}
}

/* Label values escape \ " and newline (exposition format). */
static void put_label(struct buf *b, const char *value)
{
	const char *c = value ? value : "";

	/* runs without a character to escape go in one piece */
	while (*c) {
		size_t run = strcspn(c, "\\\"\n");

		if (run)
			put(b, "%.*s", (int)run, c);
		c += run;
		if (*c == '\n')
			put(b, "\\n");
		else if (*c)
			put(b, "\\%c", *c);
		if (*c)
			c++;
	}
}

static void put_labels(struct buf *b, const struct p11e_cert_status *s, const char *extra_key,
		       const char *extra_value)
{
	put(b, "{name=\"");
	put_label(b, s->cert->name);
	put(b, "\",ca=\"");
	put_label(b, s->ca);
	if (extra_key) {
		put(b, "\",%s=\"", extra_key);
		put_label(b, extra_value);
	}
	put(b, "\"}");
}

static void head(struct buf *b, const char *name, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

char *p11e_status_prometheus(const struct p11e_cert_status *st, size_t n, time_t now)
{
	struct buf b = { 0 };

	head(&b, "p11enroll_certificate_not_after_seconds",
	     "notAfter of the installed certificate, Unix time (absent before the first).");
	for (size_t i = 0; i < n; i++) {
		if (!st[i].not_after)
			continue;
		put(&b, "p11enroll_certificate_not_after_seconds");
		put_labels(&b, &st[i], NULL, NULL);
		put(&b, " %lld\n", (long long)st[i].not_after);
	}
	head(&b, "p11enroll_certificate_next_action_timestamp_seconds",
	     "When the renewal, or the continuation of an enrolment, is next due, Unix time.");
	for (size_t i = 0; i < n; i++) {
		put(&b, "p11enroll_certificate_next_action_timestamp_seconds");
		put_labels(&b, &st[i], "action", st[i].next_action);
		put(&b, " %lld\n", (long long)st[i].next_at);
	}
	head(&b, "p11enroll_last_success_timestamp_seconds",
	     "When the current certificate was installed, Unix time (0: never).");
	for (size_t i = 0; i < n; i++) {
		put(&b, "p11enroll_last_success_timestamp_seconds");
		put_labels(&b, &st[i], NULL, NULL);
		put(&b, " %lld\n", (long long)st[i].installed_at);
	}
	head(&b, "p11enroll_last_failure_timestamp_seconds",
	     "When the recorded last error happened, Unix time (0: none since the last success).");
	for (size_t i = 0; i < n; i++) {
		put(&b, "p11enroll_last_failure_timestamp_seconds");
		put_labels(&b, &st[i], NULL, NULL);
		put(&b, " %lld\n", (long long)(st[i].last_error ? st[i].last_error_at : 0));
	}
	head(&b, "p11enroll_certificate_ok",
	     "1 when the certificate passes `p11enroll status`, 0 when it needs attention.");
	for (size_t i = 0; i < n; i++) {
		put(&b, "p11enroll_certificate_ok");
		put_labels(&b, &st[i], NULL, NULL);
		put(&b, " %d\n", st[i].problem ? 0 : 1);
	}
	head(&b, "p11enroll_certificate_problem",
	     "1 with the reason (the problem_code of status --json) of a certificate that needs attention.");
	for (size_t i = 0; i < n; i++) {
		if (!st[i].problem_code)
			continue;
		put(&b, "p11enroll_certificate_problem");
		put_labels(&b, &st[i], "problem", st[i].problem_code);
		put(&b, " 1\n");
	}
	head(&b, "p11enroll_state",
	     "The journal state of the certificate: 1 for the current one (\"damaged\": refused).");
	for (size_t i = 0; i < n; i++) {
		for (int s = P11E_ST_NEW; s <= P11E_ST_VERIFY_FAILED; s++) {
			put(&b, "p11enroll_state");
			put_labels(&b, &st[i], "state", p11e_state_name((p11e_state)s));
			put(&b, " %d\n", !st[i].damaged && (int)st[i].state == s);
		}
		put(&b, "p11enroll_state");
		put_labels(&b, &st[i], "state", "damaged");
		put(&b, " %d\n", st[i].damaged ? 1 : 0);
	}
	head(&b, "p11enroll_metrics_timestamp_seconds", "When p11enroll wrote this file, Unix time.");
	put(&b, "p11enroll_metrics_timestamp_seconds %lld\n", (long long)now);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

p11e_status p11e_status_write_prometheus(const struct p11e_config *cfg, const char *path,
					 struct p11e_err *err)
{
	struct p11e_cert_status *st = calloc(cfg->n_certs + 1, sizeof(*st));
	time_t now = time(NULL);
	char *text = NULL;
	p11e_status rc;

	if (!st)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t i = 0; i < cfg->n_certs; i++)
		p11e_status_read(cfg, &cfg->certs[i], now, &st[i]);
	text = p11e_status_prometheus(st, cfg->n_certs, now);
	if (!text) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	rc = p11e_write_atomic(path, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1, err);
	if (rc != P11E_OK)
		p11e_err_prefix(err, "cannot write the metrics file");
out:
	free(text);
	for (size_t i = 0; i < cfg->n_certs; i++)
		p11e_status_release(&st[i]);
	free(st);
	return rc;
}
