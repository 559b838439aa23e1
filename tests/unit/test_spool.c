/*
 * test_spool.c - the durable message store, in a temporary directory.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <sys/file.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msgfix.h"
#include "spool.h"
#include "param_rows.h"

/* The spool's fstatvfs(), getrandom(), lseek() and read() calls,
 * counted: the test is linked with -Wl,--wrap for them
 * (tests/CMakeLists.txt). */
static unsigned test_n_fstatvfs, test_n_getrandom, test_n_lseek, test_n_read;

int     __real_fstatvfs(int fd, struct statvfs *buf);
int     __wrap_fstatvfs(int fd, struct statvfs *buf);
ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);
off_t   __real_lseek(int fd, off_t off, int whence);
off_t   __wrap_lseek(int fd, off_t off, int whence);
ssize_t __real_read(int fd, void *buf, size_t len);
ssize_t __wrap_read(int fd, void *buf, size_t len);

ssize_t
__wrap_read(int fd, void *buf, size_t len)
{
	test_n_read++;
	return __real_read(fd, buf, len);
}

off_t
__wrap_lseek(int fd, off_t off, int whence)
{
	test_n_lseek++;
	return __real_lseek(fd, off, whence);
}

int
__wrap_fstatvfs(int fd, struct statvfs *buf)
{
	test_n_fstatvfs++;
	return __real_fstatvfs(fd, buf);
}

ssize_t
__wrap_getrandom(void *buf, size_t len, unsigned flags)
{
	test_n_getrandom++;
	return __real_getrandom(buf, len, flags);
}

static char test_root[64];
static char test_dir[128];

static void
test_setup(void)
{
	strcpy(test_root, "/tmp/sendq-test-spool.XXXXXX");
	cr_assert_not_null(mkdtemp(test_root));
	snprintf(test_dir, sizeof(test_dir), "%s/spool", test_root);
}

static int
test_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
test_teardown(void)
{
	nftw(test_root, test_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(spool, .init = test_setup, .fini = test_teardown);

static struct spool *
test_open(void)
{
	struct spool *sp = NULL;
	struct sq_err err = { 0 };

	cr_assert_eq(spool_open(test_dir, 1, &sp, &err), 0, "%s", err.msg);
	return sp;
}

static struct envelope *
test_envelope(const char *rcpt)
{
	struct envelope *env = envelope_new();

	envelope_set_sender(env, "alice@example.com");
	envelope_add_rcpt(env, rcpt);
	env->created = 1700000000;
	env->uid = 1000;
	return env;
}

/* Accept data as a message; returns its id (static buffer). */
static const char *
test_accept(struct spool *sp, const void *data, size_t len)
{
	static char          id[ENVELOPE_ID_MAX];
	struct spool_writer *w = NULL;
	struct envelope     *env;
	struct sq_err        err = { 0 };

	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0, "%s", err.msg);
	strcpy(id, spool_writer_id(w));
	cr_assert_eq(spool_writer_write(w, data, len, &err), 0, "%s", err.msg);
	env = test_envelope("bob@example.com");
	cr_assert_eq(spool_writer_commit(w, env, &err), 0, "%s", err.msg);
	cr_assert_str_eq(env->id, id);
	envelope_free(env);
	return id;
}

/* Number of entries in path (dot files not counted). */
static int
test_count_dir(const char *path)
{
	DIR           *d;
	struct dirent *de;
	int            n = 0;

	cr_assert_not_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Number of entries in test_dir/sub. */
static int
test_count(const char *sub)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", test_dir, sub);
	return test_count_dir(path);
}

static int
test_exists(const char *sub, const char *id, const char *ext)
{
	char        path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s/%s%s", test_dir, sub, id, ext);
	return stat(path, &st) == 0;
}

static mode_t
test_mode(const char *sub, const char *name)
{
	char        path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s%s%s", test_dir, sub ? "/" : "",
	    sub ? sub : "", name ? name : "");
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_mode & 07777;
}

struct test_found {
	char ids[16][ENVELOPE_ID_MAX];
	int  n;
};

static void
test_collect(const char *id, void *arg)
{
	struct test_found *f = arg;

	if (f->n < 16)
		strcpy(f->ids[f->n], id);
	f->n++;
}

static int
test_recover(struct spool *sp, struct test_found *f)
{
	struct sq_err err = { 0 };
	int           n;

	memset(f, 0, sizeof(*f));
	n = spool_recover(sp, test_collect, f, &err);
	cr_assert_geq(n, 0, "%s", err.msg);
	cr_assert_eq(n, f->n);
	return n;
}

Test(spool, accepted_message_is_recovered_byte_exact_with_its_envelope)
{
	struct spool     *sp = test_open();
	struct envelope  *env = NULL;
	struct sq_err     err = { 0 };
	struct test_found f;
	char             *data, *back, id[ENVELOPE_ID_MAX];
	size_t            len = 200000, i, got = 0;
	ssize_t           r;
	int               fd;

	data = malloc(len);
	for (i = 0; i < len; i++)
		data[i] = (char)(i * 7 + i / 13); /* CR, LF, NUL, 8-bit */
	strcpy(id, test_accept(sp, data, len));
	cr_assert(spool_id_valid(id));
	cr_assert_eq(test_recover(sp, &f), 1);
	cr_assert_str_eq(f.ids[0], id);

	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0, "%s", err.msg);
	cr_assert_str_eq(env->id, id);
	cr_assert_str_eq(env->sender, "alice@example.com");
	cr_assert_eq(env->n_rcpts, 1);
	cr_assert_str_eq(env->rcpts[0], "bob@example.com");
	cr_assert_eq(env->uid, 1000);
	envelope_free(env);

	fd = spool_open_message(sp, id, &err);
	cr_assert_geq(fd, 0, "%s", err.msg);
	back = malloc(len + 1);
	while ((r = read(fd, back + got, len + 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(back, data, len), 0);
	cr_assert_eq(test_count("tmp"), 0);
	free(back);
	free(data);
	spool_close(sp);
}

Test(spool, small_writes_are_kept_in_order)
{
	struct spool        *sp = test_open();
	struct spool_writer *w = NULL;
	struct envelope     *env = test_envelope("b@c");
	struct sq_err        err = { 0 };
	char                 buf[64], id[ENVELOPE_ID_MAX];
	const char *parts[] = { "Subject: x\r\n", "\r\n", "a", "bc\n", "" };
	size_t      i;
	ssize_t     r;
	int         fd;

	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0);
	strcpy(id, spool_writer_id(w));
	for (i = 0; i < 5; i++)
		cr_assert_eq(
		    spool_writer_write(w, parts[i], strlen(parts[i]), &err), 0);
	cr_assert_eq(spool_writer_commit(w, env, &err), 0, "%s", err.msg);
	fd = spool_open_message(sp, id, &err);
	r = read(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_eq(r, 18);
	cr_assert_eq(memcmp(buf, "Subject: x\r\n\r\nabc\n", 18), 0);
	envelope_free(env);
	spool_close(sp);
}

/* The writer's buffer grows from 4 KiB to 64 KiB as the message does
 * (spool.c): writes of every size, below, across and above each step,
 * land byte exact and in order. */
Test(spool, writes_of_any_size_across_the_growing_buffer_are_byte_exact)
{
	static const size_t  sizes[] = { 1, 4095, 2, 4096, 7, 8191, 1000, 16385,
		 3, 65535, 65536, 65537, 10, 200000, 4097, 1 };
	struct spool        *sp = test_open();
	struct spool_writer *w = NULL;
	struct envelope     *env = test_envelope("b@c");
	struct sq_err        err = { 0 };
	char                 id[ENVELOPE_ID_MAX], *data, *back;
	size_t               len = 0, off = 0, got = 0, i;
	ssize_t              r;
	int                  fd;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		len += sizes[i];
	data = malloc(len);
	back = malloc(len + 1);
	cr_assert(data != NULL && back != NULL);
	for (i = 0; i < len; i++)
		data[i] = (char)(i * 31 + i / 4099);
	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0, "%s", err.msg);
	strcpy(id, spool_writer_id(w));
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		cr_assert_eq(spool_writer_write(w, data + off, sizes[i], &err),
		    0, "%s", err.msg);
		off += sizes[i];
	}
	cr_assert_eq(spool_writer_commit(w, env, &err), 0, "%s", err.msg);
	fd = spool_open_message(sp, id, &err);
	cr_assert_geq(fd, 0, "%s", err.msg);
	while ((r = read(fd, back + got, len + 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	cr_assert_eq(got, len);
	cr_assert_eq(memcmp(back, data, len), 0);
	free(back);
	free(data);
	envelope_free(env);
	spool_close(sp);
}

Test(spool, directories_are_0700_spool_dir_0711_files_0600_whatever_the_umask)
{
	struct spool *sp;
	const char   *id;

	umask(0277);
	sp = test_open();
	id = test_accept(sp, "hi\n", 3);
	umask(022);
	/* Searchable, not listable: the drop helper passes through. */
	cr_assert_eq(test_mode(NULL, NULL), 0711);
	cr_assert_eq(test_mode("/tmp", NULL), 0700);
	cr_assert_eq(test_mode("/queue", NULL), 0700);
	{
		char name[64];

		snprintf(name, sizeof(name), "/%s.msg", id);
		cr_assert_eq(test_mode("/queue", name), 0600);
		snprintf(name, sizeof(name), "/%s.env", id);
		cr_assert_eq(test_mode("/queue", name), 0600);
	}
	spool_close(sp);
}

Test(spool, files_root_submits_belong_to_the_spool_owner)
{
	struct spool *sp;
	struct stat   st;
	char          path[256];
	const char   *id;

	if (geteuid() != 0)
		cr_skip_test("needs root to submit as root");
	sp = test_open();
	/* The spool belongs to the daemon's user (here: nobody), as
	 * systemd/sendq.tmpfiles sets it up. */
	snprintf(path, sizeof(path), "%s", test_dir);
	cr_assert_eq(chown(path, 65534, 65534), 0);
	snprintf(path, sizeof(path), "%s/tmp", test_dir);
	cr_assert_eq(chown(path, 65534, 65534), 0);
	snprintf(path, sizeof(path), "%s/queue", test_dir);
	cr_assert_eq(chown(path, 65534, 65534), 0);
	id = test_accept(sp, "hi\n", 3);
	snprintf(path, sizeof(path), "%s/queue/%s.msg", test_dir, id);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_uid, 65534);
	cr_assert_eq(st.st_gid, 65534);
	snprintf(path, sizeof(path), "%s/queue/%s.env", test_dir, id);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_uid, 65534);
	spool_close(sp);
}

Test(spool, open_without_create_names_the_missing_directory)
{
	struct spool *sp = NULL;
	struct sq_err err = { 0 };

	cr_assert_eq(spool_open(test_dir, 0, &sp, &err), -ENOENT);
	cr_assert_null(sp);
	cr_assert_not_null(strstr(err.msg, test_dir), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "No such file"), "%s", err.msg);
}

Test(spool, queue_dir_is_under_the_spool)
{
	struct spool *sp = test_open();
	char          want[256];

	snprintf(want, sizeof(want), "%s/queue", test_dir);
	cr_assert_str_eq(spool_queue_dir(sp), want);
	spool_close(sp);
}

Test(spool, dead_writers_temporary_files_are_removed_by_recover)
{
	struct spool        *sp = test_open();
	struct spool_writer *w = NULL;
	struct sq_err        err = { 0 };
	struct test_found    f;
	pid_t                pid;
	int                  status;

	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* A writer killed in the middle of a message. */
		if (spool_writer_begin(sp, &w, &err) != 0 ||
		    spool_writer_write(w, "x", 1, &err) != 0)
			_exit(1);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_eq(status, 0);
	/* Its body is written in queue/ (an ID.msg without ID.env). */
	cr_assert_eq(test_count("queue"), 1);
	cr_assert_eq(test_recover(sp, &f), 0);
	cr_assert_eq(test_count("queue"), 0);
	cr_assert_eq(test_count("tmp"), 0);
	spool_close(sp);
}

