/*
 * test_util.c - base utilities: bounded buffers, printable copies,
 * loopback detection, the error carrier.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "buf.h"
#include "util.h"

Test(buf, append_grows_and_keeps_bytes)
{
	struct buf b;
	char chunk[1000];
	size_t i;

	buf_init(&b, 1 << 20);
	memset(chunk, 'x', sizeof(chunk));
	for (i = 0; i < 100; i++)
		cr_assert_eq(buf_append(&b, chunk, sizeof(chunk)), 0);
	cr_assert_eq(b.len, 100000);
	cr_assert_eq(b.data[99999], 'x');
	buf_fini(&b);
}

Test(buf, append_beyond_maximum_fails_without_change)
{
	struct buf b;

	buf_init(&b, 8);
	cr_assert_eq(buf_append_str(&b, "12345"), 0);
	cr_assert_eq(buf_append_str(&b, "6789"), SQ_ELIMIT);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(buf_room(&b), 3);
	cr_assert_eq(buf_append_str(&b, "678"), 0);
	cr_assert_eq(memcmp(b.data, "12345678", 8), 0);
	buf_fini(&b);
}

Test(buf, consume_moves_the_rest_to_the_front)
{
	struct buf b;

	buf_init(&b, 64);
	buf_append_str(&b, "hello world");
	buf_consume(&b, 6);
	cr_assert_eq(b.len, 5);
	cr_assert_eq(memcmp(b.data, "world", 5), 0);
	buf_consume(&b, 99);
	cr_assert_eq(b.len, 0);
	buf_fini(&b);
}

Test(util, printable_replaces_controls_and_truncates)
{
	char out[8];

	sq_printable(out, sizeof(out), "a\0b\r\n\x1b" "cdef", 10);
	cr_assert_str_eq(out, "a?b???c");
}

Test(util, loopback_hosts_are_recognised)
{
	cr_assert(sq_host_is_loopback("127.0.0.1"));
	cr_assert(sq_host_is_loopback("127.1.2.3"));
	cr_assert(sq_host_is_loopback("::1"));
	cr_assert(sq_host_is_loopback("LocalHost"));
	cr_assert_not(sq_host_is_loopback("128.0.0.1"));
	cr_assert_not(sq_host_is_loopback("smtp.example.com"));
	cr_assert_not(sq_host_is_loopback("::2"));
	cr_assert_not(sq_host_is_loopback("localhost.example.com"));
}

Test(util, err_set_returns_code_and_formats)
{
	struct sq_err err = { 0 };

	cr_assert_eq(sq_err_set(&err, SQ_EPARSE, "line %d: %s", 3, "bad"),
	    SQ_EPARSE);
	cr_assert_eq(err.code, SQ_EPARSE);
	cr_assert_str_eq(err.msg, "line 3: bad");
	cr_assert_eq(sq_err_set(NULL, -5, "ignored"), -5);
}
