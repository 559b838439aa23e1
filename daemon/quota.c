/*
 * quota.c - per-uid queued-mail counters and the admission decision
 * (design: quota.h).
 *
 * How it works: the table is a hash of uid -> {messages, bytes} with
 * chaining, doubled when it holds twice as many uids as buckets; an
 * entry is freed when its message count reaches zero, so the table only
 * holds uids that have mail queued.  quota_admit() reads the counts
 * through q->uid_usage and compares count + pending + this one with the
 * limits; the first limit reached is the one named.  The table is its
 * own, not queue_index's: keyed by uid, not queue id, and without a heap
 * (a shared generic hash would cost both a void * indirection).
 */
#include <errno.h>
#include <stdlib.h>

#include "quota.h"
#include "util.h"

#define QUOTA_BUCKETS_MIN 64

struct quota_entry {
	struct quota_entry *next;
	long                uid;
	uint64_t            msgs;
	uint64_t            bytes;
};

struct quota_table {
	struct quota_entry **buckets;
	size_t               n_buckets; /* a power of two */
	size_t               n;
};

static size_t
quota_hash(long uid, size_t n)
{
	uint64_t h = (uint64_t)uid * 0x9E3779B97F4A7C15ULL;

	return (size_t)(h >> 32) & (n - 1);
}

struct quota_table *
quota_table_new(void)
{
	struct quota_table *t;

	t = xcalloc(1, sizeof(*t));
	t->n_buckets = QUOTA_BUCKETS_MIN;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	t->buckets = xcalloc(t->n_buckets, sizeof(*t->buckets));
	return t;
}

void
quota_table_free(struct quota_table *t)
{
	struct quota_entry *e, *next;
	size_t              i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n_buckets; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			free(e);
		}
	free(t->buckets);
	free(t);
}

static struct quota_entry **
quota_slot(const struct quota_table *t, long uid)
{
	struct quota_entry **pp;

	for (pp = &t->buckets[quota_hash(uid, t->n_buckets)]; *pp != NULL;
	     pp = &(*pp)->next)
		if ((*pp)->uid == uid)
			break;
	return pp;
}

static void
quota_grow(struct quota_table *t)
{
	struct quota_entry **nb, *e, *next;
	size_t               i, n = t->n_buckets * 2, h;

	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	nb = xcalloc(n, sizeof(*nb));
	for (i = 0; i < t->n_buckets; i++)
		for (e = t->buckets[i]; e != NULL; e = next) {
			next = e->next;
			h = quota_hash(e->uid, n);
			e->next = nb[h];
			nb[h] = e;
		}
	free(t->buckets);
	t->buckets = nb;
	t->n_buckets = n;
}

void
quota_table_add(struct quota_table *t, long uid, uint64_t bytes)
{
	struct quota_entry **pp = quota_slot(t, uid), *e;

	if ((e = *pp) == NULL) {
		if (t->n + 1 > t->n_buckets * 2) {
			quota_grow(t);
			pp = quota_slot(t, uid);
		}
		e = xcalloc(1, sizeof(*e));
		e->uid = uid;
		*pp = e;
		t->n++;
	}
	e->msgs++;
	e->bytes += bytes;
}

void
quota_table_sub(struct quota_table *t, long uid, uint64_t bytes)
{
	struct quota_entry **pp = quota_slot(t, uid), *e = *pp;

	if (e == NULL)
		return;
	e->bytes = e->bytes > bytes ? e->bytes - bytes : 0;
	if (--e->msgs == 0) {
		*pp = e->next;
		free(e);
		t->n--;
	}
}

void
quota_table_get(const struct quota_table *t, long uid, uint64_t *msgs,
    uint64_t *bytes)
{
	const struct quota_entry *e = *quota_slot(t, uid);

	*msgs = e != NULL ? e->msgs : 0;
	*bytes = e != NULL ? e->bytes : 0;
}

size_t
quota_table_uids(const struct quota_table *t)
{
	return t->n;
}

int
quota_admit(const struct quota *q, long uid, uint64_t pending_msgs,
    uint64_t pending_bytes, uint64_t incoming, struct sq_err *err)
{
	uint64_t msgs = 0, bytes = 0;

	if (q == NULL || q->uid_usage == NULL || uid < 0 || uid == 0 ||
	    uid == q->daemon_uid || (q->max_msgs == 0 && q->max_bytes == 0))
		return 0;
	if (q->uid_usage(q->arg, uid, &msgs, &bytes) != 0)
		return 0;
	msgs += pending_msgs;
	bytes += pending_bytes;
	if (q->max_msgs > 0 && msgs >= q->max_msgs)
		return sq_err_set(err, -EDQUOT,
		    "uid %ld has %llu messages queued: the limit is "
		    "max_messages_per_user = %llu",
		    uid, (unsigned long long)msgs,
		    (unsigned long long)q->max_msgs);
	if (q->max_bytes > 0 &&
	    (bytes >= q->max_bytes || incoming > q->max_bytes - bytes))
		return sq_err_set(err, -EDQUOT,
		    "uid %ld has %llu bytes queued%s: the limit is "
		    "max_bytes_per_user = %llu",
		    uid, (unsigned long long)bytes,
		    incoming > 0 ? " (with this message more)" : "",
		    (unsigned long long)q->max_bytes);
	return 0;
}

void
quota_queued(const struct quota *q, struct envelope *env)
{
	if (q != NULL && q->queued != NULL)
		q->queued(q->arg, env);
}
