/* SPDX-License-Identifier: Apache-2.0 */
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_sig, child_group;
static int exit_code = -1;
static int pipe_fd[2] = { -1, -1 };

static void bail(int sig)
{
	if (child_group > 0)
		kill(-(pid_t)child_group, SIGKILL);
	_exit(exit_code >= 0 ? exit_code : 128 + sig);
}

static void on_alarm(int sig)
{
	(void)sig;
	bail(stop_sig ? stop_sig : SIGTERM);
}

static void on_stop(int sig)
{
	int saved = errno;
	struct itimerval grace = { .it_value = { P11E_STOP_GRACE_MS / 1000,
						 (P11E_STOP_GRACE_MS % 1000) * 1000 } };

	/* A second request does not wait for anything. */
	if (stop_sig)
		bail(sig);
	stop_sig = sig;
	setitimer(ITIMER_REAL, &grace, NULL);
	if (pipe_fd[1] >= 0 && write(pipe_fd[1], "x", 1) < 0) {
		/* full: the fd is readable anyway */
	}
	errno = saved;
}

int p11e_stop_init(int code)
{
	struct sigaction sa;

	exit_code = code;
	if (pipe_fd[0] < 0 && pipe2(pipe_fd, O_CLOEXEC | O_NONBLOCK) != 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_alarm;
	if (sigaction(SIGALRM, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_stop;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	return 0;
}

int p11e_stop_after_fork(void)
{
	struct itimerval off = { 0 };

	setitimer(ITIMER_REAL, &off, NULL);
	child_group = 0;
	if (pipe_fd[0] >= 0) {
		close(pipe_fd[0]);
		close(pipe_fd[1]);
		pipe_fd[0] = pipe_fd[1] = -1;
	}
	return pipe2(pipe_fd, O_CLOEXEC | O_NONBLOCK);
}

int p11e_stop_requested(void)
{
	return stop_sig;
}

int p11e_stop_fd(void)
{
	return pipe_fd[0];
}

void p11e_stop_set_child_group(pid_t pgid)
{
	child_group = pgid;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool p11e_stop_sleep_ms(long long ms)
{
	long long end = mono_ms() + (ms > 0 ? ms : 0);

	for (;;) {
		long long left = end - mono_ms();

		if (stop_sig)
			return false;
		if (left <= 0)
			return true;
		if (pipe_fd[0] >= 0) {
			struct pollfd pfd = { .fd = pipe_fd[0], .events = POLLIN };

			/* The fd stays readable: nothing is drained, every waiter sees it. */
			poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		} else {
			struct timespec ts = { .tv_sec = left / 1000,
					       .tv_nsec = (left % 1000) * 1000000 };

			nanosleep(&ts, NULL);
		}
	}
}
