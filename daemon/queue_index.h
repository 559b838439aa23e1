/*
 * queue_index.h - the in-memory index of the queue: one small record per
 * queued message, found by queue id, ordered by next attempt.
 *
 * Owns: struct queue_entry and where each entry is.  An entry is in one
 * of four places (its state):
 *   QUEUE_WAITING  in the timer heap until next_attempt
 *   QUEUE_DUE      in its lane's FIFO, waiting for a connection
 *   QUEUE_ACTIVE   with the caller (on a connection): in no list
 *   QUEUE_HELD     in no list (new entries, sendqctl hold)
 * A lane is the caller's number for a destination (the scheduler's
 * smarthost index), fixed per entry.  Memory per entry is constant:
 * the record, one heap slot and a share of the hash buckets.
 * May call: util.  Pure: no I/O, no clock (times are passed in), no
 * randomness, no libevent.
 *
 * DIAGNOSTICS: none; an out-of-memory is fatal (util.h).
 */
#ifndef SENDQ_QUEUE_INDEX_H
#define SENDQ_QUEUE_INDEX_H

#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#define QUEUE_INDEX_ID_MAX \
	32 /* queue id with its NUL
					 * (= ENVELOPE_ID_MAX) */

enum queue_state {
	QUEUE_WAITING,
	QUEUE_DUE,
	QUEUE_ACTIVE,
	QUEUE_HELD,
};

/* Callers read every field (the uid through queue_entry_uid); they write
 * none (the index's functions do).  88 bytes, so that malloc gives each
 * a 96-byte chunk (104 bytes took 112: 128 kB more with 8,000 queued):
 * the size saturates at UINT32_MAX (the largest [intake]
 * max_message_size, 4G, is one byte more; quotas add and take the same
 * value), the uid is kept plus one, and lane and state share a word. */
struct queue_entry {
	TAILQ_ENTRY(queue_entry) due_entry; /* lane FIFO */
	struct queue_entry *hash_next;
	int64_t             next_attempt; /* WAITING: when due */
	int64_t             created;      /* arrival, for expiry */
	uint32_t            size;         /* body bytes, for quotas */
	uint32_t            uid_plus1;    /* submitter + 1, 0 unknown */
	uint32_t            heap_pos;     /* UINT32_MAX: not in heap */
	unsigned            lane : 24;    /* < QUEUE_INDEX_LANES_MAX */
	unsigned            state : 8;    /* enum queue_state */
	char                id[QUEUE_INDEX_ID_MAX];
};
_Static_assert(sizeof(struct queue_entry) <= 88,
    "a queue entry in a 96-byte malloc chunk");

#define QUEUE_INDEX_LANES_MAX (1 << 24)

/* The uid of e's submitter, -1 when unknown. */
static inline long
queue_entry_uid(const struct queue_entry *e)
{
	return e->uid_plus1 == 0 ? -1 : (long)e->uid_plus1 - 1;
}

struct queue_index;

/* An empty index with lanes 0..n_lanes-1.  Free with queue_index_free
 * (NULL accepted; frees every entry). */
struct queue_index *queue_index_new(size_t n_lanes);
void                queue_index_free(struct queue_index *qi);

/*
 * A new entry for id (shorter than QUEUE_INDEX_ID_MAX) in lane, state
 * QUEUE_HELD (in no list).  Returns it, or NULL when id is already
 * indexed (nothing changes) or lane is out of range (n_lanes, at most
 * QUEUE_INDEX_LANES_MAX).  A uid that no uid_t holds (below -1, above
 * UINT32_MAX - 1) is kept as unknown; a size above UINT32_MAX as
 * UINT32_MAX.
 */
struct queue_entry *queue_index_add(struct queue_index *qi, const char *id,
    int lane, int64_t created, long uid, uint64_t size);
/* The entry of id, or NULL. */
struct queue_entry *
queue_index_find(const struct queue_index *qi, const char *id);
/* Take e out of the index and free it. */
void queue_index_remove(struct queue_index *qi, struct queue_entry *e);

/* Move e (from wherever it is) to QUEUE_WAITING until when: insert or
 * reschedule. */
void
queue_index_wait(struct queue_index *qi, struct queue_entry *e, int64_t when);
/* Move e to QUEUE_DUE, at the head of its lane's FIFO or at its tail. */
void
queue_index_due(struct queue_index *qi, struct queue_entry *e, int at_head);
/* Move e to QUEUE_ACTIVE or QUEUE_HELD (out of every list). */
void queue_index_activate(struct queue_index *qi, struct queue_entry *e);
void queue_index_hold(struct queue_index *qi, struct queue_entry *e);

/*
 * The WAITING entry with the earliest next_attempt when that is <= now,
 * moved to the tail of its lane's FIFO (QUEUE_DUE); NULL when none is
 * due.  Equal times come out in no particular order.
 */
struct queue_entry *queue_index_pop_due(struct queue_index *qi, int64_t now);
/* The earliest next_attempt of the WAITING entries into *when: returns 1,
 * or 0 when none waits. */
int queue_index_next_time(const struct queue_index *qi, int64_t *when);

/* The first DUE entry of lane (NULL: none), and the one after e. */
struct queue_entry *
queue_index_lane_first(const struct queue_index *qi, int lane);
struct queue_entry *queue_index_lane_next(const struct queue_entry *e);
/* How many entries are in lane, and how many of them are DUE. */
size_t queue_index_lane_count(const struct queue_index *qi, int lane);
size_t queue_index_lane_due(const struct queue_index *qi, int lane);
/* How many entries there are. */
size_t queue_index_count(const struct queue_index *qi);

/* Call fn(e, arg) for every entry, in no particular order; fn may remove
 * e (and only e). */
void queue_index_foreach(struct queue_index *qi,
    void (*fn)(struct queue_entry *, void *), void *arg);

/* Bytes the index holds now (records, heap, buckets, lanes; without the
 * allocator's own overhead). */
size_t queue_index_memory(const struct queue_index *qi);

#endif
