/*
 * tls.c - GnuTLS client sessions for the smarthost connections.
 *
 * How it works: a tls_ctx is built once per smarthost at start-up.  It
 * holds the certificate credentials (the system trust store or the PEM
 * CAs of ca_file; none are consulted for trust = insecure), the priority
 * cache (TLS 1.2+ with AEAD ciphers only, and %PROFILE_MEDIUM so that
 * RSA/DH keys under 2048 bits and SHA-1 signatures are refused) and the
 * name to verify.  A tls_session wraps one gnutls_session_t on a
 * connected non-blocking socket: SNI is the smarthost host name (never an
 * address literal); verification is done by GnuTLS during the handshake
 * (gnutls_session_set_verify_cert2 with the DNS name, or the raw address
 * for an address literal so that only an IP SAN matches, plus the TLS
 * server purpose).  Every call is a non-blocking step: GNUTLS_E_AGAIN
 * becomes TLS_WANT_READ or TLS_WANT_WRITE from
 * gnutls_record_get_direction().  A refused certificate is decoded from
 * the verification status bits into a short reason a person can act on.
 *
 * GnuTLS requires a send that returned GNUTLS_E_AGAIN to be repeated with
 * the same data; tls_write() does so with (NULL, 0) and the caller must
 * pass the same leading bytes again (smtp_conn does: its output only
 * moves when consumed).
 *
 * Session resumption (later): the ctx is the place for the cache of the
 * last session ticket (gnutls_session_get_data2 after the handshake,
 * gnutls_session_set_data in tls_session_new); see the marked spots.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "log.h"
#include "tls.h"
#include "util.h"

#define TLS_DEFAULT_PRIORITY						\
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:"	\
	"+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305:+AES-256-CCM:"	\
	"+AES-128-CCM:%PROFILE_MEDIUM"

struct tls_ctx {
	char		*name;		/* smarthost, for logs */
	char		*host;		/* name or literal, no [] */
	enum config_trust trust;
	int		 host_is_ip;
	unsigned char	 ip[16];	/* when host_is_ip */
	unsigned	 ip_len;	/* 4 or 16 */
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	/* Resumption (later): the last session data goes here. */
};

struct tls_session {
	struct tls_ctx		*ctx;
	gnutls_session_t	 s;
	int			 fd;
	int			 done;		/* handshake over */
	int			 failed;	/* handshake failed */
	int			 write_again;	/* send got AGAIN */
	size_t			 write_again_len;
	int			 bye_sent;
	gnutls_typed_vdata_st	 vdata[2];	/* must outlive s */
	char			 desc[128];
	char			 verify[256];
};

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

static int
tls_ctx_load_trust(struct tls_ctx *ctx, const struct config_smarthost *sh,
    struct sq_err *err)
{
	int fd, ret;

	switch (sh->trust) {
	case CONFIG_TRUST_SYSTEM:
		ret = gnutls_certificate_set_x509_system_trust(ctx->cred);
		if (ret < 0)
			return sq_err_set(err, SQ_ETLS, "relay %s: cannot load "
			    "the system trust store: %s", sh->name,
			    gnutls_strerror(ret));
		if (ret == 0)
			return sq_err_set(err, SQ_ETLS, "relay %s: the system "
			    "trust store holds no certificates (is "
			    "ca-certificates installed?)", sh->name);
		return 0;
	case CONFIG_TRUST_CA_FILE:
		if (sh->ca_file == NULL)
			return sq_err_set(err, SQ_ECONFIG, "relay %s: trust = "
			    "ca_file but no ca_file set", sh->name);
		/* Open first: GnuTLS's own error does not say why. */
		if ((fd = open(sh->ca_file, O_RDONLY | O_CLOEXEC)) == -1)
			return sq_err_set(err, -errno, "relay %s: ca_file %s: "
			    "%s", sh->name, sh->ca_file, strerror(errno));
		close(fd);
		ret = gnutls_certificate_set_x509_trust_file(ctx->cred,
		    sh->ca_file, GNUTLS_X509_FMT_PEM);
		if (ret < 0)
			return sq_err_set(err, SQ_ETLS, "relay %s: ca_file %s: "
			    "%s", sh->name, sh->ca_file, gnutls_strerror(ret));
		if (ret == 0)
			return sq_err_set(err, SQ_ETLS, "relay %s: ca_file %s: "
			    "no PEM certificate found", sh->name, sh->ca_file);
		log_debug("relay=%s ca_file=%s certificates=%d", sh->name,
		    sh->ca_file, ret);
		return 0;
	case CONFIG_TRUST_INSECURE:
		return 0;
	case CONFIG_TRUST_PIN:
		return sq_err_set(err, SQ_ECONFIG, "relay %s: trust = pin is "
		    "not supported yet", sh->name);
	}
	return sq_err_set(err, SQ_ECONFIG, "relay %s: unknown trust policy",
	    sh->name);
}

