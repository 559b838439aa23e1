/*
 * test_intake_proto.c - the SMTP server core driven by client transcripts,
 * and the [intake] configuration keys it is run with.
 *
 * A small fake driver feeds client bytes (whole, or in chunks of any
 * size), answers the core's events the way intake.c does (DATA: ok or
 * not, END: queued as ID1 or a spool failure) and collects the replies
 * and the stored message bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "intake_proto.h"
#include "param_rows.h"

struct drv {
	struct intake_proto     *p;
	char                     out[65536];
	size_t                   out_len;
	char                     body[262144];
	size_t                   body_len;
	int                      data_ok;
	const char              *refuse_data; /* data_refuse() */
	const char              *refuse_end;  /* at DATA / END */
	enum intake_proto_result result;
	int                      n_data, n_end, n_abort, closed;
	size_t                   taken; /* bytes the core took */
};

static void
drv_init_junk(struct drv *d, uint64_t max_size, size_t max_rcpts,
    enum intake_proto_greeting greeting, unsigned max_junk)
{
	struct intake_proto_params params = {
		.hostname = "mx.test",
		.max_message_size = max_size,
		.max_recipients = max_rcpts,
		.greeting = greeting,
		.max_junk_commands = max_junk,
	};

	memset(d, 0, sizeof(*d));
	d->data_ok = 1;
	d->result = INTAKE_PROTO_QUEUED;
	d->p = intake_proto_new(&params);
}

static void
drv_init(struct drv *d, uint64_t max_size, size_t max_rcpts,
    enum intake_proto_greeting greeting)
{
	drv_init_junk(d, max_size, max_rcpts, greeting, 0);
}

static void
drv_collect(struct drv *d)
{
	const char *data;
	size_t      len;

	intake_proto_output(d->p, &data, &len);
	if (len == 0)
		return;
	cr_assert(d->out_len + len < sizeof(d->out));
	memcpy(d->out + d->out_len, data, len);
	d->out_len += len;
	d->out[d->out_len] = '\0';
	intake_proto_consumed(d->p, len);
}

/* Handle every queued event; returns how many there were. */
static int
drv_events(struct drv *d)
{
	struct intake_proto_event ev;
	int                       n = 0;

	while (intake_proto_next_event(d->p, &ev)) {
		n++;
		switch (ev.type) {
		case INTAKE_PROTO_EV_DATA:
			d->n_data++;
			d->body_len = 0;
			if (d->refuse_data != NULL)
				intake_proto_data_refuse(d->p, d->refuse_data);
			else
				intake_proto_data_start(d->p, d->data_ok);
			break;
		case INTAKE_PROTO_EV_BODY:
			cr_assert(ev.len > 0);
			cr_assert(d->body_len + ev.len <= sizeof(d->body));
			memcpy(d->body + d->body_len, ev.data, ev.len);
			d->body_len += ev.len;
			break;
		case INTAKE_PROTO_EV_ABORT:
			d->n_abort++;
			d->body_len = 0;
			break;
		case INTAKE_PROTO_EV_END:
			d->n_end++;
			if (d->refuse_end != NULL)
				intake_proto_data_refuse(d->p, d->refuse_end);
			else
				intake_proto_data_done(d->p, d->result, "ID1");
			break;
		case INTAKE_PROTO_EV_CLOSE:
			d->closed = 1;
			break;
		}
	}
	return n;
}

/* Feed len bytes in chunks of at most chunk bytes (0 = all at once). */
static void
drv_feed_chunked(struct drv *d, const char *s, size_t len, size_t chunk)
{
	size_t off = 0, n, used;

	drv_collect(d);
	while (off < len) {
		n = chunk == 0 || len - off < chunk ? len - off : chunk;
		used = intake_proto_feed(d->p, s + off, n);
		off += used;
		d->taken += used;
		if (drv_events(d) == 0 && used == 0) {
			drv_collect(d);
			if (intake_proto_closed(d->p))
				break;
			/* Output above the watermark: drained now. */
			used = intake_proto_feed(d->p, s + off, n);
			off += used;
			d->taken += used;
			if (used == 0 && drv_events(d) == 0)
				break;
		}
		drv_collect(d);
	}
	drv_events(d);
	drv_collect(d);
}

static void
drv_feed(struct drv *d, const char *s)
{
	drv_feed_chunked(d, s, strlen(s), 0);
}

static void
drv_fini(struct drv *d)
{
	intake_proto_free(d->p);
}

/* The reply lines after the greeting, with CRLF shown as '|'. */
static const char *
drv_replies(struct drv *d)
{
	static char shown[65536];
	const char *s = strstr(d->out, "\r\n");
	size_t      i = 0;

	s = s != NULL ? s + 2 : d->out;
	for (; *s != '\0' && i + 1 < sizeof(shown); s++) {
		if (s[0] == '\r' && s[1] == '\n') {
			shown[i++] = '|';
			s++;
		} else
			shown[i++] = *s;
	}
	shown[i] = '\0';
	return shown;
}

#define HAPPY_CLIENT \
	"EHLO client.test\r\n" \
	"MAIL FROM:<alice@example.org>\r\n" \
	"RCPT TO:<bob@example.net>\r\n" \
	"DATA\r\n" \
	"Subject: hi\r\n" \
	"\r\n" \
	"Hello.\r\n" \
	"..leading dot\r\n" \
	".\r\n" \
	"QUIT\r\n"

#define HAPPY_REPLIES \
	"250-mx.test|250-PIPELINING|250-SIZE 1000000|" \
	"250-ENHANCEDSTATUSCODES|250-8BITMIME|250-DSN|250 SMTPUTF8|" \
	"250 2.1.0 Ok|250 2.1.5 Ok|" \
	"354 End data with <CR><LF>.<CR><LF>|" \
	"250 2.0.0 Ok: queued as ID1|221 2.0.0 Bye|"

Test(intake_proto, greets_with_220_and_the_hostname)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_collect(&d);
	cr_assert_str_eq(d.out, "220 mx.test ESMTP sendq\r\n");
	drv_fini(&d);
}

