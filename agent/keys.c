/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util.h"

#include "csr.h"
#include "log.h"

static const char *key_label(const struct p11e_cert_conf *cert, const struct p11e_uri *uri)
{
	return uri->object ? uri->object : cert->name;
}

/* Hex text → bytes; false when malformed. */
static bool unhex(const char *hex, unsigned char *out, size_t max, size_t *len)
{
	size_t n = strlen(hex) / 2;
	long v;

	if (strlen(hex) % 2 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char pair[3] = { hex[2 * i], hex[2 * i + 1], 0 };
		char *end;

		v = strtol(pair, &end, 16);
		if (*end)
			return false;
		out[i] = (unsigned char)v;
	}
	*len = n;
	return true;
}

/* ---- provider keys (provider:NAME:PATH) -------------------------------------- */

/* Mirrors the provider key into ck->key, which callers read directly. */
static void mirror_key(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck)
{
	p11e_key_clear(&ck->key);
	if (!ck->okey.priv)
		return;
	ck->key.spec = ck->okey.spec;
	ck->key.pub_pkey = ck->okey.pub;
	EVP_PKEY_up_ref(ck->okey.pub);
	memcpy(ck->key.id, ck->okey.id, P11E_OSSLKEY_ID_LEN);
	ck->key.id_len = P11E_OSSLKEY_ID_LEN;
	snprintf(ck->key.label, sizeof(ck->key.label), "%s", cert->name);
	/* check_protection() in osslkey.c has made sure of these. */
	ck->key.sensitive = ck->key.always_sensitive = true;
	ck->key.never_extractable = ck->key.local = true;
	ck->key.extractable = false;
}

static p11e_status provider_open(const struct p11e_cert_conf *cert, const char *id_hex,
				 struct p11e_cert_key *ck, struct p11e_err *err)
{
	unsigned char id[P11E_OSSLKEY_ID_LEN];
	char *file = NULL, where[300];
	size_t id_len = 0;
	bool found = false;
	p11e_status rc;

	rc = p11e_osslkey_uri_parse(cert->key, &ck->puri, err);
	if (rc != P11E_OK)
		return rc;
	if (id_hex && *id_hex &&
	    (!unhex(id_hex, id, sizeof(id), &id_len) || id_len != sizeof(id)))
		return p11e_err_set(err, P11E_EFAIL,
				    "malformed key id '%s' in the journal (a provider key id has "
				    "%zu hex digits)",
				    id_hex, 2 * sizeof(id));
	rc = p11e_ossl_open(ck->puri, &ck->ossl, err);
	if (rc != P11E_OK)
		return rc;
	if (id_len) {
		/* The journal's key: its own file first (a rotated key that PATH
		 * does not name yet), else whatever PATH names if it is that key. */
		file = p11e_ossl_key_file(ck->puri->path, id);
		if (!file)
			return p11e_err_set(err, P11E_EFAIL, "out of memory");
		rc = p11e_ossl_load(ck->ossl, file, &ck->okey, &found, err);
		if (rc != P11E_OK) {
			free(file);
			return rc;
		}
		if (found && memcmp(ck->okey.id, id, sizeof(id)) != 0) {
			struct stat st;

			/* PATH.<NONCE>: the key a journalled rotation made. */
			if (lstat(file, &st) != 0 || !S_ISLNK(st.st_mode)) {
				rc = p11e_err_set(err, P11E_ETOKEN,
						  "%s holds another key than its name says (%s); "
						  "restore it or remove it",
						  file, id_hex);
				free(file);
				return rc;
			}
			ck->via_alias = true;
		}
		free(file);
	}
	if (!found) {
		rc = p11e_ossl_load(ck->ossl, ck->puri->path, &ck->okey, &found, err);
		if (rc != P11E_OK)
			return rc;
		if (found && id_len && memcmp(ck->okey.id, id, sizeof(id)) != 0) {
			p11e_osslkey_clear(&ck->okey);
			found = false;
		}
	}
	ck->have_key = found;
	mirror_key(cert, ck);
	if (!found)
		return P11E_OK;
	p11e_cert_where(cert, "key_type", where, sizeof(where));
	if (ck->key.spec != cert->key_spec)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key in %s is %s, but [cert:%s] asks for %s (%s); it is "
				    "not replaced automatically: change key_type or the key URI",
				    ck->okey.file, ck->key.spec->name, cert->name,
				    cert->key_spec->name, where);
	return P11E_OK;
}

