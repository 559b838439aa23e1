/*
 * test_relay_pool.c - the books of a relay: the rate limit's token
 * bucket, down and resting, connection slots, and the status (JSON read
 * back with json-c: a backslash, a quote and control characters in a
 * relay's name, error and held reason come back as they were).
 */
#include <criterion/criterion.h>

#include <event2/event.h>
#include <json-c/json.h>
#include <string.h>

#include "relay_pool.h"

TestSuite(relay_pool);

static struct event_base      *test_base;
static struct config           test_cfg;
static struct config_smarthost test_sh[2];
static struct relay_pool      *test_pool;

static void
test_setup(void)
{
	struct sq_err err = { 0 };

	memset(&test_cfg, 0, sizeof(test_cfg));
	memset(test_sh, 0, sizeof(test_sh));
	test_sh[0].name = (char *)"main";
	test_sh[0].host = (char *)"mx.example";
	test_sh[0].port = 465;
	test_sh[0].tls = CONFIG_TLS_NONE;
	test_sh[0].max_connections = 2;
	test_sh[0].messages_per_connection = 100;
	test_sh[0].idle_timeout = 5;
	test_sh[0].rate_count = 2; /* 2 per 10 s */
	test_sh[0].rate_seconds = 10;
	test_sh[0].fallback_index = -1;
	test_sh[1] = test_sh[0];
	test_sh[1].name = (char *)"we\\ird \"name\"\x01";
	test_sh[1].rate_count = 0;
	test_cfg.path = (char *)"test.ini";
	test_cfg.smarthosts = test_sh;
	test_cfg.n_smarthosts = 2;
	test_base = event_base_new();
	cr_assert_eq(relay_pool_new(test_base, &test_cfg, &test_cfg, 1000,
			 &test_pool, &err),
	    0, "%s", err.msg);
}

static void
test_teardown(void)
{
	relay_pool_free(test_pool);
	event_base_free(test_base);
}

Test(relay_pool, one_relay_per_smarthost_in_order, .init = test_setup,
    .fini = test_teardown)
{
	cr_assert_eq(test_pool->n, 2);
	cr_assert_eq(test_pool->owner, &test_cfg);
	cr_assert_eq(test_pool->relays[1].index, 1);
	cr_assert_eq(test_pool->relays[1].sh, &test_sh[1]);
	cr_assert_null(test_pool->relays[0].tls);
}

Test(relay_pool, rate_bucket_empties_and_refills, .init = test_setup,
    .fini = test_teardown)
{
	struct relay *r = &test_pool->relays[0];

	cr_assert(relay_rate_take(r, 1000));
	cr_assert(relay_rate_take(r, 1000));
	cr_assert_not(relay_rate_take(r, 1000));
	/* One token comes back every 5 s. */
	cr_assert_eq(relay_rate_wait_ms(r), 5001);
	cr_assert_not(relay_rate_take(r, 5999));
	cr_assert(relay_rate_take(r, 6001));
	/* A long pause fills it to its size (2), no more. */
	cr_assert(relay_rate_take(r, 100000));
	cr_assert(relay_rate_take(r, 100000));
	cr_assert_not(relay_rate_take(r, 100000));
}

Test(relay_pool, no_rate_means_no_limit, .init = test_setup,
    .fini = test_teardown)
{
	struct relay *r = &test_pool->relays[1];
	int           i;

	for (i = 0; i < 1000; i++)
		cr_assert(relay_rate_take(r, 1000));
	cr_assert_eq(relay_rate_wait_ms(r), 0);
}

Test(relay_pool, down_then_up_and_the_probe_time, .init = test_setup,
    .fini = test_teardown)
{
	struct retry_policy pol = { 60, 3600, 86400 };
	struct relay       *r = &test_pool->relays[0];

	relay_mark_down(r, &pol, RETRY_RELAY_DOWN, "refused", "421 busy", 5000,
	    0);
	cr_assert(r->down);
	cr_assert_eq(r->down_count, 1);
	cr_assert_gt(r->down_until, 5000);
	cr_assert_str_eq(r->last_error, "421 busy");
	cr_assert_eq(r->last_error_at, 5000);
	cr_assert_not(relay_probe_due(r, r->down_until - 1));
	cr_assert(relay_probe_due(r, r->down_until));
	relay_mark_down(r, &pol, RETRY_RELAY_REST, "auth-refused",
	    "535 5.7.8 no", 5000, 0);
	cr_assert_eq(r->down_count, 2);
	cr_assert_geq(r->down_until - 5000, RETRY_AUTH_REST);
	relay_mark_up(r);
	cr_assert_not(r->down);
	cr_assert_eq(r->down_count, 0);
	cr_assert_not(relay_probe_due(r, INT64_MAX));
}

