/*
 * config_read.c - the reader of sendq.ini (config.h): lines, sections,
 * keys dispatched through the key table (config.c) to their types
 * (config_value.c), [aliases], and the rules between keys.
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
 * reported.
 *
 * A key is looked up in config_keys[] and its value handed to the row's
 * type (config_set); defaults are applied the same way when a section
 * opens.  A key may appear once per section, except a CONFIG_F_REPEAT key
 * (pin, match_*, listen, allow_networks): each of its lines appends, and
 * its first line is the one errors about the whole list point at.
 *
 * Rules between keys run when the next header or the end of the file is
 * reached, each error pointing at the line to change:
 *  - [smarthost NAME]: required keys, ca_file and pins against trust,
 *    client_cert with client_key, OAuth presets and the keys OAuth needs,
 *    the AUTH mechanism against user and the one secret source, tls = none
 *    only to loopback, the port default, fallback not itself.  Secrets are
 *    never read here (secret.c does), and tls_priority is only stored
 *    (tls.c checks it when sendqd starts).
 *  - [queue]: retry_min <= retry_max and delay_warning (unless off) <
 *    max_age, reported at the later of the two lines with the other key's
 *    value and line (or "the default"); bounce = admin needs
 *    admin_address.
 *  - [intake]: a listen address that is neither loopback nor a unix
 *    socket needs allow_networks.
 *  - after the file: every fallback = NAME names a smarthost of the file
 *    and no chain of fallbacks loops (config_resolve_fallbacks).
 * [aliases] has no key table: each line NAME = ADDRESS ... is checked and
 * stored by config_set_alias() (names lowercased, duplicates refused);
 * rewrite.c applies them.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"
#include "config_keys.h"
#include "config_value.h"
#include "log.h"
#include "util.h"

struct config_parser {
	struct config *cfg;
	char           file[256]; /* printable FILE for messages */

	/* Input: text up to text_end (a file read whole), or up to its
	 * NUL (text_end NULL). */
	const char *text;
	const char *text_end;
	int         read_errno;

	unsigned flags;   /* CONFIG_LOAD_* */
	int      line;    /* the last line read */
	int      pending; /* key line not seen by handler */

	/* The current section. */
	enum config_sect sect;
	char             label[96]; /* "sendq", "smarthost NAME" */
	int              sect_line;
	int             *seen; /* line of each key of the table */
	int              first_line[CONFIG_SECT_ALIASES + 1]; /* header
					 * of each plain section, 0 = none */
	int             *fallback_lines; /* per smarthost, 0 = none */

	int            failed;
	int            code;
	struct sq_err *err;
};

/*
 * Record the first error: "FILE:LINE: [LABEL] KEY: what".  label and key
 * may be NULL; later errors are ignored.
 */
static void SQ_PRINTF(5, 6) config_fail(struct config_parser *p, int line,
    const char *label, const char *key, const char *fmt, ...)
{
	va_list ap;
	char    what[512], where[160];

	if (p->failed)
		return;
	p->failed = 1;
	p->code = SQ_ECONFIG;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(where, sizeof(where), "%s%s%s%s%s%s", label ? "[" : "",
	    label ? label : "", label ? "]" : "", label && key ? " " : "",
	    key ? key : "", label || key ? ": " : "");
	sq_err_set(p->err, p->code, "%s:%d: %s%s", p->file, line, where, what);
}

/*
 * Check value against row k and store it: the value is not empty and has
 * no control character, then the row's type decides.  Returns 0, or -1
 * with the error recorded at line (line 0: a default from the table).
 */
static int
config_set(struct config_parser *p, const struct config_key *k,
    const char *value, int line)
{
	struct config_val v;
	char              shown[CONFIG_LINE_MAX + 1];
	size_t            i;

	memset(&v, 0, sizeof(v));
	v.k = k;
	v.base = k->sect == CONFIG_SECT_SMARTHOST ?
	    (void *)&p->cfg->smarthosts[p->cfg->n_smarthosts - 1] :
	    (void *)p->cfg;
	v.field = (char *)v.base + k->offset;
	v.value = value;
	v.len = strlen(value);
	v.shown = sq_printable(shown, sizeof(shown), value, v.len);
	v.line = line;
	v.client = (p->flags & CONFIG_LOAD_CLIENT) != 0;
	for (i = 0; i < v.len; i++)
		if ((unsigned char)value[i] < 0x20 ||
		    (unsigned char)value[i] == 0x7f)
			break;
	if (v.len == 0)
		config_fail(p, line, p->label, k->key,
		    "empty value (allowed: %s)", config_val_ok(&v));
	else if (i < v.len)
		config_fail(p, line, p->label, k->key,
		    "\"%s\" contains a control character (allowed: %s)",
		    v.shown, config_val_ok(&v));
	else if (config_type_set(&v) != 0)
		config_fail(p, line, p->label, k->key, "%s", v.why);
	else
		return 0;
	return -1;
}

