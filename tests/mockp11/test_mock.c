/* SPDX-License-Identifier: Apache-2.0 */
/* hsm/token.c driven through the fault-injecting mock module (mockp11.c):
 * PIN states, tokens that need no login, many slots, odd answer shapes,
 * and every lost-session answer at every step. Criterion runs each test in
 * its own process, so each starts with an empty mock token. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "../unit/tokenkit.h"
#include "token.h"

static char logfile[64];

static void setup(void)
{
	int fd;

	strcpy(logfile, "/tmp/p11e-mock-log.XXXXXX");
	fd = mkstemp(logfile);
	cr_assert(fd >= 0);
	close(fd);
	setenv("MOCKP11_LOG", logfile, 1);
	setenv("MOCKP11", "", 1);
}

static void teardown(void)
{
	unlink(logfile);
}

TestSuite(mock, .init = setup, .fini = teardown, .timeout = 60);

/* How many calls of FUNC answered RV ("CKR_OK", …; NULL: any). */
static int calls(const char *func, const char *rv)
{
	char line[128], want[128];
	int n = 0;
	FILE *f = fopen(logfile, "r");

	cr_assert(f);
	if (rv)
		snprintf(want, sizeof(want), "%s %s\n", func, rv);
	else
		snprintf(want, sizeof(want), "%s ", func);
	while (fgets(line, sizeof(line), f))
		if (rv ? strcmp(line, want) == 0 : strncmp(line, want, strlen(want)) == 0)
			n++;
	fclose(f);
	return n;
}

static void clear_log(void)
{
	FILE *f = fopen(logfile, "w");

	cr_assert(f);
	fclose(f);
}

static struct p11e_uri *uri_of(const char *query)
{
	char text[512];
	struct p11e_uri *uri = NULL;
	struct p11e_err err = { 0 };

	snprintf(text, sizeof(text), "pkcs11:token=mock;object=k?module-path=%s%s", MOCK_MODULE,
		 query);
	cr_assert_eq(p11e_uri_parse(text, &uri, &err), P11E_OK, "%s", err.msg);
	return uri;
}

/* Open, generate, a verified CSR, store a certificate object, remove the
 * key: everything p11enroll asks of a token. P11E_OK or the first error. */
static p11e_status everything(const char *type, const char *query, struct p11e_err *err)
{
	struct p11e_uri *uri = uri_of(query);
	struct p11e_token *tok = NULL;
	struct p11e_key key = { 0 };
	struct p11e_signer signer;
	struct p11e_csr_request req = { .subject = "CN=mock.example.com" };
	X509_REQ *csr = NULL;
	X509 *cert = NULL;
	p11e_status rc;

	rc = p11e_token_open(uri, &tok, err);
	if (rc == P11E_OK)
		rc = p11e_token_generate(tok, spec(type), "k", NULL, 0, &key, err);
	if (rc == P11E_OK) {
		p11e_token_signer(tok, &key, &signer);
		rc = p11e_csr_build(&req, &signer, &csr, err);
	}
	if (rc == P11E_OK) {
		cert = issue(key.pub_pkey, "leaf", 7);
		rc = p11e_token_store_chain(tok, &key, cert, NULL, err);
	}
	if (rc == P11E_OK && p11e_token_count_certs(tok, &key) != 1)
		rc = p11e_err_set(err, P11E_EFAIL, "the certificate object is missing");
	if (rc == P11E_OK)
		rc = p11e_token_destroy_key(tok, &key, err);
	X509_free(cert);
	X509_REQ_free(csr);
	p11e_key_clear(&key);
	p11e_token_close(tok);
	p11e_uri_free(uri);
	return rc;
}

Test(mock, plain_token_does_everything)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(everything("rsa-2048", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("C_Login", "CKR_OK"), 2);
}

