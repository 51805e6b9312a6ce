/* SPDX-License-Identifier: Apache-2.0 */
/* The key of a [cert:NAME]: its token opened, the key found or made. */
#ifndef P11E_KEYS_H
#define P11E_KEYS_H

#include <stdbool.h>

#include <openssl/x509.h>

#include "config.h"
#include "token.h"

struct p11e_cert_key {
	struct p11e_uri *uri;
	struct p11e_token *tok;
	struct p11e_key key;
	bool have_key;
	bool generated;          /* made by this run */
};

/* Opens the token of `cert` and looks its key up (label = object= or the
 * certificate name, id = id= when given). A key found is checked against
 * key_type and the protection SPEC asks for. */
p11e_status p11e_cert_key_open(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			       struct p11e_err *err);
/* Generates the key when none was found. */
p11e_status p11e_cert_key_ensure(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 struct p11e_err *err);
/* The CSR of `cert`, signed by the key. */
p11e_status p11e_cert_key_csr(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			      X509_REQ **out, struct p11e_err *err);
/* The key's URI (token, object, id, module; no PIN); free(). */
char *p11e_cert_key_uri(const struct p11e_cert_key *ck);
void p11e_cert_key_close(struct p11e_cert_key *ck);

#endif
