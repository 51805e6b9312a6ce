/* SPDX-License-Identifier: Apache-2.0 */
/* The shared HTTP layer: options, URL policy, backoff and retry rules,
 * Retry-After, redaction (also of real debug output). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"

Test(backoff, bounds_and_cap)
{
	for (unsigned retry = 1; retry <= 12; retry++) {
		unsigned long d = 1000UL << (retry - 1 > 10 ? 10 : retry - 1);

		if (d > 30000)
			d = 30000;
		for (int j = 0; j <= 10; j++) {
			unsigned ms = p11e_http_backoff_ms(retry, 1000, 30000, j / 10.0);

			cr_assert_geq(ms, d / 2, "retry %u jitter %d: %u < %lu", retry, j, ms, d / 2);
			cr_assert_leq(ms, d, "retry %u jitter %d: %u > %lu", retry, j, ms, d);
		}
	}
	cr_assert_eq(p11e_http_backoff_ms(1, 1000, 30000, 0.0), 500);
	cr_assert_eq(p11e_http_backoff_ms(3, 1000, 30000, 1.0), 4000);
	cr_assert_eq(p11e_http_backoff_ms(40, 1000, 30000, 1.0), 30000);
	cr_assert_eq(p11e_http_backoff_ms(2, 1000, 30000, -3.0), 1000); /* jitter clamped */
}

Test(retry, policy)
{
	struct p11e_http_opts o = { .max_retries = 3, .max_retry_time = 20 };
	unsigned d;

	/* nothing sent: always retried, even for an order */
	cr_assert(p11e_http_should_retry(&o, true, 1, 0, P11E_HTTP_NOT_SENT, 0, 0, 0.5, &d));
	cr_assert_eq(d, 750);
	/* maybe sent / 5xx: retried, but never for an order */
	cr_assert(p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_MAYBE_SENT, 0, 0, 0.5, &d));
	cr_assert(!p11e_http_should_retry(&o, true, 1, 0, P11E_HTTP_MAYBE_SENT, 0, 0, 0.5, &d));
	cr_assert(p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_RESPONSE, 503, 0, 0.5, &d));
	cr_assert(!p11e_http_should_retry(&o, true, 1, 0, P11E_HTTP_RESPONSE, 500, 0, 0.5, &d));
	/* 429 is a refusal: retried, Retry-After honoured */
	cr_assert(p11e_http_should_retry(&o, true, 1, 0, P11E_HTTP_RESPONSE, 429, 7, 0.5, &d));
	cr_assert_eq(d, 7000);
	/* final answers and our own errors are not retried */
	cr_assert(!p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_RESPONSE, 200, 0, 0.5, &d));
	cr_assert(!p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_RESPONSE, 404, 0, 0.5, &d));
	cr_assert(!p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_TOO_LARGE, 0, 0, 0.5, &d));
	cr_assert(!p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_LOCAL, 0, 0, 0.5, &d));
	/* bounded in count ... */
	cr_assert(p11e_http_should_retry(&o, false, 3, 0, P11E_HTTP_NOT_SENT, 0, 0, 0.5, &d));
	cr_assert(!p11e_http_should_retry(&o, false, 4, 0, P11E_HTTP_NOT_SENT, 0, 0, 0.5, &d));
	/* ... and in time: a wait past the budget is not started */
	cr_assert(!p11e_http_should_retry(&o, false, 1, 19500, P11E_HTTP_NOT_SENT, 0, 0, 1.0, &d));
	cr_assert(!p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_RESPONSE, 429, 21, 0.5, &d));
	o.max_retries = 0;
	cr_assert(!p11e_http_should_retry(&o, false, 1, 0, P11E_HTTP_NOT_SENT, 0, 0, 0.5, &d));
}

Test(retry, retry_after_values)
{
	cr_assert_eq(p11e_http_parse_retry_after(" 5\r\n", 0), 5);
	cr_assert_eq(p11e_http_parse_retry_after("0", 0), 0);
	cr_assert_eq(p11e_http_parse_retry_after("999999", 0), 86400);
	cr_assert_eq(p11e_http_parse_retry_after("soon", 0), 0);
	cr_assert_eq(p11e_http_parse_retry_after("5x", 0), 0);
	cr_assert_eq(p11e_http_parse_retry_after(NULL, 0), 0);
	/* 2026-05-12T09:41:07Z is 1778578867 */
	cr_assert_eq(p11e_http_parse_retry_after("Tue, 12 May 2026 09:41:37 GMT", 1778578867), 30);
	cr_assert_eq(p11e_http_parse_retry_after("Tue, 12 May 2026 09:41:07 GMT", 1778578900), 0);
}

