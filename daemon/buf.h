/*
 * buf.h - a growable byte buffer with a hard upper bound.
 *
 * Owns: struct buf.  Data lives in data[0..len); bytes already consumed are
 * dropped by buf_consume().  Every buffer has a maximum size fixed at
 * buf_init(): an append that would exceed it fails instead of growing, so
 * a peer cannot make us allocate without limit.
 * May call: util.
 */
#ifndef SENDQ_BUF_H
#define SENDQ_BUF_H

#include <stddef.h>

struct buf {
	char  *data;
	size_t len;
	size_t cap;
	size_t max;
};

/* Initialise an empty buffer that will never hold more than max bytes. */
void buf_init(struct buf *b, size_t max);
/* Release the memory; the buffer is empty and reusable afterwards. */
void buf_fini(struct buf *b);
/* Append n bytes.  Returns 0, or SQ_ELIMIT (nothing appended) when the
 * result would exceed the maximum. */
int buf_append(struct buf *b, const void *data, size_t n);
/* Append a NUL-free string. Same return as buf_append. */
int buf_append_str(struct buf *b, const char *s);
/* Drop the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* Room left before the maximum. */
size_t buf_room(const struct buf *b);

#endif
