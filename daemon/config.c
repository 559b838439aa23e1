/*
 * config.c - the key table of sendq.ini (config_keys.h) and the names of
 * the configuration's enums.
 *
 * The config library has three rooms:
 *  - config.c (this file): config_keys[], one row per key {section, key,
 *    type, choices, min, max, allowed, default, flags, offset, doc}.  The
 *    type (CONFIG_T_*, config_keys.h) names the parser that checks and
 *    stores the value; defaults are parsed through it too, so the table
 *    is the one source of a key's rules.  tests/tools/check_man.py reads
 *    the rows here to check them against conf/sendq.ini and sendq.ini.5.
 *  - config_value.c: the typed value parsers (duration, size, host,
 *    address, listen, pin, ...), each small and unit tested.
 *  - config_read.c: the reader (inih with a line counting reader, so
 *    every error says FILE:LINE), sections, [aliases], and the rules
 *    between keys checked at the end of a section and of the file.
 *
 * Adding a key: a row here (with doc), a field in struct config (or
 * struct config_smarthost, struct config_intake) in config.h, the key
 * with its default in conf/sendq.ini, an entry in daemon/man/sendq.ini.5.
 * A string field is freed by config_free() through its type; a new type
 * is a parser and a struct config_type in config_value.c.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_keys.h"
#include "config_value.h"
#include "log.h"
#include "util.h"

/* Enum names, indexed by value; stored through an int. */
static const char *const config_log_level_names[] = { [LOG_LEVEL_ERR] = "error",
	[LOG_LEVEL_WARN] = "warning",
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
	NULL };
static const char *const config_tls_names[] = { [CONFIG_TLS_IMPLICIT] =
						    "implicit",
	[CONFIG_TLS_STARTTLS] = "starttls",
	[CONFIG_TLS_NONE] = "none",
	NULL };
static const char *const config_trust_names[] = { [CONFIG_TRUST_SYSTEM] =
						      "system",
	[CONFIG_TRUST_CA_FILE] = "ca_file",
	[CONFIG_TRUST_INSECURE] = "insecure",
	[CONFIG_TRUST_PIN] = "pin",
	NULL };
static const char *const config_bounce_names[] = { [CONFIG_BOUNCE_SENDER] =
						       "sender",
	[CONFIG_BOUNCE_ADMIN] = "admin",
	[CONFIG_BOUNCE_NONE] = "none",
	NULL };
static const char *const config_auth_names[] = { [SASL_MECH_NONE] = "none",
	[SASL_MECH_AUTO] = "auto",
	[SASL_MECH_PLAIN] = "plain",
	[SASL_MECH_LOGIN] = "login",
	[SASL_MECH_SCRAM_SHA_256] = "scram-sha-256",
	[SASL_MECH_XOAUTH2] = "xoauth2",
	[SASL_MECH_OAUTHBEARER] = "oauthbearer",
	NULL };
static const char *const config_oauth_provider_names[] = { [CONFIG_OAUTH_NONE] =
							       "none",
	[CONFIG_OAUTH_GOOGLE] = "google",
	[CONFIG_OAUTH_MICROSOFT] = "microsoft",
	NULL };

static const char *const config_yes_no_names[] = { "no", "yes", NULL };

_Static_assert(sizeof(enum config_tls) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_trust) == sizeof(int), "enum size");
_Static_assert(sizeof(enum sasl_mech) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_bounce) == sizeof(int), "enum size");

#define CONFIG_GLOB_ALLOWED \
	"space-separated globs of letters, digits, " \
	"'*', '?', at most one '@' and . ! # $ % & ' + - / = ^ _ ` { | } ~, " \
	"such as *@example.com or *.example.org"
#define CONFIG_RATE_ALLOWED \
	"N/s, N/m or N/h with N from 1 to 1000000, " \
	"such as 100/h"

#define CONFIG_LISTEN_ALLOWED \
	"space-separated 127.0.0.1:PORT (any " \
	"IPv4 literal), [::1]:PORT (any IPv6 literal) or unix:/PATH"
#define CONFIG_NETWORKS_ALLOWED \
	"space-separated networks such as " \
	"192.168.1.0/24, fd00::/8 or a single address"
