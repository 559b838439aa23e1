/*
 * sendqctl_oauth.c - `sendqctl oauth init NAME` and `sendqctl oauth status
 * NAME`.
 *
 * init runs the OAuth 2.0 device authorization grant (RFC 8628) against
 * the smarthost's oauth_device_endpoint: it prints the verification URL
 * and the user code, polls the token endpoint at the interval the server
 * asks for (5 s more after each slow_down, oauth_device_step()), and
 * stores the refresh token in STATE_DIR/oauth/NAME (oauth_store_write:
 * atomic, mode 0600, owned like the oauth/ directory, i.e. by the
 * daemon's user).  sendqd watches that directory: a held smarthost is
 * released as soon as the file changes, no further message is needed.
 *
 * status prints the age of the stored refresh token and what sendqd wrote
 * to STATE_DIR/oauth/NAME.status after its last refresh.
 *
 * Both are for the administrator: the oauth/ directory is mode 0700,
 * owned by the daemon's user, so only root and that user get past it.
 * status for anyone else (a member of [sendq] admin_group) asks sendqd
 * over the control socket (oauth-status NAME, an administrative request:
 * control.h), which answers the same lines from memory.
 * Blocking is fine here (a command-line tool): HTTP goes through
 * oauth_http_post_sync().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "buf.h"
#include "config.h"
#include "oauth.h"
#include "oauth_http.h"
#include "oauth_store.h"
#include "queue_view.h"
#include "secret.h"
#include "sendqctl_oauth.h"
#include "util.h"

/* Seconds to wait for sendqd's answer to oauth-status. */
#define SENDQCTL_OAUTH_TIMEOUT 10

/* POST form to url, parse, classify.  *r is filled when it parsed. */
static enum oauth_class
sendqctl_oauth_post(const struct config_smarthost *sh, const char *url,
    const char *const *form, struct oauth_resp *r, char *why, size_t whysz)
{
	struct oauth_http_result h;
	struct sq_err            err = { 0, "" };
	enum oauth_class         cls;
	int                      parsed = 0;

	memset(r, 0, sizeof(*r));
	oauth_http_post_sync(url, form, sh->oauth_ca_file, 0, &h);
	if (h.transport_ok)
		parsed = oauth_parse(h.body, h.len, r, &err) == 0;
	cls = oauth_classify(h.transport_ok, h.status, parsed ? r : NULL);
	if (!h.transport_ok)
		snprintf(why, whysz, "%s", h.error);
	else if (parsed && r->error != NULL)
		snprintf(why, whysz, "HTTP %ld: %s%s%s", h.status, r->error,
		    r->error_description != NULL ? ": " : "",
		    r->error_description != NULL ? r->error_description : "");
	else if (!parsed)
		snprintf(why, whysz, "HTTP %ld: %s", h.status, err.msg);
	else
		snprintf(why, whysz, "HTTP %ld", h.status);
	free((void *)h.body); /* malloc'ed: oauth_http.h */
	return cls;
}

static void
sendqctl_oauth_sleep_until(int64_t when_ms)
{
	int64_t         left;
	struct timespec ts;

	while ((left = when_ms - sq_now_ms()) > 0) {
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000;
		(void)nanosleep(&ts, NULL);
	}
}

/* Poll the token endpoint until the user has approved; 0 and *tokens. */
static int
sendqctl_oauth_poll(const struct config_smarthost *sh, const char *code,
    const struct oauth_resp *a, const char *secret, struct oauth_resp *tok)
{
	struct oauth_device d;
	enum oauth_class    cls;
	const char         *form[10];
	char                why[512];
	size_t              n = 0;

	form[n++] = "grant_type";
	form[n++] = "urn:ietf:params:oauth:grant-type:device_code";
	form[n++] = "device_code";
	form[n++] = code;
	form[n++] = "client_id";
	form[n++] = sh->oauth_client_id;
	if (secret != NULL) {
		form[n++] = "client_secret";
		form[n++] = secret;
	}
	form[n] = NULL;
	oauth_device_start(&d, a, sq_now_ms());
	for (;;) {
		sendqctl_oauth_sleep_until(d.next_ms);
		cls = sendqctl_oauth_post(sh, sh->oauth_token_endpoint, form,
		    tok, why, sizeof(why));
		switch (oauth_device_step(&d, cls, sq_now_ms())) {
		case OAUTH_DEVICE_DONE:
			if (tok->refresh_token == NULL) {
				fprintf(stderr,
				    "sendqctl: the token endpoint gave no "
				    "refresh token (is offline_access in "
				    "oauth_scope?)\n");
				oauth_resp_fini(tok);
				return -1;
			}
			return 0;
		case OAUTH_DEVICE_WAIT:
			if (cls == OAUTH_SLOW_DOWN)
				printf("(the server asks to poll more slowly: "
				       "every %lld s)\n",
				    (long long)(d.interval_ms / 1000));
			else if (cls == OAUTH_TEMPFAIL)
				fprintf(stderr,
				    "sendqctl: %s (still polling)\n", why);
			fflush(stdout);
			oauth_resp_fini(tok);
			break;
		case OAUTH_DEVICE_FAILED:
		default:
			fprintf(stderr, "sendqctl: authorisation failed: %s\n",
			    why);
			oauth_resp_fini(tok);
			return -1;
		}
	}
}

