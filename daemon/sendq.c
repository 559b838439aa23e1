/*
 * sendq.c - the sendmail-compatible injector: `sendq`, also answering as
 * `sendmail` and (listing the queue) as `mailq`.
 *
 * How it works: options are parsed sendmail-style from one table,
 * sendq_options[] {name, argument, handler, help}, which also prints
 * `sendq --help`: clustered flags ("-ti"), option arguments attached or
 * separate ("-fADDR", "-f ADDR"), and the -b, -o and -q families taken as
 * whole words ("-bm", "-oem", "-odb").  Anything not in the table (or in
 * it as unsupported) is one line on stderr and exit 64.  The message
 * comes on standard input.  Only its header block is buffered (at most
 * MAILMSG_HEADER_MAX bytes), line by line, until the first blank line or
 * the first line that is not a header line; the body is then streamed to
 * the sink.  Unless -i/-oi is given a line holding a lone "." ends the
 * message, as with sendmail.  With -t the addresses of To/Cc/Bcc are
 * added to those of the command line.  Bcc fields are never stored.
 * Addresses go through rewrite.h: bare local parts are qualified with
 * default_domain, recipients through [aliases], the sender through
 * rewrite_sender (and the From field with it when it named the original
 * sender).  Missing Date, From and Message-ID fields are added at the top
 * of the header; when the header block does not end with a blank line but
 * a body follows, a blank line is inserted.  Everything else is stored
 * byte-exact: line endings are left as they came (the daemon normalises
 * them on the wire), 8-bit and UTF-8 header bytes too (as Postfix does;
 * the envelope is marked 8bit so the relay uses BODY=8BITMIME).
 *
 * Where the message goes: the whole message (added fields, header,
 * body) is first kept in memory (at most [intake] max_message_size, more
 * is exit 65; a heap buffer, not a memfd: a memfd cost each run 7
 * syscalls, ~35 us on the bench machine), so that sendq never waits
 * on its own input while talking to sendqd, and can send it a second way.
 *  - sendqd answers on its control socket: the envelope and the message
 *    are streamed to it (control.h "submit"); sendqd names the message,
 *    writes and commits it, and answers "ok ID" once it is durable.
 *    sendq never opens, creates or names anything in the spool.  A
 *    refusal is printed: exit 65 (too large), 77 (not allowed to
 *    submit) or 75.
 *  - sendqd is not running, or goes away before its answer: the message
 *    becomes a drop file (dropfile.h format: X-Sendq-Sender and
 *    X-Sendq-Recipient lines, then the message) piped to the setgid
 *    helper sendq-drop (sendq_drop.c), run with no arguments and an
 *    empty environment, which writes it into maildrop/; sendqd picks it
 *    up when it starts (pickup.h).  If sendqd died after committing but
 *    before answering, the message is then queued twice: a duplicate,
 *    never a loss.  A message the maildrop cannot carry (DSN options, an
 *    X-Sendq-* field of its own, more than SENDQ_DROP_RCPT_MAX
 *    recipients) is refused with exit 75 while sendqd is down.
 * Exit 0 means the message is on stable storage.
 * Exit codes are sysexits.h: 64 usage, 65 bad address or data, 67
 * unknown user, 74 input error, 75 cannot queue now, 78 configuration.
 *
 * -bs speaks SMTP on stdin/stdout through intake_proto (the listener's
 * pure core); each message is read into memory (at most [intake]
 * max_message_size) and then queued exactly as above, with the envelope
 * of MAIL/RCPT and -i semantics.
 *
 * mailq / -bp print queue_view's listing in Postfix's format
 * (QUEUE_VIEW_POSTFIX, so check_mailq -M postfix and other parsers of
 * Postfix's mailq read it; sendqctl list --json is the format for new
 * tools): asked from sendqd over the
 * control socket when it runs (so messages being delivered show as
 * active; sendqd shows a user only their own messages, root, its own
 * user and admin_group everything), else read from the spool directly,
 * which only root and sendqd's user can; anyone else gets their own
 * messages through the setgid lister sendq-showq (sendq_showq.c, run
 * with no argument and an empty environment; its exit code is
 * passed on; when it is not installed: exit 75 with one line saying
 * so).  -q asks sendqd to flush the queue (control "flush",
 * for root, sendqd's user and admin_group: exit 77 for others); without
 * a running daemon it exits 75.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "dropfile.h"
#include "envelope.h"
#include "intake_proto.h"
#include "log.h"
#include "mailmsg.h"
#include "msgfix.h"
#include "queue_view.h"
#include "rewrite.h"
#include "spool.h"
#include "util.h"

#define SENDQ_READ_CHUNK     (64 * 1024)
#define SENDQ_SINK_FIRST     (16 * 1024) /* the sink's first allocation */
#define SENDQ_SUBMIT_TIMEOUT 60          /* seconds for sendqd's answer */
#ifndef SENDQ_DROP_HELPER /* CMake: where sendq-drop is installed */
#define SENDQ_DROP_HELPER "/usr/sbin/sendq-drop"
#endif
#define SENDQ_ENVID_MAX     100   /* -V: RFC 3461 ENVID */
#define SENDQ_DROP_RCPT_MAX 10000 /* more: not as a drop file */

enum sendq_mode {
	SENDQ_MODE_DELIVER,    /* -bm: read a message and queue it */
	SENDQ_MODE_LIST,       /* -bp, mailq */
	SENDQ_MODE_FLUSH,      /* -q */
	SENDQ_MODE_SMTP,       /* -bs */
	SENDQ_MODE_VERIFY,     /* -bv */
	SENDQ_MODE_NEWALIASES, /* -bi */
	SENDQ_MODE_HELP,
	SENDQ_MODE_VERSION,
};

struct sendq_opts {
	enum sendq_mode mode;
	int             extract;     /* -t */
	int             ignore_dots; /* -i, -oi */
	int             verbose;     /* -v */
	const char     *sender;      /* -f, -r */
	const char     *fullname;    /* -F */
	const char     *config_path; /* -C */
	char          **rcpts;       /* recipient arguments */
	int             n_rcpts;
	/* DSN requests (RFC 3461), kept in the envelope: -N for every
	 * recipient, -R, -V (stored as xtext). */
	unsigned          notify; /* ENVELOPE_NOTIFY_*, 0 = not given */
	enum envelope_ret ret;
	char              envid[SENDQ_ENVID_MAX + 1]; /* "" = none */
};

/*
 * One row of the option table.  name is what follows the '-' ("t",
 * "oem", "-help"); one-letter names may be clustered, the others are
 * whole words.  arg names the argument in --help, NULL for none.  fn
 * returns 0 or EX_USAGE after printing.  help NULL hides the row (an
 * alias of the row above it).
 */
struct sendq_option {
	const char *name;
	const char *arg;
	int (*fn)(struct sendq_opts *, const char *, const char *);
	const char *help;
};

static int
sendq_opt_extract(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	(void)arg;
	o->extract = 1;
	return 0;
}

static int
sendq_opt_dots(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	(void)arg;
	o->ignore_dots = 1;
	return 0;
}

static int
sendq_opt_verbose(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	(void)arg;
	o->verbose = 1;
	return 0;
}

static int
sendq_opt_sender(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	o->sender = arg;
	return 0;
}

static int
sendq_opt_fullname(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	o->fullname = arg;
	return 0;
}

static int
sendq_opt_config(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	o->config_path = arg;
	return 0;
}

static int
sendq_opt_mode(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)arg;
	if (strcmp(name, "bm") == 0)
		o->mode = SENDQ_MODE_DELIVER;
	else if (strcmp(name, "bp") == 0)
		o->mode = SENDQ_MODE_LIST;
	else if (strcmp(name, "q") == 0)
		o->mode = SENDQ_MODE_FLUSH;
	else if (strcmp(name, "bs") == 0)
		o->mode = SENDQ_MODE_SMTP;
	else if (strcmp(name, "bv") == 0)
		o->mode = SENDQ_MODE_VERIFY;
	else if (strcmp(name, "bi") == 0)
		o->mode = SENDQ_MODE_NEWALIASES;
	else if (strcmp(name, "-version") == 0)
		o->mode = SENDQ_MODE_VERSION;
	else
		o->mode = SENDQ_MODE_HELP;
	return 0;
}

static int
sendq_opt_ignore(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)o;
	(void)name;
	(void)arg;
	return 0;
}

/* -B TYPE: 7BIT or 8BITMIME. */
static int
sendq_opt_body(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)o;
	(void)name;
	if (strcasecmp(arg, "7BIT") == 0 || strcasecmp(arg, "8BITMIME") == 0)
		return 0;
	fprintf(stderr,
	    "sendq: -B: unknown body type (allowed: 7BIT, 8BITMIME)\n");
	return EX_USAGE;
}

/* -N DSN: "never" or a comma list of success, failure, delay. */
static int
sendq_opt_notify(struct sendq_opts *o, const char *name, const char *arg)
{
	const char *p = arg, *e;
	size_t      n;

	(void)name;
	if (strcasecmp(arg, "never") == 0) {
		o->notify = ENVELOPE_NOTIFY_NEVER;
		return 0;
	}
	o->notify = 0;
	for (;;) {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n == 7 && strncasecmp(p, "success", 7) == 0)
			o->notify |= ENVELOPE_NOTIFY_SUCCESS;
		else if (n == 7 && strncasecmp(p, "failure", 7) == 0)
			o->notify |= ENVELOPE_NOTIFY_FAILURE;
		else if (n == 5 && strncasecmp(p, "delay", 5) == 0)
			o->notify |= ENVELOPE_NOTIFY_DELAY;
		else {
			fprintf(stderr,
			    "sendq: -N: bad DSN notification (allowed: never, "
			    "or a comma list of success, failure, delay)\n");
			return EX_USAGE;
		}
		if (e == NULL)
			return 0;
		p = e + 1;
	}
}

