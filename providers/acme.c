/* SPDX-License-Identifier: Apache-2.0 */
/* The ACME (RFC 8555) provider: directory, nonces, the account (with
 * External Account Binding), orders, http-01/dns-01 challenges, finalize,
 * download, revokeCert and ARI's `replaces`. JSON/JWS details live in
 * acme_wire.c. Its account key is the one key a provider opens itself
 * (hsm/): every JWS is signed inside the token. Design notes and the
 * mapping onto the agent's place/poll/fetch: docs/providers-acme.md. */
#include "provider.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "acme_wire.h"
#include "http.h"
#include "log.h"
#include "keystore.h"
#include "secret.h"
#include "util.h"

#define BAD_NONCE_RETRIES 10
#define AUTHZ_TIMEOUT 300  /* seconds one authorisation may stay pending after our answer */
#define MAX_ORDER_PAGES 20 /* reconcile reads at most this many pages of the orders list */
#define MAX_ORDERS_CHECKED 200
#define DEFAULT_ACCOUNT_LABEL "acme-account"

static const char *const ca_keys[] = {
	"directory_url",    "contact", "terms_agreed",         "account_key",
	"account_key_type", "eab_kid", "eab_hmac_key_file",    "challenge",
	"dcv_hook",         "webroot", P11E_HTTP_SETTING_KEYS, NULL,
};

static const char *const cert_keys[] = { "challenge", "webroot", NULL };

/* The account key, in a key store (hsm/keystore.h): a PKCS#11 token or an
 * OpenSSL provider. */
struct account_key {
	struct p11e_keystore *ks;
	bool have;
	EVP_PKEY *pub; /* borrowed from the store */
	const struct p11e_key_spec *spec;
	char thumbprint[64];
};

struct p11e_ca {
	char *name;
	struct p11e_settings settings;
	const char *directory_url;
	struct p11e_strlist contact;
	bool terms_agreed;
	const char *account_key_uri;
	const struct p11e_key_spec *key_spec;
	bool key_type_set;
	const char *eab_kid;
	unsigned char *eab_key;
	size_t eab_key_len;
	const char *challenge;
	const char *dcv_hook;
	const char *webroot;
	char *state_dir;
	struct p11e_http_opts opts;
	struct p11e_http *http;
	cJSON *dir;
	char nonce[256];
	char *account_url;
	struct account_key ak;
	bool ak_open;
};

/* ---------- small helpers ---------- */

/* The agent's P11ENROLL_FAULT hook, for the provider's own steps (tests). */
static void fault_point(const char *step)
{
	const char *want = getenv("P11ENROLL_FAULT");

	if (want && strcmp(want, step) == 0) {
		fprintf(stderr, "p11enroll: P11ENROLL_FAULT=%s: killing myself\n", step);
		kill(getpid(), SIGKILL);
	}
}

static const char *where(const struct p11e_ca *ca, const char *key, char *buf, size_t size)
{
	const struct p11e_setting *st = p11e_settings_find(&ca->settings, key);

	snprintf(buf, size, "%s:%d", st && st->file ? st->file : "?", st ? st->line : 0);
	return buf;
}

static const char *get(const struct p11e_ca *ca, const char *key)
{
	const char *v = p11e_settings_get(&ca->settings, key, NULL);

	return v && *v ? v : NULL;
}

static const char *jstr(const cJSON *obj, const char *key)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, key));
}

static void sleep_seconds(unsigned s)
{
	struct timespec ts = { .tv_sec = s, .tv_nsec = 0 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---------- configuration ---------- */

static void account_key_close(struct account_key *ak)
{
	p11e_keystore_close(ak->ks);
	memset(ak, 0, sizeof(*ak));
}

static void acme_close(struct p11e_ca *ca)
{
	if (!ca)
		return;
	account_key_close(&ca->ak);
	p11e_http_free(ca->http);
	p11e_http_opts_free(&ca->opts);
	if (ca->eab_key)
		OPENSSL_cleanse(ca->eab_key, ca->eab_key_len);
	free(ca->eab_key);
	cJSON_Delete(ca->dir);
	free(ca->account_url);
	free(ca->state_dir);
	p11e_strlist_free(&ca->contact);
	p11e_settings_free_copy(&ca->settings);
	free(ca->name);
	free(ca);
}

static p11e_status read_eab(struct p11e_ca *ca, struct p11e_err *err)
{
	const char *file = get(ca, "eab_hmac_key_file");
	char *secret = NULL, w[512];
	p11e_status rc;

	if (!ca->eab_kid && !file)
		return P11E_OK;
	if (!ca->eab_kid || !file)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: [ca:%s] External Account Binding needs both eab_kid and "
				    "eab_hmac_key_file",
				    where(ca, ca->eab_kid ? "eab_kid" : "eab_hmac_key_file", w,
					  sizeof(w)),
				    ca->name);
	rc = p11e_secret_read(file, "eab_hmac_key_file", &secret, err);
	if (rc != P11E_OK)
		return rc;
	if (acme_b64url_decode(secret, &ca->eab_key, &ca->eab_key_len) != 0 || ca->eab_key_len < 16) {
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "%s: eab_hmac_key_file holds no base64url HMAC key of at least "
				  "16 bytes (write the key exactly as the CA gave it)",
				  where(ca, "eab_hmac_key_file", w, sizeof(w)));
	}
	p11e_secret_free(secret);
	return rc;
}

/* The account: directory, account key and its type, contacts, terms, EAB. */
static p11e_status read_account_settings(struct p11e_ca *ca, struct p11e_err *err)
{
	const char *v;
	char w[512];
	int b;
	p11e_status rc;

	ca->directory_url = get(ca, "directory_url");
	if (!ca->directory_url)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s]: directory_url is required for type = acme (the CA's ACME "
				    "directory, https://…/directory)",
				    ca->name);
	if ((rc = p11e_http_check_url(ca->directory_url, "directory_url", err)) != P11E_OK) {
		p11e_err_prefix(err, "%s", where(ca, "directory_url", w, sizeof(w)));
		return rc;
	}
	ca->account_key_uri = get(ca, "account_key");
	if (!ca->account_key_uri)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s]: account_key is required for type = acme (pkcs11:… or "
				    "provider:tpm2:PATH; the ACME account key is made there when "
				    "absent)",
				    ca->name);
	v = get(ca, "account_key_type");
	ca->key_type_set = v != NULL;
	if ((rc = p11e_policy_parse(v ? v : "ec-p256", &ca->key_spec, err)) != P11E_OK) {
		p11e_err_prefix(err, "%s: account_key_type",
				where(ca, "account_key_type", w, sizeof(w)));
		return rc;
	}
	if ((v = get(ca, "contact")) && p11e_strlist_split(&ca->contact, v, ',') != 0)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t i = 0; i < ca->contact.n; i++)
		if (strncmp(ca->contact.v[i], "mailto:", 7) != 0)
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s: contact '%s' is not a mailto: URL (write "
					    "mailto:pki@example.com)",
					    where(ca, "contact", w, sizeof(w)), ca->contact.v[i]);
	v = get(ca, "terms_agreed");
	b = v ? p11e_parse_bool(v) : 0;
	if (b < 0)
		return p11e_err_set(err, P11E_EUSAGE, "%s: terms_agreed = '%s': write yes or no",
				    where(ca, "terms_agreed", w, sizeof(w)), v);
	ca->terms_agreed = b == 1;
	ca->eab_kid = get(ca, "eab_kid");
	return read_eab(ca, err);
}

/* How names are proven: the challenge type and what it needs (dcv_hook for
 * dns-01, webroot for http-01). */
static p11e_status read_challenge_settings(struct p11e_ca *ca, struct p11e_err *err)
{
	char w[512];

	ca->challenge = get(ca, "challenge") ? get(ca, "challenge") : "http-01";
	if (strcmp(ca->challenge, "http-01") != 0 && strcmp(ca->challenge, "dns-01") != 0)
		return p11e_err_set(err, P11E_EUSAGE, "%s: challenge = '%s': use dns-01 or http-01",
				    where(ca, "challenge", w, sizeof(w)), ca->challenge);
	ca->dcv_hook = get(ca, "dcv_hook");
	if (ca->dcv_hook && (ca->dcv_hook[0] != '/' || access(ca->dcv_hook, X_OK) != 0))
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: dcv_hook = '%s' must be the absolute path of an executable "
				    "(arguments are not supported; use a wrapper script)",
				    where(ca, "dcv_hook", w, sizeof(w)), ca->dcv_hook);
	ca->webroot = get(ca, "webroot");
	if (ca->webroot && ca->webroot[0] != '/')
		return p11e_err_set(err, P11E_EUSAGE, "%s: webroot = '%s' must be an absolute path",
				    where(ca, "webroot", w, sizeof(w)), ca->webroot);
	if (strcmp(ca->challenge, "dns-01") == 0 && !ca->dcv_hook)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s]: challenge = dns-01 needs dcv_hook = /path/to/executable "
				    "(it publishes and removes the _acme-challenge TXT records)",
				    ca->name);
	if (strcmp(ca->challenge, "http-01") == 0 && !ca->webroot)
		return p11e_err_set(err, P11E_EUSAGE,
				    "[ca:%s]: challenge = http-01 needs webroot = DIR (served as "
				    "http://NAME/ by the web server; files go to "
				    "DIR/.well-known/acme-challenge/)",
				    ca->name);
	return P11E_OK;
}

