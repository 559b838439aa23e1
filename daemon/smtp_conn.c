/*
 * smtp_conn.c - one outbound SMTP connection on libevent.
 *
 * How it works: a connection walks the transport states
 *   START -> RESOLVE -> CONNECT -> [TLS] -> SESSION -> (QUIT) -> DEAD
 * START runs from a zero-delay event so that no callback ever fires
 * inside smtp_conn_open().  RESOLVE asks evdns (which answers address
 * literals and /etc/hosts without the network); CONNECT tries each
 * address in turn with a non-blocking connect.  TLS is the handshake
 * (before the greeting for tls = implicit, after the proto raises
 * NEED_TLS for tls = starttls).  In SESSION, smtp_conn_run() moves bytes
 * between the socket (or the TLS session) and the smtp_proto core and
 * turns the core's events into callbacks; it reads one chunk at a time
 * and looks at the events before reading again, so once NEED_TLS is
 * raised not one more cleartext byte is read (the handshake reads what
 * follows as TLS records).  Message bodies are read from the spool fd in
 * SMTP_CONN_BODY_CHUNK pieces only while the proto's pending output is
 * below SMTP_CONN_BODY_LOWAT, so memory stays flat for any size; the
 * read buffer is sized for the message (a body smaller than a chunk
 * takes a buffer its size and a byte) and freed once the body is read,
 * so a connection idle between messages holds none.  The body's size
 * comes from the caller (else fstat()) and is checked as it is read: a
 * small body is one pread() that also sees the end of the file.
 *
 * Timeouts are per phase (Postfix style): c->secs[] from the smarthost's
 * timeout_* keys (0 = the RFC 5321 default), texts in smtp_conn_phases[].
 * The phase timer starts when a phase is entered, when we write (each
 * body write restarts the data-block timer) and when a complete reply
 * moved the protocol on; bytes that do not complete a reply do not
 * restart it, so a reply dripped byte by byte still times out.  The TLS
 * handshake has one timer for the whole handshake, and every wait for
 * readiness during TLS reads and writes runs under the phase timer (no
 * EAGAIN loop without one).  On top, ev_deadline enforces session_max:
 * from the start until READY, and again for each message from
 * smtp_conn_send() until its TXN_DONE.  Every failure (resolve, connect,
 * TLS, timeout, a FAILED event, EOF) ends in smtp_conn_fail() with the
 * fact (smtp_conn_where() says in which phase): on_closed once, then the
 * free is deferred to ev_free, so
 * nothing is freed under a running callback.  smtp_conn_close() never
 * calls back: when idle it sends QUIT and waits briefly for the answer
 * (state QUIT), otherwise it drops the connection; freeing is deferred
 * the same way; an owner that must know when that is done (the stop,
 * which waits for its QUITs) sets smtp_conn_on_gone(), called by the
 * free.  smtp_conn_abort() frees at once, silently (shutdown).  A pending
 * DNS lookup is cancelled at once and its callback argument (a small
 * holder) cut loose, so the connection never waits for the resolver.
 * The AUTH secret is read in smtp_conn_open() (fresh for each connection)
 * and wiped once smtp_proto_new() has copied it; a secret that cannot be
 * read fails the connection before any socket is opened.
 * If the message body cannot be read, or is not the size it had (changed
 * in the queue), the connection is dropped before the final "." so the
 * server discards the partial message.
 * PIPELINING across messages (RFC 2920 3.1): once the final "." of msg
 * is in the proto's output, on_pipeline lets the owner call
 * smtp_conn_send() for the next message, whose MAIL/RCPT/DATA the proto
 * appends right behind the dot (one write when called from the
 * callback).  That message waits in nxt (its fd owned, nothing else)
 * until msg's TXN_DONE, then becomes msg (smtp_conn_promote: its facts,
 * body state and session_max deadline start, the phase is the reply to
 * MAIL).  A failure before that reports msg only; nxt was not delivered.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "authsrc.h"
#include "log.h"
#include "secret.h"
#include "smtp_conn.h"
#include "smtp_proto.h"
#include "tls.h"
#include "util.h"

#define SMTP_CONN_READ_SIZE  4096
#define SMTP_CONN_BODY_CHUNK (64 * 1024)
/* Feed more body only below this much pending output.  With dot-stuffing
 * and CRLF normalisation a chunk at most doubles, so the proto's output
 * never holds more than LOWAT + 2 * CHUNK. */
#define SMTP_CONN_BODY_LOWAT SMTP_PROTO_OUT_WATERMARK
/* SCRAM client nonce: 18 random bytes as 24 base64 characters. */
#define SMTP_CONN_NONCE_RAW 18
#define SMTP_CONN_NONCE_LEN 24
/* RFC 5321 4.5.3.2 defaults (connect and TLS: ours), in seconds. */
#define SMTP_CONN_DEF_CONNECT    30
#define SMTP_CONN_DEF_TLS        60
#define SMTP_CONN_DEF_GREETING   300
#define SMTP_CONN_DEF_COMMAND    300
#define SMTP_CONN_DEF_DATA_BLOCK 180
#define SMTP_CONN_DEF_DATA_END   600
#define SMTP_CONN_DEF_SESSION    1800
#define SMTP_CONN_QUIT_SECS      10

enum smtp_conn_state {
	SMTP_CONN_S_START,
	SMTP_CONN_S_RESOLVE,
	SMTP_CONN_S_CONNECT,
	SMTP_CONN_S_TLS,
	SMTP_CONN_S_SESSION,
	SMTP_CONN_S_QUIT, /* smtp_conn_close(): QUIT, then free */
	SMTP_CONN_S_DEAD, /* waiting for the deferred free */
};

enum smtp_conn_phase {
	SMTP_CONN_PH_NONE,
	SMTP_CONN_PH_RESOLVE,
	SMTP_CONN_PH_CONNECT,
	SMTP_CONN_PH_TLS,
	SMTP_CONN_PH_GREETING,
	SMTP_CONN_PH_REPLY,
	SMTP_CONN_PH_BODY,
	SMTP_CONN_PH_DATA_END,
	SMTP_CONN_PH_IDLE,
	SMTP_CONN_PH_QUIT,
	SMTP_CONN_PH_COUNT
};

/* What we were doing in each phase, as in "timeout after 300s waiting for
 * reply to MAIL from ADDR" (REPLY adds the command); the seconds are per
 * connection (c->secs[], from the config). */
static const char *const smtp_conn_phases[SMTP_CONN_PH_COUNT] = {
	[SMTP_CONN_PH_NONE] = "",
	[SMTP_CONN_PH_RESOLVE] = "resolving",
	[SMTP_CONN_PH_CONNECT] = "connecting to",
	[SMTP_CONN_PH_TLS] = "in the TLS handshake with",
	[SMTP_CONN_PH_GREETING] = "waiting for the greeting from",
	[SMTP_CONN_PH_REPLY] = "waiting for reply to",
	[SMTP_CONN_PH_BODY] = "sending the message body to",
	[SMTP_CONN_PH_DATA_END] = "waiting for reply to end of DATA from",
	[SMTP_CONN_PH_IDLE] = "idle with",
	[SMTP_CONN_PH_QUIT] = "waiting for reply to QUIT from",
};

/* Commands whose name may appear in timeout messages (never arguments:
 * AUTH continuation lines carry secrets). */
static const char *const smtp_conn_verbs[] = {
	"EHLO",
	"HELO",
	"STARTTLS",
	"AUTH",
	"MAIL",
	"RCPT",
	"DATA",
	"BDAT",
	"RSET",
	"NOOP",
	"QUIT",
};

/* The resolver's callback argument: cut loose (c = NULL) when the
 * connection goes away first, so the connection can be freed at once. */
struct smtp_conn_dns {
	struct smtp_conn *c;
};

struct smtp_conn {
	struct event_base         *base;
	struct evdns_base         *dns;
	struct smtp_conn_callbacks cb;
	void                      *arg;

	char                          *name; /* smarthost (logs) */
	char                          *host; /* without [] */
	unsigned                       port;
	enum config_tls                tls_mode;
	struct tls_ctx                *tls_ctx;
	char                          *ehlo_name;
	enum sasl_mech                 auth;
	char                          *auth_user;
	struct secret                 *secret;        /* until smtp_proto_new */
	int                            secret_failed; /* see last_err */
	struct authsrc                *authsrc;       /* NULL: secret_load() */
	const struct config_smarthost *sh;            /* for authsrc_get() */
	struct authsrc_req            *auth_req; /* waiting for the secret */
	int                            auth_refreshable; /* OAuth: may force */
	int                            auth_forced; /* the one forced refresh
						 * was done */

	unsigned      secs[SMTP_CONN_PH_COUNT]; /* 0: none */
	unsigned      session_max;
	struct event *ev_deadline;  /* session_max */
	int           deadline_msg; /* for a message, not
						 * the session set-up */

	enum smtp_conn_state state;
	enum smtp_conn_phase phase;
	char                 verb[12];      /* last command sent */
	int                  at_line_start; /* output boundary */
	int                  user_closed;   /* no more callbacks */

