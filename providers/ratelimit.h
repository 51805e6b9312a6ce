/* SPDX-License-Identifier: Apache-2.0 */
/* A client-side limit on order placements per CA account, shared by every
 * p11enroll process on the host (worker processes of `enroll --all`, the
 * agent, a timer run): a sliding window of the last N placement times in
 * a file under state_dir, read and written under flock. */
#ifndef P11E_RATELIMIT_H
#define P11E_RATELIMIT_H

#include <stdint.h>

#include "err.h"

/* Waits until one more placement fits in `n` per `window` seconds for
 * `account` (any text; it is reduced to a file name), then records it.
 * n == 0: no limit. P11E_EPENDING when a stop request ends the wait. */
p11e_status p11e_ratelimit_take(const char *dir, const char *account, unsigned n, int64_t window,
				struct p11e_err *err);

#endif
