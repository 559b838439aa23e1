/*
 * intake.h - the SMTP listener for local programs: [intake] listen
 * addresses (loopback TCP, unix:PATH) or the sockets systemd hands over
 * (service.h).  One session per connection drives intake_proto; a
 * message is answered 250 only once it is durable in the spool.  The
 * replies an operator sees (who is served, the limits and their 421/452/
 * 554 codes, the timeout) are documented in sendq.ini(5) [intake] and
 * sendqd(8).
 *
 * How: guards (spool_space_ok, quota_admit counting the uid's messages
 * awaiting the group commit) run at DATA and again at the final dot.  At
 * DATA a spool writer is opened and a Received: field written; the body
 * goes through msgfix, which adds Date and Message-ID when missing
 * (mailmsg_added_fields) and gives the verdict applied at the final dot
 * (554 5.6.0, or a re-encoding in the writer).  Every message completed
 * in one turn of the event loop is made durable by one
 * spool_commit_group() (blocking the loop for its syncs, once per batch)
 * before any of them is answered; a failed message leaves nothing in the
 * spool.  The envelope gets the sender, recipients, the DSN parameters,
 * created (now) and uid (SO_PEERCRED for a unix socket client, -1 for
 * TCP); each committed id is handed to the queue index (quota_queued).
 * The scheduler indexes each committed message when its commit is done
 * (quota.h, queued).
 *
 * Owns: the listening sockets (and the unix socket files it created,
 * removed at free), the sessions, their spool writers until commit.
 * May call: intake_proto, msgfix, mailmsg, quota, spool, envelope,
 * config, util, log, libevent.
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
int intake_new(struct event_base *base, const struct config *cfg,
    struct spool *sp, struct intake **out, struct sq_err *err);

/* The per-uid limits and the way to the queue index's counts (copied);
 * without it (or with a zeroed one) there is no per-uid limit.  NULL is
 * accepted for in and q. */
struct quota;
void intake_set_quota(struct intake *in, const struct quota *q);

/* Stop accepting new clients (for a clean stop); sessions go on. */
void intake_close_listeners(struct intake *in);

/* The number of sessions open now (for status and tests). */
size_t intake_sessions(const struct intake *in);

/*
 * Close every session (a message not yet acknowledged is dropped: its
 * client was not told it was queued) and listener, remove the unix
 * socket files it made, free everything.  Call outside intake's own
 * callbacks, before event_base_free.  NULL accepted.
 */
void intake_free(struct intake *in);

#endif
