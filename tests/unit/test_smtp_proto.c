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

#include "smtp_proto.h"
#include "smtp_wire.h"

static const char *const test_rcpts1[] = { "bob@example.net" };
static const struct smtp_proto_txn test_txn1 = {
	    .sender = "alice@example.org", .rcpts = test_rcpts1, .n_rcpts = 1 };
static const char *const test_rcpts2[] = {
	"nobody@example.net", "bob@example.net"
};
static const struct smtp_proto_txn test_txn2 = {
	    .sender = "alice@example.org", .rcpts = test_rcpts2, .n_rcpts = 2 };
static const struct smtp_proto_txn *test_txn = &test_txn1;

/* The last event popped by an "E:" step, for extra checks. */
static struct smtp_proto_event test_last_ev;

static struct smtp_proto *
test_proto_new(enum smtp_proto_tls tls)
{
	struct smtp_proto_params params = {
		.ehlo_name = "client.example", .tls = tls };

	test_txn = &test_txn1;
	return smtp_proto_new(&params);
}

static void
test_proto_event_str(const struct smtp_proto_event *ev, char *s, size_t n)
{
	static const char *const fails[] = {
		"NONE", "CONN", "PROTO", "TLS", "RESP"
	};

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
		snprintf(s, n, "FAILED %s %d", fails[ev->fail],
		    ev->reply.code);
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
	size_t len;

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
	char got[128];
	size_t i;

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

#define TEST_STEPS(p, final, ...) do {					\
	static const char *const test_steps_[] = { __VA_ARGS__ };	\
	test_proto_run((p), test_steps_,				\
	    sizeof(test_steps_) / sizeof(test_steps_[0]), (final));	\
} while (0)
/* A whole transcript (nothing may be left over) or a part of one. */
#define TEST_RUN(p, ...)	TEST_STEPS(p, 1, __VA_ARGS__)
#define TEST_PART(p, ...)	TEST_STEPS(p, 0, __VA_ARGS__)

/* Greeting and EHLO of a plain session up to READY. */
#define TEST_HELLO							\
	"S:220 mx.example.net ESMTP\r\n",				\
	"C:EHLO client.example\r\n",					\
	"S:250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n",	\
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
	TEST_RUN(p,
	    "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 2.1.0 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n",
	    "S:250 2.1.5 Ok\r\n",
	    "E:RCPT_STATUS 0 250",
	    "C:DATA\r\n",
	    "S:354 End data with <CR><LF>.<CR><LF>\r\n",
	    "E:NEED_BODY",
	    "!body:Subject: hi\n\n.dot\r",
	    "!last:\nbye",
	    "C:Subject: hi\r\n\r\n..dot\r\nbye\r\n.\r\n",
	    "S:250 2.0.0 Ok: queued as 4XyZ\r\n",
	    "E:TXN_DONE 250",
	    "E:READY",
	    "!quit",
	    "C:QUIT\r\n",
	    "S:221 2.0.0 Bye\r\n",
	    "E:CLOSED");
	cr_assert_str_eq(smtp_proto_state_name(p), "closed");
	smtp_proto_free(p);
}

Test(smtp_proto, txn_done_carries_the_final_reply)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_PART(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY", "!last:x", "C:x\r\n.\r\n",
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
	char big[2000];

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

	TEST_RUN(p, TEST_HELLO,
	    "!mail", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY", "!last:one\n", "C:one\r\n.\r\n", "S:250 Ok\r\n",
	    "E:TXN_DONE 250", "E:READY",
	    "!mail", "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY", "!last:.two", "C:..two\r\n.\r\n",
	    "S:250 Ok\r\n", "E:TXN_DONE 250", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, null_sender_is_sent_as_empty_path)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	const struct smtp_proto_txn bounce = {
	    .sender = "", .rcpts = test_rcpts1, .n_rcpts = 1 };

	TEST_RUN(p, TEST_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &bounce), 0);
	TEST_RUN(p, "C:MAIL FROM:<>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, implicit_tls_goes_ready_without_starttls)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_IMPLICIT);

	cr_assert(smtp_proto_tls_active(p));
	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n",
	    "E:READY");
	cr_assert(smtp_proto_caps(p)->auth);
	smtp_proto_free(p);
}

Test(smtp_proto, starttls_upgrades_and_only_second_ehlo_caps_count)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-STARTTLS\r\n250-PIPELINING\r\n"
	    "250 AUTH PLAIN\r\n",
	    "C:STARTTLS\r\n",
	    "S:220 2.0.0 Ready to start TLS\r\n",
	    "E:NEED_TLS");
	cr_assert_not(smtp_proto_tls_active(p));
	cr_assert_str_eq(smtp_proto_state_name(p), "tls-handshake");
	TEST_PART(p, "!tls_ok");
	cr_assert(smtp_proto_tls_active(p));
	cr_assert_not(smtp_proto_caps(p)->auth);
	cr_assert_not(smtp_proto_caps(p)->pipelining);
	TEST_RUN(p,
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 AUTH LOGIN\r\n",
	    "E:READY");
	cr_assert(smtp_proto_caps(p)->auth);
	cr_assert_eq(smtp_proto_caps(p)->auth_mechs, SMTP_WIRE_AUTH_LOGIN);
	cr_assert_not(smtp_proto_caps(p)->pipelining);
	cr_assert_not(smtp_proto_caps(p)->starttls);
	smtp_proto_free(p);
}

