/*
 * msgfix.c - no NUL and no line over 998 octets on the wire (msgfix.h).
 *
 * Where it runs, and why this way: every intake path (the listener, the
 * maildrop pick-up, the sendq command) writes the message into a spool
 * writer as it reads it and feeds the same bytes to the scanner, so the
 * common case costs one pass and no copy.  Only when the verdict is
 * REWRITE does the caller read its tmp/ file back through the rewriter
 * into the same writer (spool_writer_transform), before the commit; a
 * REFUSE drops the writer.  Rewriting later (at delivery) would need the
 * original bytes at every attempt and could not refuse the message to
 * its submitter; rewriting while reading is impossible, as the decision
 * needs the whole message (the long line may be the last one).
 *
 * The scanner is a byte machine over header lines: at the start of a
 * line it holds the bytes back until it knows whether the line is a
 * field ("Name:"), a continuation (SP/HTAB) or the end of the header (a
 * blank line, or anything else: then a blank line is inserted, as the
 * sendq command does).  The end of the header is where the added fields
 * go.  Body bytes are counted in runs, without holding anything.
 *
 * Line breaks: CR, LF and CRLF each end a line, exactly as smtp_wire's
 * encoder will put CRLF for each on the wire; a line's length is the
 * number of octets between two breaks.  Dot-stuffing is not counted
 * (RFC 5321 4.5.3.1.6).
 *
 * Folding (scanner simulation and rewriter agree by using the same rule):
 * walking a header line, a fold point is a SP/HTAB that follows a
 * non-white octet, after the colon of a field line (anywhere past the
 * first octet of a continuation line); when the segment since the last
 * fold grows past 998 octets, CRLF goes before the last fold point.  No
 * fold point: the line cannot be folded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailmsg.h"
#include "msgfix.h"
#include "util.h"

enum msgfix_kind {
	MSGFIX_K_START, /* at the start of a header line */
	MSGFIX_K_NAME,  /* holding a field name */
	MSGFIX_K_FIELD, /* in a field line, after the colon */
	MSGFIX_K_CONT,  /* in a continuation line */
};

enum msgfix_capture {
	MSGFIX_CAP_NONE,
	MSGFIX_CAP_CT,
	MSGFIX_CAP_CTE,
};

static int
msgfix_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static int
msgfix_ftext(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != ':';
}

void
msgfix_scan_init(struct msgfix_scan *s, const struct msgfix_added *added)
{
	memset(s, 0, sizeof(*s));
	s->added = added;
	s->line = 1;
	s->in_header = 1;
	s->kind = MSGFIX_K_START;
}

static int
msgfix_put(struct buf *out, const void *data, size_t len)
{
	if (out == NULL || len == 0)
		return 0;
	return buf_append(out, data, len);
}

/* The header ends here: the added fields, and a blank line when the
 * body starts without one (blank 0) or nothing follows (blank -1). */
static int
msgfix_header_end(struct msgfix_scan *s, int need_blank, struct buf *out)
{
	const char *eol = s->crlf ? "\r\n" : "\n";
	char       *f;
	int         present = 0, rc = 0;

	s->in_header = 0;
	if (s->added != NULL && !s->inserted) {
		present = (s->has_date ? MAILMSG_HAS_DATE : 0) |
		    (s->has_from ? MAILMSG_HAS_FROM : 0) |
		    (s->has_msgid ? MAILMSG_HAS_MSGID : 0);
		f = mailmsg_added_fields(present, s->added->date,
		    s->added->from, s->added->msgid_id, s->added->hostname,
		    eol);
		rc = msgfix_put(out, f, strlen(f));
		free(f);
	}
	s->inserted = 1;
	if (rc == 0 && need_blank && s->added != NULL)
		rc = msgfix_put(out, eol, strlen(eol));
	return rc;
}

