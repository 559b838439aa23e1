/*
 * sasl.h - the client side of the SMTP AUTH mechanisms, as challenge in,
 * response out: PLAIN (RFC 4616), LOGIN, SCRAM-SHA-256 (RFC 5802, RFC
 * 7677), XOAUTH2 and OAUTHBEARER (RFC 7628).  Challenges and responses
 * are base64 text as they appear on the SMTP wire (RFC 4954).
 *
 * Owns: struct sasl (the mechanism's state and a private copy of the
 * secret, wiped on free), the base64 codec of the AUTH exchange, the
 * choice of mechanism for auth = auto (sasl_pick).
 * May call: buf, util, GnuTLS crypto (HMAC, SHA-256, PBKDF2, memset,
 * memcmp) - never a TLS session.  Pure: no I/O, no clock, no
 * randomness; the SCRAM client nonce is passed in.
 *
 * Secrets: the password or token lives only in struct sasl and in the
 * output buffers the caller passes (as base64).  Every temporary holding
 * it is wiped with gnutls_memset; callers wipe their output buffers with
 * sasl_buf_wipe().  Error texts never contain a secret.
 *
 * DIAGNOSTICS: sasl_new() fills struct sq_err (SQ_ECONFIG: a user or
 * secret the mechanism cannot carry; a missing or invalid nonce).
 * sasl_step() and sasl_success() return SASL_ERROR and leave a reason in
 * sasl_error(): a malformed challenge, an unexpected step, a SCRAM server
 * that cannot prove it knows the password (signature mismatch: treat as
 * an authentication failure, the server is not who it claims to be).
 */
#ifndef SENDQ_SASL_H
#define SENDQ_SASL_H

#include <stddef.h>

#include "buf.h"
#include "util.h"

/* SMTP AUTH mechanism; AUTO picks the strongest both sides have. */
enum sasl_mech {
	SASL_MECH_NONE,
	SASL_MECH_AUTO,
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
	SASL_MECH_SCRAM_SHA_256,
	SASL_MECH_XOAUTH2,
	SASL_MECH_OAUTHBEARER,
};

/* Bytes of: the user name, a password or token, the SCRAM client nonce,
 * one base64 challenge. */
#define SASL_USER_MAX      1024
#define SASL_SECRET_MAX    16384
#define SASL_NONCE_MAX     256
#define SASL_CHALLENGE_MAX 8192
/* Raw bytes of the longest response (an OAUTHBEARER message with the
 * longest escaped user and token) and its base64 size. */
#define SASL_MSG_MAX (3 * SASL_USER_MAX + SASL_SECRET_MAX + 64)
#define SASL_B64_MAX (4 * ((SASL_MSG_MAX + 2) / 3) + 1)
/* SCRAM iteration counts accepted from a server: below is too weak
 * (RFC 7677 asks for at least 4096), above burns our CPU. */
#define SASL_SCRAM_ITER_MIN 4096
#define SASL_SCRAM_ITER_MAX 1000000

enum sasl_status {
	SASL_ERROR = -1,   /* see sasl_error(); cancel with "*" */
	SASL_DONE = 0,     /* send the response; the server's final
				 * reply (235 or 5xx) comes next */
	SASL_CONTINUE = 1, /* send the response; more challenges
				 * follow */
};

struct sasl;

/*
 * A client exchange for mech (PLAIN, LOGIN, SCRAM_SHA_256, XOAUTH2 or
 * OAUTHBEARER; not NONE or AUTO).  user and secret (password or bearer
 * token) are copied; nonce is the SCRAM client nonce (printable ASCII
 * without ',', at most SASL_NONCE_MAX bytes; random, from the caller),
 * ignored by the other mechanisms.  User names with control characters
 * and tokens with control characters are refused.  The SCRAM password is
 * used as given (no SASLprep: ASCII passwords are unaffected).
 * Returns the exchange (free with sasl_free), or NULL with err filled.
 */
struct sasl *sasl_new(enum sasl_mech mech, const char *user, const char *secret,
    const char *nonce, struct sq_err *err);
/* Wipe every secret and free s (NULL accepted). */
void sasl_free(struct sasl *s);

enum sasl_mech sasl_mech(const struct sasl *s);

