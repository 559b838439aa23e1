/*
 * test_config.c - sendq.ini parsing and validation (daemon/config.c).
 *
 * Good files check every stored value and default; bad files check the
 * exact one-line message, so a wrong FILE:LINE or a vaguer text fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "log.h"
#include "util.h"
#include "param_rows.h"

#define TEST_CONFIG_DIR   SENDQ_TEST_DATA "/config"
#define TEST_SHIPPED_CONF SENDQ_TEST_DATA "/../../../conf/sendq.ini"
#define TEST_CA           TEST_CONFIG_DIR "/ca.pem"
#define TEST_CLIENT_CERT  TEST_CONFIG_DIR "/client.pem"
#define TEST_CLIENT_KEY   TEST_CONFIG_DIR "/client.key"

static struct config *test_cfg;
static struct sq_err  test_err;

static int
test_load(const char *text)
{
	memset(&test_err, 0, sizeof(test_err));
	config_free(test_cfg);
	test_cfg = NULL;
	return config_load_string("sendq.ini", text, &test_cfg, &test_err);
}

static void
test_load_ok(const char *text)
{
	int rc = test_load(text);

	cr_assert_eq(rc, 0, "rc %d: %s", rc, test_err.msg);
	cr_assert_not_null(test_cfg);
}

static void
test_teardown(void)
{
	config_free(test_cfg);
	test_cfg = NULL;
}

TestSuite(config, .fini = test_teardown);

/* --- good input ------------------------------------------------------ */

Test(config, minimal_file_gets_every_default)
{
	const struct config_smarthost *sh;

	test_load_ok("[smarthost primary]\nhost = smtp.example.com\n");
	cr_assert_str_eq(test_cfg->path, "sendq.ini");
	cr_assert_str_eq(test_cfg->spool_dir, CONFIG_DEFAULT_SPOOL);
	cr_assert_null(test_cfg->hostname);
	cr_assert_eq(test_cfg->log_level, LOG_LEVEL_INFO);
	cr_assert_eq(test_cfg->retry_min, 60);
	cr_assert_eq(test_cfg->retry_max, 3600);
	cr_assert_eq(test_cfg->max_age, 5 * 86400);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_SENDER);
	cr_assert_null(test_cfg->admin_address);
	cr_assert_eq(test_cfg->delay_warning, 0);
	cr_assert_eq(test_cfg->stop_grace, 5);
	cr_assert_str_eq(test_cfg->control_socket, CONFIG_DEFAULT_SOCKET);
	cr_assert_eq(test_cfg->n_smarthosts, 1);
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->name, "primary");
	cr_assert_str_eq(sh->host, "smtp.example.com");
	cr_assert_eq(sh->tls, CONFIG_TLS_STARTTLS);
	cr_assert_eq(sh->port, 587);
	cr_assert_eq(sh->trust, CONFIG_TRUST_SYSTEM);
	cr_assert_null(sh->ca_file);
	cr_assert_eq(sh->line, 1);
	cr_assert_null(sh->server_name);
	cr_assert_eq(sh->n_pins, 0);
	cr_assert_null(sh->tls_priority);
	cr_assert_null(sh->client_cert);
	cr_assert_null(sh->client_key);
	cr_assert_eq(sh->auth, SASL_MECH_NONE);
	cr_assert_null(sh->user);
	cr_assert_null(sh->password_file);
	cr_assert_null(sh->password_command);
	cr_assert_null(sh->credential);
	cr_assert_null(sh->token_file);
	cr_assert_null(sh->token_command);
	cr_assert_eq(sh->timeout_connect, 30);
	cr_assert_eq(sh->timeout_tls, 60);
	cr_assert_eq(sh->timeout_greeting, 300);
	cr_assert_eq(sh->timeout_command, 300);
	cr_assert_eq(sh->timeout_data_block, 180);
	cr_assert_eq(sh->timeout_data_end, 600);
	cr_assert_eq(sh->session_max, 1800);
	cr_assert_eq(sh->max_connections, 2);
	cr_assert_eq(sh->messages_per_connection, 500);
	cr_assert_eq(sh->idle_timeout, 5);
	cr_assert_eq(sh->pipeline_messages, 1);
	cr_assert_null(sh->match_sender);
	cr_assert_null(sh->match_recipient);
	cr_assert_null(sh->fallback);
	cr_assert_eq(sh->fallback_index, -1);
	cr_assert_eq(sh->rate_count, 0);
	cr_assert_eq(sh->rate_seconds, 0);
}

Test(config, every_key_is_stored)
{
	char                           text[1024];
	const struct config_smarthost *sh;

	snprintf(text, sizeof(text),
	    "[sendq]\nspool_dir = /srv/spool\nhostname = "
	    "mail.example.com\nlog_level = debug\ncontrol_socket = "
	    "/tmp/sq.sock\n[queue]\nretry_min = 2h\nretry_max = 6h\nmax_age = "
	    "2d\nbounce = admin\nadmin_address = "
	    "postmaster@example.com\ndelay_warning = 4h\n[smarthost "
	    "corp]\nhost = relay.corp.example\nport = 2525\ntls = "
	    "implicit\ntrust = ca_file\nca_file = %s\nmax_connections = "
	    "7\nmessages_per_connection = 500\nidle_timeout = "
	    "1m\npipeline_messages = "
	    "no\nmatch_sender "
	    "= alerts@* *@monitoring.example\nmatch_recipient = "
	    "*.corp.example\nfallback = lab\nrate = 100/h\n[smarthost "
	    "lab]\nhost = 192.0.2.7\ntrust = insecure\n",
	    TEST_CA);
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->spool_dir, "/srv/spool");
	cr_assert_str_eq(test_cfg->hostname, "mail.example.com");
	cr_assert_eq(test_cfg->log_level, LOG_LEVEL_DEBUG);
	cr_assert_eq(test_cfg->retry_min, 7200);
	cr_assert_str_eq(test_cfg->control_socket, "/tmp/sq.sock");
	cr_assert_eq(test_cfg->retry_max, 6 * 3600);
	cr_assert_eq(test_cfg->max_age, 2 * 86400);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_ADMIN);
	cr_assert_str_eq(test_cfg->admin_address, "postmaster@example.com");
	cr_assert_eq(test_cfg->delay_warning, 4 * 3600);
	cr_assert_eq(test_cfg->n_smarthosts, 2);
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->name, "corp");
	cr_assert_str_eq(sh->host, "relay.corp.example");
	cr_assert_eq(sh->port, 2525);
	cr_assert_eq(sh->tls, CONFIG_TLS_IMPLICIT);
	cr_assert_eq(sh->trust, CONFIG_TRUST_CA_FILE);
	cr_assert_str_eq(sh->ca_file, TEST_CA);
	cr_assert_eq(sh->line, 13);
	cr_assert_eq(sh->max_connections, 7);
	cr_assert_eq(sh->messages_per_connection, 500);
	cr_assert_eq(sh->idle_timeout, 60);
	cr_assert_eq(sh->pipeline_messages, 0);
	cr_assert_not_null(sh->match_sender);
	cr_assert_str_eq(sh->match_sender[0], "alerts@*");
	cr_assert_str_eq(sh->match_sender[1], "*@monitoring.example");
	cr_assert_null(sh->match_sender[2]);
	cr_assert_str_eq(sh->match_recipient[0], "*.corp.example");
	cr_assert_null(sh->match_recipient[1]);
	cr_assert_str_eq(sh->fallback, "lab");
	cr_assert_eq(sh->fallback_index, 1);
	cr_assert_eq(sh->rate_count, 100);
	cr_assert_eq(sh->rate_seconds, 3600);
	sh = &test_cfg->smarthosts[1];
	cr_assert_str_eq(sh->name, "lab");
	cr_assert_str_eq(sh->host, "192.0.2.7");
	cr_assert_eq(sh->trust, CONFIG_TRUST_INSECURE);
	cr_assert_eq(sh->line, 27);
	cr_assert_eq(sh->fallback_index, -1);
}

Test(config, smarthosts_keep_file_order)
{
	test_load_ok("[smarthost b]\nhost = b.example\n[smarthost a]\nhost = "
		     "a.example\n[smarthost c]\nhost = c.example\n");
	cr_assert_eq(test_cfg->n_smarthosts, 3);
	cr_assert_str_eq(test_cfg->smarthosts[0].name, "b");
	cr_assert_str_eq(test_cfg->smarthosts[1].name, "a");
	cr_assert_str_eq(test_cfg->smarthosts[2].name, "c");
}

Test(config, sections_may_come_in_any_order_and_be_empty)
{
	test_load_ok("[smarthost x]\nhost = x.example\n[queue]\n[sendq]\n");
	cr_assert_eq(test_cfg->retry_min, 60);
}

Test(config, enum_values_ignore_case)
{
	test_load_ok("[sendq]\nlog_level = WARNING\n[smarthost x]\nhost = "
		     "x.example\ntls = Implicit\n");
	cr_assert_eq(test_cfg->log_level, LOG_LEVEL_WARN);
	cr_assert_eq(test_cfg->smarthosts[0].tls, CONFIG_TLS_IMPLICIT);
}

Test(config, inline_comments_blanks_and_indentation_are_ignored)
{
	test_load_ok("; comment\n# hash comment\n\n  [sendq]   ; trailing "
		     "comment\n\thostname   =   h.example   ; why\n[smarthost "
		     "x]\n    host = x.example\n    port = 2525\n");
	cr_assert_str_eq(test_cfg->hostname, "h.example");
	/* An indented line is a key of its own, not a continuation of the
	 * value above it (inih's multi-line syntax). */
	cr_assert_str_eq(test_cfg->smarthosts[0].host, "x.example");
	cr_assert_eq(test_cfg->smarthosts[0].port, 2525);
}

Test(config, colon_separator_is_accepted)
{
	test_load_ok("[smarthost x]\nhost: x.example\n");
	cr_assert_str_eq(test_cfg->smarthosts[0].host, "x.example");
}

Test(config, utf8_bom_at_start_is_ignored)
{
	test_load_ok("\xef\xbb\xbf[smarthost x]\nhost = x.example\n");
	cr_assert_eq(test_cfg->n_smarthosts, 1);
}

Test(config, last_line_without_newline_is_read)
{
	test_load_ok("[smarthost x]\nhost = x.example");
	cr_assert_str_eq(test_cfg->smarthosts[0].host, "x.example");
}

Test(config, line_of_exactly_the_maximum_is_accepted)
{
	char   text[512];
	char   value[CONFIG_LINE_MAX + 1];
	size_t prefix = strlen("spool_dir = /");

	memset(value, 'a', sizeof(value));
	value[CONFIG_LINE_MAX - prefix] = '\0';
	snprintf(text, sizeof(text),
	    "[sendq]\nspool_dir = /%s\r\n[smarthost x]\nhost = x.example\n",
	    value);
	test_load_ok(text);
	cr_assert_eq(strlen(test_cfg->spool_dir),
	    CONFIG_LINE_MAX - strlen("spool_dir = "));
}

/*
 * Criterion runs each parameter in a fresh process, so parameters hold
 * their strings in arrays, never pointers into this image.
 */
struct test_duration {
	char     text[16];
	unsigned secs;
};

