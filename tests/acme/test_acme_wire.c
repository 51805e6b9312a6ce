/* SPDX-License-Identifier: Apache-2.0 */
/* The pure ACME wire functions: base64url, RFC 7638 thumbprints, ECDSA
 * signature form, EAB, key authorisations, problem documents. */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "acme_wire.h"

Test(acme_wire, b64url_round_trip)
{
	const unsigned char in[] = { 0xfb, 0xff, 0xbf, 0x00, 0x01 };
	unsigned char *out = NULL;
	size_t len = 0;
	char *b64 = acme_b64url(in, sizeof(in));

	cr_assert_str_eq(b64, "-_-_AAE"); /* URL alphabet, no padding */
	cr_assert_eq(acme_b64url_decode(b64, &out, &len), 0);
	cr_assert_eq(len, sizeof(in));
	cr_assert_eq(memcmp(out, in, len), 0);
	free(out);
	free(b64);
	cr_assert_neq(acme_b64url_decode("ab+/", &out, &len), 0, "standard alphabet accepted");
	cr_assert_neq(acme_b64url_decode("a", &out, &len), 0, "impossible length accepted");
	cr_assert_eq(acme_b64url_decode("YQ==", &out, &len), 0);
	cr_assert_eq(len, 1);
	cr_assert_eq(out[0], 'a');
	free(out);
}

/* RFC 7638 §3.1: the example RSA key and its thumbprint. */
Test(acme_wire, rfc7638_thumbprint)
{
	static const char n_b64[] =
		"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
		"L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
		"QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
		"pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
		"Cur-kEgU8awapJzKnqDKgw";
	unsigned char *n = NULL, e[] = { 1, 0, 1 };
	size_t n_len = 0;
	char tp[64];
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	BIGNUM *bn_n, *bn_e;
	OSSL_PARAM *params;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *pkey = NULL;

	cr_assert_eq(acme_b64url_decode(n_b64, &n, &n_len), 0);
	bn_n = BN_bin2bn(n, (int)n_len, NULL);
	bn_e = BN_bin2bn(e, sizeof(e), NULL);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n);
	OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e);
	params = OSSL_PARAM_BLD_to_param(bld);
	cr_assert(EVP_PKEY_fromdata_init(ctx) == 1);
	cr_assert(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1);
	cr_assert_eq(acme_jwk_thumbprint(pkey, tp), 0);
	cr_assert_str_eq(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	free(n);
}

Test(acme_wire, ec_jwk_and_signature_form)
{
	EVP_PKEY *key = EVP_EC_gen("P-384");
	cJSON *jwk = acme_jwk(key);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[256], *raw = NULL, *der2 = NULL;
	size_t der_len = sizeof(der), raw_len = 0;
	ECDSA_SIG *sig;
	BIGNUM *r, *s;
	int len2;

	cr_assert_not_null(jwk);
	cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(jwk, "crv")), "P-384");
	cr_assert_eq(strlen(cJSON_GetStringValue(cJSON_GetObjectItem(jwk, "x"))), 64); /* 48 bytes */
	cr_assert(EVP_DigestSignInit(md, NULL, EVP_sha384(), NULL, key) == 1);
	cr_assert(EVP_DigestSign(md, der, &der_len, (const unsigned char *)"abc", 3) == 1);
	cr_assert_eq(acme_ecdsa_der_to_raw(der, der_len, 48, &raw, &raw_len), 0);
	cr_assert_eq(raw_len, 96);
	/* r||s back to DER is the signature we started from. */
	sig = ECDSA_SIG_new();
	r = BN_bin2bn(raw, 48, NULL);
	s = BN_bin2bn(raw + 48, 48, NULL);
	ECDSA_SIG_set0(sig, r, s);
	len2 = i2d_ECDSA_SIG(sig, &der2);
	cr_assert_eq((size_t)len2, der_len);
	cr_assert_eq(memcmp(der2, der, der_len), 0);
	free(raw);
	cr_assert_neq(acme_ecdsa_der_to_raw(der, der_len - 1, 48, &raw, &raw_len), 0,
		      "a cut signature was accepted");
	OPENSSL_free(der2);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	cJSON_Delete(jwk);
	EVP_PKEY_free(key);
	cr_assert_str_eq(acme_jws_alg(&(struct p11e_key_spec){ .alg = P11E_ALG_EC, .bits = 384 }),
			 "ES384");
	cr_assert_str_eq(acme_jws_alg(&(struct p11e_key_spec){ .alg = P11E_ALG_RSA, .bits = 4096 }),
			 "RS256");
}

