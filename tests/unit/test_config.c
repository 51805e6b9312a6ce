/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "secret.h"

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
	refused("[cert:a]\n" KEY "key_type = rsa-1024\n",
		"bad.conf:3: key type 'rsa-1024' is not allowed; allowed: rsa-2048");
	refused("[cert:a]\n" KEY "key_type = ed25519\n",
		"allowed: rsa-2048, rsa-3072, rsa-4096, ec-p256, ec-p384");
	refused("[cert:a]\n" KEY "subject = CN=a;b\n",
		"bad.conf:3: subject: character ';' at position 5");
	refused("[cert:a]\n" KEY "dns = ok.example.com, bad_name.example.com\n",
		"bad.conf:3: dns: 'bad_name.example.com'");
	refused("[cert:a]\n" KEY "ip = 300.1.1.1\n", "bad.conf:3: ip: '300.1.1.1'");
	refused("[cert:a]\n" KEY "renew_before = soon\n",
		"bad.conf:3: renew_before = soon: not a duration");
	refused("[cert:a]\n" KEY "store_in_token = perhaps\n", "write yes or no");
	refused("[cert:a]\n" KEY "file_mode = 0999\n", "octal mode");
	refused("[cert:a]\nkey = pkcs11:object=k;colour=red\ndns = a.example.com\n",
		"bad.conf:2: key URI: unknown path attribute 'colour'");
	refused("[cert:a]\nkey = pkcs11:object=k?pin-value=1234\ndns = a.example.com\n",
		"bad.conf:2: the key URI carries pin-value");
	refused("[cert:a]\n" KEY "dns = a.example.com\ndns = b.example.com\n",
		"bad.conf:4: 'dns' is set twice in this section (first at line 3)");
	refused("[cert:a]\ndns = a.example.com\n", "[cert:a] has no key");
	refused("[cert:a]\n" KEY, "needs subject = CN=… or dns");
	refused("[cert:a]\n" KEY "dns = a.example.com\nca = nowhere\n",
		"bad.conf:4: ca = nowhere: there is no [ca:nowhere]");
	refused("[ca:x]\ntype = carrier-pigeon\n", "bad.conf:2: unknown CA type 'carrier-pigeon'");
	refused("[ca:x]\napi_url = https://x\n", "[ca:x] has no type");
	refused("[cert:a]\n" KEY "this line has no equals sign\n", "bad.conf:3: syntax error");
}

Test(config, inline_pin_allowed_only_when_asked)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load(write_conf("ok.conf",
						 "[agent]\nallow_inline_secrets = yes\n"
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
	cr_assert_str_eq(c->key,
			 "pkcs11:token=edge;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so"
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
	cr_assert_eq(p11e_config_load(write_conf("main.conf", main_text), &cfg, &err), P11E_OK, "%s",
		     err.msg);
	cr_assert_eq(cfg->n_certs, 2);
	cr_assert_str_eq(cfg->certs[0].name, "a");
	cr_assert_str_eq(cfg->certs[1].name, "b");
	p11e_config_free(cfg);
	write_conf("conf.d/30-dup.conf", "[cert:a]\n" KEY "dns = z.example.com\n");
	cr_assert_eq(p11e_config_load(write_conf("main.conf", main_text), &cfg, &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "30-dup.conf:2: [cert:a] is defined a second time"), "%s", err.msg);
}

/* ---- everything is checked when the file loads (issue 10) ---------------- */

#define CN_CA                                               \
	"[ca:prod]\n"                                       \
	"type = certinext\n"                                \
	"api_url = https://api.example.com/emSignHub-API\n" \
	"account_number = 1234567890\n"                     \
	"access_key_file = /nonexistent/certinext.key\n"    \
	"requestor_name = PKI\n"                            \
	"requestor_email = pki@example.com\n"               \
	"signer_place = Austin\n"

#define SS_CA                                               \
	"[ca:store]\n"                                      \
	"type = sslstore\n"                                 \
	"api_url = https://sandbox-wbapi.thesslstore.com\n" \
	"partner_code = 12345678\n"                         \
	"auth_token_file = /nonexistent/sslstore.token\n"   \
	"default_product = positivessl\n"                   \
	"approver_email = admin@example.com\n"              \
	"admin_email = pki@example.com\n"

static void loads(const char *text)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_config_load(write_conf("ok.conf", text), &cfg, &err), P11E_OK,
		     "refused (%s):\n%s", err.msg, text);
	p11e_config_free(cfg);
}