ParameterizedTestParameters(config, retry_min_units)
{
	static struct test_duration params[] = {
		{ "1", 1 },
		{ "90", 90 },
		{ "30s", 30 },
		{ "5m", 300 },
		{ "2h", 7200 },
		{ "1d", 86400 },
		{ "1440m", 86400 },
	};

	return cr_make_param_array(struct test_duration, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_duration *d, config, retry_min_units)
{
	char text[128];

	snprintf(text, sizeof(text),
	    "[queue]\nretry_min = %s\nretry_max = 1d\n[smarthost x]\nhost = "
	    "x.example\n",
	    d->text);
	test_load_ok(text);
	cr_assert_eq(test_cfg->retry_min, d->secs, "%s", d->text);
	config_free(test_cfg);
	test_cfg = NULL;
}

struct test_port {
	char            lines[96];
	unsigned        port;
	enum config_tls tls;
};

ParameterizedTestParameters(config, port_defaults_follow_tls)
{
	static struct test_port params[] = {
		{ "host = x.example\ntls = implicit\n", 465,
		    CONFIG_TLS_IMPLICIT },
		{ "host = x.example\ntls = starttls\n", 587,
		    CONFIG_TLS_STARTTLS },
		{ "host = x.example\n", 587, CONFIG_TLS_STARTTLS },
		{ "host = 127.0.0.1\ntls = none\n", 25, CONFIG_TLS_NONE },
		{ "host = x.example\ntls = implicit\nport = 10465\n", 10465,
		    CONFIG_TLS_IMPLICIT },
		{ "port = 2525\ntls = none\nhost = ::1\n", 2525,
		    CONFIG_TLS_NONE },
	};

	return cr_make_param_array(struct test_port, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_port *t, config, port_defaults_follow_tls)
{
	char text[256];

	snprintf(text, sizeof(text), "[smarthost x]\n%s", t->lines);
	test_load_ok(text);
	cr_assert_eq(test_cfg->smarthosts[0].port, t->port, "%s", t->lines);
	cr_assert_eq(test_cfg->smarthosts[0].tls, t->tls);
	config_free(test_cfg);
	test_cfg = NULL;
}

/* --- tls = none: loopback only ---------------------------------------- */

struct test_host {
	char host[48];
	char stored[48];
};

ParameterizedTestParameters(config, tls_none_is_allowed_to_loopback)
{
	static struct test_host params[] = {
		{ "127.0.0.1", "127.0.0.1" },
		{ "127.8.9.10", "127.8.9.10" },
		{ "::1", "::1" },
		{ "[::1]", "::1" },
		{ "localhost", "localhost" },
		{ "LocalHost", "LocalHost" },
	};

	return cr_make_param_array(struct test_host, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_host *h, config, tls_none_is_allowed_to_loopback)
{
	char text[256];

	snprintf(text, sizeof(text),
	    "[smarthost local]\nhost = %s\ntls = none\n", h->host);
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->smarthosts[0].host, h->stored);
	cr_assert_eq(test_cfg->smarthosts[0].tls, CONFIG_TLS_NONE);
	config_free(test_cfg);
	test_cfg = NULL;
}

ParameterizedTestParameters(config, tls_none_is_refused_to_a_remote_host)
{
	static struct test_host params[] = {
		{ "smtp.example.com", "" },
		{ "10.0.0.1", "" },
		{ "128.0.0.1", "" },
		{ "::2", "" },
		{ "[2001:db8::1]", "" },
		{ "localhost.example.com", "" },
	};

	return cr_make_param_array(struct test_host, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_host *h, config,
    tls_none_is_refused_to_a_remote_host)
{
	char        text[256], want[512];
	const char *bare = h->host;
	char        buf[64];

	if (bare[0] == '[') {
		snprintf(buf, sizeof(buf), "%.*s", (int)strlen(bare) - 2,
		    bare + 1);
		bare = buf;
	}
	snprintf(text, sizeof(text),
	    "[smarthost remote]\nhost = %s\n\ntls = none\n", h->host);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	snprintf(want, sizeof(want),
	    "sendq.ini:4: [smarthost remote] tls: \"none\" is refused for host "
	    "\"%s\": cleartext would leak mail and credentials to the network; "
	    "only a loopback host (127.0.0.1, ::1, localhost) may use it "
	    "(allowed: implicit, starttls)",
	    bare);
	cr_assert_str_eq(test_err.msg, want);
}

/* --- ca_file ----------------------------------------------------------- */

Test(config, ca_file_with_trust_ca_file_is_stored)
{
	test_load_ok("[smarthost c]\nhost = c.example\ntrust = "
		     "ca_file\nca_file = " TEST_CA "\n");
	cr_assert_str_eq(test_cfg->smarthosts[0].ca_file, TEST_CA);
	cr_assert_eq(test_cfg->smarthosts[0].trust, CONFIG_TRUST_CA_FILE);
}

Test(config, ca_file_may_come_before_trust)
{
	test_load_ok("[smarthost c]\nca_file = " TEST_CA
		     "\nhost = c.example\ntrust = ca_file\n");
	cr_assert_str_eq(test_cfg->smarthosts[0].ca_file, TEST_CA);
}

Test(config, trust_ca_file_without_ca_file_points_at_the_section)
{
	cr_assert_eq(
	    test_load(
		"; x\n[smarthost c]\nhost = c.example\ntrust = ca_file\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:2: [smarthost c] ca_file: missing (required with trust "
	    "= ca_file, set at line 4)");
}

Test(config, ca_file_with_another_trust_is_an_error)
{
	cr_assert_eq(test_load(
			 "[smarthost c]\nhost = c.example\nca_file = " TEST_CA
			 "\ntrust = insecure\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:3: [smarthost c] ca_file: only used with trust = "
	    "ca_file, not with trust = insecure (remove ca_file or set trust = "
	    "ca_file)");
}

Test(config, ca_file_with_default_trust_is_an_error)
{
	cr_assert_eq(test_load(
			 "[smarthost c]\nhost = c.example\nca_file = " TEST_CA
			 "\n"),
	    SQ_ECONFIG);
	cr_assert(strstr(test_err.msg,
		      "sendq.ini:3: [smarthost c] ca_file: only used with "
		      "trust = ca_file, not with trust = system") ==
		test_err.msg,
	    "%s", test_err.msg);
}

Test(config, ca_file_must_exist)
{
	cr_assert_eq(test_load("[smarthost c]\nhost = c.example\ntrust = "
			       "ca_file\nca_file = " TEST_CONFIG_DIR
			       "/missing.pem\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:4: [smarthost c] ca_file: \"" TEST_CONFIG_DIR
	    "/missing.pem\" cannot be read: No such file or directory");
}

/* --- bad input: one exact message each -------------------------------- */

struct test_bad {
	char text[400];
	char msg[1024]; /* compared up to sq_err's 511 */
};

#define SH "[smarthost s]\nhost = s.example\n"
#define SH_KEYS \
	"host, port, tls, trust, ca_file, pin, server_name, " \
	"tls_priority, client_cert, client_key, auth, user, password_file, " \
	"password_command, credential, token_file, token_command, " \
	"oauth_provider, oauth_tenant, oauth_token_endpoint, " \
	"oauth_device_endpoint, oauth_client_id, " \
	"oauth_client_secret_file, oauth_client_secret_credential, " \
	"oauth_scope, oauth_ca_file, " \
	"timeout_connect, timeout_tls, timeout_greeting, timeout_command, " \
	"timeout_data_block, timeout_data_end, session_max, " \
	"max_connections, messages_per_connection, idle_timeout, " \
	"match_sender, match_recipient, fallback, rate"

ParameterizedTestParameters(config, bad_input_names_file_line_and_reason)
{
	static struct test_bad params[] = {
		/* sections */
		{ "[mail]\n",
		    "sendq.ini:1: [mail]: unknown section (allowed: [sendq], "
		    "[queue], [smarthost NAME])" },
		{ "; c\n[smarthost]\nhost = x\n",
		    "sendq.ini:2: [smarthost]: a smarthost needs a name, as in "
		    "[smarthost primary]" },
		{ "[smarthost a]\nhost = a\n\n[smarthost a]\nhost = b\n",
		    "sendq.ini:4: [smarthost a]: duplicate smarthost name "
		    "(first at line 1)" },
		{ "[smarthost a/b]\n",
		    "sendq.ini:1: [smarthost a/b]: invalid smarthost name "
		    "(allowed: 1 to 64 letters, digits, '.', '_', '-')" },
		{ "[sendq main]\n",
		    "sendq.ini:1: [sendq main]: [sendq] takes no name" },
		{ "[queue]\n[queue]\n",
		    "sendq.ini:2: [queue]: duplicate section (first at line "
		    "1)" },
		/* keys */
		{ "spool_dir = /x\n[sendq]\n",
		    "sendq.ini:1: spool_dir: key outside any section (allowed: "
		    "after a [sendq], [queue] or [smarthost NAME] header)" },
		{ SH "hots = x\n",
		    "sendq.ini:3: [smarthost s] hots: unknown key "
		    "(allowed: " SH_KEYS ")" },
		{ "[sendq]\nspooldir = /x\n",
		    "sendq.ini:2: [sendq] spooldir: unknown key (allowed: "
		    "spool_dir, state_dir, hostname, default_domain, "
		    "rewrite_sender, log_level, control_socket, "
		    "metrics_listen, admin_group, submit_users, "
		    "submit_groups)" },
		/* rights: names are checked here, resolved by sendqd */
		{ "[sendq]\nadmin_group = adm wheel\n",
		    "sendq.ini:2: [sendq] admin_group: only one name may be "
		    "given (allowed: a group name; names of letters, digits, "
		    "'.', '_', '-' (not first) and a final '$', at most 32 "
		    "characters each)" },
		{ "[sendq]\nsubmit_users = alice -bob\n",
		    "sendq.ini:2: [sendq] submit_users: \"-bob\" is not a "
		    "valid name (allowed: space-separated user names; names of "
		    "letters, digits, '.', '_', '-' (not first) and a final "
		    "'$', at most 32 characters each)" },
		{ "[sendq]\nsubmit_groups = mail 1000\n",
		    "sendq.ini:2: [sendq] submit_groups: \"1000\" is not a "
		    "valid name (allowed: space-separated group names; names "
		    "of letters, digits, '.', '_', '-' (not first) and a final "
		    "'$', at most 32 characters each)" },
		{ "[sendq]\nsubmit_users = a b a\n",
		    "sendq.ini:2: [sendq] submit_users: \"a\" is given twice" },
		{ "[sendq]\nsubmit_users = a$b\n",
		    "sendq.ini:2: [sendq] submit_users: \"a$b\" is not a valid "
		    "name (allowed: space-separated user names; names of "
		    "letters, digits, '.', '_', '-' (not first) and a final "
		    "'$', at most 32 characters each)" },
		{ "[queue]\nretry_maximum = 1h\n",
		    "sendq.ini:2: [queue] retry_maximum: unknown key (allowed: "
		    "retry_min, retry_max, max_age, bounce, admin_address, "
		    "delay_warning, min_free_space, max_messages_per_user, "
		    "max_bytes_per_user, stop_grace)" },
		{ "[queue]\nstop_grace = 2m\n",
		    "sendq.ini:2: [queue] stop_grace: \"2m\" is out of range "
		    "(allowed: 0s to 1m, a number with optional unit s, m, h "
		    "or d)" },
		{ "[smarthost primary]\nhost = smtp.example.com\n; "
		  "c\n\n\n\ntls = startls\n",
		    "sendq.ini:7: [smarthost primary] tls: \"startls\" is not "
		    "valid (allowed: implicit, starttls, none)" },
		{ SH "port = 25\nport = 26\n",
		    "sendq.ini:4: [smarthost s] port: duplicate key (first at "
		    "line 3)" },
		{ SH "  host = other.example\n",
		    "sendq.ini:3: [smarthost s] host: duplicate key (first at "
		    "line 2)" },
		/* values */
		{ "[smarthost s]\nhost =\n",
		    "sendq.ini:2: [smarthost s] host: empty value (allowed: a "
		    "host name or an IP address)" },
		{ "[sendq]\nhostname = ; only a comment\n",
		    "sendq.ini:2: [sendq] hostname: empty value (allowed: a "
		    "host name such as mail.example.com)" },
		{ SH "port = 0\n",
		    "sendq.ini:3: [smarthost s] port: \"0\" is out of range "
		    "(allowed: 1 to 65535)" },
		{ SH "port = 65536\n",
		    "sendq.ini:3: [smarthost s] port: \"65536\" is out of "
		    "range (allowed: 1 to 65535)" },
		{ SH "port = 99999999999999999999\n",
		    "sendq.ini:3: [smarthost s] port: \"99999999999999999999\" "
		    "is out of range (allowed: 1 to 65535)" },
		{ SH "port = +25\n",
		    "sendq.ini:3: [smarthost s] port: \"+25\" is not valid "
		    "(allowed: 1 to 65535)" },
		{ SH "port = smtp\n",
		    "sendq.ini:3: [smarthost s] port: \"smtp\" is not valid "
		    "(allowed: 1 to 65535)" },
		{ SH "trust = none\n",
		    "sendq.ini:3: [smarthost s] trust: \"none\" is not valid "
		    "(allowed: system, ca_file, insecure, pin)" },
		{ "[smarthost s]\nhost = smtp.example.com:465\n",
		    "sendq.ini:2: [smarthost s] host: \"smtp.example.com:465\" "
		    "is not a valid host name or IP address (allowed: a host "
		    "name or an IP address; the port goes in port =)" },
		{ "[smarthost s]\nhost = -bad.example\n",
		    "sendq.ini:2: [smarthost s] host: \"-bad.example\" is not "
		    "a valid host name or IP address (allowed: a host name or "
		    "an IP address; the port goes in port =)" },
		{ "[smarthost s]\nhost = [smtp.example.com]\n",
		    "sendq.ini:2: [smarthost s] host: \"[smtp.example.com]\" "
		    "is not a valid host name or IP address (allowed: a host "
		    "name or an IP address; the port goes in port =)" },
		{ "[sendq]\nspool_dir = var/spool/sendq\n",
		    "sendq.ini:2: [sendq] spool_dir: \"var/spool/sendq\" is "
		    "not an absolute path (allowed: an absolute path)" },
		{ "[sendq]\nhostname = mail_host.example\n",
		    "sendq.ini:2: [sendq] hostname: \"mail_host.example\" is "
		    "not a valid host name (allowed: a host name such as "
		    "mail.example.com)" },
		{ "[sendq]\nhostname = 192.0.2.1\n",
		    "sendq.ini:2: [sendq] hostname: \"192.0.2.1\" is not a "
		    "valid host name (allowed: a host name such as "
		    "mail.example.com)" },
		{ "[sendq]\nhostname = a..b\n",
		    "sendq.ini:2: [sendq] hostname: \"a..b\" is not a valid "
		    "host name (allowed: a host name such as "
		    "mail.example.com)" },
		{ "[sendq]\nlog_level = verbose\n",
		    "sendq.ini:2: [sendq] log_level: \"verbose\" is not valid "
		    "(allowed: error, warning, info, debug)" },
		{ "[queue]\nretry_min = 0\n",
		    "sendq.ini:2: [queue] retry_min: \"0\" is out of range "
		    "(allowed: 1s to 1d, a number with optional unit s, m, h "
		    "or d)" },
		{ "[queue]\nretry_min = 25h\n",
		    "sendq.ini:2: [queue] retry_min: \"25h\" is out of range "
		    "(allowed: 1s to 1d, a number with optional unit s, m, h "
		    "or d)" },
		{ "[queue]\nretry_min = 1 m\n",
		    "sendq.ini:2: [queue] retry_min: \"1 m\" is not valid "
		    "(allowed: 1s to 1d, a number with optional unit s, m, h "
		    "or d)" },
		{ "[queue]\nretry_min = 1w\n",
		    "sendq.ini:2: [queue] retry_min: \"1w\" is not valid "
		    "(allowed: 1s to 1d, a number with optional unit s, m, h "
		    "or d)" },
		{ "[sendq]\nspool_dir = /x\x01y\n",
		    "sendq.ini:2: [sendq] spool_dir: \"/x?y\" contains a "
		    "control character (allowed: an absolute path)" },
		/* syntax */
		{ SH "tls implicit\n",
		    "sendq.ini:3: syntax error: expected \"key = value\", "
		    "\"[section]\" or a comment" },
		{ SH "= implicit\n",
		    "sendq.ini:3: [smarthost s]: syntax error: missing key "
		    "name before '='" },
		{ SH "[sendq\n",
		    "sendq.ini:3: syntax error: section header without a "
		    "closing ']'" },
		{ SH "[sendq ; x]\n",
		    "sendq.ini:3: syntax error: section header without a "
		    "closing ']'" },
		{ SH "[sendq] extra\n",
		    "sendq.ini:3: [sendq]: syntax error: unexpected text after "
		    "']'" },
		/* whole-section and whole-file checks */
		{ "; x\n\n[smarthost s]\nport = 25\n",
		    "sendq.ini:3: [smarthost s] host: missing (required: a "
		    "host name or an IP address)" },
		{ "[smarthost a]\nhost = a\n[smarthost b]\ntls = "
		  "none\n[sendq]\n",
		    "sendq.ini:3: [smarthost b] host: missing (required: a "
		    "host name or an IP address)" },
		{ "[sendq]\n; no relay\n\n",
		    "sendq.ini:3: no smarthost defined (add a [smarthost NAME] "
		    "section with at least host =)" },
		{ "",
		    "sendq.ini:0: no smarthost defined (add a [smarthost NAME] "
		    "section with at least host =)" },
		/* only the first error, in file order */
		{ SH "colour = red\ntls = startls\n",
		    "sendq.ini:3: [smarthost s] colour: unknown key "
		    "(allowed: " SH_KEYS ")" },
		{ "[smarthost s]\nnot a key line\nport = 1\n",
		    "sendq.ini:2: syntax error: expected \"key = value\", "
		    "\"[section]\" or a comment" },
	};

	return cr_make_param_array(struct test_bad, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_bad *b, config,
    bad_input_names_file_line_and_reason)
{
	int rc;

	rc = test_load(b->text);
	cr_assert_lt(rc, 0, "accepted: %s", b->text);
	cr_assert_null(test_cfg);
	cr_assert_eq(strncmp(test_err.msg, b->msg, sizeof(test_err.msg) - 1), 0,
	    "got %s, want %s", test_err.msg, b->msg);
	cr_assert_eq(test_err.code, rc);
	cr_assert_null(strchr(test_err.msg, '\n'));
}

/* --- TLS details (issue 3) --------------------------------------------- */

/* Pins of 32 known bytes: byte i of pin k is (7 * i + k) & 0xff. */
static const char *const test_pins[] = {
	"AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk=",
	"AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o=",
	"AgkQFx4lLDM6QUhPVl1ka3J5gIeOlZyjqrG4v8bN1Ns=",
	"AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dw=",
	"BAsSGSAnLjU8Q0pRWF9mbXR7gomQl56lrLO6wcjP1t0=",
	"BQwTGiEoLzY9REtSWWBnbnV8g4qRmJ+mrbS7wsnQ194=",
	"Bg0UGyIpMDc+RUxTWmFob3Z9hIuSmaCnrrW8w8rR2N8=",
	"Bw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS2eA=",
	"CA8WHSQrMjlAR05VXGNqcXh/ho2Um6KpsLe+xczT2uE=",
};

#define PIN0 "sha256:AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk="
#define PIN1 "sha256:AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09o="

static void
test_assert_pin(const struct config_smarthost *sh, size_t i, int k)
{
	size_t b;

	cr_assert_lt(i, sh->n_pins);
	for (b = 0; b < CONFIG_PIN_LEN; b++)
		cr_assert_eq(sh->pins[i][b],
		    (unsigned char)((7 * b + k) & 0xff), "pin %zu byte %zu", i,
		    b);
}

Test(config, tls_keys_are_stored)
{
	const struct config_smarthost *sh;

	test_load_ok(
	    "[smarthost s]\nhost = 192.0.2.1\nserver_name = "
	    "smtp.example.com\ntls_priority = "
	    "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1\nclient_cert = " TEST_CLIENT_CERT
	    "\nclient_key = " TEST_CLIENT_KEY "\n");
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->server_name, "smtp.example.com");
	cr_assert_str_eq(sh->tls_priority, "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1");
	cr_assert_str_eq(sh->client_cert, TEST_CLIENT_CERT);
	cr_assert_str_eq(sh->client_key, TEST_CLIENT_KEY);
}

Test(config, trust_pin_with_one_pin_decodes_it)
{
	test_load_ok(SH "trust = pin\npin = " PIN0 "\n");
	cr_assert_eq(test_cfg->smarthosts[0].trust, CONFIG_TRUST_PIN);
	cr_assert_eq(test_cfg->smarthosts[0].n_pins, 1);
	test_assert_pin(&test_cfg->smarthosts[0], 0, 0);
}

Test(config, pins_may_share_a_line_or_repeat_the_key)
{
	const struct config_smarthost *sh;
	char                           text[1024];

	snprintf(text, sizeof(text),
	    SH "pin = sha256:%s  sha256:%s sha256:%s ; three\ntrust = pin\npin "
	       "= sha256:%s\n; c\npin = SHA256:%s\n",
	    test_pins[0], test_pins[1], test_pins[2], test_pins[3],
	    test_pins[4]);
	test_load_ok(text);
	sh = &test_cfg->smarthosts[0];
	cr_assert_eq(sh->n_pins, 5);
	test_assert_pin(sh, 0, 0);
	test_assert_pin(sh, 1, 1);
	test_assert_pin(sh, 2, 2);
	test_assert_pin(sh, 3, 3);
	test_assert_pin(sh, 4, 4);
}

Test(config, pins_belong_to_their_own_smarthost)
{
	test_load_ok(
	    "[smarthost a]\nhost = a.example\ntrust = pin\npin = " PIN0
	    "\n[smarthost b]\nhost = b.example\ntrust = pin\npin = " PIN0
	    " " PIN1 "\n");
	cr_assert_eq(test_cfg->smarthosts[0].n_pins, 1);
	cr_assert_eq(test_cfg->smarthosts[1].n_pins, 2);
	test_assert_pin(&test_cfg->smarthosts[1], 1, 1);
}

Test(config, eight_pins_are_accepted_and_a_ninth_is_refused)
{
	char   text[1024];
	size_t len, i;

	len = (size_t)snprintf(text, sizeof(text), SH "trust = pin\n");
	for (i = 0; i < CONFIG_PINS_MAX; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len,
		    "pin = sha256:%s\n", test_pins[i]);
	test_load_ok(text);
	cr_assert_eq(test_cfg->smarthosts[0].n_pins, CONFIG_PINS_MAX);
	test_assert_pin(&test_cfg->smarthosts[0], 7, 7);

	snprintf(text + len, sizeof(text) - len, "pin = sha256:%s\n",
	    test_pins[8]);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:12: [smarthost s] pin: too many pins (allowed: at most "
	    "8 per smarthost)");
}

Test(config, pins_with_system_or_ca_file_are_kept_for_the_extra_check)
{
	test_load_ok(SH "pin = " PIN0 "\n");
	cr_assert_eq(test_cfg->smarthosts[0].trust, CONFIG_TRUST_SYSTEM);
	cr_assert_eq(test_cfg->smarthosts[0].n_pins, 1);
	test_load_ok(
	    SH "trust = ca_file\nca_file = " TEST_CA "\npin = " PIN1 "\n");
	cr_assert_eq(test_cfg->smarthosts[0].trust, CONFIG_TRUST_CA_FILE);
	test_assert_pin(&test_cfg->smarthosts[0], 0, 1);
}

/* --- AUTH (issue 3) ----------------------------------------------------- */

struct test_auth {
	char           lines[200];
	enum sasl_mech auth;
};

ParameterizedTestParameters(config, auth_combinations_that_are_valid)
{
	static struct test_auth params[] = {
		{ "", SASL_MECH_NONE },
		{ "auth = none\n", SASL_MECH_NONE },
		{ "user = u\npassword_file = /etc/sendq/p\n", SASL_MECH_AUTO },
		{ "auth = auto\nuser = u\ncredential = relay.pass\n",
		    SASL_MECH_AUTO },
		{ "auth = plain\nuser = u\npassword_command = pass show x\n",
		    SASL_MECH_PLAIN },
		{ "auth = LOGIN\nuser = u\npassword_file = /p\n",
		    SASL_MECH_LOGIN },
		{ "auth = scram-sha-256\nuser = u@example.com\npassword_file = "
		  "/p\n",
		    SASL_MECH_SCRAM_SHA_256 },
		{ "auth = xoauth2\nuser = u\ntoken_file = /var/lib/t\n",
		    SASL_MECH_XOAUTH2 },
		{ "user = u\nauth = oauthbearer\ntoken_command = get-token\n",
		    SASL_MECH_OAUTHBEARER },
		{ "password_file = /p\nuser = u\n", SASL_MECH_AUTO },
	};

	return cr_make_param_array(struct test_auth, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_auth *t, config, auth_combinations_that_are_valid)
{
	char text[512];

	snprintf(text, sizeof(text), SH "%s", t->lines);
	test_load_ok(text);
	cr_assert_eq(test_cfg->smarthosts[0].auth, t->auth, "%s", t->lines);
	config_free(test_cfg);
	test_cfg = NULL;
}

Test(config, auth_keys_are_stored)
{
	const struct config_smarthost *sh;

	test_load_ok(SH
	    "user = alice@example.com\npassword_command = cat /run/x | head -n "
	    "1\n[smarthost t]\nhost = t.example\nuser = bob\nauth = "
	    "xoauth2\ntoken_command = oauth2 --user bob\n[smarthost u]\nhost = "
	    "u.example\nuser = carol\nauth = oauthbearer\ntoken_file = "
	    "/var/lib/sendq/u.token\n[smarthost v]\nhost = v.example\nuser = "
	    "dave\npassword_file = /etc/sendq/v.secret\n[smarthost w]\nhost = "
	    "w.example\nuser = erin\ncredential = w_pass-1.txt\n");
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->user, "alice@example.com");
	cr_assert_str_eq(sh->password_command, "cat /run/x | head -n 1");
	sh = &test_cfg->smarthosts[1];
	cr_assert_str_eq(sh->token_command, "oauth2 --user bob");
	sh = &test_cfg->smarthosts[2];
	cr_assert_str_eq(sh->token_file, "/var/lib/sendq/u.token");
	sh = &test_cfg->smarthosts[3];
	cr_assert_str_eq(sh->password_file, "/etc/sendq/v.secret");
	sh = &test_cfg->smarthosts[4];
	cr_assert_str_eq(sh->credential, "w_pass-1.txt");
	cr_assert_eq(sh->auth, SASL_MECH_AUTO);
}

Test(config, auth_without_tls_to_loopback_is_allowed)
{
	test_load_ok("[smarthost local]\nhost = 127.0.0.1\ntls = none\nauth = "
		     "plain\nuser = u\npassword_file = /etc/sendq/p\n");
	cr_assert_eq(test_cfg->smarthosts[0].auth, SASL_MECH_PLAIN);
	cr_assert_eq(test_cfg->smarthosts[0].tls, CONFIG_TLS_NONE);
}

/* --- timeouts (issue 3) ------------------------------------------------- */

Test(config, timeouts_are_stored_in_seconds)
{
	const struct config_smarthost *sh;

	test_load_ok(
	    SH "timeout_connect = 5\ntimeout_tls = 10s\ntimeout_greeting = "
	       "2m\ntimeout_command = 1h\ntimeout_data_block = "
	       "90\ntimeout_data_end = 20m\nsession_max = 1d\n");
	sh = &test_cfg->smarthosts[0];
	cr_assert_eq(sh->timeout_connect, 5);
	cr_assert_eq(sh->timeout_tls, 10);
	cr_assert_eq(sh->timeout_greeting, 120);
	cr_assert_eq(sh->timeout_command, 3600);
	cr_assert_eq(sh->timeout_data_block, 90);
	cr_assert_eq(sh->timeout_data_end, 1200);
	cr_assert_eq(sh->session_max, 86400);
}

Test(config, timeouts_are_per_smarthost)
{
	test_load_ok("[smarthost a]\nhost = a.example\ntimeout_connect = "
		     "7\n[smarthost b]\nhost = b.example\n");
	cr_assert_eq(test_cfg->smarthosts[0].timeout_connect, 7);
	cr_assert_eq(test_cfg->smarthosts[1].timeout_connect, 30);
}

/* --- issue 3 rules: one exact message each ------------------------------ */

#define HOUR_RANGE \
	"(allowed: 1s to 1h, a number with optional unit s, " \
	"m, h or d)"
#define PIN_ALLOWED \
	"(allowed: sha256:BASE64, the base64 of the SHA-256 " \
	"of the server's SubjectPublicKeyInfo (44 characters))"

ParameterizedTestParameters(config, issue3_rules_name_file_line_and_reason)
{
	static struct test_bad params[] = {
		/* pin syntax */
		{ SH "pin = 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
		    "sendq.ini:3: [smarthost s] pin: "
		    "\"47DEQpj8HBSa+/TImW+5JCeuQeR"
		    "km5NMpJWZG3hSuFU=\" does not start with "
		    "sha256: " PIN_ALLOWED },
		{ SH "pin = sha1:AAAA\n",
		    "sendq.ini:3: [smarthost s] pin: \"sha1:AAAA\" does not "
		    "start with sha256: " PIN_ALLOWED },
		{ SH "pin = " PIN0 " pin-sha256:x\n",
		    "sendq.ini:3: [smarthost s] pin: \"pin-sha256:x\" does not "
		    "start with sha256: " PIN_ALLOWED },
		{ SH "pin = sha256:\n",
		    "sendq.ini:3: [smarthost s] pin: \"sha256:\" is not valid "
		    "base64 after sha256: " PIN_ALLOWED },
		{ SH "pin = "
		     "sha256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
		    "sendq.ini:3: [smarthost s] pin: "
		    "\"sha256:AAECAwQFBgcICQoLDA0O"
		    "DxAREhMUFRYXGBkaGxwdHh8\" is not valid base64 after "
		    "sha256: " PIN_ALLOWED },
		{ SH "pin = "
		     "sha256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=\n",
		    "sendq.ini:3: [smarthost s] pin: "
		    "\"sha256:AAECAwQFBgcICQoLDA0O"
		    "DxAREhMUFRYXGBkaGxwdHh9=\" is not valid base64 after "
		    "sha256: " PIN_ALLOWED },
		{ SH "pin = "
		     "sha256:AAECAwQFBgcICQoLDA0ODxAREh*UFRYXGBkaGxwdHh8=\n",
		    "sendq.ini:3: [smarthost s] pin: "
		    "\"sha256:AAECAwQFBgcICQoLDA0O"
		    "DxAREh*UFRYXGBkaGxwdHh8=\" is not valid base64 after "
		    "sha256: " PIN_ALLOWED },
		{ SH "pin = "
		     "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n",
		    "sendq.ini:3: [smarthost s] pin: "
		    "\"sha256:AAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAA==\" decodes to 31 bytes, a SHA-256 "
		    "has 32 " PIN_ALLOWED },
		{ SH "pin = "
		     "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
		    "sendq.ini:3: [smarthost s] pin: "
		    "\"sha256:AAAAAAAAAAAAAAAAAAAA"
		    "AAAAAAAAAAAAAAAAAAAAAAAA\" decodes to 33 bytes, a SHA-256 "
		    "has 32 " PIN_ALLOWED },
		{ SH "pin = " PIN0 "\npin = " PIN1 " " PIN0 "\n",
		    "sendq.ini:4: [smarthost s] pin: \"" PIN0
		    "\" is given twice" },
		/* pin against trust */
		{ SH "trust = pin\n",
		    "sendq.ini:3: [smarthost s] trust: \"pin\" needs at least "
		    "one pin = sha256:BASE64 in this section" },
		{ "[smarthost s]\ntrust = pin\nhost = s.example\n[smarthost "
		  "t]\nhost = t.example\npin = " PIN0 "\n",
		    "sendq.ini:2: [smarthost s] trust: \"pin\" needs at least "
		    "one pin = sha256:BASE64 in this section" },
		{ SH "pin = " PIN0 "\npin = " PIN1 "\ntrust = insecure\n",
		    "sendq.ini:3: [smarthost s] pin: never checked with trust "
		    "= insecure (remove pin, or set trust = pin to trust only "
		    "the pinned keys)" },
		{ SH "trust = pin\npin = " PIN0 "\nca_file = " TEST_CA "\n",
		    "sendq.ini:5: [smarthost s] ca_file: only used with trust "
		    "= ca_file, not with trust = pin (remove ca_file or set "
		    "trust = ca_file)" },
		/* server_name, tls_priority, client_cert/key */
		{ SH "server_name = 192.0.2.1\n",
		    "sendq.ini:3: [smarthost s] server_name: \"192.0.2.1\" is "
		    "not a valid host name (allowed: a host name such as "
		    "smtp.example.com)" },
		{ SH "server_name = smtp.example.com:465\n",
		    "sendq.ini:3: [smarthost s] server_name: "
		    "\"smtp.example.com:465\" is not a valid host name "
		    "(allowed: a host name such as smtp.example.com)" },
		{ SH "tls_priority =\n",
		    "sendq.ini:3: [smarthost s] tls_priority: empty value "
		    "(allowed: a GnuTLS priority string)" },
		{ SH "client_cert = " TEST_CLIENT_CERT "\n",
		    "sendq.ini:3: [smarthost s] client_cert: set without "
		    "client_key (mutual TLS needs both)" },
		{ SH "\nclient_key = " TEST_CLIENT_KEY "\n",
		    "sendq.ini:4: [smarthost s] client_key: set without "
		    "client_cert (mutual TLS needs both)" },
		{ SH "client_cert = client.pem\n",
		    "sendq.ini:3: [smarthost s] client_cert: \"client.pem\" is "
		    "not an absolute path (allowed: an absolute path of a "
		    "readable PEM file)" },
		{ SH "client_key = " TEST_CONFIG_DIR "/nokey.pem\n",
		    "sendq.ini:3: [smarthost s] client_key: \"" TEST_CONFIG_DIR
		    "/nokey.pem\" cannot be read: No such file or directory" },
		/* auth values */
		{ SH "auth = cram-md5\n",
		    "sendq.ini:3: [smarthost s] auth: \"cram-md5\" is not "
		    "valid (allowed: none, auto, plain, login, scram-sha-256, "
		    "xoauth2, oauthbearer)" },
		{ SH "user =\n",
		    "sendq.ini:3: [smarthost s] user: empty value (allowed: a "
		    "user name)" },
		{ SH "user = u\npassword_file = secret.txt\n",
		    "sendq.ini:4: [smarthost s] password_file: \"secret.txt\" "
		    "is not an absolute path (allowed: an absolute path)" },
		{ SH "user = u\ntoken_file = ~/token\n",
		    "sendq.ini:4: [smarthost s] token_file: \"~/token\" is not "
		    "an absolute path (allowed: an absolute path)" },
		{ SH "user = u\npassword_command = ; nothing\n",
		    "sendq.ini:4: [smarthost s] password_command: empty value "
		    "(allowed: a shell command)" },
		{ SH "user = u\ncredential = /etc/sendq/pass\n",
		    "sendq.ini:4: [smarthost s] credential: "
		    "\"/etc/sendq/pass\" is not a valid credential name "
		    "(allowed: a systemd credential name: letters, digits, "
		    "'_', '.', '-')" },
		{ SH "user = u\ncredential = ..\n",
		    "sendq.ini:4: [smarthost s] credential: \"..\" is not a "
		    "valid credential name (allowed: a systemd credential "
		    "name: letters, digits, '_', '.', '-')" },
		{ SH "user = u\ncredential = my pass\n",
		    "sendq.ini:4: [smarthost s] credential: \"my pass\" is not "
		    "a valid credential name (allowed: a systemd credential "
		    "name: letters, digits, '_', '.', '-')" },
		/* auth rules */
		{ SH "user = u\npassword_file = /p\n\npassword_command = x\n",
		    "sendq.ini:6: [smarthost s] password_command: only one "
		    "secret source may be set, and password_file is set at "
		    "line 4" },
		{ SH "token_command = x\nuser = u\ncredential = c\n",
		    "sendq.ini:5: [smarthost s] credential: only one secret "
		    "source may be set, and token_command is set at line 3" },
		{ SH "password_file = /p\n",
		    "sendq.ini:3: [smarthost s] password_file: set without "
		    "user (add user = the login name for SMTP AUTH)" },
		{ SH "auth = xoauth2\ntoken_file = /t\n",
		    "sendq.ini:4: [smarthost s] token_file: set without user "
		    "(add user = the login name for SMTP AUTH)" },
		{ SH "user = u\n\nauth = none\n",
		    "sendq.ini:5: [smarthost s] auth: \"none\" but user is set "
		    "at line 3 (remove user, or choose a mechanism)" },
		{ SH "auth = plain\n",
		    "sendq.ini:3: [smarthost s] auth: \"plain\" needs user and "
		    "a password source: password_file, password_command or "
		    "credential" },
		{ SH "auth = oauthbearer\n",
		    "sendq.ini:3: [smarthost s] auth: \"oauthbearer\" needs "
		    "user and a token source: token_file, token_command or "
		    "oauth_provider" },
		{ SH "user = u\n",
		    "sendq.ini:3: [smarthost s] user: set without a secret "
		    "source (add password_file, password_command or "
		    "credential)" },
		{ SH "user = u\nauth = login\n",
		    "sendq.ini:4: [smarthost s] auth: \"login\" needs a "
		    "password source: password_file, password_command or "
		    "credential" },
		{ SH "user = u\nauth = auto\n",
		    "sendq.ini:4: [smarthost s] auth: \"auto\" needs a "
		    "password source: password_file, password_command or "
		    "credential" },
		{ SH "auth = xoauth2\nuser = u\n",
		    "sendq.ini:3: [smarthost s] auth: \"xoauth2\" needs a "
		    "token source: token_file, token_command or "
		    "oauth_provider" },
		{ SH "user = u\ntoken_command = get-token\n",
		    "sendq.ini:4: [smarthost s] token_command: auth = auto "
		    "(the default with user) needs a password source "
		    "(password_file, password_command or credential), not a "
		    "token; a token needs auth = xoauth2 or oauthbearer" },
		{ SH "user = u\nauth = auto\ntoken_file = /t\n",
		    "sendq.ini:5: [smarthost s] token_file: auth = auto needs "
		    "a password source (password_file, password_command or "
		    "credential), not a token; a token needs auth = xoauth2 or "
		    "oauthbearer" },
		{ SH "user = u\nauth = scram-sha-256\ntoken_file = /t\n",
		    "sendq.ini:5: [smarthost s] token_file: auth = "
		    "scram-sha-256 needs a password source (password_file, "
		    "password_command or credential), not a token; a token "
		    "needs auth = xoauth2 or oauthbearer" },
		{ SH "user = u\nauth = xoauth2\npassword_file = /p\n",
		    "sendq.ini:5: [smarthost s] password_file: auth = xoauth2 "
		    "needs a token source (token_file, token_command or "
		    "oauth_provider), not a password" },
		{ SH "user = u\nuser = v\n",
		    "sendq.ini:4: [smarthost s] user: duplicate key (first at "
		    "line 3)" },
		{ SH "auth = plain\nauth = login\n",
		    "sendq.ini:4: [smarthost s] auth: duplicate key (first at "
		    "line 3)" },
		/* timeouts */
		{ SH "timeout_connect = 0\n",
		    "sendq.ini:3: [smarthost s] timeout_connect: \"0\" is out "
		    "of range " HOUR_RANGE },
		{ SH "timeout_tls = 61m\n",
		    "sendq.ini:3: [smarthost s] timeout_tls: \"61m\" is out of "
		    "range " HOUR_RANGE },
		{ SH "timeout_greeting = 2d\n",
		    "sendq.ini:3: [smarthost s] timeout_greeting: \"2d\" is "
		    "out of range " HOUR_RANGE },
		{ SH "timeout_command = 5 min\n",
		    "sendq.ini:3: [smarthost s] timeout_command: \"5 min\" is "
		    "not valid " HOUR_RANGE },
		{ SH "timeout_data_block = -1\n",
		    "sendq.ini:3: [smarthost s] timeout_data_block: \"-1\" is "
		    "not valid " HOUR_RANGE },
		{ SH "timeout_data_end = 3601\n",
		    "sendq.ini:3: [smarthost s] timeout_data_end: \"3601\" is "
		    "out of range " HOUR_RANGE },
		{ SH "session_max = 25h\n",
		    "sendq.ini:3: [smarthost s] session_max: \"25h\" is out of "
		    "range (allowed: 1s to 1d, a number with optional unit s, "
		    "m, h or d)" },
		{ SH "session_max = 0s\n",
		    "sendq.ini:3: [smarthost s] session_max: \"0s\" is out of "
		    "range (allowed: 1s to 1d, a number with optional unit s, "
		    "m, h or d)" },
	};

	return cr_make_param_array(struct test_bad, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_bad *b, config,
    issue3_rules_name_file_line_and_reason)
{
	int rc;

	rc = test_load(b->text);
	cr_assert_lt(rc, 0, "accepted: %s", b->text);
	cr_assert_null(test_cfg);
	cr_assert_eq(strncmp(test_err.msg, b->msg, sizeof(test_err.msg) - 1), 0,
	    "got %s, want %s", test_err.msg, b->msg);
	cr_assert_eq(test_err.code, rc);
}

/* --- queue engine keys (issue 4) ---------------------------------------- */

#define DURATION_UNITS "a number with optional unit s, m, h or d"
#define GLOB_ALLOWED \
	"(allowed: space-separated globs of letters, " \
	"digits, '*', '?', at most one '@' and . ! # $ % & ' + - / = ^ _ ` " \
	"{ | } ~, such as *@example.com or *.example.org)"
#define RATE_ALLOWED \
	"(allowed: N/s, N/m or N/h with N from 1 to " \
	"1000000, such as 100/h)"
#define ADDR_ALLOWED \
	"(allowed: an email address such as " \
	"postmaster@example.com)"
#define BAD_ADDR(a) \
	{ \
		"[queue]\nadmin_address = " a "\n", \
		    "sendq.ini:2: [queue] admin_address: \"" a \
		    "\" is not a valid " \
		    "email address " ADDR_ALLOWED \
	}
#define BAD_GLOB(key, g) \
	{ \
		SH key " = *@ok.example " g "\n", \
		    "sendq.ini:3: [smarthost s] " key ": \"" g \
		    "\" is not a valid " \
		    "glob " GLOB_ALLOWED \
	}
#define BAD_RATE(r, why) \
	{ \
		SH "rate = " r "\n", \
		    "sendq.ini:3: [smarthost s] rate: \"" r "\" " why \
		    " " RATE_ALLOWED \
	}

ParameterizedTestParameters(config, issue4_rules_name_file_line_and_reason)
{
	static struct test_bad params[] = {
		/* [sendq] control_socket */
		{ "[sendq]\ncontrol_socket = run/sendq.sock\n",
		    "sendq.ini:2: [sendq] control_socket: \"run/sendq.sock\" "
		    "is not an absolute path (allowed: an absolute path of at "
		    "most 107 bytes)" },
		/* retry_max against retry_min: at the later line */
		{ "[queue]\nretry_min = 5m\nretry_max = 2m\n",
		    "sendq.ini:3: [queue] retry_max: 2m is less than retry_min "
		    "= 5m (line 2)" },
		{ "[queue]\nretry_max = 2m\n; c\nretry_min = 5m\n",
		    "sendq.ini:4: [queue] retry_min: 5m is more than retry_max "
		    "= 2m (line 2)" },
		{ "[queue]\nretry_max = 30s\n",
		    "sendq.ini:2: [queue] retry_max: 30s is less than "
		    "retry_min = 1m (the default)" },
		{ "[queue]\nretry_min = 2h\n",
		    "sendq.ini:2: [queue] retry_min: 2h is more than retry_max "
		    "= 1h (the default)" },
		{ "[queue]\nretry_max = 8d\n",
		    "sendq.ini:2: [queue] retry_max: \"8d\" is out of range "
		    "(allowed: 1s to 7d, " DURATION_UNITS ")" },
		{ "[queue]\nretry_max = 0\n",
		    "sendq.ini:2: [queue] retry_max: \"0\" is out of range "
		    "(allowed: 1s to 7d, " DURATION_UNITS ")" },
		/* max_age */
		{ "[queue]\nmax_age = 59s\n",
		    "sendq.ini:2: [queue] max_age: \"59s\" is out of range "
		    "(allowed: 1m to 365d, " DURATION_UNITS ")" },
		{ "[queue]\nmax_age = 366d\n",
		    "sendq.ini:2: [queue] max_age: \"366d\" is out of range "
		    "(allowed: 1m to 365d, " DURATION_UNITS ")" },
		{ "[queue]\nmax_age = forever\n",
		    "sendq.ini:2: [queue] max_age: \"forever\" is not valid "
		    "(allowed: 1m to 365d, " DURATION_UNITS ")" },
		/* bounce and admin_address */
		{ "[queue]\nbounce = postmaster\n",
		    "sendq.ini:2: [queue] bounce: \"postmaster\" is not valid "
		    "(allowed: sender, admin, none)" },
		{ "[queue]\n; c\nbounce = admin\n",
		    "sendq.ini:3: [queue] bounce: \"admin\" needs "
		    "admin_address (add admin_address = an email address such "
		    "as postmaster@example.com)" },
		{ "[queue]\nbounce = Admin\n[smarthost s]\nhost = s\n",
		    "sendq.ini:2: [queue] bounce: \"admin\" needs "
		    "admin_address (add admin_address = an email address such "
		    "as postmaster@example.com)" },
		{ "[queue]\nadmin_address =\n",
		    "sendq.ini:2: [queue] admin_address: empty "
		    "value " ADDR_ALLOWED },
		BAD_ADDR("postmaster"),
		BAD_ADDR("<postmaster@example.com>"),
		BAD_ADDR("post master@example.com"),
		BAD_ADDR("Post Master <pm@example.com>"),
		BAD_ADDR("a..b@example.com"),
		BAD_ADDR(".a@example.com"),
		BAD_ADDR("a.@example.com"),
		BAD_ADDR("@example.com"),
		BAD_ADDR("pm@"),
		BAD_ADDR("pm@a@example.com"),
		BAD_ADDR("pm@exa_mple.com"),
		BAD_ADDR("pm@192.0.2.1"),
		/* A quoted local part is valid (RFC 5321 4.1.2), an
		 * unterminated one is not. */
		BAD_ADDR("\"pm@example.com"),
		BAD_ADDR("pm,x@example.com"),
		BAD_ADDR("p\\m@example.com"),
		/* delay_warning against max_age */
		{ "[queue]\ndelay_warning = 5d\n",
		    "sendq.ini:2: [queue] delay_warning: 5d is not less than "
		    "max_age = 5d (the default)" },
		{ "[queue]\nmax_age = 1h\ndelay_warning = 2h\n",
		    "sendq.ini:3: [queue] delay_warning: 2h is not less than "
		    "max_age = 1h (line 2)" },
		{ "[queue]\ndelay_warning = 1h\nmax_age = 1h\n",
		    "sendq.ini:3: [queue] max_age: 1h is not more than "
		    "delay_warning = 1h (line 2)" },
		{ "[queue]\ndelay_warning = never\n",
		    "sendq.ini:2: [queue] delay_warning: \"never\" is not "
		    "valid (allowed: off or 0, or 1s to 365d, " DURATION_UNITS
		    ")" },
		{ "[queue]\ndelay_warning = 366d\n",
		    "sendq.ini:2: [queue] delay_warning: \"366d\" is out of "
		    "range (allowed: off or 0, or 1s to 365d, " DURATION_UNITS
		    ")" },
		/* pool sizes */
		{ SH "max_connections = 0\n",
		    "sendq.ini:3: [smarthost s] max_connections: \"0\" is out "
		    "of range (allowed: 1 to 100)" },
		{ SH "max_connections = 101\n",
		    "sendq.ini:3: [smarthost s] max_connections: \"101\" is "
		    "out of range (allowed: 1 to 100)" },
		{ SH "max_connections = two\n",
		    "sendq.ini:3: [smarthost s] max_connections: \"two\" is "
		    "not valid (allowed: 1 to 100)" },
		{ SH "messages_per_connection = 0\n",
		    "sendq.ini:3: [smarthost s] messages_per_connection: \"0\" "
		    "is out of range (allowed: 1 to 100000)" },
		{ SH "messages_per_connection = 100001\n",
		    "sendq.ini:3: [smarthost s] messages_per_connection: "
		    "\"100001\" is out of range (allowed: 1 to 100000)" },
		{ SH "idle_timeout = 0\n",
		    "sendq.ini:3: [smarthost s] idle_timeout: \"0\" is out of "
		    "range (allowed: 1s to 1h, " DURATION_UNITS ")" },
		{ SH "idle_timeout = 61m\n",
		    "sendq.ini:3: [smarthost s] idle_timeout: \"61m\" is out "
		    "of range (allowed: 1s to 1h, " DURATION_UNITS ")" },
		{ SH "max_connections = 2\nmax_connections = 3\n",
		    "sendq.ini:4: [smarthost s] max_connections: duplicate key "
		    "(first at line 3)" },
		/* match_sender / match_recipient */
		{ SH "match_sender =\n",
		    "sendq.ini:3: [smarthost s] match_sender: empty "
		    "value " GLOB_ALLOWED },
		{ SH "match_recipient = ; nothing\n",
		    "sendq.ini:3: [smarthost s] match_recipient: empty "
		    "value " GLOB_ALLOWED },
		BAD_GLOB("match_sender", "a<b@x"),
		BAD_GLOB("match_sender", "<>"),
		BAD_GLOB("match_sender", "\"q\"@x"),
		BAD_GLOB("match_recipient", "a@b@c"),
		BAD_GLOB("match_recipient", "a,b@c"),
		BAD_GLOB("match_recipient", "[ab]@c"),
		BAD_GLOB("match_recipient", "a\\b"),
		{ SH "match_recipient = \xc3\xa9@x\n", /* shown printable */
		    "sendq.ini:3: [smarthost s] match_recipient: \"??@x\" is "
		    "not a valid glob " GLOB_ALLOWED },
		/* fallback */
		{ SH "fallback = a b\n",
		    "sendq.ini:3: [smarthost s] fallback: \"a b\" is not a "
		    "valid smarthost name (allowed: the NAME of another "
		    "[smarthost NAME]: 1 to 64 letters, digits, '.', '_', "
		    "'-')" },
		{ SH "fallback = s\n[smarthost t]\nhost = t\n",
		    "sendq.ini:3: [smarthost s] fallback: \"s\" is this "
		    "smarthost itself (allowed: the NAME of another [smarthost "
		    "NAME])" },
		{ SH "fallback = zz\n[smarthost t]\nhost = t\n",
		    "sendq.ini:3: [smarthost s] fallback: \"zz\" is not a "
		    "smarthost of this file (defined: s, t)" },
		{ SH "fallback = T\n[smarthost t]\nhost = t\n",
		    "sendq.ini:3: [smarthost s] fallback: \"T\" is not a "
		    "smarthost of this file (defined: s, t)" },
		{ "[smarthost a]\nhost = a\nfallback = b\n[smarthost b]\nhost "
		  "= b\nfallback = nope\n",
		    "sendq.ini:6: [smarthost b] fallback: \"nope\" is not a "
		    "smarthost of this file (defined: a, b)" },
		{ "[smarthost a]\nhost = a\nfallback = b\n[smarthost b]\nhost "
		  "= b\nfallback = a\n",
		    "sendq.ini:3: [smarthost a] fallback: fallback cycle a -> "
		    "b -> a (a chain of fallbacks must end at a smarthost "
		    "without fallback)" },
		{ "[smarthost x]\nhost = x\nfallback = b\n[smarthost b]\nhost "
		  "= b\n\nfallback = c\n[smarthost c]\nhost = c\nfallback = "
		  "d\n[smarthost d]\nhost = d\nfallback = b\n",
		    "sendq.ini:7: [smarthost b] fallback: fallback cycle b -> "
		    "c -> d -> b (a chain of fallbacks must end at a smarthost "
		    "without fallback)" },
		/* rate */
		BAD_RATE("100", "is not valid"),
		BAD_RATE("100/d", "is not valid"),
		BAD_RATE("100/H", "is not valid"),
		BAD_RATE("100/hour", "is not valid"),
		BAD_RATE("/h", "is not valid"),
		BAD_RATE("-1/h", "is not valid"),
		BAD_RATE("1e3/s", "is not valid"),
		BAD_RATE("10 /m", "is not valid"),
		BAD_RATE("0/h", "is out of range"),
		BAD_RATE("1000001/s", "is out of range"),
		BAD_RATE("99999999999999999999/s", "is out of range"),
	};

	return cr_make_param_array(struct test_bad, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_bad *b, config,
    issue4_rules_name_file_line_and_reason)
{
	int rc;

	rc = test_load(b->text);
	cr_assert_lt(rc, 0, "accepted: %s", b->text);
	cr_assert_null(test_cfg);
	cr_assert_eq(strncmp(test_err.msg, b->msg, sizeof(test_err.msg) - 1), 0,
	    "got %s, want %s", test_err.msg, b->msg);
	cr_assert_eq(test_err.code, rc);
}

Test(config, control_socket_must_fit_a_unix_socket_address)
{
	char text[512], path[200];

	memset(path, 'a', sizeof(path));
	path[0] = '/';
	path[107] = '\0'; /* 107 bytes + NUL fill sun_path */
	snprintf(text, sizeof(text), "[sendq]\ncontrol_socket = %s\n" SH, path);
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->control_socket, path);
	path[107] = 'a';
	path[108] = '\0';
	snprintf(text, sizeof(text), "[sendq]\ncontrol_socket = %s\n" SH, path);
	cr_assert_lt(test_load(text), 0);
	cr_assert_not_null(strstr(test_err.msg,
	    "sendq.ini:2: [sendq] control_socket: \"/aaa"));
	cr_assert_not_null(strstr(test_err.msg,
	    "aaa\" is not short enough "
	    "for a unix socket (allowed: an absolute path of at most 107 "
	    "bytes)"));
}

Test(config, retry_bounds_may_be_equal)
{
	test_load_ok("[queue]\nretry_min = 10m\nretry_max = 600\n" SH);
	cr_assert_eq(test_cfg->retry_min, 600);
	cr_assert_eq(test_cfg->retry_max, 600);
}

Test(config, queue_checks_also_run_when_queue_is_not_last)
{
	cr_assert_lt(test_load("[queue]\nretry_max = 1s\n" SH), 0);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:2: [queue] retry_max: 1s is less than retry_min = 1m "
	    "(the default)");
}

struct test_off {
	char     text[16];
	unsigned secs;
};

ParameterizedTestParameters(config, delay_warning_values)
{
	static struct test_off params[] = {
		{ "off", 0 },
		{ "OFF", 0 },
		{ "0", 0 },
		{ "0s", 0 },
		{ "0d", 0 },
		{ "1", 1 },
		{ "4h", 14400 },
		{ "1d", 86400 },
		{ "4d", 4 * 86400 },
	};

	return cr_make_param_array(struct test_off, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_off *t, config, delay_warning_values)
{
	char text[128];

	snprintf(text, sizeof(text), "[queue]\ndelay_warning = %s\n" SH,
	    t->text);
	test_load_ok(text);
	cr_assert_eq(test_cfg->delay_warning, t->secs, "%s", t->text);
}

Test(config, delay_warning_only_has_to_be_below_a_longer_max_age)
{
	test_load_ok("[queue]\nmax_age = 30d\ndelay_warning = 10d\n" SH);
	cr_assert_eq(test_cfg->max_age, 30 * 86400);
	cr_assert_eq(test_cfg->delay_warning, 10 * 86400);
	/* off is never compared with max_age */
	test_load_ok("[queue]\nmax_age = 1m\ndelay_warning = off\n" SH);
	cr_assert_eq(test_cfg->max_age, 60);
}

/* stop_grace: 0 (drop every connection at once) to 1m, seconds or a
 * unit; the upper bound is in the bad-input table. */
Test(config, stop_grace_values)
{
	test_load_ok("[queue]\nstop_grace = 0\n" SH);
	cr_assert_eq(test_cfg->stop_grace, 0);
	test_load_ok("[queue]\nstop_grace = 1m\n" SH);
	cr_assert_eq(test_cfg->stop_grace, 60);
	test_load_ok("[queue]\nstop_grace = 15\n" SH);
	cr_assert_eq(test_cfg->stop_grace, 15);
}

Test(config, bounce_values)
{
	test_load_ok("[queue]\nbounce = none\n" SH);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_NONE);
	test_load_ok("[queue]\nbounce = sender\n" SH);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_SENDER);
	/* admin_address may come before bounce */
	test_load_ok(
	    "[queue]\nadmin_address = root@localhost\nbounce = admin\n" SH);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_ADMIN);
	cr_assert_str_eq(test_cfg->admin_address, "root@localhost");
	/* and is kept (unused) with another bounce value */
	test_load_ok("[queue]\nadmin_address = root@localhost\n" SH);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_SENDER);
	cr_assert_str_eq(test_cfg->admin_address, "root@localhost");
}

struct test_addr {
	char addr[64];
};

ParameterizedTestParameters(config, admin_address_accepts)
{
	static struct test_addr params[] = {
		{ "postmaster@example.com" },
		{ "first.last+tag@example.com" },
		{ "o'brien@mail.example.ie" },
		{ "x@localhost" },
		{ "!#$%&'*+-/=?^_`{|}~@example.org" },
		{ "A@B.EXAMPLE" },
	};

	return cr_make_param_array(struct test_addr, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_addr *t, config, admin_address_accepts)
{
	char text[160];

	snprintf(text, sizeof(text),
	    "[queue]\nbounce = admin\nadmin_address = %s\n" SH, t->addr);
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->admin_address, t->addr);
}

Test(config, pool_keys_accept_their_bounds)
{
	test_load_ok(SH "max_connections = 1\nmessages_per_connection = "
			"1\nidle_timeout = 1\n");
	cr_assert_eq(test_cfg->smarthosts[0].max_connections, 1);
	cr_assert_eq(test_cfg->smarthosts[0].messages_per_connection, 1);
	cr_assert_eq(test_cfg->smarthosts[0].idle_timeout, 1);
	test_load_ok(SH "max_connections = 100\nmessages_per_connection = "
			"100000\nidle_timeout = 1h\n");
	cr_assert_eq(test_cfg->smarthosts[0].max_connections, 100);
	cr_assert_eq(test_cfg->smarthosts[0].messages_per_connection, 100000);
	cr_assert_eq(test_cfg->smarthosts[0].idle_timeout, 3600);
}

Test(config, match_lists_split_on_spaces_and_repeat)
{
	const struct config_smarthost *sh;

	test_load_ok(
	    SH "match_recipient =   a@x.example   *.y.example \nmatch_sender = "
	       "?b@*\nmatch_recipient = z.example\n[smarthost t]\nhost = "
	       "t\nmatch_sender = *@t.example\n");
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->match_recipient[0], "a@x.example");
	cr_assert_str_eq(sh->match_recipient[1], "*.y.example");
	cr_assert_str_eq(sh->match_recipient[2], "z.example");
	cr_assert_null(sh->match_recipient[3]);
	cr_assert_str_eq(sh->match_sender[0], "?b@*");
	cr_assert_null(sh->match_sender[1]);
	sh = &test_cfg->smarthosts[1];
	cr_assert_str_eq(sh->match_sender[0], "*@t.example");
	cr_assert_null(sh->match_sender[1]);
	cr_assert_null(sh->match_recipient);
}

Test(config, match_list_has_a_maximum)
{
	char  *text;
	size_t len, i;

	/* 256 globs over 32 lines is the most a key may hold */
	text = xmalloc(16384);
	len = (size_t)sprintf(text, SH);
	for (i = 0; i < 32; i++)
		len += (size_t)sprintf(text + len,
		    "match_sender = a b c d e f g h\n");
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->smarthosts[0].match_sender[255], "h");
	cr_assert_null(test_cfg->smarthosts[0].match_sender[256]);
	sprintf(text + len, "match_sender = one.more\n");
	cr_assert_lt(test_load(text), 0);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:35: [smarthost s] match_sender: too many globs "
	    "(allowed: at most 256)");
	free(text);
}

