/*
 * sasl.c - client side of PLAIN, LOGIN, SCRAM-SHA-256, XOAUTH2 and
 * OAUTHBEARER.
 *
 * How it works.  Each exchange is a small state machine: START, then
 * SENT once the initial response (or, for LOGIN, the bare AUTH command)
 * went out; LOGIN counts which of user and password it has sent; SCRAM
 * goes SENT -> FINAL (client-final sent, expected server signature kept)
 * -> VERIFIED (server signature matched); the OAuth mechanisms go SENT ->
 * OAUTH_ERROR when the server answers with an error challenge.  FAILED is
 * terminal.  A response is assembled in a wiped scratch buffer of fixed
 * size (so no realloc leaves an unwiped copy of a secret), base64 encoded
 * into the caller's buffer, and the scratch wiped.
 *
 * SCRAM-SHA-256 (RFC 5802/7677): client-first = "n,," "n=USER,r=NONCE";
 * server-first = "r=NONCE+SERVERPART,s=SALT,i=ITER[,ext]" (order fixed
 * by the RFC grammar; a mandatory "m=" extension is refused);
 * SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iter), ClientKey =
 * HMAC(SaltedPassword, "Client Key"), StoredKey = SHA-256(ClientKey),
 * AuthMessage = client-first-bare "," server-first ","
 * client-final-without-proof, ClientProof = ClientKey XOR
 * HMAC(StoredKey, AuthMessage), ServerSignature = HMAC(HMAC(SaltedPassword,
 * "Server Key"), AuthMessage), compared in constant time with v=.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "sasl.h"
#include "smtp_wire.h"

#define SASL_SHA256_LEN 32
#define SASL_SALT_MAX   256 /* decoded bytes */

enum sasl_state {
	SASL_ST_START,
	SASL_ST_SENT,        /* initial response (or AUTH LOGIN) sent */
	SASL_ST_FINAL,       /* SCRAM client-final sent */
	SASL_ST_VERIFIED,    /* SCRAM server signature checked */
	SASL_ST_OAUTH_ERROR, /* error challenge acknowledged */
	SASL_ST_FAILED,
};

struct sasl {
	enum sasl_mech  mech;
	enum sasl_state st;
	char           *user;
	size_t          user_len;
	char           *secret;
	size_t          secret_len;
	char            nonce[SASL_NONCE_MAX + 1];
	int             login_user_sent;
	int             login_pass_sent;
	char           *scram_first_bare; /* n=USER,r=NONCE */
	unsigned char   scram_server_sig[SASL_SHA256_LEN];
	unsigned char  *scratch; /* SASL_MSG_MAX */
	char            why[256];
};

static int sasl_fail(struct sasl *s, const char *fmt, ...) SQ_PRINTF(2, 3);

static int
sasl_fail(struct sasl *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	sasl_mask(s->why, s->secret);
	s->st = SASL_ST_FAILED;
	return SASL_ERROR;
}

void
sasl_wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		gnutls_memset(p, 0, n);
}

void
sasl_buf_init(struct buf *b)
{
	buf_init(b, SASL_B64_MAX);
	b->data = xcalloc(1, SASL_B64_MAX);
	b->cap = SASL_B64_MAX;
}

void
sasl_buf_wipe(struct buf *b)
{
	sasl_wipe(b->data, b->cap);
	buf_fini(b);
}

/* Base64. */

static const char sasl_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int
sasl_b64_encode(const void *in, size_t len, struct buf *out)
{
	const unsigned char *s = in;
	char                 q[4];
	size_t               i;
	uint32_t             v;

	if (len > (SIZE_MAX / 4) * 3 - 3 || 4 * ((len + 2) / 3) > buf_room(out))
		return SQ_ELIMIT;
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		q[0] = sasl_b64_alphabet[v >> 18];
		q[1] = sasl_b64_alphabet[(v >> 12) & 63];
		q[2] = sasl_b64_alphabet[(v >> 6) & 63];
		q[3] = sasl_b64_alphabet[v & 63];
		(void)buf_append(out, q, 4);
	}
	if (i < len) {
		v = (uint32_t)s[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		q[0] = sasl_b64_alphabet[v >> 18];
		q[1] = sasl_b64_alphabet[(v >> 12) & 63];
		q[2] = i + 1 < len ? sasl_b64_alphabet[(v >> 6) & 63] : '=';
		q[3] = '=';
		(void)buf_append(out, q, 4);
	}
	sasl_wipe(q, sizeof(q));
	return 0;
}

