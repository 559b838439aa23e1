/*
 * bounce.c - RFC 3464 delivery status notifications.
 *
 * How it works: the three MIME parts (the human text, the
 * message/delivery-status fields, the original header section) are first
 * built into scratch buffers.  The boundary is "sendq." plus the nonce
 * reduced to [A-Za-z0-9-]; while it occurs anywhere in a part, a counter
 * is appended ("_1", "_2", ...), so the result depends only on the input.
 * Then the top-level header, the preamble and the parts are appended to
 * the caller's buffer.  Any append that hits a buffer's maximum makes the
 * whole call fail with SQ_ELIMIT and the caller's buffer is cut back to
 * its length on entry.
 *
 * Everything that comes from outside (addresses, replies, host names,
 * queue id) goes through bounce_clean(): runs of blanks and line breaks
 * become one space, every other byte outside printable ASCII becomes '?',
 * so no value can end a header line and start another one.  Long values
 * are folded at spaces before column 78 and broken by force before 998;
 * continuation lines start with white space.  The original header section
 * keeps its lines (CRLF becomes LF) with other control bytes and 8-bit
 * bytes made '?', as part 3 is declared 7bit.
 *
 * Diagnostic-Code has the type "smtp" when the reply starts with an SMTP
 * reply code, else (a local reason such as "message expired after 5
 * days") the type "X-Sendq", as RFC 3464 2.3.6 reserves "smtp" for
 * replies.
 *
 * ENVID and ORCPT (RFC 3461) come in xtext; they are decoded ("+2B" is
 * '+') and then cleaned like every other value, as RFC 3464 2.2.1 and
 * 2.3.1 report the original envelope id and recipient address
 * themselves, not their SMTP encoding.
 *
 * Dates are RFC 5322 in UTC ("Tue, 14 Nov 2023 22:13:20 +0000"), from the
 * seconds passed in, by mailmsg_date().
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounce.h"
#include "mailmsg.h"
#include "buf.h"
#include "util.h"

#define BOUNCE_FOLD       78  /* preferred line length */
#define BOUNCE_LINE_MAX   998 /* RFC 5322 2.1.1 hard limit */
#define BOUNCE_NONCE_MAX  40  /* boundary stays under 70 chars */
#define BOUNCE_HOST_MAX   253
#define BOUNCE_STATUS_MAX 16

/* An output buffer with a sticky error: callers append freely and look
 * at err once at the end. */
struct bounce_w {
	struct buf *b;
	int         err;
};

static void
bounce_put(struct bounce_w *w, const char *s, size_t n)
{
	if (w->err == 0)
		w->err = buf_append(w->b, s, n);
}

static void
bounce_puts(struct bounce_w *w, const char *s)
{
	bounce_put(w, s, strlen(s));
}

static void
    SQ_PRINTF(2, 3) bounce_printf(struct bounce_w *w, const char *fmt, ...)
{
	va_list ap;
	char   *s;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		w->err = SQ_ELIMIT;
		return;
	}
	s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	bounce_put(w, s, (size_t)n);
	free(s);
}

/*
 * A value from outside made safe for a header or a text line: blanks and
 * line breaks collapse to single spaces (trimmed at both ends), other
 * control bytes, DEL and 8-bit bytes become '?'.  NULL gives "".  Returns
 * an allocated string.
 */
static char *
bounce_clean(const char *s)
{
	char *out, *o;
	int   space = 0;

	if (s == NULL)
		return xstrdup("");
	out = o = xmalloc(strlen(s) + 1);
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = 1;
			continue;
		}
		if (space && o != out)
			*o++ = ' ';
		space = 0;
		*o++ = (c > 0x20 && c < 0x7f) ? (char)c : '?';
	}
	*o = '\0';
	return out;
}

/* xtext (RFC 3461 4) decoded; "+XX" that is not a hex pair is kept as
 * it is.  Returns an allocated string (NUL bytes from "+00" become '?'). */
