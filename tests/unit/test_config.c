/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static char dir[64];

static void make_dir(void)
{
	strcpy(dir, "/tmp/p11e-config.XXXXXX");
	cr_assert(mkdtemp(dir));
}

static void clean_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	system(cmd);
}

TestSuite(config, .init = make_dir, .fini = clean_dir);

static const char *write_conf(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *good =
	"[agent]\n"
	"state_dir = /var/lib/p11e-test   ; inline comment\n"
	"renew_before = 21d\n"
	"wait = 90s\n"
	"\n"
	"# a comment\n"
	"[cert:web]\n"
	"key = pkcs11:token=edge;object=web-tls?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin\n"
	"key_type = ec-p384\n"
	"subject = CN=www.example.com,O=Example\\, Corp,C=US\n"
	"dns = www.example.com, example.com\n"
	"ip = 192.0.2.1\n"
	"file_mode = 0640\n"
	"store_in_token = yes\n"
	"rotate_key = no\n";

Test(config, a_good_file)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	const struct p11e_cert_conf *c;

	cr_assert_eq(p11e_config_load(write_conf("a.conf", good), &cfg, &err), P11E_OK, "%s", err.msg);
	cr_assert_str_eq(cfg->state_dir, "/var/lib/p11e-test");
	cr_assert_eq(cfg->renew_before, 21 * 86400);
	c = p11e_config_cert(cfg, "web");
	cr_assert(c);
	cr_assert_str_eq(c->key_spec->name, "ec-p384");
	cr_assert_eq(c->dns.n, 2);
	cr_assert_str_eq(c->dns.v[1], "example.com");
	cr_assert_eq(c->file_mode, 0640);
	cr_assert(c->store_in_token);
	cr_assert_eq(c->renew_before, 21 * 86400, "inherits [agent] renew_before");
	cr_assert_eq(c->wait, 90);
	cr_assert_null(p11e_config_cert(cfg, "nope"));
	p11e_config_free(cfg);
}

static void refused(const char *text, const char *says)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load(write_conf("bad.conf", text), &cfg, &err), P11E_EUSAGE,
		     "accepted:\n%s", text);
	cr_assert_null(cfg);
	cr_assert(strstr(err.msg, says), "'%s' lacks '%s'", err.msg, says);
}

#define KEY "key = pkcs11:object=k?module-path=/m.so&pin-source=file:/p\n"

Test(config, errors_name_file_and_line)
{
	refused("[cert:a]\n" KEY "colour = blue\n", "bad.conf:3: unknown key 'colour' in [cert:a]");
	refused("[agent]\nstate_dir = /x\nfrobnicate = 1\n", "bad.conf:3: unknown key 'frobnicate'");
	refused("[certs:a]\n" KEY, "bad.conf:2: unknown section [certs:a]");
	refused("key = x\n", "bad.conf:1: 'key' is outside any section");
	refused("[cert:a]\n" KEY "key_type = rsa-1024\n", "bad.conf:3: key type 'rsa-1024' is not allowed; allowed: rsa-2048");
	refused("[cert:a]\n" KEY "key_type = ed25519\n", "allowed: rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384");
	refused("[cert:a]\n" KEY "subject = CN=a;b\n", "bad.conf:3: subject: character ';' at position 5");
	refused("[cert:a]\n" KEY "dns = ok.example.com, bad_name.example.com\n", "bad.conf:3: dns: 'bad_name.example.com'");
	refused("[cert:a]\n" KEY "ip = 300.1.1.1\n", "bad.conf:3: ip: '300.1.1.1'");
	refused("[cert:a]\n" KEY "renew_before = soon\n", "bad.conf:3: renew_before = soon: not a duration");
	refused("[cert:a]\n" KEY "store_in_token = perhaps\n", "write yes or no");
	refused("[cert:a]\n" KEY "file_mode = 0999\n", "octal mode");
	refused("[cert:a]\nkey = pkcs11:object=k;colour=red\ndns = a.example.com\n", "bad.conf:2: key URI: unknown path attribute 'colour'");
	refused("[cert:a]\nkey = pkcs11:object=k?pin-value=1234\ndns = a.example.com\n", "bad.conf:2: the key URI carries pin-value");
	refused("[cert:a]\n" KEY "dns = a.example.com\ndns = b.example.com\n", "bad.conf:4: 'dns' is set twice in this section (first at line 3)");
	refused("[cert:a]\ndns = a.example.com\n", "[cert:a] has no key");
	refused("[cert:a]\n" KEY, "needs subject = CN=… or dns");
	refused("[cert:a]\n" KEY "dns = a.example.com\nca = nowhere\n", "bad.conf:4: ca = nowhere: there is no [ca:nowhere]");
	refused("[ca:x]\ntype = carrier-pigeon\n", "bad.conf:2: unknown CA type 'carrier-pigeon'");
	refused("[ca:x]\napi_url = https://x\n", "[ca:x] has no type");
	refused("[cert:a]\n" KEY "this line has no equals sign\n", "bad.conf:3: syntax error");
}

