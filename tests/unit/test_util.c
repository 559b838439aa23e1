/*
 * test_util.c - base utilities: bounded buffers, printable copies,
 * loopback detection, the error carrier, hex digits, the EINTR-safe
 * read/write/getrandom helpers, publishing a small file whole.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "util.h"

Test(buf, append_grows_and_keeps_bytes)
{
	struct buf b;
	char       chunk[1000];
	size_t     i;

	buf_init(&b, 1 << 20);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 100; i++)
		cr_assert_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	cr_assert_eq(b.len, 100000);
	cr_assert_eq(b.data[99999], 'x');
	buf_fini(&b);
}

Test(buf, append_beyond_maximum_fails_without_change)
{
	struct buf b;

	buf_init(&b, 8);
	cr_assert_eq(buf_append_str(&b, "12345"), 0);
	cr_assert_eq(buf_append_str(&b, "6789"), SQ_ELIMIT);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(buf_room(&b), 3);
	cr_assert_eq(buf_append_str(&b, "678"), 0);
	cr_assert_eq(memcmp(b.data, "12345678", 8), 0);
	buf_fini(&b);
}

Test(buf, consume_moves_the_rest_to_the_front)
{
	struct buf b;

	buf_init(&b, 64);
	buf_append_str(&b, "hello world");
	buf_consume(&b, 6);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(memcmp(b.data, "world", 5), 0);
	buf_consume(&b, 99);
	cr_assert_eq(b.len, 0);
	buf_fini(&b);
}

Test(util, printable_replaces_controls_and_truncates)
{
	char out[8];

	sq_printable(out, sizeof(out),
	    "a\0b\r\n\x1b"
	    "cdef",
	    10);
	cr_assert_str_eq(out, "a?b???c");
}

Test(util, loopback_hosts_are_recognised)
{
	cr_assert(sq_host_is_loopback("127.0.0.1"));
	cr_assert(sq_host_is_loopback("127.1.2.3"));
	cr_assert(sq_host_is_loopback("::1"));
	cr_assert(sq_host_is_loopback("LocalHost"));
	cr_assert_not(sq_host_is_loopback("128.0.0.1"));
	cr_assert_not(sq_host_is_loopback("smtp.example.com"));
	cr_assert_not(sq_host_is_loopback("::2"));
	cr_assert_not(sq_host_is_loopback("localhost.example.com"));
}

Test(util, err_set_returns_code_and_formats)
{
	struct sq_err err = { 0 };

	cr_assert_eq(sq_err_set(&err, SQ_EPARSE, "line %d: %s", 3, "bad"),
	    SQ_EPARSE);
	cr_assert_eq(err.code, SQ_EPARSE);
	cr_assert_str_eq(err.msg, "line 3: bad");
	cr_assert_eq(sq_err_set(NULL, -5, "ignored"), -5);
}

Test(util, hex_value_of_both_cases_and_others)
{
	cr_assert_eq(sq_hex_value('0'), 0);
	cr_assert_eq(sq_hex_value('9'), 9);
	cr_assert_eq(sq_hex_value('a'), 10);
	cr_assert_eq(sq_hex_value('F'), 15);
	cr_assert_eq(sq_hex_value('g'), -1);
	cr_assert_eq(sq_hex_value('G'), -1);
	cr_assert_eq(sq_hex_value(' '), -1);
}

Test(util, pwrite_all_and_pread_all_at_offsets)
{
	char path[] = "/tmp/sendq-test-util.XXXXXX", back[8];
	int  fd;

	cr_assert_geq(fd = mkstemp(path), 0);
	unlink(path);
	cr_assert_eq(sq_pwrite_all(fd, "abcdef", 6, 0), 0);
	cr_assert_eq(sq_pwrite_all(fd, "XY", 2, 2), 0);
	cr_assert_eq(sq_pread_all(fd, back, 6, 0), 0);
	cr_assert_eq(memcmp(back, "abXYef", 6), 0);
	cr_assert_eq(sq_pread_all(fd, back, 2, 4), 0);
	cr_assert_eq(memcmp(back, "ef", 2), 0);
	/* The file ends before 4 bytes from offset 4. */
	cr_assert_eq(sq_pread_all(fd, back, 4, 4), 1);
	close(fd);
	cr_assert_eq(sq_pread_all(fd, back, 1, 0), -EBADF);
	cr_assert_eq(sq_pwrite_all(fd, "x", 1, 0), -EBADF);
}

