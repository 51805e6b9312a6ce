/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the sslstore provider's pure parts: request bodies per
 * product family, days → months, approver rules, response parsing and
 * judging, status mapping, chain assembly, CSR and id handling, config
 * errors, and that the auth token never shows in logs or messages. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "chain.h"
#include "http.h"
#include "log.h"
#include "provider.h"
#include "sslstore_wire.h"
#include "../testcerts.h"

#define TOKEN "0123456789abcdef-secret-token-77"

static const struct ss_auth AUTH = { "12345678", TOKEN, "p11e-replay-1", "p11enroll/test" };

/* ---- helpers ---------------------------------------------------------------- */

static const cJSON *at(const cJSON *o, const char *path)
{
	char buf[256], *save = NULL, *part;

	snprintf(buf, sizeof(buf), "%s", path);
	for (part = strtok_r(buf, ".", &save); part && o; part = strtok_r(NULL, ".", &save))
		o = cJSON_GetObjectItemCaseSensitive(o, part);
	return o;
}

static const char *str_at(const cJSON *o, const char *path)
{
	const cJSON *v = at(o, path);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(const cJSON *o, const char *path)
{
	const cJSON *v = at(o, path);

	cr_assert(cJSON_IsNumber(v), "%s is not a number", path);
	return v->valuedouble;
}

static void assert_auth(const cJSON *body)
{
	cr_assert_str_eq(str_at(body, "AuthRequest.PartnerCode"), "12345678");
	cr_assert_str_eq(str_at(body, "AuthRequest.AuthToken"), TOKEN);
	cr_assert_str_eq(str_at(body, "AuthRequest.ReplayToken"), "p11e-replay-1");
	cr_assert_str_eq(str_at(body, "AuthRequest.UserAgent"), "p11enroll/test");
	cr_assert(cJSON_IsFalse(at(body, "AuthRequest.IsUsedForTokenSystem")));
}

static struct p11e_strlist names(const char *csv)
{
	struct p11e_strlist l = { 0 };

	cr_assert_eq(p11e_strlist_split(&l, csv, ','), 0);
	return l;
}

static struct ss_params base_params(const char *product, const struct p11e_strlist *dns)
{
	struct ss_params p = { 0 };

	p.product = product;
	p.family = ss_product_family(product);
	p.months = 12;
	p.custom_order_id = "p11e-abc";
	p.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
	p.domain_name = "www.example.com";
	p.dns = dns;
	p.approver_email = "admin@example.com";
	p.server_count = 1;
	p.web_server_type = "Other";
	p.signature_hash = "PREFER_SHA2";
	p.admin = (struct ss_contact){ .first_name = "Dana",
				       .last_name = "Rivera",
				       .title = "IT Director",
				       .phone = "+1 217 555 0101",
				       .email = "dana@example.com" };
	p.tech = (struct ss_contact){ .email = "tech@example.com" };
	p.org = (struct ss_org){ .name = "Example Bank Inc",
				 .address = "500 Main Street",
				 .city = "Springfield",
				 .region = "IL",
				 .postal_code = "62701",
				 .country = "us",
				 .phone = "+1 217 555 0100",
				 .jurisdiction_country = "us" };
	return p;
}

/* ---- request bodies ----------------------------------------------------------- */

Test(body, sectigo_dv)
{
	struct p11e_strlist dns = names("www.example.com, example.com");
	struct ss_params p = base_params("positivessl", &dns);
	cJSON *b;

	p.org = (struct ss_org){ 0 }; /* DV: nothing of the organisation */
	b = ss_req_neworder(&AUTH, &p);
	cr_assert_not_null(b);
	assert_auth(b);
	cr_assert_str_eq(str_at(b, "CustomOrderID"), "p11e-abc");
	cr_assert_str_eq(str_at(b, "ProductCode"), "positivessl");
	cr_assert_eq(num_at(b, "ValidityPeriod"), 12);
	cr_assert_eq(num_at(b, "ServerCount"), 1);
	cr_assert_eq(num_at(b, "TSSOrganizationId"), 0);
	cr_assert_str_eq(str_at(b, "DomainName"), "www.example.com");
	cr_assert_eq(cJSON_GetArraySize(at(b, "DNSNames")), 2);
	cr_assert_str_eq(cJSON_GetArrayItem(at(b, "DNSNames"), 1)->valuestring, "example.com");
	cr_assert_str_eq(str_at(b, "ApproverEmail"), "admin@example.com");
	cr_assert_str_eq(str_at(b, "AdminContact.Email"), "dana@example.com");
	cr_assert(cJSON_IsObject(at(b, "OrganizationInfo.OrganizationAddress")));
	cr_assert_null(at(b, "OrganizationInfo.OrganizationName"));
	cr_assert(cJSON_IsFalse(at(b, "isRenewalOrder")));
	cr_assert_null(at(b, "RelatedTheSSLStoreOrderID"));
	cr_assert(cJSON_IsFalse(at(b, "FileAuthDVIndicator")));
	cr_assert(cJSON_IsFalse(at(b, "CNAMEAuthDVIndicator")));
	cr_assert_str_eq(str_at(b, "SignatureHashAlgorithm"), "PREFER_SHA2");
	cr_assert_str_eq(str_at(b, "WebServerType"), "Other");
	cr_assert_eq(num_at(b, "ReserveSANCount"), 0);
	cr_assert(strstr(str_at(b, "CSR"), "BEGIN CERTIFICATE REQUEST"));
	cJSON_Delete(b);
	p11e_strlist_free(&dns);
}

Test(body, sectigo_ov_and_ev)
{
	struct p11e_strlist dns = names("shop.example.org");
	struct ss_params p = base_params("sectigoovssl", &dns);
	cJSON *b = ss_req_neworder(&AUTH, &p);

	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationName"), "Example Bank Inc");
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.AddressLine1"),
			 "500 Main Street");
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.Region"), "IL");
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.PostalCode"), "62701");
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.Country"),
			 "US"); /* upper-cased */
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.Phone"), "+1 217 555 0100");
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.LocalityName"),
			 "Springfield");
	cJSON_Delete(b);

	p = base_params("sectigoevmdc", &dns);
	b = ss_req_neworder(&AUTH, &p);
	cr_assert_str_eq(str_at(b, "OrganizationInfo.JurisdictionCountry"), "US");
	cJSON_Delete(b);
	p11e_strlist_free(&dns);
}

