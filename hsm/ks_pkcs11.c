/* SPDX-License-Identifier: Apache-2.0 */
/* The PKCS#11 key store (pkcs11: URIs): a key pair on a token, through
 * token.h. The session may be released between steps; the key is then
 * found again by its CKA_ID, since object handles do not outlive it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore.h"
#include "p11uri.h"
#include "token.h"
#include "util.h"

struct pkcs11_store {
	struct p11e_keystore ks; /* first: the common part */
	struct p11e_uri *uri;
	struct p11e_token *tok; /* NULL while released */
	struct p11e_key key;    /* the key found or made, with its handles */
	char where[256];        /* the token's description, kept while released */
};

static struct pkcs11_store *of(struct p11e_keystore *ks)
{
	return (struct pkcs11_store *)ks;
}

static const struct pkcs11_store *of_const(const struct p11e_keystore *ks)
{
	return (const struct pkcs11_store *)ks;
}

static const char *label_of(const struct pkcs11_store *s)
{
	return s->uri->object ? s->uri->object : s->ks.name;
}

/* Shows the token's key in the common part (pub stays the token key's). */
static void show_key(struct pkcs11_store *s, bool have)
{
	struct p11e_keystore_key *k = &s->ks.key;

	memset(k, 0, sizeof(*k));
	s->ks.have_key = have;
	if (!have) {
		snprintf(k->label, sizeof(k->label), "%s", label_of(s));
		return;
	}
	k->spec = s->key.spec;
	snprintf(k->label, sizeof(k->label), "%s", s->key.label);
	memcpy(k->id, s->key.id, s->key.id_len);
	k->id_len = s->key.id_len;
	k->pub = s->key.pub_pkey;
}

static p11e_status pk_parse(const char *text, const char *name, struct p11e_keystore **out,
			    struct p11e_err *err)
{
	struct pkcs11_store *s = calloc(1, sizeof(*s));
	p11e_status rc;

	*out = NULL;
	if (!s || !p11e_keystore_init(&s->ks, &p11e_keystore_pkcs11, name)) {
		free(s);
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	rc = p11e_uri_parse(text, &s->uri, err);
	if (rc != P11E_OK) {
		s->ks.ops->close(&s->ks);
		return rc;
	}
	show_key(s, false);
	*out = &s->ks;
	return P11E_OK;
}

/* The module: one lock for all its tokens. SoftHSM2 keeps every token of
 * a store in one directory tree that a process reads whole when it
 * initialises the module, so work on one token breaks another process's
 * start-up (docs/tokens.md); a lock per module also cannot be split by
 * two URIs naming one token differently. */
static p11e_status pk_device(const struct p11e_keystore *ks, unsigned char **dev, size_t *dev_len,
			     char **shown, struct p11e_err *err)
{
	const struct pkcs11_store *s = of_const(ks);
	const char *module = s->uri->module_path   ? s->uri->module_path
			     : s->uri->module_name ? s->uri->module_name
						   : "";

	*dev = (unsigned char *)strdup(module);
	*shown = strdup(*module ? module : "p11-kit's default modules");
	if (!*dev || !*shown)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	*dev_len = strlen(module);
	return P11E_OK;
}

static p11e_status pk_check_config(const struct p11e_keystore *ks, bool allow_inline_secrets,
				   struct p11e_err *err)
{
	if (!of_const(ks)->uri->pin_value || allow_inline_secrets)
		return P11E_OK;
	return p11e_err_set(err, P11E_EUSAGE,
			    "the key URI carries pin-value: secrets are not kept in the "
			    "configuration; use pin-source=file:/path (mode 0600) or "
			    "pin-source=env:NAME, or set allow_inline_secrets = yes in [agent] "
			    "for a test set-up");
}

static p11e_status pk_open(struct p11e_keystore *ks, struct p11e_err *err)
{
	struct pkcs11_store *s = of(ks);
	struct p11e_key again;
	bool found = false;
	p11e_status rc;

	if (s->tok)
		return P11E_OK;
	rc = p11e_token_open(s->uri, &s->tok, err);
	if (rc != P11E_OK)
		return rc;
	snprintf(s->where, sizeof(s->where), "%s", p11e_token_describe(s->tok));
	if (!ks->have_key)
		return P11E_OK;
	/* Released before: the same key, found again by its id. */
	rc = p11e_token_find_key(s->tok, NULL, s->key.id, s->key.id_len, &again, &found, err);
	if (rc == P11E_OK && !found) {
		char hex[129];

		p11e_hex(s->key.id, s->key.id_len, hex);
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "the key '%s' (CKA_ID %s) is no longer on token %s", s->key.label,
				  hex, s->where);
	}
	if (rc != P11E_OK)
		return rc;
	p11e_key_clear(&s->key);
	s->key = again;
	show_key(s, true);
	return P11E_OK;
}

static void pk_release(struct p11e_keystore *ks)
{
	struct pkcs11_store *s = of(ks);

	p11e_token_close(s->tok);
	s->tok = NULL;
}

static bool pk_logged_in(const struct p11e_keystore *ks)
{
	return of_const(ks)->tok != NULL;
}