	struct evdns_getaddrinfo_request *dns_req;
	struct smtp_conn_dns             *dns_holder; /* with dns_req */
	struct evutil_addrinfo           *ai;
	struct evutil_addrinfo           *ai_cur;
	char                              addr[64]; /* "127.0.0.1:25" */
	char                              last_err[256];

	int                 fd;
	struct tls_session *tls;
	int                 tls_on; /* transport is TLS */
	int                 read_wants_write;
	int                 read_dry; /* the last plain recv() was short:
				       * the socket was empty then */
	int                 write_wants_read;
	struct event       *ev_read;
	struct event       *ev_write;
	struct event       *ev_timer;
	struct event       *ev_pump;
	struct event       *ev_free;

	struct smtp_proto *proto;
	int                ready; /* idle after READY */

	int                      msg_active;
	struct smtp_conn_message msg;
	struct retry_fact       *rcpt_fact;  /* per recipient */
	char                   **rcpt_reply; /* per recipient, or NULL */
	off_t                    body_off;
	int                      body_done;
	char                    *body_buf; /* body_cap bytes, or NULL */
	size_t                   body_cap;

	/* The message pipelined behind msg (RFC 2920 3.1): its commands
	 * follow msg's final dot; it becomes msg at msg's TXN_DONE. */
	int                      nxt_active;
	struct smtp_conn_message nxt;
	size_t                   nxt_cap; /* its body_cap */

	/* smtp_conn_on_gone(): told once c is freed (not after abort). */
	void (*gone)(struct smtp_conn *, void *);
	void *gone_arg;

	char rbuf[SMTP_CONN_READ_SIZE];
};

static void smtp_conn_run(struct smtp_conn *);
static void smtp_conn_fail(struct smtp_conn *, enum retry_event, const char *,
    ...) SQ_PRINTF(3, 4);
static void smtp_conn_fail_fact(struct smtp_conn *, const struct retry_fact *,
    const char *, ...) SQ_PRINTF(3, 4);
static enum retry_phase smtp_conn_where(const struct smtp_conn *);
static void
smtp_conn_fail_held(struct smtp_conn *, const char *, ...) SQ_PRINTF(2, 3);
static int  smtp_conn_auth_retry(struct smtp_conn *, const char *);
static void smtp_conn_resolve(struct smtp_conn *);

static int
smtp_conn_alive(const struct smtp_conn *c)
{
	return c->state == SMTP_CONN_S_SESSION || c->state == SMTP_CONN_S_QUIT;
}

static void
smtp_conn_arm(struct smtp_conn *c)
{
	struct timeval tv;

	if (c->state == SMTP_CONN_S_DEAD || c->secs[c->phase] == 0) {
		evtimer_del(c->ev_timer);
		return;
	}
	tv.tv_sec = (time_t)c->secs[c->phase];
	tv.tv_usec = 0;
	evtimer_add(c->ev_timer, &tv);
}

static void
smtp_conn_set_phase(struct smtp_conn *c, enum smtp_conn_phase ph)
{
	c->phase = ph;
	smtp_conn_arm(c);
}

/* session_max: start the deadline for the session set-up (msg = 0) or
 * for one message (msg = 1); a running one is restarted. */
static void
smtp_conn_deadline_start(struct smtp_conn *c, int msg)
{
	struct timeval tv;

	c->deadline_msg = msg;
	tv.tv_sec = (time_t)c->session_max;
	tv.tv_usec = 0;
	evtimer_add(c->ev_deadline, &tv);
}

static void
smtp_conn_deadline_stop(struct smtp_conn *c)
{
	evtimer_del(c->ev_deadline);
}

static void
smtp_conn_want(struct smtp_conn *c, int rd, int wr)
{
	if (c->ev_read == NULL)
		return;
	if (rd)
		event_add(c->ev_read, NULL);
	else
		event_del(c->ev_read);
	if (wr)
		event_add(c->ev_write, NULL);
	else
		event_del(c->ev_write);
}

/* Cancel a pending lookup now, while the evdns base surely exists; its
 * callback (EVUTIL_EAI_CANCEL, later) then only frees the holder. */
static void
smtp_conn_dns_cancel(struct smtp_conn *c)
{
	struct evdns_getaddrinfo_request *req = c->dns_req;

	if (req == NULL)
		return;
	c->dns_holder->c = NULL;
	c->dns_holder = NULL;
	c->dns_req = NULL;
	evdns_getaddrinfo_cancel(req);
}

/* Stop all I/O and schedule the free; no callback from here. */
static void
smtp_conn_kill(struct smtp_conn *c)
{
	if (c->state == SMTP_CONN_S_DEAD)
		return;
	c->state = SMTP_CONN_S_DEAD;
	c->phase = SMTP_CONN_PH_NONE;
	smtp_conn_dns_cancel(c);
	authsrc_cancel(c->auth_req);
	c->auth_req = NULL;
	smtp_conn_want(c, 0, 0);
	evtimer_del(c->ev_timer);
	evtimer_del(c->ev_deadline);
	event_del(c->ev_pump);
	event_active(c->ev_free, EV_TIMEOUT, 1);
}

static void
smtp_conn_result_init(struct smtp_conn *c, struct smtp_conn_result *r,
    const struct retry_fact *fact, const char *text)
{
	memset(r, 0, sizeof(*r));
	r->fact = *fact;
	sq_printable(r->reply, sizeof(r->reply), text, strlen(text));
	snprintf(r->tls, sizeof(r->tls), "%s", tls_describe(c->tls));
	snprintf(r->verify, sizeof(r->verify), "%s", tls_verify_result(c->tls));
}

/* The connection failed with fact f: on_closed once, then free.  A
 * message in flight reports its recipients' RCPT facts too.  held: the
 * OAuth grant is refused (auth_held; f is then only for logs). */
static void SQ_PRINTF(4, 0) smtp_conn_fail_v(struct smtp_conn *c,
    const struct retry_fact *f, int held, const char *fmt, va_list ap)
{
	struct smtp_conn_result r;
	char                    text[512];

	if (c->state == SMTP_CONN_S_DEAD)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	smtp_conn_result_init(c, &r, f, text);
	r.auth_held = held;
	if (c->msg_active && c->rcpt_fact != NULL) {
		r.rcpt = c->rcpt_fact;
		r.rcpt_reply = (const char *const *)c->rcpt_reply;
		r.n_rcpts = c->msg.n_rcpts;
	}
	if (c->state == SMTP_CONN_S_QUIT || c->user_closed) {
		log_debug("relay=%s closed after QUIT: %s", c->name, r.reply);
		smtp_conn_kill(c);
		return;
	}
	log_debug("relay=%s addr=%s failed: %s tls=%s verify=%s%s%s", c->name,
	    c->addr[0] != '\0' ? c->addr : "-", r.reply, r.tls, r.verify,
	    c->msg_active ? " msgid=" : "", c->msg_active ? c->msg.id : "");
	smtp_conn_kill(c);
	if (c->cb.on_closed != NULL)
		c->cb.on_closed(c, &r, c->arg);
}

/* A failure without a server reply: event ev where the connection is. */
static void
smtp_conn_fail(struct smtp_conn *c, enum retry_event ev, const char *fmt, ...)
{
	struct retry_fact f;
	va_list           ap;

	memset(&f, 0, sizeof(f));
	f.phase = smtp_conn_where(c);
	f.event = ev;
	va_start(ap, fmt);
	smtp_conn_fail_v(c, &f, 0, fmt, ap);
	va_end(ap);
}

static void
smtp_conn_fail_fact(struct smtp_conn *c, const struct retry_fact *f,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_conn_fail_v(c, f, 0, fmt, ap);
	va_end(ap);
}

/* The OAuth grant of the smarthost is refused (authsrc HELD): not a fact
 * for retry.c but a state of the relay (auth_held). */
static void
smtp_conn_fail_held(struct smtp_conn *c, const char *fmt, ...)
{
	struct retry_fact f;
	va_list           ap;

	memset(&f, 0, sizeof(f));
	f.phase = RETRY_PHASE_AUTH;
	f.event = RETRY_EVENT_CREDENTIALS;
	va_start(ap, fmt);
	smtp_conn_fail_v(c, &f, 1, fmt, ap);
	va_end(ap);
}

static void
smtp_conn_free_rcpt_replies(struct smtp_conn *c)
{
	size_t i;

	if (c->rcpt_reply != NULL)
		for (i = 0; i < c->msg.n_rcpts; i++)
			free(c->rcpt_reply[i]);
	free(c->rcpt_reply);
	c->rcpt_reply = NULL;
}

/* Free everything now (never from inside a callback of c). */
static void
smtp_conn_destroy(struct smtp_conn *c)
{
	smtp_conn_dns_cancel(c);
	authsrc_cancel(c->auth_req);
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	event_free(c->ev_timer);
	event_free(c->ev_deadline);
	event_free(c->ev_pump);
	tls_session_free(c->tls);
	secret_free(c->secret);
	if (c->fd != -1)
		close(c->fd);
	smtp_proto_free(c->proto);
	if (c->ai != NULL)
		evutil_freeaddrinfo(c->ai);
	if (c->msg_active && c->msg.body_fd != -1)
		close(c->msg.body_fd);
	if (c->nxt_active && c->nxt.body_fd != -1)
		close(c->nxt.body_fd);
	free(c->rcpt_fact);
	smtp_conn_free_rcpt_replies(c);
	free(c->body_buf);
	free(c->name);
	free(c->host);
	free(c->ehlo_name);
	free(c->auth_user);
	event_free(c->ev_free);
	if (c->gone != NULL)
		c->gone(c, c->gone_arg);
	free(c);
}

