/* SPDX-License-Identifier: Apache-2.0 */
/* PKCS#11 through the module's own function list, loaded by p11-kit.
 *
 * Why not libp11 for the key/certificate objects (as first planned): libp11
 * 0.4.12 loads and initialises the module itself and gives no access to its
 * function list or sessions, yet it cannot generate EC keys or take our key
 * template, so raw C_GenerateKeyPair would need a second owner of the same
 * module instance (two C_Initialize/C_Finalize owners, two views of the
 * login state). One owner, talking PKCS#11 directly, is simpler to reason
 * about on an HSM, and the signing key never needs an OpenSSL ENGINE. */
#include "token.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include <p11-kit/p11-kit.h>

#include "log.h"
#include "secret.h"
#include "util.h"

/* Extra looks for a token that a half-written store hides (0.1+0.2+0.4 s). */
#define P11E_TOKEN_SCAN_RETRIES 3

struct p11e_token {
	const struct p11e_uri *uri; /* borrowed: the caller keeps it while tok lives */
	CK_FUNCTION_LIST **modules; /* everything p11-kit loaded (NULL-terminated) */
	bool single;                /* modules[0] came from module-path */
	CK_FUNCTION_LIST *module;   /* the one holding our token */
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE session;
	bool has_session;
	bool logged_in;
	CK_TOKEN_INFO info;
	char desc[256];
	unsigned generation; /* bumped by every re-open: object handles go stale */
	CK_RV lost_rv;       /* first "session lost" answer since the last check */
};

static CK_BBOOL ck_true = CK_TRUE, ck_false = CK_FALSE;

/* The answers that mean the session (not the request) is gone: a network
 * HSM restarted, a card was pulled, the login was dropped. Worth one
 * re-open and login; anything else is the token's considered answer. */
static bool session_lost(CK_RV rv)
{
	return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_ERROR;
}

/* Notes a lost session so the operation's caller can re-open once. */
static CK_RV ck(struct p11e_token *tok, CK_RV rv)
{
	if (session_lost(rv) && !tok->lost_rv)
		tok->lost_rv = rv;
	return rv;
}

/* Space-padded PKCS#11 text → C string. */
static void padded(char *out, size_t out_len, const unsigned char *in, size_t in_len)
{
	size_t len = in_len;

	while (len > 0 && (in[len - 1] == ' ' || in[len - 1] == '\0'))
		len--;
	if (len >= out_len)
		len = out_len - 1;
	memcpy(out, in, len);
	out[len] = '\0';
}

static void describe(const CK_TOKEN_INFO *info, char *out, size_t len)
{
	char label[33], manuf[33], model[17], serial[17];

	padded(label, sizeof(label), info->label, sizeof(info->label));
	padded(manuf, sizeof(manuf), info->manufacturerID, sizeof(info->manufacturerID));
	padded(model, sizeof(model), info->model, sizeof(info->model));
	padded(serial, sizeof(serial), info->serialNumber, sizeof(info->serialNumber));
	snprintf(out, len, "'%s' (%s %s, serial %s)", label, manuf, model, serial);
}

const char *p11e_token_describe(const struct p11e_token *tok)
{
	return tok->desc;
}

static p11e_status load_modules(struct p11e_token *tok, const struct p11e_uri *uri,
				struct p11e_err *err)
{
	CK_FUNCTION_LIST *mod;
	struct stat st;
	CK_RV rv;

	if (uri->module_path) {
		if (stat(uri->module_path, &st) != 0)
			return p11e_err_set(err, P11E_ETOKEN,
					    "PKCS#11 module %s (module-path in the key URI): %s",
					    uri->module_path, strerror(errno));
		mod = p11_kit_module_load(uri->module_path, 0);
		if (!mod)
			return p11e_err_set(err, P11E_ETOKEN,
					    "cannot load PKCS#11 module %s (module-path in the key "
					    "URI): %s",
					    uri->module_path,
					    p11_kit_message() ? p11_kit_message() : "?");
		rv = p11_kit_module_initialize(mod);
		if (rv != CKR_OK) {
			p11_kit_module_release(mod);
			return p11e_err_set(err, P11E_ETOKEN,
					    "PKCS#11 module %s failed to initialise: %s",
					    uri->module_path, p11_kit_strerror(rv));
		}
		tok->modules = calloc(2, sizeof(*tok->modules));
		if (!tok->modules) {
			p11_kit_module_finalize(mod);
			p11_kit_module_release(mod);
			return p11e_err_set(err, P11E_EFAIL, "out of memory");
		}
		tok->modules[0] = mod;
		tok->single = true;
		return P11E_OK;
	}
	/* module-name or nothing: p11-kit's registry of configured modules. */
	tok->single = false;
	tok->modules = p11_kit_modules_load_and_initialize(0);
	if (!tok->modules)
		return p11e_err_set(err, P11E_ETOKEN, "cannot load the p11-kit registered modules: %s",
				    p11_kit_message() ? p11_kit_message() : "?");
	if (uri->module_name) {
		char names[512] = "";
		bool present = false;

		for (size_t i = 0; tok->modules[i]; i++) {
			char *name = p11_kit_module_get_name(tok->modules[i]);

			if (name && strcmp(name, uri->module_name) == 0)
				present = true;
			if (name && strlen(names) + strlen(name) + 3 < sizeof(names)) {
				if (*names)
					strcat(names, ", ");
				strcat(names, name);
			}
			free(name);
		}
		if (!present)
			return p11e_err_set(err, P11E_ETOKEN,
					    "no p11-kit module named '%s' (module-name in the key "
					    "URI); registered: %s",
					    uri->module_name, *names ? names : "none");
	}
	return P11E_OK;
}

static void unload_modules(struct p11e_token *tok)
{
	if (tok->single && tok->modules) {
		p11_kit_module_finalize(tok->modules[0]);
		p11_kit_module_release(tok->modules[0]);
		free(tok->modules);
	} else if (tok->modules) {
		p11_kit_modules_finalize_and_release(tok->modules);
	}
	tok->modules = NULL;
	tok->module = NULL;
}

static bool module_wanted(CK_FUNCTION_LIST *mod, const struct p11e_uri *uri)
{
	char *name;
	bool wanted;

	if (!uri->module_name)
		return true;
	name = p11_kit_module_get_name(mod);
	wanted = name && strcmp(name, uri->module_name) == 0;
	free(name);
	return wanted;
}

/* The slots with a token, however many (two calls, as PKCS#11 asks);
 * NULL with *n = 0 when the module answers none. */
