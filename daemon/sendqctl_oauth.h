/*
 * sendqctl_oauth.h - `sendqctl oauth init|status NAME` (sendqctl_oauth.c).
 * May call: config, oauth, oauth_http (blocking), oauth_store, secret,
 * queue_view (oauth-status through the control socket).
 */
#ifndef SENDQ_SENDQCTL_OAUTH_H
#define SENDQ_SENDQCTL_OAUTH_H

#include "config.h"

/* sub: "init" or "status".  Returns the exit code (0 done, 1 failed, 2
 * status: held, EX_* as sendqctl's usage says). */
int sendqctl_oauth_main(const struct config *cfg, const char *sub,
    const char *name);

#endif
