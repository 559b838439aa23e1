/*
 * test_smtp_wire.c - reply parser (framing, limits, enhanced codes,
 * printable text), EHLO capabilities and the DATA encoder.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_wire.h"
#include "param_rows.h"

/* Parse all of in (len bytes) in one feed; the first reply goes to *r.
 * Returns what smtp_wire_parse returned for it. */
static int
test_wire_parse_one(struct smtp_wire_parser *wp, const char *in, size_t len,
    struct smtp_wire_reply *r, size_t *used)
{
	struct sq_err err;
	size_t        u;

	memset(&err, 0, sizeof(err));
	return smtp_wire_parse(wp, in, len, used != NULL ? used : &u, r, &err);
}

Test(smtp_wire, single_line_reply_gives_code_and_text)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	const char             *in = "220 mx.example.org ESMTP ready\r\n";
	size_t                  used;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, strlen(in), &r, &used), 1);
	cr_assert_eq(used, strlen(in));
	cr_assert_eq(r.code, 220);
	cr_assert_str_eq(r.text, "mx.example.org ESMTP ready");
	cr_assert_eq(r.text_len, strlen("mx.example.org ESMTP ready"));
	cr_assert_eq(r.lines, 1);
	cr_assert_str_eq(r.enhanced, "");
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, multiline_reply_joins_line_texts_with_newline)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	const char             *in =
	    "250-mx.example.org\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, strlen(in), &r, NULL), 1);
	cr_assert_eq(r.code, 250);
	cr_assert_eq(r.lines, 3);
	cr_assert_str_eq(r.text, "mx.example.org\nPIPELINING\nSIZE 1000");
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, bare_code_without_text_is_a_final_line)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, "250\r\n", 5, &r, NULL), 1);
	cr_assert_eq(r.code, 250);
	cr_assert_str_eq(r.text, "");
	cr_assert_eq(test_wire_parse_one(&wp, "250-a\r\n250\r\n", 12, &r, NULL),
	    1);
	cr_assert_str_eq(r.text, "a\n");
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, reply_split_at_every_byte_position_parses_the_same)
{
	const char *in = "250-mx.example.org greets you\r\n250-8BITMIME\r\n250 "
			 "2.0.0 fine\r\n";
	size_t      len = strlen(in), split, used1, used2;
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	int                     rc;

	for (split = 0; split <= len; split++) {
		smtp_wire_parser_init(&wp);
		rc = test_wire_parse_one(&wp, in, split, &r, &used1);
		if (split < len) {
			cr_assert_eq(rc, 0, "split %zu", split);
			cr_assert_eq(used1, split);
			rc = test_wire_parse_one(&wp, in + split, len - split,
			    &r, &used2);
			cr_assert_eq(used2, len - split, "split %zu", split);
		}
		cr_assert_eq(rc, 1, "split %zu", split);
		cr_assert_eq(r.code, 250);
		cr_assert_eq(r.lines, 3);
		cr_assert_str_eq(r.text,
		    "mx.example.org greets you\n8BITMIME\n2.0.0 fine");
		smtp_wire_parser_fini(&wp);
	}
}

Test(smtp_wire, reply_fed_byte_by_byte_completes_on_the_last_byte)
{
	const char             *in = "354-go\r\n354 end with .\r\n";
	size_t                  i, len = strlen(in), used;
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;

	smtp_wire_parser_init(&wp);
	for (i = 0; i + 1 < len; i++) {
		cr_assert_eq(test_wire_parse_one(&wp, in + i, 1, &r, &used), 0);
		cr_assert_eq(used, 1);
		cr_assert(smtp_wire_parser_partial(&wp));
	}
	cr_assert_eq(test_wire_parse_one(&wp, in + i, 1, &r, &used), 1);
	cr_assert_eq(r.code, 354);
	cr_assert_str_eq(r.text, "go\nend with .");
	cr_assert_not(smtp_wire_parser_partial(&wp));
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, several_replies_in_one_feed_come_out_one_at_a_time)
{
	const char *in =
	    "250 2.1.0 ok\r\n550-5.1.1 no\r\n550 5.1.1 such\r\n354 go";
	size_t                  len = strlen(in), off = 0, used;
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, len, &r, &used), 1);
	cr_assert_eq(used, 14);
	cr_assert_eq(r.code, 250);
	cr_assert_str_eq(r.enhanced, "2.1.0");
	off += used;
	cr_assert_eq(test_wire_parse_one(&wp, in + off, len - off, &r, &used),
	    1);
	cr_assert_eq(r.code, 550);
	cr_assert_str_eq(r.text, "5.1.1 no\n5.1.1 such");
	cr_assert_str_eq(r.enhanced, "5.1.1");
	off += used;
	cr_assert_eq(test_wire_parse_one(&wp, in + off, len - off, &r, &used),
	    0);
	cr_assert_eq(used, len - off);
	cr_assert(smtp_wire_parser_partial(&wp));
	cr_assert_eq(test_wire_parse_one(&wp, "\r\n", 2, &r, &used), 1);
	cr_assert_eq(r.code, 354);
	cr_assert_str_eq(r.text, "go");
	smtp_wire_parser_fini(&wp);
}

