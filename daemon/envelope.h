/*
 * envelope.h - the per-message record kept beside each message in the
 * spool: who it is from, who it is for, and its delivery state.
 *
 * Owns: struct envelope and its text form (format in envelope.c).
 * May call: util.  Pure: no I/O, no clock.
 *
 * DIAGNOSTICS: envelope_parse() fails with SQ_EPARSE and a reason naming
 * the line for anything truncated, unknown or malformed.
 */
#ifndef SENDQ_ENVELOPE_H
#define SENDQ_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define ENVELOPE_ID_MAX		32	/* queue id, including the NUL */

struct envelope {
	char	 id[ENVELOPE_ID_MAX];	/* queue id, set by the spool */
	char	*sender;	/* envelope sender; "" is the null sender */
	char	**rcpts;	/* envelope recipients, n_rcpts of them */
	size_t	 n_rcpts;
	int64_t	 created;	/* unix time of acceptance */
	long	 uid;		/* uid of the submitting user, -1 unknown */
	unsigned attempts;	/* delivery attempts so far */
	int64_t	 next_attempt;	/* unix time of the next try, 0 = now */
	char	*last_error;	/* last failure, printable, or NULL */
	int	 body_8bit;	/* the message holds bytes >= 0x80: sent
				 * with BODY=8BITMIME where offered */
	int	 held;		/* sendqctl hold: not tried until release */
	int	 warned;	/* the delay warning DSN was sent */
};

/* A new empty envelope (uid -1); free with envelope_free. */
struct envelope	*envelope_new(void);
/* Free an envelope and every string it owns; NULL is accepted. */
void	envelope_free(struct envelope *env);
/* Append a copy of addr to the recipients. */
void	envelope_add_rcpt(struct envelope *env, const char *addr);
/* Replace sender / last_error with copies (NULL clears last_error). */
void	envelope_set_sender(struct envelope *env, const char *addr);
void	envelope_set_error(struct envelope *env, const char *text);

/*
 * The text form of env.  Returns a NUL-terminated heap string (caller
 * frees) and its length in *len.  Values that would break the format
 * (line breaks) are made printable first.
 */
char	*envelope_format(const struct envelope *env, size_t *len);

/*
 * Parse the text form.  Returns 0 and *out (caller frees), or SQ_EPARSE
 * with err filled.  Never reads beyond text[len).
 */
int	envelope_parse(const char *text, size_t len, struct envelope **out,
	    struct sq_err *err);

#endif
