/* SPDX-License-Identifier: Apache-2.0 */
/* Certificate chains as the CAs send them (PEM, any order, any count):
 * the agent's split and leaf pick for our key (p11e_issued_parse, then the
 * chain verification and the PEM texts it installs), and The SSL Store's
 * chain picker over the same certificates given one per entry. The key
 * is taken from each of the first certificates in turn, so that the leaf
 * of a real chain is found. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "install.h"
#include "sslstore_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void agent_side(const char *text, EVP_PKEY *pub)
{
	struct p11e_cert_conf cert;
	struct p11e_issued issued;
	struct p11e_err err = { 0 };
	char serial[130];

	memset(&cert, 0, sizeof(cert));
	if (p11e_issued_parse(text, pub, &issued, &err) == P11E_OK) {
		p11e_err_clear(&err);
		(void)p11e_issued_verify(&issued, &cert, &err);
		free(p11e_issued_leaf_pem(&issued));
		free(p11e_issued_chain_pem(&issued));
		p11e_issued_serial(&issued, serial, sizeof(serial));
		(void)p11e_issued_not_after(&issued);
	}
	p11e_issued_free(&issued);
	p11e_err_clear(&err);
}

/* One entry per "-----BEGIN", as the download's Certificates array. */
static void picker(char *text)
{
	const char *pems[16];
	char *chain = NULL, serial[130], why[256], *p = text, *next;
	time_t not_after;
	size_t n = 0;

	while (p && *p && n < 16) {
		next = strstr(p + 1, "-----BEGIN");
		pems[n++] = p;
		if (next)
			next[-1] = '\0';
		p = next;
	}
	if (n && ss_select_chain(pems, n, &chain, serial, sizeof(serial), &not_after, why,
				 sizeof(why)) == 0)
		free(chain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 2);
	BIO *bio;
	X509 *cert;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	bio = BIO_new_mem_buf(text, -1);
	for (int i = 0; bio && i < 3 && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)); i++) {
		agent_side(text, X509_get0_pubkey(cert));
		X509_free(cert);
	}
	BIO_free(bio);
	ERR_clear_error();
	picker(text);
	ERR_clear_error();
	free(text);
	return 0;
}