static p11e_status acme_open(const char *ca_name, const struct p11e_settings *s, struct p11e_ca **out,
			     struct p11e_err *err)
{
	struct p11e_ca *ca = calloc(1, sizeof(*ca));
	p11e_status rc = P11E_OK;

	*out = NULL;
	if (!ca || !(ca->name = strdup(ca_name)) || p11e_settings_copy(&ca->settings, s) != P11E_OK) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	if ((rc = read_account_settings(ca, err)) != P11E_OK)
		goto out;
	if ((rc = read_challenge_settings(ca, err)) != P11E_OK)
		goto out;
	if ((rc = p11e_http_opts_from_settings(&ca->opts, &ca->settings, err)) != P11E_OK)
		goto out;
	if ((rc = p11e_http_new(&ca->opts, &ca->http, err)) != P11E_OK)
		goto out;
	*out = ca;
	ca = NULL;
out:
	acme_close(ca);
	return rc;
}

static void acme_set_state_dir(struct p11e_ca *ca, const char *state_dir)
{
	free(ca->state_dir);
	ca->state_dir = state_dir ? strdup(state_dir) : NULL;
}

/* ---------- the account key ---------- */

/* Opens the account key; makes it when absent and `create`. *have says
 * whether there is one. */
static p11e_status account_key_open(struct p11e_ca *ca, bool create, struct p11e_err *err)
{
	struct account_key *ak = &ca->ak;
	char w[512];
	bool found = false;
	p11e_status rc;

	if (ca->ak_open && (ak->have || !create))
		return P11E_OK;
	if (!ca->ak_open) {
		rc = p11e_keystore_parse(ca->account_key_uri, DEFAULT_ACCOUNT_LABEL, &ak->ks, err);
		if (rc == P11E_OK)
			rc = p11e_keystore_open(ak->ks, err);
		if (rc == P11E_OK)
			rc = p11e_keystore_find(ak->ks, NULL, NULL, &found, err);
		if (rc != P11E_OK)
			goto fail;
		ca->ak_open = true;
		ak->have = found;
		if (found) {
			ak->spec = ak->ks->key.spec;
			ak->pub = ak->ks->key.pub;
		}
	}
	if (!ak->have && create) {
		rc = p11e_keystore_generate(ak->ks, ca->key_spec, NULL, err);
		if (rc != P11E_OK)
			goto fail;
		ak->have = true;
		ak->spec = ak->ks->key.spec;
		ak->pub = ak->ks->key.pub;
		p11e_info("[ca:%s] generated the ACME account key (%s) on %s", ca->name,
			  ak->spec->name, p11e_keystore_describe(ak->ks));
	}
	if (!ak->have)
		return P11E_OK;
	if (ca->key_type_set && ak->spec != ca->key_spec)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s: the ACME account key is %s, but account_key_type = %s; it "
				    "is not replaced (the account is bound to it): fix "
				    "account_key_type or name another key",
				    where(ca, "account_key_type", w, sizeof(w)), ak->spec->name,
				    ca->key_spec->name);
	if (!acme_jws_alg(ak->spec) || acme_jwk_thumbprint(ak->pub, ak->thumbprint) != 0)
		return p11e_err_set(err, P11E_EFAIL,
				    "cannot describe the ACME account key (%s) as a JWK",
				    ak->spec->name);
	return P11E_OK;
fail:
	p11e_err_prefix(err, "[ca:%s] account_key", ca->name);
	return rc;
}

/* Signs `input` with the account key: the JWS signature bytes (raw r||s
 * for ECDSA). malloc'd. */
static p11e_status account_sign(struct p11e_ca *ca, const char *input, unsigned char **sig,
				size_t *sig_len, struct p11e_err *err)
{
	struct account_key *ak = &ca->ak;
	struct p11e_signer signer;
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned md_len = 0;
	size_t der_len = 0;
	p11e_status rc;

	*sig = NULL;
	/* The token's signer is one per process: take it right before use. */
	rc = p11e_keystore_signer(ak->ks, &signer, err);
	if (rc != P11E_OK)
		return rc;
	if (signer.sign_data) {
		rc = signer.sign_data(signer.ctx, (const unsigned char *)input, strlen(input), &der,
				      &der_len, err);
	} else {
		if (EVP_Digest(input, strlen(input), md, &md_len,
			       EVP_get_digestbyname(ak->spec->digest), NULL) != 1)
			return p11e_err_set(err, P11E_EFAIL, "cannot hash the JWS signing input");
		rc = signer.sign(signer.ctx, md, md_len, &der, &der_len, err);
	}
	if (rc != P11E_OK)
		return rc;
	if (ak->spec->alg == P11E_ALG_RSA) {
		*sig = malloc(der_len);
		if (*sig) {
			memcpy(*sig, der, der_len);
			*sig_len = der_len;
		}
	} else if (acme_ecdsa_der_to_raw(der, der_len, (ak->spec->bits + 7) / 8, sig, sig_len) != 0) {
		*sig = NULL;
	}
	OPENSSL_free(der);
	if (!*sig)
		return p11e_err_set(err, P11E_EFAIL, "cannot encode the JWS signature");
	return P11E_OK;
}

/* ---------- HTTP: directory, nonces, signed requests ---------- */

static void take_nonce(struct p11e_ca *ca, const struct p11e_http_response *resp)
{
	char *n = p11e_http_header(resp, "Replay-Nonce", 0);

	if (n && *n && strlen(n) < sizeof(ca->nonce))
		snprintf(ca->nonce, sizeof(ca->nonce), "%s", n);
	free(n);
}

static p11e_ca_outcome transport_fail(struct p11e_ca *ca, const struct p11e_http_response *resp,
				      const char *what, struct p11e_ca_result *res)
{
	if (resp->kind == P11E_HTTP_LOCAL)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "[ca:%s] %s: %s", ca->name, what,
				    resp->error);
	res->retry_after = resp->retry_after;
	if (resp->kind == P11E_HTTP_RESPONSE)
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE, "[ca:%s] %s: HTTP %ld", ca->name, what,
				    resp->status);
	return p11e_ca_fail(res, P11E_CA_UNREACHABLE, "[ca:%s] %s: %s", ca->name, what, resp->error);
}

static p11e_ca_outcome get_directory(struct p11e_ca *ca, struct p11e_ca_result *res)
{
	struct p11e_http_request req = { .method = "GET",
					 .url = ca->directory_url,
					 .log_name = "ACME directory" };
	struct p11e_http_response resp = { 0 };
	p11e_ca_outcome outcome = P11E_CA_OK;

	if (ca->dir)
		return P11E_CA_OK;
	p11e_http_perform(ca->http, &req, &resp);
	if (resp.kind != P11E_HTTP_RESPONSE || resp.status != 200) {
		outcome = transport_fail(ca, &resp, "cannot read the ACME directory", res);
		goto out;
	}
	ca->dir = cJSON_Parse(resp.body);
	if (!ca->dir || !jstr(ca->dir, "newNonce") || !jstr(ca->dir, "newAccount") ||
	    !jstr(ca->dir, "newOrder")) {
		cJSON_Delete(ca->dir);
		ca->dir = NULL;
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				       "[ca:%s] %s is not an ACME directory (no newNonce, newAccount, "
				       "newOrder); check directory_url",
				       ca->name, ca->directory_url);
	}
out:
	p11e_http_response_clear(&resp);
	return outcome;
}

