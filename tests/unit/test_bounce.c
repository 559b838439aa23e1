/*
 * test_bounce.c - delivery status notifications (RFC 3464).
 *
 * Golden files: tests/unit/data/bounce/ (*.ref) hold the exact bytes of the
 * sample DSNs.  After an intended format change, regenerate them with
 * SENDQ_UPDATE_GOLDEN=1 ./test_bounce and review the diff.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounce.h"
#include "buf.h"
#include "util.h"
#include "param_rows.h"

#define TEST_MAX (1024 * 1024)

static const char test_orig_headers[] =
    "Received: from localhost (uid 1000)\n\tby relay.example.net (sendq); Tue, "
    "14 Nov 2023 22:13:20 +0000\nFrom: Alice <alice@example.com>\nTo: "
    "bob@example.com, carol@example.org\nSubject: Quarterly report\nDate: Tue, "
    "14 Nov 2023 22:13:19 +0000\nMessage-ID: "
    "<20231114221319.4711@example.com>\n";

static const struct bounce_rcpt test_failed_rcpts[] = {
	{
	    .addr = "bob@example.com",
	    .reply = "550 5.1.1 <bob@example.com>: Recipient address rejected: "
		     "User unknown in virtual mailbox table",
	    .remote_mta = "smtp.example.net",
	},
	{
	    .addr = "carol@example.org",
	    .status = "5.4.7",
	    .reply = "message expired after 5 days",
	},
};

static const struct bounce_rcpt test_delayed_rcpts[] = {
	{
	    .addr = "dave@example.net",
	    .reply = "451 4.3.0 <dave@example.net>: Temporary lookup failure",
	    .remote_mta = "smtp.example.net",
	},
};

static struct bounce_params
test_failed_params(void)
{
	struct bounce_params p = {
		.reporting_host = "relay.example.net",
		.to = "alice@example.com",
		.queue_id = "018F2C3A4B0A1B2C3D4E",
		.orig_sender = "alice@example.com",
		.arrival = 1700000000,
		.now = 1700003600,
		.action = BOUNCE_FAILED,
		.rcpts = test_failed_rcpts,
		.n_rcpts = 2,
		.orig_headers = test_orig_headers,
		.orig_headers_len = sizeof(test_orig_headers) - 1,
		.nonce = "018F2C3A4B0A1B2C3D4E.1700003600",
	};

	return p;
}

static struct bounce_params
test_delayed_params(void)
{
	struct bounce_params p = test_failed_params();

	p.action = BOUNCE_DELAYED;
	p.rcpts = test_delayed_rcpts;
	p.n_rcpts = 1;
	p.now = 1700000000 + 4 * 3600;
	p.retry_until = 1700000000 + 5 * 86400;
	p.nonce = "018F2C3A4B0A1B2C3D4E.delay";
	return p;
}

/* Build the DSN into a fresh NUL-terminated string. */
static char *
test_build(const struct bounce_params *p)
{
	struct buf b;
	char      *s;

	buf_init(&b, TEST_MAX);
	cr_assert_eq(bounce_build(p, &b), 0);
	cr_assert_eq(memchr(b.data, '\0', b.len), NULL);
	s = xstrndup(b.data, b.len);
	buf_fini(&b);
	return s;
}

static char *
test_read_file(const char *path, size_t *lenp)
{
	FILE *f;
	char *s;
	long  n;

	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	s = xmalloc((size_t)n + 1);
	cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*lenp = (size_t)n;
	return s;
}

static void
test_golden(const char *name, const char *got)
{
	char  *path, *want;
	size_t len, i;
	FILE  *f;

	path = xasprintf("%s/bounce/%s", SENDQ_TEST_DATA, name);
	if (getenv("SENDQ_UPDATE_GOLDEN") != NULL) {
		f = fopen(path, "wb");
		cr_assert_not_null(f);
		fputs(got, f);
		fclose(f);
	}
	want = test_read_file(path, &len);
	for (i = 0; i < len && got[i] == want[i]; i++)
		;
	cr_assert(i == len && got[i] == '\0',
	    "%s differs at byte %zu:\n--- got ---\n%.200s\n--- want "
	    "---\n%.200s",
	    path, i, got + i, want + i);
	free(want);
	free(path);
}

