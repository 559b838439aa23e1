/*
 * queue_view.c - read-only listing of the spool (formats: queue_view.h).
 *
 * How it works: spool_list() gives the ids of queue/ in id order, which is
 * arrival order; each envelope is then read with spool_load_envelope()
 * and the body's size taken with spool_message_size() (fstatat: the
 * listing never opens a body, so the readers' group of queue/, which
 * may read envelopes only, can list it: sendq-showq, spool.h).  The
 * daemon may deliver (remove) a message between the listing and the read:
 * such a message is skipped, since it is no longer queued.  Envelopes are
 * replaced by rename, so a reader sees the old or the new one, never half.
 * Output is appended to a bounded struct buf through a small writer that
 * remembers the first failure (SQ_ELIMIT), so formatting code needs no
 * error check per field.  Nothing here writes to the spool.
 *
 * The control client (queue_view_request) is a plain blocking unix socket
 * exchange: one request line out, the answer read until the daemon closes
 * the connection, with SO_RCVTIMEO/SO_SNDTIMEO as the deadline.  The
 * submit client (queue_view_submit) is the same exchange with the
 * envelope text after the request line and only the answer's first line
 * kept; it sends with MSG_NOSIGNAL, since a daemon that is over its
 * client limit closes the connection at once.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "envelope.h"
#include "json_write.h"
#include "log.h"
#include "queue_view.h"
#include "submit_proto.h"
#include "spool.h"
#include "util.h"

#ifndef SENDQ_SHOWQ_HELPER /* CMake: where sendq-showq is installed */
#define SENDQ_SHOWQ_HELPER "/usr/sbin/sendq-showq"
#endif

/* Width of the columns before "Sender / Recipients" in the text list. */
#define QUEUE_VIEW_INDENT         60
#define QUEUE_VIEW_POSTFIX_INDENT 41 /* Postfix's recipient column */

struct queue_view_out {
	struct buf *b;
	int         rc; /* first failure, 0 while all went in */
};

struct queue_view_ids {
	char **ids;
	size_t n;
};

/* What queue_view knows about one message besides its envelope. */
struct queue_view_info {
	long long   size; /* bytes of the .msg, -1 unknown */
	const char *state;
	int64_t     now;
};

static void
queue_view_put(struct queue_view_out *o, const char *s, size_t len)
{
	if (o->rc == 0 && buf_append(o->b, s, len) != 0)
		o->rc = SQ_ELIMIT;
}

static void
queue_view_puts(struct queue_view_out *o, const char *s)
{
	queue_view_put(o, s, strlen(s));
}

static void SQ_PRINTF(2, 3)
    queue_view_printf(struct queue_view_out *o, const char *fmt, ...)
{
	va_list ap;
	char   *s;
	int     n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_fatalx("queue_view: out of memory");
	queue_view_put(o, s, (size_t)n);
	free(s);
}

/* Printable copy of s (outside text) for the text formats. */
static void
queue_view_put_safe(struct queue_view_out *o, const char *s)
{
	char  *safe;
	size_t len = strlen(s);

	safe = xmalloc(len + 1);
	sq_printable(safe, len + 1, s, len);
	queue_view_put(o, safe, len);
	free(safe);
}

/* The one JSON string escape (json_write.h). */
int
queue_view_json_string(struct buf *out, const char *s, size_t len)
{
	return json_write_string(out, s, len);
}

static void
queue_view_json_str(struct queue_view_out *o, const char *s)
{
	if (o->rc == 0 && s == NULL)
		queue_view_puts(o, "null");
	else if (o->rc == 0)
		o->rc = queue_view_json_string(o->b, s, strlen(s));
}

void
queue_view_age(char *dst, size_t dstsz, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(dst, dstsz, "%llds", secs);
	else if (secs < 7200)
		snprintf(dst, dstsz, "%lldm", secs / 60);
	else if (secs < 2 * 86400)
		snprintf(dst, dstsz, "%lldh", secs / 3600);
	else
		snprintf(dst, dstsz, "%lldd", secs / 86400);
}

