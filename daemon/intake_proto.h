/*
 * intake_proto.h - the server side of SMTP as a pure state machine: the
 * mirror of smtp_proto.  It is fed the client's bytes, produces the reply
 * bytes to write and a short series of events for its driver (intake.c),
 * which owns the socket, the clock and the spool.  No I/O here.
 *
 * Session:  greeting (220, or 554 for a client that is not allowed, or
 *           421 4.3.2 when the listener is full) -> EHLO/HELO ->
 *           MAIL FROM -> RCPT TO xN -> DATA -> EV_DATA -> data_start() ->
 *           354 -> EV_BODY... -> EV_END -> data_done() -> 250/452 ->
 *           (next transaction) ... QUIT -> 221 -> EV_CLOSE.
 * Offered (EHLO): PIPELINING, SIZE max, ENHANCEDSTATUSCODES, 8BITMIME,
 * DSN, SMTPUTF8.  RSET, NOOP, VRFY (252), HELP and QUIT work in every
 * state; STARTTLS, AUTH, BDAT and EXPN are answered 502.
 *
 * Input rules: a command line ends with CRLF; a bare LF is accepted as
 * its end too (lax clients), and a CR before it is dropped.  A command
 * line may hold at most INTAKE_PROTO_LINE_MAX bytes including its line
 * break; a longer one is discarded up to its end and answered 500 5.5.2.
 * In DATA, only <CRLF>.<CRLF> ends the message (RFC 5321 4.1.1.4): a
 * lone "." after or before a bare LF is message content, so no
 * other reading of the byte stream can split one message into two (SMTP
 * smuggling).  A leading dot of a line (after CRLF) is removed; a line
 * consisting of "." and a bare LF keeps its dot.
 *
 * Stored form (EV_BODY): every line ending becomes LF: CRLF and a bare
 * LF are stored as LF, and so is a bare CR, so the stored message never
 * holds a CR.  The relay (smtp_wire's encoder) turns CRLF, bare LF and
 * bare CR alike into CRLF on the wire, so what reaches the smarthost is
 * exactly what it would be had the client's bytes been stored as they
 * came; the spool holds one kind of line ending, as the sendq command
 * stores what local programs usually give it.  The size
 * counted against max_message_size is the message as it came on the
 * wire after dot-unstuffing (CRLF counted as two bytes), as RFC 1870
 * counts SIZE=.  Past the limit the rest of the message is read and
 * dropped (EV_ABORT once), then answered 552 5.3.4.
 *
 * Addresses: validated with mailmsg_addr_valid(); a bad one is 553 5.1.3
 * naming it.  An address with 8-bit bytes needs SMTPUTF8 on MAIL (553
 * 5.6.7 otherwise).  "<>" is the null sender; "<postmaster>" (any case)
 * as a recipient is qualified with the server's hostname.  Parameters
 * (MAIL: SIZE, BODY=7BIT|8BITMIME, SMTPUTF8, RET=FULL|HDRS, ENVID=xtext;
 * RCPT: NOTIFY=NEVER|SUCCESS,FAILURE,DELAY, ORCPT=type;xtext) are
 * validated and kept in struct intake_proto_txn; an unknown one is 555
 * 5.5.4, a malformed one 501 5.5.4.  More than max_recipients is 452
 * 4.5.3.  After INTAKE_PROTO_ERRORS_MAX rejected commands the session is
 * ended with 421 4.7.0.
 *
 * Junk commands (as Postfix's smtpd_junk_command_limit): NOOP, RSET,
 * VRFY, EXPN, HELP, ETRN and the other commands answered 502, unknown
 * commands, every HELO/EHLO after the first, RCPT beyond max_recipients
 * and a DATA refused by the driver (data_start(0), data_refuse()).  They
 * carry no mail: past max_junk_commands in a session the next one is
 * answered 421 4.7.0 and the session ends.  The count starts again after
 * each accepted message (250 to the final dot).  Every other command and
 * every chunk of message data is progress (intake_proto_progress()), which
 * is what the driver's inactivity timer should wait for: junk does not
 * restart it, so neither NOOPs nor a line sent byte by byte keep a session
 * alive beyond its timeout.
 *
 * Owns: struct intake_proto, its transaction, its bounded output buffer
 * and body chunk buffer.
 * May call: mailmsg (address rules), buf, util.  Pure: no I/O, no clock,
 * no randomness.
 *
 * DIAGNOSTICS: nothing fails: every protocol error is a reply to the
 * client.  Calls out of order (data_start without a pending EV_DATA)
 * are driver bugs and abort through log_fatalx().
 */
