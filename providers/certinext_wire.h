/* SPDX-License-Identifier: Apache-2.0 */
/* CERTInext v1 (emSignHub-API) on the wire: the `meta` block and its authKey,
 * request builders and response parsers. Pure functions, no network, so the
 * unit tests can pin every byte that goes out and every shape that comes in.
 * Quoted section names refer to docs/protocol-certinext.md. */
#ifndef P11E_CERTINEXT_WIRE_H
#define P11E_CERTINEXT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "provider.h"

/* ---- meta and authentication ("Request envelope", "OAuth") ---- */

#define CN_TS_LEN 26  /* "2026-05-12T09:41:07+00:00" + NUL */
#define CN_TXN_LEN 19 /* 18 digits + NUL */

/* lower-case hex SHA-256 of access_key || ts || txn. 0 on success. */
int cn_auth_key(const char *access_key, const char *ts, const char *txn, char out[65]);
/* UTC, "%Y-%m-%dT%H:%M:%S+00:00". */
void cn_format_ts(time_t t, char out[CN_TS_LEN]);
/* 18 CSPRNG decimal digits, the first 1-9. 0 on success. */
int cn_make_txn(char out[CN_TXN_LEN]);
/* A fresh request meta: ver, ts, txn, accountNumber, authKey (access_key
 * NULL: OAuth mode, authKey ""). NULL on failure. */
cJSON *cn_meta_new(const char *account, const char *access_key, time_t now);

/* ---- response meta ("Reading an answer") ---- */

struct cn_meta {
	bool ok;           /* meta.status == "1" */
	char code[64];     /* errorCode, "" when none */
	char message[512]; /* errorMessage */
};

/* Parses body text: returns the root (caller frees) or NULL when the text is
 * not a JSON object; fills *meta (ok=false, code/message "" when there is no
 * meta, in which case *has_meta is false). */
cJSON *cn_parse_body(const char *body, size_t len, struct cn_meta *meta, bool *has_meta);

/* A scalar as text whether the API sent a string or a number ("Reading an answer");
 * "" when absent/null. */
const char *cn_str(const cJSON *obj, const char *key, char *buf, size_t size);

/* ---- what an HTTP exchange amounts to ---- */

typedef enum {
	CN_CALL_OK,       /* meta.status "1": *root holds the answer */
	CN_CALL_CA_ERROR, /* the CA answered with meta.status "0": meta holds code/message */
	CN_CALL_FAILED,   /* no usable answer: res->outcome and res->message say why */
} cn_call_rc;

/* Turns an HTTP response into one of the above. `placement`: the request
 * placed an order, so every doubtful end (maybe sent, 5xx, cut or
 * malformed body) is P11E_CA_UNKNOWN rather than UNREACHABLE. */
cn_call_rc cn_interpret(const struct p11e_http_response *resp, bool placement, const char *ca_name,
			const char *endpoint, cJSON **root, struct cn_meta *meta,
			struct p11e_ca_result *res);

/* ---- error codes: what they mean and what to do ---- */

typedef enum {
	CN_ERR_OTHER,          /* unrecognised: the CA's message stands */
	CN_ERR_CREDENTIALS,    /* account number / access key / token wrong */
	CN_ERR_PRODUCT,        /* EMS-1162 */
	CN_ERR_ORGANIZATION,   /* EMS-1073 */
	CN_ERR_SIGNER_IP,      /* EMS-1091 */
	CN_ERR_REMARKS,        /* EMS-918 */
	CN_ERR_DUPLICATE_CSR,  /* EMS-1099 */
	CN_ERR_KEY,            /* "Invalid key size", EMS-939 */
	CN_ERR_CREDITS,        /* "Insufficient Credits" */
	CN_ERR_RATE_LIMIT,     /* "Inactive Account User." ("Rate limit and retries") */
	CN_ERR_NOT_FOUND,      /* EMS-943, EMS-913 */
	CN_ERR_DCV_NOT_READY,  /* EMS-956 */
	CN_ERR_AGREEMENT_DONE, /* EMS-1082 */
	CN_ERR_CSR,            /* EMS-100 */
} cn_err_kind;

