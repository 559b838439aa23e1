/*
 * config.h - the sendq.ini file, parsed and validated into an immutable
 * struct config.
 *
 * Owns: the table of every section and key (config.c, config_keys.h:
 * type, allowed values, default, documentation), the typed value parsers
 * (config_value.c) and the reader with the rules that relate keys to each
 * other (config_read.c).
 * May call: util, log, mailmsg (the address and host-name rule); never
 * sockets or the clock.  Uses inih with a line counting reader so every
 * error names file:line.
 *
 * DIAGNOSTICS: every error is one line in err->msg of the form
 *   "FILE:LINE: [SECTION] KEY: what is wrong (allowed: ...)"
 * or "FILE: cannot open: REASON" for an unreadable file.  Callers exit with
 * EX_CONFIG (78).
 */
#ifndef SENDQ_CONFIG_H
#define SENDQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sasl.h" /* enum sasl_mech */
#include "util.h"

/* The compiled-in paths.  CMake passes them from the install directories
 * (CMakeLists.txt: CMAKE_INSTALL_FULL_SYSCONFDIR, ..._LOCALSTATEDIR and
 * SENDQ_RUNDIR), so an install into any prefix is self-consistent; these
 * are the defaults of a build without them. */
#ifndef CONFIG_DEFAULT_PATH
#define CONFIG_DEFAULT_PATH "/etc/sendq/sendq.ini"
#endif
#ifndef CONFIG_DEFAULT_SPOOL
#define CONFIG_DEFAULT_SPOOL "/var/spool/sendq"
#endif
#ifndef CONFIG_DEFAULT_SOCKET
#define CONFIG_DEFAULT_SOCKET "/run/sendq/control.sock"
#endif

enum config_tls {
	CONFIG_TLS_IMPLICIT, /* TLS handshake before the greeting (465) */
	CONFIG_TLS_STARTTLS, /* EHLO, STARTTLS, handshake, EHLO (587/25) */
	CONFIG_TLS_NONE,     /* cleartext: only to a loopback host */
};

enum config_trust {
	CONFIG_TRUST_SYSTEM,   /* system trust store + host name */
	CONFIG_TRUST_CA_FILE,  /* the CAs in ca_file + host name */
	CONFIG_TRUST_INSECURE, /* no verification, logged at every use */
	CONFIG_TRUST_PIN,      /* only the SPKI pins (no chain, no name) */
};

/* [queue] bounce: what a permanent failure or expiry produces. */
enum config_bounce {
	CONFIG_BOUNCE_SENDER, /* an RFC 3464 DSN to the envelope sender */
	CONFIG_BOUNCE_ADMIN,  /* the DSN to admin_address instead */
	CONFIG_BOUNCE_NONE,   /* no DSN: the message is kept in failed/ */
};

/* OAuth 2.0 presets (issue 13): endpoints and scope filled in. */
enum config_oauth_provider {
	CONFIG_OAUTH_NONE, /* endpoints given as keys */
	CONFIG_OAUTH_GOOGLE,
	CONFIG_OAUTH_MICROSOFT, /* with oauth_tenant */
};

#define CONFIG_DEFAULT_STATE_DIR "/var/lib/sendq"

#define CONFIG_PIN_LEN  32 /* SHA-256 of the SubjectPublicKeyInfo */
#define CONFIG_PINS_MAX 8

struct config_smarthost {
	char             *name; /* from [smarthost NAME] */
	char             *host; /* name or address literal */
	unsigned          port; /* default: 465 implicit,
					 * 587 starttls, 25 none */
	enum config_tls   tls;
	enum config_trust trust;
	char             *ca_file; /* NULL unless trust = ca_file */
	int               line;    /* line of the section header */

	/* TLS details (issue 3). */
	char         *server_name; /* verified name and SNI; NULL = host */
	unsigned char pins[CONFIG_PINS_MAX][CONFIG_PIN_LEN];
	size_t        n_pins;       /* pin = sha256:BASE64 (repeatable or
					 * space-separated); with trust = pin
					 * only the pins count, with system or
					 * ca_file they are checked in
					 * addition to the chain */
	char         *tls_priority; /* NULL = sendq's default (TLS >= 1.2,
					 * AEAD ciphers, medium key profile) */
	char         *client_cert;  /* PEM, for mutual TLS (with key) */
	char         *client_key;

	/* AUTH (issue 3).  At most one secret source may be set. */
	enum sasl_mech auth; /* default: auto when user is set,
					 * none otherwise */
	char          *user;
	char          *password_file;    /* first line is the password */
	char          *password_command; /* run with /bin/sh -c; stdout's
					 * first line is the password */
	char          *credential;       /* systemd credential name, read from
					 * $CREDENTIALS_DIRECTORY/NAME */
	char          *token_file;       /* OAuth bearer token, read fresh for
					 * every connection */
	char          *token_command;