static void
smtp_conn_on_free(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	/* Our own event, no longer pending: freeing it here is allowed. */
	smtp_conn_destroy(arg);
}

/* --- transport ---------------------------------------------------- */

static void
smtp_conn_close_fd(struct smtp_conn *c)
{
	if (c->ev_read != NULL) {
		event_free(c->ev_read);
		event_free(c->ev_write);
		c->ev_read = c->ev_write = NULL;
	}
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
}

static int
smtp_conn_addr_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in  *sin;
	const struct sockaddr_in6 *sin6;

	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
		    sin6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

static void smtp_conn_on_io(evutil_socket_t, short, void *);
static void smtp_conn_tls_step(struct smtp_conn *);

static void
smtp_conn_tls_start(struct smtp_conn *c)
{
	struct sq_err err = { 0, "" };

	if (c->tls_ctx == NULL) {
		smtp_conn_fail(c, RETRY_EVENT_LOCAL,
		    "no TLS context for relay %s (bug)", c->name);
		return;
	}
	if (tls_session_new(c->tls_ctx, c->fd, &c->tls, &err) < 0) {
		smtp_conn_fail(c, RETRY_EVENT_TLS, "%s", err.msg);
		return;
	}
	c->state = SMTP_CONN_S_TLS;
	smtp_conn_set_phase(c, SMTP_CONN_PH_TLS);
	smtp_conn_tls_step(c);
}

static void
smtp_conn_tls_step(struct smtp_conn *c)
{
	struct sq_err err = { 0, "" };

	switch (tls_handshake(c->tls, &err)) {
	case TLS_WANT_READ:
		smtp_conn_want(c, 1, 0);
		return;
	case TLS_WANT_WRITE:
		smtp_conn_want(c, 0, 1);
		return;
	case TLS_DONE:
		break;
	case TLS_EOF:
	case TLS_ERROR:
	default:
		if (c->tls_mode == CONFIG_TLS_STARTTLS)
			smtp_proto_tls_done(c->proto, 0);
		smtp_conn_fail(c, RETRY_EVENT_TLS, "%s",
		    err.msg[0] != '\0' ? err.msg : "TLS handshake failed");
		return;
	}
	c->tls_on = 1;
	log_debug("relay=%s addr=%s tls=\"%s\" verify=\"%s\"", c->name, c->addr,
	    tls_describe(c->tls), tls_verify_result(c->tls));
	c->state = SMTP_CONN_S_SESSION;
	if (c->tls_mode == CONFIG_TLS_STARTTLS) {
		smtp_proto_tls_done(c->proto, 1);
		smtp_conn_set_phase(c, SMTP_CONN_PH_REPLY);
	} else
		smtp_conn_set_phase(c, SMTP_CONN_PH_GREETING);
	smtp_conn_run(c);
}

/* A SCRAM client nonce: random, printable, without ','.  Not a secret,
 * so GnuTLS's base64 encoder (18 bytes: 24 characters, no padding). */
static void
smtp_conn_nonce(char out[SMTP_CONN_NONCE_LEN + 1])
{
	unsigned char  raw[SMTP_CONN_NONCE_RAW];
	gnutls_datum_t in = { raw, sizeof(raw) }, b64 = { NULL, 0 };

	if (gnutls_rnd(GNUTLS_RND_NONCE, raw, sizeof(raw)) != 0)
		log_fatalx("smtp_conn: gnutls_rnd failed");
	if (gnutls_base64_encode2(&in, &b64) < 0 ||
	    b64.size < SMTP_CONN_NONCE_LEN)
		log_fatalx("smtp_conn: gnutls_base64_encode2 failed");
	memcpy(out, b64.data, SMTP_CONN_NONCE_LEN);
	out[SMTP_CONN_NONCE_LEN] = '\0';
	gnutls_free(b64.data);
}

static void
smtp_conn_connected(struct smtp_conn *c)
{
	struct smtp_proto_params pp;
	char                     nonce[SMTP_CONN_NONCE_LEN + 1];
	int                      loopback;

	loopback = smtp_conn_addr_is_loopback(c->ai_cur->ai_addr);
	if (c->tls_mode == CONFIG_TLS_NONE && !loopback) {
		smtp_conn_fail(c, RETRY_EVENT_TLS,
		    "refusing cleartext SMTP to %s: tls = none is only allowed "
		    "to a loopback address",
		    c->addr);
		return;
	}
	log_debug("relay=%s connected to %s", c->name, c->addr);
	memset(&pp, 0, sizeof(pp));
	pp.ehlo_name = c->ehlo_name;
	pp.peer_is_loopback = loopback;
	switch (c->tls_mode) {
	case CONFIG_TLS_IMPLICIT:
		pp.tls = SMTP_PROTO_TLS_IMPLICIT;
		break;
	case CONFIG_TLS_STARTTLS:
		pp.tls = SMTP_PROTO_TLS_STARTTLS;
		break;
	case CONFIG_TLS_NONE:
	default:
		pp.tls = SMTP_PROTO_TLS_NONE;
		break;
	}
	pp.pipelining = 1;
	pp.auth = SASL_MECH_NONE;
	if (c->auth != SASL_MECH_NONE && c->secret != NULL) {
		smtp_conn_nonce(nonce);
		pp.auth = c->auth;
		pp.auth_user = c->auth_user != NULL ? c->auth_user : "";
		pp.auth_secret = c->secret->data;
		pp.auth_nonce = nonce;
	}
	c->proto = smtp_proto_new(&pp);
	/* The proto has its own copy: wipe ours now. */
	secret_free(c->secret);
	c->secret = NULL;
	c->at_line_start = 1;
	if (c->tls_mode == CONFIG_TLS_IMPLICIT) {
		smtp_conn_tls_start(c);
		return;
	}
	c->state = SMTP_CONN_S_SESSION;
	smtp_conn_set_phase(c, SMTP_CONN_PH_GREETING);
	smtp_conn_run(c);
}

static void
smtp_conn_format_addr(struct smtp_conn *c, const struct sockaddr *sa)
{
	char        ip[INET6_ADDRSTRLEN];
	const void *a;

	if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	else
		a = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	if (inet_ntop(sa->sa_family, a, ip, sizeof(ip)) == NULL)
		snprintf(ip, sizeof(ip), "?");
	if (sa->sa_family == AF_INET6)
		snprintf(c->addr, sizeof(c->addr), "[%s]:%u", ip, c->port);
	else
		snprintf(c->addr, sizeof(c->addr), "%s:%u", ip, c->port);
}

/* Start connecting to the current address or the next one that works;
 * fails the connection with the last error when none is left. */
static void
smtp_conn_connect_next(struct smtp_conn *c)
{
	struct sockaddr_storage ss;
	struct evutil_addrinfo *ai;
	int                     fd, one = 1;

	for (; (ai = c->ai_cur) != NULL; c->ai_cur = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(ss))
			continue;
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)(void *)&ss)->sin_port = htons(
			    (uint16_t)c->port);
		else
			((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons(
			    (uint16_t)c->port);
		memcpy(ai->ai_addr, &ss, ai->ai_addrlen);
		smtp_conn_format_addr(c, ai->ai_addr);
		fd = socket(ai->ai_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd == -1) {
			snprintf(c->last_err, sizeof(c->last_err),
			    "connect to %s: socket: %s", c->addr,
			    strerror(errno));
			continue;
		}
		/* No Nagle: every flight is one write already, and a second
		 * small write behind an unacknowledged one (the TLS Finished,
		 * then EHLO) waited for the peer's delayed ACK: 40 ms on the
		 * first message of each new connection. */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1 &&
		    errno != EINPROGRESS) {
			snprintf(c->last_err, sizeof(c->last_err),
			    "connect to %s: %s", c->addr, strerror(errno));
			log_debug("relay=%s %s", c->name, c->last_err);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->ev_read = event_new(c->base, fd, EV_READ | EV_PERSIST,
		    smtp_conn_on_io, c);
		c->ev_write = event_new(c->base, fd, EV_WRITE | EV_PERSIST,
		    smtp_conn_on_io, c);
		if (c->ev_read == NULL || c->ev_write == NULL)
			log_fatalx("smtp_conn: event_new failed");
		c->state = SMTP_CONN_S_CONNECT;
		smtp_conn_set_phase(c, SMTP_CONN_PH_CONNECT);
		smtp_conn_want(c, 0, 1);
		return;
	}
	smtp_conn_fail(c, RETRY_EVENT_NETWORK, "%s",
	    c->last_err[0] != '\0' ? c->last_err : "no usable address");
}