Test(config, inline_pin_allowed_only_when_asked)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load(write_conf("ok.conf", "[agent]\nallow_inline_secrets = yes\n"
						 "[cert:a]\nkey = pkcs11:object=k?pin-value=1234\n"
						 "dns = a.example.com\n"),
				      &cfg, &err),
		     P11E_OK, "%s", err.msg);
	cr_assert_str_eq(p11e_config_cert(cfg, "a")->subject, "CN=a.example.com");
	cr_assert_str_eq(p11e_config_cert(cfg, "a")->key_spec->name, "ec-p256");
	p11e_config_free(cfg);
}

Test(config, overlong_lines_are_refused_not_cut)
{
	char text[600];

	snprintf(text, sizeof(text), "[cert:a]\n" KEY "subject = CN=%0300d\n", 0);
	refused(text, "bad.conf:3: line longer than");
	refused(text, "split the value over lines that start with a blank");
}

Test(config, indented_lines_continue_a_value)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	const struct p11e_cert_conf *c;

	cr_assert_eq(p11e_config_load(write_conf("cont.conf",
						 "[cert:a]\n"
						 "key = pkcs11:token=edge;object=k\n"
						 "      ?module-path=/usr/lib/softhsm/libsofthsm2.so\n"
						 "      &pin-source=file:/etc/p11enroll/pin\n"
						 "dns = a.example.com\n"
						 "subject = CN=a.example.com\n"),
				      &cfg, &err),
		     P11E_OK, "%s", err.msg);
	c = p11e_config_cert(cfg, "a");
	cr_assert_str_eq(c->key, "pkcs11:token=edge;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so"
				 "&pin-source=file:/etc/p11enroll/pin");
	p11e_config_free(cfg);
}

Test(config, include_dir_in_name_order)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	char main_text[256], sub[128];

	snprintf(sub, sizeof(sub), "%s/conf.d", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	write_conf("conf.d/20-b.conf", "[cert:b]\n" KEY "dns = b.example.com\n");
	write_conf("conf.d/10-a.conf", "[cert:a]\n" KEY "dns = a.example.com\n");
	write_conf("conf.d/ignored.txt", "[cert:c]\n" KEY "dns = c.example.com\n");
	snprintf(main_text, sizeof(main_text), "[agent]\ninclude_dir = %s\n", sub);
	cr_assert_eq(p11e_config_load(write_conf("main.conf", main_text), &cfg, &err), P11E_OK, "%s", err.msg);
	cr_assert_eq(cfg->n_certs, 2);
	cr_assert_str_eq(cfg->certs[0].name, "a");
	cr_assert_str_eq(cfg->certs[1].name, "b");
	p11e_config_free(cfg);
	write_conf("conf.d/30-dup.conf", "[cert:a]\n" KEY "dns = z.example.com\n");
	cr_assert_eq(p11e_config_load(write_conf("main.conf", main_text), &cfg, &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "30-dup.conf:2: [cert:a] is defined a second time"), "%s", err.msg);
}
