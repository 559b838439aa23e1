/*
 * service.c - sd_notify(3) and friends for sendqd.
 *
 * How it works: the protocol is small and done here, as sd-daemon(3)
 * documents it (the datagram to NOTIFY_SOCKET, a path or an abstract
 * name; the LISTEN_PID/LISTEN_FDS and WATCHDOG_USEC/WATCHDOG_PID checks),
 * rather than by linking libsystemd, whose dependencies (libgcrypt, the
 * compressors) cost every sendqd about 1 MiB of memory.  This file also
 * decides when to say what.  Two libevent timers:
 * the watchdog at half of WATCHDOG_USEC (the margin sd_watchdog_enabled(3)
 * recommends), and a one-second STATUS= poll that asks the daemon for its
 * one-line summary and sends it only when the text changed, so a busy
 * queue costs at most one datagram a second and an idle one none.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "service.h"
#include "util.h"

#define SERVICE_STATUS_MAX	512

struct service {
	struct event_base	*base;
	service_status_fn	 status_fn;
	void			*status_arg;
	struct event		*watchdog_ev;
	struct event		*status_ev;
	int			 active;	/* NOTIFY_SOCKET is set */
	int			 warned;
	int			 stopping;
	char			 last_status[SERVICE_STATUS_MAX];
};

/* A decimal environment value; 0 and *out, or -1 (unset or not a number). */
static int
service_env_ull(const char *name, unsigned long long *out)
{
	const char *v = getenv(name);
	char *end;

	if (v == NULL || *v < '0' || *v > '9')
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

/* Is the variable pid_name unset or our pid (LISTEN_PID, WATCHDOG_PID)? */
static int
service_env_for_us(const char *pid_name, int must_be_set)
{
	unsigned long long pid;

	if (getenv(pid_name) == NULL)
		return !must_be_set;
	return service_env_ull(pid_name, &pid) == 0 &&
	    pid == (unsigned long long)getpid();
}

/* sd_listen_fds(1): the sockets passed from fd 3 on, made close-on-exec;
 * the variables are removed. */
static int
service_sd_listen_fds(void)
{
	unsigned long long n = 0;
	int fd, ok;

	ok = service_env_for_us("LISTEN_PID", 1) &&
	    service_env_ull("LISTEN_FDS", &n) == 0 && n <= 1024;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!ok)
		return 0;
	for (fd = SERVICE_LISTEN_FDS_START; fd < SERVICE_LISTEN_FDS_START +
	    (int)n; fd++)
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return (int)n;
}

/* sd_notify(0, text): one datagram to NOTIFY_SOCKET (a path, or an
 * abstract name after '@').  1 sent, 0 no socket, -errno. */
static int
service_sd_notify(const char *text)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	size_t n;
	int fd, rc = 1;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return path == NULL ? 0 : -EAFNOSUPPORT;
	if ((n = strlen(path)) >= sizeof(sun.sun_path))
		return -EINVAL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, n);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
	    (path[0] == '/'));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (sendto(fd, text, strlen(text), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* sd_watchdog_enabled(0, &usec): 1 with *usec when WATCHDOG_USEC is set
 * (and WATCHDOG_PID, if set, is ours), else 0. */
static int
service_sd_watchdog_enabled(uint64_t *usec)
{
	unsigned long long v;

	if (service_env_ull("WATCHDOG_USEC", &v) != 0 || v == 0 ||
	    !service_env_for_us("WATCHDOG_PID", 0))
		return 0;
	*usec = v;
	return 1;
}

int
service_listen_fds(int max)
{
	int n;

	n = service_sd_listen_fds();
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
	rc = service_sd_notify(text);
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
	struct event *ev;

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
	uint64_t usec = 0;

	sv = xcalloc(1, sizeof(*sv));
	sv->base = base;
	sv->status_fn = status;
	sv->status_arg = arg;
	sv->active = getenv("NOTIFY_SOCKET") != NULL;
	if (!sv->active)
		return sv;
	if (service_sd_watchdog_enabled(&usec) > 0 && usec > 0) {
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
	char msg[128];

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
