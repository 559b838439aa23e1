/*
 * test_mailmsg.c - header scanning, address lists, address validation and
 * Bcc removal.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "mailmsg.h"
#include "param_rows.h"

/* Scan a heap copy of exactly len bytes, so ASan sees any overread. */
static char *
test_scan(const char *text, struct mailmsg_header *h)
{
	size_t len = strlen(text);
	char  *copy = malloc(len ? len : 1);

	memcpy(copy, text, len);
	mailmsg_scan(copy, len, h);
	return copy;
}

static void
test_assert_field(const struct mailmsg_header *h, const char *msg, size_t i,
    const char *name, const char *value)
{
	cr_assert_lt(i, h->n_fields);
	cr_assert_eq(h->fields[i].name_len, strlen(name));
	cr_assert_eq(memcmp(msg + h->fields[i].off, name, strlen(name)), 0);
	cr_assert_eq(h->fields[i].value_len, strlen(value), "field %zu: %.*s",
	    i, (int)h->fields[i].value_len, msg + h->fields[i].value_off);
	cr_assert_eq(memcmp(msg + h->fields[i].value_off, value, strlen(value)),
	    0);
}

Test(mailmsg, line_kinds)
{
	cr_assert_eq(mailmsg_line_kind("Subject: x\n", 11), MAILMSG_LINE_FIELD);
	cr_assert_eq(mailmsg_line_kind("Subject :x", 10), MAILMSG_LINE_FIELD);
	cr_assert_eq(mailmsg_line_kind("X-A:", 4), MAILMSG_LINE_FIELD);
	cr_assert_eq(mailmsg_line_kind(" folded\n", 8), MAILMSG_LINE_CONT);
	cr_assert_eq(mailmsg_line_kind("\tfolded\n", 8), MAILMSG_LINE_CONT);
	cr_assert_eq(mailmsg_line_kind("\n", 1), MAILMSG_LINE_BLANK);
	cr_assert_eq(mailmsg_line_kind("\r\n", 2), MAILMSG_LINE_BLANK);
	cr_assert_eq(mailmsg_line_kind("hello world\n", 12),
	    MAILMSG_LINE_OTHER);
	cr_assert_eq(mailmsg_line_kind(":x\n", 3), MAILMSG_LINE_OTHER);
	cr_assert_eq(mailmsg_line_kind("From bob Mon\n", 13),
	    MAILMSG_LINE_OTHER);
	cr_assert_eq(mailmsg_line_kind("Subject", 7), MAILMSG_LINE_OTHER);
	cr_assert_eq(mailmsg_line_kind("", 0), MAILMSG_LINE_OTHER);
	cr_assert_eq(mailmsg_line_kind("\r", 1), MAILMSG_LINE_OTHER);
}

Test(mailmsg, scan_finds_fields_folding_and_the_body)
{
	struct mailmsg_header h;
	const char *t = "From: a@b\nTo: c@d,\n e@f\nSubject : hi\n\nbody\n";
	char       *m = test_scan(t, &h);

	cr_assert_eq(h.n_fields, 3);
	test_assert_field(&h, m, 0, "From", " a@b");
	test_assert_field(&h, m, 1, "To", " c@d,\n e@f");
	test_assert_field(&h, m, 2, "Subject", " hi");
	cr_assert(h.has_blank);
	cr_assert_not(h.crlf);
	cr_assert_eq(h.header_len, strlen(t) - 6);
	cr_assert_eq(h.body_off, strlen(t) - 5);
	mailmsg_header_fini(&h);
	free(m);
}

Test(mailmsg, scan_handles_crlf)
{
	struct mailmsg_header h;
	const char           *t = "To: c@d,\r\n\te@f\r\nX: 1\r\n\r\nbody\r\n";
	char                 *m = test_scan(t, &h);

	cr_assert_eq(h.n_fields, 2);
	test_assert_field(&h, m, 0, "To", " c@d,\r\n\te@f");
	test_assert_field(&h, m, 1, "X", " 1");
	cr_assert(h.crlf);
	cr_assert(h.has_blank);
	cr_assert_eq(h.body_off, strlen(t) - 6);
	cr_assert_eq(memcmp(m + h.body_off, "body\r\n", 6), 0);
	mailmsg_header_fini(&h);
	free(m);
}