static CK_SLOT_ID *slot_list(CK_FUNCTION_LIST *mod, CK_ULONG *n)
{
	CK_SLOT_ID *slots = NULL;

	for (int tries = 0; tries < 4; tries++) {
		CK_ULONG want = 0;
		CK_SLOT_ID *more;
		CK_RV rv = mod->C_GetSlotList(CK_TRUE, NULL, &want);

		if (rv != CKR_OK || want == 0)
			break;
		more = realloc(slots, want * sizeof(*slots));
		if (!more)
			break;
		slots = more;
		*n = want;
		rv = mod->C_GetSlotList(CK_TRUE, slots, n);
		if (rv == CKR_OK)
			return slots;
		if (rv != CKR_BUFFER_TOO_SMALL)
			break; /* a slot appeared in between: ask again */
	}
	free(slots);
	*n = 0;
	return NULL;
}

/* One look at the modules' tokens. *unsure: something looked half-made
 * (an unlabelled token, an unreadable slot or slot list, no initialised
 * token at all), which is what a token store being rewritten by another
 * program looks like from here. */
static p11e_status scan_tokens(struct p11e_token *tok, const struct p11e_uri *uri, bool *unsure,
			       struct p11e_err *err)
{
	char seen[768] = "", matched[768] = "";
	size_t n_match = 0, n_seen = 0;

	*unsure = false;
	for (size_t m = 0; tok->modules[m]; m++) {
		CK_FUNCTION_LIST *mod = tok->modules[m];
		CK_SLOT_ID *slots;
		CK_ULONG n = 0;

		if (!module_wanted(mod, uri))
			continue;
		slots = slot_list(mod, &n);
		if (!slots)
			*unsure = true;
		for (CK_ULONG s = 0; s < n; s++) {
			CK_TOKEN_INFO info;
			char desc[160];
			char *list;

			if (mod->C_GetTokenInfo(slots[s], &info) != CKR_OK) {
				*unsure = true;
				continue;
			}
			/* An uninitialised token alone proves nothing: SoftHSM2
			 * always shows a spare one. */
			if (!(info.flags & CKF_TOKEN_INITIALIZED))
				continue;
			if (info.label[0] == ' ' || info.label[0] == '\0')
				*unsure = true;
			n_seen++;
			describe(&info, desc, sizeof(desc));
			list = p11_kit_uri_match_token_info(uri->uri, &info) ? matched : seen;
			if (strlen(list) + strlen(desc) + 3 < sizeof(seen)) {
				if (*list)
					strcat(list, ", ");
				strcat(list, desc);
			}
			if (list == matched) {
				n_match++;
				tok->module = mod;
				tok->slot = slots[s];
				tok->info = info;
				snprintf(tok->desc, sizeof(tok->desc), "%s", desc);
			}
		}
		free(slots);
	}
	if (n_seen == 0)
		*unsure = true;
	if (n_match == 0)
		return p11e_err_set(err, P11E_ETOKEN,
				    "no token matches the key URI; tokens found: %s (check token=, "
				    "serial=, manufacturer=, model= in the URI)",
				    *seen ? seen : "none");
	if (n_match > 1)
		return p11e_err_set(err, P11E_ETOKEN,
				    "%zu tokens match the key URI: %s; add serial= to pick one",
				    n_match, matched);
	return P11E_OK;
}

/* Loads the modules and finds the token. A search that finds nothing
 * while the store looks half-written is tried again with the modules
 * loaded afresh (they may read their store only at initialisation). */
static p11e_status find_token(struct p11e_token *tok, const struct p11e_uri *uri, struct p11e_err *err)
{
	p11e_status rc;
	bool unsure = false;

	for (int attempt = 0;; attempt++) {
		rc = load_modules(tok, uri, err);
		if (rc != P11E_OK)
			return rc;
		rc = scan_tokens(tok, uri, &unsure, err);
		if (rc == P11E_OK || !unsure || attempt == P11E_TOKEN_SCAN_RETRIES ||
		    !strstr(err->msg, "no token matches"))
			return rc;
		p11e_debug("no matching token yet (%s); looking again", err->msg);
		p11e_err_clear(err);
		unload_modules(tok);
		usleep(100000u << attempt);
	}
}

static p11e_status login(struct p11e_token *tok, const struct p11e_uri *uri, struct p11e_err *err)
{
	char *pin = NULL;
	p11e_status rc = P11E_OK;
	CK_RV rv;

	/* A token that needs no login gets none, and no PIN is asked for; a
	 * PIN given anyway is used (it may open private objects). */
	if (!(tok->info.flags & CKF_LOGIN_REQUIRED) && !uri->pin_value && !uri->pin_source)
		return P11E_OK;
	if (uri->pin_value) {
		pin = strdup(uri->pin_value);
		if (!pin)
			return p11e_err_set(err, P11E_EFAIL, "out of memory");
	} else if (uri->pin_source) {
		rc = p11e_secret_read(uri->pin_source, "pin-source", &pin, err);
		if (rc != P11E_OK)
			return rc;
	} else if (!(tok->info.flags & CKF_PROTECTED_AUTHENTICATION_PATH)) {
		return p11e_err_set(err, P11E_EUSAGE,
				    "no PIN for token %s: add pin-source=file:/path/to/pin to the "
				    "key URI",
				    tok->desc);
	}
	if (tok->info.flags & CKF_USER_PIN_LOCKED) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "the user PIN of token %s is locked; reset it with the SO PIN",
				  tok->desc);
		goto out;
	}
	if (tok->info.flags & CKF_USER_PIN_FINAL_TRY) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "token %s allows one more PIN attempt only; p11enroll will not "
				  "risk locking it: log in once by hand to confirm the PIN",
				  tok->desc);
		goto out;
	}
	if (tok->info.flags & CKF_USER_PIN_TO_BE_CHANGED) {
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "the user PIN of token %s must be changed before first use "
				  "(CKF_USER_PIN_TO_BE_CHANGED); change it, e.g. with pkcs11-tool "
				  "--change-pin, and update the pin-source",
				  tok->desc);
		goto out;
	}
	rv = ck(tok, tok->module->C_Login(tok->session, CKU_USER, (CK_UTF8CHAR *)pin,
					  pin ? strlen(pin) : 0));
	switch (rv) {
	case CKR_OK:
	case CKR_USER_ALREADY_LOGGED_IN:
		tok->logged_in = true;
		break;
	case CKR_PIN_INCORRECT:
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "wrong PIN for token %s (from %s); not retried, so the token "
				  "counted one failed attempt",
				  tok->desc, uri->pin_value ? "pin-value" : "pin-source");
		break;
	case CKR_PIN_LOCKED:
		rc = p11e_err_set(err, P11E_ETOKEN, "the user PIN of token %s is locked", tok->desc);
		break;
	case CKR_PIN_EXPIRED:
		rc = p11e_err_set(err, P11E_ETOKEN,
				  "the user PIN of token %s has expired; change it and update the "
				  "pin-source",
				  tok->desc);
		break;
	default:
		rc = p11e_err_set(err, P11E_ETOKEN, "login to token %s failed: %s", tok->desc,
				  p11_kit_strerror(rv));
	}
