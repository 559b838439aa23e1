/*
 * spool.h - the durable message store.  An accepted message is on stable
 * storage before anyone is told it was accepted.
 *
 * Layout under spool_dir (spool_dir 0711, so that the drop helper can
 * reach maildrop/ (pickup.h); the other directories 0700, all files
 * 0600, owned by the owner of spool_dir, the daemon's user; except, with
 * a readers' group (spool_set_queue_group, below): tmp/ 2700, queue/
 * 0750 and every ID.env 0640, all of that group):
 *   tmp/          envelopes being written (ID.env, ID.upd)
 *   failed/       messages (or some of their recipients) that failed
 *                 permanently: ID.N.env lists the failed recipients and
 *                 the reason (N: the attempt), ID.N.msg is the body
 *                 (a hard link); kept for the operator
 *   queue/        committed messages: ID.msg (the RFC 5322 message as
 *                 submitted) and ID.env (its envelope, envelope.h).  A
 *                 message exists exactly when its .env exists (or while
 *                 sendqd holds it in memory, its record in wal/: see
 *                 spool_set_memory_age); an ID.msg
 *                 alone is one being written (locked by its writer) or
 *                 the debris of one that died (recovery removes it).
 *   wal/          the write-ahead log (wal.h: two preallocated segments,
 *                 "0" and "1"); see spool_wal_open
 *   corrupt/      made when first needed: what recovery found unusable in
 *                 queue/ (an .env that does not parse, is truncated or
 *                 too large, or has no .msg), moved here as ID.env (and
 *                 ID.msg when there is one) with ID.reason, one line
 *                 saying why; kept for the operator, never delivered
 * Commit: write queue/ID.msg (created there, O_EXCL), fsync; write
 * tmp/ID.env, fsync; rename .env into queue/ (renameat2
 * RENAME_NOREPLACE: never over a queued id), fsync(queue/).  A group
 * commit (spool_commit_group) writes every member's files, makes their
 * data stable with one batch of per-file fdatasyncs (writeback of all
 * started first: one journal commit on ext4), renames each member's
 * .env as above, then does one fsync(queue/).  With the write-ahead
 * log (sendqd: spool_wal_open) a group's small members are made durable
 * by one fdatasync of the log instead and held in memory without any
 * file until something needs them (spool_set_memory_age says when);
 * a member that gets files has them synced only at a checkpoint or a
 * clean stop (spool_wal_open).
 * Removal unlinks the .env first, then the .msg.  A writer holds an flock on its files
 * until it is done, which is how recovery tells a live writer from a dead
 * one.
 *
 * The readers' group (sendq-queue) is how the setgid helper sendq-showq
 * lists a user's own messages while sendqd is down: it may search and
 * list queue/ and read the envelopes, never a body (ID.msg stays 0600;
 * a body's size comes from fstatat(), which needs only the search
 * right).  How the envelopes get the group: tmp/ is setgid, so every
 * file created there is born with the directory's group, and keeps it
 * across the rename into queue/.  The other way, fchown() of each new
 * envelope to the group, needs the daemon's user to be a member of it
 * (chown(2): the owner may only give a file a group it belongs to),
 * which would make sendqd itself a reader through that group and every
 * file of the daemon's a candidate for it; the setgid directory needs no
 * membership and no extra system call per message, and is stated once
 * in sendq.tmpfiles.  The mode decides who reads: bodies (.msg) and the
 * files of failed/ stay 0600 whatever their group; an envelope (and the
 * ID.upd that replaces one) is 0640 only when tmp/ is setgid to the
 * readers' group.  Recovery and corrupt/ only rename and unlink, which
 * the owner does whatever the file's mode and group.
 *
 * Owns: every path under spool_dir, queue ids.
 * May call: envelope, util, log.  Blocking file I/O only.
 *
 * DIAGNOSTICS: -errno with err naming the path and the failed operation.
 * ENOSPC/EDQUOT/EROFS/EACCES mean "cannot queue now" to callers.
 */
#ifndef SENDQ_SPOOL_H
#define SENDQ_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "envelope.h"
#include "util.h"

struct spool;
struct spool_writer;

/*
 * Open the spool at dir.  With create set, make dir (mode 0711) and its
 * subdirectories (0700) when missing.  Returns 0 and *out (free with
 * spool_close), or -errno with err filled.
 */
int
spool_open(const char *dir, int create, struct spool **out, struct sq_err *err);
void spool_close(struct spool *sp);

