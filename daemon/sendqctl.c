/*
 * sendqctl.c - the operator's tool: `sendqctl [-C FILE] [--json] COMMAND
 * [ID]` talks to sendqd over its control socket (control.h).
 *
 * How it works: the arguments are checked first (command known, queue id
 * given and well-formed where one is needed), then the configuration is
 * read for spool_dir and control_socket.  The request line goes to the
 * socket through queue_view_request(); the first line of the answer is
 * "ok" (the rest is printed as it is) or "error: REASON"; "error:
 * permission denied: ..." (the daemon checks every request against the
 * caller's uid and groups, control.h) exits 77.  When no daemon listens
 * (the socket file is missing or refuses connections), `list` and `show`
 * read the spool directly through queue_view, with a note on standard
 * error: root and the spool's owner see every message.  Anyone else
 * cannot read the spool: `list` then runs the setgid lister sendq-showq
 * (sendq_showq.c), which prints the caller's own messages; `show` exits
 * 69, as every other command without the daemon.  Exit codes: see
 * sendqctl_usage().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "queue_view.h"
#include "sendqctl_check.h"
#include "sendqctl_oauth.h"
#include "spool.h"
#include "util.h"

#define SENDQCTL_TIMEOUT     120 /* seconds for each read or write */
#define SENDQCTL_EXIT_FAILED 1

struct sendqctl_cmd {
	const char *name;
	int         needs_id;
	int         offline; /* works on the spool without sendqd */
	const char *help;
};

static const struct sendqctl_cmd sendqctl_cmds[] = {
	{ "status", 0, 0,
	    "a check's verdict line, then per smarthost: connections, queued, "
	    "deferred, last error" },
	{ "list", 0, 1,
	    "every queued message: id, size, age, sender, recipients, state, "
	    "error" },
	{ "show", 1, 1, "one message: its whole envelope and its header" },
	{ "flush", 0, 0, "try every queued message now (also sendq -q)" },
	{ "retry", 1, 0, "try one message now" },
	{ "hold", 1, 0, "keep a message queued but do not try it" },
	{ "release", 1, 0, "undo hold" },
	{ "delete", 1, 0, "remove a message from the queue (no bounce)" },
	{ "bounce", 1, 0, "fail a message now: bounce it to its sender" },
	/* hold, release, delete and bounce also take ALL or a selection
	 * instead of ID (sendqctl_check.h). */
	{ "reload", 0, 0,
	    "read the configuration again (as SIGHUP); says why when it is "
	    "refused" },
};

#define SENDQCTL_N_CMDS (sizeof(sendqctl_cmds) / sizeof(sendqctl_cmds[0]))