Test(util, write_all_then_read_through_a_pipe)
{
	char    big[100000], back[100000];
	size_t  got = 0;
	ssize_t n;
	pid_t   pid;
	int     fds[2], status;

	memset(big, 'q', sizeof(big));
	big[sizeof(big) - 1] = 'z';
	cr_assert_eq(pipe(fds), 0);
	if ((pid = fork()) == 0) {
		close(fds[0]);
		_exit(sq_write_all(fds[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(fds[1]);
	while ((n = sq_read(fds[0], back + got, sizeof(back) - got)) > 0)
		got += (size_t)n;
	cr_assert_eq(n, 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_assert_eq(got, sizeof(big));
	cr_assert_eq(memcmp(big, back, sizeof(big)), 0);
	close(fds[0]);
	cr_assert_eq(sq_write_all(fds[0], "x", 1), -EBADF);
	cr_assert_eq(sq_read(fds[0], back, 1), -1);
	cr_assert_eq(errno, EBADF);
}

Test(util, random_fills_and_differs)
{
	unsigned char a[32], b[32], zero[32] = { 0 };

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	cr_assert_eq(sq_random(a, sizeof(a)), 0);
	cr_assert_eq(sq_random(b, sizeof(b)), 0);
	cr_assert_neq(memcmp(a, zero, sizeof(a)), 0);
	cr_assert_neq(memcmp(a, b, sizeof(a)), 0);
	cr_assert_eq(sq_random(a, 0), 0);
}

/* The text of dir_fd/name, or "" when it cannot be read. */
static const char *
util_file_text(int dir_fd, const char *name)
{
	static char text[256];
	ssize_t     n = -1;
	int         fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = sq_read(fd, text, sizeof(text) - 1);
		close(fd);
	}
	text[n > 0 ? n : 0] = '\0';
	return text;
}

Test(util, publish_file_appears_whole_and_noreplace_keeps_the_first)
{
	char        dir[] = "/tmp/sendq-util-XXXXXX";
	struct stat st;
	int         dfd;

	cr_assert_not_null(mkdtemp(dir));
	cr_assert((dfd = open(dir, O_RDONLY | O_DIRECTORY)) >= 0);
	/* a temporary file left by a crash does not stand in the way */
	close(openat(dfd, ".why.tmp", O_WRONLY | O_CREAT, 0600));
	cr_assert_eq(sq_publish_file(dfd, "why", "first\n", 1), 0);
	cr_assert_str_eq(util_file_text(dfd, "why"), "first\n");
	cr_assert_eq(fstatat(dfd, "why", &st, 0), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert_eq(sq_publish_file(dfd, "why", "second\n", 1), -EEXIST);
	cr_assert_str_eq(util_file_text(dfd, "why"), "first\n");
	cr_assert_eq(sq_publish_file(dfd, "why", "third\n", 0), 0);
	cr_assert_str_eq(util_file_text(dfd, "why"), "third\n");
	/* nothing but the published name is left behind */
	cr_assert_eq(faccessat(dfd, ".why.tmp", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	cr_assert_eq(unlinkat(dfd, "why", 0), 0);
	cr_assert_eq(unlinkat(AT_FDCWD, dir, AT_REMOVEDIR), 0);
	close(dfd);
}

/* Connect to the unix socket path: 0 or -errno. */
static int
util_connect(const char *path)
{
	struct sockaddr_un sun;
	int                fd, rc = 0;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	cr_assert((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

Test(util, listen_unix_publishes_a_listening_socket_and_leaves_no_new)
{
	char        dir[] = "/tmp/sendq-util-XXXXXX", path[200], tmp[210];
	struct stat st;
	int         fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	/* a PATH.new left by a crash does not stand in the way */
	close(open(tmp, O_WRONLY | O_CREAT, 0600));
	cr_assert((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	cr_assert_eq(sq_listen_unix(fd, path, 0660, 4), 0);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0660);
	cr_assert_eq(util_connect(path), 0);
	cr_assert_eq(access(tmp, F_OK), -1);
	close(fd);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
}

Test(util, listen_unix_binds_in_place_when_path_new_is_too_long)
{
	struct sockaddr_un sun;
	char               dir[] = "/tmp/sendq-util-XXXXXX";
	char               path[sizeof(sun.sun_path)];
	size_t             n;
	int                fd;

	cr_assert_not_null(mkdtemp(dir));
	/* sun_path - 1 bytes: PATH fits, PATH.new does not */
	n = (size_t)snprintf(path, sizeof(path), "%s/", dir);
	memset(path + n, 'x', sizeof(path) - 1 - n);
	path[sizeof(path) - 1] = '\0';
	cr_assert((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	cr_assert_eq(sq_listen_unix(fd, path, 0666, 4), 0);
	cr_assert_eq(util_connect(path), 0);
	close(fd);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(rmdir(dir), 0);
	/* longer than sun_path: refused */
	cr_assert((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
	cr_assert_eq(
	    sq_listen_unix(fd,
		"/tmp/"
		"a-path-that-is-far-too-long-for"
		"-sun-path-"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaa",
		0666, 4),
	    -ENAMETOOLONG);
	close(fd);
}

/* 1 when /proc/self/maps names an NSS module (libnss_*.so). */
static int
util_maps_nss_module(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char  line[4096];
	int   found = 0;

	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, "/libnss_") != NULL)
			found = 1;
	fclose(f);
	return found;
}

Test(util, group_gid_finds_a_group_and_leaves_no_nss_module_mapped)
{
	gid_t gid = 12345;

	cr_assert_eq(sq_group_gid("root", &gid), 0);
	cr_assert_eq(gid, 0);
	/* A name /etc/group lacks goes on to the next source nsswitch.conf
	 * lists (libnss_systemd on Debian): in the child, not here. */
	gid = 12345;
	cr_assert_eq(sq_group_gid("sendq-test-no-such-group", &gid),
	    SQ_ENOTFOUND);
	cr_assert_eq(gid, 12345);
	cr_assert_not(util_maps_nss_module(),
	    "an NSS module is mapped in the caller");
}
