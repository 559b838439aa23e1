/*
 * retry.h - delivery policy: the one place that decides what an attempt
 * means (delivered, try again, bounce; the relay fine, down or resting)
 * and when the next attempt, of a message or of a relay, is due.
 *
 * Owns: the policy table (phase x reply code x enhanced status -> fate,
 * relay verdict, who is at fault), how one attempt's facts combine into
 * a fate per recipient, the message backoff (exponential from retry_min,
 * doubling, capped at retry_max, with jitter), the relay backoff and the
 * authentication rest, expiry after max_age.
 * May call: nothing but libc.  Pure: the clock and the random number are
 * passed in, so tests are deterministic.
 * Used by: smtp_conn (reports facts in these types, decides nothing),
 * scheduler (asks for verdicts and applies them), conn_probe (tests).
 *
 * The decisions an operator sees (the table itself is in retry.c):
 *   - 2xx to the final dot: delivered (only the recipients the server
 *     accepted at RCPT).
 *   - 5xx to MAIL, RCPT, DATA or the final dot: the message (or that
 *     recipient) bounces at once, never resent: 5.7.1 "not authorized"
 *     included.  Except 552 to RCPT (RFC 5321 4.5.3.1.10: "too many
 *     recipients", temporary) and the authentication replies below.
 *   - Authentication: any 5xx to AUTH (535 5.7.8, 534 5.7.9, 538 5.7.11,
 *     530 5.7.0, 504), 454 or 4.7.x to AUTH, 530 anywhere, 5.7.8 / 5.7.9
 *     / 5.7.11 anywhere in a transaction and 5.7.0 to MAIL or RCPT
 *     (RFC 4954 section 6), no common mechanism, a secret that cannot be
 *     read: the mail is kept and the relay RESTS for at least
 *     RETRY_AUTH_REST seconds (the scheduler logs AUTHENTICATION FAILED).
 *   - Getting the secret for AUTH: a password_command/token_command
 *     that runs out of time, an OAuth token endpoint that is down, slow
 *     or answers 5xx (TIMEOUT or NETWORK in phase AUTH, smtp_conn.h):
 *     the relay is DOWN, as for a server that does not answer; never
 *     the authentication rest.  (A refused OAuth grant is no fact here:
 *     the scheduler holds that relay, authsrc.h.)
 *   - 421 anywhere, 4xx or 5xx to the greeting (a 554 "no SMTP service
 *     here" included), EHLO/HELO or STARTTLS, TLS failures, and any
 *     timeout, lost connection or garbage before the session is ready:
 *     the mail is kept and the relay is DOWN (relay backoff; its
 *     fallback takes its mail).
 *   - 4xx to a transaction, or a timeout / lost connection / garbage
 *     during one: that message is deferred; the relay stays usable.
 *   Nothing a connection does can bounce mail: only a server's 5xx reply
 *   to the message (or our own refusal to offer it: larger than the
 *   server's SIZE, SMTPUTF8 needed) does.
 *
 * Errors: none.  Every function is total; unknown input is deferred.
 */
#ifndef SENDQ_RETRY_H
#define SENDQ_RETRY_H

#include <stddef.h>
#include <stdint.h>

/* Minimum rest of a relay whose authentication failed (seconds). */
#define RETRY_AUTH_REST 900

struct retry_policy {
	unsigned min;     /* seconds, >= 1 */
	unsigned max;     /* seconds, >= min */
	unsigned max_age; /* seconds since acceptance */
};

/* --- facts (reported by smtp_conn) ---------------------------------- */

/* Where in the session something happened: the command a reply
 * answered, or what the connection was doing when it failed. */
enum retry_phase {
	RETRY_PHASE_CONNECT, /* resolving, connecting, before a byte */
	RETRY_PHASE_TLS,     /* TLS handshake, certificate check */
	RETRY_PHASE_GREETING,
	RETRY_PHASE_EHLO, /* EHLO, or HELO after it */
	RETRY_PHASE_STARTTLS,
	RETRY_PHASE_AUTH,
	RETRY_PHASE_MAIL,
	RETRY_PHASE_RCPT,
	RETRY_PHASE_DATA, /* the reply to DATA */
	RETRY_PHASE_BODY, /* writing the message text */
	RETRY_PHASE_END,  /* the reply to the final dot */
	RETRY_PHASE_IDLE, /* between messages: RSET, QUIT, idle */
	RETRY_PHASE_COUNT
};

