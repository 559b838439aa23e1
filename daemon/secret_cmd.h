/*
 * secret_cmd.h - password_command and token_command run beside the event
 * loop: the loop keeps serving intake, control and other relays while a
 * helper runs.
 *
 * Owns: the child process (its own process group), its stdout and stderr
 * pipes (watched by libevent), its time limit.
 * May call: secret (line rules), util, log, libevent.  Never blocks.
 *
 * The child gets /bin/sh -c CMD with stdin on /dev/null and only
 * PATH=/usr/bin:/bin, HOME (sendqd's, or /) and SENDQ_SMARTHOST=NAME.  Its
 * stderr (first SECRET_CMD_STDERR_MAX bytes, line breaks as " | ") is
 * logged as one line "relay=NAME token_command stderr: ...".  At the time
 * limit the group is killed and the result is -ETIMEDOUT with "token_command
 * timed out after 10 s (killed)": a timeout, not refused credentials.
 */
#ifndef SENDQ_SECRET_CMD_H
#define SENDQ_SECRET_CMD_H

#include "secret.h"

#define SECRET_CMD_STDERR_MAX 1024

struct event_base;
struct secret_cmd;

/* rc 0: s is the secret (the callee owns it: secret_free).  Otherwise
 * rc is -ETIMEDOUT (time limit), SQ_EPROTO (non-zero exit, signal) or
 * another code, and msg says what (never the output). */
typedef void (
    *secret_cmd_cb)(int rc, struct secret *s, const char *msg, void *arg);

/*
 * Start cmd for smarthost name; key is "password_command" or
 * "token_command".  cb is called once, from the loop, unless cancelled.
 * timeout_ms: 0 = secret_command_timeout_ms.
 */
struct secret_cmd *secret_cmd_run(struct event_base *base, const char *cmd,
    const char *key, const char *name, enum secret_kind kind,
    unsigned timeout_ms, secret_cmd_cb cb, void *arg);
/* Kill the child (if running), reap it, free; no callback. */
void secret_cmd_cancel(struct secret_cmd *sc);

#endif
