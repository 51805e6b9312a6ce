/* SPDX-License-Identifier: Apache-2.0 */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK (64u << 10)

/* Blocks in a list, the one being filled first. */
struct p11e_arena {
	struct p11e_arena *next;
	size_t used, cap;
	char data[];
};

char *p11e_arena_strdup(struct p11e_arena **a, const char *s)
{
	size_t len = strlen(s) + 1;
	struct p11e_arena *b = *a;
	char *copy;

	if (!b || b->cap - b->used < len) {
		size_t cap = len > ARENA_BLOCK ? len : ARENA_BLOCK;

		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->used = 0;
		b->cap = cap;
		/* A string larger than a block gets a block of its own behind
		 * the current one, which goes on filling. */
		if (*a && cap > ARENA_BLOCK) {
			b->next = (*a)->next;
			(*a)->next = b;
		} else {
			b->next = *a;
			*a = b;
		}
	}
	copy = memcpy(b->data + b->used, s, len);
	b->used += len;
	return copy;
}

void p11e_arena_free(struct p11e_arena *a)
{
	while (a) {
		struct p11e_arena *next = a->next;

		free(a);
		a = next;
	}
}
