/*
 * json_write.c - RFC 8259 strings (with a UTF-8 check) and a writer that
 * places the separators.
 *
 * The writer keeps one bit per nesting level: set once that level has an
 * item, so the next item there is preceded by a comma.  A key sets
 * after_key, so its value gets no comma of its own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json_write.h"
#include "util.h"

/* Length of the valid UTF-8 sequence at s[0..n), 0 if it is not one. */
static size_t
json_write_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t        len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* at most U+10FFFF */
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* The escape of byte c when it has a short one, else NULL. */
static const char *
json_write_short_escape(unsigned char c)
{
	switch (c) {
	case '"':
		return "\\\"";
	case '\\':
		return "\\\\";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	default:
		return NULL;
	}
}

/* Append the byte(s) at p[0..left) that need care; returns how many
 * were consumed (>= 1), and a buf_append failure in *rc. */
static size_t
json_write_special(struct buf *out, const unsigned char *p, size_t left,
    int *rc)
{
	const char *e;
	char        esc[8];
	size_t      n;

	if ((e = json_write_short_escape(p[0])) != NULL)
		*rc |= buf_append(out, e, 2);
	else if (p[0] < 0x20 || p[0] == 0x7f) {
		snprintf(esc, sizeof(esc), "\\u%04x", p[0]);
		*rc |= buf_append(out, esc, 6);
	} else if ((n = json_write_utf8_len(p, left)) > 0) {
		*rc |= buf_append(out, p, n);
		return n;
	} else
		*rc |= buf_append(out, "\\ufffd", 6);
	return 1;
}

int
json_write_string(struct buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t               i, run;
	int                  rc;

	rc = buf_append(out, "\"", 1);
	for (i = 0; i < len && rc == 0;) {
		/* Copy the longest run that needs no escaping at once. */
		for (run = i; run < len && p[run] >= 0x20 && p[run] < 0x7f &&
		     p[run] != '"' && p[run] != '\\';
		     run++)
			;
		if (run > i) {
			rc = buf_append(out, s + i, run - i);
			i = run;
		} else
			i += json_write_special(out, p + i, len - i, &rc);
	}
	if (rc == 0)
		rc = buf_append(out, "\"", 1);
	return rc != 0 ? SQ_ELIMIT : 0;
}

/* ------------------------------------------------------------------ */
/* The structured writer. */

void
json_write_init(struct json_write *w, struct buf *out)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
}

static void
json_write_raw(struct json_write *w, const char *s, size_t len)
{
	if (w->rc == 0 && buf_append(w->out, s, len) != 0)
		w->rc = SQ_ELIMIT;
}

/* Before any value or key: the comma its level needs. */
static void
json_write_sep(struct json_write *w)
{
	uint32_t bit = (uint32_t)1 << w->depth;

	if (w->after_key) {
		w->after_key = 0;
		return;
	}
	if (w->has_item & bit)
		json_write_raw(w, ",", 1);
	w->has_item |= bit;
}

static void
json_write_open(struct json_write *w, const char *c)
{
	json_write_sep(w);
	if (w->depth + 1 >= JSON_WRITE_DEPTH_MAX) {
		w->rc = SQ_ELIMIT;
		return;
	}
	json_write_raw(w, c, 1);
	w->depth++;
	w->has_item &= ~((uint32_t)1 << w->depth);
}

static void
json_write_close(struct json_write *w, const char *c)
{
	if (w->depth == 0 || w->after_key) {
		w->rc = SQ_ELIMIT;
		return;
	}
	w->depth--;
	json_write_raw(w, c, 1);
}

void
json_write_object_begin(struct json_write *w)
{
	json_write_open(w, "{");
}

void
json_write_object_end(struct json_write *w)
{
	json_write_close(w, "}");
}

void
json_write_array_begin(struct json_write *w)
{
	json_write_open(w, "[");
}

void
json_write_array_end(struct json_write *w)
{
	json_write_close(w, "]");
}

void
json_write_key(struct json_write *w, const char *key)
{
	json_write_sep(w);
	if (w->rc == 0 && json_write_string(w->out, key, strlen(key)) != 0)
		w->rc = SQ_ELIMIT;
	json_write_raw(w, ":", 1);
	w->after_key = 1;
}

void
json_write_strn(struct json_write *w, const char *s, size_t len)
{
	json_write_sep(w);
	if (w->rc == 0 && json_write_string(w->out, s, len) != 0)
		w->rc = SQ_ELIMIT;
}

void
json_write_str(struct json_write *w, const char *s)
{
	if (s == NULL)
		json_write_null(w);
	else
		json_write_strn(w, s, strlen(s));
}

/* A number or literal: its separator, then its text. */
static void
json_write_scalar(struct json_write *w, const char *text)
{
	json_write_sep(w);
	json_write_raw(w, text, strlen(text));
}

void
json_write_uint(struct json_write *w, uint64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	json_write_scalar(w, num);
}

void
json_write_int(struct json_write *w, int64_t v)
{
	char num[24];

	snprintf(num, sizeof(num), "%" PRId64, v);
	json_write_scalar(w, num);
}

void
json_write_bool(struct json_write *w, int v)
{
	json_write_scalar(w, v ? "true" : "false");
}

void
json_write_null(struct json_write *w)
{
	json_write_scalar(w, "null");
}

int
json_write_finish(const struct json_write *w)
{
	if (w->rc != 0)
		return w->rc;
	return w->depth == 0 && !w->after_key ? 0 : SQ_ELIMIT;
}
