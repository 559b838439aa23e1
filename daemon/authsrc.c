/*
 * authsrc.c - AUTH secrets for sendqd's connections (see authsrc.h).
 *
 * How it works: every request gets a struct authsrc_req with its own
 * event; the result is written into it and the event activated, so the
 * caller is always called back from the loop, never from inside
 * authsrc_get().  Password and token files are small local files and are
 * read at once; helper commands run through secret_cmd.
 *
 * OAuth: per smarthost, a struct authsrc_sh holds the refresh token, the
 * access token with its times (oauth_need() decides), at most one refresh
 * in flight and the requests waiting for it.  A refresh answer is
 * classified by oauth_classify(): OK stores a rotated refresh token
 * durably (oauth_store_write) before the old one is dropped from memory,
 * caches the access token and answers every waiter; TEMPFAIL answers them
 * AUTHSRC_TEMP (the relay backs off); HELD marks the smarthost held,
 * logs at error priority (once per change) and answers AUTHSRC_HELD.  A
 * held smarthost makes no more requests to the endpoint until its token
 * file changes (inotify on STATE_DIR/oauth/, or authsrc_reload()).  After
 * each refresh, oauth/NAME.status records its time and result for
 * `sendqctl oauth status`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "authsrc.h"
#include "buf.h"
#include "log.h"
#include "oauth.h"
#include "oauth_http.h"
#include "oauth_store.h"
#include "secret.h"
#include "secret_cmd.h"
#include "util.h"

struct authsrc_sh;

struct authsrc_req {
	struct authsrc       *a;
	struct authsrc_req   *next;  /* a->reqs */
	struct authsrc_req   *wnext; /* st->waiters */
	struct authsrc_sh    *waiting_on;
	authsrc_cb            cb;
	void                 *arg;
	struct event         *ev;
	struct secret_cmd    *cmd;
	struct authsrc_result res;
};

struct authsrc_sh {
	struct authsrc                *a;
	const struct config_smarthost *sh;
	char                          *refresh_token;
	char                          *access_token;
	struct oauth_cache             cache;
	int                            held;
	char                           why[512];
	struct oauth_http_req         *http;
	struct authsrc_req            *waiters;
	time_t                         last_refresh;
	char                           last_result[512];
	time_t                         obtained, expires; /* wall */
};

struct authsrc {
	struct event_base   *base;
	const struct config *cfg;
	const char          *state_dir;
	struct oauth_http   *http;
	struct authsrc_sh   *shs; /* per smarthost (oauth ones used) */
	size_t               n;
	struct authsrc_req  *reqs;
	int                  ino_fd;
	struct event        *ev_ino;
	void (*on_change)(void *);
	void *arg;
};

static void
authsrc_wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void
authsrc_unlink(struct authsrc_req *q)
{
	struct authsrc_req **pp;

	for (pp = &q->a->reqs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	if (q->waiting_on != NULL) {
		for (pp = &q->waiting_on->waiters; *pp != NULL;
		     pp = &(*pp)->wnext)
			if (*pp == q) {
				*pp = q->wnext;
				break;
			}
		q->waiting_on = NULL;
	}
}

static void
authsrc_req_free(struct authsrc_req *q)
{
	authsrc_unlink(q);
	secret_cmd_cancel(q->cmd);
	secret_free(q->res.secret);
	event_free(q->ev);
	free(q);
}

static void
authsrc_on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct authsrc_req *q = arg;

	(void)fd;
	(void)what;
	authsrc_unlink(q);
	q->cb(&q->res, q->arg);
	q->res.secret = NULL; /* the receiver's now */
	authsrc_req_free(q);
}

/* Answer q from the loop. */
static void SQ_PRINTF(4, 5) authsrc_answer(struct authsrc_req *q,
    enum authsrc_kind kind, struct secret *s, const char *fmt, ...)
{
	va_list ap;

	authsrc_unlink(q);
	q->res.kind = kind;
	q->res.secret = s;
	va_start(ap, fmt);
	vsnprintf(q->res.msg, sizeof(q->res.msg), fmt, ap);
	va_end(ap);
	event_active(q->ev, EV_TIMEOUT, 1);
}