Test(config, fallback_may_name_a_later_or_earlier_smarthost)
{
	test_load_ok("[smarthost a]\nhost = a\nfallback = c\n[smarthost "
		     "b]\nhost = b\nfallback = a\n[smarthost c]\nhost = "
		     "c\n[smarthost d]\nhost = d\n");
	cr_assert_eq(test_cfg->n_smarthosts, 4);
	cr_assert_str_eq(test_cfg->smarthosts[0].fallback, "c");
	cr_assert_eq(test_cfg->smarthosts[0].fallback_index, 2);
	cr_assert_eq(test_cfg->smarthosts[1].fallback_index, 0);
	cr_assert_eq(test_cfg->smarthosts[2].fallback_index, -1);
	cr_assert_eq(test_cfg->smarthosts[3].fallback_index, -1);
	cr_assert_null(test_cfg->smarthosts[3].fallback);
}

Test(config, fallback_error_comes_after_errors_inside_sections)
{
	/* fallback names resolve at the end of the file */
	cr_assert_lt(test_load(SH "fallback = zz\n[smarthost t]\nport = 1\n"),
	    0);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:4: [smarthost t] host: missing (required: a host name "
	    "or an IP address)");
}

struct test_rate {
	char     text[24];
	unsigned count, seconds;
};

