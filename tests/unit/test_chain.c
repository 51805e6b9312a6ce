/* SPDX-License-Identifier: Apache-2.0 */
/* common/chain.c: certificates as the CAs send them (PEM, CRLF, bare base64,
 * pieces), the leaf found by its key whatever its place, the chain ordered
 * by OpenSSL with strangers, look-alikes and duplicates left out, the one
 * serial format. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../testcerts.h"
#include "chain.h"
#include "util.h"

static char *pem_of(X509 *x)
{
	char *s = p11e_certs_pem(x, NULL, 0);

	cr_assert_not_null(s);
	return s;
}

struct pki {
	EVP_PKEY *rk, *ik, *lk, *ok, *sk;
	X509 *r, *i, *l, *o, *s, *u;
	char *root, *inter, *leaf, *other_leaf, *stranger, *unrelated;
};

static void make_pki(struct pki *p)
{
	p->rk = ec_key();
	p->ik = ec_key();
	p->lk = ec_key();
	p->ok = ec_key();
	p->sk = ec_key();
	p->r = make_cert("Test Root", p->rk, "Test Root", p->rk, true, 1);
	p->i = make_cert("Test Intermediate", p->ik, "Test Root", p->rk, true, 2);
	p->l = make_cert("www.example.com", p->lk, "Test Intermediate", p->ik, false, 0x0A1234);
	p->o = make_cert("other.example.com", p->ok, "Test Intermediate", p->ik, false, 99);
	/* same name as the leaf's issuer, another key: a look-alike */
	p->s = make_cert("Test Intermediate", p->sk, "Test Root", p->rk, true, 7);
	p->u = make_cert("Unrelated Root", p->sk, "Unrelated Root", p->sk, true, 8);
	p->root = pem_of(p->r);
	p->inter = pem_of(p->i);
	p->leaf = pem_of(p->l);
	p->other_leaf = pem_of(p->o);
	p->stranger = pem_of(p->s);
	p->unrelated = pem_of(p->u);
}

static void free_pki(struct pki *p)
{
	EVP_PKEY *keys[] = { p->rk, p->ik, p->lk, p->ok, p->sk };
	X509 *certs[] = { p->r, p->i, p->l, p->o, p->s, p->u };
	char *texts[] = { p->root, p->inter, p->leaf, p->other_leaf, p->stranger, p->unrelated };

	for (size_t k = 0; k < 5; k++)
		EVP_PKEY_free(keys[k]);
	for (size_t k = 0; k < 6; k++) {
		X509_free(certs[k]);
		free(texts[k]);
	}
}

static char *join(const char *const *parts, size_t n)
{
	size_t len = 1;
	char *out;

	for (size_t k = 0; k < n; k++)
		len += strlen(parts[k]);
	out = calloc(1, len);
	cr_assert_not_null(out);
	for (size_t k = 0; k < n; k++)
		strcat(out, parts[k]);
	return out;
}

/* Builds the chain of `parts` joined for the leaf's key; asserts it is
 * leaf, intermediate[, root]. */
