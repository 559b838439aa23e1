/*
 * sendq.c - the sendmail-compatible injector: `sendq`, also answering as
 * `sendmail` and (listing the queue) as `mailq`.
 *
 * How it works: options are parsed sendmail-style (clustered flags, option
 * arguments attached or separate, the usual compatibility options accepted
 * and ignored).  The message comes on standard input.  Only its header
 * block is buffered (at most MAILMSG_HEADER_MAX bytes), line by line,
 * until the first blank line or the first line that is not a header line;
 * the body is then streamed to the spool writer.  Unless -i/-oi is given a
 * line holding a lone "." ends the message, as with sendmail.  With -t the
 * addresses of To/Cc/Bcc are added to those of the command line.  Bcc
 * fields are never stored.  Missing Date, From and Message-ID fields are
 * added at the top of the header; when the header block does not end with
 * a blank line but a body follows, a blank line is inserted.  Everything
 * else is stored byte-exact: line endings are left as they came (the
 * daemon normalises them on the wire).
 *
 * The message is written into the spool's tmp/ through spool.h's writer.
 * When sendqd runs, the file is handed over on the control socket
 * ("submit ID LEN" plus the envelope, control.h) and sendqd commits it
 * together with whatever else arrived at the same time (one syncfs and
 * one directory fsync for the whole group); we keep the file locked until
 * sendqd answers.  When sendqd is not running, cannot be reached (the
 * socket is for root and the sendq group) or goes away without an answer,
 * the message is committed here as before (tmp/, fsync, rename into
 * queue/, fsync); sendqd sees it through its watch on queue/.  If sendqd
 * answers with an error, that error is printed and the exit is 75.  Exit
 * 0 means the message is on stable storage.  On any failure the writer is aborted, so nothing is left in
 * tmp/.  Exit codes are sysexits.h: 64 usage, 65 bad address or data, 67
 * unknown user, 74 input error, 75 cannot queue now, 78 configuration.
 *
 * mailq / -bp print queue_view's listing: asked from sendqd over the
 * control socket when it runs (so messages being delivered show as
 * active), else read from the spool directly.  -q asks sendqd to flush
 * the queue (control "flush"); without a running daemon it exits 75.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "control.h"
#include "envelope.h"
#include "log.h"
#include "mailmsg.h"
#include "queue_view.h"
#include "spool.h"
#include "util.h"

#define SENDQ_READ_CHUNK	(64 * 1024)
#define SENDQ_SUBMIT_TIMEOUT	60	/* seconds for sendqd's answer */

struct sendq_opts {
	int		 extract;	/* -t */
	int		 ignore_dots;	/* -i, -oi */
	int		 verbose;	/* -v */
	int		 list;		/* -bp, or called as mailq */
	int		 flush;		/* -q */
	int		 help;
	int		 version;
	const char	*sender;	/* -f, -r */
	const char	*fullname;	/* -F */
	const char	*config_path;	/* -C */
	char		**rcpts;	/* recipient arguments */
	int		 n_rcpts;
};

struct sendq_in {
	int	 fd;
	char	 buf[SENDQ_READ_CHUNK];
	size_t	 pos;
	size_t	 len;
	int	 eof;
};

/* Body streaming states for the lone-dot rule. */
enum sendq_dot {
	SENDQ_DOT_BOL,		/* at the start of a line */
	SENDQ_DOT_MID,		/* inside a line */
	SENDQ_DOT_DOT,		/* "." held at the start of a line */
	SENDQ_DOT_DOTCR,	/* ".\r" held at the start of a line */
	SENDQ_DOT_END,		/* a lone dot was seen: message ends */
};

