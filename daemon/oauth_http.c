/*
 * oauth_http.c - libcurl multi socket API on libevent (see oauth_http.h).
 *
 * How it works: libcurl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION).  Each watched socket gets a struct
 * oauth_http_sock holding an event set up with event_assign() and
 * remembered with curl_multi_assign(); the single timer is an event of
 * h.  On any of them curl_multi_socket_action() runs, then finished
 * transfers are collected with curl_multi_info_read() and their callbacks
 * run, outside of any libcurl callback (so a callback may start a new
 * request).  The easy handle is set up once, in oauth_http_easy(), for
 * both the asynchronous and the blocking path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "log.h"
#include "oauth.h"
#include "oauth_http.h"
#include "util.h"

/*
 * libcurl is loaded when the first OAuth client is made (dlopen), not
 * linked: its dependencies (OpenSSL's libcrypto, Kerberos, LDAP, SSH,
 * ...) cost every sendqd about 3 MiB of memory and its start-up time, and
 * most installations have no OAuth relay.
 */
#define OAUTH_HTTP_CURL_SONAME  "libcurl-gnutls.so.4" /* Debian's */
#define OAUTH_HTTP_CURL_SONAME2 "libcurl.so.4"

static struct {
	char *(*easy_escape)(CURL *, const char *, int);
	void (*free)(void *);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURL *(*easy_init)(void);
	void (*easy_cleanup)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*global_init)(long);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_cleanup)(CURLM *);
} oc;

#define OAUTH_HTTP_SYM(name) \
	{ \
		"curl_" #name, (void **)&oc.name \
	}

/* Load libcurl and its functions; fatal when missing (a relay needs
 * it, and a half-loaded library must not be called). */
static void
oauth_http_load(void)
{
	static const char *const      sonames[] = { OAUTH_HTTP_CURL_SONAME,
		     OAUTH_HTTP_CURL_SONAME2 };
	static const struct sq_dl_sym syms[] = {
		OAUTH_HTTP_SYM(easy_escape),
		OAUTH_HTTP_SYM(free),
		OAUTH_HTTP_SYM(easy_setopt),
		OAUTH_HTTP_SYM(easy_init),
		OAUTH_HTTP_SYM(easy_cleanup),
		OAUTH_HTTP_SYM(easy_getinfo),
		OAUTH_HTTP_SYM(easy_strerror),
		OAUTH_HTTP_SYM(easy_perform),
		OAUTH_HTTP_SYM(global_init),
		OAUTH_HTTP_SYM(multi_info_read),
		OAUTH_HTTP_SYM(multi_remove_handle),
		OAUTH_HTTP_SYM(multi_add_handle),
		OAUTH_HTTP_SYM(multi_socket_action),
		OAUTH_HTTP_SYM(multi_assign),
		OAUTH_HTTP_SYM(multi_init),
		OAUTH_HTTP_SYM(multi_setopt),
		OAUTH_HTTP_SYM(multi_cleanup),
	};
	char why[256];

	if (sq_dl_load(sonames, sizeof(sonames) / sizeof(sonames[0]), syms,
		sizeof(syms) / sizeof(syms[0]), why, sizeof(why)) != 0)
		log_fatalx("oauth_http: cannot load %s (needed for OAuth "
			   "relays): %s",
		    OAUTH_HTTP_CURL_SONAME, why);
}

struct oauth_http {
	struct event_base     *base;
	CURLM                 *multi;
	struct event           timer;
	struct oauth_http_req *reqs; /* in flight */
};

struct oauth_http_req {
	struct oauth_http     *h;
	struct oauth_http_req *next;
	CURL                  *easy;
	char                  *url;
	char                  *fields;
	char                  *body;
	size_t                 len;
	int                    too_big;
	char                   errbuf[CURL_ERROR_SIZE];
	unsigned               timeout_s;
	oauth_http_cb          cb;
	void                  *arg;
};

struct oauth_http_sock {
	struct oauth_http *h;
	curl_socket_t      fd;
	struct event       ev;
};

static size_t
oauth_http_on_data(char *data, size_t size, size_t n, void *arg)
{
	struct oauth_http_req *q = arg;
	size_t                 len = size * n;

	if (q->len + len > OAUTH_BODY_MAX) {
		q->too_big = 1;
		return 0; /* libcurl fails the transfer */
	}
	q->body = xreallocarray(q->body, q->len + len + 1, 1);
	memcpy(q->body + q->len, data, len);
	q->len += len;
	q->body[q->len] = '\0';
	return len;
}

