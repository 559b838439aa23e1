/*
 * smtp_proto.h - the outbound SMTP client as a pure state machine: it is
 * fed the server's bytes and told what the connection did; it produces the
 * bytes to write and a queue of events.  No sockets, no clock, no TLS
 * session: smtp_conn.c drives it.
 *
 * Session:  greeting -> EHLO (HELO if EHLO is refused)
 *           [tls = starttls: STARTTLS -> NEED_TLS -> tls_done -> EHLO]
 *           [auth: AUTH MECH, 334 challenges and responses, 235]
 *           -> READY.
 * Message:  send_mail() -> MAIL FROM, RCPT TO xN (RCPT_STATUS each),
 *           DATA -> NEED_BODY -> body() chunks -> "." -> TXN_DONE -> READY.
 *           With PIPELINING the next send_mail() may follow the "."
 *           before its verdict (smtp_proto_can_send_mail()).
 *           When no recipient is accepted, RSET is sent instead of DATA and
 *           TXN_DONE reports the failure.
 * End:      quit() -> QUIT -> CLOSED.  Any failure -> FAILED, then
 *           nothing more is produced except, where still safe, QUIT.
 *
 * Guarantee 2 lives here: with tls = starttls, a server that does not
 * offer STARTTLS or answers it with anything but 220 gets nothing more
 * than QUIT (FAILED, SMTP_PROTO_FAIL_TLS); bytes that follow the 220 in the
 * same feed are an injection attempt (FAILED, SMTP_PROTO_FAIL_PROTO); after
 * TLS only the second EHLO's capabilities count.
 *
 * Owns: protocol state, reply parsing (through smtp_wire), body encoding
 * (CRLF normalisation and dot-stuffing), bounded input/output buffers.
 * May call: smtp_wire, sasl, mailmsg (the envelope address rule), buf, util.
 *
 * Limits: the output buffer holds at most SMTP_PROTO_OUT_MAX bytes.
 * Commands are small; the body is what fills it, so the driver feeds
 * body() only while smtp_proto_output_pending() is below
 * SMTP_PROTO_OUT_WATERMARK and never more than SMTP_PROTO_BODY_CHUNK_MAX
 * bytes per call (a violation is a driver bug and aborts).  At most
 * SMTP_PROTO_EVENTS_MAX events are queued: the driver pops every event
 * after each call into p.  Without PIPELINING one command is outstanding
 * at a time.  With params.pipelining and the server's PIPELINING (RFC
 * 2920), MAIL, up to SMTP_PROTO_PIPE_RCPTS RCPTs and (with the last
 * recipient) DATA are written in one go and their replies matched in
 * order; more recipients follow in further groups.  Either way a reply
 * that arrives before the command it answers was fully consumed() is a
 * protocol error, so call consumed() as soon as bytes are written and
 * before feeding what was read afterwards.  With PIPELINING, DATA may be
 * in flight when quit() is called: a 354 then still asks for the body.
 *
 * AUTH (after the EHLO that counts, before READY): never without TLS
 * unless peer_is_loopback; the mechanism is params.auth, or with AUTO
 * the strongest password mechanism both sides have (sasl_pick); a server
 * without AUTH, without the configured mechanism, a 535 or any 5xx, and
 * a SCRAM server that cannot prove it knows the password are FAILED
 * with SMTP_PROTO_FAIL_AUTH; a 4xx is FAILED with SMTP_PROTO_FAIL_RESP.
 * Reply texts during AUTH are the server's, with anything that looks
 * like an echoed credential masked (sasl_redact); the secret is wiped
 * from every buffer of the core once written.
 *
 * MAIL parameters: SIZE= when offered and txn.size > 0; BODY=8BITMIME
 * when txn.body_8bit and offered (an 8-bit body to a server without
 * 8BITMIME is sent as it is, without BODY=, as Postfix does); SMTPUTF8
 * when txn.needs_smtputf8.  A message larger than the server's SIZE
 * limit, or one that needs SMTPUTF8 when the server lacks it, is not
 * offered at all: TXN_DONE carries a local 552 5.3.4 / 553 5.6.7 reply.
 *
 * DSN parameters (RFC 3461), only when the server offers DSN: RET= and
 * ENVID= on MAIL, NOTIFY= and ORCPT= on each RCPT, as txn gives them.
 * To a server without DSN none is sent and the message is relayed all
 * the same (RFC 3461 4.2 would have the relay itself report success
 * for NOTIFY=SUCCESS; we do not: the parameters are simply not passed
 * on).  A value that is not valid RFC 3461 text (an ENVID over 100 or an
 * ORCPT over 500 characters, non-xtext bytes, NOTIFY bits that mix
 * NEVER with others) is left out rather than sent.
 *
 * DIAGNOSTICS: protocol errors are events (FAILED with a class and text),
 * never return codes; the functions below only fail on misuse.
 */
