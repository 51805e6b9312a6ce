/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "p11e-config.h"

#include <errno.h>
#include <fnmatch.h>
#include <glob.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "csr.h"
#include "hook.h"
#include "log.h"
#include "keystore.h"

enum section_kind { SECTION_AGENT, SECTION_CA, SECTION_CERT };

struct raw_section {
	enum section_kind kind;
	const char *name; /* after "ca:" / "cert:" */
	const char *file;
	int line;
	struct p11e_setting *v;
	size_t n;
};

struct parser {
	struct p11e_config *cfg;
	struct raw_section *sections;
	size_t n_sections, cap_sections;
	struct p11e_strindex by_name[3]; /* per section_kind */
	struct p11e_strindex keys;       /* key names in cfg->kept */
	const char *file;                /* kept copy */
	FILE *stream;
	char *buf; /* the file being parsed, read whole */
	size_t len, pos, cap;
	int line;
	bool line_indented; /* the line starts with a blank: inih's continuation */
	bool line_too_long;
	bool line_has_nul; /* a NUL byte, which would cut the line silently */
	int section_line;  /* line of the last [section] header */
	struct p11e_err *err;
	const struct p11e_config_text *texts; /* hermetic load: the only "files" */
	size_t n_texts;
};

static const char *const agent_keys[] = {
	"state_dir",
	"renew_before",
	"wait",
	"log",
	"include_dir",
	"allow_inline_secrets",
	"prometheus_file",
	"hook_timeout",
	"parallel",
	"fleet_slot",
	NULL,
};

static const char *const cert_keys[] = {
	"ca",           "key",         "key_type",       "subject",
	"dns",          "ip",          "email",          "uri",
	"client_auth",  "cert_file",   "chain_file",     "fullchain_file",
	"file_owner",   "file_group",  "file_mode",      "store_in_token",
	"renew_before", "wait",        "rotate_key",     "keep_old_keys",
	"post_install", "fallback_ca", "fallback_after", NULL,
};

static bool in_list(const char *const *list, const char *key)
{
	for (size_t i = 0; list && list[i]; i++)
		if (strcmp(list[i], key) == 0)
			return true;
	return false;
}

/* A copy of s that lives as long as cfg, at position cfg->n_kept - 1. */
static const char *keep(struct p11e_config *cfg, const char *s)
{
	if (cfg->n_kept == cfg->cap_kept) {
		size_t cap = cfg->cap_kept ? cfg->cap_kept * 2 : 64;
		const char **grown = realloc(cfg->kept, cap * sizeof(*grown));

		if (!grown)
			return NULL;
		cfg->kept = grown;
		cfg->cap_kept = cap;
	}
	cfg->kept[cfg->n_kept] = p11e_arena_strdup(&cfg->arena, s);
	return cfg->kept[cfg->n_kept] ? cfg->kept[cfg->n_kept++] : NULL;
}

static const char *cert_name(const void *ctx, size_t i)
{
	return ((const struct p11e_config *)ctx)->certs[i].name;
}

static const char *ca_name(const void *ctx, size_t i)
{
	return ((const struct p11e_config *)ctx)->cas[i].name;
}

/* fgets over the file read whole (no lseek per line, as ftell did); counts
 * lines and notices lines inih would cut silently. */
static char *reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	const char *start = p->buf + p->pos;
	size_t avail = p->len - p->pos, max = (size_t)num - 1, take;
	const char *nl;

	if (p->pos >= p->len || num < 2)
		return NULL;
	if (avail > max)
		avail = max;
	nl = memchr(start, '\n', avail);
	take = nl ? (size_t)(nl - start) + 1 : avail;
	memcpy(str, start, take);
	str[take] = '\0';
	p->pos += take;
	p->line++;
	p->line_indented = str[0] == ' ' || str[0] == '\t';
	if (memchr(start, '\0', take)) {
		p->line_has_nul = true;
		return NULL;
	}
	if (str[strspn(str, " \t")] == '[')
		p->section_line = p->line;
	if (take == max && str[take - 1] != '\n' && p->pos < p->len) {
		p->line_too_long = true;
		return NULL;
	}
	return str;
}

static const char *kept_string(const void *ctx, size_t i)
{
	return ((const struct p11e_config *)ctx)->kept[i];
}

/* Key names and many values (ca, key_type, paths) repeat in every
 * section: one copy each. Nothing writes to a kept string. */
static const char *keep_shared(struct parser *p, const char *key)
{
	size_t i = p11e_strindex_find(&p->keys, key, kept_string, p->cfg);

	if (i != (size_t)-1)
		return p->cfg->kept[i];
	if (!keep(p->cfg, key) ||
	    p11e_strindex_add(&p->keys, p->cfg->n_kept - 1, kept_string, p->cfg) != 0)
		return NULL;
	return p->cfg->kept[p->cfg->n_kept - 1];
}

static const char *section_name(const void *ctx, size_t i)
{
	return ((const struct parser *)ctx)->sections[i].name;
}

/* Hashed: 10,000 certificates must not cost 10,000² comparisons. */
static struct raw_section *find_section(struct parser *p, enum section_kind kind, const char *name)
{
	size_t i = p11e_strindex_find(&p->by_name[kind], name, section_name, p);

	return i == (size_t)-1 ? NULL : &p->sections[i];
}

__attribute__((format(printf, 2, 3))) static int fail(struct parser *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p11e_err_set(p->err, P11E_EUSAGE, "%s:%d: %s", p->file, p->line, msg);
	return 0;
}

/* NULL when `s` is UTF-8 without control characters (C0, DEL, C1), else
 * what is wrong; *at is the byte offset. Such values would reach a CA, a
 * file name or a log line changed or cut. */
