/*
 * test_tls.c - the TLS client against a real GnuTLS server on loopback.
 *
 * Every test gets fresh keys and certificates from
 * tests/tools/make-test-certs in a temporary directory (so nothing can
 * expire), builds a struct config_smarthost by hand and a tls_ctx from
 * it, and connects to a GnuTLS server run in a forked child over a
 * socketpair.  The server completes its handshake, sends "220 hello",
 * reads until the client closes, and writes one report line to a pipe:
 *   "ok resumed=0|1 sni=NAME|- client=verified|none|bad version=TLS1.3"
 * or "fail GNUTLS-ERROR".  The client side runs the non-blocking API the
 * way smtp_conn does, waiting with poll() and a deadline; nothing sleeps.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "config.h"
#include "tls.h"
#include "util.h"

#define TEST_DEADLINE_MS 10000

static char test_dir[256];

static void
test_tls_setup(void)
{
	char cmd[1024];

	snprintf(test_dir, sizeof(test_dir), "/tmp/sendq-test-tls.XXXXXX");
	cr_assert_not_null(mkdtemp(test_dir), "mkdtemp: %s", strerror(errno));
	snprintf(cmd, sizeof(cmd), "%s/../../tools/make-test-certs %s",
	    SENDQ_TEST_DATA, test_dir);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static void
test_tls_teardown(void)
{
	char cmd[512];

	if (test_dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", test_dir);
	(void)system(cmd);
}

TestSuite(tls, .init = test_tls_setup, .fini = test_tls_teardown);

/* A path in the test directory (a few stay valid at the same time). */
static const char *
test_path(const char *name)
{
	static char     paths[16][512];
	static unsigned next;
	char           *p = paths[next++ % 16];

	snprintf(p, sizeof(paths[0]), "%s/%s", test_dir, name);
	return p;
}

static long
test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Wait until fd is ready for events, or fail the test at the deadline. */
static void
test_wait(int fd, short events, long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	long          left;
	int           n;

	for (;;) {
		left = deadline - test_now_ms();
		cr_assert_gt(left, 0, "deadline passed waiting for fd %d", fd);
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return;
		cr_assert(n == 0 || errno == EINTR, "poll: %s",
		    strerror(errno));
	}
}

/* The smarthost as config.c would fill it (by hand until it parses the
 * issue-3 keys). */
static struct config_smarthost
test_sh(enum config_trust trust, const char *host)
{
	struct config_smarthost sh;

	memset(&sh, 0, sizeof(sh));
	sh.name = "test";
	sh.host = (char *)host;
	sh.port = 465;
	sh.tls = CONFIG_TLS_IMPLICIT;
	sh.trust = trust;
	if (trust == CONFIG_TRUST_CA_FILE)
		sh.ca_file = (char *)test_path("ca.pem");
	return sh;
}

/* Add the pin of the certificate file name (in the test dir) to sh. */
static void
test_add_pin(struct config_smarthost *sh, const char *name)
{
	char           text[TLS_PIN_TEXT_MAX];
	struct sq_err  err = { 0 };
	gnutls_datum_t b64, raw = { NULL, 0 };

	cr_assert_eq(tls_pin_of_cert_file(test_path(name), text, &err), 0, "%s",
	    err.msg);
	cr_assert_eq(strncmp(text, "sha256:", 7), 0, "%s", text);
	b64.data = (unsigned char *)text + 7;
	b64.size = (unsigned)strlen(text + 7);
	cr_assert_eq(gnutls_base64_decode2(&b64, &raw), 0);
	cr_assert_eq(raw.size, CONFIG_PIN_LEN);
	cr_assert_lt(sh->n_pins, CONFIG_PINS_MAX);
	memcpy(sh->pins[sh->n_pins++], raw.data, CONFIG_PIN_LEN);
	gnutls_free(raw.data);
}

static struct tls_ctx *
test_ctx(const struct config_smarthost *sh)
{
	struct tls_ctx *ctx = NULL;
	struct sq_err   err = { 0 };

	cr_assert_eq(tls_ctx_new(sh, &ctx, &err), 0, "tls_ctx_new: %s",
	    err.msg);
	return ctx;
}

/* ---- the server side (forked child) ---- */

