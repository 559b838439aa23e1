/*
 * rewrite.c - qualification, aliases and sender masquerading (rules in
 * rewrite.h).
 *
 * How it works: addresses are addr-specs as mailmsg_addr_list_parse()
 * returns them ("local@domain", "local", or a quoted local part, kept
 * quoted).  The domain separator is the last '@' outside a quoted local
 * part.  Alias lookup is a linear scan of the configured table (at most
 * CONFIG_ALIASES_MAX names; a message has few recipients), comparing the
 * local part and domain case-insensitively; alias names were lowercased
 * by config.c.  Nothing here validates: the CLI and the listener check
 * every result with mailmsg_addr_valid() and name the bad address.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "mailmsg.h"
#include "rewrite.h"
#include "util.h"

void
rewrite_init(struct rewrite *rw, const struct config *cfg, const char *hostname)
{
	memset(rw, 0, sizeof(*rw));
	rw->hostname = hostname;
	rw->default_domain = cfg->default_domain != NULL ? cfg->default_domain :
							   hostname;
	if (rw->default_domain == NULL)
		rw->default_domain = "localhost";
	rw->aliases = cfg->aliases;
	rw->n_aliases = cfg->n_aliases;
	rw->sender = cfg->rewrite_sender;
}

/* The '@' that starts the domain of addr, or NULL. */
static const char *
rewrite_at(const char *addr)
{
	const char *p = addr;

	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++)
			if (*p == '\\' && p[1] != '\0')
				p++;
		if (*p != '"')
			return NULL;
		p++;
		return *p == '@' ? p : NULL;
	}
	return strrchr(addr, '@');
}

int
rewrite_has_domain(const char *addr)
{
	return rewrite_at(addr) != NULL;
}

char *
rewrite_qualify(const char *addr, const char *domain)
{
	if (addr[0] == '\0' || rewrite_has_domain(addr))
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, domain);
}

long
rewrite_alias_find(const struct rewrite *rw, const char *addr)
{
	const char *at = rewrite_at(addr), *dom;
	size_t      i, llen;

	if (at == NULL)
		return -1;
	llen = (size_t)(at - addr);
	dom = at + 1;
	for (i = 0; i < rw->n_aliases; i++) {
		const char *name = rw->aliases[i].name;

		if (strchr(name, '@') != NULL) {
			if (strcasecmp(name, addr) == 0)
				return (long)i;
			continue;
		}
		if (strlen(name) != llen || strncasecmp(name, addr, llen) != 0)
			continue;
		if (strcasecmp(dom, rw->default_domain) == 0 ||
		    (rw->hostname != NULL &&
			strcasecmp(dom, rw->hostname) == 0))
			return (long)i;
	}
	return -1;
}

static void
rewrite_append(struct mailmsg_addr_list *out, char *addr)
{
	out->addrs = xreallocarray(out->addrs, out->n + 1, sizeof(*out->addrs));
	out->addrs[out->n++] = addr;
}

int
rewrite_recipient(const struct rewrite *rw, const char *addr,
    struct mailmsg_addr_list *out)
{
	const struct config_alias *a;
	char                      *q;
	size_t                     i;
	long                       ai;

	q = rewrite_qualify(addr, rw->default_domain);
	if ((ai = rewrite_alias_find(rw, q)) < 0) {
		rewrite_append(out, q);
		return 0;
	}
	free(q);
	a = &rw->aliases[ai];
	for (i = 0; i < a->n_targets; i++)
		rewrite_append(out,
		    rewrite_qualify(a->targets[i], rw->default_domain));
	return 1;
}

char *
rewrite_sender(const struct rewrite *rw, const char *sender)
{
	const char *at;
	char       *q, *r;

	if (sender[0] == '\0')
		return xstrdup("");
	q = rewrite_qualify(sender, rw->default_domain);
	if (rw->sender == NULL)
		return q;
	if (strchr(rw->sender, '@') != NULL)
		r = xstrdup(rw->sender);
	else {
		at = rewrite_at(q);
		r = xasprintf("%.*s@%s", (int)(at - q), q, rw->sender);
	}
	free(q);
	return r;
}