out:
	p11e_secret_free(pin);
	return rc;
}

/* Ends the session and unloads the modules; the URI stays. */
static void drop(struct p11e_token *tok)
{
	if (tok->has_session) {
		if (tok->logged_in)
			tok->module->C_Logout(tok->session);
		tok->module->C_CloseSession(tok->session);
	}
	tok->has_session = false;
	tok->logged_in = false;
	unload_modules(tok);
}

static p11e_status open_once(struct p11e_token *tok, struct p11e_err *err)
{
	p11e_status rc;
	CK_RV rv;

	drop(tok);
	tok->generation++;
	rc = find_token(tok, tok->uri, err);
	if (rc != P11E_OK)
		return rc;
	rv = ck(tok, tok->module->C_OpenSession(tok->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
						NULL, &tok->session));
	if (rv != CKR_OK)
		return p11e_err_set(err, P11E_ETOKEN, "cannot open a session on token %s: %s",
				    tok->desc, p11_kit_strerror(rv));
	tok->has_session = true;
	return login(tok, tok->uri, err);
}

/* After an operation: when it failed because the session was lost, the
 * token is opened and logged in again, once per operation (a PIN the token
 * refused is never tried again: that is not a lost session), and true
 * asks the caller to run the operation again. */
static bool retry_lost(struct p11e_token *tok, p11e_status *rc, int *attempts, const char *what,
		       struct p11e_err *err)
{
	CK_RV why = tok->lost_rv;
	struct p11e_err reopen = { 0 };
	char first[sizeof(err->msg)];

	tok->lost_rv = 0;
	if (*rc == P11E_OK || !why)
		return false;
	snprintf(first, sizeof(first), "%s", err->msg);
	p11e_err_clear(err);
	if ((*attempts)++ > 0) {
		*rc = p11e_err_set(err, P11E_ETOKEN,
				   "token %s: %s failed again after the session was re-opened "
				   "and logged in again (%s): %s",
				   tok->desc, what, p11_kit_strerror(why), first);
		return false;
	}
	p11e_warn("token %s: the session was lost while %s (%s); opening it again", tok->desc, what,
		  p11_kit_strerror(why));
	if (open_once(tok, &reopen) != P11E_OK) {
		*rc = p11e_err_set(err, P11E_ETOKEN,
				   "the session to token %s was lost while %s (%s) and opening it "
				   "again failed: %s",
				   tok->desc, what, p11_kit_strerror(why), reopen.msg);
		tok->lost_rv = 0;
		return false;
	}
	return true;
}

/* A module that talks to its HSM over a socket (p11-kit-client.so) writes
 * to a dead connection when the server goes away, and SIGPIPE would end
 * p11enroll before the module can answer CKR_DEVICE_ERROR. Ignored while
 * a token is open only, so that hooks start with the usual disposition. */
static int sigpipe_users;
static struct sigaction sigpipe_saved;

static void sigpipe_ignore(void)
{
	struct sigaction ign;

	if (sigpipe_users++ > 0)
		return;
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &sigpipe_saved);
}

static void sigpipe_restore(void)
{
	if (sigpipe_users > 0 && --sigpipe_users == 0)
		sigaction(SIGPIPE, &sigpipe_saved, NULL);
}

p11e_status p11e_token_open(const struct p11e_uri *uri, struct p11e_token **out, struct p11e_err *err)
{
	struct p11e_token *tok = calloc(1, sizeof(*tok));
	p11e_status rc;
	int attempts = 0;

	*out = NULL;
	if (!tok)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	tok->uri = uri;
	sigpipe_ignore();
	rc = open_once(tok, err);
	/* retry_lost's own re-open is the one retry here. */
	if (retry_lost(tok, &rc, &attempts, "opening the session and logging in", err))
		rc = P11E_OK;
	if (rc != P11E_OK)
		goto out;
	p11e_debug("token %s: %s", tok->desc, tok->logged_in ? "logged in" : "no login needed");
	*out = tok;
	tok = NULL;
out:
	p11e_token_close(tok);
	return rc;
}

void p11e_token_close(struct p11e_token *tok)
{
	if (!tok)
		return;
	drop(tok);
	if (tok->uri)
		sigpipe_restore();
	free(tok);
}

/* ---- mechanisms ------------------------------------------------------------ */

static bool mech_ok(struct p11e_token *tok, CK_MECHANISM_TYPE type, CK_FLAGS need, unsigned bits,
		    CK_MECHANISM_INFO *mi)
{
	if (ck(tok, tok->module->C_GetMechanismInfo(tok->slot, type, mi)) != CKR_OK)
		return false;
	if ((mi->flags & need) != need)
		return false;
	/* 0 as maximum means "not stated"; do not hold it against the token. */
	if (bits && mi->ulMaxKeySize && (bits < mi->ulMinKeySize || bits > mi->ulMaxKeySize))
		return false;
	return true;
}

/* The hash-and-sign mechanism for the spec's digest. */
static CK_MECHANISM_TYPE hash_and_sign(const struct p11e_key_spec *spec)
{
	bool sha384 = strcmp(spec->digest, "SHA384") == 0;

	if (spec->alg == P11E_ALG_RSA)
		return sha384 ? CKM_SHA384_RSA_PKCS : CKM_SHA256_RSA_PKCS;
	return sha384 ? CKM_ECDSA_SHA384 : CKM_ECDSA_SHA256;
}

/* Key-pair generation, and signing by either the raw mechanism (we hash)
 * or the hash-and-sign one (the token hashes): some tokens have only one. */
static bool spec_supported(struct p11e_token *tok, const struct p11e_key_spec *spec)
{
	CK_MECHANISM_INFO mi;
	bool rsa = spec->alg == P11E_ALG_RSA;

	if (!mech_ok(tok, rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR,
		     spec->bits, &mi))
		return false;
	return mech_ok(tok, rsa ? CKM_RSA_PKCS : CKM_ECDSA, CKF_SIGN, spec->bits, &mi) ||
	       mech_ok(tok, hash_and_sign(spec), CKF_SIGN, spec->bits, &mi);
}

static p11e_status supports_once(struct p11e_token *tok, const struct p11e_key_spec *spec,
				 struct p11e_err *err)
{
	static const char *const all[] = { "rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p384" };
	char can[128] = "";
	CK_MECHANISM_INFO mi;
	char range[96] = "";