Test(spool, live_writers_temporary_files_are_left_alone)
{
	struct spool        *sp = test_open();
	struct spool_writer *w = NULL;
	struct envelope     *env = test_envelope("b@c");
	struct sq_err        err = { 0 };
	struct test_found    f;
	char                 id[ENVELOPE_ID_MAX];

	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0);
	strcpy(id, spool_writer_id(w));
	cr_assert_eq(spool_writer_write(w, "x\n", 2, &err), 0);
	cr_assert_eq(test_recover(sp, &f), 0);
	cr_assert(test_exists("queue", id, ".msg"));
	/* The writer can still finish. */
	cr_assert_eq(spool_writer_commit(w, env, &err), 0, "%s", err.msg);
	cr_assert_eq(test_recover(sp, &f), 1);
	cr_assert_str_eq(f.ids[0], id);
	envelope_free(env);
	spool_close(sp);
}

Test(spool, orphan_message_without_envelope_is_removed_unless_locked)
{
	struct spool     *sp = test_open();
	struct test_found f;
	char              path[256];
	const char       *id = "0065A1B2C3000014242";
	int               fd;

	/* A commit interrupted between the two renames, writer alive. */
	snprintf(path, sizeof(path), "%s/queue/%s.msg", test_dir, id);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(flock(fd, LOCK_EX), 0);
	cr_assert_eq(test_recover(sp, &f), 0);
	cr_assert(test_exists("queue", id, ".msg"));
	/* The writer died. */
	close(fd);
	cr_assert_eq(test_recover(sp, &f), 0);
	cr_assert_not(test_exists("queue", id, ".msg"));
	spool_close(sp);
}

/* Write text to test_dir/sub/name. */
static void
test_put(const char *sub, const char *name, const char *text)
{
	char  path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s/%s", test_dir, sub, name);
	cr_assert_not_null(fp = fopen(path, "w"), "%s", path);
	fputs(text, fp);
	fclose(fp);
}

/* The content of test_dir/sub/name (static buffer), "" when missing. */
static const char *
test_get(const char *sub, const char *name)
{
	static char text[4096];
	char        path[256];
	FILE       *fp;
	size_t      n;

	snprintf(path, sizeof(path), "%s/%s/%s", test_dir, sub, name);
	text[0] = '\0';
	if ((fp = fopen(path, "r")) == NULL)
		return text;
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

Test(spool, unusable_envelopes_are_moved_to_corrupt_with_a_reason)
{
	struct spool     *sp = test_open();
	struct test_found f;
	char              good[ENVELOPE_ID_MAX], good2[ENVELOPE_ID_MAX];

	strcpy(good, test_accept(sp, "x\n", 2));
	/* Garbage, with its body. */
	test_put("queue", "0065A1B2C3000010000.env", "\x01\x02garbage\n");
	test_put("queue", "0065A1B2C3000010000.msg", "body\n");
	/* Truncated: no "end" line. */
	test_put("queue", "0065A1B2C3000020000.env",
	    "sendq-envelope 1\nid 0065A1B2C3000020000\ncreated 1\n");
	test_put("queue", "0065A1B2C3000020000.msg", "body\n");
	/* Empty. */
	test_put("queue", "0065A1B2C3000030000.env", "");
	test_put("queue", "0065A1B2C3000030000.msg", "");
	/* An envelope without its message file. */
	test_put("queue", "0065A1B2C3000040000.env",
	    "sendq-envelope 1\nid 0065A1B2C3000040000\ncreated 1\nsender\nrcpt "
	    "a@b\nend\n");
	strcpy(good2, test_accept(sp, "y\n", 2));

	cr_assert_eq(test_recover(sp, &f), 2);
	cr_assert_str_eq(f.ids[0], good);
	cr_assert_str_eq(f.ids[1], good2);
	cr_assert_eq(test_count("queue"), 4);
	cr_assert_eq(test_count("corrupt"), 11);
	cr_assert(test_exists("corrupt", "0065A1B2C3000010000", ".msg"));
	cr_assert(test_exists("corrupt", "0065A1B2C3000010000", ".env"));
	cr_assert(test_exists("corrupt", "0065A1B2C3000020000", ".msg"));
	cr_assert(test_exists("corrupt", "0065A1B2C3000040000", ".env"));
	cr_assert_not(test_exists("corrupt", "0065A1B2C3000040000", ".msg"));
	cr_assert_not_null(
	    strstr(test_get("corrupt", "0065A1B2C3000040000.reason"),
		"without message file"));
	cr_assert_not_null(
	    strstr(test_get("corrupt", "0065A1B2C3000020000.reason"),
		"0065A1B2C3000020000.env"));
	cr_assert_neq(test_get("corrupt", "0065A1B2C3000010000.reason")[0],
	    '\0');
	cr_assert_eq(test_mode("/corrupt", NULL), 0700);
	/* A second scan finds the same messages and moves nothing. */
	cr_assert_eq(test_recover(sp, &f), 2);
	cr_assert_eq(test_count("corrupt"), 11);
	spool_close(sp);
}

Test(spool, spool_without_corrupt_dir_opens_and_recovers)
{
	struct spool     *sp = test_open();
	struct test_found f;

	test_accept(sp, "x\n", 2);
	cr_assert_eq(test_recover(sp, &f), 1);
	/* Made only when something has to go there. */
	cr_assert_not(test_exists("", "corrupt", ""));
	spool_close(sp);
}

/* Write text as queue/ID.env by hand (path gets its name). */
static void
test_write_env(const char *id, const char *text, char *path, size_t path_sz)
{
	FILE *fp;

	snprintf(path, path_sz, "%s/queue/%s.env", test_dir, id);
	cr_assert_not_null(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
}

Test(spool, envelope_for_another_id_is_rejected)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	char             path[256];

	test_write_env("0065A1B2C3000010000",
	    "sendq-envelope 1\nid 0065A1B2C3000010001\ncreated "
	    "1\nsender\nrcpt a@b\nend\n",
	    path, sizeof(path));
	cr_assert_eq(spool_load_envelope(sp, "0065A1B2C3000010000", &env, &err),
	    SQ_EPARSE);
	cr_assert_not_null(strstr(err.msg, "0065A1B2C3000010001"));
	spool_close(sp);
}

/* An envelope of known size is read with one read(): none more for the
 * end of file (the drain loads each envelope twice). */
Test(spool, an_envelope_is_loaded_with_one_read)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	char             path[256];

	test_write_env("0065A1B2C3000010000",
	    "sendq-envelope 1\nid 0065A1B2C3000010000\ncreated "
	    "1\nsender a@b\nrcpt c@d\nend\n",
	    path, sizeof(path));
	test_n_read = 0;
	cr_assert_eq(spool_load_envelope(sp, "0065A1B2C3000010000", &env, &err),
	    0, "%s", err.msg);
	cr_assert_eq(test_n_read, 1);
	cr_assert_str_eq(env->rcpts[0], "c@d");
	envelope_free(env);
	spool_close(sp);
}

Test(spool, parse_errors_name_the_file)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	char             path[256];

	test_write_env("0065A1B2C3000010000", "sendq-envelope 1\nbogus\n", path,
	    sizeof(path));
	cr_assert_eq(spool_load_envelope(sp, "0065A1B2C3000010000", &env, &err),
	    SQ_EPARSE);
	cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "line 2"), "%s", err.msg);
	spool_close(sp);
}

Test(spool, remove_deletes_envelope_and_body)
{
	struct spool     *sp = test_open();
	struct envelope  *env = NULL;
	struct sq_err     err = { 0 };
	struct test_found f;
	char              id[ENVELOPE_ID_MAX];

	strcpy(id, test_accept(sp, "x\n", 2));
	cr_assert_eq(spool_remove(sp, id, &err), 0, "%s", err.msg);
	cr_assert_not(test_exists("queue", id, ".env"));
	cr_assert_not(test_exists("queue", id, ".msg"));
	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), SQ_ENOTFOUND);
	cr_assert_eq(spool_remove(sp, id, &err), SQ_ENOTFOUND);
	cr_assert_lt(spool_open_message(sp, id, &err), 0);
	cr_assert_eq(test_recover(sp, &f), 0);
	spool_close(sp);
}

Test(spool, update_envelope_replaces_it_atomically)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL, *back = NULL;
	struct sq_err    err = { 0 };
	char             id[ENVELOPE_ID_MAX];

	strcpy(id, test_accept(sp, "x\n", 2));
	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0);
	env->attempts = 2;
	env->next_attempt = 1700009999;
	envelope_set_error(env, "421 4.7.0 busy");
	cr_assert_eq(spool_update_envelope(sp, env, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_load_envelope(sp, id, &back, &err), 0);
	cr_assert_eq(back->attempts, 2);
	cr_assert_eq(back->next_attempt, 1700009999);
	cr_assert_str_eq(back->last_error, "421 4.7.0 busy");
	cr_assert_eq(test_count("tmp"), 0);
	envelope_free(back);

	/* A removed message is not brought back. */
	cr_assert_eq(spool_remove(sp, id, &err), 0);
	cr_assert_eq(spool_update_envelope(sp, env, &err), SQ_ENOTFOUND);
	cr_assert_not(test_exists("queue", id, ".env"));
	envelope_free(env);
	spool_close(sp);
}

Test(spool, ids_are_unique_and_list_returns_them_in_order)
{
	struct spool        *sp = test_open();
	struct spool_writer *w;
	struct sq_err        err = { 0 };
	struct test_found    f;
	char(*ids)[ENVELOPE_ID_MAX];
	int i, j, n = 2000;

	ids = calloc((size_t)n, sizeof(*ids));
	for (i = 0; i < n; i++) {
		cr_assert_eq(spool_writer_begin(sp, &w, &err), 0);
		strcpy(ids[i], spool_writer_id(w));
		cr_assert(spool_id_valid(ids[i]), "%s", ids[i]);
		if (i < 5) {
			struct envelope *env = test_envelope("x@y");

			cr_assert_eq(spool_writer_commit(w, env, &err), 0);
			envelope_free(env);
		} else
			spool_writer_abort(w);
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			cr_assert_str_neq(ids[i], ids[j]);
	cr_assert_eq(test_count("tmp"), 0);
	memset(&f, 0, sizeof(f));
	cr_assert_eq(spool_list(sp, test_collect, &f, &err), 5);
	for (i = 0; i < 5; i++)
		cr_assert_eq(strncmp(f.ids[i], ids[i], 10), 0);
	for (i = 1; i < 5; i++)
		cr_assert_lt(strcmp(f.ids[i - 1], f.ids[i]), 0);
	free(ids);
	spool_close(sp);
}

static int
test_hexval(char c)
{
	return c >= 'A' ? c - 'A' + 10 : c - '0';
}

/* The 16 random hex digits of an id as a number. */
static unsigned long long
test_id_random(const char *id)
{
	unsigned long long v = 0;
	int                i;

	for (i = 15; i < 31; i++)
		v = v << 4 | (unsigned long long)test_hexval(id[i]);
	return v;
}

Test(spool, new_ids_are_time_then_64_random_bits)
{
	struct spool        *sp = test_open();
	struct spool_writer *w;
	struct sq_err        err = { 0 };
	char(*ids)[ENVELOPE_ID_MAX];
	unsigned long long any = 0, all = ~0ULL, r;
	long long          secs;
	time_t             before = time(NULL), after;
	int                i, j, n = 1000;

	ids = calloc((size_t)n, sizeof(*ids));
	for (i = 0; i < n; i++) {
		cr_assert_eq(spool_writer_begin(sp, &w, &err), 0, "%s",
		    err.msg);
		strcpy(ids[i], spool_writer_id(w));
		spool_writer_abort(w);
	}
	after = time(NULL);
	for (i = 0; i < n; i++) {
		cr_assert_eq(strlen(ids[i]), 31, "%s", ids[i]);
		cr_assert_eq(strspn(ids[i], "0123456789ABCDEF"), 31, "%s",
		    ids[i]);
		cr_assert(spool_id_valid(ids[i]), "%s", ids[i]);
		/* The first 10 digits are the seconds of arrival. */
		for (secs = 0, j = 0; j < 10; j++)
			secs = secs * 16 + test_hexval(ids[i][j]);
		cr_assert_geq(secs, (long long)before);
		cr_assert_leq(secs, (long long)after);
		r = test_id_random(ids[i]);
		any |= r;
		all &= r;
		/* Arrival order: a later time prefix sorts later. */
		if (i > 0 && strncmp(ids[i - 1], ids[i], 15) != 0)
			cr_assert_lt(strcmp(ids[i - 1], ids[i]), 0, "%s %s",
			    ids[i - 1], ids[i]);
	}
	/* Every one of the 64 bits varies: each is set in some id and
	 * clear in another (a counter or a 32-bit value would fail). */
	cr_assert_eq(any, ~0ULL, "%llx", any);
	cr_assert_eq(all, 0ULL, "%llx", all);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			cr_assert_neq(test_id_random(ids[i]),
			    test_id_random(ids[j]));
	free(ids);
	spool_close(sp);
}

/* The id of a new writer's message (the writer abandoned). */
static void
test_new_id(struct spool *sp, char *id)
{
	struct spool_writer *w = NULL;
	struct sq_err        err = { 0 };

	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0, "%s", err.msg);
	strcpy(id, spool_writer_id(w));
	spool_writer_abort(w);
}

