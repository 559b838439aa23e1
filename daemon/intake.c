/*
 * intake.c - listeners and SMTP sessions on libevent.
 *
 * How it works: each listening socket is made here (socket, bind, listen;
 * IPV6_V6ONLY for IPv6; a unix socket file replaces a stale socket file,
 * never anything else, and is made 0666 so that every local user can
 * submit) or taken from systemd, and wrapped in an evconnlistener.  An
 * accepted connection becomes a session: a bufferevent for the output, a
 * read event of its own, an intake_proto core and a timer.  intake_session_run() is the one place that moves
 * bytes: it pops the core's events (DATA: open a spool writer; BODY:
 * write; ABORT: drop the writer; END: queue the message for commit;
 * CLOSE: close once the output is written), copies the core's output into
 * the bufferevent, and feeds the core what was read, until the core waits
 * or the input is empty.  Input is bounded (INTAKE_READ_MAX: the read
 * event is removed while that much waits), so a session that waits
 * (commit, full output) simply stops reading.  The session reads with
 * recv() itself rather than through the bufferevent, which asks the
 * kernel first how much is readable (ioctl FIONREAD before each readv:
 * a system call per read, two per message of a pipelining client).
 *
 * The end of a loop turn: in->turn_ev, made active by the first session
 * that needs it in a turn, runs after every event already active (the
 * sessions' reads of the turn): what was done per message is done there
 * once per turn.
 *
 * Free space: the turn's checks (intake_session_admit) share one
 * fstatvfs (spool_space_cache), forgotten at the end of the turn.
 *
 * Commit: a session whose message is complete goes on in->commit_list and
 * in->turn_ev is made active; its callback hands every message that
 * completed in the same turn to the spool's commit thread at once
 * (spool_commit_batch_begin/end: one wake-up), which groups it with all
 * others waiting (one sync of the write-ahead log) off the loop.  Only when the
 * thread reports the message durable is the 250 written; meanwhile the
 * loop serves the other sessions.  A client that disconnects while its
 * message waits for commit is closed after the commit (the message is
 * queued: delivery is at least once).
 *
 * Nothing is freed inside its own callback: a finished session is put on
 * in->reap_list and freed by in->reap_ev's callback.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "envelope.h"
#include "intake.h"
#include "rewrite.h"
#include "intake_proto.h"
#include "log.h"
#include "metrics.h"
#include "quota.h"
#include "mailmsg.h"
#include "msgfix.h"
#include "service.h"
#include "spool.h"
#include "util.h"

#define INTAKE_READ_MAX (256 * 1024) /* input held per session */
#define INTAKE_WRITE_MAX \
	(64 * 1024) /* output before we stop
						 * reading commands */
/* One recv() at most: with the evbuffer chain's header, a 16 KiB block
 * (a pipelined command group or a small message's body in one read). */
#define INTAKE_READ_CHUNK   (16 * 1024 - 256)
#define INTAKE_BACKLOG      128
#define INTAKE_CLIENT_MAX   96
#define INTAKE_SD_FDS_START SERVICE_LISTEN_FDS_START
#define INTAKE_SD_FDS_MAX   64

struct intake_listener {
	struct evconnlistener *lev;
	struct intake         *in;
	char                   name[128];   /* for logs */
	char                  *unlink_path; /* our unix socket file */
	int                    is_unix;
};

struct intake_session {
	struct intake         *in;
	struct intake_session *prev, *next; /* in->sessions */
	struct intake_session *commit_next; /* in->commit_list */
	struct intake_session *reap_next;   /* in->reap_list */
	struct bufferevent    *bev;         /* output (and its errors) */
	struct event          *rd;          /* the socket readable */
	struct evbuffer       *input;       /* read, not yet fed to the core */
	int                    rd_on;       /* rd added */
	struct intake_proto   *proto;
	struct event          *timer;
	char                   client[INTAKE_CLIENT_MAX]; /* log */
	char                   rcvd[INTAKE_CLIENT_MAX];   /* Received: */
	long                   uid;
	int                    counted; /* towards max_clients */
	/* The peer, for max_clients_per_peer: a uid (unix socket) or an
	 * address (TCP, IPv4 as v4-mapped IPv6). */
	int                  peer_is_uid;
	unsigned char        peer_addr[16];
	uint64_t             progress; /* intake_proto_progress() when
						 * the timer was last armed */
	struct spool_writer *w;
	struct envelope     *env;   /* being committed */
	struct msgfix_scan   scan;  /* the wire rules, msgfix.h */
	struct msgfix_added  added; /* Date, Message-ID if missing */
	char                 date[64];
	struct buf           fix;      /* msgfix's output, per chunk */
	int                  write_rc; /* first spool error */
	char                 write_err[sizeof(((struct sq_err *)0)->msg)];
	int                  committing;
	int                  closing; /* close once output is out */
	int                  gone;    /* the client went away */
	int                  dead;    /* on the reap list */
};

struct intake {
	struct event_base      *base;
	const struct config    *cfg;
	struct spool           *sp;
	char                    hostname[256];
	struct rewrite          rw; /* [aliases], rewrite_sender */
	struct intake_listener *listeners;
	size_t                  n_listeners;
	struct intake_session  *sessions;
	size_t                  n_sessions; /* all */
	size_t                  n_counted;  /* towards max_clients */
	struct intake_session  *commit_list, **commit_tail;
	struct event           *turn_ev;      /* the end of the turn */
	int                     space_cached; /* spool_space_cache on */
	struct intake_session  *reap_list;
	struct event           *reap_ev;
	struct event           *resume_ev; /* listeners after EMFILE */
	struct quota            quota;     /* per-uid limits; zeroed: none */
};

