/*
 * test_retry.c - backoff schedule, jitter bounds, expiry and the
 * classification of results (daemon/retry.c).
 *
 * The clock and the random number are plain arguments, so every schedule
 * here is exact.
 */
#include <stdint.h>
#include <stdlib.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "retry.h"

#define T0	1700000000LL	/* any "now" */

static const struct retry_policy test_policy = {
	.min = 60, .max = 3600, .max_age = 5 * 86400,
};

/* The nominal delay of attempt a (1-based) under min 60, max 3600. */
static int64_t
test_nominal(unsigned a)
{
	static const int64_t table[] = { 60, 120, 240, 480, 960, 1920 };

	return a <= 6 ? table[a - 1] : 3600;
}

TestSuite(retry);

/* --- the schedule -------------------------------------------------------- */

Test(retry, schedule_with_rnd_zero_is_half_the_nominal_but_at_least_min)
{
	/* 60/2 = 30 is raised to min; then nominal/2; the cap is 3600. */
	static const int64_t want[] = { 60, 60, 120, 240, 480, 960, 1800,
	    1800, 1800 };
	unsigned a;

	for (a = 1; a <= sizeof(want) / sizeof(want[0]); a++)
		cr_assert_eq(retry_next(&test_policy, T0, a, 0) - T0,
		    want[a - 1], "attempt %u", a);
}

Test(retry, schedule_with_rnd_max_is_the_full_nominal)
{
	static const int64_t want[] = { 60, 120, 240, 480, 960, 1920, 3600,
	    3600, 3600 };
	unsigned a;

	for (a = 1; a <= sizeof(want) / sizeof(want[0]); a++)
		cr_assert_eq(retry_next(&test_policy, T0, a, UINT32_MAX) - T0,
		    want[a - 1], "attempt %u", a);
}

Test(retry, every_attempt_up_to_30_stays_within_its_bounds)
{
	static const uint32_t rnds[] = { 0, 1, 12345, 0x7fffffff,
	    0x80000000u, 0xfffffffeu, UINT32_MAX };
	int64_t d, nominal, lo;
	unsigned a;
	size_t r;

	for (a = 1; a <= 30; a++) {
		nominal = test_nominal(a);
		lo = nominal / 2 < 60 ? 60 : nominal / 2;
		cr_assert_leq(nominal, 3600);
		for (r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
			d = retry_next(&test_policy, T0, a, rnds[r]) - T0;
			cr_assert_geq(d, lo, "attempt %u rnd %u: %lld", a,
			    rnds[r], (long long)d);
			cr_assert_leq(d, nominal, "attempt %u rnd %u: %lld",
			    a, rnds[r], (long long)d);
			cr_assert_geq(d, test_policy.min);
			cr_assert_leq(d, test_policy.max);
		}
	}
}

Test(retry, the_delay_never_shrinks_as_attempts_grow)
{
	int64_t prev = 0, d;
	unsigned a;

	for (a = 1; a <= 40; a++) {
		d = retry_next(&test_policy, T0, a, 0x9e3779b9u) - T0;
		cr_assert_geq(d, prev, "attempt %u", a);
		prev = d;
	}
}

Test(retry, huge_attempt_counts_do_not_overflow)
{
	static const unsigned attempts[] = { 31, 32, 33, 63, 64, 65, 1000,
	    UINT32_MAX / 2, UINT32_MAX };
	struct retry_policy big = { .min = UINT32_MAX / 4,
	    .max = UINT32_MAX, .max_age = UINT32_MAX };
	size_t i;

	for (i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		cr_assert_eq(retry_next(&test_policy, T0, attempts[i],
		    UINT32_MAX) - T0, 3600, "attempts %u", attempts[i]);
		cr_assert_eq(retry_next(&test_policy, T0, attempts[i], 0) -
		    T0, 1800, "attempts %u", attempts[i]);
		cr_assert_eq(retry_next(&big, T0, attempts[i], UINT32_MAX) -
		    T0, (int64_t)UINT32_MAX, "attempts %u", attempts[i]);
	}
	/* The largest shift that still fits: min 1 doubles 31 times. */
	big.min = 1;
	cr_assert_eq(retry_next(&big, 0, 32, UINT32_MAX), 1LL << 31);
	cr_assert_eq(retry_next(&big, 0, 33, UINT32_MAX), UINT32_MAX);
}

Test(retry, attempt_zero_is_treated_as_the_first)
{
	cr_assert_eq(retry_next(&test_policy, T0, 0, UINT32_MAX) - T0, 60);
}

