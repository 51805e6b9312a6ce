/* SPDX-License-Identifier: Apache-2.0 */
#include "csr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

/* ---- RFC 4514 subject ---------------------------------------------------- */

struct ava {
	int nid;
	unsigned char *value;
	size_t len;
	bool new_rdn; /* first AVA of its RDN */
};

static const struct {
	const char *alias;
	int nid;
} type_aliases[] = {
	{ "CN", NID_commonName },
	{ "C", NID_countryName },
	{ "L", NID_localityName },
	{ "ST", NID_stateOrProvinceName },
	{ "O", NID_organizationName },
	{ "OU", NID_organizationalUnitName },
	{ "STREET", NID_streetAddress },
	{ "DC", NID_domainComponent },
	{ "UID", NID_userId },
	{ "SERIALNUMBER", NID_serialNumber },
	{ "EMAILADDRESS", NID_pkcs9_emailAddress },
	{ "E", NID_pkcs9_emailAddress },
	{ "POSTALCODE", NID_postalCode },
	{ "GIVENNAME", NID_givenName },
	{ "SN", NID_surname },
	{ "TITLE", NID_title },
};

static int attribute_nid(const char *type)
{
	bool numeric = true;

	for (size_t i = 0; i < sizeof(type_aliases) / sizeof(type_aliases[0]); i++)
		if (strcasecmp(type, type_aliases[i].alias) == 0)
			return type_aliases[i].nid;
	for (const char *p = type; *p; p++)
		if (!isdigit((unsigned char)*p) && *p != '.')
			numeric = false;
	if (numeric && *type)
		return OBJ_txt2nid(type) != NID_undef ? OBJ_txt2nid(type) : NID_undef;
	return OBJ_txt2nid(type);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}


/* Parses one attribute value starting at text[*pos]; stops at an unescaped
 * ',' or '+' or the end. */
static p11e_status parse_value(const char *text, size_t *pos, unsigned char **out, size_t *len,
			       struct p11e_err *err)
{
	size_t start = *pos, n = 0, cap = strlen(text + start) + 1;
	size_t last_escaped_end = 0;
	unsigned char *buf = malloc(cap);
	size_t i = start;

	if (!buf)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (text[i] == '#') {
		free(buf);
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: hex-encoded values ('#…') are not supported at "
				    "position %zu; write the value as text",
				    i + 1);
	}
	if (text[i] == ' ') {
		free(buf);
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: a value may not start with an unescaped space at "
				    "position %zu (escape it as '\\ ')",
				    i + 1);
	}
	while (text[i] && text[i] != ',' && text[i] != '+') {
		char c = text[i];

		if (c == '\\') {
			char d = text[i + 1];

			if (d && strchr("\\\"+,;<>= #", d)) {
				buf[n++] = (unsigned char)d;
				i += 2;
			} else if (hexval(d) >= 0 && text[i + 2] && hexval(text[i + 2]) >= 0) {
				buf[n++] = (unsigned char)(hexval(d) * 16 + hexval(text[i + 2]));
				i += 3;
			} else {
				free(buf);
				return p11e_err_set(err, P11E_EUSAGE,
						    "subject: bad escape sequence at position %zu "
						    "(use \\\\, \\, , \\+ , \\\" , \\; , \\< , \\> , "
						    "\\= or two hex digits)",
						    i + 1);
			}
			last_escaped_end = n;
			continue;
		}
		if (strchr("\";<>", c) || (unsigned char)c < 0x20) {
			free(buf);
			return p11e_err_set(err, P11E_EUSAGE,
					    "subject: character '%c' at position %zu must be escaped "
					    "with a backslash",
					    (unsigned char)c < 0x20 ? '?' : c, i + 1);
		}
		buf[n++] = (unsigned char)c;
		i++;
	}
	if (n > 0 && buf[n - 1] == ' ' && n > last_escaped_end) {
		free(buf);
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: a value may not end with an unescaped space (before "
				    "position %zu)",
				    i + 1);
	}
	if (n == 0) {
		free(buf);
		return p11e_err_set(err, P11E_EUSAGE, "subject: empty value at position %zu",
				    start + 1);
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	*pos = i;
	return P11E_OK;
}

