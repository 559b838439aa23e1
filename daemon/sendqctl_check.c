/*
 * sendqctl_check.c - sendqctl status as a monitoring check, and the
 * selection of the bulk commands (contract: sendqctl_check.h).
 *
 * How it works: status asks sendqd for "status --json" (every relay's
 * state, the queue depth and the arrival of the oldest message that is
 * not held), reads it with json-c and turns it into one line such as
 * "CRITICAL: relay gmail DOWN (421 4.3.2 ...); 3 queued, oldest 12m,
 * relays 1/2 up | queued=3 oldest=720s relays_up=1 relays=2", printed
 * first; then the status itself (sendqd's text, or its JSON with a
 * "check" object added).  The bulk commands send one "select" request
 * (control.h): the daemon applies the selection, so what is selected and
 * what is done agree with what is queued at that moment.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <json-c/json.h>

#include "buf.h"
#include "config_value.h"
#include "queue_view.h"
#include "sendqctl_check.h"
#include "util.h"

#define SENDQCTL_CHECK_TIMEOUT 60 /* seconds per read or write */

void
sendqctl_opts_init(struct sendqctl_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_age = -1;
	o->warn_age = -1;
	o->older = -1;
}

long long
sendqctl_parse_duration(const char *s)
{
	char      digits[16];
	size_t    n = strlen(s), nd = strspn(s, "0123456789");
	long long v;

	/* config_value_duration's syntax, and weeks.  Ten digits or more
	 * (31 years and more in seconds) are out of any range. */
	if (nd > 9)
		return -1;
	if (n < 2 || s[n - 1] != 'w')
		return config_value_duration(s);
	if (nd != n - 1)
		return -1;
	memcpy(digits, s, nd);
	digits[nd] = '\0';
	v = config_value_uint(digits);
	return v < 0 ? -1 : v * 7 * 86400;
}

/* The value of option name at argv[*i]: "--name=V" or "--name V". */
static const char *
sendqctl_opt_value(const char *name, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	size_t      n = strlen(name);

	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr,
		    "sendqctl: %s needs a value (see sendqctl --help)\n", name);
		return "";
	}
	return argv[++*i];
}

static int
sendqctl_opt_duration(const char *name, const char *v, long long *out)
{
	if (*v == '\0')
		return -1;
	if ((*out = sendqctl_parse_duration(v)) < 0) {
		fprintf(stderr,
		    "sendqctl: %s: not a duration (90s, 15m, 2h, 1d)\n", name);
		return -1;
	}
	return 1;
}

static int
sendqctl_opt_word(const char *name, const char *v, const char **out,
    int *n_select)
{
	if (*v == '\0')
		return -1;
	if (strpbrk(v, " \t\r\n") != NULL || strlen(v) > 320) {
		fprintf(stderr,
		    "sendqctl: %s: no spaces, at most 320 characters\n", name);
		return -1;
	}
	*out = v;
	(*n_select)++;
	return 1;
}

int
sendqctl_opts_take(struct sendqctl_opts *o, int argc, char **argv, int *i)
{
	const char *v;
	int         rc;

	if (strcmp(argv[*i], "--dry-run") == 0 || strcmp(argv[*i], "-n") == 0) {
		o->dry_run = 1;
		return 1;
	}
	if ((v = sendqctl_opt_value("--max-age", argc, argv, i)) != NULL)
		return sendqctl_opt_duration("--max-age", v, &o->max_age);
	if ((v = sendqctl_opt_value("--warn-age", argc, argv, i)) != NULL)
		return sendqctl_opt_duration("--warn-age", v, &o->warn_age);
	if ((v = sendqctl_opt_value("--older-than", argc, argv, i)) != NULL) {
		rc = sendqctl_opt_duration("--older-than", v, &o->older);
		o->n_select += rc > 0;
		return rc;
	}
	if ((v = sendqctl_opt_value("--from", argc, argv, i)) != NULL)
		return sendqctl_opt_word("--from", v, &o->from, &o->n_select);
	if ((v = sendqctl_opt_value("--to", argc, argv, i)) != NULL)
		return sendqctl_opt_word("--to", v, &o->to, &o->n_select);
	if ((v = sendqctl_opt_value("--relay", argc, argv, i)) != NULL)
		return sendqctl_opt_word("--relay", v, &o->relay, &o->n_select);
	return 0;
}

/* ------------------------------------------------------------------ */
/* status */

static const char *const sendqctl_check_names[] = {
	"OK",
	"WARNING",
	"CRITICAL",
	"UNKNOWN",
};

