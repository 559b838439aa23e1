/*
 * secret.c - read a smarthost's password or bearer token.
 *
 * How it works: secret_load() picks the one source config.c allowed and
 * reads its first line into a buffer of SECRET_MAX + 1 bytes, so that a
 * longer line is noticed without reading further.
 *  - A file (password_file, token_file, credential) is opened without
 *    O_NOFOLLOW, since /run/secrets and $CREDENTIALS_DIRECTORY entries are
 *    often symbolic links; the permission rule is checked with fstat() on
 *    the descriptor actually opened, so a link cannot swap the file
 *    between the check and the read.  It must be a regular file.
 *  - A command runs as /bin/sh -c CMD through posix_spawn() in a process
 *    group of its own, with stdin on /dev/null, stdout on a pipe and
 *    stderr inherited.  Its output is read until end of file, keeping the
 *    first line; poll() on the pipe enforces the deadline, and while the
 *    child runs it is also checked with waitpid(WNOHANG) at short
 *    intervals, so a command that exits while something it started keeps
 *    the pipe open does not hang.  At the deadline the group is killed and
 *    the child reaped.  A nonzero status is an error whose message never
 *    includes the output.
 * The line ends at the first CR or LF.  Every buffer that held secret
 * bytes is wiped with explicit_bzero() before it is freed, and no message
 * contains them: messages name the source, never the content.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "config.h"
#include "secret.h"
#include "util.h"

unsigned secret_command_timeout_ms = SECRET_COMMAND_TIMEOUT * 1000;

/* While the command runs, how often its exit is checked for. */
#define SECRET_CHILD_POLL_MS 20

/* The first line read so far: buf holds up to SECRET_MAX + 1 bytes. */
struct secret_reader {
	char  *buf;
	size_t len;       /* bytes of the line kept */
	int    line_done; /* a CR or LF was seen */
	int    too_long;  /* more than SECRET_MAX bytes before it */
	int    nul;       /* a NUL byte in the line */
};

static void
secret_reader_init(struct secret_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->buf = xmalloc(SECRET_MAX + 1);
}

static void
secret_reader_fini(struct secret_reader *r)
{
	if (r->buf != NULL) {
		explicit_bzero(r->buf, SECRET_MAX + 1);
		free(r->buf);
	}
	memset(r, 0, sizeof(*r));
}

/* Take n bytes of input; everything after the first line is dropped. */
static void
secret_reader_add(struct secret_reader *r, const char *data, size_t n)
{
	size_t i;

	for (i = 0; i < n && !r->line_done && !r->too_long; i++) {
		if (data[i] == '\n' || data[i] == '\r') {
			r->line_done = 1;
			break;
		}
		if (data[i] == '\0')
			r->nul = 1;
		if (r->len == SECRET_MAX) {
			r->too_long = 1;
			break;
		}
		r->buf[r->len++] = data[i];
	}
}

/* Whether more input could still change the result. */
static int
secret_reader_wants_more(const struct secret_reader *r)
{
	return !r->line_done && !r->too_long;
}

/*
 * The line as a struct secret, or an error naming what (e.g.
 * "password_file /x").  Wipes nothing: the caller finishes the reader.
 */
static int
secret_reader_result(struct secret_reader *r, enum secret_kind kind,
    const char *what, struct secret **out, struct sq_err *err)
{
	struct secret *s;

	if (r->too_long)
		return sq_err_set(err, SQ_ELIMIT,
		    "%s: the first line is longer than %d bytes", what,
		    SECRET_MAX);
	if (r->nul)
		return sq_err_set(err, SQ_EPARSE,
		    "%s: the first line contains a NUL byte", what);
	if (r->len == 0)
		return sq_err_set(err, SQ_EPARSE, "%s: the first line is empty",
		    what);
	s = xcalloc(1, sizeof(*s));
	s->kind = kind;
	s->len = r->len;
	s->data = xmalloc(r->len + 1);
	memcpy(s->data, r->buf, r->len);
	s->data[r->len] = '\0';
	*out = s;
	return 0;
}

/*
 * Read the first line of the file at path.  others_mask: the mode bits
 * for others that refuse the file; group_write: refuse a group-writable
 * file too.
 */
