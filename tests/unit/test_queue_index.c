/*
 * test_queue_index.c - the scheduler's queue index: lookup by id, order
 * by next attempt, lanes, 100,000 entries and the memory they take.
 */
#include <criterion/criterion.h>

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "queue_index.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
/* The ASan runtime's count (sanitizer/allocator_interface.h, which gcc
 * does not always install). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

TestSuite(queue_index);

#define N_BIG 100000

static uint64_t test_rng = 88172645463325252ULL;

static uint32_t
test_random(void)
{
	test_rng ^= test_rng << 13;
	test_rng ^= test_rng >> 7;
	test_rng ^= test_rng << 17;
	return (uint32_t)test_rng;
}

static void
test_id(char *buf, size_t n)
{
	snprintf(buf, QUEUE_INDEX_ID_MAX, "%08X.%06x",
	    (unsigned)(n * 2654435761u), (unsigned)n);
}

/* Heap bytes in use now (the allocator's count: what a daemon pays). */
static size_t
test_heap_used(void)
{
#ifdef TEST_ASAN
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 mi = mallinfo2();

	/* Large arrays (the heap, the buckets) are mmapped chunks. */
	return mi.uordblks + mi.hblkhd;
#endif
}

Test(queue_index, add_find_remove)
{
	struct queue_index *qi = queue_index_new(2);
	struct queue_entry *e;

	e = queue_index_add(qi, "AAA", 1, 100, 1000, 42);
	cr_assert_not_null(e);
	cr_assert_str_eq(e->id, "AAA");
	cr_assert_eq(e->state, QUEUE_HELD);
	cr_assert_eq(e->lane, 1);
	cr_assert_eq(e->created, 100);
	cr_assert_eq(queue_entry_uid(e), 1000);
	cr_assert_eq(e->size, 42);
	cr_assert_eq(queue_index_find(qi, "AAA"), e);
	cr_assert_null(queue_index_find(qi, "AAB"));
	cr_assert_eq(queue_index_count(qi), 1);
	cr_assert_eq(queue_index_lane_count(qi, 1), 1);
	cr_assert_eq(queue_index_lane_count(qi, 0), 0);
	queue_index_remove(qi, e);
	cr_assert_null(queue_index_find(qi, "AAA"));
	cr_assert_eq(queue_index_count(qi), 0);
	cr_assert_eq(queue_index_lane_count(qi, 1), 0);
	queue_index_free(qi);
}

Test(queue_index, refuses_a_duplicate_a_bad_lane_and_a_long_id)
{
	struct queue_index *qi = queue_index_new(1);
	char                longid[QUEUE_INDEX_ID_MAX + 1];

	cr_assert_not_null(queue_index_add(qi, "X", 0, 0, 0, 0));
	cr_assert_null(queue_index_add(qi, "X", 0, 0, 0, 0));
	cr_assert_null(queue_index_add(qi, "Y", 1, 0, 0, 0));
	cr_assert_null(queue_index_add(qi, "Y", -1, 0, 0, 0));
	memset(longid, 'L', QUEUE_INDEX_ID_MAX);
	longid[QUEUE_INDEX_ID_MAX] = '\0';
	cr_assert_null(queue_index_add(qi, longid, 0, 0, 0, 0));
	longid[QUEUE_INDEX_ID_MAX - 1] = '\0';
	cr_assert_not_null(queue_index_add(qi, longid, 0, 0, 0, 0));
	cr_assert_eq(queue_index_count(qi), 2);
	queue_index_free(qi);
}

Test(queue_index, pops_due_entries_in_time_order_and_no_later_ones)
{
	struct queue_index  *qi = queue_index_new(1);
	static const int64_t when[] = { 50, 10, 40, 30, 20, 60 };
	struct queue_entry  *e;
	int64_t              t;
	char                 id[8];
	size_t               i;

	cr_assert_eq(queue_index_next_time(qi, &t), 0);
	for (i = 0; i < sizeof(when) / sizeof(when[0]); i++) {
		snprintf(id, sizeof(id), "m%zu", i);
		e = queue_index_add(qi, id, 0, 0, 0, 0);
		queue_index_wait(qi, e, when[i]);
		cr_assert_eq(e->state, QUEUE_WAITING);
	}
	cr_assert_eq(queue_index_next_time(qi, &t), 1);
	cr_assert_eq(t, 10);
	cr_assert_null(queue_index_pop_due(qi, 9));
	for (t = 10; t <= 50; t += 10) {
		e = queue_index_pop_due(qi, 55);
		cr_assert_not_null(e);
		cr_assert_eq(e->next_attempt, t);
		cr_assert_eq(e->state, QUEUE_DUE);
	}
	cr_assert_null(queue_index_pop_due(qi, 55));
	cr_assert_eq(queue_index_lane_due(qi, 0), 5);
	/* The lane FIFO holds them in the order they became due. */
	t = 10;
	for (e = queue_index_lane_first(qi, 0); e != NULL;
	     e = queue_index_lane_next(e), t += 10)
		cr_assert_eq(e->next_attempt, t);
	queue_index_free(qi);
}

