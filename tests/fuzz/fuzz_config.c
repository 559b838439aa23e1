/*
 * fuzz_config.c - config_load_string() on arbitrary bytes: it must never
 * crash or leak, and on failure it must leave exactly one line in the
 * error message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct sq_err  err;
	char          *text;

	/* The API takes a C string: a NUL-terminated copy. */
	text = xmalloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	memset(&err, 0, sizeof(err));
	if (config_load_string("fuzz.ini", text, &cfg, &err) == 0) {
		if (cfg->n_smarthosts == 0 || cfg->spool_dir == NULL)
			abort();
		config_free(cfg);
	} else if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL)
		abort();
	free(text);
	return 0;
}
