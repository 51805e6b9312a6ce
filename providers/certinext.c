/* SPDX-License-Identifier: Apache-2.0 */
/* The CERTInext (eMudhra emSignHub API v1) provider. Wire details live in
 * certinext_wire.c; this file holds the configuration, the OAuth token, the
 * call plumbing, the order flows, reconciliation and DNS DCV through a hook.
 * Design notes: docs/providers.md; quoted section names refer to
 * docs/protocol-certinext.md. */
#include "certinext.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "certinext_wire.h"
#include "http.h"
#include "log.h"
#include "secret.h"
#include "util.h"

#define MAX_REPORT_PAGES 100 /* reconcile never reads more than this */
#define MAX_CSR_CHECKS 20    /* candidate orders whose CSR reconcile compares */

/* The order fields both [ca:] and [cert:] may set (certinext_wire.c, cn_order_fields). */
#define CN_ORDER_FIELD_KEYS                                                                           \
	"group_number", "pre_vetting", "organization_number", "street_address", "street_address2",    \
		"city", "state", "country", "requestor_name", "requestor_isd_code",                   \
		"requestor_mobile", "requestor_email", "requestor_designation", "validity",           \
		"auto_renew", "renew_criteria", "auto_secure_www", "locality", "postal_code",         \
		"company_registration_number", "tpc_name", "tpc_email", "tpc_isd_code", "tpc_mobile", \
		"signer_name", "signer_place", "signer_ip", "contract_signer_name",                   \
		"contract_signer_email", "contract_signer_isd_code", "contract_signer_mobile",        \
		"contract_signer_designation", "contract_signer_employee_id",                         \
		"certificate_approver_name", "certificate_approver_email",                            \
		"certificate_approver_isd_code", "certificate_approver_mobile",                       \
		"certificate_approver_designation", "certificate_approver_employee_id", "remarks"

static const char *const ca_keys[] = {
	"api_url",
	"account_number",
	"auth",
	"access_key_file",
	"oauth_token_url",
	"oauth_client_id",
	"oauth_client_secret_file",
	"default_product",
	"poll_interval",
	"page_size",
	"dcv_hook",
	"dcv_record_prefix",
	"dcv_propagation_wait",
	"dcv_poll_interval",
	"dcv_timeout",
	"tags",
	"domain_name",
	"dcv_method",
	"dcv_email",
	/* the order fields of certinext_wire.c (cn_order_fields) */
	"accounting_model",
	"email_notifications",
	CN_ORDER_FIELD_KEYS,
	P11E_HTTP_SETTING_KEYS,
	NULL,
};

static const char *const cert_keys[] = {
	"product", "domain_name", "tags", "dcv_method", "dcv_email", CN_ORDER_FIELD_KEYS, NULL,
};

/* The requestor e-mail of an order, learnt from TrackOrder, because fetch
 * and revoke get only the order reference and the CA checks the e-mail. */
struct email_memo {
	char order[128];
	char email[256];
};

struct p11e_ca {
	char *name;
	struct p11e_settings settings;
	char api_url[1024];
	const char *account;
	char *access_key; /* NULL in OAuth mode */
	bool oauth;
	const char *token_url, *client_id;
	char *client_secret;
	char *token;
	time_t token_valid_until;
	unsigned poll_interval, page_size;
	const char *dcv_hook, *dcv_prefix;
	unsigned dcv_wait, dcv_poll, dcv_timeout;
	struct p11e_http_opts opts;
	struct p11e_http *http;
	struct email_memo memo[16];
	unsigned memo_next;
};

/* ---------- configuration ---------- */

static const char *setting_where(const struct p11e_setting *st, char *buf, size_t size)
{
	snprintf(buf, size, "%s:%d", st && st->file ? st->file : "?", st ? st->line : 0);
	return buf;
}

static const char *get(const struct p11e_ca *ca, const char *key)
{
	const char *v = p11e_settings_get(&ca->settings, key, NULL);

	return v && *v ? v : NULL;
}

static p11e_status need(struct p11e_ca *ca, const char *key, const char **out, struct p11e_err *err)
{
	*out = get(ca, key);
	if (!*out)
		return p11e_err_set(err, P11E_EUSAGE, "[ca:%s]: %s is required for type = certinext",
				    ca->name, key);
	return P11E_OK;
}

static p11e_status duration_key(struct p11e_ca *ca, const char *key, unsigned deflt, unsigned *out,
				struct p11e_err *err)
{
	const struct p11e_setting *st = p11e_settings_find(&ca->settings, key);
	char where[512];
	int64_t v;

	*out = deflt;
	if (!st)
		return P11E_OK;
	v = p11e_parse_duration(st->value);
	if (v < 0 || v > 86400)
		return p11e_err_set(err, P11E_EUSAGE, "%s: %s = '%s' is not a duration (e.g. 30s, 5m)",
				    setting_where(st, where, sizeof(where)), key, st->value);
	*out = (unsigned)v;
	return P11E_OK;
}

/* Checks every order field the [ca] section sets, so that a typo shows at
 * open (and `check`) rather than at the first order. */
static p11e_status check_order_fields(struct p11e_ca *ca, struct p11e_err *err)
{
	char where[512];

	for (size_t i = 0; i < cn_n_order_fields; i++) {
		const struct cn_field *f = &cn_order_fields[i];
		const struct p11e_setting *st = p11e_settings_find(&ca->settings, f->key);
		const char *why = NULL;

		if (st && st->value[0] && cn_check_value(f->type, st->value, &why) != 0)
			return p11e_err_set(err, P11E_EUSAGE, "%s: %s = '%s' is %s",
					    setting_where(st, where, sizeof(where)), f->key, st->value,
					    why);
	}
	return P11E_OK;
}

static void cn_close(struct p11e_ca *ca)
{
	if (!ca)
		return;
	p11e_http_free(ca->http);
	p11e_http_opts_free(&ca->opts);
	p11e_secret_free(ca->access_key);
	p11e_secret_free(ca->client_secret);
	if (ca->token)
		OPENSSL_cleanse(ca->token, strlen(ca->token));
	free(ca->token);
	p11e_settings_free_copy(&ca->settings);
	free(ca->name);
	free(ca);
}

/* api_url (one '/' before each endpoint name) and account_number. */
static p11e_status parse_account(struct p11e_ca *ca, struct p11e_err *err)
{
	const struct p11e_setting *st;
	const char *url;
	char where[512];
	p11e_status rc;

	if ((rc = need(ca, "api_url", &url, err)) != P11E_OK ||
	    (rc = need(ca, "account_number", &ca->account, err)) != P11E_OK)
		return rc;
	st = p11e_settings_find(&ca->settings, "api_url");
	if ((rc = p11e_http_check_url(url, "api_url", err)) != P11E_OK) {
		p11e_err_prefix(err, "%s", setting_where(st, where, sizeof(where)));
		return rc;
	}
	/* exactly one '/' between base and endpoint name ("Where the API is") */
	snprintf(ca->api_url, sizeof(ca->api_url), "%s", url);
	for (size_t l = strlen(ca->api_url); l > 0 && ca->api_url[l - 1] == '/'; l--)
		ca->api_url[l - 1] = '\0';
	for (const char *p = ca->account; *p; p++)
		if (!isdigit((unsigned char)*p)) {
			st = p11e_settings_find(&ca->settings, "account_number");
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s: account_number = '%s' is not digits",
					    setting_where(st, where, sizeof(where)), ca->account);
		}
	return P11E_OK;
}

/* auth: the access key's file, or the OAuth endpoint, client and secret's file. */
static p11e_status parse_auth(struct p11e_ca *ca, const char **key_spec, const char **secret_spec,
			      struct p11e_err *err)
{
	const struct p11e_setting *st;
	const char *auth = get(ca, "auth") ? get(ca, "auth") : "accesskey";
	char where[512];
	p11e_status rc;

	if (strcmp(auth, "oauth") == 0) {
		ca->oauth = true;
		if ((rc = need(ca, "oauth_token_url", &ca->token_url, err)) != P11E_OK ||
		    (rc = need(ca, "oauth_client_id", &ca->client_id, err)) != P11E_OK ||
		    (rc = need(ca, "oauth_client_secret_file", secret_spec, err)) != P11E_OK)
			return rc;
		if ((rc = p11e_http_check_url(ca->token_url, "oauth_token_url", err)) != P11E_OK) {
			st = p11e_settings_find(&ca->settings, "oauth_token_url");
			p11e_err_prefix(err, "%s", setting_where(st, where, sizeof(where)));
			return rc;
		}
	} else if (strcmp(auth, "accesskey") == 0 || strcmp(auth, "access_key") == 0) {
		if ((rc = need(ca, "access_key_file", key_spec, err)) != P11E_OK)
			return rc;
	} else {
		st = p11e_settings_find(&ca->settings, "auth");
		return p11e_err_set(err, P11E_EUSAGE, "%s: auth = '%s': use accesskey or oauth",
				    setting_where(st, where, sizeof(where)), auth);
	}
	return P11E_OK;
}

/* The polling intervals, the DCV waits and page_size. */
static p11e_status parse_pacing(struct p11e_ca *ca, struct p11e_err *err)
{
	const struct p11e_setting *st;
	char where[512];
	unsigned v;
	p11e_status rc;

	if ((rc = duration_key(ca, "poll_interval", 30, &ca->poll_interval, err)) != P11E_OK ||
	    (rc = duration_key(ca, "dcv_propagation_wait", 30, &ca->dcv_wait, err)) != P11E_OK ||
	    (rc = duration_key(ca, "dcv_poll_interval", 30, &ca->dcv_poll, err)) != P11E_OK ||
	    (rc = duration_key(ca, "dcv_timeout", 600, &ca->dcv_timeout, err)) != P11E_OK)
		return rc;
	if (ca->poll_interval == 0)
		ca->poll_interval = 1;
	if (ca->dcv_poll == 0)
		ca->dcv_poll = 1;
	st = p11e_settings_find(&ca->settings, "page_size");
	ca->page_size = 100;
	if (st) {
		char *end;

		v = (unsigned)strtoul(st->value, &end, 10);
		if (*end || !isdigit((unsigned char)st->value[0]) || v < 1 || v > 500)
			return p11e_err_set(err, P11E_EUSAGE, "%s: page_size = '%s' is not 1..500",
					    setting_where(st, where, sizeof(where)), st->value);
		ca->page_size = v;
	}
	return P11E_OK;
}

