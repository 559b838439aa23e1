/*
 * control.c - the control socket of sendqd (protocol: control.h).
 *
 * How it works: control_new() makes the unix socket itself (socket, a
 * stale socket file removed, bind under a umask that leaves it 0600,
 * chmod 0666, listen) and hands the listening fd to an evconnlistener.
 * Every local user may connect: what a caller may do is decided per
 * request from its credentials, which are read once at accept
 * (SO_PEERCRED: uid, gid, pid; SO_PEERGROUPS: the supplementary groups)
 * and kept on the client.  Those are the kernel's record of the process
 * that connected, so nothing the client sends can change them, and no
 * NSS lookup happens per request: the names of admin_group,
 * submit_users and submit_groups are resolved once, at start
 * (control_rights_new), and a request only compares ids.  Group
 * membership is therefore what the connecting process has (as for file
 * permissions): a user added to admin_group needs a new login session.
 * Each command row names the right it needs (control_right_allows); a
 * refusal is answered "error: permission denied: ..." and logged with
 * the uid, like every request.  Each accepted connection gets a
 * bufferevent with a read timeout: the client must send one line of at most
 * QUEUE_VIEW_REQUEST_MAX bytes within CONTROL_READ_TIMEOUT seconds.  The
 * line is split into "COMMAND [ARG] [--json]", looked up in the command
 * table and run at once (list/show read the spool through queue_view;
 * the others call the scheduler through struct control_ops).  The answer,
 * "ok\n" plus the output or "error: REASON\n", is queued on the
 * bufferevent, reading stops, and the connection is freed from the write
 * callback once the answer has drained (or from the event callback on
 * error or timeout) - never from inside the read callback.
 *
 * What is in the socket at accept is read there (control_first_read):
 * a client writes its request right after connecting, so it is usually
 * there already, and a small submission is then taken and parked without
 * reading ever being enabled on the bufferevent.
 *
 * submit is the one request that streams (control.h).  The high read
 * watermark is one frame (SUBMIT_PROTO_LINE_MAX + SUBMIT_PROTO_CHUNK_MAX)
 * from the accept on, and the envelope's length when that is larger, so
 * that a whole small submission (request line, envelope, a data frame,
 * "end": sendq sends them in one write) is taken in one read; a lower
 * mark, as first set (one request line), cost each hand-over a second
 * wake-up, read and FIONREAD and four epoll_ctl calls as reading was
 * suspended and resumed.  After "submit ENVLEN" the envelope is parsed
 * and checked, the daemon's spool writer is started (it names the
 * message), and then each "data LEN" frame is written to it as it
 * arrives: no more than one frame (or the envelope) is ever buffered and
 * a fast client is held back by the socket.  At "end" the client is
 * parked (reading off) until the group event runs: made active (no
 * timer) by the first parked client, it runs after the other callbacks
 * of this turn of the loop, so every submit complete in it joins one
 * spool_commit_group(); each parked client is then answered.  A client
 * that closes (or times out) before "end" is freed with its writer
 * aborted.
 *
 * Clients are counted; beyond CONTROL_CLIENTS_MAX a new connection is
 * closed at once (a sendq client then uses the maildrop).  control_free() frees every client and removes the
 * socket file if it is still the one this process bound.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
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
#include "metrics.h"
#include "msgfix.h"
#include "quota.h"
#include "queue_view.h"
#include "spool.h"
#include "submit_proto.h"
#include "util.h"

#define CONTROL_READ_TIMEOUT   5   /* seconds for the request line */
#define CONTROL_WRITE_TIMEOUT  60  /* seconds for the answer to drain */
#define CONTROL_CLIENTS_MAX    256 /* submitting sendq processes too */
#define CONTROL_GROUP_MAX      CONTROL_CLIENTS_MAX
#define CONTROL_STATUS_MAX     (16 * 1024 * 1024)
#define CONTROL_SUBMIT_TIMEOUT 60 /* seconds between submit frames */
/* The high read watermark: one submit frame (submit_proto.h). */
#define CONTROL_FRAME_MAX (SUBMIT_PROTO_LINE_MAX + SUBMIT_PROTO_CHUNK_MAX)

struct control_client;

static void control_submit_data(struct control_client *);
static void control_log(const struct control_client *, const char *,
    const char *, int, int, const char *);
/* The configured rights, as ids (control_rights_new). */
struct control_rights {
	char  *admin_name; /* admin_group; NULL = none */
	gid_t  admin_gid;
	int    restricted; /* submit_users or submit_groups set */
	uid_t *users;      /* submit_users */
	size_t n_users;
	gid_t *groups; /* submit_groups */
	size_t n_groups;
};

struct control {
	struct event_base     *base;
	struct evconnlistener *listener;
	char                  *path;
	char                  *spool_dir;
	struct control_ops     ops;
	dev_t                  dev; /* the socket file we bound */
	ino_t                  ino;
	struct control_client *clients; /* doubly linked */
	size_t                 n_clients;
	struct spool          *sp;        /* for submit; NULL: unavailable */
	int                    sp_shared; /* sp is the daemon's */
	struct event          *group_ev;  /* commits pending submits */
	struct event          *spool_ev;  /* sp's commits are done */
	size_t                 n_pending;
	uint64_t               max_size;      /* of a submitted message */
	size_t                 max_rcpts;     /* 0: no limit */
	struct control_rights *rights;        /* NULL: none configured */
	uid_t                  daemon_uid;    /* our effective uid */
	int                    warned_groups; /* SO_PEERGROUPS failed */
	struct quota           quota;         /* per-uid limits; zeroed: none */
};

enum control_state {
	CONTROL_LINE,     /* reading the request line */
	CONTROL_ENV,      /* submit: reading the envelope text */
	CONTROL_DATA,     /* submit: reading data frames */
	CONTROL_PENDING,  /* submit: waiting for the group commit */
	CONTROL_ANSWERED, /* answer queued */
};

struct control_client {
	struct control        *c;
	struct bufferevent    *bev;
	struct control_client *prev;
	struct control_client *next;
	enum control_state     state;
	size_t                 body_len;   /* submit: envelope bytes */
	struct envelope       *env;        /* submit: parsed */
	struct spool_writer   *w;          /* submit: the message */
	uint64_t               size;       /* submit: bytes so far */
	struct msgfix_scan     scan;       /* submit: the wire rules */
	long                   peer_uid;   /* = facts.uid */
	long                   peer_pid;   /* -1 unknown */
	struct control_facts   facts;      /* from accept on */
	int                    committing; /* on sp's commit thread */
	int                    gone;       /* freed once committed */
};

/* One parsed request. */
struct control_req {
	const char *name;
	const char *id; /* NULL when not given */
	int         json;
	long        uid_filter; /* list/show: QUEUE_VIEW_ALL_UIDS or
					 * the caller's uid */
	char      **args;       /* select: the words after the command */
	size_t      n_args;
	const struct control_client *cl; /* who asked */
};

struct control_cmd {
	const char        *name;
	int                needs_id; /* CONTROL_ARG_* */
	enum control_right right;
	int (*handler)(struct control *, const struct control_req *,
	    struct buf *, struct sq_err *);
};

/* The argument a command takes. */
/* A handler's "the answer is written elsewhere" (whoami's thread): the
 * loop sends nothing, logs nothing and drops the connection. */
#define CONTROL_ASYNC 1

#define CONTROL_ARG_NONE   0
#define CONTROL_ARG_ID     1  /* a queue id (spool_id_valid) */
#define CONTROL_ARG_NAME   2  /* a smarthost name */
#define CONTROL_ARG_SELECT 3  /* select: an action and a selection */
#define CONTROL_WORDS_MAX  10 /* words in a request line */