/* One TYPE=value at text[*pos] (spaces after a separator tolerated: "CN=a,
 * O=b"); *pos ends at the separator or the end. a->value is set only when
 * the value was read, and stays set (the caller frees it) whatever
 * follows. */
static p11e_status parse_ava(const char *text, size_t *pos, struct ava *a, struct p11e_err *err)
{
	size_t type_start, type_len;
	char type[64];
	p11e_status rc;

	while (text[*pos] == ' ')
		(*pos)++;
	type_start = *pos;
	while (isalnum((unsigned char)text[*pos]) || text[*pos] == '.' || text[*pos] == '-')
		(*pos)++;
	type_len = *pos - type_start;
	if (type_len == 0 || text[*pos] != '=')
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: expected ATTRIBUTE=value at position %zu",
				    type_start + 1);
	if (type_len >= sizeof(type))
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: attribute type too long at position %zu",
				    type_start + 1);
	memcpy(type, text + type_start, type_len);
	type[type_len] = '\0';
	a->nid = attribute_nid(type);
	if (a->nid == NID_undef)
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: unknown attribute type '%s' at position %zu", type,
				    type_start + 1);
	(*pos)++; /* '=' */
	rc = parse_value(text, pos, &a->value, &a->len, err);
	if (rc != P11E_OK)
		return rc;
	if (a->nid == NID_countryName && a->len != 2)
		return p11e_err_set(err, P11E_EUSAGE,
				    "subject: C must be a two-letter country code, got '%s' "
				    "(position %zu)",
				    (char *)a->value, type_start + 1);
	return P11E_OK;
}

/* The AVAs as an X509_NAME: RFC 4514 writes the most specific RDN first;
 * X.509 stores it last. */
static p11e_status build_name(const struct ava *avas, size_t n_avas, X509_NAME **out,
			      struct p11e_err *err)
{
	X509_NAME *name = X509_NAME_new();

	if (!name)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t end = n_avas; end > 0;) {
		size_t begin = end - 1;

		while (begin > 0 && !avas[begin].new_rdn)
			begin--;
		for (size_t k = begin; k < end; k++) {
			if (!X509_NAME_add_entry_by_NID(name, avas[k].nid, MBSTRING_UTF8, avas[k].value,
							(int)avas[k].len, -1, k == begin ? 0 : -1)) {
				p11e_err_set(err, P11E_EUSAGE,
					     "subject: value '%s' is not valid for %s",
					     (char *)avas[k].value, OBJ_nid2sn(avas[k].nid));
				p11e_err_add_openssl(err);
				X509_NAME_free(name);
				return P11E_EUSAGE;
			}
		}
		end = begin;
	}
	*out = name;
	return P11E_OK;
}

p11e_status p11e_subject_parse(const char *text, X509_NAME **out, struct p11e_err *err)
{
	struct ava *avas = NULL;
	size_t n_avas = 0, pos = 0, cap;
	p11e_status rc = P11E_OK;
	bool new_rdn = true;

	*out = NULL;
	if (!text || !*text)
		return p11e_err_set(err, P11E_EUSAGE, "subject: empty; write at least CN=…");
	/* Every AVA takes at least "T=v," so this many slots always suffice. */
	cap = strlen(text) / 2 + 2;
	avas = calloc(cap, sizeof(*avas));
	if (!avas)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	while (text[pos]) {
		rc = parse_ava(text, &pos, &avas[n_avas], err);
		if (rc != P11E_OK)
			goto out;
		avas[n_avas++].new_rdn = new_rdn;
		if (text[pos] == ',' || text[pos] == '+') {
			new_rdn = text[pos] == ',';
			pos++;
			if (!text[pos]) {
				rc = p11e_err_set(err, P11E_EUSAGE,
						  "subject: nothing after the separator at position %zu",
						  pos);
				goto out;
			}
		}
	}
	rc = build_name(avas, n_avas, out, err);
out:
	/* <= : a value parsed just before an error is not counted yet. */
	for (size_t i = 0; i <= n_avas && i < cap; i++)
		free(avas[i].value);
	free(avas);
	return rc;
}

