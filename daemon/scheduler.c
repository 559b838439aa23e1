/*
 * scheduler.c - the queue engine's wiring: which message goes out when,
 * over which connection, and what happens to it afterwards.
 *
 * Three rooms.  queue_index.c holds the index (every queued message is a
 * small record: queue id, the relay it is routed to, next attempt,
 * state; found by id, ordered by next attempt, due ones in a FIFO per
 * relay).  relay_pool.c keeps the books of each smarthost's relay
 * (connection slots, rate limit, down/resting, counters).  This file
 * wires them: it finds new messages, routes them, hands due ones to
 * connections, settles each attempt (DSN, failed/, backoff) and serves
 * the control socket.  Bodies and envelopes stay on disk and are read
 * only to route a new message and to send it.
 *
 * Discovery.  New messages are found by the recovery scan at start and
 * from the paths that commit them, all in this process (the listener,
 * the control socket's submit, maildrop pick-up: quota->queued, with the
 * envelope they wrote; bounces and split copies here), never by looking
 * at queue/.  A periodic rescan, and every flush (sendq -q, sendqctl
 * flush), also index what something else put into queue/.  (An inotify
 * watch on queue/ did that at once, at the price of a wake-up of the
 * loop for every rename there: two per commit, one per delivery.)
 *
 * Routing.  route_pick() chooses a smarthost per recipient; a message
 * whose recipients go to several smarthosts is split when it is first
 * indexed: the other routes get copies (new queue ids), durably written
 * before the original envelope is narrowed, so a crash in between can
 * only duplicate, never lose.
 *
 * Dispatch.  Each relay has up to max_connections connections, each
 * carrying up to messages_per_connection messages (the proto sends RSET
 * between them when needed) and closed after idle_timeout.  A relay
 * that retry_attempt() says is down (its session could not be set up,
 * 421, ...) or resting (authentication failed) gets no connection until
 * retry_relay_next(), then one probe, while its fallback (if any) takes
 * its due messages.  A rate limit (rate = N/unit) is a token bucket per
 * relay.  Once a message's final dot is out on a pipelining server
 * (smtp_conn's on_pipeline), the relay's next due message goes right
 * behind it (cc->nxt, RFC 2920 3.1), or later while the dot's reply is
 * awaited (pipe_open, when every slot is busy); it becomes cc->cur at
 * the first one's result, and if the connection fails before that it is
 * due again without an attempt counted (it cannot have been
 * delivered).
 *
 * Settlement.  What happens to each recipient after an attempt is
 * retry_attempt()'s decision, on the facts smtp_conn reports: delivered
 * recipients leave the envelope, deferred ones wait for retry_next()
 * (exponential backoff with jitter), bounced ones (or expiry after
 * max_age) are bounced: an RFC 3464 DSN is durably queued to the sender
 * (or admin_address) before they leave the envelope; with bounce = none,
 * or for a message from the null sender, they are kept in failed/
 * instead.  A message leaves queue/ when no recipient is left.
 *
 * Nothing here is called from inside a connection callback that could
 * re-enter that connection: callbacks ask for a run with
 * scheduler_request_run(), which activates an event.
 */
#include <sys/random.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "authsrc.h"
#include "bounce.h"
#include "buf.h"
#include "control.h"
#include "json_write.h"
#include "log.h"
#include "metrics.h"
#include "queue_index.h"
#include "quota.h"
#include "relay_pool.h"
#include "retry.h"
#include "route.h"
#include "scheduler.h"
#include "smtp_conn.h"

#define SCHEDULER_RESCAN_SECONDS 300 /* safety-net queue scan */
#define SCHEDULER_INDEX_CHUNK \
	128                               /* envelopes read per turn
						 * at start-up */
#define SCHEDULER_HEADERS_MAX (64 * 1024) /* quoted in DSNs */
#define SCHEDULER_DSN_MAX     (1024 * 1024)

_Static_assert(QUEUE_INDEX_ID_MAX == ENVELOPE_ID_MAX,
    "queue ids differ between queue_index.h and envelope.h");

struct scheduler {
	struct event_base   *base;
	struct evdns_base   *dns;
	const struct config *cfg;
	char                *ehlo_name;
	struct spool        *spool;
	struct retry_policy  policy;
	uint64_t             rng;

	struct queue_index *qi;    /* every queued message */
	struct quota_table *usage; /* per uid: queued msgs and
						 * bytes (quota.h) */
	struct relay_pool  *pool;  /* one relay per smarthost */

	struct event *run_ev;
	struct event *rm_sync_ev; /* one fsync(queue/) for the
						 * removals of a loop turn */
	/* Start-up: ids found by spool_recover_lazy, indexed (envelope
	 * read) a chunk per loop turn, oldest first, so that the first
	 * delivery does not wait for the whole queue to be read. */
	char (*rec_ids)[ENVELOPE_ID_MAX];
	size_t                 rec_n, rec_cap, rec_pos;
	struct event          *index_ev;
	struct event          *timer;
	struct event          *rescan_timer;
	int                    shutting_down;
	struct scheduler_stop *stop; /* scheduler_shutdown(): the stop */
	struct authsrc        *auth; /* AUTH secrets, OAuth */
};

static void scheduler_run(struct scheduler *s);
static void scheduler_add_id(const char *id, void *arg);
static void scheduler_collect_id(const char *id, void *arg);
static void scheduler_index_chunk(struct scheduler *s);
static void scheduler_stop_close(struct relay_conn *cc);

/* ------------------------------------------------------------------ */
/* Time and randomness (the only places that read them). */

static int64_t
scheduler_now(void)
{
	return (int64_t)time(NULL);
}

static uint32_t
scheduler_random(struct scheduler *s)
{
	/* xorshift64*: jitter only, not a secret. */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (uint32_t)((s->rng * 2685821657736338717ULL) >> 32);
}

static void
scheduler_request_run(struct scheduler *s)
{
	if (!s->shutting_down)
		event_active(s->run_ev, EV_TIMEOUT, 0);
}

static struct relay *
scheduler_relay(const struct scheduler *s, int i)
{
	return &s->pool->relays[i];
}

/* The scheduler a connection slot belongs to. */
static struct scheduler *
scheduler_of(const struct relay_conn *cc)
{
	return cc->relay->pool->owner;
}

/* Take m out of the index (and out of its uid's quota count). */
static void
scheduler_drop(struct scheduler *s, struct queue_entry *m)
{
	quota_table_sub(s->usage, queue_entry_uid(m), m->size);
	queue_index_remove(s->qi, m);
}

/* ------------------------------------------------------------------ */
/* Logging. */

static void
scheduler_log_attempt(struct relay_conn *cc, const char *id, const char *result,
    const struct smtp_conn_result *res)
{
	struct relay       *r = cc->relay;
	struct queue_entry *m = cc->cur;
	char                reply[sizeof(res->reply)], via[96] = "";

	relay_log_quote(reply, sizeof(reply), res->reply);
	if (m != NULL && m->lane != r->index)
		snprintf(via, sizeof(via), " fallback_for=%s",
		    scheduler_relay(scheduler_of(cc), m->lane)->sh->name);
	log_event(strcmp(result, "sent") == 0 ? LOG_LEVEL_INFO : LOG_LEVEL_WARN,
	    id, r->sh->name, result,
	    "delivery msgid=%s relay=%s%s host=%s:%u tls=\"%s\" verify=\"%s\" "
	    "result=%s attempt=%u reply=\"%s\"",
	    id, r->sh->name, via, r->sh->host, r->sh->port, res->tls,
	    res->verify, result, cc->attempt, reply);
}

/* ------------------------------------------------------------------ */
/* Bounces and failed/. */

