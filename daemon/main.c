/*
 * main.c - sendqd: arguments, configuration, the event loop and signals.
 * Wiring only: the work is done by the scheduler and the modules below it.
 *
 * sendqd runs in the foreground and logs to stderr (systemd puts that in
 * the journal).  SIGTERM and SIGINT stop it cleanly: intake closes,
 * deliveries past their final dot get [queue] stop_grace to read their
 * reply, connections QUIT, a message in flight stays queued (delivery is
 * at least once); a second signal ends the grace at once.
 * SIGHUP reloads the configuration (main_reload).  Under systemd
 * (Type=notify) service.c tells the manager READY=1 once the spool is
 * recovered and every listener is up, STOPPING=1 on SIGTERM, RELOADING=1
 * around a reload, and keeps the watchdog fed.
 */
#include <sys/statvfs.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "config.h"
#include "control.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "pickup.h"
#include "quota.h"
#include "scheduler.h"
#include "secret.h"
#include "service.h"
#include "spool.h"
#include "tls.h"

#ifndef SENDQ_QUEUE_GROUP /* CMake: the group of sendq-showq */
#define SENDQ_QUEUE_GROUP "sendq-queue"
#endif

static void
main_usage(FILE *f)
{
	fprintf(f,
	    "usage: sendqd [-C FILE] [--check-config] [-d]\n\nThe sendq relay "
	    "daemon: delivers the messages in the spool to the\nconfigured "
	    "smarthosts.  Runs in the foreground, logs to stderr.\n\n  -C, "
	    "--config FILE  configuration file (default %s)\n      "
	    "--check-config validate the configuration (including CA,\n        "
	    "             certificate and secret files) and exit:\n            "
	    "         0 valid, 78 invalid\n  -d, --debug        log at debug "
	    "level (overrides log_level)\n  -h, --help         show this help "
	    "and exit\n  -V, --version      show the version and "
	    "exit\n\nSignals: SIGTERM or SIGINT stop the daemon; messages stay "
	    "queued;\nSIGHUP reloads the configuration.\nExit status: 0 after "
	    "a clean stop, 64 usage, 71 start-up failure,\n78 configuration "
	    "error.\n",
	    CONFIG_DEFAULT_PATH);
}

/* Check everything that can be checked without the network: CA files,
 * client certificates, priority strings, secret files. */
static int
main_check_tls(const struct config *cfg, int check_secrets, struct sq_err *err)
{
	struct tls_ctx *ctx;
	size_t          i;
	int             rc;

	struct secret *secret;

	for (i = 0; i < cfg->n_smarthosts; i++) {
		const struct config_smarthost *sh = &cfg->smarthosts[i];

		/* Secret files are checked too (their permissions, that they
		 * hold a line); commands are not run here. */
		if (check_secrets &&
		    (sh->password_file != NULL || sh->token_file != NULL)) {
			if ((rc = secret_load(sh, &secret, err)) != 0)
				return rc;
			secret_free(secret);
		}
		if (sh->tls == CONFIG_TLS_NONE)
			continue;
		if ((rc = tls_ctx_new(sh, &ctx, err)) != 0)
			return rc;
		tls_ctx_free(ctx);
	}
	return 0;
}

struct main_state {
	struct event_base   *base;
	struct scheduler    *sched;
	struct intake       *intake;
	struct service      *service;
	const char          *config_path;
	const struct config *cfg;      /* the one in force */
	struct config      **reloaded; /* every reloaded one: kept
						 * until exit (see main_reload) */
	size_t               n_reloaded;
	int                  debug; /* -d: log_level stays debug */
	int                  stopping;
	struct event        *spool_ev; /* the commit thread's
						 * eventfd */
	struct spool        *spool;
};

/* The spool's commit thread finished a group: answer its members. */
static void
main_on_spool(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	spool_async_dispatch(arg);
}

static void
main_status(void *arg, char *buf, size_t len)
{
	struct main_state *st = arg;

	scheduler_summary(st->sched, buf, len);
}

/* metrics_set_gauges(): the scheduler's, and the spool's free space and
 * write-ahead log. */
