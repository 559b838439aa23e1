/*
 * queue_view.h - the queue as people and scripts see it: a read-only
 * listing of the spool (mailq, sendq -bp, sendqctl list/show, and the
 * daemon's control socket), as text or JSON.  Also the client side of the
 * control socket, shared by the two command-line tools.
 *
 * Owns: the listing formats (text and JSON; fields and states as
 * sendqctl(8) documents them; outside bytes made printable, JSON strings
 * RFC 8259 with invalid UTF-8 as U+FFFD), the control request/answer
 * exchange of the clients.
 * May call: spool (read-only: spool_open_queue, spool_list,
 * spool_load_envelope, spool_message_size, spool_open_message),
 * envelope, buf, util, libc sockets, fork/exec of sendq-showq.  Blocking
 * I/O only; nothing is changed on disk.
 *
 * DIAGNOSTICS: -errno / SQ_ENOTFOUND / SQ_ELIMIT with err naming the
 * spool path, the message or the socket.  A message that disappears
 * between listing and reading (delivered meanwhile) is skipped silently.
 */
#ifndef SENDQ_QUEUE_VIEW_H
#define SENDQ_QUEUE_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "util.h"

/* The json argument of list and sendq-showq: the output format.
 * QUEUE_VIEW_POSTFIX is the listing of Postfix's mailq (so parsers of it,
 * such as monitoring-plugins' check_mailq -M postfix, read sendq's):
 *   -Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *   ID[*!] SIZE Www Mmm dd hh:mm:ss  SENDER      (* active, ! held;
 *                                                 MAILER-DAEMON for <>)
 *   <41 spaces>(LAST REASON)
 *   <41 spaces>RECIPIENT ...
 *   (blank line)
 *   -- K Kbytes in N Requests.     or "Mail queue is empty" */
#define QUEUE_VIEW_TEXT    0
#define QUEUE_VIEW_JSON    1
#define QUEUE_VIEW_POSTFIX 2

/* A sensible maximum for the out buffer of list/show (and of a control
 * answer): large enough for a queue of several 100,000 messages. */
#define QUEUE_VIEW_OUT_MAX (256u * 1024 * 1024)
/* At most this much of a message's header block is shown. */
#define QUEUE_VIEW_HEADER_MAX (64 * 1024)
/* The longest control request line, without its LF. */
#define QUEUE_VIEW_REQUEST_MAX 1024
/* uid_filter of list/show: every message (root, sendqd's user,
 * admin_group); any other value shows only that uid's messages. */
#define QUEUE_VIEW_ALL_UIDS (-1L)

/*
 * Append the listing of every queued message under spool_dir whose
 * envelope uid is uid_filter (every message: QUEUE_VIEW_ALL_UIDS) to out
 * (initialised by the caller; its max bounds the output).  json selects
 * the format.  is_active(arg, id), when not NULL, tells which messages
 * are being delivered right now.  Returns 0; -errno with err when the
 * spool cannot be read (-ENOENT: spool_dir does not exist); SQ_ELIMIT
 * when out is full (out then holds a truncated listing).  Blocks on file
 * I/O.
 */
int queue_view_list(const char *spool_dir, long uid_filter, int json,
    int (*is_active)(void *, const char *), void *arg, struct buf *out,
    struct sq_err *err);

/*
 * Append everything about message id to out: the whole envelope (plus
 * size, age and state) and the message's header block (at most
 * QUEUE_VIEW_HEADER_MAX bytes).  Returns 0, SQ_ENOTFOUND with err for an
 * id that is not queued (or not a queue id), -errno, SQ_EPARSE or
 * SQ_ELIMIT with err.  With a uid_filter other than QUEUE_VIEW_ALL_UIDS,
 * a message of another uid, a missing one and one whose envelope cannot
 * be read all give the same SQ_ENOTFOUND and the same text, "no message
 * ID", so the answer tells nothing about other users' mail.  Blocks on
 * file I/O.
 */
int queue_view_show(const char *spool_dir, const char *id, long uid_filter,
    int json, int (*is_active)(void *, const char *), void *arg,
    struct buf *out, struct sq_err *err);

/* The same two on an open spool: sendqd's own (control.c), whose
 * listing includes the messages it holds in memory (spool.h,
 * spool_set_memory_age), which a reader of queue/ does not see yet. */
