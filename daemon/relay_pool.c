/*
 * relay_pool.c - the books of each smarthost's relay.
 *
 * Connections.  A relay has max_connections slots; a slot's conn is
 * NULL when it is free.  A connection that is ready and carries no
 * message is idle and closes after idle_timeout (the timer is the
 * pool's); one that has carried messages_per_connection messages, or
 * that a reload retired, is closed at its next ready instead of taking
 * another message.
 *
 * Rate.  rate = N/unit is a token bucket holding at most N tokens,
 * refilled at N per unit; a new message on a relay takes one.
 *
 * Down and resting.  retry.c says when a relay failed (down: its session
 * could not be set up; rest: authentication refused); the relay then
 * gets no connection until retry_relay_next() says, then one probe.  A
 * session that gets ready puts it up again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "envelope.h"
#include "log.h"
#include "relay_pool.h"
#include "smtp_conn.h"
#include "tls.h"

static void
relay_on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct relay_conn *cc = arg;

	(void)fd;
	(void)what;
	if (cc->conn != NULL && cc->idle) {
		log_debug("relay %s: closing idle connection",
		    cc->relay->sh->name);
		relay_conn_close(cc);
	}
}

static void
relay_init(struct relay_pool *p, struct relay *r, struct event_base *base,
    const struct config_smarthost *sh, int64_t now_ms)
{
	unsigned j;

	r->pool = p;
	r->sh = sh;
	r->index = (int)(r - p->relays);
	r->tokens = sh->rate_count;
	r->tokens_at = now_ms;
	r->conns = xcalloc(sh->max_connections > 0 ? sh->max_connections : 1,
	    sizeof(*r->conns));
	for (j = 0; j < sh->max_connections; j++) {
		r->conns[j].relay = r;
		r->conns[j].idle_timer = evtimer_new(base,
		    relay_on_idle_timeout, &r->conns[j]);
	}
}

int
relay_pool_new(struct event_base *base, const struct config *cfg, void *owner,
    int64_t now_ms, struct relay_pool **out, struct sq_err *err)
{
	struct relay_pool *p = xcalloc(1, sizeof(*p));
	size_t             i;
	int                rc;

	p->owner = owner;
	p->n = cfg->n_smarthosts;
	p->relays = xcalloc(p->n > 0 ? p->n : 1, sizeof(*p->relays));
	for (i = 0; i < p->n; i++) {
		struct relay *r = &p->relays[i];

		relay_init(p, r, base, &cfg->smarthosts[i], now_ms);
		if (r->sh->tls == CONFIG_TLS_NONE)
			continue;
		if ((rc = tls_ctx_new(r->sh, &r->tls, err)) != 0) {
			relay_pool_free(p);
			return rc;
		}
	}
	*out = p;
	return 0;
}

void
relay_pool_free(struct relay_pool *p)
{
	size_t   i;
	unsigned j;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++) {
		struct relay *r = &p->relays[i];

		for (j = 0; r->conns != NULL && j < r->sh->max_connections;
		     j++) {
			if (r->conns[j].conn != NULL)
				smtp_conn_abort(r->conns[j].conn);
			envelope_free(r->conns[j].cur_env);
			envelope_free(r->conns[j].nxt_env);
			if (r->conns[j].idle_timer != NULL)
				event_free(r->conns[j].idle_timer);
		}
		free(r->conns);
		tls_ctx_free(r->tls);
	}
	free(p->relays);
	for (i = 0; i < p->n_old_tls; i++)
		tls_ctx_free(p->old_tls[i]);
	free(p->old_tls);
	free(p);
}

void
relay_pool_abort_all(struct relay_pool *p)
{
	size_t   i;
	unsigned j;

	for (i = 0; i < p->n; i++) {
		struct relay *r = &p->relays[i];

		for (j = 0; j < r->sh->max_connections; j++) {
			struct relay_conn *cc = &r->conns[j];

			if (cc->conn == NULL)
				continue;
			smtp_conn_abort(cc->conn);
			cc->conn = NULL;
			relay_conn_release(cc);
			relay_conn_release_next(cc);
			cc->pipe_open = 0;
			evtimer_del(cc->idle_timer);
		}
		r->n_conns = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Reload. */

