/*
 * smtp_proto.c - the outbound SMTP client state machine, without I/O.
 *
 * How it works.  The session is an explicit state (enum + name table, as
 * OpenSMTPD's smtp_client.c).  smtp_proto_enter() is the one switch run on
 * entering a state: it writes the state's command into the output buffer
 * or queues the state's event.  smtp_proto_on_reply() is the one switch
 * run for each complete server reply: it picks the next state.  Inputs
 * (feed, eof, tls_done, send_mail, body, quit) only move between states
 * through those two functions.
 *
 * One command is outstanding at a time.  cmd_end is the output offset
 * where the last command (or the body's terminating ".") ends and
 * out_done how much the driver has written: a reply that arrives before
 * out_done reaches cmd_end answers nothing we sent, which is a protocol
 * error (and keeps the event queue bounded: every reply needs a write).
 *
 * STARTTLS (guarantee 2): the 220 reply must be the last byte of its feed,
 * and nothing may be fed until tls_done(); otherwise the session fails
 * with FAIL_PROTO, as those bytes were sent in cleartext and could be read
 * as post-TLS replies.  Capabilities are cleared on every EHLO and after
 * the handshake, so only the post-TLS EHLO's count.
 *
 * FAILED is terminal.  Entering it queues the FAILED event and, where
 * still safe (the server refused something, and the stream is in sync and
 * not mid-handshake), a QUIT with no reply awaited.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "smtp_proto.h"
#include "smtp_wire.h"
#include "util.h"

enum smtp_proto_state {
	SMTP_PROTO_S_GREETING,	/* waiting for 220 */
	SMTP_PROTO_S_EHLO,
	SMTP_PROTO_S_HELO,
	SMTP_PROTO_S_STARTTLS,
	SMTP_PROTO_S_TLS,	/* NEED_TLS queued, waiting for tls_done */
	SMTP_PROTO_S_READY,
	SMTP_PROTO_S_MAIL,
	SMTP_PROTO_S_RCPT,
	SMTP_PROTO_S_DATA,
	SMTP_PROTO_S_BODY,	/* NEED_BODY queued, taking body() */
	SMTP_PROTO_S_EOM,	/* "." written, waiting for the verdict */
	SMTP_PROTO_S_RSET,
	SMTP_PROTO_S_QUIT,
	SMTP_PROTO_S_CLOSED,
	SMTP_PROTO_S_FAILED,
};

static const char *const smtp_proto_state_names[] = {
	[SMTP_PROTO_S_GREETING] = "greeting",
	[SMTP_PROTO_S_EHLO] = "ehlo",
	[SMTP_PROTO_S_HELO] = "helo",
	[SMTP_PROTO_S_STARTTLS] = "starttls",
	[SMTP_PROTO_S_TLS] = "tls-handshake",
	[SMTP_PROTO_S_READY] = "ready",
	[SMTP_PROTO_S_MAIL] = "mail",
	[SMTP_PROTO_S_RCPT] = "rcpt",
	[SMTP_PROTO_S_DATA] = "data",
	[SMTP_PROTO_S_BODY] = "body",
	[SMTP_PROTO_S_EOM] = "eom",
	[SMTP_PROTO_S_RSET] = "rset",
	[SMTP_PROTO_S_QUIT] = "quit",
	[SMTP_PROTO_S_CLOSED] = "closed",
	[SMTP_PROTO_S_FAILED] = "failed",
};

/* Longest address accepted in MAIL FROM / RCPT TO. */
#define SMTP_PROTO_ADDR_MAX	900
/* Body bytes encoded per step (stack buffer of the encoded size). */
#define SMTP_PROTO_ENC_STEP	4096

struct smtp_proto {
	enum smtp_proto_state	 state;
	char			*ehlo_name;
	enum smtp_proto_tls	 tls;
	int			 peer_is_loopback;
	int			 tls_active;
	int			 quit_wanted;

	struct smtp_wire_parser	 parser;
	struct smtp_wire_caps	 caps;
	size_t			 feed_rest;	/* unparsed bytes of the feed
						 * after the current reply */

	struct buf		 out;
	unsigned long long	 out_total;	/* bytes ever produced */
	unsigned long long	 out_done;	/* bytes ever consumed */
	unsigned long long	 cmd_end;	/* end of the last command */