Test(smtp_proto, starttls_not_offered_fails_tls_and_sends_only_quit)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE\r\n",
	    "E:FAILED TLS 0",
	    "C:QUIT\r\n");
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

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n",
	    "C:STARTTLS\r\n",
	    "S:454 4.7.0 TLS not available due to temporary reason\r\n",
	    "E:FAILED TLS 454",
	    "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "4.7.0");
	smtp_proto_free(p);
}

Test(smtp_proto, bytes_after_starttls_220_in_same_feed_fail_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n",
	    "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n250-mx.example.net\r\n250 AUTH PLAIN\r\n",
	    "E:FAILED PROTO 0",
	    "!tls_ok");
	cr_assert_not(smtp_proto_tls_active(p));
	smtp_proto_free(p);
}

Test(smtp_proto, bytes_after_starttls_220_split_mid_line_fail_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n",
	    "C:STARTTLS\r\n",
	    "S:220 go ahead\r",
	    "S:\n2",
	    "E:FAILED PROTO 0");
	smtp_proto_free(p);
}

Test(smtp_proto, bytes_before_tls_done_fail_proto)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n",
	    "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n",
	    "E:NEED_TLS",
	    "S:250 injected\r\n",
	    "E:FAILED PROTO 0",
	    "!tls_ok");
	smtp_proto_free(p);
}

Test(smtp_proto, tls_handshake_failure_fails_tls_without_quit)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 mx.example.net ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx.example.net\r\n250 STARTTLS\r\n",
	    "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n",
	    "E:NEED_TLS",
	    "!tls_fail",
	    "E:FAILED TLS 0");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_falls_back_to_helo)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p,
	    "S:220 old.example.net SMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:502 5.5.2 Error: command not recognized\r\n",
	    "C:HELO client.example\r\n",
	    "S:250 old.example.net\r\n",
	    "E:READY");
	cr_assert_not(smtp_proto_caps(p)->pipelining);
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_with_implicit_tls_falls_back_to_helo)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_IMPLICIT);

	TEST_RUN(p,
	    "S:220 old.example.net SMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:500 what\r\n",
	    "C:HELO client.example\r\n",
	    "S:250 old.example.net\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_rejected_under_starttls_fails_tls)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_STARTTLS);

	TEST_RUN(p,
	    "S:220 old.example.net SMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:502 5.5.2 Error: command not recognized\r\n",
	    "E:FAILED TLS 502",
	    "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, ehlo_temporary_failure_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p,
	    "S:220 mx ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:450 try later\r\n",
	    "E:FAILED RESP 450",
	    "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, helo_refused_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p,
	    "S:220 mx ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:500 what\r\n",
	    "C:HELO client.example\r\n",
	    "S:550 go away\r\n",
	    "E:FAILED RESP 550",
	    "C:QUIT\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, greeting_554_fails_resp_and_quits)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p,
	    "S:554 5.7.1 No SMTP service here\r\n",
	    "E:FAILED RESP 554",
	    "C:QUIT\r\n");
	cr_assert_str_eq(test_last_ev.reply.text, "5.7.1 No SMTP service here");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.7.1");
	smtp_proto_free(p);
}

Test(smtp_proto, rcpt_partially_rejected_still_sends_data)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	test_txn = &test_txn2;
	TEST_PART(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 2.1.0 Ok\r\n",
	    "C:RCPT TO:<nobody@example.net>\r\n",
	    "S:550 5.1.1 <nobody@example.net>: Recipient address rejected\r\n",
	    "E:RCPT_STATUS 0 550");
	cr_assert_str_eq(test_last_ev.reply.enhanced, "5.1.1");
	TEST_RUN(p,
	    "C:RCPT TO:<bob@example.net>\r\n",
	    "S:250 2.1.5 Ok\r\n",
	    "E:RCPT_STATUS 1 250",
	    "C:DATA\r\n",
	    "S:354 go\r\n",
	    "E:NEED_BODY",
	    "!last:hello\r\n",
	    "C:hello\r\n.\r\n",
	    "S:250 2.0.0 Ok\r\n",
	    "E:TXN_DONE 250",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, all_rcpts_rejected_sends_rset_and_reports_last_failure)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	test_txn = &test_txn2;
	TEST_PART(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 2.1.0 Ok\r\n",
	    "C:RCPT TO:<nobody@example.net>\r\n",
	    "S:550 5.1.1 no such user\r\n",
	    "E:RCPT_STATUS 0 550",
	    "C:RCPT TO:<bob@example.net>\r\n",
	    "S:452 4.2.2 mailbox full\r\n",
	    "E:RCPT_STATUS 1 452",
	    "E:TXN_DONE 452");
	cr_assert_str_eq(test_last_ev.reply.text, "4.2.2 mailbox full");
	TEST_RUN(p,
	    "C:RSET\r\n",
	    "S:250 2.0.0 Ok\r\n",
	    "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, mail_refused_ends_txn_then_rset_and_ready)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_PART(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:451 4.3.0 try again later\r\n",
	    "E:TXN_DONE 451");
	cr_assert_str_eq(test_last_ev.reply.text, "4.3.0 try again later");
	TEST_RUN(p,
	    "C:RSET\r\n",
	    "S:250 Ok\r\n",
	    "E:READY",
	    "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n");
	smtp_proto_free(p);
}