/* Whether PATH names an existing file (a dangling link names none). */
static bool path_names_key(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static p11e_status provider_ensure(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				   struct p11e_err *err)
{
	p11e_status rc;

	rc = p11e_ossl_generate(ck->ossl, cert->key_spec, ck->puri->path, &ck->okey, err);
	if (rc != P11E_OK)
		return rc;
	ck->have_key = true;
	ck->generated = true;
	mirror_key(cert, ck);
	/* The first key: nothing uses PATH yet, so it can name it at once. */
	if (!path_names_key(ck->puri->path))
		return p11e_ossl_point(ck->puri->path, ck->okey.file, NULL, err);
	return P11E_OK;
}

static p11e_status provider_rotate(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				   const char *new_id_hex, struct p11e_err *err)
{
	unsigned char nonce[P11E_OSSLKEY_ID_LEN];
	struct p11e_osslkey fresh;
	char *old_file;
	struct p11e_err ignore = { 0 };
	size_t nonce_len = 0;
	bool found;
	p11e_status rc;

	if (new_id_hex && (!unhex(new_id_hex, nonce, sizeof(nonce), &nonce_len) ||
			   nonce_len != sizeof(nonce)))
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s' (%zu hex digits)",
				    new_id_hex, 2 * sizeof(nonce));
	/* Opened by this nonce: the key was made by an earlier run. */
	if (ck->have_key && ck->via_alias && new_id_hex) {
		ck->generated = false;
		return P11E_OK;
	}
	old_file = ck->okey.file ? strdup(ck->okey.file) : NULL;
	/* Without a resource manager the TPM holds three objects; the old
	 * key is not needed while the new one is made. */
	p11e_osslkey_clear(&ck->okey);
	rc = p11e_ossl_generate(ck->ossl, cert->key_spec, ck->puri->path, &fresh, err);
	if (rc != P11E_OK) {
		if (old_file && p11e_ossl_load(ck->ossl, old_file, &ck->okey, &found, &ignore) !=
				    P11E_OK)
			p11e_osslkey_clear(&ck->okey);
		ck->have_key = ck->okey.priv != NULL;
		mirror_key(cert, ck);
		free(old_file);
		return rc;
	}
	free(old_file);
	ck->okey = fresh;
	ck->have_key = true;
	ck->generated = true;
	ck->via_alias = nonce_len != 0;
	mirror_key(cert, ck);
	return nonce_len ? p11e_ossl_alias(ck->puri->path, ck->okey.file, nonce, err) : P11E_OK;
}

static p11e_status provider_commit(struct p11e_cert_key *ck, struct p11e_err *err)
{
	struct p11e_osslkey named;
	struct stat st, mine;
	bool found = false;
	p11e_status rc;

	if (!ck->have_key || strcmp(ck->okey.file, ck->puri->path) == 0)
		return P11E_OK;
	rc = p11e_ossl_drop_aliases(ck->puri->path, ck->okey.file, err);
	if (rc != P11E_OK)
		return rc;
	ck->via_alias = false;
	if (lstat(ck->puri->path, &st) == 0 && S_ISREG(st.st_mode)) {
		if (stat(ck->okey.file, &mine) == 0 && mine.st_ino == st.st_ino &&
		    mine.st_dev == st.st_dev)
			return P11E_OK;
		/* A hand-made key at PATH: learn its id to keep it as PATH.<ID>.
		 * Loading it needs a TPM slot; ours is not used meanwhile. */
		rc = p11e_ossl_load(ck->ossl, ck->puri->path, &named, &found, err);
		if (rc != P11E_OK)
			return rc;
		rc = p11e_ossl_point(ck->puri->path, ck->okey.file, found ? named.id : NULL, err);
		p11e_osslkey_clear(&named);
		return rc;
	}
	return p11e_ossl_point(ck->puri->path, ck->okey.file, NULL, err);
}

