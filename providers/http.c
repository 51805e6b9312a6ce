/* SPDX-License-Identifier: Apache-2.0 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "p11e-config.h"
#include "stop.h"
#include "util.h"

#define LOG_BODY_MAX 8192 /* bytes of a body shown in one debug line */
#define REDACTED "<redacted>"

/* ---------- options ---------- */

static p11e_status setting_error(struct p11e_err *err, const struct p11e_setting *st, const char *what)
{
	return p11e_err_set(err, P11E_EUSAGE, "%s:%d: %s = '%s' is %s", st->file ? st->file : "?",
			    st->line, st->key, st->value, what);
}

/* "4M", "512k", "1048576" → bytes; 0 on error. */
static size_t parse_size(const char *text)
{
	char *end;
	unsigned long long value;
	unsigned long long unit = 1;

	if (!text || !isdigit((unsigned char)*text))
		return 0;
	errno = 0;
	value = strtoull(text, &end, 10);
	if (errno != 0)
		return 0;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		unit = 1024;
		break;
	case 'm':
	case 'M':
		unit = 1024 * 1024;
		break;
	default:
		return 0;
	}
	if (*end && end[1] != '\0')
		return 0;
	if (value > SIZE_MAX / unit)
		return 0;
	return (size_t)(value * unit);
}

static p11e_status read_duration(const struct p11e_settings *s, const char *key, long min, long max,
				 long *out, struct p11e_err *err)
{
	const struct p11e_setting *st = p11e_settings_find(s, key);
	int64_t v;

	if (!st)
		return P11E_OK;
	v = p11e_parse_duration(st->value);
	if (v < min || v > max)
		return setting_error(err, st,
				     min > 0 ? "not a duration of at least 1s (e.g. 10s, 2m)"
					     : "not a duration (e.g. 0, 30s, 2m)");
	*out = (long)v;
	return P11E_OK;
}

p11e_status p11e_http_opts_from_settings(struct p11e_http_opts *opts, const struct p11e_settings *s,
					 struct p11e_err *err)
{
	const struct p11e_setting *st;
	long retry_time = P11E_HTTP_DEFAULT_MAX_RETRY_TIME;
	p11e_status rc;

	memset(opts, 0, sizeof(*opts));
	opts->connect_timeout = P11E_HTTP_DEFAULT_CONNECT_TIMEOUT;
	opts->timeout = P11E_HTTP_DEFAULT_TIMEOUT;
	opts->max_response = P11E_HTTP_DEFAULT_MAX_RESPONSE;
	opts->max_retries = P11E_HTTP_DEFAULT_MAX_RETRIES;
	opts->max_retry_time = P11E_HTTP_DEFAULT_MAX_RETRY_TIME;

	rc = read_duration(s, "connect_timeout", 1, 3600, &opts->connect_timeout, err);
	if (rc == P11E_OK)
		rc = read_duration(s, "timeout", 1, 3600, &opts->timeout, err);
	if (rc == P11E_OK)
		rc = read_duration(s, "max_retry_time", 0, 86400, &retry_time, err);
	if (rc != P11E_OK)
		return rc;
	opts->max_retry_time = (unsigned)retry_time;

	st = p11e_settings_find(s, "max_retries");
	if (st) {
		char *end;
		long v;

		errno = 0;
		v = strtol(st->value, &end, 10);
		if (errno || end == st->value || *end || v < 0 || v > 20)
			return setting_error(err, st, "not a number of retries between 0 and 20");
		opts->max_retries = (unsigned)v;
	}
	st = p11e_settings_find(s, "max_response_size");
	if (st) {
		opts->max_response = parse_size(st->value);
		if (opts->max_response < 1024 || opts->max_response > (size_t)1 << 30)
			return setting_error(err, st,
					     "not a size between 1k and 1024M (e.g. 4M, 512k)");
	}
	st = p11e_settings_find(s, "ca_bundle");
	if (st) {
		if (access(st->value, R_OK) != 0)
			return p11e_err_set(err, P11E_EUSAGE, "%s:%d: ca_bundle: cannot read %s: %s",
					    st->file ? st->file : "?", st->line, st->value,
					    strerror(errno));
		opts->ca_bundle = strdup(st->value);
		if (!opts->ca_bundle)
			return p11e_err_set(err, P11E_EFAIL, "out of memory");
	}
	return P11E_OK;
}

