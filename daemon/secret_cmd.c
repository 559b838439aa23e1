/*
 * secret_cmd.c - a secret helper command on libevent (see secret_cmd.h).
 *
 * How it works: posix_spawn() starts /bin/sh -c CMD in a new process
 * group with a minimal environment, stdout and stderr on two non-blocking
 * pipes.  Each pipe has a persistent read event; stdout is kept up to
 * SECRET_MAX + 2 bytes (enough to tell a too-long line), stderr up to
 * SECRET_CMD_STDERR_MAX.  The child's exit is noticed by waitpid(WNOHANG)
 * on a short timer (no SIGCHLD handler to share with the rest of the
 * daemon).  The command is done when it has exited and its output either
 * ended or already holds a complete first line (so a grandchild keeping
 * the pipe open does not hang it).  At the time limit the process group
 * is killed.  The result is delivered from ev_done, never from inside
 * secret_cmd_run(); the object frees itself after the callback.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "log.h"
#include "secret.h"
#include "secret_cmd.h"
#include "util.h"

#define SECRET_CMD_POLL_MS 20
#define SECRET_CMD_OUT_MAX (SECRET_MAX + 2)

struct secret_cmd {
	struct event_base *base;
	pid_t              pid;
	int                out_fd, err_fd;
	struct event      *ev_out, *ev_err, *ev_limit, *ev_poll, *ev_done;
	char              *out;
	size_t             out_len;
	char               errbuf[SECRET_CMD_STDERR_MAX + 1];
	size_t             err_len;
	int                exited, status, timed_out, finished;
	char              *key, *name;
	enum secret_kind   kind;
	unsigned           timeout_ms;
	secret_cmd_cb      cb;
	void              *arg;
};

static void
secret_cmd_close_pipes(struct secret_cmd *sc)
{
	if (sc->ev_out != NULL) {
		event_free(sc->ev_out);
		sc->ev_out = NULL;
	}
	if (sc->ev_err != NULL) {
		event_free(sc->ev_err);
		sc->ev_err = NULL;
	}
	if (sc->out_fd != -1)
		close(sc->out_fd);
	if (sc->err_fd != -1)
		close(sc->err_fd);
	sc->out_fd = sc->err_fd = -1;
}

static void
secret_cmd_free(struct secret_cmd *sc)
{
	secret_cmd_close_pipes(sc);
	event_free(sc->ev_limit);
	event_free(sc->ev_poll);
	event_free(sc->ev_done);
	if (sc->out != NULL) {
		explicit_bzero(sc->out, SECRET_CMD_OUT_MAX);
		free(sc->out);
	}
	free(sc->key);
	free(sc->name);
	free(sc);
}

static void
secret_cmd_kill(struct secret_cmd *sc)
{
	if (sc->exited || sc->pid <= 0)
		return;
	(void)kill(-sc->pid, SIGKILL);
	(void)kill(sc->pid, SIGKILL);
	while (waitpid(sc->pid, &sc->status, 0) == -1 && errno == EINTR)
		;
	sc->exited = 1;
}

/* Stop watching and hand the result over from ev_done. */
static void
secret_cmd_finish(struct secret_cmd *sc)
{
	if (sc->finished)
		return;
	sc->finished = 1;
	evtimer_del(sc->ev_limit);
	evtimer_del(sc->ev_poll);
	if (sc->ev_out != NULL)
		event_del(sc->ev_out);
	if (sc->ev_err != NULL)
		event_del(sc->ev_err);
	event_active(sc->ev_done, EV_TIMEOUT, 1);
}

/* Read what fd has; 1 at end of file (or error). */
static int
secret_cmd_read(int fd, char *buf, size_t *len, size_t max)
{
	char    chunk[4096];
	ssize_t n;

	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return 1;
		if (*len < max) {
			size_t k = (size_t)n < max - *len ? (size_t)n :
							    max - *len;

			memcpy(buf + *len, chunk, k);
			*len += k;
		}
		explicit_bzero(chunk, sizeof(chunk));
	}
}

static int
secret_cmd_line_done(const struct secret_cmd *sc)
{
	return memchr(sc->out, '\n', sc->out_len) != NULL ||
	    memchr(sc->out, '\r', sc->out_len) != NULL ||
	    sc->out_len >= SECRET_CMD_OUT_MAX;
}

static void
secret_cmd_check(struct secret_cmd *sc)
{
	if (sc->exited &&
	    (sc->out_fd == -1 || secret_cmd_line_done(sc) ||
		!WIFEXITED(sc->status) || WEXITSTATUS(sc->status) != 0))
		secret_cmd_finish(sc);
}