static void sendqctl_problem(char *, size_t, const char *, ...) SQ_PRINTF(3, 4);

/* Append "; " and a problem to the problems text. */
static void
sendqctl_problem(char *probs, size_t sz, const char *fmt, ...)
{
	va_list ap;
	size_t  n = strlen(probs);

	if (n + 3 >= sz)
		return;
	if (n > 0) {
		memcpy(probs + n, "; ", 3);
		n += 2;
	}
	va_start(ap, fmt);
	vsnprintf(probs + n, sz - n, fmt, ap);
	va_end(ap);
}

/* The relays: counts, and each one down or held as a problem. */
static int
sendqctl_check_relays(json_object *hosts, char *probs, size_t sz, int *up,
    int *total)
{
	json_object *h, *v;
	const char  *name, *state, *why;
	char         reason[120];
	size_t       i, n;
	int          st = SENDQCTL_CHECK_OK;

	*up = *total = 0;
	n = json_object_is_type(hosts, json_type_array) ?
	    json_object_array_length(hosts) :
	    0;
	for (i = 0; i < n; i++) {
		h = json_object_array_get_idx(hosts, i);
		name = json_object_object_get_ex(h, "name", &v) ?
		    json_object_get_string(v) :
		    "?";
		state = json_object_object_get_ex(h, "state", &v) ?
		    json_object_get_string(v) :
		    "?";
		why = json_object_object_get_ex(h, "last_error", &v) ?
		    json_object_get_string(v) :
		    "";
		(*total)++;
		if (strcmp(state, "up") == 0) {
			(*up)++;
			continue;
		}
		st = SENDQCTL_CHECK_CRITICAL;
		if (strcmp(state, "held") == 0) {
			sendqctl_problem(probs, sz,
			    "relay %s HELD (OAuth grant refused: sendqctl "
			    "oauth init %s)",
			    name, name);
			continue;
		}
		snprintf(reason, sizeof(reason), "%s",
		    why != NULL && why[0] != '\0' ? why : "no reply");
		sendqctl_problem(probs, sz, "relay %s DOWN (%s)", name, reason);
	}
	return st;
}

int
sendqctl_check_verdict(const char *json, long long now,
    const struct sendqctl_opts *o, char *line, size_t sz)
{
	json_object *root, *v, *hosts = NULL;
	char         probs[1024] = "", age[32], lim[32], old_txt[48] = "";
	long long    queued = 0, oldest = 0, secs = -1;
	int          st, up, total;

	root = json_tokener_parse(json);
	if (root == NULL || !json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		snprintf(line, sz,
		    "UNKNOWN: sendqd's status could not be read");
		return SENDQCTL_CHECK_UNKNOWN;
	}
	if (json_object_object_get_ex(root, "queued", &v))
		queued = json_object_get_int64(v);
	if (json_object_object_get_ex(root, "oldest", &v))
		oldest = json_object_get_int64(v);
	json_object_object_get_ex(root, "smarthosts", &hosts);
	st = sendqctl_check_relays(hosts, probs, sizeof(probs), &up, &total);
	if (oldest > 0) {
		secs = now > oldest ? now - oldest : 0;
		queue_view_age(age, sizeof(age), secs);
		snprintf(old_txt, sizeof(old_txt), ", oldest %s", age);
	}
	if (secs >= 0 && o->max_age >= 0 && secs > o->max_age) {
		queue_view_age(lim, sizeof(lim), o->max_age);
		sendqctl_problem(probs, sizeof(probs),
		    "oldest message %s old (--max-age %s)", age, lim);
		st = SENDQCTL_CHECK_CRITICAL;
	} else if (secs >= 0 && o->warn_age >= 0 && secs > o->warn_age) {
		queue_view_age(lim, sizeof(lim), o->warn_age);
		sendqctl_problem(probs, sizeof(probs),
		    "oldest message %s old (--warn-age %s)", age, lim);
		if (st < SENDQCTL_CHECK_WARNING)
			st = SENDQCTL_CHECK_WARNING;
	}
	snprintf(line, sz,
	    "%s: %s%s%lld queued%s, relays %d/%d up | queued=%lld oldest=%llds "
	    "relays_up=%d relays=%d",
	    sendqctl_check_names[st], probs, probs[0] != '\0' ? "; " : "",
	    queued, old_txt, up, total, queued, secs > 0 ? secs : 0, up, total);
	json_object_put(root);
	return st;
}

/* One request; 0 with the answer's body (after "ok\n") in out, else the
 * exit code after a message. */
