/* SPDX-License-Identifier: Apache-2.0 */
/* The key stores and the calls that reach them: see keystore.h. */
#include "keystore.h"

#include <stdlib.h>
#include <string.h>

/* By scheme; the last one takes what no other claims, as the PKCS#11
 * store always did (its parser names what is wrong in a URI). */
static const struct p11e_keystore_ops *const stores[] = {
	&p11e_keystore_provider,
	&p11e_keystore_pkcs11,
};

p11e_status p11e_keystore_parse(const char *uri, const char *name, struct p11e_keystore **out,
				struct p11e_err *err)
{
	size_t n = sizeof(stores) / sizeof(stores[0]);

	*out = NULL;
	for (size_t i = 0; i + 1 < n; i++)
		if (uri && strncmp(uri, stores[i]->scheme, strlen(stores[i]->scheme)) == 0)
			return stores[i]->parse(uri, name, out, err);
	return stores[n - 1]->parse(uri, name, out, err);
}

bool p11e_keystore_init(struct p11e_keystore *ks, const struct p11e_keystore_ops *ops,
			const char *name)
{
	ks->ops = ops;
	ks->name = strdup(name ? name : "");
	return ks->name != NULL;
}

void p11e_keystore_fini(struct p11e_keystore *ks)
{
	free(ks->name);
	ks->name = NULL;
}

bool p11e_keystore_unhex(const char *hex, unsigned char *out, size_t max, size_t *len)
{
	size_t n = strlen(hex) / 2;
	long v;

	if (strlen(hex) % 2 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char pair[3] = { hex[2 * i], hex[2 * i + 1], 0 };
		char *end;

		v = strtol(pair, &end, 16);
		if (*end)
			return false;
		out[i] = (unsigned char)v;
	}
	*len = n;
	return true;
}

p11e_status p11e_keystore_device(const struct p11e_keystore *ks, unsigned char **dev, size_t *dev_len,
				 char **shown, struct p11e_err *err)
{
	*dev = NULL;
	*dev_len = 0;
	*shown = NULL;
	return ks->ops->device ? ks->ops->device(ks, dev, dev_len, shown, err) : P11E_OK;
}

p11e_status p11e_keystore_open(struct p11e_keystore *ks, struct p11e_err *err)
{
	return ks->ops->open(ks, err);
}

void p11e_keystore_release(struct p11e_keystore *ks)
{
	if (ks && ks->ops->release)
		ks->ops->release(ks);
}

bool p11e_keystore_logged_in(const struct p11e_keystore *ks)
{
	return ks && ks->ops->logged_in(ks);
}

p11e_status p11e_keystore_find(struct p11e_keystore *ks, const char *id_hex,
			       const struct p11e_keystore_want *want, bool *found,
			       struct p11e_err *err)
{
	return ks->ops->find(ks, id_hex, want, found, err);
}

p11e_status p11e_keystore_generate(struct p11e_keystore *ks, const struct p11e_key_spec *spec,
				   const char *next_hex, struct p11e_err *err)
{
	return ks->ops->generate(ks, spec, next_hex, err);
}

p11e_status p11e_keystore_signer(struct p11e_keystore *ks, struct p11e_signer *signer,
				 struct p11e_err *err)
{
	return ks->ops->signer(ks, signer, err);
}

p11e_status p11e_keystore_check_config(const struct p11e_keystore *ks, bool allow_inline_secrets,
				       struct p11e_err *err)
{
	if (!ks || !ks->ops->check_config)
		return P11E_OK;
	return ks->ops->check_config(ks, allow_inline_secrets, err);
}

bool p11e_keystore_has_objects(const struct p11e_keystore *ks)
{
	return ks && ks->ops->store_chain;
}

p11e_status p11e_keystore_store_chain(struct p11e_keystore *ks, X509 *leaf, STACK_OF(X509) * cas,
				      struct p11e_err *err)
{
	if (!ks->ops->store_chain)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s has no token to store certificate objects in; set "
				    "store_in_token = no",
				    p11e_keystore_describe(ks));
	return ks->ops->store_chain(ks, leaf, cas, err);
}

p11e_status p11e_keystore_commit(struct p11e_keystore *ks, struct p11e_err *err)
{
	return ks->ops->commit ? ks->ops->commit(ks, err) : P11E_OK;
}

p11e_status p11e_keystore_remove(struct p11e_keystore *ks, const char *id_hex, struct p11e_err *err)
{
	return ks->ops->remove(ks, id_hex, err);
}

char *p11e_keystore_uri(const struct p11e_keystore *ks)
{
	return ks ? ks->ops->uri(ks) : NULL;
}

const char *p11e_keystore_describe(const struct p11e_keystore *ks)
{
	return ks ? ks->ops->describe(ks) : "";
}

const char *p11e_keystore_noun(const struct p11e_keystore *ks)
{
	return ks ? ks->ops->noun : "";
}

void p11e_keystore_close(struct p11e_keystore *ks)
{
	if (ks)
		ks->ops->close(ks);
}