static void
sendq_usage(FILE *fp)
{
	fprintf(fp,
"usage: sendq [options] [--] [recipient ...]   (message on standard input)\n"
"       mailq | sendq -bp                      (list the queue)\n"
"       sendq -q                               (try every message now)\n"
"\n"
"  -t            add the recipients of the To, Cc and Bcc fields (Bcc is\n"
"                removed from the message in any case)\n"
"  -f ADDR, -r ADDR\n"
"                envelope sender (\"<>\" or \"\" for the null sender);\n"
"                default: your login name @ the configured host name\n"
"  -F NAME       full name for the From field added when there is none\n"
"  -i, -oi       a line with a lone \".\" does not end the message\n"
"  -C FILE       configuration file (default " CONFIG_DEFAULT_PATH ")\n"
"  -bm           read a message and queue it (the default)\n"
"  -bp           list the queue (same as mailq)\n"
"  -q            ask sendqd to try every queued message now (exit 75 when\n"
"                sendqd is not running)\n"
"  -v            print the queue id of the queued message\n"
"  -h, --help    this text\n"
"  -V, --version print the version\n"
"\n"
"Accepted and ignored for compatibility: -oX... (-oem, -oee, -odi, -odb,\n"
"-om, ...), -B TYPE, -N DSN, -R RET, -X FILE, -O OPT=VALUE, -L LABEL,\n"
"-m, -n, -G, -U.  Addresses without a domain get \"@\" and the host name.\n"
"Exit status: 0 queued, 64 usage, 65 bad address or message, 67 unknown\n"
"user, 74 input error, 75 cannot queue now (try again), 78 bad config.\n");
}

/* Returns 0, or EX_USAGE after printing why. */
static int
sendq_parse_args(int argc, char **argv, struct sendq_opts *o)
{
	const char *p, *arg;
	int i;
	char c;

	for (i = 1; i < argc; i++) {
		p = argv[i];
		if (p[0] != '-' || p[1] == '\0')
			break;
		if (strcmp(p, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(p, "--help") == 0) {
			o->help = 1;
			continue;
		}
		if (strcmp(p, "--version") == 0) {
			o->version = 1;
			continue;
		}
		if (p[1] == '-') {
			fprintf(stderr, "sendq: unknown option %s (see sendq "
			    "--help)\n", p);
			return EX_USAGE;
		}
		for (p++; *p != '\0'; p++) {
			c = *p;
			switch (c) {
			case 't':
				o->extract = 1;
				continue;
			case 'i':
				o->ignore_dots = 1;
				continue;
			case 'v':
				o->verbose = 1;
				continue;
			case 'h':
				o->help = 1;
				continue;
			case 'V':
				o->version = 1;
				continue;
			case 'm':
			case 'n':
			case 'G':
			case 'U':
				continue;
			case 'b':
				if (strcmp(p + 1, "m") == 0)
					o->list = 0;
				else if (strcmp(p + 1, "p") == 0)
					o->list = 1;
				else {
					fprintf(stderr, "sendq: unsupported "
					    "mode -b%s (only -bm and -bp)\n",
					    p + 1);
					return EX_USAGE;
				}
				goto next;
			case 'q':
				if (p[1] != '\0') {
					fprintf(stderr, "sendq: -q%s is not "
					    "supported (only -q: flush the "
					    "queue now)\n", p + 1);
					return EX_USAGE;
				}
				o->flush = 1;
				continue;
			case 'o':
				if (strcmp(p + 1, "i") == 0)
					o->ignore_dots = 1;
				goto next;
			case 'f':
			case 'r':
			case 'F':
			case 'C':
			case 'B':
			case 'N':
			case 'R':
			case 'X':
			case 'O':
			case 'L':
				if (p[1] != '\0')
					arg = p + 1;
				else if (i + 1 < argc)
					arg = argv[++i];
				else {
					fprintf(stderr, "sendq: option -%c "
					    "needs an argument (see sendq "
					    "--help)\n", c);
					return EX_USAGE;
				}
				if (c == 'f' || c == 'r')
					o->sender = arg;
				else if (c == 'F')
					o->fullname = arg;
				else if (c == 'C')
					o->config_path = arg;
				goto next;
			default:
				if ((unsigned char)c < 0x20 ||
				    (unsigned char)c >= 0x7f)
					c = '?';
				fprintf(stderr, "sendq: unknown option -%c "
				    "(see sendq --help)\n", c);
				return EX_USAGE;
			}
		}
next:
		;
	}
	o->rcpts = argv + i;
	o->n_rcpts = argc - i;
	return 0;
}

/* True when addr has an "@domain" (an '@' outside a quoted local part). */
static int
sendq_has_domain(const char *addr)
{
	const char *p = addr;

	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		return *p == '"' && p[1] == '@';
	}
	return strchr(addr, '@') != NULL;
}