/* Names and bits. */

const char *
sasl_mech_name(enum sasl_mech mech)
{
	switch (mech) {
	case SASL_MECH_PLAIN:
		return "PLAIN";
	case SASL_MECH_LOGIN:
		return "LOGIN";
	case SASL_MECH_SCRAM_SHA_256:
		return "SCRAM-SHA-256";
	case SASL_MECH_XOAUTH2:
		return "XOAUTH2";
	case SASL_MECH_OAUTHBEARER:
		return "OAUTHBEARER";
	case SASL_MECH_NONE:
	case SASL_MECH_AUTO:
		break;
	}
	return "";
}

unsigned
sasl_mech_bit(enum sasl_mech mech)
{
	switch (mech) {
	case SASL_MECH_PLAIN:
		return SMTP_WIRE_AUTH_PLAIN;
	case SASL_MECH_LOGIN:
		return SMTP_WIRE_AUTH_LOGIN;
	case SASL_MECH_SCRAM_SHA_256:
		return SMTP_WIRE_AUTH_SCRAM_SHA_256;
	case SASL_MECH_XOAUTH2:
		return SMTP_WIRE_AUTH_XOAUTH2;
	case SASL_MECH_OAUTHBEARER:
		return SMTP_WIRE_AUTH_OAUTHBEARER;
	case SASL_MECH_NONE:
	case SASL_MECH_AUTO:
		break;
	}
	return 0;
}

enum sasl_mech
sasl_pick(unsigned server_mechs_mask, int tls_active_or_loopback)
{
	static const enum sasl_mech order[] = { SASL_MECH_SCRAM_SHA_256,
		SASL_MECH_PLAIN, SASL_MECH_LOGIN };
	size_t                      i;

	if (!tls_active_or_loopback)
		return SASL_MECH_NONE;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (server_mechs_mask & sasl_mech_bit(order[i]))
			return order[i];
	return SASL_MECH_NONE;
}

/* Life cycle. */

static int
sasl_has_controls(const char *s, int allow_high)
{
	const unsigned char *u = (const unsigned char *)s;

	for (; *u != '\0'; u++)
		if (*u < 0x20 || *u == 0x7f || (!allow_high && *u > 0x7f))
			return 1;
	return 0;
}

static int
sasl_nonce_ok(const char *n)
{
	size_t i;

	for (i = 0; n[i] != '\0'; i++)
		if (n[i] < 0x21 || n[i] > 0x7e || n[i] == ',')
			return 0;
	return i > 0 && i <= SASL_NONCE_MAX;
}

