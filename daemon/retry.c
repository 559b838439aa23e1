/*
 * retry.c - delivery policy: what an attempt means, and when to try again.
 *
 * How it works: everything is arithmetic on values passed in; there is no
 * clock and no random source here.
 *
 * The table.  retry_rules[] is read top down and the first row whose
 * phase set, event set, reply code pattern and enhanced status pattern
 * all match a fact decides.  A code pattern is three characters, 'x'
 * matching any digit ("530", "5xx"); NULL matches anything, no code
 * included.  A status pattern is "class.subject.detail" with 'x' for any
 * part ("x.7.8" is 4.7.8 or 5.7.8: the reply code's class decides
 * temporary or permanent, RFC 3463 says they agree); NULL matches
 * anything, no enhanced status included.  The last rows match every
 * valid phase and event, so the table is total; a value out of range
 * matches no row and gets retry_unknown (defer, relay fine).
 *
 * Decisions argued:
 *   - 5.7.1 ("delivery not authorized, message refused") to MAIL or RCPT
 *     is about this sender or recipient: it bounces.  Deferring it (as
 *     sendq once did) resent the message until max_age, five days
 *     before its sender heard of it.
 *   - Authentication (RFC 4954 section 6) is a setting of ours, not the
 *     message's: every message would meet it, so bouncing would bounce
 *     them all.  The mail is kept and the relay rests.  530 is
 *     "authentication required" wherever it comes; 5.7.8 (credentials
 *     invalid), 5.7.9 (mechanism too weak) and 5.7.11 (encryption
 *     required) name credentials outright; 5.7.0 counts only before any
 *     content was sent (MAIL, RCPT), where it can only be about who we
 *     are: after DATA it is a content verdict and bounces.  A temporary
 *     failure to AUTH (454, 4.7.x) rests the relay too: providers answer
 *     "454 4.7.0 too many login attempts", and retrying soon locks the
 *     account.
 *   - A 5xx greeting ("554 no SMTP service here"): Postfix bounces the
 *     recipients when that host is the last MX.  A smarthost is our only
 *     way out, so the same refusal would bounce every queued message for
 *     what is a relay-side state (our address blocklisted, the wrong port,
 *     maintenance) that an operator can fix.  We defer and mark the relay
 *     down (its fallback, if any, takes over); max_age still bounds the
 *     wait, and the expiry bounce quotes the refusal.
 *   - 421 anywhere: the server is closing the channel; the relay is down.
 *   - 552 to RCPT is "too many recipients" (RFC 5321 4.5.3.1.10: treat
 *     as temporary).
 *   - A failure before the session is ready (timeout, lost connection,
 *     garbage, TLS) is the relay's: down.  During a transaction it costs
 *     the message an attempt; the relay gets new connections as needed.
 *
 * Combining an attempt (retry_attempt): a recipient refused at RCPT has
 * its own verdict; accepted ones share the end's; ones never answered
 * share the end's but are never DELIVERED.  The relay verdict is the
 * most severe of all.
 *
 * Backoff: nominal = min * 2^(attempts - 1), capped at max, computed in 64
 * bits with the shift bounded so no attempts value overflows.  The delay
 * is nominal/2 + the share rnd / 2^32 of the nominal/2 + 1 values up to
 * nominal, so rnd = 0 gives nominal/2 and rnd = UINT32_MAX gives nominal,
 * with every value in between equally likely for a uniform rnd.  The
 * delay is then raised to min, and now + delay saturates at INT64_MAX.
 * A relay uses the same schedule over its failures in a row; a resting
 * one waits at least RETRY_AUTH_REST.
 */
#include <stddef.h>
#include <stdint.h>

#include "retry.h"

#define RETRY_PH(p) (1u << (p))
#define RETRY_EV(e) (1u << (e))

#define RETRY_PH_SETUP \
	(RETRY_PH(RETRY_PHASE_CONNECT) | RETRY_PH(RETRY_PHASE_TLS) | \
	    RETRY_PH(RETRY_PHASE_GREETING) | RETRY_PH(RETRY_PHASE_EHLO) | \
	    RETRY_PH(RETRY_PHASE_STARTTLS) | RETRY_PH(RETRY_PHASE_AUTH))
#define RETRY_PH_ENVELOPE \
	(RETRY_PH(RETRY_PHASE_MAIL) | RETRY_PH(RETRY_PHASE_RCPT))
/* The commands of a transaction (a reply while the body is being written
 * answers none of them). */
#define RETRY_PH_TXN \
	(RETRY_PH_ENVELOPE | RETRY_PH(RETRY_PHASE_DATA) | \
	    RETRY_PH(RETRY_PHASE_END))
#define RETRY_PH_HELLO \
	(RETRY_PH(RETRY_PHASE_GREETING) | RETRY_PH(RETRY_PHASE_EHLO) | \
	    RETRY_PH(RETRY_PHASE_STARTTLS))