cn_err_kind cn_classify_error(const char *code, const char *message);
/* The outcome an error of this kind means for an order placement. */
p11e_ca_outcome cn_error_outcome(cn_err_kind kind);
/* Fills res->ca_code and res->message: "<code> <CA message>: <what to do>". */
void cn_describe_error(struct p11e_ca_result *res, const char *ca_name, const char *code,
		       const char *message, const char *context);

/* ---- certificate states ("Certificate states") ---- */

typedef enum {
	CN_STATE_PENDING,
	CN_STATE_ISSUED,  /* 7, 9, 15, 20, 23: downloadable */
	CN_STATE_FAILED,  /* 3, 5, 8, 13, 14, 18, 19, 21 */
	CN_STATE_REVOKED, /* 22 */
	CN_STATE_EXPIRED, /* 12 */
	CN_STATE_UNKNOWN, /* an id the table does not list: treated as pending with a warning */
} cn_state;

/* The state for a certificateStatusId text ("" or absent: pending). */
cn_state cn_cert_state(const char *status_id);
const char *cn_state_name(cn_state state);

/* ---- GenerateOrderSSL ("Placing an order", "Products and key types") ---- */

enum {
	CN_F_PER_ORDER = 1 << 0, /* a [cert:NAME] may override it */
	CN_F_REQUIRED = 1 << 1,  /* an order cannot go without it */
	CN_F_OMIT = 1 << 2,      /* left out when unset (else sent, "" or default) */
	CN_F_WITH_ORG = 1 << 3,  /* only sent with an organization_number */
};

typedef enum {
	CN_V_TEXT,
	CN_V_BOOL,   /* yes/no → "1"/"0" */
	CN_V_DIGITS, /* digits only */
	CN_V_YEARS,  /* 1, 2, 3 */
	CN_V_RENEW,  /* 30, 60 */
	CN_V_IPV4,   /* dotted quad, not 127.x (EMS-1091) */
	CN_V_EMAIL,  /* something@domain */
} cn_value_type;

/* One connector field: the snake_case config key and where it goes. */
struct cn_field {
	const char *key;      /* config key ([ca:NAME] and, if CN_F_PER_ORDER, [cert:NAME]) */
	const char *path;     /* JSON path under orderDetails, dot-separated */
	const char *deflt;    /* value when unset (NULL: none) */
	const char *fallback; /* another key whose value is used when unset */
	cn_value_type type;
	unsigned flags;
};

extern const struct cn_field cn_order_fields[];
extern const size_t cn_n_order_fields;

/* Looks a key up for one order: [cert] override, else [ca], else NULL. */
typedef const struct p11e_setting *(*cn_lookup_fn)(void *ctx, const char *key);

/* Validates one value against its type; 0 ok, else -1 with a reason. */
int cn_check_value(cn_value_type type, const char *value, const char **why);

struct cn_order_input {
	cn_lookup_fn lookup;
	void *lookup_ctx;
	const char *product;     /* resolved product code */
	const char *domain_name; /* resolved primary name */
	const char *const *dns;  /* every DNS SAN (may include domain_name) */
	size_t n_dns;
	const char *csr_pem;
	const char *idempotency_id; /* goes into remarks and tags; may be NULL */
};

/* The `orderDetails` object (without meta). NULL with *why set (naming
 * the key) when a required value is missing or a value is malformed; the
 * offending setting (if any) in *bad for its file:line. */
cJSON *cn_build_order(const struct cn_order_input *in, const char **why_key, char *why,
		      size_t why_size, const struct p11e_setting **bad);

/* The tag that carries an idempotency id: "p11enroll:<id>". */
void cn_idempotency_tag(const char *id, char *out, size_t size);

/* ---- other request payloads (each returns the body root without meta) ---- */

cJSON *cn_build_products(const char *group_number);
cJSON *cn_build_track(const char *order_number);
cJSON *cn_build_get_certificate(const char *order_number, const char *requestor_email);
/* RejectOrder: cancels an order before issuance (docs/protocol-certinext.md). */
cJSON *cn_build_reject(const char *order_number, const char *remarks);
cJSON *cn_build_revoke(const char *order_number, const char *requestor_email, const char *reason_id,
		       const char *remarks);
