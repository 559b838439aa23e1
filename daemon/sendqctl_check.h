/*
 * sendqctl_check.h - the parts of sendqctl that go beyond one request:
 * `status` as a monitoring check (a one-line verdict, monitoring-plugins
 * exit codes) and the selection of the bulk commands (delete, hold,
 * release, bounce over ALL / --from / --to / --relay / --older-than).
 *
 * Exit codes of status (monitoring-plugins / Nagios):
 *   0 OK        every relay up, oldest message within --warn-age
 *   1 WARNING   the oldest message is older than --warn-age
 *   2 CRITICAL  a relay is DOWN or HELD (OAuth grant refused), the oldest
 *               message is older than --max-age, or sendqd is not running
 *   3 UNKNOWN   sendqd's answer could not be read
 * The first line of the output is "STATE: SUMMARY | PERFDATA".
 *
 * Owns: the options of these commands, the verdict, the bulk request line.
 * May call: queue_view (the control socket client), json-c, util.
 */
#ifndef SENDQ_SENDQCTL_CHECK_H
#define SENDQ_SENDQCTL_CHECK_H

#include <stddef.h>

#define SENDQCTL_CHECK_OK       0
#define SENDQCTL_CHECK_WARNING  1
#define SENDQCTL_CHECK_CRITICAL 2
#define SENDQCTL_CHECK_UNKNOWN  3

/* The options of status and of the bulk commands; -1: not given. */
struct sendqctl_opts {
	long long   max_age;  /* status --max-age, seconds */
	long long   warn_age; /* status --warn-age, seconds */
	int         dry_run;  /* bulk --dry-run */
	const char *from;     /* bulk --from ADDR */
	const char *to;       /* bulk --to ADDR */
	const char *relay;    /* bulk --relay NAME */
	long long   older;    /* bulk --older-than, seconds */
	int         n_select; /* --from/--to/--relay/--older-than */
};

/* Every option "not given". */
void sendqctl_opts_init(struct sendqctl_opts *o);

/*
 * If argv[*i] is one of the options above ("--max-age 1h" or
 * "--max-age=1h"), take it (and its value: *i moves past it) and return
 * 1; 0 when it is not one of them; -1 after printing a usage error on
 * standard error.
 */
int sendqctl_opts_take(struct sendqctl_opts *o, int argc, char **argv, int *i);

/* "90", "90s", "5m", "2h", "3d", "1w" in seconds; -1 when malformed. */
long long sendqctl_parse_duration(const char *s);

/*
 * The verdict on a status JSON answer (sendqd's "status --json" body,
 * NUL-terminated) at time now: writes "STATE: SUMMARY | PERFDATA" into
 * line (size sz) and returns SENDQCTL_CHECK_*.  Pure.
 */
int sendqctl_check_verdict(const char *json, long long now,
    const struct sendqctl_opts *o, char *line, size_t sz);

/* sendqctl status: ask sendqd at the control socket path, print the
 * verdict line and the status (text or json); returns the exit code. */
int sendqctl_check_status(const char *path, int json,
    const struct sendqctl_opts *o);

/*
 * The control request of a bulk command: "select CMD [all] [from=ADDR]
 * [to=ADDR] [relay=NAME] [older=SECONDS] [dry-run] [--json]".  all is
 * non-zero for the word ALL.  NULL (after a message on standard error)
 * when the selection is empty or a value cannot go on the line.
 */
char *sendqctl_bulk_request(const char *cmd, int all,
    const struct sendqctl_opts *o, int json);

#endif
