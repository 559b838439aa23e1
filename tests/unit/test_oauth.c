/*
 * test_oauth.c - token endpoint answers, the refresh decision, the device
 * flow poll schedule and the failure classes (daemon/oauth.c).
 *
 * Time is an argument (ms), so every schedule here is exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "oauth.h"

#define T0 1700000000000LL

static int
test_parse(const char *json, struct oauth_resp *r)
{
	struct sq_err err = { 0 };

	return oauth_parse(json, strlen(json), r, &err);
}

TestSuite(oauth);

/* --- parsing ------------------------------------------------------------ */

Test(oauth, parses_a_refresh_answer_with_a_rotated_refresh_token)
{
	struct oauth_resp r;

	cr_assert_eq(
	    test_parse("{\"access_token\":\"ya29.abc\",\"token_type\":"
		       "\"Bearer\",\"expires_in\":3599,\"refresh_token\":\"1//"
		       "new\",\"scope\":\"https://mail.google."
		       "com/\"}",
		&r),
	    0);
	cr_assert_str_eq(r.access_token, "ya29.abc");
	cr_assert_str_eq(r.refresh_token, "1//new");
	cr_assert_eq(r.expires_in, 3599);
	cr_assert_null(r.error);
	cr_assert_eq(oauth_classify(1, 200, &r), OAUTH_OK);
	oauth_resp_fini(&r);
}

Test(oauth, refresh_token_absent_means_not_rotated)
{
	struct oauth_resp r;

	cr_assert_eq(
	    test_parse("{\"access_token\":\"t\",\"expires_in\":\"3600\"}", &r),
	    0);
	cr_assert_null(r.refresh_token);
	cr_assert_eq(r.expires_in, 3600, "a decimal string is accepted");
	oauth_resp_fini(&r);
}

Test(oauth, error_answer_keeps_error_and_description_printable)
{
	struct oauth_resp r;

	cr_assert_eq(
	    test_parse("{\"error\":\"invalid_grant\",\"error_description\":"
		       "\"Token has been expired or revoked.\\n"
		       "\"}",
		&r),
	    0);
	cr_assert_str_eq(r.error, "invalid_grant");
	cr_assert_str_eq(r.error_description,
	    "Token has been expired or revoked.?");
	cr_assert_eq(oauth_classify(1, 400, &r), OAUTH_HELD);
	oauth_resp_fini(&r);
}

Test(oauth, device_authorization_answer)
{
	struct oauth_resp r;

	cr_assert_eq(
	    test_parse("{\"device_code\":\"dc\",\"user_code\":\"ABCD-EFGH\","
		       "\"verification_url\":\"https://www.google.com/"
		       "device\",\"expires_in\":1800,\"interval\":5}",
		&r),
	    0);
	cr_assert_str_eq(r.device_code, "dc");
	cr_assert_str_eq(r.user_code, "ABCD-EFGH");
	cr_assert_str_eq(r.verification_uri, "https://www.google.com/device",
	    "Google's verification_url is taken as verification_uri");
	cr_assert_eq(r.interval, 5);
	cr_assert_eq(oauth_classify(1, 200, &r), OAUTH_OK);
	oauth_resp_fini(&r);
}

Test(oauth, refuses_what_is_not_a_json_object)
{
	static const char *const bad[] = { "", "[]", "\"x\"", "{", "{}x",
		"{\"access_token\":1}", "{\"access_token\":\"a b\"}",
		"{\"access_token\":\"\"}", "{\"expires_in\":-1}",
		"{\"expires_in\":\"12x\"}", "{\"expires_in\":1e99}",
		"<html>502 Bad Gateway</html>" };
	struct oauth_resp        r;
	size_t                   i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_neq(test_parse(bad[i], &r), 0, "%s", bad[i]);
		cr_assert_null(r.access_token);
	}
	cr_assert_eq(test_parse("{} \r\n", &r), 0, "trailing white space");
	oauth_resp_fini(&r);
}

Test(oauth, refuses_an_oversized_answer_or_token)
{
	static char       big[OAUTH_BODY_MAX + 2];
	struct oauth_resp r;
	struct sq_err     err = { 0 };
	char             *json;
	size_t            n = OAUTH_TOKEN_MAX + 1;

	memset(big, ' ', sizeof(big) - 1);
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	cr_assert_eq(oauth_parse(big, sizeof(big) - 1, &r, &err), SQ_ELIMIT);
	json = calloc(1, n + 32);
	strcpy(json, "{\"access_token\":\"");
	memset(json + strlen(json), 'a', n);
	strcat(json, "\"}");
	cr_assert_eq(test_parse(json, &r), SQ_EPARSE);
	free(json);
}

/* --- classification ----------------------------------------------------- */

Test(oauth, temporary_failures)
{
	struct oauth_resp r;

	cr_assert_eq(oauth_classify(0, 0, NULL), OAUTH_TEMPFAIL,
	    "network, TLS or timeout");
	cr_assert_eq(oauth_classify(1, 503, NULL), OAUTH_TEMPFAIL);
	cr_assert_eq(oauth_classify(1, 502, NULL), OAUTH_TEMPFAIL);
	cr_assert_eq(oauth_classify(1, 429, NULL), OAUTH_TEMPFAIL);
	cr_assert_eq(oauth_classify(1, 400, NULL), OAUTH_TEMPFAIL,
	    "an answer that did not parse (a proxy page)");
	cr_assert_eq(test_parse("{\"token_type\":\"Bearer\"}", &r), 0);
	cr_assert_eq(oauth_classify(1, 200, &r), OAUTH_TEMPFAIL,
	    "200 without a token");
	oauth_resp_fini(&r);
	cr_assert_eq(test_parse("{\"error\":\"server_error\"}", &r), 0);
	cr_assert_eq(oauth_classify(1, 400, &r), OAUTH_TEMPFAIL);
	oauth_resp_fini(&r);
	cr_assert_eq(test_parse("{\"error\":\"invalid_grant\"}", &r), 0);
	cr_assert_eq(oauth_classify(1, 503, &r), OAUTH_TEMPFAIL,
	    "a 5xx is temporary whatever its body says");
	oauth_resp_fini(&r);
}

