/*
 * test_metrics.c - the counters and their exposition (metrics.c), the
 * metrics_listen parser (metrics_http.c) and the verdict of sendqctl
 * status (sendqctl_check.c).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "metrics_http.h"
#include "sendqctl_check.h"

static void
fini(void)
{
	metrics_reset();
}

TestSuite(metrics, .fini = fini);

static void
two_relays(void *arg, struct metrics_gauges *g)
{
	(void)arg;
	g->queue_messages = 3;
	g->oldest = 1000;
	g->spool_free_known = 1;
	g->spool_free = 4096;
	g->spool_log_known = 1;
	g->log_groups = 2;
	g->log_messages = 9;
	g->held_total = 7;
	g->filed_total = 1;
	g->held_now = 3;
	g->relays[0].name = "gmail";
	g->relays[0].up = 1;
	g->relays[0].oauth = METRICS_OAUTH_VALID;
	g->relays[0].oauth_expires = 2000;
	g->relays[1].name = "bad\"name";
	g->relays[1].up = 0;
	g->n_relays = 2;
}

static char *
render(int64_t now)
{
	static char text[65536];
	struct buf  b;

	buf_init(&b, sizeof(text) - 1);
	cr_assert_eq(metrics_render(&b, now), 0);
	memcpy(text, b.data, b.len);
	text[b.len] = '\0';
	buf_fini(&b);
	return text;
}

Test(metrics, counters_histogram_and_gauges_in_text_format)
{
	char *t;

	metrics_set_gauges(two_relays, NULL, 2);
	metrics_count_accepted(METRICS_PATH_SMTP);
	metrics_count_accepted(METRICS_PATH_SMTP);
	metrics_count_settled("gmail", 2, 1, 1, 30);
	metrics_count_settled("gmail", 0, 1, 0, 90);
	metrics_count_conn_opened("gmail");
	metrics_count_conn_reused("gmail");
	metrics_count_tls_failure("gmail", "certificate expired", NULL);
	t = render(1600);
	cr_assert(strstr(t, "# TYPE sendq_messages_accepted_total counter\n"));
	cr_assert(
	    strstr(t, "sendq_messages_accepted_total{path=\"smtp\"} 2\n"));
	cr_assert(
	    strstr(t, "sendq_messages_accepted_total{path=\"maildrop\"} 0\n"));
	cr_assert(
	    strstr(t, "sendq_recipients_delivered_total{relay=\"gmail\"} 2\n"));
	cr_assert(
	    strstr(t, "sendq_recipients_deferred_total{relay=\"gmail\"} 2\n"));
	cr_assert(
	    strstr(t, "sendq_recipients_bounced_total{relay=\"gmail\"} 1\n"));
	/* A relay the gauges name exists at 0, its label escaped. */
	cr_assert(
	    strstr(t,
		"sendq_connections_opened_total{relay=\"bad\\\"name\"} 0\n"),
	    "%s", t);
	cr_assert(strstr(t,
	    "sendq_tls_handshake_failures_total{relay=\"gmail\",reason=\"cert_"
	    "expired\"} 1\n"));
	/* One delivery observed (30 s): cumulative buckets. */
	cr_assert(strstr(t,
	    "sendq_delivery_latency_seconds_bucket{relay=\"gmail\",le=\"15\"} "
	    "0\n"));
	cr_assert(strstr(t,
	    "sendq_delivery_latency_seconds_bucket{relay=\"gmail\",le=\"60\"} "
	    "1\n"));
	cr_assert(strstr(t,
	    "sendq_delivery_latency_seconds_bucket{relay=\"gmail\",le=\"+Inf\"}"
	    " 1\n"));
	cr_assert(strstr(t,
	    "sendq_delivery_latency_seconds_count{relay=\"gmail\"} 1\n"));
	cr_assert(strstr(t, "sendq_queue_messages 3\n"));
	cr_assert(strstr(t, "sendq_queue_oldest_age_seconds 600\n"));
	cr_assert(strstr(t, "sendq_relay_up{relay=\"gmail\"} 1\n"));
	cr_assert(strstr(t,
	    "sendq_oauth_token_state{relay=\"gmail\",state=\"valid\"} 1\n"));
	cr_assert(strstr(t,
	    "sendq_oauth_token_state{relay=\"gmail\",state=\"held\"} 0\n"));
	cr_assert_null(strstr(t, "sendq_oauth_token_state{relay=\"bad"));
	cr_assert(strstr(t, "sendq_spool_free_bytes 4096\n"));
	cr_assert(strstr(t,
	    "# TYPE sendq_spool_held_messages_total counter\n"
	    "sendq_spool_held_messages_total 7\n"));
	cr_assert(strstr(t, "sendq_spool_log_syncs_total 2\n"));
	cr_assert(strstr(t, "sendq_spool_log_messages_total 9\n"));
	cr_assert(strstr(t, "sendq_spool_filed_messages_total 1\n"));
	cr_assert(strstr(t, "sendq_spool_held_messages 3\n"));
}

