/*
 * spool.c - the durable message store (layout and commit order: spool.h).
 *
 * Queue ids are 31 upper-case hex digits: 10 of the seconds, 5 of the
 * microseconds, then 16 (64 bits) from getrandom(), so ids sort by
 * arrival time (to the microsecond; ids of the same microsecond in
 * random order) and nobody can guess the name of a file being written.
 * Without randomness no id is made: the writer fails (never a predictable
 * fallback).  Ids of 19 digits (10 + 5 + a 4-digit counter) were made by
 * earlier versions: spool_id_valid() still accepts them so that a queue
 * written before an upgrade is delivered, but none is made any more.  An
 * id is taken by creating queue/ID.msg with O_EXCL (a collision draws a
 * new id) and kept by renaming tmp/ID.env into queue/ with
 * RENAME_NOREPLACE (a collision fails the commit).  The body is written
 * in queue/ from the start: without its ID.env it is nobody's message,
 * and it needs no rename (one journalled operation less per message on
 * the commit's critical path).
 *
 * Locks: every file a writer creates (queue/ID.msg, tmp/ID.env, tmp/ID.upd)
 * is flock()ed by its creator right after creation and stays locked until
 * the writer is finished, across the renames into queue/ (a lock belongs
 * to the open file, not to the name).  Recovery removes a leftover file
 * only while holding its lock, and only if the name still refers to the
 * inode it locked; a creator that finds its new file already unlinked
 * (st_nlink == 0, recovery won the race between open and flock) starts
 * over.  A queue/ID.msg without ID.env is removed only if, with its lock
 * held, ID.env is still missing: a writer renames ID.env in before it lets
 * go of the lock, so a live commit is never mistaken for debris.
 *
 * Crash windows: until the .env rename queue/ holds at most an .msg
 * without .env (debris, removed by recovery); after the .env rename the
 * message exists, and it is durable
 * once fsync(queue/) returns, which is when the caller is told.  With
 * the write-ahead log (spool_wal_open, wal.h) a small message is durable
 * once its record is (one fdatasync of the log for the whole group):
 * held in memory it has no files (struct spool_mem), or after a power
 * cut its files may be missing, empty, torn or not renamed in, and the
 * start-up replay gives them back from the record.  Its
 * removal after delivery is logged and synced before any of its files
 * is unlinked, so a replay never brings a delivered message back once
 * an unlink of it reached the disk; until the REMOVE record is durable a
 * cut may deliver it twice, as before.  The
 * envelope is replaced by writing tmp/ID.upd and renaming it over
 * queue/ID.env, so a reader sees the old or the new envelope, never half.
 */
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "msgfix.h"
#include "spool.h"
#include "wal.h"
#include "util.h"

#define SPOOL_ID_LEN       31 /* 10 + 5 + 16 hex digits */
#define SPOOL_ID_LEN_OLD   19 /* before 64 random bits */
#define SPOOL_WRITE_BUF    (64 * 1024)
#define SPOOL_ENV_MAX      (16 * 1024 * 1024)
#define SPOOL_CREATE_TRIES 100

/* How long removals wait for a group commit's fsync of queue/ before
 * the removal thread makes its own. */
#define SPOOL_RM_SYNC_MS 50 /* the default of spool_set_removal_sync_delay */
/* REMOVE records per append at most (spool_rm_main): a backlog is logged
 * in batches of this many, so that the batch fits the smallest segment
 * (a record: WAL_REC_HEADER + an id padded to 8) and its arrays stay
 * small (with the whole backlog as one batch, a drain of 8,000 messages
 * allocated ~0.8 MB for one append: sendqd's peak RSS, issue 14). */
#define SPOOL_RM_LOG_MAX 128
_Static_assert((WAL_REC_HEADER + ENVELOPE_ID_MAX) * SPOOL_RM_LOG_MAX <=
	WAL_SEG_MIN - WAL_HEADER_SIZE,
    "a batch of REMOVE records fits a segment");

#define SPOOL_SYNC_THREADS 8 /* fdatasyncs issued at once */

/* Bodies up to this size go to the write-ahead log (spool_group_wal);
 * larger ones have their files synced, which costs less than writing
 * them twice (and would fill a segment, WAL_SEG_SIZE, with few). */
#define SPOOL_WAL_BODY_MAX (64 * 1024)
/* A group's records at most: the rest of a larger group is synced. */
#define SPOOL_WAL_GROUP_MAX (512 * 1024)
/* Checkpoint: files synced per batch (two per message), and messages
 * held in memory given their files per batch (two descriptors each, on
 * top of the held ones' own). */
#define SPOOL_CKPT_BATCH 64
#define SPOOL_FILE_BATCH 32

/* Messages held in memory (struct spool_mem): at most this many at once
 * (each holds a descriptor; beyond it members get their files at once,
 * as before), filed after this long in memory (spool_set_memory_age). */
#define SPOOL_MEM_MAX     512
#define SPOOL_MEM_AGE_MS  1000
#define SPOOL_MEM_BUCKETS 1024

_Static_assert(SPOOL_ID_LEN < ENVELOPE_ID_MAX, "queue id size");

/*
 * A message held in memory: committed (its record in the write-ahead
 * log is durable) but without files, which most messages never need:
 * delivered before anything asks for them, they cost no create, no
 * rename and no unlink (issue 14: on ext4 the inode allocation of the
 * two creates was the largest cost of a message).  The body is in a
 * sealed memfd (not in sendqd's RSS), the envelope text in the heap.  A
 * message gets its files ("is filed": spool_mem_file) when its log
 * segment is checkpointed, at a clean stop, after SPOOL_MEM_AGE_MS in
 * memory (so that readers of queue/ see it within a second), and
 * before anything durable is made from it (an updated envelope, a copy
 * in failed/).  A crash loses nothing: the replay gives it its files
 * back from the record, as for any logged message whose files a power
 * cut took.
 */
struct spool_mem {
	struct spool_mem *next;          /* hash chain */
	struct spool_mem *older, *newer; /* age list */
	char              id[ENVELOPE_ID_MAX];
	char             *env; /* envelope text */
	size_t            env_len;
	int               body_fd; /* sealed memfd */
	size_t            body_len;
	struct timespec   since;  /* CLOCK_MONOTONIC: when committed */
	int               filing; /* its files are being written */
	int               gone;   /* removed while being filed */
	int               opened; /* handed out (spool_mem_open) before */
};

/* The table of messages held in memory (mu guards everything; taken
 * after spool_async's mu when both are held). */
struct spool_mem_table {
	pthread_mutex_t   mu;
	pthread_cond_t    filed; /* a filing ended */
	struct spool_mem *bucket[SPOOL_MEM_BUCKETS];
	struct spool_mem *oldest, *newest;
	size_t            n;
	unsigned          age_ms;
	size_t            max; /* SPOOL_MEM_MAX, less with few descriptors */
	int               on;  /* writers keep small bodies in memory */
	uint64_t          held, filed_n; /* spool_wal_stats */
};

struct spool_rm_item;

struct spool {
	char *dir;
	char *tmp_dir;
	char *queue_dir;
	char *failed_dir;
	char *corrupt_dir;
	int   dir_fd; /* O_DIRECTORY descriptors */
	int   tmp_fd;
	int   queue_fd;
	int   failed_fd;
	int   corrupt_fd; /* -1 until corrupt/ is needed */
	/* Mode of .env files: 0600, or 0640 when tmp/ is setgid to the
	 * readers' group (spool_set_queue_group). */
	mode_t   env_mode;
	uint64_t min_free; /* spool_space_ok's reserve, 0 = off */
	/* spool_space_cache: on, whether space_avail holds an answer of
	 * fstatvfs (f_bavail in bytes), and the bytes given to writers
	 * (written, all the spool's life) when it was read. */
	int      space_on, space_valid;
	uint64_t space_avail, space_at, written;
	/* Removals of held messages since the last spool_sync_removals
	 * (spool_remove_unsynced): their REMOVE records, appended to the
	 * log with one write by spool_sync_removals (loop thread only). */
	struct spool_rm_item *held_rms;
	size_t                n_held_rms, cap_held_rms;
	/* The umask's bits as read at spool_open, or 0777 when it could
	 * not be read: a new file needs a fchmod() (one more journalled
	 * inode change per file) only when the umask takes a bit of its
	 * mode away. */
	mode_t   umask_bits;
	unsigned rm_sync_ms; /* spool_set_removal_sync_delay */
	/* spool_removal_stats, over every run of the removal thread
	 * (written under its lock). */
	uint64_t               rm_batches, rm_own_syncs;
	int                    removed; /* queue/ names unlinked since its
					 * last fsync (spool_sync_removals) */
	struct spool_async    *as;      /* commit thread, or NULL */
	struct wal            *wal;     /* spool_wal_open, or NULL */
	struct spool_mem_table mem;
};

struct spool_async;
static void spool_async_remove(struct spool_async *, const char *, int);
static int  spool_unlink_message(struct spool *, const char *, struct sq_err *);
static uint64_t spool_rm_gen(struct spool *);
static void     spool_rm_synced(struct spool *, uint64_t);
static int
spool_unlink_files(struct spool *, const char *, int, struct sq_err *);
static void spool_id_name(char *, const char *, const char *);

/* A writer's buffer starts at this size and doubles up to SPOOL_WRITE_BUF
 * as the message grows: a message of a few KiB holds 4 KiB, not 64, while
 * eight SMTP sessions write at once (64 KiB for each was a quarter of
 * sendqd's heap peak in scripts/bench). */
#define SPOOL_WRITE_BUF_MIN (4 * 1024)

struct spool_writer {
	struct spool *sp;
	char          id[ENVELOPE_ID_MAX];
	char          msg_name[ENVELOPE_ID_MAX + 8];
	char          env_name[ENVELOPE_ID_MAX + 8];
	int           msg_fd;    /* -1: the body is all in buf (in memory) */
	int           error;     /* first write error, 0 if none */
	int           body_8bit; /* a byte >= 0x80 was written */
	char         *buf;
	size_t        buf_len;
	size_t        buf_cap; /* SPOOL_WRITE_BUF_MIN..SPOOL_WRITE_BUF */
};

/* ---- The table of messages held in memory (struct spool_mem). */

static size_t
spool_mem_hash(const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*id != '\0')
		h = (h ^ (unsigned char)*id++) * 16777619u;
	return h % SPOOL_MEM_BUCKETS;
}