static char *
bounce_xtext_decode(const char *s)
{
	char *out, *o;
	int   hi, lo;

	out = o = xmalloc(strlen(s) + 1);
	for (; *s != '\0'; s++) {
		if (*s == '+' && s[1] != '\0' && s[2] != '\0') {
			hi = sq_hex_value(s[1]);
			lo = sq_hex_value(s[2]);
			if (hi >= 0 && lo >= 0) {
				*o++ = hi == 0 && lo == 0 ?
				    '?' :
				    (char)(hi * 16 + lo);
				s += 2;
				continue;
			}
		}
		*o++ = *s;
	}
	*o = '\0';
	return out;
}

/*
 * A token for the boundary and Message-ID: s reduced to letters, digits,
 * '-' and extra, other bytes replaced by repl, at most max bytes; dflt
 * when nothing is left.  Returns an allocated string.
 */
static char *
bounce_token(const char *s, const char *extra, char repl, size_t max,
    const char *dflt)
{
	char  *out;
	size_t i, n;

	if (s == NULL || *s == '\0')
		return xstrdup(dflt);
	n = strlen(s);
	if (n > max)
		n = max;
	out = xmalloc(n + 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' ||
		    (c != '\0' && strchr(extra, c) != NULL))
			out[i] = (char)c;
		else
			out[i] = repl;
	}
	out[n] = '\0';
	return out;
}

/*
 * Append prefix and text (already cleaned: words separated by single
 * spaces) as one logical line: a space between words becomes a line break
 * plus indent when the next word would pass column 78, and a word that
 * would pass column 998 is cut there.  Ends with a line break.
 */
static void
bounce_fold(struct bounce_w *w, const char *prefix, const char *text,
    const char *indent)
{
	const char *p = text, *e;
	size_t      col, ind = strlen(indent), wl, n;
	int         first = 1;

	bounce_puts(w, prefix);
	col = strlen(prefix);
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if ((e = strchr(p, ' ')) == NULL)
			e = p + strlen(p);
		wl = (size_t)(e - p);
		if (!first) {
			if (col + 1 + wl > BOUNCE_FOLD) {
				bounce_puts(w, "\n");
				bounce_puts(w, indent);
				col = ind;
			} else {
				bounce_puts(w, " ");
				col++;
			}
		}
		while (col + wl > BOUNCE_LINE_MAX) {
			n = BOUNCE_LINE_MAX - col;
			bounce_put(w, p, n);
			bounce_puts(w, "\n");
			bounce_puts(w, indent);
			col = ind;
			p += n;
			wl -= n;
		}
		bounce_put(w, p, wl);
		col += wl;
		p = e;
		first = 0;
	}
	bounce_puts(w, "\n");
}

/* Length of 1 to 3 digits at s, 0 if none. */
static size_t
bounce_digits(const char *s)
{
	size_t n = 0;

	while (n < 3 && s[n] >= '0' && s[n] <= '9')
		n++;
	return n;
}

/*
 * An RFC 3463 status code (class "." 1*3digit "." 1*3digit, class 2, 4
 * or 5) at s.  Returns its length, 0 when s does not start with one.
 */
static size_t
bounce_status_len(const char *s)
{
	size_t n, m;

	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	if (s[1] != '.' || (n = bounce_digits(s + 2)) == 0)
		return 0;
	if (s[2 + n] != '.' || (m = bounce_digits(s + 3 + n)) == 0)
		return 0;
	if (s[3 + n + m] >= '0' && s[3 + n + m] <= '9')
		return 0;
	return 3 + n + m;
}

/* Whether the cleaned reply starts with an SMTP reply code (2xx to 5xx
 * followed by a space, a '-' or the end). */
static int
bounce_is_smtp_reply(const char *reply)
{
	return reply[0] >= '2' && reply[0] <= '5' && reply[1] >= '0' &&
	    reply[1] <= '9' && reply[2] >= '0' && reply[2] <= '9' &&
	    (reply[3] == '\0' || reply[3] == ' ' || reply[3] == '-');
}

/*
 * The Status of one recipient: the given one when it is a well-formed
 * code; else, for a reply that starts with a 4xx or 5xx code, the
 * enhanced code that follows when its class matches, or C.0.0 from the
 * reply code; else 5.0.0 (failed) or 4.0.0 (delayed).  reply is cleaned
 * text.
 */
