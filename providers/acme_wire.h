/* SPDX-License-Identifier: Apache-2.0 */
/* ACME (RFC 8555) on the wire: base64url, JWK and its thumbprint, the JWS
 * flattened JSON serialisation, EAB, key authorisations and problem
 * documents. Pure functions (no network, no token), so the unit tests and
 * the fuzz replay can feed them anything. Design notes: docs/providers-acme.md. */
#ifndef P11E_ACME_WIRE_H
#define P11E_ACME_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "policy.h"

/* base64url without padding; malloc'd, NULL on out of memory. */
char *acme_b64url(const unsigned char *in, size_t len);
/* Decodes base64url (padding optional); malloc'd into *out. 0 on success. */
int acme_b64url_decode(const char *in, unsigned char **out, size_t *out_len);

/* The JWS "alg" of an account key: ES256, ES384 or RS256; NULL otherwise. */
const char *acme_jws_alg(const struct p11e_key_spec *spec);

/* The public JWK of `pub` (EC P-256/P-384 or RSA) as a cJSON object; NULL
 * when the key is of another kind. */
cJSON *acme_jwk(EVP_PKEY *pub);
/* RFC 7638 thumbprint of `pub`, base64url (43 characters + NUL). 0 on success. */
int acme_jwk_thumbprint(EVP_PKEY *pub, char out[64]);

/* DER ECDSA-Sig-Value → r||s, each padded to `coord` bytes (JWS form).
 * malloc'd into *out; 0 on success. */
int acme_ecdsa_der_to_raw(const unsigned char *der, size_t der_len, size_t coord, unsigned char **out,
			  size_t *out_len);

/* The protected header: alg, nonce, url and either jwk (kid NULL) or kid.
 * nonce may be NULL (EAB's inner JWS has none). */
cJSON *acme_protected(const char *alg, const char *nonce, const char *url, const char *kid,
		      EVP_PKEY *jwk_of);

/* The signing input "b64(protected).b64(payload)" (payload NULL: POST-as-GET,
 * an empty payload). malloc'd; *protected_b64 / *payload_b64 get the parts. */
char *acme_signing_input(const cJSON *protected_hdr, const cJSON *payload, char **protected_b64,
			 char **payload_b64);

/* {"protected":…,"payload":…,"signature":…} as text; malloc'd. */
char *acme_jws_text(const char *protected_b64, const char *payload_b64, const unsigned char *sig,
		    size_t sig_len);

/* The externalAccountBinding object (RFC 8555 §7.3.4): an HS256 JWS over
 * the account key's JWK, with kid and url (the newAccount URL). NULL on
 * failure. */
cJSON *acme_eab(const char *kid, const unsigned char *mac_key, size_t mac_key_len, const char *url,
		EVP_PKEY *account_pub);

/* Key authorisation "token.thumbprint" into out (size ≥ strlen(token)+65);
 * the dns-01 TXT value is base64url(SHA-256(key authorisation)). 0 on success. */
int acme_key_authorization(const char *token, const char *thumbprint, char *out, size_t size);
int acme_dns01_value(const char *key_authorization, char out[64]);

/* A problem document (RFC 7807 + RFC 8555 §6.7). */
struct acme_problem {
	char type[128];   /* the short name after urn:ietf:params:acme:error:, or the whole type */
	char detail[768]; /* detail, with subproblems' identifiers and details appended */
	bool acme;        /* type is in the ACME namespace */
};

/* Parses a problem document; false when `body` is not one. */
bool acme_problem_parse(const char *body, struct acme_problem *p);
/* The same from an already parsed object (an authorisation's challenge error). */
bool acme_problem_from_json(const cJSON *obj, struct acme_problem *p);

/* The ARI certificate identifier (RFC 9773): base64url(AKI keyIdentifier)
 * "." base64url(serial DER content). malloc'd; NULL when the certificate
 * has no AKI. */
char *acme_ari_cert_id(const char *leaf_pem);

#endif
