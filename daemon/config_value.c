/*
 * config_value.c - the value types of sendq.ini (config_value.h,
 * config_keys.h).
 *
 * Two layers.  The config_value_* parsers are pure: text in, a value or
 * "not valid" out.  The config_t_* types bind them to the key table: each
 * type's set() takes one value of a row (struct config_val), checks it
 * with a parser, stores it at the row's offset and, on failure, writes
 * the message "\"VALUE\" is not ... (allowed: ...)" into v->why; the
 * reader (config_read.c) adds FILE:LINE: [SECTION] KEY: in front.  List
 * types (pin, match_*, listen, allow_networks, admin_group ...) take
 * space-separated tokens and append them, refusing duplicates and more
 * than their maximum.  Only config_t_file touches the system (access(2)
 * to tell an unreadable file at the line that names it; not for a
 * CONFIG_LOAD_CLIENT load).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "config_keys.h"
#include "config_value.h"
#include "mailmsg.h"
#include "util.h"

/* ------------------------------------------------------------ parsers */

long long
config_value_uint(const char *s)
{
	long long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v < 1000LL * 1000 * 1000) /* else out of range */
			v = v * 10 + (*s - '0');
	}
	return v;
}

long long
config_value_duration(const char *s)
{
	static const char      units[] = "smhd";
	static const long long mult[] = { 1, 60, 3600, CONFIG_DAY };
	char                   digits[16];
	const char            *u;
	size_t                 n;
	long long              v;

	n = strspn(s, "0123456789");
	if (n == 0)
		return -1;
	if (s[n] == '\0')
		return config_value_uint(s);
	if (s[n + 1] != '\0' || (u = strchr(units, s[n])) == NULL)
		return -1;
	if (n >= sizeof(digits))
		n = sizeof(digits) - 1; /* out of range anyway */
	memcpy(digits, s, n);
	digits[n] = '\0';
	v = config_value_uint(digits);
	return v * mult[u - units];
}

const char *
config_value_fmt_duration(char *buf, size_t bufsz, unsigned secs)
{
	if (secs != 0 && secs % CONFIG_DAY == 0)
		snprintf(buf, bufsz, "%ud", secs / CONFIG_DAY);
	else if (secs != 0 && secs % CONFIG_HOUR == 0)
		snprintf(buf, bufsz, "%uh", secs / CONFIG_HOUR);
	else if (secs != 0 && secs % 60 == 0)
		snprintf(buf, bufsz, "%um", secs / 60);
	else
		snprintf(buf, bufsz, "%us", secs);
	return buf;
}

int
config_value_size(const char *s, uint64_t *bytes)
{
	uint64_t    v = 0, unit = 1;
	const char *c = s;

	for (; isdigit((unsigned char)*c); c++)
		if (v < (1ULL << 40)) /* else out of range anyway */
			v = v * 10 + (uint64_t)(*c - '0');
	if (c == s)
		return -1;
	if (*c != '\0') {
		if (c[1] != '\0')
			return -1;
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
			return -1;
		}
	}
	*bytes = v > UINT64_MAX / unit ? UINT64_MAX : v * unit;
	return 0;
}

int
config_value_rate(const char *s, unsigned *count, unsigned *seconds)
{
	char        num[16];
	const char *slash = strchr(s, '/');
	size_t      n;
	long long   v;

	if (slash == NULL || slash[1] == '\0' || slash[2] != '\0' ||
	    strchr("smh", slash[1]) == NULL)
		return -1;
	n = (size_t)(slash - s);
	if (n >= sizeof(num))
		n = sizeof(num) - 1; /* digits or not, out of range */
	memcpy(num, s, n);
	num[n] = '\0';
	if (strspn(s, "0123456789") != (size_t)(slash - s) ||
	    (v = config_value_uint(num)) < 0)
		return -1;
	if (v < 1 || v > CONFIG_RATE_MAX)
		return -2;
	*count = (unsigned)v;
	*seconds = slash[1] == 's' ? 1 : slash[1] == 'm' ? 60 : CONFIG_HOUR;
	return 0;
}