/* -R RET: full or hdrs. */
static int
sendq_opt_ret(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)name;
	if (strcasecmp(arg, "full") == 0 || strcasecmp(arg, "hdrs") == 0) {
		o->ret = strcasecmp(arg, "full") == 0 ? ENVELOPE_RET_FULL :
							ENVELOPE_RET_HDRS;
		return 0;
	}
	fprintf(stderr,
	    "sendq: -R: bad DSN return type (allowed: full, hdrs)\n");
	return EX_USAGE;
}

/* -V ENVID: printable ASCII, at most SENDQ_ENVID_MAX characters. */
static int
sendq_opt_envid(struct sendq_opts *o, const char *name, const char *arg)
{
	size_t i, n = strlen(arg);
	char  *x;

	(void)name;
	for (i = 0; i < n; i++)
		if ((unsigned char)arg[i] <= 0x20 ||
		    (unsigned char)arg[i] >= 0x7f)
			break;
	/* Kept as xtext ("+" and "=" as "+2B", "+3D"), which must fit in
	 * ENVID's 100 characters too. */
	x = i == n ? envelope_xtext_encode(arg) : NULL;
	if (n == 0 || i < n || strlen(x) > SENDQ_ENVID_MAX) {
		fprintf(stderr,
		    "sendq: -V: bad envelope id (allowed: 1 to %d printable "
		    "ASCII characters without spaces, '+' and '=' counting as "
		    "3; the version is --version)\n",
		    SENDQ_ENVID_MAX);
		free(x);
		return EX_USAGE;
	}
	snprintf(o->envid, sizeof(o->envid), "%s", x);
	free(x);
	return 0;
}

static int
sendq_opt_unsupported(struct sendq_opts *o, const char *name, const char *arg)
{
	(void)o;
	(void)arg;
	fprintf(stderr,
	    "sendq: option -%s is not supported (see sendq --help)\n", name);
	return EX_USAGE;
}

static const struct sendq_option sendq_options[] = {
	{ "t", NULL, sendq_opt_extract,
	    "add the recipients of the To, Cc and Bcc fields (Bcc is removed "
	    "from the message in any case)" },
	{ "f", "ADDR", sendq_opt_sender,
	    "envelope sender (\"<>\" or \"\" for the null sender); default: "
	    "your login name @ default_domain" },
	{ "r", "ADDR", sendq_opt_sender, "the same as -f" },
	{ "F", "NAME", sendq_opt_fullname,
	    "full name for the From field added when there is none" },
	{ "i", NULL, sendq_opt_dots,
	    "a line with a lone \".\" does not end the message" },
	{ "oi", NULL, sendq_opt_dots, "the same as -i" },
	{ "C", "FILE", sendq_opt_config,
	    "configuration file (default " CONFIG_DEFAULT_PATH ")" },
	{ "bm", NULL, sendq_opt_mode,
	    "read a message and queue it (the default)" },
	{ "bp", NULL, sendq_opt_mode, "list the queue (same as mailq)" },
	{ "bs", NULL, sendq_opt_mode,
	    "speak SMTP on standard input and output" },
	{ "q", NULL, sendq_opt_mode,
	    "ask sendqd to try every queued message now (exit 75 when sendqd "
	    "is not running)" },
	{ "bv", NULL, sendq_opt_mode,
	    "show what each recipient argument is rewritten to; sends "
	    "nothing" },
	{ "bi", NULL, sendq_opt_mode,
	    "nothing to do: [aliases] in the configuration is read directly "
	    "(exit 0)" },
	{ "v", NULL, sendq_opt_verbose,
	    "say where the message went (queue id, via sendqd or the maildrop) "
	    "on standard error" },
	{ "h", NULL, sendq_opt_mode, "this text" },
	{ "-help", NULL, sendq_opt_mode, NULL },
	{ "-version", NULL, sendq_opt_mode, "print the version" },
	{ "N", "DSN", sendq_opt_notify,
	    "DSN notify for every recipient: never, or a comma list of "
	    "success, failure, delay; passed to a smarthost that offers DSN; "
	    "never and a list without failure mean no bounce from sendq "
	    "either" },
	{ "R", "RET", sendq_opt_ret,
	    "DSN return: full or hdrs (passed on; sendq's own bounces always "
	    "return the headers only)" },
	{ "V", "ENVID", sendq_opt_envid,
	    "DSN envelope id, passed on and named in bounces (the version is "
	    "--version)" },
	/* Accepted and checked, without effect. */
	{ "B", "TYPE", sendq_opt_body,
	    "body type 7BIT or 8BITMIME (ignored: 8-bit is detected)" },
	{ "oem", NULL, sendq_opt_ignore,
	    "error reporting by mail / by exit status: errors are always "
	    "reported on standard error and in the exit status" },
	{ "oee", NULL, sendq_opt_ignore, NULL },
	{ "oep", NULL, sendq_opt_ignore, NULL },
	{ "oeq", NULL, sendq_opt_ignore, NULL },
	{ "oew", NULL, sendq_opt_ignore, NULL },
	{ "odi", NULL, sendq_opt_ignore,
	    "delivery mode interactive / background / queue only: sendq always "
	    "queues and exits once the message is durable" },
	{ "odb", NULL, sendq_opt_ignore, NULL },
	{ "odq", NULL, sendq_opt_ignore, NULL },
	{ "om", NULL, sendq_opt_ignore,
	    "me too: the sender is never removed from the recipients" },
	{ "m", NULL, sendq_opt_ignore, "the same as -om" },
	{ "n", NULL, sendq_opt_ignore, "do not alias (ignored)" },
	{ "G", NULL, sendq_opt_ignore, "gateway submission (ignored)" },
	{ "U", NULL, sendq_opt_ignore, "initial user submission (ignored)" },
	{ "L", "LABEL", sendq_opt_ignore, "syslog label (ignored)" },
	{ "X", "FILE", sendq_opt_ignore, "traffic log file (ignored)" },
	{ "O", "OPT=VAL", sendq_opt_ignore, "sendmail option (ignored)" },
	/* Refused: exit 64. */
	{ "bd", NULL, sendq_opt_unsupported,
	    "daemon mode: run sendqd (systemctl start sendq)" },
	{ "bD", NULL, sendq_opt_unsupported, NULL },
	{ "bt", NULL, sendq_opt_unsupported, "address test mode: use -bv" },
	{ "bh", NULL, sendq_opt_unsupported, "host status: use sendqctl" },
	{ "bH", NULL, sendq_opt_unsupported, NULL },
	{ "I", NULL, sendq_opt_unsupported, "initialise aliases: use -bi" },
	{ "qR", NULL, sendq_opt_unsupported,
	    "partial or periodic queue runs (-qR, -qS, -qI, -qf, -q15m): use "
	    "-q or sendqctl" },
};

#define SENDQ_NOPTIONS (sizeof(sendq_options) / sizeof(sendq_options[0]))

/* Print text from column 17 to 79, words wrapped. */
static void
sendq_usage_wrap(FILE *fp, const char *text)
{
	const char *p = text, *sp, *end;
	size_t      col = 16, n;

	while (*p != '\0') {
		sp = strchr(p, ' ');
		end = sp != NULL ? sp : p + strlen(p);
		n = (size_t)(end - p);
		if (col > 16 && col + 1 + n > 79) {
			fprintf(fp, "\n%16s", "");
			col = 16;
		}
		fprintf(fp, " %.*s", (int)n, p);
		col += 1 + n;
		p = *end == ' ' ? end + 1 : end;
	}
	fprintf(fp, "\n");
}

static void
sendq_usage(FILE *fp)
{
	const struct sendq_option *op;
	char                       left[32];
	size_t                     i, j;

	fprintf(fp,
	    "usage: sendq [options] [--] [recipient ...]   (message on "
	    "standard input)\n       mailq | sendq -bp                      "
	    "(list the queue)\n       sendq -q                               "
	    "(try every message now)\n");
	for (i = 0; i < SENDQ_NOPTIONS; i++) {
		op = &sendq_options[i];
		if (op->help == NULL)
			continue;
		if (i == 0)
			fprintf(fp, "\nOptions:\n");
		else if (op->fn == sendq_opt_body &&
		    sendq_options[i - 1].fn != sendq_opt_body)
			fprintf(fp,
			    "\nAccepted for compatibility, without effect:\n");
		else if (op->fn == sendq_opt_unsupported &&
		    sendq_options[i - 1].fn != sendq_opt_unsupported)
			fprintf(fp, "\nNot supported (exit 64):\n");
		snprintf(left, sizeof(left), "-%s%s%s", op->name,
		    op->arg != NULL ? " " : "", op->arg != NULL ? op->arg : "");
		/* Hidden aliases right below are named with their row. */
		for (j = i + 1;
		     j < SENDQ_NOPTIONS && sendq_options[j].help == NULL; j++)
			snprintf(left + strlen(left),
			    sizeof(left) - strlen(left), ", -%s",
			    sendq_options[j].name);
		if (strlen(left) <= 14)
			fprintf(fp, "  %-14s", left);
		else
			fprintf(fp, "  %s\n  %-14s", left, "");
		sendq_usage_wrap(fp, op->help);
	}
	fprintf(fp,
	    "\nUnknown options exit 64.  Recipients after -- are taken as "
	    "addresses.\nAddresses without a domain get \"@\" default_domain "
	    "([sendq] in the\nconfiguration); [aliases] maps local names to "
	    "addresses; rewrite_sender\nmasquerades the sender.  Without a "
	    "running sendqd the message is left in\nthe maildrop for sendqd to "
	    "pick up.\nExit status: 0 queued, 64 usage, 65 bad address or "
	    "message, 67 unknown\nuser, 74 input error, 75 cannot queue now "
	    "(try again), 78 bad config.\n");
}