int
tls_ctx_new(const struct config_smarthost *sh, struct tls_ctx **out,
    struct sq_err *err)
{
	struct tls_ctx *ctx;
	const char *errpos = NULL;
	char host[256];
	int ret;

	ctx = xcalloc(1, sizeof(*ctx));
	ctx->name = xstrdup(sh->name != NULL ? sh->name : "?");
	tls_host_strip(host, sizeof(host), sh->host != NULL ? sh->host : "");
	ctx->host = xstrdup(host);
	ctx->trust = sh->trust;
	if (inet_pton(AF_INET, host, ctx->ip) == 1) {
		ctx->host_is_ip = 1;
		ctx->ip_len = 4;
	} else if (inet_pton(AF_INET6, host, ctx->ip) == 1) {
		ctx->host_is_ip = 1;
		ctx->ip_len = 16;
	}

	if ((ret = gnutls_certificate_allocate_credentials(&ctx->cred)) < 0) {
		ctx->cred = NULL;
		sq_err_set(err, SQ_ETLS, "relay %s: %s", ctx->name,
		    gnutls_strerror(ret));
		goto fail;
	}
	if ((ret = tls_ctx_load_trust(ctx, sh, err)) < 0)
		goto fail;
	ret = gnutls_priority_init(&ctx->prio, TLS_DEFAULT_PRIORITY, &errpos);
	if (ret < 0) {
		ctx->prio = NULL;
		sq_err_set(err, SQ_ETLS, "relay %s: TLS priority string "
		    "rejected at \"%s\": %s", ctx->name,
		    errpos != NULL ? errpos : "", gnutls_strerror(ret));
		ret = SQ_ETLS;
		goto fail;
	}
	*out = ctx;
	return 0;
fail:
	tls_ctx_free(ctx);
	return ret < 0 ? ret : SQ_ETLS;
}

void
tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	if (ctx->prio != NULL)
		gnutls_priority_deinit(ctx->prio);
	if (ctx->cred != NULL)
		gnutls_certificate_free_credentials(ctx->cred);
	free(ctx->name);
	free(ctx->host);
	free(ctx);
}

int
tls_session_new(struct tls_ctx *ctx, int fd, struct tls_session **out,
    struct sq_err *err)
{
	struct tls_session *s;
	int ret;

	s = xcalloc(1, sizeof(*s));
	s->ctx = ctx;
	s->fd = fd;
	snprintf(s->desc, sizeof(s->desc), "none");
	snprintf(s->verify, sizeof(s->verify), "not verified (no handshake)");

