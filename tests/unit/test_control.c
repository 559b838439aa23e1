/*
 * test_control.c - the rights table of the control socket
 * (control_right_allows in daemon/control.c): who may read, read
 * everything, administer and submit, from the caller's facts; and the
 * first read at accept: a request already in the socket when the
 * connection is accepted is answered in that same turn of the loop;
 * whoami's lookups off the loop, at most CONTROL_WHOAMI_MAX at once
 * (getpwuid_r is wrapped: -Wl,--wrap in tests/CMakeLists.txt, held
 * until the test lets it go).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "param_rows.h"

#define DAEMON 998L /* sendqd's own uid in these cases */
#define USER   1001L
#define OTHER  1002L

struct test_case {
	const char          *what;
	struct control_facts f;
	int                  read, read_all, admin, submit;
};

/* { uid, daemon_uid, admin_member, submit_restricted, submit_listed } */
static struct test_case test_cases[] = {
	{ "root", { 0, DAEMON, 0, 0, 0 }, 1, 1, 1, 1 },
	{ "root, submit restricted", { 0, DAEMON, 0, 1, 0 }, 1, 1, 1, 1 },
	{ "sendqd's user", { DAEMON, DAEMON, 0, 0, 0 }, 1, 1, 1, 1 },
	{ "sendqd's user, restricted", { DAEMON, DAEMON, 0, 1, 0 }, 1, 1, 1,
	    1 },
	{ "sendqd running as root", { 0, 0, 0, 1, 0 }, 1, 1, 1, 1 },
	{ "plain user", { USER, DAEMON, 0, 0, 0 }, 1, 0, 0, 1 },
	{ "plain user, not listed", { USER, DAEMON, 0, 1, 0 }, 1, 0, 0, 0 },
	{ "plain user, listed", { USER, DAEMON, 0, 1, 1 }, 1, 0, 0, 1 },
	{ "admin_group member", { OTHER, DAEMON, 1, 0, 0 }, 1, 1, 1, 1 },
	/* admin_group is about the queue, not about sending */
	{ "admin member, not listed", { OTHER, DAEMON, 1, 1, 0 }, 1, 1, 1, 0 },
	{ "admin member, listed", { OTHER, DAEMON, 1, 1, 1 }, 1, 1, 1, 1 },
	/* no credentials: nothing at all */
	{ "unknown uid", { -1, DAEMON, 0, 0, 0 }, 0, 0, 0, 0 },
	{ "unknown uid, facts say member", { -1, DAEMON, 1, 1, 1 }, 0, 0, 0,
	    0 },
	{ "unknown uid, daemon uid unknown", { -1, -1, 0, 0, 0 }, 0, 0, 0, 0 },
};

ParameterizedTestParameters(control, right_table)
{
	return cr_make_param_array(struct test_case, test_cases,
	    sizeof(test_cases) / sizeof(test_cases[0]));
}

ParameterizedTest(struct test_case *t, control, right_table)
{
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_READ, &t->f) != 0,
	    t->read, "%s: read", t->what);
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_READ_ALL, &t->f) != 0,
	    t->read_all, "%s: read all", t->what);
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_ADMIN, &t->f) != 0,
	    t->admin, "%s: administer", t->what);
	cr_expect_eq(control_right_allows(CONTROL_RIGHT_SUBMIT, &t->f) != 0,
	    t->submit, "%s: submit", t->what);
}

/* A control socket in a fresh directory, no spool (submit unavailable):
 * enough for requests answered on the loop. */
struct ctl_fixture {
	char               dir[64];
	char               path[128];
	struct event_base *base;
	struct control    *c;
};

static void
ctl_setup(struct ctl_fixture *f)
{
	struct sq_err err = { 0 };

	snprintf(f->dir, sizeof(f->dir), "/tmp/sq-ctl-XXXXXX");
	cr_assert_not_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/c.sock", f->dir);
	f->base = event_base_new();
	cr_assert_not_null(f->base);
	cr_assert_eq(control_new(f->base, f->path, "/nonexistent-spool", NULL,
			 &f->c, &err),
	    0, "control_new: %s", err.msg);
}

