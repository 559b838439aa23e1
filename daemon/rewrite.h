/*
 * rewrite.h - envelope address rewriting for mail that local programs
 * submit (sendq now; the listener and pickup later): qualification of
 * bare local parts, [aliases] expansion of recipients, and sender
 * masquerading (rewrite_sender).
 *
 * Rules (README "Submitting mail", conf/sendq.ini):
 *  - qualify: an address without a domain ("root", "www-data") gets
 *    "@" default_domain ([sendq] default_domain, else the host name).
 *    The null sender "" stays "".
 *  - aliases: a recipient whose local part equals an [aliases] name
 *    (ASCII case-insensitive) and whose domain is default_domain or the
 *    host name (also case-insensitive) is replaced by the alias's
 *    addresses; a name written NAME@DOMAIN matches only that address.
 *    Targets without a domain are qualified.  Expansion is one level:
 *    a target that is itself an alias name is not expanded again, so
 *    there are no loops and "root = root@example.com" is fine.
 *    Senders are never aliased.
 *  - sender: with rewrite_sender = ADDRESS every non-null envelope
 *    sender becomes ADDRESS; with rewrite_sender = DOMAIN it becomes
 *    LOCAL@DOMAIN (LOCAL from the sender).  The null sender <> is never
 *    rewritten (bounces must stay bounces).  The From: header is
 *    rewritten the same way only when it holds exactly one address and
 *    that address (qualified) equals the original envelope sender.
 *    Otherwise a From: with one unqualified address is qualified.  No
 *    other header field is touched (To/Cc keep what the user wrote).
 *
 * Owns: nothing beyond the strings it returns.
 * May call: config (types only), mailmsg (address-list parser), util.
 * Pure: no I/O, no clock.
 *
 * DIAGNOSTICS: none: the functions do not validate addresses (callers
 * check the results with mailmsg_addr_valid() and report).  Alias
 * targets were checked when the configuration was loaded.
 */
#ifndef SENDQ_REWRITE_H
#define SENDQ_REWRITE_H

#include <stddef.h>

#include "config.h"
#include "envelope.h"
#include "mailmsg.h"

struct rewrite {
	const char                *default_domain; /* never NULL */
	const char                *hostname;       /* also local for aliases;
						 * may be NULL */
	const struct config_alias *aliases;
	size_t                     n_aliases;
	const char                *sender; /* rewrite_sender, or NULL */
};

/*
 * Fill rw from cfg (which must outlive rw) and the host name in use
 * (cfg->hostname or the system's; must outlive rw).  default_domain is
 * cfg->default_domain, else hostname.  Never fails.
 */
void rewrite_init(struct rewrite *rw, const struct config *cfg,
    const char *hostname);

/* True when addr has a domain: an '@' that is not inside a quoted local
 * part. */
int rewrite_has_domain(const char *addr);

/*
 * addr with "@domain" appended when it has none; "" stays "".  Returns a
 * heap string the caller frees.
 */
char *rewrite_qualify(const char *addr, const char *domain);

/*
 * Index of the [aliases] entry that the (qualified) address addr
 * matches, or -1.
 */
long rewrite_alias_find(const struct rewrite *rw, const char *addr);

/*
 * Append to out what the recipient addr becomes: its alias's addresses
 * (qualified) when it matches one, else addr qualified.  Returns 1 when
 * an alias was expanded, 0 otherwise.  Strings in out belong to out
 * (mailmsg_addr_list_fini).
 */
int rewrite_recipient(const struct rewrite *rw, const char *addr,
    struct mailmsg_addr_list *out);

/*
 * The envelope sender to use for sender: "" for the null sender, else
 * sender qualified and then rewritten by rw->sender.  Returns a heap
 * string the caller frees.
 */
char *rewrite_sender(const struct rewrite *rw, const char *sender);

/*
 * The From: field value value[0..len) (after the colon, folds kept) with
 * its one address replaced by new_sender, when that address, qualified
 * with rw->default_domain, equals orig_sender (case-insensitive): the
 * text between the last '<' and the next '>' is replaced, or, without
 * angle brackets, the address where it starts after blanks and comments
 * (else the whole value becomes " " new_sender).  Returns 1 and
 * *out (a heap string, the new value without a line ending), or 0 and
 * *out NULL when the field is to be left alone (several or no
 * addresses, a parse error, another address, or orig_sender equal to
 * new_sender).
 */
int rewrite_from_value(const struct rewrite *rw, const char *value, size_t len,
    const char *orig_sender, const char *new_sender, char **out);

/*
 * The From: field value with its one address qualified when it has no
 * domain ("root (Cron Daemon)" -> "root@DEFAULT_DOMAIN (Cron Daemon)"),
 * replaced as rewrite_from_value() does.  Returns 1 and *out (heap), or
 * 0 and *out NULL when there is nothing to qualify.
 */
int rewrite_from_qualify(const struct rewrite *rw, const char *value,
    size_t len, char **out);

/*
 * Rewrite a whole envelope in place, for the listener and the drop
 * directory: the sender as rewrite_sender(), every recipient as
 * rewrite_recipient() (alias targets included), duplicates dropped (the
 * first occurrence is kept).  Headers are not touched.
 */
void rewrite_envelope(const struct rewrite *rw, struct envelope *env);

#endif