void
queue_view_time(char *dst, size_t dstsz, int64_t t)
{
	struct tm tm;
	time_t    tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(dst, dstsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(dst, dstsz, "%" PRId64, t);
}

static const char *
queue_view_state(const struct envelope *env,
    int (*is_active)(void *, const char *), void *arg)
{
	if (is_active != NULL && is_active(arg, env->id))
		return "active";
	if (env->held)
		return "held";
	if (env->attempts > 0)
		return "deferred";
	return "queued";
}

/* The body's size by fstatat (the search right on queue/ is enough: a
 * reader of the listing never opens a body, which stays 0600). */
static long long
queue_view_size(struct spool *sp, const char *id)
{
	struct sq_err err = { 0 };
	uint64_t      size;

	if (spool_message_size(sp, id, &size, &err) != 0)
		return -1;
	return (long long)size;
}

/* "now", "in 5m", "on hold", "-" (being delivered). */
static void
queue_view_next(char *dst, size_t dstsz, const struct envelope *env,
    const struct queue_view_info *info)
{
	char age[32];

	if (strcmp(info->state, "held") == 0)
		snprintf(dst, dstsz, "on hold");
	else if (strcmp(info->state, "active") == 0)
		snprintf(dst, dstsz, "being delivered");
	else if (env->next_attempt <= info->now)
		snprintf(dst, dstsz, "now");
	else {
		queue_view_age(age, sizeof(age),
		    (long long)(env->next_attempt - info->now));
		snprintf(dst, dstsz, "in %s", age);
	}
}

/* The sender ("<>" when null) and a line end. */
static void
queue_view_put_sender(struct queue_view_out *o, const struct envelope *env)
{
	if (env->sender[0] == '\0')
		queue_view_puts(o, "<>");
	else
		queue_view_put_safe(o, env->sender);
	queue_view_puts(o, "\n");
}

static void
queue_view_text_entry(struct queue_view_out *o, const struct envelope *env,
    const struct queue_view_info *info)
{
	char   age[32], next[64];
	size_t i;

	queue_view_age(age, sizeof(age), (long long)(info->now - env->created));
	queue_view_printf(o, "%-31s %10lld %5s  %-8s  ", env->id, info->size,
	    age, info->state);
	queue_view_put_sender(o, env);
	for (i = 0; i < env->n_rcpts; i++) {
		queue_view_printf(o, "%*s", QUEUE_VIEW_INDENT, "");
		queue_view_put_safe(o, env->rcpts[i]);
		queue_view_puts(o, "\n");
	}
	if (env->attempts > 0 || env->next_attempt > info->now || env->held) {
		queue_view_next(next, sizeof(next), env, info);
		queue_view_printf(o, "%*sattempts %u, next attempt %s\n",
		    QUEUE_VIEW_INDENT, "", env->attempts, next);
	}
	if (env->last_error != NULL) {
		queue_view_printf(o, "%*s(", QUEUE_VIEW_INDENT, "");
		queue_view_put_safe(o, env->last_error);
		queue_view_puts(o, ")\n");
	}
	queue_view_puts(o, "\n");
}

/*
 * One message as Postfix's mailq shows it: "ID* SIZE ARRIVAL SENDER"
 * ('*' active, '!' held), the last reason "(...)", then each recipient
 * on its own line, indented; a blank line after.  The null sender is
 * MAILER-DAEMON, the arrival time local, as Postfix prints them.
 */
static void
queue_view_postfix_entry(struct queue_view_out *o, const struct envelope *env,
    const struct queue_view_info *info)
{
	char      when[32];
	struct tm tm;
	time_t    t = (time_t)env->created;
	size_t    i;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "%" PRId64, env->created);
	queue_view_printf(o, "%s%c %8lld %s  ", env->id,
	    strcmp(info->state, "active") == 0   ? '*' :
		strcmp(info->state, "held") == 0 ? '!' :
						   ' ',
	    info->size > 0 ? info->size : 0, when);
	if (env->sender[0] == '\0')
		queue_view_puts(o, "MAILER-DAEMON");
	else
		queue_view_put_safe(o, env->sender);
	queue_view_puts(o, "\n");
	if (env->last_error != NULL) {
		queue_view_printf(o, "%*s(", QUEUE_VIEW_POSTFIX_INDENT, "");
		queue_view_put_safe(o, env->last_error);
		queue_view_puts(o, ")\n");
	}
	for (i = 0; i < env->n_rcpts; i++) {
		queue_view_printf(o, "%*s", QUEUE_VIEW_POSTFIX_INDENT, "");
		queue_view_put_safe(o, env->rcpts[i]);
		queue_view_puts(o, "\n");
	}
	queue_view_puts(o, "\n");
}