Test(intake_proto, happy_path_queues_the_unstuffed_message_with_lf)
{
	struct drv d;

	drv_init(&d, 1000000, 100, INTAKE_PROTO_GREET);
	drv_feed(&d, HAPPY_CLIENT);
	cr_assert_str_eq(drv_replies(&d), HAPPY_REPLIES);
	cr_assert_eq(d.n_data, 1);
	cr_assert_eq(d.n_end, 1);
	cr_assert_eq(d.body_len,
	    strlen("Subject: hi\n\nHello.\n.leading dot\n"));
	cr_assert(memcmp(d.body, "Subject: hi\n\nHello.\n.leading dot\n",
		      d.body_len) == 0);
	cr_assert(d.closed);
	/* Wire size: the unstuffed message with CRLF line ends. */
	cr_assert_eq(intake_proto_msg_size(d.p),
	    strlen("Subject: hi\r\n\r\nHello.\r\n.leading dot\r\n"));
	drv_fini(&d);
}

/* Every chunking of the same bytes gives the same replies and message
 * (pipelined commands arrive in one piece, slow clients byte by byte). */
ParameterizedTestParameters(intake_proto, any_chunking_gives_same_result)
{
	static size_t chunks[] = { 0, 1, 2, 3, 5, 7, 13, 64 };

	return cr_make_param_array(size_t, chunks,
	    sizeof(chunks) / sizeof(chunks[0]));
}

ParameterizedTest(size_t *chunk, intake_proto, any_chunking_gives_same_result)
{
	struct drv d;

	drv_init(&d, 1000000, 100, INTAKE_PROTO_GREET);
	drv_feed_chunked(&d, HAPPY_CLIENT, strlen(HAPPY_CLIENT), *chunk);
	cr_assert_str_eq(drv_replies(&d), HAPPY_REPLIES);
	cr_assert(memcmp(d.body, "Subject: hi\n\nHello.\n.leading dot\n",
		      d.body_len) == 0);
	drv_fini(&d);
}

Test(intake_proto, pipelined_transactions_are_answered_in_order)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nRCPT TO:<bad address@x>\r\nRCPT "
	    "TO:<c@example.org>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<>\r\nRCPT "
	    "TO:<d@example.org>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n");
	cr_assert(strstr(drv_replies(&d),
		      "250 2.1.0 Ok|250 2.1.5 Ok|553 5.1.3 Recipient address "
		      "rejected: bad address \"bad address@x\"") != NULL,
	    "%s", drv_replies(&d));
	cr_assert(strstr(drv_replies(&d),
		      "|250 2.1.5 Ok|354 End data with <CR><LF>.<CR><LF>|250 "
		      "2.0.0 Ok: queued as ID1|250 2.1.0 Ok|250 2.1.5 Ok|354 "
		      "End data with <CR><LF>.<CR><LF>|250 2.0.0 Ok: queued as "
		      "ID1|221 2.0.0 Bye|") != NULL,
	    "%s", drv_replies(&d));
	cr_assert_eq(d.n_end, 2);
	drv_fini(&d);
}

Test(intake_proto, helo_gets_a_single_line_and_smtp_in_received)
{
	struct drv d;
	char      *r;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "HELO old.client\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\n");
	cr_assert_str_eq(drv_replies(&d),
	    "250 mx.test|250 2.1.0 Ok|250 2.1.5 Ok|");
	r = intake_proto_received(d.p, "[127.0.0.1]", "ID9",
	    "Thu, 01 Jan 2026 12:00:00 +0000");
	cr_assert_str_eq(r,
	    "Received: from old.client ([127.0.0.1])\n\tby mx.test (sendq) "
	    "with SMTP id ID9\n\tfor <b@example.org>; Thu, 01 Jan 2026 "
	    "12:00:00 +0000\n");
	free(r);
	drv_fini(&d);
}

Test(intake_proto, received_names_esmtp_utf8_and_omits_for_with_many)
{
	struct drv d;
	char      *r;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c(x)\r\nMAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT "
	    "TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n");
	r = intake_proto_received(d.p, "uid 1000", "ID9", "DATE");
	cr_assert_str_eq(r,
	    "Received: from c?x? (uid 1000)\n\tby mx.test (sendq) with "
	    "UTF8SMTP id ID9; DATE\n");
	free(r);
	drv_fini(&d);
}

/* Criterion runs each parameter in a fresh process (another address
 * layout): parameters hold their text, not pointers to it. */
struct reply_case {
	char client[160]; /* after EHLO c */
	char expect[160]; /* a reply that must be there */
};

