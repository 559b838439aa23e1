/*
 * scheduler.c - the queue engine: which message goes out when, over which
 * connection, and what happens to it afterwards.
 *
 * The queue index.  Every queued message is a small record (queue id, the
 * relay it is routed to, next attempt, state) in a hash table; bodies and
 * envelopes stay on disk and are read only to route a new message and to
 * send it, so memory per queued message is constant and small.  Waiting
 * messages sit in a min-heap on their next attempt time; due messages in a
 * FIFO per relay.  States:
 *   WAITING  in the heap until next_attempt
 *   DUE      in its relay's due queue, waiting for a connection
 *   ACTIVE   on a connection right now
 *   HELD     sendqctl hold: nowhere until released
 * New messages are found by the recovery scan at start, an inotify watch
 * on queue/ (a committed message appears there by rename, IN_MOVED_TO on
 * its .env), and a periodic rescan as a safety net.
 *
 * Routing.  route_pick() chooses a smarthost per recipient; a message
 * whose recipients go to several smarthosts is split when it is first
 * indexed: the other routes get copies (new queue ids), durably written
 * before the original envelope is narrowed, so a crash in between can
 * only duplicate, never lose.
 *
 * Relays.  One per smarthost, with up to max_connections connections,
 * each carrying up to messages_per_connection messages (the proto sends
 * RSET between them when needed) and closed after idle_timeout.  A relay
 * that retry_attempt() says is down (its session could not be set up,
 * 421, ...) or resting (authentication failed) gets no connection until
 * retry_relay_next(), then one probe, while its fallback (if any) takes
 * its due messages.  A rate limit (rate = N/unit) is a token bucket per
 * relay.
 *
 * What happens to each recipient after an attempt is retry_attempt()'s
 * decision, on the facts smtp_conn reports: delivered recipients leave
 * the envelope, deferred ones wait for retry_next() (exponential backoff
 * with jitter), bounced ones (or expiry after max_age) are bounced: an
 * RFC 3464 DSN is durably queued
 * to the sender (or admin_address) before they leave the envelope; with
 * bounce = none, or for a message from the null sender, they are kept in
 * failed/ instead.  A message leaves queue/ when no recipient is left.
 *
 * Nothing here is called from inside a connection callback that could
 * re-enter that connection: callbacks ask for a run with
 * scheduler_request_run(), which activates an event.
 */
#include <sys/inotify.h>
#include <sys/queue.h>
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
#include "log.h"
#include "metrics.h"
#include "quota.h"
#include "retry.h"
#include "route.h"
#include "scheduler.h"
#include "smtp_conn.h"
#include "tls.h"

#define SCHEDULER_RESCAN_SECONDS	300	/* safety-net queue scan */
#define SCHEDULER_INDEX_CHUNK		128	/* envelopes read per turn
						 * at start-up */
#define SCHEDULER_HEADERS_MAX		(64 * 1024) /* quoted in DSNs */
#define SCHEDULER_DSN_MAX		(1024 * 1024)

enum sched_state {
	SCHED_WAITING,
	SCHED_DUE,
	SCHED_ACTIVE,
	SCHED_HELD,
};


struct sched_msg {
	TAILQ_ENTRY(sched_msg)	 due_entry;	/* relay's due queue */
	struct sched_msg	*hash_next;
	char			 id[ENVELOPE_ID_MAX];
	int64_t			 next_attempt;
	int64_t			 created;	/* for expiry while waiting */
	size_t			 heap_pos;	/* SIZE_MAX: not in heap */
	int			 relay;		/* route: smarthost index */
	enum sched_state	 state;
	long			 uid;		/* submitter, for quotas */
	uint64_t		 size;		/* body bytes, for quotas */
};
TAILQ_HEAD(sched_msg_list, sched_msg);

struct sched_relay;

struct sched_conn {
	struct sched_relay	*relay;		/* whose connection */
	struct smtp_conn	*conn;		/* NULL: slot free */
	int			 idle;		/* ready, no message */
	int			 ready_once;	/* the session got ready */
	int			 retire;	/* close at the next ready */
	unsigned		 sent;		/* messages carried */
	struct event		*idle_timer;
	struct sched_msg	*cur;
	struct envelope		*cur_env;
	unsigned		 attempt;
};

struct sched_relay {
	struct scheduler		*sched;
	const struct config_smarthost	*sh;
	int				 index;
	struct tls_ctx			*tls;
	struct sched_conn		*conns;	/* max_connections slots */
	unsigned			 n_conns;
	struct sched_msg_list		 due;
	size_t				 n_due;
	size_t				 n_routed;	/* messages routed here */
	int				 down;
	int64_t				 down_until;
	unsigned			 down_count;	/* failures in a row */
	double				 tokens;	/* rate limit bucket */
	int64_t				 tokens_at;	/* ms */
	unsigned long			 n_sent, n_deferred, n_failed;
	char				 last_error[256];
	int64_t				 last_error_at;
};

struct scheduler {
	struct event_base	*base;
	struct evdns_base	*dns;
	const struct config	*cfg;
	char			*ehlo_name;
	struct spool		*spool;
	struct retry_policy	 policy;
	uint64_t		 rng;

	struct sched_msg	**buckets;	/* hash table by id */
	size_t			 n_buckets;
	size_t			 n_msgs;
	struct quota_table	*usage;		/* per uid: queued msgs and
						 * bytes (quota.h) */
	struct sched_msg	**heap;		/* WAITING, by next_attempt */
	size_t			 heap_len, heap_cap;

	struct sched_relay	*relays;
	size_t			 n_relays;

	struct event		*run_ev;
	struct event		*rm_sync_ev;	/* one fsync(queue/) for the
						 * removals of a loop turn */
	/* Start-up: ids found by spool_recover_lazy, indexed (envelope
	 * read) a chunk per loop turn, oldest first, so that the first
	 * delivery does not wait for the whole queue to be read. */
	char			(*rec_ids)[ENVELOPE_ID_MAX];
	size_t			 rec_n, rec_cap, rec_pos;
	struct event		*index_ev;
	struct event		*timer;
	struct event		*rescan_timer;
	struct event		*watch_ev;
	int			 watch_fd;
	int			 shutting_down;
	struct authsrc		*auth;		/* AUTH secrets, OAuth */
	/* TLS contexts replaced by a reload (connections in flight may
	 * still use them): freed with the scheduler. */
	struct tls_ctx		**old_tls;
	size_t			 n_old_tls;
};

static void	scheduler_run(struct scheduler *s);
static void	scheduler_add_id(const char *id, void *arg);
static void	scheduler_collect_id(const char *id, void *arg);
static void	scheduler_index_chunk(struct scheduler *s);

/* ------------------------------------------------------------------ */
/* Time and randomness (the only places that read them). */

static int64_t
scheduler_now(void)
{
	return (int64_t)time(NULL);
}

static int64_t
scheduler_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* ------------------------------------------------------------------ */
/* The index: hash table and heap. */

static size_t
scheduler_hash(const char *id, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (size_t)(h & (n - 1));
}