struct test_server {
	const char     *cert; /* file names in the test dir */
	const char     *key;
	const char     *priority; /* NULL: "NORMAL" */
	int             want_client_cert;
	gnutls_datum_t *ticket_key;     /* shared by the children */
	int             split_greeting; /* three records in one write */
};

/* recv() of this program (it takes the place of libc's, for tls.c and
 * GnuTLS too): counted, so that a test can tell reads that asked the
 * socket from reads that did not. */
static unsigned test_recvs;

ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
	test_recvs++;
	return (ssize_t)syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}

/* The server's push while test_holding: records kept in test_held. */
static unsigned char test_held[4096];
static size_t        test_held_len;
static int           test_holding;

static ssize_t
test_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	size_t total = 0;
	int    i;

	if (!test_holding)
		return writev((int)(intptr_t)ptr, (const struct iovec *)iov,
		    iovcnt);
	for (i = 0; i < iovcnt; i++) {
		cr_assert_leq(test_held_len + iov[i].iov_len,
		    sizeof(test_held));
		memcpy(test_held + test_held_len, iov[i].iov_base,
		    iov[i].iov_len);
		test_held_len += iov[i].iov_len;
		total += iov[i].iov_len;
	}
	return (ssize_t)total;
}

static void
test_report(int fd, const char *line)
{
	size_t  len = strlen(line), off = 0;
	ssize_t n;

	while (off < len) {
		n = write(fd, line + off, len - off);
		if (n <= 0 && errno != EINTR)
			return;
		if (n > 0)
			off += (size_t)n;
	}
}

static void
test_server_run(const struct test_server *ts, int fd, int rfd)
{
	gnutls_certificate_credentials_t cred;
	gnutls_session_t                 s;
	const char                      *client = "none", *ver;
	char                             line[256], sni[128], buf[512];
	size_t                           snilen = sizeof(sni) - 1;
	unsigned int                     type, status, ncerts = 0;
	int                              ret;

	gnutls_certificate_allocate_credentials(&cred);
	ret = gnutls_certificate_set_x509_key_file(cred, test_path(ts->cert),
	    test_path(ts->key), GNUTLS_X509_FMT_PEM);
	if (ret < 0) {
		snprintf(line, sizeof(line), "fail key %s\n",
		    gnutls_strerror(ret));
		test_report(rfd, line);
		return;
	}
	if (ts->want_client_cert)
		gnutls_certificate_set_x509_trust_file(cred,
		    test_path("ca.pem"), GNUTLS_X509_FMT_PEM);
	gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NO_SIGNAL);
	ret = gnutls_priority_set_direct(s,
	    ts->priority != NULL ? ts->priority : "NORMAL", NULL);
	if (ret < 0) {
		snprintf(line, sizeof(line), "fail priority %s\n",
		    gnutls_strerror(ret));
		test_report(rfd, line);
		return;
	}
	gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred);
	if (ts->ticket_key != NULL)
		gnutls_session_ticket_enable_server(s, ts->ticket_key);
	if (ts->want_client_cert)
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
	gnutls_transport_set_int(s, fd);
	do {
		ret = gnutls_handshake(s);
	} while (ret < 0 && !gnutls_error_is_fatal(ret));
	if (ret < 0) {
		/* As real servers do: tell the client why. */
		(void)gnutls_alert_send_appropriate(s, ret);
		snprintf(line, sizeof(line), "fail %s\n", gnutls_strerror(ret));
		test_report(rfd, line);
		return;
	}
	if (gnutls_server_name_get(s, sni, &snilen, &type, 0) < 0 ||
	    type != GNUTLS_NAME_DNS)
		snprintf(sni, sizeof(sni), "-");
	else
		sni[snilen] = '\0';
	if (ts->want_client_cert) {
		client = "bad";
		if (gnutls_certificate_get_peers(s, &ncerts) != NULL &&
		    ncerts > 0 &&
		    gnutls_certificate_verify_peers2(s, &status) == 0 &&
		    status == 0)
			client = "verified";
	}
	ver = gnutls_protocol_get_name(gnutls_protocol_get_version(s));
	snprintf(line, sizeof(line),
	    "ok resumed=%d sni=%.100s client=%s version=%s\n",
	    gnutls_session_is_resumed(s) != 0, sni, client,
	    ver != NULL ? ver : "?");
	if (ts->split_greeting) {
		/* Three records, held by test_push and written at once. */
		test_holding = 1;
		gnutls_transport_set_vec_push_function(s, test_push);
		gnutls_record_send(s, "220 ", 4);
		gnutls_record_send(s, "hel", 3);
		gnutls_record_send(s, "lo\r\n", 4);
		test_holding = 0;
		cr_assert_eq(write(fd, test_held, test_held_len),
		    (ssize_t)test_held_len);
	} else
		do {
			ret = (int)gnutls_record_send(s, "220 hello\r\n", 11);
		} while (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED);
	/* Until the client closes (close_notify or EOF). */
	for (;;) {
		ret = (int)gnutls_record_recv(s, buf, sizeof(buf));
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED ||
		    ret > 0)
			continue;
		break;
	}
	test_report(rfd, line);
}

