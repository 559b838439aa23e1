/*
 * oauth_store.c - refresh tokens in STATE_DIR/oauth/ (see oauth_store.h).
 *
 * Crash windows of oauth_store_write(): before the rename the old file is
 * untouched (a stale .tmp file may be left; the next write replaces it);
 * after the rename and before the directory fsync the new name may be
 * lost by a power cut, and the old token comes back -- the provider may
 * then have invalidated it (rotation), which the daemon reports as
 * invalid_grant: held, never lost mail.  The token file is read with the
 * secret module's permission rule (not readable by others).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "oauth_store.h"
#include "secret.h"
#include "util.h"

char *
oauth_store_dir(const char *state_dir)
{
	return xasprintf("%s/oauth", state_dir);
}

int
oauth_store_mkdir(const char *state_dir, uid_t owner, gid_t group,
    struct sq_err *err)
{
	char *dir = oauth_store_dir(state_dir);
	int   saved;

	if (mkdir(dir, 0700) == -1) {
		saved = errno;
		if (saved == EEXIST) {
			free(dir);
			return 0;
		}
		sq_err_set(err, -saved,
		    "oauth state directory %s: cannot create it: %s", dir,
		    strerror(saved));
		free(dir);
		return -saved;
	}
	if ((owner != (uid_t)-1 || group != (gid_t)-1) &&
	    chown(dir, owner, group) == -1) {
		saved = errno;
		sq_err_set(err, -saved, "oauth state directory %s: chown: %s",
		    dir, strerror(saved));
		free(dir);
		return -saved;
	}
	free(dir);
	return 0;
}

int
oauth_store_read(const char *state_dir, const char *name, char **out,
    struct sq_err *err)
{
	struct secret *s = NULL;
	char          *path;
	int            rc;

	path = xasprintf("%s/oauth/%s", state_dir, name);
	rc = secret_read_path(path, "oauth token file", &s, err);
	if (rc == 0) {
		*out = xstrdup(s->data);
		secret_free(s);
	} else if (rc == -ENOENT)
		sq_err_set(err, rc,
		    "no refresh token in %s (run sendqctl oauth init %s)", path,
		    name);
	free(path);
	return rc;
}

static int
oauth_store_fail(struct sq_err *err, const char *what, const char *path)
{
	int saved = errno;

	return sq_err_set(err, -saved, "oauth state %s: %s: %s", path, what,
	    strerror(saved));
}

int
oauth_store_write(const char *state_dir, const char *file, const char *data,
    struct sq_err *err)
{
	struct stat dst;
	char       *dir, *tmp, *path;
	size_t      len = strlen(data), off = 0;
	ssize_t     n;
	int         fd = -1, dfd = -1, rc = 0;

	dir = oauth_store_dir(state_dir);
	tmp = xasprintf("%s/.%s.tmp", dir, file);
	path = xasprintf("%s/%s", dir, file);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fstat(dfd, &dst) == -1) {
		rc = oauth_store_fail(err, "cannot open", dir);
		goto out;
	}
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		rc = oauth_store_fail(err, "cannot create", tmp);
		goto out;
	}
	/* Stored by root (sendqctl): hand it to the daemon's user. */
	if (geteuid() == 0 && fchown(fd, dst.st_uid, dst.st_gid) == -1) {
		rc = oauth_store_fail(err, "chown", tmp);
		goto out;
	}
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			rc = oauth_store_fail(err, "write", tmp);
			goto out;
		}
		off += (size_t)n;
	}
	if (write(fd, "\n", 1) != 1 || fsync(fd) == -1) {
		rc = oauth_store_fail(err, "write", tmp);
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		rc = oauth_store_fail(err, "close", tmp);
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		rc = oauth_store_fail(err, "rename", path);
		goto out;
	}
	if (fsync(dfd) == -1)
		rc = oauth_store_fail(err, "fsync", dir);
out:
	if (fd != -1) {
		close(fd);
		(void)unlink(tmp);
	}
	if (dfd != -1)
		close(dfd);
	free(dir);
	free(tmp);
	free(path);
	return rc;
}
