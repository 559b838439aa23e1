/*
 * conn_probe.c - send one message through smtp_conn and print the result.
 *
 *   conn_probe HOST PORT implicit|starttls|none system|ca_file|insecure
 *       CA_FILE|- SENDER RCPT[,RCPT...] MESSAGE_FILE
 *
 * Builds a config_smarthost by hand, an event base with an evdns base
 * (/etc/hosts first), a tls_ctx, opens one connection, sends the message
 * on the first on_ready and closes on the next.  Prints one line per
 * result, with the policy's verdict on smtp_conn's facts (retry.h), as
 * the scheduler would decide:
 *   message outcome=delivered code=250 phase=end event=reply relay=ok
 *   rule=delivered reply="..." tls="..." verify="..." rcpt=2,4,5
 * outcome: delivered (some recipient delivered), failed (every recipient
 * bounces) or deferred; relay: ok, down or rest; rcpt: per recipient 2
 * delivered, 4 deferred, 5 bounced, 0 never answered.
 * and exits 0 when delivered, 1 otherwise, 2 on usage or set-up errors.
 * Environment: CONN_PROBE_QUIET (no debug logs on stderr),
 * CONN_PROBE_EHLO (EHLO name), CONN_PROBE_COUNT=N (send the message N
 * times over the one connection; exit 0 only if all were delivered),
 * CONN_PROBE_CLOSE_MS=N (call smtp_conn_close() N ms after the start,
 * whatever the connection is doing: for lifecycle and leak checks;
 * with CONN_PROBE_ABORT set, smtp_conn_abort() instead),
 * CONN_PROBE_NAMESERVER=IP:PORT (use only this DNS server instead of
 * /etc/resolv.conf and /etc/hosts), CONN_PROBE_TIMEOUT=SECONDS (every
 * timeout_* of the smarthost), CONN_PROBE_SESSION_MAX=SECONDS,
 * CONN_PROBE_8BIT / CONN_PROBE_SMTPUTF8 (set the message's body_8bit /
 * needs_smtputf8), CONN_PROBE_AUTH=none|auto|plain|login|scram-sha-256|
 * xoauth2|oauthbearer with CONN_PROBE_USER and CONN_PROBE_PASSWORD_FILE
 * or CONN_PROBE_TOKEN_FILE.  Results that failed authentication print
 * relay=rest.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "log.h"
#include "retry.h"
#include "smtp_conn.h"
#include "tls.h"
#include "util.h"

struct conn_probe {
	struct evdns_base       *dns;
	struct event            *ev_close;
	struct smtp_conn        *conn;
	const char              *path;
	struct smtp_conn_message msg;
	int                      count; /* to send */
	int                      sent;
	int                      delivered;
	int                      done;
	int                      exit_code;
};

/* Print r with the policy's verdict; returns non-zero when some
 * recipient was delivered. */
static int
conn_probe_print(const char *what, const struct smtp_conn_result *r)
{
	enum retry_fate     *fate = NULL;
	struct retry_verdict v;
	size_t               i, delivered = 0, bounced = 0;
	const char          *outcome;

	if (r->n_rcpts > 0)
		fate = xcalloc(r->n_rcpts, sizeof(*fate));
	v = retry_attempt(&r->fact, r->rcpt, r->n_rcpts, fate);
	for (i = 0; i < r->n_rcpts; i++) {
		delivered += fate[i] == RETRY_DELIVERED;
		bounced += fate[i] == RETRY_BOUNCE;
	}
	if (r->n_rcpts == 0)
		outcome = v.fate == RETRY_BOUNCE ? "failed" : "deferred";
	else
		outcome = delivered > 0   ? "delivered" :
		    bounced == r->n_rcpts ? "failed" :
					    "deferred";
	printf("%s outcome=%s code=%d phase=%s event=%s relay=%s rule=%s "
	       "reply=\"%s\" tls=\"%s\" verify=\"%s\"",
	    what, outcome, r->fact.code, retry_phase_name(r->fact.phase),
	    retry_event_name(r->fact.event), retry_relay_name(v.relay), v.rule,
	    r->reply, r->tls, r->verify);
	if (r->n_rcpts > 0) {
		printf(" rcpt=");
		for (i = 0; i < r->n_rcpts; i++)
			printf("%s%d", i > 0 ? "," : "",
			    r->rcpt[i].code == 0           ? 0 :
				fate[i] == RETRY_DELIVERED ? 2 :
				fate[i] == RETRY_BOUNCE    ? 5 :
							     4);
	}
	printf("\n");
	fflush(stdout);
	free(fate);
	return delivered > 0;
}