	/* The transaction in progress. */
	char			*sender;
	char			**rcpts;
	size_t			 n_rcpts;
	size_t			 rcpt_i;
	size_t			 rcpt_ok;
	struct smtp_proto_reply	 rcpt_fail;	/* last refused RCPT */
	struct smtp_wire_enc	 enc;

	/* What entering FAILED reports. */
	enum smtp_proto_fail	 fail;
	struct smtp_proto_reply	 fail_reply;
	int			 fail_quit;

	struct smtp_proto_event	 ev[SMTP_PROTO_EVENTS_MAX];
	size_t			 ev_head;
	size_t			 ev_count;
};

static void	smtp_proto_enter(struct smtp_proto *, enum smtp_proto_state);

/* Server reply -> event reply: lines joined by " / ", truncated. */
static void
smtp_proto_reply_set(struct smtp_proto_reply *dst,
    const struct smtp_wire_reply *r)
{
	size_t i, o = 0, cap = sizeof(dst->text) - 1;

	memset(dst, 0, sizeof(*dst));
	dst->code = r->code;
	memcpy(dst->enhanced, r->enhanced, sizeof(dst->enhanced));
	dst->enhanced[sizeof(dst->enhanced) - 1] = '\0';
	for (i = 0; i < r->text_len && o < cap; i++) {
		if (r->text[i] != '\n') {
			dst->text[o++] = r->text[i];
			continue;
		}
		if (cap - o < 3)
			break;
		memcpy(dst->text + o, " / ", 3);
		o += 3;
	}
	dst->text[o] = '\0';
}

/* A reply of our own making (no server reply caused the event). */
static void
smtp_proto_reply_note(struct smtp_proto_reply *dst, const char *text)
{
	memset(dst, 0, sizeof(*dst));
	sq_printable(dst->text, sizeof(dst->text), text, strlen(text));
}

static void
smtp_proto_push(struct smtp_proto *p, enum smtp_proto_event_type type,
    size_t rcpt_index, const struct smtp_proto_reply *reply)
{
	struct smtp_proto_event *ev;

	if (p->ev_count == SMTP_PROTO_EVENTS_MAX) {
		/* The driver does not pop events: end the session, with the
		 * newest slot saying why. */
		ev = &p->ev[(p->ev_head + p->ev_count - 1) %
		    SMTP_PROTO_EVENTS_MAX];
		memset(ev, 0, sizeof(*ev));
		ev->type = SMTP_PROTO_EV_FAILED;
		ev->fail = SMTP_PROTO_FAIL_PROTO;
		smtp_proto_reply_note(&ev->reply, "event queue overflow");
		p->state = SMTP_PROTO_S_FAILED;
		return;
	}
	ev = &p->ev[(p->ev_head + p->ev_count) % SMTP_PROTO_EVENTS_MAX];
	p->ev_count++;
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->rcpt_index = rcpt_index;
	if (type == SMTP_PROTO_EV_FAILED)
		ev->fail = p->fail;
	if (reply != NULL)
		ev->reply = *reply;
}

static void
smtp_proto_append(struct smtp_proto *p, const char *data, size_t len)
{
	if (buf_append(&p->out, data, len) != 0)
		log_fatalx("smtp_proto: output buffer overflow (%zu pending):"
		    " the driver does not write the output", p->out.len);
	p->out_total += len;
}

static void
smtp_proto_cmd(struct smtp_proto *p, const char *fmt, ...)
    SQ_PRINTF(2, 3);

/* Queue one command line (CRLF added) and await its reply. */
static void
smtp_proto_cmd(struct smtp_proto *p, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		log_fatalx("smtp_proto: command too long");
	memcpy(line + n, "\r\n", 2);
	smtp_proto_append(p, line, (size_t)n + 2);
	p->cmd_end = p->out_total;
}

static void
smtp_proto_txn_clear(struct smtp_proto *p)
{
	size_t i;

	free(p->sender);
	for (i = 0; i < p->n_rcpts; i++)
		free(p->rcpts[i]);
	free(p->rcpts);
	p->sender = NULL;
	p->rcpts = NULL;
	p->n_rcpts = p->rcpt_i = p->rcpt_ok = 0;
}