#define RETRY_PH_ALL ((1u << RETRY_PHASE_COUNT) - 1)

#define RETRY_EV_REPLY RETRY_EV(RETRY_EVENT_REPLY)
#define RETRY_EV_LINK \
	(RETRY_EV(RETRY_EVENT_TIMEOUT) | RETRY_EV(RETRY_EVENT_NETWORK) | \
	    RETRY_EV(RETRY_EVENT_PROTO))
#define RETRY_EV_ALL ((1u << RETRY_EVENT_COUNT) - 1)

/* Short names for the verdict columns. */
#define DELIVER RETRY_DELIVERED
#define DEFER   RETRY_DEFER
#define BOUNCE  RETRY_BOUNCE
#define R_OK    RETRY_RELAY_OK
#define R_DOWN  RETRY_RELAY_DOWN
#define R_REST  RETRY_RELAY_REST
#define F_NONE  RETRY_FAULT_NONE
#define F_MSG   RETRY_FAULT_MESSAGE
#define F_RELAY RETRY_FAULT_RELAY
#define F_LOCAL RETRY_FAULT_LOCAL

struct retry_rule {
	unsigned             phases; /* RETRY_PH() bits */
	unsigned             events; /* RETRY_EV() bits */
	const char          *code;   /* "5xx", "530"; NULL any */
	const char          *status; /* "x.7.8"; NULL any */
	struct retry_verdict v;
};

static const struct retry_rule retry_rules[] = {
	/* Not the server's answer. */
	{ RETRY_PH_ALL, RETRY_EV(RETRY_EVENT_LOCAL), NULL, NULL,
	    { DEFER, R_OK, F_LOCAL, "local-error" } },
	{ RETRY_PH_ALL, RETRY_EV(RETRY_EVENT_CREDENTIALS), NULL, NULL,
	    { DEFER, R_REST, F_RELAY, "auth-impossible" } },
	{ RETRY_PH_ALL, RETRY_EV(RETRY_EVENT_TLS), NULL, NULL,
	    { DEFER, R_DOWN, F_RELAY, "tls-failed" } },
	{ RETRY_PH_SETUP, RETRY_EV_LINK, NULL, NULL,
	    { DEFER, R_DOWN, F_RELAY, "setup-failed" } },
	{ RETRY_PH_ALL, RETRY_EV_LINK, NULL, NULL,
	    { DEFER, R_OK, F_RELAY, "connection-failed" } },
	{ RETRY_PH(RETRY_PHASE_MAIL), RETRY_EV(RETRY_EVENT_VERDICT), "5xx",
	    NULL, { BOUNCE, R_OK, F_MSG, "not-offered" } },
	/* The message holds what the wire must never carry (a NUL, a line
	 * over 998 octets: msgfix.h); the final dot was never sent. */
	{ RETRY_PH(RETRY_PHASE_BODY), RETRY_EV(RETRY_EVENT_VERDICT), "5xx",
	    NULL, { BOUNCE, R_OK, F_MSG, "not-sendable" } },
	{ RETRY_PH_ALL, RETRY_EV(RETRY_EVENT_VERDICT), NULL, NULL,
	    { DEFER, R_OK, F_MSG, "not-offered-now" } },

	/* Replies: the channel, then success. */
	{ RETRY_PH_ALL, RETRY_EV_REPLY, "421", NULL,
	    { DEFER, R_DOWN, F_RELAY, "service-closing" } },
	{ RETRY_PH(RETRY_PHASE_END), RETRY_EV_REPLY, "2xx", NULL,
	    { DELIVER, R_OK, F_NONE, "delivered" } },
	{ RETRY_PH(RETRY_PHASE_RCPT), RETRY_EV_REPLY, "2xx", NULL,
	    { DELIVER, R_OK, F_NONE, "accepted" } },

	/* Authentication (RFC 4954 section 6). */
	{ RETRY_PH(RETRY_PHASE_AUTH), RETRY_EV_REPLY, "5xx", NULL,
	    { DEFER, R_REST, F_RELAY, "auth-refused" } },
	{ RETRY_PH(RETRY_PHASE_AUTH), RETRY_EV_REPLY, "454", NULL,
	    { DEFER, R_REST, F_RELAY, "auth-temporary" } },
	{ RETRY_PH(RETRY_PHASE_AUTH), RETRY_EV_REPLY, "4xx", "x.7.x",
	    { DEFER, R_REST, F_RELAY, "auth-temporary" } },
	{ RETRY_PH(RETRY_PHASE_AUTH), RETRY_EV_REPLY, "4xx", NULL,
	    { DEFER, R_DOWN, F_RELAY, "auth-unavailable" } },
	{ RETRY_PH_TXN, RETRY_EV_REPLY, "530", NULL,
	    { DEFER, R_REST, F_RELAY, "auth-required" } },
	{ RETRY_PH_TXN, RETRY_EV_REPLY, "5xx", "x.7.8",
	    { DEFER, R_REST, F_RELAY, "auth-credentials" } },
	{ RETRY_PH_TXN, RETRY_EV_REPLY, "5xx", "x.7.9",
	    { DEFER, R_REST, F_RELAY, "auth-too-weak" } },
	{ RETRY_PH_TXN, RETRY_EV_REPLY, "5xx", "x.7.11",
	    { DEFER, R_REST, F_RELAY, "auth-needs-tls" } },
	{ RETRY_PH_ENVELOPE, RETRY_EV_REPLY, "5xx", "x.7.0",
	    { DEFER, R_REST, F_RELAY, "auth-required" } },

	/* The message. */
	{ RETRY_PH(RETRY_PHASE_RCPT), RETRY_EV_REPLY, "552", NULL,
	    { DEFER, R_OK, F_MSG, "too-many-recipients" } },
	{ RETRY_PH_TXN, RETRY_EV_REPLY, "5xx", NULL,
	    { BOUNCE, R_OK, F_MSG, "refused" } },
	{ RETRY_PH_TXN, RETRY_EV_REPLY, "4xx", NULL,
	    { DEFER, R_OK, F_MSG, "deferred" } },

	/* The session. */
	{ RETRY_PH(RETRY_PHASE_GREETING), RETRY_EV_REPLY, "5xx", NULL,
	    { DEFER, R_DOWN, F_RELAY, "no-service" } },
	{ RETRY_PH_HELLO, RETRY_EV_REPLY, NULL, NULL,
	    { DEFER, R_DOWN, F_RELAY, "session-refused" } },

	/* Whatever is left. */
	{ RETRY_PH_SETUP, RETRY_EV_ALL, NULL, NULL,
	    { DEFER, R_DOWN, F_RELAY, "setup-failed" } },
	{ RETRY_PH_ALL, RETRY_EV_ALL, NULL, NULL,
	    { DEFER, R_OK, F_RELAY, "unexpected" } },
};

