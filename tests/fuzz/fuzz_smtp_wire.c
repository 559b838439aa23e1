/*
 * fuzz_smtp_wire.c - the input as server output for the reply parser
 * (once in one feed, once in varying chunks: both must yield the same
 * replies), every complete reply through the EHLO caps parser, and the
 * input as a message body through the DATA encoder (whole and chunked:
 * same bytes, no bare CR or LF, no "." line before the end).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_WIRE_KEEP 64

struct fuzz_wire_run {
	size_t   n;
	int      codes[FUZZ_WIRE_KEEP];
	uint32_t hashes[FUZZ_WIRE_KEEP];
	int      failed;
};

static uint32_t
fuzz_wire_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;
	size_t   i;

	for (i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static void
fuzz_wire_check_reply(const struct smtp_wire_reply *r,
    struct fuzz_wire_run                           *run)
{
	struct smtp_wire_caps caps;
	size_t                i;

	if (r->code < 200 || r->code > 599 || r->lines == 0 ||
	    strlen(r->text) != r->text_len || strlen(r->enhanced) >= 16)
		abort();
	for (i = 0; i < r->text_len; i++)
		if (r->text[i] != '\n' &&
		    (r->text[i] < 0x20 || r->text[i] >= 0x7f))
			abort();
	smtp_wire_caps_parse(&caps, r->text, r->text_len);
	if (run->n < FUZZ_WIRE_KEEP) {
		run->codes[run->n] = r->code;
		run->hashes[run->n] = fuzz_wire_hash(r->text, r->text_len);
	}
	run->n++;
}

/* Parse data in chunks of step(i) bytes (0 = all at once). */
static void
fuzz_wire_parse(const uint8_t *data, size_t size, unsigned seed,
    struct fuzz_wire_run *run)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	struct sq_err           err;
	size_t                  off = 0, end, used;
	int                     rc;

	memset(run, 0, sizeof(*run));
	smtp_wire_parser_init(&wp);
	while (off < size) {
		end = size;
		if (seed != 0) {
			seed = seed * 1103515245u + 12345u;
			end = off + 1 + (seed >> 16) % 23;
			if (end > size)
				end = size;
		}
		while (off < end) {
			rc = smtp_wire_parse(&wp, data + off, end - off, &used,
			    &r, &err);
			if (used > end - off)
				abort();
			off += used;
			if (rc < 0) {
				run->failed = 1;
				smtp_wire_parser_fini(&wp);
				return;
			}
			if (rc == 0) {
				if (off != end)
					abort();
				break;
			}
			if (used == 0)
				abort();
			fuzz_wire_check_reply(&r, run);
		}
	}
	smtp_wire_parser_fini(&wp);
}

static void
fuzz_wire_check_body(const char *out, size_t n)
{
	size_t i, bol = 0;

	if (n < 3 || memcmp(out + n - 3, ".\r\n", 3) != 0)
		abort();
	for (i = 0; i < n; i++) {
		if (out[i] == '\r' && (i + 1 >= n || out[i + 1] != '\n'))
			abort();
		if (out[i] == '\n') {
			if (i == 0 || out[i - 1] != '\r')
				abort();
			/* A line "." anywhere but at the end ends DATA. */
			if (i - bol == 2 && out[bol] == '.' && i + 1 != n)
				abort();
			bol = i + 1;
		}
	}
}

static void
fuzz_wire_encode(const uint8_t *data, size_t size)
{
	struct smtp_wire_enc enc;
	char                *one, *many;
	size_t               n1, n2 = 0, off = 0, step;
	unsigned             seed = (unsigned)size;
	int                  last = 0;

	one = malloc(SMTP_WIRE_ENC_BOUND(size));
	many = malloc(SMTP_WIRE_ENC_BOUND(size));
	if (one == NULL || many == NULL)
		abort();
	smtp_wire_enc_init(&enc);
	n1 = smtp_wire_enc(&enc, data, size, 1, one);
	if (n1 > SMTP_WIRE_ENC_BOUND(size))
		abort();
	fuzz_wire_check_body(one, n1);
	while (off < size) {
		seed = seed * 1103515245u + 12345u;
		step = 1 + (seed >> 16) % 9;
		if (step > size - off)
			step = size - off;
		last = off + step == size && ((seed >> 20) & 1);
		n2 += smtp_wire_enc(&enc, data + off, step, last, many + n2);
		off += step;
	}
	if (!last)
		n2 += smtp_wire_enc(&enc, NULL, 0, 1, many + n2);
	if (n1 != n2 || memcmp(one, many, n1) != 0)
		abort();
	free(one);
	free(many);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_wire_run whole, chunked;
	size_t               i, n;

	fuzz_wire_parse(data, size, 0, &whole);
	fuzz_wire_parse(data, size, (unsigned)size | 1, &chunked);
	if (whole.failed != chunked.failed || whole.n != chunked.n)
		abort();
	n = whole.n < FUZZ_WIRE_KEEP ? whole.n : FUZZ_WIRE_KEEP;
	for (i = 0; i < n; i++)
		if (whole.codes[i] != chunked.codes[i] ||
		    whole.hashes[i] != chunked.hashes[i])
			abort();
	fuzz_wire_encode(data, size);
	return 0;
}
