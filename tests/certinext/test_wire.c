/* SPDX-License-Identifier: Apache-2.0 */
/* CERTInext wire layer: authKey, meta, request bodies of every family,
 * response shapes, states, errors, revocation reasons, certificates. */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certinext.h"
#include "certinext_wire.h"

/* ---------- meta ---------- */

Test(auth, vectors_of_the_notes)
{
	char out[65];

	cr_assert_eq(cn_auth_key("demo-access-key-123", "2026-05-12T09:41:07+00:00",
				 "482913657120394857", out),
		     0);
	cr_assert_str_eq(out, "d6200a2f0218247d48333c7456ba1db949f632c8e6937b07ed626f7f93afaf78");
	cr_assert_eq(cn_auth_key("Zx9-Example-Key", "2026-05-12T15:11:07+05:30", "7305518842019934",
				 out),
		     0);
	cr_assert_str_eq(out, "94cb8a66386c06a0eca3af3fac854f98610cf377b65f00f2e30c742d4ead35c3");
}

Test(auth, ts_format)
{
	char ts[CN_TS_LEN];

	cn_format_ts(1778578867, ts);
	cr_assert_str_eq(ts, "2026-05-12T09:41:07+00:00");
	cn_format_ts(0, ts);
	cr_assert_str_eq(ts, "1970-01-01T00:00:00+00:00");
}

Test(auth, txn_is_18_digits_first_nonzero_and_fresh)
{
	char a[CN_TXN_LEN], b[CN_TXN_LEN];
	unsigned first_digits[10] = { 0 };

	for (int i = 0; i < 2000; i++) {
		cr_assert_eq(cn_make_txn(a), 0);
		cr_assert_eq(strlen(a), 18);
		cr_assert(a[0] >= '1' && a[0] <= '9', "txn %s starts with 0", a);
		for (int k = 0; k < 18; k++)
			cr_assert(a[k] >= '0' && a[k] <= '9');
		first_digits[a[0] - '0']++;
	}
	cr_assert_eq(first_digits[0], 0);
	for (int d = 1; d <= 9; d++)
		cr_assert_gt(first_digits[d], 100, "first digit %d is rare", d);
	cn_make_txn(a);
	cn_make_txn(b);
	cr_assert_str_neq(a, b);
}

Test(auth, meta_block)
{
	cJSON *meta = cn_meta_new("5550001234", "demo-access-key-123", 1778578867);
	char want[65];
	int n = 0;
	const cJSON *item;

	cr_assert_not_null(meta);
	cJSON_ArrayForEach (item, meta) {
		cr_assert(cJSON_IsString(item), "%s is not a string", item->string);
		n++;
	}
	cr_assert_eq(n, 5);
	cr_assert_str_eq(cJSON_GetObjectItem(meta, "ver")->valuestring, "1.0");
	cr_assert_str_eq(cJSON_GetObjectItem(meta, "ts")->valuestring, "2026-05-12T09:41:07+00:00");
	cr_assert_str_eq(cJSON_GetObjectItem(meta, "accountNumber")->valuestring, "5550001234");
	cn_auth_key("demo-access-key-123", "2026-05-12T09:41:07+00:00",
		    cJSON_GetObjectItem(meta, "txn")->valuestring, want);
	cr_assert_str_eq(cJSON_GetObjectItem(meta, "authKey")->valuestring, want);
	cJSON_Delete(meta);

	meta = cn_meta_new("5550001234", NULL, 1778578867); /* OAuth */
	cr_assert_str_eq(cJSON_GetObjectItem(meta, "authKey")->valuestring, "");
	cJSON_Delete(meta);
}

Test(auth, meta_goes_first_and_is_replaced)
{
	cJSON *root = cn_build_track("3390418876");
	char *text;

	cn_set_meta(root, cn_meta_new("1", "k", 1));
	cn_set_meta(root, cn_meta_new("2", "k", 2));
	text = cJSON_PrintUnformatted(root);
	cr_assert(strncmp(text, "{\"meta\":{", 9) == 0, "%s", text);
	cr_assert_null(strstr(text + 1, "\"meta\":{\"ver\":\"1.0\",\"ts\":\"1970-01-01T00:00:01"));
	cr_assert_not_null(strstr(text, "\"accountNumber\":\"2\""));
	cr_assert_not_null(strstr(text, "\"orderDetails\":{\"orderNumber\":\"3390418876\"}"));
	free(text);
	cJSON_Delete(root);
}

/* ---------- order bodies ---------- */

struct fake {
	struct p11e_setting v[64];
	size_t n;
};

static const struct p11e_setting *fake_lookup(void *ctx, const char *key)
{
	struct p11e_settings s = { ((struct fake *)ctx)->v, ((struct fake *)ctx)->n };

	return p11e_settings_find(&s, key);
}

static void put(struct fake *f, const char *key, const char *value)
{
	f->v[f->n++] = (struct p11e_setting){ key, value, "test.conf", (int)f->n + 1 };
}

