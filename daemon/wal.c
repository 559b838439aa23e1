/*
 * wal.c - the spool's write-ahead log (format and contract: wal.h).
 *
 * How it works.  Each segment is one file of a fixed size, opened once
 * and only ever overwritten in place; an append is one pwrite at the
 * ACTIVE segment's end, made under the log's mutex, and wal_sync is an
 * fdatasync of that segment shared by every caller it covers.  Per
 * segment the log keeps what was written (written) and what a finished
 * fdatasync covered (synced), as offsets into the segment's current use;
 * "use" counts the times the segment was made FREE again (wal_retire,
 * wal_reset), so that an fdatasync that started in an earlier use never
 * counts for the new one.
 *
 * Epochs and order.  A segment becomes FREE with a header of a new epoch
 * (one more than any epoch seen), so a FREE segment's epoch is always
 * larger than the ACTIVE one's, and replaying the segment of the smaller
 * epoch first replays records in the order they were appended.  A record
 * carries its segment's epoch: what a segment held before its last
 * retire never parses as one of its records again.
 *
 * After wal_open, without wal_reset (the spool resets after its replay;
 * this is for other callers): the segment whose valid header has the
 * larger epoch is ACTIVE, appended to after its last valid record (a
 * record of the same epoch that a crash left past a torn one could then
 * become reachable again: wal_reset is what rules that out) -- unless it
 * has no record and the other has: then the other is ACTIVE and it is
 * FREE (as wal_reset and wal_retire leave them).  The one that is not
 * ACTIVE is FULL when it holds valid records; else FREE, and "fresh"
 * when its epoch is not larger than the ACTIVE one's (or its header is
 * not valid): a header with a new epoch is written and synced before
 * the first append to it, so that the replay order stays the append
 * order.  With no valid header at all, segment 0 is ACTIVE, both fresh.
 *
 * Failures.  A failed or short write of an append, or a failed
 * fdatasync, leaves the segment's current use "broken": its data may not
 * be on disk whatever a later fdatasync says (Linux reports a writeback
 * error once), so every wal_sync of that use fails with the same error,
 * and an ACTIVE segment becomes FULL (the next append goes on in the
 * other and reports the rotation).  wal_retire and wal_reset give the
 * segment a new use.  A failed write into the segment just rotated into
 * leaves the rotation undone: that segment is FREE and fresh again.
 *
 * Size.  A segment of another size without a valid record (a crash while
 * creating it, or seg_size changed) is created again by wal_open; one that
 * holds valid records (seg_size changed while records were pending) is
 * kept as it is, its records bounded by its own size, until wal_reset or
 * wal_retire give it seg_size in place (header first, so that its records
 * are gone before its size changes).
 *
 * Crash windows.  Creating a segment: a temporary name written in full
 * and synced, then renamed in and the directory synced: a crash leaves
 * the old state or a whole new segment (a stray temporary file is
 * replaced the next time).  An append that was not synced may be lost,
 * whole or torn: the segment's records end before it.  wal_retire: until
 * its header is on disk the segment's old records still replay (the
 * caller made them redundant, so replaying them again is harmless).
 */
#include <sys/stat.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "log.h"
#include "wal.h"

#define WAL_MAGIC_LEN   8
#define WAL_HDR_CRC_OFF 16
#define WAL_ZERO_CHUNK  (256 * 1024)
#define WAL_REC_CRC_OFF 28
#define WAL_REPLAY_BUF0 (4 * 1024)

/* A segment header's first bytes (no NUL). */
static const unsigned char wal_magic[WAL_MAGIC_LEN] = "SQWAL001";

_Static_assert(WAL_REC_CRC_OFF + 4 == WAL_REC_HEADER, "record header");
_Static_assert(WAL_HDR_CRC_OFF + 4 <= WAL_HEADER_SIZE, "segment header");

enum wal_state {
	WAL_STATE_FREE,
	WAL_STATE_ACTIVE,
	WAL_STATE_FULL,
	WAL_STATE_RETIRING, /* wal_retire is writing its header */
};

struct wal_seg {
	int            fd;
	uint64_t       size;   /* the file's: seg_size, but see "Size" */
	int            hdr_ok; /* the header is valid: epoch is its */
	uint64_t       epoch;
	int            fresh; /* needs a header of a new epoch before use */
	enum wal_state state;
	uint64_t       written; /* end of what this use's appends wrote */
	uint64_t       synced;  /* end of what an fdatasync covered */
	uint64_t       use;     /* one more at every wal_retire/wal_reset */
	int            syncing; /* a wal_sync leader is in fdatasync */
	int            broken;  /* -errno: this use's data is not durable */
};

