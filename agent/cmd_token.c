/* SPDX-License-Identifier: Apache-2.0 */
/* keygen and csr: the first two steps of an enrolment on their own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "keys.h"
#include "log.h"

p11e_status p11e_cmd_keygen(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	const struct p11e_cert_conf *cert;
	struct p11e_cert_key ck;
	char *uri = NULL;
	p11e_status rc;

	if (argc != 2 || argv[1][0] == '-')
		return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll keygen NAME");
	rc = p11e_cli_cert(cli, argv[1], &cert, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_cert_key_open(cert, NULL, &ck, err);
	if (rc == P11E_OK)
		rc = p11e_cert_key_ensure(cert, &ck, err);
	if (rc != P11E_OK)
		goto out;
	uri = p11e_cert_key_uri(&ck);
	p11e_info("%s %s key '%s' on %s%s", ck.generated ? "generated" : "reusing", ck.key.spec->name,
		  ck.key.label, p11e_cert_key_noun(&ck), p11e_cert_key_where(&ck));
	printf("%s\n", uri ? uri : "");
out:
	free(uri);
	p11e_cert_key_close(&ck);
	return rc;
}

p11e_status p11e_cmd_csr(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	const struct p11e_cert_conf *cert;
	const char *name = NULL, *output = NULL;
	struct p11e_cert_key ck = { 0 };
	X509_REQ *req = NULL;
	char *pem = NULL;
	p11e_status rc;

	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) && i + 1 < argc)
			output = argv[++i];
		else if (argv[i][0] != '-' && !name)
			name = argv[i];
		else
			return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll csr NAME [-o FILE]");
	}
	if (!name)
		return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll csr NAME [-o FILE]");
	rc = p11e_cli_cert(cli, name, &cert, err);
	if (rc != P11E_OK)
		return rc;
	rc = p11e_cert_key_open(cert, NULL, &ck, err);
	if (rc == P11E_OK)
		rc = p11e_cert_key_csr(cert, &ck, &req, err);
	if (rc != P11E_OK)
		goto out;
	pem = p11e_csr_to_pem(req);
	if (!pem) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot encode the CSR");
		goto out;
	}
	if (output) {
		rc = p11e_write_atomic(output, pem, strlen(pem), 0644, (uid_t)-1, (gid_t)-1, err);
		if (rc == P11E_OK)
			p11e_info("wrote the CSR of [cert:%s] to %s", name, output);
	} else {
		fputs(pem, stdout);
	}
out:
	free(pem);
	X509_REQ_free(req);
	p11e_cert_key_close(&ck);
	return rc;
}
