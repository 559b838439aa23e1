/*
 * submit_proto.c - frame headers of the streaming submit (grammar and
 * limits: submit_proto.h).
 *
 * How it works: the header line is looked for within the first
 * SUBMIT_PROTO_LINE_MAX bytes; its word picks the frame type, its number
 * is read digit by digit with the type's bound, so no overflow and no
 * strtoul locale or whitespace rules apply.
 */
#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "mailmsg.h"
#include "submit_proto.h"
#include "util.h"

static int
submit_proto_bad(const char *buf, size_t len, struct sq_err *err)
{
	char safe[2 * SUBMIT_PROTO_LINE_MAX + 8];

	sq_printable(safe, sizeof(safe), buf, len);
	return sq_err_set(err, SQ_EPARSE,
	    "bad submit frame \"%s\" (expected \"submit ENVLEN\", \"data LEN\" "
	    "or \"end\")",
	    safe);
}

/* Decimal s[0..n) without sign or leading zero, 1..max.  0 or -1. */
static int
submit_proto_number(const char *s, size_t n, size_t max, size_t *out)
{
	size_t i, v = 0;

	if (n == 0 || (s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

int
submit_proto_parse(const char *buf, size_t len, struct submit_proto_hdr *h,
    struct sq_err *err)
{
	const char *nl;
	size_t      n, max;

	n = len < SUBMIT_PROTO_LINE_MAX ? len : SUBMIT_PROTO_LINE_MAX;
	if ((nl = memchr(buf, '\n', n)) == NULL) {
		if (len < SUBMIT_PROTO_LINE_MAX)
			return 0;
		return submit_proto_bad(buf, n, err);
	}
	n = (size_t)(nl - buf);
	memset(h, 0, sizeof(*h));
	h->hdr_len = n + 1;
	if (n == 3 && memcmp(buf, "end", 3) == 0) {
		h->type = SUBMIT_PROTO_END;
		return 1;
	}
	if (n > 5 && memcmp(buf, "data ", 5) == 0) {
		h->type = SUBMIT_PROTO_DATA;
		max = SUBMIT_PROTO_CHUNK_MAX;
		buf += 5;
		n -= 5;
	} else if (n > 7 && memcmp(buf, "submit ", 7) == 0) {
		h->type = SUBMIT_PROTO_SUBMIT;
		max = SUBMIT_PROTO_ENV_MAX;
		buf += 7;
		n -= 7;
	} else
		return submit_proto_bad(buf, n, err);
	if (submit_proto_number(buf, n, max, &h->len) != 0)
		return sq_err_set(err, SQ_EPARSE,
		    "bad submit frame: the length must be 1 to %zu", max);
	return 1;
}

int
submit_proto_format(char *out, size_t outsz, enum submit_proto_frame type,
    size_t len)
{
	int n;

	switch (type) {
	case SUBMIT_PROTO_END:
		n = snprintf(out, outsz, "end\n");
		break;
	case SUBMIT_PROTO_DATA:
		if (len == 0 || len > SUBMIT_PROTO_CHUNK_MAX)
			return SQ_ELIMIT;
		n = snprintf(out, outsz, "data %zu\n", len);
		break;
	case SUBMIT_PROTO_SUBMIT:
		if (len == 0 || len > SUBMIT_PROTO_ENV_MAX)
			return SQ_ELIMIT;
		n = snprintf(out, outsz, "submit %zu\n", len);
		break;
	default:
		return SQ_ELIMIT;
	}
	if (n < 0 || (size_t)n >= outsz)
		return SQ_ELIMIT;
	return n;
}

int
submit_proto_check_envelope(const struct envelope *env, size_t max_rcpts,
    struct sq_err *err)
{
	struct sq_err aerr = { 0 };
	size_t        i;

	if (env->attempts != 0 || env->next_attempt != 0 ||
	    env->last_error != NULL || env->held || env->warned)
		return sq_err_set(err, SQ_EPARSE,
		    "the envelope of a new message carries no delivery state "
		    "(attempts, next, error, held, warned)");
	if (env->sender[0] != '\0' &&
	    mailmsg_addr_valid(env->sender, 0, &aerr) != 0)
		return sq_err_set(err, SQ_EPARSE, "sender: %s", aerr.msg);
	if (env->n_rcpts == 0)
		return sq_err_set(err, SQ_EPARSE,
		    "the envelope has no recipient");
	if (max_rcpts != 0 && env->n_rcpts > max_rcpts)
		return sq_err_set(err, SQ_EPARSE,
		    "too many recipients (%zu, at most %zu: [intake] "
		    "max_recipients)",
		    env->n_rcpts, max_rcpts);
	for (i = 0; i < env->n_rcpts; i++)
		if (mailmsg_addr_valid(env->rcpts[i], 0, &aerr) != 0)
			return sq_err_set(err, SQ_EPARSE, "recipient: %s",
			    aerr.msg);
	return 0;
}
