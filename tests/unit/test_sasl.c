/*
 * test_sasl.c - the SASL client mechanisms against the RFC test vectors
 * and against broken or hostile server challenges.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>
#include <string.h>

#include "sasl.h"
#include "smtp_wire.h"

/* RFC 7677 section 3. */
#define TEST_SCRAM_NONCE "rOprNGfwEbeRWgbNEkqO"
#define TEST_SCRAM_SF \
	"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define TEST_SCRAM_CF \
	"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0," \
	"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define TEST_SCRAM_SFINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

static struct buf test_out;

static void
test_sasl_setup(void)
{
	sasl_buf_init(&test_out);
}

static void
test_sasl_teardown(void)
{
	sasl_buf_wipe(&test_out);
}

TestSuite(sasl, .init = test_sasl_setup, .fini = test_sasl_teardown);

/* The decoded content of test_out, NUL-terminated (static storage). */
static const char *
test_sasl_decoded(size_t *lenp)
{
	static unsigned char raw[SASL_MSG_MAX + 1];
	size_t               len;

	cr_assert_eq(sq_base64_decode(test_out.data, test_out.len, raw,
			 sizeof(raw) - 1, &len),
	    0, "output is not base64: %.*s", (int)test_out.len, test_out.data);
	raw[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	test_out.len = 0;
	return (const char *)raw;
}

/* Feed the raw challenge text (base64 encoded here) to s. */
static int
test_sasl_step_raw(struct sasl *s, const char *raw, size_t len)
{
	struct buf b64;
	int        rc;

	buf_init(&b64, SASL_CHALLENGE_MAX * 2);
	cr_assert_eq(sasl_b64_encode(raw, len, &b64), 0);
	rc = sasl_step(s, b64.data != NULL ? b64.data : "", b64.len, &test_out);
	buf_fini(&b64);
	return rc;
}

static int
test_sasl_step_str(struct sasl *s, const char *raw)
{
	return test_sasl_step_raw(s, raw, strlen(raw));
}

static struct sasl *
test_sasl_new(enum sasl_mech mech, const char *user, const char *secret,
    const char *nonce)
{
	struct sq_err err;
	struct sasl  *s;

	memset(&err, 0, sizeof(err));
	s = sasl_new(mech, user, secret, nonce, &err);
	cr_assert_not_null(s, "sasl_new: %s", err.msg);
	return s;
}

/* Base64 */

Test(sasl, base64_round_trips_every_length)
{
	unsigned char in[64], back[64];
	size_t        n, len;
	struct buf    b;

	for (n = 0; n < sizeof(in); n++)
		in[n] = (unsigned char)(n * 37 + 11);
	for (n = 0; n <= sizeof(in); n++) {
		buf_init(&b, 1024);
		cr_assert_eq(sasl_b64_encode(in, n, &b), 0);
		cr_assert_eq(b.len, 4 * ((n + 2) / 3));
		cr_assert_eq(sq_base64_decode(b.data ? b.data : "", b.len, back,
				 sizeof(back), &len),
		    0);
		cr_assert_eq(len, n);
		cr_assert_eq(memcmp(in, back, n), 0);
		buf_fini(&b);
	}
}

Test(sasl, base64_encodes_the_rfc4648_vectors)
{
	static const char *const v[][2] = {
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	size_t     i;
	struct buf b;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		buf_init(&b, 64);
		cr_assert_eq(sasl_b64_encode(v[i][0], strlen(v[i][0]), &b), 0);
		cr_assert_eq(b.len, strlen(v[i][1]));
		cr_assert_eq(memcmp(b.data, v[i][1], b.len), 0);
		buf_fini(&b);
	}
}

Test(sasl, base64_decode_rejects_malformed_input)
{
	static const char *const bad[] = {
		"Zg=",
		"Zg",
		"Z===",
		"Zg==Zg==",
		"Zm9v\r\n",
		"Zm 9",
		"Zm9*",
		"=Zm9",
		"Zg=a",
		"Zm9v====",
		/* Non-zero bits after the data: not the canonical form. */
		"Zh==",
		"Zm9=",
	};
	unsigned char out[16];
	size_t        i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(sq_base64_decode(bad[i], strlen(bad[i]), out,
				 sizeof(out), &len),
		    SQ_EPARSE, "%s", bad[i]);
	cr_assert_eq(sq_base64_decode("Zm9vYmFy", 8, out, 5, &len), SQ_ELIMIT);
}

Test(sasl, base64_encode_respects_the_buffer_limit)
{
	struct buf b;

	buf_init(&b, 7);
	cr_assert_eq(sasl_b64_encode("foobar", 6, &b), SQ_ELIMIT);
	cr_assert_eq(b.len, 0);
	buf_fini(&b);
}

/* PLAIN */

Test(sasl, plain_initial_response_is_rfc4616_with_empty_authzid)
{
	struct sasl *s = test_sasl_new(SASL_MECH_PLAIN, "tim",
	    "tanstaaftanstaaf", NULL);
	size_t       len;
	const char  *raw;

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_eq(test_out.len, strlen("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"));
	cr_assert_eq(
	    memcmp(test_out.data, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm", test_out.len),
	    0);
	raw = test_sasl_decoded(&len);
	cr_assert_eq(len, 21);
	cr_assert_eq(memcmp(raw, "\0tim\0tanstaaftanstaaf", 21), 0);
	cr_assert_eq(sasl_success(s), SASL_DONE);
	sasl_free(s);
}

Test(sasl, plain_refuses_a_challenge_after_the_credentials)
{
	struct sasl *s = test_sasl_new(SASL_MECH_PLAIN, "tim", "pw", NULL);

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	test_out.len = 0;
	cr_assert_eq(sasl_step(s, "", 0, &test_out), SASL_ERROR);
	cr_assert_eq(test_out.len, 0);
	cr_assert_neq(sasl_error(s)[0], '\0');
	cr_assert_eq(sasl_success(s), SASL_ERROR);
	sasl_free(s);
}

Test(sasl, initial_response_twice_or_challenge_first_is_an_error)
{
	struct sasl *s = test_sasl_new(SASL_MECH_PLAIN, "tim", "pw", NULL);

	cr_assert_eq(sasl_step(s, "", 0, &test_out), SASL_ERROR);
	sasl_free(s);
	s = test_sasl_new(SASL_MECH_PLAIN, "tim", "pw", NULL);
	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_eq(sasl_initial(s, &test_out), SASL_ERROR);
	sasl_free(s);
}

Test(sasl, success_before_the_credentials_is_an_error)
{
	struct sasl *s = test_sasl_new(SASL_MECH_PLAIN, "tim", "pw", NULL);

	cr_assert_eq(sasl_success(s), SASL_ERROR);
	sasl_free(s);
}

/* LOGIN */

Test(sasl, login_answers_username_then_password_prompts)
{
	struct sasl *s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret",
	    NULL);

	cr_assert_eq(sasl_initial(s, &test_out), 0);
	cr_assert_eq(test_out.len, 0);
	/* "Username:" as servers send it. */
	cr_assert_eq(sasl_step(s, "VXNlcm5hbWU6", 12, &test_out),
	    SASL_CONTINUE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "alice");
	cr_assert_eq(sasl_success(s), SASL_ERROR);
	sasl_free(s);

	s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret", NULL);
	cr_assert_eq(sasl_initial(s, &test_out), 0);
	cr_assert_eq(sasl_step(s, "VXNlcm5hbWU6", 12, &test_out),
	    SASL_CONTINUE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "alice");
	cr_assert_eq(sasl_step(s, "UGFzc3dvcmQ6", 12, &test_out), SASL_DONE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "s3cret");
	cr_assert_eq(sasl_success(s), SASL_DONE);
	sasl_free(s);
}

Test(sasl, login_follows_the_prompt_text_and_else_the_position)
{
	struct sasl *s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret",
	    NULL);

	cr_assert_eq(sasl_initial(s, &test_out), 0);
	/* Old Exchange: "User Name\0", then an unknown prompt. */
	cr_assert_eq(test_sasl_step_raw(s, "User Name", 10), SASL_CONTINUE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "alice");
	cr_assert_eq(test_sasl_step_str(s, ""), SASL_DONE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "s3cret");
	sasl_free(s);

	/* Password asked first: still the right answer to each. */
	s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret", NULL);
	cr_assert_eq(sasl_initial(s, &test_out), 0);
	cr_assert_eq(test_sasl_step_str(s, "password:"), SASL_CONTINUE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "s3cret");
	cr_assert_eq(test_sasl_step_str(s, "Username:"), SASL_DONE);
	cr_assert_str_eq(test_sasl_decoded(NULL), "alice");
	sasl_free(s);
}

