/*
 * test_smtp_proto.c - transcript tests of the SMTP client core: scripted
 * server bytes in, exact client bytes and events out.
 *
 * A transcript is a list of steps:
 *   "S:bytes"     the server sends bytes (one feed); the client must have
 *                 no unwritten output at that point
 *   "C:bytes"     the client's pending output is exactly bytes (then it
 *                 is consumed, i.e. written)
 *   "E:event"     the next event, formatted by test_proto_event_str()
 *   "!mail"       send_mail(test_txn)       "!quit"    quit()
 *   "!body:text"  body(text, last = 0)      "!last:text" body(text, 1)
 *   "!tls_ok"     tls_done(1)               "!tls_fail" tls_done(0)
 *   "!eof"        eof()
 * After the last step of TEST_RUN no event and no output may be left
 * over; TEST_PART runs a part of a transcript, to check state between.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sasl.h"
#include "smtp_proto.h"
#include "smtp_wire.h"

static const char *const            test_rcpts1[] = { "bob@example.net" };
static const struct smtp_proto_txn  test_txn1 = { .sender = "alice@example.org",
	 .rcpts = test_rcpts1,
	 .n_rcpts = 1 };
static const char *const            test_rcpts2[] = { "nobody@example.net",
		   "bob@example.net" };
static const struct smtp_proto_txn  test_txn2 = { .sender = "alice@example.org",
	 .rcpts = test_rcpts2,
	 .n_rcpts = 2 };
static const struct smtp_proto_txn *test_txn = &test_txn1;

/* The last event popped by an "E:" step, for extra checks. */
static struct smtp_proto_event test_last_ev;

static struct smtp_proto *
test_proto_new(enum smtp_proto_tls tls)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = tls };

	test_txn = &test_txn1;
	return smtp_proto_new(&params);
}

/* A session with AUTH and PIPELINING settings. */
static struct smtp_proto *
test_proto_new_params(const struct smtp_proto_params *params)
{
	test_txn = &test_txn1;
	return smtp_proto_new(params);
}

static void
test_proto_event_str(const struct smtp_proto_event *ev, char *s, size_t n)
{
	static const char *const fails[] = { "NONE", "CONN", "PROTO", "TLS",
		"RESP", "AUTH", "BODY" };

	switch (ev->type) {
	case SMTP_PROTO_EV_NEED_TLS:
		snprintf(s, n, "NEED_TLS");
		break;
	case SMTP_PROTO_EV_READY:
		snprintf(s, n, "READY");
		break;
	case SMTP_PROTO_EV_RCPT_STATUS:
		snprintf(s, n, "RCPT_STATUS %zu %d", ev->rcpt_index,
		    ev->reply.code);
		break;
	case SMTP_PROTO_EV_NEED_BODY:
		snprintf(s, n, "NEED_BODY");
		break;
	case SMTP_PROTO_EV_TXN_DONE:
		snprintf(s, n, "TXN_DONE %d", ev->reply.code);
		break;
	case SMTP_PROTO_EV_FAILED:
		snprintf(s, n, "FAILED %s %d", fails[ev->fail], ev->reply.code);
		break;
	case SMTP_PROTO_EV_CLOSED:
		snprintf(s, n, "CLOSED");
		break;
	}
}

static void
test_proto_expect_output(struct smtp_proto *p, const char *want)
{
	const void *data;
	size_t      len;

	smtp_proto_output(p, &data, &len);
	cr_assert_eq(len, strlen(want), "output \"%.*s\", want \"%s\"",
	    (int)len, len ? (const char *)data : "", want);
	cr_assert_eq(smtp_proto_output_pending(p), len);
	if (len > 0)
		cr_assert_eq(memcmp(data, want, len), 0,
		    "output \"%.*s\", want \"%s\"", (int)len,
		    (const char *)data, want);
	smtp_proto_consumed(p, len);
}

static void
test_proto_run(struct smtp_proto *p, const char *const *steps, size_t n,
    int final)
{
	struct smtp_proto_event ev;
	char                    got[128];
	size_t                  i;

	for (i = 0; i < n; i++) {
		const char *s = steps[i], *arg = s + 2;

		if (strncmp(s, "S:", 2) == 0) {
			cr_assert_eq(smtp_proto_output_pending(p), 0,
			    "step %zu (%s): unwritten output", i, s);
			cr_assert_eq(smtp_proto_feed(p, arg, strlen(arg)), 0);
		} else if (strncmp(s, "C:", 2) == 0)
			test_proto_expect_output(p, arg);
		else if (strncmp(s, "E:", 2) == 0) {
			cr_assert(smtp_proto_next_event(p, &ev),
			    "step %zu: no event, want %s", i, arg);
			test_proto_event_str(&ev, got, sizeof(got));
			cr_assert_str_eq(got, arg, "step %zu", i);
			test_last_ev = ev;
		} else if (strcmp(s, "!mail") == 0)
			cr_assert_eq(smtp_proto_send_mail(p, test_txn), 0);
		else if (strncmp(s, "!body:", 6) == 0)
			smtp_proto_body(p, s + 6, strlen(s + 6), 0);
		else if (strncmp(s, "!last:", 6) == 0)
			smtp_proto_body(p, s + 6, strlen(s + 6), 1);
		else if (strcmp(s, "!tls_ok") == 0)
			smtp_proto_tls_done(p, 1);
		else if (strcmp(s, "!tls_fail") == 0)
			smtp_proto_tls_done(p, 0);
		else if (strcmp(s, "!quit") == 0)
			smtp_proto_quit(p);
		else if (strcmp(s, "!eof") == 0)
			smtp_proto_eof(p);
		else
			cr_assert_fail("bad step %s", s);
	}
	if (!final)
		return;
	if (smtp_proto_next_event(p, &ev)) {
		test_proto_event_str(&ev, got, sizeof(got));
		cr_assert_fail("unexpected event %s", got);
	}
	test_proto_expect_output(p, "");
}

#define TEST_STEPS(p, final, ...) \
	do { \
		static const char *const test_steps_[] = { __VA_ARGS__ }; \
		test_proto_run((p), test_steps_, \
		    sizeof(test_steps_) / sizeof(test_steps_[0]), (final)); \
	} while (0)
/* A whole transcript (nothing may be left over) or a part of one. */
#define TEST_RUN(p, ...)  TEST_STEPS(p, 1, __VA_ARGS__)
#define TEST_PART(p, ...) TEST_STEPS(p, 0, __VA_ARGS__)

/* Greeting and EHLO of a plain session up to READY. */
#define TEST_HELLO \
	"S:220 mx.example.net ESMTP\r\n", "C:EHLO client.example\r\n", \
	    "S:250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n", \
	    "E:READY"

Test(smtp_proto, plain_session_delivers_one_message)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	cr_assert_str_eq(smtp_proto_state_name(p), "greeting");
	TEST_RUN(p, TEST_HELLO);
	cr_assert_str_eq(smtp_proto_state_name(p), "ready");
	cr_assert_not(smtp_proto_tls_active(p));
	cr_assert(smtp_proto_caps(p)->pipelining);
	cr_assert(smtp_proto_caps(p)->eightbitmime);
	TEST_RUN(p, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 2.1.0 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n",
	    "S:250 2.1.5 Ok\r\n", "E:RCPT_STATUS 0 250", "C:DATA\r\n",
	    "S:354 End data with <CR><LF>.<CR><LF>\r\n", "E:NEED_BODY",
	    "!body:Subject: hi\n\n.dot\r", "!last:\nbye",
	    "C:Subject: hi\r\n\r\n..dot\r\nbye\r\n.\r\n",
	    "S:250 2.0.0 Ok: queued as 4XyZ\r\n", "E:TXN_DONE 250", "E:READY",
	    "!quit", "C:QUIT\r\n", "S:221 2.0.0 Bye\r\n", "E:CLOSED");
	cr_assert_str_eq(smtp_proto_state_name(p), "closed");
	smtp_proto_free(p);
}