static const char *bad_text(const char *s, size_t *at)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; u[i];) {
		unsigned c = u[i], n, cp;

		*at = i;
		if (c < 0x20 || c == 0x7f)
			return "a control character";
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return "bytes that are not UTF-8";
		}
		for (unsigned k = 1; k <= n; k++) {
			if ((u[i + k] & 0xc0) != 0x80)
				return "bytes that are not UTF-8";
			cp = cp << 6 | (u[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return "bytes that are not UTF-8";
		if (cp >= 0x80 && cp <= 0x9f)
			return "a control character";
		i += n + 1;
	}
	return NULL;
}

/* [ca:NAME] and [cert:NAME]: NAME becomes a file name in state_dir. inih
 * cuts a section name at 49 characters without a word, so a longer NAME
 * arrives here cut, with at least 44 characters: 40 keeps that an error. */
#define NAME_MAX_LEN 40

static bool safe_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > NAME_MAX_LEN || name[0] == '.')
		return false;
	return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       len;
}

/* Section names, keys and values are UTF-8 text without control characters. */
static bool texts_ok(struct parser *p, const char *section, const char *key, const char *value)
{
	const char *why;
	size_t at;

	if ((why = bad_text(section, &at)))
		return fail(p,
			    "the section name holds %s (byte %zu); write it in UTF-8 without "
			    "control characters",
			    why, at + 1);
	if ((why = bad_text(key, &at)))
		return fail(p,
			    "a key name holds %s (byte %zu); write it in UTF-8 without "
			    "control characters",
			    why, at + 1);
	/* The value is not shown: it may be an inline secret. */
	if ((why = bad_text(value, &at)))
		return fail(p,
			    "the value of '%s' holds %s (byte %zu of the value); values are "
			    "UTF-8 text without control characters (no tabs)",
			    key, why, at + 1);
	return true;
}

/* [agent], [ca:NAME] or [cert:NAME]: its kind and NAME (a safe file name);
 * false with the error set for anything else. */
static bool section_of(struct parser *p, const char *section, const char *key, enum section_kind *kind,
		       const char **name)
{
	if (strcmp(section, "agent") == 0) {
		*kind = SECTION_AGENT;
		*name = "agent";
	} else if (strncmp(section, "ca:", 3) == 0 && section[3]) {
		*kind = SECTION_CA;
		*name = section + 3;
	} else if (strncmp(section, "cert:", 5) == 0 && section[5]) {
		*kind = SECTION_CERT;
		*name = section + 5;
	} else if (!*section) {
		return fail(p,
			    "'%s' is outside any section (start with [agent], [ca:NAME] or "
			    "[cert:NAME])",
			    key);
	} else {
		return fail(p,
			    "unknown section [%s]; sections are [agent], [ca:NAME] and "
			    "[cert:NAME]",
			    section);
	}
	if (*kind != SECTION_AGENT && !safe_name(*name)) {
		p11e_err_set(p->err, P11E_EUSAGE,
			     "%s:%d: [%s]: a %s name has 1 to %d letters, digits, '.', '_' or '-' "
			     "and does not start with '.' (it names files in state_dir)",
			     p->file, p->section_line ? p->section_line : p->line, section,
			     *kind == SECTION_CA ? "CA" : "certificate", NAME_MAX_LEN);
		return false;
	}
	return true;
}

/* The section a line belongs to, added at its first line; NULL on an error
 * (a [ca:]/[cert:] defined again in another file) or without memory. */
static struct raw_section *open_section(struct parser *p, const char *section, enum section_kind kind,
					const char *name)
{
	struct raw_section *s = find_section(p, kind, name), *grown;

	if (s && s->file != p->file && kind != SECTION_AGENT) {
		fail(p, "[%s] is defined a second time (first in %s)", section, s->file);
		return NULL;
	}
	if (s)
		return s;
	if (p->n_sections == p->cap_sections) {
		size_t cap = p->cap_sections ? p->cap_sections * 2 : 16;

		grown = realloc(p->sections, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		p->sections = grown;
		p->cap_sections = cap;
	}
	s = &p->sections[p->n_sections++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->name = keep(p->cfg, name);
	s->file = p->file;
	s->line = p->section_line ? p->section_line : p->line;
	if (!s->name || p11e_strindex_add(&p->by_name[kind], p->n_sections - 1, section_name, p) != 0)
		return NULL;
	return s;
}

/* key = value into its section: a key once per section. */
static int add_setting(struct parser *p, struct raw_section *s, const char *key, const char *value)
{
	struct p11e_setting *v;

	/* An indented line continues the value above it (inih hands it over
	 * under the same key): long key URIs can be split over lines. */
	if (p->line_indented && s->n > 0 && strcmp(s->v[s->n - 1].key, key) == 0 &&
	    s->v[s->n - 1].file == p->file) {
		char *joined;

		if (asprintf(&joined, "%s%s", s->v[s->n - 1].value, value) < 0)
			return 0;
		s->v[s->n - 1].value = keep(p->cfg, joined);
		free(joined);
		return s->v[s->n - 1].value != NULL;
	}
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].key, key) == 0) {
			return fail(p, "'%s' is set twice in this section (first at line %d)", key,
				    s->v[i].line);
		}
	}
	v = realloc(s->v, (s->n + 1) * sizeof(*v));
	if (!v)
		return 0;
	s->v = v;
	v[s->n] =
		(struct p11e_setting){ keep_shared(p, key), keep_shared(p, value), p->file, p->line };
	if (!v[s->n].key || !v[s->n].value)
		return 0;
	s->n++;
	return 1;
}

static int handler(void *user, const char *section, const char *key, const char *value)
{
	struct parser *p = user;
	struct raw_section *s;
	enum section_kind kind = SECTION_AGENT;
	const char *name = NULL;

	if (p->err->status != P11E_OK)
		return 0; /* the first error is the one reported */
	if (!texts_ok(p, section, key, value) || !section_of(p, section, key, &kind, &name))
		return 0;
	s = open_section(p, section, kind, name);
	return s ? add_setting(p, s, key, value) : 0;
}