static void
sendqctl_usage(FILE *fp)
{
	char   synopsis[32];
	size_t i;

	fprintf(fp,
	    "usage: sendqctl [-C FILE] [--json] COMMAND [ID]\n       sendqctl "
	    "[--json] status [--warn-age DURATION] [--max-age DURATION]\n      "
	    " sendqctl [--json] delete|hold|release|bounce ID | ALL | "
	    "SELECTION\n                [--dry-run]\n\nCommands:\n");
	for (i = 0; i < SENDQCTL_N_CMDS; i++) {
		snprintf(synopsis, sizeof(synopsis), "%s%s",
		    sendqctl_cmds[i].name,
		    sendqctl_cmds[i].needs_id ? " ID" : "");
		fprintf(fp, "  %-12s %s\n", synopsis, sendqctl_cmds[i].help);
	}
	fprintf(fp,
	    "  oauth init NAME    authorise OAuth smarthost NAME (device "
	    "flow)\n  oauth status NAME  its refresh token and sendqd's last "
	    "refresh\n\nOptions:\n  -C FILE       configuration file "
	    "(default " CONFIG_DEFAULT_PATH
	    ")\n  --json        machine-readable output (JSON)\n  -h, --help   "
	    " this text\n  -V, --version print the version\n\nstatus (a "
	    "monitoring check: the first line is "
	    "\"OK|WARNING|CRITICAL|UNKNOWN:\n"
	    "SUMMARY | PERFDATA\", the exit status that of "
	    "monitoring-plugins):\n"
	    "  --warn-age DURATION  WARNING when the oldest message (not held) "
	    "is older\n  --max-age DURATION   CRITICAL when it is older "
	    "(DURATION: 90s, 15m, 2h, 1d)\n\nSelection of delete, hold, "
	    "release and bounce (instead of one ID; ALL\ntakes every queued "
	    "message, the options narrow it and combine with AND):\n  --from "
	    "ADDR          sender is ADDR (@DOMAIN: any sender at DOMAIN)\n  "
	    "--to ADDR            a recipient is ADDR (@DOMAIN: any at "
	    "DOMAIN)\n  --relay NAME         routed to smarthost NAME\n  "
	    "--older-than DURATION  queued longer than DURATION\n  --dry-run, "
	    "-n        list what would be affected, change nothing\nA message "
	    "being delivered at that moment is skipped and listed as "
	    "busy.\n\nThe commands talk to sendqd over its control socket "
	    "([sendq]\ncontrol_socket, default " CONFIG_DEFAULT_SOCKET
	    ").  Everyone may\nlist and show their own messages; status, every "
	    "message and the commands\nthat change the queue are for root, the "
	    "user sendqd runs as and members\nof [sendq] admin_group.  When "
	    "sendqd is not running, list and show read\nthe spool directly "
	    "(root and sendqd's user), and for anyone else list\nshows their "
	    "own messages through the setgid helper sendq-showq; the\nother "
	    "commands need the daemon.\n\nExit status:\n  0   done (status: "
	    "OK)\n  1   the command failed (for example: no such message); "
	    "status: WARNING\n  2   status: CRITICAL (a smarthost DOWN or "
	    "HELD, --max-age exceeded,\n      sendqd not running)\n  3   "
	    "status: UNKNOWN (sendqd's answer could not be read)\n  64  usage "
	    "error (unknown command, missing or malformed ID)\n  69  sendqd is "
	    "not running (start it with systemctl start sendq)\n  77  "
	    "permission denied (root, sendqd's user or admin_group only)\n  78 "
	    " configuration error\n");
}

static const struct sendqctl_cmd *
sendqctl_find(const char *name)
{
	size_t i;

	for (i = 0; i < SENDQCTL_N_CMDS; i++)
		if (strcmp(sendqctl_cmds[i].name, name) == 0)
			return &sendqctl_cmds[i];
	return NULL;
}

static void
sendqctl_print_error(const char *msg, int json)
{
	struct buf b;

	fprintf(stderr, "sendqctl: %s\n", msg);
	if (!json)
		return;
	buf_init(&b, 4096);
	buf_append_str(&b, "{\"error\":");
	queue_view_json_string(&b, msg, strlen(msg));
	buf_append_str(&b, "}\n");
	fwrite(b.data, 1, b.len, stdout);
	buf_fini(&b);
}

static int
sendqctl_print(const char *data, size_t len)
{
	if (len > 0 && fwrite(data, 1, len, stdout) != len) {
		fprintf(stderr, "sendqctl: write to standard output: %s\n",
		    strerror(errno));
		return EX_IOERR;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "sendqctl: write to standard output: %s\n",
		    strerror(errno));
		return EX_IOERR;
	}
	return EX_OK;
}

/* list through sendq-showq (sendqd is not running, the spool is not
 * the caller's to read).  The exit code. */
static int
sendqctl_showq(struct buf *out, int json)
{
	struct sq_err err = { 0 };
	int           rc, status = 0;

	out->len = 0;
	rc = queue_view_showq(json, out, &status, &err);
	if (rc == -ENOENT) {
		sendqctl_print_error(
		    "sendqd is not running, and only root and the user sendqd "
		    "runs as may read the spool directly (start it with "
		    "systemctl start sendq)",
		    json);
		return EX_UNAVAILABLE;
	}
	if (rc != 0) {
		sendqctl_print_error(err.msg, json);
		return SENDQCTL_EXIT_FAILED;
	}
	if (status != 0) { /* it printed why on standard error */
		if (json)
			sendqctl_print_error(
			    "sendqd is not running, and sendq-showq could not "
			    "list the queue",
			    json);
		return SENDQCTL_EXIT_FAILED;
	}
	fprintf(stderr,
	    "sendqctl: sendqd is not running: your messages, as sendq-showq "
	    "lists them\n");
	return sendqctl_print(out->data, out->len);
}