/* Qualify and validate; returns a new string or NULL after printing. */
static char *
sendq_address(const char *addr, const char *hostname, const char *what)
{
	struct sq_err err = { 0 };
	char *full;

	if (sendq_has_domain(addr))
		full = xstrdup(addr);
	else
		full = xasprintf("%s@%s", addr, hostname);
	if (mailmsg_addr_valid(full, 0, &err) != 0) {
		fprintf(stderr, "sendq: %s: %s\n", what, err.msg);
		free(full);
		return NULL;
	}
	return full;
}

static void
sendq_add_rcpt(struct envelope *env, char *addr)
{
	size_t i;

	for (i = 0; i < env->n_rcpts; i++)
		if (strcmp(env->rcpts[i], addr) == 0) {
			free(addr);
			return;
		}
	env->rcpts = xreallocarray(env->rcpts, env->n_rcpts + 1,
	    sizeof(*env->rcpts));
	env->rcpts[env->n_rcpts++] = addr;
}

/* Parse an address list and add its qualified, valid addresses to env.
 * Returns 0 or EX_DATAERR after printing. */
static int
sendq_add_list(struct envelope *env, const char *s, size_t len,
    const char *hostname, const char *what)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err err = { 0 };
	size_t i;
	char *addr;
	int rc = 0;

	if (mailmsg_addr_list_parse(&l, s, len, &err) != 0) {
		fprintf(stderr, "sendq: %s: %s\n", what, err.msg);
		return EX_DATAERR;
	}
	for (i = 0; i < l.n; i++) {
		if ((addr = sendq_address(l.addrs[i], hostname, what)) ==
		    NULL) {
			rc = EX_DATAERR;
			break;
		}
		sendq_add_rcpt(env, addr);
	}
	mailmsg_addr_list_fini(&l);
	return rc;
}

/* The envelope sender from -f/-r: "" for <>.  NULL after printing. */
static char *
sendq_sender_arg(const char *arg, const char *hostname)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err err = { 0 };
	char *addr;

	if (strcmp(arg, "") == 0 || strcmp(arg, "<>") == 0)
		return xstrdup("");
	if (mailmsg_addr_list_parse(&l, arg, strlen(arg), &err) != 0) {
		fprintf(stderr, "sendq: sender: %s\n", err.msg);
		return NULL;
	}
	if (l.n != 1) {
		fprintf(stderr, "sendq: sender: need exactly one address, "
		    "got %zu\n", l.n);
		mailmsg_addr_list_fini(&l);
		return NULL;
	}
	addr = sendq_address(l.addrs[0], hostname, "sender");
	mailmsg_addr_list_fini(&l);
	return addr;
}

static ssize_t
sendq_in_fill(struct sendq_in *in)
{
	ssize_t n;

	if (in->eof)
		return 0;
	do
		n = read(in->fd, in->buf, sizeof(in->buf));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		in->eof = 1;
	in->pos = 0;
	in->len = (size_t)n;
	return n;
}

/*
 * Append the next line of input (its LF included) to b, at most max
 * bytes in b.  Returns 1 (a whole line, or the last one without LF), 0 at
 * the end of the input, 2 when b is full before the line ends, -1 on a
 * read error.
 */