/*
 * Open only queue/ of the spool at dir, for reading (spool_list,
 * spool_load_envelope, spool_message_size, spool_open_message): what
 * the listing needs, and all the readers' group may open.  queue/ is
 * opened with O_NOFOLLOW.  Nothing else may be called on it.  Returns 0
 * and *out (free with spool_close), or -errno with err (-EACCES: the
 * caller may not read queue/).
 */
int spool_open_queue(const char *dir, struct spool **out, struct sq_err *err);

/*
 * Share queue/ with the readers' group named group (sendqd at start):
 * look it up, give tmp/ mode 2700 and queue/ 0750 with that group,
 * every existing queue/ID.env mode 0640 with that group, and make new
 * envelopes 0640 (born with the group of the setgid tmp/).  Without
 * such a group (group NULL or unknown: logged), or when the chgrp is
 * not allowed (sendqd's user is neither root nor a member: logged; an
 * install made with sendq.tmpfiles has the right group already), tmp/
 * and queue/ are set to 0700 and envelopes stay 0600.  Only
 * directories owned by the caller (or by anyone, as root) are changed.
 * Returns 0, or -errno with err when a directory cannot be stat'ed or
 * chmod'ed.  Blocks on one pass over queue/.
 */
int
spool_set_queue_group(struct spool *sp, const char *group, struct sq_err *err);

/* spool_set_queue_group with the group already looked up: gid is
 * group's, (gid_t)-1 for none.  The lookup (getgrnam_r, NSS) is in
 * spool_group.c, apart, so that a program linking the spool for its
 * other functions (sendq: spool_id_valid) pulls in no NSS call: a static
 * sendq would otherwise carry one. */
int spool_set_queue_gid(struct spool *sp, const char *group, gid_t gid,
    struct sq_err *err);

/* Absolute path of queue/ (for the daemon's directory watch). */
const char *spool_queue_dir(const struct spool *sp);

/*
 * The free-space reserve ([queue] min_free_space): bytes of the spool's
 * filesystem that new mail may not use; 0 (the default after spool_open)
 * turns it off.  Only spool_space_ok() looks at it: the writers do not,
 * so what sendqd writes itself (bounces, split copies, envelope updates)
 * may still use the reserve.
 */
void spool_set_min_free(struct spool *sp, uint64_t bytes);

/*
 * May new mail of about incoming bytes (0 when not known yet) be taken
 * now?  Every path that accepts mail from a user (the listener, maildrop
 * pick-up, the control socket's submit) asks before it queues.  Returns
 * 0 when the reserve is off or the space available to unprivileged users
 * (fstatvfs f_bavail) minus incoming stays at or above it; -ENOSPC with
 * err saying how much is free and what the reserve is, which callers
 * answer as "cannot queue now" (452 4.3.1, exit 75, file left in
 * maildrop/); or -errno with err when fstatvfs fails.  Never blocks
 * beyond the system call.
 */
int spool_space_ok(struct spool *sp, uint64_t incoming, struct sq_err *err);

/*
 * One fstatvfs for a loop turn's checks: while on (on 1), spool_space_ok
 * reads the free space at its first call and answers the later ones from
 * that figure less every byte given to a writer (spool_writer_write)
 * since, which may only overstate what the disk lost (a body held in
 * memory takes none); on 0 (the default) forgets it, and every call
 * reads again.  A caller that turns it on turns it off at the end of the
 * same turn (intake: an event made active at the first check), so that
 * no answer is older than the turn: what the rest of the system wrote
 * meanwhile counts from the next turn on, as if the turn's checks had
 * come first.  Calling it again with 1 forgets the figure too.
 */
void spool_space_cache(struct spool *sp, int on);

/*
 * Start a new message: creates tmp/ID.msg (O_EXCL, 0600) with a fresh
 * unique queue id: 31 upper-case hex digits, the time of arrival (10 of
 * seconds, 5 of microseconds) then 64 bits from getrandom(), so ids sort
 * by arrival and cannot be guessed.  Returns 0 and *out, or -errno with
 * err (also when getrandom() fails: there is no predictable fallback).
 */
int spool_writer_begin(struct spool *sp, struct spool_writer **out,
    struct sq_err *err);
/* The queue id the writer will commit under. */
const char *spool_writer_id(const struct spool_writer *w);
/* Append message bytes.  0 or -errno (e.g. -ENOSPC) with err. */
int spool_writer_write(struct spool_writer *w, const void *data, size_t len,
    struct sq_err *err);
/*
 * Make the message durable with envelope env (env->id is set to the
 * writer's id, env->body_8bit to whether any byte written was >= 0x80).  Returns 0 only once data, envelope and directory entries
 * are on stable storage; then the writer is freed.  On failure returns
 * -errno with err, removes the temporary files and frees the writer.
 */