/* The line key was set at in the current section; 0 = not set. */
static int
config_seen(const struct config_parser *p, const char *key)
{
	return p->seen[config_key_index(key)];
}

/* Apply the table defaults of a section to the current target. */
static void
config_defaults(struct config_parser *p, enum config_sect sect)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++) {
		if (config_keys[i].sect != sect || config_keys[i].def == NULL)
			continue;
		if (config_set(p, &config_keys[i], config_keys[i].def, 0) != 0)
			log_fatalx("config: bad default for %s: %s",
			    config_keys[i].key, p->err ? p->err->msg : "");
	}
}

#define CONFIG_PASSWORD_SOURCES "password_file, password_command or credential"
#define CONFIG_TOKEN_SOURCES    "token_file, token_command or oauth_provider"

/* The one secret source of a smarthost, if any. */
struct config_secret {
	const char *src; /* its key, NULL = none */
	int         line;
	int         token; /* a token source, not a password */
};

/*
 * Find the secret source into *s: OAuth built in, or one of the keys.
 * Two of them is an error at the later line.  Returns 0 or -1.
 */
static int
config_smarthost_secret(struct config_parser *p,
    const struct config_smarthost *sh, struct config_secret *s)
{
	static const char *const sources[] = { "password_file",
		"password_command", "credential", "token_file",
		"token_command" };
	size_t                   i;
	int                      line;

	memset(s, 0, sizeof(*s));
	if (sh->oauth) {
		/* OAuth built in is a token source of its own. */
		s->src = config_seen(p, "oauth_provider") != 0 ?
		    "oauth_provider" :
		    "oauth_token_endpoint";
		s->line = config_seen(p, s->src);
		s->token = 1;
	}
	for (i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		if ((line = config_seen(p, sources[i])) == 0)
			continue;
		if (s->src != NULL) {
			/* Report at the later of the two lines. */
			config_fail(p, line > s->line ? line : s->line,
			    p->label, line > s->line ? sources[i] : s->src,
			    "only one secret source may be set, and %s is set "
			    "at line %d",
			    line > s->line ? s->src : sources[i],
			    line > s->line ? s->line : line);
			return -1;
		}
		s->src = sources[i];
		s->line = line;
		s->token = strncmp(s->src, "token_", 6) == 0;
	}
	return 0;
}

/*
 * The AUTH rules of a smarthost: at most one secret source; a secret needs
 * a user; the mechanism (explicit, or auto when user is set) matches the
 * kind of secret.  Each error points at the line that has to change.
 */
static void
config_smarthost_auth(struct config_parser *p, struct config_smarthost *sh)
{
	struct config_secret s;
	const char          *mech, *needs;
	int                  auth_line, user_line, token_mech;

	if (config_smarthost_secret(p, sh, &s) != 0)
		return;
	auth_line = config_seen(p, "auth");
	user_line = config_seen(p, "user");
	if (s.src != NULL && sh->user == NULL) {
		config_fail(p, s.line, p->label, s.src,
		    "set without user (add user = the login name for SMTP "
		    "AUTH)");
		return;
	}
	if (auth_line == 0)
		sh->auth = sh->user == NULL ? SASL_MECH_NONE :
		    sh->oauth               ? SASL_MECH_XOAUTH2 :
					      SASL_MECH_AUTO;
	if (sh->auth == SASL_MECH_NONE) {
		if (sh->user != NULL)
			config_fail(p, auth_line, p->label, "auth",
			    "\"none\" but user is set at line %d (remove user, "
			    "or choose a mechanism)",
			    user_line);
		return;
	}
	mech = config_auth_name(sh->auth);
	token_mech = sh->auth == SASL_MECH_XOAUTH2 ||
	    sh->auth == SASL_MECH_OAUTHBEARER;
	needs = token_mech ? "a token source: " CONFIG_TOKEN_SOURCES :
			     "a password source: " CONFIG_PASSWORD_SOURCES;
	if (sh->user == NULL)
		config_fail(p, auth_line, p->label, "auth",
		    "\"%s\" needs user and %s", mech, needs);
	else if (s.src == NULL && auth_line == 0)
		config_fail(p, user_line, p->label, "user",
		    "set without a secret source (add " CONFIG_PASSWORD_SOURCES
		    ")");
	else if (s.src == NULL)
		config_fail(p, auth_line, p->label, "auth", "\"%s\" needs %s",
		    mech, needs);
	else if (token_mech && !s.token)
		config_fail(p, s.line, p->label, s.src,
		    "auth = %s needs a token source (" CONFIG_TOKEN_SOURCES
		    "), not a password",
		    mech);
	else if (!token_mech && s.token)
		config_fail(p, s.line, p->label, s.src,
		    "auth = %s%s needs a password source "
		    "(" CONFIG_PASSWORD_SOURCES "), not a token; a token needs "
		    "auth = xoauth2 or oauthbearer",
		    mech, auth_line == 0 ? " (the default with user)" : "");
}

