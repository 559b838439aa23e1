/*
 * test_envelope.c - the envelope record and its text form.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "param_rows.h"

#define GOOD_HEAD "sendq-envelope 1\nid ABC123\ncreated 1700000000\n"

static struct envelope *
test_sample_envelope(void)
{
	struct envelope *env;

	env = envelope_new();
	strcpy(env->id, "018F2C3A4B0A1B2C3D4E");
	envelope_set_sender(env, "alice@example.com");
	envelope_add_rcpt(env, "bob@example.com");
	envelope_add_rcpt(env, "\"carol smith\"@example.org");
	env->created = 1700000000;
	env->uid = 1000;
	env->attempts = 3;
	env->next_attempt = 1700003600;
	envelope_set_error(env, "451 4.3.0 try again later");
	return env;
}

static void
test_assert_same(const struct envelope *a, const struct envelope *b)
{
	size_t i;

	cr_assert_str_eq(a->id, b->id);
	cr_assert_str_eq(a->sender, b->sender);
	cr_assert_eq(a->n_rcpts, b->n_rcpts);
	for (i = 0; i < a->n_rcpts; i++)
		cr_assert_str_eq(a->rcpts[i], b->rcpts[i]);
	cr_assert_eq(a->created, b->created);
	cr_assert_eq(a->uid, b->uid);
	cr_assert_eq(a->attempts, b->attempts);
	cr_assert_eq(a->next_attempt, b->next_attempt);
	if (a->last_error == NULL)
		cr_assert_null(b->last_error);
	else
		cr_assert_str_eq(a->last_error, b->last_error);
}

Test(envelope, new_envelope_has_unknown_uid_and_null_sender)
{
	struct envelope *env = envelope_new();

	cr_assert_eq(env->uid, -1);
	cr_assert_str_eq(env->sender, "");
	cr_assert_eq(env->n_rcpts, 0);
	cr_assert_null(env->last_error);
	envelope_free(env);
	envelope_free(NULL);
}

Test(envelope, format_then_parse_gives_the_same_record)
{
	struct envelope *env = test_sample_envelope(), *back = NULL;
	struct sq_err    err = { 0 };
	size_t           len;
	char            *text;

	text = envelope_format(env, &len);
	cr_assert_eq(strlen(text), len);
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	test_assert_same(env, back);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, format_is_the_documented_text)
{
	struct envelope *env = test_sample_envelope();
	size_t           len;
	char            *text;

	text = envelope_format(env, &len);
	cr_assert_str_eq(text,
	    "sendq-envelope 1\nid 018F2C3A4B0A1B2C3D4E\ncreated "
	    "1700000000\nuid 1000\nsender alice@example.com\nrcpt "
	    "bob@example.com\nrcpt \"carol smith\"@example.org\nattempts "
	    "3\nnext_attempt 1700003600\nlast_error 451 4.3.0 try again "
	    "later\nbody 7bit\nend\n");
	free(text);
	envelope_free(env);
}

Test(envelope, null_sender_and_unknown_uid_round_trip)
{
	struct envelope *env = test_sample_envelope(), *back = NULL;
	struct sq_err    err = { 0 };
	size_t           len;
	char            *text;

	envelope_set_sender(env, "");
	env->uid = -1;
	envelope_set_error(env, NULL);
	text = envelope_format(env, &len);
	cr_assert_not_null(strstr(text, "\nsender\n"));
	cr_assert_null(strstr(text, "last_error"));
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	test_assert_same(env, back);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, line_breaks_in_values_are_made_printable)
{
	struct envelope *env = test_sample_envelope(), *back = NULL;
	struct sq_err    err = { 0 };
	size_t           len;
	char            *text;

	envelope_set_error(env, "550 no\r\nrcpt evil@example.com\tx");
	text = envelope_format(env, &len);
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	cr_assert_str_eq(back->last_error, "550 no??rcpt evil@example.com?x");
	cr_assert_eq(back->n_rcpts, 2);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, optional_keys_take_defaults)
{
	const char      *t = GOOD_HEAD "sender a@b\nrcpt c@d\nend\n";
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };

	cr_assert_eq(envelope_parse(t, strlen(t), &env, &err), 0, "%s",
	    err.msg);
	cr_assert_eq(env->uid, -1);
	cr_assert_eq(env->attempts, 0);
	cr_assert_eq(env->next_attempt, 0);
	cr_assert_null(env->last_error);
	envelope_free(env);
}

Test(envelope, parse_never_reads_past_len)
{
	const char      *t = GOOD_HEAD "sender a@b\nrcpt c@d\nend\n";
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	size_t           len = strlen(t);
	char            *copy;

	/* An exact-size heap copy without NUL: ASan catches overreads. */
	copy = malloc(len);
	memcpy(copy, t, len);
	cr_assert_eq(envelope_parse(copy, len, &env, &err), 0, "%s", err.msg);
	envelope_free(env);
	env = NULL;
	cr_assert_eq(envelope_parse(copy, len - 1, &env, &err), SQ_EPARSE);
	cr_assert_null(env);
	free(copy);
}

