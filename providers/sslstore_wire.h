/* SPDX-License-Identifier: Apache-2.0 */
/* The SSL Store WBAPI on the wire: request bodies, response parsing, product
 * families, approver rules and chain assembly as pure functions, so that the
 * unit tests can check every byte without a network (protocols/sslstore.md). */
#ifndef P11E_SSLSTORE_WIRE_H
#define P11E_SSLSTORE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "http.h"
#include "provider.h"
#include "util.h"

/* Product families (docs/providers-sslstore.md): what a new order must carry. */
enum ss_family {
	SS_SECTIGO_DV,
	SS_SECTIGO_OV,
	SS_SECTIGO_EP, /* enterprisepro: OV with the admin first name instead of e-mail */
	SS_SECTIGO_EV,
	SS_DIGICERT_DV,
	SS_DIGICERT_OV,
	SS_DIGICERT_EV,
	SS_DIGICERT_EO, /* "-EO": an organisation already vetted, TSSOrganizationId */
	SS_OTHER,       /* not in our table: send what is configured, require little */
};

enum ss_family ss_product_family(const char *code);
const char *ss_family_name(enum ss_family family);
bool ss_family_is_digicert(enum ss_family family);
/* Product code as neworder wants it: without the "-EO" suffix ("Placing an order"). */
void ss_product_wire_code(const char *code, char *out, size_t size);

/* Validity in days to the ValidityPeriod months ("Placing an order"): the listed month
 * value nearest to days/30.44 (398 d → 12, never 13). 0 when days < 1. */
int ss_days_to_months(long days, bool digicert);

struct ss_contact {
	const char *first_name, *last_name, *title, *phone, *email, *org_name, *address, *city,
		*region, *postal_code, *country;
};

struct ss_org {
	const char *name, *address, *city, *region, *postal_code, *country, *phone,
		*jurisdiction_country;
	long id; /* TSSOrganizationId, 0 when none */
};

/* Everything a neworder / reissue body is built from, resolved from the
 * [ca:] section and the per-certificate overrides. */
struct ss_params {
	const char *product; /* as configured (may end in -EO) */
	enum ss_family family;
	int months;
	const char *custom_order_id;
	const char *csr_pem;     /* normalised PEM */
	const char *domain_name; /* CN, "" when none */
	const struct p11e_strlist *dns;
	const char *approver_email; /* comma-joined, "" when DCV is not by e-mail */
	struct ss_contact admin, tech;
	struct ss_org org;
	int server_count;
	const char *web_server_type;
	const char *signature_hash;
	bool file_dcv, cname_dcv;
	bool https_file_dcv; /* HTTPSFileAuthDVIndicator */
	bool auto_www;       /* AutoWWW: also the www twin (single-domain products) */
	bool renewal;
	const char *related_order_id; /* renewal: RelatedTheSSLStoreOrderID */
};

struct ss_auth {
	const char *partner_code;
	const char *auth_token;
	const char *replay_token;
	const char *user_agent;
};

/* Config keys a family needs that `p` lacks, as "a, b, c" (empty when
 * complete). Returns the number missing. */
int ss_family_missing(const struct ss_params *p, char *out, size_t size);

/* ReserveSANCount: names beyond the three a Sectigo multi-domain product
 * includes (OQ-17); 0 for other products. */
int ss_reserve_san_count(const struct ss_params *p);

/* Request bodies (caller frees with cJSON_Delete; NULL on OOM). */
cJSON *ss_req_neworder(const struct ss_auth *auth, const struct ss_params *p);
cJSON *ss_req_reissue(const struct ss_auth *auth, const struct ss_params *p, const char *order_id);
/* status / download / refundstatus: by order id, or else by custom order id. */
cJSON *ss_req_order(const struct ss_auth *auth, const char *order_id, const char *custom_order_id);
/* certificaterevokerequest: revocation without a refund (docs/protocol-sslstore.md). */
cJSON *ss_req_revoke(const struct ss_auth *auth, const char *order_id, const char *serial);
cJSON *ss_req_refund(const struct ss_auth *auth, const char *order_id, const char *reason);
cJSON *ss_req_approverlist(const struct ss_auth *auth, const char *product, const char *domain);
cJSON *ss_req_query(const struct ss_auth *auth, time_t since, unsigned page, unsigned page_size);
cJSON *ss_req_products(const struct ss_auth *auth);
/* Flat credentials ("Credentials"). */
cJSON *ss_req_validate(const struct ss_auth *auth);
cJSON *ss_req_orglist(const struct ss_auth *auth);