Test(body, sectigo_mdc_reserves_names_beyond_three)
{
	struct p11e_strlist dns = names("www.example.com,a.example.com,b.example.com,c.example.com,"
					"WWW.example.com");
	struct ss_params p = base_params("positivemdcssl", &dns);
	cJSON *b = ss_req_neworder(&AUTH, &p);

	/* www (CN), a, b, c = 4 names, the duplicate counts once */
	cr_assert_eq(num_at(b, "ReserveSANCount"), 1);
	cJSON_Delete(b);
	p = base_params("positivessl", &dns);
	cr_assert_eq(ss_reserve_san_count(&p), 0);
	p11e_strlist_free(&dns);
}

Test(body, digicert_ov_ev)
{
	struct p11e_strlist dns = names("secure.example.com,login.example.com");
	struct ss_params p = base_params("digi_securesite_flex", &dns);
	cJSON *b = ss_req_neworder(&AUTH, &p);

	cr_assert_str_eq(str_at(b, "ProductCode"), "digi_securesite_flex");
	cr_assert_str_eq(str_at(b, "AdminContact.FirstName"), "Dana");
	cr_assert_str_eq(str_at(b, "AdminContact.LastName"), "Rivera");
	cr_assert_str_eq(str_at(b, "AdminContact.Phone"), "+1 217 555 0101");
	cr_assert_str_eq(str_at(b, "OrganizationInfo.OrganizationAddress.LocalityName"),
			 "Springfield");
	cr_assert_eq(num_at(b, "TSSOrganizationId"), 0);
	cJSON_Delete(b);

	p = base_params("digi_securesite_ev_flex", &dns);
	b = ss_req_neworder(&AUTH, &p);
	cr_assert_str_eq(str_at(b, "AdminContact.Title"), "IT Director");
	cJSON_Delete(b);
	p11e_strlist_free(&dns);
}

Test(body, digicert_eo)
{
	struct p11e_strlist dns = names("api.example.com");
	struct ss_params p = base_params("digi_sslwebserver_flex-EO", &dns);
	cJSON *b;

	p.org.id = 204518;
	cr_assert_eq(p.family, SS_DIGICERT_EO);
	b = ss_req_neworder(&AUTH, &p);
	cr_assert_str_eq(str_at(b, "ProductCode"), "digi_sslwebserver_flex"); /* -EO stripped */
	cr_assert_eq(num_at(b, "TSSOrganizationId"), 204518);
	cr_assert_null(at(b, "ApproverEmail"));
	cr_assert_null(at(b, "OrganizationInfo.OrganizationName"));
	cJSON_Delete(b);
	p11e_strlist_free(&dns);
}

Test(body, renewal_links_the_old_order)
{
	struct p11e_strlist dns = names("www.example.com");
	struct ss_params p = base_params("positivessl", &dns);
	cJSON *b;

	p.renewal = true;
	p.related_order_id = "4518230";
	b = ss_req_neworder(&AUTH, &p);
	cr_assert(cJSON_IsTrue(at(b, "isRenewalOrder")));
	cr_assert_str_eq(str_at(b, "RelatedTheSSLStoreOrderID"), "4518230");
	cJSON_Delete(b);
	p11e_strlist_free(&dns);
}

Test(body, reissue)
{
	struct p11e_strlist dns = names("*.example.com");
	struct ss_params p = base_params("positivesslwildcard", &dns);
	cJSON *b;

	p.domain_name = "*.example.com";
	p.cname_dcv = true;
	b = ss_req_reissue(&AUTH, &p, "4518230");
	assert_auth(b);
	cr_assert_str_eq(str_at(b, "TheSSLStoreOrderID"), "4518230");
	cr_assert(cJSON_IsTrue(at(b, "isWildCard")));
	cr_assert(cJSON_IsTrue(at(b, "CNAMEAuthDVIndicator")));
	cr_assert(cJSON_IsFalse(at(b, "isRenewalOrder")));
	cr_assert_str_eq(str_at(b, "ApproverEmails"), "admin@example.com");
	cr_assert_str_eq(str_at(b, "ReissueEmail"), "dana@example.com");
	cr_assert_eq(cJSON_GetArraySize(at(b, "DNSNames")), 1);
	cJSON_Delete(b);
	p11e_strlist_free(&dns);
}

Test(body, small_requests)
{
	cJSON *b = ss_req_order(&AUTH, "4518230", "p11e-x");

	assert_auth(b);
	cr_assert_str_eq(str_at(b, "TheSSLStoreOrderID"), "4518230");
	cr_assert_null(at(b, "CustomOrderID"));
	cJSON_Delete(b);
	b = ss_req_order(&AUTH, NULL, "p11e-x");
	cr_assert_str_eq(str_at(b, "CustomOrderID"), "p11e-x");
	cr_assert_null(at(b, "TheSSLStoreOrderID"));
	cJSON_Delete(b);
	b = ss_req_refund(&AUTH, "4518230", "keyCompromise: x");
	cr_assert_str_eq(str_at(b, "RefundReason"), "keyCompromise: x");
	cJSON_Delete(b);
	b = ss_req_approverlist(&AUTH, "digi_ssl_basic-EO", "www.example.com");
	cr_assert_str_eq(str_at(b, "ProductCode"), "digi_ssl_basic-EO"); /* as configured, -EO too */
	cr_assert_str_eq(str_at(b, "DomainName"), "www.example.com");
	cJSON_Delete(b);
	b = ss_req_query(&AUTH, 1747180800, 3, 50);
	cr_assert_str_eq(str_at(b, "StartDate"), "/Date(1747180800000)/");
	cr_assert_eq(num_at(b, "PageNumber"), 3);
	cr_assert_eq(num_at(b, "PageSize"), 50);
	cJSON_Delete(b);
	b = ss_req_query(&AUTH, 0, 1, 100);
	cr_assert_null(at(b, "StartDate"));
	cJSON_Delete(b);
	/* flat credentials (docs/protocol-sslstore.md "Credentials") */
	b = ss_req_validate(&AUTH);
	cr_assert_null(at(b, "AuthRequest"));
	cr_assert_str_eq(str_at(b, "PartnerCode"), "12345678");
	cr_assert_str_eq(str_at(b, "AuthToken"), TOKEN);
	cJSON_Delete(b);
	b = ss_req_orglist(&AUTH);
	cr_assert_null(at(b, "AuthRequest"));
	cr_assert_str_eq(str_at(b, "PartnerCode"), "12345678");
	cJSON_Delete(b);
	b = ss_req_products(&AUTH);
	assert_auth(b);
	cr_assert_eq(num_at(b, "ProductType"), 0);
	cJSON_Delete(b);
}

