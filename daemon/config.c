/*
 * config.c - sendq.ini into struct config.
 *
 * How it works: inih does the ini syntax (comments, "key = value", inline
 * "; comment") through ini_parse_stream(), but the lines come from our own
 * reader, config_reader().  The reader counts lines, so the line being
 * parsed is always known when inih calls the handler (inih 55 as built by
 * Debian passes no line number).  The reader also:
 *  - refuses a line longer than CONFIG_LINE_MAX (inih would split it and
 *    parse the tail as a line of its own) and a NUL byte;
 *  - strips leading blanks and a UTF-8 BOM, so inih never sees an indented
 *    line and its multi-line continuation never applies (an indented
 *    "key = value" is an ordinary key, not a continuation of the previous
 *    value);
 *  - handles "[section]" headers itself (inih passes no event for them);
 *  - notices a key line for which inih did not call the handler: that is
 *    inih's syntax error (no '=' or ':'), reported at that line.
 * The first error is recorded with its line and the reader then returns
 * NULL (end of input), so exactly one error, the first in file order, is
 * reported.  Checks that need a whole section (required keys, ca_file with
 * trust, tls = none only to loopback, port defaults) run when the next
 * header or the end of the file is reached.
 *
 * Every key is a row of config_keys[] {section, key, type, allowed,
 * default, doc}.  Defaults are applied by parsing the default text through
 * the same code as a value from the file, so the table is the one source.
 * A key may appear once per section, except a CONFIG_F_REPEAT key (only
 * pin): each of its lines appends to the list, and its first line is the
 * one errors about the whole list point at.
 *
 * The rules between keys (ca_file and pins against trust, client_cert
 * with client_key, the AUTH mechanism against user and the one secret
 * source) also run at the end of the section; each error points at the
 * line to change.  Secrets themselves are never read here (secret.c does,
 * for each connection), and tls_priority is only stored: tls.c checks it
 * with GnuTLS when sendqd starts.
 *
 * [queue] has rules of its own, checked at the end of that section (it
 * appears at most once; without it the defaults agree): retry_min <=
 * retry_max and delay_warning (unless off) < max_age, each reported at the
 * later of the two lines with the other key's value and line (or "the
 * default"); bounce = admin needs admin_address, reported at the bounce
 * line.  match_sender / match_recipient lists (CONFIG_F_REPEAT: each line
 * adds globs) are only checked for their characters here; route.c matches
 * them.  fallback = NAME can name a smarthost further down, so names are
 * resolved after the whole file has been read (config_resolve_fallbacks):
 * every smarthost gets fallback_index (-1 without fallback), an unknown
 * name is an error at its fallback line, and so is a loop, reported at
 * the fallback line of its first member in file order.  Naming the
 * smarthost itself is caught at the end of its section.
 *
 * [intake] (at most once) configures the SMTP listener: listen and
 * allow_networks are lists (CONFIG_F_REPEAT: each line adds) checked
 * token by token; max_message_size is a size with K/M/G (binary)
 * units.  At the end of the section a listen address that is neither
 * loopback nor a unix socket is refused unless allow_networks is given,
 * reported at that listen line.
 *
 * [aliases] (at most once) has no key table: each line NAME = ADDRESS
 * ... is checked and stored by config_set_alias() (names lowercased,
 * duplicates refused); rewrite.c applies them.  default_domain and
 * rewrite_sender are ordinary [sendq] keys.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include <ini.h>

#include "config.h"
#include "log.h"
#include "util.h"

enum config_sect {
	CONFIG_SECT_NONE,
	CONFIG_SECT_SENDQ,
	CONFIG_SECT_QUEUE,
	CONFIG_SECT_SMARTHOST,
	CONFIG_SECT_INTAKE,
	CONFIG_SECT_ALIASES,	/* [aliases]: free-form names (compat) */
};

enum config_type {
	CONFIG_T_PATH,		/* absolute path */
	CONFIG_T_FILE,		/* absolute path of a readable file */
	CONFIG_T_HOSTNAME,	/* a host name (not an address) */
	CONFIG_T_HOST,		/* a host name or an IP address literal */
	CONFIG_T_ENUM,		/* one of choices[], stored as index */
	CONFIG_T_DURATION,	/* seconds, with optional unit s|m|h|d */
	CONFIG_T_UINT,		/* integer min..max */
	CONFIG_T_STRING,	/* any non-empty text */
	CONFIG_T_PIN,		/* sha256:BASE64 ..., appended to pins[] */
	CONFIG_T_CREDNAME,	/* a systemd credential name */
	CONFIG_T_SOCKET,	/* absolute path that fits a sun_path */
	CONFIG_T_ADDRESS,	/* an email address local@domain */
	CONFIG_T_DURATION_OFF,	/* "off" or 0 (stored as 0), or a duration */
	CONFIG_T_GLOBS,		/* address globs, appended to a NULL-ended
				 * char ** list */
	CONFIG_T_NAME,		/* a smarthost name (resolved later) */
	CONFIG_T_RATE,		/* N/s, N/m or N/h into rate_count and
				 * rate_seconds */
	CONFIG_T_LISTEN,	/* listen addresses, appended to
				 * cfg->intake.listen */
	CONFIG_T_SIZE,		/* bytes with optional K, M or G (1024);
				 * min and max in KiB; into a uint64_t */
	CONFIG_T_NETWORKS,	/* CIDR networks, appended to
				 * cfg->intake.allow_networks */
	CONFIG_T_SENDER_REWRITE, /* an address local@domain or a domain */
	CONFIG_T_ACCOUNTS,	/* user or group names (at most max of
				 * them) into a struct config_accounts */
};

#define CONFIG_F_REQUIRED	0x1
#define CONFIG_F_REPEAT		0x2	/* may be given on several lines */

/*
 * choices: CONFIG_T_ENUM's names, NULL-ended.  min, max: DURATION, PORT.
 * allowed: for messages (ENUM, DURATION and UINT build theirs).  def: the
 * default as text, NULL for none.  offset: into struct config, or into
 * struct config_smarthost for a smarthost key.
 */
struct config_key {
	enum config_sect	 sect;
	const char		*key;
	enum config_type	 type;
	const char *const	*choices;
	unsigned		 min, max;
	const char		*allowed;
	const char		*def;
	int			 flags;
	size_t			 offset;
	const char		*doc;
};

static const char *const config_log_level_names[] = {
	[LOG_LEVEL_ERR] = "error",
	[LOG_LEVEL_WARN] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
	NULL
};

static const char *const config_tls_names[] = {
	[CONFIG_TLS_IMPLICIT] = "implicit",
	[CONFIG_TLS_STARTTLS] = "starttls",
	[CONFIG_TLS_NONE] = "none",
	NULL
};

static const char *const config_trust_names[] = {
	[CONFIG_TRUST_SYSTEM] = "system",
	[CONFIG_TRUST_CA_FILE] = "ca_file",
	[CONFIG_TRUST_INSECURE] = "insecure",
	[CONFIG_TRUST_PIN] = "pin",
	NULL
};

static const char *const config_bounce_names[] = {
	[CONFIG_BOUNCE_SENDER] = "sender",
	[CONFIG_BOUNCE_ADMIN] = "admin",
	[CONFIG_BOUNCE_NONE] = "none",
	NULL
};

static const char *const config_auth_names[] = {
	[CONFIG_AUTH_NONE] = "none",
	[CONFIG_AUTH_AUTO] = "auto",
	[CONFIG_AUTH_PLAIN] = "plain",
	[CONFIG_AUTH_LOGIN] = "login",
	[CONFIG_AUTH_SCRAM_SHA_256] = "scram-sha-256",
	[CONFIG_AUTH_XOAUTH2] = "xoauth2",
	[CONFIG_AUTH_OAUTHBEARER] = "oauthbearer",
	NULL
};

static const char *const config_oauth_provider_names[] = {
	[CONFIG_OAUTH_NONE] = "none",
	[CONFIG_OAUTH_GOOGLE] = "google",
	[CONFIG_OAUTH_MICROSOFT] = "microsoft",
	NULL
};

/* Enum values are stored through an int. */
_Static_assert(sizeof(enum config_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_trust) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_auth) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_bounce) == sizeof(int), "enum size");

#define CONFIG_DAY	86400u
#define CONFIG_HOUR	3600u