/* ---- subjectAltName checks ----------------------------------------------- */

static bool dns_label_ok(const char *label, size_t len)
{
	if (len == 0 || len > 63 || label[0] == '-' || label[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)label[i]) && label[i] != '-')
			return false;
	return true;
}

static bool dns_name_ok(const char *name, bool allow_wildcard)
{
	size_t len = strlen(name);
	const char *p = name;

	if (len == 0 || len > 253)
		return false;
	if (allow_wildcard && strncmp(p, "*.", 2) == 0)
		p += 2;
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (!dns_label_ok(p, l))
			return false;
		if (!dot)
			break;
		p = dot + 1;
		if (!*p)
			return false; /* trailing dot */
	}
	return true;
}

p11e_status p11e_san_check_dns(const char *name, struct p11e_err *err)
{
	if (!dns_name_ok(name, true))
		return p11e_err_set(err, P11E_EUSAGE,
				    "dns: '%s' is not a valid DNS name (letters, digits and '-' in "
				    "dot-separated labels of 1–63 characters; '*.' only as the "
				    "first label)",
				    name);
	return P11E_OK;
}

p11e_status p11e_san_check_ip(const char *ip, struct p11e_err *err)
{
	unsigned char buf[16];

	if (inet_pton(AF_INET, ip, buf) != 1 && inet_pton(AF_INET6, ip, buf) != 1)
		return p11e_err_set(err, P11E_EUSAGE, "ip: '%s' is not an IPv4 or IPv6 address", ip);
	return P11E_OK;
}

p11e_status p11e_san_check_email(const char *email, struct p11e_err *err)
{
	const char *at = strchr(email, '@');
	bool ok = at && at != email && (size_t)(at - email) <= 64 && !strchr(at + 1, '@') &&
		  dns_name_ok(at + 1, false);

	for (const char *p = email; ok && p < at; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    strchr("(),:;<>[\\]\"", *p))
			ok = false;
	if (!ok)
		return p11e_err_set(err, P11E_EUSAGE, "email: '%s' is not a valid e-mail address",
				    email);
	return P11E_OK;
}

p11e_status p11e_san_check_uri(const char *uri, struct p11e_err *err)
{
	const char *p = uri;
	bool ok = isalpha((unsigned char)*p);

	while (ok && *p && *p != ':') {
		if (!isalnum((unsigned char)*p) && !strchr("+-.", *p))
			ok = false;
		p++;
	}
	ok = ok && *p == ':' && p[1] != '\0';
	for (const char *q = uri; ok && *q; q++)
		if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
			ok = false;
	if (!ok)
		return p11e_err_set(err, P11E_EUSAGE,
				    "uri: '%s' is not a valid URI (scheme:rest, no spaces)", uri);
	return P11E_OK;
}

static p11e_status check_list(const struct p11e_strlist *list,
			      p11e_status (*check)(const char *, struct p11e_err *),
			      struct p11e_err *err)
{
	for (size_t i = 0; list && i < list->n; i++)
		if (check(list->v[i], err) != P11E_OK)
			return err->status;
	return P11E_OK;
}

p11e_status p11e_csr_request_check(const struct p11e_csr_request *req, struct p11e_err *err)
{
	X509_NAME *name = NULL;

	if (p11e_subject_parse(req->subject, &name, err) != P11E_OK)
		return err->status;
	X509_NAME_free(name);
	if (check_list(req->dns, p11e_san_check_dns, err) != P11E_OK ||
	    check_list(req->ip, p11e_san_check_ip, err) != P11E_OK ||
	    check_list(req->email, p11e_san_check_email, err) != P11E_OK ||
	    check_list(req->uri, p11e_san_check_uri, err) != P11E_OK)
		return err->status;
	return P11E_OK;
}

/* ---- the CSR ---------------------------------------------------------------- */

static int add_ia5_names(GENERAL_NAMES *gens, int type, const struct p11e_strlist *list)
{
	for (size_t i = 0; list && i < list->n; i++) {
		GENERAL_NAME *gen = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();

		if (!gen || !s || !ASN1_STRING_set(s, list->v[i], -1)) {
			GENERAL_NAME_free(gen);
			ASN1_IA5STRING_free(s);
			return 0;
		}
		GENERAL_NAME_set0_value(gen, type, s);
		if (!sk_GENERAL_NAME_push(gens, gen)) {
			GENERAL_NAME_free(gen);
			return 0;
		}
	}
	return 1;
}

