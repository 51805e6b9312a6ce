/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static p11e_log_level current = P11E_LOG_INFO;

void p11e_log_set_level(p11e_log_level level)
{
	current = level;
}

p11e_log_level p11e_log_get_level(void)
{
	return current;
}

int p11e_log_parse_level(const char *text)
{
	static const char *const names[] = { "error", "warn", "info", "debug" };

	for (int i = 0; i < 4; i++)
		if (strcmp(text, names[i]) == 0)
			return i;
	return -1;
}

void p11e_log(p11e_log_level level, const char *fmt, ...)
{
	static const char *const tags[] = { "error", "warning", "", "debug" };
	va_list ap;

	if (level > current)
		return;
	fputs("p11enroll: ", stderr);
	if (level != P11E_LOG_INFO)
		fprintf(stderr, "%s: ", tags[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}