/* The longest control_socket: what fits sockaddr_un.sun_path with its NUL. */
#define CONFIG_SOCKET_MAX	\
	(sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define CONFIG_GLOBS_MAX	256	/* per match_ key of a smarthost */
#define CONFIG_RATE_MAX		1000000u

#define CONFIG_GLOB_ALLOWED	"space-separated globs of letters, digits, " \
	"'*', '?', at most one '@' and . ! # $ % & ' + - / = ^ _ ` { | } ~, " \
	"such as *@example.com or *.example.org"
#define CONFIG_RATE_ALLOWED	"N/s, N/m or N/h with N from 1 to 1000000, " \
	"such as 100/h"

#define CONFIG_LISTEN_ALLOWED	"space-separated 127.0.0.1:PORT (any " \
	"IPv4 literal), [::1]:PORT (any IPv6 literal) or unix:/PATH"
#define CONFIG_NETWORKS_ALLOWED	"space-separated networks such as " \
	"192.168.1.0/24, fd00::/8 or a single address"
#define CONFIG_IN(field)	offsetof(struct config, intake.field)
#define CONFIG_ACCOUNTS_ALLOWED	"names of letters, digits, '.', '_', '-' " \
	"(not first) and a final '$', at most 32 characters each"

#define CONFIG_SH(field)	offsetof(struct config_smarthost, field)
#define CONFIG_TIMEOUT(key, def, field, doc)				\
	{ CONFIG_SECT_SMARTHOST, key, CONFIG_T_DURATION, NULL, 1,	\
	    CONFIG_HOUR, NULL, def, 0, CONFIG_SH(field), doc }

static const struct config_key config_keys[] = {
	{ CONFIG_SECT_SENDQ, "spool_dir", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", CONFIG_DEFAULT_SPOOL, 0,
	    offsetof(struct config, spool_dir),
	    "directory holding the queue" },
	{ CONFIG_SECT_SENDQ, "state_dir", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", CONFIG_DEFAULT_STATE_DIR, 0,
	    offsetof(struct config, state_dir),
	    "directory of sendqd's own state: oauth/NAME holds the OAuth "
	    "refresh token of smarthost NAME" },
	{ CONFIG_SECT_SENDQ, "hostname", CONFIG_T_HOSTNAME, NULL, 0, 0,
	    "a host name such as mail.example.com", NULL, 0,
	    offsetof(struct config, hostname),
	    "EHLO name and default sender domain; default: gethostname()" },
	{ CONFIG_SECT_SENDQ, "default_domain", CONFIG_T_HOSTNAME, NULL, 0, 0,
	    "a domain such as example.com", NULL, 0,
	    offsetof(struct config, default_domain),
	    "domain for addresses without one (root, www-data); default: "
	    "hostname" },
	{ CONFIG_SECT_SENDQ, "rewrite_sender", CONFIG_T_SENDER_REWRITE, NULL,
	    0, 0, "an address such as alerts@example.com or a domain such as "
	    "example.com", NULL, 0, offsetof(struct config, rewrite_sender),
	    "masquerading: every envelope sender becomes this address (or "
	    "LOCAL@this domain); default: off" },
	{ CONFIG_SECT_SENDQ, "log_level", CONFIG_T_ENUM,
	    config_log_level_names, 0, 0, NULL, "info", 0,
	    offsetof(struct config, log_level),
	    "most verbose level logged" },
	{ CONFIG_SECT_SENDQ, "control_socket", CONFIG_T_SOCKET, NULL, 0, 0,
	    NULL, CONFIG_DEFAULT_SOCKET, 0,
	    offsetof(struct config, control_socket),
	    "unix socket sendqctl talks to" },
	{ CONFIG_SECT_SENDQ, "metrics_listen", CONFIG_T_STRING, NULL, 0, 0,
	    "127.0.0.1:PORT, [::1]:PORT or unix:/PATH", NULL, 0,
	    offsetof(struct config, metrics_listen),
	    "where sendqd serves Prometheus metrics (GET /metrics); "
	    "default: off" },
	{ CONFIG_SECT_SENDQ, "admin_group", CONFIG_T_ACCOUNTS, NULL, 1, 1,
	    "a group name; " CONFIG_ACCOUNTS_ALLOWED, NULL, 0,
	    offsetof(struct config, admin_group),
	    "members see every queued message and may hold, release, "
	    "delete, bounce, retry and flush (besides root and sendqd's "
	    "user); default: none" },
	{ CONFIG_SECT_SENDQ, "submit_users", CONFIG_T_ACCOUNTS, NULL, 1,
	    CONFIG_ACCOUNTS_MAX, "space-separated user names; "
	    CONFIG_ACCOUNTS_ALLOWED, NULL, 0,
	    offsetof(struct config, submit_users),
	    "only these users (with submit_groups, root and sendqd's user) "
	    "may submit through the control socket; default: everyone" },
	{ CONFIG_SECT_SENDQ, "submit_groups", CONFIG_T_ACCOUNTS, NULL, 1,
	    CONFIG_ACCOUNTS_MAX, "space-separated group names; "
	    CONFIG_ACCOUNTS_ALLOWED, NULL, 0,
	    offsetof(struct config, submit_groups),
	    "members of these groups may submit too when submit_users or "
	    "submit_groups is set; default: everyone may submit" },
	{ CONFIG_SECT_QUEUE, "retry_min", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_DAY, NULL, "1m", 0, offsetof(struct config, retry_min),
	    "delay before a deferred message is tried again" },
	{ CONFIG_SECT_QUEUE, "retry_max", CONFIG_T_DURATION, NULL, 1,
	    7 * CONFIG_DAY, NULL, "1h", 0, offsetof(struct config, retry_max),
	    "longest delay between attempts (the delay doubles from "
	    "retry_min up to this); at least retry_min" },
	{ CONFIG_SECT_QUEUE, "max_age", CONFIG_T_DURATION, NULL, 60,
	    365 * CONFIG_DAY, NULL, "5d", 0, offsetof(struct config, max_age),
	    "how long a message is tried before it fails" },
	{ CONFIG_SECT_QUEUE, "bounce", CONFIG_T_ENUM, config_bounce_names, 0,
	    0, NULL, "sender", 0, offsetof(struct config, bounce),
	    "who gets the delivery status notification of a failed message" },
	{ CONFIG_SECT_QUEUE, "admin_address", CONFIG_T_ADDRESS, NULL, 0, 0,
	    "an email address such as postmaster@example.com", NULL, 0,
	    offsetof(struct config, admin_address),
	    "recipient of every DSN with bounce = admin" },
	{ CONFIG_SECT_QUEUE, "delay_warning", CONFIG_T_DURATION_OFF, NULL, 1,
	    365 * CONFIG_DAY, NULL, "off", 0,
	    offsetof(struct config, delay_warning),
	    "after this long undelivered, the sender gets one \"delayed\" "
	    "DSN; less than max_age" },
	{ CONFIG_SECT_QUEUE, "min_free_space", CONFIG_T_SIZE, NULL, 0,
	    1024u * 1024 * 1024, NULL, "100M", 0,
	    offsetof(struct config, min_free_space),
	    "free space kept on the spool's filesystem: below it new mail is "
	    "refused (452 4.3.1, exit 75) while the queue drains and bounces "
	    "are still written; 0 = off" },
	{ CONFIG_SECT_QUEUE, "max_messages_per_user", CONFIG_T_UINT, NULL, 0,
	    100000000, NULL, "10000", 0,
	    offsetof(struct config, max_messages_per_user),
	    "messages one uid may have queued (root and sendqd's user "
	    "exempt); more are refused 452 4.3.1 / exit 75; 0 = no limit" },
	{ CONFIG_SECT_QUEUE, "max_bytes_per_user", CONFIG_T_SIZE, NULL, 0,
	    1024u * 1024 * 1024, NULL, "1G", 0,
	    offsetof(struct config, max_bytes_per_user),
	    "bytes of messages one uid may have queued (root and sendqd's "
	    "user exempt); more are refused 452 4.3.1 / exit 75; 0 = no "
	    "limit" },
	{ CONFIG_SECT_SMARTHOST, "host", CONFIG_T_HOST, NULL, 0, 0,
	    "a host name or an IP address", NULL, CONFIG_F_REQUIRED,
	    offsetof(struct config_smarthost, host),
	    "the smarthost to relay to" },
	{ CONFIG_SECT_SMARTHOST, "port", CONFIG_T_UINT, NULL, 1, 65535,
	    NULL, NULL, 0, offsetof(struct config_smarthost, port),
	    "default: 465 for tls = implicit, 587 starttls, 25 none" },
	{ CONFIG_SECT_SMARTHOST, "tls", CONFIG_T_ENUM, config_tls_names, 0,
	    0, NULL, "starttls", 0, offsetof(struct config_smarthost, tls),
	    "implicit TLS, STARTTLS, or cleartext to loopback only" },
	{ CONFIG_SECT_SMARTHOST, "trust", CONFIG_T_ENUM, config_trust_names,
	    0, 0, NULL, "system", 0, offsetof(struct config_smarthost, trust),
	    "how the server certificate is verified" },
	{ CONFIG_SECT_SMARTHOST, "ca_file", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    offsetof(struct config_smarthost, ca_file),
	    "the CAs trusted with trust = ca_file" },
	{ CONFIG_SECT_SMARTHOST, "pin", CONFIG_T_PIN, NULL, 0, 0,
	    "sha256:BASE64, the base64 of the SHA-256 of the server's "
	    "SubjectPublicKeyInfo (44 characters)", NULL, CONFIG_F_REPEAT,
	    CONFIG_SH(pins),
	    "server public key pins; the only check with trust = pin, "
	    "checked in addition to the chain with system or ca_file" },
	{ CONFIG_SECT_SMARTHOST, "server_name", CONFIG_T_HOSTNAME, NULL, 0,
	    0, "a host name such as smtp.example.com", NULL, 0,
	    CONFIG_SH(server_name),
	    "name verified in the certificate and sent as SNI; "
	    "default: host" },
	{ CONFIG_SECT_SMARTHOST, "tls_priority", CONFIG_T_STRING, NULL, 0,
	    0, "a GnuTLS priority string", NULL, 0, CONFIG_SH(tls_priority),
	    "GnuTLS priority string; default: TLS 1.2 or later with AEAD "
	    "ciphers (checked by sendqd at start)" },
	{ CONFIG_SECT_SMARTHOST, "client_cert", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    CONFIG_SH(client_cert),
	    "client certificate for mutual TLS (with client_key)" },
	{ CONFIG_SECT_SMARTHOST, "client_key", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    CONFIG_SH(client_key),
	    "private key of client_cert" },
	{ CONFIG_SECT_SMARTHOST, "auth", CONFIG_T_ENUM, config_auth_names,
	    0, 0, NULL, NULL, 0, CONFIG_SH(auth),
	    "SMTP AUTH mechanism; default: auto when user is set, none "
	    "otherwise" },
	{ CONFIG_SECT_SMARTHOST, "user", CONFIG_T_STRING, NULL, 0, 0,
	    "a user name", NULL, 0, CONFIG_SH(user),
	    "user name for SMTP AUTH" },
	{ CONFIG_SECT_SMARTHOST, "password_file", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", NULL, 0, CONFIG_SH(password_file),
	    "file whose first line is the password (mode 0600 or 0640)" },
	{ CONFIG_SECT_SMARTHOST, "password_command", CONFIG_T_STRING, NULL,
	    0, 0, "a shell command", NULL, 0, CONFIG_SH(password_command),
	    "command (/bin/sh -c) whose first output line is the password" },
	{ CONFIG_SECT_SMARTHOST, "credential", CONFIG_T_CREDNAME, NULL, 0,
	    0, "a systemd credential name: letters, digits, '_', '.', '-'",
	    NULL, 0, CONFIG_SH(credential),
	    "systemd credential holding the password "
	    "($CREDENTIALS_DIRECTORY/NAME, see LoadCredential=)" },
	{ CONFIG_SECT_SMARTHOST, "token_file", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", NULL, 0, CONFIG_SH(token_file),
	    "file whose first line is an OAuth bearer token, read for every "
	    "connection" },
	{ CONFIG_SECT_SMARTHOST, "token_command", CONFIG_T_STRING, NULL, 0,
	    0, "a shell command", NULL, 0, CONFIG_SH(token_command),
	    "command (/bin/sh -c) printing an OAuth bearer token, run for "
	    "every connection" },
	{ CONFIG_SECT_SMARTHOST, "oauth_provider", CONFIG_T_ENUM,
	    config_oauth_provider_names, 0, 0, NULL, "none", 0,
	    CONFIG_SH(oauth_provider),
	    "OAuth 2.0 preset filling oauth_token_endpoint, "
	    "oauth_device_endpoint and oauth_scope: google or microsoft" },
	{ CONFIG_SECT_SMARTHOST, "oauth_tenant", CONFIG_T_STRING, NULL, 0,
	    0, "a Microsoft Entra tenant id or domain", "common", 0,
	    CONFIG_SH(oauth_tenant),
	    "tenant in the Microsoft endpoints (oauth_provider = microsoft)" },
	{ CONFIG_SECT_SMARTHOST, "oauth_token_endpoint", CONFIG_T_STRING,
	    NULL, 0, 0, "an https:// URL", NULL, 0,
	    CONFIG_SH(oauth_token_endpoint),
	    "OAuth 2.0 token endpoint; sendqd refreshes the access token "
	    "there; default: the preset's" },
	{ CONFIG_SECT_SMARTHOST, "oauth_device_endpoint", CONFIG_T_STRING,
	    NULL, 0, 0, "an https:// URL", NULL, 0,
	    CONFIG_SH(oauth_device_endpoint),
	    "device authorization endpoint (RFC 8628) used by sendqctl oauth "
	    "init; default: the preset's" },
	{ CONFIG_SECT_SMARTHOST, "oauth_client_id", CONFIG_T_STRING, NULL, 0,
	    0, "the client id registered with the provider", NULL, 0,
	    CONFIG_SH(oauth_client_id),
	    "OAuth 2.0 client id (required with OAuth)" },
	{ CONFIG_SECT_SMARTHOST, "oauth_client_secret_file", CONFIG_T_PATH,
	    NULL, 0, 0, "an absolute path", NULL, 0,
	    CONFIG_SH(oauth_client_secret_file),
	    "file whose first line is the client secret (mode 0600 or "
	    "0640); default: none (a public client)" },
	{ CONFIG_SECT_SMARTHOST, "oauth_client_secret_credential",
	    CONFIG_T_CREDNAME, NULL, 0, 0, "a systemd credential name: "
	    "letters, digits, '_', '.', '-'", NULL, 0,
	    CONFIG_SH(oauth_client_secret_credential),
	    "systemd credential holding the client secret" },
	{ CONFIG_SECT_SMARTHOST, "oauth_scope", CONFIG_T_STRING, NULL, 0, 0,
	    "space-separated scopes", NULL, 0, CONFIG_SH(oauth_scope),
	    "scope asked for; default: the preset's" },
	{ CONFIG_SECT_SMARTHOST, "oauth_ca_file", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    CONFIG_SH(oauth_ca_file),
	    "CAs trusted for the OAuth endpoints; default: the system store" },
	CONFIG_TIMEOUT("timeout_connect", "30s", timeout_connect,
	    "TCP connection set-up"),
	CONFIG_TIMEOUT("timeout_tls", "1m", timeout_tls,
	    "TLS handshake"),
	CONFIG_TIMEOUT("timeout_greeting", "5m", timeout_greeting,
	    "the server's 220 greeting"),
	CONFIG_TIMEOUT("timeout_command", "5m", timeout_command,
	    "the reply to each command"),
	CONFIG_TIMEOUT("timeout_data_block", "3m", timeout_data_block,
	    "each write of the message body"),
	CONFIG_TIMEOUT("timeout_data_end", "10m", timeout_data_end,
	    "the reply to the final dot"),
	{ CONFIG_SECT_SMARTHOST, "session_max", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_DAY, NULL, "30m", 0, CONFIG_SH(session_max),
	    "longest a connection may take to get ready or to carry one "
	    "message" },
	{ CONFIG_SECT_SMARTHOST, "max_connections", CONFIG_T_UINT, NULL, 1,
	    100, NULL, "2", 0, CONFIG_SH(max_connections),
	    "connections open at the same time" },
	{ CONFIG_SECT_SMARTHOST, "messages_per_connection", CONFIG_T_UINT,
	    NULL, 1, 100000, NULL, "100", 0,
	    CONFIG_SH(messages_per_connection),
	    "messages sent over one connection before it is closed" },
	{ CONFIG_SECT_SMARTHOST, "idle_timeout", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_HOUR, NULL, "5s", 0, CONFIG_SH(idle_timeout),
	    "an idle connection is closed after this long" },
	{ CONFIG_SECT_SMARTHOST, "match_sender", CONFIG_T_GLOBS, NULL, 0, 0,
	    CONFIG_GLOB_ALLOWED, NULL, CONFIG_F_REPEAT, CONFIG_SH(match_sender),
	    "route here mail whose envelope sender matches one of the globs" },
	{ CONFIG_SECT_SMARTHOST, "match_recipient", CONFIG_T_GLOBS, NULL, 0,
	    0, CONFIG_GLOB_ALLOWED, NULL, CONFIG_F_REPEAT,
	    CONFIG_SH(match_recipient),
	    "route here recipients that match one of the globs" },
	{ CONFIG_SECT_SMARTHOST, "fallback", CONFIG_T_NAME, NULL, 0, 0,
	    "the NAME of another [smarthost NAME]", NULL, 0,
	    CONFIG_SH(fallback),
	    "smarthost that takes the mail when this one cannot be reached "
	    "or answers 4xx at connection level" },
	{ CONFIG_SECT_SMARTHOST, "rate", CONFIG_T_RATE, NULL, 0, 0,
	    CONFIG_RATE_ALLOWED, NULL, 0, CONFIG_SH(rate_count),
	    "at most N messages per second, minute or hour; default: no "
	    "limit" },
	{ CONFIG_SECT_INTAKE, "listen", CONFIG_T_LISTEN, NULL, 0, 0,
	    CONFIG_LISTEN_ALLOWED, NULL, CONFIG_F_REPEAT, CONFIG_IN(listen),
	    "where the SMTP listener accepts local clients; default: no "
	    "listener" },
	{ CONFIG_SECT_INTAKE, "max_message_size", CONFIG_T_SIZE, NULL, 1,
	    4u * 1024 * 1024, NULL, "25M", 0, CONFIG_IN(max_message_size),
	    "largest message accepted (advertised as SIZE)" },
	{ CONFIG_SECT_INTAKE, "max_recipients", CONFIG_T_UINT, NULL, 1,
	    100000, NULL, "1000", 0, CONFIG_IN(max_recipients),
	    "recipients per message; more get 452 4.5.3" },
	{ CONFIG_SECT_INTAKE, "max_clients", CONFIG_T_UINT, NULL, 1, 10000,
	    NULL, "100", 0, CONFIG_IN(max_clients),
	    "connections served at once; more get 421 4.3.2" },
	{ CONFIG_SECT_INTAKE, "timeout", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_HOUR, NULL, "5m", 0, CONFIG_IN(timeout),
	    "how long a client may take to send a command or more message "
	    "data; then 421 4.4.2" },
	{ CONFIG_SECT_INTAKE, "max_clients_per_peer", CONFIG_T_UINT, NULL,
	    0, 10000, NULL, "10", 0, CONFIG_IN(max_clients_per_peer),
	    "connections served at once from one uid (unix socket) or one "
	    "address (TCP); more get 421 4.7.0; 0 = no limit" },
	{ CONFIG_SECT_INTAKE, "max_junk_commands", CONFIG_T_UINT, NULL, 0,
	    100000, NULL, "100", 0, CONFIG_IN(max_junk_commands),
	    "NOOP, RSET, VRFY, EXPN, HELP, repeated HELO/EHLO and unknown "
	    "commands a session may send (counted afresh after each "
	    "accepted message); one more gets 421 4.7.0; 0 = no limit" },
	{ CONFIG_SECT_INTAKE, "allow_networks", CONFIG_T_NETWORKS, NULL, 0,
	    0, CONFIG_NETWORKS_ALLOWED, NULL, CONFIG_F_REPEAT,
	    CONFIG_IN(allow_networks),
	    "TCP clients served besides loopback ones (others get 554); "
	    "required for a listen address that is not loopback" },
};

#define CONFIG_NKEYS	(sizeof(config_keys) / sizeof(config_keys[0]))

#define CONFIG_NAME_MAX	64	/* [smarthost NAME] */

struct config_parser {
	struct config	*cfg;
	char		 file[256];	/* printable FILE for messages */

	/* Input: a FILE or a NUL-terminated string. */
	FILE		*fp;
	const char	*text;
	int		 read_errno;

	int		 line;		/* the last line read */
	int		 pending;	/* key line not seen by handler */

	/* The current section. */
	enum config_sect sect;
	char		 label[96];	/* "sendq", "smarthost NAME" */
	int		 sect_line;
	int		 seen[CONFIG_NKEYS];	/* line of each key */
	int		 sendq_line, queue_line, intake_line;
	int		 aliases_line;	/* [aliases] header, 0 = none */
	int		*fallback_lines;	/* per smarthost, 0 = none */

	int		 failed;
	int		 code;
	struct sq_err	*err;
};

/*
 * Record the first error: "FILE:LINE: [LABEL] KEY: what".  label and key
 * may be NULL; later errors are ignored.
 */
static void SQ_PRINTF(5, 6)
config_fail(struct config_parser *p, int line, const char *label,
    const char *key, const char *fmt, ...)
{
	va_list ap;
	char what[512];

	if (p->failed)
		return;
	p->failed = 1;
	p->code = SQ_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (label != NULL && key != NULL)
		sq_err_set(p->err, p->code, "%s:%d: [%s] %s: %s", p->file,
		    line, label, key, what);
	else if (label != NULL)
		sq_err_set(p->err, p->code, "%s:%d: [%s]: %s", p->file, line,
		    label, what);
	else if (key != NULL)
		sq_err_set(p->err, p->code, "%s:%d: %s: %s", p->file, line,
		    key, what);
	else
		sq_err_set(p->err, p->code, "%s:%d: %s", p->file, line, what);
}

static const char *
config_name_of(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n || names[v] == NULL)
		return "unknown";
	return names[v];
}

