/* SPDX-License-Identifier: Apache-2.0 */
/* CERTInext: the whole answer path of one call, as certinext.c walks it:
 * the debug log's redaction of the body, cn_interpret on the transport
 * outcome, HTTP status and body (answer.h), then the endpoint's parser for a
 * good answer, or the error classification and description for a refusal;
 * certificate states of tracked orders and report rows. An endpoint the
 * harness does not know runs every parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "answer.h"
#include "certinext_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known[] = {
	"GenerateOrderSSL",  "TrackOrder",          "GetCertificate", "GetOrderReport", "GetDcv",
	"GetProductDetails", "ValidateCredentials", "RevokeOrder",    "VerifyDcv",      NULL,
};

static bool is(const char *endpoint, const char *name)
{
	return fuzz_endpoint_is(endpoint, name, known);
}

static void good_answer(const char *endpoint, const cJSON *root)
{
	char serial[130], api_serial[130], why[256], token[512], name[512];
	struct p11e_product *products = NULL;
	struct cn_tracked tracked;
	struct cn_report report;
	struct cn_placed placed;
	char *chain = NULL;
	time_t not_after;
	size_t n = 0;

	if (is(endpoint, "GenerateOrderSSL"))
		cn_parse_placed(root, &placed);
	if (is(endpoint, "TrackOrder")) {
		memset(&tracked, 0, sizeof(tracked));
		if (cn_parse_track(root, &tracked) == 0) {
			(void)cn_state_name(cn_cert_state(tracked.status_id));
			for (size_t i = 0; i < tracked.n_dcv; i++)
				cn_dcv_record_name("_dnsauth", tracked.dcv[i].domain, name,
						   sizeof(name));
			if (tracked.csr)
				(void)cn_same_csr(tracked.csr,
						  "-----BEGIN CERTIFICATE REQUEST-----\n"
						  "MIIB\n-----END CERTIFICATE REQUEST-----\n");
		}
		cn_tracked_free(&tracked);
	}
	if (is(endpoint, "GetCertificate") &&
	    cn_parse_certificate(root, &chain, serial, &not_after, api_serial, sizeof(api_serial), why,
				 sizeof(why)) == 0)
		free(chain);
	if (is(endpoint, "GetOrderReport")) {
		memset(&report, 0, sizeof(report));
		if (cn_parse_report(root, &report) == 0)
			for (size_t i = 0; i < report.n; i++)
				(void)cn_cert_state(report.status_ids[i]);
		cn_report_free(&report);
	}
	if (is(endpoint, "GetDcv"))
		cn_parse_dcv_token(root, token, sizeof(token));
	if (is(endpoint, "GetProductDetails") && cn_parse_products(root, &products, &n) == 0)
		free(products);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_ca_result res = { 0 };
	struct fuzz_answer a;
	struct cn_meta meta;
	cJSON *root = NULL;

	if (!fuzz_answer_open(data, size, &a))
		return 0;
	switch (cn_interpret(&a.resp, a.place, "CERTInext", a.endpoint, &root, &meta, &res)) {
	case CN_CALL_OK:
		good_answer(a.endpoint, root);
		break;
	case CN_CALL_CA_ERROR:
		(void)cn_error_outcome(cn_classify_error(meta.code, meta.message));
		cn_describe_error(&res, "CERTInext", meta.code, meta.message, a.endpoint);
		break;
	case CN_CALL_FAILED:
		break;
	}
	cJSON_Delete(root);
	p11e_ca_result_clear(&res);
	fuzz_answer_close(&a);
	return 0;
}