ParameterizedTestParameters(intake_proto, errors_get_the_rfc_reply)
{
	static struct reply_case cases[] = {
		{ "MAIL FROM:<a@example.org>\r\nMAIL FROM:<a@example.org>\r\n",
		    "503 5.5.1 Error: nested MAIL command" },
		{ "RCPT TO:<a@example.org>\r\n",
		    "503 5.5.1 Error: need MAIL command" },
		{ "DATA\r\n", "503 5.5.1 Error: need MAIL command" },
		{ "MAIL FROM:<a@example.org>\r\nDATA\r\n",
		    "554 5.5.1 Error: no valid recipients" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT "
		  "TO:<b@example.org>\r\nDATA x\r\n",
		    "501 5.5.4 Syntax: DATA" },
		{ "MAIL FROM:<a..b@example.org>\r\n",
		    "553 5.1.3 Sender address rejected: bad address "
		    "\"a..b@example.org\"" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT TO:<root>\r\n",
		    "553 5.1.3 Recipient address rejected: bad address "
		    "\"root\"" },
		{ "MAIL FROM:<j\xc3\xb6rg@example.org>\r\n",
		    "553 5.6.7 Sender address rejected: <j??rg@example.org> is "
		    "not ASCII and SMTPUTF8 was not given" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT "
		  "TO:<j\xc3\xb6rg@example.org>\r\n",
		    "553 5.6.7 Recipient address rejected: <j??rg@example.org> "
		    "is not ASCII" },
		{ "MAIL FROM:a@example.org>\r\n",
		    "553 5.1.3 Sender address rejected: bad address "
		    "\"a@example.org>\"" },
		{ "MAIL TO:<a@example.org>\r\n",
		    "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "MAIL FROM:<a@example.org\r\n",
		    "501 5.5.4 Syntax: MAIL FROM:<address>" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT TO:<>\r\n",
		    "501 5.5.4 Syntax: RCPT TO:<address>" },
		{ "MAIL FROM:<a@example.org> SIZE=2000\r\n",
		    "552 5.3.4 Message size exceeds fixed limit of 1000 "
		    "bytes" },
		{ "MAIL FROM:<a@example.org> SIZE=12x\r\n",
		    "501 5.5.4 Bad value for option SIZE" },
		{ "MAIL FROM:<a@example.org> BODY=9BIT\r\n",
		    "501 5.5.4 Bad value for option BODY" },
		{ "MAIL FROM:<a@example.org> RET=ALL\r\n",
		    "501 5.5.4 Bad value for option RET" },
		{ "MAIL FROM:<a@example.org> ENVID=a=b\r\n",
		    "501 5.5.4 Bad value for option ENVID" },
		{ "MAIL FROM:<a@example.org> SMTPUTF8=yes\r\n",
		    "501 5.5.4 Bad value for option SMTPUTF8" },
		{ "MAIL FROM:<a@example.org> RET=FULL RET=HDRS\r\n",
		    "501 5.5.4 Duplicate option: RET" },
		{ "MAIL FROM:<a@example.org> AUTH=<>\r\n",
		    "555 5.5.4 Unsupported option: AUTH" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org> "
		  "NOTIFY=NEVER,DELAY\r\n",
		    "501 5.5.4 Bad value for option NOTIFY" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org> "
		  "ORCPT=b@example.org\r\n",
		    "501 5.5.4 Bad value for option ORCPT" },
		{ "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org> "
		  "FOO=1\r\n",
		    "555 5.5.4 Unsupported option: FOO" },
		{ "VRFY root\r\n", "252 2.0.0 Cannot VRFY user" },
		{ "VRFY\r\n", "501 5.5.4 Syntax: VRFY address" },
		{ "NOOP\r\n", "250 2.0.0 Ok" },
		{ "RSET\r\n", "250 2.0.0 Ok" },
		{ "HELP\r\n", "214 2.0.0 Commands:" },
		{ "STARTTLS\r\n", "502 5.5.1 Error: command not implemented" },
		{ "AUTH PLAIN\r\n",
		    "502 5.5.1 Error: command not implemented" },
		{ "BDAT 10 LAST\r\n",
		    "502 5.5.1 Error: command not implemented" },
		{ "FOO\r\n", "500 5.5.2 Error: command not recognized" },
		{ "\r\n", "500 5.5.2 Error: bad syntax" },
		{ "NO\0OP\r\n", "500 5.5.2 Error: NUL byte in command" },
		{ "EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname" },
		{ "HELO  \r\n", "501 5.5.4 Syntax: HELO hostname" },
	};

	return cr_make_param_array(struct reply_case, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct reply_case *c, intake_proto, errors_get_the_rfc_reply)
{
	struct drv d;
	char       in[1024];
	size_t     len;

	drv_init(&d, 1000, 10, INTAKE_PROTO_GREET);
	/* The NUL case: the client text is copied with its real length. */
	len = strlen(c->client);
	if (strncmp(c->client, "NO", 2) == 0 && c->client[2] == '\0')
		len = 7;
	memcpy(in, "EHLO c\r\n", 8);
	memcpy(in + 8, c->client, len);
	drv_feed_chunked(&d, in, 8 + len, 0);
	cr_assert(strstr(drv_replies(&d), c->expect) != NULL,
	    "expected \"%s\" in \"%s\"", c->expect, drv_replies(&d));
	cr_assert_eq(d.n_data, 0);
	drv_fini(&d);
}

Test(intake_proto, mail_before_helo_is_503)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d, "MAIL FROM:<a@example.org>\r\n");
	cr_assert_str_eq(drv_replies(&d),
	    "503 5.5.1 Error: send HELO/EHLO first|");
	drv_fini(&d);
}

Test(intake_proto, utf8_addresses_are_accepted_with_smtputf8)
{
	struct drv                     d;
	const struct intake_proto_txn *t;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.org> SMTPUTF8 "
	    "BODY=8BITMIME\r\nRCPT TO:<m\xc3\xbcller@b\xc3\xbc"
	    "cher.example>\r\n");
	cr_assert(strstr(drv_replies(&d), "250 2.1.0 Ok|250 2.1.5 Ok|") != NULL,
	    "%s", drv_replies(&d));
	t = intake_proto_txn(d.p);
	cr_assert(t->smtputf8);
	cr_assert_eq(t->body, INTAKE_PROTO_BODY_8BITMIME);
	cr_assert_str_eq(t->rcpts[0].addr,
	    "m\xc3\xbcller@b\xc3\xbc"
	    "cher.example");
	drv_fini(&d);
}

Test(intake_proto, dsn_parameters_are_validated_and_kept)
{
	struct drv                     d;
	const struct intake_proto_txn *t;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org> RET=HDRS ENVID=QQ+2B314 "
	    "SIZE=10\r\nRCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE "
	    "ORCPT=rfc822;b+40example.org\r\nRCPT TO:<c@example.org> "
	    "NOTIFY=NEVER\r\n");
	cr_assert(strstr(drv_replies(&d),
		      "250 2.1.0 Ok|250 2.1.5 Ok|250 2.1.5 Ok|") != NULL,
	    "%s", drv_replies(&d));
	t = intake_proto_txn(d.p);
	cr_assert_eq(t->ret, INTAKE_PROTO_RET_HDRS);
	cr_assert_str_eq(t->envid, "QQ+2B314");
	cr_assert_eq(t->size, 10);
	cr_assert_eq(t->n_rcpts, 2);
	cr_assert_eq(t->rcpts[0].notify,
	    INTAKE_PROTO_NOTIFY_SUCCESS | INTAKE_PROTO_NOTIFY_FAILURE);
	cr_assert_str_eq(t->rcpts[0].orcpt, "rfc822;b+40example.org");
	cr_assert_eq(t->rcpts[1].notify, INTAKE_PROTO_NOTIFY_NEVER);
	cr_assert_null(t->rcpts[1].orcpt);
	drv_fini(&d);
}

Test(intake_proto, null_sender_and_postmaster_are_accepted)
{
	struct drv                     d;
	const struct intake_proto_txn *t;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<PostMaster>\r\n");
	cr_assert(strstr(drv_replies(&d), "250 2.1.0 Ok|250 2.1.5 Ok|") != NULL,
	    "%s", drv_replies(&d));
	t = intake_proto_txn(d.p);
	cr_assert_str_eq(t->sender, "");
	cr_assert_str_eq(t->rcpts[0].addr, "postmaster@mx.test");
	drv_fini(&d);
}

