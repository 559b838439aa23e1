/*
 * control.c - the control socket of sendqd (protocol: control.h).
 *
 * How it works: control_new() makes the unix socket itself (socket, a
 * stale socket file removed, bind under a umask that leaves it 0600,
 * chmod 0660, chown to root and the primary group of the spool
 * directory's owner, listen) and hands the listening fd to an
 * evconnlistener.  Each accepted connection gets a bufferevent with a
 * read timeout: the client must send one line of at most
 * QUEUE_VIEW_REQUEST_MAX bytes within CONTROL_READ_TIMEOUT seconds.  The
 * line is split into "COMMAND [ARG] [--json]", looked up in the command
 * table and run at once (list/show read the spool through queue_view;
 * the others call the scheduler through struct control_ops).  The answer,
 * "ok\n" plus the output or "error: REASON\n", is queued on the
 * bufferevent, reading stops, and the connection is freed from the write
 * callback once the answer has drained (or from the event callback on
 * error or timeout) - never from inside the read callback.
 *
 * submit is the one request with a body: after "submit ID LEN" the
 * client reads exactly LEN bytes of envelope (the read watermark is set
 * to LEN), parses it and parks the client (reading off) until the group
 * event runs: a zero timeout armed by the first parked client, so every
 * submit complete by the next turn of the loop joins one
 * spool_adopt_commit_group(); each parked client is then answered.
 *
 * Clients are counted; beyond CONTROL_CLIENTS_MAX a new connection is
 * closed at once (a sendq client then commits by itself).  control_free() frees every client and removes the
 * socket file if it is still the one this process bound.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "buf.h"
#include "config.h"
#include "control.h"
#include "envelope.h"
#include "log.h"
#include "queue_view.h"
#include "spool.h"
#include "util.h"

#define CONTROL_READ_TIMEOUT	5	/* seconds for the request line */
#define CONTROL_WRITE_TIMEOUT	60	/* seconds for the answer to drain */
#define CONTROL_CLIENTS_MAX	256	/* submitting sendq processes too */
#define CONTROL_GROUP_MAX	CONTROL_CLIENTS_MAX
#define CONTROL_STATUS_MAX	(16 * 1024 * 1024)

struct control_client;

struct control {
	struct event_base	*base;
	struct evconnlistener	*listener;
	char			*path;
	char			*spool_dir;
	struct control_ops	 ops;
	dev_t			 dev;	/* the socket file we bound */
	ino_t			 ino;
	struct control_client	*clients;	/* doubly linked */
	size_t			 n_clients;
	struct spool		*sp;	/* for submit; NULL: unavailable */
	struct event		*group_ev;	/* commits pending submits */
	size_t			 n_pending;
};

enum control_state {
	CONTROL_LINE,		/* reading the request line */
	CONTROL_BODY,		/* submit: reading the envelope text */
	CONTROL_PENDING,	/* submit: waiting for the group commit */
	CONTROL_ANSWERED,	/* answer queued */
};

struct control_client {
	struct control		*c;
	struct bufferevent	*bev;
	struct control_client	*prev;
	struct control_client	*next;
	enum control_state	 state;
	char			 id[ENVELOPE_ID_MAX];
	size_t			 body_len;	/* submit: envelope bytes */
	struct envelope		*env;		/* submit: parsed */
	long			 peer_uid;
};

/* One parsed request. */
struct control_req {
	const char	*name;
	const char	*id;	/* NULL when not given */
	int		 json;
};

struct control_cmd {
	const char	*name;
	int		 needs_id;
	int		(*handler)(struct control *, const struct control_req *,
			    struct buf *, struct sq_err *);
};

static int
control_not_supported(const struct control_req *r, struct sq_err *err)
{
	return sq_err_set(err, -ENOTSUP, "%s is not supported by this sendqd",
	    r->name);
}

static int
control_cmd_status(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	if (c->ops.status == NULL)
		return control_not_supported(r, err);
	return c->ops.status(c->ops.arg, r->json, out, err);
}

static int
control_cmd_list(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	return queue_view_list(c->spool_dir, r->json, c->ops.is_active,
	    c->ops.arg, out, err);
}

static int
control_cmd_show(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	return queue_view_show(c->spool_dir, r->id, r->json, c->ops.is_active,
	    c->ops.arg, out, err);
}

