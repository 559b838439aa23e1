/*
 * oauth_http.h - HTTPS POST of a form to an OAuth endpoint, with libcurl
 * (GnuTLS build) driven from the libevent loop through the curl multi
 * socket API, and a blocking variant for sendqctl.
 *
 * Owns: the curl multi handle, one easy handle per request, the socket
 * and timer events libcurl asks for.
 * May call: libcurl, libevent, util, log.  Never blocks the loop: name
 * resolution is libcurl's (threaded resolver; /etc/hosts first), every
 * socket is non-blocking and watched by an event.
 *
 * Every request: https only, no redirects, certificate and host name
 * verification on (ca_file, or the system store when NULL), a total time
 * limit, the answer bounded by OAUTH_BODY_MAX (a larger one fails).
 *
 * DIAGNOSTICS: result.error is "token endpoint https://...: Couldn't
 * connect to server", "...: Timeout was reached (10 s)", or
 * "...: SSL peer certificate or SSH remote key was not OK"; the URL has
 * no secret (form values never appear in messages).
 */
#ifndef SENDQ_OAUTH_HTTP_H
#define SENDQ_OAUTH_HTTP_H

#include <stddef.h>

#include "util.h"

struct event_base;
struct oauth_http;
struct oauth_http_req;

#define OAUTH_HTTP_TIMEOUT 30 /* seconds for a whole request */

struct oauth_http_result {
	int         transport_ok; /* the HTTP exchange completed */
	long        status;       /* HTTP status, 0 without one */
	const char *body;         /* valid during the callback */
	size_t      len;
	char        error[384]; /* when !transport_ok */
	int         timed_out;  /* !transport_ok: the time limit */
};

typedef void (*oauth_http_cb)(const struct oauth_http_result *r, void *arg);

/* One multi handle for base; calls curl_global_init() the first time. */
struct oauth_http *oauth_http_new(struct event_base *base);
/* Cancels every request (no callbacks); NULL accepted. */
void oauth_http_free(struct oauth_http *h);

/*
 * POST form (NULL-terminated name, value, name, value, ... list; each
 * percent-encoded by libcurl) to url.  cb is called exactly once, later,
 * from the loop, unless the request is cancelled first.  Returns the
 * request (owned by h; freed after cb returns).  timeout_s: 0 =
 * OAUTH_HTTP_TIMEOUT.
 */
struct oauth_http_req *
oauth_http_post(struct oauth_http *h, const char *url, const char *const *form,
    const char *ca_file, unsigned timeout_s, oauth_http_cb cb, void *arg);
/* Stop a request; its callback is never called.  Not from inside it. */
void oauth_http_cancel(struct oauth_http_req *req);

/*
 * The same, blocking (for sendqctl).  Always fills *r (r->body is
 * malloc'ed: free it with free()); a transport error is
 * r->transport_ok = 0 with r->error.
 */
void oauth_http_post_sync(const char *url, const char *const *form,
    const char *ca_file, unsigned timeout_s, struct oauth_http_result *r);

#endif