Test(spool, ids_draw_their_randomness_many_at_a_time)
{
	struct spool *sp = test_open();
	char          id[ENVELOPE_ID_MAX];
	int           i;

	test_n_getrandom = 0;
	for (i = 0; i < 64; i++)
		test_new_id(sp, id);
	/* 32 ids a draw (SPOOL_RAND_IDS), one more for a pool this
	 * process had begun. */
	cr_assert_geq(test_n_getrandom, 2);
	cr_assert_leq(test_n_getrandom, 3, "%u draws for 64 ids",
	    test_n_getrandom);
	spool_close(sp);
}

Test(spool, a_forked_child_never_makes_its_parents_next_id)
{
	struct spool *sp = test_open();
	char          id[ENVELOPE_ID_MAX], child[ENVELOPE_ID_MAX];
	int           p[2], status;
	pid_t         pid;

	test_new_id(sp, id); /* a pool begun, the rest to come */
	cr_assert_eq(pipe(p), 0);
	cr_assert_geq(pid = fork(), 0);
	if (pid == 0) {
		close(p[0]);
		test_new_id(sp, child);
		_exit(write(p[1], child, sizeof(child)) ==
			    (ssize_t)sizeof(child) ?
			0 :
			1);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], child, sizeof(child)), (ssize_t)sizeof(child));
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	test_new_id(sp, id);
	cr_assert_neq(test_id_random(id), test_id_random(child),
	    "parent %s, child %s", id, child);
	spool_close(sp);
}

Test(spool, space_ok_refuses_new_mail_below_the_reserve)
{
	struct spool  *sp = test_open();
	struct sq_err  err = { 0 };
	struct statvfs vfs;
	uint64_t       avail;

	cr_assert_eq(statvfs(test_dir, &vfs), 0);
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	cr_assert_gt(avail, 1024 * 1024, "the test filesystem is full");
	/* Off (the default), whatever comes. */
	cr_assert_eq(spool_space_ok(sp, UINT64_MAX, &err), 0);
	/* A reserve the filesystem has. */
	spool_set_min_free(sp, 4096);
	cr_assert_eq(spool_space_ok(sp, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_space_ok(sp, 4096, &err), 0, "%s", err.msg);
	/* A message that would take it below. */
	cr_assert_eq(spool_space_ok(sp, avail, &err), -ENOSPC);
	cr_assert_not_null(strstr(err.msg,
			       "a message of this size would go below the "
			       "reserve (min_free_space = 4096 bytes)"),
	    "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, test_dir), "%s", err.msg);
	/* Already below: even a message of unknown size. */
	spool_set_min_free(sp, UINT64_MAX / 2);
	memset(&err, 0, sizeof(err));
	cr_assert_eq(spool_space_ok(sp, 0, &err), -ENOSPC);
	cr_assert_eq(err.code, -ENOSPC);
	cr_assert_not_null(strstr(err.msg, "bytes free, below the reserve"),
	    "%s", err.msg);
	/* The writers do not look at it: bounces still go in. */
	test_accept(sp, "x\n", 2);
	cr_assert_eq(test_count("queue"), 2);
	spool_set_min_free(sp, 0);
	cr_assert_eq(spool_space_ok(sp, 0, &err), 0);
	spool_close(sp);
}

/* The free space spool_space_ok's refusal names ("N bytes free"). */
static uint64_t
test_space_said(struct spool *sp)
{
	struct sq_err      err = { 0 };
	unsigned long long avail = 0;

	cr_assert_eq(spool_space_ok(sp, 0, &err), -ENOSPC);
	cr_assert_eq(
	    sscanf(strstr(err.msg, ": ") + 2, "%llu bytes free", &avail), 1,
	    "%s", err.msg);
	return avail;
}

Test(spool, space_cache_reads_once_a_turn_less_what_writers_took)
{
	struct spool        *sp = test_open();
	struct spool_writer *w = NULL;
	struct sq_err        err = { 0 };
	char                 path[256], *chunk;
	uint64_t             first, now;
	int                  fd, i;

	/* Always below: every answer names what it found free. */
	spool_set_min_free(sp, UINT64_MAX / 2);
	spool_space_cache(sp, 1);
	test_n_fstatvfs = 0;
	first = test_space_said(sp);
	/* A MiB written by someone else: the turn's figure stands. */
	snprintf(path, sizeof(path), "%s/other", test_root);
	cr_assert_geq(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	chunk = calloc(1, 64 * 1024);
	for (i = 0; i < 16; i++)
		cr_assert_eq(write(fd, chunk, 64 * 1024), 64 * 1024);
	free(chunk);
	cr_assert_eq(fsync(fd), 0);
	close(fd);
	cr_assert_eq(test_space_said(sp), first, "read again in the turn");
	/* What a writer is given counts at once, whether or not it
	 * reached the disk. */
	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_writer_write(w, "0123456789", 10, &err), 0);
	cr_assert_eq(test_space_said(sp), first - 10);
	/* The reserve: just above it, then below by what was written. */
	spool_set_min_free(sp, first - 20);
	cr_assert_eq(spool_space_ok(sp, 0, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_space_ok(sp, 10, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_space_ok(sp, 11, &err), -ENOSPC);
	cr_assert_eq(spool_writer_write(w, "0123456789x", 11, &err), 0);
	cr_assert_eq(spool_space_ok(sp, 0, &err), -ENOSPC, "below by 1");
	cr_assert_eq(test_n_fstatvfs, 1, "%u reads in a turn", test_n_fstatvfs);
	spool_writer_abort(w);
	/* The turn is over: read again (the MiB counts now). */
	spool_set_min_free(sp, UINT64_MAX / 2);
	spool_space_cache(sp, 0);
	now = test_space_said(sp);
	/* (Not compared with first: other programs share the disk.) */
	cr_assert_neq(now, first - 21, "not read again");
	cr_assert_eq(test_n_fstatvfs, 2);
	/* Off: every check reads. */
	test_space_said(sp);
	cr_assert_eq(test_n_fstatvfs, 3);
	unlink(path);
	spool_close(sp);
}

Test(spool, message_size_is_the_body_file_size)
{
	struct spool *sp = test_open();
	struct sq_err err = { 0 };
	uint64_t      size = 0;
	const char   *id;

	id = test_accept(sp, "Subject: x\n\nbody\n", 17);
	cr_assert_eq(spool_message_size(sp, id, &size, &err), 0, "%s", err.msg);
	cr_assert_eq(size, 17);
	cr_assert_eq(spool_message_size(sp, "0065A1B2C3000014242", &size, &err),
	    -ENOENT);
	spool_close(sp);
}

Test(spool, files_of_ids_made_by_earlier_versions_are_still_found)
{
	struct spool     *sp = test_open();
	struct sq_err     err = { 0 };
	struct test_found f;
	const char       *id;

	test_put("queue", "0065A1B2C3000040000.env",
	    "sendq-envelope 1\nid 0065A1B2C3000040000\ncreated 1\nsender\nrcpt "
	    "a@b\nend\n");
	test_put("queue", "0065A1B2C3000040000.msg", "old\n");
	id = test_accept(sp, "new\n", 4);
	memset(&f, 0, sizeof(f));
	cr_assert_eq(spool_recover(sp, test_collect, &f, &err), 2, "%s",
	    err.msg);
	cr_assert_str_eq(f.ids[0], "0065A1B2C3000040000");
	cr_assert_str_eq(f.ids[1], id);
	spool_close(sp);
}

Test(spool, write_failure_names_the_path_and_leaves_nothing_behind)
{
	struct spool        *sp = test_open();
	struct spool_writer *w = NULL;
	struct envelope     *env = test_envelope("b@c");
	struct sq_err        err = { 0 };
	struct rlimit        rl = { 4096, 4096 };
	char                *data;
	size_t               len = 300000;
	int                  rc;

	/* A file size limit fails write() like a full disk does. */
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	data = calloc(1, len);
	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0);
	rc = spool_writer_write(w, data, len, &err);
	if (rc == 0)
		rc = spool_writer_commit(w, env, &err);
	else
		cr_assert_eq(spool_writer_commit(w, env, &err), rc);
	cr_assert_eq(rc, -EFBIG);
	cr_assert_not_null(strstr(err.msg, "write "), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "/tmp/"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "File too large"), "%s", err.msg);
	cr_assert_eq(test_count("tmp"), 0);
	cr_assert_eq(test_count("queue"), 0);
	free(data);
	envelope_free(env);
	spool_close(sp);
}

struct id_case {
	char s[40];
	int  valid;
};

static struct id_case id_cases[] = {
	{ "0065A1B2C30000100A1B2C3D4E5F60718", 0 }, /* 33 */
	{ "0065A1B2C30000100A1B2C3D4E5F6071", 0 },  /* 32 */
	{ "0065A1B2C30000100A1B2C3D4E5F607", 1 },   /* 31: current */
	{ "0065A1B2C30000100A1B2C3D4E5F60", 0 },    /* 30 */
	{ "0065A1B2C30000100a1b2c3d4e5f607", 0 },   /* lower case */
	{ "0065A1B2C30000100A1B2C3D4E5F60G", 0 },
	{ "0065A1B2C30000100A1B2C3D4E5F60/", 0 },
	{ "0065A1B2C3000014242", 1 }, /* 19: earlier versions */
	{ "FFFFFFFFFFFFFFFFFFF", 1 },
	{ "0065A1B2C3000014242000", 0 }, /* 22 */
	{ "0065a1b2c3000014242", 0 },
	{ "0065A1B2C300001424", 0 },
	{ "0065A1B2C30000142420", 0 },
	{ "0065A1B2C30000142G2", 0 },
	{ "../../etc/passwd", 0 },
	{ "", 0 },
};

ParameterizedTestParameters(spool, id_valid_accepts_only_the_id_form)
{
	return cr_make_param_array(struct id_case, id_cases,
	    sizeof(id_cases) / sizeof(id_cases[0]));
}

ParameterizedTest(struct id_case *c, spool, id_valid_accepts_only_the_id_form)
{
	cr_assert_eq(spool_id_valid(c->s), c->valid, "%s", c->s);
}

Test(spool, permanent_failure_is_held_in_failed_with_body_and_reason)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	char             path[256], buf[64];
	const char      *id;
	FILE            *f;
	size_t           n;

	id = test_accept(sp, "Subject: x\n\nbody\n", 17);
	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0, "%s", err.msg);
	envelope_set_error(env, "550 5.1.1 no such user");
	cr_assert_eq(spool_hold_failed(sp, env, 3, &err), 0, "%s", err.msg);
	envelope_free(env);

	snprintf(path, sizeof(path), "%s/failed/%s.3.msg", test_dir, id);
	cr_assert_not_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	cr_assert_eq(n, 17);
	cr_assert_eq(memcmp(buf, "Subject: x\n\nbody\n", 17), 0);
	snprintf(path, sizeof(path), "%s/failed/%s.3.env", test_dir, id);
	cr_assert_not_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	cr_assert_not_null(strstr(buf, "sendq-envelope"));
	/* The queued message is untouched; tmp/ holds nothing. */
	cr_assert_eq(test_count("queue"), 2);
	cr_assert_eq(test_count("tmp"), 0);
	spool_close(sp);
}