Test(queue_index, reschedule_moves_an_entry_in_the_order)
{
	struct queue_index *qi = queue_index_new(1);
	struct queue_entry *a, *b, *c;

	a = queue_index_add(qi, "a", 0, 0, 0, 0);
	b = queue_index_add(qi, "b", 0, 0, 0, 0);
	c = queue_index_add(qi, "c", 0, 0, 0, 0);
	queue_index_wait(qi, a, 10);
	queue_index_wait(qi, b, 20);
	queue_index_wait(qi, c, 30);
	queue_index_wait(qi, c, 5);  /* earlier */
	queue_index_wait(qi, a, 40); /* later */
	cr_assert_eq(queue_index_pop_due(qi, 100), c);
	cr_assert_eq(queue_index_pop_due(qi, 100), b);
	cr_assert_eq(queue_index_pop_due(qi, 100), a);
	cr_assert_null(queue_index_pop_due(qi, 100));
	queue_index_free(qi);
}

Test(queue_index, states_move_between_heap_lane_and_nowhere)
{
	struct queue_index *qi = queue_index_new(2);
	struct queue_entry *a, *b, *c;
	int64_t             t;

	a = queue_index_add(qi, "a", 1, 0, 0, 0);
	b = queue_index_add(qi, "b", 1, 0, 0, 0);
	c = queue_index_add(qi, "c", 0, 0, 0, 0);
	queue_index_due(qi, a, 0);
	queue_index_due(qi, b, 1); /* at the head */
	queue_index_wait(qi, c, 7);
	cr_assert_eq(queue_index_lane_first(qi, 1), b);
	cr_assert_eq(queue_index_lane_next(b), a);
	cr_assert_null(queue_index_lane_first(qi, 0));
	cr_assert_eq(queue_index_lane_due(qi, 1), 2);
	queue_index_activate(qi, b);
	cr_assert_eq(b->state, QUEUE_ACTIVE);
	cr_assert_eq(queue_index_lane_first(qi, 1), a);
	cr_assert_eq(queue_index_lane_due(qi, 1), 1);
	queue_index_hold(qi, c);
	cr_assert_eq(c->state, QUEUE_HELD);
	cr_assert_eq(queue_index_next_time(qi, &t), 0);
	queue_index_wait(qi, a, 3); /* DUE -> WAITING */
	cr_assert_eq(queue_index_lane_due(qi, 1), 0);
	cr_assert_eq(queue_index_next_time(qi, &t), 1);
	cr_assert_eq(t, 3);
	/* Removal from every state. */
	queue_index_remove(qi, a);
	queue_index_remove(qi, b);
	queue_index_remove(qi, c);
	cr_assert_eq(queue_index_count(qi), 0);
	cr_assert_eq(queue_index_next_time(qi, &t), 0);
	queue_index_free(qi);
}

static void
test_remove_odd(struct queue_entry *e, void *arg)
{
	struct queue_index *qi = arg;

	if ((e->id[1] - '0') % 2 == 1)
		queue_index_remove(qi, e);
}

Test(queue_index, foreach_visits_all_and_may_remove_the_current_one)
{
	struct queue_index *qi = queue_index_new(1);
	char                id[4];
	int                 i;

	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		queue_index_wait(qi, queue_index_add(qi, id, 0, 0, 0, 0), i);
	}
	queue_index_foreach(qi, test_remove_odd, qi);
	cr_assert_eq(queue_index_count(qi), 5);
	for (i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		cr_assert_eq(queue_index_find(qi, id) != NULL, i % 2 == 0);
	}
	for (i = 0; i < 10; i += 2)
		cr_assert_eq(queue_index_pop_due(qi, 100)->next_attempt, i);
	queue_index_free(qi);
}

