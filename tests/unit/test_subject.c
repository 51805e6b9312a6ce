/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "csr.h"

static char *oneline(X509_NAME *name)
{
	static char buf[512];
	BIO *bio = BIO_new(BIO_s_mem());
	int len;

	X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
	len = BIO_read(bio, buf, sizeof(buf) - 1);
	buf[len > 0 ? len : 0] = '\0';
	BIO_free(bio);
	return buf;
}

static void round_trip(const char *in, const char *want)
{
	X509_NAME *name = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_subject_parse(in, &name, &err), P11E_OK, "%s: %s", in, err.msg);
	cr_assert_str_eq(oneline(name), want);
	X509_NAME_free(name);
}

Test(subject, order_and_types)
{
	X509_NAME *name = NULL;
	struct p11e_err err = { 0 };

	/* RFC 4514 lists the most specific RDN first; X.509 stores it last. */
	cr_assert_eq(p11e_subject_parse("CN=www.example.com,O=Example Corp,C=US", &name, &err),
		     P11E_OK);
	cr_assert_eq(X509_NAME_entry_count(name), 3);
	cr_assert_eq(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, 0))),
		     NID_countryName);
	cr_assert_eq(OBJ_obj2nid(X509_NAME_ENTRY_get_object(X509_NAME_get_entry(name, 2))),
		     NID_commonName);
	X509_NAME_free(name);
	round_trip("CN=a,OU=b,O=c,L=d,ST=e,C=DE", "CN=a,OU=b,O=c,L=d,ST=e,C=DE");
	round_trip("cn=lower,o=case", "CN=lower,O=case");
	round_trip("CN=x, O=space after comma", "CN=x,O=space after comma");
	round_trip("2.5.4.3=by-oid", "CN=by-oid");
	round_trip("DC=example,DC=com", "DC=example,DC=com");
}

Test(subject, escapes)
{
	round_trip("CN=a\\,b", "CN=a\\,b");
	round_trip("O=Example\\, Corp\\+Co", "O=Example\\, Corp\\+Co");
	round_trip("CN=\\\"quoted\\\"", "CN=\\\"quoted\\\"");
	round_trip("CN=back\\\\slash", "CN=back\\\\slash");
	round_trip("CN=\\ lead", "CN=\\ lead");
	round_trip("CN=trail\\ ", "CN=trail\\ ");
	round_trip("CN=caf\\C3\\A9", "CN=caf\\C3\\A9");
}

Test(subject, multi_valued_rdn)
{
	X509_NAME *name = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_subject_parse("CN=a+UID=b,O=c", &name, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(X509_NAME_entry_count(name), 3);
	/* CN and UID share one RDN (the same set number). */
	cr_assert_eq(X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 1)),
		     X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 2)));
	cr_assert_neq(X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 0)),
		      X509_NAME_ENTRY_set(X509_NAME_get_entry(name, 1)));
	X509_NAME_free(name);
}

static void refused(const char *in, const char *says)
{
	X509_NAME *name = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_subject_parse(in, &name, &err), P11E_EUSAGE, "%s was accepted", in);
	cr_assert_null(name);
	cr_assert(strstr(err.msg, says), "%s: '%s' lacks '%s'", in, err.msg, says);
}

Test(subject, malformed_with_position)
{
	refused("", "empty");
	refused("CN", "position 1");
	refused("CN=a,", "nothing after the separator");
	refused("CN=a,=b", "position 6");
	refused("XX=a", "unknown attribute type 'XX' at position 1");
	refused("CN=a;b", "';' at position 5");
	refused("CN=a<b", "'<' at position 5");
	refused("CN=bad\\qescape", "bad escape sequence at position 7");
	refused("CN=#04024869", "hex-encoded");
	refused("CN= lead", "unescaped space at position 4");
	refused("CN=trail ", "end with an unescaped space");
	refused("CN=a,C=USA", "two-letter country code");
	refused("CN=", "empty value at position 4");
}

static p11e_status dns(const char *n)
{
	struct p11e_err err = { 0 };

	return p11e_san_check_dns(n, &err);
}

Test(san, dns_names)
{
	cr_assert_eq(dns("www.example.com"), P11E_OK);
	cr_assert_eq(dns("*.example.com"), P11E_OK);
	cr_assert_eq(dns("xn--bcher-kva.example"), P11E_OK);
	cr_assert_eq(dns("a-b.c"), P11E_OK);
	cr_assert_eq(dns("www.*.example.com"), P11E_EUSAGE);
	cr_assert_eq(dns("-lead.example.com"), P11E_EUSAGE);
	cr_assert_eq(dns("trail-.example.com"), P11E_EUSAGE);
	cr_assert_eq(dns("under_score.example.com"), P11E_EUSAGE);
	cr_assert_eq(dns("example.com."), P11E_EUSAGE);
	cr_assert_eq(dns("a..b"), P11E_EUSAGE);
	cr_assert_eq(dns(""), P11E_EUSAGE);
	cr_assert_eq(dns("sp ace.example.com"), P11E_EUSAGE);
	char long_label[80];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".com");
	cr_assert_eq(dns(long_label), P11E_EUSAGE);
}

