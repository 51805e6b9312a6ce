/* SPDX-License-Identifier: Apache-2.0 */
/* Keys behind an OpenSSL 3 provider (tpm2-openssl): see osslkey.h. */
#include "osslkey.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <openssl/x509.h>

#include "log.h"
#include "util.h"

/* TPMA_OBJECT bits (TPM 2.0 Part 2, 8.3). */
#define TPMA_FIXEDTPM 0x00000002u
#define TPMA_FIXEDPARENT 0x00000010u
#define TPMA_SENSITIVEDATAORIGIN 0x00000020u
#define TPMA_DECRYPT 0x00020000u
#define TPMA_SIGN_ENCRYPT 0x00040000u

#define PEM_TSS2 "TSS2 PRIVATE KEY"
#define KEY_FILE_LIMIT (64 * 1024)

struct p11e_ossl {
	OSSL_LIB_CTX *libctx;
	OSSL_PROVIDER *prov;
	OSSL_PROVIDER *deflt;
	char *name;
	char desc[512];
};

/* ---- URI ------------------------------------------------------------------- */

bool p11e_osslkey_uri_is(const char *text)
{
	return text && strncmp(text, "provider:", 9) == 0;
}

void p11e_osslkey_uri_free(struct p11e_osslkey_uri *uri)
{
	if (!uri)
		return;
	free(uri->provider);
	free(uri->path);
	free(uri->tcti);
	free(uri);
}

#define URI_FORM "provider:tpm2:/ABSOLUTE/PATH[?tcti=TCTI]"

/* NAME of provider:NAME:…, up to `colon`; only tpm2 is taken. */
static p11e_status parse_provider(const char *name, const char *colon, struct p11e_osslkey_uri *uri,
				  struct p11e_err *err)
{
	for (const char *c = name; c < colon; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
			return p11e_err_set(err, P11E_EUSAGE,
					    "bad provider name '%.*s' in the key URI (letters, "
					    "digits, - and _); expected %s",
					    (int)(colon - name), name, URI_FORM);
	uri->provider = strndup(name, (size_t)(colon - name));
	if (!uri->provider)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	/* Other providers may be added; each needs its own TCTI-like set-up
	 * and key file format, so refuse what we have not tested. */
	if (strcmp(uri->provider, "tpm2") != 0)
		return p11e_err_set(err, P11E_EUSAGE,
				    "provider '%s' is not supported for keys; supported: tpm2 "
				    "(tpm2-openssl)",
				    uri->provider);
	return P11E_OK;
}

/* PATH, `len` bytes at `text`: absolute, a file, no . or .. steps, with
 * room for .<ID> and a temporary suffix. */
static p11e_status parse_path(const char *text, size_t len, struct p11e_osslkey_uri *uri,
			      struct p11e_err *err)
{
	uri->path = strndup(text, len);
	if (!uri->path)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (uri->path[0] != '/' || len < 2 || uri->path[len - 1] == '/' || strstr(uri->path, "/../") ||
	    strstr(uri->path, "/./") || len + 1 + 2 * P11E_OSSLKEY_ID_LEN + 16 >= PATH_MAX)
		return p11e_err_set(err, P11E_EUSAGE,
				    "the key file '%s' in the key URI must be an absolute path to a "
				    "file (e.g. provider:tpm2:/var/lib/p11enroll/keys/web.tss2.pem)",
				    uri->path);
	return P11E_OK;
}

/* What follows '?': tcti=TCTI and nothing else. */
static p11e_status parse_query(const char *param, struct p11e_osslkey_uri *uri, struct p11e_err *err)
{
	if (strncmp(param, "tcti=", 5) != 0)
		return p11e_err_set(err, P11E_EUSAGE,
				    "unknown parameter '%.*s' in the provider key URI (known: "
				    "tcti=)",
				    (int)strcspn(param, "=&"), param);
	if (param[5] == '\0' || strchr(param + 5, '&') || strchr(param + 5, '?'))
		return p11e_err_set(err, P11E_EUSAGE,
				    "tcti= in the provider key URI takes one TCTI string, e.g. "
				    "tcti=device:/dev/tpmrm0 or tcti=swtpm:path=/run/tpm.sock");
	uri->tcti = strdup(param + 5);
	if (!uri->tcti)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	return P11E_OK;
}

p11e_status p11e_osslkey_uri_parse(const char *text, struct p11e_osslkey_uri **out,
				   struct p11e_err *err)
{
	struct p11e_osslkey_uri *uri = calloc(1, sizeof(*uri));
	const char *name, *colon, *query;
	p11e_status rc = P11E_OK;