/* The confirmation of a command that changes something. */
static int
control_done(struct buf *out, const struct control_req *r, const char *what)
{
	char *s;
	int rc;

	if (r->json) {
		if (r->id != NULL)
			s = xasprintf("{\"command\":\"%s\",\"id\":\"%s\","
			    "\"result\":\"ok\"}\n", r->name, r->id);
		else
			s = xasprintf("{\"command\":\"%s\",\"result\":"
			    "\"ok\"}\n", r->name);
	} else if (r->id != NULL)
		s = xasprintf("%s: %s\n", r->id, what);
	else
		s = xasprintf("%s\n", what);
	rc = buf_append_str(out, s);
	free(s);
	return rc;
}

static int
control_cmd_flush(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	int rc;

	if (c->ops.flush == NULL)
		return control_not_supported(r, err);
	if ((rc = c->ops.flush(c->ops.arg, err)) != 0)
		return rc;
	return control_done(out, r, "every queued message is due now");
}

/* retry, hold, release, delete and bounce: one id, one scheduler op. */
static int
control_cmd_id(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	int (*op)(void *, const char *, struct sq_err *);
	const char *what;
	int rc;

	if (strcmp(r->name, "retry") == 0) {
		op = c->ops.retry;
		what = "due now";
	} else if (strcmp(r->name, "hold") == 0) {
		op = c->ops.hold;
		what = "held";
	} else if (strcmp(r->name, "release") == 0) {
		op = c->ops.release;
		what = "released";
	} else if (strcmp(r->name, "delete") == 0) {
		op = c->ops.remove;
		what = "deleted";
	} else {
		op = c->ops.bounce;
		what = "bounced";
	}
	if (op == NULL)
		return control_not_supported(r, err);
	if ((rc = op(c->ops.arg, r->id, err)) != 0)
		return rc;
	return control_done(out, r, what);
}

static int
control_cmd_reload(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	int rc;

	if (c->ops.reload == NULL)
		return control_not_supported(r, err);
	if ((rc = c->ops.reload(c->ops.reload_arg, err)) != 0)
		return rc;
	return control_done(out, r, "configuration reloaded");
}

static const struct control_cmd control_cmds[] = {
	{ "status",	0,	control_cmd_status },
	{ "list",	0,	control_cmd_list },
	{ "show",	1,	control_cmd_show },
	{ "flush",	0,	control_cmd_flush },
	{ "retry",	1,	control_cmd_id },
	{ "hold",	1,	control_cmd_id },
	{ "release",	1,	control_cmd_id },
	{ "delete",	1,	control_cmd_id },
	{ "bounce",	1,	control_cmd_id },
	{ "reload",	0,	control_cmd_reload },
};

#define CONTROL_N_CMDS	(sizeof(control_cmds) / sizeof(control_cmds[0]))

static int
control_unknown(const char *name, struct sq_err *err)
{
	char safe[64], list[256];
	size_t i;

	list[0] = '\0';
	for (i = 0; i < CONTROL_N_CMDS; i++) {
		if (i > 0)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, control_cmds[i].name,
		    sizeof(list) - strlen(list) - 1);
	}
	sq_printable(safe, sizeof(safe), name, strlen(name));
	return sq_err_set(err, SQ_EPARSE, "unknown command %s (commands: %s)",
	    safe, list);
}

/*
 * Run the request in line (NUL-terminated, LF removed) and put the whole
 * answer into out.  Returns the status for the log.
 */
