/* SPDX-License-Identifier: Apache-2.0 */
/* SIGTERM and SIGINT as a request to stop that every long wait honours
 * (poll sleeps, HTTP transfers, hooks), with a watchdog that ends the
 * process anyway shortly after: the journal makes an interruption at any
 * point safe, so a stop never waits for a CA or a token. */
#ifndef P11E_STOP_H
#define P11E_STOP_H

#include <stdbool.h>
#include <sys/types.h>

/* Seconds between the first stop signal and the watchdog's _exit. */
#define P11E_STOP_GRACE_MS 1500

/* Installs the handlers (no SA_RESTART, so blocking calls return EINTR).
 * `exit_code` is what the watchdog, or a second signal, exits with; -1
 * means 128 + the signal number. */
int p11e_stop_init(int exit_code);
/* The signal that asked to stop, 0 when none. Async-signal-safe. */
int p11e_stop_requested(void);
/* Readable once a stop was requested (for poll()); -1 before init. */
int p11e_stop_fd(void);
/* Sleeps `ms` milliseconds or until a stop request; false when stopped. */
bool p11e_stop_sleep_ms(long long ms);
/* The process group of a running hook, killed if the watchdog fires. */
void p11e_stop_set_child_group(pid_t pgid);
/* In a child made by fork() that goes on with p11enroll work: a stop pipe
 * of its own (the inherited one is shared with the parent, whose waits
 * would otherwise wake on the child's signal) and no watchdog pending. */
int p11e_stop_after_fork(void);

#endif