/* dcv_record_prefix and dcv_hook. */
static p11e_status parse_dcv(struct p11e_ca *ca, struct p11e_err *err)
{
	const struct p11e_setting *st;
	char where[512];

	ca->dcv_prefix =
		get(ca, "dcv_record_prefix") ? get(ca, "dcv_record_prefix") : "_emsign-validation";
	/* the prefix becomes the owner name the hook publishes */
	if (strspn(ca->dcv_prefix,
		   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
		    strlen(ca->dcv_prefix) ||
	    ca->dcv_prefix[0] == '.' || ca->dcv_prefix[strlen(ca->dcv_prefix) - 1] == '.' ||
	    strstr(ca->dcv_prefix, "..") || strlen(ca->dcv_prefix) > 200) {
		st = p11e_settings_find(&ca->settings, "dcv_record_prefix");
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: dcv_record_prefix = '%s' is not a DNS name prefix (letters, "
				    "digits, '_', '-', labels separated by '.')",
				    setting_where(st, where, sizeof(where)), ca->dcv_prefix);
	}
	ca->dcv_hook = get(ca, "dcv_hook");
	if (ca->dcv_hook && (ca->dcv_hook[0] != '/' || access(ca->dcv_hook, X_OK) != 0)) {
		st = p11e_settings_find(&ca->settings, "dcv_hook");
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: dcv_hook = '%s' must be the absolute path of an executable "
				    "(arguments are not supported; use a wrapper script)",
				    setting_where(st, where, sizeof(where)), ca->dcv_hook);
	}
	return P11E_OK;
}

/* Everything open checks without a secret or the network: run by open and
 * by validate (when the configuration loads). Leaves ca->opts filled. */
static p11e_status parse_settings(struct p11e_ca *ca, const char **key_spec, const char **secret_spec,
				  struct p11e_err *err)
{
	p11e_status rc;

	*key_spec = *secret_spec = NULL;
	if ((rc = parse_account(ca, err)) != P11E_OK ||
	    (rc = parse_auth(ca, key_spec, secret_spec, err)) != P11E_OK ||
	    (rc = parse_pacing(ca, err)) != P11E_OK || (rc = parse_dcv(ca, err)) != P11E_OK ||
	    (rc = check_order_fields(ca, err)) != P11E_OK)
		return rc;
	return p11e_http_opts_from_settings(&ca->opts, &ca->settings, err);
}

static p11e_status cn_open(const char *ca_name, const struct p11e_settings *s, struct p11e_ca **out,
			   struct p11e_err *err)
{
	struct p11e_ca *ca = calloc(1, sizeof(*ca));
	const char *key_spec, *secret_spec;
	p11e_status rc = P11E_OK;

	*out = NULL;
	if (!ca || !(ca->name = strdup(ca_name)) || p11e_settings_copy(&ca->settings, s) != P11E_OK) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	if ((rc = parse_settings(ca, &key_spec, &secret_spec, err)) != P11E_OK)
		goto out;
	if (secret_spec && (rc = p11e_secret_read(secret_spec, "oauth_client_secret_file",
						  &ca->client_secret, err)) != P11E_OK)
		goto out;
	if (key_spec &&
	    (rc = p11e_secret_read(key_spec, "access_key_file", &ca->access_key, err)) != P11E_OK)
		goto out;
	if ((rc = p11e_http_new(&ca->opts, &ca->http, err)) != P11E_OK)
		goto out;
	p11e_http_add_secret(ca->http, ca->access_key);
	p11e_http_add_secret(ca->http, ca->client_secret);
	*out = ca;
	ca = NULL;
out:
	cn_close(ca);
	return rc;
}

/* ---------- OAuth ---------- */

static void drop_token(struct p11e_ca *ca)
{
	if (ca->token)
		OPENSSL_cleanse(ca->token, strlen(ca->token));
	free(ca->token);
	ca->token = NULL;
	ca->token_valid_until = 0;
}

/* Client-credentials grant ("OAuth"). Cached until shortly before expiry. */
static p11e_ca_outcome fetch_token(struct p11e_ca *ca, struct p11e_ca_result *res)
{
	static const char *const keys[] = { "access_token", "client_secret", NULL };
	const char *pairs[] = { "grant_type",    "client_credentials", "client_id", ca->client_id,
				"client_secret", ca->client_secret,    NULL };
	struct p11e_http_request req = {
		.url = ca->token_url,
		.content_type = "application/x-www-form-urlencoded",
		.log_name = "CERTInext OAuth token",
		.redact_keys = keys,
	};
	struct p11e_http_response resp;
	p11e_ca_outcome outcome = P11E_CA_UNREACHABLE;
	cJSON *root = NULL;
	const cJSON *tok, *exp;
	char *form = p11e_http_form_encode(pairs);
	long life, margin;

	if (!form) {
		snprintf(res->message, sizeof(res->message), "out of memory");
		return res->outcome = P11E_CA_MISCONFIGURED;
	}
	req.body = form;
	p11e_http_perform(ca->http, &req, &resp);
	OPENSSL_cleanse(form, strlen(form));
	free(form);
	if (resp.kind != P11E_HTTP_RESPONSE) {
		outcome = resp.kind == P11E_HTTP_LOCAL ? P11E_CA_MISCONFIGURED : P11E_CA_UNREACHABLE;
		snprintf(res->message, sizeof(res->message), "%s OAuth token: %s", ca->name,
			 resp.error);
		goto out;
	}
	if (resp.status == 400 || resp.status == 401 || resp.status == 403) {
		outcome = P11E_CA_MISCONFIGURED;
		snprintf(res->message, sizeof(res->message),
			 "%s OAuth token: HTTP %ld: the token endpoint refused oauth_client_id / "
			 "oauth_client_secret_file of [ca:%s]",
			 ca->name, resp.status, ca->name);
		goto out;
	}
	root = resp.status / 100 == 2 ? cJSON_ParseWithLength(resp.body, resp.len) : NULL;
	tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
	if (!cJSON_IsString(tok) || !tok->valuestring[0] || strlen(tok->valuestring) > 8192) {
		outcome = resp.status / 100 == 2 ? P11E_CA_MISCONFIGURED : P11E_CA_UNREACHABLE;
		snprintf(res->message, sizeof(res->message),
			 "%s OAuth token: HTTP %ld without an access_token; check oauth_token_url",
			 ca->name, resp.status);
		goto out;
	}
	drop_token(ca);
	ca->token = strdup(tok->valuestring);
	if (!ca->token) {
		outcome = P11E_CA_MISCONFIGURED;
		goto out;
	}
	p11e_http_add_secret(ca->http, ca->token);
	exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
	life = cJSON_IsNumber(exp) ? (long)exp->valuedouble : 30;
	if (life < 1)
		life = 1;
	/* Refresh a minute early, or a quarter of a short lifetime. */
	margin = life >= 240 ? 60 : life / 4;
	ca->token_valid_until = time(NULL) + life - margin;
	outcome = P11E_CA_OK;
out:
	if (root) {
		tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
		if (cJSON_IsString(tok))
			OPENSSL_cleanse(tok->valuestring, strlen(tok->valuestring));
	}
	cJSON_Delete(root);
	if (resp.body)
		OPENSSL_cleanse(resp.body, resp.len);
	p11e_http_response_clear(&resp);
	res->outcome = outcome;
	return outcome;
}

/* ---------- one API call ---------- */

struct body_ctx {
	struct p11e_ca *ca;
	cJSON *payload;
};

/* A fresh meta (ts, txn, authKey) for every attempt, retries included. */
static char *build_body(void *vctx, unsigned attempt)
{
	struct body_ctx *ctx = vctx;
	cJSON *meta =
		cn_meta_new(ctx->ca->account, ctx->ca->oauth ? NULL : ctx->ca->access_key, time(NULL));

	(void)attempt;
	if (!meta || cn_set_meta(ctx->payload, meta) != 0) {
		cJSON_Delete(meta);
		return NULL;
	}
	return cJSON_PrintUnformatted(ctx->payload);
}

/* The exchange under cn_call: POSTs payload (meta added) to the endpoint;
 * see cn_interpret. In OAuth mode a 401 gets one token refresh and one
 * more try. */
static cn_call_rc call(struct p11e_ca *ca, const char *endpoint, cJSON *payload, bool placement,
		       cJSON **root, struct cn_meta *meta, struct p11e_ca_result *res)
{
	char url[1200], auth_header[8300];
	const char *headers[] = { auth_header, NULL };
	struct body_ctx ctx = { ca, payload };
	char log_name[96];
	struct p11e_http_request req = {
		.url = url,
		.build_body = build_body,
		.build_ctx = &ctx,
		.no_retry_after_send = placement,
		.log_name = log_name,
	};
	struct p11e_http_response resp = { 0 };
	cn_call_rc rc;

	*root = NULL;
	snprintf(url, sizeof(url), "%s/%s", ca->api_url, endpoint);
	snprintf(log_name, sizeof(log_name), "CERTInext %s", endpoint);
	for (int pass = 0; pass < 2; pass++) {
		if (ca->oauth) {
			if (!ca->token || time(NULL) >= ca->token_valid_until) {
				if (fetch_token(ca, res) != P11E_CA_OK)
					return CN_CALL_FAILED;
			}
			snprintf(auth_header, sizeof(auth_header), "Authorization: Bearer %s",
				 ca->token);
			req.headers = headers;
		}
		p11e_http_perform(ca->http, &req, &resp);
		OPENSSL_cleanse(auth_header, sizeof(auth_header));
		if (ca->oauth && pass == 0 && resp.kind == P11E_HTTP_RESPONSE && resp.status == 401) {
			p11e_info("%s: %s answered 401; refreshing the OAuth token once", ca->name,
				  endpoint);
			drop_token(ca);
			p11e_http_response_clear(&resp);
			continue;
		}
		break;
	}
	cJSON_DeleteItemFromObjectCaseSensitive(payload, "meta");
	rc = cn_interpret(&resp, placement, ca->name, endpoint, root, meta, res);
	p11e_http_response_clear(&resp);
	return rc;
}

/* The CA's error, with advice, into res; returns the outcome to report. */
static p11e_ca_outcome ca_error(struct p11e_ca *ca, const struct cn_meta *meta, const char *context,
				p11e_ca_outcome outcome, struct p11e_ca_result *res)
{
	cn_describe_error(res, ca->name, meta->code, meta->message, context);
	res->outcome = outcome;
	return outcome;
}

