/*
 * tls.c - GnuTLS client sessions for the smarthost connections.
 *
 * How it works: a tls_ctx is built once per smarthost at start-up.  It
 * holds the certificate credentials (the system trust store or the PEM
 * CAs of ca_file; none for trust = pin or insecure; the client
 * certificate and key for mutual TLS), the priority cache (tls_priority,
 * or sendq's default: TLS 1.2+ with AEAD ciphers only; either way
 * %PROFILE_MEDIUM unless tls_priority names a profile, so that RSA/DH
 * keys under 2048 bits and SHA-1 signatures are refused), the name to
 * verify (server_name, else host),
 * the SPKI pins and the data of the last verified session for
 * resumption.
 *
 * A tls_session wraps one gnutls_session_t on a connected non-blocking
 * socket.  SNI is the verified name unless it is an address literal.
 * Verification is sendq's own callback, run by GnuTLS during the
 * handshake right after the server's Certificate message:
 *   - trust = system / ca_file: gnutls_certificate_verify_peers() with the
 *     DNS name (or, for an address literal, the raw address so that only
 *     an IP SAN matches) and the TLS server purpose; the session's
 *     verification profile adds the key-strength floor; GnuTLS checks
 *     validity dates, signatures and the basicConstraints of every issuer;
 *     then, when pins are configured, a pin must match as well;
 *   - trust = pin: only the pin: SHA-256 of the DER SubjectPublicKeyInfo
 *     of the leaf certificate (RFC 7469), compared in constant time with
 *     each configured pin.  Chain, dates and name are NOT checked: the
 *     pinned key is the identity;
 *   - trust = insecure: nothing, and a warning at every connection.
 * A refused certificate aborts the handshake with the reason kept for
 * tls_verify_result() ("certificate expired", "pin mismatch (...)", ...).
 *
 * Resumption: after a verified handshake the session data (TLS 1.2:
 * right away; TLS 1.3: once the server's NewSessionTicket has been read,
 * which arrives after the handshake, so it is looked for after every
 * read, at tls_bye() and at tls_session_free()) replaces the data kept in
 * the ctx, and the next session of that ctx offers it.  Only data from a
 * session that passed verification is kept.  A resumed session is still
 * checked: under TLS 1.2 GnuTLS runs the callback on the certificates
 * restored from the session data; under TLS 1.3 (PSK, no Certificate
 * message) tls_handshake() runs the same check on them after the
 * handshake.  So every session reports the verification of the
 * certificate it is bound to, with today's date and the current pins; a
 * failure there also drops the cached data.
 *
 * Every call is a non-blocking step: GNUTLS_E_AGAIN becomes TLS_WANT_READ
 * or TLS_WANT_WRITE from gnutls_record_get_direction().  GnuTLS requires
 * a send that returned GNUTLS_E_AGAIN to be repeated with the same data;
 * tls_write() does so with (NULL, 0) and the caller must pass the same
 * leading bytes again (smtp_conn does: its output only moves when
 * consumed).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "log.h"
#include "tls.h"
#include "util.h"

#define TLS_DEFAULT_PRIORITY \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:" \
	"+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:+AES-256-CCM:" \
	"+AES-128-CCM:%PROFILE_MEDIUM"

struct tls_ctx {
	char             *name;        /* smarthost, for logs */
	char             *verify_name; /* server_name, else host */
	enum config_trust trust;
	int               name_is_ip; /* verify_name is an address */
	unsigned char     ip[16];     /* when name_is_ip */
	unsigned          ip_len;     /* 4 or 16 */
	unsigned char     pins[CONFIG_PINS_MAX][CONFIG_PIN_LEN];
	size_t            n_pins;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t                prio;
	gnutls_datum_t resume; /* last verified session data */
};

struct tls_session {
	struct tls_ctx  *ctx;
	gnutls_session_t s;
	int              fd;
	int              done;          /* handshake over */
	int              failed;        /* handshake failed */
	int              verified;      /* check passed */
	int              verify_failed; /* check failed */
	int              resume_saved;  /* data in ctx */
	int              write_again;   /* send got AGAIN */
	size_t           write_again_len;
	int              bye_sent;
	/* Read-ahead after the handshake (tls_pull): GnuTLS asks for a
	 * record's 5-byte header, then for its body, a recv() each; one
	 * recv() into rbuf serves both, and every record that came with
	 * them.  tls_read() returns with rbuf empty (or its caller's buffer
	 * full, which tls_pending() counts), so nothing waits in it unseen
	 * by the socket's read event. */
	unsigned char *rbuf;
	size_t         rpos, rlen;
	uint64_t       served;   /* bytes tls_pull gave from rbuf, ever */
	int            drain;    /* serve rbuf only, no recv() */
	int            dry;      /* the last recv() was short */
	int            held;     /* held_ret is set */
	int            held_ret; /* a result held back for the next read */
	gnutls_typed_vdata_st vdata[2]; /* must outlive s */
	char                  desc[128];
	char                  verify[256];
};

#define TLS_RBUF_SIZE 4096 /* read-ahead: replies are small records */

/* GnuTLS's pull function: from the read-ahead when it holds anything;
 * else, during the handshake or for a large request, one recv() of what
 * was asked (as GnuTLS's own would); else one recv() into the
 * read-ahead.  While tls_read() drains (s->drain), an empty read-ahead
 * is EAGAIN, without a system call; so is the first pull after a short
 * recv() into it (the socket was empty then: what came since, the
 * caller's level-triggered read event announces), once: the next one
 * asks the socket. */
