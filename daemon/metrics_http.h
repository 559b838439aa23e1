/*
 * metrics_http.h - [sendq] metrics_listen: the Prometheus endpoint of
 * sendqd, GET /metrics over HTTP/1.1 (libevent's evhttp, in the event
 * loop) on ADDRESS:PORT, [ADDRESS]:PORT or unix:PATH (mode 0660).  The
 * exposition is metrics_render()'s (metrics.h).  No authentication: bind
 * it to loopback or a unix socket.
 *
 * Owns: the listener.  May call: metrics, buf, util, log, libevent.
 */
#ifndef SENDQ_METRICS_HTTP_H
#define SENDQ_METRICS_HTTP_H

#include "util.h"

struct event_base;
struct metrics_http;

/* metrics_listen parsed: host (address literal, no brackets) and port,
 * or is_unix with the path in host. */
struct metrics_http_addr {
	int      is_unix;
	char     host[128];
	unsigned port;
};

/* Parse spec: 0, or SQ_ECONFIG with err saying what is accepted.  Pure. */
int metrics_http_parse(const char *spec, struct metrics_http_addr *a,
    struct sq_err *err);

/* Listen on spec; 0 and *out, or a negative code with err. */
int metrics_http_new(struct event_base *base, const char *spec,
    struct metrics_http **out, struct sq_err *err);
/* Stop, remove a unix socket file; NULL accepted. */
void metrics_http_free(struct metrics_http *m);

#endif