	*out = NULL;
	if (!uri)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (!p11e_osslkey_uri_is(text)) {
		rc = p11e_err_set(err, P11E_EUSAGE, "not a provider key URI (expected %s)", URI_FORM);
		goto out;
	}
	name = text + 9;
	colon = strchr(name, ':');
	if (!colon || colon == name) {
		rc = p11e_err_set(err, P11E_EUSAGE,
				  "the provider key URI needs a provider name and a path: %s",
				  URI_FORM);
		goto out;
	}
	rc = parse_provider(name, colon, uri, err);
	if (rc != P11E_OK)
		goto out;
	query = strchr(colon + 1, '?');
	rc = parse_path(colon + 1, query ? (size_t)(query - (colon + 1)) : strlen(colon + 1), uri,
			err);
	if (rc == P11E_OK && query)
		rc = parse_query(query + 1, uri, err);
	if (rc != P11E_OK)
		goto out;
	*out = uri;
	uri = NULL;
out:
	p11e_osslkey_uri_free(uri);
	return rc;
}

char *p11e_osslkey_uri_text(const struct p11e_osslkey_uri *uri)
{
	char *text = NULL;

	if (asprintf(&text, "provider:%s:%s%s%s", uri->provider, uri->path, uri->tcti ? "?tcti=" : "",
		     uri->tcti ? uri->tcti : "") < 0)
		return NULL;
	return text;
}

/* ---- provider -------------------------------------------------------------- */

p11e_status p11e_ossl_open(const struct p11e_osslkey_uri *uri, struct p11e_ossl **out,
			   struct p11e_err *err)
{
	struct p11e_ossl *o = calloc(1, sizeof(*o));
	const char *env = "TPM2OPENSSL_TCTI";
	char *saved = NULL;
	p11e_status rc = P11E_OK;

	*out = NULL;
	if (!o)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	o->name = strdup(uri->provider);
	o->libctx = OSSL_LIB_CTX_new();
	if (!o->name || !o->libctx) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	snprintf(o->desc, sizeof(o->desc), "the TPM via OpenSSL provider %s (TCTI %s)", uri->provider,
		 uri->tcti ? uri->tcti : "default");
	/* tpm2-openssl reads its TCTI from the environment once, when it is
	 * loaded; set it for the load only, so that it neither leaks into
	 * hooks we run later nor overrides another key's TCTI. */
	if (uri->tcti) {
		if (getenv(env) && !(saved = strdup(getenv(env)))) {
			rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
			goto out;
		}
		setenv(env, uri->tcti, 1);
	}
	ERR_clear_error();
	o->prov = OSSL_PROVIDER_load(o->libctx, uri->provider);
	if (uri->tcti) {
		if (saved)
			setenv(env, saved, 1);
		else
			unsetenv(env);
	}
	if (!o->prov) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "cannot load OpenSSL provider '%s' to reach the TPM (TCTI %s); is "
				  "tpm2-openssl installed and the TPM reachable (device access, "
				  "tcti= in the key URI)?",
				  uri->provider, uri->tcti ? uri->tcti : "default");
		p11e_err_add_openssl(err);
		goto out;
	}
	/* Hashing, encoders and the public-key side come from "default". */
	o->deflt = OSSL_PROVIDER_load(o->libctx, "default");
	if (!o->deflt) {
		rc = p11e_err_set(err, P11E_EFAIL, "cannot load OpenSSL's default provider");
		p11e_err_add_openssl(err);
		goto out;
	}
	p11e_debug("loaded OpenSSL provider %s (TCTI %s)", uri->provider,
		   uri->tcti ? uri->tcti : "default");
	*out = o;
	o = NULL;
out:
	free(saved);
	p11e_ossl_close(o);
	return rc;
}

void p11e_ossl_close(struct p11e_ossl *o)
{
	if (!o)
		return;
	if (o->deflt)
		OSSL_PROVIDER_unload(o->deflt);
	if (o->prov)
		OSSL_PROVIDER_unload(o->prov);
	OSSL_LIB_CTX_free(o->libctx);
	free(o->name);
	free(o);
}