static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct tls_session *s = ptr;
	ssize_t             n;
	size_t              k;

	if (s->rpos == s->rlen && s->drain) {
		gnutls_transport_set_errno(s->s, EAGAIN);
		return -1;
	}
	if (s->rpos == s->rlen && s->dry) {
		s->dry = 0;
		gnutls_transport_set_errno(s->s, EAGAIN);
		return -1;
	}
	if (s->rpos == s->rlen) {
		if (!s->done || len >= TLS_RBUF_SIZE)
			n = recv(s->fd, data, len, 0);
		else {
			n = recv(s->fd, s->rbuf, TLS_RBUF_SIZE, 0);
			s->dry = n > 0 && n < TLS_RBUF_SIZE;
		}
		if (n < 0) {
			gnutls_transport_set_errno(s->s, errno);
			return -1;
		}
		if (n == 0 || !s->done || len >= TLS_RBUF_SIZE)
			return n;
		s->rpos = 0;
		s->rlen = (size_t)n;
	}
	k = s->rlen - s->rpos < len ? s->rlen - s->rpos : len;
	memcpy(data, s->rbuf + s->rpos, k);
	s->rpos += k;
	s->served += k;
	return (ssize_t)k;
}

/* The pull timeout GnuTLS may ask for: data in the read-ahead is data. */
static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct tls_session *s = ptr;
	struct pollfd       pfd = { s->fd, POLLIN, 0 };
	int                 n;

	if (s->rpos < s->rlen)
		return 1;
	n = poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	if (n < 0)
		gnutls_transport_set_errno(s->s, errno);
	return n;
}

/* GnuTLS's push function, as its own for a socket: one sendmsg(). */
static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt)
{
	struct tls_session *s = ptr;
	struct msghdr       mh;
	ssize_t             n;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)iov; /* giovec_t is struct iovec */
	mh.msg_iovlen = (size_t)iovcnt;
	n = sendmsg(s->fd, &mh, MSG_NOSIGNAL);
	if (n < 0)
		gnutls_transport_set_errno(s->s, errno);
	return n;
}

/* Strip the brackets of "[::1]" into dst (size dstsz). */
static void
tls_host_strip(char *dst, size_t dstsz, const char *host)
{
	size_t len = strlen(host);

	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len >= dstsz)
		len = dstsz - 1;
	memcpy(dst, host, len);
	dst[len] = '\0';
}

/* The RFC 7469 pin of crt: SHA-256 of its DER SubjectPublicKeyInfo.
 * Returns 0 or a GnuTLS error. */
static int
tls_pin_of_crt(gnutls_x509_crt_t crt, unsigned char pin[CONFIG_PIN_LEN])
{
	gnutls_pubkey_t pk;
	gnutls_datum_t  spki = { NULL, 0 };
	int             ret;

	if ((ret = gnutls_pubkey_init(&pk)) < 0)
		return ret;
	if ((ret = gnutls_pubkey_import_x509(pk, crt, 0)) < 0)
		goto out;
	if ((ret = gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &spki)) < 0)
		goto out;
	ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, spki.data, spki.size, pin);
out:
	gnutls_free(spki.data);
	gnutls_pubkey_deinit(pk);
	return ret;
}

/* The pin of a DER certificate. */
static int
tls_pin_of_der(const gnutls_datum_t *der, unsigned char pin[CONFIG_PIN_LEN])
{
	gnutls_x509_crt_t crt;
	int               ret;

	if ((ret = gnutls_x509_crt_init(&crt)) < 0)
		return ret;
	ret = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
	if (ret >= 0)
		ret = tls_pin_of_crt(crt, pin);
	gnutls_x509_crt_deinit(crt);
	return ret;
}

/* "sha256:BASE64" of pin into out. */
static void
tls_pin_text(const unsigned char pin[CONFIG_PIN_LEN],
    char                         out[TLS_PIN_TEXT_MAX])
{
	gnutls_datum_t in = { (unsigned char *)pin, CONFIG_PIN_LEN };
	gnutls_datum_t b64 = { NULL, 0 };
	size_t         len;

	if (gnutls_base64_encode2(&in, &b64) < 0) {
		snprintf(out, TLS_PIN_TEXT_MAX, "sha256:?");
		return;
	}
	len = b64.size;
	while (len > 0 &&
	    (b64.data[len - 1] == '\n' || b64.data[len - 1] == '\r' ||
		b64.data[len - 1] == '\0'))
		len--;
	snprintf(out, TLS_PIN_TEXT_MAX, "sha256:%.*s", (int)len,
	    (const char *)b64.data);
	gnutls_free(b64.data);
}

int
tls_pin_of_cert_file(const char *path, char out[TLS_PIN_TEXT_MAX],
    struct sq_err *err)
{
	gnutls_datum_t    data = { NULL, 0 };
	gnutls_x509_crt_t crt = NULL;
	unsigned char     pin[CONFIG_PIN_LEN];
	int               fd, ret;