/* ---- families, validity --------------------------------------------------------- */

Test(family, classification)
{
	cr_assert_eq(ss_product_family("positivessl"), SS_SECTIGO_DV);
	cr_assert_eq(ss_product_family("sectigoovssl"), SS_SECTIGO_OV);
	cr_assert_eq(ss_product_family("enterprisepro"), SS_SECTIGO_EP);
	cr_assert_eq(ss_product_family("sectigoevssl"), SS_SECTIGO_EV);
	cr_assert_eq(ss_product_family("positiveevmdc"), SS_SECTIGO_EV);
	cr_assert_eq(ss_product_family("digi_sslwebserver_flex"), SS_DIGICERT_OV);
	cr_assert_eq(ss_product_family("digi_truebizid_ev_flex"), SS_DIGICERT_EV);
	cr_assert_eq(ss_product_family("digi_truebizid_ev_flex-EO"), SS_DIGICERT_EO);
	cr_assert_eq(ss_product_family("digi_securesite_pro_flex"), SS_DIGICERT_EO);
	cr_assert_eq(ss_product_family("digi_rapidssl"), SS_DIGICERT_DV);
	cr_assert_eq(ss_product_family("nosuchproduct"), SS_OTHER);
	cr_assert(ss_family_is_digicert(SS_DIGICERT_EO));
	cr_assert_not(ss_family_is_digicert(SS_SECTIGO_EV));
}

Test(family, missing_keys)
{
	struct ss_params p = { 0 };
	char out[512];

	p.product = "positivessl";
	p.family = SS_SECTIGO_DV;
	cr_assert_eq(ss_family_missing(&p, out, sizeof(out)), 2);
	cr_assert_str_eq(out, "admin_email, approver_email");
	p.cname_dcv = true; /* no e-mail validation: no approver needed */
	cr_assert_eq(ss_family_missing(&p, out, sizeof(out)), 1);
	cr_assert_str_eq(out, "admin_email");

	p = (struct ss_params){ .product = "sectigoevssl",
				.family = SS_SECTIGO_EV,
				.approver_email = "a@b.co" };
	ss_family_missing(&p, out, sizeof(out));
	cr_assert_str_eq(out, "org_jurisdiction_country, admin_email, org_name, org_address, "
			      "org_region, org_postal_code, org_country, org_phone");

	p = (struct ss_params){ .product = "enterprisepro",
				.family = SS_SECTIGO_EP,
				.approver_email = "a@b.co" };
	ss_family_missing(&p, out, sizeof(out));
	cr_assert(strstr(out, "admin_first_name"));
	cr_assert_null(strstr(out, "admin_email"));

	p = (struct ss_params){ .product = "digi_securesite_ev_flex",
				.family = SS_DIGICERT_EV,
				.approver_email = "a@b.co" };
	ss_family_missing(&p, out, sizeof(out));
	cr_assert_str_eq(out, "admin_title, admin_first_name, admin_last_name, admin_phone, "
			      "admin_email, org_name, org_address, org_city, org_region, "
			      "org_postal_code, org_country, org_phone");

	p = (struct ss_params){ .product = "digi_rapidssl", .family = SS_DIGICERT_DV };
	ss_family_missing(&p, out, sizeof(out));
	cr_assert_str_eq(out, "tech_email, approver_email");

	p = (struct ss_params){ .product = "digi_ssl_basic-EO", .family = SS_DIGICERT_EO };
	cr_assert_eq(ss_family_missing(&p, out, sizeof(out)), 1);
	cr_assert_str_eq(out, "org_id");
	p.org.id = 204518;
	cr_assert_eq(ss_family_missing(&p, out, sizeof(out)), 0);

	/* legacy code: full contacts, once each */
	p = (struct ss_params){ .product = "comodossl",
				.family = SS_SECTIGO_OV,
				.approver_email = "a@b.co" };
	ss_family_missing(&p, out, sizeof(out));
	cr_assert(strstr(out, "tech_first_name"));
	cr_assert_null(strstr(strstr(out, "admin_email") + 1, "admin_email"));
}

Test(validity, days_to_months_table)
{
	static const struct {
		long days;
		int sectigo, digicert;
	} rows[] = {
		{ 1, 1, 1 },      { 30, 1, 1 },     { 90, 3, 3 },     { 180, 6, 6 },
		{ 365, 12, 12 },  { 397, 12, 12 },  { 398, 12, 12 },  { 730, 24, 24 },
		{ 1095, 36, 36 }, { 1460, 48, 48 }, { 1825, 60, 60 }, { 2190, 60, 72 },
		{ 5000, 60, 72 },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		cr_expect_eq(ss_days_to_months(rows[i].days, false), rows[i].sectigo, "%ld days",
			     rows[i].days);
		cr_expect_eq(ss_days_to_months(rows[i].days, true), rows[i].digicert, "%ld days",
			     rows[i].days);
	}
	cr_assert_eq(ss_days_to_months(0, false), 0);
	cr_assert_eq(ss_days_to_months(-5, true), 0);
}

/* ---- approver rules ------------------------------------------------------------- */

static struct p11e_strlist role_list(const char *base)
{
	char buf[512];

	snprintf(buf, sizeof(buf),
		 "admin@%s,administrator@%s,hostmaster@%s,postmaster@%s,webmaster@%s", base, base,
		 base, base, base);
	return names(buf);
}

Test(approver, split_trims_and_lowercases)
{
	struct p11e_strlist l;

	cr_assert_eq(ss_approver_split(" Admin@Example.COM ,, webmaster@example.org ", &l), 0);
	cr_assert_eq(l.n, 2);
	cr_assert_str_eq(l.v[0], "admin@example.com");
	cr_assert_str_eq(l.v[1], "webmaster@example.org");
	p11e_strlist_free(&l);
}

