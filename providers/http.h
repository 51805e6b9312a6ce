/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP layer both CA providers share (libcurl): TLS always verified,
 * plain http only to loopback, timeouts, a response size cap, bounded
 * exponential backoff with jitter, and debug logs with secrets redacted.
 *
 * A request body may be rebuilt for every attempt (CERTInext signs each HTTP
 * request with a fresh ts/txn/authKey), and a caller placing an order can
 * forbid retries once the request may have reached the server and then learn
 * whether the outcome is unknown or the request certainly never left. */
#ifndef P11E_HTTP_H
#define P11E_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "provider.h"

/* The [ca:NAME] keys p11e_http_opts_from_settings reads; a provider puts
 * them into its ca_keys list so that both CAs accept the same keys. */
#define P11E_HTTP_SETTING_KEYS \
	"ca_bundle", "connect_timeout", "timeout", "max_response_size", "max_retries", "max_retry_time"

#define P11E_HTTP_DEFAULT_CONNECT_TIMEOUT 10      /* seconds */
#define P11E_HTTP_DEFAULT_TIMEOUT 60              /* seconds, whole request */
#define P11E_HTTP_DEFAULT_MAX_RESPONSE (4u << 20) /* bytes */
#define P11E_HTTP_DEFAULT_MAX_RETRIES 4           /* retries after the first attempt */
#define P11E_HTTP_DEFAULT_MAX_RETRY_TIME 120      /* seconds spent retrying, at most */
#define P11E_HTTP_BACKOFF_BASE_MS 1000u           /* first backoff delay (before jitter) */
#define P11E_HTTP_BACKOFF_CAP_MS 30000u           /* no single backoff delay is longer */

struct p11e_http_opts {
	char *ca_bundle;         /* PEM file of trusted roots; NULL: the system store */
	long connect_timeout;    /* seconds */
	long timeout;            /* seconds per attempt */
	size_t max_response;     /* bytes; a larger body fails the request */
	unsigned max_retries;    /* retries after the first attempt */
	unsigned max_retry_time; /* seconds from the first attempt after which no retry starts */
};

/* Defaults, then the keys above from `s` (durations like 10s, sizes like
 * 4M/512k/1048576). A bad value is P11E_EUSAGE naming file:line. */
p11e_status p11e_http_opts_from_settings(struct p11e_http_opts *opts, const struct p11e_settings *s,
					 struct p11e_err *err);
void p11e_http_opts_free(struct p11e_http_opts *opts);

/* https:// anything; http:// only to 127.0.0.0/8, ::1 or localhost. `what`
 * names the setting in the message ("api_url"). */
p11e_status p11e_http_check_url(const char *url, const char *what, struct p11e_err *err);

/* What became of a request (after the retries it was allowed). */
typedef enum {
	P11E_HTTP_RESPONSE, /* an HTTP response arrived: see status and body (any status) */
	P11E_HTTP_NOT_SENT, /* transport failure before the request left: DNS, connect, TLS handshake */
	P11E_HTTP_MAYBE_SENT, /* transport failure after it may have left: timeout, reset, cut body */
	P11E_HTTP_TOO_LARGE,  /* the response exceeded max_response (the server did see the request) */
	P11E_HTTP_LOCAL,      /* our side: URL refused, ca_bundle unusable, peer certificate not
			       * trusted, body could not be built; retrying will not help */
} p11e_http_kind;

const char *p11e_http_kind_name(p11e_http_kind kind);

/* Builds the body of attempt `attempt` (1-based, retries included): returns
 * a malloc'd NUL-terminated string, or NULL on failure (the request then
 * ends as P11E_HTTP_LOCAL). */
typedef char *(*p11e_http_body_fn)(void *ctx, unsigned attempt);

struct p11e_http_request {
	const char *method; /* "POST" (default when NULL) or "GET" */
	const char *url;
	const char *content_type;     /* of the body; "application/json" when NULL */
	const char *const *headers;   /* extra "Name: value" lines, NULL-terminated; may be NULL.
				       * Authorization values are redacted in logs. */
	const char *body;             /* a fixed body, used when build_body is NULL */
	p11e_http_body_fn build_body; /* else called before every attempt; such a
				       * request always uses a new connection */
	void *build_ctx;
	/* An order placement: no retry once the request may have reached the
	 * server (MAYBE_SENT, 5xx, 429, TOO_LARGE); retries only while it is
	 * certain that nothing was sent. */
	bool no_retry_after_send;
	const char *log_name;           /* "CERTInext GenerateOrderSSL", for debug lines */
	const char *const *redact_keys; /* extra JSON/form keys to redact, besides the defaults */
};