struct test_result {
	enum tls_status status; /* of the handshake */
	struct sq_err   err;
	char            verify[256];
	char            desc[128];
	int             resumed;
	char            greeting[64];
	int             reads;       /* tls_read()s that returned data */
	enum tls_status after;       /* one more tls_read() after them */
	unsigned        after_recvs; /* recv()s that one made */
	char            server[256]; /* the server's report line */
};

/* Run the client side on fd until the greeting is read (or the handshake
 * fails), then close. */
static void
test_client_run(struct tls_ctx *ctx, int fd, struct test_result *r)
{
	struct tls_session *s = NULL;
	long                deadline = test_now_ms() + TEST_DEADLINE_MS;
	enum tls_status     st;
	size_t              n, used = 0;
	char                more[64];
	unsigned            before;
	struct sq_err       err = { 0, "" };

	cr_assert_eq(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	cr_assert_eq(tls_session_new(ctx, fd, &s, &r->err), 0, "%s",
	    r->err.msg);
	for (;;) {
		st = tls_handshake(s, &r->err);
		if (st == TLS_WANT_READ)
			test_wait(fd, POLLIN, deadline);
		else if (st == TLS_WANT_WRITE)
			test_wait(fd, POLLOUT, deadline);
		else
			break;
	}
	r->status = st;
	if (st == TLS_DONE) {
		while (used < sizeof(r->greeting) - 1 &&
		    strstr(r->greeting, "\r\n") == NULL) {
			st = tls_read(s, r->greeting + used,
			    sizeof(r->greeting) - 1 - used, &n, &r->err);
			if (st == TLS_WANT_READ)
				test_wait(fd, POLLIN, deadline);
			else if (st == TLS_WANT_WRITE)
				test_wait(fd, POLLOUT, deadline);
			else if (st == TLS_DONE) {
				used += n;
				r->reads++;
			} else
				break;
		}
		r->greeting[used] = '\0';
		/* Nothing more was sent: the socket was empty when the
		 * greeting's short read drained it. */
		before = test_recvs;
		r->after = tls_read(s, more, sizeof(more), &n, &err);
		r->after_recvs = test_recvs - before;
		r->resumed = tls_session_resumed(s);
		tls_bye(s);
	}
	snprintf(r->verify, sizeof(r->verify), "%s", tls_verify_result(s));
	snprintf(r->desc, sizeof(r->desc), "%s", tls_describe(s));
	tls_session_free(s);
	close(fd);
}

/* One connection from ctx to a server as described by ts. */
static void
test_connect(struct tls_ctx *ctx, const struct test_server *ts,
    struct test_result *r)
{
	long    deadline = test_now_ms() + TEST_DEADLINE_MS;
	int     sv[2], rp[2], wstatus;
	size_t  used = 0;
	ssize_t n;
	pid_t   pid;

	memset(r, 0, sizeof(*r));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(pipe2(rp, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		close(rp[0]);
		test_server_run(ts, sv[1], rp[1]);
		_exit(0);
	}
	close(sv[1]);
	close(rp[1]);
	test_client_run(ctx, sv[0], r);
	/* The report comes when the server has seen the client close. */
	for (;;) {
		test_wait(rp[0], POLLIN, deadline);
		n = read(rp[0], r->server + used, sizeof(r->server) - 1 - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		used += (size_t)n;
		if (used == sizeof(r->server) - 1)
			break;
	}
	r->server[used] = '\0';
	close(rp[0]);
	cr_assert_eq(waitpid(pid, &wstatus, 0), pid);
	cr_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0,
	    "server child status 0x%x", wstatus);
}

static const struct test_server test_good = {
	.cert = "server.pem",
	.key = "server.key",
};

/* The handshake succeeded with verify "ok" and the greeting came. */
static void
test_assert_ok(const struct test_result *r)
{
	cr_assert_eq(r->status, TLS_DONE, "handshake: %s (verify: %s)",
	    r->err.msg, r->verify);
	cr_assert_str_eq(r->verify, "ok");
	cr_assert_str_eq(r->greeting, "220 hello\r\n");
	cr_assert_eq(strncmp(r->server, "ok ", 3), 0, "server: %s", r->server);
}

/* The certificate was refused with a reason containing why. */
static void
test_assert_refused(const struct test_result *r, const char *why)
{
	cr_assert_eq(r->status, TLS_ERROR, "handshake succeeded (verify %s)",
	    r->verify);
	cr_assert_eq(r->err.code, SQ_EVERIFY, "code %d: %s", r->err.code,
	    r->err.msg);
	cr_assert_not_null(strstr(r->verify, why), "verify \"%s\" lacks \"%s\"",
	    r->verify, why);
	cr_assert_not_null(strstr(r->err.msg, why), "err \"%s\" lacks \"%s\"",
	    r->err.msg, why);
	cr_assert_eq(strncmp(r->server, "fail ", 5), 0, "server: %s",
	    r->server);
}

/* ---- trust = ca_file / system: chain, dates, name, key floor ---- */

/* Records that arrive together are read with one recv() (tls_pull's
 * read-ahead) and returned by one tls_read(), which leaves nothing in
 * the read-ahead that the socket's read event would not announce. */
Test(tls, records_that_arrive_together_come_in_one_read)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_server      ts = test_good;
	struct test_result      r;

	ts.split_greeting = 1;
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	cr_assert_eq(r.reads, 1, "the greeting took %d reads", r.reads);
	/* It came in a short read: the next read asks the socket nothing
	 * (the caller's read event tells when more came). */
	cr_assert_eq(r.after, TLS_WANT_READ);
	cr_assert_eq(r.after_recvs, 0, "%u recv() calls", r.after_recvs);
	tls_ctx_free(ctx);
}

Test(tls, ca_file_trusted_server_verifies_ok)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_result      r;

	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	cr_assert_eq(r.resumed, 0);
	cr_assert_str_eq(r.desc, "TLS1.3 AES-256-GCM");
	cr_assert_not_null(strstr(r.server, " sni=localhost "), "%s", r.server);
	tls_ctx_free(ctx);
}