static void
smtp_conn_connect_done(struct smtp_conn *c)
{
	socklen_t len = sizeof(int);
	int       soerr = 0;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		soerr = errno;
	if (soerr == EINPROGRESS)
		return;
	if (soerr != 0) {
		snprintf(c->last_err, sizeof(c->last_err), "connect to %s: %s",
		    c->addr, strerror(soerr));
		log_debug("relay=%s %s", c->name, c->last_err);
		smtp_conn_close_fd(c);
		c->ai_cur = c->ai_cur->ai_next;
		smtp_conn_connect_next(c);
		return;
	}
	smtp_conn_want(c, 0, 0);
	smtp_conn_connected(c);
}

static void
smtp_conn_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct smtp_conn_dns *holder = arg;
	struct smtp_conn     *c = holder->c;

	free(holder);
	if (c == NULL || c->state == SMTP_CONN_S_DEAD) {
		/* Cancelled: the connection is gone or going. */
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	c->dns_req = NULL;
	c->dns_holder = NULL;
	if (result != 0 || res == NULL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		smtp_conn_fail(c, RETRY_EVENT_NETWORK, "cannot resolve %s: %s",
		    c->host,
		    result != 0 ? evutil_gai_strerror(result) : "no address");
		return;
	}
	c->ai = c->ai_cur = res;
	smtp_conn_connect_next(c);
}

static void
smtp_conn_resolve(struct smtp_conn *c)
{
	struct evutil_addrinfo            hints, *res = NULL;
	struct evdns_getaddrinfo_request *req;
	struct smtp_conn_dns             *holder;
	int                               ret;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	c->state = SMTP_CONN_S_RESOLVE;
	smtp_conn_set_phase(c, SMTP_CONN_PH_RESOLVE);
	if (c->dns == NULL) {
		/* No resolver: address literals only (never blocks). */
		hints.ai_flags = EVUTIL_AI_NUMERICHOST;
		ret = evutil_getaddrinfo(c->host, NULL, &hints, &res);
		holder = xmalloc(sizeof(*holder));
		holder->c = c;
		smtp_conn_on_resolved(ret, res, holder);
		return;
	}
	holder = xmalloc(sizeof(*holder));
	holder->c = c;
	/* Calls back before returning, and returns NULL, for literals and
	 * /etc/hosts names; holder is then already freed. */
	req = evdns_getaddrinfo(c->dns, c->host, NULL, &hints,
	    smtp_conn_on_resolved, holder);
	if (req != NULL) {
		c->dns_req = req;
		c->dns_holder = holder;
	}
}

/* --- session ------------------------------------------------------ */

/* Remember the first command verb in the bytes about to be written, for
 * timeout messages; only known verbs, never arguments. */
static void
smtp_conn_note_verb(struct smtp_conn *c, const char *data, size_t len)
{
	char   word[12];
	size_t i, n;

	if (!c->at_line_start || c->phase == SMTP_CONN_PH_BODY ||
	    c->phase == SMTP_CONN_PH_DATA_END || c->phase == SMTP_CONN_PH_QUIT)
		return;
	for (n = 0; n < len && n < sizeof(word) - 1 &&
	     ((data[n] >= 'A' && data[n] <= 'Z') ||
		 (data[n] >= 'a' && data[n] <= 'z'));
	     n++)
		word[n] = data[n];
	word[n] = '\0';
	for (i = 0; i < sizeof(smtp_conn_verbs) / sizeof(smtp_conn_verbs[0]);
	     i++) {
		if (strcasecmp(word, smtp_conn_verbs[i]) == 0) {
			snprintf(c->verb, sizeof(c->verb), "%s",
			    smtp_conn_verbs[i]);
			log_debug("relay=%s >>> %s", c->name, c->verb);
			break;
		}
	}
	if (c->phase != SMTP_CONN_PH_REPLY)
		smtp_conn_set_phase(c, SMTP_CONN_PH_REPLY);
}

/* Write pending proto output.  Returns 1 on progress, 0 when blocked or
 * nothing to do, -1 when the connection failed. */
static int
smtp_conn_write(struct smtp_conn *c)
{
	struct sq_err err = { 0, "" };
	const void   *data;
	size_t        len, n = 0;
	ssize_t       ret;

	smtp_proto_output(c->proto, &data, &len);
	if (len == 0)
		return 0;
	smtp_conn_note_verb(c, data, len);
	c->write_wants_read = 0;
	if (c->tls_on) {
		switch (tls_write(c->tls, data, len, &n, &err)) {
		case TLS_DONE:
			break;
		case TLS_WANT_READ:
			c->write_wants_read = 1;
			return 0;
		case TLS_WANT_WRITE:
			return 0;
		case TLS_EOF:
		case TLS_ERROR:
		default:
			smtp_conn_fail(c, RETRY_EVENT_NETWORK,
			    "write to %s: %s", c->addr, err.msg);
			return -1;
		}
	} else {
		ret = send(c->fd, data, len, MSG_NOSIGNAL);
		if (ret == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			smtp_conn_fail(c, RETRY_EVENT_NETWORK,
			    "write to %s: %s", c->addr, strerror(errno));
			return -1;
		}
		n = (size_t)ret;
	}
	if (n == 0)
		return 0;
	c->at_line_start = ((const char *)data)[n - 1] == '\n';
	smtp_proto_consumed(c->proto, n);
	if (c->phase == SMTP_CONN_PH_BODY && c->body_done &&
	    smtp_proto_output_pending(c->proto) == 0)
		/* The final "." is out: now the verdict's timer. */
		smtp_conn_set_phase(c, SMTP_CONN_PH_DATA_END);
	else
		smtp_conn_arm(c);
	return 1;
}

/* Read one chunk into the proto.  Returns 1 on progress, 0 when blocked,
 * -1 when the connection is gone (failed, or EOF handled). */
static int
smtp_conn_read(struct smtp_conn *c)
{
	struct sq_err err = { 0, "" };
	const char   *state;
	size_t        n = 0;
	ssize_t       ret;

	c->read_wants_write = 0;
	c->read_dry = 0; /* over TLS: tls.c's read-ahead knows */
	if (c->tls_on) {
		switch (tls_read(c->tls, c->rbuf, sizeof(c->rbuf), &n, &err)) {
		case TLS_DONE:
			break;
		case TLS_WANT_WRITE:
			c->read_wants_write = 1;
			return 0;
		case TLS_WANT_READ:
			return 0;
		case TLS_EOF:
			goto eof;
		case TLS_ERROR:
		default:
			smtp_conn_fail(c, RETRY_EVENT_NETWORK,
			    "read from %s: %s", c->addr, err.msg);
			return -1;
		}
	} else {
		ret = recv(c->fd, c->rbuf, sizeof(c->rbuf), 0);
		if (ret == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			smtp_conn_fail(c, RETRY_EVENT_NETWORK,
			    "read from %s: %s", c->addr, strerror(errno));
			return -1;
		}
		if (ret == 0)
			goto eof;
		n = (size_t)ret;
		c->read_dry = n < sizeof(c->rbuf);
	}
	/* Restart the phase timer only when a complete reply moved the
	 * session on: a reply dripped byte by byte still times out. */
	state = smtp_proto_state_name(c->proto);
	smtp_proto_feed(c->proto, c->rbuf, n);
	if (smtp_proto_state_name(c->proto) != state)
		smtp_conn_arm(c);
	return 1;
eof:
	/* The proto turns EOF into FAILED or CLOSED; events follow. */
	smtp_proto_eof(c->proto);
	return 2;
}

/* snprintf that may truncate on purpose (texts are bounded). */
static void
    SQ_PRINTF(3, 4) smtp_conn_fmt(char *dst, size_t dstsz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, dstsz, fmt, ap);
	va_end(ap);
}

/* A server reply as one line: "250 2.0.0 Ok", or our own note. */
static void
smtp_conn_reply_text(const struct smtp_proto_reply *r, char *dst, size_t dstsz)
{
	if (r->code != 0)
		smtp_conn_fmt(dst, dstsz, "%03d %s", r->code, r->text);
	else
		smtp_conn_fmt(dst, dstsz, "%s", r->text);
}

static void
smtp_conn_failed_text(struct smtp_conn *c, const struct smtp_proto_event *ev,
    char *dst, size_t dstsz)
{
	char t[sizeof(ev->reply.text) + 8];

	smtp_conn_reply_text(&ev->reply, t, sizeof(t));

	switch (ev->fail) {
	case SMTP_PROTO_FAIL_TLS:
		if (ev->reply.code == 0 || ev->reply.code / 100 == 2)
			smtp_conn_fmt(dst, dstsz,
			    "STARTTLS not offered by server: refusing to send "
			    "mail in cleartext (tls = starttls)");
		else
			smtp_conn_fmt(dst, dstsz,
			    "STARTTLS failed: %s (tls = starttls: no cleartext "
			    "fallback)",
			    t);
		break;
	case SMTP_PROTO_FAIL_PROTO:
		smtp_conn_fmt(dst, dstsz, "protocol error from %s %s%s: %s",
		    c->addr, c->verb[0] != '\0' ? "after " : "in the greeting",
		    c->verb, t[0] != '\0' ? t : "malformed reply");
		break;
	case SMTP_PROTO_FAIL_CONN:
		if (ev->reply.code != 0)
			smtp_conn_fmt(dst, dstsz, "%s", t);
		else if (c->verb[0] != '\0')
			smtp_conn_fmt(dst, dstsz,
			    "connection closed by %s (last command %s)",
			    c->addr, c->verb);
		else
			smtp_conn_fmt(dst, dstsz,
			    "connection closed by %s before the greeting",
			    c->addr);
		break;
	case SMTP_PROTO_FAIL_AUTH:
		smtp_conn_fmt(dst, dstsz,
		    "authentication with %s failed: %s (check user and secret "
		    "of this smarthost)",
		    c->addr, t[0] != '\0' ? t : "no reply");
		break;
	case SMTP_PROTO_FAIL_RESP:
	case SMTP_PROTO_FAIL_NONE:
	default:
		if (t[0] != '\0')
			smtp_conn_fmt(dst, dstsz, "%s", t);
		else
			smtp_conn_fmt(dst, dstsz, "session failed (state %s)",
			    smtp_proto_state_name(c->proto));
		break;
	}
}

