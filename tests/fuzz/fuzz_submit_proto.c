/*
 * fuzz_submit_proto.c - the submit frame parser on arbitrary bytes, read
 * as a stream of frames the way control.c reads it.  Checks that each
 * header either needs more bytes (only when no LF is within the line
 * limit), fails with SQ_EPARSE and a message, or gives a header line
 * ending in LF within the limit and a payload length in range; that a
 * formatted header parses back to itself; and, fed byte by byte, that
 * the parser gives the same answer as on the whole input.  The envelope
 * check runs on whatever parses as an envelope.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "submit_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_submit_check(const char *p, size_t len, int rc,
    const struct submit_proto_hdr *h, const struct sq_err *err)
{
	char                    line[SUBMIT_PROTO_LINE_MAX];
	struct submit_proto_hdr h2;
	struct sq_err           e2 = { 0 };
	int                     n;

	if (rc == 0) {
		if (len >= SUBMIT_PROTO_LINE_MAX || memchr(p, '\n', len))
			abort();
		return;
	}
	if (rc < 0) {
		if (rc != SQ_EPARSE || err->msg[0] == '\0')
			abort();
		return;
	}
	if (rc != 1 || h->hdr_len == 0 || h->hdr_len > len ||
	    h->hdr_len > SUBMIT_PROTO_LINE_MAX || p[h->hdr_len - 1] != '\n')
		abort();
	if ((h->type == SUBMIT_PROTO_END) != (h->len == 0) ||
	    (h->type == SUBMIT_PROTO_DATA && h->len > SUBMIT_PROTO_CHUNK_MAX) ||
	    (h->type == SUBMIT_PROTO_SUBMIT && h->len > SUBMIT_PROTO_ENV_MAX))
		abort();
	n = submit_proto_format(line, sizeof(line), h->type, h->len);
	if (n < 0 || (size_t)n != h->hdr_len || memcmp(line, p, (size_t)n) != 0)
		abort();
	if (submit_proto_parse(line, (size_t)n, &h2, &e2) != 1 ||
	    h2.type != h->type || h2.len != h->len)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char             *p = (const char *)data;
	struct submit_proto_hdr h, hb;
	struct envelope        *env;
	struct sq_err           err = { 0 }, eb = { 0 };
	size_t                  off = 0, k;
	int                     rc, rb = 0;

	while (off < size) {
		memset(&err, 0, sizeof(err));
		rc = submit_proto_parse(p + off, size - off, &h, &err);
		fuzz_submit_check(p + off, size - off, rc, &h, &err);
		/* Byte by byte: the first answer that is not "more". */
		for (k = 1; k <= size - off; k++)
			if ((rb = submit_proto_parse(p + off, k, &hb, &eb)) !=
			    0)
				break;
		if (rb != rc ||
		    (rc == 1 &&
			(hb.type != h.type || hb.len != h.len ||
			    hb.hdr_len != h.hdr_len)))
			abort();
		if (rc != 1)
			break;
		off += h.hdr_len;
		if (h.type == SUBMIT_PROTO_SUBMIT) {
			k = h.len < size - off ? h.len : size - off;
			if (envelope_parse(p + off, k, &env, &err) == 0) {
				(void)submit_proto_check_envelope(env, k & 7,
				    &err);
				envelope_free(env);
			}
		}
		off += h.len < size - off ? h.len : size - off;
	}
	return 0;
}