Test(approver, digicert_rules)
{
	const char *domains[] = { "www.example.com", "www.example.org" };
	struct p11e_strlist lists[2] = { role_list("example.com"), role_list("example.org") };
	struct p11e_strlist given;
	char why[900];

	ss_approver_split("admin@example.com", &given);
	cr_assert_eq(ss_approver_rule(true, &given, domains, lists, 1, why, sizeof(why)), 0);
	p11e_strlist_free(&given);

	ss_approver_split("admin@example.com,webmaster@example.com", &given);
	cr_assert_eq(ss_approver_rule(true, &given, domains, lists, 1, why, sizeof(why)), -1);
	cr_assert(strstr(why, "exactly one"));
	p11e_strlist_free(&given);

	/* only the first domain counts for DigiCert */
	ss_approver_split("admin@example.org", &given);
	cr_assert_eq(ss_approver_rule(true, &given, domains, lists, 1, why, sizeof(why)), -1);
	cr_assert(strstr(why, "not valid for www.example.com"));
	cr_assert(strstr(why, "hostmaster@example.com"), "valid ones listed: %s", why);
	p11e_strlist_free(&given);
	p11e_strlist_free(&lists[0]);
	p11e_strlist_free(&lists[1]);
}

Test(approver, sectigo_rules)
{
	const char *domains[] = { "www.example.com", "www.example.org" };
	struct p11e_strlist lists[2] = { role_list("example.com"), role_list("example.org") };
	struct p11e_strlist given, empty = { 0 };
	char why[900];

	/* every domain covered */
	ss_approver_split("Admin@example.com, webmaster@example.org", &given);
	cr_assert_eq(ss_approver_rule(false, &given, domains, lists, 2, why, sizeof(why)), 0, "%s",
		     why);
	p11e_strlist_free(&given);
	/* one domain left uncovered */
	ss_approver_split("admin@example.com", &given);
	cr_assert_eq(ss_approver_rule(false, &given, domains, lists, 2, why, sizeof(why)), -1);
	cr_assert(strstr(why, "www.example.org"));
	cr_assert(strstr(why, "postmaster@example.org"));
	p11e_strlist_free(&given);
	/* a stray address valid for no name */
	ss_approver_split("admin@example.com,admin@example.org,ceo@example.com", &given);
	cr_assert_eq(ss_approver_rule(false, &given, domains, lists, 2, why, sizeof(why)), -1);
	cr_assert(strstr(why, "ceo@example.com"));
	p11e_strlist_free(&given);
	/* none given: say which are valid */
	cr_assert_eq(ss_approver_rule(false, &empty, domains, lists, 2, why, sizeof(why)), -1);
	cr_assert(strstr(why, "admin@example.com"));
	p11e_strlist_free(&lists[0]);
	p11e_strlist_free(&lists[1]);
}

/* ---- response parsing ----------------------------------------------------------- */

static int error_of(const char *json, char *msg, size_t n, char *code)
{
	cJSON *j = cJSON_Parse(json);
	int rc;

	cr_assert_not_null(j, "%s", json);
	rc = ss_resp_error(j, msg, n, code, 64);
	cJSON_Delete(j);
	return rc;
}

Test(response, auth_response_shapes)
{
	char msg[512], code[64];

	cr_assert_eq(error_of("{\"AuthResponse\":{\"isError\":false,\"Message\":null}}", msg,
			      sizeof(msg), code),
		     0);
	cr_assert_eq(error_of("{\"AuthResponse\":{\"isError\":true,\"Message\":[\"Invalid order id.\","
			      "\"Second.\"]}}",
			      msg, sizeof(msg), code),
		     1);
	cr_assert_str_eq(msg, "Invalid order id.; Second.");
	cr_assert_str_eq(code, "");
	/* a bare string (OQ-7) */
	cr_assert_eq(error_of("{\"AuthResponse\":{\"isError\":true,\"Message\":\"Bad thing\"}}", msg,
			      sizeof(msg), code),
		     1);
	cr_assert_str_eq(msg, "Bad thing");
	/* the vendor form (docs/protocol-sslstore.md "Reading an answer") */
	cr_assert_eq(error_of("{\"AuthResponse\":{\"isError\":true,\"Message\":[\"ErrorCode:-9009|"
			      "Message:Vendor returns error:bad country\"]}}",
			      msg, sizeof(msg), code),
		     1);
	cr_assert_str_eq(code, "-9009");
	cr_assert_str_eq(msg, "Vendor returns error:bad country");
	/* flat (health/validate) */
	cr_assert_eq(error_of("{\"isError\":true,\"Message\":[\"Invalid Partner Code or Auth Token.\"]}",
			      msg, sizeof(msg), code),
		     1);
	cr_assert_eq(ss_classify_message(msg), SS_ERR_AUTH);
	/* arrays: element 0; empty is fine */
	cr_assert_eq(error_of("[{\"AuthResponse\":{\"isError\":true,\"Message\":[\"x\"]}},{}]", msg,
			      sizeof(msg), code),
		     1);
	cr_assert_eq(error_of("[]", msg, sizeof(msg), code), 0);
	/* casing drift survives */
	cr_assert_eq(error_of("{\"authResponse\":{\"IsError\":true,\"message\":[\"drift\"]}}", msg,
			      sizeof(msg), code),
		     1);
	cr_assert_str_eq(msg, "drift");
	/* no isError anywhere, or not boolean: malformed */
	cr_assert_eq(error_of("{\"TheSSLStoreOrderID\":\"1\"}", msg, sizeof(msg), code), -1);
	cr_assert_eq(error_of("{\"AuthResponse\":{\"isError\":\"false\"}}", msg, sizeof(msg), code),
		     -1);
	cr_assert_eq(error_of("\"text\"", msg, sizeof(msg), code), -1);
	/* error without text */
	cr_assert_eq(error_of("{\"AuthResponse\":{\"isError\":true,\"Message\":[]}}", msg, sizeof(msg),
			      code),
		     1);
	cr_assert_str_eq(msg, "no reason given");
}

Test(response, classify_messages)
{
	cr_assert_eq(ss_classify_message("Invalid TheSSLStoreOrderID: 99."), SS_ERR_NOT_FOUND);
	cr_assert_eq(ss_classify_message("Invalid CustomOrderID: p11e-x."), SS_ERR_NOT_FOUND);
	cr_assert_eq(ss_classify_message("CustomOrderID p11e-x already exists."), SS_ERR_DUPLICATE);
	cr_assert_eq(ss_classify_message("Invalid Partner Code or Auth Token."), SS_ERR_AUTH);
	cr_assert_eq(ss_classify_message("PartnerCode and AuthToken are required."), SS_ERR_AUTH);
	cr_assert_eq(ss_classify_message("Invalid ValidityPeriod 13 (months)"), SS_ERR_OTHER);
}

