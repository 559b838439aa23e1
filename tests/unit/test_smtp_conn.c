/*
 * test_smtp_conn.c - smtp_conn's system calls per message, and a body
 * that is not the size it was said to be, against a scripted SMTP server
 * on loopback (tls = none) run by the same event loop.
 *
 * The server answers the greeting, EHLO (PIPELINING, SIZE), MAIL, RCPT,
 * DATA (354), the final dot (250) and QUIT (221), reading what comes
 * with read() and keeping each message's body.  The test binary is
 * linked with --wrap for pread, recv and fstat (tests/CMakeLists.txt):
 * the wrappers count smtp_conn's calls, and the recv()s that found the
 * socket empty (EAGAIN).  Each test runs the loop until the connection
 * is gone (smtp_conn_on_gone), under a deadline.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "smtp_conn.h"
#include "util.h"

#define TEST_DEADLINE_SECS 10
#define TEST_MAX_MSGS      4

/* --- the counting wrappers (-Wl,--wrap=NAME) --------------------------- */

ssize_t __real_pread(int fd, void *buf, size_t len, off_t off);
ssize_t __wrap_pread(int fd, void *buf, size_t len, off_t off);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
int     __real_fstat(int fd, struct stat *st);
int     __wrap_fstat(int fd, struct stat *st);

static unsigned test_preads, test_recvs, test_recv_empty, test_fstats;

ssize_t
__wrap_pread(int fd, void *buf, size_t len, off_t off)
{
	test_preads++;
	return __real_pread(fd, buf, len, off);
}

ssize_t
__wrap_recv(int fd, void *buf, size_t len, int flags)
{
	ssize_t n = __real_recv(fd, buf, len, flags);

	test_recvs++;
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		test_recv_empty++;
	return n;
}

int
__wrap_fstat(int fd, struct stat *st)
{
	test_fstats++;
	return __real_fstat(fd, st);
}

/* --- the scripted server ------------------------------------------------ */

struct test_server {
	int           lfd, fd;
	struct event *ev_accept, *ev_read;
	char          in[16384];
	size_t        in_len;
	int           in_data; /* between 354 and the final dot */
	char          body[8192];
	size_t        body_len;
	unsigned      dots; /* messages taken */
};

static struct event_base *test_base;
static struct evdns_base *test_dns;
static struct test_server test_srv;

/* What the client does and saw. */
static struct {
	struct smtp_conn       *c;
	const char             *body; /* of every message */
	uint64_t                size; /* body_size given (0: unknown) */
	unsigned                to_send, sent, done;
	int                     closed; /* on_closed */
	struct smtp_conn_result closed_r;
	int                     gone;
	char                    path[64];
} test_cl;

static void
test_srv_say(const char *s)
{
	size_t len = strlen(s);

	cr_assert_eq(write(test_srv.fd, s, len), (ssize_t)len);
}

/* One line of the client (without CRLF). */
static void
test_srv_line(const char *line, size_t len)
{
	if (test_srv.in_data) {
		if (len == 1 && line[0] == '.') {
			test_srv.in_data = 0;
			test_srv.dots++;
			test_srv_say("250 2.0.0 taken\r\n");
			return;
		}
		cr_assert_lt(test_srv.body_len + len + 2,
		    sizeof(test_srv.body));
		memcpy(test_srv.body + test_srv.body_len, line, len);
		memcpy(test_srv.body + test_srv.body_len + len, "\r\n", 2);
		test_srv.body_len += len + 2;
		return;
	}
	if (len >= 4 && strncasecmp(line, "EHLO", 4) == 0)
		test_srv_say("250-test\r\n250-PIPELINING\r\n"
			     "250 SIZE 1000000\r\n");
	else if (len >= 4 && strncasecmp(line, "DATA", 4) == 0) {
		test_srv.in_data = 1;
		test_srv.body_len = 0;
		test_srv_say("354 go on\r\n");
	} else if (len >= 4 && strncasecmp(line, "QUIT", 4) == 0)
		test_srv_say("221 bye\r\n");
	else
		test_srv_say("250 ok\r\n");
}