static struct secret *
authsrc_token(const char *t)
{
	struct secret *s = xcalloc(1, sizeof(*s));

	s->kind = SECRET_TOKEN;
	s->data = xstrdup(t);
	s->len = strlen(t);
	return s;
}

/* --- held state and status ------------------------------------------ */

/* The status of st as key=value lines (no secret; one line each). */
static char *
authsrc_status_text(const struct authsrc_sh *st)
{
	char result[sizeof(st->last_result)], why[sizeof(st->why)];

	sq_printable(result, sizeof(result), st->last_result,
	    strlen(st->last_result));
	sq_printable(why, sizeof(why), st->why, strlen(st->why));
	return xasprintf(
	    "last_refresh=%lld\nlast_result=%s\naccess_token_obtained=%"
	    "lld\naccess_token_expires=%lld\nheld=%d\nheld_reason=%s",
	    (long long)st->last_refresh, result, (long long)st->obtained,
	    (long long)st->expires, st->held, st->held ? why : "");
}

static void
authsrc_write_status(struct authsrc_sh *st)
{
	struct sq_err err = { 0, "" };
	char         *text, *file;

	text = authsrc_status_text(st);
	file = xasprintf("%s.status", st->sh->name);
	if (oauth_store_write(st->a->state_dir, file, text, &err) != 0)
		log_warn("relay %s: %s", st->sh->name, err.msg);
	free(file);
	free(text);
}

static void
authsrc_set_held(struct authsrc_sh *st, const char *why)
{
	int changed = !st->held || strcmp(st->why, why) != 0;

	st->held = 1;
	snprintf(st->why, sizeof(st->why), "%s", why);
	st->cache.valid = 0;
	authsrc_wipe_free(st->access_token);
	st->access_token = NULL;
	if (!changed)
		return;
	log_err(
	    "relay %s: OAUTH HELD: %s -- the mail for this smarthost is kept "
	    "(not bounced, not expired) until you run: sendqctl oauth init %s",
	    st->sh->name, why, st->sh->name);
	if (st->a->on_change != NULL)
		st->a->on_change(st->a->arg);
}

static void
authsrc_release(struct authsrc_sh *st)
{
	if (!st->held)
		return;
	st->held = 0;
	st->why[0] = '\0';
	log_info(
	    "relay %s: OAuth refresh token stored: the held mail is released",
	    st->sh->name);
	if (st->a->on_change != NULL)
		st->a->on_change(st->a->arg);
}

/* --- OAuth refresh ---------------------------------------------------- */

static void
authsrc_answer_waiters(struct authsrc_sh *st, enum authsrc_kind kind,
    int timed_out, const char *msg)
{
	struct authsrc_req *q;

	while ((q = st->waiters) != NULL) {
		q->res.timed_out = timed_out;
		if (kind == AUTHSRC_OK) {
			q->res.refreshable = 1;
			authsrc_answer(q, kind, authsrc_token(st->access_token),
			    "ok");
		} else
			authsrc_answer(q, kind, NULL, "%s", msg);
	}
}

/* A successful answer: store a rotated refresh token, cache the rest. */
static void
authsrc_refreshed(struct authsrc_sh *st, struct oauth_resp *r)
{
	struct sq_err err = { 0, "" };

	if (r->refresh_token != NULL &&
	    (st->refresh_token == NULL ||
		strcmp(r->refresh_token, st->refresh_token) != 0)) {
		/* Durable first: the old one may already be invalid. */
		if (oauth_store_write(st->a->state_dir, st->sh->name,
			r->refresh_token, &err) != 0)
			log_err("relay %s: cannot store the rotated OAuth "
				"refresh token: %s (kept in memory only; after "
				"a restart run sendqctl oauth init %s)",
			    st->sh->name, err.msg, st->sh->name);
		authsrc_wipe_free(st->refresh_token);
		st->refresh_token = r->refresh_token;
		r->refresh_token = NULL;
	}
	authsrc_wipe_free(st->access_token);
	st->access_token = r->access_token;
	r->access_token = NULL;
	oauth_cache_set(&st->cache, sq_now_ms(), r->expires_in);
	st->obtained = time(NULL);
	st->expires = st->obtained +
	    (st->cache.expires - st->cache.obtained) / 1000;
	snprintf(st->last_result, sizeof(st->last_result), "ok");
	log_info("relay=%s oauth refresh ok expires_in=%llds", st->sh->name,
	    (long long)(st->expires - st->obtained));
}