static void
bounce_status(const struct bounce_rcpt *r, const char *reply,
    enum bounce_action action, char *out, size_t outsz)
{
	size_t n;

	if (r->status != NULL && (n = bounce_status_len(r->status)) > 0 &&
	    r->status[n] == '\0') {
		snprintf(out, outsz, "%s", r->status);
		return;
	}
	if ((reply[0] == '4' || reply[0] == '5') &&
	    bounce_is_smtp_reply(reply)) {
		if (reply[3] != '\0' &&
		    (n = bounce_status_len(reply + 4)) > 0 &&
		    reply[4] == reply[0] &&
		    (reply[4 + n] == '\0' || reply[4 + n] == ' ') &&
		    n < outsz) {
			memcpy(out, reply + 4, n);
			out[n] = '\0';
			return;
		}
		snprintf(out, outsz, "%c.0.0", reply[0]);
		return;
	}
	snprintf(out, outsz, "%s", action == BOUNCE_FAILED ? "5.0.0" : "4.0.0");
}

/* Part 1: the explanation for a person. */
static void
bounce_part_text(struct bounce_w *w, const struct bounce_params *p,
    const char *host)
{
	char   date[64], *s, *addr, *reply, *mta, *line;
	size_t i;

	bounce_printf(w, "This is the mail system at host %s.\n\n", host);
	if (p->action == BOUNCE_FAILED) {
		bounce_puts(w,
		    "Your message could not be delivered to one or more "
		    "recipients.\nThe recipients and the reasons are listed "
		    "below.\n");
	} else {
		bounce_puts(w,
		    "Your message has not yet been delivered to one or more "
		    "recipients.\nThis is only a warning: you do not need to "
		    "send the message again.\n");
		if (p->retry_until > 0) {
			mailmsg_date(p->retry_until, 0, date, sizeof(date));
			bounce_printf(w,
			    "The mail system will keep trying until %s.\n",
			    date);
		} else
			bounce_puts(w,
			    "The mail system will keep trying until the "
			    "message expires.\n");
	}
	if (p->orig_headers == NULL || p->orig_headers_len == 0)
		bounce_puts(w,
		    "The headers of your message are not available.\n");
	else
		bounce_puts(w, "The headers of your message are attached.\n");
	bounce_puts(w, "\n");

	s = bounce_clean(p->queue_id);
	if (*s != '\0')
		bounce_fold(w, "Queue ID: ", s, "    ");
	free(s);
	s = bounce_clean(p->orig_sender);
	line = xasprintf("<%s>", s);
	bounce_fold(w, "Sender: ", line, "    ");
	free(line);
	free(s);
	mailmsg_date(p->arrival, 0, date, sizeof(date));
	bounce_printf(w, "Arrival date: %s\n", date);

	for (i = 0; i < p->n_rcpts; i++) {
		addr = bounce_clean(p->rcpts[i].addr);
		reply = bounce_clean(p->rcpts[i].reply);
		mta = bounce_clean(p->rcpts[i].remote_mta);
		if (*reply == '\0')
			line = xasprintf("%s",
			    p->action == BOUNCE_FAILED ? "delivery failed" :
							 "delivery delayed");
		else if (*mta != '\0')
			line = xasprintf("host %s said: %s", mta, reply);
		else
			line = xasprintf("%s", reply);
		free(reply);
		reply = xasprintf("<%s>: %s", addr, line);
		bounce_puts(w, "\n");
		bounce_fold(w, "", reply, "    ");
		free(line);
		free(reply);
		free(mta);
		free(addr);
	}
}

/* Original-Recipient: TYPE; ADDRESS from ORCPT's "type;xtext" (nothing
 * for a value without a type). */