#define CONFIG_IN(field) offsetof(struct config, intake.field)
#define CONFIG_ACCOUNTS_ALLOWED \
	"names of letters, digits, '.', '_', '-' " \
	"(not first) and a final '$', at most 32 characters each"

#define CONFIG_SH(field) offsetof(struct config_smarthost, field)
#define CONFIG_TIMEOUT(key, def, field, doc) \
	{ \
		CONFIG_SECT_SMARTHOST, key, CONFIG_T_DURATION, NULL, 1, \
		    CONFIG_HOUR, NULL, def, 0, CONFIG_SH(field), doc \
	}

const struct config_key config_keys[] = {
	{ CONFIG_SECT_SENDQ, "spool_dir", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", CONFIG_DEFAULT_SPOOL, 0,
	    offsetof(struct config, spool_dir), "directory holding the queue" },
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
	{ CONFIG_SECT_SENDQ, "rewrite_sender", CONFIG_T_SENDER_REWRITE, NULL, 0,
	    0,
	    "an address such as alerts@example.com or a domain such as "
	    "example.com",
	    NULL, 0, offsetof(struct config, rewrite_sender),
	    "masquerading: every envelope sender becomes this address (or "
	    "LOCAL@this domain); default: off" },
	{ CONFIG_SECT_SENDQ, "log_level", CONFIG_T_ENUM, config_log_level_names,
	    0, 0, NULL, "info", 0, offsetof(struct config, log_level),
	    "most verbose level logged" },
	{ CONFIG_SECT_SENDQ, "control_socket", CONFIG_T_SOCKET, NULL, 0, 0,
	    NULL, CONFIG_DEFAULT_SOCKET, 0,
	    offsetof(struct config, control_socket),
	    "unix socket sendqctl talks to" },
	{ CONFIG_SECT_SENDQ, "metrics_listen", CONFIG_T_STRING, NULL, 0, 0,
	    "127.0.0.1:PORT, [::1]:PORT or unix:/PATH", NULL, 0,
	    offsetof(struct config, metrics_listen),
	    "where sendqd serves Prometheus metrics (GET /metrics); default: "
	    "off" },
	{ CONFIG_SECT_SENDQ, "admin_group", CONFIG_T_ACCOUNTS, NULL, 1, 1,
	    "a group name; " CONFIG_ACCOUNTS_ALLOWED, NULL, 0,
	    offsetof(struct config, admin_group),
	    "members see every queued message and may hold, release, delete, "
	    "bounce, retry and flush (besides root and sendqd's user); "
	    "default: none" },
	{ CONFIG_SECT_SENDQ, "submit_users", CONFIG_T_ACCOUNTS, NULL, 1,
	    CONFIG_ACCOUNTS_MAX,
	    "space-separated user names; " CONFIG_ACCOUNTS_ALLOWED, NULL, 0,
	    offsetof(struct config, submit_users),
	    "only these users (with submit_groups, root and sendqd's user) may "
	    "submit through the control socket; default: everyone" },
	{ CONFIG_SECT_SENDQ, "submit_groups", CONFIG_T_ACCOUNTS, NULL, 1,
	    CONFIG_ACCOUNTS_MAX,
	    "space-separated group names; " CONFIG_ACCOUNTS_ALLOWED, NULL, 0,
	    offsetof(struct config, submit_groups),
	    "members of these groups may submit too when submit_users or "
	    "submit_groups is set; default: everyone may submit" },
	{ CONFIG_SECT_QUEUE, "retry_min", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_DAY, NULL, "1m", 0, offsetof(struct config, retry_min),
	    "delay before a deferred message is tried again" },
	{ CONFIG_SECT_QUEUE, "retry_max", CONFIG_T_DURATION, NULL, 1,
	    7 * CONFIG_DAY, NULL, "1h", 0, offsetof(struct config, retry_max),
	    "longest delay between attempts (the delay doubles from retry_min "
	    "up to this); at least retry_min" },
	{ CONFIG_SECT_QUEUE, "max_age", CONFIG_T_DURATION, NULL, 60,
	    365 * CONFIG_DAY, NULL, "5d", 0, offsetof(struct config, max_age),
	    "how long a message is tried before it fails" },
	{ CONFIG_SECT_QUEUE, "bounce", CONFIG_T_ENUM, config_bounce_names, 0, 0,
	    NULL, "sender", 0, offsetof(struct config, bounce),
	    "who gets the delivery status notification of a failed message" },
	{ CONFIG_SECT_QUEUE, "admin_address", CONFIG_T_ADDRESS, NULL, 0, 0,
	    "an email address such as postmaster@example.com", NULL, 0,
	    offsetof(struct config, admin_address),
	    "recipient of every DSN with bounce = admin" },
	{ CONFIG_SECT_QUEUE, "delay_warning", CONFIG_T_DURATION_OFF, NULL, 1,
	    365 * CONFIG_DAY, NULL, "off", 0,
	    offsetof(struct config, delay_warning),
	    "after this long undelivered, the sender gets one \"delayed\" DSN; "
	    "less than max_age" },
	{ CONFIG_SECT_QUEUE, "min_free_space", CONFIG_T_SIZE, NULL, 0,
	    1024u * 1024 * 1024, NULL, "100M", 0,
	    offsetof(struct config, min_free_space),
	    "free space kept on the spool's filesystem: below it new mail is "
	    "refused (452 4.3.1, exit 75) while the queue drains and bounces "
	    "are still written; 0 = off" },
	{ CONFIG_SECT_QUEUE, "max_messages_per_user", CONFIG_T_UINT, NULL, 0,
	    100000000, NULL, "10000", 0,
	    offsetof(struct config, max_messages_per_user),
	    "messages one uid may have queued (root and sendqd's user exempt); "
	    "more are refused 452 4.3.1 / exit 75; 0 = no limit" },
	{ CONFIG_SECT_QUEUE, "max_bytes_per_user", CONFIG_T_SIZE, NULL, 0,
	    1024u * 1024 * 1024, NULL, "1G", 0,
	    offsetof(struct config, max_bytes_per_user),
	    "bytes of messages one uid may have queued (root and sendqd's user "
	    "exempt); more are refused 452 4.3.1 / exit 75; 0 = no limit" },
	{ CONFIG_SECT_QUEUE, "stop_grace", CONFIG_T_DURATION, NULL, 0, 60, NULL,
	    "5s", 0, offsetof(struct config, stop_grace),
	    "on a stop (SIGTERM, systemctl stop/restart), how long a delivery "
	    "whose final dot is sent waits for the smarthost's reply (so it is "
	    "recorded and not sent again after the restart), and idle "
	    "connections for the answer to their QUIT; then the rest is "
	    "dropped and stays queued; 0 = drop every connection at once" },
	{ CONFIG_SECT_SMARTHOST, "host", CONFIG_T_HOST, NULL, 0, 0,
	    "a host name or an IP address", NULL, CONFIG_F_REQUIRED,
	    offsetof(struct config_smarthost, host),
	    "the smarthost to relay to" },
	{ CONFIG_SECT_SMARTHOST, "port", CONFIG_T_UINT, NULL, 1, 65535, NULL,
	    NULL, 0, offsetof(struct config_smarthost, port),
	    "default: 465 for tls = implicit, 587 starttls, 25 none" },
	{ CONFIG_SECT_SMARTHOST, "tls", CONFIG_T_ENUM, config_tls_names, 0, 0,
	    NULL, "starttls", 0, offsetof(struct config_smarthost, tls),
	    "implicit TLS, STARTTLS, or cleartext to loopback only" },
	{ CONFIG_SECT_SMARTHOST, "trust", CONFIG_T_ENUM, config_trust_names, 0,
	    0, NULL, "system", 0, offsetof(struct config_smarthost, trust),
	    "how the server certificate is verified" },
	{ CONFIG_SECT_SMARTHOST, "ca_file", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    offsetof(struct config_smarthost, ca_file),
	    "the CAs trusted with trust = ca_file" },
	{ CONFIG_SECT_SMARTHOST, "pin", CONFIG_T_PIN, NULL, 0, 0,
	    "sha256:BASE64, the base64 of the SHA-256 of the server's "
	    "SubjectPublicKeyInfo (44 characters)",
	    NULL, CONFIG_F_REPEAT, CONFIG_SH(pins),
	    "server public key pins; the only check with trust = pin, checked "
	    "in addition to the chain with system or ca_file" },
	{ CONFIG_SECT_SMARTHOST, "server_name", CONFIG_T_HOSTNAME, NULL, 0, 0,
	    "a host name such as smtp.example.com", NULL, 0,
	    CONFIG_SH(server_name),
	    "name verified in the certificate and sent as SNI; default: host" },
	{ CONFIG_SECT_SMARTHOST, "tls_priority", CONFIG_T_STRING, NULL, 0, 0,
	    "a GnuTLS priority string", NULL, 0, CONFIG_SH(tls_priority),
	    "GnuTLS priority string; default: TLS 1.2 or later with AEAD "
	    "ciphers (checked by sendqd at start)" },
	{ CONFIG_SECT_SMARTHOST, "client_cert", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    CONFIG_SH(client_cert),
	    "client certificate for mutual TLS (with client_key)" },
	{ CONFIG_SECT_SMARTHOST, "client_key", CONFIG_T_FILE, NULL, 0, 0,
	    "an absolute path of a readable PEM file", NULL, 0,
	    CONFIG_SH(client_key), "private key of client_cert" },
	{ CONFIG_SECT_SMARTHOST, "auth", CONFIG_T_ENUM, config_auth_names, 0, 0,
	    NULL, NULL, 0, CONFIG_SH(auth),
	    "SMTP AUTH mechanism; default: auto when user is set, none "
	    "otherwise" },
	{ CONFIG_SECT_SMARTHOST, "user", CONFIG_T_STRING, NULL, 0, 0,
	    "a user name", NULL, 0, CONFIG_SH(user),
	    "user name for SMTP AUTH" },
	{ CONFIG_SECT_SMARTHOST, "password_file", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", NULL, 0, CONFIG_SH(password_file),
	    "file whose first line is the password (mode 0600 or 0640)" },
	{ CONFIG_SECT_SMARTHOST, "password_command", CONFIG_T_STRING, NULL, 0,
	    0, "a shell command", NULL, 0, CONFIG_SH(password_command),
	    "command (/bin/sh -c) whose first output line is the password" },
	{ CONFIG_SECT_SMARTHOST, "credential", CONFIG_T_CREDNAME, NULL, 0, 0,
	    "a systemd credential name: letters, digits, '_', '.', '-'", NULL,
	    0, CONFIG_SH(credential),
	    "systemd credential holding the password "
	    "($CREDENTIALS_DIRECTORY/NAME, see LoadCredential=)" },
	{ CONFIG_SECT_SMARTHOST, "token_file", CONFIG_T_PATH, NULL, 0, 0,
	    "an absolute path", NULL, 0, CONFIG_SH(token_file),
	    "file whose first line is an OAuth bearer token, read for every "
	    "connection" },
	{ CONFIG_SECT_SMARTHOST, "token_command", CONFIG_T_STRING, NULL, 0, 0,
	    "a shell command", NULL, 0, CONFIG_SH(token_command),
	    "command (/bin/sh -c) printing an OAuth bearer token, run for "
	    "every connection" },
	{ CONFIG_SECT_SMARTHOST, "oauth_provider", CONFIG_T_ENUM,
	    config_oauth_provider_names, 0, 0, NULL, "none", 0,
	    CONFIG_SH(oauth_provider),
	    "OAuth 2.0 preset filling oauth_token_endpoint, "
	    "oauth_device_endpoint and oauth_scope: google or microsoft" },
	{ CONFIG_SECT_SMARTHOST, "oauth_tenant", CONFIG_T_STRING, NULL, 0, 0,
	    "a Microsoft Entra tenant id or domain", "common", 0,
	    CONFIG_SH(oauth_tenant),
	    "tenant in the Microsoft endpoints (oauth_provider = microsoft)" },
	{ CONFIG_SECT_SMARTHOST, "oauth_token_endpoint", CONFIG_T_STRING, NULL,
	    0, 0, "an https:// URL", NULL, 0, CONFIG_SH(oauth_token_endpoint),
	    "OAuth 2.0 token endpoint; sendqd refreshes the access token "
	    "there; default: the preset's" },
	{ CONFIG_SECT_SMARTHOST, "oauth_device_endpoint", CONFIG_T_STRING, NULL,
	    0, 0, "an https:// URL", NULL, 0, CONFIG_SH(oauth_device_endpoint),
	    "device authorization endpoint (RFC 8628) used by sendqctl oauth "
	    "init; default: the preset's" },
	{ CONFIG_SECT_SMARTHOST, "oauth_client_id", CONFIG_T_STRING, NULL, 0, 0,
	    "the client id registered with the provider", NULL, 0,
	    CONFIG_SH(oauth_client_id),
	    "OAuth 2.0 client id (required with OAuth)" },
	{ CONFIG_SECT_SMARTHOST, "oauth_client_secret_file", CONFIG_T_PATH,
	    NULL, 0, 0, "an absolute path", NULL, 0,
	    CONFIG_SH(oauth_client_secret_file),
	    "file whose first line is the client secret (mode 0600 or 0640); "
	    "default: none (a public client)" },
	{ CONFIG_SECT_SMARTHOST, "oauth_client_secret_credential",
	    CONFIG_T_CREDNAME, NULL, 0, 0,
	    "a systemd credential name: letters, digits, '_', '.', '-'", NULL,
	    0, CONFIG_SH(oauth_client_secret_credential),
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
	CONFIG_TIMEOUT("timeout_tls", "1m", timeout_tls, "TLS handshake"),
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
	{ CONFIG_SECT_SMARTHOST, "max_connections", CONFIG_T_UINT, NULL, 1, 100,
	    NULL, "2", 0, CONFIG_SH(max_connections),
	    "connections open at the same time" },
	{ CONFIG_SECT_SMARTHOST, "messages_per_connection", CONFIG_T_UINT, NULL,
	    1, 100000, NULL, "500", 0, CONFIG_SH(messages_per_connection),
	    "messages sent over one connection before it is closed" },
	{ CONFIG_SECT_SMARTHOST, "idle_timeout", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_HOUR, NULL, "5s", 0, CONFIG_SH(idle_timeout),
	    "an idle connection is closed after this long" },
	{ CONFIG_SECT_SMARTHOST, "pipeline_messages", CONFIG_T_ENUM,
	    config_yes_no_names, 0, 0, NULL, "yes", 0,
	    CONFIG_SH(pipeline_messages),
	    "send the next message's commands right behind a final dot "
	    "when the server offers PIPELINING" },
	{ CONFIG_SECT_SMARTHOST, "match_sender", CONFIG_T_GLOBS, NULL, 0, 0,
	    CONFIG_GLOB_ALLOWED, NULL, CONFIG_F_REPEAT, CONFIG_SH(match_sender),
	    "route here mail whose envelope sender matches one of the globs" },
	{ CONFIG_SECT_SMARTHOST, "match_recipient", CONFIG_T_GLOBS, NULL, 0, 0,
	    CONFIG_GLOB_ALLOWED, NULL, CONFIG_F_REPEAT,
	    CONFIG_SH(match_recipient),
	    "route here recipients that match one of the globs" },
	{ CONFIG_SECT_SMARTHOST, "fallback", CONFIG_T_NAME, NULL, 0, 0,
	    "the NAME of another [smarthost NAME]", NULL, 0,
	    CONFIG_SH(fallback),
	    "smarthost that takes the mail when this one cannot be reached or "
	    "answers 4xx at connection level" },
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
	{ CONFIG_SECT_INTAKE, "max_recipients", CONFIG_T_UINT, NULL, 1, 100000,
	    NULL, "1000", 0, CONFIG_IN(max_recipients),
	    "recipients per message; more get 452 4.5.3" },
	{ CONFIG_SECT_INTAKE, "max_clients", CONFIG_T_UINT, NULL, 1, 10000,
	    NULL, "100", 0, CONFIG_IN(max_clients),
	    "connections served at once; more get 421 4.3.2" },
	{ CONFIG_SECT_INTAKE, "timeout", CONFIG_T_DURATION, NULL, 1,
	    CONFIG_HOUR, NULL, "5m", 0, CONFIG_IN(timeout),
	    "how long a client may take to send a command or more message "
	    "data; then 421 4.4.2" },
	{ CONFIG_SECT_INTAKE, "max_clients_per_peer", CONFIG_T_UINT, NULL, 0,
	    10000, NULL, "10", 0, CONFIG_IN(max_clients_per_peer),
	    "connections served at once from one uid (unix socket) or one "
	    "address (TCP); more get 421 4.7.0; 0 = no limit" },
	{ CONFIG_SECT_INTAKE, "max_junk_commands", CONFIG_T_UINT, NULL, 0,
	    100000, NULL, "100", 0, CONFIG_IN(max_junk_commands),
	    "NOOP, RSET, VRFY, EXPN, HELP, repeated HELO/EHLO and unknown "
	    "commands a session may send (counted afresh after each accepted "
	    "message); one more gets 421 4.7.0; 0 = no limit" },
	{ CONFIG_SECT_INTAKE, "allow_networks", CONFIG_T_NETWORKS, NULL, 0, 0,
	    CONFIG_NETWORKS_ALLOWED, NULL, CONFIG_F_REPEAT,
	    CONFIG_IN(allow_networks),
	    "TCP clients served besides loopback ones (others get 554); "
	    "required for a listen address that is not loopback" },
};

const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

const struct config_key *
config_key_find(enum config_sect sect, const char *key, size_t *index)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++) {
		if (config_keys[i].sect == sect &&
		    strcmp(config_keys[i].key, key) == 0) {
			if (index != NULL)
				*index = i;
			return &config_keys[i];
		}
	}
	return NULL;
}