Test(config, ca_values_checked_at_load_without_secrets)
{
	/* a good section loads; its secret file is not read at load */
	loads(CN_CA "signer_ip = 93.184.216.34\ndefault_product = 842\n");
	loads(SS_CA);
	refused(CN_CA "signer_ip = 93.184.216.34\npage_size = 501\n",
		"bad.conf:10: page_size = '501' is not 1..500");
	refused(CN_CA "signer_ip = 93.184.216.34\npoll_interval = often\n",
		"bad.conf:10: poll_interval = 'often' is not a duration");
	refused(CN_CA "signer_ip = 93.184.216.34\ntimeout = 2h\n", "bad.conf:10");
	refused(CN_CA "signer_ip = 93.184.216.34\ndcv_timeout = 2d\n",
		"bad.conf:10: dcv_timeout = '2d'");
	refused(CN_CA "signer_ip = 93.184.216.34\nmax_retry_time = 2d\n", "bad.conf:10");
	refused(CN_CA "signer_ip = 93.184.216.34\nmax_retries = 21\n", "between 0 and 20");
	refused(CN_CA "signer_ip = 93.184.216.34\nmax_response_size = 2G\n", "between 1k and 1024M");
	refused(CN_CA "signer_ip = 93.184.216.34\nvalidity = 4\n",
		"bad.conf:10: validity = '4' is not a subscription length");
	refused(CN_CA "signer_ip = 93.184.216.34\nauth = password\n",
		"bad.conf:10: auth = 'password'");
	refused(CN_CA "signer_ip = 93.184.216.34\ndcv_hook = hook.sh\n",
		"bad.conf:10: dcv_hook = 'hook.sh' must be the absolute path");
	refused(CN_CA "signer_ip = 93.184.216.34\nrequestor_mobile = +1 555\n",
		"bad.conf:10: requestor_mobile");
	refused(CN_CA "signer_ip = 93.184.216.34\nca_bundle = /nonexistent/ca.pem\n",
		"bad.conf:10: ca_bundle: cannot read");
	refused(CN_CA "signer_ip = 93.184.216.34\ndcv_record_prefix = _acme challenge\n",
		"bad.conf:10: dcv_record_prefix = '_acme challenge' is not a DNS name prefix");
	loads(CN_CA "signer_ip = 93.184.216.34\ndcv_record_prefix = _dnsauth.sub\n");
	refused("[ca:prod]\ntype = certinext\naccount_number = 1\n",
		"bad.conf:1: [ca:prod]: api_url is required");
	refused("[ca:prod]\ntype = certinext\napi_url = http://api.example.com/x\naccount_number = 1\n",
		"bad.conf:3");
	refused(SS_CA "renewal_window = soon\n",
		"bad.conf:9: [ca:store] renewal_window = 'soon' is not a duration");
	refused(SS_CA "page_size = 101\n", "bad.conf:9: [ca:store] page_size = '101'");
	refused(SS_CA "validity = 12h\n", "is not a duration of at least one day");
	refused(SS_CA "file_auth_dcv = yes\ncname_auth_dcv = yes\n",
		"choose one domain validation method");
	refused("[ca:store]\ntype = sslstore\napi_url = https://x.example.com\npartner_code = 1\n",
		"bad.conf:1: [ca:store] needs auth_token_file");
}

