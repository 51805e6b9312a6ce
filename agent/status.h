/* SPDX-License-Identifier: Apache-2.0 */
/* Where each certificate stands, read from its journal without locking:
 * the one view behind `status` (text, JSON) and the Prometheus textfile
 * that `status` and `agent` write. */
#ifndef P11E_STATUS_H
#define P11E_STATUS_H

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "journal.h"

/* Below this many seconds before notAfter a certificate needs attention.
 * So does every certificate that is not installed and valid (status.c). */
#define P11E_STATUS_EXPIRY_ALARM 86400

struct p11e_cert_status {
	const struct p11e_cert_conf *cert;
	char *strings; /* owns the strings below: the journal is not kept */
	bool found;    /* a journal exists */
	bool damaged;  /* it exists but was refused (journal.h) */
	p11e_state state;
	const char *ca, *ca_type;
	const char *issued_by; /* the CA of the installed certificate, NULL when none */
	bool on_fallback;      /* issued_by is the certificate's fallback_ca */
	const char *order_id, *request_id, *order_status;
	const char *serial, *key_type;
	time_t not_after;    /* 0: no certificate */
	time_t installed_at; /* 0: never installed */
	time_t last_error_at;
	const char *last_error, *last_error_code;
	time_t revoked_at; /* 0: not revoked */
	const char *revocation_reason, *revocation_message;
	const char *dcv_instructions; /* what the operator must publish, when pending */
	const char *next_action;      /* enroll resume reconcile poll renew retry */
	time_t next_at;
	const char *problem;      /* NULL when healthy: why it needs attention */
	const char *problem_code; /* its short word (p11enroll(1) STATUS JSON) */
	char problem_buf[320];
};

/* Reads the journal of `cert` and works out the rest as of `now`. */
void p11e_status_read(const struct p11e_config *cfg, const struct p11e_cert_conf *cert, time_t now,
		      struct p11e_cert_status *st);
void p11e_status_release(struct p11e_cert_status *st);

/* Prints the documented JSON document of p11enroll(1) for n certificates
 * (as cJSON_Print would, and a newline), building one certificate's part
 * at a time. false: out of memory or a write error. */
bool p11e_status_json_print(FILE *out, const struct p11e_cert_status *st, size_t n, time_t now);

/* The node_exporter textfile (HELP/TYPE lines included); free(). */
char *p11e_status_prometheus(const struct p11e_cert_status *st, size_t n, time_t now);
/* Reads every certificate of cfg and writes that text to `path` atomically
 * (mode 0644). */
p11e_status p11e_status_write_prometheus(const struct p11e_config *cfg, const char *path,
					 struct p11e_err *err);

#endif
