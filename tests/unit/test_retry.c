/*
 * test_retry.c - the delivery policy (daemon/retry.c): the policy table
 * row by row, how an attempt's facts combine per recipient, the message
 * and relay backoff, the authentication rest, expiry.
 *
 * The clock and the random number are plain arguments, so every schedule
 * here is exact.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include "retry.h"
#include "param_rows.h"

#define T0 1700000000LL /* any "now" */

static const struct retry_policy test_policy = {
	.min = 60,
	.max = 3600,
	.max_age = 5 * 86400,
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
	static const int64_t want[] = { 60, 60, 120, 240, 480, 960, 1800, 1800,
		1800 };
	unsigned             a;

	for (a = 1; a <= sizeof(want) / sizeof(want[0]); a++)
		cr_assert_eq(retry_next(&test_policy, T0, a, 0) - T0,
		    want[a - 1], "attempt %u", a);
}

Test(retry, schedule_with_rnd_max_is_the_full_nominal)
{
	static const int64_t want[] = { 60, 120, 240, 480, 960, 1920, 3600,
		3600, 3600 };
	unsigned             a;

	for (a = 1; a <= sizeof(want) / sizeof(want[0]); a++)
		cr_assert_eq(retry_next(&test_policy, T0, a, UINT32_MAX) - T0,
		    want[a - 1], "attempt %u", a);
}

Test(retry, every_attempt_up_to_30_stays_within_its_bounds)
{
	static const uint32_t rnds[] = { 0, 1, 12345, 0x7fffffff, 0x80000000u,
		0xfffffffeu, UINT32_MAX };
	int64_t               d, nominal, lo;
	unsigned              a;
	size_t                r;

	for (a = 1; a <= 30; a++) {
		nominal = test_nominal(a);
		lo = nominal / 2 < 60 ? 60 : nominal / 2;
		cr_assert_leq(nominal, 3600);
		for (r = 0; r < sizeof(rnds) / sizeof(rnds[0]); r++) {
			d = retry_next(&test_policy, T0, a, rnds[r]) - T0;
			cr_assert_geq(d, lo, "attempt %u rnd %u: %lld", a,
			    rnds[r], (long long)d);
			cr_assert_leq(d, nominal, "attempt %u rnd %u: %lld", a,
			    rnds[r], (long long)d);
			cr_assert_geq(d, test_policy.min);
			cr_assert_leq(d, test_policy.max);
		}
	}
}