const char *p11e_ossl_describe(const struct p11e_ossl *o)
{
	return o->desc;
}

p11e_status p11e_ossl_supports(struct p11e_ossl *o, const struct p11e_key_spec *spec,
			       struct p11e_err *err)
{
	EVP_KEYMGMT *km;

	km = EVP_KEYMGMT_fetch(o->libctx, spec->alg == P11E_ALG_RSA ? "RSA" : "EC", "provider=tpm2");
	ERR_clear_error();
	if (!km)
		return p11e_err_set(err, P11E_ETOKEN,
				    "%s cannot make %s keys: the provider has no %s key "
				    "management",
				    o->desc, spec->name, spec->alg == P11E_ALG_RSA ? "RSA" : "EC");
	EVP_KEYMGMT_free(km);
	/* tpm2-openssl has no way to ask the TPM which RSA sizes it has
	 * (TPM2_TestParms is not reachable through it), and each failed key
	 * generation leaves its primary key loaded in the TPM. TPMs with
	 * RSA-4096 are rare (none of the PC-client profile requires it), so
	 * do not try. */
	if (spec->alg == P11E_ALG_RSA && spec->bits > 3072)
		return p11e_err_set(err, P11E_ETOKEN,
				    "%s cannot make %s keys: p11enroll does not try RSA above "
				    "3072 bits through the tpm2 provider (it cannot ask the TPM "
				    "first, and TPMs rarely have it); of the allowed types it can "
				    "make: rsa-2048, rsa-3072 (if the TPM has it), ec-p256, ec-p384",
				    o->desc, spec->name);
	return P11E_OK;
}

/* ---- key files ------------------------------------------------------------- */

/* `file`, or where the link `file` points (one level, as our links do). */
static char *resolve_link(const char *file)
{
	char target[PATH_MAX], *copy, *out = NULL;
	struct stat st;
	ssize_t n;

	if (lstat(file, &st) != 0 || !S_ISLNK(st.st_mode))
		return strdup(file);
	n = readlink(file, target, sizeof(target) - 1);
	if (n <= 0)
		return strdup(file);
	target[n] = '\0';
	if (target[0] == '/')
		return strdup(target);
	copy = strdup(file);
	if (copy && asprintf(&out, "%s/%s", dirname(copy), target) < 0)
		out = NULL;
	free(copy);
	return out;
}

/* Reads one DER length at *p (definite form only). */
static bool der_header(const unsigned char **p, const unsigned char *end, int *tag, long *len)
{
	int xclass, ret;
	long l;
	const unsigned char *q = *p;

	ret = ASN1_get_object(&q, &l, tag, &xclass, end - *p);
	if (ret & 0x80 || ret == 0x21 || l > end - q)
		return false;
	*tag |= xclass;
	*len = l;
	*p = q;
	return true;
}

bool p11e_tss2_key_attributes(const unsigned char *der, long len, uint32_t *attrs)
{
	/* TSSPrivKey ::= SEQUENCE { type OID, emptyAuth [0] BOOLEAN OPTIONAL,
	 *   policy [1] OPTIONAL, secret [2] OPTIONAL, parent INTEGER,
	 *   pubkey OCTET STRING, privkey OCTET STRING } — pubkey is a
	 * TPM2B_PUBLIC: size(2) type(2) nameAlg(2) objectAttributes(4) … */
	const unsigned char *p = der, *end = der + len;
	int tag;
	long l;

	if (!der_header(&p, end, &tag, &l) || tag != V_ASN1_SEQUENCE)
		return false;
	end = p + l;
	if (!der_header(&p, end, &tag, &l) || tag != V_ASN1_OBJECT)
		return false;
	p += l;
	for (;;) {
		if (p >= end || !der_header(&p, end, &tag, &l))
			return false;
		if (tag & V_ASN1_CONTEXT_SPECIFIC) {
			p += l;
			continue;
		}
		break;
	}
	if (tag != V_ASN1_INTEGER)
		return false;
	p += l;
	if (!der_header(&p, end, &tag, &l) || tag != V_ASN1_OCTET_STRING || l < 10)
		return false;
	*attrs = (uint32_t)p[6] << 24 | (uint32_t)p[7] << 16 | (uint32_t)p[8] << 8 | p[9];
	return true;
}

