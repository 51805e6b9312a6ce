/* SPDX-License-Identifier: Apache-2.0 */
#include "hook.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stop.h"

/* After SIGTERM to the group, this long before SIGKILL. */
#define KILL_GRACE_MS 1000
#define POLL_MS 50

static int64_t default_timeout = P11E_HOOK_TIMEOUT_DEFAULT;

void p11e_hook_set_timeout(int64_t seconds)
{
	default_timeout = seconds > 0 ? seconds : P11E_HOOK_TIMEOUT_DEFAULT;
}

int64_t p11e_hook_timeout(void)
{
	return default_timeout;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SIGTERM to the whole group, SIGKILL after a grace; reaps the leader. */
static void kill_group(pid_t pid, int *status, long long grace_ms)
{
	long long end = mono_ms() + grace_ms;

	kill(-pid, SIGTERM);
	while (waitpid(pid, status, WNOHANG) == 0) {
		if (mono_ms() >= end) {
			kill(-pid, SIGKILL);
			while (waitpid(pid, status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		usleep(POLL_MS * 1000);
	}
	/* The leader is gone; stragglers of its group go too. */
	kill(-pid, SIGKILL);
}

int p11e_hook_run(const struct p11e_hook *hook, char *why, size_t why_size)
{
	int64_t limit = hook->timeout > 0 ? hook->timeout : default_timeout;
	long long deadline = mono_ms() + limit * 1000;
	int status = 0;
	pid_t pid, done;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(why, why_size, "cannot start %s: %s", hook->what, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		sigset_t none;

		/* Its own group, so that a time-out kills what it started too. */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGALRM, SIG_DFL);
		if (hook->stdout_to_stderr)
			dup2(STDERR_FILENO, STDOUT_FILENO);
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execve(hook->path, hook->argv, hook->envp);
		_exit(127);
	}
	setpgid(pid, pid); /* either of the two calls wins the race */
	p11e_stop_set_child_group(pid);
	while ((done = waitpid(pid, &status, WNOHANG)) == 0) {
		if (p11e_stop_requested()) {
			kill_group(pid, &status, KILL_GRACE_MS / 2);
			snprintf(why, why_size, "%s stopped: p11enroll was asked to stop", hook->what);
			goto fail;
		}
		if (mono_ms() >= deadline) {
			kill_group(pid, &status, KILL_GRACE_MS);
			snprintf(why, why_size,
				 "%s did not finish within %llds (hook_timeout); killed it and "
				 "its process group",
				 hook->what, (long long)limit);
			goto fail;
		}
		p11e_stop_sleep_ms(POLL_MS);
	}
	if (done < 0) {
		snprintf(why, why_size, "lost %s: %s", hook->what, strerror(errno));
		goto fail;
	}
	p11e_stop_set_child_group(0);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(why, why_size, "%s exited with status %d", hook->what, WEXITSTATUS(status));
	else
		snprintf(why, why_size, "%s was killed by signal %d", hook->what,
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return -1;
fail:
	p11e_stop_set_child_group(0);
	return -1;
}
