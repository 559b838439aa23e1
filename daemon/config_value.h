/*
 * config_value.h - the typed value parsers of sendq.ini: text in, a value
 * or "not valid" out.  Internal to the config library; each is unit
 * tested on its own (tests/unit/test_config_value.c).
 *
 * Owns: the syntax of durations, sizes, numbers, rates, listen addresses,
 * networks, pins, globs, account and credential names, smarthost names,
 * https URLs.  Host names and email addresses are mailmsg's one rule
 * (mailmsg_host_valid, mailmsg_addr_valid).
 * May call: util, mailmsg, libc.  Pure: no I/O, no clock.
 */
#ifndef SENDQ_CONFIG_VALUE_H
#define SENDQ_CONFIG_VALUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "config.h"

#define CONFIG_DAY       86400u
#define CONFIG_HOUR      3600u
#define CONFIG_NAME_MAX  64  /* [smarthost NAME] */
#define CONFIG_GLOBS_MAX 256 /* per match_ key of a smarthost */
#define CONFIG_RATE_MAX  1000000u
/* The longest socket path: what fits sockaddr_un.sun_path with its NUL. */
#define CONFIG_SOCKET_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* Decimal digits only, no sign, into a number; -1 if malformed.  Values
 * past 10^9 are clamped there (out of any range). */
long long config_value_uint(const char *s);
/* "90", "90s", "5m", "2h", "1d" into seconds; -1 if malformed. */
long long config_value_duration(const char *s);
/* The largest exact unit: 86400 -> "1d", 90 -> "90s", into buf. */
const char *config_value_fmt_duration(char *buf, size_t bufsz, unsigned secs);
/* "N", "NK", "NM", "NG" (binary units, either case) into bytes.
 * Returns 0 or -1 if malformed. */
int config_value_size(const char *s, uint64_t *bytes);
/* "N/s", "N/m", "N/h": returns 0, -1 if malformed, -2 if N is not 1 to
 * CONFIG_RATE_MAX. */
int config_value_rate(const char *s, unsigned *count, unsigned *seconds);

/* A host name (mailmsg_host_valid, ASCII, no literal). */
int config_value_hostname(const char *s);
/* An IP address literal of family (AF_INET, AF_INET6). */
int config_value_ip(const char *s, int family);
/* A host name, an IPv4 or IPv6 literal, or a bracketed IPv6 literal;
 * the part to store (brackets dropped) is s[*off..*off + *len). */
int config_value_host(const char *s, size_t *off, size_t *len);
/* An email address local@domain (mailmsg_addr_valid). */
int config_value_address(const char *s);
/* An address, or with unqualified set a bare local part too. */
int config_value_local_or_address(const char *s, int unqualified);
/* A systemd credential name: a file name of [A-Za-z0-9_.-], not . or ..*/
int config_value_credname(const char *s);
/* A smarthost NAME: 1 to CONFIG_NAME_MAX of [A-Za-z0-9._-]. */
int config_value_name(const char *s);
/* One glob of match_sender/match_recipient: atext, '.', '*', '?' and at
 * most one '@' (s[0..len)). */
int config_value_glob(const char *s, size_t len);
/* A user or group name (s[0..len)): [A-Za-z0-9._-], not '-' first, an
 * optional final '$', 1 to CONFIG_ACCOUNT_NAME_MAX, not all digits. */
int config_value_account(const char *s, size_t len);
/* An https:// URL without white space or control characters. */
int config_value_https_url(const char *s);

/* pin: "sha256:BASE64" (s[0..len)) into pin.  Returns 0; -1 no sha256:
 * prefix; -2 not base64; -3 not CONFIG_PIN_LEN bytes (*got says how
 * many). */
int config_value_pin(const char *s, size_t len,
    unsigned char pin[CONFIG_PIN_LEN], size_t *got);
/* One listen address: "IPV4:PORT", "[IPV6]:PORT" or "unix:/PATH".
 * Returns 0 with *l filled (l->addr allocated); -1 a bad socket path;
 * -2 not an address literal with a port; -3 a bad port. */
int config_value_listen(const char *tok, struct config_listen *l);
/* One network: "ADDR/PREFIX" or "ADDR".  Returns 0; -1 not an address;
 * -2 a bad prefix; -3 host bits set. */
int config_value_network(const char *tok, struct config_network *n);

/* The next space-separated token of a list at *s: its start, its length
 * in *len, *s moved past it.  NULL when there is none left. */
const char *config_value_token(const char **s, size_t *len);

#endif