static void
smtp_proto_fail(struct smtp_proto *p, enum smtp_proto_fail fail,
    const struct smtp_proto_reply *reply, int quit)
{
	p->fail = fail;
	p->fail_reply = *reply;
	p->fail_quit = quit;
	smtp_proto_enter(p, SMTP_PROTO_S_FAILED);
}

static void
smtp_proto_fail_note(struct smtp_proto *p, enum smtp_proto_fail fail,
    const char *text, int quit)
{
	struct smtp_proto_reply r;

	smtp_proto_reply_note(&r, text);
	smtp_proto_fail(p, fail, &r, quit);
}

/* States whose entry writes a command (or offers the next transaction):
 * a pending quit() takes their place.  Not BODY (the server is reading
 * message text) and not TLS (it expects a handshake). */
static int
smtp_proto_quit_point(enum smtp_proto_state s)
{
	switch (s) {
	case SMTP_PROTO_S_EHLO:
	case SMTP_PROTO_S_HELO:
	case SMTP_PROTO_S_STARTTLS:
	case SMTP_PROTO_S_READY:
	case SMTP_PROTO_S_MAIL:
	case SMTP_PROTO_S_RCPT:
	case SMTP_PROTO_S_DATA:
	case SMTP_PROTO_S_RSET:
		return 1;
	default:
		return 0;
	}
}

static void
smtp_proto_enter(struct smtp_proto *p, enum smtp_proto_state s)
{
	/* FAILED is terminal (smtp_proto_push() may have just set it). */
	if (p->state == SMTP_PROTO_S_FAILED)
		return;
	if (p->quit_wanted && smtp_proto_quit_point(s))
		s = SMTP_PROTO_S_QUIT;
	p->state = s;
	switch (s) {
	case SMTP_PROTO_S_GREETING:
	case SMTP_PROTO_S_EOM:
		break;
	case SMTP_PROTO_S_EHLO:
		memset(&p->caps, 0, sizeof(p->caps));
		smtp_proto_cmd(p, "EHLO %s", p->ehlo_name);
		break;
	case SMTP_PROTO_S_HELO:
		memset(&p->caps, 0, sizeof(p->caps));
		smtp_proto_cmd(p, "HELO %s", p->ehlo_name);
		break;
	case SMTP_PROTO_S_STARTTLS:
		smtp_proto_cmd(p, "STARTTLS");
		break;
	case SMTP_PROTO_S_TLS:
		smtp_proto_push(p, SMTP_PROTO_EV_NEED_TLS, 0, NULL);
		break;
	case SMTP_PROTO_S_READY:
		smtp_proto_txn_clear(p);
		smtp_proto_push(p, SMTP_PROTO_EV_READY, 0, NULL);
		break;
	case SMTP_PROTO_S_MAIL:
		smtp_proto_cmd(p, "MAIL FROM:<%s>", p->sender);
		break;
	case SMTP_PROTO_S_RCPT:
		smtp_proto_cmd(p, "RCPT TO:<%s>", p->rcpts[p->rcpt_i]);
		break;
	case SMTP_PROTO_S_DATA:
		smtp_proto_cmd(p, "DATA");
		break;
	case SMTP_PROTO_S_BODY:
		smtp_wire_enc_init(&p->enc);
		smtp_proto_push(p, SMTP_PROTO_EV_NEED_BODY, 0, NULL);
		break;
	case SMTP_PROTO_S_RSET:
		smtp_proto_cmd(p, "RSET");
		break;
	case SMTP_PROTO_S_QUIT:
		smtp_proto_txn_clear(p);
		smtp_proto_cmd(p, "QUIT");
		break;
	case SMTP_PROTO_S_CLOSED:
		smtp_proto_txn_clear(p);
		smtp_proto_push(p, SMTP_PROTO_EV_CLOSED, 0, NULL);
		break;
	case SMTP_PROTO_S_FAILED:
		smtp_proto_txn_clear(p);
		smtp_proto_push(p, SMTP_PROTO_EV_FAILED, 0, &p->fail_reply);
		if (p->fail_quit)
			smtp_proto_append(p, "QUIT\r\n", 6);
		break;
	}
}