void p11e_http_opts_free(struct p11e_http_opts *opts)
{
	free(opts->ca_bundle);
	opts->ca_bundle = NULL;
}

/* ---------- URL policy ---------- */

static bool host_is_loopback(const char *host)
{
	size_t len = strlen(host);
	unsigned a, b, c, d;
	char tail;

	if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0)
		return true;
	if (strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0)
		return true;
	if (len < 7 || len > 15)
		return false;
	if (sscanf(host, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4)
		return false;
	return a == 127 && b < 256 && c < 256 && d < 256;
}

/* 1: https, 0: http to loopback, -1 refused (message in err). */
static int url_policy(const char *url, const char *what, struct p11e_err *err)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int verdict = -1;

	if (!u) {
		p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		p11e_err_set(err, P11E_EUSAGE, "%s: '%s' is not a URL (https://host/path)", what,
			     url ? url : "");
		goto out;
	}
	if (strcasecmp(scheme, "https") == 0) {
		verdict = 1;
	} else if (strcasecmp(scheme, "http") == 0) {
		if (host_is_loopback(host))
			verdict = 0;
		else
			p11e_err_set(err, P11E_EUSAGE,
				     "%s: plain http:// is refused except to loopback "
				     "(127.0.0.0/8, ::1, localhost); use https://",
				     what);
	} else {
		p11e_err_set(err, P11E_EUSAGE, "%s: scheme %s is not supported; use https://", what,
			     scheme);
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return verdict;
}

p11e_status p11e_http_check_url(const char *url, const char *what, struct p11e_err *err)
{
	return url_policy(url, what, err) < 0 ? err->status : P11E_OK;
}

/* ---------- pure helpers ---------- */

const char *p11e_http_kind_name(p11e_http_kind kind)
{
	switch (kind) {
	case P11E_HTTP_RESPONSE:
		return "response";
	case P11E_HTTP_NOT_SENT:
		return "not-sent";
	case P11E_HTTP_MAYBE_SENT:
		return "maybe-sent";
	case P11E_HTTP_TOO_LARGE:
		return "too-large";
	case P11E_HTTP_LOCAL:
		return "local";
	}
	return "?";
}

