/*
 * test_secret.c - reading smarthost secrets (daemon/secret.c): files and
 * their permission rule, commands with their exit status and time limit,
 * systemd credentials, and that no message ever carries the secret.
 *
 * Each test gets a fresh directory under /tmp; commands run for real
 * through /bin/sh.  The command time limit is lowered through
 * secret_command_timeout_ms so the timeout test takes a fraction of a
 * second.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <criterion/criterion.h>

#include <sched.h>
#include <time.h>
#include <criterion/parameterized.h>

#include "config.h"
#include "secret.h"
#include "util.h"

static char                    test_dir[64];
static struct config_smarthost test_sh;
static struct secret          *test_secret;
static struct sq_err           test_err;

static void
test_rm_rf(const char *dir)
{
	char *cmd;

	if (dir[0] == '\0')
		return;
	cmd = xasprintf("rm -rf '%s'", dir);
	(void)system(cmd);
	free(cmd);
}

static void
test_setup(void)
{
	snprintf(test_dir, sizeof(test_dir), "/tmp/test_secret_XXXXXX");
	cr_assert_not_null(mkdtemp(test_dir));
	memset(&test_sh, 0, sizeof(test_sh));
	test_sh.name = (char *)"s";
	test_sh.user = (char *)"u";
	test_secret = NULL;
	memset(&test_err, 0, sizeof(test_err));
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void
test_teardown(void)
{
	secret_free(test_secret);
	test_secret = NULL;
	test_rm_rf(test_dir);
}

TestSuite(secret, .init = test_setup, .fini = test_teardown);

/* Write len bytes to test_dir/name with mode; returns the path (free). */
static char *
test_write(const char *name, const char *data, size_t len, mode_t mode)
{
	char *path;
	int   fd;

	path = xasprintf("%s/%s", test_dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static char *
test_write_str(const char *name, const char *data, mode_t mode)
{
	return test_write(name, data, strlen(data), mode);
}

static void
test_load_ok(const char *want, enum secret_kind kind)
{
	int rc;

	rc = secret_load(&test_sh, &test_secret, &test_err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, test_err.msg);
	cr_assert_not_null(test_secret);
	cr_assert_str_eq(test_secret->data, want);
	cr_assert_eq(test_secret->len, strlen(want));
	cr_assert_eq(test_secret->kind, kind);
}

/* Fails with exactly msg, which must not contain secret. */
static void
test_load_fails(const char *msg, const char *secret)
{
	struct secret *s = NULL;
	int            rc;

	rc = secret_load(&test_sh, &s, &test_err);
	cr_assert_lt(rc, 0, "accepted");
	cr_assert_null(s);
	cr_assert_eq(test_err.code, rc);
	cr_assert_str_eq(test_err.msg, msg);
	if (secret != NULL)
		cr_assert_null(strstr(test_err.msg, secret),
		    "message carries the secret: %s", test_err.msg);
}

/* --- password_file / token_file ------------------------------------- */

Test(secret, password_file_first_line_is_the_password)
{
	test_sh.password_file = test_write_str("pw", "hunter2 x\nsecond\n",
	    0600);
	test_load_ok("hunter2 x", SECRET_PASSWORD);
	free(test_sh.password_file);
}

struct test_line {
	char data[32];
	char want[16];
};

ParameterizedTestParameters(secret, line_ends_are_stripped)
{
	static struct test_line params[] = {
		{ "pw\r\n", "pw" },
		{ "pw\n", "pw" },
		{ "pw", "pw" },
		{ "pw\r", "pw" },
		{ "pw\r\nnext\r\n", "pw" },
		{ "p w \t\n", "p w \t" },
	};

	return cr_make_param_array(struct test_line, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_line *t, secret, line_ends_are_stripped)
{
	test_sh.password_file = test_write_str("pw", t->data, 0600);
	test_load_ok(t->want, SECRET_PASSWORD);
	free(test_sh.password_file);
}

Test(secret, token_file_gives_a_token)
{
	test_sh.token_file = test_write_str("tok", "ya29.a0AfH6SM\n", 0640);
	test_load_ok("ya29.a0AfH6SM", SECRET_TOKEN);
	free(test_sh.token_file);
}

Test(secret, file_is_read_fresh_each_time)
{
	test_sh.token_file = test_write_str("tok", "one\n", 0600);
	test_load_ok("one", SECRET_TOKEN);
	secret_free(test_secret);
	test_secret = NULL;
	free(test_write_str("tok", "two\n", 0600));
	test_load_ok("two", SECRET_TOKEN);
	free(test_sh.token_file);
}

struct test_mode {
	mode_t mode;
	char   why[64]; /* "" = accepted */
};

ParameterizedTestParameters(secret, file_permission_rule)
{
	static struct test_mode params[] = {
		{ 0600, "" },
		{ 0640, "" },
		{ 0400, "" },
		{ 0440, "" },
		{ 0700, "" },
		{ 0750, "" },
		{ 0644, "readable by others (mode 0644)" },
		{ 0604, "readable by others (mode 0604)" },
		{ 0666, "readable by others (mode 0666)" },
		{ 0602, "writable by others (mode 0602)" },
		{ 0601, "accessible by others (mode 0601)" },
		{ 0660, "writable by its group (mode 0660)" },
		{ 0620, "writable by its group (mode 0620)" },
	};

	return cr_make_param_array(struct test_mode, params,
	    sizeof(params) / sizeof(params[0]));
}

ParameterizedTest(struct test_mode *m, secret, file_permission_rule)
{
	char want[512];

	test_sh.password_file = test_write_str("pw", "s3cr3t-pw\n", m->mode);
	if (m->why[0] == '\0')
		test_load_ok("s3cr3t-pw", SECRET_PASSWORD);
	else {
		snprintf(want, sizeof(want),
		    "password_file %s: %s: refusing to use it; chmod 0600 or "
		    "0640",
		    test_sh.password_file, m->why);
		test_load_fails(want, "s3cr3t");
	}
	free(test_sh.password_file);
}

Test(secret, token_file_has_the_same_permission_rule)
{
	char want[512];

	test_sh.token_file = test_write_str("tok", "tok3n\n", 0644);
	snprintf(want, sizeof(want),
	    "token_file %s: readable by others (mode 0644): refusing to use "
	    "it; chmod 0600 or 0640",
	    test_sh.token_file);
	test_load_fails(want, "tok3n");
	free(test_sh.token_file);
}

Test(secret, symlink_is_followed_and_its_target_checked)
{
	char *target, *link, want[512];

	target = test_write_str("real", "linked-pw\n", 0600);
	link = xasprintf("%s/link", test_dir);
	cr_assert_eq(symlink(target, link), 0);
	test_sh.password_file = link;
	test_load_ok("linked-pw", SECRET_PASSWORD);

	cr_assert_eq(chmod(target, 0644), 0);
	snprintf(want, sizeof(want),
	    "password_file %s: readable by others (mode 0644): refusing to use "
	    "it; chmod 0600 or 0640",
	    link);
	test_load_fails(want, "linked-pw");
	free(target);
	free(link);
}

Test(secret, empty_first_line_is_refused)
{
	char want[512];

	test_sh.password_file = test_write_str("pw", "\nsecond-line\n", 0600);
	snprintf(want, sizeof(want),
	    "password_file %s: the first line is empty", test_sh.password_file);
	test_load_fails(want, "second-line");
	free(test_sh.password_file);
}

Test(secret, empty_file_is_refused)
{
	char want[512];

	test_sh.password_file = test_write_str("pw", "", 0600);
	snprintf(want, sizeof(want),
	    "password_file %s: the first line is empty", test_sh.password_file);
	test_load_fails(want, NULL);
	free(test_sh.password_file);
}

Test(secret, line_of_secret_max_is_accepted_and_one_more_refused)
{
	char *data, want[512];

	data = xmalloc(SECRET_MAX + 2);
	memset(data, 'k', SECRET_MAX + 1);
	data[SECRET_MAX] = '\n';
	test_sh.token_file = test_write("tok", data, SECRET_MAX + 1, 0600);
	data[SECRET_MAX] = '\0';
	test_load_ok(data, SECRET_TOKEN);
	secret_free(test_secret);
	test_secret = NULL;

	data[SECRET_MAX] = 'k';
	free(test_write("tok", data, SECRET_MAX + 1, 0600));
	snprintf(want, sizeof(want),
	    "token_file %s: the first line is longer than %d bytes",
	    test_sh.token_file, SECRET_MAX);
	test_load_fails(want, "kkkk");
	free(test_sh.token_file);
	free(data);
}

Test(secret, nul_byte_in_the_line_is_refused)
{
	char want[512];

	test_sh.password_file = test_write("pw", "ab\0cd\n", 6, 0600);
	snprintf(want, sizeof(want),
	    "password_file %s: the first line contains a NUL byte",
	    test_sh.password_file);
	test_load_fails(want, NULL);
	free(test_sh.password_file);
}

Test(secret, missing_file_says_cannot_open)
{
	char want[512];

	test_sh.password_file = xasprintf("%s/nope", test_dir);
	snprintf(want, sizeof(want),
	    "password_file %s: cannot open: No such file or directory",
	    test_sh.password_file);
	test_load_fails(want, NULL);
	free(test_sh.password_file);
}

Test(secret, directory_is_not_a_secret_file)
{
	char want[512];

	test_sh.password_file = test_dir;
	snprintf(want, sizeof(want), "password_file %s: not a regular file",
	    test_dir);
	test_load_fails(want, NULL);
}

Test(secret, fifo_is_refused_without_blocking)
{
	char want[512];

	test_sh.password_file = xasprintf("%s/fifo", test_dir);
	cr_assert_eq(mkfifo(test_sh.password_file, 0600), 0);
	snprintf(want, sizeof(want), "password_file %s: not a regular file",
	    test_sh.password_file);
	test_load_fails(want, NULL);
	free(test_sh.password_file);
}

/* --- password_command / token_command ---------------------------------- */

Test(secret, password_command_first_line_is_the_password)
{
	test_sh.password_command = (char *)"printf 'cmd-pw\\r\\nmore\\n'";
	test_load_ok("cmd-pw", SECRET_PASSWORD);
}

Test(secret, token_command_gives_a_token)
{
	test_sh.token_command = (char *)"echo tok-from-cmd";
	test_load_ok("tok-from-cmd", SECRET_TOKEN);
}

Test(secret, command_runs_through_the_shell_with_stdin_on_dev_null)
{
	/* With stdin not on /dev/null, read would wait or succeed. */
	test_sh.password_command = (char *)"if read x; then exit 9; fi; x=pi; "
					   "echo \"$x-pe\" | tr a-z A-Z";
	test_load_ok("PI-PE", SECRET_PASSWORD);
}

Test(secret, command_with_long_output_is_drained)
{
	/* 200 KiB after the first line: more than a pipe holds. */
	test_sh.password_command =
	    (char *)"echo first; head -c 204800 /dev/zero | tr '\\0' x; echo";
	test_load_ok("first", SECRET_PASSWORD);
}

Test(secret, command_exit_status_is_an_error_without_its_output)
{
	test_sh.password_command = (char *)"echo s3cr3t-out; exit 3";
	test_load_fails("password_command exited with status 3", "s3cr3t");
}

Test(secret, token_command_exit_status_is_named_too)
{
	test_sh.token_command = (char *)"echo tok-out; exit 1";
	test_load_fails("token_command exited with status 1", "tok-out");
}

Test(secret, command_killed_by_a_signal_is_an_error)
{
	test_sh.password_command = (char *)"echo s3cr3t; kill -TERM $$";
	test_load_fails("password_command was killed by signal 15", "s3cr3t");
}

Test(secret, command_without_output_is_an_error)
{
	test_sh.password_command = (char *)"true";
	test_load_fails("password_command: the first line is empty", NULL);
}

Test(secret, command_that_cannot_run_is_an_error)
{
	test_sh.password_command = (char *)"/nonexistent/helper";
	test_load_fails("password_command exited with status 127", NULL);
}

static pid_t
test_read_pid(const char *path)
{
	FILE *f;
	long  pid = 0;

	cr_assert_not_null(f = fopen(path, "r"), "%s", path);
	cr_assert_eq(fscanf(f, "%ld", &pid), 1);
	fclose(f);
	cr_assert_gt(pid, 1);
	return (pid_t)pid;
}

Test(secret, command_past_the_time_limit_is_killed_and_reaped)
{
	char *pidfile, *cmd;
	pid_t pid;

	secret_command_timeout_ms = 300;
	pidfile = xasprintf("%s/pid", test_dir);
	cmd = xasprintf("echo $$ > %s; echo s3cr3t; exec sleep 30", pidfile);
	test_sh.password_command = cmd;
	test_load_fails("password_command did not finish within 300 ms: killed",
	    "s3cr3t");
	pid = test_read_pid(pidfile);
	/* Killed and reaped: the PID no longer exists (not even a zombie). */
	cr_assert_eq(kill(pid, 0), -1);
	cr_assert_eq(errno, ESRCH);
	free(pidfile);
	free(cmd);
}

Test(secret, time_limit_kills_what_the_command_started)
{
	char           *pidfile, *cmd, *stat, buf[256];
	struct timespec deadline, now;
	FILE           *f;
	pid_t           pid;
	size_t          n;

	secret_command_timeout_ms = 300;
	pidfile = xasprintf("%s/pid", test_dir);
	cmd = xasprintf("sleep 30 & echo $! > %s; wait", pidfile);
	test_sh.token_command = cmd;
	test_load_fails("token_command did not finish within 300 ms: killed",
	    NULL);
	pid = test_read_pid(pidfile);
	/* The grandchild got SIGKILL: soon gone, or a zombie awaiting its
	 * new parent.  SIGKILL is delivered asynchronously: poll its state
	 * until a deadline. */
	stat = xasprintf("/proc/%ld/stat", (long)pid);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 10;
	for (;;) {
		buf[0] = '\0';
		if ((f = fopen(stat, "r")) == NULL)
			break; /* gone */
		n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		if (strstr(buf, ") Z ") != NULL)
			break; /* a zombie: it is dead */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec)
			break;
		sched_yield();
	}
	free(stat);
	cr_assert(buf[0] == '\0' || strstr(buf, ") Z ") != NULL,
	    "still alive after the deadline: %s", buf);
	free(pidfile);
	free(cmd);
}

Test(secret, command_may_leave_a_process_holding_its_output_open)
{
	char *pidfile, *cmd;

	/* The child exits at once, but "sleep" keeps the pipe open for
	 * longer than the time limit: the first line and the status are
	 * enough. */
	secret_command_timeout_ms = 20000;
	pidfile = xasprintf("%s/pid", test_dir);
	cmd = xasprintf("sleep 60 & echo $! > %s; echo bg-pw", pidfile);
	test_sh.password_command = cmd;
	test_load_ok("bg-pw", SECRET_PASSWORD);
	kill(test_read_pid(pidfile), SIGKILL);
	free(pidfile);
	free(cmd);
}

/* --- credential -------------------------------------------------------- */

Test(secret, credential_is_read_from_credentials_directory)
{
	free(test_write_str("relay.pass", "cred-pw\n", 0400));
	setenv("CREDENTIALS_DIRECTORY", test_dir, 1);
	test_sh.credential = (char *)"relay.pass";
	test_load_ok("cred-pw", SECRET_PASSWORD);
}

Test(secret, credential_group_modes_are_systemds_business)
{
	free(test_write_str("relay.pass", "cred-pw\n", 0460));
	setenv("CREDENTIALS_DIRECTORY", test_dir, 1);
	test_sh.credential = (char *)"relay.pass";
	test_load_ok("cred-pw", SECRET_PASSWORD);
}

Test(secret, credential_readable_by_others_is_refused)
{
	free(test_write_str("relay.pass", "cred-pw\n", 0444));
	setenv("CREDENTIALS_DIRECTORY", test_dir, 1);
	test_sh.credential = (char *)"relay.pass";
	test_load_fails("credential relay.pass: readable by others (mode "
			"0444): refusing to use it; chmod 0600 or 0640",
	    "cred-pw");
}

Test(secret, credential_without_credentials_directory_names_loadcredential)
{
	test_sh.credential = (char *)"relay.pass";
	test_load_fails("credential relay.pass: $CREDENTIALS_DIRECTORY is not "
			"set (run under systemd with LoadCredential=)",
	    NULL);
	setenv("CREDENTIALS_DIRECTORY", "", 1);
	test_load_fails("credential relay.pass: $CREDENTIALS_DIRECTORY is not "
			"set (run under systemd with LoadCredential=)",
	    NULL);
}

Test(secret, missing_credential_names_loadcredential)
{
	setenv("CREDENTIALS_DIRECTORY", test_dir, 1);
	test_sh.credential = (char *)"relay.pass";
	test_load_fails("credential relay.pass: no such credential in "
			"$CREDENTIALS_DIRECTORY (is "
			"LoadCredential=relay.pass:... in the unit?)",
	    NULL);
}

Test(secret, credential_name_cannot_leave_the_directory)
{
	setenv("CREDENTIALS_DIRECTORY", test_dir, 1);
	test_sh.credential = (char *)"../etc/shadow";
	test_load_fails("credential ../etc/shadow: not a valid credential name",
	    NULL);
	test_sh.credential = (char *)"..";
	test_load_fails("credential ..: not a valid credential name", NULL);
}

/* --- the rest ------------------------------------------------------------ */

Test(secret, configured_means_any_source)
{
	cr_assert_not(secret_configured(&test_sh));
	test_sh.password_file = (char *)"/p";
	cr_assert(secret_configured(&test_sh));
	test_sh.password_file = NULL;
	test_sh.password_command = (char *)"x";
	cr_assert(secret_configured(&test_sh));
	test_sh.password_command = NULL;
	test_sh.credential = (char *)"c";
	cr_assert(secret_configured(&test_sh));
	test_sh.credential = NULL;
	test_sh.token_file = (char *)"/t";
	cr_assert(secret_configured(&test_sh));
	test_sh.token_file = NULL;
	test_sh.token_command = (char *)"x";
	cr_assert(secret_configured(&test_sh));
}

Test(secret, no_source_is_not_found)
{
	struct secret *s = NULL;

	cr_assert_eq(secret_load(&test_sh, &s, &test_err), SQ_ENOTFOUND);
	cr_assert_null(s);
	cr_assert_str_eq(test_err.msg,
	    "smarthost s: no secret source configured");
}

Test(secret, free_accepts_null)
{
	secret_free(NULL);
}