static int
control_run(struct control *c, char *line, struct buf *out)
{
	struct sq_err err = { 0 };
	struct control_req r = { 0 };
	const struct control_cmd *cmd = NULL;
	char *words[4], *p, *save = NULL, safe[64];
	size_t n = 0, i;
	int rc;

	if ((p = strchr(line, '\r')) != NULL && p[1] == '\0')
		*p = '\0';
	for (p = strtok_r(line, " \t", &save); p != NULL;
	    p = strtok_r(NULL, " \t", &save)) {
		if (strcmp(p, "--json") == 0) {
			r.json = 1;
			continue;
		}
		if (n == 3) {
			rc = sq_err_set(&err, SQ_EPARSE, "too many arguments "
			    "(usage: COMMAND [ID] [--json])");
			goto answer;
		}
		words[n++] = p;
	}
	if (n == 0) {
		rc = sq_err_set(&err, SQ_EPARSE, "empty request (usage: "
		    "COMMAND [ID] [--json])");
		goto answer;
	}
	r.name = words[0];
	for (i = 0; i < CONTROL_N_CMDS; i++)
		if (strcmp(control_cmds[i].name, r.name) == 0)
			cmd = &control_cmds[i];
	if (cmd == NULL) {
		rc = control_unknown(r.name, &err);
		goto answer;
	}
	if (cmd->needs_id && n == 1) {
		rc = sq_err_set(&err, SQ_EPARSE, "%s needs a queue id",
		    cmd->name);
		goto answer;
	}
	if (n > (cmd->needs_id ? 2u : 1u)) {
		rc = sq_err_set(&err, SQ_EPARSE, "too many arguments (usage: "
		    "%s%s [--json])", cmd->name, cmd->needs_id ? " ID" : "");
		goto answer;
	}
	if (cmd->needs_id) {
		if (!spool_id_valid(words[1])) {
			sq_printable(safe, sizeof(safe), words[1],
			    strlen(words[1]));
			rc = sq_err_set(&err, SQ_EPARSE, "not a queue id: %s",
			    safe);
			goto answer;
		}
		r.id = words[1];
	}
	r.name = cmd->name;
	buf_append_str(out, "ok\n");
	rc = cmd->handler(c, &r, out, &err);
answer:
	if (rc != 0) {
		out->len = 0;
		if (err.msg[0] == '\0')
			snprintf(err.msg, sizeof(err.msg), "%s",
			    rc == SQ_ELIMIT ? "output too large" :
			    "command failed");
		for (p = err.msg; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		buf_append_str(out, "error: ");
		buf_append_str(out, err.msg);
		buf_append_str(out, "\n");
		for (p = err.msg; *p != '\0'; p++)
			if (*p == '"')
				*p = '\'';	/* for reason="..." below */
	}
	log_info("control command=%s msgid=%s result=%s%s%s%s",
	    cmd != NULL ? cmd->name : "?",
	    r.id != NULL ? r.id : "-", rc == 0 ? "ok" : "error",
	    rc == 0 ? "" : " reason=\"", rc == 0 ? "" : err.msg,
	    rc == 0 ? "" : "\"");
	return rc;
}

static void
control_client_free(struct control_client *cl)
{
	struct control *c = cl->c;

	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	c->n_clients--;
	if (cl->state == CONTROL_PENDING)
		c->n_pending--;
	envelope_free(cl->env);
	bufferevent_free(cl->bev);
	free(cl);
}

static void
control_on_write(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		control_client_free(cl);
}

static void
control_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_client *cl = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT)
		log_info("control: client timed out (%s)", what &
		    BEV_EVENT_READING ? "no request line" : "answer not read");
	control_client_free(cl);
}

/* Queue the answer in out, stop reading, free once it has drained. */
static void
control_answer(struct control_client *cl, struct buf *out)
{
	bufferevent_disable(cl->bev, EV_READ);
	if (cl->state == CONTROL_PENDING)
		cl->c->n_pending--;
	cl->state = CONTROL_ANSWERED;
	bufferevent_setcb(cl->bev, NULL, control_on_write, control_on_event,
	    cl);
	/* out is never empty, so the write callback will run. */
	if (evbuffer_add(bufferevent_get_output(cl->bev), out->data,
	    out->len) != 0)
		log_fatalx("control: out of memory for an answer");
}

/*
 * submit: "submit ID LEN" then LEN bytes of envelope text (envelope.h)
 * for the message the client wrote as tmp/ID.msg and still holds locked
 * (spool_writer_prepare).  Requests that arrive together are committed
 * together: the first one arms a zero-timeout event, so every request
 * that is complete by the next turn of the loop (those that came in while
 * the previous group was syncing included) joins the group.  Each client
 * is answered "ok ID" once its message is durable in queue/, or
 * "error: REASON"; the scheduler's watch on queue/ finds the message.
 */
static void
control_submit_fail(struct control_client *cl, const char *fmt, ...)
    SQ_PRINTF(2, 3);

