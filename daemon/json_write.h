/*
 * json_write.h - the one JSON writer: RFC 8259 text into a bounded
 * struct buf, for every JSON the programs print or send (the queue
 * listings of queue_view.c, the daemon's status).
 *
 * Strings are escaped as RFC 8259 requires ('"', '\\' and the control
 * characters); bytes that are not valid UTF-8 become U+FFFD, so any
 * input gives valid JSON and valid UTF-8 and what was text reads back
 * the same.  The structured writer puts the commas and colons: callers
 * say begin/end, key and value.
 *
 * Owns: the string escape, struct json_write.
 * May call: buf, util.  Pure: no I/O.
 *
 * DIAGNOSTICS: SQ_ELIMIT when the buf's maximum is reached (what did
 * fit stays; the writer then writes nothing more).
 */
#ifndef SENDQ_JSON_WRITE_H
#define SENDQ_JSON_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define JSON_WRITE_DEPTH_MAX 32

/* Append s[0..len) to out as a JSON string, quotes included.  Returns 0
 * or SQ_ELIMIT. */
int json_write_string(struct buf *out, const char *s, size_t len);

/* A writer into out (initialised by the caller).  Fields are private. */
struct json_write {
	struct buf *out;
	int         rc; /* first failure, then sticky */
	unsigned    depth;
	uint32_t    has_item; /* bit per depth: comma before next */
	int         after_key;
};

void json_write_init(struct json_write *w, struct buf *out);
/* Containers; nesting beyond JSON_WRITE_DEPTH_MAX is SQ_ELIMIT. */
void json_write_object_begin(struct json_write *w);
void json_write_object_end(struct json_write *w);
void json_write_array_begin(struct json_write *w);
void json_write_array_end(struct json_write *w);
/* A member name inside an object; its value is the next call. */
void json_write_key(struct json_write *w, const char *key);
/* Values: a NUL-terminated string (NULL writes null), a bounded one,
 * numbers, a boolean, null. */
void json_write_str(struct json_write *w, const char *s);
void json_write_strn(struct json_write *w, const char *s, size_t len);
void json_write_uint(struct json_write *w, uint64_t v);
void json_write_int(struct json_write *w, int64_t v);
void json_write_bool(struct json_write *w, int v);
void json_write_null(struct json_write *w);
/* 0, or SQ_ELIMIT when something did not fit or nesting was wrong. */
int json_write_finish(const struct json_write *w);

#endif
