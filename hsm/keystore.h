/* SPDX-License-Identifier: Apache-2.0 */
/* Key stores: where the key of a certificate lives, behind one table of
 * functions (struct p11e_keystore_ops), as a CA lives behind
 * providers/provider.h. The key URI's scheme picks the store:
 *   pkcs11:…            a PKCS#11 token through p11-kit (ks_pkcs11.c,
 *                       on token.h)
 *   provider:NAME:PATH  a key behind an OpenSSL 3 provider, the TPM's
 *                       tpm2 (ks_provider.c, on osslkey.h)
 * Callers (agent/keys.c) use the p11e_keystore_* functions below and never
 * ask which store they have. Adding a store touches only hsm/: its file
 * with a `const struct p11e_keystore_ops`, its declaration below, one line
 * in keystore.c's table, one in meson.build (docs/architecture.md, "Key
 * stores").
 *
 * Errors: every entry returns P11E_OK or fills `err` (P11E_ETOKEN: the
 * store or its key said no or cannot be reached; P11E_EUSAGE: the URI or
 * a setting is wrong, naming the URI attribute; P11E_EFAIL: anything
 * else). A failed entry leaves the store usable for close(). */
#ifndef P11E_KEYSTORE_H
#define P11E_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

#include "csr.h"
#include "err.h"
#include "policy.h"

/* What is known of the key, whatever holds it. */
struct p11e_keystore_key {
	const struct p11e_key_spec *spec;
	char label[256];      /* CKA_LABEL; a provider key: the owner's name */
	unsigned char id[64]; /* CKA_ID; a provider key: 16 bytes of SHA-256(SPKI) */
	size_t id_len;
	EVP_PKEY *pub; /* the public key in OpenSSL's default context; owned by the store */
};

/* The part of every store that callers read; a backend's own state
 * follows it (the backend allocates the whole, with this first). */
struct p11e_keystore {
	const struct p11e_keystore_ops *ops;
	char *name;                   /* the [cert:NAME] it belongs to (messages); default label */
	struct p11e_keystore_key key; /* valid while have_key */
	bool have_key;
	bool generated; /* the key was made by this store handle */
};

/* What the owner asks of a key that is found: its type, for the messages
 * of a mismatch the configuration line of key_type ("file:line"). */
struct p11e_keystore_want {
	const struct p11e_key_spec *spec;
	const char *spec_where;
};

struct p11e_keystore_ops {
	const char *scheme; /* the key URIs it takes: "pkcs11:", "provider:" */
	const char *noun;   /* what messages put before describe(): "token " or "" */

	/* Parses and checks the key URI; touches no device. `name` is the
	 * owner (copied), the label of a key when the URI names none. On
	 * success *out is the caller's (close it); P11E_EUSAGE names what is
	 * wrong in the URI. */
	p11e_status (*parse)(const char *uri, const char *name, struct p11e_keystore **out,
			     struct p11e_err *err);
	/* What a configuration file may not hold in the key URI (a PIN):
	 * P11E_EUSAGE naming the attribute and the fix unless
	 * allow_inline_secrets. Touches no device. NULL: the URIs of the store
	 * carry no secrets. */
	p11e_status (*check_config)(const struct p11e_keystore *ks, bool allow_inline_secrets,
				    struct p11e_err *err);
	/* Names the device whose work p11enroll serialises across processes
	 * (docs/tokens.md, the token lock): *dev gets bytes that are the same
	 * for every URI naming that device, *shown how to name it in a message
	 * (never a PIN); both malloc'd. *dev = NULL when the store needs no
	 * such lock. Works before open. NULL: never any lock. */
	p11e_status (*device)(const struct p11e_keystore *ks, unsigned char **dev, size_t *dev_len,
			      char **shown, struct p11e_err *err);
	/* Reaches the device (loads the module, finds the token and logs in
	 * once / loads the provider); nothing when it is open. After a
	 * release the key known before is looked up again by its id and must
	 * still be there (P11E_ETOKEN saying so). */
	p11e_status (*open)(struct p11e_keystore *ks, struct p11e_err *err);
	/* Drops the session (for the CA wait and hooks), keeping what is known
	 * of the key; the next open reaches the device again. NULL: the store
	 * keeps no session worth dropping. */
	void (*release)(struct p11e_keystore *ks);
	/* Whether a login session is open now (stores without logins: false). */
	bool (*logged_in)(const struct p11e_keystore *ks);
	/* Looks the key up (open first): label = the URI's or the owner's;
	 * id = `id_hex` (the journal's record of the current key) when given,
	 * else the URI's. *found says whether there is one; a key found that
	 * is not want->spec or could leave its store is P11E_ETOKEN (and
	 * stays known: have_key). want NULL: the key is taken as it is (the
	 * caller checks it: the ACME account key). */
	p11e_status (*find)(struct p11e_keystore *ks, const char *id_hex,
			    const struct p11e_keystore_want *want, bool *found, struct p11e_err *err);
	/* Makes a key of type `spec` (open first). next_hex NULL: the first
	 * key (the URI's id, or one of the store's choosing). next_hex set: a
	 * rotation, the id the caller journalled beforehand; a key already
	 * made for it is found instead of made again (generated = false), and
	 * find(next_hex) finds it after a crash. The previous key stays. */
	p11e_status (*generate)(struct p11e_keystore *ks, const struct p11e_key_spec *spec,
				const char *next_hex, struct p11e_err *err);
	/* A signing context for the key (open first): an EVP_PKEY that
	 * OpenSSL signs with, or the raw callbacks of a token (csr.h). Valid
	 * until the next entry on ks. P11E_ETOKEN when there is no key. */
	p11e_status (*signer)(struct p11e_keystore *ks, struct p11e_signer *signer,
			      struct p11e_err *err);
	/* Stores the leaf beside the key and the CA certificates (open first);
	 * idempotent. NULL: the store keeps no certificates. */
	p11e_status (*store_chain)(struct p11e_keystore *ks, X509 *leaf, STACK_OF(X509) * cas,
				   struct p11e_err *err);
	/* Makes the key the one the URI names, once its certificate is
	 * installed (idempotent). NULL: nothing to do. */
	p11e_status (*commit)(struct p11e_keystore *ks, struct p11e_err *err);
	/* Removes the key with id `id_hex` and what belongs to it (open first);
	 * never the key in use (P11E_EFAIL); a key already gone is P11E_OK. */
	p11e_status (*remove)(struct p11e_keystore *ks, const char *id_hex, struct p11e_err *err);
	/* The key's URI as the journal and servers name it (never a PIN);
	 * malloc'd, NULL when out of memory. */
	char *(*uri)(const struct p11e_keystore *ks);
	/* The store in words: "'edge' (SoftHSM …)", "the TPM via …"; also
	 * after a release. */
	const char *(*describe)(const struct p11e_keystore *ks);
	void (*close)(struct p11e_keystore *ks);
};

