/*
 * test_log.c - the log line format: journal priority prefixes only when
 * stderr is the stream JOURNAL_STREAM names, plain lines otherwise.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

Test(log, journal_stream_matching_dev_and_ino)
{
	cr_assert_eq(log_is_journal("2049:123456", 2049, 123456), 1);
	cr_assert_eq(log_is_journal("0:1", 0, 1), 1);
	cr_assert_eq(log_is_journal("18446744073709551615:7",
			 18446744073709551615ULL, 7),
	    1);
}

Test(log, journal_stream_of_another_file_is_not_ours)
{
	/* A child whose stderr was redirected inherits the variable. */
	cr_assert_eq(log_is_journal("2049:123456", 2049, 123457), 0);
	cr_assert_eq(log_is_journal("2049:123456", 2050, 123456), 0);
}

Test(log, journal_stream_unset_or_malformed)
{
	static const char *const bad[] = {
		"",
		":",
		"2049",
		"2049:",
		":123456",
		"2049:123456x",
		"2049:123456:1",
		" 2049:123456",
		"2049: 123456",
		"-1:5",
		"2049;123456",
		"x:y",
	};
	size_t i;

	cr_assert_eq(log_is_journal(NULL, 2049, 123456), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(log_is_journal(bad[i], 2049, 123456), 0,
		    "\"%s\" accepted", bad[i]);
}

Test(log, priority_prefixes_are_syslog_levels)
{
	cr_assert_str_eq(log_priority_prefix(LOG_LEVEL_ERR), "<3>");
	cr_assert_str_eq(log_priority_prefix(LOG_LEVEL_WARN), "<4>");
	cr_assert_str_eq(log_priority_prefix(LOG_LEVEL_INFO), "<6>");
	cr_assert_str_eq(log_priority_prefix(LOG_LEVEL_DEBUG), "<7>");
}

enum test_js { TEST_JS_UNSET, TEST_JS_STDERR, TEST_JS_OTHER };

/* Log one line per level with stderr on a temporary file, JOURNAL_STREAM
 * unset, naming that file, or naming another inode; returns what was
 * written (static buffer). */
static const char *
test_log_capture(enum test_js js)
{
	static char out[4096];
	char        env[128];
	struct stat st;
	FILE       *f;
	int         saved;
	size_t      n;

	f = tmpfile();
	cr_assert_not_null(f);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert(saved >= 0);
	cr_assert_eq(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	if (js != TEST_JS_UNSET) {
		snprintf(env, sizeof(env), "%llu:%llu",
		    (unsigned long long)st.st_dev,
		    (unsigned long long)st.st_ino + (js == TEST_JS_OTHER));
		setenv("JOURNAL_STREAM", env, 1);
	} else
		unsetenv("JOURNAL_STREAM");
	log_init("sendqd", LOG_LEVEL_DEBUG);
	log_err("AUTHENTICATION FAILED: x");
	log_warn("w");
	log_info("i");
	log_debug("d");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	log_init("sendqd", LOG_LEVEL_INFO);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return out;
}

Test(log, under_the_journal_each_line_has_its_priority)
{
	cr_assert_str_eq(test_log_capture(TEST_JS_STDERR),
	    "<3>error: AUTHENTICATION FAILED: x\n<4>warning: w\n<6>info: "
	    "i\n<7>debug: d\n");
}

Test(log, outside_the_journal_lines_are_plain)
{
	char expect[512];
	long pid = (long)getpid();

	snprintf(expect, sizeof(expect),
	    "sendqd[%ld]: error: AUTHENTICATION FAILED: x\nsendqd[%ld]: "
	    "warning: w\nsendqd[%ld]: info: i\nsendqd[%ld]: debug: d\n",
	    pid, pid, pid, pid);
	cr_assert_str_eq(test_log_capture(TEST_JS_UNSET), expect);
	/* JOURNAL_STREAM of some other stream (our stderr was redirected). */
	cr_assert_str_eq(test_log_capture(TEST_JS_OTHER), expect);
}

/* log_event: the structured sink gets the fields under the journal; a
 * sink that fails, or no journal, gives the ordinary line. */
static int  sink_calls, sink_rc, sink_prio;
static char sink_msg[256], sink_fields[256];

static int
test_sink(int priority, const char *message, const char *queue_id,
    const char *relay, const char *result)
{
	sink_calls++;
	sink_prio = priority;
	snprintf(sink_msg, sizeof(sink_msg), "%s", message);
	snprintf(sink_fields, sizeof(sink_fields), "%s|%s|%s",
	    queue_id != NULL ? queue_id : "-", relay != NULL ? relay : "-",
	    result != NULL ? result : "-");
	return sink_rc;
}

/* One log_event with stderr on a temporary file (JOURNAL_STREAM naming
 * it when journal); what reached stderr. */
static const char *
test_log_event(int journal, int rc)
{
	static char out[1024];
	char        env[128];
	struct stat st;
	FILE       *f = tmpfile();
	int         saved;
	size_t      n;

	cr_assert_not_null(f);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert_eq(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	if (journal)
		setenv("JOURNAL_STREAM", env, 1);
	log_init("sendqd", LOG_LEVEL_INFO);
	log_set_structured(test_sink);
	sink_calls = 0;
	sink_rc = rc;
	log_event(LOG_LEVEL_WARN, "ID1", "gmail", "deferred",
	    "delivery msgid=%s result=%s", "ID1", "deferred");
	log_event(LOG_LEVEL_DEBUG, "ID2", NULL, NULL, "not logged");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	log_set_structured(NULL);
	log_init("sendqd", LOG_LEVEL_INFO);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	return out;
}

Test(log, event_fields_go_to_the_journal_sink)
{
	cr_assert_str_eq(test_log_event(1, 0), "");
	cr_assert_eq(sink_calls, 1);
	cr_assert_eq(sink_prio, 4);
	cr_assert_str_eq(sink_msg, "delivery msgid=ID1 result=deferred");
	cr_assert_str_eq(sink_fields, "ID1|gmail|deferred");
}

Test(log, event_falls_back_to_the_line)
{
	char expect[128];

	cr_assert_str_eq(test_log_event(1, -2),
	    "<4>warning: delivery msgid=ID1 result=deferred\n");
	cr_assert_eq(sink_calls, 1);
	snprintf(expect, sizeof(expect),
	    "sendqd[%ld]: warning: delivery msgid=ID1 result=deferred\n",
	    (long)getpid());
	cr_assert_str_eq(test_log_event(0, 0), expect);
	cr_assert_eq(sink_calls, 0);
}

/* The PID in a line is read once by log_init(); a child forked after it
 * logs its own PID, not its parent's. */
Test(log, a_forked_child_logs_its_own_pid)
{
	char   out[512], expect[512];
	FILE  *f = tmpfile();
	int    saved, status;
	pid_t  child;
	size_t n;

	cr_assert_not_null(f);
	unsetenv("JOURNAL_STREAM");
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert_eq(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
	log_init("sendqd", LOG_LEVEL_INFO);
	log_info("parent");
	child = fork();
	if (child == 0) {
		log_info("child");
		_exit(0);
	}
	cr_assert(child > 0);
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	log_info("parent");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	snprintf(expect, sizeof(expect),
	    "sendqd[%ld]: info: parent\nsendqd[%ld]: info: child\n"
	    "sendqd[%ld]: info: parent\n",
	    (long)getpid(), (long)child, (long)getpid());
	cr_assert_str_eq(out, expect);
}

/* log_init_deferred (sendq): nothing is looked at until the first line,
 * which sees stderr and JOURNAL_STREAM as they are then. */
Test(log, deferred_init_decides_at_the_first_line)
{
	char        env[64], out[512];
	struct stat st;
	FILE       *f = tmpfile();
	size_t      n;
	int         saved;

	cr_assert_not_null(f);
	unsetenv("JOURNAL_STREAM");
	log_init_deferred("sendq", LOG_LEVEL_WARN);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	cr_assert(saved >= 0);
	cr_assert_eq(dup2(fileno(f), STDERR_FILENO), STDERR_FILENO);
	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", env, 1);
	log_warn("w");
	log_info("not written");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	unsetenv("JOURNAL_STREAM");
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	/* log_init() here would have seen a plain stderr: "sendq[PID]: ". */
	cr_assert_str_eq(out, "<4>warning: w\n");
	log_init("sendqd", LOG_LEVEL_INFO);
}
