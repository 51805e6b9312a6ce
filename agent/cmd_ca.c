/* SPDX-License-Identifier: Apache-2.0 */
/* check, products, orders: what an operator asks of the configuration, the
 * tokens and the CAs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <time.h>

#include <cjson/cJSON.h>

#include "ca.h"
#include "cli.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "p11uri.h"
#include "secret.h"

/* ---- check ------------------------------------------------------------------ */

struct checks {
	struct p11e_cli *cli;
	cJSON *list;
	p11e_status worst;
	int failed;
};

static void report(struct checks *c, const char *target, const char *what, p11e_status rc,
		   const char *message)
{
	cJSON *item = cJSON_CreateObject();

	cJSON_AddStringToObject(item, "target", target);
	cJSON_AddStringToObject(item, "check", what);
	cJSON_AddBoolToObject(item, "ok", rc == P11E_OK);
	cJSON_AddStringToObject(item, "message", message ? message : "");
	cJSON_AddItemToArray(c->list, item);
	if (rc != P11E_OK) {
		c->failed++;
		if (c->worst == P11E_OK)
			c->worst = rc;
	}
	if (!c->cli->json)
		printf("%-4s %-14s %-18s %s\n", rc == P11E_OK ? "ok" : "FAIL", target, what,
		       message ? message : "");
}

/* A product code as the CA lists it, less an ending that orders the
 * listed code another way (the provider's product_suffixes). */
static bool product_listed(const struct p11e_ca_ops *ops, const struct p11e_product *list, size_t n,
			   const char *code)
{
	size_t len = strlen(code);

	for (const char *const *sfx = ops->product_suffixes; sfx && *sfx; sfx++) {
		size_t sl = strlen(*sfx);

		if (len > sl && strcmp(code + len - sl, *sfx) == 0) {
			len -= sl;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i].code) == len && strncmp(list[i].code, code, len) == 0)
			return true;
	return false;
}

static void check_one_product(struct checks *c, const char *target, const char *ca,
			      const struct p11e_ca_ops *ops, const struct p11e_setting *s,
			      const struct p11e_product *list, size_t n)
{
	char msg[700];

	if (!s || !s->value || !*s->value)
		return;
	if (product_listed(ops, list, n, s->value)) {
		snprintf(msg, sizeof(msg), "%s (%s) is offered to this account", s->value, s->key);
		report(c, target, "product", P11E_OK, msg);
		return;
	}
	snprintf(msg, sizeof(msg),
		 "%s:%d: %s = %s is not among the %zu products [ca:%s] offers this account "
		 "(codes differ between sandbox and production); `p11enroll products %s` lists them",
		 s->file ? s->file : "?", s->line, s->key, s->value, n, ca, ca);
	report(c, target, "product", P11E_EUSAGE, msg);
}

/* Asks the CA whether the product codes the configuration orders exist for
 * this account, so that a wrong code is caught before a key is made. */
static void check_products(struct checks *c, const char *target, const char *name,
			   struct p11e_ca_handle *h)
{
	const struct p11e_ca_conf *conf = p11e_config_ca(c->cli->cfg, name);
	const struct p11e_setting *def =
		conf ? p11e_settings_find(&conf->settings, "default_product") : NULL;
	struct p11e_ca_result res = { 0 };
	struct p11e_product *list = NULL;
	struct p11e_err err = { 0 };
	bool any = def != NULL;
	size_t n = 0;

	for (size_t i = 0; i < c->cli->cfg->n_certs; i++) {
		const struct p11e_cert_conf *cert = &c->cli->cfg->certs[i];

		if (cert->ca && strcmp(cert->ca, name) == 0 &&
		    p11e_settings_find(&cert->overrides, "product"))
			any = true;
	}
	if (!any)
		return;
	h->ops->products(h->ca, &list, &n, &res);
	if (res.outcome != P11E_CA_OK) {
		p11e_ca_failure(&res, "cannot list the products", &err);
		report(c, target, "product", err.status, err.msg);
		goto out;
	}
	if (n == 0) {
		/* Nothing to compare with (a CA may list per group): not a failure. */
		report(c, target, "product", P11E_OK,
		       "the CA lists no products for this account; product codes not checked");
		goto out;
	}
	check_one_product(c, target, name, h->ops, def, list, n);
	for (size_t i = 0; i < c->cli->cfg->n_certs; i++) {
		const struct p11e_cert_conf *cert = &c->cli->cfg->certs[i];
		char cert_target[160];

		if (!cert->ca || strcmp(cert->ca, name) != 0)
			continue;
		snprintf(cert_target, sizeof(cert_target), "cert:%s", cert->name);
		check_one_product(c, cert_target, name, h->ops,
				  p11e_settings_find(&cert->overrides, "product"), list, n);
	}
out:
	free(list);
	p11e_ca_result_clear(&res);
}