/* Criterion runs each parameter in a fresh process: arrays, not
 * pointers. */
struct test_wire_enh {
	char in[64];
	char enhanced[16];
};

static struct test_wire_enh test_wire_enh_cases[] = {
	{ "250 2.0.0 Ok: queued\r\n", "2.0.0" },
	{ "550 5.1.1 <x@y>: no such user\r\n", "5.1.1" },
	{ "451 4.7.1 greylisted\r\n", "4.7.1" }, { "250 2.1.5\r\n", "2.1.5" },
	{ "552 5.123.456 big\r\n", "5.123.456" },
	{ "250 Ok\r\n", "" },         /* absent */
	{ "250 5.0.0 odd\r\n", "" },  /* class mismatch */
	{ "550 2.0.0 odd\r\n", "" },  /* class mismatch */
	{ "354 3.0.0 go\r\n", "" },   /* no class 3 */
	{ "250 2.0.0x\r\n", "" },     /* not followed by space */
	{ "250 2.1234.0 x\r\n", "" }, /* too many digits */
	{ "250 2..0 x\r\n", "" }, { "250 2.0. x\r\n", "" },
	{ "250 2.0\r\n", "" },
	{ "250 text 2.0.0\r\n", "" },            /* not at the start */
	{ "250-Ok\r\n250 2.0.0 later\r\n", "" }, /* first line only */
};

ParameterizedTestParameters(smtp_wire, enhanced_code_only_at_start_with_class)
{
	return cr_make_param_array(struct test_wire_enh, test_wire_enh_cases,
	    sizeof(test_wire_enh_cases) / sizeof(test_wire_enh_cases[0]));
}

ParameterizedTest(struct test_wire_enh *c, smtp_wire,
    enhanced_code_only_at_start_with_class)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, c->in, strlen(c->in), &r, NULL),
	    1, "%s", c->in);
	cr_assert_str_eq(r.enhanced, c->enhanced, "%s", c->in);
	smtp_wire_parser_fini(&wp);
}

struct test_wire_bad {
	char in[64];
};

static struct test_wire_bad test_wire_bad_cases[] = {
	{ "25 ok\r\n" },
	{ "2x0 ok\r\n" },
	{ "abc ok\r\n" },
	{ "650 ok\r\n" },
	{ "150 ok\r\n" },
	{ "\r\n" },
	{ "250x\r\n" },
	{ "250\tok\r\n" },
	{ "250_ok\r\n" },
	{ " 250 ok\r\n" },
	{ "250-a\r\n251 b\r\n" }, /* codes differ */
	{ "250-a\r\n550-b\r\n250 c\r\n" },
	{ "250-a\r\nxyz\r\n" },
};

ParameterizedTestParameters(smtp_wire, malformed_reply_is_a_protocol_error)
{
	return cr_make_param_array(struct test_wire_bad, test_wire_bad_cases,
	    sizeof(test_wire_bad_cases) / sizeof(test_wire_bad_cases[0]));
}

