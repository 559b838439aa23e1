/*
 * bench_tool.c - the load generators and baselines of scripts/bench.
 *
 *   bench_tool none
 *	The do-nothing injector: reads stdin to its end, exits 0.
 *   bench_tool fsync DIR
 *	The write+fsync injector: reads stdin, writes it to DIR/tmp/NAME
 *	(O_EXCL), fsync, renames it to DIR/new/NAME, fsync(DIR/new), exits
 *	0; what any durable queue must do at least once per message.
 *   bench_tool smtp HOST PORT SESSIONS MESSAGES reuse|close MSGFILE
 *	Sends MESSAGES copies of MSGFILE (LF or CRLF lines; dot-stuffed
 *	here) over plain SMTP from SESSIONS parallel sessions.  reuse: each
 *	session keeps its connection and pipelines MAIL, RCPT and DATA
 *	(RFC 2920); close: a connection (EHLO ... QUIT) per message.
 *	Prints "sent=N failed=N seconds=S" and exits 0 when none failed.
 *   bench_tool fill SPOOL_DIR MESSAGES MSGFILE
 *	Queues MESSAGES copies of MSGFILE in the spool through the spool
 *	library itself (group commits of 256): a full queue for the drain
 *	and backlog measurements, whatever the spool's file format.
 *   bench_tool commit-model DIR files|journal GROUP GROUPS < MSGFILE
 *	A model of two ways to make GROUPS groups of GROUP messages durable,
 *	outside sendqd: "files" is the spool's shape (per message a body in
 *	DIR/q and an envelope in DIR/t, the writeback of all started, then
 *	fdatasync'ed from 8 threads, the envelopes renamed into DIR/q, one
 *	fsync of DIR/q); "journal" writes every message of the group, with
 *	a small header, into one file whose blocks were written and synced
 *	beforehand, and fdatasyncs it once.  Prints
 *	"messages=N seconds=S".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "spool.h"
#include "util.h"

static char  *bt_body; /* CRLF, dot-stuffed, ending in CRLF.CRLF */
static size_t bt_body_len;
static char  *bt_raw; /* the file as read */
static size_t bt_raw_len;