static void intake_session_run(struct intake_session *s);
static void intake_session_run_timed(struct intake_session *s);

/* Reading on or off (s->rd added or not): off while the input holds
 * INTAKE_READ_MAX, or the session closes. */
static void
intake_session_reading(struct intake_session *s, int on)
{
	if (s->dead || s->rd_on == on)
		return;
	if (on ? event_add(s->rd, NULL) : event_del(s->rd))
		log_fatalx("intake: cannot %s a read event",
		    on ? "add" : "del");
	s->rd_on = on;
}

/* ---------------------------------------------------------------- sessions */

static void
intake_session_kill(struct intake_session *s)
{
	struct intake *in = s->in;

	if (s->dead)
		return;
	s->dead = 1;
	if (s->bev != NULL)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	if (s->rd != NULL)
		event_del(s->rd);
	s->rd_on = 0;
	if (s->timer != NULL)
		evtimer_del(s->timer);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		in->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	in->n_sessions--;
	if (s->counted)
		in->n_counted--;
	s->reap_next = in->reap_list;
	in->reap_list = s;
	event_active(in->reap_ev, EV_TIMEOUT, 0);
}

static void
intake_session_free(struct intake_session *s)
{
	if (s->w != NULL)
		spool_writer_abort(s->w);
	if (s->rd != NULL)
		event_free(s->rd);
	if (s->input != NULL)
		evbuffer_free(s->input);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->timer != NULL)
		event_free(s->timer);
	intake_proto_free(s->proto);
	buf_fini(&s->fix);
	free(s);
}

static void
intake_on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct intake         *in = arg;
	struct intake_session *s;

	(void)fd;
	(void)what;
	while ((s = in->reap_list) != NULL) {
		in->reap_list = s->reap_next;
		log_debug("intake: closed client=%s", s->client);
		intake_session_free(s);
	}
}

static void
intake_session_arm(struct intake_session *s)
{
	struct timeval tv = { (time_t)s->in->cfg->intake.timeout, 0 };

	if (!s->dead && !s->committing)
		evtimer_add(s->timer, &tv);
}

/* The spool failed on this session's message: remember the first error,
 * drop the writer. */
static void
intake_session_spool_failed(struct intake_session *s, int rc,
    const struct sq_err *err)
{
	if (s->write_rc == 0) {
		s->write_rc = rc;
		snprintf(s->write_err, sizeof(s->write_err), "%s", err->msg);
	}
	if (s->w != NULL) {
		spool_writer_abort(s->w);
		s->w = NULL;
	}
}

static int
intake_nospace(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT || rc == -EROFS ||
	    rc == -EACCES || rc == -EPERM || rc == -EMFILE || rc == -ENFILE;
}

static void
intake_session_fail_log(struct intake_session *s, int rc, const char *why)
{
	log_warn("intake result=%s client=%s uid=%ld error=\"%s\"",
	    intake_nospace(rc) ? "nospace" : "tempfail", s->client, s->uid,
	    why);
}

/*
 * May this session's message be queued now (free-space reserve, per-uid
 * limits)?  size: the message's size, or what SIZE= said, or 0;
 * written: it is already in the spool's tmp/ (so not counted again
 * against the free space).  Counts the same uid's messages waiting for
 * the group commit.  0, or the refusal answered (452 4.3.1 with the
 * reason) and logged.
 */
static int
intake_session_admit(struct intake_session *s, uint64_t size, int written)
{
	struct intake         *in = s->in;
	struct intake_session *o;
	struct sq_err          err = { 0 };
	uint64_t               msgs = 0, bytes = 0;
	int                    rc;

	if (!in->space_cached) {
		/* One fstatvfs for the turn's checks. */
		spool_space_cache(in->sp, 1);
		in->space_cached = 1;
		event_active(in->turn_ev, EV_TIMEOUT, 0);
	}
	if ((rc = spool_space_ok(in->sp, written ? 0 : size, &err)) == 0) {
		for (o = in->sessions; o != NULL; o = o->next)
			if (o != s && o->committing && o->uid == s->uid) {
				msgs++;
				bytes += intake_proto_msg_size(o->proto);
			}
		rc = quota_admit(&in->quota, s->uid, msgs, bytes, size, &err);
	}
	if (rc == 0)
		return 0;
	log_warn("intake result=%s client=%s uid=%ld error=\"%s\"",
	    rc == -EDQUOT          ? "overquota" :
		intake_nospace(rc) ? "nospace" :
				     "tempfail",
	    s->client, s->uid, err.msg);
	intake_proto_data_refuse(s->proto,
	    rc == -EDQUOT ? err.msg :
			    "Insufficient system storage, try again later");
	return rc;
}