static void
control_submit_fail(struct control_client *cl, const char *fmt, ...)
{
	struct buf out;
	va_list ap;
	char msg[512], *p;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	log_info("control command=submit msgid=%s uid=%ld result=error "
	    "reason=\"%s\"", cl->id[0] != '\0' ? cl->id : "-",
	    cl->peer_uid, msg);
	buf_init(&out, sizeof(msg) + 16);
	buf_append_str(&out, "error: ");
	buf_append_str(&out, msg);
	buf_append_str(&out, "\n");
	control_answer(cl, &out);
	buf_fini(&out);
}

static void
control_on_group(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;
	struct control_client *cl, **members;
	struct envelope **envs;
	struct sq_err *errs;
	const char **ids;
	struct buf out;
	int *results;
	size_t n = 0, i;
	char *line;

	(void)fd;
	(void)what;
	if (c->n_pending == 0)
		return;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	members = xcalloc(c->n_pending, sizeof(*members));
	for (cl = c->clients; cl != NULL && n < c->n_pending; cl = cl->next)
		if (cl->state == CONTROL_PENDING)
			members[n++] = cl;
	ids = xcalloc(n, sizeof(*ids));
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): array of pointers */
	envs = xcalloc(n, sizeof(*envs));
	errs = xcalloc(n, sizeof(*errs));
	results = xcalloc(n, sizeof(*results));
	for (i = 0; i < n; i++) {
		ids[i] = members[i]->id;
		envs[i] = members[i]->env;
	}
	spool_adopt_commit_group(c->sp, ids, envs, n, results, errs);
	for (i = 0; i < n; i++) {
		cl = members[i];
		if (results[i] != 0) {
			control_submit_fail(cl, "%s (message not queued)",
			    errs[i].msg);
			continue;
		}
		log_info("control command=submit msgid=%s uid=%ld "
		    "result=ok", cl->id, cl->peer_uid);
		line = xasprintf("ok %s\n", cl->id);
		buf_init(&out, strlen(line) + 1);
		buf_append_str(&out, line);
		control_answer(cl, &out);
		buf_fini(&out);
		free(line);
	}
	free(members);
	free(ids);
	free(envs);
	free(errs);
	free(results);
}

/* The envelope text is complete in the input: parse and queue it. */
static void
control_submit_body(struct control_client *cl)
{
	struct control *c = cl->c;
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct sq_err err = { 0 };
	struct timeval now = { 0, 0 };
	char *text;

	if (evbuffer_get_length(in) < cl->body_len)
		return;		/* wait for the rest */
	text = xmalloc(cl->body_len + 1);
	evbuffer_remove(in, text, cl->body_len);
	text[cl->body_len] = '\0';
	if (envelope_parse(text, cl->body_len, &cl->env, &err) != 0) {
		free(text);
		cl->env = NULL;
		control_submit_fail(cl, "bad envelope: %s", err.msg);
		return;
	}
	free(text);
	if (strcmp(cl->env->id, cl->id) != 0) {
		control_submit_fail(cl, "the envelope is not for message %s",
		    cl->id);
		return;
	}
	if (cl->env->n_rcpts == 0) {
		control_submit_fail(cl, "the envelope has no recipient");
		return;
	}
	bufferevent_disable(cl->bev, EV_READ);
	cl->state = CONTROL_PENDING;
	c->n_pending++;
	if (!event_pending(c->group_ev, EV_TIMEOUT, NULL))
		event_add(c->group_ev, &now);
}