Test(mailmsg, message_without_header_block_is_all_body)
{
	struct mailmsg_header h;
	char *m = test_scan("just some text\nSubject: no\n", &h);

	cr_assert_eq(h.n_fields, 0);
	cr_assert_eq(h.header_len, 0);
	cr_assert_eq(h.body_off, 0);
	cr_assert_not(h.has_blank);
	mailmsg_header_fini(&h);
	free(m);

	m = test_scan(" leading space\n", &h);
	cr_assert_eq(h.n_fields, 0);
	cr_assert_eq(h.body_off, 0);
	mailmsg_header_fini(&h);
	free(m);

	m = test_scan("", &h);
	cr_assert_eq(h.n_fields, 0);
	cr_assert_eq(h.body_off, 0);
	mailmsg_header_fini(&h);
	free(m);
}

Test(mailmsg, empty_input_may_be_a_null_pointer)
{
	struct mailmsg_header h;

	mailmsg_scan(NULL, 0, &h);
	cr_assert_eq(h.n_fields, 0);
	cr_assert_eq(h.body_off, 0);
	mailmsg_header_fini(&h);
	cr_assert_eq(mailmsg_remove_fields(NULL, 0, "bcc"), 0);
}

Test(mailmsg, header_without_blank_line_ends_at_a_non_header_line)
{
	struct mailmsg_header h;
	char *m = test_scan("Subject: x\nthis is the body\n", &h);

	cr_assert_eq(h.n_fields, 1);
	cr_assert_not(h.has_blank);
	cr_assert_eq(h.header_len, 11);
	cr_assert_eq(h.body_off, 11);
	mailmsg_header_fini(&h);
	free(m);
}

Test(mailmsg, header_only_message_without_final_newline)
{
	struct mailmsg_header h;
	char                 *m = test_scan("Subject: x\nTo: y", &h);

	cr_assert_eq(h.n_fields, 2);
	test_assert_field(&h, m, 1, "To", " y");
	cr_assert_not(h.has_blank);
	cr_assert_eq(h.header_len, 16);
	cr_assert_eq(h.body_off, 16);
	mailmsg_header_fini(&h);
	free(m);
}

Test(mailmsg, find_is_case_insensitive_and_exact)
{
	struct mailmsg_header h;
	char *m = test_scan("To: a\nTO-X: b\nto: c\nCC: d\n\n", &h);

	cr_assert_eq(mailmsg_find(&h, m, "to", 0), 0);
	cr_assert_eq(mailmsg_find(&h, m, "To", 1), 2);
	cr_assert_eq(mailmsg_find(&h, m, "to", 3), -1);
	cr_assert_eq(mailmsg_find(&h, m, "cc", 0), 3);
	cr_assert_eq(mailmsg_find(&h, m, "bcc", 0), -1);
	cr_assert_eq(mailmsg_find(&h, m, "t", 0), -1);
	mailmsg_header_fini(&h);
	free(m);
}

Test(mailmsg, bcc_fields_are_removed_with_their_continuations)
{
	char   m[] = "From: a@b\nBcc: x@y,\n z@w\nTo: c@d\nbcc: q@r\n\nBcc: in "
		     "the body\n";
	size_t n;

	n = mailmsg_remove_fields(m, strlen(m), "Bcc");
	cr_assert_eq(n, strlen("From: a@b\nTo: c@d\n\nBcc: in the body\n"));
	cr_assert_eq(memcmp(m, "From: a@b\nTo: c@d\n\nBcc: in the body\n", n),
	    0);
}

Test(mailmsg, bcc_removal_keeps_crlf_and_other_fields_byte_exact)
{
	char   m[] = "Bcc: x@y\r\nSubject: s\r\n\r\nbody";
	size_t n;

	n = mailmsg_remove_fields(m, strlen(m), "bcc");
	cr_assert_eq(n, 18);
	cr_assert_eq(memcmp(m, "Subject: s\r\n\r\nbody", n), 0);
	/* Nothing to remove: unchanged. */
	n = mailmsg_remove_fields(m, n, "bcc");
	cr_assert_eq(n, 18);
	cr_assert_eq(memcmp(m, "Subject: s\r\n\r\nbody", n), 0);
}