/* Arrays, not pointers: Criterion may run each case in a fresh process. */
struct bad_case {
	char text[128];
	char reason[48]; /* expected in err.msg */
};

static struct bad_case bad_cases[] = {
	{ "", "empty" },
	{ "sendq-envelope 2\n", "line 1: not a sendq envelope" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\n", "line 5: truncated (no end" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nend", "line 6: truncated (no line" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d", "line 5: truncated (no line" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nend\nrcpt e@f\n",
	    "line 7: data after the end line" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\ncolour red\nend\n",
	    "line 6: unknown key \"colour\"" },
	{ GOOD_HEAD "sender a@b\nsender x@y\nrcpt c@d\nend\n",
	    "line 5: repeated key \"sender\"" },
	{ GOOD_HEAD "id DEF\nsender a@b\nrcpt c@d\nend\n",
	    "line 4: repeated key \"id\"" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nattempts x1\nend\n",
	    "line 6: bad attempt count \"x1\"" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nattempts 99999999999\nend\n",
	    "bad attempt count" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nattempts 007\nend\n",
	    "bad attempt count" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nattempts -1\nend\n",
	    "bad attempt count" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nattempts\nend\n",
	    "bad attempt count" },
	{ GOOD_HEAD
	    "sender a@b\nrcpt c@d\nnext_attempt 99999999999999999999\nend\n",
	    "line 6: bad time" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nuid -2\nend\n", "line 6: bad uid" },
	{ "sendq-envelope 1\nid A\ncreated 1x\n", "line 3: bad time" },
	{ "sendq-envelope 1\nid A-B\n", "line 2: bad queue id" },
	{ "sendq-envelope 1\nid\n", "line 2: bad queue id" },
	{ "sendq-envelope 1\nid 0123456789012345678901234567890123\n",
	    "bad queue id" },
	{ GOOD_HEAD "sender a@b\nend\n", "missing key rcpt" },
	{ GOOD_HEAD "rcpt c@d\nend\n", "missing key sender" },
	{ "sendq-envelope 1\nid A\nsender a@b\nrcpt c@d\nend\n",
	    "missing key created" },
	{ "sendq-envelope 1\ncreated 1\nsender a@b\nrcpt c@d\nend\n",
	    "missing key id" },
	{ GOOD_HEAD "sender a@b\nrcpt\nend\n", "line 5: empty recipient" },
	{ GOOD_HEAD "sender a@b\r\nrcpt c@d\nend\n",
	    "line 4: carriage return" },
	{ GOOD_HEAD "sender a\tb\nrcpt c@d\nend\n",
	    "line 4: control character" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nend now\n", "value after end" },
};

ParameterizedTestParameters(envelope,
    malformed_text_is_rejected_naming_the_line)
{
	return cr_make_param_array(struct bad_case, bad_cases,
	    sizeof(bad_cases) / sizeof(bad_cases[0]));
}

ParameterizedTest(struct bad_case *c, envelope,
    malformed_text_is_rejected_naming_the_line)
{
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };

	cr_assert_eq(envelope_parse(c->text, strlen(c->text), &env, &err),
	    SQ_EPARSE, "accepted: %s", c->text);
	cr_assert_null(env);
	cr_assert_eq(err.code, SQ_EPARSE);
	cr_assert_not_null(strstr(err.msg, c->reason),
	    "got \"%s\", want \"%s\"", err.msg, c->reason);
}

Test(envelope, nul_byte_inside_a_line_is_rejected)
{
	const char       t[] = GOOD_HEAD "sender a\0b\nrcpt c@d\nend\n";
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };

	cr_assert_eq(envelope_parse(t, sizeof(t) - 1, &env, &err), SQ_EPARSE);
	cr_assert_not_null(strstr(err.msg, "line 4"));
}

Test(envelope, setters_replace_previous_values)
{
	struct envelope *env = envelope_new();

	envelope_set_sender(env, "a@b");
	envelope_set_sender(env, "c@d");
	cr_assert_str_eq(env->sender, "c@d");
	envelope_set_error(env, "x");
	envelope_set_error(env, "y");
	cr_assert_str_eq(env->last_error, "y");
	envelope_set_error(env, NULL);
	cr_assert_null(env->last_error);
	envelope_free(env);
}

Test(envelope, body_type_round_trips_and_is_checked)
{
	struct envelope *env = test_sample_envelope(), *back = NULL;
	struct sq_err    err = { 0 };
	const char *bad = "sendq-envelope 1\nid 018F2C3A4B0A1B2C3D4E\ncreated "
			  "1\nsender a@b\nrcpt c@d\nbody 9bit\nend\n";
	size_t      len;
	char       *text;

	env->body_8bit = 1;
	text = envelope_format(env, &len);
	cr_assert_not_null(strstr(text, "\nbody 8bit\n"));
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	cr_assert_eq(back->body_8bit, 1);
	cr_assert_eq(envelope_parse(bad, strlen(bad), &back, &err), SQ_EPARSE);
	cr_assert_not_null(strstr(err.msg, "bad body type"), "%s", err.msg);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, held_and_warned_flags_round_trip_and_are_checked)
{
	struct envelope *env = test_sample_envelope(), *back = NULL;
	struct sq_err    err = { 0 };
	const char *bad = "sendq-envelope 1\nid 018F2C3A4B0A1B2C3D4E\ncreated "
			  "1\nsender a@b\nrcpt c@d\nheld yes\nend\n";
	size_t      len;
	char       *text;

	env->held = 1;
	env->warned = 1;
	text = envelope_format(env, &len);
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	cr_assert_eq(back->held, 1);
	cr_assert_eq(back->warned, 1);
	cr_assert_eq(envelope_parse(bad, strlen(bad), &back, &err), SQ_EPARSE);
	cr_assert_not_null(strstr(err.msg, "bad flag"), "%s", err.msg);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

/* ------------------------------------------------ DSN parameters */

Test(envelope, dsn_parameters_round_trip_in_the_documented_text)
{
	struct envelope *env = test_sample_envelope(), *back = NULL;
	const struct envelope_rcpt_dsn *d;
	struct sq_err                   err = { 0 };
	const char                     *want =
	    "sendq-envelope 1\nid 018F2C3A4B0A1B2C3D4E\ncreated "
	    "1700000000\nuid 1000\nsender alice@example.com\nrcpt "
	    "bob@example.com\nrcpt_params 0 NOTIFY=SUCCESS,FAILURE,DELAY "
	    "ORCPT=rfc822;bob+2Bx@example.com\nrcpt \"carol "
	    "smith\"@example.org\nrcpt dave@example.net\nrcpt_params 2 "
	    "NOTIFY=NEVER\nattempts 3\nnext_attempt 1700003600\nlast_error 451 "
	    "4.3.0 try again later\nbody 7bit\nret HDRS\nenvid QQ+2B1\nend\n";
	size_t len;
	char  *text;

	envelope_add_rcpt(env, "dave@example.net");
	env->ret = ENVELOPE_RET_HDRS;
	cr_assert_eq(envelope_set_envid(env, "QQ+2B1"), 0);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0,
			 ENVELOPE_NOTIFY_DELAY | ENVELOPE_NOTIFY_FAILURE |
			     ENVELOPE_NOTIFY_SUCCESS,
			 "rfc822;bob+2Bx@example.com"),
	    0);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 2, ENVELOPE_NOTIFY_NEVER, NULL),
	    0);
	text = envelope_format(env, &len);
	cr_assert_str_eq(text, want);
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	test_assert_same(env, back);
	cr_assert_eq(back->ret, ENVELOPE_RET_HDRS);
	cr_assert_str_eq(back->envid, "QQ+2B1");
	d = envelope_rcpt_dsn(back, 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->notify,
	    ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE |
		ENVELOPE_NOTIFY_DELAY);
	cr_assert_str_eq(d->orcpt, "rfc822;bob+2Bx@example.com");
	cr_assert_null(envelope_rcpt_dsn(back, 1));
	d = envelope_rcpt_dsn(back, 2);
	cr_assert_not_null(d);
	cr_assert_eq(d->notify, ENVELOPE_NOTIFY_NEVER);
	cr_assert_null(d->orcpt);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, envelope_without_dsn_keys_still_parses_without_parameters)
{
	/* The format as written before ret/envid/rcpt_params existed. */
	const char *old = "sendq-envelope 1\nid 018F2C3A4B0A1B2C3D4E\ncreated "
			  "1700000000\nuid 1000\nsender a@b\nrcpt c@d\nrcpt "
			  "e@f\nattempts 0\nnext_attempt 0\nbody 8bit\nend\n";
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	size_t           len;
	char            *text;

	cr_assert_eq(envelope_parse(old, strlen(old), &env, &err), 0, "%s",
	    err.msg);
	cr_assert_eq(env->ret, ENVELOPE_RET_NONE);
	cr_assert_null(env->envid);
	cr_assert_null(envelope_rcpt_dsn(env, 0));
	cr_assert_null(envelope_rcpt_dsn(env, 1));
	/* And it is written back exactly as it was. */
	text = envelope_format(env, &len);
	cr_assert_str_eq(text, old);
	free(text);
	envelope_free(env);
}