static void
main_metrics_gauges(void *arg, struct metrics_gauges *g)
{
	struct main_state     *st = arg;
	struct spool_wal_stats ws;
	struct statvfs         sv;

	scheduler_metrics_gauges(st->sched, g);
	if (statvfs(st->cfg->spool_dir, &sv) == 0) {
		g->spool_free_known = 1;
		g->spool_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	}
	if (st->spool != NULL) {
		spool_wal_stats(st->spool, &ws);
		g->spool_log_known = 1;
		g->log_groups = ws.groups;
		g->log_messages = ws.messages;
		g->held_total = ws.held;
		g->filed_total = ws.filed;
		g->held_now = ws.held_now;
	}
}

static int
main_same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * What a reload cannot apply: the sockets sendqd listens on ([intake]
 * listen, control_socket, metrics_listen) and spool_dir.  0, or
 * SQ_ECONFIG with err naming the first change (the reload is refused:
 * restart to apply it).
 */
static int
main_reload_check(const struct config *old, const struct config *cfg,
    struct sq_err *err)
{
	const char *what = NULL;
	size_t      i;

	if (strcmp(cfg->spool_dir, old->spool_dir) != 0)
		what = "spool_dir";
	else if (!main_same_str(cfg->control_socket, old->control_socket))
		what = "[sendq] control_socket";
	else if (!main_same_str(cfg->metrics_listen, old->metrics_listen))
		what = "[sendq] metrics_listen";
	else if (cfg->intake.n_listen != old->intake.n_listen)
		what = "[intake] listen";
	for (i = 0; what == NULL && i < cfg->intake.n_listen; i++)
		if (cfg->intake.listen[i].kind != old->intake.listen[i].kind ||
		    cfg->intake.listen[i].port != old->intake.listen[i].port ||
		    strcmp(cfg->intake.listen[i].addr,
			old->intake.listen[i].addr) != 0)
			what = "[intake] listen";
	if (what == NULL)
		return 0;
	return sq_err_set(err, SQ_ECONFIG,
	    "%s: %s changed: a reload cannot apply it (sendqd keeps listening "
	    "where it does): restart sendqd (systemctl restart sendq), or put "
	    "the old value back",
	    cfg->path, what);
}

/*
 * SIGHUP: re-read the configuration.  An invalid one is refused with its
 * FILE:LINE message and the running one stays.  A valid one goes to the
 * scheduler (scheduler_reconfigure: smarthosts' settings, routing, queue
 * settings; it refuses a changed smarthost list) and log_level applies;
 * the listener, the maildrop pick-up and the control socket keep the
 * configuration they started with until a restart.  Every configuration
 * stays allocated until exit, since a connection in flight may still use
 * the one it was opened with (a few KiB per reload).
 */
static int
main_reload(struct main_state *st, struct sq_err *err)
{
	struct config *cfg = NULL, **all;

	service_reloading(st->service);
	log_info("reload: reading %s", st->config_path);
	if (config_load_file(st->config_path, &cfg, err) != 0 ||
	    main_check_tls(cfg, 1, err) != 0)
		goto refused;
	if (main_reload_check(st->cfg, cfg, err) != 0)
		goto refused;
	if (scheduler_reconfigure(st->sched, cfg, err) != 0)
		goto refused;
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): ptr array */
	all = xreallocarray(st->reloaded, st->n_reloaded + 1, sizeof(*all));
	st->reloaded = all;
	st->reloaded[st->n_reloaded++] = cfg;
	st->cfg = cfg;
	if (!st->debug)
		log_init("sendqd", (enum log_level)cfg->log_level);
	log_info("reload: %s applied (smarthosts, routing, queue, log_level; "
		 "[intake], maildrop and control socket settings at the next "
		 "restart)",
	    st->config_path);
	service_ready(st->service);
	return 0;
refused:
	log_err("reload refused, the running configuration stays: %s",
	    err->msg);
	config_free(cfg);
	service_ready(st->service);
	return err->code != 0 ? err->code : SQ_ECONFIG;
}

/* sendqctl reload (control_ops.reload). */
static int
main_op_reload(void *arg, struct sq_err *err)
{
	struct main_state *st = arg;

	if (st->stopping)
		return sq_err_set(err, -ESHUTDOWN, "sendqd is stopping");
	return main_reload(st, err);
}

