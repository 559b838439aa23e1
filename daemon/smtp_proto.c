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
 * One command is outstanding at a time, except in a pipelined
 * transaction.  cmd_end is the output offset where the last command (or
 * the body's terminating ".") ends and out_done how much the driver has
 * written: a reply that arrives before out_done reaches cmd_end answers
 * nothing we sent, which is a protocol error (and keeps the event queue
 * bounded: every reply needs a write).  A pipelined group (MAIL, up to
 * SMTP_PROTO_PIPE_RCPTS RCPTs, DATA with the last recipient) records the
 * end of each of its commands in a FIFO instead, and each reply must
 * follow the end of the command it answers.  rcpt_i is the recipient
 * whose reply is next, rcpt_sent how many RCPTs were written, data_sent
 * whether DATA was; after a refused MAIL the group's remaining replies
 * are drained before RSET.  If no recipient was accepted, a pipelined
 * DATA's 354 is answered with an empty message (".") that cannot be
 * delivered to anyone.
 *
 * Across messages (RFC 2920 3.1): in EOM, with pipelining on both sides,
 * send_mail() starts the next transaction at once.  The dot's end offset
 * becomes the head of the FIFO and eom_pending is set, so the first reply
 * must follow the dot and is the previous message's TXN_DONE (step END,
 * as smtp_proto_step() says while eom_pending); the next transaction's
 * replies then proceed as in any pipelined group.  A verdict of our own
 * on that next message (SIZE, SMTPUTF8) waits in next_verdict and is
 * queued right after the dot's TXN_DONE.
 *
 * AUTH runs after the EHLO that counts: the mechanism is chosen (never
 * without TLS unless the peer is on loopback), sasl.c makes each
 * response, and every line that carries a credential is written through
 * smtp_proto_secret_line(): the output buffer is grown before the
 * secret is copied in (so no realloc leaves a copy behind) and the bytes
 * are wiped as the driver consumes them.  A response that sasl.c cannot
 * make cancels the exchange with "*".  An initial response that would
 * make the AUTH line longer than 512 octets (RFC 4954 section 4) is sent
 * after the server's empty 334 challenge instead.
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
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "log.h"
#include "mailmsg.h"
#include "sasl.h"
#include "smtp_proto.h"
#include "smtp_wire.h"
#include "util.h"

enum smtp_proto_state {
	SMTP_PROTO_S_GREETING, /* waiting for 220 */
	SMTP_PROTO_S_EHLO,
	SMTP_PROTO_S_HELO,
	SMTP_PROTO_S_STARTTLS,
	SMTP_PROTO_S_TLS,         /* NEED_TLS queued, waiting for tls_done */
	SMTP_PROTO_S_AUTH,        /* AUTH or a response sent, awaiting 334
				 * or the verdict */
	SMTP_PROTO_S_AUTH_CANCEL, /* "*" sent, awaiting its reply */
	SMTP_PROTO_S_READY,
	SMTP_PROTO_S_MAIL,
	SMTP_PROTO_S_RCPT,
	SMTP_PROTO_S_DATA,
	SMTP_PROTO_S_BODY,       /* NEED_BODY queued, taking body() */
	SMTP_PROTO_S_EOM,        /* "." written, waiting for the verdict */
	SMTP_PROTO_S_DRAIN,      /* MAIL refused: skipping the replies to
				 * the rest of the pipelined group */
	SMTP_PROTO_S_DATA_EMPTY, /* 354 without an accepted recipient:
				 * "." written */
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
	[SMTP_PROTO_S_AUTH] = "auth",
	[SMTP_PROTO_S_AUTH_CANCEL] = "auth-cancel",
	[SMTP_PROTO_S_READY] = "ready",
	[SMTP_PROTO_S_MAIL] = "mail",
	[SMTP_PROTO_S_RCPT] = "rcpt",
	[SMTP_PROTO_S_DATA] = "data",
	[SMTP_PROTO_S_BODY] = "body",
	[SMTP_PROTO_S_EOM] = "eom",
	[SMTP_PROTO_S_DRAIN] = "drain",
	[SMTP_PROTO_S_DATA_EMPTY] = "data-empty",
	[SMTP_PROTO_S_RSET] = "rset",
	[SMTP_PROTO_S_QUIT] = "quit",
	[SMTP_PROTO_S_CLOSED] = "closed",
	[SMTP_PROTO_S_FAILED] = "failed",
};

/* The step each state is at (what a reply in it answers). */
static const enum smtp_proto_step smtp_proto_steps[] = {
	[SMTP_PROTO_S_GREETING] = SMTP_PROTO_STEP_GREETING,
	[SMTP_PROTO_S_EHLO] = SMTP_PROTO_STEP_EHLO,
	[SMTP_PROTO_S_HELO] = SMTP_PROTO_STEP_EHLO,
	[SMTP_PROTO_S_STARTTLS] = SMTP_PROTO_STEP_STARTTLS,
	[SMTP_PROTO_S_TLS] = SMTP_PROTO_STEP_TLS,
	[SMTP_PROTO_S_AUTH] = SMTP_PROTO_STEP_AUTH,
	[SMTP_PROTO_S_AUTH_CANCEL] = SMTP_PROTO_STEP_AUTH,
	[SMTP_PROTO_S_READY] = SMTP_PROTO_STEP_IDLE,
	[SMTP_PROTO_S_MAIL] = SMTP_PROTO_STEP_MAIL,
	[SMTP_PROTO_S_RCPT] = SMTP_PROTO_STEP_RCPT,
	[SMTP_PROTO_S_DATA] = SMTP_PROTO_STEP_DATA,
	[SMTP_PROTO_S_BODY] = SMTP_PROTO_STEP_BODY,
	[SMTP_PROTO_S_EOM] = SMTP_PROTO_STEP_END,
	[SMTP_PROTO_S_DRAIN] = SMTP_PROTO_STEP_MAIL,
	[SMTP_PROTO_S_DATA_EMPTY] = SMTP_PROTO_STEP_RCPT,
	[SMTP_PROTO_S_RSET] = SMTP_PROTO_STEP_IDLE,
	[SMTP_PROTO_S_QUIT] = SMTP_PROTO_STEP_IDLE,
	[SMTP_PROTO_S_CLOSED] = SMTP_PROTO_STEP_IDLE,
	[SMTP_PROTO_S_FAILED] = SMTP_PROTO_STEP_IDLE, /* see fail_step */
};