extern const struct p11e_keystore_ops p11e_keystore_pkcs11;
extern const struct p11e_keystore_ops p11e_keystore_provider;

/* The store for `uri` by its scheme (PKCS#11 when no other claims it),
 * parsed: see parse above. */
p11e_status p11e_keystore_parse(const char *uri, const char *name, struct p11e_keystore **out,
				struct p11e_err *err);
/* NULL-safe wrappers of the entries, in the same words. */
p11e_status p11e_keystore_device(const struct p11e_keystore *ks, unsigned char **dev, size_t *dev_len,
				 char **shown, struct p11e_err *err);
p11e_status p11e_keystore_open(struct p11e_keystore *ks, struct p11e_err *err);
void p11e_keystore_release(struct p11e_keystore *ks);
bool p11e_keystore_logged_in(const struct p11e_keystore *ks);
p11e_status p11e_keystore_find(struct p11e_keystore *ks, const char *id_hex,
			       const struct p11e_keystore_want *want, bool *found,
			       struct p11e_err *err);
p11e_status p11e_keystore_generate(struct p11e_keystore *ks, const struct p11e_key_spec *spec,
				   const char *next_hex, struct p11e_err *err);
p11e_status p11e_keystore_signer(struct p11e_keystore *ks, struct p11e_signer *signer,
				 struct p11e_err *err);
p11e_status p11e_keystore_check_config(const struct p11e_keystore *ks, bool allow_inline_secrets,
				       struct p11e_err *err);
/* Whether the store keeps certificates beside the key (store_chain). */
bool p11e_keystore_has_objects(const struct p11e_keystore *ks);
p11e_status p11e_keystore_store_chain(struct p11e_keystore *ks, X509 *leaf, STACK_OF(X509) * cas,
				      struct p11e_err *err);
p11e_status p11e_keystore_commit(struct p11e_keystore *ks, struct p11e_err *err);
p11e_status p11e_keystore_remove(struct p11e_keystore *ks, const char *id_hex, struct p11e_err *err);
char *p11e_keystore_uri(const struct p11e_keystore *ks);
const char *p11e_keystore_describe(const struct p11e_keystore *ks);
const char *p11e_keystore_noun(const struct p11e_keystore *ks);
void p11e_keystore_close(struct p11e_keystore *ks);

/* For backends: fills the common part (ops, a copy of name); false when
 * out of memory. */
bool p11e_keystore_init(struct p11e_keystore *ks, const struct p11e_keystore_ops *ops,
			const char *name);
/* For backends: frees the common part's name. */
void p11e_keystore_fini(struct p11e_keystore *ks);
/* Hex text → bytes (at most `max`); false when malformed. */
bool p11e_keystore_unhex(const char *hex, unsigned char *out, size_t max, size_t *len);

#endif
