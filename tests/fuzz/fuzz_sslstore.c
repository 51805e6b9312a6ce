/* SPDX-License-Identifier: Apache-2.0 */
/* The SSL Store: one answer as sslstore.c gets it (the transport outcome,
 * HTTP status, placement flag and our replay token come from the input, see
 * answer.h): the debug log's redaction of the body, ss_judge, then what the
 * provider reads out of a good answer for that endpoint: the order status,
 * the query pages, the approver list and its rule, the products, and the
 * downloaded certificates as the provider reads them. An endpoint the
 * harness does not know runs every reader. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "answer.h"
#include "sslstore_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known[] = {
	"/rest/order/status",        "/rest/order/neworder",
	"/rest/order/reissue",       "/rest/order/refundstatus",
	"/rest/order/refundrequest", "/rest/order/query",
	"/rest/order/download",      "/rest/order/approverlist",
	"/rest/product/query",       "/rest/digicert/organizationlist",
	"/rest/health/validate",     NULL,
};

static bool is(const char *endpoint, const char *prefix)
{
	return fuzz_endpoint_is(endpoint, prefix, known);
}

static void order(const cJSON *obj)
{
	struct ss_order_info info;
	char msg[512], code[64];
	bool known_word;
	time_t t;

	memset(&info, 0, sizeof(info));
	if (ss_parse_order(obj, &info) != 0)
		return;
	(void)ss_status_outcome(info.major, info.minor, &known_word);
	ss_vendor_message(info.comments, msg, sizeof(msg), code, sizeof(code));
	(void)ss_parse_date(info.purchase, &t);
	(void)ss_product_family(info.product);
}

static void download(const cJSON *json)
{
	char *pem = NULL;
	size_t entries;

	if (ss_parse_download(json, &pem, &entries) > 0)
		free(pem);
}

static void approvers(const cJSON *json)
{
	const cJSON *arr = cJSON_GetObjectItem(json, "ApproverEmailList"), *e;
	struct p11e_strlist list = { 0 }, given = { 0 };
	const char *domains[] = { "www.example.com" };
	char why[512];

	cJSON_ArrayForEach (e, (cJSON_IsArray(arr) ? arr : NULL))
		if (cJSON_IsString(e))
			p11e_strlist_add(&list, e->valuestring);
	if (list.n) {
		ss_approver_split(list.v[0], &given);
		(void)ss_approver_rule(false, &given, domains, &list, 1, why, sizeof(why));
		(void)ss_approver_rule(true, &given, domains, &list, 1, why, sizeof(why));
	}
	p11e_strlist_free(&given);
	p11e_strlist_free(&list);
}

static void good_answer(const char *endpoint, const cJSON *json)
{
	const cJSON *e;

	if (is(endpoint, "/rest/order/status") || is(endpoint, "/rest/order/neworder") ||
	    is(endpoint, "/rest/order/reissue") || is(endpoint, "/rest/order/refund"))
		order(json);
	if (is(endpoint, "/rest/order/query") && cJSON_IsArray(json))
		cJSON_ArrayForEach (e, json)
			order(e);
	if (is(endpoint, "/rest/order/download"))
		download(json);
	if (is(endpoint, "/rest/order/approverlist"))
		approvers(json);
	if (is(endpoint, "/rest/product/query") && cJSON_IsArray(json))
		cJSON_ArrayForEach (e, json) {
			const cJSON *code = cJSON_GetObjectItem(e, "ProductCode");

			if (cJSON_IsString(code))
				(void)ss_family_name(ss_product_family(code->valuestring));
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_ca_result res = { 0 };
	struct fuzz_answer a;
	enum ss_errkind kind;
	cJSON *out = NULL;

	if (!fuzz_answer_open(data, size, &a))
		return 0;
	if (ss_judge(&a.resp, a.endpoint, "https://127.0.0.1", a.place, a.replay[0] ? a.replay : NULL,
		     &out, &kind, &res) == P11E_CA_OK &&
	    out)
		good_answer(a.endpoint, out);
	cJSON_Delete(out);
	p11e_ca_result_clear(&res);
	fuzz_answer_close(&a);
	return 0;
}
