/* SPDX-License-Identifier: Apache-2.0 */
/* A PKCS#11 module for tests only: one token (label "mock", PIN 1234 unless
 * told otherwise), objects in memory for the life of the process, real
 * signatures made with OpenSSL so that CSRs verify, and faults on demand.
 *
 * Told what to do by the environment variable MOCKP11, read at every call
 * (so a test changes it between two calls), ';'-separated:
 *   slots=N              N slots with tokens; ours is the last (default 1)
 *   pin=TEXT             the user PIN
 *   nologin              the token has no CKF_LOGIN_REQUIRED
 *   flags=F|F…           extra token flags: FINAL_TRY, TO_BE_CHANGED, LOCKED
 *   login=RV             C_Login answers RV
 *   ecpoint=bare         CKA_EC_POINT without its DER OCTET STRING
 *   mechs=hashonly|raw   only hash-and-sign or only raw signing mechanisms
 *   no_never_extractable new keys report CKA_NEVER_EXTRACTABLE false
 *   no_local             new keys report CKA_LOCAL false (as NSS does)
 *   refuse_category      C_CreateObject refuses CKA_CERTIFICATE_CATEGORY
 *   fail=FUNC:RV[:N[:SKIP]]  after SKIP calls (default 0), the next N
 *                        calls (default 1, * for all) of FUNC answer RV (a
 *                        CKR_ name or a number); counted from when MOCKP11
 *                        last changed
 * MOCKP11_LOG=FILE appends "FUNC RV" for every call, and "mechanism NAME"
 * for every C_SignInit it accepts. Handles change with
 * every C_Initialize, as a token may do. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <p11-kit/pkcs11.h>

#define MAX_OBJ 256
#define MAX_ATTR 24
#define MAX_SESS 64
#define MAX_FAIL 8
#define OUR_SLOT(n) ((CK_SLOT_ID)(10 + (n)-1))

struct attr {
	CK_ATTRIBUTE_TYPE type;
	unsigned char *value;
	CK_ULONG len;
};

struct object {
	bool live;
	struct attr attrs[MAX_ATTR];
	int n;
	EVP_PKEY *pkey; /* private keys */
};

struct session {
	bool open;
	CK_ATTRIBUTE *find;
	CK_ULONG n_find, find_pos;
	bool finding, signing;
	CK_MECHANISM_TYPE mech;
	CK_OBJECT_HANDLE key;
};

struct fail {
	char func[40];
	CK_RV rv;
	long left; /* -1: always */
	long skip;
};

static struct object objects[MAX_OBJ];
static struct session sessions[MAX_SESS];
static bool initialized, logged_in;
static unsigned init_gen;

static char conf_text[1024];
static struct {
	int slots;
	char pin[64];
	bool nologin, bare_point, no_never_extractable, no_local, refuse_category;
	CK_FLAGS flags;
	CK_RV login_rv;
	int mechs; /* 0 both, 1 hash-and-sign only, 2 raw only */
	struct fail fails[MAX_FAIL];
	int n_fails;
} conf;

