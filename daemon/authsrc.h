/*
 * authsrc.h - where sendqd's connections get their AUTH secret, without
 * ever blocking the loop: files are read directly, password_command and
 * token_command run through secret_cmd, and OAuth smarthosts get an access
 * token refreshed by the daemon (oauth core + oauth_http + oauth_store).
 *
 * Owns: per OAuth smarthost the refresh token (from STATE_DIR/oauth/NAME),
 * the cached access token, the refresh in flight (one per smarthost; the
 * connections that wait share it), the HELD state, the status file, and
 * an inotify watch on STATE_DIR/oauth/ so that a refresh token stored by
 * `sendqctl oauth init NAME` releases a held smarthost by itself.
 * May call: secret, secret_cmd, oauth, oauth_http, oauth_store, config,
 * util, log, libevent.
 *
 * Held: invalid_grant (revoked or expired grant), a client or scope error,
 * or no refresh token at all.  Logged at error priority once per change
 * of state, with the fix; authsrc_held() tells the scheduler to keep the
 * smarthost's mail (not tried, not bounced, not expired).
 */
#ifndef SENDQ_AUTHSRC_H
#define SENDQ_AUTHSRC_H

#include "config.h"
#include "secret.h"
#include "util.h"

struct event_base;
struct authsrc;
struct authsrc_req;
struct buf;

enum authsrc_kind {
	AUTHSRC_OK,
	AUTHSRC_TEMP,   /* timeout, endpoint down: defer, backoff */
	AUTHSRC_HELD,   /* OAuth grant refused: hold the relay */
	AUTHSRC_FAILED, /* unreadable secret, helper failed:
				 * the settings are wrong */
};

struct authsrc_result {
	enum authsrc_kind kind;
	struct secret    *secret;      /* OK: the receiver owns it */
	int               refreshable; /* OAuth: a refused token may
						 * be refreshed (force) */
	int               timed_out;   /* TEMP: a helper or the token
						 * endpoint ran out of time */
	char              msg[512];    /* not OK: why */
};

typedef void (*authsrc_cb)(struct authsrc_result *r, void *arg);

/* Set up for cfg (creating STATE_DIR/oauth when there is an OAuth
 * smarthost); on_change(arg) is called when a smarthost's held state
 * changes.  Returns 0 or a negative code with err. */
int  authsrc_new(struct event_base *base, const struct config *cfg,
     void (*on_change)(void *), void *arg, struct authsrc **out,
     struct sq_err *err);
void authsrc_free(struct authsrc *a);

/*
 * The secret of smarthost sh (of cfg): cb is called once, later, from the
 * loop, unless authsrc_cancel() comes first.  force: the server refused
 * the last OAuth token; refresh it even if it has not expired.
 */
struct authsrc_req *authsrc_get(struct authsrc *a,
    const struct config_smarthost *sh, int force, authsrc_cb cb, void *arg);
void                authsrc_cancel(struct authsrc_req *req);

/* Non-zero when smarthost index i is held; *why then says why. */
int authsrc_held(const struct authsrc *a, size_t i, const char **why);

/* The token state of smarthost index i (metrics): AUTHSRC_OAUTH_NONE
 * when it is not an OAuth smarthost; *expires: the access token's expiry
 * (epoch seconds, 0 none). */
#define AUTHSRC_OAUTH_NONE     0
#define AUTHSRC_OAUTH_VALID    1 /* an unexpired access token */
#define AUTHSRC_OAUTH_EXPIRED  2 /* none valid: refreshed when needed */
#define AUTHSRC_OAUTH_NO_TOKEN 3 /* no refresh token stored */
#define AUTHSRC_OAUTH_HELD     4 /* the grant was refused */
int authsrc_oauth_state(const struct authsrc *a, size_t i, int64_t *expires);

/*
 * The state of OAuth smarthost name for `sendqctl oauth status` through
 * the control socket (admin_group members cannot read STATE_DIR/oauth):
 * appended to out as key=value lines, the keys of NAME.status plus
 * refresh_token_stored (mtime of the token file, 0 none); no secret.
 * Returns 0, SQ_ENOTFOUND (no such OAuth smarthost) or buf's error.
 */
int authsrc_status(const struct authsrc *a, const char *name, struct buf *out,
    struct sq_err *err);

/*
 * Reload (scheduler_reconfigure): use cfg from now on (the same list of
 * smarthosts; the old cfg must outlive a, as requests in flight use it).
 * A smarthost whose OAuth settings changed forgets its access token,
 * reads its refresh token again and, if it has one, is no longer held.
 * state_dir changes at the next restart.
 */
void authsrc_reconfigure(struct authsrc *a, const struct config *cfg);

/* Re-read STATE_DIR/oauth/NAME (also done on inotify). */
void authsrc_reload(struct authsrc *a, const char *name);

#endif