static void check_ca(struct checks *c, const char *name)
{
	struct p11e_ca_handle h;
	struct p11e_ca_result res = { 0 };
	struct p11e_err err = { 0 };
	char target[160];
	p11e_status rc;

	snprintf(target, sizeof(target), "ca:%s", name);
	rc = p11e_ca_handle_open(c->cli->cfg, name, &h, &err);
	report(c, target, "configuration", rc, rc == P11E_OK ? "settings and secret files" : err.msg);
	if (rc != P11E_OK)
		return;
	h.ops->check(h.ca, &res);
	if (res.outcome == P11E_CA_OK) {
		report(c, target, "credentials", P11E_OK,
		       res.message[0] ? res.message : "accepted by the CA");
		check_products(c, target, name, &h);
	} else {
		p11e_ca_failure(&res, "credentials", &err);
		report(c, target, "credentials", err.status, err.msg);
	}
	p11e_ca_result_clear(&res);
	p11e_ca_handle_close(&h);
}

static void check_cert(struct checks *c, const struct p11e_cert_conf *cert)
{
	struct p11e_journal j;
	struct p11e_cert_key ck;
	struct p11e_err err = { 0 };
	struct p11e_uri *uri = NULL;
	char target[160], msg[600];
	bool found = false;
	p11e_status rc;

	snprintf(target, sizeof(target), "cert:%s", cert->name);
	report(c, target, "configuration", P11E_OK, "key type, subject and names are valid");
	if (!cert->ca)
		report(c, target, "ca", P11E_EUSAGE, "no ca = NAME: enroll cannot order");
	rc = p11e_uri_parse(cert->key, &uri, &err);
	if (rc == P11E_OK && uri->pin_source && strncmp(uri->pin_source, "env:", 4) != 0) {
		rc = p11e_secret_check_file(uri->pin_source, "pin-source", &err);
		report(c, target, "PIN file", rc, rc == P11E_OK ? "mode is private" : err.msg);
		p11e_err_clear(&err);
		/* The login would only fail on the same file: say it once. */
		if (rc != P11E_OK) {
			p11e_uri_free(uri);
			return;
		}
	}
	p11e_uri_free(uri);
	p11e_journal_peek(c->cli->cfg->state_dir, cert->name, &j, &found, &err);
	p11e_err_clear(&err);
	rc = p11e_cert_key_open(cert, found ? p11e_journal_str(&j, "key", "id") : NULL, &ck, &err);
	if (rc != P11E_OK && !p11e_cert_key_logged_in(&ck)) {
		report(c, target, "token login", rc, err.msg);
	} else {
		report(c, target, "token login", P11E_OK, p11e_cert_key_where(&ck));
		if (rc != P11E_OK)
			report(c, target, "key", rc, err.msg);
		else if (!ck.have_key)
			report(c, target, "key", P11E_OK, "none yet: enroll or keygen makes it");
		else {
			snprintf(msg, sizeof(msg), "'%s' %s, within the policy, not extractable",
				 ck.key.label, ck.key.spec->name);
			report(c, target, "key", P11E_OK, msg);
		}
	}
	p11e_cert_key_close(&ck);
	p11e_journal_close(&j);
}

p11e_status p11e_cmd_check(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct checks c = { .cli = cli };
	p11e_status rc = p11e_cli_config(cli, err);

	if (rc != P11E_OK)
		return rc;
	c.list = cJSON_CreateArray();
	if (argc <= 1) {
		for (size_t i = 0; i < cli->cfg->n_cas; i++)
			check_ca(&c, cli->cfg->cas[i].name);
		for (size_t i = 0; i < cli->cfg->n_certs; i++)
			check_cert(&c, &cli->cfg->certs[i]);
	}
	for (int i = 1; i < argc; i++) {
		const struct p11e_cert_conf *cert = p11e_config_cert(cli->cfg, argv[i]);

		if (p11e_config_ca(cli->cfg, argv[i]))
			check_ca(&c, argv[i]);
		if (cert)
			check_cert(&c, cert);
		if (!cert && !p11e_config_ca(cli->cfg, argv[i]))
			report(&c, argv[i], "configuration", P11E_EUSAGE,
			       "no [ca:…] or [cert:…] of that name");
	}
	if (cli->json) {
		cJSON *doc = cJSON_CreateObject();
		char *text;

		cJSON_AddBoolToObject(doc, "ok", c.failed == 0);
		cJSON_AddItemToObject(doc, "checks", c.list);
		text = cJSON_Print(doc);
		printf("%s\n", text);
		free(text);
		cJSON_Delete(doc);
	} else {
		cJSON_Delete(c.list);
	}
	if (c.failed)
		return p11e_err_set(err, c.worst, "%d check(s) failed", c.failed);
	return P11E_OK;
}

/* ---- products and orders ---------------------------------------------------- */

static p11e_status open_named_ca(struct p11e_cli *cli, int argc, char **argv, const char *usage,
				 struct p11e_ca_handle *h, struct p11e_err *err)
{
	p11e_status rc;

	if (argc < 2 || argv[1][0] == '-')
		return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll %s", usage);
	rc = p11e_cli_config(cli, err);
	if (rc != P11E_OK)
		return rc;
	return p11e_ca_handle_open(cli->cfg, argv[1], h, err);
}