ParameterizedTestParameters(config, rate_values)
{
	static struct test_rate params[] = {
		{ "1/s", 1, 1 },
		{ "60/m", 60, 60 },
		{ "100/h", 100, 3600 },
		{ "1000000/s", 1000000, 1 },
		{ "007/m", 7, 60 },
	};

	return cr_make_param_array(struct test_rate, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_rate *t, config, rate_values)
{
	char text[128];

	snprintf(text, sizeof(text), SH "rate = %s\n", t->text);
	test_load_ok(text);
	cr_assert_eq(test_cfg->smarthosts[0].rate_count, t->count);
	cr_assert_eq(test_cfg->smarthosts[0].rate_seconds, t->seconds);
}

Test(config, rate_is_per_smarthost)
{
	test_load_ok(SH "rate = 5/s\n[smarthost t]\nhost = t\n");
	cr_assert_eq(test_cfg->smarthosts[0].rate_count, 5);
	cr_assert_eq(test_cfg->smarthosts[1].rate_count, 0);
	cr_assert_eq(test_cfg->smarthosts[1].rate_seconds, 0);
}

Test(config, line_too_long_is_an_error_not_split)
{
	char text[512], value[300];

	memset(value, 'a', sizeof(value));
	value[250] = '\0';
	/* inih would parse the tail of the long line as a line of its own;
	 * here the tail looks like a key and must not be seen. */
	snprintf(text, sizeof(text),
	    "; x\n[sendq]\nhostname = %stls = none\n" SH, value);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:3: line too long (allowed: at most 197 characters)");
}

Test(config, long_comment_line_is_also_too_long)
{
	char text[512], value[300];

	memset(value, '-', sizeof(value));
	value[CONFIG_LINE_MAX] = '\0';
	snprintf(text, sizeof(text), SH ";%s\n", value);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:3: line too long (allowed: at most 197 characters)");
}

Test(config, message_shows_unprintable_bytes_as_question_marks)
{
	cr_assert_eq(
	    test_load("[smarthost s]\nhost = s.example\ntls = \xff\x1b[2J\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:3: [smarthost s] tls: \"??[2J\" contains a control "
	    "character (allowed: implicit, starttls, none)");
}

Test(config, line_numbers_count_crlf_comments_and_blank_lines)
{
	cr_assert_eq(
	    test_load("; one\r\n\r\n# three\r\n[smarthost s]\r\n   \r\n\thost "
		      "= s.example ; six\r\n; seven\r\nport = x\r\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg,
	    "sendq.ini:8: [smarthost s] port: \"x\" is not valid (allowed: 1 "
	    "to 65535)");
}

Test(config, failure_leaves_out_untouched)
{
	struct config *cfg = (struct config *)&test_err;
	struct sq_err  err;

	cr_assert_lt(config_load_string("x.ini", "[bad]\n", &cfg, &err), 0);
	cr_assert_eq(cfg, (struct config *)&test_err);
}

Test(config, null_name_is_shown_as_string)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_lt(config_load_string(NULL, "[bad]\n", &cfg, &err), 0);
	cr_assert(strncmp(err.msg, "(string):1: ", 12) == 0, "%s", err.msg);
}

/* --- files -------------------------------------------------------------- */

Test(config, missing_file_says_cannot_open)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR "/nope.ini", &cfg, &err),
	    -ENOENT);
	cr_assert_null(cfg);
	cr_assert_str_eq(err.msg,
	    TEST_CONFIG_DIR
	    "/nope.ini: cannot open: No such file or directory");
}

