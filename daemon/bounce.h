/*
 * bounce.h - delivery status notifications (RFC 3464, RFC 3462
 * multipart/report) for recipients that failed for good or are delayed.
 *
 * The DSN is a complete RFC 5322 message:
 *   From: "Mail Delivery System" <MAILER-DAEMON@reporting_host>
 *   To: <the recipient of the DSN>, Subject, Date, Message-ID,
 *   Auto-Submitted: auto-replied, MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type=delivery-status;
 *     boundary="..."
 *   part 1: text/plain, a human explanation naming each recipient and the
 *           server's reply
 *   part 2: message/delivery-status: per-message fields
 *           (Original-Envelope-Id: ENVID when the sender gave one,
 *           Reporting-MTA: dns; HOST, X-Sendq-Queue-ID, Arrival-Date)
 *           and, per recipient, Original-Recipient: TYPE; ADDR (when
 *           the sender gave ORCPT), Final-Recipient: rfc822; ADDR,
 *           Action: failed|delayed,
 *           Status: X.Y.Z, Remote-MTA: dns; HOST (when known),
 *           Diagnostic-Code: smtp; REPLY (when known), Last-Attempt-Date
 *   part 3: text/rfc822-headers: the original message's header section
 * Lines end in LF (the spool's convention; the wire encoder makes CRLF).
 * Every value from outside is made printable and folded to stay within
 * line limits; the boundary is checked not to occur in the content.
 *
 * Owns: the DSN format.
 * May call: mailmsg (the date and added-fields helpers), buf, util.  Pure:
 * time and the boundary nonce are passed in.
 */
#ifndef SENDQ_BOUNCE_H
#define SENDQ_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum bounce_action {
	BOUNCE_FAILED,
	BOUNCE_DELAYED,
};

struct bounce_rcpt {
	const char *addr;
	const char *status;     /* "5.1.1"; NULL: derived from reply
					 * (its enhanced code, else 5.0.0 /
					 * 4.0.0 from the reply code) */
	const char *reply;      /* the server's reply or a local
					 * reason ("message expired after
					 * 5 days"), may be NULL */
	const char *remote_mta; /* smarthost host name, may be NULL */
	const char *orcpt;      /* ORCPT= as received, "type;xtext"
					 * (RFC 3461), or NULL: reported
					 * xtext-decoded as Original-
					 * Recipient: type; address */
};

struct bounce_params {
	const char               *reporting_host; /* our host name */
	const char               *to;             /* who gets the DSN */
	const char               *queue_id;       /* of the original message */
	const char               *orig_sender;    /* original envelope sender */
	int64_t                   arrival;        /* original acceptance time */
	int64_t                   now;            /* time of this report */
	int64_t                   retry_until;    /* BOUNCE_DELAYED: when the
						 * attempts end (arrival +
						 * max_age), for the text and
						 * Will-Retry-Until; 0:
						 * unknown, not shown */
	enum bounce_action        action;
	const struct bounce_rcpt *rcpts;
	size_t                    n_rcpts;
	const char               *orig_headers; /* the original header section
						 * (bytes before the blank
						 * line), may be NULL */
	size_t                    orig_headers_len;
	const char               *nonce; /* unique text for boundary
						 * and Message-ID */
	const char               *envid; /* ENVID= as received (xtext,
						 * RFC 3461), or NULL: reported
						 * decoded as Original-
						 * Envelope-Id */
};

/* Append the DSN message to out.  Returns 0, or SQ_ELIMIT when out's
 * maximum is too small (nothing useful was written then). */
int bounce_build(const struct bounce_params *p, struct buf *out);

#endif