static p11e_ca_outcome new_nonce(struct p11e_ca *ca, struct p11e_ca_result *res)
{
	struct p11e_http_request req = { .method = "GET",
					 .url = jstr(ca->dir, "newNonce"),
					 .log_name = "ACME newNonce" };
	struct p11e_http_response resp = { 0 };
	p11e_ca_outcome outcome = P11E_CA_OK;

	p11e_http_perform(ca->http, &req, &resp);
	take_nonce(ca, &resp);
	if (resp.kind != P11E_HTTP_RESPONSE || resp.status >= 300 || !ca->nonce[0])
		outcome = transport_fail(ca, &resp, "cannot get a nonce", res);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* What a signed request came to. */
typedef enum {
	AP_OK,      /* a 2xx response: resp holds it */
	AP_PROBLEM, /* the server answered with a problem: *prob, resp holds it */
	AP_FAILED,  /* no usable answer: res is set (UNREACHABLE, UNKNOWN or MISCONFIGURED) */
} ap_rc;

struct signed_req {
	const char *url;
	const cJSON *payload; /* NULL: POST-as-GET */
	bool use_jwk;         /* newAccount and revoke-by-key: jwk instead of kid */
	bool placement;       /* newOrder: an unknown outcome is P11E_CA_UNKNOWN */
	const char *accept;   /* Accept header, NULL for JSON */
	const char *what;     /* for messages */
};

/* A JWS POST with a fresh nonce; a badNonce refusal is retried with the
 * nonce that came with it. */
static ap_rc acme_post(struct p11e_ca *ca, const struct signed_req *sr,
		       struct p11e_http_response *resp, struct acme_problem *prob,
		       struct p11e_ca_result *res)
{
	char accept[160];
	const char *headers[] = { accept, NULL };

	snprintf(accept, sizeof(accept), "Accept: %s", sr->accept ? sr->accept : "application/json");
	for (unsigned attempt = 0;; attempt++) {
		struct p11e_err err = { 0 };
		char *prot_b64 = NULL, *payload_b64 = NULL, *input = NULL, *body = NULL;
		unsigned char *sig = NULL;
		size_t sig_len = 0;
		cJSON *prot;
		struct p11e_http_request req = {
			.method = "POST",
			.url = sr->url,
			.content_type = "application/jose+json",
			.headers = headers,
			.no_retry_after_send = true,
			.log_name = sr->what,
		};

		if (!ca->nonce[0] && new_nonce(ca, res) != P11E_CA_OK)
			return AP_FAILED;
		prot = acme_protected(acme_jws_alg(ca->ak.spec), ca->nonce, sr->url,
				      sr->use_jwk ? NULL : ca->account_url, ca->ak.pub);
		ca->nonce[0] = '\0'; /* used: never twice */
		if (prot)
			input = acme_signing_input(prot, sr->payload, &prot_b64, &payload_b64);
		cJSON_Delete(prot);
		if (input && account_sign(ca, input, &sig, &sig_len, &err) == P11E_OK)
			body = acme_jws_text(prot_b64, payload_b64, sig, sig_len);
		free(input);
		free(prot_b64);
		free(payload_b64);
		free(sig);
		if (!body) {
			p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				     "[ca:%s] %s: cannot sign with the "
				     "ACME account key: %s",
				     ca->name, sr->what, err.msg[0] ? err.msg : "out of memory");
			return AP_FAILED;
		}
		req.body = body;
		p11e_http_perform(ca->http, &req, resp);
		free(body);
		take_nonce(ca, resp);
		if (resp->kind != P11E_HTTP_RESPONSE) {
			if (sr->placement && p11e_http_outcome_unknown(resp)) {
				p11e_ca_fail(res, P11E_CA_UNKNOWN, "[ca:%s] %s: %s", ca->name,
					     sr->what, resp->error);
				return AP_FAILED;
			}
			transport_fail(ca, resp, sr->what, res);
			return AP_FAILED;
		}
		if (resp->status >= 200 && resp->status < 300)
			return AP_OK;
		if (!acme_problem_parse(resp->body, prob)) {
			if (sr->placement && p11e_http_outcome_unknown(resp)) {
				p11e_ca_fail(res, P11E_CA_UNKNOWN, "[ca:%s] %s: HTTP %ld", ca->name,
					     sr->what, resp->status);
				return AP_FAILED;
			}
			transport_fail(ca, resp, sr->what, res);
			return AP_FAILED;
		}
		if (prob->acme && strcmp(prob->type, "badNonce") == 0 && attempt < BAD_NONCE_RETRIES) {
			p11e_debug("[ca:%s] %s: badNonce, retrying with the new nonce", ca->name,
				   sr->what);
			p11e_http_response_clear(resp);
			continue;
		}
		return AP_PROBLEM;
	}
}

/* A problem document as the agent's outcome. */
static p11e_ca_outcome problem_outcome(struct p11e_ca *ca, const struct acme_problem *p,
				       const struct p11e_http_response *resp, const char *what,
				       struct p11e_ca_result *res)
{
	static const char *const refused[] = {
		"unauthorized",
		"rejectedIdentifier",
		"caa",
		"unsupportedIdentifier",
		"badCSR",
		"dns",
		"connection",
		"incorrectResponse",
		"tls",
		"orderNotReady",
		"badRevocationReason",
		"malformed",
		"compound",
		NULL,
	};
	static const char *const ours[] = {
		"accountDoesNotExist",   "externalAccountRequired",
		"userActionRequired",    "badPublicKey",
		"badSignatureAlgorithm", "invalidContact",
		"unsupportedContact",    NULL,
	};
	p11e_ca_outcome outcome = P11E_CA_REJECTED;

	snprintf(res->ca_code, sizeof(res->ca_code), "%.63s", p->type);
	if (strcmp(p->type, "rateLimited") == 0 || strcmp(p->type, "serverInternal") == 0 ||
	    strcmp(p->type, "badNonce") == 0 || resp->status >= 500 || resp->status == 429) {
		res->retry_after = resp->retry_after ? resp->retry_after : 60;
		outcome = P11E_CA_UNREACHABLE;
	} else {
		for (size_t i = 0; ours[i]; i++)
			if (strcmp(p->type, ours[i]) == 0)
				outcome = P11E_CA_MISCONFIGURED;
		for (size_t i = 0; refused[i]; i++)
			if (strcmp(p->type, refused[i]) == 0)
				outcome = P11E_CA_REJECTED;
	}
	return p11e_ca_fail(res, outcome, "[ca:%s] %s: %s (HTTP %ld)", ca->name, what,
			    p->detail[0] ? p->detail : p->type, resp->status);
}

/* A POST that must come back 2xx with a JSON body: *doc. */
static p11e_ca_outcome post_json(struct p11e_ca *ca, const struct signed_req *sr, cJSON **doc,
				 struct p11e_http_response *resp, struct p11e_ca_result *res)
{
	struct acme_problem prob;
	ap_rc rc = acme_post(ca, sr, resp, &prob, res);

	*doc = NULL;
	if (rc == AP_FAILED)
		return res->outcome;
	if (rc == AP_PROBLEM)
		return problem_outcome(ca, &prob, resp, sr->what, res);
	*doc = cJSON_Parse(resp->body ? resp->body : "");
	if (!*doc)
		return p11e_ca_fail(res, sr->placement ? P11E_CA_UNKNOWN : P11E_CA_UNREACHABLE,
				    "[ca:%s] %s: the answer is not JSON", ca->name, sr->what);
	return P11E_CA_OK;
}

/* ---------- the account ---------- */

static void state_path(const struct p11e_ca *ca, char *buf, size_t size)
{
	snprintf(buf, size, "%s/acme-%s.account.json", ca->state_dir, ca->name);
}

/* The account URL remembered for this directory and key, if any. */
static void load_account(struct p11e_ca *ca)
{
	char path[4096], *text = NULL;
	size_t len;
	struct p11e_err ignore = { 0 };
	cJSON *doc;

	if (!ca->state_dir)
		return;
	state_path(ca, path, sizeof(path));
	if (access(path, F_OK) != 0 || p11e_read_file(path, 65536, &text, &len, &ignore) != P11E_OK)
		return;
	doc = cJSON_Parse(text);
	if (doc && jstr(doc, "account_url") &&
	    strcmp(jstr(doc, "directory_url") ? jstr(doc, "directory_url") : "", ca->directory_url) ==
		    0 &&
	    strcmp(jstr(doc, "key_thumbprint") ? jstr(doc, "key_thumbprint") : "",
		   ca->ak.thumbprint) == 0)
		ca->account_url = strdup(jstr(doc, "account_url"));
	cJSON_Delete(doc);
	free(text);
}

static void save_account(struct p11e_ca *ca)
{
	char path[4096], *text;
	struct p11e_err err = { 0 };
	cJSON *doc;

	if (!ca->state_dir)
		return;
	doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "directory_url", ca->directory_url);
	cJSON_AddStringToObject(doc, "key_thumbprint", ca->ak.thumbprint);
	cJSON_AddStringToObject(doc, "account_url", ca->account_url);
	text = cJSON_Print(doc);
	state_path(ca, path, sizeof(path));
	if (!text ||
	    p11e_write_atomic(path, text, strlen(text), 0600, (uid_t)-1, (gid_t)-1, &err) != P11E_OK)
		p11e_warn("[ca:%s] cannot remember the account URL in %s: %s (it is looked up "
			  "again next time)",
			  ca->name, path, err.msg);
	free(text);
	cJSON_Delete(doc);
}

/* Asks the CA for the account of our key (onlyReturnExisting). P11E_CA_OK
 * with *exists false when it has none; with *exists, its URL in *loc and
 * its answer in *resp. */
