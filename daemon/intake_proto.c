/*
 * intake_proto.c - the SMTP server side, sans I/O.
 *
 * How it works: feed() walks the client's bytes in one of five states.
 * CMD collects a command line in a fixed array (a line longer than
 * INTAKE_PROTO_LINE_MAX switches to discarding up to the next LF, then
 * 500) and hands each complete line to intake_proto_command(), which
 * answers it through intake_proto_reply() into the bounded output
 * buffer.  DATA is accepted by queueing EV_DATA and moving to WAIT_DATA,
 * where nothing is read until the driver says whether the spool can take
 * a message (data_start: 354 and DATA, or 452 and back to CMD).  DATA
 * runs a byte machine over line beginnings:
 *   BOL    after CRLF (or right after 354): '.' -> DOT, else as MID
 *   DOT    '.' at BOL: CR -> DOTCR; LF -> ".\n" kept; else the dot is
 *          dropped (unstuffing) and the byte read as MID
 *   DOTCR  ".\r" at BOL: LF -> end of message; else the dot is dropped
 *          and the CR is pending (CR)
 *   MID    CR -> CR (pending); LF (bare) is stored and stays MID, so a
 *          dot after a bare LF is plain content; other bytes are stored
 *   CR     LF -> "\n" stored, BOL; CR -> the first (bare) CR stored as
 *          "\n", stay; else the bare CR stored as "\n", byte read as MID
 * Stored bytes go to a chunk buffer handed out as EV_BODY when it is full,
 * at the end of each feed and at the end of the message; the buffer is
 * reused when feed() is next called.  The message size grows by what was
 * on the wire (CRLF = 2) and past the limit the body is dropped (EV_ABORT)
 * while reading continues to the final dot, which is then answered 552.
 * At the final dot: EV_END and WAIT_END until data_done().  feed() stops
 * at every event, so events never pile up (at most three are queued:
 * BODY, END, CLOSE).  CLOSED takes nothing more.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "intake_proto.h"
#include "log.h"
#include "mailmsg.h"
#include "util.h"

enum intake_proto_state {
	INTAKE_PROTO_S_CMD,
	INTAKE_PROTO_S_WAIT_DATA,
	INTAKE_PROTO_S_DATA,
	INTAKE_PROTO_S_WAIT_END,
	INTAKE_PROTO_S_CLOSED,
};

enum intake_proto_dstate {
	INTAKE_PROTO_D_BOL,
	INTAKE_PROTO_D_DOT,
	INTAKE_PROTO_D_DOTCR,
	INTAKE_PROTO_D_MID,
	INTAKE_PROTO_D_CR,
};

#define INTAKE_PROTO_EVQ      4
#define INTAKE_PROTO_HELO_MAX 255

struct intake_proto {
	char    *hostname;
	uint64_t max_size;
	size_t   max_rcpts;
	int      denied; /* 554 greeting: only QUIT works */

	enum intake_proto_state state;
	struct buf              out;

	/* Command line being read. */
	char     line[INTAKE_PROTO_LINE_MAX + 1];
	size_t   line_len;
	int      discarding; /* line too long: skip to LF */
	unsigned errors;
	unsigned max_junk; /* 0 = no limit */
	unsigned junk;     /* since the last accepted message */
	uint64_t progress; /* see intake_proto_progress() */

	int                     helo_kind; /* 0 none, 1 HELO, 2 EHLO */
	char                    helo[INTAKE_PROTO_HELO_MAX + 1];
	struct intake_proto_txn txn;

	/* DATA. */
	enum intake_proto_dstate dstate;
	uint64_t                 size;
	int                      oversize;
	char                     body[INTAKE_PROTO_BODY_CHUNK];
	size_t                   body_len;
	int                      body_out; /* body[] was handed out */

	struct intake_proto_event evq[INTAKE_PROTO_EVQ];
	size_t                    ev_head, n_ev;
};

static void
intake_proto_push(struct intake_proto *p, enum intake_proto_ev_type type,
    const char *data, size_t len)
{
	struct intake_proto_event *ev;

	if (p->n_ev == INTAKE_PROTO_EVQ)
		log_fatalx("intake_proto: event queue overflow");
	ev = &p->evq[(p->ev_head + p->n_ev++) % INTAKE_PROTO_EVQ];
	ev->type = type;
	ev->data = data;
	ev->len = len;
}

static void SQ_PRINTF(2, 3)
    intake_proto_reply(struct intake_proto *p, const char *fmt, ...)
{
	char    line[INTAKE_PROTO_LINE_MAX + 64];
	va_list ap;
	int     n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 3)
		n = (int)(sizeof(line) - 3);
	line[n++] = '\r';
	line[n++] = '\n';
	/* feed() stops taking commands above the watermark, far below the
	 * maximum, so this cannot fail. */
	if (buf_append(&p->out, line, (size_t)n) != 0)
		log_fatalx("intake_proto: output buffer overflow");
}