/* What a refusal (meta.status "0") of a call means, by what the CA refused:
 * our credentials, an order it does not know, a validation that has not
 * opened yet, anything else. A field left 0 (P11E_CA_OK, never a
 * refusal's outcome) means `other`. */
struct cn_judge {
	p11e_ca_outcome credentials, not_found, not_ready, other;
};

static const struct cn_judge misconfigured = { .other = P11E_CA_MISCONFIGURED };
static const struct cn_judge unreachable = { .other = P11E_CA_UNREACHABLE };
/* our credentials are ours to fix; anything else is the CA's trouble */
static const struct cn_judge unreachable_unless_credentials = { .credentials = P11E_CA_MISCONFIGURED,
								.other = P11E_CA_UNREACHABLE };
/* RevokeOrder, RejectOrder: final unless it is our credentials */
static const struct cn_judge rejected_unless_credentials = { .credentials = P11E_CA_MISCONFIGURED,
							     .other = P11E_CA_REJECTED };
/* TrackOrder: the CA may not know the order */
static const struct cn_judge order_refusal = { .credentials = P11E_CA_MISCONFIGURED,
					       .not_found = P11E_CA_NOT_FOUND,
					       .other = P11E_CA_UNREACHABLE };
/* GetDcv: a validation that has not opened yet is a wait */
static const struct cn_judge dcv_refusal = { .credentials = P11E_CA_MISCONFIGURED,
					     .not_ready = P11E_CA_PENDING,
					     .other = P11E_CA_UNREACHABLE };

static p11e_ca_outcome judged(const struct cn_judge *judge, cn_err_kind kind)
{
	p11e_ca_outcome outcome;

	switch (kind) {
	case CN_ERR_CREDENTIALS:
		outcome = judge->credentials;
		break;
	case CN_ERR_NOT_FOUND:
		outcome = judge->not_found;
		break;
	case CN_ERR_DCV_NOT_READY:
		outcome = judge->not_ready;
		break;
	default:
		outcome = judge->other;
		break;
	}
	return outcome != P11E_CA_OK ? outcome : judge->other;
}

/* The CA's refusal, with advice, into res ("<endpoint> <subject>: ..."); returns
 * the outcome the judge gives it. */
static p11e_ca_outcome refused(struct p11e_ca *ca, const struct cn_meta *meta, const char *endpoint,
			       const char *subject, const struct cn_judge *judge,
			       struct p11e_ca_result *res)
{
	char context[512];

	snprintf(context, sizeof(context), "%s%s%s", endpoint, subject ? " " : "",
		 subject ? subject : "");
	return ca_error(ca, meta, context, judged(judge, cn_classify_error(meta->code, meta->message)),
			res);
}

/* One CA call: what is sent, and how its answer is read and judged. */
struct cn_call {
	const char *endpoint;
	const char *subject; /* the order or domain it is about, named in messages; or NULL */
	cJSON *payload;      /* taken (freed here); NULL: the builder ran out of memory */
	bool placement;      /* places an order (see cn_interpret) */
	int (*parse)(const cJSON *root, void *out); /* reads the answer into out, 0 ok; or NULL */
	void *out;
	const char *bad_answer;       /* what a parse failure says */
	cJSON **root;                 /* or: the answer, handed to the caller (who frees it) */
	const struct cn_judge *judge; /* a refusal's outcome; NULL: the caller judges it (meta) */
	struct cn_meta *meta;         /* the refusal, for the caller; or NULL */
};

/* Builds, signs, sends (see call), reads and judges one call. Returns
 * CN_CALL_OK with the answer read; CN_CALL_CA_ERROR for a refusal left to
 * the caller (no judge: c->meta says what it was); CN_CALL_FAILED when
 * res->outcome and res->message say what went wrong, refusals judged here
 * included. */
static cn_call_rc cn_call(struct p11e_ca *ca, const struct cn_call *c, struct p11e_ca_result *res)
{
	struct cn_meta scratch, *meta = c->meta ? c->meta : &scratch;
	cJSON *root = NULL;
	cn_call_rc rc;

	if (c->root)
		*c->root = NULL;
	if (!c->payload) {
		memset(meta, 0, sizeof(*meta));
		p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
		return CN_CALL_FAILED;
	}
	rc = call(ca, c->endpoint, c->payload, c->placement, &root, meta, res);
	cJSON_Delete(c->payload);
	if (rc == CN_CALL_OK && c->parse && c->parse(root, c->out) != 0) {
		p11e_ca_fail(res, P11E_CA_UNREACHABLE, "%s %s%s%s: %s", ca->name, c->endpoint,
			     c->subject ? " " : "", c->subject ? c->subject : "", c->bad_answer);
		rc = CN_CALL_FAILED;
	}
	if (rc == CN_CALL_CA_ERROR && c->judge) {
		refused(ca, meta, c->endpoint, c->subject, c->judge, res);
		rc = CN_CALL_FAILED;
	}
	if (rc == CN_CALL_OK && c->root)
		*c->root = root;
	else
		cJSON_Delete(root);
	return rc;
}

static void remember_email(struct p11e_ca *ca, const char *order, const char *email)
{
	struct email_memo *m;

	if (!order[0] || !email[0])
		return;
	for (size_t i = 0; i < sizeof(ca->memo) / sizeof(ca->memo[0]); i++)
		if (strcmp(ca->memo[i].order, order) == 0) {
			snprintf(ca->memo[i].email, sizeof(ca->memo[i].email), "%s", email);
			return;
		}
	m = &ca->memo[ca->memo_next++ % (sizeof(ca->memo) / sizeof(ca->memo[0]))];
	snprintf(m->order, sizeof(m->order), "%s", order);
	snprintf(m->email, sizeof(m->email), "%s", email);
}

static const char *email_for(const struct p11e_ca *ca, const char *order)
{
	for (size_t i = 0; i < sizeof(ca->memo) / sizeof(ca->memo[0]); i++)
		if (ca->memo[i].order[0] && strcmp(ca->memo[i].order, order) == 0)
			return ca->memo[i].email;
	return get(ca, "requestor_email") ? get(ca, "requestor_email") : "";
}

/* ---------- check, products ---------- */

static p11e_ca_outcome cn_check(struct p11e_ca *ca, struct p11e_ca_result *res)
{
	static const char *const order_keys[] = { "requestor_name", "requestor_email", "signer_place",
						  "signer_ip",      "default_product", NULL };
	const struct cn_call c = {
		.endpoint = "ValidateCredentials",
		.payload = cJSON_CreateObject(),
		.judge = &misconfigured,
	};

	memset(res, 0, sizeof(*res));
	if (cn_call(ca, &c, res) != CN_CALL_OK)
		return res->outcome;
	snprintf(res->message, sizeof(res->message),
		 "%s: CERTInext accepted the credentials of account %s (%s)", ca->name, ca->account,
		 ca->oauth ? "OAuth" : "access key");
	for (size_t i = 0; order_keys[i]; i++)
		if (!get(ca, order_keys[i]))
			p11e_warn("[ca:%s]: %s is not set; every [cert] using this CA must "
				  "set it (orders need it)",
				  ca->name,
				  strcmp(order_keys[i], "default_product") == 0
					  ? "default_product (or product)"
					  : order_keys[i]);
	return res->outcome = P11E_CA_OK;
}

struct product_list {
	struct p11e_product **list;
	size_t *n;
};

static int parse_products(const cJSON *root, void *out)
{
	struct product_list *p = out;

	return cn_parse_products(root, p->list, p->n);
}

static p11e_ca_outcome cn_products(struct p11e_ca *ca, struct p11e_product **list, size_t *n,
				   struct p11e_ca_result *res)
{
	struct product_list out = { list, n };
	const struct cn_call c = {
		.endpoint = "GetProductDetails",
		.payload = cn_build_products(get(ca, "group_number")),
		.parse = parse_products,
		.out = &out,
		.bad_answer = "productDetails is not the list the API sends",
		.judge = &unreachable_unless_credentials,
	};

	memset(res, 0, sizeof(*res));
	*list = NULL;
	*n = 0;
	if (cn_call(ca, &c, res) != CN_CALL_OK)
		return res->outcome;
	if (*n == 0 && !get(ca, "group_number"))
		snprintf(res->message, sizeof(res->message),
			 "%s: no products listed; some accounts list products only for a "
			 "group: set group_number",
			 ca->name);
	return res->outcome = P11E_CA_OK;
}

/* ---------- orders ---------- */

struct order_view {
	const struct p11e_ca *ca;
	const struct p11e_order *order;
};

/* [cert] override first, then [ca]. */
static const struct p11e_setting *order_lookup(void *vctx, const char *key)
{
	const struct order_view *v = vctx;
	const struct p11e_setting *st = v->order ? p11e_settings_find(v->order->overrides, key) : NULL;

	if (st && st->value && st->value[0])
		return st;
	return p11e_settings_find(&v->ca->settings, key);
}

struct order_names {
	char product[64];
	char domain[256];
	struct p11e_strlist dns;
};

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* The product and names an order is placed (and reconciled) with. */
static int resolve_names(const struct p11e_ca *ca, const struct p11e_order *order,
			 struct order_names *out)
{
	struct order_view view = { ca, order };
	const struct p11e_setting *st;

	memset(out, 0, sizeof(*out));
	st = order_lookup(&view, "product");
	if (!st || !st->value[0])
		st = order_lookup(&view, "default_product");
	if (st)
		snprintf(out->product, sizeof(out->product), "%s", st->value);
	st = order_lookup(&view, "domain_name");
	if (st && st->value[0])
		snprintf(out->domain, sizeof(out->domain), "%s", st->value);
	else if (order->common_name && *order->common_name)
		snprintf(out->domain, sizeof(out->domain), "%s", order->common_name);
	else if (order->dns && order->dns->n > 0)
		snprintf(out->domain, sizeof(out->domain), "%s", order->dns->v[0]);
	/* DNS names are case-insensitive; the CA compares lower-case */
	lower(out->domain);
	for (size_t i = 0; order->dns && i < order->dns->n; i++) {
		if (p11e_strlist_add(&out->dns, order->dns->v[i]) != 0)
			return -1;
		lower(out->dns.v[i]);
	}
	return 0;
}