Test(tls, system_trust_refuses_a_private_ca)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_SYSTEM, "localhost");
	struct tls_ctx         *ctx = NULL;
	struct sq_err           err = { 0 };
	struct test_result      r;

	if (tls_ctx_new(&sh, &ctx, &err) != 0) {
		cr_assert_not_null(strstr(err.msg, "system trust store"), "%s",
		    err.msg);
		cr_skip_test("no system trust store: %s", err.msg);
	}

	test_connect(ctx, &test_good, &r);
	test_assert_refused(&r, "certificate signer not trusted");
	tls_ctx_free(ctx);
}

/*
 * A certificate the trust policy must refuse, and the words the refusal
 * names (in the verify status and in the error).  Parameters are copied
 * into the test process: fixed arrays, no pointers.
 */
struct test_refusal {
	char host[32];        /* the smarthost's host */
	char server_name[32]; /* "" = none */
	char cert[32];        /* the server's files in the test dir */
	char key[32];
	char why[96];
};

ParameterizedTestParameters(tls, untrusted_certificate_is_refused_and_named)
{
	static struct test_refusal cases[] = {
		{ "localhost", "", "other.pem", "server.key",
		    "certificate signer not trusted" },
		{ "localhost", "", "selfsigned.pem", "selfsigned.key",
		    "signer not trusted (self-signed certificate)" },
		{ "localhost", "", "expired.pem", "server.key",
		    "certificate expired" },
		{ "localhost", "", "future.pem", "server.key",
		    "certificate not yet valid" },
		{ "smtp.example.com", "", "server.pem", "server.key",
		    "host name mismatch (expected smtp.example.com, "
		    "certificate is for localhost)" },
		{ "localhost", "other.test", "server.pem", "server.key",
		    "host name mismatch (expected other.test" },
		{ "localhost", "", "leafsigned-chain.pem", "leafsigned.key",
		    "certificate signer is not a CA (basicConstraints)" },
		{ "localhost", "", "weak.pem", "weak.key",
		    "insecure algorithm/key (server key RSA 1024 bits)" },
	};

	return cr_make_param_array(struct test_refusal, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_refusal *c, tls,
    untrusted_certificate_is_refused_and_named)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, c->host);
	struct test_server      ts = { .cert = c->cert, .key = c->key };
	struct tls_ctx         *ctx;
	struct test_result      r;

	if (c->server_name[0] != '\0')
		sh.server_name = c->server_name;
	ctx = test_ctx(&sh);
	test_connect(ctx, &ts, &r);
	test_assert_refused(&r, c->why);
	tls_ctx_free(ctx);
}