static void
authsrc_on_http(const struct oauth_http_result *h, void *arg)
{
	struct authsrc_sh *st = arg;
	struct oauth_resp  r = { 0 };
	struct sq_err      err = { 0, "" };
	enum oauth_class   cls;
	int                parsed = 0;
	char               detail[400];

	st->http = NULL;
	st->last_refresh = time(NULL);
	if (h->transport_ok)
		parsed = oauth_parse(h->body, h->len, &r, &err) == 0;
	cls = oauth_classify(h->transport_ok, h->status, parsed ? &r : NULL);
	if (!h->transport_ok)
		snprintf(detail, sizeof(detail), "%s", h->error);
	else if (parsed && r.error != NULL)
		snprintf(detail, sizeof(detail), "HTTP %ld: %s%s%s", h->status,
		    r.error, r.error_description != NULL ? ": " : "",
		    r.error_description != NULL ? r.error_description : "");
	else if (!parsed)
		snprintf(detail, sizeof(detail), "HTTP %ld: %s", h->status,
		    err.msg);
	else
		snprintf(detail, sizeof(detail),
		    "HTTP %ld without an access_token", h->status);
	switch (cls) {
	case OAUTH_OK:
		authsrc_refreshed(st, &r);
		authsrc_answer_waiters(st, AUTHSRC_OK, 0, NULL);
		break;
	case OAUTH_HELD:
		snprintf(st->last_result, sizeof(st->last_result),
		    "refused: %s", detail);
		authsrc_set_held(st, st->last_result);
		authsrc_answer_waiters(st, AUTHSRC_HELD, 0, st->why);
		break;
	default:
		snprintf(st->last_result, sizeof(st->last_result),
		    "temporary failure: %s", detail);
		log_warn("relay %s: OAuth token refresh failed temporarily: %s",
		    st->sh->name, detail);
		authsrc_answer_waiters(st, AUTHSRC_TEMP,
		    !h->transport_ok && h->timed_out, st->last_result);
		break;
	}
	if (parsed)
		oauth_resp_fini(&r);
	authsrc_write_status(st);
}

static void
authsrc_refresh(struct authsrc_sh *st)
{
	const struct config_smarthost *sh = st->sh;
	struct secret                 *cs = NULL;
	struct sq_err                  err = { 0, "" };
	const char                    *form[12];
	size_t                         n = 0;

	if (st->http != NULL)
		return;
	if (secret_load_oauth_client(sh, &cs, &err) != 0) {
		snprintf(st->last_result, sizeof(st->last_result), "%s",
		    err.msg);
		authsrc_answer_waiters(st, AUTHSRC_FAILED, 0, err.msg);
		return;
	}
	form[n++] = "grant_type";
	form[n++] = "refresh_token";
	form[n++] = "refresh_token";
	form[n++] = st->refresh_token;
	form[n++] = "client_id";
	form[n++] = sh->oauth_client_id;
	if (cs != NULL) {
		form[n++] = "client_secret";
		form[n++] = cs->data;
	}
	if (sh->oauth_scope != NULL) {
		form[n++] = "scope";
		form[n++] = sh->oauth_scope;
	}
	form[n] = NULL;
	log_debug("relay=%s oauth refresh at %s", sh->name,
	    sh->oauth_token_endpoint);
	st->http = oauth_http_post(st->a->http, sh->oauth_token_endpoint, form,
	    sh->oauth_ca_file, 0, authsrc_on_http, st);
	secret_free(cs);
}