Test(spool, commit_records_whether_the_body_is_8bit)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	const char      *id;

	id = test_accept(sp, "Subject: x\n\nplain\n", 18);
	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0, "%s", err.msg);
	cr_assert_eq(env->body_8bit, 0);
	envelope_free(env);
	id = test_accept(sp, "Subject: x\n\ncaf\xc3\xa9\n", 18);
	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0, "%s", err.msg);
	cr_assert_eq(env->body_8bit, 1);
	envelope_free(env);
	spool_close(sp);
}

/* Start a writer holding data. */
static struct spool_writer *
test_writer(struct spool *sp, const char *data)
{
	struct spool_writer *w = NULL;
	struct sq_err        err = { 0 };

	cr_assert_eq(spool_writer_begin(sp, &w, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_writer_write(w, data, strlen(data), &err), 0, "%s",
	    err.msg);
	return w;
}

/* Assert that the committed message id has body and recipient. */
static void
test_check_message(struct spool *sp, const char *id, const char *body,
    const char *rcpt)
{
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	char             buf[256];
	ssize_t          n;
	int              fd;

	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0, "%s", err.msg);
	cr_assert_eq(env->n_rcpts, 1);
	cr_assert_str_eq(env->rcpts[0], rcpt);
	envelope_free(env);
	cr_assert_geq(fd = spool_open_message(sp, id, &err), 0, "%s", err.msg);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_geq(n, 0);
	buf[n] = '\0';
	cr_assert_str_eq(buf, body);
}

#define TEST_GROUP_N 8

Test(spool, group_commit_lands_every_message_with_its_own_envelope)
{
	struct spool        *sp = test_open();
	struct spool_writer *w[TEST_GROUP_N];
	struct envelope     *envs[TEST_GROUP_N];
	struct sq_err        errs[TEST_GROUP_N];
	char ids[TEST_GROUP_N][ENVELOPE_ID_MAX], body[64], rcpt[64];
	int  results[TEST_GROUP_N];
	struct test_found f;
	size_t            i;

	for (i = 0; i < TEST_GROUP_N; i++) {
		snprintf(body, sizeof(body), "message %zu\n", i);
		snprintf(rcpt, sizeof(rcpt), "r%zu@example.net", i);
		w[i] = test_writer(sp, body);
		strcpy(ids[i], spool_writer_id(w[i]));
		envs[i] = test_envelope(rcpt);
		results[i] = 12345;
	}
	spool_commit_group(w, envs, TEST_GROUP_N, results, errs);
	for (i = 0; i < TEST_GROUP_N; i++) {
		cr_assert_eq(results[i], 0, "%zu: %s", i, errs[i].msg);
		cr_assert_str_eq(envs[i]->id, ids[i]);
		snprintf(body, sizeof(body), "message %zu\n", i);
		snprintf(rcpt, sizeof(rcpt), "r%zu@example.net", i);
		test_check_message(sp, ids[i], body, rcpt);
		envelope_free(envs[i]);
	}
	cr_assert_eq(test_recover(sp, &f), TEST_GROUP_N);
	cr_assert_eq(test_count("tmp"), 0);
	cr_assert_eq(test_count("queue"), 2 * TEST_GROUP_N);
	spool_close(sp);
}

Test(spool, group_commit_of_one_message_works_like_commit)
{
	struct spool        *sp = test_open();
	struct spool_writer *w = test_writer(sp, "caf\xc3\xa9\n");
	struct envelope     *env = test_envelope("b@c");
	struct sq_err        err;
	struct test_found    f;
	char                 name[ENVELOPE_ID_MAX + 8];
	int                  result = 1;

	spool_commit_group(&w, &env, 1, &result, &err);
	cr_assert_eq(result, 0, "%s", err.msg);
	cr_assert(env->body_8bit);
	cr_assert_eq(test_recover(sp, &f), 1);
	cr_assert_str_eq(f.ids[0], env->id);
	snprintf(name, sizeof(name), "%s.env", f.ids[0]);
	cr_assert_eq(test_mode("/queue/", name), 0600);
	envelope_free(env);
	spool_close(sp);
}

Test(spool, group_commit_member_with_write_error_fails_alone)
{
	struct spool        *sp = test_open();
	struct spool_writer *w[3];
	struct envelope     *envs[3];
	struct sq_err        errs[3], err = { 0 };
	struct rlimit        rl = { 4096, 4096 };
	struct test_found    f;
	char                 bad_id[ENVELOPE_ID_MAX], *big;
	int                  results[3];
	size_t               i;

	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	w[0] = test_writer(sp, "first\n");
	w[1] = test_writer(sp, "");
	strcpy(bad_id, spool_writer_id(w[1]));
	big = calloc(1, 300000);
	/* The error shows now or at the group's flush. */
	(void)spool_writer_write(w[1], big, 300000, &err);
	free(big);
	w[2] = test_writer(sp, "third\n");
	for (i = 0; i < 3; i++)
		envs[i] = test_envelope("b@c");
	spool_commit_group(w, envs, 3, results, errs);
	cr_assert_eq(results[0], 0, "%s", errs[0].msg);
	cr_assert_eq(results[1], -EFBIG);
	cr_assert_not_null(strstr(errs[1].msg, bad_id), "%s", errs[1].msg);
	cr_assert_eq(results[2], 0, "%s", errs[2].msg);
	test_check_message(sp, envs[0]->id, "first\n", "b@c");
	test_check_message(sp, envs[2]->id, "third\n", "b@c");
	cr_assert_eq(test_count("tmp"), 0);
	cr_assert_eq(test_count("queue"), 4);
	cr_assert_eq(test_recover(sp, &f), 2);
	for (i = 0; i < 3; i++)
		envelope_free(envs[i]);
	spool_close(sp);
}

/* Mode and group of test_dir/sub/name (name may be NULL). */
static mode_t
test_mode_gid(const char *sub, const char *name, gid_t *gid)
{
	char        path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s%s%s", test_dir, sub,
	    name != NULL ? "/" : "", name != NULL ? name : "");
	cr_assert_eq(lstat(path, &st), 0, "%s", path);
	*gid = st.st_gid;
	return st.st_mode & 07777;
}

/* A group that is not the test's own, for the readers' group: the name
 * into name, its gid. */
static gid_t
test_other_group(char *name, size_t sz)
{
	struct group *gr;

	if (geteuid() != 0)
		cr_skip_test("needs root to give the spool another group");
	if ((gr = getgrgid(65534)) == NULL)
		cr_skip_test("no group 65534");
	snprintf(name, sz, "%s", gr->gr_name);
	return gr->gr_gid;
}

Test(spool, queue_group_shares_envelopes_never_bodies)
{
	struct spool    *sp = test_open();
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };
	char  group[64], name[64], old[ENVELOPE_ID_MAX], id[ENVELOPE_ID_MAX];
	gid_t gid, g;

	gid = test_other_group(group, sizeof(group));
	/* A message of before: 0600 with the daemon's group. */
	strcpy(old, test_accept(sp, "hi\n", 3));
	cr_assert_eq(spool_set_queue_group(sp, group, &err), 0, "%s", err.msg);
	cr_assert_eq(test_mode_gid("tmp", NULL, &g), 02700);
	cr_assert_eq(g, gid);
	cr_assert_eq(test_mode_gid("queue", NULL, &g), 0750);
	cr_assert_eq(g, gid);
	/* The old envelope is given to the group; its body is not. */
	snprintf(name, sizeof(name), "%s.env", old);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0640);
	cr_assert_eq(g, gid);
	snprintf(name, sizeof(name), "%s.msg", old);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0600);
	/* A new message: born with the group of tmp/, envelope 0640,
	 * body 0600. */
	strcpy(id, test_accept(sp, "hello\n", 6));
	snprintf(name, sizeof(name), "%s.env", id);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0640);
	cr_assert_eq(g, gid);
	/* The body is born in queue/ (not setgid): 0600, whatever its
	 * group. */
	snprintf(name, sizeof(name), "%s.msg", id);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0600);
	/* A replaced envelope keeps the mode; a failure record is 0600. */
	cr_assert_eq(spool_load_envelope(sp, id, &env, &err), 0, "%s", err.msg);
	env->attempts = 2;
	cr_assert_eq(spool_update_envelope(sp, env, &err), 0, "%s", err.msg);
	snprintf(name, sizeof(name), "%s.env", id);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0640);
	cr_assert_eq(spool_hold_failed(sp, env, 2, &err), 0, "%s", err.msg);
	envelope_free(env);
	snprintf(name, sizeof(name), "%s.2.env", id);
	cr_assert_eq(test_mode_gid("failed", name, &g), 0600);
	/* A second spool on the same directories (the control socket's)
	 * makes envelopes the same way. */
	spool_close(sp);
	sp = test_open();
	strcpy(id, test_accept(sp, "again\n", 6));
	snprintf(name, sizeof(name), "%s.env", id);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0640);
	cr_assert_eq(g, gid);
	spool_close(sp);
}

Test(spool, without_queue_group_queue_and_envelopes_stay_private)
{
	struct spool *sp = test_open();
	struct sq_err err = { 0 };
	char          path[256], name[64];
	const char   *id;
	gid_t         g;

	/* Left over from an install that had the group. */
	snprintf(path, sizeof(path), "%s/tmp", test_dir);
	cr_assert_eq(chmod(path, 02700), 0);
	snprintf(path, sizeof(path), "%s/queue", test_dir);
	cr_assert_eq(chmod(path, 0750), 0);
	cr_assert_eq(spool_set_queue_group(sp, "sendq-no-such-group-x", &err),
	    0, "%s", err.msg);
	cr_assert_eq(test_mode_gid("tmp", NULL, &g), 0700);
	cr_assert_eq(test_mode_gid("queue", NULL, &g), 0700);
	id = test_accept(sp, "hi\n", 3);
	snprintf(name, sizeof(name), "%s.env", id);
	cr_assert_eq(test_mode_gid("queue", name, &g), 0600);
	spool_close(sp);
}