static void
test_srv_on_read(evutil_socket_t fd, short what, void *arg)
{
	ssize_t n;
	char   *nl;
	size_t  used;

	(void)what;
	(void)arg;
	n = read(fd, test_srv.in + test_srv.in_len,
	    sizeof(test_srv.in) - test_srv.in_len);
	if (n <= 0) {
		event_del(test_srv.ev_read);
		return;
	}
	test_srv.in_len += (size_t)n;
	used = 0;
	while ((nl = memchr(test_srv.in + used, '\n',
		    test_srv.in_len - used)) != NULL) {
		size_t len = (size_t)(nl - (test_srv.in + used));

		if (len > 0 && test_srv.in[used + len - 1] == '\r')
			len--;
		test_srv_line(test_srv.in + used, len);
		used = (size_t)(nl - test_srv.in) + 1;
	}
	memmove(test_srv.in, test_srv.in + used, test_srv.in_len - used);
	test_srv.in_len -= used;
}

static void
test_srv_on_accept(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	(void)arg;
	test_srv.fd = accept(fd, NULL, NULL);
	cr_assert_geq(test_srv.fd, 0);
	test_srv.ev_read = event_new(test_base, test_srv.fd,
	    EV_READ | EV_PERSIST, test_srv_on_read, NULL);
	event_add(test_srv.ev_read, NULL);
	test_srv_say("220 test ESMTP\r\n");
}