/* list/show straight from the spool (sendqd is not running). */
static int
sendqctl_offline(const struct sendqctl_cmd *cmd, const char *id, int json,
    const char *spool_dir)
{
	struct sq_err err = { 0 };
	struct buf    out;
	long          filter;
	int           rc, ex;

	filter = queue_view_own_filter(spool_dir);
	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	if (strcmp(cmd->name, "list") == 0)
		rc = queue_view_list(spool_dir, filter, json, NULL, NULL, &out,
		    &err);
	else
		rc = queue_view_show(spool_dir, id, filter, json, NULL, NULL,
		    &out, &err);
	if (rc == -ENOENT && strcmp(cmd->name, "list") == 0) {
		/* No spool yet: nothing was ever queued. */
		out.len = 0;
		buf_append_str(&out, json ? "[]\n" : "Mail queue is empty\n");
		rc = 0;
	}
	if ((rc == -EACCES || rc == -EPERM) && strcmp(cmd->name, "list") == 0) {
		/* queue/ is for sendqd and the lister's group: the setgid
		 * sendq-showq lists the caller's own messages. */
		ex = sendqctl_showq(&out, json);
	} else if (rc == -EACCES || rc == -EPERM) {
		/* Bodies are sendqd's own (0600): only the daemon can
		 * show a user their message. */
		sendqctl_print_error(
		    "sendqd is not running, and only root and the user sendqd "
		    "runs as may read the spool directly (start it with "
		    "systemctl start sendq)",
		    json);
		ex = EX_UNAVAILABLE;
	} else if (rc != 0) {
		sendqctl_print_error(err.msg, json);
		ex = SENDQCTL_EXIT_FAILED;
	} else {
		fprintf(stderr,
		    "sendqctl: sendqd is not running: reading the spool "
		    "directly\n");
		ex = sendqctl_print(out.data, out.len);
	}
	buf_fini(&out);
	return ex;
}

/* Print the daemon's answer; returns the exit code. */
static int
sendqctl_answer(struct buf *out, int json)
{
	char  *nl, *msg;
	size_t first;

	nl = memchr(out->data, '\n', out->len);
	first = nl != NULL ? (size_t)(nl - out->data) : out->len;
	if (first == 2 && memcmp(out->data, "ok", 2) == 0)
		return sendqctl_print(out->data + first + 1,
		    out->len - first - 1);
	if (first > 7 && memcmp(out->data, "error: ", 7) == 0) {
		msg = xstrndup(out->data + 7, first - 7);
		sendqctl_print_error(msg, json);
		free(msg);
		if (first >= 7 + 18 &&
		    memcmp(out->data + 7, "permission denied:", 18) == 0)
			return EX_NOPERM;
		return SENDQCTL_EXIT_FAILED;
	}
	sendqctl_print_error("unexpected answer from sendqd", json);
	return SENDQCTL_EXIT_FAILED;
}

/*
 * The options of status and of the bulk commands against the command:
 * a bulk command (ALL or a selection instead of an ID) sets *bulk, and
 * *id to NULL unless it was ALL (then non-NULL).  0, or EX_USAGE after
 * a message.
 */
static int
sendqctl_main_opts(const struct sendqctl_cmd *cmd,
    const struct sendqctl_opts *o, const char **id, int *bulk)
{
	int may_bulk = strcmp(cmd->name, "delete") == 0 ||
	    strcmp(cmd->name, "hold") == 0 ||
	    strcmp(cmd->name, "release") == 0 ||
	    strcmp(cmd->name, "bounce") == 0;

	if ((o->max_age >= 0 || o->warn_age >= 0) &&
	    strcmp(cmd->name, "status") != 0) {
		fprintf(stderr,
		    "sendqctl: --max-age and --warn-age are options of "
		    "status\n");
		return EX_USAGE;
	}
	if ((o->n_select > 0 || o->dry_run) && !may_bulk) {
		fprintf(stderr,
		    "sendqctl: a selection (--from, --to, --relay, "
		    "--older-than, --dry-run) is for delete, hold, release and "
		    "bounce\n");
		return EX_USAGE;
	}
	if (!may_bulk)
		return 0;
	if (*id != NULL && strcmp(*id, "ALL") == 0) {
		*bulk = 1;
		return 0;
	}
	if (*id != NULL && (o->n_select > 0 || o->dry_run)) {
		fprintf(stderr,
		    "sendqctl: %s takes an ID or a selection, not both\n",
		    cmd->name);
		return EX_USAGE;
	}
	*bulk = *id == NULL && (o->n_select > 0 || o->dry_run);
	return 0;
}