Test(config, order_needs_checked_at_load)
{
	/* what an order of each [cert:] needs, with its overrides */
	loads(CN_CA "signer_ip = 93.184.216.34\n[cert:a]\n" KEY
		    "dns = a.example.com\nca = prod\nproduct = 842\n");
	refused(CN_CA "signer_ip = 93.184.216.34\n[cert:a]\n" KEY "dns = a.example.com\nca = prod\n",
		"bad.conf:10: [cert:a] with [ca:prod]: no product");
	refused(CN_CA "default_product = 842\n[cert:a]\n" KEY "dns = a.example.com\nca = prod\n",
		"bad.conf:10: [cert:a] with [ca:prod]: signer_ip is not set; an order needs it");
	refused(CN_CA "default_product = 842\n[cert:a]\n" KEY
		      "dns = a.example.com\nca = prod\nsigner_ip = 10.0.0.1\n",
		"bad.conf:14: [cert:a] signer_ip = '10.0.0.1' is a private address (RFC 1918)");
	refused(CN_CA "default_product = 842\nsigner_ip = 93.184.216.34\n[cert:a]\n" KEY
		      "dns = a.example.com\nca = prod\nauto_renew = maybe\n",
		"bad.conf:15: [cert:a] auto_renew = 'maybe' is not yes/no");
	refused(SS_CA "[cert:a]\n" KEY "dns = a.example.com\nca = store\nproduct = sectigoovssl\n",
		"product sectigoovssl");
	refused(SS_CA "[cert:a]\n" KEY "dns = a.example.com\nca = store\norg_country = Germany\n",
		"bad.conf:13: [cert:a] org_country = 'Germany' is not a two-letter");
	refused("[ca:store]\ntype = sslstore\napi_url = https://x.example.com\npartner_code = 1\n"
		"auth_token_file = /x\n[cert:a]\n" KEY "dns = a.example.com\nca = store\n",
		"bad.conf:6: [ca:store] has no default_product and [cert:a] no product");
}

Test(config, signer_ip_public_ipv4_only)
{
	static const char *const refused_ips[] = {
		"10.1.2.3",        "172.16.0.1",    "172.31.255.255", "192.168.1.1", "100.64.0.1",
		"127.0.0.1",       "169.254.10.10", "0.0.0.0",        "224.0.0.251", "239.1.1.1",
		"255.255.255.255", "240.0.0.1",     "192.0.0.8",      "192.0.2.10",  "198.51.100.23",
		"203.0.113.10",    "198.18.0.1",    "198.19.255.255",
	};
	char text[1024];

	for (size_t i = 0; i < sizeof(refused_ips) / sizeof(refused_ips[0]); i++) {
		snprintf(text, sizeof(text), CN_CA "signer_ip = %s\n", refused_ips[i]);
		refused(text, "not a public address");
		cr_assert_not_null(p11e_ip_not_public(refused_ips[i]), "%s", refused_ips[i]);
	}
	snprintf(text, sizeof(text), CN_CA "signer_ip = 2606:4700::1111\n");
	refused(text, "bad.conf:9: signer_ip = '2606:4700::1111' is not an IPv4 address");
	snprintf(text, sizeof(text), CN_CA "signer_ip = 10.1.2\n");
	refused(text, "is not an IPv4 address");
	loads(CN_CA "signer_ip = 8.8.4.4\n");
	loads(CN_CA "signer_ip = 172.32.0.1\n");
	loads(CN_CA "signer_ip = 100.128.0.1\n");
	loads(CN_CA "signer_ip = 198.20.0.1\n");
	/* the classification itself, IPv6 included */
	cr_assert_null(p11e_ip_not_public("93.184.216.34"));
	cr_assert_null(p11e_ip_not_public("2606:4700::1111"));
	cr_assert_null(p11e_ip_not_public("::ffff:8.8.8.8"));
	cr_assert_str_eq(p11e_ip_not_public("10.0.0.1"), "a private address (RFC 1918)");
	cr_assert(strstr(p11e_ip_not_public("::"), "unspecified"));
	cr_assert(strstr(p11e_ip_not_public("::1"), "loopback"));
	cr_assert(strstr(p11e_ip_not_public("fe80::1"), "link-local"));
	cr_assert(strstr(p11e_ip_not_public("fd12:3456::1"), "unique-local"));
	cr_assert(strstr(p11e_ip_not_public("ff02::1"), "multicast"));
	cr_assert(strstr(p11e_ip_not_public("2001:db8::1"), "documentation"));
	cr_assert(strstr(p11e_ip_not_public("3fff:0fff::1"), "documentation"));
	cr_assert_null(p11e_ip_not_public("3fff:1000::1"));
	cr_assert(strstr(p11e_ip_not_public("2001:2::1"), "benchmarking"));
	cr_assert(strstr(p11e_ip_not_public("::ffff:192.168.0.1"), "RFC 1918"));
	cr_assert(strstr(p11e_ip_not_public("4000::1"), "reserved"));
	cr_assert_str_eq(p11e_ip_not_public("host.example.com"), "not an IP address");
}

