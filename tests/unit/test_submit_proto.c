/*
 * test_submit_proto.c - the frames of the streaming submit (control.h):
 * what parses, what needs more bytes, what is refused, and the check of
 * a client's envelope.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "submit_proto.h"
#include "util.h"

static int
test_parse(const char *s, struct submit_proto_hdr *h)
{
	struct sq_err err = { 0 };

	return submit_proto_parse(s, strlen(s), h, &err);
}

Test(submit_proto, parses_the_three_frames)
{
	struct submit_proto_hdr h;

	cr_assert_eq(test_parse("submit 120\nsendq-envelope", &h), 1);
	cr_assert_eq(h.type, SUBMIT_PROTO_SUBMIT);
	cr_assert_eq(h.len, 120);
	cr_assert_eq(h.hdr_len, 11);
	cr_assert_eq(test_parse("data 65536\n", &h), 1);
	cr_assert_eq(h.type, SUBMIT_PROTO_DATA);
	cr_assert_eq(h.len, 65536);
	cr_assert_eq(test_parse("end\n", &h), 1);
	cr_assert_eq(h.type, SUBMIT_PROTO_END);
	cr_assert_eq(h.len, 0);
	cr_assert_eq(h.hdr_len, 4);
}

Test(submit_proto, waits_for_the_rest_of_a_line)
{
	struct submit_proto_hdr h;

	cr_assert_eq(test_parse("", &h), 0);
	cr_assert_eq(test_parse("da", &h), 0);
	cr_assert_eq(test_parse("data 12", &h), 0);
}

Test(submit_proto, refuses_what_is_not_a_frame)
{
	static const char *const bad[] = {
		"data 0\n",
		"data 012\n",
		"data 65537\n",
		"data -1\n",
		"data +1\n",
		"data  1\n",
		"data 1 \n",
		"data\n",
		"DATA 1\n",
		"end \n",
		"end\r\n",
		"submit 0\n",
		"submit 1048577\n",
		"submit 99999999999999999999999999\n",
		"quit\n",
		"\n",
		"data 1x\n",
		"data 123456789012345678901234567\n",
		"abcdefghijklmnopqrstuvwxyz0123456789",
	};
	struct submit_proto_hdr h;
	struct sq_err           err = { 0 };
	size_t                  i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		cr_assert_eq(
		    submit_proto_parse(bad[i], strlen(bad[i]), &h, &err),
		    SQ_EPARSE, "accepted: %s", bad[i]);
		cr_assert_neq(err.msg[0], '\0');
	}
}

Test(submit_proto, formats_what_it_parses)
{
	struct submit_proto_hdr h;
	char                    line[SUBMIT_PROTO_LINE_MAX];

	cr_assert_eq(
	    submit_proto_format(line, sizeof(line), SUBMIT_PROTO_DATA, 65536),
	    11);
	cr_assert_str_eq(line, "data 65536\n");
	cr_assert_eq(test_parse(line, &h), 1);
	cr_assert_eq(submit_proto_format(line, sizeof(line),
			 SUBMIT_PROTO_SUBMIT, SUBMIT_PROTO_ENV_MAX),
	    15);
	cr_assert_eq(
	    submit_proto_format(line, sizeof(line), SUBMIT_PROTO_END, 0), 4);
	cr_assert_eq(
	    submit_proto_format(line, sizeof(line), SUBMIT_PROTO_DATA, 0),
	    SQ_ELIMIT);
	cr_assert_eq(submit_proto_format(line, sizeof(line), SUBMIT_PROTO_DATA,
			 SUBMIT_PROTO_CHUNK_MAX + 1),
	    SQ_ELIMIT);
}

static struct envelope *
test_env(void)
{
	struct envelope *env = envelope_new();

	envelope_set_sender(env, "alice@example.org");
	envelope_add_rcpt(env, "bob@example.net");
	return env;
}

Test(submit_proto, accepts_a_new_message_envelope)
{
	struct envelope *env = test_env();
	struct sq_err    err = { 0 };

	env->uid = 0; /* whatever the client claims: overwritten */
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), 0, "%s",
	    err.msg);
	envelope_set_sender(env, "");
	cr_assert_eq(submit_proto_check_envelope(env, 1, &err), 0, "%s",
	    err.msg);
	envelope_free(env);
}

Test(submit_proto, refuses_delivery_state_and_bad_addresses)
{
	struct envelope *env;
	struct sq_err    err = { 0 };

	env = test_env();
	env->attempts = 2;
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), SQ_EPARSE);
	envelope_free(env);
	env = test_env();
	env->held = 1;
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), SQ_EPARSE);
	envelope_free(env);
	env = test_env();
	envelope_set_error(env, "451 later");
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), SQ_EPARSE);
	envelope_free(env);
	env = test_env();
	envelope_add_rcpt(env, "a> NOTIFY=NEVER");
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), SQ_EPARSE);
	cr_assert(strstr(err.msg, "recipient") != NULL, "%s", err.msg);
	envelope_free(env);
	env = test_env();
	envelope_set_sender(env, "root");
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), SQ_EPARSE);
	envelope_free(env);
	env = test_env();
	envelope_add_rcpt(env, "carol@example.net");
	cr_assert_eq(submit_proto_check_envelope(env, 1, &err), SQ_EPARSE);
	cr_assert(strstr(err.msg, "max_recipients") != NULL, "%s", err.msg);
	envelope_free(env);
	env = envelope_new();
	envelope_set_sender(env, "alice@example.org");
	cr_assert_eq(submit_proto_check_envelope(env, 0, &err), SQ_EPARSE);
	envelope_free(env);
}
