/*
 * tls_sink.c - a fast SMTP sink over TLS for the benchmark (scripts/bench).
 *
 *   tls_sink CERT KEY [STARTTLS_PORT [IMPLICIT_PORT]]
 *
 * Listens on 127.0.0.1: STARTTLS_PORT offers STARTTLS (and accepts mail
 * before it too), IMPLICIT_PORT speaks TLS from the first byte; a port of
 * 0 (the default) is chosen by the kernel.  Prints one line
 *   ready starttls=PORT implicit=PORT
 * on stdout, then answers every line read on stdin with one line
 *   msgs=N conns=N bytes=N last=SECONDS
 * where msgs counts the messages accepted (the 250 after the final dot),
 * conns the connections accepted, bytes the message bytes, and last is
 * CLOCK_MONOTONIC (the clock of Python's time.monotonic()) at the last
 * acceptance, 0 before any.  End of stdin ends the sink (exit 0).
 *
 * Every connection has its own thread with blocking I/O.  Replies are
 * buffered and sent when the client has nothing more pipelined (before a
 * read would block), as RFC 2920 allows.  EHLO advertises PIPELINING,
 * 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, SIZE and (before TLS, on the
 * STARTTLS port) STARTTLS.  Message data is counted and dropped: the
 * sink writes nothing to disk and never refuses anything.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#define SINK_BUF 65536

static gnutls_certificate_credentials_t sink_cred;
static gnutls_priority_t                sink_prio;
static atomic_ulong                     sink_msgs;
static atomic_ulong                     sink_conns;
static atomic_ulong                     sink_bytes;
static atomic_llong                     sink_last_ns;

struct sink_conn {
	int              fd;
	int              implicit;
	gnutls_session_t tls;
	char             in[SINK_BUF];
	size_t           in_off;
	size_t           in_len;
	char             out[SINK_BUF];
	size_t           out_len;
};

static int sink_flush(struct sink_conn *c);

static long long
sink_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int
sink_reply(struct sink_conn *c, const char *s)
{
	size_t len = strlen(s);

	if (c->out_len + len > sizeof(c->out) && sink_flush(c) != 0)
		return -1;
	memcpy(c->out + c->out_len, s, len);
	c->out_len += len;
	return 0;
}

static int
sink_flush(struct sink_conn *c)
{
	size_t  off = 0;
	ssize_t n;

	while (off < c->out_len) {
		if (c->tls != NULL)
			n = gnutls_record_send(c->tls, c->out + off,
			    c->out_len - off);
		else
			n = send(c->fd, c->out + off, c->out_len - off,
			    MSG_NOSIGNAL);
		if (n < 0 &&
		    (c->tls != NULL ?
			    (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) :
			    errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	c->out_len = 0;
	return 0;
}

/* Refill the input buffer; replies are flushed first when nothing more
 * is buffered (the client waits for them).  0, or -1 at EOF/error. */
static int
sink_fill(struct sink_conn *c)
{
	ssize_t n;

	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_len == sizeof(c->in))
		return -1; /* a line longer than the buffer */
	if (c->out_len > 0 &&
	    (c->tls == NULL || gnutls_record_check_pending(c->tls) == 0) &&
	    sink_flush(c) != 0)
		return -1;
	for (;;) {
		if (c->tls != NULL)
			n = gnutls_record_recv(c->tls, c->in + c->in_len,
			    sizeof(c->in) - c->in_len);
		else
			n = recv(c->fd, c->in + c->in_len,
			    sizeof(c->in) - c->in_len, 0);
		if (n < 0 &&
		    (c->tls != NULL ?
			    (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) :
			    errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		c->in_len += (size_t)n;
		return 0;
	}
}

/* Next line (without CRLF) into line and len; 0, or -1 at EOF. */
static int
sink_line(struct sink_conn *c, char **line, size_t *len)
{
	char *nl;

	for (;;) {
		nl = memchr(c->in + c->in_off, '\n', c->in_len - c->in_off);
		if (nl != NULL)
			break;
		if (sink_fill(c) != 0)
			return -1;
	}
	*line = c->in + c->in_off;
	*len = (size_t)(nl - *line);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	c->in_off = (size_t)(nl - c->in) + 1;
	return 0;
}

static int
sink_handshake(struct sink_conn *c)
{
	int rc;

	if (gnutls_init(&c->tls, GNUTLS_SERVER) != 0)
		return -1;
	gnutls_priority_set(c->tls, sink_prio);
	gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, sink_cred);
	gnutls_certificate_server_set_request(c->tls, GNUTLS_CERT_IGNORE);
	gnutls_transport_set_int(c->tls, c->fd);
	do
		rc = gnutls_handshake(c->tls);
	while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
	return rc < 0 ? -1 : 0;
}

static int
sink_cmd(const char *line, size_t len, const char *verb)
{
	size_t n = strlen(verb);

	return len >= n && strncasecmp(line, verb, n) == 0;
}