Test(mock, hash_and_sign_mechanisms_only)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "mechs=hashonly", 1);
	cr_assert_eq(everything("rsa-2048", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(everything("ec-p384", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("C_SignInit", NULL), 3);
	cr_assert_eq(calls("mechanism", "CKM_SHA256_RSA_PKCS"), 1);
	cr_assert_eq(calls("mechanism", "CKM_ECDSA_SHA256"), 1);
	cr_assert_eq(calls("mechanism", "CKM_ECDSA_SHA384"), 1);
}

/* A token with both: it hashes (one call names the whole signature). */
Test(mock, hash_and_sign_is_used_when_offered)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(everything("rsa-2048", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("mechanism", "CKM_ECDSA_SHA256"), 1);
	cr_assert_eq(calls("mechanism", "CKM_SHA256_RSA_PKCS"), 1);
	cr_assert_eq(calls("mechanism", "CKM_ECDSA"), 0,
		     "raw ECDSA used although ECDSA_SHA256 is offered");
	cr_assert_eq(calls("mechanism", "CKM_RSA_PKCS"), 0,
		     "raw RSA used although SHA256_RSA_PKCS is offered");
}

Test(mock, raw_mechanisms_only)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "mechs=raw", 1);
	cr_assert_eq(everything("rsa-2048", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(everything("ec-p384", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("mechanism", "CKM_RSA_PKCS"), 1);
	cr_assert_eq(calls("mechanism", "CKM_ECDSA"), 1);
}

Test(mock, bare_ec_point)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "ecpoint=bare", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
}

Test(mock, more_than_64_slots)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "slots=70", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_geq(calls("C_GetSlotList", "CKR_OK"), 2, "asked for the count, then the list");
}

Test(mock, enumeration_that_finds_nothing_once_is_retried)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "fail=C_GetTokenInfo:CKR_DEVICE_ERROR:1", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("C_GetTokenInfo", "CKR_DEVICE_ERROR"), 1);
}

Test(mock, absent_token_is_still_said_plainly)
{
	struct p11e_err err = { 0 };
	struct p11e_uri *uri = NULL;
	struct p11e_token *tok = NULL;
	char text[512];

	setenv("MOCKP11", "slots=2", 1);
	snprintf(text, sizeof(text), "pkcs11:token=nosuch;object=k?module-path=%s&pin-value=1234",
		 MOCK_MODULE);
	cr_assert_eq(p11e_uri_parse(text, &uri, &err), P11E_OK);
	cr_assert_eq(p11e_token_open(uri, &tok, &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "no token matches the key URI; tokens found: 'other-10'"), "%s",
		  err.msg);
	cr_assert(strstr(err.msg, "'mock'"), "%s", err.msg);
	p11e_uri_free(uri);
}

Test(mock, key_without_never_extractable_is_refused_and_destroyed)
{
	struct p11e_err err = { 0 };
	struct p11e_uri *uri = uri_of("&pin-value=1234");
	struct p11e_token *tok = NULL;
	struct p11e_key key;
	bool found = true;

	setenv("MOCKP11", "no_never_extractable", 1);
	cr_assert_eq(p11e_token_open(uri, &tok, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(p11e_token_generate(tok, spec("ec-p256"), "k", NULL, 0, &key, &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "CKA_NEVER_EXTRACTABLE=0"), "%s", err.msg);
	cr_assert(strstr(err.msg, "it was destroyed"), "%s", err.msg);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_token_find_key(tok, "k", NULL, 0, &key, &found, &err), P11E_OK);
	cr_assert(!found, "the refused key is still on the token");
	p11e_token_close(tok);
	p11e_uri_free(uri);
}

Test(mock, key_without_cka_local_is_accepted)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "no_local", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
}

/* The pair just made is read back through the handles C_GenerateKeyPair
 * returned: no search, which on SoftHSM2's file store costs a re-read of
 * every object of the token (docs/tokens.md). */
Test(mock, generated_key_is_read_back_without_a_search)
{
	struct p11e_err err = { 0 };
	struct p11e_uri *uri = uri_of("&pin-value=1234");
	struct p11e_token *tok = NULL;
	struct p11e_key key = { 0 };

	cr_assert_eq(p11e_token_open(uri, &tok, &err), P11E_OK, "%s", err.msg);
	clear_log();
	cr_assert_eq(p11e_token_generate(tok, spec("ec-p256"), "k", NULL, 0, &key, &err), P11E_OK,
		     "%s", err.msg);
	cr_assert_eq(calls("C_FindObjectsInit", NULL), 0);
	cr_assert_neq(key.pub, CK_INVALID_HANDLE);
	cr_assert(key.pub_pkey);
	p11e_key_clear(&key);
	p11e_token_close(tok);
	p11e_uri_free(uri);
}

Test(mock, certificate_category_refused)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "refuse_category", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("C_CreateObject", "CKR_ATTRIBUTE_TYPE_INVALID"), 1);
	cr_assert_eq(calls("C_CreateObject", "CKR_OK"), 1);
}

Test(mock, token_without_login_needs_no_pin)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "nologin", 1);
	cr_assert_eq(everything("ec-p256", "", &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 0);
}

Test(mock, token_with_login_and_no_pin_asks_for_one)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(everything("ec-p256", "", &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "add pin-source="), "%s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 0);
}