int spool_writer_commit(struct spool_writer *w, struct envelope *env,
    struct sq_err *err);
/*
 * Rewrite what was written so far, in place of itself, keeping the
 * writer's id: the bytes written are read back in chunks and passed to
 * fn (last set on a final call with len 0), whose output (appended to
 * out; fn may append up to 4 * len + 2 MiB per call) becomes the new
 * content of tmp/ID.msg.  For the rare message that must be changed
 * after it was read (msgfix.h); blocks for the copy.  Returns 0, fn's
 * error, or -errno with err; on failure the caller aborts the writer.
 */
typedef int (*spool_transform_fn)(void *arg, const void *data, size_t len,
    int last, struct buf *out, struct sq_err *err);
int spool_writer_transform(struct spool_writer *w, spool_transform_fn fn,
    void *arg, struct sq_err *err);
/*
 * The wire rules (msgfix.h) for the message in w, once scan (fed every
 * byte of it, msgfix_scan_end called) has seen all of it: KEEP does
 * nothing, REWRITE rewrites w through msgfix_rw_step.  Returns 0 (commit
 * it), SQ_EPARSE when the message must be refused (err: the reason, for
 * 554 5.6.0 / exit 65 / rejected/), or -errno with err (the spool
 * failed: a temporary failure).  Every intake path calls this before
 * its commit.
 */
struct msgfix_scan;
int spool_writer_fix(struct spool_writer *w, struct msgfix_scan *scan,
    struct sq_err *err);
/* Abandon a message: remove its temporary files, free the writer. */
void spool_writer_abort(struct spool_writer *w);

/*
 * Group commit: make n messages durable with shared syncs instead of
 * three fsyncs each.  Every writer's data and envelope are written, then
 * one batch of fdatasyncs (writeback of all started first) makes all of
 * them stable, then every message is renamed into
 * queue/, then ONE fsync(queue/) makes the names stable.  results[i] is 0
 * for a committed message (envs[i]->id set) or -errno with errs[i]
 * filled; the writers are freed in every case.  No message is reported
 * committed before its own data and name are on stable storage.
 * Blocks for the syncs: callers in an event loop run it off the loop or
 * accept that cost once per batch.  With the write-ahead log open and the
 * commit thread started, the small members are made durable by one sync
 * of the log instead, as the commit thread's are (spool_wal_open).
 */
void spool_commit_group(struct spool_writer **w, struct envelope **envs,
    size_t n, int *results, struct sq_err *errs);

/*
 * Asynchronous group commit, for callers in an event loop: the syncs run
 * on a commit thread of the spool's own, never on the loop.
 * spool_async_start() starts it (once; again returns the same fd) and
 * returns an fd (eventfd) the loop watches for reading, calling
 * spool_async_dispatch() when it is readable; -errno with err.
 * spool_commit_async() queues w's message with env (as for
 * spool_commit_group: env->id is set, w is consumed; env must live until
 * fn runs) and returns at once; every message queued while the thread
 * syncs the previous group joins the next one.  fn(arg, rc, err) runs
 * from spool_async_dispatch(), on the loop, once the message is durable
 * (rc 0) or has failed (-errno, err).  spool_async_stop() (also run by
 * spool_close) waits for everything queued, runs the callbacks and stops
 * the thread.  Once started, spool_sync_removals() hands its fsync of
 * queue/ to the thread too (shared with a group's; a failure is logged).
 */
typedef void (*spool_commit_fn)(void *arg, int rc, const struct sq_err *err);
int  spool_async_start(struct spool *sp, struct sq_err *err);
void spool_commit_async(struct spool_writer *w, struct envelope *env,
    spool_commit_fn fn, void *arg);
/*
 * Many messages handed to the commit thread at once: between
 * spool_commit_batch_begin() and spool_commit_batch_end(), on the loop's
 * thread, spool_commit_async() only queues its message (no lock); the
 * end hands them all over with one lock and one wake-up of the thread,
 * so that they join the same group (one sync for all, where a thread
 * woken by the first took it alone).  Their callbacks run as for any
 * other (spool_async_dispatch).  No-ops before spool_async_start; the
 * end also runs from spool_async_stop.
 */
void spool_commit_batch_begin(struct spool *sp);
void spool_commit_batch_end(struct spool *sp);
void spool_async_dispatch(struct spool *sp);
void spool_async_stop(struct spool *sp);
/*
 * Is message id queued for the commit thread, being committed, or
 * committed with its callback not yet run?  Its name may already be in
 * queue/ (renamed before the fsync of queue/), but it is not durable nor
 * acknowledged until its callback runs, which is where a watcher of
 * queue/ should learn of it.  Takes the thread's lock; 0 without one.
 */