const char *
config_tls_name(enum config_tls tls)
{
	return config_name_of(config_tls_names,
	    sizeof(config_tls_names) / sizeof(config_tls_names[0]), (int)tls);
}

const char *
config_trust_name(enum config_trust trust)
{
	return config_name_of(config_trust_names,
	    sizeof(config_trust_names) / sizeof(config_trust_names[0]),
	    (int)trust);
}

const char *
config_oauth_provider_name(int provider)
{
	return config_name_of(config_oauth_provider_names,
	    sizeof(config_oauth_provider_names) /
	    sizeof(config_oauth_provider_names[0]), provider);
}

const char *
config_auth_name(enum config_auth auth)
{
	return config_name_of(config_auth_names,
	    sizeof(config_auth_names) / sizeof(config_auth_names[0]),
	    (int)auth);
}

/* "a, b, c" from a NULL-ended list, into buf. */
static const char *
config_join(char *buf, size_t bufsz, const char *const *names)
{
	size_t i, len = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; names[i] != NULL; i++) {
		n = snprintf(buf + len, bufsz - len, "%s%s", i ? ", " : "",
		    names[i]);
		if (n < 0 || (size_t)n >= bufsz - len)
			break;
		len += (size_t)n;
	}
	return buf;
}

/* The allowed-values text of a key, for messages. */

/* Keys of a section, "a, b, c". */
static const char *
config_section_keys(enum config_sect sect, char *buf, size_t bufsz)
{
	const char *names[CONFIG_NKEYS + 1];
	size_t i, n = 0;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (config_keys[i].sect == sect)
			names[n++] = config_keys[i].key;
	names[n] = NULL;
	return config_join(buf, bufsz, names);
}

/* Largest exact unit: 86400 -> "1d", 90 -> "90s". */
static const char *
config_fmt_duration(char *buf, size_t bufsz, unsigned secs)
{
	if (secs != 0 && secs % CONFIG_DAY == 0)
		snprintf(buf, bufsz, "%ud", secs / CONFIG_DAY);
	else if (secs != 0 && secs % 3600 == 0)
		snprintf(buf, bufsz, "%uh", secs / 3600);
	else if (secs != 0 && secs % 60 == 0)
		snprintf(buf, bufsz, "%um", secs / 60);
	else
		snprintf(buf, bufsz, "%us", secs);
	return buf;
}

static const char *
config_allowed(const struct config_key *k, char *buf, size_t bufsz)
{
	char lo[16], hi[16];

	switch (k->type) {
	case CONFIG_T_ENUM:
		return config_join(buf, bufsz, k->choices);
	case CONFIG_T_UINT:
		snprintf(buf, bufsz, "%u to %u", k->min, k->max);
		return buf;
	case CONFIG_T_DURATION:
	case CONFIG_T_DURATION_OFF:
		snprintf(buf, bufsz, "%s%s to %s, a number with optional unit "
		    "s, m, h or d", k->type == CONFIG_T_DURATION_OFF ?
		    "off or 0, or " : "",
		    config_fmt_duration(lo, sizeof(lo), k->min),
		    config_fmt_duration(hi, sizeof(hi), k->max));
		return buf;
	case CONFIG_T_SOCKET:
		snprintf(buf, bufsz, "an absolute path of at most %zu bytes",
		    CONFIG_SOCKET_MAX);
		return buf;
	case CONFIG_T_SIZE:
		snprintf(buf, bufsz, "%uK to %uG, a number of bytes with "
		    "optional unit K, M or G", k->min, k->max / (1024 * 1024));
		return buf;
	default:
		return k->allowed;
	}
}

/*
 * A host name: dot-separated labels of letters, digits and '-' (not at
 * either end of a label), 1-63 characters each, 253 in all; the last label
 * is not all digits (that would be an address, not a name).
 */
static int
config_valid_hostname(const char *s)
{
	size_t len, label = 0;
	int digits_only = 1;
	const char *c;

	len = strlen(s);
	if (len == 0 || len > 253)
		return 0;
	for (c = s; *c != '\0'; c++) {
		if (*c == '.') {
			if (label == 0 || c[-1] == '-')
				return 0;
			label = 0;
			digits_only = 1;
			continue;
		}
		if (!isalnum((unsigned char)*c) && *c != '-')
			return 0;
		if (*c == '-' && label == 0)
			return 0;
		if (!isdigit((unsigned char)*c))
			digits_only = 0;
		if (++label > 63)
			return 0;
	}
	return label != 0 && c[-1] != '-' && !digits_only;
}

static int
config_is_ip(const char *s, int family)
{
	unsigned char addr[16];

	return inet_pton(family, s, addr) == 1;
}

