/* SPDX-License-Identifier: Apache-2.0 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>

int64_t p11e_parse_duration(const char *text)
{
	char *end;
	long long value;
	int64_t unit = 1;

	if (!text || !isdigit((unsigned char)*text))
		return -1;
	errno = 0;
	value = strtoll(text, &end, 10);
	if (errno != 0 || end == text)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return -1;
	}
	if (*end && end[1] != '\0')
		return -1;
	if (value > INT64_MAX / unit)
		return -1;
	return (int64_t)value * unit;
}

int p11e_parse_bool(const char *text)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(text, yes[i]) == 0)
			return 1;
		if (strcasecmp(text, no[i]) == 0)
			return 0;
	}
	return -1;
}

int p11e_strlist_add(struct p11e_strlist *list, const char *item)
{
	char **v = realloc(list->v, (list->n + 2) * sizeof(*v));

	if (!v)
		return -1;
	list->v = v;
	v[list->n] = strdup(item);
	if (!v[list->n])
		return -1;
	v[++list->n] = NULL;
	return 0;
}

int p11e_strlist_split(struct p11e_strlist *list, const char *text, char sep)
{
	const char *p = text;

	while (*p) {
		const char *end = strchr(p, sep);
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *item;
		int rc;

		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len > 0) {
			item = strndup(p, len);
			if (!item)
				return -1;
			rc = p11e_strlist_add(list, item);
			free(item);
			if (rc != 0)
				return -1;
		}
		if (!end)
			break;
		p = end + 1;
	}
	return 0;
}

void p11e_strlist_free(struct p11e_strlist *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->v[i]);
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

static p11e_status fsync_dir_of(const char *path, struct p11e_err *err)
{
	char *copy = strdup(path);
	p11e_status rc = P11E_OK;
	int fd;

	if (!copy)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		rc = p11e_err_set(err, P11E_EFAIL, "cannot sync the folder of %s: %s", path,
				  strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

p11e_status p11e_write_atomic(const char *path, const void *data, size_t len, mode_t mode, uid_t uid,
			      gid_t gid, struct p11e_err *err)
{
	p11e_status rc = P11E_OK;
	char tmp[PATH_MAX];
	const char *p = data;
	int fd = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return p11e_err_set(err, P11E_EFAIL, "path too long: %s", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return p11e_err_set(err, P11E_EFAIL, "cannot create a temporary file beside %s: %s",
				    path, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = p11e_err_set(err, P11E_EFAIL, "cannot write %s: %s", tmp,
					  strerror(errno));
			goto out;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fchmod(fd, mode) != 0 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) != 0)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot set owner/mode of %s: %s", path,
				  strerror(errno));
		goto out;
	}
	if (fsync(fd) != 0) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot sync %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot rename %s to %s: %s", tmp, path,
				  strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	rc = fsync_dir_of(path, err);
out:
	if (fd >= 0)
		close(fd);
	if (tmp[0])
		unlink(tmp);
	return rc;
}

p11e_status p11e_mkdirs(const char *path, mode_t mode, struct p11e_err *err)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return p11e_err_set(err, P11E_EFAIL, "bad folder path '%s'", path);
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;

			*p = '\0';
			if (mkdir(buf, mode) != 0 && errno != EEXIST)
				return p11e_err_set(err, P11E_EFAIL, "cannot create folder %s: %s",
						    buf, strerror(errno));
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	return P11E_OK;
}

/* Sized by fstat, so the usual file is one read into a buffer of its own
 * size (an 8 MB limit must not mean an 8 MB allocation per journal); the
 * buffer grows if the file does meanwhile, up to limit + 1 to see it is too
 * large. On failure errno is that of the call that failed (ENOENT: no file;
 * EFBIG: over the limit). */
static p11e_status read_fd(int fd, const char *path, size_t limit, char **out, size_t *len,
			   struct p11e_err *err)
{
	struct stat sb;
	size_t cap = 4096, n = 0;
	char *buf, *bigger;
	ssize_t got;
	int why = ENOMEM;

	/* + 1: an unchanged file ends with a read of 0, without a grow. Files
	 * of /proc and pipes say 0 and get the default. */
	if (fstat(fd, &sb) == 0 && sb.st_size > 0 && (unsigned long long)sb.st_size < limit)
		cap = (size_t)sb.st_size + 1;
	if (cap > limit)
		cap = limit + 1; /* a full buffer then means "too large" */
	buf = malloc(cap + 1);
	if (!buf)
		goto fail;
	for (;;) {
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			why = got < 0 ? errno : 0;
			break;
		}
		n += (size_t)got;
		if (n < cap)
			continue;
		why = EFBIG;
		if (n > limit)
			goto fail;
		cap = cap > limit / 2 ? limit + 1 : cap * 2;
		why = ENOMEM;
		bigger = realloc(buf, cap + 1);
		if (!bigger)
			goto fail;
		buf = bigger;
	}
	if (why)
		goto fail;
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return P11E_OK;
fail:
	free(buf);
	if (why == ENOMEM)
		p11e_err_set(err, P11E_EFAIL, "out of memory");
	else if (why == EFBIG)
		p11e_err_set(err, P11E_EFAIL, "%s is larger than %zu bytes", path, limit);
	else
		p11e_err_set(err, P11E_EFAIL, "cannot read %s: %s", path, strerror(why));
	errno = why;
	return P11E_EFAIL;
}

p11e_status p11e_read_file(const char *path, size_t limit, char **out, size_t *len,
			   struct p11e_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), saved;
	p11e_status rc;

	if (fd < 0) {
		saved = errno;
		p11e_err_set(err, P11E_EFAIL, "cannot open %s: %s", path, strerror(saved));
		errno = saved;
		return P11E_EFAIL;
	}
	rc = read_fd(fd, path, limit, out, len, err);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

char *p11e_bio_text(BIO *bio)
{
	char *data = NULL, *copy = NULL;
	long len;

	if (!bio)
		return NULL;
	len = BIO_get_mem_data(bio, &data);
	copy = malloc((size_t)len + 1);
	if (copy) {
		if (len > 0) /* an empty BIO has no data pointer (a chain of no CA certificate) */
			memcpy(copy, data, (size_t)len);
		copy[len] = '\0';
	}
	BIO_free(bio);
	return copy;
}

void p11e_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}