Test(config, values_are_utf8_text)
{
	static const char *const bad[] = {
		"O=Tab\there",        /* C0 control */
		"O=Bell\007",         /* C0 control */
		"O=Del\177x",         /* DEL */
		"O=Next\302\205x",    /* C1 control U+0085 */
		"O=M\374nchen",       /* Latin-1, not UTF-8 */
		"O=\303(",            /* cut sequence */
		"O=\300\257",         /* overlong '/' */
		"O=\355\240\200",     /* UTF-16 surrogate */
		"O=\364\220\200\200", /* beyond U+10FFFF */
	};
	char text[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 "[cert:a]\n" KEY "dns = a.example.com\nsubject = CN=a,%s\n", bad[i]);
		refused(text, "bad.conf:4: the value of 'subject' holds ");
	}
	loads("[cert:a]\n" KEY
	      "dns = a.example.com\nsubject = CN=a,O=M\303\274nchen \360\237\224\222\n");
	/* a secret value is never repeated in the message */
	{
		struct p11e_config *cfg = NULL;
		struct p11e_err err = { 0 };

		cr_assert_eq(p11e_config_load(write_conf("bad.conf",
							 "[agent]\nallow_inline_secrets = yes\n"
							 "[cert:a]\nkey = pkcs11:object=k?pin-value=12\00134\n"
							 "dns = a.example.com\n"),
					      &cfg, &err),
			     P11E_EUSAGE);
		cr_assert(strstr(err.msg, "bad.conf:4: the value of 'key' holds a control character"),
			  "%s", err.msg);
		cr_assert_null(strstr(err.msg, "12"), "%s", err.msg);
	}
}

Test(config, a_nul_byte_is_refused_not_cut)
{
	static const char text[] = "[cert:a]\n" KEY "dns = a.example.com\0, evil.example.com\n";
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	const char *path = write_conf("nul.conf", "");
	FILE *f = fopen(path, "w");

	cr_assert(f);
	fwrite(text, 1, sizeof(text) - 1, f);
	fclose(f);
	cr_assert_eq(p11e_config_load(path, &cfg, &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "nul.conf:3: the line holds a NUL byte"), "%s", err.msg);
}

Test(config, override_keys_come_after_ca)
{
	refused(CN_CA "signer_ip = 93.184.216.34\ndefault_product = 842\n[cert:a]\n" KEY
		      "dns = a.example.com\nproduct = 838\nca = prod\n",
		"bad.conf:14: 'product' overrides a setting of the CA, so it comes after ca = prod (line 15)");
	loads(CN_CA "signer_ip = 93.184.216.34\ndefault_product = 842\n[cert:a]\n" KEY
		    "dns = a.example.com\nca = prod\nproduct = 838\n");
}

Test(config, section_names_are_safe)
{
	static const char *const bad[] = {
		"../x",
		"a/b",
		".hidden",
		"..",
		"a b",
		"a\\b",
		"web:1",
		"x2345678901234567890123456789012345678901", /* 41 */
		/* inih cuts this one to 44 characters, which is still too long */
		"x23456789012345678901234567890123456789012345678901234567890123456",
	};
	char text[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[cert:%s]\n" KEY "dns = a.example.com\n", bad[i]);
		refused(text, "bad.conf:1: [cert:");
		refused(text, "a certificate name has 1 to 40 letters, digits");
		snprintf(text, sizeof(text), "[agent]\nwait = 1m\n[ca:%s]\ntype = certinext\n",
			 bad[i]);
		refused(text, "bad.conf:3: [ca:");
	}
	loads("[cert:Web-1.example_com]\n" KEY "dns = a.example.com\n");
	loads("[cert:x234567890123456789012345678901234567890]\n" KEY "dns = a.example.com\n");
}

