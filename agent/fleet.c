/* SPDX-License-Identifier: Apache-2.0 */
/* Worker processes, not threads: a PKCS#11 module is initialised per
 * process, and so are libcurl's and our own globals (log level, stop
 * flag). A worker forks, runs one certificate's flow exactly as a single
 * `enroll NAME` would (its own journal lock, module, CA handle) and hands
 * back its status and message through a pipe; the parent only limits how
 * many run and collects results. */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "stop.h"
#include <sys/file.h>

struct result {
	int rc;
	int did;
	char msg[sizeof(((struct p11e_err *)0)->msg)];
};

struct worker {
	pid_t pid;
	int fd;
	size_t item;
	struct result res;
	size_t got;
};

unsigned p11e_fleet_parallel(const struct p11e_config *cfg)
{
	return cfg->parallel ? cfg->parallel : P11E_PARALLEL_DEFAULT;
}

static void record(struct p11e_fleet_item *it, p11e_status rc, bool did, const char *msg)
{
	it->ran = true;
	it->rc = rc;
	it->did = did;
	snprintf(it->msg, sizeof(it->msg), "%s", msg ? msg : "");
}

static void run_here(struct p11e_cli *cli, struct p11e_fleet_item *it, p11e_fleet_fn fn,
		     const void *opts)
{
	struct p11e_err err = { 0 };
	bool did = false;
	p11e_status rc = fn(cli, it->cert, opts, &did, &err);

	record(it, rc, did, rc == P11E_OK ? NULL : err.msg);
}

static void mask_signals(int how, sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(how, how == SIG_SETMASK ? old : &set, how == SIG_SETMASK ? NULL : old);
}