/* The transaction ended with reply r; RSET (or go READY) follows. */
static void
smtp_proto_txn_done(struct smtp_proto *p, const struct smtp_proto_reply *r,
    enum smtp_proto_state next)
{
	smtp_proto_push(p, SMTP_PROTO_EV_TXN_DONE, 0, r);
	smtp_proto_enter(p, next);
}

/* States in which a server reply answers something we sent. */
static int
smtp_proto_awaits_reply(enum smtp_proto_state s)
{
	switch (s) {
	case SMTP_PROTO_S_GREETING:
	case SMTP_PROTO_S_EHLO:
	case SMTP_PROTO_S_HELO:
	case SMTP_PROTO_S_STARTTLS:
	case SMTP_PROTO_S_MAIL:
	case SMTP_PROTO_S_RCPT:
	case SMTP_PROTO_S_DATA:
	case SMTP_PROTO_S_EOM:
	case SMTP_PROTO_S_RSET:
	case SMTP_PROTO_S_QUIT:
		return 1;
	default:
		return 0;
	}
}

static void
smtp_proto_on_reply(struct smtp_proto *p, const struct smtp_wire_reply *wr)
{
	struct smtp_proto_reply r;
	int cls = wr->code / 100;

	smtp_proto_reply_set(&r, wr);
	if (wr->code == 421 && p->state != SMTP_PROTO_S_QUIT) {
		smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 0);
		return;
	}
	if (!smtp_proto_awaits_reply(p->state) || p->out_done < p->cmd_end) {
		smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		return;
	}
	switch (p->state) {
	case SMTP_PROTO_S_GREETING:
		if (wr->code == 220)
			smtp_proto_enter(p, SMTP_PROTO_S_EHLO);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 1);
		break;
	case SMTP_PROTO_S_EHLO:
		if (cls == 2) {
			smtp_wire_caps_parse(&p->caps, wr->text, wr->text_len);
			if (p->tls != SMTP_PROTO_TLS_STARTTLS || p->tls_active)
				smtp_proto_enter(p, SMTP_PROTO_S_READY);
			else if (p->caps.starttls)
				smtp_proto_enter(p, SMTP_PROTO_S_STARTTLS);
			else
				smtp_proto_fail_note(p, SMTP_PROTO_FAIL_TLS,
				    "server does not offer STARTTLS", 1);
		} else if (cls == 5 && (p->tls != SMTP_PROTO_TLS_STARTTLS ||
		    p->tls_active))
			smtp_proto_enter(p, SMTP_PROTO_S_HELO);
		else if (cls == 5)
			/* HELO cannot offer STARTTLS. */
			smtp_proto_fail(p, SMTP_PROTO_FAIL_TLS, &r, 1);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 1);
		break;
	case SMTP_PROTO_S_HELO:
		if (cls == 2)
			smtp_proto_enter(p, SMTP_PROTO_S_READY);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 1);
		break;
	case SMTP_PROTO_S_STARTTLS:
		if (wr->code != 220)
			smtp_proto_fail(p, SMTP_PROTO_FAIL_TLS, &r, 1);
		else if (p->feed_rest > 0)
			smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO,
			    "bytes after the 220 reply to STARTTLS"
			    " (injection attempt)", 0);
		else
			smtp_proto_enter(p, SMTP_PROTO_S_TLS);
		break;
	case SMTP_PROTO_S_MAIL:
		if (cls == 2)
			smtp_proto_enter(p, SMTP_PROTO_S_RCPT);
		else if (cls == 4 || cls == 5)
			smtp_proto_txn_done(p, &r, SMTP_PROTO_S_RSET);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		break;
	case SMTP_PROTO_S_RCPT:
		smtp_proto_push(p, SMTP_PROTO_EV_RCPT_STATUS, p->rcpt_i, &r);
		if (cls == 2)
			p->rcpt_ok++;
		else
			p->rcpt_fail = r;
		if (++p->rcpt_i < p->n_rcpts)
			smtp_proto_enter(p, SMTP_PROTO_S_RCPT);
		else if (p->rcpt_ok > 0)
			smtp_proto_enter(p, SMTP_PROTO_S_DATA);
		else
			smtp_proto_txn_done(p, &p->rcpt_fail,
			    SMTP_PROTO_S_RSET);
		break;
	case SMTP_PROTO_S_DATA:
		if (wr->code == 354)
			smtp_proto_enter(p, SMTP_PROTO_S_BODY);
		else if (cls == 4 || cls == 5)
			smtp_proto_txn_done(p, &r, SMTP_PROTO_S_RSET);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		break;
	case SMTP_PROTO_S_EOM:
		if (cls == 2 || cls == 4 || cls == 5)
			smtp_proto_txn_done(p, &r, SMTP_PROTO_S_READY);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		break;
	case SMTP_PROTO_S_RSET:
		if (cls == 2)
			smtp_proto_enter(p, SMTP_PROTO_S_READY);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 1);
		break;
	case SMTP_PROTO_S_QUIT:
		smtp_proto_enter(p, SMTP_PROTO_S_CLOSED);
		break;
	default:
		/* Excluded by smtp_proto_awaits_reply(). */
		break;
	}
}