Test(smtp_proto, txn_done_carries_the_final_reply)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:x", "C:x\r\n.\r\n",
	    "S:250-2.0.0 Ok\r\n250 2.0.0 queued as \x01\x02X\r\n",
	    "E:TXN_DONE 250");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "2.0.0");
	cr_assert_str_eq(test_last_ev.reply.text,
	    "2.0.0 Ok / 2.0.0 queued as ??X");
	TEST_RUN(p, "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, reply_text_in_events_is_truncated_to_fit)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	char               big[2000];

	memset(big, 'y', sizeof(big));
	memcpy(big, "554 ", 4);
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	smtp_proto_feed(p, big, sizeof(big) - 1);
	cr_assert(smtp_proto_next_event(p, &test_last_ev));
	cr_assert_eq(test_last_ev.type, SMTP_PROTO_EV_FAILED);
	cr_assert_eq(strlen(test_last_ev.reply.text),
	    sizeof(test_last_ev.reply.text) - 1);
	TEST_RUN(p, "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, two_messages_on_one_session)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:one\n", "C:one\r\n.\r\n", "S:250 Ok\r\n", "E:TXN_DONE 250",
	    "E:READY", "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:.two", "C:..two\r\n.\r\n", "S:250 Ok\r\n", "E:TXN_DONE 250",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, null_sender_is_sent_as_empty_path)
{
	struct smtp_proto          *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	const struct smtp_proto_txn bounce = { .sender = "",
		.rcpts = test_rcpts1,
		.n_rcpts = 1 };

	TEST_RUN(p, TEST_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &bounce), 0);
	TEST_RUN(p, "C:MAIL FROM:<>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, implicit_tls_goes_ready_without_starttls)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_IMPLICIT);

	cr_assert(smtp_proto_tls_active(p));
	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
	    "E:READY");
	cr_assert(smtp_proto_caps(p)->auth);
	smtp_proto_free(p);
}

Test(smtp_proto, starttls_upgrades_and_only_second_ehlo_caps_count)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-STARTTLS\r\n250-PIPELINING\r\n250 "
	    "AUTH PLAIN\r\n",
	    "C:STARTTLS\r\n", "S:220 2.0.0 Ready to start TLS\r\n",
	    "E:NEED_TLS");
	cr_assert_not(smtp_proto_tls_active(p));
	cr_assert_str_eq(smtp_proto_state_name(p), "tls-handshake");
	TEST_PART(p, "!tls_ok");
	cr_assert(smtp_proto_tls_active(p));
	cr_assert_not(smtp_proto_caps(p)->auth);
	cr_assert_not(smtp_proto_caps(p)->pipelining);
	TEST_RUN(p, "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 AUTH LOGIN\r\n", "E:READY");
	cr_assert(smtp_proto_caps(p)->auth);
	cr_assert_eq(smtp_proto_caps(p)->auth_mechs, SMTP_WIRE_AUTH_LOGIN);
	cr_assert_not(smtp_proto_caps(p)->pipelining);
	cr_assert_not(smtp_proto_caps(p)->starttls);
	smtp_proto_free(p);
}

Test(smtp_proto, starttls_not_offered_fails_tls_and_sends_only_quit)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE\r\n",
	    "E:FAILED TLS 0", "C:QUIT\r\n");
	cr_assert_neq(test_last_ev.reply.text[0], '\0');
	/* Nothing more, whatever happens now. */
	cr_assert_eq(smtp_proto_send_mail(p, &test_txn1), -1);
	TEST_RUN(p, "S:221 bye\r\n", "!quit", "!eof");
	cr_assert_str_eq(smtp_proto_state_name(p), "failed");
	smtp_proto_free(p);
}

Test(smtp_proto, starttls_refused_fails_tls)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:454 4.7.0 TLS not available due to temporary reason\r\n",
	    "E:FAILED TLS 454", "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "4.7.0");
	smtp_proto_free(p);
}

Test(smtp_proto, bytes_after_starttls_220_in_same_feed_fail_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n250-mx.example.net\r\n250 AUTH PLAIN\r\n",
	    "E:FAILED PROTO 0", "!tls_ok");
	cr_assert_not(smtp_proto_tls_active(p));
	smtp_proto_free(p);
}

Test(smtp_proto, bytes_after_starttls_220_split_mid_line_fail_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:220 go ahead\r", "S:\n2", "E:FAILED PROTO 0");
	smtp_proto_free(p);
}

Test(smtp_proto, bytes_before_tls_done_fail_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n", "E:NEED_TLS", "S:250 injected\r\n",
	    "E:FAILED PROTO 0", "!tls_ok");
	smtp_proto_free(p);
}

Test(smtp_proto, tls_handshake_failure_fails_tls_without_quit)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n", "E:NEED_TLS", "!tls_fail", "E:FAILED TLS 0");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_falls_back_to_helo)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "S:220 old.example.net SMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:502 5.5.2 Error: command not recognized\r\n",
	    "C:HELO client.example\r\n", "S:250 old.example.net\r\n",
	    "E:READY");
	cr_assert_not(smtp_proto_caps(p)->pipelining);
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_with_implicit_tls_falls_back_to_helo)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_IMPLICIT);

	TEST_RUN(p, "S:220 old.example.net SMTP\r\n",
	    "C:EHLO client.example\r\n", "S:500 what\r\n",
	    "C:HELO client.example\r\n", "S:250 old.example.net\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_under_starttls_fails_tls)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p, "S:220 old.example.net SMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:502 5.5.2 Error: command not recognized\r\n", "E:FAILED TLS 502",
	    "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_temporary_failure_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:450 try later\r\n", "E:FAILED RESP 450", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, helo_refused_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:500 what\r\n", "C:HELO client.example\r\n", "S:550 go away\r\n",
	    "E:FAILED RESP 550", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, greeting_554_fails_resp_and_quits)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "S:554 5.7.1 No SMTP service here\r\n", "E:FAILED RESP 554",
	    "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.text, "5.7.1 No SMTP service here");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.7.1");
	smtp_proto_free(p);
}

Test(smtp_proto, rcpt_partially_rejected_still_sends_data)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	test_txn = &test_txn2;
	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 2.1.0 Ok\r\n", "C:RCPT TO:<nobody@example.net>\r\n",
	    "S:550 5.1.1 <nobody@example.net>: Recipient address rejected\r\n",
	    "E:RCPT_STATUS 0 550");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.1.1");
	TEST_RUN(p, "C:RCPT TO:<bob@example.net>\r\n", "S:250 2.1.5 Ok\r\n",
	    "E:RCPT_STATUS 1 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:hello\r\n", "C:hello\r\n.\r\n", "S:250 2.0.0 Ok\r\n",
	    "E:TXN_DONE 250", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, all_rcpts_rejected_sends_rset_and_reports_last_failure)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	test_txn = &test_txn2;
	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 2.1.0 Ok\r\n", "C:RCPT TO:<nobody@example.net>\r\n",
	    "S:550 5.1.1 no such user\r\n", "E:RCPT_STATUS 0 550",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:452 4.2.2 mailbox full\r\n",
	    "E:RCPT_STATUS 1 452", "E:TXN_DONE 452");
	cr_assert_str_eq(test_last_ev.reply.text, "4.2.2 mailbox full");
	TEST_RUN(p, "C:RSET\r\n", "S:250 2.0.0 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, mail_refused_ends_txn_then_rset_and_ready)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:451 4.3.0 try again later\r\n", "E:TXN_DONE 451");
	cr_assert_str_eq(test_last_ev.reply.text, "4.3.0 try again later");
	TEST_RUN(p, "C:RSET\r\n", "S:250 Ok\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, data_refused_ends_txn_then_rset)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n",
	    "S:554 5.5.1 no valid recipients\r\n", "E:TXN_DONE 554",
	    "C:RSET\r\n", "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, message_refused_after_data_ends_txn_and_is_ready)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:spam", "C:spam\r\n.\r\n", "S:550 5.7.1 looks like spam\r\n",
	    "E:TXN_DONE 550", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, eof_mid_session_fails_conn)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok", "!eof", "E:FAILED CONN 0", "S:\r\n", "!eof");
	smtp_proto_free(p);
}

Test(smtp_proto, eof_before_greeting_fails_conn)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "!eof", "E:FAILED CONN 0");
	smtp_proto_free(p);
}

Test(smtp_proto, quit_when_ready_sends_quit_and_closes_on_221)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!quit", "C:QUIT\r\n", "!quit",
	    "S:221 2.0.0 Bye\r\n", "E:CLOSED", "!eof");
	smtp_proto_free(p);
}

Test(smtp_proto, eof_after_quit_closes)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!quit", "C:QUIT\r\n", "!eof", "E:CLOSED");
	smtp_proto_free(p);
}

Test(smtp_proto, quit_during_final_reply_reports_txn_then_quits)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:x", "C:x\r\n.\r\n", "!quit", "S:250 Ok\r\n",
	    "E:TXN_DONE 250", "C:QUIT\r\n", "S:221 Bye\r\n", "E:CLOSED");
	smtp_proto_free(p);
}

Test(smtp_proto, quit_before_greeting_quits_after_it)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "!quit", "S:220 mx\r\n", "C:QUIT\r\n", "S:221 Bye\r\n",
	    "E:CLOSED");
	smtp_proto_free(p);
}