/* The header section of message id (up to SCHEDULER_HEADERS_MAX). */
static char *
scheduler_read_headers(struct scheduler *s, const char *id, size_t *len)
{
	struct sq_err err = { 0 };
	char         *buf, *end;
	ssize_t       n;
	size_t        got = 0;
	int           fd;

	*len = 0;
	if ((fd = spool_open_message(s->spool, id, &err)) < 0)
		return NULL;
	buf = xmalloc(SCHEDULER_HEADERS_MAX + 1);
	while (got < SCHEDULER_HEADERS_MAX &&
	    (n = read(fd, buf + got, SCHEDULER_HEADERS_MAX - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	if ((end = strstr(buf, "\n\n")) != NULL)
		got = (size_t)(end - buf) + 1;
	else if ((end = strstr(buf, "\r\n\r\n")) != NULL)
		got = (size_t)(end - buf) + 2;
	*len = got;
	return buf;
}

/* Spool the DSN text out (to p->to, from the null sender) and index it.
 * Returns 0 once it is durable. */
static int
scheduler_spool_dsn(struct scheduler *s, const struct envelope *env,
    const struct bounce_params *p, const struct buf *out, struct sq_err *err)
{
	struct spool_writer *w = NULL;
	struct envelope     *dsn;
	int                  rc;

	dsn = envelope_new();
	envelope_set_sender(dsn, "");
	envelope_add_rcpt(dsn, p->to);
	dsn->created = p->now;
	if ((rc = spool_writer_begin(s->spool, &w, err)) == 0 &&
	    (rc = spool_writer_write(w, out->data, out->len, err)) == 0)
		rc = spool_writer_commit(w, dsn, err);
	else if (w != NULL)
		spool_writer_abort(w);
	if (rc == 0) {
		log_info("dsn msgid=%s action=%s about=%s to=%s rcpts=%zu",
		    dsn->id, p->action == BOUNCE_FAILED ? "failed" : "delayed",
		    env->id, p->to, p->n_rcpts);
		scheduler_add_id(dsn->id, s);
	}
	envelope_free(dsn);
	return rc;
}

/* Queue a DSN about env's recipients rc[0..n).  Returns 0 once it is
 * durably in the spool. */
static int
scheduler_queue_dsn(struct scheduler *s, const struct envelope *env,
    const struct bounce_rcpt *rc, size_t n, enum bounce_action action,
    struct sq_err *err)
{
	struct bounce_params p;
	struct buf           out;
	char                 nonce[64], *headers;
	size_t               hlen;
	int                  rc_;

	memset(&p, 0, sizeof(p));
	snprintf(nonce, sizeof(nonce), "%s.%08x%08x", env->id,
	    scheduler_random(s), scheduler_random(s));
	headers = scheduler_read_headers(s, env->id, &hlen);
	p.reporting_host = s->ehlo_name;
	p.to = s->cfg->bounce == CONFIG_BOUNCE_ADMIN ? s->cfg->admin_address :
						       env->sender;
	p.queue_id = env->id;
	p.orig_sender = env->sender;
	p.arrival = env->created;
	p.now = scheduler_now();
	p.action = action;
	if (action == BOUNCE_DELAYED)
		p.retry_until = env->created + (int64_t)s->policy.max_age;
	p.rcpts = rc;
	p.n_rcpts = n;
	p.orig_headers = headers;
	p.orig_headers_len = hlen;
	p.nonce = nonce;
	p.envid = env->envid;
	buf_init(&out, SCHEDULER_DSN_MAX);
	rc_ = bounce_build(&p, &out);
	free(headers);
	if (rc_ != 0)
		rc_ = sq_err_set(err, rc_, "cannot build the DSN");
	else
		rc_ = scheduler_spool_dsn(s, env, &p, &out, err);
	buf_fini(&out);
	return rc_;
}

/* The DSN parameters of env's recipient addr (a pointer into env->rcpts,
 * or an equal string), or NULL. */
static const struct envelope_rcpt_dsn *
scheduler_rcpt_dsn(const struct envelope *env, const char *addr)
{
	size_t i;

	for (i = 0; i < env->n_rcpts; i++)
		if (env->rcpts[i] == addr)
			return envelope_rcpt_dsn(env, i);
	for (i = 0; i < env->n_rcpts; i++)
		if (strcmp(env->rcpts[i], addr) == 0)
			return envelope_rcpt_dsn(env, i);
	return NULL;
}

/* Whether a recipient with parameters d wants a DSN of kind bit
 * (ENVELOPE_NOTIFY_FAILURE / _DELAY): yes without NOTIFY (RFC 3461 4.1
 * leaves the default to us: failures and delays are reported). */
static int
scheduler_notify_wants(const struct envelope_rcpt_dsn *d, unsigned bit)
{
	return d == NULL || d->notify == 0 || (d->notify & bit) != 0;
}

/* Bounce rc[0..n) of env: one DSN for those that did not opt out of
 * failure reports (NOTIFY, RFC 3461), ORCPT with them.  Returns 0 when
 * that is durable (or nobody wants one). */
static int
scheduler_fail_dsn(struct scheduler *s, const struct envelope *env,
    const struct bounce_rcpt *rc, size_t n, struct sq_err *err)
{
	struct bounce_rcpt             *dr = xcalloc(n, sizeof(*dr));
	const struct envelope_rcpt_dsn *d;
	size_t                          i, n_dsn = 0;
	int                             rc_;

	for (i = 0; i < n; i++) {
		d = scheduler_rcpt_dsn(env, rc[i].addr);
		if (!scheduler_notify_wants(d, ENVELOPE_NOTIFY_FAILURE)) {
			log_info("failed msgid=%s rcpt=%s dsn=none (NOTIFY=%s)",
			    env->id, rc[i].addr,
			    d != NULL && (d->notify & ENVELOPE_NOTIFY_NEVER) ?
				"NEVER" :
				"without FAILURE");
			continue;
		}
		dr[n_dsn] = rc[i];
		dr[n_dsn++].orcpt = d != NULL ? d->orcpt : NULL;
	}
	rc_ = n_dsn == 0 ?
	    0 :
	    scheduler_queue_dsn(s, env, dr, n_dsn, BOUNCE_FAILED, err);
	free(dr);
	return rc_;
}

/* No DSN (null sender, bounce = none, or it could not be made): keep
 * rc[0..n) of env, with the reasons, in failed/.  Returns 0 when kept. */
static int
scheduler_keep_failed(struct scheduler *s, const struct envelope *env,
    const struct bounce_rcpt *rc, size_t n)
{
	struct envelope *failed;
	struct sq_err    err = { 0 };
	struct buf       why;
	size_t           i;
	int              rc_;

	failed = envelope_new();
	envelope_set_sender(failed, env->sender);
	snprintf(failed->id, sizeof(failed->id), "%s", env->id);
	failed->created = env->created;
	failed->uid = env->uid;
	failed->attempts = env->attempts;
	buf_init(&why, 1024);
	for (i = 0; i < n; i++) {
		envelope_add_rcpt(failed, rc[i].addr);
		if (why.len > 0)
			buf_append_str(&why, "; ");
		if (n > 1) {
			buf_append_str(&why, rc[i].addr);
			buf_append_str(&why, ": ");
		}
		buf_append_str(&why, rc[i].reply != NULL ? rc[i].reply : "?");
	}
	if (buf_append(&why, "", 1) != 0)
		why.data[why.len - 1] = '\0';
	envelope_set_error(failed, why.data);
	buf_fini(&why);
	rc_ = spool_hold_failed(s->spool, failed, failed->attempts + 1, &err);
	if (rc_ != 0)
		log_err("msgid=%s: cannot keep the failed recipients in "
			"failed/: %s (they stay queued)",
		    env->id, err.msg);
	else
		log_info(
		    "msgid=%s: %zu failed recipient(s) kept in failed/ (%s)",
		    env->id, n,
		    env->sender[0] == '\0' ? "null sender: never bounced" :
					     "bounce = none");
	envelope_free(failed);
	return rc_;
}

/*
 * Recipients of env listed in rc[0..n) failed for good.  Bounce them (or
 * keep them in failed/); returns 0 when that is durable, so the caller
 * may drop them from the envelope.
 */
static int
scheduler_fail_rcpts(struct scheduler *s, const struct envelope *env,
    const struct bounce_rcpt *rc, size_t n)
{
	struct sq_err err = { 0 };
	size_t        i;

	for (i = 0; i < n; i++)
		log_warn("failed msgid=%s rcpt=%s reason=\"%s\"", env->id,
		    rc[i].addr, rc[i].reply != NULL ? rc[i].reply : "?");
	if (env->sender[0] != '\0' && s->cfg->bounce != CONFIG_BOUNCE_NONE) {
		if (scheduler_fail_dsn(s, env, rc, n, &err) == 0)
			return 0;
		log_err("msgid=%s: cannot queue the bounce: %s (keeping the "
			"recipients in failed/ instead)",
		    env->id, err.msg);
	}
	return scheduler_keep_failed(s, env, rc, n);
}

/* ------------------------------------------------------------------ */
/* Settling an attempt. */

/* An attempt's outcome as settle() needs it. */
struct scheduler_outcome {
	const enum retry_fate *fate;    /* per recipient */
	const char *const     *replies; /* per recipient, or NULL */
	const char            *reason;  /* when replies[i] is NULL */
	const char            *remote;  /* remote MTA, or NULL */
};

/*
 * The recipients of env that end now: bounced, or deferred when the
 * message has run out of time (4.4.7).  Marks them in final[], lists
 * them in rc[] and bounces them (or keeps them in failed/); when that
 * fails final[] is cleared (they stay).
 */
static void
scheduler_settle_final(struct scheduler *s, const struct envelope *env,
    const struct scheduler_outcome *o, int expired, int *final)
{
	struct bounce_rcpt *rc = xcalloc(env->n_rcpts, sizeof(*rc));
	size_t              i, n_fail = 0;

	for (i = 0; i < env->n_rcpts; i++) {
		if (o->fate[i] == RETRY_DELIVERED ||
		    (o->fate[i] == RETRY_DEFER && !expired))
			continue;
		final[i] = 1;
		rc[n_fail].addr = env->rcpts[i];
		rc[n_fail].remote_mta = o->remote;
		rc[n_fail].reply = o->replies != NULL && o->replies[i] != NULL ?
		    o->replies[i] :
		    o->reason;
		if (o->fate[i] == RETRY_DEFER)
			rc[n_fail].status = "4.4.7";
		n_fail++;
	}
	if (expired && n_fail > 0)
		log_warn("msgid=%s: expired: still undelivered after %us in "
			 "the queue",
		    env->id, s->policy.max_age);
	if (n_fail > 0 && scheduler_fail_rcpts(s, env, rc, n_fail) != 0)
		memset(final, 0, env->n_rcpts * sizeof(*final));
	free(rc);
}

/* One delay warning, when configured and due, to the recipients whose
 * NOTIFY does not exclude it. */
static void
scheduler_delay_warning(struct scheduler *s, struct envelope *env,
    const struct scheduler_outcome *o, int64_t now)
{
	struct sq_err                   err = { 0 };
	struct bounce_rcpt             *dr;
	const struct envelope_rcpt_dsn *d;
	size_t                          i, n_dsn = 0;

	if (s->cfg->delay_warning == 0 || env->warned ||
	    env->sender[0] == '\0' || s->cfg->bounce == CONFIG_BOUNCE_NONE ||
	    now - env->created < (int64_t)s->cfg->delay_warning)
		return;
	dr = xcalloc(env->n_rcpts, sizeof(*dr));
	for (i = 0; i < env->n_rcpts; i++) {
		d = envelope_rcpt_dsn(env, i);
		if (!scheduler_notify_wants(d, ENVELOPE_NOTIFY_DELAY))
			continue; /* NOTIFY without DELAY */
		dr[n_dsn].addr = env->rcpts[i];
		dr[n_dsn].reply = o->reason;
		dr[n_dsn].remote_mta = o->remote;
		dr[n_dsn++].orcpt = d != NULL ? d->orcpt : NULL;
	}
	if (n_dsn == 0 ||
	    scheduler_queue_dsn(s, env, dr, n_dsn, BOUNCE_DELAYED, &err) == 0)
		env->warned = 1;
	else
		log_err("msgid=%s: cannot queue the delay warning: %s", env->id,
		    err.msg);
	free(dr);
}

/* Nothing of m is left to deliver: out of the spool and the index. */
static void
scheduler_done(struct scheduler *s, struct queue_entry *m, const char *id)
{
	struct sq_err err = { 0 };

	if (spool_remove_unsynced(s->spool, id, &err) == 0)
		event_active(s->rm_sync_ev, 0, 0);
	else
		log_err("msgid=%s: done but cannot remove it from the spool: "
			"%s (it may be sent again)",
		    id, err.msg);
	scheduler_drop(s, m);
}

/*
 * Apply o's fates to the envelope of m: RETRY_DELIVERED recipients leave
 * it, RETRY_BOUNCE ones are bounced then leave it, RETRY_DEFER ones
 * wait.  Frees env.
 */
static void
scheduler_settle(struct scheduler *s, struct queue_entry *m,
    struct envelope *env, const struct scheduler_outcome *o)
{
	struct sq_err err = { 0 };
	int64_t       now = scheduler_now();
	size_t        i, kept = 0, n_done = 0;
	int          *final;

	final = xcalloc(env->n_rcpts, sizeof(*final));
	scheduler_settle_final(s, env, o,
	    retry_expired(&s->policy, env->created, now), final);
	/* Keep what is still to be tried (final becomes "keep"); the
	 * recipients' DSN parameters go with them. */
	for (i = 0; i < env->n_rcpts; i++) {
		final[i] = o->fate[i] != RETRY_DELIVERED && !final[i];
		kept += final[i] != 0;
		n_done += o->fate[i] == RETRY_DELIVERED;
	}
	metrics_count_settled(scheduler_relay(s, m->lane)->sh->name, n_done,
	    kept, env->n_rcpts - kept - n_done, now - env->created);
	envelope_keep_rcpts(env, final);
	free(final);
	if (kept == 0) {
		scheduler_done(s, m, env->id);
		envelope_free(env);
		return;
	}
	env->attempts++;
	env->next_attempt = retry_next(&s->policy, now, env->attempts,
	    scheduler_random(s));
	envelope_set_error(env, o->reason);
	scheduler_delay_warning(s, env, o, now);
	if (spool_update_envelope(s->spool, env, &err) != 0)
		log_err("msgid=%s: cannot record the attempt: %s (the message "
			"stays queued)",
		    env->id, err.msg);
	queue_index_wait(s->qi, m, env->next_attempt);
	envelope_free(env);
}

/* Settle m with every recipient given the same fate. */
static void
scheduler_settle_all(struct scheduler *s, struct queue_entry *m,
    struct envelope *env, enum retry_fate f, const char *reason,
    const char *remote)
{
	struct scheduler_outcome o = { NULL, NULL, reason, remote };
	enum retry_fate         *fate = xcalloc(env->n_rcpts, sizeof(*fate));
	size_t                   i;

	for (i = 0; i < env->n_rcpts; i++)
		fate[i] = f;
	o.fate = fate;
	scheduler_settle(s, m, env, &o);
	free(fate);
}

/* ------------------------------------------------------------------ */
/* Connections. */

/* Non-ASCII in an envelope address needs the server's SMTPUTF8. */
static int
scheduler_envelope_utf8(const struct envelope *env)
{
	const unsigned char *p;
	size_t               i;

	for (p = (const unsigned char *)env->sender; *p != '\0'; p++)
		if (*p >= 0x80)
			return 1;
	for (i = 0; i < env->n_rcpts; i++)
		for (p = (const unsigned char *)env->rcpts[i]; *p != '\0'; p++)
			if (*p >= 0x80)
				return 1;
	return 0;
}

/* The envelope's NOTIFY bits are handed to smtp_proto as they are. */
_Static_assert(ENVELOPE_NOTIFY_NEVER == SMTP_PROTO_NOTIFY_NEVER &&
	ENVELOPE_NOTIFY_SUCCESS == SMTP_PROTO_NOTIFY_SUCCESS &&
	ENVELOPE_NOTIFY_FAILURE == SMTP_PROTO_NOTIFY_FAILURE &&
	ENVELOPE_NOTIFY_DELAY == SMTP_PROTO_NOTIFY_DELAY,
    "NOTIFY bits differ between envelope.h and smtp_proto.h");

/* What smtp_conn_send() needs of m (envelope env, body fd) into msg; the
 * NOTIFY and ORCPT arrays, when any, into *notify and *orcpts (the caller
 * frees).  The body's size is the index's, taken when m was queued:
 * smtp_conn needs no fstat() and checks the body against it (a file
 * changed since fails; unknown or saturated sizes are left to fstat). */
static void
scheduler_message(const struct envelope *env, const struct queue_entry *m,
    int fd, struct smtp_conn_message *msg, unsigned **notify,
    const char ***orcpts)
{
	const struct envelope_rcpt_dsn *d;
	size_t                          i;

	memset(msg, 0, sizeof(*msg));
	msg->id = m->id;
	msg->sender = env->sender;
	msg->rcpts = (const char *const *)env->rcpts;
	msg->n_rcpts = env->n_rcpts;
	msg->body_fd = fd;
	msg->body_size = m->size != UINT32_MAX ? m->size : 0;
	msg->body_8bit = env->body_8bit;
	msg->needs_smtputf8 = scheduler_envelope_utf8(env);
	/* DSN parameters: read by smtp_conn_send() only. */
	msg->ret = env->ret == ENVELOPE_RET_FULL ? SMTP_PROTO_RET_FULL :
	    env->ret == ENVELOPE_RET_HDRS        ? SMTP_PROTO_RET_HDRS :
						   SMTP_PROTO_RET_NONE;
	msg->envid = env->envid;
	*notify = NULL;
	*orcpts = NULL;
	if (env->n_rcpt_dsn == 0)
		return;
	*notify = xcalloc(env->n_rcpts, sizeof(**notify));
	*orcpts = xcalloc(env->n_rcpts, sizeof(**orcpts));
	for (i = 0; i < env->n_rcpts; i++)
		if ((d = envelope_rcpt_dsn(env, i)) != NULL) {
			(*notify)[i] = d->notify;
			(*orcpts)[i] = d->orcpt;
		}
	msg->notify = *notify;
	msg->orcpts = *orcpts;
}

/* Envelope and body fd of m, or -1 (logged; m is dropped). */
static int
scheduler_load(struct scheduler *s, struct queue_entry *m,
    struct envelope **env)
{
	struct sq_err err = { 0 };
	int           fd;

	*env = NULL;
	if (spool_load_envelope(s->spool, m->id, env, &err) == 0 &&
	    (fd = spool_open_message(s->spool, m->id, &err)) >= 0)
		return fd;
	if (err.code == -ENOENT || err.code == SQ_ENOTFOUND)
		log_debug("msgid=%s: no longer queued", m->id);
	else
		log_err("msgid=%s: cannot read it from the spool: %s (left in "
			"the spool, not retried until restart)",
		    m->id, err.msg);
	envelope_free(*env);
	*env = NULL;
	scheduler_drop(s, m);
	return -1;
}

/*
 * Put message m on connection cc: on an idle one (behind = 0), or
 * behind cc's current message (behind = 1, RFC 2920 3.1: its commands
 * follow the dot).  Returns 1 when it was sent, 0 when m could not be
 * read or sent (it is dropped from the index or bounced).
 */
static int
scheduler_send(struct relay_conn *cc, struct queue_entry *m, int behind)
{
	struct scheduler        *s = scheduler_of(cc);
	struct smtp_conn_message msg;
	struct envelope         *env;
	unsigned                *notify;
	const char             **orcpts;
	int                      fd, rc;

	if (behind)
		cc->pipe_open = 0;
	if ((fd = scheduler_load(s, m, &env)) < 0)
		return 0;
	queue_index_activate(s->qi, m);
	if (behind) {
		cc->nxt = m;
		cc->nxt_env = env;
		cc->nxt_attempt = env->attempts + 1;
	} else {
		cc->cur = m;
		cc->cur_env = env;
		cc->attempt = env->attempts + 1;
		relay_conn_set_busy(cc);
	}
	scheduler_message(env, m, fd, &msg, &notify, &orcpts);
	if (behind || cc->sent > 0)
		metrics_count_conn_reused(cc->relay->sh->name);
	rc = smtp_conn_send(cc->conn, &msg);
	free(notify);
	free(orcpts);
	if (rc != 0) {
		close(fd);
		log_err("msgid=%s: cannot be sent (%zu recipients); left in "
			"the spool",
		    m->id, msg.n_rcpts);
		if (behind)
			relay_conn_release_next(cc);
		else
			relay_conn_release(cc);
		scheduler_drop(s, m);
		if (!behind)
			cc->idle = 1;
		return 0;
	}
	return 1;
}

/* cc's current message's dot is produced and the server pipelines: the
 * next due message of its relay goes right behind it, or cc waits for
 * one (pipe_open) until that message's result.  Not when the message
 * behind would pass messages_per_connection. */
static void
scheduler_on_pipeline(struct smtp_conn *c, void *arg)
{
	struct relay_conn  *cc = arg;
	struct relay       *r = cc->relay;
	struct scheduler   *s = scheduler_of(cc);
	struct queue_entry *m;

	(void)c;
	if (s->shutting_down || cc->retire || cc->nxt != NULL ||
	    !r->sh->pipeline_messages ||
	    cc->sent + 2 > r->sh->messages_per_connection)
		return;
	cc->pipe_open = 1;
	if (r->down || authsrc_held(s->auth, (size_t)r->index, NULL))
		return;
	if ((m = queue_index_lane_first(s->qi, r->index)) == NULL)
		return;
	if (relay_rate_take(r, sq_now_ms()))
		scheduler_send(cc, m, 1);
}

static void
scheduler_on_ready(struct smtp_conn *c, void *arg)
{
	struct relay_conn  *cc = arg;
	struct relay       *r = cc->relay;
	struct queue_entry *m;

	(void)c;
	if (!cc->ready_once) {
		cc->ready_once = 1;
		relay_mark_up(r);
	}
	if (scheduler_of(cc)->shutting_down) {
		/* A stop waited for its last reply: QUIT now. */
		scheduler_stop_close(cc);
		return;
	}
	if (cc->retire) {
		/* messages_per_connection reached: QUIT, a new one follows */
		relay_conn_close(cc);
		scheduler_request_run(scheduler_of(cc));
		return;
	}
	cc->idle = 1;
	if ((m = cc->cur) != NULL) {
		/* Opened for this message. */
		cc->cur = NULL;
		if (scheduler_send(cc, m, 0))
			return;
	}
	relay_conn_set_idle(cc);
	scheduler_request_run(scheduler_of(cc));
}

/* The relay failed with verdict v (down or resting): no connection until
 * retry_relay_next(). */
static void
scheduler_relay_fails(struct relay *r, const struct retry_verdict *v,
    const struct smtp_conn_result *res)
{
	struct scheduler *s = r->pool->owner;

	relay_mark_down(r, &s->policy, v->relay, v->rule, res->reply,
	    scheduler_now(), scheduler_random(s));
}

/* The per-recipient outcome of res for env: fates into fate (n_rcpts),
 * the verdict returned. */
static struct retry_verdict
scheduler_judge(const struct smtp_conn_result *res, const struct envelope *env,
    enum retry_fate *fate, struct scheduler_outcome *o, const char *remote)
{
	size_t n = env->n_rcpts;

	o->fate = fate;
	o->replies = res->n_rcpts == n ? res->rcpt_reply : NULL;
	o->reason = res->reply;
	o->remote = remote;
	return retry_attempt(&res->fact, res->n_rcpts == n ? res->rcpt : NULL,
	    n, fate);
}

/* The result word of the delivery log line, with r's counters. */
static const char *
scheduler_count(struct relay *r, const enum retry_fate *fate, size_t n,
    const char *reply)
{
	size_t i, delivered = 0, failed = 0;

	for (i = 0; i < n; i++) {
		delivered += fate[i] == RETRY_DELIVERED;
		failed += fate[i] == RETRY_BOUNCE;
	}
	if (delivered == n)
		r->n_sent++;
	else {
		r->n_deferred += failed < n;
		r->n_failed += failed > 0;
		relay_note_error(r, reply, scheduler_now());
	}
	return delivered == n ? "sent" :
	    delivered > 0     ? "partial" :
	    failed == n       ? "failed" :
				"deferred";
}

static void
scheduler_on_message_done(struct smtp_conn *c,
    const struct smtp_conn_result *res, void *arg)
{
	struct relay_conn       *cc = arg;
	struct relay            *r = cc->relay;
	struct queue_entry      *m = cc->cur;
	struct envelope         *env = cc->cur_env;
	struct scheduler_outcome o;
	struct retry_verdict     v;
	enum retry_fate         *fate;

	(void)c;
	if (m == NULL || env == NULL)
		log_fatalx("relay %s: message result without a message",
		    r->sh->name);
	fate = xcalloc(env->n_rcpts, sizeof(*fate));
	v = scheduler_judge(res, env, fate, &o, r->sh->host);
	scheduler_log_attempt(cc, m->id,
	    scheduler_count(r, fate, env->n_rcpts, res->reply), res);
	cc->cur = NULL;
	cc->cur_env = NULL;
	scheduler_settle(scheduler_of(cc), m, env, &o);
	free(fate);
	cc->pipe_open = 0;
	if (scheduler_of(cc)->shutting_down && cc->nxt != NULL) {
		/* A stop waited for this reply; the message behind it is not
		 * sent (its body would follow now). */
		scheduler_stop_close(cc);
		return;
	}
	if (cc->nxt != NULL) {
		/* The message behind it is the connection's now. */
		cc->cur = cc->nxt;
		cc->cur_env = cc->nxt_env;
		cc->attempt = cc->nxt_attempt;
		cc->nxt = NULL;
		cc->nxt_env = NULL;
	}
	if (++cc->sent >= r->sh->messages_per_connection)
		cc->retire = 1;
	if (v.relay != RETRY_RELAY_OK) {
		/* e.g. 530 to MAIL: no more on this connection either. */
		scheduler_relay_fails(r, &v, res);
		cc->retire = 1;
	}
	/* The connection reports on_ready next when it can carry more. */
}

/*
 * The OAuth grant of the relay is refused (authsrc held it): the message
 * was not tried; it goes back to the head of the relay's due queue, where
 * scheduler_run() leaves held relays alone until authsrc says otherwise.
 * No attempt is counted, nothing expires or bounces meanwhile.
 */
static void
scheduler_on_held(struct relay_conn *cc, const struct smtp_conn_result *res)
{
	struct scheduler   *s = scheduler_of(cc);
	struct queue_entry *m = cc->cur;

	relay_note_error(cc->relay, res->reply, scheduler_now());
	relay_conn_release(cc);
	if (m != NULL)
		queue_index_due(s->qi, m, 1);
	cc->ready_once = 0;
	scheduler_request_run(s);
}

/* authsrc: a relay was held or released. */
static void
scheduler_on_auth_change(void *arg)
{
	scheduler_request_run(arg);
}

/* The connection of cc closed while it carried m, with verdict v: the
 * fallback takes m right away, or the attempt is settled. */
static void
scheduler_closed_message(struct relay_conn *cc, struct queue_entry *m,
    const struct smtp_conn_result *res, const struct retry_verdict *v)
{
	struct scheduler        *s = scheduler_of(cc);
	struct relay            *r = cc->relay;
	int                      fb = r->sh->fallback_index;
	struct sq_err            err = { 0 };
	struct scheduler_outcome o;
	enum retry_fate         *fate;

	if (cc->cur_env == NULL)
		spool_load_envelope(s->spool, m->id, &cc->cur_env, &err);
	if (cc->cur_env != NULL)
		cc->attempt = cc->cur_env->attempts + 1;
	if (v->relay != RETRY_RELAY_OK && fb >= 0 &&
	    !scheduler_relay(s, fb)->down && m->lane == r->index) {
		/* The fallback takes it right away. */
		scheduler_log_attempt(cc, m->id, "deferred", res);
		log_info(
		    "msgid=%s: relay %s unreachable, handing it to fallback %s",
		    m->id, r->sh->name, s->cfg->smarthosts[fb].name);
		relay_conn_release(cc);
		queue_index_due(s->qi, m, 1);
	} else if (cc->cur_env != NULL) {
		scheduler_log_attempt(cc, m->id, "deferred", res);
		r->n_deferred++;
		/* Recipients refused for good at RCPT before the connection
		 * failed bounce; the others wait. */
		fate = xcalloc(cc->cur_env->n_rcpts, sizeof(*fate));
		(void)scheduler_judge(res, cc->cur_env, fate, &o, r->sh->host);
		scheduler_settle(s, m, cc->cur_env, &o);
		free(fate);
		cc->cur_env = NULL;
		cc->cur = NULL;
	} else {
		relay_conn_release(cc);
		scheduler_drop(s, m);
	}
}

static void
scheduler_on_closed(struct smtp_conn *c, const struct smtp_conn_result *res,
    void *arg)
{
	struct relay_conn   *cc = arg;
	struct relay        *r = cc->relay;
	struct scheduler    *s = scheduler_of(cc);
	struct queue_entry  *m;
	struct retry_verdict v;

	(void)c;
	relay_conn_gone(cc);
	if (res->auth_held) {
		/* Not a verdict of retry.c: a relay state of its own. */
		scheduler_on_held(cc, res);
		return;
	}
	v = retry_decide(&res->fact);
	if (res->fact.event == RETRY_EVENT_TLS)
		metrics_count_tls_failure(r->sh->name, res->verify, res->reply);
	if (v.relay != RETRY_RELAY_OK)
		scheduler_relay_fails(r, &v, res);
	if ((m = cc->nxt) != NULL) {
		/* Pipelined behind cur, never delivered (cur's verdict did
		 * not come): due again, no attempt counted. */
		log_debug("msgid=%s: not sent (pipelined behind %s on a "
			  "connection that closed): due again",
		    m->id, cc->cur != NULL ? cc->cur->id : "-");
		relay_conn_release_next(cc);
		queue_index_due(s->qi, m, 1);
	}
	if (cc->cur != NULL)
		scheduler_closed_message(cc, cc->cur, res, &v);
	else if (cc->ready_once)
		log_debug("relay %s: connection closed: %s", r->sh->name,
		    res->reply);
	cc->cur = NULL;
	cc->ready_once = 0;
	scheduler_request_run(s);
}

/* Open a connection of relay r carrying message m first. */
static void
scheduler_open(struct relay *r, struct queue_entry *m)
{
	struct scheduler                       *s = r->pool->owner;
	struct smtp_conn_params                 params;
	struct relay_conn                      *cc;
	static const struct smtp_conn_callbacks cb = {
		.on_ready = scheduler_on_ready,
		.on_pipeline = scheduler_on_pipeline,
		.on_message_done = scheduler_on_message_done,
		.on_closed = scheduler_on_closed,
	};

	if ((cc = relay_conn_free_slot(r)) == NULL)
		log_fatalx("relay %s: no free connection slot", r->sh->name);
	memset(&params, 0, sizeof(params));
	params.base = s->base;
	params.dns = s->dns;
	params.smarthost = r->sh;
	params.tls = r->tls;
	params.ehlo_name = s->ehlo_name;
	params.auth = s->auth;
	relay_conn_begin(cc);
	/* Opened for m: if it cannot be made, that is m's attempt. */
	queue_index_activate(s->qi, m);
	cc->cur = m;
	metrics_count_conn_opened(r->sh->name);
	cc->conn = smtp_conn_open(&params, &cb, cc);
}

/* Give relay r's connections work from lane q's due messages (r itself,
 * or a down relay whose fallback r is). */
static void
scheduler_serve(struct scheduler *s, struct relay *r, int q)
{
	struct relay_conn  *cc;
	struct queue_entry *m;

	while ((m = queue_index_lane_first(s->qi, q)) != NULL) {
		cc = relay_conn_idle(r);
		/* All slots busy: behind a message whose dot is out. */
		if (cc == NULL && r->n_conns >= r->sh->max_connections &&
		    (cc = relay_conn_pipe_open(r)) == NULL)
			return;
		if (!relay_rate_take(r, sq_now_ms()))
			return;
		/* A message send() drops has left the lane, so the next
		 * first is another one. */
		if (cc != NULL && cc->pipe_open)
			scheduler_send(cc, m, 1);
		else if (cc != NULL)
			scheduler_send(cc, m, 0);
		else
			scheduler_open(r, m);
	}
}

/* Arm the one timer for the earliest thing that will become due. */
static void
scheduler_arm_timer(struct scheduler *s, int64_t now)
{
	struct timeval tv;
	int64_t        wake_ms = INT64_MAX, w, next;
	size_t         i;

	if (queue_index_next_time(s->qi, &next))
		wake_ms = (next - now) * 1000;
	for (i = 0; i < s->pool->n; i++) {
		struct relay *r = scheduler_relay(s, (int)i);

		if (queue_index_lane_due(s->qi, (int)i) == 0)
			continue;
		if (r->down && r->n_conns == 0) {
			w = (r->down_until - now) * 1000;
			if (w < wake_ms)
				wake_ms = w;
		}
		w = relay_rate_wait_ms(r);
		if (w > 0 && w < wake_ms)
			wake_ms = w;
	}
	if (wake_ms == INT64_MAX)
		return;
	if (wake_ms < 10)
		wake_ms = 10;
	tv.tv_sec = (time_t)(wake_ms / 1000);
	tv.tv_usec = (suseconds_t)(wake_ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

/* Settle (bounce) the due messages of a down relay that expired while
 * they waited for it. */
static void
scheduler_expire_due(struct scheduler *s, struct relay *r, int64_t now)
{
	struct queue_entry *m, *next;
	struct envelope    *env = NULL;
	struct sq_err       err = { 0 };
	char                reason[RELAY_ERROR_MAX + 64];

	for (m = queue_index_lane_first(s->qi, r->index); m != NULL; m = next) {
		next = queue_index_lane_next(m);
		if (!retry_expired(&s->policy, m->created, now))
			continue;
		if (spool_load_envelope(s->spool, m->id, &env, &err) != 0) {
			scheduler_drop(s, m);
			continue;
		}
		snprintf(reason, sizeof(reason), "smarthost %s unreachable: %s",
		    r->sh->name, r->last_error);
		/* Deferred past max_age: settle() bounces them (4.4.7). */
		scheduler_settle_all(s, m, env, RETRY_DEFER, reason,
		    r->sh->host);
	}
}

/* A down relay whose time has come: expire what waited too long for
 * it, then one probe connection, not one per message. */
static void
scheduler_probe(struct scheduler *s, struct relay *r, int64_t now)
{
	struct queue_entry *m;

	if (!relay_probe_due(r, now))
		return;
	scheduler_expire_due(s, r, now);
	if ((m = queue_index_lane_first(s->qi, r->index)) != NULL &&
	    relay_rate_take(r, sq_now_ms()))
		scheduler_open(r, m);
}

static void
scheduler_run(struct scheduler *s)
{
	int64_t now = scheduler_now();
	size_t  i, j;

	if (s->shutting_down)
		return;
	while (queue_index_pop_due(s->qi, now) != NULL)
		;
	for (i = 0; i < s->pool->n; i++) {
		struct relay *r = scheduler_relay(s, (int)i);

		/* OAuth grant refused: its mail waits, untouched. */
		if (authsrc_held(s->auth, i, NULL))
			continue;
		if (r->down) {
			scheduler_probe(s, r, now);
			continue;
		}
		scheduler_serve(s, r, (int)i);
		for (j = 0; j < s->pool->n; j++)
			if (j != i && scheduler_relay(s, (int)j)->down &&
			    scheduler_relay(s, (int)j)->sh->fallback_index ==
				(int)i)
				scheduler_serve(s, r, (int)j);
	}
	scheduler_arm_timer(s, now);
}

/* After a loop turn that removed delivered messages: one directory sync
 * for all of them (a power cut before it delivers them again, at most). */
static void
scheduler_on_rm_sync(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sq_err     err;

	(void)fd;
	(void)what;
	if (spool_sync_removals(s->spool, &err) < 0)
		log_err(
		    "%s (delivered messages may be sent again after a crash)",
		    err.msg);
}

/* spool_recover_lazy's callback: remember the id for indexing. */
static void
scheduler_collect_id(const char *id, void *arg)
{
	struct scheduler *s = arg;
	size_t            len = strnlen(id, ENVELOPE_ID_MAX - 1);

	if (s->rec_n == s->rec_cap) {
		s->rec_cap = s->rec_cap ? 2 * s->rec_cap :
					  SCHEDULER_INDEX_CHUNK;
		s->rec_ids = xreallocarray(s->rec_ids, s->rec_cap,
		    sizeof(*s->rec_ids));
	}
	/* Not snprintf: 100,000 of these run before the first send. */
	memcpy(s->rec_ids[s->rec_n], id, len);
	s->rec_ids[s->rec_n++][len] = '\0';
}

/* Give back the part of the list of recovered ids that is indexed once
 * it is half of it: else the whole list (32 bytes an id) stays until the
 * last id is indexed, beside the index grown from it, and adds to
 * sendqd's peak RSS (issue 14: 256 KiB at a start on 8,000 queued
 * messages).  Halving, an id is moved once on average at most. */
static void
scheduler_shrink_ids(struct scheduler *s)
{
	if (s->rec_pos < s->rec_cap / 2)
		return;
	s->rec_n -= s->rec_pos;
	memmove(s->rec_ids, s->rec_ids + s->rec_pos,
	    s->rec_n * sizeof(*s->rec_ids));
	s->rec_pos = 0;
	s->rec_cap = s->rec_n;
	s->rec_ids = xreallocarray(s->rec_ids, s->rec_cap, sizeof(*s->rec_ids));
}

/* Index the next SCHEDULER_INDEX_CHUNK recovered ids, let the queue run
 * on what is known, and come back on the next loop turn for the rest. */
static void
scheduler_index_chunk(struct scheduler *s)
{
	struct timeval now = { 0, 0 };
	size_t         end = s->rec_pos + SCHEDULER_INDEX_CHUNK;

	if (end > s->rec_n)
		end = s->rec_n;
	while (s->rec_pos < end)
		scheduler_add_id(s->rec_ids[s->rec_pos++], s);
	scheduler_request_run(s);
	if (s->rec_pos < s->rec_n) {
		scheduler_shrink_ids(s);
		evtimer_add(s->index_ev, &now);
		return;
	}
	if (s->rec_ids != NULL)
		log_info("queue indexed: %zu message(s) queued",
		    queue_index_count(s->qi));
	free(s->rec_ids);
	s->rec_ids = NULL;
	s->rec_n = s->rec_cap = s->rec_pos = 0;
}

static void
scheduler_on_index(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scheduler_index_chunk(arg);
}

static void
scheduler_on_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scheduler_run(arg);
}

/* ------------------------------------------------------------------ */
/* Indexing new messages: route, split, expire. */

/* Copy message env (body of id src) for the recipients routed to another
 * smarthost: a new queued message.  Returns 0 when it is durable. */
static int
scheduler_split_copy(struct scheduler *s, const char *src,
    struct envelope *part, struct sq_err *err)
{
	struct spool_writer *w = NULL;
	char                 buf[65536];
	ssize_t              n;
	int                  fd, rc;

	if ((fd = spool_open_message(s->spool, src, err)) < 0)
		return fd;
	if ((rc = spool_writer_begin(s->spool, &w, err)) != 0) {
		close(fd);
		return rc;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if ((rc = spool_writer_write(w, buf, (size_t)n, err)) != 0)
			break;
	if (rc == 0 && n < 0)
		rc = sq_err_set(err, -errno, "read message %s: %s", src,
		    strerror(errno));
	close(fd);
	if (rc != 0) {
		spool_writer_abort(w);
		return rc;
	}
	return spool_writer_commit(w, part, err);
}

/* route[i]: the smarthost of env's recipient i (-1: none takes it).
 * Returns route (the caller frees), the first route in *first (-1:
 * none) and how many have none in *n_noroute. */
static int *
scheduler_route(struct scheduler *s, const struct envelope *env, int *first,
    size_t *n_noroute)
{
	int   *route = xcalloc(env->n_rcpts, sizeof(*route));
	size_t i;

	*first = -1;
	*n_noroute = 0;
	for (i = 0; i < env->n_rcpts; i++) {
		route[i] = route_pick(s->cfg, env->sender, env->rcpts[i]);
		if (route[i] < 0)
			(*n_noroute)++;
		else if (*first < 0)
			*first = route[i];
	}
	return route;
}

/* Recipients no smarthost takes fail for good.  Returns 1 when they are
 * bounced (or kept in failed/), 0 when that failed (keep them all). */
static int
scheduler_fail_unrouted(struct scheduler *s, const struct envelope *env,
    const int *route, size_t n_noroute)
{
	struct bounce_rcpt *rc = xcalloc(n_noroute, sizeof(*rc));
	size_t              i, j;
	int                 ok;

	for (i = 0, j = 0; i < env->n_rcpts; i++)
		if (route[i] < 0) {
			rc[j].addr = env->rcpts[i];
			rc[j].status = "5.4.4";
			rc[j].reply =
			    "no smarthost is configured for this "
			    "sender/recipient (match_sender, match_recipient)";
			j++;
		}
	ok = scheduler_fail_rcpts(s, env, rc, n_noroute) == 0;
	free(rc);
	return ok;
}

/* A copy of env without recipients, for a split. */
static struct envelope *
scheduler_part(const struct envelope *env)
{
	struct envelope *part = envelope_new();

	envelope_set_sender(part, env->sender);
	part->created = env->created;
	part->uid = env->uid;
	part->body_8bit = env->body_8bit;
	part->ret = env->ret;
	if (env->envid != NULL)
		envelope_set_envid(part, env->envid);
	return part;
}

/* The recipients of env (message id) routed to other, from i on, split
 * off as a message of their own.  Returns 1 when it is durable (their
 * route[] is then -2), 0 when not (the original keeps them). */
static int
scheduler_split_one(struct scheduler *s, const char *id,
    const struct envelope *env, int *route, size_t i, int other)
{
	const struct envelope_rcpt_dsn *d;
	struct envelope                *part = scheduler_part(env);
	struct sq_err                   err = { 0 };
	size_t                          j;
	int                             ok;

	for (j = i; j < env->n_rcpts; j++)
		if (route[j] == other) {
			envelope_add_rcpt(part, env->rcpts[j]);
			/* DSN parameters travel with their recipient. */
			if ((d = envelope_rcpt_dsn(env, j)) != NULL)
				envelope_set_rcpt_dsn(part, part->n_rcpts - 1,
				    d->notify, d->orcpt);
			route[j] = -2; /* moved */
		}
	ok = scheduler_split_copy(s, id, part, &err) == 0;
	if (ok) {
		log_info(
		    "msgid=%s: recipients for relay %s split off as msgid=%s",
		    id, s->cfg->smarthosts[other].name, part->id);
		scheduler_add_id(part->id, s);
	} else {
		log_err("msgid=%s: cannot split it per route: %s (trying again "
			"later)",
		    id, err.msg);
		for (j = i; j < env->n_rcpts; j++)
			if (route[j] == -2)
				route[j] = other;
	}
	envelope_free(part);
	return ok;
}

/* Other routes than first get their own copies, durable before the
 * original is narrowed to first.  Returns 1 when something split off. */
static int
scheduler_split(struct scheduler *s, const char *id, const struct envelope *env,
    int *route, int first)
{
	size_t i;
	int    changed = 0;

	for (i = 0; i < env->n_rcpts; i++)
		if (route[i] >= 0 && route[i] != first)
			changed |= scheduler_split_one(s, id, env, route, i,
			    route[i]);
	return changed;
}

/* Narrow env to the recipients routed to first, on disk too. */
static void
scheduler_narrow(struct scheduler *s, struct envelope *env, const int *route,
    int first)
{
	struct sq_err err = { 0 };
	int          *keep = xcalloc(env->n_rcpts, sizeof(*keep));
	size_t        i;

	for (i = 0; i < env->n_rcpts; i++)
		keep[i] = route[i] == first;
	envelope_keep_rcpts(env, keep);
	free(keep);
	if (spool_update_envelope(s->spool, env, &err) != 0)
		log_err("msgid=%s: %s", env->id, err.msg);
}

/* Put message id (envelope env, routed to relay) into the index. */
static void
scheduler_index(struct scheduler *s, const char *id, const struct envelope *env,
    int relay)
{
	struct queue_entry *m;
	struct sq_err       err = { 0 };
	uint64_t            size;

	if (spool_message_size(s->spool, id, &size, &err) != 0)
		size = 0; /* gone meanwhile: found missing at delivery */
	m = queue_index_add(s->qi, id, relay, env->created, env->uid, size);
	if (m == NULL)
		return;
	quota_table_add(s->usage, queue_entry_uid(m), m->size);
	if (!env->held)
		queue_index_wait(s->qi, m, env->next_attempt);
	log_debug("queued msgid=%s relay=%s queue_size=%zu", m->id,
	    s->cfg->smarthosts[relay].name, queue_index_count(s->qi));
	scheduler_request_run(s);
}

/* Route (split, bounce what has no route) and index message env->id,
 * whose envelope is env (changed when the message is narrowed to one
 * route; the caller frees it). */
static void
scheduler_add_env(struct scheduler *s, struct envelope *env)
{
	struct sq_err err = { 0 };
	size_t        n_noroute;
	int          *route, first, changed = 0;

	route = scheduler_route(s, env, &first, &n_noroute);
	if (n_noroute > 0) {
		if (!scheduler_fail_unrouted(s, env, route, n_noroute))
			first = -1; /* keep everything; retried at scan */
		else
			changed = 1;
		if (first < 0) {
			if (changed &&
			    spool_remove(s->spool, env->id, &err) != 0)
				log_err("msgid=%s: %s", env->id, err.msg);
			goto out;
		}
	}
	changed |= scheduler_split(s, env->id, env, route, first);
	if (changed)
		scheduler_narrow(s, env, route, first);
	scheduler_index(s, env->id, env, first);
out:
	free(route);
}

/* Read, route and index message id, unless it is indexed already. */
static void
scheduler_add_id(const char *id, void *arg)
{
	struct scheduler *s = arg;
	struct envelope  *env = NULL;
	struct sq_err     err = { 0 };

	if (queue_index_find(s->qi, id) != NULL)
		return;
	if (spool_load_envelope(s->spool, id, &env, &err) != 0) {
		if (err.code == SQ_EPARSE || err.code == SQ_ELIMIT)
			spool_quarantine_id(s->spool, id, err.msg);
		else if (err.code != -ENOENT && err.code != SQ_ENOTFOUND)
			log_err("msgid=%s: cannot read its envelope: %s (left "
				"in the spool)",
			    id, err.msg);
		return;
	}
	scheduler_add_env(s, env);
	envelope_free(env);
}

/* A listed id: indexed unless its commit is still in flight (its names
 * are in queue/ before the fsync that makes them durable; it is indexed
 * when the commit is done, from its committer). */
static void
scheduler_rescan_id(const char *id, void *arg)
{
	struct scheduler *s = arg;

	if (queue_index_find(s->qi, id) == NULL &&
	    !spool_commit_pending(s->spool, id))
		scheduler_add_id(id, s);
}

/* The safety net: index what was put into queue/ from outside.  A
 * listing, not a recovery: known ids cost a hash lookup, no envelope is
 * read. */
static void
scheduler_rescan(struct scheduler *s)
{
	struct sq_err err = { 0 };

	if (spool_list(s->spool, scheduler_rescan_id, s, &err) < 0)
		log_err("queue scan failed: %s", err.msg);
	scheduler_request_run(s);
}

static void
scheduler_on_rescan(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scheduler_rescan(arg);
}

/* ------------------------------------------------------------------ */
/* The control socket's operations. */

static struct queue_entry *
scheduler_lookup(struct scheduler *s, const char *id, struct sq_err *err)
{
	struct queue_entry *m = queue_index_find(s->qi, id);

	if (m == NULL)
		sq_err_set(err, SQ_ENOTFOUND, "no queued message %s", id);
	return m;
}

/* The message id when no connection is working on it right now. */
static struct queue_entry *
scheduler_lookup_idle(struct scheduler *s, const char *id, struct sq_err *err)
{
	struct queue_entry *m = scheduler_lookup(s, id, err);

	if (m != NULL && m->state == QUEUE_ACTIVE) {
		sq_err_set(err, -EBUSY,
		    "message %s is being delivered right now; try again in a "
		    "moment",
		    id);
		return NULL;
	}
	return m;
}

/* The idle message id and its envelope (the caller frees it).  Returns
 * 0, or a negative code with err. */
static int
scheduler_load_idle(struct scheduler *s, const char *id, struct queue_entry **m,
    struct envelope **env, struct sq_err *err)
{
	*env = NULL;
	if ((*m = scheduler_lookup_idle(s, id, err)) == NULL)
		return err->code < 0 ? err->code : SQ_ENOTFOUND;
	return spool_load_envelope(s->spool, id, env, err);
}

/* Relay i's state for the status (JSON's words or text's) and, when it
 * is held, why into *held. */
static const char *
scheduler_relay_state(const struct scheduler *s, size_t i, int json,
    const char **held)
{
	*held = NULL;
	if (authsrc_held(s->auth, i, held))
		return json ? "held" : "HELD";
	*held = NULL;
	return scheduler_relay(s, (int)i)->down ? (json ? "down" : "DOWN") :
						  "up";
}

/* {"queued":N,"smarthosts":[relay, ...]} and a newline. */
static int
scheduler_status_json(struct scheduler *s, struct buf *out, struct sq_err *err)
{
	struct json_write w;
	const char       *state, *held;
	size_t            i, depth;
	int64_t           oldest;
	int               rc;

	json_write_init(&w, out);
	json_write_object_begin(&w);
	json_write_key(&w, "queued");
	json_write_uint(&w, queue_index_count(s->qi));
	/* The arrival of the oldest message not held (0: none). */
	scheduler_queue_stats(s, &depth, &oldest);
	json_write_key(&w, "oldest");
	json_write_int(&w, oldest);
	json_write_key(&w, "smarthosts");
	json_write_array_begin(&w);
	for (i = 0; i < s->pool->n; i++) {
		state = scheduler_relay_state(s, i, 1, &held);
		relay_status_json(scheduler_relay(s, (int)i), state, held,
		    queue_index_lane_count(s->qi, (int)i),
		    queue_index_lane_due(s->qi, (int)i), &w);
	}
	json_write_array_end(&w);
	json_write_object_end(&w);
	if ((rc = json_write_finish(&w)) != 0 ||
	    (rc = buf_append_str(out, "\n")) != 0)
		return sq_err_set(err, rc, "the status does not fit");
	return 0;
}

static int
scheduler_op_status(void *arg, int json, struct buf *out, struct sq_err *err)
{
	struct scheduler *s = arg;
	const char       *state, *held;
	char              line[64];
	size_t            i;

	if (json)
		return scheduler_status_json(s, out, err);
	snprintf(line, sizeof(line), "queue: %zu message(s)\n",
	    queue_index_count(s->qi));
	buf_append_str(out, line);
	for (i = 0; i < s->pool->n; i++) {
		state = scheduler_relay_state(s, i, 0, &held);
		relay_status_text(scheduler_relay(s, (int)i), state, held,
		    queue_index_lane_count(s->qi, (int)i),
		    queue_index_lane_due(s->qi, (int)i), out);
	}
	return 0;
}

static int
scheduler_op_flush(void *arg, struct sq_err *err)
{
	struct scheduler *s = arg;
	size_t            i;

	(void)err;
	scheduler_rescan(s); /* what was put into queue/ by hand */
	while (queue_index_pop_due(s->qi, INT64_MAX) != NULL)
		;
	for (i = 0; i < s->pool->n; i++)
		scheduler_relay(s, (int)i)->down_until = 0;
	log_info("flush requested: every deferred message is due now");
	scheduler_request_run(s);
	return 0;
}

static int
scheduler_op_retry(void *arg, const char *id, struct sq_err *err)
{
	struct scheduler   *s = arg;
	struct queue_entry *m;

	if ((m = scheduler_lookup(s, id, err)) == NULL)
		return err->code;
	if (m->state == QUEUE_WAITING)
		queue_index_due(s->qi, m, 1);
	else if (m->state == QUEUE_HELD)
		return sq_err_set(err, SQ_EPARSE,
		    "message %s is held (release it first)", id);
	scheduler_request_run(s);
	return 0;
}

static int
scheduler_set_held(struct scheduler *s, const char *id, int held,
    struct sq_err *err)
{
	struct queue_entry *m;
	struct envelope    *env;
	int                 rc;

	if ((rc = scheduler_load_idle(s, id, &m, &env, err)) != 0)
		return rc;
	env->held = held;
	rc = spool_update_envelope(s->spool, env, err);
	if (rc == 0) {
		if (held)
			queue_index_hold(s->qi, m);
		else if (m->state == QUEUE_HELD)
			queue_index_due(s->qi, m, 0);
		log_info("msgid=%s %s by the administrator", id,
		    held ? "held" : "released");
	}
	envelope_free(env);
	scheduler_request_run(s);
	return rc;
}

static int
scheduler_op_hold(void *arg, const char *id, struct sq_err *err)
{
	return scheduler_set_held(arg, id, 1, err);
}

static int
scheduler_op_release(void *arg, const char *id, struct sq_err *err)
{
	return scheduler_set_held(arg, id, 0, err);
}

static int
scheduler_op_remove(void *arg, const char *id, struct sq_err *err)
{
	struct scheduler   *s = arg;
	struct queue_entry *m;
	int                 rc;

	if ((m = scheduler_lookup_idle(s, id, err)) == NULL)
		return err->code;
	if ((rc = spool_remove(s->spool, id, err)) != 0)
		return rc;
	log_warn("msgid=%s deleted by the administrator", id);
	scheduler_drop(s, m);
	return 0;
}

static int
scheduler_op_bounce(void *arg, const char *id, struct sq_err *err)
{
	struct scheduler   *s = arg;
	struct queue_entry *m;
	struct envelope    *env;
	int                 rc;

	if ((rc = scheduler_load_idle(s, id, &m, &env, err)) != 0)
		return rc;
	log_warn("msgid=%s bounced by the administrator", id);
	scheduler_settle_all(s, m, env, RETRY_BOUNCE,
	    "554 5.0.0 returned to the sender by the mail administrator", NULL);
	scheduler_request_run(s);
	return 0;
}

static int
scheduler_op_is_active(void *arg, const char *id)
{
	struct scheduler   *s = arg;
	struct queue_entry *m = queue_index_find(s->qi, id);

	return m != NULL && m->state == QUEUE_ACTIVE;
}

static const char *
scheduler_op_relay_of(void *arg, const char *id)
{
	struct scheduler   *s = arg;
	struct queue_entry *m = queue_index_find(s->qi, id);

	return m != NULL ? scheduler_relay(s, m->lane)->sh->name : NULL;
}

static int
scheduler_op_oauth_status(void *arg, const char *name, struct buf *out,
    struct sq_err *err)
{
	struct scheduler *s = arg;

	return authsrc_status(s->auth, name, out, err);
}

void
scheduler_control_ops(struct scheduler *s, struct control_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->status = scheduler_op_status;
	ops->flush = scheduler_op_flush;
	ops->retry = scheduler_op_retry;
	ops->hold = scheduler_op_hold;
	ops->release = scheduler_op_release;
	ops->remove = scheduler_op_remove;
	ops->bounce = scheduler_op_bounce;
	ops->is_active = scheduler_op_is_active;
	ops->oauth_status = scheduler_op_oauth_status;
	ops->relay_of = scheduler_op_relay_of;
	ops->arg = s;
}

/* quota.h: what uid has in the index now. */
static int
scheduler_op_uid_usage(void *arg, long uid, uint64_t *msgs, uint64_t *bytes)
{
	struct scheduler *s = arg;

	quota_table_get(s->usage, uid, msgs, bytes);
	return 0;
}

/* quota.h: a message was just committed; index it now, from the
 * envelope the intake path wrote (not read back). */
static void
scheduler_op_queued(void *arg, struct envelope *env)
{
	struct scheduler *s = arg;

	if (!s->shutting_down && queue_index_find(s->qi, env->id) == NULL)
		scheduler_add_env(s, env);
}

void
scheduler_quota_ops(struct scheduler *s, struct quota *q)
{
	q->uid_usage = scheduler_op_uid_usage;
	q->queued = scheduler_op_queued;
	q->arg = s;
}

/* ------------------------------------------------------------------ */
/* Life cycle. */

static void
scheduler_set_policy(struct scheduler *s, const struct config *cfg)
{
	s->policy.min = cfg->retry_min;
	s->policy.max = cfg->retry_max > cfg->retry_min ? cfg->retry_max :
							  cfg->retry_min;
	s->policy.max_age = cfg->max_age;
}

int
scheduler_new(struct event_base *base, struct evdns_base *dns,
    const struct config *cfg, const char *ehlo_name, struct spool *sp,
    struct scheduler **out, struct sq_err *err)
{
	struct scheduler *s;
	int               rc;

	if (cfg->n_smarthosts == 0)
		return sq_err_set(err, SQ_ECONFIG,
		    "%s: no smarthost configured", cfg->path);
	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->dns = dns;
	s->cfg = cfg;
	s->ehlo_name = xstrdup(ehlo_name);
	s->spool = sp;
	scheduler_set_policy(s, cfg);
	if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) !=
		(ssize_t)sizeof(s->rng) ||
	    s->rng == 0)
		s->rng = (uint64_t)time(NULL) * 2654435761u + 1;
	s->qi = queue_index_new(cfg->n_smarthosts);
	s->usage = quota_table_new();
	if ((rc = relay_pool_new(base, cfg, s, sq_now_ms(), &s->pool, err)) !=
	    0) {
		scheduler_free(s);
		return rc;
	}
	s->run_ev = event_new(base, -1, 0, scheduler_on_run, s);
	s->rm_sync_ev = event_new(base, -1, 0, scheduler_on_rm_sync, s);
	s->index_ev = evtimer_new(base, scheduler_on_index, s);
	s->timer = evtimer_new(base, scheduler_on_run, s);
	s->rescan_timer = event_new(base, -1, EV_PERSIST, scheduler_on_rescan,
	    s);
	*out = s;
	return 0;
}

int
scheduler_start(struct scheduler *s, struct sq_err *err)
{
	struct timeval rescan = { SCHEDULER_RESCAN_SECONDS, 0 };
	int            n;

	/* AUTH secrets and OAuth state (STATE_DIR/oauth/) first. */
	if ((n = authsrc_new(s->base, s->cfg, scheduler_on_auth_change, s,
		 &s->auth, err)) != 0)
		return n;
	if ((n = spool_recover_lazy(s->spool, scheduler_collect_id, s, err)) <
	    0)
		return n;
	log_info("queue recovered: %d message(s) found", n);
	event_add(s->rescan_timer, &rescan);
	scheduler_index_chunk(s);
	return 0;
}

/*
 * The stop (scheduler_shutdown).  With stop_grace = 0 every connection is
 * dropped at once.  Otherwise a delivery whose final dot is out keeps its
 * connection until its reply is read and settled as usual (or stop_grace
 * runs out), then that connection QUITs; idle connections QUIT at once
 * (smtp_conn_close: QUIT, the answer, a TLS close_notify, bounded by the
 * QUIT timeout); anything else is dropped.  Each connection the stop
 * keeps is watched through smtp_conn_on_gone (cc->stop_conn); done is
 * called once none is left, or at the end of stop_grace (or on
 * scheduler_stop_now), when the rest is dropped and logged.
 */
struct scheduler_stop {
	void (*done)(void *);
	void         *arg;
	struct event *grace;   /* stop_grace */
	size_t        waiting; /* connections whose end is awaited */
	int           over;    /* done is scheduled */
};

static void
scheduler_on_stopped(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler_stop *st = arg;

	(void)fd;
	(void)what;
	st->done(st->arg);
}

/* Drop what is left (nothing when every connection ended) and call done
 * from the event loop. */
static void
scheduler_stop_over(struct scheduler *s)
{
	struct timeval now = { 0, 0 };

	if (s->stop->over)
		return;
	s->stop->over = 1;
	evtimer_del(s->stop->grace);
	relay_pool_abort_all(s->pool);
	event_base_once(s->base, -1, EV_TIMEOUT, scheduler_on_stopped, s->stop,
	    &now);
}

/* smtp_conn_on_gone: a connection the stop waited for has ended. */
static void
scheduler_on_conn_gone(struct smtp_conn *c, void *arg)
{
	struct relay_conn *cc = arg;
	struct scheduler  *s = scheduler_of(cc);

	if (cc->stop_conn != c || s->stop == NULL)
		return;
	cc->stop_conn = NULL;
	if (--s->stop->waiting == 0 && !s->stop->over) {
		log_info("stop: every connection closed");
		scheduler_stop_over(s);
	}
}

/* The stop waits for cc's connection to end. */
static void
scheduler_stop_wait(struct scheduler *s, struct relay_conn *cc)
{
	cc->stop_conn = cc->conn;
	smtp_conn_on_gone(cc->conn, scheduler_on_conn_gone, cc);
	s->stop->waiting++;
}

/* During the stop: cc's connection has nothing more to carry: QUIT when
 * it is idle, else dropped; the stop waits for its end. */
static void
scheduler_stop_close(struct relay_conn *cc)
{
	if (cc->conn == NULL)
		return;
	if (cc->nxt != NULL) {
		/* Its MAIL, RCPT and DATA are out: no QUIT can follow. */
		log_info("msgid=%s: not sent (pipelined behind the message "
			 "the stop waited for); it stays queued",
		    cc->nxt->id);
		relay_conn_release_next(cc);
	}
	relay_conn_close(cc);
}

/* stop_grace is over (or a second signal): drop every connection still
 * open; a delivery still awaiting its reply stays queued. */
static void
scheduler_stop_abandon(struct scheduler *s, const char *why)
{
	size_t   i, n_msgs = 0, n_conns = 0;
	unsigned j;

	for (i = 0; i < s->pool->n; i++) {
		struct relay *r = scheduler_relay(s, (int)i);

		for (j = 0; j < r->sh->max_connections; j++) {
			struct relay_conn *cc = &r->conns[j];
			struct smtp_conn  *c = cc->stop_conn;

			if (c == NULL)
				continue;
			cc->stop_conn = NULL;
			n_conns++;
			if (cc->conn == c && cc->cur != NULL) {
				log_info("msgid=%s: abandoned by the stop "
					 "(%s) while awaiting the reply to "
					 "its final dot; it stays queued and "
					 "may reach the recipients twice",
				    cc->cur->id, why);
				n_msgs++;
			}
			if (cc->conn == c && cc->nxt != NULL)
				log_info("msgid=%s: not sent (pipelined); "
					 "it stays queued",
				    cc->nxt->id);
			if (cc->conn == c)
				relay_conn_gone(cc);
			relay_conn_release(cc);
			relay_conn_release_next(cc);
			smtp_conn_abort(c);
		}
	}
	s->stop->waiting = 0;
	log_info("stop: %s: abandoned %zu deliveries awaiting their reply "
		 "(%zu connections dropped)",
	    why, n_msgs, n_conns);
	scheduler_stop_over(s);
}

static void
scheduler_on_stop_grace(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	char              why[64];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "stop_grace of %us over",
	    s->cfg->stop_grace);
	scheduler_stop_abandon(s, why);
}

void
scheduler_stop_now(struct scheduler *s)
{
	if (s->stop != NULL && !s->stop->over)
		scheduler_stop_abandon(s, "stopping at once");
}

/* The stop's first look at connection cc (in use): 1 when it waits for
 * it (a reply to a final dot, or an idle one's QUIT). */
static int
scheduler_stop_conn(struct scheduler *s, struct relay_conn *cc, size_t *n_dot)
{
	if (s->cfg->stop_grace > 0 && cc->cur != NULL &&
	    smtp_conn_awaits_dot_reply(cc->conn)) {
		scheduler_stop_wait(s, cc);
		(*n_dot)++;
		return 1;
	}
	if (cc->cur != NULL)
		log_info("msgid=%s: delivery interrupted by shutdown; it "
			 "stays queued",
		    cc->cur->id);
	if (cc->nxt != NULL)
		log_info("msgid=%s: delivery interrupted by shutdown; it "
			 "stays queued",
		    cc->nxt->id);
	if (s->cfg->stop_grace == 0)
		return 0; /* relay_pool_abort_all() drops it */
	relay_conn_release(cc);
	relay_conn_release_next(cc);
	scheduler_stop_wait(s, cc);
	relay_conn_close(cc); /* QUIT when idle, else dropped */
	return 1;
}

void
scheduler_shutdown(struct scheduler *s, void (*done)(void *), void *arg)
{
	struct timeval grace = { (time_t)s->cfg->stop_grace, 0 };
	size_t         i, n_dot = 0, n_quit = 0;
	unsigned       j;

	s->shutting_down = 1;
	event_del(s->timer);
	event_del(s->rescan_timer);
	s->stop = xcalloc(1, sizeof(*s->stop));
	s->stop->done = done;
	s->stop->arg = arg;
	s->stop->grace = evtimer_new(s->base, scheduler_on_stop_grace, s);
	if (s->stop->grace == NULL)
		log_fatalx("scheduler: evtimer_new failed");
	for (i = 0; i < s->pool->n; i++) {
		struct relay *r = scheduler_relay(s, (int)i);

		for (j = 0; j < r->sh->max_connections; j++)
			if (r->conns[j].conn != NULL &&
			    scheduler_stop_conn(s, &r->conns[j], &n_dot) &&
			    r->conns[j].cur == NULL)
				n_quit++;
	}
	if (s->stop->waiting == 0) {
		scheduler_stop_over(s);
		return;
	}
	log_info("stop: waiting up to %us (stop_grace) for %zu deliveries "
		 "awaiting their reply to the final dot and %zu connections "
		 "closing",
	    s->cfg->stop_grace, n_dot, n_quit);
	evtimer_add(s->stop->grace, &grace);
}

static void
scheduler_event_free(struct event *ev)
{
	if (ev != NULL)
		event_free(ev);
}

void
scheduler_free(struct scheduler *s)
{
	if (s == NULL)
		return;
	relay_pool_free(s->pool);
	queue_index_free(s->qi);
	quota_table_free(s->usage);
	scheduler_event_free(s->run_ev);
	scheduler_event_free(s->index_ev);
	free(s->rec_ids);
	if (s->rm_sync_ev != NULL) {
		scheduler_on_rm_sync(-1, 0, s);
		event_free(s->rm_sync_ev);
	}
	scheduler_event_free(s->timer);
	scheduler_event_free(s->rescan_timer);
	if (s->stop != NULL) {
		scheduler_event_free(s->stop->grace);
		free(s->stop);
	}
	authsrc_free(s->auth);
	free(s->ehlo_name);
	free(s);
}

void
scheduler_summary(const struct scheduler *s, char *buf, size_t len)
{
	size_t i, n;
	int    w;

	w = snprintf(buf, len, "queued %zu", queue_index_count(s->qi));
	for (i = 0; i < s->pool->n && w >= 0 && (size_t)w < len; i++) {
		n = (size_t)w;
		w = snprintf(buf + n, len - n, "%s%s %s",
		    i == 0 ? "; relays: " : ", ",
		    scheduler_relay(s, (int)i)->sh->name,
		    authsrc_held(s->auth, i, NULL)       ? "HELD" :
			scheduler_relay(s, (int)i)->down ? "DOWN" :
							   "up");
		if (w >= 0)
			w += (int)n;
	}
}

/* queue_index_foreach() callback of scheduler_queue_stats(). */
static void
scheduler_oldest_of(struct queue_entry *m, void *arg)
{
	int64_t *oldest = arg;

	if (m->state != QUEUE_HELD && m->created > 0 &&
	    (*oldest == 0 || m->created < *oldest))
		*oldest = m->created;
}

void
scheduler_queue_stats(const struct scheduler *s, size_t *depth, int64_t *oldest)
{
	*depth = queue_index_count(s->qi);
	*oldest = 0;
	queue_index_foreach(s->qi, scheduler_oldest_of, oldest);
}

void
scheduler_metrics_gauges(void *arg, struct metrics_gauges *g)
{
	const struct scheduler *s = arg;
	const struct relay     *r;
	size_t                  i, depth;

	scheduler_queue_stats(s, &depth, &g->oldest);
	g->queue_messages = depth;
	for (i = 0; i < s->pool->n && i < g->max_relays; i++) {
		r = scheduler_relay(s, (int)i);
		g->relays[i].name = r->sh->name;
		g->relays[i].up = !r->down && !authsrc_held(s->auth, i, NULL);
		g->relays[i].oauth = (enum metrics_oauth)authsrc_oauth_state(
		    s->auth, i, &g->relays[i].oauth_expires);
	}
	g->n_relays = i;
}

/* ------------------------------------------------------------------ */
/* Reload. */

struct scheduler_ids {
	char (*ids)[ENVELOPE_ID_MAX];
	size_t            n;
	struct scheduler *s;
};

/* foreach: remember and drop every message not on a connection. */
static void
scheduler_take_idle(struct queue_entry *m, void *arg)
{
	struct scheduler_ids *t = arg;

	if (m->state == QUEUE_ACTIVE)
		return;
	snprintf(t->ids[t->n++], sizeof(t->ids[0]), "%s", m->id);
	scheduler_drop(t->s, m);
}

/* Index every queued message that is not on a connection again, under
 * the current s->cfg (route, split, bounce what has no route). */
static void
scheduler_reroute(struct scheduler *s)
{
	struct scheduler_ids t;
	size_t               i;

	t.ids = xreallocarray(NULL, queue_index_count(s->qi) + 1,
	    sizeof(*t.ids));
	t.n = 0;
	t.s = s;
	queue_index_foreach(s->qi, scheduler_take_idle, &t);
	for (i = 0; i < t.n; i++)
		scheduler_add_id(t.ids[i], s);
	free(t.ids);
}

int
scheduler_reconfigure(struct scheduler *s, const struct config *cfg,
    struct sq_err *err)
{
	int rc;

	/* Checks and new TLS contexts first: on failure nothing changed. */
	if ((rc = relay_pool_reconfigure(s->pool, cfg, sq_now_ms(), err)) != 0)
		return rc;
	s->cfg = cfg;
	authsrc_reconfigure(s->auth, cfg);
	scheduler_set_policy(s, cfg);
	scheduler_reroute(s);
	log_info("reconfigured: %zu message(s) queued, routed again",
	    queue_index_count(s->qi));
	scheduler_request_run(s);
	return 0;
}
