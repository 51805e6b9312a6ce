/* SPDX-License-Identifier: Apache-2.0 */
/* The OpenSSL-provider key store (provider:NAME:PATH URIs): wrapped-key
 * files PATH.<ID> of the TPM's tpm2 provider, PATH a link to the key in
 * use (osslkey.h). OpenSSL holds the key, so OpenSSL signs with it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "keystore.h"
#include "log.h"
#include "osslkey.h"

struct provider_store {
	struct p11e_keystore ks; /* first: the common part */
	struct p11e_osslkey_uri *puri;
	struct p11e_ossl *ossl; /* NULL until open */
	struct p11e_osslkey okey;
	bool via_alias; /* okey was opened/made for a rotation nonce */
	char desc[512];
};

static struct provider_store *of(struct p11e_keystore *ks)
{
	return (struct provider_store *)ks;
}

static const struct provider_store *of_const(const struct p11e_keystore *ks)
{
	return (const struct provider_store *)ks;
}

/* Shows the provider key in the common part: id = its own (16 bytes of
 * SHA-256 of the public key), label = the owner's name. */
static void show_key(struct provider_store *s)
{
	struct p11e_keystore_key *k = &s->ks.key;

	memset(k, 0, sizeof(*k));
	snprintf(k->label, sizeof(k->label), "%s", s->ks.name);
	s->ks.have_key = s->okey.priv != NULL;
	if (!s->ks.have_key)
		return;
	k->spec = s->okey.spec;
	k->pub = s->okey.pub;
	memcpy(k->id, s->okey.id, P11E_OSSLKEY_ID_LEN);
	k->id_len = P11E_OSSLKEY_ID_LEN;
}

static p11e_status pv_parse(const char *text, const char *name, struct p11e_keystore **out,
			    struct p11e_err *err)
{
	struct provider_store *s = calloc(1, sizeof(*s));
	p11e_status rc;

	*out = NULL;
	if (!s || !p11e_keystore_init(&s->ks, &p11e_keystore_provider, name)) {
		free(s);
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	rc = p11e_osslkey_uri_parse(text, &s->puri, err);
	if (rc != P11E_OK) {
		/* a provider key URI holds no secret: the message may show it */
		p11e_err_prefix(err, "key = %s", text);
		s->ks.ops->close(&s->ks);
		return rc;
	}
	snprintf(s->desc, sizeof(s->desc), "the TPM via OpenSSL provider %s (TCTI %s)",
		 s->puri->provider, s->puri->tcti ? s->puri->tcti : "default");
	show_key(s);
	*out = &s->ks;
	return P11E_OK;
}

static p11e_status pv_open(struct p11e_keystore *ks, struct p11e_err *err)
{
	struct provider_store *s = of(ks);

	return s->ossl ? P11E_OK : p11e_ossl_open(s->puri, &s->ossl, err);
}

static bool pv_logged_in(const struct p11e_keystore *ks)
{
	(void)ks;
	return false;
}

/* A 16-byte key id from hex, or the error naming it. */
static p11e_status parse_id(const char *hex, const char *what, unsigned char id[P11E_OSSLKEY_ID_LEN],
			    struct p11e_err *err)
{
	size_t len = 0;

	if (!p11e_keystore_unhex(hex, id, P11E_OSSLKEY_ID_LEN, &len) || len != P11E_OSSLKEY_ID_LEN)
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'%s (%s%d hex digits)", hex,
				    what, *what ? "a provider key id has " : "",
				    2 * P11E_OSSLKEY_ID_LEN);
	return P11E_OK;
}

/* The journal's key: its own file PATH.<ID> first (a rotated key that
 * PATH does not name yet, or the link PATH.<NONCE> a journalled rotation
 * made), else whatever PATH names if it is that key. */
static p11e_status load_by_id(struct provider_store *s, const char *id_hex,
			      const unsigned char id[P11E_OSSLKEY_ID_LEN], bool *found,
			      struct p11e_err *err)
{
	char *file = p11e_ossl_key_file(s->puri->path, id);
	struct stat st;
	p11e_status rc;

