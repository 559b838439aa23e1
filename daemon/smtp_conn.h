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
 * on_closed is called exactly once unless smtp_conn_close() was called
 * first; after on_closed the connection frees itself once the callback
 * returns (never call smtp_conn_* on it afterwards).
 * smtp_conn_close() sends QUIT when possible, frees everything
 * asynchronously and never calls back.
 *
 * Owns: the socket and TLS session of one connection, per-phase timers.
 * May call: smtp_proto, tls, config (types), util, log, libevent.
 *
 * DIAGNOSTICS: results carry the server reply or a description of the
 * local failure ("connect to 127.0.0.1:465: Connection refused",
 * "certificate verification failed: ...", "timeout waiting for
 * greeting").
 */
#ifndef SENDQ_SMTP_CONN_H
#define SENDQ_SMTP_CONN_H

#include <stddef.h>

#include "config.h"
#include "tls.h"

struct event_base;
struct evdns_base;
struct smtp_conn;

struct smtp_conn_params {
	struct event_base		*base;
	struct evdns_base		*dns;	/* resolver (reads /etc/hosts
						 * first); shared */
	const struct config_smarthost	*smarthost;
	struct tls_ctx			*tls;	/* NULL when tls = none */
	const char			*ehlo_name;
};

/* One message to send.  All pointers must stay valid until
 * on_message_done; body_fd is owned (closed) by the connection. */
struct smtp_conn_message {
	const char		*id;	/* queue id, for logs */
	const char		*sender;
	const char *const	*rcpts;
	size_t			 n_rcpts;
	int			 body_fd; /* the message, read from offset 0 */
};

enum smtp_conn_outcome {
	SMTP_CONN_DELIVERED,	/* 250 after DATA: the server has it */
	SMTP_CONN_DEFERRED,	/* temporary: try again later */
	SMTP_CONN_FAILED,	/* permanent (5xx) */
};

struct smtp_conn_result {
	enum smtp_conn_outcome	 outcome;
	int			 code;		/* server reply code or 0 */
	char			 reply[512];	/* reply or local error,
						 * printable */
	/* Per recipient (message results only, n_rcpts entries, owned by
	 * the connection, valid during the callback): 2 accepted, 4
	 * temporary, 5 permanent, 0 not tried. */
	const int		*rcpt_class;
	size_t			 n_rcpts;
	char			 tls[128];	/* "TLS1.3 AES-256-GCM..." or
						 * "none" */
	char			 verify[128];	/* "ok", "insecure", reason */
};

struct smtp_conn_callbacks {
	void	(*on_ready)(struct smtp_conn *c, void *arg);
	void	(*on_message_done)(struct smtp_conn *c,
		    const struct smtp_conn_result *r, void *arg);
	void	(*on_closed)(struct smtp_conn *c,
		    const struct smtp_conn_result *r, void *arg);
};

/* Start connecting (host must be an address literal or resolvable
 * without leaving the machine: /etc/hosts first).  Never fails
 * synchronously: problems arrive as on_closed.  cb is copied. */
struct smtp_conn	*smtp_conn_open(const struct smtp_conn_params *params,
	    const struct smtp_conn_callbacks *cb, void *arg);

/* Send a message; only from on_ready (or later while idle).  Returns 0
 * (msg->body_fd now belongs to the connection), or -1 on misuse
 * (connection not idle, no recipients, body_fd < 0; body_fd stays the
 * caller's). */
int	smtp_conn_send(struct smtp_conn *c,
	    const struct smtp_conn_message *msg);

/* QUIT and free, asynchronously; no callback afterwards.  Safe to call
 * from inside a callback of this connection. */
void	smtp_conn_close(struct smtp_conn *c);

/* Close at once (no QUIT) and free synchronously; no callback afterwards.
 * For shutdown: must NOT be called from inside a callback of this
 * connection.  A message in flight is simply not delivered by us. */
void	smtp_conn_abort(struct smtp_conn *c);

#endif
