/* SPDX-License-Identifier: Apache-2.0 */
#include "ca.h"

#include <string.h>
#include <time.h>

p11e_status p11e_ca_handle_open(const struct p11e_config *cfg, const char *name,
				struct p11e_ca_handle *h, struct p11e_err *err)
{
	char names[512] = "";
	p11e_status rc;

	memset(h, 0, sizeof(*h));
	h->conf = p11e_config_ca(cfg, name);
	if (!h->conf) {
		for (size_t i = 0; i < cfg->n_cas; i++) {
			if (strlen(names) + strlen(cfg->cas[i].name) + 3 >= sizeof(names))
				break;
			if (*names)
				strcat(names, ", ");
			strcat(names, cfg->cas[i].name);
		}
		return p11e_err_set(err, P11E_EUSAGE, "%s has no [ca:%s] (CAs there: %s)", cfg->path,
				    name, *names ? names : "none");
	}
	h->ops = h->conf->ops;
	rc = h->ops->open(h->conf->name, &h->conf->settings, &h->ca, err);
	if (rc != P11E_OK)
		p11e_err_prefix(err, "[ca:%s]", name);
	else if (h->ops->set_state_dir)
		h->ops->set_state_dir(h->ca, cfg->state_dir);
	return rc;
}

void p11e_ca_handle_close(struct p11e_ca_handle *h)
{
	if (h->ops && h->ca)
		h->ops->close(h->ca);
	memset(h, 0, sizeof(*h));
}

p11e_status p11e_ca_failure(const struct p11e_ca_result *res, const char *context,
			    struct p11e_err *err)
{
	const char *code = res->ca_code[0] ? res->ca_code : NULL;
	const char *msg = res->message[0] ? res->message : p11e_ca_outcome_name(res->outcome);
	p11e_status status;

	switch (res->outcome) {
	case P11E_CA_REJECTED:
		status = P11E_EREJECTED;
		break;
	case P11E_CA_MISCONFIGURED:
		status = P11E_EUSAGE;
		break;
	case P11E_CA_PENDING:
		status = P11E_EPENDING;
		break;
	default:
		status = P11E_EFAIL;
		break;
	}
	if (res->outcome == P11E_CA_UNREACHABLE)
		return p11e_err_set(err, status,
				    "%s: the CA could not be reached: %s%s%s (try again later)",
				    context, code ? code : "", code ? ": " : "", msg);
	return p11e_err_set(err, status, "%s: %s%s%s", context, code ? code : "", code ? ": " : "",
			    msg);
}

/* The value of option `opt` at argv[*i] ("--opt V" or "--opt=V"), moving
 * *i past it; NULL when argv[*i] is not that option. */
static const char *option_value(int argc, char **argv, int *i, const char *opt)
{
	size_t len = strlen(opt);

	if (strcmp(argv[*i], opt) == 0 && *i + 1 < argc)
		return argv[++*i];
	if (strncmp(argv[*i], opt, len) == 0 && argv[*i][len] == '=')
		return argv[*i] + len + 1;
	return NULL;
}

p11e_status p11e_order_args_parse(int argc, char **argv, bool revoke_options, const char *usage,
				  struct p11e_order_args *a, struct p11e_err *err)
{
	const char *v;

	*a = (struct p11e_order_args){ .reason = -1 };
	for (int i = 1; i < argc; i++) {
		if ((v = option_value(argc, argv, &i, "--ca"))) {
			a->ca_name = v;
		} else if ((v = option_value(argc, argv, &i, "--order"))) {
			a->order_id = v;
		} else if (argv[i][0] != '-' && !a->name) {
			a->name = argv[i];
		} else if (!revoke_options) {
			return p11e_err_set(err, P11E_EUSAGE, "%s", usage);
		} else if (strcmp(argv[i], "--no-refund") == 0) {
			a->no_refund = true;
		} else if (strcmp(argv[i], "--refund-status") == 0) {
			a->refund_status = true;
		} else if ((v = option_value(argc, argv, &i, "--reason"))) {
			a->reason = p11e_revoke_reason_parse(v);
			if (a->reason < 0)
				return p11e_err_set(err, P11E_EUSAGE, "--reason %s: not a reason; %s",
						    v, usage);
		} else {
			return p11e_err_set(err, P11E_EUSAGE, "%s", usage);
		}
	}
	if (!a->name == !(a->ca_name && a->order_id) || !a->ca_name != !a->order_id)
		return p11e_err_set(err, P11E_EUSAGE, "%s", usage);
	return P11E_OK;
}

p11e_status p11e_since_parse(const char *text, time_t *out, struct p11e_err *err)
{
	struct tm tm = { 0 };
	char *end = strptime(text, "%Y-%m-%d", &tm);

	if (!end || *end)
		return p11e_err_set(err, P11E_EUSAGE, "--since %s: write the date as YYYY-MM-DD",
				    text);
	*out = timegm(&tm);
	return P11E_OK;
}