Test(acme_wire, eab_is_hs256_over_the_jwk)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	const unsigned char mac_key[] = "0123456789abcdef0123456789abcdef";
	cJSON *eab = acme_eab("kid-1", mac_key, 32, "https://ca.example/new-acct", key);
	const char *prot, *payload, *sig;
	char input[2048], *sig2;
	unsigned char mac[32], *hdr = NULL;
	unsigned mac_len = 0;
	size_t hdr_len = 0;

	cr_assert_not_null(eab);
	prot = cJSON_GetStringValue(cJSON_GetObjectItem(eab, "protected"));
	payload = cJSON_GetStringValue(cJSON_GetObjectItem(eab, "payload"));
	sig = cJSON_GetStringValue(cJSON_GetObjectItem(eab, "signature"));
	snprintf(input, sizeof(input), "%s.%s", prot, payload);
	HMAC(EVP_sha256(), mac_key, 32, (unsigned char *)input, strlen(input), mac, &mac_len);
	sig2 = acme_b64url(mac, mac_len);
	cr_assert_str_eq(sig, sig2);
	cr_assert_eq(acme_b64url_decode(prot, &hdr, &hdr_len), 0);
	cr_assert(strstr((char *)hdr, "\"alg\":\"HS256\"") && strstr((char *)hdr, "\"kid\":\"kid-1\""));
	cr_assert(!strstr((char *)hdr, "nonce"), "EAB carries no nonce");
	free(hdr);
	free(sig2);
	cJSON_Delete(eab);
	EVP_PKEY_free(key);
}

Test(acme_wire, key_authorization)
{
	char ka[256], v[64];

	cr_assert_eq(acme_key_authorization("tok-EN_1", "THUMB", ka, sizeof(ka)), 0);
	cr_assert_str_eq(ka, "tok-EN_1.THUMB");
	cr_assert_neq(acme_key_authorization("../etc/passwd", "T", ka, sizeof(ka)), 0,
		      "a token that leaves the webroot was accepted");
	cr_assert_neq(acme_key_authorization("", "T", ka, sizeof(ka)), 0);
	cr_assert_eq(acme_dns01_value(ka, v), 0);
	cr_assert_eq(strlen(v), 43);
}

Test(acme_wire, problems)
{
	struct acme_problem p;

	cr_assert(acme_problem_parse(
		"{\"type\":\"urn:ietf:params:acme:error:rejectedIdentifier\",\"detail\":\"no\","
		"\"subproblems\":[{\"type\":\"urn:ietf:params:acme:error:caa\",\"detail\":\"CAA forbids\","
		"\"identifier\":{\"type\":\"dns\",\"value\":\"a.example\"}}]}",
		&p));
	cr_assert(p.acme);
	cr_assert_str_eq(p.type, "rejectedIdentifier");
	cr_assert_str_eq(p.detail, "no; a.example: CAA forbids");
	cr_assert(acme_problem_parse("{\"type\":\"about:blank\"}", &p));
	cr_assert(!p.acme);
	cr_assert(!acme_problem_parse("{\"status\":\"valid\"}", &p));
	cr_assert(!acme_problem_parse("not json", &p));
	cr_assert(!acme_problem_parse(NULL, &p));
}

/* RFC 9773 §4.1's example: AKI keyIdentifier 69:88:5B:…:D4, serial 0x0087654321. */
Test(acme_wire, ari_cert_id)
{
	static const unsigned char kid[] = { 0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40,
					     0x41, 0xE1, 0xB3, 0x7B, 0x84, 0x7B, 0xA0,
					     0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4 };
	static const unsigned char serial[] = { 0x87, 0x65, 0x43, 0x21 };
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	AUTHORITY_KEYID *akid = AUTHORITY_KEYID_new();
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem, *id;
	long len;

	akid->keyid = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(akid->keyid, kid, sizeof(kid));
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, 0);
	cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
	PEM_write_bio_X509(bio, x);
	len = BIO_get_mem_data(bio, &pem);
	pem = strndup(pem, (size_t)len);
	id = acme_ari_cert_id(pem);
	cr_assert_str_eq(id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	cr_assert_null(acme_ari_cert_id("not a certificate"));
	free(id);
	free(pem);
	BIO_free(bio);
	BN_free(bn);
	AUTHORITY_KEYID_free(akid);
	X509_free(x);
	EVP_PKEY_free(key);
}