static void
main_on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct main_state *st = arg;
	struct sq_err      err = { 0 };

	(void)sig;
	(void)what;
	if (!st->stopping)
		(void)main_reload(st, &err);
}

static void
main_on_stopped(void *arg)
{
	struct main_state *st = arg;

	event_base_loopbreak(st->base);
}

static void
main_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct main_state *st = arg;

	(void)what;
	if (st->stopping) {
		/* During the stop's grace (scheduler.h): drop the rest. */
		log_info("received %s again: stopping at once",
		    strsignal((int)sig));
		scheduler_stop_now(st->sched);
		return;
	}
	st->stopping = 1;
	service_stopping(st->service, "stopping: closing connections");
	intake_close_listeners(st->intake);
	log_info("received %s: stopping", strsignal((int)sig));
	scheduler_shutdown(st->sched, main_on_stopped, st);
}

/* The command line.  Returns -1 to go on, else the exit code (--help,
 * --version, a usage error). */
static int
main_options(int argc, char **argv, const char **config_path, int *check_only,
    int *debug)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'C' },
		{ "check-config", no_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "C:dhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			*config_path = optarg;
			break;
		case 'c':
			*check_only = 1;
			break;
		case 'd':
			*debug = 1;
			break;
		case 'h':
			main_usage(stdout);
			return 0;
		case 'V':
			printf("sendqd %s\n", SENDQ_VERSION);
			return 0;
		default:
			main_usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr,
		    "sendqd: unexpected argument \"%s\" (see sendqd --help)\n",
		    argv[optind]);
		return EX_USAGE;
	}
	return -1;
}

/* The configuration, its TLS files and the control rights (names to
 * ids, once).  Returns -1 to go on with *cfgp and *rights, else the exit
 * code (an error, or --check-config done). */
static int
main_configure(const char *config_path, int check_only, struct config **cfgp,
    struct control_rights **rights)
{
	struct config *cfg = NULL;
	struct sq_err  err = { 0 };

	if (config_load_file(config_path, &cfg, &err) != 0) {
		fprintf(stderr, "sendqd: %s\n", err.msg);
		return EX_CONFIG;
	}
	if (main_check_tls(cfg, check_only, &err) != 0 ||
	    control_rights_new(cfg, rights, &err) != 0) {
		fprintf(stderr, "sendqd: %s\n", err.msg);
		config_free(cfg);
		return EX_CONFIG;
	}
	if (check_only) {
		printf("sendqd: %s: configuration is valid (%zu smarthost%s)\n",
		    config_path, cfg->n_smarthosts,
		    cfg->n_smarthosts == 1 ? "" : "s");
		control_rights_free(*rights);
		*rights = NULL;
		config_free(cfg);
		return 0;
	}
	*cfgp = cfg;
	return -1;
}

/* The resolver: names asynchronously, /etc/hosts first, address
 * literals never leave the machine.  NULL when it cannot be made. */