static int
sendq_in_line(struct sendq_in *in, struct buf *b, size_t max)
{
	const char *nl;
	size_t n;
	int got = 0;

	for (;;) {
		if (in->pos == in->len) {
			ssize_t r = sendq_in_fill(in);

			if (r < 0)
				return -1;
			if (r == 0)
				return got;
		}
		nl = memchr(in->buf + in->pos, '\n', in->len - in->pos);
		n = nl != NULL ? (size_t)(nl - (in->buf + in->pos)) + 1 :
		    in->len - in->pos;
		if (n > max - b->len)
			n = max - b->len;
		if (n == 0)
			return 2;
		if (buf_append(b, in->buf + in->pos, n) != 0)
			return 2;
		in->pos += n;
		got = 1;
		if (b->len > 0 && b->data[b->len - 1] == '\n')
			return 1;
	}
}

static int
sendq_lone_dot(const char *line, size_t len)
{
	return (len == 1 && line[0] == '.') ||
	    (len == 2 && line[0] == '.' && line[1] == '\n') ||
	    (len == 3 && line[0] == '.' && line[1] == '\r' && line[2] == '\n');
}

/* The -F full name as a display name: quoted unless it is plain words,
 * control characters dropped. */
static char *
sendq_display_name(const char *name)
{
	struct buf b;
	size_t i;
	int plain = 1;
	unsigned char c;

	for (i = 0; name[i] != '\0'; i++) {
		c = (unsigned char)name[i];
		if (!(c >= 0x80 || c == ' ' || (c >= 'a' && c <= 'z') ||
		    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL))
			plain = 0;
	}
	buf_init(&b, 4 * strlen(name) + 8);
	if (!plain)
		buf_append(&b, "\"", 1);
	for (i = 0; name[i] != '\0'; i++) {
		c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			continue;
		if (!plain && (c == '"' || c == '\\'))
			buf_append(&b, "\\", 1);
		buf_append(&b, &name[i], 1);
	}
	if (!plain)
		buf_append(&b, "\"", 1);
	buf_append(&b, "", 1);
	return b.data;
}

/* Write to the spool.  Returns 0, or EX_TEMPFAIL after printing. */
static int
sendq_write(struct spool_writer *w, const void *data, size_t len)
{
	struct sq_err err = { 0 };

	if (len == 0)
		return 0;
	if (spool_writer_write(w, data, len, &err) != 0) {
		fprintf(stderr, "sendq: %s (message not queued)\n", err.msg);
		return EX_TEMPFAIL;
	}
	return 0;
}

static int
sendq_read_failed(void)
{
	fprintf(stderr, "sendq: read standard input: %s (message not "
	    "queued)\n", strerror(errno));
	return EX_IOERR;
}

/* Stream the rest of the input to w, honouring the lone-dot rule unless
 * ignore_dots.  Returns 0 or an exit code after printing. */
static int
sendq_stream_body(struct sendq_in *in, struct spool_writer *w,
    int ignore_dots, enum sendq_dot state)
{
	char out[SENDQ_READ_CHUNK + 4];
	size_t i, o;
	ssize_t r;
	int rc;
	char c;

	for (;;) {
		if (in->pos == in->len) {
			if ((r = sendq_in_fill(in)) < 0)
				return sendq_read_failed();
			if (r == 0)
				break;
		}
		if (ignore_dots) {
			rc = sendq_write(w, in->buf + in->pos,
			    in->len - in->pos);
			in->pos = in->len;
			if (rc != 0)
				return rc;
			continue;
		}
		for (i = in->pos, o = 0; i < in->len; i++) {
			c = in->buf[i];
			switch (state) {
			case SENDQ_DOT_BOL:
				if (c == '.') {
					state = SENDQ_DOT_DOT;
					break;
				}
				out[o++] = c;
				state = c == '\n' ? SENDQ_DOT_BOL :
				    SENDQ_DOT_MID;
				break;
			case SENDQ_DOT_MID:
				out[o++] = c;
				if (c == '\n')
					state = SENDQ_DOT_BOL;
				break;
			case SENDQ_DOT_DOT:
				if (c == '\n')
					state = SENDQ_DOT_END;
				else if (c == '\r')
					state = SENDQ_DOT_DOTCR;
				else {
					out[o++] = '.';
					out[o++] = c;
					state = SENDQ_DOT_MID;
				}
				break;
			case SENDQ_DOT_DOTCR:
				if (c == '\n')
					state = SENDQ_DOT_END;
				else {
					out[o++] = '.';
					out[o++] = '\r';
					out[o++] = c;
					state = SENDQ_DOT_MID;
				}
				break;
			case SENDQ_DOT_END:
				break;
			}
			if (state == SENDQ_DOT_END)
				break;
		}
		in->pos = in->len;
		if ((rc = sendq_write(w, out, o)) != 0)
			return rc;
		if (state == SENDQ_DOT_END)
			return 0;
	}
	/* A lone "." at the very end also ends the message; ".\r" does
	 * not. */
	if (state == SENDQ_DOT_DOTCR)
		return sendq_write(w, ".\r", 2);
	return 0;
}