	if (!file)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = p11e_ossl_load(s->ossl, file, &s->okey, found, err);
	if (rc == P11E_OK && *found && memcmp(s->okey.id, id, P11E_OSSLKEY_ID_LEN) != 0) {
		if (lstat(file, &st) != 0 || !S_ISLNK(st.st_mode))
			rc = p11e_err_set(err, P11E_ETOKEN,
					  "%s holds another key than its name says (%s); restore it "
					  "or remove it",
					  file, id_hex);
		else
			s->via_alias = true;
	}
	free(file);
	if (rc != P11E_OK || *found)
		return rc;
	rc = p11e_ossl_load(s->ossl, s->puri->path, &s->okey, found, err);
	if (rc == P11E_OK && *found && memcmp(s->okey.id, id, P11E_OSSLKEY_ID_LEN) != 0) {
		p11e_osslkey_clear(&s->okey);
		*found = false;
	}
	return rc;
}

static p11e_status pv_find(struct p11e_keystore *ks, const char *id_hex,
			   const struct p11e_keystore_want *want, bool *found, struct p11e_err *err)
{
	struct provider_store *s = of(ks);
	unsigned char id[P11E_OSSLKEY_ID_LEN];
	p11e_status rc;

	*found = false;
	p11e_osslkey_clear(&s->okey);
	s->via_alias = false;
	if (id_hex && *id_hex) {
		rc = parse_id(id_hex, " in the journal", id, err);
		if (rc == P11E_OK)
			rc = load_by_id(s, id_hex, id, found, err);
	} else {
		rc = p11e_ossl_load(s->ossl, s->puri->path, &s->okey, found, err);
	}
	if (rc != P11E_OK)
		p11e_osslkey_clear(&s->okey);
	show_key(s);
	if (rc != P11E_OK || !*found || !want)
		return rc;
	if (s->okey.spec != want->spec)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key in %s is %s, but [cert:%s] asks for %s (%s); it is "
				    "not replaced automatically: change key_type or the key URI",
				    s->okey.file, s->okey.spec->name, ks->name, want->spec->name,
				    want->spec_where);
	return P11E_OK;
}

