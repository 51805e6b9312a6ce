/* SPDX-License-Identifier: Apache-2.0 */
/* The list of CA providers. Adding a CA: its .c file, one line here, one in
 * meson.build. */
#include <string.h>

#include "certinext.h"
#include "provider.h"

extern const struct p11e_ca_ops p11e_sslstore_ops;
extern const struct p11e_ca_ops p11e_acme_ops;

static const struct p11e_ca_ops *const providers[] = {
	&p11e_certinext_ops,
	&p11e_sslstore_ops,
	&p11e_acme_ops,
	NULL,
};

const struct p11e_ca_ops *p11e_ca_lookup(const char *type)
{
	for (size_t i = 0; providers[i]; i++)
		if (strcmp(providers[i]->type, type) == 0)
			return providers[i];
	return NULL;
}

const char *p11e_ca_types(void)
{
	return "certinext, sslstore, acme";
}