/* EV_DATA: open a writer and put the Received: field in front. */
static void
intake_session_data(struct intake_session *s)
{
	struct sq_err err = { 0 };
	char          date[64], *rcvd;
	int           rc;

	s->write_rc = 0;
	s->write_err[0] = '\0';
	if (intake_session_admit(s, intake_proto_txn(s->proto)->size, 0) != 0)
		return;
	if ((rc = spool_writer_begin(s->in->sp, &s->w, &err)) != 0) {
		s->w = NULL;
		intake_session_fail_log(s, rc, err.msg);
		intake_proto_data_start(s->proto, 0);
		return;
	}
	mailmsg_date((int64_t)time(NULL), 1, date, sizeof(date));
	rcvd = intake_proto_received(s->proto, s->rcvd, spool_writer_id(s->w),
	    date);
	/* The client's bytes go through msgfix: Date and Message-ID are
	 * added at the end of its header when missing (never From: that
	 * is the client's to give). */
	snprintf(s->date, sizeof(s->date), "%s", date);
	s->added.date = s->date;
	s->added.msgid_id = spool_writer_id(s->w);
	s->added.hostname = s->in->hostname;
	s->added.from = NULL;
	msgfix_scan_init(&s->scan, &s->added);
	rc = spool_writer_write(s->w, rcvd, strlen(rcvd), &err);
	free(rcvd);
	if (rc != 0) {
		intake_session_fail_log(s, rc, err.msg);
		spool_writer_abort(s->w);
		s->w = NULL;
		intake_proto_data_start(s->proto, 0);
		return;
	}
	intake_proto_data_start(s->proto, 1);
}

/*
 * The end of the data: the wire rules (msgfix.h).  Returns 0 when the
 * message may be committed (rewritten if it had to be), else answers
 * the client (554 5.6.0 for content that cannot be relayed, 451/452 when
 * the rewrite failed for a local reason) and returns -1.
 */
static int
intake_session_fix(struct intake_session *s)
{
	struct sq_err err = { 0 };
	int           rc;

	s->fix.len = 0;
	rc = msgfix_scan_end(&s->scan, &s->fix);
	if (rc == 0)
		rc = spool_writer_write(s->w, s->fix.data, s->fix.len, &err);
	if (rc == 0)
		rc = spool_writer_fix(s->w, &s->scan, &err);
	if (rc == 0)
		return 0;
	if (rc != SQ_EPARSE) {
		intake_session_spool_failed(s, rc, &err);
		return 0; /* answered as a spool failure */
	}
	log_warn("intake result=rejected client=%s uid=%ld reason=\"%s\"",
	    s->client, s->uid, err.msg);
	spool_writer_abort(s->w);
	s->w = NULL;
	intake_proto_data_done(s->proto, INTAKE_PROTO_REJECTED, err.msg);
	return -1;
}

/* EV_END: queue for the group commit, or answer the failure now. */
static void
intake_session_end(struct intake_session *s)
{
	struct intake *in = s->in;

	if (s->w != NULL && intake_session_fix(s) != 0)
		return;
	if (s->w == NULL) {
		intake_session_fail_log(s, s->write_rc, s->write_err);
		intake_proto_data_done(s->proto,
		    intake_nospace(s->write_rc) ? INTAKE_PROTO_NOSPACE :
						  INTAKE_PROTO_TEMPFAIL,
		    NULL);
		return;
	}
	/* Again with the real size: what was written may have taken the
	 * spool below its reserve, or the uid over its byte limit. */
	if (intake_session_admit(s, intake_proto_msg_size(s->proto), 1) != 0) {
		spool_writer_abort(s->w);
		s->w = NULL;
		return;
	}
	s->committing = 1;
	evtimer_del(s->timer);
	s->commit_next = NULL;
	*in->commit_tail = s;
	in->commit_tail = &s->commit_next;
	event_active(in->turn_ev, EV_TIMEOUT, 0);
}

/* Pop and handle the core's events.  Returns 0 to go on, -1 when the
 * session must not be fed now (waiting for commit, or closing). */
static int
intake_session_events(struct intake_session *s)
{
	struct intake_proto_event ev;
	struct sq_err             err = { 0 };
	int                       rc;

	while (intake_proto_next_event(s->proto, &ev)) {
		switch (ev.type) {
		case INTAKE_PROTO_EV_DATA:
			intake_session_data(s);
			break;
		case INTAKE_PROTO_EV_BODY:
			if (s->w == NULL)
				break;
			s->fix.len = 0;
			if (msgfix_scan_feed(&s->scan, ev.data, ev.len,
				&s->fix) != 0)
				log_fatalx("intake: msgfix output overflow");
			rc = spool_writer_write(s->w, s->fix.data, s->fix.len,
			    &err);
			if (rc != 0)
				intake_session_spool_failed(s, rc, &err);
			break;
		case INTAKE_PROTO_EV_ABORT:
			if (s->w != NULL) {
				spool_writer_abort(s->w);
				s->w = NULL;
			}
			log_info(
			    "intake result=toobig client=%s uid=%ld limit=%llu",
			    s->client, s->uid,
			    (unsigned long long)
				s->in->cfg->intake.max_message_size);
			break;
		case INTAKE_PROTO_EV_END:
			intake_session_end(s);
			break;
		case INTAKE_PROTO_EV_CLOSE:
			s->closing = 1;
			break;
		}
	}
	return s->committing || s->closing ? -1 : 0;
}

/* Move the core's output to the client: straight to the socket when
 * nothing is waiting before it (a reply fits the socket buffer nearly
 * always, and the bufferevent would otherwise turn its write event on
 * and off again: two epoll_ctl calls and a loop turn per reply); what
 * the socket does not take, and every error, goes through the
 * bufferevent, which reports it.  The listener speaks plain SMTP on a
 * socket bufferevent; a TLS or filtering one would have to take the
 * evbuffer path always. */