/* The control socket of cfg. */
static const char *
sendq_control_path(const struct config *cfg)
{
	return cfg->control_socket != NULL ? cfg->control_socket :
	    "/run/sendq/control.sock";
}

/* mailq: queue_view's listing, from sendqd if it runs, else from the
 * spool directly. */
static int
sendq_list_queue(const struct config *cfg, const char *spool_dir)
{
	struct sq_err err = { 0 };
	struct buf out;
	int rc, ex = EX_OK;

	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	if (queue_view_request(sendq_control_path(cfg), "list", 60, &out,
	    &err) == 0 && out.len >= 3 && memcmp(out.data, "ok\n", 3) == 0) {
		fwrite(out.data + 3, 1, out.len - 3, stdout);
		goto done;
	}
	out.len = 0;
	rc = queue_view_list(spool_dir, 0, NULL, NULL, &out, &err);
	if (rc == -ENOENT) {
		printf("Mail queue is empty\n");
		goto done;
	}
	fwrite(out.data, 1, out.len, stdout);
	if (rc != 0) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		ex = EX_TEMPFAIL;
	}
done:
	buf_fini(&out);
	if (fflush(stdout) != 0 && ex == EX_OK) {
		fprintf(stderr, "sendq: write to standard output: %s\n",
		    strerror(errno));
		ex = EX_IOERR;
	}
	return ex;
}

/* -q: ask sendqd to try every queued message now. */
static int
sendq_flush(const struct config *cfg, int verbose)
{
	struct sq_err err = { 0 };
	struct buf out;
	const char *path = sendq_control_path(cfg);
	char *nl;
	int rc, ex = EX_OK;

	buf_init(&out, 64 * 1024);
	rc = queue_view_request(path, "flush", 60, &out, &err);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		fprintf(stderr, "sendq: sendqd is not running (no daemon on "
		    "%s): the queue was not flushed; start it with "
		    "systemctl start sendq\n", path);
		ex = EX_TEMPFAIL;
	} else if (rc == -EACCES || rc == -EPERM) {
		fprintf(stderr, "sendq: %s (-q needs root or the sendq "
		    "group)\n", err.msg);
		ex = EX_NOPERM;
	} else if (rc != 0) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		ex = EX_TEMPFAIL;
	} else if (out.len < 3 || memcmp(out.data, "ok\n", 3) != 0) {
		buf_append(&out, "", 1);
		if ((nl = strchr(out.data, '\n')) != NULL)
			*nl = '\0';
		fprintf(stderr, "sendq: sendqd: %s\n", out.data);
		ex = EX_TEMPFAIL;
	} else if (verbose)
		fprintf(stderr, "sendq: sendqd will try every queued message "
		    "now\n");
	buf_fini(&out);
	return ex;
}

/* The default sender: login name @ hostname.  NULL after printing. */
static char *
sendq_default_sender(const char *hostname)
{
	struct passwd *pw;
	char *addr;

	if ((pw = getpwuid(getuid())) == NULL) {
		fprintf(stderr, "sendq: no user name for uid %lu; give the "
		    "sender with -f\n", (unsigned long)getuid());
		return NULL;
	}
	addr = xasprintf("%s@%s", pw->pw_name, hostname);
	if (mailmsg_addr_valid(addr, 0, NULL) != 0) {
		fprintf(stderr, "sendq: user name \"%s\" is not usable as a "
		    "sender; give the sender with -f\n", pw->pw_name);
		free(addr);
		return NULL;
	}
	return addr;
}

