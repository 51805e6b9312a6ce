/* SPDX-License-Identifier: Apache-2.0 */
/* The key_type policy (p11enroll.conf(5)): which key pairs p11enroll makes and accepts. */
#ifndef P11E_POLICY_H
#define P11E_POLICY_H

#include <openssl/evp.h>

#include "err.h"

typedef enum { P11E_ALG_RSA, P11E_ALG_EC } p11e_alg;

struct p11e_key_spec {
	const char *name; /* "ec-p256" */
	p11e_alg alg;
	unsigned bits;          /* RSA modulus or curve size */
	int curve_nid;          /* EC only */
	const char *curve_name; /* OpenSSL group name, EC only */
	const char *digest;     /* CSR signature digest */
};

/* The allowed set as one string for messages. */
const char *p11e_policy_allowed(void);

/* Looks a configured key_type up; anything else is P11E_EUSAGE naming the
 * allowed set. Called before any token operation. */
p11e_status p11e_policy_parse(const char *name, const struct p11e_key_spec **out,
			      struct p11e_err *err);

/* Classifies a public key found on a token and refuses one outside the
 * policy (P11E_ETOKEN: the token holds a key that breaks the policy). */
p11e_status p11e_policy_classify(EVP_PKEY *pub, const struct p11e_key_spec **out,
				 struct p11e_err *err);

#endif