static struct sched_msg *
scheduler_find(struct scheduler *s, const char *id)
{
	struct sched_msg *m;

	for (m = s->buckets[scheduler_hash(id, s->n_buckets)]; m != NULL;
	    m = m->hash_next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static void
scheduler_hash_insert(struct scheduler *s, struct sched_msg *m)
{
	struct sched_msg **nb, *e, *next;
	size_t i, n, h;

	if (s->n_msgs + 1 > s->n_buckets * 2) {
		n = s->n_buckets * 2;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
		nb = xcalloc(n, sizeof(*nb));
		for (i = 0; i < s->n_buckets; i++)
			for (e = s->buckets[i]; e != NULL; e = next) {
				next = e->hash_next;
				h = scheduler_hash(e->id, n);
				e->hash_next = nb[h];
				nb[h] = e;
			}
		free(s->buckets);
		s->buckets = nb;
		s->n_buckets = n;
	}
	h = scheduler_hash(m->id, s->n_buckets);
	m->hash_next = s->buckets[h];
	s->buckets[h] = m;
	s->n_msgs++;
}

static void
scheduler_hash_remove(struct scheduler *s, struct sched_msg *m)
{
	struct sched_msg **pp;

	for (pp = &s->buckets[scheduler_hash(m->id, s->n_buckets)];
	    *pp != NULL; pp = &(*pp)->hash_next)
		if (*pp == m) {
			*pp = m->hash_next;
			s->n_msgs--;
			return;
		}
}

static void
scheduler_heap_swap(struct scheduler *s, size_t a, size_t b)
{
	struct sched_msg *t = s->heap[a];

	s->heap[a] = s->heap[b];
	s->heap[b] = t;
	s->heap[a]->heap_pos = a;
	s->heap[b]->heap_pos = b;
}

static void
scheduler_heap_up(struct scheduler *s, size_t i)
{
	while (i > 0 && s->heap[(i - 1) / 2]->next_attempt >
	    s->heap[i]->next_attempt) {
		scheduler_heap_swap(s, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
scheduler_heap_down(struct scheduler *s, size_t i)
{
	size_t l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < s->heap_len && s->heap[l]->next_attempt <
		    s->heap[m]->next_attempt)
			m = l;
		if (r < s->heap_len && s->heap[r]->next_attempt <
		    s->heap[m]->next_attempt)
			m = r;
		if (m == i)
			return;
		scheduler_heap_swap(s, i, m);
		i = m;
	}
}

static void
scheduler_heap_push(struct scheduler *s, struct sched_msg *m)
{
	if (s->heap_len == s->heap_cap) {
		s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
		s->heap = xreallocarray(s->heap, s->heap_cap,
		    /* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
		    sizeof(*s->heap));
	}
	m->heap_pos = s->heap_len;
	s->heap[s->heap_len++] = m;
	scheduler_heap_up(s, m->heap_pos);
}

static void
scheduler_heap_remove(struct scheduler *s, struct sched_msg *m)
{
	size_t i = m->heap_pos;

	if (i == SIZE_MAX)
		return;
	m->heap_pos = SIZE_MAX;
	if (i == --s->heap_len)
		return;
	s->heap[i] = s->heap[s->heap_len];
	s->heap[i]->heap_pos = i;
	scheduler_heap_down(s, i);
	scheduler_heap_up(s, i);
}

/* Take m out of whatever list its state puts it in. */
static void
scheduler_unlink(struct scheduler *s, struct sched_msg *m)
{
	switch (m->state) {
	case SCHED_WAITING:
		scheduler_heap_remove(s, m);
		break;
	case SCHED_DUE:
		TAILQ_REMOVE(&s->relays[m->relay].due, m, due_entry);
		s->relays[m->relay].n_due--;
		break;
	case SCHED_ACTIVE:
	case SCHED_HELD:
		break;
	}
}

static void
scheduler_set_waiting(struct scheduler *s, struct sched_msg *m,
    int64_t when)
{
	scheduler_unlink(s, m);
	m->state = SCHED_WAITING;
	m->next_attempt = when;
	scheduler_heap_push(s, m);
}

static void
scheduler_set_due(struct scheduler *s, struct sched_msg *m, int at_head)
{
	struct sched_relay *r = &s->relays[m->relay];

	scheduler_unlink(s, m);
	m->state = SCHED_DUE;
	if (at_head)
		TAILQ_INSERT_HEAD(&r->due, m, due_entry);
	else
		TAILQ_INSERT_TAIL(&r->due, m, due_entry);
	r->n_due++;
}

static void
scheduler_drop(struct scheduler *s, struct sched_msg *m)
{
	scheduler_unlink(s, m);
	scheduler_hash_remove(s, m);
	quota_table_sub(s->usage, m->uid, m->size);
	s->relays[m->relay].n_routed--;
	free(m);
}

/* ------------------------------------------------------------------ */
/* Logging. */

static void
scheduler_quote(char *dst, size_t dstsz, const char *src)
{
	sq_printable(dst, dstsz, src, strlen(src));
	for (; *dst != '\0'; dst++)
		if (*dst == '"')
			*dst = '\'';
}

static void
scheduler_log_attempt(struct sched_conn *cc, const char *id,
    const char *result, const struct smtp_conn_result *res)
{
	struct sched_relay *r = cc->relay;
	struct sched_msg *m = cc->cur;
	char reply[sizeof(res->reply)], via[96] = "";

	scheduler_quote(reply, sizeof(reply), res->reply);
	if (m != NULL && m->relay != r->index)
		snprintf(via, sizeof(via), " fallback_for=%s",
		    r->sched->relays[m->relay].sh->name);
	log_event(strcmp(result, "sent") == 0 ? LOG_LEVEL_INFO :
	    LOG_LEVEL_WARN, id, r->sh->name, result, "delivery "
	    "msgid=%s relay=%s%s host=%s:%u tls=\"%s\" verify=\"%s\" "
	    "result=%s attempt=%u reply=\"%s\"", id, r->sh->name, via,
	    r->sh->host, r->sh->port, res->tls, res->verify, result,
	    cc->attempt, reply);
}

static void
scheduler_relay_error(struct sched_relay *r, const char *text)
{
	scheduler_quote(r->last_error, sizeof(r->last_error), text);
	r->last_error_at = scheduler_now();
}

/* ------------------------------------------------------------------ */
/* Bounces and failed/. */

/* The header section of message id (up to SCHEDULER_HEADERS_MAX). */
static char *
scheduler_read_headers(struct scheduler *s, const char *id, size_t *len)
{
	struct sq_err err = { 0 };
	char *buf, *end;
	ssize_t n;
	size_t got = 0;
	int fd;

	*len = 0;
	if ((fd = spool_open_message(s->spool, id, &err)) < 0)
		return NULL;
	buf = xmalloc(SCHEDULER_HEADERS_MAX + 1);
	while (got < SCHEDULER_HEADERS_MAX && (n = read(fd, buf + got,
	    SCHEDULER_HEADERS_MAX - got)) > 0)
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

/* Queue a DSN about env's recipients rc[0..n).  Returns 0 once it is
 * durably in the spool. */
static int
scheduler_queue_dsn(struct scheduler *s, const struct envelope *env,
    const struct bounce_rcpt *rc, size_t n, enum bounce_action action,
    struct sq_err *err)
{
	struct bounce_params p;
	struct spool_writer *w = NULL;
	struct envelope *dsn;
	struct buf out;
	char nonce[64], *headers;
	size_t hlen;
	int rc_;

	memset(&p, 0, sizeof(p));
	snprintf(nonce, sizeof(nonce), "%s.%08x%08x", env->id,
	    scheduler_random(s), scheduler_random(s));
	headers = scheduler_read_headers(s, env->id, &hlen);
	p.reporting_host = s->ehlo_name;
	p.to = s->cfg->bounce == CONFIG_BOUNCE_ADMIN ?
	    s->cfg->admin_address : env->sender;
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
	if (rc_ != 0) {
		buf_fini(&out);
		return sq_err_set(err, rc_, "cannot build the DSN");
	}
	dsn = envelope_new();
	envelope_set_sender(dsn, "");
	envelope_add_rcpt(dsn, p.to);
	dsn->created = p.now;
	if ((rc_ = spool_writer_begin(s->spool, &w, err)) == 0 &&
	    (rc_ = spool_writer_write(w, out.data, out.len, err)) == 0)
		rc_ = spool_writer_commit(w, dsn, err);
	else if (w != NULL)
		spool_writer_abort(w);
	buf_fini(&out);
	if (rc_ == 0) {
		log_info("dsn msgid=%s action=%s about=%s to=%s rcpts=%zu",
		    dsn->id, action == BOUNCE_FAILED ? "failed" : "delayed",
		    env->id, p.to, n);
		scheduler_add_id(dsn->id, s);
	}
	envelope_free(dsn);
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

/*
 * Recipients of env listed in rc[0..n) failed for good.  Bounce them (or
 * keep them in failed/); returns 0 when that is durable, so the caller
 * may drop them from the envelope.
 */
static int
scheduler_fail_rcpts(struct scheduler *s, const struct envelope *env,
    const struct bounce_rcpt *rc, size_t n)
{
	struct envelope *failed;
	struct sq_err err = { 0 };
	struct buf why;
	size_t i;
	int rc_;

	for (i = 0; i < n; i++)
		log_warn("failed msgid=%s rcpt=%s reason=\"%s\"", env->id,
		    rc[i].addr, rc[i].reply != NULL ? rc[i].reply : "?");
	if (env->sender[0] != '\0' && s->cfg->bounce != CONFIG_BOUNCE_NONE) {
		/* NOTIFY (RFC 3461): only recipients that did not opt out
		 * of failure reports are in the DSN; ORCPT goes with them. */
		struct bounce_rcpt *dr = xcalloc(n, sizeof(*dr));
		size_t n_dsn = 0;

		for (i = 0; i < n; i++) {
			const struct envelope_rcpt_dsn *d =
			    scheduler_rcpt_dsn(env, rc[i].addr);

			if (!scheduler_notify_wants(d,
			    ENVELOPE_NOTIFY_FAILURE)) {
				log_info("failed msgid=%s rcpt=%s dsn=none "
				    "(NOTIFY=%s)", env->id, rc[i].addr,
				    d != NULL &&
				    (d->notify & ENVELOPE_NOTIFY_NEVER) ?
				    "NEVER" : "without FAILURE");
				continue;
			}
			dr[n_dsn] = rc[i];
			dr[n_dsn++].orcpt = d != NULL ? d->orcpt : NULL;
		}
		rc_ = n_dsn == 0 ? 0 : scheduler_queue_dsn(s, env, dr, n_dsn,
		    BOUNCE_FAILED, &err);
		free(dr);
		if (rc_ == 0)
			return 0;
		log_err("msgid=%s: cannot queue the bounce: %s (keeping the "
		    "recipients in failed/ instead)", env->id, err.msg);
	}
	/* No DSN (null sender, bounce = none, or it could not be made):
	 * keep what failed, with the reasons, in failed/. */
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
		    "failed/: %s (they stay queued)", env->id, err.msg);
	else
		log_info("msgid=%s: %zu failed recipient(s) kept in failed/ "
		    "(%s)", env->id, n, env->sender[0] == '\0' ?
		    "null sender: never bounced" : "bounce = none");
	envelope_free(failed);
	return rc_;
}

/* ------------------------------------------------------------------ */
/* Settling an attempt. */

/*
 * Apply fates to the envelope of m: RETRY_DELIVERED recipients leave it,
 * RETRY_BOUNCE ones are bounced then leave it, RETRY_DEFER ones wait.  With
 * replies[i] the reason per recipient (NULL: reason).  Frees env.
 */
static void
scheduler_settle(struct scheduler *s, struct sched_msg *m,
    struct envelope *env, const enum retry_fate *fate,
    const char *const *replies, const char *reason, const char *remote)
{
	struct bounce_rcpt *rc;
	struct sq_err err = { 0 };
	int64_t now = scheduler_now();
	size_t i, n_fail = 0, kept = 0, n_done = 0;
	int expired, *final;

	/* A recipient ends here when it failed for good, or when it would
	 * be retried but the message has run out of time (4.4.7). */
	expired = retry_expired(&s->policy, env->created, now);
	final = xcalloc(env->n_rcpts, sizeof(*final));
	rc = xcalloc(env->n_rcpts, sizeof(*rc));
	for (i = 0; i < env->n_rcpts; i++) {
		if (fate[i] == RETRY_DELIVERED ||
		    (fate[i] == RETRY_DEFER && !expired))
			continue;
		final[i] = 1;
		rc[n_fail].addr = env->rcpts[i];
		rc[n_fail].remote_mta = remote;
		rc[n_fail].reply = replies != NULL && replies[i] != NULL ?
		    replies[i] : reason;
		if (fate[i] == RETRY_DEFER)
			rc[n_fail].status = "4.4.7";
		n_fail++;
	}
	if (expired && n_fail > 0)
		log_warn("msgid=%s: expired: still undelivered after %us in "
		    "the queue", env->id, s->policy.max_age);
	if (n_fail > 0 && scheduler_fail_rcpts(s, env, rc, n_fail) != 0)
		memset(final, 0, env->n_rcpts * sizeof(*final));
	free(rc);
	/* Keep what is still to be tried (final becomes "keep"); the
	 * recipients' DSN parameters go with them. */
	for (i = 0; i < env->n_rcpts; i++) {
		final[i] = fate[i] != RETRY_DELIVERED && !final[i];
		kept += final[i] != 0;
		n_done += fate[i] == RETRY_DELIVERED;
	}
	metrics_count_settled(s->relays[m->relay].sh->name, n_done, kept,
	    env->n_rcpts - kept - n_done, now - env->created);
	envelope_keep_rcpts(env, final);
	free(final);
	if (kept == 0) {
		if (spool_remove_unsynced(s->spool, env->id, &err) == 0)
			event_active(s->rm_sync_ev, 0, 0);
		else
			log_err("msgid=%s: done but cannot remove it from the "
			    "spool: %s (it may be sent again)", env->id,
			    err.msg);
		scheduler_drop(s, m);
		envelope_free(env);
		return;
	}
	env->attempts++;
	env->next_attempt = retry_next(&s->policy, now, env->attempts,
	    scheduler_random(s));
	envelope_set_error(env, reason);
	/* One delay warning, when configured and due. */
	if (s->cfg->delay_warning > 0 && !env->warned &&
	    env->sender[0] != '\0' && s->cfg->bounce != CONFIG_BOUNCE_NONE &&
	    now - env->created >= (int64_t)s->cfg->delay_warning) {
		struct bounce_rcpt *dr = xcalloc(env->n_rcpts, sizeof(*dr));
		const struct envelope_rcpt_dsn *d;
		size_t n_dsn = 0;

		for (i = 0; i < env->n_rcpts; i++) {
			d = envelope_rcpt_dsn(env, i);
			if (!scheduler_notify_wants(d, ENVELOPE_NOTIFY_DELAY))
				continue;	/* NOTIFY without DELAY */
			dr[n_dsn].addr = env->rcpts[i];
			dr[n_dsn].reply = reason;
			dr[n_dsn].remote_mta = remote;
			dr[n_dsn++].orcpt = d != NULL ? d->orcpt : NULL;
		}
		if (n_dsn == 0 || scheduler_queue_dsn(s, env, dr, n_dsn,
		    BOUNCE_DELAYED, &err) == 0)
			env->warned = 1;
		else
			log_err("msgid=%s: cannot queue the delay warning: %s",
			    env->id, err.msg);
		free(dr);
	}
	if (spool_update_envelope(s->spool, env, &err) != 0)
		log_err("msgid=%s: cannot record the attempt: %s (the message "
		    "stays queued)", env->id, err.msg);
	scheduler_set_waiting(s, m, env->next_attempt);
	envelope_free(env);
}

/* ------------------------------------------------------------------ */
/* Connections. */

static void
scheduler_conn_release(struct sched_conn *cc)
{
	envelope_free(cc->cur_env);
	cc->cur_env = NULL;
	cc->cur = NULL;
}

/* Non-ASCII in an envelope address needs the server's SMTPUTF8. */
static int
scheduler_envelope_utf8(const struct envelope *env)
{
	const unsigned char *p;
	size_t i;

	for (p = (const unsigned char *)env->sender; *p != '\0'; p++)
		if (*p >= 0x80)
			return 1;
	for (i = 0; i < env->n_rcpts; i++)
		for (p = (const unsigned char *)env->rcpts[i]; *p != '\0'; p++)
			if (*p >= 0x80)
				return 1;
	return 0;
}

static int
scheduler_rate_take(struct sched_relay *r)
{
	const struct config_smarthost *sh = r->sh;
	int64_t now = scheduler_now_ms();
	double cap;

	if (sh->rate_count == 0)
		return 1;
	cap = sh->rate_count;
	r->tokens += (double)(now - r->tokens_at) * sh->rate_count /
	    (1000.0 * sh->rate_seconds);
	if (r->tokens > cap)
		r->tokens = cap;
	r->tokens_at = now;
	if (r->tokens < 1.0)
		return 0;
	r->tokens -= 1.0;
	return 1;
}

/* Milliseconds until the relay's bucket holds a token again. */
static int64_t
scheduler_rate_wait_ms(const struct sched_relay *r)
{
	const struct config_smarthost *sh = r->sh;

	if (sh->rate_count == 0 || r->tokens >= 1.0)
		return 0;
	return (int64_t)((1.0 - r->tokens) * 1000.0 * sh->rate_seconds /
	    sh->rate_count) + 1;
}

/* The envelope's NOTIFY bits are handed to smtp_proto as they are. */
_Static_assert(ENVELOPE_NOTIFY_NEVER == SMTP_PROTO_NOTIFY_NEVER &&
    ENVELOPE_NOTIFY_SUCCESS == SMTP_PROTO_NOTIFY_SUCCESS &&
    ENVELOPE_NOTIFY_FAILURE == SMTP_PROTO_NOTIFY_FAILURE &&
    ENVELOPE_NOTIFY_DELAY == SMTP_PROTO_NOTIFY_DELAY,
    "NOTIFY bits differ between envelope.h and smtp_proto.h");

/*
 * Put message m on the idle connection cc.  Returns 1 when it was sent,
 * 0 when m could not be read (it is dropped from the index or bounced).
 */
static int
scheduler_send(struct sched_conn *cc, struct sched_msg *m)
{
	struct scheduler *s = cc->relay->sched;
	struct smtp_conn_message msg;
	struct sq_err err = { 0 };
	struct envelope *env = NULL;
	unsigned *notify = NULL;
	const char **orcpts = NULL;
	size_t i;
	int fd, rc;

	if (spool_load_envelope(s->spool, m->id, &env, &err) != 0 ||
	    (fd = spool_open_message(s->spool, m->id, &err)) < 0) {
		if (err.code == -ENOENT || err.code == SQ_ENOTFOUND)
			log_debug("msgid=%s: no longer queued", m->id);
		else
			log_err("msgid=%s: cannot read it from the spool: %s "
			    "(left in the spool, not retried until restart)",
			    m->id, err.msg);
		envelope_free(env);
		scheduler_drop(s, m);
		return 0;
	}
	scheduler_unlink(s, m);
	m->state = SCHED_ACTIVE;
	cc->cur = m;
	cc->cur_env = env;
	cc->attempt = env->attempts + 1;
	memset(&msg, 0, sizeof(msg));
	msg.id = m->id;
	msg.sender = env->sender;
	msg.rcpts = (const char *const *)env->rcpts;
	msg.n_rcpts = env->n_rcpts;
	msg.body_fd = fd;
	msg.body_8bit = env->body_8bit;
	msg.needs_smtputf8 = scheduler_envelope_utf8(env);
	/* DSN parameters: read by smtp_conn_send() only. */
	msg.ret = env->ret == ENVELOPE_RET_FULL ? SMTP_PROTO_RET_FULL :
	    env->ret == ENVELOPE_RET_HDRS ? SMTP_PROTO_RET_HDRS :
	    SMTP_PROTO_RET_NONE;
	msg.envid = env->envid;
	if (env->n_rcpt_dsn > 0) {
		const struct envelope_rcpt_dsn *d;

		notify = xcalloc(env->n_rcpts, sizeof(*notify));
		orcpts = xcalloc(env->n_rcpts, sizeof(*orcpts));
		for (i = 0; i < env->n_rcpts; i++)
			if ((d = envelope_rcpt_dsn(env, i)) != NULL) {
				notify[i] = d->notify;
				orcpts[i] = d->orcpt;
			}
		msg.notify = notify;
		msg.orcpts = orcpts;
	}
	cc->idle = 0;
	evtimer_del(cc->idle_timer);
	if (cc->sent > 0)
		metrics_count_conn_reused(cc->relay->sh->name);
	rc = smtp_conn_send(cc->conn, &msg);
	free(notify);
	free(orcpts);
	if (rc != 0) {
		close(fd);
		log_err("msgid=%s: cannot be sent (%zu recipients); left in "
		    "the spool", m->id, msg.n_rcpts);
		scheduler_conn_release(cc);
		scheduler_drop(s, m);
		cc->idle = 1;
		return 0;
	}
	return 1;
}

static void
scheduler_conn_close(struct sched_conn *cc)
{
	struct sched_relay *r = cc->relay;

	if (cc->conn == NULL)
		return;
	smtp_conn_close(cc->conn);
	cc->conn = NULL;
	cc->idle = 0;
	evtimer_del(cc->idle_timer);
	r->n_conns--;
}

static void
scheduler_on_ready(struct smtp_conn *c, void *arg)
{
	struct sched_conn *cc = arg;
	struct sched_relay *r = cc->relay;
	struct timeval idle = { r->sh->idle_timeout, 0 };

	(void)c;
	if (!cc->ready_once) {
		cc->ready_once = 1;
		if (r->down)
			log_info("relay %s: reachable again", r->sh->name);
		r->down = 0;
		r->down_count = 0;
		r->down_until = 0;
	}
	if (cc->retire) {
		/* messages_per_connection reached: QUIT, a new one follows */
		scheduler_conn_close(cc);
		scheduler_request_run(r->sched);
		return;
	}
	cc->idle = 1;
	if (cc->cur != NULL) {
		/* Opened for this message. */
		struct sched_msg *m = cc->cur;

		cc->cur = NULL;
		if (scheduler_send(cc, m))
			return;
	}
	evtimer_add(cc->idle_timer, &idle);
	scheduler_request_run(r->sched);
}

static void
scheduler_on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct sched_conn *cc = arg;

	(void)fd;
	(void)what;
	if (cc->conn != NULL && cc->idle) {
		log_debug("relay %s: closing idle connection",
		    cc->relay->sh->name);
		scheduler_conn_close(cc);
	}
}

static void	scheduler_relay_fails(struct sched_relay *,
		    const struct retry_verdict *,
		    const struct smtp_conn_result *);

static void
scheduler_on_message_done(struct smtp_conn *c,
    const struct smtp_conn_result *res, void *arg)
{
	struct sched_conn *cc = arg;
	struct sched_relay *r = cc->relay;
	struct scheduler *s = r->sched;
	struct sched_msg *m = cc->cur;
	struct envelope *env = cc->cur_env;
	struct retry_verdict v;
	enum retry_fate *fate;
	size_t i, n, delivered = 0, failed = 0;

	(void)c;
	if (m == NULL || env == NULL)
		log_fatalx("relay %s: message result without a message",
		    r->sh->name);
	n = env->n_rcpts;
	fate = xcalloc(n, sizeof(*fate));
	v = retry_attempt(&res->fact, res->n_rcpts == n ? res->rcpt : NULL, n,
	    fate);
	for (i = 0; i < n; i++) {
		delivered += fate[i] == RETRY_DELIVERED;
		failed += fate[i] == RETRY_BOUNCE;
	}
	scheduler_log_attempt(cc, m->id, delivered == n ? "sent" :
	    delivered > 0 ? "partial" : failed == n ? "failed" : "deferred",
	    res);
	if (delivered == n)
		r->n_sent++;
	else {
		r->n_deferred += failed < n;
		r->n_failed += failed > 0;
		scheduler_relay_error(r, res->reply);
	}
	cc->cur = NULL;
	cc->cur_env = NULL;
	scheduler_settle(s, m, env, fate,
	    res->n_rcpts == n ? res->rcpt_reply : NULL, res->reply,
	    r->sh->host);
	free(fate);
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
 * The relay failed with verdict v (down or resting): no connection until
 * retry_relay_next().  Refused credentials will not fix themselves: say
 * so loudly; the policy makes the rest long, so the provider does not
 * lock the account.
 */
static void
scheduler_relay_fails(struct sched_relay *r, const struct retry_verdict *v,
    const struct smtp_conn_result *res)
{
	struct scheduler *s = r->sched;
	int64_t now = scheduler_now();

	r->down = 1;
	r->down_count++;
	r->down_until = retry_relay_next(&s->policy, v->relay, now,
	    r->down_count, scheduler_random(s));
	scheduler_relay_error(r, res->reply);
	if (v->relay == RETRY_RELAY_REST)
		log_err("relay %s: AUTHENTICATION FAILED: %s -- fix the "
		    "credential settings of [smarthost %s] (user, auth, "
		    "password or token source); its mail stays queued, next "
		    "try in %llds", r->sh->name, res->reply, r->sh->name,
		    (long long)(r->down_until - now));
	log_warn("relay %s: %s (%s): %s (next probe in %llds)", r->sh->name,
	    v->relay == RETRY_RELAY_REST ? "resting" : "down", v->rule,
	    res->reply, (long long)(r->down_until - now));
}

/*
 * The OAuth grant of the relay is refused (authsrc held it): the message
 * was not tried; it goes back to the head of the relay's due queue, where
 * scheduler_run() leaves held relays alone until authsrc says otherwise.
 * No attempt is counted, nothing expires or bounces meanwhile.
 */
static void
scheduler_on_held(struct sched_conn *cc, const struct smtp_conn_result *res)
{
	struct sched_relay *r = cc->relay;
	struct sched_msg *m = cc->cur;

	scheduler_relay_error(r, res->reply);
	scheduler_conn_release(cc);
	if (m != NULL)
		scheduler_set_due(r->sched, m, 1);
	cc->ready_once = 0;
	scheduler_request_run(r->sched);
}

/* authsrc: a relay was held or released. */
static void
scheduler_on_auth_change(void *arg)
{
	scheduler_request_run(arg);
}

static void
scheduler_on_closed(struct smtp_conn *c, const struct smtp_conn_result *res,
    void *arg)
{
	struct sched_conn *cc = arg;
	struct sched_relay *r = cc->relay;
	struct scheduler *s = r->sched;
	struct sched_msg *m = cc->cur;
	const struct config_smarthost *fb;
	struct sq_err err = { 0 };
	struct retry_verdict v;

	(void)c;
	cc->conn = NULL;
	cc->idle = 0;
	evtimer_del(cc->idle_timer);
	r->n_conns--;
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
	if (m != NULL) {
		if (cc->cur_env == NULL)
			spool_load_envelope(s->spool, m->id, &cc->cur_env,
			    &err);
		if (cc->cur_env != NULL)
			cc->attempt = cc->cur_env->attempts + 1;
		fb = r->sh->fallback_index >= 0 ?
		    &s->cfg->smarthosts[r->sh->fallback_index] : NULL;
		if (v.relay != RETRY_RELAY_OK && fb != NULL &&
		    !s->relays[r->sh->fallback_index].down &&
		    m->relay == r->index) {
			/* The fallback takes it right away. */
			scheduler_log_attempt(cc, m->id, "deferred", res);
			log_info("msgid=%s: relay %s unreachable, handing it to "
			    "fallback %s", m->id, r->sh->name, fb->name);
			scheduler_conn_release(cc);
			scheduler_set_due(s, m, 1);
		} else if (cc->cur_env != NULL) {
			enum retry_fate *fate;
			size_t n = cc->cur_env->n_rcpts;

			scheduler_log_attempt(cc, m->id, "deferred", res);
			r->n_deferred++;
			/* Recipients refused for good at RCPT before the
			 * connection failed bounce; the others wait. */
			fate = xcalloc(n, sizeof(*fate));
			(void)retry_attempt(&res->fact, res->n_rcpts == n ?
			    res->rcpt : NULL, n, fate);
			scheduler_settle(s, m, cc->cur_env, fate,
			    res->n_rcpts == n ? res->rcpt_reply : NULL,
			    res->reply, r->sh->host);
			free(fate);
			cc->cur_env = NULL;
			cc->cur = NULL;
		} else {
			scheduler_conn_release(cc);
			scheduler_drop(s, m);
		}
	} else if (cc->ready_once)
		log_debug("relay %s: connection closed: %s", r->sh->name,
		    res->reply);
	cc->cur = NULL;
	cc->ready_once = 0;
	scheduler_request_run(s);
}

/* Open a connection of relay r carrying message m first. */
static void
scheduler_open(struct sched_relay *r, struct sched_msg *m)
{
	struct scheduler *s = r->sched;
	struct smtp_conn_params params;
	struct sched_conn *cc = NULL;
	unsigned i;
	static const struct smtp_conn_callbacks cb = {
		.on_ready = scheduler_on_ready,
		.on_message_done = scheduler_on_message_done,
		.on_closed = scheduler_on_closed,
	};

	for (i = 0; i < r->sh->max_connections; i++)
		if (r->conns[i].conn == NULL) {
			cc = &r->conns[i];
			break;
		}
	if (cc == NULL)
		log_fatalx("relay %s: no free connection slot", r->sh->name);
	memset(&params, 0, sizeof(params));
	params.base = s->base;
	params.dns = s->dns;
	params.smarthost = r->sh;
	params.tls = r->tls;
	params.ehlo_name = s->ehlo_name;
	params.auth = s->auth;
	cc->idle = 0;
	cc->ready_once = 0;
	cc->retire = 0;
	cc->sent = 0;
	cc->attempt = 0;
	/* Opened for m: if it cannot be made, that is m's attempt. */
	scheduler_unlink(s, m);
	m->state = SCHED_ACTIVE;
	cc->cur = m;
	r->n_conns++;
	metrics_count_conn_opened(r->sh->name);
	cc->conn = smtp_conn_open(&params, &cb, cc);
}

static struct sched_conn *
scheduler_idle_conn(struct sched_relay *r)
{
	unsigned i;

	for (i = 0; i < r->sh->max_connections; i++)
		if (r->conns[i].conn != NULL && r->conns[i].idle &&
		    !r->conns[i].retire)
			return &r->conns[i];
	return NULL;
}

/* Give relay r's connections work from queue q (r itself, or a down
 * relay whose fallback r is). */
static void
scheduler_serve(struct sched_relay *r, struct sched_relay *q)
{
	struct sched_conn *cc;
	struct sched_msg *m;

	while ((m = TAILQ_FIRST(&q->due)) != NULL) {
		cc = scheduler_idle_conn(r);
		if (cc == NULL && r->n_conns >= r->sh->max_connections)
			return;
		if (!scheduler_rate_take(r))
			return;
		/* A message send() drops has left q->due, so the next
		 * TAILQ_FIRST is another one; the analyzer does not follow
		 * TAILQ_REMOVE through tqe_prev and reports a use after
		 * free here. */
		if (cc != NULL)
			/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
			scheduler_send(cc, m);
		else
			/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
			scheduler_open(r, m);
	}
}

/* Arm the one timer for the earliest thing that will become due. */
static void
scheduler_arm_timer(struct scheduler *s, int64_t now)
{
	struct timeval tv;
	int64_t wake_ms = INT64_MAX, w;
	size_t i;

	if (s->heap_len > 0)
		wake_ms = (s->heap[0]->next_attempt - now) * 1000;
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		if (r->n_due == 0)
			continue;
		if (r->down && r->n_conns == 0) {
			w = (r->down_until - now) * 1000;
			if (w < wake_ms)
				wake_ms = w;
		}
		w = scheduler_rate_wait_ms(r);
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
scheduler_expire_due(struct sched_relay *r, int64_t now)
{
	struct scheduler *s = r->sched;
	struct sched_msg *m, *next;
	struct envelope *env = NULL;
	struct sq_err err = { 0 };
	enum retry_fate *fate;
	char reason[sizeof(r->last_error) + 64];

	for (m = TAILQ_FIRST(&r->due); m != NULL; m = next) {
		next = TAILQ_NEXT(m, due_entry);
		if (!retry_expired(&s->policy, m->created, now))
			continue;
		if (spool_load_envelope(s->spool, m->id, &env, &err) != 0) {
			scheduler_drop(s, m);
			continue;
		}
		snprintf(reason, sizeof(reason), "smarthost %s unreachable: %s",
		    r->sh->name, r->last_error);
		/* Deferred past max_age: settle() bounces them (4.4.7). */
		fate = xcalloc(env->n_rcpts, sizeof(*fate));
		for (size_t i = 0; i < env->n_rcpts; i++)
			fate[i] = RETRY_DEFER;
		scheduler_settle(s, m, env, fate, NULL, reason, r->sh->host);
		free(fate);
	}
}

static void
scheduler_run(struct scheduler *s)
{
	int64_t now = scheduler_now();
	struct sched_msg *m;
	size_t i, j;

	if (s->shutting_down)
		return;
	while (s->heap_len > 0 && s->heap[0]->next_attempt <= now) {
		m = s->heap[0];
		scheduler_set_due(s, m, 0);
	}
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		/* OAuth grant refused: its mail waits, untouched. */
		if (authsrc_held(s->auth, i, NULL))
			continue;
		if (r->down) {
			if (r->n_conns > 0 || now < r->down_until)
				continue;
			/* Mail that waited too long for it expires. */
			scheduler_expire_due(r, now);
			/* One probe connection, not one per message.  (What
			 * expire_due() dropped has left r->due: the
			 * analyzer's use-after-free here is a false positive,
			 * as in scheduler_serve().) */
			if ((m = TAILQ_FIRST(&r->due)) != NULL &&
			    scheduler_rate_take(r))
				/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
				scheduler_open(r, m);
			continue;
		}
		scheduler_serve(r, r);
		for (j = 0; j < s->n_relays; j++)
			if (j != i && s->relays[j].down &&
			    s->relays[j].sh->fallback_index == (int)i)
				scheduler_serve(r, &s->relays[j]);
	}
	scheduler_arm_timer(s, now);
}

/* After a loop turn that removed delivered messages: one directory sync
 * for all of them (a power cut before it delivers them again, at most). */
static void
scheduler_on_rm_sync(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	struct sq_err err;

	(void)fd;
	(void)what;
	if (spool_sync_removals(s->spool, &err) < 0)
		log_err("%s (delivered messages may be sent again after a "
		    "crash)", err.msg);
}

/* spool_recover_lazy's callback: remember the id for indexing. */
static void
scheduler_collect_id(const char *id, void *arg)
{
	struct scheduler *s = arg;

	if (s->rec_n == s->rec_cap) {
		s->rec_cap = s->rec_cap ? 2 * s->rec_cap : 1024;
		s->rec_ids = xreallocarray(s->rec_ids, s->rec_cap,
		    sizeof(*s->rec_ids));
	}
	snprintf(s->rec_ids[s->rec_n++], ENVELOPE_ID_MAX, "%s", id);
}

/* Index the next SCHEDULER_INDEX_CHUNK recovered ids, let the queue run
 * on what is known, and come back on the next loop turn for the rest. */
static void
scheduler_index_chunk(struct scheduler *s)
{
	struct timeval now = { 0, 0 };
	size_t end = s->rec_pos + SCHEDULER_INDEX_CHUNK;

	if (end > s->rec_n)
		end = s->rec_n;
	while (s->rec_pos < end)
		scheduler_add_id(s->rec_ids[s->rec_pos++], s);
	scheduler_request_run(s);
	if (s->rec_pos < s->rec_n) {
		evtimer_add(s->index_ev, &now);
		return;
	}
	if (s->rec_ids != NULL)
		log_info("queue indexed: %zu message(s) queued", s->n_msgs);
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
	char buf[65536];
	ssize_t n;
	int fd, rc;

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

static void
scheduler_add_id(const char *id, void *arg)
{
	struct scheduler *s = arg;
	struct envelope *env = NULL, *part;
	struct sched_msg *m;
	struct sq_err err = { 0 };
	struct bounce_rcpt *rc;
	int *route, first = -1;
	size_t i, j, n_noroute = 0;
	int changed = 0;

	if (scheduler_find(s, id) != NULL)
		return;
	if (spool_load_envelope(s->spool, id, &env, &err) != 0) {
		if (err.code == SQ_EPARSE || err.code == SQ_ELIMIT)
			spool_quarantine_id(s->spool, id, err.msg);
		else if (err.code != -ENOENT && err.code != SQ_ENOTFOUND)
			log_err("msgid=%s: cannot read its envelope: %s (left "
			    "in the spool)", id, err.msg);
		return;
	}
	route = xcalloc(env->n_rcpts, sizeof(*route));
	for (i = 0; i < env->n_rcpts; i++) {
		route[i] = route_pick(s->cfg, env->sender, env->rcpts[i]);
		if (route[i] < 0)
			n_noroute++;
		else if (first < 0)
			first = route[i];
	}
	/* Recipients no smarthost takes fail for good. */
	if (n_noroute > 0) {
		rc = xcalloc(n_noroute, sizeof(*rc));
		for (i = 0, j = 0; i < env->n_rcpts; i++)
			if (route[i] < 0) {
				rc[j].addr = env->rcpts[i];
				rc[j].status = "5.4.4";
				rc[j].reply = "no smarthost is configured for "
				    "this sender/recipient (match_sender, "
				    "match_recipient)";
				j++;
			}
		if (scheduler_fail_rcpts(s, env, rc, n_noroute) != 0)
			first = -1;	/* keep everything; retried at scan */
		else
			changed = 1;
		free(rc);
		if (first < 0) {
			if (changed && spool_remove(s->spool, id, &err) != 0)
				log_err("msgid=%s: %s", id, err.msg);
			free(route);
			envelope_free(env);
			return;
		}
	}
	/* Other routes get their own copies, durable before the original
	 * is narrowed to the first route. */
	for (i = 0; i < env->n_rcpts; i++) {
		if (route[i] < 0 || route[i] == first)
			continue;
		int other = route[i];

		part = envelope_new();
		envelope_set_sender(part, env->sender);
		part->created = env->created;
		part->uid = env->uid;
		part->body_8bit = env->body_8bit;
		part->ret = env->ret;
		if (env->envid != NULL)
			envelope_set_envid(part, env->envid);
		for (j = i; j < env->n_rcpts; j++)
			if (route[j] == other) {
				const struct envelope_rcpt_dsn *d;

				envelope_add_rcpt(part, env->rcpts[j]);
				/* DSN parameters travel with their recipient. */
				if ((d = envelope_rcpt_dsn(env, j)) != NULL)
					envelope_set_rcpt_dsn(part,
					    part->n_rcpts - 1, d->notify,
					    d->orcpt);
				route[j] = -2;	/* moved */
			}
		if (scheduler_split_copy(s, id, part, &err) == 0) {
			log_info("msgid=%s: recipients for relay %s split off "
			    "as msgid=%s", id, s->cfg->smarthosts[other].name,
			    part->id);
			changed = 1;
			scheduler_add_id(part->id, s);
		} else {
			log_err("msgid=%s: cannot split it per route: %s "
			    "(trying again later)", id, err.msg);
			for (j = i; j < env->n_rcpts; j++)
				if (route[j] == -2)
					route[j] = other;
		}
		envelope_free(part);
	}
	if (changed) {
		int *keep = xcalloc(env->n_rcpts, sizeof(*keep));

		for (i = 0; i < env->n_rcpts; i++)
			keep[i] = route[i] == first;
		envelope_keep_rcpts(env, keep);
		free(keep);
		if (spool_update_envelope(s->spool, env, &err) != 0)
			log_err("msgid=%s: %s", id, err.msg);
	}
	free(route);
	m = xcalloc(1, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->relay = first;
	m->created = env->created;
	m->heap_pos = SIZE_MAX;
	m->state = SCHED_HELD;
	m->uid = env->uid;
	if (spool_message_size(s->spool, id, &m->size, &err) != 0)
		m->size = 0;	/* gone meanwhile: found missing at delivery */
	scheduler_hash_insert(s, m);
	quota_table_add(s->usage, m->uid, m->size);
	s->relays[first].n_routed++;
	if (!env->held)
		scheduler_set_waiting(s, m, env->next_attempt);
	log_debug("queued msgid=%s relay=%s queue_size=%zu", m->id,
	    s->cfg->smarthosts[first].name, s->n_msgs);
	envelope_free(env);
	scheduler_request_run(s);
}

/* The safety net: index what the watch may have missed.  A listing, not
 * a recovery: known ids cost a hash lookup, no envelope is read. */
static void
scheduler_rescan(struct scheduler *s)
{
	struct sq_err err = { 0 };

	if (spool_list(s->spool, scheduler_add_id, s, &err) < 0)
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

/* inotify: a committed message appears in queue/ as ID.env by rename. */
static void
scheduler_on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler *s = arg;
	char buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	char id[ENVELOPE_ID_MAX];
	ssize_t n;
	size_t len, off;
	int overflow = 0;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (off = 0; off < (size_t)n;
		    off += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			if (ev->mask & IN_Q_OVERFLOW) {
				overflow = 1;
				continue;
			}
			if (ev->len == 0)
				continue;
			len = strlen(ev->name);
			if (len < 5 || len - 4 >= sizeof(id) ||
			    strcmp(ev->name + len - 4, ".env") != 0)
				continue;
			memcpy(id, ev->name, len - 4);
			id[len - 4] = '\0';
			if (spool_id_valid(id))
				scheduler_add_id(id, s);
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_err("queue watch: read: %s", strerror(errno));
	if (overflow) {
		log_warn("queue watch overflowed: rescanning the queue");
		scheduler_rescan(s);
	}
}

/* ------------------------------------------------------------------ */
/* The control socket's operations. */

static struct sched_msg *
scheduler_lookup(struct scheduler *s, const char *id, struct sq_err *err)
{
	struct sched_msg *m = scheduler_find(s, id);

	if (m == NULL)
		sq_err_set(err, SQ_ENOTFOUND, "no queued message %s", id);
	return m;
}

/* The message id when no connection is working on it right now. */
static struct sched_msg *
scheduler_lookup_idle(struct scheduler *s, const char *id,
    struct sq_err *err)
{
	struct sched_msg *m = scheduler_lookup(s, id, err);

	if (m != NULL && m->state == SCHED_ACTIVE) {
		sq_err_set(err, -EBUSY, "message %s is being delivered right "
		    "now; try again in a moment", id);
		return NULL;
	}
	return m;
}

/* A held relay: why, and the fix (text); "held_reason" (JSON). */
static void
scheduler_status_held(struct scheduler *s, size_t i, int json,
    struct buf *out)
{
	char line[1024], why[600], *p;
	const char *reason;

	if (!authsrc_held(s->auth, i, &reason))
		return;
	scheduler_quote(why, sizeof(why), reason);
	for (p = why; *p != '\0'; p++)
		if (*p == '\\')
			*p = '/';
	if (json) {
		/* Inside the relay's object: reopen it. */
		if (out->len > 0 && out->data[out->len - 1] == '}')
			out->len--;
		snprintf(line, sizeof(line), ",\"held_reason\":\"%s\","
		    "\"fix\":\"sendqctl oauth init %s\"}", why,
		    s->relays[i].sh->name);
	} else
		snprintf(line, sizeof(line), "  HELD (OAuth): %s\n  fix: "
		    "sendqctl oauth init %s\n", why, s->relays[i].sh->name);
	buf_append_str(out, line);
}

/* The arrival of the oldest message not held: "oldest":EPOCH (0: none),
 * first in the JSON object; nothing in the text. */
static void
scheduler_status_oldest(const struct scheduler *s, int json, struct buf *out)
{
	char line[64];
	size_t depth;
	int64_t oldest;

	if (!json)
		return;
	scheduler_queue_stats(s, &depth, &oldest);
	out->len -= strlen("\"smarthosts\":[");
	snprintf(line, sizeof(line), "\"oldest\":%lld,\"smarthosts\":[",
	    (long long)oldest);
	buf_append_str(out, line);
}

static int
scheduler_op_status(void *arg, int json, struct buf *out,
    struct sq_err *err)
{
	struct scheduler *s = arg;
	char line[1024], when[64];
	size_t i;

	(void)err;
	if (json)
		buf_append_str(out, "{\"queued\":");
	snprintf(line, sizeof(line), json ? "%zu,\"smarthosts\":[" :
	    "queue: %zu message(s)\n", s->n_msgs);
	buf_append_str(out, line);
	scheduler_status_oldest(s, json, out);
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];
		char err_text[sizeof(r->last_error)], *p;

		when[0] = '\0';
		if (r->last_error_at > 0) {
			struct tm tm;
			time_t t = (time_t)r->last_error_at;

			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		/* last_error is printable and has no '"' (quote()); escape
		 * backslashes for JSON. */
		snprintf(err_text, sizeof(err_text), "%s", r->last_error);
		for (p = err_text; *p != '\0'; p++)
			if (*p == '\\')
				*p = '/';
		if (json)
			snprintf(line, sizeof(line), "%s{\"name\":\"%s\","
			    "\"host\":\"%s\",\"port\":%u,\"state\":\"%s\","
			    "\"connections\":%u,\"max_connections\":%u,"
			    "\"queued\":%zu,\"due\":%zu,\"sent\":%lu,"
			    "\"deferred\":%lu,\"failed\":%lu,"
			    "\"last_error\":\"%s\",\"last_error_at\":\"%s\"}",
			    i > 0 ? "," : "", r->sh->name, r->sh->host,
			    r->sh->port, authsrc_held(s->auth, i, NULL) ? "held" :
			    r->down ? "down" : "up", r->n_conns,
			    r->sh->max_connections, r->n_routed, r->n_due,
			    r->n_sent, r->n_deferred, r->n_failed, err_text,
			    when);
		else
			snprintf(line, sizeof(line), "smarthost %s (%s:%u): "
			    "%s, connections %u/%u, queued %zu (due %zu), "
			    "sent %lu, deferred %lu, failed %lu%s%s%s%s\n",
			    r->sh->name, r->sh->host, r->sh->port,
			    authsrc_held(s->auth, i, NULL) ? "HELD" :
			    r->down ? "DOWN" : "up", r->n_conns,
			    r->sh->max_connections, r->n_routed, r->n_due,
			    r->n_sent, r->n_deferred, r->n_failed,
			    r->last_error[0] ? "\n  last error: " : "",
			    r->last_error, when[0] ? " at " : "", when);
		buf_append_str(out, line);
		scheduler_status_held(s, i, json, out);
	}
	if (json)
		buf_append_str(out, "]}\n");
	return 0;
}

static int
scheduler_op_flush(void *arg, struct sq_err *err)
{
	struct scheduler *s = arg;
	size_t i;

	(void)err;
	while (s->heap_len > 0)
		scheduler_set_due(s, s->heap[0], 0);
	for (i = 0; i < s->n_relays; i++)
		s->relays[i].down_until = 0;
	log_info("flush requested: every deferred message is due now");
	scheduler_request_run(s);
	return 0;
}

static int
scheduler_op_retry(void *arg, const char *id, struct sq_err *err)
{
	struct scheduler *s = arg;
	struct sched_msg *m;

	if ((m = scheduler_lookup(s, id, err)) == NULL)
		return err->code;
	if (m->state == SCHED_WAITING)
		scheduler_set_due(s, m, 1);
	else if (m->state == SCHED_HELD)
		return sq_err_set(err, SQ_EPARSE, "message %s is held "
		    "(release it first)", id);
	scheduler_request_run(s);
	return 0;
}

static int
scheduler_set_held(struct scheduler *s, const char *id, int held,
    struct sq_err *err)
{
	struct sched_msg *m;
	struct envelope *env = NULL;
	int rc;

	if ((m = scheduler_lookup_idle(s, id, err)) == NULL)
		return err->code;
	if ((rc = spool_load_envelope(s->spool, id, &env, err)) != 0)
		return rc;
	env->held = held;
	rc = spool_update_envelope(s->spool, env, err);
	if (rc == 0) {
		if (held) {
			scheduler_unlink(s, m);
			m->state = SCHED_HELD;
		} else if (m->state == SCHED_HELD)
			scheduler_set_due(s, m, 0);
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
	struct scheduler *s = arg;
	struct sched_msg *m;
	int rc;

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
	struct scheduler *s = arg;
	struct sched_msg *m;
	struct envelope *env = NULL;
	enum retry_fate *fate;
	size_t i;
	int rc;

	if ((m = scheduler_lookup_idle(s, id, err)) == NULL)
		return err->code;
	if ((rc = spool_load_envelope(s->spool, id, &env, err)) != 0)
		return rc;
	fate = xcalloc(env->n_rcpts, sizeof(*fate));
	for (i = 0; i < env->n_rcpts; i++)
		fate[i] = RETRY_BOUNCE;
	log_warn("msgid=%s bounced by the administrator", id);
	scheduler_settle(s, m, env, fate, NULL,
	    "554 5.0.0 returned to the sender by the mail administrator",
	    NULL);
	free(fate);
	scheduler_request_run(s);
	return 0;
}

static int
scheduler_op_is_active(void *arg, const char *id)
{
	struct sched_msg *m = scheduler_find(arg, id);

	return m != NULL && m->state == SCHED_ACTIVE;
}

static const char *
scheduler_op_relay_of(void *arg, const char *id)
{
	struct scheduler *s = arg;
	struct sched_msg *m = scheduler_find(s, id);

	return m != NULL ? s->relays[m->relay].sh->name : NULL;
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

/* quota.h: a message was just committed; index it now rather than when
 * the watch on queue/ reports it (known ids are skipped there). */
static void
scheduler_op_queued(void *arg, const char *id)
{
	struct scheduler *s = arg;

	if (!s->shutting_down)
		scheduler_add_id(id, s);
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

int
scheduler_new(struct event_base *base, struct evdns_base *dns,
    const struct config *cfg, const char *ehlo_name, struct spool *sp,
    struct scheduler **out, struct sq_err *err)
{
	struct scheduler *s;
	size_t i;
	unsigned j;
	int rc;

	if (cfg->n_smarthosts == 0)
		return sq_err_set(err, SQ_ECONFIG, "%s: no smarthost configured",
		    cfg->path);
	s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->dns = dns;
	s->cfg = cfg;
	s->ehlo_name = xstrdup(ehlo_name);
	s->spool = sp;
	s->watch_fd = -1;
	s->policy.min = cfg->retry_min;
	s->policy.max = cfg->retry_max > cfg->retry_min ? cfg->retry_max :
	    cfg->retry_min;
	s->policy.max_age = cfg->max_age;
	if (getrandom(&s->rng, sizeof(s->rng), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(s->rng) || s->rng == 0)
		s->rng = (uint64_t)time(NULL) * 2654435761u + 1;
	s->n_buckets = 1024;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	s->buckets = xcalloc(s->n_buckets, sizeof(*s->buckets));
	s->usage = quota_table_new();
	s->n_relays = cfg->n_smarthosts;
	s->relays = xcalloc(s->n_relays, sizeof(*s->relays));
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		r->sched = s;
		r->sh = &cfg->smarthosts[i];
		r->index = (int)i;
		TAILQ_INIT(&r->due);
		r->tokens = r->sh->rate_count;
		r->tokens_at = scheduler_now_ms();
		r->conns = xcalloc(r->sh->max_connections > 0 ?
		    r->sh->max_connections : 1, sizeof(*r->conns));
		for (j = 0; j < r->sh->max_connections; j++) {
			r->conns[j].relay = r;
			r->conns[j].idle_timer = evtimer_new(base,
			    scheduler_on_idle_timeout, &r->conns[j]);
		}
		if (r->sh->tls == CONFIG_TLS_NONE)
			continue;
		if ((rc = tls_ctx_new(r->sh, &r->tls, err)) != 0) {
			scheduler_free(s);
			return rc;
		}
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
	int n;

	/* AUTH secrets and OAuth state (STATE_DIR/oauth/) first. */
	if ((n = authsrc_new(s->base, s->cfg, scheduler_on_auth_change, s,
	    &s->auth, err)) != 0)
		return n;
	/* Watch first, then scan: a message committed in between is seen
	 * twice at most, never missed. */
	s->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (s->watch_fd < 0)
		return sq_err_set(err, -errno, "inotify_init1: %s",
		    strerror(errno));
	if (inotify_add_watch(s->watch_fd, spool_queue_dir(s->spool),
	    IN_MOVED_TO) < 0)
		return sq_err_set(err, -errno, "watch %s: %s",
		    spool_queue_dir(s->spool), strerror(errno));
	s->watch_ev = event_new(s->base, s->watch_fd, EV_READ | EV_PERSIST,
	    scheduler_on_watch, s);
	event_add(s->watch_ev, NULL);
	if ((n = spool_recover_lazy(s->spool, scheduler_collect_id, s,
	    err)) < 0)
		return n;
	log_info("queue recovered: %d message(s) found", n);
	event_add(s->rescan_timer, &rescan);
	scheduler_index_chunk(s);
	return 0;
}

struct scheduler_done {
	void	(*fn)(void *);
	void	*arg;
};

static void
scheduler_on_shutdown_done(evutil_socket_t fd, short what, void *arg)
{
	struct scheduler_done *d = arg;

	(void)fd;
	(void)what;
	d->fn(d->arg);
	free(d);
}

void
scheduler_shutdown(struct scheduler *s, void (*done)(void *), void *arg)
{
	struct scheduler_done *d;
	struct timeval now = { 0, 0 };
	size_t i;
	unsigned j;

	s->shutting_down = 1;
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		for (j = 0; j < r->sh->max_connections; j++) {
			struct sched_conn *cc = &r->conns[j];

			if (cc->conn == NULL)
				continue;
			if (cc->cur != NULL)
				log_info("msgid=%s: delivery interrupted by "
				    "shutdown; it stays queued", cc->cur->id);
			smtp_conn_abort(cc->conn);
			cc->conn = NULL;
			scheduler_conn_release(cc);
			evtimer_del(cc->idle_timer);
		}
		r->n_conns = 0;
	}
	event_del(s->timer);
	event_del(s->rescan_timer);
	if (s->watch_ev != NULL)
		event_del(s->watch_ev);
	d = xmalloc(sizeof(*d));
	d->fn = done;
	d->arg = arg;
	event_base_once(s->base, -1, EV_TIMEOUT, scheduler_on_shutdown_done, d,
	    &now);
}

void
scheduler_free(struct scheduler *s)
{
	struct sched_msg *m, *next;
	size_t i;
	unsigned j;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		for (j = 0; j < r->sh->max_connections; j++) {
			if (r->conns[j].conn != NULL)
				smtp_conn_abort(r->conns[j].conn);
			envelope_free(r->conns[j].cur_env);
			if (r->conns[j].idle_timer != NULL)
				event_free(r->conns[j].idle_timer);
		}
		free(r->conns);
		tls_ctx_free(r->tls);
	}
	free(s->relays);
	for (i = 0; i < s->n_old_tls; i++)
		tls_ctx_free(s->old_tls[i]);
	free(s->old_tls);
	for (i = 0; i < s->n_buckets; i++)
		for (m = s->buckets[i]; m != NULL; m = next) {
			next = m->hash_next;
			free(m);
		}
	free(s->buckets);
	quota_table_free(s->usage);
	free(s->heap);
	if (s->run_ev != NULL)
		event_free(s->run_ev);
	if (s->index_ev != NULL)
		event_free(s->index_ev);
	free(s->rec_ids);
	if (s->rm_sync_ev != NULL) {
		scheduler_on_rm_sync(-1, 0, s);
		event_free(s->rm_sync_ev);
	}
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->rescan_timer != NULL)
		event_free(s->rescan_timer);
	if (s->watch_ev != NULL)
		event_free(s->watch_ev);
	if (s->watch_fd >= 0)
		close(s->watch_fd);
	authsrc_free(s->auth);
	free(s->ehlo_name);
	free(s);
}

void
scheduler_summary(const struct scheduler *s, char *buf, size_t len)
{
	size_t i, n;
	int w;

	w = snprintf(buf, len, "queued %zu", s->n_msgs);
	for (i = 0; i < s->n_relays && w >= 0 && (size_t)w < len; i++) {
		n = (size_t)w;
		w = snprintf(buf + n, len - n, "%s%s %s", i == 0 ?
		    "; relays: " : ", ", s->relays[i].sh->name,
		    authsrc_held(s->auth, i, NULL) ? "HELD" :
		    s->relays[i].down ? "DOWN" : "up");
		if (w >= 0)
			w += (int)n;
	}
}

void
scheduler_queue_stats(const struct scheduler *s, size_t *depth,
    int64_t *oldest)
{
	const struct sched_msg *m;
	size_t i;

	*depth = s->n_msgs;
	*oldest = 0;
	for (i = 0; i < s->n_buckets; i++)
		for (m = s->buckets[i]; m != NULL; m = m->hash_next)
			if (m->state != SCHED_HELD && m->created > 0 &&
			    (*oldest == 0 || m->created < *oldest))
				*oldest = m->created;
}

void
scheduler_metrics_gauges(void *arg, struct metrics_gauges *g)
{
	const struct scheduler *s = arg;
	size_t i, depth;

	scheduler_queue_stats(s, &depth, &g->oldest);
	g->queue_messages = depth;
	for (i = 0; i < s->n_relays && i < g->max_relays; i++) {
		g->relays[i].name = s->relays[i].sh->name;
		g->relays[i].up = !s->relays[i].down &&
		    !authsrc_held(s->auth, i, NULL);
		g->relays[i].oauth = (enum metrics_oauth)authsrc_oauth_state(
		    s->auth, i, &g->relays[i].oauth_expires);
	}
	g->n_relays = i;
}

/* ------------------------------------------------------------------ */
/* Reload. */

static int
scheduler_reconfigure_check(const struct scheduler *s,
    const struct config *cfg, struct sq_err *err)
{
	size_t i;

	if (cfg->n_smarthosts != s->n_relays)
		return sq_err_set(err, SQ_ECONFIG, "%s: the number of "
		    "smarthosts changed (%zu, was %zu): restart sendqd to "
		    "apply it", cfg->path, cfg->n_smarthosts, s->n_relays);
	for (i = 0; i < s->n_relays; i++) {
		const struct config_smarthost *o = s->relays[i].sh;
		const struct config_smarthost *n = &cfg->smarthosts[i];

		if (strcmp(o->name, n->name) != 0)
			return sq_err_set(err, SQ_ECONFIG, "%s: smarthost %zu "
			    "is [smarthost %s], was [smarthost %s]: restart "
			    "sendqd to apply it", cfg->path, i + 1, n->name,
			    o->name);
		if (o->max_connections != n->max_connections)
			return sq_err_set(err, SQ_ECONFIG, "%s: [smarthost "
			    "%s] max_connections changed: restart sendqd to "
			    "apply it", cfg->path, n->name);
	}
	return 0;
}

/* Index every queued message that is not on a connection again, under
 * the current s->cfg (route, split, bounce what has no route). */
static void
scheduler_reroute(struct scheduler *s)
{
	struct sched_msg *m, *next;
	char (*ids)[ENVELOPE_ID_MAX];
	size_t i, n = 0;

	ids = xreallocarray(NULL, s->n_msgs + 1, sizeof(*ids));
	for (i = 0; i < s->n_buckets; i++)
		for (m = s->buckets[i]; m != NULL; m = next) {
			next = m->hash_next;
			if (m->state == SCHED_ACTIVE)
				continue;
			snprintf(ids[n++], sizeof(ids[0]), "%s", m->id);
			scheduler_drop(s, m);
		}
	for (i = 0; i < n; i++)
		scheduler_add_id(ids[i], s);
	free(ids);
}

int
scheduler_reconfigure(struct scheduler *s, const struct config *cfg,
    struct sq_err *err)
{
	struct tls_ctx **tls;
	size_t i;
	unsigned j;
	int rc;

	if ((rc = scheduler_reconfigure_check(s, cfg, err)) != 0)
		return rc;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	tls = xcalloc(s->n_relays, sizeof(*tls));
	for (i = 0; i < s->n_relays; i++) {
		if (cfg->smarthosts[i].tls == CONFIG_TLS_NONE)
			continue;
		if ((rc = tls_ctx_new(&cfg->smarthosts[i], &tls[i],
		    err)) != 0) {
			while (i-- > 0)
				tls_ctx_free(tls[i]);
			free(tls);
			return rc;
		}
	}
	/* Committed from here on: nothing below fails. */
	s->cfg = cfg;
	authsrc_reconfigure(s->auth, cfg);
	s->policy.min = cfg->retry_min;
	s->policy.max = cfg->retry_max > cfg->retry_min ? cfg->retry_max :
	    cfg->retry_min;
	s->policy.max_age = cfg->max_age;
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		/* A connection in flight still uses the old context. */
		if (r->tls != NULL) {
			/* NOLINTBEGIN(bugprone-sizeof-expression): ptrs */
			s->old_tls = xreallocarray(s->old_tls,
			    s->n_old_tls + 1, sizeof(*s->old_tls));
			/* NOLINTEND(bugprone-sizeof-expression) */
			s->old_tls[s->n_old_tls++] = r->tls;
		}
		r->tls = tls[i];
		r->sh = &cfg->smarthosts[i];
		r->down = 0;
		r->down_until = 0;
		r->down_count = 0;
		r->tokens = r->sh->rate_count;
		r->tokens_at = scheduler_now_ms();
		for (j = 0; j < r->sh->max_connections; j++) {
			struct sched_conn *cc = &r->conns[j];

			if (cc->conn == NULL)
				continue;
			if (!cc->ready_once) {
				/* Still opening for its message (retire now
				 * would drop it): retire after that one. */
				cc->sent = r->sh->messages_per_connection;
				continue;
			}
			cc->retire = 1;
			if (cc->idle && cc->cur == NULL)
				scheduler_conn_close(cc);
		}
	}
	free(tls);
	scheduler_reroute(s);
	log_info("reconfigured: %zu message(s) queued, routed again",
	    s->n_msgs);
	scheduler_request_run(s);
	return 0;
}