static void assert_built(const struct pki *p, const char *const *parts, size_t n, bool with_root)
{
	char *text = join(parts, n);
	struct p11e_err err = { 0 };
	STACK_OF(X509) *cas = NULL;
	X509 *leaf = NULL;

	cr_assert_eq(p11e_chain_build(text, p->lk, &leaf, &cas, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(X509_cmp(leaf, p->l), 0, "the leaf is the certificate for the key");
	cr_assert_eq(sk_X509_num(cas), with_root ? 2 : 1);
	cr_assert_eq(X509_cmp(sk_X509_value(cas, 0), p->i), 0, "the leaf's issuer comes first");
	if (with_root) {
		cr_assert_eq(X509_cmp(sk_X509_value(cas, 1), p->r), 0, "then the root");
		cr_assert(p11e_cert_self_signed(sk_X509_value(cas, 1)));
	}
	cr_assert_not(p11e_cert_self_signed(sk_X509_value(cas, 0)));
	X509_free(leaf);
	sk_X509_pop_free(cas, X509_free);
	free(text);
}

Test(chain, out_of_order_and_leaf_not_first)
{
	struct pki p;

	make_pki(&p);
	{
		const char *sets[][3] = {
			{ p.leaf, p.inter, p.root }, { p.root, p.inter, p.leaf },
			{ p.inter, p.root, p.leaf }, { p.root, p.leaf, p.inter },
			{ p.inter, p.leaf, p.root }, { p.leaf, p.root, p.inter },
		};

		for (size_t k = 0; k < 6; k++)
			assert_built(&p, sets[k], 3, true);
	}
	{
		const char *set[] = { p.inter, p.leaf };

		assert_built(&p, set, 2, false);
	}
	free_pki(&p);
}

Test(chain, strangers_look_alikes_and_duplicates_left_out)
{
	struct pki p;

	make_pki(&p);
	{
		/* the look-alike comes first, so a builder going by names alone would take it */
		const char *set[] = { p.stranger, p.other_leaf, p.unrelated, p.inter,
				      p.leaf,     p.inter,      p.root,      p.leaf };

		assert_built(&p, set, 8, true);
	}
	{
		const char *set[] = { p.stranger, p.leaf };
		char *text = join(set, 2);
		struct p11e_err err = { 0 };
		STACK_OF(X509) *cas = NULL;
		X509 *leaf = NULL;

		/* only a look-alike: no issuer (verification says so later) */
		cr_assert_eq(p11e_chain_build(text, p.lk, &leaf, &cas, &err), P11E_OK);
		cr_assert_eq(sk_X509_num(cas), 0);
		X509_free(leaf);
		sk_X509_pop_free(cas, X509_free);
		free(text);
	}
	free_pki(&p);
}

Test(chain, leaf_for_another_key_or_nothing_readable)
{
	struct pki p;
	struct p11e_err err = { 0 };
	STACK_OF(X509) *cas = NULL;
	X509 *leaf = NULL;
	EVP_PKEY *mine = ec_key();
	const char *set[] = { p.other_leaf, p.inter };
	char *text;

	make_pki(&p);
	set[0] = p.other_leaf;
	set[1] = p.inter;
	text = join(set, 2);
	cr_assert_eq(p11e_chain_build(text, mine, &leaf, &cas, &err), P11E_EFAIL);
	cr_assert(strstr(err.msg, "is for another key"), "%s", err.msg);
	cr_assert(strstr(err.msg, "none of the 2 certificates"), "%s", err.msg);
	cr_assert_null(leaf);
	cr_assert_null(cas);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_chain_build("not a certificate", mine, &leaf, &cas, &err), P11E_EFAIL);
	cr_assert(strstr(err.msg, "no certificate that can be read"), "%s", err.msg);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_chain_build("", mine, &leaf, &cas, &err), P11E_EFAIL);
	free(text);
	EVP_PKEY_free(mine);
	free_pki(&p);
}

/* The SSL Store sends one piece a file: read each, then build once. */
Test(chain, pieces_read_one_by_one)
{
	struct pki p;
	STACK_OF(X509) *all = sk_X509_new_null();
	char *text;

	make_pki(&p);
	cr_assert_eq(p11e_certs_read(p.inter, all), 1);
	cr_assert_eq(p11e_certs_read(p.root, all), 1);
	cr_assert_eq(p11e_certs_read(p.leaf, all), 1);
	cr_assert_eq(p11e_certs_read(NULL, all), 0);
	text = p11e_certs_pem(NULL, all, -1);
	cr_assert_not_null(text);
	/* as received: the order is kept, nothing is picked here */
	cr_assert_eq(strstr(text, p.inter), text);
	{
		const char *set[] = { text };

		assert_built(&p, set, 1, true);
	}
	free(text);
	/* the first two only */
	text = p11e_certs_pem(p.l, all, 1);
	cr_assert_eq(strstr(text, p.leaf), text);
	cr_assert_eq(strlen(text), strlen(p.leaf) + strlen(p.inter));
	free(text);
	sk_X509_pop_free(all, X509_free);
	free_pki(&p);
}

static char *crlf(const char *in)
{
	char *out = malloc(strlen(in) * 2 + 1), *o = out;

	for (; *in; in++) {
		if (*in == '\n')
			*o++ = '\r';
		*o++ = *in;
	}
	*o = '\0';
	return out;
}

/* The base64 body of a PEM block, lines kept. */
static char *bare(const char *pem)
{
	const char *start = strchr(pem, '\n') + 1, *end = strstr(pem, "-----END");

	return strndup(start, (size_t)(end - start));
}

static char *one_line(const char *in)
{
	char *out = malloc(strlen(in) + 1), *o = out;

	for (; *in; in++)
		if (*in != '\n' && *in != '\r')
			*o++ = *in;
	*o = '\0';
	return out;
}