Test(spool, open_queue_reads_queue_only)
{
	struct spool     *sp = test_open(), *rq = NULL;
	struct envelope  *env = NULL;
	struct sq_err     err = { 0 };
	struct test_found f = { 0 };
	char              path[256], id[ENVELOPE_ID_MAX];
	uint64_t          size = 0;

	strcpy(id, test_accept(sp, "hello\n", 6));
	spool_close(sp);
	/* Nothing but queue/ is needed (the lister's group reaches
	 * nothing else). */
	snprintf(path, sizeof(path), "%s/tmp", test_dir);
	cr_assert_eq(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/failed", test_dir);
	cr_assert_eq(rmdir(path), 0);
	cr_assert_eq(spool_open_queue(test_dir, &rq, &err), 0, "%s", err.msg);
	cr_assert_eq(spool_list(rq, test_collect, &f, &err), 1, "%s", err.msg);
	cr_assert_str_eq(f.ids[0], id);
	cr_assert_eq(spool_load_envelope(rq, id, &env, &err), 0, "%s", err.msg);
	envelope_free(env);
	cr_assert_eq(spool_message_size(rq, id, &size, &err), 0, "%s", err.msg);
	cr_assert_eq(size, 6);
	spool_close(rq);
}

Test(spool, open_queue_does_not_follow_a_symlinked_queue)
{
	struct spool *sp = test_open(), *rq = NULL;
	struct sq_err err = { 0 };
	char          path[256], target[256];
	int           rc;

	spool_close(sp);
	snprintf(path, sizeof(path), "%s/queue", test_dir);
	snprintf(target, sizeof(target), "%s/elsewhere", test_root);
	cr_assert_eq(rename(path, target), 0);
	cr_assert_eq(symlink(target, path), 0);
	rc = spool_open_queue(test_dir, &rq, &err);
	/* O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP). */
	cr_assert(rc == -ENOTDIR || rc == -ELOOP, "%d %s", rc, err.msg);
	cr_assert_null(rq);
	snprintf(path, sizeof(path), "%s/nothing", test_root);
	cr_assert_eq(spool_open_queue(path, &rq, &err), -ENOENT);
}

/* Asynchronous commit (spool_async_start): callbacks from dispatch. */
struct test_async {
	int    calls;
	int    rc[TEST_GROUP_N];
	size_t order[TEST_GROUP_N];
};

struct test_async_arg {
	struct test_async *t;
	size_t             i;
};

static void
test_async_done(void *arg, int rc, const struct sq_err *err)
{
	struct test_async_arg *a = arg;

	(void)err;
	a->t->rc[a->i] = rc;
	a->t->order[a->t->calls++] = a->i;
}

/* Wait on the eventfd and dispatch until want callbacks have run. */
static void
test_async_wait(struct spool *sp, int efd, struct test_async *t, int want)
{
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	int           rounds = 0;

	while (t->calls < want) {
		cr_assert(rounds++ < 1000, "commit thread did not answer");
		if (poll(&pfd, 1, 100) > 0)
			spool_async_dispatch(sp);
	}
}

Test(spool, async_commit_answers_from_dispatch_once_durable)
{
	struct spool         *sp = test_open();
	struct spool_writer  *w;
	struct envelope      *envs[TEST_GROUP_N];
	struct test_async_arg args[TEST_GROUP_N];
	struct test_async     t = { 0 };
	char                  body[64], rcpt[64];
	struct sq_err         err;
	struct test_found     f;
	size_t                i;
	int                   efd;

	efd = spool_async_start(sp, &err);
	cr_assert_geq(efd, 0, "%s", err.msg);
	cr_assert_eq(spool_async_start(sp, &err), efd);
	for (i = 0; i < TEST_GROUP_N; i++) {
		snprintf(body, sizeof(body), "message %zu\n", i);
		snprintf(rcpt, sizeof(rcpt), "r%zu@example.net", i);
		w = test_writer(sp, body);
		envs[i] = test_envelope(rcpt);
		args[i] = (struct test_async_arg){ &t, i };
		spool_commit_async(w, envs[i], test_async_done, &args[i]);
	}
	/* No callback runs outside dispatch. */
	cr_assert_eq(t.calls, 0);
	test_async_wait(sp, efd, &t, TEST_GROUP_N);
	for (i = 0; i < TEST_GROUP_N; i++) {
		cr_assert_eq(t.rc[i], 0);
		cr_assert_eq(t.order[i], i, "callbacks in submission order");
		snprintf(body, sizeof(body), "message %zu\n", i);
		snprintf(rcpt, sizeof(rcpt), "r%zu@example.net", i);
		test_check_message(sp, envs[i]->id, body, rcpt);
	}
	cr_assert_eq(test_count("tmp"), 0);
	cr_assert_eq(test_recover(sp, &f), TEST_GROUP_N);
	/* Removals go to the removal thread; stop waits for them. */
	for (i = 0; i < TEST_GROUP_N; i++) {
		cr_assert_eq(spool_remove_unsynced(sp, envs[i]->id, &err), 0);
		/* The envelope left the queue at once (renamed to ID.del),
		 * whatever the removal thread has done yet: a rescan cannot
		 * index a delivered message again. */
		cr_assert_not(test_exists("queue", envs[i]->id, ".env"));
		envelope_free(envs[i]);
	}
	memset(&f, 0, sizeof(f));
	cr_assert_eq(spool_list(sp, test_collect, &f, &err), 0);
	cr_assert_eq(spool_sync_removals(sp, &err), 1);
	spool_async_stop(sp);
	cr_assert_eq(test_count("queue"), 0);
	spool_close(sp);
}

Test(spool, async_commit_failure_is_reported_and_leaves_nothing)
{
	struct spool         *sp = test_open();
	struct spool_writer  *w[2];
	struct envelope      *envs[2];
	struct test_async_arg args[2];
	struct test_async     t = { 0 };
	struct rlimit         rl = { 4096, 4096 };
	struct sq_err         err = { 0 };
	char                 *big;
	int                   efd;

	efd = spool_async_start(sp, &err);
	cr_assert_geq(efd, 0, "%s", err.msg);
	signal(SIGXFSZ, SIG_IGN);
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	w[0] = test_writer(sp, "");
	big = calloc(1, 300000);
	(void)spool_writer_write(w[0], big, 300000, &err);
	free(big);
	w[1] = test_writer(sp, "fine\n");
	envs[0] = test_envelope("b@c");
	envs[1] = test_envelope("b@c");
	args[0] = (struct test_async_arg){ &t, 0 };
	args[1] = (struct test_async_arg){ &t, 1 };
	spool_commit_async(w[0], envs[0], test_async_done, &args[0]);
	spool_commit_async(w[1], envs[1], test_async_done, &args[1]);
	/* spool_close stops the thread and runs what is left. */
	spool_close(sp);
	cr_assert_eq(t.calls, 2);
	cr_assert_eq(t.rc[0], -EFBIG);
	cr_assert_eq(t.rc[1], 0);
	cr_assert_eq(test_count("tmp"), 0);
	cr_assert_eq(test_count("queue"), 2);
	envelope_free(envs[0]);
	envelope_free(envs[1]);
}

/* Put a file of the given content at test_dir/queue/ID.ext. */
static void
test_plant(const char *id, const char *ext, const char *content)
{
	char  path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/queue/%s%s", test_dir, id, ext);
	cr_assert_not_null(f = fopen(path, "w"));
	fputs(content, f);
	fclose(f);
}

/* The content of test_dir/queue/ID.ext into buf. */
static const char *
test_slurp(const char *id, const char *ext, char *buf, size_t size)
{
	char   path[256];
	FILE  *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/queue/%s%s", test_dir, id, ext);
	cr_assert_not_null(f = fopen(path, "r"));
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* An id whose envelope is already in queue/ (a broken clock and a
 * repeated random value; the body's name is taken with O_EXCL when the
 * writer starts, the envelope's at the rename) fails the commit and
 * leaves that envelope untouched, on every commit path. */
Test(spool, commit_never_replaces_a_queued_message_of_the_same_id)
{
	struct spool        *sp = test_open();
	struct spool_writer *w[2];
	struct envelope     *env[2];
	struct sq_err        err = { 0 }, errs[1];
	char                 id[2][ENVELOPE_ID_MAX], buf[64];
	int                  rc[1];

	w[0] = test_writer(sp, "new one\n");
	strcpy(id[0], spool_writer_id(w[0]));
	test_plant(id[0], ".env", "the queued one\n");
	env[0] = test_envelope("b@c");
	cr_assert_eq(spool_writer_commit(w[0], env[0], &err), -EEXIST);
	cr_assert(strstr(err.msg, "rename into queue/") != NULL, "%s", err.msg);
	cr_assert_str_eq(test_slurp(id[0], ".env", buf, sizeof(buf)),
	    "the queued one\n");
	cr_assert_not(test_exists("queue", id[0], ".msg"));

	/* The group commit. */
	w[1] = test_writer(sp, "new two\n");
	strcpy(id[1], spool_writer_id(w[1]));
	test_plant(id[1], ".env", "the queued envelope\n");
	env[1] = test_envelope("b@c");
	spool_commit_group(&w[1], &env[1], 1, rc, errs);
	cr_assert_eq(rc[0], -EEXIST, "%s", errs[0].msg);
	cr_assert_str_eq(test_slurp(id[1], ".env", buf, sizeof(buf)),
	    "the queued envelope\n");
	cr_assert_not(test_exists("queue", id[1], ".msg"));
	cr_assert_eq(test_count("tmp"), 0);
	envelope_free(env[0]);
	envelope_free(env[1]);
	spool_close(sp);
}

/* A watcher of queue/ learns of an asynchronous commit from its
 * callback, not from the rename: until the callback has run the id is
 * pending, after it not. */
Test(spool, commit_pending_until_the_callback_runs)
{
	struct spool         *sp = test_open();
	struct spool_writer  *w;
	struct envelope      *env = test_envelope("b@c");
	struct test_async     t = { 0 };
	struct test_async_arg arg = { &t, 0 };
	struct sq_err         err = { 0 };
	char                  id[ENVELOPE_ID_MAX];
	int                   efd;

	cr_assert_not(spool_commit_pending(sp, "0"), "no thread: nothing");
	efd = spool_async_start(sp, &err);
	cr_assert_geq(efd, 0, "%s", err.msg);
	w = test_writer(sp, "pending\n");
	strcpy(id, spool_writer_id(w));
	spool_commit_async(w, env, test_async_done, &arg);
	cr_assert(spool_commit_pending(sp, id));
	cr_assert_not(
	    spool_commit_pending(sp, "006B0000000000000000000000000"));
	test_async_wait(sp, efd, &t, 1);
	cr_assert_eq(t.rc[0], 0);
	cr_assert_not(spool_commit_pending(sp, id));
	cr_assert(test_exists("queue", id, ".env"));
	envelope_free(env);
	spool_close(sp);
}

/* The removal thread waits for a group commit's fsync of queue/ rather
 * than making one of its own per batch: with a commit coming (here one,
 * and a delay no test machine reaches) its unlinks cost no fsync; with
 * none it syncs them itself (here when stopped). */
Test(spool, commit_batch_is_handed_over_at_its_end_as_one_group)
{
	struct spool          *sp;
	struct spool_wal_stats ws;
	struct envelope       *envs[TEST_GROUP_N], *alone;
	struct test_async_arg  args[TEST_GROUP_N];
	struct test_async      t = { 0 };
	struct pollfd          pfd;
	char                   body[64], rcpt[64];
	struct sq_err          err;
	size_t                 i;
	int                    efd;

	sp = test_open();
	cr_assert_eq(spool_wal_open(sp, 64 * 1024, &err), 0, "%s", err.msg);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	pfd = (struct pollfd){ .fd = efd, .events = POLLIN };
	spool_commit_batch_begin(sp);
	for (i = 0; i < TEST_GROUP_N; i++) {
		snprintf(body, sizeof(body), "message %zu\n", i);
		snprintf(rcpt, sizeof(rcpt), "r%zu@example.net", i);
		envs[i] = test_envelope(rcpt);
		args[i] = (struct test_async_arg){ &t, i };
		spool_commit_async(test_writer(sp, body), envs[i],
		    test_async_done, &args[i]);
		cr_assert(spool_commit_pending(sp, envs[i]->id));
		if (i == 0)
			/* Not handed over: the thread, which would take it
			 * alone, has nothing to commit. */
			cr_assert_eq(poll(&pfd, 1, 200), 0,
			    "committed before the batch ended");
	}
	spool_commit_batch_end(sp);
	test_async_wait(sp, efd, &t, TEST_GROUP_N);
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.groups, 1, "%llu groups",
	    (unsigned long long)ws.groups);
	cr_assert_eq(ws.messages, TEST_GROUP_N);
	for (i = 0; i < TEST_GROUP_N; i++) {
		cr_assert_eq(t.rc[i], 0);
		cr_assert_eq(t.order[i], i, "callbacks in submission order");
		snprintf(body, sizeof(body), "message %zu\n", i);
		snprintf(rcpt, sizeof(rcpt), "r%zu@example.net", i);
		test_check_message(sp, envs[i]->id, body, rcpt);
		cr_assert_not(spool_commit_pending(sp, envs[i]->id));
	}
	/* Outside a batch the hand-over is immediate again. */
	alone = test_envelope("a@example.net");
	t.calls = 0;
	spool_commit_async(test_writer(sp, "alone\n"), alone, test_async_done,
	    &args[0]);
	test_async_wait(sp, efd, &t, 1);
	cr_assert_eq(t.rc[0], 0);
	envelope_free(alone);
	for (i = 0; i < TEST_GROUP_N; i++)
		envelope_free(envs[i]);
	spool_close(sp);
}

/* A batch still open at the stop is handed over and answered. */
Test(spool, commit_batch_open_at_the_stop_is_committed)
{
	struct spool         *sp = test_open();
	struct envelope      *env = test_envelope("b@example.net");
	struct test_async_arg a;
	struct test_async     t = { 0 };
	struct sq_err         err;
	struct test_found     f;

	cr_assert_geq(spool_async_start(sp, &err), 0, "%s", err.msg);
	a = (struct test_async_arg){ &t, 0 };
	spool_commit_batch_begin(sp);
	spool_commit_async(test_writer(sp, "late\n"), env, test_async_done, &a);
	spool_async_stop(sp);
	cr_assert_eq(t.calls, 1);
	cr_assert_eq(t.rc[0], 0);
	test_check_message(sp, env->id, "late\n", "b@example.net");
	cr_assert_eq(test_recover(sp, &f), 1);
	envelope_free(env);
	spool_close(sp);
}

Test(spool, removals_share_the_next_commits_fsync)
{
	struct spool         *sp = test_open();
	struct envelope      *env[2];
	struct test_async     t = { 0 };
	struct test_async_arg arg[2] = { { &t, 0 }, { &t, 1 } };
	struct sq_err         err = { 0 };
	uint64_t              batches, own;
	int                   efd;

	spool_set_removal_sync_delay(sp, 600000);
	efd = spool_async_start(sp, &err);
	cr_assert_geq(efd, 0, "%s", err.msg);
	env[0] = test_envelope("b@c");
	spool_commit_async(test_writer(sp, "one\n"), env[0], test_async_done,
	    &arg[0]);
	test_async_wait(sp, efd, &t, 1);
	cr_assert_eq(spool_remove_unsynced(sp, env[0]->id, &err), 0, "%s",
	    err.msg);
	cr_assert(spool_removal_wait(sp, 1, 10000),
	    "the removal thread did nothing");
	cr_assert_not(test_exists("queue", env[0]->id, ".msg"));
	env[1] = test_envelope("b@c");
	spool_commit_async(test_writer(sp, "two\n"), env[1], test_async_done,
	    &arg[1]);
	test_async_wait(sp, efd, &t, 2);
	spool_async_stop(sp);
	spool_removal_stats(sp, &batches, &own);
	cr_assert_eq(batches, 1);
	cr_assert_eq(own, 0, "the commit's fsync covered the removal");

	/* No commit: the thread syncs its removal itself. */
	efd = spool_async_start(sp, &err);
	cr_assert_geq(efd, 0, "%s", err.msg);
	cr_assert_eq(spool_remove_unsynced(sp, env[1]->id, &err), 0, "%s",
	    err.msg);
	spool_async_stop(sp);
	spool_removal_stats(sp, &batches, &own);
	cr_assert_eq(batches, 2);
	cr_assert_eq(own, 1);
	cr_assert_eq(test_count("queue"), 0);
	envelope_free(env[0]);
	envelope_free(env[1]);
	spool_close(sp);
}

/* The start-up scan (names only): a pair is a message, an ID.msg without
 * its ID.env (an interrupted commit) is removed, an ID.env without its
 * ID.msg goes to corrupt/, each by the name it builds from the id. */
Test(spool, lazy_recovery_pairs_files_by_name)
{
	struct spool     *sp = test_open();
	struct sq_err     err = { 0 };
	struct test_found f;
	char              path[256], good[ENVELOPE_ID_MAX];
	FILE             *fp;

	strcpy(good, test_accept(sp, "x\n", 2));
	snprintf(path, sizeof(path), "%s/queue/0065A1B2C3000010000.msg",
	    test_dir);
	cr_assert_not_null(fp = fopen(path, "w"));
	fclose(fp);
	snprintf(path, sizeof(path), "%s/queue/0065A1B2C3000010001.env",
	    test_dir);
	cr_assert_not_null(fp = fopen(path, "w"));
	fclose(fp);
	/* A removal a crash interrupted: ID.del (the hidden envelope) and
	 * its ID.msg both go, nothing is quarantined or delivered. */
	snprintf(path, sizeof(path), "%s/queue/0065A1B2C3000010002.del",
	    test_dir);
	cr_assert_not_null(fp = fopen(path, "w"));
	fclose(fp);
	snprintf(path, sizeof(path), "%s/queue/0065A1B2C3000010002.msg",
	    test_dir);
	cr_assert_not_null(fp = fopen(path, "w"));
	fclose(fp);
	memset(&f, 0, sizeof(f));
	cr_assert_eq(spool_recover_lazy(sp, test_collect, &f, &err), 1, "%s",
	    err.msg);
	cr_assert_not(test_exists("queue", "0065A1B2C3000010002", ".del"));
	cr_assert_not(test_exists("queue", "0065A1B2C3000010002", ".msg"));
	cr_assert_not(test_exists("corrupt", "0065A1B2C3000010002", ".env"));
	cr_assert_eq(f.n, 1);
	cr_assert_str_eq(f.ids[0], good);
	cr_assert_not(test_exists("queue", "0065A1B2C3000010000", ".msg"));
	cr_assert_not(test_exists("queue", "0065A1B2C3000010001", ".env"));
	cr_assert(test_exists("corrupt", "0065A1B2C3000010001", ".env"));
	cr_assert(test_exists("queue", good, ".msg"));
	cr_assert(test_exists("queue", good, ".env"));
	spool_close(sp);
}

/*
 * The write-ahead log (spool_wal_open).  A crash is a child process that
 * commits through the commit thread and is killed (SIGKILL: no clean
 * stop, which would sync the files and empty the log); a power cut is
 * then simulated by taking away what a cut could have taken: files of
 * logged messages were written without a sync, so any of them may be
 * missing, empty or torn, and a rename may not have happened.
 */
#define TEST_WAL_SEG (64 * 1024)
#define TEST_WAL_MAX 8

/* What the child did, for the parent: the ids it committed. */
struct test_wal_run {
	int  n;
	char ids[TEST_WAL_MAX][ENVELOPE_ID_MAX];
};

typedef void (*test_wal_fn)(struct spool *sp, int efd, struct test_wal_run *r);

/* In the child: commit one message, its id into r (0, or -1 failed). */
static int
test_wal_commit(struct spool *sp, int efd, const char *body, const char *rcpt,
    struct test_wal_run *r)
{
	struct test_async     t = { 0 };
	struct test_async_arg a = { &t, 0 };
	struct envelope      *env = test_envelope(rcpt);
	struct spool_writer  *w = NULL;
	struct sq_err         err = { 0 };
	struct pollfd         pfd = { .fd = efd, .events = POLLIN };
	int                   rounds = 0;

	if (spool_writer_begin(sp, &w, &err) != 0 ||
	    spool_writer_write(w, body, strlen(body), &err) != 0)
		return -1;
	spool_commit_async(w, env, test_async_done, &a);
	while (t.calls < 1 && rounds++ < 1000)
		if (poll(&pfd, 1, 100) > 0)
			spool_async_dispatch(sp);
	if (t.calls < 1 || t.rc[0] != 0)
		return -1;
	strcpy(r->ids[r->n++], env->id);
	envelope_free(env);
	return 0;
}

/* Run fn in a child on the spool with its log, then kill the child;
 * the ids it committed into r. */
static void
test_wal_crash(size_t seg, test_wal_fn fn, struct test_wal_run *r)
{
	int   p[2], status;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	cr_assert_geq(pid = fork(), 0);
	if (pid == 0) {
		struct spool *sp = NULL;
		struct sq_err err = { 0 };
		int           efd;

		close(p[0]);
		memset(r, 0, sizeof(*r));
		if (spool_open(test_dir, 1, &sp, &err) != 0 ||
		    spool_wal_open(sp, seg, &err) != 0 ||
		    (efd = spool_async_start(sp, &err)) < 0)
			_exit(2);
		fn(sp, efd, r);
		if (write(p[1], r, sizeof(*r)) != (ssize_t)sizeof(*r))
			_exit(3);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	close(p[1]);
	cr_assert_eq(read(p[0], r, sizeof(*r)), (ssize_t)sizeof(*r),
	    "the child did its part");
	close(p[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static struct spool *
test_open_wal(size_t seg)
{
	struct spool *sp = test_open();
	struct sq_err err = { 0 };

	cr_assert_eq(spool_wal_open(sp, seg, &err), 0, "%s", err.msg);
	return sp;
}

static void
test_path(char *path, size_t sz, const char *sub, const char *id,
    const char *ext)
{
	snprintf(path, sz, "%s/%s/%s%s", test_dir, sub, id, ext);
}

static void
test_wal_body(char *body, size_t sz, char *rcpt, size_t rsz, int i)
{
	snprintf(body, sz, "Subject: %d\r\n\r\nbody %d\r\n", i, i);
	snprintf(rcpt, rsz, "r%d@example.net", i);
}

static void
test_wal_eight(struct spool *sp, int efd, struct test_wal_run *r)
{
	struct spool_wal_stats ws;
	char                   body[128], rcpt[64];
	int                    i;

	/* With files (none held in memory), which the cut below damages. */
	spool_set_memory_age(sp, 0);
	for (i = 0; i < 8; i++) {
		test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), i);
		if (test_wal_commit(sp, efd, body, rcpt, r) != 0)
			return;
	}
	spool_wal_stats(sp, &ws);
	/* Every message went to the log, no message file was synced. */
	if (ws.messages != 8 || ws.groups != 8 || ws.file_synced != 0)
		r->n = -1;
}

Test(spool, wal_makes_a_group_durable_and_gives_back_what_a_power_cut_took)
{
	struct spool       *sp;
	struct test_found   f;
	struct test_wal_run r;
	char                body[128], rcpt[64], path[256], path2[256];
	int                 i;

	test_wal_crash(TEST_WAL_SEG, test_wal_eight, &r);
	cr_assert_eq(r.n, 8, "logged, no file synced");
	cr_assert_eq(test_mode("/wal", NULL), 0700);
	/* The cut: 0-1 lost both files, 2 lost its body's data, 3 its
	 * envelope's, 4 has a torn envelope, 5 lost the rename into
	 * queue/, 6 lost only its body file, 7 reached the disk. */
	for (i = 0; i < 2; i++) {
		test_path(path, sizeof(path), "queue", r.ids[i], ".env");
		cr_assert_eq(unlink(path), 0);
		test_path(path, sizeof(path), "queue", r.ids[i], ".msg");
		cr_assert_eq(unlink(path), 0);
	}
	test_path(path, sizeof(path), "queue", r.ids[2], ".msg");
	cr_assert_eq(truncate(path, 0), 0);
	test_path(path, sizeof(path), "queue", r.ids[3], ".env");
	cr_assert_eq(truncate(path, 0), 0);
	test_path(path, sizeof(path), "queue", r.ids[4], ".env");
	cr_assert_eq(truncate(path, 20), 0);
	test_path(path, sizeof(path), "queue", r.ids[5], ".env");
	test_path(path2, sizeof(path2), "tmp", r.ids[5], ".env");
	cr_assert_eq(rename(path, path2), 0);
	test_path(path, sizeof(path), "queue", r.ids[6], ".msg");
	cr_assert_eq(unlink(path), 0);

	sp = test_open_wal(TEST_WAL_SEG);
	for (i = 0; i < 8; i++) {
		test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), i);
		test_check_message(sp, r.ids[i], body, rcpt);
	}
	cr_assert_eq(test_recover(sp, &f), 8);
	cr_assert_eq(test_count("tmp"), 0);
	spool_close(sp);
	/* The log was emptied once the files were synced: nothing to give
	 * back any more. */
	test_path(path, sizeof(path), "queue", r.ids[7], ".env");
	cr_assert_eq(unlink(path), 0);
	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_eq(test_recover(sp, &f), 7);
	spool_close(sp);
}

static void
test_wal_removals(struct spool *sp, int efd, struct test_wal_run *r)
{
	struct spool_wal_stats ws;
	struct sq_err          err = { 0 };
	int                    i;

	spool_set_memory_age(sp, 0); /* with files */
	for (i = 0; i < 4; i++)
		if (test_wal_commit(sp, efd, "hello\r\n", "b@example.net", r))
			return;
	/* 0 delivered (the removal thread), 1 deleted by the operator
	 * (spool_remove, on the caller). */
	if (spool_remove_unsynced(sp, r->ids[0], &err) != 0 ||
	    spool_sync_removals(sp, &err) != 1 ||
	    !spool_removal_wait(sp, 1, 10000) ||
	    spool_remove(sp, r->ids[1], &err) != 0)
		r->n = -1;
	spool_wal_stats(sp, &ws);
	if (ws.removals != 2)
		r->n = -2;
}

Test(spool, wal_removals_are_logged_so_that_a_replay_never_brings_them_back)
{
	struct spool       *sp;
	struct test_found   f;
	struct test_wal_run r;
	char                path[256], path2[256];

	test_wal_crash(TEST_WAL_SEG, test_wal_removals, &r);
	cr_assert_eq(r.n, 4);
	cr_assert_not(test_exists("queue", r.ids[0], ".msg"));
	cr_assert_not(test_exists("queue", r.ids[1], ".msg"));
	/* 2 was being removed when the cut came: its envelope renamed to
	 * ID.del, no record yet.  It was delivered: not back either. */
	test_path(path, sizeof(path), "queue", r.ids[2], ".env");
	test_path(path2, sizeof(path2), "queue", r.ids[2], ".del");
	cr_assert_eq(rename(path, path2), 0);

	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_eq(test_recover(sp, &f), 1);
	cr_assert_str_eq(f.ids[0], r.ids[3]);
	cr_assert_not(test_exists("queue", r.ids[2], ".del"));
	cr_assert_not(test_exists("queue", r.ids[2], ".msg"));
	spool_close(sp);
}

static void
test_wal_update(struct spool *sp, int efd, struct test_wal_run *r)
{
	struct envelope *env = NULL;
	struct sq_err    err = { 0 };

	if (test_wal_commit(sp, efd, "hello\r\n", "first@example.net", r))
		return;
	if (spool_load_envelope(sp, r->ids[0], &env, &err) != 0) {
		r->n = -1;
		return;
	}
	free(env->rcpts[0]);
	env->rcpts[0] = strdup("second@example.net");
	env->attempts = 3;
	if (spool_update_envelope(sp, env, &err) != 0)
		r->n = -1;
	envelope_free(env);
}

Test(spool, wal_replay_keeps_an_updated_envelope)
{
	struct spool       *sp;
	struct envelope    *env = NULL;
	struct sq_err       err = { 0 };
	struct test_wal_run r;

	test_wal_crash(TEST_WAL_SEG, test_wal_update, &r);
	cr_assert_eq(r.n, 1);
	sp = test_open_wal(TEST_WAL_SEG);
	test_check_message(sp, r.ids[0], "hello\r\n", "second@example.net");
	cr_assert_eq(spool_load_envelope(sp, r.ids[0], &env, &err), 0, "%s",
	    err.msg);
	cr_assert_eq(env->attempts, 3);
	envelope_free(env);
	spool_close(sp);
}

Test(spool, wal_clean_stop_syncs_the_files_and_empties_the_log)
{
	struct spool       *sp;
	struct test_found   f;
	struct test_wal_run r = { 0 };
	struct sq_err       err = { 0 };
	char                path[256];
	int                 efd, i;

	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	for (i = 0; i < 3; i++)
		cr_assert_eq(
		    test_wal_commit(sp, efd, "hi\r\n", "b@example.net", &r), 0);
	spool_close(sp);
	/* After a clean stop queue/ is the whole truth: what goes from it
	 * now does not come back from the log. */
	test_path(path, sizeof(path), "queue", r.ids[0], ".env");
	cr_assert_eq(unlink(path), 0);
	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_eq(test_recover(sp, &f), 2);
	spool_close(sp);
}

Test(spool, wal_segments_that_fill_are_checkpointed_and_reused)
{
	struct spool          *sp;
	struct spool_wal_stats ws;
	struct test_found      f;
	struct test_wal_run    r;
	struct sq_err          err = { 0 };
	char                   body[4096], *big, path[256];
	struct stat            st;
	int                    efd, i, n = 60;

	memset(body, 'x', sizeof(body) - 3);
	memcpy(body + sizeof(body) - 3, "\r\n", 3);
	sp = test_open_wal(16 * 1024);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	for (i = 0; i < n; i++) {
		r.n = 0;
		cr_assert_eq(
		    test_wal_commit(sp, efd, body, "b@example.net", &r), 0);
	}
	/* A large body has its files synced instead. */
	big = malloc(300 * 1024 + 1);
	memset(big, 'y', 300 * 1024);
	big[300 * 1024] = '\0';
	r.n = 0;
	cr_assert_eq(test_wal_commit(sp, efd, big, "b@example.net", &r), 0);
	free(big);
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.messages + ws.file_synced, (uint64_t)n + 1);
	cr_assert_geq(ws.file_synced, 1);
	cr_assert_geq(ws.checkpoints, 1, "a full segment was freed");
	cr_assert_geq(ws.held, 1, "small ones were held");
	cr_assert_geq(ws.filed, 1, "the checkpoint gave held ones files");
	snprintf(path, sizeof(path), "%s/wal/0", test_dir);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 16 * 1024, "a segment keeps its size");
	spool_close(sp);
	sp = test_open_wal(16 * 1024);
	cr_assert_eq(test_recover(sp, &f), n + 1);
	spool_close(sp);
}

