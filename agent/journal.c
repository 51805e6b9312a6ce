/* SPDX-License-Identifier: Apache-2.0 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"
#include "util.h"

#define JOURNAL_VERSION 1
#define JOURNAL_MAX (8u << 20)
#define HISTORY_MAX 30

static const char *const state_names[] = {
	"new",           "key-generating", "key-ready",     "csr-ready",  "order-placing",
	"order-unknown", "order-pending",  "cert-issued",   "installing", "installed",
	"monitoring",    "rejected",       "verify-failed",
};
#define N_STATES (sizeof(state_names) / sizeof(state_names[0]))

const char *p11e_state_name(p11e_state state)
{
	return (size_t)state < N_STATES ? state_names[state] : "?";
}

int p11e_state_parse(const char *name)
{
	for (size_t i = 0; name && i < N_STATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return (int)i;
	return -1;
}

void p11e_fault_point(const char *step)
{
	const char *want = getenv("P11ENROLL_FAULT");

	if (want && strcmp(want, step) == 0) {
		fprintf(stderr, "p11enroll: P11ENROLL_FAULT=%s: killing myself\n", step);
		kill(getpid(), SIGKILL);
	}
}

static p11e_status lock(struct p11e_journal *j, const char *state_dir, int wait_s,
			struct p11e_err *err)
{
	char path[PATH_MAX], pid[32];
	int waited_ms = 0;

	snprintf(path, sizeof(path), "%s/%s.lock", state_dir, j->name);
	j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->lock_fd < 0)
		return p11e_err_set(err, P11E_EFAIL, "cannot open lock %s: %s", path, strerror(errno));
	while (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return p11e_err_set(err, P11E_EFAIL, "cannot lock %s: %s", path,
					    strerror(errno));
		if (waited_ms >= wait_s * 1000) {
			ssize_t n = pread(j->lock_fd, pid, sizeof(pid) - 1, 0);

			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			return p11e_err_set(err, P11E_EFAIL,
					    "another p11enroll (pid %s) is working on [cert:%s]; "
					    "try again when it is done",
					    *pid ? pid : "?", j->name);
		}
		if (!p11e_stop_sleep_ms(100))
			return p11e_err_set(err, P11E_EFAIL, "stopped while waiting for %s", path);
		waited_ms += 100;
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(j->lock_fd, 0) == 0 && pwrite(j->lock_fd, pid, strlen(pid), 0) < 0)
		p11e_debug("cannot note the pid in %s", path);
	return P11E_OK;
}

/* ---- the schema every reader relies on ---------------------------------------- */

enum kind { STR, NUM };

struct member {
	const char *section, *key;
	enum kind kind;
};

/* The members p11enroll reads, with their types, a section's together (the
 * check looks each section up once). Others may be added within a version
 * (readers ignore what they do not know), never retyped. */
static const struct member members[] = {
	{ "key", "id", STR },
	{ "key", "uri", STR },
	{ "key", "label", STR },
	{ "key", "type", STR },
	{ "key", "next_id", STR },
	{ "csr", "pem", STR },
	{ "order", "ca", STR },
	{ "order", "ca_type", STR },
	{ "order", "idempotency_id", STR },
	{ "order", "order_id", STR },
	{ "order", "request_id", STR },
	{ "order", "status", STR },
	{ "order", "placed_after", NUM },
	{ "order", "recorded_at", NUM },
	{ "order", "issued_at", NUM },
	{ "order", "next_poll", NUM },
	{ "cert", "chain", STR },
	{ "cert", "serial", STR },
	{ "cert", "not_after", NUM },
	{ "cert", "installed_at", NUM },
	{ "previous", "order_id", STR },
	{ "previous", "request_id", STR },
	{ "previous", "ca", STR },
	{ "previous", "ca_type", STR },
	{ "previous", "serial", STR },
	{ "previous", "key_id", STR },
	{ "previous", "not_after", NUM },
	{ "last_error", "at", NUM },
	{ "last_error", "message", STR },
	{ "last_error", "ca_code", STR },
	{ "revocation", "at", NUM },
	{ "revocation", "reason", STR },
	{ "revocation", "order_id", STR },
	{ "revocation", "serial", STR },
	{ "revocation", "message", STR },
	{ "revocation", "refund", STR },
	{ "revocation", "refund_status", STR },
	{ "fallback", "primary_failing_since", NUM },
	{ "fallback", "reason", STR },
	{ "fallback", "active", STR },
};

