/*
 * dropfile.c - the meaning of a dropped file (format: dropfile.h).
 *
 * How it works: the leading envelope lines are read one line at a time
 * (a line runs to its LF, or to the end of the input); each must be a
 * single unfolded X-Sendq-Sender or X-Sendq-Recipient field.  The rest
 * is handed to mailmsg_scan(), which finds the header block.  When the
 * caller could not give us the whole file (total > len), the header block
 * must end, with its blank line or first body line, inside what we were
 * given, or the file is refused as having too large a header.  The
 * envelope is then completed from the header fields, and a copy of the
 * header block with its Bcc fields removed is made for storing; nothing
 * else of the message is rewritten, line endings included.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "dropfile.h"
#include "envelope.h"
#include "mailmsg.h"
#include "util.h"

#define DROPFILE_RCPT_MAX 10000
#define DROPFILE_PREFIX   "x-sendq-"

enum dropfile_envname {
	DROPFILE_ENV_NONE, /* not an X-Sendq-* name */
	DROPFILE_ENV_SENDER,
	DROPFILE_ENV_RCPT,
	DROPFILE_ENV_UNKNOWN, /* X-Sendq-something else */
};

/* Which envelope name (if any) the field name[0..len) is. */
static enum dropfile_envname
dropfile_envname(const char *name, size_t len)
{
	size_t plen = sizeof(DROPFILE_PREFIX) - 1;

	if (len < plen || strncasecmp(name, DROPFILE_PREFIX, plen) != 0)
		return DROPFILE_ENV_NONE;
	if (len == plen + 6 && strncasecmp(name + plen, "sender", 6) == 0)
		return DROPFILE_ENV_SENDER;
	if (len == plen + 9 && strncasecmp(name + plen, "recipient", 9) == 0)
		return DROPFILE_ENV_RCPT;
	return DROPFILE_ENV_UNKNOWN;
}

/* The name of the field line[0..len) (a MAILMSG_LINE_FIELD line), without
 * trailing blanks; its length in *name_len, the value's offset (after the
 * colon) in *value_off. */
static void
dropfile_field_name(const char *line, size_t len, size_t *name_len,
    size_t *value_off)
{
	const char *colon = memchr(line, ':', len);
	size_t      n = colon != NULL ? (size_t)(colon - line) : len;

	*value_off = colon != NULL ? n + 1 : len;
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	*name_len = n;
}

/* True when addr (an addr-spec) has a domain part. */
static int
dropfile_has_domain(const char *addr)
{
	const char *p = addr;

	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		return *p == '"' && p[1] == '@';
	}
	return strchr(addr, '@') != NULL;
}

/* Qualify and validate addr.  Returns 0 and *out (heap), or SQ_EPARSE
 * with err naming what (a field or envelope line). */
static int
dropfile_address(const char *addr, const struct dropfile_opts *o,
    const char *what, char **out, struct sq_err *err)
{
	struct sq_err verr = { 0 };
	char         *full, pr[128];

	*out = NULL;
	if (dropfile_has_domain(addr))
		full = xstrdup(addr);
	else if (o->hostname != NULL)
		full = xasprintf("%s@%s", addr, o->hostname);
	else {
		sq_err_set(err, SQ_EPARSE, "%s: address \"%s\" has no domain",
		    what, sq_printable(pr, sizeof(pr), addr, strlen(addr)));
		return SQ_EPARSE;
	}
	if (mailmsg_addr_valid(full, 0, &verr) != 0) {
		free(full);
		sq_err_set(err, SQ_EPARSE, "%s: %s", what, verr.msg);
		return SQ_EPARSE;
	}
	*out = full;
	return 0;
}

/* Add addr (taken over) to env unless it is there already. */
static int
dropfile_add_rcpt(struct envelope *env, char *addr, struct sq_err *err)
{
	size_t i;

	for (i = 0; i < env->n_rcpts; i++)
		if (strcmp(env->rcpts[i], addr) == 0) {
			free(addr);
			return 0;
		}
	if (env->n_rcpts >= DROPFILE_RCPT_MAX) {
		free(addr);
		return sq_err_set(err, SQ_ELIMIT, "more than %d recipients",
		    DROPFILE_RCPT_MAX);
	}
	env->rcpts = xreallocarray(env->rcpts, env->n_rcpts + 1,
	    sizeof(*env->rcpts));
	env->rcpts[env->n_rcpts++] = addr;
	return 0;
}