char *p11e_ossl_key_file(const char *path, const unsigned char id[P11E_OSSLKEY_ID_LEN])
{
	char hex[2 * P11E_OSSLKEY_ID_LEN + 1], *file = NULL;

	p11e_hex(id, P11E_OSSLKEY_ID_LEN, hex);
	if (asprintf(&file, "%s.%s", path, hex) < 0)
		return NULL;
	return file;
}

/* The first 16 bytes of SHA-256(SubjectPublicKeyInfo). */
static bool public_id(EVP_PKEY *pub, unsigned char id[P11E_OSSLKEY_ID_LEN])
{
	unsigned char *der = NULL, md[32];
	unsigned int md_len = 0;
	int len = i2d_PUBKEY(pub, &der);
	bool ok = len > 0 && EVP_Digest(der, (size_t)len, md, &md_len, EVP_sha256(), NULL);

	OPENSSL_free(der);
	if (ok)
		memcpy(id, md, P11E_OSSLKEY_ID_LEN);
	return ok;
}

/* Copies the public half of a provider key into the default context, so
 * that the CSR code and certificate checks never touch the provider. */
static EVP_PKEY *plain_public(EVP_PKEY *priv)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int len = i2d_PUBKEY(priv, &der);
	EVP_PKEY *pub = NULL;

	if (len > 0) {
		p = der;
		pub = d2i_PUBKEY_ex(NULL, &p, len, NULL, NULL);
	}
	OPENSSL_free(der);
	return pub;
}

void p11e_osslkey_clear(struct p11e_osslkey *key)
{
	EVP_PKEY_free(key->priv);
	EVP_PKEY_free(key->pub);
	free(key->file);
	memset(key, 0, sizeof(*key));
}

/* Fills pub, id, spec from key->priv and checks the TPM attributes. */
static p11e_status describe_key(struct p11e_ossl *o, struct p11e_osslkey *key, const char *file,
				struct p11e_err *err)
{
	const OSSL_PROVIDER *prov = EVP_PKEY_get0_provider(key->priv);
	p11e_status rc;

	if (!prov || strcmp(OSSL_PROVIDER_get0_name(prov), o->name) != 0)
		return p11e_err_set(err, P11E_ETOKEN,
				    "%s holds a key that provider %s does not hold; p11enroll only "
				    "certifies keys that stay in the TPM",
				    file, o->name);
	key->pub = plain_public(key->priv);
	if (!key->pub || !public_id(key->pub, key->id)) {
		rc = p11e_err_set(err, P11E_ETOKEN, "cannot read the public key of %s", file);
		p11e_err_add_openssl(err);
		return rc;
	}
	rc = p11e_policy_classify(key->pub, &key->spec, err);
	if (rc != P11E_OK)
		p11e_err_prefix(err, "%s", file);
	return rc;
}

/* The key must have been made inside this TPM and be unable to leave it:
 * fixedTPM + fixedParent (no duplication) and sensitiveDataOrigin (the
 * TPM made the secret; not an imported key). */
p11e_status p11e_ossl_check_protection(const char *file, uint32_t attrs, struct p11e_err *err)
{
	uint32_t need = TPMA_FIXEDTPM | TPMA_FIXEDPARENT | TPMA_SENSITIVEDATAORIGIN;

	if ((attrs & need) != need)
		return p11e_err_set(err, P11E_ETOKEN,
				    "the TPM key in %s can leave the TPM or was not made in it "
				    "(fixedTPM=%d fixedParent=%d sensitiveDataOrigin=%d); "
				    "p11enroll only certifies keys made in the TPM that cannot "
				    "leave it",
				    file, !!(attrs & TPMA_FIXEDTPM), !!(attrs & TPMA_FIXEDPARENT),
				    !!(attrs & TPMA_SENSITIVEDATAORIGIN));
	if (!(attrs & TPMA_SIGN_ENCRYPT))
		return p11e_err_set(err, P11E_ETOKEN, "the TPM key in %s cannot sign", file);
	return P11E_OK;
}

