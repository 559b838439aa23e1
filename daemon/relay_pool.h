/*
 * relay_pool.h - one relay per smarthost: its connection slots, its rate
 * limit, whether it is down or resting and until when, its counters and
 * its last error, and how it shows in the status.
 *
 * Owns: struct relay_pool, struct relay, struct relay_conn (the slots;
 * the scheduler opens a connection in a slot and gets the slot back in
 * smtp_conn's callbacks), each relay's TLS context (and the contexts a
 * reload replaced, until the pool is freed), the idle timers.
 * May call: smtp_conn (close, abort), tls, retry (relay_next), json_write,
 * envelope (free), config, log, util, libevent timers.  No clock: times
 * are passed in (seconds, or milliseconds where named _ms).
 *
 * The scheduler decides what a relay does; the pool keeps the books:
 *   rate     a token bucket per relay (rate = N/unit), relay_rate_take()
 *   down     relay_mark_down() with retry.c's verdict (down or resting),
 *            relay_mark_up() once a session got ready again
 *   slots    max_connections per relay: relay_conn_free_slot(),
 *            relay_conn_idle(), relay_conn_begin() / relay_conn_gone()
 *
 * DIAGNOSTICS: relay_pool_new and relay_pool_reconfigure return a
 * negative code with err (TLS credentials, a changed smarthost list);
 * relay_mark_* log the relay's state changes.
 */
#ifndef SENDQ_RELAY_POOL_H
#define SENDQ_RELAY_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "json_write.h"
#include "retry.h"
#include "util.h"

struct event;
struct event_base;
struct envelope;
struct queue_entry;
struct smtp_conn;
struct tls_ctx;

#define RELAY_ERROR_MAX 256 /* bytes of last_error kept */

/* A connection slot.  The scheduler sets conn (smtp_conn_open), cur,
 * cur_env and attempt; the pool the rest. */
struct relay_conn {
	struct relay       *relay;      /* whose slot */
	struct smtp_conn   *conn;       /* NULL: slot free */
	int                 idle;       /* ready, no message */
	int                 ready_once; /* the session got ready */
	int                 retire;     /* close at the next ready */
	unsigned            sent;       /* messages carried */
	struct event       *idle_timer;
	struct queue_entry *cur;     /* message on it, or NULL */
	struct envelope    *cur_env; /* its envelope, or NULL */
	unsigned            attempt;
	/* Pipelined behind cur (smtp_conn on_pipeline): becomes cur at
	 * cur's result.  pipe_open: cur's dot is out and the connection
	 * takes a message behind it (nxt is NULL). */
	struct queue_entry *nxt;
	struct envelope    *nxt_env;
	unsigned            nxt_attempt;
	int                 pipe_open;
	/* A stop (scheduler_shutdown) waits for this connection to end
	 * (smtp_conn_on_gone); NULL: not waited for. */
	struct smtp_conn *stop_conn;
};

struct relay {
	struct relay_pool             *pool;
	const struct config_smarthost *sh;
	int                            index;   /* smarthost index */
	struct tls_ctx                *tls;     /* NULL: tls = none */
	struct relay_conn             *conns;   /* max_connections slots */
	unsigned                       n_conns; /* slots in use */
	int                            down;
	int64_t                        down_until;
	unsigned                       down_count; /* failures in a row */
	double                         tokens;     /* rate limit bucket */
	int64_t                        tokens_at;  /* ms */
	unsigned long                  n_sent, n_deferred, n_failed;
	char                           last_error[RELAY_ERROR_MAX];
	int64_t                        last_error_at; /* 0: none */
};

struct relay_pool {
	struct relay    *relays; /* one per smarthost, in
						 * config order */
	size_t           n;
	void            *owner;   /* the scheduler */
	struct tls_ctx **old_tls; /* replaced by reloads */
	size_t           n_old_tls;
};

/*
 * A relay per smarthost of cfg (which must outlive the pool, or be
 * replaced by relay_pool_reconfigure), with their TLS contexts and idle
 * timers on base; owner is kept for the connection callbacks.  Returns 0
 * and *out, or a negative code with err (unreadable TLS credentials).
 */