/* The entry of id, or NULL; mem.mu held. */
static struct spool_mem *
spool_mem_find(struct spool *sp, const char *id)
{
	struct spool_mem *e;

	for (e = sp->mem.bucket[spool_mem_hash(id)]; e != NULL; e = e->next)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

/* Out of the table (mem.mu held); the caller frees it. */
static void
spool_mem_unlink(struct spool *sp, struct spool_mem *e)
{
	struct spool_mem **pp = &sp->mem.bucket[spool_mem_hash(e->id)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		sp->mem.oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		sp->mem.newest = e->older;
	sp->mem.n--;
}

static void
spool_mem_free(struct spool_mem *e)
{
	if (e->body_fd >= 0)
		close(e->body_fd);
	free(e->env);
	free(e);
}

/* Into the table, newest (mem.mu held). */
static void
spool_mem_link(struct spool *sp, struct spool_mem *e)
{
	size_t h = spool_mem_hash(e->id);

	e->next = sp->mem.bucket[h];
	sp->mem.bucket[h] = e;
	e->newer = NULL;
	e->older = sp->mem.newest;
	if (sp->mem.newest != NULL)
		sp->mem.newest->newer = e;
	else
		sp->mem.oldest = e;
	sp->mem.newest = e;
	sp->mem.n++;
	sp->mem.held++;
}

static void
spool_mem_drop_all(struct spool *sp)
{
	struct spool_mem *e = sp->mem.oldest, *newer;

	for (; e != NULL; e = newer) {
		newer = e->newer;
		spool_mem_free(e);
	}
	memset(sp->mem.bucket, 0, sizeof(sp->mem.bucket));
	sp->mem.oldest = sp->mem.newest = NULL;
	sp->mem.n = 0;
}

static int
spool_cmp_ids(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* ts + ms (ms >= 0). */
static struct timespec
spool_ts_add_ms(struct timespec ts, long ms)
{
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* *ts = now + ms on CLOCK_MONOTONIC (the clock of every condition
 * variable of the spool). */
static void
spool_deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	*ts = spool_ts_add_ms(*ts, ms);
}

/* Is a later than b? */
static int
spool_ts_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec ||
	    (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static int
spool_deadline_passed(const struct timespec *ts)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return !spool_ts_after(ts, &now);
}

/* The envelope text of id when it is held in memory: 1 and a copy in
 * *text (caller frees), *len; else 0. */
static int
spool_mem_env(struct spool *sp, const char *id, char **text, size_t *len)
{
	struct spool_mem *e;

	pthread_mutex_lock(&sp->mem.mu);
	if ((e = spool_mem_find(sp, id)) != NULL) {
		*text = xmalloc(e->env_len + 1);
		memcpy(*text, e->env, e->env_len);
		*len = e->env_len;
	}
	pthread_mutex_unlock(&sp->mem.mu);
	return e != NULL;
}

/* The body of id when it is held in memory: a descriptor of its memfd
 * at offset 0 (descriptors of it share one offset: read with pread, or
 * to the end before opening it again), or -errno with err; -ENOENT when
 * it is not held in memory. */
static int
spool_mem_open(struct spool *sp, const char *id, struct sq_err *err)
{
	struct spool_mem *e;
	int               fd = -ENOENT;

	pthread_mutex_lock(&sp->mem.mu);
	if ((e = spool_mem_find(sp, id)) != NULL) {
		/* A duplicate shares the file offset, which only a reader
		 * moves (the spool writes and reads it with pwrite and
		 * pread): put back at 0 from the second opening on, so
		 * that the usual single opening (the delivery) costs one
		 * system call. */
		fd = fcntl(e->body_fd, F_DUPFD_CLOEXEC, 0);
		if (fd >= 0 && e->opened++ > 0 && lseek(fd, 0, SEEK_SET) != 0) {
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			fd = sq_err_set(err, -errno,
			    "message %s (held in memory): %s", id,
			    strerror(errno));
	}
	pthread_mutex_unlock(&sp->mem.mu);
	return fd;
}

/* The body size of id when it is held in memory: 1 and *size, else 0. */
static int
spool_mem_size(struct spool *sp, const char *id, uint64_t *size)
{
	struct spool_mem *e;

	pthread_mutex_lock(&sp->mem.mu);
	if ((e = spool_mem_find(sp, id)) != NULL)
		*size = e->body_len;
	pthread_mutex_unlock(&sp->mem.mu);
	return e != NULL;
}

/* Fill err with "OP DIR/NAME: strerror(-code)" and return code. */
static int
spool_fail(struct sq_err *err, int code, const char *op, const char *dir,
    const char *name)
{
	return sq_err_set(err, code, "%s %s%s%s: %s", op, dir,
	    name != NULL ? "/" : "", name != NULL ? name : "", strerror(-code));
}

static int
spool_mkdir(const char *path, mode_t mode, int create, struct sq_err *err)
{
	struct stat st;

	if (stat(path, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return spool_fail(err, -ENOTDIR, "open", path, NULL);
		return 0;
	}
	if (errno != ENOENT || !create)
		return spool_fail(err, -errno, "open", path, NULL);
	if (mkdir(path, mode) != 0 && errno != EEXIST)
		return spool_fail(err, -errno, "mkdir", path, NULL);
	/* The umask may have taken bits away: set the mode exactly. */
	if (chmod(path, mode) != 0)
		return spool_fail(err, -errno, "chmod", path, NULL);
	return 0;
}

static int
spool_open_dir(const char *path, int *fd, struct sq_err *err)
{
	if ((*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return spool_fail(err, -errno, "open", path, NULL);
	return 0;
}

/* The process's umask, read from /proc/self/status ("Umask:", Linux
 * 4.7 on) rather than by setting it, which would race with threads
 * creating files; 0777 (every bit masked: always fchmod) when it cannot
 * be read. */
static mode_t
spool_read_umask(void)
{
	char         line[128];
	FILE        *f = fopen("/proc/self/status", "re");
	mode_t       bits = 0777;
	unsigned int v;

	if (f == NULL)
		return bits;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Umask: %o", &v) == 1) {
			bits = (mode_t)v & 0777;
			break;
		}
	fclose(f);
	return bits;
}

/* The mode of new envelopes: 0640 when tmp/ is setgid (to gid, unless
 * gid is (gid_t)-1: to any group), so that they are born with the
 * readers' group; else 0600. */
static mode_t
spool_env_mode(const struct spool *sp, gid_t gid)
{
	struct stat st;

	if (fstat(sp->tmp_fd, &st) != 0 || !(st.st_mode & S_ISGID))
		return 0600;
	return gid == (gid_t)-1 || st.st_gid == gid ? 0640 : 0600;
}

/* A spool with its paths set, nothing open, the memory table empty. */
static struct spool *
spool_alloc(const char *dir)
{
	struct spool      *sp = xcalloc(1, sizeof(*sp));
	pthread_condattr_t ca;

	sp->tmp_fd = sp->queue_fd = sp->failed_fd = -1;
	sp->dir_fd = sp->corrupt_fd = -1;
	sp->dir = xstrdup(dir);
	sp->corrupt_dir = xasprintf("%s/corrupt", dir);
	sp->tmp_dir = xasprintf("%s/tmp", dir);
	sp->queue_dir = xasprintf("%s/queue", dir);
	sp->failed_dir = xasprintf("%s/failed", dir);
	pthread_mutex_init(&sp->mem.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sp->mem.filed, &ca);
	pthread_condattr_destroy(&ca);
	sp->mem.age_ms = SPOOL_MEM_AGE_MS;
	return sp;
}

int
spool_open(const char *dir, int create, struct spool **out, struct sq_err *err)
{
	struct spool *sp;
	int           rc;

	sp = spool_alloc(dir);
	/* spool_dir 0711: the drop helper must pass through to maildrop/;
	 * nothing in it can be listed. */
	if ((rc = spool_mkdir(sp->dir, 0711, create, err)) != 0 ||
	    (rc = spool_mkdir(sp->tmp_dir, 0700, create, err)) != 0 ||
	    (rc = spool_mkdir(sp->queue_dir, 0700, create, err)) != 0 ||
	    (rc = spool_mkdir(sp->failed_dir, 0700, create, err)) != 0 ||
	    (rc = spool_open_dir(sp->dir, &sp->dir_fd, err)) != 0 ||
	    (rc = spool_open_dir(sp->tmp_dir, &sp->tmp_fd, err)) != 0 ||
	    (rc = spool_open_dir(sp->queue_dir, &sp->queue_fd, err)) != 0 ||
	    (rc = spool_open_dir(sp->failed_dir, &sp->failed_fd, err)) != 0) {
		spool_close(sp);
		return rc;
	}
	sp->env_mode = spool_env_mode(sp, (gid_t)-1);
	sp->umask_bits = spool_read_umask();
	sp->rm_sync_ms = SPOOL_RM_SYNC_MS;
	*out = sp;
	return 0;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	spool_async_stop(sp);
	if (sp->tmp_fd >= 0)
		close(sp->tmp_fd);
	if (sp->queue_fd >= 0)
		close(sp->queue_fd);
	if (sp->failed_fd >= 0)
		close(sp->failed_fd);
	if (sp->dir_fd >= 0)
		close(sp->dir_fd);
	if (sp->corrupt_fd >= 0)
		close(sp->corrupt_fd);
	if (sp->wal != NULL)
		wal_close(sp->wal);
	/* Left only when a clean stop could not file them: their records
	 * stay in the log, which the next start replays. */
	spool_mem_drop_all(sp);
	free(sp->held_rms);
	pthread_mutex_destroy(&sp->mem.mu);
	pthread_cond_destroy(&sp->mem.filed);
	free(sp->failed_dir);
	free(sp->corrupt_dir);
	free(sp->dir);
	free(sp->tmp_dir);
	free(sp->queue_dir);
	free(sp);
}

const char *
spool_queue_dir(const struct spool *sp)
{
	return sp->queue_dir;
}

void
spool_set_min_free(struct spool *sp, uint64_t bytes)
{
	sp->min_free = bytes;
}

void
spool_space_cache(struct spool *sp, int on)
{
	sp->space_on = on;
	sp->space_valid = 0;
}

int
spool_space_ok(struct spool *sp, uint64_t incoming, struct sq_err *err)
{
	struct statvfs vfs;
	uint64_t       avail;

	if (sp->min_free == 0)
		return 0;
	if (sp->space_on && sp->space_valid) {
		/* The turn's answer, less what writers took since. */
		uint64_t used = sp->written - sp->space_at;

		avail = sp->space_avail > used ? sp->space_avail - used : 0;
	} else {
		if (fstatvfs(sp->dir_fd, &vfs) != 0)
			return spool_fail(err, -errno, "statvfs", sp->dir,
			    NULL);
		/* What an unprivileged user may still use (f_bavail),
		 * which is what the daemon's user has. */
		avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
		if (sp->space_on) {
			sp->space_valid = 1;
			sp->space_avail = avail;
			sp->space_at = sp->written;
		}
	}
	if (avail >= sp->min_free && avail - sp->min_free >= incoming)
		return 0;
	return sq_err_set(err, -ENOSPC,
	    "%s: %llu bytes free, %s the reserve (min_free_space = %llu "
	    "bytes): no new mail until the queue drains or space is freed",
	    sp->dir, (unsigned long long)avail,
	    incoming > 0 ? "a message of this size would go below" : "below",
	    (unsigned long long)sp->min_free);
}

int
spool_id_valid(const char *s)
{
	size_t i;

	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'A' && s[i] <= 'F')))
			break;
	return s[i] == '\0' && (i == SPOOL_ID_LEN || i == SPOOL_ID_LEN_OLD);
}

/*
 * The 64 random bits of queue ids, drawn SPOOL_RAND_IDS ids' worth at a
 * time: one getrandom() for that many messages, not one a message (a
 * system call is what a message costs most on a paravirtualised
 * machine, issue 14).  Per thread, with no lock; a bit handed out is
 * wiped from the pool; a child of fork() forgets the pool it inherited
 * (pthread_atfork), so that it never makes the ids its parent will.
 * 256 bytes: getrandom() never returns fewer (random(7)).
 */
#define SPOOL_RAND_IDS 32
static _Thread_local uint64_t spool_rand_pool[SPOOL_RAND_IDS];
static _Thread_local size_t   spool_rand_left;
static pthread_once_t         spool_rand_once = PTHREAD_ONCE_INIT;
static int                    spool_rand_pooled; /* the fork hook is in */

static void
spool_rand_forget(void)
{
	memset(spool_rand_pool, 0, sizeof(spool_rand_pool));
	spool_rand_left = 0;
}

static void
spool_rand_hook(void)
{
	/* Without the hook no pool is kept (a fork would copy it): one
	 * getrandom() an id. */
	spool_rand_pooled = pthread_atfork(NULL, NULL, spool_rand_forget) == 0;
}

/* Fill buf (len <= 256 bytes) from getrandom(): 0, or -errno (-EIO
 * when it gave fewer bytes). */
static int
spool_getrandom(void *buf, size_t len)
{
	ssize_t n;

	do
		n = getrandom(buf, len, 0);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		return n < 0 && errno > 0 ? -errno : -EIO;
	return 0;
}

/* 64 random bits into *out: 0, or -errno when getrandom() fails. */
static int
spool_rand64(uint64_t *out)
{
	int rc;

	(void)pthread_once(&spool_rand_once, spool_rand_hook);
	if (!spool_rand_pooled)
		return spool_getrandom(out, sizeof(*out));
	if (spool_rand_left == 0) {
		if ((rc = spool_getrandom(spool_rand_pool,
			 sizeof(spool_rand_pool))) != 0)
			return rc;
		spool_rand_left = SPOOL_RAND_IDS;
	}
	*out = spool_rand_pool[--spool_rand_left];
	spool_rand_pool[spool_rand_left] = 0;
	return 0;
}

/* A new queue id into id (idsz >= ENVELOPE_ID_MAX).  0, or -errno with
 * err when getrandom() fails: no id is ever made without it. */
static int
spool_make_id(char *id, size_t idsz, struct sq_err *err)
{
	struct timespec ts;
	uint64_t        rnd = 0;
	int             rc;

	if ((rc = spool_rand64(&rnd)) != 0)
		return sq_err_set(err, rc,
		    "getrandom: %s (no queue id is made without randomness)",
		    strerror(-rc));
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(id, idsz, "%010llX%05lX%016llX",
	    (unsigned long long)ts.tv_sec & 0xFFFFFFFFFFULL,
	    (unsigned long)(ts.tv_nsec / 1000) & 0xFFFFF,
	    (unsigned long long)rnd);
	return 0;
}

/*
 * Create dir/name exclusively (mode whatever the umask, umask_bits: see
 * struct spool), lock it and make sure recovery did not unlink it before
 * the lock was ours.  Returns the fd (read-write: a body is read back
 * for its write-ahead log record), -EEXIST when the name is taken, or
 * another -errno with err.
 */
static int
spool_create_locked(const struct spool *sp, int dirfd, const char *dirpath,
    const char *name, mode_t mode, struct sq_err *err)
{
	struct stat st;
	int         fd, tries, e;

	for (tries = 0; tries < SPOOL_CREATE_TRIES; tries++) {
		fd = openat(dirfd, name,
		    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd < 0) {
			if (errno == EEXIST)
				return -EEXIST;
			return spool_fail(err, -errno, "create", dirpath, name);
		}
		if ((mode & sp->umask_bits) != 0 && fchmod(fd, mode) != 0) {
			e = -errno;
			spool_fail(err, e, "chmod", dirpath, name);
			goto fail;
		}
		/* Files belong to the spool's owner (the daemon's user),
		 * also when root submits: only that user can read them. */
		if (geteuid() == 0 && fstat(dirfd, &st) == 0 &&
		    st.st_uid != 0 && fchown(fd, st.st_uid, st.st_gid) != 0) {
			e = -errno;
			spool_fail(err, e, "chown", dirpath, name);
			goto fail;
		}
		if (flock(fd, LOCK_EX) != 0) {
			e = -errno;
			spool_fail(err, e, "lock", dirpath, name);
			goto fail;
		}
		if (fstat(fd, &st) != 0) {
			e = -errno;
			spool_fail(err, e, "stat", dirpath, name);
			goto fail;
		}
		if (st.st_nlink > 0)
			return fd;
		/* Removed by a recovery scan before we held the lock. */
		close(fd);
	}
	return spool_fail(err, -EAGAIN, "create", dirpath, name);
fail:
	unlinkat(dirfd, name, 0);
	close(fd);
	return e;
}

static int
spool_exists(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
	    errno != ENOENT;
}

/*
 * Move tmp/name into queue/, never over a name there: an id is made of
 * the time and 64 random bits, so a taken one is a broken clock or a bad
 * random source, and must fail the commit rather than replace another
 * message.  renameat2(RENAME_NOREPLACE) makes the check and the move one
 * step; where the file system does not have it (EINVAL: some FUSE file
 * systems) the name is looked up first.  0, or -errno (-EEXIST: taken).
 */
static int
spool_rename_new(const struct spool *sp, const char *name)
{
	if (renameat2(sp->tmp_fd, name, sp->queue_fd, name, RENAME_NOREPLACE) ==
	    0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (spool_exists(sp->queue_fd, name))
		return -EEXIST;
	return renameat(sp->tmp_fd, name, sp->queue_fd, name) == 0 ? 0 : -errno;
}

int
spool_writer_begin(struct spool *sp, struct spool_writer **out,
    struct sq_err *err)
{
	struct spool_writer *w;
	int                  tries, fd;

	w = xcalloc(1, sizeof(*w));
	w->sp = sp;
	w->msg_fd = -1;
	for (tries = 0; tries < SPOOL_CREATE_TRIES; tries++) {
		if ((fd = spool_make_id(w->id, sizeof(w->id), err)) != 0) {
			free(w);
			return fd;
		}
		snprintf(w->msg_name, sizeof(w->msg_name), "%s.msg", w->id);
		snprintf(w->env_name, sizeof(w->env_name), "%s.env", w->id);
		w->buf_cap = SPOOL_WRITE_BUF_MIN;
		if (sp->mem.on && sp->mem.age_ms > 0) {
			/* Kept in memory while it fits in the buffer (the
			 * size a log record may carry); its file is made
			 * only when it grows beyond (spool_writer_file). */
			w->buf = xmalloc(w->buf_cap);
			*out = w;
			return 0;
		}
		fd = spool_create_locked(sp, sp->queue_fd, sp->queue_dir,
		    w->msg_name, 0600, err);
		if (fd == -EEXIST)
			continue;
		if (fd < 0) {
			free(w);
			return fd;
		}
		/* That the id is not a committed message's too is
		 * made sure by the commit's renames (spool_rename_new). */
		w->msg_fd = fd;
		w->buf = xmalloc(w->buf_cap);
		*out = w;
		return 0;
	}
	free(w);
	return sq_err_set(err, -EAGAIN, "create %s: no free queue id",
	    sp->tmp_dir);
}

const char *
spool_writer_id(const struct spool_writer *w)
{
	return w->id;
}

/* Give a writer that keeps its message in memory its queue/ID.msg (the
 * message outgrew the buffer, or is committed or rewritten through its
 * file).  0, or -errno with err (also kept as the writer's error). */
static int
spool_writer_file(struct spool_writer *w, struct sq_err *err)
{
	int fd;

	if (w->msg_fd >= 0)
		return 0;
	if (w->error != 0)
		return spool_fail(err, w->error, "write", w->sp->queue_dir,
		    w->msg_name);
	fd = spool_create_locked(w->sp, w->sp->queue_fd, w->sp->queue_dir,
	    w->msg_name, 0600, err);
	if (fd < 0) {
		if (fd == -EEXIST)
			spool_fail(err, fd, "create", w->sp->queue_dir,
			    w->msg_name);
		return w->error = fd;
	}
	w->msg_fd = fd;
	return 0;
}

static int
spool_writer_flush(struct spool_writer *w, struct sq_err *err)
{
	int rc;

	if (w->error != 0)
		return spool_fail(err, w->error, "write", w->sp->queue_dir,
		    w->msg_name);
	if (w->buf_len == 0)
		return 0;
	if ((rc = spool_writer_file(w, err)) != 0)
		return rc;
	rc = sq_write_all(w->msg_fd, w->buf, w->buf_len);
	w->buf_len = 0;
	if (rc != 0) {
		w->error = rc;
		return spool_fail(err, rc, "write", w->sp->queue_dir,
		    w->msg_name);
	}
	return 0;
}

int
spool_writer_write(struct spool_writer *w, const void *data, size_t len,
    struct sq_err *err)
{
	const unsigned char *p = data;
	size_t               i;
	int                  rc;

	if (w->error != 0)
		return spool_fail(err, w->error, "write", w->sp->queue_dir,
		    w->msg_name);
	w->sp->written += len; /* spool_space_ok's cached answer */
	if (!w->body_8bit) {
		unsigned char any8 = 0;

		for (i = 0; i < len; i++)
			any8 |= p[i];
		w->body_8bit = (any8 & 0x80) != 0;
	}
	while (len > w->buf_cap - w->buf_len && w->buf_cap < SPOOL_WRITE_BUF) {
		w->buf_cap *= 2;
		w->buf = xreallocarray(w->buf, 1, w->buf_cap);
	}
	if (len <= w->buf_cap - w->buf_len) {
		memcpy(w->buf + w->buf_len, data, len);
		w->buf_len += len;
		return 0;
	}
	if ((rc = spool_writer_flush(w, err)) != 0)
		return rc;
	if (len < w->buf_cap && w->msg_fd >= 0) {
		memcpy(w->buf, data, len);
		w->buf_len = len;
		return 0;
	}
	if ((rc = spool_writer_file(w, err)) != 0)
		return rc;
	if ((rc = sq_write_all(w->msg_fd, data, len)) != 0) {
		w->error = rc;
		return spool_fail(err, rc, "write", w->sp->queue_dir,
		    w->msg_name);
	}
	return 0;
}

static void
spool_writer_free(struct spool_writer *w)
{
	if (w->msg_fd >= 0)
		close(w->msg_fd);
	free(w->buf);
	free(w);
}

#define SPOOL_TRANSFORM_CHUNK (64 * 1024)

/*
 * The old content is read through a read-only descriptor opened before
 * its name is removed; the new queue/ID.msg is created (locked) under the
 * same name.  A crash in between leaves at most an unlocked queue/ID.msg
 * without ID.env, which recovery removes, as for any writer that died.
 */
int
spool_writer_transform(struct spool_writer *w, spool_transform_fn fn, void *arg,
    struct sq_err *err)
{
	struct spool *sp = w->sp;
	struct buf    out;
	char         *chunk = NULL;
	off_t         off = 0;
	ssize_t       n;
	int           old, fd, rc;

	if ((rc = spool_writer_file(w, err)) != 0 ||
	    (rc = spool_writer_flush(w, err)) != 0)
		return rc;
	old = openat(sp->queue_fd, w->msg_name,
	    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (old < 0)
		return spool_fail(err, -errno, "open", sp->queue_dir,
		    w->msg_name);
	if (unlinkat(sp->queue_fd, w->msg_name, 0) != 0) {
		rc = spool_fail(err, -errno, "unlink", sp->queue_dir,
		    w->msg_name);
		close(old);
		return rc;
	}
	fd = spool_create_locked(sp, sp->queue_fd, sp->queue_dir, w->msg_name,
	    0600, err);
	if (fd < 0) {
		close(old);
		return fd == -EEXIST ?
		    spool_fail(err, fd, "create", sp->queue_dir, w->msg_name) :
		    fd;
	}
	close(w->msg_fd);
	w->msg_fd = fd;
	w->body_8bit = 0;
	chunk = xmalloc(SPOOL_TRANSFORM_CHUNK);
	buf_init(&out, 4 * SPOOL_TRANSFORM_CHUNK + 2 * 1024 * 1024 + 4096);
	do {
		do
			n = pread(old, chunk, SPOOL_TRANSFORM_CHUNK, off);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			rc = spool_fail(err, -errno, "read", sp->queue_dir,
			    w->msg_name);
			break;
		}
		off += n;
		out.len = 0;
		rc = fn(arg, chunk, (size_t)n, n == 0, &out, err);
		if (rc == 0 && out.len > 0)
			rc = spool_writer_write(w, out.data, out.len, err);
	} while (rc == 0 && n > 0);
	buf_fini(&out);
	free(chunk);
	close(old);
	return rc;
}

int
spool_writer_fix(struct spool_writer *w, struct msgfix_scan *scan,
    struct sq_err *err)
{
	struct msgfix_rw rw;
	int              rc;

	switch (msgfix_verdict(scan, err)) {
	case MSGFIX_KEEP:
		return 0;
	case MSGFIX_REFUSE:
		return SQ_EPARSE;
	case MSGFIX_REWRITE:
		break;
	}
	msgfix_rw_init(&rw, scan);
	rc = spool_writer_transform(w, msgfix_rw_step, &rw, err);
	msgfix_rw_fini(&rw);
	if (rc == 0)
		log_info("msgid=%s rewritten: %s", w->id,
		    rw.qp ? "body re-encoded as quoted-printable (a line was "
			    "longer than 998 octets)" :
			    "header lines folded");
	return rc == SQ_ELIMIT ? SQ_EPARSE : rc;
}

void
spool_writer_abort(struct spool_writer *w)
{
	if (w == NULL)
		return;
	if (w->msg_fd >= 0)
		unlinkat(w->sp->queue_fd, w->msg_name, 0);
	spool_writer_free(w);
}

/* Write text to a new locked file dir/name (mode) and, with sync set,
 * fsync it.  Returns the still locked fd or -errno with err; on failure
 * nothing is left. */
static int
spool_write_file_sync(const struct spool *sp, int dirfd, const char *dirpath,
    const char *name, mode_t mode, const char *text, size_t len, int sync,
    struct sq_err *err)
{
	int fd, rc;

	fd = spool_create_locked(sp, dirfd, dirpath, name, mode, err);
	if (fd == -EEXIST) {
		/* Only a dead writer's or updater's debris can hold this
		 * name (see the top of this file). */
		unlinkat(dirfd, name, 0);
		fd = spool_create_locked(sp, dirfd, dirpath, name, mode, err);
		if (fd == -EEXIST)
			return spool_fail(err, fd, "create", dirpath, name);
	}
	if (fd < 0)
		return fd;
	if ((rc = sq_write_all(fd, text, len)) != 0) {
		spool_fail(err, rc, "write", dirpath, name);
		goto fail;
	}
	if (sync && fsync(fd) != 0) {
		rc = -errno;
		spool_fail(err, rc, "fsync", dirpath, name);
		goto fail;
	}
	return fd;
fail:
	unlinkat(dirfd, name, 0);
	close(fd);
	return rc;
}

static int
spool_write_file(const struct spool *sp, int dirfd, const char *dirpath,
    const char *name, mode_t mode, const char *text, size_t len,
    struct sq_err *err)
{
	return spool_write_file_sync(sp, dirfd, dirpath, name, mode, text, len,
	    1, err);
}

int
spool_writer_commit(struct spool_writer *w, struct envelope *env,
    struct sq_err *err)
{
	struct spool *sp = w->sp;
	char         *text = NULL;
	size_t        len;
	int           rc, env_fd = -1, env_moved = 0;

	if ((rc = spool_writer_file(w, err)) != 0 ||
	    (rc = spool_writer_flush(w, err)) != 0)
		goto fail;
	if (fsync(w->msg_fd) != 0) {
		rc = spool_fail(err, -errno, "fsync", sp->queue_dir,
		    w->msg_name);
		goto fail;
	}
	memcpy(env->id, w->id, sizeof(env->id));
	env->body_8bit = w->body_8bit;
	text = envelope_format(env, &len);
	env_fd = spool_write_file(sp, sp->tmp_fd, sp->tmp_dir, w->env_name,
	    sp->env_mode, text, len, err);
	if (env_fd < 0) {
		rc = env_fd;
		goto fail;
	}
	if ((rc = spool_rename_new(sp, w->env_name)) != 0) {
		rc = spool_fail(err, rc, "rename into queue/", sp->tmp_dir,
		    w->env_name);
		goto fail;
	}
	env_moved = 1;
	if (fsync(sp->queue_fd) != 0) {
		rc = spool_fail(err, -errno, "fsync", sp->queue_dir, NULL);
		goto fail;
	}
	free(text);
	close(env_fd);
	spool_writer_free(w);
	return 0;
fail:
	/* Not acknowledged, so not kept: the submitter will retry. */
	if (env_moved)
		unlinkat(sp->queue_fd, w->env_name, 0);
	else if (env_fd >= 0)
		unlinkat(sp->tmp_fd, w->env_name, 0);
	/* Without its .env a queue/ID.msg is nobody's message: a crash
	 * before this unlink leaves one for recovery to remove. */
	if (w->msg_fd >= 0)
		unlinkat(sp->queue_fd, w->msg_name, 0);
	if (env_fd >= 0)
		close(env_fd);
	free(text);
	spool_writer_free(w);
	return rc;
}

/*
 * Group commit.  Each member is an item: its queue/ID.msg already written
 * (by its writer), its envelope text to write as tmp/ID.env.
 * spool_group_run() writes every envelope without a sync, then makes the
 * data of every member's two files stable with one batch of per-file
 * syncs (spool_sync_batch: writeback of every file is started first, then
 * each is fdatasync'ed, so that ext4 commits its journal once for the
 * whole batch and the later fdatasyncs find their data already written),
 * renames every member's .env into queue/ (its .msg is there already),
 * and makes the names stable with ONE fsync(queue/).  A
 * member that fails at any step (its own sync included) is undone alone;
 * the others go on.  Per-file syncs replace syncfs(), which wrote back
 * the whole filesystem (other programs' dirty data too) and which no
 * FUSE file system sees, so that a power-loss test under LazyFS
 * (tests/integration/test_power_loss.py) can prove the commit.
 */
struct spool_gc_item {
	char id[ENVELOPE_ID_MAX];
	char msg_name[ENVELOPE_ID_MAX + 8];
	char env_name[ENVELOPE_ID_MAX + 8];
	int  env_fd;
	int  msg_fd;  /* the writer's, not owned; -1 none */
	int  foreign; /* queue/ID.msg belongs to its writer */
	int  env_moved;
	int  walled; /* durable by its write-ahead log record */
	/* A member kept in memory (its writer had no file): the body, and
	 * once written there its memfd (spool_gc_memfd); a member that
	 * gets its files after all (spool_gc_file) has mem 0 and owns
	 * msg_fd. */
	int            mem;
	char          *body;
	size_t         body_len;
	int            body_fd;
	int            own_msg_fd;
	char          *text;
	size_t         len;
	int            rc;
	struct sq_err *err;
};

static void
spool_gc_item_init(struct spool_gc_item *it, const char *id, struct sq_err *err)
{
	memset(it, 0, sizeof(*it));
	it->env_fd = -1;
	it->msg_fd = -1;
	it->body_fd = -1;
	it->err = err;
	snprintf(it->id, sizeof(it->id), "%s", id);
	snprintf(it->msg_name, sizeof(it->msg_name), "%s.msg", id);
	snprintf(it->env_name, sizeof(it->env_name), "%s.env", id);
}

/* Undo a failed member: nothing of it is left in queue/; queue/ID.msg
 * is removed unless its (foreign) writer owns it.  Returns 1 when queue/
 * changed and needs a directory sync. */
static int
spool_gc_undo(struct spool *sp, struct spool_gc_item *it)
{
	int changed = 0;

	if (it->env_moved) {
		unlinkat(sp->queue_fd, it->env_name, 0);
		changed = 1;
	} else if (it->env_fd >= 0)
		unlinkat(sp->tmp_fd, it->env_name, 0);
	if (!it->foreign && it->msg_fd >= 0)
		unlinkat(sp->queue_fd, it->msg_name, 0);
	it->env_moved = 0;
	return changed;
}

/*
 * Make the data of the files fds[0..n-1] stable: start the writeback of
 * all of them, then fdatasync each (the metadata they need to be read,
 * their size and blocks, is included; their names are the directory's
 * business).  rcs[i] is 0 or -errno for fds[i].
 */
struct spool_sync_part {
	const int *fds;
	int       *rcs;
	size_t     first, n, step;
};

static void *
spool_sync_part(void *arg)
{
	struct spool_sync_part *p = arg;
	size_t                  i;

	for (i = p->first; i < p->n; i += p->step)
		p->rcs[i] = fdatasync(p->fds[i]) == 0 ? 0 : -errno;
	return NULL;
}

/*
 * The commit thread's helpers, started once (at the first batch of more
 * than one fd) rather than a thread per batch: the caller and every
 * helper take the next fd of the batch until none is left.  Not at
 * spool_async_start: with the write-ahead log only a body too large for
 * it has its files synced here, and seven idle threads cost 8 KiB of
 * RSS each (their stack's top page and their TLS; issue 14).
 */
struct spool_pool {
	pthread_mutex_t mu;
	pthread_cond_t  go, idle;
	const int      *fds; /* the batch, NULL between batches */
	int            *rcs;
	size_t          n, next, busy;
	int             stop;
	pthread_t       tids[SPOOL_SYNC_THREADS - 1];
	size_t          n_tids;
	int             started; /* the helpers were started (under mu) */
};

/* Take and sync fds of the batch until none is left; with mu held. */
static void
spool_pool_take(struct spool_pool *pl)
{
	size_t i;
	int    rc;

	while (pl->fds != NULL && pl->next < pl->n) {
		i = pl->next++;
		pl->busy++;
		pthread_mutex_unlock(&pl->mu);
		rc = fdatasync(pl->fds[i]) == 0 ? 0 : -errno;
		pthread_mutex_lock(&pl->mu);
		pl->rcs[i] = rc;
		if (--pl->busy == 0 && pl->next >= pl->n)
			pthread_cond_broadcast(&pl->idle);
	}
}

static void *
spool_pool_main(void *arg)
{
	struct spool_pool *pl = arg;

	pthread_mutex_lock(&pl->mu);
	while (!pl->stop) {
		if (pl->fds == NULL || pl->next >= pl->n) {
			pthread_cond_wait(&pl->go, &pl->mu);
			continue;
		}
		spool_pool_take(pl);
	}
	pthread_mutex_unlock(&pl->mu);
	return NULL;
}

static void
spool_pool_run(struct spool_pool *pl, const int *fds, int *rcs, size_t n)
{
	size_t i;

	pthread_mutex_lock(&pl->mu);
	if (n > 1 && !pl->started) {
		/* They wait for mu, then find this batch. */
		pl->started = 1;
		for (; pl->n_tids < SPOOL_SYNC_THREADS - 1; pl->n_tids++)
			if (pthread_create(&pl->tids[pl->n_tids], NULL,
				spool_pool_main, pl) != 0)
				break; /* fewer helpers: the caller does the rest */
	}
	pl->fds = fds;
	pl->rcs = rcs;
	pl->n = n;
	pl->next = 0;
	/* Wake only the helpers the batch can use: each wake-up is a
	 * context switch. */
	for (i = 1; i < n && i <= pl->n_tids; i++)
		pthread_cond_signal(&pl->go);
	spool_pool_take(pl);
	while (pl->busy > 0)
		pthread_cond_wait(&pl->idle, &pl->mu);
	pl->fds = NULL;
	pthread_mutex_unlock(&pl->mu);
}

static void
spool_pool_init(struct spool_pool *pl)
{
	memset(pl, 0, sizeof(*pl));
	pthread_mutex_init(&pl->mu, NULL);
	pthread_cond_init(&pl->go, NULL);
	pthread_cond_init(&pl->idle, NULL);
}

static void
spool_pool_fini(struct spool_pool *pl)
{
	size_t i;

	pthread_mutex_lock(&pl->mu);
	pl->stop = 1;
	pthread_cond_broadcast(&pl->go);
	pthread_mutex_unlock(&pl->mu);
	for (i = 0; i < pl->n_tids; i++)
		pthread_join(pl->tids[i], NULL);
	pthread_mutex_destroy(&pl->mu);
	pthread_cond_destroy(&pl->go);
	pthread_cond_destroy(&pl->idle);
}

/* The fdatasyncs run from up to SPOOL_SYNC_THREADS threads at once: each
 * waits for its own file's writeback and ends in a disk cache flush;
 * issued together the waits overlap and the flushes are merged by the
 * block layer, where one after the other they add up (measured, perf
 * trace, listener with 8 sessions under load: one after the other each
 * fdatasync took 1.8 ms and a group of 8 messages ~12 ms; from 8
 * threads a group took ~2.5 ms, for a wake-up of each helper).  With a
 * pool (the commit thread's) its threads do it; else threads are
 * started for the batch. */
static void
spool_sync_batch(struct spool_pool *pool, const int *fds, int *rcs, size_t n)
{
	struct spool_sync_part parts[SPOOL_SYNC_THREADS];
	pthread_t              tids[SPOOL_SYNC_THREADS];
	int                    started[SPOOL_SYNC_THREADS];
	size_t                 i, k;

	for (i = 0; i < n; i++)
		(void)sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
	if (pool != NULL) {
		spool_pool_run(pool, fds, rcs, n);
		return;
	}
	k = n < SPOOL_SYNC_THREADS ? n : SPOOL_SYNC_THREADS;
	for (i = 0; i < k; i++) {
		parts[i] = (struct spool_sync_part){ fds, rcs, i, n, k };
		started[i] = i > 0 &&
		    pthread_create(&tids[i], NULL, spool_sync_part,
			&parts[i]) == 0;
	}
	if (k > 0)
		spool_sync_part(&parts[0]);
	for (i = 1; i < k; i++) {
		if (started[i])
			pthread_join(tids[i], NULL);
		else
			spool_sync_part(&parts[i]);
	}
}

/*
 * File messages held in memory, each claimed by the caller
 * (spool_mem_claim): write queue/ID.msg from its memfd and tmp/ID.env,
 * sync the data of all of them as one batch, rename each .env into
 * queue/, fsync queue/; then each leaves the table (one removed
 * meanwhile, gone, has its new files unlinked again: a crash before
 * that sends it twice, never loses it).  One that fails is undone and
 * stays held (its record in the log keeps it).  Returns the number that
 * failed (logged).
 */
static size_t
spool_mem_file(struct spool *sp, struct spool_mem **es, size_t n)
{
	int          *fds = xcalloc(2 * n + 1, sizeof(*fds));
	int          *rcs = xcalloc(2 * n + 1, sizeof(*rcs));
	int          *ok = xcalloc(n + 1, sizeof(*ok));
	char         *body = xmalloc(SPOOL_WAL_BODY_MAX + 1);
	char          msg[ENVELOPE_ID_MAX + 8], env[ENVELOPE_ID_MAX + 8];
	struct sq_err err;
	size_t        i, k = 0, failed = 0, n_ok = 0;
	int           fd, rc;

	for (i = 0; i < n; i++) {
		struct spool_mem *e = es[i];

		spool_id_name(msg, e->id, ".msg");
		spool_id_name(env, e->id, ".env");
		if ((rc = sq_pread_all(e->body_fd, body, e->body_len, 0)) !=
		    0) {
			sq_err_set(&err, rc < 0 ? rc : -EIO,
			    "read its body (memfd): %s",
			    strerror(rc < 0 ? -rc : EIO));
			goto fail;
		}
		fd = spool_write_file_sync(sp, sp->queue_fd, sp->queue_dir, msg,
		    0600, body, e->body_len, 0, &err);
		if (fd < 0)
			goto fail;
		fds[k] = fd;
		fd = spool_write_file_sync(sp, sp->tmp_fd, sp->tmp_dir, env,
		    sp->env_mode, e->env, e->env_len, 0, &err);
		if (fd < 0) {
			unlinkat(sp->queue_fd, msg, 0);
			close(fds[k]);
			goto fail;
		}
		fds[k + 1] = fd;
		k += 2;
		ok[i] = 1;
		continue;
	fail:
		log_err("msgid=%s: cannot write its files: %s (kept in memory "
			"and in the write-ahead log)",
		    e->id, err.msg);
		failed++;
	}
	spool_sync_batch(NULL, fds, rcs, k);
	for (i = 0, k = 0; i < n; i++) {
		if (!ok[i])
			continue;
		spool_id_name(msg, es[i]->id, ".msg");
		spool_id_name(env, es[i]->id, ".env");
		rc = rcs[k] != 0 ? rcs[k] : rcs[k + 1];
		if (rc == 0 && (rc = spool_rename_new(sp, env)) == 0) {
			n_ok++;
		} else {
			log_err("msgid=%s: cannot write its files: %s (kept in "
				"memory and in the write-ahead log)",
			    es[i]->id, strerror(-rc));
			unlinkat(sp->tmp_fd, env, 0);
			unlinkat(sp->queue_fd, msg, 0);
			ok[i] = 0;
			failed++;
		}
		close(fds[k]);
		close(fds[k + 1]);
		k += 2;
	}
	if (n_ok > 0 && fsync(sp->queue_fd) != 0) {
		/* Not durable: undone, so that a message has its files or
		 * is held, never both. */
		log_err(
		    "msgid=%s and %zu more: cannot write their files: "
		    "fsync %s: %s (kept in memory and in the write-ahead log)",
		    es[0]->id, n - 1, sp->queue_dir, strerror(errno));
		for (i = 0; i < n; i++)
			if (ok[i]) {
				spool_unlink_files(sp, es[i]->id, 0, &err);
				ok[i] = 0;
				failed++;
			}
	}
	pthread_mutex_lock(&sp->mem.mu);
	for (i = 0; i < n; i++) {
		struct spool_mem *e = es[i];

		e->filing = 0;
		if (e->gone) {
			/* Removed meanwhile: out of the table already. */
			if (ok[i])
				spool_unlink_files(sp, e->id, 0, &err);
			spool_mem_free(e);
		} else if (ok[i]) {
			spool_mem_unlink(sp, e);
			spool_mem_free(e);
			sp->mem.filed_n++;
		}
	}
	pthread_cond_broadcast(&sp->mem.filed);
	pthread_mutex_unlock(&sp->mem.mu);
	free(body);
	free(ok);
	free(rcs);
	free(fds);
	return failed;
}

/* Claim message id for filing when it is held in memory (waiting for a
 * filing of it already under way): the entry, or NULL (not held, or
 * filed meanwhile). */
static struct spool_mem *
spool_mem_claim(struct spool *sp, const char *id)
{
	struct spool_mem *e;

	pthread_mutex_lock(&sp->mem.mu);
	while ((e = spool_mem_find(sp, id)) != NULL && e->filing)
		pthread_cond_wait(&sp->mem.filed, &sp->mem.mu);
	if (e != NULL)
		e->filing = 1;
	pthread_mutex_unlock(&sp->mem.mu);
	return e;
}

/* Give message id its files now if it is held in memory (before
 * something durable is made from it).  0 or -errno with err. */
static int
spool_mem_file_now(struct spool *sp, const char *id, struct sq_err *err)
{
	struct spool_mem *e;

	if ((e = spool_mem_claim(sp, id)) == NULL)
		return 0;
	if (spool_mem_file(sp, &e, 1) != 0)
		return sq_err_set(err, -EIO,
		    "msgid=%s: cannot write its files in %s (logged)", id,
		    sp->queue_dir);
	return 0;
}

/* When the oldest message held in memory is due for its files (mem.mu
 * taken): 1 and *due, or 0 when none is held. */
static int
spool_mem_due(struct spool *sp, struct timespec *due)
{
	struct spool_mem *e;

	pthread_mutex_lock(&sp->mem.mu);
	for (e = sp->mem.oldest; e != NULL && e->filing; e = e->newer)
		;
	if (e != NULL)
		*due = spool_ts_add_ms(e->since, (long)sp->mem.age_ms);
	pthread_mutex_unlock(&sp->mem.mu);
	return e != NULL;
}

/* Messages given their files per spool_mem_file call: two descriptors
 * each, at most as many as the held ones may have (a quarter of the
 * limit, spool_async_start). */
static size_t
spool_mem_batch(struct spool *sp)
{
	size_t k;

	pthread_mutex_lock(&sp->mem.mu);
	k = sp->mem.max / 2;
	pthread_mutex_unlock(&sp->mem.mu);
	return k < 1 ? 1 : k < SPOOL_FILE_BATCH ? k : SPOOL_FILE_BATCH;
}

/* File every message held in memory for age_ms or longer (removal
 * thread), spool_mem_batch() at a time. */
static void
spool_mem_file_aged(struct spool *sp)
{
	struct spool_mem *es[SPOOL_FILE_BATCH], *e;
	struct timespec   due, now;
	size_t            n, batch = spool_mem_batch(sp);

	do {
		n = 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		pthread_mutex_lock(&sp->mem.mu);
		for (e = sp->mem.oldest; e != NULL && n < batch; e = e->newer) {
			due = spool_ts_add_ms(e->since, (long)sp->mem.age_ms);
			if (spool_ts_after(&due, &now))
				break;
			if (e->filing)
				continue;
			e->filing = 1;
			es[n++] = e;
		}
		pthread_mutex_unlock(&sp->mem.mu);
		if (n > 0 && spool_mem_file(sp, es, n) != 0)
			break; /* failing: the checkpoint tries again */
	} while (n == batch);
}

/* How many messages were ever held, and the age after which they get
 * their files. */
static void
spool_mem_activity(struct spool *sp, uint64_t *held_total, unsigned *age_ms)
{
	pthread_mutex_lock(&sp->mem.mu);
	*held_total = sp->mem.held;
	*age_ms = sp->mem.age_ms;
	pthread_mutex_unlock(&sp->mem.mu);
}

/* Take id out of the table when it is held in memory (its removal):
 * 1 when it was, else 0.  One being filed is marked gone: the filing
 * unlinks its new files. */
static int
spool_mem_remove(struct spool *sp, const char *id)
{
	struct spool_mem *e;

	pthread_mutex_lock(&sp->mem.mu);
	if ((e = spool_mem_find(sp, id)) != NULL) {
		spool_mem_unlink(sp, e);
		if (e->filing)
			e->gone = 1;
		else
			spool_mem_free(e);
	}
	pthread_mutex_unlock(&sp->mem.mu);
	return e != NULL;
}

struct spool_pending {
	struct spool_pending *next;
	struct spool_writer  *w;
	struct spool_gc_item  it;
	struct sq_err         err;
	spool_commit_fn       fn;
	void                 *arg;
};

/* Removals to make, in blocks of up to SPOOL_RM_LOG_MAX (one batch of
 * REMOVE records each): 33 bytes a message and one allocation a block,
 * where a node of its own took a 64-byte malloc chunk (a drain of 8,000
 * messages that outran the unlinks had 6,000 of them waiting: 0.4 MB of
 * sendqd's peak RSS, issue 14). */
struct spool_rm_item {
	char          id[ENVELOPE_ID_MAX];
	unsigned char no_files; /* was held in memory: nothing to unlink */
};
struct spool_rm {
	struct spool_rm     *next;
	size_t               n;
	struct spool_rm_item it[SPOOL_RM_LOG_MAX];
};
_Static_assert(sizeof(struct spool_rm) <= 40 * SPOOL_RM_LOG_MAX,
    "a waiting removal takes at most 40 bytes");

/* The messages in one segment of the write-ahead log: id, and whether it
 * was held in memory (then it has files only if it is still held, which
 * the checkpoint gives it, or was given them durably already). */
struct spool_wal_id {
	char id[ENVELOPE_ID_MAX];
	int  held;
};
struct spool_wal_ids {
	struct spool_wal_id *ids;
	size_t               n, cap;
};

struct spool_async {
	struct spool         *sp;
	pthread_t             tid;    /* the commit thread */
	pthread_t             rm_tid; /* the removal thread */
	int                   rm_started;
	pthread_mutex_t       mu;
	pthread_cond_t        cv;       /* todo or stop */
	pthread_cond_t        rm_cv;    /* rms, stop or rm_synced moved */
	pthread_cond_t        batch_cv; /* a removal batch made */
	struct spool_pending *todo, **todo_tail;
	struct spool_pending *running; /* the commit thread's round */
	struct spool_pending *done, **done_tail;
	size_t                n_todo;
	/* spool_commit_batch_begin..end (the loop thread's only, no lock):
	 * the messages queued meanwhile, handed over at the end. */
	struct spool_pending *batch, **batch_tail;
	size_t                n_batch;
	int                   batching;
	struct spool_rm      *rms; /* removals to make */
	/* Removals (renames and unlinks in queue/) are counted in batches:
	 * rm_gen is the last batch the removal thread has made, rm_synced
	 * the last one an fsync of queue/ has covered, its own or a
	 * commit's (spool_rm_synced). */
	uint64_t          rm_gen, rm_synced;
	struct spool_pool pool; /* the commit thread's fdatasyncs */
	int               stop;
	int               efd; /* eventfd: done is not empty */
	/* The write-ahead log (sp->wal): the ids of the messages whose
	 * records each segment holds (appended by the commit thread, under
	 * mu), the segments due for a checkpoint (set under mu when an
	 * append filled one; the removal thread makes it), and wal_mu, held
	 * by the commit thread from a group's append until its members are
	 * renamed in and listed: the checkpoint takes it once before it
	 * reads a segment's list, so that a group that went into the
	 * segment just before it filled is complete. */
	struct spool_wal_ids wal_ids[2];
	int                  ckpt_due[2];
	pthread_mutex_t      wal_mu;
	/* spool_wal_stats (under mu). */
	struct spool_wal_stats wal_stats;
	/* Removals of messages held in memory (no files to unlink): their
	 * REMOVE records are appended by the caller at the end of its turn
	 * (spool_sync_removals: one write for the turn's; a SIGKILL after
	 * it cannot lose them, one before it delivers them again) and
	 * made durable by the next group's
	 * sync; when none comes within rm_sync_ms of the first, the commit
	 * thread syncs them alone (spool_async_main).  Neither wakes the
	 * removal thread.  held_pos[seg]: the end of the last one appended
	 * to segment seg, while held_pending[seg]. */
	struct timespec held_rms_since;
	struct wal_pos  held_pos[2];
	int             held_pending[2];
	/* Who sleeps how (under mu), so that a wake-up is sent only when
	 * needed: the commit thread with no deadline (no message held, no
	 * REMOVE pending); the removal thread waiting for a sync of the log
	 * (its REMOVE records written) or with no deadline (a first held
	 * message wakes it, for its age). */
	int commit_idle, rm_wants_sync, rm_idle;
};

/* Put member it's body (in memory) into a sealed memfd, which the table
 * of messages held in memory keeps: 0, or -errno (the member then gets
 * its files, spool_gc_file). */
static int
spool_gc_memfd(struct spool_gc_item *it)
{
	int fd, rc;

	fd = memfd_create("sendq-body", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if ((rc = sq_pwrite_all(fd, it->body, it->body_len, 0)) != 0 ||
	    fcntl(fd, F_ADD_SEALS,
		F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) !=
		0) {
		rc = rc != 0 ? rc : -errno;
		close(fd);
		return rc;
	}
	it->body_fd = fd;
	return 0;
}

/* A member kept in memory gets its files after all (not synced): its
 * queue/ID.msg, then tmp/ID.env; from then on it is a member like any
 * other.  On failure it->rc is set. */
static void
spool_gc_file(struct spool *sp, struct spool_gc_item *it)
{
	int fd;

	fd = spool_write_file_sync(sp, sp->queue_fd, sp->queue_dir,
	    it->msg_name, 0600, it->body, it->body_len, 0, it->err);
	if (fd < 0) {
		it->rc = fd;
		return;
	}
	it->mem = 0;
	it->msg_fd = fd;
	it->own_msg_fd = 1;
	if (it->body_fd >= 0)
		close(it->body_fd);
	it->body_fd = -1;
	it->env_fd = spool_write_file_sync(sp, sp->tmp_fd, sp->tmp_dir,
	    it->env_name, sp->env_mode, it->text, it->len, 0, it->err);
	if (it->env_fd < 0)
		it->rc = it->env_fd;
}

/* The walled members items[idx[0..k-1]] kept in memory go into the
 * table of messages held in memory (the table takes their memfd and
 * envelope text), before their committers are told; beyond
 * SPOOL_MEM_MAX they get their files (unsynced: the log holds them). */
static size_t
spool_mem_hold(struct spool *sp, struct spool_gc_item *items, const size_t *idx,
    size_t k)
{
	struct spool_mem *e;
	struct timespec   now;
	size_t            i, held = 0;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < k; i++) {
		struct spool_gc_item *it = &items[idx[i]];

		if (!it->mem)
			continue;
		pthread_mutex_lock(&sp->mem.mu);
		if (sp->mem.n >= sp->mem.max) {
			pthread_mutex_unlock(&sp->mem.mu);
			spool_gc_file(sp, it);
			continue;
		}
		e = xcalloc(1, sizeof(*e));
		memcpy(e->id, it->id, sizeof(e->id));
		e->env = it->text;
		e->env_len = it->len;
		e->body_fd = it->body_fd;
		e->body_len = it->body_len;
		e->since = now;
		spool_mem_link(sp, e);
		pthread_mutex_unlock(&sp->mem.mu);
		it->text = NULL;
		it->body_fd = -1;
		held++;
	}
	return held;
}

/* Sync the data of every live member's .msg and .env as one batch; a
 * member whose sync fails fails alone.  Returns the members still live. */
static size_t
spool_group_sync(struct spool *sp, struct spool_gc_item *items, size_t n,
    struct spool_pool *pool)
{
	int   *fds = xcalloc(2 * n, sizeof(*fds));
	int   *rcs = xcalloc(2 * n, sizeof(*rcs));
	size_t i, k = 0, live = 0;

	for (i = 0; i < n; i++) {
		if (items[i].rc != 0 || items[i].walled)
			continue;
		fds[k++] = items[i].msg_fd;
		fds[k++] = items[i].env_fd;
	}
	spool_sync_batch(pool, fds, rcs, k);
	for (i = 0, k = 0; i < n; i++) {
		struct spool_gc_item *it = &items[i];

		if (it->rc != 0)
			continue;
		if (it->walled) {
			live++;
			continue;
		}
		if (rcs[k] != 0)
			it->rc = spool_fail(it->err, rcs[k], "fdatasync",
			    sp->queue_dir, it->msg_name);
		else if (rcs[k + 1] != 0)
			it->rc = spool_fail(it->err, rcs[k + 1], "fdatasync",
			    sp->tmp_dir, it->env_name);
		else
			live++;
		k += 2;
	}
	free(fds);
	free(rcs);
	return live;
}

static void spool_rm_batch_done(struct spool_async *, int);
static void spool_rm_unlink_list(struct spool *, struct spool_rm *, int);

/* The REMOVE records of held messages that a sync of the log has
 * covered are done (mu held): counted as a removal batch. */
static int
spool_held_rms_pending(const struct spool_async *as)
{
	return as->held_pending[0] || as->held_pending[1];
}

static void
spool_held_rms_settle(struct spool_async *as)
{
	int seg, was = spool_held_rms_pending(as);

	for (seg = 0; seg < 2; seg++)
		if (as->held_pending[seg] &&
		    wal_synced(as->sp->wal, &as->held_pos[seg]))
			as->held_pending[seg] = 0;
	if (was && !spool_held_rms_pending(as))
		spool_rm_batch_done(as, 1);
}

/*
 * The write-ahead log's part of a group (spool_group_run, commit thread
 * only, with as->wal_mu held): every live member whose body is small
 * enough gets a record (id, envelope text, body read back from its
 * queue/ID.msg, which is in the page cache), all of them are appended
 * with one write and made durable with one fdatasync of the segment
 * (wal.h: an overwrite, no file system journal commit).  Those members
 * are walled: their files need no sync.  A member left out (a large
 * body, the log full or failing) keeps walled 0 and has its files
 * synced by the caller.  A failed fdatasync fails the members it
 * covered.  Returns the number walled.
 */
static size_t
spool_group_wal(struct spool_async *as, struct spool_gc_item *items, size_t n)
{
	struct spool   *sp = as->sp;
	struct wal_rec *recs = xcalloc(n, sizeof(*recs));
	size_t         *idx = xcalloc(n, sizeof(*idx));
	unsigned char  *bodies = NULL;
	struct wal_pos  pos;
	struct sq_err   err;
	struct stat     st;
	size_t          i, j, k = 0, total = 0, body_total = 0, off, sz, held;
	int             rc;

	for (i = 0; i < n; i++) {
		struct spool_gc_item *it = &items[i];
		struct wal_rec        rec;
		size_t                body_len;

		if (it->rc != 0)
			continue;
		if (it->mem)
			body_len = it->body_len;
		else if (it->msg_fd < 0 || fstat(it->msg_fd, &st) != 0 ||
		    st.st_size > SPOOL_WAL_BODY_MAX)
			continue;
		else
			body_len = (size_t)st.st_size;
		rec = (struct wal_rec){ WAL_MSG, it->id, strlen(it->id),
			it->text, it->len, it->body, body_len };
		sz = wal_record_size(&rec);
		if (total + sz > SPOOL_WAL_GROUP_MAX ||
		    total + sz > wal_capacity(sp->wal))
			continue;
		total += sz;
		if (!it->mem)
			body_total += rec.b_len;
		recs[k] = rec;
		idx[k++] = i;
	}
	if (k == 0)
		goto out;
	/* A body in memory goes into the record as it is; one in a file is
	 * read back (from the page cache). */
	bodies = xmalloc(body_total + 1);
	for (i = 0, j = 0, off = 0; i < k; i++) {
		if (!items[idx[i]].mem) {
			/* One unreadable now is left out: the file path
			 * says why. */
			if (recs[i].b_len > 0 &&
			    sq_pread_all(items[idx[i]].msg_fd, bodies + off,
				recs[i].b_len, 0) != 0)
				continue;
			recs[i].b = bodies + off;
			off += recs[i].b_len;
		}
		recs[j] = recs[i];
		idx[j++] = idx[i];
	}
	if ((k = j) == 0)
		goto out;
	if ((rc = wal_append(sp->wal, recs, k, &pos, &err)) != 0) {
		if (rc != -ENOSPC)
			log_warn("spool: %s (files synced instead)", err.msg);
		k = 0;
		goto out;
	}
	if ((rc = wal_sync(sp->wal, &pos, &err)) != 0) {
		for (i = 0; i < k; i++)
			items[idx[i]].rc = sq_err_set(items[idx[i]].err, rc,
			    "%s", err.msg);
		k = 0;
		goto out;
	}
	/* Held before the removal thread is looked at below: it files
	 * them when they are due. */
	held = spool_mem_hold(sp, items, idx, k);
	pthread_mutex_lock(&as->mu);
	{
		struct spool_wal_ids *l = &as->wal_ids[pos.seg];

		if (l->n + k > l->cap) {
			l->cap = (l->n + k) * 2;
			l->ids = xreallocarray(l->ids, l->cap, sizeof(*l->ids));
		}
		for (i = 0; i < k; i++) {
			items[idx[i]].walled = 1;
			memcpy(l->ids[l->n].id, items[idx[i]].id,
			    sizeof(l->ids[0].id));
			l->ids[l->n++].held = items[idx[i]].mem;
		}
	}
	if (pos.rotated)
		as->ckpt_due[pos.full_seg] = 1;
	/* The sync covered the REMOVE records of held messages appended
	 * before it. */
	spool_held_rms_settle(as);
	/* The removal thread is woken only when it has work: the sync
	 * covered the REMOVE records it waits for (it may unlink their
	 * files), a segment to checkpoint, or a first held message to
	 * time (spool_rm_main). */
	if (as->rm_wants_sync || pos.rotated || (held > 0 && as->rm_idle)) {
		as->rm_idle = 0;
		pthread_cond_broadcast(&as->rm_cv);
	}
	as->wal_stats.groups++;
	as->wal_stats.messages += k;
	pthread_mutex_unlock(&as->mu);
out:
	free(bodies);
	free(recs);
	free(idx);
	return k;
}

/* Run the group; items with rc != 0 on entry have already failed.  With
 * as (the commit thread's round) its pool makes the fdatasyncs, and with
 * a write-ahead log (sp->wal) the small members are made durable by it
 * (spool_group_wal): their files need no sync, and the group no fsync of
 * queue/ unless a member had its files synced.  Returns the number of
 * sync batches made. */
static unsigned
spool_group_run(struct spool *sp, struct spool_gc_item *items, size_t n,
    struct spool_async *as)
{
	struct spool_pool *pool = as != NULL ? &as->pool : NULL;
	uint64_t           rm_gen;
	size_t             i, live = 0, done = 0, walled = 0, synced = 0;
	unsigned           syncs = 0;
	int                rc, changed = 0, use_wal;

	use_wal = as != NULL && sp->wal != NULL;
	if (use_wal)
		pthread_mutex_lock(&as->wal_mu);
	for (i = 0; i < n; i++) {
		struct spool_gc_item *it = &items[i];

		if (it->rc != 0)
			continue;
		if (it->mem && use_wal && spool_gc_memfd(it) == 0) {
			live++; /* no file unless the log does not take it */
			continue;
		}
		if (it->mem)
			spool_gc_file(sp, it);
		else {
			it->env_fd = spool_write_file_sync(sp, sp->tmp_fd,
			    sp->tmp_dir, it->env_name, sp->env_mode, it->text,
			    it->len, 0, it->err);
			if (it->env_fd < 0)
				it->rc = it->env_fd;
		}
		if (it->rc == 0)
			live++;
	}
	if (live == 0)
		goto out;
	syncs++;
	if (use_wal)
		walled = spool_group_wal(as, items, n);
	for (i = 0; i < n; i++)
		if (items[i].rc == 0 && items[i].mem && !items[i].walled)
			spool_gc_file(sp, &items[i]); /* the log was full */
	if (walled < live && spool_group_sync(sp, items, n, pool) == 0)
		goto out;
	for (i = 0; i < n; i++) {
		struct spool_gc_item *it = &items[i];

		if (it->rc != 0)
			continue;
		if (it->mem) {
			done++; /* held in memory: no name to move */
			continue;
		}
		if ((rc = spool_rename_new(sp, it->env_name)) != 0) {
			it->rc = spool_fail(it->err, rc, "rename into queue/",
			    sp->tmp_dir, it->env_name);
			continue;
		}
		it->env_moved = 1;
		done++;
		if (!it->walled)
			synced++;
	}
	if (synced == 0)
		goto out; /* the log made every name it needs durable */
	syncs++;
	rm_gen = spool_rm_gen(sp);
	if (fsync(sp->queue_fd) == 0)
		spool_rm_synced(sp, rm_gen);
	else {
		rc = -errno;
		for (i = 0; i < n; i++)
			if (items[i].rc == 0 && !items[i].walled)
				items[i].rc = spool_fail(items[i].err, rc,
				    "fsync", sp->queue_dir, NULL);
	}
out:
	/* Not acknowledged, so not kept: the submitters will retry. */
	for (i = 0, done = 0; i < n; i++) {
		if (items[i].rc != 0)
			changed |= spool_gc_undo(sp, &items[i]);
		else
			done++;
		if (items[i].env_fd >= 0)
			close(items[i].env_fd);
		items[i].env_fd = -1;
		if (items[i].own_msg_fd)
			close(items[i].msg_fd);
		if (items[i].body_fd >= 0)
			close(items[i].body_fd);
		items[i].body_fd = -1;
		free(items[i].body);
		items[i].body = NULL;
		free(items[i].text);
		items[i].text = NULL;
	}
	if (changed)
		fsync(sp->queue_fd);
	if (use_wal) {
		pthread_mutex_lock(&as->mu);
		as->wal_stats.file_synced += synced;
		pthread_mutex_unlock(&as->mu);
		pthread_mutex_unlock(&as->wal_mu);
	}
	log_debug("spool: group commit: %zu messages (%zu by the log), %u "
		  "syncs",
	    done, walled, syncs);
	return syncs;
}

/* Prepare member it of a group (main thread): flush w, set env's id and
 * format the envelope.  A failure is kept in it->rc. */
static void
spool_gc_prepare(struct spool *sp, struct spool_writer *w, struct envelope *env,
    struct spool_gc_item *it, struct sq_err *err)
{
	spool_gc_item_init(it, w->id, err);
	memset(err, 0, sizeof(*err));
	if (w->sp != sp) {
		it->rc = sq_err_set(it->err, -EINVAL,
		    "group commit of %s: writer of another spool", w->id);
		/* Its own spool's tmp/ file goes with the writer. */
		unlinkat(w->sp->queue_fd, w->msg_name, 0);
		it->foreign = 1;
		return;
	}
	it->msg_fd = w->msg_fd;
	if (w->msg_fd >= 0 || w->error != 0) {
		if ((it->rc = spool_writer_flush(w, it->err)) != 0)
			return;
	} else {
		/* In memory: the member takes the buffer. */
		it->mem = 1;
		it->body = w->buf;
		it->body_len = w->buf_len;
		w->buf = NULL;
		w->buf_len = 0;
	}
	memcpy(env->id, w->id, sizeof(env->id));
	env->body_8bit = w->body_8bit;
	it->text = envelope_format(env, &it->len);
}

void
spool_commit_group(struct spool_writer **w, struct envelope **envs, size_t n,
    int *results, struct sq_err *errs)
{
	struct spool_gc_item *items;
	struct spool         *sp;
	size_t                i;

	if (n == 0)
		return;
	sp = w[0]->sp;
	items = xcalloc(n, sizeof(*items));
	for (i = 0; i < n; i++)
		spool_gc_prepare(sp, w[i], envs[i], &items[i], &errs[i]);
	/* With a write-ahead log, through it as the commit thread does (its
	 * wal_mu makes the two take turns, the pool included). */
	spool_group_run(sp, items, n, sp->wal != NULL ? sp->as : NULL);
	for (i = 0; i < n; i++) {
		results[i] = items[i].rc;
		/* The lock goes with the fd, after the renames. */
		spool_writer_free(w[i]);
	}
	free(items);
}

/*
 * The commit thread (spool_async_start).  The event loop prepares each
 * member (spool_gc_prepare: the envelope text) and queues it; the thread
 * takes everything queued since its last round as one group
 * (spool_group_run: one batch of fdatasyncs, renames, one fsync of
 * queue/), moves the members to the done list and wakes the loop through
 * an eventfd; spool_async_dispatch() runs their callbacks there.  While
 * one group syncs the next one gathers, so a group is as large as the
 * load makes it, without a timer.  A removal sync asked for meanwhile
 * (spool_sync_removals) is covered by the group's fsync of queue/, or
 * made alone.
 */
/* One round of the commit thread: the group. */
static void
spool_async_round(struct spool_async *as, struct spool_pending *list, size_t n)
{
	struct spool_gc_item *items;
	struct spool_pending *p;
	size_t                i;

	items = xcalloc(n, sizeof(*items));
	for (i = 0, p = list; p != NULL; p = p->next, i++)
		items[i] = p->it;
	spool_group_run(as->sp, items, n, as);
	for (i = 0, p = list; p != NULL; p = p->next, i++) {
		p->it.rc = items[i].rc;
		/* The lock goes with the fd, after the renames. */
		spool_writer_free(p->w);
		p->w = NULL;
	}
	free(items);
}

static int
spool_wal_sync_removals(struct spool_async *, const struct wal_pos *);

/*
 * Sync the pending REMOVE records of held messages alone (no group came
 * to sync them); with mu held, released meanwhile.
 */
static void
spool_async_log_held_rms(struct spool_async *as)
{
	struct wal_pos pos[2];
	int            pending[2], seg, failed = 0;

	memcpy(pos, as->held_pos, sizeof(pos));
	memcpy(pending, as->held_pending, sizeof(pending));
	pthread_mutex_unlock(&as->mu);
	for (seg = 0; seg < 2; seg++)
		if (pending[seg] && spool_wal_sync_removals(as, &pos[seg]) != 0)
			failed = 1;
	pthread_mutex_lock(&as->mu);
	as->sp->rm_own_syncs++;
	spool_held_rms_settle(as);
	if (failed && spool_held_rms_pending(as)) {
		/* Logged: the next start may deliver them again. */
		as->held_pending[0] = as->held_pending[1] = 0;
		spool_rm_batch_done(as, 0);
	}
}

/*
 * The commit thread between groups (mu held): it also times the REMOVE
 * records of held messages that no group carried, logging them rm_sync_ms
 * after the first; while messages are held it wakes every rm_sync_ms,
 * since the loop hands it their removals without waking it.  Waits for
 * a group, the stop, or that.
 */
static void
spool_async_wait(struct spool_async *as)
{
	struct spool   *sp = as->sp;
	struct timespec dl;
	size_t          held;

	if (spool_held_rms_pending(as)) {
		dl = spool_ts_add_ms(as->held_rms_since, (long)sp->rm_sync_ms);
		if (spool_deadline_passed(&dl)) {
			spool_async_log_held_rms(as);
			return;
		}
		pthread_cond_timedwait(&as->cv, &as->mu, &dl);
		return;
	}
	pthread_mutex_lock(&sp->mem.mu);
	held = sp->mem.n;
	pthread_mutex_unlock(&sp->mem.mu);
	if (held > 0) {
		spool_deadline(&dl, (long)sp->rm_sync_ms);
		pthread_cond_timedwait(&as->cv, &as->mu, &dl);
		return;
	}
	as->commit_idle = 1;
	pthread_cond_wait(&as->cv, &as->mu);
	as->commit_idle = 0;
}

static void *
spool_async_main(void *arg)
{
	struct spool_async   *as = arg;
	struct spool_pending *list, *last;
	uint64_t              one = 1;
	size_t                n;

	pthread_mutex_lock(&as->mu);
	for (;;) {
		while (as->todo == NULL && !as->stop)
			spool_async_wait(as);
		if (as->todo == NULL) {
			/* Stopping, nothing left: the last removals too. */
			if (spool_held_rms_pending(as))
				spool_async_log_held_rms(as);
			break;
		}
		list = as->todo;
		n = as->n_todo;
		as->todo = NULL;
		as->todo_tail = &as->todo;
		as->n_todo = 0;
		as->running = list;
		pthread_mutex_unlock(&as->mu);
		spool_async_round(as, list, n);
		pthread_mutex_lock(&as->mu);
		as->running = NULL;
		for (last = list; last->next != NULL; last = last->next)
			;
		*as->done_tail = list;
		as->done_tail = &last->next;
		if (write(as->efd, &one, sizeof(one)) < 0)
			log_err("spool: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&as->mu);
	return NULL;
}

/* The removal batches made so far (0 without a removal thread): an
 * fsync of queue/ that starts after this call covers all of them. */
static uint64_t
spool_rm_gen(struct spool *sp)
{
	struct spool_async *as = sp->as;
	uint64_t            gen;

	if (as == NULL)
		return 0;
	pthread_mutex_lock(&as->mu);
	gen = as->rm_gen;
	pthread_mutex_unlock(&as->mu);
	return gen;
}

/* An fsync of queue/ that started after spool_rm_gen() returned gen has
 * succeeded: removal batches up to gen are stable. */
static void
spool_rm_synced(struct spool *sp, uint64_t gen)
{
	struct spool_async *as = sp->as;

	if (as == NULL || gen == 0)
		return;
	pthread_mutex_lock(&as->mu);
	if (gen > as->rm_synced) {
		as->rm_synced = gen;
		pthread_cond_broadcast(&as->rm_cv);
	}
	pthread_mutex_unlock(&as->mu);
}

/*
 * Sync the files of every message in segment seg's list that is still
 * queued (batches of fdatasyncs, then one fsync of queue/) and empty the
 * list.  Returns the number of failures (logged).
 */
static size_t
spool_sync_listed(struct spool_async *as, int seg)
{
	struct spool        *sp = as->sp;
	struct spool_wal_ids l;
	struct spool_mem   **held;
	char                 name[ENVELOPE_ID_MAX + 8];
	int    fds[2 * SPOOL_CKPT_BATCH], rcs[2 * SPOOL_CKPT_BATCH];
	size_t i = 0, k, j, failed = 0, synced = 0, n_held = 0;
	int    fd;

	pthread_mutex_lock(&as->mu);
	l = as->wal_ids[seg];
	memset(&as->wal_ids[seg], 0, sizeof(as->wal_ids[seg]));
	pthread_mutex_unlock(&as->mu);
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	held = xcalloc(l.n + 1, sizeof(*held));
	while (i < l.n) {
		for (k = 0; i < l.n && k < 2 * SPOOL_CKPT_BATCH; i++) {
			/* Still held in memory: gets its files, below;
			 * held before: delivered (no files) or given its
			 * files durably already. */
			if (l.ids[i].held) {
				held[n_held] = spool_mem_claim(sp, l.ids[i].id);
				if (held[n_held] != NULL)
					n_held++;
				continue;
			}
			spool_id_name(name, l.ids[i].id, ".env");
			fd = openat(sp->queue_fd, name,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0)
				continue; /* delivered (or being removed) */
			fds[k++] = fd;
			spool_id_name(name, l.ids[i].id, ".msg");
			fd = openat(sp->queue_fd, name,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd >= 0)
				fds[k++] = fd;
			synced++;
		}
		spool_sync_batch(NULL, fds, rcs, k);
		for (j = 0; j < k; j++) {
			if (rcs[j] != 0 && failed++ == 0)
				log_err("spool: checkpoint: fdatasync: %s",
				    strerror(-rcs[j]));
			close(fds[j]);
		}
	}
	for (i = 0; i < n_held; i += k) {
		k = spool_mem_batch(sp);
		k = n_held - i < k ? n_held - i : k;
		failed += spool_mem_file(sp, held + i, k);
	}
	free(held);
	if (failed == 0 && fsync(sp->queue_fd) != 0) {
		log_err("spool: checkpoint: fsync %s: %s", sp->queue_dir,
		    strerror(errno));
		failed++;
	}
	log_debug("spool: log segment %d: %zu of %zu messages still queued, "
		  "synced, %zu of them from memory",
	    seg, synced + n_held, l.n, n_held);
	free(l.ids);
	return failed;
}

/*
 * A checkpoint frees segment seg of the write-ahead log (removal thread,
 * when a group's append filled it): the files of every message it holds
 * that is still queued are synced (batches of fdatasyncs, then one fsync
 * of queue/), so that its records are needed no more, and it is retired
 * (wal_retire: a new epoch, nothing of it replayed).  The messages
 * delivered meanwhile (most of them, while the smarthost keeps up) cost
 * nothing.  A sync that fails leaves the segment full: groups then have
 * their files synced, as without a log (logged).
 */
static void
spool_checkpoint(struct spool_async *as, int seg)
{
	struct sq_err err;

	/* A group that went into seg just before it filled is complete. */
	pthread_mutex_lock(&as->wal_mu);
	pthread_mutex_unlock(&as->wal_mu);
	if (spool_sync_listed(as, seg) != 0) {
		log_err("spool: the write-ahead log stays full: every commit "
			"now syncs its files");
		return;
	}
	if (wal_retire(as->sp->wal, seg, &err) != 0) {
		log_err("spool: checkpoint: %s", err.msg);
		return;
	}
	pthread_mutex_lock(&as->mu);
	as->wal_stats.checkpoints++;
	pthread_mutex_unlock(&as->mu);
}

/*
 * A clean stop (spool_async_stop, the threads gone): the files of every
 * message the log still holds are synced and the log is emptied, so that
 * after a clean stop queue/ alone is the whole truth (for sendq-showq
 * while sendqd is down, for an operator's tools), and the next start has
 * nothing to replay.  On a failure the log is kept: the next start
 * replays it.
 */
static void
spool_wal_quiesce(struct spool_async *as)
{
	struct sq_err err;

	if (spool_sync_listed(as, 0) + spool_sync_listed(as, 1) != 0)
		return;
	if (wal_reset(as->sp->wal, &err) != 0)
		log_err("spool: %s (replayed at the next start)", err.msg);
}

/* A segment due for a checkpoint (taken: cleared), or -1; under mu. */
static int
spool_ckpt_take(struct spool_async *as)
{
	int seg;

	for (seg = 0; seg < 2; seg++)
		if (as->ckpt_due[seg]) {
			as->ckpt_due[seg] = 0;
			return seg;
		}
	return -1;
}

/*
 * Append a REMOVE record for each of the n messages of it to the
 * write-ahead log, not synced (*pos: where they end).  A log that is full waits for
 * the checkpoint that frees it (made here: this is the thread that makes
 * them).  0 or -errno (logged).
 */
static int
spool_wal_log_removals(struct spool_async *as, const struct spool_rm_item *it,
    size_t n, struct wal_pos *pos)
{
	struct spool   *sp = as->sp;
	struct wal_rec *recs;
	struct sq_err   err;
	size_t          i;
	int             rc, seg;

	recs = xcalloc(n, sizeof(*recs));
	for (i = 0; i < n; i++)
		recs[i] = (struct wal_rec){ WAL_REMOVE, it[i].id,
			strlen(it[i].id), NULL, 0, NULL, 0 };
	if ((rc = wal_append(sp->wal, recs, n, pos, &err)) == -ENOSPC) {
		pthread_mutex_lock(&as->mu);
		seg = spool_ckpt_take(as);
		pthread_mutex_unlock(&as->mu);
		if (seg >= 0) {
			spool_checkpoint(as, seg);
			rc = wal_append(sp->wal, recs, n, pos, &err);
		}
	}
	free(recs);
	if (rc != 0) {
		log_err("spool: %s: delivered messages keep their files in %s "
			"until sendqd starts again",
		    err.msg, sp->queue_dir);
		return rc;
	}
	pthread_mutex_lock(&as->mu);
	if (pos->rotated) {
		as->ckpt_due[pos->full_seg] = 1;
		pthread_cond_broadcast(&as->rm_cv);
	}
	as->wal_stats.removals += n;
	pthread_mutex_unlock(&as->mu);
	return 0;
}

/* Make the removals up to pos durable (an fdatasync of the log, shared):
 * 0 or -errno (logged). */
static int
spool_wal_sync_removals(struct spool_async *as, const struct wal_pos *pos)
{
	struct sq_err err;
	int           rc;

	if ((rc = wal_sync(as->sp->wal, pos, &err)) != 0)
		log_err("spool: %s: delivered messages keep their files in %s "
			"until sendqd starts again",
		    err.msg, as->sp->queue_dir);
	return rc;
}

/* Unlink the files of every message in the blocks of list (ID.env
 * already renamed to ID.del) and free them; with keep, free them only. */
static void
spool_rm_unlink_list(struct spool *sp, struct spool_rm *list, int keep)
{
	struct spool_rm *r;
	struct sq_err    err;
	size_t           i;

	while ((r = list) != NULL) {
		list = r->next;
		for (i = 0; i < r->n && !keep; i++)
			if (!r->it[i].no_files &&
			    spool_unlink_files(sp, r->it[i].id, 1, &err) != 0)
				log_err("msgid=%s: done but cannot remove it "
					"from the spool: %s (it may be sent "
					"again)",
				    r->it[i].id, err.msg);
		free(r);
	}
}

/* Cut the first block (a batch) off *list and return it (the rest stays
 * in *list); NULL when *list is empty. */
static struct spool_rm *
spool_rm_cut(struct spool_rm **list)
{
	struct spool_rm *head = *list;

	if (head != NULL) {
		*list = head->next;
		head->next = NULL;
	}
	return head;
}

/* A batch of removals is made (under mu): counted, stable already when
 * the log made it so, and spool_removal_wait woken. */
static void
spool_rm_batch_done(struct spool_async *as, int stable)
{
	as->rm_gen++;
	if (stable)
		as->rm_synced = as->rm_gen;
	as->sp->rm_batches++;
	pthread_cond_broadcast(&as->batch_cv);
}

/*
 * The removal thread: unlinks delivered messages (an unlink frees blocks,
 * which may wait on the device: never on the loop, never in the way of a
 * commit).
 *
 * With a write-ahead log (sp->wal), the removal of a batch (at most
 * SPOOL_RM_LOG_MAX messages) is a REMOVE record of each of its messages,
 * appended at once and made durable by the next group commit's
 * fdatasync of the log (a commit wakes this thread) when one comes
 * within SPOOL_RM_SYNC_MS, else by an fdatasync of its own (at once when
 * more removals wait behind the batch); only then are the files
 * unlinked, so that an unlink that reached the disk always has its
 * REMOVE record (start-up would bring the message back otherwise), and
 * no fsync of queue/ is needed: a replay drops whatever a cut left of a
 * removed message.  While sendqd takes mail, removals then cost no disk
 * flush of their own (issue 14: one sync for intake and removal).  This
 * thread also makes the log's checkpoints.
 *
 * Without one, removals are made stable with an fsync of queue/: the
 * next group commit's, which covers every removal made before it, when
 * one comes within SPOOL_RM_SYNC_MS of the first removal not yet
 * covered, else its own.
 *
 * Until then a power cut may bring a message back (delivered twice,
 * never lost), as spool_remove_unsynced says.
 */
static void *
spool_rm_main(void *arg)
{
	struct spool_async *as = arg;
	struct spool       *sp = as->sp;
	struct spool_rm    *list, *waiting = NULL, *backlog = NULL;
	struct wal_pos      wpos;
	struct timespec     deadline = { 0 }, due = { 0 };
	uint64_t            gen, held_total, seen_held = 0;
	unsigned            age_ms;
	int                 rc, seg, keep = 0, held = 0;

	memset(&wpos, 0, sizeof(wpos));
	pthread_mutex_lock(&as->mu);
	for (;;) {
		if (sp->wal != NULL && (seg = spool_ckpt_take(as)) >= 0) {
			pthread_mutex_unlock(&as->mu);
			spool_checkpoint(as, seg);
			pthread_mutex_lock(&as->mu);
			continue;
		}
		if (!as->stop && (held = spool_mem_due(sp, &due)) &&
		    spool_deadline_passed(&due)) {
			pthread_mutex_unlock(&as->mu);
			spool_mem_file_aged(sp);
			pthread_mutex_lock(&as->mu);
			continue;
		}
		if (sp->wal != NULL && waiting == NULL &&
		    (backlog != NULL || as->rms != NULL)) {
			/* Logged now, unlinked once the log is synced; kept
			 * when it cannot be logged (each ID.del says
			 * "delivered" to the next start-up).  SPOOL_RM_LOG_MAX
			 * at a time, the backlog taken from rms before any
			 * newer; a batch with more behind it is synced at
			 * once (the thread is behind: waiting for a commit
			 * would let more pile up). */
			if (backlog == NULL) {
				backlog = as->rms;
				as->rms = NULL;
			}
			waiting = spool_rm_cut(&backlog);
			pthread_mutex_unlock(&as->mu);
			keep = spool_wal_log_removals(as, waiting->it,
				   waiting->n, &wpos) != 0;
			spool_deadline(&deadline,
			    backlog != NULL ? 0 : (long)sp->rm_sync_ms);
			pthread_mutex_lock(&as->mu);
			continue;
		}
		if (waiting != NULL) {
			if (!keep && !wal_synced(sp->wal, &wpos) && !as->stop &&
			    !spool_deadline_passed(&deadline)) {
				as->rm_wants_sync = 1; /* a commit wakes us */
				pthread_cond_timedwait(&as->rm_cv, &as->mu,
				    &deadline);
				as->rm_wants_sync = 0;
				continue;
			}
			pthread_mutex_unlock(&as->mu);
			if (!keep && !wal_synced(sp->wal, &wpos)) {
				keep = spool_wal_sync_removals(as, &wpos) != 0;
				pthread_mutex_lock(&as->mu);
				sp->rm_own_syncs++;
				pthread_mutex_unlock(&as->mu);
			}
			spool_rm_unlink_list(sp, waiting, keep);
			waiting = NULL;
			pthread_mutex_lock(&as->mu);
			spool_rm_batch_done(as, 1); /* the log made it stable */
			continue;
		}
		if (as->rms != NULL) {
			list = as->rms;
			as->rms = NULL;
			pthread_mutex_unlock(&as->mu);
			spool_rm_unlink_list(sp, list, 0);
			pthread_mutex_lock(&as->mu);
			if (as->rm_synced == as->rm_gen) {
				/* The first batch not covered yet. */
				spool_deadline(&deadline, (long)sp->rm_sync_ms);
			}
			spool_rm_batch_done(as, 0);
			continue;
		}
		if (as->rm_synced < as->rm_gen) {
			if (as->stop || spool_deadline_passed(&deadline)) {
				gen = as->rm_gen;
				pthread_mutex_unlock(&as->mu);
				rc = fsync(sp->queue_fd);
				if (rc != 0)
					log_err("fsync %s: %s (delivered "
						"messages may be sent again "
						"after a crash)",
					    sp->queue_dir, strerror(errno));
				pthread_mutex_lock(&as->mu);
				sp->rm_own_syncs++;
				/* Failed: logged, not tried again. */
				if (gen > as->rm_synced)
					as->rm_synced = gen;
				continue;
			}
			pthread_cond_timedwait(&as->rm_cv, &as->mu, &deadline);
			continue;
		}
		if (as->stop)
			break;
		/* Held messages: woken when the oldest is due for its
		 * files; none held now, but some were since the last look:
		 * a look again one age later (held messages come and go
		 * faster than that while mail flows, and a commit need not
		 * wake this thread for each); none since: asleep until a
		 * commit holds one (rm_idle). */
		if (!held) {
			spool_mem_activity(sp, &held_total, &age_ms);
			if (held_total != seen_held) {
				seen_held = held_total;
				spool_deadline(&due, (long)age_ms);
				held = 1;
			}
		}
		if (held)
			pthread_cond_timedwait(&as->rm_cv, &as->mu, &due);
		else {
			as->rm_idle = 1;
			pthread_cond_wait(&as->rm_cv, &as->mu);
			as->rm_idle = 0;
		}
	}
	pthread_mutex_unlock(&as->mu);
	return NULL;
}

void
spool_set_removal_sync_delay(struct spool *sp, unsigned ms)
{
	sp->rm_sync_ms = ms;
}

int
spool_removal_wait(struct spool *sp, uint64_t batches, unsigned timeout_ms)
{
	struct spool_async *as = sp->as;
	struct timespec     deadline;
	int                 reached;

	if (as == NULL)
		return sp->rm_batches >= batches;
	spool_deadline(&deadline, (long)timeout_ms);
	pthread_mutex_lock(&as->mu);
	while (sp->rm_batches < batches &&
	    pthread_cond_timedwait(&as->batch_cv, &as->mu, &deadline) !=
		ETIMEDOUT)
		;
	reached = sp->rm_batches >= batches;
	pthread_mutex_unlock(&as->mu);
	return reached;
}

void
spool_removal_stats(struct spool *sp, uint64_t *batches, uint64_t *own_syncs)
{
	struct spool_async *as = sp->as;

	if (as != NULL)
		pthread_mutex_lock(&as->mu);
	*batches = sp->rm_batches;
	*own_syncs = sp->rm_own_syncs;
	if (as != NULL)
		pthread_mutex_unlock(&as->mu);
}

/* The removals of the n held messages of it: their REMOVE records
 * appended now, with one write (not synced: see held_pos); when the log
 * cannot take them, the removal thread logs them (it makes the
 * checkpoint a full log waits for).  One lock of mu and at most one
 * wake-up of the commit thread for all of them. */
static void
spool_async_remove_held(struct spool_async *as, const struct spool_rm_item *it,
    size_t n)
{
	struct wal_rec *recs;
	struct wal_pos  pos;
	struct sq_err   err;
	size_t          i;
	int             rc;

	recs = xcalloc(n, sizeof(*recs));
	for (i = 0; i < n; i++)
		recs[i] = (struct wal_rec){ WAL_REMOVE, it[i].id,
			strlen(it[i].id), NULL, 0, NULL, 0 };
	rc = wal_append(as->sp->wal, recs, n, &pos, &err);
	free(recs);
	if (rc != 0) {
		for (i = 0; i < n; i++)
			spool_async_remove(as, it[i].id, 1);
		return;
	}
	pthread_mutex_lock(&as->mu);
	as->wal_stats.removals += n;
	if (pos.rotated) {
		as->ckpt_due[pos.full_seg] = 1;
		pthread_cond_broadcast(&as->rm_cv);
	}
	if (!spool_held_rms_pending(as))
		clock_gettime(CLOCK_MONOTONIC, &as->held_rms_since);
	as->held_pos[pos.seg] = pos;
	as->held_pending[pos.seg] = 1;
	if (as->commit_idle) {
		as->commit_idle = 0;
		pthread_cond_signal(&as->cv);
	}
	pthread_mutex_unlock(&as->mu);
}

/* Append the REMOVE records of the held messages removed since the last
 * call (spool_remove_unsynced), in batches a segment takes. */
static void
spool_flush_held_rms(struct spool *sp)
{
	size_t i, k;

	for (i = 0; i < sp->n_held_rms; i += k) {
		k = sp->n_held_rms - i;
		if (k > SPOOL_RM_LOG_MAX)
			k = SPOOL_RM_LOG_MAX;
		spool_async_remove_held(sp->as, sp->held_rms + i, k);
	}
	sp->n_held_rms = 0;
}

/* Queue the removal of id for the removal thread (no_files: it was held
 * in memory, only its REMOVE record is to be made). */
static void
spool_async_remove(struct spool_async *as, const char *id, int no_files)
{
	struct spool_rm *r;

	pthread_mutex_lock(&as->mu);
	if ((r = as->rms) == NULL || r->n == SPOOL_RM_LOG_MAX) {
		/* Not zeroed: only the items filled are read. */
		r = xmalloc(sizeof(*r));
		r->n = 0;
		r->next = as->rms;
		as->rms = r;
	}
	snprintf(r->it[r->n].id, sizeof(r->it[r->n].id), "%s", id);
	r->it[r->n++].no_files = (unsigned char)(no_files != 0);
	pthread_cond_broadcast(&as->rm_cv);
	pthread_mutex_unlock(&as->mu);
}

int
spool_async_start(struct spool *sp, struct sq_err *err)
{
	struct spool_async *as;
	int                 rc;

	if (sp->as != NULL)
		return sp->as->efd;
	as = xcalloc(1, sizeof(*as));
	as->sp = sp;
	as->todo_tail = &as->todo;
	as->done_tail = &as->done;
	as->batch_tail = &as->batch;
	if ((as->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		free(as);
		return sq_err_set(err, rc, "eventfd: %s", strerror(-rc));
	}
	pthread_mutex_init(&as->mu, NULL);
	pthread_mutex_init(&as->wal_mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&as->cv, &ca);
		pthread_cond_init(&as->rm_cv, &ca);
		pthread_cond_init(&as->batch_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	if ((rc = pthread_create(&as->tid, NULL, spool_async_main, as)) != 0) {
		close(as->efd);
		pthread_mutex_destroy(&as->mu);
		pthread_mutex_destroy(&as->wal_mu);
		pthread_cond_destroy(&as->cv);
		pthread_cond_destroy(&as->rm_cv);
		pthread_cond_destroy(&as->batch_cv);
		free(as);
		return sq_err_set(err, -rc, "commit thread: %s", strerror(rc));
	}
	/* Without it, removals stay on the caller (spool_remove_unsynced
	 * looks at rm_started). */
	as->rm_started = pthread_create(&as->rm_tid, NULL, spool_rm_main, as) ==
	    0;
	spool_pool_init(&as->pool);
	/* Named for ps -L / top -H, and for test_group_commit.py, which
	 * holds the commit thread to make submissions overlap. */
	(void)pthread_setname_np(as->tid, "sq-commit");
	if (as->rm_started)
		(void)pthread_setname_np(as->rm_tid, "sq-remove");
	sp->as = as;
	/* From now on small messages are held in memory until something
	 * needs their files (struct spool_mem): the log makes them
	 * durable, the removal thread files and removes them. */
	{
		/* Each holds a descriptor: at most a quarter of them. */
		struct rlimit rl;
		size_t        max = SPOOL_MEM_MAX;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < max)
			max = (size_t)(rl.rlim_cur / 4);
		pthread_mutex_lock(&sp->mem.mu);
		sp->mem.max = max;
		pthread_mutex_unlock(&sp->mem.mu);
	}
	sp->mem.on = sp->wal != NULL && as->rm_started;
	return as->efd;
}

void
spool_commit_async(struct spool_writer *w, struct envelope *env,
    spool_commit_fn fn, void *arg)
{
	struct spool         *sp = w->sp;
	struct spool_async   *as = sp->as;
	struct spool_pending *p;

	if (as == NULL)
		log_fatalx("spool_commit_async without spool_async_start");
	p = xcalloc(1, sizeof(*p));
	p->w = w;
	p->fn = fn;
	p->arg = arg;
	spool_gc_prepare(sp, w, env, &p->it, &p->err);
	p->it.err = &p->err;
	*as->batch_tail = p;
	as->batch_tail = &p->next;
	as->n_batch++;
	/* In a batch: handed over by spool_commit_batch_end, with the
	 * rest; else at once, a batch of one. */
	if (!as->batching)
		spool_commit_batch_end(sp);
}

void
spool_commit_batch_begin(struct spool *sp)
{
	if (sp->as != NULL)
		sp->as->batching = 1;
}

void
spool_commit_batch_end(struct spool *sp)
{
	struct spool_async   *as = sp->as;
	struct spool_pending *list, *p;
	size_t                n, k, i;

	if (as == NULL)
		return;
	as->batching = 0;
	if ((list = as->batch) == NULL)
		return;
	k = as->n_batch;
	pthread_mutex_lock(&as->mu);
	*as->todo_tail = list;
	as->todo_tail = as->batch_tail;
	as->n_todo += k;
	n = as->n_todo - k;
	pthread_mutex_unlock(&as->mu);
	as->batch = NULL;
	as->batch_tail = &as->batch;
	as->n_batch = 0;
	/* After the unlock: signalled under the lock, the commit thread
	 * woke into a held mutex and slept on it again (3 more futex calls
	 * per hand-over, strace).  One wake-up for all of them. */
	pthread_cond_signal(&as->cv);
	/* Each stays until spool_async_dispatch (this thread) frees it;
	 * the commit thread may link a later round to the last one's next
	 * meanwhile, so that one is not followed.
	 * tests/integration/test_group_commit.py waits for these lines. */
	for (i = 0, p = list; i < k; i++) {
		log_debug("spool: msgid=%s waits for the commit thread "
			  "(%zu waiting)",
		    p->it.id, ++n);
		if (i + 1 < k)
			p = p->next;
	}
}

int
spool_commit_pending(struct spool *sp, const char *id)
{
	struct spool_async         *as = sp->as;
	const struct spool_pending *lists[4], *p;
	size_t                      i;
	int                         found = 0;

	if (as == NULL)
		return 0;
	pthread_mutex_lock(&as->mu);
	lists[0] = as->todo;
	lists[1] = as->running;
	lists[2] = as->done;
	lists[3] = as->batch; /* the caller's thread's own */
	for (i = 0; i < 4 && !found; i++)
		for (p = lists[i]; p != NULL && !found; p = p->next)
			found = strcmp(p->it.id, id) == 0;
	pthread_mutex_unlock(&as->mu);
	return found;
}

void
spool_async_dispatch(struct spool *sp)
{
	struct spool_async   *as = sp->as;
	struct spool_pending *list, *p;
	uint64_t              v;

	if (as == NULL)
		return;
	if (read(as->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_err("spool: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&as->mu);
	list = as->done;
	as->done = NULL;
	as->done_tail = &as->done;
	pthread_mutex_unlock(&as->mu);
	while ((p = list) != NULL) {
		list = p->next;
		p->fn(p->arg, p->it.rc, &p->err);
		free(p);
	}
}

void
spool_async_stop(struct spool *sp)
{
	struct spool_async *as = sp->as;

	if (as == NULL)
		return;
	/* Commits and removals not yet handed over (a batch not ended, no
	 * spool_sync_removals since). */
	spool_commit_batch_end(sp);
	if (sp->n_held_rms > 0)
		spool_flush_held_rms(sp);
	sp->mem.on = 0; /* new writers make files again */
	pthread_mutex_lock(&as->mu);
	as->stop = 1;
	pthread_cond_signal(&as->cv);
	pthread_cond_broadcast(&as->rm_cv);
	pthread_mutex_unlock(&as->mu);
	pthread_join(as->tid, NULL);
	if (as->rm_started)
		pthread_join(as->rm_tid, NULL);
	if (sp->wal != NULL)
		spool_wal_quiesce(as);
	spool_pool_fini(&as->pool);
	spool_async_dispatch(sp);
	sp->as = NULL;
	close(as->efd);
	pthread_mutex_destroy(&as->mu);
	pthread_mutex_destroy(&as->wal_mu);
	pthread_cond_destroy(&as->cv);
	pthread_cond_destroy(&as->rm_cv);
	pthread_cond_destroy(&as->batch_cv);
	free(as->wal_ids[0].ids);
	free(as->wal_ids[1].ids);
	free(as);
}

/*
 * Remove dir/name if its creator is gone: with the lock held, the name
 * must still be the inode we locked and, when must_lack is given, that
 * file must still be missing.  Returns 1 removed, 0 left alone.
 */
static int
spool_remove_if_dead(int dirfd, const char *dirpath, const char *name,
    const char *must_lack)
{
	struct stat st, st2;
	int         fd, removed = 0;

	fd = openat(dirfd, name,
	    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("spool: open %s/%s: %s", dirpath, name,
			    strerror(errno));
		return 0;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK)
			log_warn("spool: lock %s/%s: %s", dirpath, name,
			    strerror(errno));
		goto done; /* a live writer */
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    fstatat(dirfd, name, &st2, AT_SYMLINK_NOFOLLOW) != 0 ||
	    st.st_ino != st2.st_ino || st.st_dev != st2.st_dev)
		goto done;
	if (must_lack != NULL && spool_exists(dirfd, must_lack))
		goto done;
	if (unlinkat(dirfd, name, 0) != 0) {
		log_warn("spool: unlink %s/%s: %s", dirpath, name,
		    strerror(errno));
		goto done;
	}
	log_info("spool: removed incomplete file %s/%s", dirpath, name);
	removed = 1;
done:
	close(fd);
	return removed;
}

/* Names in a directory, "." and ".." left out.  Caller frees. */
static int
spool_read_dir(int dirfd, const char *dirpath, char ***names, size_t *n,
    struct sq_err *err)
{
	DIR           *d;
	struct dirent *de;
	size_t         cap = 0;
	int            fd;

	*names = NULL;
	*n = 0;
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return spool_fail(err, -errno, "open", dirpath, NULL);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return spool_fail(err, -errno, "open", dirpath, NULL);
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 64;
			*names = xreallocarray(*names, cap, sizeof(**names));
		}
		(*names)[(*n)++] = xstrdup(de->d_name);
		errno = 0;
	}
	if (errno != 0) {
		int e = -errno;

		closedir(d);
		while (*n > 0)
			free((*names)[--(*n)]);
		free(*names);
		*names = NULL;
		return spool_fail(err, e, "read", dirpath, NULL);
	}
	closedir(d);
	return 0;
}

static void
spool_free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int
spool_cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* If name is "ID.ext" with a valid id, copy the id and return 1. */
static int
spool_split_name(const char *name, const char *ext, char *id)
{
	size_t len = strlen(name), elen = strlen(ext);

	if (len <= elen || len - elen >= ENVELOPE_ID_MAX ||
	    strcmp(name + len - elen, ext) != 0)
		return 0;
	memcpy(id, name, len - elen);
	id[len - elen] = '\0';
	return spool_id_valid(id);
}

/*
 * Move message id out of queue/ into corrupt/ (made when missing): its
 * .msg first (when there is one), then its .env, so that a crash in
 * between leaves an .env without .msg, which the next recovery moves
 * too; then write ID.reason beside them and sync both directories.
 * Logs what happened; failures are logged and leave the files in place.
 */
static void
spool_quarantine(struct spool *sp, const char *id, const char *reason)
{
	char msg[ENVELOPE_ID_MAX + 8], env[ENVELOPE_ID_MAX + 8];
	char why[ENVELOPE_ID_MAX + 8], *text, safe[512];
	int  rc;

	sq_printable(safe, sizeof(safe), reason, strlen(reason));
	if (sp->corrupt_fd < 0) {
		if (mkdir(sp->corrupt_dir, 0700) != 0 && errno != EEXIST) {
			log_err("spool: msgid=%s is corrupt (%s) but cannot be "
				"moved: mkdir %s: %s",
			    id, safe, sp->corrupt_dir, strerror(errno));
			return;
		}
		if ((sp->corrupt_fd = open(sp->corrupt_dir,
			 O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) <
		    0) {
			log_err("spool: msgid=%s is corrupt (%s) but cannot be "
				"moved: open %s: %s",
			    id, safe, sp->corrupt_dir, strerror(errno));
			return;
		}
		fsync(sp->dir_fd);
	}
	snprintf(msg, sizeof(msg), "%s.msg", id);
	snprintf(env, sizeof(env), "%s.env", id);
	snprintf(why, sizeof(why), "%s.reason", id);
	if (renameat(sp->queue_fd, msg, sp->corrupt_fd, msg) != 0 &&
	    errno != ENOENT) {
		log_err("spool: msgid=%s is corrupt (%s) but cannot be moved: "
			"rename %s/%s: %s",
		    id, safe, sp->queue_dir, msg, strerror(errno));
		return;
	}
	if (renameat(sp->queue_fd, env, sp->corrupt_fd, env) != 0) {
		if (errno != ENOENT)
			log_err("spool: msgid=%s is corrupt (%s) but cannot be "
				"moved: rename %s/%s: %s",
			    id, safe, sp->queue_dir, env, strerror(errno));
		return;
	}
	text = xasprintf("%s\n", safe);
	if ((rc = sq_publish_file(sp->corrupt_fd, why, text, 0)) != 0)
		log_warn("spool: write %s/%s: %s", sp->corrupt_dir, why,
		    strerror(-rc));
	free(text);
	fsync(sp->corrupt_fd);
	fsync(sp->queue_fd);
	log_warn("spool: msgid=%s is corrupt, moved to %s: %s", id,
	    sp->corrupt_dir, safe);
}

/* 1 when name is in the sorted names[0..n-1]. */
static int
spool_name_listed(char **names, size_t n, const char *name)
{
	return bsearch(&name, names, n, sizeof(*names), spool_cmp_names) !=
	    NULL;
}

void
spool_quarantine_id(struct spool *sp, const char *id, const char *reason)
{
	if (spool_id_valid(id))
		spool_quarantine(sp, id, reason);
}

/* queue/'s names, sorted, into *names (spool_free_names).  0 or
 * -errno with err. */
static int
spool_queue_names(struct spool *sp, char ***names, size_t *n,
    struct sq_err *err)
{
	int rc;

	if ((rc = spool_read_dir(sp->queue_fd, sp->queue_dir, names, n, err)) !=
	    0)
		return rc;
	if (*n > 1)
		qsort(*names, *n, sizeof(**names), spool_cmp_names);
	return 0;
}

/* Recovery's first steps: tmp/ debris whose creator is gone removed,
 * then queue/'s names (spool_queue_names). */
static int
spool_recover_names(struct spool *sp, char ***names, size_t *n,
    struct sq_err *err)
{
	size_t i;
	int    rc;

	if ((rc = spool_read_dir(sp->tmp_fd, sp->tmp_dir, names, n, err)) != 0)
		return rc;
	for (i = 0; i < *n; i++)
		spool_remove_if_dead(sp->tmp_fd, sp->tmp_dir, (*names)[i],
		    NULL);
	spool_free_names(*names, *n);
	return spool_queue_names(sp, names, n, err);
}

/* A file in queue/ that is neither ID.msg nor ID.env: logged, left. */
static void
spool_warn_unexpected(const struct spool *sp, const char *name)
{
	char safe[128];

	log_warn("spool: ignoring unexpected file %s/%s", sp->queue_dir,
	    sq_printable(safe, sizeof(safe), name, strlen(name)));
}

/* ID + ext into name (ENVELOPE_ID_MAX + 8 bytes); id came from
 * spool_split_name, so it fits.  Recovery does this twice per queued
 * message: snprintf was a fifth of its instructions. */
static void
spool_id_name(char *name, const char *id, const char *ext)
{
	memcpy(stpcpy(name, id), ext, strlen(ext) + 1);
}

/* ID.del: the envelope of a delivered message whose removal a crash
 * interrupted (spool_remove_unsynced); its ID.msg goes as debris. */
static void
spool_remove_deleted(struct spool *sp, const char *name)
{
	if (unlinkat(sp->queue_fd, name, 0) != 0 && errno != ENOENT)
		log_warn("spool: cannot remove %s/%s: %s", sp->queue_dir, name,
		    strerror(errno));
}

int
spool_recover_lazy(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg, struct sq_err *err)
{
	char **names, id[ENVELOPE_ID_MAX], other[ENVELOPE_ID_MAX + 8];
	size_t n, i, found = 0;
	int    rc;

	if ((rc = spool_recover_names(sp, &names, &n, err)) != 0)
		return rc;
	for (i = 0; i < n; i++) {
		if (spool_split_name(names[i], ".msg", id)) {
			spool_id_name(other, id, ".env");
			if (!spool_name_listed(names, n, other))
				spool_remove_if_dead(sp->queue_fd,
				    sp->queue_dir, names[i], other);
			continue;
		}
		if (spool_split_name(names[i], ".del", id)) {
			spool_remove_deleted(sp, names[i]);
			continue;
		}
		if (!spool_split_name(names[i], ".env", id)) {
			spool_warn_unexpected(sp, names[i]);
			continue;
		}
		spool_id_name(other, id, ".msg");
		if (!spool_name_listed(names, n, other)) {
			if (spool_exists(sp->queue_fd, names[i]))
				spool_quarantine(sp, id,
				    "envelope without message file (ID.msg "
				    "missing)");
			continue;
		}
		found++;
		if (cb != NULL)
			cb(id, arg);
	}
	spool_free_names(names, n);
	return (int)found;
}

int
spool_recover(struct spool *sp, void (*cb)(const char *id, void *arg),
    void *arg, struct sq_err *err)
{
	struct envelope *env;
	struct sq_err    lerr;
	char           **names, id[ENVELOPE_ID_MAX], other[ENVELOPE_ID_MAX + 8];
	size_t           n, i, found = 0;
	int              rc;

	/* 1. tmp/: everything whose creator is gone is debris. */
	if ((rc = spool_recover_names(sp, &names, &n, err)) != 0)
		return rc;
	/* 2. queue/: .msg without .env is an interrupted commit. */
	for (i = 0; i < n; i++) {
		if (spool_split_name(names[i], ".msg", id)) {
			snprintf(other, sizeof(other), "%s.env", id);
			if (!spool_exists(sp->queue_fd, other))
				spool_remove_if_dead(sp->queue_fd,
				    sp->queue_dir, names[i], other);
		} else if (spool_split_name(names[i], ".del", id))
			spool_remove_deleted(sp, names[i]);
		else if (!spool_split_name(names[i], ".env", id))
			spool_warn_unexpected(sp, names[i]);
	}

	/* 3. Every .env that parses and has its body is a message; the
	 * others go to corrupt/. */
	for (i = 0; i < n; i++) {
		if (!spool_split_name(names[i], ".env", id))
			continue;
		snprintf(other, sizeof(other), "%s.msg", id);
		if (!spool_exists(sp->queue_fd, other)) {
			/* Removal unlinks the .env first: a message that
			 * was just removed has neither file. */
			snprintf(other, sizeof(other), "%s.env", id);
			if (spool_exists(sp->queue_fd, other))
				spool_quarantine(sp, id,
				    "envelope without message file (ID.msg "
				    "missing)");
			continue;
		}
		env = NULL;
		rc = spool_load_envelope(sp, id, &env, &lerr);
		if (rc == SQ_EPARSE || rc == SQ_ELIMIT) {
			spool_quarantine(sp, id, lerr.msg);
			continue;
		}
		if (rc != 0) {
			if (rc != SQ_ENOTFOUND)
				log_warn("spool: msgid=%s skipped: %s", id,
				    lerr.msg);
			continue;
		}
		envelope_free(env);
		found++;
		if (cb != NULL)
			cb(id, arg);
	}
	spool_free_names(names, n);
	return (int)found;
}

/* The ids of the messages held in memory, sorted: *n of them in *ids
 * (caller frees). */
static void
spool_mem_ids(struct spool *sp, char (**ids)[ENVELOPE_ID_MAX], size_t *n)
{
	struct spool_mem *e;

	pthread_mutex_lock(&sp->mem.mu);
	*n = 0;
	*ids = xcalloc(sp->mem.n + 1, sizeof(**ids));
	for (e = sp->mem.oldest; e != NULL; e = e->newer)
		memcpy((*ids)[(*n)++], e->id, sizeof(e->id));
	pthread_mutex_unlock(&sp->mem.mu);
	qsort(*ids, *n, sizeof(**ids), spool_cmp_ids);
}

int
spool_list(struct spool *sp, void (*cb)(const char *id, void *arg), void *arg,
    struct sq_err *err)
{
	char **names, id[ENVELOPE_ID_MAX], (*mem)[ENVELOPE_ID_MAX];
	size_t n, i, n_mem, m = 0, found = 0;
	int    rc;

	/* Held in memory first: one filed meanwhile is then listed from
	 * the directory too, and given once. */
	spool_mem_ids(sp, &mem, &n_mem);
	if ((rc = spool_queue_names(sp, &names, &n, err)) != 0) {
		free(mem);
		return rc;
	}
	for (i = 0; i <= n; i++) {
		if (i < n && !spool_split_name(names[i], ".env", id))
			continue;
		/* Merged in id order (both lists are sorted). */
		for (; m < n_mem && (i == n || strcmp(mem[m], id) <= 0); m++) {
			if (i < n && strcmp(mem[m], id) == 0)
				continue;
			found++;
			if (cb != NULL)
				cb(mem[m], arg);
		}
		if (i == n)
			break;
		found++;
		if (cb != NULL)
			cb(id, arg);
	}
	spool_free_names(names, n);
	free(mem);
	return (int)found;
}

int
spool_load_envelope(struct spool *sp, const char *id, struct envelope **out,
    struct sq_err *err)
{
	struct envelope *env;
	struct stat      st;
	char             name[ENVELOPE_ID_MAX + 8], *text = NULL;
	size_t           len = 0;
	ssize_t          r;
	int              fd, rc;

	if (!spool_id_valid(id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, id);
	snprintf(name, sizeof(name), "%s.env", id);
	if (spool_mem_env(sp, id, &text, &len)) {
		fd = -1;
		goto parse;
	}
	if ((fd = openat(sp->queue_fd, name,
		 O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT)
			return sq_err_set(err, SQ_ENOTFOUND,
			    "no message %s in %s", id, sp->queue_dir);
		return spool_fail(err, -errno, "open", sp->queue_dir, name);
	}
	if (fstat(fd, &st) != 0) {
		rc = spool_fail(err, -errno, "stat", sp->queue_dir, name);
		goto done;
	}
	if (st.st_size > SPOOL_ENV_MAX) {
		rc = sq_err_set(err, SQ_ELIMIT,
		    "%s/%s: envelope larger than %d bytes", sp->queue_dir, name,
		    SPOOL_ENV_MAX);
		goto done;
	}
	text = xmalloc((size_t)st.st_size + 1);
	/* An envelope is replaced by a rename, never written in place: its
	 * size read, it is all read, with no read() for the end of file.
	 * A byte more is asked for, so that one that grew is seen. */
	while (len < (size_t)st.st_size) {
		r = read(fd, text + len, (size_t)st.st_size + 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = spool_fail(err, -errno, "read", sp->queue_dir,
			    name);
			goto done;
		}
		if (r == 0)
			break; /* shorter than its size: envelope_parse says */
		len += (size_t)r;
		if (len > (size_t)st.st_size) {
			rc = sq_err_set(err, SQ_EPARSE,
			    "%s/%s: changed while being read", sp->queue_dir,
			    name);
			goto done;
		}
	}
parse:
	if ((rc = envelope_parse(text, len, &env, err)) != 0) {
		char why[sizeof(err->msg)];

		if (err != NULL) {
			memcpy(why, err->msg, sizeof(why));
			sq_err_set(err, rc, "%s/%s: %s", sp->queue_dir, name,
			    why);
		}
		goto done;
	}
	if (strcmp(env->id, id) != 0) {
		rc = sq_err_set(err, SQ_EPARSE,
		    "%s/%s: envelope is for message %s", sp->queue_dir, name,
		    env->id);
		envelope_free(env);
		goto done;
	}
	*out = env;
	rc = 0;
done:
	free(text);
	if (fd >= 0)
		close(fd);
	return rc;
}

int
spool_open_message(struct spool *sp, const char *id, struct sq_err *err)
{
	char name[ENVELOPE_ID_MAX + 8];
	int  fd;

	if (!spool_id_valid(id))
		return sq_err_set(err, -ENOENT,
		    "no message %.*s (not a queue id)", 40, id);
	if ((fd = spool_mem_open(sp, id, err)) != -ENOENT)
		return fd;
	snprintf(name, sizeof(name), "%s.msg", id);
	if ((fd = openat(sp->queue_fd, name,
		 O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return spool_fail(err, -errno, "open", sp->queue_dir, name);
	return fd;
}

int
spool_message_size(struct spool *sp, const char *id, uint64_t *size,
    struct sq_err *err)
{
	char        name[ENVELOPE_ID_MAX + 8];
	struct stat st;

	if (!spool_id_valid(id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, id);
	if (spool_mem_size(sp, id, size))
		return 0;
	snprintf(name, sizeof(name), "%s.msg", id);
	if (fstatat(sp->queue_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return spool_fail(err, -errno, "stat", sp->queue_dir, name);
	*size = (uint64_t)st.st_size;
	return 0;
}

/*
 * With a write-ahead log, a message's body file may not be durable yet
 * (its record is): sync it before anything durable is made from it (a
 * replaced envelope, a hard link in failed/), since a start-up keeps an
 * envelope it finds whole and rewrites only a body that differs from
 * the record (spool_wal_open).  0 or -errno with err.
 */
static int
spool_settle_body(struct spool *sp, const char *id, struct sq_err *err)
{
	char name[ENVELOPE_ID_MAX + 8];
	int  fd, rc = 0;

	if (sp->wal == NULL)
		return 0;
	spool_id_name(name, id, ".msg");
	if ((fd = openat(sp->queue_fd, name,
		 O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return spool_fail(err, -errno, "open", sp->queue_dir, name);
	if (fdatasync(fd) != 0)
		rc = spool_fail(err, -errno, "fdatasync", sp->queue_dir, name);
	close(fd);
	return rc;
}

/* Before a removal that will be made durable (spool_remove), or one made
 * on the caller's thread: its record in the write-ahead log first, synced
 * (spool_rm_main says why).  0 or -errno with err. */
static int
spool_wal_remove_now(struct spool *sp, const char *id, struct sq_err *err)
{
	struct spool_rm_item r;
	struct wal_pos       pos;
	int                  rc;

	if (sp->wal == NULL || sp->as == NULL)
		return 0;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "%s", id);
	if ((rc = spool_wal_log_removals(sp->as, &r, 1, &pos)) != 0 ||
	    (rc = spool_wal_sync_removals(sp->as, &pos)) != 0)
		return sq_err_set(err, rc,
		    "cannot record the removal of %s in %s/wal: %s", id,
		    sp->dir, strerror(-rc));
	return 0;
}

int
spool_update_envelope(struct spool *sp, const struct envelope *env,
    struct sq_err *err)
{
	char   name[ENVELOPE_ID_MAX + 8], upd[ENVELOPE_ID_MAX + 8], *text;
	size_t len;
	int    fd, rc = 0;

	if (!spool_id_valid(env->id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, env->id);
	snprintf(name, sizeof(name), "%s.env", env->id);
	snprintf(upd, sizeof(upd), "%s.upd", env->id);
	if ((rc = spool_mem_file_now(sp, env->id, err)) != 0)
		return rc;
	if (!spool_exists(sp->queue_fd, name))
		return sq_err_set(err, SQ_ENOTFOUND, "no message %s in %s",
		    env->id, sp->queue_dir);
	if ((rc = spool_settle_body(sp, env->id, err)) != 0)
		return rc;
	text = envelope_format(env, &len);
	fd = spool_write_file(sp, sp->tmp_fd, sp->tmp_dir, upd, sp->env_mode,
	    text, len, err);
	free(text);
	if (fd < 0)
		return fd;
	if (renameat(sp->tmp_fd, upd, sp->queue_fd, name) != 0) {
		rc = spool_fail(err, -errno, "rename into queue/", sp->tmp_dir,
		    upd);
		unlinkat(sp->tmp_fd, upd, 0);
	} else if (fsync(sp->queue_fd) != 0)
		rc = spool_fail(err, -errno, "fsync", sp->queue_dir, NULL);
	close(fd);
	return rc;
}

/* Unlink queue/ID.env, then queue/ID.msg, without a directory sync. */
static int
spool_unlink_message(struct spool *sp, const char *id, struct sq_err *err)
{
	return spool_unlink_files(sp, id, 0, err);
}

/* Unlink queue/ID.env (unless env_gone: spool_remove_unsynced renamed
 * it to ID.del already), ID.del and ID.msg. */
static int
spool_unlink_files(struct spool *sp, const char *id, int env_gone,
    struct sq_err *err)
{
	char name[ENVELOPE_ID_MAX + 8];
	int  found = 0;

	if (!spool_id_valid(id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, id);
	snprintf(name, sizeof(name), "%s.env", id);
	if (env_gone)
		;
	else if (unlinkat(sp->queue_fd, name, 0) == 0)
		found = 1;
	else if (errno != ENOENT)
		return spool_fail(err, -errno, "unlink", sp->queue_dir, name);
	snprintf(name, sizeof(name), "%s.del", id);
	if (unlinkat(sp->queue_fd, name, 0) == 0)
		found = 1;
	else if (errno != ENOENT)
		return spool_fail(err, -errno, "unlink", sp->queue_dir, name);
	snprintf(name, sizeof(name), "%s.msg", id);
	if (unlinkat(sp->queue_fd, name, 0) == 0)
		found = 1;
	else if (errno != ENOENT)
		return spool_fail(err, -errno, "unlink", sp->queue_dir, name);
	if (!found)
		return sq_err_set(err, SQ_ENOTFOUND, "no message %s in %s", id,
		    sp->queue_dir);
	return 0;
}

int
spool_remove(struct spool *sp, const char *id, struct sq_err *err)
{
	int rc;

	if (sp->mem.on && spool_mem_remove(sp, id))
		return spool_wal_remove_now(sp, id, err); /* no files */
	if (spool_id_valid(id) && (rc = spool_wal_remove_now(sp, id, err)) != 0)
		return rc;
	if ((rc = spool_unlink_message(sp, id, err)) != 0)
		return rc;
	sp->removed = 0; /* this fsync covers the earlier ones too */
	if (fsync(sp->queue_fd) != 0)
		return spool_fail(err, -errno, "fsync", sp->queue_dir, NULL);
	return 0;
}

int
spool_remove_unsynced(struct spool *sp, const char *id, struct sq_err *err)
{
	int rc;

	if (sp->mem.on && spool_mem_remove(sp, id)) {
		/* Held in memory: out of every listing now; its REMOVE
		 * record is appended by spool_sync_removals, with those of
		 * every other removal of the turn (one write), and synced
		 * with the next group (held_pos). */
		struct spool_rm_item *r;

		if (sp->n_held_rms == sp->cap_held_rms) {
			sp->cap_held_rms = sp->cap_held_rms ?
			    2 * sp->cap_held_rms :
			    16;
			sp->held_rms = xreallocarray(sp->held_rms,
			    sp->cap_held_rms, sizeof(*sp->held_rms));
		}
		r = &sp->held_rms[sp->n_held_rms++];
		snprintf(r->id, sizeof(r->id), "%s", id);
		r->no_files = 1;
		sp->removed = 1;
		return 0;
	}
	if (sp->as != NULL && sp->as->rm_started && spool_id_valid(id)) {
		/* The envelope leaves the queue now, on the caller's thread:
		 * renamed to ID.del in queue/ (no blocks freed, so no wait
		 * for a discard).  A rescan or a late watch event can then
		 * never index the delivered message again while the removal
		 * thread has yet to unlink its files. */
		char env[ENVELOPE_ID_MAX + 8], del[ENVELOPE_ID_MAX + 8];

		spool_id_name(env, id, ".env");
		spool_id_name(del, id, ".del");
		if (renameat(sp->queue_fd, env, sp->queue_fd, del) != 0)
			return errno == ENOENT ?
			    sq_err_set(err, SQ_ENOTFOUND, "no message %s in %s",
				id, sp->queue_dir) :
			    spool_fail(err, -errno, "rename", sp->queue_dir,
				env);
		spool_async_remove(sp->as, id, 0);
		sp->removed = 1;
		return 0;
	}
	if (spool_id_valid(id) && (rc = spool_wal_remove_now(sp, id, err)) != 0)
		return rc;
	if ((rc = spool_unlink_message(sp, id, err)) == 0)
		sp->removed = 1;
	return rc;
}

int
spool_sync_removals(struct spool *sp, struct sq_err *err)
{
	if (!sp->removed)
		return 0;
	sp->removed = 0;
	if (sp->n_held_rms > 0)
		spool_flush_held_rms(sp);
	if (sp->as != NULL && sp->as->rm_started)
		return 1; /* the removal thread syncs (spool_rm_main) */
	if (fsync(sp->queue_fd) != 0)
		return spool_fail(err, -errno, "fsync", sp->queue_dir, NULL);
	return 1;
}

int
spool_hold_failed(struct spool *sp, const struct envelope *env,
    unsigned attempt, struct sq_err *err)
{
	char   base[ENVELOPE_ID_MAX + 16], name[ENVELOPE_ID_MAX + 24];
	char   msg[ENVELOPE_ID_MAX + 8], tmpname[ENVELOPE_ID_MAX + 24];
	char  *text;
	size_t len;
	int    fd, rc = 0;

	if (!spool_id_valid(env->id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, env->id);
	snprintf(base, sizeof(base), "%s.%u", env->id, attempt);
	snprintf(msg, sizeof(msg), "%s.msg", env->id);
	snprintf(tmpname, sizeof(tmpname), "%s.failed", env->id);
	if ((rc = spool_mem_file_now(sp, env->id, err)) != 0 ||
	    (rc = spool_settle_body(sp, env->id, err)) != 0)
		return rc;
	text = envelope_format(env, &len);
	fd = spool_write_file(sp, sp->tmp_fd, sp->tmp_dir, tmpname, 0600, text,
	    len, err);
	free(text);
	if (fd < 0)
		return fd;
	/* The body is shared with the queued message by a hard link: the
	 * queue may still hold it for recipients that will be retried. */
	snprintf(name, sizeof(name), "%s.msg", base);
	if (linkat(sp->queue_fd, msg, sp->failed_fd, name, 0) != 0 &&
	    !(errno == EEXIST && unlinkat(sp->failed_fd, name, 0) == 0 &&
		linkat(sp->queue_fd, msg, sp->failed_fd, name, 0) == 0)) {
		rc = spool_fail(err, -errno, "link into failed/", sp->queue_dir,
		    msg);
		goto out;
	}
	snprintf(name, sizeof(name), "%s.env", base);
	if (renameat(sp->tmp_fd, tmpname, sp->failed_fd, name) != 0) {
		rc = spool_fail(err, -errno, "rename into failed/", sp->tmp_dir,
		    tmpname);
		goto out;
	}
	if (fsync(sp->failed_fd) != 0)
		rc = spool_fail(err, -errno, "fsync", sp->failed_dir, NULL);
out:
	if (rc != 0)
		unlinkat(sp->tmp_fd, tmpname, 0);
	close(fd);
	return rc;
}

int
spool_open_queue(const char *dir, struct spool **out, struct sq_err *err)
{
	struct spool *sp;

	sp = spool_alloc(dir);
	sp->env_mode = 0600;
	/* Only queue/: the readers' group may read it, nothing else. */
	sp->queue_fd = open(sp->queue_dir,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sp->queue_fd < 0) {
		int rc = spool_fail(err, -errno, "open", sp->queue_dir, NULL);

		spool_close(sp);
		return rc;
	}
	*out = sp;
	return 0;
}

/* Give directory fd (path) group gid (unless (gid_t)-1) and then mode,
 * when it is ours and differs.  0, or -errno with err when stat or chmod
 * fails; a chgrp that fails is logged and *gid_ok cleared, and the mode
 * is then nomode (that of a spool without readers' group). */
static int
spool_fix_dir(int fd, const char *path, const char *group, gid_t gid,
    mode_t mode, mode_t nomode, int *gid_ok, struct sq_err *err)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return spool_fail(err, -errno, "stat", path, NULL);
	if (st.st_uid != geteuid() && geteuid() != 0)
		return 0; /* not ours: taken as it is */
	if (gid != (gid_t)-1 && st.st_gid != gid) {
		if (fchown(fd, (uid_t)-1, gid) != 0) {
			log_warn("spool: chgrp %s to %s: %s (only root and "
				 "sendqd's user can list the queue while "
				 "sendqd is down; see sendq.tmpfiles)",
			    path, group, strerror(errno));
			*gid_ok = 0;
		} else
			log_info("spool: %s: group %s", path, group);
	}
	if (!*gid_ok)
		mode = nomode;
	/* chown may clear the setgid bit: the mode is set last. */
	if ((st.st_mode & 07777) != mode) {
		if (fchmod(fd, mode) != 0)
			return spool_fail(err, -errno, "chmod", path, NULL);
		log_info("spool: %s: mode %04o (was %04o)", path,
		    (unsigned)mode, (unsigned)(st.st_mode & 07777));
		/* A non-member's chmod drops the setgid bit silently. */
		if ((mode & S_ISGID) &&
		    (fstat(fd, &st) != 0 || !(st.st_mode & S_ISGID)))
			log_warn(
			    "spool: %s: the setgid bit did not stay (sendqd's "
			    "user is not in group %s): new envelopes stay 0600",
			    path, group);
	}
	return 0;
}

/* Give every queue/ID.env group gid and mode 0640.  Failures are
 * counted and logged once. */
static void
spool_fix_envelopes(struct spool *sp, const char *group, gid_t gid)
{
	struct sq_err err = { 0 };
	char        **names, id[ENVELOPE_ID_MAX];
	struct stat   st;
	size_t        n, i, fixed = 0, failed = 0;
	int           e = 0;

	if (spool_read_dir(sp->queue_fd, sp->queue_dir, &names, &n, &err) !=
	    0) {
		log_warn("spool: %s", err.msg);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!spool_split_name(names[i], ".env", id) ||
		    fstatat(sp->queue_fd, names[i], &st, AT_SYMLINK_NOFOLLOW) !=
			0 ||
		    !S_ISREG(st.st_mode) ||
		    (st.st_gid == gid && (st.st_mode & 07777) == 0640))
			continue;
		if ((st.st_gid != gid &&
			fchownat(sp->queue_fd, names[i], (uid_t)-1, gid,
			    AT_SYMLINK_NOFOLLOW) != 0) ||
		    fchmodat(sp->queue_fd, names[i], 0640, 0) != 0) {
			e = errno;
			failed++;
		} else
			fixed++;
	}
	spool_free_names(names, n);
	if (fixed > 0)
		log_info("spool: %zu envelope(s) in %s: group %s, mode 0640",
		    fixed, sp->queue_dir, group);
	if (failed > 0)
		log_warn(
		    "spool: %zu envelope(s) in %s keep their group: %s (their "
		    "owners do not see them with mailq while sendqd is down)",
		    failed, sp->queue_dir, strerror(e));
}

int
spool_set_queue_gid(struct spool *sp, const char *group, gid_t gid,
    struct sq_err *err)
{
	int ok, rc;

	if (gid == (gid_t)-1)
		log_info("spool: no group %s: queue/ stays 0700 and envelopes "
			 "0600, so only root and sendqd's user can list the "
			 "queue while sendqd is down (create the group and "
			 "install sendq-showq setgid to it)",
		    group != NULL ? group : "");
	ok = gid != (gid_t)-1;
	if ((rc = spool_fix_dir(sp->tmp_fd, sp->tmp_dir, group, gid, 02700,
		 0700, &ok, err)) != 0 ||
	    (rc = spool_fix_dir(sp->queue_fd, sp->queue_dir, group, gid, 0750,
		 0700, &ok, err)) != 0)
		return rc;
	/* tmp/ may have taken the group while queue/ did not: new
	 * envelopes are only shared when both did. */
	sp->env_mode = ok ? spool_env_mode(sp, gid) : 0600;
	if (sp->env_mode == 0640)
		spool_fix_envelopes(sp, group, gid);
	return 0;
}

/*
 * Start-up replay of the write-ahead log (spool_wal_open).  Pass 1 lists
 * the ids of the REMOVE records; pass 2 goes through the records in
 * order: a REMOVE completes its removal (the message was delivered: its
 * remaining files go), a MSG whose message was not removed (no REMOVE
 * record, no ID.del) gets its files back: a queue/ID.msg that differs
 * from the record's body is rewritten, a queue/ID.env that does not
 * parse (missing, empty, torn) is rewritten from the record's envelope
 * (one that parses is kept: an update after the record was made durable
 * by spool_update_envelope, which settles the body first).  Every file
 * of a replayed message is then synced (batches of fdatasyncs, one
 * fsync of queue/), and only then is the log reset.  A crash during the
 * replay replays again.
 */
struct spool_replay {
	struct spool *sp;
	int           pass;
	char (*removed)[ENVELOPE_ID_MAX];
	size_t n_removed, cap_removed;
	int    fds[2 * SPOOL_CKPT_BATCH];
	size_t n_fds;
	size_t restored, kept, dropped, failed;
};

/* Sync and close the replay's open files; failures counted. */
static void
spool_replay_flush(struct spool_replay *rp)
{
	int    rcs[2 * SPOOL_CKPT_BATCH];
	size_t i;

	spool_sync_batch(NULL, rp->fds, rcs, rp->n_fds);
	for (i = 0; i < rp->n_fds; i++) {
		if (rcs[i] != 0 && rp->failed++ == 0)
			log_err("spool: replay: fdatasync: %s",
			    strerror(-rcs[i]));
		close(rp->fds[i]);
	}
	rp->n_fds = 0;
}

static void
spool_replay_keep_fd(struct spool_replay *rp, int fd)
{
	if (rp->n_fds == sizeof(rp->fds) / sizeof(rp->fds[0]))
		spool_replay_flush(rp);
	rp->fds[rp->n_fds++] = fd;
}

/* queue/name opened read-only when it is a file of exactly len bytes
 * equal to data (the fd, to be synced), else -1. */
static int
spool_open_if_equal(struct spool *sp, const char *name, const void *data,
    size_t len)
{
	struct stat st;
	char       *buf;
	int         fd, same = 0;

	if ((fd = openat(sp->queue_fd, name,
		 O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (uint64_t)st.st_size == len) {
		buf = xmalloc(len + 1);
		same = sq_pread_all(fd, buf, len, 0) == 0 &&
		    memcmp(buf, data, len) == 0;
		free(buf);
	}
	if (!same) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Give message id back its files from a MSG record (see above). */
static void
spool_replay_msg(struct spool_replay *rp, const char *id,
    const struct wal_rec *rec)
{
	struct spool    *sp = rp->sp;
	struct envelope *env = NULL;
	struct sq_err    err;
	char             msg[ENVELOPE_ID_MAX + 8], envn[ENVELOPE_ID_MAX + 8];
	int              fd;

	spool_id_name(msg, id, ".del");
	if (spool_exists(sp->queue_fd, msg)) {
		rp->dropped++; /* delivered: recovery removes it */
		return;
	}
	spool_id_name(msg, id, ".msg");
	spool_id_name(envn, id, ".env");
	if ((fd = spool_open_if_equal(sp, msg, rec->b, rec->b_len)) < 0) {
		fd = spool_write_file_sync(sp, sp->queue_fd, sp->queue_dir, msg,
		    0600, rec->b, rec->b_len, 0, &err);
		if (fd < 0)
			goto fail;
		rp->restored++;
	}
	spool_replay_keep_fd(rp, fd);
	if (spool_load_envelope(sp, id, &env, &err) == 0) {
		envelope_free(env);
		fd = openat(sp->queue_fd, envn,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		rp->kept++;
	} else {
		fd = spool_write_file_sync(sp, sp->tmp_fd, sp->tmp_dir, envn,
		    sp->env_mode, rec->a, rec->a_len, 0, &err);
		if (fd >= 0 &&
		    renameat(sp->tmp_fd, envn, sp->queue_fd, envn) != 0) {
			spool_fail(&err, -errno, "rename into queue/",
			    sp->tmp_dir, envn);
			unlinkat(sp->tmp_fd, envn, 0);
			close(fd);
			fd = -1;
		}
		if (fd < 0)
			goto fail;
		rp->restored++;
	}
	if (fd >= 0)
		spool_replay_keep_fd(rp, fd);
	return;
fail:
	log_err("spool: replay of msgid=%s: %s", id, err.msg);
	rp->failed++;
}

static int
spool_replay_rec(void *arg, const struct wal_rec *rec)
{
	struct spool_replay *rp = arg;
	struct sq_err        err;
	char                 id[ENVELOPE_ID_MAX];

	if (rec->id_len >= sizeof(id))
		return 0;
	memcpy(id, rec->id, rec->id_len);
	id[rec->id_len] = '\0';
	if (!spool_id_valid(id)) {
		log_warn("spool: replay: a record for \"%s\", not a queue id: "
			 "skipped",
		    id);
		return 0;
	}
	if (rp->pass == 1) {
		if (rec->type != WAL_REMOVE)
			return 0;
		if (rp->n_removed == rp->cap_removed) {
			rp->cap_removed = rp->cap_removed ?
			    2 * rp->cap_removed :
			    64;
			rp->removed = xreallocarray(rp->removed,
			    rp->cap_removed, sizeof(*rp->removed));
		}
		memcpy(rp->removed[rp->n_removed++], id, sizeof(id));
		return 0;
	}
	if (rec->type == WAL_REMOVE) {
		/* Delivered: whatever is left of it goes. */
		if (spool_unlink_files(rp->sp, id, 0, &err) == 0)
			rp->dropped++;
		return 0;
	}
	if (rp->n_removed > 0 &&
	    bsearch(id, rp->removed, rp->n_removed, sizeof(*rp->removed),
		spool_cmp_ids) != NULL)
		return 0;
	spool_replay_msg(rp, id, rec);
	return 0;
}

/*
 * The log's segment size: the one its segments have, or for a new log
 * WAL_SEG_SIZE, less on a small file system (a 64th of the space
 * available, at least WAL_SEG_MIN): the log must not take the room of
 * the messages it is for.
 */
static size_t
spool_wal_seg_size(struct spool *sp)
{
	struct statvfs sv;
	struct stat    st;
	uint64_t       avail;
	size_t         size = WAL_SEG_SIZE;

	if (fstatat(sp->dir_fd, "wal/0", &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_size >= (off_t)WAL_SEG_MIN &&
	    st.st_size <= (off_t)WAL_SEG_SIZE)
		return (size_t)st.st_size;
	if (fstatvfs(sp->dir_fd, &sv) == 0) {
		avail = (uint64_t)sv.f_bavail * sv.f_frsize / 64;
		if (avail < size)
			size = avail < WAL_SEG_MIN ?
			    WAL_SEG_MIN :
			    (size_t)(avail & ~(uint64_t)4095);
	}
	return size;
}

int
spool_wal_open(struct spool *sp, size_t seg_size, struct sq_err *err)
{
	struct spool_replay rp;
	char               *path;
	int                 rc, n, fresh;

	if (sp->as != NULL)
		return sq_err_set(err, -EINVAL,
		    "spool_wal_open after spool_async_start");
	path = xasprintf("%s/wal", sp->dir);
	fresh = !spool_exists(sp->dir_fd, "wal/0") &&
	    !spool_exists(sp->dir_fd, "wal/1");
	if (seg_size == 0)
		seg_size = spool_wal_seg_size(sp);
	rc = wal_open(path, seg_size, &sp->wal, err);
	if (rc != 0 && fresh && (rc == -ENOSPC || rc == -EDQUOT)) {
		/* No room for the log on a spool that never had one: nothing
		 * to replay, and commits sync the files of every message. */
		log_warn("spool: no write-ahead log (%s): every commit syncs "
			 "its files",
		    err->msg);
		(void)unlinkat(sp->dir_fd, "wal/0", 0);
		(void)unlinkat(sp->dir_fd, "wal/1", 0);
		(void)unlinkat(sp->dir_fd, "wal/0.tmp", 0);
		(void)unlinkat(sp->dir_fd, "wal/1.tmp", 0);
		free(path);
		return 0;
	}
	free(path);
	if (rc != 0)
		return rc;
	memset(&rp, 0, sizeof(rp));
	rp.sp = sp;
	rp.pass = 1;
	if ((n = wal_replay(sp->wal, spool_replay_rec, &rp, err)) < 0) {
		rc = n;
		goto fail;
	}
	if (n > 0) {
		if (rp.n_removed > 0)
			qsort(rp.removed, rp.n_removed, sizeof(*rp.removed),
			    spool_cmp_ids);
		rp.pass = 2;
		if ((rc = wal_replay(sp->wal, spool_replay_rec, &rp, err)) < 0)
			goto fail;
		spool_replay_flush(&rp);
		if (rp.failed == 0 &&
		    (fsync(sp->queue_fd) != 0 || fsync(sp->tmp_fd) != 0))
			rp.failed++;
		if (rp.failed > 0) {
			/* The log stays as it is: the next start replays
			 * it again. */
			rc = sq_err_set(err, -EIO,
			    "%s/wal: replay failed for %zu files (see above)",
			    sp->dir, rp.failed);
			goto fail;
		}
		log_info("spool: write-ahead log replayed: %d records, %zu "
			 "files rewritten, %zu kept, %zu delivered messages "
			 "dropped",
		    n, rp.restored, rp.kept, rp.dropped);
	}
	if ((rc = wal_reset(sp->wal, err)) != 0)
		goto fail;
	free(rp.removed);
	return 0;
fail:
	free(rp.removed);
	wal_close(sp->wal);
	sp->wal = NULL;
	return rc;
}

void
spool_wal_stats(struct spool *sp, struct spool_wal_stats *out)
{
	struct spool_async *as = sp->as;

	memset(out, 0, sizeof(*out));
	if (as == NULL)
		return;
	pthread_mutex_lock(&as->mu);
	*out = as->wal_stats;
	pthread_mutex_unlock(&as->mu);
	pthread_mutex_lock(&sp->mem.mu);
	out->held = sp->mem.held;
	out->filed = sp->mem.filed_n;
	out->held_now = sp->mem.n;
	pthread_mutex_unlock(&sp->mem.mu);
}

void
spool_set_memory_age(struct spool *sp, unsigned ms)
{
	pthread_mutex_lock(&sp->mem.mu);
	sp->mem.age_ms = ms;
	pthread_mutex_unlock(&sp->mem.mu);
}
