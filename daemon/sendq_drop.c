/*
 * sendq_drop.c - sendq-drop, the setgid helper that puts one drop file
 * into the maildrop when sendqd is not running (the Postfix postdrop
 * model).
 *
 * Installed root:sendq-drop mode 2755; maildrop/ and maildrop/tmp/ are
 * 1730 sendq:sendq-drop, so the group sendq-drop (which no person is a
 * member of) may create and rename files there but not list them, and
 * only this program gets that group.  sendq runs it when the control
 * socket does not answer, with an empty environment and the drop file
 * (dropfile.h format) on standard input.
 *
 * What it does, and nothing else:
 *   - clears its environment; takes no options but --help, --version
 *     and --login-name (anything else: exit 64); never reads a path from
 *     its caller;
 *   - with --login-name only prints the login name of the caller's real
 *     uid (getpwuid: sendq's default sender while sendqd is down; sendq,
 *     which may be a static binary, does no NSS lookup itself) or exits
 *     67 when there is none;
 *   - reads the compiled-in configuration CONFIG_DEFAULT_PATH for
 *     spool_dir and [intake] max_message_size only (unreadable or
 *     invalid: exit 78 with the reason);
 *   - reads standard input, at most max_message_size bytes (the limit
 *     of the pick-up, which counts the whole file; more: exit 65);
 *   - writes it to SPOOL/maildrop/tmp/RANDOM (getrandom, 128 bits; O_EXCL,
 *     O_NOFOLLOW, mode 0644: the daemon's user reads it as "other" while
 *     the directory keeps everybody else out), fsyncs it, renames it into
 *     SPOOL/maildrop/ and fsyncs the file again (below); exit 0.
 * Any other failure removes its tmp/ file and exits 75.  maildrop/ and
 * tmp/ are opened with O_PATH|O_NOFOLLOW|O_DIRECTORY relative to
 * spool_dir (root's configuration, taken as written) and the file
 * relative to them, so no symlink inside the spool is followed.  The file is owned by the caller's uid,
 * which is how the pick-up learns who sent it (pickup.h).
 *
 * Durability of the rename.  The usual way is fsync() on the directory,
 * but maildrop/ is 1730: the group may search it, not read it, so the
 * helper cannot open it for an fsync (and it must stay so: with read
 * right the helper could list others' drop files).  syncfs() through the
 * file worked but flushes the whole filesystem, every dirty page of every
 * process (1,000 submissions under load took 600 s).  Instead: fsync(file)
 * before the rename (the data and the tmp/ name), rename, fsync(file)
 * again.  rename() changes the inode (its ctime), so the second fsync has
 * something to commit, and on the journalling filesystems the journal
 * transaction that commits the inode is the one holding the rename:
 *   - ext4 (data=ordered or journal): fsync forces a commit of the running
 *     transaction that last touched the inode, which includes the
 *     directory entries changed by the rename in it;
 *   - XFS: fsync forces the log up to the inode's last change (its lsn),
 *     and the rename's directory changes are logged in the same or an
 *     earlier transaction;
 *   - btrfs: fsync logs the inode's new name in the tree log (it logs the
 *     new parent's entry for a renamed inode), so the name survives.
 * Limits: this is what those filesystems do, not what POSIX promises
 * (POSIX only promises the file's data and metadata); on a filesystem
 * without such a journal (ext2, vfat, some network filesystems) a crash
 * right after exit 0 may leave the file in tmp/ (removed by the pick-up
 * after a day: the message is lost) or nowhere new.  The spool belongs on
 * ext4, XFS or btrfs (sendq-maildrop(5)).  A crash before the second
 * fsync returns leaves the name in tmp/ or maildrop/: the caller was not
 * told 0, and may have sent it twice at worst.
 *
 * The caller can signal it (same real uid): a kill between create and
 * rename leaves a tmp/ file that the pick-up removes after a day; a kill
 * after the rename leaves a complete message.  The caller cannot reach
 * the file through the directory (no search right on maildrop/).
 *
 * Built with SENDQ_DROP_TESTING (the sendq-drop-testing binary of the
 * test suite, never installed) the configuration path may come from
 * SENDQ_DROP_TEST_CONFIG instead, read before the environment is cleared.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "dropfile.h"
#include "util.h"

#define DROP_MAILDROP "maildrop"
#define DROP_CHUNK    (64 * 1024)
#ifdef SENDQ_DROP_TESTING
#define DROP_TEST_ENV "SENDQ_DROP_TEST_CONFIG"
#else
#define DROP_TEST_ENV NULL /* installed: never from the environment */
#endif