/* ---- names: server_name, SNI, address literals ---- */

Test(tls, server_name_overrides_host_and_is_sent_as_sni)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE,
	    "smtp.example.com");
	struct tls_ctx         *ctx;
	struct test_result      r;

	sh.server_name = "mail.test";
	ctx = test_ctx(&sh);
	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	cr_assert_not_null(strstr(r.server, " sni=mail.test "), "%s", r.server);
	tls_ctx_free(ctx);
}

Test(tls, server_name_is_sni_and_checked_for_an_address_literal_host)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "127.0.0.9");
	struct tls_ctx         *ctx;
	struct test_result      r;

	sh.server_name = "mail.test";
	ctx = test_ctx(&sh);
	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	cr_assert_not_null(strstr(r.server, " sni=mail.test "), "%s", r.server);
	tls_ctx_free(ctx);
}

/* Parameters are copied into the test process: no pointers inside. */
struct test_param {
	char text[64];
};

ParameterizedTestParameters(tls, address_literal_host_matches_ip_san)
{
	static struct test_param hosts[] = {
		{ "127.0.0.1" },
		{ "[::1]" },
		{ "::1" },
	};

	return cr_make_param_array(struct test_param, hosts,
	    sizeof(hosts) / sizeof(hosts[0]));
}

ParameterizedTest(struct test_param *host, tls,
    address_literal_host_matches_ip_san)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, host->text);
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_result      r;

	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	/* No SNI for an address. */
	cr_assert_not_null(strstr(r.server, " sni=- "), "%s", r.server);
	tls_ctx_free(ctx);
}

Test(tls, address_literal_not_in_the_certificate_is_refused)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "127.0.0.2");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_result      r;

	test_connect(ctx, &test_good, &r);
	test_assert_refused(&r, "host name mismatch (expected 127.0.0.2");
	tls_ctx_free(ctx);
}

/* ---- pins ---- */

Test(tls, pin_of_cert_file_equals_certtool_pin_sha256)
{
	char          ours[TLS_PIN_TEXT_MAX], cmd[600], line[256], *p;
	struct sq_err err = { 0 };
	FILE         *fp;
	int           found = 0;

	cr_assert_eq(tls_pin_of_cert_file(test_path("server.pem"), ours, &err),
	    0, "%s", err.msg);
	snprintf(cmd, sizeof(cmd),
	    "certtool --pubkey-info --load-certificate %s 2>/dev/null",
	    test_path("server.pem"));
	fp = popen(cmd, "r");
	cr_assert_not_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		if ((p = strstr(line, "pin-sha256:")) == NULL)
			continue;
		p[strcspn(p, "\r\n")] = '\0';
		cr_assert_str_eq(ours + strlen("sha256:"),
		    p + strlen("pin-sha256:"));
		found = 1;
	}
	pclose(fp);
	cr_assert(found, "certtool printed no pin-sha256");
	cr_assert_eq(strlen(ours), strlen("sha256:") + 44);
}

