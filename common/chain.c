/* SPDX-License-Identifier: Apache-2.0 */
#include "chain.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#include "log.h"
#include "util.h"

int p11e_base64_der(const char *text, unsigned char **der, size_t *len)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	size_t in_len = strlen(text);
	unsigned char *out = NULL;
	int n = 0, tail = 0, rc = -1;

	*der = NULL;
	*len = 0;
	/* '-' would end the decoder's input early (it reads it as the start of
	 * PEM armour): a bare text holding one is not base64. */
	if (!ctx || in_len > INT_MAX / 2 || strchr(text, '-'))
		goto out;
	/* three bytes a group of four, plus what the decoder may hold back */
	out = OPENSSL_malloc(in_len / 4 * 3 + 80);
	if (!out)
		goto out;
	EVP_DecodeInit(ctx);
	if (EVP_DecodeUpdate(ctx, out, &n, (const unsigned char *)text, (int)in_len) < 0 ||
	    EVP_DecodeFinal(ctx, out + n, &tail) != 1 || n + tail == 0)
		goto out;
	*der = out;
	*len = (size_t)(n + tail);
	out = NULL;
	rc = 0;
out:
	OPENSSL_free(out);
	EVP_ENCODE_CTX_free(ctx);
	return rc;
}

/* PEM blocks: a block that is not a certificate, or does not parse, is
 * refused rather than dropped. */
static int read_pem(const char *text, STACK_OF(X509) * certs)
{
	BIO *bio = BIO_new_mem_buf(text, -1);
	int blocks = 0, count = 0;
	X509 *x;

	for (const char *q = text; (q = strstr(q, "-----BEGIN")); q++)
		blocks++;
	while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			break;
		}
		count++;
	}
	ERR_clear_error(); /* the end of the text leaves a "no start line" */
	BIO_free(bio);
	return count == blocks ? count : -1;
}

static int read_bare(const char *text, STACK_OF(X509) * certs)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	size_t len;
	X509 *x = NULL;

	if (p11e_base64_der(text, &der, &len) == 0 && len <= LONG_MAX) {
		p = der;
		x = d2i_X509(NULL, &p, (long)len);
	}
	OPENSSL_free(der);
	ERR_clear_error();
	if (!x || !sk_X509_push(certs, x)) {
		X509_free(x);
		return -1;
	}
	return 1;
}

int p11e_certs_read(const char *text, STACK_OF(X509) * certs)
{
	if (!text || text[strspn(text, " \t\r\n")] == '\0')
		return 0;
	return strstr(text, "-----BEGIN") ? read_pem(text, certs) : read_bare(text, certs);
}

char *p11e_certs_pem(X509 *first, const STACK_OF(X509) * more, int n)
{
	BIO *bio = BIO_new(BIO_s_mem());
	bool ok = bio && (!first || PEM_write_bio_X509(bio, first) == 1);

	if (n < 0 || n > sk_X509_num(more))
		n = sk_X509_num(more); /* -1 for no stack: nothing */
	for (int i = 0; ok && i < n; i++)
		ok = PEM_write_bio_X509(bio, sk_X509_value(more, i)) == 1;
	if (!ok) {
		BIO_free(bio);
		return NULL;
	}
	return p11e_bio_text(bio);
}

void p11e_cert_serial(const X509 *cert, char *buf, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	snprintf(buf, len, "%s", hex ? hex : "");
	OPENSSL_free(hex);
	BN_free(bn);
}

time_t p11e_cert_not_after(const X509 *cert)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
		return 0;
	return timegm(&tm);
}

int p11e_cert_self_signed(X509 *cert)
{
	return X509_check_issued(cert, cert) == X509_V_OK;
}

/* The chain builder's test for a link: OpenSSL's own (names, key
 * identifiers, key usage) and the signature, so that a look-alike issuer
 * (same name, another key) is passed over. */
static int issued_and_signed(X509_STORE_CTX *ctx, X509 *x, X509 *issuer)
{
	EVP_PKEY *key = X509_get0_pubkey(issuer);

	(void)ctx;
	return X509_check_issued(issuer, x) == X509_V_OK && key && X509_verify(x, key) == 1;
}

/* Building is not verifying: the chain goes as far as the links hold and
 * ends at a root or where no issuer was sent. Whether it is good is for the
 * verification that follows (agent/install.c). */
static int keep_building(int ok, X509_STORE_CTX *ctx)
{
	(void)ok;
	(void)ctx;
	return 1;
}

/* The leaf's chain from `others` (leaf first), by X509_build_chain. */
static STACK_OF(X509) * build(X509 *leaf, STACK_OF(X509) * others)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *chain = NULL;

	if (store) {
		X509_STORE_set_check_issued(store, issued_and_signed);
		X509_STORE_set_verify_cb(store, keep_building);
		chain = X509_build_chain(leaf, others, store, 1, NULL, NULL);
	}
	X509_STORE_free(store);
	ERR_clear_error();
	return chain;
}

/* Drops the second and later copies of a certificate sent twice. */
static void drop_copies(STACK_OF(X509) * certs)
{
	for (int i = sk_X509_num(certs) - 1; i > 0; i--)
		for (int j = 0; j < i; j++)
			if (X509_cmp(sk_X509_value(certs, j), sk_X509_value(certs, i)) == 0) {
				X509_free(sk_X509_delete(certs, i));
				break;
			}
}

/* Removes the certificate for `pub` from `certs` and returns it. */
static X509 *take_leaf(STACK_OF(X509) * certs, EVP_PKEY *pub)
{
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (EVP_PKEY_eq(X509_get0_pubkey(sk_X509_value(certs, i)), pub) == 1)
			return sk_X509_delete(certs, i);
	return NULL;
}

p11e_status p11e_chain_build(const char *pem, EVP_PKEY *pub, X509 **leaf, STACK_OF(X509) * *cas,
			     struct p11e_err *err)
{
	STACK_OF(X509) *sent = sk_X509_new_null(), *chain = NULL;
	p11e_status rc = P11E_OK;
	int n;

	*leaf = NULL;
	*cas = NULL;
	if (!sent)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	(void)p11e_certs_read(pem, sent); /* what reads is used, as far as it reads */
	n = sk_X509_num(sent);
	if (n == 0) {
		rc = p11e_err_set(err, P11E_EFAIL, "the CA sent no certificate that can be read");
		goto out;
	}
	drop_copies(sent);
	*leaf = take_leaf(sent, pub);
	if (!*leaf) {
		rc = p11e_err_set(err, P11E_EFAIL,
				  "the CA's certificate is for another key: none of the %d "
				  "certificates it sent carries the public key of our key",
				  n);
		goto out;
	}
	chain = build(*leaf, sent);
	if (!chain) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	X509_free(sk_X509_shift(chain)); /* the leaf, held by *leaf */
	if (sk_X509_num(sent) > sk_X509_num(chain))
		p11e_warn("the CA sent %d certificate(s) that are not part of the leaf's chain; "
			  "they are ignored",
			  sk_X509_num(sent) - sk_X509_num(chain));
	*cas = chain;
out:
	sk_X509_pop_free(sent, X509_free);
	if (rc != P11E_OK) {
		X509_free(*leaf);
		*leaf = NULL;
	}
	return rc;
}