static struct evdns_base *
main_resolver(struct event_base *base)
{
	struct evdns_base *dns;

	dns = evdns_base_new(base,
	    EVDNS_BASE_INITIALIZE_NAMESERVERS |
		EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (dns != NULL)
		return dns;
	/* No usable resolv.conf: /etc/hosts and literals still work. */
	dns = evdns_base_new(base, 0);
	if (dns != NULL && evdns_base_load_hosts(dns, NULL) != 0) {
		evdns_base_free(dns, 0);
		dns = NULL;
	}
	return dns;
}

/* The spool (queue/ given sendq-showq's group before anything writes an
 * envelope), the event loop, the resolver and the scheduler.  Returns 0,
 * or the exit code after logging why. */
static int
main_start_core(struct main_state *st, const struct config *cfg,
    const char *ehlo_name, struct spool **sp, struct evdns_base **dns)
{
	struct sq_err err = { 0 };
	int           fd;

	if (spool_open(cfg->spool_dir, 1, sp, &err) != 0) {
		log_err("cannot open the spool: %s", err.msg);
		return EX_CANTCREAT;
	}
	if (spool_set_queue_group(*sp, SENDQ_QUEUE_GROUP, &err) != 0)
		log_warn("spool: %s", err.msg);
	/* Before anything reads queue/: a crash may have left messages
	 * whose files only the write-ahead log holds. */
	if (spool_wal_open(*sp, 0, &err) != 0) {
		log_err("cannot open the spool's write-ahead log: %s", err.msg);
		return EX_CANTCREAT;
	}
	if ((st->base = event_base_new()) == NULL) {
		log_err("cannot create the event loop");
		return EX_OSERR;
	}
	/* Group commits on the spool's commit thread, answered here. */
	if ((fd = spool_async_start(*sp, &err)) < 0 ||
	    (st->spool_ev = event_new(st->base, fd, EV_READ | EV_PERSIST,
		 main_on_spool, *sp)) == NULL ||
	    event_add(st->spool_ev, NULL) != 0) {
		log_err("cannot start the spool's commit thread: %s",
		    fd < 0 ? err.msg : "event");
		return EX_OSERR;
	}
	if ((*dns = main_resolver(st->base)) == NULL) {
		log_err("cannot initialise the resolver");
		return EX_OSERR;
	}
	if (scheduler_new(st->base, *dns, cfg, ehlo_name, *sp, &st->sched,
		&err) != 0) {
		log_err("%s", err.msg);
		return EX_CONFIG;
	}
	return 0;
}

/* SIGTERM, SIGINT (stop) and SIGHUP (reload) on st->base into sigs. */
static void
main_signals(struct main_state *st, struct event *sigs[3])
{
	sigs[0] = evsignal_new(st->base, SIGTERM, main_on_signal, st);
	sigs[1] = evsignal_new(st->base, SIGINT, main_on_signal, st);
	sigs[2] = evsignal_new(st->base, SIGHUP, main_on_hup, st);
	evsignal_add(sigs[0], NULL);
	evsignal_add(sigs[1], NULL);
	evsignal_add(sigs[2], NULL);
}

/*
 * The ways in for new mail, after the scheduler has started: the guards
 * (the spool's free-space reserve, the per-uid limits counted by the
 * scheduler's index, into *quota), the SMTP listener, the maildrop
 * pick-up and the control socket (which takes *rights).  Returns 0, or
 * the exit code when the listener cannot start.
 */
static int
main_start_inputs(struct main_state *st, struct spool *sp, struct quota *quota,
    struct pickup **pickup, struct control **ctl,
    struct control_rights **rights)
{
	const struct config *cfg = st->cfg;
	struct control_ops   ops;
	struct sq_err        err = { 0 };

	spool_set_min_free(sp, cfg->min_free_space);
	memset(quota, 0, sizeof(*quota));
	quota->max_msgs = cfg->max_messages_per_user;
	quota->max_bytes = cfg->max_bytes_per_user;
	quota->daemon_uid = (long)geteuid();
	scheduler_quota_ops(st->sched, quota);
	/* The SMTP listener: nothing when [intake] listen is not set. */
	if (intake_new(st->base, cfg, sp, &st->intake, &err) != 0) {
		log_err("cannot start the SMTP listener: %s", err.msg);
		return EX_CONFIG;
	}
	intake_set_quota(st->intake, quota);
	/* The drop directory (maildrop/): without it the queue is still
	 * delivered. */
	if (pickup_new(st->base, cfg, sp, pickup, &err) != 0)
		log_warn("no maildrop pick-up: %s", err.msg);
	pickup_set_quota(*pickup, quota);
	/* Without the control socket the daemon still delivers; sendqctl
	 * then reads the spool directly (list, show). */
	scheduler_control_ops(st->sched, &ops);
	ops.reload = main_op_reload;
	ops.reload_arg = st;
	if (control_new(st->base, cfg->control_socket, cfg->spool_dir, &ops,
		ctl, &err) != 0)
		log_warn("no control socket: %s (sendqctl status, flush, hold "
			 "... will not work)",
		    err.msg);
	else {
		control_set_submit_limits(*ctl, cfg->intake.max_message_size,
		    cfg->intake.max_recipients);
		control_set_rights(*ctl, *rights);
		*rights = NULL;
	}
	control_share_spool(*ctl, sp);
	control_set_guards(*ctl, quota, cfg->min_free_space);
	return 0;
}

/* What main() starts besides st, stopped by main_stop(). */
struct main_parts {
	struct spool          *sp;
	struct evdns_base     *dns;
	struct control        *ctl;
	struct control_rights *rights;
	struct pickup         *pickup;
	struct metrics_http   *metrics;
	struct event          *sigs[3];
};

/* Stop and free what st and mp hold (any of it may be missing), in the
 * reverse order of starting; the configurations of reloads too.  Commits
 * in flight are finished and answered before their submitters go away. */
static void
main_stop(struct main_state *st, struct main_parts *mp)
{
	int i;

	if (mp->sp != NULL)
		spool_async_stop(mp->sp);
	if (st->spool_ev != NULL)
		event_free(st->spool_ev);
	metrics_http_free(mp->metrics);
	metrics_reset();
	intake_free(st->intake);
	pickup_free(mp->pickup);
	control_free(mp->ctl);
	control_rights_free(mp->rights);
	for (i = 0; i < 3; i++)
		if (mp->sigs[i] != NULL)
			event_free(mp->sigs[i]);
	service_free(st->service);
	scheduler_free(st->sched);
	if (mp->dns != NULL)
		evdns_base_free(mp->dns, 0);
	if (st->base != NULL)
		event_base_free(st->base);
	spool_close(mp->sp);
	while (st->n_reloaded > 0)
		config_free(st->reloaded[--st->n_reloaded]);
	free(st->reloaded);
}

int
main(int argc, char **argv)
{
	const char       *config_path = CONFIG_DEFAULT_PATH;
	struct config    *cfg = NULL;
	struct main_state st = { 0 };
	struct main_parts mp = { 0 };
	struct quota      quota;
	struct sq_err     err = { 0 };
	char              hostname[256];
	const char       *ehlo_name;
	int               check_only = 0, debug = 0, status = EX_OSERR, i;

	log_init("sendqd", LOG_LEVEL_INFO);
	/* Delivery lines carry QUEUE_ID, RELAY, RESULT in the journal. */
	log_set_structured(service_journal_send);
	if ((status = main_options(argc, argv, &config_path, &check_only,
		 &debug)) >= 0 ||
	    (status = main_configure(config_path, check_only, &cfg,
		 &mp.rights)) >= 0)
		return status;
	status = EX_OSERR;
	log_init("sendqd",
	    debug ? LOG_LEVEL_DEBUG : (enum log_level)cfg->log_level);

	ehlo_name = sq_hostname(cfg->hostname, hostname, sizeof(hostname));

	signal(SIGPIPE, SIG_IGN);
	if ((i = main_start_core(&st, cfg, ehlo_name, &mp.sp, &mp.dns)) != 0) {
		status = i;
		goto out;
	}
	st.config_path = config_path;
	st.cfg = cfg;
	st.debug = debug;
	st.service = service_new(st.base, main_status, &st);
	main_signals(&st, mp.sigs);
	if (scheduler_start(st.sched, &err) != 0) {
		log_err("cannot start: %s", err.msg);
		goto out;
	}
	if ((i = main_start_inputs(&st, mp.sp, &quota, &mp.pickup, &mp.ctl,
		 &mp.rights)) != 0) {
		status = i;
		goto out;
	}
	/* Prometheus metrics: a bad address is a configuration error. */
	st.spool = mp.sp;
	metrics_set_gauges(main_metrics_gauges, &st, cfg->n_smarthosts);
	if (cfg->metrics_listen != NULL &&
	    metrics_http_new(st.base, cfg->metrics_listen, &mp.metrics, &err) !=
		0) {
		log_err("%s", err.msg);
		status = EX_CONFIG;
		goto out;
	}
	log_info("started: config=%s spool=%s smarthosts=%zu", config_path,
	    cfg->spool_dir, cfg->n_smarthosts);
	service_ready(st.service);
	if (event_base_dispatch(st.base) < 0) {
		log_err("event loop failed");
		goto out;
	}
	log_info("stopped");
	status = 0;
out:
	main_stop(&st, &mp);
	config_free(cfg);
	return status;
}