	if (spec_supported(tok, spec))
		return P11E_OK;
	/* Not "cannot": the token did not answer. */
	if (tok->lost_rv)
		return p11e_err_set(err, P11E_ETOKEN, "cannot ask token %s for its mechanisms: %s",
				    tok->desc, p11_kit_strerror(tok->lost_rv));
	for (size_t i = 0; i < 5; i++) {
		const struct p11e_key_spec *other;
		struct p11e_err ignore = { 0 };

		if (p11e_policy_parse(all[i], &other, &ignore) == P11E_OK &&
		    spec_supported(tok, other)) {
			if (*can)
				strcat(can, ", ");
			strcat(can, all[i]);
		}
	}
	if (tok->module->C_GetMechanismInfo(tok->slot,
					    spec->alg == P11E_ALG_RSA ? CKM_RSA_PKCS_KEY_PAIR_GEN
								      : CKM_EC_KEY_PAIR_GEN,
					    &mi) == CKR_OK)
		snprintf(range, sizeof(range), "; it reports %s key sizes %lu–%lu bits",
			 spec->alg == P11E_ALG_RSA ? "RSA" : "EC", (unsigned long)mi.ulMinKeySize,
			 (unsigned long)mi.ulMaxKeySize);
	else
		snprintf(range, sizeof(range), "; it has no %s key-pair generation",
			 spec->alg == P11E_ALG_RSA ? "RSA" : "EC");
	return p11e_err_set(err, P11E_ETOKEN,
			    "token %s cannot make %s keys%s; of the allowed types it can make: %s",
			    tok->desc, spec->name, range, *can ? can : "none");
}

p11e_status p11e_token_supports(struct p11e_token *tok, const struct p11e_key_spec *spec,
				struct p11e_err *err)
{
	int attempts = 0;
	p11e_status rc;

	do
		rc = supports_once(tok, spec, err);
	while (retry_lost(tok, &rc, &attempts, "asking for its mechanisms", err));
	return rc;
}

/* ---- objects --------------------------------------------------------------- */