static void
bounce_orcpt(struct bounce_w *w, const char *orcpt)
{
	const char *semi;
	char       *type, *raw, *addr, *line;

	if (orcpt == NULL || (semi = strchr(orcpt, ';')) == NULL ||
	    semi == orcpt)
		return;
	raw = xstrndup(orcpt, (size_t)(semi - orcpt));
	type = bounce_clean(raw);
	free(raw);
	raw = bounce_xtext_decode(semi + 1);
	addr = bounce_clean(raw);
	free(raw);
	if (*type != '\0' && *addr != '\0') {
		line = xasprintf("%s; %s", type, addr);
		bounce_fold(w, "Original-Recipient: ", line, " ");
		free(line);
	}
	free(addr);
	free(type);
}

/* Part 2: the machine-readable report (RFC 3464 section 2). */
static void
bounce_part_status(struct bounce_w *w, const struct bounce_params *p,
    const char *host)
{
	char                      date[64], now[64], status[BOUNCE_STATUS_MAX];
	char                     *s, *reply, *v;
	const struct bounce_rcpt *r;
	size_t                    i;

	mailmsg_date(p->now, 0, now, sizeof(now));
	if (p->envid != NULL) {
		v = bounce_xtext_decode(p->envid);
		s = bounce_clean(v);
		free(v);
		if (*s != '\0')
			bounce_fold(w, "Original-Envelope-Id: ", s, " ");
		free(s);
	}
	bounce_printf(w, "Reporting-MTA: dns; %s\n", host);
	s = bounce_clean(p->queue_id);
	if (*s != '\0')
		bounce_fold(w, "X-Sendq-Queue-ID: ", s, " ");
	free(s);
	mailmsg_date(p->arrival, 0, date, sizeof(date));
	bounce_printf(w, "Arrival-Date: %s\n", date);

	for (i = 0; i < p->n_rcpts; i++) {
		r = &p->rcpts[i];
		bounce_puts(w, "\n");
		bounce_orcpt(w, r->orcpt);
		s = bounce_clean(r->addr);
		bounce_fold(w, "Final-Recipient: rfc822; ", s, " ");
		free(s);
		bounce_printf(w, "Action: %s\n",
		    p->action == BOUNCE_FAILED ? "failed" : "delayed");
		reply = bounce_clean(r->reply);
		bounce_status(r, reply, p->action, status, sizeof(status));
		bounce_printf(w, "Status: %s\n", status);
		v = bounce_clean(r->remote_mta);
		if (*v != '\0')
			bounce_fold(w, "Remote-MTA: dns; ", v, " ");
		free(v);
		if (bounce_is_smtp_reply(reply))
			bounce_fold(w, "Diagnostic-Code: smtp; ", reply, " ");
		else if (*reply != '\0')
			bounce_fold(w, "Diagnostic-Code: X-Sendq; ", reply,
			    " ");
		free(reply);
		bounce_printf(w, "Last-Attempt-Date: %s\n", now);
		if (p->action == BOUNCE_DELAYED && p->retry_until > 0) {
			mailmsg_date(p->retry_until, 0, date, sizeof(date));
			bounce_printf(w, "Will-Retry-Until: %s\n", date);
		}
	}
}

/* Part 3: the original header section, line by line (each ending in
 * LF), without trailing empty lines. */
static void
bounce_part_headers(struct bounce_w *w, const struct bounce_params *p)
{
	const char *h = p->orig_headers;
	size_t      len = p->orig_headers_len, i, col = 0;
	char        c;

	if (h == NULL)
		return;
	while (len > 0 && (h[len - 1] == '\n' || h[len - 1] == '\r'))
		len--;
	for (i = 0; i < len; i++) {
		c = h[i];
		if (c == '\r' && i + 1 < len && h[i + 1] == '\n')
			continue;
		if (c == '\n') {
			bounce_puts(w, "\n");
			col = 0;
			continue;
		}
		if (col == BOUNCE_LINE_MAX) {
			bounce_puts(w, "\n ");
			col = 1;
		}
		if (c != '\t' &&
		    ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f))
			c = '?';
		bounce_put(w, &c, 1);
		col++;
	}
	if (len > 0)
		bounce_puts(w, "\n");
}