static void
authsrc_get_oauth(struct authsrc_sh *st, struct authsrc_req *q, int force)
{
	enum oauth_need need;

	if (st->held) {
		authsrc_answer(q, AUTHSRC_HELD, NULL, "%s", st->why);
		return;
	}
	need = oauth_need(&st->cache, sq_now_ms(), force);
	if (need != OAUTH_NEED_NOW) {
		q->res.refreshable = 1;
		authsrc_answer(q, AUTHSRC_OK, authsrc_token(st->access_token),
		    "ok");
		if (need == OAUTH_NEED_AHEAD)
			authsrc_refresh(st);
		return;
	}
	q->waiting_on = st;
	q->wnext = st->waiters;
	st->waiters = q;
	authsrc_refresh(st);
}

/* --- helper commands and files ---------------------------------------- */

static void
authsrc_on_cmd(int rc, struct secret *s, const char *msg, void *arg)
{
	struct authsrc_req *q = arg;

	q->cmd = NULL;
	q->res.timed_out = rc == -ETIMEDOUT;
	if (rc == 0)
		authsrc_answer(q, AUTHSRC_OK, s, "ok");
	else
		authsrc_answer(q,
		    rc == -ETIMEDOUT ? AUTHSRC_TEMP : AUTHSRC_FAILED, NULL,
		    "%s", msg);
}

struct authsrc_req *
authsrc_get(struct authsrc *a, const struct config_smarthost *sh, int force,
    authsrc_cb cb, void *arg)
{
	struct authsrc_req *q;
	struct secret      *s = NULL;
	struct sq_err       err = { 0, "" };
	size_t              i;

	/* sh may be of a configuration reloaded since: by name then. */
	for (i = 0; i < a->n; i++)
		if (a->shs[i].sh == sh ||
		    strcmp(a->shs[i].sh->name, sh->name) == 0)
			break;
	q = xcalloc(1, sizeof(*q));
	q->a = a;
	q->cb = cb;
	q->arg = arg;
	q->ev = event_new(a->base, -1, 0, authsrc_on_deliver, q);
	if (q->ev == NULL)
		log_fatalx("authsrc: event_new failed");
	q->next = a->reqs;
	a->reqs = q;
	if (sh->oauth && i < a->n)
		authsrc_get_oauth(&a->shs[i], q, force);
	else if (sh->password_command != NULL || sh->token_command != NULL)
		q->cmd = secret_cmd_run(a->base,
		    sh->password_command != NULL ? sh->password_command :
						   sh->token_command,
		    sh->password_command != NULL ? "password_command" :
						   "token_command",
		    sh->name,
		    sh->password_command != NULL ? SECRET_PASSWORD :
						   SECRET_TOKEN,
		    0, authsrc_on_cmd, q);
	else if (secret_load(sh, &s, &err) == 0)
		authsrc_answer(q, AUTHSRC_OK, s, "ok");
	else
		authsrc_answer(q, AUTHSRC_FAILED, NULL, "%s", err.msg);
	return q;
}

void
authsrc_cancel(struct authsrc_req *q)
{
	if (q != NULL)
		authsrc_req_free(q);
}

int
authsrc_held(const struct authsrc *a, size_t i, const char **why)
{
	if (a == NULL || i >= a->n || !a->shs[i].held)
		return 0;
	if (why != NULL)
		*why = a->shs[i].why;
	return 1;
}

int
authsrc_oauth_state(const struct authsrc *a, size_t i, int64_t *expires)
{
	const struct authsrc_sh *st;

	*expires = 0;
	if (a == NULL || i >= a->n || a->shs[i].sh == NULL ||
	    !a->shs[i].sh->oauth)
		return AUTHSRC_OAUTH_NONE;
	st = &a->shs[i];
	*expires = (int64_t)st->expires;
	if (st->held)
		return AUTHSRC_OAUTH_HELD;
	if (st->refresh_token == NULL)
		return AUTHSRC_OAUTH_NO_TOKEN;
	if (st->access_token != NULL && st->expires > time(NULL))
		return AUTHSRC_OAUTH_VALID;
	return AUTHSRC_OAUTH_EXPIRED;
}

