/*
 * tls.h - the only module that holds GnuTLS sessions: per-smarthost
 * credentials and trust policy, and non-blocking client sessions on a
 * connected socket.
 *
 * Owns: gnutls credentials (system trust or ca_file), priority strings,
 * certificate verification (chain, validity, host name; insecure is
 * logged loudly), the description of a session ("TLS1.3 AES-256-GCM").
 * May call: config (types), util, log.
 *
 * DIAGNOSTICS: failures carry a reason a person can act on: "certificate
 * signer not trusted", "host name mismatch (expected X)", "certificate
 * expired", the GnuTLS error text for handshake failures.
 */
#ifndef SENDQ_TLS_H
#define SENDQ_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "util.h"

struct tls_ctx;		/* per smarthost, long-lived */
struct tls_session;	/* per connection */

enum tls_status {
	TLS_DONE = 0,		/* the step completed */
	TLS_WANT_READ = 1,	/* wait for the socket to be readable */
	TLS_WANT_WRITE = 2,	/* wait for the socket to be writable */
	TLS_EOF = 3,		/* the peer closed the session */
	TLS_ERROR = -1,		/* failed: see the err argument */
};

/* Credentials and policy for one smarthost (loads ca_file or the system
 * store).  Returns 0 and *out, or SQ_ETLS / -errno with err.  Blocking
 * file I/O only (at start-up). */
int	tls_ctx_new(const struct config_smarthost *sh, struct tls_ctx **out,
	    struct sq_err *err);
void	tls_ctx_free(struct tls_ctx *ctx);

/* A client session over the connected non-blocking socket fd.  Returns 0
 * and *out, or SQ_ETLS with err. */
int	tls_session_new(struct tls_ctx *ctx, int fd,
	    struct tls_session **out, struct sq_err *err);
void	tls_session_free(struct tls_session *s);

/* Advance the handshake (including verification).  TLS_DONE when
 * finished, TLS_WANT_* to call again on readiness, TLS_ERROR with err
 * (SQ_EVERIFY for a refused certificate). */
enum tls_status	tls_handshake(struct tls_session *s, struct sq_err *err);
/* Read up to len bytes: sets *n on TLS_DONE. */
enum tls_status	tls_read(struct tls_session *s, void *data, size_t len,
	    size_t *n, struct sq_err *err);
/* Write up to len bytes: sets *n on TLS_DONE. */
enum tls_status	tls_write(struct tls_session *s, const void *data,
	    size_t len, size_t *n, struct sq_err *err);
/* Send close_notify (best effort, never blocks for long). */
void	tls_bye(struct tls_session *s);
/* Bytes already decrypted and waiting in the session (so the caller
 * knows to read again without waiting for the socket). */
size_t	tls_pending(struct tls_session *s);

/* "TLS1.3 TLS_AES_256_GCM_SHA384" style text for logs. */
const char	*tls_describe(struct tls_session *s);
/* "ok", "insecure (not verified)", or the verification failure. */
const char	*tls_verify_result(struct tls_session *s);

#endif