static void base(struct fake *f)
{
	f->n = 0;
	put(f, "requestor_name", "Edge Fleet PKI");
	put(f, "requestor_email", "pki-bot@example.net");
	put(f, "requestor_mobile", "5125550100");
	put(f, "signer_place", "Lisbon");
	put(f, "signer_ip", "93.184.216.34");
}

static const char *at(const cJSON *root, const char *path)
{
	char buf[256], *save = NULL, *part;
	const cJSON *node = root;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); part && node; part = strtok_r(NULL, ".", &save))
		node = cJSON_GetObjectItemCaseSensitive(node, part);
	return node && cJSON_IsString(node) ? node->valuestring : NULL;
}

static cJSON *build(struct fake *f, const char *product, const char *domain, const char *const *dns,
		    size_t n, const char *id)
{
	struct cn_order_input in = {
		fake_lookup,
		f,
		product,
		domain,
		dns,
		n,
		"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
		id
	};
	const struct p11e_setting *bad;
	const char *key;
	char why[256];
	cJSON *od = cn_build_order(&in, &key, why, sizeof(why), &bad);

	cr_assert_not_null(od, "build failed: %s", why);
	return od;
}

Test(order, dv_defaults_of_section_3_3)
{
	struct fake f;
	const char *dns[] = { "shop.example.net" };
	cJSON *od;

	base(&f);
	od = build(&f, "842", "shop.example.net", dns, 1, "idem-1");
	cr_assert_str_eq(at(od, "productCode"), "842");
	cr_assert_str_eq(at(od, "accountingModel"), "2");
	cr_assert_str_eq(at(od, "saveAndHold"), "0");
	cr_assert_str_eq(at(od, "emailNotifications"), "0");
	cr_assert_null(cJSON_GetObjectItem(od, "delegationInformation"));
	cr_assert_null(cJSON_GetObjectItem(od, "organizationDetails"));
	cr_assert_null(cJSON_GetObjectItem(od, "contractSignerInfo"));
	cr_assert_str_eq(at(od, "requestorInformation.requestorName"), "Edge Fleet PKI");
	cr_assert_str_eq(at(od, "requestorInformation.requestorIsdCode"), "1");
	cr_assert_str_eq(at(od, "requestorInformation.requestorMobileNumber"), "5125550100");
	cr_assert_str_eq(at(od, "requestorInformation.requestorEmail"), "pki-bot@example.net");
	cr_assert_str_eq(at(od, "subscriptionDetails.validity"), "1");
	cr_assert_str_eq(at(od, "subscriptionDetails.autoRenew"), "0");
	cr_assert_str_eq(at(od, "subscriptionDetails.renewCriteria"), "30");
	cr_assert_str_eq(at(od, "certificateInformation.domainName"), "shop.example.net");
	cr_assert_str_eq(at(od, "certificateInformation.autoSecureWWW"), "0");
	cr_assert_str_eq(cJSON_GetArrayItem(
				 cJSON_GetObjectItem(cJSON_GetObjectItem(od, "certificateInformation"),
						     "additionalDomains"),
				 0)
				 ->valuestring,
			 "shop.example.net");
	/* technical contact falls back to the requestor */
	cr_assert_str_eq(at(od, "technicalPointOfContact.tpcName"), "Edge Fleet PKI");
	cr_assert_str_eq(at(od, "technicalPointOfContact.tpcEmail"), "pki-bot@example.net");
	cr_assert_str_eq(at(od, "technicalPointOfContact.tpcIsdCode"), "1");
	cr_assert_str_eq(at(od, "technicalPointOfContact.tpcMobileNumber"), "5125550100");
	cr_assert_not_null(strstr(at(od, "csr"), "BEGIN CERTIFICATE REQUEST"));
	cr_assert_str_eq(at(od, "agreementDetails.acceptAgreement"), "1");
	cr_assert_str_eq(at(od, "agreementDetails.signerName"), "Edge Fleet PKI");
	cr_assert_str_eq(at(od, "agreementDetails.signerPlace"), "Lisbon");
	cr_assert_str_eq(at(od, "agreementDetails.signerIP"), "93.184.216.34");
	cr_assert_str_eq(at(od, "additionalInformation.remarks"),
			 "Enrolled by p11enroll [p11enroll:idem-1]");
	cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(od,
										    "additionalInformation"),
								"tags"),
					    0)
				 ->valuestring,
			 "p11enroll:idem-1");
	cJSON_Delete(od);
}