/* Reads one attribute; *value is malloc'd (NULL for an empty value). */
static CK_RV get_attr(struct p11e_token *tok, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
		      unsigned char **value, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	*value = NULL;
	*len = 0;
	rv = ck(tok, tok->module->C_GetAttributeValue(tok->session, obj, &a, 1));
	if (rv != CKR_OK)
		return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
		return CKR_ATTRIBUTE_TYPE_INVALID;
	if (a.ulValueLen == 0)
		return CKR_OK;
	a.pValue = malloc(a.ulValueLen);
	if (!a.pValue)
		return CKR_HOST_MEMORY;
	rv = ck(tok, tok->module->C_GetAttributeValue(tok->session, obj, &a, 1));
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*value = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

static bool get_bool(struct p11e_token *tok, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	return ck(tok, tok->module->C_GetAttributeValue(tok->session, obj, &a, 1)) == CKR_OK &&
	       v == CK_TRUE;
}

/* Up to `max` handles of objects matching the template. */
static CK_RV find_objects(struct p11e_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n_tmpl,
			  CK_OBJECT_HANDLE *found, CK_ULONG max, CK_ULONG *n_found)
{
	CK_RV rv = ck(tok, tok->module->C_FindObjectsInit(tok->session, tmpl, n_tmpl));

	*n_found = 0;
	if (rv != CKR_OK)
		return rv;
	rv = ck(tok, tok->module->C_FindObjects(tok->session, found, max, n_found));
	ck(tok, tok->module->C_FindObjectsFinal(tok->session));
	return rv;
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
		EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *rsa_public(struct p11e_token *tok, CK_OBJECT_HANDLE obj)
{
	unsigned char *n = NULL, *e = NULL;
	CK_ULONG n_len, e_len;
	BIGNUM *bn_n = NULL, *bn_e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;

	if (get_attr(tok, obj, CKA_MODULUS, &n, &n_len) != CKR_OK || !n ||
	    get_attr(tok, obj, CKA_PUBLIC_EXPONENT, &e, &e_len) != CKR_OK || !e)
		goto out;
	bn_n = BN_bin2bn(n, (int)n_len, NULL);
	bn_e = BN_bin2bn(e, (int)e_len, NULL);
	bld = OSSL_PARAM_BLD_new();
	if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
		goto out;
	pkey = pkey_from_params("RSA", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	free(n);
	free(e);
	return pkey;
}

static EVP_PKEY *ec_public(struct p11e_token *tok, CK_OBJECT_HANDLE obj)
{
	unsigned char *params = NULL, *point = NULL;
	CK_ULONG params_len, point_len;
	const unsigned char *p;
	ASN1_OBJECT *oid = NULL;
	ASN1_OCTET_STRING *os = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	const unsigned char *raw;
	size_t raw_len;
	int nid;

	if (get_attr(tok, obj, CKA_EC_PARAMS, &params, &params_len) != CKR_OK || !params ||
	    get_attr(tok, obj, CKA_EC_POINT, &point, &point_len) != CKR_OK || !point)
		goto out;
	p = params;
	oid = d2i_ASN1_OBJECT(NULL, &p, (long)params_len);
	nid = oid ? OBJ_obj2nid(oid) : NID_undef;
	if (nid == NID_undef)
		goto out;
	/* PKCS#11 wants the point DER-wrapped in an OCTET STRING; some tokens
	 * hand out the bare point. */
	p = point;
	os = d2i_ASN1_OCTET_STRING(NULL, &p, (long)point_len);
	if (os && p == point + point_len) {
		raw = ASN1_STRING_get0_data(os);
		raw_len = (size_t)ASN1_STRING_length(os);
	} else {
		raw = point;
		raw_len = point_len;
	}
	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, OBJ_nid2sn(nid), 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, raw, raw_len))
		goto out;
	pkey = pkey_from_params("EC", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	ASN1_OCTET_STRING_free(os);
	ASN1_OBJECT_free(oid);
	free(params);
	free(point);
	return pkey;
}

/* Fills key->* from the private key object `priv`; `pub`, when known (just
 * generated), spares a search for its twin: on SoftHSM2's file store every
 * search re-reads all the token's objects (docs/tokens.md). */
static p11e_status load_key(struct p11e_token *tok, CK_OBJECT_HANDLE priv, CK_OBJECT_HANDLE pub,
			    struct p11e_key *key, struct p11e_err *err)
{
	CK_OBJECT_CLASS pub_class = CKO_PUBLIC_KEY;
	CK_ATTRIBUTE tmpl[2] = { { CKA_CLASS, &pub_class, sizeof(pub_class) }, { CKA_ID, NULL, 0 } };
	CK_OBJECT_HANDLE pubs[2];
	CK_ULONG n_pub = 0, len = 0;
	CK_KEY_TYPE key_type = 0;
	CK_ATTRIBUTE type_attr = { CKA_KEY_TYPE, &key_type, sizeof(key_type) };
	unsigned char *value = NULL;
	CK_OBJECT_HANDLE source;

	key->priv = priv;
	key->pub = pub;
	key->generation = tok->generation;
	if (get_attr(tok, priv, CKA_ID, &value, &len) == CKR_OK && len <= sizeof(key->id)) {
		memcpy(key->id, value, len);
		key->id_len = len;
	}
	free(value);
	if (get_attr(tok, priv, CKA_LABEL, &value, &len) == CKR_OK && len < sizeof(key->label)) {
		memcpy(key->label, value, len);
		key->label[len] = '\0';
	}
	free(value);
	key->sensitive = get_bool(tok, priv, CKA_SENSITIVE);
	key->always_sensitive = get_bool(tok, priv, CKA_ALWAYS_SENSITIVE);
	key->extractable = get_bool(tok, priv, CKA_EXTRACTABLE);
	key->never_extractable = get_bool(tok, priv, CKA_NEVER_EXTRACTABLE);
	key->local = get_bool(tok, priv, CKA_LOCAL);
	if (ck(tok, tok->module->C_GetAttributeValue(tok->session, priv, &type_attr, 1)) != CKR_OK)
		return p11e_err_set(err, P11E_ETOKEN, "cannot read the key type of '%s'", key->label);
	tmpl[1].pValue = key->id;
	tmpl[1].ulValueLen = key->id_len;
	if (pub == CK_INVALID_HANDLE && find_objects(tok, tmpl, 2, pubs, 2, &n_pub) == CKR_OK &&
	    n_pub >= 1)
		key->pub = pubs[0];
	/* RSA tokens usually expose n and e on the private object too; an EC
	 * private object has no point, so it needs its public twin. */
	source = key->pub != CK_INVALID_HANDLE ? key->pub : priv;
	if (key_type == CKK_RSA)
		key->pub_pkey = rsa_public(tok, source);
	else if (key_type == CKK_EC)
		key->pub_pkey = ec_public(tok, source);
	else
		return p11e_err_set(err, P11E_ETOKEN,
				    "the key '%s' on token %s is of PKCS#11 key type 0x%lx, which "
				    "the policy does not allow (allowed: %s)",
				    key->label, tok->desc, (unsigned long)key_type,
				    p11e_policy_allowed());
	if (tok->lost_rv)
		return p11e_err_set(err, P11E_ETOKEN, "cannot read the key '%s' on token %s: %s",
				    key->label, tok->desc, p11_kit_strerror(tok->lost_rv));
	if (!key->pub_pkey)
		return p11e_err_set(err, P11E_ETOKEN,
				    "cannot read the public key of '%s' on token %s (no public key "
				    "object with the same CKA_ID?)",
				    key->label, tok->desc);
	return p11e_policy_classify(key->pub_pkey, &key->spec, err);
}

static p11e_status find_key_once(struct p11e_token *tok, const char *label, const unsigned char *id,
				 size_t id_len, struct p11e_key *key, bool *found,
				 struct p11e_err *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[3] = { { CKA_CLASS, &cls, sizeof(cls) } };
	CK_ULONG n_tmpl = 1, n = 0;
	CK_OBJECT_HANDLE objs[3];
	p11e_status rc;
	CK_RV rv;

	memset(key, 0, sizeof(*key));
	*found = false;
	if (label)
		tmpl[n_tmpl++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
	if (id && id_len)
		tmpl[n_tmpl++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
	rv = find_objects(tok, tmpl, n_tmpl, objs, 3, &n);
	if (rv != CKR_OK)
		return p11e_err_set(err, P11E_ETOKEN, "cannot search token %s: %s", tok->desc,
				    p11_kit_strerror(rv));
	if (n == 0)
		return P11E_OK;
	if (n > 1)
		return p11e_err_set(err, P11E_ETOKEN,
				    "%s private keys on token %s match label '%s'; add id= to the "
				    "key URI to pick one",
				    n > 2 ? "several" : "two", tok->desc, label ? label : "");
	rc = load_key(tok, objs[0], CK_INVALID_HANDLE, key, err);
	if (rc != P11E_OK) {
		p11e_key_clear(key);
		return rc;
	}
	*found = true;
	return P11E_OK;
}

p11e_status p11e_token_find_key(struct p11e_token *tok, const char *label, const unsigned char *id,
				size_t id_len, struct p11e_key *key, bool *found, struct p11e_err *err)
{
	int attempts = 0;
	p11e_status rc;

	do
		rc = find_key_once(tok, label, id, id_len, key, found, err);
	while (retry_lost(tok, &rc, &attempts, "looking up the key", err));
	return rc;
}

void p11e_key_clear(struct p11e_key *key)
{
	EVP_PKEY_free(key->pub_pkey);
	memset(key, 0, sizeof(*key));
}

/* What a key made by us must show: SENSITIVE and not EXTRACTABLE (it
 * cannot leave now), ALWAYS_SENSITIVE and NEVER_EXTRACTABLE (it never
 * could). CKA_LOCAL is not insisted on: NSS softokn reports it false for
 * the pair it has just made, and that we made it is known without asking
 * (docs/tokens.md). */
static p11e_status check_generated(struct p11e_token *tok, const struct p11e_key_spec *spec,
				   const struct p11e_key *key, struct p11e_err *err)
{
	if (!(key->sensitive && key->always_sensitive && !key->extractable && key->never_extractable))
		return p11e_err_set(err, P11E_ETOKEN,
				    "token %s generated a key that is not protected as asked "
				    "(CKA_SENSITIVE=%d CKA_ALWAYS_SENSITIVE=%d CKA_EXTRACTABLE=%d "
				    "CKA_NEVER_EXTRACTABLE=%d); it was destroyed",
				    tok->desc, key->sensitive, key->always_sensitive, key->extractable,
				    key->never_extractable);
	if (key->spec != spec)
		return p11e_err_set(err, P11E_ETOKEN,
				    "token %s generated a %s key when %s was asked; it was destroyed",
				    tok->desc, key->spec ? key->spec->name : "different", spec->name);
	if (!key->local)
		p11e_debug("token %s reports CKA_LOCAL=false for the key it has just generated",
			   tok->desc);
	return P11E_OK;
}

static p11e_status generate_once(struct p11e_token *tok, const struct p11e_key_spec *spec,
				 const char *label, const unsigned char *id, size_t id_len,
				 struct p11e_key *key, struct p11e_err *err)
{
	unsigned char *ec_params = NULL;
	CK_ULONG bits = spec->bits;
	CK_BYTE exponent[] = { 0x01, 0x00, 0x01 };
	CK_MECHANISM mech = { spec->alg == P11E_ALG_RSA ? CKM_RSA_PKCS_KEY_PAIR_GEN
							: CKM_EC_KEY_PAIR_GEN,
			      NULL, 0 };
	CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
	CK_ATTRIBUTE pub_tmpl[8], priv_tmpl[12];
	CK_ULONG n_pub = 0, n_priv = 0;
	p11e_status rc;
	int params_len;
	CK_RV rv;

	memset(key, 0, sizeof(*key));
	/* No CKA_VERIFY/CKA_ENCRYPT on the public half: tpm2-pkcs11 maps them
	 * onto the one TPM key's attributes (VERIFY = decrypt, ENCRYPT = sign),
	 * so VERIFY=true would contradict DECRYPT=false below and ENCRYPT=false
	 * would take away signing; it refuses such a pair. Public-key usage
	 * grants nothing secret, so the token's defaults are fine. */
	pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_TOKEN, &ck_true, sizeof(ck_true) };
	pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_WRAP, &ck_false, sizeof(ck_false) };
	pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
	pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
	if (spec->alg == P11E_ALG_RSA) {
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &bits, sizeof(bits) };
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent) };
	} else {
		params_len = i2d_ASN1_OBJECT(OBJ_nid2obj(spec->curve_nid), &ec_params);
		if (params_len <= 0)
			return p11e_err_set(err, P11E_EFAIL, "cannot encode the curve of %s",
					    spec->name);
		pub_tmpl[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, ec_params, (CK_ULONG)params_len };
	}
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_TOKEN, &ck_true, sizeof(ck_true) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &ck_true, sizeof(ck_true) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &ck_true, sizeof(ck_true) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &ck_false, sizeof(ck_false) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_SIGN, &ck_true, sizeof(ck_true) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_DECRYPT, &ck_false, sizeof(ck_false) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_UNWRAP, &ck_false, sizeof(ck_false) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_DERIVE, &ck_false, sizeof(ck_false) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
	priv_tmpl[n_priv++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_len };
	rv = ck(tok, tok->module->C_GenerateKeyPair(tok->session, &mech, pub_tmpl, n_pub, priv_tmpl,
						    n_priv, &pub, &priv));
	OPENSSL_free(ec_params);
	if (rv != CKR_OK)
		return p11e_err_set(err, P11E_ETOKEN, "token %s refused to generate a %s key: %s",
				    tok->desc, spec->name, p11_kit_strerror(rv));
	rc = load_key(tok, priv, pub, key, err);
	if (rc == P11E_OK)
		rc = check_generated(tok, spec, key, err);
	if (rc != P11E_OK && tok->lost_rv) {
		/* Read back over a lost session: the retry finds it by id. */
		p11e_key_clear(key);
	} else if (rc != P11E_OK) {
		/* Nothing half-made stays on the token. */
		ck(tok, tok->module->C_DestroyObject(tok->session, priv));
		if (pub != CK_INVALID_HANDLE)
			ck(tok, tok->module->C_DestroyObject(tok->session, pub));
		p11e_key_clear(key);
	}
	return rc;
}