/* Body bytes encoded per step (stack buffer of the encoded size). */
#define SMTP_PROTO_ENC_STEP 4096
/* Longest AUTH command line with its initial response (SMTP's command
 * line limit, RFC 4954 section 4). */
#define SMTP_PROTO_AUTH_LINE_MAX 512
/* Replies that a pipelined group can await: the previous message's
 * final dot, MAIL, the RCPTs, DATA. */
#define SMTP_PROTO_PIPE_MAX (SMTP_PROTO_PIPE_RCPTS + 3)

struct smtp_proto {
	enum smtp_proto_state state;
	char                 *ehlo_name;
	enum smtp_proto_tls   tls;
	int                   peer_is_loopback;
	int                   tls_active;
	int                   quit_wanted;

	struct smtp_wire_parser parser;
	struct smtp_wire_caps   caps;
	/* The server's AUTH list, for messages. */
	char   auth_offer[128];
	size_t feed_rest; /* unparsed bytes of the feed
						 * after the current reply */

	struct buf         out;
	unsigned long long out_total;  /* bytes ever produced */
	unsigned long long out_done;   /* bytes ever consumed */
	unsigned long long cmd_end;    /* end of the last command */
	int                out_secret; /* a credential in out */

	/* AUTH.  auth_secret is wiped once handed to sasl; auth_ir is an
	 * initial response sent after the empty 334; auth_why says why
	 * the exchange was cancelled. */
	enum sasl_mech auth;
	char          *auth_user;
	char          *auth_secret;
	char          *auth_nonce;
	struct sasl   *sasl;
	struct buf     auth_ir;
	int            auth_ir_pending;
	char           auth_why[256];

	/* PIPELINING: the setting, whether this transaction pipelines,
	 * and the output offsets where its unanswered commands end. */
	int                pipelining;
	int                pipe_on;
	unsigned long long pipe_end[SMTP_PROTO_PIPE_MAX];
	size_t             pipe_head;
	size_t             pipe_n;
	/* Across messages (RFC 2920 3.1): the previous message's final
	 * dot is still unanswered (its end is the FIFO's head), or that
	 * message's successor got a verdict of ours (next_verdict), to
	 * be reported after the dot's reply. */
	int                     eom_pending;
	int                     next_verdict_set;
	struct smtp_proto_reply next_verdict;

	/* The transaction in progress. */
	char                   *sender;
	char                  **rcpts;
	size_t                  n_rcpts;
	size_t                  rcpt_i;    /* whose reply is next */
	size_t                  rcpt_sent; /* RCPTs written */
	int                     data_sent;
	size_t                  rcpt_ok;
	uint64_t                size;
	int                     body_8bit;
	int                     needs_smtputf8;
	enum smtp_proto_ret     ret; /* DSN parameters, checked */
	char                   *envid;
	unsigned               *notify;    /* n_rcpts, or NULL */
	char                  **orcpts;    /* n_rcpts, or NULL */
	struct smtp_proto_reply rcpt_fail; /* last refused RCPT */
	struct smtp_wire_enc    enc;

	/* What entering FAILED reports. */
	enum smtp_proto_fail    fail;
	struct smtp_proto_reply fail_reply;
	int                     fail_quit;
	enum smtp_proto_step    fail_step; /* where it failed */

	struct smtp_proto_event ev[SMTP_PROTO_EVENTS_MAX];
	size_t                  ev_head;
	size_t                  ev_count;
};

static void smtp_proto_enter(struct smtp_proto *, enum smtp_proto_state);

/* Server reply -> event reply: lines joined by " / ", truncated. */
static void
smtp_proto_reply_set(struct smtp_proto_reply *dst,
    const struct smtp_wire_reply             *r)
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
	dst->local = 1;
	sq_printable(dst->text, sizeof(dst->text), text, strlen(text));
}

/* Queue an event; returns it (NULL when the queue overflowed). */
static struct smtp_proto_event *
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
		ev->step = smtp_proto_step(p);
		p->fail_step = ev->step;
		p->state = SMTP_PROTO_S_FAILED;
		return NULL;
	}
	ev = &p->ev[(p->ev_head + p->ev_count) % SMTP_PROTO_EVENTS_MAX];
	p->ev_count++;
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->rcpt_index = rcpt_index;
	ev->step = smtp_proto_step(p);
	if (type == SMTP_PROTO_EV_FAILED)
		ev->fail = p->fail;
	if (reply != NULL)
		ev->reply = *reply;
	return ev;
}

static void
smtp_proto_append(struct smtp_proto *p, const char *data, size_t len)
{
	if (buf_append(&p->out, data, len) != 0)
		log_fatalx("smtp_proto: output buffer overflow (%zu pending): "
			   "the driver does not write the output",
		    p->out.len);
	p->out_total += len;
}

static void
smtp_proto_cmd(struct smtp_proto *p, const char *fmt, ...) SQ_PRINTF(2, 3);