/* AuthResponse of a response (nested, flat, or element 0 of an array).
 * Returns 1 when isError is true (msg and code filled), 0 when false,
 * -1 when the body carries no AuthResponse/isError at all (malformed).
 * `code` gets n of "ErrorCode:n|Message:text", else "". */
int ss_resp_error(const cJSON *body, char *msg, size_t msg_size, char *code, size_t code_size);
/* The echoed ReplayToken, "" when absent. */
const char *ss_resp_replay(const cJSON *body);

/* "ErrorCode:n|Message:text" → text and n (code "" when not that form). */
void ss_vendor_message(const char *in, char *msg, size_t msg_size, char *code, size_t code_size);

enum ss_errkind { SS_ERR_OTHER, SS_ERR_AUTH, SS_ERR_NOT_FOUND, SS_ERR_DUPLICATE };
/* Guesses from the CA's message text what kind of refusal it is. */
enum ss_errkind ss_classify_message(const char *msg);

struct ss_order_info {
	char order_id[128]; /* TheSSLStoreOrderID (string or number) */
	char partner_order_id[128];
	char custom_order_id[128];
	char vendor_order_id[128];
	char major[64], minor[64];
	char common_name[256];
	char product[64];
	char purchase[64]; /* PurchaseDateInUTC as sent */
	char cert_end[64]; /* CertificateEndDateInUTC as sent */
	char serial[130];
	char refund_id[64];
	bool refund_approved;
	time_t cert_end_t, order_expiry_t; /* 0 when unset/unparsable */
	bool order_expiry_known;
	char cname_name[256], cname_value[256];
	char file_name[256], file_content[512];
	char comments[512]; /* OrderStatus.AuthenticationComments */
};
/* Reads one order object; returns 0, or -1 when it is not an object. */
int ss_parse_order(const cJSON *obj, struct ss_order_info *info);

/* MajorStatus/MinorStatus to the provider outcome (ISSUED, PENDING,
 * REJECTED); `known` false when the word is not in our vocabulary. */
p11e_ca_outcome ss_status_outcome(const char *major, const char *minor, bool *known);

/* "MM/dd/yyyy HH:mm:ss", "MM-dd-yyyy HH:mm:ss", ISO-8601, "/Date(ms)/";
 * year 1900 (the API's "unset") and garbage give -1. */
int ss_parse_date(const char *text, time_t *out);

/* Approver rule ("Approvers") with the per-domain lists already fetched.
 * given: trimmed lower-case addresses. lists[i]: the CA's list for
 * domains[i] (DigiCert needs only lists[0]). Returns 0, or -1 with `why`
 * naming the domain and the valid addresses. */
int ss_approver_rule(bool digicert, const struct p11e_strlist *given, const char *const *domains,
		     const struct p11e_strlist *lists, size_t ndomains, char *why, size_t why_size);
/* Splits approver_email on ',' and trims/lower-cases each; drops empties. */
int ss_approver_split(const char *text, struct p11e_strlist *out);

/* The certificates of a download answer: every FileContent of Certificates
 * (PEM, one or several blocks, or bare base64; what is not a certificate is
 * passed over) as one PEM text in the order received, duplicates included.
 * The leaf is found and the chain ordered by the agent (common/chain.h),
 * never here. *entries: the FileContent strings. Returns the certificates
 * read (0: *pem NULL), or -1 out of memory. */
int ss_parse_download(const cJSON *json, char **pem, size_t *entries);

/* PKCS#10 as the API wants it: PEM, 64 columns, "\n" ("Placing an order"). Accepts PEM or
 * bare base64 DER. NULL when it is not a CSR. */
char *ss_csr_normalize(const char *in);

/* CustomOrderID made from the agent's idempotency id: deterministic, so a
 * later reconcile finds the order again; [A-Za-z0-9-] only; at most 64. */
int ss_custom_order_id(const char *idempotency_id, char *out, size_t size);

/* Judges one HTTP answer: P11E_CA_OK with *out (the JSON) when the CA
 * answered isError false; P11E_CA_REJECTED with res->message/ca_code and
 * *kind when it answered isError true (any HTTP status); else the outcome
 * of the transport (UNREACHABLE, MISCONFIGURED; UNKNOWN for a placement
 * that may have reached the CA: timeout after send, reset, 5xx, oversize,
 * malformed body). `replay`: our ReplayToken; an echo that differs is a
 * malformed answer. */
p11e_ca_outcome ss_judge(const struct p11e_http_response *resp, const char *what, const char *api_url,
			 bool place, const char *replay, cJSON **out, enum ss_errkind *kind,
			 struct p11e_ca_result *res);

/* Reason text for RefundReason. */
void ss_refund_reason(p11e_revoke_reason reason, char *out, size_t size);

#endif