struct smtp_proto *
smtp_proto_new(const struct smtp_proto_params *params)
{
	struct smtp_proto *p;

	p = xcalloc(1, sizeof(*p));
	p->ehlo_name = xstrdup(params->ehlo_name != NULL ?
	    params->ehlo_name : "localhost");
	p->tls = params->tls;
	p->peer_is_loopback = params->peer_is_loopback;
	p->tls_active = params->tls == SMTP_PROTO_TLS_IMPLICIT;
	smtp_wire_parser_init(&p->parser);
	buf_init(&p->out, SMTP_PROTO_OUT_MAX);
	smtp_wire_enc_init(&p->enc);
	smtp_proto_enter(p, SMTP_PROTO_S_GREETING);
	return p;
}

void
smtp_proto_free(struct smtp_proto *p)
{
	if (p == NULL)
		return;
	smtp_proto_txn_clear(p);
	smtp_wire_parser_fini(&p->parser);
	buf_fini(&p->out);
	free(p->ehlo_name);
	free(p);
}

static int
smtp_proto_done(const struct smtp_proto *p)
{
	return p->state == SMTP_PROTO_S_FAILED ||
	    p->state == SMTP_PROTO_S_CLOSED;
}

int
smtp_proto_feed(struct smtp_proto *p, const void *data, size_t len)
{
	const char *d = data;
	struct smtp_wire_reply r;
	struct sq_err err;
	size_t off = 0, used;
	int rc;

	if (smtp_proto_done(p) || len == 0)
		return 0;
	if (p->state == SMTP_PROTO_S_TLS) {
		smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO,
		    "bytes received before the TLS handshake", 0);
		return 0;
	}
	while (off < len && !smtp_proto_done(p)) {
		memset(&err, 0, sizeof(err));
		rc = smtp_wire_parse(&p->parser, d + off, len - off, &used,
		    &r, &err);
		off += used;
		if (rc < 0) {
			smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO,
			    err.msg, 0);
			break;
		}
		if (rc == 0)
			break;
		p->feed_rest = len - off;
		smtp_proto_on_reply(p, &r);
		if (p->state == SMTP_PROTO_S_TLS)
			break;
	}
	p->feed_rest = 0;
	return 0;
}

void
smtp_proto_eof(struct smtp_proto *p)
{
	if (smtp_proto_done(p))
		return;
	if (p->state == SMTP_PROTO_S_QUIT)
		smtp_proto_enter(p, SMTP_PROTO_S_CLOSED);
	else
		smtp_proto_fail_note(p, SMTP_PROTO_FAIL_CONN,
		    "connection closed by the server", 0);
}

void
smtp_proto_tls_done(struct smtp_proto *p, int ok)
{
	if (p->state != SMTP_PROTO_S_TLS)
		return;
	if (!ok) {
		smtp_proto_fail_note(p, SMTP_PROTO_FAIL_TLS,
		    "TLS handshake failed", 0);
		return;
	}
	p->tls_active = 1;
	memset(&p->caps, 0, sizeof(p->caps));
	smtp_proto_enter(p, SMTP_PROTO_S_EHLO);
}