int spool_commit_pending(struct spool *sp, const char *id);

/*
 * The write-ahead log (wal.h), for the daemon: open spool_dir/wal/
 * (segments of seg_size bytes; 0: the size they have, or for a new log
 * WAL_SEG_SIZE, less on a small file system), replay what a crash
 * left in it, and from spool_async_start() on let the commit thread make
 * a group durable with one fdatasync of the log instead of syncing each
 * member's files (bodies up to 64 KiB; larger ones, or all while the log
 * is full, have their files synced as above).  Such a message's files
 * are written without a sync; the log holds its record until the message
 * is delivered (a REMOVE record, made durable before any of its files is
 * unlinked) or its files are synced by the checkpoint that frees the
 * segment (the removal thread makes it when a segment fills).  The replay
 * gives every message the log holds and that was not removed its files
 * back (a body that differs from the record, an envelope that does not
 * parse: rewritten; an envelope that parses is kept: an update made it),
 * drops the files of every removed one, syncs them all, and only then
 * empties the log.  Call it after spool_open and before the recovery
 * (spool_recover, spool_recover_lazy) and spool_async_start.  Until the
 * daemon has replayed it, a reader of queue/ (sendq-showq while sendqd is
 * down after a crash) may miss the messages whose files a power cut took.
 * A spool that never had a log and has no room for one (ENOSPC, EDQUOT)
 * goes on without (logged): every commit then syncs its files.
 * 0, or -errno with err (the log is then left as it was).
 */
int spool_wal_open(struct spool *sp, size_t seg_size, struct sq_err *err);

/* The log's work since spool_async_start (zeros without one). */
struct spool_wal_stats {
	uint64_t groups;      /* groups made durable by one log sync */
	uint64_t messages;    /* messages in those groups */
	uint64_t file_synced; /* messages of those rounds whose files were
			       * synced instead (large, log full) */
	uint64_t checkpoints; /* segments freed by a checkpoint */
	uint64_t removals;    /* REMOVE records */
	uint64_t held;        /* messages committed without files, held
			       * in memory (see spool_set_memory_age) */
	uint64_t filed;       /* of those, messages that got their files
			       * later (checkpoint, age, update, stop) */
	uint64_t held_now;    /* messages held in memory now */
};
void spool_wal_stats(struct spool *sp, struct spool_wal_stats *out);

/*
 * Messages held in memory.  Once spool_async_start() ran with the log
 * open, a small message (body up to 64 KiB) committed through the
 * commit thread (spool_commit_async, spool_commit_group) gets no files
 * at all: its log record makes it durable, its body is kept in a sealed
 * memfd and its envelope in memory, and spool_load_envelope,
 * spool_open_message, spool_message_size and spool_list (of this struct
 * spool) serve it from there.  Most messages are delivered so, and
 * their removal is a REMOVE record only.  A message gets its files
 * (written, synced, renamed in, fsync of queue/) when its log segment is
 * checkpointed, at a clean stop, before spool_update_envelope or
 * spool_hold_failed, and after ms milliseconds in memory (this call;
 * default 1000), so that a reader of queue/ (sendq-showq, operators'
 * tools) sees every message within about a second of its acceptance;
 * 0: no message is held in memory (every member gets its files).
 * At most 512 are held at once (each holds a descriptor); beyond that,
 * members get their files at commit as before.  A crash loses none of
 * them: the start-up replay gives them their files from the log.
 */
void spool_set_memory_age(struct spool *sp, unsigned ms);

/*
 * Recovery at daemon start: remove tmp/ files and queue/ .msg files
 * without .env whose writer is gone (their flock can be taken), then call
 * cb(id, arg) for every committed message in queue/.  Returns the number
 * of messages found, or -errno with err.  An .env that does not parse
 * (garbage, truncated: no "end" line, too large, or for another id) or
 * has no .msg is moved to corrupt/ with its .msg and an ID.reason file,
 * logged (warning) and not counted; if it cannot be moved it is logged
 * and left in place.  Neither stops the scan.  Safe to call again while
 * the daemon runs (a live writer's files are never touched).
 */
int spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg, struct sq_err *err);

