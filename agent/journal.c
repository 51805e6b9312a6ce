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
#include "util.h"

#define JOURNAL_VERSION 1
#define JOURNAL_MAX (8u << 20)
#define HISTORY_MAX 30

static const char *const state_names[] = {
	"new", "key-generating", "key-ready", "csr-ready", "order-placing", "order-unknown",
	"order-pending", "cert-issued", "installing", "installed", "monitoring", "rejected",
	"verify-failed",
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
			return p11e_err_set(err, P11E_EFAIL, "cannot lock %s: %s", path, strerror(errno));
		if (waited_ms >= wait_s * 1000) {
			ssize_t n = pread(j->lock_fd, pid, sizeof(pid) - 1, 0);

			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			return p11e_err_set(err, P11E_EFAIL,
					    "another p11enroll (pid %s) is working on [cert:%s]; "
					    "try again when it is done",
					    *pid ? pid : "?", j->name);
		}
		usleep(100 * 1000);
		waited_ms += 100;
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(j->lock_fd, 0) == 0 && pwrite(j->lock_fd, pid, strlen(pid), 0) < 0)
		p11e_debug("cannot note the pid in %s", path);
	return P11E_OK;
}

static p11e_status load(struct p11e_journal *j, bool *found, struct p11e_err *err)
{
	char *text = NULL;
	const cJSON *state;
	p11e_status rc;
	int s;

	*found = false;
	if (access(j->path, F_OK) != 0) {
		j->doc = cJSON_CreateObject();
		cJSON_AddNumberToObject(j->doc, "version", JOURNAL_VERSION);
		cJSON_AddStringToObject(j->doc, "name", j->name);
		cJSON_AddStringToObject(j->doc, "state", p11e_state_name(P11E_ST_NEW));
		j->state = P11E_ST_NEW;
		return j->doc ? P11E_OK : p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	rc = p11e_read_file(j->path, JOURNAL_MAX, &text, NULL, err);
	if (rc != P11E_OK)
		return rc;
	j->doc = cJSON_Parse(text);
	free(text);
	state = cJSON_GetObjectItemCaseSensitive(j->doc, "state");
	s = p11e_state_parse(cJSON_GetStringValue(state));
	if (!j->doc || s < 0)
		return p11e_err_set(err, P11E_EFAIL,
				    "journal %s is damaged (not the JSON p11enroll writes); move it "
				    "aside after checking the CA for an order of [cert:%s]",
				    j->path, j->name);
	j->state = (p11e_state)s;
	*found = true;
	return P11E_OK;
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

void p11e_journal_set_str(struct p11e_journal *j, const char *sect, const char *key,
			  const char *value)
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