unsigned p11e_http_backoff_ms(unsigned retry, unsigned base_ms, unsigned cap_ms, double jitter)
{
	unsigned long long d = base_ms;

	if (retry < 1)
		retry = 1;
	for (unsigned i = 1; i < retry && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	if (!(jitter >= 0.0)) /* NaN too */
		jitter = 0.0;
	if (jitter > 1.0)
		jitter = 1.0;
	return (unsigned)(d / 2 + (unsigned long long)(jitter * (double)(d - d / 2)));
}

bool p11e_http_should_retry(const struct p11e_http_opts *opts, bool no_retry_after_send,
			    unsigned attempts, unsigned long elapsed_ms, p11e_http_kind kind,
			    long status, unsigned retry_after, double jitter, unsigned *delay_ms)
{
	bool retryable = false;
	unsigned long long delay;

	*delay_ms = 0;
	if (attempts == 0 || attempts - 1 >= opts->max_retries)
		return false;
	switch (kind) {
	case P11E_HTTP_NOT_SENT:
		retryable = true;
		break;
	case P11E_HTTP_MAYBE_SENT:
		retryable = !no_retry_after_send;
		break;
	case P11E_HTTP_RESPONSE:
		/* 429 is the server refusing to act: safe even for an order. */
		if (status == 429)
			retryable = true;
		else if (status >= 500 && status <= 599)
			retryable = !no_retry_after_send;
		break;
	case P11E_HTTP_TOO_LARGE:
	case P11E_HTTP_LOCAL:
		break;
	}
	if (!retryable)
		return false;
	if (retry_after > 0)
		delay = (unsigned long long)retry_after * 1000;
	else
		delay = p11e_http_backoff_ms(attempts, P11E_HTTP_BACKOFF_BASE_MS,
					     P11E_HTTP_BACKOFF_CAP_MS, jitter);
	if (elapsed_ms + delay > (unsigned long long)opts->max_retry_time * 1000)
		return false;
	*delay_ms = (unsigned)delay;
	return true;
}

unsigned p11e_http_parse_retry_after(const char *value, long now)
{
	struct tm tm;
	const char *p;
	char *end;
	unsigned long v;

	if (!value)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	if (isdigit((unsigned char)*value)) {
		errno = 0;
		v = strtoul(value, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (errno || *end)
			return 0;
		return v > 86400 ? 86400 : (unsigned)v;
	}
	memset(&tm, 0, sizeof(tm));
	p = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!p)
		return 0;
	{
		long when = (long)timegm(&tm);

		if (when <= now)
			return 0;
		return when - now > 86400 ? 86400 : (unsigned)(when - now);
	}
}

/* ---------- redaction ---------- */

const char *const p11e_redact_default_keys[] = {
	"authKey",       "accessKey", "access_key",    "access_token", "accessToken",
	"refresh_token", "id_token",  "client_secret", "clientSecret", "AuthToken",
	"password",      "Password",  "pin",           "passphrase",   "secret",
	"apiKey",        "api_key",   "Authorization", NULL,
};

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static bool key_listed(const char *name, size_t n, const char *const *keys)
{
	for (size_t i = 0; keys && keys[i]; i++)
		if (strlen(keys[i]) == n && strncasecmp(keys[i], name, n) == 0)
			return true;
	return false;
}

static bool secret_key(const char *name, size_t n, const char *const *extra)
{
	return key_listed(name, n, p11e_redact_default_keys) || key_listed(name, n, extra);
}

/* At text[i] == '"': if it opens a JSON member name of a secret key followed
 * by ':' and a value, copies up to the value, writes <redacted> and returns
 * the index after the value; else returns 0. */
static size_t redact_json_member(struct buf *b, const char *t, size_t len, size_t i,
				 const char *const *extra)
{
	size_t k = i + 1, v;

	while (k < len && t[k] != '"' && t[k] != '\\')
		k++;
	if (k >= len || t[k] != '"' || !secret_key(t + i + 1, k - i - 1, extra))
		return 0;
	v = k + 1;
	while (v < len && isspace((unsigned char)t[v]))
		v++;
	if (v >= len || t[v] != ':')
		return 0;
	v++;
	while (v < len && isspace((unsigned char)t[v]))
		v++;
	if (v >= len)
		return 0;
	if (t[v] == '"') {
		size_t e = v + 1;

		while (e < len && t[e] != '"')
			e += (t[e] == '\\') ? 2 : 1;
		buf_add(b, t + i, v + 1 - i);
		buf_add(b, REDACTED, strlen(REDACTED));
		if (e >= len)
			return len; /* cut string: the rest is the secret */
		buf_add(b, "\"", 1);
		return e + 1;
	}
	if (t[v] == '{' || t[v] == '[')
		return 0; /* a container: its members are scanned on their own */
	/* a bare scalar (number, true, null) */
	{
		size_t e = v;

		while (e < len && t[e] != ',' && t[e] != '}' && t[e] != ']' &&
		       !isspace((unsigned char)t[e]))
			e++;
		buf_add(b, t + i, v - i);
		buf_add(b, REDACTED, strlen(REDACTED));
		return e;
	}
}

/* At the start of a form field (i == 0 or after '&'): key=value. */
static size_t redact_form_field(struct buf *b, const char *t, size_t len, size_t i,
				const char *const *extra)
{
	size_t k = i, e;

	while (k < len && t[k] != '=' && t[k] != '&' && !isspace((unsigned char)t[k]) && t[k] != '"' &&
	       t[k] != '{')
		k++;
	if (k >= len || t[k] != '=' || k == i || !secret_key(t + i, k - i, extra))
		return 0;
	e = k + 1;
	while (e < len && t[e] != '&')
		e++;
	buf_add(b, t + i, k + 1 - i);
	buf_add(b, REDACTED, strlen(REDACTED));
	return e;
}

char *p11e_redact(const char *text, size_t len, const char *const *extra_keys)
{
	struct buf b = { 0 };
	size_t i = 0, next;

	buf_add(&b, "", 0);
	while (i < len) {
		next = 0;
		if (text[i] == '"')
			next = redact_json_member(&b, text, len, i, extra_keys);
		else if (i == 0 || text[i - 1] == '&')
			next = redact_form_field(&b, text, len, i, extra_keys);
		if (next > i) {
			i = next;
			continue;
		}
		buf_add(&b, text + i, 1);
		i++;
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

char *p11e_redact_header(const char *header)
{
	static const char *const secret_headers[] = {
		"Authorization", "Proxy-Authorization", "X-Api-Key", "Cookie", "Set-Cookie", NULL,
	};
	const char *colon = strchr(header, ':');
	char *out;

	if (colon && key_listed(header, (size_t)(colon - header), secret_headers)) {
		size_t n = (size_t)(colon - header);

		out = malloc(n + sizeof(": " REDACTED));
		if (out) {
			memcpy(out, header, n);
			strcpy(out + n, ": " REDACTED);
		}
		return out;
	}
	return strdup(header);
}

char *p11e_http_form_encode(const char *const *pairs)
{
	struct buf b = { 0 };

	buf_add(&b, "", 0);
	for (size_t i = 0; pairs[i] && pairs[i + 1]; i += 2) {
		char *name = curl_easy_escape(NULL, pairs[i], 0);
		char *value = curl_easy_escape(NULL, pairs[i + 1], 0);

		if (!name || !value) {
			b.oom = true;
		} else {
			if (i > 0)
				buf_add(&b, "&", 1);
			buf_add(&b, name, strlen(name));
			buf_add(&b, "=", 1);
			buf_add(&b, value, strlen(value));
		}
		if (value)
			OPENSSL_cleanse(value, strlen(value));
		curl_free(name);
		curl_free(value);
	}
	if (b.oom) {
		if (b.p)
			OPENSSL_cleanse(b.p, b.cap);
		free(b.p);
		return NULL;
	}
	return b.p;
}

/* ---------- the client ---------- */

struct p11e_http {
	CURL *curl;
	struct p11e_http_opts opts;
	char **secrets;
	size_t n_secrets;
};

static bool curl_ready;

p11e_status p11e_http_new(const struct p11e_http_opts *opts, struct p11e_http **out,
			  struct p11e_err *err)
{
	struct p11e_http *h;

	*out = NULL;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return p11e_err_set(err, P11E_EFAIL, "cannot initialise libcurl");
		curl_ready = true;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	h->opts = *opts;
	h->opts.ca_bundle = NULL;
	if (opts->ca_bundle && !(h->opts.ca_bundle = strdup(opts->ca_bundle)))
		goto oom;
	h->curl = curl_easy_init();
	if (!h->curl)
		goto oom;
	*out = h;
	return P11E_OK;
oom:
	p11e_http_free(h);
	return p11e_err_set(err, P11E_EFAIL, "out of memory");
}

void p11e_http_free(struct p11e_http *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n_secrets; i++) {
		OPENSSL_cleanse(h->secrets[i], strlen(h->secrets[i]));
		free(h->secrets[i]);
	}
	free(h->secrets);
	if (h->curl)
		curl_easy_cleanup(h->curl);
	p11e_http_opts_free(&h->opts);
	free(h);
}

void p11e_http_add_secret(struct p11e_http *h, const char *secret)
{
	char **v;

	/* Very short values would blank out ordinary text; they are covered
	 * by the key-based redaction anyway. */
	if (!h || !secret || strlen(secret) < 4)
		return;
	v = realloc(h->secrets, (h->n_secrets + 1) * sizeof(*v));
	if (!v)
		return;
	h->secrets = v;
	v[h->n_secrets] = strdup(secret);
	if (v[h->n_secrets])
		h->n_secrets++;
}

/* Replaces each registered secret value in place-made copy. */
static char *scrub_literals(const struct p11e_http *h, char *text)
{
	for (size_t i = 0; text && i < h->n_secrets; i++) {
		const char *s = h->secrets[i];
		size_t sl = strlen(s);
		struct buf b = { 0 };
		const char *p = text, *hit;

		if (!strstr(text, s))
			continue;
		buf_add(&b, "", 0);
		while ((hit = strstr(p, s))) {
			buf_add(&b, p, (size_t)(hit - p));
			buf_add(&b, REDACTED, strlen(REDACTED));
			p = hit + sl;
		}
		buf_add(&b, p, strlen(p));
		free(text);
		if (b.oom) {
			free(b.p);
			return NULL;
		}
		text = b.p;
	}
	return text;
}

static bool debugging(void)
{
	return p11e_log_get_level() >= P11E_LOG_DEBUG;
}

static void log_text(const struct p11e_http *h, const char *prefix, const char *text, size_t len,
		     const char *const *extra_keys)
{
	char *safe;
	size_t shown;

	if (!text || len == 0)
		return;
	safe = p11e_redact(text, len, extra_keys);
	safe = scrub_literals(h, safe);
	if (!safe) {
		p11e_debug("%s(body not shown: out of memory)", prefix);
		return;
	}
	for (char *c = safe; *c; c++) /* one log line per body */
		if (*c == '\n' || *c == '\r' || (unsigned char)*c < 0x20)
			*c = ' ';
	shown = strlen(safe);
	if (shown > LOG_BODY_MAX)
		p11e_debug("%s%.*s … (%zu more bytes)", prefix, LOG_BODY_MAX, safe,
			   shown - LOG_BODY_MAX);
	else
		p11e_debug("%s%s", prefix, safe);
	free(safe);
}

struct attempt {
	struct p11e_http_response *resp;
	size_t cap;
	size_t max;
	bool too_large;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct attempt *a = userp;
	struct p11e_http_response *r = a->resp;
	size_t n = size * nmemb;
	struct buf b = { .p = r->body, .len = r->len, .cap = a->cap };

	if (r->len + n > a->max) {
		a->too_large = true;
		return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
	}
	buf_add(&b, data, n);
	if (b.oom)
		return 0;
	r->body = b.p;
	r->len = b.len;
	a->cap = b.cap;
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct attempt *a = userp;
	struct p11e_http_response *r = a->resp;
	size_t n = size * nmemb;
	char line[256];
	size_t l = n < sizeof(line) - 1 ? n : sizeof(line) - 1;

	memcpy(line, data, l);
	line[l] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) { /* a new response (after 100-continue, say) */
		r->retry_after = 0;
		r->content_type[0] = '\0';
		free(r->headers);
		r->headers = NULL;
		r->headers_len = 0;
	} else if (n > 2 && r->headers_len + n < 65536) {
		/* Kept whole (not the 255-byte copy) for p11e_http_header. */
		char *p = realloc(r->headers, r->headers_len + n + 1);

		if (p) {
			memcpy(p + r->headers_len, data, n);
			r->headers_len += n;
			p[r->headers_len] = '\0';
			r->headers = p;
		}
	}
	if (strncasecmp(line, "Retry-After:", 12) == 0) {
		r->retry_after = p11e_http_parse_retry_after(line + 12, (long)time(NULL));
	} else if (strncasecmp(line, "Content-Type:", 13) == 0) {
		const char *v = line + 13;
		size_t e;

		while (*v == ' ' || *v == '\t')
			v++;
		snprintf(r->content_type, sizeof(r->content_type), "%.127s", v);
		e = strcspn(r->content_type, "\r\n");
		r->content_type[e] = '\0';
	}
	return n;
}

static unsigned long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long)ts.tv_sec * 1000UL + (unsigned long)(ts.tv_nsec / 1000000);
}

