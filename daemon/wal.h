/*
 * wal.h - the spool's write-ahead log: what makes a group commit durable
 * with ONE fdatasync of a file that only ever gets overwritten.
 *
 * Why: a message kept as two new files (queue/ID.msg, ID.env) is durable
 * only after ext4 commits its journal for the new inodes and names (~1 ms
 * per commit on this kind of machine, whatever the group size), where an
 * fdatasync of data overwritten in place is one disk cache flush (~0.1
 * ms).  So the commit thread appends a record of each small message of a
 * group (its id, envelope text and body) to a segment of this log and
 * makes it durable with one fdatasync; the message's own files are
 * written without a sync.  spool.c says when they are synced after all
 * (the checkpoint, which frees a segment) and how start-up replays the
 * log (spool_wal_open).
 *
 * Files, in the directory given to wal_open (spool_dir/wal/, 0700): two
 * segments, "0" and "1", each of exactly seg_size bytes, written in full
 * when created (zeros, fsync, renamed in, fsync of the directory), so
 * that an append overwrites blocks that are already the file's: no size
 * or extent change, nothing for the file system's journal.
 *
 * Segment layout (all integers little-endian):
 *   header, WAL_HEADER_SIZE bytes: "SQWAL001", u64 epoch, u32 CRC-32
 *     (zlib's crc32) of the 16 bytes before it, zeros to the end;
 *   records back to back from offset WAL_HEADER_SIZE:
 *     u32 magic WAL_REC_MAGIC, u32 type (enum wal_type),
 *     u64 epoch (the segment header's when it was written),
 *     u32 id_len, u32 a_len, u32 b_len,
 *     u32 CRC-32 of the 28 bytes before it and of the payload,
 *     payload: id, a, b (id_len + a_len + b_len bytes),
 *     zeros up to the next multiple of 8.
 * A record is valid when its magic, type, epoch, lengths (id_len 1..64,
 * the whole record inside the segment) and CRC are right; a segment's
 * records end at the first record that is not valid (its end, zeros, a
 * torn write, or a record of an earlier epoch).  A segment whose header is
 * not valid has no records.
 *
 * Segment states: FREE (a header with a new epoch written and synced, no
 * record of that epoch), ACTIVE (appended to), FULL (an append did not
 * fit, the log went on in the other segment; its records are needed until
 * the caller has made them redundant and calls wal_retire).  Epochs only
 * grow: a new one is one more than the largest of both headers.
 *
 * Threads: wal_append, wal_sync and wal_retire may be called from
 * several threads at once (a lock inside); wal_open, wal_replay,
 * wal_reset and wal_close from one, before and after the others.
 *
 * Owns: the files in its directory.  May call: util, log, zlib.
 *
 * DIAGNOSTICS: -errno (or SQ_ELIMIT, SQ_EPARSE) with err naming the file
 * and the failed operation.
 */
#ifndef SENDQ_WAL_H
#define SENDQ_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define WAL_HEADER_SIZE 64
#define WAL_REC_HEADER  32          /* the record's fixed part, CRC included */
#define WAL_REC_MAGIC   0x31524153u /* "SAR1" little-endian */
#define WAL_ID_MAX      64
#define WAL_SEG_SIZE    (1u * 1024 * 1024) /* spool's default */
#define WAL_SEG_MIN     (16u * 1024)

enum wal_type {
	WAL_MSG = 1,    /* a committed message: id, a = envelope, b = body */
	WAL_REMOVE = 2, /* a delivered message is gone: id; a, b empty */
};

struct wal_rec {
	enum wal_type type;
	const char   *id; /* not NUL-terminated in a parsed record */
	size_t        id_len;
	const void   *a;
	size_t        a_len;
	const void   *b;
	size_t        b_len;
};

/* Where an append went: segment (0 or 1) and the offset after its last
 * record.  rotated is set when this append filled the other segment
 * (now FULL, index full_seg) and went on in seg. */
struct wal_pos {
	int      seg;
	uint64_t end;
	int      rotated;
	int      full_seg;
};

struct wal;

/*
 * Open the log in dirpath (made 0700 when missing), creating a missing
 * segment (or one of another size: a crash while creating it left it)
 * as said above.  One of another size that holds valid records (seg_size
 * was changed) is kept for the replay; wal_reset or wal_retire give it
 * seg_size.  No record is changed: replay comes next.  seg_size at
 * least WAL_SEG_MIN.  0 and *out, or -errno with err.
 */
int  wal_open(const char *dirpath, size_t seg_size, struct wal **out,
     struct sq_err *err);
void wal_close(struct wal *w);

/*
 * Call cb(arg, rec) for every valid record, the segment of the smaller
 * epoch first, each in file order.  rec's pointers are valid during the
 * call only.  A non-zero return of cb stops the replay and is returned;
 * else the number of records, or -errno with err (a read failed).
 */
int wal_replay(struct wal *w, int (*cb)(void *arg, const struct wal_rec *rec),
    void *arg, struct sq_err *err);

/* Make both segments FREE (new epochs, headers synced) and segment 0
 * ACTIVE: after a replay whose effects the caller made durable.  0 or
 * -errno with err. */
int wal_reset(struct wal *w, struct sq_err *err);

/* Bytes that rec takes in a segment (header, payload, padding). */
size_t wal_record_size(const struct wal_rec *rec);

/* The most a single append may carry: seg_size - WAL_HEADER_SIZE. */
size_t wal_capacity(const struct wal *w);

/*
 * Append n records to the ACTIVE segment with one write, not synced.
 * When they do not fit, and the other segment is FREE, the ACTIVE one
 * becomes FULL and they go to the other (pos->rotated).  -ENOSPC (err
 * says the log is full) when the other is not FREE: the caller makes the
 * records' messages durable some other way.  -EMSGSIZE when they would
 * not fit in an empty segment.  0 and *pos, or -errno with err.
 */
int wal_append(struct wal *w, const struct wal_rec *recs, size_t n,
    struct wal_pos *pos, struct sq_err *err);

/*
 * Make everything appended to segment pos->seg up to pos->end durable:
 * an fdatasync of that segment, shared: a caller whose data an fdatasync
 * already running will cover (it started after that data was written)
 * waits for that one instead of making its own.  0 or -errno with err.
 */
int wal_sync(struct wal *w, const struct wal_pos *pos, struct sq_err *err);

/* Is everything appended to segment pos->seg up to pos->end durable
 * already (an fdatasync of it that started after it was written has
 * succeeded, or the segment was retired since)?  1 or 0; never syncs. */
int wal_synced(struct wal *w, const struct wal_pos *pos);

/* A FULL segment's records are no longer needed: write a header with a
 * new epoch, fdatasync it, and mark it FREE.  0 or -errno with err. */
int wal_retire(struct wal *w, int seg, struct sq_err *err);

/*
 * Parsing, for wal_replay and the fuzz target: does buf (avail bytes,
 * the rest of a segment from a record's start) begin with a valid record
 * of epoch?  1 and *rec (pointers into buf) and *used (its size with
 * padding), or 0.
 */
int wal_parse_record(const unsigned char *buf, size_t avail, uint64_t epoch,
    struct wal_rec *rec, size_t *used);
/* Is hdr (WAL_HEADER_SIZE bytes) a valid segment header?  1 and *epoch,
 * or 0. */
int wal_parse_header(const unsigned char *hdr, uint64_t *epoch);

#endif /* SENDQ_WAL_H */
