/* SPDX-License-Identifier: Apache-2.0 */
/* A CA's answer as one fuzz input, so that the harness drives the answer
 * path the way the providers do (transport kind, HTTP status, placement
 * flag and replay token come from the input too):
 *
 *   HTTP/<status>|NOT_SENT|MAYBE_SENT|TOO_LARGE|LOCAL <endpoint> <placement 0|1>
 *       <our replay token|-> <Retry-After|-> <content type|->   (one line)
 *   <body, as received>
 *
 * scripts/fuzz-seeds.py writes the seeds in this form from the simulators'
 * real answers. Input without a newline is a whole body of an HTTP 200. */
#ifndef P11E_FUZZ_ANSWER_H
#define P11E_FUZZ_ANSWER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

struct fuzz_answer {
	struct p11e_http_response resp;
	char endpoint[64];
	bool place;
	char replay[64]; /* "" when none */
};

static inline void fuzz_token(char **cursor, char *out, size_t size)
{
	char *tok = strtok_r(NULL, " ", cursor);

	snprintf(out, size, "%s", tok && strcmp(tok, "-") != 0 ? tok : "");
}

/* Fills *a from the input; returns false on out of memory. */
static inline bool fuzz_answer_read(const uint8_t *data, size_t size, struct fuzz_answer *a)
{
	const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
	char head[513], word[64], retry[128], *cursor = NULL, *first;
	size_t skip = 0;

	memset(a, 0, sizeof(*a));
	a->resp.kind = P11E_HTTP_RESPONSE;
	a->resp.status = 200;
	a->resp.attempts = 1;
	strcpy(a->resp.content_type, "application/json");
	if (nl) {
		size_t n = (size_t)(nl - data);

		memcpy(head, data, n);
		head[n] = '\0';
		skip = n + 1;
		first = strtok_r(head, " ", &cursor);
		if (first && strncmp(first, "HTTP/", 5) == 0)
			a->resp.status = strtol(first + 5, NULL, 10);
		else if (first) {
			a->resp.status = 0;
			a->resp.kind = strcmp(first, "NOT_SENT") == 0    ? P11E_HTTP_NOT_SENT
				       : strcmp(first, "TOO_LARGE") == 0 ? P11E_HTTP_TOO_LARGE
				       : strcmp(first, "LOCAL") == 0     ? P11E_HTTP_LOCAL
									 : P11E_HTTP_MAYBE_SENT;
			snprintf(a->resp.error, sizeof(a->resp.error), "%s", first);
		}
		fuzz_token(&cursor, a->endpoint, sizeof(a->endpoint));
		fuzz_token(&cursor, word, sizeof(word));
		a->place = word[0] == '1';
		fuzz_token(&cursor, a->replay, sizeof(a->replay));
		fuzz_token(&cursor, retry, sizeof(retry));
		for (char *p = retry; *p; p++)
			if (*p == '_')
				*p = ' ';
		a->resp.retry_after = p11e_http_parse_retry_after(retry, 1798000000L);
		fuzz_token(&cursor, word, sizeof(word));
		if (word[0])
			snprintf(a->resp.content_type, sizeof(a->resp.content_type), "%s", word);
	}
	if (a->resp.kind != P11E_HTTP_RESPONSE)
		return true; /* no answer: no body */
	a->resp.len = size - skip;
	a->resp.body = malloc(a->resp.len + 1);
	if (!a->resp.body)
		return false;
	memcpy(a->resp.body, data + skip, a->resp.len);
	a->resp.body[a->resp.len] = '\0';
	return true;
}

/* Reads the answer (fuzz_answer_read) and, as every call of a provider
 * does, runs the debug log's redaction over its body; false on out of
 * memory. Pair with fuzz_answer_close. */
static inline bool fuzz_answer_open(const uint8_t *data, size_t size, struct fuzz_answer *a)
{
	if (!fuzz_answer_read(data, size, a))
		return false;
	if (a->resp.body)
		free(p11e_redact(a->resp.body, a->resp.len, NULL));
	return true;
}

static inline void fuzz_answer_close(struct fuzz_answer *a)
{
	p11e_http_response_clear(&a->resp);
}

/* Whether the parser of `name` reads an answer of `endpoint`: when the
 * endpoint is that one (or starts with it), and for an endpoint not in
 * `known` (the empty one included), whose answer goes to every parser. */
static inline bool fuzz_endpoint_is(const char *endpoint, const char *name, const char *const *known)
{
	bool listed = false;

	for (size_t i = 0; known[i]; i++)
		listed = listed || strcmp(endpoint, known[i]) == 0;
	return !listed || strncmp(endpoint, name, strlen(name)) == 0;
}

#endif
