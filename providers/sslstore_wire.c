/* SPDX-License-Identifier: Apache-2.0 */
/* Pure request builders and response parsers of the sslstore provider.
 * Quoted section names and OQ-n (open question n) refer to
 * docs/protocol-sslstore.md. */
#include "sslstore_wire.h"

#include <stdarg.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "chain.h"

/* ---- product families ---------------------------------------------------- */

/* Extra members some codes need beyond their family (the per-product table
 * in docs/providers-sslstore.md), and Sectigo multi-domain products that include three names. */
enum {
	X_CITY = 1,         /* OrganizationAddress.LocalityName */
	X_JURISDICTION = 2, /* OrganizationInfo.JurisdictionCountry */
	X_CONTACTS = 4,     /* legacy codes: full admin and technical contacts */
	X_MDC = 8,          /* Sectigo multi-domain: ReserveSANCount beyond 3 names */
};

static const struct product_row {
	const char *code;
	enum ss_family family;
	unsigned extra;
} products[] = {
	/* Sectigo / Comodo DV */
	{ "positivessl", SS_SECTIGO_DV, 0 },
	{ "positivesslwildcard", SS_SECTIGO_DV, 0 },
	{ "sectigossl", SS_SECTIGO_DV, 0 },
	{ "sectigowildcard", SS_SECTIGO_DV, 0 },
	{ "positivemdcssl", SS_SECTIGO_DV, X_MDC },
	{ "positivemdcwildcard", SS_SECTIGO_DV, X_MDC },
	{ "sectigodvucc", SS_SECTIGO_DV, X_MDC },
	{ "sectigouccwildcard", SS_SECTIGO_DV, X_MDC },
	{ "essentialssl", SS_SECTIGO_DV, X_CONTACTS },
	{ "essentialwildcard", SS_SECTIGO_DV, X_CONTACTS },
	{ "comododvucc", SS_SECTIGO_DV, X_CONTACTS | X_MDC },
	/* Sectigo / Comodo OV */
	{ "sectigoovssl", SS_SECTIGO_OV, 0 },
	{ "sectigoovwildcard", SS_SECTIGO_OV, 0 },
	{ "comodopremiumssl", SS_SECTIGO_OV, 0 },
	{ "comodopremiumwildcard", SS_SECTIGO_OV, 0 },
	{ "instantssl", SS_SECTIGO_OV, 0 },
	{ "instantsslpro", SS_SECTIGO_OV, 0 },
	{ "enterpriseprowc", SS_SECTIGO_OV, 0 },
	{ "sectigomdc", SS_SECTIGO_OV, X_MDC },
	{ "sectigomdcwildcard", SS_SECTIGO_OV, X_MDC },
	{ "comodossl", SS_SECTIGO_OV, X_CONTACTS },
	{ "comodowildcard", SS_SECTIGO_OV, X_CONTACTS },
	{ "elitessl", SS_SECTIGO_OV, X_CONTACTS },
	{ "enterprisessl", SS_SECTIGO_OV, X_CONTACTS },
	{ "comodomdc", SS_SECTIGO_OV, X_CONTACTS | X_CITY | X_MDC },
	{ "comodomdcwildcard", SS_SECTIGO_OV, X_CONTACTS | X_CITY | X_MDC },
	{ "comodoucc", SS_SECTIGO_OV, X_CONTACTS | X_CITY | X_MDC },
	{ "comodouccwildcard", SS_SECTIGO_OV, X_CONTACTS | X_CITY | X_MDC },
	{ "enterprisepro", SS_SECTIGO_EP, 0 },
	/* Sectigo / Comodo EV (sectigoevssl: EV, OQ-10) */
	{ "positiveevssl", SS_SECTIGO_EV, 0 },
	{ "enterpriseproev", SS_SECTIGO_EV, 0 },
	{ "sectigoevssl", SS_SECTIGO_EV, 0 },
	{ "positiveevmdc", SS_SECTIGO_EV, X_MDC },
	{ "sectigoevmdc", SS_SECTIGO_EV, X_MDC },
	{ "enterpriseproevmdc", SS_SECTIGO_EV, X_MDC },
	{ "comodoevssl", SS_SECTIGO_EV, X_CONTACTS | X_CITY },
	{ "comodoevmdc", SS_SECTIGO_EV, X_CONTACTS | X_CITY | X_MDC },
	/* DigiCert OV Flex */
	{ "digi_securesite_flex", SS_DIGICERT_OV, 0 },
	{ "digi_sslwebserver_flex", SS_DIGICERT_OV, 0 },
	{ "digi_truebizid_flex", SS_DIGICERT_OV, 0 },
	{ "digi_ssl_basic", SS_DIGICERT_OV, 0 },
	/* DigiCert EV Flex */
	{ "digi_securesite_ev_flex", SS_DIGICERT_EV, 0 },
	{ "digi_securesite_pro_ev_flex", SS_DIGICERT_EV, 0 },
	{ "digi_sslwebserver_ev_flex", SS_DIGICERT_EV, 0 },
	{ "digi_truebizid_ev_flex", SS_DIGICERT_EV, 0 },
	{ "digi_ssl_ev_basic", SS_DIGICERT_EV, 0 },
	/* DigiCert existing organisation: every "-EO" code (by suffix), and
	 * digi_securesite_pro_flex, which the reference client gives the -EO field set (OQ-10) */
	{ "digi_securesite_pro_flex", SS_DIGICERT_EO, 0 },
	/* DigiCert DV */
	{ "digi_rapidssl", SS_DIGICERT_DV, 0 },
	{ "digi_rapidssl_wc", SS_DIGICERT_DV, 0 },
	{ "digi_ssl_dv_geotrust_flex", SS_DIGICERT_DV, 0 },
	{ "digi_ssl123_flex", SS_DIGICERT_DV, 0 },
	{ "digi_quickssl_md", SS_DIGICERT_DV, X_CONTACTS | X_JURISDICTION },
};