Test(config, state_dir_others_may_write_is_refused)
{
	char text[512], state[128];

	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(text, sizeof(text), "[agent]\nstate_dir = %s\n[cert:a]\n" KEY "dns = a.example.com\n",
		 state);
	loads(text); /* missing: the journal makes it 0700 */
	cr_assert_eq(mkdir(state, 0700), 0);
	loads(text);
	cr_assert_eq(chmod(state, 0777), 0);
	refused(text, "bad.conf:2: state_dir");
	refused(text, "may be written by others (mode 0777); fix: chmod 700");
	cr_assert_eq(chmod(state, 0720), 0);
	refused(text, "may be written by its group (mode 0720)");
	cr_assert_eq(chmod(state, 0755), 0);
	loads(text);
	if (geteuid() == 0) {
		cr_assert_eq(chown(state, 65534, 65534), 0);
		refused(text, "belongs to uid 65534, not to this user");
	}
	/* a file where the folder should be */
	snprintf(text, sizeof(text), "[agent]\nstate_dir = %s/bad.conf\n", dir);
	refused(text, "is not a directory");
}

/* ---- secret files: links followed, `check` and the read agree ------------- */

static void secret_agrees(const char *path, p11e_status want, const char *says)
{
	struct p11e_err e1 = { 0 }, e2 = { 0 };
	char *value = NULL;

	cr_assert_eq(p11e_secret_check_file(path, "access_key_file", &e1), want, "check: %s", e1.msg);
	cr_assert_eq(p11e_secret_read(path, "access_key_file", &value, &e2), want, "read: %s", e2.msg);
	if (want == P11E_OK) {
		cr_assert_str_eq(value, "s3cret");
	} else {
		cr_assert(strstr(e1.msg, says), "check: %s", e1.msg);
		cr_assert_str_eq(e1.msg, e2.msg);
	}
	p11e_secret_free(value);
}

Test(config, secret_file_behind_kubernetes_links)
{
	char v[128], target[160], data[128], link[128], cmd[512];
	const char *ts = "..2026_12_03_12_00_00.000000001";

	/* secret/..TIMESTAMP/key, secret/..data -> ..TIMESTAMP, secret/key -> ..data/key */
	snprintf(v, sizeof(v), "%s/secret/%s", dir, ts);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s", v);
	cr_assert_eq(system(cmd), 0);
	snprintf(target, sizeof(target), "%s/key", v);
	write_conf("secret/..2026_12_03_12_00_00.000000001/key", "s3cret\n");
	cr_assert_eq(chmod(target, 0400), 0);
	snprintf(data, sizeof(data), "%s/secret/..data", dir);
	cr_assert_eq(symlink(ts, data), 0);
	snprintf(link, sizeof(link), "%s/secret/key", dir);
	cr_assert_eq(symlink("..data/key", link), 0);
	secret_agrees(link, P11E_OK, NULL);
	snprintf(cmd, sizeof(cmd), "file:%s", link);
	secret_agrees(cmd, P11E_OK, NULL);
	/* the file at the end of the links decides */
	cr_assert_eq(chmod(target, 0644), 0);
	secret_agrees(link, P11E_EUSAGE, "is accessible by group or others (mode 0644)");
	cr_assert_eq(chmod(target, 0600), 0);
	cr_assert_eq(unlink(target), 0);
	secret_agrees(link, P11E_EUSAGE, "cannot open");
	/* a link to a folder, an empty file */
	secret_agrees(data, P11E_EUSAGE, "is not a regular file");
	write_conf("empty", "");
	snprintf(target, sizeof(target), "%s/empty", dir);
	cr_assert_eq(chmod(target, 0600), 0);
	secret_agrees(target, P11E_EUSAGE, "is empty");
}

Test(config, secret_with_nul_is_refused)
{
	char path[128];
	FILE *f;
	char *value = NULL;
	struct p11e_err err = { 0 };

	snprintf(path, sizeof(path), "%s/nul.key", dir);
	f = fopen(path, "w");
	cr_assert(f);
	fwrite("ab\0cd\n", 1, 6, f);
	fclose(f);
	cr_assert_eq(chmod(path, 0600), 0);
	cr_assert_eq(p11e_secret_read(path, "access_key_file", &value, &err), P11E_EUSAGE);
	cr_assert(strstr(err.msg, "holds a NUL byte"), "%s", err.msg);
	cr_assert_null(value);
}

