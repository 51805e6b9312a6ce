/* SPDX-License-Identifier: Apache-2.0 */
/* p11enroll: certificates from the CAs of providers/ for keys that never
 * leave their HSM or TPM. This file is the command line only. */
#include <getopt.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hook.h"
#include "keys.h"
#include "log.h"
#include "p11e-config.h"
#include "provider.h"
#include "stop.h"

static const struct p11e_command commands[] = {
	{ "enroll", "NAME | --all [--wait DUR] [--dry-run]",
	  "Gets [cert:NAME] its certificate: the key (made in the token if there is none,\n"
	  "reused otherwise), a CSR, an order at the CA, a wait of up to DUR (default: the\n"
	  "configured wait) for issuance, then verification and installation. An\n"
	  "interrupted run is resumed from the journal in state_dir: no second key for a\n"
	  "submitted CSR, no second order while one is pending or its placement is unknown.\n"
	  "--all enrols every certificate not installed yet, [agent] parallel at once,\n"
	  "and ends with a summary (issued, pending, refused, failed); its exit is the\n"
	  "worst outcome.\n"
	  "--dry-run has the CA check the order it would place with the CSR of a\n"
	  "throwaway software key: no token, no journal, no order, nothing charged;\n"
	  "exit 0 accepted, 4 refused, 2 configuration.\n"
	  "Exit: 0 installed (or already), 2 configuration, 3 still pending (run again\n"
	  "later), 4 refused by the CA, 5 token, 1 anything else, 143/130 stopped by\n"
	  "SIGTERM/SIGINT within 2 s (the next run resumes from the journal).",
	  p11e_cmd_enroll },
	{ "renew", "[NAME… | --all] [--force] [--dry-run] [--wait DUR]",
	  "Renews the named certificates (or all) that are inside their renewal window\n"
	  "(renew_before before notAfter), resumes unfinished enrolments (a pending order is\n"
	  "followed, never placed again) and enrols certificates that have none yet.\n"
	  "A refused order or a failed verification waits for the operator (`enroll`\n"
	  "after the fix, or --force); renew reports it and orders nothing.\n"
	  "rotate_key = yes makes a new key pair (new CKA_ID) for the renewal; the old key\n"
	  "and its certificate object are removed once the new certificate is installed\n"
	  "(keep_old_keys keeps the newest N). --force ignores the window; --dry-run says\n"
	  "what would be done and calls nothing that costs money or changes the token.\n"
	  "Exit: 0 done or nothing due, 3 an order is still pending, else the first\n"
	  "failure's status; one certificate's failure does not stop the others;\n"
	  "143/130 stopped by SIGTERM/SIGINT within 2 s.",
	  p11e_cmd_renew },
	{ "keygen", "NAME",
	  "Makes the key pair of [cert:NAME] inside its token, or finds the one already\n"
	  "there (same label/id) and checks it against the key policy. Prints the key URI.\n"
	  "Exit: 0 done, 2 configuration, 5 token (login, missing token, a type the\n"
	  "token lacks, a key that breaks the policy).",
	  p11e_cmd_keygen },
	{ "csr", "NAME [-o FILE]",
	  "Builds the CSR of [cert:NAME], signed by its key in the token, and writes it\n"
	  "as PEM to FILE (atomically) or to standard output. The key must exist\n"
	  "(p11enroll keygen NAME).\n"
	  "Exit: 0 done, 2 configuration, 5 token.",
	  p11e_cmd_csr },
	{ "check", "[CA… | NAME…]",
	  "Checks the configuration, secret-file modes, token login and key presence of\n"
	  "certificates, the credentials of CAs and the product codes they are asked\n"
	  "for; one line per check. Without arguments, checks everything configured.\n"
	  "Exit non-zero on any failure.",
	  p11e_cmd_check },
	{ "products", "CA", "Lists what the CA offers this account (code, name, category).",
	  p11e_cmd_products },
	{ "orders", "CA [--since YYYY-MM-DD]",
	  "Lists the CA's inventory of orders, every page, optionally only those placed\n"
	  "since DATE.",
	  p11e_cmd_orders },
	{ "status", "[NAME…] [--json] [--prometheus FILE]",
	  "Shows where each certificate (or those named) stands: journal state, CA, order,\n"
	  "serial, notAfter and days left, the next action and when, the last error, a\n"
	  "revocation. Reads the journals without locking. --json (or the global --json)\n"
	  "prints one JSON document whose shape p11enroll(1) documents. --prometheus FILE\n"
	  "also writes node_exporter textfile metrics to FILE atomically (\"-\": print them\n"
	  "instead); without NAMEs, [agent] prometheus_file is written when set.\n"
	  "Healthy means installed, valid for more than a day, not revoked, nothing\n"
	  "waiting for a person; every other certificate needs attention and is shown\n"
	  "with its reason (damaged journal, rejected, verify-failed, order-unknown,\n"
	  "post_install failed, untracked order, never enrolled, failed or pending or\n"
	  "in progress without a certificate, expired or expiring, revoked).\n"
	  "Exit: 0 all healthy, 1 a certificate needs attention, 2 configuration.",
	  p11e_cmd_status },
	{ "revoke",
	  "NAME [--reason R] [--no-refund | --refund-status] | --ca CA --order ID [--reason R]",
	  "Asks the CA that issued the installed certificate of [cert:NAME] to revoke it,\n"
	  "and records the outcome in the journal (section revocation); `renew` then\n"
	  "replaces the certificate at once. R: unspecified, keyCompromise, caCompromise,\n"
	  "affiliationChanged, superseded (the default), cessationOfOperation. Repeating\n"
	  "it is harmless (already revoked is success). --ca CA --order ID revokes an\n"
	  "order no journal here holds (reconcile's \"unused\"). --no-refund and\n"
	  "--refund-status are for a CA that refunds.\n"
	  "Exit: 0 revoked (or already), 1 failure or nothing to revoke, 2 configuration\n"
	  "or a reason the CA cannot take, 4 refused by the CA.",
	  p11e_cmd_revoke },
	{ "reconcile",
	  "[CA…] [--json] [--since YYYY-MM-DD] [--full] [--include-expired] [--prometheus FILE]",
	  "Reads the order inventory of each CA (or those named), every page, and classes\n"
	  "every order p11enroll placed (its idempotency tag) or that names a configured\n"
	  "certificate's domain: installed (here and current), in-progress (a journal\n"
	  "follows it), unused (issued, paid, installed nowhere here), orphan-pending\n"
	  "(pending with no journal waiting), revoked-installed, expired-installed, ended.\n"
	  "Each line that needs attention says what to do. Incremental: lists the orders\n"
	  "placed since the last reconcile of that CA (state_dir/reconcile-CA.json) less a\n"
	  "day; --full lists all, --since from DATE. Expired orders are skipped unless\n"
	  "--include-expired. --prometheus FILE writes the counts per class as\n"
	  "node_exporter textfile metrics (\"-\": print them).\n"
	  "Exit: 0 nothing needs attention, 1 something does (or a CA failed), 2 usage.",
	  p11e_cmd_reconcile },
	{ "cancel", "NAME | --ca CA --order ID",
	  "Cancels an order not issued yet at its CA: the pending order of [cert:NAME]\n"
	  "(the journal then ends it like a refusal: the next enroll orders again with a\n"
	  "new key), or an order reconcile found pending with no journal here.\n"
	  "Exit: 0 cancelled (or already ended), 1 nothing to cancel or failure, 2\n"
	  "configuration, 4 refused by the CA (e.g. already issued: revoke it).",
	  p11e_cmd_cancel },
	{ "agent", "[--interval-min DUR] [--wait DUR]",
	  "Stays in the foreground: renews what is due (as `renew`), enrols certificates\n"
	  "that have none yet, writes [agent] prometheus_file after each round, and sleeps\n"
	  "until the next due time plus jitter (at most 1 h, at least --interval-min,\n"
	  "default 60s; a shorter one is a testing aid). A failing certificate is retried\n"
	  "with its own backoff (1 min doubling to 6 h); a pending order is asked again\n"
	  "after 30 s doubling to 15 min. Each renewal waits at most --wait (default 30s,\n"
	  "or the configured wait if shorter) for issuance. SIGTERM/SIGINT stop it within\n"
	  "2 s (the journal resumes a renewal cut short), SIGHUP reloads the configuration\n"
	  "(an invalid one is logged and the previous kept).\n"
	  "Exit: 0 stopped by a signal, 2 usage or configuration at start.",
	  p11e_cmd_agent },
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

/* The options each command takes ("=": it takes a value), so that a
 * mistyped one is named before the command runs. Keep in step with the
 * synopses above and with docs/bash-completion/p11enroll. */
static const struct {
	const char *command;
	const char *options[6];
} command_options[] = {
	{ "enroll", { "--all", "--wait=", "--dry-run" } },
	{ "renew", { "--all", "--force", "--dry-run", "--wait=" } },
	{ "csr", { "-o=", "--output=" } },
	{ "orders", { "--since=" } },
	{ "status", { "--json", "--prometheus=" } },
	{ "revoke", { "--reason=", "--ca=", "--order=", "--no-refund", "--refund-status" } },
	{ "reconcile", { "--json", "--since=", "--full", "--include-expired", "--prometheus=" } },
	{ "cancel", { "--ca=", "--order=" } },
	{ "agent", { "--interval-min=", "--wait=" } },
};

/* Edit distance of two short strings, capped: enough for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[40], prev, tmp;

	if (la >= sizeof(row) / sizeof(row[0]) || lb >= sizeof(row) / sizeof(row[0]))
		return (size_t)-1;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			tmp = row[j];
			row[j] = prev + (a[i - 1] != b[j - 1]);
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			if (tmp + 1 < row[j])
				row[j] = tmp + 1;
			prev = tmp;
		}
	}
	return row[lb];
}

/* Names the first option argv[1..] holds that `cmd` does not take, with the
 * nearest one it does take. False when all are known. */
static bool unknown_option(const struct p11e_command *cmd, int argc, char **argv)
{
	const char *const *opts = NULL;
	char known[160] = "";

	for (size_t i = 0; i < sizeof(command_options) / sizeof(command_options[0]); i++)
		if (strcmp(command_options[i].command, cmd->name) == 0)
			opts = command_options[i].options;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *best = NULL;
		size_t best_d = 3, n;
		bool found = false;

		if (strcmp(a, "--") == 0)
			return false;
		if (a[0] != '-' || a[1] == '\0')
			continue;
		for (size_t k = 0; opts && k < 6 && opts[k]; k++) {
			n = strcspn(opts[k], "=");
			if (strncmp(a, opts[k], n) == 0 && a[n] == '\0') {
				found = true;
				if (opts[k][n] == '=')
					i++; /* its value may start with '-' ("-o -") */
				break;
			}
		}
		if (found)
			continue;
		if (strcmp(a, "--json") == 0 || strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 ||
		    strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0 || strcmp(a, "-c") == 0 ||
		    strcmp(a, "--config") == 0) {
			p11e_error("%s: '%s' goes before the command: p11enroll %s%s %s …", cmd->name,
				   a, a, a[1] == 'c' || strcmp(a, "--config") == 0 ? " FILE" : "",
				   cmd->name);
			return true;
		}
		for (size_t k = 0; opts && k < 6 && opts[k]; k++) {
			n = strcspn(opts[k], "=");
			if (opts[k][n] == '=' && strncmp(a, opts[k], n) == 0 && a[n] == '=') {
				p11e_error("%s: write '%.*s %s', not '%s'", cmd->name, (int)n, a,
					   a + n + 1, a);
				return true;
			}
		}
		for (size_t k = 0; opts && k < 6 && opts[k]; k++) {
			char name[40];
			size_t d;

			snprintf(name, sizeof(name), "%.*s", (int)strcspn(opts[k], "="), opts[k]);
			d = distance(a, name);
			if (d < best_d) {
				best_d = d;
				best = opts[k];
			}
			if (strlen(known) + strlen(name) + 3 < sizeof(known))
				snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
					 *known ? ", " : "", name);
		}
		if (best)
			p11e_error("%s: unknown option '%s'; did you mean %.*s? (p11enroll help %s)",
				   cmd->name, a, (int)strcspn(best, "="), best, cmd->name);
		else
			p11e_error("%s: unknown option '%s'; it takes %s (p11enroll help %s)",
				   cmd->name, a, *known ? known : "no options", cmd->name);
		return true;
	}
	return false;
}