Test(smtp_proto, data_refused_ends_txn_then_rset)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n",
	    "S:554 5.5.1 no valid recipients\r\n",
	    "E:TXN_DONE 554",
	    "C:RSET\r\n", "S:250 Ok\r\n", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, message_refused_after_data_ends_txn_and_is_ready)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY", "!last:spam", "C:spam\r\n.\r\n",
	    "S:550 5.7.1 looks like spam\r\n",
	    "E:TXN_DONE 550", "E:READY");
	smtp_proto_free(p);
}

Test(smtp_proto, eof_mid_session_fails_conn)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n",
	    "S:250 Ok",
	    "!eof",
	    "E:FAILED CONN 0",
	    "S:\r\n",
	    "!eof");
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

	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY", "!last:x", "C:x\r\n.\r\n",
	    "!quit",
	    "S:250 Ok\r\n",
	    "E:TXN_DONE 250",
	    "C:QUIT\r\n",
	    "S:221 Bye\r\n",
	    "E:CLOSED");
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

	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n",
	    "S:421 4.4.2 timeout, closing\r\n",
	    "E:FAILED RESP 421",
	    "!eof");
	smtp_proto_free(p);
}

Test(smtp_proto, unsolicited_421_while_ready_fails_resp)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);

	TEST_RUN(p, TEST_HELLO, "S:421 idle timeout\r\n",
	    "E:FAILED RESP 421");
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

	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY", "!body:partial", "C:partial",
	    "S:250 early\r\n", "E:FAILED PROTO 250", "!last:more");
	smtp_proto_free(p);
}

Test(smtp_proto, send_mail_rejects_misuse_and_unsafe_addresses)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	const char *const evil[] = { "bob@x>\r\nRCPT TO:<eve@y" };
	const char *const spaced[] = { "bob @x" };
	const struct smtp_proto_txn bad1 = {
	    .sender = "a@x", .rcpts = evil, .n_rcpts = 1 };
	const struct smtp_proto_txn bad2 = {
	    .sender = "a@x\n", .rcpts = test_rcpts1, .n_rcpts = 1 };
	const struct smtp_proto_txn bad3 = {
	    .sender = "a@x", .rcpts = test_rcpts1, .n_rcpts = 0 };
	const struct smtp_proto_txn bad4 = {
	    .sender = "a@x", .rcpts = spaced, .n_rcpts = 1 };

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
	static char chunk[10000];
	const void *data;
	size_t i, len;

	memset(chunk, 'a', sizeof(chunk));
	for (i = 99; i < sizeof(chunk); i += 100)
		chunk[i] = '\n';
	TEST_RUN(p, TEST_HELLO, "!mail",
	    "C:MAIL FROM:<alice@example.org>\r\n", "S:250 Ok\r\n",
	    "C:RCPT TO:<bob@example.net>\r\n", "S:250 Ok\r\n",
	    "E:RCPT_STATUS 0 250", "C:DATA\r\n", "S:354 go\r\n",
	    "E:NEED_BODY");
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
	TEST_RUN(p,
	    "S:220 mx ESMTP\r\n",
	    "C:EHLO client.example\r\n",
	    "S:250-mx\r\n250 STARTTLS\r\n",
	    "C:STARTTLS\r\n",
	    "S:220 go ahead\r\n",
	    "E:NEED_TLS",
	    "!tls_ok",
	    "C:EHLO client.example\r\n",
	    "S:502 no EHLO today\r\n",
	    "C:HELO client.example\r\n",
	    "S:250 mx\r\n",
	    "E:READY");
	cr_assert(smtp_proto_tls_active(p));
	smtp_proto_free(p);
}

Test(smtp_proto, event_queue_is_bounded_when_the_driver_never_pops)
{
	struct smtp_proto *p = test_proto_new(SMTP_PROTO_TLS_NONE);
	const char *rcpts[SMTP_PROTO_EVENTS_MAX + 8];
	struct smtp_proto_txn txn = {
	    .sender = "a@example.org", .rcpts = rcpts, .n_rcpts = 0 };
	struct smtp_proto_event ev;
	const void *data;
	size_t i, len, n = 0;

	for (i = 0; i < SMTP_PROTO_EVENTS_MAX + 8; i++)
		rcpts[i] = "r@example.net";
	txn.n_rcpts = SMTP_PROTO_EVENTS_MAX + 8;
	TEST_RUN(p, TEST_HELLO);
	cr_assert_eq(smtp_proto_send_mail(p, &txn), 0);
	smtp_proto_feed(p, "250 Ok\r\n", 8);	/* too early: not written */
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