Test(intake_proto, lax_forms_are_accepted)
{
	struct drv                     d;
	const struct intake_proto_txn *t;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	/* Bare LF line ends, lower case, a space after the colon, no
	 * brackets, a source route. */
	drv_feed(&d,
	    "ehlo c\nmail from: a@example.org\nrcpt "
	    "to:<@relay.example:b@example.org>\n");
	cr_assert(strstr(drv_replies(&d), "250 2.1.0 Ok|250 2.1.5 Ok|") != NULL,
	    "%s", drv_replies(&d));
	t = intake_proto_txn(d.p);
	cr_assert_str_eq(t->sender, "a@example.org");
	cr_assert_str_eq(t->rcpts[0].addr, "b@example.org");
	drv_fini(&d);
}

Test(intake_proto, too_many_recipients_is_452_4_5_3)
{
	struct drv d;

	drv_init(&d, 0, 2, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT "
	    "TO:<d@example.org>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert(strstr(drv_replies(&d),
		      "250 2.1.5 Ok|250 2.1.5 Ok|452 4.5.3 Error: too many "
		      "recipients (at most 2 per message)|354 ") != NULL,
	    "%s", drv_replies(&d));
	cr_assert_eq(intake_proto_txn(d.p)->n_rcpts, 0); /* reset */
	cr_assert_eq(d.n_end, 1);
	drv_fini(&d);
}

Test(intake_proto, command_line_of_1000_bytes_passes_1001_is_500)
{
	struct drv d;
	char       line[1100];

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	/* 998 characters + CRLF = 1000 bytes. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + 998, "\r\n", 3);
	drv_feed(&d, line);
	cr_assert_str_eq(drv_replies(&d), "250 2.0.0 Ok|");
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + 999, "\r\nNOOP\r\n", 9);
	drv_feed(&d, line);
	cr_assert_str_eq(drv_replies(&d),
	    "250 2.0.0 Ok|500 5.5.2 Error: line too long (at most 1000 "
	    "bytes)|250 2.0.0 Ok|");
	drv_fini(&d);
}

Test(intake_proto, very_long_line_is_discarded_to_its_end)
{
	struct drv d;
	size_t     n = 100000;
	char      *s = malloc(n + 16);

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	memset(s, 'M', n);
	memcpy(s + n, "\r\nQUIT\r\n", 9);
	drv_feed(&d, s);
	cr_assert_str_eq(drv_replies(&d),
	    "500 5.5.2 Error: line too long (at most 1000 bytes)|221 2.0.0 "
	    "Bye|");
	free(s);
	drv_fini(&d);
}

struct data_case {
	char wire[48]; /* after 354, ending the message */
	char stored[48];
};

ParameterizedTestParameters(intake_proto, data_is_unstuffed_and_lf_stored)
{
	static struct data_case cases[] = {
		{ ".\r\n", "" },
		{ "a\r\n.\r\n", "a\n" },
		{ "..\r\n.\r\n", ".\n" },
		{ "...x\r\n.\r\n", "..x\n" },
		{ ".x\r\n.\r\n", "x\n" },
		/* Bare LF is kept; a dot after it is content, not an end. */
		{ "a\nb\r\n.\r\n", "a\nb\n" },
		{ "a\n.\r\nb\r\n.\r\n", "a\n.\nb\n" },
		{ "a\r\n.\nb\r\n.\r\n", "a\n.\nb\n" },
		/* A bare CR is stored as the line break the relay makes of
		 * it; a dot after it is content. */
		{ "a\rb\r\n.\r\n", "a\nb\n" },
		{ "a\r\r\n.\r\n", "a\n\n" },
		{ "a\r\n.\rb\r\n.\r\n", "a\n\nb\n" },
		{ "a\r.\r\n.\r\n", "a\n.\n" },
		{ "a\r..\r\n.\r\n", "a\n..\n" },
		/* No final line break before the dot is not possible: the
		 * dot must follow CRLF. */
		{ "a.\r\n.\r\n", "a.\n" },
		{ "\r\n\r\n.\r\n", "\n\n" },
		{ "8bit: \xc3\xa9\r\n.\r\n", "8bit: \xc3\xa9\n" },
	};

	return cr_make_param_array(struct data_case, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct data_case *c, intake_proto,
    data_is_unstuffed_and_lf_stored)
{
	static const char head[] =
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\n";
	size_t chunk;

	for (chunk = 0; chunk < 4; chunk++) {
		struct drv d;
		char       in[512];

		snprintf(in, sizeof(in), "%s%sNOOP\r\n", head, c->wire);
		drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
		drv_feed_chunked(&d, in, strlen(in), chunk);
		cr_assert_eq(d.n_end, 1, "chunk %zu", chunk);
		cr_assert_eq(d.body_len, strlen(c->stored),
		    "chunk %zu: got %zu bytes", chunk, d.body_len);
		cr_assert(memcmp(d.body, c->stored, d.body_len) == 0);
		cr_assert(strstr(drv_replies(&d),
			      "queued as ID1|250 2.0.0 Ok|") != NULL);
		drv_fini(&d);
	}
}

Test(intake_proto, lf_only_terminator_does_not_end_the_message)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nx\n.\nMAIL FROM:<e@vil>\n");
	cr_assert_eq(d.n_end, 0);
	cr_assert(intake_proto_blocked(d.p) == 0);
	cr_assert(strstr(drv_replies(&d), "354 ") != NULL);
	cr_assert(strstr(drv_replies(&d), "250 2.0.0") == NULL);
	drv_fini(&d);
}

Test(intake_proto, big_message_arrives_in_chunks)
{
	struct drv  d;
	size_t      n = 100000, i;
	char       *s = malloc(n + 200);
	const char *head = "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
			   "TO:<b@example.org>\r\nDATA\r\n";

	strcpy(s, head);
	for (i = strlen(head); i < n; i++)
		s[i] = (i % 80 == 79) ? '\n' : 'a'; /* bare LF lines */
	strcpy(s + n, "\r\n.\r\n");
	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d, s);
	cr_assert_eq(d.n_end, 1);
	cr_assert_eq(d.body_len, n - strlen(head) + 1);
	free(s);
	drv_fini(&d);
}

