/* SPDX-License-Identifier: Apache-2.0 */
/* CA provider for The SSL Store WBAPI (type = sslstore). The wire format
 * lives in sslstore_wire.c; this file holds configuration, the HTTP calls
 * and the order flows (new order, renewal, reissue, reconcile, poll, fetch,
 * refund, query). Quoted section names and OQ-n (open question n) refer to
 * docs/protocol-sslstore.md; the configuration is in docs/providers-sslstore.md. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "http.h"
#include "log.h"
#include "p11e-config.h"
#include "provider.h"
#include "secret.h"
#include "sslstore_wire.h"
#include "util.h"

#define SS_DEFAULT_RENEWAL_WINDOW (30 * 86400)
#define SS_DEFAULT_VALIDITY_DAYS 365
#define SS_DEFAULT_PAGE_SIZE 100
#define SS_DEFAULT_POLL_INTERVAL 60
#define SS_QUERY_ATTEMPTS 5   /* tries of one query page ("Listing orders") */
#define SS_RECONCILE_PAGES 50 /* pages of query a reconcile reads at most */

/* Per-order keys: a [cert:NAME] may set them to override the CA (docs/providers-sslstore.md). */
#define SS_CONTACT_KEYS(p)                                                                         \
	p "first_name", p "last_name", p "title", p "phone", p "email", p "org_name", p "address", \
		p "city", p "region", p "postal_code", p "country"
#define SS_ORG_KEYS                                                                            \
	"org_name", "org_address", "org_city", "org_region", "org_postal_code", "org_country", \
		"org_phone", "org_jurisdiction_country", "org_id"
#define SS_ORDER_KEYS                                                                       \
	"validity", "approver_email", SS_CONTACT_KEYS("admin_"), SS_CONTACT_KEYS("tech_"),  \
		SS_ORG_KEYS, "server_count", "web_server_type", "signature_hash_algorithm", \
		"file_auth_dcv", "cname_auth_dcv", "https_file_auth_dcv", "auto_www"

static const char *const ss_ca_keys[] = {
	"api_url",   "partner_code",  "auth_token_file", "default_product",      "renewal_window",
	"page_size", "poll_interval", SS_ORDER_KEYS,     P11E_HTTP_SETTING_KEYS, NULL,
};

static const char *const ss_cert_keys[] = { "product", SS_ORDER_KEYS, NULL };

struct p11e_ca {
	char *name;
	struct p11e_settings settings; /* a deep copy of the [ca:NAME] settings */
	char *api_url;                 /* without trailing slash */
	char *partner_code;
	char *auth_token; /* secret: only in request bodies */
	char *token_spec; /* auth_token_file as configured, for `check` */
	struct p11e_http *http;
	struct p11e_http_opts opts; /* for a fresh client per placement */
	long renewal_window;
	unsigned page_size;
	unsigned poll_interval;
	bool https_hint; /* this poll's order validates by HTTPS file */
};

/* ---- small helpers ---------------------------------------------------------- */

static bool in_keys(const char *const *keys, const char *key)
{
	for (size_t i = 0; keys[i]; i++)
		if (strcmp(keys[i], key) == 0)
			return true;
	return false;
}

static void msgf(struct p11e_ca_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void msgf(struct p11e_ca_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}


static const char *where(const struct p11e_setting *s, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%d", s->file ? s->file : "?", s->line);
	return buf;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The WebServerType values the API accepts. */
static const char *const web_server_types[] = {
	"aol",
	"apachessl",
	"apacheraven",
	"apachessleay",
	"iis",
	"iis4",
	"iis5",
	"c2net",
	"Ibmhttp",
	"Ibminternet",
	"Iplanet",
	"Dominogo4625",
	"Dominogo4626",
	"Domino",
	"Netscape",
	"NetscapeFastTrack",
	"zeusv3",
	"Other",
	"apacheopenssl",
	"apache2",
	"apacheapachessl",
	"cobaltseries",
	"covalentserver",
	"cpanel",
	"ensim",
	"hsphere",
	"ipswitch",
	"plesk",
	"tomcat",
	"WebLogic",
	"website",
	"webstar",
	"sapwebserver",
	"webten",
	"redhat",
	"reven",
	"r3ssl",
	"quid",
	"oracle",
	"javawebserver",
	"cisco3000",
	"citrix",
	NULL,
};

/* Checks the value of one typed key; "" when fine, else what is wrong. */
static void check_value(const struct p11e_setting *s, char *why, size_t size)
{
	const char *k = s->key, *v = s->value;

	why[0] = '\0';
	if (!*v)
		return; /* an empty value means "not set" */
	if (in_keys(ss_cert_keys, k)) {
		/* OQ-12: the API is only known to take ASCII */
		for (const char *c = v; *c; c++)
			if ((unsigned char)*c >= 0x80 || (unsigned char)*c < 0x20) {
				snprintf(why, size,
					 "holds non-ASCII or control characters; The SSL Store is sent "
					 "ASCII only (transliterate, e.g. Muenchen)");
				return;
			}
	}
	if (strcmp(k, "web_server_type") == 0) {
		bool ok = false;

		for (size_t i = 0; web_server_types[i] && !ok; i++)
			ok = strcasecmp(v, web_server_types[i]) == 0;
		if (!ok)
			snprintf(why, size,
				 "is not a WebServerType of the API (e.g. Other, apache2, "
				 "iis, tomcat, plesk, cpanel)");
	} else if (strcmp(k, "renewal_window") == 0 || strcmp(k, "poll_interval") == 0) {
		if (p11e_parse_duration(v) < 1)
			snprintf(why, size, "is not a duration (e.g. 30d, 12h, 90s)");
	} else if (strcmp(k, "validity") == 0) {
		int64_t d = p11e_parse_duration(v);

		if (d < 86400)
			snprintf(why, size, "is not a duration of at least one day (e.g. 365d)");
		else if (d > 6 * 366 * 86400LL)
			snprintf(why, size, "is longer than the 72 months The SSL Store sells");
	} else if (strcmp(k, "partner_code") == 0) {
		if (!all_digits(v))
			snprintf(why, size, "is not a partner code (digits only)");
	} else if (strcmp(k, "org_id") == 0) {
		if (!all_digits(v) || strlen(v) > 12 || atol(v) <= 0)
			snprintf(why, size,
				 "is not a TSSOrganizationId (a positive number from "
				 "/rest/digicert/organizationlist)");
	} else if (strcmp(k, "server_count") == 0) {
		if (!all_digits(v) || strlen(v) > 4 || atoi(v) < 1)
			snprintf(why, size, "is not a server count between 1 and 9999");
	} else if (strcmp(k, "page_size") == 0) {
		if (!all_digits(v) || strlen(v) > 4 || atoi(v) < 1 || atoi(v) > 100)
			snprintf(why, size, "is not a page size between 1 and 100");
	} else if (strcmp(k, "file_auth_dcv") == 0 || strcmp(k, "cname_auth_dcv") == 0 ||
		   strcmp(k, "https_file_auth_dcv") == 0 || strcmp(k, "auto_www") == 0) {
		if (p11e_parse_bool(v) < 0)
			snprintf(why, size, "is not yes or no");
	} else if (strcmp(k, "signature_hash_algorithm") == 0) {
		if (strcmp(v, "PREFER_SHA2") && strcmp(v, "REQUIRE_SHA2") && strcmp(v, "PREFER_SHA1"))
			snprintf(why, size, "is not one of PREFER_SHA2, REQUIRE_SHA2, PREFER_SHA1");
	} else if (ends_with(k, "_country")) {
		if (strlen(v) != 2 || !isalpha((unsigned char)v[0]) || !isalpha((unsigned char)v[1]))
			snprintf(why, size, "is not a two-letter ISO 3166 country code (e.g. US, GB)");
	} else if (strcmp(k, "approver_email") == 0 || ends_with(k, "_email")) {
		struct p11e_strlist list;

		if (ss_approver_split(v, &list) != 0) {
			snprintf(why, size, "cannot be read (out of memory)");
			return;
		}
		for (size_t i = 0; i < list.n && !why[0]; i++) {
			const char *at = strchr(list.v[i], '@');

			if (!at || at == list.v[i] || !strchr(at, '.') || strchr(list.v[i], ' '))
				snprintf(why, size, "holds '%s', which is not an e-mail address",
					 list.v[i]);
		}
		if (list.n == 0)
			snprintf(why, size, "is empty");
		if (!why[0] && list.n > 1 && strcmp(k, "approver_email") != 0)
			snprintf(why, size, "holds more than one address");
		p11e_strlist_free(&list);
	}
}

/* ---- open / close ----------------------------------------------------------- */

static void ss_close(struct p11e_ca *ca)
{
	if (!ca)
		return;
	p11e_settings_free_copy(&ca->settings);
	free(ca->name);
	free(ca->api_url);
	free(ca->partner_code);
	free(ca->token_spec);
	p11e_secret_free(ca->auth_token);
	p11e_http_free(ca->http);
	p11e_http_opts_free(&ca->opts);
	free(ca);
}

/* api_url, checked and kept as scheme + host. */
static p11e_status read_api_url(struct p11e_ca *ca, struct p11e_err *err)
{
	const struct p11e_setting *s = p11e_settings_find(&ca->settings, "api_url");
	p11e_status rc;
	char at[512];

	if (!s || !*s->value)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s] needs api_url (https://wbapi.thesslstore.com, or the "
				    "sandbox https://sandbox-wbapi.thesslstore.com)",
				    ca->name);
	rc = p11e_http_check_url(s->value, "api_url", err);
	if (rc != P11E_OK) {
		p11e_err_prefix(err, "%s: [ca:%s]", where(s, at, sizeof(at)), ca->name);
		return rc;
	}
	ca->api_url = strdup(s->value);
	if (!ca->api_url)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	/* the configured value is scheme + host; paths start with /rest/ ("Where the API is") */
	while (*ca->api_url && ca->api_url[strlen(ca->api_url) - 1] == '/')
		ca->api_url[strlen(ca->api_url) - 1] = '\0';
	if (ends_with(ca->api_url, "/rest"))
		ca->api_url[strlen(ca->api_url) - 5] = '\0';
	return P11E_OK;
}

/* Everything open checks without a secret or the network: run by open and
 * by validate (when the configuration loads). Fills *opts. */
static p11e_status parse_settings(struct p11e_ca *ca, struct p11e_http_opts *opts,
				  struct p11e_err *err)
{
	const struct p11e_setting *s;
	p11e_status rc;
	char at[512], why[256];
	bool file_dcv = false, cname_dcv = false;

	for (size_t i = 0; i < ca->settings.n; i++) {
		s = &ca->settings.v[i];
		if (strcmp(s->key, "type") == 0)
			continue;
		if (!in_keys(ss_ca_keys, s->key))
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s: [ca:%s] has no key '%s' for type sslstore "
					    "(see p11enroll.conf(5))",
					    where(s, at, sizeof(at)), ca->name, s->key);
		check_value(s, why, sizeof(why));
		if (why[0])
			return p11e_err_set(err, P11E_EUSAGE, "%s: [ca:%s] %s = '%s' %s",
					    where(s, at, sizeof(at)), ca->name, s->key, s->value, why);
	}

	rc = read_api_url(ca, err);
	if (rc != P11E_OK)
		return rc;

	s = p11e_settings_find(&ca->settings, "partner_code");
	if (!s || !*s->value)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s] needs partner_code (the reseller partner code of The SSL "
				    "Store account)",
				    ca->name);
	ca->partner_code = strdup(s->value);

	s = p11e_settings_find(&ca->settings, "auth_token_file");
	if (!s || !*s->value)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s] needs auth_token_file (a 0600 file holding the API "
				    "authentication token, or env:NAME)",
				    ca->name);
	ca->token_spec = strdup(s->value);
	if (!ca->partner_code || !ca->token_spec)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");

	if ((s = p11e_settings_find(&ca->settings, "renewal_window")))
		ca->renewal_window = (long)p11e_parse_duration(s->value);
	if ((s = p11e_settings_find(&ca->settings, "poll_interval")))
		ca->poll_interval = (unsigned)p11e_parse_duration(s->value);
	if ((s = p11e_settings_find(&ca->settings, "page_size")))
		ca->page_size = (unsigned)atoi(s->value);
	if ((s = p11e_settings_find(&ca->settings, "file_auth_dcv")))
		file_dcv = p11e_parse_bool(s->value) == 1;
	if ((s = p11e_settings_find(&ca->settings, "cname_auth_dcv")))
		cname_dcv = p11e_parse_bool(s->value) == 1;
	if (p11e_settings_find(&ca->settings, "https_file_auth_dcv") &&
	    p11e_parse_bool(p11e_settings_find(&ca->settings, "https_file_auth_dcv")->value) == 1 &&
	    (file_dcv || cname_dcv))
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: [ca:%s] https_file_auth_dcv and %s are both on; choose one "
				    "domain validation method",
				    where(p11e_settings_find(&ca->settings, "https_file_auth_dcv"), at,
					  sizeof(at)),
				    ca->name, file_dcv ? "file_auth_dcv" : "cname_auth_dcv");
	if (file_dcv && cname_dcv)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: [ca:%s] file_auth_dcv and cname_auth_dcv are both on; choose "
				    "one domain validation method",
				    where(s, at, sizeof(at)), ca->name);
	return p11e_http_opts_from_settings(opts, &ca->settings, err);
}

