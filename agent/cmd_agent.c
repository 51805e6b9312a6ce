/* SPDX-License-Identifier: Apache-2.0 */
/* agent: the foreground scheduler. Each round renews what is due (the
 * same p11e_renew as `renew`), writes the metrics file, and sleeps until
 * the next due time plus a little jitter, never longer than an hour so
 * that configuration changes and retries are picked up. SIGTERM/SIGINT
 * stop it (at once while it sleeps), SIGHUP reloads the configuration.
 * A certificate that fails is retried with its own exponential backoff;
 * the others go on. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "fleet.h"
#include "hook.h"
#include "log.h"
#include "renew.h"
#include "status.h"
#include "stop.h"
#include "strindex.h"

#define USAGE "usage: p11enroll agent [--interval-min DUR] [--wait DUR]"
#define SLEEP_MAX 3600 /* re-read due times at least hourly */
#define BACKOFF_MIN 60 /* after a failure: 1 min, 2 min, … */
#define BACKOFF_MAX (6 * 3600)
#define PENDING_MIN 30 /* an order still pending: 30 s, 1 min, … */
#define PENDING_MAX 900
#define JITTER_MAX 300

/* SIGTERM/SIGINT go through stop.h (main installs them): every wait of a
 * renewal in progress ends early, and a second signal exits at once. */
static volatile sig_atomic_t reload_req;
static int wake_pipe[2] = { -1, -1 };

static void on_hup(int sig)
{
	int saved = errno;

	(void)sig;
	reload_req = 1;
	if (wake_pipe[1] >= 0 && write(wake_pipe[1], "x", 1) < 0) {
		/* full pipe: a wake-up is pending anyway */
	}
	errno = saved;
}

struct slot {
	char *name;      /* the certificate's; its own copy across reloads */
	time_t retry_at; /* not before this (backoff), 0: none */
	int64_t backoff; /* seconds of the last failure backoff, 0: none */
	int64_t pending; /* seconds of the last pending backoff, 0: none */
	bool seen;
};

struct agent {
	struct p11e_cli *cli;
	struct slot *slots;
	size_t n_slots, cap_slots;
	struct p11e_strindex index; /* slot name → position in slots */
	int64_t interval_min;
	int64_t wait;
};

static const char *slot_name(const void *ctx, size_t i)
{
	return ((const struct agent *)ctx)->slots[i].name;
}

/* The slot of a certificate (made on first sight), by position: the
 * array may move when it grows. (size_t)-1: out of memory. */
static size_t slot_for(struct agent *a, const char *name)
{
	size_t i = p11e_strindex_find(&a->index, name, slot_name, a);

	if (i != (size_t)-1)
		return i;
	if (a->n_slots == a->cap_slots) {
		size_t cap = a->cap_slots ? a->cap_slots * 2 : 64;
		struct slot *grown = realloc(a->slots, cap * sizeof(*grown));

		if (!grown)
			return (size_t)-1;
		a->slots = grown;
		a->cap_slots = cap;
	}
	memset(&a->slots[a->n_slots], 0, sizeof(*a->slots));
	a->slots[a->n_slots].name = strdup(name);
	if (!a->slots[a->n_slots].name)
		return (size_t)-1;
	if (p11e_strindex_add(&a->index, a->n_slots, slot_name, a) != 0) {
		free(a->slots[a->n_slots].name);
		return (size_t)-1;
	}
	return a->n_slots++;
}

/* After slots were removed: positions moved. */
static void reindex(struct agent *a)
{
	p11e_strindex_clear(&a->index);
	for (size_t i = 0; i < a->n_slots; i++)
		if (p11e_strindex_add(&a->index, i, slot_name, a) != 0)
			break; /* slot_for makes a new slot; only backoff is lost */
}

static const char *when(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm))
		snprintf(buf, len, "?");
	return buf;
}

static int64_t grow(int64_t cur, int64_t min, int64_t max)
{
	return cur <= 0 ? min : cur * 2 > max ? max : cur * 2;
}

/* When `cert` wants to be looked at: its due time, or later while a
 * backoff runs. */
static time_t due_at(struct agent *a, const struct p11e_cert_conf *cert, size_t slot)
{
	time_t due = p11e_renew_due(a->cli->cfg, cert);
	struct slot *s = &a->slots[slot];

	s->seen = true;
	return s->retry_at > due ? s->retry_at : due;
}

/* The renewal itself, in a worker process when parallel > 1. */
static p11e_status renew_one(struct p11e_cli *cli, const struct p11e_cert_conf *cert, const void *opts,
			     bool *did, struct p11e_err *err)
{
	struct p11e_renew_opts o = *(const struct p11e_renew_opts *)opts;

	if (cert->wait < o.wait)
		o.wait = cert->wait;
	return p11e_renew(cli, cert, &o, did, err);
}