Test(tls, pin_of_missing_cert_file_names_the_file)
{
	char          out[TLS_PIN_TEXT_MAX];
	struct sq_err err = { 0 };

	cr_assert_eq(tls_pin_of_cert_file(test_path("nope.pem"), out, &err),
	    -ENOENT);
	cr_assert_not_null(strstr(err.msg, "nope.pem"), "%s", err.msg);
	cr_assert_eq(tls_pin_of_cert_file(test_path("server.key"), out, &err),
	    SQ_ETLS);
	cr_assert_not_null(strstr(err.msg, "not a PEM or DER certificate"),
	    "%s", err.msg);
}

Test(tls, pin_trust_accepts_the_pinned_key_from_an_untrusted_ca)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_PIN, "localhost");
	struct tls_ctx         *ctx;
	struct test_server ts = { .cert = "other.pem", .key = "server.key" };
	struct test_result r;

	test_add_pin(&sh, "server.pem");
	ctx = test_ctx(&sh);
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	tls_ctx_free(ctx);
}

Test(tls, pin_trust_accepts_any_of_several_pins_for_key_rotation)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_PIN, "localhost");
	struct tls_ctx         *ctx;
	struct test_result      r;

	test_add_pin(&sh, "rotated.pem");
	test_add_pin(&sh, "server.pem");
	ctx = test_ctx(&sh);
	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	tls_ctx_free(ctx);
}

Test(tls, pin_trust_checks_neither_name_nor_dates)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_PIN,
	    "smtp.example.com");
	struct tls_ctx         *ctx;
	struct test_server ts = { .cert = "expired.pem", .key = "server.key" };
	struct test_result r;

	test_add_pin(&sh, "server.pem");
	ctx = test_ctx(&sh);
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	tls_ctx_free(ctx);
}

Test(tls, pin_mismatch_is_refused_with_the_server_pin_in_the_reason)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_PIN, "localhost");
	struct tls_ctx         *ctx;
	char                    pin[TLS_PIN_TEXT_MAX], want[256];
	struct sq_err           err = { 0 };
	struct test_result      r;

	test_add_pin(&sh, "rotated.pem");
	ctx = test_ctx(&sh);
	test_connect(ctx, &test_good, &r);
	cr_assert_eq(tls_pin_of_cert_file(test_path("server.pem"), pin, &err),
	    0);
	snprintf(want, sizeof(want),
	    "pin mismatch (server key %s not among the configured pins)", pin);
	test_assert_refused(&r, want);
	tls_ctx_free(ctx);
}

Test(tls, pin_trust_without_pins_is_a_config_error)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_PIN, "localhost");
	struct tls_ctx         *ctx = NULL;
	struct sq_err           err = { 0 };

	cr_assert_eq(tls_ctx_new(&sh, &ctx, &err), SQ_ECONFIG);
	cr_assert_null(ctx);
	cr_assert_not_null(strstr(err.msg, "no pin"), "%s", err.msg);
}

Test(tls, pins_with_ca_file_need_both_chain_and_pin)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx;
	struct test_server      untrusted = { .cert = "other.pem",
		     .key = "server.key" };
	struct test_server      rotated = { .cert = "rotated.pem",
		     .key = "rotated.key" };
	struct test_result      r;

	test_add_pin(&sh, "server.pem");
	ctx = test_ctx(&sh);
	/* Chain and pin good. */
	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	/* Pin good, chain not. */
	test_connect(ctx, &untrusted, &r);
	test_assert_refused(&r, "certificate signer not trusted");
	/* Chain good, pin not. */
	test_connect(ctx, &rotated, &r);
	test_assert_refused(&r, "pin mismatch (server key sha256:");
	tls_ctx_free(ctx);
}

/* ---- priorities ---- */

Test(tls, tls11_only_server_is_refused_under_the_default_priority)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_server      ts = {
		     .cert = "server.pem",
		     .key = "server.key",
		     .priority = "NORMAL:-VERS-ALL:+VERS-TLS1.1",
	};
	struct test_result r;

	test_connect(ctx, &ts, &r);
	cr_assert_eq(r.status, TLS_ERROR);
	cr_assert_eq(r.err.code, SQ_ETLS, "%s", r.err.msg);
	cr_assert_not_null(strstr(r.err.msg, "TLS 1.2"), "%s [server: %s]",
	    r.err.msg, r.server);
	cr_assert_eq(strncmp(r.server, "fail ", 5), 0, "%s", r.server);
	tls_ctx_free(ctx);
}

