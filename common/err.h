/* SPDX-License-Identifier: Apache-2.0 */
/* One error record passed down every call chain: a code the caller can switch
 * on and a message meant for the operator (what went wrong and the fix). */
#ifndef P11E_ERR_H
#define P11E_ERR_H

#include <stddef.h>

/* Process exit codes (p11enroll(1), EXIT STATUS); rooms report one of these so the
 * command line never has to guess. */
typedef enum {
	P11E_OK = 0,
	P11E_EFAIL = 1,     /* generic failure */
	P11E_EUSAGE = 2,    /* usage or configuration error, key type outside policy */
	P11E_EPENDING = 3,  /* order placed, not yet issued */
	P11E_EREJECTED = 4, /* the CA refused */
	P11E_ETOKEN = 5,    /* token/HSM error */
} p11e_status;

struct p11e_err {
	p11e_status status;
	char msg[1536];
};

/* Records the first error only: deeper layers say what happened, callers
 * may add context with p11e_err_prefix. Returns status for `return` chains. */
p11e_status p11e_err_set(struct p11e_err *err, p11e_status status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepends "context: " to an already set message. */
void p11e_err_prefix(struct p11e_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the queued OpenSSL error strings (and clears the queue). */
void p11e_err_add_openssl(struct p11e_err *err);
void p11e_err_clear(struct p11e_err *err);

#endif
