/*
 * fuzz_wal.c - the write-ahead log's parsers on a segment image: the
 * header (the first WAL_HEADER_SIZE bytes), then wal_parse_record over
 * the rest as the replay walks it, with the header's epoch, or, when the
 * header is not valid, with the epoch of the first record's bytes (so
 * that the record parser is reached without a valid header too).  Every
 * record accepted must lie inside the input, be laid out as wal.h says
 * (lengths, padding, CRC-32 of the header's 28 bytes and the payload)
 * and parse the same again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t
fuzz_get64(const uint8_t *p)
{
	uint64_t v = 0;
	int      i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The records of data[off..size) of epoch, as the replay walks them. */
static void
fuzz_walk(const uint8_t *data, size_t size, size_t off, uint64_t epoch)
{
	struct wal_rec rec, again;
	const uint8_t *p, *end = data + size;
	size_t         used, used2, plen;
	uLong          crc;

	while (off <= size) {
		p = data + off;
		if (!wal_parse_record(p, size - off, epoch, &rec, &used))
			return;
		plen = rec.id_len + rec.a_len + rec.b_len;
		if (used < WAL_REC_HEADER || used % 8 != 0 ||
		    used > size - off || WAL_REC_HEADER + plen > used ||
		    used - (WAL_REC_HEADER + plen) >= 8)
			abort();
		if (rec.type != WAL_MSG && rec.type != WAL_REMOVE)
			abort();
		if (rec.id_len < 1 || rec.id_len > WAL_ID_MAX)
			abort();
		if ((const uint8_t *)rec.id != p + WAL_REC_HEADER ||
		    (const uint8_t *)rec.a !=
			(const uint8_t *)rec.id + rec.id_len ||
		    (const uint8_t *)rec.b !=
			(const uint8_t *)rec.a + rec.a_len ||
		    (const uint8_t *)rec.b + rec.b_len > p + used ||
		    p + used > end)
			abort();
		if (fuzz_get64(p + 8) != epoch)
			abort();
		crc = crc32_z(0, p, 28);
		crc = crc32_z(crc, p + WAL_REC_HEADER, plen);
		if ((uint32_t)crc !=
		    ((uint32_t)p[28] | (uint32_t)p[29] << 8 |
			(uint32_t)p[30] << 16 | (uint32_t)p[31] << 24))
			abort();
		/* Pure: the same answer again, and with more room given
		 * no other (a record's size is its own). */
		if (!wal_parse_record(p, used, epoch, &again, &used2) ||
		    used2 != used || again.b_len != rec.b_len)
			abort();
		if (wal_parse_record(p, used - 1, epoch, &again, &used2))
			abort();
		off += used;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t epoch, epoch2;

	if (size < WAL_HEADER_SIZE)
		return 0;
	if (wal_parse_header(data, &epoch)) {
		if (!wal_parse_header(data, &epoch2) || epoch2 != epoch ||
		    fuzz_get64(data + 8) != epoch)
			abort();
		fuzz_walk(data, size, WAL_HEADER_SIZE, epoch);
	} else if (size >= WAL_HEADER_SIZE + 16) {
		fuzz_walk(data, size, WAL_HEADER_SIZE,
		    fuzz_get64(data + WAL_HEADER_SIZE + 8));
	}
	return 0;
}