static void
intake_proto_close(struct intake_proto *p)
{
	if (p->state == INTAKE_PROTO_S_CLOSED)
		return;
	p->state = INTAKE_PROTO_S_CLOSED;
	intake_proto_push(p, INTAKE_PROTO_EV_CLOSE, NULL, 0);
}

static void
intake_proto_txn_reset(struct intake_proto *p)
{
	struct intake_proto_txn *t = &p->txn;
	size_t                   i;

	free(t->sender);
	for (i = 0; i < t->n_rcpts; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].orcpt);
	}
	free(t->rcpts);
	free(t->envid);
	memset(t, 0, sizeof(*t));
}

/* A rejected command: reply, and end a session that keeps failing. */
static void SQ_PRINTF(2, 3)
    intake_proto_error(struct intake_proto *p, const char *fmt, ...)
{
	char    line[INTAKE_PROTO_LINE_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	intake_proto_reply(p, "%s", line);
	if (++p->errors >= INTAKE_PROTO_ERRORS_MAX) {
		intake_proto_reply(p, "421 4.7.0 %s Error: too many errors",
		    p->hostname);
		intake_proto_close(p);
	}
}

/*
 * Count a junk command (see intake_proto.h).  Returns 1 when it was one
 * too many: 421 was answered and the session is closing, so the caller
 * answers nothing more; else 0.
 */
static int
intake_proto_junk(struct intake_proto *p)
{
	if (p->max_junk == 0 || ++p->junk <= p->max_junk)
		return 0;
	intake_proto_reply(p,
	    "421 4.7.0 %s Error: too many commands that carry no mail (at most "
	    "%u), closing",
	    p->hostname, p->max_junk);
	intake_proto_close(p);
	return 1;
}

static int intake_proto_word(const char *s, const char *w);

/* Is this command line junk: a command that carries no mail? */
static int
intake_proto_is_junk(const struct intake_proto *p, const char *line)
{
	if (intake_proto_word(line, "EHLO") || intake_proto_word(line, "HELO"))
		return p->helo_kind != 0;
	if (intake_proto_word(line, "MAIL") || intake_proto_word(line, "DATA"))
		return 0;
	if (intake_proto_word(line, "RCPT"))
		return p->txn.sender != NULL && p->max_rcpts > 0 &&
		    p->txn.n_rcpts >= p->max_rcpts;
	return 1; /* NOOP, RSET, VRFY, HELP, 502s, unknown, empty */
}

struct intake_proto *
intake_proto_new(const struct intake_proto_params *params)
{
	struct intake_proto *p;

	p = xcalloc(1, sizeof(*p));
	p->hostname = xstrdup(
	    params->hostname != NULL ? params->hostname : "localhost");
	p->max_size = params->max_message_size;
	p->max_rcpts = params->max_recipients;
	p->max_junk = params->max_junk_commands;
	buf_init(&p->out, INTAKE_PROTO_OUT_MAX);
	p->state = INTAKE_PROTO_S_CMD;
	switch (params->greeting) {
	case INTAKE_PROTO_GREET:
		intake_proto_reply(p, "220 %s ESMTP sendq", p->hostname);
		break;
	case INTAKE_PROTO_DENY:
		p->denied = 1;
		intake_proto_reply(p,
		    "554 5.7.1 %s ESMTP not available to this client (not in "
		    "allow_networks)",
		    p->hostname);
		break;
	case INTAKE_PROTO_BUSY:
		intake_proto_reply(p,
		    "421 4.3.2 %s Service not available: too many connections, "
		    "try again later",
		    p->hostname);
		intake_proto_close(p);
		break;
	case INTAKE_PROTO_PEER_BUSY:
		intake_proto_reply(p,
		    "421 4.7.0 %s Error: too many connections from you, try "
		    "again later",
		    p->hostname);
		intake_proto_close(p);
		break;
	}
	return p;
}

void
intake_proto_free(struct intake_proto *p)
{
	if (p == NULL)
		return;
	intake_proto_txn_reset(p);
	buf_fini(&p->out);
	free(p->hostname);
	free(p);
}

/* ---------------------------------------------------------------- parsing */

/* Case-insensitive: does s start with the word w (followed by the end,
 * a space or, with colon, anything)? */
static int
intake_proto_word(const char *s, const char *w)
{
	size_t n = strlen(w);

	return strncasecmp(s, w, n) == 0 && (s[n] == '\0' || s[n] == ' ');
}

static int
intake_proto_has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* RFC 3461 xtext: printable ASCII but '+' and '=', and "+XX" (upper-case
 * hex). */
static int
intake_proto_xtext_valid(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) ||
			    islower((unsigned char)s[2]))
				return 0;
			s += 2;
			continue;
		}
		if (c < 33 || c > 126 || c == '=')
			return 0;
	}
	return 1;
}

