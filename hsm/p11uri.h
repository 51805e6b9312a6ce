/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 7512 key URIs, parsed with p11-kit, limited to the attributes that
 * p11enroll understands so that a typo is an error and not a silent miss. */
#ifndef P11E_P11URI_H
#define P11E_P11URI_H

#include <stdbool.h>
#include <stddef.h>

#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include "err.h"

struct p11e_uri {
	P11KitUri *uri;
	char *text;        /* as given */
	char *object;      /* CKA_LABEL, NULL when absent */
	unsigned char *id; /* CKA_ID */
	size_t id_len;
	const char *module_path;
	const char *module_name;
	const char *pin_source;
	const char *pin_value;
};

/* Parses `text`. Unknown or malformed attributes are P11E_EUSAGE naming
 * the attribute. */
p11e_status p11e_uri_parse(const char *text, struct p11e_uri **out, struct p11e_err *err);
void p11e_uri_free(struct p11e_uri *uri);

/* The URI of a key object: the token attributes of `uri`, the given label
 * and id, and module-path/module-name; never the PIN. free() the result. */
char *p11e_uri_for_key(const struct p11e_uri *uri, const char *label, const unsigned char *id,
		       size_t id_len);

#endif