/* Parse the address list s[0..len) and add each address as a recipient;
 * *found is the number of addresses in the list. */
static int
dropfile_add_list(struct envelope *env, const char *s, size_t len,
    const struct dropfile_opts *o, const char *what, size_t *found,
    struct sq_err *err)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            perr = { 0 };
	size_t                   i;
	char                    *addr = NULL;
	int                      rc = 0;

	*found = 0;
	if (mailmsg_addr_list_parse(&l, s, len, &perr) != 0)
		return sq_err_set(err, SQ_EPARSE, "%s: %s", what, perr.msg);
	*found = l.n;
	for (i = 0; i < l.n && rc == 0; i++)
		if ((rc = dropfile_address(l.addrs[i], o, what, &addr, err)) ==
		    0)
			rc = dropfile_add_rcpt(env, addr, err);
	mailmsg_addr_list_fini(&l);
	return rc;
}

/*
 * The single address of the list s[0..len) in *out (heap; "" for an
 * empty value or "<>" when allow_null).  Returns 0, 1 when the list holds
 * no address or several (nothing set), or SQ_EPARSE with err.
 */
static int
dropfile_one_address(const char *s, size_t len, int allow_null,
    const struct dropfile_opts *o, const char *what, char **out,
    struct sq_err *err)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            perr = { 0 };
	size_t                   a = 0, b = len;
	int                      rc;

	*out = NULL;
	while (a < b && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (b > a &&
	    (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r' ||
		s[b - 1] == '\n'))
		b--;
	if (allow_null &&
	    (b == a || (b - a == 2 && s[a] == '<' && s[a + 1] == '>'))) {
		*out = xstrdup("");
		return 0;
	}
	if (mailmsg_addr_list_parse(&l, s, len, &perr) != 0)
		return sq_err_set(err, SQ_EPARSE, "%s: %s", what, perr.msg);
	if (l.n != 1) {
		mailmsg_addr_list_fini(&l);
		return 1;
	}
	rc = dropfile_address(l.addrs[0], o, what, out, err);
	mailmsg_addr_list_fini(&l);
	return rc;
}

/* Read the leading envelope lines into env; *off is set past them. */
static int
dropfile_envlines(const char *head, size_t len, size_t total,
    const struct dropfile_opts *o, struct envelope *env, int *have_sender,
    size_t *n_lines, size_t *off, struct sq_err *err)
{
	const char           *line, *nl;
	size_t                pos = 0, llen, name_len, voff, vlen, n = 0;
	enum dropfile_envname which;
	char                  what[64], *addr = NULL;
	size_t                found;
	int                   rc;

	*have_sender = 0;
	while (pos < len) {
		line = head + pos;
		nl = memchr(line, '\n', len - pos);
		llen = nl != NULL ? (size_t)(nl - line) + 1 : len - pos;
		if (mailmsg_line_kind(line, llen) != MAILMSG_LINE_FIELD)
			break;
		dropfile_field_name(line, llen, &name_len, &voff);
		which = dropfile_envname(line, name_len);
		if (which == DROPFILE_ENV_NONE)
			break;
		n++;
		if (which == DROPFILE_ENV_UNKNOWN)
			return sq_err_set(err, SQ_EPARSE,
			    "line %zu: unknown envelope line \"%s\" (known: "
			    "X-Sendq-Sender, X-Sendq-Recipient)",
			    n,
			    sq_printable(what, sizeof(what), line, name_len));
		if (pos + llen > DROPFILE_ENVLINES_MAX ||
		    (nl == NULL && len < total))
			return sq_err_set(err, SQ_ELIMIT,
			    "envelope lines longer than %zu bytes",
			    DROPFILE_ENVLINES_MAX);
		if (pos + llen < len &&
		    mailmsg_line_kind(line + llen, len - pos - llen) ==
			MAILMSG_LINE_CONT)
			return sq_err_set(err, SQ_EPARSE,
			    "line %zu: envelope lines cannot be folded", n + 1);
		vlen = llen - voff;
		snprintf(what, sizeof(what), "line %zu: X-Sendq-%s", n,
		    which == DROPFILE_ENV_SENDER ? "Sender" : "Recipient");
		if (which == DROPFILE_ENV_SENDER) {
			if (*have_sender)
				return sq_err_set(err, SQ_EPARSE,
				    "%s: more than one X-Sendq-Sender line",
				    what);
			rc = dropfile_one_address(line + voff, vlen, 1, o, what,
			    &addr, err);
			if (rc == 1)
				return sq_err_set(err, SQ_EPARSE,
				    "%s: need exactly one address", what);
			if (rc != 0)
				return rc;
			free(env->sender);
			env->sender = addr;
			*have_sender = 1;
		} else {
			if ((rc = dropfile_add_list(env, line + voff, vlen, o,
				 what, &found, err)) != 0)
				return rc;
			if (found == 0)
				return sq_err_set(err, SQ_EPARSE,
				    "%s: no address", what);
		}
		pos += llen;
	}
	*n_lines = n;
	*off = pos;
	return 0;
}