/* Whether needle occurs in b. */
static int
bounce_contains(const struct buf *b, const char *needle)
{
	size_t n = strlen(needle);

	return b->len >= n && memmem(b->data, b->len, needle, n) != NULL;
}

/* The MIME boundary: "sendq.NONCE", with "_K" added until it occurs in
 * none of the three parts.  Allocated. */
static char *
bounce_boundary(const struct buf part[3], const char *nonce)
{
	char  *boundary = xasprintf("sendq.%s", nonce);
	size_t i, k;
	int    collide;

	for (k = 1;; k++) {
		collide = 0;
		for (i = 0; i < 3; i++)
			collide |= bounce_contains(&part[i], boundary);
		if (!collide)
			return boundary;
		free(boundary);
		boundary = xasprintf("sendq.%s_%zu", nonce, k);
	}
}

/* From, To, Subject, Date and Message-ID of the report. */
static void
bounce_top_fields(struct bounce_w *w, const struct bounce_params *p,
    const char *host, const char *nonce)
{
	char date[64], *s;

	bounce_puts(w, "From: \"Mail Delivery System\" <MAILER-DAEMON@");
	bounce_puts(w, host);
	bounce_puts(w, ">\n");
	s = bounce_clean(p->to);
	if (*s == '\0')
		bounce_puts(w, "To: undisclosed-recipients:;\n");
	else {
		char *addr = xasprintf("<%s>", s);

		bounce_fold(w, "To: ", addr, " ");
		free(addr);
	}
	free(s);
	bounce_printf(w, "Subject: %s\n",
	    p->action == BOUNCE_FAILED ? "Undelivered Mail Returned to Sender" :
					 "Delayed Mail (still being retried)");
	mailmsg_date(p->now, 0, date, sizeof(date));
	s = mailmsg_added_fields(0, date, NULL, nonce, host, "\n");
	bounce_puts(w, s);
	free(s);
}

int
bounce_build(const struct bounce_params *p, struct buf *out)
{
	struct buf               part[3];
	struct bounce_w          w, pw;
	static const char *const ctype[3] = {
		"text/plain; charset=us-ascii",
		"message/delivery-status",
		"text/rfc822-headers",
	};
	static const char *const cdesc[3] = {
		"Notification",
		"Delivery report",
		"Undelivered Message Headers",
	};
	char  *host, *nonce, *boundary;
	size_t start = out->len, i;

	host = bounce_token(p->reporting_host, ".", '-', BOUNCE_HOST_MAX,
	    "localhost");
	nonce = bounce_token(p->nonce, "", '_', BOUNCE_NONCE_MAX, "0");

	for (i = 0; i < 3; i++)
		buf_init(&part[i], buf_room(out));
	pw.err = 0;
	pw.b = &part[0];
	bounce_part_text(&pw, p, host);
	pw.b = &part[1];
	bounce_part_status(&pw, p, host);
	pw.b = &part[2];
	bounce_part_headers(&pw, p);

	boundary = bounce_boundary(part, nonce);
	w.b = out;
	w.err = pw.err;
	bounce_top_fields(&w, p, host, nonce);
	bounce_puts(&w, "Auto-Submitted: auto-replied\n");
	bounce_puts(&w, "MIME-Version: 1.0\n");
	bounce_puts(&w,
	    "Content-Type: multipart/report; report-type=delivery-status;\n");
	bounce_printf(&w, " boundary=\"%s\"\n", boundary);
	bounce_puts(&w, "\nThis is a MIME-encapsulated message.\n");
	for (i = 0; i < 3; i++) {
		bounce_printf(&w, "\n--%s\n", boundary);
		bounce_printf(&w, "Content-Type: %s\n", ctype[i]);
		bounce_printf(&w, "Content-Description: %s\n\n", cdesc[i]);
		bounce_put(&w, part[i].data, part[i].len);
	}
	bounce_printf(&w, "\n--%s--\n", boundary);

	for (i = 0; i < 3; i++)
		buf_fini(&part[i]);
	free(boundary);
	free(nonce);
	free(host);
	if (w.err != 0) {
		out->len = start;
		return SQ_ELIMIT;
	}
	return 0;
}