static int
sendqctl_check_ask(const char *path, const char *req, struct buf *out)
{
	struct sq_err err = { 0 };
	const char   *msg;
	char         *nl;
	int           rc;

	rc = queue_view_request(path, req, SENDQCTL_CHECK_TIMEOUT, out, &err);
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		printf("CRITICAL: sendqd is not running (no daemon listens on "
		       "%s)\n",
		    path);
		fprintf(stderr,
		    "sendqctl: sendqd is not running (start it with systemctl "
		    "start sendq); no daemon listens on %s\n",
		    path);
		return SENDQCTL_CHECK_CRITICAL;
	}
	if (rc != 0) {
		printf("UNKNOWN: %s\n", err.msg);
		return rc == -EACCES || rc == -EPERM ? EX_NOPERM :
						       SENDQCTL_CHECK_UNKNOWN;
	}
	if (out->len >= 3 && memcmp(out->data, "ok\n", 3) == 0) {
		memmove(out->data, out->data + 3, out->len - 3);
		out->len -= 3;
		return 0;
	}
	nl = memchr(out->data, '\n', out->len);
	if (nl != NULL)
		*nl = '\0';
	else
		buf_append(out, "", 1);
	msg = out->data;
	if (strncmp(msg, "error: ", 7) == 0)
		msg += 7;
	printf("UNKNOWN: %s\n", msg);
	fprintf(stderr, "sendqctl: %s\n", msg);
	return strncmp(msg, "permission denied:", 18) == 0 ?
	    EX_NOPERM :
	    SENDQCTL_CHECK_UNKNOWN;
}

/* --json: sendqd's object with "check": {"state", "exit", "summary"}. */
static void
sendqctl_check_print_json(const char *json, int st, const char *line)
{
	json_object *root, *chk;

	if ((root = json_tokener_parse(json)) == NULL) {
		fputs(json, stdout);
		return;
	}
	chk = json_object_new_object();
	json_object_object_add(chk, "state",
	    json_object_new_string(sendqctl_check_names[st]));
	json_object_object_add(chk, "exit", json_object_new_int(st));
	json_object_object_add(chk, "summary", json_object_new_string(line));
	json_object_object_add(root, "check", chk);
	printf("%s\n",
	    json_object_to_json_string_ext(root,
		JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

int
sendqctl_check_status(const char *path, int json, const struct sendqctl_opts *o)
{
	struct buf out;
	char       line[2048];
	int        st, ex;

	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	if ((ex = sendqctl_check_ask(path, "status --json", &out)) != 0) {
		buf_fini(&out);
		return ex;
	}
	buf_append(&out, "", 1);
	st = sendqctl_check_verdict(out.data, (long long)time(NULL), o, line,
	    sizeof(line));
	if (json) {
		sendqctl_check_print_json(out.data, st, line);
		buf_fini(&out);
		return st;
	}
	printf("%s\n", line);
	out.len = 0;
	/* The details; the verdict stands even if they cannot be read. */
	if (sendqctl_check_ask(path, "status", &out) == 0)
		fwrite(out.data, 1, out.len, stdout);
	buf_fini(&out);
	if (fflush(stdout) != 0)
		return EX_IOERR;
	return st;
}

/* ------------------------------------------------------------------ */
/* Bulk commands */

char *
sendqctl_bulk_request(const char *cmd, int all, const struct sendqctl_opts *o,
    int json)
{
	struct buf b;
	char       num[32], *s;

	if (!all && o->n_select == 0) {
		fprintf(stderr,
		    "sendqctl: %s needs a queue id, ALL, or a selection "
		    "(--from, --to, --relay, --older-than)\n",
		    cmd);
		return NULL;
	}
	buf_init(&b, 4096);
	buf_append_str(&b, "select ");
	buf_append_str(&b, cmd);
	if (all)
		buf_append_str(&b, " all");
	if (o->from != NULL) {
		buf_append_str(&b, " from=");
		buf_append_str(&b, o->from);
	}
	if (o->to != NULL) {
		buf_append_str(&b, " to=");
		buf_append_str(&b, o->to);
	}
	if (o->relay != NULL) {
		buf_append_str(&b, " relay=");
		buf_append_str(&b, o->relay);
	}
	if (o->older >= 0) {
		snprintf(num, sizeof(num), " older=%lld", o->older);
		buf_append_str(&b, num);
	}
	if (o->dry_run)
		buf_append_str(&b, " dry-run");
	if (json)
		buf_append_str(&b, " --json");
	buf_append(&b, "", 1);
	s = xstrdup(b.data);
	buf_fini(&b);
	return s;
}
