/* SPDX-License-Identifier: Apache-2.0 */
/* The one boundary between the agent and a CA. The agent calls these
 * functions without knowing which CA is behind them and switches on the
 * outcome (certmonger's helper vocabulary: issued, wait, rejected,
 * unreachable, under-configured). A provider never touches the certificate's
 * key; the ACME provider opens only its own account key (hsm/). */
#ifndef P11E_PROVIDER_H
#define P11E_PROVIDER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "err.h"
#include "util.h"

/* One `key = value` line of the configuration, with where it came from so
 * that a provider can name file:line in its messages. */
struct p11e_setting {
	const char *key;
	const char *value;
	const char *file;
	int line;
};

struct p11e_settings {
	const struct p11e_setting *v;
	size_t n;
};

/* The last setting named `key`, or NULL. */
const struct p11e_setting *p11e_settings_find(const struct p11e_settings *s, const char *key);
/* Its value, or `fallback`. */
const char *p11e_settings_get(const struct p11e_settings *s, const char *key, const char *fallback);
/* A provider's own copy of its settings (they outlive no configuration
 * reload): `dst` owns every string; free it with p11e_settings_free_copy,
 * also after a failed copy. */
p11e_status p11e_settings_copy(struct p11e_settings *dst, const struct p11e_settings *src);
void p11e_settings_free_copy(struct p11e_settings *s);

/* Runs a DNS validation hook (the dcv_hook of CERTInext and ACME) without a
 * shell and with a clean environment: P11ENROLL_DCV_ACTION (publish or
 * remove), _DOMAIN, _RECORD, _VALUE and PATH only, so no secret of ours
 * (an env: access key, say) can leak into it; bounded by [agent]
 * hook_timeout (common/hook.h). 0 when it exits 0, else -1 with why. */
int p11e_ca_dcv_hook(const char *hook, const char *action, const char *domain, const char *record,
		     const char *value, char *why, size_t why_size);

typedef enum {
	P11E_CA_OK,       /* a call that is not an order succeeded (check, products, revoke, orders) */
	P11E_CA_ISSUED,   /* the certificate is ready: fetch it (or chain_pem is already set) */
	P11E_CA_PENDING,  /* the order exists and is not issued yet: order ids + retry_after */
	P11E_CA_REJECTED, /* the CA refused: ca_code + message; placing again will not help */
	P11E_CA_UNREACHABLE, /* transport error, 5xx, rate limit after the bounded retries: try later */
	P11E_CA_MISCONFIGURED, /* our side is wrong (credentials, product, a missing field): fix config */
	P11E_CA_UNKNOWN, /* an order placement whose outcome is unknown: reconcile before placing again */
	P11E_CA_NOT_FOUND, /* reconcile found no order; the order id is unknown to the CA */
} p11e_ca_outcome;

const char *p11e_ca_outcome_name(p11e_ca_outcome outcome);

struct p11e_ca_result {
	p11e_ca_outcome outcome;
	char ca_code[64];        /* the CA's own error code ("EMS-1162"), "" when none */
	char message[1024];      /* the CA's message and what to do about it; never a secret */
	char order_id[128];      /* the CA's primary order reference */
	char request_id[128];    /* secondary reference (request number, partner order id) */
	char status_text[128];   /* the CA's own word for the state, for progress lines */
	unsigned retry_after;    /* seconds the CA suggests before the next poll */
	char *chain_pem;         /* ISSUED by fetch: the certificates the CA sent for the order, as
				* PEM in the order received (leaf anywhere, strangers possible);
				* the agent finds the leaf by its key and orders the chain
				* (common/chain.h); free() */
	char serial[130];        /* leaf serial when the CA names it (p11e_cert_serial's format
				* when read from a certificate), else "" */
	time_t not_after;        /* leaf notAfter when known, else 0 */
	char placed_as[32];      /* place: what was sent ("neworder", "renewal", "reissue"), set
				* before sending so that it is known whatever the outcome; the
				* agent journals it and hands it back in p11e_order.placed_as */
	char instructions[2048]; /* pending: what the operator must publish for domain
				  * validation (records, files), one per line; "" when none */
};

