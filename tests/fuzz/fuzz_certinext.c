/* SPDX-License-Identifier: Apache-2.0 */
/* CERTInext response parsers over arbitrary JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "certinext_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *root = cJSON_ParseWithLength((const char *)data, size);
	struct cn_tracked tracked;
	struct cn_report report;
	struct cn_placed placed;
	struct p11e_product *products = NULL;
	char *chain = NULL, serial[130], api_serial[130], why[256], token[512];
	time_t not_after;
	size_t n = 0;

	if (!root)
		return 0;
	memset(&tracked, 0, sizeof(tracked));
	memset(&report, 0, sizeof(report));
	cn_parse_placed(root, &placed);
	cn_parse_track(root, &tracked);
	cn_tracked_free(&tracked);
	cn_parse_report(root, &report);
	cn_report_free(&report);
	if (cn_parse_certificate(root, &chain, serial, &not_after, api_serial, sizeof(api_serial),
				 why, sizeof(why)) == 0)
		free(chain);
	cn_parse_dcv_token(root, token, sizeof(token));
	if (cn_parse_products(root, &products, &n) == 0)
		free(products);
	cJSON_Delete(root);
	return 0;
}
