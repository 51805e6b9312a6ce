/* SPDX-License-Identifier: Apache-2.0 */
/* A PKCS#11 token, reached through p11-kit: the one matching token of a
 * key URI, a logged-in session, key pairs made and found on it, and
 * certificate objects stored beside a key. */
#ifndef P11E_TOKEN_H
#define P11E_TOKEN_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "csr.h"
#include "err.h"
#include "p11uri.h"
#include "policy.h"

struct p11e_token;

/* One key pair on the token. */
struct p11e_key {
	CK_OBJECT_HANDLE priv;
	CK_OBJECT_HANDLE pub; /* CK_INVALID_HANDLE when the token keeps none */
	unsigned char id[64];
	size_t id_len;
	char label[256];
	const struct p11e_key_spec *spec;
	EVP_PKEY *pub_pkey; /* owned */
	bool sensitive, always_sensitive, extractable, never_extractable, local;
	unsigned generation; /* of the token session the handles belong to */
};

/* Loads the module, finds exactly one token matching the URI and logs in
 * (one attempt, never retried). Errors are P11E_ETOKEN (or P11E_EUSAGE for
 * a bad PIN source) with what was found. */
p11e_status p11e_token_open(const struct p11e_uri *uri, struct p11e_token **out, struct p11e_err *err);
void p11e_token_close(struct p11e_token *tok);
/* "label (manufacturer model, serial)" of the token in use. */
const char *p11e_token_describe(const struct p11e_token *tok);

/* Asks the token whether it can make and sign with a key of this type. */
p11e_status p11e_token_supports(struct p11e_token *tok, const struct p11e_key_spec *spec,
				struct p11e_err *err);

/* Finds the private key named by label and/or id (either may be NULL/0).
 * *found=false when there is none; two or more is an error. A key found
 * is classified against the policy. */
p11e_status p11e_token_find_key(struct p11e_token *tok, const char *label, const unsigned char *id,
				size_t id_len, struct p11e_key *key, bool *found,
				struct p11e_err *err);

/* Generates a key pair of type `spec` with the template described in
 * docs/tokens.md ("Attributes of a key p11enroll generates"); id NULL makes
 * a random 16-byte CKA_ID. The key's protection attributes are read back and
 * a key that is not sensitive, non-extractable, always-sensitive and
 * never-extractable is destroyed and reported (CKA_LOCAL is only logged). */
p11e_status p11e_token_generate(struct p11e_token *tok, const struct p11e_key_spec *spec,
				const char *label, const unsigned char *id, size_t id_len,
				struct p11e_key *key, struct p11e_err *err);

/* Destroys both halves and every certificate object with the key's id. */
p11e_status p11e_token_destroy_key(struct p11e_token *tok, struct p11e_key *key, struct p11e_err *err);

/* A signer for the CSR code; valid while tok and key live. */
void p11e_token_signer(struct p11e_token *tok, struct p11e_key *key, struct p11e_signer *signer);

/* Stores `leaf` as a certificate object with the key's CKA_ID and label,
 * then removes earlier certificate objects of that key (new first, old
 * after); `cas` (may be NULL) are stored as authority certificates unless
 * already present. */
p11e_status p11e_token_store_chain(struct p11e_token *tok, const struct p11e_key *key, X509 *leaf,
				   STACK_OF(X509) * cas, struct p11e_err *err);

/* Number of certificate objects carrying the key's CKA_ID. */
int p11e_token_count_certs(struct p11e_token *tok, const struct p11e_key *key);

void p11e_key_clear(struct p11e_key *key);

#endif
