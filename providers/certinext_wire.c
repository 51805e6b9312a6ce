/* SPDX-License-Identifier: Apache-2.0 */
/* Quoted section names refer to docs/protocol-certinext.md. */
#include "certinext_wire.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "chain.h"
#include "util.h"

/* ---------- meta and authentication ---------- */

int cn_auth_key(const char *access_key, const char *ts, const char *txn, char out[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[32];
	unsigned int dlen = 0;
	int rc = -1;

	if (!md)
		return -1;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(md, access_key, strlen(access_key)) == 1 &&
	    EVP_DigestUpdate(md, ts, strlen(ts)) == 1 && EVP_DigestUpdate(md, txn, strlen(txn)) == 1 &&
	    EVP_DigestFinal_ex(md, digest, &dlen) == 1 && dlen == sizeof(digest)) {
		p11e_hex(digest, sizeof(digest), out);
		rc = 0;
	}
	EVP_MD_CTX_free(md);
	return rc;
}

void cn_format_ts(time_t t, char out[CN_TS_LEN])
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, CN_TS_LEN, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}

int cn_make_txn(char out[CN_TXN_LEN])
{
	unsigned char r[CN_TXN_LEN - 1];
	size_t i = 0;

	/* Rejection sampling keeps every digit uniform. */
	while (i < CN_TXN_LEN - 1) {
		if (RAND_bytes(r, sizeof(r)) != 1)
			return -1;
		for (size_t k = 0; k < sizeof(r) && i < CN_TXN_LEN - 1; k++) {
			if (r[k] >= 250)
				continue;
			if (i == 0 && r[k] % 10 == 0)
				continue;
			out[i++] = (char)('0' + r[k] % 10);
		}
	}
	out[CN_TXN_LEN - 1] = '\0';
	return 0;
}

cJSON *cn_meta_new(const char *account, const char *access_key, time_t now)
{
	char ts[CN_TS_LEN], txn[CN_TXN_LEN], auth[65] = "";
	cJSON *meta;

	cn_format_ts(now, ts);
	if (cn_make_txn(txn) != 0)
		return NULL;
	if (access_key && cn_auth_key(access_key, ts, txn, auth) != 0)
		return NULL;
	meta = cJSON_CreateObject();
	if (!meta || !cJSON_AddStringToObject(meta, "ver", "1.0") ||
	    !cJSON_AddStringToObject(meta, "ts", ts) || !cJSON_AddStringToObject(meta, "txn", txn) ||
	    !cJSON_AddStringToObject(meta, "accountNumber", account) ||
	    !cJSON_AddStringToObject(meta, "authKey", auth)) {
		cJSON_Delete(meta);
		meta = NULL;
	}
	OPENSSL_cleanse(auth, sizeof(auth));
	return meta;
}

int cn_set_meta(cJSON *root, cJSON *meta)
{
	cJSON_DeleteItemFromObjectCaseSensitive(root, "meta");
	/* meta first, as every sample shows it */
	meta->string = strdup("meta");
	if (!meta->string)
		return -1;
	meta->next = root->child;
	meta->prev = root->child ? root->child->prev : meta;
	if (root->child)
		root->child->prev = meta;
	root->child = meta;
	return 0;
}

/* ---------- response meta ---------- */

const char *cn_str(const cJSON *obj, const char *key, char *buf, size_t size)
{
	const cJSON *item = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

	buf[0] = '\0';
	if (!item)
		return buf;
	if (cJSON_IsString(item) && item->valuestring)
		snprintf(buf, size, "%s", item->valuestring);
	else if (cJSON_IsNumber(item))
		snprintf(buf, size, "%.0f", item->valuedouble);
	else if (cJSON_IsBool(item))
		snprintf(buf, size, "%s", cJSON_IsTrue(item) ? "1" : "0");
	return buf;
}

cJSON *cn_parse_body(const char *body, size_t len, struct cn_meta *meta, bool *has_meta)
{
	cJSON *root;
	const cJSON *m;
	char status[16];

	memset(meta, 0, sizeof(*meta));
	*has_meta = false;
	if (!body || len == 0)
		return NULL;
	root = cJSON_ParseWithLength(body, len);
	if (!root)
		return NULL;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return NULL;
	}
	m = cJSON_GetObjectItemCaseSensitive(root, "meta");
	if (cJSON_IsObject(m)) {
		*has_meta = true;
		cn_str(m, "status", status, sizeof(status));
		meta->ok = strcmp(status, "1") == 0;
		cn_str(m, "errorCode", meta->code, sizeof(meta->code));
		cn_str(m, "errorMessage", meta->message, sizeof(meta->message));
	} else {
		/* a non-2xx body may carry a top-level message ("Reading an answer") */
		cn_str(root, "message", meta->message, sizeof(meta->message));
		if (!meta->message[0])
			cn_str(root, "error", meta->message, sizeof(meta->message));
	}
	return root;
}

/* ---------- interpreting an exchange ---------- */