/* The retry_phase of each proto step (a translation, not a decision). */
static const enum retry_phase smtp_conn_step_phase[] = {
	[SMTP_PROTO_STEP_GREETING] = RETRY_PHASE_GREETING,
	[SMTP_PROTO_STEP_EHLO] = RETRY_PHASE_EHLO,
	[SMTP_PROTO_STEP_STARTTLS] = RETRY_PHASE_STARTTLS,
	[SMTP_PROTO_STEP_TLS] = RETRY_PHASE_TLS,
	[SMTP_PROTO_STEP_AUTH] = RETRY_PHASE_AUTH,
	[SMTP_PROTO_STEP_MAIL] = RETRY_PHASE_MAIL,
	[SMTP_PROTO_STEP_RCPT] = RETRY_PHASE_RCPT,
	[SMTP_PROTO_STEP_DATA] = RETRY_PHASE_DATA,
	[SMTP_PROTO_STEP_BODY] = RETRY_PHASE_BODY,
	[SMTP_PROTO_STEP_END] = RETRY_PHASE_END,
	[SMTP_PROTO_STEP_IDLE] = RETRY_PHASE_IDLE,
};

static enum retry_phase
smtp_conn_step(enum smtp_proto_step st)
{
	if ((size_t)st >=
	    sizeof(smtp_conn_step_phase) / sizeof(smtp_conn_step_phase[0]))
		return RETRY_PHASE_IDLE;
	return smtp_conn_step_phase[st];
}

/* Where the connection is, for a failure without a reply. */
static enum retry_phase
smtp_conn_where(const struct smtp_conn *c)
{
	switch (c->phase) {
	case SMTP_CONN_PH_NONE:
	case SMTP_CONN_PH_RESOLVE:
	case SMTP_CONN_PH_CONNECT:
		return RETRY_PHASE_CONNECT;
	case SMTP_CONN_PH_TLS:
		return RETRY_PHASE_TLS;
	case SMTP_CONN_PH_GREETING:
		return RETRY_PHASE_GREETING;
	case SMTP_CONN_PH_BODY:
		return RETRY_PHASE_BODY;
	case SMTP_CONN_PH_DATA_END:
		return RETRY_PHASE_END;
	case SMTP_CONN_PH_REPLY:
	case SMTP_CONN_PH_IDLE:
	case SMTP_CONN_PH_QUIT:
	case SMTP_CONN_PH_COUNT:
	default:
		return c->proto != NULL ?
		    smtp_conn_step(smtp_proto_step(c->proto)) :
		    RETRY_PHASE_CONNECT;
	}
}

/* A proto event's reply as a fact of kind ev. */
static void
smtp_conn_fact(struct retry_fact *f, const struct smtp_proto_event *pe,
    enum retry_event ev)
{
	memset(f, 0, sizeof(*f));
	f->phase = smtp_conn_step(pe->step);
	f->event = ev;
	f->code = pe->reply.code;
	snprintf(f->enhanced, sizeof(f->enhanced), "%s", pe->reply.enhanced);
}

/* What kind of fact a FAILED event is: the server's reply, or the
 * proto's own finding. */
static enum retry_event
smtp_conn_fail_event(const struct smtp_proto_event *pe)
{
	switch (pe->fail) {
	case SMTP_PROTO_FAIL_CONN:
		return RETRY_EVENT_NETWORK;
	case SMTP_PROTO_FAIL_PROTO:
		return RETRY_EVENT_PROTO;
	case SMTP_PROTO_FAIL_TLS:
		return RETRY_EVENT_TLS;
	case SMTP_PROTO_FAIL_AUTH:
		return pe->reply.local || pe->reply.code == 0 ?
		    RETRY_EVENT_CREDENTIALS :
		    RETRY_EVENT_REPLY;
	case SMTP_PROTO_FAIL_RESP:
	case SMTP_PROTO_FAIL_NONE:
	default:
		return pe->reply.code != 0 ? RETRY_EVENT_REPLY :
					     RETRY_EVENT_PROTO;
	}
}

static void
smtp_conn_msg_end(struct smtp_conn *c)
{
	if (c->msg.body_fd != -1)
		close(c->msg.body_fd);
	c->msg.body_fd = -1;
	c->msg_active = 0;
	free(c->rcpt_fact);
	c->rcpt_fact = NULL;
	smtp_conn_free_rcpt_replies(c);
}

/* The read buffer for a body of size bytes: one read takes a small body
 * whole and sees its end (a byte more is asked for). */
static size_t
smtp_conn_body_cap(uint64_t size)
{
	return size < SMTP_CONN_BODY_CHUNK ? (size_t)size + 1 :
					     SMTP_CONN_BODY_CHUNK;
}

/* The current message's state for msg (the fd is now the connection's). */
static void
smtp_conn_msg_start(struct smtp_conn *c, const struct smtp_conn_message *msg,
    size_t cap)
{
	c->msg = *msg;
	c->msg_active = 1;
	c->rcpt_fact = xcalloc(msg->n_rcpts, sizeof(*c->rcpt_fact));
	c->rcpt_reply = xcalloc(msg->n_rcpts, sizeof(char *));
	c->body_off = 0;
	c->body_done = 0;
	free(c->body_buf);
	c->body_buf = NULL;
	c->body_cap = cap;
	smtp_conn_deadline_start(c, 1);
}

/* The pipelined message is next: its MAIL's reply is awaited now. */
static void
smtp_conn_promote(struct smtp_conn *c)
{
	if (!c->nxt_active || !smtp_conn_alive(c))
		return;
	c->nxt_active = 0;
	smtp_conn_msg_start(c, &c->nxt, c->nxt_cap);
	c->nxt.body_fd = -1;
	snprintf(c->verb, sizeof(c->verb), "MAIL");
	smtp_conn_set_phase(c, SMTP_CONN_PH_REPLY);
}

static void
smtp_conn_on_txn_done(struct smtp_conn *c, const struct smtp_proto_event *ev)
{
	struct smtp_conn_result r;
	struct retry_fact       f;
	char                    text[sizeof(ev->reply.text) + 8];

	if (!c->msg_active) {
		smtp_conn_fail(c, RETRY_EVENT_LOCAL,
		    "transaction end without a message (bug)");
		return;
	}
	smtp_conn_reply_text(&ev->reply, text, sizeof(text));
	smtp_conn_deadline_stop(c);
	smtp_conn_fact(&f, ev,
	    ev->reply.local ? RETRY_EVENT_VERDICT : RETRY_EVENT_REPLY);
	smtp_conn_result_init(c, &r, &f, text);
	r.rcpt = c->rcpt_fact;
	r.rcpt_reply = (const char *const *)c->rcpt_reply;
	r.n_rcpts = c->msg.n_rcpts;
	log_debug("relay=%s msgid=%s <<< %s", c->name, c->msg.id, r.reply);
	/* The fd is closed now; rcpt_fact lives through the callback. */
	if (c->msg.body_fd != -1)
		close(c->msg.body_fd);
	c->msg.body_fd = -1;
	c->msg_active = 0;
	smtp_conn_set_phase(c, SMTP_CONN_PH_IDLE);
	if (!c->user_closed && c->cb.on_message_done != NULL)
		c->cb.on_message_done(c, &r, c->arg);
	smtp_conn_msg_end(c);
	smtp_conn_promote(c);
}

/*
 * The message holds what must never reach a server (a NUL, a line over
 * 998 octets: a spool file from before intake checked, or damaged).  It
 * fails permanently (its sender gets a bounce saying why) and the
 * connection is dropped without the final dot, so the server discards
 * the partial message; on_closed follows with no message active.
 */