	out[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return sq_err_set(err, -errno, "%s: %s", path, strerror(errno));
	close(fd);
	if ((ret = gnutls_load_file(path, &data)) < 0)
		return sq_err_set(err, SQ_ETLS, "%s: %s", path,
		    gnutls_strerror(ret));
	if ((ret = gnutls_x509_crt_init(&crt)) < 0) {
		crt = NULL;
		goto fail;
	}
	ret = gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		ret = gnutls_x509_crt_import(crt, &data, GNUTLS_X509_FMT_DER);
	if (ret < 0)
		goto fail;
	if ((ret = tls_pin_of_crt(crt, pin)) < 0)
		goto fail;
	tls_pin_text(pin, out);
	gnutls_x509_crt_deinit(crt);
	gnutls_free(data.data);
	return 0;
fail:
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	gnutls_free(data.data);
	return sq_err_set(err, SQ_ETLS, "%s: not a PEM or DER certificate: %s",
	    path, gnutls_strerror(ret));
}

/* Open path for reading to report errno in words: GnuTLS's own error
 * for a missing file does not say why. */
static int
tls_check_readable(const struct tls_ctx *ctx, const char *key, const char *path,
    struct sq_err *err)
{
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return sq_err_set(err, -errno, "relay %s: %s %s: %s", ctx->name,
		    key, path, strerror(errno));
	close(fd);
	return 0;
}

static int
tls_ctx_load_trust(struct tls_ctx *ctx, const struct config_smarthost *sh,
    struct sq_err *err)
{
	int ret;

	switch (sh->trust) {
	case CONFIG_TRUST_SYSTEM:
		ret = gnutls_certificate_set_x509_system_trust(ctx->cred);
		if (ret < 0)
			return sq_err_set(err, SQ_ETLS,
			    "relay %s: cannot load the system trust store: %s",
			    sh->name, gnutls_strerror(ret));
		if (ret == 0)
			return sq_err_set(err, SQ_ETLS,
			    "relay %s: the system trust store holds no "
			    "certificates (is ca-certificates installed?)",
			    sh->name);
		return 0;
	case CONFIG_TRUST_CA_FILE:
		if (sh->ca_file == NULL)
			return sq_err_set(err, SQ_ECONFIG,
			    "relay %s: trust = ca_file but no ca_file set",
			    sh->name);
		if ((ret = tls_check_readable(ctx, "ca_file", sh->ca_file,
			 err)) < 0)
			return ret;
		ret = gnutls_certificate_set_x509_trust_file(ctx->cred,
		    sh->ca_file, GNUTLS_X509_FMT_PEM);
		if (ret < 0)
			return sq_err_set(err, SQ_ETLS,
			    "relay %s: ca_file %s: %s", sh->name, sh->ca_file,
			    gnutls_strerror(ret));
		if (ret == 0)
			return sq_err_set(err, SQ_ETLS,
			    "relay %s: ca_file %s: no PEM certificate found",
			    sh->name, sh->ca_file);
		log_debug("relay=%s ca_file=%s certificates=%d", sh->name,
		    sh->ca_file, ret);
		return 0;
	case CONFIG_TRUST_PIN:
		if (sh->n_pins == 0)
			return sq_err_set(err, SQ_ECONFIG,
			    "relay %s: trust = pin but no pin set", sh->name);
		return 0;
	case CONFIG_TRUST_INSECURE:
		return 0;
	}
	return sq_err_set(err, SQ_ECONFIG, "relay %s: unknown trust policy",
	    sh->name);
}

/* The client certificate and key for mutual TLS, when configured. */
static int
tls_ctx_load_client_cert(struct tls_ctx *ctx, const struct config_smarthost *sh,
    struct sq_err *err)
{
	int ret;

	if (sh->client_cert == NULL && sh->client_key == NULL)
		return 0;
	if (sh->client_cert == NULL || sh->client_key == NULL)
		return sq_err_set(err, SQ_ECONFIG,
		    "relay %s: client_cert and client_key must be set together",
		    ctx->name);
	if ((ret = tls_check_readable(ctx, "client_cert", sh->client_cert,
		 err)) < 0)
		return ret;
	if ((ret = tls_check_readable(ctx, "client_key", sh->client_key, err)) <
	    0)
		return ret;
	ret = gnutls_certificate_set_x509_key_file(ctx->cred, sh->client_cert,
	    sh->client_key, GNUTLS_X509_FMT_PEM);
	if (ret < 0)
		return sq_err_set(err, SQ_ETLS,
		    "relay %s: client_cert %s with client_key %s: %s",
		    ctx->name, sh->client_cert, sh->client_key,
		    ret == GNUTLS_E_CERTIFICATE_KEY_MISMATCH ?
			"the key does not belong to the certificate" :
			gnutls_strerror(ret));
	return 0;
}

/*
 * The priority cache: tls_priority, or sendq's default.  A tls_priority
 * that names no %PROFILE_ keeps sendq's key-strength floor: ":%PROFILE_
 * MEDIUM" is appended (to lower it, a profile must be spelled out, e.g.
 * %PROFILE_LOW).
 */
static int
tls_ctx_load_priority(struct tls_ctx *ctx, const struct config_smarthost *sh,
    struct sq_err *err)
{
	const char *prio, *errpos = NULL;
	char        near[48], *full;
	size_t      len;
	int         ret;

