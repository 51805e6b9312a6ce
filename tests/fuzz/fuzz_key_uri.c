/* SPDX-License-Identifier: Apache-2.0 */
/* pkcs11: key URIs (our attribute check, then p11-kit's parser). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p11uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct p11e_err err = { 0 };
	struct p11e_uri *uri = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (p11e_uri_parse(text, &uri, &err) == P11E_OK) {
		free(p11e_uri_for_key(uri, uri->object, uri->id, uri->id_len));
		p11e_uri_free(uri);
	}
	free(text);
	return 0;
}
