/*
 * test_dropfile.c - the drop-file format: envelope lines, the envelope
 * taken from the header, Bcc removal, what is refused and why, line
 * endings, size limits.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dropfile.h"
#include "envelope.h"
#include "mailmsg.h"
#include "util.h"
#include "param_rows.h"

static const struct dropfile_opts dropfile_test_opts = {
	.hostname = "host.example",
	.default_sender = "owner@host.example",
	.size_max = 0,
};

/* Parse a NUL-terminated whole file with the test options. */
static int
dropfile_test_parse(const char *text, struct dropfile *df, struct sq_err *err)
{
	size_t len = strlen(text);

	return dropfile_parse(text, len, len, &dropfile_test_opts, df, err);
}

/* The bytes stored after the added fields: header + rest of the input. */
static char *
dropfile_test_stored(const char *text, const struct dropfile *df)
{
	return xasprintf("%.*s%s", (int)df->header_len, df->header,
	    text + df->rest_off);
}

Test(dropfile, envelope_lines_give_the_envelope_and_are_removed)
{
	const char *text =
	    "X-Sendq-Sender: <alice@example.org>\nX-Sendq-Recipient: "
	    "bob@example.net\nx-sendq-recipient: <carol@example.net>, "
	    "dave@example.net\nFrom: Someone Else <other@example.com>\nTo: "
	    "list@example.com\nSubject: hi\n\nbody\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *stored;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_str_eq(df.env->sender, "alice@example.org");
	cr_assert_eq(df.env->n_rcpts, 3);
	cr_assert_str_eq(df.env->rcpts[0], "bob@example.net");
	cr_assert_str_eq(df.env->rcpts[1], "carol@example.net");
	cr_assert_str_eq(df.env->rcpts[2], "dave@example.net");
	cr_assert_eq(df.n_envlines, 3);
	stored = dropfile_test_stored(text, &df);
	cr_assert_str_eq(stored,
	    "From: Someone Else <other@example.com>\nTo: "
	    "list@example.com\nSubject: hi\n\nbody\n");
	free(stored);
	dropfile_fini(&df);
}

Test(dropfile, null_sender_envelope_line)
{
	struct dropfile df;
	struct sq_err   err = { 0 };

	cr_assert_eq(
	    dropfile_test_parse("X-Sendq-Sender: <>\nX-Sendq-Recipient: "
				"bob@example.net\n\nbody\n",
		&df, &err),
	    0, "%s", err.msg);
	cr_assert_str_eq(df.env->sender, "");
	dropfile_fini(&df);
}

Test(dropfile, recipient_lines_alone_take_the_sender_from_from)
{
	struct dropfile df;
	struct sq_err   err = { 0 };

	cr_assert_eq(dropfile_test_parse(
			 "X-Sendq-Recipient: bob@example.net\nFrom: Alice "
			 "<alice@example.org>\nTo: x@example.com\n\nb\n",
			 &df, &err),
	    0, "%s", err.msg);
	cr_assert_str_eq(df.env->sender, "alice@example.org");
	cr_assert_eq(df.env->n_rcpts, 1);
	cr_assert_str_eq(df.env->rcpts[0], "bob@example.net");
	dropfile_fini(&df);
}

Test(dropfile, header_derived_envelope_like_sendq_t)
{
	const char *text =
	    "From: Alice <alice@example.org>\nTo: Bob <bob@example.net>, "
	    "carol@example.net\nCc: dave@example.net,\n bob@example.net\nBcc: "
	    "eve@example.net\nSubject: hello\n\nbody\n";
	struct dropfile df;
	struct sq_err   err = { 0 };

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_str_eq(df.env->sender, "alice@example.org");
	cr_assert_eq(df.env->n_rcpts, 4); /* bob only once */
	cr_assert_str_eq(df.env->rcpts[0], "bob@example.net");
	cr_assert_str_eq(df.env->rcpts[1], "carol@example.net");
	cr_assert_str_eq(df.env->rcpts[2], "dave@example.net");
	cr_assert_str_eq(df.env->rcpts[3], "eve@example.net");
	cr_assert_eq(df.n_envlines, 0);
	cr_assert(df.has_from);
	cr_assert_not(df.has_date);
	cr_assert_not(df.has_msgid);
	dropfile_fini(&df);
}