struct wal {
	char           *dir;
	int             dir_fd;
	uint64_t        seg_size;
	uint64_t        max_epoch; /* the largest epoch seen or given */
	int             active;    /* the segment appended to */
	pthread_mutex_t mu;
	pthread_cond_t  synced; /* broadcast when a leader's fdatasync ends */
	struct wal_seg  seg[2];
};

static void
wal_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static void
wal_put64(unsigned char *p, uint64_t v)
{
	wal_put32(p, (uint32_t)v);
	wal_put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t
wal_get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static uint64_t
wal_get64(const unsigned char *p)
{
	return (uint64_t)wal_get32(p) | (uint64_t)wal_get32(p + 4) << 32;
}

/* Fill err with "OP DIR/NAME: strerror(-code)" and return code. */
static int
wal_fail(struct sq_err *err, int code, const char *op, const struct wal *w,
    const char *name)
{
	return sq_err_set(err, code, "%s %s%s%s: %s", op, w->dir,
	    name != NULL ? "/" : "", name != NULL ? name : "", strerror(-code));
}

/* The file name of segment i ("0", "1"). */
static const char *
wal_seg_name(int i)
{
	return i == 0 ? "0" : "1";
}

/* A segment's size with padding, from the three lengths; 64 bits, so
 * that no u32 lengths can overflow it. */
static uint64_t
wal_padded(uint64_t id_len, uint64_t a_len, uint64_t b_len)
{
	return (WAL_REC_HEADER + id_len + a_len + b_len + 7) & ~(uint64_t)7;
}

/*
 * The fixed part of a record (WAL_REC_HEADER bytes at p): when its magic,
 * type, epoch and id length are right, the record's whole size with
 * padding; else 0.  Shared by wal_parse_record and the replay, which
 * checks the size against the segment before it reads or allocates.
 */
static uint64_t
wal_rec_check(const unsigned char *p, uint64_t epoch)
{
	uint32_t type = wal_get32(p + 4), id_len = wal_get32(p + 16);

	if (wal_get32(p) != WAL_REC_MAGIC ||
	    (type != WAL_MSG && type != WAL_REMOVE) ||
	    wal_get64(p + 8) != epoch || id_len < 1 || id_len > WAL_ID_MAX)
		return 0;
	return wal_padded(id_len, wal_get32(p + 20), wal_get32(p + 24));
}

int
wal_parse_record(const unsigned char *buf, size_t avail, uint64_t epoch,
    struct wal_rec *rec, size_t *used)
{
	uint64_t total, plen;
	uint32_t crc;

	if (avail < WAL_REC_HEADER ||
	    (total = wal_rec_check(buf, epoch)) == 0 || total > avail)
		return 0;
	plen = (uint64_t)wal_get32(buf + 16) + wal_get32(buf + 20) +
	    wal_get32(buf + 24);
	crc = (uint32_t)crc32_z(0, buf, WAL_REC_CRC_OFF);
	crc = (uint32_t)crc32_z(crc, buf + WAL_REC_HEADER, (size_t)plen);
	if (crc != wal_get32(buf + WAL_REC_CRC_OFF))
		return 0;
	rec->type = (enum wal_type)wal_get32(buf + 4);
	rec->id = (const char *)buf + WAL_REC_HEADER;
	rec->id_len = wal_get32(buf + 16);
	rec->a = rec->id + rec->id_len;
	rec->a_len = wal_get32(buf + 20);
	rec->b = (const char *)rec->a + rec->a_len;
	rec->b_len = wal_get32(buf + 24);
	*used = (size_t)total;
	return 1;
}

int
wal_parse_header(const unsigned char *hdr, uint64_t *epoch)
{
	if (memcmp(hdr, wal_magic, WAL_MAGIC_LEN) != 0 ||
	    (uint32_t)crc32_z(0, hdr, WAL_HDR_CRC_OFF) !=
		wal_get32(hdr + WAL_HDR_CRC_OFF))
		return 0;
	*epoch = wal_get64(hdr + WAL_MAGIC_LEN);
	return 1;
}

static void
wal_make_header(unsigned char *hdr, uint64_t epoch)
{
	memset(hdr, 0, WAL_HEADER_SIZE);
	memcpy(hdr, wal_magic, sizeof(wal_magic));
	wal_put64(hdr + WAL_MAGIC_LEN, epoch);
	wal_put32(hdr + WAL_HDR_CRC_OFF,
	    (uint32_t)crc32_z(0, hdr, WAL_HDR_CRC_OFF));
}

size_t
wal_record_size(const struct wal_rec *rec)
{
	uint64_t n;

	/* Saturates rather than wraps: a size past any segment. */
	if (rec->id_len > UINT32_MAX || rec->a_len > UINT32_MAX ||
	    rec->b_len > UINT32_MAX)
		return SIZE_MAX;
	n = wal_padded(rec->id_len, rec->a_len, rec->b_len);
	return n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

size_t
wal_capacity(const struct wal *w)
{
	return (size_t)(w->seg_size - WAL_HEADER_SIZE);
}

/* Zeros into fd over [from, to), in large chunks: the blocks become the
 * file's, written, so that later appends change no extent.  The chunks
 * are one page of zeros repeated (pwritev), not a buffer of their size:
 * a large allocation freed again would raise malloc's mmap threshold and,
 * with it, sendqd's peak RSS (scripts/bench's drain: +0.5-0.7 MiB). */
static int
wal_write_zeros(int fd, uint64_t from, uint64_t to)
{
	static unsigned char zero[4096]; /* never written: iov_base is not
					  * const */
	struct iovec         iov[WAL_ZERO_CHUNK / sizeof(zero)];
	size_t               i, n, k;
	ssize_t              w;

	for (i = 0; i < sizeof(iov) / sizeof(iov[0]); i++) {
		iov[i].iov_base = zero;
		iov[i].iov_len = sizeof(zero);
	}
	while (from < to) {
		n = to - from < WAL_ZERO_CHUNK ? (size_t)(to - from) :
						 WAL_ZERO_CHUNK;
		k = (n + sizeof(zero) - 1) / sizeof(zero);
		iov[k - 1].iov_len = n - (k - 1) * sizeof(zero);
		w = pwritev(fd, iov, (int)k, (off_t)from);
		iov[k - 1].iov_len = sizeof(zero);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		from += (uint64_t)w; /* a short write: the rest next round */
	}
	return 0;
}

/* The next epoch, one more than any seen (under the mutex once other
 * threads may run).  0, or -EOVERFLOW: epochs never wrap. */
static int
wal_next_epoch(struct wal *w, uint64_t *epoch, struct sq_err *err)
{
	*epoch = 0;
	if (w->max_epoch == UINT64_MAX)
		return sq_err_set(err, -EOVERFLOW, "wal %s: no epoch left",
		    w->dir);
	*epoch = ++w->max_epoch;
	return 0;
}

/*
 * Create segment i as w->seg_size bytes of zeros with a header of a new
 * epoch under a temporary name, fsync it, rename it in and fsync the
 * directory; then open it.  Whatever was at the name is replaced.
 */
static int
wal_create_seg(struct wal *w, int i, struct sq_err *err)
{
	struct wal_seg *s = &w->seg[i];
	unsigned char   hdr[WAL_HEADER_SIZE];
	char            tmp[16];
	uint64_t        epoch;
	int             fd, rc;

	if ((rc = wal_next_epoch(w, &epoch, err)) != 0)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.tmp", wal_seg_name(i));
	(void)unlinkat(w->dir_fd, tmp, 0);
	fd = openat(w->dir_fd, tmp,
	    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return wal_fail(err, -errno, "create", w, tmp);
	wal_make_header(hdr, epoch);
	if ((rc = wal_write_zeros(fd, 0, w->seg_size)) != 0 ||
	    (rc = sq_pwrite_all(fd, hdr, sizeof(hdr), 0)) != 0) {
		wal_fail(err, rc, "write", w, tmp);
		goto fail;
	}
	if (fsync(fd) != 0) {
		rc = wal_fail(err, -errno, "fsync", w, tmp);
		goto fail;
	}
	if (renameat(w->dir_fd, tmp, w->dir_fd, wal_seg_name(i)) != 0) {
		rc = wal_fail(err, -errno, "rename", w, tmp);
		goto fail;
	}
	if (fsync(w->dir_fd) != 0) {
		/* The segment is whole under its name; only the name might
		 * not survive a power cut, which the next open mends. */
		close(fd);
		return wal_fail(err, -errno, "fsync", w, NULL);
	}
	if (s->fd >= 0)
		close(s->fd);
	s->fd = fd;
	s->size = w->seg_size;
	s->hdr_ok = 1;
	s->epoch = epoch;
	log_info("wal %s/%s: created (%llu bytes, epoch %llu)", w->dir,
	    wal_seg_name(i), (unsigned long long)w->seg_size,
	    (unsigned long long)epoch);
	return 0;
fail:
	close(fd);
	(void)unlinkat(w->dir_fd, tmp, 0);
	return rc;
}

/*
 * Give segment s a header of a new epoch and seg_size (in place: the
 * header first, so that its records are gone before its size changes),
 * synced.  Called with no append able to reach s (RETIRING, or before
 * other threads run).  The epoch is taken by the caller.
 */
static int
wal_renew_seg(struct wal *w, int i, uint64_t epoch, struct sq_err *err)
{
	struct wal_seg *s = &w->seg[i];
	unsigned char   hdr[WAL_HEADER_SIZE];
	int             rc;

	wal_make_header(hdr, epoch);
	if ((rc = sq_pwrite_all(s->fd, hdr, sizeof(hdr), 0)) != 0)
		return wal_fail(err, rc, "write", w, wal_seg_name(i));
	if (s->size == w->seg_size) {
		if (fdatasync(s->fd) != 0)
			return wal_fail(err, -errno, "fdatasync", w,
			    wal_seg_name(i));
		return 0;
	}
	if (ftruncate(s->fd, (off_t)w->seg_size) != 0)
		return wal_fail(err, -errno, "truncate", w, wal_seg_name(i));
	if ((rc = wal_write_zeros(s->fd, s->size, w->seg_size)) != 0)
		return wal_fail(err, rc, "write", w, wal_seg_name(i));
	if (fsync(s->fd) != 0)
		return wal_fail(err, -errno, "fsync", w, wal_seg_name(i));
	log_info("wal %s/%s: resized from %llu to %llu bytes", w->dir,
	    wal_seg_name(i), (unsigned long long)s->size,
	    (unsigned long long)w->seg_size);
	return 0;
}

/* Segment s is FREE with the header (epoch) just synced by
 * wal_renew_seg: a new use (under the mutex once other threads run). */
static void
wal_seg_reused(const struct wal *w, struct wal_seg *s, uint64_t epoch)
{
	s->size = w->seg_size;
	s->hdr_ok = 1;
	s->epoch = epoch;
	s->fresh = 0;
	s->state = WAL_STATE_FREE;
	s->written = s->synced = WAL_HEADER_SIZE;
	s->broken = 0;
	s->use++;
}

/*
 * Read segment i's records from WAL_HEADER_SIZE on, streaming: each
 * record's fixed part, its size checked against what is left of the
 * segment, then the whole record into *buf (grown as needed, kept for
 * the next record).  cb (NULL: none) gets each valid record; a non-zero
 * return stops the scan and is put in *cb_rc.  *end is the offset after
 * the last valid record, *count their number.  0 or -errno with err.
 */
static int
wal_scan(struct wal *w, int i, int (*cb)(void *, const struct wal_rec *),
    void *arg, unsigned char **buf, size_t *bufsz, uint64_t *end, int *count,
    int *cb_rc, struct sq_err *err)
{
	struct wal_seg *s = &w->seg[i];
	unsigned char   head[WAL_REC_HEADER];
	struct wal_rec  rec;
	uint64_t        off = WAL_HEADER_SIZE, total;
	size_t          used;
	int             rc;

	*end = off;
	*count = 0;
	*cb_rc = 0;
	if (!s->hdr_ok)
		return 0;
	while (off < s->size && s->size - off >= WAL_REC_HEADER) {
		if ((rc = sq_pread_all(s->fd, head, sizeof(head), (off_t)off)) <
		    0)
			return wal_fail(err, rc, "read", w, wal_seg_name(i));
		if (rc > 0 || (total = wal_rec_check(head, s->epoch)) == 0 ||
		    total > s->size - off)
			break;
		if (*bufsz < total) {
			free(*buf);
			*bufsz = total;
			*buf = xmalloc((size_t)total);
		}
		if ((rc = sq_pread_all(s->fd, *buf, (size_t)total,
			 (off_t)off)) < 0)
			return wal_fail(err, rc, "read", w, wal_seg_name(i));
		if (rc > 0 ||
		    !wal_parse_record(*buf, (size_t)total, s->epoch, &rec,
			&used))
			break;
		if (cb != NULL && (*cb_rc = cb(arg, &rec)) != 0)
			return 0;
		(*count)++;
		off += used;
		*end = off;
	}
	return 0;
}

/* Open dirpath, making it 0700 (and syncing its parent) when missing. */
static int
wal_open_dir(struct wal *w, struct sq_err *err)
{
	struct stat st;
	char       *parent, *slash;
	int         fd;

	if (stat(w->dir, &st) != 0) {
		if (errno != ENOENT)
			return wal_fail(err, -errno, "stat", w, NULL);
		if (mkdir(w->dir, 0700) != 0 && errno != EEXIST)
			return wal_fail(err, -errno, "mkdir", w, NULL);
		/* The umask may have taken bits away: set the mode. */
		if (chmod(w->dir, 0700) != 0)
			return wal_fail(err, -errno, "chmod", w, NULL);
		/* The new name in the parent, durable too. */
		if ((slash = strrchr(w->dir, '/')) == NULL)
			parent = xstrdup(".");
		else
			parent = xstrndup(w->dir,
			    slash == w->dir ? 1 : (size_t)(slash - w->dir));
		fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			(void)fsync(fd);
			close(fd);
		}
		free(parent);
	}
	w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0)
		return wal_fail(err, -errno, "open", w, NULL);
	return 0;
}

/* Open segment i if it is there and read its header: 0 (s->fd -1 when
 * missing) or -errno with err. */
static int
wal_load_seg(struct wal *w, int i, struct sq_err *err)
{
	struct wal_seg *s = &w->seg[i];
	unsigned char   hdr[WAL_HEADER_SIZE];
	struct stat     st;
	int             rc;

	s->fd = openat(w->dir_fd, wal_seg_name(i),
	    O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (s->fd < 0) {
		if (errno == ENOENT)
			return 0;
		return wal_fail(err, -errno, "open", w, wal_seg_name(i));
	}
	if (fstat(s->fd, &st) != 0)
		return wal_fail(err, -errno, "stat", w, wal_seg_name(i));
	if (!S_ISREG(st.st_mode))
		return wal_fail(err, -EINVAL, "open", w, wal_seg_name(i));
	s->size = (uint64_t)st.st_size;
	if (s->size >= WAL_HEADER_SIZE) {
		rc = sq_pread_all(s->fd, hdr, sizeof(hdr), 0);
		if (rc < 0)
			return wal_fail(err, rc, "read", w, wal_seg_name(i));
		if (rc == 0 && wal_parse_header(hdr, &s->epoch)) {
			s->hdr_ok = 1;
			if (s->epoch > w->max_epoch)
				w->max_epoch = s->epoch;
		}
	}
	return 0;
}

/* The states after wal_open (see "After wal_open" above); ends[] and
 * counts[] from scanning both segments. */
static void
wal_initial_states(struct wal *w, const uint64_t *ends, const int *counts)
{
	struct wal_seg *s0 = &w->seg[0], *s1 = &w->seg[1];
	int             big, a, o;

	if (!s0->hdr_ok && !s1->hdr_ok)
		big = 0;
	else if (!s0->hdr_ok || !s1->hdr_ok)
		big = s1->hdr_ok ? 1 : 0;
	else
		big = s1->epoch >= s0->epoch ? 1 : 0;
	/* The larger epoch without records and the other with: a FREE
	 * segment after the ACTIVE one, as wal_reset and wal_retire leave
	 * them. */
	a = counts[big] == 0 && counts[1 - big] > 0 ? 1 - big : big;
	o = 1 - a;
	w->active = a;
	w->seg[a].state = WAL_STATE_ACTIVE;
	w->seg[a].fresh = !w->seg[a].hdr_ok;
	w->seg[a].written = w->seg[a].synced = ends[a];
	if (counts[o] > 0)
		w->seg[o].state = WAL_STATE_FULL;
	else
		w->seg[o].state = WAL_STATE_FREE;
	/* A FREE segment needs an epoch larger than the ACTIVE one's. */
	w->seg[o].fresh = !w->seg[o].hdr_ok || o != big;
	w->seg[o].written = w->seg[o].synced = ends[o];
}

int
wal_open(const char *dirpath, size_t seg_size, struct wal **out,
    struct sq_err *err)
{
	struct wal    *w;
	unsigned char *buf = NULL;
	size_t         bufsz = 0;
	uint64_t       ends[2];
	int            counts[2], cb_rc, i, rc;

	if (seg_size < WAL_SEG_MIN)
		return sq_err_set(err, -EINVAL,
		    "wal %s: segment size %zu below %u", dirpath, seg_size,
		    WAL_SEG_MIN);
	w = xcalloc(1, sizeof(*w));
	w->dir = xstrdup(dirpath);
	w->dir_fd = w->seg[0].fd = w->seg[1].fd = -1;
	w->seg_size = seg_size;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->synced, NULL);
	if ((rc = wal_open_dir(w, err)) != 0)
		goto fail;
	for (i = 0; i < 2; i++)
		if ((rc = wal_load_seg(w, i, err)) != 0)
			goto fail;
	for (i = 0; i < 2; i++) {
		if (w->seg[i].fd >= 0 &&
		    (rc = wal_scan(w, i, NULL, NULL, &buf, &bufsz, &ends[i],
			 &counts[i], &cb_rc, err)) != 0)
			goto fail;
		if (w->seg[i].fd >= 0 &&
		    (w->seg[i].size == w->seg_size || counts[i] > 0))
			continue;
		if (w->seg[i].fd >= 0)
			log_warn("wal %s/%s: %llu bytes, not %zu, and no "
				 "record: made again",
			    w->dir, wal_seg_name(i),
			    (unsigned long long)w->seg[i].size, seg_size);
		if ((rc = wal_create_seg(w, i, err)) != 0)
			goto fail;
		ends[i] = WAL_HEADER_SIZE;
		counts[i] = 0;
	}
	free(buf);
	wal_initial_states(w, ends, counts);
	*out = w;
	return 0;
fail:
	free(buf);
	wal_close(w);
	return rc;
}

void
wal_close(struct wal *w)
{
	int i;

	if (w == NULL)
		return;
	for (i = 0; i < 2; i++)
		if (w->seg[i].fd >= 0)
			close(w->seg[i].fd);
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->synced);
	free(w->dir);
	free(w);
}