/* A hermetic load's "file": one of its texts, by name (ENOENT otherwise). */
static FILE *open_text(const struct parser *p, const char *path)
{
	for (size_t i = 0; i < p->n_texts; i++)
		if (strcmp(p->texts[i].name, path) == 0)
			return fmemopen((void *)p->texts[i].text, p->texts[i].len, "r");
	errno = ENOENT;
	return NULL;
}

static p11e_status parse_file(struct parser *p, const char *path)
{
	int rc;

	p->file = keep(p->cfg, path);
	p->line = 0;
	p->line_too_long = false;
	p->line_has_nul = false;
	p->section_line = 0;
	p->stream = p->texts ? open_text(p, path) : fopen(path, "re");
	if (!p->stream)
		return p11e_err_set(p->err, P11E_EUSAGE, "cannot read configuration %s: %s", path,
				    strerror(errno));
	p->len = p->pos = 0;
	for (;;) {
		size_t got;

		if (p->len + 65536 > p->cap) {
			char *grown = realloc(p->buf, p->cap ? p->cap * 2 : 131072);

			if (!grown) {
				fclose(p->stream);
				return p11e_err_set(p->err, P11E_EFAIL, "out of memory");
			}
			p->buf = grown;
			p->cap = p->cap ? p->cap * 2 : 131072;
		}
		got = fread(p->buf + p->len, 1, p->cap - p->len, p->stream);
		p->len += got;
		if (got == 0)
			break;
	}
	if (ferror(p->stream)) {
		fclose(p->stream);
		return p11e_err_set(p->err, P11E_EUSAGE, "cannot read configuration %s: %s", path,
				    strerror(errno));
	}
	fclose(p->stream);
	rc = ini_parse_stream(reader, p, handler, p);
	if (p->line_too_long)
		return p11e_err_set(p->err, P11E_EUSAGE,
				    "%s:%d: line longer than %d characters, which the INI parser "
				    "cannot take; split the value over lines that start with a "
				    "blank (they are joined without a separator)",
				    path, p->line, INI_MAX_LINE - 1);
	if (p->line_has_nul)
		return p11e_err_set(p->err, P11E_EUSAGE,
				    "%s:%d: the line holds a NUL byte; the configuration is UTF-8 "
				    "text",
				    path, p->line);
	if (p->err->status != P11E_OK)
		return p->err->status;
	if (rc != 0)
		return p11e_err_set(p->err, P11E_EUSAGE,
				    "%s:%d: syntax error (expected [section], key = value, or a "
				    "comment starting with ; or #)",
				    path, rc > 0 ? rc : p->line);
	return P11E_OK;
}

/* ---- interpretation --------------------------------------------------------- */

#define AT(s) (s)->file, (s)->line

static p11e_status bad(struct p11e_err *err, const struct p11e_setting *s, const char *what)
{
	return p11e_err_set(err, P11E_EUSAGE, "%s:%d: %s = %s: %s", AT(s), s->key, s->value, what);
}

static p11e_status get_duration(const struct p11e_setting *s, int64_t *out, struct p11e_err *err)
{
	int64_t d = p11e_parse_duration(s->value);

	if (d < 0)
		return bad(err, s, "not a duration (write e.g. 90s, 15m, 12h, 30d)");
	*out = d;
	return P11E_OK;
}

static p11e_status get_bool(const struct p11e_setting *s, bool *out, struct p11e_err *err)
{
	int b = p11e_parse_bool(s->value);

	if (b < 0)
		return bad(err, s, "write yes or no");
	*out = b;
	return P11E_OK;
}

/* Paths the agent writes or reads from any working directory (systemd
 * starts it in /). */
static p11e_status get_path(const struct p11e_setting *s, const char **out, struct p11e_err *err)
{
	if (s->value[0] != '/')
		return bad(err, s, "write an absolute path");
	*out = s->value;
	return P11E_OK;
}

/* fleet_slot = K/N: this host's number K (0 to N-1) among N hosts. */
static p11e_status get_slot(const struct p11e_setting *s, struct p11e_config *cfg,
			    struct p11e_err *err)
{
	unsigned long k, n = 0;
	char *end, *end2 = NULL;

	errno = 0;
	k = strtoul(s->value, &end, 10);
	if (*end == '/' && end[1] >= '0' && end[1] <= '9')
		n = strtoul(end + 1, &end2, 10);
	if (s->value[0] < '0' || s->value[0] > '9' || !end2 || *end2 || errno || n < 1 ||
	    n > P11E_FLEET_SLOTS_MAX || k >= n)
		return bad(err, s,
			   "write K/N: this host's number K, 0 to N-1, among N hosts (N at most "
			   "1000000), e.g. 17/1000");
	cfg->fleet_slot = (unsigned)k;
	cfg->fleet_slots = (unsigned)n;
	return P11E_OK;
}