/* A provider state with the settings only (validate and open). */
static p11e_status new_ca(const char *ca_name, const struct p11e_settings *settings,
			  struct p11e_ca **out, struct p11e_err *err)
{
	static const struct p11e_settings none = { NULL, 0 };
	struct p11e_ca *ca = calloc(1, sizeof(*ca));
	p11e_status rc;

	*out = NULL;
	if (!ca)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	ca->renewal_window = SS_DEFAULT_RENEWAL_WINDOW;
	ca->page_size = SS_DEFAULT_PAGE_SIZE;
	ca->poll_interval = SS_DEFAULT_POLL_INTERVAL;
	ca->name = strdup(ca_name ? ca_name : "sslstore");
	if (!ca->name || p11e_settings_copy(&ca->settings, settings ? settings : &none) != P11E_OK) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		ss_close(ca);
		return rc;
	}
	*out = ca;
	return P11E_OK;
}

static p11e_status ss_open(const char *ca_name, const struct p11e_settings *settings,
			   struct p11e_ca **out, struct p11e_err *err)
{
	struct p11e_http_opts opts = { 0 };
	const struct p11e_setting *s;
	struct p11e_ca *ca = NULL;
	p11e_status rc;
	char at[512];

	*out = NULL;
	rc = new_ca(ca_name, settings, &ca, err);
	if (rc == P11E_OK)
		rc = parse_settings(ca, &opts, err);
	if (rc != P11E_OK)
		goto out;
	s = p11e_settings_find(&ca->settings, "auth_token_file");
	rc = p11e_secret_read(s->value, "auth_token_file", &ca->auth_token, err);
	if (rc != P11E_OK) {
		p11e_err_prefix(err, "%s: [ca:%s]", where(s, at, sizeof(at)), ca->name);
		goto out;
	}
	if ((s = p11e_settings_find(&ca->settings, "default_product")) &&
	    ss_product_family(s->value) == SS_OTHER)
		p11e_warn("%s: [ca:%s] default_product %s is not in p11enroll's product table; "
			  "every configured field is sent and the CA decides what it needs",
			  where(s, at, sizeof(at)), ca->name, s->value);

	rc = p11e_http_new(&opts, &ca->http, err);
	if (rc != P11E_OK)
		goto out;
	ca->opts = opts;
	opts.ca_bundle = NULL; /* now owned by ca->opts */
	p11e_http_add_secret(ca->http, ca->auth_token);
	*out = ca;
	ca = NULL;
out:
	p11e_http_opts_free(&opts);
	ss_close(ca);
	return rc;
}

/* ---- one call --------------------------------------------------------------- */

struct ss_call {
	const char *path; /* "/rest/order/status" */
	const char *what; /* "order status", for messages */
	bool place;       /* an order placement: never retried once sent */
	/* when any refusal of the call is final: how refusal() names the call
	 * and what it advises; NULL when the caller reads refusals itself */
	const char *refused, *todo;
};

/* One exchange with the CA: the credentials with a fresh ReplayToken for the
 * request body, then the answer or what kind of refusal it was. */
struct ss_exchange {
	struct ss_auth auth;
	char replay[32];
	enum ss_errkind kind; /* of a refusal (P11E_CA_REJECTED) */
	cJSON *json;          /* the answer of a call that succeeded; the caller deletes it */
};

/* The AuthRequest for the body of one request (a new ReplayToken each). */
static const struct ss_auth *ss_auth_for(const struct p11e_ca *ca, struct ss_exchange *x)
{
	unsigned char rnd[8];
	char hex[17];

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	p11e_hex(rnd, sizeof(rnd), hex);
	snprintf(x->replay, sizeof(x->replay), "p11e-%s", hex);
	x->auth.partner_code = ca->partner_code;
	x->auth.auth_token = ca->auth_token;
	x->auth.replay_token = x->replay;
	x->auth.user_agent = "p11enroll/" P11E_VERSION;
	x->kind = SS_ERR_OTHER;
	x->json = NULL;
	return &x->auth;
}

static void free_body(char *text)
{
	if (text) {
		OPENSSL_cleanse(text, strlen(text)); /* it holds the AuthToken */
		free(text);
	}
}

/* A refusal (isError true) turned into the outcome of a call that is not a
 * placement; `what_to_do` is appended to the CA's words. */
static p11e_ca_outcome refusal(struct p11e_ca *ca, enum ss_errkind kind, const char *what,
			       const char *what_to_do, struct p11e_ca_result *res)
{
	char camsg[sizeof(res->message)];

	snprintf(camsg, sizeof(camsg), "%s", res->message);
	if (kind == SS_ERR_AUTH)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "The SSL Store refused the credentials (%s): %s; check partner_code "
				    "and auth_token_file of [ca:%s] (sandbox and production credentials "
				    "differ)",
				    what, camsg, ca->name);
	if (kind == SS_ERR_NOT_FOUND)
		return p11e_ca_fail(res, P11E_CA_NOT_FOUND, "The SSL Store %s: %s", what, camsg);
	return p11e_ca_fail(res, P11E_CA_REJECTED, "The SSL Store %s: %s%s%s", what, camsg,
			    what_to_do ? "; " : "", what_to_do ? what_to_do : "");
}

/* Every call to the CA: sends `body` (built on ss_auth_for(ca, x); consumed)
 * and judges the HTTP status, the JSON and the AuthResponse. Returns
 * P11E_CA_OK with x->json when the CA answered isError false. When it
 * answered isError true, res holds the CA's code and words and x->kind the
 * kind of refusal: a call that names `refused` gets refusal()'s outcome,
 * any other P11E_CA_REJECTED for the caller to read. Otherwise the
 * transport's outcome (UNREACHABLE, MISCONFIGURED; UNKNOWN for placements). */
static p11e_ca_outcome ss_ask(struct p11e_ca *ca, const struct ss_call *call, cJSON *body,
			      struct ss_exchange *x, struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	struct p11e_http_request req = { 0 };
	struct p11e_http *fresh = NULL, *http = ca->http;
	p11e_ca_outcome rc;
	char url[1024];
	char *payload = NULL;

	x->json = NULL;
	x->kind = SS_ERR_OTHER;
	snprintf(url, sizeof(url), "%s%s", ca->api_url, call->path);
	payload = body ? cJSON_PrintUnformatted(body) : NULL;
	if (!payload) {
		rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE, "The SSL Store %s: out of memory",
				  call->what);
		goto out;
	}
	req.method = "POST";
	req.url = url;
	req.content_type = "application/json; charset=utf-8";
	req.body = payload;
	req.no_retry_after_send = call->place;
	req.log_name = call->path;
	if (call->place) {
		struct p11e_err err = { 0 };

		/* A placement goes over a new connection: libcurl silently sends a
		 * request again when a reused connection turns out closed, which
		 * for neworder would be a second order. */
		if (p11e_http_new(&ca->opts, &fresh, &err) != P11E_OK) {
			rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE, "The SSL Store %s: %s", call->what,
					  err.msg);
			goto out;
		}
		p11e_http_add_secret(fresh, ca->auth_token);
		http = fresh;
	}
	p11e_http_perform(http, &req, &resp);

	rc = ss_judge(&resp, call->what, ca->api_url, call->place, x->replay, &x->json, &x->kind, res);
	if (rc == P11E_CA_REJECTED && call->refused)
		rc = refusal(ca, x->kind, call->refused, call->todo, res);