Test(intake_proto, oversized_message_is_read_to_the_end_then_552)
{
	struct drv d;
	char       in[4096];

	drv_init(&d, 100, 0, INTAKE_PROTO_GREET);
	snprintf(in, sizeof(in),
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\n%0200d\r\n.\r\nMAIL "
	    "FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n",
	    0);
	drv_feed(&d, in);
	cr_assert_eq(d.n_abort, 1);
	cr_assert_eq(d.n_end, 1); /* only the small one */
	cr_assert(strstr(drv_replies(&d),
		      "354 End data with <CR><LF>.<CR><LF>|552 5.3.4 Error: "
		      "message size exceeds fixed limit of 100 bytes|250 2.1.0 "
		      "Ok|250 2.1.5 Ok|354 End data with <CR><LF>.<CR><LF>|250 "
		      "2.0.0 Ok: queued as ID1|221 2.0.0 Bye|") != NULL,
	    "%s", drv_replies(&d));
	cr_assert_eq(d.body_len, 6);
	drv_fini(&d);
}

Test(intake_proto, message_of_exactly_the_limit_is_accepted)
{
	struct drv d;

	/* "12345678\r\n" is 10 bytes on the wire. */
	drv_init(&d, 10, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org> SIZE=10\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\n12345678\r\n.\r\n");
	cr_assert_eq(d.n_abort, 0);
	cr_assert_eq(d.n_end, 1);
	drv_fini(&d);
}

Test(intake_proto, spool_refusing_data_is_452_4_3_1)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	d.data_ok = 0;
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nRSET\r\n");
	cr_assert(strstr(drv_replies(&d),
		      "250 2.1.5 Ok|452 4.3.1 Insufficient system storage, try "
		      "again later|250 2.0.0 Ok|") != NULL,
	    "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, failed_commit_is_452_or_451_and_ends_the_transaction)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	d.result = INTAKE_PROTO_NOSPACE;
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert(strstr(drv_replies(&d),
		      "354 End data with <CR><LF>.<CR><LF>|452 4.3.1 "
		      "Insufficient system storage, try again later|") != NULL,
	    "%s", drv_replies(&d));
	d.result = INTAKE_PROTO_TEMPFAIL;
	drv_feed(&d,
	    "MAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert(strstr(drv_replies(&d),
		      "|451 4.3.0 Error: local error in processing, try again "
		      "later|") != NULL,
	    "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, core_waits_for_the_driver_at_data_and_end)
{
	struct intake_proto_params params = { .hostname = "h" };
	struct intake_proto_event  ev;
	struct intake_proto       *p = intake_proto_new(&params);
	const char *in = "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT "
			 "TO:<c@d.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
	size_t      used, off = 0;

	used = intake_proto_feed(p, in, strlen(in));
	off += used;
	cr_assert(intake_proto_next_event(p, &ev));
	cr_assert_eq(ev.type, INTAKE_PROTO_EV_DATA);
	cr_assert(intake_proto_blocked(p));
	cr_assert_eq(intake_proto_feed(p, in + off, strlen(in + off)), 0);
	intake_proto_data_start(p, 1);
	off += intake_proto_feed(p, in + off, strlen(in + off));
	cr_assert(intake_proto_next_event(p, &ev));
	cr_assert_eq(ev.type, INTAKE_PROTO_EV_BODY);
	cr_assert(intake_proto_next_event(p, &ev));
	cr_assert_eq(ev.type, INTAKE_PROTO_EV_END);
	cr_assert(intake_proto_blocked(p));
	cr_assert_str_eq(in + off, "QUIT\r\n"); /* not read yet */
	cr_assert_eq(intake_proto_feed(p, in + off, strlen(in + off)), 0);
	intake_proto_data_done(p, INTAKE_PROTO_QUEUED, "Q1");
	off += intake_proto_feed(p, in + off, strlen(in + off));
	cr_assert_eq(in[off], '\0');
	cr_assert(intake_proto_next_event(p, &ev));
	cr_assert_eq(ev.type, INTAKE_PROTO_EV_CLOSE);
	intake_proto_free(p);
}

Test(intake_proto, timeout_is_421_4_4_2_and_close)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d, "EHLO c\r\n");
	intake_proto_timeout(d.p);
	drv_events(&d);
	drv_collect(&d);
	cr_assert(d.closed);
	cr_assert(strstr(drv_replies(&d),
		      "|421 4.4.2 mx.test Error: timeout exceeded|") != NULL,
	    "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, busy_is_421_4_3_2_and_close)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_BUSY);
	drv_feed(&d, "EHLO c\r\n");
	cr_assert(d.closed);
	cr_assert(strncmp(d.out, "421 4.3.2 mx.test ", 18) == 0, "%s", d.out);
	cr_assert_eq(d.taken, 0);
	drv_fini(&d);
}

Test(intake_proto, denied_client_gets_554_then_only_quit)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_DENY);
	drv_feed(&d, "EHLO c\r\nMAIL FROM:<a@example.org>\r\nQUIT\r\n");
	cr_assert(strncmp(d.out, "554 5.7.1 ", 10) == 0, "%s", d.out);
	cr_assert_str_eq(drv_replies(&d),
	    "503 5.7.1 Error: access denied|503 5.7.1 Error: access denied|221 "
	    "2.0.0 Bye|");
	cr_assert(d.closed);
	drv_fini(&d);
}

Test(intake_proto, too_many_errors_end_the_session)
{
	struct drv d;
	int        i;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	for (i = 0; i < INTAKE_PROTO_ERRORS_MAX + 5 && !d.closed; i++)
		drv_feed(&d, "BOGUS\r\n");
	cr_assert(d.closed);
	cr_assert_eq(i, INTAKE_PROTO_ERRORS_MAX);
	cr_assert(
	    strstr(d.out, "421 4.7.0 mx.test Error: too many errors") != NULL);
	drv_fini(&d);
}

Test(intake_proto, bytes_after_quit_are_not_read)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d, "QUIT\r\nNOOP\r\nNOOP\r\n");
	cr_assert_str_eq(drv_replies(&d), "221 2.0.0 Bye|");
	cr_assert_eq(d.taken, 6);
	drv_fini(&d);
}