/* Queue one command line (CRLF added) and await its reply. */
static void
smtp_proto_cmd(struct smtp_proto *p, const char *fmt, ...)
{
	char    line[2048];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2)
		log_fatalx("smtp_proto: command too long");
	line[n] = '\r';
	line[n + 1] = '\n';
	smtp_proto_append(p, line, (size_t)n + 2);
	p->cmd_end = p->out_total;
	if (p->pipe_on &&
	    (p->state == SMTP_PROTO_S_MAIL || p->state == SMTP_PROTO_S_RCPT)) {
		if (p->pipe_n == SMTP_PROTO_PIPE_MAX)
			log_fatalx("smtp_proto: pipeline overflow");
		p->pipe_end[(p->pipe_head + p->pipe_n) % SMTP_PROTO_PIPE_MAX] =
		    p->cmd_end;
		p->pipe_n++;
	}
}

/*
 * One line carrying a credential: prefix (may be "") then data then
 * CRLF.  The buffer grows first (with zeros), so the secret is copied
 * once and never left behind by a realloc; smtp_proto_consumed() wipes
 * it as it is written.
 */
static void
smtp_proto_secret_line(struct smtp_proto *p, const char *prefix,
    const char *data, size_t len)
{
	static const char zeros[256];
	size_t need = strlen(prefix) + len + 2 + 64, keep = p->out.len;

	while (p->out.cap - keep < need)
		if (buf_append(&p->out, zeros, sizeof(zeros)) != 0)
			log_fatalx("smtp_proto: output buffer overflow");
	p->out.len = keep;
	p->out_secret = 1;
	smtp_proto_append(p, prefix, strlen(prefix));
	smtp_proto_append(p, data, len);
	smtp_proto_append(p, "\r\n", 2);
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
	for (i = 0; p->orcpts != NULL && i < p->n_rcpts; i++)
		free(p->orcpts[i]);
	free(p->orcpts);
	free(p->notify);
	free(p->envid);
	p->orcpts = NULL;
	p->notify = NULL;
	p->envid = NULL;
	p->ret = SMTP_PROTO_RET_NONE;
	p->sender = NULL;
	p->rcpts = NULL;
	p->n_rcpts = p->rcpt_i = p->rcpt_ok = p->rcpt_sent = 0;
	p->data_sent = p->pipe_on = 0;
	p->pipe_head = p->pipe_n = 0;
	p->eom_pending = p->next_verdict_set = 0;
}

/* The exchange is over (either way): drop every copy of the secret. */
static void
smtp_proto_auth_end(struct smtp_proto *p)
{
	sasl_free(p->sasl);
	p->sasl = NULL;
	if (p->auth_secret != NULL) {
		sasl_wipe(p->auth_secret, strlen(p->auth_secret));
		free(p->auth_secret);
		p->auth_secret = NULL;
	}
	if (p->auth_ir.data != NULL)
		sasl_buf_wipe(&p->auth_ir);
	p->auth_ir_pending = 0;
}