int
wal_replay(struct wal *w, int (*cb)(void *arg, const struct wal_rec *rec),
    void *arg, struct sq_err *err)
{
	unsigned char *buf = NULL;
	size_t         bufsz = 0;
	uint64_t       end;
	int            order[2], k, n, total = 0, cb_rc = 0, rc = 0;

	/* The smaller epoch first (equal epochs: segment 0 first). */
	order[0] = (w->seg[0].hdr_ok && w->seg[1].hdr_ok &&
		       w->seg[1].epoch < w->seg[0].epoch) ?
	    1 :
	    0;
	order[1] = 1 - order[0];
	for (k = 0; k < 2 && rc == 0 && cb_rc == 0; k++) {
		if (bufsz == 0) {
			bufsz = WAL_REPLAY_BUF0;
			buf = xmalloc(bufsz);
		}
		rc = wal_scan(w, order[k], cb, arg, &buf, &bufsz, &end, &n,
		    &cb_rc, err);
		total += n;
	}
	free(buf);
	if (rc != 0)
		return rc;
	return cb_rc != 0 ? cb_rc : total;
}

int
wal_reset(struct wal *w, struct sq_err *err)
{
	uint64_t epoch;
	int      i, rc;

	/* Segment 0 first: it gets the smaller epoch, being ACTIVE. */
	for (i = 0; i < 2; i++) {
		if ((rc = wal_next_epoch(w, &epoch, err)) != 0 ||
		    (rc = wal_renew_seg(w, i, epoch, err)) != 0)
			return rc;
		wal_seg_reused(w, &w->seg[i], epoch);
	}
	w->active = 0;
	w->seg[0].state = WAL_STATE_ACTIVE;
	return 0;
}

