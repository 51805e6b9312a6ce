/* SPDX-License-Identifier: Apache-2.0 */
#include "install.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "chain.h"
#include "hook.h"
#include "log.h"
#include "util.h"

/* Clock skew tolerated between us and the CA. */
#define SKEW_SECONDS 300

void p11e_issued_free(struct p11e_issued *issued)
{
	X509_free(issued->leaf);
	sk_X509_pop_free(issued->cas, X509_free);
	memset(issued, 0, sizeof(*issued));
}

p11e_status p11e_issued_parse(const char *pem, EVP_PKEY *pub, struct p11e_issued *out,
			      struct p11e_err *err)
{
	p11e_status rc;
	int n;

	memset(out, 0, sizeof(*out));
	rc = p11e_chain_build(pem, pub, &out->leaf, &out->cas, err);
	n = sk_X509_num(out->cas);
	out->has_root = n > 0 && p11e_cert_self_signed(sk_X509_value(out->cas, n - 1));
	return rc;
}

static p11e_status check_names(X509 *leaf, const struct p11e_cert_conf *cert, struct p11e_err *err)
{
	for (size_t i = 0; i < cert->dns.n; i++) {
		const char *name = cert->dns.v[i];
		int ok;

		/* A wildcard request must come back as that wildcard, not be
		 * matched as a host name. */
		if (name[0] == '*') {
			GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);

			ok = 0;
			for (int k = 0; gens && k < sk_GENERAL_NAME_num(gens); k++) {
				const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);

				if (g->type == GEN_DNS &&
				    strcasecmp((const char *)ASN1_STRING_get0_data(g->d.dNSName),
					       name) == 0)
					ok = 1;
			}
			GENERAL_NAMES_free(gens);
		} else {
			ok = X509_check_host(leaf, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
					     NULL) == 1;
		}
		if (!ok)
			return p11e_err_set(err, P11E_EFAIL,
					    "the certificate does not cover the requested name %s",
					    name);
	}
	for (size_t i = 0; i < cert->ip.n; i++)
		if (X509_check_ip_asc(leaf, cert->ip.v[i], 0) != 1)
			return p11e_err_set(err, P11E_EFAIL,
					    "the certificate does not cover the requested address %s",
					    cert->ip.v[i]);
	for (size_t i = 0; i < cert->email.n; i++)
		if (X509_check_email(leaf, cert->email.v[i], 0, 0) != 1)
			return p11e_err_set(err, P11E_EFAIL,
					    "the certificate does not cover the requested e-mail %s",
					    cert->email.v[i]);
	return P11E_OK;
}

static p11e_status check_dates(X509 *leaf, struct p11e_err *err)
{
	time_t now = time(NULL), soon = now + SKEW_SECONDS, past = now - SKEW_SECONDS;

	if (X509_cmp_time(X509_get0_notBefore(leaf), &soon) > 0)
		return p11e_err_set(err, P11E_EFAIL,
				    "the certificate is not valid yet (notBefore in the future: is "
				    "this host's clock right?)");
	if (X509_cmp_time(X509_get0_notAfter(leaf), &past) < 0)
		return p11e_err_set(err, P11E_EFAIL, "the certificate has already expired");
	if (ASN1_TIME_compare(X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)) >= 0)
		return p11e_err_set(err, P11E_EFAIL, "the certificate's validity period is empty");
	return P11E_OK;
}

static p11e_status check_chain(const struct p11e_issued *issued, struct p11e_err *err)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	int n = sk_X509_num(issued->cas);
	p11e_status rc = P11E_OK;
	X509 *anchor;

	if (n == 0) {
		char issuer[256];

		X509_NAME_oneline(X509_get_issuer_name(issued->leaf), issuer, sizeof(issuer));
		rc = p11e_err_set(err, P11E_EFAIL,
				  "the CA sent no issuer certificate for the leaf (issuer %s): the "
				  "chain cannot be checked",
				  issuer);
		goto out;
	}
	if (!store || !ctx || !untrusted) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	/* The top of what the CA sent is the anchor: its root when it sent
	 * one, else the last intermediate (partial chain). Trust in that
	 * anchor is the TLS clients' business; ours is that the links hold. */
	anchor = sk_X509_value(issued->cas, n - 1);
	X509_STORE_add_cert(store, anchor);
	for (int i = 0; i < n - 1; i++)
		sk_X509_push(untrusted, sk_X509_value(issued->cas, i));
	if (!issued->has_root)
		X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_STORE_CTX_init(ctx, store, issued->leaf, untrusted) != 1) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot set up chain verification");
		goto out;
	}
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
	if (X509_verify_cert(ctx) != 1) {
		rc = p11e_err_set(err, P11E_EFAIL,
				  "the certificate chain does not verify: %s (at depth %d)",
				  X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)),
				  X509_STORE_CTX_get_error_depth(ctx));
		goto out;
	}