Test(sasl, login_refuses_a_repeated_or_third_prompt_and_bad_base64)
{
	struct sasl *s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret",
	    NULL);

	cr_assert_eq(sasl_initial(s, &test_out), 0);
	cr_assert_eq(test_sasl_step_str(s, "Username:"), SASL_CONTINUE);
	test_out.len = 0;
	cr_assert_eq(test_sasl_step_str(s, "Username:"), SASL_ERROR);
	cr_assert_eq(test_out.len, 0);
	sasl_free(s);

	s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret", NULL);
	cr_assert_eq(sasl_initial(s, &test_out), 0);
	cr_assert_eq(test_sasl_step_str(s, "Username:"), SASL_CONTINUE);
	cr_assert_eq(test_sasl_step_str(s, "Password:"), SASL_DONE);
	test_out.len = 0;
	cr_assert_eq(test_sasl_step_str(s, "Password:"), SASL_ERROR);
	sasl_free(s);

	s = test_sasl_new(SASL_MECH_LOGIN, "alice", "s3cret", NULL);
	cr_assert_eq(sasl_initial(s, &test_out), 0);
	cr_assert_eq(sasl_step(s, "VXNlcm5hbWU6!", 13, &test_out), SASL_ERROR);
	cr_assert_eq(test_out.len, 0);
	sasl_free(s);
}

