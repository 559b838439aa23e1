/*
 * fuzz_metrics_listen.c - [sendq] metrics_listen values fed to
 * metrics_http_parse(), and status answers fed to sendqctl status's
 * verdict (sendqctl_check_verdict: JSON through json-c).
 *
 * Input: byte 0 even: the rest is a metrics_listen value; odd: a status
 * JSON answer.  Checks: a parsed address has a NUL-terminated host and a
 * port 1-65535 (or is unix with an absolute path); the verdict is 0-3
 * and its line starts with that state's name; everything is freed
 * (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_http.h"
#include "sendqctl_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "OK:", "WARNING:", "CRITICAL:",
		"UNKNOWN:" };
	struct metrics_http_addr a;
	struct sendqctl_opts     o;
	struct sq_err            err;
	char                    *s, line[2048];
	int                      rc;

	if (size == 0 || size > 65536)
		return 0;
	s = malloc(size);
	if (s == NULL)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if ((data[0] & 1) == 0) {
		if (metrics_http_parse(s, &a, &err) == 0 &&
		    (memchr(a.host, '\0', sizeof(a.host)) == NULL ||
			(a.is_unix ? a.host[0] != '/' :
				     a.port < 1 || a.port > 65535)))
			abort();
	} else {
		sendqctl_opts_init(&o);
		o.max_age = 3600;
		o.warn_age = data[0];
		rc = sendqctl_check_verdict(s, 1700000000, &o, line,
		    sizeof(line));
		if (rc < 0 || rc > 3 ||
		    strncmp(line, names[rc], strlen(names[rc])) != 0)
			abort();
	}
	free(s);
	return 0;
}