/*
 * The rights table.  Privileged: root, sendqd's own user, admin_group.
 * Submitting, when restricted, is for root, sendqd's user and the
 * listed users and groups only (admin_group is about the queue, not
 * about sending).  An unknown uid is allowed nothing.
 */
int
control_right_allows(enum control_right right, const struct control_facts *f)
{
	int owner;

	if (f->uid < 0)
		return 0;
	owner = f->uid == 0 || f->uid == f->daemon_uid;
	switch (right) {
	case CONTROL_RIGHT_READ:
		return 1;
	case CONTROL_RIGHT_READ_ALL:
	case CONTROL_RIGHT_ADMIN:
		return owner || f->admin_member;
	case CONTROL_RIGHT_SUBMIT:
		return owner || !f->submit_restricted || f->submit_listed;
	}
	return 0;
}

/* May this client submit?  ([sendq] submit_users / submit_groups.) */
static int
control_may_submit(struct control_client *cl)
{
	return control_right_allows(CONTROL_RIGHT_SUBMIT, &cl->facts);
}

/* The answer to a refused request, in err: who may, and who asked. */
static int
control_denied(const struct control *c, const struct control_client *cl,
    const char *what, enum control_right right, struct sq_err *err)
{
	const char *admin = c->rights != NULL ? c->rights->admin_name : NULL;

	if (right == CONTROL_RIGHT_SUBMIT)
		return sq_err_set(err, -EPERM,
		    "permission denied: %s is restricted to the users and "
		    "groups of [sendq] submit_users and submit_groups (you are "
		    "uid %ld)",
		    what, cl->facts.uid);
	return sq_err_set(err, -EPERM,
	    "permission denied: %s is for root, the user sendqd runs as%s%s "
	    "(you are uid %ld)",
	    what, admin != NULL ? " and members of group " : "",
	    admin != NULL ? admin : "", cl->facts.uid);
}

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
	/* Through the daemon's spool when there is one: it lists the
	 * messages held in memory too. */
	if (c->sp != NULL)
		return queue_view_list_spool(c->sp, r->uid_filter, r->json,
		    c->ops.is_active, c->ops.arg, out, err);
	return queue_view_list(c->spool_dir, r->uid_filter, r->json,
	    c->ops.is_active, c->ops.arg, out, err);
}

static int
control_cmd_show(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	if (c->sp != NULL)
		return queue_view_show_spool(c->sp, r->id, r->uid_filter,
		    r->json, c->ops.is_active, c->ops.arg, out, err);
	return queue_view_show(c->spool_dir, r->id, r->uid_filter, r->json,
	    c->ops.is_active, c->ops.arg, out, err);
}