struct sasl *
sasl_new(enum sasl_mech mech, const char *user, const char *secret,
    const char *nonce, struct sq_err *err)
{
	struct sasl *s;
	int oauth = mech == SASL_MECH_XOAUTH2 || mech == SASL_MECH_OAUTHBEARER;

	if (sasl_mech_bit(mech) == 0) {
		sq_err_set(err, SQ_ECONFIG, "no SASL mechanism chosen");
		return NULL;
	}
	if (user == NULL || user[0] == '\0') {
		sq_err_set(err, SQ_ECONFIG, "AUTH %s needs a user name",
		    sasl_mech_name(mech));
		return NULL;
	}
	if (secret == NULL) {
		sq_err_set(err, SQ_ECONFIG, "AUTH %s needs a %s",
		    sasl_mech_name(mech), oauth ? "token" : "password");
		return NULL;
	}
	if (strlen(user) > SASL_USER_MAX || sasl_has_controls(user, 1)) {
		sq_err_set(err, SQ_ECONFIG,
		    "AUTH %s: the user name is longer than %d bytes or "
		    "contains control characters",
		    sasl_mech_name(mech), SASL_USER_MAX);
		return NULL;
	}
	if (strlen(secret) > SASL_SECRET_MAX ||
	    (oauth && (secret[0] == '\0' || sasl_has_controls(secret, 0)))) {
		sq_err_set(err, SQ_ECONFIG,
		    "AUTH %s: the %s is longer than %d bytes%s",
		    sasl_mech_name(mech), oauth ? "token" : "password",
		    SASL_SECRET_MAX,
		    oauth ? ", empty, or not printable ASCII" : "");
		return NULL;
	}
	if (mech == SASL_MECH_SCRAM_SHA_256 &&
	    (nonce == NULL || !sasl_nonce_ok(nonce))) {
		sq_err_set(err, SQ_ECONFIG,
		    "AUTH SCRAM-SHA-256 needs a client nonce of 1 to %d "
		    "printable characters without ','",
		    SASL_NONCE_MAX);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->mech = mech;
	s->st = SASL_ST_START;
	s->user = xstrdup(user);
	s->user_len = strlen(user);
	s->secret = xstrdup(secret);
	s->secret_len = strlen(secret);
	if (mech == SASL_MECH_SCRAM_SHA_256)
		memcpy(s->nonce, nonce, strlen(nonce) + 1);
	s->scratch = xcalloc(1, SASL_MSG_MAX);
	return s;
}

void
sasl_free(struct sasl *s)
{
	if (s == NULL)
		return;
	sasl_wipe(s->secret, s->secret_len);
	free(s->secret);
	free(s->user);
	if (s->scram_first_bare != NULL) {
		sasl_wipe(s->scram_first_bare, strlen(s->scram_first_bare));
		free(s->scram_first_bare);
	}
	sasl_wipe(s->scratch, SASL_MSG_MAX);
	free(s->scratch);
	sasl_wipe(s, sizeof(*s));
	free(s);
}

enum sasl_mech
sasl_mech(const struct sasl *s)
{
	return s->mech;
}

const char *
sasl_error(const struct sasl *s)
{
	return s->why;
}

/* The scratch buffer as an append-only message under construction. */
struct sasl_msg {
	unsigned char *p;
	size_t         len;
	int            overflow;
};

static void
sasl_msg_add(struct sasl_msg *m, const void *data, size_t n)
{
	if (m->overflow || n > SASL_MSG_MAX - m->len) {
		m->overflow = 1;
		return;
	}
	memcpy(m->p + m->len, data, n);
	m->len += n;
}

static void
sasl_msg_str(struct sasl_msg *m, const char *s)
{
	sasl_msg_add(m, s, strlen(s));
}

/* A saslname (RFC 5802): ',' -> "=2C", '=' -> "=3D". */
static void
sasl_msg_saslname(struct sasl_msg *m, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == ',')
			sasl_msg_str(m, "=2C");
		else if (*s == '=')
			sasl_msg_str(m, "=3D");
		else
			sasl_msg_add(m, s, 1);
	}
}

/* Encode the scratch message into out and wipe it. */
static int
sasl_msg_emit(struct sasl *s, struct sasl_msg *m, struct buf *out, int rc)
{
	int ok = !m->overflow && sasl_b64_encode(m->p, m->len, out) == 0;

	sasl_wipe(m->p, SASL_MSG_MAX);
	m->len = 0;
	if (!ok)
		return sasl_fail(s, "AUTH %s: response too long",
		    sasl_mech_name(s->mech));
	return rc;
}

