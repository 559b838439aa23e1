/*
 * test_wal.c - the spool's write-ahead log, in a temporary directory:
 * records back byte for byte, replay order across rotations, a full
 * log, torn records, old epochs, damaged headers and sizes, the shared
 * fdatasync from several threads, and the pure parsers.
 */
#include <criterion/criterion.h>

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wal.h"

static char test_root[64];
static char test_dir[128];

static void
test_setup(void)
{
	strcpy(test_root, "/tmp/sendq-test-wal.XXXXXX");
	cr_assert_not_null(mkdtemp(test_root));
	snprintf(test_dir, sizeof(test_dir), "%s/wal", test_root);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
test_teardown(void)
{
	nftw(test_root, test_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(wal, .init = test_setup, .fini = test_teardown);

static struct wal *
test_open(size_t seg_size)
{
	struct wal   *w = NULL;
	struct sq_err err = { 0 };

	cr_assert_eq(wal_open(test_dir, seg_size, &w, &err), 0, "%s", err.msg);
	return w;
}

/* Open and reset, as the spool does after its replay. */
static struct wal *
test_open_reset(size_t seg_size)
{
	struct wal   *w = test_open(seg_size);
	struct sq_err err = { 0 };

	cr_assert_eq(wal_reset(w, &err), 0, "%s", err.msg);
	return w;
}

static struct wal_rec
test_msg(const char *id, const char *env, const void *body, size_t body_len)
{
	struct wal_rec r = { WAL_MSG, id, strlen(id), env, strlen(env), body,
		body_len };

	return r;
}

static struct wal_rec
test_remove(const char *id)
{
	struct wal_rec r = { WAL_REMOVE, id, strlen(id), NULL, 0, NULL, 0 };

	return r;
}

static struct wal_pos
test_append(struct wal *w, const struct wal_rec *recs, size_t n)
{
	struct wal_pos pos;
	struct sq_err  err = { 0 };

	cr_assert_eq(wal_append(w, recs, n, &pos, &err), 0, "%s", err.msg);
	return pos;
}

static void
test_sync(struct wal *w, const struct wal_pos *pos)
{
	struct sq_err err = { 0 };

	cr_assert_eq(wal_sync(w, pos, &err), 0, "%s", err.msg);
}

/* What a replay gave: copies of up to TEST_MAX records. */
#define TEST_MAX 1000
struct test_got {
	int    n;
	int    type[TEST_MAX];
	char  *id[TEST_MAX];
	char  *a[TEST_MAX];
	size_t a_len[TEST_MAX];
	char  *b[TEST_MAX];
	size_t b_len[TEST_MAX];
};

static char *
test_copy(const void *p, size_t len)
{
	char *c = malloc(len + 1);

	cr_assert_not_null(c);
	if (len > 0)
		memcpy(c, p, len);
	c[len] = '\0';
	return c;
}

static int
test_collect(void *arg, const struct wal_rec *rec)
{
	struct test_got *g = arg;

	cr_assert_lt(g->n, TEST_MAX);
	g->type[g->n] = rec->type;
	g->id[g->n] = test_copy(rec->id, rec->id_len);
	cr_assert_eq(strlen(g->id[g->n]), rec->id_len);
	g->a[g->n] = test_copy(rec->a, rec->a_len);
	g->a_len[g->n] = rec->a_len;
	g->b[g->n] = test_copy(rec->b, rec->b_len);
	g->b_len[g->n] = rec->b_len;
	g->n++;
	return 0;
}

static struct test_got *
test_replay(struct wal *w)
{
	struct test_got *g = calloc(1, sizeof(*g));
	struct sq_err    err = { 0 };
	int              n;

	cr_assert_not_null(g);
	n = wal_replay(w, test_collect, g, &err);
	cr_assert_geq(n, 0, "%s", err.msg);
	cr_assert_eq(n, g->n);
	return g;
}

static void
test_got_free(struct test_got *g)
{
	int i;

	for (i = 0; i < g->n; i++) {
		free(g->id[i]);
		free(g->a[i]);
		free(g->b[i]);
	}
	free(g);
}

static void
test_seg_path(char *path, size_t sz, int seg)
{
	snprintf(path, sz, "%s/%d", test_dir, seg);
}

static off_t
test_seg_size(int seg)
{
	char        path[256];
	struct stat st;

	test_seg_path(path, sizeof(path), seg);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_size;
}

/* Overwrite len bytes at off of segment seg with byte c. */
static void
test_poke(int seg, off_t off, size_t len, int c)
{
	char          path[256];
	unsigned char buf[256];
	int           fd;

	cr_assert_leq(len, sizeof(buf));
	memset(buf, c, len);
	test_seg_path(path, sizeof(path), seg);
	cr_assert_geq(fd = open(path, O_WRONLY), 0);
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

/* A body of len pseudo-random bytes (every byte value, NULs too). */
static unsigned char *
test_body(size_t len, unsigned seed)
{
	unsigned char *b = malloc(len > 0 ? len : 1);
	uint32_t       x = seed * 2654435761u + 1;
	size_t         i;

	cr_assert_not_null(b);
	for (i = 0; i < len; i++) {
		x = x * 1664525u + 1013904223u;
		b[i] = (unsigned char)(x >> 24);
	}
	return b;
}

Test(wal, round_trip_msg_and_remove_byte_exact)
{
	struct wal      *w = test_open_reset(WAL_SEG_SIZE);
	size_t           big_len = 200 * 1024 + 3;
	unsigned char   *big = test_body(big_len, 7);
	const char       env[] = "S alice@example.com\nR bob@example.com\n";
	const char       bin[] = "a\0b\r\n\xff";
	struct wal_rec   recs[4];
	struct wal_pos   pos;
	struct test_got *g;

	recs[0] = test_msg("0000000001ABCDE", env, "Subject: x\r\n\r\nhi\r\n",
	    18);
	recs[1] = test_msg("E", "", NULL, 0);
	recs[2] = test_remove("0000000001ABCDE");
	recs[3] = test_msg("0123456789012345678901234567890123456789012345678"
			   "901234567890123",
	    env, big, big_len);
	cr_assert_eq(recs[3].id_len, WAL_ID_MAX);
	pos = test_append(w, recs, 2);
	cr_assert_eq(pos.seg, 0);
	cr_assert_not(pos.rotated);
	cr_assert_eq(pos.end,
	    WAL_HEADER_SIZE + wal_record_size(&recs[0]) +
		wal_record_size(&recs[1]));
	test_sync(w, &pos);
	pos = test_append(w, &recs[2], 1);
	pos = test_append(w, &recs[3], 1);
	cr_assert_eq(pos.end % 8, 0);
	test_sync(w, &pos);
	{
		struct wal_rec r = test_msg("bin", bin, bin, sizeof(bin));

		r.a_len = sizeof(bin);
		pos = test_append(w, &r, 1);
		test_sync(w, &pos);
	}
	wal_close(w);

	w = test_open(WAL_SEG_SIZE);
	g = test_replay(w);
	cr_assert_eq(g->n, 5);
	cr_assert_eq(g->type[0], WAL_MSG);
	cr_assert_str_eq(g->id[0], "0000000001ABCDE");
	cr_assert_str_eq(g->a[0], env);
	cr_assert_eq(g->b_len[0], 18);
	cr_assert_str_eq(g->b[0], "Subject: x\r\n\r\nhi\r\n");
	cr_assert_eq(g->type[1], WAL_MSG);
	cr_assert_str_eq(g->id[1], "E");
	cr_assert_eq(g->a_len[1], 0);
	cr_assert_eq(g->b_len[1], 0);
	cr_assert_eq(g->type[2], WAL_REMOVE);
	cr_assert_str_eq(g->id[2], "0000000001ABCDE");
	cr_assert_eq(g->a_len[2] + g->b_len[2], 0);
	cr_assert_eq(g->type[3], WAL_MSG);
	cr_assert_eq(strlen(g->id[3]), WAL_ID_MAX);
	cr_assert_eq(g->b_len[3], big_len);
	cr_assert_eq(memcmp(g->b[3], big, big_len), 0);
	cr_assert_eq(g->a_len[4], sizeof(bin));
	cr_assert_eq(memcmp(g->a[4], bin, sizeof(bin)), 0);
	cr_assert_eq(g->b_len[4], sizeof(bin));
	cr_assert_eq(memcmp(g->b[4], bin, sizeof(bin)), 0);
	test_got_free(g);
	wal_close(w);
	free(big);
}

Test(wal, replay_order_across_rotations)
{
	struct wal      *w = test_open_reset(WAL_SEG_MIN);
	unsigned char   *body = test_body(3000, 1);
	struct sq_err    err = { 0 };
	struct wal_rec   r;
	struct wal_pos   pos;
	struct test_got *g;
	char             id[16];
	int              i, n = 0, rotations = 0;

	/* Fill 0, go on in 1; retire 0, fill 1, go on in 0. */
	while (rotations < 2) {
		snprintf(id, sizeof(id), "m%03d", n++);
		r = test_msg(id, "env", body, 3000);
		pos = test_append(w, &r, 1);
		if (pos.rotated) {
			cr_assert_eq(pos.seg, rotations == 0 ? 1 : 0);
			cr_assert_eq(pos.full_seg, 1 - pos.seg);
			cr_assert_eq(pos.end,
			    WAL_HEADER_SIZE + wal_record_size(&r));
			test_sync(w, &pos);
			if (rotations == 0)
				cr_assert_eq(wal_retire(w, 0, &err), 0, "%s",
				    err.msg);
			rotations++;
		}
		test_sync(w, &pos);
	}
	cr_assert_eq(pos.seg, 0);
	cr_assert_gt(n, 8);
	wal_close(w);

	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	/* Segment 1 (its records from m004 or so on) then 0 (the last):
	 * every record since the retire, in append order, none before. */
	cr_assert_gt(g->n, 2);
	for (i = 0; i < g->n; i++) {
		snprintf(id, sizeof(id), "m%03d", n - g->n + i);
		cr_assert_str_eq(g->id[i], id, "record %d", i);
		cr_assert_eq(g->b_len[i], 3000);
		cr_assert_eq(memcmp(g->b[i], body, 3000), 0);
	}
	test_got_free(g);
	wal_close(w);
	free(body);
}

Test(wal, full_log_enospc_until_retire)
{
	struct wal    *w = test_open_reset(WAL_SEG_MIN);
	unsigned char *body = test_body(5000, 2);
	struct sq_err  err = { 0 };
	struct wal_rec r = test_msg("X", "e", body, 5000);
	struct wal_pos pos;
	int            i, rc = 0, full_seg = -1;

	for (i = 0; i < 20; i++) {
		rc = wal_append(w, &r, 1, &pos, &err);
		if (rc != 0)
			break;
		if (pos.rotated)
			full_seg = pos.full_seg;
	}
	cr_assert_eq(rc, -ENOSPC, "%d %s", rc, err.msg);
	cr_assert_eq(err.code, -ENOSPC);
	cr_assert_not_null(strstr(err.msg, "full"), "%s", err.msg);
	cr_assert_eq(full_seg, 0);
	/* 3 records of 5 KiB fill a 16 KiB segment: 6 in all. */
	cr_assert_eq(i, 6);
	/* What still fits in the ACTIVE segment goes there. */
	r.b_len = 1;
	pos = test_append(w, &r, 1);
	cr_assert_eq(pos.seg, 1);
	cr_assert_not(pos.rotated);
	r.b_len = 5000;
	cr_assert_eq(wal_append(w, &r, 1, &pos, &err), -ENOSPC);
	/* Segment 1 is ACTIVE, not FULL: no retire. */
	cr_assert_eq(wal_retire(w, 1, &err), -EINVAL);
	cr_assert_eq(wal_retire(w, 0, &err), 0, "%s", err.msg);
	r.b_len = 5000;
	pos = test_append(w, &r, 1);
	cr_assert(pos.rotated);
	cr_assert_eq(pos.seg, 0);
	cr_assert_eq(pos.full_seg, 1);
	test_sync(w, &pos);
	wal_close(w);
	free(body);
}

Test(wal, emsgsize_past_an_empty_segment)
{
	struct wal    *w = test_open_reset(WAL_SEG_MIN);
	size_t         cap = wal_capacity(w);
	unsigned char *body = test_body(cap, 3);
	struct sq_err  err = { 0 };
	struct wal_rec r[2];
	struct wal_pos pos;

	cr_assert_eq(cap, WAL_SEG_MIN - WAL_HEADER_SIZE);
	r[0] = test_msg("id", "", body, cap);
	cr_assert_eq(wal_append(w, r, 1, &pos, &err), -EMSGSIZE);
	cr_assert_eq(err.code, -EMSGSIZE);
	/* Exactly one segment: fits. */
	r[0].b_len = cap - WAL_REC_HEADER - 8;
	cr_assert_eq(wal_record_size(&r[0]), cap);
	pos = test_append(w, r, 1);
	cr_assert_eq(pos.end, WAL_SEG_MIN);
	/* Two that fit alone but not together. */
	r[0].b_len = cap / 2;
	r[1] = r[0];
	cr_assert_eq(wal_append(w, r, 2, &pos, &err), -EMSGSIZE);
	test_sync(w, &pos);
	wal_close(w);
	free(body);
}

Test(wal, torn_record_ends_the_replay)
{
	struct wal      *w = test_open_reset(WAL_SEG_SIZE);
	unsigned char   *body = test_body(1000, 4);
	struct wal_rec   r;
	struct wal_pos   p1, p2, p3;
	struct test_got *g;

	r = test_msg("one", "e1", body, 1000);
	p1 = test_append(w, &r, 1);
	r = test_msg("two", "e2", body, 1000);
	p2 = test_append(w, &r, 1);
	r = test_msg("three", "e3", body, 1000);
	p3 = test_append(w, &r, 1);
	test_sync(w, &p3);
	wal_close(w);
	cr_assert_eq(p1.seg, 0);
	/* The middle of the second record's body. */
	test_poke(0, (off_t)(p1.end + (p2.end - p1.end) / 2), 16, 0xA5);

	w = test_open(WAL_SEG_SIZE);
	g = test_replay(w);
	cr_assert_eq(g->n, 1);
	cr_assert_str_eq(g->id[0], "one");
	cr_assert_eq(memcmp(g->b[0], body, 1000), 0);
	test_got_free(g);
	wal_close(w);
	free(body);
}

Test(wal, old_epochs_are_not_replayed)
{
	struct wal      *w = test_open_reset(WAL_SEG_MIN);
	unsigned char   *body = test_body(5000, 5);
	struct sq_err    err = { 0 };
	struct wal_rec   r = test_msg("old", "e", body, 5000);
	struct wal_pos   pos;
	struct test_got *g;

	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	g = test_replay(w);
	cr_assert_eq(g->n, 1);
	test_got_free(g);
	/* After a reset: nothing. */
	cr_assert_eq(wal_reset(w, &err), 0, "%s", err.msg);
	g = test_replay(w);
	cr_assert_eq(g->n, 0);
	test_got_free(g);
	wal_close(w);
	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 0);
	test_got_free(g);
	cr_assert_eq(wal_reset(w, &err), 0, "%s", err.msg);

	/* After a retire: only the other segment's. */
	do
		pos = test_append(w, &r, 1);
	while (!pos.rotated);
	r.id = "new";
	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	cr_assert_eq(wal_retire(w, 0, &err), 0, "%s", err.msg);
	wal_close(w);
	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 2);
	cr_assert_str_eq(g->id[0], "old");
	cr_assert_str_eq(g->id[1], "new");
	test_got_free(g);
	wal_close(w);
	free(body);
}

Test(wal, corrupt_header_means_no_records)
{
	struct wal      *w = test_open_reset(WAL_SEG_MIN);
	struct wal_rec   r = test_msg("id", "env", "body", 4);
	struct wal_pos   pos;
	struct test_got *g;

	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	wal_close(w);
	/* One bit of the epoch. */
	test_poke(0, 9, 1, 0x80);
	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 0);
	test_got_free(g);
	/* Appending still works (segment 0 gets a new header first), and
	 * the segments keep their size. */
	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	wal_close(w);
	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 1);
	test_got_free(g);
	wal_close(w);
	cr_assert_eq(test_seg_size(0), WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(1), WAL_SEG_MIN);
}