static bool has_eo_suffix(const char *code)
{
	size_t len = strlen(code);

	return len > 3 && strcasecmp(code + len - 3, "-EO") == 0;
}

static const struct product_row *product_row(const char *code)
{
	for (size_t i = 0; i < sizeof(products) / sizeof(products[0]); i++)
		if (strcasecmp(products[i].code, code) == 0)
			return &products[i];
	return NULL;
}

enum ss_family ss_product_family(const char *code)
{
	const struct product_row *row;

	if (!code || !*code)
		return SS_OTHER;
	if (has_eo_suffix(code))
		return SS_DIGICERT_EO;
	row = product_row(code);
	return row ? row->family : SS_OTHER;
}

const char *ss_family_name(enum ss_family family)
{
	switch (family) {
	case SS_SECTIGO_DV:
		return "Sectigo DV";
	case SS_SECTIGO_OV:
		return "Sectigo OV";
	case SS_SECTIGO_EP:
		return "Sectigo OV (Enterprise Pro)";
	case SS_SECTIGO_EV:
		return "Sectigo EV";
	case SS_DIGICERT_DV:
		return "DigiCert DV";
	case SS_DIGICERT_OV:
		return "DigiCert OV Flex";
	case SS_DIGICERT_EV:
		return "DigiCert EV Flex";
	case SS_DIGICERT_EO:
		return "DigiCert existing organisation (-EO)";
	case SS_OTHER:
		return "other";
	}
	return "?";
}

bool ss_family_is_digicert(enum ss_family family)
{
	return family == SS_DIGICERT_DV || family == SS_DIGICERT_OV || family == SS_DIGICERT_EV ||
	       family == SS_DIGICERT_EO;
}

void ss_product_wire_code(const char *code, char *out, size_t size)
{
	size_t len = strlen(code);

	if (has_eo_suffix(code))
		len -= 3;
	if (len >= size)
		len = size - 1;
	memcpy(out, code, len);
	out[len] = '\0';
}

/* ---- validity -------------------------------------------------------------- */

int ss_days_to_months(long days, bool digicert)
{
	static const int allowed[] = { 1, 3, 6, 12, 24, 36, 48, 60, 72 };
	size_t n = sizeof(allowed) / sizeof(allowed[0]) - (digicert ? 0 : 1);
	double want;
	int best = 0;

	if (days < 1)
		return 0;
	want = (double)days / 30.44;
	/* nearest listed value; a tie goes to the shorter term */
	for (size_t i = 0; i < n; i++)
		if (best == 0 || fabs(allowed[i] - want) < fabs(best - want))
			best = allowed[i];
	return best;
}

/* ---- required fields ------------------------------------------------------- */

static bool set(const char *v)
{
	return v && *v;
}

static void need(bool ok, const char *key, char *out, size_t size, int *count)
{
	size_t len;

	if (ok)
		return;
	len = strlen(out);
	{
		/* once per key, however many rules ask for it */
		size_t klen = strlen(key);

		for (const char *p = out; (p = strstr(p, key)) != NULL; p += klen)
			if ((p == out || p[-1] == ' ') && (p[klen] == ',' || p[klen] == '\0'))
				return;
	}
	snprintf(out + len, size - len, "%s%s", len ? ", " : "", key);
	(*count)++;
}

int ss_family_missing(const struct ss_params *p, char *out, size_t size)
{
	const struct product_row *row = product_row(p->product ? p->product : "");
	bool email_dcv = !p->file_dcv && !p->cname_dcv;
	unsigned extra = row ? row->extra : 0;
	bool ov = false, digicert_org = false;
	int count = 0;

	out[0] = '\0';
	switch (p->family) {
	case SS_SECTIGO_EV:
		need(set(p->org.jurisdiction_country), "org_jurisdiction_country", out, size, &count);
		/* fall through */
	case SS_SECTIGO_OV:
	case SS_SECTIGO_DV:
		need(set(p->admin.email), "admin_email", out, size, &count);
		ov = p->family != SS_SECTIGO_DV;
		break;
	case SS_SECTIGO_EP:
		need(set(p->admin.first_name), "admin_first_name", out, size, &count);
		ov = true;
		break;
	case SS_DIGICERT_DV:
		need(set(p->tech.email), "tech_email", out, size, &count);
		break;
	case SS_DIGICERT_EV:
		need(set(p->admin.title), "admin_title", out, size, &count);
		/* fall through */
	case SS_DIGICERT_OV:
		need(set(p->admin.first_name), "admin_first_name", out, size, &count);
		need(set(p->admin.last_name), "admin_last_name", out, size, &count);
		need(set(p->admin.phone), "admin_phone", out, size, &count);
		need(set(p->admin.email), "admin_email", out, size, &count);
		ov = digicert_org = true;
		break;
	case SS_DIGICERT_EO:
		need(p->org.id > 0, "org_id", out, size, &count);
		email_dcv = false; /* the organisation's domains are pre-validated */
		break;
	case SS_OTHER:
		break;
	}
	if (email_dcv)
		need(set(p->approver_email), "approver_email", out, size, &count);
	if (ov) {
		need(set(p->org.name), "org_name", out, size, &count);
		need(set(p->org.address), "org_address", out, size, &count);
		if (digicert_org)
			need(set(p->org.city), "org_city", out, size, &count);
		need(set(p->org.region), "org_region", out, size, &count);
		need(set(p->org.postal_code), "org_postal_code", out, size, &count);
		need(set(p->org.country), "org_country", out, size, &count);
		need(set(p->org.phone), "org_phone", out, size, &count);
	}
	if ((extra & X_CITY) && !digicert_org)
		need(set(p->org.city), "org_city", out, size, &count);
	if (extra & X_CONTACTS) {
		need(set(p->admin.first_name), "admin_first_name", out, size, &count);
		need(set(p->admin.last_name), "admin_last_name", out, size, &count);
		need(set(p->admin.phone), "admin_phone", out, size, &count);
		need(set(p->admin.email), "admin_email", out, size, &count);
		need(set(p->tech.first_name), "tech_first_name", out, size, &count);
		need(set(p->tech.last_name), "tech_last_name", out, size, &count);
		need(set(p->tech.phone), "tech_phone", out, size, &count);
		need(set(p->tech.email), "tech_email", out, size, &count);
	}
	if (extra & X_JURISDICTION)
		need(set(p->org.jurisdiction_country), "org_jurisdiction_country", out, size, &count);
	return count;
}