static void
secret_cmd_on_out(evutil_socket_t fd, short what, void *arg)
{
	struct secret_cmd *sc = arg;

	(void)what;
	if (secret_cmd_read(fd, sc->out, &sc->out_len, SECRET_CMD_OUT_MAX)) {
		event_free(sc->ev_out);
		sc->ev_out = NULL;
		close(sc->out_fd);
		sc->out_fd = -1;
	}
	secret_cmd_check(sc);
}

static void
secret_cmd_on_err(evutil_socket_t fd, short what, void *arg)
{
	struct secret_cmd *sc = arg;

	(void)what;
	if (secret_cmd_read(fd, sc->errbuf, &sc->err_len,
		SECRET_CMD_STDERR_MAX)) {
		event_free(sc->ev_err);
		sc->ev_err = NULL;
		close(sc->err_fd);
		sc->err_fd = -1;
	}
}

static void
secret_cmd_on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct secret_cmd *sc = arg;
	struct timeval     tv = { 0, SECRET_CMD_POLL_MS * 1000 };
	pid_t              n;

	(void)fd;
	(void)what;
	n = waitpid(sc->pid, &sc->status, WNOHANG);
	if (n == sc->pid || (n == -1 && errno != EINTR)) {
		sc->exited = 1;
		if (n == -1)
			sc->status = 0x7f00; /* "exited with 127" */
		secret_cmd_check(sc);
		if (!sc->finished) /* output still coming */
			evtimer_add(sc->ev_poll, &tv);
		return;
	}
	evtimer_add(sc->ev_poll, &tv);
}

static void
secret_cmd_on_limit(evutil_socket_t fd, short what, void *arg)
{
	struct secret_cmd *sc = arg;

	(void)fd;
	(void)what;
	sc->timed_out = 1;
	secret_cmd_kill(sc);
	secret_cmd_finish(sc);
}

/* stderr as one log line. */
static void
secret_cmd_log_stderr(struct secret_cmd *sc, int failed)
{
	char   line[SECRET_CMD_STDERR_MAX * 3 + 1];
	size_t i, o = 0;

	if (sc->err_fd != -1) /* what is there now */
		(void)secret_cmd_read(sc->err_fd, sc->errbuf, &sc->err_len,
		    SECRET_CMD_STDERR_MAX);
	while (sc->err_len > 0 &&
	    (sc->errbuf[sc->err_len - 1] == '\n' ||
		sc->errbuf[sc->err_len - 1] == '\r'))
		sc->err_len--;
	if (sc->err_len == 0)
		return;
	for (i = 0; i < sc->err_len && o + 4 < sizeof(line); i++) {
		if (sc->errbuf[i] == '\n') {
			memcpy(line + o, " | ", 3);
			o += 3;
		} else if ((unsigned char)sc->errbuf[i] < 0x20 ||
		    (unsigned char)sc->errbuf[i] > 0x7e)
			line[o++] = '?';
		else
			line[o++] = sc->errbuf[i];
	}
	line[o] = '\0';
	if (failed)
		log_warn("relay=%s %s stderr: %s", sc->name, sc->key, line);
	else
		log_info("relay=%s %s stderr: %s", sc->name, sc->key, line);
}

static void
secret_cmd_on_done(evutil_socket_t fd, short what, void *arg)
{
	struct secret_cmd *sc = arg;
	struct secret     *s = NULL;
	struct sq_err      err = { 0, "" };
	int                rc = 0;

	(void)fd;
	(void)what;
	if (sc->timed_out) {
		rc = sq_err_set(&err, -ETIMEDOUT,
		    "%s timed out after %u ms (killed)", sc->key,
		    sc->timeout_ms);
		if (sc->timeout_ms % 1000 == 0)
			snprintf(err.msg, sizeof(err.msg),
			    "%s timed out after %u s (killed)", sc->key,
			    sc->timeout_ms / 1000);
	} else if (WIFSIGNALED(sc->status))
		rc = sq_err_set(&err, SQ_EPROTO, "%s was killed by signal %d",
		    sc->key, WTERMSIG(sc->status));
	else if (WIFEXITED(sc->status) && WEXITSTATUS(sc->status) != 0)
		rc = sq_err_set(&err, SQ_EPROTO, "%s exited with status %d",
		    sc->key, WEXITSTATUS(sc->status));
	else
		rc = secret_from_output(sc->out, sc->out_len, sc->kind, sc->key,
		    &s, &err);
	secret_cmd_log_stderr(sc, rc != 0);
	/* A grandchild may still hold the pipes: stop reading them. */
	secret_cmd_kill(sc);
	secret_cmd_close_pipes(sc);
	sc->cb(rc, s, err.msg, sc->arg);
	secret_cmd_free(sc);
}

