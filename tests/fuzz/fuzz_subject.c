/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 4514 subjects and the SAN checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct p11e_err err = { 0 };
	X509_NAME *name = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (p11e_subject_parse(text, &name, &err) == P11E_OK)
		X509_NAME_free(name);
	p11e_err_clear(&err);
	p11e_san_check_dns(text, &err);
	p11e_err_clear(&err);
	p11e_san_check_email(text, &err);
	p11e_err_clear(&err);
	p11e_san_check_uri(text, &err);
	p11e_err_clear(&err);
	p11e_san_check_ip(text, &err);
	free(text);
	return 0;
}