Test(smtp_proto, reply_421_at_greeting_fails_resp_without_quit)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "S:421 4.3.2 Service shutting down\r\n",
	    "E:FAILED RESP 421");
	smtp_proto_free(p);
}

Test(smtp_proto, reply_421_to_rcpt_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n",
	    "S:421 4.4.2 timeout, closing\r\n", "E:FAILED RESP 421", "!eof");
	smtp_proto_free(p);
}

Test(smtp_proto, unsolicited_421_while_ready_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "S:421 idle timeout\r\n", "E:FAILED RESP 421");
	smtp_proto_free(p);
}

Test(smtp_proto, unsolicited_reply_while_ready_fails_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "S:250 surprise\r\n", "E:FAILED PROTO 250");
	smtp_proto_free(p);
}

Test(smtp_proto, reply_before_command_is_written_fails_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	/* Greeting and the EHLO answer in one feed: the EHLO reply came
	 * before EHLO was even written. */
	TEST_RUN(p, "S:220 mx\r\n250 mx\r\n", "E:FAILED PROTO 250",
	    "C:EHLO client.example\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, malformed_reply_fails_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, "S:220-mx\r\n230 mx\r\n", "E:FAILED PROTO 0");
	cr_assert_neq(test_last_ev.reply.text[0], '\0');
	smtp_proto_free(p);
}

Test(smtp_proto, reply_during_body_fails_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!body:partial", "C:partial", "S:250 early\r\n",
	    "E:FAILED PROTO 250", "!last:more");
	smtp_proto_free(p);
}

Test(smtp_proto, send_mail_rejects_misuse_and_unsafe_addresses)
{
	struct smtp_proto          *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	const char *const           evil[] = { "bob@x>\r\nRCPT TO:<eve@y" };
	const char *const           spaced[] = { "bob @x" };
	const struct smtp_proto_txn bad1 = { .sender = "a@x",
		.rcpts = evil,
		.n_rcpts = 1 };
	const struct smtp_proto_txn bad2 = { .sender = "a@x\n",
		.rcpts = test_rcpts1,
		.n_rcpts = 1 };
	const struct smtp_proto_txn bad3 = { .sender = "a@x",
		.rcpts = test_rcpts1,
		.n_rcpts = 0 };
	const struct smtp_proto_txn bad4 = { .sender = "a@x",
		.rcpts = spaced,
		.n_rcpts = 1 };

	cr_assert_eq(smtp_proto_send_mail(p, &test_txn1), -1);
	TEST_RUN(p, TEST_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &bad1), -1);
	cr_assert_eq(smtp_proto_send_mail(p, &bad2), -1);
	cr_assert_eq(smtp_proto_send_mail(p, &bad3), -1);
	cr_assert_eq(smtp_proto_send_mail(p, &bad4), -1);
	TEST_RUN(p, "!mail", "C:MAIL FROM:<alice@example.org>\r\n");
	cr_assert_eq(smtp_proto_send_mail(p, &test_txn1), -1);
	smtp_proto_free(p);
}

Test(smtp_proto, body_outside_data_is_ignored)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!last:nope");
	smtp_proto_free(p);
}

Test(smtp_proto, large_body_streams_in_chunks_below_the_watermark)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	static char        chunk[10000];
	const void        *data;
	size_t             i, len;

	memset(chunk, 'a', sizeof(chunk));
	for (i = 99; i < sizeof(chunk); i += 100)
		chunk[i] = '\n';
	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY");
	for (i = 0; i < 100; i++) {
		cr_assert_lt(smtp_proto_output_pending(p),
		    SMTP_PROTO_OUT_WATERMARK);
		smtp_proto_body(p, chunk, sizeof(chunk), i == 99);
		smtp_proto_output(p, &data, &len);
		/* 100 lines of 99 bytes + CRLF per chunk. */
		cr_assert_eq(len, i == 99 ? 10000 + 100 + 3 : 10000 + 100);
		smtp_proto_consumed(p, len);
	}
	TEST_RUN(p, "S:250 Ok\r\n", "E:TXN_DONE 250", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_after_starttls_falls_back_to_helo)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	/* HELO could not offer STARTTLS, but TLS is already up. */
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n", "E:NEED_TLS", "!tls_ok",
	    "C:EHLO client.example\r\n", "S:502 no EHLO today\r\n",
	    "C:HELO client.example\r\n", "S:250 mx\r\n", "E:READY");
	cr_assert(smtp_proto_tls_active(p));
	smtp_proto_free(p);
}

Test(smtp_proto, event_queue_is_bounded_when_the_driver_never_pops)
{
	struct smtp_proto      *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	const char             *rcpts[SMTP_PROTO_EVENTS_MAX + 8];
	struct smtp_proto_txn   txn = { .sender = "a@example.org",
		  .rcpts = rcpts,
		  .n_rcpts = 0 };
	struct smtp_proto_event ev;
	const void             *data;
	size_t                  i, len, n = 0;

	for (i = 0; i < SMTP_PROTO_EVENTS_MAX + 8; i++)
		rcpts[i] = "r@example.net";
	txn.n_rcpts = SMTP_PROTO_EVENTS_MAX + 8;
	TEST_RUN(p, TEST_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &txn), 0);
	smtp_proto_feed(p, "250 Ok\r\n", 8); /* too early: not written */
	cr_assert_str_eq(smtp_proto_state_name(p), "failed");
	smtp_proto_free(p);

	p = test_proto_new(SMTP_PROTO_TLS_NONE);
	TEST_RUN(p, TEST_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &txn), 0);
	for (i = 0; i < txn.n_rcpts + 1; i++) {
		smtp_proto_output(p, &data, &len);
		smtp_proto_consumed(p, len);
		smtp_proto_feed(p, "250 Ok\r\n", 8);
	}
	cr_assert_str_eq(smtp_proto_state_name(p), "failed");
	while (smtp_proto_next_event(p, &ev))
		n++;
	cr_assert_eq(n, SMTP_PROTO_EVENTS_MAX);
	cr_assert_eq(ev.type, SMTP_PROTO_EV_FAILED);
	cr_assert_eq(ev.fail, SMTP_PROTO_FAIL_PROTO);
	smtp_proto_free(p);
}

Test(smtp_proto, send_mail_refuses_addresses_with_control_characters)
{
	struct smtp_proto       *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	static const char *const bad[] = {
		"a\r@x",
		"a@x\n",
		"a\t@x",
		"a\001@x",
		"a@x\177",
		"a\033@x",
	};
	struct smtp_proto_txn txn = { .sender = "a@x",
		.rcpts = test_rcpts1,
		.n_rcpts = 1 };
	const char           *r[1];
	size_t                i;

	TEST_RUN(p, TEST_HELLO);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		txn.sender = bad[i];
		txn.rcpts = test_rcpts1;
		cr_assert_eq(smtp_proto_send_mail(p, &txn), -1, "%zu", i);
		txn.sender = "a@x";
		r[0] = bad[i];
		txn.rcpts = r;
		cr_assert_eq(smtp_proto_send_mail(p, &txn), -1, "%zu", i);
	}
	/* Nothing was written, the session is still READY. */
	TEST_RUN(p, "!mail", "C:MAIL FROM:<alice@example.org>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, final_reply_is_success_only_when_a_valid_2xx)
{
	static const char *const bad[] = {
		"354 go on\r\n",
		"2500 Ok\r\n",
		"25 Ok\r\n",
		"250Ok\r\n",
		"OK\r\n",
		"\r\n",
		"199 hmm\r\n",
		"650 what\r\n",
	};
	struct smtp_proto      *p;
	struct smtp_proto_event ev;
	size_t                  i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = test_proto_new(SMTP_PROTO_TLS_NONE);
		TEST_RUN(p, TEST_HELLO, "!mail",
		    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
		    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
		    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
		    "E:NEED_BODY", "!last:x", "C:x\r\n.\r\n");
		smtp_proto_feed(p, bad[i], strlen(bad[i]));
		cr_assert(smtp_proto_next_event(p, &ev), "%s", bad[i]);
		cr_assert_eq(ev.type, SMTP_PROTO_EV_FAILED, "%s", bad[i]);
		cr_assert_eq(ev.fail, SMTP_PROTO_FAIL_PROTO, "%s", bad[i]);
		cr_assert_not(smtp_proto_next_event(p, &ev));
		smtp_proto_free(p);
	}
}

Test(smtp_proto, rcpt_reply_outside_2xx_4xx_5xx_fails_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:354 what\r\n",
	    "E:FAILED PROTO 354");
	smtp_proto_free(p);
}