static void
smtp_proto_fail(struct smtp_proto *p, enum smtp_proto_fail fail,
    const struct smtp_proto_reply *reply, int quit)
{
	p->fail = fail;
	p->fail_reply = *reply;
	p->fail_quit = quit;
	p->fail_step = smtp_proto_step(p);
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
	case SMTP_PROTO_S_AUTH:
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

static void smtp_proto_auth_start(struct smtp_proto *);

/* MAIL FROM with its parameters; in a pipelined transaction the first
 * group of RCPTs (and DATA) follows at once. */
static void
smtp_proto_mail_cmd(struct smtp_proto *p)
{
	char   params[256];
	size_t o = 0;

	params[0] = '\0';
	if (p->caps.size && p->size > 0)
		o += (size_t)snprintf(params + o, sizeof(params) - o,
		    " SIZE=%llu", (unsigned long long)p->size);
	if (p->body_8bit && p->caps.eightbitmime)
		o += (size_t)snprintf(params + o, sizeof(params) - o,
		    " BODY=8BITMIME");
	if (p->needs_smtputf8)
		o += (size_t)snprintf(params + o, sizeof(params) - o,
		    " SMTPUTF8");
	if (p->caps.dsn && p->ret != SMTP_PROTO_RET_NONE)
		o += (size_t)snprintf(params + o, sizeof(params) - o, " RET=%s",
		    p->ret == SMTP_PROTO_RET_FULL ? "FULL" : "HDRS");
	if (p->caps.dsn && p->envid != NULL)
		snprintf(params + o, sizeof(params) - o, " ENVID=%s", p->envid);
	smtp_proto_cmd(p, "MAIL FROM:<%s>%s", p->sender, params);
}

/* RCPT TO for recipient i, with NOTIFY= and ORCPT= where DSN is
 * offered. */
static void
smtp_proto_rcpt_cmd(struct smtp_proto *p, size_t i)
{
	char     notify[40] = "", *orcpt = NULL;
	unsigned bits = p->notify != NULL ? p->notify[i] : 0;

	if (p->caps.dsn && bits != 0) {
		if (bits & SMTP_PROTO_NOTIFY_NEVER)
			snprintf(notify, sizeof(notify), " NOTIFY=NEVER");
		else
			snprintf(notify, sizeof(notify), " NOTIFY=%s%s%s%s%s",
			    bits & SMTP_PROTO_NOTIFY_SUCCESS ? "SUCCESS" : "",
			    (bits & SMTP_PROTO_NOTIFY_SUCCESS) &&
				    (bits &
					(SMTP_PROTO_NOTIFY_FAILURE |
					    SMTP_PROTO_NOTIFY_DELAY)) ?
				"," :
				"",
			    bits & SMTP_PROTO_NOTIFY_FAILURE ? "FAILURE" : "",
			    (bits & SMTP_PROTO_NOTIFY_FAILURE) &&
				    (bits & SMTP_PROTO_NOTIFY_DELAY) ?
				"," :
				"",
			    bits & SMTP_PROTO_NOTIFY_DELAY ? "DELAY" : "");
	}
	if (p->caps.dsn && p->orcpts != NULL)
		orcpt = p->orcpts[i];
	smtp_proto_cmd(p, "RCPT TO:<%s>%s%s%s", p->rcpts[i], notify,
	    orcpt != NULL ? " ORCPT=" : "", orcpt != NULL ? orcpt : "");
}

/* The next RCPTs: one, or a pipelined group (DATA after the last). */
static void
smtp_proto_rcpt_cmds(struct smtp_proto *p)
{
	size_t end = p->rcpt_sent + 1;

	if (p->pipe_on)
		end = p->n_rcpts - p->rcpt_sent > SMTP_PROTO_PIPE_RCPTS ?
		    p->rcpt_sent + SMTP_PROTO_PIPE_RCPTS :
		    p->n_rcpts;
	for (; p->rcpt_sent < end; p->rcpt_sent++)
		smtp_proto_rcpt_cmd(p, p->rcpt_sent);
	if (p->pipe_on && p->rcpt_sent == p->n_rcpts) {
		smtp_proto_cmd(p, "DATA");
		p->data_sent = 1;
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
		p->auth_offer[0] = '\0';
		smtp_proto_cmd(p, "EHLO %s", p->ehlo_name);
		break;
	case SMTP_PROTO_S_HELO:
		memset(&p->caps, 0, sizeof(p->caps));
		p->auth_offer[0] = '\0';
		smtp_proto_cmd(p, "HELO %s", p->ehlo_name);
		break;
	case SMTP_PROTO_S_STARTTLS:
		smtp_proto_cmd(p, "STARTTLS");
		break;
	case SMTP_PROTO_S_TLS:
		smtp_proto_push(p, SMTP_PROTO_EV_NEED_TLS, 0, NULL);
		break;
	case SMTP_PROTO_S_AUTH:
		smtp_proto_auth_start(p);
		break;
	case SMTP_PROTO_S_AUTH_CANCEL:
		smtp_proto_cmd(p, "*");
		break;
	case SMTP_PROTO_S_DRAIN:
		break;
	case SMTP_PROTO_S_DATA_EMPTY:
		smtp_proto_append(p, ".\r\n", 3);
		p->cmd_end = p->out_total;
		break;
	case SMTP_PROTO_S_READY:
		smtp_proto_txn_clear(p);
		smtp_proto_push(p, SMTP_PROTO_EV_READY, 0, NULL);
		break;
	case SMTP_PROTO_S_MAIL:
		smtp_proto_mail_cmd(p);
		if (p->pipe_on)
			smtp_proto_rcpt_cmds(p);
		break;
	case SMTP_PROTO_S_RCPT:
		smtp_proto_rcpt_cmds(p);
		break;
	case SMTP_PROTO_S_DATA:
		smtp_proto_cmd(p, "DATA");
		p->data_sent = 1;
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
		smtp_proto_auth_end(p);
		smtp_proto_push(p, SMTP_PROTO_EV_FAILED, 0, &p->fail_reply);
		if (p->fail_quit)
			smtp_proto_append(p, "QUIT\r\n", 6);
		break;
	}
}

/* The transaction ended with reply r; RSET (or go READY) follows.  The
 * step is the state's, but RCPT when r is the last refused recipient's
 * reply and MAIL for a verdict of ours made while READY. */
static void
smtp_proto_txn_done(struct smtp_proto *p, const struct smtp_proto_reply *r,
    enum smtp_proto_state next)
{
	struct smtp_proto_event *ev;

	ev = smtp_proto_push(p, SMTP_PROTO_EV_TXN_DONE, 0, r);
	if (ev != NULL && r == &p->rcpt_fail)
		ev->step = SMTP_PROTO_STEP_RCPT;
	else if (ev != NULL && p->state == SMTP_PROTO_S_READY)
		ev->step = SMTP_PROTO_STEP_MAIL;
	smtp_proto_enter(p, next);
}

/* Set the state without entering it: the command it awaits is already
 * written (pipelining).  FAILED stays. */
static void
smtp_proto_await(struct smtp_proto *p, enum smtp_proto_state s)
{
	if (p->state != SMTP_PROTO_S_FAILED)
		p->state = s;
}

/* A reply to MAIL or a RCPT was handled: what comes next. */
static void
smtp_proto_txn_next(struct smtp_proto *p)
{
	if (p->rcpt_i < p->n_rcpts) {
		if (p->rcpt_i < p->rcpt_sent)
			smtp_proto_await(p, SMTP_PROTO_S_RCPT);
		else
			smtp_proto_enter(p, SMTP_PROTO_S_RCPT);
	} else if (p->data_sent)
		smtp_proto_await(p, SMTP_PROTO_S_DATA);
	else if (p->rcpt_ok > 0)
		smtp_proto_enter(p, SMTP_PROTO_S_DATA);
	else
		smtp_proto_txn_done(p, &p->rcpt_fail, SMTP_PROTO_S_RSET);
}

/* After the EHLO (or HELO) that counts. */
static void
smtp_proto_hello_done(struct smtp_proto *p)
{
	if (p->auth != SASL_MECH_NONE)
		smtp_proto_enter(p, SMTP_PROTO_S_AUTH);
	else
		smtp_proto_enter(p, SMTP_PROTO_S_READY);
}

/* The mechanisms of the EHLO reply's AUTH line, for error messages. */
static void
smtp_proto_auth_offer(struct smtp_proto *p, const char *text, size_t len)
{
	const char *nl, *line;
	size_t      off = 0, n;

	p->auth_offer[0] = '\0';
	while (off < len) {
		line = text + off;
		nl = memchr(line, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - line) : len - off;
		off += n + 1;
		if (line == text)
			continue; /* the greeting line */
		if (n >= 4 && strncasecmp(line, "AUTH", 4) == 0 &&
		    (n == 4 || line[4] == ' ' || line[4] == '=')) {
			sq_printable(p->auth_offer, sizeof(p->auth_offer),
			    line + 5 - (n == 4), n - 4 - (n > 4));
			return;
		}
	}
}

static void smtp_proto_auth_fail(struct smtp_proto *p, const char *fmt, ...)
    SQ_PRINTF(2, 3);

/* AUTH cannot go ahead: FAILED (AUTH), QUIT. */
static void
smtp_proto_auth_fail(struct smtp_proto *p, const char *fmt, ...)
{
	char    text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* Server text quoted here (its AUTH list) never carries the
	 * secret into a log, even if the server knows it. */
	sasl_mask(text, p->auth_secret);
	if (p->sasl != NULL)
		sasl_redact(p->sasl, text);
	smtp_proto_fail_note(p, SMTP_PROTO_FAIL_AUTH, text, 1);
}

/* Entering AUTH: choose the mechanism and send AUTH, or fail. */
static void
smtp_proto_auth_start(struct smtp_proto *p)
{
	struct sq_err  err;
	enum sasl_mech mech = p->auth;
	unsigned       mask = p->caps.auth_mechs;
	const char    *name, *offer;
	char           line[64];
	int            rc;

	offer = p->auth_offer[0] != '\0' ? p->auth_offer : "none";
	if (!p->tls_active && !p->peer_is_loopback) {
		smtp_proto_auth_fail(p,
		    "refusing to send credentials without TLS to a server that "
		    "is not on loopback");
		return;
	}
	if (!p->caps.auth) {
		smtp_proto_auth_fail(p,
		    "server offers no AUTH, but credentials are configured: "
		    "not sending mail unauthenticated");
		return;
	}
	if (mech == SASL_MECH_AUTO) {
		if (p->auth_nonce == NULL)
			mask &= ~sasl_mech_bit(SASL_MECH_SCRAM_SHA_256);
		mech = sasl_pick(mask, 1);
		if (mech == SASL_MECH_NONE) {
			smtp_proto_auth_fail(p,
			    "no AUTH mechanism in common (server offers: %s; "
			    "auth = auto uses SCRAM-SHA-256, PLAIN or LOGIN)",
			    offer);
			return;
		}
	} else if ((mask & sasl_mech_bit(mech)) == 0) {
		smtp_proto_auth_fail(p,
		    "server does not offer AUTH %s (offers: %s)",
		    sasl_mech_name(mech), offer);
		return;
	}
	memset(&err, 0, sizeof(err));
	p->sasl = sasl_new(mech, p->auth_user, p->auth_secret, p->auth_nonce,
	    &err);
	if (p->auth_secret != NULL) {
		sasl_wipe(p->auth_secret, strlen(p->auth_secret));
		free(p->auth_secret);
		p->auth_secret = NULL;
	}
	if (p->sasl == NULL) {
		smtp_proto_auth_fail(p, "%s", err.msg);
		return;
	}
	name = sasl_mech_name(mech);
	sasl_buf_init(&p->auth_ir);
	if ((rc = sasl_initial(p->sasl, &p->auth_ir)) < 0) {
		smtp_proto_auth_fail(p, "%s", sasl_error(p->sasl));
		return;
	}
	snprintf(line, sizeof(line), "AUTH %s ", name);
	if (rc == 1 &&
	    strlen(line) + p->auth_ir.len + 2 <= SMTP_PROTO_AUTH_LINE_MAX) {
		smtp_proto_secret_line(p, line, p->auth_ir.data,
		    p->auth_ir.len);
		sasl_buf_wipe(&p->auth_ir);
	} else {
		smtp_proto_cmd(p, "AUTH %s", name);
		p->auth_ir_pending = rc == 1;
		if (!p->auth_ir_pending)
			sasl_buf_wipe(&p->auth_ir);
	}
}

/* Give up the exchange from our side: "*", then FAILED (AUTH). */
static void
smtp_proto_auth_cancel(struct smtp_proto *p, const char *why)
{
	snprintf(p->auth_why, sizeof(p->auth_why), "%s", why);
	smtp_proto_enter(p, SMTP_PROTO_S_AUTH_CANCEL);
}

/* A reply in AUTH. */
static void
smtp_proto_auth_reply(struct smtp_proto *p, const struct smtp_wire_reply *wr,
    const struct smtp_proto_reply *r)
{
	struct buf resp;
	size_t     len = wr->text_len;
	int        cls = wr->code / 100, rc;

	if (wr->code == 334) {
		while (len > 0 &&
		    (wr->text[len - 1] == ' ' || wr->text[len - 1] == '\t'))
			len--;
		if (p->auth_ir_pending) {
			p->auth_ir_pending = 0;
			if (len != 0) {
				smtp_proto_auth_cancel(p,
				    "server sent a challenge where the initial "
				    "response belongs");
				return;
			}
			smtp_proto_secret_line(p, "", p->auth_ir.data,
			    p->auth_ir.len);
			sasl_buf_wipe(&p->auth_ir);
			return;
		}
		sasl_buf_init(&resp);
		rc = sasl_step(p->sasl, wr->text, len, &resp);
		if (rc == SASL_ERROR)
			smtp_proto_auth_cancel(p, sasl_error(p->sasl));
		else
			smtp_proto_secret_line(p, "", resp.data, resp.len);
		sasl_buf_wipe(&resp);
	} else if (cls == 2) {
		if (p->auth_ir_pending || sasl_success(p->sasl) != SASL_DONE)
			smtp_proto_auth_fail(p, "%s",
			    p->auth_ir_pending ?
				"server accepted AUTH before the credentials" :
				sasl_error(p->sasl));
		else {
			smtp_proto_auth_end(p);
			smtp_proto_enter(p, SMTP_PROTO_S_READY);
		}
	} else if (cls == 4)
		smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, r, 1);
	else if (cls == 5)
		smtp_proto_fail(p, SMTP_PROTO_FAIL_AUTH, r, 1);
	else
		smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, r, 0);
}