/* The confirmation of a command that changes something. */
static int
control_done(struct buf *out, const struct control_req *r, const char *what)
{
	char *s;
	int   rc;

	if (r->json) {
		if (r->id != NULL)
			s = xasprintf("{\"command\":\"%s\",\"id\":\"%s\","
				      "\"result\":\"ok\"}\n",
			    r->name, r->id);
		else
			s = xasprintf(
			    "{\"command\":\"%s\",\"result\":\"ok\"}\n",
			    r->name);
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
control_cmd_id(struct control *c, const struct control_req *r, struct buf *out,
    struct sq_err *err)
{
	int (*op)(void *, const char *, struct sq_err *);
	const char *what;
	int         rc;

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
control_cmd_oauth_status(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	if (c->ops.oauth_status == NULL)
		return control_not_supported(r, err);
	return c->ops.oauth_status(c->ops.arg, r->id, out, err);
}

/* A smarthost name as config.c allows it: 1 to 64 of [A-Za-z0-9._-]. */
static int
control_name_valid(const char *s)
{
	size_t n = strspn(s,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._"
	    "-");

	return n > 0 && n <= 64 && s[n] == '\0';
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

/*
 * select ACTION [all] [from=ADDR] [to=ADDR] [relay=NAME] [older=SECONDS]
 * [dry-run] (sendqctl delete|hold|release|bounce ALL or a selection):
 * the selection parsed into sel.  0, or SQ_EPARSE with err.
 */
struct control_sel {
	const char *action; /* delete hold release bounce */
	int         all;
	const char *from, *to, *relay;
	long long   older; /* seconds; -1: any age */
	int         dry_run;
	int (*op)(void *, const char *, struct sq_err *);
	const char *done; /* "deleted" ... */
};

static int
control_sel_parse(const struct control *c, const struct control_req *r,
    struct control_sel *sel, struct sq_err *err)
{
	static const char *const actions[] = { "delete", "hold", "release",
		"bounce" };
	static const char *const done[] = { "deleted", "held", "released",
		"bounced" };
	char                    *end, safe[64];
	size_t                   i;
	int                      n = 0;

	memset(sel, 0, sizeof(*sel));
	sel->older = -1;
	for (i = 0; i < 4; i++)
		if (strcmp(r->args[0], actions[i]) == 0) {
			sel->action = actions[i];
			sel->done = done[i];
		}
	if (sel->action == NULL)
		return sq_err_set(err, SQ_EPARSE,
		    "select: the action is delete, hold, release or bounce");
	sel->op = sel->action[0] == 'd' ? c->ops.remove :
	    sel->action[0] == 'h'       ? c->ops.hold :
	    sel->action[0] == 'r'       ? c->ops.release :
					  c->ops.bounce;
	for (i = 1; i < r->n_args; i++) {
		const char *w = r->args[i];

		if (strcmp(w, "all") == 0)
			sel->all = 1;
		else if (strcmp(w, "dry-run") == 0)
			sel->dry_run = 1;
		else if (strncmp(w, "from=", 5) == 0 && w[5] != '\0')
			sel->from = w + 5, n++;
		else if (strncmp(w, "to=", 3) == 0 && w[3] != '\0')
			sel->to = w + 3, n++;
		else if (strncmp(w, "relay=", 6) == 0 && w[6] != '\0')
			sel->relay = w + 6, n++;
		else if (strncmp(w, "older=", 6) == 0 && w[6] >= '0' &&
		    w[6] <= '9') {
			errno = 0;
			sel->older = strtoll(w + 6, &end, 10);
			if (*end != '\0' || errno != 0)
				return sq_err_set(err, SQ_EPARSE,
				    "select: older= takes seconds");
			n++;
		} else {
			sq_printable(safe, sizeof(safe), w, strlen(w));
			return sq_err_set(err, SQ_EPARSE,
			    "select: unknown word %s (all, from=, to=, relay=, "
			    "older=, dry-run)",
			    safe);
		}
	}
	if (!sel->all && n == 0)
		return sq_err_set(err, SQ_EPARSE,
		    "select: an empty selection (say all to mean every "
		    "message)");
	if (sel->op == NULL)
		return control_not_supported(r, err);
	return 0;
}

/* addr matches pat: the same address (case aside), "@DOMAIN" any
 * address at DOMAIN, "<>" the null sender. */
static int
control_sel_addr(const char *pat, const char *addr)
{
	const char *at;

	if (strcmp(pat, "<>") == 0)
		return addr[0] == '\0';
	if (pat[0] == '@')
		return (at = strrchr(addr, '@')) != NULL &&
		    strcasecmp(at + 1, pat + 1) == 0;
	return strcasecmp(pat, addr) == 0;
}

static int
control_sel_match(const struct control *c, const struct control_sel *sel,
    const struct envelope *env, long long now)
{
	const char *relay;
	size_t      i;
	int         hit = 0;

	if (sel->from != NULL && !control_sel_addr(sel->from, env->sender))
		return 0;
	for (i = 0; sel->to != NULL && i < env->n_rcpts && !hit; i++)
		hit = control_sel_addr(sel->to, env->rcpts[i]);
	if (sel->to != NULL && !hit)
		return 0;
	if (sel->older >= 0 && now - env->created <= sel->older)
		return 0;
	if (sel->relay != NULL) {
		relay = c->ops.relay_of != NULL ?
		    c->ops.relay_of(c->ops.arg, env->id) :
		    NULL;
		if (relay == NULL || strcmp(relay, sel->relay) != 0)
			return 0;
	}
	return 1;
}

static void
control_sel_ids(const char *id, void *arg)
{
	struct buf *ids = arg;

	buf_append(ids, id, strlen(id) + 1);
}

/* The ids (NUL-separated in ids) of the queued messages sel takes. */
static int
control_sel_collect(struct control *c, const struct control_sel *sel,
    struct buf *ids, struct sq_err *err)
{
	struct buf       all;
	struct spool    *sp = c->sp; /* the daemon's: held messages too */
	struct envelope *env;
	struct sq_err    lerr = { 0 };
	long long        now = (long long)time(NULL);
	size_t           off;
	int              rc;

	if (sp == NULL && (rc = spool_open_queue(c->spool_dir, &sp, err)) != 0)
		return rc;
	buf_init(&all, QUEUE_VIEW_OUT_MAX);
	if ((rc = spool_list(sp, control_sel_ids, &all, err)) >= 0)
		rc = 0;
	for (off = 0; rc == 0 && off < all.len;
	     off += strlen(all.data + off) + 1) {
		if (spool_load_envelope(sp, all.data + off, &env, &lerr) != 0)
			continue; /* gone meanwhile */
		if (control_sel_match(c, sel, env, now))
			buf_append(ids, env->id, strlen(env->id) + 1);
		envelope_free(env);
	}
	buf_fini(&all);
	if (sp != c->sp)
		spool_close(sp);
	return rc;
}

/* One message's line of the answer. */
static void
control_sel_line(struct buf *out, int json, int first, const char *id,
    const char *result, const char *why)
{
	char *s;

	if (json) {
		s = xasprintf("%s{\"id\":\"%s\",\"result\":\"%s\"",
		    first ? "" : ",", id, result);
		buf_append_str(out, s);
		free(s);
		if (why != NULL) {
			buf_append_str(out, ",\"error\":");
			queue_view_json_string(out, why, strlen(why));
		}
		buf_append_str(out, "}");
		return;
	}
	s = xasprintf("%s: %s%s%s\n", id, result, why != NULL ? ": " : "",
	    why != NULL ? why : "");
	buf_append_str(out, s);
	free(s);
}

/*
 * select: the selection is made from the spool (every queued envelope
 * read once: blocks like list), then the action runs per message through
 * the same scheduler op as "delete ID" etc., each logged with the acting
 * uid; a message being delivered right now is skipped (the op says
 * busy).  dry-run lists what would be affected.
 */
static int
control_cmd_select(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	struct control_sel sel;
	struct sq_err      oerr;
	struct buf         ids;
	size_t             off, n = 0, n_ok = 0;
	const char        *id, *result;
	char              *s;
	int                rc;

	if ((rc = control_sel_parse(c, r, &sel, err)) != 0)
		return rc;
	buf_init(&ids, QUEUE_VIEW_OUT_MAX);
	if ((rc = control_sel_collect(c, &sel, &ids, err)) != 0) {
		buf_fini(&ids);
		return rc;
	}
	if (r->json)
		buf_append_str(out, "{\"messages\":[");
	for (off = 0; off < ids.len; off += strlen(id) + 1, n++) {
		id = ids.data + off;
		memset(&oerr, 0, sizeof(oerr));
		rc = sel.dry_run ? 0 : sel.op(c->ops.arg, id, &oerr);
		if (!sel.dry_run)
			control_log(r->cl, sel.action, id, rc, 0, oerr.msg);
		result = sel.dry_run ? "selected" :
		    rc == 0          ? sel.done :
		    rc == -EBUSY     ? "busy" :
				       "error";
		n_ok += rc == 0;
		control_sel_line(out, r->json, n == 0, id, result,
		    rc != 0 ? oerr.msg : NULL);
	}
	buf_fini(&ids);
	if (r->json)
		s = xasprintf("],\"action\":\"%s\",\"dry_run\":%s,\"selected\":"
			      "%zu,\"done\":%zu}\n",
		    sel.action, sel.dry_run ? "true" : "false", n,
		    sel.dry_run ? 0 : n_ok);
	else if (sel.dry_run)
		s = xasprintf(
		    "%zu message%s would be %s (dry run: nothing changed)\n", n,
		    n == 1 ? "" : "s", sel.done);
	else
		s = xasprintf("%zu of %zu selected message%s %s\n", n_ok, n,
		    n == 1 ? "" : "s", sel.done);
	buf_append_str(out, s);
	free(s);
	return 0;
}

/*
 * whoami: the login name of the caller's uid (SO_PEERCRED), for sendq's
 * default sender: the lookup (NSS: passwd files, LDAP, systemd users)
 * is done by sendqd, so that sendq needs no NSS module (control.h).
 * Everyone may ask; the answer is about the caller alone.  An NSS lookup
 * may block (an LDAP server away: seconds), so it never runs on the
 * event loop: a detached thread gets a duplicate of the connection,
 * looks the uid up, writes the answer, logs and closes, while the loop
 * drops its side of the connection at once.  At most
 * CONTROL_WHOAMI_MAX threads at a time; past that (or when no thread
 * can be made) the answer is "error: busy" and sendq asks its drop
 * helper instead.
 */
static atomic_int control_whoami_running;

struct control_whoami {
	int  fd;
	long uid;
	long pid;
};

static void *
control_whoami_thread(void *arg)
{
	struct control_whoami *w = arg;
	struct passwd          pw, *res = NULL;
	char                   buf[4096], answer[512];
	int                    e, n;

	e = getpwuid_r((uid_t)w->uid, &pw, buf, sizeof(buf), &res);
	if (res != NULL && strlen(pw.pw_name) < 256 &&
	    strpbrk(pw.pw_name, "\r\n") == NULL)
		n = snprintf(answer, sizeof(answer), "ok\n%s\n", pw.pw_name);
	else
		n = snprintf(answer, sizeof(answer),
		    "error: no user name for uid %ld%s%s\n", w->uid,
		    e != 0 ? ": " : "", e != 0 ? strerror(e) : "");
	/* A client gone before the answer: nothing to do. */
	(void)send(w->fd, answer, (size_t)n, MSG_NOSIGNAL);
	close(w->fd);
	if (res != NULL)
		log_info("control command=whoami msgid=- uid=%ld pid=%ld "
			 "result=ok",
		    w->uid, w->pid);
	else
		log_info("control command=whoami msgid=- uid=%ld pid=%ld "
			 "result=error reason=\"no user name\"",
		    w->uid, w->pid);
	free(w);
	atomic_fetch_sub(&control_whoami_running, 1);
	return NULL;
}

static int
control_cmd_whoami(struct control *c, const struct control_req *r,
    struct buf *out, struct sq_err *err)
{
	struct control_whoami *w;
	pthread_attr_t         attr;
	pthread_t              t;
	int                    fd, rc;

	(void)c;
	(void)out;
	if (r->cl->facts.uid < 0)
		return sq_err_set(err, -EPERM,
		    "cannot tell who is connected (SO_PEERCRED failed)");
	if (atomic_fetch_add(&control_whoami_running, 1) >=
	    CONTROL_WHOAMI_MAX) {
		atomic_fetch_sub(&control_whoami_running, 1);
		return sq_err_set(err, -EBUSY, "busy (too many lookups)");
	}
	fd = fcntl(bufferevent_getfd(r->cl->bev), F_DUPFD_CLOEXEC, 0);
	if (fd < 0) {
		atomic_fetch_sub(&control_whoami_running, 1);
		return sq_err_set(err, -errno, "busy (dup: %s)",
		    strerror(errno));
	}
	w = xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->uid = r->cl->facts.uid;
	w->pid = r->cl->peer_pid;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	rc = pthread_create(&t, &attr, control_whoami_thread, w);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		close(fd);
		free(w);
		atomic_fetch_sub(&control_whoami_running, 1);
		return sq_err_set(err, -rc, "busy (thread: %s)", strerror(rc));
	}
	return CONTROL_ASYNC;
}

static const struct control_cmd control_cmds[] = {
	{ "status", 0, CONTROL_RIGHT_READ_ALL, control_cmd_status },
	{ "list", 0, CONTROL_RIGHT_READ, control_cmd_list },
	{ "show", 1, CONTROL_RIGHT_READ, control_cmd_show },
	{ "flush", 0, CONTROL_RIGHT_ADMIN, control_cmd_flush },
	{ "retry", 1, CONTROL_RIGHT_ADMIN, control_cmd_id },
	{ "hold", 1, CONTROL_RIGHT_ADMIN, control_cmd_id },
	{ "release", 1, CONTROL_RIGHT_ADMIN, control_cmd_id },
	{ "delete", 1, CONTROL_RIGHT_ADMIN, control_cmd_id },
	{ "bounce", 1, CONTROL_RIGHT_ADMIN, control_cmd_id },
	{ "reload", 0, CONTROL_RIGHT_ADMIN, control_cmd_reload },
	{ "oauth-status", CONTROL_ARG_NAME, CONTROL_RIGHT_ADMIN,
	    control_cmd_oauth_status },
	{ "select", CONTROL_ARG_SELECT, CONTROL_RIGHT_ADMIN,
	    control_cmd_select },
	{ "whoami", 0, CONTROL_RIGHT_READ, control_cmd_whoami },
};

#define CONTROL_N_CMDS (sizeof(control_cmds) / sizeof(control_cmds[0]))

static int
control_unknown(const char *name, struct sq_err *err)
{
	char   safe[64], list[256];
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
 * One line per request, with the caller: "control command=hold
 * msgid=ID uid=N pid=N result=ok", result=error or result=denied (a
 * warning) with reason="...".  reason has no '"' (the caller saw to it).
 */
static void
control_log(const struct control_client *cl, const char *name, const char *id,
    int rc, int denied, const char *reason)
{
	const char *result = denied ? "denied" : rc == 0 ? "ok" : "error";

	if (denied)
		log_warn("control command=%s msgid=%s uid=%ld pid=%ld "
			 "result=%s reason=\"%s\"",
		    name, id != NULL ? id : "-", cl->facts.uid, cl->peer_pid,
		    result, reason);
	else
		log_info("control command=%s msgid=%s uid=%ld pid=%ld "
			 "result=%s%s%s%s",
		    name, id != NULL ? id : "-", cl->facts.uid, cl->peer_pid,
		    result, rc == 0 ? "" : " reason=\"", rc == 0 ? "" : reason,
		    rc == 0 ? "" : "\"");
}

/* Split line into words and check them against the command table:
 * *cmdp gets the command (when known) and r its name, id, arguments and
 * --json/--postfix.  words (CONTROL_WORDS_MAX) keeps what r->args points
 * to.  Returns 0 or SQ_EPARSE with err. */
static int
control_parse(char *line, char **words, struct control_req *r,
    const struct control_cmd **cmdp, struct sq_err *err)
{
	const struct control_cmd *cmd = NULL;
	char                     *p, *save = NULL, safe[64];
	size_t                    n = 0, i;

	if ((p = strchr(line, '\r')) != NULL && p[1] == '\0')
		*p = '\0';
	for (p = strtok_r(line, " \t", &save); p != NULL;
	     p = strtok_r(NULL, " \t", &save)) {
		if (strcmp(p, "--json") == 0) {
			r->json = QUEUE_VIEW_JSON;
			continue;
		}
		if (strcmp(p, "--postfix") == 0) { /* list, as mailq */
			r->json = QUEUE_VIEW_POSTFIX;
			continue;
		}
		if (n == CONTROL_WORDS_MAX)
			return sq_err_set(err, SQ_EPARSE,
			    "too many arguments (usage: COMMAND [ID] "
			    "[--json])");
		words[n++] = p;
	}
	if (n == 0)
		return sq_err_set(err, SQ_EPARSE,
		    "empty request (usage: COMMAND [ID] [--json])");
	r->name = words[0];
	for (i = 0; i < CONTROL_N_CMDS; i++)
		if (strcmp(control_cmds[i].name, r->name) == 0)
			cmd = &control_cmds[i];
	if (cmd == NULL)
		return control_unknown(r->name, err);
	*cmdp = cmd;
	if (cmd->needs_id && n == 1)
		return sq_err_set(err, SQ_EPARSE, "%s needs a %s", cmd->name,
		    cmd->needs_id == CONTROL_ARG_NAME       ? "smarthost name" :
			cmd->needs_id == CONTROL_ARG_SELECT ? "selection" :
							      "queue id");
	if (cmd->needs_id == CONTROL_ARG_SELECT) {
		r->args = words + 1;
		r->n_args = n - 1;
	} else if (n > (cmd->needs_id ? 2u : 1u))
		return sq_err_set(err, SQ_EPARSE,
		    "too many arguments (usage: %s%s [--json])", cmd->name,
		    cmd->needs_id == CONTROL_ARG_NAME ? " NAME" :
			cmd->needs_id                 ? " ID" :
							"");
	if (cmd->needs_id == CONTROL_ARG_NAME) {
		if (!control_name_valid(words[1])) {
			sq_printable(safe, sizeof(safe), words[1],
			    strlen(words[1]));
			return sq_err_set(err, SQ_EPARSE,
			    "not a smarthost name: %s", safe);
		}
		r->id = words[1];
	} else if (cmd->needs_id == CONTROL_ARG_ID) {
		if (!spool_id_valid(words[1])) {
			sq_printable(safe, sizeof(safe), words[1],
			    strlen(words[1]));
			return sq_err_set(err, SQ_EPARSE, "not a queue id: %s",
			    safe);
		}
		r->id = words[1];
	}
	return 0;
}

/* Turn out into the error answer for rc and err (made one line, and
 * quotes made safe for the log's reason="..."). */
static void
control_answer_error(struct buf *out, int rc, struct sq_err *err)
{
	char *p;

	out->len = 0;
	if (err->msg[0] == '\0')
		snprintf(err->msg, sizeof(err->msg), "%s",
		    rc == SQ_ELIMIT ? "output too large" : "command failed");
	for (p = err->msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	buf_append_str(out, "error: ");
	buf_append_str(out, err->msg);
	buf_append_str(out, "\n");
	for (p = err->msg; *p != '\0'; p++)
		if (*p == '"')
			*p = '\''; /* for reason="..." below */
}

/*
 * Run the request of cl in line (NUL-terminated, LF removed) and put the
 * whole answer into out.  The right is checked after the request is
 * understood (so a typo is still a usage error) and before anything is
 * looked up (so a refusal says nothing about the message).  Returns the
 * status for the log.
 */
static int
control_run(struct control_client *cl, char *line, struct buf *out)
{
	struct control           *c = cl->c;
	struct sq_err             err = { 0 };
	struct control_req        r = { 0 };
	const struct control_cmd *cmd = NULL;
	char                     *words[CONTROL_WORDS_MAX];
	int                       rc, denied = 0;

	/* cmd is set whenever rc is 0 (the test is for the analyser). */
	if ((rc = control_parse(line, words, &r, &cmd, &err)) != 0 ||
	    cmd == NULL)
		goto answer;
	r.name = cmd->name;
	r.cl = cl;
	if (!control_right_allows(cmd->right, &cl->facts)) {
		rc = control_denied(c, cl, cmd->name, cmd->right, &err);
		denied = 1;
		goto answer;
	}
	r.uid_filter = control_right_allows(CONTROL_RIGHT_READ_ALL,
			   &cl->facts) ?
	    QUEUE_VIEW_ALL_UIDS :
	    cl->facts.uid;
	buf_append_str(out, "ok\n");
	rc = cmd->handler(c, &r, out, &err);
	if (rc == CONTROL_ASYNC) {
		out->len = 0; /* answered and logged by the handler's thread */
		return 0;
	}
answer:
	if (rc != 0)
		control_answer_error(out, rc, &err);
	control_log(cl, cmd != NULL ? cmd->name : "?", r.id, rc, denied,
	    err.msg);
	return rc;
}

static void
control_client_free(struct control_client *cl)
{
	struct control *c = cl->c;

	if (cl->committing) {
		/* The commit thread holds its message: freed when done. */
		cl->gone = 1;
		bufferevent_disable(cl->bev, EV_READ | EV_WRITE);
		return;
	}
	if (cl->prev != NULL)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next != NULL)
		cl->next->prev = cl->prev;
	c->n_clients--;
	if (cl->state == CONTROL_PENDING)
		c->n_pending--;
	if (cl->w != NULL) {
		log_info("control command=submit msgid=%s uid=%ld "
			 "result=aborted reason=\"the client went away before "
			 "the end of the message\"",
		    spool_writer_id(cl->w), cl->facts.uid);
		spool_writer_abort(cl->w);
	}
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
		log_info("control: client timed out (%s)",
		    what & BEV_EVENT_READING ? "no request line" :
					       "answer not read");
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
	/* Straight to the socket when it takes all of it (an answer is a
	 * line or a listing that nearly always fits its buffer): the
	 * submitter is answered now, not after whatever else this turn of
	 * the loop runs (for a submit, the relay of the message just
	 * committed).  The write callback, which frees the client once the
	 * output has drained, then runs deferred; otherwise (out is never
	 * empty) it runs when the rest has gone. */
	if (evbuffer_get_length(bufferevent_get_output(cl->bev)) == 0) {
		/* Nothing to send (whoami: its thread answers): just the
		 * deferred free. */
		ssize_t n = out->len == 0 ?
		    0 :
		    send(bufferevent_getfd(cl->bev), out->data, out->len,
			MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n >= 0 && (size_t)n == out->len) {
			bufferevent_trigger(cl->bev, EV_WRITE,
			    BEV_TRIG_IGNORE_WATERMARKS |
				BEV_TRIG_DEFER_CALLBACKS);
			return;
		}
		if (n > 0)
			buf_consume(out, (size_t)n);
	}
	if (evbuffer_add(bufferevent_get_output(cl->bev), out->data,
		out->len) != 0)
		log_fatalx("control: out of memory for an answer");
}

/*
 * submit (control.h): "submit ENVLEN", the envelope, "data LEN" frames,
 * "end" (framing: submit_proto.h).  The daemon names the message
 * (spool_writer_begin), writes each chunk as it arrives, takes uid and
 * arrival time from the kernel and its clock, and parks the client at
 * "end" until the group event runs: made active by the first parked
 * client, so every submit complete in this turn of the loop goes to the
 * spool's commit thread together (spool_commit_async), which
 * groups it with every other submit waiting.  Each client is answered
 * "ok ID" once its message is durable in queue/, or "error: CODE
 * REASON"; the
 * scheduler's watch on queue/ finds the message.  A client that goes
 * away before "end" has its writer aborted: nothing is left in tmp/.
 */

static void control_submit_fail(struct control_client *cl, const char *code,
    const char *fmt, ...) SQ_PRINTF(3, 4);

/* Answer "error: CODE REASON", abort the message, stop reading. */
static void
control_submit_fail(struct control_client *cl, const char *code,
    const char *fmt, ...)
{
	struct buf out;
	va_list    ap;
	char       msg[512], *p, *reason;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if (*p == '"')
			*p = '\'';
	reason = xasprintf("%s %s", code, msg);
	control_log(cl, "submit", cl->w != NULL ? spool_writer_id(cl->w) : NULL,
	    -1, strcmp(code, "5.7.1") == 0, reason);
	free(reason);
	spool_writer_abort(cl->w);
	cl->w = NULL;
	buf_init(&out, sizeof(msg) + 32);
	buf_append_str(&out, "error: ");
	buf_append_str(&out, code);
	buf_append_str(&out, " ");
	buf_append_str(&out, msg);
	buf_append_str(&out, "\n");
	control_answer(cl, &out);
	buf_fini(&out);
}

/* sp's commit thread is done with cl's message: answer. */
static void
control_on_committed(void *arg, int rc, const struct sq_err *err)
{
	struct control_client *cl = arg;
	struct control        *c = cl->c;
	struct buf             out;
	char                  *line;

	cl->committing = 0;
	if (rc != 0) {
		control_submit_fail(cl, "4.3.0", "%s (message not queued)",
		    err->msg);
	} else {
		log_info("control command=submit msgid=%s uid=%ld from=<%s> "
			 "nrcpt=%zu size=%llu result=ok",
		    cl->env->id, cl->facts.uid, cl->env->sender,
		    cl->env->n_rcpts, (unsigned long long)cl->size);
		quota_queued(&c->quota, cl->env);
		metrics_count_accepted(METRICS_PATH_SUBMIT);
		line = xasprintf("ok %s\n", cl->env->id);
		buf_init(&out, strlen(line) + 1);
		buf_append_str(&out, line);
		control_answer(cl, &out);
		buf_fini(&out);
		free(line);
	}
	if (cl->gone)
		control_client_free(cl);
}

/* Every submit complete by this turn of the loop goes to sp's commit
 * thread, which groups it with whatever else is waiting. */
static void
control_on_group(evutil_socket_t fd, short what, void *arg)
{
	struct control        *c = arg;
	struct control_client *cl;
	struct spool_writer   *w;

	(void)fd;
	(void)what;
	for (cl = c->clients; cl != NULL; cl = cl->next) {
		if (cl->state != CONTROL_PENDING || cl->committing)
			continue;
		w = cl->w;
		cl->w = NULL; /* the commit frees it */
		cl->committing = 1;
		spool_commit_async(w, cl->env, control_on_committed, cl);
	}
}

static void
control_on_spool(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;

	(void)fd;
	(void)what;
	spool_async_dispatch(c->sp);
}

int
control_admit(struct control *c, long uid, uint64_t incoming,
    struct sq_err *err)
{
	struct control_client *cl;
	uint64_t               pending = 0;
	int                    rc;

	if (c->sp != NULL && (rc = spool_space_ok(c->sp, incoming, err)) != 0)
		return rc;
	for (cl = c->clients; cl != NULL; cl = cl->next)
		if (cl->state == CONTROL_PENDING && cl->facts.uid == uid)
			pending++;
	return quota_admit(&c->quota, uid, pending, 0, incoming, err);
}

void
control_share_spool(struct control *c, struct spool *sp)
{
	if (c == NULL || sp == NULL)
		return;
	if (c->spool_ev != NULL) {
		event_free(c->spool_ev);
		c->spool_ev = NULL;
	}
	if (!c->sp_shared)
		spool_close(c->sp); /* nothing is in flight yet */
	c->sp = sp;
	c->sp_shared = 1;
}

void
control_set_guards(struct control *c, const struct quota *q,
    uint64_t min_free_space)
{
	if (c == NULL)
		return;
	if (q != NULL)
		c->quota = *q;
	if (c->sp != NULL)
		spool_set_min_free(c->sp, min_free_space);
}

/* The envelope text is complete in the input: parse, check, override
 * what only the daemon knows, and start the message. */
static void
control_submit_env(struct control_client *cl)
{
	struct control  *c = cl->c;
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct sq_err    err = { 0 };
	struct timeval   tv = { CONTROL_SUBMIT_TIMEOUT, 0 };
	char            *text;

	if (evbuffer_get_length(in) < cl->body_len)
		return; /* wait for the rest */
	text = xmalloc(cl->body_len + 1);
	evbuffer_remove(in, text, cl->body_len);
	text[cl->body_len] = '\0';
	if (envelope_parse(text, cl->body_len, &cl->env, &err) != 0) {
		free(text);
		cl->env = NULL;
		control_submit_fail(cl, "5.5.2", "bad envelope: %s", err.msg);
		return;
	}
	free(text);
	if (submit_proto_check_envelope(cl->env, c->max_rcpts, &err) != 0) {
		control_submit_fail(cl, "5.5.2", "bad envelope: %s", err.msg);
		return;
	}
	/* Provenance from the kernel and our clock, never the client. */
	cl->env->uid = cl->facts.uid;
	cl->env->created = (int64_t)time(NULL);
	cl->env->id[0] = '\0';
	/* The guards on new mail (free-space reserve, per-uid limits), for
	 * the uid the kernel gave. */
	if (control_admit(c, cl->facts.uid, 0, &err) != 0) {
		control_submit_fail(cl, "4.3.1", "%s (message not queued)",
		    err.msg);
		return;
	}
	if (spool_writer_begin(c->sp, &cl->w, &err) != 0) {
		cl->w = NULL;
		control_submit_fail(cl, "4.3.0", "%s (message not queued)",
		    err.msg);
		return;
	}
	msgfix_scan_init(&cl->scan, NULL);
	cl->state = CONTROL_DATA;
	/* One frame at most is buffered: a header line and its chunk
	 * (unchanged unless the envelope was larger). */
	if (cl->body_len > CONTROL_FRAME_MAX)
		bufferevent_setwatermark(cl->bev, EV_READ, 0,
		    CONTROL_FRAME_MAX);
	bufferevent_set_timeouts(cl->bev, &tv, &tv);
	control_submit_data(cl);
}

/* One data frame whose payload is in the input: write it.  0, or -1
 * after answering. */
static int
control_submit_chunk(struct control_client *cl,
    const struct submit_proto_hdr          *h)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	struct sq_err    err = { 0 };
	unsigned char   *p;

	if (cl->size + h->len > cl->c->max_size) {
		control_submit_fail(cl, "5.3.4",
		    "message too large (more than %llu bytes: [intake] "
		    "max_message_size; message not queued)",
		    (unsigned long long)cl->c->max_size);
		return -1;
	}
	p = evbuffer_pullup(in, (ssize_t)(h->hdr_len + h->len));
	if (p == NULL)
		log_fatalx("control: out of memory for a chunk");
	msgfix_scan_feed(&cl->scan, p + h->hdr_len, h->len, NULL);
	if (spool_writer_write(cl->w, p + h->hdr_len, h->len, &err) != 0) {
		control_submit_fail(cl, "4.3.0", "%s (message not queued)",
		    err.msg);
		return -1;
	}
	cl->size += h->len;
	evbuffer_drain(in, h->hdr_len + h->len);
	return 0;
}

/* Frames after the envelope: write data, park at "end". */
/*
 * The end of the message: the wire rules (msgfix.h).  A NUL byte or a
 * long line that cannot be re-encoded is refused ("5.6.0", sendq exits
 * 65); a long line in a plain body is re-encoded in the spool file
 * before the commit.  0, or -1 after answering.
 */
static int
control_submit_fix(struct control_client *cl)
{
	struct sq_err err = { 0 };
	int           rc;

	msgfix_scan_end(&cl->scan, NULL);
	if ((rc = spool_writer_fix(cl->w, &cl->scan, &err)) == 0)
		return 0;
	if (rc == SQ_EPARSE)
		control_submit_fail(cl, "5.6.0", "%s (message not queued)",
		    err.msg);
	else
		control_submit_fail(cl, "4.3.0", "%s (message not queued)",
		    err.msg);
	return -1;
}

static void
control_submit_data(struct control_client *cl)
{
	struct control         *c = cl->c;
	struct evbuffer        *in = bufferevent_get_input(cl->bev);
	struct submit_proto_hdr h;
	struct sq_err           err = { 0 };
	unsigned char          *p;
	size_t                  have;
	int                     rc;

	while (cl->state == CONTROL_DATA) {
		have = evbuffer_get_length(in);
		p = evbuffer_pullup(in,
		    (ssize_t)(have < SUBMIT_PROTO_LINE_MAX ?
			    have :
			    SUBMIT_PROTO_LINE_MAX));
		if (have == 0 || p == NULL)
			return;
		rc = submit_proto_parse((const char *)p,
		    have < SUBMIT_PROTO_LINE_MAX ? have : SUBMIT_PROTO_LINE_MAX,
		    &h, &err);
		if (rc == 0)
			return; /* wait for the whole line */
		if (rc < 0 || h.type == SUBMIT_PROTO_SUBMIT) {
			control_submit_fail(cl, "5.5.2", "%s",
			    rc < 0 ? err.msg : "\"submit\" twice");
			return;
		}
		if (h.type == SUBMIT_PROTO_END) {
			evbuffer_drain(in, h.hdr_len);
			if (control_submit_fix(cl) != 0)
				return;
			bufferevent_disable(cl->bev, EV_READ);
			cl->state = CONTROL_PENDING;
			c->n_pending++;
			/* No timer: the event runs after the callbacks of
			 * this turn of the loop (every submit that ended in
			 * it), without an extra epoll_wait. */
			event_active(c->group_ev, EV_TIMEOUT, 0);
			return;
		}
		if (have < h.hdr_len + h.len)
			return; /* wait for the whole chunk */
		if (control_submit_chunk(cl, &h) != 0)
			return;
	}
}

/* "submit ENVLEN" (line NUL-terminated, LF removed). */
static void
control_submit_line(struct control_client *cl, const char *line)
{
	struct control         *c = cl->c;
	struct submit_proto_hdr h;
	struct sq_err           err = { 0 };
	char                    frame[QUEUE_VIEW_REQUEST_MAX + 2];
	size_t                  n = strlen(line);
	int                     rc;

	cl->state = CONTROL_ENV;
	/* Who may submit is decided before anything is read. */
	if (cl->facts.uid < 0) {
		control_submit_fail(cl, "4.7.0",
		    "cannot tell who is connected (SO_PEERCRED failed)");
		return;
	}
	if (!control_may_submit(cl)) {
		control_denied(c, cl, "submitting mail", CONTROL_RIGHT_SUBMIT,
		    &err);
		control_submit_fail(cl, "5.7.1", "%s", err.msg);
		return;
	}
	/* The line again with its LF, as the framing parser reads it. */
	memcpy(frame, line, n + 1);
	frame[n] = '\n';
	rc = submit_proto_parse(frame, n + 1, &h, &err);
	if (rc <= 0 || h.type != SUBMIT_PROTO_SUBMIT) {
		control_submit_fail(cl, "5.5.2", "%s",
		    rc < 0 ? err.msg :
			     "usage: submit ENVLEN, ENVLEN bytes of envelope, "
			     "then \"data LEN\" frames and \"end\"");
		return;
	}
	if (c->sp == NULL) {
		control_submit_fail(cl, "4.3.0",
		    "sendqd cannot open its spool for submissions");
		return;
	}
	cl->body_len = h.len;
	/* Room for the envelope (the read mark is one frame already). */
	if (cl->body_len > CONTROL_FRAME_MAX)
		bufferevent_setwatermark(cl->bev, EV_READ, 0, cl->body_len);
	control_submit_env(cl);
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
	struct evbuffer       *in = bufferevent_get_input(bev);
	struct buf             out;
	struct evbuffer_ptr    eol;
	char                  *line;
	size_t                 len;

	if (cl->state == CONTROL_ENV) {
		control_submit_env(cl);
		return;
	}
	if (cl->state == CONTROL_DATA) {
		control_submit_data(cl);
		return;
	}
	if (cl->state != CONTROL_LINE)
		return;
	eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) <= QUEUE_VIEW_REQUEST_MAX)
			return; /* wait for the rest of the line */
		buf_append_str(&out,
		    "error: request line longer than 1024 bytes\n");
		log_warn("control: request line too long");
	} else if ((size_t)eol.pos > QUEUE_VIEW_REQUEST_MAX) {
		buf_append_str(&out,
		    "error: request line longer than 1024 bytes\n");
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
			control_run(cl, line, &out);
		free(line);
	}
	control_answer(cl, &out);
	buf_fini(&out);
}