Test(config, directory_says_cannot_read)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR, &cfg, &err), -EISDIR);
	cr_assert_null(cfg);
	cr_assert_str_eq(err.msg,
	    TEST_CONFIG_DIR ": cannot read: Is a directory");
}

Test(config, file_error_names_the_path_and_line)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_eq(
	    config_load_file(TEST_CONFIG_DIR "/bad_line9.ini", &cfg, &err),
	    SQ_ECONFIG);
	cr_assert_str_eq(err.msg,
	    TEST_CONFIG_DIR
	    "/bad_line9.ini:9: [smarthost primary] tls: \"startls\" is not "
	    "valid (allowed: implicit, starttls, none)");
}

Test(config, file_with_crlf_and_comments_parses)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR "/crlf.ini", &cfg, &err),
	    0, "%s", err.msg);
	cr_assert_str_eq(cfg->path, TEST_CONFIG_DIR "/crlf.ini");
	cr_assert_eq(cfg->log_level, LOG_LEVEL_WARN);
	cr_assert_str_eq(cfg->smarthosts[0].host, "mail.example.net");
	cr_assert_eq(cfg->smarthosts[0].port, 465);
	cr_assert_eq(cfg->smarthosts[0].line, 7);
	config_free(cfg);
}

Test(config, nul_byte_in_file_is_an_error)
{
	char              path[] = "/tmp/test_config_XXXXXX";
	static const char text[] = "[smarthost s]\nhost = s.ex\0ample\n";
	struct config    *cfg = NULL;
	struct sq_err     err;
	char              want[128];
	int               fd;

	cr_assert_geq(fd = mkstemp(path), 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1),
	    (ssize_t)sizeof(text) - 1);
	close(fd);
	cr_assert_eq(config_load_file(path, &cfg, &err), SQ_ECONFIG);
	unlink(path);
	snprintf(want, sizeof(want), "%s:2: contains a NUL byte", path);
	cr_assert_str_eq(err.msg, want);
}