/* The dot's reply r, and then the verdict of ours on the message offered
 * behind it (which sent nothing): both TXN_DONEs in order, READY. */
static void
smtp_proto_eom_verdicts(struct smtp_proto *p, const struct smtp_proto_reply *r)
{
	struct smtp_proto_event *ev;
	struct smtp_proto_reply  v = p->next_verdict;

	p->next_verdict_set = 0;
	if (smtp_proto_push(p, SMTP_PROTO_EV_TXN_DONE, 0, r) == NULL)
		return;
	ev = smtp_proto_push(p, SMTP_PROTO_EV_TXN_DONE, 0, &v);
	if (ev != NULL)
		ev->step = SMTP_PROTO_STEP_MAIL;
	smtp_proto_enter(p, SMTP_PROTO_S_READY);
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
	case SMTP_PROTO_S_AUTH:
	case SMTP_PROTO_S_AUTH_CANCEL:
	case SMTP_PROTO_S_MAIL:
	case SMTP_PROTO_S_RCPT:
	case SMTP_PROTO_S_DATA:
	case SMTP_PROTO_S_EOM:
	case SMTP_PROTO_S_DRAIN:
	case SMTP_PROTO_S_DATA_EMPTY:
	case SMTP_PROTO_S_RSET:
	case SMTP_PROTO_S_QUIT:
		return 1;
	default:
		return 0;
	}
}