/* What a state cannot go on without: the next step reads it. */
struct need {
	p11e_state from, to;
	const char *section, *key;
};

static const struct need needs[] = {
	{ P11E_ST_CSR_READY, P11E_ST_CSR_READY, "csr", "pem" },
	{ P11E_ST_ORDER_PLACING, P11E_ST_ORDER_UNKNOWN, "order", "idempotency_id" },
	{ P11E_ST_ORDER_PENDING, P11E_ST_ORDER_PENDING, "order", "order_id" },
	{ P11E_ST_CERT_ISSUED, P11E_ST_MONITORING, "cert", "chain" },
	{ P11E_ST_VERIFY_FAILED, P11E_ST_VERIFY_FAILED, "order", "order_id" },
};

static const char *kind_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (cJSON_IsNumber(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "an object";
	return "something else";
}

/* Says in `why` what is wrong with the document, false when something is. */
/* The members that say what the file is: version, name, state. */
static bool check_header(const cJSON *doc, const char *name, char *why, size_t len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "version");

	if (!cJSON_IsObject(doc))
		return snprintf(why, len, "it is %s, not a JSON object", kind_name(doc)), false;
	if (!cJSON_IsNumber(v) || !(v->valuedouble >= 1 && v->valuedouble <= 1e9) ||
	    v->valuedouble != (double)(long long)v->valuedouble)
		return snprintf(why, len, "\"version\" is %s, expected a whole number from 1",
				v ? kind_name(v) : "missing"),
		       false;
	if (v->valuedouble > JOURNAL_VERSION)
		return snprintf(why, len,
				"it has version %lld, written by a newer p11enroll (this one reads "
				"version %d); use that p11enroll",
				(long long)v->valuedouble, JOURNAL_VERSION),
		       false;
	v = cJSON_GetObjectItemCaseSensitive(doc, "name");
	if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, name) != 0))
		return snprintf(why, len, "\"name\" is %s%s%.60s%s, not \"%s\"", kind_name(v),
				cJSON_IsString(v) ? " \"" : "",
				cJSON_IsString(v) ? v->valuestring : "", cJSON_IsString(v) ? "\"" : "",
				name),
		       false;
	v = cJSON_GetObjectItemCaseSensitive(doc, "state");
	if (!cJSON_IsString(v))
		return snprintf(why, len, "\"state\" is %s, expected a string",
				v ? kind_name(v) : "missing"),
		       false;
	if (p11e_state_parse(v->valuestring) < 0)
		return snprintf(why, len, "\"state\" is \"%.60s\", which this p11enroll does not know",
				v->valuestring),
		       false;
	return true;
}

/* Sections are objects, the members p11enroll reads have their types. */
static bool check_types(const cJSON *doc, char *why, size_t len)
{
	static const char *const sections[] = { "key",      "csr",        "order",      "cert",
						"previous", "last_error", "revocation", "fallback" };
	const cJSON *v, *item, *sect = NULL;

	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		item = cJSON_GetObjectItemCaseSensitive(doc, sections[i]);
		if (item && !cJSON_IsObject(item))
			return snprintf(why, len, "\"%s\" is %s, expected an object", sections[i],
					kind_name(item)),
			       false;
	}
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
		if (i == 0 || strcmp(members[i].section, members[i - 1].section) != 0)
			sect = cJSON_GetObjectItemCaseSensitive(doc, members[i].section);
		if (!sect)
			continue;
		item = cJSON_GetObjectItemCaseSensitive(sect, members[i].key);
		if (item && !(members[i].kind == STR ? cJSON_IsString(item) : cJSON_IsNumber(item)))
			return snprintf(why, len, "\"%s.%s\" is %s, expected %s", members[i].section,
					members[i].key, kind_name(item),
					members[i].kind == STR ? "a string" : "a number"),
			       false;
	}
	item = cJSON_GetObjectItemCaseSensitive(doc, "history");
	if (item && !cJSON_IsArray(item))
		return snprintf(why, len, "\"history\" is %s, expected an array", kind_name(item)),
		       false;
	item = cJSON_GetObjectItemCaseSensitive(doc, "old_keys");
	if (item && !cJSON_IsArray(item))
		return snprintf(why, len, "\"old_keys\" is %s, expected an array", kind_name(item)),
		       false;
	cJSON_ArrayForEach (v, item)
		if (!cJSON_IsString(v))
			return snprintf(why, len, "\"old_keys\" holds %s, expected key ids (strings)",
					kind_name(v)),
			       false;
	return true;
}

