/* SPDX-License-Identifier: Apache-2.0 */
/* A damaged journal (a crash, a full disk, a hand edit) is outside input:
 * the input is written as NAME.json into a private temporary state folder,
 * read with p11e_journal_peek as status and enroll do, its members read
 * back, changed and saved again (the history it carries is trimmed there). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "infile.h"
#include "journal.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const members[][2] = {
	{ "key", "id" },
	{ "key", "type" },
	{ "key", "next_id" },
	{ "csr", "pem" },
	{ "order", "ca" },
	{ "order", "ca_type" },
	{ "order", "idempotency_id" },
	{ "order", "order_id" },
	{ "order", "request_id" },
	{ "order", "status" },
	{ "cert", "chain" },
	{ "cert", "serial" },
	{ "previous", "key_id" },
	{ "previous", "order_id" },
	{ "last_error", "message" },
	{ "revocation", "reason" },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_journal j;
	struct p11e_err err = { 0 };
	bool found = false;

	p11e_log_set_level(P11E_LOG_ERROR);
	fuzz_input_file("journal", "fuzz.json", 0, data, size);
	if (p11e_journal_peek(fuzz_dir, "fuzz", &j, &found, &err) == P11E_OK && found) {
		for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
			(void)p11e_journal_str(&j, members[i][0], members[i][1]);
		(void)p11e_journal_num(&j, "cert", "not_after");
		(void)p11e_journal_num(&j, "order", "placed_after");
		(void)p11e_state_name(j.state);
		p11e_journal_set_str(&j, "order", "status", "Pending");
		p11e_journal_set_num(&j, "cert", "not_after", 1798000000);
		p11e_journal_error(&j, "fuzz", "EMS-0");
		p11e_journal_clear(&j, "previous");
		(void)p11e_journal_save(&j, j.state, "fuzz", &err);
	}
	p11e_journal_close(&j);
	p11e_err_clear(&err);
	return 0;
}
