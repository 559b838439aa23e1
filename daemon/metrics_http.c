/*
 * metrics_http.c - the HTTP endpoint of [sendq] metrics_listen (contract:
 * metrics_http.h): GET /metrics answers metrics_render()'s exposition
 * with Content-Type text/plain; version=0.0.4; anything else is 404 (405
 * for another method on /metrics).  libevent's evhttp serves it from the
 * event loop; a unix socket is made here (stale file removed, mode 0660)
 * and handed to evhttp.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "util.h"

#define METRICS_HTTP_OUT_MAX (4u * 1024 * 1024)
#define METRICS_HTTP_TIMEOUT 10 /* seconds per request */

struct metrics_http {
	struct evhttp *http;
	char          *unix_path; /* NULL: TCP */
};

int
metrics_http_parse(const char *spec, struct metrics_http_addr *a,
    struct sq_err *err)
{
	const char   *colon, *p, *start;
	size_t        n;
	unsigned long port = 0;

	memset(a, 0, sizeof(*a));
	if (strncmp(spec, "unix:", 5) == 0) {
		if (spec[5] != '/' ||
		    strlen(spec + 5) >=
			sizeof(((struct sockaddr_un *)0)->sun_path))
			return sq_err_set(err, SQ_ECONFIG,
			    "metrics_listen: unix:PATH needs an absolute PATH "
			    "of at most 107 bytes");
		a->is_unix = 1;
		snprintf(a->host, sizeof(a->host), "%s", spec + 5);
		return 0;
	}
	if (spec[0] == '[') {
		if ((colon = strstr(spec, "]:")) == NULL)
			goto bad;
		n = (size_t)(colon - spec - 1);
		p = colon + 2;
		if (n == 0 || n >= sizeof(a->host))
			goto bad;
		memcpy(a->host, spec + 1, n);
	} else {
		if ((colon = strrchr(spec, ':')) == NULL ||
		    memchr(spec, ':', (size_t)(colon - spec)) != NULL)
			goto bad;
		n = (size_t)(colon - spec);
		p = colon + 1;
		if (n == 0 || n >= sizeof(a->host))
			goto bad;
		memcpy(a->host, spec, n);
	}
	for (start = p; *p >= '0' && *p <= '9' && port <= 65535; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (*p != '\0' || p == start || port == 0 || port > 65535)
		goto bad;
	a->port = (unsigned)port;
	return 0;
bad:
	return sq_err_set(err, SQ_ECONFIG,
	    "metrics_listen: \"%.200s\" is not ADDRESS:PORT ([ADDRESS]:PORT "
	    "for IPv6) or unix:PATH",
	    spec);
}

static void
metrics_http_on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *body;
	struct buf       out;
	const char      *uri = evhttp_request_get_uri(req);

	(void)arg;
	if (uri == NULL ||
	    (strcmp(uri, "/metrics") != 0 &&
		strncmp(uri, "/metrics?", 9) != 0)) {
		evhttp_send_error(req, HTTP_NOTFOUND, "try /metrics");
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evhttp_send_error(req, HTTP_BADMETHOD, NULL);
		return;
	}
	buf_init(&out, METRICS_HTTP_OUT_MAX);
	if (metrics_render(&out, (int64_t)time(NULL)) != 0) {
		buf_fini(&out);
		evhttp_send_error(req, HTTP_INTERNAL, "metrics too large");
		return;
	}
	body = evbuffer_new();
	if (body == NULL || evbuffer_add(body, out.data, out.len) != 0) {
		if (body != NULL)
			evbuffer_free(body);
		buf_fini(&out);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	buf_fini(&out);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	evhttp_send_reply(req, HTTP_OK, "OK", body);
	evbuffer_free(body);
}

/* A listening unix socket at path (a stale one replaced), mode 0660. */
static int
metrics_http_unix(const char *path, struct sq_err *err)
{
	struct sockaddr_un sun;
	int                fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path))
		return sq_err_set(err, -ENAMETOOLONG,
		    "metrics_listen: unix:%s: path too long", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return sq_err_set(err, -errno, "metrics_listen: socket: %s",
		    strerror(errno));
	if (unlink(path) != 0 && errno != ENOENT) {
		rc = -errno;
		close(fd);
		return sq_err_set(err, rc, "metrics_listen: remove %s: %s",
		    path, strerror(-rc));
	}
	/* The path appears only once the socket listens. */
	if ((rc = sq_listen_unix(fd, path, 0660, 16)) != 0) {
		close(fd);
		return sq_err_set(err, rc, "metrics_listen: unix:%s: %s", path,
		    strerror(-rc));
	}
	return fd;
}

int
metrics_http_new(struct event_base *base, const char *spec,
    struct metrics_http **out, struct sq_err *err)
{
	struct metrics_http_addr a;
	struct metrics_http     *m;
	int                      fd, rc;

	*out = NULL;
	if ((rc = metrics_http_parse(spec, &a, err)) != 0)
		return rc;
	m = xcalloc(1, sizeof(*m));
	if ((m->http = evhttp_new(base)) == NULL) {
		free(m);
		return sq_err_set(err, -ENOMEM,
		    "metrics_listen: evhttp_new failed");
	}
	evhttp_set_timeout(m->http, METRICS_HTTP_TIMEOUT);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(m->http, metrics_http_on_request, m);
	if (a.is_unix) {
		if ((fd = metrics_http_unix(a.host, err)) < 0) {
			metrics_http_free(m);
			return fd;
		}
		if (evhttp_accept_socket(m->http, fd) != 0) {
			close(fd);
			metrics_http_free(m);
			return sq_err_set(err, -EIO,
			    "metrics_listen: cannot serve unix:%s", a.host);
		}
		m->unix_path = xstrdup(a.host);
	} else if (evhttp_bind_socket(m->http, a.host, (uint16_t)a.port) != 0) {
		rc = errno != 0 ? -errno : -EADDRNOTAVAIL;
		metrics_http_free(m);
		return sq_err_set(err, rc,
		    "metrics_listen: cannot listen on %s: %s", spec,
		    strerror(-rc));
	}
	log_info("metrics: listening on %s (GET /metrics)", spec);
	*out = m;
	return 0;
}

void
metrics_http_free(struct metrics_http *m)
{
	if (m == NULL)
		return;
	if (m->http != NULL)
		evhttp_free(m->http);
	if (m->unix_path != NULL) {
		(void)unlink(m->unix_path);
		free(m->unix_path);
	}
	free(m);
}