static void
conn_probe_finish(struct conn_probe *p)
{
	p->done = 1;
	if (p->ev_close != NULL)
		event_del(p->ev_close);
	if (p->dns != NULL) {
		evdns_base_free(p->dns, 0);
		p->dns = NULL;
	}
}

static void
conn_probe_on_ready(struct smtp_conn *c, void *arg)
{
	struct conn_probe *p = arg;

	if (p->sent < p->count) {
		if (p->sent > 0 &&
		    (p->msg.body_fd = open(p->path, O_RDONLY | O_CLOEXEC)) ==
			-1) {
			perror(p->path);
			smtp_conn_close(c);
			conn_probe_finish(p);
			return;
		}
		p->sent++;
		if (smtp_conn_send(c, &p->msg) < 0) {
			printf("message outcome=error reply=\"smtp_conn_send "
			       "refused\"\n");
			close(p->msg.body_fd);
			smtp_conn_close(c);
			conn_probe_finish(p);
		}
		return;
	}
	smtp_conn_close(c);
	conn_probe_finish(p);
}

static void
conn_probe_on_message_done(struct smtp_conn *c,
    const struct smtp_conn_result *r, void *arg)
{
	struct conn_probe *p = arg;

	(void)c;
	if (conn_probe_print("message", r) && ++p->delivered == p->count)
		p->exit_code = 0;
}

static void
conn_probe_on_close_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn_probe *p = arg;

	(void)fd;
	(void)what;
	if (p->done)
		return;
	printf("probe closing the connection\n");
	fflush(stdout);
	if (getenv("CONN_PROBE_ABORT") != NULL)
		smtp_conn_abort(p->conn);
	else
		smtp_conn_close(p->conn);
	conn_probe_finish(p);
}

static void
conn_probe_on_closed(struct smtp_conn *c, const struct smtp_conn_result *r,
    void *arg)
{
	struct conn_probe *p = arg;

	(void)c;
	(void)conn_probe_print("closed", r);
	conn_probe_finish(p);
}

static unsigned
conn_probe_env_uint(const char *name)
{
	const char *v = getenv(name);

	return v != NULL ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* CONN_PROBE_AUTH: returns 0, or -1 for an unknown name. */
static int
conn_probe_auth(struct config_smarthost *sh)
{
	static const struct {
		const char    *name;
		enum sasl_mech auth;
	} names[] = {
		{ "none", SASL_MECH_NONE },
		{ "auto", SASL_MECH_AUTO },
		{ "plain", SASL_MECH_PLAIN },
		{ "login", SASL_MECH_LOGIN },
		{ "scram-sha-256", SASL_MECH_SCRAM_SHA_256 },
		{ "xoauth2", SASL_MECH_XOAUTH2 },
		{ "oauthbearer", SASL_MECH_OAUTHBEARER },
	};
	const char *v = getenv("CONN_PROBE_AUTH");
	size_t      i;

	sh->user = getenv("CONN_PROBE_USER");
	sh->password_file = getenv("CONN_PROBE_PASSWORD_FILE");
	sh->token_file = getenv("CONN_PROBE_TOKEN_FILE");
	if (v == NULL)
		return 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(v, names[i].name) == 0) {
			sh->auth = names[i].auth;
			return 0;
		}
	}
	return -1;
}

static int
conn_probe_usage(void)
{
	fprintf(stderr,
	    "usage: conn_probe HOST PORT implicit|starttls|none "
	    "system|ca_file|insecure CA_FILE|- SENDER RCPT[,RCPT...] "
	    "MESSAGE_FILE\n");
	return 2;
}