/* "submit ID LEN" (line NUL-terminated, LF removed). */
static void
control_submit_line(struct control_client *cl, char *line)
{
	struct control *c = cl->c;
	struct ucred cred;
	socklen_t credlen = sizeof(cred);
	char *words[4], *p, *save = NULL, *end, safe[64];
	unsigned long long len;
	size_t n = 0;

	if ((p = strchr(line, '\r')) != NULL && p[1] == '\0')
		*p = '\0';
	cl->peer_uid = -1;
	if (getsockopt(bufferevent_getfd(cl->bev), SOL_SOCKET, SO_PEERCRED,
	    &cred, &credlen) == 0)
		cl->peer_uid = (long)cred.uid;
	for (p = strtok_r(line, " \t", &save); p != NULL && n < 4;
	    p = strtok_r(NULL, " \t", &save))
		words[n++] = p;
	if (n != 3) {
		control_submit_fail(cl, "usage: submit ID LENGTH, then "
		    "LENGTH bytes of envelope");
		return;
	}
	if (!spool_id_valid(words[1])) {
		sq_printable(safe, sizeof(safe), words[1], strlen(words[1]));
		control_submit_fail(cl, "not a queue id: %s", safe);
		return;
	}
	memcpy(cl->id, words[1], strlen(words[1]) + 1);
	errno = 0;
	len = strtoull(words[2], &end, 10);
	if (errno != 0 || *end != '\0' || words[2][0] < '0' ||
	    words[2][0] > '9' || len == 0 || len > CONTROL_SUBMIT_MAX) {
		control_submit_fail(cl, "envelope length must be 1 to %u "
		    "bytes", CONTROL_SUBMIT_MAX);
		return;
	}
	if (c->sp == NULL) {
		control_submit_fail(cl, "sendqd cannot open its spool for "
		    "submissions");
		return;
	}
	cl->body_len = (size_t)len;
	cl->state = CONTROL_BODY;
	/* Room for exactly the envelope; nothing more is read. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, cl->body_len);
	control_submit_body(cl);
}

static int
control_is_submit(const char *line)
{
	return strncmp(line, "submit", 6) == 0 &&
	    (line[6] == '\0' || line[6] == ' ' || line[6] == '\t' ||
	    line[6] == '\r');
}

static void
control_on_read(struct bufferevent *bev, void *arg)
{
	struct control_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct buf out;
	struct evbuffer_ptr eol;
	char *line;
	size_t len;

	if (cl->state == CONTROL_BODY) {
		control_submit_body(cl);
		return;
	}
	if (cl->state != CONTROL_LINE)
		return;
	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) <= QUEUE_VIEW_REQUEST_MAX)
			return;		/* wait for the rest of the line */
		buf_append_str(&out, "error: request line longer than 1024 "
		    "bytes\n");
		log_warn("control: request line too long");
	} else if ((size_t)eol.pos > QUEUE_VIEW_REQUEST_MAX) {
		buf_append_str(&out, "error: request line longer than 1024 "
		    "bytes\n");
		log_warn("control: request line too long");
	} else {
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
		if (line != NULL && memchr(line, '\0', len) != NULL)
			buf_append_str(&out, "error: NUL byte in request\n");
		else if (line != NULL && control_is_submit(line)) {
			control_submit_line(cl, line);
			free(line);
			buf_fini(&out);
			return;
		} else if (line != NULL)
			control_run(cl->c, line, &out);
		free(line);
	}
	control_answer(cl, &out);
	buf_fini(&out);
}

static void
control_on_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *c = arg;
	struct control_client *cl;
	struct timeval rt = { CONTROL_READ_TIMEOUT, 0 };
	struct timeval wt = { CONTROL_WRITE_TIMEOUT, 0 };

	(void)l;
	(void)sa;
	(void)salen;
	if (c->n_clients >= CONTROL_CLIENTS_MAX) {
		log_warn("control: more than %d clients, connection refused",
		    CONTROL_CLIENTS_MAX);
		evutil_closesocket(fd);
		return;
	}
	cl = xcalloc(1, sizeof(*cl));
	cl->c = c;
	cl->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (cl->bev == NULL) {
		log_err("control: bufferevent_socket_new failed");
		evutil_closesocket(fd);
		free(cl);
		return;
	}
	cl->next = c->clients;
	if (c->clients != NULL)
		c->clients->prev = cl;
	c->clients = cl;
	c->n_clients++;
	bufferevent_setcb(cl->bev, control_on_read, NULL, control_on_event,
	    cl);
	/* Read at most a little more than one request line at a time. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0,
	    QUEUE_VIEW_REQUEST_MAX + 2);
	bufferevent_set_timeouts(cl->bev, &rt, &wt);
	bufferevent_enable(cl->bev, EV_READ);
}

/* The group the socket is given: the primary group of the spool
 * directory's owner (the daemon's user), else the directory's group. */
