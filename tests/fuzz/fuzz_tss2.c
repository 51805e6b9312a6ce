/* SPDX-License-Identifier: Apache-2.0 */
/* A provider key file ("TSS2 PRIVATE KEY" PEM) as p11e_ossl_load reads it
 * before the provider sees it: PEM, the TSSPrivKey DER walk to the public
 * area's attributes, and the protection check. The input is written to a
 * file in a private temporary folder, since the loader reads a file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "infile.h"
#include "log.h"
#include "osslkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_err err = { 0 };
	uint32_t attrs = 0;
	bool found = false;
	const char *path;

	p11e_log_set_level(P11E_LOG_ERROR);
	path = fuzz_input_file("tss2", "key.pem", 0600, data, size);
	if (p11e_ossl_read_wrapped(path, &attrs, &found, &err) == P11E_OK && found)
		(void)p11e_ossl_check_protection(path, attrs, &err);
	p11e_err_clear(&err);
	/* the DER walk alone, on the raw bytes */
	(void)p11e_tss2_key_attributes(data, (long)size, &attrs);
	return 0;
}