/*
 * A removal waits for the next commit's sync of the log (no sync of its
 * own: the delay is a minute); with_files: the message has files, which
 * stay until then (age 0), else it is held in memory.
 */
static void
test_removal_rides_on_the_next_commit(int with_files)
{
	struct spool          *sp = test_open_wal(TEST_WAL_SEG);
	struct spool_wal_stats ws;
	struct test_wal_run    r = { 0 };
	struct sq_err          err = { 0 };
	uint64_t               batches, own;
	int                    efd;

	spool_set_removal_sync_delay(sp, 60000);
	if (with_files)
		spool_set_memory_age(sp, 0);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	cr_assert_eq(test_wal_commit(sp, efd, "one\r\n", "b@example.net", &r),
	    0);
	cr_assert_eq(test_count("queue"), with_files ? 2 : 0);
	cr_assert_eq(spool_remove_unsynced(sp, r.ids[0], &err), 0, "%s",
	    err.msg);
	cr_assert_eq(spool_sync_removals(sp, &err), 1);
	/* Logged, waiting for a sync: files (if any) still there. */
	cr_assert_not(spool_removal_wait(sp, 1, 200), "synced alone at once");
	if (with_files)
		cr_assert(test_exists("queue", r.ids[0], ".msg"));
	/* The next commit's sync of the log covers the REMOVE record. */
	cr_assert_eq(test_wal_commit(sp, efd, "two\r\n", "b@example.net", &r),
	    0);
	cr_assert(spool_removal_wait(sp, 1, 20000), "removal not made");
	spool_removal_stats(sp, &batches, &own);
	cr_assert_eq(own, 0, "a sync of its own for the removal");
	cr_assert_not(test_exists("queue", r.ids[0], ".msg"));
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.removals, 1);
	cr_assert_eq(ws.groups, 2);
	spool_close(sp);
}