/* Segment i's "fresh" header (see "After wal_open"), under the mutex:
 * only the path that opened without wal_reset ever pays for it. */
static int
wal_freshen(struct wal *w, int i, struct sq_err *err)
{
	struct wal_seg *s = &w->seg[i];
	enum wal_state  state = s->state;
	uint64_t        epoch;
	int             rc;

	if (!s->fresh)
		return 0;
	if ((rc = wal_next_epoch(w, &epoch, err)) != 0 ||
	    (rc = wal_renew_seg(w, i, epoch, err)) != 0)
		return rc;
	wal_seg_reused(w, s, epoch);
	s->state = state;
	return 0;
}

/*
 * Encode recs into buf, all but each record's epoch and CRC, which need
 * the segment (known under the mutex only): the CRC field holds the
 * payload's CRC meanwhile, for wal_seal to combine with the header's.
 * The payload's CRC is the costly part (bodies of hundreds of KiB), so
 * it is computed here, outside the mutex.
 */
static void
wal_encode(unsigned char *buf, const struct wal_rec *recs, size_t n)
{
	const struct wal_rec *r;
	unsigned char        *p = buf, *q;
	size_t                i, sz;
	uLong                 crc;

	for (i = 0; i < n; i++) {
		r = &recs[i];
		sz = wal_record_size(r);
		memset(p, 0, WAL_REC_HEADER);
		wal_put32(p, WAL_REC_MAGIC);
		wal_put32(p + 4, (uint32_t)r->type);
		wal_put32(p + 16, (uint32_t)r->id_len);
		wal_put32(p + 20, (uint32_t)r->a_len);
		wal_put32(p + 24, (uint32_t)r->b_len);
		q = p + WAL_REC_HEADER;
		memcpy(q, r->id, r->id_len);
		q += r->id_len;
		if (r->a_len > 0)
			memcpy(q, r->a, r->a_len);
		q += r->a_len;
		if (r->b_len > 0)
			memcpy(q, r->b, r->b_len);
		q += r->b_len;
		memset(q, 0, (size_t)(p + sz - q));
		crc = crc32_z(0, p + WAL_REC_HEADER,
		    r->id_len + r->a_len + r->b_len);
		wal_put32(p + WAL_REC_CRC_OFF, (uint32_t)crc);
		p += sz;
	}
}

