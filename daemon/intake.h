/*
 * intake.h - the SMTP listener for local programs: [intake] listen =
 * 127.0.0.1:PORT, [::1]:PORT, unix:PATH, or the sockets systemd hands
 * over (socket activation, LISTEN_PID/LISTEN_FDS, read by sd_listen_fds(3)
 * in service.h).  One session per connection drives intake_proto; a
 * message is answered 250 only once it is durable in the spool.
 *
 * Sessions: a TCP client whose address is neither loopback nor in
 * allow_networks is greeted 554 5.7.1 (then only QUIT works); unix socket
 * clients are always served and identified by SO_PEERCRED.  Beyond
 * max_clients a new client gets 421 4.3.2 and is closed; beyond
 * max_clients_per_peer sessions of the same peer (one uid on a unix
 * socket, one address over TCP; counted by a scan of the sessions at
 * accept) it gets 421 4.7.0 and is closed.  Each session has one timer
 * ([intake] timeout) that runs while it waits for client bytes, restarted
 * only when the session makes progress (intake_proto_progress(): not by
 * junk commands, not by a partial line); when it fires the client gets
 * 421 4.4.2 and is closed.  The junk command limit (max_junk_commands)
 * is intake_proto's.
 *
 * Guards on new mail, checked at DATA (with SIZE= when given) and again
 * at the final dot (with the real size): the spool's free-space reserve
 * (spool_space_ok) and the per-uid limits (quota_admit, counting the
 * same uid's messages waiting for the group commit).  A refusal is 452
 * 4.3.1 with the reason (a limit's text names the key), logged as
 * "intake result=nospace|overquota".  After each commit the message is
 * handed to the queue index (quota_queued) so the next check counts it.
 *
 * Messages: at DATA a spool writer is opened (spool_writer_begin; if that
 * fails, DATA is answered 452 4.3.1), a Received: field is written, then
 * the body as intake_proto hands it over (LF line endings, see
 * intake_proto.h) through msgfix (msgfix.h), which adds Date and
 * Message-ID at the end of the header when missing.  At the final dot
 * msgfix's verdict is applied: content the wire cannot carry is answered
 * 554 5.6.0 with the reason (nothing queued), a message that must be
 * re-encoded is rewritten in its spool writer first (blocking, once per
 * such message).  At the final dot the session waits (reading nothing
 * more) while every message completed in the same turn of the event loop
 * is made durable by one spool_commit_group() (shared syncs), then each
 * gets 250 2.0.0 "Ok: queued as ID", or 452 4.3.1 when the spool cannot
 * take it (ENOSPC, EDQUOT, EROFS, EACCES, EPERM, EMFILE, ENFILE) or 451
 * 4.3.0 for other errors; a failed message leaves nothing in the spool
 * (the writer removes its tmp/ files) and touches nothing queued before.
 * The group commit blocks the event loop for its syncs, once per batch.
 * The scheduler finds new messages through its own watch on queue/.
 *
 * Envelope: sender, recipients, created (now) and uid (SO_PEERCRED uid
 * for a unix socket client, -1 for TCP).  The DSN parameters (RET, ENVID,
 * NOTIFY, ORCPT) are validated and kept in struct intake_proto_txn but
 * struct envelope has no fields for them yet: they are logged (debug,
 * "intake dsn" line) and dropped.  To keep them, add fields to
 * envelope.h and fill them in intake_on_commit() from
 * intake_proto_txn().
 *
 * Owns: the listening sockets (and the unix socket files it created,
 * removed at free), the sessions, their spool writers until commit.
 * May call: intake_proto, msgfix, mailmsg, spool, envelope, config, util,
 * log, libevent.
 *
 * DIAGNOSTICS: intake_new() fails with -errno and err naming the
 * address for a socket that cannot be made (address in use, no such
 * directory, permission).  Per message one info line
 *   intake msgid=ID client=CLIENT uid=UID from=<SENDER> nrcpt=N size=N
 * and on failure one warning line "intake result=... client=... error=".
 */
#ifndef SENDQ_INTAKE_H
#define SENDQ_INTAKE_H

#include "config.h"
#include "spool.h"
#include "util.h"

struct event_base;
struct intake;

/*
 * Start listening as cfg->intake says (cfg and sp must outlive the
 * intake); with no listen address and no sockets from systemd there is
 * nothing to do and *out is still set (an idle intake).  The greeting
 * and EHLO name is cfg->hostname, else gethostname().  Returns 0 and
 * *out (free with intake_free), or -errno with err; nothing is left
 * open on failure.  Does not block (binding is immediate).
 */
int	intake_new(struct event_base *base, const struct config *cfg,
	    struct spool *sp, struct intake **out, struct sq_err *err);

/* The per-uid limits and the way to the queue index's counts (copied);
 * without it (or with a zeroed one) there is no per-uid limit.  NULL is
 * accepted for in and q. */
struct quota;
void	intake_set_quota(struct intake *in, const struct quota *q);

/* Stop accepting new clients (for a clean stop); sessions go on. */
void	intake_close_listeners(struct intake *in);

/* The number of sessions open now (for status and tests). */
size_t	intake_sessions(const struct intake *in);

/*
 * Close every session (a message not yet acknowledged is dropped: its
 * client was not told it was queued) and listener, remove the unix
 * socket files it made, free everything.  Call outside intake's own
 * callbacks, before event_base_free.  NULL accepted.
 */
void	intake_free(struct intake *in);

#endif