ParameterizedTest(struct test_wire_bad *c, smtp_wire,
    malformed_reply_is_a_protocol_error)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	struct sq_err           err;
	size_t                  used;

	smtp_wire_parser_init(&wp);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(
	    smtp_wire_parse(&wp, c->in, strlen(c->in), &used, &r, &err),
	    SQ_EPROTO, "%s", c->in);
	cr_assert_eq(err.code, SQ_EPROTO);
	cr_assert_neq(err.msg[0], '\0');
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, protocol_error_is_sticky)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, "xx\r\n", 4, &r, NULL),
	    SQ_EPROTO);
	cr_assert_eq(test_wire_parse_one(&wp, "250 ok\r\n", 8, &r, NULL),
	    SQ_EPROTO);
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, bare_lf_ends_a_line)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	const char             *in = "250-a\n250 b\n";

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, strlen(in), &r, NULL), 1);
	cr_assert_str_eq(r.text, "a\nb");
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, bare_cr_does_not_end_a_line)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	const char             *in = "250 a\r250 b\r\n";
	size_t                  used;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, 6, &r, &used), 0);
	cr_assert_eq(used, 6);
	cr_assert_eq(test_wire_parse_one(&wp, in + 6, strlen(in) - 6, &r, NULL),
	    1);
	cr_assert_eq(r.lines, 1);
	cr_assert_str_eq(r.text, "a?250 b");
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, nul_and_control_bytes_in_text_are_made_printable)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	const char in[] = "250-a\0b\x1b[31m\r\n250 c\x7f\xff\td\r\n";

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, sizeof(in) - 1, &r, NULL), 1);
	cr_assert_str_eq(r.text, "a?b?[31m\nc???d");
	cr_assert_eq(r.text_len, strlen("a?b?[31m\nc???d"));
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, line_of_exactly_the_maximum_is_accepted)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	char                   *in = malloc(SMTP_WIRE_LINE_MAX);

	memset(in, 'x', SMTP_WIRE_LINE_MAX);
	memcpy(in, "250 ", 4);
	memcpy(in + SMTP_WIRE_LINE_MAX - 2, "\r\n", 2);
	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, in, SMTP_WIRE_LINE_MAX, &r, NULL),
	    1);
	cr_assert_eq(r.text_len, SMTP_WIRE_LINE_MAX - 6);
	smtp_wire_parser_fini(&wp);
	free(in);
}

Test(smtp_wire, overlong_line_fails_before_its_end_arrives)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	char                    chunk[1000];
	size_t                  fed = 0;
	int                     rc = 0;

	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "250 ", 4);
	smtp_wire_parser_init(&wp);
	/* No line break ever: the parser must not wait for one. */
	while (rc == 0 && fed < 10 * SMTP_WIRE_LINE_MAX) {
		rc = test_wire_parse_one(&wp, chunk, sizeof(chunk), &r, NULL);
		fed += sizeof(chunk);
	}
	cr_assert_eq(rc, SQ_EPROTO);
	cr_assert_leq(fed, SMTP_WIRE_LINE_MAX + sizeof(chunk));
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, line_one_byte_over_the_maximum_is_an_error)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	char                   *in = malloc(SMTP_WIRE_LINE_MAX + 1);

	memset(in, 'x', SMTP_WIRE_LINE_MAX + 1);
	memcpy(in, "250 ", 4);
	memcpy(in + SMTP_WIRE_LINE_MAX - 1, "\r\n", 2);
	smtp_wire_parser_init(&wp);
	cr_assert_eq(
	    test_wire_parse_one(&wp, in, SMTP_WIRE_LINE_MAX + 1, &r, NULL),
	    SQ_EPROTO);
	smtp_wire_parser_fini(&wp);
	free(in);
}

Test(smtp_wire, overlong_whole_reply_is_an_error)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	char                    line[1001];
	size_t                  fed = 0;
	int                     rc = 0;

	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	smtp_wire_parser_init(&wp);
	while (rc == 0 && fed < 2 * SMTP_WIRE_REPLY_MAX) {
		rc = test_wire_parse_one(&wp, line, sizeof(line), &r, NULL);
		fed += sizeof(line);
	}
	cr_assert_eq(rc, SQ_EPROTO);
	cr_assert_gt(fed, SMTP_WIRE_REPLY_MAX);
	cr_assert_leq(fed, SMTP_WIRE_REPLY_MAX + sizeof(line));
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, reply_just_under_the_total_maximum_is_accepted)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;
	char                    line[1024];
	size_t                  i;
	int                     rc;

	memset(line, 'x', sizeof(line));
	memcpy(line, "250-", 4);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	smtp_wire_parser_init(&wp);
	for (i = 0; i < SMTP_WIRE_REPLY_MAX / sizeof(line) - 1; i++)
		cr_assert_eq(
		    test_wire_parse_one(&wp, line, sizeof(line), &r, NULL), 0);
	line[3] = ' ';
	rc = test_wire_parse_one(&wp, line, sizeof(line), &r, NULL);
	cr_assert_eq(rc, 1);
	cr_assert_eq(r.lines, SMTP_WIRE_REPLY_MAX / sizeof(line));
	smtp_wire_parser_fini(&wp);
}

