/* SPDX-License-Identifier: Apache-2.0 */
/* The INI configuration from memory (p11e_config_load_texts), so that
 * fuzzing never reads the host's files: the input is the configuration
 * "/fuzz/p11enroll.conf", and each part after a line "%%%%" is one more
 * file, "/fuzz/conf.d/N.conf", which include_dir = /fuzz/conf.d reaches. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"

#define MAX_FILES 8
#define SEP "\n%%%%\n"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char names[MAX_FILES][32];
	struct p11e_config_text texts[MAX_FILES];
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	const char *p = (const char *)data, *end = p + size;
	size_t n = 0;

	p11e_log_set_level(P11E_LOG_ERROR);
	while (n < MAX_FILES) {
		const char *sep = memmem(p, (size_t)(end - p), SEP, strlen(SEP));

		if (n == 0)
			snprintf(names[n], sizeof(names[n]), "/fuzz/p11enroll.conf");
		else
			snprintf(names[n], sizeof(names[n]), "/fuzz/conf.d/%zu.conf", n);
		texts[n] =
			(struct p11e_config_text){ names[n], p, (size_t)((sep ? sep + 1 : end) - p) };
		n++;
		if (!sep)
			break;
		p = sep + strlen(SEP);
	}
	if (p11e_config_load_texts(texts, n, &cfg, &err) == P11E_OK)
		p11e_config_free(cfg);
	p11e_err_clear(&err);
	return 0;
}
