/*
 * test_queue_view.c - the read-only queue listing (mailq, sendqctl
 * list/show) over a temporary spool written with spool_writer.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "queue_view.h"
#include "spool.h"
#include "param_rows.h"

static char          test_root[64];
static char          test_dir[128];
static struct spool *test_sp;
static struct buf    test_out;

static void
test_setup(void)
{
	struct sq_err err = { 0 };

	strcpy(test_root, "/tmp/sendq-test-qview.XXXXXX");
	cr_assert_not_null(mkdtemp(test_root));
	snprintf(test_dir, sizeof(test_dir), "%s/spool", test_root);
	cr_assert_eq(spool_open(test_dir, 1, &test_sp, &err), 0, "%s", err.msg);
	buf_init(&test_out, QUEUE_VIEW_OUT_MAX);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
test_teardown(void)
{
	spool_close(test_sp);
	buf_fini(&test_out);
	nftw(test_root, test_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(queue_view, .init = test_setup, .fini = test_teardown);

/*
 * The view reads the clock itself (time(NULL) in queue_view_list), so a
 * test does not know its "now", only that it lies between a time read
 * before the call and one read after: test_clock_{begin,end} take them,
 * and test_expect_age accepts exactly the texts queue_view_age gives for
 * those nows (however loaded the machine, never "9m" for "10m").
 */
static int64_t test_t0, test_t1;

static void
test_clock_begin(void)
{
	test_t0 = (int64_t)time(NULL);
}

static void
test_clock_end(void)
{
	test_t1 = (int64_t)time(NULL);
}

/* Some now in [test_t0, test_t1] gives pre, queue_view_age(t - now)
 * (sign -1: now - t), post, and the output has that text. */
static void
test_expect_age(const char *out, const char *pre, const char *post, int64_t t,
    int sign)
{
	char    age[32], want[128];
	int64_t now;

	for (now = test_t0; now <= test_t1; now++) {
		queue_view_age(age, sizeof(age),
		    (long long)(sign > 0 ? t - now : now - t));
		snprintf(want, sizeof(want), "%s%s%s", pre, age, post);
		if (strstr(out, want) != NULL)
			return;
	}
	cr_expect_fail(
	    "no \"%sAGE%s\" for a now in [%lld, %lld] (t %lld) in:\n%s", pre,
	    post, (long long)test_t0, (long long)test_t1, (long long)t, out);
}

/* The same for a JSON listing: "age":N, with N = now - created for some
 * now in [test_t0, test_t1] (300 s after test_queue, or more when the
 * clock ticked in between). */
static void
test_expect_json_age(const char *out, int64_t created)
{
	char    want[64];
	int64_t now;

	for (now = test_t0; now <= test_t1; now++) {
		snprintf(want, sizeof(want), "\"age\":%lld,",
		    (long long)(now - created));
		if (strstr(out, want) != NULL)
			return;
	}
	cr_expect_fail("no \"age\":AGE, for a now in [%lld, %lld] (created "
		       "%lld) in:\n%s",
	    (long long)test_t0, (long long)test_t1, (long long)created, out);
}

/* Queue a message; returns its id in id (ENVELOPE_ID_MAX bytes). */
static int64_t test_created; /* of the last test_queue() */