/* Put epoch into each of the len bytes of records in buf and finish
 * their CRCs (crc32_combine: the header's CRC, then the payload's). */
static void
wal_seal(unsigned char *buf, size_t len, uint64_t epoch)
{
	unsigned char *p = buf;
	uint64_t       plen, sz;
	uLong          crc;

	while (p < buf + len) {
		plen = (uint64_t)wal_get32(p + 16) + wal_get32(p + 20) +
		    wal_get32(p + 24);
		sz = wal_padded(wal_get32(p + 16), wal_get32(p + 20),
		    wal_get32(p + 24));
		wal_put64(p + 8, epoch);
		crc = crc32_combine(crc32_z(0, p, WAL_REC_CRC_OFF),
		    wal_get32(p + WAL_REC_CRC_OFF), (z_off_t)plen);
		wal_put32(p + WAL_REC_CRC_OFF, (uint32_t)crc);
		p += sz;
	}
}

/* Check recs and add up their size: 0 and *total, -EINVAL for a record
 * that cannot be written, -EMSGSIZE when they exceed a segment. */
static int
wal_check_recs(const struct wal *w, const struct wal_rec *recs, size_t n,
    size_t *total, struct sq_err *err)
{
	const struct wal_rec *r;
	size_t                i, sz, sum = 0;

	*total = 0;
	for (i = 0; i < n; i++) {
		r = &recs[i];
		if ((r->type != WAL_MSG && r->type != WAL_REMOVE) ||
		    r->id == NULL || r->id_len < 1 || r->id_len > WAL_ID_MAX ||
		    (r->a == NULL && r->a_len > 0) ||
		    (r->b == NULL && r->b_len > 0))
			return sq_err_set(err, -EINVAL,
			    "wal %s: record %zu is not valid (type %d, id of "
			    "%zu bytes)",
			    w->dir, i, (int)r->type, r->id_len);
		sz = wal_record_size(r);
		if (sz > wal_capacity(w) || wal_capacity(w) - sz < sum)
			return sq_err_set(err, -EMSGSIZE,
			    "wal %s: %zu records do not fit in a segment of "
			    "%llu bytes",
			    w->dir, n, (unsigned long long)w->seg_size);
		sum += sz;
	}
	*total = sum;
	return 0;
}