static struct bad_case bad_dsn_cases[] = {
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nret full\nend\n",
	    "line 6: bad ret (FULL or HDRS) \"full\"" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nret HDRS\nret FULL\nend\n",
	    "line 7: repeated key \"ret\"" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nenvid a b\nend\n", "bad envid" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nenvid a=b\nend\n", "bad envid" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nenvid a+2g\nend\n", "bad envid" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nenvid\nend\n", "line 6: bad envid" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nenvid x\nenvid y\nend\n",
	    "repeated key \"envid\"" },
	{ GOOD_HEAD "sender a@b\nrcpt_params 0 NOTIFY=NEVER\nrcpt c@d\nend\n",
	    "line 5: rcpt_params: no such recipient (yet)" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 1 NOTIFY=NEVER\nend\n",
	    "no such recipient" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params x NOTIFY=NEVER\nend\n",
	    "bad recipient index" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0\nend\n",
	    "bad recipient index" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 \nend\n",
	    "no parameters" },
	{ GOOD_HEAD
	    "sender a@b\nrcpt c@d\nrcpt_params 0 NOTIFY=NEVER,DELAY\nend\n",
	    "bad NOTIFY" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 NOTIFY=delay\nend\n",
	    "bad NOTIFY" },
	{ GOOD_HEAD
	    "sender a@b\nrcpt c@d\nrcpt_params 0 NOTIFY=DELAY,DELAY\nend\n",
	    "bad NOTIFY" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 NOTIFY=\nend\n",
	    "bad NOTIFY" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 notify=NEVER\nend\n",
	    "unknown parameter" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 ORCPT=c@d\nend\n",
	    "bad ORCPT" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 ORCPT=;c@d\nend\n",
	    "bad ORCPT" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 ORCPT=rfc822;\nend\n",
	    "bad ORCPT" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 NOTIFY=NEVER "
		    "NOTIFY=NEVER\nend\n",
	    "repeated parameter" },
	{ GOOD_HEAD
	    "sender a@b\nrcpt c@d\nrcpt_params 0 ORCPT=x;a ORCPT=x;b\nend\n",
	    "repeated parameter" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 RET=FULL\nend\n",
	    "unknown parameter \"RET=FULL\"" },
	{ GOOD_HEAD "sender a@b\nrcpt c@d\nrcpt_params 0 "
		    "NOTIFY=NEVER\nrcpt_params 0 ORCPT=x;y\nend\n",
	    "line 7: rcpt_params: repeated for recipient" },
};