/* Frees chain_pem and clears the record. */
void p11e_ca_result_clear(struct p11e_ca_result *res);
/* Sets res->outcome and res->message (printf-style); returns the outcome. */
p11e_ca_outcome p11e_ca_fail(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
p11e_ca_outcome p11e_ca_vfail(struct p11e_ca_result *res, p11e_ca_outcome outcome, const char *fmt,
			      va_list ap) __attribute__((format(printf, 3, 0)));

/* An order reference: the pair of ids the CA gave (request_id may be ""). */
struct p11e_order_ref {
	const char *order_id;
	const char *request_id;
};

/* What the agent asks for. Strings are owned by the caller. */
struct p11e_order {
	const char *name;               /* the [cert:NAME] */
	const char *csr_pem;            /* PKCS#10, PEM */
	const char *common_name;        /* CN of the subject, may be NULL */
	const struct p11e_strlist *dns; /* DNS SANs in configuration order */
	const char *idempotency_id;     /* agent-made, one per order intent, journalled before the
						* first placement and reused by every retry of it */
	const char *placed_as;          /* reconcile: res->placed_as of the placement, or NULL */
	const char *dcv_instructions;   /* poll: res->instructions of an earlier poll, kept by the
						* agent, so that they are not asked for again; or NULL */
	time_t placed_after; /* the placement happened at or after this (reconcile window) */
	struct p11e_order_ref previous; /* renewal: the order being replaced (ids NULL when none) */
	time_t previous_not_after;      /* renewal: notAfter of the certificate being replaced */
	const struct p11e_settings *overrides; /* per-certificate overrides from [cert:NAME] */
};

struct p11e_product {
	char code[64];
	char name[256];
	char category[128];
};

/* Where a listed order stands, in CA-neutral words (reconcile). */
typedef enum {
	P11E_ROW_UNKNOWN, /* a state the provider does not know */
	P11E_ROW_PENDING, /* not issued yet, may still be */
	P11E_ROW_ISSUED,  /* a certificate exists and is valid */
	P11E_ROW_FAILED,  /* ended without a certificate (rejected, cancelled) */
	P11E_ROW_REVOKED, /* its certificate was revoked (or cancelled after issue) */
	P11E_ROW_EXPIRED, /* its certificate has expired */
} p11e_row_state;

struct p11e_order_row {
	p11e_row_state state;
	char tag[128]; /* the idempotency id of the p11enroll order intent that placed it,
			     * as the CA keeps it; "" when none is known */
	char order_id[128];
	char request_id[128];
	char status[128];
	char domain[256];
	char product[64];
	char ordered[64]; /* as the CA writes the date */
	char expires[64];
	char serial[130];
};

struct p11e_order_page {
	struct p11e_order_row *rows; /* free() */
	size_t n;
	unsigned page;  /* 1-based page these rows are */
	unsigned pages; /* total pages the CA reports (0 when empty) */
};

typedef enum {
	P11E_REVOKE_UNSPECIFIED,
	P11E_REVOKE_KEY_COMPROMISE,
	P11E_REVOKE_CA_COMPROMISE,
	P11E_REVOKE_AFFILIATION_CHANGED,
	P11E_REVOKE_SUPERSEDED,
	P11E_REVOKE_CESSATION_OF_OPERATION,
} p11e_revoke_reason;

/* Parses the reason names of `p11enroll revoke --reason`; -1 when unknown. */
int p11e_revoke_reason_parse(const char *name);
const char *p11e_revoke_reason_name(p11e_revoke_reason reason);

struct p11e_ca; /* a provider's own state, opaque to the agent */

/* What `p11enroll help COMMAND` adds for one CA: a paragraph in plain
 * sentences, unwrapped, naming the CA (the agent wraps it). */
struct p11e_ca_note {
	const char *command;
	const char *text;
};

struct p11e_ca_ops {
	const char *type;             /* value of `type =` in [ca:NAME] */
	const char *const *ca_keys;   /* keys allowed in [ca:NAME] besides `type`; NULL-terminated */
	const char *const *cert_keys; /* keys a [cert:NAME] may set to override the CA per order */
	/* What the agent needs to know of this CA besides the calls below, so
	 * that no agent/ code names a CA type: */
	const char *title;                   /* the CA's name for people ("The SSL Store") */
	const struct p11e_ca_note *help;     /* notes for `p11enroll help`, ending in { NULL } */
	const char *account_key;             /* the [ca:] key naming the account that order_rate
				       * counts per; NULL: the section */
	unsigned order_rate_n;               /* order_rate's default: placements the CA takes per */
	unsigned order_rate_window;          /* this many seconds; 0: it documents no limit */
	const char *no_products_hint;        /* asked when `products` lists none; NULL: nothing */
	const char *const *product_suffixes; /* endings of a product code that order the listed
					      * code another way; NULL-terminated, or NULL */

	/* Validates the section and reads its secrets; MISCONFIGURED problems
	 * come back as P11E_EUSAGE naming file:line. */
	p11e_status (*open)(const char *ca_name, const struct p11e_settings *ca, struct p11e_ca **out,
			    struct p11e_err *err);
	void (*close)(struct p11e_ca *ca);
	/* The settings part of open, run when the configuration loads so that
	 * a mistake is reported (file:line) before any token or CA operation:
	 * no network, no secret read (secret files are checked by open and
	 * `check`). Without cert_name it checks [ca:NAME] alone; with it, what
	 * an order of that [cert:] needs from the section plus its overrides
	 * (cert_where: "file:line" of the [cert:] header, for missing keys). */
	p11e_status (*validate)(const char *ca_name, const struct p11e_settings *ca,
				const char *cert_name, const char *cert_where,
				const struct p11e_settings *overrides, struct p11e_err *err);

	p11e_ca_outcome (*check)(struct p11e_ca *ca, struct p11e_ca_result *res);
	p11e_ca_outcome (*products)(struct p11e_ca *ca, struct p11e_product **list, size_t *n,
				    struct p11e_ca_result *res);
	/* Never retried blindly: an unknown outcome is P11E_CA_UNKNOWN. */
	p11e_ca_outcome (*place)(struct p11e_ca *ca, const struct p11e_order *order,
				 struct p11e_ca_result *res);
	/* Looks for an order this order placed (idempotency id, names, time
	 * window): PENDING/ISSUED with its ids, or NOT_FOUND when it is certain
	 * that there is none, or UNREACHABLE. */
	p11e_ca_outcome (*reconcile)(struct p11e_ca *ca, const struct p11e_order *order,
				     struct p11e_ca_result *res);
	/* Drives the order on (DCV included) and says where it stands. */
	p11e_ca_outcome (*poll)(struct p11e_ca *ca, const struct p11e_order *order,
				const struct p11e_order_ref *ref, struct p11e_ca_result *res);
	/* Downloads the issued certificates into res->chain_pem, as received:
	 * a provider reads them (p11e_certs_read) but neither picks the leaf
	 * nor orders the chain. */
	p11e_ca_outcome (*fetch)(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				 struct p11e_ca_result *res);
	/* Already revoked counts as success (P11E_CA_OK, said in message). */
	p11e_ca_outcome (*revoke)(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				  p11e_revoke_reason reason, struct p11e_ca_result *res);
	/* Has the CA check an order (as place would send it) without placing
	 * it: nothing is charged. OK when it accepts the parameters, else
	 * REJECTED/MISCONFIGURED with the CA's words. NULL when the CA has no
	 * such call. */
	p11e_ca_outcome (*dry_run)(struct p11e_ca *ca, const struct p11e_order *order,
				   struct p11e_ca_result *res);
	/* Revokes without asking for money back: the order stays paid. NULL
	 * when the CA's `revoke` never asks for a refund (it is used instead). */
	p11e_ca_outcome (*revoke_no_refund)(struct p11e_ca *ca, const struct p11e_order_ref *ref,
					    p11e_revoke_reason reason, struct p11e_ca_result *res);
	/* Where a refund asked for by `revoke` or `cancel` stands: P11E_CA_OK
	 * with status_text ("requested", "approved") and message; NOT_FOUND
	 * when none was asked for. NULL when the CA has no refunds. */
	p11e_ca_outcome (*refund_status)(struct p11e_ca *ca, const struct p11e_order_ref *ref,
					 struct p11e_ca_result *res);
	/* Cancels an order that is not issued yet (P11E_CA_OK; already cancelled
	 * counts as success); an issued one is REJECTED (revoke it instead).
	 * NULL when the CA has no such call. */
	p11e_ca_outcome (*cancel)(struct p11e_ca *ca, const struct p11e_order_ref *ref,
				  struct p11e_ca_result *res);
	/* One page (1-based) of the CA's order inventory placed since `since` (0: all). */
	p11e_ca_outcome (*list_orders)(struct p11e_ca *ca, time_t since, unsigned page,
				       struct p11e_order_page *out, struct p11e_ca_result *res);
	/* Optional (may be NULL): the agent's state_dir, given right after open,
	 * where a provider may keep a small file of its own (ACME: the account
	 * URL). Named "<provider type>-<ca name>.*" so it never meets a journal. */
	void (*set_state_dir)(struct p11e_ca *ca, const char *state_dir);
};

/* NULL when `text` is an IPv4 or IPv6 address in a public range, else why
 * not ("a private address (RFC 1918)", "not an IP address", …): loopback,
 * unspecified, private and shared, link-local, unique-local, multicast,
 * documentation, benchmarking and reserved ranges are not public. */
const char *p11e_ip_not_public(const char *text);

/* The provider for `type`, or NULL. */
const struct p11e_ca_ops *p11e_ca_lookup(const char *type);
/* The i-th provider of the registry (0-based), or NULL past the last. */
const struct p11e_ca_ops *p11e_ca_provider(size_t i);
/* "certinext, sslstore, acme": the registry's types, for messages. */
const char *p11e_ca_types(void);

#endif
