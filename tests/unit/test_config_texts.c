/* SPDX-License-Identifier: Apache-2.0 */
/* p11e_config_load_texts: the configuration from memory, includes resolved
 * against the given texts only (the fuzz target relies on it). */
#include <criterion/criterion.h>
#include <string.h>

#include "config.h"

#define TEXT(n, t)                      \
	{                               \
		(n), (t), sizeof(t) - 1 \
	}

static const char main_conf[] = "[agent]\n"
				"include_dir = /mem/conf.d\n"
				"state_dir = /var/lib/p11e-mem\n";
static const char web_conf[] = "[cert:web]\n"
			       "key = pkcs11:token=edge;object=web?module-name=softhsm2\n"
			       "subject = CN=www.example.com\n";
static const char db_conf[] = "[cert:db]\n"
			      "key = pkcs11:token=edge;object=db?module-name=softhsm2\n"
			      "subject = CN=db.example.com\n";

Test(config_texts, includes_come_from_the_given_texts_only)
{
	const struct p11e_config_text texts[] = {
		TEXT("/mem/p11enroll.conf", main_conf), TEXT("/mem/conf.d/web.conf", web_conf),
		TEXT("/mem/conf.d/sub/db.conf", db_conf), /* not DIR/NAME.conf */
		TEXT("/mem/other/db.conf", db_conf),      /* another folder */
	};
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load_texts(texts, 4, &cfg, &err), P11E_OK, "%s", err.msg);
	cr_assert_str_eq(cfg->state_dir, "/var/lib/p11e-mem");
	cr_assert_eq(cfg->n_certs, 1);
	cr_assert_str_eq(cfg->certs[0].name, "web");
	cr_assert_str_eq(cfg->certs[0].file, "/mem/conf.d/web.conf");
	p11e_config_free(cfg);
}

Test(config_texts, errors_name_the_text_and_line)
{
	static const char bad[] = "[agent]\nwait = 10m\n[nosuch]\nx = 1\n";
	const struct p11e_config_text texts[] = { TEXT("/mem/bad.conf", bad) };
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load_texts(texts, 1, &cfg, &err), P11E_EUSAGE);
	cr_assert_null(cfg);
	cr_assert(strstr(err.msg, "/mem/bad.conf:4: unknown section [nosuch]"), "%s", err.msg);
}

Test(config_texts, no_file_is_read)
{
	/* /etc/p11enroll/conf.d may exist on the host: it is never looked at. */
	static const char conf[] = "[agent]\ninclude_dir = /etc/p11enroll/conf.d\n";
	const struct p11e_config_text texts[] = { TEXT("/etc/p11enroll/p11enroll.conf", conf) };
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load_texts(texts, 1, &cfg, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(cfg->n_certs, 0);
	cr_assert_eq(cfg->n_cas, 0);
	p11e_config_free(cfg);
	cr_assert_eq(p11e_config_load_texts(texts, 0, &cfg, &err), P11E_EUSAGE);
}
