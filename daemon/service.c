/*
 * service.c - sd_notify(3) and friends for sendqd.
 *
 * How it works: libsystemd does the protocol (the datagram to
 * NOTIFY_SOCKET, the LISTEN_PID/LISTEN_FDS and WATCHDOG_USEC/WATCHDOG_PID
 * checks).  This file decides when to say what.  Two libevent timers:
 * the watchdog at half of WATCHDOG_USEC (the margin sd_watchdog_enabled(3)
 * recommends), and a one-second STATUS= poll that asks the daemon for its
 * one-line summary and sends it only when the text changed, so a busy
 * queue costs at most one datagram a second and an idle one none.
 *
 * libsystemd is loaded (dlopen, once) when systemd is there to talk to:
 * NOTIFY_SOCKET, a LISTEN_* variable, or a journal socket for a
 * structured log event.  It is not linked: with what it links (libgcrypt,
 * libgpg-error, liblzma, libzstd, liblz4, libcap) it is about 1 MiB of
 * every sendqd's resident memory, which a sendqd started outside systemd
 * (a container, the test suite, scripts/bench) never uses.  Under
 * systemd it is loaded at start-up as before, and a library that cannot
 * be loaded there is fatal (the notifications and sockets are the
 * service's contract).
 */
#include <sys/uio.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "log.h"
#include "service.h"
#include "util.h"

/* journald's native socket (systemd-journald.socket). */
#define SERVICE_JOURNAL_SOCKET "/run/systemd/journal/socket"
#define SERVICE_SD_SONAME      "libsystemd.so.0"

#define SERVICE_STATUS_MAX 512

struct service {
	struct event_base *base;
	service_status_fn  status_fn;
	void              *status_arg;
	struct event      *watchdog_ev;
	struct event      *status_ev;
	int                active; /* NOTIFY_SOCKET is set */
	int                warned;
	int                stopping;
	char               last_status[SERVICE_STATUS_MAX];
};

/* The functions used, from libsystemd once service_sd_load() has run.
 * The asserts: each has the type of its prototype in the headers. */
typedef int (*service_sd_listen_fds_fn)(int);
typedef int (*service_sd_notify_fn)(int, const char *);
typedef int (*service_sd_watchdog_fn)(int, uint64_t *);
typedef int (*service_sd_journal_fn)(const struct iovec *, int);
static struct {
	service_sd_listen_fds_fn listen_fds;
	service_sd_notify_fn     notify;
	service_sd_watchdog_fn   watchdog_enabled;
	service_sd_journal_fn    journal_sendv;
} service_sd;
static pthread_once_t service_sd_once = PTHREAD_ONCE_INIT;
static int            service_sd_ok;
static char           service_sd_why[256];

_Static_assert(
    _Generic(&sd_listen_fds, service_sd_listen_fds_fn : 1, default : 0),
    "sd_listen_fds");
_Static_assert(_Generic(&sd_notify, service_sd_notify_fn : 1, default : 0),
    "sd_notify");
_Static_assert(
    _Generic(&sd_watchdog_enabled, service_sd_watchdog_fn : 1, default : 0),
    "sd_watchdog_enabled");
_Static_assert(
    _Generic(&sd_journal_sendv, service_sd_journal_fn : 1, default : 0),
    "sd_journal_sendv");

static void
service_sd_load(void)
{
	static const char *const      soname[] = { SERVICE_SD_SONAME };
	static const struct sq_dl_sym syms[] = {
		{ "sd_listen_fds", (void **)&service_sd.listen_fds },
		{ "sd_notify", (void **)&service_sd.notify },
		{ "sd_watchdog_enabled",
		    (void **)&service_sd.watchdog_enabled },
		{ "sd_journal_sendv", (void **)&service_sd.journal_sendv },
	};

	service_sd_ok = sq_dl_load(soname, 1, syms,
			    sizeof(syms) / sizeof(syms[0]), service_sd_why,
			    sizeof(service_sd_why)) == 0;
}

/* Load libsystemd once (any thread); 0, or -1 with service_sd_why set. */
static int
service_sd_get(void)
{
	pthread_once(&service_sd_once, service_sd_load);
	return service_sd_ok ? 0 : -1;
}

/* libsystemd for what systemd asked of us (what), or a fatal error. */
static void
service_sd_need(const char *what)
{
	if (service_sd_get() != 0)
		log_fatalx("service: %s is set but %s cannot be loaded: %s",
		    what, SERVICE_SD_SONAME, service_sd_why);
}

int
service_listen_fds(int max)
{
	int n;

	/* sd_listen_fds(1) also clears LISTEN_FDS and LISTEN_FDNAMES when
	 * LISTEN_PID is unset: it runs whenever any of them is set. */
	if (getenv("LISTEN_PID") == NULL && getenv("LISTEN_FDS") == NULL &&
	    getenv("LISTEN_FDNAMES") == NULL)
		return 0;
	service_sd_need("LISTEN_PID");
	n = service_sd.listen_fds(1);
	if (n <= 0)
		return 0;
	return n > max ? max : n;
}