/*
 * Under the mutex: the segment that total more bytes go to.  The ACTIVE
 * one when they fit; else the other when it is FREE (*rotated when the
 * one left holds records: it is FULL now); else the ACTIVE index's own
 * segment when wal_retire made it FREE (the log stopped there after a
 * failure).  A segment about to be appended to after the other gets a
 * new epoch first unless its epoch is already the larger, so that the
 * replay order stays the append order whatever led here.  Its index, or
 * -errno.
 */
static int
wal_pick(struct wal *w, size_t total, int *rotated, struct sq_err *err)
{
	int             a = w->active, o = 1 - a, rc;
	struct wal_seg *s = &w->seg[a], *t = &w->seg[o];

	*rotated = 0;
	if (s->state == WAL_STATE_ACTIVE && s->fresh) {
		/* total <= wal_capacity(): it fits once freshened. */
		if ((rc = wal_freshen(w, a, err)) != 0)
			return rc;
		return a;
	}
	if (s->state == WAL_STATE_ACTIVE && s->size - s->written >= total)
		return a;
	if (t->state != WAL_STATE_FREE) {
		if (s->state != WAL_STATE_FREE)
			return sq_err_set(err, -ENOSPC,
			    "wal %s: the log is full (segment %s is not "
			    "retired yet)",
			    w->dir, wal_seg_name(o));
		if (t->hdr_ok && s->epoch <= t->epoch)
			s->fresh = 1;
		if ((rc = wal_freshen(w, a, err)) != 0)
			return rc;
		return a;
	}
	if (s->hdr_ok && t->epoch <= s->epoch)
		t->fresh = 1;
	if ((rc = wal_freshen(w, o, err)) != 0)
		return rc;
	*rotated = s->state == WAL_STATE_ACTIVE || s->state == WAL_STATE_FULL;
	return o;
}

