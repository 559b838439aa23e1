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

#define TEST_CONFIG_DIR		SENDQ_TEST_DATA "/config"
#define TEST_SHIPPED_CONF	SENDQ_TEST_DATA "/../../../conf/sendq.ini"
#define TEST_CA			TEST_CONFIG_DIR "/ca.pem"

static struct config	*test_cfg;
static struct sq_err	 test_err;

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
	cr_assert_str_eq(test_cfg->spool_dir, "/var/spool/sendq");
	cr_assert_null(test_cfg->hostname);
	cr_assert_eq(test_cfg->log_level, LOG_LEVEL_INFO);
	cr_assert_eq(test_cfg->retry_min, 60);
	cr_assert_eq(test_cfg->n_smarthosts, 1);
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->name, "primary");
	cr_assert_str_eq(sh->host, "smtp.example.com");
	cr_assert_eq(sh->tls, CONFIG_TLS_STARTTLS);
	cr_assert_eq(sh->port, 587);
	cr_assert_eq(sh->trust, CONFIG_TRUST_SYSTEM);
	cr_assert_null(sh->ca_file);
	cr_assert_eq(sh->line, 1);
}

Test(config, every_key_is_stored)
{
	char text[1024];
	const struct config_smarthost *sh;

	snprintf(text, sizeof(text),
	    "[sendq]\n"
	    "spool_dir = /srv/spool\n"
	    "hostname = mail.example.com\n"
	    "log_level = debug\n"
	    "[queue]\n"
	    "retry_min = 2h\n"
	    "[smarthost corp]\n"
	    "host = relay.corp.example\n"
	    "port = 2525\n"
	    "tls = implicit\n"
	    "trust = ca_file\n"
	    "ca_file = %s\n"
	    "[smarthost lab]\n"
	    "host = 192.0.2.7\n"
	    "trust = insecure\n", TEST_CA);
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->spool_dir, "/srv/spool");
	cr_assert_str_eq(test_cfg->hostname, "mail.example.com");
	cr_assert_eq(test_cfg->log_level, LOG_LEVEL_DEBUG);
	cr_assert_eq(test_cfg->retry_min, 7200);
	cr_assert_eq(test_cfg->n_smarthosts, 2);
	sh = &test_cfg->smarthosts[0];
	cr_assert_str_eq(sh->name, "corp");
	cr_assert_str_eq(sh->host, "relay.corp.example");
	cr_assert_eq(sh->port, 2525);
	cr_assert_eq(sh->tls, CONFIG_TLS_IMPLICIT);
	cr_assert_eq(sh->trust, CONFIG_TRUST_CA_FILE);
	cr_assert_str_eq(sh->ca_file, TEST_CA);
	cr_assert_eq(sh->line, 7);
	sh = &test_cfg->smarthosts[1];
	cr_assert_str_eq(sh->name, "lab");
	cr_assert_str_eq(sh->host, "192.0.2.7");
	cr_assert_eq(sh->trust, CONFIG_TRUST_INSECURE);
	cr_assert_eq(sh->line, 13);
}

Test(config, smarthosts_keep_file_order)
{
	test_load_ok("[smarthost b]\nhost = b.example\n"
	    "[smarthost a]\nhost = a.example\n"
	    "[smarthost c]\nhost = c.example\n");
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
	test_load_ok("[sendq]\nlog_level = WARNING\n"
	    "[smarthost x]\nhost = x.example\ntls = Implicit\n");
	cr_assert_eq(test_cfg->log_level, LOG_LEVEL_WARN);
	cr_assert_eq(test_cfg->smarthosts[0].tls, CONFIG_TLS_IMPLICIT);
}

