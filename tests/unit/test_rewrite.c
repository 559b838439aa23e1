/*
 * test_rewrite.c - qualification, [aliases] and rewrite_sender
 * (daemon/rewrite.c), on configurations loaded from text as sendq loads
 * them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "buf.h"
#include "config.h"
#include "mailmsg.h"
#include "rewrite.h"
#include "util.h"
#include "param_rows.h"

#define TEST_SH "[smarthost s]\nhost = smtp.example.com\n"

static struct config *test_cfg;
static struct rewrite test_rw;

static void
test_setup_with(const char *text)
{
	struct sq_err err = { 0 };
	int           rc;

	config_free(test_cfg);
	test_cfg = NULL;
	rc = config_load_string("t.ini", text, &test_cfg, &err);
	cr_assert_eq(rc, 0, "%s", err.msg);
	rewrite_init(&test_rw, test_cfg, "host.example.net");
}

static void
test_teardown(void)
{
	config_free(test_cfg);
	test_cfg = NULL;
}

TestSuite(rewrite, .fini = test_teardown);

/* The recipients addr becomes, joined with ",". */
static char *
test_rcpt(const char *addr)
{
	struct mailmsg_addr_list l = { 0 };
	struct buf               b;
	size_t                   i;

	rewrite_recipient(&test_rw, addr, &l);
	buf_init(&b, 4096);
	for (i = 0; i < l.n; i++) {
		if (i > 0)
			buf_append(&b, ",", 1);
		buf_append_str(&b, l.addrs[i]);
	}
	buf_append(&b, "", 1);
	mailmsg_addr_list_fini(&l);
	return b.data;
}

static void
test_rcpt_is(const char *addr, const char *want)
{
	char *got = test_rcpt(addr);

	cr_assert_str_eq(got, want, "%s -> %s, want %s", addr, got, want);
	free(got);
}

Test(rewrite, bare_local_parts_get_the_host_name_by_default)
{
	test_setup_with(TEST_SH);
	cr_assert_str_eq(test_rw.default_domain, "host.example.net");
	test_rcpt_is("root", "root@host.example.net");
	test_rcpt_is("www-data", "www-data@host.example.net");
	test_rcpt_is("bob@example.org", "bob@example.org");
}

Test(rewrite, default_domain_wins_over_the_host_name)
{
	test_setup_with("[sendq]\ndefault_domain = example.com\n" TEST_SH);
	test_rcpt_is("root", "root@example.com");
	test_rcpt_is("\"a b\"", "\"a b\"@example.com");
	test_rcpt_is("\"a@b\"", "\"a@b\"@example.com");
	test_rcpt_is("\"a@b\"@x.example", "\"a@b\"@x.example");
}

Test(rewrite, qualify_keeps_the_null_sender_and_qualified_addresses)
{
	char *s;

	s = rewrite_qualify("", "example.com");
	cr_assert_str_eq(s, "");
	free(s);
	s = rewrite_qualify("a@b.example", "example.com");
	cr_assert_str_eq(s, "a@b.example");
	free(s);
	cr_assert(rewrite_has_domain("a@b"));
	cr_assert_not(rewrite_has_domain("\"a@b\""));
}

#define TEST_ALIASES \
	"[sendq]\ndefault_domain = example.com\n" TEST_SH "[aliases]\n" \
	"root = ops@example.com\n" \
	"postmaster = root, admin@example.org\n" \
	"cron@special.example = cron-team@example.org\n" \
	"loop = loop\n"

Test(rewrite, alias_matches_bare_default_domain_and_host_name)
{
	test_setup_with(TEST_ALIASES);
	test_rcpt_is("root", "ops@example.com");
	test_rcpt_is("ROOT", "ops@example.com");
	test_rcpt_is("root@example.com", "ops@example.com");
	test_rcpt_is("Root@Host.Example.Net", "ops@example.com");
}

Test(rewrite, alias_does_not_match_other_domains)
{
	test_setup_with(TEST_ALIASES);
	test_rcpt_is("root@elsewhere.example", "root@elsewhere.example");
	test_rcpt_is("rooty", "rooty@example.com");
}

Test(rewrite, alias_is_expanded_one_level_only)
{
	test_setup_with(TEST_ALIASES);
	/* root in the target is qualified, not expanded again */
	test_rcpt_is("postmaster", "root@example.com,admin@example.org");
	test_rcpt_is("loop", "loop@example.com");
}

Test(rewrite, alias_with_a_domain_matches_only_that_address)
{
	test_setup_with(TEST_ALIASES);
	test_rcpt_is("cron@special.example", "cron-team@example.org");
	test_rcpt_is("CRON@SPECIAL.EXAMPLE", "cron-team@example.org");
	test_rcpt_is("cron", "cron@example.com");
}

Test(rewrite, recipient_reports_whether_an_alias_was_used)
{
	struct mailmsg_addr_list l = { 0 };

	test_setup_with(TEST_ALIASES);
	cr_assert_eq(rewrite_recipient(&test_rw, "root", &l), 1);
	cr_assert_eq(rewrite_recipient(&test_rw, "bob@x.example", &l), 0);
	cr_assert_eq(l.n, 2);
	mailmsg_addr_list_fini(&l);
	cr_assert_eq(rewrite_alias_find(&test_rw, "postmaster@example.com"), 1);
	cr_assert_eq(rewrite_alias_find(&test_rw, "nobody@example.com"), -1);
	cr_assert_eq(rewrite_alias_find(&test_rw, "root"), -1);
}

