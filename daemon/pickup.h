/*
 * pickup.h - the maildrop directory: mail that local programs drop as
 * files, moved into the spool by the daemon.  The operator's side
 * (layout and modes, the writer's protocol, checks and limits, the drop
 * helper) is sendq-maildrop(5); the file format is dropfile.h.
 *
 * How: an inotify watch on maildrop/ through the event loop, and a scan
 * at start and every PICKUP_SCAN_INTERVAL seconds as the safety net.
 * Each file is checked (regular, O_NOFOLLOW, one link, at most [intake]
 * max_message_size), parsed (dropfile.h), copied into a spool writer and
 * committed in groups of up to PICKUP_BATCH (spool_commit_group); the
 * dropped file is unlinked only once its message is durable in queue/.
 * The envelope's uid is the file owner's.  A refused file goes to
 * rejected/ with NAME.reason; a spool failure, low space or an owner at
 * its per-uid quota leaves the file for the next scan.
 *
 * Crash safety: a crash before the commit leaves the file in maildrop/
 * (picked up again); a crash between the commit and the unlink leaves
 * both, so the message is queued twice: at most a duplicate, never a
 * loss.
 *
 * Owns: the maildrop/ directories (made, and given mode 1730 and group
 * PICKUP_DROP_GROUP, when found otherwise), the inotify watch on
 * maildrop/.
 * May call: dropfile, msgfix, mailmsg, spool (writer, group commit),
 * envelope, quota, config, util, log, libevent.  Blocks for the file
 * copies and one spool sync per batch.
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

#define PICKUP_DIR "maildrop"
#ifndef PICKUP_DROP_GROUP /* CMake: SENDQ_DROP_GROUP */
#define PICKUP_DROP_GROUP "sendq-drop"
#endif
#define PICKUP_SCAN_INTERVAL 60             /* seconds between safety scans */
#define PICKUP_BATCH         64             /* files per group commit */
#define PICKUP_TMP_MAX_AGE   (24 * 60 * 60) /* tmp/ files older: removed */

struct event_base;
struct pickup;

/*
 * Make the maildrop directories when missing, start watching maildrop/
 * and schedule the first scan on base (call after scheduler_start, so
 * that the scheduler indexes what pick-up commits).  cfg and
 * sp must outlive the pickup.  Returns 0 and *out (free with
 * pickup_free), or -errno with err (for example maildrop/ is a symlink
 * or cannot be created).
 */
int pickup_new(struct event_base *base, const struct config *cfg,
    struct spool *sp, struct pickup **out, struct sq_err *err);

/* The per-uid limits and the way to the queue index's counts (copied);
 * without it there is no per-uid limit.  NULL accepted for p and q. */
struct quota;
void pickup_set_quota(struct pickup *p, const struct quota *q);

/* Stop watching and free; files not yet picked up stay in maildrop/.
 * Not from inside the pickup's own callbacks.  NULL accepted. */
void pickup_free(struct pickup *p);

#endif
