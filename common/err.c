/* SPDX-License-Identifier: Apache-2.0 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

p11e_status p11e_err_set(struct p11e_err *err, p11e_status status, const char *fmt, ...)
{
	va_list ap;

	if (!err || err->status != P11E_OK)
		return err ? err->status : status;
	err->status = status;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return status;
}

void p11e_err_prefix(struct p11e_err *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	/* An over-long message loses its tail; the context in front matters more. */
	size_t used = (size_t)snprintf(err->msg, sizeof(err->msg), "%s: ", prefix);
	if (used < sizeof(err->msg)) {
		size_t room = sizeof(err->msg) - used - 1, len = strlen(old);

		memcpy(err->msg + used, old, len < room ? len : room);
		err->msg[used + (len < room ? len : room)] = '\0';
	}
}

void p11e_err_add_openssl(struct p11e_err *err)
{
	unsigned long e;
	char buf[256];
	size_t len;

	while ((e = ERR_get_error()) != 0) {
		if (!err)
			continue;
		ERR_error_string_n(e, buf, sizeof(buf));
		len = strlen(err->msg);
		if (len + 3 < sizeof(err->msg))
			snprintf(err->msg + len, sizeof(err->msg) - len, " (%s)", buf);
	}
}

void p11e_err_clear(struct p11e_err *err)
{
	if (!err)
		return;
	err->status = P11E_OK;
	err->msg[0] = '\0';
}