static p11e_status provider_remove(struct p11e_cert_key *ck, const char *id_hex,
				   struct p11e_err *err)
{
	unsigned char id[P11E_OSSLKEY_ID_LEN];
	struct stat st, named;
	size_t id_len = 0;
	char *file;
	p11e_status rc = P11E_OK;

	if (!unhex(id_hex, id, sizeof(id), &id_len) || id_len != sizeof(id))
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", id_hex);
	if (ck->have_key && memcmp(id, ck->okey.id, sizeof(id)) == 0)
		return p11e_err_set(err, P11E_EFAIL, "refusing to remove the key in use");
	file = p11e_ossl_key_file(ck->puri->path, id);
	if (!file)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (lstat(file, &st) != 0) {
		if (errno != ENOENT)
			rc = p11e_err_set(err, P11E_ETOKEN, "cannot inspect %s: %s", file,
					  strerror(errno));
		goto out; /* already gone */
	}
	if (stat(ck->puri->path, &named) == 0 && named.st_ino == st.st_ino &&
	    named.st_dev == st.st_dev) {
		rc = p11e_err_set(err, P11E_EFAIL,
				  "refusing to remove %s: %s still names it (commit the new key "
				  "first)",
				  file, ck->puri->path);
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

/* ---- the token lock ---------------------------------------------------------- */

/* Longest wait for another p11enroll's token work (RSA-4096 generation on
 * a slow token takes a minute; twenty of them queue). */
#define TOKEN_LOCK_WAIT_S 600

static char lock_dir[PATH_MAX];

/* Locks this process holds: a second holder in the same process shares
 * the lock (flock would make it wait for itself). */
static struct held_lock {
	char path[PATH_MAX];
	int fd;
	int users;
} held[4];

static struct held_lock *held_find(const char *path)
{
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i].users > 0 && strcmp(held[i].path, path) == 0)
			return &held[i];
	return NULL;
}

void p11e_cert_key_lock_dir(const char *dir)
{
	snprintf(lock_dir, sizeof(lock_dir), "%s", dir ? dir : "");
}

/* state_dir/token-HASH.lock, HASH over the module and the URI's token
 * attributes: one lock per token as the URI names it. */
static p11e_status token_lock(struct p11e_cert_key *ck, struct p11e_err *err)
{
	const CK_TOKEN_INFO *info = p11_kit_uri_get_token_info(ck->uri->uri);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	char path[PATH_MAX], hex[2 * EVP_MAX_MD_SIZE + 1], pid[32];
	EVP_MD_CTX *ctx;
	const char *module = ck->uri->module_path ? ck->uri->module_path
			     : ck->uri->module_name ? ck->uri->module_name : "";
	struct held_lock *slot;
	int waited_ms = 0;
	p11e_status rc;

	if (!*lock_dir || ck->locked)
		return P11E_OK;
	ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, module, strlen(module) + 1) ||
	    !EVP_DigestUpdate(ctx, info->label, sizeof(info->label)) ||
	    !EVP_DigestUpdate(ctx, info->manufacturerID, sizeof(info->manufacturerID)) ||
	    !EVP_DigestUpdate(ctx, info->model, sizeof(info->model)) ||
	    !EVP_DigestUpdate(ctx, info->serialNumber, sizeof(info->serialNumber)) ||
	    !EVP_DigestFinal_ex(ctx, md, &md_len)) {
		EVP_MD_CTX_free(ctx);
		return p11e_err_set(err, P11E_EFAIL, "cannot name the token lock");
	}
	EVP_MD_CTX_free(ctx);
	p11e_hex(md, 8, hex);
	rc = p11e_mkdirs(lock_dir, 0700, err);
	if (rc != P11E_OK)
		return rc;
	if (snprintf(path, sizeof(path), "%s/token-%s.lock", lock_dir, hex) >= (int)sizeof(path))
		return p11e_err_set(err, P11E_EUSAGE, "state_dir %s is too long", lock_dir);
	if ((slot = held_find(path))) {
		slot->users++;
		ck->lock_fd = slot->fd;
		ck->locked = true;
		return P11E_OK;
	}
	for (size_t i = 0; !slot && i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i].users == 0)
			slot = &held[i];
	if (!slot)
		return p11e_err_set(err, P11E_EFAIL, "too many token locks held at once");
	ck->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ck->lock_fd < 0)
		return p11e_err_set(err, P11E_EFAIL, "cannot open the token lock %s: %s", path,
				    strerror(errno));
	while (flock(ck->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = p11e_err_set(err, P11E_EFAIL, "cannot lock %s: %s", path,
					  strerror(errno));
			goto fail;
		}
		if (waited_ms == 1000) {
			/* Not uri->text: it may carry a pin-value. */
			char *shown = p11e_uri_for_key(ck->uri, NULL, NULL, 0);

			p11e_info("waiting for another p11enroll's work on the token of %s "
				  "(lock %s)",
				  shown ? shown : "the key URI", path);
			free(shown);
		}
		if (waited_ms >= TOKEN_LOCK_WAIT_S * 1000) {
			ssize_t n = pread(ck->lock_fd, pid, sizeof(pid) - 1, 0);

			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			rc = p11e_err_set(err, P11E_ETOKEN,
					  "another p11enroll (pid %s) has held the token lock %s for "
					  "%d s; try again when it is done",
					  *pid ? pid : "?", path, TOKEN_LOCK_WAIT_S);
			goto fail;
		}
		usleep(20 * 1000);
		waited_ms += 20;
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(ck->lock_fd, 0) == 0 && pwrite(ck->lock_fd, pid, strlen(pid), 0) < 0)
		p11e_debug("cannot note the pid in %s", path);
	snprintf(slot->path, sizeof(slot->path), "%s", path);
	slot->fd = ck->lock_fd;
	slot->users = 1;
	ck->locked = true;
	return P11E_OK;
