/*
 * scheduler.c - the queue runner.
 *
 * The queue index is a list of (queue id, next attempt) records; envelopes
 * and bodies are read from the spool only when a message is about to be
 * sent, so memory per queued message is small and constant.  New messages
 * are found three ways: the recovery scan at start, an inotify watch on
 * queue/ (a committed message appears there by rename, IN_MOVED_TO on its
 * .env), and a periodic rescan as a safety net (and after an inotify
 * overflow).
 *
 * Each smarthost is a relay with at most one connection.  Work is started
 * from one place, scheduler_run(), which is never called from inside a
 * connection callback directly: callbacks ask for a run with
 * scheduler_request_run(), which activates an event, so no callback
 * re-enters the connection that is calling it.
 *
 * What happens to each recipient after an attempt:
 *   accepted (and the message got its final 250) -> done
 *   temporary failure (4xx, or the connection)   -> retried after
 *                                                   [queue] retry_min
 *   permanent failure (5xx)                      -> held in failed/ with
 *                                                   the reason
 * The message leaves queue/ when no recipient is left to retry.  Bounces
 * to the sender come with the queue engine; until then failed/ keeps what
 * could not be delivered: nothing is ever dropped.  Refused credentials
 * rest the relay for SCHEDULER_AUTH_FAIL_SECONDS with a loud log line.
 */
#include <sys/inotify.h>
#include <sys/queue.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "log.h"
#include "scheduler.h"
#include "smtp_conn.h"
#include "tls.h"

#define SCHEDULER_RESCAN_SECONDS	300	/* safety-net queue scan */
#define SCHEDULER_IDLE_SECONDS		5	/* keep an idle connection */
#define SCHEDULER_AUTH_FAIL_SECONDS	900	/* rest after refused AUTH */

struct sched_msg {
	TAILQ_ENTRY(sched_msg)	 entry;
	char			 id[ENVELOPE_ID_MAX];
	int64_t			 next_attempt;	/* unix time; 0 = now */
	int			 in_flight;
};
TAILQ_HEAD(sched_msg_list, sched_msg);

struct sched_relay {
	struct scheduler		*sched;
	const struct config_smarthost	*sh;
	struct tls_ctx			*tls;
	struct smtp_conn		*conn;
	int				 conn_idle;	/* ready, no message */
	int64_t				 retry_at;	/* no connect before */
	struct event			*idle_timer;
	/* The message this connection is working on (or was opened for). */
	struct sched_msg		*cur;
	struct envelope			*cur_env;
	unsigned			 attempt;
};

struct scheduler {
	struct event_base	*base;
	struct evdns_base	*dns;
	const struct config	*cfg;
	char			*ehlo_name;
	struct spool		*spool;

	struct sched_msg_list	 queue;
	size_t			 n_queued;

	struct sched_relay	*relays;
	size_t			 n_relays;

	struct event		*run_ev;	/* deferred scheduler_run */
	struct event		*retry_timer;
	struct event		*rescan_timer;
	struct event		*watch_ev;
	int			 watch_fd;
	int			 shutting_down;
};

static void	scheduler_run(struct scheduler *s);

static int64_t
scheduler_now(void)
{
	return (int64_t)time(NULL);
}

static void
scheduler_request_run(struct scheduler *s)
{
	if (!s->shutting_down)
		event_active(s->run_ev, EV_TIMEOUT, 0);
}

