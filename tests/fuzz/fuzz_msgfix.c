/*
 * fuzz_msgfix.c - the wire scanner and the rewriter on arbitrary bytes.
 * The first input byte picks the chunk size.  Checks: the scanner's
 * output does not depend on the chunking (whole vs chunked); a KEEP
 * verdict means no NUL and no line over 998 octets; a REWRITE verdict
 * means the rewriter succeeds and its output has no line over 998
 * octets and no NUL, and, when the body was re-encoded, that the
 * quoted-printable body decodes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msgfix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct msgfix_added fuzz_added = {
	.date = "Thu, 01 Jan 1970 00:00:00 +0000",
	.msgid_id = "ID",
	.hostname = "h",
	.from = "f@h",
};

static enum msgfix_verdict
fuzz_scan(const char *m, size_t len, size_t step, struct msgfix_scan *s,
    struct buf *out)
{
	struct sq_err err = { 0 };
	size_t        off, n;

	msgfix_scan_init(s, &fuzz_added);
	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		if (msgfix_scan_feed(s, m + off, n, out) != 0)
			abort();
	}
	if (msgfix_scan_end(s, out) != 0)
		abort();
	return msgfix_verdict(s, &err);
}

static void
fuzz_lines_ok(const char *p, size_t len)
{
	size_t i, col = 0;

	for (i = 0; i < len; i++) {
		if (p[i] == '\0')
			abort();
		if (p[i] == '\r' || p[i] == '\n')
			col = 0;
		else if (++col > MSGFIX_LINE_MAX)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct msgfix_scan  s1, s2;
	struct msgfix_rw    r;
	struct buf          o1, o2, rw, dec;
	struct sq_err       err = { 0 };
	enum msgfix_verdict v1, v2;
	const char         *m;
	size_t              step, off, n;
	char               *body;

	if (size < 1)
		return 0;
	step = (size_t)data[0] + 1;
	m = (const char *)data + 1;
	size--;
	buf_init(&o1, size + 8192);
	buf_init(&o2, size + 8192);
	v1 = fuzz_scan(m, size, size + 1, &s1, &o1);
	v2 = fuzz_scan(m, size, step, &s2, &o2);
	if (v1 != v2 || o1.len != o2.len ||
	    (o1.len > 0 && memcmp(o1.data, o2.data, o1.len) != 0))
		abort();
	if (v1 == MSGFIX_KEEP)
		fuzz_lines_ok(o1.data, o1.len);
	if (v1 == MSGFIX_REWRITE) {
		buf_init(&rw, 8 * o1.len + MSGFIX_HEADER_MAX + 8192);
		msgfix_rw_init(&r, &s1);
		for (off = 0; off < o1.len; off += n) {
			n = o1.len - off < step ? o1.len - off : step;
			if (msgfix_rw_step(&r, o1.data + off, n, 0, &rw,
				&err) != 0)
				abort();
		}
		if (msgfix_rw_step(&r, "", 0, 1, &rw, &err) != 0)
			abort();
		fuzz_lines_ok(rw.data, rw.len);
		if (r.qp) {
			/* The rewriter's own field (any other CTE field
			 * was dropped), then the blank line and body. */
			body = rw.len > 0 ? memmem(rw.data, rw.len,
						"\nContent-Transfer-Encoding: "
						"quoted-printable\n",
						45) :
					    NULL;
			if (body == NULL)
				abort();
			buf_init(&dec, 2 * rw.len + 16);
			if (msgfix_qp_decode(body,
				rw.len - (size_t)(body - rw.data), &dec) != 0)
				abort();
			buf_fini(&dec);
		}
		msgfix_rw_fini(&r);
		buf_fini(&rw);
	}
	buf_fini(&o1);
	buf_fini(&o2);
	return 0;
}