static const struct sendq_option *
sendq_option_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < SENDQ_NOPTIONS; i++)
		if (strlen(sendq_options[i].name) == len &&
		    strncmp(sendq_options[i].name, name, len) == 0)
			return &sendq_options[i];
	return NULL;
}

static int
sendq_unknown(const char *what)
{
	char safe[64];

	sq_printable(safe, sizeof(safe), what, strlen(what));
	fprintf(stderr, "sendq: unknown option -%s (see sendq --help)\n", safe);
	return EX_USAGE;
}

/* Returns 0, or EX_USAGE after printing why. */
static int
sendq_parse_args(int argc, char **argv, struct sendq_opts *o)
{
	const struct sendq_option *op;
	const char                *p, *arg;
	char                       name[2];
	int                        i, rc;

	for (i = 1; i < argc; i++) {
		p = argv[i];
		if (p[0] != '-' || p[1] == '\0')
			break;
		if (strcmp(p, "--") == 0) {
			i++;
			break;
		}
		p++;
		/* Long options, and the -b, -o and -q families: whole
		 * words. */
		if (p[0] == '-' || p[0] == 'b' || p[0] == 'o' ||
		    (p[0] == 'q' && p[1] != '\0')) {
			if ((op = sendq_option_find(p, strlen(p))) == NULL &&
			    p[0] == 'q')
				op = sendq_option_find("qR", 2);
			if (op == NULL)
				return sendq_unknown(p);
			if ((rc = op->fn(o, p, NULL)) != 0)
				return rc;
			continue;
		}
		/* Clustered letters; an argument ends the word. */
		for (; *p != '\0'; p++) {
			if ((op = sendq_option_find(p, 1)) == NULL) {
				name[0] = *p;
				name[1] = '\0';
				return sendq_unknown(name);
			}
			arg = NULL;
			if (op->arg != NULL) {
				if (p[1] != '\0')
					arg = p + 1;
				else if (i + 1 < argc)
					arg = argv[++i];
				else {
					fprintf(stderr,
					    "sendq: option -%s needs an "
					    "argument %s (see sendq --help)\n",
					    op->name, op->arg);
					return EX_USAGE;
				}
			}
			if ((rc = op->fn(o, op->name, arg)) != 0)
				return rc;
			if (arg != NULL)
				break;
		}
	}
	o->rcpts = argv + i;
	o->n_rcpts = argc - i;
	return 0;
}

/* The message source: standard input, or a message in memory (-bs). */
struct sendq_in {
	/* Made by sendq_in_new: buf is big and only its used part is
	 * touched (a zeroed one costs a page fault per 4 KiB, sendq's
	 * largest cost after exec). */
	int         fd;
	const char *mem; /* NULL: read fd */
	size_t      mem_len;
	size_t      mem_pos;
	char        buf[SENDQ_READ_CHUNK];
	size_t      pos;
	size_t      len;
	int         eof;
};

/* A new input reading fd (or, with fd -1, memory). */
static struct sendq_in *
sendq_in_new(int fd)
{
	struct sendq_in *in = xmalloc(sizeof(*in));

	in->fd = fd;
	in->mem = NULL;
	in->mem_len = in->mem_pos = 0;
	in->pos = in->len = 0;
	in->eof = 0;
	return in;
}

/* Body streaming states for the lone-dot rule. */
enum sendq_dot {
	SENDQ_DOT_BOL,   /* at the start of a line */
	SENDQ_DOT_MID,   /* inside a line */
	SENDQ_DOT_DOT,   /* "." held at the start of a line */
	SENDQ_DOT_DOTCR, /* ".\r" held at the start of a line */
	SENDQ_DOT_END,   /* a lone dot was seen: message ends */
};

/* Everything a submission needs besides the options. */
struct sendq_ctx {
	const struct sendq_opts *o;
	const struct config     *cfg;
	struct rewrite           rw;
	const char              *hostname;
	const char              *spool_dir;
	const char              *control_path;
	const char              *route; /* for -v: how it went */
	char                     refused[sizeof(((struct sq_err *)0)->msg)];
	/* why msgfix refused the
						 * message (-bs: 554 5.6.0) */
};

/*
 * The message as it is read: kept in memory, so that it can be sent to
 * sendqd and, if sendqd goes away before its answer, to the drop helper
 * instead.  sendq never writes into the spool itself.
 */
struct sendq_sink {
	char               *data; /* the message, size bytes of cap */
	size_t              cap;
	uint64_t            size;
	uint64_t            limit;    /* [intake] max_message_size */
	int                 eightbit; /* a byte >= 0x80 was seen */
	struct msgfix_scan *scan;     /* body bytes are scanned */
};

static ssize_t
sendq_in_fill(struct sendq_in *in)
{
	ssize_t n;

	if (in->eof)
		return 0;
	if (in->mem != NULL) {
		n = (ssize_t)(in->mem_len - in->mem_pos);
		if ((size_t)n > sizeof(in->buf))
			n = (ssize_t)sizeof(in->buf);
		memcpy(in->buf, in->mem + in->mem_pos, (size_t)n);
		in->mem_pos += (size_t)n;
		if (n == 0)
			in->eof = 1;
		in->pos = 0;
		in->len = (size_t)n;
		return n;
	}
	n = sq_read(in->fd, in->buf, sizeof(in->buf));
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
	size_t      n;
	int         got = 0;

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
	struct buf    b;
	size_t        i;
	int           plain = 1;
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

static void
sendq_sink_fini(struct sendq_sink *s)
{
	free(s->data);
	s->data = NULL;
	s->size = s->cap = 0;
}

/* Write to the sink.  Returns 0, or an exit code after printing. */
static int
sendq_write(struct sendq_sink *s, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t               i, cap;
	char                *grown;

	if (len == 0)
		return 0;
	if (!s->eightbit) {
		/* Eight bytes at a time: any high bit. */
		uint64_t w, any = 0;

		for (i = 0; i + 8 <= len; i += 8) {
			memcpy(&w, p + i, 8);
			any |= w;
		}
		for (; i < len; i++)
			any |= p[i];
		s->eightbit = (any & UINT64_C(0x8080808080808080)) != 0;
	}
	if (s->scan != NULL)
		msgfix_scan_feed(s->scan, data, len, NULL);
	if (len > s->limit - s->size) {
		fprintf(stderr,
		    "sendq: message too large (more than %llu bytes, the limit "
		    "of [intake] max_message_size; message not queued)\n",
		    (unsigned long long)s->limit);
		return EX_DATAERR;
	}
	if (s->size + len > s->cap) {
		/* size + len <= limit, which fits a size_t (sink_open). */
		for (cap = s->cap != 0 ? s->cap : SENDQ_SINK_FIRST;
		     cap < s->size + len; cap *= 2)
			;
		if ((grown = realloc(s->data, cap)) == NULL) {
			fprintf(stderr,
			    "sendq: keep the message in memory: %s (message "
			    "not queued)\n",
			    strerror(ENOMEM));
			return EX_TEMPFAIL;
		}
		s->data = grown;
		s->cap = cap;
	}
	memcpy(s->data + s->size, p, len);
	s->size += len;
	return 0;
}

static int
sendq_read_failed(void)
{
	fprintf(stderr, "sendq: read standard input: %s (message not queued)\n",
	    strerror(errno));
	return EX_IOERR;
}

/* Stream the rest of the input to s, honouring the lone-dot rule unless
 * ignore_dots.  Returns 0 or an exit code after printing. */
static int
sendq_stream_body(struct sendq_in *in, struct sendq_sink *s, int ignore_dots,
    enum sendq_dot state)
{
	char        out[SENDQ_READ_CHUNK + 4];
	const char *nl;
	size_t      i, o, n;
	ssize_t     r;
	int         rc;
	char        c;

	for (;;) {
		if (in->pos == in->len) {
			if ((r = sendq_in_fill(in)) < 0)
				return sendq_read_failed();
			if (r == 0)
				break;
		}
		if (ignore_dots) {
			rc = sendq_write(s, in->buf + in->pos,
			    in->len - in->pos);
			in->pos = in->len;
			if (rc != 0)
				return rc;
			continue;
		}
		for (i = in->pos, o = 0; i < in->len; i++) {
			if (state == SENDQ_DOT_MID) {
				/* The rest of the line in one copy. */
				nl = memchr(in->buf + i, '\n', in->len - i);
				n = nl != NULL ?
				    (size_t)(nl - (in->buf + i)) + 1 :
				    in->len - i;
				memcpy(out + o, in->buf + i, n);
				o += n;
				i += n - 1;
				if (nl != NULL)
					state = SENDQ_DOT_BOL;
				continue;
			}
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
		if ((rc = sendq_write(s, out, o)) != 0)
			return rc;
		if (state == SENDQ_DOT_END)
			return 0;
	}
	/* A lone "." at the very end also ends the message; ".\r" does
	 * not. */
	if (state == SENDQ_DOT_DOTCR)
		return sendq_write(s, ".\r", 2);
	return 0;
}

/* sendqd's answer other than "ok": its first line, printed; the exit
 * code (77 for a refusal, else 75). */
static int
sendq_daemon_error(struct buf *out)
{
	char *nl;

	buf_append(out, "", 1);
	if ((nl = strchr(out->data, '\n')) != NULL)
		*nl = '\0';
	fprintf(stderr, "sendq: sendqd: %s\n", out->data);
	return strncmp(out->data, "error: permission denied:", 25) == 0 ?
	    EX_NOPERM :
	    EX_TEMPFAIL;
}

/* sendqd is down and the spool is not ours to read: the setgid lister
 * sendq-showq prints the caller's own messages.  The exit code. */
static int
sendq_list_showq(struct buf *out)
{
	struct sq_err err = { 0 };
	int           rc, status = 0;

	out->len = 0;
	rc = queue_view_showq(QUEUE_VIEW_POSTFIX, out, &status, &err);
	if (rc == -ENOENT) {
		fprintf(stderr,
		    "sendq: sendqd is not running, and only root and the user "
		    "sendqd runs as may read the spool directly (%s): mailq "
		    "shows your mail while sendqd runs (systemctl start "
		    "sendq)\n",
		    err.msg);
		return EX_TEMPFAIL;
	}
	if (rc != 0 && rc != SQ_ELIMIT) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		return EX_TEMPFAIL;
	}
	fwrite(out->data, 1, out->len, stdout);
	if (rc != 0) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		return EX_TEMPFAIL;
	}
	/* It printed its reason; its codes are sysexits too. */
	return status;
}