static int
sendqctl_oauth_init(const struct config *cfg, const struct config_smarthost *sh)
{
	const char       *state = cfg->state_dir != NULL ? cfg->state_dir :
							   CONFIG_DEFAULT_STATE_DIR;
	struct oauth_resp a, tok;
	struct secret    *cs = NULL;
	struct sq_err     err = { 0, "" };
	const char       *form[8];
	char              why[512];
	size_t            n = 0;
	int               rc;

	if (sh->oauth_device_endpoint == NULL) {
		fprintf(stderr,
		    "sendqctl: [smarthost %s] has no oauth_device_endpoint "
		    "(set it, or oauth_provider)\n",
		    sh->name);
		return EX_CONFIG;
	}
	if (secret_load_oauth_client(sh, &cs, &err) != 0) {
		fprintf(stderr, "sendqctl: %s\n", err.msg);
		return EX_CONFIG;
	}
	/* Owned by the daemon's user when sendqd made it; a first run as
	 * root makes it root's until sendqd starts (it only reads). */
	if (oauth_store_mkdir(state, (uid_t)-1, (gid_t)-1, &err) != 0) {
		fprintf(stderr, "sendqctl: %s\n", err.msg);
		secret_free(cs);
		return errno == EACCES ? EX_NOPERM : EX_CANTCREAT;
	}
	form[n++] = "client_id";
	form[n++] = sh->oauth_client_id;
	if (sh->oauth_scope != NULL) {
		form[n++] = "scope";
		form[n++] = sh->oauth_scope;
	}
	form[n] = NULL;
	if (sendqctl_oauth_post(sh, sh->oauth_device_endpoint, form, &a, why,
		sizeof(why)) != OAUTH_OK ||
	    a.device_code == NULL || a.user_code == NULL ||
	    a.verification_uri == NULL) {
		fprintf(stderr,
		    "sendqctl: device authorization request to %s failed: %s\n",
		    sh->oauth_device_endpoint, why);
		oauth_resp_fini(&a);
		secret_free(cs);
		return 1;
	}
	printf("To authorise sendq for [smarthost %s], open\n  %s\nand enter "
	       "the code\n  %s\n",
	    sh->name, a.verification_uri, a.user_code);
	if (a.verification_uri_complete != NULL)
		printf("(or open %s)\n", a.verification_uri_complete);
	printf("Waiting for the authorisation...\n");
	fflush(stdout);
	rc = sendqctl_oauth_poll(sh, a.device_code, &a,
	    cs != NULL ? cs->data : NULL, &tok);
	oauth_resp_fini(&a);
	secret_free(cs);
	if (rc != 0)
		return 1;
	rc = oauth_store_write(state, sh->name, tok.refresh_token, &err);
	oauth_resp_fini(&tok);
	if (rc != 0) {
		fprintf(stderr, "sendqctl: %s\n", err.msg);
		return rc == -EACCES ? EX_NOPERM : EX_CANTCREAT;
	}
	printf("Authorised: the refresh token is stored in %s/oauth/%s; sendqd "
	       "uses it from now on.\n",
	    state, sh->name);
	return 0;
}

static void
sendqctl_oauth_time(const char *label, long long t)
{
	char when[64];

	if (t <= 0) {
		printf("%s: never\n", label);
		return;
	}
	queue_view_time(when, sizeof(when), t);
	printf("%s: %s (%llds ago)\n", label, when, (long long)time(NULL) - t);
}

/* Print the key=value status lines of f (NAME.status, or sendqd's answer
 * to oauth-status).  Returns 2 when they say held, else 0. */
