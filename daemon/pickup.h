/*
 * pickup.h - the maildrop directory: mail that local programs drop as
 * files, moved into the spool by the daemon.
 *
 * For programs that can neither run `sendq` nor speak SMTP (a container
 * sharing a volume with the host, a batch job, firmware).
 *
 * Layout under spool_dir (made by the daemon when missing, and by
 * systemd/sendq.tmpfiles):
 *   maildrop/           1730 sendq:sendq-drop  files are published here
 *   maildrop/tmp/       1730 sendq:sendq-drop  writers create files here
 *   maildrop/rejected/  0700 sendq:sendq       refused files, NAME and
 *                                              NAME.reason (one line: why)
 * Who may write: the daemon's user, root, and the setgid helper
 * sendq-drop (group PICKUP_DROP_GROUP, which no person is a member of;
 * sendq runs it when sendqd is down).  Mode 1730: group write+search
 * without read (nobody can list what others dropped), sticky (a writer
 * cannot rename or remove another user's file).  spool_dir must be
 * searchable by others (0711) for the helper to get there.  The daemon
 * gives its own maildrop/ and tmp/ this mode and group when it finds them
 * otherwise (logged); without the group it keeps its own and logs it.
 * A dropped file must be readable by the daemon: the helper makes it
 * 0644, owned by the caller, so the owner's uid is the kernel's word on
 * who sent it.
 *
 * Protocol for a writer: create and write the file in maildrop/tmp/ under
 * a name unique to you (mktemp), close it, then rename it into maildrop/
 * (same name or another unique one).  The rename is the atomic publish;
 * a file is never read while in tmp/, and a file never renamed out of
 * tmp/ is left alone (removed after 1 day).  The format of the file
 * (envelope lines or header-derived envelope) is in dropfile.h.
 *
 * The daemon: an inotify watch on maildrop/ (IN_MOVED_TO, IN_CLOSE_WRITE;
 * IN_CREATE for what is not a plain file, which is refused at once)
 * through the event loop notices a file at once; a scan at start and
 * every PICKUP_SCAN_INTERVAL seconds is the safety net (missed events,
 * files dropped while the daemon was down).  Each file is checked (a
 * regular file, not a symlink (O_NOFOLLOW), one link, at most the size
 * limit: [intake] max_message_size, 25 MiB by default), parsed
 * (dropfile.h) and copied into a spool writer; files are committed in
 * groups of up to PICKUP_BATCH with spool_commit_group(), and only once
 * a message is durable in queue/ is its dropped file unlinked.  The
 * envelope records the file owner's uid (env->uid) and the time of
 * pick-up.  A file that is malformed, too large or not allowed is moved
 * to rejected/ with its .reason: never deleted, never blocking the files
 * behind it.  A spool failure (disk full) leaves the files in place and
 * pick-up resumes at the next scan; so does free space below [queue]
 * min_free_space (spool_space_ok).  A file whose owner's uid is at its
 * per-uid limit ([queue] max_messages_per_user, max_bytes_per_user;
 * quota_admit) is left in place too, while the other files go on; it is
 * tried again at the next scan.
 *
 * Crash safety: a crash before the commit leaves the file in maildrop/
 * (picked up again); a crash between the commit and the unlink leaves
 * both, so the message is queued twice: at most a duplicate, never a
 * loss.  A writer that reuses a name must wait until its previous file
 * is gone: a rename over a file not yet picked up replaces it.
 *
 * Owns: the maildrop/ directories, the inotify watch on maildrop/.
 * May call: dropfile, msgfix, mailmsg, spool (writer, group commit),
 * envelope, config, util, log, libevent.  Blocks for the file copies and one spool sync
 * per batch.
 *
 * DIAGNOSTICS: one info line per file picked up,
 *   pickup file=NAME uid=N msgid=ID from=<SENDER> nrcpt=N size=N
 * one warning per file refused,
 *   pickup file=NAME uid=N result=rejected reason="..."
 * and a warning when a file cannot be queued now (result=deferred).
 */
#ifndef SENDQ_PICKUP_H
#define SENDQ_PICKUP_H

#include "config.h"
#include "spool.h"
#include "util.h"

#define PICKUP_DIR		"maildrop"
#ifndef PICKUP_DROP_GROUP	/* CMake: SENDQ_DROP_GROUP */
#define PICKUP_DROP_GROUP	"sendq-drop"
#endif
#define PICKUP_SCAN_INTERVAL	60	/* seconds between safety scans */
#define PICKUP_BATCH		64	/* files per group commit */
#define PICKUP_TMP_MAX_AGE	(24 * 60 * 60)	/* tmp/ files older: removed */

struct event_base;
struct pickup;

/*
 * Make the maildrop directories when missing, start watching maildrop/
 * and schedule the first scan on base (call after scheduler_start, so
 * the scheduler's watch on queue/ sees what pick-up commits).  cfg and
 * sp must outlive the pickup.  Returns 0 and *out (free with
 * pickup_free), or -errno with err (for example maildrop/ is a symlink
 * or cannot be created).
 */
int	pickup_new(struct event_base *base, const struct config *cfg,
	    struct spool *sp, struct pickup **out, struct sq_err *err);

/* The per-uid limits and the way to the queue index's counts (copied);
 * without it there is no per-uid limit.  NULL accepted for p and q. */
struct quota;
void	pickup_set_quota(struct pickup *p, const struct quota *q);

/* Stop watching and free; files not yet picked up stay in maildrop/.
 * Not from inside the pickup's own callbacks.  NULL accepted. */
void	pickup_free(struct pickup *p);

#endif
