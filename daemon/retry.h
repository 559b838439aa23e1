/*
 * retry.h - the one place that decides what an attempt means for each
 * recipient (delivered, try again, failed for good) and when the next
 * attempt is due.
 *
 * Owns: the backoff schedule (exponential from retry_min, doubling, capped
 * at retry_max, with jitter), expiry after max_age, the classification of
 * a recipient's result.
 * May call: nothing but libc.  Pure: the clock and the random number are
 * passed in, so tests are deterministic.
 */
#ifndef SENDQ_RETRY_H
#define SENDQ_RETRY_H

#include <stdint.h>

struct retry_policy {
	unsigned	min;		/* seconds, >= 1 */
	unsigned	max;		/* seconds, >= min */
	unsigned	max_age;	/* seconds since acceptance */
};

/* RETRY_DEFER is zero on purpose: a fate array left zero-filled by
 * mistake retries (and, past max_age, bounces); it never drops mail. */
enum retry_fate {
	RETRY_DEFER = 0,	/* try again at retry_next() */
	RETRY_DELIVERED,	/* the server accepted it */
	RETRY_FAIL,		/* permanent: bounce / failed/ */
};

/* The outcome of one attempt for one recipient, as smtp_conn reports it:
 * the message outcome (0 delivered, 1 deferred, 2 failed — the values of
 * enum smtp_conn_outcome) and the recipient's class (2, 4, 5, 0). */
enum retry_fate	retry_classify(int outcome, int rcpt_class);

/*
 * When to try again after the attempts-th failed attempt (attempts >= 1):
 * now + d where the nominal delay is min * 2^(attempts-1) capped at max,
 * and d is drawn uniformly from [nominal/2, nominal] using rnd (any 32-bit
 * value), but never below min.  Overflow-safe for any attempts.
 */
int64_t	retry_next(const struct retry_policy *p, int64_t now,
	    unsigned attempts, uint32_t rnd);

/* Non-zero when a message accepted at created has run out of time. */
int	retry_expired(const struct retry_policy *p, int64_t created,
	    int64_t now);

#endif