/* The supplementary groups of the peer (SO_PEERGROUPS, as they were at
 * connect); NULL with *n = 0 when the kernel cannot say. */
static gid_t *
control_peer_groups(struct control *c, int fd, size_t *n)
{
	socklen_t len = 64 * sizeof(gid_t);
	gid_t    *groups = NULL;
	int       tries;

	*n = 0;
	for (tries = 0; tries < 3; tries++) {
		groups = xreallocarray(groups, len / sizeof(gid_t) + 1,
		    sizeof(gid_t));
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) ==
		    0) {
			*n = len / sizeof(gid_t);
			return groups;
		}
		if (errno != ERANGE)
			break;
	}
	if (!c->warned_groups) {
		c->warned_groups = 1;
		log_warn(
		    "control: SO_PEERGROUPS: %s (only the primary group of a "
		    "client counts for admin_group and submit_groups)",
		    strerror(errno));
	}
	free(groups);
	return NULL;
}

/* Non-zero when gid is primary or among groups[0..n). */
static int
control_has_group(gid_t gid, gid_t primary, const gid_t *groups, size_t n)
{
	size_t i;

	if (gid == primary)
		return 1;
	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/* The caller's credentials, once per connection, into cl->facts. */
static void
control_client_creds(struct control *c, struct control_client *cl, int fd)
{
	static const struct control_rights none;
	const struct control_rights *r = c->rights != NULL ? c->rights : &none;
	struct ucred                 cred;
	socklen_t                    len = sizeof(cred);
	gid_t                       *groups;
	size_t                       n, i;

	memset(&cl->facts, 0, sizeof(cl->facts));
	cl->facts.uid = -1;
	cl->facts.daemon_uid = (long)c->daemon_uid;
	cl->peer_uid = -1;
	cl->peer_pid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		log_warn("control: SO_PEERCRED: %s (the client may do nothing)",
		    strerror(errno));
		return;
	}
	cl->facts.uid = cl->peer_uid = (long)cred.uid;
	cl->peer_pid = (long)cred.pid;
	cl->facts.submit_restricted = r->restricted;
	if (r->admin_name == NULL && !r->restricted)
		return; /* nothing to compare groups with */
	groups = control_peer_groups(c, fd, &n);
	cl->facts.admin_member = r->admin_name != NULL &&
	    control_has_group(r->admin_gid, cred.gid, groups, n);
	for (i = 0; i < r->n_users && !cl->facts.submit_listed; i++)
		cl->facts.submit_listed = r->users[i] == cred.uid;
	for (i = 0; i < r->n_groups && !cl->facts.submit_listed; i++)
		cl->facts.submit_listed = control_has_group(r->groups[i],
		    cred.gid, groups, n);
	free(groups);
}