p11e_status p11e_token_generate(struct p11e_token *tok, const struct p11e_key_spec *spec,
				const char *label, const unsigned char *id, size_t id_len,
				struct p11e_key *key, struct p11e_err *err)
{
	unsigned char random_id[16];
	bool found = false;
	int attempts = 0;
	p11e_status rc;

	memset(key, 0, sizeof(*key));
	rc = p11e_token_supports(tok, spec, err);
	if (rc != P11E_OK)
		return rc;
	if (!id || !id_len) {
		if (RAND_bytes(random_id, sizeof(random_id)) != 1)
			return p11e_err_set(err, P11E_EFAIL, "no randomness for the key id");
		id = random_id;
		id_len = sizeof(random_id);
	}
	for (;;) {
		/* After a lost session the pair may have been made all the same:
		 * look for its id first, so that there is never a second one. */
		if (attempts > 0) {
			rc = find_key_once(tok, NULL, id, id_len, key, &found, err);
			if (rc == P11E_OK && found)
				rc = check_generated(tok, spec, key, err);
			if (rc != P11E_OK && found) {
				ck(tok, tok->module->C_DestroyObject(tok->session, key->priv));
				if (key->pub != CK_INVALID_HANDLE)
					ck(tok, tok->module->C_DestroyObject(tok->session, key->pub));
				p11e_key_clear(key);
			}
		}
		if (rc == P11E_OK && !found)
			rc = generate_once(tok, spec, label, id, id_len, key, err);
		if (!retry_lost(tok, &rc, &attempts, "generating the key pair", err))
			return rc;
		rc = P11E_OK;
	}
}

static CK_RV destroy_matching(struct p11e_token *tok, CK_ATTRIBUTE *tmpl, CK_ULONG n_tmpl,
			      CK_OBJECT_HANDLE keep)
{
	CK_OBJECT_HANDLE objs[64];
	CK_ULONG n = 0;
	CK_RV rv = find_objects(tok, tmpl, n_tmpl, objs, 64, &n);

	for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++)
		if (objs[i] != keep)
			rv = ck(tok, tok->module->C_DestroyObject(tok->session, objs[i]));
	return rv;
}

p11e_status p11e_token_destroy_key(struct p11e_token *tok, struct p11e_key *key, struct p11e_err *err)
{
	CK_ATTRIBUTE tmpl[1] = { { CKA_ID, key->id, key->id_len } };
	p11e_status rc;
	int attempts = 0;
	CK_RV rv;

	if (!key->id_len)
		return p11e_err_set(err, P11E_ETOKEN, "refusing to destroy a key without CKA_ID");
	do {
		rc = P11E_OK;
		rv = destroy_matching(tok, tmpl, 1, CK_INVALID_HANDLE);
		if (rv != CKR_OK)
			rc = p11e_err_set(err, P11E_ETOKEN, "cannot remove key '%s' from token %s: %s",
					  key->label, tok->desc, p11_kit_strerror(rv));
	} while (retry_lost(tok, &rc, &attempts, "removing a key", err));
	if (rc == P11E_OK)
		p11e_key_clear(key);
	return rc;
}

/* ---- signing --------------------------------------------------------------- */

struct token_signer {
	struct p11e_token *tok;
	struct p11e_key *key;
};

