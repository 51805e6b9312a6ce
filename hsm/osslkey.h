/* SPDX-License-Identifier: Apache-2.0 */
/* Keys made and used through an OpenSSL 3 provider (the TPM's: tpm2 from
 * tpm2-openssl), in a library context of our own. The private key exists
 * only as the provider's wrapped-key file ("TSS2 PRIVATE KEY" PEM), which
 * the TPM alone can use.
 *
 * Key URI: provider:NAME:PATH[?tcti=TCTI]
 *   NAME  the provider; only "tpm2" is supported
 *   PATH  absolute path of the key as servers should name it, e.g.
 *         /var/lib/p11enroll/keys/web.tss2.pem
 *   TCTI  how the provider reaches the TPM (TPM2OPENSSL_TCTI), e.g.
 *         device:/dev/tpmrm0 or swtpm:path=/run/swtpm.sock; without it the
 *         provider's own default (its environment/openssl.cnf) applies.
 *
 * Files: every key lives in PATH.<ID> (ID: 32 hex digits, the first 16
 * bytes of the SHA-256 of its SubjectPublicKeyInfo), mode 0600; PATH is a
 * symbolic link to the key in use (relative, in the same folder), switched
 * atomically. A regular file at PATH (a key made by hand) is accepted and
 * kept as PATH.<ID> when the link first replaces it. */
#ifndef P11E_OSSLKEY_H
#define P11E_OSSLKEY_H

#include <stdbool.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "csr.h"
#include "err.h"
#include "policy.h"

#define P11E_OSSLKEY_ID_LEN 16

struct p11e_osslkey_uri {
	char *provider; /* "tpm2" */
	char *path;     /* absolute */
	char *tcti;     /* NULL: the provider's default */
};

/* True when `text` is a provider: key URI (not necessarily a valid one). */
bool p11e_osslkey_uri_is(const char *text);
/* Parses and checks a provider: URI; errors are P11E_EUSAGE naming the
 * part that is wrong and the expected form. */
p11e_status p11e_osslkey_uri_parse(const char *text, struct p11e_osslkey_uri **out,
				   struct p11e_err *err);
void p11e_osslkey_uri_free(struct p11e_osslkey_uri *uri);
/* The URI text again (normalised); free(). */
char *p11e_osslkey_uri_text(const struct p11e_osslkey_uri *uri);

/* The provider, loaded in a private OSSL_LIB_CTX with its TCTI. */
struct p11e_ossl;

struct p11e_osslkey {
	EVP_PKEY *priv; /* the provider's key (in the private context) */
	EVP_PKEY *pub;  /* plain public key, default context */
	const struct p11e_key_spec *spec;
	unsigned char id[P11E_OSSLKEY_ID_LEN];
	char *file;         /* PATH.<ID>, or PATH for a hand-made key
					  * (links are resolved: never PATH itself
					  * when PATH is our link) */
	uint32_t tpm_attrs; /* TPMA_OBJECT of the wrapped key */
};

/* Loads the provider (P11E_ETOKEN when it or its TPM cannot be reached). */
p11e_status p11e_ossl_open(const struct p11e_osslkey_uri *uri, struct p11e_ossl **out,
			   struct p11e_err *err);
void p11e_ossl_close(struct p11e_ossl *o);
/* "the TPM via OpenSSL provider tpm2 (TCTI …)". */
const char *p11e_ossl_describe(const struct p11e_ossl *o);

/* Whether the provider can make keys of type `spec`, before anything is tried
 * (P11E_ETOKEN saying what it can make). */
p11e_status p11e_ossl_supports(struct p11e_ossl *o, const struct p11e_key_spec *spec,
			       struct p11e_err *err);

/* Loads the key in `file`; *found=false when there is no such file. The
 * key must be a wrapped TPM key (never a key in clear), made inside the TPM
 * and bound to it, and is classified against the policy. */
p11e_status p11e_ossl_load(struct p11e_ossl *o, const char *file, struct p11e_osslkey *key,
			   bool *found, struct p11e_err *err);

/* Generates a key of type `spec` in the TPM and writes it to PATH.<ID>
 * (0600, atomically); PATH itself is not touched. The key's properties are
 * in docs/tpm.md ("Through the OpenSSL 3 provider (tpm2-openssl)"). */
p11e_status p11e_ossl_generate(struct p11e_ossl *o, const struct p11e_key_spec *spec, const char *path,
			       struct p11e_osslkey *key, struct p11e_err *err);

/* Makes PATH name `file` (a key file in PATH's folder): an atomic switch of
 * the symbolic link; a regular file at PATH is first kept as PATH.<ID>
 * (old_id: its id). Nothing happens when PATH already names it. */
p11e_status p11e_ossl_point(const char *path, const char *file,
			    const unsigned char old_id[P11E_OSSLKEY_ID_LEN], struct p11e_err *err);

/* A rotation alias: PATH.<NONCE> → PATH.<ID> (the file of a key made for
 * a journalled rotation, whose id could not be chosen beforehand). */
p11e_status p11e_ossl_alias(const char *path, const char *file,
			    const unsigned char nonce[P11E_OSSLKEY_ID_LEN], struct p11e_err *err);
/* Removes the rotation aliases that point at `file`. */
p11e_status p11e_ossl_drop_aliases(const char *path, const char *file, struct p11e_err *err);

/* PATH.<hex of id>; free(). */
char *p11e_ossl_key_file(const char *path, const unsigned char id[P11E_OSSLKEY_ID_LEN]);

/* A signer: priv is the provider's key (the CSR code signs with it through
 * OpenSSL), pub is key->pub, and sign() runs EVP_PKEY_sign on a digest
 * with it (PKCS#1 v1.5 or ECDSA, spec->digest) for other signatures (an
 * ACME request). Valid while o and key live. */
void p11e_ossl_signer(struct p11e_ossl *o, struct p11e_osslkey *key, struct p11e_signer *signer);

void p11e_osslkey_clear(struct p11e_osslkey *key);

/* TPMA_OBJECT of a "TSS2 PRIVATE KEY" DER (its public area); false when
 * it is not one. Exposed for tests. */
bool p11e_tss2_key_attributes(const unsigned char *der, long len, uint32_t *attrs);

/* The checks p11e_ossl_load makes before it asks the provider, exposed for
 * the fuzz target: `file` must be a "TSS2 PRIVATE KEY" PEM (*attrs its
 * TPMA_OBJECT; *found=false when there is no file), and those attributes
 * must say the key was made in the TPM, cannot leave it, and can sign. */
p11e_status p11e_ossl_read_wrapped(const char *file, uint32_t *attrs, bool *found,
				   struct p11e_err *err);
p11e_status p11e_ossl_check_protection(const char *file, uint32_t attrs, struct p11e_err *err);

#endif
