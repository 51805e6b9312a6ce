/* SPDX-License-Identifier: Apache-2.0 */
/* The SSL Store: judging an HTTP answer, then reading the order in it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sslstore_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_http_response resp = { 0 };
	struct p11e_ca_result res = { 0 };
	struct ss_order_info info;
	enum ss_errkind kind;
	cJSON *out = NULL;

	resp.kind = P11E_HTTP_RESPONSE;
	resp.status = 200;
	resp.body = malloc(size + 1);
	if (!resp.body)
		return 0;
	memcpy(resp.body, data, size);
	resp.body[size] = '\0';
	resp.len = size;
	strcpy(resp.content_type, "application/json");
	if (ss_judge(&resp, "fuzz", "https://127.0.0.1", false, NULL, &out, &kind, &res) == P11E_CA_OK &&
	    out) {
		memset(&info, 0, sizeof(info));
		ss_parse_order(out, &info);
	}
	cJSON_Delete(out);
	free(resp.body);
	return 0;
}