static void
drop_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: sendq-drop < DROPFILE\n       sendq-drop --login-name\n"
	    "       sendq-drop --help | --version\n\nPuts one drop file "
	    "(sendq-maildrop(5)) read from standard input into the\n"
	    "maildrop of " CONFIG_DEFAULT_PATH "'s spool_dir, for sendqd to\n"
	    "pick up.  Run by sendq(1) when sendqd is not running; not meant "
	    "to be\nrun by hand.  --login-name prints the login name of the "
	    "caller's uid\n(sendq's default sender: sendq itself does no "
	    "user lookup).\nTakes no other options.\nExit status: 0 dropped, "
	    "64 usage, 65 too large, 67 no user name,\n75 cannot drop now, "
	    "78 configuration unreadable.\n");
}

/* --login-name: the login name of the real uid, on a line (sendq's
 * default sender when sendqd does not answer "whoami": the static sendq
 * does no NSS lookup of its own).  It says nothing the caller could not
 * learn from getpwuid(3).  0, EX_NOUSER or EX_IOERR, after printing. */
static int
drop_login_name(void)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwuid(getuid())) == NULL) {
		fprintf(stderr, "sendq-drop: no user name for uid %lu%s%s\n",
		    (unsigned long)getuid(), errno != 0 ? ": " : "",
		    errno != 0 ? strerror(errno) : "");
		return EX_NOUSER;
	}
	printf("%s\n", pw->pw_name);
	return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

/* Open dir under at as a directory to work in (O_PATH: the search
 * right is all that 1730 gives the group), never through a symlink.
 * The fd or -1. */