/* *field = text when not given. */
static void
config_preset(char **field, char *text)
{
	if (*field == NULL)
		*field = text;
	else
		free(text);
}

/* oauth_provider presets: endpoints and scope, unless given. */
static void
config_oauth_presets(struct config_smarthost *sh)
{
	const char *t = sh->oauth_tenant != NULL ? sh->oauth_tenant : "common";

	if (sh->oauth_provider == CONFIG_OAUTH_GOOGLE) {
		config_preset(&sh->oauth_token_endpoint,
		    xstrdup("https://oauth2.googleapis.com/token"));
		config_preset(&sh->oauth_device_endpoint,
		    xstrdup("https://oauth2.googleapis.com/device/code"));
		config_preset(&sh->oauth_scope,
		    xstrdup("https://mail.google.com/"));
	} else if (sh->oauth_provider == CONFIG_OAUTH_MICROSOFT) {
		config_preset(&sh->oauth_token_endpoint,
		    xasprintf("https://login.microsoftonline.com/%s/oauth2/"
			      "v2.0/token",
			t));
		config_preset(&sh->oauth_device_endpoint,
		    xasprintf("https://login.microsoftonline.com/%s/oauth2/"
			      "v2.0/devicecode",
			t));
		config_preset(&sh->oauth_scope,
		    xstrdup(
			"https://outlook.office.com/SMTP.Send offline_access"));
	}
}

/*
 * OAuth built in: oauth_provider presets, then the keys it needs.  Sets
 * sh->oauth.
 */
static void
config_smarthost_oauth(struct config_parser *p, struct config_smarthost *sh)
{
	static const char *const keys[] = { "oauth_device_endpoint",
		"oauth_client_id", "oauth_client_secret_file",
		"oauth_client_secret_credential", "oauth_scope",
		"oauth_ca_file", "oauth_tenant" };
	const char              *bad = NULL;
	size_t                   i;
	int                      line;

	sh->oauth = sh->oauth_provider != CONFIG_OAUTH_NONE ||
	    sh->oauth_token_endpoint != NULL;
	if (!sh->oauth) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if ((line = config_seen(p, keys[i])) != 0) {
				config_fail(p, line, p->label, keys[i],
				    "set without oauth_provider or "
				    "oauth_token_endpoint");
				return;
			}
		return;
	}
	config_oauth_presets(sh);
	if (sh->oauth_provider != CONFIG_OAUTH_MICROSOFT &&
	    (line = config_seen(p, "oauth_tenant")) != 0)
		config_fail(p, line, p->label, "oauth_tenant",
		    "only used with oauth_provider = microsoft");
	else if (!config_value_https_url(sh->oauth_token_endpoint))
		bad = "oauth_token_endpoint";
	else if (sh->oauth_device_endpoint != NULL &&
	    !config_value_https_url(sh->oauth_device_endpoint))
		bad = "oauth_device_endpoint";
	else if (sh->oauth_client_id == NULL)
		config_fail(p, p->sect_line, p->label, "oauth_client_id",
		    "missing (required with OAuth: the client id registered "
		    "with the provider)");
	else if (sh->oauth_client_secret_file != NULL &&
	    sh->oauth_client_secret_credential != NULL)
		config_fail(p, config_seen(p, "oauth_client_secret_credential"),
		    p->label, "oauth_client_secret_credential",
		    "only one of oauth_client_secret_file and "
		    "oauth_client_secret_credential may be set");
	if (bad != NULL)
		config_fail(p, config_seen(p, bad), p->label, bad,
		    "not an https:// URL");
}

