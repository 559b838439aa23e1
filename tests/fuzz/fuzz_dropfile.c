/*
 * fuzz_dropfile.c - the drop-file parser on arbitrary bytes, as a whole
 * file and as the head of a longer one.  Checks that a parse either
 * fails with SQ_EPARSE/SQ_ELIMIT and leaves nothing allocated, or gives
 * at least one recipient, a sender, offsets inside the input and a stored
 * header no longer than the input's plus a blank line, with no Bcc field.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dropfile.h"
#include "mailmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_dropfile_one(const char *s, size_t len, size_t total, int owner)
{
	struct dropfile_opts  o = { 0 };
	struct mailmsg_header h;
	struct dropfile       df;
	struct sq_err         err = { 0 };
	char                 *added;
	int                   rc;

	o.hostname = (len & 1) ? "fuzz.example" : NULL;
	o.default_sender = owner ? "owner@fuzz.example" : NULL;
	o.size_max = 1 << 20;
	rc = dropfile_parse(s, len, total, &o, &df, &err);
	if (rc != 0) {
		if ((rc != SQ_EPARSE && rc != SQ_ELIMIT) || df.env != NULL ||
		    df.header != NULL || err.msg[0] == '\0')
			abort();
		return;
	}
	if (df.env == NULL || df.env->n_rcpts == 0 || df.env->sender == NULL ||
	    df.rest_off > len || df.header_len > df.rest_off + 2 ||
	    strlen(df.header) != df.header_len)
		abort();
	mailmsg_scan(df.header, df.header_len, &h);
	if (mailmsg_find(&h, df.header, "bcc", 0) >= 0)
		abort();
	mailmsg_header_fini(&h);
	added = dropfile_added_fields(&df, "Thu, 1 Jan 2026 00:00:00 +0000",
	    "0123456789ABCDEF012", "fuzz.example");
	free(added);
	dropfile_fini(&df);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 256 * 1024)
		return 0;
	/* A copy of exactly size bytes, so reading past it is caught. */
	s = malloc(size > 0 ? size : 1);
	if (s == NULL)
		return 0;
	if (size > 0)
		memcpy(s, data, size);
	fuzz_dropfile_one(s, size, size, 1);
	fuzz_dropfile_one(s, size, size, 0);
	fuzz_dropfile_one(s, size, size + 4096, 1);
	free(s);
	return 0;
}