/* The state has what its next step reads. */
static bool check_needs(const cJSON *doc, char *why, size_t len)
{
	int s = p11e_state_parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "state")));

	for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
		const char *got;

		if (s < (int)needs[i].from || s > (int)needs[i].to)
			continue;
		got = cJSON_GetStringValue(
			cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc,
											  needs[i].section),
							 needs[i].key));
		if (!got || !*got)
			return snprintf(why, len,
					"state %s needs \"%s.%s\", which is missing or empty",
					p11e_state_name((p11e_state)s), needs[i].section,
					needs[i].key),
			       false;
	}
	return true;
}

static bool check_schema(const cJSON *doc, const char *name, char *why, size_t len)
{
	return check_header(doc, name, why, len) && check_types(doc, why, len) &&
	       check_needs(doc, why, len);
}

static p11e_status load(struct p11e_journal *j, bool *found, struct p11e_err *err)
{
	struct p11e_err read_err = { 0 };
	char *text = NULL, why[256];
	size_t len = 0;
	p11e_status rc;

	*found = false;
	rc = p11e_read_file(j->path, JOURNAL_MAX, &text, &len, &read_err);
	if (rc != P11E_OK && errno == ENOENT) {
		j->doc = cJSON_CreateObject();
		cJSON_AddNumberToObject(j->doc, "version", JOURNAL_VERSION);
		cJSON_AddStringToObject(j->doc, "name", j->name);
		cJSON_AddStringToObject(j->doc, "state", p11e_state_name(P11E_ST_NEW));
		j->state = P11E_ST_NEW;
		return j->doc ? P11E_OK : p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	*found = true; /* from here on a failure is about a file that exists */
	if (rc != P11E_OK)
		return p11e_err_set(err, rc, "%s", read_err.msg);
	j->doc = cJSON_ParseWithLength(text, len);
	if (!j->doc) {
		const char *at = cJSON_GetErrorPtr();

		if (at && at >= text && at <= text + len)
			snprintf(why, sizeof(why),
				 "it is not valid JSON (truncated or cut at byte %zu of %zu)",
				 (size_t)(at - text), len);
		else
			snprintf(why, sizeof(why), "it is not valid JSON (%zu bytes)", len);
	}
	free(text);
	if (j->doc && check_schema(j->doc, j->name, why, sizeof(why))) {
		j->state = (p11e_state)p11e_state_parse(
			cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j->doc, "state")));
		return P11E_OK;
	}
	/* Nothing is done from a record that cannot be trusted: no CA call. */
	cJSON_Delete(j->doc);
	j->doc = NULL;
	j->damage = strdup(why);
	return p11e_err_set(err, P11E_EFAIL,
			    "journal %s is damaged: %s. Nothing was sent to the CA. Check the CA "
			    "for an order of [cert:%s] (p11enroll orders CA), then repair the file "
			    "or move it aside to start over",
			    j->path, why, j->name);
}

static p11e_status init(const char *state_dir, const char *name, struct p11e_journal *j,
			struct p11e_err *err)
{
	memset(j, 0, sizeof(*j));
	j->lock_fd = -1;
	j->name = strdup(name);
	if (!j->name || asprintf(&j->path, "%s/%s.json", state_dir, name) < 0)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	return P11E_OK;
}

p11e_status p11e_journal_open(const char *state_dir, const char *name, int lock_wait,
			      struct p11e_journal *j, struct p11e_err *err)
{
	bool found;
	p11e_status rc = init(state_dir, name, j, err);

	if (rc != P11E_OK)
		return rc;
	rc = p11e_mkdirs(state_dir, 0700, err);
	if (rc != P11E_OK)
		return rc;
	rc = lock(j, state_dir, lock_wait, err);
	if (rc != P11E_OK)
		return rc;
	return load(j, &found, err);
}