/* Ends early when p11enroll is asked to stop (SIGTERM, SIGINT). */
static void sleep_ms(unsigned ms)
{
	p11e_stop_sleep_ms((long long)ms);
}

/* libcurl calls this at least once a second: a stop request aborts the
 * transfer, whose outcome then counts as unknown like any cut answer. */
static int on_xferinfo(void *ctx, curl_off_t dl_total, curl_off_t dl_now, curl_off_t ul_total,
		       curl_off_t ul_now)
{
	(void)ctx, (void)dl_total, (void)dl_now, (void)ul_total, (void)ul_now;
	return p11e_stop_requested() ? 1 : 0;
}

static double random_unit(void)
{
	uint32_t r = 0;

	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0.5;
	return (double)r / 4294967296.0;
}

static p11e_http_kind classify(CURL *curl, CURLcode cc, const struct attempt *a)
{
	curl_off_t pretransfer = 0;

	if (a->too_large || cc == CURLE_FILESIZE_EXCEEDED)
		return P11E_HTTP_TOO_LARGE;
	switch (cc) {
	case CURLE_OK:
		return P11E_HTTP_RESPONSE;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
		return P11E_HTTP_NOT_SENT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_NOT_BUILT_IN:
		return P11E_HTTP_LOCAL;
	case CURLE_OPERATION_TIMEDOUT:
		/* A timeout before the transfer phase (connect, handshake)
		 * means nothing was sent. */
		if (curl_easy_getinfo(curl, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) == CURLE_OK &&
		    pretransfer == 0)
			return P11E_HTTP_NOT_SENT;
		return P11E_HTTP_MAYBE_SENT;
	default:
		/* Send/receive errors, resets, empty replies: assume the
		 * server may have seen the request. */
		return P11E_HTTP_MAYBE_SENT;
	}
}