	prio = sh->tls_priority != NULL ? sh->tls_priority :
					  TLS_DEFAULT_PRIORITY;
	len = strlen(prio);
	if (strstr(prio, "%PROFILE_") == NULL)
		full = xasprintf("%s:%%PROFILE_MEDIUM", prio);
	else
		full = xstrdup(prio);
	ret = gnutls_priority_init(&ctx->prio, full, &errpos);
	if (ret >= 0) {
		free(full);
		return 0;
	}
	ctx->prio = NULL;
	if (errpos != NULL && errpos >= full && errpos < full + len) {
		sq_printable(near, sizeof(near), errpos,
		    len - (size_t)(errpos - full));
		ret = sq_err_set(err, SQ_ECONFIG,
		    "relay %s: tls_priority \"%s\" rejected by GnuTLS at "
		    "position %zu (\"%s\"): %s",
		    ctx->name, prio, (size_t)(errpos - full) + 1, near,
		    gnutls_strerror(ret));
	} else
		ret = sq_err_set(err, SQ_ECONFIG,
		    "relay %s: tls_priority \"%s\" rejected by GnuTLS: %s",
		    ctx->name, prio, gnutls_strerror(ret));
	free(full);
	return ret;
}

int
tls_ctx_new(const struct config_smarthost *sh, struct tls_ctx **out,
    struct sq_err *err)
{
	struct tls_ctx *ctx;
	const char     *name;
	char            host[256];
	int             ret;

	ctx = xcalloc(1, sizeof(*ctx));
	ctx->name = xstrdup(sh->name != NULL ? sh->name : "?");
	name = sh->server_name != NULL ? sh->server_name :
	    sh->host != NULL           ? sh->host :
					 "";
	tls_host_strip(host, sizeof(host), name);
	ctx->verify_name = xstrdup(host);
	ctx->trust = sh->trust;
	if (inet_pton(AF_INET, host, ctx->ip) == 1) {
		ctx->name_is_ip = 1;
		ctx->ip_len = 4;
	} else if (inet_pton(AF_INET6, host, ctx->ip) == 1) {
		ctx->name_is_ip = 1;
		ctx->ip_len = 16;
	}
	if (sh->n_pins > CONFIG_PINS_MAX) {
		ret = sq_err_set(err, SQ_ECONFIG, "relay %s: more than %d pins",
		    ctx->name, CONFIG_PINS_MAX);
		goto fail;
	}
	memcpy(ctx->pins, sh->pins, sh->n_pins * CONFIG_PIN_LEN);
	ctx->n_pins = sh->n_pins;
	if ((ctx->trust == CONFIG_TRUST_SYSTEM ||
		ctx->trust == CONFIG_TRUST_CA_FILE) &&
	    ctx->verify_name[0] == '\0') {
		ret = sq_err_set(err, SQ_ECONFIG,
		    "relay %s: no host name to verify the certificate against",
		    ctx->name);
		goto fail;
	}

	if ((ret = gnutls_certificate_allocate_credentials(&ctx->cred)) < 0) {
		ctx->cred = NULL;
		ret = sq_err_set(err, SQ_ETLS, "relay %s: %s", ctx->name,
		    gnutls_strerror(ret));
		goto fail;
	}
	if ((ret = tls_ctx_load_trust(ctx, sh, err)) < 0)
		goto fail;
	if ((ret = tls_ctx_load_client_cert(ctx, sh, err)) < 0)
		goto fail;
	if ((ret = tls_ctx_load_priority(ctx, sh, err)) < 0)
		goto fail;
	*out = ctx;
	return 0;
fail:
	tls_ctx_free(ctx);
	return ret < 0 ? ret : SQ_ETLS;
}

static void
tls_ctx_forget_session(struct tls_ctx *ctx)
{
	if (ctx->resume.data != NULL) {
		gnutls_memset(ctx->resume.data, 0, ctx->resume.size);
		gnutls_free(ctx->resume.data);
	}
	ctx->resume.data = NULL;
	ctx->resume.size = 0;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	tls_ctx_forget_session(ctx);
	if (ctx->prio != NULL)
		gnutls_priority_deinit(ctx->prio);
	if (ctx->cred != NULL)
		gnutls_certificate_free_credentials(ctx->cred);
	free(ctx->name);
	free(ctx->verify_name);
	free(ctx);
}

static int tls_verify_cb(gnutls_session_t);

int
tls_session_new(struct tls_ctx *ctx, int fd, struct tls_session **out,
    struct sq_err *err)
{
	struct tls_session *s;
	int                 ret;

	s = xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	s->fd = fd;
	snprintf(s->desc, sizeof(s->desc), "none");
	snprintf(s->verify, sizeof(s->verify), "not verified (no handshake)");

