/*
 * mailmsg.c - header block scanning and address parsing (mailmsg.h).
 *
 * The header block is read line by line: a line is LF-terminated (a CR
 * before the LF belongs to the line ending), the last line may lack its
 * LF.  Field lines open a field, lines starting with SP/HTAB extend the
 * last one, and the first blank or non-header line ends the block.
 *
 * Address lists are parsed in two passes.  The lexer turns the value into
 * tokens (atoms, quoted strings, domain literals and the specials
 * < > : ; @ , .), dropping white space, line folds and (nested) comments.
 * The parser then walks the tokens one list element at a time: an element
 * with ':' before any '<' opens a group (closed by ';'), one with '<' is a
 * name-addr whose angle part holds the address, anything else must be a
 * bare addr-spec.  An addr-spec is rebuilt from its tokens without the
 * white space and comments between them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <arpa/inet.h>

#include "mailmsg.h"
#include "util.h"

enum mailmsg_line
mailmsg_line_kind(const char *line, size_t len)
{
	size_t i;

	if (len == 0)
		return MAILMSG_LINE_OTHER;
	if (line[0] == '\n' || (len >= 2 && line[0] == '\r' && line[1] == '\n'))
		return MAILMSG_LINE_BLANK;
	if (line[0] == ' ' || line[0] == '\t')
		return MAILMSG_LINE_CONT;
	for (i = 0;
	     i < len && line[i] > ' ' && line[i] < 0x7f && line[i] != ':'; i++)
		;
	if (i == 0)
		return MAILMSG_LINE_OTHER;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':' ? MAILMSG_LINE_FIELD :
					   MAILMSG_LINE_OTHER;
}

/* Length of the line at msg[pos..len), its LF included. */
static size_t
mailmsg_line_len(const char *msg, size_t pos, size_t len)
{
	const char *nl;

	nl = memchr(msg + pos, '\n', len - pos);
	return nl != NULL ? (size_t)(nl - (msg + pos)) + 1 : len - pos;
}

void
mailmsg_scan(const char *msg, size_t len, struct mailmsg_header *h)
{
	struct mailmsg_field *f;
	size_t                pos = 0, ll, i, cap = 0, end;

	memset(h, 0, sizeof(*h));
	if (len == 0)
		return;
	ll = mailmsg_line_len(msg, 0, len);
	h->crlf = ll >= 2 && msg[ll - 1] == '\n' && msg[ll - 2] == '\r';
	while (pos < len) {
		ll = mailmsg_line_len(msg, pos, len);
		switch (mailmsg_line_kind(msg + pos, ll)) {
		case MAILMSG_LINE_FIELD:
			if (h->n_fields == cap) {
				cap = cap ? cap * 2 : 16;
				h->fields = xreallocarray(h->fields, cap,
				    sizeof(*h->fields));
			}
			f = &h->fields[h->n_fields++];
			f->off = pos;
			f->len = ll;
			for (i = pos;
			     msg[i] != ':' && msg[i] != ' ' && msg[i] != '\t';
			     i++)
				;
			f->name_len = i - pos;
			while (msg[i] != ':')
				i++;
			f->value_off = i + 1;
			break;
		case MAILMSG_LINE_CONT:
			if (h->n_fields == 0)
				goto body;
			h->fields[h->n_fields - 1].len += ll;
			break;
		case MAILMSG_LINE_BLANK:
			h->has_blank = 1;
			h->header_len = pos;
			h->body_off = pos + ll;
			goto done;
		case MAILMSG_LINE_OTHER:
			goto body;
		}
		pos += ll;
	}
body:
	h->header_len = pos;
	h->body_off = pos;
done:
	for (i = 0; i < h->n_fields; i++) {
		f = &h->fields[i];
		end = f->off + f->len;
		if (end > f->value_off && msg[end - 1] == '\n') {
			end--;
			if (end > f->value_off && msg[end - 1] == '\r')
				end--;
		}
		f->value_len = end - f->value_off;
	}
}

void
mailmsg_header_fini(struct mailmsg_header *h)
{
	free(h->fields);
	memset(h, 0, sizeof(*h));
}

static int
mailmsg_field_is(const struct mailmsg_field *f, const char *msg,
    const char *name)
{
	return strlen(name) == f->name_len &&
	    strncasecmp(msg + f->off, name, f->name_len) == 0;
}

