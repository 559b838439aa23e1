/*
 * log.c - single-line log records to stderr.
 *
 * Each line is "IDENT[PID]: LEVEL: text".  Under systemd stderr is a
 * stream to the journal, which adds its own time stamp, identifier and
 * PID but reads the priority only from a "<N>" prefix (sd-daemon(3)):
 * there each line is "<N>LEVEL: text".  Whether stderr is the journal is
 * decided as systemd.exec(5) says: JOURNAL_STREAM holds the device and
 * inode of the stream systemd connected, and they must be stderr's (a
 * child whose stderr was redirected inherits the variable, not the
 * stream).
 */
#include <sys/stat.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"

static const char    *log_ident = "sendq";
static enum log_level log_max_level = LOG_LEVEL_INFO;
static int            log_journal;
/* The PID in each line, read once by log_init() (getpid() is a system
 * call, and sendqd logs a line or two per message); 0 in a forked child
 * and after log_init_deferred(), which then ask each time. */
static pid_t log_pid;

static void
log_pid_forget(void)
{
	log_pid = 0;
}

static const char *const log_level_names[] = {
	[LOG_LEVEL_ERR] = "error",
	[LOG_LEVEL_WARN] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

static const char *const log_level_prefixes[] = {
	[LOG_LEVEL_ERR] = SD_ERR,
	[LOG_LEVEL_WARN] = SD_WARNING,
	[LOG_LEVEL_INFO] = SD_INFO,
	[LOG_LEVEL_DEBUG] = SD_DEBUG,
};

const char *
log_priority_prefix(enum log_level level)
{
	return log_level_prefixes[level];
}

int
log_is_journal(const char *journal_stream, unsigned long long dev,
    unsigned long long ino)
{
	unsigned long long d, i;
	char              *end;

	if (journal_stream == NULL || *journal_stream < '0' ||
	    *journal_stream > '9')
		return 0;
	d = strtoull(journal_stream, &end, 10);
	if (*end != ':' || end[1] < '0' || end[1] > '9')
		return 0;
	i = strtoull(end + 1, &end, 10);
	if (*end != '\0')
		return 0;
	return d == dev && i == ino;
}

/* log_init_deferred(): the journal check waits for the first line. */
static int log_deferred;

/* Is stderr the journal?  (One fstat.) */
static int
log_detect_journal(void)
{
	struct stat st;

	return fstat(STDERR_FILENO, &st) == 0 &&
	    log_is_journal(getenv("JOURNAL_STREAM"),
		(unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

/* The deferred check, before anything reads log_journal. */
static void
log_ready(void)
{
	if (log_deferred) {
		log_deferred = 0;
		log_journal = log_detect_journal();
	}
}

void
log_init(const char *ident, enum log_level level)
{
	static int hooked;

	log_ident = ident;
	log_max_level = level;
	log_deferred = 0;
	if (!hooked && pthread_atfork(NULL, NULL, log_pid_forget) == 0)
		hooked = 1;
	log_pid = hooked ? getpid() : 0;
	log_journal = log_detect_journal();
}

void
log_init_deferred(const char *ident, enum log_level level)
{
	log_ident = ident;
	log_max_level = level;
	log_pid = 0; /* asked at each line */
	log_journal = 0;
	log_deferred = 1;
}

static void log_vwrite(enum log_level, const char *, va_list) SQ_PRINTF(2, 0);

static void
log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char   line[2048];
	int    n;
	size_t i;

	if (level > log_max_level)
		return;
	log_ready();
	if (log_journal)
		n = snprintf(line, sizeof(line),
		    "%s%s: ", log_level_prefixes[level],
		    log_level_names[level]);
	else
		n = snprintf(line, sizeof(line), "%s[%ld]: %s: ", log_ident,
		    (long)(log_pid != 0 ? log_pid : getpid()),
		    log_level_names[level]);
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

static log_structured_fn log_sink;

void
log_set_structured(log_structured_fn sink)
{
	log_sink = sink;
}

int
log_to_journal(void)
{
	log_ready();
	return log_journal;
}

void
log_event(enum log_level level, const char *queue_id, const char *relay,
    const char *result, const char *fmt, ...)
{
	static const int prio[] = { 3, 4, 6, 7 };
	char             msg[2048], *p;
	va_list          ap;

	if (level > log_max_level)
		return;
	log_ready();
	va_start(ap, fmt);
	if (log_journal && log_sink != NULL) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		for (p = msg; *p != '\0'; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
		if (log_sink(prio[level], msg, queue_id, relay, result) == 0) {
			va_end(ap);
			return;
		}
		va_end(ap);
		va_start(ap, fmt);
	}
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

#define LOG_DEFINE(name, level) \
	void name(const char *fmt, ...) \
	{ \
		va_list ap; \
\
		va_start(ap, fmt); \
		log_vwrite(level, fmt, ap); \
		va_end(ap); \
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