static const struct retry_verdict retry_unknown = { DEFER, R_OK, F_RELAY,
	"unknown" };

/* "5xx" against 550. */
static int
retry_code_match(const char *pat, int code)
{
	int i, div = 100;

	if (pat == NULL)
		return 1;
	if (code < 100 || code > 999)
		return 0;
	for (i = 0; i < 3; i++, div /= 10)
		if (pat[i] != 'x' && pat[i] - '0' != (code / div) % 10)
			return 0;
	return 1;
}

/* One number of an enhanced status: digits up to '.' or the end.
 * Returns the value (-1 for 'x' in a pattern, -2 when malformed) and
 * advances *s past the separator. */
static long
retry_status_part(const char **s, int pattern)
{
	const char *p = *s;
	long        v = 0;
	int         n = 0;

	if (pattern && *p == 'x') {
		p++;
		v = -1;
		n = 1;
	} else
		for (; *p >= '0' && *p <= '9' && n < 4; p++, n++)
			v = v * 10 + (*p - '0');
	if (n == 0 || (*p != '.' && *p != '\0'))
		return -2;
	*s = *p == '.' ? p + 1 : p;
	return v;
}

/* "x.7.8" against "5.7.8"; a fact without a (valid) status matches only
 * NULL. */
static int
retry_status_match(const char *pat, const char *status)
{
	long pv, sv;
	int  i;

	if (pat == NULL)
		return 1;
	for (i = 0; i < 3; i++) {
		pv = retry_status_part(&pat, 1);
		sv = retry_status_part(&status, 0);
		if (sv < 0 || (pv != -1 && pv != sv))
			return 0;
		if ((*status == '\0') != (i == 2))
			return 0; /* not three parts */
	}
	return 1;
}

struct retry_verdict
retry_decide(const struct retry_fact *f)
{
	const struct retry_rule *r;
	size_t                   i;

	if ((unsigned)f->phase >= RETRY_PHASE_COUNT ||
	    (unsigned)f->event >= RETRY_EVENT_COUNT)
		return retry_unknown;
	for (i = 0; i < sizeof(retry_rules) / sizeof(retry_rules[0]); i++) {
		r = &retry_rules[i];
		if ((r->phases & RETRY_PH(f->phase)) != 0 &&
		    (r->events & RETRY_EV(f->event)) != 0 &&
		    retry_code_match(r->code, f->code) &&
		    retry_status_match(r->status, f->enhanced))
			return r->v;
	}
	return retry_unknown;
}