static int
secret_cmd_spawn(struct secret_cmd *sc, const char *cmd, struct sq_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t          attr;
	char                      *argv[4], *envp[4];
	const char                *home = getenv("HOME");
	int opipe[2] = { -1, -1 }, epipe[2] = { -1, -1 }, rc;

	if (pipe2(opipe, O_CLOEXEC | O_NONBLOCK) == -1 ||
	    pipe2(epipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		rc = errno;
		if (opipe[0] != -1) {
			close(opipe[0]);
			close(opipe[1]);
		}
		return sq_err_set(err, -rc, "%s: cannot create a pipe: %s",
		    sc->key, strerror(rc));
	}
	envp[0] = xstrdup("PATH=/usr/bin:/bin");
	envp[1] = xasprintf("HOME=%s",
	    home != NULL && home[0] == '/' ? home : "/");
	envp[2] = xasprintf("SENDQ_SMARTHOST=%s", sc->name);
	envp[3] = NULL;
	argv[0] = (char *)"sh";
	argv[1] = (char *)"-c";
	argv[2] = (char *)cmd;
	argv[3] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
	    O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, opipe[1], STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, epipe[1], STDERR_FILENO);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
	rc = posix_spawn(&sc->pid, "/bin/sh", &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp[0]);
	free(envp[1]);
	free(envp[2]);
	close(opipe[1]);
	close(epipe[1]);
	sc->out_fd = opipe[0];
	sc->err_fd = epipe[0];
	if (rc != 0) {
		sc->pid = -1;
		return sq_err_set(err, -rc, "%s: cannot run /bin/sh: %s",
		    sc->key, strerror(rc));
	}
	return 0;
}

struct secret_cmd *
secret_cmd_run(struct event_base *base, const char *cmd, const char *key,
    const char *name, enum secret_kind kind, unsigned timeout_ms,
    secret_cmd_cb cb, void *arg)
{
	struct secret_cmd *sc;
	struct sq_err      err = { 0, "" };
	struct timeval     tv;

	sc = xcalloc(1, sizeof(*sc));
	sc->base = base;
	sc->out_fd = sc->err_fd = -1;
	sc->key = xstrdup(key);
	sc->name = xstrdup(name);
	sc->kind = kind;
	sc->timeout_ms = timeout_ms != 0 ? timeout_ms :
					   secret_command_timeout_ms;
	sc->cb = cb;
	sc->arg = arg;
	sc->out = xmalloc(SECRET_CMD_OUT_MAX);
	sc->ev_limit = evtimer_new(base, secret_cmd_on_limit, sc);
	sc->ev_poll = evtimer_new(base, secret_cmd_on_poll, sc);
	sc->ev_done = event_new(base, -1, 0, secret_cmd_on_done, sc);
	if (sc->ev_limit == NULL || sc->ev_poll == NULL || sc->ev_done == NULL)
		log_fatalx("secret_cmd: event_new failed");
	if (secret_cmd_spawn(sc, cmd, &err) != 0) {
		/* Reported like an exit failure, from the loop. */
		sc->exited = 1;
		sc->status = 0x7f00;
		secret_cmd_finish(sc);
		return sc;
	}
	sc->ev_out = event_new(base, sc->out_fd, EV_READ | EV_PERSIST,
	    secret_cmd_on_out, sc);
	sc->ev_err = event_new(base, sc->err_fd, EV_READ | EV_PERSIST,
	    secret_cmd_on_err, sc);
	if (sc->ev_out == NULL || sc->ev_err == NULL)
		log_fatalx("secret_cmd: event_new failed");
	event_add(sc->ev_out, NULL);
	event_add(sc->ev_err, NULL);
	tv.tv_sec = sc->timeout_ms / 1000;
	tv.tv_usec = (sc->timeout_ms % 1000) * 1000;
	evtimer_add(sc->ev_limit, &tv);
	tv.tv_sec = 0;
	tv.tv_usec = SECRET_CMD_POLL_MS * 1000;
	evtimer_add(sc->ev_poll, &tv);
	return sc;
}

void
secret_cmd_cancel(struct secret_cmd *sc)
{
	if (sc == NULL)
		return;
	secret_cmd_kill(sc);
	secret_cmd_free(sc);
}