static int count_read(const char *text)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	int n = p11e_certs_read(text, certs);

	if (n >= 0)
		cr_assert_eq(sk_X509_num(certs), n);
	sk_X509_pop_free(certs, X509_free);
	return n;
}

Test(chain, shapes_the_cas_send)
{
	struct pki p;
	char *two, *two_crlf, *b, *b_crlf, *b_line;

	make_pki(&p);
	two = join((const char *[]){ p.leaf, p.inter }, 2);
	two_crlf = crlf(two);
	b = bare(p.leaf);
	b_crlf = crlf(b);
	b_line = one_line(b);
	cr_assert_eq(count_read(two), 2);
	cr_assert_eq(count_read(two_crlf), 2, "CRLF PEM");
	cr_assert_eq(count_read(b), 1, "bare base64, 64 columns");
	cr_assert_eq(count_read(b_crlf), 1, "bare base64, CRLF");
	cr_assert_eq(count_read(b_line), 1, "bare base64, one line");
	{
		STACK_OF(X509) *certs = sk_X509_new_null();

		cr_assert_eq(p11e_certs_read(b_crlf, certs), 1);
		cr_assert_eq(X509_cmp(sk_X509_value(certs, 0), p.l), 0, "the same certificate");
		sk_X509_pop_free(certs, X509_free);
	}
	cr_assert_eq(count_read(""), 0);
	cr_assert_eq(count_read(" \r\n\t"), 0);
	cr_assert_eq(count_read("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), -1);
	cr_assert_eq(count_read(
			     "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"),
		     -1);
	cr_assert_eq(count_read("AAAA"), -1, "base64 that is no certificate");
	cr_assert_eq(count_read("not base64!"), -1);
	{
		/* a good block, then a broken one: refused, the good one kept */
		char *text = join((const char *[]){ p.inter, "-----BEGIN CERTIFICATE-----\nAAAA\n"
							     "-----END CERTIFICATE-----\n" },
				  2);
		STACK_OF(X509) *certs = sk_X509_new_null();

		cr_assert_eq(p11e_certs_read(text, certs), -1);
		cr_assert_eq(sk_X509_num(certs), 1);
		sk_X509_pop_free(certs, X509_free);
		free(text);
	}
	{
		/* a block that is no certificate (a key) is not skipped silently */
		EVP_PKEY *k = ec_key();
		BIO *bio = BIO_new(BIO_s_mem());
		char *key_pem, *text;

		PEM_write_bio_PUBKEY(bio, k);
		key_pem = p11e_bio_text(bio);
		text = join((const char *[]){ p.leaf, key_pem }, 2);
		cr_assert_eq(count_read(text), -1);
		free(text);
		free(key_pem);
		EVP_PKEY_free(k);
	}
	free(two);
	free(two_crlf);
	free(b);
	free(b_crlf);
	free(b_line);
	free_pki(&p);
}

Test(chain, base64_by_openssl)
{
	unsigned char *der = NULL;
	size_t len = 0;

	cr_assert_eq(p11e_base64_der("AAEC", &der, &len), 0);
	cr_assert_eq(len, 3);
	cr_assert(der[0] == 0 && der[1] == 1 && der[2] == 2);
	OPENSSL_free(der);
	cr_assert_eq(p11e_base64_der("AA\r\nEC/w==\n", &der, &len), 0);
	cr_assert_eq(len, 4);
	cr_assert_eq(der[3], 0xff);
	OPENSSL_free(der);
	cr_assert_eq(p11e_base64_der("AA*C", &der, &len), -1);
	cr_assert_null(der);
	cr_assert_eq(p11e_base64_der("AAEC-AAEC", &der, &len), -1);
	cr_assert_eq(p11e_base64_der("", &der, &len), -1);
	cr_assert_eq(p11e_base64_der("AA==AA", &der, &len), -1, "data after the padding");
}

Test(chain, one_serial_format)
{
	struct pki p;
	char serial[130];
	time_t end;

	make_pki(&p);
	p11e_cert_serial(p.l, serial, sizeof(serial));
	cr_assert_str_eq(serial, "0A1234", "upper case, two digits a byte");
	{
		X509 *x = make_cert("x", p.lk, "x", p.lk, false, 0x1234abcd);

		p11e_cert_serial(x, serial, sizeof(serial));
		cr_assert_str_eq(serial, "1234ABCD");
		X509_free(x);
	}
	end = p11e_cert_not_after(p.l);
	cr_assert_gt(end, time(NULL) + 86400 * 29);
	cr_assert_lt(end, time(NULL) + 86400 * 31);
	free_pki(&p);
}