static p11e_ca_outcome lookup_account(struct p11e_ca *ca, struct p11e_http_response *resp, char **loc,
				      bool *exists, struct p11e_ca_result *res)
{
	struct acme_problem prob;
	cJSON *payload = cJSON_CreateObject();
	ap_rc rc;

	*exists = false;
	cJSON_AddTrueToObject(payload, "onlyReturnExisting");
	rc = acme_post(ca,
		       &(struct signed_req){ .url = jstr(ca->dir, "newAccount"),
					     .payload = payload,
					     .use_jwk = true,
					     .what = "ACME account lookup" },
		       resp, &prob, res);
	cJSON_Delete(payload);
	if (rc == AP_FAILED)
		return res->outcome;
	if (rc == AP_OK) {
		*loc = p11e_http_header(resp, "Location", 0);
		p11e_info("[ca:%s] found ACME account %s (onlyReturnExisting)", ca->name,
			  *loc ? *loc : "?");
		*exists = true;
		return P11E_CA_OK;
	}
	if (!(prob.acme && strcmp(prob.type, "accountDoesNotExist") == 0))
		return problem_outcome(ca, &prob, resp, "ACME account lookup", res);
	return P11E_CA_OK;
}

/* The newAccount request: terms agreed, contacts and External Account
 * Binding, once the directory's requirements are met. */
static p11e_ca_outcome new_account_payload(struct p11e_ca *ca, cJSON **out, struct p11e_ca_result *res)
{
	const cJSON *meta = cJSON_GetObjectItemCaseSensitive(ca->dir, "meta");
	cJSON *payload;

	*out = NULL;
	if (jstr(meta, "termsOfService") && !ca->terms_agreed)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[ca:%s] the CA asks to agree to its terms of service (%s): "
				    "read them and set terms_agreed = yes",
				    ca->name, jstr(meta, "termsOfService"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(meta, "externalAccountRequired")) &&
	    !ca->eab_key)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[ca:%s] the CA requires External Account Binding: set eab_kid "
				    "and eab_hmac_key_file from the CA's account page",
				    ca->name);
	payload = cJSON_CreateObject();
	if (ca->terms_agreed)
		cJSON_AddTrueToObject(payload, "termsOfServiceAgreed");
	if (ca->contact.n) {
		cJSON *arr = cJSON_AddArrayToObject(payload, "contact");

		for (size_t i = 0; i < ca->contact.n; i++)
			cJSON_AddItemToArray(arr, cJSON_CreateString(ca->contact.v[i]));
	}
	if (ca->eab_key) {
		cJSON *eab = acme_eab(ca->eab_kid, ca->eab_key, ca->eab_key_len,
				      jstr(ca->dir, "newAccount"), ca->ak.pub);

		if (!eab) {
			cJSON_Delete(payload);
			return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
					    "[ca:%s] cannot make the External Account Binding",
					    ca->name);
		}
		cJSON_AddItemToObject(payload, "externalAccountBinding", eab);
	}
	*out = payload;
	return P11E_CA_OK;
}

/* Makes the account of our key: its URL in *loc, the CA's answer in *resp. */
static p11e_ca_outcome create_account(struct p11e_ca *ca, struct p11e_http_response *resp, char **loc,
				      struct p11e_ca_result *res)
{
	struct acme_problem prob;
	cJSON *payload;
	p11e_ca_outcome outcome;
	ap_rc rc;

	if ((outcome = new_account_payload(ca, &payload, res)) != P11E_CA_OK)
		return outcome;
	rc = acme_post(ca,
		       &(struct signed_req){ .url = jstr(ca->dir, "newAccount"),
					     .payload = payload,
					     .use_jwk = true,
					     .what = "ACME newAccount" },
		       resp, &prob, res);
	cJSON_Delete(payload);
	if (rc == AP_FAILED) {
		outcome = res->outcome == P11E_CA_UNKNOWN ? P11E_CA_UNREACHABLE : res->outcome;
		res->outcome = outcome;
		return outcome;
	}
	if (rc == AP_PROBLEM) {
		/* Whatever the CA dislikes about a new account is ours to fix
		 * (EAB key, terms, contact), unless it is busy. */
		outcome = problem_outcome(ca, &prob, resp, "ACME newAccount", res);
		if (outcome == P11E_CA_REJECTED)
			outcome = res->outcome = P11E_CA_MISCONFIGURED;
		return outcome;
	}
	*loc = p11e_http_header(resp, "Location", 0);
	p11e_info("[ca:%s] created ACME account %s%s", ca->name, *loc ? *loc : "?",
		  ca->eab_key ? " (External Account Binding)" : "");
	return P11E_CA_OK;
}

/* Takes the account the CA named (*loc, which it keeps) if it may order,
 * and remembers it in state_dir. */
static p11e_ca_outcome adopt_account(struct p11e_ca *ca, const struct p11e_http_response *resp,
				     char **loc, struct p11e_ca_result *res)
{
	cJSON *doc = cJSON_Parse(resp->body ? resp->body : "");
	p11e_ca_outcome outcome;

	if (!*loc) {
		outcome = p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				       "[ca:%s] the CA named no account URL (Location)", ca->name);
	} else if (doc && jstr(doc, "status") && strcmp(jstr(doc, "status"), "valid") != 0) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				       "[ca:%s] the ACME account %s is %s; it cannot order", ca->name,
				       *loc, jstr(doc, "status"));
	} else {
		ca->account_url = *loc;
		*loc = NULL;
		save_account(ca);
		outcome = P11E_CA_OK;
	}
	cJSON_Delete(doc);
	return outcome;
}

/* Finds the account of our key (onlyReturnExisting) and, when `create`,
 * makes it (with EAB when configured). P11E_CA_NOT_FOUND when there is no
 * account and create is false. */
static p11e_ca_outcome ensure_account(struct p11e_ca *ca, bool create, struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	struct p11e_err err = { 0 };
	char *loc = NULL;
	bool exists;
	p11e_ca_outcome outcome;

	if (get_directory(ca, res) != P11E_CA_OK)
		return res->outcome;
	if (ca->account_url)
		return P11E_CA_OK;
	if (account_key_open(ca, create, &err) != P11E_OK)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "%s", err.msg);
	if (!ca->ak.have)
		return p11e_ca_fail(res, P11E_CA_NOT_FOUND,
				    "no ACME account key yet (the first enroll makes it)");
	load_account(ca);
	if (ca->account_url)
		return P11E_CA_OK;

	outcome = lookup_account(ca, &resp, &loc, &exists, res);
	if (outcome == P11E_CA_OK && !exists) {
		if (!create) {
			outcome =
				p11e_ca_fail(res, P11E_CA_NOT_FOUND,
					     "no ACME account for this key yet (the first enroll makes it)");
		} else {
			p11e_http_response_clear(&resp);
			outcome = create_account(ca, &resp, &loc, res);
		}
	}
	if (outcome == P11E_CA_OK)
		outcome = adopt_account(ca, &resp, &loc, res);
	free(loc);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* POST-as-GET of an object (order, authorisation, account). */
static p11e_ca_outcome get_object(struct p11e_ca *ca, const char *url, const char *what, cJSON **doc,
				  unsigned *retry_after, struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	p11e_ca_outcome outcome;

	outcome = post_json(ca, &(struct signed_req){ .url = url, .what = what }, doc, &resp, res);
	if (retry_after)
		*retry_after = resp.retry_after;
	p11e_http_response_clear(&resp);
	return outcome;
}

/* ---------- check, products, orders ---------- */

static p11e_ca_outcome acme_check(struct p11e_ca *ca, struct p11e_ca_result *res)
{
	const cJSON *meta;
	char why[sizeof(res->message)];
	p11e_ca_outcome outcome = ensure_account(ca, false, res);

	if (outcome == P11E_CA_NOT_FOUND) {
		bool eab_missing;

		meta = cJSON_GetObjectItemCaseSensitive(ca->dir, "meta");
		eab_missing =
			cJSON_IsTrue(
				cJSON_GetObjectItemCaseSensitive(meta, "externalAccountRequired")) &&
			!ca->eab_key;
		snprintf(why, sizeof(why), "%s", res->message);
		return p11e_ca_fail(res, eab_missing ? P11E_CA_MISCONFIGURED : P11E_CA_OK,
				    "ACME directory reached; %.900s%s", why,
				    eab_missing ? "; but the CA requires External Account Binding "
						  "(eab_kid, eab_hmac_key_file)"
						: "");
	}
	if (outcome != P11E_CA_OK)
		return outcome;
	return p11e_ca_fail(res, P11E_CA_OK, "ACME directory reached; account %s (%s key)",
			    ca->account_url, ca->ak.spec->name);
}

static p11e_ca_outcome acme_products(struct p11e_ca *ca, struct p11e_product **list, size_t *n,
				     struct p11e_ca_result *res)
{
	*list = NULL;
	*n = 0;
	return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
			    "[ca:%s] is an ACME CA: ACME has no product list (the certificate is "
			    "what the order's names ask for, under the CA's own profile)",
			    ca->name);
}

