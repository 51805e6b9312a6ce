/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers every room uses: parsing of config values and safe files. */
#ifndef P11E_UTIL_H
#define P11E_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* "90s", "15m", "12h", "30d" (a bare number is seconds). -1 on error. */
int64_t p11e_parse_duration(const char *text);
/* yes/no/true/false/on/off/1/0. -1 on error. */
int p11e_parse_bool(const char *text);

/* A list of strings, split from "a, b, c". */
struct p11e_strlist {
	char **v;
	size_t n;
};
int p11e_strlist_split(struct p11e_strlist *list, const char *text, char sep);
int p11e_strlist_add(struct p11e_strlist *list, const char *item);
void p11e_strlist_free(struct p11e_strlist *list);

/* Writes `data` to `path` so that a reader sees the old or the new file,
 * never a mix: temporary file in the same folder, fsync, chmod/chown, rename,
 * fsync of the folder. uid/gid (uid_t)-1 keep the defaults. */
p11e_status p11e_write_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
			      gid_t gid, struct p11e_err *err);
/* mkdir -p with `mode` for folders it creates. */
p11e_status p11e_mkdirs(const char *path, mode_t mode, struct p11e_err *err);
/* Reads a whole file (limit bytes at most), NUL-terminated. On failure
 * errno says why: ENOENT no such file, EFBIG over the limit, ENOMEM. */
p11e_status p11e_read_file(const char *path, size_t limit, char **out, size_t *len,
			   struct p11e_err *err);

/* The contents of a memory BIO as a NUL-terminated malloc'd string, and
 * frees the BIO (NULL in, NULL out). */
struct bio_st;
char *p11e_bio_text(struct bio_st *bio);

/* Lower-case hex of `len` bytes into out (2*len+1). */
void p11e_hex(const unsigned char *in, size_t len, char *out);

#endif