int
authsrc_status(const struct authsrc *a, const char *name, struct buf *out,
    struct sq_err *err)
{
	struct stat sb;
	char       *path, *text;
	long long   stored = 0;
	size_t      i;
	int         rc;

	for (i = 0; a != NULL && i < a->n; i++)
		if (a->cfg->smarthosts[i].oauth &&
		    strcmp(a->cfg->smarthosts[i].name, name) == 0)
			break;
	if (a == NULL || i == a->n)
		return sq_err_set(err, SQ_ENOTFOUND, "no OAuth smarthost %s",
		    name);
	path = xasprintf("%s/oauth/%s", a->state_dir, name);
	if (stat(path, &sb) == 0)
		stored = (long long)sb.st_mtime;
	free(path);
	text = authsrc_status_text(&a->shs[i]);
	path = xasprintf("refresh_token_stored=%lld\n%s\n", stored, text);
	if ((rc = buf_append_str(out, path)) != 0)
		sq_err_set(err, rc, "status of %s: too large", name);
	free(path);
	free(text);
	return rc;
}

/* --- the token files ---------------------------------------------------- */

static void
authsrc_load(struct authsrc_sh *st, int at_start)
{
	struct sq_err err = { 0, "" };
	char         *t = NULL;

	if (oauth_store_read(st->a->state_dir, st->sh->name, &t, &err) != 0) {
		if (at_start)
			authsrc_set_held(st, err.msg);
		return;
	}
	if (st->refresh_token != NULL && strcmp(t, st->refresh_token) == 0) {
		authsrc_wipe_free(t); /* our own write */
		return;
	}
	authsrc_wipe_free(st->refresh_token);
	st->refresh_token = t;
	st->cache.valid = 0;
	if (!at_start)
		authsrc_release(st);
}

void
authsrc_reload(struct authsrc *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (a->shs[i].sh->oauth &&
		    strcmp(a->shs[i].sh->name, name) == 0)
			authsrc_load(&a->shs[i], 0);
}

static void authsrc_on_inotify(evutil_socket_t, short, void *);

/* The HTTP client and the watch on STATE_DIR/oauth/ (once). */
static int
authsrc_oauth_setup(struct authsrc *a, struct sq_err *err)
{
	char *dir;
	int   rc;

	if (a->http != NULL)
		return 0;
	a->http = oauth_http_new(a->base);
	if ((rc = oauth_store_mkdir(a->state_dir, (uid_t)-1, (gid_t)-1, err)) !=
	    0)
		return rc;
	dir = oauth_store_dir(a->state_dir);
	a->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (a->ino_fd == -1 ||
	    inotify_add_watch(a->ino_fd, dir, IN_MOVED_TO | IN_CLOSE_WRITE) ==
		-1) {
		rc = -errno;
		sq_err_set(err, rc, "watch %s: %s", dir, strerror(errno));
		free(dir);
		return rc;
	}
	free(dir);
	a->ev_ino = event_new(a->base, a->ino_fd, EV_READ | EV_PERSIST,
	    authsrc_on_inotify, a);
	event_add(a->ev_ino, NULL);
	return 0;
}

static void
authsrc_on_inotify(evutil_socket_t fd, short what, void *arg)
{
	struct authsrc *a = arg;
	char            buf[4096]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	ssize_t                     n;
	size_t                      off;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (off = 0; off + sizeof(*ev) <= (size_t)n;
		     off += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(void *)(buf + off);
			if (ev->len > 0 && ev->name[0] != '.')
				authsrc_reload(a, ev->name);
		}
	}
}

int
authsrc_new(struct event_base *base, const struct config *cfg,
    void (*on_change)(void *), void *arg, struct authsrc **out,
    struct sq_err *err)
{
	struct authsrc *a;
	size_t          i;
	int             any = 0, rc;