/* mailq: queue_view's listing, from sendqd if it runs (it shows a user
 * their own messages only), else from the spool directly. */
static int
sendq_list_queue(const struct config *cfg, const char *spool_dir)
{
	struct sq_err err = { 0 };
	struct buf    out;
	int           rc, ex = EX_OK;

	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	rc = queue_view_request(cfg->control_socket, "list --postfix", 60, &out,
	    &err);
	if (rc == 0 && out.len >= 3 && memcmp(out.data, "ok\n", 3) == 0) {
		fwrite(out.data + 3, 1, out.len - 3, stdout);
		goto done;
	}
	if (rc == 0) {
		ex = sendq_daemon_error(&out);
		goto done;
	}
	out.len = 0;
	rc = queue_view_list(spool_dir, queue_view_own_filter(spool_dir),
	    QUEUE_VIEW_POSTFIX, NULL, NULL, &out, &err);
	if (rc == -ENOENT) {
		printf("Mail queue is empty\n");
		goto done;
	}
	if (rc == -EACCES || rc == -EPERM) {
		ex = sendq_list_showq(&out);
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
	struct buf    out;
	const char   *path = cfg->control_socket;
	int           rc, ex = EX_OK;

	buf_init(&out, 64 * 1024);
	rc = queue_view_request(path, "flush", 60, &out, &err);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		fprintf(stderr,
		    "sendq: sendqd is not running (no daemon on %s): the queue "
		    "was not flushed; start it with systemctl start sendq\n",
		    path);
		ex = EX_TEMPFAIL;
	} else if (rc == -EACCES || rc == -EPERM) {
		fprintf(stderr,
		    "sendq: %s (the control socket must be open to every "
		    "user)\n",
		    err.msg);
		ex = EX_NOPERM;
	} else if (rc != 0) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		ex = EX_TEMPFAIL;
	} else if (out.len < 3 || memcmp(out.data, "ok\n", 3) != 0)
		ex = sendq_daemon_error(&out);
	else if (verbose)
		fprintf(stderr,
		    "sendq: sendqd will try every queued message now\n");
	buf_fini(&out);
	return ex;
}

/* Check an address for the envelope.  Returns 0 or EX_DATAERR after
 * printing. */
static int
sendq_check(const char *addr, const char *what)
{
	struct sq_err err = { 0 };

	if (mailmsg_addr_valid(addr, 0, &err) != 0) {
		fprintf(stderr, "sendq: %s: %s\n", what, err.msg);
		return EX_DATAERR;
	}
	return 0;
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

/* One recipient: qualified, checked, through [aliases], added to env.
 * Returns 0 or EX_DATAERR after printing. */
static int
sendq_add_one(const struct sendq_ctx *c, struct envelope *env, const char *addr,
    const char *what)
{
	struct mailmsg_addr_list out = { 0 };
	char                    *q;
	size_t                   i;
	int                      rc;

	q = rewrite_qualify(addr, c->rw.default_domain);
	rc = sendq_check(q, what);
	if (rc == 0)
		rewrite_recipient(&c->rw, q, &out);
	free(q);
	for (i = 0; rc == 0 && i < out.n; i++)
		rc = sendq_check(out.addrs[i], what);
	for (i = 0; rc == 0 && i < out.n; i++) {
		sendq_add_rcpt(env, out.addrs[i]);
		out.addrs[i] = NULL;
	}
	mailmsg_addr_list_fini(&out);
	return rc;
}

/* Parse an address list and add its addresses to env.  Returns 0 or
 * EX_DATAERR after printing. */
static int
sendq_add_list(const struct sendq_ctx *c, struct envelope *env, const char *s,
    size_t len, const char *what)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            err = { 0 };
	size_t                   i;
	int                      rc = 0;

	if (mailmsg_addr_list_parse(&l, s, len, &err) != 0) {
		fprintf(stderr, "sendq: %s: %s\n", what, err.msg);
		return EX_DATAERR;
	}
	for (i = 0; rc == 0 && i < l.n; i++)
		rc = sendq_add_one(c, env, l.addrs[i], what);
	mailmsg_addr_list_fini(&l);
	return rc;
}

/* The sender from -f/-r, qualified: "" for <>.  NULL after printing. */
static char *
sendq_sender_arg(const struct sendq_ctx *c, const char *arg)
{
	struct mailmsg_addr_list l = { 0 };
	struct sq_err            err = { 0 };
	char                    *addr;

	if (strcmp(arg, "") == 0 || strcmp(arg, "<>") == 0)
		return xstrdup("");
	if (mailmsg_addr_list_parse(&l, arg, strlen(arg), &err) != 0) {
		fprintf(stderr, "sendq: sender: %s\n", err.msg);
		return NULL;
	}
	if (l.n != 1) {
		fprintf(stderr,
		    "sendq: sender: need exactly one address, got %zu\n", l.n);
		mailmsg_addr_list_fini(&l);
		return NULL;
	}
	addr = rewrite_qualify(l.addrs[0], c->rw.default_domain);
	mailmsg_addr_list_fini(&l);
	if (sendq_check(addr, "sender") != 0) {
		free(addr);
		return NULL;
	}
	return addr;
}

static const char *sendq_helper_path(void);

/*
 * Start the drop helper with argv, an empty environment and a pipe as
 * its standard input (child_fd STDIN_FILENO) or output (STDOUT_FILENO).
 * Returns our end of the pipe with *pid set, or -1 after printing why
 * (quiet: print nothing), the message ending in suffix.
 */
