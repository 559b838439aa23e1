/*
 * util_group.c - sq_group_gid (util.h): a group looked up by name in a
 * short-lived child.  Apart from util.c so that a program linking the
 * base library for its other functions (sendq) pulls in no NSS call: a
 * static sendq must carry none (SENDQ_STATIC_INJECTOR).
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <unistd.h>

#include "util.h"

/* getgrnam_r of name, with a buffer that grows on ERANGE (up to 1 MiB):
 * 0 and *gid, SQ_ENOTFOUND, or -errno. */
static int
sq_group_lookup(const char *name, gid_t *gid)
{
	struct group gr, *res = NULL;
	char         small[4096], *buf = small;
	size_t       sz = sizeof(small);
	int          rc;

	for (;;) {
		rc = getgrnam_r(name, &gr, buf, sz, &res);
		if (rc != ERANGE || sz >= (1 << 20))
			break;
		if (buf != small)
			free(buf);
		sz *= 4;
		if ((buf = malloc(sz)) == NULL) {
			rc = ENOMEM;
			buf = small;
			break;
		}
	}
	if (buf != small)
		free(buf);
	if (rc == 0 && res != NULL) {
		*gid = gr.gr_gid;
		return 0;
	}
	/* getgrnam(3): no entry is 0 with NULL, or one of these. */
	if (rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF ||
	    rc == EPERM)
		return SQ_ENOTFOUND;
	return -rc;
}

int
sq_group_gid(const char *name, gid_t *gid)
{
	struct {
		int   rc;
		gid_t gid;
	} ans = { -EIO, (gid_t)-1 };
	int     pfd[2], status;
	ssize_t n;
	pid_t   pid;

	if (pipe2(pfd, O_CLOEXEC) != 0)
		return sq_group_lookup(name, gid);
	if ((pid = fork()) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return sq_group_lookup(name, gid);
	}
	if (pid == 0) {
		/* The child: one look-up, its answer, _exit (no atexit
		 * handlers, no stdio of the parent's flushed twice). */
		close(pfd[0]);
		ans.rc = sq_group_lookup(name, &ans.gid);
		_exit(sq_write_all(pfd[1], &ans, sizeof(ans)) == 0 ? 0 : 1);
	}
	close(pfd[1]);
	n = sq_read(pfd[0], &ans, sizeof(ans));
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(ans))
		return -EIO; /* the child died before it answered */
	if (ans.rc == 0)
		*gid = ans.gid;
	return ans.rc;
}