/* AUTH */

#define TEST_AUTH_PARAMS(tls_, auth_) \
	.ehlo_name = "client.example", .tls = (tls_), .auth = (auth_), \
	.auth_user = "tim", .auth_secret = "tanstaaftanstaaf"

Test(smtp_proto, auth_plain_over_implicit_tls)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_PART(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 AUTH PLAIN LOGIN\r\n",
	    "C:AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
	cr_assert_str_eq(smtp_proto_state_name(p), "auth");
	TEST_RUN(p, "S:235 2.7.0 Authentication successful\r\n", "E:READY",
	    "!mail", "C:MAIL FROM:<alice@example.org>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_after_starttls_uses_only_second_ehlo_mechanisms)
{
	struct smtp_proto_params params = {
		TEST_AUTH_PARAMS(SMTP_PROTO_TLS_STARTTLS, SASL_MECH_AUTO),
		.auth_nonce = "rOprNGfwEbeRWgbNEkqO"
	};
	struct smtp_proto *p = test_proto_new_params(&params);

	/* Before TLS the server offers SCRAM and PLAIN: nothing is sent
	 * but STARTTLS; after TLS only LOGIN counts. */
	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-STARTTLS\r\n250 AUTH SCRAM-SHA-256 "
	    "PLAIN\r\n",
	    "C:STARTTLS\r\n", "S:220 go ahead\r\n", "E:NEED_TLS", "!tls_ok",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 AUTH LOGIN\r\n", "C:AUTH LOGIN\r\n",
	    "S:334 VXNlcm5hbWU6\r\n", "C:dGlt\r\n", "S:334 UGFzc3dvcmQ6\r\n",
	    "C:dGFuc3RhYWZ0YW5zdGFhZg==\r\n", "S:235 2.7.0 Accepted\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_is_refused_without_tls_to_a_remote_server)
{
	static const enum sasl_mech mechs[] = {
		SASL_MECH_AUTO,
		SASL_MECH_PLAIN,
		SASL_MECH_LOGIN,
		SASL_MECH_XOAUTH2,
	};
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_NONE, SASL_MECH_PLAIN) };
	struct smtp_proto       *p;
	size_t                   i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		params.auth = mechs[i];
		p = test_proto_new_params(&params);
		TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
		    "C:EHLO client.example\r\n",
		    "S:250-mx.example.net\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n",
		    "E:FAILED AUTH 0", "C:QUIT\r\n");
		cr_assert(strstr(test_last_ev.reply.text, "without TLS"), "%s",
		    test_last_ev.reply.text);
		cr_assert(test_last_ev.reply.local);
		smtp_proto_free(p);
	}
}

Test(smtp_proto, auth_is_allowed_without_tls_to_loopback)
{
	struct smtp_proto_params params = {
		TEST_AUTH_PARAMS(SMTP_PROTO_TLS_NONE, SASL_MECH_PLAIN),
		.peer_is_loopback = 1
	};
	struct smtp_proto *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 localhost ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-localhost\r\n250 AUTH PLAIN\r\n",
	    "C:AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", "S:235 ok\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_none_never_authenticates)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_NONE) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH PLAIN\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_auto_runs_scram_with_the_rfc7677_vector)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_IMPLICIT,
		.auth = SASL_MECH_AUTO,
		.auth_user = "user",
		.auth_secret = "pencil",
		.auth_nonce = "rOprNGfwEbeRWgbNEkqO" };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH PLAIN LOGIN SCRAM-SHA-256 CRAM-MD5\r\n",
	    "C:AUTH SCRAM-SHA-256 "
	    "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=\r\n",
	    "S:334 "
	    "cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRi"
	    "RrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=\r\n",
	    "C:"
	    "Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSW"
	    "xqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6"
	    "N0FuZFZRPQ==\r\n",
	    "S:334 "
	    "dj02cnJpVFJCaTIzV3BSUi93dHVwK21NaFVaVW4vZEI1bkxUSlJzamw5NUc0PQ=="
	    "\r\n",
	    "C:\r\n", "S:235 2.7.0 Authentication successful\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_scram_server_signature_mismatch_fails_auth)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_IMPLICIT,
		.auth = SASL_MECH_SCRAM_SHA_256,
		.auth_user = "user",
		.auth_secret = "pencil",
		.auth_nonce = "rOprNGfwEbeRWgbNEkqO" };
	struct smtp_proto       *p = test_proto_new_params(&params);

	/* The server does not know the password: its v= is wrong.  We
	 * cancel with "*" and fail, whatever it says next. */
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH SCRAM-SHA-256\r\n",
	    "C:AUTH SCRAM-SHA-256 "
	    "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=\r\n",
	    "S:334 "
	    "cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRi"
	    "RrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=\r\n",
	    "C:"
	    "Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSW"
	    "xqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6"
	    "N0FuZFZRPQ==\r\n",
	    /* v=AAAA... (32 zero bytes) */
	    "S:334 "
	    "dj1BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBPQ=="
	    "\r\n",
	    "C:*\r\n", "S:235 2.7.0 whatever\r\n", "E:FAILED AUTH 0",
	    "C:QUIT\r\n");
	cr_assert(strstr(test_last_ev.reply.text, "mismatch"), "%s",
	    test_last_ev.reply.text);
	smtp_proto_free(p);
}

Test(smtp_proto, auth_scram_235_without_server_signature_fails_auth)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_IMPLICIT,
		.auth = SASL_MECH_SCRAM_SHA_256,
		.auth_user = "user",
		.auth_secret = "pencil",
		.auth_nonce = "rOprNGfwEbeRWgbNEkqO" };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH SCRAM-SHA-256\r\n",
	    "C:AUTH SCRAM-SHA-256 "
	    "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=\r\n",
	    "S:334 "
	    "cj1yT3ByTkdmd0ViZVJXZ2JORWtxTyVodllEcFdVYTJSYVRDQWZ1eEZJbGopaE5sRi"
	    "RrMCxzPVcyMlphSjBTTlk3c29Fc1VFamI2Z1E9PSxpPTQwOTY=\r\n",
	    "C:"
	    "Yz1iaXdzLHI9ck9wck5HZndFYmVSV2diTkVrcU8laHZZRHBXVWEyUmFUQ0FmdXhGSW"
	    "xqKWhObEYkazAscD1kSHpiWmFwV0lrNGpVaE4rVXRlOXl0YWc5empmTUhnc3FtbWl6"
	    "N0FuZFZRPQ==\r\n",
	    "S:235 2.7.0 trust me\r\n", "E:FAILED AUTH 0", "C:QUIT\r\n");
	cr_assert(strstr(test_last_ev.reply.text, "proving"), "%s",
	    test_last_ev.reply.text);
	smtp_proto_free(p);
}

Test(smtp_proto, auth_auto_without_nonce_does_not_pick_scram)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_AUTO) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH SCRAM-SHA-256 PLAIN\r\n",
	    "C:AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n", "S:235 ok\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_535_fails_auth_with_the_server_reply)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH PLAIN\r\n",
	    "C:AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n",
	    "S:535 5.7.8 Authentication credentials invalid\r\n",
	    "E:FAILED AUTH 535", "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.text,
	    "5.7.8 Authentication credentials invalid");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.7.8");
	cr_assert_not(test_last_ev.reply.local);
	cr_assert_eq(smtp_proto_send_mail(p, &test_txn1), -1);
	smtp_proto_free(p);
}

Test(smtp_proto, auth_454_is_a_temporary_failure)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_LOGIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH LOGIN\r\n", "C:AUTH LOGIN\r\n",
	    "S:334 VXNlcm5hbWU6\r\n", "C:dGlt\r\n", "S:334 UGFzc3dvcmQ6\r\n",
	    "C:dGFuc3RhYWZ0YW5zdGFhZg==\r\n",
	    "S:454 4.7.0 Temporary authentication failure\r\n",
	    "E:FAILED RESP 454", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_configured_mechanism_not_offered_fails_auth)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250-AUTH LOGIN CRAM-MD5\r\n250 8BITMIME\r\n",
	    "E:FAILED AUTH 0", "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.text,
	    "server does not offer AUTH PLAIN (offers: LOGIN CRAM-MD5)");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_auto_without_a_common_mechanism_fails_auth)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_AUTO) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH=CRAM-MD5 GSSAPI\r\n", "E:FAILED AUTH 0",
	    "C:QUIT\r\n");
	cr_assert(
	    strstr(test_last_ev.reply.text, "(server offers: CRAM-MD5 GSSAPI;"),
	    "%s", test_last_ev.reply.text);
	smtp_proto_free(p);
}