/* Reads `file` and checks that it is a wrapped TPM key; *attrs from it. */
p11e_status p11e_ossl_read_wrapped(const char *file, uint32_t *attrs, bool *found,
				   struct p11e_err *err)
{
	char *text = NULL, *name = NULL, *header = NULL;
	unsigned char *der = NULL;
	long der_len = 0;
	size_t len = 0;
	BIO *bio = NULL;
	p11e_status rc = P11E_OK;
	struct stat st;

	*found = false;
	if (stat(file, &st) != 0) {
		if (errno == ENOENT)
			return P11E_OK;
		return p11e_err_set(err, P11E_ETOKEN, "cannot read key file %s: %s", file,
				    strerror(errno));
	}
	*found = true;
	if (!S_ISREG(st.st_mode))
		return p11e_err_set(err, P11E_ETOKEN, "key file %s is not a regular file", file);
	if (st.st_mode & 077)
		p11e_warn("key file %s is accessible to group or others (mode %04o); 0600 is "
			  "enough",
			  file, (unsigned)(st.st_mode & 07777));
	rc = p11e_read_file(file, KEY_FILE_LIMIT, &text, &len, err);
	if (rc != P11E_OK) {
		err->status = P11E_ETOKEN;
		return P11E_ETOKEN;
	}
	bio = BIO_new_mem_buf(text, (int)len);
	if (!bio || !PEM_read_bio(bio, &name, &header, &der, &der_len)) {
		ERR_clear_error();
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "%s is not a PEM file; expected a -----BEGIN %s----- key made by "
				  "the tpm2 provider",
				  file, PEM_TSS2);
		goto out;
	}
	/* Anything else (a PKCS#8 key, say) would be a key in clear. */
	if (strcmp(name, PEM_TSS2) != 0) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "%s holds a '%s', not a %s: p11enroll only certifies keys that "
				  "stay in the TPM",
				  file, name, PEM_TSS2);
		goto out;
	}
	if (!p11e_tss2_key_attributes(der, der_len, attrs)) {
		rc = p11e_err_set(err, P11E_ETOKEN, "%s: malformed %s", file, PEM_TSS2);
		goto out;
	}
out:
	BIO_free(bio);
	OPENSSL_free(name);
	OPENSSL_free(header);
	OPENSSL_free(der);
	free(text);
	return rc;
}

p11e_status p11e_ossl_load(struct p11e_ossl *o, const char *file, struct p11e_osslkey *key,
			   bool *found, struct p11e_err *err)
{
	OSSL_STORE_CTX *store = NULL;
	OSSL_STORE_INFO *info;
	p11e_status rc;

	memset(key, 0, sizeof(*key));
	rc = p11e_ossl_read_wrapped(file, &key->tpm_attrs, found, err);
	if (rc != P11E_OK || !*found)
		return rc;
	rc = p11e_ossl_check_protection(file, key->tpm_attrs, err);
	if (rc != P11E_OK)
		return rc;
	ERR_clear_error();
	store = OSSL_STORE_open_ex(file, o->libctx, "?provider=tpm2", NULL, NULL, NULL, NULL, NULL);
	while (store && !key->priv && !OSSL_STORE_eof(store)) {
		info = OSSL_STORE_load(store);
		if (info && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
			key->priv = OSSL_STORE_INFO_get1_PKEY(info);
		OSSL_STORE_INFO_free(info);
		if (!info)
			break;
	}
	OSSL_STORE_close(store);
	if (!key->priv) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "%s cannot load the key in %s (made by another TPM, or the TPM "
				  "was cleared?)",
				  o->desc, file);
		p11e_err_add_openssl(err);
		goto out;
	}
	key->file = resolve_link(file);
	if (!key->file) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	rc = describe_key(o, key, file, err);
out:
	if (rc != P11E_OK)
		p11e_osslkey_clear(key);
	return rc;
}

/* The key pair, made in the TPM by the provider. */
static p11e_status tpm_keygen(struct p11e_ossl *o, const struct p11e_key_spec *spec, EVP_PKEY **priv,
			      struct p11e_err *err)
{
	EVP_PKEY_CTX *gen;
	OSSL_PARAM params[2];
	size_t bits = spec->bits;
	p11e_status rc = P11E_OK;

