/* SPDX-License-Identifier: Apache-2.0 */
/* Key URIs of the configuration: pkcs11: (our attribute check, then
 * p11-kit's parser) and provider: (the OpenSSL provider keys). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "osslkey.h"
#include "p11uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct p11e_err err = { 0 };
	struct p11e_uri *uri = NULL;
	struct p11e_osslkey_uri *ouri = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (p11e_uri_parse(text, &uri, &err) == P11E_OK) {
		free(p11e_uri_for_key(uri, uri->object, uri->id, uri->id_len));
		p11e_uri_free(uri);
	}
	p11e_err_clear(&err);
	if (p11e_osslkey_uri_is(text) && p11e_osslkey_uri_parse(text, &ouri, &err) == P11E_OK) {
		free(p11e_osslkey_uri_text(ouri));
		p11e_osslkey_uri_free(ouri);
	}
	p11e_err_clear(&err);
	free(text);
	return 0;
}