/*
 * The initial response, base64 encoded into out (appended), for
 * "AUTH MECH initial-response".  Returns 1 when the mechanism has one
 * (PLAIN, SCRAM-SHA-256, XOAUTH2, OAUTHBEARER), 0 when it has none
 * (LOGIN: send "AUTH LOGIN" alone), SASL_ERROR when out is full or the
 * exchange already started.  Call it once, before any sasl_step().
 */
int sasl_initial(struct sasl *s, struct buf *out);

/*
 * One server challenge (the base64 text of a 334 reply, len bytes,
 * possibly empty) in; the response, base64 encoded, appended to out.
 * Returns SASL_CONTINUE or SASL_DONE (send out as one line, even when it
 * is empty), or SASL_ERROR (out unchanged; cancel the exchange with "*").
 * Steps: LOGIN answers "Username:" then "Password:" (by the decoded
 * prompt, else by position); SCRAM answers server-first with
 * client-final, then checks server-final's v= (constant time) and answers
 * with an empty line; XOAUTH2/OAUTHBEARER answer an error challenge (JSON)
 * with an empty line and expect the final 5xx.  Any step past the end is
 * an error.
 */
int sasl_step(struct sasl *s, const char *challenge_b64, size_t len,
    struct buf *out);

/*
 * The server said 235.  Returns SASL_DONE when the exchange may end
 * here, SASL_ERROR when it may not: SCRAM-SHA-256 before the server
 * proved its identity (no verified v=), or any mechanism before its
 * credentials were sent.
 */
int sasl_success(struct sasl *s);

/* Why the last call failed ("" when none); never contains the secret
 * (server text quoted in it, such as a SCRAM "e=" value, is masked). */
const char *sasl_error(const struct sasl *s);

/*
 * Replace, in the NUL-terminated text, every occurrence of s's secret
 * and every word that looks like base64 (at least 12 characters of the
 * base64 alphabet with a digit, '+', '/', '=' or an inner upper-case
 * letter) by '*', so that a server reply echoing what we sent cannot
 * carry a credential into a log.  s may be NULL (base64 words only).
 */
void sasl_redact(const struct sasl *s, char *text);

/* Replace every occurrence of secret (when at least 4 bytes long) in
 * the NUL-terminated text by '*'.  secret may be NULL. */
void sasl_mask(char *text, const char *secret);

/* Mechanism name on the wire ("SCRAM-SHA-256"), "" for NONE/AUTO. */
const char *sasl_mech_name(enum sasl_mech mech);
/* The SMTP_WIRE_AUTH_* bit of mech, 0 for NONE/AUTO. */
unsigned sasl_mech_bit(enum sasl_mech mech);

/*
 * auth = auto: the strongest password mechanism among the server's
 * SMTP_WIRE_AUTH_* bits: SCRAM-SHA-256, then PLAIN, then LOGIN (XOAUTH2
 * and OAUTHBEARER carry a token, not a password, so they are used only
 * when configured by name).  Returns SASL_MECH_NONE when there is none
 * or when tls_active_or_loopback is 0: credentials never travel in
 * cleartext to a host that is not on loopback.
 */
enum sasl_mech
sasl_pick(unsigned server_mechs_mask, int tls_active_or_loopback);

/*
 * Base64 (RFC 4648, with padding, no line breaks) of a secret: appends
 * to out (0, or SQ_ELIMIT with out unchanged) and leaves no copy on the
 * stack.  The tree's one base64 encoder of credentials; what is not
 * secret uses GnuTLS's gnutls_base64_encode2(), decoding is
 * sq_base64_decode() (util.h).
 */
int sasl_b64_encode(const void *in, size_t len, struct buf *out);

/*
 * Output buffers that may hold secrets: sasl_buf_init() makes an empty
 * buffer with its full capacity (SASL_B64_MAX) allocated at once, so it
 * never moves (no unwiped copy left behind by a realloc);
 * sasl_buf_wipe() wipes all of it and frees it.
 */
void sasl_buf_init(struct buf *b);
void sasl_buf_wipe(struct buf *b);
/* gnutls_memset, for callers that hold secrets in their own memory. */
void sasl_wipe(void *p, size_t n);

#endif
