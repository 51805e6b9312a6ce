/* SPDX-License-Identifier: Apache-2.0 */
/* What every command gets from the command line, and the command table. */
#ifndef P11E_CLI_H
#define P11E_CLI_H

#include <stdbool.h>

#include "config.h"
#include "err.h"

struct p11e_cli {
	const char *config_path;
	bool json;
	int verbosity; /* -1 quiet, 0 normal, 1 verbose */
	struct p11e_config *cfg;
};

struct p11e_command {
	const char *name;
	const char *synopsis; /* after "p11enroll NAME " */
	const char *help;     /* what it does, its options, exit codes */
	p11e_status (*run)(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
};

/* Loads cli->cfg once (from -c, P11ENROLL_CONFIG or the default). */
p11e_status p11e_cli_config(struct p11e_cli *cli, struct p11e_err *err);
/* The [cert:NAME] or a usage error naming the sections there are. */
p11e_status p11e_cli_cert(struct p11e_cli *cli, const char *name, const struct p11e_cert_conf **out,
			  struct p11e_err *err);
/* True (and prints the command's help) when argv holds -h/--help. */
bool p11e_cli_wants_help(const struct p11e_command *cmd, int argc, char **argv);

p11e_status p11e_cmd_enroll(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_renew(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_keygen(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_csr(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_check(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_products(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_orders(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_status(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_revoke(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_reconcile(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_cancel(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);
p11e_status p11e_cmd_agent(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err);

#endif