static int
bt_read_fd(int fd, char **out, size_t *outlen)
{
	size_t  cap = 65536, len = 0;
	char   *p = malloc(cap);
	ssize_t n;

	if (p == NULL)
		return -1;
	for (;;) {
		if (len == cap && (p = realloc(p, cap *= 2)) == NULL)
			return -1;
		n = read(fd, p + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(p);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = p;
	*outlen = len;
	return 0;
}

static int
bt_none(void)
{
	char buf[65536];

	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static int
bt_fsync(const char *dir)
{
	char               tmp[4096], new[4096], name[64], *data;
	unsigned long long r;
	size_t             len, off = 0;
	int                fd, dfd;

	if (bt_read_fd(0, &data, &len) != 0 ||
	    getrandom(&r, sizeof(r), 0) != sizeof(r))
		return 75;
	snprintf(name, sizeof(name), "%016llx", r);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", dir, name);
	snprintf(new, sizeof(new), "%s/new/%s", dir, name);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return 75;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n <= 0)
			return 75;
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, new) != 0)
		return 75;
	snprintf(tmp, sizeof(tmp), "%s/new", dir);
	if ((dfd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(dfd) != 0)
		return 75;
	close(dfd);
	free(data);
	return 0;
}

/* The message as DATA: CRLF line ends, dot-stuffed, final CRLF.CRLF. */
static void
bt_make_body(void)
{
	size_t i;
	int    bol = 1;

	bt_body = malloc(bt_raw_len * 2 + 8);
	bt_body_len = 0;
	for (i = 0; i < bt_raw_len; i++) {
		char ch = bt_raw[i];

		if (bol && ch == '.')
			bt_body[bt_body_len++] = '.';
		if (ch == '\n') {
			if (i == 0 || bt_raw[i - 1] != '\r')
				bt_body[bt_body_len++] = '\r';
			bt_body[bt_body_len++] = '\n';
			bol = 1;
			continue;
		}
		bt_body[bt_body_len++] = ch;
		bol = 0;
	}
	if (!bol) {
		bt_body[bt_body_len++] = '\r';
		bt_body[bt_body_len++] = '\n';
	}
	memcpy(bt_body + bt_body_len, ".\r\n", 3);
	bt_body_len += 3;
}

struct bt_smtp {
	struct sockaddr_storage ss;
	socklen_t               sslen;
	int                     reuse;
	atomic_long             left;
	atomic_long             sent;
	atomic_long             failed;
};

struct bt_conn {
	int    fd;
	char   in[16384];
	size_t len;
};

static int
bt_send(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one complete reply; returns its code or -1. */
static int
bt_reply(struct bt_conn *c)
{
	for (;;) {
		char *p = c->in, *nl;

		while ((nl = memchr(p, '\n', c->len - (size_t)(p - c->in))) !=
		    NULL) {
			if (nl - p >= 3 && p[3] == '-') {
				p = nl + 1;
				continue;
			}
			int    code = atoi(p);
			size_t used = (size_t)(nl + 1 - c->in);

			memmove(c->in, nl + 1, c->len - used);
			c->len -= used;
			return code;
		}
		if (c->len == sizeof(c->in))
			return -1;
		ssize_t n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len,
		    0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

static int
bt_open(struct bt_smtp *b, struct bt_conn *c)
{
	static const char ehlo[] = "EHLO bench.example\r\n";
	int               one = 1;

	c->len = 0;
	if ((c->fd = socket(b->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) <
	    0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&b->ss, b->sslen) != 0 ||
	    bt_reply(c) != 220 || bt_send(c->fd, ehlo, sizeof(ehlo) - 1) ||
	    bt_reply(c) != 250) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static int
bt_one(struct bt_conn *c)
{
	static const char env[] = "MAIL FROM:<bench@example.org>\r\nRCPT "
				  "TO:<sink@example.net>\r\nDATA\r\n";

	if (bt_send(c->fd, env, sizeof(env) - 1) != 0 || bt_reply(c) != 250 ||
	    bt_reply(c) != 250 || bt_reply(c) != 354 ||
	    bt_send(c->fd, bt_body, bt_body_len) != 0 || bt_reply(c) != 250)
		return -1;
	return 0;
}

static void
bt_quit(struct bt_conn *c)
{
	if (c->fd < 0)
		return;
	if (bt_send(c->fd, "QUIT\r\n", 6) == 0)
		bt_reply(c);
	close(c->fd);
	c->fd = -1;
}

static void *
bt_session(void *arg)
{
	struct bt_smtp *b = arg;
	struct bt_conn  c = { .fd = -1 };

	while (atomic_fetch_sub(&b->left, 1) > 0) {
		if (c.fd < 0 && bt_open(b, &c) != 0) {
			atomic_fetch_add(&b->failed, 1);
			continue;
		}
		if (bt_one(&c) != 0) {
			atomic_fetch_add(&b->failed, 1);
			close(c.fd);
			c.fd = -1;
			continue;
		}
		atomic_fetch_add(&b->sent, 1);
		if (!b->reuse)
			bt_quit(&c);
	}
	bt_quit(&c);
	return NULL;
}

static double
bt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
bt_smtp_run(char **argv)
{
	struct addrinfo       hints = { .ai_socktype = SOCK_STREAM }, *ai;
	static struct bt_smtp b;
	pthread_t            *t;
	double                t0;
	int                   i, sessions = atoi(argv[2]), fd;

	if (getaddrinfo(argv[0], argv[1], &hints, &ai) != 0)
		return 2;
	memcpy(&b.ss, ai->ai_addr, ai->ai_addrlen);
	b.sslen = ai->ai_addrlen;
	freeaddrinfo(ai);
	b.left = atol(argv[3]);
	b.reuse = strcmp(argv[4], "reuse") == 0;
	if ((fd = open(argv[5], O_RDONLY | O_CLOEXEC)) < 0 ||
	    bt_read_fd(fd, &bt_raw, &bt_raw_len) != 0)
		return 2;
	close(fd);
	bt_make_body();
	if (sessions < 1 || (t = calloc((size_t)sessions, sizeof(*t))) == NULL)
		return 2;
	t0 = bt_now();
	for (i = 0; i < sessions; i++)
		pthread_create(&t[i], NULL, bt_session, &b);
	for (i = 0; i < sessions; i++)
		pthread_join(t[i], NULL);
	printf("sent=%ld failed=%ld seconds=%.6f\n", atomic_load(&b.sent),
	    atomic_load(&b.failed), bt_now() - t0);
	return atomic_load(&b.failed) == 0 ? 0 : 1;
}

static int
bt_fill(const char *dir, long n, const char *path)
{
	enum { BATCH = 256 };
	struct spool_writer *w[BATCH];
	struct envelope     *envs[BATCH];
	struct sq_err        errs[BATCH], err;
	struct spool        *sp;
	int                  results[BATCH], fd;
	long                 done = 0;
	size_t               k, i;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    bt_read_fd(fd, &bt_raw, &bt_raw_len) != 0)
		return 2;
	close(fd);
	if (spool_open(dir, 1, &sp, &err) != 0) {
		fprintf(stderr, "bench_tool: %s\n", err.msg);
		return 2;
	}
	while (done < n) {
		k = (size_t)(n - done < BATCH ? n - done : BATCH);
		for (i = 0; i < k; i++) {
			if (spool_writer_begin(sp, &w[i], &err) != 0 ||
			    spool_writer_write(w[i], bt_raw, bt_raw_len,
				&err) != 0) {
				fprintf(stderr, "bench_tool: %s\n", err.msg);
				return 1;
			}
			envs[i] = envelope_new();
			envelope_set_sender(envs[i], "bench@example.org");
			envelope_add_rcpt(envs[i], "sink@example.net");
			envs[i]->created = (int64_t)time(NULL);
			envs[i]->uid = 0;
		}
		spool_commit_group(w, envs, k, results, errs);
		for (i = 0; i < k; i++) {
			if (results[i] != 0) {
				fprintf(stderr, "bench_tool: %s\n",
				    errs[i].msg);
				return 1;
			}
			envelope_free(envs[i]);
		}
		done += (long)k;
	}
	spool_close(sp);
	printf("queued=%ld\n", done);
	return 0;
}

/* ------------------------------------------------------------------ */
/* commit-model */

#define BT_SYNC_THREADS 8

static struct {
	pthread_barrier_t start, end;
	const int        *fds;
	size_t            n;
	int               stop;
} bt_pool;

static void *
bt_pool_main(void *arg)
{
	size_t w = (size_t)(uintptr_t)arg, i;

	for (;;) {
		pthread_barrier_wait(&bt_pool.start);
		if (bt_pool.stop)
			return NULL;
		for (i = w; i < bt_pool.n; i += BT_SYNC_THREADS)
			(void)fdatasync(bt_pool.fds[i]);
		pthread_barrier_wait(&bt_pool.end);
	}
}

/* One group in the spool's shape; 0 or -1. */
static int
bt_model_files(int q, int t, long group, long *seq, const char *msg, size_t len)
{
	static const char env[164] = "sendq-envelope 1\n";
	int               fds[2 * 256];
	char              name[64];
	long              g, first = *seq;

	for (g = 0; g < group; g++, (*seq)++) {
		snprintf(name, sizeof(name), "%ld.msg", *seq);
		fds[2 * g] = openat(q, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
		snprintf(name, sizeof(name), "%ld.env", *seq);
		fds[2 * g + 1] = openat(t, name, O_WRONLY | O_CREAT | O_EXCL,
		    0600);
		if (fds[2 * g] < 0 || fds[2 * g + 1] < 0 ||
		    write(fds[2 * g], msg, len) != (ssize_t)len ||
		    write(fds[2 * g + 1], env, sizeof(env)) !=
			(ssize_t)sizeof(env))
			return -1;
	}
	for (g = 0; g < 2 * group; g++)
		(void)sync_file_range(fds[g], 0, 0, SYNC_FILE_RANGE_WRITE);
	bt_pool.fds = fds;
	bt_pool.n = (size_t)(2 * group);
	pthread_barrier_wait(&bt_pool.start);
	pthread_barrier_wait(&bt_pool.end);
	for (g = 0; g < group; g++) {
		snprintf(name, sizeof(name), "%ld.env", first + g);
		if (renameat(t, name, q, name) != 0)
			return -1;
	}
	for (g = 0; g < 2 * group; g++)
		close(fds[g]);
	return fsync(q);
}

static int
bt_commit_model(const char *dir, const char *shape, long group, long groups)
{
	char     *msg, path[4096], rec[32];
	size_t    len;
	long      k, g, seq = 0;
	off_t     off = 0;
	pthread_t tid;
	double    t0;
	int       q, t, j, rc = 1, journal = strcmp(shape, "journal") == 0;
	size_t    w;

	if (group < 1 || group > 256 || groups < 1 ||
	    (!journal && strcmp(shape, "files") != 0))
		return 2;
	(void)mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/q", dir);
	(void)mkdir(path, 0700);
	q = open(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "%s/t", dir);
	(void)mkdir(path, 0700);
	t = open(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "%s/journal", dir);
	j = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (q < 0 || t < 0 || j < 0 || bt_read_fd(0, &msg, &len) != 0)
		return 1;
	pthread_barrier_init(&bt_pool.start, NULL, BT_SYNC_THREADS + 1);
	pthread_barrier_init(&bt_pool.end, NULL, BT_SYNC_THREADS + 1);
	for (w = 0; w < BT_SYNC_THREADS; w++)
		if (pthread_create(&tid, NULL, bt_pool_main,
			(void *)(uintptr_t)w) != 0)
			goto out;
	memset(rec, 'h', sizeof(rec));
	/* The journal's blocks written and synced beforehand (a segment
	 * used again): an fdatasync then writes data and needs no journal
	 * commit of the file system for new blocks or a new size. */
	for (k = 0; journal && k < group * groups; k++) {
		static const char zero[4096];
		size_t            left = sizeof(rec) + len;

		while (left > 0) {
			size_t part = left < sizeof(zero) ? left : sizeof(zero);

			if (write(j, zero, part) != (ssize_t)part)
				goto out;
			left -= part;
		}
	}
	if (journal && fsync(j) != 0)
		goto out;
	t0 = bt_now();
	for (k = 0; k < groups; k++) {
		if (!journal) {
			if (bt_model_files(q, t, group, &seq, msg, len) != 0)
				goto out;
			continue;
		}
		for (g = 0; g < group; g++) {
			struct iovec iov[2] = { { rec, sizeof(rec) },
				{ msg, len } };

			if (pwritev(j, iov, 2, off) !=
			    (ssize_t)(sizeof(rec) + len))
				goto out;
			off += (off_t)(sizeof(rec) + len);
		}
		if (fdatasync(j) != 0)
			goto out;
	}
	printf("messages=%ld seconds=%.3f\n", group * groups, bt_now() - t0);
	rc = 0;
	bt_pool.stop = 1;
	pthread_barrier_wait(&bt_pool.start);
out:
	free(msg);
	close(j);
	close(t);
	close(q);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "none") == 0)
		return bt_none();
	if (argc == 3 && strcmp(argv[1], "fsync") == 0)
		return bt_fsync(argv[2]);
	if (argc == 8 && strcmp(argv[1], "smtp") == 0)
		return bt_smtp_run(argv + 2);
	if (argc == 5 && strcmp(argv[1], "fill") == 0)
		return bt_fill(argv[2], atol(argv[3]), argv[4]);
	if (argc == 6 && strcmp(argv[1], "commit-model") == 0)
		return bt_commit_model(argv[2], argv[3], atol(argv[4]),
		    atol(argv[5]));
	fprintf(stderr,
	    "usage: bench_tool none | fsync DIR | smtp HOST PORT SESSIONS "
	    "MESSAGES reuse|close MSGFILE | fill SPOOL_DIR MESSAGES MSGFILE | "
	    "commit-model DIR files|journal GROUP GROUPS < MSGFILE\n");
	return 2;
}