/* The fields list and show share, as JSON members (no braces). */
static void
queue_view_json_fields(struct queue_view_out *o, const struct envelope *env,
    const struct queue_view_info *info)
{
	size_t i;

	queue_view_puts(o, "\"id\":");
	queue_view_json_str(o, env->id);
	queue_view_printf(o,
	    ",\"size\":%lld,\"created\":%" PRId64 ",\"age\":%" PRId64
	    ",\"state\":\"%s\",\"sender\":",
	    info->size, env->created,
	    info->now > env->created ? info->now - env->created : 0,
	    info->state);
	queue_view_json_str(o, env->sender);
	queue_view_puts(o, ",\"recipients\":[");
	for (i = 0; i < env->n_rcpts; i++) {
		if (i > 0)
			queue_view_puts(o, ",");
		queue_view_json_str(o, env->rcpts[i]);
	}
	queue_view_printf(o,
	    "],\"attempts\":%u,\"next_attempt\":%" PRId64 ",\"last_error\":",
	    env->attempts, env->next_attempt);
	queue_view_json_str(o, env->last_error);
}

static void
queue_view_collect(const char *id, void *arg)
{
	struct queue_view_ids *l = arg;

	l->ids = xreallocarray(l->ids, l->n + 1, sizeof(*l->ids));
	l->ids[l->n++] = xstrdup(id);
}

int
queue_view_list(const char *spool_dir, long uid_filter, int json,
    int (*is_active)(void *, const char *), void *arg, struct buf *out,
    struct sq_err *err)
{
	struct spool *sp;
	int           rc;

	if ((rc = spool_open_queue(spool_dir, &sp, err)) != 0)
		return rc;
	rc = queue_view_list_spool(sp, uid_filter, json, is_active, arg, out,
	    err);
	spool_close(sp);
	return rc;
}

int
queue_view_list_spool(struct spool *sp, long uid_filter, int json,
    int (*is_active)(void *, const char *), void *arg, struct buf *out,
    struct sq_err *err)
{
	struct queue_view_out  o = { out, 0 };
	struct queue_view_ids  l = { 0 };
	struct queue_view_info info;
	struct envelope       *env;
	struct sq_err          lerr = { 0 };
	long long              total = 0;
	size_t                 i, shown = 0;
	int                    rc;

	if ((rc = spool_list(sp, queue_view_collect, &l, err)) < 0)
		return rc;
	info.now = (int64_t)time(NULL);
	if (json == QUEUE_VIEW_JSON)
		queue_view_puts(&o, "[");
	for (i = 0; i < l.n; i++) {
		if (o.rc != 0 ||
		    spool_load_envelope(sp, l.ids[i], &env, &lerr) != 0)
			continue; /* gone meanwhile, or unreadable */
		if (uid_filter != QUEUE_VIEW_ALL_UIDS &&
		    env->uid != uid_filter) {
			envelope_free(env);
			continue; /* another user's */
		}
		info.size = queue_view_size(sp, env->id);
		info.state = queue_view_state(env, is_active, arg);
		if (json == QUEUE_VIEW_POSTFIX) {
			if (shown == 0)
				queue_view_puts(&o,
				    "-Queue ID-  --Size-- ----Arrival Time---- "
				    "-Sender/Recipient-------\n");
			queue_view_postfix_entry(&o, env, &info);
		} else if (json) {
			queue_view_puts(&o, shown > 0 ? ",\n{" : "\n{");
			queue_view_json_fields(&o, env, &info);
			queue_view_puts(&o, "}");
		} else {
			if (shown == 0)
				queue_view_printf(&o,
				    "%-31s %10s %5s  %-8s  %s\n", "Queue ID",
				    "Size", "Age", "State",
				    "Sender / Recipients");
			queue_view_text_entry(&o, env, &info);
		}
		if (info.size > 0)
			total += info.size;
		shown++;
		envelope_free(env);
	}
	if (json == QUEUE_VIEW_POSTFIX && shown > 0)
		queue_view_printf(&o, "-- %lld Kbytes in %zu Request%s.\n",
		    (total + 1023) / 1024, shown, shown == 1 ? "" : "s");
	else if (json == QUEUE_VIEW_JSON)
		queue_view_puts(&o, shown > 0 ? "\n]\n" : "]\n");
	else if (shown == 0)
		queue_view_puts(&o, "Mail queue is empty\n");
	else
		queue_view_printf(&o, "-- %lld KiB in %zu message%s.\n",
		    (total + 1023) / 1024, shown, shown == 1 ? "" : "s");
	for (i = 0; i < l.n; i++)
		free(l.ids[i]);
	free(l.ids);
	if (o.rc != 0)
		return sq_err_set(err, o.rc,
		    "queue listing larger than %zu bytes", out->max);
	return 0;
}