struct list_case {
	char in[96];
	char out[5][48]; /* expected addresses, "" terminated */
};

static struct list_case list_cases[] = {
	{ "bob@example.com", { "bob@example.com" } },
	{ "a@b, c@d", { "a@b", "c@d" } },
	{ "Bob Smith <bob@example.com>", { "bob@example.com" } },
	{ "\"Smith, Bob\" <bob@example.com>, carol@x.org",
	    { "bob@example.com", "carol@x.org" } },
	{ "bob@example.com (Bob Smith)", { "bob@example.com" } },
	{ "(c (nested) \\) ) bob (x) @ (y) example.com",
	    { "bob@example.com" } },
	{ "undisclosed-recipients:;", { "" } },
	{ "friends: a@b, \"c d\" <e@f>; g@h", { "a@b", "e@f", "g@h" } },
	{ "a@b,\r\n c@d,\n\tD <e@f>", { "a@b", "c@d", "e@f" } },
	{ ",, a@b ,,", { "a@b" } },
	{ "\"john doe\"@example.com", { "\"john doe\"@example.com" } },
	{ "<@relay.example:bob@example.com>", { "bob@example.com" } },
	{ "root", { "root" } },
	{ "Root <root>", { "root" } },
	{ "first.last@[192.0.2.1]", { "first.last@[192.0.2.1]" } },
	{ "j\xc3\xb6rg@example.de", { "j\xc3\xb6rg@example.de" } },
	{ "", { "" } },
	{ "  (only a comment) ", { "" } },
	{ "Mr. Smith <s@x>", { "s@x" } },
};

ParameterizedTestParameters(mailmsg, address_lists_parse)
{
	return cr_make_param_array(struct list_case, list_cases,
	    sizeof(list_cases) / sizeof(list_cases[0]));
}

ParameterizedTest(struct list_case *c, mailmsg, address_lists_parse)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            err = { 0 };
	size_t                   i, want = 0;

	while (want < 5 && c->out[want][0] != '\0')
		want++;
	cr_assert_eq(mailmsg_addr_list_parse(&l, c->in, strlen(c->in), &err), 0,
	    "%s: %s", c->in, err.msg);
	cr_assert_eq(l.n, want, "%s: got %zu", c->in, l.n);
	for (i = 0; i < want; i++)
		cr_assert_str_eq(l.addrs[i], c->out[i]);
	mailmsg_addr_list_fini(&l);
}

struct bad_list_case {
	char in[64];
	char why[40];
};

static struct bad_list_case bad_list_cases[] = {
	{ "Bob Smith bob@example.com", "a name needs <address>" },
	{ "Bob <bob@example.com", "missing '>'" },
	{ "bob@example.com>", "'>' without '<'" },
	{ "Bob <bob@example.com> x", "text after '>'" },
	{ "<>", "empty address" },
	{ "\"unterminated@x", "unterminated quoted string" },
	{ "(unterminated a@b", "unterminated comment" },
	{ "a@[1.2.3.4", "unterminated domain literal" },
	{ "a@b;", "';' outside a group" },
	{ "g: h: a@b;;", "group inside a group" },
	{ "a..b@c", "not an address" },
	{ "a@b@c", "not an address" },
	{ "a@", "not an address" },
	{ "@b", "not an address" },
	{ "a@b.", "not an address" },
	{ "a\x01@b", "control character" },
	{ "a\\b@c", "unexpected character" },
	{ "<a b@c>", "not an address inside <>" },
};

ParameterizedTestParameters(mailmsg, malformed_address_lists_are_rejected)
{
	return cr_make_param_array(struct bad_list_case, bad_list_cases,
	    sizeof(bad_list_cases) / sizeof(bad_list_cases[0]));
}

