/*
 * metrics.h - sendqd's counters and gauges, and their Prometheus text
 * exposition (format 0.0.4).  The counters live in this module (one set
 * per process); the modules that see an event count it with one call:
 *
 *   metrics_count_accepted(path)        intake.c, control.c, pickup.c
 *   metrics_count_settled(relay, ...)   scheduler.c, once per settled
 *                                       attempt (delivered, deferred,
 *                                       bounced recipients; latency)
 *   metrics_count_conn_opened(relay)    scheduler.c, a new connection
 *   metrics_count_conn_reused(relay)    scheduler.c, a message sent on a
 *                                       connection that carried one
 *   metrics_count_tls_failure(relay, verify, reply)
 *                                       scheduler.c, a session that
 *                                       failed in TLS (reason classified
 *                                       here: a small fixed set)
 *
 * Gauges (queue depth, oldest message, relay up, OAuth token state,
 * spool free space) are read at scrape time from one callback
 * (metrics_set_gauges: main.c binds the scheduler and the spool).
 *
 * Families (all prefixed sendq_):
 *   messages_accepted_total{path}                counter
 *   recipients_delivered_total{relay}            counter
 *   recipients_deferred_total{relay}             counter
 *   recipients_bounced_total{relay}              counter
 *   connections_opened_total{relay}              counter
 *   connections_reused_total{relay}              counter
 *   tls_handshake_failures_total{relay,reason}   counter
 *   delivery_latency_seconds{relay}              histogram (arrival to
 *                                                the server's 250)
 *   queue_messages, queue_oldest_age_seconds     gauges
 *   relay_up{relay}                              gauge 1/0
 *   oauth_token_state{relay,state}               gauge, 1 for the
 *        current state of an OAuth smarthost (valid, expired, no_token,
 *        held), 0 for the others
 *   oauth_token_expiry_timestamp_seconds{relay}  gauge
 *   spool_free_bytes                             gauge
 *
 * Owns: the registry, the exposition format.
 * May call: buf, util.  Pure apart from the registry (no I/O, no clock:
 * render takes now); not thread-safe (the event loop's thread only).
 */
#ifndef SENDQ_METRICS_H
#define SENDQ_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Intake paths (label path of messages_accepted_total). */
#define METRICS_PATH_SMTP "smtp" /* the SMTP listener */
#define METRICS_PATH_SUBMIT \
	"submit"                         /* sendq over the control
						 * socket */
#define METRICS_PATH_MAILDROP "maildrop" /* sendq-drop's files */

void metrics_count_accepted(const char *path);
/* An attempt of a message routed to relay settled: so many recipients
 * delivered, deferred and bounced (or failed/), age_seconds after its
 * arrival (observed in the latency histogram when delivered > 0). */
void metrics_count_settled(const char *relay, size_t delivered, size_t deferred,
    size_t bounced, int64_t age_seconds);
void metrics_count_conn_opened(const char *relay);
void metrics_count_conn_reused(const char *relay);
/* verify: the session's verification text (smtp_conn_result.verify),
 * reply: its failure text; both may be NULL. */
void metrics_count_tls_failure(const char *relay, const char *verify,
    const char *reply);
/* The reason label for a TLS failure: cert_expired, cert_not_yet_valid,
 * cert_name_mismatch, cert_untrusted, cert_insecure, starttls or
 * handshake. */
const char *metrics_tls_reason(const char *verify, const char *reply);

enum metrics_oauth {
	METRICS_OAUTH_NONE = 0, /* not an OAuth smarthost */
	METRICS_OAUTH_VALID,    /* an unexpired access token */
	METRICS_OAUTH_EXPIRED,  /* a refresh token, no valid access token */
	METRICS_OAUTH_NO_TOKEN, /* no refresh token: sendqctl oauth init */
	METRICS_OAUTH_HELD,     /* the grant was refused: mail held */
};

struct metrics_relay {
	const char        *name;
	int                up;
	enum metrics_oauth oauth;
	int64_t            oauth_expires; /* epoch; 0 unknown */
};

struct metrics_gauges {
	uint64_t queue_messages;
	int64_t  oldest; /* arrival, epoch; 0 none */
	int      spool_free_known;
	uint64_t spool_free; /* bytes */
	/* The spool's write-ahead log (spool_wal_stats), when it has one. */
	int                   spool_log_known;
	uint64_t              log_groups, log_messages; /* counters */
	uint64_t              held_total, filed_total;  /* counters */
	uint64_t              held_now;
	struct metrics_relay *relays;   /* filled by the callback, */
	size_t                n_relays; /* at most max_relays */
	size_t                max_relays;
};

/* fill(arg, g) is called by every metrics_render (g->relays has room for
 * g->max_relays).  NULL: no gauges. */
void metrics_set_gauges(void (*fill)(void *, struct metrics_gauges *),
    void *arg, size_t max_relays);

/* Append the exposition (text format 0.0.4) to out; now is the wall
 * clock for the age gauge.  0 or SQ_ELIMIT (out full). */
int metrics_render(struct buf *out, int64_t now);

/* Forget every counter and the gauge callback (tests, shutdown). */
void metrics_reset(void);

#endif