out:
	cJSON_Delete(body);
	free_body(payload);
	p11e_http_response_clear(&resp);
	p11e_http_free(fresh);
	return rc;
}

static const struct ss_call CALL_STATUS = { "/rest/order/status", "order status", false, NULL, NULL };
static const struct ss_call CALL_DOWNLOAD = { "/rest/order/download", "download", false, NULL, NULL };
static const struct ss_call CALL_NEWORDER = { "/rest/order/neworder", "new order", true, NULL, NULL };
static const struct ss_call CALL_REISSUE = { "/rest/order/reissue", "reissue", true, NULL, NULL };
static const struct ss_call CALL_APPROVERS = { "/rest/order/approverlist", "approver list", false,
					       NULL, NULL };
static const struct ss_call CALL_QUERY = { "/rest/order/query", "order query", false, NULL, NULL };
static const struct ss_call CALL_REFUND = { "/rest/order/refundrequest", "refund request", false, NULL,
					    NULL };
static const struct ss_call CALL_DRY_RUN = { "/rest/order/validate", "order validation (dry run)",
					     false, "order validation (dry run)",
					     "fix the configuration before an order is placed" };
static const struct ss_call CALL_REFUND_STATUS = { "/rest/order/refundstatus", "refund status", false,
						   NULL, NULL };
static const struct ss_call CALL_REVOKE = { "/rest/order/certificaterevokerequest",
					    "revocation without refund", false,
					    "revocation without refund", NULL };
static const struct ss_call CALL_ORGS = { "/rest/digicert/organizationlist",
					  "DigiCert organisation list", false, "organisation list",
					  "check the account's DigiCert setup" };
static const struct ss_call CALL_VALIDATE = { "/rest/health/validate", "credential check", false, NULL,
					      NULL };
static const struct ss_call CALL_PRODUCTS = { "/rest/product/query", "product query", false,
					      "product query", NULL };

/* /rest/order/status by order id or by CustomOrderID; a refusal is
 * returned as P11E_CA_REJECTED with *kind. */
static p11e_ca_outcome ss_status(struct p11e_ca *ca, const char *order_id, const char *custom_id,
				 struct ss_order_info *info, enum ss_errkind *kind,
				 struct p11e_ca_result *res)
{
	struct ss_exchange x;
	p11e_ca_outcome rc;

	rc = ss_ask(ca, &CALL_STATUS, ss_req_order(ss_auth_for(ca, &x), order_id, custom_id), &x, res);
	if (kind)
		*kind = x.kind;
	if (rc == P11E_CA_OK) {
		ss_parse_order(x.json, info);
		if (!info->order_id[0])
			rc = p11e_ca_fail(
				res, P11E_CA_UNREACHABLE,
				"The SSL Store order status: the answer names no TheSSLStoreOrderID");
	}
	cJSON_Delete(x.json);
	return rc;
}

/* The order a command names (poll, revoke, cancel): any refusal is final. */
static p11e_ca_outcome read_order(struct p11e_ca *ca, const char *order_id, const char *custom_id,
				  struct ss_order_info *info, struct p11e_ca_result *res)
{
	enum ss_errkind kind;
	p11e_ca_outcome rc = ss_status(ca, order_id, custom_id, info, &kind, res);

	if (rc == P11E_CA_REJECTED)
		return refusal(ca, kind, "order status", "check the order in the SSL Store portal",
			       res);
	return rc;
}

static void set_ids(struct p11e_ca_result *res, const struct ss_order_info *info)
{
	snprintf(res->order_id, sizeof(res->order_id), "%s", info->order_id);
	snprintf(res->request_id, sizeof(res->request_id), "%s", info->partner_order_id);
	snprintf(res->status_text, sizeof(res->status_text), "%s%s%s",
		 info->major[0] ? info->major : "?", info->minor[0] ? "/" : "", info->minor);
}

/* Why an order is rejected or cancelled, in words. */
static void rejected_message(const struct ss_order_info *info, struct p11e_ca_result *res)
{
	if (info->comments[0]) {
		char text[sizeof(info->comments)];

		/* the vendor's reason, as the CA recorded it */
		ss_vendor_message(info->comments, text, sizeof(text), res->ca_code,
				  sizeof(res->ca_code));
		msgf(res, "order %s is %s: %s; fix the order data and enrol again", info->order_id,
		     res->status_text, text);
	} else if (info->refund_id[0])
		msgf(res,
		     "order %s is %s: a refund request (%s) cancelled it; a new order is "
		     "needed",
		     info->order_id, res->status_text, info->refund_id);
	else if (strcasecmp(info->major, "Active") == 0)
		msgf(res,
		     "the reissue of order %s was rejected (%s); the previous certificate "
		     "stays valid; see the order notes in the SSL Store portal",
		     info->order_id, res->status_text);
	else
		msgf(res,
		     "order %s is %s at The SSL Store; see the order notes in the SSL "
		     "Store portal, then enrol again",
		     info->order_id, res->status_text);
}

/* What a pending order waits for, with the instructions for domain
 * validation by CNAME or file when the CA sent them. */
static void pending_message(const struct p11e_ca *ca, const struct ss_order_info *info, bool known,
			    struct p11e_ca_result *res)
{
	char content[2 * sizeof(info->file_content)];
	size_t at = 0;

	if (info->cname_name[0] && info->cname_value[0]) {
		msgf(res, "order %s is %s: domain validation by CNAME: publish %s CNAME %s",
		     info->order_id, res->status_text, info->cname_name, info->cname_value);
		snprintf(res->instructions, sizeof(res->instructions), "CNAME %s %s", info->cname_name,
			 info->cname_value);
		return;
	}
	if (!info->file_name[0]) {
		msgf(res,
		     "order %s is %s: waiting for domain validation (the approver e-mail) "
		     "or vetting%s",
		     info->order_id, res->status_text,
		     known ? "" : "; this status word is new to p11enroll, treated as pending");
		return;
	}
	msgf(res,
	     "order %s is %s: domain validation by file: serve %s with the content "
	     "%s over http(s) on every name",
	     info->order_id, res->status_text, info->file_name, info->file_content);
	/* one line: the content's line breaks written as \n */
	for (const char *c = info->file_content; *c && at + 3 < sizeof(content); c++) {
		if (*c == '\r')
			continue;
		if (*c == '\n') {
			content[at++] = '\\';
			content[at++] = 'n';
		} else {
			content[at++] = *c;
		}
	}
	content[at] = '\0';
	snprintf(res->instructions, sizeof(res->instructions),
		 "file %s://NAME/.well-known/pki-validation/%s for every NAME of the "
		 "order, content \"%s\" (\\n = line break)",
		 ca->https_hint ? "https" : "http", info->file_name, content);
}

/* Where an order stands, from its status object. */
static p11e_ca_outcome order_outcome(struct p11e_ca *ca, const struct ss_order_info *info,
				     struct p11e_ca_result *res)
{
	bool known;
	p11e_ca_outcome o = ss_status_outcome(info->major, info->minor, &known);

	set_ids(res, info);
	res->outcome = o;
	res->retry_after = res->retry_after > ca->poll_interval ? res->retry_after : ca->poll_interval;
	switch (o) {
	case P11E_CA_ISSUED:
		snprintf(res->serial, sizeof(res->serial), "%s", info->serial);
		res->not_after = info->cert_end_t;
		msgf(res, "order %s-%s is issued", info->order_id, info->partner_order_id);
		break;
	case P11E_CA_REJECTED:
		rejected_message(info, res);
		break;
	default:
		pending_message(ca, info, known, res);
		break;
	}
	return o;
}

/* ---- per-order parameters --------------------------------------------------- */

struct ss_order_ctx {
	struct ss_params p;
	char product[64];
	char custom_id[72];
	char *csr;
	char *approvers; /* comma-joined, trimmed, lower-case */
	struct p11e_strlist approver_list;
	const struct p11e_setting *product_from, *approver_from, *org_id_from;
};

static void ctx_free(struct ss_order_ctx *c)
{
	free(c->csr);
	free(c->approvers);
	p11e_strlist_free(&c->approver_list);
}

static const struct p11e_setting *lookup(const struct p11e_ca *ca, const struct p11e_order *order,
					 const char *key)
{
	const struct p11e_setting *s = NULL;

	if (order && order->overrides && in_keys(ss_cert_keys, key))
		s = p11e_settings_find(order->overrides, key);
	if (!s)
		s = p11e_settings_find(&ca->settings, key);
	return s && *s->value ? s : NULL;
}

static const char *val(const struct p11e_ca *ca, const struct p11e_order *order, const char *key)
{
	const struct p11e_setting *s = lookup(ca, order, key);

	return s ? s->value : NULL;
}

static void read_contact(const struct p11e_ca *ca, const struct p11e_order *order, const char *prefix,
			 struct ss_contact *c)
{
	char key[64];

#define C(field)                                         \
	snprintf(key, sizeof(key), "%s" #field, prefix); \
	c->field = val(ca, order, key)
	C(first_name);
	C(last_name);
	C(title);
	C(phone);
	C(email);
	C(org_name);
	C(address);
	C(city);
	C(region);
	C(postal_code);
	C(country);
#undef C
}

/* The first of `settings` whose value check_value() finds wrong (why says
 * how), or NULL; `cert_keys_only` passes over keys a [cert:] cannot set. */
static const struct p11e_setting *bad_setting(const struct p11e_settings *settings,
					      bool cert_keys_only, char *why, size_t size)
{
	for (size_t i = 0; settings && i < settings->n; i++) {
		const struct p11e_setting *s = &settings->v[i];

		if (cert_keys_only && !in_keys(ss_cert_keys, s->key))
			continue;
		check_value(s, why, size);
		if (why[0])
			return s;
	}
	return NULL;
}

/* Where the product comes from: the [cert:] product, else default_product. */
static const struct p11e_setting *product_setting(const struct p11e_ca *ca,
						  const struct p11e_settings *overrides)
{
	const struct p11e_setting *s = overrides ? p11e_settings_find(overrides, "product") : NULL;

	return s && *s->value ? s : lookup(ca, NULL, "default_product");
}

/* The contacts and the organisation; returns where org_id is set, or NULL. */
static const struct p11e_setting *read_parties(const struct p11e_ca *ca,
					       const struct p11e_order *order, struct ss_params *p)
{
	const struct p11e_setting *org_id = lookup(ca, order, "org_id");

	read_contact(ca, order, "admin_", &p->admin);
	read_contact(ca, order, "tech_", &p->tech);
	p->org.name = val(ca, order, "org_name");
	p->org.address = val(ca, order, "org_address");
	p->org.city = val(ca, order, "org_city");
	p->org.region = val(ca, order, "org_region");
	p->org.postal_code = val(ca, order, "org_postal_code");
	p->org.country = val(ca, order, "org_country");
	p->org.phone = val(ca, order, "org_phone");
	p->org.jurisdiction_country = val(ca, order, "org_jurisdiction_country");
	p->org.id = org_id ? atol(org_id->value) : 0;
	return org_id;
}

static bool flag(const struct p11e_ca *ca, const struct p11e_order *order, const char *key)
{
	const struct p11e_setting *s = lookup(ca, order, key);

	return s && p11e_parse_bool(s->value) == 1;
}

/* How the names are validated (several on is the caller's to refuse). */
static void read_dcv(const struct p11e_ca *ca, const struct p11e_order *order, struct ss_params *p)
{
	p->file_dcv = flag(ca, order, "file_auth_dcv");
	p->cname_dcv = flag(ca, order, "cname_auth_dcv");
	p->https_file_dcv = flag(ca, order, "https_file_auth_dcv");
	p->auto_www = flag(ca, order, "auto_www");
}

/* ApproverEmail: the configured addresses, comma-joined, when the names
 * are validated by e-mail. */
static p11e_ca_outcome join_approvers(const struct p11e_ca *ca, const struct p11e_order *order,
				      struct ss_order_ctx *c, struct p11e_ca_result *res)
{
	const struct ss_params *p = &c->p;
	size_t len = 0;