long
mailmsg_find(const struct mailmsg_header *h, const char *msg, const char *name,
    size_t from)
{
	size_t i;

	for (i = from; i < h->n_fields; i++)
		if (mailmsg_field_is(&h->fields[i], msg, name))
			return (long)i;
	return -1;
}

size_t
mailmsg_remove_fields(char *msg, size_t len, const char *name)
{
	struct mailmsg_header h;
	size_t                i, w = 0;

	if (len == 0)
		return 0;
	mailmsg_scan(msg, len, &h);
	for (i = 0; i < h.n_fields; i++) {
		if (mailmsg_field_is(&h.fields[i], msg, name))
			continue;
		memmove(msg + w, msg + h.fields[i].off, h.fields[i].len);
		w += h.fields[i].len;
	}
	memmove(msg + w, msg + h.header_len, len - h.header_len);
	w += len - h.header_len;
	mailmsg_header_fini(&h);
	return w;
}

/* Address lexer. */

enum mailmsg_tok_type {
	MAILMSG_TOK_ATOM,
	MAILMSG_TOK_QSTR,
	MAILMSG_TOK_DLIT,
	MAILMSG_TOK_SPECIAL,
};

struct mailmsg_tok {
	enum mailmsg_tok_type type;
	size_t                off; /* raw text: s[off..off+len) */
	size_t                len;
};

static int
mailmsg_is_atext(unsigned char c)
{
	if (c >= 0x80)
		return 1; /* UTF-8 (RFC 6532) */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static int
mailmsg_addr_fail(struct sq_err *err, const char *what, size_t len,
    const char *why)
{
	char safe[128];

	sq_printable(safe, sizeof(safe), what, len);
	return sq_err_set(err, SQ_EPARSE, "malformed address \"%s%s\": %s",
	    safe, len >= sizeof(safe) ? "..." : "", why);
}

/* Skip a quoted string, comment or domain literal opened at s[*pos],
 * honouring quoted pairs (and nesting for comments).  Returns 0 with *pos
 * after the closing character, or -1 if the input ends first. */
static int
mailmsg_lex_skip(const char *s, size_t len, size_t *pos, char open, char close)
{
	size_t i = *pos + 1;
	int    depth = 1;

	while (i < len) {
		if (s[i] == '\\') {
			i += 2;
			continue;
		}
		if (s[i] == close && --depth == 0) {
			*pos = i + 1;
			return 0;
		}
		if (open == '(' && s[i] == '(')
			depth++;
		if (open == '[' && s[i] == '[')
			return -1;
		i++;
	}
	return -1;
}

static int
mailmsg_lex(const char *s, size_t len, struct mailmsg_tok **toks, size_t *n,
    struct sq_err *err)
{
	struct mailmsg_tok *t;
	size_t              pos = 0, start, cap = 0;
	unsigned char       c;

	*toks = NULL;
	*n = 0;
	while (pos < len) {
		c = (unsigned char)s[pos];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			pos++;
			continue;
		}
		start = pos;
		if (c == '(') {
			if (mailmsg_lex_skip(s, len, &pos, '(', ')') != 0)
				goto unterminated;
			continue;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*toks = xreallocarray(*toks, cap, sizeof(**toks));
		}
		t = &(*toks)[*n];
		t->off = start;
		if (c == '"') {
			if (mailmsg_lex_skip(s, len, &pos, '"', '"') != 0)
				goto unterminated;
			t->type = MAILMSG_TOK_QSTR;
		} else if (c == '[') {
			if (mailmsg_lex_skip(s, len, &pos, '[', ']') != 0)
				goto unterminated;
			t->type = MAILMSG_TOK_DLIT;
		} else if (strchr("<>:;@,.", c) != NULL && c != '\0') {
			pos++;
			t->type = MAILMSG_TOK_SPECIAL;
		} else if (mailmsg_is_atext(c)) {
			while (pos < len &&
			    mailmsg_is_atext((unsigned char)s[pos]))
				pos++;
			t->type = MAILMSG_TOK_ATOM;
		} else {
			free(*toks);
			*toks = NULL;
			*n = 0;
			return mailmsg_addr_fail(err, s, len,
			    c < 0x20 || c == 0x7f ? "control character" :
						    "unexpected character");
		}
		t->len = pos - start;
		(*n)++;
	}
	return 0;
unterminated:
	free(*toks);
	*toks = NULL;
	*n = 0;
	return mailmsg_addr_fail(err, s, len,
	    s[start] == '('     ? "unterminated comment" :
		s[start] == '"' ? "unterminated quoted string" :
				  "unterminated domain literal");
}