static void
intake_session_flush(struct intake_session *s)
{
	struct evbuffer *output = bufferevent_get_output(s->bev);
	const char      *data;
	size_t           len, sent = 0;
	ssize_t          n;

	intake_proto_output(s->proto, &data, &len);
	if (len == 0)
		return;
	if (evbuffer_get_length(output) == 0) {
		n = send(bufferevent_getfd(s->bev), data, len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			sent = (size_t)n;
	}
	if (sent < len && evbuffer_add(output, data + sent, len - sent) != 0) {
		log_warn("intake: client=%s: out of memory for output",
		    s->client);
		s->closing = 1;
		return;
	}
	intake_proto_consumed(s->proto, len);
}

static void
intake_session_run(struct intake_session *s)
{
	struct evbuffer      *input, *output;
	struct evbuffer_iovec v;
	size_t                used;
	int                   waiting, stalled = 0;

	if (s->dead)
		return;
	input = s->input;
	output = bufferevent_get_output(s->bev);
	for (;;) {
		waiting = intake_session_events(s);
		intake_session_flush(s);
		if (s->closing || s->gone) {
			if (s->committing)
				return; /* after the commit */
			if (s->gone || evbuffer_get_length(output) == 0)
				intake_session_kill(s);
			else
				intake_session_reading(s, 0);
			return;
		}
		if (waiting || intake_proto_blocked(s->proto))
			return;
		if (evbuffer_get_length(output) > INTAKE_WRITE_MAX)
			return; /* the write callback resumes */
		if (evbuffer_peek(input, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return;
		used = intake_proto_feed(s->proto, v.iov_base, v.iov_len);
		evbuffer_drain(input, used);
		if (used > 0 && !s->rd_on &&
		    evbuffer_get_length(input) < INTAKE_READ_MAX)
			intake_session_reading(s, 1);
		/* Nothing taken twice running (no event, no wait): the core
		 * cannot make progress now; a later callback resumes. */
		if (used == 0 && stalled++ > 0)
			return;
		if (used > 0)
			stalled = 0;
	}
}

/* Run the session; only progress restarts its timer: junk commands and
 * a command trickling in byte by byte do not keep a session alive. */
static void
intake_session_run_timed(struct intake_session *s)
{
	uint64_t progress;

	intake_session_run(s);
	if (!s->dead &&
	    (progress = intake_proto_progress(s->proto)) != s->progress) {
		s->progress = progress;
		intake_session_arm(s);
	}
}

/* The socket is readable: one recv() into the input (nothing asked of
 * the kernel before it), then the session runs.  End of file or an error
 * ends the session as the bufferevent's event callback does for the
 * output; a session waiting for its commit is closed after it. */
static void
intake_on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct intake_session *s = arg;
	struct evbuffer       *input = s->input;
	struct evbuffer_iovec  v;
	size_t                 len = evbuffer_get_length(input), want;
	ssize_t                n;
	int                    e;

	(void)what;
	if (len >= INTAKE_READ_MAX) {
		intake_session_reading(s, 0);
		return;
	}
	want = INTAKE_READ_MAX - len;
	if (want > INTAKE_READ_CHUNK)
		want = INTAKE_READ_CHUNK;
	if (evbuffer_reserve_space(input, (ev_ssize_t)want, &v, 1) < 1) {
		log_warn("intake: client=%s: out of memory for input",
		    s->client);
		s->gone = 1;
		intake_session_reading(s, 0);
		if (!s->committing)
			intake_session_kill(s);
		return;
	}
	n = recv(fd, v.iov_base, v.iov_len < want ? v.iov_len : want,
	    MSG_DONTWAIT);
	e = errno;
	if (n > 0) {
		v.iov_len = (size_t)n;
		evbuffer_commit_space(input, &v, 1);
		intake_session_run_timed(s);
		return;
	}
	if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK || e == EINTR))
		return;
	if (n < 0)
		log_debug("intake: client=%s: %s", s->client, strerror(e));
	s->gone = 1;
	intake_session_reading(s, 0);
	if (!s->committing)
		intake_session_kill(s);
}

static void
intake_on_write(struct bufferevent *bev, void *arg)
{
	(void)bev;
	intake_session_run_timed(arg);
}

static void
intake_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct intake_session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_ERROR)
		log_debug("intake: client=%s: %s", s->client,
		    strerror(EVUTIL_SOCKET_ERROR()));
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		s->gone = 1;
		if (!s->committing)
			intake_session_kill(s);
	}
}

static void
intake_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct intake_session *s = arg;

	(void)fd;
	(void)what;
	if (s->committing)
		return;
	log_info("intake: client=%s: timeout", s->client);
	intake_proto_timeout(s->proto);
	intake_session_run(s);
}

/* ---------------------------------------------------------------- commit */

/* The DSN parameters of t (RFC 3461) into env, whose recipients are t's
 * in order.  intake_proto checked them already; one envelope.c refuses
 * anyway is left out with a warning rather than failing the message. */
_Static_assert(INTAKE_PROTO_NOTIFY_NEVER == ENVELOPE_NOTIFY_NEVER &&
	INTAKE_PROTO_NOTIFY_SUCCESS == ENVELOPE_NOTIFY_SUCCESS &&
	INTAKE_PROTO_NOTIFY_FAILURE == ENVELOPE_NOTIFY_FAILURE &&
	INTAKE_PROTO_NOTIFY_DELAY == ENVELOPE_NOTIFY_DELAY,
    "NOTIFY bits differ between intake_proto.h and envelope.h");