	c->approver_from = lookup(ca, order, "approver_email");
	if (ss_approver_split(c->approver_from ? c->approver_from->value : NULL, &c->approver_list) !=
	    0)
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
	if (c->approver_list.n == 0 || p->file_dcv || p->cname_dcv || p->https_file_dcv ||
	    p->family == SS_DIGICERT_EO)
		return P11E_CA_OK;
	for (size_t i = 0; i < c->approver_list.n; i++)
		len += strlen(c->approver_list.v[i]) + 1;
	c->approvers = calloc(1, len + 1);
	if (!c->approvers)
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
	for (size_t i = 0; i < c->approver_list.n; i++) {
		if (i)
			strcat(c->approvers, ",");
		strcat(c->approvers, c->approver_list.v[i]);
	}
	return P11E_CA_OK;
}

/* Resolves the order's parameters; MISCONFIGURED names file:line. */
static p11e_ca_outcome resolve(struct p11e_ca *ca, const struct p11e_order *order,
			       struct ss_order_ctx *c, struct p11e_ca_result *res)
{
	const struct p11e_setting *s;
	const char *name = order->name ? order->name : "?";
	char at[512], why[256], missing[512];
	int64_t validity = (int64_t)SS_DEFAULT_VALIDITY_DAYS * 86400;
	struct ss_params *p = &c->p;
	p11e_ca_outcome rc;

	memset(c, 0, sizeof(*c));
	/* per-certificate overrides get the same checks as the section */
	if ((s = bad_setting(order->overrides, true, why, sizeof(why))))
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "%s: [cert:%s] %s = '%s' %s",
				    where(s, at, sizeof(at)), name, s->key, s->value, why);
	c->product_from = s = product_setting(ca, order->overrides);
	if (!s)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[ca:%s] has no default_product and [cert:%s] no product; set one "
				    "(e.g. positivessl; `p11enroll products %s` lists them)",
				    ca->name, name, ca->name);
	snprintf(c->product, sizeof(c->product), "%s", s->value);
	p->product = c->product;
	p->family = ss_product_family(c->product);

	if ((s = lookup(ca, order, "validity")))
		validity = p11e_parse_duration(s->value);
	p->months = ss_days_to_months((long)(validity / 86400), ss_family_is_digicert(p->family));

	if (ss_custom_order_id(order->idempotency_id, c->custom_id, sizeof(c->custom_id)) != 0)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "the order of [cert:%s] has no idempotency id; p11enroll journals one "
				    "before placing (this is a bug)",
				    name);
	p->custom_order_id = c->custom_id;

	c->csr = ss_csr_normalize(order->csr_pem);
	if (!c->csr)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "the CSR of [cert:%s] is not a PKCS#10 request; run `p11enroll csr %s` "
				    "to make a new one",
				    name, name);
	p->csr_pem = c->csr;
	/* DomainName must equal the CSR's CN when sent; none without a CN */
	p->domain_name = order->common_name ? order->common_name : "";
	p->dns = order->dns;

	c->org_id_from = read_parties(ca, order, p);
	s = lookup(ca, order, "server_count");
	p->server_count = s ? atoi(s->value) : 1;
	p->web_server_type = val(ca, order, "web_server_type");
	if (!p->web_server_type)
		p->web_server_type = "Other";
	p->signature_hash = val(ca, order, "signature_hash_algorithm");
	if (!p->signature_hash)
		p->signature_hash = "PREFER_SHA2";
	read_dcv(ca, order, p);
	if (p->https_file_dcv && (p->file_dcv || p->cname_dcv))
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[cert:%s]: https_file_auth_dcv and another domain validation method "
				    "are both on; choose one",
				    name);
	if (p->file_dcv && p->cname_dcv)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[cert:%s]: file_auth_dcv and cname_auth_dcv are both on; choose one "
				    "domain validation method",
				    name);
	rc = join_approvers(ca, order, c, res);
	if (rc != P11E_CA_OK)
		return rc;
	p->approver_email = c->approvers ? c->approvers : "";

	if (ss_family_missing(p, missing, sizeof(missing)) > 0 &&
	    strcmp(missing, "approver_email") != 0)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "product %s (%s%s%s) needs %s; set %s in [ca:%s] or [cert:%s]",
				    c->product, ss_family_name(p->family),
				    c->product_from ? ", from " : "",
				    c->product_from ? where(c->product_from, at, sizeof(at)) : "",
				    missing, strchr(missing, ',') ? "them" : "it", ca->name, name);
	return P11E_CA_OK;
}

/* ---- approver e-mails and DigiCert organisations ---------------------------- */

static p11e_ca_outcome fetch_approvers(struct p11e_ca *ca, const char *product, const char *domain,
				       struct p11e_strlist *list, struct p11e_ca_result *res)
{
	struct ss_exchange x;
	const cJSON *arr, *e;
	p11e_ca_outcome rc;

	rc = ss_ask(ca, &CALL_APPROVERS, ss_req_approverlist(ss_auth_for(ca, &x), product, domain), &x,
		    res);
	if (rc == P11E_CA_REJECTED) {
		char camsg[sizeof(res->message)];

		snprintf(camsg, sizeof(camsg), "%s", res->message);
		if (x.kind == SS_ERR_AUTH)
			return refusal(ca, x.kind, "approver list", NULL, res);
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "The SSL Store has no approver list for %s with product %s: %s; check "
				    "the product and the names",
				    domain, product, camsg);
	}
	if (rc != P11E_CA_OK)
		return rc;
	arr = cJSON_GetObjectItemCaseSensitive(x.json, "ApproverEmailList");
	if (!arr)
		arr = cJSON_GetObjectItem(x.json, "ApproverEmailList");
	cJSON_ArrayForEach (e, (cJSON_IsArray(arr) ? arr : NULL))
		if (cJSON_IsString(e) && p11e_strlist_add(list, e->valuestring) != 0)
			rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
	cJSON_Delete(x.json);
	return rc;
}

/* The approver rule ("Approvers"), before anything is placed. */
static p11e_ca_outcome check_approvers(struct p11e_ca *ca, const struct p11e_order *order,
				       struct ss_order_ctx *c, struct p11e_ca_result *res)
{
	const char **domains = NULL;
	struct p11e_strlist *lists = NULL;
	size_t n = 0, cap = (order->dns ? order->dns->n : 0) + 1;
	bool digicert = ss_family_is_digicert(c->p.family);
	p11e_ca_outcome rc = P11E_CA_OK;
	char why[900], at[512];

	if (c->p.file_dcv || c->p.cname_dcv || c->p.family == SS_DIGICERT_EO)
		return P11E_CA_OK; /* no e-mail validation (KF2 skips it for CNAME too) */
	domains = calloc(cap, sizeof(*domains));
	lists = calloc(cap, sizeof(*lists));
	if (!domains || !lists) {
		rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
		goto out;
	}
	/* the CN first, then each SAN that differs from it ("Approvers") */
	if (c->p.domain_name && *c->p.domain_name)
		domains[n++] = c->p.domain_name;
	for (size_t i = 0; order->dns && i < order->dns->n; i++) {
		bool dup = false;

		for (size_t j = 0; j < n && !dup; j++)
			dup = strcasecmp(domains[j], order->dns->v[i]) == 0;
		if (!dup)
			domains[n++] = order->dns->v[i];
	}
	for (size_t i = 0; i < n && (i == 0 || !digicert); i++) {
		rc = fetch_approvers(ca, c->product, domains[i], &lists[i], res);
		if (rc != P11E_CA_OK)
			goto out;
	}
	if (ss_approver_rule(digicert, &c->approver_list, domains, lists, digicert && n ? 1 : n, why,
			     sizeof(why)) != 0)
		rc = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				  "%s%s[ca:%s] product %s: %s; nothing was ordered",
				  c->approver_from ? where(c->approver_from, at, sizeof(at)) : "",
				  c->approver_from ? ": " : "", ca->name, c->product, why);
out:
	for (size_t i = 0; lists && i < cap; i++)
		p11e_strlist_free(&lists[i]);
	free(lists);
	free(domains);
	return rc;
}

/* A -EO order names an organisation that must exist and be active ("Approvers"). */
static p11e_ca_outcome check_org(struct p11e_ca *ca, struct ss_order_ctx *c,
				 struct p11e_ca_result *res)
{
	struct ss_exchange x;
	char active[700] = "", at[512];
	const cJSON *list, *e;
	p11e_ca_outcome rc;
	const char *found_status = NULL;