fail:
	close(ck->lock_fd);
	ck->lock_fd = -1;
	return rc;
}

static void token_unlock(struct p11e_cert_key *ck)
{
	if (!ck->locked)
		return;
	for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i].users > 0 && held[i].fd == ck->lock_fd && --held[i].users > 0) {
			ck->lock_fd = -1;
			ck->locked = false;
			return;
		}
	/* Closing drops the flock; the file stays for the next one. */
	close(ck->lock_fd);
	ck->lock_fd = -1;
	ck->locked = false;
}

/* Locks and opens the token (again). */
static p11e_status token_acquire(struct p11e_cert_key *ck, struct p11e_err *err)
{
	p11e_status rc;

	if (ck->tok)
		return P11E_OK;
	rc = token_lock(ck, err);
	if (rc == P11E_OK)
		rc = p11e_token_open(ck->uri, &ck->tok, err);
	if (rc != P11E_OK) {
		token_unlock(ck);
		return rc;
	}
	snprintf(ck->where, sizeof(ck->where), "%s", p11e_token_describe(ck->tok));
	return P11E_OK;
}

void p11e_cert_key_release(struct p11e_cert_key *ck)
{
	if (!ck->tok)
		return;
	p11e_token_close(ck->tok);
	ck->tok = NULL;
	token_unlock(ck);
}

/* A released token is opened again, and the key found again by its id
 * (handles do not outlive the session). */
static p11e_status token_reacquire(struct p11e_cert_key *ck, struct p11e_err *err)
{
	struct p11e_key again;
	bool found = false;
	p11e_status rc;

	if (ck->tok || !ck->uri)
		return P11E_OK;
	rc = token_acquire(ck, err);
	if (rc != P11E_OK || !ck->have_key)
		return rc;
	rc = p11e_token_find_key(ck->tok, NULL, ck->key.id, ck->key.id_len, &again, &found, err);
	if (rc == P11E_OK && !found) {
		char hex[129];

		p11e_hex(ck->key.id, ck->key.id_len, hex);
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "the key '%s' (CKA_ID %s) is no longer on token %s",
				  ck->key.label, hex, ck->where);
	}
	if (rc != P11E_OK)
		return rc;
	p11e_key_clear(&ck->key);
	ck->key = again;
	return P11E_OK;
}