/* What happened there. */
enum retry_event {
	RETRY_EVENT_REPLY,       /* the server answered code (enhanced) */
	RETRY_EVENT_VERDICT,     /* we refused to offer the message (code,
				 * enhanced of our making: 552 5.3.4 larger
				 * than SIZE, 553 5.6.7 SMTPUTF8) */
	RETRY_EVENT_TIMEOUT,     /* a phase timer or session_max */
	RETRY_EVENT_NETWORK,     /* resolve, connect, EOF, reset, I/O error */
	RETRY_EVENT_PROTO,       /* malformed, oversized or unexpected bytes */
	RETRY_EVENT_TLS,         /* handshake or certificate failure,
				 * STARTTLS missing or refused */
	RETRY_EVENT_CREDENTIALS, /* no common AUTH mechanism, AUTH would
				 * need TLS, a bad SCRAM server proof, the
				 * secret cannot be read */
	RETRY_EVENT_LOCAL,       /* our side: the spool file cannot be read,
				 * a bug */
	RETRY_EVENT_COUNT
};

struct retry_fact {
	enum retry_phase phase;
	enum retry_event event;
	int              code;         /* reply code, 0 = none */
	char             enhanced[16]; /* "5.7.1", "" = none */
};

/* --- verdicts -------------------------------------------------------- */

/* RETRY_DEFER is zero on purpose: a fate array left zero-filled by
 * mistake retries (and, past max_age, bounces); it never drops mail. */
enum retry_fate {
	RETRY_DEFER = 0, /* try again at retry_next() */
	RETRY_DELIVERED, /* the server took it (for a RCPT fact:
				 * accepted, the end of data decides) */
	RETRY_BOUNCE,    /* permanent: bounce (or failed/) now */
};

/* What the relay (smarthost) should do next, most severe last. */
enum retry_relay {
	RETRY_RELAY_OK = 0, /* usable: new connections as needed */
	RETRY_RELAY_DOWN,   /* no connection until retry_relay_next() */
	RETRY_RELAY_REST,   /* authentication failed: the same, for
				 * at least RETRY_AUTH_REST, said loudly */
};

/* Who the verdict blames. */
enum retry_fault {
	RETRY_FAULT_NONE = 0, /* delivered */
	RETRY_FAULT_MESSAGE,  /* this message (sender, recipient,
				 * content, size) */
	RETRY_FAULT_RELAY,    /* the relay, the path to it, or our
				 * settings for it */
	RETRY_FAULT_LOCAL,    /* our own side (spool, bug) */
};

struct retry_verdict {
	enum retry_fate  fate;
	enum retry_relay relay;
	enum retry_fault fault;
	const char      *rule; /* the table row's name, static:
					 * "auth-refused", "refused", ... */
};

/*
 * The table: the verdict for one fact.  Total: any fact (out-of-range
 * phase or event values included) gets a verdict, and nothing unknown
 * is ever DELIVERED or BOUNCE (unknown -> DEFER, relay OK).
 */
struct retry_verdict retry_decide(const struct retry_fact *f);

/*
 * One attempt of a message with n recipients: end is what ended it (the
 * transaction's last reply, or the connection's failure); rcpt[i] is
 * recipient i's RCPT fact (code 0: not answered), or rcpt is NULL (none
 * answered).  Fills fate[0..n-1]:
 *   - a recipient refused at RCPT keeps its own verdict (a 5xx bounces
 *     even when the connection fails later, as Postfix does);
 *   - an accepted one gets end's fate;
 *   - one never answered gets end's fate, but never DELIVERED.
 * Returns the verdict with the most severe relay verdict among end and
 * the recipients' (end's on a tie): what the relay should do, and why.
 */
struct retry_verdict retry_attempt(const struct retry_fact *end,
    const struct retry_fact *rcpt, size_t n, enum retry_fate *fate);

/*
 * When to try a message again after the attempts-th failed attempt
 * (attempts >= 1): now + d where the nominal delay is min * 2^(attempts-1)
 * capped at max, and d is drawn uniformly from [nominal/2, nominal] using
 * rnd (any 32-bit value), but never below min.  Overflow-safe for any
 * attempts.
 */
int64_t retry_next(const struct retry_policy *p, int64_t now, unsigned attempts,
    uint32_t rnd);

/*
 * When a relay may be tried again after its failures-th failed attempt
 * in a row (failures >= 1) ended with verdict relay: RETRY_RELAY_DOWN as
 * retry_next(); RETRY_RELAY_REST the same but at least RETRY_AUTH_REST
 * seconds; RETRY_RELAY_OK now.  Saturates at INT64_MAX.
 */
int64_t retry_relay_next(const struct retry_policy *p, enum retry_relay relay,
    int64_t now, unsigned failures, uint32_t rnd);

/* Non-zero when a message accepted at created has run out of time. */
int retry_expired(const struct retry_policy *p, int64_t created, int64_t now);

/* Names for logs and tests ("mail", "auth", "reply", "defer", "rest",
 * ...); "?" for a value out of range.  Static strings. */
const char *retry_phase_name(enum retry_phase ph);
const char *retry_event_name(enum retry_event ev);
const char *retry_fate_name(enum retry_fate f);
const char *retry_relay_name(enum retry_relay r);

#endif