	/* OAuth 2.0 built in (issue 13): sendqd refreshes the access token
	 * with the refresh token in state_dir/oauth/NAME.  oauth is set when
	 * oauth_provider or oauth_token_endpoint is; the endpoints and scope
	 * are then filled (presets, unless given). */
	int   oauth;
	int   oauth_provider;        /* CONFIG_OAUTH_* */
	char *oauth_tenant;          /* microsoft: "common" */
	char *oauth_token_endpoint;  /* https:// URL */
	char *oauth_device_endpoint; /* RFC 8628, for init */
	char *oauth_client_id;
	char *oauth_client_secret_file;
	char *oauth_client_secret_credential;
	char *oauth_scope;
	char *oauth_ca_file; /* NULL: system store */

	/* Timeouts in seconds (RFC 5321 4.5.3.2 defaults). */
	unsigned timeout_connect;    /* 30s */
	unsigned timeout_tls;        /* 60s, TLS handshake */
	unsigned timeout_greeting;   /* 5m */
	unsigned timeout_command;    /* 5m, each command reply */
	unsigned timeout_data_block; /* 3m, each body write */
	unsigned timeout_data_end;   /* 10m, reply to the final dot */
	/* Queue engine (issue 4). */
	unsigned max_connections;         /* 2: concurrent connections */
	unsigned messages_per_connection; /* 500, then reconnect */
	unsigned idle_timeout;            /* 5s: close an idle one */
	int      pipeline_messages;       /* yes (1): the next message's
						 * commands follow a final dot
						 * (RFC 2920 3.1) */
	char   **match_sender;            /* globs (NULL-terminated list,
						 * NULL = no condition) */
	char   **match_recipient;
	char    *fallback;       /* NAME of another smarthost */
	int      fallback_index; /* its index, -1 = none */
	unsigned rate_count;     /* rate = N/s|m|h: at most
						 * rate_count messages per
						 * rate_seconds; 0 = unlimited */
	unsigned rate_seconds;

	unsigned session_max; /* 30m: the longest a
						 * connection may take to get
						 * ready, or to carry one
						 * message, however the bytes
						 * trickle in */
};

/* [intake] listen: one listening socket. */
enum config_listen_kind {
	CONFIG_LISTEN_INET,  /* "127.0.0.1:PORT" */
	CONFIG_LISTEN_INET6, /* "[::1]:PORT" */
	CONFIG_LISTEN_UNIX,  /* "unix:/PATH" */
};

struct config_listen {
	enum config_listen_kind kind;
	char                   *addr; /* address literal without brackets,
					 * or the socket path */
	unsigned                port; /* 0 for unix */
	int                     line; /* where it was given */
};

/* [intake] allow_networks: one CIDR network (host bits zero). */
struct config_network {
	int           family;   /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network byte order */
	unsigned      prefix;   /* 0..32 or 0..128 */
};

#define CONFIG_LISTEN_MAX   16
#define CONFIG_NETWORKS_MAX 64

/* [intake]: the SMTP listener for local programs (intake.h). */
struct config_intake {
	struct config_listen  *listen; /* none by default: no listener */
	size_t                 n_listen;
	uint64_t               max_message_size; /* 25M; bytes */
	unsigned               max_recipients;   /* 1000, per message */
	unsigned               max_clients;      /* 100 connections at once */
	unsigned               timeout;          /* 5m, waiting for a command
						 * or for message data */
	unsigned               max_clients_per_peer; /* 10 at once per uid (unix
						 * socket) or address (TCP);
						 * 0 = no limit */
	unsigned               max_junk_commands; /* 100 non-mail commands per
						 * session; 0 = no limit */
	struct config_network *allow_networks;    /* besides loopback and
						 * unix sockets, which are
						 * always allowed */
	size_t                 n_allow_networks;
};

/* [aliases] NAME = ADDRESS [ADDRESS ...]: one local name. */
#define CONFIG_ALIASES_MAX       4096 /* names in [aliases] */
#define CONFIG_ALIAS_TARGETS_MAX 64   /* addresses of one name */

struct config_alias {
	char  *name;    /* "root" or "root@host.example",
					 * lowercased */
	char **targets; /* "ops@example.com", or a bare local
					 * part to qualify with
					 * default_domain */
	size_t n_targets;
	int    line;
};

/* [sendq] admin_group, submit_users, submit_groups: user or group names
 * as written.  config.c only checks their syntax; sendqd resolves them
 * at start (control_rights_new in control.h) and reports an unknown name
 * at line. */
