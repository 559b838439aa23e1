/*
 * log.h - one line per event, "key=value" fields, to stderr.
 *
 * Owns: the log sink and level.  Messages are single lines: callers pass
 * text that came from outside through sq_printable() first, and secrets
 * never reach these functions.
 * Under systemd (stderr is the journal stream that JOURNAL_STREAM names,
 * see systemd.exec(5)) each line is "<N>LEVEL: text", N the syslog
 * priority (sd-daemon(3): err 3, warning 4, info 6, debug 7) so that
 * `journalctl -p err` shows exactly the errors; the journal adds the
 * time, the identifier and the PID.  Elsewhere "IDENT[PID]: LEVEL: text".
 * May call: libc (the sd-daemon.h prefixes are macros: no libsystemd).
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
 * written.  Also decides the format: journal when log_is_journal() holds
 * for getenv("JOURNAL_STREAM") and stderr.  Safe to call again. */
void log_init(const char *ident, enum log_level level);
/* The same for a short-lived single-threaded client that usually writes
 * no line at all (sendq: two system calls fewer a run): the journal
 * check is made at the first line written, from stderr as it is then,
 * and the PID is asked at each line.  Not for threaded programs (the
 * first line would race on the check). */
void log_init_deferred(const char *ident, enum log_level level);

/* 1 when journal_stream (the value of JOURNAL_STREAM, "DEV:INO" in
 * decimal; NULL when unset) names the file whose st_dev and st_ino are
 * dev and ino, i.e. stderr is connected to the journal; 0 otherwise
 * (unset, malformed, or stderr redirected elsewhere).  Pure. */
int log_is_journal(const char *journal_stream, unsigned long long dev,
    unsigned long long ino);

/*
 * One event with the journal fields QUEUE_ID, RELAY and RESULT (NULL: the
 * field is left out).  Under the journal with a structured sink set
 * (log_set_structured), the line goes there with the fields; if there is
 * none, or it fails, it is written as log_info() etc. would: the text is
 * the same either way (the fields are also in it as key=value).
 */
void log_event(enum log_level level, const char *queue_id, const char *relay,
    const char *result, const char *fmt, ...) SQ_PRINTF(5, 6);

/* The structured sink: sink(priority, message, queue_id, relay, result)
 * returns 0 when the journal took the event (service.c:
 * sd_journal_send); NULL: none. */
typedef int (*log_structured_fn)(int priority, const char *message,
    const char *queue_id, const char *relay, const char *result);
void log_set_structured(log_structured_fn sink);
/* Non-zero when lines go to the journal (JOURNAL_STREAM is stderr). */
int log_to_journal(void);

/* The journal's priority prefix for level ("<3>" for LOG_LEVEL_ERR ...). */
const char *log_priority_prefix(enum log_level level);

void log_err(const char *fmt, ...) SQ_PRINTF(1, 2);
void log_warn(const char *fmt, ...) SQ_PRINTF(1, 2);
void log_info(const char *fmt, ...) SQ_PRINTF(1, 2);
void log_debug(const char *fmt, ...) SQ_PRINTF(1, 2);

/* A bug or an impossible state: log and abort(). */
void log_fatalx(const char *fmt, ...) SQ_PRINTF(1, 2) __attribute__((noreturn));

#endif