/*
 * The first read, at accept.  A client connects and then writes its
 * request at once (sendq: the whole of a small submission in one
 * write), so by the time the loop accepts the connection the request is
 * usually in the socket already: read what is there and run it as the
 * read callback would.  A submission complete in that read is parked
 * (or refused) before reading was ever enabled, which saves the
 * connection its epoll_ctl ADD and DEL, a turn of the loop and the
 * FIONREAD + readv of a bufferevent read (one recv here instead); the
 * caller enables reading only when more is to come.  At most
 * CONTROL_FIRST_READ bytes, which is below one frame (the read mark).
 * 0, or -1 when the client was freed (it closed or the read failed).
 */
#define CONTROL_FIRST_READ (16 * 1024)

static int
control_first_read(struct control_client *cl, int fd)
{
	struct evbuffer *in = bufferevent_get_input(cl->bev);
	char             data[CONTROL_FIRST_READ];
	ssize_t          n;
	int              rc;

	n = recv(fd, data, sizeof(data), MSG_DONTWAIT);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0; /* not yet: the loop reads it */
	if (n <= 0) {
		control_client_free(cl); /* closed before a request */
		return -1;
	}
	/* The bufferevent keeps its input's end frozen but while it reads
	 * itself. */
	evbuffer_unfreeze(in, 0);
	rc = evbuffer_add(in, data, (size_t)n);
	evbuffer_freeze(in, 0);
	if (rc != 0)
		log_fatalx("control: out of memory for a request");
	control_on_read(cl->bev, cl);
	return 0;
}