static cn_call_rc failed(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static cn_call_rc failed(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p11e_ca_vfail(res, outcome, fmt, ap);
	va_end(ap);
	return CN_CALL_FAILED;
}

cn_call_rc cn_interpret(const struct p11e_http_response *resp, bool placement, const char *ca_name,
			const char *endpoint, cJSON **root, struct cn_meta *meta,
			struct p11e_ca_result *res)
{
	static const char unknown_hint[] =
		"the order may or may not exist; it is looked up (reconciled) before another "
		"is placed";
	p11e_ca_outcome doubtful = placement ? P11E_CA_UNKNOWN : P11E_CA_UNREACHABLE;
	bool has_meta = false;
	long st = resp->status;

	*root = NULL;
	memset(meta, 0, sizeof(*meta));
	switch (resp->kind) {
	case P11E_HTTP_LOCAL:
		return failed(res, P11E_CA_MISCONFIGURED, "%s %s: %s", ca_name, endpoint, resp->error);
	case P11E_HTTP_NOT_SENT:
		return failed(res, P11E_CA_UNREACHABLE, "%s %s: %s (after %u attempts)", ca_name,
			      endpoint, resp->error, resp->attempts);
	case P11E_HTTP_MAYBE_SENT:
	case P11E_HTTP_TOO_LARGE:
		return failed(res, doubtful, "%s %s: %s%s%s", ca_name, endpoint, resp->error,
			      placement ? "; " : "", placement ? unknown_hint : "");
	case P11E_HTTP_RESPONSE:
		break;
	}
	*root = cn_parse_body(resp->body, resp->len, meta, &has_meta);
	if (st >= 200 && st <= 299) {
		if (!*root || !has_meta) {
			cJSON_Delete(*root);
			*root = NULL;
			return failed(res, doubtful,
				      "%s %s: the answer (HTTP %ld) is not the JSON "
				      "the API sends%s%s",
				      ca_name, endpoint, st, placement ? "; " : "",
				      placement ? unknown_hint : "");
		}
		if (meta->ok)
			return CN_CALL_OK;
		return CN_CALL_CA_ERROR;
	}
	cJSON_Delete(*root);
	*root = NULL;
	if (st == 401 || st == 403) {
		snprintf(res->ca_code, sizeof(res->ca_code), "%s", meta->code);
		return failed(res, P11E_CA_MISCONFIGURED,
			      "%s %s: HTTP %ld %s%s%s: the CA did not accept our credentials; check "
			      "account_number and access_key_file (or oauth_client_id and "
			      "oauth_client_secret_file) of [ca:%s]",
			      ca_name, endpoint, st, meta->code, meta->code[0] ? " " : "",
			      meta->message[0] ? meta->message : "(no message)", ca_name);
	}
	if (st == 404)
		return failed(res, P11E_CA_MISCONFIGURED,
			      "%s %s: HTTP 404: no such endpoint; api_url must be the API base "
			      "ending in /emSignHub-API",
			      ca_name, endpoint);
	if (st == 429) {
		res->retry_after = resp->retry_after ? resp->retry_after : 60;
		return failed(res, P11E_CA_UNREACHABLE,
			      "%s %s: HTTP 429 (rate limited) after %u attempts; try again in %us",
			      ca_name, endpoint, resp->attempts, res->retry_after);
	}
	if (st >= 500)
		return failed(res, doubtful, "%s %s: HTTP %ld%s%s after %u attempts%s%s", ca_name,
			      endpoint, st, meta->message[0] ? ": " : "", meta->message,
			      resp->attempts, placement ? "; " : "", placement ? unknown_hint : "");
	if (has_meta && !meta->ok && (meta->code[0] || meta->message[0]))
		return CN_CALL_CA_ERROR; /* a 4xx that still speaks the API's language */
	return failed(res, P11E_CA_MISCONFIGURED, "%s %s: HTTP %ld%s%s", ca_name, endpoint, st,
		      meta->message[0] ? ": " : "", meta->message);
}

/* ---------- error codes ---------- */

static bool contains_nocase(const char *hay, const char *needle)
{
	return hay && strcasestr(hay, needle) != NULL;
}

cn_err_kind cn_classify_error(const char *code, const char *message)
{
	static const struct {
		const char *code;
		cn_err_kind kind;
	} codes[] = {
		{ "EMS-001", CN_ERR_CREDENTIALS },
		{ "EMS-1162", CN_ERR_PRODUCT },
		{ "EMS-1073", CN_ERR_ORGANIZATION },
		{ "EMS-1091", CN_ERR_SIGNER_IP },
		{ "EMS-918", CN_ERR_REMARKS },
		{ "EMS-1099", CN_ERR_DUPLICATE_CSR },
		/* EMS-939 "Something went Wrong" is the CA's generic error (also
		 * seen for some key types, but every type we make is accepted):
		 * no key hint for it; "Invalid key size" below is the key one. */
		{ "EMS-943", CN_ERR_NOT_FOUND },
		{ "EMS-913", CN_ERR_NOT_FOUND },
		{ "EMS-956", CN_ERR_DCV_NOT_READY },
		{ "EMS-1082", CN_ERR_AGREEMENT_DONE },
		{ "EMS-100", CN_ERR_CSR },
	};

	for (size_t i = 0; code && i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strcasecmp(code, codes[i].code) == 0)
			return codes[i].kind;
	/* Some failures come without a code ("Errors"). */
	if (contains_nocase(message, "Inactive Account User"))
		return CN_ERR_RATE_LIMIT;
	if (contains_nocase(message, "Invalid key size"))
		return CN_ERR_KEY;
	if (contains_nocase(message, "Insufficient Credit"))
		return CN_ERR_CREDITS;
	if (contains_nocase(message, "Invalid credential") || contains_nocase(message, "authKey") ||
	    contains_nocase(message, "Invalid Account") || contains_nocase(message, "authentication"))
		return CN_ERR_CREDENTIALS;
	return CN_ERR_OTHER;
}

p11e_ca_outcome cn_error_outcome(cn_err_kind kind)
{
	switch (kind) {
	case CN_ERR_CREDENTIALS:
	case CN_ERR_PRODUCT:
	case CN_ERR_ORGANIZATION:
	case CN_ERR_SIGNER_IP:
	case CN_ERR_REMARKS:
		return P11E_CA_MISCONFIGURED;
	case CN_ERR_RATE_LIMIT:
		return P11E_CA_UNREACHABLE;
	case CN_ERR_NOT_FOUND:
		return P11E_CA_NOT_FOUND;
	case CN_ERR_DCV_NOT_READY:
		return P11E_CA_PENDING;
	default:
		return P11E_CA_REJECTED;
	}
}

static const char *advice(cn_err_kind kind)
{
	switch (kind) {
	case CN_ERR_CREDENTIALS:
		return "the CA did not accept our credentials; check account_number and "
		       "access_key_file (or the oauth_* keys) of [ca:{ca}]";
	case CN_ERR_PRODUCT:
		return "the product is not provisioned for this account (codes differ between "
		       "sandbox and production); check `p11enroll products {ca}` and set product "
		       "or default_product";
	case CN_ERR_ORGANIZATION:
		return "organization_number is not registered or not approved for this account; "
		       "OV/EV products need a pre-vetted organisation ([ca:{ca}])";
	case CN_ERR_SIGNER_IP:
		return "signer_ip was refused; set it to this host's public address (127.0.0.1 is "
		       "refused) in [ca:{ca}] or the [cert] section";
	case CN_ERR_REMARKS:
		return "a required order field is empty (remarks, or a field the product family "
		       "needs; wildcard-UCC and EV-UCC are known to fail this way) — see [ca:{ca}]";
	case CN_ERR_DUPLICATE_CSR:
		return "this CSR was already used for an order; the earlier order may exist: "
		       "check `p11enroll orders {ca}`, or make a new key/CSR";
	case CN_ERR_KEY:
		return "the CA refused the key; it accepts RSA 2048/3072/4096 and EC P-256/P-384 "
		       "(CA {ca})";
	case CN_ERR_CREDITS:
		return "the account has no credits left; top it up in the CERTInext portal "
		       "(CA {ca})";
	case CN_ERR_RATE_LIMIT:
		return "CERTInext's burst limit (or an inactive account user); wait a minute and "
		       "try again, pace orders (CA {ca})";
	case CN_ERR_NOT_FOUND:
		return "the CA does not know this order (CA {ca})";
	case CN_ERR_DCV_NOT_READY:
		return "domain validation is not open yet; the next poll retries (CA {ca})";
	case CN_ERR_CSR:
		return "the CA refused the CSR (CA {ca})";
	default:
		return NULL;
	}
}

void cn_describe_error(struct p11e_ca_result *res, const char *ca_name, const char *code,
		       const char *message, const char *context)
{
	cn_err_kind kind = cn_classify_error(code, message);
	const char *fmt = advice(kind);
	char what[512] = "";

	snprintf(res->ca_code, sizeof(res->ca_code), "%s", code ? code : "");
	/* {ca} in the advice stands for the CA section's name */
	for (size_t o = 0; fmt && *fmt && o + 1 < sizeof(what);) {
		if (strncmp(fmt, "{ca}", 4) == 0) {
			o += (size_t)snprintf(what + o, sizeof(what) - o, "%s", ca_name);
			fmt += 4;
		} else {
			what[o++] = *fmt++;
			what[o] = '\0';
		}
	}
	/* The code goes to ca_code only: whoever shows the message puts it in
	 * front once (p11e_ca_failure), so it is never said twice. */
	snprintf(res->message, sizeof(res->message), "%s%s%s%s%s", context ? context : "",
		 context ? ": " : "", message && *message ? message : "(no message)",
		 what[0] ? "; " : "", what);
}

/* ---------- certificate states ---------- */

cn_state cn_cert_state(const char *status_id)
{
	char *end;
	long id;

	if (!status_id || !*status_id)
		return CN_STATE_PENDING;
	id = strtol(status_id, &end, 10);
	if (*end)
		return CN_STATE_UNKNOWN;
	switch (id) {
	case 7:
	case 9:
	case 15:
	case 20:
	case 23:
		return CN_STATE_ISSUED;
	case 22:
		return CN_STATE_REVOKED;
	case 12:
		return CN_STATE_EXPIRED;
	case 3:
	case 5:
	case 8:
	case 13:
	case 14:
	case 18:
	case 19:
	case 21:
		return CN_STATE_FAILED;
	case 1:
	case 2:
	case 4:
	case 6:
	case 16:
	case 17:
	case 24:
		return CN_STATE_PENDING;
	default:
		return CN_STATE_UNKNOWN;
	}
}

const char *cn_state_name(cn_state state)
{
	static const char *const names[] = { "pending", "issued",  "failed",
					     "revoked", "expired", "unknown" };

	return names[state];
}

/* ---------- GenerateOrderSSL ---------- */

#define PO CN_F_PER_ORDER
const struct cn_field cn_order_fields[] = {
	{ "accounting_model", "accountingModel", "2", NULL, CN_V_DIGITS, 0 },
	{ "email_notifications", "emailNotifications", "0", NULL, CN_V_BOOL, 0 },
	{ "group_number", "delegationInformation.groupNumber", NULL, NULL, CN_V_DIGITS,
	  PO | CN_F_OMIT },
	{ "pre_vetting", "organizationDetails.preVetting", "1", NULL, CN_V_BOOL, PO | CN_F_WITH_ORG },
	{ "organization_number", "organizationDetails.organizationNumber", NULL, NULL, CN_V_DIGITS,
	  PO | CN_F_OMIT },
	{ "street_address", "organizationDetails.streetAddress", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_OMIT },
	{ "street_address2", "organizationDetails.streetAddress2", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_OMIT },
	{ "city", "organizationDetails.city", NULL, NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "state", "organizationDetails.state", NULL, NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "country", "organizationDetails.country", NULL, NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "requestor_name", "requestorInformation.requestorName", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_REQUIRED },
	{ "requestor_isd_code", "requestorInformation.requestorIsdCode", "1", NULL, CN_V_DIGITS, PO },
	{ "requestor_mobile", "requestorInformation.requestorMobileNumber", "", NULL, CN_V_DIGITS, PO },
	{ "requestor_email", "requestorInformation.requestorEmail", NULL, NULL, CN_V_EMAIL,
	  PO | CN_F_REQUIRED },
	{ "requestor_designation", "requestorInformation.requestorDesignation", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_OMIT },
	{ "validity", "subscriptionDetails.validity", "1", NULL, CN_V_YEARS, PO },
	{ "auto_renew", "subscriptionDetails.autoRenew", "0", NULL, CN_V_BOOL, PO },
	{ "renew_criteria", "subscriptionDetails.renewCriteria", "30", NULL, CN_V_RENEW, PO },
	{ "auto_secure_www", "certificateInformation.autoSecureWWW", "0", NULL, CN_V_BOOL, PO },
	{ "locality", "certificateInformation.locality", NULL, NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "postal_code", "certificateInformation.postalCode", NULL, NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "company_registration_number", "certificateInformation.companyRegistrationNumber", NULL,
	  NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "tpc_name", "technicalPointOfContact.tpcName", NULL, "requestor_name", CN_V_TEXT, PO },
	{ "tpc_email", "technicalPointOfContact.tpcEmail", NULL, "requestor_email", CN_V_EMAIL, PO },
	{ "tpc_isd_code", "technicalPointOfContact.tpcIsdCode", NULL, "requestor_isd_code",
	  CN_V_DIGITS, PO },
	{ "tpc_mobile", "technicalPointOfContact.tpcMobileNumber", NULL, "requestor_mobile",
	  CN_V_DIGITS, PO },
	{ "signer_name", "agreementDetails.signerName", NULL, "requestor_name", CN_V_TEXT, PO },
	{ "signer_place", "agreementDetails.signerPlace", NULL, NULL, CN_V_TEXT, PO | CN_F_REQUIRED },
	{ "signer_ip", "agreementDetails.signerIP", NULL, NULL, CN_V_IPV4, PO | CN_F_REQUIRED },
	{ "contract_signer_name", "contractSignerInfo.name", NULL, NULL, CN_V_TEXT, PO | CN_F_OMIT },
	{ "contract_signer_email", "contractSignerInfo.email", NULL, NULL, CN_V_EMAIL, PO | CN_F_OMIT },
	{ "contract_signer_isd_code", "contractSignerInfo.isdCode", NULL, NULL, CN_V_DIGITS,
	  PO | CN_F_OMIT },
	{ "contract_signer_mobile", "contractSignerInfo.mobileNumber", NULL, NULL, CN_V_DIGITS,
	  PO | CN_F_OMIT },
	{ "contract_signer_designation", "contractSignerInfo.designation", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_OMIT },
	{ "contract_signer_employee_id", "contractSignerInfo.employeeID", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_OMIT },
	{ "certificate_approver_name", "certificateApproverInfo.name", NULL, NULL, CN_V_TEXT,
	  PO | CN_F_OMIT },
	{ "certificate_approver_email", "certificateApproverInfo.email", NULL, NULL, CN_V_EMAIL,
	  PO | CN_F_OMIT },
	{ "certificate_approver_isd_code", "certificateApproverInfo.isdCode", NULL, NULL, CN_V_DIGITS,
	  PO | CN_F_OMIT },
	{ "certificate_approver_mobile", "certificateApproverInfo.mobileNumber", NULL, NULL,
	  CN_V_DIGITS, PO | CN_F_OMIT },
	{ "certificate_approver_designation", "certificateApproverInfo.designation", NULL, NULL,
	  CN_V_TEXT, PO | CN_F_OMIT },
	{ "certificate_approver_employee_id", "certificateApproverInfo.employeeID", NULL, NULL,
	  CN_V_TEXT, PO | CN_F_OMIT },
	{ "remarks", "additionalInformation.remarks", "Enrolled by p11enroll", NULL, CN_V_TEXT, PO },
};
#undef PO
const size_t cn_n_order_fields = sizeof(cn_order_fields) / sizeof(cn_order_fields[0]);

int cn_check_value(cn_value_type type, const char *v, const char **why)
{
	unsigned a, b, c, d;
	char tail;

	switch (type) {
	case CN_V_TEXT:
		return 0;
	case CN_V_BOOL:
		if (p11e_parse_bool(v) < 0) {
			*why = "not yes/no";
			return -1;
		}
		return 0;
	case CN_V_DIGITS:
		for (const char *p = v; *p; p++)
			if (!isdigit((unsigned char)*p)) {
				*why = "not digits only (no +, spaces or dashes)";
				return -1;
			}
		return 0;
	case CN_V_YEARS:
		if (strcmp(v, "1") && strcmp(v, "2") && strcmp(v, "3")) {
			*why = "not a subscription length in years (1, 2 or 3)";
			return -1;
		}
		return 0;
	case CN_V_RENEW:
		if (strcmp(v, "30") && strcmp(v, "60")) {
			*why = "not 30 or 60 (days before expiry)";
			return -1;
		}
		return 0;
	case CN_V_IPV4: {
		/* The signer's public IPv4 address (docs/p11enroll.conf.5); the
		 * reason is composed once, the program has one thread. */
		static char reason[160];
		const char *not_public;

		if (sscanf(v, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 ||
		    c > 255 || d > 255) {
			*why = "not an IPv4 address (CERTInext takes the signer's public IPv4 "
			       "address)";
			return -1;
		}
		not_public = p11e_ip_not_public(v);
		if (not_public) {
			snprintf(reason, sizeof(reason),
				 "%s, not a public address (CERTInext refuses 127.0.0.1 with "
				 "EMS-1091); use this host's public IPv4 address",
				 not_public);
			*why = reason;
			return -1;
		}
		return 0;
	}
	case CN_V_EMAIL: {
		const char *at = strchr(v, '@');

		if (!at || at == v || !strchr(at, '.') || strchr(v, ' ')) {
			*why = "not an e-mail address";
			return -1;
		}
		return 0;
	}
	}
	return 0;
}

/* Sets a dot-separated path under `root`, creating objects on the way. */
static int set_path(cJSON *root, const char *path, cJSON *value)
{
	char part[128];
	const char *dot;
	cJSON *obj = root;

	while ((dot = strchr(path, '.'))) {
		size_t n = (size_t)(dot - path);
		cJSON *next;

		if (n >= sizeof(part))
			goto fail;
		memcpy(part, path, n);
		part[n] = '\0';
		next = cJSON_GetObjectItemCaseSensitive(obj, part);
		if (!next) {
			next = cJSON_AddObjectToObject(obj, part);
			if (!next)
				goto fail;
		}
		obj = next;
		path = dot + 1;
	}
	if (!cJSON_AddItemToObject(obj, path, value))
		goto fail;
	return 0;
fail:
	cJSON_Delete(value);
	return -1;
}

static const char *lookup_value(const struct cn_order_input *in, const char *key,
				const struct p11e_setting **st)
{
	*st = in->lookup(in->lookup_ctx, key);
	return *st && (*st)->value[0] ? (*st)->value : NULL;
}

static const char *field_default(const char *key)
{
	for (size_t i = 0; i < cn_n_order_fields; i++)
		if (strcmp(cn_order_fields[i].key, key) == 0)
			return cn_order_fields[i].deflt;
	return NULL;
}

void cn_idempotency_tag(const char *id, char *out, size_t size)
{
	snprintf(out, size, "p11enroll:%s", id);
}

static int add_string(cJSON *root, const char *path, const char *value)
{
	cJSON *s = cJSON_CreateString(value);

	return s ? set_path(root, path, s) : -1;
}

enum { FIELD_OK, FIELD_BAD, FIELD_OOM };

/* One connector field into the order: its value checked, else its
 * fallback's or its default; left out or sent empty as its flags say.
 * FIELD_BAD with *why_key, why (and *bad when a setting is at fault). */
static int add_field(cJSON *od, const struct cn_order_input *in, const struct cn_field *f,
		     bool with_org, const char **why_key, char *why, size_t why_size,
		     const struct p11e_setting **bad)
{
	const struct p11e_setting *st;
	const char *v = lookup_value(in, f->key, &st);
	const char *reason = NULL;
	char boolv[2];

	if (v && cn_check_value(f->type, v, &reason) != 0) {
		*why_key = f->key;
		*bad = st;
		snprintf(why, why_size, "%s = '%s' is %s", f->key, v, reason);
		return FIELD_BAD;
	}
	if (!v && f->fallback) {
		v = lookup_value(in, f->fallback, &st);
		if (!v)
			v = field_default(f->fallback);
	}
	if (!v)
		v = f->deflt;
	if ((f->flags & CN_F_WITH_ORG) && !with_org)
		return FIELD_OK;
	if (!v) {
		if (f->flags & CN_F_REQUIRED) {
			*why_key = f->key;
			snprintf(why, why_size, "%s is not set; an order needs it", f->key);
			return FIELD_BAD;
		}
		if (f->flags & CN_F_OMIT)
			return FIELD_OK;
		v = "";
	}
	if (f->type == CN_V_BOOL && *v) {
		snprintf(boolv, sizeof(boolv), "%d", p11e_parse_bool(v) > 0);
		v = boolv;
	}
	if (strcmp(f->key, "remarks") == 0 && in->idempotency_id) {
		char remarks[1024], tag[192];

		/* The id is in remarks too: tags may not round-trip (open question 11). */
		cn_idempotency_tag(in->idempotency_id, tag, sizeof(tag));
		snprintf(remarks, sizeof(remarks), "%s [%s]", v, tag);
		return add_string(od, f->path, remarks) ? FIELD_OOM : FIELD_OK;
	}
	return add_string(od, f->path, v) ? FIELD_OOM : FIELD_OK;
}

/* The members that are not configuration: the names, the CSR, the agreement. */
static int add_request(cJSON *od, const struct cn_order_input *in)
{
	if (add_string(od, "certificateInformation.domainName", in->domain_name) ||
	    add_string(od, "csr", in->csr_pem) ||
	    add_string(od, "agreementDetails.acceptAgreement", "1"))
		return -1;
	if (in->n_dns > 0) {
		cJSON *arr = cJSON_CreateStringArray(in->dns, (int)in->n_dns);

		if (!arr || set_path(od, "certificateInformation.additionalDomains", arr))
			return -1;
	}
	return 0;
}

/* tags: the configured ones plus the idempotency tag. */
static int add_tags(cJSON *od, const struct cn_order_input *in)
{
	const struct p11e_setting *st;
	const char *tags = lookup_value(in, "tags", &st);
	struct p11e_strlist list = { 0 };
	char tag[192];
	cJSON *arr;
	int rc = 0;

	if (tags && p11e_strlist_split(&list, tags, ',') != 0)
		rc = -1;
	if (rc == 0 && in->idempotency_id) {
		cn_idempotency_tag(in->idempotency_id, tag, sizeof(tag));
		rc = p11e_strlist_add(&list, tag);
	}
	if (rc == 0 && list.n > 0) {
		arr = cJSON_CreateStringArray((const char *const *)list.v, (int)list.n);
		rc = arr ? set_path(od, "additionalInformation.tags", arr) : -1;
	}
	p11e_strlist_free(&list);
	return rc;
}

cJSON *cn_build_order(const struct cn_order_input *in, const char **why_key, char *why,
		      size_t why_size, const struct p11e_setting **bad)
{
	cJSON *od = cJSON_CreateObject();
	const struct p11e_setting *org_st;
	bool with_org = lookup_value(in, "organization_number", &org_st) != NULL;

	*why_key = NULL;
	*bad = NULL;
	why[0] = '\0';
	if (!od)
		goto oom;
	if (!in->product || !*in->product) {
		*why_key = "product";
		snprintf(why, why_size,
			 "no product: set default_product in the CA section or "
			 "product in the [cert] section");
		goto fail;
	}
	if (!in->domain_name || !*in->domain_name) {
		*why_key = "domain_name";
		snprintf(why, why_size,
			 "no domain name: the subject has no CN and no dns names "
			 "are configured (or set domain_name)");
		goto fail;
	}
	if (add_string(od, "productCode", in->product) || add_string(od, "saveAndHold", "0"))
		goto oom;
	for (size_t i = 0; i < cn_n_order_fields; i++) {
		int rc = add_field(od, in, &cn_order_fields[i], with_org, why_key, why, why_size, bad);

		if (rc == FIELD_BAD)
			goto fail;
		if (rc == FIELD_OOM)
			goto oom;
	}
	if (add_request(od, in) != 0 || add_tags(od, in) != 0)
		goto oom;
	return od;
oom:
	snprintf(why, why_size, "out of memory");
fail:
	cJSON_Delete(od);
	return NULL;
}

/* ---------- other payloads ---------- */

static cJSON *payload(const char *wrapper, cJSON **inner)
{
	cJSON *root = cJSON_CreateObject();

	*inner = root ? cJSON_AddObjectToObject(root, wrapper) : NULL;
	if (!*inner) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static cJSON *finish(cJSON *root, bool ok)
{
	if (!ok) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

cJSON *cn_build_products(const char *group_number)
{
	cJSON *inner, *root = payload("productDetails", &inner);

	if (!root)
		return NULL;
	return finish(root, !group_number || !*group_number ||
				    cJSON_AddStringToObject(inner, "groupNumber", group_number));
}

cJSON *cn_build_track(const char *order_number)
{
	cJSON *inner, *root = payload("orderDetails", &inner);

	if (!root)
		return NULL;
	return finish(root, cJSON_AddStringToObject(inner, "orderNumber", order_number) != NULL);
}

cJSON *cn_build_get_certificate(const char *order_number, const char *requestor_email)
{
	cJSON *inner, *root = payload("orderDetails", &inner);

	if (!root)
		return NULL;
	return finish(root, cJSON_AddStringToObject(inner, "orderNumber", order_number) &&
				    cJSON_AddStringToObject(inner, "requestorEmail", requestor_email));
}

cJSON *cn_build_revoke(const char *order_number, const char *requestor_email, const char *reason_id,
		       const char *remarks)
{
	cJSON *inner, *root = payload("revocationDetails", &inner);

	if (!root)
		return NULL;
	return finish(root,
		      cJSON_AddStringToObject(inner, "orderNumber", order_number) &&
			      cJSON_AddStringToObject(inner, "requestorEmail", requestor_email) &&
			      cJSON_AddStringToObject(inner, "revokeReasonId", reason_id) &&
			      cJSON_AddStringToObject(inner, "revokeRemarks", remarks));
}

cJSON *cn_build_reject(const char *order_number, const char *remarks)
{
	cJSON *inner, *root = payload("orderDetails", &inner);

	if (!root)
		return NULL;
	return finish(root, cJSON_AddStringToObject(inner, "orderNumber", order_number) &&
				    cJSON_AddStringToObject(inner, "rejectRemarks", remarks));
}

cJSON *cn_build_report(unsigned page, unsigned page_size, time_t since)
{
	cJSON *inner, *root = payload("searchCriteria", &inner);
	char num[16], size[16], date[16];
	bool ok;

	if (!root)
		return NULL;
	snprintf(num, sizeof(num), "%u", page);
	snprintf(size, sizeof(size), "%u", page_size);
	ok = cJSON_AddStringToObject(inner, "pageNumber", num) &&
	     cJSON_AddStringToObject(inner, "pageSize", size);
	if (ok && since > 0) {
		struct tm tm;

		gmtime_r(&since, &tm);
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		ok = cJSON_AddStringToObject(inner, "orderDateFrom", date) != NULL;
	}
	return finish(root, ok);
}

cJSON *cn_build_dcv(const char *order_number, const char *requestor_email, const char *domain)
{
	return cn_build_dcv_method(order_number, requestor_email, domain, "1", NULL);
}

cJSON *cn_build_dcv_method(const char *order_number, const char *requestor_email, const char *domain,
			   const char *method, const char *dcv_email)
{
	cJSON *inner, *root = payload("dcvDetails", &inner);

	if (!root)
		return NULL;
	return finish(root,
		      cJSON_AddStringToObject(inner, "requestorEmail", requestor_email) &&
			      cJSON_AddStringToObject(inner, "orderNumber", order_number) &&
			      cJSON_AddStringToObject(inner, "domainName", domain) &&
			      cJSON_AddStringToObject(inner, "dcvMethod", method) &&
			      (!dcv_email || cJSON_AddStringToObject(inner, "dcvEmail", dcv_email)));
}

/* ---------- revocation ---------- */

const char *cn_revoke_reason_id(p11e_revoke_reason reason)
{
	switch (reason) {
	case P11E_REVOKE_KEY_COMPROMISE:
		return "1";
	case P11E_REVOKE_AFFILIATION_CHANGED:
		return "3";
	case P11E_REVOKE_SUPERSEDED:
		return "4";
	case P11E_REVOKE_CESSATION_OF_OPERATION:
		return "5";
	case P11E_REVOKE_UNSPECIFIED:
	case P11E_REVOKE_CA_COMPROMISE:
		break;
	}
	return NULL;
}

/* ---------- parsers ---------- */

int cn_parse_placed(const cJSON *root, struct cn_placed *out)
{
	const cJSON *od = cJSON_GetObjectItemCaseSensitive(root, "orderDetails");

	memset(out, 0, sizeof(*out));
	cn_str(od, "orderNumber", out->order_number, sizeof(out->order_number));
	cn_str(od, "requestNumber", out->request_number, sizeof(out->request_number));
	return out->order_number[0] ? 0 : -1;
}

int cn_parse_track(const cJSON *root, struct cn_tracked *out)
{
	const cJSON *od = cJSON_GetObjectItemCaseSensitive(root, "orderDetails");
	const cJSON *dv, *rv, *item;
	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(od))
		return -1;
	cn_str(od, "certificateStatusId", out->status_id, sizeof(out->status_id));
	cn_str(od, "certificateStatus", out->status_text, sizeof(out->status_text));
	cn_str(od, "orderStatusId", out->order_status_id, sizeof(out->order_status_id));
	cn_str(od, "certificateExpiryDate", out->expiry, sizeof(out->expiry));
	rv = cJSON_GetObjectItemCaseSensitive(od, "revocationDetails");
	if (cJSON_IsObject(rv))
		cn_str(rv, "revokeRequestStatusId", out->revoke_status_id,
		       sizeof(out->revoke_status_id));
	cn_str(cJSON_GetObjectItemCaseSensitive(od, "requestorInformation"), "requestorEmail",
	       out->requestor_email, sizeof(out->requestor_email));
	item = cJSON_GetObjectItemCaseSensitive(od, "csr");
	if (cJSON_IsString(item) && item->valuestring && *item->valuestring) {
		out->csr = strdup(item->valuestring);
		if (!out->csr)
			return -1;
	}
	dv = cJSON_GetObjectItemCaseSensitive(od, "domainVerification");
	if (!cJSON_IsObject(dv))
		return 0;
	out->has_dcv = true;
	cn_str(dv, "status", out->dcv_status, sizeof(out->dcv_status));
	cJSON_ArrayForEach (item, dv) {
		struct cn_dcv_domain *d;

		/* one fixed key `status`, then one object per domain ("Domain validation") */
		if (!cJSON_IsObject(item) || !item->string)
			continue;
		d = realloc(out->dcv, (out->n_dcv + 1) * sizeof(*d));
		if (!d)
			return -1;
		out->dcv = d;
		d = &out->dcv[out->n_dcv++];
		memset(d, 0, sizeof(*d));
		snprintf(d->domain, sizeof(d->domain), "%s", item->string);
		cn_str(item, "dcvMethod", d->method, sizeof(d->method));
		cn_str(item, "dcvStatus", d->status, sizeof(d->status));
	}
	return 0;
}

void cn_tracked_free(struct cn_tracked *t)
{
	free(t->dcv);
	free(t->csr);
	memset(t, 0, sizeof(*t));
}

/* A string member of `obj`, NULL when absent or not a string. */
static const char *field_text(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

int cn_parse_certificate(const cJSON *root, char **chain, char serial[130], time_t *not_after,
			 char *api_serial, size_t api_serial_size, char *why, size_t why_size)
{
	const cJSON *cd = cJSON_GetObjectItemCaseSensitive(root, "certificateDetails");
	STACK_OF(X509) *certs = sk_X509_new_null();
	int n, rc = -1;

	*chain = NULL;
	serial[0] = '\0';
	*not_after = 0;
	api_serial[0] = '\0';
	if (!certs) {
		snprintf(why, why_size, "out of memory");
		goto out;
	}
	if (!cJSON_IsObject(cd)) {
		snprintf(why, why_size, "the answer has no certificateDetails");
		goto out;
	}
	n = p11e_certs_read(field_text(cd, "endEntityCertificate"), certs);
	if (n != 1) {
		snprintf(why, why_size,
			 n == 0 ? "endEntityCertificate is empty"
				: "endEntityCertificate is not one certificate");
		goto out;
	}
	n = p11e_certs_read(field_text(cd, "caCertificate"), certs);
	if (n < 0) {
		snprintf(why, why_size, "caCertificate is malformed");
		goto out;
	}
	if (n == 0 && p11e_certs_read(field_text(cd, "rootCertificate"), certs) < 0) {
		snprintf(why, why_size, "rootCertificate is malformed");
		goto out;
	}
	p11e_cert_serial(sk_X509_value(certs, 0), serial, 130);
	*not_after = p11e_cert_not_after(sk_X509_value(certs, 0));
	/* the wire name is misspelt ("Certificate, chain and serial"); take the right one too */
	cn_str(cd, "ceritficateSerialNumber", api_serial, api_serial_size);
	if (!api_serial[0])
		cn_str(cd, "certificateSerialNumber", api_serial, api_serial_size);
	*chain = p11e_certs_pem(NULL, certs, -1);
	if (!*chain) {
		snprintf(why, why_size, "out of memory");
		goto out;
	}
	rc = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	return rc;
}

int cn_parse_dcv_token(const cJSON *root, char *token, size_t size)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dcvDetails");

	cn_str(d, "token", token, size);
	return token[0] ? 0 : -1;
}

int cn_parse_dcv_file(const cJSON *root, char *name, size_t name_size, char *content,
		      size_t content_size)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dcvDetails");

	cn_str(d, "fileName", name, name_size);
	cn_str(d, "fileContent", content, content_size);
	/* a name that could leave the well-known folder is refused */
	if (strchr(name, '/') || strchr(name, '\\') || strstr(name, ".."))
		name[0] = '\0';
	return name[0] && content[0] ? 0 : -1;
}

int cn_parse_dcv_emails(const cJSON *root, struct p11e_strlist *out)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "dcvDetails");
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(d, "dcvEmails"), *e;

	cJSON_ArrayForEach (e, arr)
		if (cJSON_IsString(e) && e->valuestring[0] &&
		    p11e_strlist_add(out, e->valuestring) != 0)
			return -1;
	return out->n ? 0 : -1;
}