static void
intake_dsn_params(struct envelope *env, const struct intake_proto_txn *t)
{
	size_t j;

	env->ret = t->ret == INTAKE_PROTO_RET_FULL ? ENVELOPE_RET_FULL :
	    t->ret == INTAKE_PROTO_RET_HDRS        ? ENVELOPE_RET_HDRS :
						     ENVELOPE_RET_NONE;
	if (t->envid != NULL && envelope_set_envid(env, t->envid) != 0)
		log_warn("intake: ENVID not kept (not valid xtext)");
	for (j = 0; j < t->n_rcpts && j < env->n_rcpts; j++) {
		if (t->rcpts[j].notify == 0 && t->rcpts[j].orcpt == NULL)
			continue;
		if (envelope_set_rcpt_dsn(env, j, t->rcpts[j].notify,
			t->rcpts[j].orcpt) != 0)
			log_warn("intake: NOTIFY/ORCPT of recipient %zu not "
				 "kept (not valid)",
			    j);
	}
}

/* The envelope of s's message, from its transaction. */
static struct envelope *
intake_session_envelope(struct intake_session *s)
{
	const struct intake_proto_txn *t = intake_proto_txn(s->proto);
	struct envelope               *env = envelope_new();
	size_t                         j;

	envelope_set_sender(env, t->sender);
	for (j = 0; j < t->n_rcpts; j++)
		envelope_add_rcpt(env, t->rcpts[j].addr);
	intake_dsn_params(env, t);
	/* Aliases and sender masquerading, as for sendq (DSN parameters
	 * stay with their recipient's address). */
	rewrite_envelope(&s->in->rw, env);
	env->created = (int64_t)time(NULL);
	env->uid = s->uid;
	return env;
}

static void
intake_log_queued(struct intake_session *s, const struct envelope *env)
{
	const struct intake_proto_txn *t = intake_proto_txn(s->proto);
	char                           from[600];

	sq_printable(from, sizeof(from), t->sender, strlen(t->sender));
	log_info(
	    "intake msgid=%s client=%s uid=%ld from=<%s> nrcpt=%zu size=%llu",
	    env->id, s->client, s->uid, from, t->n_rcpts,
	    (unsigned long long)intake_proto_msg_size(s->proto));
	if (env->ret != ENVELOPE_RET_NONE || env->envid != NULL ||
	    env->n_rcpt_dsn > 0) {
		char envid[INTAKE_PROTO_ENVID_MAX + 1];

		sq_printable(envid, sizeof(envid), t->envid ? t->envid : "",
		    t->envid ? strlen(t->envid) : 0);
		log_debug("intake dsn msgid=%s ret=%s envid=%s", env->id,
		    env->ret == ENVELOPE_RET_FULL     ? "FULL" :
			env->ret == ENVELOPE_RET_HDRS ? "HDRS" :
							"-",
		    envid);
	}
}

/* The spool's commit thread is done with s's message (spool.h): only
 * now, its data and name durable, is the client answered. */
static void
intake_on_committed(void *arg, int rc, const struct sq_err *err)
{
	struct intake_session *s = arg;
	struct intake         *in = s->in;
	struct envelope       *env = s->env;

	s->env = NULL;
	if (rc == 0) {
		intake_log_queued(s, env);
		metrics_count_accepted(METRICS_PATH_SMTP);
		intake_proto_data_done(s->proto, INTAKE_PROTO_QUEUED, env->id);
		quota_queued(&in->quota, env);
	} else {
		intake_session_fail_log(s, rc, err->msg);
		intake_proto_data_done(s->proto,
		    intake_nospace(rc) ? INTAKE_PROTO_NOSPACE :
					 INTAKE_PROTO_TEMPFAIL,
		    NULL);
	}
	envelope_free(env);
	s->committing = 0;
	if (s->gone)
		intake_session_kill(s);
	else {
		intake_session_arm(s);
		intake_session_run(s);
	}
}

/* The end of a loop turn: the free-space figure of the turn is
 * forgotten, and every message completed in the turn goes to the spool's
 * commit thread at once, which groups it with whatever else is waiting. */
static void
intake_on_turn(evutil_socket_t fd, short what, void *arg)
{
	struct intake         *in = arg;
	struct intake_session *s, *list;
	struct spool_writer   *w;

	(void)fd;
	(void)what;
	if (in->space_cached) {
		spool_space_cache(in->sp, 0);
		in->space_cached = 0;
	}
	list = in->commit_list;
	in->commit_list = NULL;
	in->commit_tail = &in->commit_list;
	if (list == NULL)
		return;
	spool_commit_batch_begin(in->sp);
	while ((s = list) != NULL) {
		list = s->commit_next;
		s->commit_next = NULL;
		w = s->w;
		s->w = NULL;
		s->env = intake_session_envelope(s);
		spool_commit_async(w, s->env, intake_on_committed, s);
	}
	spool_commit_batch_end(in->sp);
}

/* ---------------------------------------------------------------- accept */

static int
intake_v4_loopback(const unsigned char *a)
{
	return a[0] == 127;
}

