/*
 * control.h - the control socket of sendqd: a unix stream socket (mode
 * 0660, group of the spool directory's owner, i.e. root and the sendq
 * group) that sendqctl talks to.
 *
 * Protocol: the client sends one request line "COMMAND [ARG] [--json]\n";
 * the server answers with the output text and closes the connection.  The
 * first line of the answer is "ok" or "error: REASON"; the rest is the
 * output, already formatted (text or JSON) for the client to print.
 *
 * Commands: status, list, show ID, flush, retry ID, hold ID, release ID,
 * delete ID, bounce ID, submit ID LEN.
 *
 * submit (used by sendq when sendqd runs): the line "submit ID LEN" is
 * followed by exactly LEN bytes (1 to CONTROL_SUBMIT_MAX) of envelope
 * text (envelope.h) for the message the client has written as tmp/ID.msg
 * and keeps open and locked (spool_writer_prepare).  sendqd commits the
 * submits that arrive together as one group (spool_adopt_commit_group:
 * one syncfs, one fsync of queue/) and answers "ok ID\n" once the message
 * is durable, or "error: REASON\n" (the client then removes its file).
 * A connection closed without an answer tells the client nothing: it may
 * commit the message itself (its file is still in tmp/) or give up.  The daemon side is a table of handlers (tmux's
 * cmd_entry shape) that call into the scheduler through struct
 * control_ops.
 *
 * Owns: the socket, request parsing (bounded line, one request per
 * connection, timeout), the command table.
 * May call: queue_view (list/show formatting), spool (read; and
 * spool_adopt_commit_group for submit), envelope, util, log, libevent.
 */
#ifndef SENDQ_CONTROL_H
#define SENDQ_CONTROL_H

#include "buf.h"
#include "util.h"

/* The largest envelope a submit may carry. */
#define CONTROL_SUBMIT_MAX	(1024u * 1024)

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
	/* reload (main's, not the scheduler's): read the configuration
	 * again as SIGHUP does; 0, or a negative code with err saying why
	 * it was refused (FILE:LINE for a bad file).  NULL: not offered. */
	int	(*reload)(void *reload_arg, struct sq_err *err);
	void	*reload_arg;
};

/* Listen on path (replacing a stale socket file).  spool_dir is used for
 * list/show.  Returns 0 and *out, or -errno with err. */
int	control_new(struct event_base *base, const char *path,
	    const char *spool_dir, const struct control_ops *ops,
	    struct control **out, struct sq_err *err);
/* Stop listening, close clients, remove the socket file; NULL accepted. */
void	control_free(struct control *c);

#endif