#ifndef SENDQ_SMTP_PROTO_H
#define SENDQ_SMTP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "sasl.h"

#define SMTP_PROTO_OUT_WATERMARK  (64 * 1024)
#define SMTP_PROTO_BODY_CHUNK_MAX (4 * 1024 * 1024)
#define SMTP_PROTO_OUT_MAX        (16 * 1024 * 1024)
#define SMTP_PROTO_EVENTS_MAX     32
/* Recipients per pipelined group (keeps the events of one feed well
 * below SMTP_PROTO_EVENTS_MAX). */
#define SMTP_PROTO_PIPE_RCPTS 16

struct smtp_wire_caps;

enum smtp_proto_tls {
	SMTP_PROTO_TLS_NONE,     /* cleartext session */
	SMTP_PROTO_TLS_IMPLICIT, /* the connection is already TLS */
	SMTP_PROTO_TLS_STARTTLS, /* upgrade required before READY */
};

struct smtp_proto_params {
	const char         *ehlo_name; /* our host name for EHLO */
	enum smtp_proto_tls tls;
	int                 peer_is_loopback;

	/* AUTH: after the (post-TLS) EHLO, before READY.  AUTH is
	 * never sent without TLS unless peer_is_loopback. */
	enum sasl_mech auth; /* NONE: never authenticate */
	const char    *auth_user;
	const char    *auth_secret; /* password or bearer token;
						 * copied, wiped on free */
	const char    *auth_nonce;  /* SCRAM client nonce from the
						 * caller (random, printable,
						 * no ','); the core draws no
						 * randomness */
	int            pipelining;  /* pipeline MAIL/RCPT/DATA
						 * when the server offers it */
};

enum smtp_proto_event_type {
	SMTP_PROTO_EV_NEED_TLS,    /* 220 to STARTTLS: write all pending
				 * output (none is expected), then start
				 * the TLS handshake and call tls_done() */
	SMTP_PROTO_EV_READY,       /* a transaction may start: send_mail() */
	SMTP_PROTO_EV_RCPT_STATUS, /* reply to RCPT rcpt_index */
	SMTP_PROTO_EV_NEED_BODY,   /* DATA got 354: feed body() */
	SMTP_PROTO_EV_TXN_DONE,    /* the transaction ended: reply has the
				 * final answer (250 = accepted) */
	SMTP_PROTO_EV_FAILED,      /* the session failed; see fail */
	SMTP_PROTO_EV_CLOSED,      /* QUIT answered (or EOF after QUIT) */
};

enum smtp_proto_fail {
	SMTP_PROTO_FAIL_NONE,
	SMTP_PROTO_FAIL_CONN,  /* connection lost / EOF mid-session */
	SMTP_PROTO_FAIL_PROTO, /* malformed, oversized or unexpected
				 * bytes from the server */
	SMTP_PROTO_FAIL_TLS,   /* STARTTLS required but not offered,
				 * refused, or the handshake failed */
	SMTP_PROTO_FAIL_RESP,  /* the server refused (greeting, EHLO,
				 * MAIL): see reply */
	SMTP_PROTO_FAIL_AUTH,  /* authentication impossible or refused
				 * (535: bad credentials; no common
				 * mechanism; AUTH would need TLS); what
				 * it means is retry.c's decision */
	SMTP_PROTO_FAIL_BODY,  /* the message holds a NUL or a line over
				 * 998 octets (smtp_wire.h): the final dot
				 * is never sent, the rest of the output
				 * must be dropped and the connection
				 * closed so the server discards the
				 * partial message; the message's fault,
				 * permanent (reply.text says why) */
};