static int
secret_read_file(const char *path, const char *what, enum secret_kind kind,
    mode_t others_mask, int group_write, struct secret **out,
    struct sq_err *err)
{
	struct secret_reader r;
	struct stat          st;
	char                 chunk[4096];
	ssize_t              n;
	mode_t               mode;
	int                  fd, rc, saved;

	/* O_NONBLOCK: a FIFO must not block the open; refused below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd == -1) {
		saved = errno;
		return sq_err_set(err, -saved, "%s: cannot open: %s", what,
		    strerror(saved));
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		close(fd);
		return sq_err_set(err, -saved, "%s: cannot stat: %s", what,
		    strerror(saved));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return sq_err_set(err, SQ_ECONFIG, "%s: not a regular file",
		    what);
	}
	mode = st.st_mode & 07777;
	if ((mode & others_mask) != 0) {
		close(fd);
		return sq_err_set(err, SQ_ECONFIG,
		    "%s: %s by others (mode %04o): refusing to use it; chmod "
		    "0600 or 0640",
		    what,
		    (mode & S_IROTH)     ? "readable" :
			(mode & S_IWOTH) ? "writable" :
					   "accessible",
		    (unsigned)mode);
	}
	if (group_write && (mode & S_IWGRP) != 0) {
		close(fd);
		return sq_err_set(err, SQ_ECONFIG,
		    "%s: writable by its group (mode %04o): refusing to use "
		    "it; chmod 0600 or 0640",
		    what, (unsigned)mode);
	}

	secret_reader_init(&r);
	rc = 0;
	while (secret_reader_wants_more(&r)) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			rc = sq_err_set(err, -saved, "%s: cannot read: %s",
			    what, strerror(saved));
			break;
		}
		if (n == 0)
			break;
		secret_reader_add(&r, chunk, (size_t)n);
	}
	explicit_bzero(chunk, sizeof(chunk));
	close(fd);
	if (rc == 0)
		rc = secret_reader_result(&r, kind, what, out, err);
	secret_reader_fini(&r);
	return rc;
}

/* Kill the command's process group (and the child itself) and reap it. */
static void
secret_command_kill(pid_t pid)
{
	int status;

	(void)kill(-pid, SIGKILL);
	(void)kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
}

static int
secret_command_spawn(const char *cmd, const char *key, pid_t *pid, int *rfd,
    struct sq_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	char                      *argv[4];
	int                        pfd[2], rc;

	*pid = -1;
	*rfd = -1;
	if (pipe2(pfd, O_CLOEXEC) == -1) {
		rc = errno;
		return sq_err_set(err, -rc, "%s: cannot create a pipe: %s", key,
		    strerror(rc));
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
	    O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	/* A group of its own, so a timeout kills what it started too. */
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	argv[0] = (char *)"sh";
	argv[1] = (char *)"-c";
	argv[2] = (char *)cmd;
	argv[3] = NULL;
	rc = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		return sq_err_set(err, -rc, "%s: cannot run /bin/sh: %s", key,
		    strerror(rc));
	}
	*rfd = pfd[0];
	return 0;
}

/* "10 seconds" or "250 ms" for the time limit. */
static const char *
secret_fmt_limit(char *buf, size_t bufsz, unsigned ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, bufsz, "%u seconds", ms / 1000);
	else
		snprintf(buf, bufsz, "%u ms", ms);
	return buf;
}

/* The command ran past its time limit (it is then killed). */
static int
secret_command_late(const char *key, struct sq_err *err)
{
	char limit[32];

	return sq_err_set(err, -ETIMEDOUT,
	    "%s did not finish within %s: killed", key,
	    secret_fmt_limit(limit, sizeof(limit), secret_command_timeout_ms));
}

/*
 * After the end of its output (rc 0) the child is normally about to
 * exit: wait for it until deadline into *status; killed when it has not
 * exited (or rc is already an error).  Returns rc, or the error of the
 * wait (with err).
 */
