/* SPDX-License-Identifier: Apache-2.0 */
#include "acme_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

/* ---- base64url (OpenSSL's base64, then the URL-safe alphabet) ---------------- */

char *acme_b64url(const unsigned char *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n;

	if (!out)
		return NULL;
	n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	return out;
}

int acme_b64url_decode(const char *in, unsigned char **out, size_t *out_len)
{
	size_t len = strlen(in), pad;
	char *std;
	int n;

	while (len > 0 && in[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return -1;
	pad = (4 - len % 4) % 4;
	std = malloc(len + pad + 1);
	*out = malloc(3 * (len + pad) / 4 + 1);
	if (!std || !*out) {
		free(std);
		free(*out);
		*out = NULL;
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '+' || c == '/') /* not base64url */
			goto bad;
		std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	memset(std + len, '=', pad);
	std[len + pad] = '\0';
	n = EVP_DecodeBlock(*out, (unsigned char *)std, (int)(len + pad));
	if (n < 0)
		goto bad;
	*out_len = (size_t)n - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	free(std);
	return 0;
bad:
	free(std);
	free(*out);
	*out = NULL;
	return -1;
}

/* ---- keys ------------------------------------------------------------------- */

const char *acme_jws_alg(const struct p11e_key_spec *spec)
{
	if (spec->alg == P11E_ALG_RSA)
		return "RS256";
	if (spec->bits == 256)
		return "ES256";
	if (spec->bits == 384)
		return "ES384";
	return NULL;
}

static char *bn_b64(const BIGNUM *bn, size_t pad)
{
	size_t len = pad ? pad : (size_t)BN_num_bytes(bn);
	unsigned char *buf = malloc(len ? len : 1);
	char *out = NULL;

	if (buf && BN_bn2binpad(bn, buf, (int)len) >= 0)
		out = acme_b64url(buf, len);
	free(buf);
	return out;
}

cJSON *acme_jwk(EVP_PKEY *pub)
{
	cJSON *jwk = cJSON_CreateObject();
	BIGNUM *a = NULL, *b = NULL;
	char *x = NULL, *y = NULL;
	bool ok = false;

	if (!jwk)
		return NULL;
	if (EVP_PKEY_is_a(pub, "RSA")) {
		if (!EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &a) ||
		    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &b))
			goto out;
		x = bn_b64(a, 0);
		y = bn_b64(b, 0);
		ok = x && y && cJSON_AddStringToObject(jwk, "e", x) &&
		     cJSON_AddStringToObject(jwk, "kty", "RSA") &&
		     cJSON_AddStringToObject(jwk, "n", y);
	} else if (EVP_PKEY_is_a(pub, "EC")) {
		char group[32] = "";
		size_t coord = (size_t)(EVP_PKEY_get_bits(pub) + 7) / 8;

		if (!EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group,
						    sizeof(group), NULL) ||
		    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
		    !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_EC_PUB_Y, &b))
			goto out;
		x = bn_b64(a, coord);
		y = bn_b64(b, coord);
		ok = x && y &&
		     cJSON_AddStringToObject(jwk, "crv",
					     strcmp(group, "prime256v1") == 0  ? "P-256"
					     : strcmp(group, "secp384r1") == 0 ? "P-384"
									       : "?") &&
		     cJSON_AddStringToObject(jwk, "kty", "EC") &&
		     cJSON_AddStringToObject(jwk, "x", x) && cJSON_AddStringToObject(jwk, "y", y);
		ok = ok && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(jwk, "crv")), "?") != 0;
	}
out:
	BN_free(a);
	BN_free(b);
	free(x);
	free(y);
	if (!ok) {
		cJSON_Delete(jwk);
		return NULL;
	}
	return jwk;
}

int acme_jwk_thumbprint(EVP_PKEY *pub, char out[64])
{
	/* The members are added in lexicographic order and printed without
	 * white space: exactly RFC 7638's input. */
	cJSON *jwk = acme_jwk(pub);
	char *text = jwk ? cJSON_PrintUnformatted(jwk) : NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	char *b64 = NULL;
	int rc = -1;

	if (text && EVP_Digest(text, strlen(text), md, &md_len, EVP_sha256(), NULL) == 1 &&
	    (b64 = acme_b64url(md, md_len)) && strlen(b64) < 64) {
		strcpy(out, b64);
		rc = 0;
	}
	free(b64);
	free(text);
	cJSON_Delete(jwk);
	return rc;
}

