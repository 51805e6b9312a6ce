/* SPDX-License-Identifier: Apache-2.0 */
#include "policy.h"

#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/obj_mac.h>

static const struct p11e_key_spec specs[] = {
	{ "rsa-2048", P11E_ALG_RSA, 2048, 0, NULL, "SHA256" },
	{ "rsa-3072", P11E_ALG_RSA, 3072, 0, NULL, "SHA256" },
	{ "rsa-4096", P11E_ALG_RSA, 4096, 0, NULL, "SHA256" },
	{ "ec-p256", P11E_ALG_EC, 256, NID_X9_62_prime256v1, "P-256", "SHA256" },
	{ "ec-p384", P11E_ALG_EC, 384, NID_secp384r1, "P-384", "SHA384" },
};
#define N_SPECS (sizeof(specs) / sizeof(specs[0]))

const char *p11e_policy_allowed(void)
{
	return "rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384";
}

p11e_status p11e_policy_parse(const char *name, const struct p11e_key_spec **out, struct p11e_err *err)
{
	for (size_t i = 0; i < N_SPECS; i++) {
		if (strcasecmp(name, specs[i].name) == 0) {
			*out = &specs[i];
			return P11E_OK;
		}
	}
	return p11e_err_set(err, P11E_EUSAGE, "key type '%s' is not allowed; allowed: %s", name,
			    p11e_policy_allowed());
}

p11e_status p11e_policy_classify(EVP_PKEY *pub, const struct p11e_key_spec **out, struct p11e_err *err)
{
	char group[64] = "";
	int bits = EVP_PKEY_get_bits(pub);

	if (EVP_PKEY_is_a(pub, "RSA")) {
		for (size_t i = 0; i < N_SPECS; i++) {
			if (specs[i].alg == P11E_ALG_RSA && (int)specs[i].bits == bits) {
				*out = &specs[i];
				return P11E_OK;
			}
		}
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key on the token is RSA-%d, which the policy does not "
				    "allow (allowed: %s)",
				    bits, p11e_policy_allowed());
	}
	if (EVP_PKEY_is_a(pub, "EC")) {
		EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
					       NULL);
		for (size_t i = 0; i < N_SPECS; i++) {
			if (specs[i].alg == P11E_ALG_EC &&
			    (strcasecmp(group, specs[i].curve_name) == 0 ||
			     strcmp(group, OBJ_nid2sn(specs[i].curve_nid)) == 0)) {
				*out = &specs[i];
				return P11E_OK;
			}
		}
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key on the token is EC on curve %s, which the policy "
				    "does not allow (allowed: %s)",
				    *group ? group : "(unknown)", p11e_policy_allowed());
	}
	return p11e_err_set(err, P11E_ETOKEN,
			    "the key on the token is of type %s, which the policy does not allow "
			    "(allowed: %s)",
			    EVP_PKEY_get0_type_name(pub) ? EVP_PKEY_get0_type_name(pub) : "?",
			    p11e_policy_allowed());
}
