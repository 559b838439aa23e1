/*
 * test_route.c - globs and the choice of a smarthost (daemon/route.c).
 *
 * The configs are built by hand (only the fields route.c reads), so these
 * tests do not depend on the parser; one test also goes through
 * config_load_string() to check that the two agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "route.h"
#include "util.h"
#include "param_rows.h"

TestSuite(route);

/* --- globs --------------------------------------------------------------- */

/* Criterion runs each parameter in a fresh process: strings are held in
 * arrays, never as pointers into this image. */
struct test_glob {
	char glob[32];
	char addr[32];
	int  match;
};

ParameterizedTestParameters(route, glob_table)
{
	static struct test_glob params[] = {
		/* exact, whole address */
		{ "alice@example.com", "alice@example.com", 1 },
		{ "alice@example.com", "alice@example.co", 0 },
		{ "alice@example.com", "xalice@example.com", 0 },
		{ "alice@example.com", "alice@example.com.evil", 0 },
		/* case-insensitive */
		{ "Alice@Example.COM", "alice@example.com", 1 },
		{ "alice@example.com", "ALICE@EXAMPLE.COM", 1 },
		{ "EXAMPLE.com", "bob@example.COM", 1 },
		/* '*' */
		{ "*@example.com", "bob@example.com", 1 },
		{ "*@example.com", "@example.com", 1 },
		{ "*@example.com", "bob@sub.example.com", 0 },
		{ "*@*", "a@b", 1 },
		{ "*@*", "nodomain", 0 },
		{ "alerts-*@*", "alerts-disk@host.example", 1 },
		{ "alerts-*@*", "alert@host.example", 0 },
		{ "a*b*c@x", "abc@x", 1 },
		{ "a*b*c@x", "a123b456c@x", 1 },
		{ "a*b*c@x", "a123c456b@x", 0 },
		{ "**@x", "q@x", 1 },
		/* '?' */
		{ "???@example.com", "bob@example.com", 1 },
		{ "???@example.com", "bo@example.com", 0 },
		{ "???@example.com", "bobby@example.com", 0 },
		{ "b?b@*", "bxb@y", 1 },
		/* domain-only: against the text after the last '@' */
		{ "example.com", "bob@example.com", 1 },
		{ "example.com", "bob@sub.example.com", 0 },
		{ "example.com", "example.com", 0 },
		{ "example.com", "\"a@b\"@example.com", 1 },
		{ "example.com", "bob@example.com@other.org", 0 },
		{ "*.example.org", "x@mail.example.org", 1 },
		{ "*.example.org", "x@a.b.example.org", 1 },
		{ "*.example.org", "x@example.org", 0 },
		{ "*.example.org", "x@badexample.org", 0 },
		{ "*", "x@anything.example", 1 },
		{ "*", "x@", 1 },
		{ "?", "x@", 0 },
		/* the null sender and addresses without a domain */
		{ "*", "", 0 },
		{ "*@*", "", 0 },
		{ "example.com", "", 0 },
		{ "*", "root", 0 },
		/* no special meaning for other characters */
		{ "a.b@x", "aXb@x", 0 },
		{ "[ab]@x", "a@x", 0 },
		{ "[ab]@x", "[ab]@x", 1 },
	};

	return cr_make_param_array(struct test_glob, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_glob *t, route, glob_table)
{
	cr_assert_eq(route_glob_match(t->glob, t->addr), t->match,
	    "glob \"%s\" addr \"%s\"", t->glob, t->addr);
}

Test(route, null_arguments_never_match)
{
	cr_assert_not(route_glob_match(NULL, "a@b"));
	cr_assert_not(route_glob_match("*", NULL));
}

/*
 * A recursive matcher needs exponential time here: each '*' may take any
 * number of 'a's and only the final 'b' fails.  The iterative one needs at
 * most strlen(glob) * strlen(text) steps; the timeout catches a blow-up.
 */
Test(route, pathological_glob_on_a_long_address_is_fast, .timeout = 10)
{
	size_t n = 20000, i;
	char  *addr;

	addr = xmalloc(n + 16);
	memset(addr, 'a', n);
	strcpy(addr + n, "@example.com");
	for (i = 0; i < 50; i++) {
		cr_assert_not(
		    route_glob_match("*a*a*a*a*a*b@example.com", addr));
		cr_assert_not(route_glob_match("*a*a*a*a*a*b*", addr));
	}
	cr_assert(route_glob_match("*a*a*a*a*a*@example.com", addr));
	free(addr);
}

/* --- route_pick ---------------------------------------------------------- */

#define TEST_NHOSTS 6

static struct config           test_cfg;
static struct config_smarthost test_hosts[TEST_NHOSTS];

/* A config of n smarthosts with names h0, h1, ... and no match_ keys. */
static void
test_config(size_t n)
{
	static char names[TEST_NHOSTS][8];
	size_t      i;

	memset(&test_cfg, 0, sizeof(test_cfg));
	memset(test_hosts, 0, sizeof(test_hosts));
	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "h%zu", i);
		test_hosts[i].name = names[i];
		test_hosts[i].fallback_index = -1;
	}
	test_cfg.smarthosts = test_hosts;
	test_cfg.n_smarthosts = n;
}

static char *test_alerts[] = { "alerts@*", "monitor-*@ops.example", NULL };
static char *test_corp[] = { "corp.example", "*.corp.example", NULL };
static char *test_vip[] = { "boss@corp.example", NULL };

