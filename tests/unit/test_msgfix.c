/*
 * test_msgfix.c - the wire rules (no NUL, no line over 998 octets), the
 * quoted-printable re-encoder, header folding, the added fields inserted
 * at the end of a streamed header, and the one RFC 5322 date helper.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailmsg.h"
#include "msgfix.h"

#define TEST_OUT_MAX (64 * 1024 * 1024)

/* Scan msg[0..len) in chunks of step bytes; the stored form goes to out
 * (when out is not NULL).  Returns the verdict. */
static enum msgfix_verdict
test_scan(const char *msg, size_t len, size_t step,
    const struct msgfix_added *added, struct msgfix_scan *s, struct buf *out,
    struct sq_err *err)
{
	size_t off, n;

	msgfix_scan_init(s, added);
	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		cr_assert_eq(msgfix_scan_feed(s, msg + off, n, out), 0);
	}
	cr_assert_eq(msgfix_scan_end(s, out), 0);
	return msgfix_verdict(s, err);
}

/* Rewrite msg with the decisions of s, in chunks of step bytes. */
static void
test_rewrite(const struct msgfix_scan *s, const char *msg, size_t len,
    size_t step, struct buf *out)
{
	struct msgfix_rw r;
	struct sq_err    err = { 0 };
	size_t           off, n;

	msgfix_rw_init(&r, s);
	for (off = 0; off < len; off += n) {
		n = len - off < step ? len - off : step;
		cr_assert_eq(msgfix_rw_step(&r, msg + off, n, 0, out, &err), 0,
		    "%s", err.msg);
	}
	cr_assert_eq(msgfix_rw_step(&r, "", 0, 1, out, &err), 0, "%s", err.msg);
	msgfix_rw_fini(&r);
}

/* Every line of b (split at CR, LF, CRLF) is at most max octets and
 * there is no NUL. */
static void
test_assert_lines(const struct buf *b, size_t from, size_t max)
{
	size_t i, col = 0;

	for (i = from; i < b->len; i++) {
		cr_assert_neq(b->data[i], '\0', "NUL at %zu", i);
		if (b->data[i] == '\r' || b->data[i] == '\n')
			col = 0;
		else
			cr_assert_leq(++col, max, "line too long at %zu", i);
	}
}

static void
test_assert_has(const struct buf *b, const char *s)
{
	cr_assert_not_null(memmem(b->data, b->len, s, strlen(s)),
	    "missing \"%s\" in:\n%.*s", s, (int)(b->len > 400 ? 400 : b->len),
	    b->data);
}

/* Offset of the body (after the first blank line). */
static size_t
test_body_off(const struct buf *b)
{
	const char *p;

	p = memmem(b->data, b->len, "\n\n", 2);
	cr_assert_not_null(p);
	return (size_t)(p - b->data) + 2;
}

/* msg with CRLF and bare CR turned into LF: what QP gives back. */
static char *
test_normalise(const char *msg, size_t len, size_t *outlen)
{
	char  *o = malloc(len + 1);
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (msg[i] == '\r') {
			o[n++] = '\n';
			if (i + 1 < len && msg[i + 1] == '\n')
				i++;
		} else
			o[n++] = msg[i];
	}
	*outlen = n;
	return o;
}

Test(msgfix, short_message_kept_byte_for_byte)
{
	const char *m = "Subject: hi\nDate: x\nMessage-ID: <a@b>\n\nbody\n";
	struct msgfix_scan s;
	struct buf         out;
	struct sq_err      err = { 0 };

	buf_init(&out, TEST_OUT_MAX);
	cr_assert_eq(test_scan(m, strlen(m), 3, NULL, &s, &out, &err),
	    MSGFIX_KEEP);
	cr_assert_eq(out.len, strlen(m));
	cr_assert_eq(memcmp(out.data, m, out.len), 0);
	buf_fini(&out);
}

Test(msgfix, nul_in_body_refused_with_line)
{
	const char         m[] = "Subject: a\n\nline3\nab\0c\n";
	struct msgfix_scan s;
	struct sq_err      err = { 0 };

	cr_assert_eq(test_scan(m, sizeof(m) - 1, 1, NULL, &s, NULL, &err),
	    MSGFIX_REFUSE);
	cr_assert_str_eq(err.msg, "line 4 contains a NUL byte");
}