Test(spool, wal_removals_ride_on_the_next_commits_sync_of_the_log)
{
	test_removal_rides_on_the_next_commit(1);
}

/* ---- Messages held in memory (spool_set_memory_age). */

static void
test_list_collect(const char *id, void *arg)
{
	struct test_found *f = arg;

	if (f->n < (int)(sizeof(f->ids) / sizeof(f->ids[0])))
		snprintf(f->ids[f->n++], sizeof(f->ids[0]), "%s", id);
}

/* spool_list's ids of sp into f, their number. */
static int
test_list(struct spool *sp, struct test_found *f)
{
	struct sq_err err = { 0 };
	int           n;

	memset(f, 0, sizeof(*f));
	n = spool_list(sp, test_list_collect, f, &err);
	cr_assert_geq(n, 0, "%s", err.msg);
	return n;
}

Test(spool, held_messages_have_no_files_and_are_served_from_memory)
{
	struct spool          *sp = test_open_wal(TEST_WAL_SEG);
	struct spool_wal_stats ws;
	struct test_wal_run    r = { 0 };
	struct test_found      f;
	struct envelope       *env = NULL;
	struct sq_err          err = { 0 };
	uint64_t               size = 0;
	char                   body[128], rcpt[64];
	int                    efd, i;

	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	for (i = 0; i < 3; i++) {
		test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), i);
		cr_assert_eq(test_wal_commit(sp, efd, body, rcpt, &r), 0);
	}
	cr_assert_eq(test_count("queue"), 0, "no file for a held message");
	cr_assert_eq(test_count("tmp"), 0);
	for (i = 0; i < 3; i++) {
		test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), i);
		test_check_message(sp, r.ids[i], body, rcpt);
	}
	cr_assert_eq(spool_message_size(sp, r.ids[1], &size, &err), 0);
	test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), 1);
	cr_assert_eq(size, strlen(body));
	cr_assert_eq(test_list(sp, &f), 3);
	for (i = 0; i < 3; i++)
		cr_assert_str_eq(f.ids[i], r.ids[i], "listed in id order");
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.held, 3);

	/* Delivered: out of the listing at once, nothing to unlink, one
	 * REMOVE record. */
	cr_assert_eq(spool_remove_unsynced(sp, r.ids[0], &err), 0, "%s",
	    err.msg);
	cr_assert_eq(spool_load_envelope(sp, r.ids[0], &env, &err),
	    SQ_ENOTFOUND);
	cr_assert_lt(spool_open_message(sp, r.ids[0], &err), 0);
	cr_assert_eq(test_list(sp, &f), 2);
	cr_assert_eq(spool_sync_removals(sp, &err), 1);
	cr_assert(spool_removal_wait(sp, 1, 20000));
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.removals, 1);

	/* An update gives the message its files first. */
	cr_assert_eq(spool_load_envelope(sp, r.ids[1], &env, &err), 0);
	env->attempts = 2;
	cr_assert_eq(spool_update_envelope(sp, env, &err), 0, "%s", err.msg);
	envelope_free(env);
	cr_assert(test_exists("queue", r.ids[1], ".env"));
	cr_assert(test_exists("queue", r.ids[1], ".msg"));
	cr_assert_not(test_exists("queue", r.ids[2], ".env"));
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.filed, 1);
	cr_assert_eq(test_list(sp, &f), 2, "listed once, filed or not");

	/* A clean stop gives the rest their files; the log is empty. */
	spool_close(sp);
	cr_assert(test_exists("queue", r.ids[2], ".env"));
	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_eq(test_recover(sp, &f), 2);
	test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), 2);
	test_check_message(sp, r.ids[2], body, rcpt);
	cr_assert_eq(spool_load_envelope(sp, r.ids[1], &env, &err), 0);
	cr_assert_eq(env->attempts, 2);
	envelope_free(env);
	spool_close(sp);
}