	if (c->p.family != SS_DIGICERT_EO)
		return P11E_CA_OK;
	rc = ss_ask(ca, &CALL_ORGS, ss_req_orglist(ss_auth_for(ca, &x)), &x, res);
	if (rc != P11E_CA_OK)
		return rc;
	list = cJSON_GetObjectItem(x.json, "OrganizationList");
	cJSON_ArrayForEach (e, (cJSON_IsArray(list) ? list : NULL)) {
		const cJSON *id = cJSON_GetObjectItem(e, "TSSOrganizationId");
		const cJSON *st = cJSON_GetObjectItem(e, "Status");
		const cJSON *name = cJSON_GetObjectItem(e, "Name");
		const char *status = cJSON_IsString(st) ? st->valuestring : "";
		long idv = cJSON_IsNumber(id)   ? (long)id->valuedouble
			   : cJSON_IsString(id) ? atol(id->valuestring)
						: 0;
		char item[160];

		if (idv == c->p.org.id)
			found_status = status;
		if (strcasecmp(status, "active") == 0) {
			snprintf(item, sizeof(item), "%s%s (%ld)", active[0] ? ", " : "",
				 cJSON_IsString(name) ? name->valuestring : "?", idv);
			if (strlen(active) + strlen(item) + 1 < sizeof(active))
				strcat(active, item);
		}
	}
	if (!found_status || strcasecmp(found_status, "active") != 0) {
		char state[128];

		if (found_status)
			snprintf(state, sizeof(state), "not active (status %s)",
				 *found_status ? found_status : "?");
		else
			snprintf(state, sizeof(state),
				 "not in the account's DigiCert organisation list");
		rc = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				  "%s%s[ca:%s] org_id %ld is %s for product %s; active organisations: %s",
				  c->org_id_from ? where(c->org_id_from, at, sizeof(at)) : "",
				  c->org_id_from ? ": " : "", ca->name, c->p.org.id, state, c->product,
				  active[0] ? active : "none");
	}
	cJSON_Delete(x.json);
	return rc;
}

/* ---- place / reconcile ------------------------------------------------------ */

enum ss_mode { SS_NEW, SS_RENEWAL, SS_REISSUE };

static const char *mode_name(enum ss_mode mode)
{
	return mode == SS_NEW ? "new order" : mode == SS_RENEWAL ? "renewal (new order)" : "reissue";
}

/* Renewal vs reissue, from the previous order's status: a cancelled order
 * gets a new order; otherwise the order's own plan decides ("Renewal or reissue"): a
 * renewal (a new paid order) only when the plan ends within
 * renewal_window, else a reissue on the same order, whatever the
 * certificate's notAfter. An unknown plan end means a renewal. */
static enum ss_mode mode_from(const struct p11e_ca *ca, const struct ss_order_info *prev, time_t now)
{
	if (strcasecmp(prev->major, "Cancelled") == 0 || strcasecmp(prev->major, "Canceled") == 0)
		return SS_NEW;
	if (!prev->order_expiry_known || prev->order_expiry_t == 0 ||
	    prev->order_expiry_t - now <= ca->renewal_window)
		return SS_RENEWAL;
	return SS_REISSUE;
}

static p11e_ca_outcome choose_mode(struct p11e_ca *ca, const struct p11e_order *order,
				   enum ss_mode *mode, struct ss_order_info *prev,
				   struct p11e_ca_result *res)
{
	time_t now = time(NULL);
	enum ss_errkind kind;
	p11e_ca_outcome rc;

	*mode = SS_NEW;
	if (!order->previous.order_id || !*order->previous.order_id)
		return P11E_CA_OK;
	rc = ss_status(ca, order->previous.order_id, NULL, prev, &kind, res);
	if (rc == P11E_CA_REJECTED) {
		if (kind != SS_ERR_NOT_FOUND)
			return refusal(ca, kind, "status of the order being renewed", NULL, res);
		p11e_warn("[ca:%s] order %s being renewed is unknown to The SSL Store; placing a new "
			  "order",
			  ca->name, order->previous.order_id);
		return P11E_CA_OK;
	}
	if (rc != P11E_CA_OK)
		return rc;
	*mode = mode_from(ca, prev, now);
	if (*mode == SS_NEW)
		p11e_info("[ca:%s] order %s is cancelled; placing a new order", ca->name,
			  prev->order_id);
	else if (prev->order_expiry_known && prev->order_expiry_t)
		p11e_info("[ca:%s] order %s: its plan ends in %lld days (renewal_window %lld days): %s",
			  ca->name, prev->order_id, (long long)(prev->order_expiry_t - now) / 86400,
			  (long long)ca->renewal_window / 86400, mode_name(*mode));
	return P11E_CA_OK;
}

/* Sends the reissue of `prev`, or a new order (a renewal of `prev`). */
static p11e_ca_outcome send_placement(struct p11e_ca *ca, struct ss_order_ctx *c, enum ss_mode mode,
				      const struct ss_order_info *prev, struct ss_exchange *x,
				      struct p11e_ca_result *res)
{
	if (mode == SS_REISSUE)
		return ss_ask(ca, &CALL_REISSUE,
			      ss_req_reissue(ss_auth_for(ca, x), &c->p, prev->order_id), x, res);
	c->p.renewal = mode == SS_RENEWAL;
	c->p.related_order_id = c->p.renewal ? prev->order_id : NULL;
	return ss_ask(ca, &CALL_NEWORDER, ss_req_neworder(ss_auth_for(ca, x), &c->p), x, res);
}

/* A placement the CA refused (its words in res). */
static p11e_ca_outcome placement_refused(struct p11e_ca *ca, const struct p11e_order *order,
					 const struct ss_order_ctx *c, enum ss_mode mode,
					 enum ss_errkind kind, struct p11e_ca_result *res)
{
	char camsg[sizeof(res->message)], code[sizeof(res->ca_code)];
	struct ss_order_info found;
	struct p11e_ca_result probe = { 0 };
	p11e_ca_outcome rc;

	snprintf(camsg, sizeof(camsg), "%s", res->message);
	snprintf(code, sizeof(code), "%s", res->ca_code);
	/* a refusal because our CustomOrderID exists means an earlier
	 * attempt got through: follow that order, never a second one.
	 * Any other refusal says no order holds the id: no lookup (the
	 * CA counts a lookup of an unknown id as a client error). */
	if (mode != SS_REISSUE && (kind == SS_ERR_DUPLICATE || strcasestr(camsg, "CustomOrderID")) &&
	    ss_status(ca, NULL, c->custom_id, &found, NULL, &probe) == P11E_CA_OK) {
		p11e_ca_result_clear(res);
		return order_outcome(ca, &found, res);
	}
	p11e_ca_result_clear(&probe);
	if (kind == SS_ERR_AUTH)
		return refusal(ca, kind, mode_name(mode), NULL, res);
	rc = p11e_ca_fail(res, P11E_CA_REJECTED,
			  "The SSL Store refused the %s for %s (product %s): %s; fix the order data "
			  "in [ca:%s] or [cert:%s] and enrol again",
			  mode_name(mode), c->p.domain_name, c->product, camsg, ca->name,
			  order->name ? order->name : "?");
	snprintf(res->ca_code, sizeof(res->ca_code), "%s", code);
	return rc;
}

/* Where a placement the CA took stands, from its answer. */
static p11e_ca_outcome placement_taken(struct p11e_ca *ca, const struct ss_order_ctx *c,
				       enum ss_mode mode, const cJSON *json,
				       struct p11e_ca_result *res)
{
	struct ss_order_info info;
	p11e_ca_outcome rc;

	ss_parse_order(json, &info);
	if (!info.order_id[0])
		return p11e_ca_fail(res, P11E_CA_UNKNOWN,
				    "The SSL Store %s: the answer names no TheSSLStoreOrderID; the order may "
				    "exist: it is looked up by its CustomOrderID before any new order",
				    mode_name(mode));
	rc = order_outcome(ca, &info, res);
	if (rc == P11E_CA_PENDING) {
		char more[sizeof(res->message)];

		snprintf(more, sizeof(more), "%s", res->message);
		msgf(res, "%s placed (CustomOrderID %s): %s", mode_name(mode), c->custom_id, more);
	}
	return rc;
}

static p11e_ca_outcome ss_place(struct p11e_ca *ca, const struct p11e_order *order,
				struct p11e_ca_result *res)
{
	struct ss_order_ctx c;
	struct ss_order_info prev = { 0 };
	struct ss_exchange x = { 0 };
	enum ss_mode mode;
	const char *placed = NULL;
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	rc = resolve(ca, order, &c, res);
	if (rc != P11E_CA_OK)
		goto out;
	rc = choose_mode(ca, order, &mode, &prev, res);
	if (rc != P11E_CA_OK)
		goto out;
	if (mode == SS_REISSUE && strcasecmp(prev.minor, "PENDING_REISSUE") == 0) {
		/* a reissue is already running on this order (perhaps ours from a
		 * lost answer): follow it instead of asking again */
		rc = order_outcome(ca, &prev, res);
		msgf(res, "a reissue of order %s is already in progress (%s); following it",
		     prev.order_id, prev.partner_order_id);
		goto out;
	}
	rc = check_approvers(ca, order, &c, res);
	if (rc == P11E_CA_OK)
		rc = check_org(ca, &c, res);
	if (rc != P11E_CA_OK)
		goto out;

	p11e_info("[ca:%s] placing a %s for %s: product %s (%s), %d months, CustomOrderID %s",
		  ca->name, mode_name(mode), c.p.domain_name, c.product, ss_family_name(c.p.family),
		  c.p.months, c.custom_id);
	placed = mode == SS_REISSUE ? "reissue" : mode == SS_RENEWAL ? "renewal" : "neworder";
	rc = send_placement(ca, &c, mode, &prev, &x, res);
	if (rc == P11E_CA_REJECTED)
		rc = placement_refused(ca, order, &c, mode, x.kind, res);
	else if (rc == P11E_CA_OK)
		rc = placement_taken(ca, &c, mode, x.json, res);
out:
	if (placed)
		snprintf(res->placed_as, sizeof(res->placed_as), "%s", placed);
	cJSON_Delete(x.json);
	ctx_free(&c);
	return rc;
}

static p11e_ca_outcome query_page(struct p11e_ca *ca, time_t since, unsigned page, cJSON **out,
				  struct p11e_ca_result *res);

/* Reconcile, step 1: a reissue keeps the order and changes its
 * PartnerOrderID ("Order identifiers"); it ignores CustomOrderID, so it is
 * never looked up by it. True when the previous order settles where the
 * placement stands (*rc); false to look for a new order or renewal. */
static bool reissue_settled(struct p11e_ca *ca, const struct p11e_order *order, p11e_ca_outcome *rc,
			    struct p11e_ca_result *res)
{
	struct ss_order_info info;
	enum ss_errkind kind;
	bool reissue = order->placed_as && strcmp(order->placed_as, "reissue") == 0;