Test(smtp_proto, auth_configured_but_no_auth_offered_fails_auth)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_AUTO) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 PIPELINING\r\n", "E:FAILED AUTH 0", "C:QUIT\r\n");
	cr_assert(strstr(test_last_ev.reply.text, "server offers no AUTH"),
	    "%s", test_last_ev.reply.text);
	smtp_proto_free(p);

	/* HELO offers nothing either. */
	p = test_proto_new_params(&params);
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:502 no\r\n", "C:HELO client.example\r\n", "S:250 mx\r\n",
	    "E:FAILED AUTH 0", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_reply_echoing_a_credential_is_masked)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH PLAIN\r\n",
	    "C:AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n",
	    "S:535-5.7.8 bad: AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n535 5.7.8 "
	    "password tanstaaftanstaaf is wrong\r\n",
	    "E:FAILED AUTH 535", "C:QUIT\r\n");
	cr_assert_null(strstr(test_last_ev.reply.text, "AHRpbQB0"));
	cr_assert_null(strstr(test_last_ev.reply.text, "tanstaaf"));
	cr_assert(strstr(test_last_ev.reply.text, "5.7.8 password "), "%s",
	    test_last_ev.reply.text);
	smtp_proto_free(p);
}

Test(smtp_proto, auth_credentials_are_wiped_from_the_output_buffer)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);
	const void              *data;
	const unsigned char     *d;
	size_t                   len, i;

	TEST_PART(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH PLAIN\r\n");
	smtp_proto_output(p, &data, &len);
	cr_assert_gt(len, 20);
	/* White box: the bytes stay allocated in the output buffer. */
	d = data;
	smtp_proto_consumed(p, 10);
	smtp_proto_consumed(p, len - 10);
	for (i = 0; i < len; i++)
		cr_assert_eq(d[i], 0, "byte %zu not wiped", i);
	TEST_RUN(p, "S:235 ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_xoauth2_error_challenge_gets_empty_line_then_fails)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_IMPLICIT,
		.auth = SASL_MECH_XOAUTH2,
		.auth_user = "u@example.com",
		.auth_secret = "ya29.token" };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n",
	    "C:AUTH XOAUTH2 "
	    "dXNlcj11QGV4YW1wbGUuY29tAWF1dGg9QmVhcmVyIHlhMjkudG9rZW4BAQ==\r\n",
	    "S:334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n",
	    "C:\r\n", "S:535 5.7.8 Username and Password not accepted\r\n",
	    "E:FAILED AUTH 535", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_long_initial_response_waits_for_the_empty_challenge)
{
	static char              token[700];
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_IMPLICIT,
		.auth = SASL_MECH_OAUTHBEARER,
		.auth_user = "u@example.com",
		.auth_secret = token };
	struct smtp_proto       *p;
	char                     raw[800], want[1200];
	struct buf               b64;

	memset(token, 'T', sizeof(token) - 1);
	snprintf(raw, sizeof(raw),
	    "n,a=u@example.com,\001auth=Bearer %s\001\001", token);
	buf_init(&b64, sizeof(want) - 3);
	cr_assert_eq(sasl_b64_encode(raw, strlen(raw), &b64), 0);
	snprintf(want, sizeof(want), "C:%.*s\r\n", (int)b64.len, b64.data);
	buf_fini(&b64);

	p = test_proto_new_params(&params);
	TEST_PART(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH OAUTHBEARER\r\n", "C:AUTH OAUTHBEARER\r\n",
	    "S:334 \r\n");
	test_proto_expect_output(p, want + 2);
	TEST_RUN(p, "S:235 2.7.0 ok\r\n", "E:READY");
	smtp_proto_free(p);

	/* A challenge where the initial response belongs: cancel. */
	p = test_proto_new_params(&params);
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH OAUTHBEARER\r\n", "C:AUTH OAUTHBEARER\r\n",
	    "S:334 e30=\r\n", "C:*\r\n", "S:501 5.7.0 cancelled\r\n",
	    "E:FAILED AUTH 0", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, auth_bad_challenge_is_cancelled_with_a_star)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_LOGIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH LOGIN\r\n", "C:AUTH LOGIN\r\n",
	    "S:334 not base64!\r\n", "C:*\r\n",
	    "S:501 5.7.0 Authentication aborted\r\n", "E:FAILED AUTH 0",
	    "C:QUIT\r\n");
	cr_assert(strstr(test_last_ev.reply.text, "base64"), "%s",
	    test_last_ev.reply.text);
	smtp_proto_free(p);
}

Test(smtp_proto, quit_before_auth_sends_quit_instead)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n", "!quit",
	    "S:250-mx\r\n250 AUTH PLAIN\r\n", "C:QUIT\r\n", "S:221 bye\r\n",
	    "E:CLOSED");
	smtp_proto_free(p);
}

/* PIPELINING */

#define TEST_PIPE_HELLO \
	"S:220 mx.example.net ESMTP\r\n", "C:EHLO client.example\r\n", \
	    "S:250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n", \
	    "E:READY"

static struct smtp_proto *
test_proto_pipelined(void)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_NONE,
		.pipelining = 1 };

	return test_proto_new_params(&params);
}

