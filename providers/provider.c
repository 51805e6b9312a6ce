/* SPDX-License-Identifier: Apache-2.0 */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct p11e_setting *p11e_settings_find(const struct p11e_settings *s, const char *key)
{
	if (!s)
		return NULL;
	for (size_t i = s->n; i > 0; i--)
		if (strcmp(s->v[i - 1].key, key) == 0)
			return &s->v[i - 1];
	return NULL;
}

const char *p11e_settings_get(const struct p11e_settings *s, const char *key, const char *fallback)
{
	const struct p11e_setting *found = p11e_settings_find(s, key);

	return found ? found->value : fallback;
}

const char *p11e_ca_outcome_name(p11e_ca_outcome outcome)
{
	switch (outcome) {
	case P11E_CA_OK: return "ok";
	case P11E_CA_ISSUED: return "issued";
	case P11E_CA_PENDING: return "pending";
	case P11E_CA_REJECTED: return "rejected";
	case P11E_CA_UNREACHABLE: return "unreachable";
	case P11E_CA_MISCONFIGURED: return "misconfigured";
	case P11E_CA_UNKNOWN: return "unknown";
	case P11E_CA_NOT_FOUND: return "not-found";
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

p11e_ca_outcome p11e_ca_fail(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt,
			     ...)
{
	va_list ap;

	va_start(ap, fmt);
	p11e_ca_vfail(res, outcome, fmt, ap);
	va_end(ap);
	return outcome;
}

static const char *const reason_names[] = {
	"unspecified", "keyCompromise", "caCompromise",
	"affiliationChanged", "superseded", "cessationOfOperation",
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