/* "name=value&..." percent-encoded by libcurl. */
static char *
oauth_http_form(CURL *easy, const char *const *form)
{
	char  *out = xstrdup(""), *k, *v, *n;
	size_t i;

	for (i = 0; form != NULL && form[i] != NULL && form[i + 1] != NULL;
	     i += 2) {
		k = oc.easy_escape(easy, form[i], 0);
		v = oc.easy_escape(easy, form[i + 1], 0);
		if (k == NULL || v == NULL)
			log_fatalx("oauth_http: curl_easy_escape failed");
		n = xasprintf("%s%s%s=%s", out, out[0] != '\0' ? "&" : "", k,
		    v);
		explicit_bzero(out, strlen(out));
		free(out);
		explicit_bzero(v, strlen(v));
		oc.free(k);
		oc.free(v);
		out = n;
	}
	return out;
}

/* Set up q->easy for q (url, fields, ca_file, limits). */
static void
oauth_http_easy(struct oauth_http_req *q, const char *ca_file)
{
	CURL *e = q->easy;

	oc.easy_setopt(e, CURLOPT_URL, q->url);
	oc.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	oc.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	oc.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	oc.easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	oc.easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ca_file != NULL)
		oc.easy_setopt(e, CURLOPT_CAINFO, ca_file);
	oc.easy_setopt(e, CURLOPT_TIMEOUT, (long)q->timeout_s);
	oc.easy_setopt(e, CURLOPT_USERAGENT, "sendq/" SENDQ_VERSION);
	oc.easy_setopt(e, CURLOPT_POSTFIELDS, q->fields);
	oc.easy_setopt(e, CURLOPT_WRITEFUNCTION, oauth_http_on_data);
	oc.easy_setopt(e, CURLOPT_WRITEDATA, q);
	oc.easy_setopt(e, CURLOPT_ERRORBUFFER, q->errbuf);
	oc.easy_setopt(e, CURLOPT_PRIVATE, q);
}

static struct oauth_http_req *
oauth_http_req_new(const char *url, const char *const *form, unsigned timeout_s)
{
	struct oauth_http_req *q;

	q = xcalloc(1, sizeof(*q));
	if ((q->easy = oc.easy_init()) == NULL)
		log_fatalx("oauth_http: curl_easy_init failed");
	q->url = xstrdup(url);
	q->fields = oauth_http_form(q->easy, form);
	q->timeout_s = timeout_s != 0 ? timeout_s : OAUTH_HTTP_TIMEOUT;
	return q;
}

static void
oauth_http_req_free(struct oauth_http_req *q)
{
	oc.easy_cleanup(q->easy);
	free(q->url);
	if (q->fields != NULL) {
		explicit_bzero(q->fields, strlen(q->fields));
		free(q->fields);
	}
	if (q->body != NULL) {
		explicit_bzero(q->body, q->len);
		free(q->body);
	}
	free(q);
}

/* The result of a finished transfer. */
static void
oauth_http_result(struct oauth_http_req *q, CURLcode rc,
    struct oauth_http_result *r)
{
	memset(r, 0, sizeof(*r));
	oc.easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &r->status);
	r->body = q->body != NULL ? q->body : "";
	r->len = q->len;
	r->transport_ok = rc == CURLE_OK;
	r->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
	if (q->too_big)
		snprintf(r->error, sizeof(r->error),
		    "token endpoint %s: answer larger than %d bytes", q->url,
		    OAUTH_BODY_MAX);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		snprintf(r->error, sizeof(r->error),
		    "token endpoint %s: timeout after %u s", q->url,
		    q->timeout_s);
	else if (rc != CURLE_OK)
		snprintf(r->error, sizeof(r->error), "token endpoint %s: %s",
		    q->url,
		    q->errbuf[0] != '\0' ? q->errbuf : oc.easy_strerror(rc));
}

static void
oauth_http_unlink(struct oauth_http_req *q)
{
	struct oauth_http_req **pp;

	for (pp = &q->h->reqs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == q) {
			*pp = q->next;
			break;
		}
}