struct p11e_http_response {
	p11e_http_kind kind;
	long status; /* HTTP status of the last response, 0 without one */
	char *body;  /* NUL-terminated (may contain NULs before len), NULL without one */
	size_t len;
	unsigned retry_after; /* Retry-After of the last response, seconds (0: none) */
	unsigned attempts;    /* HTTP attempts made */
	char content_type[128];
	char error[512]; /* for messages when kind != RESPONSE; never a secret */
	char *headers;   /* the last response's header lines as received, NULL without */
	size_t headers_len;
};

void p11e_http_response_clear(struct p11e_http_response *resp);

/* True when the request may have been acted on by the server although we
 * got no usable answer: MAYBE_SENT, TOO_LARGE, or a 5xx response. A caller
 * that placed an order reconciles before placing again. */
/* The value of the index-th (0-based) response header `name` (case-insensitive),
 * trimmed; NULL when absent. free(). */
char *p11e_http_header(const struct p11e_http_response *resp, const char *name, unsigned index);

bool p11e_http_outcome_unknown(const struct p11e_http_response *resp);

struct p11e_http;

p11e_status p11e_http_new(const struct p11e_http_opts *opts, struct p11e_http **out,
			  struct p11e_err *err);
void p11e_http_free(struct p11e_http *http);

/* Registers a secret value (access key, token, password) that must never
 * appear in a log line: every occurrence is replaced in debug output, in
 * addition to the key-based redaction. The client keeps a wiped copy. */
void p11e_http_add_secret(struct p11e_http *http, const char *secret);

/* Performs the request with the retry policy below; fills `resp` (cleared
 * first) and returns resp->kind.
 *
 * Retried (with a fresh body when build_body is set): NOT_SENT always;
 * unless no_retry_after_send, also MAYBE_SENT, 5xx and 429. At most
 * max_retries retries, none starting after max_retry_time seconds; the wait
 * is p11e_http_backoff_ms(), or Retry-After when the server gave one (a
 * Retry-After beyond the remaining budget ends the retries). */
p11e_http_kind p11e_http_perform(struct p11e_http *http, const struct p11e_http_request *req,
				 struct p11e_http_response *resp);

/* --- pure helpers (unit-tested) --- */

/* Backoff before retry `retry` (1-based): d = min(cap, base * 2^(retry-1)),
 * returned as d/2 + jitter * d/2 with jitter in [0, 1]: always in [d/2, d]. */
unsigned p11e_http_backoff_ms(unsigned retry, unsigned base_ms, unsigned cap_ms, double jitter);

/* Whether to retry after attempt number `attempts` (1-based) ended as
 * kind/status, `elapsed_ms` after the first one started; sets *delay_ms. */
bool p11e_http_should_retry(const struct p11e_http_opts *opts, bool no_retry_after_send,
			    unsigned attempts, unsigned long elapsed_ms, p11e_http_kind kind,
			    long status, unsigned retry_after, double jitter, unsigned *delay_ms);

/* Retry-After: delta-seconds or an HTTP-date (relative to `now`); 0 when
 * absent or unparsable; capped at one day. */
unsigned p11e_http_parse_retry_after(const char *value, long now);

/* JSON member names whose string values are always redacted (case-insensitive):
 * authKey, accessKey, access_key, access_token, refresh_token, client_secret,
 * AuthToken, password, pin, … Also applied to form bodies (key=value&…). */
extern const char *const p11e_redact_default_keys[];

/* A malloc'd copy of `text` (len bytes) with the values of the default keys
 * and of `extra_keys` (NULL-terminated, may be NULL) replaced by "<redacted>",
 * whether the text is JSON ("key": "value") or a form (key=value). Works on
 * malformed text too (a textual scan, not a parse). NULL on out of memory. */
char *p11e_redact(const char *text, size_t len, const char *const *extra_keys);

/* "Authorization: Bearer xyz" → "Authorization: <redacted>"; other
 * secret-bearing headers (Proxy-Authorization, X-Api-Key, Cookie) too;
 * anything else is copied. malloc'd. */
char *p11e_redact_header(const char *header);

/* application/x-www-form-urlencoded from name/value pairs (NULL-terminated
 * list: n1, v1, n2, v2, …, NULL). malloc'd; NULL on out of memory. */
char *p11e_http_form_encode(const char *const *pairs);

#endif