/* EHLO capabilities. */

static void
test_wire_caps(struct smtp_wire_caps *caps, const char *reply)
{
	struct smtp_wire_parser wp;
	struct smtp_wire_reply  r;

	smtp_wire_parser_init(&wp);
	cr_assert_eq(test_wire_parse_one(&wp, reply, strlen(reply), &r, NULL),
	    1);
	smtp_wire_caps_parse(caps, r.text, r.text_len);
	smtp_wire_parser_fini(&wp);
}

Test(smtp_wire, ehlo_caps_recognise_every_known_keyword)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c,
	    "250-mx.example.org Hello\r\n250-PIPELINING\r\n250-SIZE "
	    "35882577\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN SCRAM-SHA-256 "
	    "XOAUTH2 CRAM-MD5 "
	    "GSSAPI\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-"
	    "SMTPUTF8\r\n250 CHUNKING\r\n");
	cr_assert(c.pipelining);
	cr_assert(c.size);
	cr_assert_eq(c.size_max, 35882577);
	cr_assert(c.starttls);
	cr_assert(c.auth);
	cr_assert_eq(c.auth_mechs,
	    SMTP_WIRE_AUTH_PLAIN | SMTP_WIRE_AUTH_LOGIN |
		SMTP_WIRE_AUTH_SCRAM_SHA_256 | SMTP_WIRE_AUTH_XOAUTH2 |
		SMTP_WIRE_AUTH_CRAM_MD5);
	cr_assert(c.enhancedstatuscodes);
	cr_assert(c.eightbitmime);
	cr_assert(c.smtputf8);
	cr_assert(c.chunking);
}

Test(smtp_wire, ehlo_caps_recognise_oauthbearer)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c,
	    "250-mx.example.org\r\n250 AUTH OAUTHBEARER oauthbearer-x "
	    "XOAUTH2\r\n");
	cr_assert_eq(c.auth_mechs,
	    SMTP_WIRE_AUTH_OAUTHBEARER | SMTP_WIRE_AUTH_XOAUTH2);
}

Test(smtp_wire, ehlo_caps_are_case_insensitive_and_ignore_unknowns)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c,
	    "250-mx\r\n250-starttls\r\n250-X-EXPS GSSAPI\r\n250-Auth login "
	    "plain\r\n250-DSN\r\n250-STARTTLSX\r\n250 8bitmime\r\n");
	cr_assert(c.starttls);
	cr_assert(c.auth);
	cr_assert_eq(c.auth_mechs, SMTP_WIRE_AUTH_LOGIN | SMTP_WIRE_AUTH_PLAIN);
	cr_assert(c.eightbitmime);
	cr_assert_not(c.pipelining);
	cr_assert_not(c.chunking);
	cr_assert_not(c.size);
}

Test(smtp_wire, ehlo_first_line_is_the_greeting_not_a_keyword)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c, "250 STARTTLS\r\n");
	cr_assert_not(c.starttls);
	test_wire_caps(&c, "250-STARTTLS\r\n250 PIPELINING\r\n");
	cr_assert_not(c.starttls);
	cr_assert(c.pipelining);
}

Test(smtp_wire, ehlo_size_number_is_optional)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c, "250-mx\r\n250 SIZE\r\n");
	cr_assert(c.size);
	cr_assert_eq(c.size_max, 0);
	test_wire_caps(&c, "250-mx\r\n250 SIZE 12x\r\n");
	cr_assert(c.size);
	cr_assert_eq(c.size_max, 0);
	test_wire_caps(&c, "250-mx\r\n250 SIZE 99999999999999999999999\r\n");
	cr_assert(c.size);
	cr_assert_eq(c.size_max, 0);
	test_wire_caps(&c, "250-mx\r\n250 SIZEX 10\r\n");
	cr_assert_not(c.size);
}