#ifndef SENDQ_INTAKE_PROTO_H
#define SENDQ_INTAKE_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* A command line, its CRLF included (RFC 5321 allows 512; SMTPUTF8 and
 * DSN parameters make longer lines legitimate). */
#define INTAKE_PROTO_LINE_MAX 1000
/* Body bytes handed over per EV_BODY at most. */
#define INTAKE_PROTO_BODY_CHUNK 4096
/* Output buffered at most: feed() stops taking commands above
 * INTAKE_PROTO_OUT_WATERMARK until the driver drains it. */
#define INTAKE_PROTO_OUT_WATERMARK 16384
#define INTAKE_PROTO_OUT_MAX       65536
/* Rejected commands before the session is ended. */
#define INTAKE_PROTO_ERRORS_MAX 20
/* ENVID: at most 100 characters (RFC 3461 4.4). */
#define INTAKE_PROTO_ENVID_MAX 100
/* ORCPT: at most 500 characters (RFC 3461 4.2). */
#define INTAKE_PROTO_ORCPT_MAX 500

/* How the session starts. */
enum intake_proto_greeting {
	INTAKE_PROTO_GREET,     /* 220 HOST ESMTP sendq */
	INTAKE_PROTO_DENY,      /* 554 5.7.1: client not in allow_networks;
				 * every command but QUIT then gets 503 */
	INTAKE_PROTO_BUSY,      /* 421 4.3.2: too many clients; then
				 * EV_CLOSE */
	INTAKE_PROTO_PEER_BUSY, /* 421 4.7.0: too many sessions of this
				 * peer (uid or address); then EV_CLOSE */
};

struct intake_proto_params {
	const char *hostname;         /* in the greeting, EHLO and replies;
					 * copied */
	uint64_t    max_message_size; /* SIZE; 0 = no limit */
	size_t      max_recipients;   /* per message; 0 = no limit */
	enum intake_proto_greeting greeting;
	unsigned max_junk_commands; /* per session (see above); 0 = no
					 * limit */
};

/* NOTIFY= of a recipient (RFC 3461); 0 = not given. */
#define INTAKE_PROTO_NOTIFY_NEVER   0x1
#define INTAKE_PROTO_NOTIFY_SUCCESS 0x2
#define INTAKE_PROTO_NOTIFY_FAILURE 0x4
#define INTAKE_PROTO_NOTIFY_DELAY   0x8

enum intake_proto_ret {
	INTAKE_PROTO_RET_NONE, /* RET= not given */
	INTAKE_PROTO_RET_FULL,
	INTAKE_PROTO_RET_HDRS,
};

enum intake_proto_body {
	INTAKE_PROTO_BODY_NONE, /* BODY= not given */
	INTAKE_PROTO_BODY_7BIT,
	INTAKE_PROTO_BODY_8BITMIME,
};

struct intake_proto_rcpt {
	char    *addr;   /* validated addr-spec */
	unsigned notify; /* INTAKE_PROTO_NOTIFY_* */
	char    *orcpt;  /* "type;xtext" as given, or NULL */
};

/* The transaction being assembled (valid from MAIL to the end of DATA). */
struct intake_proto_txn {
	char                     *sender; /* "" = null sender; NULL = no MAIL */
	struct intake_proto_rcpt *rcpts;
	size_t                    n_rcpts;
	enum intake_proto_ret     ret;
	char                     *envid; /* ENVID= xtext as given, or NULL */
	enum intake_proto_body    body;
	int                       smtputf8; /* SMTPUTF8 given on MAIL */
	uint64_t                  size;     /* SIZE= given, 0 = none */
};

enum intake_proto_ev_type {
	/* DATA was accepted syntactically: open the message (spool writer)
	 * and call intake_proto_data_start().  feed() takes nothing until
	 * then. */
	INTAKE_PROTO_EV_DATA = 1,
	/* Message bytes (stored form, see above) in ev.data[0..ev.len),
	 * valid until the next call into p. */
	INTAKE_PROTO_EV_BODY,
	/* The message grew past max_message_size: drop what was written.
	 * The rest is read and discarded, then 552 is answered by itself
	 * (no EV_END follows). */
	INTAKE_PROTO_EV_ABORT,
	/* The final dot was read: make the message durable, then call
	 * intake_proto_data_done().  feed() takes nothing until then. */
	INTAKE_PROTO_EV_END,
	/* Close the connection once the output is written. */
	INTAKE_PROTO_EV_CLOSE,
};

struct intake_proto_event {
	enum intake_proto_ev_type type;
	const char               *data; /* EV_BODY */
	size_t                    len;
};