int acme_ecdsa_der_to_raw(const unsigned char *der, size_t der_len, size_t coord, unsigned char **out,
			  size_t *out_len)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	const BIGNUM *r, *s;
	int rc = -1;

	*out = NULL;
	if (!sig || p != der + der_len)
		goto out;
	ECDSA_SIG_get0(sig, &r, &s);
	*out = malloc(2 * coord);
	if (!*out || BN_bn2binpad(r, *out, (int)coord) < 0 ||
	    BN_bn2binpad(s, *out + coord, (int)coord) < 0) {
		free(*out);
		*out = NULL;
		goto out;
	}
	*out_len = 2 * coord;
	rc = 0;
out:
	ECDSA_SIG_free(sig);
	return rc;
}

/* ---- JWS -------------------------------------------------------------------- */

cJSON *acme_protected(const char *alg, const char *nonce, const char *url, const char *kid,
		      EVP_PKEY *jwk_of)
{
	cJSON *h = cJSON_CreateObject();

	if (!h || !cJSON_AddStringToObject(h, "alg", alg))
		goto bad;
	if (kid) {
		if (!cJSON_AddStringToObject(h, "kid", kid))
			goto bad;
	} else {
		cJSON *jwk = acme_jwk(jwk_of);

		if (!jwk)
			goto bad;
		cJSON_AddItemToObject(h, "jwk", jwk);
	}
	if (nonce && !cJSON_AddStringToObject(h, "nonce", nonce))
		goto bad;
	if (!cJSON_AddStringToObject(h, "url", url))
		goto bad;
	return h;
bad:
	cJSON_Delete(h);
	return NULL;
}

static char *json_b64(const cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	char *b64 = text ? acme_b64url((const unsigned char *)text, strlen(text)) : NULL;

	free(text);
	return b64;
}

char *acme_signing_input(const cJSON *protected_hdr, const cJSON *payload, char **protected_b64,
			 char **payload_b64)
{
	char *input = NULL;

	*protected_b64 = json_b64(protected_hdr);
	*payload_b64 = payload ? json_b64(payload) : strdup("");
	if (*protected_b64 && *payload_b64 &&
	    (input = malloc(strlen(*protected_b64) + strlen(*payload_b64) + 2)))
		sprintf(input, "%s.%s", *protected_b64, *payload_b64);
	return input;
}

char *acme_jws_text(const char *protected_b64, const char *payload_b64, const unsigned char *sig,
		    size_t sig_len)
{
	cJSON *jws = cJSON_CreateObject();
	char *sig_b64 = acme_b64url(sig, sig_len), *text = NULL;

	if (jws && sig_b64 && cJSON_AddStringToObject(jws, "protected", protected_b64) &&
	    cJSON_AddStringToObject(jws, "payload", payload_b64) &&
	    cJSON_AddStringToObject(jws, "signature", sig_b64))
		text = cJSON_PrintUnformatted(jws);
	free(sig_b64);
	cJSON_Delete(jws);
	return text;
}

