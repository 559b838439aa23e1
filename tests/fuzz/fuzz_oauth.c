/*
 * fuzz_oauth.c - token endpoint and device endpoint answers (JSON) fed to
 * oauth_parse() and oauth_classify().
 *
 * Input: byte 0 picks the HTTP status the answer came with (200, 400,
 * 401, 429, 500, 503, 0 = no transport), the rest is the body.  Checks:
 * a parsed token never holds a byte outside 0x21-0x7e, texts are
 * printable, and everything is freed (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_oauth_check(const char *s, unsigned char lo)
{
	if (s == NULL)
		return;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < lo || (unsigned char)*s > 0x7e)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long   status[] = { 200, 400, 401, 429, 500, 503, 0, 200 };
	struct oauth_resp   r;
	struct oauth_cache  c = { 0 };
	struct oauth_device d;
	struct sq_err       err;
	enum oauth_class    cls;
	long                st;

	if (size == 0)
		return 0;
	st = status[data[0] & 7];
	if (oauth_parse((const char *)data + 1, size - 1, &r, &err) != 0) {
		if (r.access_token != NULL || r.error != NULL)
			abort();
		(void)oauth_classify(st != 0, st, NULL);
		return 0;
	}
	fuzz_oauth_check(r.access_token, 0x21);
	fuzz_oauth_check(r.refresh_token, 0x21);
	fuzz_oauth_check(r.device_code, 0x21);
	fuzz_oauth_check(r.error, 0x20);
	fuzz_oauth_check(r.error_description, 0x20);
	fuzz_oauth_check(r.user_code, 0x20);
	fuzz_oauth_check(r.verification_uri, 0x20);
	cls = oauth_classify(st != 0, st, &r);
	if (cls == OAUTH_OK && r.access_token != NULL) {
		oauth_cache_set(&c, 1000, r.expires_in);
		if (oauth_need(&c, 1000, 0) != OAUTH_NEED_NONE)
			abort();
	}
	oauth_device_start(&d, &r, 0);
	if (d.interval_ms <= 0)
		abort();
	(void)oauth_device_step(&d, cls, 1000);
	oauth_resp_fini(&r);
	return 0;
}