	ERR_clear_error();
	gen = EVP_PKEY_CTX_new_from_name(o->libctx, spec->alg == P11E_ALG_RSA ? "RSA" : "EC",
					 "provider=tpm2");
	if (spec->alg == P11E_ALG_RSA)
		params[0] = OSSL_PARAM_construct_size_t(OSSL_PKEY_PARAM_RSA_BITS, &bits);
	else
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
							     (char *)spec->curve_name, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!gen || EVP_PKEY_keygen_init(gen) != 1 || EVP_PKEY_CTX_set_params(gen, params) != 1 ||
	    EVP_PKEY_generate(gen, priv) != 1) {
		rc = p11e_err_set(err, P11E_ETOKEN, "%s could not generate a %s key", o->desc,
				  spec->name);
		p11e_err_add_openssl(err);
	}
	EVP_PKEY_CTX_free(gen);
	return rc;
}

/* The provider's encoder writes the TPM's wrapped blob, never the private
 * key itself (it has no access to it): into `mem`, *pem pointing at it. */
static p11e_status wrapped_pem(struct p11e_ossl *o, const struct p11e_osslkey *key,
			       const struct p11e_key_spec *spec, BIO *mem, char **pem, long *pem_len,
			       struct p11e_err *err)
{
	p11e_status rc;

	if (!mem || !PEM_write_bio_PrivateKey_ex(mem, key->priv, NULL, NULL, 0, NULL, NULL, o->libctx,
						 "provider=tpm2")) {
		rc = p11e_err_set(err, P11E_ETOKEN, "%s could not write the new %s key", o->desc,
				  spec->name);
		p11e_err_add_openssl(err);
		return rc;
	}
	*pem_len = BIO_get_mem_data(mem, pem);
	if (*pem_len <= 0 || strncmp(*pem, "-----BEGIN " PEM_TSS2 "-----", 16 + strlen(PEM_TSS2)) != 0)
		return p11e_err_set(err, P11E_ETOKEN,
				    "%s wrote the new key in an unexpected form; nothing was saved",
				    o->desc);
	return P11E_OK;
}

/* Writes the wrapped key to PATH.<ID> and reads it back with the same
 * checks as any key we load; nothing stays behind when they fail. */
static p11e_status save_key(struct p11e_osslkey *key, const char *path, const char *pem, long pem_len,
			    struct p11e_err *err)
{
	bool found;
	p11e_status rc;

	key->file = p11e_ossl_key_file(path, key->id);
	if (!key->file)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = p11e_write_atomic(key->file, pem, (size_t)pem_len, 0600, (uid_t)-1, (gid_t)-1, err);
	if (rc != P11E_OK) {
		err->status = P11E_ETOKEN;
		return P11E_ETOKEN;
	}
	rc = p11e_ossl_read_wrapped(key->file, &key->tpm_attrs, &found, err);
	if (rc == P11E_OK)
		rc = p11e_ossl_check_protection(key->file, key->tpm_attrs, err);
	if (rc != P11E_OK)
		unlink(key->file);
	return rc;
}

p11e_status p11e_ossl_generate(struct p11e_ossl *o, const struct p11e_key_spec *spec, const char *path,
			       struct p11e_osslkey *key, struct p11e_err *err)
{
	BIO *mem = NULL;
	char *pem = NULL, *dir = NULL;
	long pem_len = 0;
	p11e_status rc;

	memset(key, 0, sizeof(*key));
	rc = p11e_ossl_supports(o, spec, err);
	if (rc != P11E_OK)
		return rc;
	dir = strdup(path);
	if (!dir)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = p11e_mkdirs(dirname(dir), 0700, err);
	if (rc == P11E_OK)
		rc = tpm_keygen(o, spec, &key->priv, err);
	if (rc == P11E_OK) {
		mem = BIO_new(BIO_s_mem());
		rc = wrapped_pem(o, key, spec, mem, &pem, &pem_len, err);
	}
	if (rc == P11E_OK)
		rc = describe_key(o, key, path, err);
	if (rc == P11E_OK && key->spec != spec)
		rc = p11e_err_set(err, P11E_ETOKEN, "%s generated a %s key when %s was asked", o->desc,
				  key->spec->name, spec->name);
	if (rc == P11E_OK)
		rc = save_key(key, path, pem, pem_len, err);
	if (rc == P11E_OK)
		p11e_debug("wrote %s key %s (TPM attributes 0x%08x)", spec->name, key->file,
			   (unsigned)key->tpm_attrs);
	else
		p11e_osslkey_clear(key);
	BIO_free(mem);
	free(dir);
	return rc;
}

