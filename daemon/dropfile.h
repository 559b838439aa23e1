/*
 * dropfile.h - what a file dropped into the maildrop directory means:
 * its envelope and the message to store (the protocol around it is in
 * pickup.h, the user-facing description in README.md).
 *
 * A dropped file is an RFC 5322 message (LF or CRLF line endings),
 * optionally preceded by envelope lines:
 *
 *   X-Sendq-Sender: <alice@example.org>     at most one; "<>" is the
 *                                           null sender
 *   X-Sendq-Recipient: bob@example.net      one or more (each may hold
 *                                           an address list)
 *   From: ...                               the message starts here
 *
 * Envelope lines are the leading lines of the file whose field name is
 * X-Sendq-Sender or X-Sendq-Recipient (case-insensitive); the first other
 * line ends them.  They are removed before the message is stored and are
 * never folded.  Any X-Sendq-* field after that point, and any other
 * X-Sendq-* name, is an error (the file is refused, so an envelope line
 * in the wrong place never goes out as a header nor is ignored).
 *
 * The envelope: recipients from the X-Sendq-Recipient lines; when there
 * are none, from the To, Cc and Bcc fields, as `sendq -t` does.  Sender
 * from X-Sendq-Sender; when there is none, the one address of From (or
 * of Sender when From holds several); else opts->default_sender; else the
 * file is refused.  Addresses without a domain are qualified with
 * opts->hostname; every address must pass mailmsg_addr_valid().
 * Duplicate recipients are dropped.  Bcc fields are always removed.
 *
 * The message stored is: dropfile_added_fields() (Date, From and
 * Message-ID when the header lacks them), then df->header (the header
 * block, Bcc removed, plus a blank line when the body followed the header
 * without one), then the input from df->rest_off on, byte for byte.
 *
 * Owns: the drop-file format rules and their limits.
 * May call: mailmsg, envelope, util.  Pure: no I/O, no clock; works on
 * the bytes it is given and never reads past the length passed in.
 *
 * DIAGNOSTICS: dropfile_parse() fails with SQ_EPARSE (malformed: bad
 * address, no recipient, misplaced envelope line ...) or SQ_ELIMIT (too
 * large) and one line in err->msg saying why, input made printable; the
 * caller writes that line into the .reason file.
 */
#ifndef SENDQ_DROPFILE_H
#define SENDQ_DROPFILE_H

#include <stddef.h>

#include "envelope.h"
#include "util.h"

/* The default size limit of a dropped file, in bytes. */
#define DROPFILE_SIZE_DEFAULT ((size_t)25 * 1024 * 1024)
/* Envelope lines plus the header block must lie in the first
 * DROPFILE_HEAD_MAX bytes of the file (the caller reads that much). */
#define DROPFILE_ENVLINES_MAX ((size_t)1024 * 1024)
#define DROPFILE_HEAD_MAX     ((size_t)2 * 1024 * 1024 + 1024)

struct dropfile_opts {
	const char *hostname;       /* qualifies bare local parts; NULL:
					 * a bare local part is refused */
	const char *default_sender; /* when neither X-Sendq-Sender nor
					 * From gives one; NULL: refuse */
	size_t      size_max;       /* limit on the whole file; 0 means
					 * DROPFILE_SIZE_DEFAULT */
};

struct dropfile {
	struct envelope *env;    /* sender and recipients; id, uid and
				 * created are the caller's to set */
	char            *header; /* header block to store (see above) */
	size_t           header_len;
	size_t           rest_off;   /* input[rest_off..] is stored verbatim */
	size_t           n_envlines; /* envelope lines removed */
	int              crlf;       /* the file's lines end in CRLF */
	int              has_date; /* the header has Date / From / Message-ID */
	int              has_from;
	int              has_msgid;
};

/*
 * Parse a dropped file.  head is its first len bytes; total is the size
 * of the whole file (total >= len; when total > len the rest is streamed
 * by the caller and is body).  Returns 0 and fills *df (release with
 * dropfile_fini), or SQ_EPARSE / SQ_ELIMIT with err, *df then empty.
 * Never blocks.
 */
int dropfile_parse(const char *head, size_t len, size_t total,
    const struct dropfile_opts *opts, struct dropfile *df, struct sq_err *err);

/* Release what dropfile_parse filled; a zeroed or released df is fine. */
void dropfile_fini(struct dropfile *df);

/*
 * The fields to put before df->header: "Date: DATE", "From: SENDER"
 * (MAILER-DAEMON@HOSTNAME for the null sender) and
 * "Message-ID: <ID@HOSTNAME>", each only when the header lacks it, with
 * the file's line ending (mailmsg_added_fields() with the drop file's
 * From).  date is an RFC 5322 date-time (mailmsg_date(); the caller
 * reads the clock), id the queue id.  Returns a heap string (maybe
 * empty) the caller frees.
 */
char *dropfile_added_fields(const struct dropfile *df, const char *date,
    const char *id, const char *hostname);

#endif