/* Read the header block of message id (up to the first empty line, at
 * most QUEUE_VIEW_HEADER_MAX bytes) into hdr; *truncated when cut. */
static int
queue_view_read_header(struct spool *sp, const char *id, struct buf *hdr,
    int *truncated, struct sq_err *err)
{
	char    chunk[4096];
	size_t  i;
	ssize_t r;
	int     fd, bol = 1;

	*truncated = 0;
	if ((fd = spool_open_message(sp, id, err)) < 0)
		return fd;
	for (;;) {
		r = sq_read(fd, chunk, sizeof(chunk));
		if (r < 0) {
			r = -errno;
			close(fd);
			return sq_err_set(err, (int)r, "read message %s: %s",
			    id, strerror((int)-r));
		}
		if (r == 0)
			break;
		for (i = 0; i < (size_t)r; i++) {
			if (bol && chunk[i] == '\n')
				break; /* the empty line ends the header */
			/* A CR at the start of a line may begin "\r\n". */
			bol = chunk[i] == '\n' || (bol && chunk[i] == '\r');
		}
		if (buf_append(hdr, chunk, i) != 0) {
			buf_append(hdr, chunk, buf_room(hdr));
			*truncated = 1;
			break;
		}
		if (i < (size_t)r) {
			/* Drop the CR of an empty "\r\n" line. */
			if (hdr->len > 0 && hdr->data[hdr->len - 1] == '\r' &&
			    (hdr->len == 1 || hdr->data[hdr->len - 2] == '\n'))
				hdr->len--;
			break;
		}
	}
	close(fd);
	return 0;
}

/* The header block for the text format: CR before LF dropped, control
 * bytes other than LF and TAB and every non-ASCII byte shown as '?'. */
static void
queue_view_put_header_text(struct queue_view_out *o, const struct buf *hdr)
{
	char         *s;
	size_t        i, n = 0;
	unsigned char c;

	s = xmalloc(hdr->len + 1);
	for (i = 0; i < hdr->len; i++) {
		c = (unsigned char)hdr->data[i];
		if (c == '\r' && i + 1 < hdr->len && hdr->data[i + 1] == '\n')
			continue;
		s[n++] = c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f) ?
		    (char)c :
		    '?';
	}
	queue_view_put(o, s, n);
	if (n > 0 && s[n - 1] != '\n')
		queue_view_puts(o, "\n");
	free(s);
}

/* show's one answer for "not yours", "missing" and "unreadable" when
 * a uid filter applies. */
static int
queue_view_not_found(const char *id, struct sq_err *err)
{
	return sq_err_set(err, SQ_ENOTFOUND, "no message %s", id);
}

