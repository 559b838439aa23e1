/*
 * mailmsg.h - just enough RFC 5322 for a sendmail-compatible injector:
 * find the header block of a submitted message and its fields, read the
 * addresses out of To/Cc/Bcc for `sendq -t`, check an envelope address,
 * and drop Bcc fields before the message is stored.
 *
 * Owns: the header-line classifier, the field scanner, the address-list
 * parser and the envelope address rules (limits below).
 * May call: util.  Pure: no I/O, no clock; every function works on the
 * bytes it is given and never reads past the length passed in.  Input may
 * use LF or CRLF line endings; nothing here rewrites line endings.
 *
 * DIAGNOSTICS: mailmsg_addr_list_parse() and mailmsg_addr_valid() fail
 * with SQ_EPARSE and a reason in err naming the offending address (made
 * printable).  The scanner never fails: whatever is not a header line is
 * body.
 */
#ifndef SENDQ_MAILMSG_H
#define SENDQ_MAILMSG_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MAILMSG_HEADER_MAX \
	(1024 * 1024)         /* header block the CLI
						 * buffers */
#define MAILMSG_LOCAL_MAX 64  /* local part of an address */
#define MAILMSG_ADDR_MAX  254 /* whole address */

/* What one line (its bytes including the LF, if any) is, read in the
 * header block. */
enum mailmsg_line {
	MAILMSG_LINE_FIELD, /* "Name: value": a new header field */
	MAILMSG_LINE_CONT,  /* starts with SP or HTAB: continues the
				 * previous field (folding) */
	MAILMSG_LINE_BLANK, /* "\n" or "\r\n": the header ends here */
	MAILMSG_LINE_OTHER, /* anything else: the body starts here */
};

/*
 * Classify one line.  A field name is one or more printable ASCII
 * characters other than ':' (RFC 5322 ftext), optionally followed by
 * spaces or tabs (obsolete syntax), then ':'.  A zero-length line is
 * MAILMSG_LINE_OTHER.
 */
enum mailmsg_line mailmsg_line_kind(const char *line, size_t len);

/* One header field; offsets are into the scanned message. */
struct mailmsg_field {
	size_t off;       /* first byte of the name */
	size_t len;       /* the whole field: continuation lines and
				 * line endings included */
	size_t name_len;  /* the name, without trailing blanks */
	size_t value_off; /* first byte after the colon */
	size_t value_len; /* up to the end of the field, final line
				 * ending excluded (inner folds kept) */
};

struct mailmsg_header {
	struct mailmsg_field *fields; /* in message order */
	size_t                n_fields;
	size_t header_len; /* bytes of fields: msg[0..header_len) */
	size_t body_off;   /* where the body starts: after the blank
				 * line if there is one, else header_len */
	int    has_blank;  /* the header block ended with a blank line */
	int    crlf;       /* the first line ends in CRLF */
};

/*
 * Scan the header block at the start of msg[0..len): fields until the
 * first blank line, the first line that is neither a field nor a
 * continuation, or the end of the input.  A message that starts with a
 * non-header line has no fields (header_len 0).  Fills *h (release with
 * mailmsg_header_fini).  Never fails.
 */
void mailmsg_scan(const char *msg, size_t len, struct mailmsg_header *h);
void mailmsg_header_fini(struct mailmsg_header *h);

/*
 * Index of the first field at or after index from whose name equals name
 * (ASCII case-insensitive), or -1.
 */
long mailmsg_find(const struct mailmsg_header *h, const char *msg,
    const char *name, size_t from);

/*
 * Remove every field named name (case-insensitive, continuation lines
 * included) from the header block at the start of msg[0..len), moving
 * the rest of the message up.  Returns the new length.
 */
size_t mailmsg_remove_fields(char *msg, size_t len, const char *name);

/* Addresses collected from address lists, each a NUL-terminated
 * addr-spec ("local@domain", or just "local" when unqualified). */
struct mailmsg_addr_list {
	char **addrs;
	size_t n;
};