/* The boundary declared in the top-level Content-Type. */
static char *
test_boundary(const char *dsn)
{
	const char *s, *e;

	s = strstr(dsn, "boundary=\"");
	cr_assert_not_null(s);
	s += strlen("boundary=\"");
	e = strchr(s, '"');
	cr_assert_not_null(e);
	return xstrndup(s, (size_t)(e - s));
}

/* Count lines equal to line (without its LF). */
static size_t
test_count_lines(const char *dsn, const char *line)
{
	size_t      n = 0, len = strlen(line);
	const char *p = dsn;

	while (*p != '\0') {
		if (strncmp(p, line, len) == 0 && p[len] == '\n')
			n++;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	return n;
}

/* Every line ends in LF, is at most 998 bytes, holds printable ASCII. */
static void
test_assert_wellformed(const char *dsn)
{
	const char *p = dsn, *e;

	cr_assert_gt(strlen(dsn), 0);
	cr_assert_eq(dsn[strlen(dsn) - 1], '\n');
	for (; *p != '\0'; p = e + 1) {
		e = strchr(p, '\n');
		cr_assert_not_null(e);
		cr_assert_leq(e - p, 998, "line too long: %.60s", p);
		for (; p < e; p++)
			cr_assert((*p >= 0x20 && *p < 0x7f) || *p == '\t',
			    "byte 0x%02x in output", (unsigned char)*p);
	}
}

/* The header names of the top-level header section, space separated. */
static char *
test_header_names(const char *dsn)
{
	struct buf  b;
	const char *p = dsn, *e, *colon;
	char       *s;

	buf_init(&b, TEST_MAX);
	while (*p != '\n' && *p != '\0') {
		e = strchr(p, '\n');
		cr_assert_not_null(e);
		if (*p != ' ' && *p != '\t') {
			colon = memchr(p, ':', (size_t)(e - p));
			cr_assert_not_null(colon, "not a header: %.60s", p);
			buf_append(&b, p, (size_t)(colon - p));
			buf_append(&b, " ", 1);
		}
		p = e + 1;
	}
	buf_append(&b, "", 1);
	s = xstrdup(b.data);
	buf_fini(&b);
	return s;
}

/*
 * Run tests/tools/check_dsn.py on dsn with the extra arguments.
 * Returns its exit status; skips the test when python3 cannot be run.
 */
static int
test_run_check_dsn(const char *dsn, const char *rcpt, const char *status,
    const char *action)
{
	char  path[] = "/tmp/test_bounce.XXXXXX";
	char *script, *argv[10];
	int   fd, st, argc = 0;
	pid_t pid;

	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, dsn, strlen(dsn)), (ssize_t)strlen(dsn));
	close(fd);
	script = xasprintf("%s/../../tools/check_dsn.py", SENDQ_TEST_DATA);
	argv[argc++] = "python3";
	argv[argc++] = script;
	argv[argc++] = path;
	if (rcpt != NULL) {
		argv[argc++] = "--final-recipient";
		argv[argc++] = (char *)rcpt;
	}
	if (status != NULL) {
		argv[argc++] = "--status";
		argv[argc++] = (char *)status;
	}
	if (action != NULL) {
		argv[argc++] = "--action";
		argv[argc++] = (char *)action;
	}
	argv[argc] = NULL;
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	unlink(path);
	free(script);
	cr_assert(WIFEXITED(st), "check_dsn.py did not exit normally");
	if (WEXITSTATUS(st) == 127)
		cr_skip_test("python3 is not available");
	return WEXITSTATUS(st);
}

Test(bounce, failed_dsn_for_two_recipients_matches_golden_file)
{
	struct bounce_params p = test_failed_params();
	char                *dsn = test_build(&p);

	test_golden("failed.ref", dsn);
	test_assert_wellformed(dsn);
	free(dsn);
}

Test(bounce, delayed_dsn_matches_golden_file)
{
	struct bounce_params p = test_delayed_params();
	char                *dsn = test_build(&p);

	test_golden("delayed.ref", dsn);
	test_assert_wellformed(dsn);
	free(dsn);
}