/* Parse "90", "90s", "5m", "2h", "1d" into seconds; -1 if malformed. */
static long long
config_parse_duration(const char *s)
{
	long long v = 0;
	const char *c = s;

	if (!isdigit((unsigned char)*c))
		return -1;
	for (; isdigit((unsigned char)*c); c++) {
		if (v < 1000LL * 1000 * 1000)	/* else out of range */
			v = v * 10 + (*c - '0');
	}
	switch (*c) {
	case '\0':
		return v;
	case 's':
		break;
	case 'm':
		v *= 60;
		break;
	case 'h':
		v *= 3600;
		break;
	case 'd':
		v *= CONFIG_DAY;
		break;
	default:
		return -1;
	}
	return c[1] == '\0' ? v : -1;
}

/* Decimal digits only, no sign; -1 if malformed. */
static long long
config_parse_uint(const char *s)
{
	long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v < 1000LL * 1000 * 1000)	/* else out of range */
			v = v * 10 + (*s - '0');
	}
	return v;
}

/* A systemd credential name: a file name under $CREDENTIALS_DIRECTORY. */
static int
config_valid_credname(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > 255 || strcmp(s, ".") == 0 ||
	    strcmp(s, "..") == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("_.-", s[i]) ==
		    NULL)
			return 0;
	return 1;
}

/* A smarthost NAME: 1 to CONFIG_NAME_MAX of [A-Za-z0-9._-]. */
static int
config_valid_name(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > CONFIG_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) ==
		    NULL)
			return 0;
	return 1;
}

/* RFC 5322 atext, the characters of an unquoted local part. */
static int
config_is_atext(int c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c)
	    != NULL);
}

/*
 * An email address as admin_address: a dot-atom local part (atext
 * separated by single dots, 1 to 64 characters), '@', a host name.
 * Nothing else: no blanks, no <>, no quoting, no comments.
 */
static int
config_valid_address(const char *s)
{
	const char *at, *c;

	if ((at = strchr(s, '@')) == NULL || at == s || at - s > 64 ||
	    s[0] == '.' || at[-1] == '.')
		return 0;
	for (c = s; c < at; c++) {
		if (*c == '.' ? c[1] == '.' :
		    !config_is_atext((unsigned char)*c))
			return 0;
	}
	return config_valid_hostname(at + 1);
}

/* One glob of match_sender / match_recipient (len bytes at s). */
static int
config_valid_glob(const char *s, size_t len)
{
	size_t i, ats = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '@')
			ats++;
		else if (s[i] != '.' && !config_is_atext((unsigned char)s[i]))
			return 0;
	}
	return ats <= 1;
}

/*
 * A user or group name as useradd/groupadd accept it (and NAME_REGEX of
 * Debian's adduser, relaxed): letters, digits, '.', '_', '-' (not
 * first), an optional final '$' (machine accounts), 1 to
 * CONFIG_ACCOUNT_NAME_MAX characters, not all digits (a number would
 * read as an id).
 */
static int
config_valid_account(const char *s, size_t len)
{
	size_t i;
	int digits = 1;

	if (len == 0 || len > CONFIG_ACCOUNT_NAME_MAX || s[0] == '-')
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '$' && i == len - 1 && i > 0)
			break;
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) ==
		    NULL)
			return 0;
		if (!isdigit((unsigned char)s[i]))
			digits = 0;
	}
	return !digits;
}

static void *
config_field(struct config_parser *p, const struct config_key *k)
{
	char *base;

	if (k->sect == CONFIG_SECT_SMARTHOST)
		base = (char *)&p->cfg->smarthosts[p->cfg->n_smarthosts - 1];
	else
		base = (char *)p->cfg;
	return base + k->offset;
}

static void
config_set_string(struct config_parser *p, const struct config_key *k,
    const char *v, size_t len)
{
	char **field = config_field(p, k);

	free(*field);
	*field = xstrndup(v, len);
}

/*
 * pin = sha256:BASE64 [sha256:BASE64 ...]: each appended to the current
 * smarthost's pins[].  Returns 0, or -1 with the error recorded.
 */
static int
config_set_pins(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *ok)
{
	struct config_smarthost *sh;
	unsigned char pin[CONFIG_PIN_LEN], raw[CONFIG_LINE_MAX];
	char shown[CONFIG_LINE_MAX + 1];
	const char *tok, *b64;
	size_t len, i;
	size_t rawlen;

	sh = &p->cfg->smarthosts[p->cfg->n_smarthosts - 1];
	for (tok = value; *tok != '\0'; tok += len) {
		while (*tok == ' ')
			tok++;
		len = strcspn(tok, " ");
		if (len == 0)
			break;
		sq_printable(shown, sizeof(shown), tok, len);
		if (len < 7 || strncasecmp(tok, "sha256:", 7) != 0) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" does not start with sha256: (allowed: %s)",
			    shown, ok);
			return -1;
		}
		b64 = tok + 7;
		if (len == 7 || sq_base64_decode(b64, len - 7, raw,
		    sizeof(raw), &rawlen) != 0) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not valid base64 after sha256: "
			    "(allowed: %s)", shown, ok);
			return -1;
		}
		if (rawlen != CONFIG_PIN_LEN) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" decodes to %zu bytes, a SHA-256 has %d "
			    "(allowed: %s)", shown, rawlen, CONFIG_PIN_LEN, ok);
			return -1;
		}
		memcpy(pin, raw, CONFIG_PIN_LEN);
		for (i = 0; i < sh->n_pins; i++) {
			if (memcmp(sh->pins[i], pin, CONFIG_PIN_LEN) == 0) {
				config_fail(p, line, p->label, k->key,
				    "\"%s\" is given twice", shown);
				return -1;
			}
		}
		if (sh->n_pins == CONFIG_PINS_MAX) {
			config_fail(p, line, p->label, k->key,
			    "too many pins (allowed: at most %d per "
			    "smarthost)", CONFIG_PINS_MAX);
			return -1;
		}
		memcpy(sh->pins[sh->n_pins++], pin, CONFIG_PIN_LEN);
	}
	return 0;
}

/*
 * match_sender / match_recipient = GLOB [GLOB ...]: each glob is appended
 * to the NULL-ended list of the key (a repeated key adds to it).
 * Returns 0, or -1 with the error recorded.
 */
static int
config_set_globs(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *ok)
{
	char ***field = config_field(p, k), shown[CONFIG_LINE_MAX + 1];
	const char *tok;
	size_t len, n = 0;

	if (*field != NULL)
		while ((*field)[n] != NULL)
			n++;
	for (tok = value; *tok != '\0'; tok += len) {
		while (*tok == ' ')
			tok++;
		len = strcspn(tok, " ");
		if (len == 0)
			break;
		if (!config_valid_glob(tok, len)) {
			sq_printable(shown, sizeof(shown), tok, len);
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid glob (allowed: %s)", shown,
			    ok);
			return -1;
		}
		if (n == CONFIG_GLOBS_MAX) {
			config_fail(p, line, p->label, k->key,
			    "too many globs (allowed: at most %d)",
			    CONFIG_GLOBS_MAX);
			return -1;
		}
		*field = xreallocarray(*field, n + 2, sizeof(**field));
		(*field)[n++] = xstrndup(tok, len);
		(*field)[n] = NULL;
	}
	return 0;
}

/*
 * admin_group / submit_users / submit_groups = NAME [NAME ...]: at most
 * k->max names into the key's struct config_accounts, with the line.
 * Only the syntax is checked here (sendqd resolves the names at start).
 * Returns 0, or -1 with the error recorded.
 */
static int
config_set_accounts(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *ok)
{
	struct config_accounts *a = config_field(p, k);
	char shown[CONFIG_LINE_MAX + 1];
	const char *tok;
	size_t len, i;

	for (tok = value; *tok != '\0'; tok += len) {
		while (*tok == ' ')
			tok++;
		len = strcspn(tok, " ");
		if (len == 0)
			break;
		sq_printable(shown, sizeof(shown), tok, len);
		if (!config_valid_account(tok, len)) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid name (allowed: %s)", shown,
			    ok);
			return -1;
		}
		for (i = 0; i < a->n; i++) {
			if (strlen(a->names[i]) == len &&
			    memcmp(a->names[i], tok, len) == 0) {
				config_fail(p, line, p->label, k->key,
				    "\"%s\" is given twice", shown);
				return -1;
			}
		}
		if (a->n == k->max && k->max == 1) {
			config_fail(p, line, p->label, k->key, "only one name "
			    "may be given (allowed: %s)", ok);
			return -1;
		}
		if (a->n == k->max) {
			config_fail(p, line, p->label, k->key, "too many names "
			    "(allowed: %s, at most %u)", ok, k->max);
			return -1;
		}
		a->names = xreallocarray(a->names, a->n + 2,
		    sizeof(*a->names));
		a->names[a->n++] = xstrndup(tok, len);
		a->names[a->n] = NULL;
	}
	a->line = line;
	return 0;
}

/*
 * rate = N/s | N/m | N/h into rate_count and rate_seconds of the current
 * smarthost.  Returns 0, or -1 with the error recorded.
 */
static int
config_set_rate(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *shown, const char *ok)
{
	struct config_smarthost *sh;
	char num[CONFIG_LINE_MAX + 1];
	const char *slash;
	long long n;
	unsigned secs;

	sh = &p->cfg->smarthosts[p->cfg->n_smarthosts - 1];
	slash = strchr(value, '/');
	n = -1;
	if (slash != NULL && (size_t)(slash - value) < sizeof(num) &&
	    slash[1] != '\0' && slash[2] == '\0') {
		memcpy(num, value, (size_t)(slash - value));
		num[slash - value] = '\0';
		n = config_parse_uint(num);
	}
	switch (n < 0 ? '\0' : slash[1]) {
	case 's':
		secs = 1;
		break;
	case 'm':
		secs = 60;
		break;
	case 'h':
		secs = CONFIG_HOUR;
		break;
	default:
		config_fail(p, line, p->label, k->key,
		    "\"%s\" is not valid (allowed: %s)", shown, ok);
		return -1;
	}
	if (n < 1 || n > CONFIG_RATE_MAX) {
		config_fail(p, line, p->label, k->key,
		    "\"%s\" is out of range (allowed: %s)", shown, ok);
		return -1;
	}
	sh->rate_count = (unsigned)n;
	sh->rate_seconds = secs;
	return 0;
}

/*
 * listen = ADDR [ADDR ...]: each appended to cfg->intake.listen.
 * Returns 0, or -1 with the error recorded.
 */
