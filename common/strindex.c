/* SPDX-License-Identifier: Apache-2.0 */
#include "strindex.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void put(size_t *slot, size_t cap, uint64_t h, size_t value)
{
	size_t k = (size_t)h & (cap - 1);

	while (slot[k])
		k = (k + 1) & (cap - 1);
	slot[k] = value;
}

int p11e_strindex_add(struct p11e_strindex *x, size_t i, p11e_strindex_key key, const void *ctx)
{
	/* at most half full */
	if ((x->n + 1) * 2 > x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 16;
		size_t *slot = calloc(cap, sizeof(*slot));

		if (!slot)
			return -1;
		for (size_t k = 0; k < x->cap; k++)
			if (x->slot[k])
				put(slot, cap, hash(key(ctx, x->slot[k] - 1)), x->slot[k]);
		free(x->slot);
		x->slot = slot;
		x->cap = cap;
	}
	put(x->slot, x->cap, hash(key(ctx, i)), i + 1);
	x->n++;
	return 0;
}

size_t p11e_strindex_find(const struct p11e_strindex *x, const char *name, p11e_strindex_key key,
			  const void *ctx)
{
	size_t k;

	if (!x->cap)
		return (size_t)-1;
	for (k = (size_t)hash(name) & (x->cap - 1); x->slot[k]; k = (k + 1) & (x->cap - 1))
		if (strcmp(key(ctx, x->slot[k] - 1), name) == 0)
			return x->slot[k] - 1;
	return (size_t)-1;
}

void p11e_strindex_clear(struct p11e_strindex *x)
{
	free(x->slot);
	memset(x, 0, sizeof(*x));
}
