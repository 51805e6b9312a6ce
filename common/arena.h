/* SPDX-License-Identifier: Apache-2.0 */
/* Strings that live as long as their owner, packed into large blocks: one
 * allocation per 64 kB instead of one per string. A configuration of
 * 10,000 certificates keeps some 60,000 strings; malloc's own bookkeeping
 * for them was a tenth of the agent's memory (docs/architecture.md). */
#ifndef P11E_ARENA_H
#define P11E_ARENA_H

struct p11e_arena;

/* A copy of `s` in *a (made on first use). NULL: out of memory. The copy
 * lives until p11e_arena_free; nothing frees it on its own. */
char *p11e_arena_strdup(struct p11e_arena **a, const char *s);
void p11e_arena_free(struct p11e_arena *a);

#endif