int
main(int argc, char **argv)
{
	struct config_smarthost    sh;
	struct smtp_conn_params    params;
	struct smtp_conn_callbacks cb;
	struct conn_probe          probe;
	struct event_base         *base;
	struct tls_ctx            *tls = NULL;
	struct sq_err              err = { 0, "" };
	const char                *rcpts[64];
	char                      *rcptlist, *tok, *save = NULL;
	size_t                     n_rcpts = 0;
	const char                *ehlo;

	if (argc != 9)
		return conn_probe_usage();
	log_init("conn_probe",
	    getenv("CONN_PROBE_QUIET") != NULL ? LOG_LEVEL_WARN :
						 LOG_LEVEL_DEBUG);

	memset(&sh, 0, sizeof(sh));
	sh.name = "probe";
	sh.host = argv[1];
	sh.port = (unsigned)strtoul(argv[2], NULL, 10);
	if (strcmp(argv[3], "implicit") == 0)
		sh.tls = CONFIG_TLS_IMPLICIT;
	else if (strcmp(argv[3], "starttls") == 0)
		sh.tls = CONFIG_TLS_STARTTLS;
	else if (strcmp(argv[3], "none") == 0)
		sh.tls = CONFIG_TLS_NONE;
	else
		return conn_probe_usage();
	if (strcmp(argv[4], "system") == 0)
		sh.trust = CONFIG_TRUST_SYSTEM;
	else if (strcmp(argv[4], "ca_file") == 0)
		sh.trust = CONFIG_TRUST_CA_FILE;
	else if (strcmp(argv[4], "insecure") == 0)
		sh.trust = CONFIG_TRUST_INSECURE;
	else
		return conn_probe_usage();
	sh.ca_file = strcmp(argv[5], "-") == 0 ? NULL : argv[5];
	sh.timeout_connect = sh.timeout_tls = sh.timeout_greeting =
	    sh.timeout_command = sh.timeout_data_block = sh.timeout_data_end =
		conn_probe_env_uint("CONN_PROBE_TIMEOUT");
	sh.session_max = conn_probe_env_uint("CONN_PROBE_SESSION_MAX");
	if (conn_probe_auth(&sh) < 0)
		return conn_probe_usage();

	memset(&probe, 0, sizeof(probe));
	probe.exit_code = 1;
	probe.path = argv[8];
	probe.count = getenv("CONN_PROBE_COUNT") != NULL ?
	    atoi(getenv("CONN_PROBE_COUNT")) :
	    1;
	if (probe.count < 1)
		probe.count = 1;
	rcptlist = argv[7];
	for (tok = strtok_r(rcptlist, ",", &save);
	     tok != NULL && n_rcpts < sizeof(rcpts) / sizeof(rcpts[0]);
	     tok = strtok_r(NULL, ",", &save))
		rcpts[n_rcpts++] = tok;
	probe.msg.id = "probe";
	probe.msg.sender = argv[6];
	probe.msg.rcpts = rcpts;
	probe.msg.n_rcpts = n_rcpts;
	probe.msg.body_8bit = getenv("CONN_PROBE_8BIT") != NULL;
	probe.msg.needs_smtputf8 = getenv("CONN_PROBE_SMTPUTF8") != NULL;
	if ((probe.msg.body_fd = open(argv[8], O_RDONLY | O_CLOEXEC)) == -1) {
		perror(argv[8]);
		return 2;
	}

	if (sh.tls != CONFIG_TLS_NONE && tls_ctx_new(&sh, &tls, &err) < 0) {
		fprintf(stderr, "conn_probe: %s\n", err.msg);
		close(probe.msg.body_fd);
		return 2;
	}
	if ((base = event_base_new()) == NULL)
		log_fatalx("event_base_new failed");
	if (getenv("CONN_PROBE_NAMESERVER") != NULL) {
		probe.dns = evdns_base_new(base, 0);
		if (probe.dns == NULL ||
		    evdns_base_nameserver_ip_add(probe.dns,
			getenv("CONN_PROBE_NAMESERVER")) != 0)
			log_fatalx("bad CONN_PROBE_NAMESERVER");
	} else
		probe.dns = evdns_base_new(base,
		    EVDNS_BASE_INITIALIZE_NAMESERVERS);
	if (probe.dns == NULL)
		log_fatalx("evdns_base_new failed");

	ehlo = getenv("CONN_PROBE_EHLO");
	memset(&params, 0, sizeof(params));
	params.base = base;
	params.dns = probe.dns;
	params.smarthost = &sh;
	params.tls = tls;
	params.ehlo_name = ehlo != NULL ? ehlo : "conn-probe.localdomain";
	memset(&cb, 0, sizeof(cb)); /* optional callbacks: none */
	cb.on_ready = conn_probe_on_ready;
	cb.on_message_done = conn_probe_on_message_done;
	cb.on_closed = conn_probe_on_closed;

	probe.conn = smtp_conn_open(&params, &cb, &probe);
	if (getenv("CONN_PROBE_CLOSE_MS") != NULL) {
		struct timeval tv;
		long           ms = atol(getenv("CONN_PROBE_CLOSE_MS"));

		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		probe.ev_close = evtimer_new(base, conn_probe_on_close_timer,
		    &probe);
		evtimer_add(probe.ev_close, &tv);
	}
	/* Runs until the connection has freed all its events. */
	event_base_dispatch(base);
	if (!probe.sent)
		close(probe.msg.body_fd);
	if (probe.ev_close != NULL)
		event_free(probe.ev_close);
	if (probe.dns != NULL)
		evdns_base_free(probe.dns, 0);
	event_base_free(base);
	tls_ctx_free(tls);
	return probe.exit_code;
}