static void
test_queue(const char *sender, const char *rcpt, const char *text, char *id)
{
	struct spool_writer *w;
	struct envelope     *env;
	struct sq_err        err = { 0 };

	cr_assert_eq(spool_writer_begin(test_sp, &w, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_writer_write(w, text, strlen(text), &err), 0);
	env = envelope_new();
	envelope_set_sender(env, sender);
	envelope_add_rcpt(env, rcpt);
	env->created = test_created = (int64_t)time(NULL) - 300;
	cr_assert_eq(spool_writer_commit(w, env, &err), 0, "%s", err.msg);
	strcpy(id, env->id);
	envelope_free(env);
}

static int64_t test_next; /* next_attempt of the last test_update() */

/* Change the envelope of id: attempts, held, last_error. */
static void
test_update(const char *id, unsigned attempts, int held, const char *error)
{
	struct envelope *env;
	struct sq_err    err = { 0 };

	cr_assert_eq(spool_load_envelope(test_sp, id, &env, &err), 0, "%s",
	    err.msg);
	env->attempts = attempts;
	env->held = held;
	env->next_attempt = test_next = (int64_t)time(NULL) + 600;
	envelope_set_error(env, error);
	cr_assert_eq(spool_update_envelope(test_sp, env, &err), 0, "%s",
	    err.msg);
	envelope_free(env);
}

/* The output as a C string. */
static const char *
test_text(void)
{
	cr_assert_eq(buf_append(&test_out, "", 1), 0);
	test_out.len--;
	return test_out.data;
}

static void
test_list(int json)
{
	struct sq_err err = { 0 };

	test_clock_begin();
	cr_assert_eq(queue_view_list(test_dir, QUEUE_VIEW_ALL_UIDS, json, NULL,
			 NULL, &test_out, &err),
	    0, "%s", err.msg);
	test_clock_end();
}

static const char test_msg[] = "From: Alice <alice@example.org>\r\nSubject: "
			       "hello\r\n\r\nBody-Line: not a header\r\n";

Test(queue_view, text_list_shows_id_size_sender_recipient_state_and_total)
{
	char id[ENVELOPE_ID_MAX], size[32];

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_list(0);
	snprintf(size, sizeof(size), " %zu ", strlen(test_msg));
	cr_expect_not_null(strstr(test_text(), id));
	cr_expect_not_null(strstr(test_text(), size), "%s", test_text());
	cr_expect_not_null(strstr(test_text(), "alice@example.org"));
	cr_expect_not_null(strstr(test_text(), "bob@example.net"));
	cr_expect_not_null(strstr(test_text(), " queued "));
	test_expect_age(test_text(), " ", " ", test_created, -1);
	cr_expect_not_null(strstr(test_text(), "-- 1 KiB in 1 message.\n"));
}

Test(queue_view, text_list_is_oldest_first)
{
	char a[ENVELOPE_ID_MAX], b[ENVELOPE_ID_MAX];

	test_queue("first@example.org", "x@example.net", test_msg, a);
	test_queue("second@example.org", "y@example.net", test_msg, b);
	test_list(0);
	cr_assert_not_null(strstr(test_text(), a));
	cr_assert_not_null(strstr(test_text(), b));
	cr_expect_lt(strstr(test_text(), a), strstr(test_text(), b));
	cr_expect_not_null(strstr(test_text(), "in 2 messages."));
}

Test(queue_view, null_sender_is_shown_as_angle_brackets)
{
	char id[ENVELOPE_ID_MAX];

	test_queue("", "bob@example.net", test_msg, id);
	test_list(0);
	cr_expect_not_null(strstr(test_text(), "  <>\n"), "%s", test_text());
}

Test(queue_view, deferred_message_shows_attempts_and_last_error)
{
	char id[ENVELOPE_ID_MAX];

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_update(id, 3, 0, "451 4.3.0 try later");
	test_list(0);
	cr_expect_not_null(strstr(test_text(), " deferred "));
	test_expect_age(test_text(), "attempts 3, next attempt in ", "",
	    test_next, 1);
	cr_expect_not_null(strstr(test_text(), "(451 4.3.0 try later)"));
}

/* The texts the tests above expect, from fixed times (no clock). */
Test(queue_view, ages_are_whole_units_rounded_down)
{
	static const struct {
		long long   secs;
		const char *want;
	} cases[] = {
		{ -5, "0s" },
		{ 0, "0s" },
		{ 119, "119s" },
		{ 120, "2m" },
		{ 300, "5m" },
		{ 359, "5m" },
		{ 599, "9m" },
		{ 600, "10m" },
		{ 7199, "119m" },
		{ 7200, "2h" },
		{ 2 * 86400 - 1, "47h" },
		{ 2 * 86400, "2d" },
	};
	char   age[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		queue_view_age(age, sizeof(age), cases[i].secs);
		cr_expect_str_eq(age, cases[i].want, "%lld s", cases[i].secs);
	}
}

Test(queue_view, held_message_has_state_held)
{
	char id[ENVELOPE_ID_MAX];

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_update(id, 1, 1, NULL);
	test_list(0);
	cr_expect_not_null(strstr(test_text(), " held "), "%s", test_text());
	cr_expect_not_null(strstr(test_text(), "next attempt on hold"));
	buf_fini(&test_out);
	buf_init(&test_out, QUEUE_VIEW_OUT_MAX);
	test_list(1);
	cr_expect_not_null(strstr(test_text(), "\"state\":\"held\""));
}

static int
test_is_active(void *arg, const char *id)
{
	return strcmp(arg, id) == 0;
}

Test(queue_view, message_the_daemon_delivers_now_is_active)
{
	char          a[ENVELOPE_ID_MAX], b[ENVELOPE_ID_MAX];
	struct sq_err err = { 0 };

	test_queue("alice@example.org", "x@example.net", test_msg, a);
	test_queue("alice@example.org", "y@example.net", test_msg, b);
	test_update(b, 0, 1, NULL); /* active wins over held */
	cr_assert_eq(queue_view_list(test_dir, QUEUE_VIEW_ALL_UIDS, 1,
			 test_is_active, b, &test_out, &err),
	    0, "%s", err.msg);
	cr_expect_not_null(strstr(test_text(), "\"state\":\"queued\""));
	cr_expect_not_null(strstr(test_text(), "\"state\":\"active\""));
	cr_expect_lt(strstr(test_text(), "\"state\":\"queued\""),
	    strstr(test_text(), "\"state\":\"active\""));
}

Test(queue_view, json_list_has_every_field)
{
	char id[ENVELOPE_ID_MAX], *want;

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_update(id, 2, 0, "451 busy");
	test_list(1);
	cr_expect_eq(test_text()[0], '[');
	cr_expect_not_null(strstr(test_text(), "]\n"));
	want = xasprintf("{\"id\":\"%s\",\"size\":%zu,", id, strlen(test_msg));
	cr_expect_not_null(strstr(test_text(), want), "%s", test_text());
	free(want);
	test_expect_json_age(test_text(), test_created);
	cr_expect_not_null(
	    strstr(test_text(), "\"sender\":\"alice@example.org\""));
	cr_expect_not_null(
	    strstr(test_text(), "\"recipients\":[\"bob@example.net\"]"));
	cr_expect_not_null(strstr(test_text(), "\"state\":\"deferred\""));
	cr_expect_not_null(strstr(test_text(), "\"attempts\":2,"));
	cr_expect_not_null(strstr(test_text(), "\"next_attempt\":"));
	cr_expect_not_null(strstr(test_text(), "\"last_error\":\"451 busy\""));
}

Test(queue_view, json_escapes_quotes_and_backslashes_of_last_error)
{
	char id[ENVELOPE_ID_MAX];

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_update(id, 1, 0, "550 \"no\" C:\\path");
	test_list(1);
	cr_expect_not_null(
	    strstr(test_text(), "\"last_error\":\"550 \\\"no\\\" C:\\\\path\""),
	    "%s", test_text());
}

Test(queue_view, json_last_error_is_null_when_there_is_none)
{
	char id[ENVELOPE_ID_MAX];

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_list(1);
	cr_expect_not_null(strstr(test_text(), "\"last_error\":null"));
}

/* Arrays, not pointers: Criterion may run the test in a new process. */
struct test_json_case {
	char   in[8];
	size_t len;
	char   out[40];
};

ParameterizedTestParameters(queue_view, json_string_escapes)
{
	static struct test_json_case cases[] = {
		{ "plain", 5, "\"plain\"" },
		{ "q\"b\\", 4, "\"q\\\"b\\\\\"" },
		{ "a\nb\rc\td", 7, "\"a\\nb\\rc\\td\"" },
		{ "\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"" },
		{ "nul\0x", 5, "\"nul\\u0000x\"" },
		{ "h\xc3\xa9", 3, "\"h\xc3\xa9\"" }, /* valid UTF-8 */
		{ "\xe2\x82\xac", 3, "\"\xe2\x82\xac\"" },
		{ "\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"" },
		{ "\xff", 1, "\"\\ufffd\"" },            /* invalid */
		{ "\xc3", 1, "\"\\ufffd\"" },            /* truncated */
		{ "\xc0\xaf", 2, "\"\\ufffd\\ufffd\"" }, /* overlong */
		{ "\xed\xa0\x80", 3,
		    "\"\\ufffd\\ufffd\\ufffd\"" }, /* surrogate */
		{ "", 0, "\"\"" },
	};

	return cr_make_param_array(struct test_json_case, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_json_case *c, queue_view, json_string_escapes)
{
	struct buf b;

	buf_init(&b, 256);
	cr_assert_eq(queue_view_json_string(&b, c->in, c->len), 0);
	cr_assert_eq(buf_append(&b, "", 1), 0);
	cr_expect_str_eq(b.data, c->out);
	buf_fini(&b);
}

Test(queue_view, text_list_makes_outside_text_printable)
{
	char id[ENVELOPE_ID_MAX];

	test_queue("alice@example.org", "b\xc3\xa9@example.net", test_msg, id);
	test_list(0);
	cr_expect_not_null(strstr(test_text(), "b??@example.net"), "%s",
	    test_text());
}

Test(queue_view, empty_queue)
{
	test_list(0);
	cr_expect_str_eq(test_text(), "Mail queue is empty\n");
	buf_fini(&test_out);
	buf_init(&test_out, QUEUE_VIEW_OUT_MAX);
	test_list(1);
	cr_expect_str_eq(test_text(), "[]\n");
}

Test(queue_view, list_of_a_missing_spool_is_enoent)
{
	struct sq_err err = { 0 };
	char         *dir = xasprintf("%s/nonexistent", test_root);

	cr_expect_eq(queue_view_list(dir, QUEUE_VIEW_ALL_UIDS, 0, NULL, NULL,
			 &test_out, &err),
	    -ENOENT);
	cr_expect_neq(err.msg[0], '\0');
	free(dir);
}

Test(queue_view, output_beyond_the_buffer_maximum_is_elimit)
{
	char          id[ENVELOPE_ID_MAX];
	struct sq_err err = { 0 };

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	buf_fini(&test_out);
	buf_init(&test_out, 40);
	cr_expect_eq(queue_view_list(test_dir, QUEUE_VIEW_ALL_UIDS, 0, NULL,
			 NULL, &test_out, &err),
	    SQ_ELIMIT);
	cr_expect_leq(test_out.len, 40);
}

Test(queue_view, show_text_has_envelope_and_header_but_not_body)
{
	char          id[ENVELOPE_ID_MAX];
	struct sq_err err = { 0 };

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_update(id, 4, 0, "421 closing");
	cr_assert_eq(queue_view_show(test_dir, id, QUEUE_VIEW_ALL_UIDS, 0, NULL,
			 NULL, &test_out, &err),
	    0, "%s", err.msg);
	cr_expect_not_null(strstr(test_text(), id));
	cr_expect_not_null(strstr(test_text(), "state:        deferred\n"));
	cr_expect_not_null(
	    strstr(test_text(), "recipient:    bob@example.net\n"));
	cr_expect_not_null(strstr(test_text(), "attempts:     4\n"));
	cr_expect_not_null(strstr(test_text(), "last error:   421 closing\n"));
	cr_expect_not_null(strstr(test_text(), "\nSubject: hello\n"), "%s",
	    test_text());
	cr_expect_null(strchr(test_text(), '\r'));
	cr_expect_null(strstr(test_text(), "Body-Line"));
}

Test(queue_view, show_json_has_headers_and_flags)
{
	char          id[ENVELOPE_ID_MAX];
	struct sq_err err = { 0 };

	test_queue("alice@example.org", "bob@example.net", test_msg, id);
	test_update(id, 1, 1, NULL);
	cr_assert_eq(queue_view_show(test_dir, id, QUEUE_VIEW_ALL_UIDS, 1, NULL,
			 NULL, &test_out, &err),
	    0, "%s", err.msg);
	cr_expect_eq(test_text()[0], '{');
	cr_expect_not_null(strstr(test_text(), "\"held\":true"));
	cr_expect_not_null(strstr(test_text(), "\"state\":\"held\""));
	cr_expect_not_null(
	    strstr(test_text(),
		"\"headers\":\"From: Alice "
		"<alice@example.org>\\r\\nSubject: hello\\r\\n\"}"),
	    "%s", test_text());
}

Test(queue_view, show_of_a_long_header_is_truncated)
{
	char          id[ENVELOPE_ID_MAX];
	struct sq_err err = { 0 };
	char         *msg;
	size_t        n = QUEUE_VIEW_HEADER_MAX + 100;

	msg = xmalloc(n + 1);
	memcpy(msg, "X-Long: ", 8);
	memset(msg + 8, 'a', n - 8);
	msg[n] = '\0';
	test_queue("alice@example.org", "bob@example.net", msg, id);
	free(msg);
	cr_assert_eq(queue_view_show(test_dir, id, QUEUE_VIEW_ALL_UIDS, 1, NULL,
			 NULL, &test_out, &err),
	    0, "%s", err.msg);
	cr_expect_not_null(strstr(test_text(), "\"headers_truncated\":true"));
}

Test(queue_view, show_of_an_unknown_id_is_enotfound)
{
	struct sq_err err = { 0 };

	cr_expect_eq(queue_view_show(test_dir, "0123456789ABCDEF012",
			 QUEUE_VIEW_ALL_UIDS, 0, NULL, NULL, &test_out, &err),
	    SQ_ENOTFOUND);
	cr_expect_not_null(strstr(err.msg, "0123456789ABCDEF012"));
	cr_expect_eq(queue_view_show(test_dir, "../../etc/passwd",
			 QUEUE_VIEW_ALL_UIDS, 0, NULL, NULL, &test_out, &err),
	    SQ_ENOTFOUND);
	cr_expect_eq(test_out.len, 0);
}

Test(queue_view, request_to_a_missing_socket_is_enoent)
{
	struct sq_err err = { 0 };
	char         *path = xasprintf("%s/no.sock", test_root);

	cr_expect_eq(queue_view_request(path, "list", 5, &test_out, &err),
	    -ENOENT);
	cr_expect_not_null(strstr(err.msg, path));
	free(path);
}

/* --- filtered by uid (issue 10) ---------------------------------------- */

/* Queue a message owned by uid. */
static void
test_queue_uid(long uid, const char *sender, const char *subject, char *id)
{
	struct spool_writer *w;
	struct envelope     *env;
	struct sq_err        err = { 0 };
	char                 text[256];

	snprintf(text, sizeof(text), "Subject: %s\r\n\r\nbody\r\n", subject);
	cr_assert_eq(spool_writer_begin(test_sp, &w, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_writer_write(w, text, strlen(text), &err), 0);
	env = envelope_new();
	envelope_set_sender(env, sender);
	envelope_add_rcpt(env, "rcpt@example.net");
	env->uid = uid;
	env->created = (int64_t)time(NULL) - 60;
	cr_assert_eq(spool_writer_commit(w, env, &err), 0, "%s", err.msg);
	strcpy(id, env->id);
	envelope_free(env);
}

Test(queue_view, list_filtered_shows_only_that_uids_messages)
{
	char a[ENVELOPE_ID_MAX], b[ENVELOPE_ID_MAX], c[ENVELOPE_ID_MAX];
	struct sq_err err = { 0 };
	const char   *out;

	test_queue_uid(1001, "alice@example.org", "one", a);
	test_queue_uid(1002, "bob@example.org", "two", b);
	test_queue_uid(1001, "alice@example.org", "three", c);
	cr_assert_eq(
	    queue_view_list(test_dir, 1001, 0, NULL, NULL, &test_out, &err), 0,
	    "%s", err.msg);
	out = test_text();
	cr_expect_not_null(strstr(out, a));
	cr_expect_not_null(strstr(out, c));
	cr_expect_null(strstr(out, b));
	cr_expect_null(strstr(out, "bob@example.org"));
	cr_expect_not_null(strstr(out, "in 2 messages."), "%s", out);

	test_out.len = 0;
	cr_assert_eq(
	    queue_view_list(test_dir, 1002, 1, NULL, NULL, &test_out, &err), 0,
	    "%s", err.msg);
	out = test_text();
	cr_expect_not_null(strstr(out, b));
	cr_expect_null(strstr(out, a));
	cr_expect_null(strstr(out, c));

	test_out.len = 0;
	cr_assert_eq(
	    queue_view_list(test_dir, 4242, 0, NULL, NULL, &test_out, &err), 0,
	    "%s", err.msg);
	cr_expect_str_eq(test_text(), "Mail queue is empty\n");

	test_out.len = 0;
	cr_assert_eq(queue_view_list(test_dir, QUEUE_VIEW_ALL_UIDS, 0, NULL,
			 NULL, &test_out, &err),
	    0, "%s", err.msg);
	out = test_text();
	cr_expect_not_null(strstr(out, a));
	cr_expect_not_null(strstr(out, b));
	cr_expect_not_null(strstr(out, c));
}

Test(queue_view, show_of_another_uids_message_reads_like_a_missing_one)
{
	char          mine[ENVELOPE_ID_MAX], theirs[ENVELOPE_ID_MAX];
	char          missing[ENVELOPE_ID_MAX], want[128];
	struct sq_err err = { 0 }, err2 = { 0 };
	int           json;

	test_queue_uid(1001, "alice@example.org", "mine", mine);
	test_queue_uid(1002, "bob@example.org", "theirs", theirs);
	/* An id of the same shape that is not queued. */
	strcpy(missing, theirs);
	missing[strlen(missing) - 1] = missing[strlen(missing) - 1] == '0' ?
	    '1' :
	    '0';
	for (json = 0; json <= 1; json++) {
		test_out.len = 0;
		cr_assert_eq(queue_view_show(test_dir, mine, 1001, json, NULL,
				 NULL, &test_out, &err),
		    0, "%s", err.msg);
		cr_expect_not_null(strstr(test_text(), "Subject: mine"));

		test_out.len = 0;
		memset(&err, 0, sizeof(err));
		cr_expect_eq(queue_view_show(test_dir, theirs, 1001, json, NULL,
				 NULL, &test_out, &err),
		    SQ_ENOTFOUND);
		snprintf(want, sizeof(want), "no message %s", theirs);
		cr_expect_str_eq(err.msg, want);
		cr_expect_eq(test_out.len, 0);

		memset(&err2, 0, sizeof(err2));
		cr_expect_eq(queue_view_show(test_dir, missing, 1001, json,
				 NULL, NULL, &test_out, &err2),
		    SQ_ENOTFOUND);
		snprintf(want, sizeof(want), "no message %s", missing);
		cr_expect_str_eq(err2.msg, want);
	}
	/* Unfiltered, the other's message is there. */
	test_out.len = 0;
	cr_assert_eq(queue_view_show(test_dir, theirs, QUEUE_VIEW_ALL_UIDS, 0,
			 NULL, NULL, &test_out, &err),
	    0, "%s", err.msg);
	cr_expect_not_null(strstr(test_text(), "Subject: theirs"));
}

/* In a child that has dropped to uid and gid 65534 (no other group):
 * list uid 1001's messages.  Exit 0 when the listing has want (and its
 * size, 22 bytes) and not other, and the body of want cannot be opened;
 * else a code saying what failed. */
static int
test_list_as_group_member(const char *want, const char *other)
{
	struct sq_err err = { 0 };
	struct spool *rq = NULL;
	const char   *out;
	pid_t         pid;
	int           status;

	fflush(NULL);
	if ((pid = fork()) == 0) {
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
		    setuid(65534) != 0)
			_exit(10);
		test_out.len = 0;
		if (queue_view_list(test_dir, 1001, 0, NULL, NULL, &test_out,
			&err) != 0) {
			fprintf(stderr, "list: %s\n", err.msg);
			_exit(11);
		}
		out = test_text();
		if (strstr(out, want) == NULL || strstr(out, other) != NULL)
			_exit(12);
		if (strstr(out, "        22 ") == NULL) /* the size column */
			_exit(13);
		if (spool_open_queue(test_dir, &rq, &err) != 0)
			_exit(14);
		if (spool_open_message(rq, want, &err) != -EACCES)
			_exit(15); /* a body must stay unreadable */
		spool_close(rq);
		_exit(0);
	}
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

Test(queue_view, readers_group_lists_envelopes_sizes_without_reading_bodies)
{
	char          a[ENVELOPE_ID_MAX], b[ENVELOPE_ID_MAX], group[64];
	struct sq_err err = { 0 };
	struct group *gr;

	if (geteuid() != 0 || (gr = getgrgid(65534)) == NULL)
		cr_skip_test("needs root and group 65534");
	snprintf(group, sizeof(group), "%s", gr->gr_name);
	cr_assert_eq(chmod(test_root, 0711), 0);
	/* Without the readers' group: queue/ is 0700, nothing listed. */
	test_queue_uid(1001, "alice@example.org", "one", a);
	cr_assert_eq(test_list_as_group_member(a, "-"), 11);
	/* With it (as sendqd does at start): queue/ 0750, envelopes 0640,
	 * bodies 0600, so sendq-showq's group lists envelopes and sizes
	 * (fstatat) and cannot open a body. */
	cr_assert_eq(spool_set_queue_group(test_sp, group, &err), 0, "%s",
	    err.msg);
	test_queue_uid(1002, "bob@example.org", "two", b);
	cr_assert_eq(test_list_as_group_member(a, b), 0);
}