	ret = gnutls_init(&s->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK |
	    GNUTLS_NO_SIGNAL);
	if (ret < 0) {
		s->s = NULL;
		goto fail;
	}
	if ((ret = gnutls_priority_set(s->s, ctx->prio)) < 0)
		goto fail;
	ret = gnutls_credentials_set(s->s, GNUTLS_CRD_CERTIFICATE, ctx->cred);
	if (ret < 0)
		goto fail;
	if (!ctx->host_is_ip && ctx->host[0] != '\0') {
		ret = gnutls_server_name_set(s->s, GNUTLS_NAME_DNS, ctx->host,
		    strlen(ctx->host));
		if (ret < 0)
			goto fail;
	}
	if (ctx->trust == CONFIG_TRUST_INSECURE) {
		log_warn("relay %s: TLS certificate NOT verified "
		    "(trust = insecure)", ctx->name);
	} else {
		if (ctx->host_is_ip) {
			s->vdata[0].type = GNUTLS_DT_IP_ADDRESS;
			s->vdata[0].data = ctx->ip;
			s->vdata[0].size = ctx->ip_len;
		} else {
			s->vdata[0].type = GNUTLS_DT_DNS_HOSTNAME;
			s->vdata[0].data = (unsigned char *)ctx->host;
			s->vdata[0].size = 0;
		}
		s->vdata[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
		s->vdata[1].data = (unsigned char *)GNUTLS_KP_TLS_WWW_SERVER;
		s->vdata[1].size = 0;
		gnutls_session_set_verify_cert2(s->s, s->vdata, 2, 0);
	}
	/* Resumption (later): gnutls_session_set_data() from ctx here. */
	gnutls_transport_set_int(s->s, fd);
	gnutls_handshake_set_timeout(s->s, 0);	/* smtp_conn times out */
	*out = s;
	return 0;
fail:
	sq_err_set(err, SQ_ETLS, "relay %s: cannot set up a TLS session: %s",
	    ctx->name, gnutls_strerror(ret));
	tls_session_free(s);
	return SQ_ETLS;
}

void
tls_session_free(struct tls_session *s)
{
	if (s == NULL)
		return;
	if (s->s != NULL)
		gnutls_deinit(s->s);
	free(s);
}

/* The verification status bits as a short text, most useful first. */
static void
tls_verify_reason(struct tls_session *s, unsigned status, char *dst,
    size_t dstsz)
{
	static const struct {
		unsigned	 bit;
		const char	*text;
	} tls_verify_bits[] = {
		{ GNUTLS_CERT_SIGNER_NOT_FOUND, "certificate signer not "
		    "trusted" },
		{ GNUTLS_CERT_SIGNER_NOT_CA, "certificate signer is not a CA" },
		{ GNUTLS_CERT_UNEXPECTED_OWNER, NULL },	/* host name */
		{ GNUTLS_CERT_EXPIRED, "certificate expired" },
		{ GNUTLS_CERT_NOT_ACTIVATED, "certificate not yet activated" },
		{ GNUTLS_CERT_REVOKED, "certificate revoked" },
		{ GNUTLS_CERT_INSECURE_ALGORITHM, "insecure algorithm or key "
		    "too small" },
		{ GNUTLS_CERT_SIGNATURE_FAILURE, "certificate signature "
		    "invalid" },
		{ GNUTLS_CERT_PURPOSE_MISMATCH, "certificate not for TLS "
		    "servers (key purpose)" },
		{ GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "certificate signer "
		    "constraints violated" },
		{ GNUTLS_CERT_MISMATCH, "certificate mismatch" },
	};
	gnutls_datum_t out;
	size_t i, used = 0;
	int n;

	dst[0] = '\0';
	for (i = 0; i < sizeof(tls_verify_bits) / sizeof(tls_verify_bits[0]);
	    i++) {
		if ((status & tls_verify_bits[i].bit) == 0 || used >= dstsz)
			continue;
		if (tls_verify_bits[i].text != NULL)
			n = snprintf(dst + used, dstsz - used, "%s%s",
			    used > 0 ? ", " : "", tls_verify_bits[i].text);
		else
			n = snprintf(dst + used, dstsz - used, "%shost name "
			    "mismatch (expected %s)", used > 0 ? ", " : "",
			    s->ctx->host);
		if (n > 0)
			used += (size_t)n;
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

/* The server's fatal alert, with a hint when it means "nothing in
 * common" (typically a server limited to TLS < 1.2 or CBC ciphers). */
static void
tls_alert_text(struct tls_session *s, char *dst, size_t dstsz)
{
	gnutls_alert_description_t a = gnutls_alert_get(s->s);
	const char *name = gnutls_alert_get_name(a);

	switch (a) {
	case GNUTLS_A_HANDSHAKE_FAILURE:
	case GNUTLS_A_PROTOCOL_VERSION:
	case GNUTLS_A_INSUFFICIENT_SECURITY:
		snprintf(dst, dstsz, "the server sent alert '%s' (no TLS "
		    "version or cipher in common: sendq requires TLS 1.2 or "
		    "newer with AEAD ciphers)", name != NULL ? name : "?");
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
	snprintf(s->desc, sizeof(s->desc), "%s %s", ver != NULL ? ver : "?",
	    cipher != NULL ? cipher : "?");
	if (s->ctx->trust == CONFIG_TRUST_INSECURE)
		snprintf(s->verify, sizeof(s->verify),
		    "insecure (not verified)");
	else
		snprintf(s->verify, sizeof(s->verify), "ok");
	/* Resumption (later): save gnutls_session_get_data2() in ctx. */
}

enum tls_status
tls_handshake(struct tls_session *s, struct sq_err *err)
{
	char reason[sizeof(s->verify)];
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
			continue;	/* warning alert: go on */
		s->failed = 1;
		if (ret == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			tls_verify_reason(s,
			    gnutls_session_get_verify_cert_status(s->s),
			    reason, sizeof(reason));
			snprintf(s->verify, sizeof(s->verify), "%s", reason);
			sq_err_set(err, SQ_EVERIFY, "certificate verification "
			    "failed: %s", reason);
		} else if (ret == GNUTLS_E_NO_CERTIFICATE_FOUND) {
			snprintf(s->verify, sizeof(s->verify), "server sent "
			    "no certificate");
			sq_err_set(err, SQ_EVERIFY, "certificate verification "
			    "failed: server sent no certificate");
		} else if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
			tls_alert_text(s, reason, sizeof(reason));
			sq_err_set(err, SQ_ETLS, "TLS handshake failed: %s",
			    reason);
		} else if (ret == GNUTLS_E_PREMATURE_TERMINATION ||
		    ret == GNUTLS_E_PULL_ERROR || ret == GNUTLS_E_PUSH_ERROR) {
			sq_err_set(err, SQ_ETLS, "TLS handshake failed: "
			    "connection closed by the server (%s)",
			    gnutls_strerror(ret));
		} else if (ret == GNUTLS_E_UNEXPECTED_PACKET ||
		    ret == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
		    ret == GNUTLS_E_UNSUPPORTED_VERSION_PACKET) {
			sq_err_set(err, SQ_ETLS, "TLS handshake failed: %s "
			    "(does the server speak TLS on this port? for "
			    "plain SMTP with STARTTLS use tls = starttls)",
			    gnutls_strerror(ret));
		} else {
			sq_err_set(err, SQ_ETLS, "TLS handshake failed: %s",
			    gnutls_strerror(ret));
		}
		return TLS_ERROR;
	}
	s->done = 1;
	tls_session_describe(s);
	return TLS_DONE;
}

enum tls_status
tls_read(struct tls_session *s, void *data, size_t len, size_t *n,
    struct sq_err *err)
{
	ssize_t ret;

	*n = 0;
	for (;;) {
		ret = gnutls_record_recv(s->s, data, len);
		if (ret > 0) {
			*n = (size_t)ret;
			return TLS_DONE;
		}
		if (ret == 0 || ret == GNUTLS_E_PREMATURE_TERMINATION)
			return TLS_EOF;
		if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED)
			return tls_again(s);
		if (ret == GNUTLS_E_REHANDSHAKE)
			continue;	/* refused renegotiation: ignore */
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
				sq_err_set(err, SQ_ETLS, "TLS write retried "
				    "with less data (bug)");
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
	/* Non-blocking: one attempt, an incomplete alert is dropped. */
	(void)gnutls_bye(s->s, GNUTLS_SHUT_WR);
}

size_t
tls_pending(struct tls_session *s)
{
	if (s == NULL || !s->done)
		return 0;
	return gnutls_record_check_pending(s->s);
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