/* ---- request bodies -------------------------------------------------------- */

static bool add_str(cJSON *obj, const char *key, const char *value)
{
	return cJSON_AddStringToObject(obj, key, value ? value : "") != NULL;
}

/* Only members that carry a value: the API accepts absent members ("Placing an order"). */
static bool add_opt(cJSON *obj, const char *key, const char *value)
{
	return !set(value) || cJSON_AddStringToObject(obj, key, value) != NULL;
}

static bool add_auth(cJSON *obj, const struct ss_auth *auth, bool flat)
{
	cJSON *a = flat ? obj : cJSON_AddObjectToObject(obj, "AuthRequest");

	if (!a)
		return false;
	return add_str(a, "PartnerCode", auth->partner_code) &&
	       add_str(a, "AuthToken", auth->auth_token) &&
	       add_opt(a, "ReplayToken", auth->replay_token) &&
	       add_opt(a, "UserAgent", auth->user_agent) &&
	       (flat || cJSON_AddFalseToObject(a, "IsUsedForTokenSystem"));
}

static cJSON *with_auth(const struct ss_auth *auth, bool flat)
{
	cJSON *obj = cJSON_CreateObject();

	if (obj && !add_auth(obj, auth, flat)) {
		cJSON_Delete(obj);
		obj = NULL;
	}
	return obj;
}

static char *upper_dup(const char *s, char *buf, size_t size)
{
	size_t i;

	for (i = 0; s && s[i] && i + 1 < size; i++)
		buf[i] = (char)toupper((unsigned char)s[i]);
	buf[i] = '\0';
	return buf;
}

static bool add_contact(cJSON *obj, const char *key, const struct ss_contact *c)
{
	cJSON *o = cJSON_AddObjectToObject(obj, key);
	char cc[8];

	return o && add_opt(o, "FirstName", c->first_name) && add_opt(o, "LastName", c->last_name) &&
	       add_opt(o, "Title", c->title) && add_opt(o, "Phone", c->phone) &&
	       add_opt(o, "Email", c->email) && add_opt(o, "OrganizationName", c->org_name) &&
	       add_opt(o, "AddressLine1", c->address) && add_opt(o, "City", c->city) &&
	       add_opt(o, "Region", c->region) && add_opt(o, "PostalCode", c->postal_code) &&
	       add_opt(o, "Country", upper_dup(c->country, cc, sizeof(cc)));
}

static bool add_org(cJSON *obj, const struct ss_org *org, bool with_details)
{
	cJSON *info = cJSON_AddObjectToObject(obj, "OrganizationInfo"), *addr;
	char cc[8], jc[8];

	if (!info)
		return false;
	addr = cJSON_AddObjectToObject(info, "OrganizationAddress");
	if (!addr)
		return false;
	if (!with_details)
		return true;
	/* The reference client puts the city into LocalityName (DigiCert requires it there);
	 * City is sent as well so that no reading of the API misses it. */
	return add_opt(info, "OrganizationName", org->name) &&
	       add_opt(info, "JurisdictionCountry",
		       upper_dup(org->jurisdiction_country, jc, sizeof(jc))) &&
	       add_opt(addr, "AddressLine1", org->address) &&
	       add_opt(addr, "LocalityName", org->city) && add_opt(addr, "City", org->city) &&
	       add_opt(addr, "Region", org->region) && add_opt(addr, "PostalCode", org->postal_code) &&
	       add_opt(addr, "Country", upper_dup(org->country, cc, sizeof(cc))) &&
	       add_opt(addr, "Phone", org->phone);
}

static bool add_dns(cJSON *obj, const char *key, const struct ss_params *p)
{
	cJSON *arr = cJSON_AddArrayToObject(obj, key);

	if (!arr)
		return false;
	if (p->dns && p->dns->n > 0) {
		for (size_t i = 0; i < p->dns->n; i++)
			if (!cJSON_AddItemToArray(arr, cJSON_CreateString(p->dns->v[i])))
				return false;
	} else if (set(p->domain_name)) {
		if (!cJSON_AddItemToArray(arr, cJSON_CreateString(p->domain_name)))
			return false;
	}
	return true;
}

/* Sectigo multi-domain products include three names; more must be
 * reserved (OQ-17). The names are the CN and the DNS SANs, once each. */
int ss_reserve_san_count(const struct ss_params *p)
{
	const struct product_row *row = product_row(p->product ? p->product : "");
	size_t names = set(p->domain_name) ? 1 : 0;

	if (!row || !(row->extra & X_MDC))
		return 0;
	for (size_t i = 0; p->dns && i < p->dns->n; i++) {
		bool dup = set(p->domain_name) && strcasecmp(p->dns->v[i], p->domain_name) == 0;

		for (size_t j = 0; j < i && !dup; j++)
			dup = strcasecmp(p->dns->v[i], p->dns->v[j]) == 0;
		if (!dup)
			names++;
	}
	return names > 3 ? (int)(names - 3) : 0;
}