Test(mock, wrong_pin_is_tried_once)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(everything("ec-p256", "&pin-value=9999", &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "wrong PIN"), "%s", err.msg);
	cr_assert_not(strstr(err.msg, "9999"), "the PIN is in the message: %s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 1);
}

Test(mock, locked_pin)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "flags=LOCKED", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "is locked"), "%s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 0);
	/* A token that says so only when asked. */
	setenv("MOCKP11", "login=CKR_PIN_LOCKED", 1);
	p11e_err_clear(&err);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "is locked"), "%s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 1);
}

Test(mock, final_try_is_not_risked)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "flags=FINAL_TRY", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "one more PIN attempt"), "%s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 0);
}

Test(mock, pin_to_be_changed)
{
	struct p11e_err err = { 0 };

	setenv("MOCKP11", "flags=TO_BE_CHANGED", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_ETOKEN);
	cr_assert(strstr(err.msg, "must be changed"), "%s", err.msg);
	cr_assert_eq(calls("C_Login", NULL), 0);
}

static const char *const lost[] = {
	"CKR_SESSION_HANDLE_INVALID", "CKR_SESSION_CLOSED",     "CKR_DEVICE_REMOVED",
	"CKR_TOKEN_NOT_PRESENT",      "CKR_USER_NOT_LOGGED_IN", "CKR_DEVICE_ERROR",
};
static const char *const steps[] = {
	"C_OpenSession",     "C_Login",         "C_GetMechanismInfo",
	"C_FindObjectsInit", "C_FindObjects",   "C_GetAttributeValue",
	"C_GenerateKeyPair", "C_SignInit",      "C_Sign",
	"C_CreateObject",    "C_DestroyObject",
};

/* Once: the session is opened and logged in again, and all goes through,
 * with one key on the token. */
Test(mock, every_lost_session_once_at_every_step_is_survived)
{
	char conf[128];

	for (size_t r = 0; r < sizeof(lost) / sizeof(lost[0]); r++) {
		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			struct p11e_err err = { 0 };

			clear_log();
			snprintf(conf, sizeof(conf), "fail=%s:%s:1;n=%zu", steps[s], lost[r],
				 r * 100 + s);
			setenv("MOCKP11", conf, 1);
			cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_OK,
				     "%s at %s: %s", lost[r], steps[s], err.msg);
			cr_assert_eq(calls(steps[s], lost[r]), 1, "%s at %s was not injected", lost[r],
				     steps[s]);
			cr_assert_leq(calls("C_Login", NULL), 2, "%s at %s", lost[r], steps[s]);
			cr_assert_eq(calls("C_GenerateKeyPair", "CKR_OK"), 1, "%s at %s: a second key",
				     lost[r], steps[s]);
		}
	}
}

/* Always: one re-open, then a message that says what happened. */
Test(mock, every_lost_session_that_stays_lost_fails_clearly)
{
	char conf[128];

	for (size_t r = 0; r < sizeof(lost) / sizeof(lost[0]); r++) {
		for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
			struct p11e_err err = { 0 };
			p11e_status rc;

			clear_log();
			snprintf(conf, sizeof(conf), "fail=%s:%s:*;n=%zu", steps[s], lost[r],
				 r * 100 + s);
			setenv("MOCKP11", conf, 1);
			rc = everything("ec-p256", "&pin-value=1234", &err);
			cr_assert_eq(rc, P11E_ETOKEN, "%s at %s: %d %s", lost[r], steps[s], rc,
				     err.msg);
			cr_assert(strstr(err.msg, "again"), "%s at %s: %s", lost[r], steps[s],
				  err.msg);
			cr_assert_leq(calls("C_Login", NULL), 2, "%s at %s: more than one re-login",
				      lost[r], steps[s]);
		}
	}
}

Test(mock, refused_pin_is_never_tried_again_after_a_lost_session)
{
	struct p11e_err err = { 0 };

	/* The session goes, and at the re-login the token refuses the PIN. */
	setenv("MOCKP11", "fail=C_Sign:CKR_DEVICE_REMOVED:1;fail=C_Login:CKR_PIN_INCORRECT:*:1", 1);
	cr_assert_eq(everything("ec-p256", "&pin-value=1234", &err), P11E_ETOKEN);
	cr_assert_eq(calls("C_Login", "CKR_OK"), 1);
	cr_assert_eq(calls("C_Login", "CKR_PIN_INCORRECT"), 1, "a refused PIN was tried again");
	cr_assert(strstr(err.msg, "wrong PIN"), "%s", err.msg);
}
