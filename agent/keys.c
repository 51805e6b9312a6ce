/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include <string.h>

#include "csr.h"
#include "log.h"

static const char *key_label(const struct p11e_cert_conf *cert, const struct p11e_uri *uri)
{
	return uri->object ? uri->object : cert->name;
}

p11e_status p11e_cert_key_open(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			       struct p11e_err *err)
{
	char where[300];
	p11e_status rc;

	memset(ck, 0, sizeof(*ck));
	rc = p11e_uri_parse(cert->key, &ck->uri, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_token_open(ck->uri, &ck->tok, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_token_find_key(ck->tok, key_label(cert, ck->uri), ck->uri->id, ck->uri->id_len,
				 &ck->key, &ck->have_key, err);
	if (rc != P11E_OK || !ck->have_key)
		return rc;
	p11e_cert_where(cert, "key_type", where, sizeof(where));
	if (ck->key.spec != cert->key_spec)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s is %s, but [cert:%s] asks for %s "
				    "(%s); it is not replaced automatically: change key_type or "
				    "the key URI's object=/id=",
				    ck->key.label, p11e_token_describe(ck->tok), ck->key.spec->name,
				    cert->name, cert->key_spec->name, where);
	if (!ck->key.sensitive || ck->key.extractable)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s can be exported (CKA_SENSITIVE=%d, "
				    "CKA_EXTRACTABLE=%d); p11enroll only certifies keys that "
				    "cannot leave the token",
				    ck->key.label, p11e_token_describe(ck->tok), ck->key.sensitive,
				    ck->key.extractable);
	return P11E_OK;
}

p11e_status p11e_cert_key_ensure(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 struct p11e_err *err)
{
	p11e_status rc;

	if (ck->have_key)
		return P11E_OK;
	rc = p11e_token_generate(ck->tok, cert->key_spec, key_label(cert, ck->uri), ck->uri->id,
				 ck->uri->id_len, &ck->key, err);
	if (rc != P11E_OK)
		return rc;
	ck->have_key = true;
	ck->generated = true;
	return P11E_OK;
}

p11e_status p11e_cert_key_csr(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
			      X509_REQ **out, struct p11e_err *err)
{
	struct p11e_csr_request req = {
		.subject = cert->subject,
		.dns = &cert->dns,
		.ip = &cert->ip,
		.email = &cert->email,
		.uri = &cert->uri,
		.client_auth = cert->client_auth,
	};
	struct p11e_signer signer;

	if (!ck->have_key)
		return p11e_err_set(err, P11E_ETOKEN,
				    "token %s has no key '%s' for [cert:%s]; make it with "
				    "`p11enroll keygen %s`",
				    p11e_token_describe(ck->tok), key_label(cert, ck->uri), cert->name,
				    cert->name);
	p11e_token_signer(ck->tok, &ck->key, &signer);
	return p11e_csr_build(&req, &signer, out, err);
}

char *p11e_cert_key_uri(const struct p11e_cert_key *ck)
{
	return p11e_uri_for_key(ck->uri, ck->key.label, ck->key.id, ck->key.id_len);
}

void p11e_cert_key_close(struct p11e_cert_key *ck)
{
	p11e_key_clear(&ck->key);
	p11e_token_close(ck->tok);
	p11e_uri_free(ck->uri);
	memset(ck, 0, sizeof(*ck));
}