static const struct {
	const char *name;
	CK_RV rv;
} rvs[] = {
	{ "CKR_OK", CKR_OK },
	{ "CKR_GENERAL_ERROR", CKR_GENERAL_ERROR },
	{ "CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID },
	{ "CKR_SESSION_CLOSED", CKR_SESSION_CLOSED },
	{ "CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED },
	{ "CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT },
	{ "CKR_USER_NOT_LOGGED_IN", CKR_USER_NOT_LOGGED_IN },
	{ "CKR_DEVICE_ERROR", CKR_DEVICE_ERROR },
	{ "CKR_PIN_INCORRECT", CKR_PIN_INCORRECT },
	{ "CKR_PIN_LOCKED", CKR_PIN_LOCKED },
	{ "CKR_PIN_EXPIRED", CKR_PIN_EXPIRED },
	{ "CKR_ATTRIBUTE_TYPE_INVALID", CKR_ATTRIBUTE_TYPE_INVALID },
	{ "CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED },
};

static CK_RV parse_rv(const char *text)
{
	for (size_t i = 0; i < sizeof(rvs) / sizeof(rvs[0]); i++)
		if (strcmp(rvs[i].name, text) == 0)
			return rvs[i].rv;
	return (CK_RV)strtoul(text, NULL, 0);
}

static const char *rv_name(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(rvs) / sizeof(rvs[0]); i++)
		if (rvs[i].rv == rv)
			return rvs[i].name;
	return "other";
}

/* Re-reads MOCKP11 when it changed (fault counters start again). */
static void load_conf(void)
{
	const char *env = getenv("MOCKP11");
	char copy[1024], *save = NULL, *tok;

	if (!env)
		env = "";
	if (conf.slots && strcmp(env, conf_text) == 0)
		return;
	snprintf(conf_text, sizeof(conf_text), "%s", env);
	memset(&conf, 0, sizeof(conf));
	conf.slots = 1;
	strcpy(conf.pin, "1234");
	snprintf(copy, sizeof(copy), "%s", env);
	for (tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		if (strncmp(tok, "slots=", 6) == 0)
			conf.slots = atoi(tok + 6) > 0 ? atoi(tok + 6) : 1;
		else if (strncmp(tok, "pin=", 4) == 0)
			snprintf(conf.pin, sizeof(conf.pin), "%s", tok + 4);
		else if (strcmp(tok, "nologin") == 0)
			conf.nologin = true;
		else if (strncmp(tok, "flags=", 6) == 0) {
			if (strstr(tok, "FINAL_TRY"))
				conf.flags |= CKF_USER_PIN_FINAL_TRY;
			if (strstr(tok, "TO_BE_CHANGED"))
				conf.flags |= CKF_USER_PIN_TO_BE_CHANGED;
			if (strstr(tok, "LOCKED"))
				conf.flags |= CKF_USER_PIN_LOCKED;
		} else if (strncmp(tok, "login=", 6) == 0)
			conf.login_rv = parse_rv(tok + 6);
		else if (strcmp(tok, "ecpoint=bare") == 0)
			conf.bare_point = true;
		else if (strcmp(tok, "mechs=hashonly") == 0)
			conf.mechs = 1;
		else if (strcmp(tok, "mechs=raw") == 0)
			conf.mechs = 2;
		else if (strcmp(tok, "no_never_extractable") == 0)
			conf.no_never_extractable = true;
		else if (strcmp(tok, "no_local") == 0)
			conf.no_local = true;
		else if (strcmp(tok, "refuse_category") == 0)
			conf.refuse_category = true;
		else if (strncmp(tok, "fail=", 5) == 0 && conf.n_fails < MAX_FAIL) {
			struct fail *f = &conf.fails[conf.n_fails++];
			char *rv = strchr(tok + 5, ':'), *n, *skip = NULL;

			if (!rv) {
				conf.n_fails--;
				continue;
			}
			*rv++ = '\0';
			n = strchr(rv, ':');
			if (n) {
				*n++ = '\0';
				skip = strchr(n, ':');
				if (skip)
					*skip++ = '\0';
			}
			f->skip = skip ? atol(skip) : 0;
			snprintf(f->func, sizeof(f->func), "%s", tok + 5);
			f->rv = parse_rv(rv);
			f->left = !n ? 1 : strcmp(n, "*") == 0 ? -1 : atol(n);
		}
	}
}

static CK_RV done(const char *func, CK_RV rv)
{
	const char *path = getenv("MOCKP11_LOG");
	FILE *f;

	if (path && (f = fopen(path, "a"))) {
		fprintf(f, "%s %s\n", func, rv_name(rv));
		fclose(f);
	}
	return rv;
}

/* Notes the signing mechanism, for tests that check which one is used. */
static void note_mechanism(CK_MECHANISM_TYPE m)
{
	static const struct {
		CK_MECHANISM_TYPE m;
		const char *name;
	} names[] = {
		{ CKM_RSA_PKCS, "CKM_RSA_PKCS" },
		{ CKM_ECDSA, "CKM_ECDSA" },
		{ CKM_SHA256_RSA_PKCS, "CKM_SHA256_RSA_PKCS" },
		{ CKM_SHA384_RSA_PKCS, "CKM_SHA384_RSA_PKCS" },
		{ CKM_ECDSA_SHA256, "CKM_ECDSA_SHA256" },
		{ CKM_ECDSA_SHA384, "CKM_ECDSA_SHA384" },
	};
	const char *path = getenv("MOCKP11_LOG"), *name = "?";
	FILE *f;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].m == m)
			name = names[i].name;
	if (path && (f = fopen(path, "a"))) {
		fprintf(f, "mechanism %s\n", name);
		fclose(f);
	}
}

/* An injected fault for this call, or CKR_OK. */
static CK_RV injected(const char *func)
{
	load_conf();
	for (int i = 0; i < conf.n_fails; i++) {
		struct fail *f = &conf.fails[i];

		if (strcmp(f->func, func) != 0 || f->left == 0)
			continue;
		if (f->skip > 0) {
			f->skip--;
			continue;
		}
		if (f->left > 0)
			f->left--;
		return f->rv;
	}
	return CKR_OK;
}

#define ENTER(name)                              \
	do {                                     \
		CK_RV inj_ = injected(name);     \
		if (inj_ != CKR_OK)              \
			return done(name, inj_); \
	} while (0)

/* ---- objects ------------------------------------------------------------------ */

static CK_OBJECT_HANDLE handle_of(int idx)
{
	return ((CK_OBJECT_HANDLE)init_gen << 16) | (CK_OBJECT_HANDLE)(idx + 1);
}

static struct object *object_of(CK_OBJECT_HANDLE h)
{
	int idx = (int)(h & 0xffff) - 1;

	if ((h >> 16) != init_gen || idx < 0 || idx >= MAX_OBJ || !objects[idx].live)
		return NULL;
	return &objects[idx];
}

static struct attr *find_attr(struct object *o, CK_ATTRIBUTE_TYPE type)
{
	for (int i = 0; i < o->n; i++)
		if (o->attrs[i].type == type)
			return &o->attrs[i];
	return NULL;
}

static void set_attr(struct object *o, CK_ATTRIBUTE_TYPE type, const void *value, CK_ULONG len)
{
	struct attr *a = find_attr(o, type);

	if (!a) {
		if (o->n >= MAX_ATTR)
			return;
		a = &o->attrs[o->n++];
		a->type = type;
	} else {
		free(a->value);
	}
	a->value = malloc(len ? len : 1);
	memcpy(a->value, value, len);
	a->len = len;
}

static void set_bool(struct object *o, CK_ATTRIBUTE_TYPE type, bool v)
{
	CK_BBOOL b = v ? CK_TRUE : CK_FALSE;

	set_attr(o, type, &b, sizeof(b));
}

static void set_ulong(struct object *o, CK_ATTRIBUTE_TYPE type, CK_ULONG v)
{
	set_attr(o, type, &v, sizeof(v));
}

static bool get_bool(struct object *o, CK_ATTRIBUTE_TYPE type, bool dflt)
{
	struct attr *a = find_attr(o, type);

	return a && a->len == sizeof(CK_BBOOL) ? *(CK_BBOOL *)a->value == CK_TRUE : dflt;
}

static struct object *new_object(int *idx)
{
	for (int i = 0; i < MAX_OBJ; i++)
		if (!objects[i].live) {
			memset(&objects[i], 0, sizeof(objects[i]));
			objects[i].live = true;
			*idx = i;
			return &objects[i];
		}
	return NULL;
}

static void free_object(struct object *o)
{
	for (int i = 0; i < o->n; i++)
		free(o->attrs[i].value);
	EVP_PKEY_free(o->pkey);
	memset(o, 0, sizeof(*o));
}

static bool matches(struct object *o, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	for (CK_ULONG i = 0; i < n; i++) {
		struct attr *a = find_attr(o, tmpl[i].type);

		if (!a || a->len != tmpl[i].ulValueLen ||
		    (a->len && memcmp(a->value, tmpl[i].pValue, a->len) != 0))
			return false;
	}
	return true;
}

/* ---- general ------------------------------------------------------------------ */

static CK_RV mock_Initialize(void *args)
{
	(void)args;
	ENTER("C_Initialize");
	if (initialized)
		return done("C_Initialize", CKR_CRYPTOKI_ALREADY_INITIALIZED);
	initialized = true;
	init_gen++;
	return done("C_Initialize", CKR_OK);
}

static CK_RV mock_Finalize(void *reserved)
{
	(void)reserved;
	ENTER("C_Finalize");
	initialized = false;
	logged_in = false;
	for (int i = 0; i < MAX_SESS; i++) {
		free(sessions[i].find);
		memset(&sessions[i], 0, sizeof(sessions[i]));
	}
	return done("C_Finalize", CKR_OK);
}

static void padded(unsigned char *out, size_t len, const char *text)
{
	memset(out, ' ', len);
	memcpy(out, text, strlen(text) < len ? strlen(text) : len);
}

static CK_RV mock_GetInfo(CK_INFO *info)
{
	ENTER("C_GetInfo");
	memset(info, 0, sizeof(*info));
	info->cryptokiVersion.major = 2;
	info->cryptokiVersion.minor = 40;
	padded(info->manufacturerID, sizeof(info->manufacturerID), "p11enroll tests");
	padded(info->libraryDescription, sizeof(info->libraryDescription), "fault-injecting mock");
	return done("C_GetInfo", CKR_OK);
}

static CK_RV mock_GetSlotList(CK_BBOOL present, CK_SLOT_ID *list, CK_ULONG *count)
{
	(void)present;
	ENTER("C_GetSlotList");
	if (!initialized)
		return done("C_GetSlotList", CKR_CRYPTOKI_NOT_INITIALIZED);
	if (!list) {
		*count = (CK_ULONG)conf.slots;
		return done("C_GetSlotList", CKR_OK);
	}
	if (*count < (CK_ULONG)conf.slots) {
		*count = (CK_ULONG)conf.slots;
		return done("C_GetSlotList", CKR_BUFFER_TOO_SMALL);
	}
	for (int i = 0; i < conf.slots; i++)
		list[i] = 10 + (CK_SLOT_ID)i;
	*count = (CK_ULONG)conf.slots;
	return done("C_GetSlotList", CKR_OK);
}

static bool slot_ok(CK_SLOT_ID slot)
{
	return slot >= 10 && slot < 10 + (CK_SLOT_ID)conf.slots;
}

static CK_RV mock_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO *info)
{
	ENTER("C_GetSlotInfo");
	if (!slot_ok(slot))
		return done("C_GetSlotInfo", CKR_SLOT_ID_INVALID);
	memset(info, 0, sizeof(*info));
	padded(info->slotDescription, sizeof(info->slotDescription), "mock slot");
	padded(info->manufacturerID, sizeof(info->manufacturerID), "p11enroll tests");
	info->flags = CKF_TOKEN_PRESENT;
	return done("C_GetSlotInfo", CKR_OK);
}