static struct sched_msg *
scheduler_find(struct scheduler *s, const char *id)
{
	struct sched_msg *m;

	TAILQ_FOREACH(m, &s->queue, entry)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* Add a queue id to the index unless it is already there. */
static void
scheduler_add_id(const char *id, void *arg)
{
	struct scheduler *s = arg;
	struct sched_msg *m;

	if (scheduler_find(s, id) != NULL)
		return;
	m = xcalloc(1, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->next_attempt = 0;
	TAILQ_INSERT_TAIL(&s->queue, m, entry);
	s->n_queued++;
	log_debug("queued msgid=%s queue_size=%zu", m->id, s->n_queued);
}

static void
scheduler_drop(struct scheduler *s, struct sched_msg *m)
{
	TAILQ_REMOVE(&s->queue, m, entry);
	s->n_queued--;
	free(m);
}

static struct sched_msg *
scheduler_next_due(struct scheduler *s, int64_t now)
{
	struct sched_msg *m;

	TAILQ_FOREACH(m, &s->queue, entry)
		if (!m->in_flight && m->next_attempt <= now)
			return m;
	return NULL;
}

static void
scheduler_log_attempt(struct sched_relay *r, const char *id,
    const char *result, const struct smtp_conn_result *res)
{
	char reply[sizeof(res->reply)];
	int sent = strcmp(result, "sent") == 0;

	/* reply is printable already; quotes are the only thing to tame. */
	sq_printable(reply, sizeof(reply), res->reply, strlen(res->reply));
	for (char *p = reply; *p != '\0'; p++)
		if (*p == '"')
			*p = '\'';
	(sent ? log_info : log_warn)("delivery msgid=%s relay=%s host=%s:%u "
	    "tls=\"%s\" verify=\"%s\" result=%s attempt=%u reply=\"%s\"",
	    id, r->sh->name, r->sh->host, r->sh->port, res->tls, res->verify,
	    result, r->attempt, reply);
}

/*
 * Record the outcome of an attempt for the current message.  fate[i] says
 * what happens to recipient i: 2 delivered (dropped from the envelope), 4
 * retried later, 5 failed permanently (held in failed/ with the reason).
 * fate NULL means "retry every recipient".  The message leaves the queue
 * when no recipient is left to retry.
 */
static void
scheduler_settle_current(struct sched_relay *r, const int *fate,
    const char *const *rcpt_reply, const char *reason)
{
	struct scheduler *s = r->sched;
	struct envelope *env = r->cur_env, *failed;
	struct sq_err err = { 0 };
	struct buf why;
	const char *rr;
	size_t i, kept = 0, n_failed;
	int held = 1;

	if (r->cur != NULL) {
		r->cur->in_flight = 0;
		r->cur->next_attempt = scheduler_now() + s->cfg->retry_min;
	}
	if (env == NULL)
		return;
	if (fate != NULL) {
		failed = envelope_new();
		envelope_set_sender(failed, env->sender);
		snprintf(failed->id, sizeof(failed->id), "%s", env->id);
		failed->created = env->created;
		failed->uid = env->uid;
		failed->attempts = env->attempts + 1;
		/* Each refused recipient keeps the reply to its own RCPT;
		 * the message's reply when the whole message was refused. */
		buf_init(&why, 1024);
		for (i = 0, n_failed = 0; i < env->n_rcpts; i++)
			n_failed += fate[i] == 5;
		for (i = 0; i < env->n_rcpts; i++) {
			if (fate[i] != 5)
				continue;
			rr = rcpt_reply != NULL && rcpt_reply[i] != NULL ?
			    rcpt_reply[i] : reason;
			envelope_add_rcpt(failed, env->rcpts[i]);
			log_warn("failed msgid=%s rcpt=%s relay=%s reason=\"%s\":"
			    " held in failed/ (bounces are not implemented "
			    "yet)", env->id, env->rcpts[i], r->sh->name, rr);
			if (why.len > 0)
				buf_append_str(&why, "; ");
			if (n_failed > 1) {
				buf_append_str(&why, env->rcpts[i]);
				buf_append_str(&why, ": ");
			}
			buf_append_str(&why, rr);
		}
		if (buf_append(&why, "", 1) != 0)
			why.data[why.len - 1] = '\0';	/* full: truncate */
		envelope_set_error(failed, why.len > 1 ? why.data : reason);
		buf_fini(&why);
		if (failed->n_rcpts > 0 && spool_hold_failed(s->spool, failed,
		    failed->attempts, &err) != 0) {
			log_err("msgid=%s: cannot hold the failed recipients "
			    "in failed/: %s (they stay queued)", env->id,
			    err.msg);
			held = 0;
		}
		envelope_free(failed);
		for (i = 0; i < env->n_rcpts; i++) {
			if (fate[i] == 2 || (fate[i] == 5 && held)) {
				free(env->rcpts[i]);
				continue;
			}
			env->rcpts[kept++] = env->rcpts[i];
		}
		env->n_rcpts = kept;
		if (kept == 0) {
			if (spool_remove(s->spool, env->id, &err) != 0)
				log_err("msgid=%s: done but cannot remove it "
				    "from the spool: %s (it may be sent "
				    "again)", env->id, err.msg);
			if (r->cur != NULL)
				scheduler_drop(s, r->cur);
			r->cur = NULL;
			return;
		}
	}
	env->attempts++;
	env->next_attempt = scheduler_now() + s->cfg->retry_min;
	envelope_set_error(env, reason);
	if (spool_update_envelope(s->spool, env, &err) != 0)
		log_err("msgid=%s: cannot record the attempt: %s "
		    "(the message stays queued)", env->id, err.msg);
}

static void
scheduler_finish_current(struct sched_relay *r)
{
	envelope_free(r->cur_env);
	r->cur_env = NULL;
	if (r->cur != NULL)
		r->cur->in_flight = 0;
	r->cur = NULL;
}

static void
scheduler_on_message_done(struct smtp_conn *c,
    const struct smtp_conn_result *res, void *arg)
{
	struct sched_relay *r = arg;
	int *fate;
	size_t i, n, delivered = 0, failed = 0;
	int cls;

	(void)c;
	if (r->cur == NULL || r->cur_env == NULL)
		log_fatalx("relay %s: message result without a message",
		    r->sh->name);
	n = r->cur_env->n_rcpts;
	fate = xcalloc(n, sizeof(*fate));
	for (i = 0; i < n; i++) {
		cls = res->rcpt_class != NULL && res->n_rcpts == n ?
		    res->rcpt_class[i] : 0;
		switch (res->outcome) {
		case SMTP_CONN_DELIVERED:
			fate[i] = cls == 2 ? 2 : cls == 5 ? 5 : 4;
			break;
		case SMTP_CONN_FAILED:
			/* The message itself was refused for good. */
			fate[i] = 5;
			break;
		case SMTP_CONN_DEFERRED:
			fate[i] = cls == 5 ? 5 : 4;
			break;
		}
		delivered += fate[i] == 2;
		failed += fate[i] == 5;
	}
	if (delivered == n)
		scheduler_log_attempt(r, r->cur->id, "sent", res);
	else if (delivered > 0)
		scheduler_log_attempt(r, r->cur->id, "partial", res);
	else
		scheduler_log_attempt(r, r->cur->id, failed == n ? "failed" :
		    "deferred", res);
	scheduler_settle_current(r, fate, res->rcpt_reply, res->reply);
	free(fate);
	scheduler_finish_current(r);
	/* The connection reports on_ready next when it can carry more. */
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

/* Give the relay's idle connection the next due message, if any. */
static int
scheduler_send_next(struct sched_relay *r)
{
	struct scheduler *s = r->sched;
	struct smtp_conn_message msg;
	struct sq_err err = { 0 };
	struct sched_msg *m;
	int fd;

	for (;;) {
		m = r->cur;
		if (m == NULL)
			m = scheduler_next_due(s, scheduler_now());
		if (m == NULL)
			return 0;
		r->cur = m;
		m->in_flight = 1;
		if (spool_load_envelope(s->spool, m->id, &r->cur_env,
		    &err) != 0 || (fd = spool_open_message(s->spool, m->id,
		    &err)) < 0) {
			/* Gone (delivered and removed, or a stale watch event)
			 * or unreadable: a later issue moves unreadable
			 * messages to corrupt/; until then it is left in the
			 * spool and dropped from the index. */
			if (err.code == -ENOENT || err.code == SQ_ENOTFOUND)
				log_debug("msgid=%s: no longer queued", m->id);
			else
				log_err("msgid=%s: cannot read from the spool: "
				    "%s (left in the spool, not retried until "
				    "restart)", m->id, err.msg);
			envelope_free(r->cur_env);
			r->cur_env = NULL;
			scheduler_drop(s, m);
			r->cur = NULL;
			continue;
		}
		r->attempt = r->cur_env->attempts + 1;
		memset(&msg, 0, sizeof(msg));
		msg.id = m->id;
		msg.sender = r->cur_env->sender;
		msg.rcpts = (const char *const *)r->cur_env->rcpts;
		msg.n_rcpts = r->cur_env->n_rcpts;
		msg.body_fd = fd;
		msg.body_8bit = r->cur_env->body_8bit;
		msg.needs_smtputf8 = scheduler_envelope_utf8(r->cur_env);
		r->conn_idle = 0;
		if (smtp_conn_send(r->conn, &msg) != 0) {
			/* Not sendable (no recipients left): keep it queued
			 * and visible rather than lose it. */
			close(fd);
			log_err("msgid=%s: cannot be sent (%zu recipients); "
			    "left in the spool", m->id, msg.n_rcpts);
			envelope_free(r->cur_env);
			r->cur_env = NULL;
			scheduler_drop(s, m);
			r->cur = NULL;
			r->conn_idle = 1;
			continue;
		}
		return 1;
	}
}

static void
scheduler_on_ready(struct smtp_conn *c, void *arg)
{
	struct sched_relay *r = arg;
	struct timeval idle = { SCHEDULER_IDLE_SECONDS, 0 };

	(void)c;
	r->conn_idle = 1;
	r->retry_at = 0;
	if (!r->sched->shutting_down && scheduler_send_next(r))
		return;
	/* Nothing to send now: keep the connection a little while. */
	evtimer_add(r->idle_timer, &idle);
}

static void
scheduler_on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct sched_relay *r = arg;

	(void)fd;
	(void)what;
	if (r->conn != NULL && r->conn_idle) {
		log_debug("relay %s: closing idle connection", r->sh->name);
		smtp_conn_close(r->conn);
		r->conn = NULL;
		r->conn_idle = 0;
		scheduler_request_run(r->sched);
	}
}

/*
 * How long a relay rests after a failed connection.  Refused credentials
 * will not fix themselves: say so loudly and wait much longer than
 * retry_min, so the provider does not lock the account for hammering.
 */
static int64_t
scheduler_relay_backoff(struct sched_relay *r,
    const struct smtp_conn_result *res)
{
	int64_t delay = r->sched->cfg->retry_min;

	if (!res->auth_failed)
		return delay;
	if (delay < SCHEDULER_AUTH_FAIL_SECONDS)
		delay = SCHEDULER_AUTH_FAIL_SECONDS;
	log_err("relay %s: AUTHENTICATION FAILED: %s -- fix the credential "
	    "settings of [smarthost %s] (user, auth, password or token "
	    "source); its mail stays queued, next try in %llds", r->sh->name,
	    res->reply, r->sh->name, (long long)delay);
	return delay;
}

static void
scheduler_on_closed(struct smtp_conn *c, const struct smtp_conn_result *res,
    void *arg)
{
	struct sched_relay *r = arg;
	struct scheduler *s = r->sched;

	(void)c;
	r->conn = NULL;
	evtimer_del(r->idle_timer);
	if (r->cur != NULL) {
		/* The connection failed before or during this message. */
		if (r->cur_env == NULL) {
			struct sq_err err = { 0 };

			if (spool_load_envelope(s->spool, r->cur->id,
			    &r->cur_env, &err) == 0)
				r->attempt = r->cur_env->attempts + 1;
		}
		scheduler_log_attempt(r, r->cur->id, "deferred", res);
		scheduler_settle_current(r, NULL, NULL, res->reply);
		scheduler_finish_current(r);
		r->retry_at = scheduler_now() + scheduler_relay_backoff(r, res);
	} else if (!r->conn_idle) {
		log_warn("relay %s: connection failed: %s", r->sh->name,
		    res->reply);
		r->retry_at = scheduler_now() + scheduler_relay_backoff(r, res);
	} else
		log_debug("relay %s: idle connection closed by the server: %s",
		    r->sh->name, res->reply);
	r->conn_idle = 0;
	scheduler_request_run(s);
}

static void
scheduler_open_conn(struct sched_relay *r, struct sched_msg *first)
{
	struct scheduler *s = r->sched;
	struct smtp_conn_params params;
	static const struct smtp_conn_callbacks cb = {
		.on_ready = scheduler_on_ready,
		.on_message_done = scheduler_on_message_done,
		.on_closed = scheduler_on_closed,
	};

	memset(&params, 0, sizeof(params));
	params.base = s->base;
	params.dns = s->dns;
	params.smarthost = r->sh;
	params.tls = r->tls;
	params.ehlo_name = s->ehlo_name;
	/* The connection is opened for this message: if it cannot be made,
	 * the failure is logged and recorded as this message's attempt. */
	r->cur = first;
	first->in_flight = 1;
	r->attempt = 0;
	r->conn_idle = 0;
	r->conn = smtp_conn_open(&params, &cb, r);
}

static void
scheduler_arm_timer(struct scheduler *s, int64_t now)
{
	struct sched_msg *m;
	struct sched_relay *r = &s->relays[0];
	struct timeval tv;
	int64_t wake = INT64_MAX;

	TAILQ_FOREACH(m, &s->queue, entry)
		if (!m->in_flight && m->next_attempt < wake)
			wake = m->next_attempt;
	if (wake == INT64_MAX)
		return;
	if (r->conn == NULL && r->retry_at > wake)
		wake = r->retry_at;
	if (r->conn != NULL && wake <= now)
		return;		/* the connection will ask for work */
	if (wake < now + 1)
		wake = now + 1;
	tv.tv_sec = (time_t)(wake - now);
	tv.tv_usec = 0;
	evtimer_add(s->retry_timer, &tv);
}

/* Start whatever work is due.  Today every message goes to the first
 * smarthost; routing comes with the queue engine. */
static void
scheduler_run(struct scheduler *s)
{
	struct sched_relay *r = &s->relays[0];
	struct sched_msg *m;
	int64_t now = scheduler_now();

	if (s->shutting_down)
		return;
	if (r->conn != NULL && r->conn_idle) {
		if (scheduler_send_next(r))
			evtimer_del(r->idle_timer);
	} else if (r->conn == NULL && now >= r->retry_at &&
	    (m = scheduler_next_due(s, now)) != NULL)
		scheduler_open_conn(r, m);
	scheduler_arm_timer(s, now);
}

static void
scheduler_on_run(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	scheduler_run(arg);
}

static void
scheduler_rescan(struct scheduler *s)
{
	struct sq_err err = { 0 };

	if (spool_recover(s->spool, scheduler_add_id, s, &err) < 0)
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
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	char id[ENVELOPE_ID_MAX];
	ssize_t n;
	size_t len, off;
	int overflow = 0, added = 0;

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
			if (!spool_id_valid(id))
				continue;
			scheduler_add_id(id, s);
			added = 1;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_err("queue watch: read: %s", strerror(errno));
	if (overflow) {
		log_warn("queue watch overflowed: rescanning the queue");
		scheduler_rescan(s);
	} else if (added)
		scheduler_request_run(s);
}

int
scheduler_new(struct event_base *base, struct evdns_base *dns,
    const struct config *cfg, const char *ehlo_name, struct spool *sp,
    struct scheduler **out, struct sq_err *err)
{
	struct scheduler *s;
	size_t i;
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
	TAILQ_INIT(&s->queue);
	s->n_relays = cfg->n_smarthosts;
	s->relays = xcalloc(s->n_relays, sizeof(*s->relays));
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		r->sched = s;
		r->sh = &cfg->smarthosts[i];
		r->idle_timer = evtimer_new(base, scheduler_on_idle_timeout, r);
		if (r->sh->tls == CONFIG_TLS_NONE)
			continue;
		if ((rc = tls_ctx_new(r->sh, &r->tls, err)) != 0) {
			scheduler_free(s);
			return rc;
		}
	}
	s->run_ev = event_new(base, -1, 0, scheduler_on_run, s);
	s->retry_timer = evtimer_new(base, scheduler_on_run, s);
	s->rescan_timer = event_new(base, -1, EV_PERSIST, scheduler_on_rescan,
	    s);
	*out = s;
	return 0;
}

int
scheduler_start(struct scheduler *s, struct sq_err *err)
{
	struct timeval rescan;
	int n;

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
	if ((n = spool_recover(s->spool, scheduler_add_id, s, err)) < 0)
		return n;
	log_info("queue recovered: %d message(s) queued", n);
	rescan.tv_sec = SCHEDULER_RESCAN_SECONDS;
	rescan.tv_usec = 0;
	event_add(s->rescan_timer, &rescan);
	scheduler_request_run(s);
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

	s->shutting_down = 1;
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		if (r->conn != NULL) {
			if (r->cur != NULL)
				log_info("msgid=%s: delivery interrupted by "
				    "shutdown; it stays queued", r->cur->id);
			smtp_conn_abort(r->conn);
			r->conn = NULL;
		}
		scheduler_finish_current(r);
		evtimer_del(r->idle_timer);
	}
	event_del(s->retry_timer);
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
	struct sched_msg *m;
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n_relays; i++) {
		struct sched_relay *r = &s->relays[i];

		if (r->conn != NULL)
			smtp_conn_abort(r->conn);
		envelope_free(r->cur_env);
		tls_ctx_free(r->tls);
		if (r->idle_timer != NULL)
			event_free(r->idle_timer);
	}
	free(s->relays);
	while ((m = TAILQ_FIRST(&s->queue)) != NULL)
		scheduler_drop(s, m);
	if (s->run_ev != NULL)
		event_free(s->run_ev);
	if (s->retry_timer != NULL)
		event_free(s->retry_timer);
	if (s->rescan_timer != NULL)
		event_free(s->rescan_timer);
	if (s->watch_ev != NULL)
		event_free(s->watch_ev);
	if (s->watch_fd >= 0)
		close(s->watch_fd);
	free(s->ehlo_name);
	free(s);
}