Test(msgfix, nul_in_header_refused)
{
	const char         m[] = "Subject: a\0b\r\n\r\nx\r\n";
	struct msgfix_scan s;
	struct sq_err      err = { 0 };

	cr_assert_eq(test_scan(m, sizeof(m) - 1, 64, NULL, &s, NULL, &err),
	    MSGFIX_REFUSE);
	cr_assert_str_eq(err.msg, "line 1 contains a NUL byte");
}

Test(msgfix, line_of_998_kept_999_rewritten)
{
	char               m[2100];
	struct msgfix_scan s;
	struct sq_err      err = { 0 };
	size_t             n;

	n = (size_t)snprintf(m, sizeof(m), "Subject: a\n\n");
	memset(m + n, 'x', 998);
	memcpy(m + n + 998, "\r\n", 2);
	cr_assert_eq(test_scan(m, n + 1000, 7, NULL, &s, NULL, &err),
	    MSGFIX_KEEP);
	memset(m + n, 'x', 999);
	memcpy(m + n + 999, "\n", 1);
	cr_assert_eq(test_scan(m, n + 1000, 7, NULL, &s, NULL, &err),
	    MSGFIX_REWRITE);
	cr_assert_eq(s.body_long_line, 3);
}

/* A long line where the header ends without a blank line (a line with
 * no colon is the body's first): counted while it looked like a field
 * name, it is still the body's long line, whether it ends before the
 * 1,000 octets held back as a possible name, after them, or with the
 * message (found by fuzz_msgfix). */
Test(msgfix, long_first_body_line_after_a_header_without_blank_line)
{
	static const size_t lens[] = { 999, 1000, 1001, 1500 };
	char                m[2100];
	struct msgfix_scan  s;
	struct sq_err       err = { 0 };
	size_t              n, i, step;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (step = 1; step <= 4096; step *= 8) {
			n = (size_t)snprintf(m, sizeof(m), "Subject: a\n");
			memset(m + n, 'k', lens[i]);
			memcpy(m + n + lens[i], "\nend\n", 5);
			cr_assert_eq(test_scan(m, n + lens[i] + 5, step, NULL,
					 &s, NULL, &err),
			    MSGFIX_REWRITE, "%zu octets, chunks of %zu",
			    lens[i], step);
			cr_assert_eq(s.body_long_line, 2, "%zu octets",
			    lens[i]);
			/* The same line at the end, without a line break. */
			cr_assert_eq(test_scan(m, n + lens[i], step, NULL, &s,
					 NULL, &err),
			    MSGFIX_REWRITE, "%zu octets at the end", lens[i]);
		}
	}
	n = (size_t)snprintf(m, sizeof(m), "Subject: a\n");
	memset(m + n, 'k', 998);
	memcpy(m + n + 998, "\n", 1);
	cr_assert_eq(test_scan(m, n + 999, 5, NULL, &s, NULL, &err),
	    MSGFIX_KEEP);
}

/* A cron job's 200,000-octet line: re-encoded, every line short, and the
 * decoded body is the original. */
Test(msgfix, long_line_reencoded_quoted_printable)
{
	const char *hdr = "From: cron@h\nSubject: out\n\n";
	size_t      hlen = strlen(hdr), blen = 200000, len, i, boff, nlen;
	char       *m, *norm;
	struct msgfix_scan s;
	struct buf         out, dec;
	struct sq_err      err = { 0 };

	m = malloc(hlen + blen + 20);
	memcpy(m, hdr, hlen);
	for (i = 0; i < blen; i++)
		m[hlen + i] = "abc =.\t xyz"[i % 11];
	memcpy(m + hlen + blen, " \nend\n", 6);
	len = hlen + blen + 6;
	cr_assert_eq(test_scan(m, len, 4096, NULL, &s, NULL, &err),
	    MSGFIX_REWRITE);
	buf_init(&out, TEST_OUT_MAX);
	test_rewrite(&s, m, len, 1000, &out);
	test_assert_has(&out,
	    "Subject: out\nMIME-Version: 1.0\nContent-Type: text/plain; "
	    "charset=us-ascii\nContent-Transfer-Encoding: "
	    "quoted-printable\n\n");
	boff = test_body_off(&out);
	test_assert_lines(&out, boff, MSGFIX_QP_LINE_MAX);
	buf_init(&dec, TEST_OUT_MAX);
	cr_assert_eq(msgfix_qp_decode(out.data + boff, out.len - boff, &dec),
	    0);
	norm = test_normalise(m + hlen, len - hlen, &nlen);
	cr_assert_eq(dec.len, nlen);
	cr_assert_eq(memcmp(dec.data, norm, nlen), 0);
	/* Soft breaks were used, and the trailing space was encoded. */
	cr_assert_not_null(memmem(out.data + boff, out.len - boff, "=\n", 2));
	cr_assert_not_null(
	    memmem(out.data + boff, out.len - boff, "=20\nend", 7));
	free(norm);
	free(m);
	buf_fini(&out);
	buf_fini(&dec);
}