static void
smtp_conn_body_refused(struct smtp_conn *c, const struct smtp_proto_event *ev)
{
	struct smtp_conn_result r;
	struct retry_fact       f;

	smtp_conn_deadline_stop(c);
	memset(&f, 0, sizeof(f));
	f.phase = RETRY_PHASE_BODY;
	f.event = RETRY_EVENT_VERDICT;
	f.code = 554;
	snprintf(f.enhanced, sizeof(f.enhanced), "5.6.0");
	smtp_conn_result_init(c, &r, &f, ev->reply.text);
	r.rcpt = c->rcpt_fact;
	r.rcpt_reply = (const char *const *)c->rcpt_reply;
	r.n_rcpts = c->msg.n_rcpts;
	log_warn("relay=%s msgid=%s result=failed: %s (connection dropped so "
		 "the server discards the partial message)",
	    c->name, c->msg.id, r.reply);
	if (c->msg.body_fd != -1)
		close(c->msg.body_fd);
	c->msg.body_fd = -1;
	c->msg_active = 0;
	if (!c->user_closed && c->cb.on_message_done != NULL)
		c->cb.on_message_done(c, &r, c->arg);
	smtp_conn_msg_end(c);
	smtp_conn_fail(c, RETRY_EVENT_LOCAL,
	    "connection dropped to abort a message that cannot be sent");
}

static void
smtp_conn_on_need_tls(struct smtp_conn *c)
{
	if (c->tls_mode != CONFIG_TLS_STARTTLS || c->tls_on) {
		smtp_conn_fail(c, RETRY_EVENT_LOCAL,
		    "unexpected STARTTLS step (bug)");
		return;
	}
	/* Nothing should be pending; flush what is, never read. */
	while (smtp_proto_output_pending(c->proto) > 0)
		if (smtp_conn_write(c) <= 0)
			break;
	if (c->state != SMTP_CONN_S_SESSION)
		return;
	if (smtp_proto_output_pending(c->proto) > 0) {
		smtp_conn_fail(c, RETRY_EVENT_LOCAL,
		    "cannot flush output before STARTTLS");
		return;
	}
	smtp_conn_tls_start(c);
}

/* Pop and act on every proto event.  Returns 0 when the session is over
 * (or left SESSION/QUIT, e.g. for the STARTTLS handshake).  Over 80 lines
 * on purpose: the one event switch, every event's reaction side by side
 * (and the pipelining work changes it; split it after that). */
static int
smtp_conn_events(struct smtp_conn *c)
{
	struct smtp_proto_event ev;
	struct retry_fact       f;
	char                    text[512];

	while (smtp_conn_alive(c) && smtp_proto_next_event(c->proto, &ev)) {
		switch (ev.type) {
		case SMTP_PROTO_EV_NEED_TLS:
			if (c->state == SMTP_CONN_S_QUIT) {
				smtp_conn_kill(c);
				break;
			}
			smtp_conn_on_need_tls(c);
			return 0;
		case SMTP_PROTO_EV_READY:
			c->ready = 1;
			if (!c->msg_active)
				smtp_conn_deadline_stop(c);
			smtp_conn_set_phase(c,
			    c->state == SMTP_CONN_S_QUIT ? SMTP_CONN_PH_QUIT :
							   SMTP_CONN_PH_IDLE);
			if (c->state == SMTP_CONN_S_SESSION &&
			    !c->user_closed && c->cb.on_ready != NULL)
				c->cb.on_ready(c, c->arg);
			break;
		case SMTP_PROTO_EV_RCPT_STATUS:
			log_debug("relay=%s rcpt=%zu <<< %d", c->name,
			    ev.rcpt_index, ev.reply.code);
			if (!c->msg_active || ev.rcpt_index >= c->msg.n_rcpts)
				break;
			smtp_conn_arm(c); /* a reply: restart */
			smtp_conn_fact(&c->rcpt_fact[ev.rcpt_index], &ev,
			    RETRY_EVENT_REPLY);
			if (ev.reply.code / 100 != 2) {
				char rtext[sizeof(ev.reply.text) + 8];

				smtp_conn_reply_text(&ev.reply, rtext,
				    sizeof(rtext));
				free(c->rcpt_reply[ev.rcpt_index]);
				c->rcpt_reply[ev.rcpt_index] = xstrdup(rtext);
			}
			break;
		case SMTP_PROTO_EV_NEED_BODY:
			if (!c->msg_active) {
				smtp_conn_fail(c, RETRY_EVENT_LOCAL,
				    "DATA without a message (bug)");
				return 0;
			}
			smtp_conn_set_phase(c, SMTP_CONN_PH_BODY);
			break;
		case SMTP_PROTO_EV_TXN_DONE:
			smtp_conn_on_txn_done(c, &ev);
			break;
		case SMTP_PROTO_EV_FAILED:
			if (c->state == SMTP_CONN_S_QUIT) {
				smtp_conn_kill(c);
				return 0;
			}
			if (ev.fail == SMTP_PROTO_FAIL_BODY && c->msg_active) {
				smtp_conn_body_refused(c, &ev);
				return 0;
			}
			smtp_conn_failed_text(c, &ev, text, sizeof(text));
			/* Where it is still safe (a refusal, not garbage)
			 * the proto may have queued QUIT: one try. */
			if (ev.fail == SMTP_PROTO_FAIL_RESP ||
			    ev.fail == SMTP_PROTO_FAIL_TLS ||
			    ev.fail == SMTP_PROTO_FAIL_AUTH)
				(void)smtp_conn_write(c);
			/* A refused OAuth token: one forced refresh first. */
			if (ev.fail == SMTP_PROTO_FAIL_AUTH &&
			    smtp_conn_auth_retry(c, text))
				return 0;
			smtp_conn_fact(&f, &ev, smtp_conn_fail_event(&ev));
			smtp_conn_fail_fact(c, &f, "%s", text);
			return 0;
		case SMTP_PROTO_EV_CLOSED:
			if (c->state == SMTP_CONN_S_QUIT) {
				if (c->tls_on)
					tls_bye(c->tls);
				smtp_conn_kill(c);
				return 0;
			}
			smtp_conn_reply_text(&ev.reply, text, sizeof(text));
			smtp_conn_fact(&f, &ev, RETRY_EVENT_NETWORK);
			smtp_conn_fail_fact(c, &f,
			    "connection closed by %s: %s", c->addr,
			    text[0] != '\0' ? text : "end of session");
			return 0;
		}
	}
	return smtp_conn_alive(c);
}

/* The body is read to its end (c->body_off == c->msg.body_size, seen by
 * a short read): the final dot follows, and the next message may go out
 * behind it, in the same write. */
static void
smtp_conn_body_end(struct smtp_conn *c, const void *data, size_t len)
{
	/* DATA_END starts once all of it is written. */
	smtp_proto_body(c->proto, data, len, 1);
	c->body_done = 1;
	free(c->body_buf);
	c->body_buf = NULL;
	if (c->cb.on_pipeline != NULL && !c->user_closed &&
	    smtp_proto_can_send_mail(c->proto))
		c->cb.on_pipeline(c, c->arg);
}

/* Feed the body while the proto's output is short.  Each read asks for
 * one byte more than is left (as the buffer allows), so the read that
 * brings the last bytes also shows the end of the file, and a file that
 * grew shows too.  Returns 1 on progress, 0 otherwise, -1 when the
 * connection failed: a read error, or a file that is not the size it
 * had (changed in the queue), are failed before the final dot, so the
 * server discards the partial message. */
static int
smtp_conn_fill_body(struct smtp_conn *c)
{
	uint64_t size, left;
	size_t   want;
	ssize_t  n;
	int      progress = 0;

	while (c->msg_active && c->phase == SMTP_CONN_PH_BODY &&
	    !c->body_done &&
	    smtp_proto_output_pending(c->proto) < SMTP_CONN_BODY_LOWAT) {
		if (c->body_buf == NULL)
			c->body_buf = xmalloc(c->body_cap);
		size = c->msg.body_size;
		left = size - (uint64_t)c->body_off;
		want = left < c->body_cap ? (size_t)left + 1 : c->body_cap;
		n = pread(c->msg.body_fd, c->body_buf, want, c->body_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			smtp_conn_fail(c, RETRY_EVENT_LOCAL,
			    "cannot read message %s: %s", c->msg.id,
			    strerror(errno));
			return -1;
		}
		if ((uint64_t)n > left || (n == 0 && left > 0)) {
			smtp_conn_fail(c, RETRY_EVENT_LOCAL,
			    "message %s changed in the queue: %s than its "
			    "%llu bytes",
			    c->msg.id, n == 0 ? "shorter" : "longer",
			    (unsigned long long)size);
			return -1;
		}
		c->body_off += n;
		if ((uint64_t)n == left && (size_t)n < want) {
			smtp_conn_body_end(c, c->body_buf, (size_t)n);
			return 1;
		}
		/* Bytes short of the end, or up to it in a full buffer (its
		 * end still to be seen: a read of one byte). */
		smtp_proto_body(c->proto, c->body_buf, (size_t)n, 0);
		progress = 1;
	}
	return progress;
}

/* The session's turn: act on the proto's events, feed the body, write,
 * read, until nothing moves.  may_read = 0: the socket is not read until
 * the loop's read event says it holds something (a turn from ev_pump,
 * for output the owner queued: a reply cannot have come yet, strace
 * showed a recv returning EAGAIN after every such write). */