Test(oauth, errors_only_a_person_can_fix_hold)
{
	static const char *const held[] = { "invalid_grant", "invalid_client",
		"unauthorized_client", "invalid_scope" };
	struct oauth_resp        r;
	char                     json[128];
	size_t                   i;

	for (i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
		snprintf(json, sizeof(json), "{\"error\":\"%s\"}", held[i]);
		cr_assert_eq(test_parse(json, &r), 0);
		cr_assert_eq(oauth_classify(1, 400, &r), OAUTH_HELD, "%s",
		    held[i]);
		oauth_resp_fini(&r);
	}
}

/* --- the refresh decision ----------------------------------------------- */

Test(oauth, cached_until_the_margin_then_ahead_then_now)
{
	struct oauth_cache c = { 0 };

	cr_assert_eq(oauth_need(&c, T0, 0), OAUTH_NEED_NOW, "nothing cached");
	oauth_cache_set(&c, T0, 3600);
	/* Margin: min(3600 s / 4, 120 s) = 120 s. */
	cr_assert_eq(oauth_need(&c, T0 + 1000, 0), OAUTH_NEED_NONE);
	cr_assert_eq(oauth_need(&c, T0 + 3359999, 0), OAUTH_NEED_NONE);
	cr_assert_eq(oauth_need(&c, T0 + 3360000, 0), OAUTH_NEED_AHEAD);
	cr_assert_eq(oauth_need(&c, T0 + 3479999, 0), OAUTH_NEED_AHEAD);
	cr_assert_eq(oauth_need(&c, T0 + 3480000, 0), OAUTH_NEED_NOW);
	cr_assert_eq(oauth_need(&c, T0 + 3600000, 0), OAUTH_NEED_NOW);
}

Test(oauth, short_lived_tokens_scale_the_margin)
{
	struct oauth_cache c = { 0 };

	oauth_cache_set(&c, T0, 8); /* margin 2 s */
	cr_assert_eq(oauth_need(&c, T0 + 3999, 0), OAUTH_NEED_NONE);
	cr_assert_eq(oauth_need(&c, T0 + 4000, 0), OAUTH_NEED_AHEAD);
	cr_assert_eq(oauth_need(&c, T0 + 6000, 0), OAUTH_NEED_NOW);
}

Test(oauth, force_after_a_refused_token_and_clock_going_back)
{
	struct oauth_cache c = { 0 };

	oauth_cache_set(&c, T0, 3600);
	cr_assert_eq(oauth_need(&c, T0 + 1000, 1), OAUTH_NEED_NOW);
	cr_assert_eq(oauth_need(&c, T0 - 1, 0), OAUTH_NEED_NOW);
}

Test(oauth, missing_expires_in_is_the_default_lifetime)
{
	struct oauth_cache c = { 0 };

	oauth_cache_set(&c, T0, -1);
	cr_assert_eq(c.expires, T0 + OAUTH_DEFAULT_LIFETIME * 1000);
}

/* --- device flow -------------------------------------------------------- */

Test(oauth, device_flow_pending_slow_down_then_done)
{
	struct oauth_resp   a = { 0 };
	struct oauth_device d;
	int64_t             now = T0;

	a.interval = 2;
	a.expires_in = 60;
	oauth_device_start(&d, &a, now);
	cr_assert_eq(d.next_ms, T0 + 2000);
	now = d.next_ms;
	cr_assert_eq(oauth_device_step(&d, OAUTH_PENDING, now),
	    OAUTH_DEVICE_WAIT);
	cr_assert_eq(d.next_ms, now + 2000);
	now = d.next_ms;
	cr_assert_eq(oauth_device_step(&d, OAUTH_SLOW_DOWN, now),
	    OAUTH_DEVICE_WAIT);
	cr_assert_eq(d.next_ms, now + 7000, "slow_down adds 5 s for good");
	now = d.next_ms;
	cr_assert_eq(oauth_device_step(&d, OAUTH_PENDING, now),
	    OAUTH_DEVICE_WAIT);
	cr_assert_eq(d.next_ms, now + 7000);
	cr_assert_eq(oauth_device_step(&d, OAUTH_OK, now), OAUTH_DEVICE_DONE);
}

Test(oauth, device_flow_default_interval_and_ends)
{
	struct oauth_resp   a = { 0 };
	struct oauth_device d;

	a.interval = -1;
	a.expires_in = -1;
	oauth_device_start(&d, &a, T0);
	cr_assert_eq(d.interval_ms, OAUTH_DEVICE_INTERVAL * 1000);
	cr_assert_eq(oauth_device_step(&d, OAUTH_DENIED, T0),
	    OAUTH_DEVICE_FAILED);
	cr_assert_eq(oauth_device_step(&d, OAUTH_EXPIRED, T0),
	    OAUTH_DEVICE_FAILED);
	cr_assert_eq(oauth_device_step(&d, OAUTH_HELD, T0),
	    OAUTH_DEVICE_FAILED);
	cr_assert_eq(oauth_device_step(&d, OAUTH_TEMPFAIL, T0 + 1000),
	    OAUTH_DEVICE_WAIT, "a 5xx while polling: keep polling");
	cr_assert_eq(oauth_device_step(&d, OAUTH_PENDING, d.deadline_ms),
	    OAUTH_DEVICE_FAILED, "the device code expired");
}