static p11e_status load_agent(struct p11e_config *cfg, const struct raw_section *sec, bool on_host,
			      struct p11e_err *err)
{
	for (size_t i = 0; i < sec->n; i++) {
		const struct p11e_setting *s = &sec->v[i];
		p11e_status rc = P11E_OK;

		if (!in_list(agent_keys, s->key))
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s:%d: unknown key '%s' in [agent] (known: state_dir, "
					    "renew_before, wait, log, include_dir, "
					    "allow_inline_secrets, prometheus_file, hook_timeout, parallel, "
					    "fleet_slot)",
					    AT(s), s->key);
		if (strcmp(s->key, "state_dir") == 0) {
			rc = get_path(s, &cfg->state_dir, err);
		} else if (strcmp(s->key, "include_dir") == 0) {
			const char *dir = NULL;
			struct stat st;

			rc = get_path(s, &dir, err);
			/* a folder that is not there would drop its certificates unsaid */
			if (rc == P11E_OK && on_host && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
				rc = bad(err, s, "not a folder (the *.conf files in it are read)");
		} else if (strcmp(s->key, "prometheus_file") == 0) {
			const char *prom = NULL;
			size_t len = strlen(s->value);

			rc = get_path(s, &prom, err);
			if (rc == P11E_OK && (len < 6 || strcmp(s->value + len - 5, ".prom") != 0))
				rc = bad(err, s,
					 "the name must end in .prom (node_exporter reads only those)");
		} else if (strcmp(s->key, "renew_before") == 0) {
			rc = get_duration(s, &cfg->renew_before, err);
		} else if (strcmp(s->key, "wait") == 0) {
			rc = get_duration(s, &cfg->wait, err);
		} else if (strcmp(s->key, "log") == 0) {
			cfg->log_level = p11e_log_parse_level(s->value);
			if (cfg->log_level < 0)
				rc = bad(err, s, "write error, warn, info or debug");
		} else if (strcmp(s->key, "allow_inline_secrets") == 0) {
			rc = get_bool(s, &cfg->allow_inline_secrets, err);
		} else if (strcmp(s->key, "hook_timeout") == 0) {
			rc = get_duration(s, &cfg->hook_timeout, err);
			if (rc == P11E_OK && (cfg->hook_timeout < 1 || cfg->hook_timeout > 86400))
				rc = bad(err, s, "between 1s and 1d");
		} else if (strcmp(s->key, "parallel") == 0) {
			char *end;
			unsigned long n;

			errno = 0;
			n = strtoul(s->value, &end, 10);
			if (!*s->value || *end || errno || n < 1 || n > P11E_PARALLEL_MAX)
				rc = bad(err, s,
					 "a number of certificates at once, 1 to 256 (1: one after the other)");
			else
				cfg->parallel = (unsigned)n;
		} else if (strcmp(s->key, "fleet_slot") == 0) {
			rc = get_slot(s, cfg, err);
		}
		if (rc != P11E_OK)
			return rc;
	}
	cfg->agent = (struct p11e_settings){ sec->v, sec->n };
	return P11E_OK;
}

/* order_rate = N/DUR (e.g. 15/10s), or off. */
static p11e_status get_rate(const struct p11e_setting *s, unsigned *n, int64_t *window,
			    struct p11e_err *err)
{
	const char *slash = strchr(s->value, '/');
	unsigned long v;
	char *end;

	if (strcmp(s->value, "off") == 0) {
		*n = 0;
		*window = 0;
		return P11E_OK;
	}
	errno = 0;
	v = strtoul(s->value, &end, 10);
	if (!slash || end != slash || end == s->value || errno || v < 1 || v > 100000)
		return bad(err, s, "write orders/duration, e.g. 15/10s (or off)");
	*window = p11e_parse_duration(slash + 1);
	if (*window < 1 || *window > 86400)
		return bad(err, s, "the duration after '/' is 1s to 1d, e.g. 15/10s");
	*n = (unsigned)v;
	return P11E_OK;
}

static p11e_status load_ca(struct p11e_config *cfg, const struct raw_section *sec,
			   struct p11e_ca_conf *ca, struct p11e_err *err)
{
	const struct p11e_settings all = { sec->v, sec->n };
	const struct p11e_setting *type = p11e_settings_find(&all, "type");
	struct p11e_setting *rest;
	size_t n = 0;

	(void)cfg;
	ca->name = (char *)sec->name;
	ca->file = sec->file;
	ca->line = sec->line;
	if (!type)
		return p11e_err_set(err, P11E_EUSAGE, "%s:%d: [ca:%s] has no type (%s)", AT(sec),
				    sec->name, p11e_ca_types());
	ca->ops = p11e_ca_lookup(type->value);
	if (!ca->ops)
		return p11e_err_set(err, P11E_EUSAGE, "%s:%d: unknown CA type '%s' (known: %s)",
				    AT(type), type->value, p11e_ca_types());
	rest = calloc(sec->n, sizeof(*rest));
	if (!rest && sec->n)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	/* The CA's documented limit unless order_rate says otherwise. */
	ca->order_rate_n = ca->ops->order_rate_n;
	ca->order_rate_window = ca->ops->order_rate_window;
	for (size_t i = 0; i < sec->n; i++) {
		const struct p11e_setting *s = &sec->v[i];

		if (s == type)
			continue;
		/* The limiter is the agent's, not the provider's: kept out of its settings. */
		if (strcmp(s->key, "order_rate") == 0) {
			p11e_status rc = get_rate(s, &ca->order_rate_n, &ca->order_rate_window, err);

			if (rc != P11E_OK) {
				free(rest);
				return rc;
			}
			continue;
		}
		if (!in_list(ca->ops->ca_keys, s->key)) {
			free(rest);
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s:%d: unknown key '%s' for a CA of type %s (see "
					    "p11enroll.conf(5))",
					    AT(s), s->key, type->value);
		}
		if (!cfg->allow_inline_secrets && strstr(s->key, "secret") &&
		    !strstr(s->key, "_file")) {
			free(rest);
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s:%d: %s holds a secret inline; use a *_file key", AT(s),
					    s->key);
		}
		rest[n++] = *s;
	}
	ca->settings = (struct p11e_settings){ rest, n };
	return P11E_OK;
}

static p11e_status get_list(const struct p11e_setting *s, struct p11e_strlist *list,
			    p11e_status (*check)(const char *, struct p11e_err *),
			    struct p11e_err *err)
{
	if (p11e_strlist_split(list, s->value, ',') != 0)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t i = 0; i < list->n; i++) {
		if (check(list->v[i], err) != P11E_OK) {
			p11e_err_prefix(err, "%s:%d", AT(s));
			return err->status;
		}
	}
	return P11E_OK;
}

static p11e_status get_owner(const struct p11e_setting *s, bool group, uid_t *uid, gid_t *gid,
			     struct p11e_err *err)
{
	char *end;
	unsigned long id;

	errno = 0;
	id = strtoul(s->value, &end, 10);