Test(dropfile, bcc_is_removed_from_the_stored_header)
{
	const char *text =
	    "To: bob@example.net\nBcc: "
	    "secret@example.net,\n\tother@example.net\nSubject: s\nBCC: "
	    "third@example.net\n\nBcc: in the body stays\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *stored;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_eq(df.env->n_rcpts, 4);
	stored = dropfile_test_stored(text, &df);
	cr_assert_str_eq(stored,
	    "To: bob@example.net\nSubject: s\n\nBcc: in the body stays\n");
	free(stored);
	dropfile_fini(&df);
}

Test(dropfile, bcc_is_removed_also_with_envelope_lines)
{
	const char     *text = "X-Sendq-Recipient: bob@example.net\nBcc: "
			       "hidden@example.net\nSubject: s\n\nb\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *stored;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_eq(df.env->n_rcpts, 1);
	stored = dropfile_test_stored(text, &df);
	cr_assert_str_eq(stored, "Subject: s\n\nb\n");
	free(stored);
	dropfile_fini(&df);
}

Test(dropfile, sender_falls_back_to_the_file_owner)
{
	struct dropfile df;
	struct sq_err   err = { 0 };

	cr_assert_eq(
	    dropfile_test_parse("To: bob@example.net\n\nb\n", &df, &err), 0,
	    "%s", err.msg);
	cr_assert_str_eq(df.env->sender, "owner@host.example");
	dropfile_fini(&df);
}

Test(dropfile, no_sender_at_all_is_refused)
{
	struct dropfile_opts o = dropfile_test_opts;
	const char          *text = "To: bob@example.net\n\nb\n";
	struct dropfile      df;
	struct sq_err        err = { 0 };

	o.default_sender = NULL;
	cr_assert_eq(
	    dropfile_parse(text, strlen(text), strlen(text), &o, &df, &err),
	    SQ_EPARSE);
	cr_assert(strstr(err.msg, "no sender") != NULL, "%s", err.msg);
	cr_assert_null(df.env);
}

Test(dropfile, unqualified_addresses_get_the_hostname)
{
	struct dropfile df;
	struct sq_err   err = { 0 };

	cr_assert_eq(
	    dropfile_test_parse(
		"X-Sendq-Sender: root\nX-Sendq-Recipient: admin\n\nb\n", &df,
		&err),
	    0, "%s", err.msg);
	cr_assert_str_eq(df.env->sender, "root@host.example");
	cr_assert_str_eq(df.env->rcpts[0], "admin@host.example");
	dropfile_fini(&df);
}

/* Inline arrays: Criterion copies parameters to the test process. */
struct dropfile_bad {
	char text[160];
	int  code;
	char reason[40]; /* part of err.msg; "" for none */
};

