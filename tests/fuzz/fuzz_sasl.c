/*
 * fuzz_sasl.c - server challenges fed into each SASL mechanism.
 *
 * Input: byte 0 = mode (bits 0-2: mechanism PLAIN, LOGIN, SCRAM-SHA-256,
 * XOAUTH2, OAUTHBEARER, then again; bit 3: the challenges are raw bytes
 * that this target base64-encodes, else they are passed as they are, to
 * exercise the decoder), then challenges separated by '\n'.  After the
 * last challenge the server "says 235" (sasl_success).  SCRAM uses the
 * RFC 7677 user, password and nonce, so a seed with the RFC's
 * server-first and server-final walks the whole exchange.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum sasl_mech fuzz_sasl_mechs[] = {
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_SCRAM_SHA_256,
	SASL_MECH_XOAUTH2,
	SASL_MECH_OAUTHBEARER,
};

static void
fuzz_sasl_check_out(const struct buf *out, size_t before)
{
	size_t i;

	/* Responses are base64 text only: never a line break. */
	for (i = before; i < out->len; i++)
		if (out->data[i] == '\r' || out->data[i] == '\n' ||
		    out->data[i] == '\0')
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sasl  *s;
	struct sq_err err;
	struct buf    out, enc;
	const char   *c, *end, *nl;
	size_t        before, n;
	unsigned      mode;
	int           rc, failed = 0;

	if (size == 0)
		return 0;
	mode = data[0];
	s = sasl_new(fuzz_sasl_mechs[(mode & 7) % 5], "user", "pencil",
	    "rOprNGfwEbeRWgbNEkqO", &err);
	if (s == NULL)
		abort();
	sasl_buf_init(&out);
	buf_init(&enc, 2 * SASL_CHALLENGE_MAX);
	if (sasl_initial(s, &out) < 0)
		abort();
	c = (const char *)data + 1;
	end = (const char *)data + size;
	while (c < end) {
		nl = memchr(c, '\n', (size_t)(end - c));
		n = nl != NULL ? (size_t)(nl - c) : (size_t)(end - c);
		out.len = 0;
		before = out.len;
		if (mode & 8) {
			enc.len = 0;
			if (sasl_b64_encode(c, n, &enc) != 0)
				break;
			rc = sasl_step(s, enc.data != NULL ? enc.data : "",
			    enc.len, &out);
		} else
			rc = sasl_step(s, c, n, &out);
		if (rc == SASL_ERROR) {
			if (out.len != before || sasl_error(s)[0] == '\0')
				abort();
			failed = 1;
		} else if (failed)
			abort(); /* an error is final */
		fuzz_sasl_check_out(&out, before);
		c += n + 1;
	}
	rc = sasl_success(s);
	if (rc != SASL_DONE && rc != SASL_ERROR)
		abort();
	if (failed && rc != SASL_ERROR)
		abort();
	if (strlen(sasl_error(s)) >= 256 || strstr(sasl_error(s), "pencil"))
		abort();
	buf_fini(&enc);
	sasl_buf_wipe(&out);
	sasl_free(s);
	return 0;
}