struct spool;
int queue_view_list_spool(struct spool *sp, long uid_filter, int json,
    int (*is_active)(void *, const char *), void *arg, struct buf *out,
    struct sq_err *err);
int queue_view_show_spool(struct spool *sp, const char *id, long uid_filter,
    int json, int (*is_active)(void *, const char *), void *arg,
    struct buf *out, struct sq_err *err);

/* An age as list shows it: "42s", "5m", "3h", "2d" (negative: "0s"). */
void queue_view_age(char *dst, size_t dstsz, long long secs);

/* Append s[0..len) to out as a JSON string, quotes included.  Returns 0
 * or SQ_ELIMIT. */
int queue_view_json_string(struct buf *out, const char *s, size_t len);

/*
 * Client side of the control socket (control.h): connect to path, send
 * request (one line, no LF; at most QUEUE_VIEW_REQUEST_MAX bytes) and
 * append the whole answer to out (bounded by out's max).  Waits at most
 * timeout_sec seconds for each read or write.  Returns 0 with the answer
 * in out (its first line is "ok" or "error: ..."); -ENOENT or
 * -ECONNREFUSED when no daemon listens there; -EACCES/-EPERM when the
 * caller may not use the socket; other -errno or SQ_ELIMIT; err always
 * says what happened.  Blocks.
 */
int queue_view_request(const char *path, const char *request,
    unsigned timeout_sec, struct buf *out, struct sq_err *err);

/*
 * Client side of the control socket's streaming submit (control.h):
 * connect to path, send "submit ENVLEN" and the env_len bytes of
 * env_text, then the msg_len bytes of msg as "data" frames of at most
 * 64 KiB, then "end", and put the first answer line (without LF,
 * NUL-terminated, at most answer_sz - 1 bytes) into answer: "ok ID" or
 * "error: CODE REASON".  When a write fails because sendqd closed (it
 * refused the message early), its answer is still read.  *sent_end tells
 * whether "end" went out (when there is no answer: 0 means sendqd cannot
 * have queued the message, 1 that it may have).  Waits at most
 * timeout_sec seconds for each read or write; never raises SIGPIPE.
 * Returns 0 with an answer; -ENOENT or -ECONNREFUSED when no daemon
 * listens, -EACCES/-EPERM when the caller may not connect (nothing was
 * sent in these cases); -EPIPE (closed without an answer), -ETIMEDOUT or
 * another -errno otherwise; err always says what happened.  Blocks.
 */
int queue_view_submit(const char *path, const char *env_text, size_t env_len,
    const char *msg, size_t msg_len, unsigned timeout_sec, char *answer,
    size_t answer_sz, int *sent_end, struct sq_err *err);

/*
 * The uid_filter for a client that reads spool_dir directly (sendqd is
 * down): QUEUE_VIEW_ALL_UIDS for root and the owner of spool_dir (the
 * daemon's user), else the caller's real uid.  Does not block.
 */
long queue_view_own_filter(const char *spool_dir);

/*
 * The path of the setgid queue lister sendq-showq (sendq_showq.c): the
 * compiled-in SENDQ_SHOWQ_HELPER, or SENDQ_SHOWQ_HELPER from the
 * environment when it is an absolute path (for tests: the caller runs
 * whatever it names with its own rights anyway).  Does not block.
 */
const char *queue_view_showq_path(void);

/*
 * For a client that cannot read the spool while sendqd is down: run
 * sendq-showq (with --json when json is set) with no other argument and
 * an empty environment, its standard error the caller's, and append what
 * it prints on standard output to out.  Returns 0 with its exit status in
 * *exit_code (0: out holds the caller's own messages, the same listing
 * as queue_view_list with uid_filter = the real uid; else it printed why
 * on standard error); -ENOENT when it cannot be run (not installed);
 * SQ_ELIMIT when its output is larger than out's max; another -errno
 * (-EIO: killed by a signal).  err always says what happened.  Blocks
 * until the helper exits.
 */
int
queue_view_showq(int json, struct buf *out, int *exit_code, struct sq_err *err);

/* Non-zero when a daemon accepts connections on the control socket at
 * path (a quick probe, nothing is sent). */
int queue_view_daemon_up(const char *path);

/* t (seconds since the epoch) as "2026-01-01T12:00:00Z" into dst, or as
 * the plain number when it has no such date. */
void queue_view_time(char *dst, size_t dstsz, int64_t t);

#endif