/* show's JSON object. */
static void
queue_view_show_json(struct queue_view_out *o, const struct envelope *env,
    const struct queue_view_info *info, const struct buf *hdr, int truncated)
{
	queue_view_puts(o, "{");
	queue_view_json_fields(o, env, info);
	queue_view_printf(o,
	    ",\"uid\":%ld,\"body_8bit\":%s,\"held\":%s,\"warned\":%s,\"headers_"
	    "truncated\":%s,\"headers\":",
	    env->uid, env->body_8bit ? "true" : "false",
	    env->held ? "true" : "false", env->warned ? "true" : "false",
	    truncated ? "true" : "false");
	if (o->rc == 0)
		o->rc = queue_view_json_string(o->b, hdr->data, hdr->len);
	queue_view_puts(o, "}\n");
}

/* show's text: one "key: value" line per envelope item, then the
 * header block. */
static void
queue_view_show_text(struct queue_view_out *o, const struct envelope *env,
    const struct queue_view_info *info, const struct buf *hdr, int truncated)
{
	char   created[64], next[64], nextat[64], age[32];
	size_t i;

	queue_view_time(created, sizeof(created), env->created);
	queue_view_age(age, sizeof(age), (long long)(info->now - env->created));
	queue_view_next(next, sizeof(next), env, info);
	queue_view_printf(o,
	    "id:           %s\nstate:        %s\nsize:         %lld\ncreated:  "
	    "    %s (%s ago)\nsender:       ",
	    env->id, info->state, info->size, created, age);
	queue_view_put_sender(o, env);
	for (i = 0; i < env->n_rcpts; i++) {
		queue_view_puts(o, "recipient:    ");
		queue_view_put_safe(o, env->rcpts[i]);
		queue_view_puts(o, "\n");
	}
	queue_view_printf(o, "uid:          %ld\nattempts:     %u\n", env->uid,
	    env->attempts);
	if (env->next_attempt > 0) {
		queue_view_time(nextat, sizeof(nextat), env->next_attempt);
		queue_view_printf(o, "next attempt: %s (%s)\n", nextat, next);
	} else
		queue_view_printf(o, "next attempt: %s\n", next);
	if (env->last_error != NULL) {
		queue_view_puts(o, "last error:   ");
		queue_view_put_safe(o, env->last_error);
		queue_view_puts(o, "\n");
	}
	queue_view_printf(o,
	    "body:         %s\nheld:         %s\nwarned:       %s\n\n",
	    env->body_8bit ? "8bit" : "7bit", env->held ? "yes" : "no",
	    env->warned ? "yes" : "no");
	queue_view_put_header_text(o, hdr);
	if (truncated)
		queue_view_printf(o,
		    "[header longer than %d bytes: truncated]\n",
		    QUEUE_VIEW_HEADER_MAX);
}

int
queue_view_show(const char *spool_dir, const char *id, long uid_filter,
    int json, int (*is_active)(void *, const char *), void *arg,
    struct buf *out, struct sq_err *err)
{
	struct spool *sp;
	int           rc;

	if (!spool_id_valid(id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, id);
	if ((rc = spool_open_queue(spool_dir, &sp, err)) != 0) {
		if (rc == -ENOENT)
			rc = sq_err_set(err, SQ_ENOTFOUND,
			    "no message %s (no spool at %s)", id, spool_dir);
		return rc;
	}
	rc = queue_view_show_spool(sp, id, uid_filter, json, is_active, arg,
	    out, err);
	spool_close(sp);
	return rc;
}

int
queue_view_show_spool(struct spool *sp, const char *id, long uid_filter,
    int json, int (*is_active)(void *, const char *), void *arg,
    struct buf *out, struct sq_err *err)
{
	struct queue_view_out  o = { out, 0 };
	struct queue_view_info info;
	struct envelope       *env = NULL;
	struct buf             hdr;
	int                    rc, truncated = 0;