static int
secret_command_reap(pid_t pid, const char *key, long long deadline, int rc,
    int *status, struct sq_err *err)
{
	long long left;
	pid_t     n;
	int       exited = 0, saved;

	while (rc == 0 && !exited) {
		n = waitpid(pid, status, WNOHANG);
		if (n == pid) {
			exited = 1;
			break;
		}
		if (n == -1 && errno != EINTR) {
			saved = errno;
			rc = sq_err_set(err, -saved,
			    "%s: cannot wait for it: %s", key, strerror(saved));
			exited = 1;
			break;
		}
		left = deadline - sq_now_ms();
		if (left <= 0) {
			rc = secret_command_late(key, err);
			break;
		}
		(void)poll(NULL, 0,
		    left < SECRET_CHILD_POLL_MS ? (int)left :
						  SECRET_CHILD_POLL_MS);
	}
	if (!exited)
		secret_command_kill(pid);
	return rc;
}

/* Wait up to timeout ms for the command's output on fd and add what
 * comes to r.  Returns 1 at its end, 0 to go on, or -errno with err. */
static int
secret_command_read(int fd, int timeout, struct secret_reader *r,
    const char *key, struct sq_err *err)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char          chunk[4096];
	ssize_t       n;
	int           saved;

	if (poll(&pfd, 1, timeout) == -1) {
		if (errno == EINTR)
			return 0;
		saved = errno;
		return sq_err_set(err, -saved, "%s: poll: %s", key,
		    strerror(saved));
	}
	if (pfd.revents == 0)
		return 0;
	n = read(fd, chunk, sizeof(chunk));
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n == -1) {
		saved = errno;
		return sq_err_set(err, -saved, "%s: cannot read its output: %s",
		    key, strerror(saved));
	}
	if (n == 0)
		return 1;
	secret_reader_add(r, chunk, (size_t)n);
	explicit_bzero(chunk, sizeof(chunk));
	return 0;
}

/*
 * Run cmd and read the first line of its output.  key names the source in
 * messages ("password_command").
 */
static int
secret_run_command(const char *cmd, const char *key, enum secret_kind kind,
    struct secret **out, struct sq_err *err)
{
	struct secret_reader r;
	long long            deadline, left;
	ssize_t              n;
	pid_t                pid;
	int fd = -1, rc, status = 0, exited = 0, eof = 0, timeout, saved;
	int got;

	if ((rc = secret_command_spawn(cmd, key, &pid, &fd, err)) != 0)
		return rc;
	deadline = sq_now_ms() + secret_command_timeout_ms;
	secret_reader_init(&r);
	rc = 0;
	for (;;) {
		if (!exited) {
			n = waitpid(pid, &status, WNOHANG);
			if (n == pid)
				exited = 1;
			else if (n == -1 && errno != EINTR) {
				saved = errno;
				rc = sq_err_set(err, -saved,
				    "%s: cannot wait for it: %s", key,
				    strerror(saved));
				exited = 1; /* nothing left to reap */
				break;
			}
		}
		if (eof)
			break;
		/* It exited and has nothing more to say that matters. */
		if (exited &&
		    (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
			!secret_reader_wants_more(&r)))
			break;
		left = deadline - sq_now_ms();
		if (left <= 0) {
			rc = secret_command_late(key, err);
			break;
		}
		timeout = (int)left;
		if (!exited && timeout > SECRET_CHILD_POLL_MS)
			timeout = SECRET_CHILD_POLL_MS;
		if ((got = secret_command_read(fd, timeout, &r, key, err)) <
		    0) {
			rc = got;
			break;
		}
		eof = got;
	}
	close(fd);

	if (!exited)
		rc = secret_command_reap(pid, key, deadline, rc, &status, err);
	if (rc == 0 && WIFSIGNALED(status))
		rc = sq_err_set(err, SQ_EPROTO, "%s was killed by signal %d",
		    key, WTERMSIG(status));
	else if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) != 0)
		rc = sq_err_set(err, SQ_EPROTO, "%s exited with status %d", key,
		    WEXITSTATUS(status));
	if (rc == 0)
		rc = secret_reader_result(&r, kind, key, out, err);
	secret_reader_fini(&r);
	return rc;
}

/* The credential NAME from $CREDENTIALS_DIRECTORY (set by systemd). */
static int
secret_read_credential(const char *name, struct secret **out,
    struct sq_err *err)
{
	char        what[320], shown[256], *path;
	const char *dir;
	int         rc;

