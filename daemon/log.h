/*
 * log.h - one line per event, "key=value" fields, to stderr.
 *
 * Owns: the log sink and level.  Messages are single lines: callers pass
 * text that came from outside through sq_printable() first, and secrets
 * never reach these functions.
 * May call: libc.
 *
 * DIAGNOSTICS: none; a failed write to stderr is ignored.
 */
#ifndef SENDQ_LOG_H
#define SENDQ_LOG_H

#include "util.h"

enum log_level {
	LOG_LEVEL_ERR = 0,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
};

/* ident prefixes every line ("sendqd"); level is the most verbose level
 * written.  Safe to call again to change either. */
void	log_init(const char *ident, enum log_level level);

void	log_err(const char *fmt, ...) SQ_PRINTF(1, 2);
void	log_warn(const char *fmt, ...) SQ_PRINTF(1, 2);
void	log_info(const char *fmt, ...) SQ_PRINTF(1, 2);
void	log_debug(const char *fmt, ...) SQ_PRINTF(1, 2);

/* A bug or an impossible state: log and abort(). */
void	log_fatalx(const char *fmt, ...) SQ_PRINTF(1, 2)
	    __attribute__((noreturn));

#endif