struct retry_verdict
retry_attempt(const struct retry_fact *end, const struct retry_fact *rcpt,
    size_t n, enum retry_fate *fate)
{
	struct retry_verdict ev, rv, worst;
	size_t               i;

	ev = retry_decide(end);
	worst = ev;
	for (i = 0; i < n; i++) {
		if (rcpt == NULL || rcpt[i].code == 0) {
			/* Never answered: not delivered, whatever end says. */
			fate[i] = ev.fate == RETRY_DELIVERED ? RETRY_DEFER :
							       ev.fate;
			continue;
		}
		rv = retry_decide(&rcpt[i]);
		fate[i] = rv.fate == RETRY_DELIVERED ? ev.fate : rv.fate;
		if (rv.relay > worst.relay)
			worst = rv;
	}
	return worst;
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

/* now + delay, saturating. */
static int64_t
retry_add(int64_t now, uint64_t delay)
{
	if (now > 0 && delay > (uint64_t)(INT64_MAX - now))
		return INT64_MAX;
	return now + (int64_t)delay;
}

static uint64_t
retry_delay(const struct retry_policy *p, unsigned attempts, uint32_t rnd)
{
	uint64_t nominal, lo, span, delay;

	nominal = retry_nominal(p->min, p->max, attempts);
	lo = nominal / 2;
	span = nominal - lo; /* <= 2^31: no overflow below */
	delay = lo + (((span + 1) * (uint64_t)rnd) >> 32);
	if (delay < p->min)
		delay = p->min;
	return delay;
}

int64_t
retry_next(const struct retry_policy *p, int64_t now, unsigned attempts,
    uint32_t rnd)
{
	return retry_add(now, retry_delay(p, attempts, rnd));
}

int64_t
retry_relay_next(const struct retry_policy *p, enum retry_relay relay,
    int64_t now, unsigned failures, uint32_t rnd)
{
	uint64_t delay;

	if (relay != RETRY_RELAY_DOWN && relay != RETRY_RELAY_REST)
		return now;
	delay = retry_delay(p, failures, rnd);
	if (relay == RETRY_RELAY_REST && delay < RETRY_AUTH_REST)
		delay = RETRY_AUTH_REST;
	return retry_add(now, delay);
}

int
retry_expired(const struct retry_policy *p, int64_t created, int64_t now)
{
	if (now < created)
		return 0; /* the clock went back: not yet */
	return (uint64_t)now - (uint64_t)created >= p->max_age;
}

/* --- names ---------------------------------------------------------- */

static const char *const retry_phase_names[RETRY_PHASE_COUNT] = {
	[RETRY_PHASE_CONNECT] = "connect",
	[RETRY_PHASE_TLS] = "tls",
	[RETRY_PHASE_GREETING] = "greeting",
	[RETRY_PHASE_EHLO] = "ehlo",
	[RETRY_PHASE_STARTTLS] = "starttls",
	[RETRY_PHASE_AUTH] = "auth",
	[RETRY_PHASE_MAIL] = "mail",
	[RETRY_PHASE_RCPT] = "rcpt",
	[RETRY_PHASE_DATA] = "data",
	[RETRY_PHASE_BODY] = "body",
	[RETRY_PHASE_END] = "end",
	[RETRY_PHASE_IDLE] = "idle",
};

static const char *const retry_event_names[RETRY_EVENT_COUNT] = {
	[RETRY_EVENT_REPLY] = "reply",
	[RETRY_EVENT_VERDICT] = "verdict",
	[RETRY_EVENT_TIMEOUT] = "timeout",
	[RETRY_EVENT_NETWORK] = "network",
	[RETRY_EVENT_PROTO] = "proto",
	[RETRY_EVENT_TLS] = "tls",
	[RETRY_EVENT_CREDENTIALS] = "credentials",
	[RETRY_EVENT_LOCAL] = "local",
};

static const char *const retry_fate_names[] = {
	[RETRY_DEFER] = "defer",
	[RETRY_DELIVERED] = "delivered",
	[RETRY_BOUNCE] = "bounce",
};

static const char *const retry_relay_names[] = {
	[RETRY_RELAY_OK] = "ok",
	[RETRY_RELAY_DOWN] = "down",
	[RETRY_RELAY_REST] = "rest",
};

#define RETRY_NAME(tab, v) \
	((unsigned)(v) < sizeof(tab) / sizeof((tab)[0]) ? (tab)[v] : "?")

const char *
retry_phase_name(enum retry_phase ph)
{
	return RETRY_NAME(retry_phase_names, ph);
}

const char *
retry_event_name(enum retry_event ev)
{
	return RETRY_NAME(retry_event_names, ev);
}

const char *
retry_fate_name(enum retry_fate f)
{
	return RETRY_NAME(retry_fate_names, f);
}

const char *
retry_relay_name(enum retry_relay r)
{
	return RETRY_NAME(retry_relay_names, r);
}
