/* SPDX-License-Identifier: Apache-2.0 */
/* CSR construction: subject, SANs, extension request, signature by a key
 * that stays in its token (the signer below does the private-key part). */
#ifndef P11E_CSR_H
#define P11E_CSR_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "err.h"
#include "policy.h"
#include "util.h"

/* A key that signs without showing its private half, one of two kinds:
 * - OpenSSL holds the key (a provider's, such as the TPM's): `priv` is
 *   set, and OpenSSL signs with it through the provider (the CSR with
 *   EVP_DigestSignInit_ex + X509_REQ_sign_ctx, in `libctx` with `propq`);
 * - a PKCS#11 token: `sign` gets the digest of the data to sign (made
 *   with spec->digest) and returns the signature in X.509 encoding (DER
 *   ECDSA-Sig-Value or PKCS#1 v1.5), which the caller frees with
 *   OPENSSL_free; `sign_data` (below) lets the token hash instead.
 * A signer with `priv` may have `sign` too, for signatures other than a
 * CSR's (an ACME request). */
struct p11e_signer {
	EVP_PKEY *pub; /* borrowed: the public half */
	const struct p11e_key_spec *spec;
	p11e_status (*sign)(void *ctx, const unsigned char *digest, size_t digest_len,
			    unsigned char **sig, size_t *sig_len, struct p11e_err *err);
	void *ctx;
	/* Optional; when set it is used instead of `sign`: it gets the data
	 * itself and the token hashes it with spec->digest (a hash-and-sign
	 * mechanism such as CKM_SHA256_RSA_PKCS). tpm2-pkcs11 needs this for
	 * RSA: its CKM_RSA_PKCS is a raw RSA decryption, which a sign-only key
	 * refuses. Same output as `sign`. */
	p11e_status (*sign_data)(void *ctx, const unsigned char *data, size_t data_len,
				 unsigned char **sig, size_t *sig_len, struct p11e_err *err);
	EVP_PKEY *priv;       /* borrowed: OpenSSL's handle of the key, or NULL */
	OSSL_LIB_CTX *libctx; /* where priv lives (NULL: the default) */
	const char *propq;    /* properties for fetching the signature, or NULL */
};

struct p11e_csr_request {
	const char *subject;            /* RFC 4514, e.g. "CN=www.example.com,O=Example,C=US" */
	const struct p11e_strlist *dns; /* each may be NULL */
	const struct p11e_strlist *ip;
	const struct p11e_strlist *email;
	const struct p11e_strlist *uri;
	bool client_auth; /* add clientAuth to extKeyUsage */
};

/* RFC 4514 string → X509_NAME. Errors name the 1-based position. */
p11e_status p11e_subject_parse(const char *text, X509_NAME **out, struct p11e_err *err);

/* SAN checks, each naming the bad value. */
p11e_status p11e_san_check_dns(const char *name, struct p11e_err *err);
p11e_status p11e_san_check_ip(const char *ip, struct p11e_err *err);
p11e_status p11e_san_check_email(const char *email, struct p11e_err *err);
p11e_status p11e_san_check_uri(const char *uri, struct p11e_err *err);
/* All of the request's SANs and its subject, before any token call. */
p11e_status p11e_csr_request_check(const struct p11e_csr_request *req, struct p11e_err *err);

/* Builds the CSR, signs it with the signer and verifies the signature with
 * signer->pub before returning it. */
p11e_status p11e_csr_build(const struct p11e_csr_request *req, const struct p11e_signer *signer,
			   X509_REQ **out, struct p11e_err *err);

/* PEM text of a CSR (free with free()). */
char *p11e_csr_to_pem(X509_REQ *req);

#endif