	ret = gnutls_init(&s->s,
	    GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		s->s = NULL;
		goto fail;
	}
	gnutls_session_set_ptr(s->s, s);
	if ((ret = gnutls_priority_set(s->s, ctx->prio)) < 0)
		goto fail;
	ret = gnutls_credentials_set(s->s, GNUTLS_CRD_CERTIFICATE, ctx->cred);
	if (ret < 0)
		goto fail;
	if (!ctx->name_is_ip && ctx->verify_name[0] != '\0') {
		ret = gnutls_server_name_set(s->s, GNUTLS_NAME_DNS,
		    ctx->verify_name, strlen(ctx->verify_name));
		if (ret < 0)
			goto fail;
	}
	if (ctx->trust == CONFIG_TRUST_INSECURE) {
		log_warn(
		    "relay %s: TLS certificate NOT verified (trust = insecure)",
		    ctx->name);
	} else {
		if (ctx->name_is_ip) {
			s->vdata[0].type = GNUTLS_DT_IP_ADDRESS;
			s->vdata[0].data = ctx->ip;
			s->vdata[0].size = ctx->ip_len;
		} else {
			s->vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
			s->vdata[0].data = (unsigned char *)ctx->verify_name;
			s->vdata[0].size = 0;
		}
		s->vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
		s->vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
		s->vdata[1].size = 0;
		gnutls_session_set_verify_function(s->s, tls_verify_cb);
	}
	if (ctx->resume.data != NULL) {
		ret = gnutls_session_set_data(s->s, ctx->resume.data,
		    ctx->resume.size);
		if (ret < 0) {
			log_debug("relay=%s cannot resume the TLS session: %s",
			    ctx->name, gnutls_strerror(ret));
			tls_ctx_forget_session(ctx);
		}
	}
	s->rbuf = xmalloc(TLS_RBUF_SIZE);
	gnutls_transport_set_ptr(s->s, s);
	gnutls_transport_set_pull_function(s->s, tls_pull);
	gnutls_transport_set_pull_timeout_function(s->s, tls_pull_timeout);
	gnutls_transport_set_vec_push_function(s->s, tls_push);
	gnutls_handshake_set_timeout(s->s, 0); /* smtp_conn times out */
	*out = s;
	return 0;
fail:
	sq_err_set(err, SQ_ETLS, "relay %s: cannot set up a TLS session: %s",
	    ctx->name, gnutls_strerror(ret));
	tls_session_free(s);
	return SQ_ETLS;
}

/* Keep the session data in the ctx for the next session, once there is
 * something worth resuming: a verified session, and under TLS 1.3 a
 * ticket from the server (it comes after the handshake; before it,
 * GnuTLS would hand out data that cannot resume). */
static void
tls_resume_save(struct tls_session *s)
{
	gnutls_datum_t data = { NULL, 0 };

	if (s->resume_saved || !s->done || s->failed)
		return;
	if (s->ctx->trust != CONFIG_TRUST_INSECURE && !s->verified)
		return;
	if (gnutls_protocol_get_version(s->s) == GNUTLS_TLS1_3 &&
	    (gnutls_session_get_flags(s->s) & GNUTLS_SFLAGS_SESSION_TICKET) ==
		0)
		return;
	if (gnutls_session_get_data2(s->s, &data) < 0 || data.size == 0) {
		gnutls_free(data.data);
		return;
	}
	tls_ctx_forget_session(s->ctx);
	s->ctx->resume = data;
	s->resume_saved = 1;
}

void
tls_session_free(struct tls_session *s)
{
	if (s == NULL)
		return;
	if (s->s != NULL) {
		tls_resume_save(s);
		gnutls_deinit(s->s);
	}
	free(s->rbuf);
	free(s);
}

/* Append ", " and the text to dst (used bytes in *used). */
static void
tls_reason_add(char *dst, size_t dstsz, size_t *used, const char *text)
{
	int n;

	if (*used >= dstsz)
		return;
	n = snprintf(dst + *used, dstsz - *used, "%s%s", *used > 0 ? ", " : "",
	    text);
	if (n > 0)
		*used += (size_t)n;
}

/* Facts about the leaf certificate for a reason text. */
static void
tls_leaf_facts(const gnutls_datum_t *der, int *self_signed, char *keydesc,
    size_t keydescsz, char *dnsname, size_t dnsnamesz)
{
	gnutls_x509_crt_t crt;
	unsigned          bits = 0;
	unsigned int      critical;
	char              name[256];
	size_t            namesz;
	int               algo, i, ret;

	*self_signed = 0;
	snprintf(keydesc, keydescsz, "?");
	dnsname[0] = '\0';
	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(crt);
		return;
	}
	*self_signed = gnutls_x509_crt_check_issuer(crt, crt) != 0;
	algo = gnutls_x509_crt_get_pk_algorithm(crt, &bits);
	if (algo >= 0)
		snprintf(keydesc, keydescsz, "%s %u bits",
		    gnutls_pk_get_name((gnutls_pk_algorithm_t)algo) != NULL ?
			gnutls_pk_get_name((gnutls_pk_algorithm_t)algo) :
			"?",
		    bits);
	for (i = 0; i < 16; i++) {
		namesz = sizeof(name);
		ret = gnutls_x509_crt_get_subject_alt_name(crt, (unsigned)i,
		    name, &namesz, &critical);
		if (ret == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE ||
		    (ret < 0 && ret != GNUTLS_E_SHORT_MEMORY_BUFFER))
			break;
		if (ret == GNUTLS_SAN_DNSNAME) {
			sq_printable(dnsname, dnsnamesz, name, namesz);
			break;
		}
	}
	gnutls_x509_crt_deinit(crt);
}