static int
sendq_helper_spawn(char *const argv[], int child_fd, pid_t *pid, int quiet,
    const char *suffix)
{
	const char *path = sendq_helper_path();
	char *const envp[] = { NULL };
	int         pfd[2], ours = child_fd == STDIN_FILENO ? 1 : 0;

	if (pipe2(pfd, O_CLOEXEC) != 0) {
		if (!quiet)
			fprintf(stderr, "sendq: pipe: %s%s\n", strerror(errno),
			    suffix);
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	if ((*pid = fork()) < 0) {
		if (!quiet)
			fprintf(stderr, "sendq: fork: %s%s\n", strerror(errno),
			    suffix);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (*pid == 0) {
		if (dup2(pfd[1 - ours], child_fd) < 0)
			_exit(EX_OSERR);
		/* Inherited through execve: the helper's write fails with
		 * EFBIG at a size limit, as it did when sendq ignored it. */
		signal(SIGXFSZ, SIG_IGN);
		execve(path, argv, envp);
		fprintf(stderr, "sendq: cannot run the drop helper %s: %s%s\n",
		    path, strerror(errno), suffix);
		_exit(127);
	}
	close(pfd[1 - ours]);
	return pfd[ours];
}

/*
 * The login name of the drop helper's caller (sendq-drop --login-name),
 * into name (namesz bytes): the way when sendqd does not answer.  0,
 * EX_NOUSER (no name for the uid) or EX_TEMPFAIL; the helper prints its
 * own reasons.
 */
static int
sendq_helper_login(char *name, size_t namesz)
{
	char *const argv[] = { (char *)"sendq-drop", (char *)"--login-name",
		NULL };
	size_t      len = 0;
	ssize_t     n;
	int         fd, status;
	pid_t       pid;

	if ((fd = sendq_helper_spawn(argv, STDOUT_FILENO, &pid, 1, "")) < 0)
		return EX_TEMPFAIL;
	while (len + 1 < namesz &&
	    (n = sq_read(fd, name + len, namesz - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	name[len] = '\0';
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return EX_TEMPFAIL;
	if (!WIFEXITED(status))
		return EX_TEMPFAIL;
	if (WEXITSTATUS(status) == EX_NOUSER)
		return EX_NOUSER;
	if (WEXITSTATUS(status) != 0 || len == 0 || name[len - 1] != '\n')
		return EX_TEMPFAIL;
	name[len - 1] = '\0';
	return 0;
}

/*
 * The login name of the caller, into name (namesz bytes): asked of
 * sendqd ("whoami": it looks up the uid the kernel gave it), else of the
 * drop helper.  sendq itself does no NSS lookup, so that it can be a
 * static binary (SENDQ_STATIC_INJECTOR) without loading NSS modules.
 * 0, or EX_NOUSER / EX_TEMPFAIL after printing.
 */
static int
sendq_login_name(const struct sendq_ctx *c, char *name, size_t namesz)
{
	struct sq_err err = { 0 };
	struct buf    out;
	char         *eol;
	int           rc;

	buf_init(&out, 4096);
	rc = queue_view_request(c->control_path, "whoami", SENDQ_SUBMIT_TIMEOUT,
	    &out, &err);
	if (rc == 0 && out.len > 3 && memcmp(out.data, "ok\n", 3) == 0 &&
	    (eol = memchr(out.data + 3, '\n', out.len - 3)) != NULL &&
	    (size_t)(eol - (out.data + 3)) < namesz) {
		memcpy(name, out.data + 3, (size_t)(eol - (out.data + 3)));
		name[eol - (out.data + 3)] = '\0';
		buf_fini(&out);
		return 0;
	}
	/* sendqd knows no name for the uid: final.  Any other answer
	 * (busy, an older sendqd without whoami) or none: the helper. */
	rc = rc == 0 && out.len > 7 && memcmp(out.data, "error: ", 7) == 0 &&
		memmem(out.data, out.len, "no user name", 12) != NULL ?
	    EX_NOUSER :
	    -1;
	buf_fini(&out);
	if (rc == -1)
		rc = sendq_helper_login(name, namesz);
	if (rc == EX_NOUSER)
		fprintf(stderr,
		    "sendq: no user name for uid %lu; give the sender with "
		    "-f\n",
		    (unsigned long)getuid());
	else if (rc != 0)
		fprintf(stderr,
		    "sendq: cannot learn the user name of uid %lu (sendqd "
		    "does not answer and the drop helper failed); give the "
		    "sender with -f\n",
		    (unsigned long)getuid());
	return rc;
}

/* The default sender: login name @ default_domain.  NULL after
 * printing, with the exit code in *ex (EX_NOUSER: no name or not
 * usable; EX_TEMPFAIL: nobody could say). */
static char *
sendq_default_sender(const struct sendq_ctx *c, int *ex)
{
	char  name[256];
	char *addr;

	if ((*ex = sendq_login_name(c, name, sizeof(name))) != 0)
		return NULL;
	*ex = EX_NOUSER;
	addr = xasprintf("%s@%s", name, c->rw.default_domain);
	if (mailmsg_addr_valid(addr, 0, NULL) != 0) {
		fprintf(stderr,
		    "sendq: user name \"%s\" is not usable as a sender; give "
		    "the sender with -f\n",
		    name);
		free(addr);
		return NULL;
	}
	return addr;
}

/* The Date, From and Message-ID fields missing from present
 * (mailmsg_present; mailmsg.h's helper; the From here carries -F's full
 * name).  Only a missing field is made: the
 * local time zone (/etc/localtime) is read only for a Date to add. */
static char *
sendq_added_fields(int present, const struct envelope *env,
    const struct sendq_opts *o, const char *id, const char *hostname,
    const char *eol)
{
	char date[64], *from = NULL, *addr, *name, *fields;

	if (!(present & MAILMSG_HAS_DATE))
		mailmsg_date((int64_t)time(NULL), 1, date, sizeof(date));
	if (!(present & MAILMSG_HAS_FROM)) {
		addr = env->sender[0] != '\0' ?
		    xstrdup(env->sender) :
		    xasprintf("MAILER-DAEMON@%s", hostname);
		if (o->fullname != NULL) {
			name = sendq_display_name(o->fullname);
			from = xasprintf("%s <%s>", name, addr);
			free(name);
			free(addr);
		} else
			from = addr;
	}
	fields = mailmsg_added_fields(present,
	    present & MAILMSG_HAS_DATE ? NULL : date, from, id, hostname, eol);
	free(from);
	return fields;
}

/*
 * With rewrite_sender the From field follows the envelope sender when it
 * named the original sender; else a From with one unqualified address
 * is qualified (rewrite.h).  hdr is changed in place.
 */
static void
sendq_rewrite_from(const struct sendq_ctx *c, struct buf *hdr, const char *orig,
    const char *sender)
{
	struct mailmsg_header       h;
	const struct mailmsg_field *f;
	struct buf                  nb;
	const char                 *eol;
	char                       *nv;
	long                        fi;

	mailmsg_scan(hdr->data, hdr->len, &h);
	fi = mailmsg_find(&h, hdr->data, "from", 0);
	if (fi < 0 ||
	    mailmsg_find(&h, hdr->data, "from", (size_t)fi + 1) >= 0) {
		mailmsg_header_fini(&h);
		return;
	}
	f = &h.fields[fi];
	if (!(c->rw.sender != NULL &&
		rewrite_from_value(&c->rw, hdr->data + f->value_off,
		    f->value_len, orig, sender, &nv)) &&
	    !rewrite_from_qualify(&c->rw, hdr->data + f->value_off,
		f->value_len, &nv)) {
		mailmsg_header_fini(&h);
		return;
	}
	eol = hdr->data + f->value_off + f->value_len;
	buf_init(&nb, MAILMSG_HEADER_MAX + 1024);
	buf_append(&nb, hdr->data, f->value_off);
	buf_append_str(&nb, nv);
	buf_append(&nb, eol, hdr->len - (size_t)(eol - hdr->data));
	free(nv);
	mailmsg_header_fini(&h);
	buf_fini(hdr);
	*hdr = nb;
}

/* True when the header has an X-Sendq-* field (a drop file could not
 * carry it). */
static int
sendq_has_xsendq(const struct mailmsg_header *h, const char *hdr)
{
	size_t i;

	for (i = 0; i < h->n_fields; i++)
		if (h->fields[i].name_len >= 8 &&
		    strncasecmp(hdr + h->fields[i].off, "x-sendq-", 8) == 0)
			return 1;
	return 0;
}

/* The envelope lines of a drop file. */
static char *
sendq_envlines(const struct envelope *env, const char *eol)
{
	struct buf b;
	char      *line;
	size_t     i;

	buf_init(&b, SIZE_MAX / 2);
	line = xasprintf("X-Sendq-Sender: <%s>%s", env->sender, eol);
	buf_append_str(&b, line);
	free(line);
	for (i = 0; i < env->n_rcpts; i++) {
		line = xasprintf("X-Sendq-Recipient: <%s>%s", env->rcpts[i],
		    eol);
		buf_append_str(&b, line);
		free(line);
	}
	buf_append(&b, "", 1);
	return b.data;
}

/* The sink that keeps the message, empty (memory is taken as it
 * grows).  Returns 0. */
static int
sendq_sink_open(const struct sendq_ctx *c, struct sendq_sink *s)
{
	s->limit = c->cfg->intake.max_message_size != 0 ?
	    c->cfg->intake.max_message_size :
	    DROPFILE_SIZE_DEFAULT;
	if (s->limit > SIZE_MAX / 4)
		s->limit = SIZE_MAX / 4; /* cap doubles past it */
	return 0;
}

/* A random token (128 bits, hex) for the Message-ID and, for a message
 * left in the maildrop, for what -v and -bs report.  tok has at least
 * ENVELOPE_ID_MAX bytes. */
static void
sendq_token(char *tok)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char     r[15];
	size_t            i;

	if (sq_random(r, sizeof(r)) != 0)
		log_fatalx("sendq: getrandom failed");
	for (i = 0; i < sizeof(r); i++) {
		tok[2 * i] = hex[r[i] >> 4];
		tok[2 * i + 1] = hex[r[i] & 0xf];
	}
	tok[2 * sizeof(r)] = '\0';
}

/* The exit code for sendqd's "error: CODE REASON" (control.h). */
static int
sendq_answer_exit(const char *answer)
{
	const char *code = answer + strlen("error: ");

	if (strncmp(answer, "error: ", 7) != 0)
		return EX_TEMPFAIL;
	if (strncmp(code, "5.3.4 ", 6) == 0 || strncmp(code, "5.6.0 ", 6) == 0)
		return EX_DATAERR;
	if (strncmp(code, "5.7.1 ", 6) == 0)
		return EX_NOPERM;
	return EX_TEMPFAIL;
}

/*
 * Stream the message in s (with env) to sendqd over the control socket.
 * Returns 0 with the queue id in id, an exit code after printing sendqd's
 * refusal, or -1 when sendqd did not answer (not running, or gone before
 * its answer): the caller then uses the drop helper.
 */
static int
sendq_to_daemon(struct sendq_ctx *c, struct sendq_sink *s,
    const struct envelope *env, char *id)
{
	struct sq_err err = { 0 };
	char          answer[512], safe[512], *text;
	size_t        len;
	int           rc, sent_end = 0;

	text = envelope_format(env, &len);
	rc = queue_view_submit(c->control_path, text, len, s->data,
	    (size_t)s->size, SENDQ_SUBMIT_TIMEOUT, answer, sizeof(answer),
	    &sent_end, &err);
	free(text);
	if (rc == 0 && strncmp(answer, "ok ", 3) == 0 &&
	    spool_id_valid(answer + 3)) {
		memcpy(id, answer + 3, strlen(answer + 3) + 1); /* valid */
		c->route = "via sendqd";
		return 0;
	}
	if (rc == 0) {
		sq_printable(safe, sizeof(safe), answer, strlen(answer));
		fprintf(stderr, "sendq: sendqd: %s%s\n", safe,
		    strstr(safe, "not queued") != NULL ?
			"" :
			" (message not queued)");
		return sendq_answer_exit(answer);
	}
	/*
	 * No answer.  Not running (ENOENT, ECONNREFUSED, or a socket we may
	 * not use): the maildrop is the way.  Gone before its answer: if
	 * "end" went out, sendqd may have committed the message just
	 * before it died; sending it again through the maildrop then makes
	 * a duplicate, which is better than a loss (sendq(1), DIAGNOSTICS).
	 */
	if (c->o->verbose && rc != -ENOENT && rc != -ECONNREFUSED)
		fprintf(stderr, "sendq: %s%s; using the maildrop\n", err.msg,
		    sent_end ? " (sendqd may have queued it already: a "
			       "duplicate is possible)" :
			       "");
	return -1;
}

/*
 * Can the message go through the maildrop (dropfile.h)?  DSN options,
 * an X-Sendq-* field of the message's own and too many recipients
 * cannot.  Returns 0, or EX_TEMPFAIL after printing why.
 */
static int
sendq_droppable(const struct sendq_opts *o, const struct envelope *env,
    const struct mailmsg_header *h, const char *hdr, size_t envlines_len,
    size_t head_len)
{
	const char *why = NULL;

	if (o->notify != 0 || o->ret != ENVELOPE_RET_NONE ||
	    o->envid[0] != '\0')
		why = "DSN options (-N, -R, -V) cannot go through the maildrop";
	else if (sendq_has_xsendq(h, hdr))
		why = "a message with an X-Sendq-* header field cannot go "
		      "through the maildrop";
	else if (env->n_rcpts > SENDQ_DROP_RCPT_MAX ||
	    envlines_len > DROPFILE_ENVLINES_MAX)
		why = "too many recipients for the maildrop";
	else if (head_len > MAILMSG_HEADER_MAX)
		why = "header too large for the maildrop";
	if (why == NULL)
		return 0;
	fprintf(stderr,
	    "sendq: sendqd is not running and %s (message not queued; try "
	    "again when sendqd runs)\n",
	    why);
	return EX_TEMPFAIL;
}

/* The drop helper: compiled in; SENDQ_DROP_HELPER in the environment
 * overrides it (for tests: sendq is not privileged, and whatever it runs
 * runs with the caller's rights). */
static const char *
sendq_helper_path(void)
{
	const char *p = getenv("SENDQ_DROP_HELPER");

	return p != NULL && p[0] == '/' ? p : SENDQ_DROP_HELPER;
}

/* Feed envlines and the message to the helper's stdin.  0 or -errno. */
static int
sendq_feed_helper(int fd, const char *envlines, const struct sendq_sink *s)
{
	int rc;

	if ((rc = sq_write_all(fd, envlines, strlen(envlines))) != 0)
		return rc;
	return s->size > 0 ? sq_write_all(fd, s->data, (size_t)s->size) : 0;
}

/*
 * sendqd is not running: hand the message, as a drop file (envelope
 * lines, then the message), to the setgid helper sendq-drop on a pipe.
 * It gets no arguments and an empty environment.  Returns 0 or an exit
 * code after printing (the helper prints its own reasons).
 */
static int
sendq_to_helper(struct sendq_ctx *c, struct sendq_sink *s, const char *envlines)
{
	const char *path = sendq_helper_path();
	char *const argv[] = { (char *)"sendq-drop", NULL };
	void (*old)(int);
	int   fd, status, rc;
	pid_t pid;

	if ((fd = sendq_helper_spawn(argv, STDIN_FILENO, &pid, 0,
		 " (message not queued)")) < 0)
		return EX_TEMPFAIL;
	old = signal(SIGPIPE, SIG_IGN);
	rc = sendq_feed_helper(fd, envlines, s);
	close(fd);
	signal(SIGPIPE, old);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "sendq: waitpid: %s\n",
			    strerror(errno));
			return EX_TEMPFAIL;
		}
	if (!WIFEXITED(status)) {
		fprintf(stderr,
		    "sendq: the drop helper %s was killed by signal %d "
		    "(message not queued)\n",
		    path, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		return EX_TEMPFAIL;
	}
	switch (WEXITSTATUS(status)) {
	case 0:
		if (rc != 0) /* it exited 0 without reading all: a bug */
			break;
		c->route = "into the maildrop, sendqd is not running: it will "
			   "be queued when sendqd starts";
		return 0;
	case EX_DATAERR:
	case EX_CONFIG:
		return WEXITSTATUS(status);
	case 127:
		return EX_TEMPFAIL;
	default:
		break;
	}
	fprintf(stderr,
	    "sendq: the drop helper %s failed (exit %d%s%s; message not "
	    "queued)\n",
	    path, WEXITSTATUS(status), rc != 0 ? ", write: " : "",
	    rc != 0 ? strerror(-rc) : "");
	return EX_TEMPFAIL;
}

/*
 * The wire rules (msgfix.h) once the whole message was read: a message
 * the wire cannot carry is refused (exit 65, the reason in c->refused);
 * one that must be re-encoded is rewritten in the spool writer before
 * it is committed, while a drop file is left for the pick-up to
 * rewrite (it applies the same rules).  Returns 0 or an exit code after
 * printing.
 */
static int
sendq_fix(struct sendq_ctx *c, struct sendq_sink *s, struct msgfix_scan *scan)
{
	struct sq_err err = { 0 };
	int           rc;

	(void)s;
	/* Refuse here what no path can carry; what can be re-encoded is
	 * re-encoded where it is written to the spool (sendqd's submit,
	 * or the pick-up of a drop file). */
	msgfix_scan_end(scan, NULL);
	rc = msgfix_verdict(scan, &err) == MSGFIX_REFUSE ? SQ_EPARSE : 0;
	if (rc == 0)
		return 0;
	if (rc != SQ_EPARSE) {
		fprintf(stderr, "sendq: %s (message not queued)\n", err.msg);
		return EX_TEMPFAIL;
	}
	snprintf(c->refused, sizeof(c->refused), "%s", err.msg);
	fprintf(stderr, "sendq: %s (message not queued)\n", err.msg);
	return EX_DATAERR;
}

/* The header block as read by sendq_submit_header(). */
struct sendq_head {
	struct buf     hdr;       /* the header fields */
	struct buf     line;      /* the first line after them, if any */
	enum sendq_dot state;     /* the body's dot state after line */
	int            ended;     /* the message ended in the header */
	int            body_line; /* line is body, not a blank line */
};

static void
sendq_head_init(struct sendq_head *hd)
{
	memset(hd, 0, sizeof(*hd));
	hd->state = SENDQ_DOT_BOL;
	buf_init(&hd->hdr, MAILMSG_HEADER_MAX);
	buf_init(&hd->line, MAILMSG_HEADER_MAX);
}

/*
 * The envelope from the command line, or for -bs from smtp_sender and
 * smtp_rcpts (created now, by the real uid): *orig gets the sender as
 * given (qualified), env the rewritten sender and every recipient.
 * Returns 0 or the exit code after printing.
 */
static int
sendq_submit_envelope(struct sendq_ctx *c, struct envelope *env,
    const char *smtp_sender, char *const *smtp_rcpts, size_t n_smtp,
    char **orig)
{
	const struct sendq_opts *o = c->o;
	size_t                   i;
	int                      rc, ex = EX_NOUSER;

	env->created = (int64_t)time(NULL);
	env->uid = (long)getuid();
	if (smtp_sender != NULL)
		*orig = rewrite_qualify(smtp_sender, c->rw.default_domain);
	else
		*orig = o->sender != NULL ? sendq_sender_arg(c, o->sender) :
					    sendq_default_sender(c, &ex);
	if (*orig == NULL)
		return o->sender != NULL ? EX_DATAERR : ex;
	free(env->sender);
	env->sender = rewrite_sender(&c->rw, *orig);
	if (env->sender[0] != '\0' &&
	    (rc = sendq_check(env->sender, "sender (rewrite_sender)")) != 0)
		return rc;
	for (i = 0; smtp_sender != NULL && i < n_smtp; i++)
		if ((rc = sendq_add_one(c, env, smtp_rcpts[i], "recipient")) !=
		    0)
			return rc;
	for (i = 0; smtp_sender == NULL && i < (size_t)o->n_rcpts; i++) {
		if ((rc = sendq_add_list(c, env, o->rcpts[i],
			 strlen(o->rcpts[i]), "recipient")) != 0)
			return rc;
	}
	return 0;
}

/*
 * The header block from in, line by line, into hd (its buffers
 * initialised by the caller); every line read is fed to scan.  Returns 0
 * or the exit code after printing.
 */
static int
sendq_submit_header(struct sendq_in *in, int ignore_dots,
    struct msgfix_scan *scan, struct sendq_head *hd)
{
	struct buf *line = &hd->line;
	int         lrc;

	for (;;) {
		line->len = 0;
		lrc = sendq_in_line(in, line, MAILMSG_HEADER_MAX);
		if (lrc < 0)
			return sendq_read_failed();
		if (lrc == 0 ||
		    (lrc == 1 && !ignore_dots &&
			sendq_lone_dot(line->data, line->len))) {
			line->len = 0;
			hd->ended = 1;
			return 0;
		}
		msgfix_scan_feed(scan, line->data, line->len, NULL);
		switch (mailmsg_line_kind(line->data, line->len)) {
		case MAILMSG_LINE_CONT:
			if (hd->hdr.len == 0) {
				hd->body_line = 1;
				break;
			}
			/* FALLTHROUGH */
		case MAILMSG_LINE_FIELD:
			if (lrc == 2 ||
			    buf_append(&hd->hdr, line->data, line->len) != 0) {
				fprintf(stderr,
				    "sendq: header section too large (more "
				    "than %d bytes)\n",
				    MAILMSG_HEADER_MAX);
				return EX_DATAERR;
			}
			continue;
		case MAILMSG_LINE_BLANK:
			break;
		case MAILMSG_LINE_OTHER:
			hd->body_line = 1;
			break;
		}
		if (lrc == 2 || line->data[line->len - 1] != '\n')
			hd->state = SENDQ_DOT_MID;
		return 0;
	}
}

/* With extract (-t, not for -bs): the recipients of the To, Cc and Bcc
 * fields of hdr into env.  Then env must have a recipient.  Returns 0
 * or the exit code after printing. */
static int
sendq_submit_extract(struct sendq_ctx *c, struct envelope *env,
    const struct buf *hdr, int extract)
{
	static const char *const rcpt_fields[] = { "to", "cc", "bcc" };
	struct mailmsg_header    h;
	char                    *what;
	size_t                   i;
	long                     fi;
	int                      rc = 0;

	memset(&h, 0, sizeof(h));
	mailmsg_scan(hdr->data, hdr->len, &h);
	for (i = 0; extract && rc == 0 && i < 3; i++) {
		for (fi = mailmsg_find(&h, hdr->data, rcpt_fields[i], 0);
		     rc == 0 && fi >= 0; fi = mailmsg_find(&h, hdr->data,
					     rcpt_fields[i], (size_t)fi + 1)) {
			what = xasprintf("%.*s field",
			    (int)h.fields[fi].name_len,
			    hdr->data + h.fields[fi].off);
			rc = sendq_add_list(c, env,
			    hdr->data + h.fields[fi].value_off,
			    h.fields[fi].value_len, what);
			free(what);
		}
	}
	mailmsg_header_fini(&h);
	if (rc == 0 && env->n_rcpts == 0) {
		fprintf(stderr,
		    "sendq: no recipients (give them as arguments, or use "
		    "-t)\n");
		rc = EX_DATAERR;
	}
	return rc;
}

/* 1 when line ends in CR LF. */
static int
sendq_line_crlf(const struct buf *line)
{
	return line->len >= 2 && line->data[line->len - 2] == '\r' &&
	    line->data[line->len - 1] == '\n';
}

/* DSN requests (-N, -R, -V), kept in the envelope for sendqd. */
static void
sendq_submit_dsn(const struct sendq_opts *o, struct envelope *env)
{
	size_t i;

	env->ret = o->ret;
	if (o->envid[0] != '\0' && envelope_set_envid(env, o->envid) != 0)
		log_fatalx("sendq: checked ENVID refused");
	for (i = 0; o->notify != 0 && i < env->n_rcpts; i++)
		if (envelope_set_rcpt_dsn(env, i, o->notify, NULL) != 0)
			log_fatalx("sendq: checked NOTIFY refused");
}

/* The whole message into the sink: the added fields (prefix), the
 * header, the first line after it, the rest of in, then msgfix's
 * verdict applied.  Returns 0 or the exit code after printing. */
static int
sendq_submit_write(struct sendq_ctx *c, struct sendq_in *in,
    struct sendq_sink *sink, struct msgfix_scan *scan,
    const struct sendq_head *hd, const char *prefix, const char *eol,
    int ignore_dots)
{
	int rc;

	rc = sendq_write(sink, prefix, strlen(prefix));
	if (rc == 0)
		rc = sendq_write(sink, hd->hdr.data, hd->hdr.len);
	/* A body that starts without a blank line gets one. */
	if (rc == 0 && hd->body_line)
		rc = sendq_write(sink, eol, strlen(eol));
	if (rc == 0)
		rc = sendq_write(sink, hd->line.data, hd->line.len);
	sink->scan = scan;
	if (rc == 0 && !hd->ended)
		rc = sendq_stream_body(in, sink, ignore_dots, hd->state);
	if (rc == 0)
		rc = sendq_fix(c, sink, scan);
	return rc;
}

/*
 * Queue the message in sink: sendqd names, writes and commits it, else
 * the maildrop helper takes it under token (made now if it is still "").
 * h and hdr are its header, prefix_len the length of the added fields
 * before it.  qid (ENVELOPE_ID_MAX bytes) gets the queue id.  Returns
 * EX_OK or the exit code.
 */
static int
sendq_submit_queue(struct sendq_ctx *c, struct sendq_sink *sink,
    struct envelope *env, const struct mailmsg_header *h, const struct buf *hdr,
    size_t prefix_len, char *token, const char *eol, char *qid)
{
	char *envlines;
	int   rc;

	snprintf(env->id, sizeof(env->id), "new"); /* sendqd's to set */
	if ((rc = sendq_to_daemon(c, sink, env, qid)) > 0)
		return rc;
	if (rc < 0) {
		envlines = sendq_envlines(env, eol);
		if ((rc = sendq_droppable(c->o, env, h, hdr->data,
			 strlen(envlines), prefix_len + hdr->len)) == 0)
			rc = sendq_to_helper(c, sink, envlines);
		free(envlines);
		if (rc != 0)
			return rc;
		if (token[0] == '\0')
			sendq_token(token);
		snprintf(qid, ENVELOPE_ID_MAX, "%s", token);
	}
	if (c->o->verbose)
		fprintf(stderr,
		    "sendq: queued as %s, %s (from <%s>, %zu recipient%s)\n",
		    qid, c->route, env->sender, env->n_rcpts,
		    env->n_rcpts == 1 ? "" : "s");
	return EX_OK;
}

/*
 * Read, check and queue one message from in.  The envelope comes from the
 * options, or, for -bs, from smtp_sender/smtp_rcpts (then nothing is
 * read from the options but -F).  idbuf (ENVELOPE_ID_MAX bytes, may be
 * NULL) gets the queue id.  Returns the exit code.
 */
static int
sendq_submit(struct sendq_ctx *c, struct sendq_in *in, const char *smtp_sender,
    char *const *smtp_rcpts, size_t n_smtp, char *idbuf)
{
	const struct sendq_opts *o = c->o;
	struct sendq_sink        sink;
	struct sendq_head        hd;
	struct mailmsg_header    h;
	struct msgfix_scan       scan;
	struct envelope         *env;
	char                    *prefix = NULL, *orig = NULL;
	char        token[ENVELOPE_ID_MAX] = "", qid[ENVELOPE_ID_MAX] = "";
	const char *eol;
	int         rc, ignore_dots, present;

	memset(&sink, 0, sizeof(sink));
	ignore_dots = o->ignore_dots || smtp_sender != NULL;
	sendq_head_init(&hd);
	memset(&h, 0, sizeof(h));
	/* The message as read (before Bcc removal and the added fields) is
	 * scanned for what the wire cannot carry (msgfix.h), so that line
	 * numbers in a refusal are the submitter's. */
	msgfix_scan_init(&scan, NULL);
	c->refused[0] = '\0';

	env = envelope_new();
	if ((rc = sendq_submit_envelope(c, env, smtp_sender, smtp_rcpts, n_smtp,
		 &orig)) != 0 ||
	    (rc = sendq_submit_header(in, ignore_dots, &scan, &hd)) != 0 ||
	    (rc = sendq_submit_extract(c, env, &hd.hdr,
		 o->extract && smtp_sender == NULL)) != 0)
		goto out;
	/* Bcc is for the envelope only, with or without -t. */
	hd.hdr.len = mailmsg_remove_fields(hd.hdr.data, hd.hdr.len, "bcc");
	sendq_rewrite_from(c, &hd.hdr, orig, env->sender);

	mailmsg_scan(hd.hdr.data, hd.hdr.len, &h);
	/* The message's line ending: its header's, else its first line's. */
	if (hd.hdr.len > 0)
		eol = h.crlf ? "\r\n" : "\n";
	else
		eol = sendq_line_crlf(&hd.line) ? "\r\n" : "\n";
	sendq_submit_dsn(o, env);

	/* The whole message into the sink: added fields, header, body. */
	/* The token names an added Message-ID, else only a drop file. */
	present = mailmsg_present(&h, hd.hdr.data);
	if (!(present & MAILMSG_HAS_MSGID))
		sendq_token(token);
	prefix = sendq_added_fields(present, env, o, token, c->hostname, eol);
	if ((rc = sendq_sink_open(c, &sink)) != 0 ||
	    (rc = sendq_submit_write(c, in, &sink, &scan, &hd, prefix, eol,
		 ignore_dots)) != 0)
		goto out;
	env->body_8bit = sink.eightbit;

	if ((rc = sendq_submit_queue(c, &sink, env, &h, &hd.hdr, strlen(prefix),
		 token, eol, qid)) != EX_OK)
		goto out;
	if (idbuf != NULL)
		snprintf(idbuf, ENVELOPE_ID_MAX, "%s", qid);
out:
	sendq_sink_fini(&sink);
	mailmsg_header_fini(&h);
	envelope_free(env);
	buf_fini(&hd.hdr);
	buf_fini(&hd.line);
	free(prefix);
	free(orig);
	return rc;
}

/* -bv: what each recipient argument becomes; nothing is sent. */
static int
sendq_verify(struct sendq_ctx *c)
{
	struct envelope *env;
	size_t           i;
	int              k, rc = EX_OK;

	if (c->o->n_rcpts == 0) {
		fprintf(stderr,
		    "sendq: -bv: give the addresses to check as arguments\n");
		return EX_USAGE;
	}
	for (k = 0; k < c->o->n_rcpts; k++) {
		env = envelope_new();
		if (sendq_add_list(c, env, c->o->rcpts[k],
			strlen(c->o->rcpts[k]), "recipient") != 0) {
			rc = EX_DATAERR;
			envelope_free(env);
			continue;
		}
		for (i = 0; i < env->n_rcpts; i++) {
			printf("%s... deliverable: relayed as <%s>\n",
			    c->o->rcpts[k], env->rcpts[i]);
		}
		envelope_free(env);
	}
	if (fflush(stdout) != 0 && rc == EX_OK)
		rc = EX_IOERR;
	return rc;
}

/* Write what p has to say to standard output.  Returns 0 or -1. */
static int
sendq_smtp_flush(struct intake_proto *p)
{
	const char *data;
	size_t      len;
	ssize_t     n;

	for (;;) {
		intake_proto_output(p, &data, &len);
		if (len == 0)
			return 0;
		do
			n = write(STDOUT_FILENO, data, len);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return -1;
		intake_proto_consumed(p, (size_t)n);
	}
}

/* -bs, the final dot: the message in msg queued (when the whole of it
 * was kept: in_data) and answered.  Returns 1 when it was refused for
 * its content (554 5.6.0), else 0. */
static int
sendq_smtp_end(struct sendq_ctx *c, struct intake_proto *p,
    const struct buf *msg, int in_data)
{
	const struct intake_proto_txn *txn = intake_proto_txn(p);
	struct sendq_in               *in;
	char                           id[ENVELOPE_ID_MAX], **rcpts;
	size_t                         i;
	int                            qrc;

	in = sendq_in_new(-1);
	in->mem = msg->data != NULL ? msg->data : "";
	in->mem_len = msg->len;
	rcpts = xcalloc(txn->n_rcpts + 1, sizeof(*rcpts));
	for (i = 0; i < txn->n_rcpts; i++)
		rcpts[i] = txn->rcpts[i].addr;
	qrc = in_data ?
	    sendq_submit(c, in, txn->sender, rcpts, txn->n_rcpts, id) :
	    EX_TEMPFAIL;
	free(rcpts);
	free(in);
	if (qrc == EX_DATAERR && c->refused[0] != '\0') {
		/* Content the wire cannot carry: 554 5.6.0, and exit 65 at
		 * the end. */
		intake_proto_data_done(p, INTAKE_PROTO_REJECTED, c->refused);
		return 1;
	}
	intake_proto_data_done(p,
	    qrc == EX_OK ? INTAKE_PROTO_QUEUED : INTAKE_PROTO_TEMPFAIL, id);
	return 0;
}

/*
 * -bs: SMTP on standard input and output, each message queued as sendq
 * queues one from standard input.  Returns the exit code: 0 unless
 * standard input or output failed.
 */
static int
sendq_smtp(struct sendq_ctx *c)
{
	struct intake_proto_params params;
	struct intake_proto       *p;
	struct intake_proto_event  ev;
	struct buf                 msg;
	char                       rbuf[SENDQ_READ_CHUNK];
	size_t                     off = 0, len = 0;
	ssize_t                    n;
	uint64_t                   max;
	int rc = EX_OK, eof = 0, in_data = 0, refused = 0;

	max = c->cfg->intake.max_message_size;
	memset(&params, 0, sizeof(params));
	params.hostname = c->hostname;
	params.max_message_size = max;
	params.max_recipients = c->cfg->intake.max_recipients;
	params.greeting = INTAKE_PROTO_GREET;
	p = intake_proto_new(&params);
	buf_init(&msg,
	    max != 0 && max < SIZE_MAX / 2 ? (size_t)max + 1 :
					     (size_t)DROPFILE_SIZE_DEFAULT + 1);
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		while (intake_proto_next_event(p, &ev)) {
			switch (ev.type) {
			case INTAKE_PROTO_EV_DATA:
				msg.len = 0;
				in_data = 1;
				intake_proto_data_start(p, 1);
				break;
			case INTAKE_PROTO_EV_BODY:
				if (in_data &&
				    buf_append(&msg, ev.data, ev.len) != 0)
					in_data = 0; /* cannot happen:
							 * SIZE stops it */
				break;
			case INTAKE_PROTO_EV_ABORT:
				msg.len = 0;
				in_data = 0;
				break;
			case INTAKE_PROTO_EV_END:
				refused |= sendq_smtp_end(c, p, &msg, in_data);
				in_data = 0;
				break;
			case INTAKE_PROTO_EV_CLOSE:
				break;
			}
		}
		if (sendq_smtp_flush(p) != 0) {
			rc = EX_IOERR;
			break;
		}
		if (intake_proto_closed(p))
			break;
		if (off < len) {
			off += intake_proto_feed(p, rbuf + off, len - off);
			continue;
		}
		if (eof) {
			/* The client went away without QUIT. */
			break;
		}
		n = sq_read(STDIN_FILENO, rbuf, sizeof(rbuf));
		if (n < 0) {
			rc = EX_IOERR;
			break;
		}
		if (n == 0) {
			eof = 1;
			continue;
		}
		off = 0;
		len = (size_t)n;
	}
	buf_fini(&msg);
	intake_proto_free(p);
	return rc == EX_OK && refused ? EX_DATAERR : rc;
}

/* Do what c->o->mode asks (submitting the message on standard input
 * by default).  Returns the exit code. */
static int
sendq_run(struct sendq_ctx *c)
{
	int rc;

	switch (c->o->mode) {
	case SENDQ_MODE_FLUSH:
		rc = sendq_flush(c->cfg, c->o->verbose);
		break;
	case SENDQ_MODE_LIST:
		rc = sendq_list_queue(c->cfg, c->spool_dir);
		break;
	case SENDQ_MODE_VERIFY:
		rc = sendq_verify(c);
		break;
	case SENDQ_MODE_NEWALIASES:
		fprintf(stderr,
		    "sendq: nothing to do: sendq has no alias database, "
		    "[aliases] in %s is read as it is\n",
		    c->cfg->path);
		rc = EX_OK;
		break;
	case SENDQ_MODE_SMTP:
		rc = sendq_smtp(c);
		break;
	default: {
		struct sendq_in *in = sendq_in_new(STDIN_FILENO);

		rc = sendq_submit(c, in, NULL, NULL, 0, NULL);
		free(in);
		break;
	}
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct sendq_opts o = { 0 };
	struct sendq_ctx  c;
	struct config    *cfg = NULL;
	struct sq_err     err = { 0 };
	char              hostbuf[256];
	const char       *prog, *hostname;
	int               rc;

	/* The journal check waits for a first line, which a run that
	 * queues its message never writes. */
	log_init_deferred("sendq", LOG_LEVEL_WARN);
	prog = argv[0] != NULL ? argv[0] : "sendq";
	if (strrchr(prog, '/') != NULL)
		prog = strrchr(prog, '/') + 1;
	if (strcmp(prog, "mailq") == 0)
		o.mode = SENDQ_MODE_LIST;
	else if (strcmp(prog, "newaliases") == 0)
		o.mode = SENDQ_MODE_NEWALIASES;
	if ((rc = sendq_parse_args(argc, argv, &o)) != 0)
		return rc;
	/* A size limit (RLIMIT_FSIZE) fails a write instead of killing the
	 * process: for the listings, and the drop helper, which writes a
	 * file, has it set in its child.  A message handed to sendqd is
	 * written by sendqd. */
	if (o.mode != SENDQ_MODE_DELIVER)
		signal(SIGXFSZ, SIG_IGN);
	if (o.mode == SENDQ_MODE_HELP) {
		sendq_usage(stdout);
		return EX_OK;
	}
	if (o.mode == SENDQ_MODE_VERSION) {
		printf("sendq %s\n", SENDQ_VERSION);
		return EX_OK;
	}
	if (config_load_file_opts(o.config_path != NULL ? o.config_path :
							  CONFIG_DEFAULT_PATH,
		CONFIG_LOAD_CLIENT, &cfg, &err) != 0) {
		fprintf(stderr, "sendq: %s\n", err.msg);
		return EX_CONFIG;
	}
	memset(&c, 0, sizeof(c));
	c.o = &o;
	c.cfg = cfg;
	c.spool_dir = cfg->spool_dir;
	c.control_path = cfg->control_socket;
	if (cfg->hostname != NULL)
		hostname = cfg->hostname;
	else if (gethostname(hostbuf, sizeof(hostbuf)) == 0) {
		hostbuf[sizeof(hostbuf) - 1] = '\0';
		hostname = hostbuf;
	} else {
		fprintf(stderr, "sendq: gethostname: %s\n", strerror(errno));
		config_free(cfg);
		return EX_OSERR;
	}
	c.hostname = hostname;
	rewrite_init(&c.rw, cfg, hostname);

	rc = sendq_run(&c);
	config_free(cfg);
	return rc;
}