/* Read DATA up to the final dot; 0, or -1 at EOF. */
static int
sink_data(struct sink_conn *c)
{
	unsigned long bytes = 0;
	char         *line;
	size_t        len;

	for (;;) {
		if (sink_line(c, &line, &len) != 0)
			return -1;
		if (len == 1 && line[0] == '.')
			break;
		bytes += len + 2;
	}
	atomic_fetch_add(&sink_bytes, bytes);
	atomic_fetch_add(&sink_msgs, 1);
	atomic_store(&sink_last_ns, sink_now_ns());
	return sink_reply(c, "250 2.0.0 Ok: queued\r\n");
}

static void
sink_session(struct sink_conn *c)
{
	char  *line;
	size_t len;

	if (c->implicit && sink_handshake(c) != 0)
		return;
	if (sink_reply(c, "220 sink ESMTP\r\n") != 0)
		return;
	while (sink_line(c, &line, &len) == 0) {
		if (sink_cmd(line, len, "EHLO")) {
			sink_reply(c,
			    "250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-"
			    "SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n");
			if (c->tls == NULL)
				sink_reply(c, "250-STARTTLS\r\n");
			sink_reply(c, "250 SIZE 104857600\r\n");
		} else if (sink_cmd(line, len, "HELO"))
			sink_reply(c, "250 sink\r\n");
		else if (sink_cmd(line, len, "STARTTLS") && c->tls == NULL) {
			if (sink_reply(c, "220 2.0.0 Go ahead\r\n") != 0 ||
			    sink_flush(c) != 0)
				return;
			c->in_off = c->in_len = 0;
			if (sink_handshake(c) != 0)
				return;
		} else if (sink_cmd(line, len, "MAIL") ||
		    sink_cmd(line, len, "RCPT"))
			sink_reply(c, "250 2.1.0 Ok\r\n");
		else if (sink_cmd(line, len, "DATA")) {
			sink_reply(c,
			    "354 End data with <CR><LF>.<CR><LF>\r\n");
			if (sink_data(c) != 0)
				return;
		} else if (sink_cmd(line, len, "RSET") ||
		    sink_cmd(line, len, "NOOP"))
			sink_reply(c, "250 2.0.0 Ok\r\n");
		else if (sink_cmd(line, len, "QUIT")) {
			sink_reply(c, "221 2.0.0 Bye\r\n");
			sink_flush(c);
			if (c->tls != NULL)
				gnutls_bye(c->tls, GNUTLS_SHUT_WR);
			return;
		} else
			sink_reply(c, "502 5.5.2 Command not recognized\r\n");
	}
}

static void *
sink_thread(void *arg)
{
	struct sink_conn *c = arg;

	sink_session(c);
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	close(c->fd);
	free(c);
	return NULL;
}

struct sink_listener {
	int fd;
	int implicit;
};

static void *
sink_accept_loop(void *arg)
{
	struct sink_listener *l = arg;
	pthread_attr_t        attr;
	pthread_t             t;
	int                   fd, one = 1;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 512 * 1024);
	for (;;) {
		struct sink_conn *c;

		if ((fd = accept(l->fd, NULL, NULL)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE)
				continue;
			perror("tls_sink: accept");
			exit(1);
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		atomic_fetch_add(&sink_conns, 1);
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->implicit = l->implicit;
		if (pthread_create(&t, &attr, sink_thread, c) != 0) {
			close(fd);
			free(c);
		}
	}
	return NULL;
}

static int
sink_listen(int port, int *bound)
{
	struct sockaddr_in sin;
	socklen_t          sl = sizeof(sin);
	int                fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((unsigned short)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(fd, 512) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
		close(fd);
		return -1;
	}
	*bound = ntohs(sin.sin_port);
	return fd;
}

int
main(int argc, char **argv)
{
	static struct sink_listener ls[2];
	char                        line[256];
	pthread_t                   t;
	int                         ports[2] = { 0, 0 }, i;

	if (argc < 3 || argc > 5) {
		fprintf(stderr,
		    "usage: tls_sink CERT KEY [STARTTLS_PORT "
		    "[IMPLICIT_PORT]]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (gnutls_global_init() != 0 ||
	    gnutls_certificate_allocate_credentials(&sink_cred) != 0 ||
	    gnutls_certificate_set_x509_key_file(sink_cred, argv[1], argv[2],
		GNUTLS_X509_FMT_PEM) != 0 ||
	    gnutls_priority_init(&sink_prio, "NORMAL", NULL) != 0) {
		fprintf(stderr, "tls_sink: cannot load %s / %s\n", argv[1],
		    argv[2]);
		return 2;
	}
	for (i = 0; i < 2; i++) {
		int want = argc > 3 + i ? atoi(argv[3 + i]) : 0;

		ls[i].implicit = i;
		if ((ls[i].fd = sink_listen(want, &ports[i])) < 0) {
			perror("tls_sink: listen");
			return 2;
		}
	}
	for (i = 0; i < 2; i++)
		if (pthread_create(&t, NULL, sink_accept_loop, &ls[i]) != 0)
			return 2;
	printf("ready starttls=%d implicit=%d\n", ports[0], ports[1]);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		long long last = atomic_load(&sink_last_ns);

		printf("msgs=%lu conns=%lu bytes=%lu last=%lld.%09lld\n",
		    atomic_load(&sink_msgs), atomic_load(&sink_conns),
		    atomic_load(&sink_bytes), last / 1000000000LL,
		    last % 1000000000LL);
		fflush(stdout);
	}
	return 0;
}