	*rc = ss_status(ca, order->previous.order_id, NULL, &info, &kind, res);
	if (*rc != P11E_CA_OK && *rc != P11E_CA_REJECTED)
		return true;
	if (*rc == P11E_CA_REJECTED && kind == SS_ERR_AUTH) {
		*rc = refusal(ca, kind, "order lookup", NULL, res);
		return true;
	}
	if (*rc == P11E_CA_OK &&
	    (strcasecmp(info.minor, "PENDING_REISSUE") == 0 ||
	     (order->previous.request_id && *order->previous.request_id && info.partner_order_id[0] &&
	      strcmp(info.partner_order_id, order->previous.request_id) != 0))) {
		p11e_ca_result_clear(res);
		*rc = order_outcome(ca, &info, res);
		return true;
	}
	/* the placement's kind when the agent could not record it (a
	 * crash during the call): the rule place follows */
	if (*rc == P11E_CA_OK && !order->placed_as)
		reissue = mode_from(ca, &info, time(NULL)) == SS_REISSUE;
	if (!reissue)
		return false;
	p11e_ca_result_clear(res);
	*rc = p11e_ca_fail(res, P11E_CA_NOT_FOUND,
			   "order %s was not reissued (PartnerOrderID %s unchanged); "
			   "asking for the reissue again is safe",
			   order->previous.order_id,
			   order->previous.request_id ? order->previous.request_id : "?");
	return true;
}

/* Reconcile, step 3: the inventory since the placement; certain when
 * nothing matches. */
static p11e_ca_outcome find_in_inventory(struct p11e_ca *ca, const struct p11e_order *order,
					 const char *custom, bool has_prev, struct p11e_ca_result *res)
{
	struct ss_order_info info;
	p11e_ca_outcome rc;
	time_t since = order->placed_after > 86400 ? order->placed_after - 86400 : 0;

	for (unsigned page = 1; page <= SS_RECONCILE_PAGES; page++) {
		cJSON *arr = NULL;
		const cJSON *e;
		int n;

		p11e_ca_result_clear(res);
		rc = query_page(ca, since, page, &arr, res);
		if (rc != P11E_CA_OK)
			return rc == P11E_CA_REJECTED ? P11E_CA_UNREACHABLE : rc;
		n = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : 0;
		cJSON_ArrayForEach (e, arr) {
			ss_parse_order(e, &info);
			if (strcmp(info.custom_order_id, custom) == 0 && info.order_id[0]) {
				cJSON_Delete(arr);
				p11e_ca_result_clear(res);
				rc = ss_status(ca, info.order_id, NULL, &info, NULL, res);
				return rc == P11E_CA_OK ? order_outcome(ca, &info, res) : rc;
			}
		}
		cJSON_Delete(arr);
		if ((unsigned)n < ca->page_size) {
			p11e_ca_result_clear(res);
			return p11e_ca_fail(res, P11E_CA_NOT_FOUND,
					    "The SSL Store has no order with CustomOrderID %s%s; it was never "
					    "placed, a new order is safe",
					    custom,
					    has_prev ? " and no reissue of the previous order" : "");
		}
	}
	return p11e_ca_fail(res, P11E_CA_UNREACHABLE,
			    "The SSL Store order query: more than %d pages since the placement; cannot "
			    "be sure the order does not exist, try again later",
			    SS_RECONCILE_PAGES);
}

static p11e_ca_outcome ss_reconcile(struct p11e_ca *ca, const struct p11e_order *order,
				    struct p11e_ca_result *res)
{
	struct ss_order_info info;
	enum ss_errkind kind;
	char custom[72];
	p11e_ca_outcome rc;
	bool has_prev = order->previous.order_id && *order->previous.order_id;

	p11e_ca_result_clear(res);
	if (ss_custom_order_id(order->idempotency_id, custom, sizeof(custom)) != 0)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "the order of [cert:%s] has no idempotency id (this is a bug)",
				    order->name ? order->name : "?");
	if (has_prev && reissue_settled(ca, order, &rc, res))
		return rc;
	/* 2. a new order or renewal carries our CustomOrderID ("Order identifiers") */
	p11e_ca_result_clear(res);
	rc = ss_status(ca, NULL, custom, &info, &kind, res);
	if (rc == P11E_CA_OK) {
		p11e_ca_result_clear(res);
		return order_outcome(ca, &info, res);
	}
	if (rc == P11E_CA_REJECTED && kind == SS_ERR_AUTH)
		return refusal(ca, kind, "order lookup", NULL, res);
	if (rc != P11E_CA_REJECTED)
		return rc;
	return find_in_inventory(ca, order, custom, has_prev, res);
}

/* ---- poll / fetch / revoke -------------------------------------------------- */

static p11e_ca_outcome ss_poll(struct p11e_ca *ca, const struct p11e_order *order,
			       const struct p11e_order_ref *ref, struct p11e_ca_result *res)
{
	struct ss_order_info info;
	char custom[72] = "";
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	if ((!ref || !ref->order_id || !*ref->order_id) &&
	    (!order || ss_custom_order_id(order->idempotency_id, custom, sizeof(custom)) != 0))
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "poll without an order id (this is a bug)");
	rc = read_order(ca, ref && ref->order_id && *ref->order_id ? ref->order_id : NULL, custom,
			&info, res);
	if (rc != P11E_CA_OK)
		return rc;
	if (ref && ref->request_id && *ref->request_id && info.partner_order_id[0] &&
	    strcmp(ref->request_id, info.partner_order_id) != 0)
		p11e_info("[ca:%s] order %s now has PartnerOrderID %s (was %s): it was reissued",
			  ca->name, info.order_id, info.partner_order_id, ref->request_id);
	{
		const struct p11e_setting *h = lookup(ca, order, "https_file_auth_dcv");

		ca->https_hint = h && p11e_parse_bool(h->value) == 1;
	}
	return order_outcome(ca, &info, res);
}

/* The download was refused: when the order's status tells more (not issued
 * yet, cancelled before issuance), that is the answer; else the refusal. */
static p11e_ca_outcome download_refused(struct p11e_ca *ca, const struct p11e_order_ref *ref,
					enum ss_errkind kind, struct p11e_ca_result *res)
{
	struct ss_order_info info;
	struct p11e_ca_result probe = { 0 };
	char camsg[sizeof(res->message)];

	snprintf(camsg, sizeof(camsg), "%s", res->message);
	if (kind != SS_ERR_AUTH &&
	    ss_status(ca, ref->order_id, NULL, &info, NULL, &probe) == P11E_CA_OK &&
	    order_outcome(ca, &info, &probe) != P11E_CA_ISSUED) {
		p11e_ca_result_clear(res);
		*res = probe;
		return res->outcome;
	}
	p11e_ca_result_clear(&probe);
	msgf(res, "%s", camsg);
	return refusal(ca, kind, "download", "check the order in the SSL Store portal", res);
}

/* The order ids of a download: PartnerOrderID (a string or a number), else
 * the one the agent had. */
static void download_ids(const cJSON *json, const struct p11e_order_ref *ref,
			 struct p11e_ca_result *res)
{
	const cJSON *v = cJSON_GetObjectItem(json, "PartnerOrderID");
	char pid[128] = "";

	if (cJSON_IsString(v))
		snprintf(pid, sizeof(pid), "%s", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(pid, sizeof(pid), "%.0f", v->valuedouble);
	snprintf(res->order_id, sizeof(res->order_id), "%s", ref->order_id);
	snprintf(res->request_id, sizeof(res->request_id), "%s",
		 pid[0] ? pid : (ref->request_id ? ref->request_id : ""));
}

/* The certificates as the download holds them (common/chain.h orders them
 * in the agent, for the key). */
static p11e_ca_outcome ss_fetch(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				struct p11e_ca_result *res)
{
	struct ss_exchange x;
	cJSON *json = NULL;
	size_t entries = 0;
	p11e_ca_outcome rc;
	int n;

	p11e_ca_result_clear(res);
	if (!ref || !ref->order_id || !*ref->order_id)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "fetch without an order id (this is a bug)");
	rc = ss_ask(ca, &CALL_DOWNLOAD, ss_req_order(ss_auth_for(ca, &x), ref->order_id, NULL), &x,
		    res);
	json = x.json;
	if (rc == P11E_CA_REJECTED)
		rc = download_refused(ca, ref, x.kind, res);
	if (rc != P11E_CA_OK)
		goto out;
	n = ss_parse_download(json, &res->chain_pem, &entries);
	if (n < 0)
		rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
	else if (entries == 0)
		rc = p11e_ca_fail(res, P11E_CA_REJECTED,
				  "The SSL Store download of order %s holds no certificate (an order "
				  "cancelled before issuance has none)",
				  ref->order_id);
	else if (n == 0)
		rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				  "The SSL Store download of order %s: the download holds no certificate",
				  ref->order_id);
	if (rc != P11E_CA_OK)
		goto out;
	download_ids(json, ref, res);
	snprintf(res->status_text, sizeof(res->status_text), "Active");
	msgf(res, "downloaded order %s: %d certificate(s)", ref->order_id, n);
	res->outcome = rc = P11E_CA_ISSUED;
out:
	cJSON_Delete(json);
	return rc;
}

/* Already done on the CA's side: cancelled, or a refund asked for or
 * approved. Then nothing is sent. */
static bool refund_done(const struct ss_order_info *info)
{
	return strcasecmp(info->major, "Cancelled") == 0 || strcasecmp(info->major, "Canceled") == 0 ||
	       info->refund_id[0] || info->refund_approved;
}

static void already_done(struct p11e_ca_result *res, const struct ss_order_info *info)
{
	bool cancelled =
		strcasecmp(info->major, "Cancelled") == 0 || strcasecmp(info->major, "Canceled") == 0;

	set_ids(res, info);
	msgf(res, "order %s is %s: %s (refund request %s); nothing more to do, nothing was sent",
	     info->order_id, info->major,
	     cancelled               ? "already cancelled"
	     : info->refund_approved ? "its refund is already approved"
				     : "a refund request is already filed",
	     info->refund_id[0] ? info->refund_id : "?");
	res->outcome = P11E_CA_OK;
}

