/*
 * fuzz_smtp_proto.c - the input as everything a server says, fed to a
 * client session in varying chunk sizes.  The client writes all output
 * at once, sends a message whenever READY or right behind a final dot
 * when smtp_proto_can_send_mail() allows (two at most, then QUIT),
 * feeds the body on NEED_BODY and answers NEED_TLS with tls_done(1).
 *
 * Input: byte 0 = mode (bits 0-1: TLS none / implicit / starttls;
 * bit 2: script mode; bits 3-6: chunk size seed; bit 7: an extended
 * mode byte follows), [byte 1 = extended mode (bits 0-2: AUTH none,
 * auto, PLAIN, LOGIN, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER, auto without
 * a nonce; bit 3: pipelining; bit 4: peer on loopback; bit 5: SIZE=,
 * 8-bit body, SMTPUTF8 needed; bit 6: more recipients)], then the
 * server's bytes.  In script mode a NUL byte ends a server turn: it is
 * dropped and no chunk crosses it, so a scripted transcript (one reply
 * per turn) gets past the one-command-at-a-time rule and deep into the
 * session; without it chunks fall anywhere.  AUTH uses the RFC 7677
 * user, password and nonce, so a seed can walk a whole SCRAM exchange.
 *
 * Checked: AUTH never goes out in cleartext to a non-loopback peer, the
 * secret never appears in a FAILED (AUTH) text, events stop after
 * FAILED or CLOSED, EOF always ends the session, no more TXN_DONEs
 * than messages sent, send_mail() is accepted whenever
 * smtp_proto_can_send_mail() says so.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"
#include "smtp_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_proto_rcpts[] = {
	"bob@example.net",
	"carol@example.net",
	"dave@example.net",
	"erin@example.net",
	"frank@example.net",
};
#define FUZZ_PROTO_SECRET "pencil"

static const char fuzz_proto_body[] =
    "From: a@example.org\nSubject: fuzz\r\n\r\n.leading dot\rbare cr\n.";

struct fuzz_proto_state {
	int    messages;
	int    sent;     /* send_mail() accepted */
	int    txn_done; /* TXN_DONE events */
	int    ended;
	int    loopback;
	int    txn_flags; /* SIZE, 8-bit, SMTPUTF8 */
	size_t max_rcpts;
};