/*
 * "FROM:" / "TO:" then a path: "<addr>" (a source route "@a,@b:" before
 * the address is dropped), "<>", or a bare address (lax clients).  s
 * points after the verb.  On success the address is copied to addr (size
 * addrsz) and *rest points at the parameters.  Returns 0, or -1 for a
 * syntax error.
 */
static int
intake_proto_path(const char *s, const char *kw, char *addr, size_t addrsz,
    const char **rest)
{
	const char *a, *end;
	size_t      n;

	while (*s == ' ')
		s++;
	n = strlen(kw);
	if (strncasecmp(s, kw, n) != 0)
		return -1;
	s += n;
	while (*s == ' ')
		s++;
	if (*s == '<') {
		a = s + 1;
		if ((end = strchr(a, '>')) == NULL)
			return -1;
		if (*a == '@') { /* source route: skip to ':' */
			const char *colon = memchr(a, ':', (size_t)(end - a));

			if (colon == NULL)
				return -1;
			a = colon + 1;
		}
		s = end + 1;
	} else {
		a = s;
		end = s + strcspn(s, " ");
		if (end == a)
			return -1;
		s = end;
	}
	if ((size_t)(end - a) >= addrsz)
		return -2;
	memcpy(addr, a, (size_t)(end - a));
	addr[end - a] = '\0';
	if (*s != '\0' && *s != ' ')
		return -1;
	*rest = s;
	return 0;
}

/* Next "KEY[=VALUE]" of a parameter list: 1 with key/value split in place
 * (value NULL without '='), 0 at the end. */
static int
intake_proto_param(char **cursor, char **key, char **value)
{
	char *s = *cursor, *eq;

	while (*s == ' ')
		s++;
	if (*s == '\0')
		return 0;
	*key = s;
	s += strcspn(s, " ");
	if (*s != '\0')
		*s++ = '\0';
	*cursor = s;
	if ((eq = strchr(*key, '=')) != NULL) {
		*eq = '\0';
		*value = eq + 1;
	} else
		*value = NULL;
	return 1;
}

/* Decimal without sign into *v; -1 if malformed or absurdly large. */
static int
intake_proto_number(const char *s, uint64_t *v)
{
	uint64_t n = 0;

	if (*s == '\0' || strlen(s) > 18)
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return 0;
}

/* ---------------------------------------------------------------- commands */

static void
intake_proto_cmd_helo(struct intake_proto *p, const char *arg, int ehlo)
{
	char   name[INTAKE_PROTO_HELO_MAX + 1];
	size_t n;

	while (*arg == ' ')
		arg++;
	n = strcspn(arg, " ");
	if (n == 0) {
		intake_proto_error(p, "501 5.5.4 Syntax: %s hostname",
		    ehlo ? "EHLO" : "HELO");
		return;
	}
	if (n > INTAKE_PROTO_HELO_MAX)
		n = INTAKE_PROTO_HELO_MAX;
	sq_printable(name, sizeof(name), arg, n);
	/* Parentheses would confuse readers of the Received: comment. */
	for (n = 0; name[n] != '\0'; n++)
		if (name[n] == '(' || name[n] == ')')
			name[n] = '?';
	memcpy(p->helo, name, sizeof(name));
	p->helo_kind = ehlo ? 2 : 1;
	intake_proto_txn_reset(p);
	if (!ehlo) {
		intake_proto_reply(p, "250 %s", p->hostname);
		return;
	}
	intake_proto_reply(p, "250-%s", p->hostname);
	intake_proto_reply(p, "250-PIPELINING");
	if (p->max_size > 0)
		intake_proto_reply(p, "250-SIZE %llu",
		    (unsigned long long)p->max_size);
	else
		intake_proto_reply(p, "250-SIZE");
	intake_proto_reply(p, "250-ENHANCEDSTATUSCODES");
	intake_proto_reply(p, "250-8BITMIME");
	intake_proto_reply(p, "250-DSN");
	intake_proto_reply(p, "250 SMTPUTF8");
}

/* The value of MAIL FROM's parameter key (SIZE, BODY, RET or ENVID)
 * into p->txn.  Returns 0, 1 when the value is bad, or -1 after an error
 * reply. */
static int
intake_proto_mail_value(struct intake_proto *p, const char *key,
    const char *value)
{
	struct intake_proto_txn *t = &p->txn;
	uint64_t                 size = 0;

	if (strcasecmp(key, "SIZE") == 0) {
		if (intake_proto_number(value, &size) != 0)
			return 1;
		if (p->max_size > 0 && size > p->max_size) {
			intake_proto_error(p,
			    "552 5.3.4 Message size exceeds fixed limit of "
			    "%llu bytes",
			    (unsigned long long)p->max_size);
			return -1;
		}
		t->size = size;
	} else if (strcasecmp(key, "BODY") == 0) {
		if (strcasecmp(value, "7BIT") == 0)
			t->body = INTAKE_PROTO_BODY_7BIT;
		else if (strcasecmp(value, "8BITMIME") == 0)
			t->body = INTAKE_PROTO_BODY_8BITMIME;
		else
			return 1;
	} else if (strcasecmp(key, "RET") == 0) {
		if (strcasecmp(value, "FULL") == 0)
			t->ret = INTAKE_PROTO_RET_FULL;
		else if (strcasecmp(value, "HDRS") == 0)
			t->ret = INTAKE_PROTO_RET_HDRS;
		else
			return 1;
	} else { /* ENVID */
		if (*value == '\0' || strlen(value) > INTAKE_PROTO_ENVID_MAX ||
		    !intake_proto_xtext_valid(value))
			return 1;
		t->envid = xstrdup(value);
	}
	return 0;
}