ParameterizedTestParameters(envelope, malformed_dsn_lines_are_rejected)
{
	return cr_make_param_array(struct bad_case, bad_dsn_cases,
	    sizeof(bad_dsn_cases) / sizeof(bad_dsn_cases[0]));
}

ParameterizedTest(struct bad_case *c, envelope,
    malformed_dsn_lines_are_rejected)
{
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };

	cr_assert_eq(envelope_parse(c->text, strlen(c->text), &env, &err),
	    SQ_EPARSE, "accepted: %s", c->text);
	cr_assert_null(env);
	cr_assert_not_null(strstr(err.msg, c->reason),
	    "got \"%s\", want \"%s\"", err.msg, c->reason);
}

Test(envelope, dsn_setters_refuse_what_rfc3461_does_not_allow)
{
	struct envelope *env = test_sample_envelope();
	char             longid[ENVELOPE_ENVID_MAX + 2];

	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	cr_assert_eq(envelope_set_envid(env, longid), -EINVAL);
	longid[ENVELOPE_ENVID_MAX] = '\0';
	cr_assert_eq(envelope_set_envid(env, longid), 0);
	cr_assert_eq(envelope_set_envid(env, "a b"), -EINVAL);
	cr_assert_eq(envelope_set_envid(env, ""), -EINVAL);
	cr_assert_str_eq(env->envid, longid, "unchanged after a refusal");
	cr_assert_eq(envelope_set_envid(env, NULL), 0);
	cr_assert_null(env->envid);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 2, ENVELOPE_NOTIFY_NEVER, NULL),
	    -EINVAL, "no recipient 2");
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0,
			 ENVELOPE_NOTIFY_NEVER | ENVELOPE_NOTIFY_DELAY, NULL),
	    -EINVAL);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0, 0x10, NULL), -EINVAL);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0, 0, "rfc822 x"), -EINVAL);
	cr_assert_null(envelope_rcpt_dsn(env, 0));
	cr_assert_eq(envelope_set_rcpt_dsn(env, 1, 0, "rfc822;x"), 0);
	cr_assert_not_null(envelope_rcpt_dsn(env, 1));
	cr_assert_eq(envelope_set_rcpt_dsn(env, 1, 0, NULL), 0);
	cr_assert_null(envelope_rcpt_dsn(env, 1), "cleared");
	envelope_free(env);
}

