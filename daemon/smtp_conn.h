/*
 * smtp_conn.h - one outbound connection to a smarthost: socket, timeouts,
 * TLS, driving smtp_proto, streaming message bodies from the spool.  A
 * connection carries any number of messages one after another.
 *
 * Life of a connection:
 *   smtp_conn_open() -> (connect, TLS, greeting, EHLO...) -> on_ready
 *   on_ready: smtp_conn_send() a message, or smtp_conn_close()
 *   -> on_message_done(result) -> on_ready again (the connection is
 *      reusable) or on_closed(result) when it failed.
 *   With PIPELINING: on_pipeline once the message's final dot is out,
 *   smtp_conn_send() the next one then, and its on_message_done follows
 *   the first one's without an on_ready between.
 * on_closed is called exactly once unless smtp_conn_close() was called
 * first; after on_closed the connection frees itself once the callback
 * returns (never call smtp_conn_* on it afterwards).
 * smtp_conn_close() sends QUIT when possible, frees everything
 * asynchronously and never calls back.
 *
 * Owns: the socket and TLS session of one connection, per-phase timers,
 * the facts of each result.
 * May call: smtp_proto, tls, secret, authsrc, retry (types only), config
 * (types), util, log, libevent.
 *
 * Timeouts come from the smarthost's timeout_* keys (0 = the RFC 5321
 * 4.5.3.2 default): connect, TLS handshake (the whole handshake), greeting
 * and each command reply (a whole reply, not each read), each body write,
 * the reply to the final dot.  session_max (0 = 30 minutes) bounds the
 * time from the start until the connection is ready, and again each
 * message from smtp_conn_send() to its result, so a server that drips
 * bytes cannot hold a connection forever.  Every wait has a timer.
 *
 * AUTH: when the smarthost's auth is not none, the secret is fetched for
 * every connection (so refreshed tokens are used) and wiped as soon as
 * smtp_proto has its copy: from authsrc, asynchronously, when
 * params->auth is set (sendqd); else with secret_load().  A server that
 * refuses an OAuth token (334 error challenge, 535) makes the connection
 * start over once with a forced refresh before that is reported.
 *
 * Results are facts, not decisions: where it happened (a retry_phase),
 * what happened (a reply with its code and enhanced status, a timeout, a
 * lost connection, a TLS failure, ...), per recipient the RCPT reply.
 * What they mean (delivered, deferred, bounced; the relay fine, down or
 * resting) is decided by retry_attempt() / retry_decide() in retry.c,
 * and only there.
 *
 * DIAGNOSTICS: results carry the server reply or a description of the
 * local failure ("connect to 127.0.0.1:465: Connection refused",
 * "certificate verification failed: ...", "timeout after 300s waiting
 * for the greeting from 127.0.0.1:25", "session_max of 1800s exceeded
 * ...", the secret module's message when the secret cannot be read).
 */
#ifndef SENDQ_SMTP_CONN_H
#define SENDQ_SMTP_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "retry.h"
#include "smtp_proto.h"
#include "tls.h"

struct authsrc;
struct event_base;
struct evdns_base;
struct smtp_conn;

struct smtp_conn_params {
	struct event_base             *base;
	struct evdns_base             *dns; /* resolver (reads /etc/hosts
						 * first); shared */
	const struct config_smarthost *smarthost;
	struct tls_ctx                *tls; /* NULL when tls = none */
	const char                    *ehlo_name;
	/* Where the AUTH secret comes from, asynchronously (authsrc.h);
	 * NULL: secret_load() in smtp_conn_open() (tools, tests). */
	struct authsrc *auth;
};

/* One message to send.  All pointers must stay valid until
 * on_message_done; body_fd is owned (closed) by the connection.  Zero
 * the struct first: fields added later default to 0. */
struct smtp_conn_message {
	const char        *id; /* queue id, for logs */
	const char        *sender;
	const char *const *rcpts;
	size_t             n_rcpts;
	int                body_fd; /* the message, read from offset 0 */
	/* Its size in bytes when the caller knows it (the queue index),
	 * else 0 (fstat() then says).  Declared with SIZE=, and the body
	 * must be exactly that long: one read of a small body sees its end
	 * too (no read for the end of file, no fstat), and a file found
	 * shorter or longer fails the message before the final dot (the
	 * connection is dropped: the server discards what it got). */
	uint64_t body_size;
	/* Known to the caller (the spool), not scanned here: reading a
	 * large body twice is costly.  0 = unknown / no. */
	int body_8bit;      /* declare BODY=8BITMIME when
						 * the server offers it */
	int needs_smtputf8; /* non-ASCII addresses or
						 * headers: fails (5xx, local)
						 * when the server lacks
						 * SMTPUTF8 */
	/* DSN parameters (RFC 3461), passed on only to a server that
	 * offers DSN (smtp_proto.h).  Read during smtp_conn_send() only:
	 * the caller may free them when it returns. */
	enum smtp_proto_ret ret;    /* RET= */
	const char         *envid;  /* ENVID= xtext, or NULL */
	const unsigned     *notify; /* n_rcpts SMTP_PROTO_NOTIFY_*
						 * sets (0 = none), or NULL */
	const char *const  *orcpts; /* n_rcpts "type;xtext" or
						 * NULL entries, or NULL */
};