ParameterizedTest(struct bad_list_case *c, mailmsg,
    malformed_address_lists_are_rejected)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            err = { 0 };

	cr_assert_eq(mailmsg_addr_list_parse(&l, c->in, strlen(c->in), &err),
	    SQ_EPARSE, "accepted: %s", c->in);
	cr_assert_eq(l.n, 0);
	cr_assert_not_null(strstr(err.msg, c->why), "%s: got \"%s\"", c->in,
	    err.msg);
	cr_assert_not_null(strstr(err.msg, "malformed address \""));
	mailmsg_addr_list_fini(&l);
}

Test(mailmsg, failed_parse_leaves_earlier_addresses_alone)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            err = { 0 };

	cr_assert_eq(mailmsg_addr_list_parse(&l, "a@b", 3, &err), 0);
	cr_assert_eq(mailmsg_addr_list_parse(&l, "c@d, e f", 8, &err),
	    SQ_EPARSE);
	cr_assert_eq(l.n, 1);
	cr_assert_str_eq(l.addrs[0], "a@b");
	mailmsg_addr_list_fini(&l);
	cr_assert_eq(l.n, 0);
}

struct valid_case {
	char addr[300];
	int  flags;
	int  ok;
};

#define LONG63 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static struct valid_case valid_cases[] = {
	{ "bob@example.com", 0, 1 },
	{ "first.last+tag@sub.example.co.uk", 0, 1 },
	{ "\"john doe\"@example.com", 0, 1 },
	{ "\"a\\\"b\"@example.com", 0, 1 },
	{ "x@[192.0.2.1]", 0, 1 },
	{ "x@[IPv6:2001:db8::1]", 0, 1 },
	{ "j\xc3\xb6rg@b\xc3\xbc"
	  "cher.de",
	    0, 1 },
	{ "root", MAILMSG_ADDR_UNQUALIFIED, 1 },
	{ "root", 0, 0 },
	{ "", MAILMSG_ADDR_UNQUALIFIED, 0 },
	{ "bob smith@example.com", 0, 0 },
	{ "<bob@example.com>", 0, 0 },
	{ "bob@exa>mple.com", 0, 0 },
	{ "\"a<b\"@example.com", 0, 0 },
	{ "bob\r@example.com", 0, 0 },
	{ "bob@exa mple.com", 0, 0 },
	{ ".bob@example.com", 0, 0 },
	{ "bob.@example.com", 0, 0 },
	{ "bo..b@example.com", 0, 0 },
	{ "@example.com", 0, 0 },
	{ "bob@", 0, 0 },
	{ "bob@example..com", 0, 0 },
	{ "bob@example.com.", 0, 0 },
	{ "bob@@example.com", 0, 0 },
	{ "\"\"@example.com", 0, 0 },
	{ "\"unterminated@example.com", 0, 0 },
	{ "\"q\"x@example.com", 0, 0 },
	{ "x@[]", 0, 0 },
	{ "x@[1.2 .3.4]", 0, 0 },
	/* The one rule (RFC 5321 Domain): no '_', no '-' at a label's end,
	 * no all-digit last label, literals that are addresses. */
	{ "bob@exa_mple.com", 0, 0 },
	{ "bob@-example.com", 0, 0 },
	{ "bob@example-.com", 0, 0 },
	{ "bob@192.0.2.1", 0, 0 },
	{ "bob@[192.0.2.300]", 0, 0 },
	{ "bob@localhost", 0, 1 },
	{ LONG63 "a@example.com", 0, 1 },  /* 64: ok */
	{ LONG63 "aa@example.com", 0, 0 }, /* 65 */
	{ "x@" LONG63 ".com", 0, 1 },
	{ "x@" LONG63 "a.com", 0, 0 }, /* label 64 */
	/* 254 bytes in all: ok; 255: too long. */
	{ "x@" LONG63 "." LONG63 "." LONG63
	  ".aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    0, 1 },
	{ "x@" LONG63 "." LONG63 "." LONG63
	  ".aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    0, 0 },
};

ParameterizedTestParameters(mailmsg, envelope_address_validation)
{
	return cr_make_param_array(struct valid_case, valid_cases,
	    sizeof(valid_cases) / sizeof(valid_cases[0]));
}

ParameterizedTest(struct valid_case *c, mailmsg, envelope_address_validation)
{
	struct sq_err err = { 0 };
	int           rc;

	rc = mailmsg_addr_valid(c->addr, c->flags, &err);
	if (c->ok)
		cr_assert_eq(rc, 0, "%s: %s", c->addr, err.msg);
	else {
		cr_assert_eq(rc, SQ_EPARSE, "accepted: %s", c->addr);
		cr_assert_not_null(strstr(err.msg, "bad address \""));
	}
}

/*
 * The one host-name and address rule (config, intake and smtp_proto use
 * it), decided by RFC 5321 4.1.2/4.1.3 and RFC 1123 2.1: letters, digits
 * and '-' not at either end of a label; no '_' (RFC 5322 dot-atom allows
 * it in headers, RFC 5321 Domain does not); no empty label; the last
 * label not all digits (an IP address goes in brackets); U-labels only
 * inside an address (RFC 6531); address literals checked as addresses.
 */
struct host_case {
	char host[300];
	int  flags;
	int  ok;
};

#define HF_ADDR (MAILMSG_HOST_UTF8 | MAILMSG_HOST_LITERAL)

static struct host_case host_cases[] = {
	{ "example.com", 0, 1 },
	{ "localhost", 0, 1 },
	{ "a-b.c0.example", 0, 1 },
	{ "3com.example", 0, 1 },
	{ "x.y1", 0, 1 },
	{ "", 0, 0 },
	{ "-a.example", 0, 0 },
	{ "a-.example", 0, 0 },
	{ "a..example", 0, 0 },
	{ ".example", 0, 0 },
	{ "example.com.", 0, 0 },
	{ "exa_mple.com", 0, 0 },
	{ "exa mple.com", 0, 0 },
	{ "192.0.2.1", 0, 0 },
	{ "example.123", 0, 0 },
	{ "b\xc3\xbc"
	  "cher.de",
	    0, 0 },
	{ "b\xc3\xbc"
	  "cher.de",
	    HF_ADDR, 1 },
	{ "[192.0.2.1]", 0, 0 },
	{ "[192.0.2.1]", HF_ADDR, 1 },
	{ "[IPv6:2001:db8::1]", HF_ADDR, 1 },
	{ "[ipv6:::1]", HF_ADDR, 1 },
	{ "[IPv6:192.0.2.1]", HF_ADDR, 0 },
	{ "[192.0.2.256]", HF_ADDR, 0 },
	/* A general literal needs a tag registered with IANA; IPv6 is
	 * the only one, so no other is accepted. */
	{ "[x-tag:anything]", HF_ADDR, 0 },
	{ "[2001:db8::1]", HF_ADDR, 0 },
	{ "[]", HF_ADDR, 0 },
	{ LONG63 ".com", 0, 1 },
	{ LONG63 "a.com", 0, 0 },
	/* 253 characters: ok; 254: too long. */
	{ LONG63 "." LONG63 "." LONG63 "." LONG63 "a", 0, 0 },
	{ LONG63
	    "." LONG63 "." LONG63
	    ".aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    0, 1 },
	{ LONG63
	    "." LONG63 "." LONG63
	    ".aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    0, 0 },
};

ParameterizedTestParameters(mailmsg, host_validation)
{
	return cr_make_param_array(struct host_case, host_cases,
	    sizeof(host_cases) / sizeof(host_cases[0]));
}

ParameterizedTest(struct host_case *c, mailmsg, host_validation)
{
	cr_assert_eq(mailmsg_host_valid(c->host, strlen(c->host), c->flags),
	    c->ok, "%s (flags %d)", c->host, c->flags);
}

Test(mailmsg, validation_error_names_the_address_printably)
{
	struct sq_err err = { 0 };

	cr_assert_eq(mailmsg_addr_valid("bo b\n@x", 0, &err), SQ_EPARSE);
	cr_assert_str_eq(err.msg, "bad address \"bo b?@x\": space in address");
}