static CK_RV mock_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO *info)
{
	char label[32];

	ENTER("C_GetTokenInfo");
	if (!slot_ok(slot))
		return done("C_GetTokenInfo", CKR_SLOT_ID_INVALID);
	memset(info, 0, sizeof(*info));
	if (slot == OUR_SLOT(conf.slots))
		strcpy(label, "mock");
	else
		snprintf(label, sizeof(label), "other-%lu", (unsigned long)slot);
	padded(info->label, sizeof(info->label), label);
	padded(info->manufacturerID, sizeof(info->manufacturerID), "p11enroll tests");
	padded(info->model, sizeof(info->model), "mock");
	padded(info->serialNumber, sizeof(info->serialNumber), "0001");
	info->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED | CKF_RNG | conf.flags |
		      (conf.nologin ? 0 : CKF_LOGIN_REQUIRED);
	info->ulMaxPinLen = 64;
	info->ulMinPinLen = 4;
	return done("C_GetTokenInfo", CKR_OK);
}

static const CK_MECHANISM_TYPE raw_mechs[] = { CKM_RSA_PKCS, CKM_ECDSA };
static const CK_MECHANISM_TYPE hash_mechs[] = { CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS,
						CKM_ECDSA_SHA256, CKM_ECDSA_SHA384 };

