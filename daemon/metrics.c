/*
 * metrics.c - the counters of sendqd and their Prometheus text exposition
 * (contract: metrics.h).
 *
 * How it works: a family is a name, a help text, a type and up to two
 * label names; its series are kept in an array, found by a linear search
 * over the label values (a few relays, a fixed set of paths and reasons:
 * small).  A histogram series has its bucket counts, sum and count.
 * metrics_render() writes every family once (HELP, TYPE, then its
 * series), the gauges from the callback last; series of the relays the
 * callback names are created at zero first, so every relay's counters
 * exist from the first scrape on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "metrics.h"
#include "util.h"

#define METRICS_LABELS_MAX 2
#define METRICS_BUCKETS    11

static const double metrics_buckets[METRICS_BUCKETS] = {
	0.1,
	0.5,
	1,
	5,
	15,
	60,
	300,
	900,
	3600,
	14400,
	86400,
};

struct metrics_series {
	char    *value[METRICS_LABELS_MAX];
	double   v;
	uint64_t bucket[METRICS_BUCKETS]; /* not cumulative */
	double   sum;
	uint64_t count;
};

struct metrics_family {
	const char            *name;
	const char            *type; /* counter, histogram */
	const char            *help;
	const char            *label[METRICS_LABELS_MAX];
	size_t                 n_labels;
	struct metrics_series *s;
	size_t                 n, cap;
};

enum {
	MF_ACCEPTED,
	MF_DELIVERED,
	MF_DEFERRED,
	MF_BOUNCED,
	MF_OPENED,
	MF_REUSED,
	MF_TLS,
	MF_LATENCY,
	MF_COUNT
};

static struct metrics_family metrics_fam[MF_COUNT] = {
	{ "sendq_messages_accepted_total", "counter",
	    "Messages queued, by intake path.", { "path" }, 1, NULL, 0, 0 },
	{ "sendq_recipients_delivered_total", "counter",
	    "Recipients the smarthost accepted (final 250), by relay.",
	    { "relay" }, 1, NULL, 0, 0 },
	{ "sendq_recipients_deferred_total", "counter",
	    "Recipients deferred after an attempt, by relay.", { "relay" }, 1,
	    NULL, 0, 0 },
	{ "sendq_recipients_bounced_total", "counter",
	    "Recipients failed for good (bounced or kept in failed/), by "
	    "relay.",
	    { "relay" }, 1, NULL, 0, 0 },
	{ "sendq_connections_opened_total", "counter",
	    "Connections opened to a smarthost, by relay.", { "relay" }, 1,
	    NULL, 0, 0 },
	{ "sendq_connections_reused_total", "counter",
	    "Messages sent on a connection that had carried one before, by "
	    "relay.",
	    { "relay" }, 1, NULL, 0, 0 },
	{ "sendq_tls_handshake_failures_total", "counter",
	    "Sessions that failed in TLS, by relay and reason.",
	    { "relay", "reason" }, 2, NULL, 0, 0 },
	{ "sendq_delivery_latency_seconds", "histogram",
	    "Time from arrival to delivery, by relay.", { "relay" }, 1, NULL, 0,
	    0 },
};

static void (*metrics_fill)(void *, struct metrics_gauges *);
static void  *metrics_fill_arg;
static size_t metrics_max_relays;

static struct metrics_series *
metrics_series(struct metrics_family *f, const char *a, const char *b)
{
	const char            *val[METRICS_LABELS_MAX] = { a, b };
	struct metrics_series *s;
	size_t                 i, j;

	for (i = 0; i < f->n; i++) {
		for (j = 0; j < f->n_labels && j < METRICS_LABELS_MAX; j++)
			if (val[j] == NULL ||
			    strcmp(f->s[i].value[j], val[j]) != 0)
				break;
		if (j == f->n_labels)
			return &f->s[i];
	}
	if (f->n == f->cap) {
		f->cap = f->cap == 0 ? 8 : f->cap * 2;
		f->s = xreallocarray(f->s, f->cap, sizeof(*f->s));
	}
	s = &f->s[f->n++];
	memset(s, 0, sizeof(*s));
	for (j = 0; j < f->n_labels && j < METRICS_LABELS_MAX; j++)
		s->value[j] = xstrdup(val[j] != NULL ? val[j] : "");
	return s;
}