Test(order, every_scalar_is_a_string)
{
	struct fake f;
	const char *dns[] = { "a.example.net", "b.example.net" };
	cJSON *od;
	char *text;

	base(&f);
	put(&f, "auto_renew", "yes");
	put(&f, "group_number", "5550009876");
	od = build(&f, "844", "a.example.net", dns, 2, NULL);
	text = cJSON_PrintUnformatted(od);
	/* no number, boolean or null anywhere (docs/protocol-certinext.md) */
	cr_assert_null(strstr(text, ":true"));
	cr_assert_null(strstr(text, ":false"));
	cr_assert_null(strstr(text, ":null"));
	cr_assert_str_eq(at(od, "subscriptionDetails.autoRenew"), "1");
	cr_assert_str_eq(at(od, "delegationInformation.groupNumber"), "5550009876");
	cr_assert_eq(cJSON_GetArraySize(
			     cJSON_GetObjectItem(cJSON_GetObjectItem(od, "certificateInformation"),
						 "additionalDomains")),
		     2);
	/* without an idempotency id: no tag, plain remarks */
	cr_assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(od, "additionalInformation"), "tags"));
	cr_assert_str_eq(at(od, "additionalInformation.remarks"), "Enrolled by p11enroll");
	free(text);
	cJSON_Delete(od);
}

Test(order, wildcard_keeps_the_star)
{
	struct fake f;
	const char *dns[] = { "*.example.com" };
	cJSON *od;

	base(&f);
	od = build(&f, "843", "*.example.com", dns, 1, NULL);
	cr_assert_str_eq(at(od, "certificateInformation.domainName"), "*.example.com");
	cJSON_Delete(od);
}

Test(order, ov_members)
{
	struct fake f;
	cJSON *od;

	base(&f);
	put(&f, "organization_number", "5550004567");
	put(&f, "locality", "Austin");
	put(&f, "postal_code", "78701");
	put(&f, "street_address", "1 Main St");
	put(&f, "city", "Austin");
	put(&f, "state", "TX");
	put(&f, "country", "US");
	od = build(&f, "846", "ov.example.com", NULL, 0, NULL);
	cr_assert_str_eq(at(od, "organizationDetails.preVetting"), "1");
	cr_assert_str_eq(at(od, "organizationDetails.organizationNumber"), "5550004567");
	cr_assert_str_eq(at(od, "organizationDetails.streetAddress"), "1 Main St");
	cr_assert_str_eq(at(od, "organizationDetails.city"), "Austin");
	cr_assert_str_eq(at(od, "organizationDetails.state"), "TX");
	cr_assert_str_eq(at(od, "organizationDetails.country"), "US");
	cr_assert_str_eq(at(od, "certificateInformation.locality"), "Austin");
	cr_assert_str_eq(at(od, "certificateInformation.postalCode"), "78701");
	cr_assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(od, "certificateInformation"),
					   "additionalDomains"));
	cJSON_Delete(od);
}

Test(order, ev_members)
{
	static const char *const people[] = { "contract_signer", "contractSignerInfo",
					      "certificate_approver", "certificateApproverInfo" };
	static const char *const members[][2] = {
		{ "name", "name" },
		{ "email", "email" },
		{ "isd_code", "isdCode" },
		{ "mobile", "mobileNumber" },
		{ "designation", "designation" },
		{ "employee_id", "employeeID" },
	};
	static char keys[12][64], paths[12][96], values[12][64];
	struct fake f;
	cJSON *od;
	int k = 0;

	base(&f);
	put(&f, "organization_number", "5550004567");
	put(&f, "street_address2", "Suite 5");
	put(&f, "company_registration_number", "REG-42");
	for (int p = 0; p < 2; p++)
		for (int m = 0; m < 6; m++, k++) {
			snprintf(keys[k], sizeof(keys[k]), "%s_%s", people[2 * p], members[m][0]);
			snprintf(paths[k], sizeof(paths[k]), "%s.%s", people[2 * p + 1],
				 members[m][1]);
			snprintf(values[k], sizeof(values[k]),
				 m == 1               ? "p%d@example.com"
				 : (m == 2 || m == 3) ? "%d1"
						      : "v%d",
				 k);
			put(&f, keys[k], values[k]);
		}
	od = build(&f, "850", "ev.example.com", NULL, 0, NULL);
	for (k = 0; k < 12; k++)
		cr_assert_str_eq(at(od, paths[k]), values[k], "%s", paths[k]);
	cr_assert_str_eq(at(od, "organizationDetails.streetAddress2"), "Suite 5");
	cr_assert_str_eq(at(od, "certificateInformation.companyRegistrationNumber"), "REG-42");
	cJSON_Delete(od);
}