static struct p11e_http_response http_resp(p11e_http_kind kind, long status, const char *body)
{
	struct p11e_http_response r = { 0 };

	r.kind = kind;
	r.status = status;
	r.body = body ? (char *)body : NULL;
	r.len = body ? strlen(body) : 0;
	snprintf(r.error, sizeof(r.error), "%s", "simulated transport error");
	return r;
}

static p11e_ca_outcome judge(p11e_http_kind kind, long status, const char *body, bool place,
			     struct p11e_ca_result *res)
{
	struct p11e_http_response r = http_resp(kind, status, body);
	enum ss_errkind k;
	cJSON *out = NULL;
	p11e_ca_outcome o;

	memset(res, 0, sizeof(*res));
	o = ss_judge(&r, "new order", "https://127.0.0.1:1", place, "p11e-r1", &out, &k, res);
	cr_assert((o == P11E_CA_OK) == (out != NULL));
	cJSON_Delete(out);
	return o;
}

Test(response, judge_every_error_shape)
{
	struct p11e_ca_result res;
	const char *ok = "{\"AuthResponse\":{\"isError\":false,\"ReplayToken\":\"p11e-r1\"},"
			 "\"TheSSLStoreOrderID\":\"1\"}";

	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 200, ok, true, &res), P11E_CA_OK);
	/* the CA refused: its words surface, whatever the status */
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 200,
			   "{\"AuthResponse\":{\"isError\":true,\"Message\":[\"ErrorCode:-42|Message:No.\"]}}",
			   true, &res),
		     P11E_CA_REJECTED);
	cr_assert_str_eq(res.ca_code, "-42");
	cr_assert_str_eq(res.message, "No.");
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 400,
			   "{\"AuthResponse\":{\"isError\":true,\"Message\":[\"not JSON\"]}}", false,
			   &res),
		     P11E_CA_REJECTED);
	/* placements: whatever may have reached the CA is UNKNOWN, never retried */
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 500, "<html>", true, &res), P11E_CA_UNKNOWN);
	cr_assert(strstr(res.message, "CustomOrderID"));
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 503, "<html>", false, &res), P11E_CA_UNREACHABLE);
	cr_assert_eq(judge(P11E_HTTP_MAYBE_SENT, 0, NULL, true, &res), P11E_CA_UNKNOWN);
	cr_assert_eq(judge(P11E_HTTP_TOO_LARGE, 200, NULL, true, &res), P11E_CA_UNKNOWN);
	cr_assert_eq(judge(P11E_HTTP_TOO_LARGE, 200, NULL, false, &res), P11E_CA_UNREACHABLE);
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 200, "{\"AuthResponse\":{\"isEr", true, &res),
		     P11E_CA_UNKNOWN);
	cr_assert(strstr(res.message, "not JSON"));
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 200, "{\"AuthResponse\":{\"isEr", false, &res),
		     P11E_CA_UNREACHABLE);
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 200, "{\"x\":1}", true, &res), P11E_CA_UNKNOWN);
	/* an answer to another request */
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 200,
			   "{\"AuthResponse\":{\"isError\":false,\"ReplayToken\":\"other\"}}", true,
			   &res),
		     P11E_CA_UNKNOWN);
	/* nothing sent: safe to say unreachable even for a placement */
	cr_assert_eq(judge(P11E_HTTP_NOT_SENT, 0, NULL, true, &res), P11E_CA_UNREACHABLE);
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 429, "slow down", true, &res), P11E_CA_UNREACHABLE);
	cr_assert_eq(judge(P11E_HTTP_LOCAL, 0, NULL, true, &res), P11E_CA_MISCONFIGURED);
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 404, "<html>", true, &res), P11E_CA_MISCONFIGURED);
	cr_assert(strstr(res.message, "api_url"));
	cr_assert_eq(judge(P11E_HTTP_RESPONSE, 401, "", false, &res), P11E_CA_MISCONFIGURED);
	cr_assert(strstr(res.message, "auth_token_file"));
}

Test(response, status_words)
{
	static const struct {
		const char *major, *minor;
		p11e_ca_outcome want;
		bool known;
	} rows[] = {
		{ "Initial", "", P11E_CA_PENDING, true },
		{ "Pending", "", P11E_CA_PENDING, true },
		{ "Pending", "REJECTED", P11E_CA_REJECTED, true },
		{ "Active", "", P11E_CA_ISSUED, true },
		{ "ACTIVE", "", P11E_CA_ISSUED, true },
		{ "Active", "PENDING_REISSUE", P11E_CA_PENDING, true },
		{ "Active", "REJECTED", P11E_CA_REJECTED, true }, /* reissue rejected */
		{ "Cancelled", "", P11E_CA_REJECTED, true },
		{ "Cancelled", "REFUNDED", P11E_CA_REJECTED, true },
		{ "Cancelled", "REVOKED", P11E_CA_REJECTED, true },
		{ "Cancelled", "REJECTED", P11E_CA_REJECTED, true },
		{ "Rejected", "", P11E_CA_REJECTED, true },
		{ "Revoked", "", P11E_CA_REJECTED, true },
		{ "Expired", "", P11E_CA_REJECTED, true },
		{ "Issued", "", P11E_CA_ISSUED, true },
		{ "SomethingNew", "", P11E_CA_PENDING, false },
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		bool known;

		cr_expect_eq(ss_status_outcome(rows[i].major, rows[i].minor, &known), rows[i].want,
			     "%s/%s", rows[i].major, rows[i].minor);
		cr_expect_eq(known, rows[i].known, "%s", rows[i].major);
	}
}

