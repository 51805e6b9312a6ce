/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <string.h>

#include <openssl/evp.h>

#include "policy.h"

Test(policy, allowed_types_parse)
{
	const char *names[] = { "rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384", "EC-P256" };
	const unsigned bits[] = { 2048, 3072, 4096, 256, 384, 256 };

	for (size_t i = 0; i < 6; i++) {
		const struct p11e_key_spec *spec = NULL;
		struct p11e_err err = { 0 };

		cr_assert_eq(p11e_policy_parse(names[i], &spec, &err), P11E_OK, "%s", names[i]);
		cr_assert_eq(spec->bits, bits[i]);
	}
}

Test(policy, digest_follows_the_curve)
{
	const struct p11e_key_spec *spec;
	struct p11e_err err = { 0 };

	p11e_policy_parse("ec-p384", &spec, &err);
	cr_assert_str_eq(spec->digest, "SHA384");
	p11e_policy_parse("ec-p256", &spec, &err);
	cr_assert_str_eq(spec->digest, "SHA256");
	p11e_policy_parse("rsa-4096", &spec, &err);
	cr_assert_str_eq(spec->digest, "SHA256");
}

Test(policy, refusals_name_the_allowed_set)
{
	const char *bad[] = { "rsa-1024", "rsa-8192", "rsa-2047", "ec-p521",
			      "ed25519",  "ed448",    "",         "rsa" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct p11e_key_spec *spec = NULL;
		struct p11e_err err = { 0 };

		cr_assert_eq(p11e_policy_parse(bad[i], &spec, &err), P11E_EUSAGE, "%s", bad[i]);
		cr_assert(strstr(err.msg, "rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384"), "%s",
			  err.msg);
		cr_assert(spec == NULL);
	}
}

static EVP_PKEY *make_key(const char *alg, const char *param)
{
	EVP_PKEY *key;

	if (strcmp(alg, "RSA") == 0)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(param));
	else if (strcmp(alg, "EC") == 0)
		key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
	else
		key = EVP_PKEY_Q_keygen(NULL, NULL, alg);
	cr_assert(key);
	return key;
}

Test(policy, classify_found_keys)
{
	struct {
		const char *alg, *param, *want;
	} cases[] = {
		{ "EC", "P-256", "ec-p256" },  { "EC", "P-384", "ec-p384" },
		{ "RSA", "2048", "rsa-2048" }, { "EC", "P-521", NULL },
		{ "RSA", "1024", NULL },       { "ED25519", "", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		EVP_PKEY *key = make_key(cases[i].alg, cases[i].param);
		const struct p11e_key_spec *spec = NULL;
		struct p11e_err err = { 0 };
		p11e_status rc = p11e_policy_classify(key, &spec, &err);

		if (cases[i].want) {
			cr_assert_eq(rc, P11E_OK, "%s", err.msg);
			cr_assert_str_eq(spec->name, cases[i].want);
		} else {
			cr_assert_eq(rc, P11E_ETOKEN, "%s %s", cases[i].alg, cases[i].param);
			cr_assert(strstr(err.msg, "allowed: rsa-2048"), "%s", err.msg);
		}
		EVP_PKEY_free(key);
	}
}
