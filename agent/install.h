/* SPDX-License-Identifier: Apache-2.0 */
/* Verify an issued certificate against what was asked, then install it:
 * PEM files (atomic, owner/mode from config) and the post_install hook. */
#ifndef P11E_INSTALL_H
#define P11E_INSTALL_H

#include <openssl/x509.h>

#include "config.h"
#include "err.h"

struct p11e_issued {
	X509 *leaf;
	STACK_OF(X509) * cas; /* ordered: the leaf's issuer first, up to the root if sent */
	bool has_root;        /* the last of cas is self-signed */
};

/* The CA's certificates (any order) made into the leaf for `pub` — never
 * by position — and its chain, by common/chain.h's p11e_chain_build. No
 * certificate for the key is a failure (P11E_EFAIL) saying so. */
p11e_status p11e_issued_parse(const char *pem, EVP_PKEY *pub, struct p11e_issued *out,
			      struct p11e_err *err);
/* The leaf covers every requested name, the chain links leaf → issuers
 * (→ root when sent) with valid signatures and CA flags, dates are sane. */
p11e_status p11e_issued_verify(const struct p11e_issued *issued, const struct p11e_cert_conf *cert,
			       struct p11e_err *err);
void p11e_issued_free(struct p11e_issued *issued);

/* PEM texts: the leaf; the CA certificates a server sends (no root). */
char *p11e_issued_leaf_pem(const struct p11e_issued *issued);
char *p11e_issued_chain_pem(const struct p11e_issued *issued);
/* Serial (p11e_cert_serial's format) and notAfter. */
void p11e_issued_serial(const struct p11e_issued *issued, char *buf, size_t len);
time_t p11e_issued_not_after(const struct p11e_issued *issued);

/* cert_file, chain_file, fullchain_file (those configured), each by
 * temporary file + rename, folders created (0755). */
p11e_status p11e_install_files(const struct p11e_cert_conf *cert, const struct p11e_issued *issued,
			       struct p11e_err *err);

/* Runs post_install through /bin/sh with a clean environment (PATH, HOME,
 * LANG, TZ and P11ENROLL_* only — never a secret) and waits for it, at most
 * [agent] hook_timeout: then its whole process group is killed. */
p11e_status p11e_run_post_install(const struct p11e_cert_conf *cert, const struct p11e_issued *issued,
				  const char *key_uri, struct p11e_err *err);

#endif
