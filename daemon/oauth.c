/*
 * oauth.c - OAuth 2.0 answers and decisions (see oauth.h).
 *
 * How it works: json-c parses the whole answer (bounded by OAUTH_BODY_MAX)
 * into a tree; every member we use is checked for its type and copied
 * out, so the tree never outlives oauth_parse().  expires_in and interval
 * are accepted as JSON numbers or as decimal strings (some providers send
 * "3600").  Tokens must be visible ASCII (RFC 6749 A.12, A.17 VSCHAR
 * without space), because they end up in a SASL message and a file line;
 * the server's error texts are made printable.  Everything else is a pure
 * function of its arguments.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "log.h"
#include "oauth.h"
#include "util.h"

static void
oauth_wipe_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void
oauth_resp_fini(struct oauth_resp *r)
{
	if (r == NULL)
		return;
	oauth_wipe_free(r->access_token);
	oauth_wipe_free(r->refresh_token);
	oauth_wipe_free(r->device_code);
	free(r->error);
	free(r->error_description);
	free(r->user_code);
	free(r->verification_uri);
	free(r->verification_uri_complete);
	memset(r, 0, sizeof(*r));
	r->expires_in = r->interval = -1;
}

/* A token: 1..OAUTH_TOKEN_MAX bytes of 0x21-0x7e. */
static int
oauth_token_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > OAUTH_TOKEN_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* Member key of obj as a string: 0 and *out (NULL when absent), or -1
 * when it has another type. */
static int
oauth_get_string(struct json_object *obj, const char *key, int token,
    char **out, struct sq_err *err)
{
	struct json_object *v;
	const char         *s;
	size_t              len;
	char               *text;

	*out = NULL;
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return sq_err_set(err, SQ_EPARSE,
		    "token endpoint: \"%s\" is not a string", key);
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (token) {
		if (!oauth_token_ok(s, len))
			return sq_err_set(err, SQ_EPARSE,
			    "token endpoint: \"%s\" is empty, too long or has "
			    "bytes other than visible ASCII",
			    key);
		*out = xstrndup(s, len);
		return 0;
	}
	text = xmalloc(len < OAUTH_TEXT_MAX ? len + 1 : OAUTH_TEXT_MAX);
	sq_printable(text, len < OAUTH_TEXT_MAX ? len + 1 : OAUTH_TEXT_MAX, s,
	    len);
	*out = text;
	return 0;
}

/* Member key as a non-negative integer (number or decimal string), -1
 * when absent. */
static int
oauth_get_long(struct json_object *obj, const char *key, long *out,
    struct sq_err *err)
{
	struct json_object *v;
	const char         *s;
	char               *end;
	int64_t             n;
	long long           l;

	*out = -1;
	if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		n = json_object_get_int64(v);
		if (n < 0 || n > INT_MAX)
			return sq_err_set(err, SQ_EPARSE,
			    "token endpoint: \"%s\" out of range", key);
		*out = (long)n;
		return 0;
	}
	if (json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		errno = 0;
		l = strtoll(s, &end, 10);
		if (s[0] >= '0' && s[0] <= '9' && *end == '\0' && errno == 0 &&
		    l <= INT_MAX) {
			*out = (long)l;
			return 0;
		}
	}
	return sq_err_set(err, SQ_EPARSE,
	    "token endpoint: \"%s\" is not a non-negative integer", key);
}

int
oauth_parse(const char *body, size_t len, struct oauth_resp *out,
    struct sq_err *err)
{
	struct json_tokener    *tok;
	struct json_object     *obj;
	enum json_tokener_error jerr;
	int                     rc = 0;

	memset(out, 0, sizeof(*out));
	out->expires_in = out->interval = -1;
	if (len > OAUTH_BODY_MAX)
		return sq_err_set(err, SQ_ELIMIT,
		    "token endpoint: answer larger than %d bytes",
		    OAUTH_BODY_MAX);
	if (len == 0)
		return sq_err_set(err, SQ_EPARSE,
		    "token endpoint: empty answer");
	if ((tok = json_tokener_new()) == NULL)
		log_fatalx("oauth: json_tokener_new failed");
	obj = json_tokener_parse_ex(tok, body, (int)len);
	jerr = json_tokener_get_error(tok);
	if (obj != NULL && jerr == json_tokener_success &&
	    json_tokener_get_parse_end(tok) < len) {
		/* Trailing bytes: only white space may follow. */
		size_t i;

		for (i = json_tokener_get_parse_end(tok); i < len; i++)
			if (strchr(" \t\r\n", body[i]) == NULL ||
			    body[i] == '\0') {
				jerr = json_tokener_error_parse_unexpected;
				break;
			}
	}
	json_tokener_free(tok);
	if (obj == NULL || jerr != json_tokener_success) {
		json_object_put(obj);
		return sq_err_set(err, SQ_EPARSE,
		    "token endpoint: not JSON (%s)",
		    jerr != json_tokener_success ?
			json_tokener_error_desc(jerr) :
			"incomplete");
	}
	if (!json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		return sq_err_set(err, SQ_EPARSE,
		    "token endpoint: the answer is not a JSON object");
	}
	if (oauth_get_string(obj, "access_token", 1, &out->access_token, err) <
		0 ||
	    oauth_get_string(obj, "refresh_token", 1, &out->refresh_token,
		err) < 0 ||
	    oauth_get_string(obj, "device_code", 1, &out->device_code, err) <
		0 ||
	    oauth_get_string(obj, "error", 0, &out->error, err) < 0 ||
	    oauth_get_string(obj, "error_description", 0,
		&out->error_description, err) < 0 ||
	    oauth_get_string(obj, "user_code", 0, &out->user_code, err) < 0 ||
	    oauth_get_string(obj, "verification_uri", 0, &out->verification_uri,
		err) < 0 ||
	    oauth_get_string(obj, "verification_uri_complete", 0,
		&out->verification_uri_complete, err) < 0 ||
	    oauth_get_long(obj, "expires_in", &out->expires_in, err) < 0 ||
	    oauth_get_long(obj, "interval", &out->interval, err) < 0)
		rc = SQ_EPARSE;
	if (rc == 0 && out->verification_uri == NULL)
		rc = oauth_get_string(obj, "verification_url", 0,
		    &out->verification_uri, err);
	json_object_put(obj);
	if (rc != 0)
		oauth_resp_fini(out);
	return rc;
}