static int add_ip_names(GENERAL_NAMES *gens, const struct p11e_strlist *list)
{
	for (size_t i = 0; list && i < list->n; i++) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(list->v[i]);
		GENERAL_NAME *gen = ip ? GENERAL_NAME_new() : NULL;

		if (!gen) {
			ASN1_OCTET_STRING_free(ip);
			return 0;
		}
		GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
		if (!sk_GENERAL_NAME_push(gens, gen)) {
			GENERAL_NAME_free(gen);
			return 0;
		}
	}
	return 1;
}

static p11e_status add_extensions(X509_REQ *req, const struct p11e_csr_request *r,
				  const struct p11e_key_spec *spec, struct p11e_err *err)
{
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	X509_EXTENSION *ku = NULL, *eku = NULL;
	p11e_status rc = P11E_OK;

	ku = X509V3_EXT_nconf_nid(NULL, NULL, NID_key_usage,
				  spec->alg == P11E_ALG_RSA
					  ? "critical,digitalSignature,keyEncipherment"
					  : "critical,digitalSignature");
	eku = X509V3_EXT_nconf_nid(NULL, NULL, NID_ext_key_usage,
				   r->client_auth ? "serverAuth,clientAuth" : "serverAuth");
	if (!exts || !gens || !ku || !eku || !sk_X509_EXTENSION_push(exts, ku)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot build the CSR extensions");
		goto out;
	}
	ku = NULL;
	if (!sk_X509_EXTENSION_push(exts, eku)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot build the CSR extensions");
		goto out;
	}
	eku = NULL;
	if (!add_ia5_names(gens, GEN_DNS, r->dns) || !add_ip_names(gens, r->ip) ||
	    !add_ia5_names(gens, GEN_EMAIL, r->email) || !add_ia5_names(gens, GEN_URI, r->uri)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot build the subjectAltName");
		goto out;
	}
	if (sk_GENERAL_NAME_num(gens) > 0 &&
	    X509V3_add1_i2d(&exts, NID_subject_alt_name, gens, 0, X509V3_ADD_APPEND) != 1) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot add the subjectAltName");
		goto out;
	}
	if (!X509_REQ_add_extensions(req, exts))
		rc = p11e_err_set(err, P11E_EFAIL, "cannot add the extension request");
out:
	if (rc != P11E_OK)
		p11e_err_add_openssl(err);
	X509_EXTENSION_free(ku);
	X509_EXTENSION_free(eku);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	GENERAL_NAMES_free(gens);
	return rc;
}

/* Sets the CSR's signature algorithm as RFC 5758 and RFC 4055 write it:
 * ecdsa-with-SHA256/384 without parameters, sha256/384WithRSAEncryption
 * with NULL. (The tpm2 provider names ECDSA with a NULL parameter.) */
static bool set_signature_algorithm(X509_REQ *req, const struct p11e_key_spec *spec)
{
	bool sha384 = strcmp(spec->digest, "SHA384") == 0, ok;
	X509_ALGOR *alg = X509_ALGOR_new();

	if (!alg)
		return false;
	if (spec->alg == P11E_ALG_EC)
		X509_ALGOR_set0(alg,
				OBJ_nid2obj(sha384 ? NID_ecdsa_with_SHA384 : NID_ecdsa_with_SHA256),
				V_ASN1_UNDEF, NULL);
	else
		X509_ALGOR_set0(alg,
				OBJ_nid2obj(sha384 ? NID_sha384WithRSAEncryption
						   : NID_sha256WithRSAEncryption),
				V_ASN1_NULL, NULL);
	ok = X509_REQ_set1_signature_algo(req, alg) == 1;
	X509_ALGOR_free(alg);
	return ok;
}