	sq_printable(shown, sizeof(shown), name, strlen(name));
	if (name[0] == '\0' || strchr(name, '/') != NULL ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return sq_err_set(err, SQ_ECONFIG,
		    "credential %s: not a valid credential name", shown);
	dir = getenv("CREDENTIALS_DIRECTORY");
	if (dir == NULL || dir[0] == '\0')
		return sq_err_set(err, SQ_ECONFIG,
		    "credential %s: $CREDENTIALS_DIRECTORY is not set (run "
		    "under systemd with LoadCredential=)",
		    shown);
	snprintf(what, sizeof(what), "credential %s", shown);
	path = xasprintf("%s/%s", dir, name);
	/* systemd owns the mode; only refuse what others could read. */
	rc = secret_read_file(path, what, SECRET_PASSWORD, S_IROTH | S_IWOTH, 0,
	    out, err);
	if (rc == -ENOENT)
		sq_err_set(err, rc,
		    "credential %s: no such credential in "
		    "$CREDENTIALS_DIRECTORY (is LoadCredential=%s:... in the "
		    "unit?)",
		    shown, shown);
	free(path);
	return rc;
}

int
secret_configured(const struct config_smarthost *sh)
{
	return sh->password_file != NULL || sh->password_command != NULL ||
	    sh->credential != NULL || sh->token_file != NULL ||
	    sh->token_command != NULL;
}

int
secret_load(const struct config_smarthost *sh, struct secret **out,
    struct sq_err *err)
{
	char             what[320], shown[256];
	const char      *path;
	enum secret_kind kind;

	if (sh->password_file != NULL || sh->token_file != NULL) {
		path = sh->password_file ? sh->password_file : sh->token_file;
		kind = sh->password_file ? SECRET_PASSWORD : SECRET_TOKEN;
		sq_printable(shown, sizeof(shown), path, strlen(path));
		snprintf(what, sizeof(what), "%s %s",
		    kind == SECRET_PASSWORD ? "password_file" : "token_file",
		    shown);
		return secret_read_file(path, what, kind, S_IRWXO, 1, out, err);
	}
	if (sh->password_command != NULL)
		return secret_run_command(sh->password_command,
		    "password_command", SECRET_PASSWORD, out, err);
	if (sh->token_command != NULL)
		return secret_run_command(sh->token_command, "token_command",
		    SECRET_TOKEN, out, err);
	if (sh->credential != NULL)
		return secret_read_credential(sh->credential, out, err);
	sq_printable(shown, sizeof(shown), sh->name ? sh->name : "?",
	    strlen(sh->name ? sh->name : "?"));
	return sq_err_set(err, SQ_ENOTFOUND,
	    "smarthost %s: no secret source configured", shown);
}

int
secret_from_output(const char *data, size_t len, enum secret_kind kind,
    const char *key, struct secret **out, struct sq_err *err)
{
	struct secret_reader r;
	int                  rc;

	secret_reader_init(&r);
	secret_reader_add(&r, data, len);
	rc = secret_reader_result(&r, kind, key, out, err);
	secret_reader_fini(&r);
	return rc;
}

int
secret_read_path(const char *path, const char *what, struct secret **out,
    struct sq_err *err)
{
	char label[320], shown[256];

	sq_printable(shown, sizeof(shown), path, strlen(path));
	snprintf(label, sizeof(label), "%s %s", what, shown);
	return secret_read_file(path, label, SECRET_TOKEN, S_IRWXO, 1, out,
	    err);
}

int
secret_load_oauth_client(const struct config_smarthost *sh, struct secret **out,
    struct sq_err *err)
{
	*out = NULL;
	if (sh->oauth_client_secret_file != NULL)
		return secret_read_path(sh->oauth_client_secret_file,
		    "oauth_client_secret_file", out, err);
	if (sh->oauth_client_secret_credential != NULL)
		return secret_read_credential(
		    sh->oauth_client_secret_credential, out, err);
	return 0;
}

void
secret_free(struct secret *s)
{
	if (s == NULL)
		return;
	if (s->data != NULL) {
		explicit_bzero(s->data, s->len + 1);
		free(s->data);
	}
	explicit_bzero(s, sizeof(*s));
	free(s);
}