static p11e_ca_outcome misconfigured_field(struct p11e_ca *ca, const struct p11e_order *order,
					   const char *key, const char *why,
					   const struct p11e_setting *bad, struct p11e_ca_result *res)
{
	char where[512];

	if (bad)
		snprintf(res->message, sizeof(res->message), "%.300s: %.600s",
			 setting_where(bad, where, sizeof(where)), why);
	else
		snprintf(res->message, sizeof(res->message),
			 "[cert:%s] with [ca:%s]: %s (set %s in either section)",
			 order->name ? order->name : "?", ca->name, why, key ? key : "it");
	return res->outcome = P11E_CA_MISCONFIGURED;
}

/* The GenerateOrderSSL payload of an order; NULL with res filled when the
 * configuration cannot make one. */
static cJSON *order_payload(struct p11e_ca *ca, const struct p11e_order *order,
			    const struct order_names *names, struct p11e_ca_result *res)
{
	struct order_view view = { ca, order };
	struct cn_order_input in = { 0 };
	const struct p11e_setting *bad = NULL;
	const char *why_key = NULL;
	char why[512];
	cJSON *payload, *od;

	in.lookup = order_lookup;
	in.lookup_ctx = &view;
	in.product = names->product;
	in.domain_name = names->domain;
	in.dns = (const char *const *)names->dns.v;
	in.n_dns = names->dns.n;
	in.csr_pem = order->csr_pem;
	in.idempotency_id = order->idempotency_id;
	if (!order->csr_pem || !*order->csr_pem) {
		p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "no CSR to send");
		return NULL;
	}
	od = cn_build_order(&in, &why_key, why, sizeof(why), &bad);
	if (!od) {
		misconfigured_field(ca, order, why_key, why, bad, res);
		return NULL;
	}
	payload = cJSON_CreateObject();
	if (!payload || !cJSON_AddItemToObject(payload, "orderDetails", od)) {
		cJSON_Delete(od);
		cJSON_Delete(payload);
		p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "out of memory");
		return NULL;
	}
	return payload;
}

/* A refused order: the outcome its kind of error means (cn_error_outcome),
 * but never pending nor "not found". */
static p11e_ca_outcome placement_refusal(cn_err_kind kind)
{
	p11e_ca_outcome outcome = cn_error_outcome(kind);

	return outcome == P11E_CA_NOT_FOUND || outcome == P11E_CA_PENDING ? P11E_CA_REJECTED : outcome;
}

/* GenerateOrderSSL, tried again while CERTInext's burst limit refuses it:
 * that refusal means no order was made ("Rate limit and retries"), so a
 * fresh meta cannot duplicate it. CN_CALL_OK with *root the answer, else
 * CN_CALL_FAILED with res filled. */
static cn_call_rc send_order(struct p11e_ca *ca, const cJSON *payload, cJSON **root,
			     struct p11e_ca_result *res)
{
	unsigned long started = (unsigned long)time(NULL);
	struct cn_meta meta;

	for (unsigned attempt = 1;; attempt++) {
		const struct cn_call c = {
			.endpoint = "GenerateOrderSSL",
			.payload = cJSON_Duplicate(payload, true),
			.placement = true,
			.root = root,
			.meta = &meta,
		};
		cn_call_rc rc = cn_call(ca, &c, res);
		cn_err_kind kind;
		unsigned delay;

		if (rc != CN_CALL_CA_ERROR)
			return rc;
		kind = cn_classify_error(meta.code, meta.message);
		if (kind == CN_ERR_RATE_LIMIT &&
		    p11e_http_should_retry(&ca->opts, false, attempt,
					   ((unsigned long)time(NULL) - started) * 1000,
					   P11E_HTTP_NOT_SENT, 0, 0, 0.5 + attempt % 2 * 0.25,
					   &delay)) {
			p11e_info("%s: CERTInext rate limit (\"%s\"); trying again in %.1fs", ca->name,
				  meta.message, delay / 1000.0);
			usleep((useconds_t)delay * 1000);
			continue;
		}
		ca_error(ca, &meta, "GenerateOrderSSL", placement_refusal(kind), res);
		if (kind == CN_ERR_RATE_LIMIT)
			res->retry_after = 60;
		return CN_CALL_FAILED;
	}
}

static p11e_ca_outcome cn_place(struct p11e_ca *ca, const struct p11e_order *order,
				struct p11e_ca_result *res)
{
	struct order_names names;
	cJSON *payload = NULL, *root = NULL;
	struct cn_placed placed;
	p11e_ca_outcome outcome;

	memset(res, 0, sizeof(*res));
	if (resolve_names(ca, order, &names) != 0) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "out of memory");
		goto out;
	}
	payload = order_payload(ca, order, &names, res);
	if (!payload || send_order(ca, payload, &root, res) != CN_CALL_OK) {
		outcome = res->outcome;
		goto out;
	}
	if (cn_parse_placed(root, &placed) != 0) {
		snprintf(res->request_id, sizeof(res->request_id), "%s", placed.request_number);
		snprintf(res->message, sizeof(res->message),
			 "%s GenerateOrderSSL: success without an orderNumber (requestNumber '%s'); "
			 "the order is looked up before another is placed",
			 ca->name, placed.request_number);
		outcome = res->outcome = P11E_CA_UNKNOWN;
		goto out;
	}
	snprintf(res->order_id, sizeof(res->order_id), "%s", placed.order_number);
	snprintf(res->request_id, sizeof(res->request_id), "%s", placed.request_number);
	snprintf(res->status_text, sizeof(res->status_text), "placed");
	snprintf(res->message, sizeof(res->message), "%s: order %s placed (request %s, product %s)",
		 ca->name, placed.order_number, placed.request_number, names.product);
	/* DV orders with cached validation issue within seconds: look soon. */
	res->retry_after = ca->poll_interval < 5 ? ca->poll_interval : 5;
	outcome = res->outcome = P11E_CA_PENDING;
out:
	p11e_strlist_free(&names.dns);
	cJSON_Delete(root);
	cJSON_Delete(payload);
	return outcome;
}

static int parse_track(const cJSON *root, void *out)
{
	return cn_parse_track(root, out);
}

/* TrackOrder of one order number; a refusal is the caller's to judge
 * (tracked), since reconcile only counts it. */
static cn_call_rc track(struct p11e_ca *ca, const char *order_number, struct cn_tracked *t,
			struct cn_meta *meta, struct p11e_ca_result *res)
{
	const struct cn_call c = {
		.endpoint = "TrackOrder",
		.payload = cn_build_track(order_number),
		.parse = parse_track,
		.out = t,
		.bad_answer = "the answer has no orderDetails",
		.meta = meta,
	};
	cn_call_rc rc;

	memset(t, 0, sizeof(*t));
	rc = cn_call(ca, &c, res);
	if (rc == CN_CALL_OK)
		remember_email(ca, order_number, t->requestor_email);
	return rc;
}

/* TrackOrder with a refusal judged (the CA may not know the order): true
 * with *t filled, else false with the outcome in res. */
static bool tracked(struct p11e_ca *ca, const char *order_number, struct cn_tracked *t,
		    struct p11e_ca_result *res)
{
	struct cn_meta meta;
	cn_call_rc rc = track(ca, order_number, t, &meta, res);

	if (rc == CN_CALL_CA_ERROR)
		refused(ca, &meta, "TrackOrder", order_number, &order_refusal, res);
	return rc == CN_CALL_OK;
}

/* Where a tracked order stands, as an outcome (no DCV work). */
static p11e_ca_outcome tracked_outcome(struct p11e_ca *ca, const char *order_number,
				       const struct cn_tracked *t, struct p11e_ca_result *res)
{
	cn_state state = cn_cert_state(t->status_id);

	snprintf(res->status_text, sizeof(res->status_text), "%s",
		 t->status_text[0] ? t->status_text : cn_state_name(state));
	switch (state) {
	case CN_STATE_ISSUED:
		snprintf(res->message, sizeof(res->message), "%s: order %s is issued (%s)", ca->name,
			 order_number, res->status_text);
		return res->outcome = P11E_CA_ISSUED;
	case CN_STATE_REVOKED:
	case CN_STATE_EXPIRED:
	case CN_STATE_FAILED:
		snprintf(res->message, sizeof(res->message),
			 "%s: order %s ended as \"%s\" (certificateStatusId %s); it will not be "
			 "issued — check the order in the CERTInext portal, then enrol again",
			 ca->name, order_number, res->status_text, t->status_id);
		return res->outcome = P11E_CA_REJECTED;
	case CN_STATE_UNKNOWN:
		p11e_warn("%s: order %s has certificateStatusId %s (\"%s\"), which p11enroll does "
			  "not know; treating it as pending",
			  ca->name, order_number, t->status_id, t->status_text);
		/* fall through */
	case CN_STATE_PENDING:
		break;
	}
	snprintf(res->message, sizeof(res->message), "%s: order %s is pending (%s)", ca->name,
		 order_number, res->status_text);
	res->retry_after = ca->poll_interval;
	return res->outcome = P11E_CA_PENDING;
}

/* ---------- DNS DCV through the hook ---------- */

static bool dns_method(const char *method)
{
	return !method[0] || strcmp(method, "1") == 0 || strcasestr(method, "DNS") != NULL;
}


#define DCV_TOKEN_MAX 512

struct published {
	char domain[256];
	char record[320];
	char value[DCV_TOKEN_MAX];
};