/* --- the shipped example ------------------------------------------------ */

Test(config, shipped_example_parses)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_eq(config_load_file(TEST_SHIPPED_CONF, &cfg, &err), 0, "%s",
	    err.msg);
	cr_assert_str_eq(cfg->spool_dir, CONFIG_DEFAULT_SPOOL);
	cr_assert_eq(cfg->n_smarthosts, 1);
	cr_assert_str_eq(cfg->smarthosts[0].name, "primary");
	cr_assert_eq(cfg->smarthosts[0].tls, CONFIG_TLS_STARTTLS);
	config_free(cfg);
}

static char *
test_read_file(const char *path)
{
	FILE  *f;
	char  *text;
	size_t n;

	cr_assert_not_null(f = fopen(path, "r"), "%s", path);
	text = xmalloc(65536);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/*
 * Every commented-out key and example section (";key = ..." and
 * ";[smarthost ...]", no blank after ';') is valid once uncommented, and
 * every key sendq knows is documented that way.  ca_file, client_cert and
 * client_key examples name files that do not exist here, so they point at
 * test files instead.
 */
Test(config, shipped_example_documents_every_key_validly)
{
	static const char *const keys[] = { "spool_dir", "hostname",
		"log_level", "retry_min", "host", "port", "tls", "trust",
		"ca_file", "pin", "server_name", "tls_priority", "client_cert",
		"client_key", "auth", "user", "password_file",
		"password_command", "credential", "token_file", "token_command",
		"timeout_connect", "timeout_tls", "timeout_greeting",
		"timeout_command", "timeout_data_block", "timeout_data_end",
		"session_max", "control_socket", "retry_max", "max_age",
		"bounce", "admin_address", "delay_warning", "max_connections",
		"messages_per_connection", "idle_timeout", "match_sender",
		"match_recipient", "fallback", "rate", "admin_group",
		"submit_users", "submit_groups", "state_dir", "oauth_provider",
		"oauth_tenant", "oauth_token_endpoint", "oauth_device_endpoint",
		"oauth_client_id", "oauth_client_secret_file",
		"oauth_client_secret_credential", "oauth_scope",
		"oauth_ca_file" };
	static const char *const files[][2] = {
		{ "ca_file = ", TEST_CA },
		{ "oauth_ca_file = ", TEST_CA },
		{ "client_cert = ", TEST_CLIENT_CERT },
		{ "client_key = ", TEST_CLIENT_KEY },
	};
	const struct config_smarthost *sh;
	char                          *text, *out, *line, *next, needle[64];
	size_t                         i, j, len = 0;

	text = test_read_file(TEST_SHIPPED_CONF);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(needle, sizeof(needle), "\n;%s = ", keys[i]);
		cr_assert_not_null(strstr(text, needle), "%s", keys[i]);
	}
	out = xmalloc(strlen(text) * 2 + 1024);
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (line[0] == ';' &&
		    (line[1] == '[' || (line[1] >= 'a' && line[1] <= 'z')))
			line++;
		for (j = 0; j < sizeof(files) / sizeof(files[0]); j++)
			if (strncmp(line, files[j][0], strlen(files[j][0])) ==
			    0)
				break;
		if (j < sizeof(files) / sizeof(files[0]))
			len += (size_t)sprintf(out + len, "%s%s\n", files[j][0],
			    files[j][1]);
		else {
			memcpy(out + len, line, (size_t)(next - line));
			len += (size_t)(next - line);
		}
	}
	out[len] = '\0';
	free(text);
	test_load_ok(out);
	free(out);
	cr_assert_eq(test_cfg->n_smarthosts, 13);
	cr_assert_str_eq(test_cfg->control_socket, "/run/sendq/control.sock");
	cr_assert_eq(test_cfg->retry_min, 60);
	cr_assert_eq(test_cfg->retry_max, 3600);
	cr_assert_eq(test_cfg->max_age, 5 * 86400);
	cr_assert_eq(test_cfg->bounce, CONFIG_BOUNCE_SENDER);
	cr_assert_str_eq(test_cfg->admin_address, "postmaster@example.com");
	cr_assert_eq(test_cfg->delay_warning, 0);
	sh = &test_cfg->smarthosts[0]; /* primary: the defaults */
	cr_assert_str_eq(sh->server_name, "smtp.example.com");
	cr_assert_not_null(sh->tls_priority);
	cr_assert_eq(sh->auth, SASL_MECH_NONE);
	cr_assert_eq(sh->timeout_data_end, 600);
	cr_assert_eq(sh->max_connections, 2);
	cr_assert_eq(sh->messages_per_connection, 500);
	cr_assert_eq(sh->idle_timeout, 5);
	cr_assert_null(sh->match_sender);
	cr_assert_null(sh->match_recipient);
	cr_assert_eq(sh->fallback_index, -1);
	sh = &test_cfg->smarthosts[1];
	cr_assert_str_eq(sh->name, "gmail");
	cr_assert_str_eq(sh->host, "smtp.gmail.com");
	cr_assert_eq(sh->port, 465);
	cr_assert_eq(sh->tls, CONFIG_TLS_IMPLICIT);
	cr_assert_eq(sh->auth, SASL_MECH_PLAIN);
	cr_assert_not_null(sh->password_file);
	cr_assert_eq(sh->rate_count, 100);
	cr_assert_eq(sh->rate_seconds, 3600);
	sh = &test_cfg->smarthosts[2];
	cr_assert_str_eq(sh->name, "gmail-oauth");
	cr_assert_eq(sh->auth, SASL_MECH_XOAUTH2);
	cr_assert_not_null(sh->token_command);
	sh = &test_cfg->smarthosts[3];
	cr_assert_str_eq(sh->host, "smtp.office365.com");
	cr_assert_eq(sh->port, 587);
	cr_assert_eq(sh->tls, CONFIG_TLS_STARTTLS);
	cr_assert_eq(sh->auth, SASL_MECH_XOAUTH2);
	cr_assert_not_null(sh->token_file);
	sh = &test_cfg->smarthosts[4];
	cr_assert_str_eq(sh->host, "email-smtp.eu-west-1.amazonaws.com");
	cr_assert_eq(sh->port, 465);
	cr_assert_eq(sh->auth, SASL_MECH_PLAIN);
	cr_assert_not_null(sh->password_command);
	sh = &test_cfg->smarthosts[5];
	cr_assert_str_eq(sh->name, "corp");
	cr_assert_eq(sh->tls, CONFIG_TLS_STARTTLS);
	cr_assert_eq(sh->trust, CONFIG_TRUST_CA_FILE);
	cr_assert_eq(sh->n_pins, 1);
	cr_assert_str_eq(sh->client_cert, TEST_CLIENT_CERT);
	cr_assert_str_eq(sh->match_recipient[0], "corp.example");
	cr_assert_str_eq(sh->match_recipient[1], "*.corp.example");
	cr_assert_null(sh->match_recipient[2]);
	sh = &test_cfg->smarthosts[6];
	cr_assert_eq(sh->trust, CONFIG_TRUST_PIN);
	cr_assert_eq(sh->n_pins, 2);
	sh = &test_cfg->smarthosts[7];
	cr_assert_str_eq(sh->credential, "relay.pass");
	cr_assert_eq(sh->auth, SASL_MECH_AUTO);
	cr_assert_eq(test_cfg->smarthosts[8].tls, CONFIG_TLS_NONE);
	sh = &test_cfg->smarthosts[9];
	cr_assert_str_eq(sh->name, "alerts");
	cr_assert_str_eq(sh->match_sender[0], "alerts@*");
	cr_assert_str_eq(sh->match_sender[2], "*@monitoring.example.com");
	cr_assert_null(sh->match_sender[3]);
	cr_assert_str_eq(sh->fallback, "backup");
	cr_assert_eq(sh->fallback_index, 10);
	cr_assert_eq(sh->max_connections, 1);
	cr_assert_str_eq(test_cfg->smarthosts[10].name, "backup");
	cr_assert_eq(test_cfg->smarthosts[10].fallback_index, -1);
}