static void
oauth_http_check_done(struct oauth_http *h)
{
	struct oauth_http_result r;
	struct oauth_http_req   *q;
	CURLMsg                 *msg;
	int                      left;
	char                    *priv;

	while ((msg = oc.multi_info_read(h->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		priv = NULL;
		oc.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
		q = (struct oauth_http_req *)(void *)priv;
		oauth_http_result(q, msg->data.result, &r);
		oc.multi_remove_handle(h->multi, q->easy);
		oauth_http_unlink(q);
		q->cb(&r, q->arg);
		oauth_http_req_free(q);
	}
}

static void
oauth_http_on_sock(evutil_socket_t fd, short what, void *arg)
{
	struct oauth_http_sock *s = arg;
	struct oauth_http      *h = s->h;
	int                     flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	oc.multi_socket_action(h->multi, fd, flags, &running);
	oauth_http_check_done(h);
}

static void
oauth_http_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct oauth_http *h = arg;
	int                running;

	(void)fd;
	(void)what;
	oc.multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	oauth_http_check_done(h);
}

static int
oauth_http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
	struct oauth_http      *h = userp;
	struct oauth_http_sock *s = socketp;
	short                   kind;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s != NULL) {
			event_del(&s->ev);
			free(s);
			oc.multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->h = h;
		s->fd = fd;
		oc.multi_assign(h->multi, fd, s);
	} else
		event_del(&s->ev);
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	event_assign(&s->ev, h->base, fd, kind, oauth_http_on_sock, s);
	event_add(&s->ev, NULL);
	return 0;
}

static int
oauth_http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct oauth_http *h = userp;
	struct timeval     tv;

	(void)multi;
	if (timeout_ms < 0) {
		evtimer_del(&h->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(&h->timer, &tv);
	return 0;
}

static void
oauth_http_global_init(void)
{
	static int done;

	if (done)
		return;
	oauth_http_load();
	if (oc.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_fatalx("oauth_http: curl_global_init failed");
	done = 1;
}

struct oauth_http *
oauth_http_new(struct event_base *base)
{
	struct oauth_http *h;

	oauth_http_global_init();
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	if ((h->multi = oc.multi_init()) == NULL)
		log_fatalx("oauth_http: curl_multi_init failed");
	evtimer_assign(&h->timer, base, oauth_http_on_timer, h);
	oc.multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
	    oauth_http_socket_cb);
	oc.multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	oc.multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, oauth_http_timer_cb);
	oc.multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

void
oauth_http_cancel(struct oauth_http_req *q)
{
	if (q == NULL)
		return;
	oc.multi_remove_handle(q->h->multi, q->easy);
	oauth_http_unlink(q);
	oauth_http_req_free(q);
}

void
oauth_http_free(struct oauth_http *h)
{
	if (h == NULL)
		return;
	/* oauth_http_cancel() unlinks the head, so this ends; the analyzer
	 * does not follow the list update. */
	while (h->reqs != NULL)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		oauth_http_cancel(h->reqs);
	oc.multi_cleanup(h->multi);
	evtimer_del(&h->timer);
	free(h);
}

struct oauth_http_req *
oauth_http_post(struct oauth_http *h, const char *url, const char *const *form,
    const char *ca_file, unsigned timeout_s, oauth_http_cb cb, void *arg)
{
	struct oauth_http_req *q;

	q = oauth_http_req_new(url, form, timeout_s);
	q->h = h;
	q->cb = cb;
	q->arg = arg;
	oauth_http_easy(q, ca_file);
	q->next = h->reqs;
	h->reqs = q;
	/* libcurl arms the timer; the transfer starts from the loop. */
	if (oc.multi_add_handle(h->multi, q->easy) != CURLM_OK)
		log_fatalx("oauth_http: curl_multi_add_handle failed");
	return q;
}

void
oauth_http_post_sync(const char *url, const char *const *form,
    const char *ca_file, unsigned timeout_s, struct oauth_http_result *r)
{
	struct oauth_http_req *q;
	CURLcode               rc;

	oauth_http_global_init();
	q = oauth_http_req_new(url, form, timeout_s);
	oauth_http_easy(q, ca_file);
	rc = oc.easy_perform(q->easy);
	oauth_http_result(q, rc, r);
	r->body = q->body != NULL ? q->body : xstrdup("");
	q->body = NULL;
	oauth_http_req_free(q);
}