static void sleep_seconds(unsigned s)
{
	struct timespec ts = { .tv_sec = s, .tv_nsec = 0 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* dcv_method of an order ([cert:] override, then [ca:]): the CERTInext
 * code, "1" (dns, the default), "2" (http) or "3" (email); NULL when the
 * word is none of them. */
static const char *dcv_method_code(const char *word)
{
	if (!word || !*word || strcasecmp(word, "dns") == 0)
		return "1";
	if (strcasecmp(word, "http") == 0)
		return "2";
	if (strcasecmp(word, "email") == 0)
		return "3";
	return NULL;
}

static cJSON *dcv_payload(const struct p11e_ca *ca, const char *order_number, const char *domain,
			  const char *method, const char *dcv_email)
{
	return cn_build_dcv_method(order_number, email_for(ca, order_number), domain, method,
				   dcv_email);
}

static int parse_token(const cJSON *root, void *out)
{
	return cn_parse_dcv_token(root, out, DCV_TOKEN_MAX);
}

/* GetDcv of a DNS domain: its TXT token ("" when there is none). A refusal
 * is the caller's to judge (meta). */
static cn_call_rc dcv_token(struct p11e_ca *ca, const char *order_number, const char *domain,
			    char token[DCV_TOKEN_MAX], struct cn_meta *meta,
			    struct p11e_ca_result *res)
{
	const struct cn_call c = {
		.endpoint = "GetDcv",
		.subject = domain,
		.payload = dcv_payload(ca, order_number, domain, "1", NULL),
		.parse = parse_token,
		.out = token,
		.bad_answer = "the answer has no token",
		.meta = meta,
	};

	token[0] = '\0';
	return cn_call(ca, &c, res);
}

/* GetDcv or VerifyDcv of one domain by a method, the answer in *root. */
static cn_call_rc dcv_call(struct p11e_ca *ca, const char *endpoint, const char *order_number,
			   const char *domain, const char *method, const char *dcv_email, cJSON **root,
			   struct p11e_ca_result *res)
{
	const struct cn_call c = {
		.endpoint = endpoint,
		.payload = dcv_payload(ca, order_number, domain, method, dcv_email),
		.root = root,
	};

	return cn_call(ca, &c, res);
}

/* GetDcv and the hook's publish for every DNS domain still open. What is
 * published goes into pub (n_pub), a publish that failed half-way too.
 * True to go on; false: res says why. */
static bool publish_records(struct p11e_ca *ca, const char *order_number, const struct cn_tracked *t,
			    struct published *pub, size_t *n_pub, struct p11e_ca_result *res)
{
	char why[600];

	for (size_t i = 0; i < t->n_dcv; i++) {
		const struct cn_dcv_domain *d = &t->dcv[i];
		struct published *p = &pub[*n_pub];
		struct cn_meta meta;
		cn_call_rc rc;

		if (strcmp(d->status, "0") != 0 || !dns_method(d->method))
			continue;
		rc = dcv_token(ca, order_number, d->domain, p->value, &meta, res);
		if (rc == CN_CALL_CA_ERROR) {
			refused(ca, &meta, "GetDcv", d->domain, &dcv_refusal, res);
			res->retry_after = ca->dcv_poll;
		}
		if (rc != CN_CALL_OK)
			return false;
		snprintf(p->domain, sizeof(p->domain), "%s", d->domain);
		cn_dcv_record_name(ca->dcv_prefix, d->domain, p->record, sizeof(p->record));
		p11e_info("%s: DCV for %s: publishing TXT %s", ca->name, p->domain, p->record);
		/* a failed publish may have half-happened: remove it too */
		(*n_pub)++;
		if (p11e_ca_dcv_hook(ca->dcv_hook, "publish", p->domain, p->record, p->value, why,
				     sizeof(why)) != 0) {
			p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "%.200s: %.600s", ca->name, why);
			return false;
		}
	}
	return true;
}

/* VerifyDcv of every published record. True to go on; false: res says why. */
static bool verify_records(struct p11e_ca *ca, const char *order_number, const struct published *pub,
			   size_t n_pub, struct p11e_ca_result *res)
{
	for (size_t i = 0; i < n_pub; i++) {
		const struct cn_call c = {
			.endpoint = "VerifyDcv",
			.subject = pub[i].domain,
			.payload = dcv_payload(ca, order_number, pub[i].domain, "1", NULL),
			.judge = &unreachable,
		};

		if (cn_call(ca, &c, res) != CN_CALL_OK)
			return false;
	}
	return true;
}

/* How many published domains the CA has yet to validate; *rejected is set
 * to one it refused (the last), if any. */
static size_t dcv_open(const struct cn_tracked *t, const struct published *pub, size_t n_pub,
		       const char **rejected)
{
	size_t open = 0;

	for (size_t i = 0; i < n_pub; i++)
		for (size_t k = 0; k < t->n_dcv; k++) {
			if (strcmp(t->dcv[k].domain, pub[i].domain) != 0)
				continue;
			if (strcmp(t->dcv[k].status, "2") == 0)
				*rejected = pub[i].domain;
			else if (strcmp(t->dcv[k].status, "1") != 0)
				open++;
		}
	return open;
}

/* TrackOrder every dcv_poll_interval, within dcv_timeout, until the order
 * leaves pending or every published domain is validated or one rejected. */
static p11e_ca_outcome await_validation(struct p11e_ca *ca, const char *order_number,
					struct cn_tracked *t, const struct published *pub,
					size_t n_pub, struct p11e_ca_result *res)
{
	time_t deadline = time(NULL) + ca->dcv_timeout;
	const char *rejected = NULL;
	p11e_ca_outcome outcome;

	for (;;) {
		cn_state state;
		size_t open;

		if (time(NULL) >= deadline) {
			snprintf(res->message, sizeof(res->message),
				 "%s: order %s: DCV not finished within dcv_timeout; the next poll "
				 "tries again",
				 ca->name, order_number);
			res->retry_after = ca->poll_interval;
			return res->outcome = P11E_CA_PENDING;
		}
		sleep_seconds(ca->dcv_poll);
		cn_tracked_free(t);
		if (!tracked(ca, order_number, t, res))
			return res->outcome;
		state = cn_cert_state(t->status_id);
		if (state != CN_STATE_PENDING && state != CN_STATE_UNKNOWN)
			break;
		open = dcv_open(t, pub, n_pub, &rejected);
		if (rejected || open == 0 || strcmp(t->dcv_status, "1") == 0)
			break;
	}
	if (rejected) {
		snprintf(res->message, sizeof(res->message),
			 "%s: order %s: the CA rejected domain validation of %.255s (TXT "
			 "%s.%.255s); check the dcv_hook and the DNS zone",
			 ca->name, order_number, rejected, ca->dcv_prefix, rejected);
		return res->outcome = P11E_CA_REJECTED;
	}
	outcome = tracked_outcome(ca, order_number, t, res);
	if (outcome == P11E_CA_PENDING)
		res->retry_after = ca->dcv_poll; /* issuance follows validation shortly */
	return outcome;
}

/* The hook's remove of every published record; a failure is only warned of. */
static void remove_records(const struct p11e_ca *ca, const struct published *pub, size_t n_pub)
{
	char why[600];

	for (size_t i = 0; i < n_pub; i++) {
		p11e_info("%s: DCV for %s: removing TXT %s", ca->name, pub[i].domain, pub[i].record);
		if (p11e_ca_dcv_hook(ca->dcv_hook, "remove", pub[i].domain, pub[i].record,
				     pub[i].value, why, sizeof(why)) != 0)
			p11e_warn("%s: %s; remove the record by hand", ca->name, why);
	}
}

/* "Domain validation": GetDcv → publish → wait → VerifyDcv → TrackOrder until every
 * domain is validated or rejected → remove. Returns the outcome to report. */
static p11e_ca_outcome drive_dcv(struct p11e_ca *ca, const char *order_number, struct cn_tracked *t,
				 struct p11e_ca_result *res)
{
	/* t is tracked anew while waiting: the size allocated is kept */
	size_t n_alloc = t->n_dcv ? t->n_dcv : 1, n_pub = 0;
	struct published *pub = calloc(n_alloc, sizeof(*pub));
	p11e_ca_outcome outcome;

	if (!pub) {
		snprintf(res->message, sizeof(res->message), "out of memory");
		return res->outcome = P11E_CA_UNREACHABLE;
	}
	if (!publish_records(ca, order_number, t, pub, &n_pub, res)) {
		outcome = res->outcome;
	} else if (n_pub == 0) {
		outcome = tracked_outcome(ca, order_number, t, res);
	} else {
		sleep_seconds(ca->dcv_wait);
		outcome = verify_records(ca, order_number, pub, n_pub, res)
				  ? await_validation(ca, order_number, t, pub, n_pub, res)
				  : res->outcome;
	}
	remove_records(ca, pub, n_pub);
	OPENSSL_cleanse(pub, n_alloc * sizeof(*pub));
	free(pub);
	return outcome;
}

/* Without a hook: the TXT records to publish, in res->instructions (one
 * per line) and the message. GetDcv is asked only while a token is missing:
 * instructions complete from an earlier poll (`known`) are reused. */
#define CN_TOKEN_MISSING "(token not available yet)"
static p11e_ca_outcome dcv_instructions(struct p11e_ca *ca, const char *order_number,
					const struct cn_tracked *t, const char *known,
					struct p11e_ca_result *res)
{
	size_t used = 0, lines = 0;

	tracked_outcome(ca, order_number, t, res);
	if (known && *known && !strstr(known, CN_TOKEN_MISSING)) {
		snprintf(res->instructions, sizeof(res->instructions), "%s", known);
	} else {
		for (size_t i = 0; i < t->n_dcv && used < sizeof(res->instructions); i++) {
			const struct cn_dcv_domain *d = &t->dcv[i];
			struct p11e_ca_result scratch = { 0 };
			char token[DCV_TOKEN_MAX], record[320];

			if (strcmp(d->status, "0") != 0 || !dns_method(d->method))
				continue;
			dcv_token(ca, order_number, d->domain, token, NULL, &scratch);
			cn_dcv_record_name(ca->dcv_prefix, d->domain, record, sizeof(record));
			used += (size_t)snprintf(res->instructions + used,
						 sizeof(res->instructions) - used, "%sTXT %s \"%s\"",
						 lines++ ? "\n" : "", record,
						 token[0] ? token : CN_TOKEN_MISSING);
		}
	}
	used = (size_t)snprintf(res->message, sizeof(res->message),
				"%s: order %s waits for domain validation; set dcv_hook to automate "
				"it, or publish:",
				ca->name, order_number);
	/* the message keeps the one-line form: "publish: TXT a "x"; TXT b "y";" */
	for (const char *p = res->instructions; *p && used + 2 < sizeof(res->message);) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		used += (size_t)snprintf(res->message + used, sizeof(res->message) - used, " %.*s;",
					 len, p);
		p += len + (nl ? 1 : 0);
	}
	res->retry_after = ca->poll_interval;
	return res->outcome = P11E_CA_PENDING;
}

/* DCV by HTTP file (2) or e-mail (3), done by the operator: GetDcv gives
 * the file or the approver addresses; the instructions say what to publish
 * or where the CA's message goes (docs/protocol-certinext.md). VerifyDcv
 * asks the CA to check: for a file on every poll (it may be published by
 * now), for e-mail once, which sends the message. */