Test(response, order_object)
{
	cJSON *j = cJSON_Parse(
		"{\"AuthResponse\":{\"isError\":false},\"TheSSLStoreOrderID\":4518230,"
		"\"PartnerOrderID\":\"88213467\",\"CustomOrderID\":\"p11e-a\","
		"\"OrderStatus\":{\"MajorStatus\":\"Pending\",\"MinorStatus\":\"\","
		"\"DomainAuthVettingStatus\":[{\"domain\":\"a.example.com\",\"DNSName\":\"_x.a.example.com\","
		"\"DNSEntry\":\"y.sectigo.com\"}]},"
		"\"CertificateEndDateInUTC\":\"06/14/2027 23:59:59\","
		"\"OrderExpiryDateInUTC\":\"01/01/1900 00:00:00\",\"SerialNumber\":\"0A1B\","
		"\"RefundRequestID\":\"\",\"isRefundApproved\":false}");
	struct ss_order_info info;

	cr_assert_eq(ss_parse_order(j, &info), 0);
	cr_assert_str_eq(info.order_id, "4518230"); /* a number is accepted (OQ-6) */
	cr_assert_str_eq(info.partner_order_id, "88213467");
	cr_assert_str_eq(info.custom_order_id, "p11e-a");
	cr_assert_str_eq(info.major, "Pending");
	cr_assert_str_eq(info.cname_name, "_x.a.example.com");
	cr_assert_str_eq(info.cname_value, "y.sectigo.com");
	cr_assert_eq(info.cert_end_t, 1813017599);
	cr_assert_not(info.order_expiry_known); /* 1900 = unset */
	cr_assert_str_eq(info.serial, "0A1B");
	cJSON_Delete(j);
	cr_assert_eq(ss_parse_order(NULL, &info), -1);
}

Test(response, dates)
{
	time_t t;

	cr_assert_eq(ss_parse_date("05/14/2026 09:30:12", &t), 0);
	cr_assert_eq(t, 1778751012);
	cr_assert_eq(ss_parse_date("05-14-2026 09:30:12", &t), 0);
	cr_assert_eq(t, 1778751012);
	cr_assert_eq(ss_parse_date("2026-05-14T09:30:12Z", &t), 0);
	cr_assert_eq(t, 1778751012);
	cr_assert_eq(ss_parse_date("/Date(1778751012000)/", &t), 0);
	cr_assert_eq(t, 1778751012);
	cr_assert_eq(ss_parse_date("05/14/2026", &t), 0);
	cr_assert_eq(t, 1778716800);
	cr_assert_eq(ss_parse_date("01/01/1900 00:00:00", &t), -1);
	cr_assert_eq(ss_parse_date("soon", &t), -1);
	cr_assert_eq(ss_parse_date("13/40/2026 00:00:00", &t), -1);
	cr_assert_eq(ss_parse_date("", &t), -1);
}

/* ---- chains --------------------------------------------------------------------- */

static char *to_pem(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m;
	char *s;

	PEM_write_bio_X509(b, x);
	BIO_get_mem_ptr(b, &m);
	s = strndup(m->data, m->length);
	BIO_free(b);
	return s;
}

struct pki {
	EVP_PKEY *rk, *ik, *lk, *ok;
	char *root, *inter, *leaf, *other_leaf, *stranger;
};

static void make_pki(struct pki *p)
{
	X509 *r, *i, *l, *o, *s;

	p->rk = ec_key();
	p->ik = ec_key();
	p->lk = ec_key();
	p->ok = ec_key();
	r = make_cert("Sim Root", p->rk, "Sim Root", p->rk, true, 1);
	i = make_cert("Sim Intermediate", p->ik, "Sim Root", p->rk, true, 2);
	l = make_cert("www.example.com", p->lk, "Sim Intermediate", p->ik, false, 0x1234abcd);
	o = make_cert("other.example.com", p->ok, "Sim Intermediate", p->ik, false, 99);
	/* same issuer NAME as the leaf's, but signed by another key: no link */
	s = make_cert("Sim Intermediate", p->ok, "Sim Root", p->ok, true, 7);
	p->root = to_pem(r);
	p->inter = to_pem(i);
	p->leaf = to_pem(l);
	p->other_leaf = to_pem(o);
	p->stranger = to_pem(s);
	X509_free(r);
	X509_free(i);
	X509_free(l);
	X509_free(o);
	X509_free(s);
}

static void free_pki(struct pki *p)
{
	EVP_PKEY_free(p->rk);
	EVP_PKEY_free(p->ik);
	EVP_PKEY_free(p->lk);
	EVP_PKEY_free(p->ok);
	free(p->root);
	free(p->inter);
	free(p->leaf);
	free(p->other_leaf);
	free(p->stranger);
}

/* A download answer whose Certificates hold `n` FileContent entries. */
static cJSON *download_answer(const char *const *contents, size_t n)
{
	cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "Certificates");

	for (size_t k = 0; k < n; k++) {
		cJSON *e = cJSON_CreateObject();

		cJSON_AddStringToObject(e, "FileName", "x.crt");
		cJSON_AddStringToObject(e, "FileContent", contents[k]);
		cJSON_AddItemToArray(arr, e);
	}
	return j;
}

/* The provider's text for the agent's chain module (common/chain.h): the
 * leaf is the one for `key`, then intermediate[, root]. */
static void assert_chain(const char *pem, EVP_PKEY *key, const struct pki *p, bool with_root)
{
	struct p11e_err err = { 0 };
	STACK_OF(X509) *cas = NULL;
	X509 *leaf = NULL;
	char *text;

	cr_assert_eq(p11e_chain_build(pem, key, &leaf, &cas, &err), P11E_OK, "%s", err.msg);
	text = p11e_certs_pem(leaf, cas, -1);
	cr_assert_eq(strstr(text, key == p->lk ? p->leaf : p->other_leaf), text, "leaf first");
	cr_assert_gt(strstr(text, p->inter), text);
	if (with_root)
		cr_assert_gt(strstr(text, p->root), strstr(text, p->inter));
	else
		cr_assert_null(strstr(text, p->root));
	cr_assert_null(strstr(text, p->stranger));
	free(text);
	X509_free(leaf);
	sk_X509_pop_free(cas, X509_free);
}

Test(download, pieces_as_received_in_every_order)
{
	struct pki p;
	char *pem;
	size_t entries;

	make_pki(&p);
	{
		const char *sets[][3] = {
			{ p.inter, p.leaf, NULL },   { p.leaf, p.inter, NULL },
			{ p.root, p.inter, p.leaf }, { p.inter, p.root, p.leaf },
			{ p.leaf, p.root, p.inter }, { p.root, p.leaf, p.inter },
		};

		for (size_t k = 0; k < 6; k++) {
			size_t n = sets[k][2] ? 3 : 2;
			cJSON *j = download_answer(sets[k], n);

			cr_assert_eq(ss_parse_download(j, &pem, &entries), (int)n);
			cr_assert_eq(entries, n);
			/* as received: nothing picked or reordered by the provider */
			cr_assert_eq(strstr(pem, sets[k][0]), pem, "set %zu", k);
			assert_chain(pem, p.lk, &p, n == 3);
			free(pem);
			cJSON_Delete(j);
		}
	}
	free_pki(&p);
}

