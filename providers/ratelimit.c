/* SPDX-License-Identifier: Apache-2.0 */
/* File format: the placement times (seconds since the epoch, one per
 * line, oldest first), at most N of them. A sliding window rather than a
 * token bucket because that is how the CA counts: a bucket refilled at
 * N/window lets N+1 calls into one window. */
#include "ratelimit.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"

/* The CA stamps a call when it arrives, later than our stamp and by
 * varying amounts: keep this much more than the window between them. */
#define MARGIN_S 0.5

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads up to n times newer than `since`; returns how many. */
static size_t load(int fd, double *t, unsigned n, double since)
{
	char buf[65536], *p, *end;
	ssize_t len = pread(fd, buf, sizeof(buf) - 1, 0);
	size_t k = 0;

	if (len <= 0)
		return 0;
	buf[len] = '\0';
	for (p = buf;; p = end) {
		double v = strtod(p, &end);

		if (end == p)
			break;
		if (v > since) {
			if (k == n) {
				memmove(t, t + 1, (n - 1) * sizeof(*t));
				k--;
			}
			t[k++] = v;
		}
	}
	return k;
}

static int store(int fd, const double *t, size_t k)
{
	char *buf = malloc(k * 32 + 1);
	size_t len = 0;
	int rc = -1;

	if (!buf)
		return -1;
	for (size_t i = 0; i < k; i++)
		len += (size_t)snprintf(buf + len, 32, "%.3f\n", t[i]);
	if (ftruncate(fd, 0) == 0 && pwrite(fd, buf, len, 0) == (ssize_t)len)
		rc = 0;
	free(buf);
	return rc;
}

p11e_status p11e_ratelimit_take(const char *dir, const char *account, unsigned n, int64_t window,
				struct p11e_err *err)
{
	char path[4096], name[128];
	double *t = NULL;
	size_t j = 0;
	bool told = false;
	p11e_status rc = P11E_OK;
	int fd = -1;

	if (n == 0 || window <= 0)
		return P11E_OK;
	for (const char *a = account; *a && j < sizeof(name) - 1; a++)
		name[j++] = (strchr("._-", *a) || (*a >= '0' && *a <= '9') ||
			     (*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z'))
				    ? *a
				    : '_';
	name[j] = '\0';
	snprintf(path, sizeof(path), "%s/.order-rate-%s", dir, name);
	t = calloc(n, sizeof(*t));
	if (!t)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot open the order rate file %s: %s", path,
				  strerror(errno));
		goto out;
	}
	for (;;) {
		double now, wait;
		size_t k;

		if (p11e_stop_requested()) {
			rc = p11e_err_set(err, P11E_EPENDING,
					  "stopped while waiting for the order rate limit");
			goto out;
		}
		if (flock(fd, LOCK_EX) != 0) {
			if (errno == EINTR)
				continue;
			rc = p11e_err_set(err, P11E_EFAIL, "cannot lock %s: %s", path,
					  strerror(errno));
			goto out;
		}
		now = now_s();
		k = load(fd, t, n, now - (double)window - MARGIN_S);
		if (k < n) {
			t[k++] = now;
			if (store(fd, t, k) != 0)
				rc = p11e_err_set(err, P11E_EFAIL, "cannot write %s: %s", path,
						  strerror(errno));
			flock(fd, LOCK_UN);
			goto out;
		}
		flock(fd, LOCK_UN);
		wait = t[0] + (double)window + MARGIN_S - now;
		if (!told) {
			p11e_info("%s: %u orders in %llds already: the next placement waits %.1fs",
				  account, n, (long long)window, wait);
			told = true;
		}
		p11e_stop_sleep_ms((long long)(wait * 1000) + 1);
	}
out:
	if (fd >= 0)
		close(fd);
	free(t);
	return rc;
}