Test(wal, segments_keep_their_size_and_modes)
{
	struct wal    *w = test_open_reset(WAL_SEG_MIN);
	unsigned char *body = test_body(4000, 6);
	struct wal_rec r = test_msg("s", "e", body, 4000);
	struct wal_pos pos;
	struct stat    st;
	struct sq_err  err = { 0 };
	int            i;

	cr_assert_eq(stat(test_dir, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700);
	cr_assert_eq(test_seg_size(0), WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(1), WAL_SEG_MIN);
	for (i = 0; i < 6; i++) {
		pos = test_append(w, &r, 1);
		test_sync(w, &pos);
	}
	cr_assert_eq(wal_retire(w, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(test_seg_size(0), WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(1), WAL_SEG_MIN);
	wal_close(w);
	free(body);
}

Test(wal, append_without_reset_goes_on_after_the_last_record)
{
	struct wal      *w = test_open_reset(WAL_SEG_MIN);
	struct wal_rec   r = test_msg("a", "env", "body", 4);
	struct wal_pos   pos;
	struct test_got *g;

	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	wal_close(w);
	w = test_open(WAL_SEG_MIN);
	r.id = "b";
	pos = test_append(w, &r, 1);
	cr_assert_eq(pos.seg, 0);
	cr_assert_eq(pos.end, WAL_HEADER_SIZE + 2 * wal_record_size(&r));
	test_sync(w, &pos);
	wal_close(w);
	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 2);
	cr_assert_str_eq(g->id[0], "a");
	cr_assert_str_eq(g->id[1], "b");
	test_got_free(g);
	wal_close(w);
}

Test(wal, segment_of_the_wrong_size_is_made_again)
{
	struct wal      *w;
	struct test_got *g;
	struct wal_rec   r = test_msg("kept", "env", "body", 4);
	struct wal_pos   pos;
	struct sq_err    err = { 0 };
	char             path[256];
	int              fd;

	/* Debris: a short "1" without a header (no records). */
	cr_assert_eq(mkdir(test_dir, 0700), 0);
	test_seg_path(path, sizeof(path), 1);
	cr_assert_geq(fd = open(path, O_WRONLY | O_CREAT, 0600), 0);
	cr_assert_eq(write(fd, "junk", 4), 4);
	close(fd);
	w = test_open_reset(WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(1), WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(0), WAL_SEG_MIN);
	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	wal_close(w);

	/* seg_size changed with a record pending: the record is replayed,
	 * and the reset gives the segment the new size. */
	w = test_open(2 * WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(0), WAL_SEG_MIN);
	cr_assert_eq(test_seg_size(1), 2 * WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 1);
	cr_assert_str_eq(g->id[0], "kept");
	test_got_free(g);
	cr_assert_eq(wal_reset(w, &err), 0, "%s", err.msg);
	cr_assert_eq(test_seg_size(0), 2 * WAL_SEG_MIN);
	g = test_replay(w);
	cr_assert_eq(g->n, 0);
	test_got_free(g);
	wal_close(w);
}

Test(wal, open_refuses_a_small_segment_size)
{
	struct wal   *w = NULL;
	struct sq_err err = { 0 };

	cr_assert_eq(wal_open(test_dir, WAL_SEG_MIN - 1, &w, &err), -EINVAL);
	cr_assert_null(w);
	cr_assert_neq(err.msg[0], '\0');
}

/* Several threads appending and syncing at once. */
#define TEST_THREADS 4
#define TEST_PER     200

struct test_thread {
	struct wal *w;
	int         t;
	int         failed;
};

static void *
test_thread_main(void *arg)
{
	struct test_thread *th = arg;
	struct sq_err       err = { 0 };
	struct wal_rec      r;
	struct wal_pos      pos;
	char                id[16], body[64];
	int                 i;

	for (i = 0; i < TEST_PER; i++) {
		snprintf(id, sizeof(id), "t%d-%03d", th->t, i);
		snprintf(body, sizeof(body), "body of %s", id);
		r = test_msg(id, "env", body, strlen(body));
		if (wal_append(th->w, &r, 1, &pos, &err) != 0 ||
		    wal_sync(th->w, &pos, &err) != 0)
			th->failed++;
	}
	return NULL;
}

Test(wal, concurrent_syncs_cover_every_record, .timeout = 120)
{
	struct wal        *w = test_open_reset(WAL_SEG_SIZE);
	struct test_thread th[TEST_THREADS];
	pthread_t          tid[TEST_THREADS];
	struct test_got   *g;
	int                seen[TEST_THREADS][TEST_PER] = { { 0 } };
	int                i, t, k;
	char               body[64];

	for (i = 0; i < TEST_THREADS; i++) {
		th[i].w = w;
		th[i].t = i;
		th[i].failed = 0;
		cr_assert_eq(
		    pthread_create(&tid[i], NULL, test_thread_main, &th[i]), 0);
	}
	for (i = 0; i < TEST_THREADS; i++) {
		pthread_join(tid[i], NULL);
		cr_assert_eq(th[i].failed, 0);
	}
	wal_close(w);
	w = test_open(WAL_SEG_SIZE);
	g = test_replay(w);
	cr_assert_eq(g->n, TEST_THREADS * TEST_PER);
	for (i = 0; i < g->n; i++) {
		cr_assert_eq(sscanf(g->id[i], "t%d-%d", &t, &k), 2);
		cr_assert(t >= 0 && t < TEST_THREADS && k >= 0 && k < TEST_PER);
		/* Each thread's records in its order. */
		cr_assert(k == 0 || seen[t][k - 1], "%s", g->id[i]);
		cr_assert_not(seen[t][k]++, "%s twice", g->id[i]);
		snprintf(body, sizeof(body), "body of %s", g->id[i]);
		cr_assert_str_eq(g->b[i], body);
	}
	test_got_free(g);
	wal_close(w);
}

/* Appenders in small segments that retire a segment as soon as they
 * fill it (their records there are "made redundant"): rotations, retires
 * and syncs of both segments at once. */
struct test_rotator {
	struct wal *w;
	int         t;
	int         failed, full, rotations;
};

static void *
test_rotator_main(void *arg)
{
	struct test_rotator *th = arg;
	struct sq_err        err = { 0 };
	struct wal_rec       r;
	struct wal_pos       pos;
	char                 id[16], body[700];
	int                  i, rc;

	memset(body, 'a' + th->t, sizeof(body));
	for (i = 0; i < TEST_PER; i++) {
		snprintf(id, sizeof(id), "r%d-%03d", th->t, i);
		r = test_msg(id, "env", body, sizeof(body));
		rc = wal_append(th->w, &r, 1, &pos, &err);
		if (rc == -ENOSPC) {
			th->full++;
			continue;
		}
		if (rc != 0 || wal_sync(th->w, &pos, &err) != 0) {
			th->failed++;
			continue;
		}
		if (pos.rotated) {
			th->rotations++;
			if (wal_retire(th->w, pos.full_seg, &err) != 0)
				th->failed++;
		}
	}
	return NULL;
}

Test(wal, concurrent_rotations_and_retires, .timeout = 120)
{
	struct wal         *w = test_open_reset(WAL_SEG_MIN);
	struct test_rotator th[TEST_THREADS];
	pthread_t           tid[TEST_THREADS];
	struct test_got    *g;
	int                 i, rotations = 0;

	for (i = 0; i < TEST_THREADS; i++) {
		memset(&th[i], 0, sizeof(th[i]));
		th[i].w = w;
		th[i].t = i;
		cr_assert_eq(
		    pthread_create(&tid[i], NULL, test_rotator_main, &th[i]),
		    0);
	}
	for (i = 0; i < TEST_THREADS; i++) {
		pthread_join(tid[i], NULL);
		cr_assert_eq(th[i].failed, 0);
		rotations += th[i].rotations;
	}
	/* 800 records of ~750 bytes through segments of 16 KiB. */
	cr_assert_gt(rotations, 10);
	wal_close(w);
	w = test_open(WAL_SEG_MIN);
	g = test_replay(w);
	/* At most what two segments hold, each record whole. */
	cr_assert_gt(g->n, 0);
	cr_assert_leq(g->n, 2 * (WAL_SEG_MIN / 752));
	for (i = 0; i < g->n; i++) {
		cr_assert_eq(g->b_len[i], 700);
		cr_assert_eq(g->id[i][0], 'r');
		cr_assert_eq((unsigned char)g->b[i][0],
		    'a' + (g->id[i][1] - '0'));
	}
	test_got_free(g);
	wal_close(w);
}

Test(wal, sync_of_a_retired_use_and_of_synced_data)
{
	struct wal    *w = test_open_reset(WAL_SEG_MIN);
	unsigned char *body = test_body(5000, 8);
	struct wal_rec r = test_msg("x", "e", body, 5000);
	struct wal_pos first, pos;
	struct sq_err  err = { 0 };

	first = test_append(w, &r, 1);
	test_sync(w, &first);
	/* Synced already: at once, and again. */
	test_sync(w, &first);
	do
		pos = test_append(w, &r, 1);
	while (!pos.rotated);
	cr_assert_eq(wal_retire(w, 0, &err), 0, "%s", err.msg);
	/* A position in segment 0's retired use. */
	test_sync(w, &first);
	pos.seg = 2;
	cr_assert_eq(wal_sync(w, &pos, &err), -EINVAL);
	wal_close(w);
	free(body);
}

/* A real record for the parser (id "ab", a "xyz", b empty): the first
 * sz bytes after segment 0's header into buf, the header into hdr;
 * returns the record's size. */
static size_t
test_encode(unsigned char *buf, size_t sz, unsigned char *hdr)
{
	struct wal    *w = test_open_reset(WAL_SEG_MIN);
	struct wal_rec r = test_msg("ab", "xyz", NULL, 0);
	struct wal_pos pos;
	char           path[256];
	int            fd;

	pos = test_append(w, &r, 1);
	test_sync(w, &pos);
	wal_close(w);
	test_seg_path(path, sizeof(path), 0);
	cr_assert_geq(fd = open(path, O_RDONLY), 0);
	cr_assert_eq(pread(fd, hdr, WAL_HEADER_SIZE, 0), WAL_HEADER_SIZE);
	cr_assert_eq(pread(fd, buf, sz, WAL_HEADER_SIZE), (ssize_t)sz);
	close(fd);
	return (size_t)(pos.end - WAL_HEADER_SIZE);
}

Test(wal, parse_record_checks_every_field)
{
	unsigned char  buf[64], bad[64];
	struct wal_rec rec;
	uint64_t       epoch = 0;
	size_t         len, used, i;
	unsigned char  hdr[WAL_HEADER_SIZE];

	len = test_encode(buf, sizeof(buf), hdr);
	cr_assert_eq(len, 40);
	cr_assert(wal_parse_header(hdr, &epoch));
	cr_assert(wal_parse_record(buf, len, epoch, &rec, &used));
	cr_assert_eq(used, 40);
	cr_assert_eq(rec.type, WAL_MSG);
	cr_assert_eq(rec.id_len, 2);
	cr_assert_eq(memcmp(rec.id, "ab", 2), 0);
	cr_assert_eq(rec.a_len, 3);
	cr_assert_eq(memcmp(rec.a, "xyz", 3), 0);
	cr_assert_eq(rec.b_len, 0);
	/* Another epoch, any truncation, any changed byte of the header
	 * or payload: not a record. */
	cr_assert_not(wal_parse_record(buf, len, epoch + 1, &rec, &used));
	for (i = 0; i < len; i++)
		cr_assert_not(wal_parse_record(buf, i, epoch, &rec, &used),
		    "%zu", i);
	for (i = 0; i < 32 + 5; i++) {
		memcpy(bad, buf, sizeof(bad));
		bad[i] ^= 0x01;
		cr_assert_not(wal_parse_record(bad, len, epoch, &rec, &used),
		    "%zu", i);
	}
	/* Huge lengths: refused, nothing read past avail. */
	memcpy(bad, buf, sizeof(bad));
	memset(bad + 20, 0xff, 8);
	cr_assert_not(wal_parse_record(bad, len, epoch, &rec, &used));
	/* The header: a changed byte of the first 20 makes it invalid. */
	for (i = 0; i < 20; i++) {
		unsigned char h2[WAL_HEADER_SIZE];
		uint64_t      e;

		memcpy(h2, hdr, sizeof(h2));
		h2[i] ^= 0x10;
		cr_assert_not(wal_parse_header(h2, &e), "%zu", i);
	}
}
