/*
 * pickup.c - the maildrop directory into the spool (design: pickup.h).
 *
 * How it works: names to look at are kept in a FIFO list.  The inotify
 * callback appends the names it is told about; a scan (at start, every
 * PICKUP_SCAN_INTERVAL seconds, after an inotify overflow) replaces the
 * list with what readdir finds.  The run event takes names off the list:
 * each file is checked with fstatat (no following), opened O_NOFOLLOW |
 * O_NONBLOCK (a FIFO cannot stall us), checked again on the descriptor
 * (same inode, regular, one link, size), its head read and parsed, and
 * the whole file copied into a spool writer.  After at most PICKUP_BATCH
 * files (or PICKUP_BATCH_BYTES) the batch is committed with one group
 * commit; then each dropped file whose message is durable is unlinked,
 * if the name still refers to the inode that was copied.  The run event
 * re-arms itself while names remain, so other events get their turn
 * between batches.  Crash windows: before the commit, nothing is queued
 * and the file is still there; between the commit and the unlink, both
 * exist (a duplicate after restart, never a loss).
 */
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "config.h"
#include "dropfile.h"
#include "envelope.h"
#include "log.h"
#include "metrics.h"
#include "mailmsg.h"
#include "msgfix.h"
#include "pickup.h"
#include "quota.h"
#include "rewrite.h"
#include "spool.h"
#include "util.h"

#define PICKUP_BATCH_BYTES  ((size_t)16 * 1024 * 1024)
#define PICKUP_NAMES_MAX    65536 /* names held at once */
#define PICKUP_CHUNK        (64 * 1024)
#define PICKUP_REJECT_TRIES 100

struct pickup_item {
	char                *name;
	dev_t                dev;
	ino_t                ino;
	long                 uid;
	size_t               size;
	struct spool_writer *w;
	struct envelope     *env;
};

struct pickup {
	struct event_base *base;
	struct spool      *spool;
	char              *dir; /* spool_dir/maildrop */
	int                dir_fd;
	int                tmp_fd;
	int                rej_fd;
	int                watch_fd;
	struct event      *watch_ev;
	struct event      *run_ev;
	struct event      *timer_ev;
	char             **names; /* FIFO of names to look at */
	size_t             n_names;
	size_t             next; /* first name not yet looked at */
	int                want_scan;
	int                truncated; /* the last scan hit PICKUP_NAMES_MAX */
	int                stalled;   /* the spool failed: wait for a scan */
	char              *hostname;
	struct rewrite     rw; /* [aliases], rewrite_sender */
	size_t             size_max;
	char              *head; /* DROPFILE_HEAD_MAX bytes */
	time_t             tmp_cleaned;
	long               pw_uid; /* cache of the last owner's sender */
	char              *pw_sender;
	struct quota       quota; /* per-uid limits; zeroed: none */
};

enum pickup_take {
	PICKUP_READY, /* copied into a writer: commit it */
	PICKUP_DONE,  /* gone, rejected or skipped: nothing to do */
	PICKUP_STALL, /* the spool failed: stop for now */
};

/* ------------------------------------------------------------------ */
/* Directories. */

/*
 * Make dirfd/name with mode when missing; check it is a directory (not a
 * symlink) and return an O_DIRECTORY descriptor in *fd.  With gid not
 * (gid_t)-1, a directory of ours is given mode and that group, when made
 * or when found otherwise (an older install): what cannot be set is
 * logged, and the daemon goes on.
 */