Test(order, refusals_name_the_key_and_setting)
{
	struct fake f;
	struct cn_order_input in = { fake_lookup, &f, "842", "a.example.com", NULL, 0, "csr", NULL };
	const struct p11e_setting *bad;
	const char *key;
	char why[256];

	f.n = 0;
	put(&f, "requestor_name", "X");
	cr_assert_null(cn_build_order(&in, &key, why, sizeof(why), &bad));
	cr_assert_str_eq(key, "requestor_email");
	cr_assert_not_null(strstr(why, "requestor_email is not set"));

	base(&f);
	put(&f, "validity", "4");
	cr_assert_null(cn_build_order(&in, &key, why, sizeof(why), &bad));
	cr_assert_str_eq(key, "validity");
	cr_assert_not_null(bad);
	cr_assert_str_eq(bad->file, "test.conf");

	base(&f);
	put(&f, "signer_ip", "127.0.0.1");
	cr_assert_null(cn_build_order(&in, &key, why, sizeof(why), &bad));
	cr_assert_not_null(strstr(why, "EMS-1091"));

	base(&f);
	in.product = "";
	cr_assert_null(cn_build_order(&in, &key, why, sizeof(why), &bad));
	cr_assert_str_eq(key, "product");
}

Test(order, keys_lists_are_complete)
{
	const struct p11e_ca_ops *ops = &p11e_certinext_ops;
	static const char *const http_keys[] = { P11E_HTTP_SETTING_KEYS };

	for (size_t i = 0; i < cn_n_order_fields; i++) {
		bool in_ca = false, in_cert = false;

		for (size_t k = 0; ops->ca_keys[k]; k++)
			in_ca |= strcmp(ops->ca_keys[k], cn_order_fields[i].key) == 0;
		for (size_t k = 0; ops->cert_keys[k]; k++)
			in_cert |= strcmp(ops->cert_keys[k], cn_order_fields[i].key) == 0;
		cr_assert(in_ca, "%s missing from ca_keys", cn_order_fields[i].key);
		cr_assert_eq(in_cert, (cn_order_fields[i].flags & CN_F_PER_ORDER) != 0,
			     "%s and cert_keys disagree", cn_order_fields[i].key);
	}
	for (size_t i = 0; i < sizeof(http_keys) / sizeof(http_keys[0]); i++) {
		bool found = false;

		for (size_t k = 0; ops->ca_keys[k]; k++)
			found |= strcmp(ops->ca_keys[k], http_keys[i]) == 0;
		cr_assert(found, "%s missing from ca_keys", http_keys[i]);
	}
	/* every per-order key may also sit in the [ca] section */
	for (size_t k = 0; ops->cert_keys[k]; k++) {
		bool found = strcmp(ops->cert_keys[k], "product") == 0;

		for (size_t j = 0; ops->ca_keys[j]; j++)
			found |= strcmp(ops->ca_keys[j], ops->cert_keys[k]) == 0;
		cr_assert(found, "%s is a cert key without a ca key", ops->cert_keys[k]);
	}
}

/* ---------- other payloads ---------- */

Test(payloads, shapes)
{
	cJSON *r;
	char *t;

	r = cn_build_products("5550009876");
	t = cJSON_PrintUnformatted(r);
	cr_assert_str_eq(t, "{\"productDetails\":{\"groupNumber\":\"5550009876\"}}");
	free(t);
	cJSON_Delete(r);
	r = cn_build_products(NULL);
	t = cJSON_PrintUnformatted(r);
	cr_assert_str_eq(t, "{\"productDetails\":{}}");
	free(t);
	cJSON_Delete(r);
	r = cn_build_get_certificate("1", "a@b.c");
	t = cJSON_PrintUnformatted(r);
	cr_assert_str_eq(t, "{\"orderDetails\":{\"orderNumber\":\"1\",\"requestorEmail\":\"a@b.c\"}}");
	free(t);
	cJSON_Delete(r);
	r = cn_build_revoke("1", "a@b.c", "4", "x");
	t = cJSON_PrintUnformatted(r);
	cr_assert_str_eq(t, "{\"revocationDetails\":{\"orderNumber\":\"1\",\"requestorEmail\":"
			    "\"a@b.c\",\"revokeReasonId\":\"4\",\"revokeRemarks\":\"x\"}}");
	free(t);
	cJSON_Delete(r);
	r = cn_build_report(2, 100, 1778578867);
	t = cJSON_PrintUnformatted(r);
	cr_assert_str_eq(t, "{\"searchCriteria\":{\"pageNumber\":\"2\",\"pageSize\":\"100\","
			    "\"orderDateFrom\":\"2026-05-12\"}}");
	free(t);
	cJSON_Delete(r);
	r = cn_build_dcv("1", "a@b.c", "x.example");
	t = cJSON_PrintUnformatted(r);
	cr_assert_str_eq(t, "{\"dcvDetails\":{\"requestorEmail\":\"a@b.c\",\"orderNumber\":\"1\","
			    "\"domainName\":\"x.example\",\"dcvMethod\":\"1\"}}");
	free(t);
	cJSON_Delete(r);
}

