/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate chains as the CAs send them (PEM, any order, any count):
 * the agent's leaf pick for our key and the chain OpenSSL builds
 * (p11e_issued_parse over common/chain.c, then the chain verification and
 * the PEM texts it installs), and the readers the providers use on the same
 * text, whole and one piece per entry (common/chain.h). The key
 * is taken from each of the first certificates in turn, so that the leaf
 * of a real chain is found; the names asked for are the subject
 * alternative names of the first certificate, as the configuration would
 * list them (so the name check passes for a leaf-first chain and fails for
 * another pick). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "chain.h"
#include "install.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [cert:] dns/ip/email/uri as the SANs of `x` list them. */
static void names_of(X509 *x, struct p11e_cert_conf *cert)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	char ip[INET6_ADDRSTRLEN];

	for (int k = 0; gens && k < sk_GENERAL_NAME_num(gens) && k < 16; k++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, k);
		const ASN1_STRING *v = g->type == GEN_DNS     ? g->d.dNSName
				       : g->type == GEN_EMAIL ? g->d.rfc822Name
				       : g->type == GEN_URI   ? g->d.uniformResourceIdentifier
				       : g->type == GEN_IPADD ? g->d.iPAddress
							      : NULL;
		char *text;

		if (!v)
			continue;
		if (g->type == GEN_IPADD) {
			int af = v->length == 4 ? AF_INET : v->length == 16 ? AF_INET6 : 0;

			if (af && inet_ntop(af, v->data, ip, sizeof(ip)))
				p11e_strlist_add(&cert->ip, ip);
			continue;
		}
		text = strndup((const char *)v->data, (size_t)v->length);
		if (text)
			p11e_strlist_add(g->type == GEN_DNS     ? &cert->dns
					 : g->type == GEN_EMAIL ? &cert->email
								: &cert->uri,
					 text);
		free(text);
	}
	GENERAL_NAMES_free(gens);
}

static void agent_side(const char *text, EVP_PKEY *pub, const struct p11e_cert_conf *cert)
{
	struct p11e_issued issued;
	struct p11e_err err = { 0 };
	char serial[130];

	if (p11e_issued_parse(text, pub, &issued, &err) == P11E_OK) {
		p11e_err_clear(&err);
		(void)p11e_issued_verify(&issued, cert, &err);
		free(p11e_issued_leaf_pem(&issued));
		free(p11e_issued_chain_pem(&issued));
		p11e_issued_serial(&issued, serial, sizeof(serial));
		(void)p11e_issued_not_after(&issued);
	}
	p11e_issued_free(&issued);
	p11e_err_clear(&err);
}

/* The providers' readers: the whole text (PEM blocks or bare base64) as a
 * CERTInext field, then one piece per "-----BEGIN" as the entries of The
 * SSL Store's download, and the PEM text they hand to the agent. */
static void readers(char *text)
{
	STACK_OF(X509) *certs = sk_X509_new_null();
	char *p = text, *next;
	unsigned char *der;
	size_t len, n = 0;

	if (!certs)
		return;
	(void)p11e_certs_read(text, certs);
	if (p11e_base64_der(text, &der, &len) == 0)
		OPENSSL_free(der);
	sk_X509_pop_free(certs, X509_free);
	certs = sk_X509_new_null();
	while (certs && p && *p && n++ < 16) {
		next = strstr(p + 1, "-----BEGIN");
		if (next)
			next[-1] = '\0';
		(void)p11e_certs_read(p, certs);
		p = next;
	}
	free(p11e_certs_pem(NULL, certs, -1));
	sk_X509_pop_free(certs, X509_free);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 2);
	struct p11e_cert_conf conf;
	BIO *bio;
	X509 *cert;

	if (!text)
		return 0;
	p11e_log_set_level(P11E_LOG_ERROR);
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&conf, 0, sizeof(conf));
	bio = BIO_new_mem_buf(text, -1);
	for (int i = 0; bio && i < 3 && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)); i++) {
		if (i == 0)
			names_of(cert, &conf);
		agent_side(text, X509_get0_pubkey(cert), &conf);
		X509_free(cert);
	}
	BIO_free(bio);
	p11e_strlist_free(&conf.dns);
	p11e_strlist_free(&conf.ip);
	p11e_strlist_free(&conf.email);
	p11e_strlist_free(&conf.uri);
	ERR_clear_error();
	readers(text);
	ERR_clear_error();
	free(text);
	return 0;
}