Test(config, inline_comments_blanks_and_indentation_are_ignored)
{
	test_load_ok("; comment\n# hash comment\n\n"
	    "  [sendq]   ; trailing comment\n"
	    "\thostname   =   h.example   ; why\n"
	    "[smarthost x]\n"
	    "    host = x.example\n"
	    "    port = 2525\n");
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
	char text[512];
	char value[CONFIG_LINE_MAX + 1];
	size_t prefix = strlen("spool_dir = /");

	memset(value, 'a', sizeof(value));
	value[CONFIG_LINE_MAX - prefix] = '\0';
	snprintf(text, sizeof(text), "[sendq]\nspool_dir = /%s\r\n"
	    "[smarthost x]\nhost = x.example\n", value);
	test_load_ok(text);
	cr_assert_eq(strlen(test_cfg->spool_dir), CONFIG_LINE_MAX -
	    strlen("spool_dir = "));
}

/*
 * Criterion runs each parameter in a fresh process, so parameters hold
 * their strings in arrays, never pointers into this image.
 */
struct test_duration {
	char		 text[16];
	unsigned	 secs;
};

ParameterizedTestParameters(config, retry_min_units)
{
	static struct test_duration params[] = {
		{ "1", 1 }, { "90", 90 }, { "30s", 30 }, { "5m", 300 },
		{ "2h", 7200 }, { "1d", 86400 }, { "1440m", 86400 },
	};

	return cr_make_param_array(struct test_duration, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_duration *d, config, retry_min_units)
{
	char text[128];

	snprintf(text, sizeof(text), "[queue]\nretry_min = %s\n"
	    "[smarthost x]\nhost = x.example\n", d->text);
	test_load_ok(text);
	cr_assert_eq(test_cfg->retry_min, d->secs, "%s", d->text);
	config_free(test_cfg);
	test_cfg = NULL;
}

struct test_port {
	char		 lines[96];
	unsigned	 port;
	enum config_tls	 tls;
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
	char		 host[48];
	char		 stored[48];
};

ParameterizedTestParameters(config, tls_none_is_allowed_to_loopback)
{
	static struct test_host params[] = {
		{ "127.0.0.1", "127.0.0.1" }, { "127.8.9.10", "127.8.9.10" },
		{ "::1", "::1" }, { "[::1]", "::1" },
		{ "localhost", "localhost" }, { "LocalHost", "LocalHost" },
	};

	return cr_make_param_array(struct test_host, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_host *h, config,
    tls_none_is_allowed_to_loopback)
{
	char text[256];

	snprintf(text, sizeof(text), "[smarthost local]\nhost = %s\n"
	    "tls = none\n", h->host);
	test_load_ok(text);
	cr_assert_str_eq(test_cfg->smarthosts[0].host, h->stored);
	cr_assert_eq(test_cfg->smarthosts[0].tls, CONFIG_TLS_NONE);
	config_free(test_cfg);
	test_cfg = NULL;
}

ParameterizedTestParameters(config, tls_none_is_refused_to_a_remote_host)
{
	static struct test_host params[] = {
		{ "smtp.example.com", "" }, { "10.0.0.1", "" },
		{ "128.0.0.1", "" }, { "::2", "" }, { "[2001:db8::1]", "" },
		{ "localhost.example.com", "" },
	};

	return cr_make_param_array(struct test_host, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_host *h, config,
    tls_none_is_refused_to_a_remote_host)
{
	char text[256], want[512];
	const char *bare = h->host;
	char buf[64];

	if (bare[0] == '[') {
		snprintf(buf, sizeof(buf), "%.*s", (int)strlen(bare) - 2,
		    bare + 1);
		bare = buf;
	}
	snprintf(text, sizeof(text), "[smarthost remote]\nhost = %s\n\n"
	    "tls = none\n", h->host);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	snprintf(want, sizeof(want), "sendq.ini:4: [smarthost remote] tls: "
	    "\"none\" is refused for host \"%s\": cleartext would leak mail "
	    "and credentials to the network; only a loopback host "
	    "(127.0.0.1, ::1, localhost) may use it "
	    "(allowed: implicit, starttls)", bare);
	cr_assert_str_eq(test_err.msg, want);
}

/* --- ca_file ----------------------------------------------------------- */

Test(config, ca_file_with_trust_ca_file_is_stored)
{
	test_load_ok("[smarthost c]\nhost = c.example\ntrust = ca_file\n"
	    "ca_file = " TEST_CA "\n");
	cr_assert_str_eq(test_cfg->smarthosts[0].ca_file, TEST_CA);
	cr_assert_eq(test_cfg->smarthosts[0].trust, CONFIG_TRUST_CA_FILE);
}

Test(config, ca_file_may_come_before_trust)
{
	test_load_ok("[smarthost c]\nca_file = " TEST_CA "\n"
	    "host = c.example\ntrust = ca_file\n");
	cr_assert_str_eq(test_cfg->smarthosts[0].ca_file, TEST_CA);
}

Test(config, trust_ca_file_without_ca_file_points_at_the_section)
{
	cr_assert_eq(test_load("; x\n[smarthost c]\nhost = c.example\n"
	    "trust = ca_file\n"), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:2: [smarthost c] ca_file: "
	    "missing (required with trust = ca_file, set at line 4)");
}

Test(config, ca_file_with_another_trust_is_an_error)
{
	cr_assert_eq(test_load("[smarthost c]\nhost = c.example\n"
	    "ca_file = " TEST_CA "\ntrust = insecure\n"), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:3: [smarthost c] ca_file: "
	    "only used with trust = ca_file, not with trust = insecure "
	    "(remove ca_file or set trust = ca_file)");
}

Test(config, ca_file_with_default_trust_is_an_error)
{
	cr_assert_eq(test_load("[smarthost c]\nhost = c.example\n"
	    "ca_file = " TEST_CA "\n"), SQ_ECONFIG);
	cr_assert(strstr(test_err.msg, "sendq.ini:3: [smarthost c] ca_file: "
	    "only used with trust = ca_file, not with trust = system") ==
	    test_err.msg, "%s", test_err.msg);
}

Test(config, ca_file_must_exist)
{
	cr_assert_eq(test_load("[smarthost c]\nhost = c.example\n"
	    "trust = ca_file\nca_file = " TEST_CONFIG_DIR "/missing.pem\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:4: [smarthost c] ca_file: "
	    "\"" TEST_CONFIG_DIR "/missing.pem\" cannot be read: "
	    "No such file or directory");
}

/* --- bad input: one exact message each -------------------------------- */

struct test_bad {
	char		 text[160];
	char		 msg[320];
};

#define SH	"[smarthost s]\nhost = s.example\n"

ParameterizedTestParameters(config, bad_input_names_file_line_and_reason)
{
	static struct test_bad params[] = {
		/* sections */
		{ "[mail]\n",
		  "sendq.ini:1: [mail]: unknown section "
		  "(allowed: [sendq], [queue], [smarthost NAME])" },
		{ "; c\n[smarthost]\nhost = x\n",
		  "sendq.ini:2: [smarthost]: a smarthost needs a name, "
		  "as in [smarthost primary]" },
		{ "[smarthost a]\nhost = a\n\n[smarthost a]\nhost = b\n",
		  "sendq.ini:4: [smarthost a]: duplicate smarthost name "
		  "(first at line 1)" },
		{ "[smarthost a/b]\n",
		  "sendq.ini:1: [smarthost a/b]: invalid smarthost name "
		  "(allowed: 1 to 64 letters, digits, '.', '_', '-')" },
		{ "[sendq main]\n",
		  "sendq.ini:1: [sendq main]: [sendq] takes no name" },
		{ "[queue]\n[queue]\n",
		  "sendq.ini:2: [queue]: duplicate section (first at line 1)" },
		/* keys */
		{ "spool_dir = /x\n[sendq]\n",
		  "sendq.ini:1: spool_dir: key outside any section (allowed: "
		  "after a [sendq], [queue] or [smarthost NAME] header)" },
		{ SH "hots = x\n",
		  "sendq.ini:3: [smarthost s] hots: unknown key "
		  "(allowed: host, port, tls, trust, ca_file)" },
		{ "[sendq]\nspooldir = /x\n",
		  "sendq.ini:2: [sendq] spooldir: unknown key "
		  "(allowed: spool_dir, hostname, log_level)" },
		{ "[queue]\nretry_max = 1h\n",
		  "sendq.ini:2: [queue] retry_max: unknown key "
		  "(allowed: retry_min)" },
		{ "[smarthost primary]\nhost = smtp.example.com\n; c\n\n"
		  "\n\ntls = startls\n",
		  "sendq.ini:7: [smarthost primary] tls: \"startls\" is not "
		  "valid (allowed: implicit, starttls, none)" },
		{ SH "port = 25\nport = 26\n",
		  "sendq.ini:4: [smarthost s] port: duplicate key "
		  "(first at line 3)" },
		{ SH "  host = other.example\n",
		  "sendq.ini:3: [smarthost s] host: duplicate key "
		  "(first at line 2)" },
		/* values */
		{ "[smarthost s]\nhost =\n",
		  "sendq.ini:2: [smarthost s] host: empty value "
		  "(allowed: a host name or an IP address)" },
		{ "[sendq]\nhostname = ; only a comment\n",
		  "sendq.ini:2: [sendq] hostname: empty value "
		  "(allowed: a host name such as mail.example.com)" },
		{ SH "port = 0\n",
		  "sendq.ini:3: [smarthost s] port: \"0\" is out of range "
		  "(allowed: 1 to 65535)" },
		{ SH "port = 65536\n",
		  "sendq.ini:3: [smarthost s] port: \"65536\" is out of range "
		  "(allowed: 1 to 65535)" },
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
		  "(allowed: system, ca_file, insecure)" },
		{ "[smarthost s]\nhost = smtp.example.com:465\n",
		  "sendq.ini:2: [smarthost s] host: \"smtp.example.com:465\" "
		  "is not a valid host name or IP address (allowed: a host "
		  "name or an IP address; the port goes in port =)" },
		{ "[smarthost s]\nhost = -bad.example\n",
		  "sendq.ini:2: [smarthost s] host: \"-bad.example\" is not a "
		  "valid host name or IP address (allowed: a host name or an "
		  "IP address; the port goes in port =)" },
		{ "[smarthost s]\nhost = [smtp.example.com]\n",
		  "sendq.ini:2: [smarthost s] host: \"[smtp.example.com]\" is "
		  "not a valid host name or IP address (allowed: a host name "
		  "or an IP address; the port goes in port =)" },
		{ "[sendq]\nspool_dir = var/spool/sendq\n",
		  "sendq.ini:2: [sendq] spool_dir: \"var/spool/sendq\" is not "
		  "an absolute path (allowed: an absolute path)" },
		{ "[sendq]\nhostname = mail_host.example\n",
		  "sendq.ini:2: [sendq] hostname: \"mail_host.example\" is not "
		  "a valid host name (allowed: a host name such as "
		  "mail.example.com)" },
		{ "[sendq]\nhostname = 192.0.2.1\n",
		  "sendq.ini:2: [sendq] hostname: \"192.0.2.1\" is not a valid "
		  "host name (allowed: a host name such as mail.example.com)" },
		{ "[sendq]\nhostname = a..b\n",
		  "sendq.ini:2: [sendq] hostname: \"a..b\" is not a valid host "
		  "name (allowed: a host name such as mail.example.com)" },
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
		  "sendq.ini:2: [sendq] spool_dir: \"/x?y\" contains a control "
		  "character (allowed: an absolute path)" },
		/* syntax */
		{ SH "tls implicit\n",
		  "sendq.ini:3: syntax error: expected \"key = value\", "
		  "\"[section]\" or a comment" },
		{ SH "= implicit\n",
		  "sendq.ini:3: [smarthost s]: syntax error: missing key name "
		  "before '='" },
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
		  "sendq.ini:3: [smarthost s] host: missing "
		  "(required: a host name or an IP address)" },
		{ "[smarthost a]\nhost = a\n[smarthost b]\ntls = none\n"
		  "[sendq]\n",
		  "sendq.ini:3: [smarthost b] host: missing "
		  "(required: a host name or an IP address)" },
		{ "[sendq]\n; no relay\n\n",
		  "sendq.ini:3: no smarthost defined (add a [smarthost NAME] "
		  "section with at least host =)" },
		{ "",
		  "sendq.ini:0: no smarthost defined (add a [smarthost NAME] "
		  "section with at least host =)" },
		/* only the first error, in file order */
		{ SH "colour = red\ntls = startls\n",
		  "sendq.ini:3: [smarthost s] colour: unknown key "
		  "(allowed: host, port, tls, trust, ca_file)" },
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
	cr_assert_str_eq(test_err.msg, b->msg);
	cr_assert_eq(test_err.code, rc);
	cr_assert_null(strchr(test_err.msg, '\n'));
}

Test(config, line_too_long_is_an_error_not_split)
{
	char text[512], value[300];

	memset(value, 'a', sizeof(value));
	value[250] = '\0';
	/* inih would parse the tail of the long line as a line of its own;
	 * here the tail looks like a key and must not be seen. */
	snprintf(text, sizeof(text), "; x\n[sendq]\nhostname = %s"
	    "tls = none\n" SH, value);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:3: line too long "
	    "(allowed: at most 197 characters)");
}

Test(config, long_comment_line_is_also_too_long)
{
	char text[512], value[300];

	memset(value, '-', sizeof(value));
	value[CONFIG_LINE_MAX] = '\0';
	snprintf(text, sizeof(text), SH ";%s\n", value);
	cr_assert_eq(test_load(text), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:3: line too long "
	    "(allowed: at most 197 characters)");
}

Test(config, message_shows_unprintable_bytes_as_question_marks)
{
	cr_assert_eq(test_load("[smarthost s]\nhost = s.example\n"
	    "tls = \xff\x1b[2J\n"), SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:3: [smarthost s] tls: "
	    "\"??[2J\" contains a control character "
	    "(allowed: implicit, starttls, none)");
}

Test(config, line_numbers_count_crlf_comments_and_blank_lines)
{
	cr_assert_eq(test_load("; one\r\n\r\n# three\r\n[smarthost s]\r\n"
	    "   \r\n\thost = s.example ; six\r\n; seven\r\nport = x\r\n"),
	    SQ_ECONFIG);
	cr_assert_str_eq(test_err.msg, "sendq.ini:8: [smarthost s] port: "
	    "\"x\" is not valid (allowed: 1 to 65535)");
}

Test(config, failure_leaves_out_untouched)
{
	struct config *cfg = (struct config *)&test_err;
	struct sq_err err;

	cr_assert_lt(config_load_string("x.ini", "[bad]\n", &cfg, &err), 0);
	cr_assert_eq(cfg, (struct config *)&test_err);
}

Test(config, null_name_is_shown_as_string)
{
	struct config *cfg = NULL;
	struct sq_err err;

	cr_assert_lt(config_load_string(NULL, "[bad]\n", &cfg, &err), 0);
	cr_assert(strncmp(err.msg, "(string):1: ", 12) == 0, "%s", err.msg);
}

/* --- files -------------------------------------------------------------- */

Test(config, missing_file_says_cannot_open)
{
	struct config *cfg = NULL;
	struct sq_err err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR "/nope.ini", &cfg,
	    &err), -ENOENT);
	cr_assert_null(cfg);
	cr_assert_str_eq(err.msg, TEST_CONFIG_DIR "/nope.ini: cannot open: "
	    "No such file or directory");
}

