/*
 * envelope.c - the envelope record and its text form.
 *
 * The text form is line based, LF-terminated, one "key value" pair per
 * line (key, one space, value up to the end of the line; a key alone on its
 * line has the empty value):
 *
 *	sendq-envelope 1		first line: format and version
 *	id 018F2C3A4B0A1B2C3D4E		queue id (required, once)
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
 *	end				last line: a file without it is
 *					truncated and rejected
 *
 * Values never contain control bytes (NUL, CR, LF, TAB...): the formatter
 * replaces them with '?' so that every formatted envelope parses back to
 * the same record; the parser rejects them.  Numbers are plain decimal
 * without sign (uid may be -1) or leading zeros.  Unknown keys, repeated
 * single keys, anything after "end" and a missing line ending are errors
 * naming the line.  The parser never reads past the length it is given.
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

#define ENVELOPE_MAGIC	"sendq-envelope 1"

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
	free(env);
}

void
envelope_add_rcpt(struct envelope *env, const char *addr)
{
	env->rcpts = xreallocarray(env->rcpts, env->n_rcpts + 1,
	    sizeof(*env->rcpts));
	env->rcpts[env->n_rcpts++] = xstrdup(addr);
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

/* Append "key value\n" with control bytes in value replaced by '?'. */
static void
envelope_format_line(struct buf *b, const char *key, const char *value)
{
	size_t i;
	char c;

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

char *
envelope_format(const struct envelope *env, size_t *len)
{
	struct buf b;
	char num[32];
	size_t i;
	char *out;

	buf_init(&b, SIZE_MAX / 2);
	envelope_format_line(&b, ENVELOPE_MAGIC, NULL);
	envelope_format_line(&b, "id", env->id);
	snprintf(num, sizeof(num), "%" PRId64, env->created < 0 ? 0 :
	    env->created);
	envelope_format_line(&b, "created", num);
	snprintf(num, sizeof(num), "%ld", env->uid < 0 ? -1L : env->uid);
	envelope_format_line(&b, "uid", num);
	envelope_format_line(&b, "sender", env->sender);
	for (i = 0; i < env->n_rcpts; i++)
		envelope_format_line(&b, "rcpt", env->rcpts[i]);
	snprintf(num, sizeof(num), "%u", env->attempts);
	envelope_format_line(&b, "attempts", num);
	snprintf(num, sizeof(num), "%" PRId64, env->next_attempt < 0 ? 0 :
	    env->next_attempt);
	envelope_format_line(&b, "next_attempt", num);
	if (env->last_error != NULL)
		envelope_format_line(&b, "last_error", env->last_error);
	envelope_format_line(&b, "body", env->body_8bit ? "8bit" : "7bit");
	if (env->held)
		envelope_format_line(&b, "held", "1");
	if (env->warned)
		envelope_format_line(&b, "warned", "1");
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
	size_t i;

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

int
envelope_parse(const char *text, size_t len, struct envelope **out,
    struct sq_err *err)
{
	struct envelope *env;
	unsigned seen[ENVELOPE_KEY_COUNT] = { 0 };
	const char *line, *nl, *key, *val;
	size_t pos = 0, lineno = 0, linelen, keylen, vallen, i;
	enum envelope_key k;
	uint64_t num;
	int rc, ended = 0;

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
		for (i = 0; i < linelen; i++) {
			unsigned char c = (unsigned char)line[i];

			if (c < 0x20 || c == 0x7f) {
				rc = envelope_parse_fail(err, lineno,
				    c == '\r' ? "carriage return in line" :
				    "control character in line", NULL, 0);
				goto fail;
			}
		}
		if (lineno == 1) {
			if (linelen != strlen(ENVELOPE_MAGIC) ||
			    memcmp(line, ENVELOPE_MAGIC, linelen) != 0) {
				rc = envelope_parse_fail(err, lineno,
				    "not a sendq envelope (expected \""
				    ENVELOPE_MAGIC "\")", NULL, 0);
				goto fail;
			}
			continue;
		}
		key = line;
		val = memchr(line, ' ', linelen);
		if (val != NULL) {
			keylen = (size_t)(val - line);
			val++;
			vallen = linelen - keylen - 1;
		} else {
			keylen = linelen;
			val = line + linelen;
			vallen = 0;
		}
		for (k = 0; k < ENVELOPE_KEY_COUNT; k++)
			if (strlen(envelope_key_names[k]) == keylen &&
			    memcmp(envelope_key_names[k], key, keylen) == 0)
				break;
		if (k == ENVELOPE_KEY_COUNT) {
			rc = envelope_parse_fail(err, lineno, "unknown key",
			    key, keylen);
			goto fail;
		}
		if (k != ENVELOPE_KEY_RCPT && seen[k] > 0) {
			rc = envelope_parse_fail(err, lineno, "repeated key",
			    key, keylen);
			goto fail;
		}
		seen[k]++;
		switch (k) {
		case ENVELOPE_KEY_ID:
			if (!envelope_id_ok(val, vallen)) {
				rc = envelope_parse_fail(err, lineno,
				    "bad queue id", val, vallen);
				goto fail;
			}
			memcpy(env->id, val, vallen);
			env->id[vallen] = '\0';
			break;
		case ENVELOPE_KEY_CREATED:
		case ENVELOPE_KEY_NEXT_ATTEMPT:
			if (envelope_parse_uint(val, vallen, INT64_MAX,
			    &num) != 0) {
				rc = envelope_parse_fail(err, lineno,
				    "bad time", val, vallen);
				goto fail;
			}
			if (k == ENVELOPE_KEY_CREATED)
				env->created = (int64_t)num;
			else
				env->next_attempt = (int64_t)num;
			break;
		case ENVELOPE_KEY_UID:
			if (vallen == 2 && memcmp(val, "-1", 2) == 0)
				env->uid = -1;
			else if (envelope_parse_uint(val, vallen, LONG_MAX,
			    &num) == 0)
				env->uid = (long)num;
			else {
				rc = envelope_parse_fail(err, lineno,
				    "bad uid", val, vallen);
				goto fail;
			}
			break;
		case ENVELOPE_KEY_ATTEMPTS:
			if (envelope_parse_uint(val, vallen, UINT_MAX,
			    &num) != 0) {
				rc = envelope_parse_fail(err, lineno,
				    "bad attempt count", val, vallen);
				goto fail;
			}
			env->attempts = (unsigned)num;
			break;
		case ENVELOPE_KEY_SENDER:
			free(env->sender);
			env->sender = xstrndup(val, vallen);
			break;
		case ENVELOPE_KEY_RCPT:
			if (vallen == 0) {
				rc = envelope_parse_fail(err, lineno,
				    "empty recipient", NULL, 0);
				goto fail;
			}
			env->rcpts = xreallocarray(env->rcpts,
			    env->n_rcpts + 1, sizeof(*env->rcpts));
			env->rcpts[env->n_rcpts++] = xstrndup(val, vallen);
			break;
		case ENVELOPE_KEY_LAST_ERROR:
			env->last_error = xstrndup(val, vallen);
			break;
		case ENVELOPE_KEY_HELD:
		case ENVELOPE_KEY_WARNED:
			if (vallen != 1 || (val[0] != '0' && val[0] != '1')) {
				rc = envelope_parse_fail(err, lineno,
				    "bad flag (0 or 1)", val, vallen);
				goto fail;
			}
			if (k == ENVELOPE_KEY_HELD)
				env->held = val[0] == '1';
			else
				env->warned = val[0] == '1';
			break;
		case ENVELOPE_KEY_BODY:
			if (vallen == 4 && memcmp(val, "8bit", 4) == 0)
				env->body_8bit = 1;
			else if (!(vallen == 4 && memcmp(val, "7bit", 4) == 0)) {
				rc = envelope_parse_fail(err, lineno,
				    "bad body type (7bit or 8bit)", val,
				    vallen);
				goto fail;
			}
			break;
		case ENVELOPE_KEY_END:
			if (vallen != 0) {
				rc = envelope_parse_fail(err, lineno,
				    "value after end", NULL, 0);
				goto fail;
			}
			ended = 1;
			break;
		case ENVELOPE_KEY_COUNT:
			break;
		}
	}
	if (lineno == 0) {
		rc = sq_err_set(err, SQ_EPARSE, "envelope is empty");
		goto fail;
	}
	if (!ended) {
		rc = envelope_parse_fail(err, lineno,
		    "truncated (no end line)", NULL, 0);
		goto fail;
	}
	if (!seen[ENVELOPE_KEY_ID] || !seen[ENVELOPE_KEY_CREATED] ||
	    !seen[ENVELOPE_KEY_SENDER] || !seen[ENVELOPE_KEY_RCPT]) {
		rc = envelope_parse_fail(err, lineno,
		    !seen[ENVELOPE_KEY_ID] ? "missing key id" :
		    !seen[ENVELOPE_KEY_CREATED] ? "missing key created" :
		    !seen[ENVELOPE_KEY_SENDER] ? "missing key sender" :
		    "missing key rcpt (no recipients)", NULL, 0);
		goto fail;
	}
	*out = env;
	return 0;
fail:
	envelope_free(env);
	return rc;
}