Test(url, policy)
{
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_http_check_url("https://api.certinext.io/emSignHub-API", "api_url", &err),
		     P11E_OK);
	cr_assert_eq(p11e_http_check_url("http://127.0.0.1:8443/x", "api_url", &err), P11E_OK);
	cr_assert_eq(p11e_http_check_url("http://127.9.1.2/x", "api_url", &err), P11E_OK);
	cr_assert_eq(p11e_http_check_url("http://localhost/x", "api_url", &err), P11E_OK);
	cr_assert_eq(p11e_http_check_url("http://[::1]:80/x", "api_url", &err), P11E_OK);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_check_url("http://api.certinext.io/x", "api_url", &err), P11E_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "api_url: plain http:// is refused"));
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_check_url("http://128.0.0.1/x", "api_url", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_check_url("http://127.0.0.1.evil.example/x", "api_url", &err),
		     P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_check_url("ftp://127.0.0.1/x", "api_url", &err), P11E_EUSAGE);
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_check_url("not a url", "api_url", &err), P11E_EUSAGE);
}

Test(options, defaults_values_and_errors)
{
	struct p11e_setting v[] = {
		{ "connect_timeout", "5s", "a.conf", 3 },     { "timeout", "2m", "a.conf", 4 },
		{ "max_response_size", "512k", "a.conf", 5 }, { "max_retries", "2", "a.conf", 6 },
		{ "max_retry_time", "0", "a.conf", 7 },
	};
	struct p11e_settings s = { v, 5 };
	struct p11e_http_opts o;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_http_opts_from_settings(&o, &(struct p11e_settings){ NULL, 0 }, &err),
		     P11E_OK);
	cr_assert_eq(o.connect_timeout, 10);
	cr_assert_eq(o.timeout, 60);
	cr_assert_eq(o.max_response, 4u << 20);
	cr_assert_eq(o.max_retries, 4);
	cr_assert_eq(o.max_retry_time, 120);
	cr_assert_null(o.ca_bundle);
	cr_assert_eq(p11e_http_opts_from_settings(&o, &s, &err), P11E_OK);
	cr_assert_eq(o.connect_timeout, 5);
	cr_assert_eq(o.timeout, 120);
	cr_assert_eq(o.max_response, 512 * 1024);
	cr_assert_eq(o.max_retries, 2);
	cr_assert_eq(o.max_retry_time, 0);
	p11e_http_opts_free(&o);

	v[1].value = "forever";
	cr_assert_eq(p11e_http_opts_from_settings(&o, &s, &err), P11E_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "a.conf:4: timeout = 'forever'"), "%s", err.msg);
	p11e_http_opts_free(&o);
	v[1].value = "2m";
	v[3].value = "-1";
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_opts_from_settings(&o, &s, &err), P11E_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "a.conf:6: max_retries"));
	p11e_http_opts_free(&o);
	v[3].value = "2";
	v[0] = (struct p11e_setting){ "ca_bundle", "/nonexistent/ca.pem", "a.conf", 9 };
	p11e_err_clear(&err);
	cr_assert_eq(p11e_http_opts_from_settings(&o, &s, &err), P11E_EUSAGE);
	cr_assert_not_null(strstr(err.msg, "a.conf:9: ca_bundle"));
	p11e_http_opts_free(&o);
}

Test(redact, json_form_and_headers)
{
	static const char *const extra[] = { "PartnerSecret", NULL };
	const char *json = "{\"meta\":{\"authKey\":\"d6200a2f\",\"txn\":\"4829\"},"
			   "\"AuthRequest\":{\"PartnerCode\":\"123\",\"AuthToken\" : \"tok\\\"en\"},"
			   "\"pin\":1234,\"PartnerSecret\":\"zz\",\"access_token\":\"abc\"}";
	char *r = p11e_redact(json, strlen(json), extra);

	cr_assert_str_eq(r, "{\"meta\":{\"authKey\":\"<redacted>\",\"txn\":\"4829\"},"
			    "\"AuthRequest\":{\"PartnerCode\":\"123\",\"AuthToken\" : \"<redacted>\"},"
			    "\"pin\":<redacted>,\"PartnerSecret\":\"<redacted>\","
			    "\"access_token\":\"<redacted>\"}");
	free(r);
	r = p11e_redact("grant_type=client_credentials&client_id=a&client_secret=s%3Dx", 62, NULL);
	cr_assert_str_eq(r, "grant_type=client_credentials&client_id=a&client_secret=<redacted>");
	free(r);
	/* a body cut inside a secret loses the rest */
	r = p11e_redact("{\"authKey\":\"d620", 16, NULL);
	cr_assert_str_eq(r, "{\"authKey\":\"<redacted>");
	free(r);
	r = p11e_redact_header("Authorization: Bearer eyJabc");
	cr_assert_str_eq(r, "Authorization: <redacted>");
	free(r);
	r = p11e_redact_header("authorization:Basic x");
	cr_assert_str_eq(r, "authorization: <redacted>");
	free(r);
	r = p11e_redact_header("Content-Type: application/json");
	cr_assert_str_eq(r, "Content-Type: application/json");
	free(r);
}