static void
fuzz_proto_drain(struct smtp_proto *p, struct fuzz_proto_state *st)
{
	struct smtp_proto_txn   txn = { .sender = "alice@example.org",
		  .rcpts = fuzz_proto_rcpts,
		  .n_rcpts = 1 };
	struct smtp_proto_event ev;
	const void             *out;
	size_t                  len;

	if (st->txn_flags) {
		txn.size = 4242;
		txn.body_8bit = 1;
		txn.needs_smtputf8 = 1;
	}
	for (;;) {
		smtp_proto_output(p, &out, &len);
		if (len > SMTP_PROTO_OUT_MAX)
			abort();
		if (len > 0 && !smtp_proto_tls_active(p) && !st->loopback &&
		    memmem(out, len, "AUTH ", 5) != NULL)
			abort(); /* credentials in cleartext */
		smtp_proto_consumed(p, len);
		if (!smtp_proto_next_event(p, &ev))
			break;
		if (strlen(ev.reply.text) >= sizeof(ev.reply.text) ||
		    strlen(ev.reply.enhanced) >= sizeof(ev.reply.enhanced))
			abort();
		if (st->ended)
			abort(); /* nothing after FAILED or CLOSED */
		switch (ev.type) {
		case SMTP_PROTO_EV_NEED_TLS:
			smtp_proto_tls_done(p, 1);
			break;
		case SMTP_PROTO_EV_READY:
			/* One recipient, then two (or all). */
			txn.n_rcpts = st->messages & 1 ? st->max_rcpts : 1;
			if (st->messages++ < 2) {
				/* Refused only when a later event (FAILED)
				 * is already queued. */
				if (smtp_proto_send_mail(p, &txn) == 0)
					st->sent++;
				else if (strcmp(smtp_proto_state_name(p),
					     "failed") != 0)
					abort();
			} else
				smtp_proto_quit(p);
			break;
		case SMTP_PROTO_EV_NEED_BODY:
			smtp_proto_body(p, fuzz_proto_body, 20, 0);
			smtp_proto_body(p, fuzz_proto_body + 20,
			    sizeof(fuzz_proto_body) - 1 - 20, 1);
			/* The next message behind the dot (RFC 2920 3.1). */
			if (st->messages < 2 && smtp_proto_can_send_mail(p)) {
				txn.n_rcpts = st->messages & 1 ? st->max_rcpts :
								 1;
				st->messages++;
				if (smtp_proto_send_mail(p, &txn) != 0)
					abort();
				st->sent++;
			}
			break;
		case SMTP_PROTO_EV_RCPT_STATUS:
			if (ev.rcpt_index >= st->max_rcpts)
				abort();
			break;
		case SMTP_PROTO_EV_TXN_DONE:
			if (++st->txn_done > st->sent)
				abort();
			break;
		case SMTP_PROTO_EV_FAILED:
			if (ev.fail == SMTP_PROTO_FAIL_NONE)
				abort();
			if (ev.fail == SMTP_PROTO_FAIL_AUTH &&
			    strstr(ev.reply.text, FUZZ_PROTO_SECRET) != NULL)
				abort();
			st->ended = 1;
			break;
		case SMTP_PROTO_EV_CLOSED:
			st->ended = 1;
			break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_proto_params    params = { .ehlo_name = "client.example",
		   .tls = SMTP_PROTO_TLS_NONE };
	static const enum sasl_mech auths[] = {
		SASL_MECH_NONE,
		SASL_MECH_AUTO,
		SASL_MECH_PLAIN,
		SASL_MECH_LOGIN,
		SASL_MECH_SCRAM_SHA_256,
		SASL_MECH_XOAUTH2,
		SASL_MECH_OAUTHBEARER,
		SASL_MECH_AUTO,
	};
	struct fuzz_proto_state st = { 0, 0, 0, 0, 0, 0, 2 };
	struct smtp_proto      *p;
	const uint8_t          *nul;
	size_t                  off = 1, step;
	unsigned                mode, ext = 0, seed;

	if (size == 0)
		return 0;
	mode = data[0];
	if ((mode & 0x80) && size > 1) {
		ext = data[1];
		off = 2;
	}
	params.tls = (mode & 3) == 0 ? SMTP_PROTO_TLS_NONE :
	    (mode & 3) == 1          ? SMTP_PROTO_TLS_IMPLICIT :
				       SMTP_PROTO_TLS_STARTTLS;
	params.auth = auths[ext & 7];
	params.auth_user = "user";
	params.auth_secret = FUZZ_PROTO_SECRET;
	params.auth_nonce = (ext & 7) == 7 ? NULL : "rOprNGfwEbeRWgbNEkqO";
	params.pipelining = (ext & 8) != 0;
	params.peer_is_loopback = st.loopback = (ext & 16) != 0;
	st.txn_flags = (ext & 32) != 0;
	if (ext & 64)
		st.max_rcpts = sizeof(fuzz_proto_rcpts) /
		    sizeof(fuzz_proto_rcpts[0]);
	seed = (mode >> 3) & 15;
	p = smtp_proto_new(&params);
	fuzz_proto_drain(p, &st);
	while (off < size) {
		seed = seed * 1103515245u + 12345u;
		step = 1 + (seed >> 16) % 67;
		if (step > size - off)
			step = size - off;
		if ((mode & 4) &&
		    (nul = memchr(data + off, '\0', step)) != NULL) {
			/* End of a turn: feed up to it, skip it. */
			step = (size_t)(nul - (data + off));
			smtp_proto_feed(p, data + off, step);
			off += step + 1;
		} else {
			smtp_proto_feed(p, data + off, step);
			off += step;
		}
		fuzz_proto_drain(p, &st);
		(void)smtp_proto_state_name(p);
		(void)smtp_proto_caps(p);
	}
	smtp_proto_eof(p);
	fuzz_proto_drain(p, &st);
	if (!st.ended)
		abort(); /* EOF always ends the session */
	smtp_proto_free(p);
	return 0;
}