/* Outcome of making the message durable, for intake_proto_data_done. */
enum intake_proto_result {
	INTAKE_PROTO_QUEUED,   /* 250 2.0.0 Ok: queued as ID */
	INTAKE_PROTO_NOSPACE,  /* 452 4.3.1 Insufficient system storage */
	INTAKE_PROTO_TEMPFAIL, /* 451 4.3.0 Local error in processing */
	INTAKE_PROTO_REJECTED, /* 554 5.6.0 Message refused: REASON (the
				 * content cannot be relayed as it is and
				 * cannot be re-encoded: msgfix.h; X.6.0 is
				 * RFC 3463's "other media error") */
};

struct intake_proto;

/* A new session; the greeting is already in the output.  Free with
 * intake_proto_free (NULL accepted). */
struct intake_proto *intake_proto_new(const struct intake_proto_params *params);
void                 intake_proto_free(struct intake_proto *p);

/*
 * Feed client bytes.  Returns how many of the len bytes were taken:
 * fewer than len when an event is waiting to be popped, when the driver
 * owes data_start()/data_done(), when the output holds more than
 * INTAKE_PROTO_OUT_WATERMARK bytes, or after EV_CLOSE (then nothing is
 * ever taken again, and bytes after QUIT are ignored).  Feed the rest
 * after handling the event / draining the output.  Never blocks.
 */
size_t intake_proto_feed(struct intake_proto *p, const void *data, size_t len);

/* The next event: 1 and *ev, or 0 when there is none.  Pop events after
 * every feed() and after data_start()/data_done()/timeout(). */
int
intake_proto_next_event(struct intake_proto *p, struct intake_proto_event *ev);

/* After EV_DATA: ok non-zero answers 354; zero answers 452 4.3.1 (the
 * spool cannot take a message now) and keeps the transaction. */
void intake_proto_data_start(struct intake_proto *p, int ok);

/* After EV_END: the reply to the final dot.  id (the queue id) is needed
 * with INTAKE_PROTO_QUEUED; with INTAKE_PROTO_REJECTED it is the reason
 * (one line, made printable); ignored otherwise.  Either way the
 * transaction ends. */
void intake_proto_data_done(struct intake_proto *p,
    enum intake_proto_result result, const char *id);

/*
 * After EV_DATA or EV_END: refuse the message for a reason the driver
 * found (free space below the reserve, a per-user limit): "452 4.3.1
 * text" (text made printable; without a line break).  After EV_DATA the
 * transaction is kept (as data_start(0)); after EV_END it ends.  Counts
 * as a junk command, so a client cannot retry forever within a session.
 */
void intake_proto_data_refuse(struct intake_proto *p, const char *text);

/* A number that grows with every command that is not junk and every
 * chunk of message data taken: the driver restarts its inactivity timer
 * only when it changed. */
uint64_t intake_proto_progress(const struct intake_proto *p);

/* The driver's command timer fired: 421 4.4.2, then EV_CLOSE. */
void intake_proto_timeout(struct intake_proto *p);

/* Bytes to write: *data, *len (both 0/NULL when none). */
void intake_proto_output(const struct intake_proto *p, const char **data,
    size_t *len);
/* n bytes of the output were written. */
void intake_proto_consumed(struct intake_proto *p, size_t n);

/* True while the driver owes data_start() or data_done(). */
int intake_proto_blocked(const struct intake_proto *p);
/* True once EV_CLOSE was produced. */
int intake_proto_closed(const struct intake_proto *p);

/* The current transaction (after EV_DATA, EV_END), owned by p. */
const struct intake_proto_txn *intake_proto_txn(const struct intake_proto *p);
/* The client's HELO/EHLO name made printable, or NULL before it. */
const char *intake_proto_helo(const struct intake_proto *p);
/* Size of the message read in the current/last DATA (wire bytes after
 * unstuffing). */
uint64_t intake_proto_msg_size(const struct intake_proto *p);

/*
 * The Received: field to put in front of a message (LF line endings):
 *   Received: from HELO (CLIENT)
 *   	by HOST (sendq) with PROTO id ID
 *   	for <RCPT>; DATE
 * PROTO is SMTP after HELO, ESMTP after EHLO, UTF8SMTP with SMTPUTF8
 * (RFC 3848, RFC 6531); "for" only with a single recipient.  client is
 * the driver's description ("[127.0.0.1]", "uid 1000"), date an RFC 5322
 * date-time.  Returns a heap string (caller frees).
 */
char *intake_proto_received(const struct intake_proto *p, const char *client,
    const char *id, const char *date);

#endif