Test(bounce, failed_dsn_has_the_rfc_5322_and_mime_headers)
{
	struct bounce_params p = test_failed_params();
	char                *dsn = test_build(&p), *names;

	names = test_header_names(dsn);
	cr_assert_str_eq(names,
	    "From To Subject Date Message-ID Auto-Submitted MIME-Version "
	    "Content-Type ");
	cr_assert_not_null(strstr(dsn,
	    "From: \"Mail Delivery System\" "
	    "<MAILER-DAEMON@relay.example.net>\n"));
	cr_assert_not_null(strstr(dsn, "\nTo: <alice@example.com>\n"));
	cr_assert_not_null(
	    strstr(dsn, "\nSubject: Undelivered Mail Returned to Sender\n"));
	cr_assert_not_null(
	    strstr(dsn, "\nDate: Tue, 14 Nov 2023 23:13:20 +0000\n"));
	cr_assert_not_null(strstr(dsn,
	    "\nMessage-ID: "
	    "<018F2C3A4B0A1B2C3D4E_1700003600@relay.example.net>\n"));
	cr_assert_not_null(strstr(dsn,
	    "\nContent-Type: multipart/report; report-type=delivery-status;\n "
	    "boundary=\""));
	cr_assert_null(strchr(dsn, '\r'));
	free(names);
	free(dsn);
}

Test(bounce, delayed_dsn_says_it_is_still_retried_and_until_when)
{
	struct bounce_params p = test_delayed_params();
	char                *dsn = test_build(&p);

	cr_assert_not_null(
	    strstr(dsn, "\nSubject: Delayed Mail (still being retried)\n"));
	cr_assert_not_null(strstr(dsn, "has not yet been delivered"));
	cr_assert_not_null(strstr(dsn,
	    "will keep trying until Sun, 19 Nov 2023 22:13:20 +0000."));
	cr_assert_not_null(strstr(dsn, "\nAction: delayed\nStatus: 4.3.0\n"));
	cr_assert_not_null(strstr(dsn,
	    "\nWill-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000\n"));
	free(dsn);
}

Test(bounce, delayed_dsn_without_expiry_omits_will_retry_until)
{
	struct bounce_params p = test_delayed_params();
	char                *dsn;

	p.retry_until = 0;
	dsn = test_build(&p);
	cr_assert_not_null(strstr(dsn, "until the message expires."));
	cr_assert_null(strstr(dsn, "Will-Retry-Until"));
	free(dsn);
}

Test(bounce, failed_dsn_has_no_will_retry_until)
{
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.retry_until = 1700000000 + 5 * 86400;
	dsn = test_build(&p);
	cr_assert_null(strstr(dsn, "Will-Retry-Until"));
	cr_assert_null(strstr(dsn, "keep trying"));
	free(dsn);
}

Test(bounce, optional_fields_are_left_out_when_unknown)
{
	static const struct bounce_rcpt r = { .addr = "x@example.com" };
	struct bounce_params            p = test_failed_params();
	char                           *dsn;

	p.rcpts = &r;
	p.n_rcpts = 1;
	dsn = test_build(&p);
	cr_assert_null(strstr(dsn, "Remote-MTA"));
	cr_assert_null(strstr(dsn, "Diagnostic-Code"));
	cr_assert_not_null(strstr(dsn,
	    "\nFinal-Recipient: rfc822; x@example.com\nAction: failed\nStatus: "
	    "5.0.0\nLast-Attempt-Date: Tue, 14 Nov 2023 23:13:20 +0000\n"));
	cr_assert_not_null(strstr(dsn, "<x@example.com>: delivery failed\n"));
	free(dsn);
}

Test(bounce, dates_are_utc_rfc_5322)
{
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.now = 0;
	p.arrival = 951782400; /* 2000-02-29, a leap day */
	dsn = test_build(&p);
	cr_assert_not_null(
	    strstr(dsn, "\nDate: Thu, 01 Jan 1970 00:00:00 +0000\n"));
	cr_assert_not_null(
	    strstr(dsn, "\nArrival-Date: Tue, 29 Feb 2000 00:00:00 +0000\n"));
	free(dsn);
}

/* Strings are arrays (Criterion copies the cases into the test
 * process); "-" stands for NULL. */
