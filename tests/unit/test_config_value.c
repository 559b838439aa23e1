/*
 * test_config_value.c - the typed value parsers of sendq.ini
 * (daemon/config_value.c) one by one, and the key table (daemon/config.c)
 * as data: every row names a type, every default parses through it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "config_keys.h"
#include "config_value.h"

Test(config_value, uint)
{
	cr_assert_eq(config_value_uint("0"), 0);
	cr_assert_eq(config_value_uint("65535"), 65535);
	cr_assert_eq(config_value_uint(""), -1);
	cr_assert_eq(config_value_uint("-1"), -1);
	cr_assert_eq(config_value_uint("+1"), -1);
	cr_assert_eq(config_value_uint("1 "), -1);
	cr_assert_eq(config_value_uint("0x10"), -1);
	/* Clamped past 10^9: out of every range, never wrapped. */
	cr_assert_geq(config_value_uint("99999999999999999999999"),
	    1000LL * 1000 * 1000);
}

Test(config_value, duration)
{
	cr_assert_eq(config_value_duration("90"), 90);
	cr_assert_eq(config_value_duration("90s"), 90);
	cr_assert_eq(config_value_duration("5m"), 300);
	cr_assert_eq(config_value_duration("2h"), 7200);
	cr_assert_eq(config_value_duration("1d"), 86400);
	cr_assert_eq(config_value_duration("0"), 0);
	cr_assert_eq(config_value_duration(""), -1);
	cr_assert_eq(config_value_duration("m"), -1);
	cr_assert_eq(config_value_duration("5ms"), -1);
	cr_assert_eq(config_value_duration("5M"), -1);
	cr_assert_eq(config_value_duration("5w"), -1);
	cr_assert_eq(config_value_duration("-5m"), -1);
	cr_assert_gt(config_value_duration("99999999999999999999d"),
	    365LL * 86400);
}

Test(config_value, fmt_duration_uses_the_largest_exact_unit)
{
	char b[16];

	cr_assert_str_eq(config_value_fmt_duration(b, sizeof(b), 0), "0s");
	cr_assert_str_eq(config_value_fmt_duration(b, sizeof(b), 90), "90s");
	cr_assert_str_eq(config_value_fmt_duration(b, sizeof(b), 120), "2m");
	cr_assert_str_eq(config_value_fmt_duration(b, sizeof(b), 7200), "2h");
	cr_assert_str_eq(config_value_fmt_duration(b, sizeof(b), 172800), "2d");
}