bool p11e_cert_key_is_open(const struct p11e_cert_key *ck)
{
	return ck->tok != NULL || ck->ossl != NULL;
}

/* ---- dispatch ------------------------------------------------------------------ */

p11e_status p11e_cert_key_open(const struct p11e_cert_conf *cert, const char *id_hex,
			       struct p11e_cert_key *ck, struct p11e_err *err)
{
	const unsigned char *id;
	unsigned char id_buf[64];
	size_t id_len;
	char where[300];
	p11e_status rc;

	memset(ck, 0, sizeof(*ck));
	ck->lock_fd = -1;
	if (p11e_osslkey_uri_is(cert->key))
		return provider_open(cert, id_hex, ck, err);
	rc = p11e_uri_parse(cert->key, &ck->uri, err);
	if (rc != P11E_OK)
		return rc;
	id = ck->uri->id;
	id_len = ck->uri->id_len;
	if (id_hex && *id_hex) {
		if (!unhex(id_hex, id_buf, sizeof(id_buf), &id_len))
			return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s' in the journal",
					    id_hex);
		id = id_buf;
	}
	rc = token_acquire(ck, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_token_find_key(ck->tok, key_label(cert, ck->uri), id, id_len, &ck->key,
				 &ck->have_key, err);
	if (rc != P11E_OK || !ck->have_key)
		return rc;
	p11e_cert_where(cert, "key_type", where, sizeof(where));
	if (ck->key.spec != cert->key_spec)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s is %s, but [cert:%s] asks for %s "
				    "(%s); it is not replaced automatically: change key_type or "
				    "the key URI's object=/id=",
				    ck->key.label, p11e_token_describe(ck->tok), ck->key.spec->name,
				    cert->name, cert->key_spec->name, where);
	if (!ck->key.sensitive || ck->key.extractable)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s can be exported (CKA_SENSITIVE=%d, "
				    "CKA_EXTRACTABLE=%d); p11enroll only certifies keys that "
				    "cannot leave the token",
				    ck->key.label, p11e_token_describe(ck->tok), ck->key.sensitive,
				    ck->key.extractable);
	return P11E_OK;
}

p11e_status p11e_cert_key_ensure(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 struct p11e_err *err)
{
	p11e_status rc;

	if (ck->have_key)
		return P11E_OK;
	if (ck->ossl)
		return provider_ensure(cert, ck, err);
	rc = token_reacquire(ck, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_token_generate(ck->tok, cert->key_spec, key_label(cert, ck->uri), ck->uri->id,
				 ck->uri->id_len, &ck->key, err);
	if (rc != P11E_OK)
		return rc;
	ck->have_key = true;
	ck->generated = true;
	return P11E_OK;
}

p11e_status p11e_cert_key_csr(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			      X509_REQ **out, struct p11e_err *err)
{
	struct p11e_csr_request req = {
		.subject = cert->subject,
		.dns = &cert->dns,
		.ip = &cert->ip,
		.email = &cert->email,
		.uri = &cert->uri,
		.client_auth = cert->client_auth,
	};
	struct p11e_signer signer;

	if (!ck->have_key && ck->ossl)
		return p11e_err_set(err, P11E_ETOKEN,
				    "there is no key %s for [cert:%s]; make it with `p11enroll "
				    "keygen %s`",
				    ck->puri->path, cert->name, cert->name);
	if (!ck->have_key)
		return p11e_err_set(err, P11E_ETOKEN,
				    "token %s has no key '%s' for [cert:%s]; make it with "
				    "`p11enroll keygen %s`",
				    p11e_token_describe(ck->tok), key_label(cert, ck->uri), cert->name,
				    cert->name);
	if (ck->ossl) {
		p11e_ossl_signer(ck->ossl, &ck->okey, &signer);
	} else {
		p11e_status rc = token_reacquire(ck, err);

		if (rc != P11E_OK)
			return rc;
		p11e_token_signer(ck->tok, &ck->key, &signer);
	}
	return p11e_csr_build(&req, &signer, out, err);
}

p11e_status p11e_cert_key_rotate(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 const char *new_id_hex, struct p11e_err *err)
{
	struct p11e_key fresh;
	unsigned char id[64];
	size_t id_len;
	bool found = false;
	p11e_status rc;

	if (ck->ossl)
		return provider_rotate(cert, ck, new_id_hex, err);
	if (!unhex(new_id_hex, id, sizeof(id), &id_len) || id_len == 0)
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", new_id_hex);
	rc = token_reacquire(ck, err);
	if (rc == P11E_OK)
		rc = p11e_token_find_key(ck->tok, NULL, id, id_len, &fresh, &found, err);
	if (rc == P11E_OK && !found)
		rc = p11e_token_generate(ck->tok, cert->key_spec, key_label(cert, ck->uri), id, id_len,
					 &fresh, err);
	if (rc != P11E_OK)
		return rc;
	p11e_key_clear(&ck->key);
	ck->key = fresh;
	ck->have_key = true;
	ck->generated = !found;
	return P11E_OK;
}

EVP_PKEY *p11e_cert_key_public(const struct p11e_cert_key *ck)
{
	return ck->have_key ? ck->key.pub_pkey : NULL;
}

void p11e_cert_key_id_hex(const struct p11e_cert_key *ck, char *buf, size_t len)
{
	if (len < 2 * ck->key.id_len + 1) {
		*buf = '\0';
		return;
	}
	p11e_hex(ck->key.id, ck->key.id_len, buf);
}

bool p11e_cert_key_has_objects(const struct p11e_cert_key *ck)
{
	return ck->uri != NULL;
}

p11e_status p11e_cert_key_store_chain(struct p11e_cert_key *ck, X509 *leaf, STACK_OF(X509) *cas,
				      struct p11e_err *err)
{
	p11e_status rc;

	if (!ck->uri)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s has no token to store certificate objects in; set "
				    "store_in_token = no",
				    p11e_cert_key_where(ck));
	rc = token_reacquire(ck, err);
	if (rc != P11E_OK)
		return rc;
	return p11e_token_store_chain(ck->tok, &ck->key, leaf, cas, err);
}

