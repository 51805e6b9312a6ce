/* SPDX-License-Identifier: Apache-2.0 */
/* One JSON journal per certificate in state_dir: where its enrolment
 * stands, written before every side effect it guards, so that a run that
 * finds it half-way resumes without a second key for a submitted CSR, a
 * second paid order, or a lost order number. */
#ifndef P11E_JOURNAL_H
#define P11E_JOURNAL_H

#include <stdbool.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "err.h"

/* States in the order an enrolment passes them. The restart rule of each
 * (what a run that finds it does) is in docs/architecture.md and enroll.c. */
typedef enum {
	P11E_ST_NEW,            /* nothing yet */
	P11E_ST_KEY_GENERATING, /* intent: a key is being made (restart: look for it by label first) */
	P11E_ST_KEY_READY,      /* key.id recorded */
	P11E_ST_CSR_READY,      /* csr recorded for that key */
	P11E_ST_ORDER_PLACING, /* intent: order.idempotency_id recorded (restart: reconcile, never place blindly) */
	P11E_ST_ORDER_UNKNOWN, /* the placement's outcome is unknown (restart: reconcile) */
	P11E_ST_ORDER_PENDING, /* order ids recorded (restart: poll) */
	P11E_ST_CERT_ISSUED,   /* leaf + chain recorded (restart: verify, install) */
	P11E_ST_INSTALLING,    /* intent: files/objects being written (restart: write again) */
	P11E_ST_INSTALLED,     /* written; post_install to run */
	P11E_ST_MONITORING,    /* done; watching the expiry */
	P11E_ST_REJECTED, /* the CA refused: operator action, the next enroll starts a new order */
	P11E_ST_VERIFY_FAILED, /* the issued certificate failed verification: nothing installed */
} p11e_state;

const char *p11e_state_name(p11e_state state);
int p11e_state_parse(const char *name);

struct p11e_journal {
	char *path;
	char *name;
	int lock_fd;
	p11e_state state;
	cJSON *doc;   /* the whole record; sections "key", "csr", "order", "cert", … */
	char *damage; /* why an existing file was refused (NULL: it was not) */
};

/* Locks and reads state_dir/NAME.json (a new record when absent). A file
 * that is not the JSON p11enroll writes (not JSON, a member of the wrong
 * type, an unknown state, a newer version, a state without the member its
 * next step reads: docs/architecture.md) is refused, naming the file and
 * what is wrong, before anything else happens. Waits up
 * to `lock_wait` seconds for another p11enroll working on NAME, then fails
 * naming its pid. */
p11e_status p11e_journal_open(const char *state_dir, const char *name, int lock_wait,
			      struct p11e_journal *j, struct p11e_err *err);
/* Reads without locking (status); *found=false when there is none. A
 * refused file gives found=true, an error and j->damage. */
p11e_status p11e_journal_peek(const char *state_dir, const char *name, struct p11e_journal *j,
			      bool *found, struct p11e_err *err);
/* Moves to `state`, adds a history line and writes the file atomically
 * (temporary file, fsync, rename, fsync of the folder), mode 0600. Then
 * honours the test fault hook for that state. */
p11e_status p11e_journal_save(struct p11e_journal *j, p11e_state state, const char *note,
			      struct p11e_err *err);
void p11e_journal_close(struct p11e_journal *j);

/* Section members ("order", "order_id"); NULL/0 when absent. */
const char *p11e_journal_str(const struct p11e_journal *j, const char *section, const char *key);
double p11e_journal_num(const struct p11e_journal *j, const char *section, const char *key);
void p11e_journal_set_str(struct p11e_journal *j, const char *section, const char *key,
			  const char *value);
void p11e_journal_set_num(struct p11e_journal *j, const char *section, const char *key, double value);
/* Drops a whole section. */
void p11e_journal_clear(struct p11e_journal *j, const char *section);
/* Records the last error (message, CA code) without changing the state. */
void p11e_journal_error(struct p11e_journal *j, const char *message, const char *ca_code);

/* Testing aid: P11ENROLL_FAULT=STEP kills the process with SIGKILL right
 * after STEP (a state name, or one of the extra steps of enroll.c). */
void p11e_fault_point(const char *step);

#endif
