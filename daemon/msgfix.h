/*
 * msgfix.h - keep a stored message legal on the wire (RFC 5322 2.1.1,
 * RFC 5321 4.5.3.1.6): no line longer than MSGFIX_LINE_MAX octets (line
 * break excluded) and no NUL byte.  Also inserts the missing Date and
 * Message-ID fields at the end of a streamed header block.
 *
 * Two streaming parts, both pure:
 *  - the scanner (struct msgfix_scan) is fed the message as its intake
 *    path stores it, in any chunking.  It counts lines the way the wire
 *    will (CR, LF and CRLF each end a line: smtp_wire's encoder turns
 *    each into CRLF), records the first NUL, the longest header and body
 *    lines, whether each over-long header line can be folded at white
 *    space, and the few header facts the verdict needs (Content-Type,
 *    Content-Transfer-Encoding, MIME-Version, Date, Message-ID, From).
 *    With an output buffer it also passes the bytes through and inserts
 *    the fields given in struct msgfix_added where the header block ends
 *    (Postfix's cleanup adds them there too), holding back at most the
 *    start of one header line (the field name) to find that point.
 *  - the rewriter (struct msgfix_rw), run only on a REWRITE verdict, reads
 *    the stored message again and writes a legal one: over-long header
 *    lines folded (CRLF inserted before white space: unfolding, RFC 5322
 *    2.2.3, gives back the same field), and, when a body line is too
 *    long, the body re-encoded as quoted-printable (RFC 2045 6.7) with
 *    Content-Transfer-Encoding replaced and MIME-Version / Content-Type
 *    added when missing.  The header block is held in memory (at most
 *    MSGFIX_HEADER_MAX); the body streams through a fixed state.
 *
 * The verdict (msgfix_verdict), the one policy:
 *   a NUL anywhere                                  -> REFUSE
 *   a header line > 998 with no white space to fold -> REFUSE
 *   a body line > 998, body not MIME-structured (no multipart/ or
 *     message/ Content-Type; Content-Transfer-Encoding absent, 7bit or
 *     8bit)                                         -> REWRITE (QP)
 *   a body line > 998 otherwise (multipart, base64, quoted-printable,
 *     binary ...: re-encoding would change what the recipient sees or
 *     nest encodings)                                -> REFUSE
 *   a header line > 998 that folds                  -> REWRITE
 *   else                                            -> KEEP
 *
 * Owns: the line rules above, the quoted-printable encoder and decoder.
 * May call: mailmsg (header scanning, added fields), buf, util.  Pure: no
 * I/O, no clock.
 *
 * DIAGNOSTICS: msgfix_verdict() fills err (code SQ_EPARSE) with one line
 * naming the first offending line, e.g. "line 3 contains a NUL byte",
 * for the caller to show (554 5.6.0, exit 65, rejected/ reason).
 * msgfix_rw_step() fails with SQ_ELIMIT when the header block is larger
 * than MSGFIX_HEADER_MAX.
 */
#ifndef SENDQ_MSGFIX_H
#define SENDQ_MSGFIX_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "util.h"

#define MSGFIX_LINE_MAX    998           /* RFC 5322 2.1.1, CRLF excluded */
#define MSGFIX_QP_LINE_MAX 76            /* RFC 2045 6.7 (5) */
#define MSGFIX_HEADER_MAX  (1024 * 1024) /* held while rewriting */
#define MSGFIX_HOLD_MAX    1000          /* header line start held back */
#define MSGFIX_VALUE_MAX   128           /* Content-Type etc. kept */

/* Fields to insert where the header block ends (each only when the
 * header lacks it).  NULL members are never added. */
struct msgfix_added {
	const char *date;     /* RFC 5322 date-time */
	const char *msgid_id; /* Message-ID: <ID@HOSTNAME> */
	const char *hostname;
	const char *from; /* From: value, or NULL */
};

enum msgfix_verdict {
	MSGFIX_KEEP,    /* store as it is */
	MSGFIX_REWRITE, /* run the rewriter before commit */
	MSGFIX_REFUSE,  /* refuse the message (err says why) */
};