static p11e_status sign_req(X509_REQ *req, const struct p11e_signer *signer, struct p11e_err *err)
{
	const struct p11e_key_spec *spec = signer->spec;
	unsigned char *tbs = NULL, *sig = NULL, digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	size_t sig_len = 0;
	ASN1_BIT_STRING *bits = NULL;
	EVP_MD *md = EVP_MD_fetch(NULL, spec->digest, NULL);
	p11e_status rc = P11E_OK;
	int tbs_len;

	if (!md) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot set up digest %s", spec->digest);
		goto out;
	}
	if (!set_signature_algorithm(req, spec)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot set the CSR signature algorithm");
		goto out;
	}
	tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
	if (tbs_len <= 0 || !EVP_Digest(tbs, (size_t)tbs_len, digest, &digest_len, md, NULL)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot encode and hash the CSR");
		goto out;
	}
	if (signer->sign_data)
		rc = signer->sign_data(signer->ctx, tbs, (size_t)tbs_len, &sig, &sig_len, err);
	else
		rc = signer->sign(signer->ctx, digest, digest_len, &sig, &sig_len, err);
	if (rc != P11E_OK)
		goto out;
	bits = ASN1_BIT_STRING_new();
	if (!bits || !ASN1_BIT_STRING_set(bits, sig, (int)sig_len)) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	/* A signature is a whole number of bytes: say so, or the encoder
	 * would drop trailing zero bits as if this were a flag set. */
	bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
	bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
	X509_REQ_set0_signature(req, bits);
	bits = NULL;
out:
	if (rc != P11E_OK)
		p11e_err_add_openssl(err);
	ASN1_BIT_STRING_free(bits);
	OPENSSL_free(sig);
	OPENSSL_free(tbs);
	EVP_MD_free(md);
	return rc;
}

/* OpenSSL holds the key: it hashes and signs through the key's provider.
 * The algorithm is outside what is signed, so it is written as sign_req
 * writes it, whatever the provider names. */
static p11e_status sign_openssl(X509_REQ *req, const struct p11e_signer *signer, struct p11e_err *err)
{
	const struct p11e_key_spec *spec = signer->spec;
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	p11e_status rc = P11E_OK;

	if (!mctx ||
	    EVP_DigestSignInit_ex(mctx, &pctx, spec->digest, signer->libctx, signer->propq,
				  signer->priv, NULL) != 1 ||
	    (spec->alg == P11E_ALG_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) ||
	    X509_REQ_sign_ctx(req, mctx) <= 0 || !set_signature_algorithm(req, spec)) {
		rc = p11e_err_set(err, P11E_ETOKEN, "cannot sign the CSR with the %s key", spec->name);
		p11e_err_add_openssl(err);
	}
	EVP_MD_CTX_free(mctx);
	return rc;
}

p11e_status p11e_csr_build(const struct p11e_csr_request *r, const struct p11e_signer *signer,
			   X509_REQ **out, struct p11e_err *err)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = NULL;
	p11e_status rc;

	*out = NULL;
	if (!req)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = p11e_csr_request_check(r, err);
	if (rc != P11E_OK)
		goto out;
	rc = p11e_subject_parse(r->subject, &name, err);
	if (rc != P11E_OK)
		goto out;
	if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) || !X509_REQ_set_subject_name(req, name) ||
	    !X509_REQ_set_pubkey(req, signer->pub)) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot fill in the CSR");
		p11e_err_add_openssl(err);
		goto out;
	}
	rc = add_extensions(req, r, signer->spec, err);
	if (rc != P11E_OK)
		goto out;
	rc = signer->priv ? sign_openssl(req, signer, err) : sign_req(req, signer, err);
	if (rc != P11E_OK)
		goto out;
	if (X509_REQ_verify(req, signer->pub) != 1) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "the token's signature on the CSR does not verify with its public "
				  "key; the token or its key object is faulty");
		p11e_err_add_openssl(err);
		goto out;
	}
	*out = req;
	req = NULL;
out:
	X509_NAME_free(name);
	X509_REQ_free(req);
	return rc;
}

char *p11e_csr_to_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());

	if (bio && !PEM_write_bio_X509_REQ(bio, req)) {
		BIO_free(bio);
		return NULL;
	}
	return p11e_bio_text(bio);
}