Test(san, ip_email_uri)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_san_check_ip("192.0.2.1", &err), P11E_OK);
	cr_assert_eq(p11e_san_check_ip("2001:db8::1", &err), P11E_OK);
	cr_assert_eq(p11e_san_check_ip("192.0.2.256", &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "192.0.2.256"));
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_ip("example.com", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_email("pki@example.com", &err), P11E_OK);
	cr_assert_eq(p11e_san_check_email("no-at.example.com", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_email("a@b@example.com", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_email("a b@example.com", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_uri("spiffe://example.org/web", &err), P11E_OK);
	cr_assert_eq(p11e_san_check_uri("urn:uuid:1234", &err), P11E_OK);
	cr_assert_eq(p11e_san_check_uri("no-scheme", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_uri("https://exa mple", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_san_check_uri("1http://x", &err), P11E_EUSAGE);
}

/* A software signer, so the CSR code is tested without a token. */
static p11e_status soft_sign(void *ctx, const unsigned char *digest, size_t len, unsigned char **sig,
			     size_t *sig_len, struct p11e_err *err)
{
	EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(ctx, NULL);
	(void)err;

	cr_assert_eq(EVP_PKEY_sign_init(pctx), 1);
	if (EVP_PKEY_is_a(ctx, "RSA")) {
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING);
		EVP_PKEY_CTX_set_signature_md(pctx, len == 48 ? EVP_sha384() : EVP_sha256());
	}
	cr_assert_eq(EVP_PKEY_sign(pctx, NULL, sig_len, digest, len), 1);
	*sig = OPENSSL_malloc(*sig_len);
	cr_assert_eq(EVP_PKEY_sign(pctx, *sig, sig_len, digest, len), 1);
	EVP_PKEY_CTX_free(pctx);
	return P11E_OK;
}

static X509_REQ *build(const char *type, EVP_PKEY *key, bool client_auth)
{
	struct p11e_strlist dns = { 0 }, ip = { 0 }, email = { 0 }, uri = { 0 };
	const struct p11e_key_spec *spec;
	struct p11e_err err = { 0 };
	X509_REQ *req = NULL;

	p11e_strlist_split(&dns, "www.example.com, example.com", ',');
	p11e_strlist_split(&ip, "192.0.2.7,2001:db8::7", ',');
	p11e_strlist_split(&email, "pki@example.com", ',');
	p11e_strlist_split(&uri, "spiffe://example.com/web", ',');
	cr_assert_eq(p11e_policy_parse(type, &spec, &err), P11E_OK);
	struct p11e_csr_request r = {
		"CN=www.example.com,O=Example,C=US", &dns, &ip, &email, &uri, client_auth
	};
	struct p11e_signer signer = { key, spec, soft_sign, key };
	cr_assert_eq(p11e_csr_build(&r, &signer, &req, &err), P11E_OK, "%s", err.msg);
	p11e_strlist_free(&dns);
	p11e_strlist_free(&ip);
	p11e_strlist_free(&email);
	p11e_strlist_free(&uri);
	return req;
}

static EVP_PKEY *gen(const char *alg, const char *group, int bits)
{
	return group ? EVP_PKEY_Q_keygen(NULL, NULL, alg, group)
		     : EVP_PKEY_Q_keygen(NULL, NULL, alg, (size_t)bits);
}

static bool has_text(X509_REQ *req, const char *text)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char buf[8192];
	int len;

	X509_REQ_print(bio, req);
	len = BIO_read(bio, buf, sizeof(buf) - 1);
	buf[len > 0 ? len : 0] = '\0';
	BIO_free(bio);
	return strstr(buf, text) != NULL;
}

Test(csr, ec_p384_uses_sha384_and_carries_every_name)
{
	EVP_PKEY *key = gen("EC", "P-384", 0);
	X509_REQ *req = build("ec-p384", key, false);

	cr_assert_eq(X509_REQ_verify(req, key), 1);
	cr_assert_eq(X509_REQ_get_signature_nid(req), NID_ecdsa_with_SHA384);
	cr_assert(has_text(req, "DNS:www.example.com, DNS:example.com"));
	cr_assert(has_text(req, "IP Address:192.0.2.7"));
	cr_assert(has_text(req, "email:pki@example.com"));
	cr_assert(has_text(req, "URI:spiffe://example.com/web"));
	cr_assert(has_text(req, "Digital Signature\n"));
	cr_assert(!has_text(req, "Key Encipherment"));
	cr_assert(has_text(req, "TLS Web Server Authentication\n"));
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

Test(csr, rsa_has_key_encipherment_and_client_auth_when_asked)
{
	EVP_PKEY *key = gen("RSA", NULL, 2048);
	X509_REQ *req = build("rsa-2048", key, true);

	cr_assert_eq(X509_REQ_verify(req, key), 1);
	cr_assert_eq(X509_REQ_get_signature_nid(req), NID_sha256WithRSAEncryption);
	cr_assert(has_text(req, "Digital Signature, Key Encipherment"));
	cr_assert(has_text(req, "TLS Web Server Authentication, TLS Web Client Authentication"));
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static p11e_status bad_sign(void *ctx, const unsigned char *digest, size_t len, unsigned char **sig,
			    size_t *sig_len, struct p11e_err *err)
{
	/* A signature by another key: the CSR must be refused. */
	EVP_PKEY *other = gen("EC", "P-256", 0);
	p11e_status rc = soft_sign(other, digest, len, sig, sig_len, err);

	(void)ctx;
	EVP_PKEY_free(other);
	return rc;
}

Test(csr, a_signature_that_does_not_verify_is_refused)
{
	EVP_PKEY *key = gen("EC", "P-256", 0);
	const struct p11e_key_spec *spec;
	struct p11e_err err = { 0 };
	X509_REQ *req = NULL;
	struct p11e_csr_request r = { "CN=x.example.com", NULL, NULL, NULL, NULL, false };

	p11e_policy_parse("ec-p256", &spec, &err);
	struct p11e_signer signer = { key, spec, bad_sign, NULL };
	cr_assert_eq(p11e_csr_build(&r, &signer, &req, &err), P11E_ETOKEN);
	cr_assert_null(req);
	cr_assert(strstr(err.msg, "does not verify"), "%s", err.msg);
	EVP_PKEY_free(key);
}

/* The DER of the CSR's signature algorithm. */
static int algorithm_der(X509_REQ *req, unsigned char **der)
{
	const X509_ALGOR *alg = NULL;

	X509_REQ_get0_signature(req, NULL, &alg);
	*der = NULL;
	return i2d_X509_ALGOR(alg, der);
}

/* A key OpenSSL holds is signed with through OpenSSL, into the same CSR as
 * a token's callbacks make: the same signed part and signature algorithm
 * (ECDSA without parameters, RSA with NULL). */
static void same_csr_through_openssl(const char *type, EVP_PKEY *key)
{
	const struct p11e_key_spec *spec;
	struct p11e_err err = { 0 };
	struct p11e_csr_request r = {
		"CN=www.example.com,O=Example,C=US", NULL, NULL, NULL, NULL, false
	};
	X509_REQ *a = NULL, *b = NULL;
	unsigned char *tbs_a = NULL, *tbs_b = NULL, *alg_a = NULL, *alg_b = NULL;
	int la, lb, ga, gb;

	cr_assert_eq(p11e_policy_parse(type, &spec, &err), P11E_OK);
	struct p11e_signer by_callback = { key, spec, soft_sign, key };
	struct p11e_signer by_openssl = { .pub = key, .spec = spec, .priv = key };
	cr_assert_eq(p11e_csr_build(&r, &by_callback, &a, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_csr_build(&r, &by_openssl, &b, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(X509_REQ_verify(b, key), 1);
	la = i2d_re_X509_REQ_tbs(a, &tbs_a);
	lb = i2d_re_X509_REQ_tbs(b, &tbs_b);
	cr_assert(la > 0 && la == lb && memcmp(tbs_a, tbs_b, (size_t)la) == 0);
	ga = algorithm_der(a, &alg_a);
	gb = algorithm_der(b, &alg_b);
	cr_assert(ga > 0 && ga == gb && memcmp(alg_a, alg_b, (size_t)ga) == 0);
	/* SEQUENCE { OID } for ECDSA; SEQUENCE { OID, NULL } for RSA. */
	cr_assert_eq(ga, EVP_PKEY_is_a(key, "EC") ? 12 : 15, "%s: %d", type, ga);
	OPENSSL_free(tbs_a);
	OPENSSL_free(tbs_b);
	OPENSSL_free(alg_a);
	OPENSSL_free(alg_b);
	X509_REQ_free(a);
	X509_REQ_free(b);
}

Test(csr, openssl_held_key_signs_the_same_csr)
{
	EVP_PKEY *ec = gen("EC", "P-256", 0), *ec384 = gen("EC", "P-384", 0);
	EVP_PKEY *rsa = gen("RSA", NULL, 2048);

	same_csr_through_openssl("ec-p256", ec);
	same_csr_through_openssl("ec-p384", ec384);
	same_csr_through_openssl("rsa-2048", rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(rsa);
}