/* Prints `text` wrapped at HELP_WIDTH columns (words never split). */
#define HELP_WIDTH 79
static void print_wrapped(const char *text)
{
	size_t col = 0;

	while (*text) {
		size_t len = strcspn(text, " "), width = 0;

		for (size_t k = 0; k < len; k++)
			width += ((unsigned char)text[k] & 0xc0) != 0x80; /* UTF-8 characters */
		if (col && col + 1 + width > HELP_WIDTH) {
			putchar('\n');
			col = 0;
		} else if (col) {
			putchar(' ');
			col++;
		}
		fwrite(text, 1, len, stdout);
		col += width;
		text += len;
		text += strspn(text, " ");
	}
	putchar('\n');
}

/* A command's help; what the CAs of providers/ add for it goes before its
 * exit statuses (the last line that starts with "Exit:"). */
static void print_help(const struct p11e_command *cmd)
{
	const char *exits = NULL, *p;

	printf("usage: p11enroll %s %s\n\n", cmd->name, cmd->synopsis);
	for (p = strstr(cmd->help, "\nExit:"); p; p = strstr(p + 1, "\nExit:"))
		exits = p + 1;
	if (exits)
		printf("%.*s", (int)(exits - cmd->help), cmd->help);
	else
		printf("%s\n", cmd->help);
	for (size_t i = 0; p11e_ca_provider(i); i++) {
		const struct p11e_ca_note *note = p11e_ca_provider(i)->help;

		for (; note && note->command; note++)
			if (strcmp(note->command, cmd->name) == 0)
				print_wrapped(note->text);
	}
	if (exits)
		printf("%s\n", exits);
}

