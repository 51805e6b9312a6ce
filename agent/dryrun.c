/* SPDX-License-Identifier: Apache-2.0 */
/* enroll --dry-run: the CA checks the order a configuration would place,
 * before a key is made or money is spent. The CSR is signed by a throwaway
 * software key of the configured type (nothing touches the token); the CA
 * judges the parameters, not the key (docs/orders.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ca.h"
#include "csr.h"
#include "enroll.h"
#include "keys.h"
#include "log.h"
#include "util.h"

p11e_status p11e_enroll_dry_run(struct p11e_cli *cli, const struct p11e_cert_conf *cert,
				struct p11e_err *err)
{
	const struct p11e_key_spec *spec = cert->key_spec;
	struct p11e_csr_request req = p11e_cert_csr_request(cert);
	struct p11e_ca_result res = { 0 };
	struct p11e_ca_handle h = { 0 };
	struct p11e_signer signer = { 0 };
	struct p11e_order o = { 0 };
	EVP_PKEY *key = NULL;
	X509_REQ *csr = NULL;
	char *pem = NULL, idem[40], hex[17], cn[256] = "";
	unsigned char rnd[8];
	bool h_open = false;
	p11e_status rc;

	if (!cert->ca)
		return p11e_err_set(err, P11E_EUSAGE, "%s:%d: [cert:%s] has no ca = NAME", cert->file,
				    cert->line, cert->name);
	key = spec->alg == P11E_ALG_EC ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", spec->curve_name)
				       : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)spec->bits);
	if (!key) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot make the throwaway %s key", spec->name);
		goto out;
	}
	/* OpenSSL holds the key: it signs the CSR itself (keygen/csr.h). */
	signer.pub = key;
	signer.priv = key;
	signer.spec = spec;
	rc = p11e_csr_build(&req, &signer, &csr, err);
	if (rc != P11E_OK)
		goto out;
	pem = p11e_csr_to_pem(csr);
	X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(csr), NID_commonName, cn, sizeof(cn));
	if (!pem || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot encode the dry-run CSR");
		goto out;
	}
	p11e_hex(rnd, sizeof(rnd), hex);
	snprintf(idem, sizeof(idem), "p11e-dry-%s", hex);
	rc = p11e_ca_handle_open(cli->cfg, cert->ca, &h, err);
	if (rc != P11E_OK)
		goto out;
	h_open = true;
	if (!h.ops->dry_run) {
		printf("%s: the CSR and the configuration are valid; [ca:%s] (%s) has no dry-run call, "
		       "so the CA itself was not asked\n",
		       cert->name, cert->ca, h.ops->type);
		goto out;
	}
	o.name = cert->name;
	o.csr_pem = pem;
	o.common_name = cn[0] ? cn : NULL;
	o.dns = &cert->dns;
	o.idempotency_id = idem;
	o.overrides = &cert->overrides;
	p11e_info("[cert:%s] asking [ca:%s] to check the order (dry run: nothing is placed)",
		  cert->name, cert->ca);
	h.ops->dry_run(h.ca, &o, &res);
	if (res.outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(&res, "the CA would not accept the order", err);
		p11e_err_prefix(err, "[cert:%s] dry run", cert->name);
		goto out;
	}
	printf("%s: %s\n", cert->name, res.message[0] ? res.message : "the CA accepts the order");
out:
	p11e_ca_result_clear(&res);
	if (h_open)
		p11e_ca_handle_close(&h);
	free(pem);
	X509_REQ_free(csr);
	EVP_PKEY_free(key);
	return rc;
}