static void
metrics_add(int fam, const char *a, const char *b, double by)
{
	metrics_series(&metrics_fam[fam], a != NULL ? a : "",
	    b != NULL ? b : "")
	    ->v += by;
}

void
metrics_count_accepted(const char *path)
{
	metrics_add(MF_ACCEPTED, path, NULL, 1);
}

void
metrics_count_settled(const char *relay, size_t delivered, size_t deferred,
    size_t bounced, int64_t age_seconds)
{
	struct metrics_series *s;
	size_t                 i;

	metrics_add(MF_DELIVERED, relay, NULL, (double)delivered);
	metrics_add(MF_DEFERRED, relay, NULL, (double)deferred);
	metrics_add(MF_BOUNCED, relay, NULL, (double)bounced);
	if (delivered == 0)
		return;
	if (age_seconds < 0)
		age_seconds = 0;
	s = metrics_series(&metrics_fam[MF_LATENCY], relay, "");
	for (i = 0; i < METRICS_BUCKETS; i++)
		if ((double)age_seconds <= metrics_buckets[i]) {
			s->bucket[i]++;
			break;
		}
	s->sum += (double)age_seconds;
	s->count++;
}

void
metrics_count_conn_opened(const char *relay)
{
	metrics_add(MF_OPENED, relay, NULL, 1);
}

void
metrics_count_conn_reused(const char *relay)
{
	metrics_add(MF_REUSED, relay, NULL, 1);
}

const char *
metrics_tls_reason(const char *verify, const char *reply)
{
	static const struct {
		const char *needle, *reason;
	} map[] = {
		{ "expired", "cert_expired" },
		{ "not activated", "cert_not_yet_valid" },
		{ "name mismatch", "cert_name_mismatch" },
		{ "insecure algorithm", "cert_insecure" },
		{ "not trusted", "cert_untrusted" },
		{ "revoked", "cert_untrusted" },
		{ "pin", "cert_untrusted" },
	};
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if ((verify != NULL && strstr(verify, map[i].needle) != NULL) ||
		    (reply != NULL && strstr(reply, map[i].needle) != NULL))
			return map[i].reason;
	/* smtp_conn's texts: "STARTTLS not offered by ...", "STARTTLS
	 * failed: ...", "server does not offer STARTTLS". */
	if (reply != NULL &&
	    (strncmp(reply, "STARTTLS", 8) == 0 ||
		strstr(reply, "offer STARTTLS") != NULL))
		return "starttls";
	return "handshake";
}

void
metrics_count_tls_failure(const char *relay, const char *verify,
    const char *reply)
{
	metrics_add(MF_TLS, relay, metrics_tls_reason(verify, reply), 1);
}

void
metrics_set_gauges(void (*fill)(void *, struct metrics_gauges *), void *arg,
    size_t max_relays)
{
	metrics_fill = fill;
	metrics_fill_arg = arg;
	metrics_max_relays = max_relays;
}

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void
metrics_put_value(struct buf *out, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			buf_append(out, "\\", 1);
		if (*v == '\n')
			buf_append_str(out, "\\n");
		else
			buf_append(out, v, 1);
	}
}

/* NAME{l1="v1",l2="v2"[,le="LE"]} VALUE */
static void
metrics_put_sample(struct buf *out, const char *name, const char *suffix,
    const struct metrics_family *f, const struct metrics_series *s,
    const char *le, double v)
{
	char   num[64];
	size_t j;
	int    any = 0;

	buf_append_str(out, name);
	buf_append_str(out, suffix);
	for (j = 0; f != NULL && j < f->n_labels; j++, any = 1) {
		buf_append_str(out, any ? "," : "{");
		buf_append_str(out, f->label[j]);
		buf_append_str(out, "=\"");
		metrics_put_value(out, s->value[j]);
		buf_append_str(out, "\"");
	}
	if (le != NULL) {
		buf_append_str(out, any ? ",le=\"" : "{le=\"");
		buf_append_str(out, le);
		buf_append_str(out, "\"");
		any = 1;
	}
	if (any)
		buf_append_str(out, "}");
	snprintf(num, sizeof(num), " %.17g\n", v);
	buf_append_str(out, num);
}