/* Over 80 lines on purpose: the one on_reply switch, every state's
 * reaction to a reply side by side (a split would scatter them). */
static void
smtp_proto_on_reply(struct smtp_proto *p, const struct smtp_wire_reply *wr)
{
	struct smtp_proto_reply r;
	unsigned long long      need = p->cmd_end;
	int                     cls = wr->code / 100;

	smtp_proto_reply_set(&r, wr);
	if (p->state == SMTP_PROTO_S_AUTH ||
	    p->state == SMTP_PROTO_S_AUTH_CANCEL)
		sasl_redact(p->sasl, r.text);
	if (wr->code == 421 && p->state != SMTP_PROTO_S_QUIT) {
		smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 0);
		return;
	}
	if (p->pipe_n > 0)
		need = p->pipe_end[p->pipe_head];
	if (!smtp_proto_awaits_reply(p->state) || p->out_done < need) {
		smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		return;
	}
	if (p->pipe_n > 0) {
		p->pipe_head = (p->pipe_head + 1) % SMTP_PROTO_PIPE_MAX;
		p->pipe_n--;
	}
	if (p->eom_pending) {
		/* The previous message's verdict (its step is END). */
		if (cls == 2 || cls == 4 || cls == 5) {
			smtp_proto_push(p, SMTP_PROTO_EV_TXN_DONE, 0, &r);
			p->eom_pending = 0;
		} else
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
			smtp_proto_auth_offer(p, wr->text, wr->text_len);
			if (p->tls != SMTP_PROTO_TLS_STARTTLS || p->tls_active)
				smtp_proto_hello_done(p);
			else if (p->caps.starttls)
				smtp_proto_enter(p, SMTP_PROTO_S_STARTTLS);
			else
				smtp_proto_fail_note(p, SMTP_PROTO_FAIL_TLS,
				    "server does not offer STARTTLS", 1);
		} else if (cls == 5 &&
		    (p->tls != SMTP_PROTO_TLS_STARTTLS || p->tls_active))
			smtp_proto_enter(p, SMTP_PROTO_S_HELO);
		else if (cls == 5)
			/* HELO cannot offer STARTTLS. */
			smtp_proto_fail(p, SMTP_PROTO_FAIL_TLS, &r, 1);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 1);
		break;
	case SMTP_PROTO_S_HELO:
		if (cls == 2)
			smtp_proto_hello_done(p);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_RESP, &r, 1);
		break;
	case SMTP_PROTO_S_STARTTLS:
		if (wr->code != 220)
			smtp_proto_fail(p, SMTP_PROTO_FAIL_TLS, &r, 1);
		else if (p->feed_rest > 0)
			smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO,
			    "bytes after the 220 reply to STARTTLS (injection "
			    "attempt)",
			    0);
		else
			smtp_proto_enter(p, SMTP_PROTO_S_TLS);
		break;
	case SMTP_PROTO_S_AUTH:
		smtp_proto_auth_reply(p, wr, &r);
		break;
	case SMTP_PROTO_S_AUTH_CANCEL:
		smtp_proto_auth_fail(p, "%s", p->auth_why);
		break;
	case SMTP_PROTO_S_MAIL:
		if (cls == 2)
			smtp_proto_txn_next(p);
		else if ((cls == 4 || cls == 5) && p->pipe_n > 0) {
			/* The rest of the group still gets answers. */
			smtp_proto_push(p, SMTP_PROTO_EV_TXN_DONE, 0, &r);
			smtp_proto_await(p, SMTP_PROTO_S_DRAIN);
		} else if (cls == 4 || cls == 5)
			smtp_proto_txn_done(p, &r, SMTP_PROTO_S_RSET);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		break;
	case SMTP_PROTO_S_RCPT:
		if (cls != 2 && cls != 4 && cls != 5) {
			smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
			break;
		}
		smtp_proto_push(p, SMTP_PROTO_EV_RCPT_STATUS, p->rcpt_i, &r);
		if (cls == 2)
			p->rcpt_ok++;
		else
			p->rcpt_fail = r;
		p->rcpt_i++;
		smtp_proto_txn_next(p);
		break;
	case SMTP_PROTO_S_DATA:
		if (wr->code == 354 && p->rcpt_ok > 0)
			smtp_proto_enter(p, SMTP_PROTO_S_BODY);
		else if (wr->code == 354)
			/* Pipelined DATA with no recipient accepted. */
			smtp_proto_enter(p, SMTP_PROTO_S_DATA_EMPTY);
		else if ((cls == 4 || cls == 5) && p->rcpt_ok > 0)
			smtp_proto_txn_done(p, &r, SMTP_PROTO_S_RSET);
		else if (cls == 4 || cls == 5)
			/* The recipients' refusal is the verdict, not the
			 * "no valid recipients" to DATA. */
			smtp_proto_txn_done(p, &p->rcpt_fail,
			    SMTP_PROTO_S_RSET);
		else
			smtp_proto_fail(p, SMTP_PROTO_FAIL_PROTO, &r, 0);
		break;
	case SMTP_PROTO_S_DRAIN:
		if (wr->code == 354)
			/* The server now reads message text. */
			smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO,
			    "server accepted DATA after refusing MAIL", 0);
		else if (p->pipe_n == 0)
			smtp_proto_enter(p, SMTP_PROTO_S_RSET);
		break;
	case SMTP_PROTO_S_DATA_EMPTY:
		smtp_proto_txn_done(p, &p->rcpt_fail, SMTP_PROTO_S_RSET);
		break;
	case SMTP_PROTO_S_EOM:
		if ((cls == 2 || cls == 4 || cls == 5) && p->next_verdict_set)
			smtp_proto_eom_verdicts(p, &r);
		else if (cls == 2 || cls == 4 || cls == 5)
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
	p->ehlo_name = xstrdup(
	    params->ehlo_name != NULL ? params->ehlo_name : "localhost");
	p->tls = params->tls;
	p->peer_is_loopback = params->peer_is_loopback;
	p->auth = params->auth;
	if (p->auth != SASL_MECH_NONE) {
		p->auth_user = params->auth_user != NULL ?
		    xstrdup(params->auth_user) :
		    NULL;
		p->auth_secret = params->auth_secret != NULL ?
		    xstrdup(params->auth_secret) :
		    NULL;
		p->auth_nonce = params->auth_nonce != NULL ?
		    xstrdup(params->auth_nonce) :
		    NULL;
	}
	p->pipelining = params->pipelining;
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
	smtp_proto_auth_end(p);
	smtp_wire_parser_fini(&p->parser);
	if (p->out_secret)
		sasl_wipe(p->out.data, p->out.cap);
	buf_fini(&p->out);
	free(p->auth_user);
	free(p->auth_nonce);
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
	const char            *d = data;
	struct smtp_wire_reply r;
	struct sq_err          err;
	size_t                 off = 0, used;
	int                    rc;

	if (smtp_proto_done(p) || len == 0)
		return 0;
	if (p->state == SMTP_PROTO_S_TLS) {
		smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO,
		    "bytes received before the TLS handshake", 0);
		return 0;
	}
	while (off < len && !smtp_proto_done(p)) {
		memset(&err, 0, sizeof(err));
		rc = smtp_wire_parse(&p->parser, d + off, len - off, &used, &r,
		    &err);
		off += used;
		if (rc < 0) {
			smtp_proto_fail_note(p, SMTP_PROTO_FAIL_PROTO, err.msg,
			    0);
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
	p->auth_offer[0] = '\0';
	smtp_proto_enter(p, SMTP_PROTO_S_EHLO);
}

/*
 * An address we may put between <> on a command line: mailmsg's one
 * envelope address rule; the sender may be empty (the null reverse-path
 * of a DSN), a recipient may not.
 */
static int
smtp_proto_addr_ok(const char *a, int null_ok)
{
	if (a[0] == '\0')
		return null_ok;
	return mailmsg_addr_valid(a, 0, NULL) == 0;
}

/* RFC 3461 xtext of 1..max characters. */
static int
smtp_proto_xtext_ok(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]) ||
			    islower((unsigned char)s[i + 1]) ||
			    islower((unsigned char)s[i + 2]))
				return 0;
			i += 2;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '=')
			return 0;
	}
	return 1;
}

