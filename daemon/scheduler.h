/*
 * scheduler.h - decides which queued message goes out when, over which
 * connection, and what happens to it afterwards.
 *
 * Owns: the wiring of the queue engine: a queue_index (queue_index.h:
 * one ~120-byte record per queued message, bodies stay on disk), a
 * relay_pool (relay_pool.h: one relay per smarthost with its TLS context,
 * connection slots, rate and backoff books), the retry timer, the
 * periodic rescan of queue/ (new messages come from the intake paths
 * through quota->queued), settlement
 * (DSN, failed/) and the control operations.
 * May call: queue_index, relay_pool, smtp_conn, spool, envelope, retry,
 * route, bounce, authsrc, json_write, quota, config, util, log, libevent.
 *
 * Policy: route per recipient (route.h), up to max_connections pooled
 * connections per smarthost carrying many messages each, fallback for a
 * smarthost that cannot be reached, backoff with jitter (retry.h),
 * bounces (bounce.h) or failed/ for what fails for good, expiry after
 * max_age, an optional rate limit.  A message leaves the spool only
 * after the smarthost's final 250 for all its recipients, or after its
 * bounce is itself durably queued.
 *
 * DIAGNOSTICS: one "delivery" log line per attempt with msgid, relay,
 * host, tls, verify, result and reply; spool errors are logged and the
 * message is retried.
 */
#ifndef SENDQ_SCHEDULER_H
#define SENDQ_SCHEDULER_H

#include "config.h"
#include "spool.h"
#include "util.h"

struct event_base;
struct evdns_base;
struct scheduler;

/*
 * A scheduler for cfg (which must outlive it) using spool sp.  Loads each
 * smarthost's TLS credentials.  Returns 0 and *out, or a negative code with
 * err (for example an unreadable ca_file).
 */
int scheduler_new(struct event_base *base, struct evdns_base *dns,
    const struct config *cfg, const char *ehlo_name, struct spool *sp,
    struct scheduler **out, struct sq_err *err);

/* Recover the spool and begin delivering.
 * Returns 0 or a negative code with err. */
int scheduler_start(struct scheduler *s, struct sq_err *err);

/*
 * Stop: start no new transaction and close every connection, then call
 * done(arg) from the event loop once nothing of the scheduler is pending.
 * With [queue] stop_grace > 0, a delivery whose final dot is out gets up
 * to stop_grace to read its reply (settled as usual: delivered, deferred
 * or bounced), then its connection QUITs; idle connections QUIT (and
 * close TLS) at once; a message pipelined behind a dot, or whose body is
 * partway, stays queued.  What is still open at the end of stop_grace is
 * dropped, logged, and stays queued (delivery is at least once).  With
 * stop_grace = 0 every connection is dropped at once.
 */
void scheduler_shutdown(struct scheduler *s, void (*done)(void *), void *arg);

/* During scheduler_shutdown()'s grace (a second SIGTERM or SIGINT): drop
 * what is still open now, as at the end of stop_grace.  No-op otherwise. */
void scheduler_stop_now(struct scheduler *s);

/* The operations behind the control socket (control.h), bound to s. */
struct control_ops;
void scheduler_control_ops(struct scheduler *s, struct control_ops *ops);

/*
 * Reload: deliver with cfg (which must outlive s, as must the one it
 * replaces: connections in flight keep using the old one until they
 * close).  The smarthosts must be the same list (names, order,
 * max_connections); their other settings (host, port, TLS, trust, auth,
 * routing rules, rate) and the queue settings may change.  New TLS
 * contexts are built first: on any failure nothing changes and a negative
 * code is returned with err.  On success open connections are retired
 * (closed once their current message is done), every relay gets a fresh
 * start (no longer down), and each queued message that is not being
 * delivered right now is routed again (split, or bounced when no
 * smarthost takes a recipient any more, as on a start); a message in
 * flight keeps its route.  Nothing queued is lost or duplicated.  Blocks
 * while it reads the envelopes of the queue.
 */
int scheduler_reconfigure(struct scheduler *s, const struct config *cfg,
    struct sq_err *err);

/* A one-line summary for systemd's STATUS=: "queued N; relays: NAME up,
 * NAME DOWN, NAME HELD" (HELD: OAuth grant refused, authsrc.h; truncated
 * to fit buf, size len > 0, NUL-terminated). */
void scheduler_summary(const struct scheduler *s, char *buf, size_t len);

/* The number of queued messages (*depth) and the arrival time (epoch
 * seconds) of the oldest one that is not held (*oldest; 0: none).  Walks
 * the index: O(queued). */
void scheduler_queue_stats(const struct scheduler *s, size_t *depth,
    int64_t *oldest);

/* metrics_set_gauges()'s callback (metrics.h), arg the scheduler: queue
 * depth, oldest message, each relay's state and OAuth token state. */
struct metrics_gauges;
void scheduler_metrics_gauges(void *arg, struct metrics_gauges *g);

/* The per-uid counts of the queue index behind struct quota (quota.h):
 * fills q->uid_usage, q->queued and q->arg, bound to s; the limits are
 * the caller's to set. */
struct quota;
void scheduler_quota_ops(struct scheduler *s, struct quota *q);

/* Free everything; only after shutdown's done callback. NULL accepted. */
void scheduler_free(struct scheduler *s);

#endif