static unsigned
test_srv_start(void)
{
	struct sockaddr_in sa;
	socklen_t          len = sizeof(sa);

	memset(&test_srv, 0, sizeof(test_srv));
	test_srv.fd = -1;
	test_srv.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(test_srv.lfd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(test_srv.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(test_srv.lfd, 4), 0);
	cr_assert_eq(getsockname(test_srv.lfd, (struct sockaddr *)&sa, &len),
	    0);
	test_srv.ev_accept = event_new(test_base, test_srv.lfd,
	    EV_READ | EV_PERSIST, test_srv_on_accept, NULL);
	event_add(test_srv.ev_accept, NULL);
	return ntohs(sa.sin_port);
}

/* --- the client ----------------------------------------------------------- */

static const char *const test_rcpts[] = { "bob@example.net" };

static void
test_cl_send(struct smtp_conn *c)
{
	struct smtp_conn_message msg;

	memset(&msg, 0, sizeof(msg));
	msg.id = "test";
	msg.sender = "alice@example.org";
	msg.rcpts = test_rcpts;
	msg.n_rcpts = 1;
	msg.body_size = test_cl.size;
	msg.body_fd = open(test_cl.path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(msg.body_fd, 0);
	cr_assert_eq(smtp_conn_send(c, &msg), 0);
	test_cl.sent++;
}

static void
test_cl_on_ready(struct smtp_conn *c, void *arg)
{
	(void)arg;
	if (test_cl.sent == 0)
		/* Counted from the first message on: the greeting may be
		 * read before the server has written it. */
		test_recvs = test_recv_empty = 0;
	if (test_cl.sent < test_cl.to_send)
		test_cl_send(c);
	else
		smtp_conn_close(c);
}

static void
test_cl_on_message_done(struct smtp_conn *c, const struct smtp_conn_result *r,
    void *arg)
{
	(void)c;
	(void)arg;
	cr_expect_eq(r->fact.code, 250, "message: %s", r->reply);
	test_cl.done++;
}

static void
test_cl_on_closed(struct smtp_conn *c, const struct smtp_conn_result *r,
    void *arg)
{
	(void)c;
	(void)arg;
	test_cl.closed = 1;
	test_cl.closed_r = *r;
}

static void
test_cl_on_gone(struct smtp_conn *c, void *arg)
{
	(void)c;
	(void)arg;
	test_cl.gone = 1;
	event_base_loopbreak(test_base);
}

static void
test_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(test_base);
}

/* Send n messages of body (body_size size) over one connection, one
 * after the other, and run until the connection is gone. */
static void
test_run(const char *body, uint64_t size, unsigned n)
{
	struct config_smarthost    sh;
	struct smtp_conn_params    params;
	struct smtp_conn_callbacks cb;
	struct event              *deadline;
	struct timeval             tv = { TEST_DEADLINE_SECS, 0 };
	int                        fd;

	log_init("test_smtp_conn", LOG_LEVEL_WARN);
	test_base = event_base_new();
	test_dns = evdns_base_new(test_base, 0);
	cr_assert_not_null(test_base);
	cr_assert_not_null(test_dns);
	memset(&test_cl, 0, sizeof(test_cl));
	test_cl.body = body;
	test_cl.size = size;
	test_cl.to_send = n;
	snprintf(test_cl.path, sizeof(test_cl.path),
	    "/tmp/sendq-test-conn.XXXXXX");
	fd = mkstemp(test_cl.path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	close(fd);

	memset(&sh, 0, sizeof(sh));
	sh.name = (char *)"test";
	sh.host = (char *)"127.0.0.1";
	sh.port = test_srv_start();
	sh.tls = CONFIG_TLS_NONE;
	sh.timeout_connect = sh.timeout_greeting = sh.timeout_command =
	    sh.timeout_data_block = sh.timeout_data_end = TEST_DEADLINE_SECS;
	sh.session_max = TEST_DEADLINE_SECS;
	memset(&params, 0, sizeof(params));
	params.base = test_base;
	params.dns = test_dns;
	params.smarthost = &sh;
	params.ehlo_name = "client.test";
	memset(&cb, 0, sizeof(cb));
	cb.on_ready = test_cl_on_ready;
	cb.on_message_done = test_cl_on_message_done;
	cb.on_closed = test_cl_on_closed;
	test_preads = test_recvs = test_recv_empty = test_fstats = 0;
	test_cl.c = smtp_conn_open(&params, &cb, NULL);
	smtp_conn_on_gone(test_cl.c, test_cl_on_gone, NULL);
	deadline = evtimer_new(test_base, test_on_deadline, NULL);
	evtimer_add(deadline, &tv);
	event_base_dispatch(test_base);
	cr_assert(test_cl.gone, "the connection did not end in %d s",
	    TEST_DEADLINE_SECS);

	unlink(test_cl.path);
	event_free(deadline);
	if (test_srv.ev_read != NULL)
		event_free(test_srv.ev_read);
	event_free(test_srv.ev_accept);
	if (test_srv.fd >= 0)
		close(test_srv.fd);
	close(test_srv.lfd);
	evdns_base_free(test_dns, 0);
	event_base_free(test_base);
}

#define TEST_BODY \
	"From: alice@example.org\r\nTo: bob@example.net\r\nSubject: t\r\n" \
	"\r\nThe body.\r\nIts second line.\r\n"

TestSuite(smtp_conn);

Test(smtp_conn, a_body_of_known_size_is_one_pread_and_no_fstat)
{
	test_run(TEST_BODY, strlen(TEST_BODY), 3);
	cr_assert_eq(test_cl.done, 3);
	cr_assert_eq(test_srv.dots, 3);
	cr_assert_eq(test_srv.body_len, strlen(TEST_BODY));
	cr_assert_arr_eq(test_srv.body, TEST_BODY, strlen(TEST_BODY));
	cr_assert_eq(test_preads, 3, "%u preads for 3 messages", test_preads);
	cr_assert_eq(test_fstats, 0, "%u fstats", test_fstats);
}

Test(smtp_conn, a_body_of_unknown_size_is_one_fstat_and_one_pread)
{
	test_run(TEST_BODY, 0, 1);
	cr_assert_eq(test_cl.done, 1);
	cr_assert_eq(test_srv.dots, 1);
	cr_assert_arr_eq(test_srv.body, TEST_BODY, strlen(TEST_BODY));
	cr_assert_eq(test_preads, 1, "%u preads", test_preads);
	cr_assert_eq(test_fstats, 1, "%u fstats", test_fstats);
}

/* Replies are read when the loop says they came: never a recv() that
 * finds the socket empty, neither right after a message's commands are
 * written (the owner's smtp_conn_send) nor after a short read. */
Test(smtp_conn, no_recv_finds_the_socket_empty)
{
	test_run(TEST_BODY, strlen(TEST_BODY), 3);
	cr_assert_eq(test_cl.done, 3);
	cr_assert_eq(test_recv_empty, 0, "%u of %u recv() found nothing",
	    test_recv_empty, test_recvs);
}

static void
test_changed(uint64_t size, const char *word)
{
	char want[96];

	test_run(TEST_BODY, size, 1);
	cr_assert_eq(test_cl.done, 0);
	cr_assert(test_cl.closed);
	cr_assert_eq(test_cl.closed_r.fact.event, RETRY_EVENT_LOCAL);
	cr_assert_eq(test_cl.closed_r.n_rcpts, 1, "reported with its message");
	snprintf(want, sizeof(want), "%s than its %llu bytes", word,
	    (unsigned long long)size);
	cr_assert_not_null(strstr(test_cl.closed_r.reply, want), "%s",
	    test_cl.closed_r.reply);
	/* Dropped before the final dot: the server took nothing. */
	cr_assert_eq(test_srv.dots, 0);
}

Test(smtp_conn, a_body_shorter_than_its_size_fails_before_the_dot)
{
	test_changed(strlen(TEST_BODY) + 10, "shorter");
}

Test(smtp_conn, a_body_longer_than_its_size_fails_before_the_dot)
{
	test_changed(strlen(TEST_BODY) - 10, "longer");
}