/* Copy the checked DSN parameters of txn; invalid ones are left out. */
static void
smtp_proto_txn_dsn(struct smtp_proto *p, const struct smtp_proto_txn *txn)
{
	const char *o, *semi;
	unsigned    bits, others;
	size_t      i;

	if (txn->ret == SMTP_PROTO_RET_FULL || txn->ret == SMTP_PROTO_RET_HDRS)
		p->ret = txn->ret;
	if (txn->envid != NULL && smtp_proto_xtext_ok(txn->envid, 100))
		p->envid = xstrdup(txn->envid);
	others = SMTP_PROTO_NOTIFY_SUCCESS | SMTP_PROTO_NOTIFY_FAILURE |
	    SMTP_PROTO_NOTIFY_DELAY;
	if (txn->notify != NULL) {
		p->notify = xcalloc(txn->n_rcpts, sizeof(*p->notify));
		for (i = 0; i < txn->n_rcpts; i++) {
			bits = txn->notify[i];
			if (bits == SMTP_PROTO_NOTIFY_NEVER ||
			    (bits != 0 && (bits & ~others) == 0))
				p->notify[i] = bits;
		}
	}
	if (txn->orcpts != NULL) {
		p->orcpts = xcalloc(txn->n_rcpts, sizeof(*p->orcpts));
		for (i = 0; i < txn->n_rcpts; i++) {
			if ((o = txn->orcpts[i]) == NULL ||
			    (semi = strchr(o, ';')) == NULL || semi == o ||
			    strlen(o) > 500 ||
			    !smtp_proto_xtext_ok(semi + 1, 500))
				continue;
			for (; o < semi; o++)
				if (!isalnum((unsigned char)*o) && *o != '-')
					break;
			if (o == semi)
				p->orcpts[i] = xstrdup(txn->orcpts[i]);
		}
	}
}

