/* SPDX-License-Identifier: Apache-2.0 */
/* common/hook.c: exit statuses, the exact environment, the time limit that
 * kills the whole process group, and an early end on a stop request. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hook.h"
#include "stop.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs `script` through /bin/sh with only PATH and MARK in its environment. */
static int run_sh(const char *script, int64_t timeout, char *why, size_t len)
{
	char *const argv[] = { "sh", "-c", (char *)script, NULL };
	char *const envp[] = { "PATH=/usr/bin:/bin", "MARK=hook-test", NULL };
	const struct p11e_hook hook = {
		.what = "test hook", .path = "/bin/sh", .argv = argv, .envp = envp, .timeout = timeout
	};

	return p11e_hook_run(&hook, why, len);
}

Test(hook, exit_status)
{
	char why[512] = "";

	cr_assert_eq(run_sh("exit 0", 10, why, sizeof(why)), 0);
	cr_assert_eq(run_sh("exit 7", 10, why, sizeof(why)), -1);
	cr_assert_str_eq(why, "test hook exited with status 7");
	cr_assert_eq(run_sh("kill -USR1 $$", 10, why, sizeof(why)), -1);
	cr_assert(strstr(why, "killed by signal") != NULL, "%s", why);
}

Test(hook, only_the_given_environment)
{
	char why[512] = "", path[] = "/tmp/p11e-hook-env.XXXXXX", script[256], buf[4096] = "";
	int fd = mkstemp(path);
	FILE *f;

	cr_assert(fd >= 0);
	close(fd);
	setenv("P11E_SECRET_FOR_TEST", "do-not-leak", 1);
	snprintf(script, sizeof(script), "env >%s", path);
	cr_assert_eq(run_sh(script, 10, why, sizeof(why)), 0, "%s", why);
	f = fopen(path, "r");
	cr_assert(f != NULL);
	buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
	fclose(f);
	unlink(path);
	cr_assert(strstr(buf, "MARK=hook-test") != NULL, "%s", buf);
	cr_assert(strstr(buf, "do-not-leak") == NULL, "%s", buf);
}

Test(hook, time_limit_kills_the_group)
{
	char why[512] = "", path[] = "/tmp/p11e-hook-pid.XXXXXX", script[256], buf[32] = "";
	int fd = mkstemp(path);
	double t = now_s();
	pid_t child;
	FILE *f;

	cr_assert(fd >= 0);
	close(fd);
	/* A grandchild that ignores SIGTERM: only SIGKILL of the group ends it. */
	snprintf(script, sizeof(script), "trap '' TERM; sleep 60 & echo $! >%s; wait", path);
	cr_assert_eq(run_sh(script, 1, why, sizeof(why)), -1);
	t = now_s() - t;
	cr_assert(t >= 0.9 && t < 4.0, "took %.2fs", t);
	cr_assert_str_eq(why, "test hook did not finish within 1s (hook_timeout); killed it and its "
			      "process group");
	f = fopen(path, "r");
	cr_assert(f != NULL);
	cr_assert(fgets(buf, sizeof(buf), f) != NULL);
	fclose(f);
	unlink(path);
	child = (pid_t)atol(buf);
	cr_assert(child > 1);
	/* Gone, or a zombie waiting for a PID 1 that may not reap it. */
	usleep(200 * 1000);
	if (kill(child, 0) == 0) {
		char stat_path[64], stat[256] = "";
		FILE *s;

		snprintf(stat_path, sizeof(stat_path), "/proc/%ld/stat", (long)child);
		s = fopen(stat_path, "r");
		if (s) {
			cr_assert(fgets(stat, sizeof(stat), s) != NULL);
			fclose(s);
			cr_assert(strstr(stat, ") Z ") != NULL, "the grandchild survived: %s", stat);
		}
	}
}

Test(hook, default_time_limit)
{
	cr_assert_eq(p11e_hook_timeout(), P11E_HOOK_TIMEOUT_DEFAULT);
	p11e_hook_set_timeout(42);
	cr_assert_eq(p11e_hook_timeout(), 42);
	p11e_hook_set_timeout(0);
	cr_assert_eq(p11e_hook_timeout(), P11E_HOOK_TIMEOUT_DEFAULT);
}

Test(hook, stop_request_ends_it)
{
	char why[512] = "";
	double t;

	cr_assert_eq(p11e_stop_init(0), 0);
	cr_assert_eq(p11e_stop_requested(), 0);
	/* The signal arrives while the hook runs; the watchdog is then armed
	 * for 1.5 s, so everything below must be quick. */
	if (fork() == 0) {
		usleep(300 * 1000);
		kill(getppid(), SIGTERM);
		_exit(0);
	}
	t = now_s();
	cr_assert_eq(run_sh("sleep 30", 60, why, sizeof(why)), -1);
	t = now_s() - t;
	cr_assert_eq(p11e_stop_requested(), SIGTERM);
	cr_assert(t < 1.2, "took %.2fs", t);
	cr_assert_str_eq(why, "test hook stopped: p11enroll was asked to stop");
	cr_assert_eq(p11e_stop_sleep_ms(5000), false);
	/* Disarm the watchdog: the test is over, Criterion reports it. */
	setitimer(ITIMER_REAL, &(struct itimerval){ 0 }, NULL);
}