static void
control_on_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control        *c = arg;
	struct control_client *cl;
	struct timeval         rt = { CONTROL_READ_TIMEOUT, 0 };
	struct timeval         wt = { CONTROL_WRITE_TIMEOUT, 0 };

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
	control_client_creds(c, cl, fd);
	bufferevent_setcb(cl->bev, control_on_read, NULL, control_on_event, cl);
	/* At most one submit frame: a request line (at most
	 * QUEUE_VIEW_REQUEST_MAX bytes, checked as it is read) and, for a
	 * submit, what follows it in the same write, in one read. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, CONTROL_FRAME_MAX);
	bufferevent_set_timeouts(cl->bev, &rt, &wt);
	if (control_first_read(cl, fd) != 0)
		return; /* gone, freed */
	/* More is to come (or nothing came yet): from the loop. */
	if (cl->state == CONTROL_LINE || cl->state == CONTROL_ENV ||
	    cl->state == CONTROL_DATA)
		bufferevent_enable(cl->bev, EV_READ);
}

/* Make, bind and listen on the socket.  Returns the fd or -errno. */
static int
control_bind(struct control *c, struct sq_err *err)
{
	struct sockaddr_un sun;
	struct stat        st;
	int                fd, rc;

	if (strlen(c->path) >= sizeof(sun.sun_path))
		return sq_err_set(err, -ENAMETOOLONG,
		    "control socket path too long (at most %zu bytes): %s",
		    sizeof(sun.sun_path) - 1, c->path);
	if (lstat(c->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return sq_err_set(err, -EEXIST,
			    "control socket %s: exists and is not a socket "
			    "(not removed)",
			    c->path);
		if (queue_view_daemon_up(c->path))
			return sq_err_set(err, -EADDRINUSE,
			    "control socket %s: another sendqd is listening on "
			    "it",
			    c->path);
		if (unlink(c->path) != 0 && errno != ENOENT)
			return sq_err_set(err, -errno,
			    "remove stale control socket %s: %s", c->path,
			    strerror(errno));
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		 0)) < 0)
		return sq_err_set(err, -errno, "socket: %s", strerror(errno));
	/* Everyone may connect: each request is checked (control_run).
	 * The path appears only once the socket listens (sq_listen_unix). */
	if ((rc = sq_listen_unix(fd, c->path, 0666, 128)) != 0) {
		close(fd);
		return sq_err_set(err, rc, "bind control socket %s: %s",
		    c->path, strerror(-rc));
	}
	if (lstat(c->path, &st) != 0) {
		rc = sq_err_set(err, -errno, "control socket %s: %s", c->path,
		    strerror(errno));
		unlink(c->path);
		close(fd);
		return rc;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	return fd;
}