Test(route, a_lone_smarthost_without_match_takes_everything)
{
	test_config(1);
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "c@d.example"), 0);
	cr_assert_eq(route_pick(&test_cfg, "", "c@d.example"), 0);
}

Test(route, sender_only_condition)
{
	test_config(2);
	test_hosts[1].match_sender = test_alerts;
	cr_assert_eq(
	    route_pick(&test_cfg, "alerts@web1.example", "ops@x.example"), 1);
	cr_assert_eq(route_pick(&test_cfg, "monitor-disk@ops.example",
			 "anyone@y.example"),
	    1);
	cr_assert_eq(
	    route_pick(&test_cfg, "alice@web1.example", "ops@x.example"), 0);
	/* the recipient plays no part */
	cr_assert_eq(
	    route_pick(&test_cfg, "bob@x.example", "alerts@web1.example"), 0);
}

Test(route, recipient_only_condition)
{
	test_config(2);
	test_hosts[0].match_recipient = test_corp;
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "x@corp.example"), 0);
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "x@eu.corp.example"),
	    0);
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "x@other.example"),
	    1);
	cr_assert_eq(route_pick(&test_cfg, "x@corp.example", "x@other.example"),
	    1);
}

Test(route, both_conditions_must_hold)
{
	test_config(2);
	test_hosts[0].match_sender = test_alerts;
	test_hosts[0].match_recipient = test_corp;
	cr_assert_eq(
	    route_pick(&test_cfg, "alerts@h.example", "ops@corp.example"), 0);
	cr_assert_eq(
	    route_pick(&test_cfg, "alerts@h.example", "ops@else.example"), 1);
	cr_assert_eq(
	    route_pick(&test_cfg, "alice@h.example", "ops@corp.example"), 1);
}

Test(route, first_match_in_file_order_wins)
{
	test_config(4);
	test_hosts[1].match_recipient = test_vip;
	test_hosts[2].match_recipient = test_corp;
	test_hosts[3].match_recipient = test_vip;
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "boss@corp.example"),
	    1);
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "staff@corp.example"),
	    2);
	/* order reversed: the broader rule now comes first and wins */
	test_hosts[1].match_recipient = test_corp;
	test_hosts[2].match_recipient = test_vip;
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "boss@corp.example"),
	    1);
}

Test(route, default_is_the_first_smarthost_without_match_keys)
{
	test_config(5);
	test_hosts[0].match_sender = test_alerts;
	test_hosts[1].match_recipient = test_corp;
	/* h2 and h4 have no match_ keys: h2 is the default */
	test_hosts[3].match_sender = test_alerts;
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "c@d.example"), 2);
	cr_assert_eq(route_pick(&test_cfg, "", "c@d.example"), 2);
}

Test(route, a_default_earlier_in_the_file_does_not_shadow_a_match)
{
	test_config(3);
	test_hosts[1].match_sender = test_alerts;
	test_hosts[2].match_recipient = test_corp;
	cr_assert_eq(route_pick(&test_cfg, "alerts@x.example", "c@d.example"),
	    1);
	cr_assert_eq(route_pick(&test_cfg, "a@x.example", "c@corp.example"), 2);
	cr_assert_eq(route_pick(&test_cfg, "a@x.example", "c@d.example"), 0);
}

Test(route, no_match_and_no_default_is_minus_one)
{
	test_config(2);
	test_hosts[0].match_sender = test_alerts;
	test_hosts[1].match_recipient = test_corp;
	cr_assert_eq(route_pick(&test_cfg, "a@b.example", "c@d.example"), -1);
	cr_assert_eq(route_pick(&test_cfg, "alerts@b.example", "c@d.example"),
	    0);
}

Test(route, the_null_sender_matches_no_sender_glob)
{
	static char *any[] = { "*", "*@*", NULL };

	test_config(2);
	test_hosts[0].match_sender = any;
	cr_assert_eq(route_pick(&test_cfg, "", "c@d.example"), 1);
	cr_assert_eq(route_pick(&test_cfg, "x@y", "c@d.example"), 0);
}

Test(route, empty_config_and_null_arguments)
{
	test_config(0);
	cr_assert_eq(route_pick(&test_cfg, "a@b", "c@d"), -1);
	cr_assert_eq(route_pick(NULL, "a@b", "c@d"), -1);
	test_config(1);
	cr_assert_eq(route_pick(&test_cfg, NULL, NULL), 0);
}

Test(route, agrees_with_the_parsed_config)
{
	struct config *cfg = NULL;
	struct sq_err  err;

	cr_assert_eq(
	    config_load_string("t.ini",
		"[smarthost main]\nhost = main.example\n[smarthost "
		"alerts]\nhost = alerts.example\nmatch_sender = alerts@* "
		"*@monitoring.example\nfallback = main\n[smarthost corp]\nhost "
		"= corp.example\nmatch_recipient = *.corp.example "
		"corp.example\n",
		&cfg, &err),
	    0, "%s", err.msg);
	cr_assert_eq(route_pick(cfg, "alerts@web.example", "x@y.example"), 1);
	cr_assert_eq(route_pick(cfg, "n@monitoring.example", "x@y.example"), 1);
	cr_assert_eq(route_pick(cfg, "a@b.example", "x@EU.Corp.Example"), 2);
	cr_assert_eq(route_pick(cfg, "a@b.example", "x@y.example"), 0);
	cr_assert_eq(cfg->smarthosts[1].fallback_index, 0);
	config_free(cfg);
}
