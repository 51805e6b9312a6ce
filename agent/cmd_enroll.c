/* SPDX-License-Identifier: Apache-2.0 */
#include <string.h>

#include "cli.h"
#include "enroll.h"
#include "util.h"

p11e_status p11e_cmd_enroll(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct p11e_enroll_opts opts = { .wait = -1, .lock_wait = 10 };
	const struct p11e_cert_conf *cert;
	const char *name = NULL;
	bool dry_run = false;
	p11e_status rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc) {
			opts.wait = p11e_parse_duration(argv[++i]);
			if (opts.wait < 0)
				return p11e_err_set(err, P11E_EUSAGE,
						    "--wait %s: not a duration (e.g. 90s, 10m)", argv[i]);
		} else if (strcmp(argv[i], "--dry-run") == 0) {
			dry_run = true;
		} else if (argv[i][0] != '-' && !name) {
			name = argv[i];
		} else {
			return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll enroll NAME [--wait DUR]");
		}
	}
	if (!name)
		return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll enroll NAME [--wait DUR]");
	rc = p11e_cli_cert(cli, name, &cert, err);
	if (rc != P11E_OK)
		return rc;
	if (dry_run)
		return p11e_enroll_dry_run(cli, cert, err);
	return p11e_enroll(cli, cert, &opts, err);
}