static int
sendqctl_oauth_print(FILE *f, const struct config_smarthost *sh)
{
	char line[700], *eq;
	int  ex = 0;

	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(line, "refresh_token_stored") == 0) {
			if (atoll(eq) > 0)
				sendqctl_oauth_time("refresh token stored",
				    atoll(eq));
			else
				printf("refresh token: none (run sendqctl "
				       "oauth init %s)\n",
				    sh->name);
		} else if (strcmp(line, "last_refresh") == 0)
			sendqctl_oauth_time("last refresh", atoll(eq));
		else if (strcmp(line, "last_result") == 0)
			printf("last result: %s\n", eq);
		else if (strcmp(line, "access_token_obtained") == 0)
			sendqctl_oauth_time("access token obtained", atoll(eq));
		else if (strcmp(line, "access_token_expires") == 0 &&
		    atoll(eq) > 0)
			printf("access token expires in: %llds\n",
			    atoll(eq) - (long long)time(NULL));
		else if (strcmp(line, "held") == 0 && strcmp(eq, "1") == 0) {
			printf(
			    "HELD: its mail waits for sendqctl oauth init %s\n",
			    sh->name);
			ex = 2;
		} else if (strcmp(line, "held_reason") == 0 && eq[0] != '\0')
			printf("held because: %s\n", eq);
	}
	return ex;
}

/*
 * The caller cannot read STATE_DIR/oauth (not root, not sendqd's user):
 * ask sendqd, which answers members of admin_group (oauth-status, an
 * administrative request).  Returns the exit code.
 */
static int
sendqctl_oauth_ask(const struct config *cfg, const struct config_smarthost *sh)
{
	const char   *path = cfg->control_socket;
	struct sq_err err = { 0, "" };
	struct buf    out;
	char         *req;
	FILE         *f;
	int           rc, ex;

	req = xasprintf("oauth-status %s", sh->name);
	buf_init(&out, QUEUE_VIEW_OUT_MAX);
	rc = queue_view_request(path, req, SENDQCTL_OAUTH_TIMEOUT, &out, &err);
	free(req);
	if (rc != 0) {
		fprintf(stderr,
		    "sendqctl: cannot read %s/oauth (root or sendqd's user "
		    "only) and cannot ask sendqd: %s\n",
		    cfg->state_dir != NULL ? cfg->state_dir :
					     CONFIG_DEFAULT_STATE_DIR,
		    err.msg);
		buf_fini(&out);
		return EX_NOPERM;
	}
	if (out.len < 3 || memcmp(out.data, "ok\n", 3) != 0) {
		fprintf(stderr, "sendqctl: %.*s", (int)out.len,
		    (const char *)out.data);
		ex = memmem(out.data, out.len, "permission denied", 17) !=
			NULL ?
		    EX_NOPERM :
		    1;
		buf_fini(&out);
		return ex;
	}
	if ((f = fmemopen(out.data + 3, out.len - 3, "r")) == NULL) {
		buf_fini(&out);
		return 1;
	}
	ex = sendqctl_oauth_print(f, sh);
	fclose(f);
	buf_fini(&out);
	return ex;
}

static int
sendqctl_oauth_status(const struct config *cfg,
    const struct config_smarthost         *sh)
{
	const char *state = cfg->state_dir != NULL ? cfg->state_dir :
						     CONFIG_DEFAULT_STATE_DIR;
	char       *path;
	struct stat st;
	FILE       *f;
	int         ex = 0;

	path = xasprintf("%s/oauth/%s", state, sh->name);
	if (stat(path, &st) == -1 && errno == EACCES) {
		free(path);
		printf("smarthost %s: token endpoint %s (as sendqd says)\n",
		    sh->name, sh->oauth_token_endpoint);
		return sendqctl_oauth_ask(cfg, sh);
	}
	printf("smarthost %s: token endpoint %s\n", sh->name,
	    sh->oauth_token_endpoint);
	if (stat(path, &st) == -1) {
		printf("refresh token: none (%s; run sendqctl oauth init %s)\n",
		    strerror(errno), sh->name);
		ex = 1;
	} else
		sendqctl_oauth_time("refresh token stored",
		    (long long)st.st_mtime);
	free(path);
	path = xasprintf("%s/oauth/%s.status", state, sh->name);
	if ((f = fopen(path, "r")) == NULL) {
		printf("sendqd has not refreshed a token yet\n");
		free(path);
		return ex;
	}
	if (sendqctl_oauth_print(f, sh) == 2)
		ex = 2;
	fclose(f);
	free(path);
	return ex;
}

int
sendqctl_oauth_main(const struct config *cfg, const char *sub, const char *name)
{
	const struct config_smarthost *sh = NULL;
	size_t                         i;

	for (i = 0; i < cfg->n_smarthosts; i++)
		if (strcmp(cfg->smarthosts[i].name, name) == 0)
			sh = &cfg->smarthosts[i];
	if (sh == NULL || !sh->oauth) {
		fprintf(stderr,
		    "sendqctl: %s: no [smarthost %s] with oauth_provider or "
		    "oauth_token_endpoint in %s\n",
		    name, name, cfg->path);
		return EX_USAGE;
	}
	if (strcmp(sub, "init") == 0)
		return sendqctl_oauth_init(cfg, sh);
	return sendqctl_oauth_status(cfg, sh);
}
