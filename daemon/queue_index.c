/*
 * queue_index.c - hash table by queue id, min-heap by next attempt, one
 * FIFO per lane.
 *
 * The hash table chains entries through hash_next (FNV-1a on the id) and
 * doubles its bucket array when there are more than two entries per
 * bucket, so a lookup stays short at any size.  The heap is an array of
 * entry pointers; each entry knows its slot (heap_pos), so a reschedule
 * or a removal is O(log n).  DUE entries wait in their lane's TAILQ.
 */
#include <stdlib.h>
#include <string.h>

#include "queue_index.h"
#include "util.h"

#define QUEUE_INDEX_BUCKETS 1024 /* initial; a power of two */

TAILQ_HEAD(queue_entry_list, queue_entry);

struct queue_lane {
	struct queue_entry_list due;
	size_t                  n_due;
	size_t                  n;
};

struct queue_index {
	struct queue_entry **buckets;
	size_t               n_buckets;
	size_t               n;
	struct queue_entry **heap;
	size_t               heap_len, heap_cap;
	struct queue_lane   *lanes;
	size_t               n_lanes;
};

struct queue_index *
queue_index_new(size_t n_lanes)
{
	struct queue_index *qi = xcalloc(1, sizeof(*qi));
	size_t              i;

	qi->n_buckets = QUEUE_INDEX_BUCKETS;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	qi->buckets = xcalloc(qi->n_buckets, sizeof(*qi->buckets));
	qi->n_lanes = n_lanes;
	qi->lanes = xcalloc(n_lanes > 0 ? n_lanes : 1, sizeof(*qi->lanes));
	for (i = 0; i < n_lanes; i++)
		TAILQ_INIT(&qi->lanes[i].due);
	return qi;
}

void
queue_index_free(struct queue_index *qi)
{
	struct queue_entry *e, *next;
	size_t              i;

	if (qi == NULL)
		return;
	for (i = 0; i < qi->n_buckets; i++)
		for (e = qi->buckets[i]; e != NULL; e = next) {
			next = e->hash_next;
			free(e);
		}
	free(qi->buckets);
	free(qi->heap);
	free(qi->lanes);
	free(qi);
}

/* ------------------------------------------------------------------ */
/* Hash table. */

static size_t
queue_index_hash(const char *id, size_t n)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 1099511628211ULL;
	return (size_t)(h & (n - 1));
}

static void
queue_index_grow(struct queue_index *qi)
{
	struct queue_entry **nb, *e, *next;
	size_t               i, h, n = qi->n_buckets * 2;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	nb = xcalloc(n, sizeof(*nb));
	for (i = 0; i < qi->n_buckets; i++)
		for (e = qi->buckets[i]; e != NULL; e = next) {
			next = e->hash_next;
			h = queue_index_hash(e->id, n);
			e->hash_next = nb[h];
			nb[h] = e;
		}
	free(qi->buckets);
	qi->buckets = nb;
	qi->n_buckets = n;
}