Test(form, encoding)
{
	const char *pairs[] = { "grant_type", "client_credentials", "client_secret", "a b&c=d", NULL };
	char *f = p11e_http_form_encode(pairs);

	cr_assert_str_eq(f, "grant_type=client_credentials&client_secret=a%20b%26c%3Dd");
	free(f);
}

static unsigned bodies_built;

static char *body_with_secret(void *ctx, unsigned attempt)
{
	(void)ctx;
	bodies_built++;
	cr_assert_eq(attempt, bodies_built);
	return strdup("{\"meta\":{\"authKey\":\"0123456789abcdef\"},\"note\":\"the key is "
		      "literal-secret-42\"}");
}

/* Real debug output of a request that cannot connect: the secrets never
 * appear, the redaction marks do, and the body is rebuilt per attempt. */
Test(redact, debug_output_of_a_request, .init = cr_redirect_stderr)
{
	static const char *const headers[] = { "Authorization: Bearer bearer-token-xyz", NULL };
	struct p11e_http_opts o = { .connect_timeout = 2,
				    .timeout = 2,
				    .max_response = 1 << 20,
				    .max_retries = 1,
				    .max_retry_time = 5 };
	struct p11e_http_request req = {
		.url = "http://127.0.0.1:9/emSignHub-API/TrackOrder",
		.headers = headers,
		.build_body = body_with_secret,
		.log_name = "test",
	};
	struct p11e_http_response resp;
	struct p11e_http *h;
	struct p11e_err err = { 0 };
	char text[16384];
	size_t n;
	FILE *f;

	p11e_log_set_level(P11E_LOG_DEBUG);
	cr_assert_eq(p11e_http_new(&o, &h, &err), P11E_OK);
	p11e_http_add_secret(h, "literal-secret-42");
	cr_assert_eq(p11e_http_perform(h, &req, &resp), P11E_HTTP_NOT_SENT);
	cr_assert_eq(resp.attempts, 2);
	cr_assert_eq(bodies_built, 2);
	cr_assert(!p11e_http_outcome_unknown(&resp));
	p11e_http_response_clear(&resp);
	p11e_http_free(h);
	fflush(stderr);
	f = cr_get_redirected_stderr();
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	cr_assert_not_null(strstr(text, "test: > POST http://127.0.0.1:9/emSignHub-API/TrackOrder"),
			   "%s", text);
	cr_assert_not_null(strstr(text, "Authorization: <redacted>"));
	cr_assert_not_null(strstr(text, "\"authKey\":\"<redacted>\""));
	cr_assert_not_null(strstr(text, "the key is <redacted>"));
	cr_assert_null(strstr(text, "bearer-token-xyz"));
	cr_assert_null(strstr(text, "0123456789abcdef"));
	cr_assert_null(strstr(text, "literal-secret-42"));
}

Test(http, refused_url_is_local)
{
	struct p11e_http_opts o = { .connect_timeout = 2, .timeout = 2, .max_response = 1 << 20 };
	struct p11e_http_request req = { .url = "http://example.com/x", .body = "{}" };
	struct p11e_http_response resp;
	struct p11e_http *h;
	struct p11e_err err = { 0 };

	cr_assert_eq(p11e_http_new(&o, &h, &err), P11E_OK);
	cr_assert_eq(p11e_http_perform(h, &req, &resp), P11E_HTTP_LOCAL);
	cr_assert_not_null(strstr(resp.error, "plain http:// is refused"));
	p11e_http_response_clear(&resp);
	p11e_http_free(h);
}

Test(http, outcome_unknown)
{
	struct p11e_http_response r = { .kind = P11E_HTTP_MAYBE_SENT };

	cr_assert(p11e_http_outcome_unknown(&r));
	r.kind = P11E_HTTP_TOO_LARGE;
	cr_assert(p11e_http_outcome_unknown(&r));
	r.kind = P11E_HTTP_RESPONSE;
	r.status = 502;
	cr_assert(p11e_http_outcome_unknown(&r));
	r.status = 429;
	cr_assert(!p11e_http_outcome_unknown(&r));
	r.status = 200;
	cr_assert(!p11e_http_outcome_unknown(&r));
	r.kind = P11E_HTTP_NOT_SENT;
	cr_assert(!p11e_http_outcome_unknown(&r));
}