static void
smtp_conn_turn(struct smtp_conn *c, int may_read)
{
	int progress, r, read_blocked = !may_read;

	for (;;) {
		if (!smtp_conn_events(c))
			return;
		progress = 0;
		if ((r = smtp_conn_fill_body(c)) < 0)
			return;
		progress |= r;
		if ((r = smtp_conn_write(c)) < 0)
			return;
		progress |= r;
		if (!smtp_conn_events(c))
			return;
		/* A socket that had nothing to read in this turn, or whose
		 * plain recv() was short (it was empty then), is not read
		 * again in it (a recv returning EAGAIN after each write,
		 * strace: two per message): the loop's read event says when
		 * data comes (level-triggered; tls_read() leaves nothing in
		 * its read-ahead, and its own short recv() is the same
		 * case).  Not after a read that wanted a write: a write may
		 * have unblocked it. */
		r = 0;
		if (!read_blocked && (r = smtp_conn_read(c)) < 0)
			return;
		read_blocked = read_blocked ||
		    (r == 0 && !c->read_wants_write) || (r == 1 && c->read_dry);
		if (r == 2) {
			/* EOF: let the proto's events speak, then make sure
			 * the connection ends. */
			if (!smtp_conn_events(c))
				return;
			if (c->state == SMTP_CONN_S_QUIT)
				smtp_conn_kill(c);
			else
				smtp_conn_fail(c, RETRY_EVENT_NETWORK,
				    "connection closed by %s (state %s)",
				    c->addr, smtp_proto_state_name(c->proto));
			return;
		}
		progress |= r;
		if (!progress)
			break;
	}
	smtp_conn_want(c, 1,
	    (smtp_proto_output_pending(c->proto) > 0 && !c->write_wants_read) ||
		c->read_wants_write);
}

static void
smtp_conn_run(struct smtp_conn *c)
{
	smtp_conn_turn(c, 1);
}

/* --- libevent callbacks ------------------------------------------- */

static void
smtp_conn_on_io(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case SMTP_CONN_S_CONNECT:
		smtp_conn_connect_done(c);
		break;
	case SMTP_CONN_S_TLS:
		/* One timer for the whole handshake: not restarted here. */
		smtp_conn_tls_step(c);
		break;
	case SMTP_CONN_S_SESSION:
	case SMTP_CONN_S_QUIT:
		smtp_conn_run(c);
		break;
	default:
		smtp_conn_want(c, 0, 0);
		break;
	}
}

/* The command whose reply we wait for: the proto's state when it names
 * one (right with pipelining too), else the last verb written. */
static const char *
smtp_conn_awaited(const struct smtp_conn *c)
{
	static const char *const cmds[] = {
		"ehlo",
		"EHLO",
		"helo",
		"HELO",
		"starttls",
		"STARTTLS",
		"auth",
		"AUTH",
		"mail",
		"MAIL",
		"rcpt",
		"RCPT",
		"data",
		"DATA",
		"rset",
		"RSET",
		"quit",
		"QUIT",
	};
	const char *st;
	size_t      i;

	if (c->proto != NULL) {
		st = smtp_proto_state_name(c->proto);
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i += 2)
			if (strcmp(st, cmds[i]) == 0)
				return cmds[i + 1];
		if (strcmp(st, "eom") == 0)
			return "end of DATA";
	}
	return c->verb[0] != '\0' ? c->verb : "command";
}

/* What the connection is doing, for timeout texts: "waiting for reply to
 * MAIL from 127.0.0.1:25". */
static void
smtp_conn_doing(const struct smtp_conn *c, char *dst, size_t dstsz)
{
	const char *addr = c->addr[0] != '\0' ? c->addr : c->host;

	switch (c->phase) {
	case SMTP_CONN_PH_REPLY:
		smtp_conn_fmt(dst, dstsz, "waiting for reply to %s from %s",
		    smtp_conn_awaited(c), addr);
		break;
	case SMTP_CONN_PH_NONE:
	case SMTP_CONN_PH_RESOLVE:
		smtp_conn_fmt(dst, dstsz, "%s %s",
		    c->state == SMTP_CONN_S_RESOLVE ? "resolving" : "starting",
		    c->host);
		break;
	default:
		smtp_conn_fmt(dst, dstsz, "%s %s", smtp_conn_phases[c->phase],
		    addr);
		break;
	}
}

static void
smtp_conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;
	unsigned          secs = c->secs[c->phase];
	char              doing[192];

	(void)fd;
	(void)what;
	smtp_conn_doing(c, doing, sizeof(doing));
	switch (c->phase) {
	case SMTP_CONN_PH_QUIT:
		smtp_conn_kill(c);
		break;
	case SMTP_CONN_PH_CONNECT:
		/* Try the next address, if any. */
		snprintf(c->last_err, sizeof(c->last_err),
		    "connect to %s: timeout after %us", c->addr, secs);
		smtp_conn_close_fd(c);
		c->ai_cur = c->ai_cur->ai_next;
		smtp_conn_connect_next(c);
		break;
	case SMTP_CONN_PH_NONE:
		break;
	case SMTP_CONN_PH_TLS:
		if (c->tls_mode == CONFIG_TLS_STARTTLS && c->proto != NULL)
			smtp_proto_tls_done(c->proto, 0);
		smtp_conn_fail(c, RETRY_EVENT_TIMEOUT, "timeout after %us %s",
		    secs, doing);
		break;
	default:
		smtp_conn_fail(c, RETRY_EVENT_TIMEOUT, "timeout after %us %s",
		    secs, doing);
		break;
	}
}

/* session_max: the set-up, or one message, took too long in total. */
static void
smtp_conn_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;
	char              doing[192];

	(void)fd;
	(void)what;
	if (c->state == SMTP_CONN_S_DEAD)
		return;
	if (c->state == SMTP_CONN_S_QUIT) {
		smtp_conn_kill(c);
		return;
	}
	smtp_conn_doing(c, doing, sizeof(doing));
	smtp_conn_fail(c, RETRY_EVENT_TIMEOUT,
	    "session_max of %us exceeded %s (still %s)", c->session_max,
	    c->deadline_msg ? "sending the message" :
			      "before the session was ready",
	    doing);
}

/* Getting the AUTH secret failed with event ev (phase AUTH: it is for
 * AUTH, even though nothing was sent yet). */
static void
smtp_conn_fail_secret(struct smtp_conn *c, enum retry_event ev, const char *msg)
{
	struct retry_fact f;

	memset(&f, 0, sizeof(f));
	f.phase = RETRY_PHASE_AUTH;
	f.event = ev;
	smtp_conn_fail_fact(c, &f, "%s", msg);
}

/* The secret arrived from authsrc (START): connect, or fail as it says. */
static void
smtp_conn_on_secret(struct authsrc_result *r, void *arg)
{
	struct smtp_conn *c = arg;

	c->auth_req = NULL;
	if (c->state != SMTP_CONN_S_START)
		return;
	switch (r->kind) {
	case AUTHSRC_OK:
		c->secret = r->secret;
		r->secret = NULL;
		c->auth_refreshable = r->refreshable;
		smtp_conn_resolve(c);
		break;
	case AUTHSRC_TEMP:
		/* A helper's timeout, the token endpoint down or slow: the
		 * relay's path, never refused credentials (no auth rest). */
		smtp_conn_fail_secret(c,
		    r->timed_out ? RETRY_EVENT_TIMEOUT : RETRY_EVENT_NETWORK,
		    r->msg);
		break;
	case AUTHSRC_HELD:
		smtp_conn_fail_held(c, "%s", r->msg);
		break;
	case AUTHSRC_FAILED:
	default:
		smtp_conn_fail_secret(c, RETRY_EVENT_CREDENTIALS, r->msg);
		break;
	}
}

/*
 * The server refused an OAuth token (334 error challenge, then 535): once
 * per connection, start over with a forced refresh.  Nothing of a message
 * is lost: AUTH comes before the first message.  Returns 1 when the
 * connection restarts.
 */
static int
smtp_conn_auth_retry(struct smtp_conn *c, const char *why)
{
	if (!c->auth_refreshable || c->auth_forced || c->msg_active ||
	    c->user_closed || c->authsrc == NULL)
		return 0;
	log_info("relay=%s OAuth token refused (%s): refreshing it once",
	    c->name, why);
	(void)smtp_conn_write(c); /* the QUIT the proto queued */
	smtp_conn_close_fd(c);
	tls_session_free(c->tls);
	c->tls = NULL;
	c->tls_on = 0;
	c->read_wants_write = c->write_wants_read = 0;
	smtp_proto_free(c->proto);
	c->proto = NULL;
	if (c->ai != NULL)
		evutil_freeaddrinfo(c->ai);
	c->ai = c->ai_cur = NULL;
	c->ready = 0;
	c->verb[0] = '\0';
	c->addr[0] = '\0';
	c->auth_forced = 1;
	c->state = SMTP_CONN_S_START;
	smtp_conn_set_phase(c, SMTP_CONN_PH_NONE);
	event_active(c->ev_pump, EV_TIMEOUT, 1);
	return 1;
}

/* Deferred work: the start, and anything requested from outside our own
 * callbacks (send, close). */
