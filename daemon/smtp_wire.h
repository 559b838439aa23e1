/*
 * smtp_wire.h - SMTP on the wire, without I/O: the incremental reply
 * parser, the EHLO capability parser and the streaming DATA encoder
 * (line endings normalised to CRLF, dot-stuffing, terminating ".").
 * Shared by the outbound client (smtp_proto) and later the intake.
 *
 * Owns: struct smtp_wire_parser (one partial line in a fixed array, the
 * text of the reply being assembled in a bounded buffer),
 * struct smtp_wire_caps, struct smtp_wire_enc.
 * May call: buf, util.  Pure: no I/O, no clock, no randomness.
 *
 * Line endings in replies: CRLF is the standard; a bare LF is tolerated
 * as a line end (lax servers), a bare CR is never a line end (it stays in
 * the text, where it is made printable as '?').
 *
 * DIAGNOSTICS: smtp_wire_parse() returns SQ_EPROTO and a reason in
 * struct sq_err for a malformed or oversized reply; the error is sticky.
 * The caps parser and the encoder cannot fail.
 */
#ifndef SENDQ_SMTP_WIRE_H
#define SENDQ_SMTP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "util.h"

/* One reply line, its line break included.  RFC 5321 says 512, real
 * servers send longer lines. */
#define SMTP_WIRE_LINE_MAX 4096
/* One whole (multi-line) reply, line breaks included. */
#define SMTP_WIRE_REPLY_MAX 65536

/*
 * A complete reply.  text holds the text of every line (what follows
 * "250-" / "250 "), made printable with sq_printable(), lines separated
 * by '\n', NUL-terminated; it keeps an enhanced status code that starts a
 * line.  enhanced is that code ("2.1.5") when the first line's text
 * starts with one whose class equals the reply's first digit, else "".
 */
struct smtp_wire_reply {
	int         code; /* 200..599 */
	char        enhanced[16];
	const char *text;     /* owned by the parser */
	size_t      text_len; /* excluding the NUL */
	size_t      lines;    /* >= 1 */
};

struct smtp_wire_parser {
	char       line[SMTP_WIRE_LINE_MAX]; /* partial line */
	size_t     line_len;
	struct buf text; /* text of the current reply */
	int        code; /* of its first line, 0 = none yet */
	char       enhanced[16];
	size_t     lines;
	size_t     reply_bytes;
	int        done;   /* a reply was returned; reset next */
	int        failed; /* sticky protocol error */
	char       why[128];
};

void smtp_wire_parser_init(struct smtp_wire_parser *wp);
void smtp_wire_parser_fini(struct smtp_wire_parser *wp);

/*
 * Feed len bytes of server output.  Consumes bytes up to and including
 * the end of the first complete reply, or all of them.  *used is set to
 * the number of bytes consumed.
 * Returns 1 when a reply is complete (*reply filled; its text stays
 * valid until the next call or fini), 0 when all len bytes were taken
 * and more are needed, SQ_EPROTO (err filled) on a protocol error: a
 * line longer than SMTP_WIRE_LINE_MAX, a reply longer than
 * SMTP_WIRE_REPLY_MAX, a code that is not three digits starting with
 * 2..5, a separator other than '-' or ' ' (a bare "250" is accepted), or
 * codes that differ between lines of one reply.  After an error every
 * call fails the same way.  Never blocks.
 */
int smtp_wire_parse(struct smtp_wire_parser *wp, const void *data, size_t len,
    size_t *used, struct smtp_wire_reply *reply, struct sq_err *err);
/* Non-zero when part of a reply has been fed but not completed. */
int smtp_wire_parser_partial(const struct smtp_wire_parser *wp);

/* AUTH mechanisms we know (bit set in smtp_wire_caps.auth_mechs). */
#define SMTP_WIRE_AUTH_PLAIN         0x01
#define SMTP_WIRE_AUTH_LOGIN         0x02
#define SMTP_WIRE_AUTH_CRAM_MD5      0x04
#define SMTP_WIRE_AUTH_SCRAM_SHA_256 0x08
#define SMTP_WIRE_AUTH_XOAUTH2       0x10
#define SMTP_WIRE_AUTH_OAUTHBEARER   0x20

/* What an EHLO reply offered.  All zero = nothing (also after HELO). */
struct smtp_wire_caps {
	int      starttls;
	int      pipelining;
	int      eightbitmime;
	int      smtputf8;
	int      enhancedstatuscodes;
	int      chunking;
	int      size;       /* SIZE offered */
	uint64_t size_max;   /* its limit, 0 = none given */
	int      auth;       /* AUTH offered */
	unsigned auth_mechs; /* SMTP_WIRE_AUTH_* */
	int      dsn;        /* DSN offered (RFC 3461) */
};

/*
 * Fill caps from the text of a 2xx EHLO reply (first line: the server's
 * greeting, skipped; then one keyword and its parameters per line).
 * Keywords and mechanisms are case-insensitive, unknown ones ignored;
 * "AUTH=MECH ..." (old syntax) counts as AUTH.  A SIZE parameter that is
 * not a number is treated as "no limit given".
 */
void
smtp_wire_caps_parse(struct smtp_wire_caps *caps, const char *text, size_t len);

/*
 * The DATA encoder.  Message bytes in any chunking become wire bytes:
 * CRLF, bare LF and bare CR each become CRLF (a CR ending one chunk and
 * an LF starting the next are one CRLF), a line starting with '.' gets
 * another '.', and with last set a missing final line break is added and
 * ".\r\n" is appended; the encoder is then ready for the next message.
 * It also watches for what must never reach a server (RFC 5322 2.1.1):
 * a NUL byte or a line longer than SMTP_WIRE_TEXT_MAX octets (line break
 * and the stuffed dot not counted, RFC 5321 4.5.3.1.6) sets bad (the
 * first one found, with its line number) and keeps it until
 * smtp_wire_enc_init(); the caller must then not end the message.
 */
#define SMTP_WIRE_TEXT_MAX 998
#define SMTP_WIRE_ENC_NUL  1
#define SMTP_WIRE_ENC_LONG 2

struct smtp_wire_enc {
	int                bol;      /* at the beginning of a line */
	int                skip_lf;  /* a CR was just turned into CRLF */
	size_t             col;      /* octets in the current line */
	unsigned long long line;     /* current line, 1-based */
	int                bad;      /* SMTP_WIRE_ENC_NUL/LONG, or 0 */
	unsigned long long bad_line; /* where bad was found */
};

/* Worst-case output size for n input bytes (n <= SIZE_MAX / 4). */
#define SMTP_WIRE_ENC_BOUND(n) (2 * (size_t)(n) + 5)

void smtp_wire_enc_init(struct smtp_wire_enc *enc);
/* Encode len bytes into out, which has room for SMTP_WIRE_ENC_BOUND(len).
 * Returns the number of bytes written. */
size_t smtp_wire_enc(struct smtp_wire_enc *enc, const void *in, size_t len,
    int last, char *out);

#endif