/* Methods 2 and 3, the file of GetDcv and its approver list. */
Test(build, dcv_methods_and_answers)
{
	struct p11e_strlist emails = { 0 };
	char name[64], content[64];
	cJSON *r = cn_build_dcv_method("1", "a@b.c", "x.example", "3", "admin@x.example");
	char *t = cJSON_PrintUnformatted(r);

	cr_assert_str_eq(t, "{\"dcvDetails\":{\"requestorEmail\":\"a@b.c\",\"orderNumber\":\"1\","
			    "\"domainName\":\"x.example\",\"dcvMethod\":\"3\",\"dcvEmail\":"
			    "\"admin@x.example\"}}");
	free(t);
	cJSON_Delete(r);
	r = cJSON_Parse("{\"dcvDetails\":{\"fileName\":\"abc.txt\",\"fileContent\":\"tok\"}}");
	cr_assert_eq(cn_parse_dcv_file(r, name, sizeof(name), content, sizeof(content)), 0);
	cr_assert_str_eq(name, "abc.txt");
	cr_assert_str_eq(content, "tok");
	cJSON_Delete(r);
	/* a name that climbs out of the well-known folder is refused */
	r = cJSON_Parse("{\"dcvDetails\":{\"fileName\":\"../x\",\"fileContent\":\"tok\"}}");
	cr_assert_eq(cn_parse_dcv_file(r, name, sizeof(name), content, sizeof(content)), -1);
	cJSON_Delete(r);
	r = cJSON_Parse(
		"{\"dcvDetails\":{\"dcvEmails\":[\"admin@x.example\",3,\"webmaster@x.example\"]}}");
	cr_assert_eq(cn_parse_dcv_emails(r, &emails), 0);
	cr_assert_eq(emails.n, 2);
	cr_assert_str_eq(emails.v[1], "webmaster@x.example");
	p11e_strlist_free(&emails);
	cJSON_Delete(r);
}

Test(revoke, reason_mapping)
{
	cr_assert_str_eq(cn_revoke_reason_id(P11E_REVOKE_KEY_COMPROMISE), "1");
	cr_assert_str_eq(cn_revoke_reason_id(P11E_REVOKE_AFFILIATION_CHANGED), "3");
	cr_assert_str_eq(cn_revoke_reason_id(P11E_REVOKE_SUPERSEDED), "4");
	cr_assert_str_eq(cn_revoke_reason_id(P11E_REVOKE_CESSATION_OF_OPERATION), "5");
	cr_assert_null(cn_revoke_reason_id(P11E_REVOKE_UNSPECIFIED));
	cr_assert_null(cn_revoke_reason_id(P11E_REVOKE_CA_COMPROMISE));
}

/* ---------- states ---------- */