Test(smtp_wire, ehlo_old_auth_equals_syntax_counts)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c, "250-mx\r\n250-AUTH=LOGIN PLAIN\r\n250 HELP\r\n");
	cr_assert(c.auth);
	cr_assert_eq(c.auth_mechs, SMTP_WIRE_AUTH_LOGIN | SMTP_WIRE_AUTH_PLAIN);
}

Test(smtp_wire, ehlo_bare_auth_has_no_mechanisms)
{
	struct smtp_wire_caps c;

	test_wire_caps(&c, "250-mx\r\n250 AUTH\r\n");
	cr_assert(c.auth);
	cr_assert_eq(c.auth_mechs, 0);
}

/* DATA encoder. */

static size_t
test_wire_encode(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    char *out)
{
	struct smtp_wire_enc enc;
	size_t               i, start = 0, o = 0, end, n;

	smtp_wire_enc_init(&enc);
	for (i = 0; i <= ncuts; i++) {
		end = i < ncuts ? cuts[i] : len;
		n = smtp_wire_enc(&enc, in + start, end - start, i == ncuts,
		    out + o);
		cr_assert_leq(n, SMTP_WIRE_ENC_BOUND(end - start));
		o += n;
		start = end;
	}
	return o;
}

struct test_wire_encc {
	char in[32];
	char out[48];
};

static struct test_wire_encc test_wire_enc_cases[] = {
	{ "", ".\r\n" },                     /* empty message */
	{ "a\r\nb\r\n", "a\r\nb\r\n.\r\n" }, /* CRLF kept */
	{ "a\nb\n", "a\r\nb\r\n.\r\n" },     /* bare LF */
	{ "a\rb\r", "a\r\nb\r\n.\r\n" },     /* bare CR */
	{ "a", "a\r\n.\r\n" },               /* no final break */
	{ "a\r\nb", "a\r\nb\r\n.\r\n" },
	{ ".", "..\r\n.\r\n" }, /* lone "." */
	{ ".\r\n", "..\r\n.\r\n" },
	{ ".a\r\n.b", "..a\r\n..b\r\n.\r\n" }, /* first line */
	{ "a.b\r\n", "a.b\r\n.\r\n" },         /* mid-line dot */
	{ "\r\n", "\r\n.\r\n" },
	{ "\n\r", "\r\n\r\n.\r\n" }, /* LF then CR */
	{ "\r\r\n", "\r\n\r\n.\r\n" },
	{ "x\r\n.\r\ny", "x\r\n..\r\ny\r\n.\r\n" },
	{ "x\n.\r\n", "x\r\n..\r\n.\r\n" },       /* smuggling */
	{ "x\r\n.\ny", "x\r\n..\r\ny\r\n.\r\n" }, /* smuggling */
	{ "x\r.\r", "x\r\n..\r\n.\r\n" },         /* smuggling */
	{ "..\r\n", "...\r\n.\r\n" },
	{ "a\r\n\r\n", "a\r\n\r\n.\r\n" },
};

ParameterizedTestParameters(smtp_wire, encoder_normalises_and_dot_stuffs)
{
	return cr_make_param_array(struct test_wire_encc, test_wire_enc_cases,
	    sizeof(test_wire_enc_cases) / sizeof(test_wire_enc_cases[0]));
}

/* Whole, split at every position, and byte by byte: the same bytes. */
ParameterizedTest(struct test_wire_encc *c, smtp_wire,
    encoder_normalises_and_dot_stuffs)
{
	size_t len = strlen(c->in), i, n, cuts[64];
	char   out[256];

	n = test_wire_encode(c->in, len, NULL, 0, out);
	cr_assert_eq(n, strlen(c->out), "in %s", c->in);
	cr_assert_eq(memcmp(out, c->out, n), 0, "in %s", c->in);
	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		n = test_wire_encode(c->in, len, cuts, 1, out);
		cr_assert_eq(n, strlen(c->out), "split %zu", i);
		cr_assert_eq(memcmp(out, c->out, n), 0, "split %zu", i);
	}
	for (i = 0; i < len; i++)
		cuts[i] = i + 1;
	n = test_wire_encode(c->in, len, cuts, len, out);
	cr_assert_eq(n, strlen(c->out));
	cr_assert_eq(memcmp(out, c->out, n), 0);
}