Test(tls, cbc_only_server_is_refused_under_the_default_priority)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_server      ts = {
		     .cert = "server.pem",
		     .key = "server.key",
		     .priority = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-"
				      "128-CBC:+AES-256-CBC",
	};
	struct test_result r;

	test_connect(ctx, &ts, &r);
	cr_assert_eq(r.status, TLS_ERROR);
	cr_assert_eq(r.err.code, SQ_ETLS, "%s", r.err.msg);
	tls_ctx_free(ctx);
}

Test(tls, custom_tls_priority_is_used)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx;
	struct test_result      r;

	sh.tls_priority = "SECURE256:-VERS-ALL:+VERS-TLS1.2:%PROFILE_MEDIUM";
	ctx = test_ctx(&sh);
	test_connect(ctx, &test_good, &r);
	test_assert_ok(&r);
	cr_assert_eq(strncmp(r.desc, "TLS1.2 AES-256-GCM", 18), 0, "%s",
	    r.desc);
	cr_assert_not_null(strstr(r.server, "version=TLS1.2"), "%s", r.server);
	tls_ctx_free(ctx);
}

Test(tls, custom_tls_priority_keeps_the_key_floor_unless_it_names_one)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx;
	struct test_server      ts = { .cert = "weak.pem", .key = "weak.key" };
	struct test_result      r;

	sh.tls_priority = "NORMAL";
	ctx = test_ctx(&sh);
	test_connect(ctx, &ts, &r);
	test_assert_refused(&r, "insecure algorithm/key");
	tls_ctx_free(ctx);

	/* Spelled out by the admin: their choice. */
	sh.tls_priority = "NORMAL:%PROFILE_LOW";
	ctx = test_ctx(&sh);
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	tls_ctx_free(ctx);
}

Test(tls, invalid_tls_priority_fails_ctx_new_naming_the_position)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = NULL;
	struct sq_err           err = { 0 };

	sh.tls_priority = "NORMAL:+BOGUS-CIPHER";
	cr_assert_eq(tls_ctx_new(&sh, &ctx, &err), SQ_ECONFIG);
	cr_assert_null(ctx);
	cr_assert_not_null(strstr(err.msg, "tls_priority"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "at position 8 (\"+BOGUS-CIPHER\")"),
	    "%s", err.msg);
}

/* ---- mutual TLS ---- */

Test(tls, client_certificate_is_presented_when_the_server_requires_it)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx;
	struct test_server      ts = {
		     .cert = "server.pem",
		     .key = "server.key",
		     .want_client_cert = 1,
	};
	struct test_result r;

	sh.client_cert = (char *)test_path("client.pem");
	sh.client_key = (char *)test_path("client.key");
	ctx = test_ctx(&sh);
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	cr_assert_not_null(strstr(r.server, " client=verified "), "%s",
	    r.server);
	tls_ctx_free(ctx);
}

Test(tls, without_client_certificate_a_requiring_server_fails)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_server      ts = {
		     .cert = "server.pem",
		     .key = "server.key",
		     .want_client_cert = 1,
	};
	struct test_result r;

	test_connect(ctx, &ts, &r);
	/* TLS 1.3: the client finishes first, the server then refuses. */
	cr_assert_eq(strncmp(r.server, "fail ", 5), 0, "%s", r.server);
	cr_assert_str_neq(r.greeting, "220 hello\r\n");
	tls_ctx_free(ctx);
}

Test(tls, client_cert_errors_name_the_files)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = NULL;
	struct sq_err           err = { 0 };

	sh.client_cert = (char *)test_path("client.pem");
	cr_assert_eq(tls_ctx_new(&sh, &ctx, &err), SQ_ECONFIG);
	cr_assert_not_null(strstr(err.msg, "client_key"), "%s", err.msg);

	sh.client_key = (char *)test_path("missing.key");
	cr_assert_eq(tls_ctx_new(&sh, &ctx, &err), -ENOENT);
	cr_assert_not_null(strstr(err.msg, "client_key"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "missing.key"), "%s", err.msg);

	sh.client_key = (char *)test_path("server.key");
	cr_assert_eq(tls_ctx_new(&sh, &ctx, &err), SQ_ETLS);
	cr_assert_not_null(strstr(err.msg, "client.pem"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "server.key"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "does not belong"), "%s", err.msg);
	cr_assert_null(ctx);
}