static void describe(struct p11e_http_response *r, const struct p11e_http_request *req, CURLcode cc,
		     const char *errbuf, size_t max_response, long timeout)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);

	switch (r->kind) {
	case P11E_HTTP_TOO_LARGE:
		snprintf(r->error, sizeof(r->error),
			 "the response of %s is larger than %zu bytes (max_response_size)", req->url,
			 max_response);
		break;
	case P11E_HTTP_LOCAL:
		if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
			snprintf(r->error, sizeof(r->error),
				 "TLS verification of %s failed: %s; set ca_bundle to the CA "
				 "file that issued the server's certificate",
				 req->url, detail);
		else
			snprintf(r->error, sizeof(r->error), "%s: %s", req->url, detail);
		break;
	case P11E_HTTP_NOT_SENT:
		snprintf(r->error, sizeof(r->error), "cannot reach %s: %s", req->url, detail);
		break;
	case P11E_HTTP_MAYBE_SENT:
		if (cc == CURLE_OPERATION_TIMEDOUT)
			snprintf(r->error, sizeof(r->error),
				 "%s: no complete answer within %lds (timeout): %s", req->url, timeout,
				 detail);
		else
			snprintf(r->error, sizeof(r->error), "%s: connection failed mid-request: %s",
				 req->url, detail);
		break;
	case P11E_HTTP_RESPONSE:
		r->error[0] = '\0';
		break;
	}
}