#define CONFIG_ACCOUNTS_MAX     256 /* names in one list */
#define CONFIG_ACCOUNT_NAME_MAX 32  /* characters of one name */

struct config_accounts {
	char **names; /* NULL-ended; NULL when not set */
	size_t n;
	int    line; /* where it was set; 0 = not set */
};

struct config {
	char    *path;                  /* the file this came from */
	char    *spool_dir;             /* [sendq] spool_dir */
	char    *hostname;              /* [sendq] hostname; NULL = not set,
					 * the caller uses gethostname() */
	unsigned retry_min;             /* [queue] retry_min (1m): the first
					 * retry delay; then doubling, with
					 * jitter, up to retry_max */
	unsigned retry_max;             /* [queue] retry_max (1h) */
	unsigned max_age;               /* [queue] max_age (5d): then the
					 * message fails (bounce) */
	int      bounce;                /* [queue] bounce: CONFIG_BOUNCE_* */
	char    *admin_address;         /* [queue] admin_address (required
					 * with bounce = admin) */
	unsigned delay_warning;         /* [queue] delay_warning: 0 = off
					 * (default); else send one
					 * "delayed" DSN after this long */
	char    *state_dir;             /* [sendq] state_dir (/var/lib/sendq):
					 * oauth/NAME refresh tokens */
	uint64_t min_free_space;        /* [queue] min_free_space (100M):
					 * new mail is refused below it;
					 * 0 = off */
	unsigned max_messages_per_user; /* [queue] (10000): queued
					 * messages per uid; 0 = no limit */
	uint64_t max_bytes_per_user;    /* [queue] (1G): queued bytes per
					 * uid; 0 = no limit */
	unsigned stop_grace;            /* [queue] stop_grace (5s): on a
					 * stop, how long deliveries past
					 * their final dot wait for the
					 * reply; 0 = drop all at once */
	char    *control_socket;        /* [sendq] control_socket
					 * (/run/sendq/control.sock) */
	char    *metrics_listen;        /* [sendq] metrics_listen; NULL:
					 * no metrics endpoint */
	struct config_smarthost *smarthosts; /* in file order */
	size_t                   n_smarthosts;
	int                      log_level; /* [sendq] log_level: an enum
					 * log_level value (log.h) */
	struct config_intake     intake;    /* [intake] */
	/* Address rewriting (rewrite.h). */
	char *default_domain;         /* [sendq] default_domain: qualifies
					 * bare local parts; NULL = hostname */
	char *rewrite_sender;         /* [sendq] rewrite_sender: an address
					 * or a domain; NULL = off */
	struct config_alias *aliases; /* [aliases], in file order */
	size_t               n_aliases;
	/* Local rights (control.h): empty = only root and the daemon's user
	 * administer; everyone may submit. */
	struct config_accounts admin_group;   /* [sendq] admin_group (one) */
	struct config_accounts submit_users;  /* [sendq] submit_users */
	struct config_accounts submit_groups; /* [sendq] submit_groups */
};

/* The longest line accepted in the file, in characters without the line
 * break; a longer line is an error rather than being split. */
#define CONFIG_LINE_MAX 197

/*
 * Parse and validate the file at path.
 * Returns 0 and sets *out (free with config_free), or a negative SQ_E* /
 * -errno with err filled (see DIAGNOSTICS); *out is then untouched.
 * Blocks on file I/O only.
 */
int config_load_file(const char *path, struct config **out, struct sq_err *err);

/*
 * config_load_file for a program that reads the configuration but opens
 * none of the files it names (sendq, sendq-drop, sendq-showq, run by any
 * user): with CONFIG_LOAD_CLIENT the files only sendqd opens (ca_file,
 * client_cert, client_key, oauth_ca_file) must still be absolute paths,
 * but are not checked to be readable by the caller (a client key is
 * sendqd's to read, not every sender's).  Everything else is checked.
 */
#define CONFIG_LOAD_CLIENT 0x1
int config_load_file_opts(const char *path, unsigned flags, struct config **out,
    struct sq_err *err);

/*
 * The same from text in memory; name is used as FILE in messages.
 */
int config_load_string(const char *name, const char *text, struct config **out,
    struct sq_err *err);

/* Free a config; NULL is accepted. */
void config_free(struct config *cfg);

/* Names for logs: "implicit", "starttls", "none"; "system", ... */
const char *config_tls_name(enum config_tls tls);
const char *config_trust_name(enum config_trust trust);
/* "none", "auto", "plain", "login", "scram-sha-256", "xoauth2",
 * "oauthbearer"; "unknown" for any other value. */
const char *config_auth_name(enum sasl_mech auth);
/* "none", "google", "microsoft". */
const char *config_oauth_provider_name(int provider);

#endif