static const char *poll_method(struct p11e_ca *ca, const struct p11e_order *order)
{
	struct order_view view = { ca, order };
	const struct p11e_setting *st = order_lookup(&view, "dcv_method");
	const char *code = dcv_method_code(st ? st->value : NULL);

	return code ? code : "1";
}

static p11e_ca_outcome dcv_operator(struct p11e_ca *ca, const struct p11e_order *order,
				    const char *order_number, const struct cn_tracked *t,
				    const char *method, struct p11e_ca_result *res)
{
	struct order_view view = { ca, order };
	const struct p11e_setting *want = order_lookup(&view, "dcv_email");
	const char *known = order ? order->dcv_instructions : NULL;
	bool have = known && *known && !strstr(known, CN_TOKEN_MISSING);
	size_t used = 0, lines = 0;

	tracked_outcome(ca, order_number, t, res);
	if (have)
		snprintf(res->instructions, sizeof(res->instructions), "%s", known);
	for (size_t i = 0; i < t->n_dcv; i++) {
		const struct cn_dcv_domain *d = &t->dcv[i];
		struct p11e_ca_result scratch = { 0 };
		struct p11e_strlist emails = { 0 };
		char name[256] = "", content[512] = "", line[900] = "";
		const char *to = NULL;
		cJSON *root = NULL;

		if (strcmp(d->status, "0") != 0)
			continue;
		if (!have && dcv_call(ca, "GetDcv", order_number, d->domain, method, NULL, &root,
				      &scratch) == CN_CALL_OK) {
			if (strcmp(method, "2") == 0 &&
			    cn_parse_dcv_file(root, name, sizeof(name), content, sizeof(content)) == 0)
				snprintf(line, sizeof(line),
					 "FILE http://%s/.well-known/pki-validation/%s \"%s\"",
					 d->domain[0] == '*' ? d->domain + 2 : d->domain, name,
					 content);
			if (strcmp(method, "3") == 0 && cn_parse_dcv_emails(root, &emails) == 0) {
				for (size_t k = 0; k < emails.n && want && want->value; k++)
					if (strcasecmp(emails.v[k], want->value) == 0)
						to = emails.v[k];
				if (want && want->value && !to) {
					p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
						     "%s: order %s: dcv_email = %s is not one the CA offers "
						     "for %s (%s%s%s…)",
						     ca->name, order_number, want->value, d->domain,
						     emails.v[0], emails.n > 1 ? ", " : "",
						     emails.n > 1 ? emails.v[1] : "");
					cJSON_Delete(root);
					p11e_strlist_free(&emails);
					return res->outcome;
				}
				to = to ? to : emails.v[0];
				snprintf(line, sizeof(line),
					 "EMAIL %s: approve the message the CA sends there for %s", to,
					 d->domain);
			}
		}
		cJSON_Delete(root);
		/* e-mail: VerifyDcv sends the message, once (with the instructions) */
		if (strcmp(method, "2") == 0 || (to && !have))
			dcv_call(ca, "VerifyDcv", order_number, d->domain, method, to, NULL, &scratch);
		p11e_strlist_free(&emails);
		if (!have && used < sizeof(res->instructions))
			used += (size_t)snprintf(res->instructions + used,
						 sizeof(res->instructions) - used, "%s%s",
						 lines++ ? "\n" : "",
						 line[0] ? line : CN_TOKEN_MISSING);
	}
	snprintf(res->message, sizeof(res->message),
		 "%s: order %s waits for domain validation by %s; see the instructions", ca->name,
		 order_number, strcmp(method, "2") == 0 ? "HTTP file" : "e-mail");
	res->retry_after = ca->poll_interval;
	return res->outcome = P11E_CA_PENDING;
}

static p11e_ca_outcome cn_poll(struct p11e_ca *ca, const struct p11e_order *order,
			       const struct p11e_order_ref *ref, struct p11e_ca_result *res)
{
	struct cn_tracked t;
	p11e_ca_outcome outcome;

	memset(res, 0, sizeof(*res));
	if (!ref || !ref->order_id || !*ref->order_id) {
		snprintf(res->message, sizeof(res->message),
			 "%s: no CERTInext order number to track; reconcile the order", ca->name);
		return res->outcome = P11E_CA_NOT_FOUND;
	}
	snprintf(res->order_id, sizeof(res->order_id), "%s", ref->order_id);
	if (ref->request_id)
		snprintf(res->request_id, sizeof(res->request_id), "%s", ref->request_id);
	if (!tracked(ca, ref->order_id, &t, res))
		return res->outcome;

	outcome = tracked_outcome(ca, ref->order_id, &t, res);
	if (outcome == P11E_CA_PENDING && t.has_dcv && strcmp(t.dcv_status, "1") != 0) {
		bool open = false, rejected = false;

		for (size_t i = 0; i < t.n_dcv; i++) {
			open |= strcmp(t.dcv[i].status, "0") == 0;
			rejected |= strcmp(t.dcv[i].status, "2") == 0;
		}
		if (rejected || strcmp(t.dcv_status, "2") == 0) {
			snprintf(res->message, sizeof(res->message),
				 "%s: order %s: the CA rejected domain validation; check the DNS "
				 "records and enrol again",
				 ca->name, ref->order_id);
			outcome = res->outcome = P11E_CA_REJECTED;
		} else if (open && strcmp(poll_method(ca, order), "1") != 0) {
			outcome = dcv_operator(ca, order, ref->order_id, &t, poll_method(ca, order),
					       res);
		} else if (open && ca->dcv_hook) {
			outcome = drive_dcv(ca, ref->order_id, &t, res);
		} else if (open) {
			outcome = dcv_instructions(ca, ref->order_id, &t,
						   order ? order->dcv_instructions : NULL, res);
		}
	}
	cn_tracked_free(&t);
	return outcome;
}

static p11e_ca_outcome cn_fetch(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				struct p11e_ca_result *res)
{
	cJSON *root = NULL;
	struct cn_meta meta;
	char api_serial[130], why[256];
	p11e_ca_outcome outcome;

	memset(res, 0, sizeof(*res));
	if (!ref || !ref->order_id || !*ref->order_id) {
		snprintf(res->message, sizeof(res->message), "%s: no order number to fetch", ca->name);
		return res->outcome = P11E_CA_NOT_FOUND;
	}
	snprintf(res->order_id, sizeof(res->order_id), "%s", ref->order_id);
	if (ref->request_id)
		snprintf(res->request_id, sizeof(res->request_id), "%s", ref->request_id);
	const struct cn_call c = {
		.endpoint = "GetCertificate",
		.subject = ref->order_id,
		.payload = cn_build_get_certificate(ref->order_id, email_for(ca, ref->order_id)),
		.root = &root,
		.meta = &meta, /* a refusal is judged below */
	};

	switch (cn_call(ca, &c, res)) {
	case CN_CALL_OK:
		if (cn_parse_certificate(root, &res->chain_pem, res->serial, &res->not_after,
					 api_serial, sizeof(api_serial), why, sizeof(why)) != 0) {
			snprintf(res->message, sizeof(res->message),
				 "%s GetCertificate %s: %s; try again later", ca->name, ref->order_id,
				 why);
			outcome = res->outcome = P11E_CA_UNREACHABLE;
			break;
		}
		if (api_serial[0] && strcasecmp(api_serial, res->serial) != 0)
			p11e_warn("%s: order %s: the CA says serial %s, the certificate carries %s "
				  "(using the certificate's)",
				  ca->name, ref->order_id, api_serial, res->serial);
		snprintf(res->message, sizeof(res->message), "%s: order %s: certificate %s fetched",
			 ca->name, ref->order_id, res->serial);
		snprintf(res->status_text, sizeof(res->status_text), "issued");
		outcome = res->outcome = P11E_CA_ISSUED;
		break;
	case CN_CALL_CA_ERROR: {
		cn_err_kind kind = cn_classify_error(meta.code, meta.message);
		char context[192];

		snprintf(context, sizeof(context), "GetCertificate %s", ref->order_id);
		outcome = ca_error(ca, &meta, context,
				   kind == CN_ERR_NOT_FOUND     ? P11E_CA_NOT_FOUND
				   : kind == CN_ERR_CREDENTIALS ? P11E_CA_MISCONFIGURED
								: P11E_CA_PENDING,
				   res);
		res->retry_after = ca->poll_interval;
		if (outcome == P11E_CA_PENDING) {
			/* nothing to download: did the order end (expired, failed)? */
			struct p11e_ca_result probe = { 0 };
			struct cn_tracked t;
			struct cn_meta tmeta;

			if (track(ca, ref->order_id, &t, &tmeta, &probe) == CN_CALL_OK &&
			    tracked_outcome(ca, ref->order_id, &t, &probe) == P11E_CA_REJECTED) {
				snprintf(res->status_text, sizeof(res->status_text), "%s",
					 probe.status_text);
				snprintf(res->message, sizeof(res->message), "%s", probe.message);
				res->ca_code[0] = '\0';
				outcome = res->outcome = P11E_CA_REJECTED;
			}
			cn_tracked_free(&t);
			p11e_ca_result_clear(&probe);
		}
		break;
	}
	default:
		outcome = res->outcome;
		break;
	}
	cJSON_Delete(root);
	return outcome;
}

/* TrackOrder of the order that revoke or cancel (the verb) acts on: true
 * with *t filled, else false with the outcome in res. */
static bool track_ref(struct p11e_ca *ca, const struct p11e_order_ref *ref, const char *verb,
		      struct cn_tracked *t, struct p11e_ca_result *res)
{
	if (!ref || !ref->order_id || !*ref->order_id) {
		p11e_ca_fail(res, P11E_CA_NOT_FOUND, "%s: no order number to %s", ca->name, verb);
		return false;
	}
	snprintf(res->order_id, sizeof(res->order_id), "%s", ref->order_id);
	return tracked(ca, ref->order_id, t, res);
}

/* Whether a tracked order can be revoked; if not, res says why (an order
 * already revoked is P11E_CA_OK). */
static bool revocable(struct p11e_ca *ca, const char *order_number, const struct cn_tracked *t,
		      struct p11e_ca_result *res)
{
	cn_state state = cn_cert_state(t->status_id);