static void
metrics_put_head(struct buf *out, const char *name, const char *type,
    const char *help)
{
	buf_append_str(out, "# HELP ");
	buf_append_str(out, name);
	buf_append_str(out, " ");
	buf_append_str(out, help);
	buf_append_str(out, "\n# TYPE ");
	buf_append_str(out, name);
	buf_append_str(out, " ");
	buf_append_str(out, type);
	buf_append_str(out, "\n");
}

static void
metrics_put_family(struct buf *out, const struct metrics_family *f)
{
	const struct metrics_series *s;
	char                         le[32];
	uint64_t                     cum;
	size_t                       i, b;

	metrics_put_head(out, f->name, f->type, f->help);
	for (i = 0; i < f->n; i++) {
		s = &f->s[i];
		if (strcmp(f->type, "histogram") != 0) {
			metrics_put_sample(out, f->name, "", f, s, NULL, s->v);
			continue;
		}
		for (b = 0, cum = 0; b < METRICS_BUCKETS; b++) {
			cum += s->bucket[b];
			snprintf(le, sizeof(le), "%g", metrics_buckets[b]);
			metrics_put_sample(out, f->name, "_bucket", f, s, le,
			    (double)cum);
		}
		metrics_put_sample(out, f->name, "_bucket", f, s, "+Inf",
		    (double)s->count);
		metrics_put_sample(out, f->name, "_sum", f, s, NULL, s->sum);
		metrics_put_sample(out, f->name, "_count", f, s, NULL,
		    (double)s->count);
	}
}

static void
metrics_put_gauge(struct buf *out, const char *name, const char *help, double v)
{
	metrics_put_head(out, name, "gauge", help);
	metrics_put_sample(out, name, "", NULL, NULL, NULL, v);
}

static void
metrics_put_counter(struct buf *out, const char *name, const char *help,
    double v)
{
	metrics_put_head(out, name, "counter", help);
	metrics_put_sample(out, name, "", NULL, NULL, NULL, v);
}

/* The write-ahead log's work: how messages were made durable. */
static void
metrics_put_spool_log(struct buf *out, const struct metrics_gauges *g)
{
	metrics_put_counter(out, "sendq_spool_log_syncs_total",
	    "Groups of messages made durable by one fdatasync of the "
	    "write-ahead log.",
	    (double)g->log_groups);
	metrics_put_counter(out, "sendq_spool_log_messages_total",
	    "Messages made durable by the write-ahead log.",
	    (double)g->log_messages);
	metrics_put_counter(out, "sendq_spool_held_messages_total",
	    "Messages committed without files, held in memory.",
	    (double)g->held_total);
	metrics_put_counter(out, "sendq_spool_filed_messages_total",
	    "Held messages that were given their files later (waited, "
	    "deferred, checkpoint, stop).",
	    (double)g->filed_total);
	metrics_put_gauge(out, "sendq_spool_held_messages",
	    "Messages held in memory now.", (double)g->held_now);
}