/*
 * Parse an RFC 5322 address-list (a To/Cc/Bcc value, or a recipient
 * argument) and append its addr-specs to l: display names, quoted strings,
 * comments, angle addresses (source routes dropped), groups (an empty
 * group such as "undisclosed-recipients:;" gives nothing), empty list
 * elements and folding are handled.  Quoted local parts are kept quoted.
 * Returns 0, or SQ_EPARSE with err (l is then unchanged).  The addresses
 * are not validated: see mailmsg_addr_valid().
 */
int mailmsg_addr_list_parse(struct mailmsg_addr_list *l, const char *s,
    size_t len, struct sq_err *err);
/* Free the addresses; the list is empty and reusable afterwards. */
void mailmsg_addr_list_fini(struct mailmsg_addr_list *l);

#define MAILMSG_ADDR_UNQUALIFIED 0x01 /* a bare local part is OK */

#define MAILMSG_HOST_MAX 253 /* a host name, in characters */
#define MAILMSG_HOST_UTF8 \
	0x01                      /* 8-bit bytes in labels (U-labels,
					 * RFC 6531) */
#define MAILMSG_HOST_LITERAL 0x02 /* or an address literal */

/*
 * The one host-name rule (config, intake, smtp_proto all use it): is
 * s[0..len) a host name (RFC 5321 Domain, RFC 1123 2.1): dot-separated
 * labels of 1 to 63 ASCII letters, digits and '-' (not first or last in a
 * label; no '_'), at most MAILMSG_HOST_MAX characters, no empty label (so
 * no trailing dot), the last label not all digits (that is an address,
 * RFC 3696 2).  With MAILMSG_HOST_UTF8 8-bit bytes count as letters; with
 * MAILMSG_HOST_LITERAL an address literal (RFC 5321 4.1.3) is accepted
 * too: [IPv4] or [IPv6:IPv6] (no other tag is registered).  Returns 1 or 0.
 */
int mailmsg_host_valid(const char *s, size_t len, int flags);

/*
 * The one envelope address rule (config, intake, smtp_proto all use it):
 * can addr be used as an SMTP envelope address: local@domain
 * where local is a dot-atom or a quoted string (inside quotes anything
 * printable but '<' and '>'; outside, atext, dots between atoms, and 8-bit
 * bytes for UTF-8) of at most MAILMSG_LOCAL_MAX bytes, and domain passes
 * mailmsg_host_valid() with MAILMSG_HOST_UTF8 | MAILMSG_HOST_LITERAL;
 * at most MAILMSG_ADDR_MAX bytes in all.  No spaces, controls or angle brackets.  With
 * MAILMSG_ADDR_UNQUALIFIED in flags a local part alone ("root") is also
 * accepted, for the caller to qualify.  Returns 0 or SQ_EPARSE with err.
 */
int mailmsg_addr_valid(const char *addr, int flags, struct sq_err *err);

/*
 * The RFC 5322 date-time (3.3) of t, seconds since the epoch: local time
 * with its offset when local is set, else UTC ("+0000").  Day and month
 * names are English whatever the locale.  When local time cannot be had
 * (localtime_r fails) UTC is used; a t that cannot be shown (before 1900,
 * after 9999) gives the epoch.  out gets at most 32 bytes with the NUL;
 * a smaller out is truncated.  Never fails.
 */
void mailmsg_date(int64_t t, int local, char *out, size_t outsz);

/* What mailmsg_present() reports. */
#define MAILMSG_HAS_DATE  0x01
#define MAILMSG_HAS_FROM  0x02
#define MAILMSG_HAS_MSGID 0x04

/* Which of Date, From and Message-ID the scanned header h of msg has. */
int mailmsg_present(const struct mailmsg_header *h, const char *msg);

/*
 * The one "add the missing header fields" helper, for every intake path
 * and for bounces: "Date: DATE" unless present has MAILMSG_HAS_DATE,
 * "From: FROM" unless MAILMSG_HAS_FROM, "Message-ID: <ID@HOSTNAME>"
 * unless MAILMSG_HAS_MSGID, in that order, each line ended with eol.  A
 * NULL date, from or id means that field is never added (a path that
 * adds no From passes NULL).  hostname NULL is "localhost".  Returns a
 * heap string (maybe empty) the caller frees.
 */
char *mailmsg_added_fields(int present, const char *date, const char *from,
    const char *id, const char *hostname, const char *eol);

#endif