/* ---------- orders ---------- */

static int names_of(const struct p11e_order *order, struct p11e_strlist *names)
{
	if (order->dns && order->dns->n) {
		for (size_t i = 0; i < order->dns->n; i++)
			if (p11e_strlist_add(names, order->dns->v[i]) != 0)
				return -1;
		return 0;
	}
	if (order->common_name)
		return p11e_strlist_add(names, order->common_name);
	return -1;
}

/* Whether an order's identifiers are exactly `names` (any order). */
static bool same_names(const cJSON *ord, const struct p11e_strlist *names)
{
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(ord, "identifiers"), *id;
	size_t n = 0;

	cJSON_ArrayForEach (id, ids) {
		const char *v = jstr(id, "value");
		bool hit = false;

		for (size_t i = 0; v && i < names->n; i++)
			hit = hit || strcasecmp(v, names->v[i]) == 0;
		if (!hit)
			return false;
		n++;
	}
	return n == names->n;
}

/* Downloads the leaf+chain of a valid order (PEM). */
static p11e_ca_outcome download(struct p11e_ca *ca, const cJSON *ord, char **pem,
				struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	struct acme_problem prob;
	const char *url = jstr(ord, "certificate");
	p11e_ca_outcome outcome = P11E_CA_OK;
	ap_rc rc;

	*pem = NULL;
	if (!url)
		return p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				    "[ca:%s] the order is valid but names no certificate", ca->name);
	rc = acme_post(ca,
		       &(struct signed_req){ .url = url,
					     .accept = "application/pem-certificate-chain",
					     .what = "ACME certificate download" },
		       &resp, &prob, res);
	if (rc == AP_FAILED && resp.status == 404)
		outcome = res->outcome = P11E_CA_NOT_FOUND;
	else if (rc == AP_FAILED)
		outcome = res->outcome;
	else if (rc == AP_PROBLEM && resp.status == 404)
		outcome = p11e_ca_fail(res, P11E_CA_NOT_FOUND,
				       "[ca:%s] the CA no longer serves the "
				       "certificate of this order (%s)",
				       ca->name, prob.detail);
	else if (rc == AP_PROBLEM)
		outcome = problem_outcome(ca, &prob, &resp, "ACME certificate download", res);
	else if (!resp.body || !strstr(resp.body, "-----BEGIN CERTIFICATE-----"))
		outcome = p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				       "[ca:%s] the certificate download is not PEM", ca->name);
	else
		*pem = strdup(resp.body);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* ARI: the certID of the certificate of `previous_order`, or NULL. */
static char *replaces_id(struct p11e_ca *ca, const char *previous_order)
{
	struct p11e_ca_result res = { 0 };
	cJSON *ord = NULL;
	char *pem = NULL, *id = NULL;

	if (!previous_order || !jstr(ca->dir, "renewalInfo"))
		return NULL;
	if (get_object(ca, previous_order, "ACME previous order", &ord, NULL, &res) == P11E_CA_OK &&
	    download(ca, ord, &pem, &res) == P11E_CA_OK)
		id = acme_ari_cert_id(pem);
	if (!id)
		p11e_warn("[ca:%s] cannot name the certificate this renewal replaces (%s); ordering "
			  "without ARI's replaces",
			  ca->name, res.message[0] ? res.message : "no AKI");
	free(pem);
	cJSON_Delete(ord);
	p11e_ca_result_clear(&res);
	return id;
}

static void order_status(const cJSON *ord, struct p11e_ca_result *res)
{
	snprintf(res->status_text, sizeof(res->status_text), "%s",
		 jstr(ord, "status") ? jstr(ord, "status") : "?");
}

static p11e_ca_outcome acme_place(struct p11e_ca *ca, const struct p11e_order *order,
				  struct p11e_ca_result *res)
{
	struct p11e_strlist names = { 0 };
	struct p11e_http_response resp = { 0 };
	cJSON *payload = NULL, *ids, *ord = NULL;
	char *loc = NULL, *replaces = NULL;
	p11e_ca_outcome outcome;

	if (names_of(order, &names) != 0) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				       "[cert:%s] has no dns names to order (ACME certifies names)",
				       order->name);
		goto out;
	}
	outcome = ensure_account(ca, true, res);
	if (outcome != P11E_CA_OK) {
		/* Nothing was ordered: the agent may place again later. */
		if (outcome == P11E_CA_UNKNOWN || outcome == P11E_CA_NOT_FOUND)
			outcome = res->outcome = P11E_CA_UNREACHABLE;
		goto out;
	}
	payload = cJSON_CreateObject();
	ids = cJSON_AddArrayToObject(payload, "identifiers");
	for (size_t i = 0; i < names.n; i++) {
		cJSON *id = cJSON_CreateObject();

		cJSON_AddStringToObject(id, "type", "dns");
		cJSON_AddStringToObject(id, "value", names.v[i]);
		cJSON_AddItemToArray(ids, id);
	}
	replaces = replaces_id(ca, order->previous.order_id);
	if (replaces)
		cJSON_AddStringToObject(payload, "replaces", replaces);
	outcome = post_json(ca,
			    &(struct signed_req){ .url = jstr(ca->dir, "newOrder"),
						  .payload = payload,
						  .placement = true,
						  .what = "ACME newOrder" },
			    &ord, &resp, res);
	if (outcome == P11E_CA_UNREACHABLE && resp.status >= 500) {
		/* The server failed while handling it: an order may exist. */
		outcome = res->outcome = P11E_CA_UNKNOWN;
		goto out;
	}
	if (outcome != P11E_CA_OK)
		goto out;
	loc = p11e_http_header(&resp, "Location", 0);
	if (!loc) {
		outcome = p11e_ca_fail(res, P11E_CA_UNKNOWN,
				       "[ca:%s] the new order came without its URL (Location)",
				       ca->name);
		goto out;
	}
	if (strlen(loc) >= sizeof(res->order_id)) {
		/* Placing again would meet the same limit: the operator decides.
		 * The order is never finalized, so it yields no certificate. */
		outcome = p11e_ca_fail(res, P11E_CA_REJECTED,
				       "[ca:%s] the order URL %s is longer than the %zu characters an "
				       "order reference may have here",
				       ca->name, loc, sizeof(res->order_id) - 1);
		goto out;
	}
	snprintf(res->order_id, sizeof(res->order_id), "%s", loc);
	order_status(ord, res);
	outcome = res->outcome = P11E_CA_PENDING;
out:
	free(loc);
	free(replaces);
	cJSON_Delete(ord);
	cJSON_Delete(payload);
	p11e_http_response_clear(&resp);
	p11e_strlist_free(&names);
	return outcome;
}

/* ---------- challenges ---------- */


struct proof {
	const char *type; /* dns-01 or http-01 */
	char domain[256];
	char record[320];    /* dns-01: _acme-challenge.NAME */
	char value[64];      /* dns-01: TXT value */
	const char *webroot; /* http-01 */
	char file[4096];     /* http-01: the webroot file */
	char keyauth[256];
};

static int publish(struct p11e_ca *ca, struct proof *p, char *why, size_t why_size)
{
	struct p11e_err err = { 0 };
	char dir[4096];

	if (strcmp(p->type, "dns-01") == 0)
		return p11e_ca_dcv_hook(ca->dcv_hook, "publish", p->domain, p->record, p->value, why,
					why_size);
	snprintf(dir, sizeof(dir), "%s/.well-known/acme-challenge", p->webroot);
	if (p11e_mkdirs(dir, 0755, &err) != P11E_OK ||
	    p11e_write_atomic(p->file, p->keyauth, strlen(p->keyauth), 0644, (uid_t)-1, (gid_t)-1,
			      &err) != P11E_OK) {
		snprintf(why, why_size, "cannot write the http-01 file: %.400s", err.msg);
		return -1;
	}
	return 0;
}

static void unpublish(struct p11e_ca *ca, struct proof *p)
{
	char why[600];

	if (strcmp(p->type, "dns-01") == 0) {
		if (p11e_ca_dcv_hook(ca->dcv_hook, "remove", p->domain, p->record, p->value, why,
				     sizeof(why)) != 0)
			p11e_warn("[ca:%s] %s (the TXT record %s may stay behind)", ca->name, why,
				  p->record);
	} else if (unlink(p->file) != 0 && errno != ENOENT) {
		p11e_warn("[ca:%s] cannot remove %s: %s", ca->name, p->file, strerror(errno));
	}
}

/* The problem of an invalid authorisation, from its challenges. */
static p11e_ca_outcome authz_refused(struct p11e_ca *ca, const cJSON *az, const char *name,
				     struct p11e_ca_result *res)
{
	const cJSON *ch;
	struct acme_problem p;