/* since 0: no date filter. */
cJSON *cn_build_report(unsigned page, unsigned page_size, time_t since);
cJSON *cn_build_dcv(const char *order_number, const char *requestor_email, const char *domain);
/* GetDcv/VerifyDcv for method "1" DNS, "2" HTTP file, "3" e-mail; dcv_email
 * (VerifyDcv of method 3 only) the approver chosen from GetDcv's list. */
cJSON *cn_build_dcv_method(const char *order_number, const char *requestor_email, const char *domain,
			   const char *method, const char *dcv_email);
/* GetDcv method 2: fileName and fileContent; 0 when both are there. */
int cn_parse_dcv_file(const cJSON *root, char *name, size_t name_size, char *content,
		      size_t content_size);
/* GetDcv method 3: the offered approver addresses. */
int cn_parse_dcv_emails(const cJSON *root, struct p11e_strlist *out);

/* Puts meta first into a payload root (replacing a previous one). */
int cn_set_meta(cJSON *root, cJSON *meta);

/* ---- revocation ("Revocation") ---- */

/* The revokeReasonId for a reason, or NULL when CERTInext cannot express it
 * faithfully (unspecified, caCompromise). */
const char *cn_revoke_reason_id(p11e_revoke_reason reason);

/* ---- response parsers ---- */

struct cn_placed {
	char order_number[128];
	char request_number[128];
};
/* 0 when orderNumber is present; -1 otherwise (request_number may be set). */
int cn_parse_placed(const cJSON *root, struct cn_placed *out);

struct cn_dcv_domain {
	char domain[256];
	char method[64];
	char status[8]; /* dcvStatus: "0" pending, "1" validated, "2" rejected */
};

struct cn_tracked {
	char status_id[16];
	char status_text[128];
	char order_status_id[16];
	bool has_dcv;              /* domainVerification present */
	char dcv_status[8];        /* aggregate */
	struct cn_dcv_domain *dcv; /* free() */
	size_t n_dcv;
	char revoke_status_id[16];
	char *csr; /* free(); NULL when absent */
	char requestor_email[256];
	char expiry[64];
};
int cn_parse_track(const cJSON *root, struct cn_tracked *out);
void cn_tracked_free(struct cn_tracked *t);

/* GetCertificate: the certificates as sent (endEntityCertificate, then every
 * block of caCertificate; rootCertificate only when caCertificate is empty),
 * read by common/chain.h (PEM or bare base64, LF or CRLF) and written as
 * PEM; the agent orders the chain. Serial (p11e_cert_serial) and notAfter
 * come from endEntityCertificate. 0 on success, else -1 with why. chain is
 * malloc'd. */
int cn_parse_certificate(const cJSON *root, char **chain, char serial[130], time_t *not_after,
			 char *api_serial, size_t api_serial_size, char *why, size_t why_size);

/* GetDcv method 1: the token. 0 ok. */
int cn_parse_dcv_token(const cJSON *root, char *token, size_t size);

/* GetOrderReport page. Rows malloc'd; tags of row i in tags[i] (a strlist). */
struct cn_report {
	struct p11e_order_row *rows;
	struct p11e_strlist *tags;
	char (*status_ids)[16];
	size_t n;
	unsigned pages;
	unsigned current;
};
int cn_parse_report(const cJSON *root, struct cn_report *out);
void cn_report_free(struct cn_report *r);

/* GetProductDetails: flattened. */
int cn_parse_products(const cJSON *root, struct p11e_product **list, size_t *n);

/* The TXT owner name for a domain: "<prefix>.<domain>" with a leading "*."
 * of a wildcard stripped ("Domain validation"). */
void cn_dcv_record_name(const char *prefix, const char *domain, char *out, size_t size);

/* CSRs compared without regard to line breaks and whitespace. */
bool cn_same_csr(const char *a, const char *b);

#endif