Test(smtp_proto, pipelined_session_with_one_rejected_recipient)
{
	struct smtp_proto *p = test_proto_pipelined();

	test_txn = &test_txn2;
	TEST_RUN(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<nobody@example.net>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n",
	    "S:250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n",
	    "E:RCPT_STATUS 0 550", "S:250 2.1.5 Ok\r\n354 go\r\n",
	    "E:RCPT_STATUS 1 250", "E:NEED_BODY", "!last:hello",
	    "C:hello\r\n.\r\n", "S:250 2.0.0 queued\r\n", "E:TXN_DONE 250",
	    "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<nobody@example.net>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, pipelined_all_recipients_rejected_reports_rcpt_failure)
{
	struct smtp_proto *p = test_proto_pipelined();

	test_txn = &test_txn2;
	TEST_PART(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<nobody@example.net>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n",
	    "S:250 Ok\r\n550 5.1.1 no such user\r\n452 4.2.2 full\r\n554 5.5.1 "
	    "Error: no valid recipients\r\n",
	    "E:RCPT_STATUS 0 550", "E:RCPT_STATUS 1 452", "E:TXN_DONE 452");
	cr_assert_str_eq(test_last_ev.reply.text, "4.2.2 full");
	TEST_RUN(p, "C:RSET\r\n", "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, pipelined_data_accepted_without_recipients_sends_empty_end)
{
	struct smtp_proto *p = test_proto_pipelined();

	TEST_RUN(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:250 Ok\r\n550 5.1.1 no\r\n354 go\r\n", "E:RCPT_STATUS 0 550",
	    "C:.\r\n", "S:554 5.5.1 no valid recipients\r\n", "E:TXN_DONE 550",
	    "C:RSET\r\n", "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, pipelined_mail_refused_drains_the_group_then_rsets)
{
	struct smtp_proto *p = test_proto_pipelined();

	test_txn = &test_txn2;
	TEST_RUN(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<nobody@example.net>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n",
	    "S:451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n",
	    "E:TXN_DONE 451",
	    "S:503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n", "C:RSET\r\n",
	    "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);

	/* ...but a 354 after a refused MAIL means the server now reads
	 * message text: the stream is out of step. */
	p = test_proto_pipelined();
	TEST_RUN(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:550 no\r\n503 no\r\n354 go\r\n", "E:TXN_DONE 550",
	    "E:FAILED PROTO 0");
	smtp_proto_free(p);
}

Test(smtp_proto, pipelined_reply_before_its_command_is_written_fails_proto)
{
	struct smtp_proto *p = test_proto_pipelined();
	const void        *data;
	size_t             len;

	TEST_PART(p, TEST_PIPE_HELLO, "!mail");
	smtp_proto_output(p, &data, &len);
	/* Only MAIL was written: its reply is fine, the RCPT's is not. */
	smtp_proto_consumed(p, strlen("MAIL FROM:<alice@example.org>\r\n"));
	smtp_proto_feed(p, "250 Ok\r\n250 Ok\r\n", 16);
	TEST_RUN(p, "E:FAILED PROTO 250",
	    "C:RCPT TO:<bob@example.net>\r\nDATA\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, pipelined_replies_split_anywhere)
{
	static const char replies[] =
	    "250 Ok\r\n250-Ok\r\n250 fine\r\n354 go\r\n";
	struct smtp_proto      *p = test_proto_pipelined();
	struct smtp_proto_event ev;
	size_t                  i;

	TEST_RUN(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n");
	for (i = 0; i < sizeof(replies) - 1; i++)
		smtp_proto_feed(p, replies + i, 1);
	TEST_RUN(p, "E:RCPT_STATUS 0 250", "E:NEED_BODY");
	cr_assert_not(smtp_proto_next_event(p, &ev));
	smtp_proto_free(p);
}

Test(smtp_proto, pipelining_needs_both_the_setting_and_the_server)
{
	struct smtp_proto *p = test_proto_pipelined();

	/* Server without PIPELINING: one command at a time. */
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 8BITMIME\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, pipelined_many_recipients_go_in_groups)
{
	enum { N = SMTP_PROTO_PIPE_RCPTS + 4 };
	struct smtp_proto    *p = test_proto_pipelined();
	struct smtp_proto_txn txn = { .sender = "a@example.org", .n_rcpts = N };
	const char           *rcpts[N];
	struct smtp_proto_event ev;
	char                    want[4096], replies[1024];
	size_t                  i, o, n;

	for (i = 0; i < N; i++)
		rcpts[i] = "r@example.net";
	txn.rcpts = rcpts;
	TEST_RUN(p, TEST_PIPE_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &txn), 0);
	o = (size_t)snprintf(want, sizeof(want),
	    "MAIL FROM:<a@example.org>\r\n");
	for (i = 0; i < SMTP_PROTO_PIPE_RCPTS; i++)
		o += (size_t)snprintf(want + o, sizeof(want) - o,
		    "RCPT TO:<r@example.net>\r\n");
	test_proto_expect_output(p, want);
	o = (size_t)snprintf(replies, sizeof(replies), "250 Ok\r\n");
	for (i = 0; i < SMTP_PROTO_PIPE_RCPTS; i++)
		o += (size_t)snprintf(replies + o, sizeof(replies) - o,
		    "250 Ok\r\n");
	smtp_proto_feed(p, replies, o);
	for (n = 0; smtp_proto_next_event(p, &ev); n++)
		cr_assert_eq(ev.type, SMTP_PROTO_EV_RCPT_STATUS);
	cr_assert_eq(n, SMTP_PROTO_PIPE_RCPTS);
	o = 0;
	for (i = SMTP_PROTO_PIPE_RCPTS; i < N; i++)
		o += (size_t)snprintf(want + o, sizeof(want) - o,
		    "RCPT TO:<r@example.net>\r\n");
	snprintf(want + o, sizeof(want) - o, "DATA\r\n");
	test_proto_expect_output(p, want);
	smtp_proto_feed(p, "250 a\r\n250 b\r\n250 c\r\n550 d\r\n354 go\r\n",
	    37);
	for (n = 0; smtp_proto_next_event(p, &ev); n++)
		if (n < 4)
			cr_assert_eq(ev.rcpt_index, SMTP_PROTO_PIPE_RCPTS + n);
	cr_assert_eq(n, 5);
	cr_assert_eq(ev.type, SMTP_PROTO_EV_NEED_BODY);
	smtp_proto_free(p);
}

/* PIPELINING across messages (RFC 2920 3.1): the next transaction
 * follows the final dot before its reply. */

#define TEST_PIPE_MAIL1 \
	"C:MAIL FROM:<alice@example.org>\r\nRCPT " \
	"TO:<bob@example.net>\r\nDATA\r\n"

/* Up to the first message's final dot, produced and not yet written. */
#define TEST_PIPE_FIRST \
	TEST_PIPE_HELLO, "!mail", TEST_PIPE_MAIL1, \
	    "S:250 Ok\r\n250 Ok\r\n354 go\r\n", "E:RCPT_STATUS 0 250", \
	    "E:NEED_BODY", "!last:one"

Test(smtp_proto, next_message_goes_out_right_behind_the_dot)
{
	struct smtp_proto *p = test_proto_pipelined();

	TEST_PART(p, TEST_PIPE_HELLO, "!mail", TEST_PIPE_MAIL1,
	    "S:250 Ok\r\n250 Ok\r\n354 go\r\n", "E:RCPT_STATUS 0 250",
	    "E:NEED_BODY", "!body:on");
	/* Not while the body is still being produced. */
	cr_assert_not(smtp_proto_can_send_mail(p));
	cr_assert_eq(smtp_proto_send_mail(p, test_txn), -1);
	TEST_PART(p, "!last:e");
	cr_assert(smtp_proto_can_send_mail(p));
	/* MAIL, RCPT and DATA directly after the dot, in one output. */
	TEST_PART(p, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n");
	cr_assert_not(smtp_proto_can_send_mail(p));
	cr_assert_eq(smtp_proto_send_mail(p, test_txn), -1);
	TEST_PART(p, "S:250 2.0.0 first\r\n250 Ok\r\n250 Ok\r\n354 go\r\n",
	    "E:TXN_DONE 250");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	cr_assert_str_eq(test_last_ev.reply.text, "2.0.0 first");
	TEST_RUN(p, "E:RCPT_STATUS 0 250", "E:NEED_BODY", "!last:two",
	    "C:two\r\n.\r\n", "S:250 2.0.0 second\r\n", "E:TXN_DONE 250",
	    "E:READY");
	cr_assert_str_eq(test_last_ev.reply.text, "");
	smtp_proto_free(p);
}

Test(smtp_proto, refused_dot_does_not_touch_the_next_message)
{
	struct smtp_proto *p = test_proto_pipelined();

	TEST_PART(p, TEST_PIPE_FIRST, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:554 5.7.1 spam\r\n250 Ok\r\n250 Ok\r\n354 go\r\n",
	    "E:TXN_DONE 554");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	TEST_RUN(p, "E:RCPT_STATUS 0 250", "E:NEED_BODY", "!last:two",
	    "C:two\r\n.\r\n", "S:451 4.3.0 later\r\n", "E:TXN_DONE 451",
	    "E:READY");
	smtp_proto_free(p);

	/* The second message's MAIL refused: the first is unaffected. */
	p = test_proto_pipelined();
	TEST_RUN(p, TEST_PIPE_FIRST, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:250 first\r\n452 4.3.1 full\r\n503 no\r\n503 no\r\n",
	    "E:TXN_DONE 250", "E:TXN_DONE 452", "C:RSET\r\n", "S:250 Ok\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, connection_lost_before_the_dots_reply_fails_at_end)
{
	struct smtp_proto *p = test_proto_pipelined();

	TEST_PART(p, TEST_PIPE_FIRST, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n");
	cr_assert_eq(smtp_proto_step(p), SMTP_PROTO_STEP_END);
	TEST_RUN(p, "!eof", "E:FAILED CONN 0");
	/* As without pipelining: the first message's fate is unknown. */
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	smtp_proto_free(p);

	/* 421 instead of the dot's verdict: the same place. */
	p = test_proto_pipelined();
	TEST_RUN(p, TEST_PIPE_FIRST, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:421 4.3.2 shutting down\r\n", "E:FAILED RESP 421");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	smtp_proto_free(p);

	/* Lost after the first verdict: the second message's step. */
	p = test_proto_pipelined();
	TEST_RUN(p, TEST_PIPE_FIRST, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:250 first\r\n", "E:TXN_DONE 250", "!eof", "E:FAILED CONN 0");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_MAIL);
	smtp_proto_free(p);
}

Test(smtp_proto, reply_before_the_pipelined_commands_are_written_fails)
{
	struct smtp_proto *p = test_proto_pipelined();

	/* Only the body and dot were written: the dot's reply is fine,
	 * the next one answers nothing we sent. */
	TEST_PART(p, TEST_PIPE_FIRST, "!mail");
	smtp_proto_consumed(p, strlen("one\r\n.\r\n"));
	smtp_proto_feed(p, "250 first\r\n250 Ok\r\n", 19);
	TEST_RUN(p, "E:TXN_DONE 250", "E:FAILED PROTO 250",
	    "C:MAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n");
	smtp_proto_free(p);

	/* Nothing written: even the dot's reply comes too early. */
	p = test_proto_pipelined();
	TEST_PART(p, TEST_PIPE_FIRST, "!mail");
	smtp_proto_feed(p, "250 first\r\n", 11);
	TEST_RUN(p, "E:FAILED PROTO 250",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	smtp_proto_free(p);

	/* A 354 where the dot's verdict belongs is out of step. */
	p = test_proto_pipelined();
	TEST_RUN(p, TEST_PIPE_FIRST, "!mail",
	    "C:one\r\n.\r\nMAIL FROM:<alice@example.org>\r\nRCPT "
	    "TO:<bob@example.net>\r\nDATA\r\n",
	    "S:354 go\r\n", "E:FAILED PROTO 354");
	smtp_proto_free(p);
}

Test(smtp_proto, no_message_behind_the_dot_without_pipelining)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.tls = SMTP_PROTO_TLS_NONE };
	struct smtp_proto       *p = test_proto_pipelined();

	/* The server does not offer it. */
	TEST_PART(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 8BITMIME\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:one");
	cr_assert_not(smtp_proto_can_send_mail(p));
	cr_assert_eq(smtp_proto_send_mail(p, test_txn), -1);
	TEST_RUN(p, "C:one\r\n.\r\n", "S:250 Ok\r\n", "E:TXN_DONE 250",
	    "E:READY");
	cr_assert(smtp_proto_can_send_mail(p));
	smtp_proto_free(p);

	/* The setting is off. */
	p = test_proto_new_params(&params);
	TEST_PART(p, TEST_PIPE_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY",
	    "!last:one");
	cr_assert_not(smtp_proto_can_send_mail(p));
	smtp_proto_free(p);

	/* After quit(). */
	p = test_proto_pipelined();
	TEST_PART(p, TEST_PIPE_FIRST, "!quit");
	cr_assert_not(smtp_proto_can_send_mail(p));
	smtp_proto_free(p);
}

Test(smtp_proto, local_verdict_behind_the_dot_comes_after_the_first)
{
	struct smtp_proto    *p = test_proto_pipelined();
	struct smtp_proto_txn big = test_txn1;

	big.size = 5000;
	TEST_PART(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", "E:READY",
	    "!mail", TEST_PIPE_MAIL1, "S:250 Ok\r\n250 Ok\r\n354 go\r\n",
	    "E:RCPT_STATUS 0 250", "E:NEED_BODY", "!last:one");
	cr_assert_eq(smtp_proto_send_mail(p, &big), 0);
	/* Nothing of it is sent; no third message behind it. */
	cr_assert_not(smtp_proto_can_send_mail(p));
	TEST_PART(p, "C:one\r\n.\r\n", "S:250 first\r\n", "E:TXN_DONE 250");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	TEST_RUN(p, "E:TXN_DONE 552", "E:READY");
	cr_assert(test_last_ev.type == SMTP_PROTO_EV_READY);
	smtp_proto_free(p);
}

/* MAIL parameters */

Test(smtp_proto, mail_from_carries_size_body_and_smtputf8_when_offered)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_txn1;

	txn.size = 500;
	txn.body_8bit = 1;
	txn.needs_smtputf8 = 1;
	test_txn = &txn;
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
	    "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org> SIZE=500 BODY=8BITMIME "
	    "SMTPUTF8\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, mail_from_omits_what_the_server_does_not_offer)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_txn1;

	/* 8-bit body without 8BITMIME: sent as is, without BODY=. */
	txn.size = 500;
	txn.body_8bit = 1;
	test_txn = &txn;
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250 mx\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, mail_from_size_without_limit_and_unknown_size)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_txn1;

	txn.size = 123456789;
	test_txn = &txn;
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 SIZE\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org> SIZE=123456789\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:550 no\r\n",
	    "E:RCPT_STATUS 0 550", "E:TXN_DONE 550", "C:RSET\r\n",
	    "S:250 Ok\r\n", "E:READY");
	txn.size = 0;
	TEST_RUN(p, "!mail", "C:MAIL FROM:<alice@example.org>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, message_over_the_server_size_limit_is_not_offered)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_txn1;

	txn.size = 2000;
	test_txn = &txn;
	TEST_PART(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 SIZE 1000\r\n", "E:READY", "!mail",
	    "E:TXN_DONE 552");
	cr_assert(test_last_ev.reply.local);
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.3.4");
	cr_assert_str_eq(test_last_ev.reply.text,
	    "5.3.4 message size 2000 exceeds the server's limit 1000");
	TEST_RUN(p, "E:READY");
	/* Exactly at the limit is fine. */
	txn.size = 1000;
	TEST_RUN(p, "!mail", "C:MAIL FROM:<alice@example.org> SIZE=1000\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, message_needing_smtputf8_without_it_is_not_offered)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_txn1;

	txn.needs_smtputf8 = 1;
	test_txn = &txn;
	TEST_PART(p, TEST_HELLO, "!mail", "E:TXN_DONE 553");
	cr_assert(test_last_ev.reply.local);
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.6.7");
	cr_assert_str_eq(test_last_ev.reply.text,
	    "5.6.7 message needs SMTPUTF8 but the server does not offer it");
	TEST_RUN(p, "E:READY", "!quit", "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, server_replies_are_not_marked_local)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:451 4.3.0 later\r\n", "E:TXN_DONE 451");
	cr_assert_not(test_last_ev.reply.local);
	TEST_RUN(p, "C:RSET\r\n", "!eof", "E:FAILED CONN 0");
	cr_assert(test_last_ev.reply.local);
	smtp_proto_free(p);
}

Test(smtp_proto, auth_failure_text_never_quotes_the_secret)
{
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };
	struct smtp_proto       *p = test_proto_new_params(&params);

	/* A server that knows the password and lists it as a mechanism. */
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 AUTH LOGIN tanstaaftanstaaf\r\n",
	    "E:FAILED AUTH 0", "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.text,
	    "server does not offer AUTH PLAIN (offers: LOGIN "
	    "****************)");
	smtp_proto_free(p);
}

/* DSN parameters (RFC 3461) */

static const unsigned test_dsn_notify[] = {
	SMTP_PROTO_NOTIFY_NEVER,
	SMTP_PROTO_NOTIFY_SUCCESS | SMTP_PROTO_NOTIFY_FAILURE |
	    SMTP_PROTO_NOTIFY_DELAY,
};
static const char *const test_dsn_orcpts[] = { NULL,
	"rfc822;bob+2Bx@example.net" };

static struct smtp_proto_txn
test_dsn_txn(void)
{
	struct smtp_proto_txn txn = test_txn2;

	txn.ret = SMTP_PROTO_RET_HDRS;
	txn.envid = "QQ+2B1";
	txn.notify = test_dsn_notify;
	txn.orcpts = test_dsn_orcpts;
	return txn;
}

Test(smtp_proto, dsn_offered_sends_ret_envid_notify_and_orcpt)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_dsn_txn();

	txn.size = 500;
	test_txn = &txn;
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250-SIZE 1000\r\n250 DSN\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org> SIZE=500 RET=HDRS "
	    "ENVID=QQ+2B1\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<nobody@example.net> NOTIFY=NEVER\r\n",
	    "S:250 Ok\r\n", "E:RCPT_STATUS 0 250",
	    "C:RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=rfc822;bob+2Bx@example.net\r\n",
	    "S:250 Ok\r\n", "E:RCPT_STATUS 1 250", "C:DATA\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, dsn_parameters_are_pipelined_with_their_commands)
{
	struct smtp_proto_params params = { .ehlo_name = "client.example",
		.pipelining = 1 };
	struct smtp_proto       *p = test_proto_new_params(&params);
	struct smtp_proto_txn    txn = test_dsn_txn();

	txn.ret = SMTP_PROTO_RET_FULL;
	txn.envid = NULL;
	test_txn = &txn;
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250-PIPELINING\r\n250 dsn\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org> RET=FULL\r\nRCPT "
	    "TO:<nobody@example.net> NOTIFY=NEVER\r\nRCPT TO:<bob@example.net> "
	    "NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=rfc822;bob+2Bx@example.net\r\nDATA\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, dsn_not_offered_sends_no_dsn_parameters)
{
	struct smtp_proto    *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn txn = test_dsn_txn();

	test_txn = &txn;
	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<nobody@example.net>\r\n",
	    "S:250 Ok\r\n", "E:RCPT_STATUS 0 250",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 1 250", "C:DATA\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, invalid_dsn_values_are_left_out_not_sent)
{
	static const unsigned notify[] = {
		SMTP_PROTO_NOTIFY_NEVER | SMTP_PROTO_NOTIFY_DELAY, 0x40
	};
	static const char *const orcpts[] = { "rfc822;a b",
		"x y;bob@example.net" };
	struct smtp_proto       *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn    txn = test_dsn_txn();
	char                     envid[102];

	memset(envid, 'e', sizeof(envid) - 1);
	envid[sizeof(envid) - 1] = '\0'; /* 101 characters */
	txn.envid = envid;
	txn.notify = notify;
	txn.orcpts = orcpts;
	txn.ret = (enum smtp_proto_ret)7;
	test_txn = &txn;
	TEST_RUN(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 DSN\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<nobody@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:RCPT TO:<bob@example.net>\r\n",
	    "S:250 Ok\r\n", "E:RCPT_STATUS 1 250", "C:DATA\r\n");
	smtp_proto_free(p);
}

/* The longest address the envelope rule lets through is 254 bytes (RFC
 * 5321 4.5.3.1: a 64-byte local part, a 256-byte path with its <>);
 * with the longest ORCPT it still fits one command, and a longer one is
 * refused before anything is sent. */
Test(smtp_proto, longest_address_with_full_dsn_parameters_fits_a_command)
{
	static char             addr[255], orcpt[501], huge[901];
	static const char      *big[1];
	static const char      *rcpts[1];
	static const unsigned   notify[] = { SMTP_PROTO_NOTIFY_SUCCESS |
		  SMTP_PROTO_NOTIFY_FAILURE | SMTP_PROTO_NOTIFY_DELAY };
	static const char      *orcpts[1];
	struct smtp_proto      *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_txn   txn = test_txn1;
	struct smtp_proto_event ev;
	const void             *data;
	size_t                  len;

	memset(addr, 'a', 254);
	addr[64] = '@';
	addr[65 + 63] = '.';
	addr[65 + 63 + 1 + 63] = '.';
	memset(huge, 'a', 890);
	memcpy(huge + 890, "@x.example", 10);
	big[0] = huge;
	memcpy(orcpt, "rfc822;", 7);
	memset(orcpt + 7, 'o', 493);
	rcpts[0] = addr;
	orcpts[0] = orcpt;
	txn.rcpts = rcpts;
	txn.notify = notify;
	txn.orcpts = orcpts;
	test_txn = &txn;
	TEST_PART(p, "S:220 mx ESMTP\r\n", "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 DSN\r\n", "E:READY");
	txn.rcpts = big;
	cr_assert_eq(smtp_proto_send_mail(p, &txn), -1);
	txn.rcpts = rcpts;
	TEST_PART(p, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n");
	smtp_proto_output(p, &data, &len);
	cr_assert_eq(len,
	    strlen("RCPT TO:<> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=\r\n") + 254 +
		500);
	cr_assert_eq(memcmp((const char *)data + len - 8, "oooooo\r\n", 8), 0);
	smtp_proto_consumed(p, len);
	cr_assert_not(smtp_proto_next_event(p, &ev));
	smtp_proto_free(p);
}

/* The safety net (RFC 5322 2.1.1): a body with a NUL or a line over 998
 * octets (an old or damaged spool file) fails the session with
 * FAIL_BODY, and the final dot is never produced, so the server
 * discards the partial message. */
static void
test_body_refused(const char *body, size_t len, const char *why)
{
	struct smtp_proto      *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_event ev;
	const void             *data;
	size_t                  olen;

	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY");
	smtp_proto_body(p, body, len, 1);
	cr_assert_eq(smtp_proto_next_event(p, &ev), 1);
	cr_assert_eq(ev.type, SMTP_PROTO_EV_FAILED);
	cr_assert_eq(ev.fail, SMTP_PROTO_FAIL_BODY);
	cr_assert_not_null(strstr(ev.reply.text, why), "%s", ev.reply.text);
	smtp_proto_output(p, &data, &olen);
	cr_assert(olen < 3 || memmem(data, olen, "\r\n.\r\n", 5) == NULL,
	    "the final dot was produced");
	smtp_proto_free(p);
}

Test(smtp_proto, body_with_nul_fails_without_final_dot)
{
	static const char body[] = "Subject: x\n\nab\0c\n";

	test_body_refused(body, sizeof(body) - 1, "line 3 contains a NUL byte");
}

Test(smtp_proto, body_line_over_998_octets_fails_without_final_dot)
{
	static char body[1200];

	memcpy(body, "Subject: x\r\n\r\n", 14);
	memset(body + 14, 'x', 999);
	memcpy(body + 14 + 999, "\r\n", 2);
	test_body_refused(body, 14 + 999 + 2,
	    "line 3 is longer than 998 octets");
}

Test(smtp_proto, body_line_of_998_octets_and_dots_are_sent)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	static char        body[1100];
	const void        *data;
	size_t             len;

	body[0] = '.'; /* the stuffed dot is not counted */
	memset(body + 1, 'y', 997);
	memcpy(body + 998, "\n", 1);
	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY");
	smtp_proto_body(p, body, 999, 1);
	smtp_proto_output(p, &data, &len);
	cr_assert_eq(len, 999 + 1 + 1 + 3);
	smtp_proto_consumed(p, len);
	TEST_RUN(p, "S:250 Ok\r\n", "E:TXN_DONE 250", "E:READY");
	smtp_proto_free(p);
}

/* Steps: what each event's reply answered (smtp_conn's phase facts). */

Test(smtp_proto, events_name_the_step_their_reply_answered)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	cr_assert_eq(smtp_proto_step(p), SMTP_PROTO_STEP_GREETING);
	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_RCPT);
	TEST_PART(p, "C:DATA\r\n", "S:354 go\r\n", "E:NEED_BODY", "!last:x",
	    "C:x\r\n.\r\n");
	cr_assert_eq(smtp_proto_step(p), SMTP_PROTO_STEP_END);
	TEST_PART(p, "S:250 2.0.0 Ok\r\n", "E:TXN_DONE 250");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_END);
	TEST_RUN(p, "E:READY");
	cr_assert_eq(smtp_proto_step(p), SMTP_PROTO_STEP_IDLE);
	smtp_proto_free(p);
}

Test(smtp_proto, a_refused_mail_or_data_names_its_step)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:550 5.7.1 not you\r\n", "E:TXN_DONE 550");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_MAIL);
	TEST_PART(p, "C:RSET\r\n", "S:250 Ok\r\n", "E:READY", "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:554 5.7.1 no\r\n",
	    "E:TXN_DONE 554");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_DATA);
	TEST_RUN(p, "C:RSET\r\n", "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, every_rcpt_refused_names_rcpt_as_the_step)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	test_txn = &test_txn2;
	TEST_PART(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<nobody@example.net>\r\n",
	    "S:550 5.7.1 no\r\n", "E:RCPT_STATUS 0 550",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:550 5.7.1 no\r\n",
	    "E:RCPT_STATUS 1 550", "E:TXN_DONE 550");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_RCPT);
	TEST_RUN(p, "C:RSET\r\n", "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, a_failure_names_the_step_it_happened_in)
{
	struct smtp_proto       *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	struct smtp_proto_params params = { TEST_AUTH_PARAMS(
	    SMTP_PROTO_TLS_IMPLICIT, SASL_MECH_PLAIN) };

	TEST_RUN(p, "S:554 5.7.1 no SMTP service here\r\n", "E:FAILED RESP 554",
	    "C:QUIT\r\n");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_GREETING);
	cr_assert_eq(smtp_proto_step(p), SMTP_PROTO_STEP_GREETING);
	smtp_proto_free(p);

	p = test_proto_new(SMTP_PROTO_TLS_NONE);
	TEST_RUN(p, TEST_HELLO, "!mail", "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok\r\n", "C:RCPT TO:<bob@example.net>\r\n",
	    "S:421 4.4.2 closing\r\n", "E:FAILED RESP 421");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_RCPT);
	smtp_proto_free(p);

	p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);
	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n", "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n", "E:NEED_TLS", "!tls_fail", "E:FAILED TLS 0");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_TLS);
	smtp_proto_free(p);

	p = test_proto_new(SMTP_PROTO_TLS_NONE);
	TEST_RUN(p, TEST_HELLO, "!eof", "E:FAILED CONN 0");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_IDLE);
	smtp_proto_free(p);

	p = test_proto_new_params(&params);
	TEST_RUN(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 AUTH PLAIN LOGIN\r\n",
	    "C:AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n",
	    "S:535 5.7.8 Authentication credentials invalid\r\n",
	    "E:FAILED AUTH 535", "C:QUIT\r\n");
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_AUTH);
	smtp_proto_free(p);
}

Test(smtp_proto, a_local_verdict_names_mail_as_the_step)
{
	static const struct smtp_proto_txn big = { .sender =
						       "alice@example.org",
		.rcpts = test_rcpts1,
		.n_rcpts = 1,
		.size = 5000 };
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	test_txn = &big;
	TEST_PART(p, "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 SIZE 1000\r\n", "E:READY", "!mail",
	    "E:TXN_DONE 552");
	cr_assert(test_last_ev.reply.local);
	cr_assert_eq(test_last_ev.step, SMTP_PROTO_STEP_MAIL);
	TEST_RUN(p, "E:READY");
	smtp_proto_free(p);
}