static void usage(FILE *out);

/* p11enroll help [COMMAND] */
static int help(int argc, char **argv)
{
	if (argc < 2) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			print_help(&commands[i]);
			return 0;
		}
	}
	p11e_error("help: unknown command '%s'; p11enroll help lists them", argv[1]);
	return P11E_EUSAGE;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: p11enroll [-c FILE] [-v | -q] [--json] COMMAND [ARGS]\n\n"
		     "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].synopsis);
	fprintf(out, "  %-9s %s\n", "help", "[COMMAND]");
	fprintf(out,
		"\nOptions:\n"
		"  -c, --config FILE  configuration (default: $P11ENROLL_CONFIG or %s)\n"
		"  -v, --verbose      debug messages (never secrets)\n"
		"  -q, --quiet        errors only\n"
		"      --json         one JSON document on standard output\n"
		"  -h, --help         this text; p11enroll help COMMAND for a command\n"
		"  -V, --version      the version\n\n"
		"Exit status: 0 done or nothing to do, 1 failure, 2 usage or configuration,\n"
		"3 pending, 4 refused by the CA, 5 token/HSM error. See p11enroll(1).\n",
		P11E_DEFAULT_CONFIG);
}

bool p11e_cli_wants_help(const struct p11e_command *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_help(cmd);
			return true;
		}
	}
	return false;
}

