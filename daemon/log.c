/*
 * log.c - single-line log records to stderr.
 *
 * Each line is "IDENT[PID]: LEVEL: text".  Under systemd stderr goes to the
 * journal, which adds its own time stamp; run by hand, the same lines are
 * readable as they are.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char	*log_ident = "sendq";
static enum log_level	 log_max_level = LOG_LEVEL_INFO;

static const char *const log_level_names[] = {
	[LOG_LEVEL_ERR] = "error",
	[LOG_LEVEL_WARN] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void
log_init(const char *ident, enum log_level level)
{
	log_ident = ident;
	log_max_level = level;
}

static void	log_vwrite(enum log_level, const char *, va_list)
		    SQ_PRINTF(2, 0);

static void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	int n;
	size_t i;

	if (level > log_max_level)
		return;
	n = snprintf(line, sizeof(line), "%s[%ld]: %s: ", log_ident,
	    (long)getpid(), log_level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	/* One event, one line: fold any stray line break. */
	for (i = (size_t)n; line[i] != '\0'; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
}

#define LOG_DEFINE(name, level)				\
void								\
name(const char *fmt, ...)					\
{								\
	va_list ap;						\
								\
	va_start(ap, fmt);					\
	log_vwrite(level, fmt, ap);				\
	va_end(ap);						\
}

LOG_DEFINE(log_err, LOG_LEVEL_ERR)
LOG_DEFINE(log_warn, LOG_LEVEL_WARN)
LOG_DEFINE(log_info, LOG_LEVEL_INFO)
LOG_DEFINE(log_debug, LOG_LEVEL_DEBUG)

void
log_fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERR, fmt, ap);
	va_end(ap);
	abort();
}