size_t
config_key_index(const char *key)
{
	size_t i;

	/* The first byte before strcmp: the reader asks this of every
	 * section it closes. */
	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].key[0] == key[0] &&
		    strcmp(config_keys[i].key, key) == 0)
			return i;
	log_fatalx("config: no key %s", key);
}

const char *
config_join(char *buf, size_t bufsz, const char *const *names)
{
	size_t i, len = 0;
	int    n;

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

const char *
config_section_keys(enum config_sect sect, char *buf, size_t bufsz)
{
	const char *names[sizeof(config_keys) / sizeof(config_keys[0]) + 1];
	size_t      i, n = 0;

	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].sect == sect)
			names[n++] = config_keys[i].key;
	names[n] = NULL;
	return config_join(buf, bufsz, names);
}

const char *
config_key_allowed(const struct config_key *k, char *buf, size_t bufsz)
{
	if (k->type->allowed != NULL)
		return k->type->allowed(k, buf, bufsz);
	return k->allowed;
}

static const char *
config_name_of(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n || names[v] == NULL)
		return "unknown";
	return names[v];
}

#define CONFIG_NAME_OF(names, v) \
	config_name_of(names, sizeof(names) / sizeof((names)[0]), (int)(v))

const char *
config_tls_name(enum config_tls tls)
{
	return CONFIG_NAME_OF(config_tls_names, tls);
}