static void
ctl_teardown(struct ctl_fixture *f)
{
	control_free(f->c);
	event_base_free(f->base);
	rmdir(f->dir);
}

static int
ctl_connect(const struct ctl_fixture *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0,
	    "connect: %s", strerror(errno));
	return fd;
}

/* What the daemon has answered so far, without waiting. */
static ssize_t
ctl_answer(int fd, char *buf, size_t sz)
{
	ssize_t n = recv(fd, buf, sz - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* "nosuch" on a new connection, answered in the turn that accepts it:
 * what the answer holds so far (as ctl_answer). */
static ssize_t
ctl_ask_once(struct ctl_fixture *f, char *buf, size_t sz)
{
	int     fd = ctl_connect(f);
	ssize_t n;

	cr_assert_eq(send(fd, "nosuch\n", 7, 0), 7);
	cr_assert_eq(event_base_loop(f->base, EVLOOP_ONCE), 0);
	n = ctl_answer(fd, buf, sz);
	close(fd);
	return n;
}

/* The request is in the socket before the accept: the turn of the loop
 * that accepts the connection answers it (before the first read at
 * accept, that turn only enabled reading and the next one read). */
Test(control, request_answered_at_accept)
{
	struct ctl_fixture f;
	char               buf[512];
	int                fd;

	ctl_setup(&f);
	fd = ctl_connect(&f);
	cr_assert_eq(send(fd, "nosuch\n", 7, 0), 7);
	cr_assert_eq(event_base_loop(f.base, EVLOOP_ONCE), 0);
	cr_assert_gt(ctl_answer(fd, buf, sizeof(buf)), 0,
	    "no answer after the accepting turn");
	cr_expect(strncmp(buf, "error: unknown command nosuch", 29) == 0,
	    "answer: %s", buf);
	close(fd);
	ctl_teardown(&f);
}

/* Half a line at accept: reading goes on from the loop. */
Test(control, request_split_across_accept)
{
	struct ctl_fixture f;
	char               buf[512];
	int                fd, i;

	ctl_setup(&f);
	fd = ctl_connect(&f);
	cr_assert_eq(send(fd, "nos", 3, 0), 3);
	cr_assert_eq(event_base_loop(f.base, EVLOOP_ONCE), 0);
	cr_assert_lt(ctl_answer(fd, buf, sizeof(buf)), 0, "answered early");
	cr_assert_eq(send(fd, "uch\n", 4, 0), 4);
	for (i = 0; i < 10 && ctl_answer(fd, buf, sizeof(buf)) <= 0; i++)
		cr_assert_eq(event_base_loop(f.base, EVLOOP_ONCE), 0);
	cr_expect(strncmp(buf, "error: unknown command nosuch", 29) == 0,
	    "answer: %s", buf);
	close(fd);
	ctl_teardown(&f);
}

/* A client gone before its request: freed at accept, and the next one
 * is served. */
Test(control, closed_before_request)
{
	struct ctl_fixture f;
	char               buf[512];
	int                fd;

	ctl_setup(&f);
	fd = ctl_connect(&f);
	close(fd);
	cr_assert_eq(event_base_loop(f.base, EVLOOP_ONCE), 0);
	cr_assert_gt(ctl_ask_once(&f, buf, sizeof(buf)), 0);
	ctl_teardown(&f);
}

/* getpwuid_r for whoami: every uid is "tester"; while test_pw_hold is
 * set a lookup waits (an LDAP server away), counted in test_pw_entered. */
static pthread_mutex_t test_pw_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t  test_pw_cv = PTHREAD_COND_INITIALIZER;
static int             test_pw_hold, test_pw_entered;

int __wrap_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len,
    struct passwd **res);

int
__wrap_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t len,
    struct passwd **res)
{
	pthread_mutex_lock(&test_pw_mu);
	test_pw_entered++;
	pthread_cond_broadcast(&test_pw_cv);
	while (test_pw_hold)
		pthread_cond_wait(&test_pw_cv, &test_pw_mu);
	pthread_mutex_unlock(&test_pw_mu);
	memset(pw, 0, sizeof(*pw));
	snprintf(buf, len, "tester");
	pw->pw_name = buf;
	pw->pw_uid = uid;
	*res = pw;
	return 0;
}