Test(queue_index, hundred_thousand_entries_keep_lookup_and_order)
{
	struct queue_index *qi = queue_index_new(4);
	struct queue_entry *e;
	char                id[QUEUE_INDEX_ID_MAX];
	size_t              i, n = 0, removed = 0;
	int64_t             last = INT64_MIN;

	for (i = 0; i < N_BIG; i++) {
		test_id(id, i);
		e = queue_index_add(qi, id, (int)(i % 4), 0, 0, i);
		cr_assert_not_null(e);
		queue_index_wait(qi, e, test_random() % 1000000);
	}
	cr_assert_eq(queue_index_count(qi), N_BIG);
	/* Reschedule every other one, drop every third. */
	for (i = 0; i < N_BIG; i++) {
		test_id(id, i);
		e = queue_index_find(qi, id);
		cr_assert_not_null(e, "%s", id);
		cr_assert_eq(e->size, i);
		if (i % 3 == 0) {
			queue_index_remove(qi, e);
			removed++;
		} else if (i % 2 == 0)
			queue_index_wait(qi, e, test_random() % 1000000);
	}
	cr_assert_eq(queue_index_count(qi), N_BIG - removed);
	while ((e = queue_index_pop_due(qi, INT64_MAX)) != NULL) {
		cr_assert_geq(e->next_attempt, last);
		last = e->next_attempt;
		n++;
	}
	cr_assert_eq(n, N_BIG - removed);
	for (i = 0, n = 0; i < 4; i++)
		n += queue_index_lane_due(qi, (int)i);
	cr_assert_eq(n, N_BIG - removed);
	queue_index_free(qi);
}

/* The compact record keeps every uid a uid_t holds and -1 (unknown),
 * saturates the size, and refuses a lane it cannot hold. */
Test(queue_index, compact_record_keeps_uid_size_and_lane)
{
	struct queue_index *qi = queue_index_new(3);
	struct queue_entry *e;

	e = queue_index_add(qi, "U1", 2, 0, -1, 0);
	cr_assert_eq(queue_entry_uid(e), -1);
	cr_assert_eq(e->lane, 2);
	e = queue_index_add(qi, "U2", 0, 0, 0, (uint64_t)UINT32_MAX - 1);
	cr_assert_eq(queue_entry_uid(e), 0);
	cr_assert_eq(e->size, UINT32_MAX - 1);
	e = queue_index_add(qi, "U3", 0, 0, (long)UINT32_MAX - 1,
	    (uint64_t)1 << 40);
	cr_assert_eq(queue_entry_uid(e), (long)UINT32_MAX - 1);
	cr_assert_eq(e->size, UINT32_MAX);
	e = queue_index_add(qi, "U4", 1, 0, (long)UINT32_MAX, 1);
	cr_assert_eq(queue_entry_uid(e), -1, "no uid_t: unknown");
	queue_index_hold(qi, e);
	cr_assert_eq(e->state, QUEUE_HELD);
	cr_assert_eq(e->lane, 1);
	cr_assert_null(queue_index_add(qi, "U5", 3, 0, 0, 0));
	queue_index_free(qi);
}

/*
 * Issue 11's target is at most 300 bytes per queued message in sendqd;
 * the index is all of it that grows with the queue (bodies and envelopes
 * stay on disk, the quota table grows per uid).  Measured through the
 * allocator, with every entry waiting in the heap.
 */
Test(queue_index, memory_per_entry_is_bounded)
{
	struct queue_index *qi;
	char                id[QUEUE_INDEX_ID_MAX];
	size_t              before, after, i, per_entry, own;

	before = test_heap_used();
	qi = queue_index_new(4);
	for (i = 0; i < N_BIG; i++) {
		test_id(id, i);
		queue_index_wait(qi,
		    queue_index_add(qi, id, (int)(i % 4), 0, 1000, 100),
		    (int64_t)i);
	}
	after = test_heap_used();
	per_entry = (after - before) / N_BIG;
	own = queue_index_memory(qi) / N_BIG;
	cr_log_info("queue index: %zu bytes per entry (allocator), %zu (own "
		    "count), record %zu",
	    per_entry, own, sizeof(struct queue_entry));
	cr_assert_leq(per_entry, 200, "%zu bytes per entry", per_entry);
	cr_assert_leq(own, per_entry + 8);
	/* 88: a 96-byte malloc chunk (the header's static assert) */
	cr_assert_leq(sizeof(struct queue_entry), 88);
	queue_index_free(qi);
}
