/* SPDX-License-Identifier: Apache-2.0 */
#include "provider.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hook.h"

const struct p11e_setting *p11e_settings_find(const struct p11e_settings *s, const char *key)
{
	if (!s)
		return NULL;
	for (size_t i = s->n; i > 0; i--)
		if (strcmp(s->v[i - 1].key, key) == 0)
			return &s->v[i - 1];
	return NULL;
}

p11e_status p11e_settings_copy(struct p11e_settings *dst, const struct p11e_settings *src)
{
	struct p11e_setting *v = calloc(src->n ? src->n : 1, sizeof(*v));

	dst->v = v;
	dst->n = 0;
	if (!v)
		return P11E_EFAIL;
	for (size_t i = 0; i < src->n; i++) {
		v[i].key = strdup(src->v[i].key);
		v[i].value = strdup(src->v[i].value ? src->v[i].value : "");
		v[i].file = strdup(src->v[i].file ? src->v[i].file : "?");
		v[i].line = src->v[i].line;
		dst->n = i + 1;
		if (!v[i].key || !v[i].value || !v[i].file)
			return P11E_EFAIL;
	}
	return P11E_OK;
}

void p11e_settings_free_copy(struct p11e_settings *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free((char *)s->v[i].key);
		free((char *)s->v[i].value);
		free((char *)s->v[i].file);
	}
	free((struct p11e_setting *)s->v);
	s->v = NULL;
	s->n = 0;
}

const char *p11e_settings_get(const struct p11e_settings *s, const char *key, const char *fallback)
{
	const struct p11e_setting *found = p11e_settings_find(s, key);

	return found ? found->value : fallback;
}

const char *p11e_ca_outcome_name(p11e_ca_outcome outcome)
{
	switch (outcome) {
	case P11E_CA_OK:
		return "ok";
	case P11E_CA_ISSUED:
		return "issued";
	case P11E_CA_PENDING:
		return "pending";
	case P11E_CA_REJECTED:
		return "rejected";
	case P11E_CA_UNREACHABLE:
		return "unreachable";
	case P11E_CA_MISCONFIGURED:
		return "misconfigured";
	case P11E_CA_UNKNOWN:
		return "unknown";
	case P11E_CA_NOT_FOUND:
		return "not-found";
	}
	return "?";
}

void p11e_ca_result_clear(struct p11e_ca_result *res)
{
	free(res->chain_pem);
	memset(res, 0, sizeof(*res));
}

p11e_ca_outcome p11e_ca_vfail(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt,
			      va_list ap)
{
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	res->outcome = outcome;
	return outcome;
}

p11e_ca_outcome p11e_ca_fail(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	p11e_ca_vfail(res, outcome, fmt, ap);
	va_end(ap);
	return outcome;
}

static const char *const reason_names[] = {
	"unspecified",        "keyCompromise", "caCompromise",
	"affiliationChanged", "superseded",    "cessationOfOperation",
};

int p11e_revoke_reason_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(reason_names) / sizeof(reason_names[0]); i++)
		if (strcmp(name, reason_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *p11e_revoke_reason_name(p11e_revoke_reason reason)
{
	return reason_names[reason];
}

/* IPv4 ranges that are not public (RFC 6890 and the RFCs it lists). */
static const struct {
	uint32_t net;
	unsigned bits;
	const char *why;
} v4_ranges[] = {
	{ 0x00000000, 8, "an unspecified address (0.0.0.0/8)" },
	{ 0x0a000000, 8, "a private address (RFC 1918)" },
	{ 0x64400000, 10, "a shared carrier-grade NAT address (100.64.0.0/10)" },
	{ 0x7f000000, 8, "a loopback address" },
	{ 0xa9fe0000, 16, "a link-local address (169.254.0.0/16)" },
	{ 0xac100000, 12, "a private address (RFC 1918)" },
	{ 0xc0000000, 24, "a reserved address (192.0.0.0/24)" },
	{ 0xc0000200, 24, "a documentation address (192.0.2.0/24)" },
	{ 0xc0a80000, 16, "a private address (RFC 1918)" },
	{ 0xc6120000, 15, "a benchmarking address (198.18.0.0/15)" },
	{ 0xc6336400, 24, "a documentation address (198.51.100.0/24)" },
	{ 0xcb007100, 24, "a documentation address (203.0.113.0/24)" },
	{ 0xe0000000, 4, "a multicast address" },
	{ 0xf0000000, 4, "a reserved or broadcast address (240.0.0.0/4)" },
};

static const char *v4_not_public(const unsigned char a[4])
{
	uint32_t ip = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];

	for (size_t i = 0; i < sizeof(v4_ranges) / sizeof(v4_ranges[0]); i++)
		if ((ip ^ v4_ranges[i].net) >> (32 - v4_ranges[i].bits) == 0)
			return v4_ranges[i].why;
	return NULL;
}

static bool v6_prefix(const unsigned char *a, const unsigned char *net, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, net, bytes) != 0)
		return false;
	return rest == 0 || ((a[bytes] ^ net[bytes]) >> (8 - rest)) == 0;
}