static int
config_set_listen(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *ok)
{
	struct config_intake *in = &p->cfg->intake;
	struct config_listen l;
	char shown[CONFIG_LINE_MAX + 1], tok[CONFIG_LINE_MAX + 1];
	char host[CONFIG_LINE_MAX + 1];
	const char *colon;
	long long port;
	size_t len, i;

	for (; *value != '\0'; value += len) {
		while (*value == ' ')
			value++;
		len = strcspn(value, " ");
		if (len == 0)
			break;
		memcpy(tok, value, len);
		tok[len] = '\0';
		sq_printable(shown, sizeof(shown), tok, len);
		memset(&l, 0, sizeof(l));
		l.line = line;
		if (strncmp(tok, "unix:", 5) == 0) {
			if (tok[5] != '/' || len - 5 > CONFIG_SOCKET_MAX) {
				config_fail(p, line, p->label, k->key,
				    "\"%s\": the socket path must be absolute "
				    "and at most %zu bytes (allowed: %s)", shown,
				    CONFIG_SOCKET_MAX, ok);
				return -1;
			}
			l.kind = CONFIG_LISTEN_UNIX;
			l.addr = xstrdup(tok + 5);
		} else {
			if (tok[0] == '[') {
				const char *close = strchr(tok, ']');

				colon = close != NULL && close[1] == ':' ?
				    close + 1 : NULL;
				if (colon != NULL) {
					memcpy(host, tok + 1,
					    (size_t)(close - tok - 1));
					host[close - tok - 1] = '\0';
				}
				l.kind = CONFIG_LISTEN_INET6;
			} else {
				colon = strrchr(tok, ':');
				if (colon != NULL) {
					memcpy(host, tok, (size_t)(colon - tok));
					host[colon - tok] = '\0';
				}
				l.kind = CONFIG_LISTEN_INET;
			}
			if (colon == NULL || !config_is_ip(host,
			    l.kind == CONFIG_LISTEN_INET ? AF_INET :
			    AF_INET6)) {
				config_fail(p, line, p->label, k->key,
				    "\"%s\" is not an address literal with a "
				    "port (allowed: %s)", shown, ok);
				return -1;
			}
			port = config_parse_uint(colon + 1);
			if (port < 1 || port > 65535) {
				config_fail(p, line, p->label, k->key,
				    "\"%s\": the port must be 1 to 65535 "
				    "(allowed: %s)", shown, ok);
				return -1;
			}
			l.addr = xstrdup(host);
			l.port = (unsigned)port;
		}
		for (i = 0; i < in->n_listen; i++) {
			if (in->listen[i].kind == l.kind &&
			    in->listen[i].port == l.port &&
			    strcmp(in->listen[i].addr, l.addr) == 0) {
				free(l.addr);
				config_fail(p, line, p->label, k->key,
				    "\"%s\" is given twice (first at line %d)",
				    shown, in->listen[i].line);
				return -1;
			}
		}
		if (in->n_listen == CONFIG_LISTEN_MAX) {
			free(l.addr);
			config_fail(p, line, p->label, k->key, "too many "
			    "addresses (allowed: at most %d)",
			    CONFIG_LISTEN_MAX);
			return -1;
		}
		in->listen = xreallocarray(in->listen, in->n_listen + 1,
		    sizeof(*in->listen));
		in->listen[in->n_listen++] = l;
	}
	return 0;
}

/* max_message_size = N[K|M|G].  Returns 0, or -1 with the error
 * recorded. */
static int
config_set_size(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *shown, const char *ok)
{
	uint64_t *field = config_field(p, k), v = 0, unit = 1;
	const char *c = value;

	for (; isdigit((unsigned char)*c); c++)
		if (v < (1ULL << 40))	/* else out of range anyway */
			v = v * 10 + (uint64_t)(*c - '0');
	if (c != value && c[0] != '\0' && c[1] == '\0') {
		switch (toupper((unsigned char)*c)) {
		case 'K':
			unit = 1024;
			break;
		case 'M':
			unit = 1024 * 1024;
			break;
		case 'G':
			unit = 1024 * 1024 * 1024;
			break;
		default:
			unit = 0;
			break;
		}
		c++;
	}
	if (c == value || *c != '\0' || unit == 0) {
		config_fail(p, line, p->label, k->key, "\"%s\" is not valid "
		    "(allowed: %s)", shown, ok);
		return -1;
	}
	v *= unit;
	if (v < (uint64_t)k->min * 1024 || v > (uint64_t)k->max * 1024) {
		config_fail(p, line, p->label, k->key, "\"%s\" is out of range "
		    "(allowed: %s)", shown, ok);
		return -1;
	}
	*field = v;
	return 0;
}

/*
 * allow_networks = NET [NET ...]: ADDR/PREFIX or a single ADDR, appended
 * to cfg->intake.allow_networks.  Host bits must be zero.  Returns 0, or
 * -1 with the error recorded.
 */
static int
config_set_networks(struct config_parser *p, const struct config_key *k,
    const char *value, int line, const char *ok)
{
	struct config_intake *in = &p->cfg->intake;
	struct config_network n;
	char tok[CONFIG_LINE_MAX + 1], shown[CONFIG_LINE_MAX + 1], *slash;
	long long prefix;
	size_t len, i;
	unsigned max;

	for (; *value != '\0'; value += len) {
		while (*value == ' ')
			value++;
		len = strcspn(value, " ");
		if (len == 0)
			break;
		memcpy(tok, value, len);
		tok[len] = '\0';
		sq_printable(shown, sizeof(shown), tok, len);
		memset(&n, 0, sizeof(n));
		if ((slash = strchr(tok, '/')) != NULL)
			*slash = '\0';
		if (inet_pton(AF_INET, tok, n.addr) == 1) {
			n.family = AF_INET;
			max = 32;
		} else if (inet_pton(AF_INET6, tok, n.addr) == 1) {
			n.family = AF_INET6;
			max = 128;
		} else {
			config_fail(p, line, p->label, k->key, "\"%s\" is not "
			    "an IP network (allowed: %s)", shown, ok);
			return -1;
		}
		prefix = slash != NULL ? config_parse_uint(slash + 1) : max;
		if (prefix < 0 || prefix > max) {
			config_fail(p, line, p->label, k->key, "\"%s\": the "
			    "prefix length must be 0 to %u (allowed: %s)",
			    shown, max, ok);
			return -1;
		}
		n.prefix = (unsigned)prefix;
		for (i = n.prefix; i < max; i++) {
			if (n.addr[i / 8] & (0x80 >> (i % 8))) {
				config_fail(p, line, p->label, k->key,
				    "\"%s\" has bits set after the first %u "
				    "(allowed: a network address such as "
				    "192.168.1.0/24)", shown, n.prefix);
				return -1;
			}
		}
		if (in->n_allow_networks == CONFIG_NETWORKS_MAX) {
			config_fail(p, line, p->label, k->key, "too many "
			    "networks (allowed: at most %d)",
			    CONFIG_NETWORKS_MAX);
			return -1;
		}
		in->allow_networks = xreallocarray(in->allow_networks,
		    in->n_allow_networks + 1, sizeof(*in->allow_networks));
		in->allow_networks[in->n_allow_networks++] = n;
	}
	return 0;
}

/*
 * Check value against k and store it.  Returns 0, or -1 with the error
 * recorded at line (line 0: a default from the table, a bug).
 */
static int
config_set(struct config_parser *p, const struct config_key *k,
    const char *value, int line)
{
	char shown[CONFIG_LINE_MAX + 1], allowed[128];
	const char *v = value, *why, *ok;
	size_t len = strlen(value), i;
	long long n;
	int rc;

	sq_printable(shown, sizeof(shown), value, len);
	ok = config_allowed(k, allowed, sizeof(allowed));
	if (len == 0) {
		config_fail(p, line, p->label, k->key,
		    "empty value (allowed: %s)", ok);
		return -1;
	}
	for (i = 0; i < len; i++)
		if ((unsigned char)value[i] < 0x20 ||
		    (unsigned char)value[i] == 0x7f)
			break;
	if (i < len) {
		config_fail(p, line, p->label, k->key,
		    "\"%s\" contains a control character (allowed: %s)",
		    shown, ok);
		return -1;
	}

	switch (k->type) {
	case CONFIG_T_PATH:
	case CONFIG_T_FILE:
		if (value[0] != '/') {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not an absolute path (allowed: %s)",
			    shown, ok);
			return -1;
		}
		if (k->type == CONFIG_T_FILE && access(value, R_OK) != 0) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" cannot be read: %s", shown,
			    strerror(errno));
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_HOSTNAME:
		if (!config_valid_hostname(value)) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid host name (allowed: %s)",
			    shown, ok);
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_HOST:
		/* An IPv6 literal may be bracketed or bare; stored bare. */
		if (value[0] == '[' && len > 2 && value[len - 1] == ']') {
			char inner[CONFIG_LINE_MAX + 1];

			memcpy(inner, value + 1, len - 2);
			inner[len - 2] = '\0';
			rc = config_is_ip(inner, AF_INET6);
			v = value + 1;
			len -= 2;
		} else
			rc = config_valid_hostname(value) ||
			    config_is_ip(value, AF_INET) ||
			    config_is_ip(value, AF_INET6);
		if (!rc) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid host name or IP address "
			    "(allowed: %s; the port goes in port =)", shown,
			    ok);
			return -1;
		}
		config_set_string(p, k, v, len);
		return 0;
	case CONFIG_T_ENUM:
		for (i = 0; k->choices[i] != NULL; i++)
			if (strcasecmp(k->choices[i], value) == 0)
				break;
		if (k->choices[i] == NULL) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not valid (allowed: %s)", shown, ok);
			return -1;
		}
		*(int *)config_field(p, k) = (int)i;
		return 0;
	case CONFIG_T_DURATION_OFF:
		if (strcasecmp(value, "off") == 0 ||
		    config_parse_duration(value) == 0) {
			*(unsigned *)config_field(p, k) = 0;
			return 0;
		}
		/* FALLTHROUGH */
	case CONFIG_T_DURATION:
	case CONFIG_T_UINT:
		if (k->type != CONFIG_T_UINT)
			n = config_parse_duration(value);
		else
			n = config_parse_uint(value);
		why = n < 0 ? "is not valid" : "is out of range";
		if (n < 0 || n < k->min || n > k->max) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" %s (allowed: %s)", shown, why, ok);
			return -1;
		}
		*(unsigned *)config_field(p, k) = (unsigned)n;
		return 0;
	case CONFIG_T_STRING:
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_PIN:
		return config_set_pins(p, k, value, line, ok);
	case CONFIG_T_CREDNAME:
		if (!config_valid_credname(value)) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid credential name "
			    "(allowed: %s)", shown, ok);
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_SOCKET:
		if (value[0] != '/' || len > CONFIG_SOCKET_MAX) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not %s (allowed: %s)", shown,
			    value[0] != '/' ? "an absolute path" :
			    "short enough for a unix socket", ok);
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_ADDRESS:
		if (!config_valid_address(value)) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid email address (allowed: %s)",
			    shown, ok);
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_GLOBS:
		return config_set_globs(p, k, value, line, ok);
	case CONFIG_T_NAME:
		if (!config_valid_name(value)) {
			config_fail(p, line, p->label, k->key,
			    "\"%s\" is not a valid smarthost name (allowed: "
			    "%s: 1 to %d letters, digits, '.', '_', '-')",
			    shown, ok, CONFIG_NAME_MAX);
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	case CONFIG_T_RATE:
		return config_set_rate(p, k, value, line, shown, ok);
	case CONFIG_T_LISTEN:
		return config_set_listen(p, k, value, line, ok);
	case CONFIG_T_SIZE:
		return config_set_size(p, k, value, line, shown, ok);
	case CONFIG_T_NETWORKS:
		return config_set_networks(p, k, value, line, ok);
	case CONFIG_T_ACCOUNTS:
		return config_set_accounts(p, k, value, line, ok);
	case CONFIG_T_SENDER_REWRITE:
		if (strchr(value, '@') != NULL ? !config_valid_address(value) :
		    !config_valid_hostname(value)) {
			config_fail(p, line, p->label, k->key, "\"%s\" is not "
			    "a valid address or domain (allowed: %s)", shown,
			    ok);
			return -1;
		}
		config_set_string(p, k, value, len);
		return 0;
	}
	log_fatalx("config: bad key type %d", (int)k->type);
}

/* Apply the table defaults of a section to the current target. */
static void
config_defaults(struct config_parser *p, enum config_sect sect)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].sect != sect || config_keys[i].def == NULL)
			continue;
		if (config_set(p, &config_keys[i], config_keys[i].def, 0) != 0)
			log_fatalx("config: bad default for %s: %s",
			    config_keys[i].key, p->err ? p->err->msg : "");
	}
}

static size_t
config_key_index(const char *key)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].key, key) == 0)
			return i;
	log_fatalx("config: no key %s", key);
}

#define CONFIG_PASSWORD_SOURCES	"password_file, password_command or credential"
#define CONFIG_TOKEN_SOURCES	"token_file, token_command or oauth_provider"