Test(msgfix, eight_bit_body_gets_utf8_and_cte_replaced)
{
	char               m[3000];
	struct msgfix_scan s;
	struct buf         out;
	struct sq_err      err = { 0 };
	size_t             n;

	n = (size_t)snprintf(m, sizeof(m),
	    "Subject: a\nContent-Transfer-Encoding: 8bit\n\n\xc3\xa9");
	memset(m + n, 'y', 1200);
	n += 1200;
	cr_assert_eq(test_scan(m, n, 100, NULL, &s, NULL, &err),
	    MSGFIX_REWRITE);
	buf_init(&out, TEST_OUT_MAX);
	test_rewrite(&s, m, n, 50, &out);
	cr_assert_null(memmem(out.data, out.len, "8bit", 4));
	cr_assert_not_null(memmem(out.data, out.len, "charset=utf-8", 13));
	cr_assert_not_null(memmem(out.data, out.len, "\n\n=C3=A9yyy", 11));
	buf_fini(&out);
}

Test(msgfix, existing_content_type_kept)
{
	char               m[3000];
	struct msgfix_scan s;
	struct buf         out;
	struct sq_err      err = { 0 };
	size_t             n;

	n = (size_t)snprintf(m, sizeof(m),
	    "MIME-Version: 1.0\nContent-Type: text/html;\n "
	    "charset=iso-8859-1\n\n");
	memset(m + n, '<', 1000);
	n += 1000;
	cr_assert_eq(test_scan(m, n, 9, NULL, &s, NULL, &err), MSGFIX_REWRITE);
	buf_init(&out, TEST_OUT_MAX);
	test_rewrite(&s, m, n, 9, &out);
	test_assert_has(&out,
	    "MIME-Version: 1.0\nContent-Type: text/html;\n "
	    "charset=iso-8859-1\nContent-Transfer-Encoding: "
	    "quoted-printable\n\n<<<");
	cr_assert_null(
	    memmem(out.data, out.len, "MIME-Version: 1.0\nMIME", 22));
	buf_fini(&out);
}

Test(msgfix, multipart_and_encoded_bodies_refused)
{
	static const char *const hdrs[] = {
		"Content-Type: Multipart/Mixed; boundary=x\n\n",
		"Content-Type:\n message/rfc822\n\n",
		"Content-Transfer-Encoding: BASE64\n\n",
		"Content-Transfer-Encoding: quoted-printable\n\n",
	};
	static const char *const why[] = {
		"the body is multipart/mixed",
		"the body is message/rfc822",
		"already encoded (Content-Transfer-Encoding: base64)",
		"already encoded (Content-Transfer-Encoding: quoted-printable)",
	};
	char               m[3000];
	struct msgfix_scan s;
	struct sq_err      err = { 0 };
	size_t             i, n;

	for (i = 0; i < 4; i++) {
		n = (size_t)snprintf(m, sizeof(m), "%s", hdrs[i]);
		memset(m + n, 'z', 1500);
		n += 1500;
		cr_assert_eq(test_scan(m, n, 5, NULL, &s, NULL, &err),
		    MSGFIX_REFUSE, "%s", hdrs[i]);
		cr_assert_not_null(strstr(err.msg, why[i]), "%s", err.msg);
		cr_assert_not_null(strstr(err.msg, "longer than 998"));
	}
}