Test(states, every_certificate_status_id)
{
	static const struct {
		const char *id;
		cn_state state;
	} table[] = {
		{ "1", CN_STATE_PENDING },  { "2", CN_STATE_PENDING },  { "3", CN_STATE_FAILED },
		{ "4", CN_STATE_PENDING },  { "5", CN_STATE_FAILED },   { "6", CN_STATE_PENDING },
		{ "7", CN_STATE_ISSUED },   { "8", CN_STATE_FAILED },   { "9", CN_STATE_ISSUED },
		{ "10", CN_STATE_UNKNOWN }, { "11", CN_STATE_UNKNOWN }, { "12", CN_STATE_EXPIRED },
		{ "13", CN_STATE_FAILED },  { "14", CN_STATE_FAILED },  { "15", CN_STATE_ISSUED },
		{ "16", CN_STATE_PENDING }, { "17", CN_STATE_PENDING }, { "18", CN_STATE_FAILED },
		{ "19", CN_STATE_FAILED },  { "20", CN_STATE_ISSUED },  { "21", CN_STATE_FAILED },
		{ "22", CN_STATE_REVOKED }, { "23", CN_STATE_ISSUED },  { "24", CN_STATE_PENDING },
		{ "", CN_STATE_PENDING },   { NULL, CN_STATE_PENDING }, { "99", CN_STATE_UNKNOWN },
		{ "2x", CN_STATE_UNKNOWN },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		cr_assert_eq(cn_cert_state(table[i].id), table[i].state, "id %s",
			     table[i].id ? table[i].id : "(null)");
}

Test(states, track_with_dcv_and_numbers)
{
	const char *body =
		"{\"meta\":{\"status\":\"1\"},\"orderDetails\":{\"certificateStatusId\":24,"
		"\"certificateStatus\":\"Pending for Approver\",\"requestorInformation\":"
		"{\"requestorEmail\":\"p@example.net\"},\"revocationDetails\":null,"
		"\"domainVerification\":{\"status\":\"0\",\"a.example\":{\"dcvMethod\":\"DNS TXT Record\","
		"\"dcvStatus\":\"0\"},\"b.example\":{\"dcvMethod\":\"\",\"dcvStatus\":\"1\"},\"junk\":\"x\"},"
		"\"csr\":\"-----BEGIN\\nAB\\n\"}}";
	struct cn_meta meta;
	bool has;
	cJSON *root = cn_parse_body(body, strlen(body), &meta, &has);
	struct cn_tracked t;

	cr_assert(meta.ok && has);
	cr_assert_eq(cn_parse_track(root, &t), 0);
	cr_assert_str_eq(t.status_id, "24");
	cr_assert_str_eq(t.requestor_email, "p@example.net");
	cr_assert(t.has_dcv);
	cr_assert_eq(t.n_dcv, 2);
	cr_assert_str_eq(t.dcv[0].domain, "a.example");
	cr_assert_str_eq(t.dcv[1].status, "1");
	cr_assert(cn_same_csr(t.csr, "-----BEGIN\r\nAB"));
	cr_assert(!cn_same_csr(t.csr, "-----BEGIN\nAC\n"));
	cn_tracked_free(&t);
	cJSON_Delete(root);
}

Test(states, report_and_products)
{
	const char *body =
		"{\"meta\":{\"status\":\"1\"},\"orderDetails\":{\"noOfPages\":3,\"totalNoOfResults\":241,"
		"\"pageSize\":100,\"currentPage\":\"1\",\"ordersArray\":[{\"orderNumber\":\"3390418876\","
		"\"requestNumber\":\"7710042215\",\"certificateStatusId\":\"20\",\"certificateStatus\":"
		"\"Certificate Generated\",\"domainName\":\"shop.example.net\",\"productCode\":\"842\","
		"\"certificateSerialNumber\":\"3F9A\",\"certificateExpiryDate\":\"2027-06-12\","
		"\"orderDate\":\"2026-05-12\",\"tags\":[\"p11enroll:x\"]},{\"orderNumber\":\"\","
		"\"requestNumber\":\"7710042299\",\"tags\":[]}]}}";
	const char *prod =
		"{\"meta\":{\"status\":\"1\"},\"productDetails\":[{\"categoryName\":\"SSL/TLS\","
		"\"products\":[{\"productCode\":\"842\",\"productName\":\"DV SSL\"},{\"productCode\":843,"
		"\"productName\":\"DV Wildcard\"}]},{\"categoryName\":\"Private PKI\",\"products\":"
		"[{\"productCode\":\"149\",\"productName\":\"Intranet\"}]}]}";
	struct cn_meta meta;
	struct cn_report rep;
	struct p11e_product *list;
	size_t n;
	bool has;
	cJSON *root = cn_parse_body(body, strlen(body), &meta, &has);

	cr_assert_eq(cn_parse_report(root, &rep), 0);
	cr_assert_eq(rep.pages, 3);
	cr_assert_eq(rep.current, 1);
	cr_assert_eq(rep.n, 2);
	cr_assert_str_eq(rep.rows[0].serial, "3F9A");
	cr_assert_str_eq(rep.rows[0].ordered, "2026-05-12");
	cr_assert_str_eq(rep.status_ids[0], "20");
	cr_assert_str_eq(rep.tags[0].v[0], "p11enroll:x");
	cr_assert_str_eq(rep.rows[1].order_id, "");
	cn_report_free(&rep);
	cJSON_Delete(root);

	root = cn_parse_body(prod, strlen(prod), &meta, &has);
	cr_assert_eq(cn_parse_products(root, &list, &n), 0);
	cr_assert_eq(n, 3);
	cr_assert_str_eq(list[1].code, "843");
	cr_assert_str_eq(list[2].category, "Private PKI");
	free(list);
	cJSON_Delete(root);
}

/* ---------- responses and errors ---------- */

static cn_call_rc interpret(p11e_http_kind kind, long status, const char *body, bool placement,
			    struct p11e_ca_result *res, struct cn_meta *meta)
{
	struct p11e_http_response resp = { .kind = kind, .status = status, .attempts = 3 };
	cJSON *root = NULL;
	cn_call_rc rc;

	resp.body = body ? strdup(body) : NULL;
	resp.len = body ? strlen(body) : 0;
	snprintf(resp.error, sizeof(resp.error), "transport detail");
	memset(res, 0, sizeof(*res));
	rc = cn_interpret(&resp, placement, "prod", "GenerateOrderSSL", &root, meta, res);
	cJSON_Delete(root);
	free(resp.body);
	return rc;
}

Test(responses, every_shape)
{
	struct p11e_ca_result res;
	struct cn_meta meta;

	cr_assert_eq(interpret(P11E_HTTP_RESPONSE, 200,
			       "{\"meta\":{\"status\":\"1\",\"errorCode\":\"\"},\"x\":1}", true, &res,
			       &meta),
		     CN_CALL_OK);
	/* meta failure */
	cr_assert_eq(interpret(P11E_HTTP_RESPONSE, 200,
			       "{\"meta\":{\"status\":\"0\",\"errorCode\":\"EMS-1162\","
			       "\"errorMessage\":\"Invalid Product Code\"}}",
			       true, &res, &meta),
		     CN_CALL_CA_ERROR);
	cr_assert_str_eq(meta.code, "EMS-1162");
	cr_assert_str_eq(meta.message, "Invalid Product Code");
	/* non-2xx that still carries meta */
	cr_assert_eq(interpret(P11E_HTTP_RESPONSE, 400,
			       "{\"meta\":{\"status\":\"0\",\"errorCode\":\"EMS-SIM-101\","
			       "\"errorMessage\":\"Invalid value\"}}",
			       false, &res, &meta),
		     CN_CALL_CA_ERROR);
	/* credentials */
	cr_assert_eq(interpret(P11E_HTTP_RESPONSE, 401,
			       "{\"meta\":{\"status\":\"0\",\"errorCode\":\"EMS-001\","
			       "\"errorMessage\":\"Invalid credentials\"}}",
			       false, &res, &meta),
		     CN_CALL_FAILED);
	cr_assert_eq(res.outcome, P11E_CA_MISCONFIGURED);
	cr_assert_not_null(strstr(res.message, "Invalid credentials"));
	cr_assert_not_null(strstr(res.message, "access_key_file"));
	/* unknown endpoint */
	interpret(P11E_HTTP_RESPONSE, 404, "{\"error\":\"Not Found\"}", false, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_MISCONFIGURED);
	cr_assert_not_null(strstr(res.message, "/emSignHub-API"));
	/* 429 after the retries */
	interpret(P11E_HTTP_RESPONSE, 429, "", true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNREACHABLE);
	cr_assert_eq(res.retry_after, 60);
	/* 5xx: unknown for an order, unreachable for anything else */
	interpret(P11E_HTTP_RESPONSE, 503, "{\"message\":\"down\"}", true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNKNOWN);
	cr_assert_not_null(strstr(res.message, "down"));
	interpret(P11E_HTTP_RESPONSE, 503, "{\"message\":\"down\"}", false, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNREACHABLE);
	/* not JSON, or JSON without meta */
	interpret(P11E_HTTP_RESPONSE, 200, "<html>oops</html>", true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNKNOWN);
	interpret(P11E_HTTP_RESPONSE, 200, "{\"meta\":{\"status\":\"1\",", false, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNREACHABLE);
	interpret(P11E_HTTP_RESPONSE, 200, "[1,2]", false, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNREACHABLE);
	/* transport ends */
	interpret(P11E_HTTP_TOO_LARGE, 200, NULL, true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNKNOWN);
	interpret(P11E_HTTP_TOO_LARGE, 200, NULL, false, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNREACHABLE);
	interpret(P11E_HTTP_MAYBE_SENT, 0, NULL, true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNKNOWN);
	cr_assert_not_null(strstr(res.message, "reconciled"));
	interpret(P11E_HTTP_NOT_SENT, 0, NULL, true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_UNREACHABLE);
	interpret(P11E_HTTP_LOCAL, 0, NULL, true, &res, &meta);
	cr_assert_eq(res.outcome, P11E_CA_MISCONFIGURED);
}

Test(errors, codes_and_advice)
{
	struct p11e_ca_result res = { 0 };

	cr_assert_eq(cn_classify_error("EMS-1162", ""), CN_ERR_PRODUCT);
	cr_assert_eq(cn_classify_error("", "Inactive Account User."), CN_ERR_RATE_LIMIT);
	cr_assert_eq(cn_classify_error("", "Invalid key size"), CN_ERR_KEY);
	cr_assert_eq(cn_classify_error("", "Insufficient Credits"), CN_ERR_CREDITS);
	cr_assert_eq(cn_classify_error("EMS-943", ""), CN_ERR_NOT_FOUND);
	cr_assert_eq(cn_classify_error("EMS-956", ""), CN_ERR_DCV_NOT_READY);
	/* EMS-9 prefix is not "not found" (docs/protocol-certinext.md) */
	cr_assert_eq(cn_classify_error("EMS-918", "x"), CN_ERR_REMARKS);
	/* EMS-939 is the generic "Something went Wrong": no key hint */
	cr_assert_eq(cn_classify_error("EMS-939", "Something went Wrong"), CN_ERR_OTHER);
	cr_assert_eq(cn_classify_error("EMS-939", "Invalid key size"), CN_ERR_KEY);
	cr_assert_eq(cn_classify_error("EMS-977", "x"), CN_ERR_OTHER);
	cr_assert_eq(cn_error_outcome(CN_ERR_PRODUCT), P11E_CA_MISCONFIGURED);
	cr_assert_eq(cn_error_outcome(CN_ERR_DUPLICATE_CSR), P11E_CA_REJECTED);
	cr_assert_eq(cn_error_outcome(CN_ERR_OTHER), P11E_CA_REJECTED);
	cn_describe_error(&res, "prod", "EMS-1162", "Invalid Product Code", "GenerateOrderSSL");
	cr_assert_str_eq(res.ca_code, "EMS-1162");
	cr_assert_not_null(strstr(res.message, "GenerateOrderSSL: Invalid Product Code; "));
	/* the code is in ca_code only, so that it is shown once */
	cr_assert_null(strstr(res.message, "EMS-1162"));
	cr_assert_not_null(strstr(res.message, "`p11enroll products prod`"));
	cn_describe_error(&res, "prod", "", "", NULL);
	cr_assert_str_eq(res.message, "(no message)");
}

/* ---------- certificates ---------- */

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, long serial, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(x, key);
	X509_sign(x, signer, EVP_sha256());
	X509_NAME_free(name);
	return x;
}