p11e_status p11e_cli_config(struct p11e_cli *cli, struct p11e_err *err)
{
	const char *path = cli->config_path;
	p11e_status rc;

	if (cli->cfg)
		return P11E_OK;
	if (!path)
		path = getenv("P11ENROLL_CONFIG");
	if (!path || !*path)
		path = P11E_DEFAULT_CONFIG;
	if (access(path, F_OK) != 0)
		return p11e_err_set(err, P11E_EUSAGE,
				    "no configuration at %s; give -c FILE or set P11ENROLL_CONFIG "
				    "(see p11enroll.conf(5))",
				    path);
	rc = p11e_config_load(path, &cli->cfg, err);
	if (rc != P11E_OK)
		return rc;
	p11e_cert_key_lock_dir(cli->cfg->state_dir);
	if (cli->verbosity == 0 && cli->cfg->log_level >= 0)
		p11e_log_set_level((p11e_log_level)cli->cfg->log_level);
	p11e_hook_set_timeout(cli->cfg->hook_timeout);
	return P11E_OK;
}

p11e_status p11e_cli_cert(struct p11e_cli *cli, const char *name, const struct p11e_cert_conf **out,
			  struct p11e_err *err)
{
	char names[512] = "";
	p11e_status rc = p11e_cli_config(cli, err);