/* MAIL FROM's parameters (SIZE, BODY, SMTPUTF8, RET, ENVID) from rest
 * into p->txn.  Returns 0, or -1 after the error reply. */
static int
intake_proto_mail_params(struct intake_proto *p, char *rest)
{
	struct intake_proto_txn *t = &p->txn;
	char                     shown[MAILMSG_ADDR_MAX + 2];
	char                    *key, *value;
	int seen_size = 0, seen_body = 0, seen_utf8 = 0, seen_ret = 0;
	int seen_envid = 0, rc;

	t->body = INTAKE_PROTO_BODY_NONE;
	t->ret = INTAKE_PROTO_RET_NONE;
	while (intake_proto_param(&rest, &key, &value)) {
		int *seen;

		if (strcasecmp(key, "SIZE") == 0)
			seen = &seen_size;
		else if (strcasecmp(key, "BODY") == 0)
			seen = &seen_body;
		else if (strcasecmp(key, "SMTPUTF8") == 0)
			seen = &seen_utf8;
		else if (strcasecmp(key, "RET") == 0)
			seen = &seen_ret;
		else if (strcasecmp(key, "ENVID") == 0)
			seen = &seen_envid;
		else {
			sq_printable(shown, sizeof(shown), key, strlen(key));
			intake_proto_error(p,
			    "555 5.5.4 Unsupported option: %s", shown);
			return -1;
		}
		if (*seen) {
			sq_printable(shown, sizeof(shown), key, strlen(key));
			intake_proto_error(p, "501 5.5.4 Duplicate option: %s",
			    shown);
			return -1;
		}
		*seen = 1;
		if (seen == &seen_utf8) {
			if (value != NULL)
				goto bad_value;
			t->smtputf8 = 1;
			continue;
		}
		if (value == NULL)
			goto bad_value;
		if ((rc = intake_proto_mail_value(p, key, value)) < 0)
			return -1;
		if (rc > 0)
			goto bad_value;
	}
	return 0;

bad_value:
	sq_printable(shown, sizeof(shown), key, strlen(key));
	intake_proto_error(p, "501 5.5.4 Bad value for option %s", shown);
	return -1;
}