struct msgfix_scan {
	/* Configuration. */
	const struct msgfix_added *added; /* NULL: insert nothing */
	/* Line state. */
	uint64_t line;    /* current line, 1-based */
	size_t   col;     /* octets in the current line */
	int      prev_cr; /* the last octet was a CR */
	int      any;     /* an octet was seen */
	/* Header state. */
	int    in_header;
	int    kind;       /* of the current header line */
	int    ws_in_name; /* white space after the name */
	int    fields;     /* fields seen so far */
	int    capture;    /* which value is being kept */
	int    crlf;       /* the first line ended in CRLF */
	int    first_eol_seen;
	char   hold[MSGFIX_HOLD_MAX];
	size_t hold_len;
	size_t seg;  /* fold simulation: segment length */
	size_t cand; /* fold point in segment, 0: none */
	int    after_colon;
	int    prev_wsp;
	/* Facts. */
	uint64_t nul_line;       /* first line holding a NUL, 0: none */
	uint64_t hdr_long_line;  /* first unfoldable header line */
	uint64_t body_long_line; /* first body line > 998 */
	int      hdr_fold;       /* some header line must be folded */
	int      body_8bit;
	int      has_date, has_msgid, has_from, has_mime;
	int      has_ct, has_cte;
	char     ct[MSGFIX_VALUE_MAX]; /* lower case, unfolded */
	char     cte[MSGFIX_VALUE_MAX];
	size_t   ct_len, cte_len;
	int      inserted; /* the added fields were written */
};

/* Start scanning; added (may be NULL) must outlive the scan. */
void msgfix_scan_init(struct msgfix_scan *s, const struct msgfix_added *added);
/*
 * Scan len bytes.  With out non-NULL the bytes to store are appended to
 * out: the input, plus the added fields (and a blank line when the body
 * started without one) where the header ends; out may then grow by
 * len + MSGFIX_HOLD_MAX + 1024 bytes at most.  Returns 0, or SQ_ELIMIT when
 * out is full (out's limit too small: a caller bug).
 */
int msgfix_scan_feed(struct msgfix_scan *s, const void *data, size_t len,
    struct buf *out);
/* The end of the message: flush what is held (and the added fields when
 * the header never ended) into out (may be NULL). */
int msgfix_scan_end(struct msgfix_scan *s, struct buf *out);

/* After msgfix_scan_end: what to do.  REFUSE fills err. */
enum msgfix_verdict
msgfix_verdict(const struct msgfix_scan *s, struct sq_err *err);

/*
 * The rewriter, for a REWRITE verdict: fed the stored message (what the
 * scanner's output was, plus whatever the caller put before it, such as
 * a Received: field), in any chunking.  The decisions come from the scan.
 */
struct msgfix_rw {
	int         qp;       /* re-encode the body */
	int         add_mime; /* MIME-Version: 1.0 */
	const char *add_ct;   /* Content-Type value to add, or NULL */
	int         in_header;
	struct buf  hdr; /* the header block, while reading it */
	/* Quoted-printable encoder. */
	size_t col;  /* output column */
	int    pend; /* a held SP/HTAB, or -1 */
	int    prev_cr;
};

void msgfix_rw_init(struct msgfix_rw *r, const struct msgfix_scan *s);
void msgfix_rw_fini(struct msgfix_rw *r);
/*
 * Rewrite len bytes (last set on the final call, len may be 0) appending
 * to out, which must have room for 4 * len + MSGFIX_HEADER_MAX + 4096
 * bytes.  Returns 0, or SQ_ELIMIT with err (header block too large),
 * or SQ_EPARSE (a header line that cannot be folded: the scan said it
 * could, so a caller bug).  The signature fits
 * spool_writer_transform().
 */
int msgfix_rw_step(void *rw, const void *data, size_t len, int last,
    struct buf *out, struct sq_err *err);

/*
 * Quoted-printable, for tests and fuzzing: decode in[0..len) appending
 * to out (soft breaks removed, =XX decoded, line breaks kept as LF).
 * Returns 0 or -1 on a malformed escape.
 */
int msgfix_qp_decode(const char *in, size_t len, struct buf *out);

#endif