static bool mech_offered(CK_MECHANISM_TYPE m)
{
	if (m == CKM_RSA_PKCS_KEY_PAIR_GEN || m == CKM_EC_KEY_PAIR_GEN)
		return true;
	for (size_t i = 0; conf.mechs != 1 && i < sizeof(raw_mechs) / sizeof(raw_mechs[0]); i++)
		if (raw_mechs[i] == m)
			return true;
	for (size_t i = 0; conf.mechs != 2 && i < sizeof(hash_mechs) / sizeof(hash_mechs[0]); i++)
		if (hash_mechs[i] == m)
			return true;
	return false;
}

static CK_RV mock_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE *list, CK_ULONG *count)
{
	static const CK_MECHANISM_TYPE all[] = {
		CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS,     CKM_ECDSA,
		CKM_SHA256_RSA_PKCS,       CKM_SHA384_RSA_PKCS, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384
	};
	CK_ULONG n = 0;

	ENTER("C_GetMechanismList");
	if (!slot_ok(slot))
		return done("C_GetMechanismList", CKR_SLOT_ID_INVALID);
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!mech_offered(all[i]))
			continue;
		if (list && n < *count)
			list[n] = all[i];
		n++;
	}
	if (list && *count < n) {
		*count = n;
		return done("C_GetMechanismList", CKR_BUFFER_TOO_SMALL);
	}
	*count = n;
	return done("C_GetMechanismList", CKR_OK);
}

static CK_RV mock_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info)
{
	bool rsa = type == CKM_RSA_PKCS_KEY_PAIR_GEN || type == CKM_RSA_PKCS ||
		   type == CKM_SHA256_RSA_PKCS || type == CKM_SHA384_RSA_PKCS;

	ENTER("C_GetMechanismInfo");
	if (!slot_ok(slot))
		return done("C_GetMechanismInfo", CKR_SLOT_ID_INVALID);
	if (!mech_offered(type))
		return done("C_GetMechanismInfo", CKR_MECHANISM_INVALID);
	info->ulMinKeySize = rsa ? 2048 : 256;
	info->ulMaxKeySize = rsa ? 4096 : 384;
	info->flags = CKF_HW | (type == CKM_RSA_PKCS_KEY_PAIR_GEN || type == CKM_EC_KEY_PAIR_GEN
					? CKF_GENERATE_KEY_PAIR
					: CKF_SIGN);
	return done("C_GetMechanismInfo", CKR_OK);
}

/* ---- sessions ------------------------------------------------------------------ */

static struct session *session_of(CK_SESSION_HANDLE h)
{
	if (!initialized || h < 1 || h > MAX_SESS || !sessions[h - 1].open)
		return NULL;
	return &sessions[h - 1];
}

static CK_RV mock_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, void *app, CK_NOTIFY notify,
			      CK_SESSION_HANDLE *out)
{
	(void)flags;
	(void)app;
	(void)notify;
	ENTER("C_OpenSession");
	if (slot != OUR_SLOT(conf.slots))
		return done("C_OpenSession", CKR_SLOT_ID_INVALID);
	for (int i = 0; i < MAX_SESS; i++)
		if (!sessions[i].open) {
			memset(&sessions[i], 0, sizeof(sessions[i]));
			sessions[i].open = true;
			*out = (CK_SESSION_HANDLE)i + 1;
			return done("C_OpenSession", CKR_OK);
		}
	return done("C_OpenSession", CKR_SESSION_COUNT);
}