void p11e_http_response_clear(struct p11e_http_response *resp)
{
	free(resp->body);
	free(resp->headers);
	memset(resp, 0, sizeof(*resp));
}

bool p11e_http_outcome_unknown(const struct p11e_http_response *resp)
{
	switch (resp->kind) {
	case P11E_HTTP_MAYBE_SENT:
	case P11E_HTTP_TOO_LARGE:
		return true;
	case P11E_HTTP_RESPONSE:
		return resp->status >= 500 && resp->status <= 599;
	default:
		return false;
	}
}

/* Forgets what an earlier attempt received. */
static void reset_response(struct p11e_http_response *resp)
{
	free(resp->body);
	resp->body = NULL;
	resp->len = 0;
	free(resp->headers);
	resp->headers = NULL;
	resp->headers_len = 0;
	resp->status = 0;
	resp->retry_after = 0;
	resp->content_type[0] = '\0';
}

/* The request's header lines; false when out of memory (*out freed). */
static bool request_headers(const struct p11e_http_request *req, bool is_get, struct curl_slist **out)
{
	struct curl_slist *headers = NULL, *more;
	char line[256];

	if (!is_get) {
		snprintf(line, sizeof(line), "Content-Type: %s",
			 req->content_type ? req->content_type : "application/json");
		if (!(more = curl_slist_append(headers, line)))
			goto oom;
		headers = more;
		if (!(more = curl_slist_append(headers, "Expect:")))
			goto oom;
		headers = more;
	}
	for (size_t i = 0; req->headers && req->headers[i]; i++) {
		if (!(more = curl_slist_append(headers, req->headers[i])))
			goto oom;
		headers = more;
	}
	*out = headers;
	return true;
oom:
	curl_slist_free_all(headers);
	*out = NULL;
	return false;
}