/* A field name was read (s->hold, then ':'): note what it is. */
static void
msgfix_field_name(struct msgfix_scan *s)
{
	size_t n = s->hold_len;

	while (n > 0 && msgfix_wsp((unsigned char)s->hold[n - 1]))
		n--;
	s->capture = MSGFIX_CAP_NONE;
#define MSGFIX_IS(name) \
	(n == sizeof(name) - 1 && strncasecmp(s->hold, name, n) == 0)
	if (MSGFIX_IS("date"))
		s->has_date = 1;
	else if (MSGFIX_IS("from"))
		s->has_from = 1;
	else if (MSGFIX_IS("message-id"))
		s->has_msgid = 1;
	else if (MSGFIX_IS("mime-version"))
		s->has_mime = 1;
	else if (MSGFIX_IS("content-type") && !s->has_ct) {
		s->has_ct = 1;
		s->capture = MSGFIX_CAP_CT;
	} else if (MSGFIX_IS("content-transfer-encoding") && !s->has_cte) {
		s->has_cte = 1;
		s->capture = MSGFIX_CAP_CTE;
	}
#undef MSGFIX_IS
	s->fields++;
}

static void
msgfix_capture(struct msgfix_scan *s, unsigned char c)
{
	char   *v;
	size_t *len;

	if (s->capture == MSGFIX_CAP_CT) {
		v = s->ct;
		len = &s->ct_len;
	} else if (s->capture == MSGFIX_CAP_CTE) {
		v = s->cte;
		len = &s->cte_len;
	} else
		return;
	if (*len + 1 < MSGFIX_VALUE_MAX)
		v[(*len)++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
}

/* One octet of a field or continuation line (not a line break): the
 * fold simulation. */
static void
msgfix_fold_step(struct msgfix_scan *s, unsigned char c)
{
	if (msgfix_wsp(c) && !s->prev_wsp && s->seg > 0 && s->after_colon)
		s->cand = s->seg;
	s->seg++;
	s->prev_wsp = msgfix_wsp(c);
	if (s->seg <= MSGFIX_LINE_MAX)
		return;
	if (s->cand > 0) {
		s->hdr_fold = 1;
		s->seg -= s->cand;
		s->cand = 0;
	} else if (s->hdr_long_line == 0)
		s->hdr_long_line = s->line;
}

/* Counting shared by header and body: returns 1 when c is a line break
 * (the LF of a CRLF is part of the break before it and returns 2). */
static int
msgfix_count(struct msgfix_scan *s, unsigned char c)
{
	if (s->prev_cr && c == '\n') {
		s->prev_cr = 0;
		if (s->line == 2 && !s->first_eol_seen) {
			s->crlf = 1;
			s->first_eol_seen = 1;
		}
		return 2;
	}
	s->any = 1;
	if (s->line == 2 && !s->first_eol_seen)
		s->first_eol_seen = 1; /* the first line ended alone */
	s->prev_cr = c == '\r';
	if (c == '\r' || c == '\n') {
		s->line++;
		s->col = 0;
		return 1;
	}
	if (c == '\0' && s->nul_line == 0)
		s->nul_line = s->line;
	s->col++;
	return 0;
}

/* The rest of the current line is body: the header ended before it. */
static int
msgfix_to_body(struct msgfix_scan *s, struct buf *out)
{
	int rc;

	/* The line so far was counted as header, where only a field's
	 * length is checked: a long one is the body's long line now, since
	 * no body run counts its start again.  Mid-line, col is its length
	 * so far; at its line break (col 0 again) the held start is the
	 * whole line. */
	if (s->body_long_line == 0) {
		if (s->col > MSGFIX_LINE_MAX)
			s->body_long_line = s->line;
		else if (s->col == 0 && s->hold_len > MSGFIX_LINE_MAX)
			s->body_long_line = s->line - 1;
	}
	rc = msgfix_header_end(s, 1, out);
	if (rc == 0)
		rc = msgfix_put(out, s->hold, s->hold_len);
	s->hold_len = 0;
	return rc;
}

/* One header octet.  Returns 0, or SQ_ELIMIT when out is full. */
static int
msgfix_header_byte(struct msgfix_scan *s, unsigned char c, struct buf *out)
{
	int brk = msgfix_count(s, c), rc;

	if (brk == 2)
		return msgfix_put(out, &c, 1);
	if (brk) {
		switch (s->kind) {
		case MSGFIX_K_START:
			/* A blank line: the header ends before it. */
			if ((rc = msgfix_header_end(s, 0, out)) != 0)
				return rc;
			return msgfix_put(out, &c, 1);
		case MSGFIX_K_NAME:
			if ((rc = msgfix_to_body(s, out)) != 0)
				return rc;
			return msgfix_put(out, &c, 1);
		default:
			s->kind = MSGFIX_K_START;
			return msgfix_put(out, &c, 1);
		}
	}
	switch (s->kind) {
	case MSGFIX_K_START:
		s->seg = 0;
		s->cand = 0;
		s->prev_wsp = 0;
		s->ws_in_name = 0;
		if (msgfix_wsp(c) && s->fields > 0) {
			s->kind = MSGFIX_K_CONT;
			s->after_colon = 1;
			if (s->capture != MSGFIX_CAP_NONE)
				msgfix_capture(s, ' ');
			msgfix_fold_step(s, c);
			return msgfix_put(out, &c, 1);
		}
		if (!msgfix_ftext(c)) {
			if ((rc = msgfix_to_body(s, out)) != 0)
				return rc;
			return msgfix_put(out, &c, 1);
		}
		s->kind = MSGFIX_K_NAME;
		s->capture = MSGFIX_CAP_NONE;
		s->hold[s->hold_len++] = (char)c;
		return 0;
	case MSGFIX_K_NAME:
		if (c == ':') {
			msgfix_field_name(s);
			rc = msgfix_put(out, s->hold, s->hold_len);
			s->seg = s->hold_len;
			s->hold_len = 0;
			s->kind = MSGFIX_K_FIELD;
			s->after_colon = 1;
			s->prev_wsp = 0;
			msgfix_fold_step(s, c);
			return rc != 0 ? rc : msgfix_put(out, &c, 1);
		}
		if ((msgfix_wsp(c) || (!s->ws_in_name && msgfix_ftext(c))) &&
		    s->hold_len < MSGFIX_HOLD_MAX) {
			s->ws_in_name |= msgfix_wsp(c);
			s->hold[s->hold_len++] = (char)c;
			return 0;
		}
		if ((rc = msgfix_to_body(s, out)) != 0)
			return rc;
		return msgfix_put(out, &c, 1);
	default:
		msgfix_capture(s, c);
		msgfix_fold_step(s, c);
		return msgfix_put(out, &c, 1);
	}
}

/*
 * Body octets: what msgfix_count() does octet by octet, a line at a time.
 * The first octet of a run of line octets goes through msgfix_count()
 * (the CR/LF pairing, the first line break); the rest of the run only
 * adds to the column, and may hold a NUL (looked for only when the chunk
 * has one) or an 8-bit octet (or-ed together).
 */
static void
msgfix_body_run(struct msgfix_scan *s, const unsigned char *p, size_t len)
{
	const unsigned char *end = p + len, *q, *cr, *lf;
	int                  nul = memchr(p, '\0', len) != NULL;
	unsigned char        any8 = 0;

	while (p < end) {
		if (*p == '\r' || *p == '\n') {
			msgfix_count(s, *p++);
			continue;
		}
		lf = memchr(p, '\n', (size_t)(end - p));
		cr = memchr(p, '\r', (size_t)((lf != NULL ? lf : end) - p));
		q = cr != NULL ? cr : lf != NULL ? lf : end;
		msgfix_count(s, *p);
		s->col += (size_t)(q - p) - 1;
		if (nul && s->nul_line == 0 &&
		    memchr(p, '\0', (size_t)(q - p)) != NULL)
			s->nul_line = s->line;
		if (s->col > MSGFIX_LINE_MAX && s->body_long_line == 0)
			s->body_long_line = s->line;
		for (; p < q; p++)
			any8 |= *p;
	}
	if (any8 & 0x80)
		s->body_8bit = 1;
}

int
msgfix_scan_feed(struct msgfix_scan *s, const void *data, size_t len,
    struct buf *out)
{
	const unsigned char *p = data;
	size_t               i = 0, start;
	int                  rc;

	while (i < len && s->in_header) {
		if ((rc = msgfix_header_byte(s, p[i++], out)) != 0)
			return rc;
	}
	start = i;
	msgfix_body_run(s, p + start, len - start);
	return msgfix_put(out, p + start, len - start);
}

int
msgfix_scan_end(struct msgfix_scan *s, struct buf *out)
{
	const char *eol = s->crlf ? "\r\n" : "\n";
	int         rc = 0;

	if (!s->in_header)
		return 0;
	switch (s->kind) {
	case MSGFIX_K_NAME:
		return msgfix_to_body(s, out);
	case MSGFIX_K_FIELD:
	case MSGFIX_K_CONT:
		/* The last field has no line break: give it one before the
		 * added fields. */
		if (s->added != NULL)
			rc = msgfix_put(out, eol, strlen(eol));
		break;
	default:
		break;
	}
	return rc != 0 ? rc : msgfix_header_end(s, 0, out);
}

/* The value without leading white space. */
static const char *
msgfix_value(const char *v)
{
	while (msgfix_wsp((unsigned char)*v))
		v++;
	return v;
}

/* Why a body with long lines cannot be re-encoded, or NULL if it can. */
static const char *
msgfix_no_qp(const struct msgfix_scan *s, char *why, size_t whysz)
{
	const char *ct = msgfix_value(s->ct), *cte = msgfix_value(s->cte);
	size_t      n;

	if (s->has_ct &&
	    (strncmp(ct, "multipart/", 10) == 0 ||
		strncmp(ct, "message/", 8) == 0)) {
		n = strcspn(ct, "; \t(");
		snprintf(why, whysz, "the body is %.*s", (int)(n > 60 ? 60 : n),
		    ct);
		return why;
	}
	if (!s->has_cte)
		return NULL;
	n = strcspn(cte, "; \t(");
	if ((n == 4 &&
		(strncmp(cte, "7bit", 4) == 0 || strncmp(cte, "8bit", 4) == 0)))
		return NULL;
	snprintf(why, whysz,
	    "the body is already encoded (Content-Transfer-Encoding: %.*s)",
	    (int)(n > 40 ? 40 : n), cte);
	return why;
}

enum msgfix_verdict
msgfix_verdict(const struct msgfix_scan *s, struct sq_err *err)
{
	char why[128];

	if (s->nul_line != 0) {
		sq_err_set(err, SQ_EPARSE, "line %llu contains a NUL byte",
		    (unsigned long long)s->nul_line);
		return MSGFIX_REFUSE;
	}
	if (s->hdr_long_line != 0) {
		sq_err_set(err, SQ_EPARSE,
		    "line %llu is a header line longer than %d octets with no "
		    "white space to fold it at",
		    (unsigned long long)s->hdr_long_line, MSGFIX_LINE_MAX);
		return MSGFIX_REFUSE;
	}
	if (s->body_long_line != 0) {
		if (msgfix_no_qp(s, why, sizeof(why)) != NULL) {
			sq_err_set(err, SQ_EPARSE,
			    "line %llu is longer than %d octets and cannot be "
			    "re-encoded: %s",
			    (unsigned long long)s->body_long_line,
			    MSGFIX_LINE_MAX, why);
			return MSGFIX_REFUSE;
		}
		return MSGFIX_REWRITE;
	}
	return s->hdr_fold ? MSGFIX_REWRITE : MSGFIX_KEEP;
}

/* ------------------------------------------------------------ rewriter */

void
msgfix_rw_init(struct msgfix_rw *r, const struct msgfix_scan *s)
{
	char why[128];

	memset(r, 0, sizeof(*r));
	r->qp = s->body_long_line != 0 &&
	    msgfix_no_qp(s, why, sizeof(why)) == NULL;
	r->add_mime = r->qp && !s->has_mime;
	if (r->qp && !s->has_ct)
		r->add_ct = s->body_8bit ? "text/plain; charset=utf-8" :
					   "text/plain; charset=us-ascii";
	r->in_header = 1;
	r->pend = -1;
	buf_init(&r->hdr, MSGFIX_HEADER_MAX);
}

void
msgfix_rw_fini(struct msgfix_rw *r)
{
	buf_fini(&r->hdr);
}

/* Emit the bytes of one header field (continuation lines included),
 * folded by the rule at the top of this file.  Returns 0 or SQ_EPARSE
 * (a line that cannot be folded) or SQ_ELIMIT. */
static int
msgfix_fold(const char *f, size_t len, size_t colon, struct buf *out)
{
	size_t        i, start = 0, seg = 0, cand = 0;
	int           prev_wsp = 0, after = 0, rc = 0;
	unsigned char c;

	for (i = 0; i < len && rc == 0; i++) {
		c = (unsigned char)f[i];
		if (c == '\r' || c == '\n') {
			seg = cand = 0;
			prev_wsp = 0;
			after = 1; /* continuation lines */
			continue;
		}
		if (msgfix_wsp(c) && !prev_wsp && seg > 0 && after)
			cand = seg;
		seg++;
		prev_wsp = msgfix_wsp(c);
		if (i == colon)
			after = 1;
		if (seg <= MSGFIX_LINE_MAX)
			continue;
		if (cand == 0)
			return SQ_EPARSE;
		/* Break before the fold point: i - seg + 1 is the segment's
		 * first octet. */
		rc = buf_append(out, f + start, i - seg + 1 + cand - start);
		if (rc == 0)
			rc = buf_append(out, "\n", 1);
		start = i - seg + 1 + cand;
		seg -= cand;
		cand = 0;
	}
	return rc != 0 ? rc : buf_append(out, f + start, len - start);
}

static int
msgfix_qp_put(struct msgfix_rw *r, const char *tok, size_t t, struct buf *out)
{
	int rc = 0;

	if (r->col + t > MSGFIX_QP_LINE_MAX - 1) {
		rc = buf_append(out, "=\n", 2);
		r->col = 0;
	}
	r->col += t;
	return rc != 0 ? rc : buf_append(out, tok, t);
}

/* Quoted-printable, one octet (RFC 2045 6.7 rules 1-5). */
static int
msgfix_qp_byte(struct msgfix_rw *r, unsigned char c, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char              tok[3];
	int               rc = 0;

	if (r->prev_cr && c == '\n') {
		r->prev_cr = 0;
		return 0;
	}
	r->prev_cr = c == '\r';
	if (c == '\r' || c == '\n') {
		/* White space before a hard break is encoded (rule 3). */
		if (r->pend >= 0) {
			tok[0] = '=';
			tok[1] = hex[(r->pend >> 4) & 0xf];
			tok[2] = hex[r->pend & 0xf];
			rc = msgfix_qp_put(r, tok, 3, out);
			r->pend = -1;
		}
		r->col = 0;
		return rc != 0 ? rc : buf_append(out, "\n", 1);
	}
	if (r->pend >= 0) {
		tok[0] = (char)r->pend;
		r->pend = -1;
		if ((rc = msgfix_qp_put(r, tok, 1, out)) != 0)
			return rc;
	}
	if (msgfix_wsp(c)) {
		r->pend = c;
		return 0;
	}
	if ((c >= 33 && c <= 60) || (c >= 62 && c <= 126)) {
		tok[0] = (char)c;
		return msgfix_qp_put(r, tok, 1, out);
	}
	tok[0] = '=';
	tok[1] = hex[c >> 4];
	tok[2] = hex[c & 0xf];
	return msgfix_qp_put(r, tok, 3, out);
}

static int
msgfix_rw_body(struct msgfix_rw *r, const void *data, size_t len, int last,
    struct buf *out)
{
	const unsigned char *p = data;
	size_t               i;
	int                  rc = 0;

	if (!r->qp)
		return len > 0 ? buf_append(out, data, len) : 0;
	for (i = 0; i < len && rc == 0; i++)
		rc = msgfix_qp_byte(r, p[i], out);
	if (rc == 0 && last && r->pend >= 0) {
		char tok[3] = { '=', '2', '0' };

		if (r->pend == '\t')
			tok[1] = '0', tok[2] = '9';
		r->pend = -1;
		rc = msgfix_qp_put(r, tok, 3, out);
	}
	return rc;
}

/* The header block in r->hdr ended at header_len (body at body_off):
 * write it out rewritten, then the body bytes that came with it. */
static int
msgfix_rw_header(struct msgfix_rw *r, const struct mailmsg_header *h, int last,
    struct buf *out, struct sq_err *err)
{
	const struct mailmsg_field *f;
	const char                 *d = r->hdr.data;
	size_t                      i;
	int                         rc = 0;

	for (i = 0; i < h->n_fields && rc == 0; i++) {
		f = &h->fields[i];
		if (r->qp && f->name_len == 25 &&
		    strncasecmp(d + f->off, "content-transfer-encoding", 25) ==
			0)
			continue;
		rc = msgfix_fold(d + f->off, f->len, f->value_off - 1 - f->off,
		    out);
	}
	if (rc == SQ_EPARSE)
		return sq_err_set(err, rc, "a header line cannot be folded");
	if (rc == 0 && r->add_mime)
		rc = buf_append_str(out, "MIME-Version: 1.0\n");
	if (rc == 0 && r->add_ct) {
		rc = buf_append_str(out, "Content-Type: ");
		if (rc == 0)
			rc = buf_append_str(out, r->add_ct);
		if (rc == 0)
			rc = buf_append(out, "\n", 1);
	}
	if (rc == 0 && r->qp)
		rc = buf_append_str(out,
		    "Content-Transfer-Encoding: quoted-printable\n");
	if (rc == 0 && h->has_blank)
		rc = buf_append(out, d + h->header_len,
		    h->body_off - h->header_len);
	else if (rc == 0 && (r->qp || h->body_off < r->hdr.len))
		rc = buf_append(out, "\n", 1);
	if (rc == 0)
		rc = msgfix_rw_body(r, d + h->body_off,
		    r->hdr.len - h->body_off, last, out);
	if (rc != 0 && err->code == 0)
		sq_err_set(err, rc, "rewritten message too large");
	return rc;
}

int
msgfix_rw_step(void *rw, const void *data, size_t len, int last,
    struct buf *out, struct sq_err *err)
{
	struct msgfix_rw     *r = rw;
	struct mailmsg_header h;
	const char           *nl;
	size_t                upto;
	int                   rc;

	if (!r->in_header)
		return msgfix_rw_body(r, data, len, last, out);
	if (len > 0 && buf_append(&r->hdr, data, len) != 0)
		return sq_err_set(err, SQ_ELIMIT,
		    "header section larger than %d bytes: cannot rewrite it",
		    MSGFIX_HEADER_MAX);
	/* Only complete lines can be classified (unless this is all). */
	upto = r->hdr.len;
	if (!last) {
		for (nl = NULL; upto > 0; upto--)
			if (r->hdr.data[upto - 1] == '\n') {
				nl = r->hdr.data + upto;
				break;
			}
		if (nl == NULL)
			return 0;
	}
	mailmsg_scan(r->hdr.data, upto, &h);
	if (!last && !h.has_blank && h.header_len == upto) {
		mailmsg_header_fini(&h);
		return 0; /* still in the header */
	}
	r->in_header = 0;
	rc = msgfix_rw_header(r, &h, last, out, err);
	mailmsg_header_fini(&h);
	buf_fini(&r->hdr);
	return rc;
}

/* ------------------------------------------------------------ decoder */

int
msgfix_qp_decode(const char *in, size_t len, struct buf *out)
{
	size_t pos = 0, end, next, i;
	int    hi, lo, soft;
	char   c;

	while (pos < len) {
		const char *nl = memchr(in + pos, '\n', len - pos);

		end = nl != NULL ? (size_t)(nl - in) : len;
		next = nl != NULL ? end + 1 : len;
		if (end > pos && in[end - 1] == '\r' && nl != NULL)
			end--;
		while (end > pos && msgfix_wsp((unsigned char)in[end - 1]))
			end--; /* transport padding */
		soft = end > pos && in[end - 1] == '=';
		if (soft)
			end--;
		for (i = pos; i < end; i++) {
			c = in[i];
			if (c == '=') {
				if (i + 2 >= end ||
				    (hi = sq_hex_value(in[i + 1])) < 0 ||
				    (lo = sq_hex_value(in[i + 2])) < 0)
					return -1;
				c = (char)(hi << 4 | lo);
				i += 2;
			}
			if (buf_append(out, &c, 1) != 0)
				return -1;
		}
		if (!soft && nl != NULL && buf_append(out, "\n", 1) != 0)
			return -1;
		pos = next;
	}
	return 0;
}
