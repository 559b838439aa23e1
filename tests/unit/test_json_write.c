/*
 * test_json_write.c - the one JSON writer: escapes, separators, and what
 * it writes parses back (json-c) to the very bytes given.
 */
#include <criterion/criterion.h>

#include <json-c/json.h>
#include <string.h>

#include "json_write.h"
#include "util.h"

TestSuite(json_write);

static char *
test_text(struct buf *b)
{
	cr_assert_eq(buf_append(b, "", 1), 0);
	return b->data;
}

Test(json_write, string_escapes_quote_backslash_and_controls)
{
	struct buf b;

	buf_init(&b, 256);
	cr_assert_eq(json_write_string(&b, "a\"b\\c\x01\n\x7f", 8), 0);
	cr_expect_str_eq(test_text(&b), "\"a\\\"b\\\\c\\u0001\\n\\u007f\"");
	buf_fini(&b);
}

Test(json_write, invalid_utf8_becomes_replacement_characters)
{
	struct buf b;

	buf_init(&b, 256);
	cr_assert_eq(json_write_string(&b, "h\xc3\xa9\xff\xc3", 5), 0);
	cr_expect_str_eq(test_text(&b), "\"h\xc3\xa9\\ufffd\\ufffd\"");
	buf_fini(&b);
}

Test(json_write, writer_places_commas_and_colons)
{
	struct json_write w;
	struct buf        b;

	buf_init(&b, 1024);
	json_write_init(&w, &b);
	json_write_object_begin(&w);
	json_write_key(&w, "n");
	json_write_uint(&w, 3);
	json_write_key(&w, "list");
	json_write_array_begin(&w);
	json_write_object_begin(&w);
	json_write_key(&w, "a");
	json_write_int(&w, -1);
	json_write_object_end(&w);
	json_write_str(&w, NULL);
	json_write_bool(&w, 1);
	json_write_array_end(&w);
	json_write_key(&w, "empty");
	json_write_array_begin(&w);
	json_write_array_end(&w);
	json_write_object_end(&w);
	cr_assert_eq(json_write_finish(&w), 0);
	cr_expect_str_eq(test_text(&b),
	    "{\"n\":3,\"list\":[{\"a\":-1},null,true],\"empty\":[]}");
	buf_fini(&b);
}

Test(json_write, unbalanced_or_too_long_is_an_error)
{
	struct json_write w;
	struct buf        b;

	buf_init(&b, 8);
	json_write_init(&w, &b);
	json_write_object_begin(&w);
	cr_assert_neq(json_write_finish(&w), 0); /* not closed */
	json_write_key(&w, "long key");
	cr_assert_eq(json_write_finish(&w), SQ_ELIMIT); /* > 8 bytes */
	buf_fini(&b);
}

/* A backslash, quotes, control characters and UTF-8 in a key and a
 * value: json-c reads back the same bytes. */
Test(json_write, round_trip_through_json_c)
{
	char val[] = "relay \\ \"name\" \x01\x02\x1f tab\t nl\n \xc3\xa9 end";
	struct json_object *o, *v;
	struct json_write   w;
	struct buf          b;

	buf_init(&b, 4096);
	json_write_init(&w, &b);
	json_write_object_begin(&w);
	json_write_key(&w, "k\\\"\x01");
	json_write_str(&w, val);
	json_write_object_end(&w);
	cr_assert_eq(json_write_finish(&w), 0);
	o = json_tokener_parse(test_text(&b));
	cr_assert_not_null(o, "not JSON: %s", b.data);
	cr_assert(json_object_object_get_ex(o, "k\\\"\x01", &v));
	cr_expect_str_eq(json_object_get_string(v), val);
	json_object_put(o);
	buf_fini(&b);
}