/* The verification status bits as a short text, most useful first. */
static void
tls_verify_reason(struct tls_session *s, unsigned status,
    const gnutls_datum_t *leaf, char *dst, size_t dstsz)
{
	static const struct {
		unsigned    bit;
		const char *text;
	} tls_verify_bits[] = {
		{ GNUTLS_CERT_EXPIRED, "certificate expired" },
		{ GNUTLS_CERT_NOT_ACTIVATED, "certificate not yet valid" },
		{ GNUTLS_CERT_SIGNER_NOT_FOUND, NULL }, /* untrusted */
		{ GNUTLS_CERT_SIGNER_NOT_CA,
		    "certificate signer is not a CA (basicConstraints)" },
		{ GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE,
		    "certificate signer constraints violated" },
		{ GNUTLS_CERT_UNEXPECTED_OWNER, NULL },   /* host name */
		{ GNUTLS_CERT_INSECURE_ALGORITHM, NULL }, /* weak key */
		{ GNUTLS_CERT_REVOKED, "certificate revoked" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE,
		    "certificate signature invalid" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH,
		    "certificate not for TLS servers (key purpose)" },
		{ GNUTLS_CERT_MISMATCH, "certificate mismatch" },
	};
	gnutls_datum_t out;
	char           text[256], keydesc[64], dnsname[128];
	size_t         i, used = 0;
	int            self_signed;

	tls_leaf_facts(leaf, &self_signed, keydesc, sizeof(keydesc), dnsname,
	    sizeof(dnsname));
	dst[0] = '\0';
	for (i = 0; i < sizeof(tls_verify_bits) / sizeof(tls_verify_bits[0]);
	     i++) {
		if ((status & tls_verify_bits[i].bit) == 0)
			continue;
		switch (tls_verify_bits[i].bit) {
		case GNUTLS_CERT_SIGNER_NOT_FOUND:
			snprintf(text, sizeof(text),
			    "certificate signer not trusted%s",
			    self_signed ? " (self-signed certificate)" : "");
			break;
		case GNUTLS_CERT_UNEXPECTED_OWNER:
			snprintf(text, sizeof(text),
			    "host name mismatch (expected %s%s%s)",
			    s->ctx->verify_name,
			    dnsname[0] != '\0' ? ", certificate is for " : "",
			    dnsname);
			break;
		case GNUTLS_CERT_INSECURE_ALGORITHM:
			snprintf(text, sizeof(text),
			    "insecure algorithm/key (server key %s)", keydesc);
			break;
		default:
			snprintf(text, sizeof(text), "%s",
			    tls_verify_bits[i].text);
			break;
		}
		tls_reason_add(dst, dstsz, &used, text);
	}
	if (used > 0)
		return;
	/* A bit we do not name: let GnuTLS describe it. */
	if (gnutls_certificate_verification_status_print(status,
		GNUTLS_CRT_X509, &out, 0) == 0) {
		sq_printable(dst, dstsz, (const char *)out.data, out.size);
		gnutls_free(out.data);
	} else
		snprintf(dst, dstsz, "certificate not trusted (status 0x%x)",
		    status);
}

/* Fail the check: the reason goes to s->verify. */
static int
tls_verify_fail(struct tls_session *s, const char *fmt, ...) SQ_PRINTF(2, 3);

static int
tls_verify_fail(struct tls_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->verify, sizeof(s->verify), fmt, ap);
	va_end(ap);
	s->verify_failed = 1;
	s->verified = 0;
	return -1;
}

/* The certificate check of the trust policy (see the top of the file)
 * on the server's certificates as GnuTLS holds them: received in this
 * handshake, or restored from the data of a resumed session.  Returns 0
 * (s->verified set) or -1 with the reason in s->verify. */
static int
tls_verify_peer(struct tls_session *s)
{
	const struct tls_ctx *ctx = s->ctx;
	const gnutls_datum_t *certs;
	unsigned char         pin[CONFIG_PIN_LEN];
	char         pintext[TLS_PIN_TEXT_MAX], reason[sizeof(s->verify)];
	unsigned int ncerts = 0, status = 0;
	unsigned     match = 0;
	size_t       i;
	int          ret;

	certs = gnutls_certificate_get_peers(s->s, &ncerts);
	if (certs == NULL || ncerts == 0)
		return tls_verify_fail(s, "server sent no certificate");
	if (ctx->trust != CONFIG_TRUST_PIN) {
		ret = gnutls_certificate_verify_peers(s->s, s->vdata, 2,
		    &status);
		if (ret < 0)
			return tls_verify_fail(s,
			    "certificate not verified: %s",
			    gnutls_strerror(ret));
		if (status != 0) {
			tls_verify_reason(s, status, &certs[0], reason,
			    sizeof(reason));
			return tls_verify_fail(s, "%s", reason);
		}
	}
	if (ctx->n_pins > 0) {
		if ((ret = tls_pin_of_der(&certs[0], pin)) < 0)
			return tls_verify_fail(s,
			    "cannot read the server's public key: %s",
			    gnutls_strerror(ret));
		/* Constant time: look at every pin, whatever matched. */
		for (i = 0; i < ctx->n_pins; i++)
			match |= gnutls_memcmp(pin, ctx->pins[i],
				     CONFIG_PIN_LEN) == 0;
		if (!match) {
			tls_pin_text(pin, pintext);
			return tls_verify_fail(s,
			    "pin mismatch (server key %s not among the "
			    "configured pins)",
			    pintext);
		}
	}
	s->verified = 1;
	return 0;
}

/* GnuTLS calls this after the server's Certificate message (and, in
 * TLS 1.2, also when resuming, on the restored certificates). */
