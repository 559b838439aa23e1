/*
 * control.h - the control socket of sendqd: a unix stream socket (mode
 * 0666: every local user may connect; every request is checked against
 * the caller's SO_PEERCRED credentials) that sendqctl and sendq talk to.
 *
 * Protocol: the client sends one request line "COMMAND [ARG] [--json]\n";
 * the server answers with the output text and closes the connection.  The
 * first line of the answer is "ok" or "error: REASON"; the rest is the
 * output, already formatted (text or JSON) for the client to print.
 *
 * Commands: status, list, show ID, flush, retry ID, hold ID, release ID,
 * delete ID, bounce ID, submit ENVLEN (streaming, below).
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
 * (larger than [intake] max_message_size) to exit 65, 5.7.1 (the caller
 * may not submit) to exit 77, anything else to exit 75.  The daemon may
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
 * connection, timeout), the command table.
 * May call: queue_view (list/show formatting), spool (read; writer and
 * spool_commit_group for submit), submit_proto, envelope, util, log,
 * libevent.
 */
#ifndef SENDQ_CONTROL_H
#define SENDQ_CONTROL_H

#include <stdint.h>

#include "buf.h"
#include "util.h"

/* The size limit of a submitted message until control_set_submit_limits
 * says otherwise (the default of [intake] max_message_size). */
#define CONTROL_SUBMIT_SIZE_DEFAULT	((uint64_t)25 * 1024 * 1024)

struct event_base;
struct control;

/* What the scheduler does for the control socket.  Each returns 0, or a
 * negative code with err (e.g. SQ_ENOTFOUND "no message ID").  out gets
 * text to show (status); json selects the output format. */
struct control_ops {
	int	(*status)(void *arg, int json, struct buf *out,
		    struct sq_err *err);
	int	(*flush)(void *arg, struct sq_err *err);
	int	(*retry)(void *arg, const char *id, struct sq_err *err);
	int	(*hold)(void *arg, const char *id, struct sq_err *err);
	int	(*release)(void *arg, const char *id, struct sq_err *err);
	int	(*remove)(void *arg, const char *id, struct sq_err *err);
	int	(*bounce)(void *arg, const char *id, struct sq_err *err);
	/* list/show read the spool: the scheduler only says which message
	 * is being delivered right now (state "active"). */
	int	(*is_active)(void *arg, const char *id);
	void	*arg;
};

/* Listen on path (replacing a stale socket file).  spool_dir is used for
 * list/show.  Returns 0 and *out, or -errno with err. */
int	control_new(struct event_base *base, const char *path,
	    const char *spool_dir, const struct control_ops *ops,
	    struct control **out, struct sq_err *err);
/* The limits of submit: max_size bytes of message (0: the default),
 * max_rcpts recipients (0: no limit); [intake] max_message_size and
 * max_recipients. */
void	control_set_submit_limits(struct control *c, uint64_t max_size,
	    unsigned max_rcpts);
/* Stop listening, close clients, remove the socket file; NULL accepted. */
void	control_free(struct control *c);

#endif
