/* SPDX-License-Identifier: Apache-2.0 */
/* The key of a certificate: the key store its URI names (hsm/keystore.h),
 * with the agent's own part around it, the token lock in state_dir. */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "util.h"

#include "csr.h"
#include "log.h"

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

/* state_dir/token-HASH.lock, HASH over what names the store's device (for
 * tokens: the PKCS#11 module, one lock for all its tokens). *path = ""
 * when the store needs no lock. */
static p11e_status lock_path(struct p11e_cert_key *ck, char *path, size_t len, char **shown,
			     struct p11e_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE], *dev = NULL;
	unsigned int md_len = 0;
	size_t dev_len = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	p11e_status rc;

	*path = '\0';
	rc = p11e_keystore_device(ck->ks, &dev, &dev_len, shown, err);
	if (rc != P11E_OK || !dev)
		goto out;
	if (!EVP_Digest(dev, dev_len, md, &md_len, EVP_sha256(), NULL)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot name the token lock");
		goto out;
	}
	p11e_hex(md, 8, hex);
	rc = p11e_mkdirs(lock_dir, 0700, err);
	if (rc != P11E_OK)
		goto out;
	if (snprintf(path, len, "%s/token-%s.lock", lock_dir, hex) >= (int)len)
		rc = p11e_err_set(err, P11E_EUSAGE, "state_dir %s is too long", lock_dir);
out:
	free(dev);
	return rc;
}

/* Waits (TOKEN_LOCK_WAIT_S at most) for the flock on fd, then notes our pid. */
static p11e_status lock_wait(int fd, const char *path, const char *shown, struct p11e_err *err)
{
	char pid[32];
	int waited_ms = 0;

	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			return p11e_err_set(err, P11E_EFAIL, "cannot lock %s: %s", path,
					    strerror(errno));
		if (waited_ms == 1000)
			p11e_info("waiting for another p11enroll's work on the tokens of %s "
				  "(lock %s)",
				  shown ? shown : "the key URI", path);
		if (waited_ms >= TOKEN_LOCK_WAIT_S * 1000) {
			ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			return p11e_err_set(err, P11E_ETOKEN,
					    "another p11enroll (pid %s) has held the token lock %s "
					    "for %d s; try again when it is done",
					    *pid ? pid : "?", path, TOKEN_LOCK_WAIT_S);
		}
		usleep(20 * 1000);
		waited_ms += 20;
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, strlen(pid), 0) < 0)
		p11e_debug("cannot note the pid in %s", path);
	return P11E_OK;
}

static p11e_status token_lock(struct p11e_cert_key *ck, struct p11e_err *err)
{
	char path[PATH_MAX], *shown = NULL;
	struct held_lock *slot;
	p11e_status rc;

	if (!*lock_dir || ck->locked)
		return P11E_OK;
	rc = lock_path(ck, path, sizeof(path), &shown, err);
	if (rc != P11E_OK || !*path)
		goto out;
	if ((slot = held_find(path))) {
		slot->users++;
		ck->lock_fd = slot->fd;
		ck->locked = true;
		goto out;
	}
	for (size_t i = 0; !slot && i < sizeof(held) / sizeof(held[0]); i++)
		if (held[i].users == 0)
			slot = &held[i];
	if (!slot) {
		rc = p11e_err_set(err, P11E_EFAIL, "too many token locks held at once");
		goto out;
	}
	ck->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ck->lock_fd < 0) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot open the token lock %s: %s", path,
				  strerror(errno));
		goto out;
	}
	rc = lock_wait(ck->lock_fd, path, shown, err);
	if (rc != P11E_OK) {
		close(ck->lock_fd);
		ck->lock_fd = -1;
		goto out;
	}
	snprintf(slot->path, sizeof(slot->path), "%s", path);
	slot->fd = ck->lock_fd;
	slot->users = 1;
	ck->locked = true;
out:
	free(shown);
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

/* ---- the store ------------------------------------------------------------------ */

/* What callers read of the key, from the store. */
static void take(struct p11e_cert_key *ck)
{
	ck->key = ck->ks->key;
	ck->have_key = ck->ks->have_key;
	ck->generated = ck->ks->generated;
}

/* Locks the token and opens the store (again, after a release). */
static p11e_status acquire(struct p11e_cert_key *ck, struct p11e_err *err)
{
	p11e_status rc = token_lock(ck, err);

	if (rc == P11E_OK)
		rc = p11e_keystore_open(ck->ks, err);
	if (rc != P11E_OK && !p11e_keystore_logged_in(ck->ks))
		token_unlock(ck);
	take(ck);
	return rc;
}