Test(relay_pool, slots_fill_up_to_max_connections, .init = test_setup,
    .fini = test_teardown)
{
	struct relay      *r = &test_pool->relays[0];
	struct relay_conn *a, *b;

	a = relay_conn_free_slot(r);
	cr_assert_not_null(a);
	relay_conn_begin(a);
	a->conn = (struct smtp_conn *)(void *)a; /* a token, never used */
	b = relay_conn_free_slot(r);
	cr_assert_neq(a, b);
	relay_conn_begin(b);
	b->conn = (struct smtp_conn *)(void *)b;
	cr_assert_null(relay_conn_free_slot(r));
	cr_assert_eq(r->n_conns, 2);
	cr_assert_null(relay_conn_idle(r));
	relay_conn_set_idle(b);
	cr_assert_eq(relay_conn_idle(r), b);
	b->retire = 1;
	cr_assert_null(relay_conn_idle(r));
	relay_conn_gone(a);
	relay_conn_gone(b);
	cr_assert_eq(r->n_conns, 0);
	cr_assert_eq(relay_conn_free_slot(r), &r->conns[0]);
}

Test(relay_pool, reload_refuses_a_changed_list, .init = test_setup,
    .fini = test_teardown)
{
	/* Static: after the reload the pool points into sh2 until the
	 * teardown frees it (on the stack, relay_pool_free read the test's
	 * dead frame: an overflow or a leak in the .fini, which Criterion
	 * does not count). */
	static struct config           cfg2;
	static struct config_smarthost sh2[2];
	struct sq_err                  err = { 0 };

	cfg2 = test_cfg;
	memcpy(sh2, test_sh, sizeof(sh2));
	cfg2.smarthosts = sh2;
	sh2[1].max_connections = 3;
	cr_assert_eq(relay_pool_reconfigure(test_pool, &cfg2, 2000, &err),
	    SQ_ECONFIG);
	cr_assert(strstr(err.msg, "max_connections") != NULL, "%s", err.msg);
	cr_assert_eq(test_pool->relays[1].sh, &test_sh[1]);
	sh2[1].max_connections = 2;
	relay_mark_down(&test_pool->relays[0],
	    &(struct retry_policy){ 60, 60, 60 }, RETRY_RELAY_DOWN, "x", "421",
	    1, 0);
	cr_assert_eq(relay_pool_reconfigure(test_pool, &cfg2, 2000, &err), 0);
	cr_assert_eq(test_pool->relays[1].sh, &sh2[1]);
	cr_assert_not(test_pool->relays[0].down); /* a fresh start */
}

/* The status JSON of relay 1 read back by json-c. */
static struct json_object *
test_status(const char *held)
{
	struct json_object *o;
	struct json_write   w;
	struct buf          b;

	buf_init(&b, 65536);
	json_write_init(&w, &b);
	relay_status_json(&test_pool->relays[1], held ? "held" : "down", held,
	    7, 3, &w);
	cr_assert_eq(json_write_finish(&w), 0);
	cr_assert_eq(buf_append(&b, "", 1), 0);
	o = json_tokener_parse(b.data);
	cr_assert_not_null(o, "not JSON: %s", b.data);
	buf_fini(&b);
	return o;
}

static const char *
test_get(struct json_object *o, const char *key)
{
	struct json_object *v;

	cr_assert(json_object_object_get_ex(o, key, &v), "no %s", key);
	return json_object_get_string(v);
}

Test(relay_pool, status_json_round_trips_backslash_quote_and_controls,
    .init = test_setup, .fini = test_teardown)
{
	static const char   error[] = "550 C:\\path \"quoted\" \x01\x1f\t end";
	static const char   why[] = "grant \\ \"revoked\"\n\x02";
	struct relay       *r = &test_pool->relays[1];
	struct json_object *o;

	relay_note_error(r, error, 1700000000);
	o = test_status(why);
	cr_expect_str_eq(test_get(o, "name"), test_sh[1].name);
	cr_expect_str_eq(test_get(o, "last_error"), error);
	cr_expect_str_eq(test_get(o, "last_error_at"), "2023-11-14T22:13:20Z");
	cr_expect_str_eq(test_get(o, "held_reason"), why);
	cr_expect_str_eq(test_get(o, "state"), "held");
	cr_expect_str_eq(test_get(o, "queued"), "7");
	cr_expect_str_eq(test_get(o, "due"), "3");
	cr_expect_str_eq(test_get(o, "max_connections"), "2");
	json_object_put(o);
	/* Not held: no held_reason, no fix. */
	o = test_status(NULL);
	cr_expect_not(json_object_object_get_ex(o, "held_reason", NULL));
	cr_expect_not(json_object_object_get_ex(o, "fix", NULL));
	cr_expect_str_eq(test_get(o, "state"), "down");
	json_object_put(o);
}

Test(relay_pool, status_text_quotes_the_error_as_before, .init = test_setup,
    .fini = test_teardown)
{
	struct relay *r = &test_pool->relays[1];
	struct buf    b;

	relay_note_error(r, "550 \"bad\"\x01", 0);
	buf_init(&b, 65536);
	relay_status_text(r, "DOWN", NULL, 1, 0, &b);
	cr_assert_eq(buf_append(&b, "", 1), 0);
	cr_expect(strstr(b.data, "last error: 550 'bad'?") != NULL, "%s",
	    b.data);
	buf_fini(&b);
}