Test(intake_proto, rset_and_ehlo_reset_the_transaction)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_GREET);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRSET\r\nMAIL "
	    "FROM:<a@example.org>\r\nEHLO d\r\nMAIL FROM:<a@example.org>\r\n");
	cr_assert(strstr(drv_replies(&d), "503") == NULL, "%s",
	    drv_replies(&d));
	cr_assert_str_eq(intake_proto_helo(d.p), "d");
	drv_fini(&d);
}

Test(intake_proto, flood_of_pipelined_commands_keeps_output_bounded)
{
	struct intake_proto_params params = { .hostname = "h" };
	struct intake_proto       *p = intake_proto_new(&params);
	const char                *data;
	size_t                     n = 20000 * 6, used, len;
	char                      *s = malloc(n + 1);
	size_t                     i;

	for (i = 0; i < n; i += 6)
		memcpy(s + i, "NOOP\r\n", 6);
	used = intake_proto_feed(p, s, n);
	cr_assert_lt(used, n);
	intake_proto_output(p, &data, &len);
	cr_assert_leq(len, INTAKE_PROTO_OUT_WATERMARK + 200);
	intake_proto_consumed(p, len);
	cr_assert_gt(intake_proto_feed(p, s + used, n - used), 0);
	free(s);
	intake_proto_free(p);
}

/* ------------------------------------------------------------ junk limit */

Test(intake_proto, junk_beyond_the_limit_is_421_4_7_0_and_close)
{
	struct drv d;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 4);
	drv_feed(&d,
	    "HELO c\r\nNOOP\r\nRSET\r\nVRFY root\r\nHELP\r\nNOOP\r\nNOOP\r\n");
	cr_assert_str_eq(drv_replies(&d),
	    "250 mx.test|250 2.0.0 Ok|250 2.0.0 Ok|252 2.0.0 Cannot VRFY user, "
	    "but will accept message and attempt delivery|214 2.0.0 Commands: "
	    "EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT|421 4.7.0 "
	    "mx.test Error: too many commands that carry no mail (at most 4), "
	    "closing|");
	cr_assert(d.closed);
	/* Nothing after the fifth junk command was read. */
	cr_assert_eq(d.taken,
	    strlen("HELO c\r\nNOOP\r\nRSET\r\nVRFY root\r\nHELP\r\nNOOP\r\n"));
	drv_fini(&d);
}

struct junk_case {
	char cmd[32];
};

static struct junk_case junk_cases[] = {
	{ "NOOP" },
	{ "RSET" },
	{ "VRFY root" },
	{ "EXPN list" },
	{ "HELP" },
	{ "ETRN example.org" },
	{ "STARTTLS" },
	{ "BDAT 1" },
	{ "BOGUS" },
	{ "" },
	{ "EHLO again" },
	{ "HELO again" },
};

ParameterizedTestParameters(intake_proto, every_kind_of_junk_counts)
{
	return cr_make_param_array(struct junk_case, junk_cases,
	    sizeof(junk_cases) / sizeof(junk_cases[0]));
}

ParameterizedTest(struct junk_case *c, intake_proto, every_kind_of_junk_counts)
{
	struct drv d;
	char       line[64];
	int        i;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 3);
	drv_feed(&d, "EHLO c\r\n");
	snprintf(line, sizeof(line), "%s\r\n", c->cmd);
	for (i = 0; i < 3; i++)
		drv_feed(&d, line);
	cr_assert_not(d.closed, "%s: %s", c->cmd, drv_replies(&d));
	cr_assert_null(strstr(d.out, "421"), "%s", c->cmd);
	drv_feed(&d, line);
	cr_assert(d.closed, "%s: %s", c->cmd, drv_replies(&d));
	cr_assert_not_null(strstr(d.out,
			       "421 4.7.0 mx.test Error: too many commands "
			       "that carry no mail"),
	    "%s: %s", c->cmd, d.out);
	drv_fini(&d);
}

Test(intake_proto, mail_commands_are_not_junk)
{
	struct drv d;
	int        i;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 1);
	drv_feed(&d, "EHLO c\r\n");
	for (i = 0; i < 5; i++)
		drv_feed(&d,
		    "MAIL FROM:<a@example.org>\r\nRCPT "
		    "TO:<b@example.org>\r\nRCPT "
		    "TO:<c@example.org>\r\nDATA\r\nx\r\n.\r\n");
	cr_assert_not(d.closed, "%s", drv_replies(&d));
	cr_assert_eq(d.n_end, 5);
	drv_fini(&d);
}

