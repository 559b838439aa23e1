/*
 * service.h - sendqd's side of the systemd service protocol, through
 * libsystemd (sd_notify(3), sd_watchdog_enabled(3), sd_listen_fds(3)).
 *
 * Owns: the notifications sent to the service manager (READY=1,
 * STATUS=, RELOADING=1 with MONOTONIC_USEC=, STOPPING=1, WATCHDOG=1),
 * the watchdog timer (half of WATCHDOG_USEC, on the event loop: a
 * blocked loop stops the pings and systemd restarts sendqd), and the
 * STATUS= poll (once a second, sent only when the text changed).
 * Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op, and
 * libsystemd is not even loaded (dlopen()ed when systemd is there).
 * May call: libsystemd (sd-daemon, sd_journal_sendv), util, log, libevent.
 *
 * DIAGNOSTICS: a failed notification is logged once at debug level and
 * otherwise ignored (systemd then times the start out, which is visible
 * there).  The one fatal error: NOTIFY_SOCKET or a LISTEN_* variable is
 * set and libsystemd.so.0 cannot be loaded.
 */
#ifndef SENDQ_SERVICE_H
#define SENDQ_SERVICE_H

#include <stddef.h>

struct event_base;
struct service;

/* The first inherited socket of socket activation (SD_LISTEN_FDS_START). */
#define SERVICE_LISTEN_FDS_START 3

/*
 * The number of sockets systemd handed over (fds SERVICE_LISTEN_FDS_START
 * onward, already close-on-exec), 0 when not socket-activated (LISTEN_PID
 * is not ours, or nothing is set).  LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES are removed from the environment.  At most max.
 */
int service_listen_fds(int max);

/*
 * Writes a one-line STATUS= text (queue depth, relay states) into buf
 * (size len, NUL-terminated).  Called from the event loop.
 */
typedef void (*service_status_fn)(void *arg, char *buf, size_t len);

/*
 * Start talking to the service manager: arms the watchdog when
 * WATCHDOG_USEC/WATCHDOG_PID ask for it, and the STATUS= poll when status
 * is not NULL.  Never fails (out of memory is fatal).  Free with
 * service_free().
 */
struct service *
service_new(struct event_base *base, service_status_fn status, void *arg);

/* READY=1 with the current STATUS=: the spool is recovered and the
 * listeners are up. */
void service_ready(struct service *sv);

/* RELOADING=1 with MONOTONIC_USEC= (now, CLOCK_MONOTONIC): a reload
 * starts.  Finish it with service_ready(). */
void service_reloading(struct service *sv);

/* STOPPING=1 with STATUS=text: the daemon shuts down.  The STATUS= poll
 * stops; the watchdog keeps pinging until service_free(). */
void service_stopping(struct service *sv, const char *text);

/* Stop the timers and free; NULL accepted. */
void service_free(struct service *sv);

/*
 * log.h's structured sink (log_set_structured): the event to the journal
 * through sd_journal_sendv with MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and
 * QUEUE_ID, RELAY, RESULT where given.  0, or -errno (no journal socket:
 * log_event then writes the line to stderr as usual).  Does not block
 * for long (a datagram to journald).
 */
int service_journal_send(int priority, const char *message,
    const char *queue_id, const char *relay, const char *result);

#endif