Test(smtp_wire, encoder_joins_cr_and_lf_split_across_chunks)
{
	struct smtp_wire_enc enc;
	char                 out[64];
	size_t               n;

	smtp_wire_enc_init(&enc);
	n = smtp_wire_enc(&enc, "ab\r", 3, 0, out);
	cr_assert_eq(n, 4);
	cr_assert_eq(memcmp(out, "ab\r\n", 4), 0);
	n = smtp_wire_enc(&enc, "\ncd", 3, 0, out);
	cr_assert_eq(n, 2);
	cr_assert_eq(memcmp(out, "cd", 2), 0);
	n = smtp_wire_enc(&enc, "", 0, 1, out);
	cr_assert_eq(n, 5);
	cr_assert_eq(memcmp(out, "\r\n.\r\n", 5), 0);
}

Test(smtp_wire, encoder_stuffs_a_dot_that_starts_the_next_chunk)
{
	struct smtp_wire_enc enc;
	char                 out[64];
	size_t               n;

	smtp_wire_enc_init(&enc);
	n = smtp_wire_enc(&enc, "a\n", 2, 0, out);
	cr_assert_eq(n, 3);
	n = smtp_wire_enc(&enc, ".\n", 2, 1, out);
	cr_assert_eq(n, 7);
	cr_assert_eq(memcmp(out, "..\r\n.\r\n", 7), 0);
}

Test(smtp_wire, encoder_is_ready_for_the_next_message_after_last)
{
	struct smtp_wire_enc enc;
	char                 out[64];
	size_t               n;

	smtp_wire_enc_init(&enc);
	n = smtp_wire_enc(&enc, "x\r", 2, 1, out);
	cr_assert_eq(n, 6);
	cr_assert_eq(memcmp(out, "x\r\n.\r\n", 6), 0);
	/* A leading LF of the next message is not eaten by the old CR. */
	n = smtp_wire_enc(&enc, "\n.", 2, 1, out);
	cr_assert_eq(n, 9);
	cr_assert_eq(memcmp(out, "\r\n..\r\n.\r\n", 9), 0);
}

Test(smtp_wire, encoder_output_never_has_a_bare_cr_or_lf)
{
	static const char alphabet[] = { '\r', '\n', '.', 'a' };
	char              in[8], out[64];
	size_t            n, i, len = sizeof(in), k;
	unsigned long     v, combos = 1;

	for (i = 0; i < len; i++)
		combos *= sizeof(alphabet);
	for (v = 0; v < combos; v++) {
		unsigned long x = v;

		for (i = 0; i < len; i++) {
			in[i] = alphabet[x % sizeof(alphabet)];
			x /= sizeof(alphabet);
		}
		k = v % (len + 1);
		n = test_wire_encode(in, len, &k, 1, out);
		cr_assert_leq(n, SMTP_WIRE_ENC_BOUND(len));
		for (i = 0; i < n; i++) {
			if (out[i] == '\r')
				cr_assert(i + 1 < n && out[i + 1] == '\n');
			if (out[i] == '\n')
				cr_assert(i > 0 && out[i - 1] == '\r');
		}
		cr_assert_eq(memcmp(out + n - 3, ".\r\n", 3), 0);
		cr_assert(n == 3 || memcmp(out + n - 5, "\r\n", 2) == 0);
	}
}

/* RFC 5322 2.1.1: the encoder flags a NUL or a line over 998 octets (the
 * stuffed dot and the line break not counted), with its line. */
Test(smtp_wire, encoder_flags_nul_and_lines_over_998_octets)
{
	static char          in[1100], out[SMTP_WIRE_ENC_BOUND(1100)];
	struct smtp_wire_enc enc;

	smtp_wire_enc_init(&enc);
	in[0] = '.';
	memset(in + 1, 'a', 997);
	in[998] = '\n';
	smtp_wire_enc(&enc, in, 999, 0, out);
	cr_assert_eq(enc.bad, 0);
	memset(in, 'b', 999);
	smtp_wire_enc(&enc, in, 500, 0, out);
	smtp_wire_enc(&enc, in + 500, 499, 0, out);
	cr_assert_eq(enc.bad, SMTP_WIRE_ENC_LONG);
	cr_assert_eq(enc.bad_line, 2);
	smtp_wire_enc_init(&enc);
	smtp_wire_enc(&enc, "a\r\nb\rc\0\n", 8, 1, out);
	cr_assert_eq(enc.bad, SMTP_WIRE_ENC_NUL);
	cr_assert_eq(enc.bad_line, 3);
}