static int
mailmsg_tok_is(const struct mailmsg_tok *t, const char *s, char c)
{
	return t->type == MAILMSG_TOK_SPECIAL && s[t->off] == c;
}

/*
 * Rebuild the addr-spec in tokens [a, b): word *("." word) ["@" domain].
 * Returns the new string or NULL if the tokens do not form one.
 */
static char *
mailmsg_addr_spec(const char *s, const struct mailmsg_tok *t, size_t a,
    size_t b)
{
	size_t i, len = 0, o = 0;
	int    in_domain = 0, want_word = 1;
	char  *out;

	if (a >= b)
		return NULL;
	for (i = a; i < b; i++) {
		if (want_word) {
			/* An atom, a quoted local part, or a domain literal
			 * that is the whole domain. */
			if (!(t[i].type == MAILMSG_TOK_ATOM ||
				(!in_domain && t[i].type == MAILMSG_TOK_QSTR) ||
				(in_domain && i == b - 1 &&
				    t[i].type == MAILMSG_TOK_DLIT &&
				    mailmsg_tok_is(&t[i - 1], s, '@'))))
				return NULL;
			want_word = 0;
		} else if (mailmsg_tok_is(&t[i], s, '.'))
			want_word = 1;
		else if (!in_domain && mailmsg_tok_is(&t[i], s, '@')) {
			in_domain = 1;
			want_word = 1;
		} else
			return NULL;
		len += t[i].len;
	}
	if (want_word)
		return NULL;
	out = xmalloc(len + 1);
	for (i = a; i < b; i++) {
		memcpy(out + o, s + t[i].off, t[i].len);
		o += t[i].len;
	}
	out[o] = '\0';
	return out;
}

static void
mailmsg_addr_list_add(struct mailmsg_addr_list *l, char *addr)
{
	l->addrs = xreallocarray(l->addrs, l->n + 1, sizeof(*l->addrs));
	l->addrs[l->n++] = addr;
}

/* The end of the list element starting at token i of t[0..n): the
 * first ',' (or ';' in a group) outside <>, or n. */
static size_t
mailmsg_elem_end(const char *s, const struct mailmsg_tok *t, size_t i, size_t n)
{
	size_t j;
	int    in_angle = 0;

	for (j = i; j < n; j++) {
		if (mailmsg_tok_is(&t[j], s, '<'))
			in_angle = 1;
		else if (mailmsg_tok_is(&t[j], s, '>'))
			in_angle = 0;
		else if (!in_angle &&
		    (mailmsg_tok_is(&t[j], s, ',') ||
			mailmsg_tok_is(&t[j], s, ';')))
			break;
	}
	return j;
}

/*
 * The angle part of a name-addr, tokens t[k..j) of s with t[k] the '<':
 * "<" [route ":"] addr-spec ">" and nothing after (an obsolete source
 * route is dropped).  Returns 0 with *addr (NULL when what is inside is
 * not an addr-spec), or SQ_EPARSE with err naming the element
 * estart/elen.
 */
static int
mailmsg_name_addr(const char *s, const struct mailmsg_tok *t, size_t k,
    size_t j, const char *estart, size_t elen, char **addr, struct sq_err *err)
{
	size_t m;

	for (m = k + 1; m < j; m++)
		if (mailmsg_tok_is(&t[m], s, '>'))
			break;
	if (m == j)
		return mailmsg_addr_fail(err, estart, elen, "missing '>'");
	if (m + 1 != j)
		return mailmsg_addr_fail(err, estart, elen, "text after '>'");
	k++;
	if (k < m && mailmsg_tok_is(&t[k], s, '@')) {
		while (k < m && !mailmsg_tok_is(&t[k], s, ':'))
			k++;
		k++;
	}
	if (k >= m)
		return mailmsg_addr_fail(err, estart, elen, "empty address");
	*addr = mailmsg_addr_spec(s, t, k, m);
	return 0;
}

int
mailmsg_addr_list_parse(struct mailmsg_addr_list *l, const char *s, size_t len,
    struct sq_err *err)
{
	struct mailmsg_tok *t;
	size_t              n, i = 0, j, k, m, first = l->n, elen;
	const char         *estart;
	int                 in_group = 0, rc;
	char               *addr = NULL;