Test(retry, the_result_saturates_instead_of_wrapping)
{
	cr_assert_eq(retry_next(&test_policy, INT64_MAX - 10, 5, 0),
	    INT64_MAX);
}

Test(retry, a_min_above_max_wins)
{
	struct retry_policy p = { .min = 600, .max = 60, .max_age = 86400 };

	cr_assert_eq(retry_next(&p, T0, 1, 0) - T0, 600);
	cr_assert_eq(retry_next(&p, T0, 9, UINT32_MAX) - T0, 600);
}

Test(retry, jitter_covers_the_whole_range)
{
	/* attempt 7: nominal 3600, so the delay is anywhere in
	 * [1800, 3600]; 4096 evenly spread rnd values hit every tenth of
	 * that range and both ends. */
	int buckets[10] = { 0 };
	int64_t d, lo = INT64_MAX, hi = 0;
	uint32_t rnd;
	unsigned i;

	for (i = 0; i < 4096; i++) {
		rnd = (uint32_t)i << 20 | ((7919u * i) & 0xfffffu);
		d = retry_next(&test_policy, T0, 7, rnd) - T0;
		cr_assert_geq(d, 1800);
		cr_assert_leq(d, 3600);
		buckets[d == 3600 ? 9 : (d - 1800) * 10 / 1800]++;
		if (d < lo)
			lo = d;
		if (d > hi)
			hi = d;
	}
	for (i = 0; i < 10; i++)
		cr_assert_gt(buckets[i], 300, "bucket %u: %d", i, buckets[i]);
	cr_assert_leq(lo, 1801);
	d = retry_next(&test_policy, T0, 7, UINT32_MAX) - T0;
	cr_assert_eq(d, 3600);
	cr_assert_geq(hi, 3599);
}

Test(retry, the_midpoint_rnd_gives_the_middle_of_the_range)
{
	cr_assert_eq(retry_next(&test_policy, T0, 7, 0x80000000u) - T0,
	    1800 + 900);
}

/* --- expiry -------------------------------------------------------------- */

Test(retry, expires_exactly_at_max_age)
{
	cr_assert_not(retry_expired(&test_policy, T0, T0));
	cr_assert_not(retry_expired(&test_policy, T0, T0 + 5 * 86400 - 1));
	cr_assert(retry_expired(&test_policy, T0, T0 + 5 * 86400));
	cr_assert(retry_expired(&test_policy, T0, T0 + 5 * 86400 + 1));
}

Test(retry, a_message_from_the_future_has_not_expired)
{
	cr_assert_not(retry_expired(&test_policy, T0 + 100, T0));
}

Test(retry, expiry_does_not_overflow_at_the_extremes)
{
	cr_assert(retry_expired(&test_policy, INT64_MIN, INT64_MAX));
	cr_assert_not(retry_expired(&test_policy, INT64_MAX, INT64_MIN));
	cr_assert_not(retry_expired(&test_policy, INT64_MAX - 5,
	    INT64_MAX));
}

/* --- classification ------------------------------------------------------ */

struct test_fate {
	int		outcome;
	int		rcpt_class;
	enum retry_fate	fate;
};

ParameterizedTestParameters(retry, classify_table)
{
	static struct test_fate params[] = {
		/* 0: the message was delivered (SMTP_CONN_DELIVERED) */
		{ 0, 2, RETRY_DELIVERED },
		{ 0, 5, RETRY_FAIL },
		{ 0, 4, RETRY_DEFER },
		{ 0, 0, RETRY_DEFER },
		{ 0, 3, RETRY_DEFER },
		/* 1: deferred (SMTP_CONN_DEFERRED) */
		{ 1, 2, RETRY_DEFER },
		{ 1, 4, RETRY_DEFER },
		{ 1, 0, RETRY_DEFER },
		{ 1, 5, RETRY_FAIL },
		/* 2: failed for good (SMTP_CONN_FAILED) */
		{ 2, 2, RETRY_FAIL },
		{ 2, 4, RETRY_FAIL },
		{ 2, 5, RETRY_FAIL },
		{ 2, 0, RETRY_FAIL },
		/* an unknown outcome never counts as delivered */
		{ 7, 2, RETRY_DEFER },
		{ -1, 0, RETRY_DEFER },
		{ 7, 5, RETRY_FAIL },
	};

	return cr_make_param_array(struct test_fate, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_fate *t, retry, classify_table)
{
	cr_assert_eq(retry_classify(t->outcome, t->rcpt_class), t->fate,
	    "outcome %d class %d", t->outcome, t->rcpt_class);
}