int
config_value_hostname(const char *s)
{
	return mailmsg_host_valid(s, strlen(s), 0);
}

int
config_value_ip(const char *s, int family)
{
	unsigned char addr[16];

	return inet_pton(family, s, addr) == 1;
}

int
config_value_host(const char *s, size_t *off, size_t *len)
{
	char   inner[INET6_ADDRSTRLEN + 1];
	size_t n = strlen(s);

	*off = 0;
	*len = n;
	if (s[0] == '[' && n > 2 && s[n - 1] == ']') {
		if (n - 2 >= sizeof(inner))
			return 0;
		memcpy(inner, s + 1, n - 2);
		inner[n - 2] = '\0';
		*off = 1;
		*len = n - 2;
		return config_value_ip(inner, AF_INET6);
	}
	return config_value_hostname(s) || config_value_ip(s, AF_INET) ||
	    config_value_ip(s, AF_INET6);
}

int
config_value_address(const char *s)
{
	return mailmsg_addr_valid(s, 0, NULL) == 0;
}

int
config_value_local_or_address(const char *s, int unqualified)
{
	return mailmsg_addr_valid(s, unqualified ? MAILMSG_ADDR_UNQUALIFIED : 0,
		   NULL) == 0;
}

/* Every byte of s[0..len) a letter, a digit or one of extra. */
static int
config_value_chars(const char *s, size_t len, const char *extra)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    (s[i] == '\0' || strchr(extra, s[i]) == NULL))
			return 0;
	return 1;
}

int
config_value_credname(const char *s)
{
	size_t len = strlen(s);

	return len > 0 && len <= 255 && strcmp(s, ".") != 0 &&
	    strcmp(s, "..") != 0 && config_value_chars(s, len, "_.-");
}

int
config_value_name(const char *s)
{
	size_t len = strlen(s);

	return len > 0 && len <= CONFIG_NAME_MAX &&
	    config_value_chars(s, len, "._-");
}

int
config_value_glob(const char *s, size_t len)
{
	size_t i, ats = 0;

	for (i = 0; i < len; i++)
		if (s[i] == '@')
			ats++;
	/* RFC 5322 atext (which holds '*' and '?'), '.' and '@'. */
	return ats <= 1 && config_value_chars(s, len, "!#$%&'*+-/=?^_`{|}~.@");
}

int
config_value_account(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > CONFIG_ACCOUNT_NAME_MAX || s[0] == '-')
		return 0;
	if (len > 1 && s[len - 1] == '$')
		len--; /* a machine account */
	for (i = 0; i < len && isdigit((unsigned char)s[i]); i++)
		;
	return i < len && config_value_chars(s, len, "._-");
}