	if (*s->value && !*end) {
		/* (uid_t)-1 means "unchanged" to chown: not a number to write */
		if (errno == ERANGE || id >= (unsigned long)(uid_t)-1)
			return bad(err, s, "not a user or group id (0 to 4294967294)");
		if (group)
			*gid = (gid_t)id;
		else
			*uid = (uid_t)id;
		return P11E_OK;
	}
	if (group) {
		struct group *g = getgrnam(s->value);

		if (!g)
			return bad(err, s, "no such group");
		*gid = g->gr_gid;
	} else {
		struct passwd *pw = getpwnam(s->value);

		if (!pw)
			return bad(err, s, "no such user");
		*uid = pw->pw_uid;
	}
	return P11E_OK;
}

/* The key URI as its store reads it (hsm/keystore.h), and what the store
 * says a configuration may not hold in it. */
static p11e_status check_key_uri(const struct p11e_config *cfg, const struct p11e_setting *s,
				 struct p11e_err *err)
{
	struct p11e_keystore *ks = NULL;
	p11e_status rc;

	rc = p11e_keystore_parse(s->value, NULL, &ks, err);
	if (rc == P11E_OK)
		rc = p11e_keystore_check_config(ks, cfg->allow_inline_secrets, err);
	if (rc != P11E_OK)
		p11e_err_prefix(err, "%s:%d", AT(s));
	p11e_keystore_close(ks);
	return rc;
}

/* Whether the key's store keeps certificates beside it (store_in_token). */
static bool key_store_keeps_certs(const char *key)
{
	struct p11e_keystore *ks = NULL;
	bool keeps;

	if (p11e_keystore_parse(key, NULL, &ks, NULL) != P11E_OK)
		return true; /* check_key_uri reports it */
	keeps = p11e_keystore_has_objects(ks);
	p11e_keystore_close(ks);
	return keeps;
}

static void cert_defaults(const struct p11e_config *cfg, const struct raw_section *sec,
			  struct p11e_cert_conf *c)
{
	c->name = (char *)sec->name;
	c->file = sec->file;
	c->line = sec->line;
	c->settings = (struct p11e_settings){ sec->v, sec->n };
	c->file_mode = 0644;
	c->file_owner = (uid_t)-1;
	c->file_group = (gid_t)-1;
	c->renew_before = cfg->renew_before;
	c->fleet_slot = cfg->fleet_slot;
	c->fleet_slots = cfg->fleet_slots;
	c->wait = cfg->wait;
	c->keep_old_keys = 0;
	c->fallback_after = 86400;
}

/* ca = NAME, read first: it decides which override keys exist. *ca_index:
 * where it stands in the section. */
static p11e_status cert_ca(const struct p11e_config *cfg, const struct raw_section *sec,
			   struct p11e_cert_conf *c, const struct p11e_ca_conf **ca, size_t *ca_index,
			   struct p11e_err *err)
{
	for (size_t i = 0; i < sec->n; i++) {
		if (strcmp(sec->v[i].key, "ca") == 0) {
			*ca_index = i;
			c->ca = sec->v[i].value;
			*ca = p11e_config_ca(cfg, c->ca);
			if (!*ca)
				return p11e_err_set(err, P11E_EUSAGE,
						    "%s:%d: ca = %s: there is no [ca:%s] section",
						    AT(&sec->v[i]), c->ca, c->ca);
		}
	}
	return P11E_OK;
}

static p11e_status get_number(const struct p11e_setting *s, int base, unsigned long max,
			      unsigned long *out, const char *what, struct p11e_err *err)
{
	char *end;

	*out = strtoul(s->value, &end, base);
	if (*end || !*s->value || *out > max)
		return bad(err, s, what);
	return P11E_OK;
}

/* One key of cert_keys into the certificate. */
static p11e_status cert_setting(const struct p11e_config *cfg, struct p11e_cert_conf *c,
				const struct p11e_setting *s, struct p11e_err *err)
{
	const char *k = s->key;
	p11e_status rc = P11E_OK;
	unsigned long n;

	if (strcmp(k, "key") == 0) {
		c->key = s->value;
		rc = check_key_uri(cfg, s, err);
	} else if (strcmp(k, "key_type") == 0) {
		rc = p11e_policy_parse(s->value, &c->key_spec, err);
		if (rc != P11E_OK)
			p11e_err_prefix(err, "%s:%d", AT(s));
	} else if (strcmp(k, "subject") == 0) {
		X509_NAME *name = NULL;

		c->subject = s->value;
		rc = p11e_subject_parse(s->value, &name, err);
		X509_NAME_free(name);
		if (rc != P11E_OK)
			p11e_err_prefix(err, "%s:%d", AT(s));
	} else if (strcmp(k, "dns") == 0) {
		rc = get_list(s, &c->dns, p11e_san_check_dns, err);
	} else if (strcmp(k, "ip") == 0) {
		rc = get_list(s, &c->ip, p11e_san_check_ip, err);
	} else if (strcmp(k, "email") == 0) {
		rc = get_list(s, &c->email, p11e_san_check_email, err);
	} else if (strcmp(k, "uri") == 0) {
		rc = get_list(s, &c->uri, p11e_san_check_uri, err);
	} else if (strcmp(k, "client_auth") == 0) {
		rc = get_bool(s, &c->client_auth, err);
	} else if (strcmp(k, "cert_file") == 0) {
		rc = get_path(s, &c->cert_file, err);
	} else if (strcmp(k, "chain_file") == 0) {
		rc = get_path(s, &c->chain_file, err);
	} else if (strcmp(k, "fullchain_file") == 0) {
		rc = get_path(s, &c->fullchain_file, err);
	} else if (strcmp(k, "file_owner") == 0) {
		rc = get_owner(s, false, &c->file_owner, &c->file_group, err);
	} else if (strcmp(k, "file_group") == 0) {
		rc = get_owner(s, true, &c->file_owner, &c->file_group, err);
	} else if (strcmp(k, "file_mode") == 0) {
		rc = get_number(s, 8, 0777, &n, "write an octal mode such as 0644 (owner-readable)",
				err);
		if (rc == P11E_OK && (n & 0400) == 0)
			rc = bad(err, s, "write an octal mode such as 0644 (owner-readable)");
		c->file_mode = (mode_t)n;
	} else if (strcmp(k, "store_in_token") == 0) {
		rc = get_bool(s, &c->store_in_token, err);
	} else if (strcmp(k, "renew_before") == 0) {
		rc = get_duration(s, &c->renew_before, err);
	} else if (strcmp(k, "wait") == 0) {
		rc = get_duration(s, &c->wait, err);
	} else if (strcmp(k, "rotate_key") == 0) {
		rc = get_bool(s, &c->rotate_key, err);
	} else if (strcmp(k, "keep_old_keys") == 0) {
		rc = get_number(s, 10, 100, &n, "write a number from 0 to 100", err);
		c->keep_old_keys = (unsigned)n;
	} else if (strcmp(k, "post_install") == 0) {
		c->post_install = s->value;
	} else if (strcmp(k, "fallback_ca") == 0) {
		c->fallback_ca = s->value;
		if (!p11e_config_ca(cfg, s->value))
			rc = bad(err, s, "there is no such [ca:] section");
	} else if (strcmp(k, "fallback_after") == 0) {
		rc = get_duration(s, &c->fallback_after, err);
	}
	return rc;
}

