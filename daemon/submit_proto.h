/*
 * submit_proto.h - the framing of the control socket's streaming
 * "submit" request (the exchange is described in control.h), and the
 * check of the envelope a client sends with it.
 *
 * A submission is a sequence of frames, each a header line of ASCII
 * ending in LF, some followed by a payload of exactly the announced
 * length:
 *
 *   submit ENVLEN LF   then ENVLEN bytes of envelope text (envelope.h),
 *                      1 <= ENVLEN <= SUBMIT_PROTO_ENV_MAX; first frame
 *   data LEN LF        then LEN bytes of the message,
 *                      1 <= LEN <= SUBMIT_PROTO_CHUNK_MAX
 *   end LF             the message is complete: commit it
 *
 * Numbers are decimal digits without sign or leading zeros.  Nothing
 * else is a frame: no CR, no extra blanks, no other words.  A header line
 * is at most SUBMIT_PROTO_LINE_MAX bytes, LF included, so a reader that
 * holds SUBMIT_PROTO_LINE_MAX + SUBMIT_PROTO_CHUNK_MAX bytes always has
 * room for one whole frame: that is the bound on what the daemon buffers
 * per client.
 *
 * Owns: the frame grammar and its limits; the rules an envelope sent by
 * a client must obey (submit_proto_check_envelope).
 * May call: envelope, mailmsg, util.  Pure: no I/O, no clock; never
 * reads past the length passed in.
 *
 * DIAGNOSTICS: SQ_EPARSE with one line in err saying what is wrong,
 * input made printable.
 */
#ifndef SENDQ_SUBMIT_PROTO_H
#define SENDQ_SUBMIT_PROTO_H

#include <stddef.h>

#include "envelope.h"
#include "util.h"

#define SUBMIT_PROTO_LINE_MAX  32             /* header line, LF included */
#define SUBMIT_PROTO_CHUNK_MAX (64u * 1024)   /* payload of one data frame */
#define SUBMIT_PROTO_ENV_MAX   (1024u * 1024) /* envelope text */

enum submit_proto_frame {
	SUBMIT_PROTO_SUBMIT, /* "submit ENVLEN": envelope follows */
	SUBMIT_PROTO_DATA,   /* "data LEN": message bytes follow */
	SUBMIT_PROTO_END,    /* "end": commit */
};

struct submit_proto_hdr {
	enum submit_proto_frame type;
	size_t                  hdr_len; /* bytes of the header line,
						 * LF included */
	size_t                  len;     /* payload bytes that follow
						 * (0 for end) */
};

/*
 * Parse the frame header line at the start of buf[0..len).  Returns 1 and
 * fills *h when a whole line is there; 0 when more bytes are needed (no
 * LF yet and fewer than SUBMIT_PROTO_LINE_MAX bytes); SQ_EPARSE with err
 * for anything that is not a frame header (too long without LF
 * included).  Does not check which frame may come when: that is the
 * caller's state.  Never blocks.
 */
int submit_proto_parse(const char *buf, size_t len, struct submit_proto_hdr *h,
    struct sq_err *err);

/*
 * Write the header line of a frame (type, payload length len) into out
 * (at least SUBMIT_PROTO_LINE_MAX bytes), NUL-terminated.  Returns its
 * length without the NUL, or SQ_ELIMIT when len is out of range for the
 * type.
 */
int submit_proto_format(char *out, size_t outsz, enum submit_proto_frame type,
    size_t len);

/*
 * Check an envelope a client sent: a sender ("" or a valid address), 1
 * to max_rcpts valid recipients (max_rcpts 0: no limit), and no delivery
 * state (attempts, next attempt, last error, held, warned): a new
 * message has none, so a client that sends one is refused rather than
 * having it silently dropped.  id, uid and created are not checked: the
 * daemon overwrites them.  Returns 0 or SQ_EPARSE with err.
 */
int submit_proto_check_envelope(const struct envelope *env, size_t max_rcpts,
    struct sq_err *err);

#endif