static void
smtp_conn_on_pump(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case SMTP_CONN_S_START:
		smtp_conn_deadline_start(c, 0);
		if (c->authsrc != NULL && c->auth != SASL_MECH_NONE) {
			/* Asynchronous: the loop keeps running. */
			c->auth_req = authsrc_get(c->authsrc, c->sh,
			    c->auth_forced, smtp_conn_on_secret, c);
			break;
		}
		if (c->secret_failed) {
			/* Never connect without the credentials. */
			smtp_conn_fail(c, RETRY_EVENT_CREDENTIALS, "%s",
			    c->last_err);
			break;
		}
		smtp_conn_resolve(c);
		break;
	case SMTP_CONN_S_SESSION:
	case SMTP_CONN_S_QUIT:
		/* Output the owner queued (a message, QUIT): written now,
		 * replies come with the read event. */
		smtp_conn_turn(c, 0);
		break;
	default:
		break;
	}
}

/* --- API ---------------------------------------------------------- */

static unsigned
smtp_conn_secs(unsigned configured, unsigned dflt)
{
	return configured != 0 ? configured : dflt;
}

/* Per-phase seconds from the smarthost (0 = the default). */
static void
smtp_conn_timeouts(struct smtp_conn *c, const struct config_smarthost *sh)
{
	c->secs[SMTP_CONN_PH_NONE] = 0;
	/* The name lookup counts as part of connecting. */
	c->secs[SMTP_CONN_PH_RESOLVE] = smtp_conn_secs(sh->timeout_connect,
	    SMTP_CONN_DEF_CONNECT);
	c->secs[SMTP_CONN_PH_CONNECT] = smtp_conn_secs(sh->timeout_connect,
	    SMTP_CONN_DEF_CONNECT);
	c->secs[SMTP_CONN_PH_TLS] = smtp_conn_secs(sh->timeout_tls,
	    SMTP_CONN_DEF_TLS);
	c->secs[SMTP_CONN_PH_GREETING] = smtp_conn_secs(sh->timeout_greeting,
	    SMTP_CONN_DEF_GREETING);
	c->secs[SMTP_CONN_PH_REPLY] = smtp_conn_secs(sh->timeout_command,
	    SMTP_CONN_DEF_COMMAND);
	c->secs[SMTP_CONN_PH_BODY] = smtp_conn_secs(sh->timeout_data_block,
	    SMTP_CONN_DEF_DATA_BLOCK);
	c->secs[SMTP_CONN_PH_DATA_END] = smtp_conn_secs(sh->timeout_data_end,
	    SMTP_CONN_DEF_DATA_END);
	/* An idle connection is the owner's to close; this is only a net
	 * for an owner that forgets. */
	c->secs[SMTP_CONN_PH_IDLE] = c->secs[SMTP_CONN_PH_REPLY];
	c->secs[SMTP_CONN_PH_QUIT] = SMTP_CONN_QUIT_SECS;
	c->session_max = smtp_conn_secs(sh->session_max, SMTP_CONN_DEF_SESSION);
}

struct smtp_conn *
smtp_conn_open(const struct smtp_conn_params *params,
    const struct smtp_conn_callbacks *cb, void *arg)
{
	const struct config_smarthost *sh = params->smarthost;
	struct sq_err                  err = { 0, "" };
	struct smtp_conn              *c;
	const char                    *host = sh->host != NULL ? sh->host : "";
	size_t                         len = strlen(host);

	c = xcalloc(1, sizeof(*c));
	c->base = params->base;
	c->dns = params->dns;
	c->cb = *cb;
	c->arg = arg;
	c->name = xstrdup(sh->name != NULL ? sh->name : host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']')
		c->host = xstrndup(host + 1, len - 2);
	else
		c->host = xstrdup(host);
	c->port = sh->port;
	c->tls_mode = sh->tls;
	c->tls_ctx = params->tls;
	c->ehlo_name = xstrdup(
	    params->ehlo_name != NULL ? params->ehlo_name : "localhost");
	c->fd = -1;
	c->msg.body_fd = -1;
	c->state = SMTP_CONN_S_START;
	smtp_conn_timeouts(c, sh);
	c->auth = sh->auth;
	c->sh = sh;
	c->authsrc = params->auth;
	if (sh->user != NULL)
		c->auth_user = xstrdup(sh->user);
	if (c->auth != SASL_MECH_NONE && c->authsrc == NULL) {
		/* Fresh for every connection (token refreshers); a failure
		 * is reported from the first pump, never from here. */
		if (secret_load(sh, &c->secret, &err) < 0) {
			c->secret = NULL;
			c->secret_failed = 1;
			snprintf(c->last_err, sizeof(c->last_err), "%s",
			    err.msg[0] != '\0' ? err.msg :
						 "cannot read the secret");
		}
	}
	c->ev_timer = evtimer_new(c->base, smtp_conn_on_timer, c);
	c->ev_deadline = evtimer_new(c->base, smtp_conn_on_deadline, c);
	c->ev_pump = event_new(c->base, -1, 0, smtp_conn_on_pump, c);
	c->ev_free = event_new(c->base, -1, 0, smtp_conn_on_free, c);
	if (c->ev_timer == NULL || c->ev_deadline == NULL ||
	    c->ev_pump == NULL || c->ev_free == NULL)
		log_fatalx("smtp_conn: event_new failed");
	event_active(c->ev_pump, EV_TIMEOUT, 1);
	return c;
}

int
smtp_conn_send(struct smtp_conn *c, const struct smtp_conn_message *msg)
{
	struct smtp_proto_txn txn;
	struct stat           st;
	int                   behind;

	if (c == NULL || c->state != SMTP_CONN_S_SESSION || c->user_closed ||
	    msg->n_rcpts == 0 || msg->body_fd < 0)
		return -1;
	/* Behind the current message: only once its dot is produced, with
	 * a pipelining server, for an owner that asked for it. */
	behind = c->msg_active;
	if (behind &&
	    (!c->body_done || c->nxt_active || c->cb.on_pipeline == NULL ||
		!smtp_proto_can_send_mail(c->proto)))
		return -1;
	if (!behind && !c->ready)
		return -1;
	memset(&txn, 0, sizeof(txn));
	txn.sender = msg->sender != NULL ? msg->sender : "";
	txn.rcpts = msg->rcpts;
	txn.n_rcpts = msg->n_rcpts;
	txn.size = msg->body_size;
	if (txn.size == 0) {
		if (fstat(msg->body_fd, &st) != 0)
			return -1;
		txn.size = (uint64_t)st.st_size;
	}
	txn.body_8bit = msg->body_8bit;
	txn.needs_smtputf8 = msg->needs_smtputf8;
	txn.ret = msg->ret;
	txn.envid = msg->envid;
	txn.notify = msg->notify;
	txn.orcpts = msg->orcpts;
	if (smtp_proto_send_mail(c->proto, &txn) < 0)
		return -1;
	if (behind) {
		c->nxt = *msg;
		c->nxt.body_size = txn.size;
		/* Copied by the core; not valid after this call. */
		c->nxt.envid = NULL;
		c->nxt.notify = NULL;
		c->nxt.orcpts = NULL;
		if (c->nxt.id == NULL)
			c->nxt.id = "-";
		c->nxt_active = 1;
		c->nxt_cap = smtp_conn_body_cap(txn.size);
		log_debug("relay=%s msgid=%s rcpts=%zu sending (pipelined)",
		    c->name, c->nxt.id, msg->n_rcpts);
		event_active(c->ev_pump, EV_TIMEOUT, 1);
		return 0;
	}
	c->ready = 0;
	smtp_conn_msg_start(c, msg, smtp_conn_body_cap(txn.size));
	c->msg.body_size = txn.size;
	/* Copied by the core; not valid after this call. */
	c->msg.envid = NULL;
	c->msg.notify = NULL;
	c->msg.orcpts = NULL;
	if (c->msg.id == NULL)
		c->msg.id = "-";
	c->verb[0] = '\0';
	log_debug("relay=%s msgid=%s rcpts=%zu sending", c->name, c->msg.id,
	    msg->n_rcpts);
	event_active(c->ev_pump, EV_TIMEOUT, 1);
	return 0;
}

void
smtp_conn_abort(struct smtp_conn *c)
{
	if (c == NULL)
		return;
	c->user_closed = 1;
	c->state = SMTP_CONN_S_DEAD;
	c->gone = NULL;
	smtp_conn_destroy(c);
}

void
smtp_conn_close(struct smtp_conn *c)
{
	if (c == NULL || c->user_closed || c->state == SMTP_CONN_S_DEAD)
		return;
	c->user_closed = 1;
	if (c->state == SMTP_CONN_S_SESSION && c->ready && !c->msg_active) {
		c->state = SMTP_CONN_S_QUIT;
		smtp_proto_quit(c->proto);
		smtp_conn_set_phase(c, SMTP_CONN_PH_QUIT);
		event_active(c->ev_pump, EV_TIMEOUT, 1);
		return;
	}
	smtp_conn_kill(c);
}

void
smtp_conn_on_gone(struct smtp_conn *c, void (*gone)(struct smtp_conn *, void *),
    void                           *arg)
{
	c->gone = gone;
	c->gone_arg = arg;
}

int
smtp_conn_awaits_dot_reply(const struct smtp_conn *c)
{
	return c != NULL && smtp_conn_alive(c) && c->msg_active && c->body_done;
}