Test(envelope, keep_rcpts_drops_recipients_with_their_parameters)
{
	struct envelope                *env = envelope_new();
	const struct envelope_rcpt_dsn *d;
	int                             keep[4] = { 0, 1, 0, 1 };

	envelope_add_rcpt(env, "a@x");
	envelope_add_rcpt(env, "b@x");
	envelope_add_rcpt(env, "c@x");
	envelope_add_rcpt(env, "d@x");
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0, ENVELOPE_NOTIFY_NEVER, NULL),
	    0);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 3, ENVELOPE_NOTIFY_FAILURE,
			 "rfc822;d@x"),
	    0);
	envelope_keep_rcpts(env, keep);
	cr_assert_eq(env->n_rcpts, 2);
	cr_assert_str_eq(env->rcpts[0], "b@x");
	cr_assert_str_eq(env->rcpts[1], "d@x");
	cr_assert_null(envelope_rcpt_dsn(env, 0));
	d = envelope_rcpt_dsn(env, 1);
	cr_assert_not_null(d);
	cr_assert_eq(d->notify, ENVELOPE_NOTIFY_FAILURE);
	cr_assert_str_eq(d->orcpt, "rfc822;d@x");
	cr_assert_eq(env->n_rcpt_dsn, 2);
	envelope_free(env);
}