int
control_new(struct event_base *base, const char *path, const char *spool_dir,
    const struct control_ops *ops, struct control **out, struct sq_err *err)
{
	struct control *c;
	struct sq_err   serr = { 0 };
	int             fd;

	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->daemon_uid = geteuid();
	c->path = xstrdup(path);
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
		return sq_err_set(err, -ENOMEM,
		    "control socket %s: cannot listen (libevent)", path);
	}
	c->max_size = CONTROL_SUBMIT_SIZE_DEFAULT;
	c->group_ev = event_new(base, -1, 0, control_on_group, c);
	if (c->group_ev == NULL)
		log_fatalx("control: out of memory for an event");
	if (spool_open(spool_dir, 0, &c->sp, &serr) != 0) {
		c->sp = NULL;
		log_warn("control: submit unavailable: %s", serr.msg);
	} else if ((fd = spool_async_start(c->sp, &serr)) < 0 ||
	    (c->spool_ev = event_new(base, fd, EV_READ | EV_PERSIST,
		 control_on_spool, c)) == NULL ||
	    event_add(c->spool_ev, NULL) != 0) {
		log_warn("control: submit unavailable: %s",
		    fd < 0 ? serr.msg : "no event for the commit thread");
		spool_close(c->sp);
		c->sp = NULL;
	}
	log_info("control socket=%s mode=0666", c->path);
	*out = c;
	return 0;
}