int
sasl_initial(struct sasl *s, struct buf *out)
{
	struct sasl_msg m = { s->scratch, 0, 0 };

	if (s->st != SASL_ST_START)
		return sasl_fail(s, "AUTH %s: initial response requested twice",
		    sasl_mech_name(s->mech));
	s->st = SASL_ST_SENT;
	switch (s->mech) {
	case SASL_MECH_PLAIN:
		/* authzid (empty) NUL authcid NUL passwd */
		sasl_msg_add(&m, "", 1);
		sasl_msg_add(&m, s->user, s->user_len);
		sasl_msg_add(&m, "", 1);
		sasl_msg_add(&m, s->secret, s->secret_len);
		break;
	case SASL_MECH_LOGIN:
		return 0;
	case SASL_MECH_SCRAM_SHA_256:
		sasl_msg_str(&m, "n=");
		sasl_msg_saslname(&m, s->user);
		sasl_msg_str(&m, ",r=");
		sasl_msg_str(&m, s->nonce);
		if (m.overflow)
			break;
		s->scram_first_bare = xstrndup((const char *)m.p, m.len);
		/* gs2 header: no channel binding, no authzid */
		m.len = 0;
		sasl_msg_str(&m, "n,,");
		sasl_msg_str(&m, s->scram_first_bare);
		break;
	case SASL_MECH_XOAUTH2:
		sasl_msg_str(&m, "user=");
		sasl_msg_add(&m, s->user, s->user_len);
		sasl_msg_str(&m, "\001auth=Bearer ");
		sasl_msg_add(&m, s->secret, s->secret_len);
		sasl_msg_str(&m, "\001\001");
		break;
	case SASL_MECH_OAUTHBEARER:
		sasl_msg_str(&m, "n,a=");
		sasl_msg_saslname(&m, s->user);
		sasl_msg_str(&m, ",\001auth=Bearer ");
		sasl_msg_add(&m, s->secret, s->secret_len);
		sasl_msg_str(&m, "\001\001");
		break;
	case SASL_MECH_NONE:
	case SASL_MECH_AUTO:
		return sasl_fail(s, "no SASL mechanism");
	}
	return sasl_msg_emit(s, &m, out, 1);
}

/* Decode a challenge into the scratch buffer, NUL-terminated. */
static int
sasl_challenge(struct sasl *s, const char *b64, size_t len, size_t *outlen)
{
	int rc;

	*outlen = 0;
	if (len > SASL_CHALLENGE_MAX)
		return sasl_fail(s,
		    "AUTH %s: server challenge longer than %d bytes",
		    sasl_mech_name(s->mech), SASL_CHALLENGE_MAX);
	rc = sq_base64_decode(b64, len, s->scratch, SASL_MSG_MAX - 1, outlen);
	if (rc != 0)
		return sasl_fail(s,
		    "AUTH %s: server challenge is not valid base64",
		    sasl_mech_name(s->mech));
	s->scratch[*outlen] = '\0';
	return 0;
}

static int
sasl_login_step(struct sasl *s, const char *b64, size_t len, struct buf *out)
{
	struct sasl_msg m = { s->scratch, 0, 0 };
	size_t          n;
	int             want_pass;

	if (sasl_challenge(s, b64, len, &n) != 0)
		return SASL_ERROR;
	if (n >= 4 && strncasecmp((char *)s->scratch, "pass", 4) == 0)
		want_pass = 1;
	else if (n >= 4 && strncasecmp((char *)s->scratch, "user", 4) == 0)
		want_pass = 0;
	else
		want_pass = s->login_user_sent;
	sasl_wipe(s->scratch, n);
	if (want_pass ? s->login_pass_sent : s->login_user_sent)
		return sasl_fail(s, "AUTH LOGIN: server asked for the %s twice",
		    want_pass ? "password" : "user name");
	if (want_pass) {
		sasl_msg_add(&m, s->secret, s->secret_len);
		s->login_pass_sent = 1;
	} else {
		sasl_msg_add(&m, s->user, s->user_len);
		s->login_user_sent = 1;
	}
	return sasl_msg_emit(s, &m, out,
	    s->login_user_sent && s->login_pass_sent ? SASL_DONE :
						       SASL_CONTINUE);
}

/* Length of the attribute value at v (up to ',' or end). */
static size_t
sasl_scram_attr(const char *v, const char *end)
{
	const char *c = memchr(v, ',', (size_t)(end - v));

	return c != NULL ? (size_t)(c - v) : (size_t)(end - v);
}

/*
 * server-first (sf, n bytes): "r=NONCE,s=SALT,i=ITER[,ext]".  The nonce
 * must extend ours: *nonce (allocated), the salt decoded into salt
 * (*saltlen bytes), *iter within the limits.  0, or SASL_ERROR from
 * sasl_fail().
 */