static int
tls_verify_cb(gnutls_session_t gs)
{
	struct tls_session *s = gnutls_session_get_ptr(gs);

	if (s == NULL)
		return GNUTLS_E_CERTIFICATE_ERROR;
	if (tls_verify_peer(s) < 0)
		return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
	return 0;
}

/* The server's fatal alert, with a hint when it means "nothing in
 * common" (typically a server limited to TLS < 1.2 or CBC ciphers). */
static void
tls_alert_text(struct tls_session *s, char *dst, size_t dstsz)
{
	gnutls_alert_description_t a = gnutls_alert_get(s->s);
	const char                *name = gnutls_alert_get_name(a);

	switch (a) {
	case GNUTLS_A_HANDSHAKE_FAILURE:
	case GNUTLS_A_PROTOCOL_VERSION:
	case GNUTLS_A_INSUFFICIENT_SECURITY:
		snprintf(dst, dstsz,
		    "the server sent alert '%s' (no TLS version or cipher in "
		    "common: sendq requires TLS 1.2 or newer with AEAD "
		    "ciphers)",
		    name != NULL ? name : "?");
		break;
	default:
		snprintf(dst, dstsz, "the server sent alert '%s'",
		    name != NULL ? name : "?");
		break;
	}
}

static enum tls_status
tls_again(struct tls_session *s)
{
	return gnutls_record_get_direction(s->s) == 0 ? TLS_WANT_READ :
							TLS_WANT_WRITE;
}

static void
tls_session_describe(struct tls_session *s)
{
	const char *ver, *cipher;

	ver = gnutls_protocol_get_name(gnutls_protocol_get_version(s->s));
	cipher = gnutls_cipher_get_name(gnutls_cipher_get(s->s));
	snprintf(s->desc, sizeof(s->desc), "%s %s%s", ver != NULL ? ver : "?",
	    cipher != NULL ? cipher : "?",
	    gnutls_session_is_resumed(s->s) ? " resumed" : "");
	/* "ok" only from a check that ran and passed, resumed or not. */
	if (s->ctx->trust == CONFIG_TRUST_INSECURE)
		snprintf(s->verify, sizeof(s->verify),
		    "insecure (not verified)");
	else if (s->verified)
		snprintf(s->verify, sizeof(s->verify), "ok");
	else
		snprintf(s->verify, sizeof(s->verify), "not verified");
}

/* A fatal handshake error ret into err (and s->verify). */
static void
tls_handshake_error(struct tls_session *s, int ret, struct sq_err *err)
{
	char reason[sizeof(s->verify)];

	s->failed = 1;
	if (s->verify_failed &&
	    (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR ||
		ret == GNUTLS_E_CERTIFICATE_ERROR)) {
		sq_err_set(err, SQ_EVERIFY,
		    "certificate verification failed: %s", s->verify);
		/* Tell the server why (best effort, never waits). */
		(void)gnutls_alert_send_appropriate(s->s, ret);
		return;
	}
	snprintf(s->verify, sizeof(s->verify),
	    "not verified (handshake failed)");
	if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		snprintf(s->verify, sizeof(s->verify),
		    "certificate not trusted (status 0x%x)",
		    gnutls_session_get_verify_cert_status(s->s));
		sq_err_set(err, SQ_EVERIFY,
		    "certificate verification failed: %s", s->verify);
	} else if (ret == GNUTLS_E_NO_CERTIFICATE_FOUND) {
		snprintf(s->verify, sizeof(s->verify),
		    "server sent no certificate");
		sq_err_set(err, SQ_EVERIFY,
		    "certificate verification failed: server sent no "
		    "certificate");
	} else if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		tls_alert_text(s, reason, sizeof(reason));
		sq_err_set(err, SQ_ETLS, "TLS handshake failed: %s", reason);
	} else if (ret == GNUTLS_E_PREMATURE_TERMINATION ||
	    ret == GNUTLS_E_PULL_ERROR || ret == GNUTLS_E_PUSH_ERROR) {
		sq_err_set(err, SQ_ETLS,
		    "TLS handshake failed: connection closed by the server "
		    "(%s)",
		    gnutls_strerror(ret));
	} else if (ret == GNUTLS_E_UNEXPECTED_PACKET ||
	    ret == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
	    ret == GNUTLS_E_UNSUPPORTED_VERSION_PACKET) {
		sq_err_set(err, SQ_ETLS,
		    "TLS handshake failed: %s (does the server speak TLS on "
		    "this port? for plain SMTP with STARTTLS use tls = "
		    "starttls)",
		    gnutls_strerror(ret));
	} else if (ret == GNUTLS_E_INSUFFICIENT_CREDENTIALS ||
	    ret == GNUTLS_E_NO_CIPHER_SUITES ||
	    ret == GNUTLS_E_UNKNOWN_CIPHER_SUITE ||
	    ret == GNUTLS_E_UNSUPPORTED_SIGNATURE_ALGORITHM) {
		sq_err_set(err, SQ_ETLS,
		    "TLS handshake failed: %s (the server's TLS version, "
		    "cipher or key is below sendq's floor: TLS 1.2+, AEAD, "
		    "2048-bit RSA/DH)",
		    gnutls_strerror(ret));
	} else {
		sq_err_set(err, SQ_ETLS, "TLS handshake failed: %s",
		    gnutls_strerror(ret));
	}
}