	cJSON_ArrayForEach (ch, cJSON_GetObjectItemCaseSensitive(az, "challenges")) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ch, "error");

		if (e && acme_problem_from_json(e, &p)) {
			snprintf(res->ca_code, sizeof(res->ca_code), "%.63s", p.type);
			return p11e_ca_fail(res, P11E_CA_REJECTED,
					    "[ca:%s] validation of %s failed (%s): %s", ca->name, name,
					    jstr(ch, "type") ? jstr(ch, "type") : "?", p.detail);
		}
	}
	return p11e_ca_fail(res, P11E_CA_REJECTED, "[ca:%s] the authorisation of %s is %s", ca->name,
			    name, jstr(az, "status") ? jstr(az, "status") : "invalid");
}

/* The challenge of a pending authorisation we answer (`challenge`, dns-01
 * for a wildcard) and its proof: the TXT record or the webroot file. */
static p11e_ca_outcome prepare_proof(struct p11e_ca *ca, const cJSON *az, const char *name,
				     const char *challenge, const char *webroot, struct proof *p,
				     const cJSON **chosen, struct p11e_ca_result *res)
{
	bool wildcard = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(az, "wildcard"));
	const char *want = wildcard ? "dns-01" : challenge;
	const cJSON *ch;

	*chosen = NULL;
	if (wildcard && strcmp(challenge, "dns-01") != 0)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[ca:%s] *.%s can only be validated by dns-01: set challenge = "
				    "dns-01 and a dcv_hook",
				    ca->name, name);
	if (wildcard && !ca->dcv_hook)
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[ca:%s] *.%s needs dns-01 and a dcv_hook", ca->name, name);
	cJSON_ArrayForEach (ch, cJSON_GetObjectItemCaseSensitive(az, "challenges"))
		if (jstr(ch, "type") && strcmp(jstr(ch, "type"), want) == 0)
			*chosen = ch;
	if (!*chosen || !jstr(*chosen, "url"))
		return p11e_ca_fail(res, P11E_CA_REJECTED,
				    "[ca:%s] the CA offers no %s challenge for %s", ca->name, want,
				    name);
	p->type = want;
	snprintf(p->domain, sizeof(p->domain), "%s", name);
	if (acme_key_authorization(jstr(*chosen, "token"), ca->ak.thumbprint, p->keyauth,
				   sizeof(p->keyauth)) != 0)
		return p11e_ca_fail(res, P11E_CA_REJECTED,
				    "[ca:%s] the %s challenge for %s has a malformed token", ca->name,
				    want, name);
	if (strcmp(want, "dns-01") == 0) {
		snprintf(p->record, sizeof(p->record), "_acme-challenge.%s", name);
		acme_dns01_value(p->keyauth, p->value);
		return P11E_CA_OK;
	}
	if (!webroot || webroot[0] != '/')
		return p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				    "[ca:%s] http-01 for %s needs webroot = /absolute/DIR", ca->name,
				    name);
	p->webroot = webroot;
	snprintf(p->file, sizeof(p->file), "%s/.well-known/acme-challenge/%s", webroot,
		 jstr(*chosen, "token"));
	return P11E_CA_OK;
}

/* Tells the CA to validate, if the challenge still waits for it (a resumed
 * run may find it processing already). */
static p11e_ca_outcome answer_challenge(struct p11e_ca *ca, const cJSON *chosen,
					struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	cJSON *ans, *ack = NULL;
	p11e_ca_outcome outcome;

	if (!jstr(chosen, "status") || strcmp(jstr(chosen, "status"), "pending") != 0)
		return P11E_CA_OK;
	ans = cJSON_CreateObject();
	outcome = post_json(ca,
			    &(struct signed_req){ .url = jstr(chosen, "url"),
						  .payload = ans,
						  .what = "ACME challenge response" },
			    &ack, &resp, res);
	cJSON_Delete(ack);
	cJSON_Delete(ans);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* Polls the authorisation until it is valid, refused, or AUTHZ_TIMEOUT has
 * passed (then pending). */
static p11e_ca_outcome await_validation(struct p11e_ca *ca, const char *url, const char *name,
					struct p11e_ca_result *res)
{
	time_t deadline = time(NULL) + AUTHZ_TIMEOUT;
	unsigned retry = 0, wait_ms = 100;
	const char *status;
	cJSON *az = NULL;
	p11e_ca_outcome outcome;

	for (;;) {
		cJSON_Delete(az);
		az = NULL;
		outcome = get_object(ca, url, "ACME authorization", &az, &retry, res);
		if (outcome != P11E_CA_OK)
			break;
		status = jstr(az, "status") ? jstr(az, "status") : "?";
		if (strcmp(status, "valid") == 0) {
			p11e_info("[ca:%s] %s validated", ca->name, name);
			break;
		}
		if (strcmp(status, "pending") != 0) {
			outcome = authz_refused(ca, az, name, res);
			break;
		}
		if (time(NULL) >= deadline) {
			outcome = p11e_ca_fail(res, P11E_CA_PENDING, "[ca:%s] %s is not validated yet",
					       ca->name, name);
			snprintf(res->status_text, sizeof(res->status_text), "validating");
			break;
		}
		if (retry) {
			sleep_seconds(retry > 30 ? 30 : retry);
		} else {
			/* No Retry-After: validation is often done within
			 * milliseconds, so start short (0.1 s, doubling to 1 s). */
			struct timespec ts = { wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L };

			nanosleep(&ts, NULL);
			wait_ms = wait_ms * 2 > 1000 ? 1000 : wait_ms * 2;
		}
	}
	cJSON_Delete(az);
	return outcome;
}

/* One authorisation: publish, answer, poll (Retry-After), remove. */
static p11e_ca_outcome drive_authz(struct p11e_ca *ca, const char *url, const char *challenge,
				   const char *webroot, struct p11e_ca_result *res)
{
	cJSON *az = NULL;
	const cJSON *chosen, *idf;
	struct proof p = { 0 };
	char why[600];
	const char *status;
	char name[256];
	bool published = false;
	p11e_ca_outcome outcome;

	outcome = get_object(ca, url, "ACME authorization", &az, NULL, res);
	if (outcome != P11E_CA_OK)
		goto out;
	idf = cJSON_GetObjectItemCaseSensitive(az, "identifier");
	snprintf(name, sizeof(name), "%s", jstr(idf, "value") ? jstr(idf, "value") : "?");
	status = jstr(az, "status") ? jstr(az, "status") : "?";
	if (strcmp(status, "valid") == 0)
		goto out;
	if (strcmp(status, "pending") != 0) {
		outcome = authz_refused(ca, az, name, res);
		goto out;
	}
	outcome = prepare_proof(ca, az, name, challenge, webroot, &p, &chosen, res);
	if (outcome != P11E_CA_OK)
		goto out;
	if (publish(ca, &p, why, sizeof(why)) != 0) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "[ca:%s] %s", ca->name, why);
		goto out;
	}
	published = true;
	p11e_info("[ca:%s] %s for %s published", ca->name, p.type, name);
	fault_point("acme-challenge-published");
	outcome = answer_challenge(ca, chosen, res);
	if (outcome == P11E_CA_OK)
		outcome = await_validation(ca, url, name, res);
out:
	if (published)
		unpublish(ca, &p);
	cJSON_Delete(az);
	return outcome;
}

/* ---------- poll, fetch ---------- */

static p11e_ca_outcome csr_der_b64(const char *csr_pem, char **out)
{
	BIO *bio = BIO_new_mem_buf(csr_pem, -1);
	X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	unsigned char *der = NULL;
	int len = req ? i2d_X509_REQ(req, &der) : -1;

	*out = len > 0 ? acme_b64url(der, (size_t)len) : NULL;
	OPENSSL_free(der);
	X509_REQ_free(req);
	BIO_free(bio);
	return *out ? P11E_CA_OK : P11E_CA_MISCONFIGURED;
}

static const char *challenge_for(const struct p11e_ca *ca, const struct p11e_order *order)
{
	const char *v = order ? p11e_settings_get(order->overrides, "challenge", NULL) : NULL;

	return v && (strcmp(v, "dns-01") == 0 || strcmp(v, "http-01") == 0) ? v : ca->challenge;
}

/* Every authorisation of a pending order, with the certificate's own
 * challenge and webroot when it sets them. */
static p11e_ca_outcome authorize_order(struct p11e_ca *ca, const struct p11e_order *order,
				       const cJSON *ord, struct p11e_ca_result *res)
{
	const cJSON *az;
	p11e_ca_outcome outcome;

	cJSON_ArrayForEach (az, cJSON_GetObjectItemCaseSensitive(ord, "authorizations")) {
		outcome =
			drive_authz(ca, cJSON_GetStringValue(az) ? cJSON_GetStringValue(az) : "",
				    challenge_for(ca, order),
				    order ? p11e_settings_get(order->overrides, "webroot", ca->webroot)
					  : ca->webroot,
				    res);
		if (outcome != P11E_CA_OK)
			return outcome;
	}
	return P11E_CA_OK;
}