/* An address we can put between <> on a command line. */
static int
smtp_proto_addr_ok(const char *a)
{
	const unsigned char *s = (const unsigned char *)a;
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i >= SMTP_PROTO_ADDR_MAX)
			return 0;
		if (s[i] <= ' ' || s[i] == 0x7f || s[i] == '<' || s[i] == '>')
			return 0;
	}
	return 1;
}

int
smtp_proto_send_mail(struct smtp_proto *p, const struct smtp_proto_txn *txn)
{
	size_t i;

	if (p->state != SMTP_PROTO_S_READY || p->quit_wanted ||
	    txn->sender == NULL || txn->n_rcpts == 0 ||
	    !smtp_proto_addr_ok(txn->sender))
		return -1;
	for (i = 0; i < txn->n_rcpts; i++)
		if (txn->rcpts[i] == NULL || txn->rcpts[i][0] == '\0' ||
		    !smtp_proto_addr_ok(txn->rcpts[i]))
			return -1;
	smtp_proto_txn_clear(p);
	p->sender = xstrdup(txn->sender);
	p->rcpts = xcalloc(txn->n_rcpts, sizeof(*p->rcpts));
	for (i = 0; i < txn->n_rcpts; i++)
		p->rcpts[i] = xstrdup(txn->rcpts[i]);
	p->n_rcpts = txn->n_rcpts;
	memset(&p->rcpt_fail, 0, sizeof(p->rcpt_fail));
	smtp_proto_enter(p, SMTP_PROTO_S_MAIL);
	return 0;
}

void
smtp_proto_body(struct smtp_proto *p, const void *chunk, size_t len,
    int last)
{
	char tmp[SMTP_WIRE_ENC_BOUND(SMTP_PROTO_ENC_STEP)];
	const char *c = chunk;
	size_t off = 0, step, n;

	if (p->state != SMTP_PROTO_S_BODY)
		return;
	if (len > SMTP_PROTO_BODY_CHUNK_MAX ||
	    SMTP_WIRE_ENC_BOUND(len) > buf_room(&p->out))
		log_fatalx("smtp_proto_body: %zu bytes with %zu pending:"
		    " the driver ignores the output watermark", len,
		    p->out.len);
	do {
		step = len - off < SMTP_PROTO_ENC_STEP ? len - off :
		    SMTP_PROTO_ENC_STEP;
		n = smtp_wire_enc(&p->enc, c + off, step,
		    last && off + step == len, tmp);
		smtp_proto_append(p, tmp, n);
		off += step;
	} while (off < len);
	if (last) {
		p->cmd_end = p->out_total;
		smtp_proto_enter(p, SMTP_PROTO_S_EOM);
	}
}

void
smtp_proto_quit(struct smtp_proto *p)
{
	if (smtp_proto_done(p) || p->state == SMTP_PROTO_S_QUIT)
		return;
	p->quit_wanted = 1;
	if (p->state == SMTP_PROTO_S_READY)
		smtp_proto_enter(p, SMTP_PROTO_S_QUIT);
}

void
smtp_proto_output(struct smtp_proto *p, const void **data, size_t *len)
{
	*data = p->out.data;
	*len = p->out.len;
}

void
smtp_proto_consumed(struct smtp_proto *p, size_t n)
{
	if (n > p->out.len)
		n = p->out.len;
	buf_consume(&p->out, n);
	p->out_done += n;
}

size_t
smtp_proto_output_pending(const struct smtp_proto *p)
{
	return p->out.len;
}

int
smtp_proto_next_event(struct smtp_proto *p, struct smtp_proto_event *ev)
{
	if (p->ev_count == 0)
		return 0;
	*ev = p->ev[p->ev_head];
	p->ev_head = (p->ev_head + 1) % SMTP_PROTO_EVENTS_MAX;
	p->ev_count--;
	return 1;
}

const char *
smtp_proto_state_name(const struct smtp_proto *p)
{
	return smtp_proto_state_names[p->state];
}

int
smtp_proto_tls_active(const struct smtp_proto *p)
{
	return p->tls_active;
}

const struct smtp_wire_caps *
smtp_proto_caps(const struct smtp_proto *p)
{
	return &p->caps;
}
