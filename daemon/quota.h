/*
 * quota.h - per-uid limits on what a user may have queued ([queue]
 * max_messages_per_user, max_bytes_per_user): the counters the queue
 * index keeps per uid, and the one decision whether a uid may queue one
 * more message.
 *
 * Counting: the scheduler's index knows every queued message's uid and
 * size; it adds a message to a struct quota_table when it indexes it and
 * takes it out when it drops it, so the counts are always those of the
 * index (constant memory per uid that has mail queued, no scan).  A uid
 * whose count falls to zero leaves the table.
 *
 * Deciding: every path that takes mail from a user (the SMTP listener,
 * maildrop pick-up, the control socket's submit) calls quota_admit()
 * with the submitting uid before it queues, and quota_queued() after a
 * commit, which is how the index learns of the new message (the
 * envelope it gets is the one written).  The modules below
 * the scheduler reach it only through the function pointers of struct
 * quota, which main.c fills (scheduler_quota_ops()).  Exempt: root, the
 * daemon's own user, and an unknown uid (-1: TCP clients of the listener,
 * and the notifications sendqd writes itself).
 *
 * Owns: struct quota_table, struct quota, the refusal text.
 * May call: util.  Pure: no I/O, no clock, no randomness.
 *
 * DIAGNOSTICS: quota_admit() returns -EDQUOT with err naming the uid,
 * what it has queued and the config key whose limit was reached; callers
 * answer it as "cannot queue now" (452 4.3.1, exit 75, file left in
 * maildrop/).
 */
#ifndef SENDQ_QUOTA_H
#define SENDQ_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct envelope;

struct quota_table;

/* An empty table; free with quota_table_free (NULL accepted). */
struct quota_table *quota_table_new(void);
void                quota_table_free(struct quota_table *t);
/* One more message of bytes for uid. */
void quota_table_add(struct quota_table *t, long uid, uint64_t bytes);
/* One message of bytes less for uid (never below zero). */
void quota_table_sub(struct quota_table *t, long uid, uint64_t bytes);
/* What uid has: *msgs and *bytes (both 0 for a uid not in the table). */
void quota_table_get(const struct quota_table *t, long uid, uint64_t *msgs,
    uint64_t *bytes);
/* How many uids have mail counted (for tests and status). */
size_t quota_table_uids(const struct quota_table *t);

/* The limits and the way to the counts (copied by whoever keeps it). */
struct quota {
	uint64_t max_msgs;   /* per uid; 0 = no limit */
	uint64_t max_bytes;  /* per uid; 0 = no limit */
	long     daemon_uid; /* exempt, as root and -1 are */
	/* What uid has queued now: 0, or a negative code (then the uid
	 * is admitted: a failed count never loses mail).  NULL: no
	 * counts, no limit. */
	int (*uid_usage)(void *arg, long uid, uint64_t *msgs, uint64_t *bytes);
	/* Message env (env->id) was just committed: count it now, from
	 * env as it was written (the index need not read it back).  env
	 * stays the caller's, who frees it after; the callee may change it
	 * (narrow its recipients), never keep it.  May be NULL. */
	void (*queued)(void *arg, struct envelope *env);
	void *arg;
};

/*
 * May uid queue one more message of incoming bytes (0 when not known
 * yet)?  pending_msgs/pending_bytes are the caller's messages of the same
 * uid that are being committed and not yet counted by the index.  q NULL
 * admits everything.  Returns 0, or -EDQUOT with err: "uid N has M
 * messages queued: the limit is max_messages_per_user = L" (or the bytes
 * and max_bytes_per_user).  Never blocks (uid_usage must not).
 */
int quota_admit(const struct quota *q, long uid, uint64_t pending_msgs,
    uint64_t pending_bytes, uint64_t incoming, struct sq_err *err);

/* Tell the index about a committed message (q or q->queued NULL: no-op). */
void quota_queued(const struct quota *q, struct envelope *env);

#endif