Test(config_value, size_with_binary_units)
{
	uint64_t v;

	cr_assert_eq(config_value_size("0", &v), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(config_value_size("512", &v), 0);
	cr_assert_eq(v, 512);
	cr_assert_eq(config_value_size("4k", &v), 0);
	cr_assert_eq(v, 4096);
	cr_assert_eq(config_value_size("25M", &v), 0);
	cr_assert_eq(v, 25u * 1024 * 1024);
	cr_assert_eq(config_value_size("1G", &v), 0);
	cr_assert_eq(v, 1024u * 1024 * 1024);
	cr_assert_eq(config_value_size("", &v), -1);
	cr_assert_eq(config_value_size("M", &v), -1);
	cr_assert_eq(config_value_size("1T", &v), -1);
	cr_assert_eq(config_value_size("1MB", &v), -1);
	cr_assert_eq(config_value_size("1.5M", &v), -1);
	/* Huge: saturates, never wraps into range. */
	cr_assert_eq(config_value_size("99999999999999999G", &v), 0);
	cr_assert_gt(v, 1024ULL * 1024 * 1024 * 1024);
}

Test(config_value, rate)
{
	unsigned n, s;

	cr_assert_eq(config_value_rate("100/h", &n, &s), 0);
	cr_assert_eq(n, 100);
	cr_assert_eq(s, 3600);
	cr_assert_eq(config_value_rate("1/s", &n, &s), 0);
	cr_assert_eq(s, 1);
	cr_assert_eq(config_value_rate("5/m", &n, &s), 0);
	cr_assert_eq(s, 60);
	cr_assert_eq(config_value_rate("0/s", &n, &s), -2);
	cr_assert_eq(config_value_rate("1000001/s", &n, &s), -2);
	cr_assert_eq(config_value_rate("/s", &n, &s), -1);
	cr_assert_eq(config_value_rate("5/d", &n, &s), -1);
	cr_assert_eq(config_value_rate("5/hh", &n, &s), -1);
	cr_assert_eq(config_value_rate("5", &n, &s), -1);
	cr_assert_eq(config_value_rate("x5/s", &n, &s), -1);
}

Test(config_value, host_name_or_address)
{
	size_t off, len;

	cr_assert(config_value_host("smtp.example.com", &off, &len));
	cr_assert_eq(off, 0);
	cr_assert(config_value_host("192.0.2.1", &off, &len));
	cr_assert(config_value_host("2001:db8::1", &off, &len));
	cr_assert(config_value_host("[2001:db8::1]", &off, &len));
	cr_assert_eq(off, 1);
	cr_assert_eq(len, strlen("2001:db8::1"));
	cr_assert_not(config_value_host("[192.0.2.1]", &off, &len));
	cr_assert_not(config_value_host("[smtp.example.com]", &off, &len));
	cr_assert_not(config_value_host("smtp.example.com:465", &off, &len));
	cr_assert_not(config_value_host("-bad.example", &off, &len));
	cr_assert_not(config_value_host("1.2.3", &off, &len));
}

Test(config_value, names)
{
	cr_assert(config_value_credname("smtp-password.v1_x"));
	cr_assert_not(config_value_credname("."));
	cr_assert_not(config_value_credname(".."));
	cr_assert_not(config_value_credname("a/b"));
	cr_assert_not(config_value_credname(""));
	cr_assert(config_value_name("primary.eu-1_a"));
	cr_assert_not(config_value_name("a b"));
	cr_assert_not(config_value_name(""));
	cr_assert_not(
	    config_value_name("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			      "aaaaaaaaaaaaaaaaa")); /* 65 */
	cr_assert(config_value_account("www-data", 8));
	cr_assert(config_value_account("host$", 5));
	cr_assert(config_value_account("a.b_c", 5));
	cr_assert_not(config_value_account("-x", 2));
	cr_assert_not(config_value_account("1000", 4));
	cr_assert_not(config_value_account("$", 1));
	cr_assert_not(config_value_account("a$b", 3));
	cr_assert_not(config_value_account("a b", 3));
	cr_assert(config_value_glob("*@example.com", 13));
	cr_assert(config_value_glob("alerts+?@*.example.org", 22));
	cr_assert_not(config_value_glob("a@b@c", 5));
	cr_assert_not(config_value_glob("a,b", 3));
	cr_assert(config_value_https_url("https://oauth2.example/token"));
	cr_assert_not(config_value_https_url("http://oauth2.example/token"));
	cr_assert_not(config_value_https_url("https://"));
	cr_assert_not(config_value_https_url("https://a b"));
}

Test(config_value, pin)
{
	unsigned char pin[CONFIG_PIN_LEN];
	const char *ok = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	size_t      got;

	cr_assert_eq(config_value_pin(ok, strlen(ok), pin, &got), 0);
	cr_assert_eq(config_value_pin("md5:AAAA", 8, pin, &got), -1);
	cr_assert_eq(config_value_pin("sha256:", 7, pin, &got), -2);
	cr_assert_eq(config_value_pin("sha256:!!!!", 11, pin, &got), -2);
	cr_assert_eq(config_value_pin("sha256:AAAA", 11, pin, &got), -3);
	cr_assert_eq(got, 3);
}

Test(config_value, listen)
{
	struct config_listen l;

	cr_assert_eq(config_value_listen("127.0.0.1:2525", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_INET);
	cr_assert_str_eq(l.addr, "127.0.0.1");
	cr_assert_eq(l.port, 2525);
	free(l.addr);
	cr_assert_eq(config_value_listen("[::1]:25", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_INET6);
	cr_assert_str_eq(l.addr, "::1");
	free(l.addr);
	cr_assert_eq(config_value_listen("unix:/run/sendq/smtp", &l), 0);
	cr_assert_eq(l.kind, CONFIG_LISTEN_UNIX);
	cr_assert_str_eq(l.addr, "/run/sendq/smtp");
	free(l.addr);
	cr_assert_eq(config_value_listen("unix:run/x", &l), -1);
	cr_assert_eq(config_value_listen("localhost:25", &l), -2);
	cr_assert_eq(config_value_listen("::1:25", &l), -2);
	cr_assert_eq(config_value_listen("127.0.0.1", &l), -2);
	cr_assert_eq(config_value_listen("127.0.0.1:0", &l), -3);
	cr_assert_eq(config_value_listen("127.0.0.1:65536", &l), -3);
}

Test(config_value, network)
{
	struct config_network n;

	cr_assert_eq(config_value_network("192.168.1.0/24", &n), 0);
	cr_assert_eq(n.family, AF_INET);
	cr_assert_eq(n.prefix, 24);
	cr_assert_eq(config_value_network("fd00::/8", &n), 0);
	cr_assert_eq(n.family, AF_INET6);
	cr_assert_eq(config_value_network("192.0.2.7", &n), 0);
	cr_assert_eq(n.prefix, 32);
	cr_assert_eq(config_value_network("example.com/8", &n), -1);
	cr_assert_eq(config_value_network("10.0.0.0/33", &n), -2);
	cr_assert_eq(config_value_network("10.0.0.0/", &n), -2);
	cr_assert_eq(config_value_network("192.168.1.1/24", &n), -3);
}

Test(config_value, tokens)
{
	const char *s = "  a bb  c ", *t;
	size_t      len;

	t = config_value_token(&s, &len);
	cr_assert(t != NULL && len == 1 && t[0] == 'a');
	t = config_value_token(&s, &len);
	cr_assert(t != NULL && len == 2 && strncmp(t, "bb", 2) == 0);
	t = config_value_token(&s, &len);
	cr_assert(t != NULL && len == 1 && t[0] == 'c');
	cr_assert_null(config_value_token(&s, &len));
}

/* The address and host rules config shares with intake and smtp_proto
 * (mailmsg_addr_valid, mailmsg_host_valid). */
Test(config_value, addresses_and_host_names_are_mailmsgs_rules)
{
	cr_assert(config_value_address("postmaster@example.com"));
	cr_assert(config_value_address("\"pm\"@example.com")); /* 5321 */
	cr_assert(config_value_address("pm@[192.0.2.1]"));
	cr_assert_not(config_value_address("pm@192.0.2.1"));
	cr_assert_not(config_value_address("pm@exa_mple.com"));
	cr_assert_not(config_value_address("postmaster"));
	cr_assert(config_value_local_or_address("postmaster", 1));
	cr_assert_not(config_value_local_or_address("post master", 1));
	cr_assert(config_value_hostname("mail.example.com"));
	cr_assert_not(config_value_hostname("mail.example.com."));
	cr_assert_not(config_value_hostname("192.0.2.1"));
	cr_assert_not(config_value_hostname("b\xc3\xbc"
					    "cher.de"));
}

/* The table: every row's type, default and doc line. */
Test(config_keys, every_row_names_a_type_and_its_default_parses)
{
	struct config *cfg;
	struct sq_err  err = { 0 };
	size_t         i;
	const char    *text = "[smarthost s]\nhost = smtp.example.com\n";

	for (i = 0; i < config_nkeys; i++) {
		cr_assert_not_null(config_keys[i].type, "%s",
		    config_keys[i].key);
		cr_assert((config_keys[i].type->set == NULL) !=
			(config_keys[i].type->one == NULL),
		    "%s: set or one", config_keys[i].key);
		cr_assert_not_null(config_keys[i].doc, "%s",
		    config_keys[i].key);
		cr_assert(config_keys[i].type->allowed != NULL ||
			config_keys[i].allowed != NULL,
		    "%s has no allowed text", config_keys[i].key);
	}
	/* Defaults are parsed when a config is loaded (a bad one aborts). */
	cr_assert_eq(config_load_string("t.ini", text, &cfg, &err), 0, "%s",
	    err.msg);
	config_free(cfg);
}

Test(config_keys, lookup)
{
	size_t i;
	char   buf[512];

	cr_assert_not_null(config_key_find(CONFIG_SECT_QUEUE, "retry_min", &i));
	cr_assert_str_eq(config_keys[i].key, "retry_min");
	cr_assert_eq(config_key_index("retry_min"), i);
	cr_assert_null(config_key_find(CONFIG_SECT_SENDQ, "retry_min", NULL));
	cr_assert_null(config_key_find(CONFIG_SECT_QUEUE, "nope", NULL));
	cr_assert_not_null(
	    strstr(config_section_keys(CONFIG_SECT_QUEUE, buf, sizeof(buf)),
		"retry_min, retry_max"));
}