/* SCRAM-SHA-256 */

static struct sasl *
test_sasl_scram_first(void)
{
	struct sasl *s = test_sasl_new(SASL_MECH_SCRAM_SHA_256, "user",
	    "pencil", TEST_SCRAM_NONCE);

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_str_eq(test_sasl_decoded(NULL),
	    "n,,n=user,r=" TEST_SCRAM_NONCE);
	return s;
}

Test(sasl, scram_sha256_rfc7677_exchange)
{
	struct sasl      *s = test_sasl_new(SASL_MECH_SCRAM_SHA_256, "user",
		 "pencil", TEST_SCRAM_NONCE);
	static const char want_first[] =
	    "biwsbj11c2VyLHI9ck9wck5HZndFYmVSV2diTkVrcU8=";

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_eq(test_out.len, strlen(want_first));
	cr_assert_eq(memcmp(test_out.data, want_first, test_out.len), 0);
	test_out.len = 0;
	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SF), SASL_CONTINUE);
	cr_assert_str_eq(test_sasl_decoded(NULL), TEST_SCRAM_CF);
	cr_assert_eq(sasl_success(s), SASL_ERROR, "235 before v= accepted");
	sasl_free(s);

	s = test_sasl_scram_first();
	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SF), SASL_CONTINUE);
	cr_assert_str_eq(test_sasl_decoded(NULL), TEST_SCRAM_CF);
	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SFINAL), SASL_DONE);
	cr_assert_eq(test_out.len, 0, "the answer to server-final is empty");
	cr_assert_eq(sasl_success(s), SASL_DONE);
	/* Nothing more is expected. */
	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SFINAL), SASL_ERROR);
	sasl_free(s);
}

Test(sasl, scram_server_signature_mismatch_is_an_auth_failure)
{
	struct sasl *s = test_sasl_scram_first();

	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SF), SASL_CONTINUE);
	test_out.len = 0;
	/* One bit of the signature changed ("6rri" -> "6rrj"). */
	cr_assert_eq(test_sasl_step_str(s,
			 "v=6rrjTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
	    SASL_ERROR);
	cr_assert_eq(test_out.len, 0);
	cr_assert(strstr(sasl_error(s), "mismatch") != NULL, "%s",
	    sasl_error(s));
	cr_assert_eq(sasl_success(s), SASL_ERROR);
	sasl_free(s);
}

Test(sasl, scram_server_final_errors_are_reported)
{
	static const char *const finals[] = {
		"e=invalid-proof",
		"x=1",
		"",
		"v=",
		"v=AAAA",
		"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4",
	};
	struct sasl *s;
	size_t       i;

	for (i = 0; i < sizeof(finals) / sizeof(finals[0]); i++) {
		s = test_sasl_scram_first();
		cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SF),
		    SASL_CONTINUE);
		test_out.len = 0;
		cr_assert_eq(test_sasl_step_str(s, finals[i]), SASL_ERROR, "%s",
		    finals[i]);
		cr_assert_neq(sasl_error(s)[0], '\0');
		sasl_free(s);
	}
	s = test_sasl_scram_first();
	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SF), SASL_CONTINUE);
	cr_assert_eq(test_sasl_step_str(s, "e=invalid-proof"), SASL_ERROR);
	cr_assert(strstr(sasl_error(s), "invalid-proof") != NULL);
	sasl_free(s);
}

