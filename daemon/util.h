/*
 * util.h - allocation that never returns NULL, the error carrier, and the
 * sysexits codes every binary shares.
 *
 * Owns: xmalloc family (fatal on out-of-memory, so call sites carry no NULL
 * checks), struct sq_err (a human-readable reason handed back to the
 * caller, tmux's "cause" without the heap), small string helpers, the
 * one base64 decoder, EINTR-safe read/write/getrandom.
 * May call: libc, log.
 *
 * DIAGNOSTICS: allocation failure and size overflow end the process through
 * log_fatalx(); the base64 decoder and the I/O helpers return errors.
 */
#ifndef SENDQ_UTIL_H
#define SENDQ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sysexits.h>

#define SQ_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* Error codes: 0 is success, negative values are failures. -errno is used
 * where an errno fits; the codes below are for the rest. */
#define SQ_OK        0
#define SQ_EPARSE    (-1001) /* malformed input */
#define SQ_ECONFIG   (-1002) /* invalid configuration */
#define SQ_ELIMIT    (-1003) /* a fixed limit was exceeded */
#define SQ_ETLS      (-1004) /* TLS failure */
#define SQ_EVERIFY   (-1005) /* certificate verification failed */
#define SQ_EPROTO    (-1006) /* protocol violation by the peer */
#define SQ_ENOTFOUND (-1007) /* no such item */

/* Why something failed, in words a person can act on.  Filled by the callee,
 * owned by the caller (usually on its stack). */
struct sq_err {
	int  code; /* SQ_E* or -errno; 0 when unset */
	char msg[512];
};

/* Record code and a formatted reason in err (err may be NULL).  Returns
 * code, so callers can write `return sq_err_set(err, -EIO, "...")`. */
int
sq_err_set(struct sq_err *err, int code, const char *fmt, ...) SQ_PRINTF(3, 4);

/* Never return NULL: out of memory or size overflow is fatal. */
void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) SQ_PRINTF(1, 2);

/* Copy src into dst (size dstsz, always NUL-terminated when dstsz > 0)
 * replacing every byte that is not printable ASCII by '?', so that text
 * from the network or a file can be logged safely.  Returns dst. */
char *sq_printable(char *dst, size_t dstsz, const char *src, size_t len);

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and intervals, never
 * for dates. */
int64_t sq_now_ms(void);

/* The value of a hex digit (either case), -1 for others. */
int sq_hex_value(char c);
/* The value of a base64 (RFC 4648) alphabet character, -1 for others. */
int sq_base64_value(char c);
/*
 * Strict base64 (padding required, no blanks, unused bits zero: one
 * encoding per value) of in[0..len) into out (outmax bytes).  Returns 0
 * and *outlen, SQ_EPARSE for anything not canonical, SQ_ELIMIT when out
 * is too small.  The tree's one base64 decoder: GnuTLS's
 * gnutls_base64_decode2() skips blanks and allocates, and out may be a
 * caller's wiped buffer (SASL).
 */
int sq_base64_decode(const char *in, size_t len, unsigned char *out,
    size_t outmax, size_t *outlen);

/* The host name to use: configured when not NULL, else the system's
 * (gethostname), else "localhost".  Returns configured or buf. */
const char *sq_hostname(const char *configured, char *buf, size_t bufsz);

/* True when host is a loopback literal (127.0.0.0/8, ::1) or "localhost". */
int sq_host_is_loopback(const char *host);

/*
 * The start of a setgid helper (sendq-drop, sendq-showq): descriptors 0-2
 * must be open (else _exit(EX_TEMPFAIL): a file opened later would take
 * their number); when test_env is not NULL and set, its value is copied
 * into path (pathsz bytes; only the test builds pass one); then the
 * environment is cleared (else _exit(EX_TEMPFAIL)) and the umask set.
 */
void
sq_setgid_start(char *path, size_t pathsz, const char *test_env, mode_t mask);

/* read(2) with EINTR retried: the bytes read, 0 at the end, -1 and errno. */
ssize_t sq_read(int fd, void *buf, size_t len);
/* All len bytes of p to fd (EINTR retried, short writes continued).
 * Returns 0 or -errno. */
int sq_write_all(int fd, const void *p, size_t len);
/* pwrite(2) of all len bytes of p at off (EINTR retried, short writes
 * continued): 0 or -errno (-EIO when the file takes no more). */
int sq_pwrite_all(int fd, const void *p, size_t len, off_t off);
/* pread(2) of len bytes at off into p (EINTR retried, short reads
 * continued): 0, 1 when the file ends first, or -errno. */
int sq_pread_all(int fd, void *p, size_t len, off_t off);
/*
 * Publish text as dir_fd/name (mode 0600) so that no reader ever sees it
 * half-written: it is written to ".name.tmp" in the same directory,
 * fsync'ed, then renamed to name -- with RENAME_NOREPLACE when noreplace
 * is set (then -EEXIST when name is taken).  The caller fsyncs dir_fd when
 * the name must survive a power cut.  Returns 0 or -errno (the temporary
 * file is then gone).
 */
int
sq_publish_file(int dir_fd, const char *name, const char *text, int noreplace);
/*
 * Bind the unix stream socket fd at path, give it mode and listen(backlog)
 * -- and only then make it appear at path, so that a client that sees
 * the path never gets ECONNREFUSED from a socket that is bound but not
 * yet listening (a reader that waits for the path, as the sendq and
 * sendqctl clients and the tests do, would race bind/chmod/listen): it
 * is bound as "PATH.new" (a stale one from a crash is removed first),
 * then renamed over path.  When "PATH.new" does not fit in sun_path, it
 * is bound at path itself (the old window, for the longest paths only).
 * Whatever is at path is replaced: the caller checks first that it is a
 * stale socket.  Returns 0 or -errno (nothing is left at either name).
 */
int sq_listen_unix(int fd, const char *path, mode_t mode, int backlog);
/* One function of a library loaded at run time: its name, and where its
 * address goes. */
struct sq_dl_sym {
	const char *name;
	void      **fn;
};
/*
 * dlopen() the first of sonames[0..n_sonames-1] that loads (RTLD_NOW,
 * RTLD_LOCAL) and resolve syms[0..n_syms-1].  0, or -1 with why (dlerror's
 * text, or "SONAME: no NAME") -- the caller must then call none of them.
 */
int sq_dl_load(const char *const *sonames, size_t n_sonames,
    const struct sq_dl_sym *syms, size_t n_syms, char *why, size_t whysz);
/*
 * The gid of the group called name, looked up (getgrnam_r, so through
 * every NSS source nsswitch.conf lists) in a child process made for it:
 * a name that /etc/group lacks falls through to modules such as
 * libnss_systemd, which glibc never unloads -- in the daemon they and
 * their libraries (libm, libcap) stayed mapped for good, 0.65 MiB of
 * its resident memory for two look-ups at start-up.  Without a child
 * (fork fails) the look-up is made here.  Returns 0 with *gid set,
 * SQ_ENOTFOUND when there is no such group, or -errno.  Blocks until the
 * child is done; no threads of the caller run in the child.
 */
int sq_group_gid(const char *name, gid_t *gid);
/* len random bytes from getrandom(2) into buf (EINTR retried).  Returns 0
 * or -errno; buf's content is then undefined. */
int sq_random(void *buf, size_t len);

#endif