static CK_RV mock_CloseSession(CK_SESSION_HANDLE h)
{
	struct session *s = session_of(h);
	bool any = false;

	ENTER("C_CloseSession");
	if (!s)
		return done("C_CloseSession", CKR_SESSION_HANDLE_INVALID);
	free(s->find);
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < MAX_SESS; i++)
		any |= sessions[i].open;
	if (!any)
		logged_in = false;
	return done("C_CloseSession", CKR_OK);
}

static CK_RV mock_CloseAllSessions(CK_SLOT_ID slot)
{
	(void)slot;
	for (int i = 0; i < MAX_SESS; i++) {
		free(sessions[i].find);
		memset(&sessions[i], 0, sizeof(sessions[i]));
	}
	logged_in = false;
	return done("C_CloseAllSessions", CKR_OK);
}

static CK_RV mock_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO *info)
{
	ENTER("C_GetSessionInfo");
	if (!session_of(h))
		return done("C_GetSessionInfo", CKR_SESSION_HANDLE_INVALID);
	memset(info, 0, sizeof(*info));
	info->slotID = OUR_SLOT(conf.slots);
	info->state = logged_in ? CKS_RW_USER_FUNCTIONS : CKS_RW_PUBLIC_SESSION;
	info->flags = CKF_SERIAL_SESSION | CKF_RW_SESSION;
	return done("C_GetSessionInfo", CKR_OK);
}

static CK_RV mock_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR *pin, CK_ULONG len)
{
	(void)user;
	ENTER("C_Login");
	if (!session_of(h))
		return done("C_Login", CKR_SESSION_HANDLE_INVALID);
	if (conf.login_rv)
		return done("C_Login", conf.login_rv);
	if (conf.flags & CKF_USER_PIN_LOCKED)
		return done("C_Login", CKR_PIN_LOCKED);
	if (logged_in)
		return done("C_Login", CKR_USER_ALREADY_LOGGED_IN);
	if (!pin || len != strlen(conf.pin) || memcmp(pin, conf.pin, len) != 0)
		return done("C_Login", CKR_PIN_INCORRECT);
	logged_in = true;
	return done("C_Login", CKR_OK);
}

static CK_RV mock_Logout(CK_SESSION_HANDLE h)
{
	ENTER("C_Logout");
	if (!session_of(h))
		return done("C_Logout", CKR_SESSION_HANDLE_INVALID);
	if (!logged_in)
		return done("C_Logout", CKR_USER_NOT_LOGGED_IN);
	logged_in = false;
	return done("C_Logout", CKR_OK);
}

/* Private objects and key work need a login unless the token needs none. */
static bool may_use(void)
{
	return logged_in || conf.nologin;
}

/* ---- objects through the API ----------------------------------------------------- */

static CK_RV mock_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE *tmpl, CK_ULONG n,
			       CK_OBJECT_HANDLE *out)
{
	struct object *o;
	int idx;

	ENTER("C_CreateObject");
	if (!session_of(h))
		return done("C_CreateObject", CKR_SESSION_HANDLE_INVALID);
	if (!may_use())
		return done("C_CreateObject", CKR_USER_NOT_LOGGED_IN);
	for (CK_ULONG i = 0; i < n; i++)
		if (conf.refuse_category && tmpl[i].type == CKA_CERTIFICATE_CATEGORY)
			return done("C_CreateObject", CKR_ATTRIBUTE_TYPE_INVALID);
	o = new_object(&idx);
	if (!o)
		return done("C_CreateObject", CKR_DEVICE_MEMORY);
	for (CK_ULONG i = 0; i < n; i++)
		set_attr(o, tmpl[i].type, tmpl[i].pValue, tmpl[i].ulValueLen);
	*out = handle_of(idx);
	return done("C_CreateObject", CKR_OK);
}

static CK_RV mock_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj)
{
	struct object *o;

	ENTER("C_DestroyObject");
	if (!session_of(h))
		return done("C_DestroyObject", CKR_SESSION_HANDLE_INVALID);
	o = object_of(obj);
	if (!o)
		return done("C_DestroyObject", CKR_OBJECT_HANDLE_INVALID);
	free_object(o);
	return done("C_DestroyObject", CKR_OK);
}

