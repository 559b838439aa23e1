/*
 * oauth.h - the decisions of OAuth 2.0 for SMTP, without I/O: parsing the
 * token endpoint's and the device endpoint's JSON answers (RFC 6749 5.1,
 * 5.2; RFC 8628 3.2, 3.5), when a cached access token is used or
 * refreshed, the device-flow poll schedule, and what a failure means
 * (try again later, or hold the relay until someone re-authorises).
 *
 * Owns: struct oauth_resp, the refresh margin, the classification.
 * May call: json-c, util (never: sockets, clock, files).  Time is passed
 * in as milliseconds of any monotonic or wall clock (the caller's).
 *
 * DIAGNOSTICS: oauth_parse() fills err with "token endpoint: ..." text that
 * never contains a token; error and error_description from the server are
 * kept printable.
 */
#ifndef SENDQ_OAUTH_H
#define SENDQ_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define OAUTH_BODY_MAX         (64 * 1024)  /* answer bytes parsed */
#define OAUTH_TOKEN_MAX        16384        /* = SECRET_MAX */
#define OAUTH_TEXT_MAX         512          /* error, uri, user code */
#define OAUTH_DEFAULT_LIFETIME 300          /* s, when expires_in lacks */
#define OAUTH_MARGIN_MAX_MS    (120 * 1000) /* see oauth_need() */
#define OAUTH_DEVICE_INTERVAL  5            /* s, RFC 8628 3.2 default */
#define OAUTH_SLOW_DOWN_MS     5000         /* RFC 8628 3.5 */

/* One answer of the token or device endpoint.  Strings are NULL when
 * absent; numbers -1.  Free with oauth_resp_fini(); tokens are wiped. */
struct oauth_resp {
	char *access_token;      /* 0x21-0x7e only */
	char *refresh_token;     /* rotated one, or NULL */
	long  expires_in;        /* seconds */
	char *error;             /* "invalid_grant", printable */
	char *error_description; /* printable */
	long  interval;          /* device flow: seconds */
	/* Device authorization answer (RFC 8628 3.2). */
	char *device_code;
	char *user_code;
	char *verification_uri; /* or Google's verification_url */
	char *verification_uri_complete;
};

/*
 * Parse body (len bytes, not NUL-terminated) into *out (zeroed first).
 * Returns 0 when it is a JSON object (whatever its members), SQ_EPARSE
 * or SQ_ELIMIT otherwise (with err); out then holds nothing.  Members of
 * the wrong type, or tokens with bytes outside 0x21-0x7e or longer than
 * OAUTH_TOKEN_MAX, are an error (SQ_EPARSE): never used half-way.
 */
int  oauth_parse(const char *body, size_t len, struct oauth_resp *out,
     struct sq_err *err);
void oauth_resp_fini(struct oauth_resp *r);

/* What a token request's result means. */
enum oauth_class {
	OAUTH_OK,       /* access_token present */
	OAUTH_TEMPFAIL, /* network, timeout, 5xx, 429, garbage:
				 * try again after a backoff */
	OAUTH_HELD,     /* invalid_grant (revoked or expired refresh
				 * token) or a client/scope error that only
				 * a person can fix: hold the relay */
	/* Device flow only (RFC 8628 3.5): */
	OAUTH_PENDING,   /* authorization_pending: poll again */
	OAUTH_SLOW_DOWN, /* slow_down: poll again, 5 s slower */
	OAUTH_DENIED,    /* access_denied */
	OAUTH_EXPIRED,   /* expired_token: start again */
};

/*
 * Classify a finished request.  transport_ok: the HTTP exchange completed
 * (no connect/TLS/timeout error); status: the HTTP status; r: the parsed
 * body or NULL when it did not parse.  A 2xx without access_token (and
 * without device_code, for a device authorization request) is TEMPFAIL.
 */
enum oauth_class
oauth_classify(int transport_ok, long status, const struct oauth_resp *r);
const char *oauth_class_name(enum oauth_class c);

/* The cached access token's times (ms). */
struct oauth_cache {
	int     valid;    /* an access token is held */
	int64_t obtained; /* when it was received */
	int64_t expires;  /* obtained + expires_in */
};

enum oauth_need {
	OAUTH_NEED_NONE,  /* use the cached token */
	OAUTH_NEED_AHEAD, /* use it, and refresh in the background */
	OAUTH_NEED_NOW,   /* none usable: refresh and wait */
};

/*
 * The cached token is used until a margin before it expires: a quarter of
 * its lifetime, at most OAUTH_MARGIN_MAX_MS, so that a token handed to a
 * connection is still valid when the server checks it.  During the margin
 * before that (the lifetime's second-to-last quarter at most) it is still
 * used, and a refresh starts ahead of time.  force: the server refused the
 * token (334 error challenge, 535): NOW.
 */
enum oauth_need
oauth_need(const struct oauth_cache *c, int64_t now_ms, int force);
/* Record a token received at now_ms valid for expires_in s (<= 0: the
 * default lifetime). */
void oauth_cache_set(struct oauth_cache *c, int64_t now_ms, long expires_in);

/* Device authorization grant poll state (RFC 8628 3.4, 3.5). */
struct oauth_device {
	int64_t interval_ms;
	int64_t deadline_ms; /* the device code expires */
	int64_t next_ms;     /* the next poll */
};

enum oauth_device_step {
	OAUTH_DEVICE_WAIT,   /* poll again at next_ms */
	OAUTH_DEVICE_DONE,   /* the token answer has the tokens */
	OAUTH_DEVICE_FAILED, /* denied, expired, or any other error */
};

/* Start polling after the device authorization answer a at now_ms. */
void oauth_device_start(struct oauth_device *d, const struct oauth_resp *a,
    int64_t now_ms);
/* The result of one poll, classified; now_ms: when it came. */
enum oauth_device_step
oauth_device_step(struct oauth_device *d, enum oauth_class c, int64_t now_ms);

#endif
