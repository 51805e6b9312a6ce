/* SPDX-License-Identifier: Apache-2.0 */
/* Drives agent/keys.c for one [cert:NAME] the way the enrolment flow will:
 *   keys_driver CONF NAME rotate
 * open → ensure → rotate(NONCE) → (PATH still names the old key) → reopen
 * by NONCE as after a crash, rotate(NONCE) again finds the same key →
 * reopen by the key's id → commit → (PATH names the new key, the NONCE link
 * is gone) → remove old → refuse to remove the new. Prints one line per
 * step; exits 1 at the first surprise. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "keys.h"
#include "log.h"

static int fail(const char *what, const struct p11e_err *err)
{
	fprintf(stderr, "FAIL: %s%s%s\n", what, err && err->msg[0] ? ": " : "", err ? err->msg : "");
	return 1;
}

/* The basename PATH's link points at, or "" */
static void link_of(const char *path, char *out, size_t len)
{
	ssize_t n = readlink(path, out, len - 1);

	out[n > 0 ? n : 0] = '\0';
}

int main(int argc, char **argv)
{
	struct p11e_config *cfg = NULL;
	const struct p11e_cert_conf *cert;
	struct p11e_err err = { 0 };
	struct p11e_cert_key ck = { 0 };
	static const char nonce[] = "00112233445566778899aabbccddeeff";
	char id1[129], id2[129], id3[129], target[PATH_MAX], want[PATH_MAX], *file;
	X509_REQ *req = NULL;
	const char *path;
	int rc = 1;

	if (argc != 4 || strcmp(argv[3], "rotate") != 0) {
		fprintf(stderr, "usage: keys_driver CONF NAME rotate\n");
		return 2;
	}
	p11e_log_set_level(P11E_LOG_DEBUG);
	if (p11e_config_load(argv[1], &cfg, &err) != P11E_OK)
		return fail("config", &err);
	cert = p11e_config_cert(cfg, argv[2]);
	if (!cert)
		return fail("no such certificate", NULL);
	path = strchr(cert->key + 9, ':') + 1;
	snprintf(want, sizeof(want), "%.*s", (int)strcspn(path, "?"), path);

	if (p11e_cert_key_open(cert, NULL, &ck, &err) != P11E_OK ||
	    p11e_cert_key_ensure(cert, &ck, &err) != P11E_OK) {
		rc = fail("open/ensure", &err);
		goto out;
	}
	p11e_cert_key_id_hex(&ck, id1, sizeof(id1));
	printf("id1 %s\n", id1);

	/* Provider keys take their id from the key; the hint is unused. */
	if (p11e_cert_key_rotate(cert, &ck, nonce, &err) != P11E_OK || !ck.generated) {
		rc = fail("rotate", &err);
		goto out;
	}
	p11e_cert_key_id_hex(&ck, id2, sizeof(id2));
	printf("id2 %s\n", id2);
	if (strcmp(id1, id2) == 0) {
		rc = fail("rotate gave the same key", NULL);
		goto out;
	}
	link_of(want, target, sizeof(target));
	printf("before commit PATH -> %s\n", target);
	if (!strstr(target, id1)) {
		rc = fail("PATH moved before commit", NULL);
		goto out;
	}
	if (p11e_cert_key_csr(cert, &ck, &req, &err) != P11E_OK ||
	    EVP_PKEY_eq(X509_REQ_get0_pubkey(req), p11e_cert_key_public(&ck)) != 1) {
		rc = fail("CSR with the new key", &err);
		goto out;
	}
	printf("csr with key2 ok\n");
	/* A crash before the journal learnt id2: the next run has the nonce. */
	p11e_cert_key_close(&ck);
	if (p11e_cert_key_open(cert, nonce, &ck, &err) != P11E_OK || !ck.have_key ||
	    p11e_cert_key_rotate(cert, &ck, nonce, &err) != P11E_OK) {
		rc = fail("reopen by nonce and rotate again", &err);
		goto out;
	}
	p11e_cert_key_id_hex(&ck, id3, sizeof(id3));
	printf("by nonce: %s %s\n", id3, ck.generated ? "generated again" : "found");
	if (strcmp(id3, id2) != 0 || ck.generated) {
		rc = fail("rotating again with the same nonce made another key", NULL);
		goto out;
	}
	/* A crash later: the next run opens the journal's key by its id. */
	p11e_cert_key_close(&ck);
	if (p11e_cert_key_open(cert, id2, &ck, &err) != P11E_OK || !ck.have_key) {
		rc = fail("reopen key2 by id", &err);
		goto out;
	}
	printf("reopened key2 by id\n");
	if (p11e_cert_key_commit(&ck, &err) != P11E_OK || p11e_cert_key_commit(&ck, &err) != P11E_OK) {
		rc = fail("commit", &err);
		goto out;
	}
	link_of(want, target, sizeof(target));
	printf("after commit PATH -> %s\n", target);
	if (asprintf(&file, "%s.%s", want, nonce) < 0)
		goto out;
	printf("nonce link %s\n", access(file, F_OK) == 0 ? "still there" : "removed");
	free(file);
	if (!strstr(target, id2)) {
		rc = fail("PATH does not name key2 after commit", NULL);
		goto out;
	}
	if (p11e_cert_key_remove(&ck, id2, &err) == P11E_OK) {
		rc = fail("removed the key in use", NULL);
		goto out;
	}
	printf("refused: %s\n", err.msg);
	p11e_err_clear(&err);
	if (p11e_cert_key_remove(&ck, id1, &err) != P11E_OK) {
		rc = fail("remove key1", &err);
		goto out;
	}
	if (asprintf(&file, "%s.%s", want, id1) < 0)
		goto out;
	printf("key1 file %s\n", access(file, F_OK) == 0 ? "still there" : "removed");
	rc = access(file, F_OK) == 0;
	free(file);
	p11e_cert_key_close(&ck);
	if (rc == 0 && (p11e_cert_key_open(cert, NULL, &ck, &err) != P11E_OK || !ck.have_key ||
			(p11e_cert_key_id_hex(&ck, id1, sizeof(id1)), strcmp(id1, id2) != 0))) {
		rc = fail("PATH does not open key2", &err);
		goto out;
	}
	if (rc == 0)
		printf("PATH opens key2\n");
out:
	X509_REQ_free(req);
	p11e_cert_key_close(&ck);
	p11e_config_free(cfg);
	return rc;
}