/* Is a TCP client allowed: loopback, or in allow_networks? */
static int
intake_allowed(const struct intake *in, const struct sockaddr *sa)
{
	const struct config_intake *ci = &in->cfg->intake;
	unsigned char               addr[16];
	int                         family;
	size_t                      i;
	unsigned                    b;

	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		memcpy(addr,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			family = AF_INET;
			memcpy(addr, a6->s6_addr + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(addr, a6->s6_addr, 16);
		}
	} else
		return 1; /* unix: local by definition */
	if (family == AF_INET && intake_v4_loopback(addr))
		return 1;
	if (family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)(const void *)addr))
		return 1;
	for (i = 0; i < ci->n_allow_networks; i++) {
		const struct config_network *n = &ci->allow_networks[i];

		if (n->family != family)
			continue;
		for (b = 0; b < n->prefix; b++)
			if ((addr[b / 8] ^ n->addr[b / 8]) & (0x80 >> (b % 8)))
				break;
		if (b == n->prefix)
			return 1;
	}
	return 0;
}

/* Fill s->client, s->rcvd and s->uid from the peer. */
static void
intake_identify(struct intake_session *s, evutil_socket_t fd,
    const struct sockaddr *sa)
{
	char         host[INET6_ADDRSTRLEN];
	struct ucred cred;
	socklen_t    len = sizeof(cred);

	s->uid = -1;
	s->peer_is_uid = 0;
	memset(s->peer_addr, 0, sizeof(s->peer_addr));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		s->peer_addr[10] = s->peer_addr[11] = 0xff;
		memcpy(s->peer_addr + 12, &sin->sin_addr, 4);
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(s->client, sizeof(s->client), "[%s]:%u", host,
		    ntohs(sin->sin_port));
		snprintf(s->rcvd, sizeof(s->rcvd), "[%s]", host);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		memcpy(s->peer_addr, &sin6->sin6_addr, 16);
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		snprintf(s->client, sizeof(s->client), "[%s]:%u", host,
		    ntohs(sin6->sin6_port));
		snprintf(s->rcvd, sizeof(s->rcvd), "[IPv6:%s]", host);
	} else if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		s->peer_is_uid = 1;
		s->uid = (long)cred.uid;
		snprintf(s->client, sizeof(s->client), "unix:pid=%ld",
		    (long)cred.pid);
		snprintf(s->rcvd, sizeof(s->rcvd), "uid %ld", s->uid);
	} else {
		s->peer_is_uid = 1; /* unknown uid -1: all share it */
		snprintf(s->client, sizeof(s->client), "unix");
		snprintf(s->rcvd, sizeof(s->rcvd), "local");
	}
}

/* Sessions served now (counted) from the same peer as s: the same uid
 * on a unix socket, the same address over TCP.  A scan: at most
 * max_clients sessions, once per connection. */
static unsigned
intake_peer_sessions(const struct intake *in, const struct intake_session *s)
{
	const struct intake_session *o;
	unsigned                     n = 0;

	for (o = in->sessions; o != NULL; o = o->next) {
		if (o == s || !o->counted || o->peer_is_uid != s->peer_is_uid)
			continue;
		if (s->peer_is_uid ? o->uid == s->uid :
				     memcmp(o->peer_addr, s->peer_addr,
					 sizeof(s->peer_addr)) == 0)
			n++;
	}
	return n;
}

static void
intake_on_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct intake_listener     *l = arg;
	struct intake              *in = l->in;
	const struct config_intake *ci = &in->cfg->intake;
	struct intake_proto_params  params;
	struct intake_session      *s;
	struct sockaddr_storage     peer;
	socklen_t                   plen = sizeof(peer);

	(void)lev;
	/* A unix client's address is empty; read it for the family. */
	if (salen <= 0 || sa == NULL) {
		memset(&peer, 0, sizeof(peer));
		if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0)
			peer.ss_family = AF_UNIX;
		sa = (struct sockaddr *)&peer;
	}
	s = xcalloc(1, sizeof(*s));
	s->in = in;
	/* A body chunk plus what msgfix may insert (msgfix.h). */
	buf_init(&s->fix, INTAKE_PROTO_BODY_CHUNK + MSGFIX_HOLD_MAX + 4096);
	intake_identify(s, fd, sa);
	memset(&params, 0, sizeof(params));
	params.hostname = in->hostname;
	params.max_message_size = ci->max_message_size;
	params.max_recipients = ci->max_recipients;
	params.max_junk_commands = ci->max_junk_commands;
	if (!intake_allowed(in, sa)) {
		params.greeting = INTAKE_PROTO_DENY;
		log_warn("intake: client=%s refused: not in allow_networks",
		    s->client);
	} else if (in->n_counted >= ci->max_clients) {
		params.greeting = INTAKE_PROTO_BUSY;
		log_warn("intake: client=%s refused: max_clients (%u) reached",
		    s->client, ci->max_clients);
	} else if (ci->max_clients_per_peer > 0 &&
	    intake_peer_sessions(in, s) >= ci->max_clients_per_peer) {
		params.greeting = INTAKE_PROTO_PEER_BUSY;
		log_warn("intake: client=%s uid=%ld refused: "
			 "max_clients_per_peer (%u) reached for this %s",
		    s->client, s->uid, ci->max_clients_per_peer,
		    s->peer_is_uid ? "uid" : "address");
	} else {
		params.greeting = INTAKE_PROTO_GREET;
		s->counted = 1;
		in->n_counted++;
	}
	s->proto = intake_proto_new(&params);
	s->bev = bufferevent_socket_new(in->base, fd, BEV_OPT_CLOSE_ON_FREE);
	s->timer = evtimer_new(in->base, intake_on_timeout, s);
	s->rd = event_new(in->base, fd, EV_READ | EV_PERSIST,
	    intake_on_readable, s);
	s->input = evbuffer_new();
	if (s->bev == NULL || s->timer == NULL || s->rd == NULL ||
	    s->input == NULL)
		log_fatalx("intake: out of memory for a session");
	/* Output only: the session reads for itself (s->rd). */
	bufferevent_setcb(s->bev, NULL, intake_on_write, intake_on_event, s);
	intake_session_reading(s, 1);
	s->next = in->sessions;
	if (in->sessions != NULL)
		in->sessions->prev = s;
	in->sessions = s;
	in->n_sessions++;
	log_debug("intake: connect client=%s via=%s", s->client, l->name);
	intake_session_arm(s);
	intake_session_run(s);
}