Test(intake_proto, junk_count_starts_again_after_an_accepted_message)
{
	struct drv d;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 2);
	drv_feed(&d,
	    "EHLO c\r\nNOOP\r\nNOOP\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\nNOOP\r\nRSET\r\n");
	cr_assert_not(d.closed, "%s", drv_replies(&d));
	cr_assert_eq(d.n_end, 1);
	drv_feed(&d, "NOOP\r\n");
	cr_assert(d.closed, "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, recipients_beyond_the_limit_are_junk)
{
	struct drv d;
	int        i;

	drv_init_junk(&d, 0, 1, INTAKE_PROTO_GREET, 3);
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\n");
	for (i = 0; i < 3; i++)
		drv_feed(&d, "RCPT TO:<c@example.org>\r\n");
	cr_assert_not(d.closed);
	drv_feed(&d, "RCPT TO:<c@example.org>\r\n");
	cr_assert(d.closed, "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, junk_and_partial_lines_are_no_progress)
{
	struct drv d;
	uint64_t   before;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 0);
	before = intake_proto_progress(d.p);
	drv_feed(&d, "NOOP\r\nRSET\r\nVRFY x\r\nHELP\r\nBOGUS\r\n");
	cr_assert_eq(intake_proto_progress(d.p), before);
	drv_feed(&d, "EHLO c\r\n");
	cr_assert_gt(intake_proto_progress(d.p), before);
	before = intake_proto_progress(d.p);
	/* A command sent a byte at a time is no progress until its end. */
	drv_feed(&d, "M");
	drv_feed(&d, "AIL FROM:<a@exa");
	cr_assert_eq(intake_proto_progress(d.p), before);
	drv_feed(&d, "mple.org>\r\n");
	cr_assert_gt(intake_proto_progress(d.p), before);
	drv_feed(&d, "RCPT TO:<b@example.org>\r\nDATA\r\n");
	before = intake_proto_progress(d.p);
	/* Message data is. */
	drv_feed(&d, "Subject: x\r\n");
	cr_assert_gt(intake_proto_progress(d.p), before);
	before = intake_proto_progress(d.p);
	drv_feed(&d, "\r\nbody\r\n.\r\nNOOP\r\n");
	cr_assert_gt(intake_proto_progress(d.p), before);
	before = intake_proto_progress(d.p);
	drv_feed(&d, "NOOP\r\n");
	cr_assert_eq(intake_proto_progress(d.p), before);
	drv_fini(&d);
}

Test(intake_proto, refused_at_data_is_452_4_3_1_with_the_text_and_keeps_txn)
{
	struct drv d;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 0);
	d.refuse_data = "uid 1000 has 2 messages queued: the limit is "
			"max_messages_per_user = 2";
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\n");
	cr_assert_not_null(
	    strstr(drv_replies(&d),
		"250 2.1.5 Ok|452 4.3.1 uid 1000 has 2 messages queued: the "
		"limit is max_messages_per_user = 2|"),
	    "%s", drv_replies(&d));
	/* The transaction stays: DATA may be tried again. */
	d.refuse_data = NULL;
	drv_feed(&d, "DATA\r\nx\r\n.\r\n");
	cr_assert_not_null(strstr(drv_replies(&d),
			       "|354 End data with <CR><LF>.<CR><LF>|250 2.0.0 "
			       "Ok: queued as ID1|"),
	    "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, refused_at_end_is_452_4_3_1_and_ends_the_transaction)
{
	struct drv d;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 0);
	d.refuse_end = "Insufficient system storage\r\n, try again later";
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\nDATA\r\n");
	cr_assert_not_null(strstr(drv_replies(&d),
			       "|354 End data with <CR><LF>.<CR><LF>|452 4.3.1 "
			       "Insufficient system storage??, try again "
			       "later|503 5.5.1 Error: need MAIL command|"),
	    "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, refused_data_counts_as_junk)
{
	struct drv d;
	int        i;

	drv_init_junk(&d, 0, 0, INTAKE_PROTO_GREET, 3);
	d.refuse_data = "full";
	drv_feed(&d,
	    "EHLO c\r\nMAIL FROM:<a@example.org>\r\nRCPT "
	    "TO:<b@example.org>\r\n");
	for (i = 0; i < 3; i++)
		drv_feed(&d, "DATA\r\n");
	cr_assert_not(d.closed);
	drv_feed(&d, "DATA\r\n");
	cr_assert(d.closed, "%s", drv_replies(&d));
	cr_assert_not_null(strstr(drv_replies(&d),
			       "452 4.3.1 full|421 4.7.0 mx.test Error: too "
			       "many commands that carry no mail"),
	    "%s", drv_replies(&d));
	drv_fini(&d);
}

Test(intake_proto, peer_busy_is_421_4_7_0_and_close)
{
	struct drv d;

	drv_init(&d, 0, 0, INTAKE_PROTO_PEER_BUSY);
	drv_feed(&d, "EHLO c\r\n");
	cr_assert(d.closed);
	cr_assert_str_eq(d.out,
	    "421 4.7.0 mx.test Error: too many connections from you, try again "
	    "later\r\n");
	cr_assert_eq(d.taken, 0);
	drv_fini(&d);
}

/* ---------------------------------------------------------------- config */

#define CFG_BASE "[smarthost a]\nhost = 127.0.0.1\ntls = none\n"

static int
cfg_load(const char *text, struct config **cfg, struct sq_err *err)
{
	char all[2048];

	snprintf(all, sizeof(all), "%s%s", CFG_BASE, text);
	return config_load_string("sendq.ini", all, cfg, err);
}

Test(intake_config, defaults_have_no_listener)
{
	struct config *cfg;
	struct sq_err  err = { 0 };

	cr_assert_eq(cfg_load("", &cfg, &err), 0, "%s", err.msg);
	cr_assert_eq(cfg->intake.n_listen, 0);
	cr_assert_eq(cfg->intake.max_message_size, 25ULL * 1024 * 1024);
	cr_assert_eq(cfg->intake.max_recipients, 1000);
	cr_assert_eq(cfg->intake.max_clients, 100);
	cr_assert_eq(cfg->intake.timeout, 300);
	cr_assert_eq(cfg->intake.n_allow_networks, 0);
	cr_assert_eq(cfg->intake.max_clients_per_peer, 10);
	cr_assert_eq(cfg->intake.max_junk_commands, 100);
	cr_assert_eq(cfg->min_free_space, 100ULL * 1024 * 1024);
	cr_assert_eq(cfg->max_messages_per_user, 10000);
	cr_assert_eq(cfg->max_bytes_per_user, 1024ULL * 1024 * 1024);
	config_free(cfg);
}

Test(intake_config, guards_take_values_and_0_turns_them_off)
{
	struct config *cfg;
	struct sq_err  err = { 0 };

	cr_assert_eq(
	    cfg_load(
		"[queue]\nmin_free_space = 0\nmax_messages_per_user = "
		"0\nmax_bytes_per_user = 0\n[intake]\nmax_clients_per_peer = "
		"0\nmax_junk_commands = 0\n",
		&cfg, &err),
	    0, "%s", err.msg);
	cr_assert_eq(cfg->min_free_space, 0);
	cr_assert_eq(cfg->max_messages_per_user, 0);
	cr_assert_eq(cfg->max_bytes_per_user, 0);
	cr_assert_eq(cfg->intake.max_clients_per_peer, 0);
	cr_assert_eq(cfg->intake.max_junk_commands, 0);
	config_free(cfg);
	cr_assert_eq(
	    cfg_load(
		"[queue]\nmin_free_space = 2G\nmax_messages_per_user = "
		"2\nmax_bytes_per_user = 64K\n[intake]\nmax_clients_per_peer = "
		"3\nmax_junk_commands = 7\n",
		&cfg, &err),
	    0, "%s", err.msg);
	cr_assert_eq(cfg->min_free_space, 2ULL << 30);
	cr_assert_eq(cfg->max_messages_per_user, 2);
	cr_assert_eq(cfg->max_bytes_per_user, 64 * 1024);
	cr_assert_eq(cfg->intake.max_clients_per_peer, 3);
	cr_assert_eq(cfg->intake.max_junk_commands, 7);
	config_free(cfg);
	cr_assert_neq(cfg_load("[queue]\nmin_free_space = 2T\n", &cfg, &err),
	    0);
	cr_assert_not_null(strstr(err.msg, "[queue] min_free_space"), "%s",
	    err.msg);
}

Test(intake_config, listen_list_and_limits_are_parsed)
{
	struct config *cfg;
	struct sq_err  err = { 0 };

	cr_assert_eq(
	    cfg_load("[intake]\nlisten = 127.0.0.1:25 [::1]:25 "
		     "unix:/run/sendq/smtp.sock\nlisten = "
		     "127.0.0.2:2525\nmax_message_size = 10K\nmax_recipients = "
		     "5\nmax_clients = 7\ntimeout = 30s\n",
		&cfg, &err),
	    0, "%s", err.msg);
	cr_assert_eq(cfg->intake.n_listen, 4);
	cr_assert_eq(cfg->intake.listen[0].kind, CONFIG_LISTEN_INET);
	cr_assert_str_eq(cfg->intake.listen[0].addr, "127.0.0.1");
	cr_assert_eq(cfg->intake.listen[0].port, 25);
	cr_assert_eq(cfg->intake.listen[1].kind, CONFIG_LISTEN_INET6);
	cr_assert_str_eq(cfg->intake.listen[1].addr, "::1");
	cr_assert_eq(cfg->intake.listen[2].kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(cfg->intake.listen[2].addr, "/run/sendq/smtp.sock");
	cr_assert_eq(cfg->intake.listen[3].port, 2525);
	cr_assert_eq(cfg->intake.max_message_size, 10240);
	cr_assert_eq(cfg->intake.max_recipients, 5);
	cr_assert_eq(cfg->intake.max_clients, 7);
	cr_assert_eq(cfg->intake.timeout, 30);
	config_free(cfg);
}

Test(intake_config, non_loopback_listen_needs_allow_networks)
{
	struct config *cfg;
	struct sq_err  err = { 0 };

	cr_assert_neq(cfg_load("[intake]\nlisten = 127.0.0.1:25 192.0.2.1:25\n",
			  &cfg, &err),
	    0);
	cr_assert(strstr(err.msg,
		      "sendq.ini:5: [intake] listen: \"192.0.2.1\" is not a "
		      "loopback address") != NULL,
	    "%s", err.msg);
	cr_assert(strstr(err.msg, "allow_networks") != NULL);

	cr_assert_eq(cfg_load("[intake]\nlisten = 0.0.0.0:25\nallow_networks = "
			      "192.0.2.0/24 2001:db8::/32 198.51.100.7\n",
			 &cfg, &err),
	    0, "%s", err.msg);
	cr_assert_eq(cfg->intake.n_allow_networks, 3);
	cr_assert_eq(cfg->intake.allow_networks[0].prefix, 24);
	cr_assert_eq(cfg->intake.allow_networks[1].prefix, 32);
	cr_assert_eq(cfg->intake.allow_networks[2].prefix, 32);
	config_free(cfg);
}

struct cfg_case {
	char text[96];
	char msg[192];
};

ParameterizedTestParameters(intake_config, bad_values_name_file_line_key)
{
	static struct cfg_case cases[] = {
		{ "[intake]\nlisten = localhost:25\n",
		    "sendq.ini:5: [intake] listen: \"localhost:25\" is not an "
		    "address literal with a port" },
		{ "[intake]\nlisten = 127.0.0.1\n",
		    "sendq.ini:5: [intake] listen: \"127.0.0.1\" is not an "
		    "address literal with a port" },
		{ "[intake]\nlisten = 127.0.0.1:0\n",
		    "sendq.ini:5: [intake] listen: \"127.0.0.1:0\": the port "
		    "must be 1 to 65535" },
		{ "[intake]\nlisten = [::1]:99999\n",
		    "the port must be 1 to 65535" },
		{ "[intake]\nlisten = unix:relative\n",
		    "the socket path must be absolute" },
		{ "[intake]\nlisten = 127.0.0.1:25\n\nlisten = 127.0.0.1:25\n",
		    "sendq.ini:7: [intake] listen: \"127.0.0.1:25\" is given "
		    "twice (first at line 5)" },
		{ "[intake]\nmax_message_size = 25X\n",
		    "sendq.ini:5: [intake] max_message_size: \"25X\" is not "
		    "valid (allowed: 1K to 4G" },
		{ "[intake]\nmax_message_size = 100\n",
		    "\"100\" is out of range" },
		{ "[intake]\nmax_message_size = 5G\n",
		    "\"5G\" is out of range" },
		{ "[intake]\nmax_recipients = 0\n",
		    "[intake] max_recipients: \"0\" is out of range" },
		{ "[intake]\nmax_clients = many\n",
		    "[intake] max_clients: \"many\" is not valid" },
		{ "[intake]\ntimeout = 2h\n",
		    "[intake] timeout: \"2h\" is out of range" },
		{ "[intake]\nallow_networks = 10.0.0.1/8\n",
		    "sendq.ini:5: [intake] allow_networks: \"10.0.0.1/8\" has "
		    "bits set after the first 8" },
		{ "[intake]\nallow_networks = 10.0.0.0/33\n",
		    "the prefix length must be 0 to 32" },
		{ "[intake]\nallow_networks = example.com\n",
		    "\"example.com\" is not an IP network" },
		{ "[intake]\nfoo = 1\n",
		    "sendq.ini:5: [intake] foo: unknown key (allowed: listen, "
		    "max_message_size, max_recipients, max_clients, timeout, "
		    "max_clients_per_peer, max_junk_commands, "
		    "allow_networks)" },
		{ "[intake]\n[intake]\n",
		    "sendq.ini:5: [intake]: duplicate section (first at line "
		    "4)" },
	};

	return cr_make_param_array(struct cfg_case, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct cfg_case *c, intake_config,
    bad_values_name_file_line_key)
{
	struct config *cfg = NULL;
	struct sq_err  err = { 0 };

	cr_assert_neq(cfg_load(c->text, &cfg, &err), 0);
	cr_assert(strstr(err.msg, c->msg) != NULL, "expected \"%s\" in \"%s\"",
	    c->msg, err.msg);
}