/* Recipients from To, Cc and Bcc (sendq -t). */
static int
dropfile_header_rcpts(const struct mailmsg_header *h, const char *msg,
    const struct dropfile_opts *o, struct envelope *env, struct sq_err *err)
{
	static const char *const    names[] = { "to", "cc", "bcc" };
	const struct mailmsg_field *f;
	char                        what[64];
	size_t                      i, found;
	long                        fi;
	int                         rc;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (fi = mailmsg_find(h, msg, names[i], 0); fi >= 0;
		     fi = mailmsg_find(h, msg, names[i], (size_t)fi + 1)) {
			f = &h->fields[fi];
			snprintf(what, sizeof(what), "%.*s field",
			    (int)f->name_len, msg + f->off);
			if ((rc = dropfile_add_list(env, msg + f->value_off,
				 f->value_len, o, what, &found, err)) != 0)
				return rc;
		}
	}
	return 0;
}

/* Sender from From (one address), else Sender, else the default. */
static int
dropfile_header_sender(const struct mailmsg_header *h, const char *msg,
    const struct dropfile_opts *o, struct envelope *env, struct sq_err *err)
{
	static const char *const    names[] = { "from", "sender" };
	const struct mailmsg_field *f;
	char                        what[64], *addr = NULL;
	size_t                      i;
	long                        fi;
	int                         rc;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((fi = mailmsg_find(h, msg, names[i], 0)) < 0)
			continue;
		f = &h->fields[fi];
		snprintf(what, sizeof(what), "%.*s field", (int)f->name_len,
		    msg + f->off);
		rc = dropfile_one_address(msg + f->value_off, f->value_len, 0,
		    o, what, &addr, err);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			free(env->sender);
			env->sender = addr;
			return 0;
		}
	}
	if (o->default_sender == NULL)
		return sq_err_set(err, SQ_EPARSE,
		    "no sender: give an X-Sendq-Sender line or a From field "
		    "with one address");
	rc = dropfile_address(o->default_sender, o, "default sender", &addr,
	    err);
	if (rc != 0)
		return rc;
	free(env->sender);
	env->sender = addr;
	return 0;
}

void
dropfile_fini(struct dropfile *df)
{
	if (df == NULL)
		return;
	envelope_free(df->env);
	free(df->header);
	memset(df, 0, sizeof(*df));
}

/*
 * The header h of msg (mlen bytes read; more follow when truncated): it
 * fits MAILMSG_HEADER_MAX, holds no NUL (SMTP cannot carry it; the
 * body's bytes are the sender's business and are relayed as they are)
 * and no envelope line.  0, or SQ_ELIMIT / SQ_EPARSE with err.
 */