ParameterizedTestParameters(dropfile, malformed_files_are_refused_with_a_reason)
{
	static struct dropfile_bad cases[] = {
		{ "Subject: nobody\n\nbody\n", SQ_EPARSE, "no recipients" },
		{ "", SQ_EPARSE, "no recipients" },
		{ "To: undisclosed-recipients:;\n\nb\n", SQ_EPARSE,
		    "no recipients" },
		{ "To: bob@@example.net\n\nb\n", SQ_EPARSE, "To field" },
		{ "To: <bob@exa mple.net\n\nb\n", SQ_EPARSE, "To field" },
		{ "X-Sendq-Recipient: bob@example..net\n\nb\n", SQ_EPARSE,
		    "X-Sendq-Recipient" },
		{ "X-Sendq-Recipient:\n\nb\n", SQ_EPARSE, "no address" },
		{ "X-Sendq-Sender: a@example.org, "
		  "b@example.org\nX-Sendq-Recipient: c@example.net\n\nb\n",
		    SQ_EPARSE, "exactly one" },
		{ "X-Sendq-Sender: a@example.org\nX-Sendq-Sender: "
		  "b@example.org\nX-Sendq-Recipient: c@example.net\n\nb\n",
		    SQ_EPARSE, "more than one" },
		{ "X-Sendq-Recipients: c@example.net\n\nb\n", SQ_EPARSE,
		    "unknown envelope line" },
		{ "X-Sendq-Recipient: c@example.net,\n d@example.net\n\nb\n",
		    SQ_EPARSE, "folded" },
		/* Envelope lines after the header began are not envelope
		 * lines: refused rather than relayed or ignored. */
		{ "To: bob@example.net\nX-Sendq-Recipient: "
		  "eve@example.net\n\nb\n",
		    SQ_EPARSE, "inside the header" },
		{ "X-Sendq-Recipient: bob@example.net\nSubject: "
		  "s\nX-Sendq-Sender: eve@example.net\n\nb\n",
		    SQ_EPARSE, "inside the header" },
		{ "From: a@example.org, b@example.org\nTo: "
		  "c@example.net\n\nb\n",
		    0, "" }, /* default sender used */
	};

	return cr_make_param_array(struct dropfile_bad, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct dropfile_bad *c, dropfile,
    malformed_files_are_refused_with_a_reason)
{
	struct dropfile df;
	struct sq_err   err = { 0 };
	int             rc;

	rc = dropfile_test_parse(c->text, &df, &err);
	cr_assert_eq(rc, c->code, "%s: rc %d (%s)", c->text, rc, err.msg);
	if (c->reason[0] != '\0')
		cr_assert(strstr(err.msg, c->reason) != NULL,
		    "%s: reason \"%s\" lacks \"%s\"", c->text, err.msg,
		    c->reason);
	dropfile_fini(&df);
}

Test(dropfile, envelope_lines_after_the_header_do_not_form_the_envelope)
{
	/* A body line that looks like an envelope line is body. */
	const char *text =
	    "To: bob@example.net\n\nX-Sendq-Recipient: eve@example.net\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *stored;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_eq(df.env->n_rcpts, 1);
	cr_assert_str_eq(df.env->rcpts[0], "bob@example.net");
	cr_assert_eq(df.n_envlines, 0);
	stored = dropfile_test_stored(text, &df);
	cr_assert_str_eq(stored, text);
	free(stored);
	dropfile_fini(&df);
}

Test(dropfile, crlf_file_is_kept_crlf)
{
	const char *text =
	    "X-Sendq-Sender: alice@example.org\r\nX-Sendq-Recipient: "
	    "bob@example.net\r\nSubject: crlf\r\nBcc: "
	    "x@example.net\r\n\r\nline\r\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *stored, *added;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert(df.crlf);
	cr_assert_str_eq(df.env->sender, "alice@example.org");
	stored = dropfile_test_stored(text, &df);
	cr_assert_str_eq(stored, "Subject: crlf\r\n\r\nline\r\n");
	added = dropfile_added_fields(&df, "Thu, 01 Jan 2026 00:00:00 +0000",
	    "ABC", "host.example");
	cr_assert_str_eq(added,
	    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\nFrom: "
	    "alice@example.org\r\nMessage-ID: <ABC@host.example>\r\n");
	free(added);
	free(stored);
	dropfile_fini(&df);
}

Test(dropfile, lf_file_gets_lf_added_fields_and_existing_ones_are_kept)
{
	const char *text =
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\nFrom: "
	    "a@example.org\nMessage-ID: <x@y>\nTo: b@example.net\n\nb\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *added;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_not(df.crlf);
	added = dropfile_added_fields(&df, "D", "ID", "h");
	cr_assert_str_eq(added, "");
	free(added);
	dropfile_fini(&df);
}

Test(dropfile, body_without_blank_line_gets_one)
{
	const char     *text = "X-Sendq-Recipient: bob@example.net\nSubject: "
			       "s\nthis is body text\n";
	struct dropfile df;
	struct sq_err   err = { 0 };
	char           *stored;

	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	stored = dropfile_test_stored(text, &df);
	cr_assert_str_eq(stored, "Subject: s\n\nthis is body text\n");
	free(stored);
	dropfile_fini(&df);
}

Test(dropfile, oversized_file_is_refused)
{
	struct dropfile_opts o = dropfile_test_opts;
	const char          *text = "To: bob@example.net\n\nbody\n";
	struct dropfile      df;
	struct sq_err        err = { 0 };

	o.size_max = 10;
	cr_assert_eq(
	    dropfile_parse(text, strlen(text), strlen(text), &o, &df, &err),
	    SQ_ELIMIT);
	cr_assert(strstr(err.msg, "too large") != NULL, "%s", err.msg);
	/* The whole size counts, not only the head the caller read. */
	o.size_max = 1000;
	cr_assert_eq(dropfile_parse(text, strlen(text), 1001, &o, &df, &err),
	    SQ_ELIMIT);
	cr_assert_eq(dropfile_parse(text, strlen(text), 1000, &o, &df, &err), 0,
	    "%s", err.msg);
	dropfile_fini(&df);
	/* The default limit is 25 MiB. */
	o.size_max = 0;
	cr_assert_eq(dropfile_parse(text, strlen(text),
			 DROPFILE_SIZE_DEFAULT + 1, &o, &df, &err),
	    SQ_ELIMIT);
}

Test(dropfile, header_that_does_not_end_in_the_head_is_refused)
{
	const char     *text = "To: bob@example.net\nSubject: s\n";
	struct dropfile df;
	struct sq_err   err = { 0 };

	/* More of the file follows, but the header did not end. */
	cr_assert_eq(dropfile_parse(text, strlen(text), strlen(text) + 100,
			 &dropfile_test_opts, &df, &err),
	    SQ_ELIMIT);
	cr_assert(strstr(err.msg, "header larger") != NULL, "%s", err.msg);
	/* The same bytes as the whole file: a header-only message. */
	cr_assert_eq(dropfile_test_parse(text, &df, &err), 0, "%s", err.msg);
	cr_assert_eq(df.rest_off, strlen(text));
	dropfile_fini(&df);
}

Test(dropfile, partial_head_with_complete_header_is_fine)
{
	const char     *text = "To: bob@example.net\n\nbody starts here";
	struct dropfile df;
	struct sq_err   err = { 0 };

	cr_assert_eq(dropfile_parse(text, strlen(text), 5000,
			 &dropfile_test_opts, &df, &err),
	    0, "%s", err.msg);
	cr_assert_eq(df.rest_off, strlen("To: bob@example.net\n"));
	dropfile_fini(&df);
}

Test(dropfile, too_many_envelope_line_bytes_are_refused)
{
	size_t          n = DROPFILE_ENVLINES_MAX / 40 + 10, i, len = 0;
	char           *text = xmalloc(n * 48 + 16);
	struct dropfile df;
	struct sq_err   err = { 0 };

	for (i = 0; i < n; i++)
		len += (size_t)sprintf(text + len,
		    "X-Sendq-Recipient: r%07zu@example.net\n", i);
	len += (size_t)sprintf(text + len, "\nb\n");
	cr_assert_neq(
	    dropfile_parse(text, len, len, &dropfile_test_opts, &df, &err), 0);
	cr_assert_null(df.env);
	free(text);
}

/* Found by fuzzing: a NUL inside a header field was stored. */
Test(dropfile, nul_byte_in_the_header_is_refused)
{
	static const char text[] = "To: bob@example.net\nX-A: a\0b\n\nbody\n";
	struct dropfile   df;
	struct sq_err     err = { 0 };

	cr_assert_eq(dropfile_parse(text, sizeof(text) - 1, sizeof(text) - 1,
			 &dropfile_test_opts, &df, &err),
	    SQ_EPARSE);
	cr_assert(strstr(err.msg, "NUL") != NULL, "%s", err.msg);
	cr_assert_null(df.env);
}
