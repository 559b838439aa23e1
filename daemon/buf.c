/*
 * buf.c - bounded growable byte buffer.
 *
 * Capacity doubles up to the maximum; buf_consume() moves the rest to the
 * front, so data always starts at offset 0.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->max = max;
}

void
buf_fini(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

int
buf_append(struct buf *b, const void *data, size_t n)
{
	size_t need, cap;

	if (n > b->max - b->len)
		return SQ_ELIMIT;
	need = b->len + n;
	if (need > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < need)
			cap = cap > b->max / 2 ? b->max : cap * 2;
		b->data = xreallocarray(b->data, cap, 1);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

size_t
buf_room(const struct buf *b)
{
	return b->max - b->len;
}
