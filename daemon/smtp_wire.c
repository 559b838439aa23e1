/*
 * smtp_wire.c - SMTP replies, EHLO capabilities and DATA encoding.
 *
 * How it works.  The reply parser collects one line at a time in a fixed
 * array (never more than SMTP_WIRE_LINE_MAX bytes: an overlong line is an
 * error as soon as it is seen, not after it ends).  A line ends at LF; a
 * CR right before the LF is dropped, any other CR is text.  Each complete
 * line is checked (three digits, separator, same code as the first line),
 * its text is made printable and appended to the reply's text buffer
 * ('\n' between lines), and the byte count of the reply is checked against
 * SMTP_WIRE_REPLY_MAX.  A line with a ' ' separator (or none) ends the
 * reply: smtp_wire_parse() returns it together with the number of input
 * bytes consumed so far, so the caller knows exactly what follows it.
 * The next call resets the per-reply state.
 *
 * The encoder is a two-bit state machine (at beginning of line; CR just
 * seen) so that chunk boundaries fall anywhere, including between the CR
 * and LF of one line break.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_wire.h"

void
smtp_wire_parser_init(struct smtp_wire_parser *wp)
{
	memset(wp, 0, sizeof(*wp));
	/* The text never exceeds the reply's bytes; +1 for the NUL. */
	buf_init(&wp->text, SMTP_WIRE_REPLY_MAX + 1);
}

void
smtp_wire_parser_fini(struct smtp_wire_parser *wp)
{
	buf_fini(&wp->text);
}

static int
smtp_wire_fail(struct smtp_wire_parser *wp, struct sq_err *err, const char *why)
{
	wp->failed = 1;
	snprintf(wp->why, sizeof(wp->why), "%s", why);
	return sq_err_set(err, SQ_EPROTO, "%s", why);
}

static void
smtp_wire_reset(struct smtp_wire_parser *wp)
{
	wp->text.len = 0;
	wp->code = 0;
	wp->enhanced[0] = '\0';
	wp->lines = 0;
	wp->reply_bytes = 0;
	wp->done = 0;
}

static int
smtp_wire_digits(const char *s, size_t len, size_t *n)
{
	size_t i;

	for (i = 0; i < len && i < 3 && s[i] >= '0' && s[i] <= '9'; i++)
		;
	*n = i;
	return i > 0;
}

/* An RFC 3463 code "c.sss.ddd" at the start of s whose class is cls,
 * followed by a space or the end; copied into out (size >= 16). */
static void
smtp_wire_enhanced(const char *s, size_t len, char cls, char *out)
{
	size_t i = 0, n;

	out[0] = '\0';
	if (cls != '2' && cls != '4' && cls != '5')
		return;
	if (len < 5 || s[0] != cls || s[1] != '.')
		return;
	i = 2;
	if (!smtp_wire_digits(s + i, len - i, &n))
		return;
	i += n;
	if (i >= len || s[i] != '.')
		return;
	i++;
	if (!smtp_wire_digits(s + i, len - i, &n))
		return;
	i += n;
	if (i < len && s[i] != ' ')
		return;
	memcpy(out, s, i);
	out[i] = '\0';
}

/* One complete line (without its LF) in wp->line.  Returns 1 when it
 * ends the reply, 0 when more lines follow, SQ_EPROTO on error. */