/* The outcome of a renewal: backoff or none; returns when to look next. */
static time_t settle(struct agent *a, const struct p11e_fleet_item *it, size_t slot)
{
	const struct p11e_cert_conf *cert = it->cert;
	struct slot *s = &a->slots[slot];
	time_t now = time(NULL), next;
	char t[40];
	p11e_status rc = it->rc;

	if (!it->ran || p11e_stop_requested())
		return now;
	if (rc == P11E_OK) {
		s->backoff = s->pending = 0;
		s->retry_at = 0;
	} else if (rc == P11E_EPENDING) {
		s->backoff = 0;
		s->pending = grow(s->pending, PENDING_MIN, PENDING_MAX);
		s->retry_at = now + s->pending;
		p11e_info("[cert:%s] order still pending; asking again at %s", cert->name,
			  when(s->retry_at, t, sizeof(t)));
	} else {
		s->pending = 0;
		s->backoff = grow(s->backoff, BACKOFF_MIN, BACKOFF_MAX);
		s->retry_at = now + s->backoff;
		p11e_fleet_report(it);
		p11e_warn("[cert:%s] renewal failed (exit status %d); next try at %s (backoff %llds)",
			  cert->name, (int)rc, when(s->retry_at, t, sizeof(t)), (long long)s->backoff);
	}
	next = p11e_renew_due(a->cli->cfg, cert);
	if (s->retry_at > next)
		next = s->retry_at;
	/* Still due after a run that said it was done: do not spin on it. */
	if (next <= now)
		next = s->retry_at = now + (a->interval_min > 0 ? a->interval_min : 1);
	return next;
}

/* One round: what is due is renewed, `[agent] parallel` at once; returns
 * the earliest time something wants to be looked at again. */
static time_t round_once(struct agent *a, time_t wake)
{
	const struct p11e_config *cfg = a->cli->cfg;
	struct p11e_renew_opts opts = { .wait = a->wait, .lock_wait = 5 };
	struct p11e_fleet_item *items = NULL;
	size_t *slots = NULL, n = 0, cap = 0;
	struct p11e_err err = { 0 };
	time_t now = time(NULL);

	for (size_t i = 0; i < cfg->n_certs && !p11e_stop_requested() && !reload_req; i++) {
		const struct p11e_cert_conf *cert = &cfg->certs[i];
		size_t slot = slot_for(a, cert->name);
		time_t due;

		if (slot == (size_t)-1) {
			wake = now + BACKOFF_MIN < wake ? now + BACKOFF_MIN : wake;
			continue;
		}
		due = due_at(a, cert, slot);
		if (due > now) {
			wake = due < wake ? due : wake;
			continue;
		}
		if (n == cap) {
			size_t c = cap ? cap * 2 : 16;
			struct p11e_fleet_item *gi = realloc(items, c * sizeof(*gi));
			size_t *gs = gi ? realloc(slots, c * sizeof(*gs)) : NULL;

			if (gi)
				items = gi;
			if (!gi || !gs) {
				wake = now + BACKOFF_MIN < wake ? now + BACKOFF_MIN : wake;
				break;
			}
			slots = gs;
			cap = c;
		}
		memset(&items[n], 0, sizeof(items[n]));
		items[n].cert = cert;
		slots[n++] = slot;
	}
	if (n && p11e_fleet_run(a->cli, items, n, p11e_fleet_parallel(cfg), renew_one, &opts, &err) !=
			 P11E_OK)
		p11e_error("agent: %s", err.msg);
	for (size_t i = 0; i < n; i++) {
		time_t next = settle(a, &items[i], slots[i]);

		wake = next < wake ? next : wake;
	}
	free(items);
	free(slots);
	return wake;
}

static void reload(struct agent *a)
{
	struct p11e_config *cfg = NULL;
	struct p11e_err err = { 0 };
	char *path = strdup(a->cli->cfg->path);

	reload_req = 0;
	if (!path) {
		p11e_error("agent: cannot reload the configuration: out of memory");
		return;
	}
	if (p11e_config_load(path, &cfg, &err) != P11E_OK) {
		p11e_error("agent: the configuration was not reloaded (the previous one stays in use): %s",
			   err.msg);
		free(path);
		return;
	}
	p11e_config_free(a->cli->cfg);
	a->cli->cfg = cfg;
	p11e_hook_set_timeout(cfg->hook_timeout);
	if (a->cli->verbosity == 0 && cfg->log_level >= 0)
		p11e_log_set_level((p11e_log_level)cfg->log_level);
	p11e_info("agent: reloaded %s (%zu certificate(s))", path, cfg->n_certs);
	free(path);
}

/* Waits until `deadline` or a signal, whichever comes first. */
static void sleep_until(time_t deadline)
{
	struct pollfd pfd[2] = { { .fd = wake_pipe[0], .events = POLLIN },
				 { .fd = p11e_stop_fd(), .events = POLLIN } };
	char drain[64];

	while (!p11e_stop_requested() && !reload_req) {
		time_t now = time(NULL);
		int64_t left = (int64_t)(deadline - now);

		if (left <= 0)
			return;
		/* Short slices notice a wall-clock jump (suspend, NTP step). */
		if (poll(pfd, 2, (int)(left > 60 ? 60000 : left * 1000)) > 0)
			while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
				;
	}
}