out:
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return rc;
}

p11e_status p11e_issued_verify(const struct p11e_issued *issued, const struct p11e_cert_conf *cert,
			       struct p11e_err *err)
{
	p11e_status rc = check_dates(issued->leaf, err);

	if (rc == P11E_OK)
		rc = check_names(issued->leaf, cert, err);
	if (rc == P11E_OK)
		rc = check_chain(issued, err);
	return rc;
}

char *p11e_issued_leaf_pem(const struct p11e_issued *issued)
{
	return p11e_certs_pem(issued->leaf, NULL, 0);
}

char *p11e_issued_chain_pem(const struct p11e_issued *issued)
{
	return p11e_certs_pem(NULL, issued->cas,
			      sk_X509_num(issued->cas) - (issued->has_root ? 1 : 0));
}

void p11e_issued_serial(const struct p11e_issued *issued, char *buf, size_t len)
{
	p11e_cert_serial(issued->leaf, buf, len);
}

time_t p11e_issued_not_after(const struct p11e_issued *issued)
{
	return p11e_cert_not_after(issued->leaf);
}

static p11e_status write_one(const struct p11e_cert_conf *cert, const char *path, const char *text,
			     struct p11e_err *err)
{
	char folder[PATH_MAX];
	p11e_status rc;

	if (!path)
		return P11E_OK;
	snprintf(folder, sizeof(folder), "%s", path);
	rc = p11e_mkdirs(dirname(folder), 0755, err);
	if (rc == P11E_OK)
		rc = p11e_write_atomic(path, text, strlen(text), cert->file_mode, cert->file_owner,
				       cert->file_group, err);
	return rc;
}

p11e_status p11e_install_files(const struct p11e_cert_conf *cert, const struct p11e_issued *issued,
			       struct p11e_err *err)
{
	char *leaf = p11e_issued_leaf_pem(issued), *chain = p11e_issued_chain_pem(issued);
	char *full = NULL;
	p11e_status rc = P11E_OK;

	if (!leaf || !chain || asprintf(&full, "%s%s", leaf, chain) < 0) {
		full = NULL;
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	rc = write_one(cert, cert->cert_file, leaf, err);
	if (rc == P11E_OK)
		rc = write_one(cert, cert->chain_file, chain, err);
	if (rc == P11E_OK)
		rc = write_one(cert, cert->fullchain_file, full, err);
out:
	free(leaf);
	free(chain);
	free(full);
	return rc;
}

static void add_env(char **env, size_t *n, const char *name, const char *value)
{
	if (value && asprintf(&env[*n], "P11ENROLL_%s=%s", name, value) >= 0)
		(*n)++;
}

p11e_status p11e_run_post_install(const struct p11e_cert_conf *cert, const struct p11e_issued *issued,
				  const char *key_uri, struct p11e_err *err)
{
	static const char *const keep[] = { "PATH", "HOME", "LANG", "LC_ALL", "TZ", NULL };
	char *env[32], serial[130], not_after[32], why[768], what[256];
	char *const argv[] = { "sh", "-c", (char *)cert->post_install, NULL };
	const struct p11e_hook hook = { .what = what, .path = "/bin/sh", .argv = argv, .envp = env };
	time_t expiry = p11e_issued_not_after(issued);
	struct tm tm;
	size_t n = 0;
	int rc;

	if (!cert->post_install)
		return P11E_OK;
	p11e_issued_serial(issued, serial, sizeof(serial));
	gmtime_r(&expiry, &tm);
	strftime(not_after, sizeof(not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
	for (size_t i = 0; keep[i]; i++) {
		const char *value = getenv(keep[i]);

		if (value && asprintf(&env[n], "%s=%s", keep[i], value) >= 0)
			n++;
	}
	if (!getenv("PATH") && asprintf(&env[n], "PATH=/usr/sbin:/usr/bin:/sbin:/bin") >= 0)
		n++;
	add_env(env, &n, "NAME", cert->name);
	add_env(env, &n, "CERT_FILE", cert->cert_file);
	add_env(env, &n, "CHAIN_FILE", cert->chain_file);
	add_env(env, &n, "FULLCHAIN_FILE", cert->fullchain_file);
	add_env(env, &n, "SERIAL", serial);
	add_env(env, &n, "NOT_AFTER", not_after);
	add_env(env, &n, "KEY_URI", key_uri);
	env[n] = NULL;
	p11e_info("[cert:%s] running post_install: %s", cert->name, cert->post_install);
	snprintf(what, sizeof(what), "post_install (%.200s)", cert->post_install);
	rc = p11e_hook_run(&hook, why, sizeof(why));
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	if (rc == 0)
		return P11E_OK;
	return p11e_err_set(err, P11E_EFAIL,
			    "[cert:%s] %s; the certificate is installed, reload its users by hand",
			    cert->name, why);
}
