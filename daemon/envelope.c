/*
 * envelope.c - the envelope record and its text form.
 *
 * The text form is line based, LF-terminated, one "key value" pair per
 * line (key, one space, value up to the end of the line; a key alone on its
 * line has the empty value):
 *
 *	sendq-envelope 1		first line: format and version
 *	id 0065A1B2C30A1B2F3C9D1E8B7A6C5D4	queue id (required, once)
 *	created 1700000000		unix time of acceptance (required, once)
 *	uid 1000			submitting uid, -1 unknown (once)
 *	sender alice@example.com	envelope sender; "sender" alone is the
 *					null sender <> (required, once)
 *	rcpt bob@example.com		a recipient (required, repeated)
 *	attempts 0			delivery attempts so far (once)
 *	next_attempt 0			unix time of the next try (once)
 *	last_error 451 4.3.0 try later	last failure (optional, once)
 *	body 8bit			7bit or 8bit: whether the message
 *					holds bytes >= 0x80 (optional, once;
 *					absent means 7bit)
 *	held 1				on hold (sendqctl hold); optional,
 *					once, 0 or 1
 *	warned 1			the delay warning was sent; optional,
 *					once, 0 or 1
 *	ret HDRS			DSN RET= (RFC 3461): FULL or HDRS;
 *					optional, once
 *	envid QQ+2B1			DSN ENVID=, xtext as received (1 to
 *					100 characters); optional, once
 *	rcpt_params 0 NOTIFY=NEVER ORCPT=rfc822;bob@example.com
 *					DSN parameters of recipient 0 (the
 *					first "rcpt" line): NOTIFY=NEVER or
 *					a comma list of SUCCESS, FAILURE,
 *					DELAY; ORCPT=addr-type;xtext (at
 *					most 500 characters); at least one
 *					of them, each at most once, in any
 *					order.  Optional, at most once per
 *					recipient, after that recipient's
 *					rcpt line (the formatter writes it
 *					right below it)
 *	end				last line: a file without it is
 *					truncated and rejected
 *
 * Values never contain control bytes (NUL, CR, LF, TAB...): the formatter
 * replaces them with '?' so that every formatted envelope parses back to
 * the same record; the parser rejects them.  Numbers are plain decimal
 * without sign (uid may be -1) or leading zeros.  Unknown keys, repeated
 * single keys, anything after "end" and a missing line ending are errors
 * naming the line.  The parser never reads past the length it is given.
 *
 * Compatibility: ret, envid and rcpt_params are newer than the rest and
 * optional, so every envelope written before them still parses (with no
 * DSN parameters).  An older sendq does not know them and refuses an
 * envelope that has them, as it refuses every unknown key.
 *
 * In memory the recipients' DSN parameters (env->rcpt_dsn) run parallel
 * to env->rcpts once any is set, and each entry names its recipient:
 * envelope_rcpt_dsn(env, i) takes entry i when it is rcpts[i]'s, else
 * (rcpts[] was narrowed or appended to by hand) the first entry with the
 * same address, so code that narrows rcpts[] by hand cannot give one
 * recipient's NOTIFY=NEVER to another.  The setters and
 * envelope_keep_rcpts() first make the array parallel again.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "envelope.h"
#include "log.h"
#include "util.h"

#define ENVELOPE_MAGIC "sendq-envelope 1"

enum envelope_key {
	ENVELOPE_KEY_ID,
	ENVELOPE_KEY_CREATED,
	ENVELOPE_KEY_UID,
	ENVELOPE_KEY_SENDER,
	ENVELOPE_KEY_RCPT,
	ENVELOPE_KEY_ATTEMPTS,
	ENVELOPE_KEY_NEXT_ATTEMPT,
	ENVELOPE_KEY_LAST_ERROR,
	ENVELOPE_KEY_BODY,
	ENVELOPE_KEY_HELD,
	ENVELOPE_KEY_WARNED,
	ENVELOPE_KEY_RET,
	ENVELOPE_KEY_ENVID,
	ENVELOPE_KEY_RCPT_PARAMS,
	ENVELOPE_KEY_END,
	ENVELOPE_KEY_COUNT,
};

static const char *const envelope_key_names[ENVELOPE_KEY_COUNT] = {
	[ENVELOPE_KEY_ID] = "id",
	[ENVELOPE_KEY_CREATED] = "created",
	[ENVELOPE_KEY_UID] = "uid",
	[ENVELOPE_KEY_SENDER] = "sender",
	[ENVELOPE_KEY_RCPT] = "rcpt",
	[ENVELOPE_KEY_ATTEMPTS] = "attempts",
	[ENVELOPE_KEY_NEXT_ATTEMPT] = "next_attempt",
	[ENVELOPE_KEY_LAST_ERROR] = "last_error",
	[ENVELOPE_KEY_BODY] = "body",
	[ENVELOPE_KEY_HELD] = "held",
	[ENVELOPE_KEY_WARNED] = "warned",
	[ENVELOPE_KEY_RET] = "ret",
	[ENVELOPE_KEY_ENVID] = "envid",
	[ENVELOPE_KEY_RCPT_PARAMS] = "rcpt_params",
	[ENVELOPE_KEY_END] = "end",
};

struct envelope *
envelope_new(void)
{
	struct envelope *env;

	env = xcalloc(1, sizeof(*env));
	env->sender = xstrdup("");
	env->uid = -1;
	return env;
}

void
envelope_set_sender(struct envelope *env, const char *addr)
{
	char *copy;

	copy = xstrdup(addr != NULL ? addr : "");
	free(env->sender);
	env->sender = copy;
}

void
envelope_set_error(struct envelope *env, const char *text)
{
	char *copy;

	copy = text != NULL ? xstrdup(text) : NULL;
	free(env->last_error);
	env->last_error = copy;
}

int
envelope_xtext_valid(const char *s)
{
	const char *p;

	if (s == NULL || *s == '\0')
		return 0;
	for (p = s; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '+') {
			if (!((p[1] >= '0' && p[1] <= '9') ||
				(p[1] >= 'A' && p[1] <= 'F')) ||
			    !((p[2] >= '0' && p[2] <= '9') ||
				(p[2] >= 'A' && p[2] <= 'F')))
				return 0;
			p += 2;
			continue;
		}
		if (c < 0x21 || c > 0x7e || c == '=')
			return 0;
	}
	return 1;
}

char *
envelope_xtext_encode(const char *raw)
{
	static const char    hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char                *out, *o;

	out = xmalloc(strlen(raw) * 3 + 1);
	o = out;
	for (p = (const unsigned char *)raw; *p != '\0'; p++) {
		if (*p < 0x21 || *p > 0x7e || *p == '+' || *p == '=') {
			*o++ = '+';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 0xf];
		} else
			*o++ = (char)*p;
	}
	*o = '\0';
	return out;
}

/* NOTIFY bits: NEVER alone, or a non-empty set of the other three. */
static int
envelope_notify_ok(unsigned notify)
{
	if (notify == ENVELOPE_NOTIFY_NEVER)
		return 1;
	return notify != 0 &&
	    (notify &
		~(unsigned)(ENVELOPE_NOTIFY_SUCCESS | ENVELOPE_NOTIFY_FAILURE |
		    ENVELOPE_NOTIFY_DELAY)) == 0;
}