/*
 * The AUTH rules of a smarthost: at most one secret source; a secret needs
 * a user; the mechanism (explicit, or auto when user is set) matches the
 * kind of secret.  Each error points at the line that has to change.
 */
static void
config_smarthost_auth(struct config_parser *p, struct config_smarthost *sh)
{
	static const char *const sources[] = { "password_file",
	    "password_command", "credential", "token_file", "token_command" };
	const char *src = NULL, *mech;
	int src_line = 0, auth_line, user_line, line, token_src = 0;
	int token_mech;
	size_t i;

	if (sh->oauth) {
		/* OAuth built in is a token source of its own. */
		src = p->seen[config_key_index("oauth_provider")] != 0 ?
		    "oauth_provider" : "oauth_token_endpoint";
		src_line = p->seen[config_key_index(src)];
		token_src = 1;
	}
	for (i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		line = p->seen[config_key_index(sources[i])];
		if (line == 0)
			continue;
		if (src != NULL) {
			/* Report at the later of the two lines. */
			if (line > src_line)
				config_fail(p, line, p->label, sources[i],
				    "only one secret source may be set, and %s "
				    "is set at line %d", src, src_line);
			else
				config_fail(p, src_line, p->label, src,
				    "only one secret source may be set, and %s "
				    "is set at line %d", sources[i], line);
			return;
		}
		src = sources[i];
		src_line = line;
		token_src = strncmp(src, "token_", 6) == 0;
	}
	auth_line = p->seen[config_key_index("auth")];
	user_line = p->seen[config_key_index("user")];
	if (src != NULL && sh->user == NULL) {
		config_fail(p, src_line, p->label, src, "set without user "
		    "(add user = the login name for SMTP AUTH)");
		return;
	}
	if (auth_line == 0)
		sh->auth = sh->user == NULL ? CONFIG_AUTH_NONE : sh->oauth ?
		    CONFIG_AUTH_XOAUTH2 : CONFIG_AUTH_AUTO;
	if (sh->auth == CONFIG_AUTH_NONE) {
		if (sh->user != NULL)
			config_fail(p, auth_line, p->label, "auth",
			    "\"none\" but user is set at line %d (remove "
			    "user, or choose a mechanism)", user_line);
		return;
	}
	mech = config_auth_name(sh->auth);
	token_mech = sh->auth == CONFIG_AUTH_XOAUTH2 ||
	    sh->auth == CONFIG_AUTH_OAUTHBEARER;
	if (sh->user == NULL) {
		config_fail(p, auth_line, p->label, "auth", "\"%s\" needs "
		    "user and %s", mech, token_mech ?
		    "a token source: " CONFIG_TOKEN_SOURCES :
		    "a password source: " CONFIG_PASSWORD_SOURCES);
		return;
	}
	if (src == NULL) {
		if (auth_line == 0)
			config_fail(p, user_line, p->label, "user",
			    "set without a secret source (add "
			    CONFIG_PASSWORD_SOURCES ")");
		else
			config_fail(p, auth_line, p->label, "auth",
			    "\"%s\" needs %s", mech, token_mech ?
			    "a token source: " CONFIG_TOKEN_SOURCES :
			    "a password source: " CONFIG_PASSWORD_SOURCES);
		return;
	}
	if (token_mech && !token_src)
		config_fail(p, src_line, p->label, src, "auth = %s needs a "
		    "token source (" CONFIG_TOKEN_SOURCES "), not a password",
		    mech);
	else if (!token_mech && token_src)
		config_fail(p, src_line, p->label, src, "auth = %s%s needs a "
		    "password source (" CONFIG_PASSWORD_SOURCES "), not a "
		    "token; a token needs auth = xoauth2 or oauthbearer",
		    mech, auth_line == 0 ? " (the default with user)" : "");
}

/* An https:// URL without white space or control characters. */
static int
config_https_url(const char *s)
{
	if (strncmp(s, "https://", 8) != 0 || s[8] == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/*
 * OAuth built in: oauth_provider presets (endpoints and scope, unless
 * given), then the keys it needs.  Sets sh->oauth.
 */
static void
config_smarthost_oauth(struct config_parser *p, struct config_smarthost *sh)
{
	static const char *const keys[] = { "oauth_device_endpoint",
	    "oauth_client_id", "oauth_client_secret_file",
	    "oauth_client_secret_credential", "oauth_scope", "oauth_ca_file",
	    "oauth_tenant" };
	const char *t = sh->oauth_tenant != NULL ? sh->oauth_tenant : "common";
	size_t i;
	int line;

	sh->oauth = sh->oauth_provider != CONFIG_OAUTH_NONE ||
	    sh->oauth_token_endpoint != NULL;
	if (!sh->oauth) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if ((line = p->seen[config_key_index(keys[i])]) != 0) {
				config_fail(p, line, p->label, keys[i], "set "
				    "without oauth_provider or "
				    "oauth_token_endpoint");
				return;
			}
		return;
	}
	if (sh->oauth_provider == CONFIG_OAUTH_GOOGLE) {
		if (sh->oauth_token_endpoint == NULL)
			sh->oauth_token_endpoint = xstrdup(
			    "https://oauth2.googleapis.com/token");
		if (sh->oauth_device_endpoint == NULL)
			sh->oauth_device_endpoint = xstrdup(
			    "https://oauth2.googleapis.com/device/code");
		if (sh->oauth_scope == NULL)
			sh->oauth_scope = xstrdup("https://mail.google.com/");
	} else if (sh->oauth_provider == CONFIG_OAUTH_MICROSOFT) {
		if (sh->oauth_token_endpoint == NULL)
			sh->oauth_token_endpoint = xasprintf("https://login."
			    "microsoftonline.com/%s/oauth2/v2.0/token", t);
		if (sh->oauth_device_endpoint == NULL)
			sh->oauth_device_endpoint = xasprintf("https://login."
			    "microsoftonline.com/%s/oauth2/v2.0/devicecode", t);
		if (sh->oauth_scope == NULL)
			sh->oauth_scope = xstrdup("https://outlook.office.com/"
			    "SMTP.Send offline_access");
	}
	if (sh->oauth_provider != CONFIG_OAUTH_MICROSOFT &&
	    (line = p->seen[config_key_index("oauth_tenant")]) != 0) {
		config_fail(p, line, p->label, "oauth_tenant", "only used with "
		    "oauth_provider = microsoft");
		return;
	}
	if (!config_https_url(sh->oauth_token_endpoint)) {
		config_fail(p, p->seen[config_key_index("oauth_token_endpoint")],
		    p->label, "oauth_token_endpoint", "not an https:// URL");
		return;
	}
	if (sh->oauth_device_endpoint != NULL &&
	    !config_https_url(sh->oauth_device_endpoint)) {
		config_fail(p, p->seen[config_key_index(
		    "oauth_device_endpoint")], p->label,
		    "oauth_device_endpoint", "not an https:// URL");
		return;
	}
	if (sh->oauth_client_id == NULL) {
		config_fail(p, p->sect_line, p->label, "oauth_client_id",
		    "missing (required with OAuth: the client id registered "
		    "with the provider)");
		return;
	}
	if (sh->oauth_client_secret_file != NULL &&
	    sh->oauth_client_secret_credential != NULL)
		config_fail(p, p->seen[config_key_index(
		    "oauth_client_secret_credential")], p->label,
		    "oauth_client_secret_credential", "only one of "
		    "oauth_client_secret_file and oauth_client_secret_credential "
		    "may be set");
}

/* Checks that need the whole [smarthost NAME] section. */
static void
config_smarthost_end(struct config_parser *p)
{
	struct config_smarthost *sh;
	size_t i;
	int tls_line, ca_line, trust_line;

	sh = &p->cfg->smarthosts[p->cfg->n_smarthosts - 1];
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].sect == CONFIG_SECT_SMARTHOST &&
		    (config_keys[i].flags & CONFIG_F_REQUIRED) &&
		    p->seen[i] == 0) {
			config_fail(p, p->sect_line, p->label,
			    config_keys[i].key, "missing (required: %s)",
			    config_keys[i].allowed);
			return;
		}
	}
	tls_line = p->seen[config_key_index("tls")];
	trust_line = p->seen[config_key_index("trust")];
	ca_line = p->seen[config_key_index("ca_file")];
	if (sh->trust == CONFIG_TRUST_CA_FILE && sh->ca_file == NULL) {
		config_fail(p, p->sect_line, p->label, "ca_file",
		    "missing (required with trust = ca_file, set at line %d)",
		    trust_line);
		return;
	}
	if (sh->trust != CONFIG_TRUST_CA_FILE && sh->ca_file != NULL) {
		config_fail(p, ca_line, p->label, "ca_file",
		    "only used with trust = ca_file, not with trust = %s "
		    "(remove ca_file or set trust = ca_file)",
		    config_trust_name(sh->trust));
		return;
	}
	if (sh->trust == CONFIG_TRUST_PIN && sh->n_pins == 0) {
		config_fail(p, trust_line, p->label, "trust",
		    "\"pin\" needs at least one pin = sha256:BASE64 in this "
		    "section");
		return;
	}
	if (sh->trust == CONFIG_TRUST_INSECURE && sh->n_pins > 0) {
		config_fail(p, p->seen[config_key_index("pin")], p->label,
		    "pin", "never checked with trust = insecure (remove pin, "
		    "or set trust = pin to trust only the pinned keys)");
		return;
	}
	if ((sh->client_cert == NULL) != (sh->client_key == NULL)) {
		int cert = sh->client_cert != NULL;

		config_fail(p, p->seen[config_key_index(cert ? "client_cert" :
		    "client_key")], p->label, cert ? "client_cert" :
		    "client_key", "set without %s (mutual TLS needs both)",
		    cert ? "client_key" : "client_cert");
		return;
	}
	config_smarthost_oauth(p, sh);
	if (p->failed)
		return;
	config_smarthost_auth(p, sh);
	if (p->failed)
		return;
	if (sh->tls == CONFIG_TLS_NONE && !sq_host_is_loopback(sh->host)) {
		char shown[CONFIG_LINE_MAX + 1];

		sq_printable(shown, sizeof(shown), sh->host, strlen(sh->host));
		config_fail(p, tls_line, p->label, "tls",
		    "\"none\" is refused for host \"%s\": cleartext would leak "
		    "mail and credentials to the network; only a loopback "
		    "host (127.0.0.1, ::1, localhost) may use it "
		    "(allowed: implicit, starttls)", shown);
		return;
	}
	if (sh->port == 0) {
		switch (sh->tls) {
		case CONFIG_TLS_IMPLICIT:
			sh->port = 465;
			break;
		case CONFIG_TLS_STARTTLS:
			sh->port = 587;
			break;
		case CONFIG_TLS_NONE:
			sh->port = 25;
			break;
		}
	}
	p->fallback_lines[p->cfg->n_smarthosts - 1] =
	    p->seen[config_key_index("fallback")];
	if (sh->fallback != NULL && strcmp(sh->fallback, sh->name) == 0)
		config_fail(p, p->seen[config_key_index("fallback")], p->label,
		    "fallback", "\"%s\" is this smarthost itself (allowed: "
		    "the NAME of another [smarthost NAME])", sh->fallback);
}

/*
 * lo must not exceed hi (strict: must be less than hi), two [queue] keys.
 * The error points at the later of the two lines (a key left at its
 * default has none), and names the other key, its value and its line.
 */