static p11e_status sync_dir(const char *path, struct p11e_err *err)
{
	char *copy = strdup(path);
	int fd;

	if (!copy)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0 || fsync(fd) != 0) {
		if (fd >= 0)
			close(fd);
		return p11e_err_set(err, P11E_ETOKEN, "cannot sync the folder of %s: %s", path,
				    strerror(errno));
	}
	close(fd);
	return P11E_OK;
}

p11e_status p11e_ossl_point(const char *path, const char *file,
			    const unsigned char old_id[P11E_OSSLKEY_ID_LEN], struct p11e_err *err)
{
	char *copy = strdup(file), *base, *kept = NULL, tmp[PATH_MAX], target[PATH_MAX];
	p11e_status rc = P11E_OK;
	struct stat st;
	ssize_t n;

	if (!copy)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	base = basename(copy);
	if (lstat(path, &st) != 0) {
		if (errno != ENOENT) {
			rc = p11e_err_set(err, P11E_ETOKEN, "cannot inspect %s: %s", path,
					  strerror(errno));
			goto out;
		}
	} else if (S_ISLNK(st.st_mode)) {
		n = readlink(path, target, sizeof(target) - 1);
		if (n > 0 && (target[n] = '\0', strcmp(target, base) == 0))
			goto out; /* already there */
	} else if (S_ISREG(st.st_mode)) {
		/* A hand-made key at PATH: keep it under its id (a second name
		 * for the same file, so PATH never disappears). */
		kept = old_id ? p11e_ossl_key_file(path, old_id) : NULL;
		if (!kept) {
			rc = p11e_err_set(err, P11E_ETOKEN,
					  "%s is a regular file with an unknown key; move it away "
					  "first",
					  path);
			goto out;
		}
		if (link(path, kept) != 0 && errno != EEXIST) {
			rc = p11e_err_set(err, P11E_ETOKEN, "cannot keep %s as %s: %s", path, kept,
					  strerror(errno));
			goto out;
		}
	} else {
		rc = p11e_err_set(err, P11E_ETOKEN, "%s exists and is not a key file or link", path);
		goto out;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.link.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
		rc = p11e_err_set(err, P11E_EFAIL, "path too long: %s", path);
		goto out;
	}
	unlink(tmp);
	/* A relative target: the folder can be moved or bind-mounted whole. */
	if (symlink(base, tmp) != 0 || rename(tmp, path) != 0) {
		rc = p11e_err_set(err, P11E_ETOKEN, "cannot point %s at %s: %s", path, base,
				  strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = sync_dir(path, err);
	if (rc == P11E_OK)
		p11e_debug("%s now names %s", path, base);
out:
	free(kept);
	free(copy);
	return rc;
}

/* Makes `link` a symbolic link to basename(file), atomically. */
static p11e_status link_atomic(const char *link, const char *file, struct p11e_err *err)
{
	char *copy = strdup(file), tmp[PATH_MAX];
	p11e_status rc = P11E_OK;

	if (!copy)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	if (snprintf(tmp, sizeof(tmp), "%s.link.%ld", link, (long)getpid()) >= (int)sizeof(tmp)) {
		rc = p11e_err_set(err, P11E_EFAIL, "path too long: %s", link);
		goto out;
	}
	unlink(tmp);
	if (symlink(basename(copy), tmp) != 0 || rename(tmp, link) != 0) {
		rc = p11e_err_set(err, P11E_ETOKEN, "cannot make %s a link to %s: %s", link, file,
				  strerror(errno));
		unlink(tmp);
		goto out;
	}
	rc = sync_dir(link, err);
out:
	free(copy);
	return rc;
}

p11e_status p11e_ossl_alias(const char *path, const char *file,
			    const unsigned char nonce[P11E_OSSLKEY_ID_LEN], struct p11e_err *err)
{
	char *alias = p11e_ossl_key_file(path, nonce);
	p11e_status rc;

	if (!alias)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = link_atomic(alias, file, err);
	free(alias);
	return rc;
}

p11e_status p11e_ossl_drop_aliases(const char *path, const char *file, struct p11e_err *err)
{
	char *pcopy = strdup(path), *fcopy = strdup(file), *folder, *base, *target_base;
	char link[PATH_MAX], target[PATH_MAX];
	p11e_status rc = P11E_OK;
	struct dirent *de;
	struct stat st;
	size_t blen;
	DIR *dir = NULL;
	ssize_t n;

	if (!pcopy || !fcopy) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	target_base = basename(fcopy);
	base = strrchr(path, '/') + 1;
	blen = strlen(base);
	folder = dirname(pcopy);
	dir = opendir(folder);
	if (!dir) {
		rc = p11e_err_set(err, P11E_ETOKEN, "cannot list %s: %s", folder, strerror(errno));
		goto out;
	}
	while ((de = readdir(dir)) != NULL) {
		/* Only BASE.<32 hex digits> links to this key. */
		if (strncmp(de->d_name, base, blen) != 0 || de->d_name[blen] != '.' ||
		    strlen(de->d_name + blen + 1) != 2 * P11E_OSSLKEY_ID_LEN ||
		    strspn(de->d_name + blen + 1, "0123456789abcdef") != 2 * P11E_OSSLKEY_ID_LEN)
			continue;
		snprintf(link, sizeof(link), "%s/%s", folder, de->d_name);
		if (lstat(link, &st) != 0 || !S_ISLNK(st.st_mode))
			continue;
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0 || (target[n] = '\0', strcmp(target, target_base) != 0))
			continue;
		if (unlink(link) != 0) {
			rc = p11e_err_set(err, P11E_ETOKEN, "cannot remove %s: %s", link,
					  strerror(errno));
			goto out;
		}
		p11e_debug("removed rotation alias %s", link);
	}
out:
	if (dir)
		closedir(dir);
	free(pcopy);
	free(fcopy);
	return rc;
}

/* ---- signing --------------------------------------------------------------- */

struct ossl_signer {
	struct p11e_ossl *o;
	struct p11e_osslkey *key;
};

static p11e_status ossl_sign(void *ctx, const unsigned char *digest, size_t digest_len,
			     unsigned char **sig, size_t *sig_len, struct p11e_err *err)
{
	struct ossl_signer *os = ctx;
	const struct p11e_key_spec *spec = os->key->spec;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD *md = NULL;
	p11e_status rc = P11E_OK;
	size_t len = 0;

	*sig = NULL;
	ERR_clear_error();
	pctx = EVP_PKEY_CTX_new_from_pkey(os->o->libctx, os->key->priv, "?provider=tpm2");
	md = EVP_MD_fetch(os->o->libctx, spec->digest, "provider=default");
	if (!pctx || !md || EVP_PKEY_sign_init(pctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(pctx, md) != 1 ||
	    (spec->alg == P11E_ALG_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) ||
	    EVP_PKEY_sign(pctx, NULL, &len, digest, digest_len) != 1 || len == 0) {
		rc = p11e_err_set(err, P11E_ETOKEN, "%s cannot sign with the key in %s", os->o->desc,
				  os->key->file ? os->key->file : "?");
		p11e_err_add_openssl(err);
		goto out;
	}
	*sig = OPENSSL_malloc(len);
	if (!*sig) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	if (EVP_PKEY_sign(pctx, *sig, &len, digest, digest_len) != 1) {
		rc = p11e_err_set(err, P11E_ETOKEN, "%s could not sign with the key in %s",
				  os->o->desc, os->key->file ? os->key->file : "?");
		p11e_err_add_openssl(err);
		goto out;
	}
	*sig_len = len;
out:
	if (rc != P11E_OK) {
		OPENSSL_free(*sig);
		*sig = NULL;
	}
	EVP_MD_free(md);
	EVP_PKEY_CTX_free(pctx);
	return rc;
}

void p11e_ossl_signer(struct p11e_ossl *o, struct p11e_osslkey *key, struct p11e_signer *signer)
{
	/* One signer at a time is all any command needs. */
	static struct ossl_signer os;

	os.o = o;
	os.key = key;
	memset(signer, 0, sizeof(*signer));
	signer->pub = key->pub;
	signer->spec = key->spec;
	/* OpenSSL holds the key: the CSR is signed through it directly. */
	signer->priv = key->priv;
	signer->libctx = o->libctx;
	signer->propq = "?provider=tpm2";
	signer->sign = ossl_sign;
	signer->ctx = &os;
}