static int
smtp_wire_line(struct smtp_wire_parser *wp, struct sq_err *err)
{
	char  *l = wp->line;
	size_t len = wp->line_len;
	int    code, last;

	wp->reply_bytes += len + 1;
	if (len > 0 && l[len - 1] == '\r')
		len--;
	if (wp->reply_bytes > SMTP_WIRE_REPLY_MAX)
		return smtp_wire_fail(wp, err, "reply longer than 65536 bytes");
	if (len < 3 || l[0] < '2' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9')
		return smtp_wire_fail(wp, err, "malformed reply code");
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (len == 3 || l[3] == ' ')
		last = 1;
	else if (l[3] == '-')
		last = 0;
	else
		return smtp_wire_fail(wp, err, "malformed reply separator");
	if (wp->lines > 0 && code != wp->code)
		return smtp_wire_fail(wp, err,
		    "reply code changes within a multi-line reply");
	if (wp->lines == 0) {
		wp->code = code;
		if (len > 4)
			smtp_wire_enhanced(l + 4, len - 4, l[0], wp->enhanced);
	} else if (buf_append(&wp->text, "\n", 1) != 0)
		return smtp_wire_fail(wp, err, "reply too long");
	wp->lines++;
	if (len > 4) {
		/* In place: sq_printable copies index by index. */
		sq_printable(l + 4, len - 4 + 1, l + 4, len - 4);
		if (buf_append(&wp->text, l + 4, len - 4) != 0)
			return smtp_wire_fail(wp, err, "reply too long");
	}
	return last;
}

int
smtp_wire_parse(struct smtp_wire_parser *wp, const void *data, size_t len,
    size_t *used, struct smtp_wire_reply *reply, struct sq_err *err)
{
	const char *p = data, *nl;
	size_t      off = 0, take;
	int         rc;

	*used = 0;
	if (wp->failed)
		return sq_err_set(err, SQ_EPROTO, "%s", wp->why);
	if (wp->done)
		smtp_wire_reset(wp);
	while (off < len) {
		nl = memchr(p + off, '\n', len - off);
		take = nl != NULL ? (size_t)(nl - (p + off)) : len - off;
		/* The line, its LF included, must fit SMTP_WIRE_LINE_MAX. */
		if (take > SMTP_WIRE_LINE_MAX - 1 - wp->line_len) {
			*used = off;
			return smtp_wire_fail(wp, err,
			    "reply line longer than 4096 bytes");
		}
		memcpy(wp->line + wp->line_len, p + off, take);
		wp->line_len += take;
		off += take;
		if (nl == NULL)
			break;
		off++;
		rc = smtp_wire_line(wp, err);
		wp->line_len = 0;
		if (rc < 0) {
			*used = off;
			return rc;
		}
		if (rc == 1) {
			if (buf_append(&wp->text, "", 1) != 0) {
				*used = off;
				return smtp_wire_fail(wp, err,
				    "reply too long");
			}
			wp->done = 1;
			reply->code = wp->code;
			memcpy(reply->enhanced, wp->enhanced,
			    sizeof(reply->enhanced));
			reply->text = wp->text.data;
			reply->text_len = wp->text.len - 1;
			reply->lines = wp->lines;
			*used = off;
			return 1;
		}
	}
	*used = off;
	return 0;
}

int
smtp_wire_parser_partial(const struct smtp_wire_parser *wp)
{
	return !wp->done && (wp->line_len > 0 || wp->lines > 0);
}

/* Case-insensitive: does the token s[0..len) equal kw? */
static int
smtp_wire_kw(const char *s, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(s, kw, len) == 0;
}

static unsigned
smtp_wire_auth_mech(const char *s, size_t len)
{
	static const struct {
		const char *name;
		unsigned    bit;
	} mechs[] = {
		{ "PLAIN", SMTP_WIRE_AUTH_PLAIN },
		{ "LOGIN", SMTP_WIRE_AUTH_LOGIN },
		{ "CRAM-MD5", SMTP_WIRE_AUTH_CRAM_MD5 },
		{ "SCRAM-SHA-256", SMTP_WIRE_AUTH_SCRAM_SHA_256 },
		{ "XOAUTH2", SMTP_WIRE_AUTH_XOAUTH2 },
		{ "OAUTHBEARER", SMTP_WIRE_AUTH_OAUTHBEARER },
	};
	size_t i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
		if (smtp_wire_kw(s, len, mechs[i].name))
			return mechs[i].bit;
	return 0;
}

/* Mechanisms in s[0..len), separated by spaces. */
static unsigned
smtp_wire_auth_list(const char *s, size_t len)
{
	unsigned bits = 0;
	size_t   i = 0, start;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		start = i;
		while (i < len && s[i] != ' ')
			i++;
		if (i > start)
			bits |= smtp_wire_auth_mech(s + start, i - start);
	}
	return bits;
}