	if (state == CN_STATE_REVOKED || t->revoke_status_id[0]) {
		snprintf(res->message, sizeof(res->message), "%s: order %s is already revoked%s",
			 ca->name, order_number,
			 state == CN_STATE_REVOKED ? "" : " (revocation in progress)");
		snprintf(res->status_text, sizeof(res->status_text), "revoked");
		res->outcome = P11E_CA_OK;
		return false;
	}
	if (state != CN_STATE_ISSUED) {
		snprintf(res->message, sizeof(res->message),
			 "%s: order %s is \"%s\" (certificateStatusId %s); only an issued "
			 "certificate can be revoked",
			 ca->name, order_number, t->status_text, t->status_id);
		res->outcome = P11E_CA_REJECTED;
		return false;
	}
	return true;
}

/* RevokeOrder; the CA saying it is already revoked is success. */
static p11e_ca_outcome send_revoke(struct p11e_ca *ca, const char *order_number,
				   p11e_revoke_reason reason, const char *reason_id,
				   struct p11e_ca_result *res)
{
	char remarks[128];
	struct cn_meta meta;
	struct cn_call c = { .endpoint = "RevokeOrder", .meta = &meta };
	cn_call_rc rc;

	snprintf(remarks, sizeof(remarks), "revoked by p11enroll (%s)",
		 p11e_revoke_reason_name(reason));
	c.payload = cn_build_revoke(order_number, email_for(ca, order_number), reason_id, remarks);
	rc = cn_call(ca, &c, res);
	if (rc == CN_CALL_CA_ERROR && strcasestr(meta.message, "already revoked")) {
		snprintf(res->message, sizeof(res->message), "%s: order %s is already revoked",
			 ca->name, order_number);
		return res->outcome = P11E_CA_OK;
	}
	if (rc == CN_CALL_CA_ERROR)
		return refused(ca, &meta, "RevokeOrder", order_number, &rejected_unless_credentials,
			       res);
	if (rc == CN_CALL_FAILED)
		return res->outcome;
	snprintf(res->message, sizeof(res->message), "%s: order %s revoked (revokeReasonId %s, %s)",
		 ca->name, order_number, reason_id, p11e_revoke_reason_name(reason));
	snprintf(res->status_text, sizeof(res->status_text), "revoked");
	return res->outcome = P11E_CA_OK;
}

static p11e_ca_outcome cn_revoke(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				 p11e_revoke_reason reason, struct p11e_ca_result *res)
{
	const char *reason_id = cn_revoke_reason_id(reason);
	struct cn_tracked t = { 0 };
	bool go;

	memset(res, 0, sizeof(*res));
	if (!reason_id) {
		snprintf(res->message, sizeof(res->message),
			 "%s: CERTInext cannot revoke with reason %s; it accepts keyCompromise, "
			 "affiliationChanged, superseded and cessationOfOperation — choose one "
			 "with --reason",
			 ca->name, p11e_revoke_reason_name(reason));
		return res->outcome = P11E_CA_MISCONFIGURED;
	}
	go = track_ref(ca, ref, "revoke", &t, res) && revocable(ca, ref->order_id, &t, res);
	cn_tracked_free(&t);
	return go ? send_revoke(ca, ref->order_id, reason, reason_id, res) : res->outcome;
}

/* Whether a tracked order can be cancelled; if not, res says why (an order
 * that has ended already is P11E_CA_OK). */
static bool cancellable(struct p11e_ca *ca, const char *order_number, const struct cn_tracked *t,
			struct p11e_ca_result *res)
{
	cn_state state = cn_cert_state(t->status_id);

	if (state == CN_STATE_FAILED) {
		snprintf(res->message, sizeof(res->message), "%s: order %s has already ended (\"%s\")",
			 ca->name, order_number, t->status_text);
		snprintf(res->status_text, sizeof(res->status_text), "%s", t->status_text);
		res->outcome = P11E_CA_OK;
		return false;
	}
	if (state != CN_STATE_PENDING && state != CN_STATE_UNKNOWN) {
		snprintf(res->message, sizeof(res->message),
			 "%s: order %s is \"%s\" (certificateStatusId %s); only an order not "
			 "issued yet can be cancelled (revoke an issued one)",
			 ca->name, order_number, t->status_text, t->status_id);
		res->outcome = P11E_CA_REJECTED;
		return false;
	}
	return true;
}

/* RejectOrder for a pending order: it ends in certificateStatusId 13. */
static p11e_ca_outcome cn_cancel(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				 struct p11e_ca_result *res)
{
	struct cn_tracked t = { 0 };
	struct cn_call c = { .endpoint = "RejectOrder", .judge = &rejected_unless_credentials };
	bool go;

	memset(res, 0, sizeof(*res));
	go = track_ref(ca, ref, "cancel", &t, res) && cancellable(ca, ref->order_id, &t, res);
	cn_tracked_free(&t);
	if (!go)
		return res->outcome;
	c.subject = ref->order_id;
	c.payload = cn_build_reject(ref->order_id, "cancelled by p11enroll");
	if (cn_call(ca, &c, res) != CN_CALL_OK)
		return res->outcome;
	snprintf(res->message, sizeof(res->message), "%s: order %s cancelled (RejectOrder)", ca->name,
		 ref->order_id);
	snprintf(res->status_text, sizeof(res->status_text), "cancelled");
	return res->outcome = P11E_CA_OK;
}

static int parse_report(const cJSON *root, void *out)
{
	return cn_parse_report(root, out);
}

/* One GetOrderReport page. A refusal is the caller's to judge, except "no
 * records", which is an empty listing ("Listing orders"). */
static cn_call_rc report_page(struct p11e_ca *ca, unsigned page, time_t since, struct cn_report *rep,
			      struct cn_meta *meta, struct p11e_ca_result *res)
{
	const struct cn_call c = {
		.endpoint = "GetOrderReport",
		.payload = cn_build_report(page, ca->page_size, since),
		.parse = parse_report,
		.out = rep,
		.bad_answer = "the answer is not the listing the API sends",
		.meta = meta,
	};
	cn_call_rc rc;

	memset(rep, 0, sizeof(*rep));
	rc = cn_call(ca, &c, res);
	if (rc == CN_CALL_CA_ERROR &&
	    (strcasestr(meta->message, "no record") || strcasestr(meta->message, "no data") ||
	     strcasestr(meta->message, "not found")))
		rc = CN_CALL_OK;
	return rc;
}

static p11e_ca_outcome cn_list_orders(struct p11e_ca *ca, time_t since, unsigned page,
				      struct p11e_order_page *out, struct p11e_ca_result *res)
{
	struct cn_report rep;
	struct cn_meta meta;
	cn_call_rc rc;

	memset(res, 0, sizeof(*res));
	memset(out, 0, sizeof(*out));
	out->page = page ? page : 1;
	rc = report_page(ca, out->page, since, &rep, &meta, res);
	if (rc == CN_CALL_FAILED)
		return res->outcome;
	if (rc == CN_CALL_CA_ERROR)
		return refused(ca, &meta, "GetOrderReport", NULL, &unreachable_unless_credentials,
			       res);
	for (size_t i = 0; i < rep.n; i++) {
		struct p11e_order_row *r = &rep.rows[i];

		switch (cn_cert_state(rep.status_ids[i])) {
		case CN_STATE_PENDING:
			r->state = P11E_ROW_PENDING;
			break;
		case CN_STATE_ISSUED:
			r->state = P11E_ROW_ISSUED;
			break;
		case CN_STATE_FAILED:
			r->state = P11E_ROW_FAILED;
			break;
		case CN_STATE_REVOKED:
			r->state = P11E_ROW_REVOKED;
			break;
		case CN_STATE_EXPIRED:
			r->state = P11E_ROW_EXPIRED;
			break;
		default:
			r->state = P11E_ROW_UNKNOWN;
			break;
		}
		/* Our tag is "p11enroll:<idempotency id>" (docs/protocol-certinext.md). */
		for (size_t k = 0; k < rep.tags[i].n; k++)
			if (strncmp(rep.tags[i].v[k], "p11enroll:", 10) == 0)
				snprintf(r->tag, sizeof(r->tag), "%.120s", rep.tags[i].v[k] + 10);
	}
	out->rows = rep.rows;
	out->n = rep.n;
	out->pages = rep.pages;
	rep.rows = NULL;
	cn_report_free(&rep);
	return res->outcome = P11E_CA_OK;
}

/* ---------- reconciliation ---------- */

struct candidate {
	char order[128];
	char request[128];
};

/* What reconcile knows as it goes. */
struct reconcile {
	struct order_names names;
	char tag[192];           /* "p11enroll:<our id>" */
	time_t since;            /* the listing's start */
	struct candidate *cands; /* orders for our names, oldest first */
	size_t n_cands, unverifiable;
	char found[128], found_request[128];
};

enum row_match { ROW_NOT_OURS, ROW_OURS, ROW_MAYBE };

/* A listed order is ours when it carries our tag; it may be ours when it
 * is for our names and carries no other p11enroll tag (the order being
 * renewed excluded). */
static enum row_match match_row(const struct p11e_order *order, const struct reconcile *rec,
				const struct cn_report *rep, size_t i)
{
	const struct p11e_order_row *r = &rep->rows[i];
	bool theirs = false;

	if (!r->order_id[0] || strcasecmp(r->domain, rec->names.domain) != 0 ||
	    strcmp(r->product, rec->names.product) != 0)
		return ROW_NOT_OURS;
	if (order->previous.order_id && strcmp(r->order_id, order->previous.order_id) == 0)
		return ROW_NOT_OURS;
	for (size_t k = 0; k < rep->tags[i].n; k++) {
		if (order->idempotency_id && strcmp(rep->tags[i].v[k], rec->tag) == 0)
			return ROW_OURS;
		if (strncmp(rep->tags[i].v[k], "p11enroll:", 10) == 0)
			theirs = true;
	}
	return theirs ? ROW_NOT_OURS : ROW_MAYBE;
}

/* One listing page: our tagged order into found, the others that may be
 * ours into the candidates. False when out of memory. */
static bool scan_page(const struct p11e_ca *ca, const struct p11e_order *order, struct reconcile *rec,
		      const struct cn_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct p11e_order_row *r = &rep->rows[i];
		enum row_match match = match_row(order, rec, rep, i);
		struct candidate *c;

		if (match == ROW_OURS) {
			snprintf(rec->found, sizeof(rec->found), "%s", r->order_id);
			snprintf(rec->found_request, sizeof(rec->found_request), "%s", r->request_id);
			p11e_info("%s: reconcile: order %s carries our tag %s", ca->name, r->order_id,
				  rec->tag);
			return true;
		}
		if (match == ROW_NOT_OURS)
			continue;
		c = realloc(rec->cands, (rec->n_cands + 1) * sizeof(*c));
		if (!c)
			return false;
		rec->cands = c;
		c = &rec->cands[rec->n_cands++];
		snprintf(c->order, sizeof(c->order), "%s", r->order_id);
		snprintf(c->request, sizeof(c->request), "%s", r->request_id);
	}
	return true;
}