static char *pem_of(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static char *replace_all(const char *s, const char *from, const char *to)
{
	size_t cap = strlen(s) * 2 + 1, o = 0;
	char *out = malloc(cap);

	while (*s) {
		if (strncmp(s, from, strlen(from)) == 0) {
			strcpy(out + o, to);
			o += strlen(to);
			s += strlen(from);
		} else {
			out[o++] = *s++;
		}
	}
	out[o] = '\0';
	return out;
}

static char *bare(const char *pem)
{
	char *out = malloc(strlen(pem) + 1);
	size_t o = 0;
	const char *p = strchr(pem, '\n') + 1, *end = strstr(pem, "-----END");

	for (; p < end; p++)
		out[o++] = *p;
	out[o] = '\0';
	return out;
}

static int parse(const char *leaf, const char *ca, const char *root, char **chain, char serial[130],
		 char *api)
{
	cJSON *r = cJSON_CreateObject(), *cd = cJSON_AddObjectToObject(r, "certificateDetails");
	time_t na;
	char why[128];
	int rc;

	cJSON_AddStringToObject(cd, "endEntityCertificate", leaf);
	cJSON_AddStringToObject(cd, "caCertificate", ca);
	cJSON_AddStringToObject(cd, "rootCertificate", root);
	cJSON_AddStringToObject(cd, "ceritficateSerialNumber", "DEADBEEF");
	rc = cn_parse_certificate(r, chain, serial, &na, api, 64, why, sizeof(why));
	if (rc == 0)
		cr_assert_gt(na, time(NULL));
	cJSON_Delete(r);
	return rc;
}

static int count(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(certificates, pem_bare_crlf_and_empty_fields)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256"), *leaf_key = EVP_EC_gen("P-256");
	X509 *ca = make_cert(ca_key, ca_key, NULL, 1, "Test CA");
	X509 *leaf = make_cert(leaf_key, ca_key, ca, 0x0A1234, "leaf.example");
	char *leaf_pem = pem_of(leaf), *ca_pem = pem_of(ca), *chain = NULL, serial[130], api[64];
	char *leaf_crlf = replace_all(leaf_pem, "\n", "\r\n"), *leaf_bare = bare(leaf_pem);
	char *two = malloc(strlen(ca_pem) * 2 + 1);

	cr_assert_eq(parse(leaf_pem, ca_pem, ca_pem, &chain, serial, api), 0);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 2, "root left out of the chain");
	cr_assert(strncmp(chain, leaf_pem, strlen(leaf_pem)) == 0, "leaf first");
	/* serial from the leaf, two digits per byte, not the (misspelt) API field */
	cr_assert_str_eq(serial, "0A1234");
	cr_assert_str_eq(api, "DEADBEEF");
	free(chain);

	cr_assert_eq(parse(leaf_crlf, ca_pem, "", &chain, serial, api), 0);
	cr_assert_eq(count(chain, "\r"), 0);
	free(chain);
	cr_assert_eq(parse(leaf_bare, "", ca_pem, &chain, serial, api), 0);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 2, "root used when caCertificate is empty");
	free(chain);
	cr_assert_eq(parse(leaf_pem, "", "", &chain, serial, api), 0);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 1);
	free(chain);
	strcpy(two, ca_pem);
	strcat(two, ca_pem);
	cr_assert_eq(parse(leaf_pem, two, "", &chain, serial, api), 0);
	cr_assert_eq(count(chain, "BEGIN CERTIFICATE"), 3, "every block of caCertificate");
	free(chain);

	cr_assert_neq(parse("", ca_pem, "", &chain, serial, api), 0);
	cr_assert_neq(parse("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
			    "", "", &chain, serial, api),
		      0);
	cr_assert_neq(parse(leaf_pem, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
			    "", &chain, serial, api),
		      0);
	free(two);
	free(leaf_crlf);
	free(leaf_bare);
	free(leaf_pem);
	free(ca_pem);
	X509_free(leaf);
	X509_free(ca);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(ca_key);
}

Test(dcv, record_names)
{
	char out[128];

	cn_dcv_record_name("_emsign-validation", "shop.example.net", out, sizeof(out));
	cr_assert_str_eq(out, "_emsign-validation.shop.example.net");
	cn_dcv_record_name("_emsign-validation", "*.example.net", out, sizeof(out));
	cr_assert_str_eq(out, "_emsign-validation.example.net");
}