/* The TLS rules of a smarthost: required keys, trust against ca_file and
 * pins, client_cert with client_key. */
static void
config_smarthost_tls(struct config_parser *p, const struct config_smarthost *sh)
{
	size_t i;
	int    cert = sh->client_cert != NULL;

	for (i = 0; i < config_nkeys; i++) {
		if (config_keys[i].sect == CONFIG_SECT_SMARTHOST &&
		    (config_keys[i].flags & CONFIG_F_REQUIRED) &&
		    p->seen[i] == 0) {
			config_fail(p, p->sect_line, p->label,
			    config_keys[i].key, "missing (required: %s)",
			    config_keys[i].allowed);
			return;
		}
	}
	if (sh->trust == CONFIG_TRUST_CA_FILE && sh->ca_file == NULL)
		config_fail(p, p->sect_line, p->label, "ca_file",
		    "missing (required with trust = ca_file, set at line %d)",
		    config_seen(p, "trust"));
	else if (sh->trust != CONFIG_TRUST_CA_FILE && sh->ca_file != NULL)
		config_fail(p, config_seen(p, "ca_file"), p->label, "ca_file",
		    "only used with trust = ca_file, not with trust = %s "
		    "(remove ca_file or set trust = ca_file)",
		    config_trust_name(sh->trust));
	else if (sh->trust == CONFIG_TRUST_PIN && sh->n_pins == 0)
		config_fail(p, config_seen(p, "trust"), p->label, "trust",
		    "\"pin\" needs at least one pin = sha256:BASE64 in this "
		    "section");
	else if (sh->trust == CONFIG_TRUST_INSECURE && sh->n_pins > 0)
		config_fail(p, config_seen(p, "pin"), p->label, "pin",
		    "never checked with trust = insecure (remove pin, or set "
		    "trust = pin to trust only the pinned keys)");
	else if ((sh->client_cert == NULL) != (sh->client_key == NULL))
		config_fail(p,
		    config_seen(p, cert ? "client_cert" : "client_key"),
		    p->label, cert ? "client_cert" : "client_key",
		    "set without %s (mutual TLS needs both)",
		    cert ? "client_key" : "client_cert");
}