	if (!spool_id_valid(id))
		return sq_err_set(err, SQ_ENOTFOUND,
		    "no message %.*s (not a queue id)", 40, id);
	buf_init(&hdr, QUEUE_VIEW_HEADER_MAX);
	rc = spool_load_envelope(sp, id, &env, err);
	if (uid_filter != QUEUE_VIEW_ALL_UIDS &&
	    (rc != 0 || env->uid != uid_filter)) {
		rc = queue_view_not_found(id, err);
		goto done;
	}
	if (rc != 0)
		goto done;
	info.now = (int64_t)time(NULL);
	info.size = queue_view_size(sp, id);
	info.state = queue_view_state(env, is_active, arg);
	if ((rc = queue_view_read_header(sp, id, &hdr, &truncated, err)) != 0) {
		if (uid_filter != QUEUE_VIEW_ALL_UIDS)
			rc = queue_view_not_found(id, err);
		else if (rc == -ENOENT)
			rc = sq_err_set(err, SQ_ENOTFOUND,
			    "no message %s (delivered or removed meanwhile)",
			    id);
		goto done;
	}
	if (json)
		queue_view_show_json(&o, env, &info, &hdr, truncated);
	else
		queue_view_show_text(&o, env, &info, &hdr, truncated);
done:
	if (rc == 0 && o.rc != 0)
		rc = sq_err_set(err, o.rc, "output larger than %zu bytes",
		    out->max);
	envelope_free(env);
	buf_fini(&hdr);
	return rc;
}

/*
 * The client side of the control socket: connect with a receive timeout
 * (the send timeout is set only when a send would block:
 * queue_view_send_keep).  Returns the socket or a negative code with
 * err (-ENOENT and -ECONNREFUSED: no daemon listening).
 */
static int
queue_view_connect(const char *path, unsigned timeout_sec, struct sq_err *err)
{
	struct sockaddr_un sun;
	struct timeval     tv;
	int                fd, rc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return sq_err_set(err, -ENAMETOOLONG,
		    "control socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return sq_err_set(err, -errno, "socket: %s", strerror(errno));
	tv.tv_sec = (time_t)timeout_sec;
	tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		rc = -errno;
		close(fd);
		return sq_err_set(err, rc, "connect %s: %s", path,
		    strerror(-rc));
	}
	return fd;
}

/* Send all of data (never raising SIGPIPE).  What the socket buffer
 * takes goes without waiting (a request, a small submission: all of
 * it); when it is full the send timeout is set, as long as the receive
 * timeout (one setsockopt a run fewer when nothing has to wait), and the
 * rest is sent waiting.  0 or a negative code with err; fd stays open. */
static int
queue_view_send_keep(int fd, const char *data, size_t len, const char *path,
    struct sq_err *err)
{
	struct timeval tv;
	socklen_t      tvlen = sizeof(tv);
	size_t         off;
	ssize_t        r;
	int            rc, flags = MSG_NOSIGNAL | MSG_DONTWAIT;

	for (off = 0; off < len; off += (size_t)r) {
		r = send(fd, data + off, len - off, flags);
		if (r < 0 && errno == EINTR) {
			r = 0;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    (flags & MSG_DONTWAIT)) {
			if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
				&tvlen) != 0 ||
			    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
				sizeof(tv)) != 0) {
				rc = -errno;
				return sq_err_set(err, rc,
				    "write to %s: timeout: %s", path,
				    strerror(-rc));
			}
			flags = MSG_NOSIGNAL;
			r = 0;
			continue;
		}
		if (r < 0) {
			rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
			return sq_err_set(err, rc, "write to %s: %s", path,
			    strerror(-rc));
		}
	}
	return 0;
}

/* The same, and fd is closed on failure. */
static int
queue_view_send_all(int fd, const char *data, size_t len, const char *path,
    struct sq_err *err)
{
	int rc;

	if ((rc = queue_view_send_keep(fd, data, len, path, err)) != 0)
		close(fd);
	return rc;
}

/* Read up to len bytes: the count (0 at the end), or a negative code
 * with err after closing fd (a receive timeout is "no answer"). */
static ssize_t
queue_view_recv(int fd, char *buf, size_t len, const char *path,
    unsigned timeout_sec, struct sq_err *err)
{
	ssize_t r;
	int     rc;

	if ((r = sq_read(fd, buf, len)) >= 0)
		return r;
	rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
	close(fd);
	if (rc == -ETIMEDOUT)
		return sq_err_set(err, rc,
		    "no answer from sendqd on %s within %u s", path,
		    timeout_sec);
	return sq_err_set(err, rc, "read from %s: %s", path, strerror(-rc));
}