static uint64_t
smtp_wire_size(const char *s, size_t len)
{
	uint64_t v = 0;
	size_t   i = 0;

	while (i < len && s[i] == ' ')
		i++;
	if (i == len)
		return 0;
	for (; i < len && s[i] != ' '; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static void
smtp_wire_caps_line(struct smtp_wire_caps *caps, const char *s, size_t len)
{
	size_t kw = 0;

	while (kw < len && s[kw] != ' ' && s[kw] != '=')
		kw++;
	if (smtp_wire_kw(s, kw, "STARTTLS"))
		caps->starttls = 1;
	else if (smtp_wire_kw(s, kw, "PIPELINING"))
		caps->pipelining = 1;
	else if (smtp_wire_kw(s, kw, "8BITMIME"))
		caps->eightbitmime = 1;
	else if (smtp_wire_kw(s, kw, "SMTPUTF8"))
		caps->smtputf8 = 1;
	else if (smtp_wire_kw(s, kw, "ENHANCEDSTATUSCODES"))
		caps->enhancedstatuscodes = 1;
	else if (smtp_wire_kw(s, kw, "CHUNKING"))
		caps->chunking = 1;
	else if (smtp_wire_kw(s, kw, "DSN"))
		caps->dsn = 1;
	else if (smtp_wire_kw(s, kw, "SIZE") && (kw == len || s[kw] == ' ')) {
		caps->size = 1;
		caps->size_max = smtp_wire_size(s + kw, len - kw);
	} else if (smtp_wire_kw(s, kw, "AUTH")) {
		caps->auth = 1;
		if (kw < len)
			caps->auth_mechs |= smtp_wire_auth_list(s + kw + 1,
			    len - kw - 1);
	}
}

void
smtp_wire_caps_parse(struct smtp_wire_caps *caps, const char *text, size_t len)
{
	const char *nl;
	size_t      off, n;

	memset(caps, 0, sizeof(*caps));
	/* Skip the first line: the server's name and greeting. */
	nl = memchr(text, '\n', len);
	if (nl == NULL)
		return;
	off = (size_t)(nl - text) + 1;
	while (off < len) {
		nl = memchr(text + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (text + off)) : len - off;
		smtp_wire_caps_line(caps, text + off, n);
		off += n + 1;
	}
}

void
smtp_wire_enc_init(struct smtp_wire_enc *enc)
{
	memset(enc, 0, sizeof(*enc));
	enc->bol = 1;
	enc->line = 1;
}

size_t
smtp_wire_enc(struct smtp_wire_enc *enc, const void *in, size_t len, int last,
    char *out)
{
	const unsigned char *s = in, *lf, *cr, *nul;
	size_t               i = 0, o = 0, end, n, first, at_long;

	while (i < len) {
		unsigned char c = s[i];

		if (enc->skip_lf) {
			enc->skip_lf = 0;
			if (c == '\n') {
				i++;
				continue;
			}
		}
		if (c == '\r' || c == '\n') {
			out[o++] = '\r';
			out[o++] = '\n';
			enc->bol = 1;
			enc->skip_lf = c == '\r';
			enc->col = 0;
			enc->line++;
			i++;
			continue;
		}
		/* A run of text up to the next CR or LF, copied at once (a
		 * byte at a time cost more than the TLS record layer). */
		lf = memchr(s + i, '\n', len - i);
		end = lf != NULL ? (size_t)(lf - s) : len;
		if ((cr = memchr(s + i, '\r', end - i)) != NULL)
			end = (size_t)(cr - s);
		n = end - i;
		if (enc->bad == 0) {
			nul = memchr(s + i, '\0', n);
			first = nul != NULL ? (size_t)(nul - (s + i)) : n;
			at_long = enc->col >= SMTP_WIRE_TEXT_MAX ?
			    0 :
			    SMTP_WIRE_TEXT_MAX - enc->col;
			if (at_long < first) {
				enc->bad = SMTP_WIRE_ENC_LONG;
				enc->bad_line = enc->line;
			} else if (first < n) {
				enc->bad = SMTP_WIRE_ENC_NUL;
				enc->bad_line = enc->line;
			}
		}
		if (enc->bol && c == '.')
			out[o++] = '.';
		memcpy(out + o, s + i, n);
		o += n;
		enc->col += n;
		enc->bol = 0;
		i = end;
	}
	if (last) {
		if (!enc->bol) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
		out[o++] = '.';
		out[o++] = '\r';
		out[o++] = '\n';
		enc->bol = 1;
		enc->skip_lf = 0;
		enc->col = 0;
		enc->line = 1;
	}
	return o;
}
