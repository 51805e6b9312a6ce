/* SPDX-License-Identifier: Apache-2.0 */
/* Runs an operator's hook (post_install, dcv_hook): a clean environment
 * given by the caller (never a secret), its own process group, a time
 * limit after which the whole group is killed, and an early end when
 * p11enroll is asked to stop. */
#ifndef P11E_HOOK_H
#define P11E_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* [agent] hook_timeout: the limit of a hook that names none (seconds). */
#define P11E_HOOK_TIMEOUT_DEFAULT 300
void p11e_hook_set_timeout(int64_t seconds);
int64_t p11e_hook_timeout(void);

struct p11e_hook {
	const char *what; /* "post_install", for messages */
	const char *path; /* executable (argv[0] is run from here) */
	char *const *argv;
	char *const *envp;
	int64_t timeout;       /* seconds; <= 0: p11e_hook_timeout() */
	bool stdout_to_stderr; /* keep our stdout for results */
};

/* 0 when the hook exited 0. Otherwise -1 and `why` says what happened:
 * exit status, signal, killed after the time limit, or stopped. */
int p11e_hook_run(const struct p11e_hook *hook, char *why, size_t why_size);

#endif