static int
dropfile_header_check(const struct mailmsg_header *h, const char *msg,
    size_t mlen, int truncated, struct sq_err *err)
{
	char   name[64];
	size_t i;

	if (h->header_len > MAILMSG_HEADER_MAX ||
	    (truncated && !h->has_blank && h->header_len >= mlen))
		return sq_err_set(err, SQ_ELIMIT, "header larger than %d bytes",
		    MAILMSG_HEADER_MAX);
	if (memchr(msg, '\0', h->header_len) != NULL)
		return sq_err_set(err, SQ_EPARSE,
		    "NUL byte in the header section");
	for (i = 0; i < h->n_fields; i++)
		if (dropfile_envname(msg + h->fields[i].off,
			h->fields[i].name_len) != DROPFILE_ENV_NONE)
			return sq_err_set(err, SQ_EPARSE,
			    "%s field inside the header: envelope lines must "
			    "be the first lines of the file",
			    sq_printable(name, sizeof(name),
				msg + h->fields[i].off, h->fields[i].name_len));
	return 0;
}

int
dropfile_parse(const char *head, size_t len, size_t total,
    const struct dropfile_opts *opts, struct dropfile *df, struct sq_err *err)
{
	struct dropfile_opts  o = *opts;
	struct mailmsg_header h;
	const char           *msg, *nl;
	size_t                off = 0, mlen, hlen;
	int                   rc, have_sender = 0;

	memset(df, 0, sizeof(*df));
	memset(&h, 0, sizeof(h));
	if (o.size_max == 0)
		o.size_max = DROPFILE_SIZE_DEFAULT;
	if (total < len)
		total = len;
	if (total > o.size_max)
		return sq_err_set(err, SQ_ELIMIT,
		    "too large: %zu bytes, the limit is %zu", total,
		    o.size_max);
	df->env = envelope_new();

	nl = memchr(head, '\n', len);
	df->crlf = nl != NULL && nl > head && nl[-1] == '\r';

	if ((rc = dropfile_envlines(head, len, total, &o, df->env, &have_sender,
		 &df->n_envlines, &off, err)) != 0)
		goto fail;

	msg = head + off;
	mlen = len - off;
	mailmsg_scan(msg, mlen, &h);
	if ((rc = dropfile_header_check(&h, msg, mlen, len < total, err)) != 0)
		goto fail;
	if (df->env->n_rcpts == 0 &&
	    (rc = dropfile_header_rcpts(&h, msg, &o, df->env, err)) != 0)
		goto fail;
	if (df->env->n_rcpts == 0) {
		rc = sq_err_set(err, SQ_EPARSE,
		    "no recipients: give X-Sendq-Recipient lines or To/Cc/Bcc "
		    "fields");
		goto fail;
	}
	if (!have_sender &&
	    (rc = dropfile_header_sender(&h, msg, &o, df->env, err)) != 0)
		goto fail;

	df->has_date = mailmsg_find(&h, msg, "date", 0) >= 0;
	df->has_from = mailmsg_find(&h, msg, "from", 0) >= 0;
	df->has_msgid = mailmsg_find(&h, msg, "message-id", 0) >= 0;

	/* The header to store: Bcc removed, and a blank line when the body
	 * follows the header without one (the body is never taken for
	 * header lines after fields are added in front). */
	df->header = xmalloc(h.header_len + 3);
	memcpy(df->header, msg, h.header_len);
	hlen = mailmsg_remove_fields(df->header, h.header_len, "bcc");
	if (!h.has_blank && (h.header_len < mlen || total > len)) {
		if (df->crlf)
			df->header[hlen++] = '\r';
		df->header[hlen++] = '\n';
	}
	df->header[hlen] = '\0';
	df->header_len = hlen;
	df->rest_off = off + h.header_len;
	mailmsg_header_fini(&h);
	return 0;
fail:
	mailmsg_header_fini(&h);
	dropfile_fini(df);
	return rc;
}

char *
dropfile_added_fields(const struct dropfile *df, const char *date,
    const char *id, const char *hostname)
{
	char *from, *s;

	if (hostname == NULL)
		hostname = "localhost";
	from = df->env->sender[0] != '\0' ?
	    xstrdup(df->env->sender) :
	    xasprintf("MAILER-DAEMON@%s", hostname);
	s = mailmsg_added_fields((df->has_date ? MAILMSG_HAS_DATE : 0) |
		(df->has_from ? MAILMSG_HAS_FROM : 0) |
		(df->has_msgid ? MAILMSG_HAS_MSGID : 0),
	    date, from, id, hostname, df->crlf ? "\r\n" : "\n");
	free(from);
	return s;
}
