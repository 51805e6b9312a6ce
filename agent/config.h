/* SPDX-License-Identifier: Apache-2.0 */
/* The INI configuration of p11enroll.conf(5): [agent], [ca:NAME], [cert:NAME]. Every
 * error names file:line; unknown sections and keys are errors. */
#ifndef P11E_CONFIG_H
#define P11E_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "err.h"
#include "policy.h"
#include "provider.h"
#include "strindex.h"
#include "util.h"

struct p11e_ca_conf {
	char *name;
	const struct p11e_ca_ops *ops;
	struct p11e_settings settings; /* every key of the section but `type` */
	const char *file;
	int line;
	/* order_rate = N/DUR: at most N placements in any DUR seconds for
	 * this CA account (providers/ratelimit.h); 0: no limit */
	unsigned order_rate_n;
	int64_t order_rate_window;
};

struct p11e_cert_conf {
	char *name;
	const char *file;
	int line;
	const char *ca;          /* [ca:NAME] or NULL */
	const char *fallback_ca; /* [ca:NAME] for new orders while `ca` fails, or NULL */
	int64_t fallback_after;  /* seconds `ca` must stay unreachable first */
	const char *key;         /* key URI */
	const struct p11e_key_spec *key_spec;
	const char *subject; /* RFC 4514 */
	struct p11e_strlist dns, ip, email, uri;
	bool client_auth;
	const char *cert_file, *chain_file, *fullchain_file;
	mode_t file_mode;
	uid_t file_owner; /* (uid_t)-1: unchanged */
	gid_t file_group;
	bool store_in_token;
	int64_t renew_before;             /* seconds */
	unsigned fleet_slot, fleet_slots; /* [agent] fleet_slot K/N; fleet_slots 0: not set */
	int64_t wait;                     /* seconds */
	bool rotate_key;
	unsigned keep_old_keys;
	const char *post_install;
	struct p11e_settings settings;  /* all keys of the section, for file:line */
	struct p11e_settings overrides; /* the CA keys this certificate overrides */
};

struct p11e_config {
	char *path;
	const char *state_dir;
	int64_t renew_before;
	int64_t wait;
	int log_level;        /* -1: not set */
	int64_t hook_timeout; /* seconds a post_install or dcv_hook may run */
	bool allow_inline_secrets;
	struct p11e_ca_conf *cas;
	size_t n_cas;
	struct p11e_cert_conf *certs;
	size_t n_certs;
	struct p11e_arena *arena; /* storage for every string above */
	const char **kept;        /* the kept strings by position (config.c) */
	size_t n_kept, cap_kept;
	struct p11e_setting **owned; /* storage of the parsed sections' settings */
	size_t n_owned;
	struct p11e_settings agent;                /* [agent] keys, for file:line */
	unsigned parallel;                         /* [agent] parallel; 0: P11E_PARALLEL_DEFAULT */
	unsigned fleet_slot, fleet_slots;          /* [agent] fleet_slot K/N; fleet_slots 0: not set */
	struct p11e_strindex cert_index, ca_index; /* by name */
};

#define P11E_PARALLEL_DEFAULT 8
#define P11E_PARALLEL_MAX 256
#define P11E_FLEET_SLOTS_MAX 1000000

/* Loads `path` (and include_dir). P11E_EUSAGE with "file:line: …". */
p11e_status p11e_config_load(const char *path, struct p11e_config **out, struct p11e_err *err);
void p11e_config_free(struct p11e_config *cfg);

/* The same from memory, touching no file (tests, fuzzing): texts[0] is the
 * configuration, named texts[0].name in messages; include_dir matches the
 * other texts by name (DIR/NAME.conf, in the order given) and nothing else. */
struct p11e_config_text {
	const char *name;
	const char *text;
	size_t len;
};
p11e_status p11e_config_load_texts(const struct p11e_config_text *texts, size_t n,
				   struct p11e_config **out, struct p11e_err *err);

const struct p11e_cert_conf *p11e_config_cert(const struct p11e_config *cfg, const char *name);
const struct p11e_ca_conf *p11e_config_ca(const struct p11e_config *cfg, const char *name);

/* "file:line" of a key of a certificate (or of the section when unset). */
void p11e_cert_where(const struct p11e_cert_conf *cert, const char *key, char *buf, size_t len);

#endif