static CK_RV mock_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE *tmpl,
				    CK_ULONG n)
{
	struct object *o;
	CK_RV rv = CKR_OK;

	ENTER("C_GetAttributeValue");
	if (!session_of(h))
		return done("C_GetAttributeValue", CKR_SESSION_HANDLE_INVALID);
	o = object_of(obj);
	if (!o)
		return done("C_GetAttributeValue", CKR_OBJECT_HANDLE_INVALID);
	for (CK_ULONG i = 0; i < n; i++) {
		struct attr *a = find_attr(o, tmpl[i].type);

		if (!a) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_ATTRIBUTE_TYPE_INVALID;
		} else if (!tmpl[i].pValue) {
			tmpl[i].ulValueLen = a->len;
		} else if (tmpl[i].ulValueLen < a->len) {
			tmpl[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
			rv = CKR_BUFFER_TOO_SMALL;
		} else {
			memcpy(tmpl[i].pValue, a->value, a->len);
			tmpl[i].ulValueLen = a->len;
		}
	}
	return done("C_GetAttributeValue", rv);
}

static CK_RV mock_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
	struct session *s = session_of(h);

	ENTER("C_FindObjectsInit");
	if (!s)
		return done("C_FindObjectsInit", CKR_SESSION_HANDLE_INVALID);
	if (s->finding)
		return done("C_FindObjectsInit", CKR_OPERATION_ACTIVE);
	s->find = calloc(n ? n : 1, sizeof(*tmpl));
	for (CK_ULONG i = 0; i < n; i++) {
		s->find[i].type = tmpl[i].type;
		s->find[i].ulValueLen = tmpl[i].ulValueLen;
		s->find[i].pValue = malloc(tmpl[i].ulValueLen ? tmpl[i].ulValueLen : 1);
		memcpy(s->find[i].pValue, tmpl[i].pValue, tmpl[i].ulValueLen);
	}
	s->n_find = n;
	s->find_pos = 0;
	s->finding = true;
	return done("C_FindObjectsInit", CKR_OK);
}

static CK_RV mock_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *n)
{
	struct session *s = session_of(h);

	ENTER("C_FindObjects");
	if (!s)
		return done("C_FindObjects", CKR_SESSION_HANDLE_INVALID);
	if (!s->finding)
		return done("C_FindObjects", CKR_OPERATION_NOT_INITIALIZED);
	*n = 0;
	while (s->find_pos < MAX_OBJ && *n < max) {
		struct object *o = &objects[s->find_pos];

		if (o->live && matches(o, s->find, s->n_find) &&
		    (may_use() || !get_bool(o, CKA_PRIVATE, false)))
			out[(*n)++] = handle_of((int)s->find_pos);
		s->find_pos++;
	}
	return done("C_FindObjects", CKR_OK);
}

static CK_RV mock_FindObjectsFinal(CK_SESSION_HANDLE h)
{
	struct session *s = session_of(h);

	ENTER("C_FindObjectsFinal");
	if (!s)
		return done("C_FindObjectsFinal", CKR_SESSION_HANDLE_INVALID);
	for (CK_ULONG i = 0; i < s->n_find; i++)
		free(s->find[i].pValue);
	free(s->find);
	s->find = NULL;
	s->finding = false;
	return done("C_FindObjectsFinal", CKR_OK);
}

/* ---- keys and signatures --------------------------------------------------------- */

static const CK_ATTRIBUTE *tmpl_get(const CK_ATTRIBUTE *t, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	for (CK_ULONG i = 0; i < n; i++)
		if (t[i].type == type)
			return &t[i];
	return NULL;
}

static void set_bn(struct object *o, CK_ATTRIBUTE_TYPE type, EVP_PKEY *pkey, const char *param)
{
	BIGNUM *bn = NULL;
	unsigned char buf[1024];
	int len;

	if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
		return;
	len = BN_bn2bin(bn, buf);
	set_attr(o, type, buf, (CK_ULONG)len);
	BN_free(bn);
}