static void
config_queue_order(struct config_parser *p, const char *lo_key, unsigned lo,
    const char *hi_key, unsigned hi, int strict)
{
	char lo_text[16], hi_text[16], where[32];
	int lo_line, hi_line;

	if (strict ? lo < hi : lo <= hi)
		return;
	lo_line = p->seen[config_key_index(lo_key)];
	hi_line = p->seen[config_key_index(hi_key)];
	config_fmt_duration(lo_text, sizeof(lo_text), lo);
	config_fmt_duration(hi_text, sizeof(hi_text), hi);
	if (hi_line > lo_line) {
		if (lo_line != 0)
			snprintf(where, sizeof(where), "line %d", lo_line);
		else
			snprintf(where, sizeof(where), "the default");
		config_fail(p, hi_line, p->label, hi_key, "%s is %s %s = %s "
		    "(%s)", hi_text, strict ? "not more than" : "less than",
		    lo_key, lo_text, where);
	} else {
		if (hi_line != 0)
			snprintf(where, sizeof(where), "line %d", hi_line);
		else
			snprintf(where, sizeof(where), "the default");
		config_fail(p, lo_line, p->label, lo_key, "%s is %s %s = %s "
		    "(%s)", lo_text, strict ? "not less than" : "more than",
		    hi_key, hi_text, where);
	}
}

/* Checks that need the whole [queue] section. */
static void
config_queue_end(struct config_parser *p)
{
	struct config *cfg = p->cfg;

	config_queue_order(p, "retry_min", cfg->retry_min, "retry_max",
	    cfg->retry_max, 0);
	if (cfg->delay_warning != 0)
		config_queue_order(p, "delay_warning", cfg->delay_warning,
		    "max_age", cfg->max_age, 1);
	if (cfg->bounce == CONFIG_BOUNCE_ADMIN && cfg->admin_address == NULL)
		config_fail(p, p->seen[config_key_index("bounce")], p->label,
		    "bounce", "\"admin\" needs admin_address (add "
		    "admin_address = an email address such as "
		    "postmaster@example.com)");
}

/* True for a listen address only this machine can reach. */
static int
config_listen_is_local(const struct config_listen *l)
{
	return l->kind == CONFIG_LISTEN_UNIX || sq_host_is_loopback(l->addr);
}

/* Checks that need the whole [intake] section: a listener that others
 * can reach needs allow_networks. */
static void
config_intake_end(struct config_parser *p)
{
	const struct config_intake *in = &p->cfg->intake;
	const struct config_listen *l;
	char shown[CONFIG_LINE_MAX + 1];
	size_t i;

	if (in->n_allow_networks > 0)
		return;
	for (i = 0; i < in->n_listen; i++) {
		l = &in->listen[i];
		if (config_listen_is_local(l))
			continue;
		sq_printable(shown, sizeof(shown), l->addr, strlen(l->addr));
		config_fail(p, l->line, p->label, "listen", "\"%s\" is not a "
		    "loopback address: sendq relays mail for every client it "
		    "serves, so a listener others can reach needs "
		    "allow_networks = the networks to serve (allowed without "
		    "it: 127.0.0.1, ::1, unix:PATH)", shown);
		return;
	}
}

static void
config_section_end(struct config_parser *p)
{
	if (p->sect == CONFIG_SECT_SMARTHOST)
		config_smarthost_end(p);
	else if (p->sect == CONFIG_SECT_QUEUE)
		config_queue_end(p);
	else if (p->sect == CONFIG_SECT_INTAKE)
		config_intake_end(p);
}

static int
config_smarthost_index(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->n_smarthosts; i++)
		if (strcmp(cfg->smarthosts[i].name, name) == 0)
			return (int)i;
	return -1;
}

/*
 * After the whole file: every fallback = NAME names another smarthost
 * (defined before or after it), and following fallbacks always ends.  A
 * cycle is reported at the fallback line of its first smarthost in file
 * order, with the whole loop spelled out.
 */
static void
config_resolve_fallbacks(struct config_parser *p)
{
	struct config *cfg = p->cfg;
	struct config_smarthost *sh;
	char label[96], shown[CONFIG_LINE_MAX + 1], list[400];
	size_t i, n, steps, len;
	int j;

	for (i = 0; i < cfg->n_smarthosts; i++) {
		sh = &cfg->smarthosts[i];
		sh->fallback_index = -1;
		if (sh->fallback == NULL)
			continue;
		j = config_smarthost_index(cfg, sh->fallback);
		if (j >= 0) {
			sh->fallback_index = j;
			continue;
		}
		snprintf(label, sizeof(label), "smarthost %s", sh->name);
		sq_printable(shown, sizeof(shown), sh->fallback,
		    strlen(sh->fallback));
		list[0] = '\0';
		for (n = 0, len = 0; n < cfg->n_smarthosts; n++) {
			j = snprintf(list + len, sizeof(list) - len, "%s%s",
			    n ? ", " : "", cfg->smarthosts[n].name);
			if (j < 0 || (size_t)j >= sizeof(list) - len) {
				list[len] = '\0';
				break;
			}
			len += (size_t)j;
		}
		config_fail(p, p->fallback_lines[i], label, "fallback",
		    "\"%s\" is not a smarthost of this file (defined: %s)",
		    shown, list);
		return;
	}
	for (i = 0; i < cfg->n_smarthosts; i++) {
		j = cfg->smarthosts[i].fallback_index;
		for (steps = 0; j >= 0 && (size_t)j != i &&
		    steps < cfg->n_smarthosts; steps++)
			j = cfg->smarthosts[j].fallback_index;
		if (j < 0 || (size_t)j != i)
			continue;
		/* i is on a cycle: spell it out from i back to i. */
		sh = &cfg->smarthosts[i];
		len = (size_t)snprintf(list, sizeof(list), "%s", sh->name);
		j = sh->fallback_index;
		for (;;) {
			n = (size_t)snprintf(list + len, sizeof(list) - len,
			    " -> %s", cfg->smarthosts[j].name);
			if (n >= sizeof(list) - len) {
				snprintf(list + sizeof(list) - 5, 5, "...");
				break;
			}
			len += n;
			if ((size_t)j == i)
				break;
			j = cfg->smarthosts[j].fallback_index;
		}
		snprintf(label, sizeof(label), "smarthost %s", sh->name);
		config_fail(p, p->fallback_lines[i], label, "fallback",
		    "fallback cycle %s (a chain of fallbacks must end at a "
		    "smarthost without fallback)", list);
		return;
	}
}

/* A "[...]" line (s starts at '['): close the current section, open the
 * new one. */
static void
config_section(struct config_parser *p, char *s)
{
	struct config_smarthost *sh;
	char raw[CONFIG_LINE_MAX + 1], *word, *name, *end;
	size_t i, n;
	int was_space = 0, *first;

	/* Like inih: the header ends at ']', and " ;" starts a comment. */
	for (i = 1; s[i] != '\0' && s[i] != ']'; i++) {
		if (was_space && s[i] == ';')
			break;
		was_space = isspace((unsigned char)s[i]);
	}
	if (s[i] != ']') {
		config_fail(p, p->line, NULL, NULL,
		    "syntax error: section header without a closing ']'");
		return;
	}
	end = s + i;
	for (name = end + 1; isspace((unsigned char)*name); name++)
		;
	sq_printable(raw, sizeof(raw), s + 1, i - 1);
	if (*name != '\0' && *name != ';') {
		config_fail(p, p->line, raw, NULL,
		    "syntax error: unexpected text after ']'");
		return;
	}

	config_section_end(p);
	if (p->failed)
		return;

	*end = '\0';
	for (word = s + 1; isspace((unsigned char)*word); word++)
		;
	for (name = word; *name != '\0' && !isspace((unsigned char)*name);
	    name++)
		;
	n = (size_t)(name - word);
	while (isspace((unsigned char)*name))
		*name++ = '\0';
	for (i = strlen(name); i > 0 && isspace((unsigned char)name[i - 1]);
	    i--)
		name[i - 1] = '\0';
	word[n] = '\0';

	memset(p->seen, 0, sizeof(p->seen));
	p->sect_line = p->line;
	p->sect = CONFIG_SECT_NONE;
	p->label[0] = '\0';

	if (strcmp(word, "sendq") == 0 || strcmp(word, "queue") == 0 ||
	    strcmp(word, "intake") == 0) {
		first = word[0] == 's' ? &p->sendq_line : word[0] == 'q' ?
		    &p->queue_line : &p->intake_line;
		if (*name != '\0') {
			config_fail(p, p->line, raw, NULL,
			    "[%s] takes no name", word);
			return;
		}
		if (*first != 0) {
			config_fail(p, p->line, raw, NULL,
			    "duplicate section (first at line %d)", *first);
			return;
		}
		*first = p->line;
		p->sect = word[0] == 's' ? CONFIG_SECT_SENDQ :
		    word[0] == 'q' ? CONFIG_SECT_QUEUE : CONFIG_SECT_INTAKE;
		snprintf(p->label, sizeof(p->label), "%s", word);
		return;
	}
	if (strcmp(word, "aliases") == 0) {
		if (*name != '\0' || p->aliases_line != 0) {
			config_fail(p, p->line, raw, NULL, *name != '\0' ?
			    "[aliases] takes no name" : "duplicate section "
			    "(first at line %d)", p->aliases_line);
			return;
		}
		p->aliases_line = p->line;
		p->sect = CONFIG_SECT_ALIASES;
		snprintf(p->label, sizeof(p->label), "aliases");
		return;
	}
	if (strcmp(word, "smarthost") != 0) {
		config_fail(p, p->line, raw, NULL, "unknown section "
		    "(allowed: [sendq], [queue], [smarthost NAME])");
		return;
	}
	if (*name == '\0') {
		config_fail(p, p->line, raw, NULL, "a smarthost needs a name, "
		    "as in [smarthost primary]");
		return;
	}
	if (!config_valid_name(name)) {
		config_fail(p, p->line, raw, NULL, "invalid smarthost name "
		    "(allowed: 1 to %d letters, digits, '.', '_', '-')",
		    CONFIG_NAME_MAX);
		return;
	}
	for (i = 0; i < p->cfg->n_smarthosts; i++) {
		if (strcmp(p->cfg->smarthosts[i].name, name) == 0) {
			config_fail(p, p->line, raw, NULL,
			    "duplicate smarthost name (first at line %d)",
			    p->cfg->smarthosts[i].line);
			return;
		}
	}
	p->cfg->smarthosts = xreallocarray(p->cfg->smarthosts,
	    p->cfg->n_smarthosts + 1, sizeof(*p->cfg->smarthosts));
	p->fallback_lines = xreallocarray(p->fallback_lines,
	    p->cfg->n_smarthosts + 1, sizeof(*p->fallback_lines));
	p->fallback_lines[p->cfg->n_smarthosts] = 0;
	sh = &p->cfg->smarthosts[p->cfg->n_smarthosts++];
	memset(sh, 0, sizeof(*sh));
	sh->fallback_index = -1;
	sh->name = xstrdup(name);
	sh->line = p->line;
	p->sect = CONFIG_SECT_SMARTHOST;
	snprintf(p->label, sizeof(p->label), "smarthost %s", name);
	config_defaults(p, CONFIG_SECT_SMARTHOST);
}

/* Next byte of input, or EOF. */
static int
config_getc(struct config_parser *p)
{
	int c;

	if (p->fp != NULL) {
		c = getc(p->fp);
		if (c == EOF && ferror(p->fp))
			p->read_errno = errno ? errno : EIO;
		return c;
	}
	if (*p->text == '\0')
		return EOF;
	return (unsigned char)*p->text++;
}

/*
 * The ini_reader: one line of input into str (size num) per call, or NULL
 * at the end or after the first error.
 */