int
wal_append(struct wal *w, const struct wal_rec *recs, size_t n,
    struct wal_pos *pos, struct sq_err *err)
{
	struct wal_seg *s;
	unsigned char  *buf;
	size_t          total;
	int             t, rotated, was_free, rc;

	if ((rc = wal_check_recs(w, recs, n, &total, err)) != 0)
		return rc;
	buf = xmalloc(total);
	wal_encode(buf, recs, n);
	pthread_mutex_lock(&w->mu);
	if (n == 0) {
		/* Nothing to write: where the log stands. */
		pos->seg = w->active;
		pos->end = w->seg[w->active].written;
		pos->rotated = 0;
		pos->full_seg = -1;
		rc = 0;
		goto out;
	}
	if ((rc = t = wal_pick(w, total, &rotated, err)) < 0)
		goto out;
	s = &w->seg[t];
	was_free = s->state == WAL_STATE_FREE;
	wal_seal(buf, total, s->epoch);
	if ((rc = sq_pwrite_all(s->fd, buf, total, (off_t)s->written)) != 0) {
		wal_fail(err, rc, "write", w, wal_seg_name(t));
		if (was_free) {
			/* Undone: it stays FREE, and a new epoch before
			 * its next use hides whatever part of this write
			 * landed. */
			s->fresh = 1;
		} else {
			s->broken = rc;
			s->state = WAL_STATE_FULL;
		}
		goto out;
	}
	if (t != w->active && w->seg[w->active].state == WAL_STATE_ACTIVE)
		w->seg[w->active].state = WAL_STATE_FULL;
	pos->full_seg = rotated ? w->active : -1;
	w->active = t;
	s->state = WAL_STATE_ACTIVE;
	s->written += total;
	pos->seg = t;
	pos->end = s->written;
	pos->rotated = rotated;
out:
	pthread_mutex_unlock(&w->mu);
	free(buf);
	return rc;
}

