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
static void assess(const struct p11e_config *cfg, struct p11e_cert_status *st, const char *ordered_at,
		   time_t now)
{
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

/* The strings the views print, copied out of the journal into one block
 * so that the parsed journal can go at once: `status` of 10,000
 * certificates then holds a few hundred bytes for each, not each journal
 * (docs/architecture.md, "Costs at scale"). */
static void keep_strings(struct p11e_cert_status *st)
{
	const char **const kept[] = { &st->ca,
				      &st->ca_type,
				      &st->issued_by,
				      &st->order_id,
				      &st->request_id,
				      &st->order_status,
				      &st->serial,
				      &st->key_type,
				      &st->last_error,
				      &st->last_error_code,
				      &st->revocation_reason,
				      &st->revocation_message,
				      &st->dcv_instructions };
	size_t total = 1, n;
	char *at;

	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		total += *kept[i] ? strlen(*kept[i]) + 1 : 0;
	at = st->strings = malloc(total);
	for (size_t i = 0; at && i < sizeof(kept) / sizeof(kept[0]); i++) {
		if (!*kept[i])
			continue;
		n = strlen(*kept[i]) + 1;
		memcpy(at, *kept[i], n);
		*kept[i] = at;
		at += n;
	}
	/* Out of memory: each string reads as absent rather than dangling. */
	for (size_t i = 0; !st->strings && i < sizeof(kept) / sizeof(kept[0]); i++)
		*kept[i] = NULL;
}

/* What the journal says of the certificate; its strings still point into `j`. */
static void read_journal(struct p11e_cert_status *st, const struct p11e_journal *j)
{
	const struct p11e_cert_conf *cert = st->cert;

	st->state = j->state;
	if (jstr(j, "order", "ca"))
		st->ca = jstr(j, "order", "ca");
	st->ca_type = jstr(j, "order", "ca_type");
	st->order_id = jstr(j, "order", "order_id");
	st->request_id = jstr(j, "order", "request_id");
	st->order_status = jstr(j, "order", "status");
	st->key_type = jstr(j, "key", "type");
	/* During a renewal `cert` still describes the installed certificate. */
	st->serial = jstr(j, "cert", "serial");
	st->not_after = (time_t)p11e_journal_num(j, "cert", "not_after");
	st->installed_at = (time_t)p11e_journal_num(j, "cert", "installed_at");
	st->last_error = jstr(j, "last_error", "message");
	st->last_error_code = jstr(j, "last_error", "ca_code");
	st->last_error_at = (time_t)p11e_journal_num(j, "last_error", "at");
	st->revoked_at = (time_t)p11e_journal_num(j, "revocation", "at");
	st->revocation_reason = jstr(j, "revocation", "reason");
	st->revocation_message = jstr(j, "revocation", "message");
	if (st->state == P11E_ST_ORDER_PENDING)
		st->dcv_instructions = jstr(j, "order", "dcv_instructions");
	/* During a renewal the installed certificate is the previous order's. */
	if (st->installed_at && st->serial && jstr(j, "previous", "serial") &&
	    strcmp(st->serial, jstr(j, "previous", "serial")) == 0)
		st->issued_by = jstr(j, "previous", "ca");
	else if (st->installed_at)
		st->issued_by = jstr(j, "order", "ca");
	st->on_fallback =
		st->issued_by && cert->fallback_ca && strcmp(st->issued_by, cert->fallback_ca) == 0;
}

void p11e_status_read(const struct p11e_config *cfg, const struct p11e_cert_conf *cert, time_t now,
		      struct p11e_cert_status *st)
{
	struct p11e_err err = { 0 };
	struct p11e_journal j;
	time_t due;

	memset(st, 0, sizeof(*st));
	st->cert = cert;
	st->state = P11E_ST_NEW;
	st->ca = cert->ca;
	if (p11e_journal_peek(cfg->state_dir, cert->name, &j, &st->found, &err) != P11E_OK) {
		/* A journal that exists but cannot be used needs a person. */
		st->damaged = true;
		st->found = true;
		set_problem(st, "damaged", "journal damaged: %s", j.damage ? j.damage : err.msg);
	}
	if (st->found && !st->damaged)
		read_journal(st, &j);
	if (!st->ca_type && st->ca) {
		const struct p11e_ca_conf *ca = p11e_config_ca(cfg, st->ca);

		st->ca_type = ca && ca->ops ? ca->ops->type : NULL;
	}
	st->next_action = next_action(st);
	due = st->damaged ? now : st->found ? p11e_renew_due_journal(&j, cert) : 0;
	st->next_at = due < now ? now : due;

	assess(cfg, st, st->found && !st->damaged ? jstr(&j, "order", "ca") : NULL, now);
	keep_strings(st);
	p11e_journal_close(&j);
}

void p11e_status_release(struct p11e_cert_status *st)
{
	free(st->strings);
	st->strings = NULL;
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

/* NAME: {"at": AT, K1: V1, K2: V2} when `present`, else null. */
static void add_event(cJSON *c, const char *name, bool present, time_t at, const char *k1,
		      const char *v1, const char *k2, const char *v2)
{
	cJSON *o;

	if (!present) {
		cJSON_AddNullToObject(c, name);
		return;
	}
	o = cJSON_AddObjectToObject(c, name);
	add_time(o, "at", at);
	add_str(o, k1, v1);
	add_str(o, k2, v2);
}

/* One certificate's object of the document (p11enroll(1), STATUS JSON). */
static cJSON *cert_json(const struct p11e_cert_status *s, time_t now)
{
	cJSON *c = cJSON_CreateObject(), *o;

	cJSON_AddStringToObject(c, "name", s->cert->name);
	add_str(c, "ca", s->ca);
	add_str(c, "ca_type", s->ca_type);
	add_str(c, "issued_by", s->issued_by);
	cJSON_AddBoolToObject(c, "on_fallback", s->on_fallback);
	cJSON_AddBoolToObject(c, "journal", s->found);
	cJSON_AddStringToObject(c, "state", s->damaged ? "damaged" : p11e_state_name(s->state));
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
		if (s->dcv_instructions)
			add_str(o, "dcv_instructions", s->dcv_instructions);
	} else {
		cJSON_AddNullToObject(c, "order");
	}
	add_str(c, "serial", s->serial);
	add_time(c, "not_after", s->not_after);
	if (s->not_after) {
		cJSON_AddNumberToObject(c, "seconds_left", (double)(s->not_after - now));
		cJSON_AddNumberToObject(c, "days_left",
					(double)floor_div((long long)(s->not_after - now), 86400));
	} else {
		cJSON_AddNullToObject(c, "seconds_left");
		cJSON_AddNullToObject(c, "days_left");
	}
	add_time(c, "installed_at", s->installed_at);
	cJSON_AddStringToObject(c, "next_action", s->next_action);
	cJSON_AddNumberToObject(c, "next_action_at", (double)s->next_at);
	add_event(c, "last_error", s->last_error != NULL, s->last_error_at, "message", s->last_error,
		  "ca_code", s->last_error_code);
	add_event(c, "revocation", s->revoked_at != 0, s->revoked_at, "reason", s->revocation_reason,
		  "message", s->revocation_message);
	return c;
}

/* Prints `obj` as cJSON_Print would inside the certificates array: two
 * tabs deeper (the document's object, then its array) after every line
 * break. */
static bool print_nested(FILE *out, const cJSON *obj)
{
	char *text = cJSON_Print(obj);
	bool ok = text != NULL;

	for (const char *c = text; ok && *c; c++)
		ok = fputc(*c, out) != EOF && (*c != '\n' || fputs("\t\t", out) != EOF);
	free(text);
	return ok;
}

bool p11e_status_json_print(FILE *out, const struct p11e_cert_status *st, size_t n, time_t now)
{
	cJSON *head = cJSON_CreateObject(), *c;
	char *text = NULL, *cut;
	bool all_ok = true, ok = false;

	for (size_t i = 0; i < n; i++)
		all_ok = all_ok && !st[i].problem;
	cJSON_AddNumberToObject(head, "version", STATUS_JSON_VERSION);
	cJSON_AddNumberToObject(head, "time", (double)now);
	cJSON_AddBoolToObject(head, "ok", all_ok);
	cJSON_AddArrayToObject(head, "certificates");
	text = cJSON_Print(head);
	cut = text ? strstr(text, "[]") : NULL;
	if (!cut)
		goto out;
	/* The certificates go between the brackets one by one, so that a
	 * fleet's document is never whole in memory. */
	ok = fwrite(text, 1, (size_t)(cut - text) + 1, out) == (size_t)(cut - text) + 1;
	for (size_t i = 0; ok && i < n; i++) {
		c = cert_json(&st[i], now);
		ok = c && (i == 0 || fputs(", ", out) != EOF) && print_nested(out, c);
		cJSON_Delete(c);
	}
	ok = ok && fputs(cut + 1, out) != EOF && fputc('\n', out) != EOF;
out:
	free(text);
	cJSON_Delete(head);
	return ok;
}

/* ---- Prometheus textfile ------------------------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Room for `more` bytes and the NUL after them. */
static bool grow(struct buf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *grown;

	if (b->oom)
		return false;
	if (b->len + more < b->cap)
		return true;
	while (cap <= b->len + more)
		cap *= 2;
	grown = realloc(b->p, cap);
	if (!grown) {
		b->oom = true;
		return false;
	}
	b->p = grown;
	b->cap = cap;
	return true;
}

/* The series lines are most of a fleet's file (16 for each certificate):
 * they are copied, not formatted. */
static void put_raw(struct buf *b, const char *text, size_t len)
{
	if (!grow(b, len))
		return;
	memcpy(b->p + b->len, text, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void put_str(struct buf *b, const char *text)
{
	put_raw(b, text, strlen(text));
}

/* " VALUE\n" */
static void put_value(struct buf *b, long long v)
{
	char digits[24], *at = digits + sizeof(digits);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

	*--at = '\n';
	do
		*--at = (char)('0' + u % 10);
	while (u /= 10);
	if (v < 0)
		*--at = '-';
	*--at = ' ';
	put_raw(b, at, (size_t)(digits + sizeof(digits) - at));
}

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!grow(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Label values escape \ " and newline (exposition format). */
static void put_label(struct buf *b, const char *value)
{
	const char *c = value ? value : "";

	/* runs without a character to escape go in one piece */
	while (*c) {
		size_t run = strcspn(c, "\\\"\n");

		put_raw(b, c, run);
		c += run;
		if (*c == '\n')
			put_raw(b, "\\n", 2);
		else if (*c == '\\')
			put_raw(b, "\\\\", 2);
		else if (*c == '"')
			put_raw(b, "\\\"", 2);
		if (*c)
			c++;
	}
}

static void put_labels(struct buf *b, const struct p11e_cert_status *s, const char *extra_key,
		       const char *extra_value)
{
	put_str(b, "{name=\"");
	put_label(b, s->cert->name);
	put_str(b, "\",ca=\"");
	put_label(b, s->ca);
	if (extra_key) {
		put_str(b, "\",");
		put_str(b, extra_key);
		put_str(b, "=\"");
		put_label(b, extra_value);
	}
	put_str(b, "\"}");
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
		put_str(&b, "p11enroll_certificate_not_after_seconds");
		put_labels(&b, &st[i], NULL, NULL);
		put_value(&b, (long long)st[i].not_after);
	}
	head(&b, "p11enroll_certificate_next_action_timestamp_seconds",
	     "When the renewal, or the continuation of an enrolment, is next due, Unix time.");
	for (size_t i = 0; i < n; i++) {
		put_str(&b, "p11enroll_certificate_next_action_timestamp_seconds");
		put_labels(&b, &st[i], "action", st[i].next_action);
		put_value(&b, (long long)st[i].next_at);
	}
	head(&b, "p11enroll_last_success_timestamp_seconds",
	     "When the current certificate was installed, Unix time (0: never).");
	for (size_t i = 0; i < n; i++) {
		put_str(&b, "p11enroll_last_success_timestamp_seconds");
		put_labels(&b, &st[i], NULL, NULL);
		put_value(&b, (long long)st[i].installed_at);
	}
	head(&b, "p11enroll_last_failure_timestamp_seconds",
	     "When the recorded last error happened, Unix time (0: none since the last success).");
	for (size_t i = 0; i < n; i++) {
		put_str(&b, "p11enroll_last_failure_timestamp_seconds");
		put_labels(&b, &st[i], NULL, NULL);
		put_value(&b, (long long)(st[i].last_error ? st[i].last_error_at : 0));
	}
	head(&b, "p11enroll_certificate_ok",
	     "1 when the certificate passes `p11enroll status`, 0 when it needs attention.");
	for (size_t i = 0; i < n; i++) {
		put_str(&b, "p11enroll_certificate_ok");
		put_labels(&b, &st[i], NULL, NULL);
		put_value(&b, st[i].problem ? 0 : 1);
	}
	head(&b, "p11enroll_certificate_problem",
	     "1 with the reason (the problem_code of status --json) of a certificate that needs attention.");
	for (size_t i = 0; i < n; i++) {
		if (!st[i].problem_code)
			continue;
		put_str(&b, "p11enroll_certificate_problem");
		put_labels(&b, &st[i], "problem", st[i].problem_code);
		put_value(&b, 1);
	}
	head(&b, "p11enroll_state",
	     "The journal state of the certificate: 1 for the current one (\"damaged\": refused).");
	for (size_t i = 0; i < n; i++) {
		for (int s = P11E_ST_NEW; s <= P11E_ST_VERIFY_FAILED; s++) {
			put_str(&b, "p11enroll_state");
			put_labels(&b, &st[i], "state", p11e_state_name((p11e_state)s));
			put_value(&b, !st[i].damaged && (int)st[i].state == s);
		}
		put_str(&b, "p11enroll_state");
		put_labels(&b, &st[i], "state", "damaged");
		put_value(&b, st[i].damaged ? 1 : 0);
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
