/* SPDX-License-Identifier: Apache-2.0 */
/* The hash index and the order-rate limiter (providers/ratelimit.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ratelimit.h"
#include "strindex.h"

static char names[5000][16];

static const char *name_at(const void *ctx, size_t i)
{
	(void)ctx;
	return names[i];
}

Test(strindex, finds_every_name_and_no_other)
{
	struct p11e_strindex x = { 0 };

	for (size_t i = 0; i < 5000; i++) {
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		cr_assert_eq(p11e_strindex_add(&x, i, name_at, NULL), 0);
	}
	for (size_t i = 0; i < 5000; i++)
		cr_assert_eq(p11e_strindex_find(&x, names[i], name_at, NULL), i);
	cr_assert_eq(p11e_strindex_find(&x, "c5000", name_at, NULL), (size_t)-1);
	cr_assert_eq(p11e_strindex_find(&x, "", name_at, NULL), (size_t)-1);
	cr_assert_leq(x.n * 2, x.cap);
	p11e_strindex_clear(&x);
	cr_assert_eq(p11e_strindex_find(&x, "c1", name_at, NULL), (size_t)-1);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/p11e-rate.XXXXXX";
	char *d = mkdtemp(tmpl);

	cr_assert_not_null(d);
	return strdup(d);
}

static void rm_dir(char *dir)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/.order-rate-certinext-1", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.order-rate-certinext-2", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/.order-rate-acct", dir);
	unlink(path);
	rmdir(dir);
	free(dir);
}

Test(ratelimit, n_at_once_then_the_window)
{
	struct p11e_err err = { 0 };
	char *dir = tmpdir();
	double t0 = mono();

	for (int i = 0; i < 3; i++)
		cr_assert_eq(p11e_ratelimit_take(dir, "certinext-1", 3, 1, &err), P11E_OK, "%s",
			     err.msg);
	cr_assert_lt(mono() - t0, 0.5, "the first N do not wait");
	/* the 4th waits for the first to leave the window (1 s + 0.5 s slack) */
	cr_assert_eq(p11e_ratelimit_take(dir, "certinext-1", 3, 1, &err), P11E_OK);
	cr_assert_geq(mono() - t0, 1.4);
	/* another account has its own window */
	t0 = mono();
	cr_assert_eq(p11e_ratelimit_take(dir, "certinext-2", 3, 1, &err), P11E_OK);
	cr_assert_lt(mono() - t0, 0.5);
	/* the file holds at most N times */
	{
		char path[512], line[64];
		FILE *f;
		int lines = 0;

		snprintf(path, sizeof(path), "%s/.order-rate-certinext-1", dir);
		f = fopen(path, "r");
		cr_assert_not_null(f);
		while (fgets(line, sizeof(line), f))
			lines++;
		fclose(f);
		cr_assert_leq(lines, 3);
	}
	/* no limit: never waits, no file */
	cr_assert_eq(p11e_ratelimit_take(dir, "sslstore/x", 0, 0, &err), P11E_OK);
	rm_dir(dir);
}

Test(ratelimit, shared_between_processes)
{
	struct p11e_err err = { 0 };
	char *dir = tmpdir();
	double t0 = mono();
	pid_t pid;
	int st;

	/* two processes, 2 each, a limit of 2 per second: the last ones wait */
	pid = fork();
	cr_assert_geq(pid, 0);
	for (int i = 0; i < 2; i++)
		p11e_ratelimit_take(dir, "acct", 2, 1, &err);
	if (pid == 0)
		_exit(0);
	waitpid(pid, &st, 0);
	cr_assert_geq(mono() - t0, 1.4, "4 placements at 2 per second took %.2fs", mono() - t0);
	rm_dir(dir);
}