static int
pickup_mkdir(int dirfd, const char *path, const char *name, mode_t mode,
    gid_t gid, int *fd, struct sq_err *err)
{
	struct stat st;

	if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
		return sq_err_set(err, -errno, "mkdir %s: %s", path,
		    strerror(errno));
	*fd = openat(dirfd, name,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return sq_err_set(err, -errno, "open %s: %s%s", path,
		    strerror(errno),
		    errno == ELOOP || errno == ENOTDIR ?
			" (must be a directory, not a symlink)" :
			"");
	if (fstat(*fd, &st) != 0)
		return sq_err_set(err, -errno, "stat %s: %s", path,
		    strerror(errno));
	if (st.st_uid == geteuid() && gid != (gid_t)-1 && st.st_gid != gid) {
		if (fchown(*fd, (uid_t)-1, gid) != 0)
			log_warn("pickup: chgrp %s to %s: %s (the drop helper "
				 "cannot write there)",
			    path, PICKUP_DROP_GROUP, strerror(errno));
		else
			log_info("pickup: %s: group %s", path,
			    PICKUP_DROP_GROUP);
	}
	/* chown may clear bits: the mode is set last. */
	if (st.st_uid == geteuid() && (st.st_mode & 07777) != mode) {
		if (fchmod(*fd, mode) != 0)
			return sq_err_set(err, -errno, "chmod %s: %s", path,
			    strerror(errno));
		log_info("pickup: %s: mode %04o (was %04o)", path,
		    (unsigned)mode, (unsigned)(st.st_mode & 07777));
	}
	if (fstat(*fd, &st) == 0 && (st.st_mode & S_IWOTH) &&
	    !(st.st_mode & S_ISVTX))
		log_warn("pickup: %s is world-writable without the sticky bit: "
			 "anyone can remove others' files",
		    path);
	return 0;
}

/* The group of maildrop/: PICKUP_DROP_GROUP, or (gid_t)-1 (logged) when
 * it does not exist. */
static gid_t
pickup_drop_gid(void)
{
	gid_t gid;

	/* In a child, as spool_set_queue_group (sq_group_gid). */
	if (sq_group_gid(PICKUP_DROP_GROUP, &gid) == 0)
		return gid;
	log_info("pickup: no group %s: maildrop/ keeps the daemon's group, so "
		 "only root and sendqd's user can drop mail while sendqd is "
		 "down (create the group and install sendq-drop setgid to it)",
	    PICKUP_DROP_GROUP);
	return (gid_t)-1;
}

/* ------------------------------------------------------------------ */
/* The list of names. */

static void
pickup_names_clear(struct pickup *p)
{
	size_t i;

	for (i = 0; i < p->n_names; i++)
		free(p->names[i]);
	free(p->names);
	p->names = NULL;
	p->n_names = p->next = 0;
}

static int
pickup_name_ignored(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    strcmp(name, "tmp") == 0 || strcmp(name, "rejected") == 0;
}

static void
pickup_names_push(struct pickup *p, const char *name)
{
	if (pickup_name_ignored(name))
		return;
	if (p->n_names - p->next >= PICKUP_NAMES_MAX) {
		p->want_scan = 1; /* too many: readdir finds them */
		return;
	}
	if (p->next > 0 && p->next == p->n_names)
		pickup_names_clear(p);
	p->names = xreallocarray(p->names, p->n_names + 1, sizeof(*p->names));
	p->names[p->n_names++] = xstrdup(name);
}

/* Replace the list with the names in maildrop/. */
static void
pickup_scan(struct pickup *p)
{
	struct dirent *de;
	DIR           *d;
	int            fd;

	pickup_names_clear(p);
	p->truncated = 0;
	if ((fd = dup(p->dir_fd)) < 0 || (d = fdopendir(fd)) == NULL) {
		log_err("pickup: scan %s: %s", p->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (pickup_name_ignored(de->d_name))
			continue;
		if (p->n_names >= PICKUP_NAMES_MAX) {
			p->truncated = 1;
			break;
		}
		pickup_names_push(p, de->d_name);
	}
	closedir(d);
}

/* ------------------------------------------------------------------ */
/* Refusing a file. */

/* Move name to rejected/ (as name, or name.N when taken) with a .reason
 * file beside it, and log it. */
static void
pickup_reject(struct pickup *p, const char *name, long uid, const char *reason)
{
	char pname[128], preason[512], text[520], base[256], cand[300];
	char rname[310];
	int  i, rc, moved = 0;

	sq_printable(pname, sizeof(pname), name, strlen(name));
	sq_printable(preason, sizeof(preason), reason, strlen(reason));
	snprintf(base, sizeof(base), "%.200s", name);
	for (i = 0; i < PICKUP_REJECT_TRIES && !moved; i++) {
		if (i == 0)
			snprintf(cand, sizeof(cand), "%s", base);
		else
			snprintf(cand, sizeof(cand), "%s.%d", base, i);
		snprintf(rname, sizeof(rname), "%s.reason", cand);
		if (faccessat(p->rej_fd, rname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (renameat2(p->dir_fd, name, p->rej_fd, cand,
			RENAME_NOREPLACE) == 0)
			moved = 1;
		else if (errno == ENOENT)
			return; /* gone meanwhile */
		else if (errno != EEXIST) {
			log_err("pickup file=%s uid=%ld result=rejected "
				"reason=\"%s\": cannot move it to rejected/: "
				"%s (left in place)",
			    pname, uid, preason, strerror(errno));
			return;
		}
	}
	if (!moved) {
		log_err("pickup file=%s uid=%ld result=rejected reason=\"%s\": "
			"no free name in rejected/ (left in place)",
		    pname, uid, preason);
		return;
	}
	snprintf(text, sizeof(text), "%s\n", preason);
	if ((rc = sq_publish_file(p->rej_fd, rname, text, 1)) != 0)
		log_err("pickup: cannot write rejected/%s: %s", rname,
		    strerror(-rc));
	sq_printable(base, sizeof(base), cand, strlen(cand));
	log_warn("pickup file=%s uid=%ld result=rejected reason=\"%s\" "
		 "moved_to=rejected/%s",
	    pname, uid, preason, base);
}

/* ------------------------------------------------------------------ */
/* Taking one file. */

/* name@hostname for the owner of the file, or NULL when uid has no
 * user name (the file then needs a sender of its own). */
static const char *
pickup_owner_sender(struct pickup *p, long uid)
{
	struct passwd pw, *res = NULL;
	char          buf[4096];

	if (p->pw_sender != NULL && p->pw_uid == uid)
		return p->pw_sender;
	free(p->pw_sender);
	p->pw_sender = NULL;
	p->pw_uid = uid;
	if (getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res) == 0 &&
	    res != NULL)
		p->pw_sender = xasprintf("%s@%s", pw.pw_name, p->hostname);
	return p->pw_sender;
}

static const char *
pickup_kind(mode_t mode)
{
	if (S_ISLNK(mode))
		return "a symbolic link";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISCHR(mode) || S_ISBLK(mode))
		return "a device";
	return "not a regular file";
}

/* Read up to max bytes; returns the count or -errno. */
static ssize_t
pickup_read(int fd, char *buf, size_t max)
{
	size_t  got = 0;
	ssize_t n;

	while (got < max) {
		n = sq_read(fd, buf + got, max - got);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The per-uid limits for a file of uid, counting the files of the same
 * uid already taken in this batch.  0 or -EDQUOT with err. */
static int
pickup_admit(struct pickup *p, long uid, const struct pickup_item *batch,
    size_t n, uint64_t size, struct sq_err *err)
{
	uint64_t msgs = 0, bytes = 0;
	size_t   i;

	for (i = 0; i < n; i++)
		if (batch[i].uid == uid) {
			msgs++;
			bytes += batch[i].size;
		}
	return quota_admit(&p->quota, uid, msgs, bytes, size, err);
}

/* What a step of pickup_take() found. */
enum pickup_step {
	PICKUP_STEP_OK,     /* go on */
	PICKUP_STEP_LATER,  /* leave the file for now (logged if needed) */
	PICKUP_STEP_REJECT, /* refuse the file: reason says why */
	PICKUP_STEP_STALL,  /* the spool failed (logged): stop for now */
};

/* The file as stat'ed by name: a regular file with one link, within the
 * size limit.  0, or -1 with reason. */
static int
pickup_check_stat(const struct pickup *p, const struct stat *st, char *reason,
    size_t reasonsz)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(reason, reasonsz, "not allowed: %s",
		    pickup_kind(st->st_mode));
		return -1;
	}
	if (st->st_nlink != 1) {
		snprintf(reason, reasonsz,
		    "not allowed: %lu hard links (a dropped file must have "
		    "exactly one)",
		    (unsigned long)st->st_nlink);
		return -1;
	}
	if ((size_t)st->st_size > p->size_max) {
		snprintf(reason, reasonsz,
		    "too large: %lld bytes, the limit is %zu",
		    (long long)st->st_size, p->size_max);
		return -1;
	}
	return 0;
}

/*
 * Open name (never through a symlink) into *fd and check that it is
 * still the file st describes (*fst: what is open).  On LATER *fd is
 * closed (-1); on REJECT it may be open (the caller closes it).
 */
static enum pickup_step
pickup_open(struct pickup *p, const char *name, const char *pname,
    const struct stat *st, struct stat *fst, int *fd, char *reason,
    size_t reasonsz)
{
	*fd = openat(p->dir_fd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (*fd < 0) {
		if (errno == ENOENT)
			return PICKUP_STEP_LATER;
		if (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
		    errno == EINTR || errno == EAGAIN) {
			log_warn("pickup file=%s: open: %s (tried again later)",
			    pname, strerror(errno));
			return PICKUP_STEP_LATER;
		}
		snprintf(reason, reasonsz, "cannot open: %s%s", strerror(errno),
		    errno == EACCES ? " (the file must be readable by sendqd: "
				      "make it group-readable)" :
				      "");
		return PICKUP_STEP_REJECT;
	}
	if (fstat(*fd, fst) != 0 || fst->st_dev != st->st_dev ||
	    fst->st_ino != st->st_ino) {
		close(*fd); /* replaced meanwhile: look again later */
		*fd = -1;
		pickup_names_push(p, name);
		return PICKUP_STEP_LATER;
	}
	if (!S_ISREG(fst->st_mode) || fst->st_nlink != 1) {
		snprintf(reason, reasonsz, "not allowed: %s",
		    !S_ISREG(fst->st_mode) ? pickup_kind(fst->st_mode) :
					     "more than one hard link");
		return PICKUP_STEP_REJECT;
	}
	return PICKUP_STEP_OK;
}

/* Below the free-space reserve nothing is taken (the files wait: STALL);
 * a uid over its limit waits alone (LATER).  Then a spool writer into
 * *w.  Every outcome but OK is logged. */
static enum pickup_step
pickup_guards(struct pickup *p, const char *pname, long uid,
    const struct pickup_item *batch, size_t n, uint64_t size,
    struct spool_writer **w)
{
	struct sq_err err = { 0 };

	if (spool_space_ok(p->spool, size, &err) != 0) {
		log_warn("pickup file=%s uid=%ld result=deferred error=\"%s\" "
			 "(left in maildrop/)",
		    pname, uid, err.msg);
		return PICKUP_STEP_STALL;
	}
	if (pickup_admit(p, uid, batch, n, size, &err) != 0) {
		log_warn("pickup file=%s uid=%ld result=deferred error=\"%s\" "
			 "(left in maildrop/)",
		    pname, uid, err.msg);
		return PICKUP_STEP_LATER;
	}
	if (spool_writer_begin(p->spool, w, &err) != 0) {
		log_warn("pickup file=%s uid=%ld result=deferred error=\"%s\"",
		    pname, uid, err.msg);
		return PICKUP_STEP_STALL;
	}
	return PICKUP_STEP_OK;
}

/*
 * Into w: the added fields, the drop file's header and the rest of its
 * first got bytes (in p->head), then what remains of fd, all scanned by
 * msgfix and its verdict applied.  *total gets the message's size.
 */
static enum pickup_step
pickup_copy(struct pickup *p, struct spool_writer *w, int fd,
    const struct dropfile *df, size_t got, const char *pname, long uid,
    size_t *total, char *reason, size_t reasonsz)
{
	struct msgfix_scan scan;
	struct sq_err      err = { 0 };
	char               date[64], *added;
	ssize_t            n;
	int                rc, more;

	mailmsg_date((int64_t)time(NULL), 1, date, sizeof(date));
	added = dropfile_added_fields(df, date, spool_writer_id(w),
	    p->hostname);
	*total = got;
	/* The message (not the fields added here) is scanned for what the
	 * wire cannot carry: line numbers are the message's. */
	msgfix_scan_init(&scan, NULL);
	msgfix_scan_feed(&scan, df->header, df->header_len, NULL);
	msgfix_scan_feed(&scan, p->head + df->rest_off, got - df->rest_off,
	    NULL);
	rc = spool_writer_write(w, added, strlen(added), &err);
	free(added);
	if (rc == 0)
		rc = spool_writer_write(w, df->header, df->header_len, &err);
	if (rc == 0)
		rc = spool_writer_write(w, p->head + df->rest_off,
		    got - df->rest_off, &err);
	more = got == DROPFILE_HEAD_MAX;
	while (rc == 0 && more) {
		n = pickup_read(fd, p->head, PICKUP_CHUNK);
		if (n < 0) {
			log_warn("pickup file=%s: read: %s (tried again later)",
			    pname, strerror((int)-n));
			return PICKUP_STEP_LATER;
		}
		*total += (size_t)n;
		if (*total > p->size_max) {
			snprintf(reason, reasonsz,
			    "too large: more than %zu bytes (it grew while it "
			    "was read)",
			    p->size_max);
			return PICKUP_STEP_REJECT;
		}
		more = (size_t)n == PICKUP_CHUNK;
		msgfix_scan_feed(&scan, p->head, (size_t)n, NULL);
		if (n > 0)
			rc = spool_writer_write(w, p->head, (size_t)n, &err);
	}
	if (rc == 0) {
		msgfix_scan_end(&scan, NULL);
		rc = spool_writer_fix(w, &scan, &err);
		if (rc == SQ_EPARSE) {
			snprintf(reason, reasonsz, "%s", err.msg);
			return PICKUP_STEP_REJECT;
		}
	}
	if (rc != 0) {
		log_warn("pickup file=%s uid=%ld result=deferred error=\"%s\"",
		    pname, uid, err.msg);
		return PICKUP_STEP_STALL;
	}
	return PICKUP_STEP_OK;
}

/* it takes name, the writer w and df's envelope (df->env becomes NULL),
 * which gets the owner's uid and the time of pick-up. */
static void
pickup_item_fill(struct pickup *p, struct pickup_item *it, const char *name,
    const struct stat *st, size_t total, struct spool_writer *w,
    struct dropfile *df)
{
	it->name = xstrdup(name);
	it->dev = st->st_dev;
	it->ino = st->st_ino;
	it->size = total;
	it->w = w;
	it->env = df->env;
	/* Envelope lines are taken as given (sendq writes them already
	 * rewritten); an envelope from the headers is rewritten as
	 * `sendq -t` would. */
	if (df->n_envlines == 0)
		rewrite_envelope(&p->rw, it->env);
	it->env->uid = it->uid;
	it->env->created = (int64_t)time(NULL);
	df->env = NULL;
}

/*
 * Check, parse and copy one dropped file into a new spool writer (it).
 * batch[0..n) are the files already taken in this batch (the same inode
 * is never taken twice).
 */
static enum pickup_take
pickup_take(struct pickup *p, const char *name, const struct pickup_item *batch,
    size_t n, struct pickup_item *it)
{
	struct dropfile_opts opts = { 0 };
	struct dropfile      df = { 0 };
	struct sq_err        err = { 0 };
	struct stat          st, fst;
	struct spool_writer *w = NULL;
	char                 reason[600], pname[128];
	enum pickup_step     step;
	size_t               i, total;
	ssize_t              got;
	int                  fd = -1;

	sq_printable(pname, sizeof(pname), name, strlen(name));
	if (fstatat(p->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT)
			log_warn("pickup file=%s: stat: %s (tried again later)",
			    pname, strerror(errno));
		return PICKUP_DONE;
	}
	for (i = 0; i < n; i++)
		if (batch[i].dev == st.st_dev && batch[i].ino == st.st_ino)
			return PICKUP_DONE;
	it->uid = (long)st.st_uid;
	if (pickup_check_stat(p, &st, reason, sizeof(reason)) != 0)
		goto reject;
	step = pickup_open(p, name, pname, &st, &fst, &fd, reason,
	    sizeof(reason));
	if (step == PICKUP_STEP_LATER)
		return PICKUP_DONE;
	if (step == PICKUP_STEP_REJECT)
		goto reject;
	got = pickup_read(fd, p->head, DROPFILE_HEAD_MAX);
	if (got < 0) {
		log_warn("pickup file=%s: read: %s (tried again later)", pname,
		    strerror((int)-got));
		step = PICKUP_STEP_LATER;
		goto out;
	}
	total = (size_t)got < DROPFILE_HEAD_MAX ?
	    (size_t)got :
	    ((size_t)fst.st_size > (size_t)got ? (size_t)fst.st_size :
						 (size_t)got + 1);
	opts.hostname = p->hostname;
	opts.default_sender = pickup_owner_sender(p, it->uid);
	opts.size_max = p->size_max;
	if (dropfile_parse(p->head, (size_t)got, total, &opts, &df, &err) !=
	    0) {
		snprintf(reason, sizeof(reason), "%s", err.msg);
		goto reject;
	}
	if ((step = pickup_guards(p, pname, it->uid, batch, n,
		 (uint64_t)fst.st_size, &w)) != PICKUP_STEP_OK ||
	    (step = pickup_copy(p, w, fd, &df, (size_t)got, pname, it->uid,
		 &total, reason, sizeof(reason))) != PICKUP_STEP_OK) {
		if (step == PICKUP_STEP_REJECT)
			goto reject;
		goto out;
	}
	pickup_item_fill(p, it, name, &st, total, w, &df);
	w = NULL;
	goto out;

reject:
	spool_writer_abort(w);
	w = NULL;
	if (fd >= 0) {
		close(fd);
		fd = -1;
	}
	pickup_reject(p, name, it->uid, reason);
	step = PICKUP_STEP_LATER; /* done with this file */
out:
	spool_writer_abort(w);
	dropfile_fini(&df);
	if (fd >= 0)
		close(fd);
	return step == PICKUP_STEP_OK ? PICKUP_READY :
	    step == PICKUP_STEP_STALL ? PICKUP_STALL :
					PICKUP_DONE;
}

/* ------------------------------------------------------------------ */
/* Committing a batch. */

static void
pickup_commit(struct pickup *p, struct pickup_item *items, size_t n)
{
	struct spool_writer *ws[PICKUP_BATCH];
	struct envelope     *envs[PICKUP_BATCH];
	struct sq_err        errs[PICKUP_BATCH];
	int                  results[PICKUP_BATCH], unlinked[PICKUP_BATCH];
	char                 pname[128], psender[128];
	struct stat          st;
	size_t               i;

	memset(errs, 0, sizeof(errs));
	for (i = 0; i < n; i++) {
		ws[i] = items[i].w;
		envs[i] = items[i].env;
		items[i].w = NULL;
	}
	spool_commit_group(ws, envs, n, results, errs);
	/* Durable in queue/: now the dropped files may go (first, in one
	 * tight loop: a crash before an unlink means a duplicate), each if
	 * its name still is the file that was copied. */
	for (i = 0; i < n; i++) {
		unlinked[i] = 0;
		if (results[i] != 0)
			continue;
		if (fstatat(p->dir_fd, items[i].name, &st,
			AT_SYMLINK_NOFOLLOW) != 0 ||
		    st.st_dev != items[i].dev || st.st_ino != items[i].ino)
			unlinked[i] = -ESTALE;
		else if (unlinkat(p->dir_fd, items[i].name, 0) != 0)
			unlinked[i] = -errno;
	}
	for (i = 0; i < n; i++) {
		sq_printable(pname, sizeof(pname), items[i].name,
		    strlen(items[i].name));
		if (results[i] != 0) {
			log_warn("pickup file=%s uid=%ld result=deferred "
				 "error=\"%s\" (left in maildrop/)",
			    pname, items[i].uid, errs[i].msg);
			p->stalled = 1;
			continue;
		}
		if (unlinked[i] == -ESTALE)
			log_warn("pickup file=%s: replaced while it was picked "
				 "up (the new file is picked up next)",
			    pname);
		else if (unlinked[i] != 0)
			log_err("pickup file=%s: unlink: %s (it will be queued "
				"again)",
			    pname, strerror(-unlinked[i]));
		sq_printable(psender, sizeof(psender), envs[i]->sender,
		    strlen(envs[i]->sender));
		log_info("pickup file=%s uid=%ld msgid=%s from=<%s> nrcpt=%zu "
			 "size=%zu",
		    pname, items[i].uid, envs[i]->id, psender, envs[i]->n_rcpts,
		    items[i].size);
		metrics_count_accepted(METRICS_PATH_MAILDROP);
		quota_queued(&p->quota, envs[i]);
	}
	for (i = 0; i < n; i++) {
		envelope_free(items[i].env);
		free(items[i].name);
		memset(&items[i], 0, sizeof(items[i]));
	}
}

/* ------------------------------------------------------------------ */
/* Events. */

/* Remove files older than PICKUP_TMP_MAX_AGE from maildrop/tmp/. */
static void
pickup_clean_tmp(struct pickup *p, time_t now)
{
	struct dirent *de;
	struct stat    st;
	char           pname[128];
	DIR           *d;
	int            fd;

	if ((fd = dup(p->tmp_fd)) < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(p->tmp_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			0 ||
		    S_ISDIR(st.st_mode) ||
		    st.st_mtime > now - PICKUP_TMP_MAX_AGE)
			continue;
		if (unlinkat(p->tmp_fd, de->d_name, 0) == 0)
			log_info("pickup: removed maildrop/tmp/%s (uid=%ld): "
				 "never published, older than 1 day",
			    sq_printable(pname, sizeof(pname), de->d_name,
				strlen(de->d_name)),
			    (long)st.st_uid);
	}
	closedir(d);
}

static void
pickup_on_run(evutil_socket_t fd, short what, void *arg)
{
	struct pickup     *p = arg;
	struct pickup_item items[PICKUP_BATCH];
	enum pickup_take   t;
	size_t             n = 0, bytes = 0;

	(void)fd;
	(void)what;
	memset(items, 0, sizeof(items));
	if (p->want_scan) {
		p->want_scan = 0;
		pickup_scan(p);
	}
	while (n < PICKUP_BATCH && bytes < PICKUP_BATCH_BYTES &&
	    p->next < p->n_names) {
		t = pickup_take(p, p->names[p->next], items, n, &items[n]);
		if (t == PICKUP_STALL) {
			p->stalled = 1;
			break;
		}
		p->next++;
		if (t == PICKUP_READY)
			bytes += items[n++].size;
		else
			memset(&items[n], 0, sizeof(items[n]));
	}
	if (n > 0)
		pickup_commit(p, items, n);
	if (p->stalled) {
		/* The spool cannot take mail now: the files stay, the next
		 * scan tries again. */
		pickup_names_clear(p);
		return;
	}
	if (p->next < p->n_names)
		event_active(p->run_ev, EV_TIMEOUT, 0);
	else {
		pickup_names_clear(p);
		if (p->truncated) {
			p->want_scan = 1;
			event_active(p->run_ev, EV_TIMEOUT, 0);
		}
	}
}

static void
pickup_on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct pickup *p = arg;
	char           buf[16384]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	struct stat                 st;
	ssize_t                     n;
	size_t                      off;
	int                         any = 0;

	(void)what;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (off = 0; off + sizeof(*ev) <= (size_t)n;
		     off += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			if (ev->mask & IN_Q_OVERFLOW) {
				p->want_scan = 1;
				any = 1;
				continue;
			}
			if (ev->len == 0 || p->stalled)
				continue;
			/* A regular file created here is still being
			 * written: it is taken at IN_CLOSE_WRITE.  What can
			 * never be taken (a symlink, a FIFO, a hard link
			 * ...) is refused right away. */
			if ((ev->mask & IN_CREATE) &&
			    (fstatat(p->dir_fd, ev->name, &st,
				 AT_SYMLINK_NOFOLLOW) != 0 ||
				(S_ISREG(st.st_mode) && st.st_nlink == 1)))
				continue;
			pickup_names_push(p, ev->name);
			any = 1;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		log_err("pickup: watch: read: %s", strerror(errno));
	if (any)
		event_active(p->run_ev, EV_TIMEOUT, 0);
}

static void
pickup_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pickup *p = arg;
	time_t         now = time(NULL);

	(void)fd;
	(void)what;
	p->stalled = 0;
	p->want_scan = 1;
	event_active(p->run_ev, EV_TIMEOUT, 0);
	if (now - p->tmp_cleaned >= 3600) {
		p->tmp_cleaned = now;
		pickup_clean_tmp(p, now);
	}
}

/* ------------------------------------------------------------------ */

/* maildrop/, maildrop/tmp/ (1730, the drop group) and maildrop/rejected/
 * (0700) under spool_dir, made or fixed, open in p.  0 or -errno with
 * err. */
static int
pickup_dirs(struct pickup *p, const char *spool_dir, struct sq_err *err)
{
	struct stat st;
	char       *path;
	gid_t       gid;
	int         spool_fd, rc;

	spool_fd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (spool_fd < 0)
		return sq_err_set(err, -errno, "open %s: %s", spool_dir,
		    strerror(errno));
	if (fstat(spool_fd, &st) == 0 && !(st.st_mode & S_IXOTH))
		log_warn(
		    "pickup: %s is mode %04o: the drop helper cannot reach %s/ "
		    "(mode 0711 lets it through; nothing becomes listable)",
		    spool_dir, (unsigned)(st.st_mode & 07777), PICKUP_DIR);
	gid = pickup_drop_gid();
	rc = pickup_mkdir(spool_fd, p->dir, PICKUP_DIR, 01730, gid, &p->dir_fd,
	    err);
	close(spool_fd);
	if (rc != 0)
		return rc;
	path = xasprintf("%s/tmp", p->dir);
	rc = pickup_mkdir(p->dir_fd, path, "tmp", 01730, gid, &p->tmp_fd, err);
	free(path);
	if (rc != 0)
		return rc;
	path = xasprintf("%s/rejected", p->dir);
	rc = pickup_mkdir(p->dir_fd, path, "rejected", 0700, (gid_t)-1,
	    &p->rej_fd, err);
	free(path);
	return rc;
}

int
pickup_new(struct event_base *base, const struct config *cfg, struct spool *sp,
    struct pickup **out, struct sq_err *err)
{
	struct timeval tv = { PICKUP_SCAN_INTERVAL, 0 };
	struct pickup *p;
	char           host[256];
	int            rc;

	p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->spool = sp;
	p->dir_fd = p->tmp_fd = p->rej_fd = p->watch_fd = -1;
	p->pw_uid = -1;
	p->dir = xasprintf("%s/%s", cfg->spool_dir, PICKUP_DIR);
	/* The same limit as the SMTP intake ([intake] max_message_size). */
	p->size_max = cfg->intake.max_message_size > 0 &&
		cfg->intake.max_message_size < SIZE_MAX ?
	    (size_t)cfg->intake.max_message_size :
	    DROPFILE_SIZE_DEFAULT;
	p->hostname = xstrdup(sq_hostname(cfg->hostname, host, sizeof(host)));
	rewrite_init(&p->rw, cfg, p->hostname);
	p->head = xmalloc(DROPFILE_HEAD_MAX);

	if ((rc = pickup_dirs(p, cfg->spool_dir, err)) != 0)
		goto fail;
	if ((p->watch_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		rc = sq_err_set(err, -errno, "inotify_init1: %s",
		    strerror(errno));
		goto fail;
	}
	if (inotify_add_watch(p->watch_fd, p->dir,
		IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_ONLYDIR |
		    IN_DONT_FOLLOW) < 0) {
		rc = sq_err_set(err, -errno, "watch %s: %s", p->dir,
		    strerror(errno));
		goto fail;
	}
	p->watch_ev = event_new(base, p->watch_fd, EV_READ | EV_PERSIST,
	    pickup_on_watch, p);
	p->run_ev = event_new(base, -1, 0, pickup_on_run, p);
	p->timer_ev = event_new(base, -1, EV_PERSIST, pickup_on_timer, p);
	if (p->watch_ev == NULL || p->run_ev == NULL || p->timer_ev == NULL)
		log_fatalx("pickup: event_new failed");
	event_add(p->watch_ev, NULL);
	event_add(p->timer_ev, &tv);
	p->tmp_cleaned = time(NULL);
	pickup_clean_tmp(p, p->tmp_cleaned);
	p->want_scan = 1;
	event_active(p->run_ev, EV_TIMEOUT, 0);
	log_info("pickup: watching %s (size limit %zu bytes)", p->dir,
	    p->size_max);
	*out = p;
	return 0;
fail:
	pickup_free(p);
	return rc;
}

void
pickup_set_quota(struct pickup *p, const struct quota *q)
{
	if (p != NULL && q != NULL)
		p->quota = *q;
}

void
pickup_free(struct pickup *p)
{
	if (p == NULL)
		return;
	if (p->watch_ev != NULL)
		event_free(p->watch_ev);
	if (p->run_ev != NULL)
		event_free(p->run_ev);
	if (p->timer_ev != NULL)
		event_free(p->timer_ev);
	if (p->watch_fd >= 0)
		close(p->watch_fd);
	if (p->dir_fd >= 0)
		close(p->dir_fd);
	if (p->tmp_fd >= 0)
		close(p->tmp_fd);
	if (p->rej_fd >= 0)
		close(p->rej_fd);
	pickup_names_clear(p);
	free(p->pw_sender);
	free(p->hostname);
	free(p->head);
	free(p->dir);
	free(p);
}