static int
relay_pool_reconfigure_check(const struct relay_pool *p,
    const struct config *cfg, struct sq_err *err)
{
	size_t i;

	if (cfg->n_smarthosts != p->n)
		return sq_err_set(err, SQ_ECONFIG,
		    "%s: the number of smarthosts changed (%zu, was %zu): "
		    "restart sendqd to apply it",
		    cfg->path, cfg->n_smarthosts, p->n);
	for (i = 0; i < p->n; i++) {
		const struct config_smarthost *o = p->relays[i].sh;
		const struct config_smarthost *n = &cfg->smarthosts[i];

		if (strcmp(o->name, n->name) != 0)
			return sq_err_set(err, SQ_ECONFIG,
			    "%s: smarthost %zu is [smarthost %s], was "
			    "[smarthost %s]: restart sendqd to apply it",
			    cfg->path, i + 1, n->name, o->name);
		if (o->max_connections != n->max_connections)
			return sq_err_set(err, SQ_ECONFIG,
			    "%s: [smarthost %s] max_connections changed: "
			    "restart sendqd to apply it",
			    cfg->path, n->name);
	}
	return 0;
}

/* The TLS contexts of cfg's smarthosts into *out (one per relay, NULL
 * for tls = none): all or nothing. */
static int
relay_pool_new_tls(const struct relay_pool *p, const struct config *cfg,
    struct tls_ctx ***out, struct sq_err *err)
{
	struct tls_ctx **tls;
	size_t           i;
	int              rc;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	tls = xcalloc(p->n > 0 ? p->n : 1, sizeof(*tls));
	for (i = 0; i < p->n; i++) {
		if (cfg->smarthosts[i].tls == CONFIG_TLS_NONE)
			continue;
		if ((rc = tls_ctx_new(&cfg->smarthosts[i], &tls[i], err)) !=
		    0) {
			while (i-- > 0)
				tls_ctx_free(tls[i]);
			free(tls);
			return rc;
		}
	}
	*out = tls;
	return 0;
}

/* Relay r takes sh and tls: a fresh start, its connections retired. */
static void
relay_renew(struct relay *r, const struct config_smarthost *sh,
    struct tls_ctx *tls, int64_t now_ms)
{
	struct relay_pool *p = r->pool;
	unsigned           j;

	/* A connection in flight still uses the old context. */
	if (r->tls != NULL) {
		/* NOLINTBEGIN(bugprone-sizeof-expression): ptrs */
		p->old_tls = xreallocarray(p->old_tls, p->n_old_tls + 1,
		    sizeof(*p->old_tls));
		/* NOLINTEND(bugprone-sizeof-expression) */
		p->old_tls[p->n_old_tls++] = r->tls;
	}
	r->tls = tls;
	r->sh = sh;
	r->down = 0;
	r->down_until = 0;
	r->down_count = 0;
	r->tokens = sh->rate_count;
	r->tokens_at = now_ms;
	for (j = 0; j < sh->max_connections; j++) {
		struct relay_conn *cc = &r->conns[j];

		if (cc->conn == NULL)
			continue;
		if (!cc->ready_once) {
			/* Still opening for its message (retire now would
			 * drop it): retire after that one. */
			cc->sent = sh->messages_per_connection;
			continue;
		}
		cc->retire = 1;
		if (cc->idle && cc->cur == NULL)
			relay_conn_close(cc);
	}
}