/* A transaction the core refuses itself (nothing is sent): 1 and the
 * verdict in *r, else 0. */
static int
smtp_proto_local_check(const struct smtp_proto *p,
    const struct smtp_proto_txn *txn, struct smtp_proto_reply *r)
{
	char why[128];

	memset(r, 0, sizeof(*r));
	r->local = 1;
	if (txn->needs_smtputf8 && !p->caps.smtputf8) {
		r->code = 553;
		snprintf(r->enhanced, sizeof(r->enhanced), "5.6.7");
		snprintf(r->text, sizeof(r->text),
		    "5.6.7 message needs "
		    "SMTPUTF8 but the server does not offer it");
		return 1;
	}
	if (p->caps.size && p->caps.size_max > 0 &&
	    txn->size > p->caps.size_max) {
		snprintf(why, sizeof(why),
		    "message size %llu exceeds the server's limit %llu",
		    (unsigned long long)txn->size,
		    (unsigned long long)p->caps.size_max);
		r->code = 552;
		snprintf(r->enhanced, sizeof(r->enhanced), "5.3.4");
		snprintf(r->text, sizeof(r->text), "5.3.4 %s", why);
		return 1;
	}
	return 0;
}

int
smtp_proto_can_send_mail(const struct smtp_proto *p)
{
	if (p->quit_wanted)
		return 0;
	if (p->state == SMTP_PROTO_S_READY)
		return 1;
	return p->state == SMTP_PROTO_S_EOM && p->pipelining &&
	    p->caps.pipelining && !p->next_verdict_set;
}

int
smtp_proto_send_mail(struct smtp_proto *p, const struct smtp_proto_txn *txn)
{
	struct smtp_proto_reply v;
	unsigned long long      eom = p->cmd_end;
	int                     behind = p->state == SMTP_PROTO_S_EOM;
	size_t                  i;

	if (!smtp_proto_can_send_mail(p) || txn->sender == NULL ||
	    txn->n_rcpts == 0 || !smtp_proto_addr_ok(txn->sender, 1))
		return -1;
	for (i = 0; i < txn->n_rcpts; i++)
		if (txn->rcpts[i] == NULL ||
		    !smtp_proto_addr_ok(txn->rcpts[i], 0))
			return -1;
	if (smtp_proto_local_check(p, txn, &v)) {
		if (behind) {
			/* Reported after the previous message's verdict. */
			p->next_verdict = v;
			p->next_verdict_set = 1;
			return 0;
		}
		smtp_proto_txn_clear(p);
		smtp_proto_txn_done(p, &v, SMTP_PROTO_S_READY);
		return 0;
	}
	smtp_proto_txn_clear(p);
	p->sender = xstrdup(txn->sender);
	p->rcpts = xcalloc(txn->n_rcpts, sizeof(*p->rcpts));
	for (i = 0; i < txn->n_rcpts; i++)
		p->rcpts[i] = xstrdup(txn->rcpts[i]);
	p->n_rcpts = txn->n_rcpts;
	p->size = txn->size;
	p->body_8bit = txn->body_8bit;
	p->needs_smtputf8 = txn->needs_smtputf8;
	smtp_proto_txn_dsn(p, txn);
	p->pipe_on = p->pipelining && p->caps.pipelining;
	memset(&p->rcpt_fail, 0, sizeof(p->rcpt_fail));
	if (behind) {
		/* The dot's reply comes first: it heads the FIFO. */
		p->eom_pending = 1;
		p->pipe_end[0] = eom;
		p->pipe_n = 1;
	}
	smtp_proto_enter(p, SMTP_PROTO_S_MAIL);
	return 0;
}

void
smtp_proto_body(struct smtp_proto *p, const void *chunk, size_t len, int last)
{
	char        tmp[SMTP_WIRE_ENC_BOUND(SMTP_PROTO_ENC_STEP)];
	const char *c = chunk;
	size_t      off = 0, step, n;

	if (p->state != SMTP_PROTO_S_BODY)
		return;
	if (len > SMTP_PROTO_BODY_CHUNK_MAX ||
	    SMTP_WIRE_ENC_BOUND(len) > buf_room(&p->out))
		log_fatalx("smtp_proto_body: %zu bytes with %zu pending: the "
			   "driver ignores the output watermark",
		    len, p->out.len);
	do {
		step = len - off < SMTP_PROTO_ENC_STEP ? len - off :
							 SMTP_PROTO_ENC_STEP;
		n = smtp_wire_enc(&p->enc, c + off, step,
		    last && off + step == len, tmp);
		if (p->enc.bad != 0) {
			/* Never the final dot: the server must discard
			 * what it got (RFC 5322 2.1.1 safety net). */
			char why[160];

			snprintf(why, sizeof(why),
			    "message not sent: line %llu %s (RFC 5322 2.1.1)",
			    p->enc.bad_line,
			    p->enc.bad == SMTP_WIRE_ENC_NUL ?
				"contains a NUL byte" :
				"is longer than 998 octets");
			smtp_proto_fail_note(p, SMTP_PROTO_FAIL_BODY, why, 0);
			return;
		}
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
	size_t before = p->out.len;

	if (n > p->out.len)
		n = p->out.len;
	buf_consume(&p->out, n);
	p->out_done += n;
	if (p->out_secret) {
		/* What moved to the front left a stale tail behind. */
		sasl_wipe(p->out.data + p->out.len, before - p->out.len);
		if (p->out.len == 0)
			p->out_secret = 0;
	}
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

enum smtp_proto_step
smtp_proto_step(const struct smtp_proto *p)
{
	if (p->state == SMTP_PROTO_S_FAILED)
		return p->fail_step;
	if (p->eom_pending)
		return SMTP_PROTO_STEP_END;
	return smtp_proto_steps[p->state];
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
