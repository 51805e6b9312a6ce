/* SPDX-License-Identifier: Apache-2.0 */
/* The list of CA providers. Adding a CA: its .c file, one line here, one in
 * meson.build. */
#include <stdio.h>
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

const struct p11e_ca_ops *p11e_ca_provider(size_t i)
{
	return i < sizeof(providers) / sizeof(providers[0]) ? providers[i] : NULL;
}

const char *p11e_ca_types(void)
{
	static char types[256];

	if (!types[0]) {
		for (size_t i = 0; providers[i]; i++) {
			size_t len = strlen(types);

			snprintf(types + len, sizeof(types) - len, "%s%s", i ? ", " : "",
				 providers[i]->type);
		}
	}
	return types;
}