/* What a [cert:] needs once every key is read: a key, a key type, a
 * subject, and settings that agree with each other. */
static p11e_status cert_complete(struct p11e_config *cfg, const struct raw_section *sec,
				 struct p11e_cert_conf *c, struct p11e_err *err)
{
	if (!c->key)
		return p11e_err_set(err, P11E_EUSAGE, "%s:%d: [cert:%s] has no key = pkcs11:… URI",
				    AT(sec), sec->name);
	if (c->store_in_token && !key_store_keeps_certs(c->key)) {
		const struct p11e_setting *st = p11e_settings_find(&c->settings, "store_in_token");

		return p11e_err_set(err, P11E_EUSAGE,
				    "%s:%d: store_in_token = yes needs a PKCS#11 token, but the key of "
				    "[cert:%s] (%s) is in a store that keeps no certificates; the "
				    "chain goes to cert_file/"
				    "chain_file/fullchain_file: set store_in_token = no",
				    AT(st), sec->name, c->key);
	}
	if (c->fallback_ca && (!c->ca || strcmp(c->fallback_ca, c->ca) == 0))
		return bad(err, p11e_settings_find(&c->settings, "fallback_ca"),
			   c->ca ? "names the same CA as ca = : name another [ca:] section"
				 : "needs ca = NAME (the primary CA) too");
	if (!p11e_settings_find(&c->settings, "key_type") &&
	    p11e_policy_parse("ec-p256", &c->key_spec, err) != P11E_OK)
		return err->status;
	if (!c->subject) {
		char *subject;

		if (c->dns.n == 0)
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s:%d: [cert:%s] needs subject = CN=… or dns = …",
					    AT(sec), sec->name);
		if (asprintf(&subject, "CN=%s", c->dns.v[0]) < 0)
			return p11e_err_set(err, P11E_EFAIL, "out of memory");
		c->subject = keep(cfg, subject);
		free(subject);
	}
	return P11E_OK;
}

static p11e_status load_cert(struct p11e_config *cfg, const struct raw_section *sec,
			     struct p11e_cert_conf *c, struct p11e_err *err)
{
	const struct p11e_ca_conf *ca = NULL;
	struct p11e_setting *over;
	p11e_status rc;
	size_t n_over = 0, ca_index = 0;

	cert_defaults(cfg, sec, c);
	over = calloc(sec->n ? sec->n : 1, sizeof(*over));
	if (!over)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	c->overrides = (struct p11e_settings){ over, 0 };
	rc = cert_ca(cfg, sec, c, &ca, &ca_index, err);
	for (size_t i = 0; i < sec->n && rc == P11E_OK; i++) {
		const struct p11e_setting *s = &sec->v[i];
		const char *k = s->key;

		if (in_list(cert_keys, k)) {
			rc = cert_setting(cfg, c, s, err);
			continue;
		}
		/* Not a certificate's key: an override of the CA's settings, or a mistake. */
		if (ca && in_list(ca->ops->cert_keys, k) && i < ca_index)
			return p11e_err_set(err, P11E_EUSAGE,
					    "%s:%d: '%s' overrides a setting of the CA, so it "
					    "comes after ca = %s (line %d) in [cert:%s]",
					    AT(s), k, c->ca, sec->v[ca_index].line, sec->name);
		if (ca && in_list(ca->ops->cert_keys, k)) {
			over[n_over++] = *s;
			continue;
		}
		return p11e_err_set(err, P11E_EUSAGE,
				    "%s:%d: unknown key '%s' in [cert:%s]%s (see "
				    "p11enroll.conf(5))",
				    AT(s), k, sec->name,
				    ca ? "" : " (CA overrides need ca = NAME first)");
	}
	c->overrides.n = n_over;
	/* most certificates override nothing: keep only what is used */
	if (!n_over) {
		free(over);
		c->overrides.v = NULL;
	} else if ((over = realloc(over, n_over * sizeof(*over)))) {
		c->overrides.v = over;
	}
	if (rc != P11E_OK)
		return rc;
	return cert_complete(cfg, sec, c, err);
}

/* Every [ca:] alone, then what each [cert:] with a CA needs of it: the
 * providers' own rules, so that no mistake waits for a token or CA call. */