/*
 * Criterion runs each parameter in a fresh process, so parameters hold
 * their strings in arrays, never pointers into this image.
 */
struct test_sasl_bad_first {
	char sf[96];
	char why[16]; /* part of sasl_error() */
};

ParameterizedTestParameters(sasl, scram_rejects_a_malformed_server_first)
{
	static struct test_sasl_bad_first cases[] = {
		{ "", "nonce" },
		{ "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce" },
		{ "m=ext,r=rOprNGfwEbeRWgbNEkqOxyz,s=W22Z,i=4096",
		    "extension" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz", "salt" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096", "salt" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",
		    "iteration" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095",
		    "iteration" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i="
		  "1000001",
		    "iteration" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i="
		  "99999999999999999999999",
		    "iteration" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4k",
		    "iteration" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=",
		    "iteration" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096",
		    "salt" },
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,s=,i=4096", "salt" },
		/* The nonce must extend ours, not replace or merely
		 * repeat it. */
		{ "r=XOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		    "nonce" },
		{ "r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		    "nonce" },
		{ "r=rOprNGfw,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "nonce" },
		{ "r=rOprNGfwEbeRWgbNEkqO x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		    "nonce" },
		/* Attributes out of order. */
		{ "r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
		    "salt" },
	};

	return cr_make_param_array(struct test_sasl_bad_first, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_sasl_bad_first *c, sasl,
    scram_rejects_a_malformed_server_first)
{
	struct sasl *s = test_sasl_scram_first();

	cr_assert_eq(test_sasl_step_str(s, c->sf), SASL_ERROR, "%s", c->sf);
	cr_assert_eq(test_out.len, 0);
	cr_assert(strstr(sasl_error(s), c->why) != NULL, "%s: %s", c->sf,
	    sasl_error(s));
	cr_assert_eq(sasl_success(s), SASL_ERROR);
	sasl_free(s);
}

Test(sasl, scram_rejects_bad_base64_and_nul_in_server_first)
{
	struct sasl *s = test_sasl_scram_first();

	cr_assert_eq(sasl_step(s, "cj1y!", 5, &test_out), SASL_ERROR);
	sasl_free(s);
	s = test_sasl_scram_first();
	cr_assert_eq(
	    test_sasl_step_raw(s,
		"r=rOprNGfwEbeRWgbNEkqOx\0y,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		57),
	    SASL_ERROR);
	sasl_free(s);
}

Test(sasl, scram_ignores_extensions_after_the_iteration_count)
{
	struct sasl *s = test_sasl_scram_first();

	cr_assert_eq(test_sasl_step_str(s,
			 "r=rOprNGfwEbeRWgbNEkqOsrv,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
			 "i=4096,x=future"),
	    SASL_CONTINUE);
	cr_assert(strncmp(test_sasl_decoded(NULL),
		      "c=biws,r=rOprNGfwEbeRWgbNEkqOsrv,p=", 35) == 0);
	sasl_free(s);
}

Test(sasl, scram_escapes_comma_and_equals_in_the_user_name)
{
	struct sasl *s = test_sasl_new(SASL_MECH_SCRAM_SHA_256, "a,b=c", "pw",
	    "abc");

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_str_eq(test_sasl_decoded(NULL), "n,,n=a=2Cb=3Dc,r=abc");
	sasl_free(s);
}

/* XOAUTH2 and OAUTHBEARER */

Test(sasl, xoauth2_sends_the_documented_bytes)
{
	struct sasl      *s = test_sasl_new(SASL_MECH_XOAUTH2,
		 "someuser@example.com",
		 "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", NULL);
	static const char want[] =
	    "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdD"
	    "RxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_eq(test_out.len, strlen(want));
	cr_assert_eq(memcmp(test_out.data, want, test_out.len), 0);
	cr_assert_eq(sasl_success(s), SASL_DONE);
	sasl_free(s);
}

Test(sasl, oauthbearer_sends_the_rfc7628_bytes)
{
	struct sasl      *s = test_sasl_new(SASL_MECH_OAUTHBEARER,
		 "user@example.com",
		 "vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==", NULL);
	static const char want[] =
	    "n,a=user@example.com,\001auth=Bearer "
	    "vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg==\001\001";
	size_t      len;
	const char *raw;

	cr_assert_eq(sasl_initial(s, &test_out), 1);
	raw = test_sasl_decoded(&len);
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(memcmp(raw, want, len), 0);
	sasl_free(s);

	s = test_sasl_new(SASL_MECH_OAUTHBEARER, "a,b=c", "tok", NULL);
	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_str_eq(test_sasl_decoded(NULL),
	    "n,a=a=2Cb=3Dc,\001auth=Bearer tok\001\001");
	sasl_free(s);
}

Test(sasl, oauth_error_challenge_gets_an_empty_answer_then_nothing)
{
	static const enum sasl_mech mechs[] = { SASL_MECH_XOAUTH2,
		SASL_MECH_OAUTHBEARER };
	struct sasl                *s;
	size_t                      i;

	for (i = 0; i < 2; i++) {
		s = test_sasl_new(mechs[i], "u@example.com", "tok", NULL);
		cr_assert_eq(sasl_initial(s, &test_out), 1);
		test_out.len = 0;
		cr_assert_eq(test_sasl_step_str(s,
				 "{\"status\":\"401\",\"schemes\":\"bearer\","
				 "\"scope\":\"https://mail\"}"),
		    SASL_DONE);
		cr_assert_eq(test_out.len, 0);
		cr_assert_eq(test_sasl_step_str(s, "{}"), SASL_ERROR);
		sasl_free(s);
	}
}

/* Construction */

Test(sasl, new_refuses_what_a_mechanism_cannot_carry)
{
	char          big[SASL_SECRET_MAX + 2];
	struct sq_err err;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert_null(sasl_new(SASL_MECH_NONE, "u", "p", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_AUTO, "u", "p", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_PLAIN, NULL, "p", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_PLAIN, "", "p", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_PLAIN, "u", NULL, NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_PLAIN, "u\r\n", "p", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_PLAIN, "u", big, NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_XOAUTH2, "u", "t\001k", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_OAUTHBEARER, "u", "", NULL, &err));
	cr_assert_null(sasl_new(SASL_MECH_SCRAM_SHA_256, "u", "p", NULL, &err));
	cr_assert_null(
	    sasl_new(SASL_MECH_SCRAM_SHA_256, "u", "p", "a,b", &err));
	cr_assert_null(sasl_new(SASL_MECH_SCRAM_SHA_256, "u", "p", "", &err));
	cr_assert(strstr(err.msg, "nonce") != NULL);
}

Test(sasl, error_texts_never_contain_the_secret)
{
	struct sq_err err;
	struct sasl  *s;

	memset(&err, 0, sizeof(err));
	cr_assert_null(
	    sasl_new(SASL_MECH_XOAUTH2, "u", "SECRETTOKEN\001", NULL, &err));
	cr_assert_null(strstr(err.msg, "SECRETTOKEN"));
	s = test_sasl_new(SASL_MECH_SCRAM_SHA_256, "u", "SECRETPW", "n");
	cr_assert_eq(sasl_initial(s, &test_out), 1);
	cr_assert_eq(test_sasl_step_str(s, "r=nX,s=c2FsdA==,i=1"), SASL_ERROR);
	cr_assert_null(strstr(sasl_error(s), "SECRETPW"));
	sasl_free(s);
}

/* Choice for auth = auto */

struct test_sasl_pick {
	unsigned       mask;
	int            tls;
	enum sasl_mech want;
};

ParameterizedTestParameters(sasl, pick_chooses_the_strongest_password_mech)
{
	static struct test_sasl_pick cases[] = {
		{ 0, 1, SASL_MECH_NONE },
		{ SMTP_WIRE_AUTH_LOGIN, 1, SASL_MECH_LOGIN },
		{ SMTP_WIRE_AUTH_PLAIN | SMTP_WIRE_AUTH_LOGIN, 1,
		    SASL_MECH_PLAIN },
		{ SMTP_WIRE_AUTH_PLAIN | SMTP_WIRE_AUTH_LOGIN |
			SMTP_WIRE_AUTH_SCRAM_SHA_256,
		    1, SASL_MECH_SCRAM_SHA_256 },
		{ SMTP_WIRE_AUTH_SCRAM_SHA_256, 1, SASL_MECH_SCRAM_SHA_256 },
		{ SMTP_WIRE_AUTH_CRAM_MD5, 1, SASL_MECH_NONE },
		{ SMTP_WIRE_AUTH_XOAUTH2 | SMTP_WIRE_AUTH_OAUTHBEARER, 1,
		    SASL_MECH_NONE },
		{ SMTP_WIRE_AUTH_XOAUTH2 | SMTP_WIRE_AUTH_LOGIN, 1,
		    SASL_MECH_LOGIN },
		{ SMTP_WIRE_AUTH_CRAM_MD5 | SMTP_WIRE_AUTH_PLAIN, 1,
		    SASL_MECH_PLAIN },
		/* Never without TLS (or loopback). */
		{ SMTP_WIRE_AUTH_PLAIN | SMTP_WIRE_AUTH_SCRAM_SHA_256, 0,
		    SASL_MECH_NONE },
		{ SMTP_WIRE_AUTH_LOGIN, 0, SASL_MECH_NONE },
	};

	return cr_make_param_array(struct test_sasl_pick, cases,
	    sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct test_sasl_pick *c, sasl,
    pick_chooses_the_strongest_password_mech)
{
	cr_assert_eq(sasl_pick(c->mask, c->tls), c->want, "mask 0x%x tls %d",
	    c->mask, c->tls);
}

Test(sasl, mech_names_and_bits_match_the_wire)
{
	cr_assert_str_eq(sasl_mech_name(SASL_MECH_SCRAM_SHA_256),
	    "SCRAM-SHA-256");
	cr_assert_str_eq(sasl_mech_name(SASL_MECH_OAUTHBEARER), "OAUTHBEARER");
	cr_assert_str_eq(sasl_mech_name(SASL_MECH_AUTO), "");
	cr_assert_eq(sasl_mech_bit(SASL_MECH_PLAIN), SMTP_WIRE_AUTH_PLAIN);
	cr_assert_eq(sasl_mech_bit(SASL_MECH_OAUTHBEARER),
	    SMTP_WIRE_AUTH_OAUTHBEARER);
	cr_assert_eq(sasl_mech_bit(SASL_MECH_NONE), 0);
}

/* Redaction */

Test(sasl, redact_hides_the_secret_and_base64_words)
{
	struct sasl *s = test_sasl_new(SASL_MECH_PLAIN, "tim", "hunter22",
	    NULL);
	char         t1[] = "5.7.8 bad password hunter22 for tim";
	char t2[] = "5.5.2 Invalid data AHRpbQB0YW5zdGFhZnRhbnN0YWFm here";
	char t3[] = "5.7.8 Authentication credentials invalid";
	char t4[] = "5.7.8 Error: authentication failed: UGFzc3dvcmQ6";

	sasl_redact(s, t1);
	cr_assert_str_eq(t1, "5.7.8 bad password ******** for tim");
	sasl_redact(s, t2);
	cr_assert_str_eq(t2,
	    "5.5.2 Invalid data **************************** here");
	sasl_redact(s, t3);
	cr_assert_str_eq(t3, "5.7.8 Authentication credentials invalid");
	sasl_redact(NULL, t4);
	cr_assert_str_eq(t4,
	    "5.7.8 Error: authentication failed: ************");
	sasl_free(s);
}

Test(sasl, server_text_quoted_in_errors_has_the_secret_masked)
{
	struct sasl *s = test_sasl_scram_first();

	cr_assert_eq(test_sasl_step_str(s, TEST_SCRAM_SF), SASL_CONTINUE);
	cr_assert_eq(test_sasl_step_str(s, "e=your password is pencil"),
	    SASL_ERROR);
	cr_assert_null(strstr(sasl_error(s), "pencil"), "%s", sasl_error(s));
	cr_assert(strstr(sasl_error(s), "your password is ******"));
	sasl_free(s);
}

Test(sasl, mask_ignores_secrets_too_short_to_mask_safely)
{
	char t[] = "a bc abc abcd abcde";

	sasl_mask(t, "abc");
	cr_assert_str_eq(t, "a bc abc abcd abcde");
	sasl_mask(t, NULL);
	sasl_mask(t, "abcd");
	cr_assert_str_eq(t, "a bc abc **** ****e");
}