long
queue_view_own_filter(const char *spool_dir)
{
	struct stat st;
	uid_t       uid = getuid();

	if (uid == 0 || (stat(spool_dir, &st) == 0 && st.st_uid == uid))
		return QUEUE_VIEW_ALL_UIDS;
	return (long)uid;
}

int
queue_view_daemon_up(const char *path)
{
	int fd;

	if ((fd = queue_view_connect(path, 5, NULL)) < 0)
		return 0;
	close(fd);
	return 1;
}

int
queue_view_request(const char *path, const char *request, unsigned timeout_sec,
    struct buf *out, struct sq_err *err)
{
	char    chunk[16384], *line;
	size_t  len;
	ssize_t r;
	int     fd, rc;

	len = strlen(request);
	if (len > QUEUE_VIEW_REQUEST_MAX || memchr(request, '\n', len))
		return sq_err_set(err, SQ_ELIMIT,
		    "control request too long or not one line");
	if ((fd = queue_view_connect(path, timeout_sec, err)) < 0)
		return fd;
	line = xasprintf("%s\n", request);
	rc = queue_view_send_all(fd, line, len + 1, path, err);
	free(line);
	if (rc != 0)
		return rc;
	while ((r = queue_view_recv(fd, chunk, sizeof(chunk), path, timeout_sec,
		    err)) > 0)
		if (buf_append(out, chunk, (size_t)r) != 0) {
			close(fd);
			return sq_err_set(err, SQ_ELIMIT,
			    "answer from %s larger than %zu bytes", path,
			    out->max);
		}
	if (r < 0)
		return (int)r;
	close(fd);
	if (out->len == 0)
		return sq_err_set(err, -EPIPE,
		    "sendqd closed %s without an answer", path);
	return 0;
}

/* Read the first answer line into answer (NUL-terminated, LF removed).
 * 0, or a negative code with err; fd is closed in every case. */
static int
queue_view_answer(int fd, const char *path, unsigned timeout_sec, char *answer,
    size_t answer_sz, struct sq_err *err)
{
	size_t  got = 0;
	ssize_t r;
	char   *nl;

	while (got < answer_sz - 1) {
		r = queue_view_recv(fd, answer + got, answer_sz - 1 - got, path,
		    timeout_sec, err);
		if (r < 0)
			return (int)r;
		if (r == 0)
			break;
		got += (size_t)r;
		if (memchr(answer, '\n', got) != NULL)
			break;
	}
	close(fd);
	answer[got] = '\0';
	if ((nl = memchr(answer, '\n', got)) == NULL)
		return sq_err_set(err, -EPIPE,
		    "sendqd closed %s without an answer", path);
	*nl = '\0';
	return 0;
}

/* Append one frame (its header line and payload) to out, and send out
 * once it holds a chunk's worth or more (or when flush is set): a
 * small message goes in one write, so that sendqd reads it in one turn
 * of its loop instead of one per frame.  0 or a negative code with err;
 * fd stays open. */
static int
queue_view_frame(int fd, struct buf *out, enum submit_proto_frame type,
    const char *data, size_t len, int flush, const char *path,
    struct sq_err *err)
{
	char hdr[SUBMIT_PROTO_LINE_MAX];
	int  n, rc;

	if ((n = submit_proto_format(hdr, sizeof(hdr), type, len)) < 0)
		return sq_err_set(err, n,
		    "submit frame of %zu bytes out of range", len);
	if (buf_append(out, hdr, (size_t)n) != 0 ||
	    (len > 0 && buf_append(out, data, len) != 0))
		return sq_err_set(err, -ENOMEM, "out of memory");
	if (!flush && out->len < SUBMIT_PROTO_CHUNK_MAX)
		return 0;
	rc = queue_view_send_keep(fd, out->data, out->len, path, err);
	buf_consume(out, out->len);
	return rc;
}

