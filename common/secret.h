/* SPDX-License-Identifier: Apache-2.0 */
/* Secrets (PINs, access keys, tokens) are read here and nowhere else. */
#ifndef P11E_SECRET_H
#define P11E_SECRET_H

#include "err.h"

/* Reads a secret as p11enroll.conf(5) lets one be named: "env:NAME", or a
 * file ("file:PATH" or a bare PATH) that must not be readable by group or
 * others. One trailing newline (and CR) is dropped. `what` names the setting
 * in messages ("access_key_file", "pin-source"); the secret never appears in
 * a message. The result is freed with p11e_secret_free. */
p11e_status p11e_secret_read(const char *spec, const char *what, char **out, struct p11e_err *err);

/* Checks only the permission rule (for `check`). */
p11e_status p11e_secret_check_file(const char *path, const char *what, struct p11e_err *err);

/* Wipes and frees. NULL is fine. */
void p11e_secret_free(char *secret);

#endif