void
control_set_submit_limits(struct control *c, uint64_t max_size,
    unsigned max_rcpts)
{
	c->max_size = max_size != 0 ? max_size : CONTROL_SUBMIT_SIZE_DEFAULT;
	c->max_rcpts = max_rcpts;
}

void
control_free(struct control *c)
{
	struct stat st;

	if (c == NULL)
		return;
	/* Commits in flight are finished and answered first (a shared
	 * spool's owner has done it already). */
	if (c->sp != NULL && !c->sp_shared)
		spool_async_stop(c->sp);
	/* control_client_free() unlinks the head, so this ends; the
	 * analyzer does not follow the list update. */
	while (c->clients != NULL)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		control_client_free(c->clients);
	if (c->group_ev != NULL)
		event_free(c->group_ev);
	if (c->spool_ev != NULL)
		event_free(c->spool_ev);
	if (!c->sp_shared)
		spool_close(c->sp);
	evconnlistener_free(c->listener);
	/* Remove the file only if it is still ours (not a successor's). */
	if (lstat(c->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	control_rights_free(c->rights);
	free(c->path);
	free(c->spool_dir);
	free(c);
}

void
control_set_rights(struct control *c, struct control_rights *rights)
{
	control_rights_free(c->rights);
	c->rights = rights;
}

void
control_rights_free(struct control_rights *r)
{
	if (r == NULL)
		return;
	free(r->admin_name);
	free(r->users);
	free(r->groups);
	free(r);
}

/* "FILE:LINE: [sendq] KEY: no group named "NAME" ...", or the lookup's
 * own failure. */
static int
control_rights_unknown(const struct config *cfg,
    const struct config_accounts *a, const char *key, const char *name,
    int group, struct sq_err *err)
{
	int e = errno;

	/* getpwnam/getgrnam: NULL with errno 0, ENOENT, ESRCH, EBADF or
	 * EPERM means "no such name" (getpwnam(3)). */
	if (e != 0 && e != ENOENT && e != ESRCH && e != EBADF && e != EPERM)
		return sq_err_set(err, -e,
		    "%s:%d: [sendq] %s: cannot look up %s \"%s\": %s",
		    cfg->path, a->line, key, group ? "group" : "user", name,
		    strerror(e));
	return sq_err_set(err, SQ_ECONFIG,
	    "%s:%d: [sendq] %s: no %s named \"%s\" on this system (allowed: an "
	    "existing %s name)",
	    cfg->path, a->line, key, group ? "group" : "user", name,
	    group ? "group" : "user");
}

int
control_rights_new(const struct config *cfg, struct control_rights **out,
    struct sq_err *err)
{
	struct control_rights *r;
	struct passwd         *pw;
	struct group          *gr;
	size_t                 i;
	int                    rc;

	r = xcalloc(1, sizeof(*r));
	if (cfg->admin_group.n == 1) {
		errno = 0;
		if ((gr = getgrnam(cfg->admin_group.names[0])) == NULL) {
			rc = control_rights_unknown(cfg, &cfg->admin_group,
			    "admin_group", cfg->admin_group.names[0], 1, err);
			goto fail;
		}
		r->admin_gid = gr->gr_gid;
		r->admin_name = xstrdup(cfg->admin_group.names[0]);
	}
	r->restricted = cfg->submit_users.n > 0 || cfg->submit_groups.n > 0;
	r->users = xcalloc(cfg->submit_users.n + 1, sizeof(*r->users));
	for (i = 0; i < cfg->submit_users.n; i++) {
		errno = 0;
		if ((pw = getpwnam(cfg->submit_users.names[i])) == NULL) {
			rc = control_rights_unknown(cfg, &cfg->submit_users,
			    "submit_users", cfg->submit_users.names[i], 0, err);
			goto fail;
		}
		r->users[r->n_users++] = pw->pw_uid;
	}
	r->groups = xcalloc(cfg->submit_groups.n + 1, sizeof(*r->groups));
	for (i = 0; i < cfg->submit_groups.n; i++) {
		errno = 0;
		if ((gr = getgrnam(cfg->submit_groups.names[i])) == NULL) {
			rc = control_rights_unknown(cfg, &cfg->submit_groups,
			    "submit_groups", cfg->submit_groups.names[i], 1,
			    err);
			goto fail;
		}
		r->groups[r->n_groups++] = gr->gr_gid;
	}
	*out = r;
	return 0;
fail:
	control_rights_free(r);
	return rc;
}