static p11e_status setup_signals(struct p11e_err *err)
{
	struct sigaction sa;

	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
		return p11e_err_set(err, P11E_EFAIL, "agent: cannot make a pipe: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	if (p11e_stop_fd() < 0 || sigaction(SIGHUP, &sa, NULL) != 0)
		return p11e_err_set(err, P11E_EFAIL, "agent: cannot handle signals: %s",
				    strerror(errno));
	return P11E_OK;
}

static p11e_status parse_args(struct agent *a, int argc, char **argv, struct p11e_err *err)
{
	for (int i = 1; i < argc; i++) {
		int64_t *target = NULL;

		if (strcmp(argv[i], "--interval-min") == 0 && i + 1 < argc)
			target = &a->interval_min;
		else if (strcmp(argv[i], "--wait") == 0 && i + 1 < argc)
			target = &a->wait;
		else
			return p11e_err_set(err, P11E_EUSAGE, USAGE);
		*target = p11e_parse_duration(argv[++i]);
		if (*target < 0)
			return p11e_err_set(err, P11E_EUSAGE, "%s %s: not a duration (e.g. 1s, 10m)",
					    argv[i - 1], argv[i]);
	}
	if (a->interval_min < 1 || a->interval_min > SLEEP_MAX)
		return p11e_err_set(err, P11E_EUSAGE, "--interval-min: between 1s and 1h");
	return P11E_OK;
}

/* Forgets the certificates that left the configuration (the slots a whole
 * round did not see). */
static void forget_gone(struct agent *a)
{
	for (size_t i = 0, gone = 0; i < a->n_slots || gone;) {
		if (i < a->n_slots && !a->slots[i].seen && !reload_req && !p11e_stop_requested()) {
			free(a->slots[i].name);
			a->slots[i] = a->slots[--a->n_slots];
			gone++;
		} else if (i < a->n_slots) {
			i++;
		} else {
			reindex(a);
			break;
		}
	}
}

/* Seconds to sleep until `wake`, with jitter, within the bounds. */
static int64_t sleep_for(const struct agent *a, time_t wake, time_t now, unsigned *seed)
{
	int64_t sleep_s = (int64_t)(wake - now), jitter;

	/* Spread a fleet's renewals: up to a tenth of the wait, 5 min at most. */
	jitter = sleep_s / 10 > JITTER_MAX ? JITTER_MAX : sleep_s / 10;
	if (jitter > 0)
		sleep_s += (int64_t)(rand_r(seed) % (unsigned)(jitter + 1));
	if (sleep_s < a->interval_min)
		sleep_s = a->interval_min;
	if (sleep_s > SLEEP_MAX)
		sleep_s = SLEEP_MAX;
	return sleep_s;
}

p11e_status p11e_cmd_agent(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct agent a = { .cli = cli, .interval_min = 60, .wait = 30 };
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	p11e_status rc = parse_args(&a, argc, argv, err);

	if (rc != P11E_OK)
		return rc;
	rc = p11e_cli_config(cli, err);
	if (rc != P11E_OK)
		return rc;
	rc = setup_signals(err);
	if (rc != P11E_OK)
		goto out;
	p11e_info("agent: started (pid %ld); %s, %zu certificate(s), state in %s", (long)getpid(),
		  cli->cfg->path, cli->cfg->n_certs, cli->cfg->state_dir);
	while (!p11e_stop_requested()) {
		time_t now = time(NULL), wake = now + SLEEP_MAX;
		const char *prom;
		struct p11e_err perr = { 0 };
		int64_t sleep_s;
		char t[40];

		if (reload_req)
			reload(&a);
		for (size_t i = 0; i < a.n_slots; i++)
			a.slots[i].seen = false;
		wake = round_once(&a, wake);
		forget_gone(&a);
		prom = p11e_settings_get(&cli->cfg->agent, "prometheus_file", NULL);
		if (prom && p11e_status_write_prometheus(cli->cfg, prom, &perr) != P11E_OK)
			p11e_warn("agent: %s", perr.msg);
		if (p11e_stop_requested() || reload_req)
			continue;
		/* A round reads every journal: give that memory back while asleep. */
		malloc_trim(0);
		now = time(NULL);
		sleep_s = sleep_for(&a, wake, now, &seed);
		p11e_info("agent: next round at %s", when(now + (time_t)sleep_s, t, sizeof(t)));
		sleep_until(now + (time_t)sleep_s);
	}
	p11e_info("agent: stopping (%s)", p11e_stop_requested() == SIGINT ? "SIGINT" : "SIGTERM");
out:
	for (size_t i = 0; i < a.n_slots; i++)
		free(a.slots[i].name);
	free(a.slots);
	p11e_strindex_clear(&a.index);
	if (wake_pipe[0] >= 0) {
		close(wake_pipe[0]);
		close(wake_pipe[1]);
		wake_pipe[0] = wake_pipe[1] = -1;
	}
	return rc;
}
