/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "secret.h"
#include "util.h"

Test(util, durations)
{
	cr_assert_eq(p11e_parse_duration("90s"), 90);
	cr_assert_eq(p11e_parse_duration("15m"), 900);
	cr_assert_eq(p11e_parse_duration("12h"), 43200);
	cr_assert_eq(p11e_parse_duration("30d"), 2592000);
	cr_assert_eq(p11e_parse_duration("42"), 42);
	cr_assert_eq(p11e_parse_duration("1w"), -1);
	cr_assert_eq(p11e_parse_duration("-5s"), -1);
	cr_assert_eq(p11e_parse_duration("5ss"), -1);
	cr_assert_eq(p11e_parse_duration(""), -1);
	cr_assert_eq(p11e_parse_duration("d"), -1);
	cr_assert_eq(p11e_parse_duration("99999999999999999999d"), -1);
}

Test(util, bools_and_lists)
{
	struct p11e_strlist l = { 0 };

	cr_assert_eq(p11e_parse_bool("yes"), 1);
	cr_assert_eq(p11e_parse_bool("Off"), 0);
	cr_assert_eq(p11e_parse_bool("maybe"), -1);
	cr_assert_eq(p11e_strlist_split(&l, " a.example.com ,b.example.com,, c ", ','), 0);
	cr_assert_eq(l.n, 3);
	cr_assert_str_eq(l.v[0], "a.example.com");
	cr_assert_str_eq(l.v[2], "c");
	p11e_strlist_free(&l);
}

static char *temp_file(const char *content, mode_t mode)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/p11e-secret.XXXXXX");
	fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	fchmod(fd, mode);
	close(fd);
	return path;
}

Test(secret, file_with_private_mode)
{
	char *path = temp_file("s3cret\n", 0600), *value = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_secret_read(path, "pin-source", &value, &err), P11E_OK, "%s", err.msg);
	cr_assert_str_eq(value, "s3cret");
	p11e_secret_free(value);
	unlink(path);
}

Test(secret, readable_by_others_is_refused_with_the_fix)
{
	char *path = temp_file("s3cret", 0644), *value = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_secret_read(path, "access_key_file", &value, &err), P11E_EUSAGE);
	cr_assert_null(value);
	cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
	cr_assert(strstr(err.msg, "access_key_file"), "%s", err.msg);
	cr_assert(!strstr(err.msg, "s3cret"), "the secret leaked: %s", err.msg);
	unlink(path);
	path = temp_file("s3cret", 0640);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_secret_read(path, "pin-source", &value, &err), P11E_EUSAGE);
	unlink(path);
}

Test(secret, env_and_missing)
{
	struct p11e_err err = { 0 };
	char *value = NULL;

	setenv("P11E_TEST_SECRET", "from-env", 1);
	cr_assert_eq(p11e_secret_read("env:P11E_TEST_SECRET", "x", &value, &err), P11E_OK);
	cr_assert_str_eq(value, "from-env");
	p11e_secret_free(value);
	cr_assert_eq(p11e_secret_read("env:P11E_NOT_SET_ANYWHERE", "x", &value, &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_secret_read("/nonexistent/pin", "x", &value, &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "/nonexistent/pin"));
}

Test(util, atomic_write_replaces_whole_files)
{
	char dir[] = "/tmp/p11e-atomic.XXXXXX", path[128], *data = NULL;
	struct p11e_err err = { 0 };
	struct stat st;

	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sub/dir/file.pem", dir);
	snprintf(dir + strlen(dir), 1, "%s", "");
	char folder[128];
	snprintf(folder, sizeof(folder), "%s/sub/dir", dir);
	cr_assert_eq(p11e_mkdirs(folder, 0755, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_write_atomic(path, "old", 3, 0640, (uid_t)-1, (gid_t)-1, &err), P11E_OK);
	cr_assert_eq(p11e_write_atomic(path, "new!", 4, 0644, (uid_t)-1, (gid_t)-1, &err), P11E_OK);
	cr_assert_eq(p11e_read_file(path, 100, &data, NULL, &err), P11E_OK);
	cr_assert_str_eq(data, "new!");
	free(data);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0644);
	/* No temporary file is left beside it. */
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) = 1", folder);
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	system(cmd);
}

/* p11e_read_file sizes its buffer by fstat: what it returns must not
 * depend on that size being right. */
Test(util, read_file_whatever_the_size_says)
{
	char dir[] = "/tmp/p11e-read.XXXXXX", path[128], big[5000], *data = NULL;
	struct p11e_err err = { 0 };
	size_t len = 0;
	FILE *f;

	cr_assert(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing", dir);
	cr_assert_eq(p11e_read_file(path, 100, &data, &len, &err), P11E_EFAIL);
	cr_assert_eq(errno, ENOENT);
	cr_assert(strstr(err.msg, "cannot open") && strstr(err.msg, path), "%s", err.msg);
	cr_assert_null(data);

	/* exactly the limit, then one byte over it */
	memset(big, 'x', sizeof(big));
	snprintf(path, sizeof(path), "%s/big", dir);
	f = fopen(path, "w");
	cr_assert(f);
	fwrite(big, 1, 4097, f);
	fclose(f);
	err = (struct p11e_err){ 0 };
	cr_assert_eq(p11e_read_file(path, 4097, &data, &len, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(len, 4097);
	cr_assert_eq(data[4097], '\0');
	free(data);
	data = NULL;
	cr_assert_eq(p11e_read_file(path, 4096, &data, &len, &err), P11E_EFAIL);
	cr_assert_eq(errno, EFBIG);
	cr_assert(strstr(err.msg, "larger than 4096 bytes"), "%s", err.msg);

	/* /proc says 0 bytes and has more: the buffer grows */
	err = (struct p11e_err){ 0 };
	cr_assert_eq(p11e_read_file("/proc/self/status", 1 << 20, &data, &len, &err), P11E_OK, "%s",
		     err.msg);
	cr_assert_gt(len, 100);
	cr_assert_eq(strlen(data), len);
	cr_assert(strstr(data, "VmRSS") || strstr(data, "Name:"));
	free(data);
	/* and over the limit there too */
	data = NULL;
	cr_assert_eq(p11e_read_file("/proc/self/status", 64, &data, &len, &err), P11E_EFAIL);
	cr_assert_eq(errno, EFBIG);
	snprintf(big, sizeof(big), "rm -rf %s", dir);
	system(big);
}

/* Strings packed into blocks: each copy stays intact across block
 * boundaries, and one larger than a block gets a block of its own without
 * ending the one being filled. */
Test(util, arena_keeps_every_string)
{
	struct p11e_arena *arena = NULL;
	char *copies[3000], name[32], *big = malloc(100000);
	const char *before_big, *after_big;

	cr_assert(big);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "string-%d-%s", i, i % 7 ? "x" : "longer-value");
		copies[i] = p11e_arena_strdup(&arena, name);
		cr_assert(copies[i]);
	}
	before_big = p11e_arena_strdup(&arena, "before");
	memset(big, 'b', 99999);
	big[99999] = '\0';
	cr_assert_eq(strlen(p11e_arena_strdup(&arena, big)), 99999);
	after_big = p11e_arena_strdup(&arena, "after");
	/* the small ones go on in the block "before" is in */
	cr_assert_eq(after_big, before_big + strlen("before") + 1);
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "string-%d-%s", i, i % 7 ? "x" : "longer-value");
		cr_assert_str_eq(copies[i], name);
	}
	cr_assert_str_eq(p11e_arena_strdup(&arena, ""), "");
	p11e_arena_free(arena);
	free(big);
}
