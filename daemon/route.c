/*
 * route.c - which smarthost takes a recipient.
 *
 * How it works: route_pick() makes two passes over cfg->smarthosts in file
 * order.  The first considers only smarthosts with a match_sender or
 * match_recipient list: the first whose every set list has a glob that
 * matches (sender against match_sender, recipient against
 * match_recipient) wins.  A smarthost without match_ keys would match
 * anything, so it does not take part in that pass: the second pass picks
 * the first of them, the default, wherever it stands in the file.  With
 * neither, the answer is -1 and the scheduler reports the message.
 *
 * Globs: '*' matches any run of characters (also none), '?' exactly one,
 * every other character itself without regard to ASCII case.  A glob with
 * an '@' is matched against the whole address; one without is matched
 * against the domain, the text after the address's last '@' (an address
 * without '@', such as the null sender "", has no domain and matches no
 * domain glob).  The matcher is iterative: on a mismatch it returns to the
 * last '*' and lets it take one more character, so it needs no recursion
 * and at most strlen(glob) * strlen(text) steps, even for globs such as
 * "*a*a*a*b" against a long run of 'a's.
 *
 * Fallbacks are resolved by config.c (fallback_index); nothing here follows
 * them.
 */
#include <stddef.h>
#include <string.h>

#include "config.h"
#include "route.h"

static int
route_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* The whole of text against the whole of glob. */
static int
route_glob_text(const char *glob, const char *text)
{
	const char *g = glob, *t = text, *star = NULL, *resume = NULL;

	while (*t != '\0') {
		if (*g == '*') {
			star = g++;
			resume = t; /* the star takes nothing so far */
		} else if (*g != '\0' &&
		    (*g == '?' ||
			route_lower((unsigned char)*g) ==
			    route_lower((unsigned char)*t))) {
			g++;
			t++;
		} else if (star != NULL) {
			g = star + 1; /* the star takes one more */
			t = ++resume;
		} else
			return 0;
	}
	while (*g == '*')
		g++;
	return *g == '\0';
}

int
route_glob_match(const char *glob, const char *addr)
{
	const char *at;

	if (glob == NULL || addr == NULL)
		return 0;
	if (strchr(glob, '@') != NULL)
		return route_glob_text(glob, addr);
	if ((at = strrchr(addr, '@')) == NULL)
		return 0;
	return route_glob_text(glob, at + 1);
}

/* Non-zero when one of the NULL-terminated globs matches addr. */
static int
route_any(char *const *globs, const char *addr)
{
	size_t i;

	for (i = 0; globs[i] != NULL; i++)
		if (route_glob_match(globs[i], addr))
			return 1;
	return 0;
}

int
route_pick(const struct config *cfg, const char *sender, const char *rcpt)
{
	const struct config_smarthost *sh;
	size_t                         i;

	if (cfg == NULL)
		return -1;
	if (sender == NULL)
		sender = "";
	if (rcpt == NULL)
		rcpt = "";
	for (i = 0; i < cfg->n_smarthosts; i++) {
		sh = &cfg->smarthosts[i];
		if (sh->match_sender == NULL && sh->match_recipient == NULL)
			continue;
		if (sh->match_sender != NULL &&
		    !route_any(sh->match_sender, sender))
			continue;
		if (sh->match_recipient != NULL &&
		    !route_any(sh->match_recipient, rcpt))
			continue;
		return (int)i;
	}
	for (i = 0; i < cfg->n_smarthosts; i++) {
		sh = &cfg->smarthosts[i];
		if (sh->match_sender == NULL && sh->match_recipient == NULL)
			return (int)i;
	}
	return -1;
}