/*
 * Make the message in *wp durable.  With sendqd running, hand it over
 * (control submit) so that it shares the daemon's group commit; when no
 * answer comes (no daemon, no permission for its socket, or it went away)
 * commit it here with our own fsyncs.  *wp is consumed on success; on
 * failure the caller aborts what is left.  Returns 0 or EX_TEMPFAIL after
 * printing.
 */
static int
sendq_commit(struct spool_writer **wp, struct envelope *env,
    const char *control_path, int verbose)
{
	struct sq_err err = { 0 };
	char answer[512], safe[512], *text, *want;
	size_t len;
	int rc;

	if (spool_writer_prepare(*wp, env, &err) != 0) {
		fprintf(stderr, "sendq: %s (message not queued)\n", err.msg);
		return EX_TEMPFAIL;
	}
	text = envelope_format(env, &len);
	if (len <= CONTROL_SUBMIT_MAX) {
		rc = queue_view_submit(control_path, env->id, text, len,
		    SENDQ_SUBMIT_TIMEOUT, answer, sizeof(answer), &err);
	} else
		rc = sq_err_set(&err, SQ_ELIMIT, "envelope too large to hand "
		    "over");
	free(text);
	if (rc == 0) {
		want = xasprintf("ok %s", env->id);
		rc = strcmp(answer, want);
		free(want);
		if (rc == 0) {
			spool_writer_release(*wp);
			*wp = NULL;
			return 0;
		}
		sq_printable(safe, sizeof(safe), answer, strlen(answer));
		fprintf(stderr, "sendq: sendqd: %s%s\n", safe,
		    strstr(safe, "not queued") != NULL ? "" :
		    " (message not queued)");
		return EX_TEMPFAIL;
	}
	if (verbose && rc != -ENOENT && rc != -ECONNREFUSED)
		fprintf(stderr, "sendq: %s; queueing the message directly\n",
		    err.msg);
	rc = spool_writer_commit(*wp, env, &err);
	*wp = NULL;
	if (rc != 0) {
		fprintf(stderr, "sendq: %s (message not queued)\n", err.msg);
		return EX_TEMPFAIL;
	}
	return 0;
}

/* The missing Date, From and Message-ID fields. */
static char *
sendq_added_fields(const struct mailmsg_header *h, const char *hdr,
    const struct envelope *env, const struct sendq_opts *o,
    const char *id, const char *hostname, const char *eol)
{
	struct buf b;
	char datebuf[64], *from = NULL, *name, *field;
	time_t now;
	struct tm tm;

	buf_init(&b, 64 * 1024);
	if (mailmsg_find(h, hdr, "date", 0) < 0) {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(datebuf, sizeof(datebuf), "%a, %d %b %Y %H:%M:%S %z",
		    &tm);
		field = xasprintf("Date: %s%s", datebuf, eol);
		buf_append_str(&b, field);
		free(field);
	}
	if (mailmsg_find(h, hdr, "from", 0) < 0) {
		from = env->sender[0] != '\0' ? xstrdup(env->sender) :
		    xasprintf("MAILER-DAEMON@%s", hostname);
		if (o->fullname != NULL) {
			name = sendq_display_name(o->fullname);
			field = xasprintf("From: %s <%s>%s", name, from, eol);
			free(name);
		} else
			field = xasprintf("From: %s%s", from, eol);
		buf_append_str(&b, field);
		free(field);
		free(from);
	}
	if (mailmsg_find(h, hdr, "message-id", 0) < 0) {
		field = xasprintf("Message-ID: <%s@%s>%s", id, hostname, eol);
		buf_append_str(&b, field);
		free(field);
	}
	buf_append(&b, "", 1);
	return b.data;
}