/* Finalizes a ready order with the CSR, then looks again a few times while
 * the CA issues. *ord becomes the CA's latest view of the order, *retry its
 * Retry-After. */
static p11e_ca_outcome finalize_order(struct p11e_ca *ca, const struct p11e_order *order,
				      const struct p11e_order_ref *ref, cJSON **ord, unsigned *retry,
				      struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	char *fin_url = jstr(*ord, "finalize") ? strdup(jstr(*ord, "finalize")) : NULL;
	char *csr = NULL;
	cJSON *fin = NULL;
	const char *status;
	p11e_ca_outcome outcome;

	if (!order || !order->csr_pem || csr_der_b64(order->csr_pem, &csr) != P11E_CA_OK || !fin_url) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				       "[ca:%s] the order is ready but there is no CSR or "
				       "finalize URL to finish it with",
				       ca->name);
		goto out;
	}
	/* The order URL is in the journal by now (the agent records what
	 * place() returned before polling), so a crash from here on
	 * resumes this order. */
	fault_point("acme-finalizing");
	fin = cJSON_CreateObject();
	cJSON_AddStringToObject(fin, "csr", csr);
	cJSON_Delete(*ord);
	*ord = NULL;
	outcome = post_json(ca,
			    &(struct signed_req){
				    .url = fin_url, .payload = fin, .what = "ACME finalize" },
			    ord, &resp, res);
	*retry = resp.retry_after;
	if (outcome != P11E_CA_OK)
		goto out;
	fault_point("acme-finalized");
	status = jstr(*ord, "status") ? jstr(*ord, "status") : "?";
	/* Issuance usually takes well under a second: look again a few
	 * times before handing a whole poll interval back to the agent. */
	for (unsigned i = 0; i < 8 && strcmp(status, "processing") == 0 && !*retry; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		cJSON_Delete(*ord);
		*ord = NULL;
		outcome = get_object(ca, ref->order_id, "ACME order", ord, retry, res);
		if (outcome != P11E_CA_OK)
			goto out;
		status = jstr(*ord, "status") ? jstr(*ord, "status") : "?";
	}
out:
	free(fin_url);
	free(csr);
	cJSON_Delete(fin);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* What the order's status means for the agent: issued, pending (come back
 * after Retry-After), or refused with the CA's problem. */
static p11e_ca_outcome order_outcome(struct p11e_ca *ca, const cJSON *ord, unsigned retry,
				     struct p11e_ca_result *res)
{
	const char *status = jstr(ord, "status") ? jstr(ord, "status") : "?";
	p11e_ca_outcome outcome;

	if (strcmp(status, "valid") == 0) {
		order_status(ord, res);
		outcome = res->outcome = P11E_CA_ISSUED;
	} else if (strcmp(status, "processing") == 0 || strcmp(status, "pending") == 0 ||
		   strcmp(status, "ready") == 0) {
		order_status(ord, res);
		res->retry_after = retry ? retry : 1;
		outcome = res->outcome = P11E_CA_PENDING;
	} else {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(ord, "error");
		struct acme_problem p;

		if (e && acme_problem_from_json(e, &p)) {
			snprintf(res->ca_code, sizeof(res->ca_code), "%.63s", p.type);
			outcome = p11e_ca_fail(res, P11E_CA_REJECTED, "[ca:%s] the order is %s: %s",
					       ca->name, status, p.detail);
		} else {
			outcome = p11e_ca_fail(res, P11E_CA_REJECTED, "[ca:%s] the order is %s",
					       ca->name, status);
		}
		order_status(ord, res);
	}
	return outcome;
}

/* The order `ref` names, read with the account (which must exist). */
static p11e_ca_outcome read_order(struct p11e_ca *ca, const struct p11e_order_ref *ref, cJSON **ord,
				  unsigned *retry, struct p11e_ca_result *res)
{
	p11e_ca_outcome outcome;

	if ((outcome = ensure_account(ca, false, res)) != P11E_CA_OK) {
		if (outcome == P11E_CA_NOT_FOUND)
			outcome = res->outcome = P11E_CA_MISCONFIGURED;
		return outcome;
	}
	snprintf(res->order_id, sizeof(res->order_id), "%s", ref->order_id);
	return get_object(ca, ref->order_id, "ACME order", ord, retry, res);
}

static p11e_ca_outcome acme_poll(struct p11e_ca *ca, const struct p11e_order *order,
				 const struct p11e_order_ref *ref, struct p11e_ca_result *res)
{
	cJSON *ord = NULL;
	const char *status;
	unsigned retry = 0;
	p11e_ca_outcome outcome;

	outcome = read_order(ca, ref, &ord, &retry, res);
	if (outcome != P11E_CA_OK)
		goto out;
	status = jstr(ord, "status") ? jstr(ord, "status") : "?";
	if (strcmp(status, "pending") == 0) {
		if ((outcome = authorize_order(ca, order, ord, res)) != P11E_CA_OK)
			goto out;
		cJSON_Delete(ord);
		ord = NULL;
		outcome = get_object(ca, ref->order_id, "ACME order", &ord, &retry, res);
		if (outcome != P11E_CA_OK)
			goto out;
		status = jstr(ord, "status") ? jstr(ord, "status") : "?";
	}
	if (strcmp(status, "ready") == 0 &&
	    (outcome = finalize_order(ca, order, ref, &ord, &retry, res)) != P11E_CA_OK)
		goto out;
	outcome = order_outcome(ca, ord, retry, res);
out:
	cJSON_Delete(ord);
	return outcome;
}

static p11e_ca_outcome acme_fetch(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				  struct p11e_ca_result *res)
{
	cJSON *ord = NULL;
	p11e_ca_outcome outcome;

	outcome = read_order(ca, ref, &ord, NULL, res);
	if (outcome != P11E_CA_OK)
		goto out;
	order_status(ord, res);
	if (!jstr(ord, "status") || strcmp(jstr(ord, "status"), "valid") != 0) {
		outcome = p11e_ca_fail(res, P11E_CA_PENDING, "[ca:%s] the order is %s, not valid yet",
				       ca->name, res->status_text);
		goto out;
	}
	outcome = download(ca, ord, &res->chain_pem, res);
	if (outcome == P11E_CA_OK)
		outcome = res->outcome = P11E_CA_ISSUED;
out:
	cJSON_Delete(ord);
	return outcome;
}

static p11e_ca_outcome acme_revoke(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				   p11e_revoke_reason reason, struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	struct acme_problem prob;
	cJSON *ord = NULL, *payload = NULL;
	char *pem = NULL, *b64 = NULL;
	unsigned char *der = NULL;
	BIO *bio = NULL;
	X509 *leaf = NULL;
	int len;
	p11e_ca_outcome outcome;
	ap_rc rc;

	if ((outcome = ensure_account(ca, false, res)) != P11E_CA_OK) {
		if (outcome == P11E_CA_NOT_FOUND)
			outcome = res->outcome = P11E_CA_MISCONFIGURED;
		return outcome;
	}
	/* revokeCert wants the certificate itself: the order leads to it. */
	outcome = get_object(ca, ref->order_id, "ACME order", &ord, NULL, res);
	if (outcome == P11E_CA_OK)
		outcome = download(ca, ord, &pem, res);
	if (outcome == P11E_CA_NOT_FOUND) {
		/* Some servers (pebble) stop serving a certificate once it is
		 * revoked; a valid order whose certificate is gone is taken as
		 * revoked already. */
		outcome = p11e_ca_fail(res, P11E_CA_OK,
				       "already revoked: the CA no longer serves the "
				       "certificate of this order");
		goto out;
	}
	if (outcome != P11E_CA_OK)
		goto out;
	bio = BIO_new_mem_buf(pem, -1);
	leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	len = leaf ? i2d_X509(leaf, &der) : -1;
	b64 = len > 0 ? acme_b64url(der, (size_t)len) : NULL;
	if (!b64) {
		outcome = p11e_ca_fail(res, P11E_CA_UNREACHABLE,
				       "[ca:%s] cannot read the certificate of order %s", ca->name,
				       ref->order_id);
		goto out;
	}
	payload = cJSON_CreateObject();
	cJSON_AddStringToObject(payload, "certificate", b64);
	/* Our reason numbers are RFC 5280's CRLReason codes. */
	cJSON_AddNumberToObject(payload, "reason", (double)reason);
	rc = acme_post(ca,
		       &(struct signed_req){ .url = jstr(ca->dir, "revokeCert"),
					     .payload = payload,
					     .what = "ACME revokeCert" },
		       &resp, &prob, res);
	if (rc == AP_FAILED) {
		outcome = res->outcome;
	} else if (rc == AP_PROBLEM && prob.acme && strcmp(prob.type, "alreadyRevoked") == 0) {
		outcome = p11e_ca_fail(res, P11E_CA_OK, "already revoked (%s)", prob.detail);
	} else if (rc == AP_PROBLEM) {
		outcome = problem_outcome(ca, &prob, &resp, "ACME revokeCert", res);
	} else {
		outcome =
			p11e_ca_fail(res, P11E_CA_OK, "revoked (%s)", p11e_revoke_reason_name(reason));
	}
out:
	if (!jstr(ca->dir, "revokeCert") && outcome == P11E_CA_OK)
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "the directory has no revokeCert");
	OPENSSL_free(der);
	X509_free(leaf);
	BIO_free(bio);
	free(b64);
	free(pem);
	cJSON_Delete(payload);
	cJSON_Delete(ord);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* The URL after rel="next" in the Link headers, or NULL. */