int cn_parse_report(const cJSON *root, struct cn_report *out)
{
	const cJSON *od = cJSON_GetObjectItemCaseSensitive(root, "orderDetails");
	const cJSON *arr, *row;
	char num[32];
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!cJSON_IsObject(od))
		return cJSON_IsNull(od) || !od ? 0 : -1;
	out->pages = (unsigned)strtoul(cn_str(od, "noOfPages", num, sizeof(num)), NULL, 10);
	out->current = (unsigned)strtoul(cn_str(od, "currentPage", num, sizeof(num)), NULL, 10);
	arr = cJSON_GetObjectItemCaseSensitive(od, "ordersArray");
	if (!cJSON_IsArray(arr))
		return 0;
	n = (size_t)cJSON_GetArraySize(arr);
	if (n == 0)
		return 0;
	out->rows = calloc(n, sizeof(*out->rows));
	out->tags = calloc(n, sizeof(*out->tags));
	out->status_ids = calloc(n, sizeof(*out->status_ids));
	if (!out->rows || !out->tags || !out->status_ids)
		goto fail;
	cJSON_ArrayForEach (row, arr) {
		struct p11e_order_row *r = &out->rows[out->n];
		const cJSON *tags, *tag;

		if (!cJSON_IsObject(row))
			continue;
		cn_str(row, "orderNumber", r->order_id, sizeof(r->order_id));
		cn_str(row, "requestNumber", r->request_id, sizeof(r->request_id));
		cn_str(row, "certificateStatus", r->status, sizeof(r->status));
		cn_str(row, "domainName", r->domain, sizeof(r->domain));
		cn_str(row, "productCode", r->product, sizeof(r->product));
		cn_str(row, "orderDate", r->ordered, sizeof(r->ordered));
		cn_str(row, "certificateExpiryDate", r->expires, sizeof(r->expires));
		cn_str(row, "certificateSerialNumber", r->serial, sizeof(r->serial));
		cn_str(row, "certificateStatusId", out->status_ids[out->n],
		       sizeof(out->status_ids[0]));
		tags = cJSON_GetObjectItemCaseSensitive(row, "tags");
		cJSON_ArrayForEach (tag, tags) {
			if (cJSON_IsString(tag) &&
			    p11e_strlist_add(&out->tags[out->n], tag->valuestring) != 0)
				goto fail;
		}
		out->n++;
	}
	return 0;
