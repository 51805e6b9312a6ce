/* SPDX-License-Identifier: Apache-2.0 */
/* hsm/ against a real SoftHSM2 token made for each test in its own folder
 * (Criterion runs each test in a fresh process, which is also where the
 * module gets initialised). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "token.h"
#include "tokenkit.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char dir[64];
static struct p11e_uri *uri;
static struct p11e_token *tok;

__attribute__((format(printf, 1, 2))) static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void open_token(void)
{
	char conf[128], text[256];
	struct p11e_err err = { 0 };
	FILE *f;

	strcpy(dir, "/tmp/p11e-token.XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	f = fopen(conf, "w");
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", dir);
	fclose(f);
	setenv("SOFTHSM2_CONF", conf, 1);
	sh("softhsm2-util --init-token --free --label unit --pin 1234 --so-pin 5678 >/dev/null");
	snprintf(text, sizeof(text),
		 "pkcs11:token=unit;object=k?module-path=" MODULE "&pin-value=1234");
	cr_assert_eq(p11e_uri_parse(text, &uri, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_open(uri, &tok, &err), P11E_OK, "%s", err.msg);
}

static void close_token(void)
{
	p11e_token_close(tok);
	p11e_uri_free(uri);
	sh("rm -rf %s", dir);
}

TestSuite(token, .init = open_token, .fini = close_token, .timeout = 60);

Test(token, generated_keys_are_protected_and_found_again)
{
	struct p11e_key key, again;
	struct p11e_err err = { 0 };
	bool found = false;

	cr_assert_eq(p11e_token_generate(tok, spec("ec-p256"), "k", NULL, 0, &key, &err), P11E_OK,
		     "%s", err.msg);
	cr_assert(key.sensitive && key.always_sensitive && key.never_extractable && key.local);
	cr_assert(!key.extractable);
	cr_assert_eq(key.id_len, 16, "a random 16-byte CKA_ID");
	cr_assert_str_eq(key.spec->name, "ec-p256");
	cr_assert_eq(p11e_token_find_key(tok, "k", NULL, 0, &again, &found, &err), P11E_OK, "%s",
		     err.msg);
	cr_assert(found);
	cr_assert_eq(memcmp(again.id, key.id, 16), 0);
	cr_assert_eq(EVP_PKEY_eq(again.pub_pkey, key.pub_pkey), 1);
	p11e_key_clear(&again);
	/* A second key with the same label gets its own id; by label alone it is ambiguous. */
	struct p11e_key second;
	cr_assert_eq(p11e_token_generate(tok, spec("ec-p256"), "k", NULL, 0, &second, &err), P11E_OK);
	cr_assert_neq(memcmp(second.id, key.id, 16), 0);
	cr_assert_eq(p11e_token_find_key(tok, "k", NULL, 0, &again, &found, &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "add id="), "%s", err.msg);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_token_find_key(tok, "k", second.id, second.id_len, &again, &found, &err),
		     P11E_OK);
	cr_assert(found);
	p11e_key_clear(&again);
	p11e_key_clear(&second);
	p11e_key_clear(&key);
}

Test(token, supported_types_come_from_the_token)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_token_supports(tok, spec("rsa-4096"), &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_supports(tok, spec("ec-p384"), &err), P11E_OK, "%s", err.msg);
}

Test(token, certificate_object_beside_the_key_is_replaced_new_first)
{
	struct p11e_key key;
	struct p11e_err err = { 0 };
	X509 *first, *second;
	STACK_OF(X509) *cas = sk_X509_new_null();
	EVP_PKEY *ca_pub = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	cr_assert_eq(p11e_token_generate(tok, spec("ec-p256"), "k", (const unsigned char *)"\x01\x02",
					 2, &key, &err),
		     P11E_OK, "%s", err.msg);
	first = issue(key.pub_pkey, "first", 1);
	second = issue(key.pub_pkey, "second", 2);
	sk_X509_push(cas, issue(ca_pub, "Some CA", 3));
	cr_assert_eq(p11e_token_store_chain(tok, &key, first, cas, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_count_certs(tok, &key), 1);
	cr_assert_eq(p11e_token_store_chain(tok, &key, second, cas, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_count_certs(tok, &key), 1, "the old object is gone");
	/* Storing the same again is harmless (a rerun after a crash). */
	cr_assert_eq(p11e_token_store_chain(tok, &key, second, cas, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_count_certs(tok, &key), 1);
	/* What pkcs11-tool sees from another process: one cert with our id and
	 * label (holding CN=second), one CA certificate, nothing more. */
	sh("pkcs11-tool --module " MODULE " --token-label unit --list-objects --type cert 2>/dev/null"
	   " > %s/certs.txt",
	   dir);
	sh("test $(grep -c 'Certificate Object' %s/certs.txt) = 2", dir);
	sh("grep -A3 'label:  *k$' %s/certs.txt | grep -q 'ID: *0102'", dir);
	sh("grep -A3 'label:  *k$' %s/certs.txt | grep -q 'subject: *DN: CN=second'", dir);
	sh("grep -q 'label:  *Some CA' %s/certs.txt", dir);
	X509_free(first);
	X509_free(second);
	sk_X509_pop_free(cas, X509_free);
	EVP_PKEY_free(ca_pub);
	p11e_key_clear(&key);
}

Test(token, destroying_a_key_removes_its_objects)
{
	struct p11e_key key, again;
	struct p11e_err err = { 0 };
	bool found = true;
	X509 *cert;

	cr_assert_eq(p11e_token_generate(tok, spec("ec-p256"), "k", NULL, 0, &key, &err), P11E_OK);
	cert = issue(key.pub_pkey, "c", 9);
	cr_assert_eq(p11e_token_store_chain(tok, &key, cert, NULL, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_destroy_key(tok, &key, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_find_key(tok, "k", NULL, 0, &again, &found, &err), P11E_OK);
	cr_assert(!found);
	sh("test -z \"$(pkcs11-tool --module " MODULE
	   " --token-label unit --login --pin 1234 --list-objects 2>/dev/null | grep Object)\"");
	X509_free(cert);
}
