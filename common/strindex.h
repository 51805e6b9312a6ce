/* SPDX-License-Identifier: Apache-2.0 */
/* A hash index from names to positions in the caller's own array (open
 * addressing, FNV-1a): configuration sections and the agent's
 * per-certificate slots are found in O(1) instead of a linear search. */
#ifndef P11E_STRINDEX_H
#define P11E_STRINDEX_H

#include <stddef.h>

/* The name of element `i` of the caller's array. */
typedef const char *(*p11e_strindex_key)(const void *ctx, size_t i);

struct p11e_strindex {
	size_t *slot; /* position + 1, 0: empty */
	size_t cap;   /* a power of two, or 0 */
	size_t n;
};

/* Adds element `i` (its name must not be there yet). -1: out of memory. */
int p11e_strindex_add(struct p11e_strindex *x, size_t i, p11e_strindex_key key, const void *ctx);
/* The position of `name`, or (size_t)-1. */
size_t p11e_strindex_find(const struct p11e_strindex *x, const char *name, p11e_strindex_key key,
			  const void *ctx);
void p11e_strindex_clear(struct p11e_strindex *x);

#endif
