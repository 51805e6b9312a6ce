/* SPDX-License-Identifier: Apache-2.0 */
/* For readers that take a path: the fuzz input written to one file in a
 * private temporary folder, made once per process (on /dev/shm when there
 * is one: no disk writes per run) and removed at exit. */
#ifndef P11E_FUZZ_INFILE_H
#define P11E_FUZZ_INFILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_dir[64], fuzz_path[128];

static void fuzz_dir_remove(void)
{
	unlink(fuzz_path);
	rmdir(fuzz_dir);
}

/* Writes the input to fuzz_dir/`name` (made with `mode` when not 0) and
 * returns that path; `kind` names the folder. Aborts when it cannot. */
static inline const char *fuzz_input_file(const char *kind, const char *name, mode_t mode,
					  const uint8_t *data, size_t size)
{
	FILE *f;

	if (!fuzz_dir[0]) {
		snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/p11e-fuzz-%s-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", kind);
		if (!mkdtemp(fuzz_dir))
			abort();
		snprintf(fuzz_path, sizeof(fuzz_path), "%s/%s", fuzz_dir, name);
		atexit(fuzz_dir_remove);
	}
	f = fopen(fuzz_path, "wb");
	if (!f)
		abort();
	if (mode)
		fchmod(fileno(f), mode);
	fwrite(data, 1, size, f);
	fclose(f);
	return fuzz_path;
}

#endif