const char *
config_trust_name(enum config_trust trust)
{
	return CONFIG_NAME_OF(config_trust_names, trust);
}

const char *
config_oauth_provider_name(int provider)
{
	return CONFIG_NAME_OF(config_oauth_provider_names, provider);
}

const char *
config_auth_name(enum sasl_mech auth)
{
	return CONFIG_NAME_OF(config_auth_names, auth);
}

/* Free what the rows of sect own in base (a type's fini). */
static void
config_free_keys(enum config_sect sect, void *base)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++)
		if (config_keys[i].sect == sect &&
		    config_keys[i].type->fini != NULL)
			config_keys[i].type->fini(base,
			    (char *)base + config_keys[i].offset);
}

void
config_free(struct config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->n_smarthosts; i++) {
		config_free_keys(CONFIG_SECT_SMARTHOST, &cfg->smarthosts[i]);
		free(cfg->smarthosts[i].name);
	}
	free(cfg->smarthosts);
	config_free_keys(CONFIG_SECT_SENDQ, cfg);
	config_free_keys(CONFIG_SECT_QUEUE, cfg);
	config_free_keys(CONFIG_SECT_INTAKE, cfg);
	free(cfg->path);
	for (i = 0; i < cfg->n_aliases; i++) {
		for (j = 0; j < cfg->aliases[i].n_targets; j++)
			free(cfg->aliases[i].targets[j]);
		free(cfg->aliases[i].targets);
		free(cfg->aliases[i].name);
	}
	free(cfg->aliases);
	free(cfg);
}