struct test_sender {
	char conf[120];
	char in[64];
	char out[64];
};

ParameterizedTestParameters(rewrite, sender_rewriting)
{
	static struct test_sender cases[] = {
		{ "", "alice@x.example", "alice@x.example" },
		{ "", "alice", "alice@host.example.net" },
		{ "", "", "" },
		{ "rewrite_sender = alerts@example.com\n", "alice@x.example",
		    "alerts@example.com" },
		{ "rewrite_sender = alerts@example.com\n", "root",
		    "alerts@example.com" },
		{ "rewrite_sender = alerts@example.com\n", "", "" },
		{ "rewrite_sender = example.com\n", "alice@x.example",
		    "alice@example.com" },
		{ "rewrite_sender = example.com\n", "www-data",
		    "www-data@example.com" },
		{ "rewrite_sender = example.com\n", "\"a@b\"@x.example",
		    "\"a@b\"@example.com" },
	};

	return cr_make_param_array(struct test_sender, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_sender *c, rewrite, sender_rewriting)
{
	char text[512], *got;

	snprintf(text, sizeof(text), "[sendq]\n%s" TEST_SH, c->conf);
	test_setup_with(text);
	got = rewrite_sender(&test_rw, c->in);
	cr_assert_str_eq(got, c->out, "%s with %s", c->in, c->conf);
	free(got);
}

struct test_from {
	char value[96];
	char orig[48];
	int  rewritten;
	char out[96];
};

ParameterizedTestParameters(rewrite, from_value_follows_the_sender)
{
	static struct test_from cases[] = {
		{ " Alice <alice@x.example>", "alice@x.example", 1,
		    " Alice <alerts@example.com>" },
		{ " \"A <b>\" <alice@x.example> (home)", "alice@x.example", 1,
		    " \"A <b>\" <alerts@example.com> (home)" },
		{ " alice@x.example", "alice@x.example", 1,
		    " alerts@example.com" },
		{ " ALICE@X.EXAMPLE", "alice@x.example", 1,
		    " alerts@example.com" },
		{ " root (Cron Daemon)", "root@host.example.net", 1,
		    " alerts@example.com (Cron Daemon)" },
		{ " Bob <bob@x.example>", "alice@x.example", 0, "" },
		{ " a@x.example, b@x.example", "a@x.example", 0, "" },
		{ " undisclosed:;", "a@x.example", 0, "" },
		{ " <<<", "a@x.example", 0, "" },
		{ " Alice <alice@x.example>", "", 0, "" },
	};

	return cr_make_param_array(struct test_from, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_from *c, rewrite, from_value_follows_the_sender)
{
	char *out = NULL;
	int   rc;

	test_setup_with(
	    "[sendq]\nrewrite_sender = alerts@example.com\n" TEST_SH);
	rc = rewrite_from_value(&test_rw, c->value, strlen(c->value), c->orig,
	    "alerts@example.com", &out);
	cr_assert_eq(rc, c->rewritten, "%s", c->value);
	if (rc) {
		cr_assert_str_eq(out, c->out);
		free(out);
	} else
		cr_assert_null(out);
}

Test(rewrite, from_value_is_kept_when_nothing_changes)
{
	char *out = NULL;

	test_setup_with(TEST_SH);
	cr_assert_eq(rewrite_from_value(&test_rw, " a@x.example", 12,
			 "a@x.example", "A@x.example", &out),
	    0);
	cr_assert_null(out);
}

struct test_qual {
	char value[64];
	int  rewritten;
	char out[64];
};

ParameterizedTestParameters(rewrite, from_value_gets_qualified)
{
	static struct test_qual cases[] = {
		{ " root (Cron Daemon)", 1, " root@example.com (Cron Daemon)" },
		{ " (x) root", 1, " (x) root@example.com" },
		{ " Root <root>", 1, " Root <root@example.com>" },
		{ " root@x.example", 0, "" },
		{ " a, b", 0, "" },
	};

	return cr_make_param_array(struct test_qual, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_qual *c, rewrite, from_value_gets_qualified)
{
	char *out = NULL;
	int   rc;

	test_setup_with("[sendq]\ndefault_domain = example.com\n" TEST_SH);
	rc = rewrite_from_qualify(&test_rw, c->value, strlen(c->value), &out);
	cr_assert_eq(rc, c->rewritten, "%s", c->value);
	if (rc) {
		cr_assert_str_eq(out, c->out);
		free(out);
	} else
		cr_assert_null(out);
}

Test(rewrite, envelope_expands_aliases_rewrites_sender_and_drops_duplicates)
{
	struct envelope *env = envelope_new();

	test_setup_with(TEST_ALIASES);
	envelope_set_sender(env, "www-data");
	envelope_add_rcpt(env, "root");
	envelope_add_rcpt(env, "OPS@example.com");
	envelope_add_rcpt(env, "bob@x.example");
	rewrite_envelope(&test_rw, env);
	cr_assert_str_eq(env->sender, "www-data@example.com");
	cr_assert_eq(env->n_rcpts, 2);
	cr_assert_str_eq(env->rcpts[0], "ops@example.com");
	cr_assert_str_eq(env->rcpts[1], "bob@x.example");
	envelope_free(env);
}