int relay_pool_new(struct event_base *base, const struct config *cfg,
    void *owner, int64_t now_ms, struct relay_pool **out, struct sq_err *err);
/* Abort every connection and free everything (NULL accepted). */
void relay_pool_free(struct relay_pool *p);
/* Abort every connection now (shutdown): their messages stay queued.
 * cur and nxt (the index entries) are left to the caller; cur_env and
 * nxt_env are freed. */
void relay_pool_abort_all(struct relay_pool *p);

/*
 * Reload with cfg: the same smarthosts (names, order, max_connections)
 * or SQ_ECONFIG with err; new TLS contexts are built first (on failure
 * nothing changed).  Then each relay takes its new settings and a fresh
 * start (not down, full bucket), open connections are retired (closed
 * once their current message is done).  Returns 0 or a negative code.
 */
int relay_pool_reconfigure(struct relay_pool *p, const struct config *cfg,
    int64_t now_ms, struct sq_err *err);

/* Rate limit: take a token (1) or not (0: wait relay_rate_wait_ms()). */
int relay_rate_take(struct relay *r, int64_t now_ms);
/* Milliseconds until the bucket holds a token again (0: it does). */
int64_t relay_rate_wait_ms(const struct relay *r);

/* The relay failed with verdict relay (RETRY_RELAY_DOWN or _REST; reply
 * the text): down until retry_relay_next(); logs it (REST loudly). */
void relay_mark_down(struct relay *r, const struct retry_policy *pol,
    enum retry_relay relay, const char *rule, const char *reply, int64_t now,
    uint32_t rnd);
/* A session of the relay got ready: up again (logged when it was down). */
void relay_mark_up(struct relay *r);
/* Whether a probe connection may be opened now (down, none open, time
 * reached). */
int relay_probe_due(const struct relay *r, int64_t now);
/* Remember text (at most RELAY_ERROR_MAX - 1 bytes of it) as the last
 * error, at now. */
void relay_note_error(struct relay *r, const char *text, int64_t now);

/* A free slot of r, or NULL when max_connections are open. */
struct relay_conn *relay_conn_free_slot(struct relay *r);
/* A ready connection of r with no message that is not retiring, or
 * NULL. */
struct relay_conn *relay_conn_idle(struct relay *r);
/* A connection of r that takes a message behind its current one
 * (pipe_open, no nxt, not retiring), or NULL. */
struct relay_conn *relay_conn_pipe_open(struct relay *r);
/* The slot is about to get a connection: counters reset, counted. */
void relay_conn_begin(struct relay_conn *cc);
/* The connection of the slot has closed by itself: slot free again. */
void relay_conn_gone(struct relay_conn *cc);
/* Close the connection of the slot (QUIT) and free the slot. */
void relay_conn_close(struct relay_conn *cc);
/* The connection is ready with no message (the idle timer runs), or
 * has one (it stops). */
void relay_conn_set_idle(struct relay_conn *cc);
void relay_conn_set_busy(struct relay_conn *cc);
/* Forget the slot's message: cur_env freed, cur and cur_env NULL. */
void relay_conn_release(struct relay_conn *cc);
/* The same for the message behind it: nxt_env freed, nxt and nxt_env
 * NULL. */
void relay_conn_release_next(struct relay_conn *cc);

/*
 * The status of relay r: state is "up", "down" or "held" (text: "up",
 * "DOWN", "HELD"); held_reason, when not NULL, why it is held (the fix
 * follows it); queued and due are the queue index's counts for it.
 * JSON: one object into w.  Text: lines appended to out.
 */
void relay_status_json(const struct relay *r, const char *state,
    const char *held_reason, size_t queued, size_t due, struct json_write *w);
void relay_status_text(const struct relay *r, const char *state,
    const char *held_reason, size_t queued, size_t due, struct buf *out);

/* src made fit for a key="value" log field: printable ASCII, '"' as
 * '\'' (truncated to dstsz). */
void relay_log_quote(char *dst, size_t dstsz, const char *src);

#endif