void p11e_cert_key_release(struct p11e_cert_key *ck)
{
	if (!p11e_keystore_logged_in(ck->ks))
		return;
	p11e_keystore_release(ck->ks);
	token_unlock(ck);
}

bool p11e_cert_key_logged_in(const struct p11e_cert_key *ck)
{
	return p11e_keystore_logged_in(ck->ks);
}

p11e_status p11e_cert_key_open(const struct p11e_cert_conf *cert, const char *id_hex,
			       struct p11e_cert_key *ck, struct p11e_err *err)
{
	char where[300];
	struct p11e_keystore_want want = { .spec = cert->key_spec, .spec_where = where };
	bool found = false;
	p11e_status rc;

	memset(ck, 0, sizeof(*ck));
	ck->lock_fd = -1;
	rc = p11e_keystore_parse(cert->key, cert->name, &ck->ks, err);
	if (rc != P11E_OK)
		return rc;
	rc = acquire(ck, err);
	if (rc != P11E_OK)
		return rc;
	p11e_cert_where(cert, "key_type", where, sizeof(where));
	rc = p11e_keystore_find(ck->ks, id_hex, &want, &found, err);
	take(ck);
	return rc;
}

p11e_status p11e_cert_key_ensure(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 struct p11e_err *err)
{
	p11e_status rc;

	if (ck->have_key)
		return P11E_OK;
	rc = acquire(ck, err);
	if (rc == P11E_OK)
		rc = p11e_keystore_generate(ck->ks, cert->key_spec, NULL, err);
	take(ck);
	return rc;
}

p11e_status p11e_cert_key_rotate(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 const char *new_id_hex, struct p11e_err *err)
{
	p11e_status rc = acquire(ck, err);

	if (rc == P11E_OK)
		rc = p11e_keystore_generate(ck->ks, cert->key_spec, new_id_hex, err);
	take(ck);
	return rc;
}

struct p11e_csr_request p11e_cert_csr_request(const struct p11e_cert_conf *cert)
{
	return (struct p11e_csr_request){
		.subject = cert->subject,
		.dns = &cert->dns,
		.ip = &cert->ip,
		.email = &cert->email,
		.uri = &cert->uri,
		.client_auth = cert->client_auth,
	};
}

p11e_status p11e_cert_key_csr(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			      X509_REQ **out, struct p11e_err *err)
{
	struct p11e_csr_request req = p11e_cert_csr_request(cert);
	struct p11e_signer signer;
	p11e_status rc = ck->have_key ? acquire(ck, err) : P11E_OK;

	if (rc == P11E_OK)
		rc = p11e_keystore_signer(ck->ks, &signer, err);
	if (rc != P11E_OK)
		return rc;
	return p11e_csr_build(&req, &signer, out, err);
}

EVP_PKEY *p11e_cert_key_public(const struct p11e_cert_key *ck)
{
	return ck->have_key ? ck->key.pub : NULL;
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
	return p11e_keystore_has_objects(ck->ks);
}

p11e_status p11e_cert_key_store_chain(struct p11e_cert_key *ck, X509 *leaf, STACK_OF(X509) * cas,
				      struct p11e_err *err)
{
	p11e_status rc = p11e_keystore_has_objects(ck->ks) ? acquire(ck, err) : P11E_OK;

	if (rc != P11E_OK)
		return rc;
	return p11e_keystore_store_chain(ck->ks, leaf, cas, err);
}

p11e_status p11e_cert_key_commit(struct p11e_cert_key *ck, struct p11e_err *err)
{
	return p11e_keystore_commit(ck->ks, err);
}

p11e_status p11e_cert_key_remove(struct p11e_cert_key *ck, const char *id_hex, struct p11e_err *err)
{
	p11e_status rc = acquire(ck, err);

	if (rc == P11E_OK)
		rc = p11e_keystore_remove(ck->ks, id_hex, err);
	take(ck);
	return rc;
}

const char *p11e_cert_key_where(const struct p11e_cert_key *ck)
{
	return p11e_keystore_describe(ck->ks);
}

const char *p11e_cert_key_noun(const struct p11e_cert_key *ck)
{
	return p11e_keystore_noun(ck->ks);
}

char *p11e_cert_key_uri(const struct p11e_cert_key *ck)
{
	return p11e_keystore_uri(ck->ks);
}

void p11e_cert_key_close(struct p11e_cert_key *ck)
{
	p11e_keystore_close(ck->ks);
	token_unlock(ck);
	memset(ck, 0, sizeof(*ck));
}