p11e_status p11e_journal_peek(const char *state_dir, const char *name, struct p11e_journal *j,
			      bool *found, struct p11e_err *err)
{
	p11e_status rc = init(state_dir, name, j, err);

	if (rc != P11E_OK)
		return rc;
	return load(j, found, err);
}

static cJSON *section(struct p11e_journal *j, const char *name)
{
	cJSON *s = cJSON_GetObjectItemCaseSensitive(j->doc, name);

	if (!cJSON_IsObject(s)) {
		cJSON_DeleteItemFromObjectCaseSensitive(j->doc, name);
		s = cJSON_AddObjectToObject(j->doc, name);
	}
	return s;
}

static void replace(cJSON *obj, const char *key, cJSON *value)
{
	if (!value)
		return;
	if (cJSON_GetObjectItemCaseSensitive(obj, key))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
	else
		cJSON_AddItemToObject(obj, key, value);
}

p11e_status p11e_journal_save(struct p11e_journal *j, p11e_state state, const char *note,
			      struct p11e_err *err)
{
	cJSON *history = cJSON_GetObjectItemCaseSensitive(j->doc, "history"), *line;
	char *text;
	p11e_status rc;

	if (!cJSON_IsArray(history)) {
		cJSON_DeleteItemFromObjectCaseSensitive(j->doc, "history");
		history = cJSON_AddArrayToObject(j->doc, "history");
	}
	line = cJSON_CreateObject();
	cJSON_AddNumberToObject(line, "at", (double)time(NULL));
	cJSON_AddStringToObject(line, "state", p11e_state_name(state));
	if (note)
		cJSON_AddStringToObject(line, "note", note);
	cJSON_AddItemToArray(history, line);
	while (cJSON_GetArraySize(history) > HISTORY_MAX)
		cJSON_DeleteItemFromArray(history, 0);
	replace(j->doc, "state", cJSON_CreateString(p11e_state_name(state)));
	replace(j->doc, "updated", cJSON_CreateNumber((double)time(NULL)));
	text = cJSON_Print(j->doc);
	if (!text)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = p11e_write_atomic(j->path, text, strlen(text), 0600, (uid_t)-1, (gid_t)-1, err);
	free(text);
	if (rc != P11E_OK)
		return rc;
	j->state = state;
	p11e_debug("[cert:%s] journal: %s%s%s", j->name, p11e_state_name(state), note ? " — " : "",
		   note ? note : "");
	p11e_fault_point(p11e_state_name(state));
	return P11E_OK;
}

void p11e_journal_close(struct p11e_journal *j)
{
	if (j->lock_fd >= 0)
		close(j->lock_fd); /* releases the flock */
	cJSON_Delete(j->doc);
	free(j->damage);
	free(j->path);
	free(j->name);
	memset(j, 0, sizeof(*j));
	j->lock_fd = -1;
}

const char *p11e_journal_str(const struct p11e_journal *j, const char *sect, const char *key)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j->doc, sect);

	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, key));
}

double p11e_journal_num(const struct p11e_journal *j, const char *sect, const char *key)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(j->doc, sect);
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

void p11e_journal_set_str(struct p11e_journal *j, const char *sect, const char *key, const char *value)
{
	cJSON *s = section(j, sect);

	if (!value)
		cJSON_DeleteItemFromObjectCaseSensitive(s, key);
	else
		replace(s, key, cJSON_CreateString(value));
}

void p11e_journal_set_num(struct p11e_journal *j, const char *sect, const char *key, double value)
{
	replace(section(j, sect), key, cJSON_CreateNumber(value));
}

void p11e_journal_clear(struct p11e_journal *j, const char *sect)
{
	cJSON_DeleteItemFromObjectCaseSensitive(j->doc, sect);
}

void p11e_journal_error(struct p11e_journal *j, const char *message, const char *ca_code)
{
	p11e_journal_clear(j, "last_error");
	if (!message)
		return;
	p11e_journal_set_num(j, "last_error", "at", (double)time(NULL));
	p11e_journal_set_str(j, "last_error", "message", message);
	if (ca_code && *ca_code)
		p11e_journal_set_str(j, "last_error", "ca_code", ca_code);
}