int
config_value_https_url(const char *s)
{
	if (strncmp(s, "https://", 8) != 0 || s[8] == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int
config_value_pin(const char *s, size_t len, unsigned char pin[CONFIG_PIN_LEN],
    size_t *got)
{
	unsigned char raw[CONFIG_LINE_MAX];

	*got = 0;
	if (len < 7 || strncasecmp(s, "sha256:", 7) != 0)
		return -1;
	if (len == 7 ||
	    sq_base64_decode(s + 7, len - 7, raw, sizeof(raw), got) != 0)
		return -2;
	if (*got != CONFIG_PIN_LEN)
		return -3;
	memcpy(pin, raw, CONFIG_PIN_LEN);
	return 0;
}

int
config_value_listen(const char *tok, struct config_listen *l)
{
	char        host[CONFIG_LINE_MAX + 1];
	const char *colon, *close;
	long long   port;
	size_t      len = strlen(tok);

	memset(l, 0, sizeof(*l));
	if (strncmp(tok, "unix:", 5) == 0) {
		if (tok[5] != '/' || len - 5 > CONFIG_SOCKET_MAX)
			return -1;
		l->kind = CONFIG_LISTEN_UNIX;
		l->addr = xstrdup(tok + 5);
		return 0;
	}
	if (len >= sizeof(host))
		return -2;
	l->kind = tok[0] == '[' ? CONFIG_LISTEN_INET6 : CONFIG_LISTEN_INET;
	if (l->kind == CONFIG_LISTEN_INET6) {
		close = strchr(tok, ']');
		colon = close != NULL && close[1] == ':' ? close + 1 : NULL;
		if (colon != NULL)
			snprintf(host, sizeof(host), "%.*s",
			    (int)(close - tok - 1), tok + 1);
	} else if ((colon = strrchr(tok, ':')) != NULL)
		snprintf(host, sizeof(host), "%.*s", (int)(colon - tok), tok);
	if (colon == NULL ||
	    !config_value_ip(host,
		l->kind == CONFIG_LISTEN_INET ? AF_INET : AF_INET6))
		return -2;
	port = config_value_uint(colon + 1);
	if (port < 1 || port > 65535)
		return -3;
	l->addr = xstrdup(host);
	l->port = (unsigned)port;
	return 0;
}

int
config_value_network(const char *tok, struct config_network *n)
{
	char      addr[CONFIG_LINE_MAX + 1], *slash;
	long long prefix;
	unsigned  i, max;

	memset(n, 0, sizeof(*n));
	snprintf(addr, sizeof(addr), "%s", tok);
	if ((slash = strchr(addr, '/')) != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, addr, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else
		return -1;
	prefix = slash != NULL ? config_value_uint(slash + 1) : max;
	if (prefix < 0 || prefix > max)
		return -2;
	n->prefix = (unsigned)prefix;
	for (i = n->prefix; i < max; i++)
		if (n->addr[i / 8] & (0x80 >> (i % 8)))
			return -3;
	return 0;
}

const char *
config_value_token(const char **s, size_t *len)
{
	const char *t = *s;

	while (*t == ' ')
		t++;
	*len = strcspn(t, " ");
	*s = t + *len;
	return *len == 0 ? NULL : t;
}

/* -------------------------------------------------------------- types */

/* v->why = the message; returns -1. */
static int
    SQ_PRINTF(2, 3) config_why(struct config_val *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->why, sizeof(v->why), fmt, ap);
	va_end(ap);
	return -1;
}

const char *
config_val_ok(struct config_val *v)
{
	if (v->ok == NULL)
		v->ok = config_key_allowed(v->k, v->okbuf, sizeof(v->okbuf));
	return v->ok;
}

/* Store s[0..len) as the row's string. */
static void
config_store(struct config_val *v, const char *s, size_t len)
{
	char **field = v->field;

	free(*field);
	*field = xstrndup(s, len);
}

/* Store the value when valid, else "\"VALUE\" is not WHAT". */
static int
config_store_if(struct config_val *v, int valid, const char *what)
{
	if (!valid)
		return config_why(v, "\"%s\" is not %s (allowed: %s)", v->shown,
		    what, config_val_ok(v));
	config_store(v, v->value, v->len);
	return 0;
}

static int
config_set_path(struct config_val *v)
{
	return config_store_if(v, v->value[0] == '/', "an absolute path");
}

static int
config_set_file(struct config_val *v)
{
	if (v->value[0] == '/' && !v->client && access(v->value, R_OK) != 0)
		return config_why(v, "\"%s\" cannot be read: %s", v->shown,
		    strerror(errno));
	return config_set_path(v);
}

static int
config_set_hostname(struct config_val *v)
{
	return config_store_if(v, config_value_hostname(v->value),
	    "a valid host name");
}

static int
config_set_host(struct config_val *v)
{
	size_t off, len;

	if (!config_value_host(v->value, &off, &len))
		return config_why(v,
		    "\"%s\" is not a valid host name or IP address (allowed: "
		    "%s; the port goes in port =)",
		    v->shown, config_val_ok(v));
	config_store(v, v->value + off, len); /* IPv6 stored bare */
	return 0;
}

static int
config_set_string(struct config_val *v)
{
	return config_store_if(v, 1, "");
}

static int
config_set_credname(struct config_val *v)
{
	return config_store_if(v, config_value_credname(v->value),
	    "a valid credential name");
}

static int
config_set_address(struct config_val *v)
{
	return config_store_if(v, config_value_address(v->value),
	    "a valid email address");
}

static int
config_set_sender_rewrite(struct config_val *v)
{
	return config_store_if(v,
	    strchr(v->value, '@') != NULL ? config_value_address(v->value) :
					    config_value_hostname(v->value),
	    "a valid address or domain");
}

static int
config_set_socket(struct config_val *v)
{
	if (v->value[0] == '/' && v->len > CONFIG_SOCKET_MAX)
		return config_why(v,
		    "\"%s\" is not short enough for a unix socket (allowed: "
		    "%s)",
		    v->shown, config_val_ok(v));
	return config_set_path(v);
}

static int
config_set_name(struct config_val *v)
{
	if (!config_value_name(v->value))
		return config_why(v,
		    "\"%s\" is not a valid smarthost name (allowed: %s: 1 to "
		    "%d letters, digits, '.', '_', '-')",
		    v->shown, config_val_ok(v), CONFIG_NAME_MAX);
	config_store(v, v->value, v->len);
	return 0;
}

static int
config_set_enum(struct config_val *v)
{
	const char *const *c = v->k->choices;
	size_t             i;

	for (i = 0; c[i] != NULL; i++) {
		if (strcasecmp(c[i], v->value) == 0) {
			*(int *)v->field = (int)i;
			return 0;
		}
	}
	return config_why(v, "\"%s\" is not valid (allowed: %s)", v->shown,
	    config_val_ok(v));
}

/* n (-1: malformed) into the row's unsigned when within min..max. */
static int
config_set_ranged(struct config_val *v, long long n)
{
	if (n < 0 || n < v->k->min || n > v->k->max)
		return config_why(v, "\"%s\" %s (allowed: %s)", v->shown,
		    n < 0 ? "is not valid" : "is out of range",
		    config_val_ok(v));
	*(unsigned *)v->field = (unsigned)n;
	return 0;
}

static int
config_set_uint(struct config_val *v)
{
	return config_set_ranged(v, config_value_uint(v->value));
}

static int
config_set_duration(struct config_val *v)
{
	return config_set_ranged(v, config_value_duration(v->value));
}

static int
config_set_duration_off(struct config_val *v)
{
	if (strcasecmp(v->value, "off") == 0 ||
	    config_value_duration(v->value) == 0) {
		*(unsigned *)v->field = 0;
		return 0;
	}
	return config_set_duration(v);
}

static int
config_set_size(struct config_val *v)
{
	uint64_t n;

	if (config_value_size(v->value, &n) != 0)
		return config_why(v, "\"%s\" is not valid (allowed: %s)",
		    v->shown, config_val_ok(v));
	if (n < (uint64_t)v->k->min * 1024 || n > (uint64_t)v->k->max * 1024)
		return config_why(v, "\"%s\" is out of range (allowed: %s)",
		    v->shown, config_val_ok(v));
	*(uint64_t *)v->field = n;
	return 0;
}

/* rate = N/s | N/m | N/h: rate_count (the row's field), rate_seconds. */
static int
config_set_rate(struct config_val *v)
{
	struct config_smarthost *sh = v->base;
	int                      rc;

	rc = config_value_rate(v->value, &sh->rate_count, &sh->rate_seconds);
	if (rc != 0)
		return config_why(v, "\"%s\" is %s (allowed: %s)", v->shown,
		    rc == -1 ? "not valid" : "out of range", config_val_ok(v));
	return 0;
}

/*
 * Check and store v with its row's type: set(), or for a list type one()
 * for each space-separated token of the value, given NUL-terminated (tok)
 * and printable (shown); the first failure ends it.
 */
int
config_type_set(struct config_val *v)
{
	char        tok[CONFIG_LINE_MAX + 1], shown[CONFIG_LINE_MAX + 1];
	const char *s = v->value, *t;
	size_t      len;

	if (v->k->type->set != NULL)
		return v->k->type->set(v);
	while ((t = config_value_token(&s, &len)) != NULL) {
		if (len >= sizeof(tok))
			len = sizeof(tok) - 1;
		memcpy(tok, t, len);
		tok[len] = '\0';
		sq_printable(shown, sizeof(shown), tok, len);
		if (v->k->type->one(v, tok, len, shown) != 0)
			return -1;
	}
	return 0;
}

/* pin: one sha256:BASE64 appended to the smarthost's pins[]. */
static int
config_pin_one(struct config_val *v, const char *tok, size_t len,
    const char *shown)
{
	struct config_smarthost *sh = v->base;
	unsigned char            pin[CONFIG_PIN_LEN];
	size_t                   got, i;
	int                      rc;

	rc = config_value_pin(tok, len, pin, &got);
	if (rc == -1)
		return config_why(v,
		    "\"%s\" does not start with sha256: (allowed: %s)", shown,
		    config_val_ok(v));
	if (rc == -2)
		return config_why(v,
		    "\"%s\" is not valid base64 after sha256: (allowed: %s)",
		    shown, config_val_ok(v));
	if (rc == -3)
		return config_why(v,
		    "\"%s\" decodes to %zu bytes, a SHA-256 has %d (allowed: "
		    "%s)",
		    shown, got, CONFIG_PIN_LEN, config_val_ok(v));
	for (i = 0; i < sh->n_pins; i++)
		if (memcmp(sh->pins[i], pin, CONFIG_PIN_LEN) == 0)
			return config_why(v, "\"%s\" is given twice", shown);
	if (sh->n_pins == CONFIG_PINS_MAX)
		return config_why(v,
		    "too many pins (allowed: at most %d per smarthost)",
		    CONFIG_PINS_MAX);
	memcpy(sh->pins[sh->n_pins++], pin, CONFIG_PIN_LEN);
	return 0;
}

/* Append tok to the NULL-ended list *list of *n names. */
static void
config_list_add(char ***list, size_t *n, const char *tok, size_t len)
{
	*list = xreallocarray(*list, *n + 2, sizeof(**list));
	(*list)[(*n)++] = xstrndup(tok, len);
	(*list)[*n] = NULL;
}

/* match_*: one glob appended to the NULL-ended list. */
static int
config_glob_one(struct config_val *v, const char *tok, size_t len,
    const char *shown)
{
	char ***field = v->field;
	size_t  n = 0;

	while (*field != NULL && (*field)[n] != NULL)
		n++;
	if (!config_value_glob(tok, len))
		return config_why(v, "\"%s\" is not a valid glob (allowed: %s)",
		    shown, config_val_ok(v));
	if (n == CONFIG_GLOBS_MAX)
		return config_why(v, "too many globs (allowed: at most %d)",
		    CONFIG_GLOBS_MAX);
	config_list_add(field, &n, tok, len);
	return 0;
}

/* admin_group, submit_*: one user or group name, at most k->max.  Only
 * the syntax: sendqd resolves the names at start (control.h). */
static int
config_account_one(struct config_val *v, const char *tok, size_t len,
    const char *shown)
{
	struct config_accounts *a = v->field;
	size_t                  i;

	a->line = v->line;
	if (!config_value_account(tok, len))
		return config_why(v, "\"%s\" is not a valid name (allowed: %s)",
		    shown, config_val_ok(v));
	for (i = 0; i < a->n; i++)
		if (strcmp(a->names[i], tok) == 0)
			return config_why(v, "\"%s\" is given twice", shown);
	if (a->n == v->k->max && v->k->max == 1)
		return config_why(v, "only one name may be given (allowed: %s)",
		    config_val_ok(v));
	if (a->n == v->k->max)
		return config_why(v, "too many names (allowed: %s, at most %u)",
		    config_val_ok(v), v->k->max);
	config_list_add(&a->names, &a->n, tok, len);
	return 0;
}

/* listen: one address appended to cfg->intake.listen. */
static int
config_listen_one(struct config_val *v, const char *tok, size_t len,
    const char *shown)
{
	struct config_intake *in = &((struct config *)v->base)->intake;
	struct config_listen  l;
	size_t                i;
	int                   rc;

	(void)len;
	rc = config_value_listen(tok, &l);
	if (rc == -1)
		return config_why(v,
		    "\"%s\": the socket path must be absolute and at most %zu "
		    "bytes (allowed: %s)",
		    shown, CONFIG_SOCKET_MAX, config_val_ok(v));
	if (rc == -2)
		return config_why(v,
		    "\"%s\" is not an address literal with a port (allowed: "
		    "%s)",
		    shown, config_val_ok(v));
	if (rc == -3)
		return config_why(v,
		    "\"%s\": the port must be 1 to 65535 (allowed: %s)", shown,
		    config_val_ok(v));
	l.line = v->line;
	for (i = 0; i < in->n_listen; i++) {
		if (in->listen[i].kind == l.kind &&
		    in->listen[i].port == l.port &&
		    strcmp(in->listen[i].addr, l.addr) == 0) {
			free(l.addr);
			return config_why(v,
			    "\"%s\" is given twice (first at line %d)", shown,
			    in->listen[i].line);
		}
	}
	if (in->n_listen == CONFIG_LISTEN_MAX) {
		free(l.addr);
		return config_why(v, "too many addresses (allowed: at most %d)",
		    CONFIG_LISTEN_MAX);
	}
	in->listen = xreallocarray(in->listen, in->n_listen + 1,
	    sizeof(*in->listen));
	in->listen[in->n_listen++] = l;
	return 0;
}

/* allow_networks: one network appended to cfg->intake.allow_networks. */
static int
config_network_one(struct config_val *v, const char *tok, size_t len,
    const char *shown)
{
	struct config_intake *in = &((struct config *)v->base)->intake;
	struct config_network n;
	int                   rc;

	(void)len;
	rc = config_value_network(tok, &n);
	if (rc == -1)
		return config_why(v,
		    "\"%s\" is not an IP network (allowed: %s)", shown,
		    config_val_ok(v));
	if (rc == -2)
		return config_why(v,
		    "\"%s\": the prefix length must be 0 to %u (allowed: %s)",
		    shown, n.family == AF_INET ? 32 : 128, config_val_ok(v));
	if (rc == -3)
		return config_why(v,
		    "\"%s\" has bits set after the first %u (allowed: a "
		    "network address such as 192.168.1.0/24)",
		    shown, n.prefix);
	if (in->n_allow_networks == CONFIG_NETWORKS_MAX)
		return config_why(v, "too many networks (allowed: at most %d)",
		    CONFIG_NETWORKS_MAX);
	in->allow_networks = xreallocarray(in->allow_networks,
	    in->n_allow_networks + 1, sizeof(*in->allow_networks));
	in->allow_networks[in->n_allow_networks++] = n;
	return 0;
}

/* ------------------------------------------------------ allowed texts */

static const char *
config_allowed_enum(const struct config_key *k, char *buf, size_t bufsz)
{
	return config_join(buf, bufsz, k->choices);
}

static const char *
config_allowed_uint(const struct config_key *k, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%u to %u", k->min, k->max);
	return buf;
}

static const char *
config_allowed_duration(const struct config_key *k, char *buf, size_t bufsz)
{
	char lo[16], hi[16];

	snprintf(buf, bufsz,
	    "%s%s to %s, a number with optional unit s, m, h or d",
	    k->type == CONFIG_T_DURATION_OFF ? "off or 0, or " : "",
	    config_value_fmt_duration(lo, sizeof(lo), k->min),
	    config_value_fmt_duration(hi, sizeof(hi), k->max));
	return buf;
}

static const char *
config_allowed_socket(const struct config_key *k, char *buf, size_t bufsz)
{
	(void)k;
	snprintf(buf, bufsz, "an absolute path of at most %zu bytes",
	    CONFIG_SOCKET_MAX);
	return buf;
}

static const char *
config_allowed_size(const struct config_key *k, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz,
	    "%uK to %uG, a number of bytes with optional unit K, M or G",
	    k->min, k->max / (1024 * 1024));
	return buf;
}

/* ------------------------------------------------------------- finis */

static void
config_fini_string(void *base, void *field)
{
	(void)base;
	free(*(char **)field);
}

static void
config_fini_list(char **list)
{
	size_t i;

	for (i = 0; list != NULL && list[i] != NULL; i++)
		free(list[i]);
	free(list);
}

static void
config_fini_globs(void *base, void *field)
{
	(void)base;
	config_fini_list(*(char ***)field);
}

static void
config_fini_accounts(void *base, void *field)
{
	(void)base;
	config_fini_list(((struct config_accounts *)field)->names);
}

static void
config_fini_listen(void *base, void *field)
{
	struct config_intake *in = &((struct config *)base)->intake;
	size_t                i;

	(void)field;
	for (i = 0; i < in->n_listen; i++)
		free(in->listen[i].addr);
	free(in->listen);
}

static void
config_fini_networks(void *base, void *field)
{
	(void)base;
	free(*(struct config_network **)field);
}

/* ------------------------------------------------- the type table */

const struct config_type config_t_path = { .set = config_set_path,
	.fini = config_fini_string };
const struct config_type config_t_file = { .set = config_set_file,
	.fini = config_fini_string };
const struct config_type config_t_hostname = { .set = config_set_hostname,
	.fini = config_fini_string };
const struct config_type config_t_host = { .set = config_set_host,
	.fini = config_fini_string };
const struct config_type config_t_enum = { .set = config_set_enum,
	.allowed = config_allowed_enum };
const struct config_type config_t_duration = { .set = config_set_duration,
	.allowed = config_allowed_duration };
const struct config_type config_t_duration_off = { .set =
						       config_set_duration_off,
	.allowed = config_allowed_duration };
const struct config_type config_t_uint = { .set = config_set_uint,
	.allowed = config_allowed_uint };
const struct config_type config_t_string = { .set = config_set_string,
	.fini = config_fini_string };
const struct config_type config_t_pin = { .one = config_pin_one };
const struct config_type config_t_credname = { .set = config_set_credname,
	.fini = config_fini_string };
const struct config_type config_t_socket = { .set = config_set_socket,
	.allowed = config_allowed_socket,
	.fini = config_fini_string };
const struct config_type config_t_address = { .set = config_set_address,
	.fini = config_fini_string };
const struct config_type config_t_globs = { .one = config_glob_one,
	.fini = config_fini_globs };
const struct config_type config_t_name = { .set = config_set_name,
	.fini = config_fini_string };
const struct config_type config_t_rate = { .set = config_set_rate };
const struct config_type config_t_listen = { .one = config_listen_one,
	.fini = config_fini_listen };
const struct config_type config_t_size = { .set = config_set_size,
	.allowed = config_allowed_size };
const struct config_type config_t_networks = { .one = config_network_one,
	.fini = config_fini_networks };
const struct config_type config_t_sender_rewrite = {
	.set = config_set_sender_rewrite,
	.fini = config_fini_string
};
const struct config_type config_t_accounts = { .one = config_account_one,
	.fini = config_fini_accounts };