static void
intake_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct intake *in = arg;
	size_t         i;

	(void)fd;
	(void)what;
	for (i = 0; i < in->n_listeners; i++)
		if (in->listeners[i].lev != NULL)
			evconnlistener_enable(in->listeners[i].lev);
}

static void
intake_on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct intake_listener *l = arg;
	struct timeval          tv = { 1, 0 };
	int                     e = EVUTIL_SOCKET_ERROR();
	size_t                  i;

	(void)lev;
	log_warn("intake: accept on %s: %s; pausing for a second", l->name,
	    strerror(e));
	/* EMFILE and friends would fire again at once: pause them all. */
	for (i = 0; i < l->in->n_listeners; i++)
		if (l->in->listeners[i].lev != NULL)
			evconnlistener_disable(l->in->listeners[i].lev);
	evtimer_add(l->in->resume_ev, &tv);
}

/* ---------------------------------------------------------------- listen */

/* The socket address of cl into ss and *sslen, its name for messages
 * into name (namesz bytes); a stale Unix socket of an earlier run is
 * removed.  Returns 0, or -errno with err. */
static int
intake_listen_addr(const struct config_listen *cl, struct sockaddr_storage *ss,
    socklen_t *sslen, char *name, size_t namesz, struct sq_err *err)
{
	struct stat st;
	int         e;

	memset(ss, 0, sizeof(*ss));
	switch (cl->kind) {
	case CONFIG_LISTEN_INET: {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		snprintf(name, namesz, "%s:%u", cl->addr, cl->port);
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)cl->port);
		if (inet_pton(AF_INET, cl->addr, &sin->sin_addr) != 1)
			return sq_err_set(err, -EINVAL,
			    "listen %s: bad address", name);
		*sslen = sizeof(*sin);
		break;
	}
	case CONFIG_LISTEN_INET6: {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		snprintf(name, namesz, "[%s]:%u", cl->addr, cl->port);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)cl->port);
		if (inet_pton(AF_INET6, cl->addr, &sin6->sin6_addr) != 1)
			return sq_err_set(err, -EINVAL,
			    "listen %s: bad address", name);
		*sslen = sizeof(*sin6);
		break;
	}
	default: {
		struct sockaddr_un *sun = (struct sockaddr_un *)ss;

		snprintf(name, namesz, "unix:%s", cl->addr);
		sun->sun_family = AF_UNIX;
		if (strlen(cl->addr) >= sizeof(sun->sun_path))
			return sq_err_set(err, -ENAMETOOLONG,
			    "listen %s: path too long", name);
		memcpy(sun->sun_path, cl->addr, strlen(cl->addr) + 1);
		*sslen = sizeof(*sun);
		/* A stale socket of an earlier run goes; nothing else. */
		if (lstat(cl->addr, &st) == 0) {
			if (!S_ISSOCK(st.st_mode))
				return sq_err_set(err, -EEXIST,
				    "listen %s: exists and is not a socket",
				    name);
			if (unlink(cl->addr) != 0) {
				e = errno;
				return sq_err_set(err, -e,
				    "listen %s: remove the old socket: %s",
				    name, strerror(e));
			}
		}
		break;
	}
	}
	return 0;
}

/* A listening socket for l.  Returns the fd, or -errno with err. */
static int
intake_bind(const struct config_listen *cl, char *name, size_t namesz,
    struct sq_err *err)
{
	struct sockaddr_storage ss;
	socklen_t               sslen = 0;
	int                     fd = -1, on = 1, e;

	if ((e = intake_listen_addr(cl, &ss, &sslen, name, namesz, err)) != 0)
		return e;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		e = errno;
		return sq_err_set(err, -e, "listen %s: socket: %s", name,
		    strerror(e));
	}
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (ss.ss_family == AF_UNIX) {
		/* Every local user may submit (the uid is recorded).  The
		 * path appears only once the socket listens. */
		if ((e = sq_listen_unix(fd, cl->addr, 0666, INTAKE_BACKLOG)) !=
		    0) {
			close(fd);
			return sq_err_set(err, e, "listen %s: %s", name,
			    strerror(-e));
		}
		return fd;
	}
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
		e = errno;
		close(fd);
		return sq_err_set(err, -e, "listen %s: bind: %s", name,
		    strerror(e));
	}
	if (listen(fd, INTAKE_BACKLOG) != 0) {
		e = errno;
		close(fd);
		return sq_err_set(err, -e, "listen %s: listen: %s", name,
		    strerror(e));
	}
	return fd;
}