/* ORCPT: addr-type (letters, digits, '-') ';' xtext, at most
 * ENVELOPE_ORCPT_MAX characters. */
static int
envelope_orcpt_ok(const char *v)
{
	const char *semi, *c;

	if (v == NULL || strlen(v) > ENVELOPE_ORCPT_MAX ||
	    (semi = strchr(v, ';')) == NULL || semi == v)
		return 0;
	for (c = v; c < semi; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
			(*c >= 'a' && *c <= 'z') || *c == '-'))
			return 0;
	return envelope_xtext_valid(semi + 1);
}

int
envelope_set_envid(struct envelope *env, const char *xtext)
{
	char *copy = NULL;

	if (xtext != NULL) {
		if (strlen(xtext) > ENVELOPE_ENVID_MAX ||
		    !envelope_xtext_valid(xtext))
			return -EINVAL;
		copy = xstrdup(xtext);
	}
	free(env->envid);
	env->envid = copy;
	return 0;
}

/* An entry that carries nothing. */
static int
envelope_dsn_empty(const struct envelope_rcpt_dsn *d)
{
	return d->notify == 0 && d->orcpt == NULL;
}

/*
 * The parameters of rcpts[i]: entry i when it is that recipient's (the
 * usual case: the array runs parallel to rcpts[]), else the first
 * non-empty entry with the same address (rcpts[] was narrowed by hand).
 * NULL when there are none.
 */