/*
 * Recovery without reading any envelope, for a fast start on a deep
 * queue: the tmp/ and queue/ debris is removed as by spool_recover, an
 * .env without .msg is quarantined, and cb(id, arg) is called for every
 * other queue/ID.env, in id order (arrival), found from the directory
 * listing alone.  The caller parses each envelope when it gets to it and
 * hands one that does not parse to spool_quarantine_id().  Returns the
 * number of ids given to cb, or -errno with err.
 */
int spool_recover_lazy(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg, struct sq_err *err);
/* Move message id to corrupt/ with reason, as recovery does with an
 * envelope that does not parse (logged; failures logged and left). */
void spool_quarantine_id(struct spool *sp, const char *id, const char *reason);

/*
 * List committed messages (every queue/ID.env) in id order, that is in
 * order of arrival, calling cb(id, arg) for each; no envelope is parsed
 * and nothing is changed (for mailq).  Returns the number listed, or
 * -errno with err.
 */
int spool_list(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg, struct sq_err *err);

/* Read the envelope of id.  0 and *out (caller frees), or -errno /
 * SQ_EPARSE / SQ_ENOTFOUND with err. */
int spool_load_envelope(struct spool *sp, const char *id, struct envelope **out,
    struct sq_err *err);

/* Open the message body of id read-only.  Returns an fd (caller closes)
 * or -errno with err. */
int spool_open_message(struct spool *sp, const char *id, struct sq_err *err);

/* Size in bytes of the body of id (queue/ID.msg): 0 and *size, or
 * -errno with err. */
int spool_message_size(struct spool *sp, const char *id, uint64_t *size,
    struct sq_err *err);

/* Atomically replace the envelope of env->id (write, fsync, rename,
 * fsync dir).  0 or -errno with err. */
int spool_update_envelope(struct spool *sp, const struct envelope *env,
    struct sq_err *err);

/* Remove message id (envelope first, then body) and fsync queue/.
 * 0 or -errno with err. */
int spool_remove(struct spool *sp, const char *id, struct sq_err *err);

/*
 * Removal after delivery, batched: unlink as spool_remove does but leave
 * the fsync of queue/ to the next spool_sync_removals() (which the
 * caller runs once for every removal of an event-loop turn), so that one
 * directory sync covers a batch.  Until then a power cut may bring the
 * message back: delivered twice, never lost.  A message held in memory
 * (spool_set_memory_age) is out of every listing at once, and its
 * REMOVE record is appended to the log by that spool_sync_removals(),
 * with those of the turn's other removals (one write): a crash before
 * it may deliver it twice too.  0 or -errno with err.
 */
int spool_remove_unsynced(struct spool *sp, const char *id, struct sq_err *err);
/* fsync queue/ when a removal since the last one left it unsynced:
 * 1 synced, 0 nothing to do, -errno with err.  Once spool_async_start()
 * ran, spool_remove_unsynced() renames ID.env to ID.del at once (the
 * message is out of every listing before it returns) and hands the
 * unlinks to a removal thread, and this returns 1 at once.  The
 * removal thread's unlinks are made stable by the next group commit's
 * fsync of queue/ (one fsync for intake and removal) when one comes
 * within the removal sync delay (50 ms; spool_set_removal_sync_delay),
 * else by an fsync of its own (failures logged there); the duplicate
 * window after a power cut is that much longer.  Recovery removes an
 * ID.del and its ID.msg that a crash left behind. */
int spool_sync_removals(struct spool *sp, struct sq_err *err);
/* Set the removal sync delay (ms; before spool_async_start). */
void spool_set_removal_sync_delay(struct spool *sp, unsigned ms);
/* The removal thread's counts so far (every run of it since
 * spool_open): batches of removals made, and fsyncs of queue/ it had to
 * make itself (the rest were covered by group commits). */
void
spool_removal_stats(struct spool *sp, uint64_t *batches, uint64_t *own_syncs);
/* Wait until the removal thread has made at least batches batches, or
 * timeout_ms have passed: 1 when it has, else 0. */
int spool_removal_wait(struct spool *sp, uint64_t batches, unsigned timeout_ms);

/*
 * Keep a permanent failure: write env (its recipients are the failed
 * ones, last_error the reason) as failed/ID.N.env with N = attempt, and
 * hard-link the body queue/ID.msg beside it; fsync failed/.  The queued
 * message is not changed (the caller updates or removes it afterwards).
 * 0 or -errno with err.
 */
int spool_hold_failed(struct spool *sp, const struct envelope *env,
    unsigned attempt, struct sq_err *err);

/* True when s has the form of a queue id (for names found in queue/):
 * 31 upper-case hex digits, or the 19 of ids made by versions before
 * random ids (so that a queue written before an upgrade is delivered). */
int spool_id_valid(const char *s);

#endif