const char *p11e_ip_not_public(const char *text)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char doc1[4] = { 0x20, 0x01, 0x0d, 0xb8 };
	static const unsigned char doc2[3] = { 0x3f, 0xff, 0x00 };
	static const unsigned char bench[6] = { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00 };
	static const unsigned char zero[16] = { 0 };
	unsigned char a[16];

	if (!text || !*text)
		return "not an IP address";
	if (inet_pton(AF_INET, text, a) == 1)
		return v4_not_public(a);
	if (inet_pton(AF_INET6, text, a) != 1)
		return "not an IP address";
	if (memcmp(a, zero, 16) == 0)
		return "an unspecified address (::)";
	if (memcmp(a, zero, 15) == 0 && a[15] == 1)
		return "a loopback address (::1)";
	if (memcmp(a, mapped, 12) == 0)
		return v4_not_public(a + 12);
	if (a[0] == 0xff)
		return "a multicast address (ff00::/8)";
	if ((a[0] & 0xfe) == 0xfc)
		return "a unique-local (private) address (fc00::/7)";
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
		return "a link-local address (fe80::/10)";
	if (v6_prefix(a, doc1, 32) || v6_prefix(a, doc2, 20))
		return "a documentation address (2001:db8::/32, 3fff::/20)";
	if (v6_prefix(a, bench, 48))
		return "a benchmarking address (2001:2::/48)";
	if ((a[0] & 0xe0) != 0x20)
		return "a reserved address (outside 2000::/3)";
	return NULL;
}

int p11e_ca_dcv_hook(const char *hook, const char *action, const char *domain, const char *record,
		     const char *value, char *why, size_t why_size)
{
	char e_action[64], e_domain[512], e_record[600], e_value[1100], e_path[1200];
	const char *path = getenv("PATH");
	char *const envp[] = { e_action, e_domain, e_record, e_value, e_path, NULL };
	char *const argv[] = { (char *)hook, NULL };
	/* stdout is for results; the hook's chatter goes to stderr */
	const struct p11e_hook run = {
		.what = "dcv_hook", .path = hook, .argv = argv, .envp = envp, .stdout_to_stderr = true
	};
	char msg[400];

	snprintf(e_action, sizeof(e_action), "P11ENROLL_DCV_ACTION=%s", action);
	snprintf(e_domain, sizeof(e_domain), "P11ENROLL_DCV_DOMAIN=%s", domain);
	snprintf(e_record, sizeof(e_record), "P11ENROLL_DCV_RECORD=%s", record);
	snprintf(e_value, sizeof(e_value), "P11ENROLL_DCV_VALUE=%s", value);
	snprintf(e_path, sizeof(e_path), "PATH=%.1180s",
		 path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
	if (p11e_hook_run(&run, msg, sizeof(msg)) == 0)
		return 0;
	snprintf(why, why_size, "dcv_hook %s (%s %s): %s", hook, action, domain, msg);
	return -1;
}