p11e_status p11e_cert_key_commit(struct p11e_cert_key *ck, struct p11e_err *err)
{
	return ck->ossl ? provider_commit(ck, err) : P11E_OK;
}

p11e_status p11e_cert_key_remove(struct p11e_cert_key *ck, const char *id_hex,
				 struct p11e_err *err)
{
	struct p11e_key old;
	unsigned char id[64];
	size_t id_len;
	bool found = false;
	p11e_status rc;

	if (ck->ossl)
		return provider_remove(ck, id_hex, err);
	if (!unhex(id_hex, id, sizeof(id), &id_len) || id_len == 0)
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", id_hex);
	if (ck->have_key && id_len == ck->key.id_len && memcmp(id, ck->key.id, id_len) == 0)
		return p11e_err_set(err, P11E_EFAIL, "refusing to remove the key in use");
	rc = token_reacquire(ck, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_token_find_key(ck->tok, NULL, id, id_len, &old, &found, err);
	if (rc != P11E_OK || !found)
		return rc;
	return p11e_token_destroy_key(ck->tok, &old, err);
}

const char *p11e_cert_key_where(const struct p11e_cert_key *ck)
{
	if (ck->ossl)
		return p11e_ossl_describe(ck->ossl);
	return ck->tok ? p11e_token_describe(ck->tok) : ck->where;
}

char *p11e_cert_key_uri(const struct p11e_cert_key *ck)
{
	/* The stable PATH that servers name, not PATH.<ID>: the journal
	 * keeps the id, which finds the file. */
	if (ck->puri)
		return p11e_osslkey_uri_text(ck->puri);
	return p11e_uri_for_key(ck->uri, ck->key.label, ck->key.id, ck->key.id_len);
}

void p11e_cert_key_close(struct p11e_cert_key *ck)
{
	p11e_key_clear(&ck->key);
	p11e_token_close(ck->tok);
	token_unlock(ck);
	p11e_uri_free(ck->uri);
	p11e_osslkey_clear(&ck->okey);
	p11e_ossl_close(ck->ossl);
	p11e_osslkey_uri_free(ck->puri);
	memset(ck, 0, sizeof(*ck));
}