Test(retry, the_delay_never_shrinks_as_attempts_grow)
{
	int64_t  prev = 0, d;
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
	struct retry_policy   big = { .min = UINT32_MAX / 4,
		  .max = UINT32_MAX,
		  .max_age = UINT32_MAX };
	size_t                i;

	for (i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		cr_assert_eq(
		    retry_next(&test_policy, T0, attempts[i], UINT32_MAX) - T0,
		    3600, "attempts %u", attempts[i]);
		cr_assert_eq(retry_next(&test_policy, T0, attempts[i], 0) - T0,
		    1800, "attempts %u", attempts[i]);
		cr_assert_eq(retry_next(&big, T0, attempts[i], UINT32_MAX) - T0,
		    (int64_t)UINT32_MAX, "attempts %u", attempts[i]);
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
	cr_assert_eq(retry_next(&test_policy, INT64_MAX - 10, 5, 0), INT64_MAX);
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
	int      buckets[10] = { 0 };
	int64_t  d, lo = INT64_MAX, hi = 0;
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
	cr_assert_not(retry_expired(&test_policy, INT64_MAX - 5, INT64_MAX));
}

/* --- the policy table ---------------------------------------------------- */

#define CONNECT  RETRY_PHASE_CONNECT
#define TLS      RETRY_PHASE_TLS
#define GREETING RETRY_PHASE_GREETING
#define EHLO     RETRY_PHASE_EHLO
#define STARTTLS RETRY_PHASE_STARTTLS
#define AUTH     RETRY_PHASE_AUTH
#define MAIL     RETRY_PHASE_MAIL
#define RCPT     RETRY_PHASE_RCPT
#define DATA     RETRY_PHASE_DATA
#define BODY     RETRY_PHASE_BODY
#define END      RETRY_PHASE_END
#define IDLE     RETRY_PHASE_IDLE

#define REPLY   RETRY_EVENT_REPLY
#define VERDICT RETRY_EVENT_VERDICT
#define TIMEOUT RETRY_EVENT_TIMEOUT
#define NETWORK RETRY_EVENT_NETWORK
#define PROTO   RETRY_EVENT_PROTO
#define TLSFAIL RETRY_EVENT_TLS
#define CREDS   RETRY_EVENT_CREDENTIALS
#define LOCAL   RETRY_EVENT_LOCAL

#define DELIVERED RETRY_DELIVERED
#define DEFER     RETRY_DEFER
#define BOUNCE    RETRY_BOUNCE
#define OK        RETRY_RELAY_OK
#define DOWN      RETRY_RELAY_DOWN
#define REST      RETRY_RELAY_REST
#define F_NONE    RETRY_FAULT_NONE
#define F_MSG     RETRY_FAULT_MESSAGE
#define F_RELAY   RETRY_FAULT_RELAY
#define F_LOCAL   RETRY_FAULT_LOCAL

/* Parameters are copied into the test's own process (BoxFort re-runs
 * the binary): strings are arrays, never pointers. */
struct test_row {
	int              phase;
	int              event;
	int              code;
	char             enhanced[16];
	enum retry_fate  fate;
	enum retry_relay relay;
	enum retry_fault fault;
	char             rule[24];
};

static struct retry_fact
test_fact(int phase, int event, int code, const char *enhanced)
{
	struct retry_fact f;

	memset(&f, 0, sizeof(f));
	f.phase = (enum retry_phase)phase;
	f.event = (enum retry_event)event;
	f.code = code;
	snprintf(f.enhanced, sizeof(f.enhanced), "%s", enhanced);
	return f;
}

/* Every row of retry_rules[] has at least one line here (by its rule
 * name), with the cases the policy exists for marked. */
ParameterizedTestParameters(retry, policy_table)
{
	static struct test_row rows[] = {
		/* Not the server's answer: never a bounce. */
		{ BODY, LOCAL, 0, "", DEFER, OK, F_LOCAL, "local-error" },
		{ CONNECT, CREDS, 0, "", DEFER, REST, F_RELAY,
		    "auth-impossible" },
		{ AUTH, CREDS, 0, "", DEFER, REST, F_RELAY, "auth-impossible" },
		{ TLS, TLSFAIL, 0, "", DEFER, DOWN, F_RELAY, "tls-failed" },
		{ STARTTLS, TLSFAIL, 454, "4.7.0", DEFER, DOWN, F_RELAY,
		    "tls-failed" },
		{ CONNECT, NETWORK, 0, "", DEFER, DOWN, F_RELAY,
		    "setup-failed" },
		{ CONNECT, TIMEOUT, 0, "", DEFER, DOWN, F_RELAY,
		    "setup-failed" },
		{ GREETING, TIMEOUT, 0, "", DEFER, DOWN, F_RELAY,
		    "setup-failed" },
		{ EHLO, PROTO, 0, "", DEFER, DOWN, F_RELAY, "setup-failed" },
		{ AUTH, NETWORK, 0, "", DEFER, DOWN, F_RELAY, "setup-failed" },
		/* Getting the AUTH secret (smtp_conn, authsrc): a helper's
		 * or the token endpoint's time limit, the endpoint down or
		 * answering 5xx is the path's, a plain deferral; never
		 * the auth rest of refused credentials. */
		{ AUTH, TIMEOUT, 0, "", DEFER, DOWN, F_RELAY, "setup-failed" },
		{ MAIL, TIMEOUT, 0, "", DEFER, OK, F_RELAY,
		    "connection-failed" },
		{ BODY, TIMEOUT, 0, "", DEFER, OK, F_RELAY,
		    "connection-failed" },
		{ END, NETWORK, 0, "", DEFER, OK, F_RELAY,
		    "connection-failed" },
		{ END, PROTO, 0, "", DEFER, OK, F_RELAY, "connection-failed" },
		{ IDLE, NETWORK, 0, "", DEFER, OK, F_RELAY,
		    "connection-failed" },
		{ MAIL, VERDICT, 552, "5.3.4", BOUNCE, OK, F_MSG,
		    "not-offered" },
		{ MAIL, VERDICT, 553, "5.6.7", BOUNCE, OK, F_MSG,
		    "not-offered" },
		{ MAIL, VERDICT, 452, "4.3.1", DEFER, OK, F_MSG,
		    "not-offered-now" },
		/* The wire rules' safety net (msgfix.h): never resent. */
		{ BODY, VERDICT, 554, "5.6.0", BOUNCE, OK, F_MSG,
		    "not-sendable" },

		/* 421 anywhere: defer, the relay is down. */
		{ GREETING, REPLY, 421, "4.3.2", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ EHLO, REPLY, 421, "", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ STARTTLS, REPLY, 421, "", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ AUTH, REPLY, 421, "4.7.0", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ MAIL, REPLY, 421, "4.3.0", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ RCPT, REPLY, 421, "", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ DATA, REPLY, 421, "", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ END, REPLY, 421, "4.4.2", DEFER, DOWN, F_RELAY,
		    "service-closing" },
		{ IDLE, REPLY, 421, "", DEFER, DOWN, F_RELAY,
		    "service-closing" },

		/* Success. */
		{ END, REPLY, 250, "2.0.0", DELIVERED, OK, F_NONE,
		    "delivered" },
		{ END, REPLY, 250, "", DELIVERED, OK, F_NONE, "delivered" },
		{ RCPT, REPLY, 250, "2.1.5", DELIVERED, OK, F_NONE,
		    "accepted" },
		{ RCPT, REPLY, 251, "", DELIVERED, OK, F_NONE, "accepted" },

		/* Authentication (RFC 4954 section 6): mail kept, the relay
		 * rests. */
		{ AUTH, REPLY, 535, "5.7.8", DEFER, REST, F_RELAY,
		    "auth-refused" },
		{ AUTH, REPLY, 535, "", DEFER, REST, F_RELAY, "auth-refused" },
		{ AUTH, REPLY, 534, "5.7.9", DEFER, REST, F_RELAY,
		    "auth-refused" },
		{ AUTH, REPLY, 538, "5.7.11", DEFER, REST, F_RELAY,
		    "auth-refused" },
		{ AUTH, REPLY, 530, "5.7.0", DEFER, REST, F_RELAY,
		    "auth-refused" },
		{ AUTH, REPLY, 504, "5.5.4", DEFER, REST, F_RELAY,
		    "auth-refused" },
		{ AUTH, REPLY, 454, "4.7.0", DEFER, REST, F_RELAY,
		    "auth-temporary" },
		{ AUTH, REPLY, 454, "", DEFER, REST, F_RELAY,
		    "auth-temporary" },
		{ AUTH, REPLY, 432, "4.7.12", DEFER, REST, F_RELAY,
		    "auth-temporary" },
		{ AUTH, REPLY, 450, "4.7.1", DEFER, REST, F_RELAY,
		    "auth-temporary" },
		{ AUTH, REPLY, 435, "", DEFER, DOWN, F_RELAY,
		    "auth-unavailable" },
		{ AUTH, REPLY, 451, "4.3.0", DEFER, DOWN, F_RELAY,
		    "auth-unavailable" },
		{ MAIL, REPLY, 530, "5.7.0", DEFER, REST, F_RELAY,
		    "auth-required" },
		{ MAIL, REPLY, 530, "5.7.57", DEFER, REST, F_RELAY,
		    "auth-required" },
		{ MAIL, REPLY, 530, "", DEFER, REST, F_RELAY, "auth-required" },
		{ RCPT, REPLY, 530, "5.7.0", DEFER, REST, F_RELAY,
		    "auth-required" },
		{ DATA, REPLY, 530, "5.7.0", DEFER, REST, F_RELAY,
		    "auth-required" },
		{ END, REPLY, 530, "", DEFER, REST, F_RELAY, "auth-required" },
		{ MAIL, REPLY, 550, "5.7.0", DEFER, REST, F_RELAY,
		    "auth-required" },
		{ RCPT, REPLY, 554, "5.7.0", DEFER, REST, F_RELAY,
		    "auth-required" },
		{ MAIL, REPLY, 535, "5.7.8", DEFER, REST, F_RELAY,
		    "auth-credentials" },
		{ RCPT, REPLY, 550, "5.7.8", DEFER, REST, F_RELAY,
		    "auth-credentials" },
		{ MAIL, REPLY, 550, "4.7.8", DEFER, REST, F_RELAY,
		    "auth-credentials" }, /* class from the code */
		{ END, REPLY, 554, "5.7.9", DEFER, REST, F_RELAY,
		    "auth-too-weak" },
		{ MAIL, REPLY, 538, "5.7.11", DEFER, REST, F_RELAY,
		    "auth-needs-tls" },

		/* The message: 5xx bounces, never resent; 5.7.1 too. */
		{ MAIL, REPLY, 550, "5.7.1", BOUNCE, OK, F_MSG, "refused" },
		{ MAIL, REPLY, 554, "5.7.1", BOUNCE, OK, F_MSG, "refused" },
		{ RCPT, REPLY, 550, "5.7.1", BOUNCE, OK, F_MSG, "refused" },
		{ RCPT, REPLY, 554, "5.7.1", BOUNCE, OK, F_MSG, "refused" },
		{ DATA, REPLY, 554, "5.7.1", BOUNCE, OK, F_MSG, "refused" },
		{ END, REPLY, 550, "5.7.1", BOUNCE, OK, F_MSG, "refused" },
		{ DATA, REPLY, 554, "5.7.0", BOUNCE, OK, F_MSG, "refused" },
		{ END, REPLY, 550, "5.7.0", BOUNCE, OK, F_MSG, "refused" },
		{ MAIL, REPLY, 553, "5.1.8", BOUNCE, OK, F_MSG, "refused" },
		{ MAIL, REPLY, 552, "5.3.4", BOUNCE, OK, F_MSG, "refused" },
		{ MAIL, REPLY, 550, "", BOUNCE, OK, F_MSG, "refused" },
		{ MAIL, REPLY, 550, "5.7", BOUNCE, OK, F_MSG, "refused" },
		{ MAIL, REPLY, 550, "5.7.0.1", BOUNCE, OK, F_MSG, "refused" },
		{ RCPT, REPLY, 550, "5.1.1", BOUNCE, OK, F_MSG, "refused" },
		{ END, REPLY, 554, "5.6.0", BOUNCE, OK, F_MSG, "refused" },
		{ RCPT, REPLY, 552, "5.5.3", DEFER, OK, F_MSG,
		    "too-many-recipients" },
		{ RCPT, REPLY, 552, "", DEFER, OK, F_MSG,
		    "too-many-recipients" },
		{ MAIL, REPLY, 451, "4.7.1", DEFER, OK, F_MSG, "deferred" },
		{ RCPT, REPLY, 450, "4.7.1", DEFER, OK, F_MSG, "deferred" },
		{ RCPT, REPLY, 451, "4.2.0", DEFER, OK, F_MSG, "deferred" },
		{ DATA, REPLY, 451, "", DEFER, OK, F_MSG, "deferred" },
		{ END, REPLY, 452, "4.3.1", DEFER, OK, F_MSG, "deferred" },

		/* The session: a 554 greeting defers, the relay is down. */
		{ GREETING, REPLY, 554, "", DEFER, DOWN, F_RELAY,
		    "no-service" },
		{ GREETING, REPLY, 554, "5.7.1", DEFER, DOWN, F_RELAY,
		    "no-service" },
		{ GREETING, REPLY, 550, "", DEFER, DOWN, F_RELAY,
		    "no-service" },
		{ GREETING, REPLY, 450, "", DEFER, DOWN, F_RELAY,
		    "session-refused" },
		{ GREETING, REPLY, 354, "", DEFER, DOWN, F_RELAY,
		    "session-refused" },
		{ EHLO, REPLY, 550, "5.5.1", DEFER, DOWN, F_RELAY,
		    "session-refused" },
		{ STARTTLS, REPLY, 454, "4.7.0", DEFER, DOWN, F_RELAY,
		    "session-refused" },

		/* Whatever is left. */
		{ CONNECT, REPLY, 250, "", DEFER, DOWN, F_RELAY,
		    "setup-failed" },
		{ TLS, REPLY, 0, "", DEFER, DOWN, F_RELAY, "setup-failed" },
		{ IDLE, REPLY, 550, "", DEFER, OK, F_RELAY, "unexpected" },
		{ MAIL, REPLY, 250, "", DEFER, OK, F_RELAY, "unexpected" },
		{ MAIL, REPLY, 354, "", DEFER, OK, F_RELAY, "unexpected" },
		{ END, REPLY, 0, "", DEFER, OK, F_RELAY, "unexpected" },
		{ END, REPLY, 650, "6.0.0", DEFER, OK, F_RELAY, "unexpected" },
		{ RCPT, REPLY, 354, "", DEFER, OK, F_RELAY, "unexpected" },
		{ BODY, REPLY, 554, "5.7.1", DEFER, OK, F_RELAY, "unexpected" },
		/* Out of range: deferred, never delivered or bounced. */
		{ 99, REPLY, 250, "", DEFER, OK, F_RELAY, "unknown" },
		{ -1, REPLY, 550, "5.7.1", DEFER, OK, F_RELAY, "unknown" },
		{ END, 42, 250, "", DEFER, OK, F_RELAY, "unknown" },
	};

	return cr_make_param_array(struct test_row, rows,
	    sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(struct test_row *t, retry, policy_table)
{
	struct retry_fact    f = test_fact(t->phase, t->event, t->code,
	       t->enhanced);
	struct retry_verdict v = retry_decide(&f);

	cr_assert_str_eq(v.rule, t->rule, "%s/%s %d %s: rule",
	    retry_phase_name(f.phase), retry_event_name(f.event), t->code,
	    t->enhanced);
	cr_assert_eq(v.fate, t->fate, "%s %d %s: fate %s",
	    retry_phase_name(f.phase), t->code, t->enhanced,
	    retry_fate_name(v.fate));
	cr_assert_eq(v.relay, t->relay, "%s %d %s: relay %s",
	    retry_phase_name(f.phase), t->code, t->enhanced,
	    retry_relay_name(v.relay));
	cr_assert_eq(v.fault, t->fault, "%s %d %s: fault %d",
	    retry_phase_name(f.phase), t->code, t->enhanced, v.fault);
}

/* Over every phase and event and a spread of replies: the table is
 * total, nothing but a server's reply (or our own refusal) to the
 * message bounces it, only a reply to RCPT or the final dot delivers,
 * and a bounce is the message's fault, never the relay's. */
Test(retry, only_a_reply_to_the_message_bounces_or_delivers)
{
	static const int codes[] = { 0, 200, 220, 235, 250, 334, 354, 421, 450,
		451, 454, 500, 530, 535, 550, 552, 554, 999 };
	static const char *const statuses[] = { "", "2.0.0", "4.7.0", "5.7.0",
		"5.7.1", "5.7.8", "5.1.1", "junk" };
	struct retry_fact        f;
	struct retry_verdict     v;
	int                      ph, ev;
	size_t                   c, e;

	for (ph = 0; ph < RETRY_PHASE_COUNT; ph++)
		for (ev = 0; ev < RETRY_EVENT_COUNT; ev++)
			for (c = 0; c < sizeof(codes) / sizeof(codes[0]); c++)
				for (e = 0;
				     e < sizeof(statuses) / sizeof(statuses[0]);
				     e++) {
					f = test_fact(ph, ev, codes[c],
					    statuses[e]);
					v = retry_decide(&f);
					cr_assert_str_neq(v.rule, "unknown");
					if (v.fate == RETRY_BOUNCE) {
						/* Our own verdicts: not offered (MAIL), or
			 * content the wire cannot carry (BODY). */
						cr_assert(ev == REPLY ||
							(ev == VERDICT &&
							    (ph == MAIL ||
								ph == BODY)),
						    "%s/%s %d bounces",
						    retry_phase_name(f.phase),
						    retry_event_name(f.event),
						    codes[c]);
						cr_assert(ph == MAIL ||
						    ph == RCPT || ph == DATA ||
						    ph == END ||
						    (ph == BODY &&
							ev == VERDICT));
						cr_assert_eq(codes[c] / 100, 5);
						cr_assert_eq(v.relay,
						    RETRY_RELAY_OK);
						cr_assert_eq(v.fault,
						    RETRY_FAULT_MESSAGE);
					}
					if (v.fate == RETRY_DELIVERED) {
						cr_assert_eq(ev, REPLY);
						cr_assert(
						    ph == RCPT || ph == END);
						cr_assert_eq(codes[c] / 100, 2);
					}
					if (ph <= AUTH && ev != REPLY &&
					    ev != LOCAL && ev != VERDICT)
						cr_assert_neq(v.relay,
						    RETRY_RELAY_OK,
						    "a failed session set-up "
						    "leaves the relay up");
				}
}

/* --- an attempt, recipient by recipient ---------------------------------- */

/* What ended the attempt, and one recipient's RCPT reply. */
enum test_end {
	E_DELIVERED,
	E_DEFERRED,
	E_FAILED,
	E_UNKNOWN,
	E_TIMEOUT,
	E_DROPPED,
	E_MAIL_571,
	E_RCPT_571,
	E_RCPT_530
};
enum test_rcpt { R_NONE, R_2, R_3, R_4, R_5, R_571, R_530 };

static const struct {
	int         phase, event, code;
	const char *enhanced;
} test_ends[] = {
	[E_DELIVERED] = { END, REPLY, 250, "2.0.0" },
	[E_DEFERRED] = { END, REPLY, 451, "4.3.0" },
	[E_FAILED] = { END, REPLY, 554, "5.6.0" },
	[E_UNKNOWN] = { 77, REPLY, 250, "" },
	[E_TIMEOUT] = { END, TIMEOUT, 0, "" },
	[E_DROPPED] = { DATA, NETWORK, 0, "" },
	[E_MAIL_571] = { MAIL, REPLY, 550, "5.7.1" },
	[E_RCPT_571] = { RCPT, REPLY, 550, "5.7.1" },
	[E_RCPT_530] = { RCPT, REPLY, 530, "5.7.0" },
}, test_rcpts[] = {
	[R_NONE] = { RCPT, REPLY, 0, "" },
	[R_2] = { RCPT, REPLY, 250, "2.1.5" },
	[R_3] = { RCPT, REPLY, 354, "" },
	[R_4] = { RCPT, REPLY, 451, "4.2.0" },
	[R_5] = { RCPT, REPLY, 550, "5.1.1" },
	[R_571] = { RCPT, REPLY, 550, "5.7.1" },
	[R_530] = { RCPT, REPLY, 530, "5.7.0" },
};

struct test_attempt {
	enum test_end    end;
	enum test_rcpt   rcpt;
	enum retry_fate  fate;
	enum retry_relay relay;
};

/* The rows of the former retry_classify table (outcome 0 delivered, 1
 * deferred, 2 failed, other unknown x recipient class 2, 4, 5, 0, 3),
 * now as facts, and the cases of the policy. */
ParameterizedTestParameters(retry, attempt_table)
{
	static struct test_attempt rows[] = {
		{ E_DELIVERED, R_2, DELIVERED, OK },
		{ E_DELIVERED, R_5, BOUNCE, OK },
		{ E_DELIVERED, R_4, DEFER, OK },
		{ E_DELIVERED, R_NONE, DEFER, OK }, /* never answered */
		{ E_DELIVERED, R_3, DEFER, OK },
		{ E_DEFERRED, R_2, DEFER, OK },
		{ E_DEFERRED, R_4, DEFER, OK },
		{ E_DEFERRED, R_NONE, DEFER, OK },
		{ E_DEFERRED, R_5, BOUNCE, OK },
		{ E_FAILED, R_2, BOUNCE, OK },
		/* Changed: a recipient refused only for now never got the
		 * data the others had refused; it waits (it bounced). */
		{ E_FAILED, R_4, DEFER, OK },
		{ E_FAILED, R_5, BOUNCE, OK },
		{ E_FAILED, R_NONE, BOUNCE, OK },
		{ E_UNKNOWN, R_2, DEFER, OK },
		{ E_UNKNOWN, R_NONE, DEFER, OK },
		{ E_UNKNOWN, R_5, BOUNCE, OK },
		/* A connection failing after the dot never bounces... */
		{ E_TIMEOUT, R_2, DEFER, OK },
		/* ... but a 5xx to RCPT before it stands. */
		{ E_DROPPED, R_5, BOUNCE, OK },
		{ E_DROPPED, R_2, DEFER, OK },
		/* 5.7.1 to MAIL and to RCPT: bounced, never resent. */
		{ E_MAIL_571, R_NONE, BOUNCE, OK },
		{ E_RCPT_571, R_571, BOUNCE, OK },
		{ E_DELIVERED, R_571, BOUNCE, OK },
		/* 530 to RCPT: kept, and the whole relay rests. */
		{ E_RCPT_530, R_530, DEFER, REST },
		{ E_DELIVERED, R_530, DEFER, REST },
	};

	return cr_make_param_array(struct test_attempt, rows,
	    sizeof(rows) / sizeof(rows[0]));
}

ParameterizedTest(struct test_attempt *t, retry, attempt_table)
{
	struct retry_fact    end, rcpt;
	struct retry_verdict v;
	enum retry_fate      fate = (enum retry_fate) - 1;

	end = test_fact(test_ends[t->end].phase, test_ends[t->end].event,
	    test_ends[t->end].code, test_ends[t->end].enhanced);
	rcpt = test_fact(test_rcpts[t->rcpt].phase, test_rcpts[t->rcpt].event,
	    test_rcpts[t->rcpt].code, test_rcpts[t->rcpt].enhanced);
	v = retry_attempt(&end, &rcpt, 1, &fate);
	cr_assert_eq(fate, t->fate, "end %d rcpt %d: %s", t->end, t->rcpt,
	    retry_fate_name(fate));
	cr_assert_eq(v.relay, t->relay, "end %d rcpt %d: relay %s", t->end,
	    t->rcpt, retry_relay_name(v.relay));
}

Test(retry, an_attempt_decides_each_recipient_and_the_relay_once)
{
	struct retry_fact    end = test_fact(END, REPLY, 250, "2.0.0");
	struct retry_fact    rcpt[4];
	enum retry_fate      fate[4];
	struct retry_verdict v;

	rcpt[0] = test_fact(RCPT, REPLY, 250, "2.1.5");
	rcpt[1] = test_fact(RCPT, REPLY, 530, "5.7.0");
	rcpt[2] = test_fact(RCPT, REPLY, 550, "5.1.1");
	rcpt[3] = test_fact(RCPT, REPLY, 0, "");
	v = retry_attempt(&end, rcpt, 4, fate);
	cr_assert_eq(fate[0], RETRY_DELIVERED);
	cr_assert_eq(fate[1], RETRY_DEFER);
	cr_assert_eq(fate[2], RETRY_BOUNCE);
	cr_assert_eq(fate[3], RETRY_DEFER);
	cr_assert_eq(v.relay, RETRY_RELAY_REST);
	cr_assert_str_eq(v.rule, "auth-required");
}

Test(retry, without_rcpt_facts_every_recipient_shares_the_end)
{
	struct retry_fact    end = test_fact(MAIL, REPLY, 550, "5.7.1");
	enum retry_fate      fate[3] = { DELIVERED, DELIVERED, DELIVERED };
	struct retry_verdict v;

	v = retry_attempt(&end, NULL, 3, fate);
	cr_assert_eq(fate[0], RETRY_BOUNCE);
	cr_assert_eq(fate[1], RETRY_BOUNCE);
	cr_assert_eq(fate[2], RETRY_BOUNCE);
	cr_assert_eq(v.relay, RETRY_RELAY_OK);
	cr_assert_str_eq(v.rule, "refused");
	end = test_fact(END, REPLY, 250, "");
	(void)retry_attempt(&end, NULL, 3, fate);
	cr_assert_eq(fate[0], RETRY_DEFER, "never answered, not delivered");
}

/* --- relay backoff and the authentication rest -------------------------- */

Test(retry, a_down_relay_follows_the_message_schedule)
{
	unsigned a;

	for (a = 1; a <= 12; a++) {
		cr_assert_eq(
		    retry_relay_next(&test_policy, RETRY_RELAY_DOWN, T0, a, 0),
		    retry_next(&test_policy, T0, a, 0));
		cr_assert_eq(retry_relay_next(&test_policy, RETRY_RELAY_DOWN,
				 T0, a, UINT32_MAX),
		    retry_next(&test_policy, T0, a, UINT32_MAX));
	}
}

Test(retry, a_resting_relay_waits_at_least_the_auth_rest)
{
	unsigned a;
	int64_t  d, n;

	cr_assert_eq(RETRY_AUTH_REST, 900);
	for (a = 1; a <= 12; a++) {
		d = retry_relay_next(&test_policy, RETRY_RELAY_REST, T0, a,
			0x12345678u) -
		    T0;
		n = retry_next(&test_policy, T0, a, 0x12345678u) - T0;
		cr_assert_eq(d, n > 900 ? n : 900, "failure %u", a);
	}
	cr_assert_eq(retry_relay_next(&test_policy, RETRY_RELAY_REST,
			 INT64_MAX - 10, 1, 0),
	    INT64_MAX);
}

Test(retry, a_relay_that_is_fine_is_due_now)
{
	cr_assert_eq(retry_relay_next(&test_policy, RETRY_RELAY_OK, T0, 5, 0),
	    T0);
	cr_assert_eq(
	    retry_relay_next(&test_policy, (enum retry_relay)9, T0, 5, 0), T0);
}

Test(retry, names_cover_every_value)
{
	int i;

	for (i = 0; i < RETRY_PHASE_COUNT; i++)
		cr_assert_str_neq(retry_phase_name((enum retry_phase)i), "?");
	for (i = 0; i < RETRY_EVENT_COUNT; i++)
		cr_assert_str_neq(retry_event_name((enum retry_event)i), "?");
	cr_assert_str_eq(retry_phase_name(RETRY_PHASE_COUNT), "?");
	cr_assert_str_eq(retry_fate_name(RETRY_BOUNCE), "bounce");
	cr_assert_str_eq(retry_relay_name(RETRY_RELAY_REST), "rest");
	cr_assert_str_eq(retry_relay_name((enum retry_relay) - 1), "?");
}