static __attribute__((noreturn)) void worker_main(struct p11e_cli *cli, struct p11e_fleet_item *it,
						  p11e_fleet_fn fn, const void *opts, int fd,
						  sigset_t *old)
{
	struct result out = { 0 };
	struct p11e_err err = { 0 };
	bool did = false;
	size_t off = 0;

	/* Signals stay blocked until this process has a stop pipe of its own. */
	p11e_stop_after_fork();
	signal(SIGHUP, SIG_IGN); /* the agent's reload is for the parent */
	mask_signals(SIG_SETMASK, old);
	out.rc = fn(cli, it->cert, opts, &did, &err);
	out.did = did;
	if (out.rc != P11E_OK)
		snprintf(out.msg, sizeof(out.msg), "%s", err.msg);
	while (off < sizeof(out)) {
		ssize_t w = write(fd, (char *)&out + off, sizeof(out) - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	fflush(stdout);
	fflush(stderr);
	_exit(out.rc);
}

static p11e_status start(struct p11e_cli *cli, struct p11e_fleet_item *items, size_t i,
			 p11e_fleet_fn fn, const void *opts, struct worker *w, struct p11e_err *err)
{
	int fds[2];
	sigset_t old;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return p11e_err_set(err, P11E_EFAIL, "cannot make a pipe for a worker: %s",
				    strerror(errno));
	fflush(stdout);
	fflush(stderr);
	mask_signals(SIG_BLOCK, &old);
	w->pid = fork();
	if (w->pid == 0) {
		close(fds[0]);
		worker_main(cli, &items[i], fn, opts, fds[1], &old);
	}
	mask_signals(SIG_SETMASK, &old);
	close(fds[1]);
	if (w->pid < 0) {
		close(fds[0]);
		return p11e_err_set(err, P11E_EFAIL, "cannot start a worker for [cert:%s]: %s",
				    items[i].cert->name, strerror(errno));
	}
	w->fd = fds[0];
	w->item = i;
	w->got = 0;
	memset(&w->res, 0, sizeof(w->res));
	return P11E_OK;
}

/* The worker's pipe reached its end: collect the result and the process. */
static void finish(struct p11e_fleet_item *items, struct worker *w)
{
	struct p11e_fleet_item *it = &items[w->item];
	int st = 0;

	close(w->fd);
	while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (w->got == sizeof(w->res)) {
		record(it, (p11e_status)w->res.rc, w->res.did, w->res.msg);
	} else {
		char msg[256];

		if (WIFSIGNALED(st))
			snprintf(msg, sizeof(msg),
				 "[cert:%s] its worker process ended by signal %d; "
				 "the journal resumes it on the next run",
				 it->cert->name, WTERMSIG(st));
		else
			snprintf(msg, sizeof(msg),
				 "[cert:%s] its worker process ended (exit status "
				 "%d) without a result; the journal resumes it on the next run",
				 it->cert->name, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		record(it, P11E_EFAIL, true, msg);
	}
	w->pid = 0;
}

/* Fills the free worker slots with the next items; an error when a worker
 * could not be started. */
static p11e_status fill_slots(struct p11e_cli *cli, struct p11e_fleet_item *items, size_t n,
			      size_t *next, size_t *live, p11e_fleet_fn fn, const void *opts,
			      struct worker *w, unsigned parallel, struct p11e_err *err)
{
	for (unsigned k = 0; k < parallel && *next < n && !p11e_stop_requested(); k++) {
		if (w[k].pid)
			continue;
		p11e_status rc = start(cli, items, *next, fn, opts, &w[k], err);

		if (rc != P11E_OK)
			return rc;
		(*next)++;
		(*live)++;
	}
	return P11E_OK;
}

/* Reads what the workers whose pipes are ready sent; a pipe at its end
 * finishes its worker. Returns how many finished. */
static size_t collect(struct p11e_fleet_item *items, struct worker *w, const struct pollfd *pfd,
		      unsigned parallel)
{
	size_t done = 0;

	for (unsigned k = 0; k < parallel; k++) {
		ssize_t r;

		if (!w[k].pid || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		r = read(w[k].fd, (char *)&w[k].res + w[k].got,
			 w[k].got < sizeof(w[k].res) ? sizeof(w[k].res) - w[k].got : 0);
		if (r > 0) {
			w[k].got += (size_t)r;
			if (w[k].got < sizeof(w[k].res))
				continue;
		} else if (r < 0 && errno == EINTR) {
			continue;
		}
		finish(items, &w[k]);
		done++;
	}
	return done;
}

p11e_status p11e_fleet_run(struct p11e_cli *cli, struct p11e_fleet_item *items, size_t n,
			   unsigned parallel, p11e_fleet_fn fn, const void *opts, struct p11e_err *err)
{
	struct worker *w = NULL;
	struct pollfd *pfd = NULL;
	size_t next = 0, live = 0;
	bool forwarded = false;
	p11e_status rc = P11E_OK;

	for (size_t i = 0; i < n; i++)
		items[i].ran = false;
	if (parallel <= 1 || n <= 1) {
		/* Today's order, in this process. */
		for (size_t i = 0; i < n && !p11e_stop_requested(); i++)
			run_here(cli, &items[i], fn, opts);
		return P11E_OK;
	}
	if (parallel > n)
		parallel = (unsigned)n;
	w = calloc(parallel, sizeof(*w));
	pfd = calloc(parallel + 1, sizeof(*pfd));
	if (!w || !pfd) {
		rc = p11e_err_set(err, P11E_EFAIL, "out of memory");
		goto out;
	}
	for (;;) {
		size_t np = parallel;

		if (rc == P11E_OK) {
			rc = fill_slots(cli, items, n, &next, &live, fn, opts, w, parallel, err);
			/* what runs is collected; the rest waits for the next run */
			if (rc != P11E_OK)
				next = n;
		}
		if (live == 0)
			break;
		if (p11e_stop_requested() && !forwarded) {
			for (unsigned k = 0; k < parallel; k++)
				if (w[k].pid)
					kill(w[k].pid, p11e_stop_requested());
			forwarded = true;
		}
		for (unsigned k = 0; k < parallel; k++)
			pfd[k] = (struct pollfd){ .fd = w[k].pid ? w[k].fd : -1, .events = POLLIN };
		if (!forwarded && p11e_stop_fd() >= 0)
			pfd[np++] = (struct pollfd){ .fd = p11e_stop_fd(), .events = POLLIN };
		if (poll(pfd, np, -1) < 0 && errno != EINTR) {
			rc = p11e_err_set(err, P11E_EFAIL, "poll: %s", strerror(errno));
			break;
		}
		live -= collect(items, w, pfd, parallel);
	}
out:
	/* Only after an error: the workers still running are waited for. */
	for (unsigned k = 0; w && k < parallel; k++)
		if (w[k].pid)
			finish(items, &w[k]);
	free(w);
	free(pfd);
	return rc;
}

p11e_status p11e_fleet_tally(const struct p11e_fleet_item *items, size_t n, struct p11e_fleet_tally *t)
{
	p11e_status fail = P11E_OK;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++) {
		const struct p11e_fleet_item *it = &items[i];

		if (!it->ran || (it->rc == P11E_OK && !it->did)) {
			t->skipped++;
		} else if (it->rc == P11E_OK) {
			t->done++;
		} else if (it->rc == P11E_EPENDING) {
			t->pending++;
		} else if (it->rc == P11E_EREJECTED) {
			t->refused++;
		} else {
			t->failed++;
			fail = fail == P11E_OK || fail == it->rc ? it->rc : P11E_EFAIL;
		}
	}
	if (fail != P11E_OK)
		return fail;
	return t->refused ? P11E_EREJECTED : t->pending ? P11E_EPENDING : P11E_OK;
}

void p11e_fleet_report(const struct p11e_fleet_item *it)
{
	char tag[160];

	snprintf(tag, sizeof(tag), "[cert:%s]", it->cert->name);
	if (strstr(it->msg, tag))
		p11e_error("%s", it->msg);
	else
		p11e_error("%s %s", tag, it->msg);
}