	if ((rc = mailmsg_lex(s, len, &t, &n, err)) != 0)
		return rc;
	while (i < n) {
		if (mailmsg_tok_is(&t[i], s, ',')) {
			i++;
			continue;
		}
		if (mailmsg_tok_is(&t[i], s, ';')) {
			if (!in_group)
				goto bad_semicolon;
			in_group = 0;
			i++;
			continue;
		}
		j = mailmsg_elem_end(s, t, i, n);
		estart = s + t[i].off;
		elen = t[j - 1].off + t[j - 1].len - t[i].off;
		for (k = i; k < j; k++)
			if (mailmsg_tok_is(&t[k], s, ':') ||
			    mailmsg_tok_is(&t[k], s, '<'))
				break;
		for (m = i; m < k; m++)
			if (mailmsg_tok_is(&t[m], s, '>'))
				break;
		if (m < k) {
			rc = mailmsg_addr_fail(err, estart, elen,
			    "'>' without '<'");
			goto fail;
		}
		if (k < j && mailmsg_tok_is(&t[k], s, ':')) {
			if (in_group) {
				rc = mailmsg_addr_fail(err, estart, elen,
				    "group inside a group");
				goto fail;
			}
			in_group = 1;
			i = k + 1;
			continue;
		}
		if (k < j) {
			if ((rc = mailmsg_name_addr(s, t, k, j, estart, elen,
				 &addr, err)) != 0)
				goto fail;
		} else
			addr = mailmsg_addr_spec(s, t, i, j);
		if (addr == NULL) {
			rc = mailmsg_addr_fail(err, estart, elen,
			    k < j ? "not an address inside <>" :
				    "not an address (a name needs <address>)");
			goto fail;
		}
		mailmsg_addr_list_add(l, addr);
		i = j;
	}
	free(t);
	return 0;
bad_semicolon:
	rc = mailmsg_addr_fail(err, s, len, "';' outside a group");
fail:
	free(t);
	while (l->n > first)
		free(l->addrs[--l->n]);
	if (first == 0) {
		free(l->addrs);
		l->addrs = NULL;
	}
	return rc;
}

void
mailmsg_addr_list_fini(struct mailmsg_addr_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->addrs[i]);
	free(l->addrs);
	l->addrs = NULL;
	l->n = 0;
}

static int
mailmsg_valid_fail(struct sq_err *err, const char *addr, const char *why)
{
	char   safe[128];
	size_t len = strlen(addr);

	sq_printable(safe, sizeof(safe), addr, len);
	return sq_err_set(err, SQ_EPARSE, "bad address \"%s%s\": %s", safe,
	    len >= sizeof(safe) ? "..." : "", why);
}

/* ASCII letter or digit (not isalnum(): no locale). */
static int
mailmsg_is_letdig(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * The inside of an address literal (RFC 5321 4.1.3): an IPv4 address, or
 * "IPv6:" and an IPv6 address.  A General-address-literal needs a tag
 * registered with IANA, and IPv6 is the only one: no other is accepted.
 */
static int
mailmsg_literal_valid(const char *s, size_t len)
{
	unsigned char addr[16];
	char          buf[64];

	if (len == 0 || len >= sizeof(buf))
		return 0;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, addr) == 1;
	return inet_pton(AF_INET, buf, addr) == 1;
}

int
mailmsg_host_valid(const char *s, size_t len, int flags)
{
	size_t        i, label = 0;
	int           digits = 1;
	unsigned char c;

	if (len >= 2 && s[0] == '[' && s[len - 1] == ']')
		return (flags & MAILMSG_HOST_LITERAL) != 0 &&
		    mailmsg_literal_valid(s + 1, len - 2);
	if (len == 0 || len > MAILMSG_HOST_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			digits = 1;
			continue;
		}
		if (c == '-' ? label == 0 :
			       !(mailmsg_is_letdig(c) ||
				   (c >= 0x80 && (flags & MAILMSG_HOST_UTF8))))
			return 0;
		if (c < '0' || c > '9')
			digits = 0;
		if (++label > 63)
			return 0;
	}
	return label != 0 && s[len - 1] != '-' && !digits;
}