static void
intake_proto_cmd_mail(struct intake_proto *p, char *arg)
{
	struct intake_proto_txn *t = &p->txn;
	char          addr[MAILMSG_ADDR_MAX + 2], shown[MAILMSG_ADDR_MAX + 2];
	const char   *crest;
	struct sq_err err = { 0 };
	int           rc;

	if (p->helo_kind == 0) {
		intake_proto_error(p, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (t->sender != NULL) {
		intake_proto_error(p, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	rc = intake_proto_path(arg, "FROM:", addr, sizeof(addr), &crest);
	if (rc == -2) {
		intake_proto_error(p,
		    "553 5.1.3 Sender address rejected: address too long (at "
		    "most %d bytes)",
		    MAILMSG_ADDR_MAX);
		return;
	}
	if (rc != 0) {
		intake_proto_error(p, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (intake_proto_mail_params(p, arg + (crest - arg)) != 0)
		goto fail;
	sq_printable(shown, sizeof(shown), addr, strlen(addr));
	if (addr[0] != '\0' && intake_proto_has_8bit(addr) && !t->smtputf8) {
		intake_proto_error(p,
		    "553 5.6.7 Sender address rejected: <%s> is not ASCII and "
		    "SMTPUTF8 was not given",
		    shown);
		goto fail;
	}
	if (addr[0] != '\0' && mailmsg_addr_valid(addr, 0, &err) != 0) {
		intake_proto_error(p, "553 5.1.3 Sender address rejected: %s",
		    err.msg);
		goto fail;
	}
	t->sender = xstrdup(addr);
	intake_proto_reply(p, "250 2.1.0 Ok");
	return;

fail:
	intake_proto_txn_reset(p);
}

/* NOTIFY=NEVER or a comma list of SUCCESS, FAILURE, DELAY. */
static int
intake_proto_notify(const char *v, unsigned *out)
{
	unsigned bits = 0, bit;
	size_t   n;

	for (;;) {
		n = strcspn(v, ",");
		if (n == 5 && strncasecmp(v, "NEVER", 5) == 0)
			bit = INTAKE_PROTO_NOTIFY_NEVER;
		else if (n == 7 && strncasecmp(v, "SUCCESS", 7) == 0)
			bit = INTAKE_PROTO_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(v, "FAILURE", 7) == 0)
			bit = INTAKE_PROTO_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(v, "DELAY", 5) == 0)
			bit = INTAKE_PROTO_NOTIFY_DELAY;
		else
			return -1;
		bits |= bit;
		if (v[n] == '\0')
			break;
		v += n + 1;
	}
	if ((bits & INTAKE_PROTO_NOTIFY_NEVER) &&
	    bits != INTAKE_PROTO_NOTIFY_NEVER)
		return -1;
	*out = bits;
	return 0;
}

/* ORCPT=addr-type;xtext */
static int
intake_proto_orcpt_valid(const char *v)
{
	const char *semi = strchr(v, ';');
	const char *c;

	if (semi == NULL || semi == v || semi[1] == '\0' ||
	    strlen(v) > INTAKE_PROTO_ORCPT_MAX)
		return 0;
	for (c = v; c < semi; c++)
		if (!isalnum((unsigned char)*c) && *c != '-')
			return 0;
	return intake_proto_xtext_valid(semi + 1);
}

static void
intake_proto_cmd_rcpt(struct intake_proto *p, char *arg)
{
	struct intake_proto_txn *t = &p->txn;
	struct intake_proto_rcpt r = { 0 };
	char          addr[MAILMSG_ADDR_MAX + 2], shown[MAILMSG_ADDR_MAX + 2];
	char         *rest, *key, *value, *full = NULL;
	const char   *crest;
	struct sq_err err = { 0 };
	int           seen_notify = 0, rc;

	if (t->sender == NULL) {
		intake_proto_error(p, "503 5.5.1 Error: need MAIL command");
		return;
	}
	rc = intake_proto_path(arg, "TO:", addr, sizeof(addr), &crest);
	if (rc == -2) {
		intake_proto_error(p,
		    "553 5.1.3 Recipient address rejected: address too long "
		    "(at most %d bytes)",
		    MAILMSG_ADDR_MAX);
		return;
	}
	if (rc != 0 || addr[0] == '\0') {
		intake_proto_error(p, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (p->max_rcpts > 0 && t->n_rcpts >= p->max_rcpts) {
		intake_proto_reply(p,
		    "452 4.5.3 Error: too many recipients (at most %zu per "
		    "message)",
		    p->max_rcpts);
		return;
	}
	rest = arg + (crest - arg);
	while (intake_proto_param(&rest, &key, &value)) {
		sq_printable(shown, sizeof(shown), key, strlen(key));
		if (strcasecmp(key, "NOTIFY") == 0) {
			if (seen_notify++)
				goto dup;
			if (value == NULL ||
			    intake_proto_notify(value, &r.notify) != 0)
				goto bad_value;
		} else if (strcasecmp(key, "ORCPT") == 0) {
			if (r.orcpt != NULL)
				goto dup;
			if (value == NULL || !intake_proto_orcpt_valid(value))
				goto bad_value;
			r.orcpt = xstrdup(value);
		} else {
			intake_proto_error(p,
			    "555 5.5.4 Unsupported option: %s", shown);
			goto fail;
		}
	}
	sq_printable(shown, sizeof(shown), addr, strlen(addr));
	if (strchr(addr, '@') == NULL && strcasecmp(addr, "postmaster") == 0)
		full = xasprintf("postmaster@%s", p->hostname);
	else if (intake_proto_has_8bit(addr) && !t->smtputf8) {
		intake_proto_error(p,
		    "553 5.6.7 Recipient address rejected: <%s> is not ASCII "
		    "and SMTPUTF8 was not given on MAIL",
		    shown);
		goto fail;
	} else if (mailmsg_addr_valid(addr, 0, &err) != 0) {
		intake_proto_error(p,
		    "553 5.1.3 Recipient address rejected: %s", err.msg);
		goto fail;
	} else
		full = xstrdup(addr);
	r.addr = full;
	t->rcpts = xreallocarray(t->rcpts, t->n_rcpts + 1, sizeof(*t->rcpts));
	t->rcpts[t->n_rcpts++] = r;
	intake_proto_reply(p, "250 2.1.5 Ok");
	return;

dup:
	intake_proto_error(p, "501 5.5.4 Duplicate option: %s", shown);
	goto fail;
bad_value:
	intake_proto_error(p, "501 5.5.4 Bad value for option %s", shown);
fail:
	free(r.orcpt);
}

static void
intake_proto_cmd_data(struct intake_proto *p, const char *arg)
{
	if (*arg != '\0') {
		intake_proto_error(p, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (p->txn.sender == NULL) {
		intake_proto_error(p, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (p->txn.n_rcpts == 0) {
		intake_proto_error(p, "554 5.5.1 Error: no valid recipients");
		return;
	}
	p->state = INTAKE_PROTO_S_WAIT_DATA;
	intake_proto_push(p, INTAKE_PROTO_EV_DATA, NULL, 0);
}

/* One complete command line (NUL-terminated, no line break). */
static void
intake_proto_command(struct intake_proto *p, char *line, size_t len)
{
	char  *arg;
	size_t vlen;

	if (strlen(line) != len) {
		intake_proto_error(p, "500 5.5.2 Error: NUL byte in command");
		return;
	}
	vlen = strcspn(line, " ");
	arg = line + vlen;
	if (*arg == ' ')
		arg++;
	if (intake_proto_word(line, "QUIT")) {
		intake_proto_reply(p, "221 2.0.0 Bye");
		intake_proto_close(p);
		return;
	}
	if (p->denied) {
		intake_proto_error(p, "503 5.7.1 Error: access denied");
		return;
	}
	if (!intake_proto_is_junk(p, line))
		p->progress++;
	else if (intake_proto_junk(p))
		return;
	if (intake_proto_word(line, "EHLO"))
		intake_proto_cmd_helo(p, arg, 1);
	else if (intake_proto_word(line, "HELO"))
		intake_proto_cmd_helo(p, arg, 0);
	else if (intake_proto_word(line, "MAIL"))
		intake_proto_cmd_mail(p, arg);
	else if (intake_proto_word(line, "RCPT"))
		intake_proto_cmd_rcpt(p, arg);
	else if (intake_proto_word(line, "DATA"))
		intake_proto_cmd_data(p, arg);
	else if (intake_proto_word(line, "RSET")) {
		intake_proto_txn_reset(p);
		intake_proto_reply(p, "250 2.0.0 Ok");
	} else if (intake_proto_word(line, "NOOP"))
		intake_proto_reply(p, "250 2.0.0 Ok");
	else if (intake_proto_word(line, "VRFY")) {
		while (*arg == ' ')
			arg++;
		if (*arg == '\0')
			intake_proto_error(p, "501 5.5.4 Syntax: VRFY address");
		else
			intake_proto_reply(p,
			    "252 2.0.0 Cannot VRFY user, but will accept "
			    "message and attempt delivery");
	} else if (intake_proto_word(line, "HELP"))
		intake_proto_reply(p,
		    "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP "
		    "VRFY HELP QUIT");
	else if (intake_proto_word(line, "STARTTLS") ||
	    intake_proto_word(line, "AUTH") ||
	    intake_proto_word(line, "BDAT") ||
	    intake_proto_word(line, "EXPN") ||
	    intake_proto_word(line, "ETRN") || intake_proto_word(line, "TURN"))
		intake_proto_error(p,
		    "502 5.5.1 Error: command not implemented");
	else if (len == 0)
		intake_proto_error(p, "500 5.5.2 Error: bad syntax");
	else
		intake_proto_error(p,
		    "500 5.5.2 Error: command not recognized");
}

/* Command bytes; returns how many were taken. */
static size_t
intake_proto_feed_cmd(struct intake_proto *p, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '\n') {
			if (p->discarding) {
				p->discarding = 0;
				p->line_len = 0;
				intake_proto_error(p,
				    "500 5.5.2 Error: line too long (at most "
				    "%d bytes)",
				    INTAKE_PROTO_LINE_MAX);
			} else {
				size_t n = p->line_len;

				if (n > 0 && p->line[n - 1] == '\r')
					n--;
				p->line[n] = '\0';
				p->line_len = 0;
				intake_proto_command(p, p->line, n);
			}
			return i + 1; /* one command per step */
		}
		if (p->discarding)
			continue;
		if (p->line_len >= INTAKE_PROTO_LINE_MAX - 1) {
			p->discarding = 1;
			continue;
		}
		p->line[p->line_len++] = c;
	}
	return len;
}

/* ---------------------------------------------------------------- DATA */

/* Store n bytes that stood for wire bytes on the wire; the caller made
 * sure there is room. */
static void
intake_proto_put(struct intake_proto *p, const char *s, size_t n, size_t wire)
{
	p->size += wire;
	if (!p->oversize && p->max_size > 0 && p->size > p->max_size) {
		p->oversize = 1;
		p->body_len = 0;
		intake_proto_push(p, INTAKE_PROTO_EV_ABORT, NULL, 0);
	}
	if (p->oversize)
		return;
	memcpy(p->body + p->body_len, s, n);
	p->body_len += n;
}

static void
intake_proto_data_end(struct intake_proto *p)
{
	if (p->body_len > 0 && !p->oversize)
		intake_proto_push(p, INTAKE_PROTO_EV_BODY, p->body,
		    p->body_len);
	p->body_out = 1;
	if (p->oversize) {
		intake_proto_reply(p,
		    "552 5.3.4 Error: message size exceeds fixed limit of %llu "
		    "bytes",
		    (unsigned long long)p->max_size);
		intake_proto_txn_reset(p);
		p->state = INTAKE_PROTO_S_CMD;
		return;
	}
	p->state = INTAKE_PROTO_S_WAIT_END;
	intake_proto_push(p, INTAKE_PROTO_EV_END, NULL, 0);
}

/* How many of the n octets at s come before a CR or LF. */
static size_t
intake_proto_line_run(const char *s, size_t n)
{
	const char *lf = memchr(s, '\n', n);
	const char *cr = memchr(s, '\r', lf != NULL ? (size_t)(lf - s) : n);

	return cr != NULL ? (size_t)(cr - s) :
	    lf != NULL    ? (size_t)(lf - s) :
			    n;
}

/* Message bytes; returns how many were taken.  Stops when the chunk
 * buffer is full or an event was queued.  Over 80 lines on purpose: the
 * dot-stuffing state machine, every state's step side by side. */
static size_t
intake_proto_feed_data(struct intake_proto *p, const char *s, size_t len)
{
	size_t i = 0, run, room;
	char   c;

	while (i < len && p->n_ev == 0) {
		room = sizeof(p->body) - p->body_len;
		if (room < 2) {
			intake_proto_push(p, INTAKE_PROTO_EV_BODY, p->body,
			    p->body_len);
			p->body_out = 1;
			break;
		}
		c = s[i];
		switch (p->dstate) {
		case INTAKE_PROTO_D_BOL:
			if (c == '.') {
				p->dstate = INTAKE_PROTO_D_DOT;
				i++;
				continue;
			}
			p->dstate = INTAKE_PROTO_D_MID;
			continue;
		case INTAKE_PROTO_D_DOT:
			if (c == '\r') {
				p->dstate = INTAKE_PROTO_D_DOTCR;
				i++;
			} else if (c == '\n') {
				intake_proto_put(p, ".\n", 2, 2);
				p->dstate = INTAKE_PROTO_D_MID;
				i++;
			} else
				p->dstate = INTAKE_PROTO_D_MID; /* unstuff */
			continue;
		case INTAKE_PROTO_D_DOTCR:
			if (c == '\n') {
				i++;
				intake_proto_data_end(p);
				return i;
			}
			p->dstate = INTAKE_PROTO_D_CR; /* dot dropped */
			continue;
		case INTAKE_PROTO_D_CR:
			/* A bare CR is stored as the line break the relay
			 * would make of it. */
			if (c == '\n') {
				intake_proto_put(p, "\n", 1, 2);
				p->dstate = INTAKE_PROTO_D_BOL;
				i++;
			} else if (c == '\r') {
				intake_proto_put(p, "\n", 1, 1);
				i++;
			} else {
				intake_proto_put(p, "\n", 1, 1);
				p->dstate = INTAKE_PROTO_D_MID;
			}
			continue;
		case INTAKE_PROTO_D_MID:
			if (c == '\r') {
				p->dstate = INTAKE_PROTO_D_CR;
				i++;
				continue;
			}
			if (c == '\n') {
				intake_proto_put(p, "\n", 1, 1);
				i++;
				continue;
			}
			run = intake_proto_line_run(s + i,
			    len - i < room ? len - i : room);
			intake_proto_put(p, s + i, run, run);
			i += run;
			continue;
		}
	}
	if (p->n_ev == 0 && p->body_len > 0 && !p->oversize) {
		intake_proto_push(p, INTAKE_PROTO_EV_BODY, p->body,
		    p->body_len);
		p->body_out = 1;
	}
	return i;
}

size_t
intake_proto_feed(struct intake_proto *p, const void *data, size_t len)
{
	const char *s = data;
	size_t      used = 0;

	if (p->body_out && p->n_ev == 0) {
		p->body_len = 0;
		p->body_out = 0;
	}
	while (used < len && p->n_ev == 0) {
		switch (p->state) {
		case INTAKE_PROTO_S_CMD:
			if (p->out.len > INTAKE_PROTO_OUT_WATERMARK)
				return used;
			used += intake_proto_feed_cmd(p, s + used, len - used);
			break;
		case INTAKE_PROTO_S_DATA: {
			size_t n = intake_proto_feed_data(p, s + used,
			    len - used);

			used += n;
			if (n > 0)
				p->progress++;
			break;
		}
		case INTAKE_PROTO_S_WAIT_DATA:
		case INTAKE_PROTO_S_WAIT_END:
		case INTAKE_PROTO_S_CLOSED:
			return used;
		}
	}
	return used;
}

int
intake_proto_next_event(struct intake_proto *p, struct intake_proto_event *ev)
{
	if (p->n_ev == 0)
		return 0;
	*ev = p->evq[p->ev_head];
	p->ev_head = (p->ev_head + 1) % INTAKE_PROTO_EVQ;
	p->n_ev--;
	return 1;
}

void
intake_proto_data_start(struct intake_proto *p, int ok)
{
	if (p->state != INTAKE_PROTO_S_WAIT_DATA)
		log_fatalx("intake_proto: data_start without DATA");
	if (!ok) {
		intake_proto_reply(p,
		    "452 4.3.1 Insufficient system storage, try again later");
		p->state = INTAKE_PROTO_S_CMD;
		intake_proto_junk(p);
		return;
	}
	intake_proto_reply(p, "354 End data with <CR><LF>.<CR><LF>");
	p->state = INTAKE_PROTO_S_DATA;
	p->dstate = INTAKE_PROTO_D_BOL;
	p->size = 0;
	p->oversize = 0;
	p->body_len = 0;
	p->body_out = 0;
}

void
intake_proto_data_done(struct intake_proto *p, enum intake_proto_result result,
    const char *id)
{
	char shown[64];

	if (p->state != INTAKE_PROTO_S_WAIT_END)
		log_fatalx("intake_proto: data_done without end of data");
	switch (result) {
	case INTAKE_PROTO_QUEUED:
		sq_printable(shown, sizeof(shown), id != NULL ? id : "",
		    id != NULL ? strlen(id) : 0);
		intake_proto_reply(p, "250 2.0.0 Ok: queued as %s", shown);
		p->junk = 0;
		break;
	case INTAKE_PROTO_NOSPACE:
		intake_proto_reply(p,
		    "452 4.3.1 Insufficient system storage, try again later");
		break;
	case INTAKE_PROTO_TEMPFAIL:
		intake_proto_reply(p,
		    "451 4.3.0 Error: local error in processing, try again "
		    "later");
		break;
	case INTAKE_PROTO_REJECTED: {
		char why[300];

		sq_printable(why, sizeof(why), id != NULL ? id : "",
		    id != NULL ? strlen(id) : 0);
		intake_proto_reply(p, "554 5.6.0 Message refused: %s", why);
		break;
	}
	}
	intake_proto_txn_reset(p);
	p->state = INTAKE_PROTO_S_CMD;
}

void
intake_proto_data_refuse(struct intake_proto *p, const char *text)
{
	char shown[INTAKE_PROTO_LINE_MAX];

	if (p->state != INTAKE_PROTO_S_WAIT_DATA &&
	    p->state != INTAKE_PROTO_S_WAIT_END)
		log_fatalx("intake_proto: data_refuse without DATA");
	sq_printable(shown, sizeof(shown), text, strlen(text));
	intake_proto_reply(p, "452 4.3.1 %s", shown);
	if (p->state == INTAKE_PROTO_S_WAIT_END)
		intake_proto_txn_reset(p);
	p->state = INTAKE_PROTO_S_CMD;
	intake_proto_junk(p);
}

uint64_t
intake_proto_progress(const struct intake_proto *p)
{
	return p->progress;
}

void
intake_proto_timeout(struct intake_proto *p)
{
	if (p->state == INTAKE_PROTO_S_CLOSED)
		return;
	intake_proto_reply(p, "421 4.4.2 %s Error: timeout exceeded",
	    p->hostname);
	intake_proto_close(p);
}

void
intake_proto_output(const struct intake_proto *p, const char **data,
    size_t *len)
{
	*data = p->out.len > 0 ? p->out.data : NULL;
	*len = p->out.len;
}

void
intake_proto_consumed(struct intake_proto *p, size_t n)
{
	buf_consume(&p->out, n);
}

int
intake_proto_blocked(const struct intake_proto *p)
{
	return p->state == INTAKE_PROTO_S_WAIT_DATA ||
	    p->state == INTAKE_PROTO_S_WAIT_END;
}

int
intake_proto_closed(const struct intake_proto *p)
{
	return p->state == INTAKE_PROTO_S_CLOSED;
}

const struct intake_proto_txn *
intake_proto_txn(const struct intake_proto *p)
{
	return &p->txn;
}

const char *
intake_proto_helo(const struct intake_proto *p)
{
	return p->helo_kind != 0 ? p->helo : NULL;
}

uint64_t
intake_proto_msg_size(const struct intake_proto *p)
{
	return p->size;
}

char *
intake_proto_received(const struct intake_proto *p, const char *client,
    const char *id, const char *date)
{
	const char *proto, *helo = p->helo_kind != 0 ? p->helo : "unknown";
	char       *forpart, *out;

	if (p->txn.smtputf8)
		proto = "UTF8SMTP";
	else
		proto = p->helo_kind == 2 ? "ESMTP" : "SMTP";
	if (p->txn.n_rcpts == 1)
		forpart = xasprintf("\n\tfor <%s>", p->txn.rcpts[0].addr);
	else
		forpart = xstrdup("");
	out = xasprintf(
	    "Received: from %s (%s)\n\tby %s (sendq) with %s id %s%s; %s\n",
	    helo, client, p->hostname, proto, id, forpart, date);
	free(forpart);
	return out;
}
