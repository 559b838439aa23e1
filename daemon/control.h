/*
 * control.h - the control socket of sendqd: a unix stream socket (mode
 * 0666: every local user may connect) that sendqctl, mailq and sendq
 * talk to.  Every request is checked against the caller's credentials
 * as the kernel gave them at connect time (SO_PEERCRED, SO_PEERGROUPS).
 *
 * Protocol: the client sends one request line "COMMAND [ARG] [--json]\n"
 * ("list --postfix": the listing in Postfix's mailq format, for mailq;
 * queue_view.h QUEUE_VIEW_POSTFIX);
 * the server answers with the output text and closes the connection.  The
 * first line of the answer is "ok" or "error: REASON"; the rest is the
 * output, already formatted (text or JSON) for the client to print.  A
 * request the caller has no right to is answered
 * "error: permission denied: WHY" (clients exit 77, EX_NOPERM).
 *
 * Commands: status, list, show ID, flush, retry ID, hold ID, release ID,
 * delete ID, bounce ID, oauth-status NAME, reload, select ACTION WORDS,
 * whoami, submit ENVLEN (streaming, below).
 *
 * whoami: "ok", then the login name of the caller's uid (getpwuid_r of
 * the SO_PEERCRED uid) on one line; "error: no user name for uid N"
 * when there is none, "error: busy ..." when too many lookups are under
 * way.  The lookup runs on a thread of its own, never on the event loop
 * (NSS may block: LDAP).  sendq asks it for its default sender, so that
 * sendq itself makes no NSS lookup (it can be a static binary: NSS in a
 * static glibc loads the installed glibc's modules); when sendqd is
 * down or busy the setgid helper answers instead (sendq-drop
 * --login-name).
 *
 * select ACTION [all] [from=ADDR] [to=ADDR] [relay=NAME] [older=SECONDS]
 * [dry-run]: ACTION (delete, hold, release, bounce) on every queued
 * message the selection takes (the words combine with AND; all alone:
 * every message; ADDR "@DOMAIN" takes any address at DOMAIN, "<>" the
 * null sender; relay: the smarthost the scheduler routed it to; older:
 * queued longer than SECONDS).  The answer is one line per message, "ID:
 * deleted" (or held, released, bounced; "selected" with dry-run; "busy:
 * WHY" when it is being delivered right now; "error: WHY"), then "N of M
 * selected messages deleted" (JSON: {"messages":[{"id","result",
 * "error"}],"action","dry_run","selected","done"}).  Each message acted
 * on is logged as "control command=ACTION msgid=ID uid=N ...".
 *
 * Rights (control_right_allows): "privileged" is root, sendqd's own
 * effective uid, or a caller whose primary or supplementary groups (as
 * the kernel knew them when it connected) include [sendq] admin_group.
 *  - whoami: everyone (the answer is about the caller alone).
 *  - list, show: everyone; a caller who is not privileged sees only the
 *    messages whose envelope uid is its own, and another user's message
 *    is answered exactly like a missing one (no existence oracle).
 *  - status: privileged only (its smarthost errors quote server replies,
 *    which can name other users' recipients).
 *  - oauth-status NAME (sendqctl oauth status for admin_group members,
 *    who cannot read STATE_DIR/oauth): privileged only.
 *  - flush, retry, hold, release, delete, bounce, select: privileged
 *    only; each
 *    is logged with the acting uid (every request is: "control
 *    command=NAME msgid=ID uid=N pid=N result=ok|error|denied").
 *  - submit: everyone, unless [sendq] submit_users or submit_groups is
 *    set: then root, sendqd's user, the users listed and members of the
 *    groups listed only (control_may_submit).
 *
 * submit (used by sendq when sendqd runs; framing in submit_proto.h):
 *
 *   C: submit ENVLEN LF  + ENVLEN bytes of envelope text (envelope.h)
 *   C: data LEN LF       + LEN bytes of the message (LEN <= 64 KiB),
 *                          as many frames as needed
 *   C: end LF
 *   S: ok ID LF          once the message is durable in queue/
 *   S: error: CODE REASON LF   at any point; nothing is queued
 *
 * The client never names the message: sendqd makes the spool files
 * (spool_writer_begin) and the queue id, and writes each chunk as it
 * arrives (at most one frame is buffered per client).  Of the envelope
 * it keeps sender, recipients and DSN parameters; the id, uid and
 * arrival time are the daemon's (uid from SO_PEERCRED, taken at accept),
 * and any delivery state (attempts, next, error, held, warned) is
 * refused.  CODE is an RFC 3463 enhanced status code; sendq maps 5.3.4
 * (larger than [intake] max_message_size) and 5.6.0 (a NUL byte, or a
 * line over 998 octets that cannot be re-encoded: msgfix.h) to exit 65,
 * 5.7.1 (the caller may not submit) to exit 77, anything else (4.3.1:
 * the free-space reserve or a per-uid limit) to exit 75.  The daemon may
 * answer an error before "end" and close; the client then sees its
 * writes fail and reads the answer.  A connection that ends before
 * "end" aborts the message (nothing left in tmp/).  Submits that reach
 * "end" together are committed as one group (spool_commit_group: one
 * syncfs, one fsync of queue/).  The daemon answers "ok" only after the
 * commit; if the client sees no answer, the message may or may not be
 * queued (sendq then uses the maildrop: a possible duplicate, never a
 * loss).  The read timeout between frames is 60 s; the client sends a
 * message it already holds, so it never waits on its own input.
 *
 * The daemon side is a table of handlers (tmux's cmd_entry shape) that
 * call into the scheduler through struct control_ops.
 *
 * Owns: the socket, request parsing (bounded line, one request per
 * connection, timeout), the command table and the right each command
 * needs, the caller's credentials.
 * May call: queue_view (list/show formatting), spool (read; writer and
 * spool_commit_group for submit), submit_proto, envelope, util, log,
 * libevent, getpwnam/getgrnam once at start (control_rights_new), and
 * getpwuid_r for whoami (on a detached thread per request, at most
 * CONTROL_WHOAMI_MAX at a time).
 */