/* sendqctl oauth init|status NAME */
static int
sendqctl_oauth(const char *config_path, const char *const *args, int n)
{
	struct config *cfg = NULL;
	struct sq_err  err = { 0 };
	int            ex;

	if (n != 2 ||
	    (strcmp(args[0], "init") != 0 && strcmp(args[0], "status") != 0)) {
		fprintf(stderr,
		    "sendqctl: usage: sendqctl oauth init|status NAME (see "
		    "sendqctl --help)\n");
		return EX_USAGE;
	}
	if (config_load_file(config_path, &cfg, &err) != 0) {
		fprintf(stderr, "sendqctl: %s\n", err.msg);
		return EX_CONFIG;
	}
	ex = sendqctl_oauth_main(cfg, args[0], args[1]);
	config_free(cfg);
	return ex;
}

/* What the command line asked for, besides the sendqctl_opts. */
struct sendqctl_args {
	const struct sendqctl_cmd *cmd;
	const char                *config_path, *id, *oauth_args[2];
	int                        json, oauth, n_oauth;
};

/* One word that is neither an option nor taken by sendqctl_opts: the
 * command, its queue id or an oauth argument.  Returns -1 to go on, or
 * the exit code. */
static int
sendqctl_args_word(struct sendqctl_args *a, const char *w)
{
	char safe[64];

	if (a->oauth) {
		if (a->n_oauth == 2) {
			fprintf(stderr,
			    "sendqctl: too many arguments for oauth (see "
			    "sendqctl --help)\n");
			return EX_USAGE;
		}
		a->oauth_args[a->n_oauth++] = w;
		return -1;
	}
	if (a->cmd == NULL && strcmp(w, "oauth") == 0) {
		a->oauth = 1;
		return -1;
	}
	if (a->cmd == NULL) {
		if ((a->cmd = sendqctl_find(w)) == NULL) {
			sq_printable(safe, sizeof(safe), w, strlen(w));
			fprintf(stderr,
			    "sendqctl: unknown command %s (see sendqctl "
			    "--help)\n",
			    safe);
			return EX_USAGE;
		}
	} else if (a->cmd->needs_id && a->id == NULL)
		a->id = w;
	else {
		fprintf(stderr,
		    "sendqctl: too many arguments for %s (see sendqctl "
		    "--help)\n",
		    a->cmd->name);
		return EX_USAGE;
	}
	return -1;
}

/* Read argv into a and opts.  Returns -1 to go on, or the exit code
 * (EX_OK after --help or --version). */
static int
sendqctl_args_parse(struct sendqctl_args *a, struct sendqctl_opts *opts,
    int argc, char **argv)
{
	char safe[64];
	int  i, rc;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			sendqctl_usage(stdout);
			return EX_OK;
		}
		if (strcmp(argv[i], "-V") == 0 ||
		    strcmp(argv[i], "--version") == 0) {
			printf("sendqctl %s\n", SENDQ_VERSION);
			return EX_OK;
		}
		if (strcmp(argv[i], "--json") == 0) {
			a->json = 1;
			continue;
		}
		if (strncmp(argv[i], "-C", 2) == 0) {
			if (argv[i][2] != '\0')
				a->config_path = argv[i] + 2;
			else if (i + 1 < argc)
				a->config_path = argv[++i];
			else {
				fprintf(stderr,
				    "sendqctl: -C needs a file name (see "
				    "sendqctl --help)\n");
				return EX_USAGE;
			}
			continue;
		}
		if ((rc = sendqctl_opts_take(opts, argc, argv, &i)) != 0) {
			if (rc < 0)
				return EX_USAGE;
			continue;
		}
		if (argv[i][0] == '-') {
			sq_printable(safe, sizeof(safe), argv[i],
			    strlen(argv[i]));
			fprintf(stderr,
			    "sendqctl: unknown option %s (see sendqctl "
			    "--help)\n",
			    safe);
			return EX_USAGE;
		}
		if ((rc = sendqctl_args_word(a, argv[i])) >= 0)
			return rc;
	}
	return -1;
}