cJSON *acme_eab(const char *kid, const unsigned char *mac_key, size_t mac_key_len, const char *url,
		EVP_PKEY *account_pub)
{
	cJSON *hdr = cJSON_CreateObject(), *jwk = acme_jwk(account_pub), *eab = NULL;
	char *prot = NULL, *payload = NULL, *input = NULL, *sig_b64 = NULL;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;

	if (!hdr || !jwk || !cJSON_AddStringToObject(hdr, "alg", "HS256") ||
	    !cJSON_AddStringToObject(hdr, "kid", kid) || !cJSON_AddStringToObject(hdr, "url", url))
		goto out;
	input = acme_signing_input(hdr, jwk, &prot, &payload);
	if (!input || !HMAC(EVP_sha256(), mac_key, (int)mac_key_len, (unsigned char *)input,
			    strlen(input), mac, &mac_len))
		goto out;
	sig_b64 = acme_b64url(mac, mac_len);
	eab = cJSON_CreateObject();
	if (!sig_b64 || !eab || !cJSON_AddStringToObject(eab, "protected", prot) ||
	    !cJSON_AddStringToObject(eab, "payload", payload) ||
	    !cJSON_AddStringToObject(eab, "signature", sig_b64)) {
		cJSON_Delete(eab);
		eab = NULL;
	}
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	cJSON_Delete(hdr);
	cJSON_Delete(jwk);
	free(prot);
	free(payload);
	free(input);
	free(sig_b64);
	return eab;
}

int acme_key_authorization(const char *token, const char *thumbprint, char *out, size_t size)
{
	int n;

	if (!token || !*token || strchr(token, '/') || strchr(token, '.'))
		return -1; /* a token names a file in the webroot: base64url only */
	for (const char *p = token; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return -1;
	n = snprintf(out, size, "%s.%s", token, thumbprint);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int acme_dns01_value(const char *key_authorization, char out[64])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	char *b64;

	if (EVP_Digest(key_authorization, strlen(key_authorization), md, &md_len, EVP_sha256(),
		       NULL) != 1 ||
	    !(b64 = acme_b64url(md, md_len)))
		return -1;
	snprintf(out, 64, "%s", b64);
	free(b64);
	return 0;
}

/* ---- problems --------------------------------------------------------------- */

#define ACME_NS "urn:ietf:params:acme:error:"

bool acme_problem_from_json(const cJSON *obj, struct acme_problem *p)
{
	const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "type"));
	const char *detail = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(obj, "detail"));
	const cJSON *subs = cJSON_GetObjectItemCaseSensitive(obj, "subproblems"), *sub;
	size_t len;

	memset(p, 0, sizeof(*p));
	if (!type)
		return false;
	p->acme = strncmp(type, ACME_NS, strlen(ACME_NS)) == 0;
	snprintf(p->type, sizeof(p->type), "%s", p->acme ? type + strlen(ACME_NS) : type);
	snprintf(p->detail, sizeof(p->detail), "%s", detail ? detail : "");
	cJSON_ArrayForEach (sub, subs) {
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(sub, "identifier");
		const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(id, "value"));
		const char *d = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sub, "detail"));

		len = strlen(p->detail);
		snprintf(p->detail + len, sizeof(p->detail) - len, "; %s: %s", v ? v : "?",
			 d ? d : "?");
	}
	return true;
}

bool acme_problem_parse(const char *body, struct acme_problem *p)
{
	cJSON *doc = body ? cJSON_Parse(body) : NULL;
	bool ok = doc && acme_problem_from_json(doc, p);

	cJSON_Delete(doc);
	return ok;
}

/* ---- ARI -------------------------------------------------------------------- */

char *acme_ari_cert_id(const char *leaf_pem)
{
	BIO *bio = BIO_new_mem_buf(leaf_pem, -1);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	const ASN1_OCTET_STRING *akid = x ? X509_get0_authority_key_id(x) : NULL;
	const ASN1_INTEGER *serial = x ? X509_get0_serialNumber(x) : NULL;
	unsigned char *der = NULL;
	char *a = NULL, *s = NULL, *out = NULL;
	int len;

	if (!akid || !serial)
		goto out;
	len = i2d_ASN1_INTEGER(serial, &der);
	/* Skip the INTEGER's tag and (short) length: the content octets. */
	if (len < 3 || der[1] >= 0x80)
		goto out;
	a = acme_b64url(ASN1_STRING_get0_data(akid), (size_t)ASN1_STRING_length(akid));
	s = acme_b64url(der + 2, (size_t)len - 2);
	if (a && s && (out = malloc(strlen(a) + strlen(s) + 2)))
		sprintf(out, "%s.%s", a, s);
out:
	OPENSSL_free(der);
	free(a);
	free(s);
	X509_free(x);
	BIO_free(bio);
	return out;
}