	if (rc != P11E_OK)
		return rc;
	*out = p11e_config_cert(cli->cfg, name);
	if (*out)
		return P11E_OK;
	for (size_t i = 0; i < cli->cfg->n_certs; i++) {
		if (strlen(names) + strlen(cli->cfg->certs[i].name) + 3 >= sizeof(names))
			break;
		if (*names)
			strcat(names, ", ");
		strcat(names, cli->cfg->certs[i].name);
	}
	return p11e_err_set(err, P11E_EUSAGE, "%s has no [cert:%s] (certificates there: %s)",
			    cli->cfg->path, name, *names ? names : "none");
}

/* PINs, access keys and tokens live in this process's memory: no core
 * file of it, and no other process of the same user reading it. */
static void protect_secrets(void)
{
	struct rlimit none = { 0, 0 };

	setrlimit(RLIMIT_CORE, &none);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* The options before the command: -1 to go on, else the exit status. */
static int global_options(int argc, char **argv, struct p11e_cli *cli)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	/* '+': options after the command belong to the command. */
	while ((opt = getopt_long(argc, argv, "+c:vqhV", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cli->config_path = optarg;
			break;
		case 'v':
			cli->verbosity = 1;
			break;
		case 'q':
			cli->verbosity = -1;
			break;
		case 'j':
			cli->json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("p11enroll %s\n", P11E_VERSION);
			return 0;
		default:
			usage(stderr);
			return P11E_EUSAGE;
		}
	}
	if (cli->verbosity > 0)
		p11e_log_set_level(P11E_LOG_DEBUG);
	else if (cli->verbosity < 0)
		p11e_log_set_level(P11E_LOG_ERROR);
	return -1;
}

/* One command, its arguments from argv[0] (its name). */
static int run_command(const struct p11e_command *cmd, struct p11e_cli *cli, int argc, char **argv)
{
	struct p11e_err err = { 0 };
	bool agent = strcmp(cmd->name, "agent") == 0;
	p11e_status rc;

	if (p11e_cli_wants_help(cmd, argc, argv))
		return 0;
	if (unknown_option(cmd, argc, argv))
		return P11E_EUSAGE;
	/* The commands that wait (for a CA, between polls, for a due
	 * time) stop within P11E_STOP_GRACE_MS of SIGTERM/SIGINT; the
	 * journal resumes their work. The agent's stop is a success. */
	if (strcmp(cmd->name, "enroll") == 0 || strcmp(cmd->name, "renew") == 0 || agent)
		p11e_stop_init(agent ? 0 : -1);
	/* Commands parse their own options from argv[0..]. */
	rc = cmd->run(cli, argc, argv, &err);
	p11e_config_free(cli->cfg);
	if (p11e_stop_requested() && !agent) {
		p11e_warn("stopped by %s; the next run resumes from the journal",
			  p11e_stop_requested() == SIGINT ? "SIGINT" : "SIGTERM");
		return 128 + p11e_stop_requested();
	}
	if (rc != P11E_OK && rc != P11E_EPENDING && err.status != P11E_OK)
		p11e_error("%s", err.msg);
	return (int)rc;
}

int main(int argc, char **argv)
{
	struct p11e_cli cli = { 0 };
	int status;

	protect_secrets();
	if ((status = global_options(argc, argv, &cli)) >= 0)
		return status;
	if (optind >= argc) {
		usage(stderr);
		return P11E_EUSAGE;
	}
	if (strcmp(argv[optind], "help") == 0)
		return help(argc - optind, argv + optind);
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			return run_command(&commands[i], &cli, argc - optind, argv + optind);
	p11e_error("unknown command '%s'; p11enroll help lists them", argv[optind]);
	return P11E_EUSAGE;
}