int
wal_sync(struct wal *w, const struct wal_pos *pos, struct sq_err *err)
{
	struct wal_seg *s;
	uint64_t        target, use;
	int             rc;

	if (pos->seg != 0 && pos->seg != 1)
		return sq_err_set(err, -EINVAL, "wal %s: no segment %d", w->dir,
		    pos->seg);
	s = &w->seg[pos->seg];
	pthread_mutex_lock(&w->mu);
	for (;;) {
		/* Synced; or past what this use wrote: the data was of
		 * an earlier use, retired, which its caller made
		 * redundant. */
		if (pos->end <= s->synced || pos->end > s->written) {
			rc = 0;
			break;
		}
		if (s->broken != 0) {
			rc = wal_fail(err, s->broken, "fdatasync", w,
			    wal_seg_name(pos->seg));
			break;
		}
		if (s->syncing) {
			/* The running fdatasync covers us if it started
			 * after our data was written; either way we look
			 * again when it ends. */
			pthread_cond_wait(&w->synced, &w->mu);
			continue;
		}
		s->syncing = 1;
		target = s->written;
		use = s->use;
		pthread_mutex_unlock(&w->mu);
		rc = fdatasync(s->fd) != 0 ? -errno : 0;
		pthread_mutex_lock(&w->mu);
		s->syncing = 0;
		if (s->use == use) {
			if (rc != 0) {
				s->broken = rc;
				if (s->state == WAL_STATE_ACTIVE)
					s->state = WAL_STATE_FULL;
			} else if (target > s->synced) {
				s->synced = target;
			}
		}
		pthread_cond_broadcast(&w->synced);
		if (rc != 0)
			wal_fail(err, rc, "fdatasync", w,
			    wal_seg_name(pos->seg));
		break;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

int
wal_synced(struct wal *w, const struct wal_pos *pos)
{
	struct wal_seg *s;
	int             done;

	if (pos->seg != 0 && pos->seg != 1)
		return 0;
	s = &w->seg[pos->seg];
	pthread_mutex_lock(&w->mu);
	/* As in wal_sync: synced, or of an earlier use, retired. */
	done = s->broken == 0 &&
	    (pos->end <= s->synced || pos->end > s->written);
	pthread_mutex_unlock(&w->mu);
	return done;
}

int
wal_retire(struct wal *w, int seg, struct sq_err *err)
{
	struct wal_seg *s;
	uint64_t        epoch;
	int             rc;

	if (seg != 0 && seg != 1)
		return sq_err_set(err, -EINVAL, "wal %s: no segment %d", w->dir,
		    seg);
	s = &w->seg[seg];
	pthread_mutex_lock(&w->mu);
	if (s->state != WAL_STATE_FULL) {
		pthread_mutex_unlock(&w->mu);
		return sq_err_set(err, -EINVAL,
		    "wal %s/%s: not full, nothing to retire", w->dir,
		    wal_seg_name(seg));
	}
	if ((rc = wal_next_epoch(w, &epoch, err)) != 0) {
		pthread_mutex_unlock(&w->mu);
		return rc;
	}
	/* Not FREE yet: no append rotates into it while its header is
	 * written, outside the mutex (appends to the other go on). */
	s->state = WAL_STATE_RETIRING;
	pthread_mutex_unlock(&w->mu);
	rc = wal_renew_seg(w, seg, epoch, err);
	pthread_mutex_lock(&w->mu);
	if (rc != 0)
		s->state = WAL_STATE_FULL;
	else
		wal_seg_reused(w, s, epoch);
	pthread_mutex_unlock(&w->mu);
	return rc;
}