static int
sasl_scram_parse(struct sasl *s, const char *sf, size_t n, char **nonce,
    unsigned char salt[SASL_SALT_MAX], size_t *saltlen, unsigned long *iter)
{
	const char *end = sf + n, *v;
	size_t      nlen, slen, vlen, i;

	if (memchr(sf, '\0', n) != NULL)
		return sasl_fail(s,
		    "SCRAM server-first-message contains a NUL");
	if (n >= 2 && memcmp(sf, "m=", 2) == 0)
		return sasl_fail(s,
		    "SCRAM server requires an unsupported extension");
	if (n < 2 || memcmp(sf, "r=", 2) != 0)
		return sasl_fail(s,
		    "SCRAM server-first-message has no nonce (r=)");
	v = sf + 2;
	nlen = sasl_scram_attr(v, end);
	for (i = 0; i < nlen; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			break;
	if (i < nlen || nlen <= strlen(s->nonce) ||
	    memcmp(v, s->nonce, strlen(s->nonce)) != 0)
		return sasl_fail(s, "SCRAM server nonce does not extend ours");
	*nonce = xstrndup(v, nlen);
	v += nlen;
	if (end - v < 3 || memcmp(v, ",s=", 3) != 0)
		return sasl_fail(s,
		    "SCRAM server-first-message has no salt (s=)");
	v += 3;
	slen = sasl_scram_attr(v, end);
	if (sq_base64_decode(v, slen, salt, SASL_SALT_MAX, saltlen) != 0 ||
	    *saltlen == 0)
		return sasl_fail(s,
		    "SCRAM salt (s=) is empty, too long or not base64");
	v += slen;
	if (end - v < 3 || memcmp(v, ",i=", 3) != 0)
		return sasl_fail(s,
		    "SCRAM server-first-message has no iteration count (i=)");
	v += 3;
	vlen = sasl_scram_attr(v, end);
	*iter = 0;
	for (i = 0; i < vlen; i++) {
		if (v[i] < '0' || v[i] > '9' || *iter > SASL_SCRAM_ITER_MAX) {
			*iter = 0;
			break;
		}
		*iter = *iter * 10 + (unsigned long)(v[i] - '0');
	}
	if (vlen == 0 || *iter < SASL_SCRAM_ITER_MIN ||
	    *iter > SASL_SCRAM_ITER_MAX)
		return sasl_fail(s,
		    "SCRAM iteration count (i=) is not a number from %d to %d",
		    SASL_SCRAM_ITER_MIN, SASL_SCRAM_ITER_MAX);
	/* Anything after it is an optional extension: ignored. */
	return 0;
}

/* server-first in scratch (n bytes): answer with client-final. */
static int
sasl_scram_first(struct sasl *s, size_t n, struct buf *out)
{
	unsigned char  salt[SASL_SALT_MAX], salted[SASL_SHA256_LEN];
	unsigned char  ckey[SASL_SHA256_LEN], skey[SASL_SHA256_LEN];
	unsigned char  stored[SASL_SHA256_LEN], csig[SASL_SHA256_LEN];
	unsigned char  proof[SASL_SHA256_LEN];
	const char    *sf = (const char *)s->scratch;
	char          *server_first = NULL, *nonce = NULL;
	struct buf     fin, am;
	gnutls_datum_t key, sd;
	size_t         saltlen = 0, i;
	unsigned long  iter = 0;
	int            rc = SASL_ERROR;

	buf_init(&fin, SASL_MSG_MAX);
	buf_init(&am, 3 * SASL_MSG_MAX);
	if (sasl_scram_parse(s, sf, n, &nonce, salt, &saltlen, &iter) != 0)
		goto out;
	server_first = xstrndup(sf, n);

	/* client-final-message-without-proof, and AuthMessage. */
	if (buf_append_str(&fin, "c=biws,r=") != 0 ||
	    buf_append_str(&fin, nonce) != 0 ||
	    buf_append_str(&am, s->scram_first_bare) != 0 ||
	    buf_append_str(&am, ",") != 0 ||
	    buf_append_str(&am, server_first) != 0 ||
	    buf_append_str(&am, ",") != 0 ||
	    buf_append(&am, fin.data, fin.len) != 0) {
		sasl_fail(s, "SCRAM message too long");
		goto out;
	}

	key.data = (unsigned char *)s->secret;
	key.size = (unsigned)s->secret_len;
	sd.data = salt;
	sd.size = (unsigned)saltlen;
	if (gnutls_pbkdf2(GNUTLS_MAC_SHA256, &key, &sd, (unsigned)iter, salted,
		sizeof(salted)) != 0 ||
	    gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, sizeof(salted),
		"Client Key", 10, ckey) != 0 ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, ckey, sizeof(ckey), stored) !=
		0 ||
	    gnutls_hmac_fast(GNUTLS_MAC_SHA256, stored, sizeof(stored), am.data,
		am.len, csig) != 0 ||
	    gnutls_hmac_fast(GNUTLS_MAC_SHA256, salted, sizeof(salted),
		"Server Key", 10, skey) != 0 ||
	    gnutls_hmac_fast(GNUTLS_MAC_SHA256, skey, sizeof(skey), am.data,
		am.len, s->scram_server_sig) != 0) {
		sasl_fail(s, "SCRAM computation failed (GnuTLS)");
		goto out;
	}
	for (i = 0; i < sizeof(proof); i++)
		proof[i] = ckey[i] ^ csig[i];
	if (buf_append_str(&fin, ",p=") != 0 ||
	    sasl_b64_encode(proof, sizeof(proof), &fin) != 0 ||
	    sasl_b64_encode(fin.data, fin.len, out) != 0) {
		sasl_fail(s, "SCRAM client-final-message too long");
		goto out;
	}
	s->st = SASL_ST_FINAL;
	rc = SASL_CONTINUE;