static char *
config_reader(char *str, int num, void *stream)
{
	struct config_parser *p = stream;
	char line[CONFIG_LINE_MAX + 3] = "", *s;
	size_t len = 0, max;
	int c, got = 0;

	if (p->pending != 0) {
		config_fail(p, p->pending, NULL, NULL, "syntax error: expected "
		    "\"key = value\", \"[section]\" or a comment");
		p->pending = 0;
	}
	if (p->failed || p->read_errno != 0)
		return NULL;

	max = CONFIG_LINE_MAX;
	if (num < 3)
		return NULL;
	if ((size_t)num - 3 < max)
		max = (size_t)num - 3;
	/* Read up to '\n', keeping one byte more than allowed (a '\r'). */
	while ((c = config_getc(p)) != EOF) {
		got = 1;
		if (c == '\n')
			break;
		if (len > max) {
			len++;
			break;
		}
		line[len++] = (char)c;
	}
	if (!got)
		return NULL;	/* end of input (or a read error) */
	p->line++;
	if (len > 0 && len <= max + 1 && line[len - 1] == '\r')
		len--;
	if (len > max) {
		config_fail(p, p->line, NULL, NULL, "line too long "
		    "(allowed: at most %zu characters)", max);
		return NULL;
	}
	line[len] = '\0';
	if (strlen(line) != len) {
		config_fail(p, p->line, NULL, NULL, "contains a NUL byte");
		return NULL;
	}

	s = line;
	if (p->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '[') {
		config_section(p, s);
		if (p->failed)
			return NULL;
		/* inih needs no header: it never sees the section name. */
		s[0] = '\0';
	} else if (*s != '\0' && *s != ';' && *s != '#')
		p->pending = p->line;
	snprintf(str, (size_t)num, "%s\n", s);
	return str;
}

/* A dot-atom local part s[0..len): 1 to 64 atext characters and single
 * dots not at either end. */
static int
config_valid_local(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > 64 || s[0] == '.' || s[len - 1] == '.')
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] == '.' ? s[i + 1] == '.' :
		    !config_is_atext((unsigned char)s[i]))
			return 0;
	return 1;
}

/*
 * One [aliases] line: NAME = ADDRESS [ADDRESS ...] (blank- or
 * comma-separated).  NAME is a local part, or local@domain; each ADDRESS
 * is local@domain or a bare local part (qualified later, rewrite.h).
 * Returns 0, or -1 with the error recorded.
 */
static int
config_set_alias(struct config_parser *p, const char *name,
    const char *value)
{
	struct config *cfg = p->cfg;
	struct config_alias *a;
	const char *at, *t, *end;
	char shown[CONFIG_LINE_MAX + 1], tok[CONFIG_LINE_MAX + 1];
	size_t i, n;

	sq_printable(shown, sizeof(shown), name, strlen(name));
	at = strchr(name, '@');
	if (!(at == NULL ? config_valid_local(name, strlen(name)) :
	    config_valid_local(name, (size_t)(at - name)) &&
	    config_valid_hostname(at + 1))) {
		config_fail(p, p->line, p->label, shown, "not a valid alias "
		    "name (allowed: a local part such as root, or "
		    "local@domain)");
		return -1;
	}
	for (i = 0; i < cfg->n_aliases; i++)
		if (strcasecmp(cfg->aliases[i].name, name) == 0) {
			config_fail(p, p->line, p->label, shown, "duplicate "
			    "alias (first at line %d)", cfg->aliases[i].line);
			return -1;
		}
	if (cfg->n_aliases >= CONFIG_ALIASES_MAX) {
		config_fail(p, p->line, p->label, shown, "too many aliases "
		    "(allowed: at most %d)", CONFIG_ALIASES_MAX);
		return -1;
	}
	cfg->aliases = xreallocarray(cfg->aliases, cfg->n_aliases + 1,
	    sizeof(*cfg->aliases));
	a = &cfg->aliases[cfg->n_aliases++];
	memset(a, 0, sizeof(*a));
	a->name = xstrdup(name);
	for (i = 0; a->name[i] != '\0'; i++)
		a->name[i] = (char)tolower((unsigned char)a->name[i]);
	a->line = p->line;
	for (t = value; *t != '\0'; t = end) {
		while (*t == ' ' || *t == '\t' || *t == ',')
			t++;
		for (end = t; *end != '\0' && *end != ' ' && *end != '\t' &&
		    *end != ','; end++)
			;
		if ((n = (size_t)(end - t)) == 0)
			continue;
		memcpy(tok, t, n);
		tok[n] = '\0';
		sq_printable(shown, sizeof(shown), tok, n);
		if (!(strchr(tok, '@') != NULL ? config_valid_address(tok) :
		    config_valid_local(tok, n))) {
			config_fail(p, p->line, p->label, a->name, "\"%s\" is "
			    "not a valid address (allowed: local@domain or a "
			    "local part, separated by blanks or commas)",
			    shown);
			return -1;
		}
		if (a->n_targets >= CONFIG_ALIAS_TARGETS_MAX) {
			config_fail(p, p->line, p->label, a->name, "too many "
			    "addresses (allowed: at most %d)",
			    CONFIG_ALIAS_TARGETS_MAX);
			return -1;
		}
		a->targets = xreallocarray(a->targets, a->n_targets + 1,
		    sizeof(*a->targets));
		a->targets[a->n_targets++] = xstrdup(tok);
	}
	if (a->n_targets == 0) {
		config_fail(p, p->line, p->label, a->name, "no address "
		    "(allowed: local@domain or a local part, separated by "
		    "blanks or commas)");
		return -1;
	}
	return 0;
}

static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct config_parser *p = user;
	const struct config_key *k = NULL;
	char shown[CONFIG_LINE_MAX + 1], keys[512];
	size_t i;

	(void)section;	/* the reader tracks sections */
	p->pending = 0;
	if (p->failed)
		return 0;
	sq_printable(shown, sizeof(shown), name, strlen(name));
	if (name[0] == '\0') {
		config_fail(p, p->line, p->sect ? p->label : NULL, NULL,
		    "syntax error: missing key name before '='");
		return 0;
	}
	if (p->sect == CONFIG_SECT_NONE) {
		config_fail(p, p->line, NULL, shown, "key outside any section "
		    "(allowed: after a [sendq], [queue] or [smarthost NAME] "
		    "header)");
		return 0;
	}
	if (p->sect == CONFIG_SECT_ALIASES)
		return config_set_alias(p, name, value) == 0;
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].sect == p->sect &&
		    strcmp(config_keys[i].key, name) == 0) {
			k = &config_keys[i];
			break;
		}
	}
	if (k == NULL) {
		config_fail(p, p->line, p->label, shown,
		    "unknown key (allowed: %s)",
		    config_section_keys(p->sect, keys, sizeof(keys)));
		return 0;
	}
	if (p->seen[i] != 0 && !(k->flags & CONFIG_F_REPEAT)) {
		config_fail(p, p->line, p->label, shown,
		    "duplicate key (first at line %d)", p->seen[i]);
		return 0;
	}
	if (p->seen[i] == 0)
		p->seen[i] = p->line;
	return config_set(p, k, value, p->line) == 0;
}

static int
config_parse(struct config_parser *p, const char *name, struct config **out,
    struct sq_err *err)
{
	int rc;

	if (name == NULL)
		name = "(string)";
	sq_printable(p->file, sizeof(p->file), name, strlen(name));
	p->err = err;
	p->cfg = xcalloc(1, sizeof(*p->cfg));
	p->cfg->path = xstrdup(name);
	config_defaults(p, CONFIG_SECT_SENDQ);
	config_defaults(p, CONFIG_SECT_QUEUE);
	config_defaults(p, CONFIG_SECT_INTAKE);

	rc = ini_parse_stream(config_reader, p, config_handler, p);
	if (!p->failed && p->read_errno != 0) {
		p->failed = 1;
		p->code = -p->read_errno;
		sq_err_set(err, p->code, "%s: cannot read: %s", p->file,
		    strerror(p->read_errno));
	}
	if (!p->failed && rc > 0)	/* not expected: the reader sees all */
		config_fail(p, rc, NULL, NULL, "syntax error");
	if (!p->failed && rc < 0) {
		p->failed = 1;
		p->code = SQ_EPARSE;
		sq_err_set(err, p->code, "%s: cannot parse (inih error %d)",
		    p->file, rc);
	}
	if (!p->failed)
		config_section_end(p);
	if (!p->failed && p->cfg->n_smarthosts == 0)
		config_fail(p, p->line, NULL, NULL, "no smarthost defined "
		    "(add a [smarthost NAME] section with at least host =)");
	if (!p->failed)
		config_resolve_fallbacks(p);
	free(p->fallback_lines);
	p->fallback_lines = NULL;
	if (p->failed) {
		config_free(p->cfg);
		return p->code;
	}
	*out = p->cfg;
	return 0;
}

int
config_load_file(const char *path, struct config **out, struct sq_err *err)
{
	struct config_parser p;
	char shown[256];
	int rc, saved;

	memset(&p, 0, sizeof(p));
	if ((p.fp = fopen(path, "re")) == NULL) {
		saved = errno;
		sq_printable(shown, sizeof(shown), path, strlen(path));
		return sq_err_set(err, -saved, "%s: cannot open: %s", shown,
		    strerror(saved));
	}
	rc = config_parse(&p, path, out, err);
	fclose(p.fp);
	return rc;
}

int
config_load_string(const char *name, const char *text, struct config **out,
    struct sq_err *err)
{
	struct config_parser p;

	memset(&p, 0, sizeof(p));
	p.text = text;
	return config_parse(&p, name, out, err);
}

static void
config_free_globs(char **globs)
{
	size_t i;

	if (globs == NULL)
		return;
	for (i = 0; globs[i] != NULL; i++)
		free(globs[i]);
	free(globs);
}

void
config_free(struct config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_smarthosts; i++) {
		free(cfg->smarthosts[i].name);
		free(cfg->smarthosts[i].host);
		free(cfg->smarthosts[i].ca_file);
		free(cfg->smarthosts[i].server_name);
		free(cfg->smarthosts[i].tls_priority);
		free(cfg->smarthosts[i].client_cert);
		free(cfg->smarthosts[i].client_key);
		free(cfg->smarthosts[i].user);
		free(cfg->smarthosts[i].password_file);
		free(cfg->smarthosts[i].password_command);
		free(cfg->smarthosts[i].credential);
		free(cfg->smarthosts[i].token_file);
		free(cfg->smarthosts[i].token_command);
		free(cfg->smarthosts[i].oauth_tenant);
		free(cfg->smarthosts[i].oauth_token_endpoint);
		free(cfg->smarthosts[i].oauth_device_endpoint);
		free(cfg->smarthosts[i].oauth_client_id);
		free(cfg->smarthosts[i].oauth_client_secret_file);
		free(cfg->smarthosts[i].oauth_client_secret_credential);
		free(cfg->smarthosts[i].oauth_scope);
		free(cfg->smarthosts[i].oauth_ca_file);
		config_free_globs(cfg->smarthosts[i].match_sender);
		config_free_globs(cfg->smarthosts[i].match_recipient);
		free(cfg->smarthosts[i].fallback);
	}
	free(cfg->smarthosts);
	for (i = 0; i < cfg->intake.n_listen; i++)
		free(cfg->intake.listen[i].addr);
	free(cfg->intake.listen);
	free(cfg->intake.allow_networks);
	free(cfg->path);
	free(cfg->spool_dir);
	free(cfg->state_dir);
	free(cfg->hostname);
	free(cfg->admin_address);
	free(cfg->control_socket);
	free(cfg->metrics_listen);
	free(cfg->default_domain);
	free(cfg->rewrite_sender);
	for (i = 0; i < cfg->n_aliases; i++) {
		for (j = 0; j < cfg->aliases[i].n_targets; j++)
			free(cfg->aliases[i].targets[j]);
		free(cfg->aliases[i].targets);
		free(cfg->aliases[i].name);
	}
	free(cfg->aliases);
	config_free_globs(cfg->admin_group.names);
	config_free_globs(cfg->submit_users.names);
	config_free_globs(cfg->submit_groups.names);
	free(cfg);
}
