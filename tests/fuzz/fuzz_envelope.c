/*
 * fuzz_envelope.c - envelope_parse on arbitrary bytes, and for every input
 * it accepts, format/parse round-trip consistency: the formatted text
 * parses back to a record that formats to the very same text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope *env = NULL, *back = NULL;
	struct sq_err    err = { 0 };
	char            *text, *text2;
	size_t           len, len2, i;

	if (envelope_parse((const char *)data, size, &env, &err) != 0) {
		if (env != NULL || err.code != SQ_EPARSE || err.msg[0] == '\0')
			abort();
		return 0;
	}
	if (env->n_rcpts == 0 || env->id[0] == '\0')
		abort();
	text = envelope_format(env, &len);
	if (envelope_parse(text, len, &back, &err) != 0)
		abort();
	if (strcmp(env->id, back->id) != 0 ||
	    strcmp(env->sender, back->sender) != 0 ||
	    env->n_rcpts != back->n_rcpts || env->created != back->created ||
	    env->uid != back->uid || env->attempts != back->attempts ||
	    env->next_attempt != back->next_attempt ||
	    (env->last_error == NULL) != (back->last_error == NULL) ||
	    (env->last_error != NULL &&
		strcmp(env->last_error, back->last_error) != 0))
		abort();
	for (i = 0; i < env->n_rcpts; i++)
		if (strcmp(env->rcpts[i], back->rcpts[i]) != 0)
			abort();
	text2 = envelope_format(back, &len2);
	if (len != len2 || memcmp(text, text2, len) != 0)
		abort();
	free(text);
	free(text2);
	envelope_free(env);
	envelope_free(back);
	return 0;
}
