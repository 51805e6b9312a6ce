/* SPDX-License-Identifier: Apache-2.0 */
/* The INI configuration, through a memory file. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	char path[64];
	int fd = memfd_create("p11e-fuzz.conf", 0);

	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (p11e_config_load(path, &cfg, &err) == P11E_OK)
			p11e_config_free(cfg);
	}
	close(fd);
	return 0;
}