static int
drop_opendir(int at, const char *dir)
{
	return openat(at, dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Copy standard input to fd, at most max bytes.  0, EX_DATAERR (too
 * large) or EX_TEMPFAIL, after printing. */
static int
drop_copy(int fd, uint64_t max)
{
	static char buf[DROP_CHUNK];
	uint64_t    total = 0;
	ssize_t     n;
	int         rc;

	for (;;) {
		n = sq_read(STDIN_FILENO, buf, sizeof(buf));
		if (n < 0) {
			fprintf(stderr, "sendq-drop: read standard input: %s\n",
			    strerror(errno));
			return EX_TEMPFAIL;
		}
		if (n == 0)
			return 0;
		total += (uint64_t)n;
		if (total > max) {
			fprintf(stderr,
			    "sendq-drop: message too large (more than %llu "
			    "bytes, the limit of [intake] max_message_size; "
			    "message not queued)\n",
			    (unsigned long long)max);
			return EX_DATAERR;
		}
		if ((rc = sq_write_all(fd, buf, (size_t)n)) != 0) {
			fprintf(stderr, "sendq-drop: write: %s\n",
			    strerror(-rc));
			return EX_TEMPFAIL;
		}
	}
}

/* A fresh random name.  0 or -1. */
static int
drop_name(char *name, size_t sz)
{
	unsigned char r[16];
	size_t        i;
	int           rc;

	if ((rc = sq_random(r, sizeof(r))) != 0) {
		errno = -rc;
		return -1;
	}
	snprintf(name, sz, "drop.");
	for (i = 0; i < sizeof(r); i++)
		snprintf(name + 5 + 2 * i, sz - 5 - 2 * i, "%02x", r[i]);
	return 0;
}

/* maildrop/ into *dfd and maildrop/tmp/ into *tfd (O_PATH).  0, or -1
 * after printing (what was opened is in *dfd, *tfd). */
static int
drop_dirs(const char *spool_dir, int *dfd, int *tfd)
{
	int sfd, e;

	/* spool_dir is root's configuration: taken as it is written. */
	if ((sfd = open(spool_dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "sendq-drop: %s: %s\n", spool_dir,
		    strerror(errno));
		return -1;
	}
	*dfd = drop_opendir(sfd, DROP_MAILDROP);
	e = errno;
	close(sfd);
	if (*dfd < 0) {
		fprintf(stderr, "sendq-drop: %s/%s: %s\n", spool_dir,
		    DROP_MAILDROP, strerror(e));
		return -1;
	}
	if ((*tfd = drop_opendir(*dfd, "tmp")) < 0) {
		fprintf(stderr, "sendq-drop: %s/%s/tmp: %s\n", spool_dir,
		    DROP_MAILDROP, strerror(errno));
		return -1;
	}
	return 0;
}

/* A new file under a fresh random name (into name) in tfd: its fd, -1
 * with errno when it cannot be created, -2 after printing when there is
 * no randomness. */
static int
drop_create(int tfd, char *name, size_t namesz)
{
	int fd = -1, tries;

	for (tries = 0; tries < 10; tries++) {
		if (drop_name(name, namesz) != 0) {
			fprintf(stderr, "sendq-drop: getrandom: %s\n",
			    strerror(errno));
			return -2;
		}
		fd = openat(tfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
			O_NOCTTY,
		    0644);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	return fd;
}

/* Write, sync and publish.  Returns the exit code. */
static int
drop_put(const char *spool_dir, uint64_t max)
{
	char name[64], shown[64 + 32];
	int  dfd = -1, tfd = -1, fd = -1, rc = EX_TEMPFAIL;

	if (drop_dirs(spool_dir, &dfd, &tfd) != 0 ||
	    (fd = drop_create(tfd, name, sizeof(name))) == -2)
		goto out;
	snprintf(shown, sizeof(shown), "%s/tmp/%s", DROP_MAILDROP, name);
	if (fd < 0) {
		fprintf(stderr, "sendq-drop: create %s/%s: %s\n", spool_dir,
		    shown, strerror(errno));
		goto out;
	}
	if (fchmod(fd, 0644) != 0) {
		fprintf(stderr, "sendq-drop: chmod %s: %s\n", shown,
		    strerror(errno));
		goto fail;
	}
	if ((rc = drop_copy(fd, max)) != 0)
		goto fail;
	rc = EX_TEMPFAIL;
	if (fsync(fd) != 0) {
		fprintf(stderr, "sendq-drop: fsync %s: %s\n", shown,
		    strerror(errno));
		goto fail;
	}
	if (renameat(tfd, name, dfd, name) != 0) {
		fprintf(stderr, "sendq-drop: rename %s into %s/: %s\n", shown,
		    DROP_MAILDROP, strerror(errno));
		goto fail;
	}
	/*
	 * The new name must be durable too.  maildrop/ cannot be opened for
	 * an fsync (the group may search it, not read it): the rename
	 * changed the inode, and its fsync commits the journal transaction
	 * that holds the rename (see the top of this file).
	 */
	if (fsync(fd) != 0) {
		/* Published but maybe not durable: exit 75 would have the
		 * caller send it twice. */
		fprintf(stderr,
		    "sendq-drop: fsync after rename: %s (the message was left "
		    "in the maildrop; it may be lost if the system crashes "
		    "now)\n",
		    strerror(errno));
	}
	rc = 0;
	goto out;
fail:
	if (fd >= 0)
		close(fd);
	fd = -1;
	unlinkat(tfd, name, 0);
out:
	if (fd >= 0)
		close(fd);
	if (tfd >= 0)
		close(tfd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

int
main(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct sq_err  err = { 0 };
	static char    path[4096] = CONFIG_DEFAULT_PATH;
	uint64_t       max;
	int            rc;

	/* Standard descriptors open (else stderr text could go into a
	 * message), no environment. */
	sq_setgid_start(path, sizeof(path), DROP_TEST_ENV, 022);
	if (argc > 2 ||
	    (argc == 2 && strcmp(argv[1], "--help") != 0 &&
		strcmp(argv[1], "--version") != 0 &&
		strcmp(argv[1], "--login-name") != 0)) {
		fprintf(stderr,
		    "sendq-drop: takes no options or arguments (it reads a "
		    "drop file on standard input; see sendq-drop --help)\n");
		return EX_USAGE;
	}
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		drop_usage(stdout);
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}
	if (argc == 2 && strcmp(argv[1], "--login-name") == 0)
		return drop_login_name();
	if (argc == 2) {
		printf("sendq-drop %s\n", SENDQ_VERSION);
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}
	if (config_load_file_opts(path, CONFIG_LOAD_CLIENT, &cfg, &err) != 0) {
		fprintf(stderr, "sendq-drop: %s\n", err.msg);
		return EX_CONFIG;
	}
	max = cfg->intake.max_message_size != 0 ? cfg->intake.max_message_size :
						  DROPFILE_SIZE_DEFAULT;
	rc = drop_put(cfg->spool_dir, max);
	config_free(cfg);
	return rc;
}