/* Errors of RFC 6749 5.2 that only a person can fix. */
static int
oauth_error_is_permanent(const char *e)
{
	static const char *const perm[] = { "invalid_grant", "invalid_client",
		"unauthorized_client", "unsupported_grant_type",
		"invalid_scope", "invalid_request" };
	size_t                   i;

	for (i = 0; i < sizeof(perm) / sizeof(perm[0]); i++)
		if (strcmp(e, perm[i]) == 0)
			return 1;
	return 0;
}

enum oauth_class
oauth_classify(int transport_ok, long status, const struct oauth_resp *r)
{
	if (!transport_ok || status >= 500 || status == 429 || status == 408)
		return OAUTH_TEMPFAIL;
	if (r == NULL)
		return OAUTH_TEMPFAIL;
	if (r->error != NULL) {
		if (strcmp(r->error, "authorization_pending") == 0)
			return OAUTH_PENDING;
		if (strcmp(r->error, "slow_down") == 0)
			return OAUTH_SLOW_DOWN;
		if (strcmp(r->error, "access_denied") == 0)
			return OAUTH_DENIED;
		if (strcmp(r->error, "expired_token") == 0)
			return OAUTH_EXPIRED;
		if (oauth_error_is_permanent(r->error))
			return OAUTH_HELD;
		return OAUTH_TEMPFAIL;
	}
	if (status >= 200 && status < 300 &&
	    (r->access_token != NULL || r->device_code != NULL))
		return OAUTH_OK;
	return OAUTH_TEMPFAIL;
}

const char *
oauth_class_name(enum oauth_class c)
{
	switch (c) {
	case OAUTH_OK:
		return "ok";
	case OAUTH_TEMPFAIL:
		return "temporary failure";
	case OAUTH_HELD:
		return "held";
	case OAUTH_PENDING:
		return "authorization_pending";
	case OAUTH_SLOW_DOWN:
		return "slow_down";
	case OAUTH_DENIED:
		return "access_denied";
	case OAUTH_EXPIRED:
		return "expired_token";
	}
	return "unknown";
}

void
oauth_cache_set(struct oauth_cache *c, int64_t now_ms, long expires_in)
{
	if (expires_in <= 0)
		expires_in = OAUTH_DEFAULT_LIFETIME;
	c->valid = 1;
	c->obtained = now_ms;
	c->expires = now_ms + (int64_t)expires_in * 1000;
}

enum oauth_need
oauth_need(const struct oauth_cache *c, int64_t now_ms, int force)
{
	int64_t margin;

	if (force || !c->valid)
		return OAUTH_NEED_NOW;
	margin = (c->expires - c->obtained) / 4;
	if (margin > OAUTH_MARGIN_MAX_MS)
		margin = OAUTH_MARGIN_MAX_MS;
	if (now_ms >= c->expires - margin || now_ms < c->obtained)
		return OAUTH_NEED_NOW; /* or the clock went back */
	if (now_ms >= c->expires - 2 * margin)
		return OAUTH_NEED_AHEAD;
	return OAUTH_NEED_NONE;
}

void
oauth_device_start(struct oauth_device *d, const struct oauth_resp *a,
    int64_t now_ms)
{
	long interval = a->interval > 0 ? a->interval : OAUTH_DEVICE_INTERVAL;
	long life = a->expires_in > 0 ? a->expires_in : 600;

	d->interval_ms = (int64_t)interval * 1000;
	d->deadline_ms = now_ms + (int64_t)life * 1000;
	d->next_ms = now_ms + d->interval_ms;
}

enum oauth_device_step
oauth_device_step(struct oauth_device *d, enum oauth_class c, int64_t now_ms)
{
	switch (c) {
	case OAUTH_OK:
		return OAUTH_DEVICE_DONE;
	case OAUTH_SLOW_DOWN:
		d->interval_ms += OAUTH_SLOW_DOWN_MS;
		/* FALLTHROUGH */
	case OAUTH_PENDING:
	case OAUTH_TEMPFAIL:
		if (now_ms >= d->deadline_ms)
			return OAUTH_DEVICE_FAILED;
		d->next_ms = now_ms + d->interval_ms;
		return OAUTH_DEVICE_WAIT;
	case OAUTH_HELD:
	case OAUTH_DENIED:
	case OAUTH_EXPIRED:
		break;
	}
	return OAUTH_DEVICE_FAILED;
}