static const struct envelope_rcpt_dsn *
envelope_dsn_lookup(const struct envelope *env, size_t i)
{
	const struct envelope_rcpt_dsn *d;
	size_t                          j;

	if (i >= env->n_rcpts || env->n_rcpt_dsn == 0)
		return NULL;
	if (i < env->n_rcpt_dsn &&
	    strcmp(env->rcpt_dsn[i].addr, env->rcpts[i]) == 0) {
		d = &env->rcpt_dsn[i];
		return envelope_dsn_empty(d) ? NULL : d;
	}
	for (j = 0; j < env->n_rcpt_dsn; j++) {
		d = &env->rcpt_dsn[j];
		if (!envelope_dsn_empty(d) &&
		    strcmp(d->addr, env->rcpts[i]) == 0)
			return d;
	}
	return NULL;
}

static void
envelope_dsn_free(struct envelope_rcpt_dsn *d, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(d[i].addr);
		free(d[i].orcpt);
	}
	free(d);
}

/* Make env->rcpt_dsn run parallel to rcpts[] (entry i for rcpts[i]),
 * carrying over what each recipient had. */
static void
envelope_dsn_align(struct envelope *env)
{
	const struct envelope_rcpt_dsn *d;
	struct envelope_rcpt_dsn       *nd;
	size_t                          i;

	for (i = 0; i < env->n_rcpts && env->n_rcpt_dsn == env->n_rcpts; i++)
		if (strcmp(env->rcpt_dsn[i].addr, env->rcpts[i]) != 0)
			break;
	if (env->n_rcpt_dsn == env->n_rcpts && i == env->n_rcpts)
		return;
	nd = xcalloc(env->n_rcpts > 0 ? env->n_rcpts : 1, sizeof(*nd));
	for (i = 0; i < env->n_rcpts; i++) {
		nd[i].addr = xstrdup(env->rcpts[i]);
		if ((d = envelope_dsn_lookup(env, i)) != NULL) {
			nd[i].notify = d->notify;
			nd[i].orcpt = d->orcpt != NULL ? xstrdup(d->orcpt) :
							 NULL;
		}
	}
	envelope_dsn_free(env->rcpt_dsn, env->n_rcpt_dsn);
	env->rcpt_dsn = nd;
	env->n_rcpt_dsn = env->n_rcpts;
}

/* Append a recipient (len bytes of addr), keeping rcpt_dsn parallel. */
static void
envelope_add_rcpt_n(struct envelope *env, const char *addr, size_t len)
{
	int parallel = env->n_rcpt_dsn > 0 && env->n_rcpt_dsn == env->n_rcpts;

	env->rcpts = xreallocarray(env->rcpts, env->n_rcpts + 1,
	    sizeof(*env->rcpts));
	env->rcpts[env->n_rcpts++] = xstrndup(addr, len);
	if (parallel) {
		env->rcpt_dsn = xreallocarray(env->rcpt_dsn,
		    env->n_rcpt_dsn + 1, sizeof(*env->rcpt_dsn));
		memset(&env->rcpt_dsn[env->n_rcpt_dsn], 0,
		    sizeof(*env->rcpt_dsn));
		env->rcpt_dsn[env->n_rcpt_dsn++].addr = xstrndup(addr, len);
	}
}