/* Checks that need the whole [smarthost NAME] section. */
static void
config_smarthost_end(struct config_parser *p)
{
	struct config_smarthost *sh;
	char                     shown[CONFIG_LINE_MAX + 1];

	sh = &p->cfg->smarthosts[p->cfg->n_smarthosts - 1];
	config_smarthost_tls(p, sh);
	if (!p->failed)
		config_smarthost_oauth(p, sh);
	if (!p->failed)
		config_smarthost_auth(p, sh);
	if (p->failed)
		return;
	if (sh->tls == CONFIG_TLS_NONE && !sq_host_is_loopback(sh->host)) {
		sq_printable(shown, sizeof(shown), sh->host, strlen(sh->host));
		config_fail(p, config_seen(p, "tls"), p->label, "tls",
		    "\"none\" is refused for host \"%s\": cleartext would leak "
		    "mail and credentials to the network; only a loopback host "
		    "(127.0.0.1, ::1, localhost) may use it (allowed: "
		    "implicit, starttls)",
		    shown);
		return;
	}
	if (sh->port == 0)
		sh->port = sh->tls == CONFIG_TLS_IMPLICIT ? 465 :
		    sh->tls == CONFIG_TLS_STARTTLS        ? 587 :
							    25;
	p->fallback_lines[p->cfg->n_smarthosts - 1] = config_seen(p,
	    "fallback");
	if (sh->fallback != NULL && strcmp(sh->fallback, sh->name) == 0)
		config_fail(p, config_seen(p, "fallback"), p->label, "fallback",
		    "\"%s\" is this smarthost itself (allowed: the NAME of "
		    "another [smarthost NAME])",
		    sh->fallback);
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
	int  lo_line, hi_line, later;

	if (strict ? lo < hi : lo <= hi)
		return;
	lo_line = config_seen(p, lo_key);
	hi_line = config_seen(p, hi_key);
	config_value_fmt_duration(lo_text, sizeof(lo_text), lo);
	config_value_fmt_duration(hi_text, sizeof(hi_text), hi);
	later = hi_line > lo_line; /* report at the later line */
	if ((later ? lo_line : hi_line) != 0)
		snprintf(where, sizeof(where), "line %d",
		    later ? lo_line : hi_line);
	else
		snprintf(where, sizeof(where), "the default");
	config_fail(p, later ? hi_line : lo_line, p->label,
	    later ? hi_key : lo_key, "%s is %s %s = %s (%s)",
	    later ? hi_text : lo_text,
	    later ? (strict ? "not more than" : "less than") :
		    (strict ? "not less than" : "more than"),
	    later ? lo_key : hi_key, later ? lo_text : hi_text, where);
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
		config_fail(p, config_seen(p, "bounce"), p->label, "bounce",
		    "\"admin\" needs admin_address (add admin_address = an "
		    "email address such as postmaster@example.com)");
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
	char                        shown[CONFIG_LINE_MAX + 1];
	size_t                      i;

	if (in->n_allow_networks > 0)
		return;
	for (i = 0; i < in->n_listen; i++) {
		l = &in->listen[i];
		if (config_listen_is_local(l))
			continue;
		sq_printable(shown, sizeof(shown), l->addr, strlen(l->addr));
		config_fail(p, l->line, p->label, "listen",
		    "\"%s\" is not a loopback address: sendq relays mail for "
		    "every client it serves, so a listener others can reach "
		    "needs allow_networks = the networks to serve (allowed "
		    "without it: 127.0.0.1, ::1, unix:PATH)",
		    shown);
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

/* fallback = NAME that names no smarthost: the error, with the names. */
static void
config_fallback_unknown(struct config_parser *p, size_t i)
{
	const struct config           *cfg = p->cfg;
	const struct config_smarthost *sh = &cfg->smarthosts[i];
	char   label[96], shown[CONFIG_LINE_MAX + 1], list[400];
	size_t n, len = 0;
	int    w;

	snprintf(label, sizeof(label), "smarthost %s", sh->name);
	sq_printable(shown, sizeof(shown), sh->fallback, strlen(sh->fallback));
	list[0] = '\0';
	for (n = 0; n < cfg->n_smarthosts; n++) {
		w = snprintf(list + len, sizeof(list) - len, "%s%s",
		    n ? ", " : "", cfg->smarthosts[n].name);
		if (w < 0 || (size_t)w >= sizeof(list) - len) {
			list[len] = '\0';
			break;
		}
		len += (size_t)w;
	}
	config_fail(p, p->fallback_lines[i], label, "fallback",
	    "\"%s\" is not a smarthost of this file (defined: %s)", shown,
	    list);
}

/* Smarthost i is on a fallback cycle: the error, the loop spelled out
 * from i back to i. */
static void
config_fallback_cycle(struct config_parser *p, size_t i)
{
	const struct config *cfg = p->cfg;
	char                 label[96], list[400];
	size_t               n, len;
	int                  j;

	len = (size_t)snprintf(list, sizeof(list), "%s",
	    cfg->smarthosts[i].name);
	for (j = cfg->smarthosts[i].fallback_index;;
	     j = cfg->smarthosts[j].fallback_index) {
		n = (size_t)snprintf(list + len, sizeof(list) - len, " -> %s",
		    cfg->smarthosts[j].name);
		if (n >= sizeof(list) - len) {
			snprintf(list + sizeof(list) - 5, 5, "...");
			break;
		}
		len += n;
		if ((size_t)j == i)
			break;
	}
	snprintf(label, sizeof(label), "smarthost %s", cfg->smarthosts[i].name);
	config_fail(p, p->fallback_lines[i], label, "fallback",
	    "fallback cycle %s (a chain of fallbacks must end at a smarthost "
	    "without fallback)",
	    list);
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
	struct config           *cfg = p->cfg;
	struct config_smarthost *sh;
	size_t                   i, steps;
	int                      j;

	for (i = 0; i < cfg->n_smarthosts; i++) {
		sh = &cfg->smarthosts[i];
		sh->fallback_index = -1;
		if (sh->fallback == NULL)
			continue;
		if ((j = config_smarthost_index(cfg, sh->fallback)) < 0) {
			config_fallback_unknown(p, i);
			return;
		}
		sh->fallback_index = j;
	}
	for (i = 0; i < cfg->n_smarthosts; i++) {
		j = cfg->smarthosts[i].fallback_index;
		for (steps = 0;
		     j >= 0 && (size_t)j != i && steps < cfg->n_smarthosts;
		     steps++)
			j = cfg->smarthosts[j].fallback_index;
		if (j >= 0 && (size_t)j == i) {
			config_fallback_cycle(p, i);
			return;
		}
	}
}

/* [sendq], [queue], [intake], [aliases]: sections without a name, each at
 * most once. */
static void
config_open_plain(struct config_parser *p, const char *raw, const char *word,
    const char *name)
{
	static const struct {
		const char      *word;
		enum config_sect sect;
	} plain[] = { { "sendq", CONFIG_SECT_SENDQ },
		{ "queue", CONFIG_SECT_QUEUE },
		{ "intake", CONFIG_SECT_INTAKE },
		{ "aliases", CONFIG_SECT_ALIASES } };
	size_t i;

	for (i = 0; strcmp(plain[i].word, word) != 0; i++)
		;
	if (*name != '\0') {
		config_fail(p, p->line, raw, NULL, "[%s] takes no name", word);
		return;
	}
	if (p->first_line[plain[i].sect] != 0) {
		config_fail(p, p->line, raw, NULL,
		    "duplicate section (first at line %d)",
		    p->first_line[plain[i].sect]);
		return;
	}
	p->first_line[plain[i].sect] = p->line;
	p->sect = plain[i].sect;
	snprintf(p->label, sizeof(p->label), "%s", word);
}

/* [smarthost NAME]: a new smarthost, with the table's defaults. */
static void
config_open_smarthost(struct config_parser *p, const char *raw,
    const char *name)
{
	struct config           *cfg = p->cfg;
	struct config_smarthost *sh;
	size_t                   i;

	if (*name == '\0' || !config_value_name(name)) {
		config_fail(p, p->line, raw, NULL,
		    *name == '\0' ?
			"a smarthost needs a name, as in [smarthost primary]" :
			"invalid smarthost name (allowed: 1 to %d letters, "
			"digits, '.', '_', '-')",
		    CONFIG_NAME_MAX);
		return;
	}
	for (i = 0; i < cfg->n_smarthosts; i++) {
		if (strcmp(cfg->smarthosts[i].name, name) == 0) {
			config_fail(p, p->line, raw, NULL,
			    "duplicate smarthost name (first at line %d)",
			    cfg->smarthosts[i].line);
			return;
		}
	}
	cfg->smarthosts = xreallocarray(cfg->smarthosts, cfg->n_smarthosts + 1,
	    sizeof(*cfg->smarthosts));
	p->fallback_lines = xreallocarray(p->fallback_lines,
	    cfg->n_smarthosts + 1, sizeof(*p->fallback_lines));
	p->fallback_lines[cfg->n_smarthosts] = 0;
	sh = &cfg->smarthosts[cfg->n_smarthosts++];
	memset(sh, 0, sizeof(*sh));
	sh->fallback_index = -1;
	sh->name = xstrdup(name);
	sh->line = p->line;
	p->sect = CONFIG_SECT_SMARTHOST;
	snprintf(p->label, sizeof(p->label), "smarthost %s", name);
	config_defaults(p, CONFIG_SECT_SMARTHOST);
}

/*
 * Split a header "[ WORD NAME ]" (s at '['): *word and *name point into s
 * (NAME "" when absent), raw gets the printable text between the
 * brackets.  Returns 0, or -1 with the syntax error recorded.
 */
static int
config_header(struct config_parser *p, char *s, char **word, char **name,
    char *raw, size_t rawsz)
{
	char  *end;
	size_t i;
	int    was_space = 0;

	/* Like inih: the header ends at ']', and " ;" starts a comment. */
	for (i = 1; s[i] != '\0' && s[i] != ']'; i++) {
		if (was_space && s[i] == ';')
			break;
		was_space = isspace((unsigned char)s[i]);
	}
	if (s[i] != ']') {
		config_fail(p, p->line, NULL, NULL,
		    "syntax error: section header without a closing ']'");
		return -1;
	}
	end = s + i;
	for (*name = end + 1; isspace((unsigned char)**name); (*name)++)
		;
	sq_printable(raw, rawsz, s + 1, i - 1);
	if (**name != '\0' && **name != ';') {
		config_fail(p, p->line, raw, NULL,
		    "syntax error: unexpected text after ']'");
		return -1;
	}
	*end = '\0';
	for (*word = s + 1; isspace((unsigned char)**word); (*word)++)
		;
	for (*name = *word; **name != '\0' && !isspace((unsigned char)**name);
	     (*name)++)
		;
	if (**name != '\0')
		*(*name)++ = '\0';
	while (isspace((unsigned char)**name))
		(*name)++;
	for (i = strlen(*name); i > 0 && isspace((unsigned char)(*name)[i - 1]);
	     i--)
		(*name)[i - 1] = '\0';
	return 0;
}

/* A "[...]" line (s starts at '['): close the current section, open the
 * new one. */
static void
config_section(struct config_parser *p, char *s)
{
	char raw[CONFIG_LINE_MAX + 1], *word, *name;

	if (config_header(p, s, &word, &name, raw, sizeof(raw)) != 0)
		return;
	config_section_end(p);
	if (p->failed)
		return;
	memset(p->seen, 0, config_nkeys * sizeof(*p->seen));
	p->sect_line = p->line;
	p->sect = CONFIG_SECT_NONE;
	p->label[0] = '\0';
	if (strcmp(word, "sendq") == 0 || strcmp(word, "queue") == 0 ||
	    strcmp(word, "intake") == 0 || strcmp(word, "aliases") == 0)
		config_open_plain(p, raw, word, name);
	else if (strcmp(word, "smarthost") == 0)
		config_open_smarthost(p, raw, name);
	else
		config_fail(p, p->line, raw, NULL,
		    "unknown section (allowed: [sendq], [queue], [smarthost "
		    "NAME])");
}

/* Next byte of input, or EOF. */
static int
config_getc(struct config_parser *p)
{
	if (p->text_end != NULL)
		return p->text < p->text_end ? (unsigned char)*p->text++ : EOF;
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
	char                  line[CONFIG_LINE_MAX + 3] = "", *s;
	size_t                len = 0, max;
	int                   c, got = 0;

	if (p->pending != 0) {
		config_fail(p, p->pending, NULL, NULL,
		    "syntax error: expected \"key = value\", \"[section]\" or "
		    "a comment");
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
		return NULL; /* end of input (or a read error) */
	p->line++;
	if (len > 0 && len <= max + 1 && line[len - 1] == '\r')
		len--;
	if (len > max) {
		config_fail(p, p->line, NULL, NULL,
		    "line too long (allowed: at most %zu characters)", max);
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
	/* s fits: it is at most max <= num - 3 bytes of line. */
	len = strlen(s);
	memcpy(str, s, len);
	memcpy(str + len, "\n", 2);
	return str;
}

/*
 * The addresses of alias a: local@domain or bare local parts (qualified
 * later, rewrite.h), separated by blanks or commas.  Returns 0, or -1
 * with the error recorded.
 */
static int
config_alias_targets(struct config_parser *p, struct config_alias *a,
    const char *value)
{
	char        shown[CONFIG_LINE_MAX + 1], tok[CONFIG_LINE_MAX + 1];
	const char *t, *end;
	size_t      n;

	for (t = value; *t != '\0'; t = end) {
		t += strspn(t, " \t,");
		end = t + strcspn(t, " \t,");
		if ((n = (size_t)(end - t)) == 0)
			continue;
		memcpy(tok, t, n);
		tok[n] = '\0';
		sq_printable(shown, sizeof(shown), tok, n);
		if (!config_value_local_or_address(tok, 1)) {
			config_fail(p, p->line, p->label, a->name,
			    "\"%s\" is not a valid address (allowed: "
			    "local@domain or a local part, separated by blanks "
			    "or commas)",
			    shown);
			return -1;
		}
		if (a->n_targets >= CONFIG_ALIAS_TARGETS_MAX) {
			config_fail(p, p->line, p->label, a->name,
			    "too many addresses (allowed: at most %d)",
			    CONFIG_ALIAS_TARGETS_MAX);
			return -1;
		}
		a->targets = xreallocarray(a->targets, a->n_targets + 1,
		    sizeof(*a->targets));
		a->targets[a->n_targets++] = xstrdup(tok);
	}
	if (a->n_targets == 0) {
		config_fail(p, p->line, p->label, a->name,
		    "no address (allowed: local@domain or a local part, "
		    "separated by blanks or commas)");
		return -1;
	}
	return 0;
}

/*
 * One [aliases] line: NAME = ADDRESS [ADDRESS ...].  NAME is a local part,
 * or local@domain, stored lowercased.  Returns 0, or -1 with the error
 * recorded.
 */
static int
config_set_alias(struct config_parser *p, const char *name, const char *value)
{
	struct config       *cfg = p->cfg;
	struct config_alias *a;
	char                 shown[CONFIG_LINE_MAX + 1];
	size_t               i;

	sq_printable(shown, sizeof(shown), name, strlen(name));
	if (!config_value_local_or_address(name, 1)) {
		config_fail(p, p->line, p->label, shown,
		    "not a valid alias name (allowed: a local part such as "
		    "root, or local@domain)");
		return -1;
	}
	for (i = 0; i < cfg->n_aliases; i++)
		if (strcasecmp(cfg->aliases[i].name, name) == 0) {
			config_fail(p, p->line, p->label, shown,
			    "duplicate alias (first at line %d)",
			    cfg->aliases[i].line);
			return -1;
		}
	if (cfg->n_aliases >= CONFIG_ALIASES_MAX) {
		config_fail(p, p->line, p->label, shown,
		    "too many aliases (allowed: at most %d)",
		    CONFIG_ALIASES_MAX);
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
	return config_alias_targets(p, a, value);
}

static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct config_parser    *p = user;
	const struct config_key *k;
	char                     shown[CONFIG_LINE_MAX + 1], keys[512];
	size_t                   i;

	(void)section; /* the reader tracks sections */
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
		config_fail(p, p->line, NULL, shown,
		    "key outside any section (allowed: after a [sendq], "
		    "[queue] or [smarthost NAME] header)");
		return 0;
	}
	if (p->sect == CONFIG_SECT_ALIASES)
		return config_set_alias(p, name, value) == 0;
	k = config_key_find(p->sect, name, &i);
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
	p->seen = xcalloc(config_nkeys, sizeof(*p->seen));
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
	if (!p->failed && rc > 0) /* not expected: the reader sees all */
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
		config_fail(p, p->line, NULL, NULL,
		    "no smarthost defined (add a [smarthost NAME] section with "
		    "at least host =)");
	if (!p->failed)
		config_resolve_fallbacks(p);
	free(p->fallback_lines);
	p->fallback_lines = NULL;
	free(p->seen);
	p->seen = NULL;
	if (p->failed) {
		config_free(p->cfg);
		return p->code;
	}
	*out = p->cfg;
	return 0;
}

/*
 * The whole of fd into *data (heap, *len bytes).  Returns 0 or -errno.
 * A config file is read at once rather than through stdio: sendq reads
 * it on every message (fopen, its buffer and its fstat cost more than
 * the parse of a small file needs).
 */
static int
config_read_all(int fd, char **data, size_t *len)
{
	size_t  cap = 4096;
	ssize_t n;

	*data = xmalloc(cap);
	*len = 0;
	for (;;) {
		if (*len == cap)
			*data = xreallocarray(*data, cap *= 2, 1);
		n = sq_read(fd, *data + *len, cap - *len);
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
}

int
config_load_file(const char *path, struct config **out, struct sq_err *err)
{
	return config_load_file_opts(path, 0, out, err);
}

int
config_load_file_opts(const char *path, unsigned flags, struct config **out,
    struct sq_err *err)
{
	struct config_parser p;
	char                 shown[256], *data;
	size_t               len;
	int                  fd, rc, saved;

	memset(&p, 0, sizeof(p));
	p.flags = flags;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		saved = errno;
		sq_printable(shown, sizeof(shown), path, strlen(path));
		return sq_err_set(err, -saved, "%s: cannot open: %s", shown,
		    strerror(saved));
	}
	/* A read error is reported as the parse's first error ("cannot
	 * read"), as when it came in the middle of the file. */
	if ((rc = config_read_all(fd, &data, &len)) != 0)
		p.read_errno = -rc;
	close(fd);
	p.text = data;
	p.text_end = data + len;
	rc = config_parse(&p, path, out, err);
	free(data);
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