/* DER prefix of DigestInfo for PKCS#1 v1.5 (RFC 8017 §9.2 note 1). */
static const unsigned char sha256_info[] = { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
					     0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
					     0x01, 0x05, 0x00, 0x04, 0x20 };
static const unsigned char sha384_info[] = { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60,
					     0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
					     0x02, 0x05, 0x00, 0x04, 0x30 };

/* Object handles belong to a session generation: after a re-open the
 * private key is looked up again by its CKA_ID. */
static CK_RV fresh_handle(struct p11e_token *tok, struct p11e_key *key)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[2] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_ID, key->id, key->id_len } };
	CK_OBJECT_HANDLE obj;
	CK_ULONG n = 0;
	CK_RV rv;

	if (key->generation == tok->generation)
		return CKR_OK;
	rv = find_objects(tok, tmpl, 2, &obj, 1, &n);
	if (rv != CKR_OK)
		return rv;
	if (n != 1)
		return CKR_KEY_HANDLE_INVALID;
	key->priv = obj;
	key->generation = tok->generation;
	return CKR_OK;
}

/* C_Sign with the size asked first: no guessing how long a signature is. */
static CK_RV sign_raw(struct p11e_token *tok, struct p11e_key *key, CK_MECHANISM_TYPE type,
		      const unsigned char *in, size_t in_len, unsigned char **out, CK_ULONG *out_len)
{
	CK_MECHANISM mech = { type, NULL, 0 };
	CK_RV rv = fresh_handle(tok, key);

	*out = NULL;
	*out_len = 0;
	if (rv == CKR_OK)
		rv = ck(tok, tok->module->C_SignInit(tok->session, &mech, key->priv));
	if (rv == CKR_OK)
		rv = ck(tok,
			tok->module->C_Sign(tok->session, (CK_BYTE_PTR)in, in_len, NULL, out_len));
	if (rv == CKR_OK && (*out_len == 0 || *out_len > 4096))
		rv = CKR_GENERAL_ERROR;
	if (rv == CKR_OK) {
		*out = OPENSSL_malloc(*out_len);
		if (!*out)
			return CKR_HOST_MEMORY;
		rv = ck(tok,
			tok->module->C_Sign(tok->session, (CK_BYTE_PTR)in, in_len, *out, out_len));
	}
	if (rv != CKR_OK) {
		OPENSSL_free(*out);
		*out = NULL;
	}
	return rv;
}

/* PKCS#11 gives ECDSA as r||s; X.509 wants ECDSA-Sig-Value. */
static bool ecdsa_to_der(const unsigned char *raw, size_t raw_len, unsigned char **der,
			 size_t *der_len)
{
	ECDSA_SIG *ecdsa = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, (int)(raw_len / 2), NULL);
	BIGNUM *s = BN_bin2bn(raw + raw_len / 2, (int)(raw_len / 2), NULL);
	bool ok = false;
	int len;

	*der = NULL;
	if (ecdsa && r && s && raw_len && !(raw_len % 2) && ECDSA_SIG_set0(ecdsa, r, s)) {
		r = s = NULL;
		len = i2d_ECDSA_SIG(ecdsa, der);
		ok = len > 0;
		*der_len = ok ? (size_t)len : 0;
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(ecdsa);
	return ok;
}

/* One signature with `type` over `in`, in X.509 encoding, re-opening a
 * lost session once. */
static p11e_status sign_with(struct token_signer *ts, CK_MECHANISM_TYPE type, const unsigned char *in,
			     size_t in_len, unsigned char **sig, size_t *sig_len, struct p11e_err *err)
{
	struct p11e_token *tok = ts->tok;
	unsigned char *raw = NULL;
	CK_ULONG raw_len = 0;
	p11e_status rc;
	int attempts = 0;
	CK_RV rv;

	do {
		rc = P11E_OK;
		rv = sign_raw(tok, ts->key, type, in, in_len, &raw, &raw_len);
		if (rv != CKR_OK)
			rc = p11e_err_set(err, P11E_ETOKEN, "token %s could not sign with '%s': %s",
					  tok->desc, ts->key->label, p11_kit_strerror(rv));
	} while (retry_lost(tok, &rc, &attempts, "signing", err));
	if (rc != P11E_OK)
		return rc;
	if (ts->key->spec->alg == P11E_ALG_RSA) {
		*sig = raw;
		*sig_len = raw_len;
		return P11E_OK;
	}
	if (!ecdsa_to_der(raw, raw_len, sig, sig_len))
		rc = p11e_err_set(err, P11E_ETOKEN, "token %s returned a malformed ECDSA signature",
				  tok->desc);
	OPENSSL_free(raw);
	return rc;
}

/* The digest is ours: CKM_RSA_PKCS over a DigestInfo, or CKM_ECDSA. */
static p11e_status token_sign(void *ctx, const unsigned char *digest, size_t digest_len,
			      unsigned char **sig, size_t *sig_len, struct p11e_err *err)
{
	struct token_signer *ts = ctx;
	unsigned char input[sizeof(sha384_info) + 64];
	size_t input_len = digest_len;

	if (digest_len > 64)
		return p11e_err_set(err, P11E_EFAIL, "digest too long");
	if (ts->key->spec->alg == P11E_ALG_RSA) {
		const unsigned char *info = digest_len == 48 ? sha384_info : sha256_info;

		memcpy(input, info, sizeof(sha256_info));
		memcpy(input + sizeof(sha256_info), digest, digest_len);
		input_len = sizeof(sha256_info) + digest_len;
		return sign_with(ts, CKM_RSA_PKCS, input, input_len, sig, sig_len, err);
	}
	return sign_with(ts, CKM_ECDSA, digest, digest_len, sig, sig_len, err);
}

/* The token hashes: CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA384, ... */
static p11e_status token_sign_data(void *ctx, const unsigned char *data, size_t data_len,
				   unsigned char **sig, size_t *sig_len, struct p11e_err *err)
{
	struct token_signer *ts = ctx;

	return sign_with(ts, hash_and_sign(ts->key->spec), data, data_len, sig, sig_len, err);
}

void p11e_token_signer(struct p11e_token *tok, struct p11e_key *key, struct p11e_signer *signer)
{
	/* One signer per token handle is all any command needs. */
	static struct token_signer ts;
	CK_MECHANISM_INFO mi;

	ts.tok = tok;
	ts.key = key;
	memset(signer, 0, sizeof(*signer));
	signer->pub = key->pub_pkey;
	signer->spec = key->spec;
	signer->sign = token_sign;
	signer->ctx = &ts;
	/* The token hashes when it has the hash-and-sign mechanism: one call
	 * that names the whole signature, and some tokens (tpm2-pkcs11)
	 * implement CKM_RSA_PKCS on a digest as a decryption, which our
	 * sign-only keys are not allowed to do. Else the raw mechanism over
	 * our digest (SoftHSM2 has no CKM_ECDSA_SHA256, opencryptoki no
	 * CKM_SHA256_RSA_PKCS: docs/tokens.md). */
	if (mech_ok(tok, hash_and_sign(key->spec), CKF_SIGN, key->spec->bits, &mi))
		signer->sign_data = token_sign_data;
}