static int
intake_add_listener(struct intake *in, int fd, const char *name,
    const char *unlink_path, struct sq_err *err)
{
	struct intake_listener *l;

	l = &in->listeners[in->n_listeners];
	memset(l, 0, sizeof(*l));
	l->in = in;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->lev = evconnlistener_new(in->base, intake_on_accept, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l->lev == NULL) {
		close(fd);
		if (unlink_path != NULL)
			unlink(unlink_path);
		return sq_err_set(err, -ENOMEM,
		    "listen %s: cannot set up the listener", name);
	}
	evconnlistener_set_error_cb(l->lev, intake_on_accept_error);
	if (unlink_path != NULL)
		l->unlink_path = xstrdup(unlink_path);
	in->n_listeners++;
	log_info("intake: listening on %s", name);
	return 0;
}

/*
 * Sockets from systemd: sd_listen_fds(3) through service.h (the variables
 * are removed so that nothing we start inherits them).  Returns the count,
 * 0 when not socket-activated.
 */
static int
intake_sd_fds(void)
{
	return service_listen_fds(INTAKE_SD_FDS_MAX);
}

int
intake_new(struct event_base *base, const struct config *cfg, struct spool *sp,
    struct intake **out, struct sq_err *err)
{
	const struct config_intake *ci = &cfg->intake;
	struct intake              *in;
	char                        name[128];
	int                         fd, n_sd, i, rc;
	size_t                      k;

	in = xcalloc(1, sizeof(*in));
	in->base = base;
	in->cfg = cfg;
	in->sp = sp;
	in->commit_tail = &in->commit_list;
	if (cfg->hostname != NULL)
		snprintf(in->hostname, sizeof(in->hostname), "%s",
		    cfg->hostname);
	else
		sq_hostname(NULL, in->hostname, sizeof(in->hostname));
	rewrite_init(&in->rw, cfg, in->hostname);
	in->turn_ev = event_new(base, -1, 0, intake_on_turn, in);
	in->reap_ev = event_new(base, -1, 0, intake_on_reap, in);
	in->resume_ev = evtimer_new(base, intake_on_resume, in);
	if (in->turn_ev == NULL || in->reap_ev == NULL || in->resume_ev == NULL)
		log_fatalx("intake: out of memory");

	n_sd = intake_sd_fds();
	in->listeners = xcalloc((size_t)n_sd + ci->n_listen + 1,
	    sizeof(*in->listeners));
	if (n_sd > 0) {
		if (ci->n_listen > 0)
			log_info("intake: %d socket%s from systemd; [intake] "
				 "listen is not used",
			    n_sd, n_sd == 1 ? "" : "s");
		for (i = 0; i < n_sd; i++) {
			fd = INTAKE_SD_FDS_START + i;
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			evutil_make_socket_nonblocking(fd);
			snprintf(name, sizeof(name), "systemd fd %d", fd);
			if ((rc = intake_add_listener(in, fd, name, NULL,
				 err)) != 0)
				goto fail;
		}
	} else {
		for (k = 0; k < ci->n_listen; k++) {
			fd = intake_bind(&ci->listen[k], name, sizeof(name),
			    err);
			if (fd < 0) {
				rc = fd;
				goto fail;
			}
			rc = intake_add_listener(in, fd, name,
			    ci->listen[k].kind == CONFIG_LISTEN_UNIX ?
				ci->listen[k].addr :
				NULL,
			    err);
			if (rc != 0)
				goto fail;
		}
	}
	*out = in;
	return 0;
fail:
	intake_free(in);
	return rc;
}

void
intake_close_listeners(struct intake *in)
{
	struct intake_listener *l;
	size_t                  i;

	if (in == NULL)
		return;
	for (i = 0; i < in->n_listeners; i++) {
		l = &in->listeners[i];
		if (l->lev != NULL) {
			evconnlistener_free(l->lev);
			l->lev = NULL;
		}
		if (l->unlink_path != NULL) {
			unlink(l->unlink_path);
			free(l->unlink_path);
			l->unlink_path = NULL;
		}
	}
}

void
intake_set_quota(struct intake *in, const struct quota *q)
{
	if (in != NULL && q != NULL)
		in->quota = *q;
}

size_t
intake_sessions(const struct intake *in)
{
	return in != NULL ? in->n_sessions : 0;
}

void
intake_free(struct intake *in)
{
	struct intake_session *s;

	if (in == NULL)
		return;
	intake_close_listeners(in);
	/* Sessions waiting for commit were never answered: drop them. */
	for (s = in->commit_list; s != NULL; s = s->commit_next)
		s->committing = 0;
	in->commit_list = NULL;
	while (in->sessions != NULL)
		intake_session_kill(in->sessions);
	while ((s = in->reap_list) != NULL) {
		in->reap_list = s->reap_next;
		intake_session_free(s);
	}
	if (in->space_cached)
		spool_space_cache(in->sp, 0);
	if (in->turn_ev != NULL)
		event_free(in->turn_ev);
	if (in->reap_ev != NULL)
		event_free(in->reap_ev);
	if (in->resume_ev != NULL)
		event_free(in->resume_ev);
	free(in->listeners);
	free(in);
}