/* GetOrderReport page by page until our tagged order shows or the listing
 * ends. True to go on; false: res says why. */
static bool list_candidates(struct p11e_ca *ca, const struct p11e_order *order, struct reconcile *rec,
			    struct p11e_ca_result *res)
{
	for (unsigned page = 1; page <= MAX_REPORT_PAGES && !rec->found[0]; page++) {
		struct cn_report rep;
		struct cn_meta meta;
		cn_call_rc rc = report_page(ca, page, rec->since, &rep, &meta, res);
		bool ok, last;

		if (rc == CN_CALL_CA_ERROR)
			refused(ca, &meta, "GetOrderReport", "(reconcile)", &unreachable, res);
		if (rc != CN_CALL_OK)
			return false;
		ok = scan_page(ca, order, rec, &rep);
		last = rep.n == 0 || page >= rep.pages;
		cn_report_free(&rep);
		if (!ok) {
			p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
			return false;
		}
		if (last)
			break;
	}
	return true;
}

/* TrackOrder of the candidates, newest first (the report lists oldest
 * first), until one has our CSR. One candidate whose CSR the CA does not
 * show is taken to be ours. True to go on; false: res says why. */
static bool compare_csrs(struct p11e_ca *ca, const struct p11e_order *order, struct reconcile *rec,
			 struct p11e_ca_result *res)
{
	for (size_t j = 0; !rec->found[0] && j < rec->n_cands && j < MAX_CSR_CHECKS; j++) {
		const struct candidate *c = &rec->cands[rec->n_cands - 1 - j];
		struct cn_tracked t;
		struct cn_meta meta;
		cn_call_rc rc = track(ca, c->order, &t, &meta, res);

		if (rc == CN_CALL_FAILED)
			return false;
		if (rc == CN_CALL_CA_ERROR || !t.csr)
			rec->unverifiable++;
		else if (cn_same_csr(t.csr, order->csr_pem))
			snprintf(rec->found, sizeof(rec->found), "%s", c->order);
		cn_tracked_free(&t);
	}
	if (!rec->found[0] && rec->unverifiable == 1 && rec->n_cands == 1) {
		snprintf(rec->found, sizeof(rec->found), "%s", rec->cands[0].order);
		p11e_warn("%s: reconcile: order %s matches domain and product but its CSR cannot "
			  "be compared; taking it as ours",
			  ca->name, rec->found);
	}
	return true;
}

/* No order is ours: placing again is safe, unless some could not be told apart. */
static p11e_ca_outcome nothing_found(const struct p11e_ca *ca, const struct reconcile *rec,
				     struct p11e_ca_result *res)
{
	memset(res, 0, sizeof(*res));
	if (rec->unverifiable > 0 || rec->n_cands > MAX_CSR_CHECKS) {
		snprintf(res->message, sizeof(res->message),
			 "%s: reconcile: %zu orders for %s (product %s) could be ours and "
			 "cannot be told apart; check `p11enroll orders %s` and the portal "
			 "before placing another",
			 ca->name, rec->n_cands, rec->names.domain, rec->names.product, ca->name);
		return res->outcome = P11E_CA_UNKNOWN;
	}
	snprintf(res->message, sizeof(res->message),
		 "%s: reconcile: no order for %s (product %s) with our CSR since %s; "
		 "placing again is safe",
		 ca->name, rec->names.domain, rec->names.product,
		 rec->since ? "the day before" : "ever");
	return res->outcome = P11E_CA_NOT_FOUND;
}

/* Where the order found stands (TrackOrder), said as a reconciliation. */
static p11e_ca_outcome report_found(struct p11e_ca *ca, const struct reconcile *rec,
				    struct p11e_ca_result *res)
{
	char note[sizeof(res->message)];
	struct cn_tracked t;
	p11e_ca_outcome outcome;

	if (!tracked(ca, rec->found, &t, res))
		return res->outcome;
	outcome = tracked_outcome(ca, rec->found, &t, res);
	cn_tracked_free(&t);
	snprintf(res->order_id, sizeof(res->order_id), "%s", rec->found);
	snprintf(res->request_id, sizeof(res->request_id), "%s", rec->found_request);
	for (size_t i = 0; i < rec->n_cands; i++)
		if (strcmp(rec->cands[i].order, rec->found) == 0)
			snprintf(res->request_id, sizeof(res->request_id), "%s",
				 rec->cands[i].request);
	snprintf(note, sizeof(note), "%s", res->message);
	snprintf(res->message, sizeof(res->message),
		 "reconciled: the earlier placement created order %.127s; %.800s", rec->found, note);
	return outcome;
}

/* The rule (docs/providers.md): list the orders placed since the day before
 * placed_after; keep those with our domainName and productCode (drafts and
 * the order being renewed excluded). A row tagged "p11enroll:<our id>" is
 * ours; a row tagged with another p11enroll id is not. Otherwise TrackOrder
 * each candidate, newest first, and take the one whose CSR is ours — CERTInext
 * refuses a CSR twice (EMS-1099), so the CSR names one order. */
static p11e_ca_outcome cn_reconcile(struct p11e_ca *ca, const struct p11e_order *order,
				    struct p11e_ca_result *res)
{
	struct reconcile rec = {
		.since = order->placed_after > 86400 ? order->placed_after - 86400 : 0,
	};
	p11e_ca_outcome outcome;

	memset(res, 0, sizeof(*res));
	if (resolve_names(ca, order, &rec.names) != 0 || !rec.names.product[0] ||
	    !rec.names.domain[0]) {
		snprintf(res->message, sizeof(res->message),
			 "%s: cannot reconcile [cert:%s]: no product or domain name", ca->name,
			 order->name ? order->name : "?");
		outcome = res->outcome = P11E_CA_MISCONFIGURED;
		goto out;
	}
	cn_idempotency_tag(order->idempotency_id ? order->idempotency_id : "", rec.tag,
			   sizeof(rec.tag));
	if (!list_candidates(ca, order, &rec, res) ||
	    (!rec.found[0] && !compare_csrs(ca, order, &rec, res))) {
		outcome = res->outcome;
		goto out;
	}
	outcome = rec.found[0] ? report_found(ca, &rec, res) : nothing_found(ca, &rec, res);
out:
	p11e_strlist_free(&rec.names.dns);
	free(rec.cands);
	return outcome;
}

/* ---------- validate ---------- */

/* What cn_place would find missing or malformed in an order of `cert_name`,
 * found without a CSR (the domain comes from the subject or dns, which the
 * configuration always has). */
static p11e_status validate_order(struct p11e_ca *ca, const char *cert_name, const char *cert_where,
				  const struct p11e_settings *overrides, struct p11e_err *err)
{
	struct p11e_order order = { .name = cert_name, .overrides = overrides };
	struct order_view view = { ca, &order };
	struct cn_order_input in = { 0 };
	struct order_names names;
	const struct p11e_setting *bad = NULL;
	const char *why_key = NULL;
	char why[512], where[512];
	p11e_status rc = P11E_OK;
	cJSON *od;

	if (resolve_names(ca, &order, &names) != 0) {
		p11e_strlist_free(&names.dns);
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	in.lookup = order_lookup;
	in.lookup_ctx = &view;
	in.product = names.product;
	in.domain_name = "validate.invalid";
	in.csr_pem = "";
	od = cn_build_order(&in, &why_key, why, sizeof(why), &bad);
	if (!od && bad)
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: [cert:%s] %s",
				  setting_where(bad, where, sizeof(where)), cert_name, why);
	else if (!od)
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "%s: [cert:%s] with [ca:%s]: %s (set %s in either "
				  "section)",
				  cert_where ? cert_where : "?", cert_name, ca->name, why,
				  why_key ? why_key : "it");
	cJSON_Delete(od);
	p11e_strlist_free(&names.dns);
	bad = order_lookup(&view, "dcv_method");
	if (rc == P11E_OK && bad && bad->value && !dcv_method_code(bad->value))
		rc = p11e_err_set(err, P11E_EUSAGE, "%s: dcv_method = %s: write dns, http or email",
				  setting_where(bad, where, sizeof(where)), bad->value);
	return rc;
}

static p11e_status cn_validate(const char *ca_name, const struct p11e_settings *s,
			       const char *cert_name, const char *cert_where,
			       const struct p11e_settings *overrides, struct p11e_err *err)
{
	struct p11e_ca *ca = calloc(1, sizeof(*ca));
	const char *key_spec, *secret_spec;
	p11e_status rc;

	if (!ca || !(ca->name = strdup(ca_name)) || p11e_settings_copy(&ca->settings, s) != P11E_OK) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	rc = parse_settings(ca, &key_spec, &secret_spec, err);
	if (rc == P11E_OK && cert_name)
		rc = validate_order(ca, cert_name, cert_where, overrides, err);
out:
	cn_close(ca);
	return rc;
}

static const struct p11e_ca_note cn_help[] = {
	{ "revoke", "CERTInext refuses the reasons unspecified and caCompromise." },
	{ "cancel", "CERTInext: RejectOrder." },
	{ NULL, NULL },
};

const struct p11e_ca_ops p11e_certinext_ops = {
	.type = "certinext",
	.ca_keys = ca_keys,
	.cert_keys = cert_keys,
	.title = "CERTInext",
	.help = cn_help,
	.account_key = "account_number",
	/* CERTInext refuses the 16th GenerateOrderSSL within 10 s (see
	 * p11enroll.conf(5)): 15 fit. */
	.order_rate_n = 15,
	.order_rate_window = 10,
	/* It lists products per group. */
	.no_products_hint = "is group_number set?",
	.open = cn_open,
	.close = cn_close,
	.validate = cn_validate,
	.check = cn_check,
	.products = cn_products,
	.place = cn_place,
	.reconcile = cn_reconcile,
	.poll = cn_poll,
	.fetch = cn_fetch,
	.revoke = cn_revoke,
	.list_orders = cn_list_orders,
	.cancel = cn_cancel,
};
