/*
 * route.h - which smarthost takes a recipient, and which one takes over
 * when it cannot be reached.
 *
 * Rule: the first [smarthost] in file order whose match_sender (if set)
 * matches the envelope sender and whose match_recipient (if set) matches
 * the recipient; when none matches, the first smarthost that has neither
 * match_ key (the default).  A glob matches the whole address
 * ("*@example.com", "alerts-*@*") or, when it has no '@', the domain
 * ("example.com", "*.example.org"); matching is case-insensitive.
 * fallback = NAME names the smarthost that takes the mail when this one
 * cannot be reached or answers 4xx at connection level.
 *
 * Owns: matching and the route of a recipient.
 * May call: config (types), libc.  Pure.
 */
#ifndef SENDQ_ROUTE_H
#define SENDQ_ROUTE_H

#include "config.h"

/* Index into cfg->smarthosts for (sender, rcpt), or -1 when no smarthost
 * matches and there is no default. sender "" is the null sender. */
int route_pick(const struct config *cfg, const char *sender, const char *rcpt);

/* Non-zero when glob matches addr as described above. */
int route_glob_match(const char *glob, const char *addr);

#endif