void
envelope_free(struct envelope *env)
{
	size_t i;

	if (env == NULL)
		return;
	free(env->sender);
	for (i = 0; i < env->n_rcpts; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	free(env->last_error);
	free(env->envid);
	envelope_dsn_free(env->rcpt_dsn, env->n_rcpt_dsn);
	free(env);
}

void
envelope_add_rcpt(struct envelope *env, const char *addr)
{
	envelope_add_rcpt_n(env, addr, strlen(addr));
}

int
envelope_set_rcpt_dsn(struct envelope *env, size_t i, unsigned notify,
    const char *orcpt)
{
	struct envelope_rcpt_dsn *d;

	if (i >= env->n_rcpts || (notify != 0 && !envelope_notify_ok(notify)) ||
	    (orcpt != NULL && !envelope_orcpt_ok(orcpt)))
		return -EINVAL;
	if (notify == 0 && orcpt == NULL && env->n_rcpt_dsn == 0)
		return 0;
	envelope_dsn_align(env);
	d = &env->rcpt_dsn[i];
	d->notify = notify;
	free(d->orcpt);
	d->orcpt = orcpt != NULL ? xstrdup(orcpt) : NULL;
	return 0;
}

const struct envelope_rcpt_dsn *
envelope_rcpt_dsn(const struct envelope *env, size_t i)
{
	return envelope_dsn_lookup(env, i);
}

void
envelope_keep_rcpts(struct envelope *env, const int *keep)
{
	size_t i, kept = 0;
	int    dsn = env->n_rcpt_dsn > 0;

	if (dsn)
		envelope_dsn_align(env);
	for (i = 0; i < env->n_rcpts; i++) {
		if (keep[i]) {
			if (dsn)
				env->rcpt_dsn[kept] = env->rcpt_dsn[i];
			env->rcpts[kept++] = env->rcpts[i];
			continue;
		}
		free(env->rcpts[i]);
		if (dsn) {
			free(env->rcpt_dsn[i].addr);
			free(env->rcpt_dsn[i].orcpt);
		}
	}
	env->n_rcpts = kept;
	if (dsn)
		env->n_rcpt_dsn = kept;
}

/* "NEVER" or "SUCCESS,FAILURE,DELAY" (the bits given) into out. */
static void
envelope_notify_str(unsigned notify, char *out, size_t outsz)
{
	out[0] = '\0';
	if (notify & ENVELOPE_NOTIFY_NEVER) {
		snprintf(out, outsz, "NEVER");
		return;
	}
	if (notify & ENVELOPE_NOTIFY_SUCCESS)
		snprintf(out + strlen(out), outsz - strlen(out), "%sSUCCESS",
		    out[0] != '\0' ? "," : "");
	if (notify & ENVELOPE_NOTIFY_FAILURE)
		snprintf(out + strlen(out), outsz - strlen(out), "%sFAILURE",
		    out[0] != '\0' ? "," : "");
	if (notify & ENVELOPE_NOTIFY_DELAY)
		snprintf(out + strlen(out), outsz - strlen(out), "%sDELAY",
		    out[0] != '\0' ? "," : "");
}

/* Append "key value\n" with control bytes in value replaced by '?'. */
static void
envelope_format_line(struct buf *b, const char *key, const char *value)
{
	size_t i;
	char   c;

	if (buf_append_str(b, key) != 0)
		log_fatalx("envelope too large");
	if (value != NULL && value[0] != '\0') {
		if (buf_append(b, " ", 1) != 0)
			log_fatalx("envelope too large");
		for (i = 0; value[i] != '\0'; i++) {
			c = value[i];
			if ((unsigned char)c < 0x20 || c == 0x7f)
				c = '?';
			if (buf_append(b, &c, 1) != 0)
				log_fatalx("envelope too large");
		}
	}
	if (buf_append(b, "\n", 1) != 0)
		log_fatalx("envelope too large");
}

/* The rcpt_params line of rcpts[i], when it has valid parameters. */
static void
envelope_format_params(struct buf *b, const struct envelope *env, size_t i)
{
	const struct envelope_rcpt_dsn *d;
	char                            notify[32], *line;
	int                             has_notify, has_orcpt;

	if ((d = envelope_rcpt_dsn(env, i)) == NULL)
		return;
	has_notify = d->notify != 0 && envelope_notify_ok(d->notify);
	has_orcpt = d->orcpt != NULL && envelope_orcpt_ok(d->orcpt);
	if (!has_notify && !has_orcpt)
		return;
	envelope_notify_str(d->notify, notify, sizeof(notify));
	line = xasprintf("%zu%s%s%s%s", i, has_notify ? " NOTIFY=" : "",
	    has_notify ? notify : "", has_orcpt ? " ORCPT=" : "",
	    has_orcpt ? d->orcpt : "");
	envelope_format_line(b, "rcpt_params", line);
	free(line);
}

char *
envelope_format(const struct envelope *env, size_t *len)
{
	struct buf b;
	char       num[32];
	size_t     i;
	char      *out;

	buf_init(&b, SIZE_MAX / 2);
	envelope_format_line(&b, ENVELOPE_MAGIC, NULL);
	envelope_format_line(&b, "id", env->id);
	snprintf(num, sizeof(num), "%" PRId64,
	    env->created < 0 ? 0 : env->created);
	envelope_format_line(&b, "created", num);
	snprintf(num, sizeof(num), "%ld", env->uid < 0 ? -1L : env->uid);
	envelope_format_line(&b, "uid", num);
	envelope_format_line(&b, "sender", env->sender);
	for (i = 0; i < env->n_rcpts; i++) {
		envelope_format_line(&b, "rcpt", env->rcpts[i]);
		envelope_format_params(&b, env, i);
	}
	snprintf(num, sizeof(num), "%u", env->attempts);
	envelope_format_line(&b, "attempts", num);
	snprintf(num, sizeof(num), "%" PRId64,
	    env->next_attempt < 0 ? 0 : env->next_attempt);
	envelope_format_line(&b, "next_attempt", num);
	if (env->last_error != NULL)
		envelope_format_line(&b, "last_error", env->last_error);
	envelope_format_line(&b, "body", env->body_8bit ? "8bit" : "7bit");
	if (env->held)
		envelope_format_line(&b, "held", "1");
	if (env->warned)
		envelope_format_line(&b, "warned", "1");
	if (env->ret == ENVELOPE_RET_FULL || env->ret == ENVELOPE_RET_HDRS)
		envelope_format_line(&b, "ret",
		    env->ret == ENVELOPE_RET_FULL ? "FULL" : "HDRS");
	/* Checked values only, so that the result parses back. */
	if (env->envid != NULL && strlen(env->envid) <= ENVELOPE_ENVID_MAX &&
	    envelope_xtext_valid(env->envid))
		envelope_format_line(&b, "envid", env->envid);
	envelope_format_line(&b, "end", NULL);
	if (buf_append(&b, "", 1) != 0)
		log_fatalx("envelope too large");
	out = b.data;
	*len = b.len - 1;
	return out;
}

/*
 * Strict unsigned decimal: digits only, no leading zeros, at most max.
 * Returns 0 and *out, or -1.
 */
static int
envelope_parse_uint(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t   i;

	if (len == 0 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* Queue ids: 1..ENVELOPE_ID_MAX-1 letters and digits. */
static int
envelope_id_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len >= ENVELOPE_ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

static int
envelope_parse_fail(struct sq_err *err, size_t lineno, const char *why,
    const char *what, size_t whatlen)
{
	char safe[64];

	if (what == NULL)
		return sq_err_set(err, SQ_EPARSE, "envelope line %zu: %s",
		    lineno, why);
	sq_printable(safe, sizeof(safe), what, whatlen);
	return sq_err_set(err, SQ_EPARSE, "envelope line %zu: %s \"%s\"",
	    lineno, why, safe);
}

/* The NOTIFY bits of the list [w, end) ("SUCCESS,DELAY"); 0 for an
 * unknown or repeated word. */
static unsigned
envelope_parse_notify(const char *w, const char *end)
{
	const char *c;
	unsigned    notify = 0, bit;
	size_t      n;

	for (; w < end; w = c + 1) {
		c = memchr(w, ',', (size_t)(end - w));
		if (c == NULL)
			c = end;
		n = (size_t)(c - w);
		bit = n == 5 && memcmp(w, "NEVER", 5) == 0 ?
		    ENVELOPE_NOTIFY_NEVER :
		    n == 7 && memcmp(w, "SUCCESS", 7) == 0 ?
		    ENVELOPE_NOTIFY_SUCCESS :
		    n == 7 && memcmp(w, "FAILURE", 7) == 0 ?
		    ENVELOPE_NOTIFY_FAILURE :
		    n == 5 && memcmp(w, "DELAY", 5) == 0 ?
		    ENVELOPE_NOTIFY_DELAY :
		    0;
		if (bit == 0 || (notify & bit))
			return 0;
		notify |= bit;
	}
	return notify;
}

/*
 * "INDEX NOTIFY=... ORCPT=..." of a rcpt_params line into env.  Returns
 * 0 or SQ_EPARSE with err filled.
 */
static int
envelope_parse_params(struct envelope *env, const char *val, size_t vallen,
    size_t lineno, struct sq_err *err)
{
	const char *p = val, *end = val + vallen, *w, *we, *eq;
	unsigned    notify = 0;
	char       *orcpt = NULL;
	uint64_t    idx;
	size_t      n;
	int         seen_notify = 0, rc;

	w = memchr(p, ' ', vallen);
	if (w == NULL ||
	    envelope_parse_uint(p, (size_t)(w - p), SIZE_MAX, &idx) != 0)
		return envelope_parse_fail(err, lineno,
		    "rcpt_params: bad recipient index", val, vallen);
	if (idx >= env->n_rcpts)
		return envelope_parse_fail(err, lineno,
		    "rcpt_params: no such recipient (yet)", val,
		    (size_t)(w - p));
	if (idx < env->n_rcpt_dsn && !envelope_dsn_empty(&env->rcpt_dsn[idx]))
		return envelope_parse_fail(err, lineno,
		    "rcpt_params: repeated for recipient", val,
		    (size_t)(w - p));
	for (p = w + 1; p < end; p = we + 1) {
		we = memchr(p, ' ', (size_t)(end - p));
		if (we == NULL)
			we = end;
		n = (size_t)(we - p);
		eq = memchr(p, '=', n);
		if (eq != NULL && eq - p == 6 && memcmp(p, "NOTIFY", 6) == 0) {
			if (seen_notify++) {
				rc = envelope_parse_fail(err, lineno,
				    "rcpt_params: repeated parameter", p, n);
				goto fail;
			}
			notify = envelope_parse_notify(eq + 1, we);
			if (!envelope_notify_ok(notify)) {
				rc = envelope_parse_fail(err, lineno,
				    "rcpt_params: bad NOTIFY", p,
				    (size_t)(we - p));
				goto fail;
			}
		} else if (eq != NULL && eq - p == 5 &&
		    memcmp(p, "ORCPT", 5) == 0) {
			if (orcpt != NULL) {
				rc = envelope_parse_fail(err, lineno,
				    "rcpt_params: repeated parameter", p, n);
				goto fail;
			}
			orcpt = xstrndup(p + 6, n - 6);
			if (!envelope_orcpt_ok(orcpt)) {
				rc = envelope_parse_fail(err, lineno,
				    "rcpt_params: bad ORCPT", p, n);
				goto fail;
			}
		} else {
			rc = envelope_parse_fail(err, lineno,
			    "rcpt_params: unknown parameter", p, n);
			goto fail;
		}
	}
	if (notify == 0 && orcpt == NULL) {
		rc = envelope_parse_fail(err, lineno,
		    "rcpt_params: no parameters", NULL, 0);
		goto fail;
	}
	if (envelope_set_rcpt_dsn(env, (size_t)idx, notify, orcpt) != 0)
		log_fatalx("envelope_parse_params: checked values refused");
	free(orcpt);
	return 0;
fail:
	free(orcpt);
	return rc;
}

/* A line holds no control character (CR included).  0 or SQ_EPARSE. */
static int
envelope_parse_chars(const char *line, size_t linelen, size_t lineno,
    struct sq_err *err)
{
	size_t i;

	for (i = 0; i < linelen; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return envelope_parse_fail(err, lineno,
			    c == '\r' ? "carriage return in line" :
					"control character in line",
			    NULL, 0);
	}
	return 0;
}

/* "KEY VALUE" or "KEY": the key into *k (counted in seen[], only rcpt
 * and rcpt_params may repeat), the value into *val, *vallen.  0 or
 * SQ_EPARSE. */
static int
envelope_parse_key(const char *line, size_t linelen, size_t lineno,
    unsigned seen[ENVELOPE_KEY_COUNT], enum envelope_key *k, const char **val,
    size_t *vallen, struct sq_err *err)
{
	size_t keylen;

	*val = memchr(line, ' ', linelen);
	if (*val != NULL) {
		keylen = (size_t)(*val - line);
		(*val)++;
		*vallen = linelen - keylen - 1;
	} else {
		keylen = linelen;
		*val = line + linelen;
		*vallen = 0;
	}
	for (*k = 0; *k < ENVELOPE_KEY_COUNT; (*k)++)
		if (strlen(envelope_key_names[*k]) == keylen &&
		    memcmp(envelope_key_names[*k], line, keylen) == 0)
			break;
	if (*k == ENVELOPE_KEY_COUNT)
		return envelope_parse_fail(err, lineno, "unknown key", line,
		    keylen);
	if (*k != ENVELOPE_KEY_RCPT && *k != ENVELOPE_KEY_RCPT_PARAMS &&
	    seen[*k] > 0)
		return envelope_parse_fail(err, lineno, "repeated key", line,
		    keylen);
	seen[*k]++;
	return 0;
}

/* The value of created, next_attempt, uid or attempts.  0 or
 * SQ_EPARSE. */
static int
envelope_parse_number(struct envelope *env, enum envelope_key k,
    const char *val, size_t vallen, size_t lineno, struct sq_err *err)
{
	uint64_t num;

	switch (k) {
	case ENVELOPE_KEY_UID:
		if (vallen == 2 && memcmp(val, "-1", 2) == 0) {
			env->uid = -1;
			return 0;
		}
		if (envelope_parse_uint(val, vallen, LONG_MAX, &num) != 0)
			return envelope_parse_fail(err, lineno, "bad uid", val,
			    vallen);
		env->uid = (long)num;
		return 0;
	case ENVELOPE_KEY_ATTEMPTS:
		if (envelope_parse_uint(val, vallen, UINT_MAX, &num) != 0)
			return envelope_parse_fail(err, lineno,
			    "bad attempt count", val, vallen);
		env->attempts = (unsigned)num;
		return 0;
	default: /* created, next_attempt */
		if (envelope_parse_uint(val, vallen, INT64_MAX, &num) != 0)
			return envelope_parse_fail(err, lineno, "bad time", val,
			    vallen);
		if (k == ENVELOPE_KEY_CREATED)
			env->created = (int64_t)num;
		else
			env->next_attempt = (int64_t)num;
		return 0;
	}
}

/* The value of ret, held, warned or body (one word of a fixed set).  0
 * or SQ_EPARSE. */
static int
envelope_parse_word(struct envelope *env, enum envelope_key k, const char *val,
    size_t vallen, size_t lineno, struct sq_err *err)
{
	switch (k) {
	case ENVELOPE_KEY_RET:
		if (vallen == 4 && memcmp(val, "FULL", 4) == 0)
			env->ret = ENVELOPE_RET_FULL;
		else if (vallen == 4 && memcmp(val, "HDRS", 4) == 0)
			env->ret = ENVELOPE_RET_HDRS;
		else
			return envelope_parse_fail(err, lineno,
			    "bad ret (FULL or HDRS)", val, vallen);
		return 0;
	case ENVELOPE_KEY_BODY:
		if (vallen == 4 && memcmp(val, "8bit", 4) == 0)
			env->body_8bit = 1;
		else if (!(vallen == 4 && memcmp(val, "7bit", 4) == 0))
			return envelope_parse_fail(err, lineno,
			    "bad body type (7bit or 8bit)", val, vallen);
		return 0;
	default: /* held, warned */
		if (vallen != 1 || (val[0] != '0' && val[0] != '1'))
			return envelope_parse_fail(err, lineno,
			    "bad flag (0 or 1)", val, vallen);
		if (k == ENVELOPE_KEY_HELD)
			env->held = val[0] == '1';
		else
			env->warned = val[0] == '1';
		return 0;
	}
}

/* The value of key k into env (*ended set by the end line).  0 or
 * SQ_EPARSE. */
static int
envelope_parse_value(struct envelope *env, enum envelope_key k, const char *val,
    size_t vallen, size_t lineno, int *ended, struct sq_err *err)
{
	char *v;
	int   rc;

	switch (k) {
	case ENVELOPE_KEY_ID:
		if (!envelope_id_ok(val, vallen))
			return envelope_parse_fail(err, lineno, "bad queue id",
			    val, vallen);
		memcpy(env->id, val, vallen);
		env->id[vallen] = '\0';
		return 0;
	case ENVELOPE_KEY_CREATED:
	case ENVELOPE_KEY_NEXT_ATTEMPT:
	case ENVELOPE_KEY_UID:
	case ENVELOPE_KEY_ATTEMPTS:
		return envelope_parse_number(env, k, val, vallen, lineno, err);
	case ENVELOPE_KEY_SENDER:
		free(env->sender);
		env->sender = xstrndup(val, vallen);
		return 0;
	case ENVELOPE_KEY_RCPT:
		if (vallen == 0)
			return envelope_parse_fail(err, lineno,
			    "empty recipient", NULL, 0);
		envelope_add_rcpt_n(env, val, vallen);
		return 0;
	case ENVELOPE_KEY_RET:
	case ENVELOPE_KEY_HELD:
	case ENVELOPE_KEY_WARNED:
	case ENVELOPE_KEY_BODY:
		return envelope_parse_word(env, k, val, vallen, lineno, err);
	case ENVELOPE_KEY_ENVID:
		v = xstrndup(val, vallen);
		rc = vallen > ENVELOPE_ENVID_MAX ? -EINVAL :
						   envelope_set_envid(env, v);
		free(v);
		if (rc != 0)
			return envelope_parse_fail(err, lineno,
			    "bad envid (1 to 100 characters of xtext)", val,
			    vallen);
		return 0;
	case ENVELOPE_KEY_RCPT_PARAMS:
		return envelope_parse_params(env, val, vallen, lineno, err);
	case ENVELOPE_KEY_LAST_ERROR:
		env->last_error = xstrndup(val, vallen);
		return 0;
	case ENVELOPE_KEY_END:
		if (vallen != 0)
			return envelope_parse_fail(err, lineno,
			    "value after end", NULL, 0);
		*ended = 1;
		return 0;
	case ENVELOPE_KEY_COUNT:
		break;
	}
	return 0;
}

/* After the last line: not empty, ended, and every required key seen.
 * 0 or SQ_EPARSE. */
static int
envelope_parse_complete(const unsigned seen[ENVELOPE_KEY_COUNT], int ended,
    size_t lineno, struct sq_err *err)
{
	if (lineno == 0)
		return sq_err_set(err, SQ_EPARSE, "envelope is empty");
	if (!ended)
		return envelope_parse_fail(err, lineno,
		    "truncated (no end line)", NULL, 0);
	if (!seen[ENVELOPE_KEY_ID] || !seen[ENVELOPE_KEY_CREATED] ||
	    !seen[ENVELOPE_KEY_SENDER] || !seen[ENVELOPE_KEY_RCPT])
		return envelope_parse_fail(err, lineno,
		    !seen[ENVELOPE_KEY_ID] ? "missing key id" :
			!seen[ENVELOPE_KEY_CREATED] ?
					     "missing key created" :
			!seen[ENVELOPE_KEY_SENDER] ?
					     "missing key sender" :
					     "missing key rcpt (no recipients)",
		    NULL, 0);
	return 0;
}

int
envelope_parse(const char *text, size_t len, struct envelope **out,
    struct sq_err *err)
{
	struct envelope  *env;
	unsigned          seen[ENVELOPE_KEY_COUNT] = { 0 };
	const char       *line, *nl, *val;
	size_t            pos = 0, lineno = 0, linelen, vallen;
	enum envelope_key k;
	int               rc, ended = 0;

	env = envelope_new();
	while (pos < len) {
		line = text + pos;
		lineno++;
		nl = memchr(line, '\n', len - pos);
		if (nl == NULL) {
			rc = envelope_parse_fail(err, lineno,
			    "truncated (no line ending)", NULL, 0);
			goto fail;
		}
		linelen = (size_t)(nl - line);
		pos += linelen + 1;
		if (ended) {
			rc = envelope_parse_fail(err, lineno,
			    "data after the end line", NULL, 0);
			goto fail;
		}
		if ((rc = envelope_parse_chars(line, linelen, lineno, err)) !=
		    0)
			goto fail;
		if (lineno == 1) {
			if (linelen != strlen(ENVELOPE_MAGIC) ||
			    memcmp(line, ENVELOPE_MAGIC, linelen) != 0) {
				rc = envelope_parse_fail(err, lineno,
				    "not a sendq envelope (expected "
				    "\"" ENVELOPE_MAGIC "\")",
				    NULL, 0);
				goto fail;
			}
			continue;
		}
		if ((rc = envelope_parse_key(line, linelen, lineno, seen, &k,
			 &val, &vallen, err)) != 0 ||
		    (rc = envelope_parse_value(env, k, val, vallen, lineno,
			 &ended, err)) != 0)
			goto fail;
	}
	if ((rc = envelope_parse_complete(seen, ended, lineno, err)) != 0)
		goto fail;
	*out = env;
	return 0;
fail:
	envelope_free(env);
	return rc;
}
