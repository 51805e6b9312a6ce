/* SPDX-License-Identifier: Apache-2.0 */
#include "p11uri.h"

#include <stdlib.h>
#include <string.h>

static const char *const path_attrs[] = {
	"token", "manufacturer", "serial", "model", "object", "id", "type", NULL,
};
static const char *const query_attrs[] = {
	"module-path", "module-name", "pin-source", "pin-value", NULL,
};

static bool known(const char *const *list, const char *name, size_t len)
{
	for (size_t i = 0; list[i]; i++)
		if (strlen(list[i]) == len && strncmp(list[i], name, len) == 0)
			return true;
	return false;
}

/* p11-kit only reports "something was unrecognised"; this names it. */
static p11e_status check_attribute_names(const char *text, struct p11e_err *err)
{
	const char *p = text + strlen("pkcs11:");
	bool query = false;

	while (*p) {
		size_t len = strcspn(p, query ? "&" : ";?");
		size_t name_len = strcspn(p, "=");

		if (len > 0) {
			if (name_len >= len)
				return p11e_err_set(err, P11E_EUSAGE,
						    "key URI: attribute '%.*s' has no value "
						    "(write NAME=VALUE)",
						    (int)len, p);
			if (!known(query ? query_attrs : path_attrs, p, name_len))
				return p11e_err_set(
					err, P11E_EUSAGE,
					"key URI: unknown %s attribute '%.*s' (allowed: %s)",
					query ? "query" : "path", (int)name_len, p,
					query ? "module-path, module-name, pin-source, pin-value"
					      : "token, manufacturer, serial, model, object, id, type");
		}
		p += len;
		if (*p == '?') {
			if (query)
				return p11e_err_set(err, P11E_EUSAGE, "key URI: a second '?'");
			query = true;
		}
		if (*p)
			p++;
	}
	return P11E_OK;
}

p11e_status p11e_uri_parse(const char *text, struct p11e_uri **out, struct p11e_err *err)
{
	struct p11e_uri *u = calloc(1, sizeof(*u));
	CK_ATTRIBUTE *attr;
	p11e_status rc = P11E_OK;
	int prc;

	*out = NULL;
	if (!u)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (strncmp(text, "pkcs11:", 7) != 0) {
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "key URI '%s' does not start with 'pkcs11:' (RFC 7512)", text);
		goto out;
	}
	rc = check_attribute_names(text, err);
	if (rc != P11E_OK)
		goto out;
	u->text = strdup(text);
	u->uri = p11_kit_uri_new();
	if (!u->text || !u->uri) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	prc = p11_kit_uri_parse(text, P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE, u->uri);
	if (prc != P11_KIT_URI_OK) {
		rc = p11e_err_set(err, P11E_EUSAGE, "key URI: %s (%s)", p11_kit_uri_message(prc),
				  prc == P11_KIT_URI_BAD_ENCODING
					  ? "check the %XX escapes"
					  : "check the attribute values, e.g. type=private");
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(u->uri)) {
		rc = p11e_err_set(err, P11E_EUSAGE, "key URI: an attribute value is not understood");
		goto out;
	}
	attr = p11_kit_uri_get_attribute(u->uri, CKA_LABEL);
	if (attr) {
		u->object = strndup(attr->pValue, attr->ulValueLen);
		if (!u->object) {
			rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
			goto out;
		}
	}
	attr = p11_kit_uri_get_attribute(u->uri, CKA_ID);
	if (attr && attr->ulValueLen > 0) {
		u->id = malloc(attr->ulValueLen);
		if (!u->id) {
			rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
			goto out;
		}
		memcpy(u->id, attr->pValue, attr->ulValueLen);
		u->id_len = attr->ulValueLen;
	}
	attr = p11_kit_uri_get_attribute(u->uri, CKA_CLASS);
	if (attr && (attr->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
		     *(CK_OBJECT_CLASS *)attr->pValue != CKO_PRIVATE_KEY)) {
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "key URI: type must be 'private' (or left out) for a key");
		goto out;
	}
	u->module_path = p11_kit_uri_get_module_path(u->uri);
	u->module_name = p11_kit_uri_get_module_name(u->uri);
	u->pin_source = p11_kit_uri_get_pin_source(u->uri);
	u->pin_value = p11_kit_uri_get_pin_value(u->uri);
	if (u->module_path && u->module_name) {
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "key URI: give module-path or module-name, not both");
		goto out;
	}
	if (!u->object && !u->id) {
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "key URI: name the key with object=LABEL (and/or id=%%XX…)");
		goto out;
	}
	*out = u;
	u = NULL;
out:
	p11e_uri_free(u);
	return rc;
}

void p11e_uri_free(struct p11e_uri *u)
{
	if (!u)
		return;
	if (u->uri)
		p11_kit_uri_free(u->uri);
	free(u->text);
	free(u->object);
	free(u->id);
	free(u);
}

char *p11e_uri_for_key(const struct p11e_uri *u, const char *label, const unsigned char *id,
		       size_t id_len)
{
	P11KitUri *copy = p11_kit_uri_new();
	CK_ATTRIBUTE attr;
	char *text = NULL;

	if (!copy)
		return NULL;
	*p11_kit_uri_get_token_info(copy) = *p11_kit_uri_get_token_info(u->uri);
	if (label) {
		attr = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
		p11_kit_uri_set_attribute(copy, &attr);
	}
	if (id && id_len) {
		attr = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
		p11_kit_uri_set_attribute(copy, &attr);
	}
	if (u->module_path)
		p11_kit_uri_set_module_path(copy, u->module_path);
	if (u->module_name)
		p11_kit_uri_set_module_name(copy, u->module_name);
	if (p11_kit_uri_format(copy, P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE, &text) !=
	    P11_KIT_URI_OK)
		text = NULL;
	p11_kit_uri_free(copy);
	return text;
}