/* --- names -------------------------------------------------------------- */

Test(config, tls_and_trust_names_round_trip)
{
	cr_assert_str_eq(config_tls_name(CONFIG_TLS_IMPLICIT), "implicit");
	cr_assert_str_eq(config_tls_name(CONFIG_TLS_STARTTLS), "starttls");
	cr_assert_str_eq(config_tls_name(CONFIG_TLS_NONE), "none");
	cr_assert_str_eq(config_tls_name((enum config_tls)42), "unknown");
	cr_assert_str_eq(config_trust_name(CONFIG_TRUST_SYSTEM), "system");
	cr_assert_str_eq(config_trust_name(CONFIG_TRUST_CA_FILE), "ca_file");
	cr_assert_str_eq(config_trust_name(CONFIG_TRUST_INSECURE), "insecure");
	cr_assert_str_eq(config_trust_name(CONFIG_TRUST_PIN), "pin");
	cr_assert_str_eq(config_trust_name((enum config_trust) - 1), "unknown");
	cr_assert_str_eq(config_auth_name(SASL_MECH_NONE), "none");
	cr_assert_str_eq(config_auth_name(SASL_MECH_SCRAM_SHA_256),
	    "scram-sha-256");
	cr_assert_str_eq(config_auth_name(SASL_MECH_OAUTHBEARER),
	    "oauthbearer");
	cr_assert_str_eq(config_auth_name((enum sasl_mech)7), "unknown");
}

