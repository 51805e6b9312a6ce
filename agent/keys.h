/* SPDX-License-Identifier: Apache-2.0 */
/* The key of a [cert:NAME], whatever holds it: a key store of hsm/keystore.h
 * chosen by the key URI (pkcs11:… a PKCS#11 token, provider:… an OpenSSL 3
 * provider such as the TPM's), plus what is the agent's own: the token
 * lock in state_dir. The flows above this never look at which store. */
#ifndef P11E_KEYS_H
#define P11E_KEYS_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "config.h"
#include "keystore.h"

/* `key`, have_key and generated repeat the store's own (read-only for
 * callers): key.label and key.spec are known once a key is found or made;
 * without a key, key.label is the label it will get. */
struct p11e_cert_key {
	struct p11e_keystore *ks;
	struct p11e_keystore_key key;
	bool have_key;
	bool generated; /* made by this run */
	int lock_fd;    /* the token lock when locked */
	bool locked;
};

/* Where token locks live (the state_dir); unset, tokens are not locked.
 * p11enroll's own token work is serialised per token across processes,
 * since some tokens (SoftHSM2's file store) show a half-written store to
 * a process that looks while another writes. */
void p11e_cert_key_lock_dir(const char *dir);
/* Closes the token session and releases the token lock, keeping what is
 * known of the key (id, label, type, public key, URI): for the CA wait
 * and hooks, which must not hold either. The next operation on `ck`
 * opens the store again and finds the key by its id. Stores without a
 * session (the provider) keep theirs. */
void p11e_cert_key_release(struct p11e_cert_key *ck);

/* True when a token session is logged in (`check` reports the login);
 * never for a provider key. */
bool p11e_cert_key_logged_in(const struct p11e_cert_key *ck);

/* Opens what holds the key of `cert` and looks the key up: label = the
 * URI's object= (or the certificate name); id = `id_hex` when given (the
 * journal's record of the current key), else the URI's id=. A key found is
 * checked against key_type and the protection README.md promises. */
p11e_status p11e_cert_key_open(const struct p11e_cert_conf *cert, const char *id_hex,
			       struct p11e_cert_key *ck, struct p11e_err *err);
/* Generates the key when none was found. */
p11e_status p11e_cert_key_ensure(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 struct p11e_err *err);
/* Key rotation: finds the key with id `new_id_hex` (chosen and journalled
 * by the caller beforehand, so that a crash right after the generation
 * finds it again) or generates it with the same label. Provider keys take
 * their id from their public key, so for them new_id_hex is a nonce: the
 * key goes to PATH.<ID> and the link PATH.<NONCE> names it, so that
 * p11e_cert_key_open(new_id_hex) finds it again (ck's id is then the key's
 * own, which the caller journals); only a crash between writing PATH.<ID>
 * and that link leaves an unused key file. PATH keeps naming the previous
 * key (servers may be using it) until p11e_cert_key_commit.
 * The previous key stays until the caller removes it. */
p11e_status p11e_cert_key_rotate(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 const char *new_id_hex, struct p11e_err *err);
/* What the CSR of `cert` asks for (its subject, names, client_auth). */
struct p11e_csr_request p11e_cert_csr_request(const struct p11e_cert_conf *cert);
/* The CSR of `cert`, signed by the key. */
p11e_status p11e_cert_key_csr(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			      X509_REQ **out, struct p11e_err *err);
/* The public key (borrowed). */
EVP_PKEY *p11e_cert_key_public(const struct p11e_cert_key *ck);
/* Hex of the key's identity (CKA_ID) into buf (at least 129 bytes). */
void p11e_cert_key_id_hex(const struct p11e_cert_key *ck, char *buf, size_t len);
/* Whether certificate objects can be stored beside the key (a token). */
bool p11e_cert_key_has_objects(const struct p11e_cert_key *ck);
/* Stores the leaf beside the key and the CA certificates (token only). */
p11e_status p11e_cert_key_store_chain(struct p11e_cert_key *ck, X509 *leaf, STACK_OF(X509) * cas,
				      struct p11e_err *err);
/* Makes the key in use the one that the configured key names, once its
 * certificate is installed: provider keys switch the PATH link to
 * PATH.<ID> atomically and drop its rotation link (idempotent, so a
 * resumed install calls it again); call it after the certificate files
 * are written and before removing old keys (removal refuses the key PATH
 * still names). Tokens need nothing (the same label, the journal has the
 * id). */
p11e_status p11e_cert_key_commit(struct p11e_cert_key *ck, struct p11e_err *err);
/* Removes the key with CKA_ID `id_hex` (and its certificate objects);
 * provider keys: deletes the wrapped-key file PATH.<ID>, never the one in
 * use or the one PATH names. */
p11e_status p11e_cert_key_remove(struct p11e_cert_key *ck, const char *id_hex, struct p11e_err *err);
/* The key's URI (token, object, id, module; never a PIN); free(). */
char *p11e_cert_key_uri(const struct p11e_cert_key *ck);
/* "'edge' (SoftHSM …)" or the provider's description. */
const char *p11e_cert_key_where(const struct p11e_cert_key *ck);
/* What messages put before p11e_cert_key_where: "token " or "". */
const char *p11e_cert_key_noun(const struct p11e_cert_key *ck);
void p11e_cert_key_close(struct p11e_cert_key *ck);

#endif
