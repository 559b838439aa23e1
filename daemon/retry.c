/*
 * retry.c - what an attempt means for a recipient, and when to try again.
 *
 * How it works: everything is arithmetic on values passed in; there is no
 * clock and no random source here.
 *
 * Classification: the outcome is the integer value of enum
 * smtp_conn_outcome (smtp_conn.h), which this core does not include so
 * that it stays free of I/O headers: 0 = SMTP_CONN_DELIVERED (the server
 * took the message for the recipients it accepted), 1 =
 * SMTP_CONN_DEFERRED (temporary: connection, TLS, 4xx, timeout), 2 =
 * SMTP_CONN_FAILED (permanent for the whole message).  The recipient's
 * class (2, 4, 5, 0 = not tried) then decides for a delivered or
 * deferred message:
 *
 *	outcome \ class	2		5		4, 0, other
 *	0 delivered	DELIVERED	FAIL		DEFER
 *	1 deferred	DEFER		FAIL		DEFER
 *	2 failed	FAIL		FAIL		FAIL
 *	other		DEFER		FAIL		DEFER
 *
 * A deferred message whose recipient got a 2xx to RCPT is not delivered
 * (the data never got through), so it is tried again.  An unknown outcome
 * is treated as deferred: guessing "delivered" could drop mail.
 *
 * Backoff: nominal = min * 2^(attempts - 1), capped at max, computed in 64
 * bits with the shift bounded so no attempts value overflows.  The delay
 * is nominal/2 + the share rnd / 2^32 of the nominal/2 + 1 values up to
 * nominal, so rnd = 0 gives nominal/2 and rnd = UINT32_MAX gives nominal,
 * with every value in between equally likely for a uniform rnd.  The
 * delay is then raised to min, and now + delay saturates at INT64_MAX.
 */
#include <stdint.h>

#include "retry.h"

enum retry_fate
retry_classify(int outcome, int rcpt_class)
{
	if (outcome == 2 || rcpt_class == 5)
		return RETRY_FAIL;
	if (outcome == 0 && rcpt_class == 2)
		return RETRY_DELIVERED;
	return RETRY_DEFER;
}

/* min * 2^(attempts - 1), capped at max (and at least min). */
static uint64_t
retry_nominal(uint64_t min, uint64_t max, unsigned attempts)
{
	unsigned shift;

	if (max < min)
		max = min;
	if (attempts < 1)
		attempts = 1;
	shift = attempts - 1;
	/* min < 2^32, so a shift of 32 or more passes any unsigned max. */
	if (shift >= 32 || (min << shift) > max)
		return max;
	return min << shift;
}

int64_t
retry_next(const struct retry_policy *p, int64_t now, unsigned attempts,
    uint32_t rnd)
{
	uint64_t nominal, lo, span, delay;

	nominal = retry_nominal(p->min, p->max, attempts);
	lo = nominal / 2;
	span = nominal - lo;		/* <= 2^31: no overflow below */
	delay = lo + (((span + 1) * (uint64_t)rnd) >> 32);
	if (delay < p->min)
		delay = p->min;
	if (now > 0 && delay > (uint64_t)(INT64_MAX - now))
		return INT64_MAX;
	return now + (int64_t)delay;
}

int
retry_expired(const struct retry_policy *p, int64_t created, int64_t now)
{
	if (now < created)
		return 0;	/* the clock went back: not yet */
	return (uint64_t)now - (uint64_t)created >= p->max_age;
}