struct test_status_case {
	char               status[24];
	char               reply[64];
	enum bounce_action action;
	char               want[16];
};

ParameterizedTestParameters(bounce, status_is_derived_from_the_reply)
{
	static struct test_status_case cases[] = {
		/* a well-formed given status wins */
		{ "5.1.1", "550 5.7.1 denied", BOUNCE_FAILED, "5.1.1" },
		{ "4.4.7", "-", BOUNCE_FAILED, "4.4.7" },
		{ "5.123.456", "-", BOUNCE_FAILED, "5.123.456" },
		/* a malformed given status is ignored */
		{ "5.1", "550 5.1.2 bad domain", BOUNCE_FAILED, "5.1.2" },
		{ "3.1.1", "-", BOUNCE_FAILED, "5.0.0" },
		{ "5.1.1\nBcc: x", "-", BOUNCE_FAILED, "5.0.0" },
		{ "5.1234.1", "-", BOUNCE_DELAYED, "4.0.0" },
		/* the reply's enhanced code when its class matches */
		{ "-", "550 5.1.1 user unknown", BOUNCE_FAILED, "5.1.1" },
		{ "-", "550-5.1.1 user unknown\n550 5.1.1 more", BOUNCE_FAILED,
		    "5.1.1" },
		{ "-", "452 4.2.2 mailbox full", BOUNCE_DELAYED, "4.2.2" },
		{ "-", "  554 5.7.1 spam  ", BOUNCE_FAILED, "5.7.1" },
		{ "-", "550 5.1.1", BOUNCE_FAILED, "5.1.1" },
		/* else the reply code's class */
		{ "-", "550 4.1.1 class mismatch", BOUNCE_FAILED, "5.0.0" },
		{ "-", "550 user unknown", BOUNCE_FAILED, "5.0.0" },
		{ "-", "550", BOUNCE_FAILED, "5.0.0" },
		{ "-", "451 try again later", BOUNCE_DELAYED, "4.0.0" },
		{ "-", "451 4.3.0 expired while deferred", BOUNCE_FAILED,
		    "4.3.0" },
		{ "-", "421 service closing", BOUNCE_FAILED, "4.0.0" },
		{ "-", "550 5.1.1x not a code", BOUNCE_FAILED, "5.0.0" },
		{ "-", "550 5.1.1.1 not a code", BOUNCE_FAILED, "5.0.0" },
		/* else the action's default */
		{ "-", "-", BOUNCE_FAILED, "5.0.0" },
		{ "-", "-", BOUNCE_DELAYED, "4.0.0" },
		{ "-", "message expired after 5 days", BOUNCE_FAILED, "5.0.0" },
		{ "-", "250 2.0.0 ok", BOUNCE_FAILED, "5.0.0" },
		{ "-", "5501 5.1.1 four digits", BOUNCE_FAILED, "5.0.0" },
		{ "-", "55 5.1.1 two digits", BOUNCE_DELAYED, "4.0.0" },
		{ "-", "", BOUNCE_DELAYED, "4.0.0" },
	};

	return cr_make_param_array(struct test_status_case, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_status_case *c, bounce,
    status_is_derived_from_the_reply)
{
	struct bounce_rcpt r = {
		.addr = "bob@example.com",
		.status = strcmp(c->status, "-") == 0 ? NULL : c->status,
		.reply = strcmp(c->reply, "-") == 0 ? NULL : c->reply,
	};
	struct bounce_params p = test_failed_params();
	char                *dsn, *want;

	p.rcpts = &r;
	p.n_rcpts = 1;
	p.action = c->action;
	dsn = test_build(&p);
	want = xasprintf("\nStatus: %s\n", c->want);
	cr_assert_not_null(strstr(dsn, want), "status %s reply %s: want %s",
	    c->status, c->reply, c->want);
	cr_assert_null(strstr(strstr(dsn, "\nStatus: ") + 1, "\nStatus: "));
	free(want);
	free(dsn);
}

Test(bounce, header_injection_through_any_value_is_impossible)
{
	static const struct bounce_rcpt r[] = {
		{
		    .addr = "bob@example.com\r\nBcc: evil1@example.com",
		    .status = NULL,
		    .reply = "550 5.1.1 no\r\nBcc: "
			     "evil2@example.com\r\n\r\nBcc: evil3@example.com",
		    .remote_mta = "mx\nBcc: evil4@example.com",
		},
		{
		    .addr = "\nBcc: evil5@example.com",
		    .reply = "\n\nBcc: evil6@example.com\n\x01\x7f\xff",
		},
	};
	struct bounce_params p = test_failed_params();
	char                *dsn, *names;

	p.rcpts = r;
	p.n_rcpts = 2;
	p.to = "alice@example.com\r\nBcc: evil7@example.com";
	p.reporting_host = "relay\r\nBcc: evil8@example.com";
	p.queue_id = "ID\nBcc: evil9@example.com";
	p.orig_sender = "a\r\nBcc: evil10@example.com";
	p.nonce = "n\r\nBcc: evil11@example.com";
	dsn = test_build(&p);
	test_assert_wellformed(dsn);
	cr_assert_null(strstr(dsn, "\nBcc:"), "a line starts with Bcc:");
	cr_assert_eq(test_count_lines(dsn, "Bcc"), 0);
	names = test_header_names(dsn);
	cr_assert_str_eq(names,
	    "From To Subject Date Message-ID Auto-Submitted MIME-Version "
	    "Content-Type ");
	/* the text survives, flattened onto the line it belongs to */
	cr_assert_not_null(
	    strstr(dsn, "\nTo: <alice@example.com Bcc: evil7@example.com>\n"));
	cr_assert_not_null(strstr(dsn,
	    "\nDiagnostic-Code: smtp; 550 5.1.1 no Bcc: evil2@example.com "
	    "Bcc:\n evil3@example.com\n"));
	cr_assert_not_null(strstr(dsn, "Bcc: evil6@example.com ???\n"));
	free(names);
	free(dsn);
}

Test(bounce, header_injection_dsn_still_parses_as_a_dsn)
{
	static const struct bounce_rcpt r = {
		.addr = "bob@example.com",
		.reply = "550 5.1.1 no\r\nBcc: evil@example.com\r\n\r\n--x",
	};
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.rcpts = &r;
	p.n_rcpts = 1;
	dsn = test_build(&p);
	cr_assert_eq(
	    test_run_check_dsn(dsn, "bob@example.com", "5.1.1", "failed"), 0);
	free(dsn);
}

Test(bounce, long_reply_is_folded_under_78_columns_and_unfolds_back)
{
	struct bounce_rcpt   r = { .addr = "bob@example.com" };
	struct bounce_params p = test_failed_params();
	struct buf           reply, unfolded;
	char                *dsn, *s, *e, *field;
	int                  i;

	buf_init(&reply, TEST_MAX);
	buf_append_str(&reply, "550 5.7.1");
	for (i = 0; i < 200; i++)
		buf_append_str(&reply, " word");
	buf_append(&reply, "", 1);
	r.reply = reply.data;
	p.rcpts = &r;
	p.n_rcpts = 1;
	dsn = test_build(&p);
	test_assert_wellformed(dsn);

	field = strstr(dsn, "\nDiagnostic-Code: ");
	cr_assert_not_null(field);
	buf_init(&unfolded, TEST_MAX);
	s = field + 1;
	for (;;) {
		e = strchr(s, '\n');
		cr_assert_leq(e - s, 78, "line over 78: %.80s", s);
		buf_append(&unfolded, s, (size_t)(e - s));
		s = e + 1;
		if (*s != ' ')
			break;
	}
	buf_append(&unfolded, "", 1);
	s = xasprintf("Diagnostic-Code: smtp; %s", reply.data);
	cr_assert_str_eq(unfolded.data, s);
	free(s);
	buf_fini(&unfolded);
	buf_fini(&reply);
	free(dsn);
}

Test(bounce, a_word_longer_than_a_line_is_cut_below_998_bytes)
{
	struct bounce_rcpt   r = { .addr = "bob@example.com" };
	struct bounce_params p = test_failed_params();
	char                *word, *reply, *dsn;
	static char          hdr[3000];

	word = xmalloc(2501);
	memset(word, 'x', 2500);
	word[2500] = '\0';
	reply = xasprintf("550 5.1.1 %s end", word);
	r.reply = reply;
	r.addr = word;
	r.remote_mta = word;
	p.rcpts = &r;
	p.n_rcpts = 1;
	p.to = word;
	memset(hdr, 'h', sizeof(hdr));
	memcpy(hdr, "X-Long: ", 8);
	p.orig_headers = hdr;
	p.orig_headers_len = sizeof(hdr);
	dsn = test_build(&p);
	test_assert_wellformed(dsn);
	cr_assert_not_null(strstr(dsn, "\nStatus: 5.1.1\n"));
	free(dsn);
	free(reply);
	free(word);
}

Test(bounce, boundary_is_extended_until_it_occurs_in_no_part)
{
	static const char hdrs[] =
	    "Subject: sendq.018F2C3A4B0A1B2C3D4E_1700003600 and\n "
	    "sendq.018F2C3A4B0A1B2C3D4E_1700003600_1\n";
	struct bounce_params p = test_failed_params();
	char                *dsn, *b, *line, *body;

	p.orig_headers = hdrs;
	p.orig_headers_len = sizeof(hdrs) - 1;
	dsn = test_build(&p);
	b = test_boundary(dsn);
	cr_assert_str_eq(b, "sendq.018F2C3A4B0A1B2C3D4E_1700003600_2");
	line = xasprintf("--%s", b);
	cr_assert_eq(test_count_lines(dsn, line), 3);
	free(line);
	line = xasprintf("--%s--", b);
	cr_assert_eq(test_count_lines(dsn, line), 1);
	/* nothing after the Content-Type header mentions the boundary
	 * except the delimiter lines */
	body = strstr(dsn, "\n\n");
	cr_assert_not_null(body);
	cr_assert_eq(strstr(body, b) - body, strstr(body, "\n--") - body + 3);
	free(line);
	free(b);
	free(dsn);
}

Test(bounce, boundary_without_collision_is_derived_from_the_nonce)
{
	struct bounce_params p = test_failed_params();
	char                *dsn, *b;

	dsn = test_build(&p);
	b = test_boundary(dsn);
	cr_assert_str_eq(b, "sendq.018F2C3A4B0A1B2C3D4E_1700003600");
	cr_assert_leq(strlen(b), 70);
	free(b);
	free(dsn);

	p.nonce = "a very long nonce with \"quotes\" and more than seventy "
		  "characters in it, far too many";
	dsn = test_build(&p);
	b = test_boundary(dsn);
	cr_assert_leq(strlen(b), 70);
	cr_assert_null(strpbrk(b, "\" "));
	free(b);
	free(dsn);
}

Test(bounce, without_original_headers_part_3_is_empty_and_text_says_so)
{
	struct bounce_params p = test_failed_params();
	char                *dsn, *b, *want;

	p.orig_headers = NULL;
	p.orig_headers_len = 0;
	dsn = test_build(&p);
	b = test_boundary(dsn);
	cr_assert_not_null(
	    strstr(dsn, "The headers of your message are not available."));
	want = xasprintf(
	    "Content-Type: text/rfc822-headers\nContent-Description: "
	    "Undelivered Message Headers\n\n\n--%s--\n",
	    b);
	cr_assert_not_null(strstr(dsn, want));
	cr_assert_eq(
	    test_run_check_dsn(dsn, "bob@example.com", "5.1.1", "failed"), 0);
	free(want);
	free(b);
	free(dsn);
}

Test(bounce, original_headers_get_lf_line_ends_and_a_final_line_break)
{
	static const char    hdrs[] = "Subject: hi\r\nX-Ctl: a\x01"
				      "b\xc3\xa9\r\nTo: bob@example.com";
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.orig_headers = hdrs;
	p.orig_headers_len = sizeof(hdrs) - 1;
	dsn = test_build(&p);
	cr_assert_not_null(strstr(dsn,
	    "Undelivered Message Headers\n\nSubject: hi\nX-Ctl: a?b??\nTo: "
	    "bob@example.com\n\n--"));
	cr_assert_null(strchr(dsn, '\r'));
	free(dsn);
}

Test(bounce, trailing_blank_lines_of_the_headers_are_dropped)
{
	static const char    hdrs[] = "Subject: hi\n\n\n";
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.orig_headers = hdrs;
	p.orig_headers_len = sizeof(hdrs) - 1;
	dsn = test_build(&p);
	cr_assert_not_null(
	    strstr(dsn, "Undelivered Message Headers\n\nSubject: hi\n\n--"));
	free(dsn);
}

Test(bounce, too_small_buffer_gives_elimit_and_keeps_what_was_there)
{
	struct bounce_params p = test_failed_params();
	struct buf           full, b;
	size_t               need;

	buf_init(&full, TEST_MAX);
	cr_assert_eq(bounce_build(&p, &full), 0);
	need = full.len;

	buf_init(&b, need + 3 - 1);
	cr_assert_eq(buf_append(&b, "old", 3), 0);
	cr_assert_eq(bounce_build(&p, &b), SQ_ELIMIT);
	cr_assert_eq(b.len, 3);
	cr_assert_eq(memcmp(b.data, "old", 3), 0);
	buf_fini(&b);

	buf_init(&b, 100);
	cr_assert_eq(bounce_build(&p, &b), SQ_ELIMIT);
	cr_assert_eq(b.len, 0);
	buf_fini(&b);

	buf_init(&b, need + 3);
	cr_assert_eq(buf_append(&b, "old", 3), 0);
	cr_assert_eq(bounce_build(&p, &b), 0);
	cr_assert_eq(b.len, need + 3);
	cr_assert_eq(memcmp(b.data + 3, full.data, need), 0);
	buf_fini(&b);
	buf_fini(&full);
}

Test(bounce, output_is_deterministic)
{
	struct bounce_params p = test_failed_params();
	char                *a = test_build(&p), *b = test_build(&p);

	cr_assert_str_eq(a, b);
	free(a);
	free(b);
}

Test(bounce, python_email_parser_reads_a_multipart_report)
{
	struct bounce_params p = test_failed_params();
	char                *dsn = test_build(&p);

	cr_assert_eq(
	    test_run_check_dsn(dsn, "bob@example.com", "5.1.1", "failed"), 0);
	cr_assert_eq(
	    test_run_check_dsn(dsn, "carol@example.org", "5.4.7", "failed"), 0);
	cr_assert_eq(test_run_check_dsn(dsn, NULL, NULL, "failed"), 0);
	/* and the checker does notice a mismatch */
	cr_assert_eq(
	    test_run_check_dsn(dsn, "bob@example.com", "5.1.2", "failed"), 1);
	cr_assert_eq(test_run_check_dsn(dsn, "nobody@example.com", NULL, NULL),
	    1);
	cr_assert_eq(
	    test_run_check_dsn(dsn, "bob@example.com", NULL, "delayed"), 1);
	free(dsn);
}

Test(bounce, python_email_parser_reads_a_delayed_report)
{
	struct bounce_params p = test_delayed_params();
	char                *dsn = test_build(&p);

	cr_assert_eq(
	    test_run_check_dsn(dsn, "dave@example.net", "4.3.0", "delayed"), 0);
	free(dsn);
}

Test(bounce, checker_rejects_a_plain_message)
{
	cr_assert_eq(
	    test_run_check_dsn("From: a@example.com\nSubject: x\n\nhello\n",
		NULL, NULL, NULL),
	    1);
}

Test(bounce, diagnostic_type_is_smtp_only_for_smtp_replies)
{
	static const struct bounce_rcpt r[] = {
		{ .addr = "a@example.com", .reply = "550 5.1.1 unknown" },
		{ .addr = "b@example.com", .reply = "554-first line" },
		{ .addr = "c@example.com",
		    .reply = "message expired after 5 days" },
		{ .addr = "d@example.com", .reply = "5501 odd" },
	};
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.rcpts = r;
	p.n_rcpts = 4;
	dsn = test_build(&p);
	cr_assert_not_null(
	    strstr(dsn, "\nDiagnostic-Code: smtp; 550 5.1.1 unknown\n"));
	cr_assert_not_null(
	    strstr(dsn, "\nDiagnostic-Code: smtp; 554-first line\n"));
	cr_assert_not_null(strstr(dsn,
	    "\nDiagnostic-Code: X-Sendq; message expired after 5 days\n"));
	cr_assert_not_null(
	    strstr(dsn, "\nDiagnostic-Code: X-Sendq; 5501 odd\n"));
	free(dsn);
}

Test(bounce, missing_queue_id_and_sender_leave_no_empty_fields)
{
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.queue_id = NULL;
	p.orig_sender = NULL;
	p.to = NULL;
	p.reporting_host = NULL;
	p.nonce = NULL;
	dsn = test_build(&p);
	test_assert_wellformed(dsn);
	cr_assert_null(strstr(dsn, "Queue ID"));
	cr_assert_null(strstr(dsn, "X-Sendq-Queue-ID"));
	cr_assert_null(strstr(dsn, " \n"), "a line ends in a space");
	cr_assert_not_null(strstr(dsn, "\nSender: <>\n"));
	cr_assert_not_null(strstr(dsn, "\nTo: undisclosed-recipients:;\n"));
	cr_assert_not_null(strstr(dsn, "<MAILER-DAEMON@localhost>\n"));
	cr_assert_not_null(strstr(dsn, "\nMessage-ID: <0@localhost>\n"));
	free(dsn);
}

/* DSN parameters of the original (RFC 3461) */

Test(bounce, envid_and_orcpt_are_reported_decoded_before_their_blocks)
{
	static const struct bounce_rcpt r[] = {
		{ .addr = "bob@example.com",
		    .reply = "550 5.1.1 no",
		    .orcpt = "rfc822;Bob+2Bdsn@Example.COM" },
		{ .addr = "carol@example.org", .reply = "550 5.1.1 no" },
	};
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.rcpts = r;
	p.n_rcpts = 2;
	p.envid = "QQ+2B1+3D2";
	dsn = test_build(&p);
	/* RFC 3464 2.2: Original-Envelope-Id comes first, then
	 * Reporting-MTA. */
	cr_assert_not_null(
	    strstr(dsn,
		"Content-Description: Delivery report\n\nOriginal-Envelope-Id: "
		"QQ+1=2\nReporting-MTA: dns; relay.example.net\n"),
	    "%s", dsn);
	/* 2.3: Original-Recipient precedes Final-Recipient. */
	cr_assert_not_null(strstr(dsn,
			       "\n\nOriginal-Recipient: rfc822; "
			       "Bob+dsn@Example.COM\nFinal-Recipient: rfc822; "
			       "bob@example.com\n"),
	    "%s", dsn);
	/* Only the recipient that had an ORCPT. */
	cr_assert_null(strstr(strstr(dsn, "carol@example.org\nAction"),
	    "Original-Recipient"));
	cr_assert_eq(
	    test_run_check_dsn(dsn, "bob@example.com", "5.1.1", "failed"), 0);
	free(dsn);
}

Test(bounce, envid_and_orcpt_cannot_inject_lines)
{
	static const struct bounce_rcpt r[] = {
		{ .addr = "bob@example.com",
		    .orcpt = "rfc822;x+0D+0AStatus:+202.0.0" },
	};
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.rcpts = r;
	p.n_rcpts = 1;
	p.envid = "a+0ABcc:+20x+00";
	dsn = test_build(&p);
	cr_assert_not_null(strstr(dsn, "\nOriginal-Envelope-Id: a Bcc: x?\n"),
	    "%s", dsn);
	cr_assert_not_null(
	    strstr(dsn, "\nOriginal-Recipient: rfc822; x Status: 2.0.0\n"),
	    "%s", dsn);
	cr_assert_null(strstr(dsn, "\nStatus: 2.0.0"));
	cr_assert_null(strstr(dsn, "\nBcc:"));
	free(dsn);
}

Test(bounce, orcpt_without_an_address_type_is_left_out)
{
	static const struct bounce_rcpt r[] = {
		{ .addr = "bob@example.com", .orcpt = "bob@example.com" },
	};
	struct bounce_params p = test_failed_params();
	char                *dsn;

	p.rcpts = r;
	p.n_rcpts = 1;
	dsn = test_build(&p);
	cr_assert_null(strstr(dsn, "Original-Recipient"));
	cr_assert_null(strstr(dsn, "Original-Envelope-Id"));
	free(dsn);
}
