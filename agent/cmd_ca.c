/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

p11e_status p11e_cmd_check(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	(void)cli; (void)argc; (void)argv;
	return p11e_err_set(err, P11E_EFAIL, "not yet");
}
p11e_status p11e_cmd_products(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	(void)cli; (void)argc; (void)argv;
	return p11e_err_set(err, P11E_EFAIL, "not yet");
}
p11e_status p11e_cmd_orders(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	(void)cli; (void)argc; (void)argv;
	return p11e_err_set(err, P11E_EFAIL, "not yet");
}