/* Read, check and queue one message.  Returns the exit code. */
static int
sendq_submit(const struct sendq_opts *o, const char *spool_dir,
    const char *control_path, const char *hostname)
{
	struct sq_err err = { 0 };
	struct sendq_in *in;
	struct buf hdr, line;
	struct mailmsg_header h;
	struct envelope *env;
	struct spool *sp = NULL;
	struct spool_writer *w = NULL;
	enum sendq_dot state = SENDQ_DOT_BOL;
	static const char *const rcpt_fields[] = { "to", "cc", "bcc" };
	char *prefix, *what;
	const char *eol;
	size_t i;
	int rc, lrc, ended = 0, body_line = 0;
	long fi;

	in = xcalloc(1, sizeof(*in));
	in->fd = STDIN_FILENO;
	buf_init(&hdr, MAILMSG_HEADER_MAX);
	buf_init(&line, MAILMSG_HEADER_MAX);
	memset(&h, 0, sizeof(h));

	/* The envelope, from the command line. */
	env = envelope_new();
	env->created = (int64_t)time(NULL);
	env->uid = (long)getuid();
	free(env->sender);
	env->sender = o->sender != NULL ?
	    sendq_sender_arg(o->sender, hostname) :
	    sendq_default_sender(hostname);
	if (env->sender == NULL) {
		env->sender = xstrdup("");
		rc = o->sender != NULL ? EX_DATAERR : EX_NOUSER;
		goto out;
	}
	for (i = 0; i < (size_t)o->n_rcpts; i++) {
		what = xstrdup("recipient");
		rc = sendq_add_list(env, o->rcpts[i], strlen(o->rcpts[i]),
		    hostname, what);
		free(what);
		if (rc != 0)
			goto out;
	}

	/* The header block, line by line. */
	for (;;) {
		line.len = 0;
		lrc = sendq_in_line(in, &line, MAILMSG_HEADER_MAX);
		if (lrc < 0) {
			rc = sendq_read_failed();
			goto out;
		}
		if (lrc == 0 || (lrc == 1 && !o->ignore_dots &&
		    sendq_lone_dot(line.data, line.len))) {
			line.len = 0;
			ended = 1;
			break;
		}
		switch (mailmsg_line_kind(line.data, line.len)) {
		case MAILMSG_LINE_CONT:
			if (hdr.len == 0) {
				body_line = 1;
				break;
			}
			/* FALLTHROUGH */
		case MAILMSG_LINE_FIELD:
			if (lrc == 2 || buf_append(&hdr, line.data,
			    line.len) != 0) {
				fprintf(stderr, "sendq: header section too "
				    "large (more than %d bytes)\n",
				    MAILMSG_HEADER_MAX);
				rc = EX_DATAERR;
				goto out;
			}
			continue;
		case MAILMSG_LINE_BLANK:
			break;
		case MAILMSG_LINE_OTHER:
			body_line = 1;
			break;
		}
		if (lrc == 2 || line.data[line.len - 1] != '\n')
			state = SENDQ_DOT_MID;
		break;
	}

	/* Recipients from the header (-t). */
	mailmsg_scan(hdr.data, hdr.len, &h);
	for (i = 0; o->extract && i < 3; i++) {
		for (fi = mailmsg_find(&h, hdr.data, rcpt_fields[i], 0);
		    fi >= 0; fi = mailmsg_find(&h, hdr.data, rcpt_fields[i],
		    (size_t)fi + 1)) {
			what = xasprintf("%.*s field",
			    (int)h.fields[fi].name_len,
			    hdr.data + h.fields[fi].off);
			rc = sendq_add_list(env, hdr.data +
			    h.fields[fi].value_off, h.fields[fi].value_len,
			    hostname, what);
			free(what);
			if (rc != 0)
				goto out;
		}
	}
	mailmsg_header_fini(&h);
	if (env->n_rcpts == 0) {
		fprintf(stderr, "sendq: no recipients (give them as "
		    "arguments, or use -t)\n");
		rc = EX_DATAERR;
		goto out;
	}
	/* Bcc is for the envelope only, with or without -t. */
	hdr.len = mailmsg_remove_fields(hdr.data, hdr.len, "bcc");

	/* Queue it. */
	if (spool_open(spool_dir, 1, &sp, &err) != 0 ||
	    spool_writer_begin(sp, &w, &err) != 0) {
		fprintf(stderr, "sendq: %s (message not queued)\n", err.msg);
		rc = EX_TEMPFAIL;
		goto out;
	}
	mailmsg_scan(hdr.data, hdr.len, &h);
	if (hdr.len > 0)
		eol = h.crlf ? "\r\n" : "\n";
	else
		eol = line.len >= 2 && line.data[line.len - 2] == '\r' &&
		    line.data[line.len - 1] == '\n' ? "\r\n" : "\n";
	prefix = sendq_added_fields(&h, hdr.data, env, o,
	    spool_writer_id(w), hostname, eol);
	rc = sendq_write(w, prefix, strlen(prefix));
	free(prefix);
	if (rc == 0)
		rc = sendq_write(w, hdr.data, hdr.len);
	/* A body that starts without a blank line gets one. */
	if (rc == 0 && body_line)
		rc = sendq_write(w, eol, strlen(eol));
	if (rc == 0)
		rc = sendq_write(w, line.data, line.len);
	if (rc == 0 && !ended)
		rc = sendq_stream_body(in, w, o->ignore_dots, state);
	if (rc != 0)
		goto out;
	if ((rc = sendq_commit(&w, env, control_path, o->verbose)) != 0)
		goto out;
	if (o->verbose)
		fprintf(stderr, "sendq: queued as %s\n", env->id);
	rc = EX_OK;
out:
	spool_writer_abort(w);
	spool_close(sp);
	mailmsg_header_fini(&h);
	envelope_free(env);
	buf_fini(&hdr);
	buf_fini(&line);
	free(in);
	return rc;
}