int
relay_pool_reconfigure(struct relay_pool *p, const struct config *cfg,
    int64_t now_ms, struct sq_err *err)
{
	struct tls_ctx **tls;
	size_t           i;
	int              rc;

	if ((rc = relay_pool_reconfigure_check(p, cfg, err)) != 0 ||
	    (rc = relay_pool_new_tls(p, cfg, &tls, err)) != 0)
		return rc;
	/* Committed from here on: nothing below fails. */
	for (i = 0; i < p->n; i++)
		relay_renew(&p->relays[i], &cfg->smarthosts[i], tls[i], now_ms);
	free(tls);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Rate, down and up, errors. */

int
relay_rate_take(struct relay *r, int64_t now_ms)
{
	const struct config_smarthost *sh = r->sh;
	double                         cap;

	if (sh->rate_count == 0)
		return 1;
	cap = sh->rate_count;
	r->tokens += (double)(now_ms - r->tokens_at) * sh->rate_count /
	    (1000.0 * sh->rate_seconds);
	if (r->tokens > cap)
		r->tokens = cap;
	r->tokens_at = now_ms;
	if (r->tokens < 1.0)
		return 0;
	r->tokens -= 1.0;
	return 1;
}

int64_t
relay_rate_wait_ms(const struct relay *r)
{
	const struct config_smarthost *sh = r->sh;

	if (sh->rate_count == 0 || r->tokens >= 1.0)
		return 0;
	return (int64_t)((1.0 - r->tokens) * 1000.0 * sh->rate_seconds /
		   sh->rate_count) +
	    1;
}

void
relay_log_quote(char *dst, size_t dstsz, const char *src)
{
	sq_printable(dst, dstsz, src, strlen(src));
	for (; *dst != '\0'; dst++)
		if (*dst == '"')
			*dst = '\'';
}

void
relay_note_error(struct relay *r, const char *text, int64_t now)
{
	snprintf(r->last_error, sizeof(r->last_error), "%s", text);
	r->last_error_at = now;
}

/*
 * Refused credentials will not fix themselves: say so loudly; the policy
 * makes the rest long, so the provider does not lock the account.
 */
void
relay_mark_down(struct relay *r, const struct retry_policy *pol,
    enum retry_relay relay, const char *rule, const char *reply, int64_t now,
    uint32_t rnd)
{
	r->down = 1;
	r->down_count++;
	r->down_until = retry_relay_next(pol, relay, now, r->down_count, rnd);
	relay_note_error(r, reply, now);
	if (relay == RETRY_RELAY_REST)
		log_err(
		    "relay %s: AUTHENTICATION FAILED: %s -- fix the credential "
		    "settings of [smarthost %s] (user, auth, password or token "
		    "source); its mail stays queued, next try in %llds",
		    r->sh->name, reply, r->sh->name,
		    (long long)(r->down_until - now));
	log_warn("relay %s: %s (%s): %s (next probe in %llds)", r->sh->name,
	    relay == RETRY_RELAY_REST ? "resting" : "down", rule, reply,
	    (long long)(r->down_until - now));
}

void
relay_mark_up(struct relay *r)
{
	if (r->down)
		log_info("relay %s: reachable again", r->sh->name);
	r->down = 0;
	r->down_count = 0;
	r->down_until = 0;
}

int
relay_probe_due(const struct relay *r, int64_t now)
{
	return r->down && r->n_conns == 0 && now >= r->down_until;
}

/* ------------------------------------------------------------------ */
/* Slots. */

struct relay_conn *
relay_conn_free_slot(struct relay *r)
{
	unsigned i;

	for (i = 0; i < r->sh->max_connections; i++)
		if (r->conns[i].conn == NULL)
			return &r->conns[i];
	return NULL;
}

struct relay_conn *
relay_conn_idle(struct relay *r)
{
	unsigned i;

	for (i = 0; i < r->sh->max_connections; i++)
		if (r->conns[i].conn != NULL && r->conns[i].idle &&
		    !r->conns[i].retire)
			return &r->conns[i];
	return NULL;
}

struct relay_conn *
relay_conn_pipe_open(struct relay *r)
{
	unsigned i;

	for (i = 0; i < r->sh->max_connections; i++)
		if (r->conns[i].conn != NULL && r->conns[i].pipe_open &&
		    r->conns[i].nxt == NULL && !r->conns[i].retire)
			return &r->conns[i];
	return NULL;
}

void
relay_conn_begin(struct relay_conn *cc)
{
	cc->idle = 0;
	cc->ready_once = 0;
	cc->retire = 0;
	cc->sent = 0;
	cc->attempt = 0;
	cc->pipe_open = 0;
	cc->relay->n_conns++;
}

void
relay_conn_gone(struct relay_conn *cc)
{
	cc->conn = NULL;
	cc->idle = 0;
	cc->pipe_open = 0;
	evtimer_del(cc->idle_timer);
	cc->relay->n_conns--;
}

void
relay_conn_close(struct relay_conn *cc)
{
	if (cc->conn == NULL)
		return;
	smtp_conn_close(cc->conn);
	relay_conn_gone(cc);
}

void
relay_conn_set_idle(struct relay_conn *cc)
{
	struct timeval idle = { cc->relay->sh->idle_timeout, 0 };

	cc->idle = 1;
	evtimer_add(cc->idle_timer, &idle);
}

void
relay_conn_set_busy(struct relay_conn *cc)
{
	cc->idle = 0;
	evtimer_del(cc->idle_timer);
}

void
relay_conn_release(struct relay_conn *cc)
{
	envelope_free(cc->cur_env);
	cc->cur_env = NULL;
	cc->cur = NULL;
}

void
relay_conn_release_next(struct relay_conn *cc)
{
	envelope_free(cc->nxt_env);
	cc->nxt_env = NULL;
	cc->nxt = NULL;
}

/* ------------------------------------------------------------------ */
/* Status. */

/* last_error_at as ISO 8601 UTC, "" when there is none. */
static void
relay_error_time(const struct relay *r, char *when, size_t len)
{
	struct tm tm;
	time_t    t = (time_t)r->last_error_at;

	when[0] = '\0';
	if (r->last_error_at > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(when, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
relay_status_json(const struct relay *r, const char *state,
    const char *held_reason, size_t queued, size_t due, struct json_write *w)
{
	char when[64], fix[256];

	relay_error_time(r, when, sizeof(when));
	json_write_object_begin(w);
	json_write_key(w, "name");
	json_write_str(w, r->sh->name);
	json_write_key(w, "host");
	json_write_str(w, r->sh->host);
	json_write_key(w, "port");
	json_write_uint(w, r->sh->port);
	json_write_key(w, "state");
	json_write_str(w, state);
	json_write_key(w, "connections");
	json_write_uint(w, r->n_conns);
	json_write_key(w, "max_connections");
	json_write_uint(w, r->sh->max_connections);
	json_write_key(w, "queued");
	json_write_uint(w, queued);
	json_write_key(w, "due");
	json_write_uint(w, due);
	json_write_key(w, "sent");
	json_write_uint(w, r->n_sent);
	json_write_key(w, "deferred");
	json_write_uint(w, r->n_deferred);
	json_write_key(w, "failed");
	json_write_uint(w, r->n_failed);
	json_write_key(w, "last_error");
	json_write_str(w, r->last_error);
	json_write_key(w, "last_error_at");
	json_write_str(w, when);
	if (held_reason != NULL) {
		snprintf(fix, sizeof(fix), "sendqctl oauth init %s",
		    r->sh->name);
		json_write_key(w, "held_reason");
		json_write_str(w, held_reason);
		json_write_key(w, "fix");
		json_write_str(w, fix);
	}
	json_write_object_end(w);
}

void
relay_status_text(const struct relay *r, const char *state,
    const char *held_reason, size_t queued, size_t due, struct buf *out)
{
	char line[1024], when[64], err_text[RELAY_ERROR_MAX], why[600];

	relay_error_time(r, when, sizeof(when));
	relay_log_quote(err_text, sizeof(err_text), r->last_error);
	snprintf(line, sizeof(line),
	    "smarthost %s (%s:%u): %s, connections %u/%u, queued %zu (due "
	    "%zu), sent %lu, deferred %lu, failed %lu%s%s%s%s\n",
	    r->sh->name, r->sh->host, r->sh->port, state, r->n_conns,
	    r->sh->max_connections, queued, due, r->n_sent, r->n_deferred,
	    r->n_failed, err_text[0] ? "\n  last error: " : "", err_text,
	    when[0] ? " at " : "", when);
	buf_append_str(out, line);
	if (held_reason == NULL)
		return;
	relay_log_quote(why, sizeof(why), held_reason);
	snprintf(line, sizeof(line),
	    "  HELD (OAuth): %s\n  fix: sendqctl oauth init %s\n", why,
	    r->sh->name);
	buf_append_str(out, line);
}