/* What a reply answered, or where the session was when an event without
 * one happened (smtp_conn turns it into a retry_phase fact). */
enum smtp_proto_step {
	SMTP_PROTO_STEP_GREETING,
	SMTP_PROTO_STEP_EHLO, /* EHLO, or HELO after it */
	SMTP_PROTO_STEP_STARTTLS,
	SMTP_PROTO_STEP_TLS, /* the handshake after STARTTLS */
	SMTP_PROTO_STEP_AUTH,
	SMTP_PROTO_STEP_MAIL,
	SMTP_PROTO_STEP_RCPT,
	SMTP_PROTO_STEP_DATA,
	SMTP_PROTO_STEP_BODY, /* taking the message text */
	SMTP_PROTO_STEP_END,  /* the reply to the final dot */
	SMTP_PROTO_STEP_IDLE, /* READY, RSET, QUIT, closed */
};

struct smtp_proto_reply {
	int  code;         /* 3 digits, 0 when there is none */
	char enhanced[16]; /* "5.1.1" or "" */
	char text[512];    /* whole reply, lines joined by " / ",
				 * printable ASCII only, truncated */
	int  local;        /* made up by the core, not sent by the
				 * server: a failure note (code 0) or a
				 * synthesized TXN_DONE verdict (552 5.3.4
				 * message larger than the server's SIZE,
				 * 553 5.6.7 SMTPUTF8 needed, not offered) */
};

struct smtp_proto_event {
	enum smtp_proto_event_type type;
	enum smtp_proto_fail       fail;       /* FAILED only */
	enum smtp_proto_step       step;       /* what reply answered (a
						 * TXN_DONE after every RCPT
						 * was refused: RCPT, with
						 * the last refusal); for
						 * FAILED where it failed */
	size_t                     rcpt_index; /* RCPT_STATUS only */
	struct smtp_proto_reply    reply;      /* the server reply that
						 * caused the event, if
						 * any */
};

/* RET= of a transaction (RFC 3461 4.3). */
enum smtp_proto_ret {
	SMTP_PROTO_RET_NONE,
	SMTP_PROTO_RET_FULL,
	SMTP_PROTO_RET_HDRS,
};

/* NOTIFY= bits of a recipient (RFC 3461 4.1), as ENVELOPE_NOTIFY_*. */
#define SMTP_PROTO_NOTIFY_NEVER   0x1
#define SMTP_PROTO_NOTIFY_SUCCESS 0x2
#define SMTP_PROTO_NOTIFY_FAILURE 0x4
#define SMTP_PROTO_NOTIFY_DELAY   0x8

struct smtp_proto_txn {
	const char        *sender; /* "" = null sender <> */
	const char *const *rcpts;
	size_t             n_rcpts;
	uint64_t           size;           /* message size in bytes, for
						 * SIZE=; 0 = unknown */
	int                body_8bit;      /* BODY=8BITMIME when offered */
	int                needs_smtputf8; /* non-ASCII addresses or
						 * headers: SMTPUTF8 required */
	/* DSN parameters, sent only where the server offers DSN. */
	enum smtp_proto_ret ret;    /* RET= */
	const char         *envid;  /* ENVID= xtext, or NULL */
	const unsigned     *notify; /* n_rcpts SMTP_PROTO_NOTIFY_*
						 * bit sets (0 = none), or
						 * NULL */
	const char *const  *orcpts; /* n_rcpts "type;xtext" or
						 * NULL entries, or NULL */
};

struct smtp_proto;

/* A new session, waiting for the greeting.  params is copied (strings
 * too).  Free with smtp_proto_free (NULL accepted). */