Test(spool, a_held_body_opened_again_reads_from_its_start)
{
	struct spool       *sp = test_open_wal(TEST_WAL_SEG);
	struct test_wal_run r = { 0 };
	struct sq_err       err = { 0 };
	char                buf[64];
	int                 efd, fd, fd2;

	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	cr_assert_eq(
	    test_wal_commit(sp, efd, "abcdefgh\r\n", "b@example.net", &r), 0);
	cr_assert_eq(test_count("queue"), 0, "held in memory");
	/* The first opening (the delivery's): no seek, the body's
	 * descriptor is at 0. */
	test_n_lseek = 0;
	cr_assert_geq(fd = spool_open_message(sp, r.ids[0], &err), 0, "%s",
	    err.msg);
	cr_assert_eq(test_n_lseek, 0, "a seek on the first opening");
	cr_assert_eq(read(fd, buf, 4), 4);
	cr_assert_eq(memcmp(buf, "abcd", 4), 0);
	/* Opened again while the first reader is half-way (the same
	 * open file, a duplicate): from the start all the same. */
	cr_assert_geq(fd2 = spool_open_message(sp, r.ids[0], &err), 0, "%s",
	    err.msg);
	cr_assert_eq(read(fd2, buf, sizeof(buf)), 10);
	cr_assert_eq(memcmp(buf, "abcdefgh\r\n", 10), 0);
	close(fd);
	close(fd2);
	spool_close(sp);
}

static void
test_wal_held(struct spool *sp, int efd, struct test_wal_run *r)
{
	struct sq_err err = { 0 };
	char          body[128], rcpt[64];
	int           i;

	for (i = 0; i < 8; i++) {
		test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), i);
		if (test_wal_commit(sp, efd, body, rcpt, r) != 0)
			return;
	}
	/* 0 delivered, 1 deleted by the operator: both logged, synced. */
	if (spool_remove_unsynced(sp, r->ids[0], &err) != 0 ||
	    spool_sync_removals(sp, &err) != 1 ||
	    !spool_removal_wait(sp, 1, 10000) ||
	    spool_remove(sp, r->ids[1], &err) != 0)
		r->n = -1;
	/* 6 and 7 delivered in the last turn before the SIGKILL: their
	 * REMOVE records are written at the end of the turn, with one
	 * write (a kill, unlike a power cut, keeps them). */
	if (spool_remove_unsynced(sp, r->ids[6], &err) != 0 ||
	    spool_remove_unsynced(sp, r->ids[7], &err) != 0 ||
	    spool_sync_removals(sp, &err) != 1)
		r->n = -1;
	/* 5 delivered in a turn the kill cut short: no record yet, so it
	 * comes back (delivered twice, never lost). */
	if (spool_remove_unsynced(sp, r->ids[5], &err) != 0)
		r->n = -1;
}

Test(spool, held_messages_come_back_from_the_log_after_a_crash)
{
	struct spool       *sp;
	struct test_found   f;
	struct test_wal_run r;
	char                body[128], rcpt[64];
	int                 i;

	test_wal_crash(TEST_WAL_SEG, test_wal_held, &r);
	cr_assert_eq(r.n, 8);
	cr_assert_eq(test_count("queue"), 0, "they were held in memory");
	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_eq(test_recover(sp, &f), 4, "all but the 4 removed");
	cr_assert_not(test_exists("queue", r.ids[0], ".env"));
	cr_assert_not(test_exists("queue", r.ids[1], ".env"));
	cr_assert_not(test_exists("queue", r.ids[6], ".env"));
	cr_assert_not(test_exists("queue", r.ids[7], ".env"));
	for (i = 2; i < 6; i++) {
		test_wal_body(body, sizeof(body), rcpt, sizeof(rcpt), i);
		test_check_message(sp, r.ids[i], body, rcpt);
	}
	spool_close(sp);
}

Test(spool, held_messages_get_their_files_after_the_age)
{
	struct spool          *sp = test_open_wal(TEST_WAL_SEG);
	struct spool_wal_stats ws;
	struct test_wal_run    r = { 0 };
	struct test_found      f;
	struct sq_err          err = { 0 };
	int                    efd, tries;

	spool_set_memory_age(sp, 50);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	cr_assert_eq(test_wal_commit(sp, efd, "aged\r\n", "b@example.net", &r),
	    0);
	for (tries = 0; tries < 2000; tries++) {
		spool_wal_stats(sp, &ws);
		if (ws.filed == 1)
			break;
		cr_assert_eq(spool_removal_wait(sp, 1000, 10), 0);
	}
	cr_assert_eq(ws.filed, 1, "filed after its age");
	cr_assert(test_exists("queue", r.ids[0], ".env"));
	test_check_message(sp, r.ids[0], "aged\r\n", "b@example.net");
	cr_assert_eq(test_list(sp, &f), 1);
	spool_close(sp);
}

Test(spool, a_held_message_outgrowing_the_buffer_gets_its_file)
{
	struct spool          *sp = test_open_wal(TEST_WAL_SEG);
	struct spool_wal_stats ws;
	struct test_wal_run    r = { 0 };
	struct sq_err          err = { 0 };
	uint64_t               size = 0;
	char                  *big;
	int                    efd;

	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	big = malloc(70 * 1024 + 1);
	memset(big, 'z', 70 * 1024);
	big[70 * 1024] = '\0';
	cr_assert_eq(test_wal_commit(sp, efd, big, "b@example.net", &r), 0);
	cr_assert(test_exists("queue", r.ids[0], ".msg"));
	cr_assert(test_exists("queue", r.ids[0], ".env"));
	cr_assert_eq(spool_message_size(sp, r.ids[0], &size, &err), 0);
	cr_assert_eq(size, 70 * 1024);
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.held, 0);
	cr_assert_eq(ws.file_synced, 1);
	free(big);
	spool_close(sp);
}

Test(spool, held_messages_are_capped_by_the_descriptors_left)
{
	struct spool          *sp;
	struct spool_wal_stats ws;
	struct test_wal_run    r = { 0 };
	struct sq_err          err = { 0 };
	struct rlimit          rl;
	int                    efd, i;

	/* A quarter of 64 descriptors: 16 held, the rest get files. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = 64;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	sp = test_open_wal(TEST_WAL_SEG);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	for (i = 0; i < 20; i++) {
		r.n = 0;
		cr_assert_eq(
		    test_wal_commit(sp, efd, "hi\r\n", "b@example.net", &r), 0);
	}
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.held, 16);
	cr_assert_eq(ws.messages, 20, "all of them by the log");
	cr_assert_eq(test_count("queue"), 2 * 4);
	/* The clean stop files the 16 within the limit too. */
	spool_close(sp);
	cr_assert_eq(test_count("queue"), 2 * 20);
}

Test(spool, held_removals_ride_on_the_next_group_or_are_logged_alone)
{
	struct spool          *sp;
	struct spool_wal_stats ws;
	struct test_wal_run    r = { 0 };
	struct sq_err          err = { 0 };
	uint64_t               batches, own;
	int                    efd;

	test_removal_rides_on_the_next_commit(0);

	/* With no group after it, it is synced alone. */
	sp = test_open_wal(TEST_WAL_SEG);
	spool_set_removal_sync_delay(sp, 20);
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	cr_assert_eq(test_wal_commit(sp, efd, "three\r\n", "b@example.net", &r),
	    0);
	cr_assert_eq(spool_remove_unsynced(sp, r.ids[0], &err), 0);
	cr_assert_eq(spool_sync_removals(sp, &err), 1); /* the turn's end */
	cr_assert(spool_removal_wait(sp, 1, 20000));
	spool_removal_stats(sp, &batches, &own);
	cr_assert_eq(own, 1);
	spool_wal_stats(sp, &ws);
	cr_assert_eq(ws.removals, 1);
	spool_close(sp);
}

/* Threads of this process (/proc/self/task). */
static int
test_threads(void)
{
	return test_count_dir("/proc/self/task");
}

/* The commit thread's fdatasync helpers start with the first batch of
 * files to sync, not with the commit thread: with a write-ahead log most
 * groups never need them. */
Test(spool, sync_helpers_start_with_the_first_batch_of_files)
{
	struct spool       *sp = test_open();
	struct test_wal_run r = { 0 };
	struct sq_err       err = { 0 };
	int                 efd, before;

	before = test_threads();
	cr_assert_geq(efd = spool_async_start(sp, &err), 0, "%s", err.msg);
	cr_assert_eq(test_threads(), before + 2,
	    "the commit and removal threads only");
	/* No log: the group's two files are synced, by the helpers. */
	cr_assert_eq(test_wal_commit(sp, efd, "hi\r\n", "b@example.net", &r),
	    0);
	cr_assert_gt(test_threads(), before + 2, "the helpers started");
	spool_close(sp);
}

/* A backlog of removals is logged in batches of at most 128 (each fits a
 * segment of the smallest size, 16 KiB, which holds 255 REMOVE records;
 * 600 removals in one append did not fit, and their files stayed until
 * the next start). */
Test(spool, wal_a_removal_backlog_is_logged_in_batches_that_fit_a_segment)
{
	enum { n = 600 };
	static char   ids[n][ENVELOPE_ID_MAX];
	struct spool *sp = test_open();
	struct sq_err err = { 0 };
	uint64_t      batches, own;
	int           i;

	for (i = 0; i < n; i++)
		strcpy(ids[i], test_accept(sp, "x\r\n", 3));
	spool_close(sp);
	sp = test_open_wal(16 * 1024);
	/* No sync of the removal thread's own but for a batch with more
	 * behind it, and at the stop. */
	spool_set_removal_sync_delay(sp, 600000);
	cr_assert_geq(spool_async_start(sp, &err), 0, "%s", err.msg);
	for (i = 0; i < n; i++)
		cr_assert_eq(spool_remove_unsynced(sp, ids[i], &err), 0, "%s",
		    err.msg);
	spool_async_stop(sp);
	cr_assert_eq(test_count("queue"), 0, "every removal logged and made");
	spool_removal_stats(sp, &batches, &own);
	cr_assert_geq(batches, (n + 127) / 128);
	spool_close(sp);
}
