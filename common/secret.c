/* SPDX-License-Identifier: Apache-2.0 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#define SECRET_MAX 8192

static p11e_status check_mode(const char *path, const struct stat *st, const char *what,
			      struct p11e_err *err)
{
	if (!S_ISREG(st->st_mode))
		return p11e_err_set(err, P11E_EUSAGE, "%s: %s is not a regular file", what, path);
	if (st->st_mode & (S_IRWXG | S_IRWXO))
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: %s is accessible by group or others (mode %04o); "
				    "fix: chmod 600 %s",
				    what, path, (unsigned)(st->st_mode & 07777), path);
	return P11E_OK;
}

/* Opens a secret file the one way both `check` and the read use. Symbolic
 * links are followed (Kubernetes mounts secrets as a chain of links into
 * ..data/): what counts is the file they end at, which must be a regular
 * file that only its owner may access. O_NONBLOCK: a FIFO does not hang. */
static p11e_status open_secret(const char *path, const char *what, int *fd_out, struct stat *st,
			       struct p11e_err *err)
{
	p11e_status rc;
	int fd;

	*fd_out = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return p11e_err_set(err, P11E_EUSAGE, "%s: cannot open %s: %s", what, path,
				    strerror(errno));
	if (fstat(fd, st) != 0) {
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: cannot stat %s: %s", what, path,
				  strerror(errno));
		close(fd);
		return rc;
	}
	rc = check_mode(path, st, what, err);
	if (rc == P11E_OK && st->st_size == 0)
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: %s is empty", what, path);
	if (rc == P11E_OK && st->st_size >= SECRET_MAX)
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: %s is larger than %d bytes", what, path,
				  SECRET_MAX);
	if (rc != P11E_OK) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return P11E_OK;
}

p11e_status p11e_secret_check_file(const char *path, const char *what, struct p11e_err *err)
{
	struct stat st;
	p11e_status rc;
	int fd;

	if (strncmp(path, "env:", 4) == 0) {
		const char *value = getenv(path + 4);

		if (!value || !*value)
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s: environment variable %s is not set or empty", what,
					    path + 4);
		return P11E_OK;
	}
	if (strncmp(path, "file:", 5) == 0)
		path += 5;
	rc = open_secret(path, what, &fd, &st, err);
	if (fd >= 0)
		close(fd);
	return rc;
}

static p11e_status read_file(const char *path, const char *what, char **out, struct p11e_err *err)
{
	p11e_status rc;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	rc = open_secret(path, what, &fd, &st, err);
	if (rc != P11E_OK)
		return rc;
	buf = calloc(1, SECRET_MAX + 1);
	if (!buf) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	while (len < SECRET_MAX && (n = read(fd, buf + len, SECRET_MAX - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = p11e_err_set(err, P11E_EUSAGE, "%s: cannot read %s: %s", what, path,
					  strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	if (len == SECRET_MAX) {
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: %s is larger than %d bytes", what, path,
				  SECRET_MAX);
		goto out;
	}
	/* A NUL would cut the secret silently where it is used as a string. */
	if (memchr(buf, '\0', len)) {
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: %s holds a NUL byte", what, path);
		goto out;
	}
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0) {
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: %s is empty", what, path);
		goto out;
	}
	*out = buf;
	buf = NULL;
out:
	p11e_secret_free(buf);
	close(fd);
	return rc;
}

p11e_status p11e_secret_read(const char *spec, const char *what, char **out, struct p11e_err *err)
{
	*out = NULL;
	if (!spec || !*spec)
		return p11e_err_set(err, P11E_EUSAGE, "%s: no secret source given", what);
	if (strncmp(spec, "env:", 4) == 0) {
		const char *value = getenv(spec + 4);

		if (!value || !*value)
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s: environment variable %s is not set or empty", what,
					    spec + 4);
		*out = strdup(value);
		return *out ? P11E_OK : p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	if (strncmp(spec, "file:", 5) == 0)
		spec += 5;
	return read_file(spec, what, out, err);
}

void p11e_secret_free(char *secret)
{
	if (!secret)
		return;
	OPENSSL_cleanse(secret, strlen(secret));
	free(secret);
}