/*
 * value[0..len) with the address addr (as the parser returned it)
 * replaced by repl: the text between the last '<' and the next '>'; or,
 * without angle brackets, addr where it starts after blanks and
 * comments; else the whole value becomes " " repl.
 */
static char *
rewrite_replace(const char *value, size_t len, const char *addr,
    const char *repl)
{
	const char *lt = NULL, *gt, *p, *end = value + len;
	size_t      alen = strlen(addr);
	int         depth;

	for (p = value; p < end; p++)
		if (*p == '<')
			lt = p;
	if (lt != NULL && (gt = memchr(lt, '>', (size_t)(end - lt))) != NULL)
		return xasprintf("%.*s%s%.*s", (int)(lt + 1 - value), value,
		    repl, (int)(end - gt), gt);
	for (p = value; p < end;) {
		if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			p++;
			continue;
		}
		if (*p != '(')
			break;
		for (depth = 0; p < end; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			else if (*p == '(')
				depth++;
			else if (*p == ')' && --depth == 0) {
				p++;
				break;
			}
		}
	}
	if ((size_t)(end - p) >= alen && strncasecmp(p, addr, alen) == 0)
		return xasprintf("%.*s%s%.*s", (int)(p - value), value, repl,
		    (int)(end - p - (ptrdiff_t)alen), p + alen);
	return xasprintf(" %s", repl);
}

int
rewrite_from_value(const struct rewrite *rw, const char *value, size_t len,
    const char *orig_sender, const char *new_sender, char **out)
{
	struct mailmsg_addr_list l = { 0 };
	char                    *q;
	int                      same;

	*out = NULL;
	if (orig_sender[0] == '\0' || strcasecmp(orig_sender, new_sender) == 0)
		return 0;
	if (mailmsg_addr_list_parse(&l, value, len, NULL) != 0)
		return 0;
	if (l.n != 1) {
		mailmsg_addr_list_fini(&l);
		return 0;
	}
	q = rewrite_qualify(l.addrs[0], rw->default_domain);
	same = strcasecmp(q, orig_sender) == 0;
	free(q);
	if (same)
		*out = rewrite_replace(value, len, l.addrs[0], new_sender);
	mailmsg_addr_list_fini(&l);
	return same;
}

int
rewrite_from_qualify(const struct rewrite *rw, const char *value, size_t len,
    char **out)
{
	struct mailmsg_addr_list l = { 0 };
	char                    *q;
	int                      rc = 0;

	*out = NULL;
	if (mailmsg_addr_list_parse(&l, value, len, NULL) != 0)
		return 0;
	if (l.n == 1 && !rewrite_has_domain(l.addrs[0])) {
		q = rewrite_qualify(l.addrs[0], rw->default_domain);
		*out = rewrite_replace(value, len, l.addrs[0], q);
		free(q);
		rc = 1;
	}
	mailmsg_addr_list_fini(&l);
	return rc;
}

void
rewrite_envelope(const struct rewrite *rw, struct envelope *env)
{
	struct mailmsg_addr_list out = { NULL, 0 };
	char                    *sender, **old = env->rcpts;
	size_t                   i, j, n_old = env->n_rcpts;

	sender = rewrite_sender(rw, env->sender);
	envelope_set_sender(env, sender);
	free(sender);
	for (i = 0; i < n_old; i++)
		rewrite_recipient(rw, old[i], &out);
	env->rcpts = NULL;
	env->n_rcpts = 0;
	for (i = 0; i < out.n; i++) {
		for (j = 0; j < env->n_rcpts; j++)
			if (strcasecmp(env->rcpts[j], out.addrs[i]) == 0)
				break;
		if (j == env->n_rcpts)
			envelope_add_rcpt(env, out.addrs[i]);
	}
	mailmsg_addr_list_fini(&out);
	for (i = 0; i < n_old; i++)
		free(old[i]);
	free(old);
}