Test(config, env_secret_check_agrees_with_read)
{
	struct p11e_err err = { 0 };

	setenv("P11E_TEST_CHECK_SECRET", "x", 1);
	cr_assert_eq(p11e_secret_check_file("env:P11E_TEST_CHECK_SECRET", "pin-source", &err), P11E_OK,
		     "%s", err.msg);
	cr_assert_eq(p11e_secret_check_file("env:P11E_TEST_NOT_SET_ANYWHERE", "pin-source", &err),
		     P11E_EUSAGE);
	cr_assert(strstr(err.msg, "P11E_TEST_NOT_SET_ANYWHERE is not set"), "%s", err.msg);
}

Test(config, agent_paths_checked_at_load)
{
	char text[512];

	refused("[agent]\nstate_dir = var/lib/p11enroll\n",
		"bad.conf:2: state_dir = var/lib/p11enroll: write an absolute path");
	refused("[agent]\nprometheus_file = /var/lib/node/p11enroll.txt\n",
		"bad.conf:2: prometheus_file = /var/lib/node/p11enroll.txt: the name must end in .prom");
	refused("[agent]\ninclude_dir = /nonexistent/conf.d\n",
		"bad.conf:2: include_dir = /nonexistent/conf.d: not a folder");
	refused("[cert:a]\n" KEY "dns = a.example.com\nfullchain_file = tls/full.pem\n",
		"bad.conf:4: fullchain_file = tls/full.pem: write an absolute path");
	refused("[cert:a]\n" KEY "dns = a.example.com\nfile_owner = 4294967295\n",
		"bad.conf:4: file_owner = 4294967295: not a user or group id");
	refused("[cert:a]\n" KEY "dns = a.example.com\nfile_group = 99999999999999999999999\n",
		"not a user or group id");
	refused("[cert:a]\n" KEY "dns = a.example.com\nfile_owner = -1\n",
		"file_owner = -1: not a user or group id");
	snprintf(text, sizeof(text), "%s/empty.d", dir);
	cr_assert_eq(mkdir(text, 0700), 0);
	snprintf(text, sizeof(text),
		 "[agent]\ninclude_dir = %s/empty.d\nprometheus_file = %s/m.prom\n", dir, dir);
	loads(text);
}

/* What the agent knows of a CA comes from the registry (issue 14): the
 * types named in messages, and order_rate's default. */
Test(config, ca_types_and_defaults_come_from_the_registry)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	char known[256] = "(known: ";

	for (size_t i = 0; p11e_ca_provider(i); i++)
		snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s", i ? ", " : "",
			 p11e_ca_provider(i)->type);
	cr_assert_gt(strlen(known), strlen("(known: certinext, sslstore"));
	refused("[ca:x]\ntype = carrier-pigeon\n", known);
	cr_assert_eq(p11e_config_load(write_conf("ok.conf", CN_CA
						 "signer_ip = 93.184.216.34\n" SS_CA
						 "[ca:slow]\ntype = certinext\napi_url = https://x.example.com\n"
						 "account_number = 1\naccess_key_file = /nonexistent/k\n"
						 "order_rate = 2/1m\n"),
				      &cfg, &err),
		     P11E_OK, "%s", err.msg);
	cr_assert_eq(cfg->n_cas, 3);
	for (size_t i = 0; i < 2; i++) {
		cr_assert_eq(cfg->cas[i].order_rate_n, cfg->cas[i].ops->order_rate_n);
		cr_assert_eq(cfg->cas[i].order_rate_window,
			     (int64_t)cfg->cas[i].ops->order_rate_window);
	}
	cr_assert_eq(p11e_ca_lookup("certinext")->order_rate_n, 15); /* p11enroll.conf(5) */
	cr_assert_eq(cfg->cas[2].order_rate_n, 2);
	cr_assert_eq(cfg->cas[2].order_rate_window, 60);
	p11e_config_free(cfg);
}