int
main(int argc, char **argv)
{
	struct sendq_opts o = { 0 };
	struct config *cfg = NULL;
	struct sq_err err = { 0 };
	char hostbuf[256];
	const char *prog, *hostname, *spool_dir;
	int rc;

	log_init("sendq", LOG_LEVEL_WARN);
	signal(SIGXFSZ, SIG_IGN);	/* a size limit fails the write */
	prog = argv[0] != NULL ? argv[0] : "sendq";
	if (strrchr(prog, '/') != NULL)
		prog = strrchr(prog, '/') + 1;
	if (strcmp(prog, "mailq") == 0)
		o.list = 1;
	if ((rc = sendq_parse_args(argc, argv, &o)) != 0)
		return rc;
	if (o.help) {
		sendq_usage(stdout);
		return EX_OK;
	}
	if (o.version) {
		printf("sendq %s\n", SENDQ_VERSION);
		return EX_OK;
	}
	if (config_load_file(o.config_path != NULL ? o.config_path :
	    CONFIG_DEFAULT_PATH, &cfg, &err) != 0) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		return EX_CONFIG;
	}
	spool_dir = cfg->spool_dir != NULL ? cfg->spool_dir :
	    CONFIG_DEFAULT_SPOOL;
	if (o.flush)
		rc = sendq_flush(cfg, o.verbose);
	else if (o.list)
		rc = sendq_list_queue(cfg, spool_dir);
	else {
		if (cfg->hostname != NULL)
			hostname = cfg->hostname;
		else if (gethostname(hostbuf, sizeof(hostbuf)) == 0) {
			hostbuf[sizeof(hostbuf) - 1] = '\0';
			hostname = hostbuf;
		} else {
			fprintf(stderr, "sendq: gethostname: %s\n",
			    strerror(errno));
			config_free(cfg);
			return EX_OSERR;
		}
		rc = sendq_submit(&o, spool_dir, sendq_control_path(cfg),
		    hostname);
	}
	config_free(cfg);
	return rc;
}