Test(msgfix, long_header_folded_at_white_space)
{
	char               m[5000], *unf;
	struct msgfix_scan s;
	struct buf         out;
	struct sq_err      err = { 0 };
	size_t             n = 0, i, j = 0;

	n = (size_t)snprintf(m, sizeof(m), "To: ");
	for (i = 0; i < 200; i++)
		n += (size_t)snprintf(m + n, sizeof(m) - n,
		    "u%03zu@h.example, ", i);
	n += (size_t)snprintf(m + n, sizeof(m) - n, "\nSubject: s\n\nb\n");
	cr_assert_eq(test_scan(m, n, 13, NULL, &s, NULL, &err), MSGFIX_REWRITE);
	cr_assert(s.hdr_fold);
	buf_init(&out, TEST_OUT_MAX);
	test_rewrite(&s, m, n, 13, &out);
	test_assert_lines(&out, 0, MSGFIX_LINE_MAX);
	/* Unfolding (remove a line break before white space) gives the
	 * original back. */
	unf = malloc(out.len + 1);
	for (i = 0; i < out.len; i++) {
		if (out.data[i] == '\n' && i + 1 < out.len &&
		    (out.data[i + 1] == ' ' || out.data[i + 1] == '\t'))
			continue;
		unf[j++] = out.data[i];
	}
	cr_assert_eq(j, n);
	cr_assert_eq(memcmp(unf, m, n), 0);
	free(unf);
	buf_fini(&out);
}

Test(msgfix, long_header_without_space_refused)
{
	char               m[3000];
	struct msgfix_scan s;
	struct sq_err      err = { 0 };
	size_t             n;

	n = (size_t)snprintf(m, sizeof(m), "Subject: ok\nX-Token: ");
	memset(m + n, 'k', 1200);
	n += 1200;
	memcpy(m + n, "\n\nb\n", 4);
	n += 4;
	cr_assert_eq(test_scan(m, n, 64, NULL, &s, NULL, &err), MSGFIX_REFUSE);
	cr_assert_str_eq(err.msg,
	    "line 2 is a header line longer than 998 octets with no white "
	    "space to fold it at");
}

/* decode(encode(x)) == x (line breaks normalised) for pseudo-random
 * bodies rich in the octets QP treats specially, in several chunkings;
 * every encoded line is at most 76 octets. */
Test(msgfix, qp_round_trip)
{
	static const char  alpha[] = "a =\t\r\n.\xff\x01~";
	uint32_t           seed = 12345;
	size_t             round, i, len, boff, nlen, step;
	char              *m, *norm;
	struct msgfix_scan s;
	struct buf         out, dec;
	struct sq_err      err = { 0 };

	for (round = 0; round < 60; round++) {
		len = 1200 + round * 97;
		m = malloc(len + 16);
		memcpy(m, "Subject: r\n\n", 12);
		for (i = 12; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			m[i] = (seed >> 16) % 7 == 0 ?
			    alpha[(seed >> 8) % 10] :
			    (char)('A' + (seed >> 20) % 26);
		}
		memset(m + 12, 'L', 1000); /* force the rewrite */
		step = 1 + round * 31;
		cr_assert_eq(test_scan(m, len, step, NULL, &s, NULL, &err),
		    MSGFIX_REWRITE);
		buf_init(&out, TEST_OUT_MAX);
		test_rewrite(&s, m, len, step, &out);
		boff = test_body_off(&out);
		test_assert_lines(&out, boff, MSGFIX_QP_LINE_MAX);
		buf_init(&dec, TEST_OUT_MAX);
		cr_assert_eq(
		    msgfix_qp_decode(out.data + boff, out.len - boff, &dec), 0);
		norm = test_normalise(m + 12, len - 12, &nlen);
		cr_assert_eq(dec.len, nlen, "round %zu", round);
		cr_assert_eq(memcmp(dec.data, norm, nlen), 0, "round %zu",
		    round);
		free(norm);
		free(m);
		buf_fini(&out);
		buf_fini(&dec);
	}
}

static const struct msgfix_added test_added = {
	.date = "Thu, 01 Jan 1970 00:00:00 +0000",
	.msgid_id = "QID",
	.hostname = "host.example",
	.from = NULL,
};