/* Whether PATH names an existing file (a dangling link names none). */
static bool path_names_key(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* The first key: nothing uses PATH yet, so it can name it at once. */
static p11e_status generate_first(struct provider_store *s, const struct p11e_key_spec *spec,
				  struct p11e_err *err)
{
	p11e_status rc;

	rc = p11e_ossl_generate(s->ossl, spec, s->puri->path, &s->okey, err);
	show_key(s);
	if (rc != P11E_OK)
		return rc;
	s->ks.generated = true;
	if (!path_names_key(s->puri->path))
		return p11e_ossl_point(s->puri->path, s->okey.file, NULL, err);
	return P11E_OK;
}

/* A provider key takes its id from its public key, so the rotation's id
 * is a nonce: the key goes to PATH.<ID> and the link PATH.<NONCE> names
 * it, for find(nonce) after a crash. PATH keeps naming the previous key
 * (servers may be using it) until commit. */
static p11e_status generate_rotation(struct provider_store *s, const struct p11e_key_spec *spec,
				     const char *next_hex, struct p11e_err *err)
{
	unsigned char nonce[P11E_OSSLKEY_ID_LEN];
	struct p11e_osslkey fresh;
	struct p11e_err ignore = { 0 };
	char *old_file;
	bool found;
	p11e_status rc;

	rc = parse_id(next_hex, "", nonce, err);
	if (rc != P11E_OK)
		return rc;
	/* Found by this nonce: the key was made by an earlier run. */
	if (s->ks.have_key && s->via_alias) {
		s->ks.generated = false;
		return P11E_OK;
	}
	old_file = s->okey.file ? strdup(s->okey.file) : NULL;
	/* Without a resource manager the TPM holds three objects; the old
	 * key is not needed while the new one is made. */
	p11e_osslkey_clear(&s->okey);
	rc = p11e_ossl_generate(s->ossl, spec, s->puri->path, &fresh, err);
	if (rc != P11E_OK) {
		if (old_file && p11e_ossl_load(s->ossl, old_file, &s->okey, &found, &ignore) != P11E_OK)
			p11e_osslkey_clear(&s->okey);
		show_key(s);
		free(old_file);
		return rc;
	}
	free(old_file);
	s->okey = fresh;
	s->ks.generated = true;
	s->via_alias = true;
	show_key(s);
	return p11e_ossl_alias(s->puri->path, s->okey.file, nonce, err);
}

static p11e_status pv_generate(struct p11e_keystore *ks, const struct p11e_key_spec *spec,
			       const char *next_hex, struct p11e_err *err)
{
	struct provider_store *s = of(ks);

	return next_hex ? generate_rotation(s, spec, next_hex, err) : generate_first(s, spec, err);
}

static p11e_status pv_signer(struct p11e_keystore *ks, struct p11e_signer *signer,
			     struct p11e_err *err)
{
	struct provider_store *s = of(ks);

	if (!ks->have_key)
		return p11e_err_set(err, P11E_ETOKEN,
				    "there is no key %s for [cert:%s]; make it with `p11enroll "
				    "keygen %s`",
				    s->puri->path, ks->name, ks->name);
	p11e_ossl_signer(s->ossl, &s->okey, signer);
	return P11E_OK;
}

static p11e_status pv_commit(struct p11e_keystore *ks, struct p11e_err *err)
{
	struct provider_store *s = of(ks);
	struct p11e_osslkey named;
	struct stat st, mine;
	bool found = false;
	p11e_status rc;

	if (!ks->have_key || strcmp(s->okey.file, s->puri->path) == 0)
		return P11E_OK;
	rc = p11e_ossl_drop_aliases(s->puri->path, s->okey.file, err);
	if (rc != P11E_OK)
		return rc;
	s->via_alias = false;
	if (lstat(s->puri->path, &st) != 0 || !S_ISREG(st.st_mode))
		return p11e_ossl_point(s->puri->path, s->okey.file, NULL, err);
	if (stat(s->okey.file, &mine) == 0 && mine.st_ino == st.st_ino && mine.st_dev == st.st_dev)
		return P11E_OK;
	/* A hand-made key at PATH: learn its id to keep it as PATH.<ID>.
	 * Loading it needs a TPM slot; ours is not used meanwhile. */
	rc = p11e_ossl_load(s->ossl, s->puri->path, &named, &found, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_ossl_point(s->puri->path, s->okey.file, found ? named.id : NULL, err);
	p11e_osslkey_clear(&named);
	return rc;
}

/* Deletes the wrapped-key file PATH.<ID>, never the one in use or the one
 * PATH names. */
static p11e_status pv_remove(struct p11e_keystore *ks, const char *id_hex, struct p11e_err *err)
{
	struct provider_store *s = of(ks);
	unsigned char id[P11E_OSSLKEY_ID_LEN];
	struct stat st, named;
	size_t id_len = 0;
	char *file;
	p11e_status rc = P11E_OK;

	if (!p11e_keystore_unhex(id_hex, id, sizeof(id), &id_len) || id_len != sizeof(id))
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", id_hex);
	if (ks->have_key && memcmp(id, s->okey.id, sizeof(id)) == 0)
		return p11e_err_set(err, P11E_EFAIL, "refusing to remove the key in use");
	file = p11e_ossl_key_file(s->puri->path, id);
	if (!file)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (lstat(file, &st) != 0) {
		if (errno != ENOENT)
			rc = p11e_err_set(err, P11E_ETOKEN, "cannot inspect %s: %s", file,
					  strerror(errno));
		goto out; /* already gone */
	}
	if (stat(s->puri->path, &named) == 0 && named.st_ino == st.st_ino &&
	    named.st_dev == st.st_dev) {
		rc = p11e_err_set(err, P11E_EFAIL,
				  "refusing to remove %s: %s still names it (commit the new key "
				  "first)",
				  file, s->puri->path);
		goto out;
	}
	if (unlink(file) != 0) {
		rc = p11e_err_set(err, P11E_ETOKEN, "cannot remove %s: %s", file, strerror(errno));
		goto out;
	}
	p11e_debug("removed old key file %s", file);
out:
	free(file);
	return rc;
}

/* The stable PATH that servers name, not PATH.<ID>: the journal keeps the
 * id, which finds the file. */
static char *pv_uri(const struct p11e_keystore *ks)
{
	return p11e_osslkey_uri_text(of_const(ks)->puri);
}

static const char *pv_describe(const struct p11e_keystore *ks)
{
	return of_const(ks)->desc;
}

static void pv_close(struct p11e_keystore *ks)
{
	struct provider_store *s = of(ks);

	p11e_osslkey_clear(&s->okey);
	p11e_ossl_close(s->ossl);
	p11e_osslkey_uri_free(s->puri);
	p11e_keystore_fini(ks);
	free(s);
}

const struct p11e_keystore_ops p11e_keystore_provider = {
	.scheme = "provider:",
	.noun = "",
	.parse = pv_parse,
	.open = pv_open,
	.logged_in = pv_logged_in,
	.find = pv_find,
	.generate = pv_generate,
	.signer = pv_signer,
	.commit = pv_commit,
	.remove = pv_remove,
	.uri = pv_uri,
	.describe = pv_describe,
	.close = pv_close,
};