static char *next_link(const struct p11e_http_response *resp)
{
	char *v;

	for (unsigned i = 0; (v = p11e_http_header(resp, "Link", i)); i++) {
		char *lt = strchr(v, '<'), *gt = lt ? strchr(lt, '>') : NULL;

		if (lt && gt && strstr(gt, "rel=\"next\"")) {
			char *url = strndup(lt + 1, (size_t)(gt - lt - 1));

			free(v);
			return url;
		}
		free(v);
	}
	return NULL;
}

/* The account's orders list URL (RFC 8555 §7.1.2.1), NULL when the server
 * offers none. */
static p11e_ca_outcome orders_url(struct p11e_ca *ca, char **url, struct p11e_ca_result *res)
{
	cJSON *acct = NULL;
	p11e_ca_outcome outcome = get_object(ca, ca->account_url, "ACME account", &acct, NULL, res);

	*url = NULL;
	if (outcome == P11E_CA_OK && jstr(acct, "orders"))
		*url = strdup(jstr(acct, "orders"));
	cJSON_Delete(acct);
	return outcome;
}

/* One page of the orders list: its URLs in *list, the next page in *next. */
static p11e_ca_outcome orders_page(struct p11e_ca *ca, const char *url, cJSON **list, char **next,
				   struct p11e_ca_result *res)
{
	struct p11e_http_response resp = { 0 };
	p11e_ca_outcome outcome;

	*next = NULL;
	outcome = post_json(ca, &(struct signed_req){ .url = url, .what = "ACME orders list" }, list,
			    &resp, res);
	if (outcome == P11E_CA_OK)
		*next = next_link(&resp);
	p11e_http_response_clear(&resp);
	return outcome;
}

/* An order placed before a crash was never finalized (finalize comes only
 * after its URL is journalled), so it can only be pending or ready. */
static p11e_ca_outcome acme_reconcile(struct p11e_ca *ca, const struct p11e_order *order,
				      struct p11e_ca_result *res)
{
	struct p11e_strlist names = { 0 };
	char *url = NULL, *next = NULL;
	unsigned checked = 0;
	p11e_ca_outcome outcome = ensure_account(ca, false, res);

	if (outcome == P11E_CA_NOT_FOUND) {
		/* No account: newOrder cannot have been accepted. */
		p11e_ca_fail(res, P11E_CA_NOT_FOUND, "no ACME account, so no order");
		return P11E_CA_NOT_FOUND;
	}
	if (outcome != P11E_CA_OK)
		return outcome;
	if (names_of(order, &names) != 0) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED, "[cert:%s] has no names",
				       order->name);
		goto out;
	}
	outcome = orders_url(ca, &url, res);
	if (outcome != P11E_CA_OK)
		goto out;
	if (!url) {
		p11e_warn("[ca:%s] the ACME server lists no orders of the account; an order lost in "
			  "a crash (never finalized, so never a certificate) expires on its own",
			  ca->name);
		outcome = p11e_ca_fail(res, P11E_CA_NOT_FOUND,
				       "the CA offers no orders list; no finalized order can exist");
		goto out;
	}
	for (unsigned page = 0; url && page < MAX_ORDER_PAGES; page++) {
		cJSON *list = NULL;
		const cJSON *item;

		outcome = orders_page(ca, url, &list, &next, res);
		if (outcome != P11E_CA_OK)
			goto out;
		cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive(list, "orders")) {
			const char *ou = cJSON_GetStringValue(item);
			cJSON *ord = NULL;
			const char *st;

			if (!ou ||
			    (order->previous.order_id && strcmp(ou, order->previous.order_id) == 0) ||
			    ++checked > MAX_ORDERS_CHECKED)
				continue;
			outcome = get_object(ca, ou, "ACME order", &ord, NULL, res);
			if (outcome != P11E_CA_OK) {
				cJSON_Delete(ord);
				cJSON_Delete(list);
				goto out;
			}
			st = jstr(ord, "status") ? jstr(ord, "status") : "";
			if ((strcmp(st, "pending") == 0 || strcmp(st, "ready") == 0) &&
			    same_names(ord, &names) && strlen(ou) < sizeof(res->order_id)) {
				snprintf(res->order_id, sizeof(res->order_id), "%s", ou);
				order_status(ord, res);
				outcome = res->outcome = P11E_CA_PENDING;
				cJSON_Delete(ord);
				cJSON_Delete(list);
				goto out;
			}
			cJSON_Delete(ord);
		}
		cJSON_Delete(list);
		free(url);
		url = next;
		next = NULL;
	}
	outcome = p11e_ca_fail(res, P11E_CA_NOT_FOUND, "no unfinished order for these names");
out:
	free(url);
	free(next);
	p11e_strlist_free(&names);
	return outcome;
}

static p11e_ca_outcome acme_list_orders(struct p11e_ca *ca, time_t since, unsigned page,
					struct p11e_order_page *out, struct p11e_ca_result *res)
{
	char *url = NULL, *next = NULL;
	cJSON *list = NULL;
	const cJSON *item;
	p11e_ca_outcome outcome = ensure_account(ca, false, res);

	(void)since; /* ACME orders carry no creation date */
	memset(out, 0, sizeof(*out));
	out->page = page;
	if (outcome == P11E_CA_NOT_FOUND)
		return p11e_ca_fail(res, P11E_CA_OK, "no ACME account yet");
	if (outcome != P11E_CA_OK)
		return outcome;
	if ((outcome = orders_url(ca, &url, res)) != P11E_CA_OK)
		goto out;
	if (!url) {
		outcome = p11e_ca_fail(res, P11E_CA_MISCONFIGURED,
				       "[ca:%s] this ACME server does not list an account's orders",
				       ca->name);
		goto out;
	}
	for (unsigned p = 1; p <= page; p++) {
		cJSON_Delete(list);
		list = NULL;
		if ((outcome = orders_page(ca, url, &list, &next, res)) != P11E_CA_OK)
			goto out;
		free(url);
		url = next;
		next = NULL;
		if (!url && p < page)
			break;
	}
	out->pages = url ? page + 1 : page;
	out->rows =
		calloc((size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(list, "orders")) + 1,
		       sizeof(*out->rows));
	if (!out->rows) {
		outcome = p11e_ca_fail(res, P11E_CA_UNREACHABLE, "out of memory");
		goto out;
	}
	cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive(list, "orders")) {
		struct p11e_order_row *r = &out->rows[out->n];
		const cJSON *ids;
		cJSON *ord = NULL;

		if (!cJSON_GetStringValue(item))
			continue;
		snprintf(r->order_id, sizeof(r->order_id), "%s", cJSON_GetStringValue(item));
		if (get_object(ca, r->order_id, "ACME order", &ord, NULL, res) == P11E_CA_OK) {
			ids = cJSON_GetObjectItemCaseSensitive(ord, "identifiers");
			snprintf(r->status, sizeof(r->status), "%s",
				 jstr(ord, "status") ? jstr(ord, "status") : "");
			snprintf(r->domain, sizeof(r->domain), "%s%s",
				 jstr(cJSON_GetArrayItem(ids, 0), "value")
					 ? jstr(cJSON_GetArrayItem(ids, 0), "value")
					 : "",
				 cJSON_GetArraySize(ids) > 1 ? " …" : "");
			snprintf(r->expires, sizeof(r->expires), "%s",
				 jstr(ord, "expires") ? jstr(ord, "expires") : "");
			snprintf(r->product, sizeof(r->product), "acme");
		}
		cJSON_Delete(ord);
		p11e_ca_result_clear(res);
		out->n++;
	}
	outcome = res->outcome = P11E_CA_OK;
out:
	cJSON_Delete(list);
	free(url);
	free(next);
	return outcome;
}

const struct p11e_ca_ops p11e_acme_ops = {
	.type = "acme",
	.ca_keys = ca_keys,
	.cert_keys = cert_keys,
	.title = "ACME",
	.open = acme_open,
	.close = acme_close,
	.check = acme_check,
	.products = acme_products,
	.place = acme_place,
	.reconcile = acme_reconcile,
	.poll = acme_poll,
	.fetch = acme_fetch,
	.revoke = acme_revoke,
	.list_orders = acme_list_orders,
	.set_state_dir = acme_set_state_dir,
};