static CK_RV mock_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM *mech, CK_ATTRIBUTE *pub_t,
				  CK_ULONG n_pub, CK_ATTRIBUTE *priv_t, CK_ULONG n_priv,
				  CK_OBJECT_HANDLE *pub_h, CK_OBJECT_HANDLE *priv_h)
{
	const CK_ATTRIBUTE *a;
	CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY;
	struct object *pub, *priv;
	EVP_PKEY *pkey = NULL;
	CK_KEY_TYPE kt;
	int pi, vi;

	ENTER("C_GenerateKeyPair");
	if (!session_of(h))
		return done("C_GenerateKeyPair", CKR_SESSION_HANDLE_INVALID);
	if (!may_use())
		return done("C_GenerateKeyPair", CKR_USER_NOT_LOGGED_IN);
	if (mech->mechanism == CKM_EC_KEY_PAIR_GEN) {
		const unsigned char *p;
		ASN1_OBJECT *oid;
		int nid;

		a = tmpl_get(pub_t, n_pub, CKA_EC_PARAMS);
		if (!a)
			return done("C_GenerateKeyPair", CKR_TEMPLATE_INCOMPLETE);
		p = a->pValue;
		oid = d2i_ASN1_OBJECT(NULL, &p, (long)a->ulValueLen);
		nid = oid ? OBJ_obj2nid(oid) : NID_undef;
		ASN1_OBJECT_free(oid);
		if (nid != NID_X9_62_prime256v1 && nid != NID_secp384r1)
			return done("C_GenerateKeyPair", CKR_CURVE_NOT_SUPPORTED);
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", OBJ_nid2sn(nid));
		kt = CKK_EC;
	} else if (mech->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN) {
		a = tmpl_get(pub_t, n_pub, CKA_MODULUS_BITS);
		if (!a)
			return done("C_GenerateKeyPair", CKR_TEMPLATE_INCOMPLETE);
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) * (CK_ULONG *)a->pValue);
		kt = CKK_RSA;
	} else {
		return done("C_GenerateKeyPair", CKR_MECHANISM_INVALID);
	}
	if (!pkey)
		return done("C_GenerateKeyPair", CKR_FUNCTION_FAILED);
	pub = new_object(&pi);
	priv = pub ? new_object(&vi) : NULL;
	if (!priv) {
		EVP_PKEY_free(pkey);
		if (pub)
			free_object(pub);
		return done("C_GenerateKeyPair", CKR_DEVICE_MEMORY);
	}
	for (CK_ULONG i = 0; i < n_pub; i++)
		set_attr(pub, pub_t[i].type, pub_t[i].pValue, pub_t[i].ulValueLen);
	for (CK_ULONG i = 0; i < n_priv; i++)
		set_attr(priv, priv_t[i].type, priv_t[i].pValue, priv_t[i].ulValueLen);
	set_attr(pub, CKA_CLASS, &pub_cls, sizeof(pub_cls));
	set_attr(priv, CKA_CLASS, &priv_cls, sizeof(priv_cls));
	set_ulong(pub, CKA_KEY_TYPE, kt);
	set_ulong(priv, CKA_KEY_TYPE, kt);
	set_bool(pub, CKA_LOCAL, !conf.no_local);
	set_bool(priv, CKA_LOCAL, !conf.no_local);
	set_bool(priv, CKA_ALWAYS_SENSITIVE, get_bool(priv, CKA_SENSITIVE, false));
	set_bool(priv, CKA_NEVER_EXTRACTABLE,
		 !conf.no_never_extractable && !get_bool(priv, CKA_EXTRACTABLE, true));
	if (!find_attr(priv, CKA_SENSITIVE))
		set_bool(priv, CKA_SENSITIVE, false);
	if (!find_attr(priv, CKA_EXTRACTABLE))
		set_bool(priv, CKA_EXTRACTABLE, true);
	if (kt == CKK_EC) {
		unsigned char point[256], der[260];
		size_t len = 0;

		EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
						sizeof(point), &len);
		if (conf.bare_point) {
			set_attr(pub, CKA_EC_POINT, point, len);
		} else {
			der[0] = 0x04;
			der[1] = (unsigned char)len;
			memcpy(der + 2, point, len);
			set_attr(pub, CKA_EC_POINT, der, len + 2);
		}
		a = tmpl_get(pub_t, n_pub, CKA_EC_PARAMS);
		set_attr(priv, CKA_EC_PARAMS, a->pValue, a->ulValueLen);
	} else {
		set_bn(pub, CKA_MODULUS, pkey, OSSL_PKEY_PARAM_RSA_N);
		set_bn(pub, CKA_PUBLIC_EXPONENT, pkey, OSSL_PKEY_PARAM_RSA_E);
		set_bn(priv, CKA_MODULUS, pkey, OSSL_PKEY_PARAM_RSA_N);
		set_bn(priv, CKA_PUBLIC_EXPONENT, pkey, OSSL_PKEY_PARAM_RSA_E);
	}
	priv->pkey = pkey;
	*pub_h = handle_of(pi);
	*priv_h = handle_of(vi);
	return done("C_GenerateKeyPair", CKR_OK);
}

static CK_RV mock_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM *mech, CK_OBJECT_HANDLE key)
{
	struct session *s = session_of(h);
	struct object *o;

	ENTER("C_SignInit");
	if (!s)
		return done("C_SignInit", CKR_SESSION_HANDLE_INVALID);
	if (!may_use())
		return done("C_SignInit", CKR_USER_NOT_LOGGED_IN);
	o = object_of(key);
	if (!o || !o->pkey)
		return done("C_SignInit", CKR_KEY_HANDLE_INVALID);
	if (!mech_offered(mech->mechanism) || mech->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN ||
	    mech->mechanism == CKM_EC_KEY_PAIR_GEN)
		return done("C_SignInit", CKR_MECHANISM_INVALID);
	s->signing = true;
	s->mech = mech->mechanism;
	s->key = key;
	note_mechanism(mech->mechanism);
	return done("C_SignInit", CKR_OK);
}