/* Send a's request to the daemon at cfg's control socket (or answer
 * offline when it is not running).  Returns the exit code. */
static int
sendqctl_send(const struct sendqctl_args *a, struct sendqctl_opts *opts,
    int bulk, const struct config *cfg)
{
	const struct sendqctl_cmd *cmd = a->cmd;
	const char                *path = cfg->control_socket, *id = a->id;
	struct sq_err              err = { 0 };
	struct buf                 out;
	char                      *req;
	int                        rc, ex, json = a->json;

	if (bulk)
		req = sendqctl_bulk_request(cmd->name, id != NULL, opts, json);
	else
		req = xasprintf("%s%s%s%s", cmd->name, id != NULL ? " " : "",
		    id != NULL ? id : "", json ? " --json" : "");
	if (req == NULL)
		return EX_USAGE;
	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	rc = queue_view_request(path, req, SENDQCTL_TIMEOUT, &out, &err);
	free(req);
	if (rc == 0)
		ex = sendqctl_answer(&out, json);
	else if (rc == -ENOENT || rc == -ECONNREFUSED) {
		if (cmd->offline) {
			ex = sendqctl_offline(cmd, id, json, cfg->spool_dir);
		} else {
			fprintf(stderr,
			    "sendqctl: sendqd is not running (start it with "
			    "systemctl start sendq); no daemon listens on %s\n",
			    path);
			ex = EX_UNAVAILABLE;
		}
	} else if (rc == -EACCES || rc == -EPERM) {
		fprintf(stderr,
		    "sendqctl: %s (the control socket and its directory must "
		    "be open to every user: mode 0666 and 0755)\n",
		    err.msg);
		ex = EX_NOPERM;
	} else {
		fprintf(stderr, "sendqctl: %s\n", err.msg);
		ex = EX_UNAVAILABLE;
	}
	buf_fini(&out);
	return ex;
}

int
main(int argc, char **argv)
{
	struct sendqctl_args a = { .config_path = CONFIG_DEFAULT_PATH };
	struct config       *cfg = NULL;
	struct sq_err        err = { 0 };
	struct sendqctl_opts opts;
	char                 safe[64];
	int                  ex, bulk = 0;

	log_init("sendqctl", LOG_LEVEL_WARN);
	sendqctl_opts_init(&opts);
	if ((ex = sendqctl_args_parse(&a, &opts, argc, argv)) >= 0)
		return ex;
	if (a.oauth)
		return sendqctl_oauth(a.config_path, a.oauth_args, a.n_oauth);
	if (a.cmd == NULL) {
		sendqctl_usage(stderr);
		return EX_USAGE;
	}
	if ((ex = sendqctl_main_opts(a.cmd, &opts, &a.id, &bulk)) != 0)
		return ex;
	if (a.cmd->needs_id && a.id == NULL && !bulk) {
		fprintf(stderr,
		    "sendqctl: %s needs a queue id (see sendqctl list)\n",
		    a.cmd->name);
		return EX_USAGE;
	}
	if (a.id != NULL && !bulk && !spool_id_valid(a.id)) {
		sq_printable(safe, sizeof(safe), a.id, strlen(a.id));
		fprintf(stderr,
		    "sendqctl: not a queue id: %s (31 characters 0-9 A-F, as "
		    "sendqctl list shows)\n",
		    safe);
		return EX_USAGE;
	}

	if (config_load_file(a.config_path, &cfg, &err) != 0) {
		fprintf(stderr, "sendqctl: %s\n", err.msg);
		return EX_CONFIG;
	}
	if (strcmp(a.cmd->name, "status") == 0)
		ex = sendqctl_check_status(cfg->control_socket, a.json, &opts);
	else
		ex = sendqctl_send(&a, &opts, bulk, cfg);
	config_free(cfg);
	return ex;
}