/* The transfer's options: TLS policy, limits, callbacks, method and body. */
static void set_options(struct p11e_http *h, const struct p11e_http_request *req, const char *method,
			const char *body, bool loopback, struct attempt *a, char *errbuf,
			struct curl_slist *headers)
{
	CURL *c = h->curl;

	curl_easy_reset(c); /* keeps the connection cache */
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (h->opts.ca_bundle)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->opts.ca_bundle);
	if (loopback)
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* a proxy cannot reach our loopback */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->opts.connect_timeout);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, h->opts.timeout);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opts.max_response);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "p11enroll/" P11E_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	/* libcurl silently re-sends a request on a kept-alive connection that
	 * turns out to be closed: an order placement must go out once, and a
	 * body built per attempt (signed with a one-time transaction number)
	 * must never go out twice, so both use a connection of their own. */
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT,
			 req->no_retry_after_send || req->build_body ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE,
			 req->no_retry_after_send || req->build_body ? 1L : 0L);
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body ? strlen(body) : 0));
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
}

/* Debug lines of the request, secrets redacted. */
static void log_request(const struct p11e_http *h, const struct p11e_http_request *req,
			const char *name, const char *method, const char *body, unsigned attempt)
{
	char line[256];

	p11e_debug("%s: > %s %s (attempt %u)", name, method, req->url, attempt);
	for (size_t i = 0; req->headers && req->headers[i]; i++) {
		char *safe = p11e_redact_header(req->headers[i]);

		safe = scrub_literals(h, safe);
		p11e_debug("%s: > %s", name, safe ? safe : "(header)");
		free(safe);
	}
	if (body) {
		snprintf(line, sizeof(line), "%s: > ", name);
		log_text(h, line, body, strlen(body), req->redact_keys);
	}
}

/* Debug lines of the answer, secrets redacted. */
static void log_response(const struct p11e_http *h, const struct p11e_http_request *req,
			 const char *name, const struct p11e_http_response *resp)
{
	char line[256];

	if (resp->kind != P11E_HTTP_RESPONSE) {
		p11e_debug("%s: < %s: %s", name, p11e_http_kind_name(resp->kind), resp->error);
		return;
	}
	p11e_debug("%s: < HTTP %ld, %zu bytes%s%s%s", name, resp->status, resp->len,
		   resp->content_type[0] ? " (" : "", resp->content_type,
		   resp->content_type[0] ? ")" : "");
	snprintf(line, sizeof(line), "%s: < ", name);
	log_text(h, line, resp->body, resp->len, req->redact_keys);
}