cJSON *ss_req_neworder(const struct ss_auth *auth, const struct ss_params *p)
{
	cJSON *o = with_auth(auth, false);
	bool eo = p->family == SS_DIGICERT_EO;
	char code[64];
	bool ok;

	if (!o)
		return NULL;
	ss_product_wire_code(p->product, code, sizeof(code));
	ok = add_str(o, "CustomOrderID", p->custom_order_id) && add_str(o, "ProductCode", code) &&
	     add_org(o, &p->org, !eo) &&
	     cJSON_AddNumberToObject(o, "TSSOrganizationId", eo ? (double)p->org.id : 0) &&
	     cJSON_AddNumberToObject(o, "ValidityPeriod", p->months) &&
	     cJSON_AddNumberToObject(o, "ServerCount", p->server_count) &&
	     add_str(o, "CSR", p->csr_pem) && add_opt(o, "DomainName", p->domain_name) &&
	     add_str(o, "WebServerType", p->web_server_type) && add_dns(o, "DNSNames", p) &&
	     cJSON_AddFalseToObject(o, "isCUOrder") &&
	     cJSON_AddBoolToObject(o, "isRenewalOrder", p->renewal) &&
	     (!p->renewal || add_str(o, "RelatedTheSSLStoreOrderID", p->related_order_id)) &&
	     cJSON_AddFalseToObject(o, "isTrialOrder") && add_contact(o, "AdminContact", &p->admin) &&
	     add_contact(o, "TechnicalContact", &p->tech) &&
	     (eo || add_opt(o, "ApproverEmail", p->approver_email)) &&
	     cJSON_AddNumberToObject(o, "ReserveSANCount", ss_reserve_san_count(p)) &&
	     cJSON_AddFalseToObject(o, "AddInstallationSupport") &&
	     add_str(o, "EmailLanguageCode", "EN") &&
	     (!p->auto_www || cJSON_AddTrueToObject(o, "AutoWWW")) &&
	     cJSON_AddBoolToObject(o, "FileAuthDVIndicator", p->file_dcv) &&
	     cJSON_AddBoolToObject(o, "CNAMEAuthDVIndicator", p->cname_dcv) &&
	     cJSON_AddBoolToObject(o, "HTTPSFileAuthDVIndicator", p->https_file_dcv) &&
	     add_str(o, "SignatureHashAlgorithm", p->signature_hash) &&
	     cJSON_AddFalseToObject(o, "CertTransparencyIndicator") &&
	     cJSON_AddNumberToObject(o, "RenewalDays", 0) && cJSON_AddFalseToObject(o, "isPKCS10") &&
	     cJSON_AddNumberToObject(o, "WildcardReserveSANCount", 0);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *ss_req_reissue(const struct ss_auth *auth, const struct ss_params *p, const char *order_id)
{
	cJSON *o = with_auth(auth, false);
	bool wildcard = false;
	bool ok;

	if (!o)
		return NULL;
	if (p->dns)
		for (size_t i = 0; i < p->dns->n; i++)
			if (strncmp(p->dns->v[i], "*.", 2) == 0)
				wildcard = true;
	if (set(p->domain_name) && strncmp(p->domain_name, "*.", 2) == 0)
		wildcard = true;
	/* The API ignores CustomOrderID on reissue ("Order identifiers"); it is sent anyway
	 * so that our own logs of the body tie it to the journal entry. */
	ok = add_str(o, "TheSSLStoreOrderID", order_id) &&
	     add_str(o, "CustomOrderID", p->custom_order_id) && add_str(o, "CSR", p->csr_pem) &&
	     add_str(o, "WebServerType", p->web_server_type) && add_dns(o, "DNSNames", p) &&
	     cJSON_AddNumberToObject(o, "ReserveSANCount", ss_reserve_san_count(p)) &&
	     cJSON_AddFalseToObject(o, "isRenewalOrder") &&
	     cJSON_AddBoolToObject(o, "isWildCard", wildcard) &&
	     add_opt(o, "ReissueEmail", p->admin.email) &&
	     cJSON_AddFalseToObject(o, "PreferEnrollmentLink") &&
	     cJSON_AddBoolToObject(o, "FileAuthDVIndicator", p->file_dcv) &&
	     cJSON_AddBoolToObject(o, "HTTPSFileAuthDVIndicator", p->https_file_dcv) &&
	     cJSON_AddBoolToObject(o, "CNAMEAuthDVIndicator", p->cname_dcv) &&
	     add_opt(o, "ApproverEmails", p->approver_email) &&
	     add_str(o, "SignatureHashAlgorithm", p->signature_hash);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *ss_req_order(const struct ss_auth *auth, const char *order_id, const char *custom_order_id)
{
	cJSON *o = with_auth(auth, false);

	if (o && !(set(order_id) ? add_str(o, "TheSSLStoreOrderID", order_id)
				 : add_str(o, "CustomOrderID", custom_order_id))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

cJSON *ss_req_revoke(const struct ss_auth *auth, const char *order_id, const char *serial)
{
	cJSON *o = ss_req_order(auth, order_id, NULL);

	if (o && !(add_str(o, "SerialNumber", serial ? serial : "") &&
		   cJSON_AddFalseToObject(o, "ResendEmail"))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

cJSON *ss_req_refund(const struct ss_auth *auth, const char *order_id, const char *reason)
{
	cJSON *o = ss_req_order(auth, order_id, NULL);

	if (o && !add_str(o, "RefundReason", reason)) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

cJSON *ss_req_approverlist(const struct ss_auth *auth, const char *product, const char *domain)
{
	cJSON *o = with_auth(auth, false);

	/* the product code goes as configured, -EO included ("Approvers") */
	if (o && !(add_str(o, "ProductCode", product) && add_str(o, "DomainName", domain))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

cJSON *ss_req_query(const struct ss_auth *auth, time_t since, unsigned page, unsigned page_size)
{
	cJSON *o = with_auth(auth, false);
	char date[48];
	bool ok;

	if (!o)
		return NULL;
	snprintf(date, sizeof(date), "/Date(%lld)/", (long long)since * 1000);
	ok = (since <= 0 || add_str(o, "StartDate", date)) &&
	     cJSON_AddNumberToObject(o, "PageNumber", page) &&
	     cJSON_AddNumberToObject(o, "PageSize", page_size);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *ss_req_products(const struct ss_auth *auth)
{
	cJSON *o = with_auth(auth, false);

	if (o && !(add_str(o, "ProductCode", "") && cJSON_AddNumberToObject(o, "ProductType", 0) &&
		   cJSON_AddTrueToObject(o, "NeedSortedList"))) {
		cJSON_Delete(o);
		o = NULL;
	}
	return o;
}

cJSON *ss_req_validate(const struct ss_auth *auth)
{
	return with_auth(auth, true);
}

cJSON *ss_req_orglist(const struct ss_auth *auth)
{
	return with_auth(auth, true);
}

/* ---- responses ------------------------------------------------------------- */

/* Case-sensitive first ("Reading an answer"), then case-insensitive to survive drift. */
static const cJSON *member(const cJSON *obj, const char *key)
{
	const cJSON *v;

	if (!cJSON_IsObject(obj))
		return NULL;
	v = cJSON_GetObjectItemCaseSensitive(obj, key);
	return v ? v : cJSON_GetObjectItem(obj, key);
}

/* A string or number member as text. */
static void text_of(const cJSON *obj, const char *key, char *out, size_t size)
{
	const cJSON *v = member(obj, key);

	out[0] = '\0';
	if (cJSON_IsString(v) && v->valuestring)
		snprintf(out, size, "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(out, size, "%.0f", v->valuedouble);
}

static void append(char *out, size_t size, const char *sep, const char *text)
{
	size_t len = strlen(out);

	if (len + 1 < size)
		snprintf(out + len, size - len, "%s%s", len ? sep : "", text);
}

/* "ErrorCode:-9009|Message:text" → code -9009, text ("Reading an answer"). */
static void split_vendor(const char *in, char *msg, size_t msg_size, char *code, size_t code_size)
{
	const char *bar;

	if (strncasecmp(in, "ErrorCode:", 10) == 0 && (bar = strchr(in, '|')) != NULL) {
		size_t n = (size_t)(bar - (in + 10));

		if (code && code_size && !code[0]) {
			if (n >= code_size)
				n = code_size - 1;
			memcpy(code, in + 10, n);
			code[n] = '\0';
		}
		in = bar + 1;
		if (strncasecmp(in, "Message:", 8) == 0)
			in += 8;
	}
	append(msg, msg_size, "; ", in);
}

void ss_vendor_message(const char *in, char *msg, size_t msg_size, char *code, size_t code_size)
{
	msg[0] = '\0';
	if (code_size)
		code[0] = '\0';
	if (in)
		split_vendor(in, msg, msg_size, code, code_size);
}

static bool printable_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

int ss_resp_error(const cJSON *body, char *msg, size_t msg_size, char *code, size_t code_size)
{
	const cJSON *ar, *is_error, *m;

	if (msg_size)
		msg[0] = '\0';
	if (code_size)
		code[0] = '\0';
	if (cJSON_IsArray(body)) {
		if (cJSON_GetArraySize(body) == 0)
			return 0;
		body = cJSON_GetArrayItem(body, 0);
	}
	if (!cJSON_IsObject(body))
		return -1;
	ar = member(body, "AuthResponse");
	if (!cJSON_IsObject(ar))
		ar = body; /* flat answer (health/validate, "Reading an answer") */
	is_error = member(ar, "isError");
	if (!cJSON_IsBool(is_error))
		return -1;
	if (!cJSON_IsTrue(is_error))
		return 0;
	m = member(ar, "Message");
	if (cJSON_IsString(m) && m->valuestring) {
		split_vendor(m->valuestring, msg, msg_size, code, code_size);
	} else if (cJSON_IsArray(m)) {
		const cJSON *e;

		cJSON_ArrayForEach (e, m)
			if (cJSON_IsString(e) && e->valuestring && *e->valuestring)
				split_vendor(e->valuestring, msg, msg_size, code, code_size);
	}
	if (!msg[0] || !printable_text(msg))
		snprintf(msg, msg_size, "no reason given");
	return 1;
}

const char *ss_resp_replay(const cJSON *body)
{
	const cJSON *ar, *v;

	if (cJSON_IsArray(body))
		body = cJSON_GetArrayItem(body, 0);
	ar = member(body, "AuthResponse");
	if (!cJSON_IsObject(ar))
		ar = body;
	v = member(ar, "ReplayToken");
	return cJSON_IsString(v) && v->valuestring ? v->valuestring : "";
}

static bool contains_ci(const char *hay, const char *needle)
{
	return strcasestr(hay, needle) != NULL;
}

enum ss_errkind ss_classify_message(const char *msg)
{
	if (!msg)
		return SS_ERR_OTHER;
	if (contains_ci(msg, "customorderid") &&
	    (contains_ci(msg, "already") || contains_ci(msg, "duplicate")))
		return SS_ERR_DUPLICATE;
	if (contains_ci(msg, "partner code") || contains_ci(msg, "partnercode") ||
	    contains_ci(msg, "auth token") || contains_ci(msg, "authtoken") ||
	    contains_ci(msg, "credential") || contains_ci(msg, "authenticat") ||
	    contains_ci(msg, "unauthori") || contains_ci(msg, "authrequest"))
		return SS_ERR_AUTH;
	if (contains_ci(msg, "invalid thesslstoreorderid") ||
	    contains_ci(msg, "invalid customorderid") || contains_ci(msg, "invalid order id") ||
	    contains_ci(msg, "order not found") || contains_ci(msg, "unknown order") ||
	    contains_ci(msg, "no such order") || contains_ci(msg, "does not exist"))
		return SS_ERR_NOT_FOUND;
	return SS_ERR_OTHER;
}

static int parse_fields(const char *s, int *v, int count, const char *seps)
{
	for (int i = 0; i < count; i++) {
		char *end;
		long n;

		while (*s == ' ')
			s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		n = strtol(s, &end, 10);
		v[i] = (int)n;
		s = end;
		if (i + 1 < count) {
			if (!*s || !strchr(seps, *s))
				return -1;
			s++;
		}
	}
	return 0;
}

int ss_parse_date(const char *text, time_t *out)
{
	struct tm tm = { 0 };
	int v[6] = { 0 };
	long long ms;

	*out = 0;
	if (!text || !*text)
		return -1;
	if (sscanf(text, "/Date(%lld", &ms) == 1) {
		*out = (time_t)(ms / 1000);
		return 0;
	}
	if (strlen(text) >= 10 && text[4] == '-' && isdigit((unsigned char)text[0])) {
		/* ISO-8601: yyyy-MM-dd[THH:mm:ss][Z] */
		if (parse_fields(text, v, 3, "-") != 0)
			return -1;
		if (text[10] == 'T' || text[10] == ' ')
			if (parse_fields(text + 11, v + 3, 3, ":") != 0)
				v[3] = v[4] = v[5] = 0;
		tm.tm_year = v[0] - 1900;
		tm.tm_mon = v[1] - 1;
		tm.tm_mday = v[2];
	} else {
		/* MM/dd/yyyy HH:mm:ss or MM-dd-yyyy HH:mm:ss ("Reading an answer") */
		if (parse_fields(text, v, 3, "/-") != 0)
			return -1;
		if (strlen(text) > 11 && parse_fields(text + 11, v + 3, 3, ":") != 0)
			v[3] = v[4] = v[5] = 0;
		tm.tm_year = v[2] - 1900;
		tm.tm_mon = v[0] - 1;
		tm.tm_mday = v[1];
	}
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	if (tm.tm_year <= 0 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
	    tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1; /* includes 1900, the API's "unset" */
	*out = timegm(&tm);
	return 0;
}

int ss_parse_order(const cJSON *obj, struct ss_order_info *info)
{
	const cJSON *st, *dav, *ra;
	char date[64];

	memset(info, 0, sizeof(*info));
	if (!cJSON_IsObject(obj))
		return -1;
	text_of(obj, "TheSSLStoreOrderID", info->order_id, sizeof(info->order_id));
	text_of(obj, "PartnerOrderID", info->partner_order_id, sizeof(info->partner_order_id));
	text_of(obj, "CustomOrderID", info->custom_order_id, sizeof(info->custom_order_id));
	text_of(obj, "VendorOrderID", info->vendor_order_id, sizeof(info->vendor_order_id));
	text_of(obj, "CommonName", info->common_name, sizeof(info->common_name));
	text_of(obj, "ProductCode", info->product, sizeof(info->product));
	text_of(obj, "PurchaseDateInUTC", info->purchase, sizeof(info->purchase));
	text_of(obj, "CertificateEndDateInUTC", info->cert_end, sizeof(info->cert_end));
	text_of(obj, "SerialNumber", info->serial, sizeof(info->serial));
	text_of(obj, "RefundRequestID", info->refund_id, sizeof(info->refund_id));
	text_of(obj, "CNAMEAuthName", info->cname_name, sizeof(info->cname_name));
	text_of(obj, "CNAMEAuthValue", info->cname_value, sizeof(info->cname_value));
	text_of(obj, "AuthFileName", info->file_name, sizeof(info->file_name));
	text_of(obj, "AuthFileContent", info->file_content, sizeof(info->file_content));
	ra = member(obj, "isRefundApproved");
	info->refund_approved = cJSON_IsTrue(ra);
	if (ss_parse_date(info->cert_end, &info->cert_end_t) != 0)
		info->cert_end_t = 0;
	text_of(obj, "OrderExpiryDateInUTC", date, sizeof(date));
	info->order_expiry_known = ss_parse_date(date, &info->order_expiry_t) == 0;
	st = member(obj, "OrderStatus");
	if (cJSON_IsObject(st)) {
		text_of(st, "MajorStatus", info->major, sizeof(info->major));
		text_of(st, "MinorStatus", info->minor, sizeof(info->minor));
		text_of(st, "AuthenticationComments", info->comments, sizeof(info->comments));
		/* per-domain CNAME records when no order-level one is given ("Placing an order") */
		dav = member(st, "DomainAuthVettingStatus");
		if (!info->cname_name[0] && cJSON_IsArray(dav) && cJSON_GetArraySize(dav) > 0) {
			const cJSON *e = cJSON_GetArrayItem(dav, 0);

			text_of(e, "DNSName", info->cname_name, sizeof(info->cname_name));
			text_of(e, "DNSEntry", info->cname_value, sizeof(info->cname_value));
		}
	}
	return 0;
}

p11e_ca_outcome ss_status_outcome(const char *major, const char *minor, bool *known)
{
	static const char *const issued[] = { "active",    "issued",   "valid",   "complete",
					      "completed", "enrolled", "reissued" };
	static const char *const pending[] = { "initial",   "pending",    "start",
					       "submitted", "processing", "" };
	static const char *const rejected[] = { "cancelled", "canceled",       "rejected",
						"revoked",   "expired",        "refunded",
						"replaced",  "certgen_failed", "order rejected",
						"failed",    "denied" };
	bool minor_reject = minor && (contains_ci(minor, "reject") || contains_ci(minor, "denied") ||
				      contains_ci(minor, "fail") || contains_ci(minor, "cancel"));

	*known = true;
	major = major ? major : "";
	for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++)
		if (strcasecmp(major, rejected[i]) == 0)
			return P11E_CA_REJECTED;
	for (size_t i = 0; i < sizeof(issued) / sizeof(issued[0]); i++)
		if (strcasecmp(major, issued[i]) == 0) {
			/* a reissue keeps Active while the new certificate is
			 * validated (OQ-18) */
			if (minor && strcasecmp(minor, "PENDING_REISSUE") == 0)
				return P11E_CA_PENDING;
			/* a rejected reissue leaves the old certificate Active:
			 * there is nothing new to fetch */
			return minor_reject ? P11E_CA_REJECTED : P11E_CA_ISSUED;
		}
	for (size_t i = 0; i < sizeof(pending) / sizeof(pending[0]); i++)
		if (strcasecmp(major, pending[i]) == 0)
			return minor_reject ? P11E_CA_REJECTED : P11E_CA_PENDING;
	*known = false;
	return P11E_CA_PENDING;
}

/* ---- approver e-mails ------------------------------------------------------ */

int ss_approver_split(const char *text, struct p11e_strlist *out)
{
	struct p11e_strlist raw = { 0 };
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!text || !*text)
		return 0;
	if (p11e_strlist_split(&raw, text, ',') != 0)
		return -1;
	for (size_t i = 0; i < raw.n && rc == 0; i++) {
		char *s = raw.v[i], *e;

		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		for (char *c = s; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (*s)
			rc = p11e_strlist_add(out, s);
	}
	p11e_strlist_free(&raw);
	if (rc != 0)
		p11e_strlist_free(out);
	return rc;
}

static bool in_list(const char *addr, const struct p11e_strlist *list)
{
	for (size_t i = 0; i < list->n; i++) {
		const char *s = list->v[i];
		size_t len;

		while (isspace((unsigned char)*s))
			s++;
		len = strlen(s);
		while (len > 0 && isspace((unsigned char)s[len - 1]))
			len--;
		if (strlen(addr) == len && strncasecmp(addr, s, len) == 0)
			return true;
	}
	return false;
}

static void list_text(const struct p11e_strlist *list, char *out, size_t size)
{
	out[0] = '\0';
	for (size_t i = 0; i < list->n; i++)
		append(out, size, ", ", list->v[i]);
	if (!out[0])
		snprintf(out, size, "(the CA lists none)");
}

int ss_approver_rule(bool digicert, const struct p11e_strlist *given, const char *const *domains,
		     const struct p11e_strlist *lists, size_t ndomains, char *why, size_t why_size)
{
	char valid[768];

	why[0] = '\0';
	if (ndomains == 0)
		return 0;
	if (given->n == 0) {
		list_text(&lists[0], valid, sizeof(valid));
		snprintf(why, why_size, "approver_email is not set; valid for %s: %s", domains[0],
			 valid);
		return -1;
	}
	if (digicert) {
		/* DigiCert takes one approver, checked against the first domain ("Approvers") */
		if (given->n > 1) {
			snprintf(why, why_size,
				 "DigiCert products take exactly one approver_email, %zu are given",
				 given->n);
			return -1;
		}
		if (!in_list(given->v[0], &lists[0])) {
			list_text(&lists[0], valid, sizeof(valid));
			snprintf(why, why_size,
				 "approver_email %s is not valid for %s; valid addresses: %s",
				 given->v[0], domains[0], valid);
			return -1;
		}
		return 0;
	}
	/* Sectigo/Comodo: every domain needs one of the given addresses ("Approvers"),
	 * and an address valid for none of them is a typo, not a choice */
	for (size_t i = 0; i < given->n; i++) {
		bool ok = false;

		for (size_t d = 0; d < ndomains && !ok; d++)
			ok = in_list(given->v[i], &lists[d]);
		if (!ok) {
			list_text(&lists[0], valid, sizeof(valid));
			snprintf(why, why_size,
				 "approver_email %s is not valid for any name of the order; valid "
				 "for %s: %s",
				 given->v[i], domains[0], valid);
			return -1;
		}
	}
	for (size_t d = 0; d < ndomains; d++) {
		bool ok = false;

		for (size_t i = 0; i < given->n && !ok; i++)
			ok = in_list(given->v[i], &lists[d]);
		if (!ok) {
			list_text(&lists[d], valid, sizeof(valid));
			snprintf(why, why_size,
				 "no approver_email given is valid for %s; valid addresses: %s",
				 domains[d], valid);
			return -1;
		}
	}
	return 0;
}

/* ---- certificates ---------------------------------------------------------- */

int ss_parse_download(const cJSON *json, char **pem, size_t *entries)
{
	const cJSON *certs = member(json, "Certificates"), *e;
	STACK_OF(X509) *all = sk_X509_new_null();
	int n;

	*pem = NULL;
	*entries = 0;
	if (!all)
		return -1;
	cJSON_ArrayForEach (e, (cJSON_IsArray(certs) ? certs : NULL)) {
		const cJSON *fc = member(e, "FileContent");

		if (!cJSON_IsString(fc))
			continue;
		(*entries)++;
		/* what an entry holds besides certificates is passed over */
		(void)p11e_certs_read(fc->valuestring, all);
	}
	n = sk_X509_num(all);
	if (n > 0 && !(*pem = p11e_certs_pem(NULL, all, -1)))
		n = -1;
	sk_X509_pop_free(all, X509_free);
	return n;
}

char *ss_csr_normalize(const char *in)
{
	X509_REQ *req = NULL;
	BIO *bio = NULL, *out = NULL;
	unsigned char *der = NULL;
	char *result = NULL;
	BUF_MEM *mem;

	if (!in)
		return NULL;
	if (strstr(in, "-----BEGIN")) {
		bio = BIO_new_mem_buf(in, -1);
		req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	} else {
		/* bare base64 DER */
		size_t len;
		const unsigned char *p;

		if (p11e_base64_der(in, &der, &len) != 0)
			goto out;
		p = der;
		req = d2i_X509_REQ(NULL, &p, (long)len);
	}
	if (!req)
		goto out;
	out = BIO_new(BIO_s_mem());
	if (!out || PEM_write_bio_X509_REQ(out, req) != 1)
		goto out;
	BIO_get_mem_ptr(out, &mem);
	result = strndup(mem->data, mem->length);
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_REQ_free(req);
	BIO_free(bio);
	BIO_free(out);
	return result;
}

int ss_custom_order_id(const char *idempotency_id, char *out, size_t size)
{
	static const char prefix[] = "p11e-";
	size_t len, k = 0;

	if (!idempotency_id || !*idempotency_id || size < 40)
		return -1;
	len = strlen(idempotency_id);
	if (len + sizeof(prefix) - 1 < size && len + sizeof(prefix) - 1 <= 64) {
		memcpy(out, prefix, sizeof(prefix) - 1);
		k = sizeof(prefix) - 1;
		for (size_t i = 0; i < len; i++)
			out[k++] = isalnum((unsigned char)idempotency_id[i]) ? idempotency_id[i] : '-';
		out[k] = '\0';
		return 0;
	}
	/* too long for the API's id field: a digest keeps it deterministic */
	{
		unsigned char md[32];
		unsigned int mdlen = 0;
		char hex[65];

		if (EVP_Digest(idempotency_id, len, md, &mdlen, EVP_sha256(), NULL) != 1)
			return -1;
		p11e_hex(md, 16, hex);
		snprintf(out, size, "%s%s", prefix, hex);
	}
	return 0;
}

void ss_refund_reason(p11e_revoke_reason reason, char *out, size_t size)
{
	snprintf(out, size, "%s: revocation requested by p11enroll", p11e_revoke_reason_name(reason));
}

/* ---- one HTTP answer -------------------------------------------------------- */


#define MAYBE_PLACED "the order may exist: it is looked up by its CustomOrderID before any new order"

/* The transport's part of the judgement: P11E_CA_OK when there is an
 * HTTP answer to read, else the outcome (no answer, 5xx, 429). */
static p11e_ca_outcome judge_transport(const struct p11e_http_response *resp, const char *what,
				       const char *api_url, bool place, struct p11e_ca_result *res)
{
	switch (resp->kind) {
	case P11E_HTTP_LOCAL:
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "The SSL Store %s at %s: %s (check api_url and ca_bundle)", what,
				    api_url, resp->error);
	case P11E_HTTP_NOT_SENT:
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				    "The SSL Store %s: cannot reach %s: %s; nothing was sent, try again later",
				    what, api_url, resp->error);
	case P11E_HTTP_MAYBE_SENT:
	case P11E_HTTP_TOO_LARGE:
		return place ? p11e_ca_fail(res, P11E_CA_UNKNOWN,
					    "The SSL Store %s: %s after the request "
					    "was sent; " MAYBE_PLACED,
					    what, resp->error)
			     : p11e_ca_fail(res, P11E_CA_UNREACHABLE,
					    "The SSL Store %s: %s; try again later", what,
					    resp->error);
	case P11E_HTTP_RESPONSE:
		break;
	}
	res->retry_after = resp->retry_after;
	if (resp->status >= 500)
		return place ? p11e_ca_fail(res, P11E_CA_UNKNOWN,
					    "The SSL Store %s: HTTP %ld after the request was sent; " MAYBE_PLACED,
					    what, resp->status)
			     : p11e_ca_fail(res, P11E_CA_UNREACHABLE,
					    "The SSL Store %s: HTTP %ld from %s; try again later",
					    what, resp->status, api_url);
	if (resp->status == 429)
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				    "The SSL Store %s: rate limited (HTTP 429); try again %s", what,
				    resp->retry_after ? "after the time it asked for" : "later");
	return P11E_CA_OK;
}

p11e_ca_outcome ss_judge(const struct p11e_http_response *resp, const char *what, const char *api_url,
			 bool place, const char *replay, cJSON **out, enum ss_errkind *kind,
			 struct p11e_ca_result *res)
{
	char text[900], code[64];
	cJSON *json = NULL;
	p11e_ca_outcome rc;
	int is_error;

	*out = NULL;
	if (kind)
		*kind = SS_ERR_OTHER;
	rc = judge_transport(resp, what, api_url, place, res);
	if (rc != P11E_CA_OK)
		return rc;
	json = resp->body ? cJSON_ParseWithLength(resp->body, resp->len) : NULL;
	is_error = json ? ss_resp_error(json, text, sizeof(text), code, sizeof(code)) : -1;
	if (is_error == 1) {
		/* the CA's own words, whatever the HTTP status ("Reading an answer") */
		snprintf(res->ca_code, sizeof(res->ca_code), "%s", code);
		snprintf(res->message, sizeof(res->message), "%s", text);
		if (kind)
			*kind = ss_classify_message(text);
		res->outcome = rc = P11E_CA_REJECTED;
		goto out;
	}
	if (resp->status == 401 || resp->status == 403) {
		rc = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				  "The SSL Store %s: HTTP %ld: the partner code or the auth token was "
				  "refused; check partner_code and auth_token_file (sandbox and production "
				  "credentials differ)",
				  what, resp->status);
		goto out;
	}
	if (resp->status < 200 || resp->status > 299) {
		/* the request was refused as a whole: nothing was created */
		rc = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				  "The SSL Store %s: HTTP %ld from %s%s; check api_url", what,
				  resp->status, api_url,
				  resp->status == 404 ? " (no such endpoint)" : "");
		goto out;
	}
	if (is_error < 0 ||
	    (replay && *ss_resp_replay(json) && strcmp(ss_resp_replay(json), replay))) {
		const char *why = !json ? "an answer that is not JSON"
				  : is_error < 0
					  ? "an answer without AuthResponse.isError"
					  : "an answer to another request (ReplayToken differs)";

		rc = place ? p11e_ca_fail(res, P11E_CA_UNKNOWN, "The SSL Store %s: %s; " MAYBE_PLACED,
					  what, why)
			   : p11e_ca_fail(res, P11E_CA_UNREACHABLE,
					  "The SSL Store %s: %s; try again later", what, why);
		goto out;
	}
	*out = json;
	json = NULL;
	rc = P11E_CA_OK;
out:
	cJSON_Delete(json);
	return rc;
}