out:
	sasl_wipe(salted, sizeof(salted));
	sasl_wipe(ckey, sizeof(ckey));
	sasl_wipe(skey, sizeof(skey));
	sasl_wipe(stored, sizeof(stored));
	sasl_wipe(csig, sizeof(csig));
	sasl_wipe(proof, sizeof(proof));
	sasl_wipe(s->scratch, SASL_MSG_MAX);
	sasl_wipe(fin.data, fin.cap);
	buf_fini(&fin);
	buf_fini(&am);
	free(server_first);
	free(nonce);
	return rc;
}

/* server-final in scratch (n bytes): check v=, answer with "". */
static int
sasl_scram_final(struct sasl *s, size_t n)
{
	char          text[128];
	unsigned char sig[64];
	const char   *sf = (const char *)s->scratch;
	size_t        vlen, siglen;

	if (n >= 2 && memcmp(sf, "e=", 2) == 0) {
		vlen = sasl_scram_attr(sf + 2, sf + n);
		sq_printable(text, sizeof(text), sf + 2, vlen);
		return sasl_fail(s, "SCRAM server reports an error: %s", text);
	}
	if (n < 2 || memcmp(sf, "v=", 2) != 0)
		return sasl_fail(s,
		    "SCRAM server-final-message has no server signature (v=)");
	vlen = sasl_scram_attr(sf + 2, sf + n);
	if (sq_base64_decode(sf + 2, vlen, sig, sizeof(sig), &siglen) != 0 ||
	    siglen != SASL_SHA256_LEN)
		return sasl_fail(s,
		    "SCRAM server signature (v=) is not a base64 SHA-256 "
		    "value");
	if (gnutls_memcmp(sig, s->scram_server_sig, SASL_SHA256_LEN) != 0)
		return sasl_fail(s,
		    "SCRAM server signature mismatch: the server does not know "
		    "the password (not the server it claims to be)");
	s->st = SASL_ST_VERIFIED;
	return SASL_DONE;
}

int
sasl_step(struct sasl *s, const char *challenge_b64, size_t len,
    struct buf *out)
{
	size_t n;
	int    rc;

