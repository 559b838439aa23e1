/*
 * util.c - allocation wrappers, the error carrier and small helpers.
 */
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

int
sq_err_set(struct sq_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL) {
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void *
xmalloc(size_t size)
{
	void *p;

	if (size == 0)
		size = 1;
	if ((p = malloc(size)) == NULL)
		log_fatalx("out of memory allocating %zu bytes", size);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	if ((p = calloc(nmemb, size)) == NULL)
		log_fatalx("out of memory allocating %zu*%zu bytes", nmemb,
		    size);
	return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		log_fatalx("allocation size overflow: %zu*%zu", nmemb, size);
	if (nmemb * size == 0)
		nmemb = size = 1;
	if ((p = realloc(ptr, nmemb * size)) == NULL)
		log_fatalx("out of memory reallocating %zu*%zu bytes", nmemb,
		    size);
	return p;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;

	p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	int     n;
	char   *p;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		log_fatalx("xasprintf: bad format");
	p = xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

char *
sq_printable(char *dst, size_t dstsz, const char *src, size_t len)
{
	size_t i;

	if (dstsz == 0)
		return dst;
	for (i = 0; i < len && i + 1 < dstsz; i++) {
		unsigned char c = (unsigned char)src[i];

		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
	return dst;
}

const char *
sq_hostname(const char *configured, char *buf, size_t bufsz)
{
	if (configured != NULL)
		return configured;
	if (gethostname(buf, bufsz) != 0 || buf[0] == '\0')
		snprintf(buf, bufsz, "localhost");
	buf[bufsz - 1] = '\0';
	return buf;
}

int
sq_host_is_loopback(const char *host)
{
	struct in_addr  a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

int64_t
sq_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
sq_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
sq_base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
sq_base64_decode(const char *in, size_t len, unsigned char *out, size_t outmax,
    size_t *outlen)
{
	size_t   i, o = 0, pad = 0;
	uint32_t v;
	int      j, d;

	*outlen = 0;
	if (len % 4 != 0)
		return SQ_EPARSE;
	for (i = 0; i < len; i += 4) {
		v = 0;
		for (j = 0; j < 4; j++) {
			if (in[i + j] == '=' && i + 4 == len && j >= 2) {
				/* "x=" then "=" only: no data after padding */
				if (j == 2 && in[i + 3] != '=')
					return SQ_EPARSE;
				pad++;
				v <<= 6;
				continue;
			}
			if (pad > 0 || (d = sq_base64_value(in[i + j])) < 0)
				return SQ_EPARSE;
			v = v << 6 | (uint32_t)d;
		}
		/* The bits past the data must be zero (one encoding per
		 * value: a signature cannot be altered unnoticed). */
		if ((pad == 1 && (v & 0xff) != 0) ||
		    (pad == 2 && (v & 0xffff) != 0))
			return SQ_EPARSE;
		if (outmax - o < 3 - pad)
			return SQ_ELIMIT;
		out[o++] = (unsigned char)(v >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(v >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)v;
	}
	*outlen = o;
	return 0;
}

void
sq_setgid_start(char *path, size_t pathsz, const char *test_env, mode_t mask)
{
	const char *v;
	int         fd;

	for (fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			_exit(EX_TEMPFAIL);
	if (test_env != NULL && (v = getenv(test_env)) != NULL)
		snprintf(path, pathsz, "%s", v);
	if (clearenv() != 0)
		_exit(EX_TEMPFAIL);
	umask(mask);
}

ssize_t
sq_read(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n;
}

int
sq_write_all(int fd, const void *p, size_t len)
{
	const char *s = p;
	ssize_t     n;

	while (len > 0) {
		n = write(fd, s, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int
sq_pwrite_all(int fd, const void *p, size_t len, off_t off)
{
	const char *s = p;
	ssize_t     n;

	while (len > 0) {
		n = pwrite(fd, s, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		s += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int
sq_pread_all(int fd, void *p, size_t len, off_t off)
{
	char   *s = p;
	ssize_t n;

	while (len > 0) {
		n = pread(fd, s, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 1;
		s += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int
sq_publish_file(int dir_fd, const char *name, const char *text, int noreplace)
{
	char tmp[300];
	int  fd, rc = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp", name) >= sizeof(tmp))
		return -ENAMETOOLONG;
	(void)unlinkat(dir_fd, tmp, 0);
	fd = openat(dir_fd, tmp,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if ((rc = sq_write_all(fd, text, strlen(text))) == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 &&
	    renameat2(dir_fd, tmp, dir_fd, name,
		noreplace ? RENAME_NOREPLACE : 0) != 0)
		rc = -errno;
	if (rc != 0)
		(void)unlinkat(dir_fd, tmp, 0);
	return rc;
}

int
sq_listen_unix(int fd, const char *path, mode_t mode, int backlog)
{
	struct sockaddr_un sun;
	const char        *at = path;
	char               tmp[sizeof(sun.sun_path)];
	int                rc = 0;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.new", path) < sizeof(tmp)) {
		at = tmp;
		(void)unlink(tmp);
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, at, strlen(at) + 1);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0)
		return -errno;
	if (chmod(at, mode) != 0 || listen(fd, backlog) != 0 ||
	    (at != path && rename(at, path) != 0))
		rc = -errno;
	if (rc != 0)
		(void)unlink(at);
	return rc;
}

int
sq_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	size_t         got = 0;
	ssize_t        n;

	while (got < len) {
		n = getrandom(p + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		got += (size_t)n;
	}
	return 0;
}
