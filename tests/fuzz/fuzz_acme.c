/* SPDX-License-Identifier: Apache-2.0 */
/* ACME: what a server's answer reaches before any flow logic — response
 * headers (Replay-Nonce, Location, Link), problem documents, base64url and
 * the PEM of a certificate (ARI id). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme_wire.h"
#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_http_response resp = { 0 };
	struct acme_problem prob;
	unsigned char *bin = NULL;
	size_t bin_len = 0;
	char *text = malloc(size + 1), *v;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	acme_problem_parse(text, &prob);
	if (acme_b64url_decode(text, &bin, &bin_len) == 0)
		free(bin);
	free(acme_ari_cert_id(text));
	resp.headers = text;
	resp.headers_len = size;
	for (unsigned i = 0; i < 3; i++) {
		free(p11e_http_header(&resp, "Link", i));
		free(p11e_http_header(&resp, "Replay-Nonce", i));
	}
	v = p11e_http_header(&resp, "Location", 0);
	free(v);
	free(text);
	return 0;
}