struct smtp_proto *smtp_proto_new(const struct smtp_proto_params *params);
void               smtp_proto_free(struct smtp_proto *p);

/* Bytes read from the server (after TLS decryption).  Processes every
 * complete reply and queues events.  Returns 0; a protocol violation is
 * reported as a FAILED event. */
int smtp_proto_feed(struct smtp_proto *p, const void *data, size_t len);
/* The server closed the connection (or reading failed). */
void smtp_proto_eof(struct smtp_proto *p);
/* The STARTTLS handshake finished (ok != 0) or failed. */
void smtp_proto_tls_done(struct smtp_proto *p, int ok);

/* Start a transaction; only when smtp_proto_can_send_mail().  The txn
 * strings are copied.  Returns 0, or -1 when no transaction may start,
 * there is no recipient or an address fails mailmsg_addr_valid() (the
 * sender may be "") -- misuse: the queue holds only addresses that
 * passed it. */
int
smtp_proto_send_mail(struct smtp_proto *p, const struct smtp_proto_txn *txn);
/*
 * Non-zero when send_mail() is accepted: READY, or (RFC 2920 3.1) with
 * params.pipelining and the server's PIPELINING once the current
 * message's final "." is produced (body() with last) and its verdict
 * not yet read.  The next message's MAIL, RCPTs and DATA then follow the
 * dot in the output at once.  Replies come in order: the dot's reply
 * gives the first message's TXN_DONE (step END), and only then come the
 * second message's events; a failure before that reply (EOF, 421,
 * garbage) is FAILED at step END, as it is without pipelining, and the
 * second message was not delivered (its body cannot have been sent).  A
 * second message the core refuses itself (SIZE, SMTPUTF8) gets its
 * TXN_DONE right after the first's.  Not after quit().
 */
int smtp_proto_can_send_mail(const struct smtp_proto *p);
/* Message bytes after NEED_BODY, in any chunking; last marks the end (a
 * missing final line break is added).  Line endings are normalised to
 * CRLF and lines starting with "." are dot-stuffed.  Callers should feed
 * more only while smtp_proto_output_pending() is small.  A NUL byte or a
 * line over 998 octets (a spool file that escaped intake's checks: old
 * or damaged) ends the session with FAILED, SMTP_PROTO_FAIL_BODY, and
 * the message is never terminated. */
void
smtp_proto_body(struct smtp_proto *p, const void *chunk, size_t len, int last);
/* End the session politely (QUIT).  When READY, QUIT is sent now; while
 * a command or the body is in flight it is sent at the next point where
 * a command would follow (the in-flight step's events are still queued;
 * a transaction cut short this way gets no TXN_DONE).  No-op after
 * FAILED or CLOSED. */
void smtp_proto_quit(struct smtp_proto *p);

/* Bytes to write: sets *data and *len to the pending output (len 0 = none).
 * The pointer is valid until the next call into p. */
void smtp_proto_output(struct smtp_proto *p, const void **data, size_t *len);
/* n bytes of that output were written. */
void   smtp_proto_consumed(struct smtp_proto *p, size_t n);
size_t smtp_proto_output_pending(const struct smtp_proto *p);

/* Pop the next event into *ev.  Returns 1, or 0 when there is none. */
int smtp_proto_next_event(struct smtp_proto *p, struct smtp_proto_event *ev);

/* The step the session is at (after FAILED: the step it failed in). */
enum smtp_proto_step smtp_proto_step(const struct smtp_proto *p);

/* Name of the current state, for logs. */
const char *smtp_proto_state_name(const struct smtp_proto *p);
/* Non-zero when TLS is active (implicit, or after tls_done(ok)). */
int smtp_proto_tls_active(const struct smtp_proto *p);
/* What the server's last successful EHLO offered (all zero before it,
 * after HELO, and right after tls_done(ok) until the new EHLO reply).
 * Owned by p, valid until smtp_proto_free. */
const struct smtp_wire_caps *smtp_proto_caps(const struct smtp_proto *p);

#endif