static p11e_status pk_find(struct p11e_keystore *ks, const char *id_hex,
			   const struct p11e_keystore_want *want, bool *found, struct p11e_err *err)
{
	struct pkcs11_store *s = of(ks);
	const unsigned char *id = s->uri->id;
	unsigned char id_buf[64];
	size_t id_len = s->uri->id_len;
	p11e_status rc;

	*found = false;
	if (id_hex && *id_hex) {
		if (!p11e_keystore_unhex(id_hex, id_buf, sizeof(id_buf), &id_len))
			return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s' in the journal",
					    id_hex);
		id = id_buf;
	}
	p11e_key_clear(&s->key);
	rc = p11e_token_find_key(s->tok, label_of(s), id, id_len, &s->key, found, err);
	show_key(s, rc == P11E_OK && *found);
	if (rc != P11E_OK || !*found || !want)
		return rc;
	if (s->key.spec != want->spec)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s is %s, but [cert:%s] asks for %s (%s); "
				    "it is not replaced automatically: change key_type or the key "
				    "URI's object=/id=",
				    s->key.label, s->where, s->key.spec->name, ks->name,
				    want->spec->name, want->spec_where);
	if (!s->key.sensitive || s->key.extractable)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s can be exported (CKA_SENSITIVE=%d, "
				    "CKA_EXTRACTABLE=%d); p11enroll only certifies keys that "
				    "cannot leave the token",
				    s->key.label, s->where, s->key.sensitive, s->key.extractable);
	return P11E_OK;
}

static p11e_status pk_generate(struct p11e_keystore *ks, const struct p11e_key_spec *spec,
			       const char *next_hex, struct p11e_err *err)
{
	struct pkcs11_store *s = of(ks);
	const unsigned char *id = s->uri->id;
	size_t id_len = s->uri->id_len;
	unsigned char next[64];
	struct p11e_key fresh;
	bool found = false;
	p11e_status rc;

	if (next_hex) {
		if (!p11e_keystore_unhex(next_hex, next, sizeof(next), &id_len) || id_len == 0)
			return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", next_hex);
		id = next;
		rc = p11e_token_find_key(s->tok, NULL, id, id_len, &fresh, &found, err);
		if (rc != P11E_OK)
			return rc;
	}
	if (!found) {
		rc = p11e_token_generate(s->tok, spec, label_of(s), id, id_len, &fresh, err);
		if (rc != P11E_OK)
			return rc;
	}
	p11e_key_clear(&s->key);
	s->key = fresh;
	show_key(s, true);
	ks->generated = !found;
	return P11E_OK;
}

static p11e_status pk_signer(struct p11e_keystore *ks, struct p11e_signer *signer,
			     struct p11e_err *err)
{
	struct pkcs11_store *s = of(ks);

	if (!ks->have_key)
		return p11e_err_set(err, P11E_ETOKEN,
				    "token %s has no key '%s' for [cert:%s]; make it with "
				    "`p11enroll keygen %s`",
				    s->where, label_of(s), ks->name, ks->name);
	p11e_token_signer(s->tok, &s->key, signer);
	return P11E_OK;
}

static p11e_status pk_store_chain(struct p11e_keystore *ks, X509 *leaf, STACK_OF(X509) * cas,
				  struct p11e_err *err)
{
	struct pkcs11_store *s = of(ks);

	return p11e_token_store_chain(s->tok, &s->key, leaf, cas, err);
}

static p11e_status pk_remove(struct p11e_keystore *ks, const char *id_hex, struct p11e_err *err)
{
	struct pkcs11_store *s = of(ks);
	struct p11e_key old;
	unsigned char id[64];
	size_t id_len;
	bool found = false;
	p11e_status rc;

	if (!p11e_keystore_unhex(id_hex, id, sizeof(id), &id_len) || id_len == 0)
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", id_hex);
	if (ks->have_key && id_len == s->key.id_len && memcmp(id, s->key.id, id_len) == 0)
		return p11e_err_set(err, P11E_EFAIL, "refusing to remove the key in use");
	rc = p11e_token_find_key(s->tok, NULL, id, id_len, &old, &found, err);
	if (rc != P11E_OK || !found)
		return rc;
	return p11e_token_destroy_key(s->tok, &old, err);
}

static char *pk_uri(const struct p11e_keystore *ks)
{
	const struct pkcs11_store *s = of_const(ks);

	return p11e_uri_for_key(s->uri, s->key.label, s->key.id, s->key.id_len);
}

static const char *pk_describe(const struct p11e_keystore *ks)
{
	const struct pkcs11_store *s = of_const(ks);

	return s->tok ? p11e_token_describe(s->tok) : s->where;
}

static void pk_close(struct p11e_keystore *ks)
{
	struct pkcs11_store *s = of(ks);

	p11e_key_clear(&s->key);
	p11e_token_close(s->tok);
	p11e_uri_free(s->uri);
	p11e_keystore_fini(ks);
	free(s);
}

const struct p11e_keystore_ops p11e_keystore_pkcs11 = {
	.scheme = "pkcs11:",
	.noun = "token ",
	.parse = pk_parse,
	.check_config = pk_check_config,
	.device = pk_device,
	.open = pk_open,
	.release = pk_release,
	.logged_in = pk_logged_in,
	.find = pk_find,
	.generate = pk_generate,
	.signer = pk_signer,
	.store_chain = pk_store_chain,
	.remove = pk_remove,
	.uri = pk_uri,
	.describe = pk_describe,
	.close = pk_close,
};
