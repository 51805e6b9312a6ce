/* SPDX-License-Identifier: Apache-2.0 */
#include "keys.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "csr.h"
#include "log.h"

static const char *key_label(const struct p11e_cert_conf *cert, const struct p11e_uri *uri)
{
	return uri->object ? uri->object : cert->name;
}

/* Hex text → bytes; false when malformed. */
static bool unhex(const char *hex, unsigned char *out, size_t max, size_t *len)
{
	size_t n = strlen(hex) / 2;
	long v;

	if (strlen(hex) % 2 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char pair[3] = { hex[2 * i], hex[2 * i + 1], 0 };
		char *end;

		v = strtol(pair, &end, 16);
		if (*end)
			return false;
		out[i] = (unsigned char)v;
	}
	*len = n;
	return true;
}

p11e_status p11e_cert_key_open(const struct p11e_cert_conf *cert, const char *id_hex,
			       struct p11e_cert_key *ck, struct p11e_err *err)
{
	const unsigned char *id;
	unsigned char id_buf[64];
	size_t id_len;
	char where[300];
	p11e_status rc;

	memset(ck, 0, sizeof(*ck));
	rc = p11e_uri_parse(cert->key, &ck->uri, err);
	if (rc != P11E_OK)
		return rc;
	id = ck->uri->id;
	id_len = ck->uri->id_len;
	if (id_hex && *id_hex) {
		if (!unhex(id_hex, id_buf, sizeof(id_buf), &id_len))
			return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s' in the journal",
					    id_hex);
		id = id_buf;
	}
	rc = p11e_token_open(ck->uri, &ck->tok, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_token_find_key(ck->tok, key_label(cert, ck->uri), id, id_len, &ck->key,
				 &ck->have_key, err);
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

p11e_status p11e_cert_key_rotate(const struct p11e_cert_conf *cert, struct p11e_cert_key *ck,
				 struct p11e_err *err)
{
	struct p11e_key fresh;
	p11e_status rc;

	/* A new random id: the URI's id= names the first key only. */
	rc = p11e_token_generate(ck->tok, cert->key_spec, key_label(cert, ck->uri), NULL, 0, &fresh,
				 err);
	if (rc != P11E_OK)
		return rc;
	p11e_key_clear(&ck->key);
	ck->key = fresh;
	ck->have_key = true;
	ck->generated = true;
	return P11E_OK;
}

EVP_PKEY *p11e_cert_key_public(const struct p11e_cert_key *ck)
{
	return ck->have_key ? ck->key.pub_pkey : NULL;
}

void p11e_cert_key_id_hex(const struct p11e_cert_key *ck, char *buf, size_t len)
{
	if (len < 2 * ck->key.id_len + 1) {
		*buf = '\0';
		return;
	}
	p11e_hex(ck->key.id, ck->key.id_len, buf);
}

bool p11e_cert_key_has_objects(const struct p11e_cert_key *ck)
{
	return ck->tok != NULL;
}

p11e_status p11e_cert_key_store_chain(struct p11e_cert_key *ck, X509 *leaf, STACK_OF(X509) *cas,
				      struct p11e_err *err)
{
	return p11e_token_store_chain(ck->tok, &ck->key, leaf, cas, err);
}

p11e_status p11e_cert_key_remove(struct p11e_cert_key *ck, const char *id_hex,
				 struct p11e_err *err)
{
	struct p11e_key old;
	unsigned char id[64];
	size_t id_len;
	bool found = false;
	p11e_status rc;

	if (!unhex(id_hex, id, sizeof(id), &id_len) || id_len == 0)
		return p11e_err_set(err, P11E_EFAIL, "malformed key id '%s'", id_hex);
	if (ck->have_key && id_len == ck->key.id_len && memcmp(id, ck->key.id, id_len) == 0)
		return p11e_err_set(err, P11E_EFAIL, "refusing to remove the key in use");
	rc = p11e_token_find_key(ck->tok, NULL, id, id_len, &old, &found, err);
	if (rc != P11E_OK || !found)
		return rc;
	return p11e_token_destroy_key(ck->tok, &old, err);
}

const char *p11e_cert_key_where(const struct p11e_cert_key *ck)
{
	return ck->tok ? p11e_token_describe(ck->tok) : "";
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
