/*
 * oauth_store.h - the refresh token of each OAuth smarthost on disk:
 * STATE_DIR/oauth/NAME (first line: the refresh token; mode 0600), and
 * STATE_DIR/oauth/NAME.status, the daemon's last refresh (key=value lines
 * for sendqctl oauth status; no secret in it).
 *
 * Owns: the oauth/ directory (mode 0700), atomic replacement of both
 * files: a temporary file in the same directory, written, fsync()ed,
 * renamed over the old one, then the directory fsync()ed.  A crash
 * leaves either the old or the new token, never a mix or none; a rotated
 * refresh token is durable before the old one is forgotten.
 * May call: secret (the permission rule), util, log.  Blocks on file I/O
 * (small files, on the daemon's own disk).
 *
 * DIAGNOSTICS: "oauth token file /var/lib/sendq/oauth/NAME: cannot open:
 * No such file or directory (run sendqctl oauth init NAME)".
 */
#ifndef SENDQ_OAUTH_STORE_H
#define SENDQ_OAUTH_STORE_H

#include <sys/types.h>

#include "util.h"

/* STATE_DIR/oauth (malloc'ed). */
char *oauth_store_dir(const char *state_dir);

/*
 * Create STATE_DIR/oauth (0700) when missing.  owner/group: chown a new
 * directory to them (-1: leave).  Returns 0 or -errno with err.
 */
int oauth_store_mkdir(const char *state_dir, uid_t owner, gid_t group,
    struct sq_err *err);

/* The refresh token of smarthost name: 0 and *out (malloc'ed; wipe and
 * free), -ENOENT when there is none yet, or another error (with err). */
int oauth_store_read(const char *state_dir, const char *name, char **out,
    struct sq_err *err);

/*
 * Replace file (NAME or NAME.status under oauth/) with data, atomically
 * and durably; mode 0600, owned like the oauth/ directory (when run as
 * root, so that sendqd can read what sendqctl stored).  Returns 0 or
 * -errno with err.
 */
int oauth_store_write(const char *state_dir, const char *file, const char *data,
    struct sq_err *err);

#endif