/* ---- certificate objects --------------------------------------------------- */

static CK_RV create_cert(struct p11e_token *tok, X509 *cert, const char *label,
			 const unsigned char *id, size_t id_len, CK_ULONG category,
			 CK_OBJECT_HANDLE *handle)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_CERTIFICATE_TYPE ctype = CKC_X_509;
	unsigned char *value = NULL, *subject = NULL, *issuer = NULL, *serial = NULL;
	int value_len = i2d_X509(cert, &value);
	int subject_len = i2d_X509_NAME(X509_get_subject_name(cert), &subject);
	int issuer_len = i2d_X509_NAME(X509_get_issuer_name(cert), &issuer);
	int serial_len = i2d_ASN1_INTEGER(X509_get_serialNumber(cert), &serial);
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_CERTIFICATE_TYPE, &ctype, sizeof(ctype) },
		{ CKA_TOKEN, &ck_true, sizeof(ck_true) },
		{ CKA_PRIVATE, &ck_false, sizeof(ck_false) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_ID, (void *)id, id_len },
		{ CKA_VALUE, value, (CK_ULONG)value_len },
		{ CKA_SUBJECT, subject, (CK_ULONG)subject_len },
		{ CKA_ISSUER, issuer, (CK_ULONG)issuer_len },
		{ CKA_SERIAL_NUMBER, serial, (CK_ULONG)serial_len },
		{ CKA_CERTIFICATE_CATEGORY, &category, sizeof(category) },
	};
	CK_ULONG n = sizeof(tmpl) / sizeof(tmpl[0]);
	CK_RV rv = CKR_HOST_MEMORY;

	if (value_len > 0 && subject_len > 0 && issuer_len > 0 && serial_len > 0) {
		rv = ck(tok, tok->module->C_CreateObject(tok->session, tmpl, n, handle));
		/* CKA_CERTIFICATE_CATEGORY is v2.20+; older tokens refuse it. */
		if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID ||
		    rv == CKR_TEMPLATE_INCONSISTENT)
			rv = ck(tok, tok->module->C_CreateObject(tok->session, tmpl, n - 1, handle));
	}
	OPENSSL_free(value);
	OPENSSL_free(subject);
	OPENSSL_free(issuer);
	OPENSSL_free(serial);
	return rv;
}

static bool cert_present(struct p11e_token *tok, X509 *cert)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	unsigned char *der = NULL;
	int len = i2d_X509(cert, &der);
	CK_ATTRIBUTE tmpl[2] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_VALUE, der, (CK_ULONG)len } };
	CK_OBJECT_HANDLE obj;
	CK_ULONG n = 0;

	if (len > 0)
		find_objects(tok, tmpl, 2, &obj, 1, &n);
	OPENSSL_free(der);
	return n > 0;
}

static p11e_status store_chain_once(struct p11e_token *tok, const struct p11e_key *key, X509 *leaf,
				    STACK_OF(X509) * cas, struct p11e_err *err)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE old[2] = { { CKA_CLASS, &cls, sizeof(cls) },
				{ CKA_ID, (void *)key->id, key->id_len } };
	CK_OBJECT_HANDLE created = CK_INVALID_HANDLE;
	CK_RV rv;

	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);
		unsigned char ca_id[EVP_MAX_MD_SIZE];
		unsigned int ca_id_len = 0;
		char label[128] = "CA certificate";
		CK_OBJECT_HANDLE h;

		if (cert_present(tok, ca))
			continue;
		X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName, label,
					  sizeof(label));
		/* CA objects get the SHA-1 of their public key as CKA_ID, the
		 * usual convention, so they never collide with our key ids. */
		X509_pubkey_digest(ca, EVP_sha1(), ca_id, &ca_id_len);
		rv = create_cert(tok, ca, label, ca_id, ca_id_len, 2, &h);
		if (rv != CKR_OK)
			return p11e_err_set(err, P11E_ETOKEN,
					    "cannot store CA certificate '%s' on token %s: %s", label,
					    tok->desc, p11_kit_strerror(rv));
	}
	if (!cert_present(tok, leaf)) {
		rv = create_cert(tok, leaf, key->label, key->id, key->id_len, 1, &created);
		if (rv != CKR_OK)
			return p11e_err_set(err, P11E_ETOKEN,
					    "cannot store the certificate beside key '%s' on token "
					    "%s: %s",
					    key->label, tok->desc, p11_kit_strerror(rv));
	} else {
		/* Already there (a rerun): keep that object, drop any other. */
		unsigned char *der = NULL;
		int len = i2d_X509(leaf, &der);
		CK_ATTRIBUTE same[3] = { old[0], old[1], { CKA_VALUE, der, (CK_ULONG)len } };
		CK_ULONG n = 0;

		find_objects(tok, same, 3, &created, 1, &n);
		OPENSSL_free(der);
	}
	/* Only now that the new object exists do the old ones go. */
	rv = destroy_matching(tok, old, 2, created);
	if (rv != CKR_OK)
		return p11e_err_set(err, P11E_ETOKEN,
				    "stored the new certificate but could not remove the old one "
				    "from token %s: %s",
				    tok->desc, p11_kit_strerror(rv));
	return P11E_OK;
}

p11e_status p11e_token_store_chain(struct p11e_token *tok, const struct p11e_key *key, X509 *leaf,
				   STACK_OF(X509) * cas, struct p11e_err *err)
{
	int attempts = 0;
	p11e_status rc;

	/* Idempotent (objects already there are kept), so safe to run again. */
	do
		rc = store_chain_once(tok, key, leaf, cas, err);
	while (retry_lost(tok, &rc, &attempts, "storing the certificate objects", err));
	return rc;
}

int p11e_token_count_certs(struct p11e_token *tok, const struct p11e_key *key)
{
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE tmpl[2] = { { CKA_CLASS, &cls, sizeof(cls) },
				 { CKA_ID, (void *)key->id, key->id_len } };
	CK_OBJECT_HANDLE objs[64];
	CK_ULONG n = 0;

	if (find_objects(tok, tmpl, 2, objs, 64, &n) != CKR_OK)
		return -1;
	return (int)n;
}
