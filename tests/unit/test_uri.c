/* SPDX-License-Identifier: Apache-2.0 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "p11uri.h"

Test(uri, all_supported_attributes)
{
	struct p11e_uri *u = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_uri_parse("pkcs11:token=edge;manufacturer=SoftHSM%20project;serial=abc;"
				    "model=SoftHSM%20v2;object=web-tls;id=%01%02;type=private"
				    "?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/pin",
				    &u, &err),
		     P11E_OK, "%s", err.msg);
	cr_assert_str_eq(u->object, "web-tls");
	cr_assert_eq(u->id_len, 2);
	cr_assert_eq(u->id[1], 2);
	cr_assert_str_eq(u->module_path, "/usr/lib/softhsm/libsofthsm2.so");
	cr_assert_str_eq(u->pin_source, "file:/etc/pin");
	cr_assert_null(u->pin_value);
	p11e_uri_free(u);
	cr_assert_eq(p11e_uri_parse("pkcs11:object=k?module-name=softhsm2&pin-value=1234", &u, &err),
		     P11E_OK, "%s", err.msg);
	cr_assert_str_eq(u->module_name, "softhsm2");
	cr_assert_str_eq(u->pin_value, "1234");
	p11e_uri_free(u);
}

static void refused(const char *text, const char *says)
{
	struct p11e_uri *u = NULL;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_uri_parse(text, &u, &err), P11E_EUSAGE, "%s accepted", text);
	cr_assert_null(u);
	cr_assert(strstr(err.msg, says), "%s: '%s' lacks '%s'", text, err.msg, says);
}

Test(uri, errors_name_the_attribute)
{
	refused("pkcs11:token=a;objekt=b", "unknown path attribute 'objekt'");
	refused("pkcs11:object=b?pin-sorce=file:/x", "unknown query attribute 'pin-sorce'");
	refused("pkcs11:object=b;slot-id=1", "'slot-id'");
	refused("pkcs11:object", "attribute 'object' has no value");
	refused("file:/etc/key.pem", "does not start with 'pkcs11:'");
	refused("pkcs11:object=%zz", "%XX");
	refused("pkcs11:token=a", "object=LABEL");
	refused("pkcs11:object=a;type=cert", "type must be 'private'");
	refused("pkcs11:object=a?module-path=/x.so&module-name=y", "not both");
}

Test(uri, key_uri_never_carries_the_pin)
{
	struct p11e_uri *u = NULL;
	struct p11e_err err = { 0 };
	unsigned char id[] = { 0xab, 0xcd };
	char *text;

	cr_assert_eq(p11e_uri_parse("pkcs11:token=edge;object=web?module-path=/m.so&pin-value=1234",
				    &u, &err),
		     P11E_OK);
	text = p11e_uri_for_key(u, "web", id, sizeof(id));
	cr_assert(text);
	cr_assert(strstr(text, "token=edge"), "%s", text);
	cr_assert(strstr(text, "id=%AB%CD") || strstr(text, "id=%ab%cd"), "%s", text);
	cr_assert(strstr(text, "module-path="), "%s", text);
	cr_assert(!strstr(text, "1234"), "%s", text);
	cr_assert(!strstr(text, "pin"), "%s", text);
	free(text);
	p11e_uri_free(u);
}