static p11e_status validate_cas(const struct p11e_config *cfg, struct p11e_err *err)
{
	char where[512];
	p11e_status rc;

	for (size_t i = 0; i < cfg->n_cas; i++) {
		const struct p11e_ca_conf *ca = &cfg->cas[i];

		if (!ca->ops->validate)
			continue;
		rc = ca->ops->validate(ca->name, &ca->settings, NULL, NULL, NULL, err);
		if (rc != P11E_OK) {
			/* messages without a line ("needs api_url") get the section's */
			if (strncmp(err->msg, ca->file, strlen(ca->file)) != 0)
				p11e_err_prefix(err, "%s:%d", ca->file, ca->line);
			return rc;
		}
	}
	/* [0..n_cas]: the CA's plain order needs checked; [n_cas+1..]: as a fallback */
	bool *plain_ok = calloc(2 * (cfg->n_cas + 1), sizeof(*plain_ok));
	bool *fallback_ok = plain_ok ? plain_ok + cfg->n_cas + 1 : NULL;

	if (!plain_ok)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = P11E_OK;
	for (size_t i = 0; i < cfg->n_certs && rc == P11E_OK; i++) {
		const struct p11e_cert_conf *c = &cfg->certs[i];
		const struct p11e_ca_conf *ca = c->ca ? p11e_config_ca(cfg, c->ca) : NULL;
		const struct p11e_ca_conf *fb =
			c->fallback_ca ? p11e_config_ca(cfg, c->fallback_ca) : NULL;
		size_t k = ca ? (size_t)(ca - cfg->cas) : 0;

		snprintf(where, sizeof(where), "%s:%d", c->file, c->line);
		/* The fallback orders with its own section alone (no overrides:
		 * they were written for the primary), so once per CA is enough. */
		if (fb && fb->ops->validate && !fallback_ok[fb - cfg->cas]) {
			const struct p11e_settings none = { NULL, 0 };

			rc = fb->ops->validate(fb->name, &fb->settings, c->name, where, &none, err);
			if (rc != P11E_OK) {
				p11e_err_prefix(err, "fallback_ca = %s", fb->name);
				break;
			}
			fallback_ok[fb - cfg->cas] = true;
		}
		if (!ca || !ca->ops->validate)
			continue;
		/* Without overrides the order needs are the CA's alone: checked
		 * once per CA, not once per certificate (a fleet has thousands). */
		if (!c->overrides.n && plain_ok[k])
			continue;
		rc = ca->ops->validate(ca->name, &ca->settings, c->name, where, &c->overrides, err);
		if (rc == P11E_OK && !c->overrides.n)
			plain_ok[k] = true;
	}
	free(plain_ok);
	return rc;
}

/* The journals decide which orders exist: a state_dir that another user may
 * write (or that is not ours or root's) is refused, not repaired. A missing
 * one is made 0700 by the journal. */