Test(config, directory_says_cannot_read)
{
	struct config *cfg = NULL;
	struct sq_err err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR, &cfg, &err), -EISDIR);
	cr_assert_null(cfg);
	cr_assert_str_eq(err.msg, TEST_CONFIG_DIR ": cannot read: "
	    "Is a directory");
}

Test(config, file_error_names_the_path_and_line)
{
	struct config *cfg = NULL;
	struct sq_err err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR "/bad_line9.ini", &cfg,
	    &err), SQ_ECONFIG);
	cr_assert_str_eq(err.msg, TEST_CONFIG_DIR "/bad_line9.ini:9: "
	    "[smarthost primary] tls: \"startls\" is not valid "
	    "(allowed: implicit, starttls, none)");
}

Test(config, file_with_crlf_and_comments_parses)
{
	struct config *cfg = NULL;
	struct sq_err err;

	cr_assert_eq(config_load_file(TEST_CONFIG_DIR "/crlf.ini", &cfg,
	    &err), 0, "%s", err.msg);
	cr_assert_str_eq(cfg->path, TEST_CONFIG_DIR "/crlf.ini");
	cr_assert_eq(cfg->log_level, LOG_LEVEL_WARN);
	cr_assert_str_eq(cfg->smarthosts[0].host, "mail.example.net");
	cr_assert_eq(cfg->smarthosts[0].port, 465);
	cr_assert_eq(cfg->smarthosts[0].line, 7);
	config_free(cfg);
}