enum tls_status
tls_handshake(struct tls_session *s, struct sq_err *err)
{
	int ret;

	if (s->done)
		return TLS_DONE;
	if (s->failed) {
		sq_err_set(err, SQ_ETLS, "TLS handshake already failed");
		return TLS_ERROR;
	}
	for (;;) {
		ret = gnutls_handshake(s->s);
		if (ret == 0)
			break;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return tls_again(s);
		if (!gnutls_error_is_fatal(ret))
			continue; /* warning alert: go on */
		tls_handshake_error(s, ret, err);
		return TLS_ERROR;
	}
	/*
	 * A TLS 1.3 resumption (PSK) carries no Certificate message, so the
	 * callback did not run: check the certificate restored from the
	 * session data the same way before anything is sent.
	 */
	if (s->ctx->trust != CONFIG_TRUST_INSECURE && !s->verified) {
		if (!s->verify_failed)
			(void)tls_verify_peer(s);
		if (!s->verified) {
			s->failed = 1;
			tls_ctx_forget_session(s->ctx);
			sq_err_set(err, SQ_EVERIFY,
			    "certificate verification failed: %s", s->verify);
			return TLS_ERROR;
		}
	}
	s->done = 1;
	tls_session_describe(s);
	tls_resume_save(s);
	return TLS_DONE;
}

/* After a record, the records that came with it, from the read-ahead
 * only (no recv()), into data (*n used of len); until it is empty, or a
 * record is incomplete (GnuTLS keeps its start).  Anything but data (end
 * of file, an error) is held for the next tls_read(), after this data. */
static void
tls_read_drain(struct tls_session *s, void *data, size_t len, size_t *n)
{
	ssize_t  ret;
	uint64_t served;

	while (*n < len && s->rpos < s->rlen) {
		served = s->served;
		s->drain = 1;
		ret = gnutls_record_recv(s->s, (char *)data + *n, len - *n);
		s->drain = 0;
		if (ret > 0)
			*n += (size_t)ret;
		else if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			/* A record that was no data (a TLS 1.3 ticket): on
			 * with the rest; else the last one is incomplete. */
			if (s->served == served)
				break;
		} else {
			s->held = 1;
			s->held_ret = (int)ret;
			break;
		}
	}
}

enum tls_status
tls_read(struct tls_session *s, void *data, size_t len, size_t *n,
    struct sq_err *err)
{
	ssize_t  ret;
	uint64_t served;

	*n = 0;
	for (;;) {
		served = s->served;
		if (s->held) {
			ret = s->held_ret;
			s->held = 0;
		} else
			ret = gnutls_record_recv(s->s, data, len);
		if (ret > 0) {
			*n = (size_t)ret;
			tls_read_drain(s, data, len, n);
			tls_resume_save(s);
			return TLS_DONE;
		}
		if (ret == 0 || ret == GNUTLS_E_PREMATURE_TERMINATION)
			return TLS_EOF;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			tls_resume_save(s); /* a ticket may have come */
			/* A record that was no data (a ticket) came with more:
			 * read on, nothing may stay in the read-ahead. */
			if (s->rpos < s->rlen && s->served != served)
				continue;
			return tls_again(s);
		}
		if (ret == GNUTLS_E_REHANDSHAKE)
			continue; /* refused renegotiation: ignore */
		if (!gnutls_error_is_fatal((int)ret))
			continue;
		sq_err_set(err, SQ_ETLS, "TLS read failed: %s",
		    gnutls_strerror((int)ret));
		return TLS_ERROR;
	}
}

enum tls_status
tls_write(struct tls_session *s, const void *data, size_t len, size_t *n,
    struct sq_err *err)
{
	ssize_t ret;

	*n = 0;
	for (;;) {
		if (s->write_again) {
			if (len < s->write_again_len) {
				sq_err_set(err, SQ_ETLS,
				    "TLS write retried with less data (bug)");
				return TLS_ERROR;
			}
			ret = gnutls_record_send(s->s, NULL, 0);
		} else
			ret = gnutls_record_send(s->s, data, len);
		if (ret >= 0) {
			s->write_again = 0;
			*n = (size_t)ret;
			return TLS_DONE;
		}
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
			if (!s->write_again) {
				s->write_again = 1;
				s->write_again_len = len;
			}
			return tls_again(s);
		}
		if (!gnutls_error_is_fatal((int)ret))
			continue;
		sq_err_set(err, SQ_ETLS, "TLS write failed: %s",
		    gnutls_strerror((int)ret));
		return TLS_ERROR;
	}
}

void
tls_bye(struct tls_session *s)
{
	if (s == NULL || !s->done || s->bye_sent)
		return;
	s->bye_sent = 1;
	tls_resume_save(s);
	/* Non-blocking: one attempt, an incomplete alert is dropped. */
	(void)gnutls_bye(s->s, GNUTLS_SHUT_WR);
}

size_t
tls_pending(struct tls_session *s)
{
	if (s == NULL || !s->done)
		return 0;
	return gnutls_record_check_pending(s->s) + (s->rlen - s->rpos);
}

int
tls_session_resumed(struct tls_session *s)
{
	if (s == NULL || !s->done)
		return 0;
	return gnutls_session_is_resumed(s->s) != 0;
}

const char *
tls_describe(struct tls_session *s)
{
	return s != NULL ? s->desc : "none";
}

const char *
tls_verify_result(struct tls_session *s)
{
	return s != NULL ? s->verify : "none";
}