/* --- address rewriting keys (compat) ----------------------------------- */

#define TEST_RW_SH "[smarthost s]\nhost = smtp.example.com\n"

Test(config, rewriting_keys_default_to_off)
{
	test_load_ok(TEST_RW_SH);
	cr_assert_null(test_cfg->default_domain);
	cr_assert_null(test_cfg->rewrite_sender);
	cr_assert_eq(test_cfg->n_aliases, 0);
}

Test(config, default_domain_and_rewrite_sender_are_stored)
{
	test_load_ok("[sendq]\ndefault_domain = example.com\nrewrite_sender = "
		     "alerts@example.com\n" TEST_RW_SH);
	cr_assert_str_eq(test_cfg->default_domain, "example.com");
	cr_assert_str_eq(test_cfg->rewrite_sender, "alerts@example.com");
	test_load_ok("[sendq]\nrewrite_sender = example.org\n" TEST_RW_SH);
	cr_assert_str_eq(test_cfg->rewrite_sender, "example.org");
}

Test(config, aliases_section_maps_names_to_addresses)
{
	const struct config_alias *a;

	test_load_ok(TEST_RW_SH
	    "[aliases]\nroot = ops@example.com\nPostmaster@Host.Example = "
	    "a@example.com, b@example.com  c\n");
	cr_assert_eq(test_cfg->n_aliases, 2);
	a = &test_cfg->aliases[0];
	cr_assert_str_eq(a->name, "root");
	cr_assert_eq(a->n_targets, 1);
	cr_assert_str_eq(a->targets[0], "ops@example.com");
	cr_assert_eq(a->line, 4);
	a = &test_cfg->aliases[1];
	cr_assert_str_eq(a->name, "postmaster@host.example");
	cr_assert_eq(a->n_targets, 3);
	cr_assert_str_eq(a->targets[1], "b@example.com");
	cr_assert_str_eq(a->targets[2], "c");
}

struct test_rw_bad {
	char text[200];
	char msg[300];
};

ParameterizedTestParameters(config, rewriting_errors_name_line_and_reason)
{
	static struct test_rw_bad cases[] = {
		{ "[sendq]\nrewrite_sender = a@@b\n" TEST_RW_SH,
		    "sendq.ini:2: [sendq] rewrite_sender: \"a@@b\" is not a "
		    "valid address or domain (allowed: an address such as "
		    "alerts@example.com or a domain such as example.com)" },
		{ "[sendq]\ndefault_domain = -x\n" TEST_RW_SH,
		    "sendq.ini:2: [sendq] default_domain: \"-x\" is not a "
		    "valid host name (allowed: a domain such as example.com)" },
		{ TEST_RW_SH "[aliases]\nroot = ops@\n",
		    "sendq.ini:4: [aliases] root: \"ops@\" is not a valid "
		    "address (allowed: local@domain or a local part, separated "
		    "by blanks or commas)" },
		{ TEST_RW_SH "[aliases]\nro ot = ops@example.com\n",
		    "sendq.ini:4: [aliases] ro ot: not a valid alias name "
		    "(allowed: a local part such as root, or local@domain)" },
		{ TEST_RW_SH "[aliases]\nroot = a@b.example\nROOT = c\n",
		    "sendq.ini:5: [aliases] ROOT: duplicate alias (first at "
		    "line 4)" },
		{ TEST_RW_SH "[aliases]\nroot = ,\n",
		    "sendq.ini:4: [aliases] root: no address (allowed: "
		    "local@domain or a local part, separated by blanks or "
		    "commas)" },
		{ TEST_RW_SH "[aliases]\n[aliases]\n",
		    "sendq.ini:4: [aliases]: duplicate section (first at line "
		    "3)" },
		{ TEST_RW_SH "[aliases x]\n",
		    "sendq.ini:3: [aliases x]: [aliases] takes no name" },
	};

	return cr_make_param_array(struct test_rw_bad, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_rw_bad *b, config,
    rewriting_errors_name_line_and_reason)
{
	cr_assert_neq(test_load(b->text), 0);
	cr_assert_str_eq(test_err.msg, b->msg);
}

/* --- OAuth built in (issue 13) ------------------------------------------ */

#define OA \
	"[smarthost g]\nhost = smtp.gmail.com\ntls = implicit\n" \
	"user = alice@gmail.com\n"

Test(config, oauth_google_preset_fills_endpoints_scope_and_xoauth2)
{
	const struct config_smarthost *sh;

	test_load_ok(OA "oauth_provider = google\noauth_client_id = cid\n");
	sh = &test_cfg->smarthosts[0];
	cr_assert(sh->oauth);
	cr_assert_eq(sh->auth, SASL_MECH_XOAUTH2, "default with OAuth");
	cr_assert_str_eq(sh->oauth_token_endpoint,
	    "https://oauth2.googleapis.com/token");
	cr_assert_str_eq(sh->oauth_device_endpoint,
	    "https://oauth2.googleapis.com/device/code");
	cr_assert_str_eq(sh->oauth_scope, "https://mail.google.com/");
	cr_assert_null(sh->oauth_ca_file);
	cr_assert_str_eq(test_cfg->state_dir, "/var/lib/sendq");
}

Test(config, oauth_microsoft_preset_uses_the_tenant_and_keys_override)
{
	const struct config_smarthost *sh;

	test_load_ok(
	    OA "auth = oauthbearer\noauth_provider = microsoft\noauth_tenant = "
	       "contoso.onmicrosoft.com\noauth_client_id = c\noauth_scope = x "
	       "y\n");
	sh = &test_cfg->smarthosts[0];
	cr_assert_eq(sh->auth, SASL_MECH_OAUTHBEARER);
	cr_assert_str_eq(sh->oauth_token_endpoint,
	    "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/"
	    "v2.0/token");
	cr_assert_str_eq(sh->oauth_scope, "x y");
}

Test(config, oauth_own_endpoints)
{
	test_load_ok(OA
	    "oauth_token_endpoint = https://127.0.0.1:9/token\noauth_client_id "
	    "= c\noauth_client_secret_file = /etc/s\n");
	cr_assert(test_cfg->smarthosts[0].oauth);
	cr_assert_null(test_cfg->smarthosts[0].oauth_device_endpoint);
}

Test(config, oauth_errors)
{
	static const char *const bad[][2] = {
		{ OA "oauth_provider = google\n", "oauth_client_id: missing" },
		{ OA "oauth_token_endpoint = http://x/t\noauth_client_id = c\n",
		    "oauth_token_endpoint: not an https:// URL" },
		{ OA "oauth_provider = google\noauth_client_id = c\ntoken_file "
		     "= /x\n",
		    "only one secret source" },
		{ OA "auth = plain\noauth_provider = google\noauth_client_id = "
		     "c\n",
		    "needs a password source" },
		{ OA "token_file = /x\nauth = xoauth2\noauth_client_id = c\n",
		    "oauth_client_id: set without oauth_provider" },
		{ OA "oauth_provider = google\noauth_tenant = "
		     "t\noauth_client_id = c\n",
		    "oauth_tenant: only used with" },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_neq(test_load(bad[i][0]), 0, "%s", bad[i][0]);
		cr_assert(strstr(test_err.msg, bad[i][1]) != NULL, "%s: %s",
		    bad[i][1], test_err.msg);
	}
}

/* --- local rights (issue 10) ------------------------------------------ */

Test(config, rights_keys_default_to_unset)
{
	test_load_ok("[smarthost s]\nhost = s.example\n");
	cr_assert_null(test_cfg->admin_group.names);
	cr_assert_eq(test_cfg->admin_group.n, 0);
	cr_assert_eq(test_cfg->admin_group.line, 0);
	cr_assert_null(test_cfg->submit_users.names);
	cr_assert_null(test_cfg->submit_groups.names);
}

Test(config, rights_keys_keep_names_and_lines)
{
	test_load_ok("[sendq]\nadmin_group = mailadm\nsubmit_users = alice  "
		     "bob.smith www-data host$\nsubmit_groups = "
		     "staff\n[smarthost s]\nhost = s.example\n");
	cr_assert_eq(test_cfg->admin_group.n, 1);
	cr_assert_str_eq(test_cfg->admin_group.names[0], "mailadm");
	cr_assert_null(test_cfg->admin_group.names[1]);
	cr_assert_eq(test_cfg->admin_group.line, 2);
	cr_assert_eq(test_cfg->submit_users.n, 4);
	cr_assert_str_eq(test_cfg->submit_users.names[0], "alice");
	cr_assert_str_eq(test_cfg->submit_users.names[1], "bob.smith");
	cr_assert_str_eq(test_cfg->submit_users.names[2], "www-data");
	cr_assert_str_eq(test_cfg->submit_users.names[3], "host$");
	cr_assert_null(test_cfg->submit_users.names[4]);
	cr_assert_eq(test_cfg->submit_users.line, 3);
	cr_assert_eq(test_cfg->submit_groups.n, 1);
	cr_assert_str_eq(test_cfg->submit_groups.names[0], "staff");
	cr_assert_eq(test_cfg->submit_groups.line, 4);
}