Test(config, nul_byte_in_file_is_an_error)
{
	char path[] = "/tmp/test_config_XXXXXX";
	static const char text[] = "[smarthost s]\nhost = s.ex\0ample\n";
	struct config *cfg = NULL;
	struct sq_err err;
	char want[128];
	int fd;

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
	struct sq_err err;

	cr_assert_eq(config_load_file(TEST_SHIPPED_CONF, &cfg, &err), 0,
	    "%s", err.msg);
	cr_assert_str_eq(cfg->spool_dir, CONFIG_DEFAULT_SPOOL);
	cr_assert_eq(cfg->n_smarthosts, 1);
	cr_assert_str_eq(cfg->smarthosts[0].name, "primary");
	cr_assert_eq(cfg->smarthosts[0].tls, CONFIG_TLS_STARTTLS);
	config_free(cfg);
}

static char *
test_read_file(const char *path)
{
	FILE *f;
	char *text;
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
 * every key sendq knows is documented that way.  ca_file examples name
 * files that do not exist here, so they point at the test CA instead.
 */
Test(config, shipped_example_documents_every_key_validly)
{
	static const char *const keys[] = { "spool_dir", "hostname",
	    "log_level", "retry_min", "host", "port", "tls", "trust",
	    "ca_file" };
	char *text, *out, *line, *next, needle[64];
	size_t i, len = 0;

	text = test_read_file(TEST_SHIPPED_CONF);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(needle, sizeof(needle), "\n;%s = ", keys[i]);
		cr_assert_not_null(strstr(text, needle), "%s", keys[i]);
	}
	out = xmalloc(strlen(text) * 2 + 1024);
	for (line = text; *line != '\0'; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		if (line[0] == ';' && (line[1] == '[' ||
		    (line[1] >= 'a' && line[1] <= 'z')))
			line++;
		if (strncmp(line, "ca_file = ", 10) == 0)
			len += (size_t)sprintf(out + len, "ca_file = %s\n",
			    TEST_CA);
		else {
			memcpy(out + len, line, (size_t)(next - line));
			len += (size_t)(next - line);
		}
	}
	out[len] = '\0';
	free(text);
	test_load_ok(out);
	free(out);
	cr_assert_eq(test_cfg->n_smarthosts, 4);
	cr_assert_str_eq(test_cfg->smarthosts[1].host, "smtp.gmail.com");
	cr_assert_eq(test_cfg->smarthosts[1].port, 465);
	cr_assert_eq(test_cfg->smarthosts[1].tls, CONFIG_TLS_IMPLICIT);
	cr_assert_eq(test_cfg->smarthosts[2].tls, CONFIG_TLS_STARTTLS);
	cr_assert_eq(test_cfg->smarthosts[2].trust, CONFIG_TRUST_CA_FILE);
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
	cr_assert_str_eq(config_trust_name(CONFIG_TRUST_INSECURE),
	    "insecure");
	cr_assert_str_eq(config_trust_name((enum config_trust)-1), "unknown");
}