/* Turn the loop until n lookups are waiting in the wrapper (10 s at
 * most): between turns, wait for the next to come in. */
static int
test_pw_wait_entered(struct ctl_fixture *f, int n)
{
	struct timespec until;
	time_t          deadline = time(NULL) + 10;
	int             got;

	for (;;) {
		cr_assert_geq(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
		pthread_mutex_lock(&test_pw_mu);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 50 * 1000 * 1000;
		if (until.tv_nsec >= 1000 * 1000 * 1000) {
			until.tv_sec++;
			until.tv_nsec -= 1000 * 1000 * 1000;
		}
		if (test_pw_entered < n)
			pthread_cond_timedwait(&test_pw_cv, &test_pw_mu,
			    &until);
		got = test_pw_entered;
		pthread_mutex_unlock(&test_pw_mu);
		if (got >= n || time(NULL) > deadline)
			return got;
	}
}

/* One whoami on a new connection, turning the loop until it is answered
 * by the loop (an error) or by its thread (the fd then has the answer). */
static int
test_whoami(struct ctl_fixture *f, char *buf, size_t sz, int wait)
{
	int fd = ctl_connect(f), i;

	cr_assert_eq(send(fd, "whoami\n", 7, 0), 7);
	for (i = 0; i < 10; i++) {
		cr_assert_eq(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
		if (!wait && ctl_answer(fd, buf, sz) > 0)
			break;
	}
	return fd;
}

/* The read of a thread's answer, 10 s at most. */
static void
test_read_answer(int fd, char *buf, size_t sz)
{
	struct timeval tv = { .tv_sec = 10 };
	size_t         got = 0;
	ssize_t        n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (got < sz - 1 && (n = recv(fd, buf + got, sz - 1 - got, 0)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
}

/* Lookups that block (NSS on an LDAP server away) hold at most
 * CONTROL_WHOAMI_MAX threads: one more is told "busy" at once, by the
 * loop, which meanwhile serves others; once the lookups end, each
 * waiting client gets its name and whoami is served again. */
Test(control, whoami_busy_past_the_thread_limit_then_served_again)
{
	struct ctl_fixture f;
	char               buf[512];
	int                fds[CONTROL_WHOAMI_MAX], fd, i, ok = 0;
	time_t             deadline;

	ctl_setup(&f);
	test_pw_hold = 1;
	for (i = 0; i < CONTROL_WHOAMI_MAX; i++)
		fds[i] = test_whoami(&f, buf, sizeof(buf), 1);
	cr_assert_eq(test_pw_wait_entered(&f, CONTROL_WHOAMI_MAX),
	    CONTROL_WHOAMI_MAX, "lookups started");

	fd = test_whoami(&f, buf, sizeof(buf), 0);
	cr_expect(strncmp(buf, "error: ", 7) == 0 &&
		strstr(buf, "busy") != NULL,
	    "one more lookup: %s", buf);
	close(fd);
	/* The loop is not held up by the lookups. */
	cr_expect_gt(ctl_ask_once(&f, buf, sizeof(buf)), 0);

	pthread_mutex_lock(&test_pw_mu);
	test_pw_hold = 0;
	pthread_cond_broadcast(&test_pw_cv);
	pthread_mutex_unlock(&test_pw_mu);
	for (i = 0; i < CONTROL_WHOAMI_MAX; i++) {
		test_read_answer(fds[i], buf, sizeof(buf));
		cr_expect_str_eq(buf, "ok\ntester\n", "client %d", i);
		close(fds[i]);
	}
	/* The threads end just after their answers: whoami is served
	 * again within moments. */
	deadline = time(NULL) + 10;
	while (!ok && time(NULL) <= deadline) {
		fd = test_whoami(&f, buf, sizeof(buf), 1);
		test_read_answer(fd, buf, sizeof(buf));
		ok = strcmp(buf, "ok\ntester\n") == 0;
		close(fd);
	}
	cr_expect(ok, "whoami after the lookups ended: %s", buf);
	ctl_teardown(&f);
}
