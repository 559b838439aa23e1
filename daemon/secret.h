/*
 * secret.h - the credentials of a smarthost: a password (password_file,
 * password_command, or a systemd credential from $CREDENTIALS_DIRECTORY)
 * or an OAuth bearer token (token_file, token_command), read fresh for
 * each connection so an external refresher keeps a token valid.
 *
 * Owns: reading secrets, the permission rule for secret files (a file
 * that others than its owner and group can read is refused; one that its
 * group can write is refused), wiping them from memory.
 * May call: config (types), util, log.  Blocks: reads a file or runs a
 * command (with a time limit of SECRET_COMMAND_TIMEOUT seconds).
 *
 * DIAGNOSTICS: errors name the source and never contain the secret:
 * "password_file /etc/sendq/x.secret: readable by others (mode 0644):
 * refusing to use it; chmod 0600 or 0640", "password_command exited
 * with status 1", "credential primary.pass: $CREDENTIALS_DIRECTORY is not
 * set (run under systemd with LoadCredential=)".
 */
#ifndef SENDQ_SECRET_H
#define SENDQ_SECRET_H

#include <stddef.h>

#include "config.h"
#include "util.h"

#define SECRET_COMMAND_TIMEOUT 10
#define SECRET_MAX             16384 /* bytes; tokens can be long */

/* The time limit of password_command and token_command in milliseconds:
 * SECRET_COMMAND_TIMEOUT * 1000.  A hook for tests, which lower it. */
extern unsigned secret_command_timeout_ms;

enum secret_kind {
	SECRET_PASSWORD,
	SECRET_TOKEN,
};

struct secret {
	enum secret_kind kind;
	char            *data; /* NUL-terminated, no line break */
	size_t           len;
};

/* Non-zero when sh has any secret source configured. */
int secret_configured(const struct config_smarthost *sh);

/*
 * Read the secret of sh from its configured source (first line only,
 * trailing CR/LF removed).  Returns 0 and *out (free with secret_free),
 * or a negative code with err.  Never logs the secret.
 */
int secret_load(const struct config_smarthost *sh, struct secret **out,
    struct sq_err *err);

/*
 * The first line of the file at path under the password_file permission
 * rule (what names it in messages: "oauth token file").  Returns 0 and
 * *out, -ENOENT when it does not exist, or another code with err.
 */
int secret_read_path(const char *path, const char *what, struct secret **out,
    struct sq_err *err);

/* The OAuth client secret of sh (oauth_client_secret_file or _credential):
 * 0 and *out, 0 and *out = NULL when none is configured, or an error. */
int secret_load_oauth_client(const struct config_smarthost *sh,
    struct secret **out, struct sq_err *err);

/* The first line of a command's output (len bytes) as a secret, under
 * the same rules as secret_load() (key names the source). */
int secret_from_output(const char *data, size_t len, enum secret_kind kind,
    const char *key, struct secret **out, struct sq_err *err);

/* Wipe and free; NULL accepted. */
void secret_free(struct secret *s);

#endif