Test(download, bundles_duplicates_strangers_and_two_leaves)
{
	struct pki p;
	char *pem, *bundle, *bare_leaf;
	size_t entries, len;

	make_pki(&p);
	len = strlen(p.inter) + strlen(p.leaf) + 1;
	bundle = malloc(len);
	snprintf(bundle, len, "%s%s", p.inter, p.leaf);
	/* the base64 body of the other leaf's PEM: a bare DER entry */
	bare_leaf = strndup(strchr(p.other_leaf, '\n') + 1, (size_t)(strstr(p.other_leaf, "-----END") -
								     strchr(p.other_leaf, '\n') - 1));
	{
		const char *set[] = { p.stranger, bundle, p.inter, "a readme, not a certificate",
				      bare_leaf };
		cJSON *j = download_answer(set, 5);

		cr_assert_eq(ss_parse_download(j, &pem, &entries), 5);
		cr_assert_eq(entries, 5);
		assert_chain(pem, p.lk, &p, false);
		free(pem);
		cJSON_Delete(j);
	}
	{
		/* two end-entity certificates: the key says which is ours */
		const char *set[] = { bundle, bare_leaf };
		cJSON *j = download_answer(set, 2);

		cr_assert_eq(ss_parse_download(j, &pem, &entries), 3);
		assert_chain(pem, p.lk, &p, false);
		assert_chain(pem, p.ok, &p, false);
		free(pem);
		cJSON_Delete(j);
	}
	free(bare_leaf);
	free(bundle);
	free_pki(&p);
}

Test(download, empty_or_nothing_readable)
{
	char *pem = (char *)"x";
	size_t entries = 9;
	cJSON *j = download_answer(NULL, 0);

	cr_assert_eq(ss_parse_download(j, &pem, &entries), 0);
	cr_assert_eq(entries, 0);
	cr_assert_null(pem);
	cJSON_Delete(j);
	{
		const char *set[] = { "not a certificate" };

		j = download_answer(set, 1);
		cr_assert_eq(ss_parse_download(j, &pem, &entries), 0);
		cr_assert_eq(entries, 1);
		cr_assert_null(pem);
		cJSON_Delete(j);
	}
	j = cJSON_Parse("{\"certificates\": [{\"filecontent\": 1}, 2]}");
	cr_assert_eq(ss_parse_download(j, &pem, &entries), 0);
	cr_assert_eq(entries, 0);
	cJSON_Delete(j);
}

/* ---- CSR, ids -------------------------------------------------------------------- */

static char *make_csr_pem(void)
{
	EVP_PKEY *k = ec_key();
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	BIO *b = BIO_new(BIO_s_mem());
	BUF_MEM *m;
	char *s;

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"www.example.com", -1,
				   -1, 0);
	X509_REQ_set_subject_name(r, n);
	X509_REQ_set_pubkey(r, k);
	X509_REQ_sign(r, k, EVP_sha256());
	PEM_write_bio_X509_REQ(b, r);
	BIO_get_mem_ptr(b, &m);
	s = strndup(m->data, m->length);
	BIO_free(b);
	X509_NAME_free(n);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
	return s;
}

Test(csr, normalised_to_pem_lf_64)
{
	char *pem = make_csr_pem(), *crlf, *bare, *out;
	size_t k = 0;

	/* CRLF line ends */
	crlf = calloc(1, strlen(pem) * 2 + 1);
	for (const char *c = pem; *c; c++) {
		if (*c == '\n')
			crlf[k++] = '\r';
		crlf[k++] = *c;
	}
	out = ss_csr_normalize(crlf);
	cr_assert_str_eq(out, pem);
	free(out);
	/* bare base64 on one line */
	bare = calloc(1, strlen(pem) + 1);
	k = 0;
	for (const char *c = strchr(pem, '\n') + 1; *c && *c != '-'; c++)
		if (*c != '\n')
			bare[k++] = *c;
	out = ss_csr_normalize(bare);
	cr_assert_str_eq(out, pem);
	for (const char *line = out; *line; line = strchr(line, '\n') + 1)
		cr_assert_leq(strcspn(line, "\n"), 64);
	free(out);
	cr_assert_null(ss_csr_normalize("garbage"));
	cr_assert_null(ss_csr_normalize("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END "
					"CERTIFICATE REQUEST-----\n"));
	cr_assert_null(ss_csr_normalize(NULL));
	free(bare);
	free(crlf);
	free(pem);
}

Test(ids, custom_order_id)
{
	char a[72], b[72];
	char longid[200];

	cr_assert_eq(ss_custom_order_id("web-20260514T093012Z-4f9c", a, sizeof(a)), 0);
	cr_assert_str_eq(a, "p11e-web-20260514T093012Z-4f9c");
	cr_assert_eq(ss_custom_order_id("web/odd id:1", a, sizeof(a)), 0);
	cr_assert_str_eq(a, "p11e-web-odd-id-1");
	memset(longid, 'x', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	cr_assert_eq(ss_custom_order_id(longid, a, sizeof(a)), 0);
	cr_assert_eq(ss_custom_order_id(longid, b, sizeof(b)), 0);
	cr_assert_str_eq(a, b); /* deterministic: reconcile finds it again */
	cr_assert_eq(strlen(a), 5 + 32);
	longid[0] = 'y';
	cr_assert_eq(ss_custom_order_id(longid, b, sizeof(b)), 0);
	cr_assert_str_neq(a, b);
	cr_assert_eq(ss_custom_order_id("", a, sizeof(a)), -1);
	cr_assert_eq(ss_custom_order_id(NULL, a, sizeof(a)), -1);
}

/* ---- secrets --------------------------------------------------------------------- */

Test(secrets, token_redacted_from_logged_bodies)
{
	struct p11e_strlist dns = names("www.example.com");
	struct ss_params p = base_params("positivessl", &dns);
	cJSON *bodies[] = { ss_req_neworder(&AUTH, &p), ss_req_validate(&AUTH), ss_req_orglist(&AUTH),
			    ss_req_query(&AUTH, 0, 1, 10) };

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		char *text = cJSON_PrintUnformatted(bodies[i]);
		char *red = p11e_redact(text, strlen(text), NULL);

		cr_assert(strstr(text, TOKEN));
		cr_assert_null(strstr(red, TOKEN), "token visible in %s", red);
		cr_assert(strstr(red, "12345678"));
		free(red);
		free(text);
		cJSON_Delete(bodies[i]);
	}
	p11e_strlist_free(&dns);
}

