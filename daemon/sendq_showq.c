/*
 * sendq_showq.c - sendq-showq, the setgid helper that lists the caller's
 * own queued messages when sendqd is not running (mailq, sendqctl list).
 * The reading counterpart of sendq-drop (sendq_drop.c), after Postfix's
 * showq.
 *
 * Installed root:sendq-queue mode 2755.  queue/ is 0750 and every
 * queue/ID.env 0640, both of group sendq-queue (which no person is a
 * member of); bodies (ID.msg) stay 0600 (spool.h).  So only this program
 * gets to list queue/ and read envelopes, and it never can read a
 * message.  sendq and sendqctl run it when the control socket does not
 * answer and the caller cannot read the spool, with an empty
 * environment, and print what it writes on standard output.
 *
 * What it does, and nothing else:
 *   - clears its environment; takes no options but --help, --version
 *     and --json or --postfix (the output format: JSON, or Postfix's
 *     mailq listing, instead of text; it widens
 *     nothing that is read); anything else: exit 64; never reads a path
 *     or a queue id from its caller;
 *   - reads the compiled-in configuration CONFIG_DEFAULT_PATH for
 *     spool_dir only (unreadable or invalid: exit 78 with the reason);
 *   - opens SPOOL/queue/ only (spool_open_queue: O_NOFOLLOW), reads the
 *     envelopes and prints queue_view's listing of those whose envelope
 *     uid is the caller's real uid, the body's size taken by fstatat();
 *     exit 0 ("Mail queue is empty" when there is none, also when the
 *     spool does not exist yet);
 *   - queue/ unreadable or another failure: exit 75 with the reason.
 * An envelope of an older install that still has mode 0600 cannot be
 * read and is skipped (sendqd gives them the group at start when it
 * may, spool_set_queue_group).
 *
 * The caller can signal it or close its output (same real uid): it only
 * reads, so nothing is left behind.  It reads other users' envelopes to
 * filter them, but prints nothing of them: the listing is the same as
 * sendqd's answer to that user's "list" (control.h), less the "active"
 * state, which only the running daemon knows.
 *
 * Built with SENDQ_SHOWQ_TESTING (the sendq-showq-testing binary of the
 * test suite, never installed) the configuration path may come from
 * SENDQ_SHOWQ_TEST_CONFIG instead, read before the environment is
 * cleared.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "queue_view.h"
#include "util.h"

#ifndef SENDQ_SHOWQ_GROUP /* CMake: the readers' group of queue/ */
#define SENDQ_SHOWQ_GROUP "sendq-queue"
#endif
#ifdef SENDQ_SHOWQ_TESTING
#define SHOWQ_TEST_ENV "SENDQ_SHOWQ_TEST_CONFIG"
#else
#define SHOWQ_TEST_ENV NULL /* installed: never from the environment */
#endif

static void
showq_usage(FILE *fp)
{
	fprintf(fp,
	    "usage: sendq-showq [--json | --postfix]\n       sendq-showq "
	    "--help | --version\n\nLists the messages of the caller (envelope "
	    "uid = real uid) queued in\n" CONFIG_DEFAULT_PATH
	    "'s spool_dir, never their content, as mailq does.\nRun by "
	    "mailq(1) and sendqctl(8) when sendqd is not running; it may "
	    "be\nrun by hand.  Takes no other options.\nExit status: 0 listed, "
	    "64 usage, 75 cannot read the queue now,\n78 configuration "
	    "unreadable.\n");
}

/* Print the listing of spool_dir for the real uid.  The exit code. */
static int
showq_list(const char *spool_dir, int json)
{
	struct sq_err err = { 0 };
	struct buf    out;
	int           rc, ex = 0;

	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	rc = queue_view_list(spool_dir, (long)getuid(), json, NULL, NULL, &out,
	    &err);
	if (rc == -ENOENT) {
		/* No spool yet: nothing was ever queued. */
		out.len = 0;
		buf_append_str(&out,
		    json == QUEUE_VIEW_JSON ? "[]\n" : "Mail queue is empty\n");
		rc = 0;
	}
	if (rc != 0 && rc != SQ_ELIMIT)
		out.len = 0;
	if (out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len)
		ex = EX_IOERR;
	if (fflush(stdout) != 0)
		ex = EX_IOERR;
	if (ex != 0)
		fprintf(stderr, "sendq-showq: write to standard output: %s\n",
		    strerror(errno));
	if (rc != 0) {
		fprintf(stderr, "sendq-showq: %s%s\n", err.msg,
		    rc == -EACCES || rc == -EPERM ?
			" (queue/ must be 0750 of group " SENDQ_SHOWQ_GROUP
			" and sendq-showq setgid to it: see sendq.tmpfiles)" :
			"");
		ex = EX_TEMPFAIL;
	}
	buf_fini(&out);
	return ex;
}

int
main(int argc, char **argv)
{
	struct config *cfg = NULL;
	struct sq_err  err = { 0 };
	static char    path[4096] = CONFIG_DEFAULT_PATH;
	int            rc, json = 0;

	sq_setgid_start(path, sizeof(path), SHOWQ_TEST_ENV, 077);
	log_init("sendq-showq", LOG_LEVEL_WARN);
	if (argc > 2 ||
	    (argc == 2 && strcmp(argv[1], "--help") != 0 &&
		strcmp(argv[1], "--version") != 0 &&
		strcmp(argv[1], "--json") != 0 &&
		strcmp(argv[1], "--postfix") != 0)) {
		fprintf(stderr,
		    "sendq-showq: takes no options or arguments but --json or "
		    "--postfix (see sendq-showq --help)\n");
		return EX_USAGE;
	}
	if (argc == 2 && strcmp(argv[1], "--help") == 0) {
		showq_usage(stdout);
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("sendq-showq %s\n", SENDQ_VERSION);
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}
	if (argc == 2)
		json = strcmp(argv[1], "--json") == 0 ? QUEUE_VIEW_JSON :
							QUEUE_VIEW_POSTFIX;
	if (config_load_file_opts(path, CONFIG_LOAD_CLIENT, &cfg, &err) != 0) {
		fprintf(stderr, "sendq-showq: %s\n", err.msg);
		return EX_CONFIG;
	}
	rc = showq_list(cfg->spool_dir, json);
	config_free(cfg);
	return rc;
}
