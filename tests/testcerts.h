/* SPDX-License-Identifier: Apache-2.0 */
/* Small certificates for Criterion tests of chains: an EC key, and a
 * certificate for a key under a name, signed by an issuer's key under the
 * issuer's name (no key identifiers, so that only names and signatures
 * link them). Include after criterion.h. */
#ifndef P11E_TESTCERTS_H
#define P11E_TESTCERTS_H

#include <stdbool.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

static EVP_PKEY *ec_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	cr_assert_not_null(k);
	return k;
}

static X509 *make_cert(const char *cn, EVP_PKEY *key, const char *issuer_cn, EVP_PKEY *issuer_key,
		       bool ca, long serial)
{
	X509 *x = X509_new();
	X509_NAME *subj = X509_NAME_new(), *iss = X509_NAME_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_NAME_add_entry_by_txt(iss, "CN", MBSTRING_ASC, (const unsigned char *)issuer_cn, -1, -1,
				   0);
	X509_set_subject_name(x, subj);
	X509_set_issuer_name(x, iss);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400 * 30);
	X509_set_pubkey(x, key);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	cr_assert(X509_sign(x, issuer_key, EVP_sha256()) > 0);
	X509_NAME_free(subj);
	X509_NAME_free(iss);
	return x;
}

#endif