Test(metrics, tls_reasons_are_a_small_fixed_set)
{
	cr_assert_str_eq(
	    metrics_tls_reason(
		"host name mismatch (expected a, certificate is for b)", NULL),
	    "cert_name_mismatch");
	cr_assert_str_eq(
	    metrics_tls_reason("certificate signer not trusted", NULL),
	    "cert_untrusted");
	cr_assert_str_eq(metrics_tls_reason("not verified (handshake failed)",
			     "TLS handshake failed: ... use tls = starttls)"),
	    "handshake");
	cr_assert_str_eq(
	    metrics_tls_reason("none", "STARTTLS not offered by x"),
	    "starttls");
	cr_assert_str_eq(metrics_tls_reason(NULL, NULL), "handshake");
}

Test(metrics, metrics_listen_forms)
{
	struct metrics_http_addr a;
	struct sq_err            err = { 0 };
	static const char *const bad[] = { "localhost",
		"127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", ":9100",
		"[::1]9100", "[]:1", "unix:relative", "::1:9100",
		"127.0.0.1:9x" };
	size_t                   i;

	cr_assert_eq(metrics_http_parse("127.0.0.1:9469", &a, &err), 0);
	cr_assert_str_eq(a.host, "127.0.0.1");
	cr_assert_eq(a.port, 9469);
	cr_assert_eq(metrics_http_parse("[::1]:80", &a, &err), 0);
	cr_assert_str_eq(a.host, "::1");
	cr_assert_eq(a.port, 80);
	cr_assert_eq(metrics_http_parse("unix:/run/sendq/m.sock", &a, &err), 0);
	cr_assert(a.is_unix);
	cr_assert_str_eq(a.host, "/run/sendq/m.sock");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(metrics_http_parse(bad[i], &a, &err), SQ_ECONFIG,
		    "%s", bad[i]);
}

TestSuite(sendqctl_check);

static int
verdict(const char *json, long long max_age, long long warn_age, char *line)
{
	struct sendqctl_opts o;

	sendqctl_opts_init(&o);
	o.max_age = max_age;
	o.warn_age = warn_age;
	return sendqctl_check_verdict(json, 10000, &o, line, 512);
}

Test(sendqctl_check, ok_warning_critical_unknown)
{
	char line[512];

	cr_assert_eq(verdict("{\"queued\":0,\"oldest\":0,\"smarthosts\":[{"
			     "\"name\":\"a\",\"state\":\"up\"}]}",
			 60, 30, line),
	    0);
	cr_assert_str_eq(line,
	    "OK: 0 queued, relays 1/1 up | queued=0 oldest=0s relays_up=1 "
	    "relays=1");
	cr_assert_eq(verdict("{\"queued\":2,\"oldest\":9900,\"smarthosts\":[{"
			     "\"name\":\"a\",\"state\":\"up\"}]}",
			 -1, -1, line),
	    0);
	cr_assert_str_eq(line,
	    "OK: 2 queued, oldest 100s, relays 1/1 up | queued=2 oldest=100s "
	    "relays_up=1 relays=1");
	cr_assert_eq(verdict("{\"queued\":2,\"oldest\":9900,\"smarthosts\":[]}",
			 200, 60, line),
	    1);
	cr_assert(
	    strncmp(line,
		"WARNING: oldest message 100s old (--warn-age 60s); 2 queued",
		57) == 0,
	    "%s", line);
	cr_assert_eq(verdict("{\"queued\":2,\"oldest\":9900,\"smarthosts\":[]}",
			 60, 30, line),
	    2);
	cr_assert(strncmp(line,
		      "CRITICAL: oldest message 100s old (--max-age 60s)",
		      48) == 0,
	    "%s", line);
	cr_assert_eq(
	    verdict("{\"queued\":1,\"oldest\":9990,\"smarthosts\":[{\"name\":"
		    "\"gmail\",\"state\":\"down\",\"last_error\":\"421 "
		    "busy\"},{\"name\":\"o\",\"state\":\"held\"}]}",
		-1, -1, line),
	    2);
	cr_assert(strncmp(line,
		      "CRITICAL: relay gmail DOWN (421 busy); relay o HELD "
		      "(OAuth grant refused: sendqctl oauth init o); 1 queued, "
		      "oldest 10s, relays 0/2 up |",
		      112) == 0,
	    "%s", line);
	cr_assert_eq(verdict("not json", -1, -1, line), 3);
	cr_assert(strncmp(line, "UNKNOWN:", 8) == 0);
}

Test(sendqctl_check, durations)
{
	cr_assert_eq(sendqctl_parse_duration("90"), 90);
	cr_assert_eq(sendqctl_parse_duration("90s"), 90);
	cr_assert_eq(sendqctl_parse_duration("15m"), 900);
	cr_assert_eq(sendqctl_parse_duration("2h"), 7200);
	cr_assert_eq(sendqctl_parse_duration("1d"), 86400);
	cr_assert_eq(sendqctl_parse_duration("1w"), 7 * 86400);
	cr_assert_eq(sendqctl_parse_duration(""), -1);
	cr_assert_eq(sendqctl_parse_duration("m"), -1);
	cr_assert_eq(sendqctl_parse_duration("5mm"), -1);
	cr_assert_eq(sendqctl_parse_duration("-5"), -1);
	cr_assert_eq(sendqctl_parse_duration("99999999999999"), -1);
}