int
mailmsg_addr_valid(const char *addr, int flags, struct sq_err *err)
{
	size_t        len = strlen(addr), i, local_len;
	unsigned char c;

	if (len == 0)
		return mailmsg_valid_fail(err, addr, "empty address");
	if (len > MAILMSG_ADDR_MAX)
		return mailmsg_valid_fail(err, addr, "longer than 254 bytes");
	if (addr[0] == '"') {
		for (i = 1; i < len && addr[i] != '"'; i++) {
			if (addr[i] == '\\' && i + 1 < len)
				i++;
			c = (unsigned char)addr[i];
			if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
				return mailmsg_valid_fail(err, addr,
				    "bad character in quoted local part");
		}
		if (i == len)
			return mailmsg_valid_fail(err, addr,
			    "unterminated quoted local part");
		local_len = i + 1;
		if (local_len == 2)
			return mailmsg_valid_fail(err, addr,
			    "empty local part");
		if (local_len < len && addr[local_len] != '@')
			return mailmsg_valid_fail(err, addr,
			    "text after the quoted local part");
	} else {
		for (i = 0; i < len && addr[i] != '@'; i++) {
			c = (unsigned char)addr[i];
			if (c == '.') {
				if (i == 0 || addr[i - 1] == '.' ||
				    i + 1 == len || addr[i + 1] == '@')
					return mailmsg_valid_fail(err, addr,
					    "misplaced '.' in local part");
			} else if (c == ' ')
				return mailmsg_valid_fail(err, addr,
				    "space in address");
			else if (c < 0x20 || c == 0x7f)
				return mailmsg_valid_fail(err, addr,
				    "control character in address");
			else if (!mailmsg_is_atext(c))
				return mailmsg_valid_fail(err, addr,
				    "bad character in local part");
		}
		local_len = i;
		if (local_len == 0)
			return mailmsg_valid_fail(err, addr,
			    "empty local part");
	}
	if (local_len > MAILMSG_LOCAL_MAX)
		return mailmsg_valid_fail(err, addr,
		    "local part longer than 64 bytes");
	if (local_len == len) {
		if (flags & MAILMSG_ADDR_UNQUALIFIED)
			return 0;
		return mailmsg_valid_fail(err, addr, "no domain");
	}
	if (!mailmsg_host_valid(addr + local_len + 1, len - local_len - 1,
		MAILMSG_HOST_UTF8 | MAILMSG_HOST_LITERAL))
		return mailmsg_valid_fail(err, addr, "bad domain");
	return 0;
}

void
mailmsg_date(int64_t t, int local, char *out, size_t outsz)
{
	static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu",
		"Fri", "Sat" };
	static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May",
		"Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm         tm;
	time_t            tt = (time_t)t;
	long              off = 0;
	int               ok = (int64_t)tt == t;

	if (ok && local && localtime_r(&tt, &tm) != NULL)
		off = tm.tm_gmtoff;
	else if (!ok || gmtime_r(&tt, &tm) == NULL)
		ok = 0;
	if (!ok || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11 || tm.tm_year < 0 || tm.tm_year > 9999 - 1900 ||
	    off <= -24 * 3600 || off >= 24 * 3600) {
		tt = 0;
		off = 0;
		if (gmtime_r(&tt, &tm) == NULL)
			memset(&tm, 0, sizeof(tm));
	}
	snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+',
	    (off < 0 ? -off : off) / 3600, (off < 0 ? -off : off) % 3600 / 60);
}

int
mailmsg_present(const struct mailmsg_header *h, const char *msg)
{
	int present = 0;

	if (mailmsg_find(h, msg, "date", 0) >= 0)
		present |= MAILMSG_HAS_DATE;
	if (mailmsg_find(h, msg, "from", 0) >= 0)
		present |= MAILMSG_HAS_FROM;
	if (mailmsg_find(h, msg, "message-id", 0) >= 0)
		present |= MAILMSG_HAS_MSGID;
	return present;
}

char *
mailmsg_added_fields(int present, const char *date, const char *from,
    const char *id, const char *hostname, const char *eol)
{
	char *dfield, *ffield, *mfield, *s;

	if (hostname == NULL)
		hostname = "localhost";
	dfield = date != NULL && !(present & MAILMSG_HAS_DATE) ?
	    xasprintf("Date: %s%s", date, eol) :
	    xstrdup("");
	ffield = from != NULL && !(present & MAILMSG_HAS_FROM) ?
	    xasprintf("From: %s%s", from, eol) :
	    xstrdup("");
	mfield = id != NULL && !(present & MAILMSG_HAS_MSGID) ?
	    xasprintf("Message-ID: <%s@%s>%s", id, hostname, eol) :
	    xstrdup("");
	s = xasprintf("%s%s%s", dfield, ffield, mfield);
	free(dfield);
	free(ffield);
	free(mfield);
	return s;
}