static int
control_group(const char *spool_dir, gid_t *gid, struct sq_err *err)
{
	struct stat st;
	struct passwd *pw;

	if (stat(spool_dir, &st) != 0)
		return sq_err_set(err, -errno, "stat %s: %s", spool_dir,
		    strerror(errno));
	*gid = st.st_gid;
	if ((pw = getpwuid(st.st_uid)) != NULL)
		*gid = pw->pw_gid;
	return 0;
}

/* Make, bind and listen on the socket.  Returns the fd or -errno. */
static int
control_bind(struct control *c, struct sq_err *err)
{
	struct sockaddr_un sun;
	struct stat st;
	gid_t gid = (gid_t)-1;
	mode_t old;
	int fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(c->path) >= sizeof(sun.sun_path))
		return sq_err_set(err, -ENAMETOOLONG, "control socket path "
		    "too long (at most %zu bytes): %s",
		    sizeof(sun.sun_path) - 1, c->path);
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	if ((rc = control_group(c->spool_dir, &gid, err)) != 0)
		return rc;
	if (lstat(c->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return sq_err_set(err, -EEXIST, "control socket %s: "
			    "exists and is not a socket (not removed)",
			    c->path);
		if (queue_view_daemon_up(c->path))
			return sq_err_set(err, -EADDRINUSE, "control socket "
			    "%s: another sendqd is listening on it",
			    c->path);
		if (unlink(c->path) != 0 && errno != ENOENT)
			return sq_err_set(err, -errno, "remove stale control "
			    "socket %s: %s", c->path, strerror(errno));
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0)
		return sq_err_set(err, -errno, "socket: %s", strerror(errno));
	/* Born 0600, so nobody else can connect before chmod/chown. */
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc != 0) {
		rc = sq_err_set(err, -errno, "bind control socket %s: %s",
		    c->path, strerror(errno));
		close(fd);
		return rc;
	}
	if (chown(c->path, geteuid() == 0 ? 0 : (uid_t)-1, gid) != 0)
		log_warn("control: chown %s to group %lu: %s (the socket "
		    "stays with group %lu)", c->path, (unsigned long)gid,
		    strerror(errno), (unsigned long)getegid());
	if (chmod(c->path, 0660) != 0 || lstat(c->path, &st) != 0 ||
	    listen(fd, 128) != 0) {
		rc = sq_err_set(err, -errno, "control socket %s: %s",
		    c->path, strerror(errno));
		unlink(c->path);
		close(fd);
		return rc;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	return fd;
}

int
control_new(struct event_base *base, const char *path,
    const char *spool_dir, const struct control_ops *ops,
    struct control **out, struct sq_err *err)
{
	struct control *c;
	struct sq_err serr = { 0 };
	int fd;

	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->path = xstrdup(path != NULL ? path : CONFIG_DEFAULT_SOCKET);
	c->spool_dir = xstrdup(spool_dir);
	if (ops != NULL)
		c->ops = *ops;
	if ((fd = control_bind(c, err)) < 0) {
		free(c->path);
		free(c->spool_dir);
		free(c);
		return fd;
	}
	c->listener = evconnlistener_new(base, control_on_accept, c,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (c->listener == NULL) {
		close(fd);
		unlink(c->path);
		free(c->path);
		free(c->spool_dir);
		free(c);
		return sq_err_set(err, -ENOMEM, "control socket %s: cannot "
		    "listen (libevent)", path);
	}
	c->group_ev = evtimer_new(base, control_on_group, c);
	if (c->group_ev == NULL)
		log_fatalx("control: out of memory for an event");
	if (spool_open(spool_dir, 0, &c->sp, &serr) != 0) {
		c->sp = NULL;
		log_warn("control: submit unavailable: %s", serr.msg);
	}
	log_info("control socket=%s mode=0660", c->path);
	*out = c;
	return 0;
}

void
control_free(struct control *c)
{
	struct stat st;

	if (c == NULL)
		return;
	/* control_client_free() unlinks the head, so this ends; the
	 * analyzer does not follow the list update. */
	while (c->clients != NULL)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		control_client_free(c->clients);
	if (c->group_ev != NULL)
		event_free(c->group_ev);
	spool_close(c->sp);
	evconnlistener_free(c->listener);
	/* Remove the file only if it is still ours (not a successor's). */
	if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	free(c->path);
	free(c->spool_dir);
	free(c);
}