Test(envelope, recipients_narrowed_by_hand_keep_their_own_parameters)
{
	struct envelope                *env = envelope_new(), *back = NULL;
	const struct envelope_rcpt_dsn *d;
	struct sq_err                   err = { 0 };
	size_t                          len;
	char                           *text;

	strcpy(env->id, "A1");
	envelope_add_rcpt(env, "a@x");
	envelope_add_rcpt(env, "b@x");
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0, ENVELOPE_NOTIFY_NEVER, NULL),
	    0);
	cr_assert_eq(
	    envelope_set_rcpt_dsn(env, 1, ENVELOPE_NOTIFY_FAILURE, NULL), 0);
	/* Drop a@x the way older code does: by moving the pointers. */
	free(env->rcpts[0]);
	env->rcpts[0] = env->rcpts[1];
	env->n_rcpts = 1;
	d = envelope_rcpt_dsn(env, 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->notify, ENVELOPE_NOTIFY_FAILURE, "not a@x's NEVER");
	text = envelope_format(env, &len);
	cr_assert_not_null(
	    strstr(text, "rcpt b@x\nrcpt_params 0 NOTIFY=FAILURE\n"), "%s",
	    text);
	cr_assert_null(strstr(text, "NEVER"), "%s", text);
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, the_same_address_twice_keeps_each_ones_parameters)
{
	struct envelope *env = envelope_new(), *back = NULL;
	struct sq_err    err = { 0 };
	size_t           len;
	char            *text;

	strcpy(env->id, "A1");
	envelope_add_rcpt(env, "a@x");
	envelope_add_rcpt(env, "a@x");
	cr_assert_eq(envelope_set_rcpt_dsn(env, 0, 0, "rfc822;first"), 0);
	cr_assert_eq(envelope_set_rcpt_dsn(env, 1, 0, "rfc822;second"), 0);
	text = envelope_format(env, &len);
	cr_assert_eq(envelope_parse(text, len, &back, &err), 0, "%s", err.msg);
	cr_assert_str_eq(envelope_rcpt_dsn(back, 0)->orcpt, "rfc822;first");
	cr_assert_str_eq(envelope_rcpt_dsn(back, 1)->orcpt, "rfc822;second");
	free(text);
	envelope_free(env);
	envelope_free(back);
}

Test(envelope, xtext_encoding_escapes_plus_equals_and_non_printables)
{
	char *s = envelope_xtext_encode("a+b=c d\x7f\xc3");

	cr_assert_str_eq(s, "a+2Bb+3Dc+20d+7F+C3");
	cr_assert(envelope_xtext_valid(s));
	cr_assert_not(envelope_xtext_valid("a+2b"), "lower-case hex");
	cr_assert_not(envelope_xtext_valid("a+2"));
	cr_assert_not(envelope_xtext_valid("a=b"));
	cr_assert_not(envelope_xtext_valid(""));
	free(s);
}