Test(tls, unreadable_ca_file_names_the_file)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = NULL;
	struct sq_err           err = { 0 };

	sh.ca_file = (char *)test_path("no-such-ca.pem");
	cr_assert_eq(tls_ctx_new(&sh, &ctx, &err), -ENOENT);
	cr_assert_not_null(strstr(err.msg, "no-such-ca.pem"), "%s", err.msg);
}

/* ---- insecure ---- */

Test(tls, insecure_accepts_anything_and_says_so)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_INSECURE,
	    "smtp.example.com");
	struct tls_ctx         *ctx = test_ctx(&sh);
	struct test_server      ts = { .cert = "selfsigned.pem",
		     .key = "selfsigned.key" };
	struct test_result      r;

	test_connect(ctx, &ts, &r);
	cr_assert_eq(r.status, TLS_DONE, "%s", r.err.msg);
	cr_assert_str_eq(r.verify, "insecure (not verified)");
	tls_ctx_free(ctx);
}

/* ---- resumption ---- */

ParameterizedTestParameters(tls, second_connection_resumes_and_is_verified)
{
	static struct test_param prios[] = {
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.3" },
		{ "NORMAL:-VERS-ALL:+VERS-TLS1.2" },
	};

	return cr_make_param_array(struct test_param, prios,
	    sizeof(prios) / sizeof(prios[0]));
}

ParameterizedTest(struct test_param *prio, tls,
    second_connection_resumes_and_is_verified)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx;
	gnutls_datum_t          key = { NULL, 0 };
	struct test_server      ts = {
		     .cert = "server.pem",
		     .key = "server.key",
		     .priority = prio->text,
		     .ticket_key = &key,
	};
	struct test_result r;

	test_add_pin(&sh, "server.pem"); /* pins checked on resume too */
	ctx = test_ctx(&sh);
	cr_assert_eq(gnutls_session_ticket_key_generate(&key), 0);
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	cr_assert_eq(r.resumed, 0);
	cr_assert_not_null(strstr(r.server, " resumed=0 "), "%s", r.server);
	cr_assert_null(strstr(r.desc, "resumed"), "%s", r.desc);

	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	cr_assert_eq(r.resumed, 1, "not resumed: %s", r.desc);
	cr_assert_not_null(strstr(r.server, " resumed=1 "), "%s", r.server);
	cr_assert_not_null(strstr(r.desc, " resumed"), "%s", r.desc);

	/* And again (TLS 1.3: a new ticket came with the resumed one). */
	test_connect(ctx, &ts, &r);
	test_assert_ok(&r);
	cr_assert_eq(r.resumed, 1, "not resumed: %s", r.desc);

	gnutls_memset(key.data, 0, key.size);
	gnutls_free(key.data);
	tls_ctx_free(ctx);
}

Test(tls, failed_verification_leaves_nothing_to_resume)
{
	struct config_smarthost sh = test_sh(CONFIG_TRUST_CA_FILE, "localhost");
	struct tls_ctx         *ctx = test_ctx(&sh);
	gnutls_datum_t          key = { NULL, 0 };
	struct test_server      bad = { .cert = "other.pem",
		     .key = "server.key",
		     .ticket_key = &key };
	struct test_server      good = { .cert = "server.pem",
		     .key = "server.key",
		     .ticket_key = &key };
	struct test_result      r;

	cr_assert_eq(gnutls_session_ticket_key_generate(&key), 0);
	test_connect(ctx, &bad, &r);
	test_assert_refused(&r, "signer not trusted");
	test_connect(ctx, &good, &r);
	test_assert_ok(&r);
	cr_assert_eq(r.resumed, 0);
	gnutls_memset(key.data, 0, key.size);
	gnutls_free(key.data);
	tls_ctx_free(ctx);
}