struct queue_entry *
queue_index_find(const struct queue_index *qi, const char *id)
{
	struct queue_entry *e;

	for (e = qi->buckets[queue_index_hash(id, qi->n_buckets)]; e != NULL;
	     e = e->hash_next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

struct queue_entry *
queue_index_add(struct queue_index *qi, const char *id, int lane,
    int64_t created, long uid, uint64_t size)
{
	struct queue_entry *e;
	size_t              h;

	if (lane < 0 || (size_t)lane >= qi->n_lanes ||
	    lane >= QUEUE_INDEX_LANES_MAX || strlen(id) >= QUEUE_INDEX_ID_MAX ||
	    queue_index_find(qi, id) != NULL)
		return NULL;
	if (qi->n + 1 > qi->n_buckets * 2)
		queue_index_grow(qi);
	e = xcalloc(1, sizeof(*e));
	memcpy(e->id, id, strlen(id) + 1);
	e->lane = (unsigned)lane;
	e->created = created;
	if (uid >= 0 && (unsigned long)uid < UINT32_MAX)
		e->uid_plus1 = (uint32_t)uid + 1; /* else 0: unknown */
	e->size = size < UINT32_MAX ? (uint32_t)size : UINT32_MAX;
	e->heap_pos = UINT32_MAX;
	e->state = QUEUE_HELD;
	h = queue_index_hash(e->id, qi->n_buckets);
	e->hash_next = qi->buckets[h];
	qi->buckets[h] = e;
	qi->n++;
	qi->lanes[lane].n++;
	return e;
}

static void
queue_index_unhash(struct queue_index *qi, struct queue_entry *e)
{
	struct queue_entry **pp;

	for (pp = &qi->buckets[queue_index_hash(e->id, qi->n_buckets)];
	     *pp != NULL; pp = &(*pp)->hash_next)
		if (*pp == e) {
			*pp = e->hash_next;
			qi->n--;
			qi->lanes[e->lane].n--;
			return;
		}
}

/* ------------------------------------------------------------------ */
/* Heap. */

static void
queue_index_swap(struct queue_index *qi, size_t a, size_t b)
{
	struct queue_entry *t = qi->heap[a];

	qi->heap[a] = qi->heap[b];
	qi->heap[b] = t;
	qi->heap[a]->heap_pos = (uint32_t)a;
	qi->heap[b]->heap_pos = (uint32_t)b;
}

static void
queue_index_up(struct queue_index *qi, size_t i)
{
	while (i > 0 &&
	    qi->heap[(i - 1) / 2]->next_attempt > qi->heap[i]->next_attempt) {
		queue_index_swap(qi, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
queue_index_down(struct queue_index *qi, size_t i)
{
	size_t l, r, m;

	for (;;) {
		l = 2 * i + 1;
		r = l + 1;
		m = i;
		if (l < qi->heap_len &&
		    qi->heap[l]->next_attempt < qi->heap[m]->next_attempt)
			m = l;
		if (r < qi->heap_len &&
		    qi->heap[r]->next_attempt < qi->heap[m]->next_attempt)
			m = r;
		if (m == i)
			return;
		queue_index_swap(qi, i, m);
		i = m;
	}
}

static void
queue_index_push(struct queue_index *qi, struct queue_entry *e)
{
	if (qi->heap_len == qi->heap_cap) {
		qi->heap_cap = qi->heap_cap ? qi->heap_cap * 2 : 64;
		qi->heap = xreallocarray(qi->heap, qi->heap_cap,
		    /* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
		    sizeof(*qi->heap));
	}
	e->heap_pos = (uint32_t)qi->heap_len;
	qi->heap[qi->heap_len++] = e;
	queue_index_up(qi, e->heap_pos);
}

static void
queue_index_heap_remove(struct queue_index *qi, struct queue_entry *e)
{
	size_t i = e->heap_pos;

	if (e->heap_pos == UINT32_MAX)
		return;
	e->heap_pos = UINT32_MAX;
	if (i == --qi->heap_len)
		return;
	qi->heap[i] = qi->heap[qi->heap_len];
	qi->heap[i]->heap_pos = (uint32_t)i;
	queue_index_down(qi, i);
	queue_index_up(qi, i);
}

/* ------------------------------------------------------------------ */
/* States. */

/* Take e out of whatever list its state puts it in. */
static void
queue_index_unlink(struct queue_index *qi, struct queue_entry *e)
{
	struct queue_lane *l = &qi->lanes[e->lane];

	switch ((enum queue_state)e->state) {
	case QUEUE_WAITING:
		queue_index_heap_remove(qi, e);
		break;
	case QUEUE_DUE:
		TAILQ_REMOVE(&l->due, e, due_entry);
		l->n_due--;
		break;
	case QUEUE_ACTIVE:
	case QUEUE_HELD:
		break;
	}
}

void
queue_index_remove(struct queue_index *qi, struct queue_entry *e)
{
	queue_index_unlink(qi, e);
	queue_index_unhash(qi, e);
	free(e);
}

void
queue_index_wait(struct queue_index *qi, struct queue_entry *e, int64_t when)
{
	queue_index_unlink(qi, e);
	e->state = QUEUE_WAITING;
	e->next_attempt = when;
	queue_index_push(qi, e);
}

void
queue_index_due(struct queue_index *qi, struct queue_entry *e, int at_head)
{
	struct queue_lane *l = &qi->lanes[e->lane];

	queue_index_unlink(qi, e);
	e->state = QUEUE_DUE;
	if (at_head)
		TAILQ_INSERT_HEAD(&l->due, e, due_entry);
	else
		TAILQ_INSERT_TAIL(&l->due, e, due_entry);
	l->n_due++;
}

void
queue_index_activate(struct queue_index *qi, struct queue_entry *e)
{
	queue_index_unlink(qi, e);
	e->state = QUEUE_ACTIVE;
}

void
queue_index_hold(struct queue_index *qi, struct queue_entry *e)
{
	queue_index_unlink(qi, e);
	e->state = QUEUE_HELD;
}

struct queue_entry *
queue_index_pop_due(struct queue_index *qi, int64_t now)
{
	struct queue_entry *e;

	if (qi->heap_len == 0 || qi->heap[0]->next_attempt > now)
		return NULL;
	e = qi->heap[0];
	queue_index_due(qi, e, 0);
	return e;
}

int
queue_index_next_time(const struct queue_index *qi, int64_t *when)
{
	if (qi->heap_len == 0)
		return 0;
	*when = qi->heap[0]->next_attempt;
	return 1;
}

/* ------------------------------------------------------------------ */
/* Reading. */

struct queue_entry *
queue_index_lane_first(const struct queue_index *qi, int lane)
{
	if (lane < 0 || (size_t)lane >= qi->n_lanes)
		return NULL;
	return TAILQ_FIRST(&qi->lanes[lane].due);
}

struct queue_entry *
queue_index_lane_next(const struct queue_entry *e)
{
	return TAILQ_NEXT(e, due_entry);
}

size_t
queue_index_lane_count(const struct queue_index *qi, int lane)
{
	if (lane < 0 || (size_t)lane >= qi->n_lanes)
		return 0;
	return qi->lanes[lane].n;
}

size_t
queue_index_lane_due(const struct queue_index *qi, int lane)
{
	if (lane < 0 || (size_t)lane >= qi->n_lanes)
		return 0;
	return qi->lanes[lane].n_due;
}

size_t
queue_index_count(const struct queue_index *qi)
{
	return qi->n;
}

void
queue_index_foreach(struct queue_index *qi,
    void (*fn)(struct queue_entry *, void *), void *arg)
{
	struct queue_entry *e, *next;
	size_t              i;

	for (i = 0; i < qi->n_buckets; i++)
		for (e = qi->buckets[i]; e != NULL; e = next) {
			next = e->hash_next;
			fn(e, arg);
		}
}

size_t
queue_index_memory(const struct queue_index *qi)
{
	return sizeof(*qi) + qi->n * sizeof(struct queue_entry) +
	    (qi->n_buckets + qi->heap_cap) * sizeof(struct queue_entry *) +
	    qi->n_lanes * sizeof(*qi->lanes);
}