/* One attempt; fills resp (body, status, headers) and returns its kind. */
static p11e_http_kind attempt_once(struct p11e_http *h, const struct p11e_http_request *req,
				   const char *body, bool loopback, struct p11e_http_response *resp)
{
	const char *name = req->log_name ? req->log_name : "http";
	const char *method = req->method ? req->method : "POST";
	struct curl_slist *headers = NULL;
	struct attempt a = { .resp = resp, .max = h->opts.max_response };
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	CURL *c = h->curl;
	p11e_http_kind kind;

	reset_response(resp);
	if (!request_headers(req, strcmp(method, "GET") == 0, &headers)) {
		resp->kind = P11E_HTTP_LOCAL;
		snprintf(resp->error, sizeof(resp->error), "out of memory");
		return P11E_HTTP_LOCAL;
	}
	set_options(h, req, method, body, loopback, &a, errbuf, headers);
	if (debugging())
		log_request(h, req, name, method, body, resp->attempts);

	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	kind = classify(c, cc, &a);
	resp->kind = kind;
	describe(resp, req, cc, errbuf, h->opts.max_response, h->opts.timeout);
	if (kind != P11E_HTTP_RESPONSE) {
		/* A partial or capped body is no answer. */
		free(resp->body);
		resp->body = NULL;
		resp->len = 0;
	}
	if (debugging())
		log_response(h, req, name, resp);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(headers);
	return kind;
}

p11e_http_kind p11e_http_perform(struct p11e_http *h, const struct p11e_http_request *req,
				 struct p11e_http_response *resp)
{
	struct p11e_err uerr = { 0 };
	unsigned long started = now_ms();
	const char *name = req->log_name ? req->log_name : "http";
	int policy;

	memset(resp, 0, sizeof(*resp));
	policy = url_policy(req->url, "URL", &uerr);
	if (policy < 0) {
		resp->kind = P11E_HTTP_LOCAL;
		snprintf(resp->error, sizeof(resp->error), "%.500s", uerr.msg);
		return resp->kind;
	}
	for (;;) {
		char *body = NULL;
		unsigned delay = 0;
		p11e_http_kind kind;

		resp->attempts++;
		if (req->build_body) {
			body = req->build_body(req->build_ctx, resp->attempts);
			if (!body) {
				free(resp->body);
				resp->body = NULL;
				resp->len = 0;
				resp->kind = P11E_HTTP_LOCAL;
				snprintf(resp->error, sizeof(resp->error),
					 "%s: could not build the request body", name);
				return resp->kind;
			}
		}
		kind = attempt_once(h, req, req->build_body ? body : req->body, policy == 0, resp);
		if (body) {
			/* A body may carry a one-time proof (authKey); wipe it. */
			OPENSSL_cleanse(body, strlen(body));
			free(body);
		}
		if (p11e_stop_requested())
			break;
		if (!p11e_http_should_retry(&h->opts, req->no_retry_after_send, resp->attempts,
					    now_ms() - started, kind, resp->status, resp->retry_after,
					    random_unit(), &delay))
			break;
		if (kind == P11E_HTTP_RESPONSE)
			p11e_info("%s: HTTP %ld; retrying in %.1fs (retry %u of %u)", name,
				  resp->status, delay / 1000.0, resp->attempts, h->opts.max_retries);
		else
			p11e_info("%s: %s; retrying in %.1fs (retry %u of %u)", name, resp->error,
				  delay / 1000.0, resp->attempts, h->opts.max_retries);
		sleep_ms(delay);
		if (p11e_stop_requested())
			break;
	}
	return resp->kind;
}

char *p11e_http_header(const struct p11e_http_response *resp, const char *name, unsigned index)
{
	size_t nl = strlen(name);
	const char *p = resp->headers;

	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':' && index-- == 0) {
			const char *v = p + nl + 1;
			size_t vl;

			while (*v == ' ' || *v == '\t')
				v++;
			vl = (size_t)(p + len - v);
			while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			return strndup(v, vl);
		}
		p = end ? end + 1 : p + len;
	}
	return NULL;
}