int
queue_view_submit(const char *path, const char *env_text, size_t env_len,
    const char *msg, size_t msg_len, unsigned timeout_sec, char *answer,
    size_t answer_sz, int *sent_end, struct sq_err *err)
{
	struct buf out;
	size_t     off, n;
	int        fd, rc, arc;

	*sent_end = 0;
	if (answer_sz < 2)
		return sq_err_set(err, SQ_ELIMIT, "answer buffer too small");
	if ((fd = queue_view_connect(path, timeout_sec, err)) < 0)
		return fd;
	/* The envelope, then at most a chunk and a frame more before it
	 * is sent. */
	buf_init(&out,
	    env_len + 2 * (SUBMIT_PROTO_CHUNK_MAX + SUBMIT_PROTO_LINE_MAX));
	rc = queue_view_frame(fd, &out, SUBMIT_PROTO_SUBMIT, env_text, env_len,
	    0, path, err);
	for (off = 0; rc == 0 && off < msg_len; off += n) {
		n = msg_len - off < SUBMIT_PROTO_CHUNK_MAX ?
		    msg_len - off :
		    SUBMIT_PROTO_CHUNK_MAX;
		rc = queue_view_frame(fd, &out, SUBMIT_PROTO_DATA, msg + off, n,
		    0, path, err);
	}
	if (rc == 0 &&
	    (rc = queue_view_frame(fd, &out, SUBMIT_PROTO_END, NULL, 0, 1, path,
		 err)) == 0)
		*sent_end = 1;
	buf_fini(&out);
	if (rc != 0 && rc != -EPIPE && rc != -ECONNRESET) {
		close(fd);
		return rc;
	}
	/* After a failed write too: sendqd may have refused the message
	 * and closed, and its answer says why. */
	if ((arc = queue_view_answer(fd, path, timeout_sec, answer, answer_sz,
		 err)) == 0)
		return 0;
	return rc != 0 ? rc : arc;
}

const char *
queue_view_showq_path(void)
{
	const char *p = getenv("SENDQ_SHOWQ_HELPER");

	return p != NULL && p[0] == '/' ? p : SENDQ_SHOWQ_HELPER;
}

/* Read fd to its end into out; past out's max the rest is read and
 * dropped (*full set), so that the writer never blocks.  0 or -errno. */
static int
queue_view_drain(int fd, struct buf *out, int *full)
{
	char    chunk[16384];
	ssize_t n;

	while ((n = sq_read(fd, chunk, sizeof(chunk))) > 0)
		if (!*full && buf_append(out, chunk, (size_t)n) != 0)
			*full = 1;
	return n < 0 ? -errno : 0;
}

int
queue_view_showq(int json, struct buf *out, int *exit_code, struct sq_err *err)
{
	const char *path = queue_view_showq_path();
	char       *argv[] = { (char *)"sendq-showq", (char *)"--json", NULL };
	char *const envp[] = { NULL };
	int         pfd[2], status, rc, full = 0;
	pid_t       pid;

	if (json == QUEUE_VIEW_POSTFIX)
		argv[1] = (char *)"--postfix";
	else if (!json)
		argv[1] = NULL;
	/* Said once, by the caller, in its own one-line message. */
	if (access(path, X_OK) != 0)
		return sq_err_set(err, -ENOENT,
		    "cannot run the queue lister %s", path);
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return sq_err_set(err, -errno, "pipe: %s", strerror(errno));
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0) {
		rc = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return sq_err_set(err, rc, "fork: %s", strerror(-rc));
	}
	if (pid == 0) {
		if (dup2(pfd[1], STDOUT_FILENO) < 0)
			_exit(127);
		execve(path, argv, envp);
		_exit(127); /* reported by the parent (exit 127) */
	}
	close(pfd[1]);
	rc = queue_view_drain(pfd[0], out, &full);
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return sq_err_set(err, -errno, "waitpid: %s",
			    strerror(errno));
	if (!WIFEXITED(status))
		return sq_err_set(err, -EIO,
		    "the queue lister %s was killed by signal %d", path,
		    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	if (rc != 0)
		return sq_err_set(err, rc, "read from the queue lister %s: %s",
		    path, strerror(-rc));
	if (full)
		return sq_err_set(err, SQ_ELIMIT,
		    "queue listing larger than %zu bytes", out->max);
	*exit_code = WEXITSTATUS(status);
	if (*exit_code == 127)
		return sq_err_set(err, -ENOENT,
		    "cannot run the queue lister %s", path);
	return 0;
}