static p11e_status check_state_dir(const struct p11e_config *cfg, struct p11e_err *err)
{
	const struct p11e_setting *s = p11e_settings_find(&cfg->agent, "state_dir");
	char where[512] = "";
	struct stat st;

	if (s)
		snprintf(where, sizeof(where), "%s:%d: ", s->file, s->line);
	if (stat(cfg->state_dir, &st) != 0)
		return P11E_OK;
	if (!S_ISDIR(st.st_mode))
		return p11e_err_set(err, P11E_EUSAGE, "%sstate_dir %s is not a directory", where,
				    cfg->state_dir);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return p11e_err_set(err, P11E_EUSAGE,
				    "%sstate_dir %s belongs to uid %u, not to this user (uid %u) or "
				    "root; another user could change the journals: chown it or "
				    "choose another state_dir",
				    where, cfg->state_dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return p11e_err_set(err, P11E_EUSAGE,
				    "%sstate_dir %s may be written by %s (mode %04o); fix: chmod 700 "
				    "%s",
				    where, cfg->state_dir,
				    (st.st_mode & S_IWOTH) ? "others" : "its group",
				    (unsigned)(st.st_mode & 07777), cfg->state_dir);
	return P11E_OK;
}

static struct p11e_config *config_new(const char *path)
{
	struct p11e_config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return NULL;
	cfg->path = strdup(path);
	cfg->renew_before = 30 * 86400;
	cfg->wait = 600;
	cfg->log_level = -1;
	cfg->hook_timeout = P11E_HOOK_TIMEOUT_DEFAULT;
	cfg->state_dir = P11E_DEFAULT_STATE_DIR;
	return cfg;
}

/* include_dir = DIR: the files DIR/NAME.conf in name order (a hermetic load:
 * those of its texts). */
static p11e_status parse_included(struct parser *p)
{
	const struct raw_section *agent = find_section(p, SECTION_AGENT, "agent");
	const struct p11e_settings all = { agent ? agent->v : NULL, agent ? agent->n : 0 };
	const struct p11e_setting *dir = p11e_settings_find(&all, "include_dir");
	p11e_status rc = P11E_OK;
	char pattern[4096];
	glob_t g = { 0 };

	if (!dir)
		return P11E_OK;
	snprintf(pattern, sizeof(pattern), "%s/*.conf", dir->value);
	for (size_t k = 1; p->texts && k < p->n_texts && rc == P11E_OK; k++)
		if (fnmatch(pattern, p->texts[k].name, FNM_PATHNAME | FNM_PERIOD) == 0)
			rc = parse_file(p, p->texts[k].name);
	if (!p->texts && glob(pattern, 0, NULL, &g) == 0) {
		for (size_t k = 0; k < g.gl_pathc && rc == P11E_OK; k++)
			rc = parse_file(p, g.gl_pathv[k]);
	}
	globfree(&g);
	return rc;
}

/* The [ca:] sections, then the [cert:] ones (which name CAs), each kind
 * with its index by name. */
static p11e_status load_sections(struct p11e_config *cfg, const struct parser *p, struct p11e_err *err)
{
	p11e_status rc = P11E_OK;

	for (size_t i = 0; i < p->n_sections; i++)
		if (p->sections[i].kind == SECTION_CA)
			cfg->n_cas++;
		else if (p->sections[i].kind == SECTION_CERT)
			cfg->n_certs++;
	cfg->cas = calloc(cfg->n_cas + 1, sizeof(*cfg->cas));
	cfg->certs = calloc(cfg->n_certs + 1, sizeof(*cfg->certs));
	if (!cfg->cas || !cfg->certs)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	cfg->n_cas = cfg->n_certs = 0;
	for (size_t i = 0; i < p->n_sections && rc == P11E_OK; i++)
		if (p->sections[i].kind == SECTION_CA)
			rc = load_ca(cfg, &p->sections[i], &cfg->cas[cfg->n_cas++], err);
	for (size_t i = 0; i < cfg->n_cas && rc == P11E_OK; i++)
		if (p11e_strindex_add(&cfg->ca_index, i, ca_name, cfg) != 0)
			rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
	for (size_t i = 0; i < p->n_sections && rc == P11E_OK; i++)
		if (p->sections[i].kind == SECTION_CERT)
			rc = load_cert(cfg, &p->sections[i], &cfg->certs[cfg->n_certs++], err);
	for (size_t i = 0; i < cfg->n_certs && rc == P11E_OK; i++)
		if (p11e_strindex_add(&cfg->cert_index, i, cert_name, cfg) != 0)
			rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
	return rc;
}

/* Frees the parser; the settings arrays go to `owner`, as they live as
 * long as the configuration. */
static void parser_done(struct parser *p, struct p11e_config *owner)
{
	for (size_t i = 0; i < p->n_sections; i++) {
		struct p11e_setting **grown =
			realloc(owner->owned, (owner->n_owned + 1) * sizeof(*grown));

		if (!grown) {
			free(p->sections[i].v);
			continue;
		}
		owner->owned = grown;
		owner->owned[owner->n_owned++] = p->sections[i].v;
	}
	free(p->sections);
	for (size_t k = 0; k < sizeof(p->by_name) / sizeof(p->by_name[0]); k++)
		p11e_strindex_clear(&p->by_name[k]);
	p11e_strindex_clear(&p->keys);
	free(p->buf);
}

static p11e_status load_config(const char *path, const struct p11e_config_text *texts, size_t n_texts,
			       struct p11e_config **out, struct p11e_err *err)
{
	struct p11e_config *cfg = config_new(path);
	struct parser p = { .cfg = cfg, .err = err, .texts = texts, .n_texts = n_texts };
	const struct raw_section *agent;
	p11e_status rc;

	*out = NULL;
	if (!cfg)
		return p11e_err_set(err, P11E_EFAIL, "out of memory");
	rc = parse_file(&p, path);
	if (rc == P11E_OK)
		rc = parse_included(&p);
	if (rc != P11E_OK)
		goto out;
	agent = find_section(&p, SECTION_AGENT, "agent");
	if (agent) {
		/* a hermetic load (texts) looks at nothing on the host */
		rc = load_agent(cfg, agent, !texts, err);
		if (rc != P11E_OK)
			goto out;
	}
	rc = load_sections(cfg, &p, err);
	if (rc == P11E_OK)
		rc = validate_cas(cfg, err);
	if (rc == P11E_OK && !texts)
		rc = check_state_dir(cfg, err);
	if (rc != P11E_OK)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	parser_done(&p, cfg ? cfg : *out);
	p11e_config_free(cfg);
	return rc;
}

p11e_status p11e_config_load(const char *path, struct p11e_config **out, struct p11e_err *err)
{
	return load_config(path, NULL, 0, out, err);
}

p11e_status p11e_config_load_texts(const struct p11e_config_text *texts, size_t n,
				   struct p11e_config **out, struct p11e_err *err)
{
	*out = NULL;
	if (n == 0)
		return p11e_err_set(err, P11E_EUSAGE, "no configuration text");
	return load_config(texts[0].name, texts, n, out, err);
}

void p11e_config_free(struct p11e_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_cas; i++)
		free((void *)cfg->cas[i].settings.v);
	for (size_t i = 0; i < cfg->n_certs; i++) {
		struct p11e_cert_conf *c = &cfg->certs[i];

		p11e_strlist_free(&c->dns);
		p11e_strlist_free(&c->ip);
		p11e_strlist_free(&c->email);
		p11e_strlist_free(&c->uri);
		free((void *)c->overrides.v);
	}
	for (size_t i = 0; i < cfg->n_owned; i++)
		free(cfg->owned[i]);
	free(cfg->owned);
	p11e_strindex_clear(&cfg->cert_index);
	p11e_strindex_clear(&cfg->ca_index);
	free(cfg->cas);
	free(cfg->certs);
	p11e_arena_free(cfg->arena);
	free(cfg->kept);
	free(cfg->path);
	free(cfg);
}

const struct p11e_cert_conf *p11e_config_cert(const struct p11e_config *cfg, const char *name)
{
	size_t i = p11e_strindex_find(&cfg->cert_index, name, cert_name, cfg);

	if (i != (size_t)-1)
		return &cfg->certs[i];
	/* while loading, before the index is built */
	for (i = 0; !cfg->cert_index.n && i < cfg->n_certs; i++)
		if (cfg->certs[i].name && strcmp(cfg->certs[i].name, name) == 0)
			return &cfg->certs[i];
	return NULL;
}

const struct p11e_ca_conf *p11e_config_ca(const struct p11e_config *cfg, const char *name)
{
	size_t i = p11e_strindex_find(&cfg->ca_index, name, ca_name, cfg);

	if (i != (size_t)-1)
		return &cfg->cas[i];
	for (i = 0; !cfg->ca_index.n && i < cfg->n_cas; i++)
		if (cfg->cas[i].name && strcmp(cfg->cas[i].name, name) == 0)
			return &cfg->cas[i];
	return NULL;
}

void p11e_cert_where(const struct p11e_cert_conf *cert, const char *key, char *buf, size_t len)
{
	const struct p11e_setting *s = p11e_settings_find(&cert->settings, key);

	if (s)
		snprintf(buf, len, "%s:%d", s->file, s->line);
	else
		snprintf(buf, len, "%s:%d", cert->file, cert->line);
}