fail:
	cn_report_free(out);
	return -1;
}

void cn_report_free(struct cn_report *r)
{
	for (size_t i = 0; r->tags && i < r->n; i++)
		p11e_strlist_free(&r->tags[i]);
	free(r->tags);
	free(r->rows);
	free(r->status_ids);
	memset(r, 0, sizeof(*r));
}

int cn_parse_products(const cJSON *root, struct p11e_product **list, size_t *n)
{
	const cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "productDetails");
	const cJSON *cat, *prod;
	struct p11e_product *v = NULL;
	size_t count = 0;

	*list = NULL;
	*n = 0;
	if (!cats || cJSON_IsNull(cats))
		return 0;
	if (!cJSON_IsArray(cats))
		return -1;
	cJSON_ArrayForEach (cat, cats) {
		char category[128];
		const cJSON *prods = cJSON_GetObjectItemCaseSensitive(cat, "products");

		cn_str(cat, "categoryName", category, sizeof(category));
		cJSON_ArrayForEach (prod, prods) {
			struct p11e_product *nv = realloc(v, (count + 1) * sizeof(*v));

			if (!nv) {
				free(v);
				return -1;
			}
			v = nv;
			memset(&v[count], 0, sizeof(v[count]));
			cn_str(prod, "productCode", v[count].code, sizeof(v[count].code));
			cn_str(prod, "productName", v[count].name, sizeof(v[count].name));
			snprintf(v[count].category, sizeof(v[count].category), "%s", category);
			count++;
		}
	}
	*list = v;
	*n = count;
	return 0;
}

void cn_dcv_record_name(const char *prefix, const char *domain, char *out, size_t size)
{
	if (strncmp(domain, "*.", 2) == 0)
		domain += 2;
	snprintf(out, size, "%s.%s", prefix, domain);
}

bool cn_same_csr(const char *a, const char *b)
{
	if (!a || !b)
		return false;
	for (;;) {
		while (*a && (isspace((unsigned char)*a)))
			a++;
		while (*b && (isspace((unsigned char)*b)))
			b++;
		if (!*a || !*b)
			return !*a && !*b;
		if (*a != *b)
			return false;
		a++;
		b++;
	}
}
