/*
 * config.h - the sendq.ini file, parsed and validated into an immutable
 * struct config.
 *
 * Owns: the table of every section and key (type, allowed values, default,
 * documentation) and the rules that relate keys to each other.
 * May call: util, log (never: sockets, clock).  Uses inih with a line
 * counting reader so every error names file:line.
 *
 * DIAGNOSTICS: every error is one line in err->msg of the form
 *   "FILE:LINE: [SECTION] KEY: what is wrong (allowed: ...)"
 * or "FILE: cannot open: REASON" for an unreadable file.  Callers exit with
 * EX_CONFIG (78).
 */
#ifndef SENDQ_CONFIG_H
#define SENDQ_CONFIG_H

#include <stddef.h>

#include "util.h"

#define CONFIG_DEFAULT_PATH	"/etc/sendq/sendq.ini"
#define CONFIG_DEFAULT_SPOOL	"/var/spool/sendq"

enum config_tls {
	CONFIG_TLS_IMPLICIT,	/* TLS handshake before the greeting (465) */
	CONFIG_TLS_STARTTLS,	/* EHLO, STARTTLS, handshake, EHLO (587/25) */
	CONFIG_TLS_NONE,	/* cleartext: only to a loopback host */
};

enum config_trust {
	CONFIG_TRUST_SYSTEM,	/* system trust store + host name */
	CONFIG_TRUST_CA_FILE,	/* the CAs in ca_file + host name */
	CONFIG_TRUST_INSECURE,	/* no verification, logged at every use */
};

struct config_smarthost {
	char		*name;		/* from [smarthost NAME] */
	char		*host;		/* name or address literal */
	unsigned	 port;		/* default: 465 implicit,
					 * 587 starttls, 25 none */
	enum config_tls	 tls;
	enum config_trust trust;
	char		*ca_file;	/* NULL unless trust = ca_file */
	int		 line;		/* line of the section header */
};

struct config {
	char		*path;		/* the file this came from */
	char		*spool_dir;	/* [sendq] spool_dir */
	char		*hostname;	/* [sendq] hostname; NULL = not set,
					 * the caller uses gethostname() */
	unsigned	 retry_min;	/* [queue] retry_min, seconds: the
					 * delay before a deferred message is
					 * tried again */
	struct config_smarthost *smarthosts;	/* in file order */
	size_t		 n_smarthosts;
	int		 log_level;	/* [sendq] log_level: an enum
					 * log_level value (log.h) */
};

/* The longest line accepted in the file, in characters without the line
 * break; a longer line is an error rather than being split. */
#define CONFIG_LINE_MAX		197

/*
 * Parse and validate the file at path.
 * Returns 0 and sets *out (free with config_free), or a negative SQ_E* /
 * -errno with err filled (see DIAGNOSTICS); *out is then untouched.
 * Blocks on file I/O only.
 */
int	config_load_file(const char *path, struct config **out,
	    struct sq_err *err);

/*
 * The same from text in memory; name is used as FILE in messages.
 */
int	config_load_string(const char *name, const char *text,
	    struct config **out, struct sq_err *err);

/* Free a config; NULL is accepted. */
void	config_free(struct config *cfg);

/* Names for logs: "implicit", "starttls", "none"; "system", ... */
const char	*config_tls_name(enum config_tls tls);
const char	*config_trust_name(enum config_trust trust);

#endif