static void
test_stored(const char *in, const char *want)
{
	struct msgfix_scan s;
	struct buf         out;
	struct sq_err      err = { 0 };
	size_t             step;

	for (step = 1; step <= strlen(in) + 1; step++) {
		buf_init(&out, TEST_OUT_MAX);
		cr_assert_eq(test_scan(in, strlen(in), step, &test_added, &s,
				 &out, &err),
		    MSGFIX_KEEP);
		cr_assert_eq(out.len, strlen(want), "step %zu: %.*s", step,
		    (int)out.len, out.data);
		cr_assert_eq(memcmp(out.data, want, out.len), 0,
		    "step %zu: %.*s", step, (int)out.len, out.data);
		buf_fini(&out);
	}
}

Test(msgfix, missing_fields_added_at_header_end)
{
	test_stored("Subject: a\n\nbody\n",
	    "Subject: a\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: "
	    "<QID@host.example>\n\nbody\n");
	test_stored("Subject: a\r\nDATE: x\r\n\r\nbody\r\n",
	    "Subject: a\r\nDATE: x\r\nMessage-ID: "
	    "<QID@host.example>\r\n\r\nbody\r\n");
	test_stored("message-id: <x@y>\nDate: d\n\nb",
	    "message-id: <x@y>\nDate: d\n\nb");
	/* Continuation lines belong to their field. */
	test_stored("Subject: a\n b\n\tc\n\nb",
	    "Subject: a\n b\n\tc\nDate: Thu, 01 Jan 1970 00:00:00 "
	    "+0000\nMessage-ID: <QID@host.example>\n\nb");
}

Test(msgfix, body_without_blank_line_gets_one)
{
	test_stored("Subject: a\nthis is text\n",
	    "Subject: a\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: "
	    "<QID@host.example>\n\nthis is text\n");
	test_stored("no header at all\n",
	    "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: "
	    "<QID@host.example>\n\nno header at all\n");
}

Test(msgfix, header_only_message_gets_fields)
{
	test_stored("Subject: a",
	    "Subject: a\nDate: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: "
	    "<QID@host.example>\n");
	test_stored("",
	    "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: "
	    "<QID@host.example>\n");
	test_stored("Subj",
	    "Date: Thu, 01 Jan 1970 00:00:00 +0000\nMessage-ID: "
	    "<QID@host.example>\n\nSubj");
}

Test(msgfix, added_fields_helper_adds_only_missing)
{
	char *s;

	s = mailmsg_added_fields(0, "D", "f@h", "ID", "h", "\r\n");
	cr_assert_str_eq(s, "Date: D\r\nFrom: f@h\r\nMessage-ID: <ID@h>\r\n");
	free(s);
	s = mailmsg_added_fields(MAILMSG_HAS_DATE | MAILMSG_HAS_MSGID, "D",
	    "f@h", "ID", "h", "\n");
	cr_assert_str_eq(s, "From: f@h\n");
	free(s);
	s = mailmsg_added_fields(0, "D", NULL, "ID", NULL, "\n");
	cr_assert_str_eq(s, "Date: D\nMessage-ID: <ID@localhost>\n");
	free(s);
}

Test(msgfix, date_helper)
{
	char d[64];

	mailmsg_date(0, 0, d, sizeof(d));
	cr_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	mailmsg_date(1700000000, 0, d, sizeof(d));
	cr_assert_str_eq(d, "Tue, 14 Nov 2023 22:13:20 +0000");
	mailmsg_date(INT64_MAX, 0, d, sizeof(d));
	cr_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	setenv("TZ", "XST-2:30", 1);
	tzset();
	mailmsg_date(1700000000, 1, d, sizeof(d));
	cr_assert_str_eq(d, "Wed, 15 Nov 2023 00:43:20 +0230");
	setenv("TZ", "XST+5", 1);
	tzset();
	mailmsg_date(1700000000, 1, d, sizeof(d));
	cr_assert_str_eq(d, "Tue, 14 Nov 2023 17:13:20 -0500");
	/* localtime_r cannot show it: UTC, then the epoch. */
	mailmsg_date(INT64_MAX / 2, 1, d, sizeof(d));
	cr_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 +0000");
}