#ifndef SENDQ_CONTROL_H
#define SENDQ_CONTROL_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "util.h"

/* The size limit of a submitted message until control_set_submit_limits
 * says otherwise (the default of [intake] max_message_size). */
#define CONTROL_SUBMIT_SIZE_DEFAULT ((uint64_t)25 * 1024 * 1024)
/* whoami lookups running at once (a thread each); past that the answer
 * is "error: busy ..." and sendq asks its drop helper. */
#define CONTROL_WHOAMI_MAX 16
struct config;

struct event_base;
struct control;

/* What the scheduler does for the control socket.  Each returns 0, or a
 * negative code with err (e.g. SQ_ENOTFOUND "no message ID").  out gets
 * text to show (status); json selects the output format. */
struct control_ops {
	int (*status)(void *arg, int json, struct buf *out, struct sq_err *err);
	int (*flush)(void *arg, struct sq_err *err);
	int (*retry)(void *arg, const char *id, struct sq_err *err);
	int (*hold)(void *arg, const char *id, struct sq_err *err);
	int (*release)(void *arg, const char *id, struct sq_err *err);
	int (*remove)(void *arg, const char *id, struct sq_err *err);
	int (*bounce)(void *arg, const char *id, struct sq_err *err);
	/* oauth-status NAME: the OAuth state of smarthost name as key=value
	 * lines (authsrc_status). */
	int (*oauth_status)(void *arg, const char *name, struct buf *out,
	    struct sq_err *err);
	/* list/show read the spool: the scheduler only says which message
	 * is being delivered right now (state "active"). */
	int (*is_active)(void *arg, const char *id);
	/* select relay=NAME: the smarthost message id is routed to (NULL:
	 * not queued). */
	const char *(*relay_of)(void *arg, const char *id);
	void *arg;
	/* reload (main's, not the scheduler's): read the configuration
	 * again as SIGHUP does; 0, or a negative code with err saying why
	 * it was refused (FILE:LINE for a bad file).  NULL: not offered. */
	int (*reload)(void *reload_arg, struct sq_err *err);
	void *reload_arg;
};