static char tokfile[64];

static void write_token(mode_t mode)
{
	int fd;

	snprintf(tokfile, sizeof(tokfile), "/tmp/p11e-sstest-XXXXXX");
	fd = mkstemp(tokfile);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, TOKEN "\n", strlen(TOKEN) + 1), (ssize_t)strlen(TOKEN) + 1);
	fchmod(fd, mode);
	close(fd);
}

static p11e_status open_with(const struct p11e_setting *v, size_t n, struct p11e_err *err)
{
	const struct p11e_ca_ops *ops = p11e_ca_lookup("sslstore");
	struct p11e_settings s = { v, n };
	struct p11e_ca *ca = NULL;
	p11e_status rc;

	cr_assert_not_null(ops);
	memset(err, 0, sizeof(*err));
	rc = ops->open("store", &s, &ca, err);
	if (ca)
		ops->close(ca);
	cr_assert_null(strstr(err->msg, TOKEN), "token in message: %s", err->msg);
	return rc;
}

Test(config, errors_name_file_and_line, .init = cr_redirect_stderr)
{
	struct p11e_err err;

	p11e_log_set_level(P11E_LOG_DEBUG);
	write_token(0600);
	{
		struct p11e_setting v[] = {
			{ "api_url", "https://127.0.0.1:1", "/etc/p.conf", 10 },
			{ "partner_code", "12345678", "/etc/p.conf", 11 },
			{ "auth_token_file", tokfile, "/etc/p.conf", 12 },
			{ "default_product", "positivessl", "/etc/p.conf", 13 },
		};

		cr_assert_eq(open_with(v, 4, &err), P11E_OK, "%s", err.msg);
	}
	{
		struct p11e_setting v[] = {
			{ "api_url", "https://127.0.0.1:1", "/etc/p.conf", 10 },
			{ "partner_code", "12345678", "/etc/p.conf", 11 },
			{ "auth_token_file", tokfile, "/etc/p.conf", 12 },
			{ "org_country", "Germany", "/etc/p.conf", 21 },
		};

		cr_assert_eq(open_with(v, 4, &err), P11E_EUSAGE);
		cr_assert(strstr(err.msg, "/etc/p.conf:21"), "%s", err.msg);
		cr_assert(strstr(err.msg, "two-letter"), "%s", err.msg);
	}
	{
		struct p11e_setting v[] = {
			{ "api_url", "https://127.0.0.1:1", "/etc/p.conf", 10 },
			{ "partner_code", "12345678", "/etc/p.conf", 11 },
			{ "auth_token_file", tokfile, "/etc/p.conf", 12 },
			{ "colour", "blue", "/etc/p.conf", 30 },
		};

		cr_assert_eq(open_with(v, 4, &err), P11E_EUSAGE);
		cr_assert(strstr(err.msg, "/etc/p.conf:30"), "%s", err.msg);
		cr_assert(strstr(err.msg, "colour"), "%s", err.msg);
	}
	{
		struct p11e_setting v[] = {
			{ "api_url", "https://127.0.0.1:1", "/etc/p.conf", 10 },
			{ "partner_code", "12345678", "/etc/p.conf", 11 },
			{ "auth_token_file", tokfile, "/etc/p.conf", 12 },
			{ "validity", "13", "/etc/p.conf", 14 },
		};

		cr_assert_eq(open_with(v, 4, &err), P11E_EUSAGE);
		cr_assert(strstr(err.msg, "/etc/p.conf:14"), "%s", err.msg);
	}
	{
		struct p11e_setting v[] = {
			{ "api_url", "https://127.0.0.1:1", "/etc/p.conf", 10 },
			{ "auth_token_file", tokfile, "/etc/p.conf", 12 },
		};

		cr_assert_eq(open_with(v, 2, &err), P11E_EUSAGE);
		cr_assert(strstr(err.msg, "partner_code"), "%s", err.msg);
	}
	unlink(tokfile);
	/* a token file others can read is refused, with the fix */
	write_token(0644);
	{
		struct p11e_setting v[] = {
			{ "api_url", "https://127.0.0.1:1", "/etc/p.conf", 10 },
			{ "partner_code", "12345678", "/etc/p.conf", 11 },
			{ "auth_token_file", tokfile, "/etc/p.conf", 12 },
		};

		cr_assert_eq(open_with(v, 3, &err), P11E_EUSAGE);
		cr_assert(strstr(err.msg, "/etc/p.conf:12"), "%s", err.msg);
		cr_assert(strstr(err.msg, "chmod 600"), "%s", err.msg);
	}
	unlink(tokfile);
	fflush(stderr);
	{
		/* nothing logged on the way carries the token */
		FILE *f = cr_get_redirected_stderr();
		char buf[4096];
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		cr_assert_null(strstr(buf, TOKEN));
	}
}

Test(config, keys_lists_are_complete)
{
	const struct p11e_ca_ops *ops = p11e_ca_lookup("sslstore");
	static const char *const want_ca[] = {
		"api_url",
		"partner_code",
		"auth_token_file",
		"default_product",
		"approver_email",
		"renewal_window",
		"validity",
		"ca_bundle",
		"timeout",
		"connect_timeout",
		"server_count",
		"web_server_type",
		"signature_hash_algorithm",
		"file_auth_dcv",
		"cname_auth_dcv",
		"org_id",
		"org_jurisdiction_country",
		"admin_title",
		"tech_postal_code",
		NULL,
	};
	static const char *const want_cert[] = { "product",        "validity",
						 "approver_email", "admin_first_name",
						 "tech_country",   "org_name",
						 "org_id",         NULL };

	for (size_t i = 0; want_ca[i]; i++) {
		bool found = false;

		for (size_t j = 0; ops->ca_keys[j] && !found; j++)
			found = strcmp(ops->ca_keys[j], want_ca[i]) == 0;
		cr_expect(found, "ca key %s", want_ca[i]);
	}
	for (size_t i = 0; want_cert[i]; i++) {
		bool found = false;

		for (size_t j = 0; ops->cert_keys[j] && !found; j++)
			found = strcmp(ops->cert_keys[j], want_cert[i]) == 0;
		cr_expect(found, "cert key %s", want_cert[i]);
	}
}