static p11e_ca_outcome ss_revoke(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				 p11e_revoke_reason reason, struct p11e_ca_result *res)
{
	struct ss_order_info info;
	struct ss_exchange x;
	char why[160];
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	if (!ref || !ref->order_id || !*ref->order_id)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "revoke without an order id (this is a bug)");
	/* Idempotent on the wire: read the order first, send nothing when the
	 * refund was already asked for or the order is cancelled. */
	rc = read_order(ca, ref->order_id, NULL, &info, res);
	if (rc != P11E_CA_OK)
		return rc;
	if (refund_done(&info)) {
		p11e_ca_result_clear(res);
		already_done(res, &info);
		return P11E_CA_OK;
	}
	p11e_ca_result_clear(res);
	ss_refund_reason(reason, why, sizeof(why));
	rc = ss_ask(ca, &CALL_REFUND, ss_req_refund(ss_auth_for(ca, &x), ref->order_id, why), &x, res);
	if (rc == P11E_CA_OK) {
		ss_parse_order(x.json, &info);
		snprintf(res->order_id, sizeof(res->order_id), "%s", ref->order_id);
		snprintf(res->request_id, sizeof(res->request_id), "%s",
			 info.partner_order_id[0] ? info.partner_order_id
						  : (ref->request_id ? ref->request_id : ""));
		snprintf(res->status_text, sizeof(res->status_text), "refund requested");
		msgf(res,
		     "The SSL Store accepted a refund request%s%s for order %s (reason %s): this is "
		     "a refund request, not an immediate revocation; SSL Store staff cancel the "
		     "order and revoke the certificate, after which the order shows Cancelled",
		     info.refund_id[0] ? " " : "", info.refund_id, ref->order_id,
		     p11e_revoke_reason_name(reason));
		res->outcome = rc = P11E_CA_OK;
		goto out;
	}
	if (rc == P11E_CA_REJECTED && x.kind != SS_ERR_AUTH) {
		char camsg[sizeof(res->message)];
		struct p11e_ca_result probe = { 0 };

		/* filed meanwhile by someone else: success, said so */
		snprintf(camsg, sizeof(camsg), "%s", res->message);
		if (ss_status(ca, ref->order_id, NULL, &info, NULL, &probe) == P11E_CA_OK &&
		    refund_done(&info)) {
			p11e_ca_result_clear(res);
			already_done(res, &info);
			rc = P11E_CA_OK;
			goto out;
		}
		p11e_ca_result_clear(&probe);
		msgf(res, "%s", camsg);
	}
	if (rc == P11E_CA_REJECTED)
		rc = refusal(ca, x.kind, "refund request (revocation)",
			     "the refund window may have passed; ask The SSL Store support to revoke",
			     res);
out:
	cJSON_Delete(x.json);
	return rc;
}

/* /order/validate: the new order's body, checked by the CA, nothing placed
 * or charged (the approver and organisation checks run first, as for place). */
static p11e_ca_outcome ss_dry_run(struct p11e_ca *ca, const struct p11e_order *order,
				  struct p11e_ca_result *res)
{
	struct ss_order_ctx c;
	struct ss_exchange x = { 0 };
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	memset(&c, 0, sizeof(c));
	rc = resolve(ca, order, &c, res);
	if (rc == P11E_CA_OK)
		rc = check_approvers(ca, order, &c, res);
	if (rc == P11E_CA_OK)
		rc = check_org(ca, &c, res);
	if (rc != P11E_CA_OK)
		goto out;
	rc = ss_ask(ca, &CALL_DRY_RUN, ss_req_neworder(ss_auth_for(ca, &x), &c.p), &x, res);
	if (rc == P11E_CA_OK) {
		msgf(res, "The SSL Store accepts the order: product %s (%s), %d months, %s", c.product,
		     ss_family_name(c.p.family), c.p.months, c.p.domain_name);
		res->outcome = P11E_CA_OK;
	}
out:
	cJSON_Delete(x.json);
	ctx_free(&c);
	return rc;
}

/* certificaterevokerequest: the certificate is revoked, the order stays
 * paid (no refund). Read first, so that it can be repeated. */
static p11e_ca_outcome ss_revoke_no_refund(struct p11e_ca *ca, const struct p11e_order_ref *ref,
					   p11e_revoke_reason reason, struct p11e_ca_result *res)
{
	struct ss_order_info info;
	struct ss_exchange x;
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	if (!ref || !ref->order_id || !*ref->order_id)
		return p11e_ca_fail(res, P11E_CA_NOT_FOUND, "no order number to revoke");
	rc = read_order(ca, ref->order_id, NULL, &info, res);
	if (rc != P11E_CA_OK)
		return rc;
	p11e_ca_result_clear(res);
	if (strcasecmp(info.major, "Cancelled") == 0 || strcasecmp(info.major, "Canceled") == 0) {
		set_ids(res, &info);
		msgf(res, "order %s is already %s%s%s; nothing was sent", ref->order_id, info.major,
		     info.minor[0] ? "/" : "", info.minor);
		snprintf(res->status_text, sizeof(res->status_text), "revoked");
		return res->outcome = P11E_CA_OK;
	}
	rc = ss_ask(ca, &CALL_REVOKE, ss_req_revoke(ss_auth_for(ca, &x), ref->order_id, info.serial),
		    &x, res);
	if (rc == P11E_CA_OK) {
		set_ids(res, &info);
		snprintf(res->status_text, sizeof(res->status_text), "revoked");
		msgf(res,
		     "The SSL Store revoked the certificate of order %s (serial %s, reason %s) "
		     "without a refund: the order stays paid",
		     ref->order_id, info.serial[0] ? info.serial : "?",
		     p11e_revoke_reason_name(reason));
		res->outcome = P11E_CA_OK;
	}
	cJSON_Delete(x.json);
	return rc;
}

/* refundstatus: where a refund request stands. */
static p11e_ca_outcome ss_refund_status(struct p11e_ca *ca, const struct p11e_order_ref *ref,
					struct p11e_ca_result *res)
{
	struct ss_order_info info;
	struct ss_exchange x;
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	if (!ref || !ref->order_id || !*ref->order_id)
		return p11e_ca_fail(res, P11E_CA_NOT_FOUND, "no order number");
	rc = ss_ask(ca, &CALL_REFUND_STATUS, ss_req_order(ss_auth_for(ca, &x), ref->order_id, NULL),
		    &x, res);
	if (rc == P11E_CA_OK) {
		ss_parse_order(x.json, &info);
		set_ids(res, &info);
		snprintf(res->status_text, sizeof(res->status_text), "%s",
			 info.refund_approved ? "approved" : "requested");
		msgf(res, "refund request %s for order %s is %s (order %s%s%s)",
		     info.refund_id[0] ? info.refund_id : "?", ref->order_id,
		     info.refund_approved ? "approved" : "not approved yet", info.major,
		     info.minor[0] ? "/" : "", info.minor);
		res->outcome = P11E_CA_OK;
	} else if (rc == P11E_CA_REJECTED && x.kind != SS_ERR_AUTH &&
		   strcasestr(res->message, "no refund")) {
		rc = p11e_ca_fail(res, P11E_CA_NOT_FOUND, "no refund was asked for order %s",
				  ref->order_id);
	} else if (rc == P11E_CA_REJECTED) {
		rc = refusal(ca, x.kind, "refund status", NULL, res);
	}
	cJSON_Delete(x.json);
	return rc;
}

/* The SSL Store has no cancel call of its own: a refund request on an
 * order not issued yet cancels it (docs/protocol-sslstore.md). */
static p11e_ca_outcome ss_cancel(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				 struct p11e_ca_result *res)
{
	struct ss_order_info info;
	bool known = true;
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	if (!ref || !ref->order_id || !*ref->order_id)
		return p11e_ca_fail(res, P11E_CA_NOT_FOUND, "no order number to cancel");
	rc = read_order(ca, ref->order_id, NULL, &info, res);
	if (rc != P11E_CA_OK)
		return rc;
	p11e_ca_result_clear(res);
	if (ss_status_outcome(info.major, info.minor, &known) == P11E_CA_ISSUED)
		return p11e_ca_fail(res, P11E_CA_REJECTED,
				    "[ca:%s] order %s is issued (%s); only an order not issued yet can be "
				    "cancelled (revoke an issued one)",
				    ca->name, ref->order_id, info.major);
	rc = ss_revoke(ca, ref, P11E_REVOKE_CESSATION_OF_OPERATION, res);
	if (rc == P11E_CA_OK) {
		msgf(res,
		     "The SSL Store accepted the cancellation (a refund request) of order %s; it "
		     "shows Cancelled once SSL Store staff process it",
		     ref->order_id);
		snprintf(res->status_text, sizeof(res->status_text), "cancellation requested");
	}
	return rc;
}

/* ---- inventory, check, products --------------------------------------------- */

/* One page of /rest/order/query, retried on failure as the SAME page
 * (the reference client skips it, "Listing orders"). *out is the array. */
static p11e_ca_outcome query_page(struct p11e_ca *ca, time_t since, unsigned page, cJSON **out,
				  struct p11e_ca_result *res)
{
	p11e_ca_outcome rc = P11E_CA_UNREACHABLE;

	*out = NULL;
	for (unsigned attempt = 1; attempt <= SS_QUERY_ATTEMPTS; attempt++) {
		struct ss_exchange x;
		unsigned char r;

		if (attempt > 1) {
			RAND_bytes(&r, 1);
			usleep(1000u * p11e_http_backoff_ms(attempt - 1, 200, 5000, r / 255.0));
		}
		p11e_ca_result_clear(res);
		rc = ss_ask(ca, &CALL_QUERY,
			    ss_req_query(ss_auth_for(ca, &x), since, page, ca->page_size), &x, res);
		if (rc == P11E_CA_OK && !cJSON_IsArray(x.json)) {
			cJSON_Delete(x.json);
			x.json = NULL;
			rc = p11e_ca_fail(res, P11E_CA_UNREACHABLE,
					  "The SSL Store order query: page %u is not a list", page);
		}
		if (rc == P11E_CA_OK) {
			*out = x.json;
			return rc;
		}
		if (rc == P11E_CA_REJECTED && x.kind == SS_ERR_AUTH)
			return refusal(ca, x.kind, "order query", NULL, res);
		if (rc == P11E_CA_MISCONFIGURED)
			return rc;
		p11e_warn("[ca:%s] order query page %u failed (attempt %u of %d): %s", ca->name, page,
			  attempt, SS_QUERY_ATTEMPTS, res->message);
	}
	if (rc == P11E_CA_REJECTED)
		rc = refusal(ca, SS_ERR_OTHER, "order query", "try again later", res);
	return rc;
}