struct smtp_conn_result {
	/* What ended the message (the transaction's last reply: to MAIL,
	 * DATA or the final dot; the last refused RCPT's when none was
	 * accepted; our own 5xx verdict) or the connection (its failure). */
	struct retry_fact fact;
	char              reply[512]; /* reply or local error,
						 * printable */
	/* Per recipient, while a message was in flight (n_rcpts entries,
	 * else NULL and 0; owned by the connection, valid during the
	 * callback): its RCPT reply as a fact, code 0 when not answered. */
	const struct retry_fact *rcpt;
	/* The server's reply to each refused recipient's RCPT (NULL for an
	 * accepted or untried one); same lifetime as rcpt. */
	const char *const *rcpt_reply;
	size_t             n_rcpts;
	char               tls[128];    /* "TLS1.3 AES-256-GCM..." or
						 * "none" */
	char               verify[128]; /* "ok", "insecure", reason */
	/* Non-zero when the OAuth grant of the smarthost is refused
	 * (authsrc HELD; on_closed only): the relay is held, the message
	 * was not tried.  Not a fact for retry.c (fact says only where):
	 * the mail is neither deferred nor bounced, and the relay is
	 * neither down nor resting.  Failing to get the secret otherwise
	 * is a fact in phase AUTH: TIMEOUT (a helper's time limit) or
	 * NETWORK (the token endpoint down or failing), an ordinary
	 * deferral; CREDENTIALS (unreadable, the helper failed). */
	int auth_held;
};

struct smtp_conn_callbacks {
	void (*on_ready)(struct smtp_conn *c, void *arg);
	void (*on_message_done)(struct smtp_conn *c,
	    const struct smtp_conn_result *r, void *arg);
	void (*on_closed)(struct smtp_conn *c, const struct smtp_conn_result *r,
	    void *arg);
	/* Optional (NULL: one message at a time).  The current message's
	 * final dot is produced and the server offers PIPELINING: a
	 * smtp_conn_send() now (from the callback: in the same write as
	 * the dot) or later, until the current message's result, puts the
	 * next message behind it (RFC 2920 3.1).  Its on_message_done
	 * follows the current one's.  If the connection fails before the
	 * current message's result, on_closed reports the current message
	 * only: the one behind it was not delivered (its body cannot have
	 * been sent), is not reported, and is the owner's to retry. */
	void (*on_pipeline)(struct smtp_conn *c, void *arg);
};

/* Start connecting (host must be an address literal or resolvable
 * without leaving the machine: /etc/hosts first).  Never fails
 * synchronously: problems arrive as on_closed.  cb is copied. */
struct smtp_conn *smtp_conn_open(const struct smtp_conn_params *params,
    const struct smtp_conn_callbacks *cb, void *arg);

/* Send a message; only from on_ready (or later while idle), or behind
 * the current message from on_pipeline (or later, until that message's
 * on_message_done; one message behind it at most).  Returns 0
 * (msg->body_fd now belongs to the connection), or -1 on misuse
 * (connection neither idle nor in that window, no recipients,
 * body_fd < 0; body_fd stays the caller's). */
int smtp_conn_send(struct smtp_conn *c, const struct smtp_conn_message *msg);

/* QUIT and free, asynchronously; no callback afterwards.  Safe to call
 * from inside a callback of this connection. */
void smtp_conn_close(struct smtp_conn *c);

/* Close at once (no QUIT) and free synchronously; no callback afterwards.
 * For shutdown: must NOT be called from inside a callback of this
 * connection.  A message in flight is simply not delivered by us. */
void smtp_conn_abort(struct smtp_conn *c);
/* Call gone(c, arg) from the event loop when c is freed: after
 * on_closed, or after smtp_conn_close() (its QUIT answered, or its
 * QUIT timeout), never after smtp_conn_abort().  For a stop that waits
 * for its connections to end (scheduler_shutdown).  c is still valid
 * during the call; nothing may be called on it. */
void smtp_conn_on_gone(struct smtp_conn *c,
    void (*gone)(struct smtp_conn *c, void *arg), void *arg);
/* 1 when the current message's final dot is out (written, or in the
 * output behind the rest of its body) and its reply is awaited: a stop
 * lets it finish (a message pipelined behind it has not been sent). */
int smtp_conn_awaits_dot_reply(const struct smtp_conn *c);

#endif