static void print_json(cJSON *doc)
{
	char *text = cJSON_Print(doc);

	printf("%s\n", text ? text : "null");
	free(text);
	cJSON_Delete(doc);
}

p11e_status p11e_cmd_products(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct p11e_ca_handle h;
	struct p11e_ca_result res = { 0 };
	struct p11e_product *list = NULL;
	size_t n = 0;
	p11e_status rc;

	if (argc != 2)
		return p11e_err_set(err, P11E_EUSAGE, "usage: p11enroll products CA");
	rc = open_named_ca(cli, argc, argv, "products CA", &h, err);
	if (rc != P11E_OK)
		return rc;
	h.ops->products(h.ca, &list, &n, &res);
	if (res.outcome != P11E_CA_OK) {
		rc = p11e_ca_failure(&res, "cannot list the products", err);
		goto out;
	}
	if (cli->json) {
		cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "products");

		cJSON_AddStringToObject(doc, "ca", argv[1]);
		cJSON_AddStringToObject(doc, "type", h.ops->type);
		for (size_t i = 0; i < n; i++) {
			cJSON *p = cJSON_CreateObject();

			cJSON_AddStringToObject(p, "code", list[i].code);
			cJSON_AddStringToObject(p, "name", list[i].name);
			cJSON_AddStringToObject(p, "category", list[i].category);
			cJSON_AddItemToArray(arr, p);
		}
		print_json(doc);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%-28s %s%s%s%s\n", list[i].code, list[i].name,
			       list[i].category[0] ? " (" : "", list[i].category,
			       list[i].category[0] ? ")" : "");
		if (n == 0)
			p11e_warn("[ca:%s] offers no products to this account%s%s%s", argv[1],
				  h.ops->no_products_hint ? " (" : "",
				  h.ops->no_products_hint ? h.ops->no_products_hint : "",
				  h.ops->no_products_hint ? ")" : "");
	}
out:
	free(list);
	p11e_ca_result_clear(&res);
	p11e_ca_handle_close(&h);
	return rc;
}

p11e_status p11e_cmd_orders(struct p11e_cli *cli, int argc, char **argv, struct p11e_err *err)
{
	struct p11e_ca_handle h;
	time_t since = 0;
	cJSON *doc = NULL, *arr = NULL;
	p11e_status rc;
	unsigned page = 1, pages = 1;
	size_t total = 0;

	if (argc == 4 && strcmp(argv[2], "--since") == 0) {
		rc = p11e_since_parse(argv[3], &since, err);
		if (rc != P11E_OK)
			return rc;
	} else if (argc != 2) {
		return p11e_err_set(err, P11E_EUSAGE,
				    "usage: p11enroll orders CA [--since YYYY-MM-DD]");
	}
	rc = open_named_ca(cli, argc, argv, "orders CA [--since YYYY-MM-DD]", &h, err);
	if (rc != P11E_OK)
		return rc;
	if (cli->json) {
		doc = cJSON_CreateObject();
		cJSON_AddStringToObject(doc, "ca", argv[1]);
		cJSON_AddStringToObject(doc, "type", h.ops->type);
		arr = cJSON_AddArrayToObject(doc, "orders");
	}
	for (page = 1; page <= pages; page++) {
		struct p11e_order_page pg = { 0 };
		struct p11e_ca_result res = { 0 };

		h.ops->list_orders(h.ca, since, page, &pg, &res);
		if (res.outcome != P11E_CA_OK) {
			rc = p11e_ca_failure(&res, "cannot list the orders", err);
			p11e_err_prefix(err, "page %u", page);
			p11e_ca_result_clear(&res);
			free(pg.rows);
			goto out;
		}
		pages = pg.pages;
		for (size_t i = 0; i < pg.n; i++) {
			const struct p11e_order_row *r = &pg.rows[i];

			total++;
			if (arr) {
				cJSON *o = cJSON_CreateObject();

				cJSON_AddStringToObject(o, "order_id", r->order_id);
				cJSON_AddStringToObject(o, "request_id", r->request_id);
				cJSON_AddStringToObject(o, "status", r->status);
				cJSON_AddStringToObject(o, "domain", r->domain);
				cJSON_AddStringToObject(o, "product", r->product);
				cJSON_AddStringToObject(o, "ordered", r->ordered);
				cJSON_AddStringToObject(o, "expires", r->expires);
				cJSON_AddStringToObject(o, "serial", r->serial);
				cJSON_AddItemToArray(arr, o);
			} else {
				printf("%-14s %-14s %-24s %-30s %-10s %-20s %s\n", r->order_id,
				       r->request_id[0] ? r->request_id : "-", r->status, r->domain,
				       r->product, r->ordered, r->expires[0] ? r->expires : "-");
			}
		}
		free(pg.rows);
		p11e_ca_result_clear(&res);
	}
	if (doc) {
		print_json(doc);
		doc = NULL;
	} else {
		p11e_info("[ca:%s] %zu order(s)", argv[1], total);
	}
out:
	cJSON_Delete(doc);
	p11e_ca_handle_close(&h);
	return rc;
}