/* r||s of a DER ECDSA-Sig-Value, each half `half` bytes. */
static bool der_to_raw(const unsigned char *der, size_t der_len, unsigned char *out, size_t half)
{
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &der, (long)der_len);
	const BIGNUM *r, *s;
	bool ok;

	if (!sig)
		return false;
	ECDSA_SIG_get0(sig, &r, &s);
	ok = BN_bn2binpad(r, out, (int)half) > 0 && BN_bn2binpad(s, out + half, (int)half) > 0;
	ECDSA_SIG_free(sig);
	return ok;
}

static CK_RV mock_Sign(CK_SESSION_HANDLE h, CK_BYTE *data, CK_ULONG len, CK_BYTE *sig,
		       CK_ULONG *sig_len)
{
	struct session *s = session_of(h);
	struct object *o;
	unsigned char der[1024];
	size_t der_len = sizeof(der), want;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD_CTX *mctx = NULL;
	const EVP_MD *md = NULL;
	bool ec, ok = false;
	CK_RV rv = CKR_OK;

	ENTER("C_Sign");
	if (!s)
		return done("C_Sign", CKR_SESSION_HANDLE_INVALID);
	if (!s->signing)
		return done("C_Sign", CKR_OPERATION_NOT_INITIALIZED);
	o = object_of(s->key);
	if (!o) {
		s->signing = false;
		return done("C_Sign", CKR_KEY_HANDLE_INVALID);
	}
	ec = EVP_PKEY_is_a(o->pkey, "EC");
	want = ec ? 2 * (size_t)((EVP_PKEY_get_bits(o->pkey) + 7) / 8)
		  : (size_t)EVP_PKEY_get_size(o->pkey);
	if (!sig) {
		*sig_len = want;
		return done("C_Sign", CKR_OK);
	}
	if (*sig_len < want) {
		*sig_len = want;
		return done("C_Sign", CKR_BUFFER_TOO_SMALL);
	}
	if (s->mech == CKM_SHA256_RSA_PKCS || s->mech == CKM_ECDSA_SHA256)
		md = EVP_sha256();
	else if (s->mech == CKM_SHA384_RSA_PKCS || s->mech == CKM_ECDSA_SHA384)
		md = EVP_sha384();
	if (md) {
		mctx = EVP_MD_CTX_new();
		ok = mctx && EVP_DigestSignInit(mctx, &pctx, md, NULL, o->pkey) == 1 &&
		     (ec || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
		     EVP_DigestSign(mctx, der, &der_len, data, len) == 1;
		EVP_MD_CTX_free(mctx);
	} else {
		pctx = EVP_PKEY_CTX_new(o->pkey, NULL);
		ok = pctx && EVP_PKEY_sign_init(pctx) == 1 &&
		     (ec || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
		     EVP_PKEY_sign(pctx, der, &der_len, data, len) == 1;
		EVP_PKEY_CTX_free(pctx);
	}
	s->signing = false;
	if (!ok)
		rv = CKR_FUNCTION_FAILED;
	else if (ec && !der_to_raw(der, der_len, sig, want / 2))
		rv = CKR_FUNCTION_FAILED;
	else if (!ec)
		memcpy(sig, der, der_len);
	*sig_len = want;
	return done("C_Sign", rv);
}

static CK_RV mock_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID *slot, void *reserved)
{
	(void)flags;
	(void)slot;
	(void)reserved;
	return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_FUNCTION_LIST function_list = {
	.version = { 2, 40 },
	.C_Initialize = mock_Initialize,
	.C_Finalize = mock_Finalize,
	.C_GetInfo = mock_GetInfo,
	.C_GetSlotList = mock_GetSlotList,
	.C_GetSlotInfo = mock_GetSlotInfo,
	.C_GetTokenInfo = mock_GetTokenInfo,
	.C_GetMechanismList = mock_GetMechanismList,
	.C_GetMechanismInfo = mock_GetMechanismInfo,
	.C_OpenSession = mock_OpenSession,
	.C_CloseSession = mock_CloseSession,
	.C_CloseAllSessions = mock_CloseAllSessions,
	.C_GetSessionInfo = mock_GetSessionInfo,
	.C_Login = mock_Login,
	.C_Logout = mock_Logout,
	.C_CreateObject = mock_CreateObject,
	.C_DestroyObject = mock_DestroyObject,
	.C_GetAttributeValue = mock_GetAttributeValue,
	.C_FindObjectsInit = mock_FindObjectsInit,
	.C_FindObjects = mock_FindObjects,
	.C_FindObjectsFinal = mock_FindObjectsFinal,
	.C_SignInit = mock_SignInit,
	.C_Sign = mock_Sign,
	.C_GenerateKeyPair = mock_GenerateKeyPair,
	.C_WaitForSlotEvent = mock_WaitForSlotEvent,
};

CK_RV C_GetFunctionList(CK_FUNCTION_LIST **list);

__attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST **list)
{
	if (!list)
		return CKR_ARGUMENTS_BAD;
	*list = &function_list;
	return CKR_OK;
}
