/*
 * tls.h - the only module that holds GnuTLS sessions: per-smarthost
 * credentials and trust policy, and non-blocking client sessions on a
 * connected socket.
 *
 * Owns: gnutls credentials (system trust or ca_file; client certificate
 * and key for mutual TLS), priority strings (tls_priority or sendq's
 * default: TLS >= 1.2, AEAD; %PROFILE_MEDIUM is appended unless
 * tls_priority names a %PROFILE_ itself), certificate
 * verification per trust policy:
 *   system / ca_file: chain (validity dates, basicConstraints of every
 *     issuer, key-strength floor of the priority's profile: no RSA/DH
 *     under 2048 bits) and name (server_name if set, else host; an
 *     address literal only matches an IP SAN), plus, when pins are
 *     configured, one of the pins must match as well;
 *   pin: only the pins (SHA-256 of the leaf's SubjectPublicKeyInfo,
 *     RFC 7469, compared in constant time); chain, dates and name are not
 *     checked;
 *   insecure: nothing (logged loudly at every session);
 * SNI (server_name, else host, never an address literal), TLS session
 * resumption across sessions of one ctx (only data of verified sessions
 * is reused; resumed sessions are verified again on the certificates
 * stored with the session), the description of a session ("TLS1.3
 * AES-256-GCM", " resumed" appended when resumed).
 * May call: config (types), util, log.
 *
 * DIAGNOSTICS: failures carry a reason a person can act on:
 * "certificate expired", "certificate not yet valid", "certificate
 * signer not trusted (self-signed certificate)", "certificate signer is
 * not a CA (basicConstraints)", "host name mismatch (expected X,
 * certificate is for Y)", "insecure algorithm/key (server key RSA 1024
 * bits)", "pin mismatch (server key sha256:BASE64 not among the
 * configured pins)", the GnuTLS error text for handshake failures,
 * "tls_priority \"S\" rejected by GnuTLS at position N" and the file
 * names for unreadable ca_file, client_cert, client_key.
 */
#ifndef SENDQ_TLS_H
#define SENDQ_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "util.h"

struct tls_ctx;     /* per smarthost, long-lived */
struct tls_session; /* per connection */

enum tls_status {
	TLS_DONE = 0,       /* the step completed */
	TLS_WANT_READ = 1,  /* wait for the socket to be readable */
	TLS_WANT_WRITE = 2, /* wait for the socket to be writable */
	TLS_EOF = 3,        /* the peer closed the session */
	TLS_ERROR = -1,     /* failed: see the err argument */
};

/* "sha256:" + 44 base64 characters + NUL fits. */
#define TLS_PIN_TEXT_MAX 64

/* Credentials and policy for one smarthost (loads ca_file or the system
 * store, client_cert/client_key, checks tls_priority).  The ctx copies
 * what it needs from sh.  Returns 0 and *out, or SQ_ETLS / SQ_ECONFIG /
 * -errno with err.  Blocking file I/O only (at start-up).  The ctx also
 * keeps the last verified session for resumption: use one ctx per
 * smarthost, from one thread. */
int  tls_ctx_new(const struct config_smarthost *sh, struct tls_ctx **out,
     struct sq_err *err);
void tls_ctx_free(struct tls_ctx *ctx);

/* A client session over the connected non-blocking socket fd; offers the
 * ctx's last session for resumption.  ctx must outlive the session.
 * Returns 0 and *out, or SQ_ETLS with err. */
int  tls_session_new(struct tls_ctx *ctx, int fd, struct tls_session **out,
     struct sq_err *err);
void tls_session_free(struct tls_session *s);

/* Advance the handshake (including verification).  TLS_DONE when
 * finished, TLS_WANT_* to call again on readiness, TLS_ERROR with err
 * (SQ_EVERIFY for a refused certificate; the reason is also in
 * tls_verify_result()). */
/* Free the session (not the fd); keeps its session data in the ctx for
 * resumption if a TLS 1.3 ticket came.  NULL is accepted. */
enum tls_status tls_handshake(struct tls_session *s, struct sq_err *err);
/* Read up to len bytes: sets *n on TLS_DONE. */
enum tls_status tls_read(struct tls_session *s, void *data, size_t len,
    size_t *n, struct sq_err *err);
/* Write up to len bytes: sets *n on TLS_DONE. */
enum tls_status tls_write(struct tls_session *s, const void *data, size_t len,
    size_t *n, struct sq_err *err);
/* Send close_notify (best effort, never blocks for long). */
void tls_bye(struct tls_session *s);
/* Bytes already decrypted and waiting in the session (so the caller
 * knows to read again without waiting for the socket). */
size_t tls_pending(struct tls_session *s);

/* 1 when the finished handshake resumed an earlier session (no full
 * handshake), else 0. */
int tls_session_resumed(struct tls_session *s);

/* "TLS1.3 AES-256-GCM" style text for logs, with " resumed" appended
 * for a resumed session; "none" before the handshake. */
const char *tls_describe(struct tls_session *s);
/* "ok", "insecure (not verified)", or the verification failure (see
 * DIAGNOSTICS). */
const char *tls_verify_result(struct tls_session *s);

/* The pin of the (first) certificate in the PEM or DER file at path, as
 * "sha256:BASE64" in out: the value for `pin =` in sendq.ini (the same
 * as certtool --pubkey-info's pin-sha256 and RFC 7469's pin).  Returns 0,
 * or -errno / SQ_ETLS with err.  Blocking file I/O. */
int tls_pin_of_cert_file(const char *path, char out[TLS_PIN_TEXT_MAX],
    struct sq_err *err);

#endif