static p11e_ca_outcome ss_list_orders(struct p11e_ca *ca, time_t since, unsigned page,
				      struct p11e_order_page *out, struct p11e_ca_result *res)
{
	struct ss_order_info info;
	const cJSON *e;
	cJSON *arr = NULL;
	p11e_ca_outcome rc;
	size_t n;

	p11e_ca_result_clear(res);
	memset(out, 0, sizeof(*out));
	page = page ? page : 1;
	rc = query_page(ca, since, page, &arr, res);
	if (rc != P11E_CA_OK)
		return rc;
	n = (size_t)cJSON_GetArraySize(arr);
	out->rows = calloc(n ? n : 1, sizeof(*out->rows));
	if (!out->rows) {
		cJSON_Delete(arr);
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
	}
	cJSON_ArrayForEach (e, arr) {
		struct p11e_order_row *row = &out->rows[out->n];

		if (ss_parse_order(e, &info) != 0 || !info.order_id[0])
			continue; /* the reference client skips them too */
		out->n++;
		snprintf(row->order_id, sizeof(row->order_id), "%s", info.order_id);
		snprintf(row->request_id, sizeof(row->request_id), "%s", info.partner_order_id);
		snprintf(row->status, sizeof(row->status), "%s%s%s", info.major,
			 info.minor[0] ? "/" : "", info.minor);
		snprintf(row->domain, sizeof(row->domain), "%s", info.common_name);
		snprintf(row->product, sizeof(row->product), "%s", info.product);
		snprintf(row->ordered, sizeof(row->ordered), "%s", info.purchase);
		snprintf(row->expires, sizeof(row->expires), "%s", info.cert_end);
		snprintf(row->serial, sizeof(row->serial), "%s", info.serial);
		{
			bool known = true;
			p11e_ca_outcome o = ss_status_outcome(info.major, info.minor, &known);

			if (!known)
				row->state = P11E_ROW_UNKNOWN;
			else if (o == P11E_CA_PENDING)
				row->state = P11E_ROW_PENDING;
			else if (o == P11E_CA_ISSUED)
				row->state = info.cert_end_t && info.cert_end_t < time(NULL)
						     ? P11E_ROW_EXPIRED
						     : P11E_ROW_ISSUED;
			else
				/* cancelled after issue: refunded and revoked */
				row->state = info.serial[0] ? P11E_ROW_REVOKED : P11E_ROW_FAILED;
		}
		/* CustomOrderID is "p11e-" + our idempotency id (docs/protocol-sslstore.md). */
		if (strncmp(info.custom_order_id, "p11e-", 5) == 0)
			snprintf(row->tag, sizeof(row->tag), "%.120s", info.custom_order_id + 5);
	}
	out->page = page;
	/* the API reports no total: a full page means there may be another */
	out->pages = n == 0 ? page - 1 : (n < ca->page_size ? page : page + 1);
	cJSON_Delete(arr);
	msgf(res, "page %u: %zu orders", page, out->n);
	res->outcome = P11E_CA_OK;
	return P11E_CA_OK;
}

static p11e_ca_outcome ss_check(struct p11e_ca *ca, struct p11e_ca_result *res)
{
	struct ss_exchange x;
	struct p11e_err err = { 0 };
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	if (strncmp(ca->token_spec, "env:", 4) != 0 &&
	    p11e_secret_check_file(ca->token_spec, "auth_token_file", &err) != P11E_OK)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "[ca:%s] %s", ca->name, err.msg);
	rc = ss_ask(ca, &CALL_VALIDATE, ss_req_validate(ss_auth_for(ca, &x)), &x, res);
	cJSON_Delete(x.json);
	if (rc == P11E_CA_REJECTED) {
		char camsg[sizeof(res->message)];

		snprintf(camsg, sizeof(camsg), "%s", res->message);
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "The SSL Store refused the credentials of [ca:%s] (partner %s): %s; "
				    "check partner_code and auth_token_file (sandbox and production "
				    "credentials differ)",
				    ca->name, ca->partner_code, camsg);
	}
	if (rc != P11E_CA_OK)
		return rc;
	msgf(res, "The SSL Store at %s accepts the credentials of partner %s", ca->api_url,
	     ca->partner_code);
	res->outcome = P11E_CA_OK;
	return P11E_CA_OK;
}

static p11e_ca_outcome ss_products(struct p11e_ca *ca, struct p11e_product **list, size_t *n,
				   struct p11e_ca_result *res)
{
	struct ss_exchange x;
	const cJSON *e;
	p11e_ca_outcome rc;

	p11e_ca_result_clear(res);
	*list = NULL;
	*n = 0;
	rc = ss_ask(ca, &CALL_PRODUCTS, ss_req_products(ss_auth_for(ca, &x)), &x, res);
	if (rc != P11E_CA_OK)
		return rc;
	if (!cJSON_IsArray(x.json)) {
		cJSON_Delete(x.json);
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				    "The SSL Store product query: not a list");
	}
	*list = calloc((size_t)cJSON_GetArraySize(x.json) + 1, sizeof(**list));
	if (!*list) {
		cJSON_Delete(x.json);
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
	}
	cJSON_ArrayForEach (e, x.json) {
		struct p11e_product *p = &(*list)[*n];
		const cJSON *code = cJSON_GetObjectItem(e, "ProductCode");
		const cJSON *name = cJSON_GetObjectItem(e, "ProductName");
		const cJSON *vendor = cJSON_GetObjectItem(e, "VendorName");
		enum ss_family f;

		if (!cJSON_IsString(code) || !*code->valuestring)
			continue;
		snprintf(p->code, sizeof(p->code), "%s", code->valuestring);
		snprintf(p->name, sizeof(p->name), "%s",
			 cJSON_IsString(name) ? name->valuestring : "");
		f = ss_product_family(p->code);
		snprintf(p->category, sizeof(p->category), "%s",
			 f != SS_OTHER ? ss_family_name(f)
				       : (cJSON_IsString(vendor) ? vendor->valuestring : ""));
		(*n)++;
	}
	cJSON_Delete(x.json);
	msgf(res, "%zu products", *n);
	res->outcome = P11E_CA_OK;
	return P11E_CA_OK;
}

extern const struct p11e_ca_ops p11e_sslstore_ops;
/* ---- validate --------------------------------------------------------------- */

/* What resolve() would find missing or malformed in an order of
 * `cert_name`, found without a CSR. */
static p11e_status validate_order(struct p11e_ca *ca, const char *cert_name, const char *cert_where,
				  const struct p11e_settings *overrides, struct p11e_err *err)
{
	struct p11e_order order = { .name = cert_name, .overrides = overrides };
	const struct p11e_setting *s, *product_from;
	struct ss_params p = { 0 };
	char at[512], why[256], missing[512];

	if ((s = bad_setting(overrides, false, why, sizeof(why))))
		return p11e_err_set(err, P11E_EUSAGE, "%s: [cert:%s] %s = '%s' %s",
				    where(s, at, sizeof(at)), cert_name, s->key, s->value, why);
	product_from = product_setting(ca, overrides);
	if (!product_from)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: [ca:%s] has no default_product and [cert:%s] no product; "
				    "set one (e.g. positivessl; `p11enroll products %s` lists them)",
				    cert_where ? cert_where : "?", ca->name, cert_name, ca->name);
	p.product = product_from->value;
	p.family = ss_product_family(p.product);
	read_parties(ca, &order, &p);
	read_dcv(ca, &order, &p);
	if (p.file_dcv && p.cname_dcv)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: [cert:%s]: file_auth_dcv and cname_auth_dcv are both on; "
				    "choose one domain validation method",
				    cert_where ? cert_where : "?", cert_name);
	p.approver_email = val(ca, &order, "approver_email");
	/* like resolve(): a missing approver alone is asked of the CA at placement */
	if (ss_family_missing(&p, missing, sizeof(missing)) > 0 &&
	    strcmp(missing, "approver_email") != 0)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: [cert:%s] product %s (%s, from %s) needs %s; set %s in "
				    "[ca:%s] or [cert:%s]",
				    cert_where ? cert_where : "?", cert_name, p.product,
				    ss_family_name(p.family), where(product_from, at, sizeof(at)),
				    missing, strchr(missing, ',') ? "them" : "it", ca->name,
				    cert_name);
	return P11E_OK;
}

static p11e_status ss_validate(const char *ca_name, const struct p11e_settings *settings,
			       const char *cert_name, const char *cert_where,
			       const struct p11e_settings *overrides, struct p11e_err *err)
{
	struct p11e_http_opts opts = { 0 };
	struct p11e_ca *ca = NULL;
	p11e_status rc = new_ca(ca_name, settings, &ca, err);

	if (rc == P11E_OK)
		rc = parse_settings(ca, &opts, err);
	if (rc == P11E_OK && cert_name)
		rc = validate_order(ca, cert_name, cert_where, overrides, err);
	p11e_http_opts_free(&opts);
	ss_close(ca);
	return rc;
}

static const struct p11e_ca_note ss_help[] = {
	{ "enroll", "The SSL Store: --dry-run sends /order/validate." },
	{ "revoke", "The SSL Store has no revocation call: a refund request is filed, and its staff "
		    "cancel and revoke. --no-refund revokes at once and keeps the order paid "
		    "(certificaterevokerequest); --refund-status asks where the refund of an earlier "
		    "revoke or cancel stands (refundstatus)." },
	{ "cancel", "The SSL Store: a refund request on the pending order." },
	{ NULL, NULL },
};

/* "-EO" (an existing organisation) is a way of ordering the listed code,
 * not another product. */
static const char *const ss_product_suffixes[] = { "-EO", NULL };

const struct p11e_ca_ops p11e_sslstore_ops = {
	.type = "sslstore",
	.ca_keys = ss_ca_keys,
	.cert_keys = ss_cert_keys,
	.title = "The SSL Store",
	.help = ss_help,
	.account_key = "partner_code",
	.product_suffixes = ss_product_suffixes,
	.open = ss_open,
	.validate = ss_validate,
	.close = ss_close,
	.check = ss_check,
	.products = ss_products,
	.place = ss_place,
	.reconcile = ss_reconcile,
	.poll = ss_poll,
	.fetch = ss_fetch,
	.revoke = ss_revoke,
	.list_orders = ss_list_orders,
	.cancel = ss_cancel,
	.revoke_no_refund = ss_revoke_no_refund,
	.dry_run = ss_dry_run,
	.refund_status = ss_refund_status,
};
