/* SPDX-License-Identifier: Apache-2.0 */
/* The SSL Store's small text readers: approver_email splitting, CSR
 * normalisation (PEM or bare base64), the API's date forms, the vendor
 * "ErrorCode:n|Message:text" notes, refusal classification, CustomOrderID
 * and product families. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sslstore_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), msg[512], code[64], id[65], wire[64];
	struct p11e_strlist list = { 0 };
	time_t t;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	ss_approver_split(text, &list);
	p11e_strlist_free(&list);
	free(ss_csr_normalize(text));
	(void)ss_parse_date(text, &t);
	ss_vendor_message(text, msg, sizeof(msg), code, sizeof(code));
	(void)ss_classify_message(text);
	(void)ss_custom_order_id(text, id, sizeof(id));
	(void)ss_product_family(text);
	ss_product_wire_code(text, wire, sizeof(wire));
	free(text);
	return 0;
}