	a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->cfg = cfg;
	a->state_dir = cfg->state_dir != NULL ? cfg->state_dir :
						CONFIG_DEFAULT_STATE_DIR;
	a->on_change = on_change;
	a->arg = arg;
	a->ino_fd = -1;
	a->n = cfg->n_smarthosts;
	a->shs = xcalloc(a->n > 0 ? a->n : 1, sizeof(*a->shs));
	for (i = 0; i < a->n; i++) {
		a->shs[i].a = a;
		a->shs[i].sh = &cfg->smarthosts[i];
		any |= cfg->smarthosts[i].oauth;
	}
	*out = a;
	if (!any)
		return 0;
	if ((rc = authsrc_oauth_setup(a, err)) != 0)
		return rc;
	for (i = 0; i < a->n; i++)
		if (a->shs[i].sh->oauth)
			authsrc_load(&a->shs[i], 1);
	return 0;
}

/* Non-zero when the OAuth settings of o and n differ (a token of one is
 * no token of the other). */
static int
authsrc_oauth_changed(const struct config_smarthost *o,
    const struct config_smarthost                   *n)
{
	const char *const ov[] = { o->oauth_token_endpoint, o->oauth_client_id,
		o->oauth_scope, o->oauth_ca_file, o->oauth_client_secret_file,
		o->oauth_client_secret_credential };
	const char *const nv[] = { n->oauth_token_endpoint, n->oauth_client_id,
		n->oauth_scope, n->oauth_ca_file, n->oauth_client_secret_file,
		n->oauth_client_secret_credential };
	size_t            i;

	if (o->oauth != n->oauth)
		return 1;
	for (i = 0; i < sizeof(ov) / sizeof(ov[0]); i++)
		if ((ov[i] == NULL) != (nv[i] == NULL) ||
		    (ov[i] != NULL && strcmp(ov[i], nv[i]) != 0))
			return 1;
	return 0;
}

void
authsrc_reconfigure(struct authsrc *a, const struct config *cfg)
{
	struct sq_err      err = { 0, "" };
	struct authsrc_sh *st;
	size_t             i;

	if (a == NULL || cfg->n_smarthosts != a->n)
		return; /* the scheduler refuses that reload */
	for (i = 0; i < a->n; i++) {
		st = &a->shs[i];
		if (cfg->smarthosts[i].oauth && a->http == NULL &&
		    authsrc_oauth_setup(a, &err) != 0)
			log_err("reload: OAuth for [smarthost %s]: %s",
			    cfg->smarthosts[i].name, err.msg);
		if (!authsrc_oauth_changed(st->sh, &cfg->smarthosts[i])) {
			st->sh = &cfg->smarthosts[i];
			continue;
		}
		/* Other endpoint or client: forget the access token, read
		 * the refresh token again, try again if held. */
		st->sh = &cfg->smarthosts[i];
		st->cache.valid = 0;
		authsrc_wipe_free(st->access_token);
		st->access_token = NULL;
		if (!st->sh->oauth)
			continue;
		authsrc_wipe_free(st->refresh_token);
		st->refresh_token = NULL;
		authsrc_load(st, 1);
		if (st->refresh_token != NULL)
			authsrc_release(st);
	}
	a->cfg = cfg;
}

void
authsrc_free(struct authsrc *a)
{
	size_t i;

	if (a == NULL)
		return;
	/* authsrc_req_free() unlinks the head, so this ends; the analyzer
	 * does not follow the list update. */
	while (a->reqs != NULL)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		authsrc_req_free(a->reqs);
	for (i = 0; i < a->n; i++) {
		if (a->shs[i].http != NULL)
			oauth_http_cancel(a->shs[i].http);
		authsrc_wipe_free(a->shs[i].refresh_token);
		authsrc_wipe_free(a->shs[i].access_token);
	}
	oauth_http_free(a->http);
	if (a->ev_ino != NULL)
		event_free(a->ev_ino);
	if (a->ino_fd != -1)
		close(a->ino_fd);
	free(a->shs);
	free(a);
}