/* The right a control command needs. */
enum control_right {
	CONTROL_RIGHT_READ,     /* list, show: own messages (all when
				 * privileged) */
	CONTROL_RIGHT_READ_ALL, /* status, and list/show of every message */
	CONTROL_RIGHT_ADMIN,    /* flush retry hold release delete bounce
				 * oauth-status */
	CONTROL_RIGHT_SUBMIT,   /* submit */
};

/* What is known about a caller: the kernel's credentials and what the
 * configured rights make of them (computed once, at accept). */
struct control_facts {
	long uid;               /* SO_PEERCRED; -1 = unknown (never allowed) */
	long daemon_uid;        /* sendqd's effective uid */
	int  admin_member;      /* admin_group is set and is the caller's
				 * gid or one of its supplementary groups */
	int  submit_restricted; /* submit_users or submit_groups is set */
	int  submit_listed;     /* the uid is in submit_users, or a group of
				 * the caller is in submit_groups */
};

/*
 * The rights table as a pure function: non-zero when a caller with facts
 * f may use a command that needs right.  Pure (no I/O); never blocks.
 */
int
control_right_allows(enum control_right right, const struct control_facts *f);

/* [sendq] admin_group, submit_users and submit_groups resolved to ids. */
struct control_rights;

/*
 * Resolve the names of cfg's rights keys with getgrnam/getpwnam (once,
 * at start: requests never consult NSS).  Returns 0 and *out (free with
 * control_rights_free), or SQ_ECONFIG with err "FILE:LINE: [sendq] KEY:
 * no group named \"NAME\"" (or no user), or -errno when the lookup
 * itself failed.  May block on NSS.
 */
int control_rights_new(const struct config *cfg, struct control_rights **out,
    struct sq_err *err);
/* NULL accepted. */
void control_rights_free(struct control_rights *r);

/* Listen on path (replacing a stale socket file).  spool_dir is used for
 * list/show.  Returns 0 and *out, or -errno with err. */
int
control_new(struct event_base *base, const char *path, const char *spool_dir,
    const struct control_ops *ops, struct control **out, struct sq_err *err);
/* The limits of submit: max_size bytes of message (0: the default),
 * max_rcpts recipients (0: no limit); [intake] max_message_size and
 * max_recipients. */
void control_set_submit_limits(struct control *c, uint64_t max_size,
    unsigned max_rcpts);
/* Use rights (ownership passes to c; the previous ones are freed) for
 * the connections accepted from now on.  Without a call: no admin_group,
 * everyone may submit. */
void control_set_rights(struct control *c, struct control_rights *rights);
/*
 * The guards on new mail for a submission by uid (the SO_PEERCRED uid) of
 * about incoming bytes (0 when not known, or when the bytes are already
 * in the spool): the free-space reserve (spool_space_ok) and the per-uid
 * limits (quota_admit, counting uid's submits waiting for the group
 * commit).  The submit path calls it before it queues and answers a
 * failure "error: REASON (message not queued)", which sendq turns into
 * exit 75.  0, or -ENOSPC / -EDQUOT / -errno with err.
 */
int control_admit(struct control *c, long uid, uint64_t incoming,
    struct sq_err *err);

/* Submit into sp, the daemon's own spool (its commit thread started with
 * spool_async_start() and dispatched by its owner), instead of a spool of
 * the control socket's own: sendq's messages join the listener's commit
 * groups, and one commit thread serves both.  The owner stops sp's
 * commits (spool_async_stop) before control_free() and closes sp after.
 * Call before the loop runs. */
struct spool;
void control_share_spool(struct control *c, struct spool *sp);

/* The guards control_admit() applies: the per-uid limits and the way to
 * the queue index's counts (q, copied; after each committed submit
 * quota_queued() tells the index) and the free-space reserve of the
 * spool the control socket writes to ([queue] min_free_space).  NULL
 * accepted for c and q. */
struct quota;
void control_set_guards(struct control *c, const struct quota *q,
    uint64_t min_free_space);

/* Stop listening, close clients, remove the socket file; NULL accepted. */
void control_free(struct control *c);

#endif
