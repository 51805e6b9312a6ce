/* SPDX-License-Identifier: Apache-2.0 */
/* What the token tests share: tests/unit/test_token.c (a real SoftHSM2
 * token) and tests/mockp11/test_mock.c (the fault-injecting mock module). */
#ifndef P11E_TEST_TOKENKIT_H
#define P11E_TEST_TOKENKIT_H

#include <criterion/criterion.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "policy.h"

/* The key type `name` of the policy (ec-p256, rsa-2048, …). */
static inline const struct p11e_key_spec *spec(const char *name)
{
	const struct p11e_key_spec *s;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_policy_parse(name, &s, &err), P11E_OK);
	return s;
}

/* A certificate for `pub` (CN=`cn`, `serial`), signed by a throw-away CA. */
static inline X509 *issue(EVP_PKEY *pub, const char *cn, long serial)
{
	EVP_PKEY *ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *cert = X509_new();
	X509_NAME *name = X509_NAME_new();

	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_version(cert, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
	X509_set_subject_name(cert, name);
	X509_set_issuer_name(cert, name);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, pub);
	cr_assert(X509_sign(cert, ca_key, EVP_sha256()) > 0);
	X509_NAME_free(name);
	EVP_PKEY_free(ca_key);
	return cert;
}

#endif
