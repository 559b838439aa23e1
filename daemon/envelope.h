/*
 * envelope.h - the per-message record kept beside each message in the
 * spool: who it is from, who it is for, and its delivery state.
 *
 * Owns: struct envelope and its text form (format in envelope.c).
 * May call: util.  Pure: no I/O, no clock.
 *
 * DSN parameters (RFC 3461) travel with the envelope: RET and ENVID of
 * the message, NOTIFY and ORCPT of each recipient.  The per-recipient
 * ones are kept by address (struct envelope_rcpt_dsn), so code that
 * reorders or drops entries of rcpts[] by hand cannot attach them to the
 * wrong recipient; envelope_keep_rcpts() drops both together.
 *
 * DIAGNOSTICS: envelope_parse() fails with SQ_EPARSE and a reason naming
 * the line for anything truncated, unknown or malformed.  The DSN setters
 * fail with -EINVAL for values that are not valid RFC 3461 text.
 */
#ifndef SENDQ_ENVELOPE_H
#define SENDQ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define ENVELOPE_ID_MAX    32  /* queue id, including the NUL */
#define ENVELOPE_ENVID_MAX 100 /* ENVID, xtext (RFC 3461 4.4) */
#define ENVELOPE_ORCPT_MAX 500 /* ORCPT, type;xtext (RFC 3461 4.2) */

/* RET= of the message (RFC 3461 4.3). */
enum envelope_ret {
	ENVELOPE_RET_NONE, /* not given */
	ENVELOPE_RET_FULL,
	ENVELOPE_RET_HDRS,
};

/* NOTIFY= of a recipient (RFC 3461 4.1); 0 = not given.  NEVER is never
 * combined with the others.  The same values as INTAKE_PROTO_NOTIFY_*
 * and SMTP_PROTO_NOTIFY_*. */
#define ENVELOPE_NOTIFY_NEVER   0x1
#define ENVELOPE_NOTIFY_SUCCESS 0x2
#define ENVELOPE_NOTIFY_FAILURE 0x4
#define ENVELOPE_NOTIFY_DELAY   0x8

/* DSN parameters of one recipient. */
struct envelope_rcpt_dsn {
	char    *addr;   /* the recipient they belong to */
	unsigned notify; /* ENVELOPE_NOTIFY_* bits, 0 = none */
	char    *orcpt;  /* "addr-type;xtext" as received, or
					 * NULL */
};

struct envelope {
	char     id[ENVELOPE_ID_MAX]; /* queue id, set by the spool */
	char    *sender; /* envelope sender; "" is the null sender */
	char   **rcpts;  /* envelope recipients, n_rcpts of them */
	size_t   n_rcpts;
	int64_t  created;      /* unix time of acceptance */
	long     uid;          /* uid of the submitting user, -1 unknown */
	unsigned attempts;     /* delivery attempts so far */
	int64_t  next_attempt; /* unix time of the next try, 0 = now */
	char    *last_error;   /* last failure, printable, or NULL */
	int      body_8bit;    /* the message holds bytes >= 0x80: sent
				 * with BODY=8BITMIME where offered */
	int      held;         /* sendqctl hold: not tried until release */
	int      warned;       /* the delay warning DSN was sent */
	/* DSN parameters (RFC 3461); set them through the functions below,
	 * which check them. */
	enum envelope_ret         ret;   /* RET= */
	char                     *envid; /* ENVID= xtext as received, or NULL */
	struct envelope_rcpt_dsn *rcpt_dsn; /* per recipient, by address;
				 * read with envelope_rcpt_dsn() */
	size_t                    n_rcpt_dsn;
};

/* A new empty envelope (uid -1); free with envelope_free. */
struct envelope *envelope_new(void);
/* Free an envelope and every string it owns; NULL is accepted. */
void envelope_free(struct envelope *env);
/* Append a copy of addr to the recipients. */
void envelope_add_rcpt(struct envelope *env, const char *addr);
/* Replace sender / last_error with copies (NULL clears last_error). */
void envelope_set_sender(struct envelope *env, const char *addr);
void envelope_set_error(struct envelope *env, const char *text);

/*
 * ENVID: a copy of xtext (NULL clears it).  Returns 0, or -EINVAL (env
 * unchanged) unless xtext is 1..ENVELOPE_ENVID_MAX characters of RFC 3461
 * xtext.
 */
int envelope_set_envid(struct envelope *env, const char *xtext);

/*
 * NOTIFY and ORCPT of recipient rcpts[i] (copied; orcpt NULL for none;
 * notify 0 and orcpt NULL remove them).  Returns 0, or -EINVAL (env
 * unchanged) for i out of range, notify bits that are not NEVER alone or
 * a set of SUCCESS, FAILURE, DELAY, or an orcpt that is not "addr-type;
 * xtext" of at most ENVELOPE_ORCPT_MAX characters.
 */
int envelope_set_rcpt_dsn(struct envelope *env, size_t i, unsigned notify,
    const char *orcpt);

/*
 * The DSN parameters of rcpts[i], or NULL when it has none (or i is out
 * of range).  Owned by env; valid until env changes.  Never blocks.
 */
const struct envelope_rcpt_dsn *
envelope_rcpt_dsn(const struct envelope *env, size_t i);

/*
 * Keep the recipients rcpts[i] with keep[i] non-zero (keep has n_rcpts
 * entries), in their order; free the others and their DSN parameters.
 */
void envelope_keep_rcpts(struct envelope *env, const int *keep);

/* Non-zero when s is RFC 3461 xtext ("+XX" with upper-case hex for
 * '+', '=', and bytes outside 0x21..0x7e), at least one character. */
int envelope_xtext_valid(const char *s);

/* raw as xtext (a new string, caller frees). */
char *envelope_xtext_encode(const char *raw);

/*
 * The text form of env.  Returns a NUL-terminated heap string (caller
 * frees) and its length in *len.  Values that would break the format
 * (line breaks) are made printable first.
 */
char *envelope_format(const struct envelope *env, size_t *len);

/*
 * Parse the text form.  Returns 0 and *out (caller frees), or SQ_EPARSE
 * with err filled.  Never reads beyond text[len).
 */
int envelope_parse(const char *text, size_t len, struct envelope **out,
    struct sq_err *err);

#endif