static void
service_send(struct service *sv, const char *text)
{
	int rc;

	if (!sv->active)
		return;
	rc = service_sd.notify(0, text);
	if (rc < 0 && !sv->warned) {
		sv->warned = 1;
		log_debug("service: sd_notify failed: %s", strerror(-rc));
	}
}

/* The current summary; 1 when it differs from the last one sent. */
static int
service_refresh(struct service *sv, char *buf, size_t len)
{
	if (sv->status_fn == NULL)
		return 0;
	sv->status_fn(sv->status_arg, buf, len);
	if (strcmp(buf, sv->last_status) == 0)
		return 0;
	snprintf(sv->last_status, sizeof(sv->last_status), "%s", buf);
	return 1;
}

static void
service_send_status(struct service *sv, const char *prefix)
{
	char cur[SERVICE_STATUS_MAX], msg[SERVICE_STATUS_MAX + 64];

	if (!service_refresh(sv, cur, sizeof(cur)) && prefix[0] == '\0')
		return;
	if (sv->last_status[0] != '\0')
		snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix,
		    sv->last_status);
	else
		snprintf(msg, sizeof(msg), "%s", prefix);
	service_send(sv, msg);
}

static void
service_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct service *sv = arg;

	(void)fd;
	(void)what;
	service_send(sv, "WATCHDOG=1");
}

static void
service_on_status(evutil_socket_t fd, short what, void *arg)
{
	struct service *sv = arg;

	(void)fd;
	(void)what;
	if (!sv->stopping)
		service_send_status(sv, "");
}

static struct event *
service_timer(struct service *sv, uint64_t usec, event_callback_fn cb)
{
	struct timeval tv;
	struct event  *ev;

	ev = event_new(sv->base, -1, EV_PERSIST, cb, sv);
	if (ev == NULL)
		log_fatalx("service: out of memory");
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	event_add(ev, &tv);
	return ev;
}

struct service *
service_new(struct event_base *base, service_status_fn status, void *arg)
{
	struct service *sv;
	uint64_t        usec = 0;

	sv = xcalloc(1, sizeof(*sv));
	sv->base = base;
	sv->status_fn = status;
	sv->status_arg = arg;
	sv->active = getenv("NOTIFY_SOCKET") != NULL;
	if (!sv->active)
		return sv;
	service_sd_need("NOTIFY_SOCKET");
	if (service_sd.watchdog_enabled(0, &usec) > 0 && usec > 0) {
		sv->watchdog_ev = service_timer(sv, usec / 2,
		    service_on_watchdog);
		log_info("service: watchdog every %llums",
		    (unsigned long long)(usec / 2000));
	}
	if (status != NULL)
		sv->status_ev = service_timer(sv, 1000000, service_on_status);
	return sv;
}

void
service_ready(struct service *sv)
{
	service_send_status(sv, "READY=1\n");
}

void
service_reloading(struct service *sv)
{
	struct timespec ts;
	char            msg[128];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
		(unsigned long long)ts.tv_nsec / 1000ULL);
	service_send(sv, msg);
}

void
service_stopping(struct service *sv, const char *text)
{
	char msg[SERVICE_STATUS_MAX + 64];

	sv->stopping = 1;
	snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s", text);
	service_send(sv, msg);
}

void
service_free(struct service *sv)
{
	if (sv == NULL)
		return;
	if (sv->watchdog_ev != NULL)
		event_free(sv->watchdog_ev);
	if (sv->status_ev != NULL)
		event_free(sv->status_ev);
	free(sv);
}

int
service_journal_send(int priority, const char *message, const char *queue_id,
    const char *relay, const char *result)
{
	struct iovec iov[6];
	char        *f[6];
	size_t       n = 0, i;
	int          rc;

	/* sd_journal_sendv() succeeds silently without a journald: then
	 * the line goes to stderr (the journal stream or a file). */
	if (access(SERVICE_JOURNAL_SOCKET, W_OK) != 0)
		return -errno;
	/* Not fatal here: the line goes to stderr (the journal stream). */
	if (service_sd_get() != 0)
		return -ENOSYS;
	f[n++] = xasprintf("MESSAGE=%s", message);
	f[n++] = xasprintf("PRIORITY=%d", priority);
	f[n++] = xasprintf("SYSLOG_IDENTIFIER=sendqd");
	if (queue_id != NULL)
		f[n++] = xasprintf("QUEUE_ID=%s", queue_id);
	if (relay != NULL)
		f[n++] = xasprintf("RELAY=%s", relay);
	if (result != NULL)
		f[n++] = xasprintf("RESULT=%s", result);
	for (i = 0; i < n; i++) {
		iov[i].iov_base = f[i];
		iov[i].iov_len = strlen(f[i]);
	}
	rc = service_sd.journal_sendv(iov, (int)n);
	for (i = 0; i < n; i++)
		free(f[i]);
	return rc < 0 ? rc : 0;
}