/* The gauges of g, per relay. */
static void
metrics_put_relays(struct buf *out, const struct metrics_gauges *g)
{
	static const char *const states[] = { "valid", "expired", "no_token",
		"held" };
	static const struct metrics_family up = { "sendq_relay_up", "gauge", "",
		{ "relay" }, 1, NULL, 0, 0 };
	static const struct metrics_family st = { "sendq_oauth_token_state",
		"gauge", "", { "relay", "state" }, 2, NULL, 0, 0 };
	struct metrics_series              s;
	size_t                             i, k;

	memset(&s, 0, sizeof(s));
	metrics_put_head(out, up.name, "gauge",
	    "1 when the smarthost is usable, 0 when it is down or held.");
	for (i = 0; i < g->n_relays; i++) {
		s.value[0] = (char *)g->relays[i].name;
		metrics_put_sample(out, up.name, "", &up, &s, NULL,
		    g->relays[i].up ? 1 : 0);
	}
	metrics_put_head(out, st.name, "gauge",
	    "1 for the current state of an OAuth smarthost's token (valid, "
	    "expired, no_token, held).");
	for (i = 0; i < g->n_relays; i++) {
		if (g->relays[i].oauth == METRICS_OAUTH_NONE)
			continue;
		s.value[0] = (char *)g->relays[i].name;
		for (k = 0; k < 4; k++) {
			s.value[1] = (char *)states[k];
			metrics_put_sample(out, st.name, "", &st, &s, NULL,
			    (size_t)g->relays[i].oauth == k + 1 ? 1 : 0);
		}
	}
	metrics_put_head(out, "sendq_oauth_token_expiry_timestamp_seconds",
	    "gauge", "When the OAuth access token expires (0: none).");
	for (i = 0; i < g->n_relays; i++) {
		if (g->relays[i].oauth == METRICS_OAUTH_NONE)
			continue;
		s.value[0] = (char *)g->relays[i].name;
		metrics_put_sample(out,
		    "sendq_oauth_token_expiry_timestamp_seconds", "", &up, &s,
		    NULL, (double)g->relays[i].oauth_expires);
	}
}

int
metrics_render(struct buf *out, int64_t now)
{
	static const int per_relay[] = { MF_DELIVERED, MF_DEFERRED, MF_BOUNCED,
		MF_OPENED, MF_REUSED };
	struct metrics_gauges g;
	size_t                i, k;

	memset(&g, 0, sizeof(g));
	metrics_series(&metrics_fam[MF_ACCEPTED], METRICS_PATH_SMTP, "");
	metrics_series(&metrics_fam[MF_ACCEPTED], METRICS_PATH_SUBMIT, "");
	metrics_series(&metrics_fam[MF_ACCEPTED], METRICS_PATH_MAILDROP, "");
	if (metrics_fill != NULL) {
		g.max_relays = metrics_max_relays;
		g.relays = xcalloc(g.max_relays + 1, sizeof(*g.relays));
		metrics_fill(metrics_fill_arg, &g);
		for (i = 0; i < g.n_relays; i++)
			for (k = 0;
			     k < sizeof(per_relay) / sizeof(per_relay[0]); k++)
				metrics_series(&metrics_fam[per_relay[k]],
				    g.relays[i].name, "");
	}
	for (i = 0; i < MF_COUNT; i++)
		metrics_put_family(out, &metrics_fam[i]);
	if (metrics_fill != NULL) {
		metrics_put_gauge(out, "sendq_queue_messages",
		    "Messages in the queue.", (double)g.queue_messages);
		metrics_put_gauge(out, "sendq_queue_oldest_age_seconds",
		    "Age of the oldest queued message not held (0: none).",
		    g.oldest > 0 && now > g.oldest ? (double)(now - g.oldest) :
						     0);
		metrics_put_relays(out, &g);
		if (g.spool_free_known)
			metrics_put_gauge(out, "sendq_spool_free_bytes",
			    "Free space of the spool's file system for sendqd.",
			    (double)g.spool_free);
		if (g.spool_log_known)
			metrics_put_spool_log(out, &g);
		free(g.relays);
	}
	return buf_room(out) > 0 ? 0 : SQ_ELIMIT;
}

void
metrics_reset(void)
{
	size_t i, j, k;

	for (i = 0; i < MF_COUNT; i++) {
		for (j = 0; j < metrics_fam[i].n; j++)
			for (k = 0; k < METRICS_LABELS_MAX; k++)
				free(metrics_fam[i].s[j].value[k]);
		free(metrics_fam[i].s);
		metrics_fam[i].s = NULL;
		metrics_fam[i].n = metrics_fam[i].cap = 0;
	}
	metrics_fill = NULL;
	metrics_fill_arg = NULL;
}