	switch (s->st) {
	case SASL_ST_START:
		return sasl_fail(s,
		    "AUTH %s: challenge before the initial response",
		    sasl_mech_name(s->mech));
	case SASL_ST_FAILED:
		return SASL_ERROR;
	case SASL_ST_SENT:
	case SASL_ST_FINAL:
		break;
	case SASL_ST_VERIFIED:
	case SASL_ST_OAUTH_ERROR:
		return sasl_fail(s,
		    "AUTH %s: unexpected challenge after the last step",
		    sasl_mech_name(s->mech));
	}
	switch (s->mech) {
	case SASL_MECH_LOGIN:
		return sasl_login_step(s, challenge_b64, len, out);
	case SASL_MECH_SCRAM_SHA_256:
		if (sasl_challenge(s, challenge_b64, len, &n) != 0)
			return SASL_ERROR;
		if (s->st == SASL_ST_SENT)
			return sasl_scram_first(s, n, out);
		rc = sasl_scram_final(s, n);
		sasl_wipe(s->scratch, SASL_MSG_MAX);
		return rc;
	case SASL_MECH_XOAUTH2:
	case SASL_MECH_OAUTHBEARER:
		/* An error challenge (JSON status): acknowledge it with an
		 * empty response; the server then sends its final 5xx. */
		if (sasl_challenge(s, challenge_b64, len, &n) != 0)
			return SASL_ERROR;
		s->st = SASL_ST_OAUTH_ERROR;
		return SASL_DONE;
	case SASL_MECH_PLAIN:
		return sasl_fail(s,
		    "AUTH PLAIN: unexpected challenge after the credentials");
	case SASL_MECH_NONE:
	case SASL_MECH_AUTO:
		break;
	}
	return sasl_fail(s, "no SASL mechanism");
}

int
sasl_success(struct sasl *s)
{
	switch (s->mech) {
	case SASL_MECH_PLAIN:
	case SASL_MECH_XOAUTH2:
	case SASL_MECH_OAUTHBEARER:
		if (s->st == SASL_ST_SENT || s->st == SASL_ST_OAUTH_ERROR)
			return SASL_DONE;
		break;
	case SASL_MECH_LOGIN:
		if (s->st == SASL_ST_SENT && s->login_pass_sent)
			return SASL_DONE;
		break;
	case SASL_MECH_SCRAM_SHA_256:
		if (s->st == SASL_ST_VERIFIED)
			return SASL_DONE;
		if (s->st == SASL_ST_FINAL)
			return sasl_fail(s,
			    "SCRAM server accepted the authentication without "
			    "proving it knows the password (no server "
			    "signature)");
		break;
	case SASL_MECH_NONE:
	case SASL_MECH_AUTO:
		break;
	}
	if (s->st == SASL_ST_FAILED)
		return SASL_ERROR;
	return sasl_fail(s,
	    "AUTH %s: server accepted before the exchange was complete",
	    sasl_mech_name(s->mech));
}

/* Redaction. */

static int
sasl_b64_char(char c)
{
	return sq_base64_value(c) >= 0 || c == '=';
}

void
sasl_mask(char *text, const char *secret)
{
	size_t n = secret != NULL ? strlen(secret) : 0;
	char  *hit;

	if (n < 4)
		return;
	while ((hit = strstr(text, secret)) != NULL)
		memset(hit, '*', n);
}

void
sasl_redact(const struct sasl *s, char *text)
{
	char  *w;
	size_t i, len;
	int    strong;

	if (s != NULL)
		sasl_mask(text, s->secret);
	for (w = text; *w != '\0'; w += len) {
		if (!sasl_b64_char(*w)) {
			len = 1;
			continue;
		}
		strong = 0;
		for (len = 0; sasl_b64_char(w[len]); len++)
			if ((w[len] >= '0' && w[len] <= '9') || w[len] == '+' ||
			    w[len] == '/' || w[len] == '=' ||
			    (len > 0 && w[len] >= 'A' && w[len] <= 'Z'))
				strong = 1;
		if (len >= 12 && strong)
			for (i = 0; i < len; i++)
				w[i] = '*';
	}
}
