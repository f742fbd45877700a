/*
 * admin.c - GET /metrics on the admin listener (see admin.h).
 */
#include "admin.h"
#include "audit.h"
#include "ccbuild.h"
#include "chatcache.h"
#include "conn.h"
#include "loglimit.h"
#include "metrics.h"
#include "msg.h"
#include "notifier.h"
#include "ready.h"
#include "retention.h"
#include "router.h"
#include "server.h"

#include <carechat/plugin.h>

#include <stdio.h>
#include <stdlib.h>

/* The plugins' samples, grouped by name in the order they come. */
struct plug_emit {
    struct cc_sbuf *b;
    const char *kind, *plugin;
};

static int metric_name_ok(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return 0;
    return 1;
}

static void plug_sample(void *arg, const char *name, const char *help,
                        int type, double value)
{
    struct plug_emit *e = arg;
    char h[200];
    size_t i;

    if (!metric_name_ok(name))
        return; /* a plugin's mistake must not break the scrape */
    for (i = 0; help && help[i] && i < sizeof h - 1; i++)
        h[i] = help[i] == '\n' || help[i] == '\\' ? ' ' : help[i];
    h[i] = '\0';
    cc_sbuf_printf(e->b, "# HELP carechat_plugin_%s %s\n"
                   "# TYPE carechat_plugin_%s %s\n"
                   "carechat_plugin_%s{kind=\"%s\",plugin=\"%s\"} %.17g\n",
                   name, h, name,
                   type == CC_METRIC_COUNTER ? "counter" : "gauge", name,
                   e->kind, e->plugin, value);
}

static void plugins(struct cc_sbuf *b)
{
    for (size_t i = 0; i < cc_server_n_plugins(); i++) {
        const char *kind;
        struct cc_plugin_inst *p = cc_server_plugin(i, &kind);
        const struct cc_plugin *d = p->desc;
        struct plug_emit e = { b, kind, d ? d->name : "" };
        if (d && CC_HAS_MEMBER(d, struct cc_plugin, metrics) && d->metrics)
            d->metrics(p->inst, plug_sample, &e);
    }
}

/* The audit trail's counters (audit.h). */
static void audit_samples(struct cc_sbuf *b)
{
    struct cc_audit_counters ac;

    cc_audit_counters(&ac);
    const struct {
        const char *name, *type, *help;
        uint64_t v;
    } rows[] = {
        { "audit_events_written_total", "counter",
          "Audit lines written to the file and/or syslog.",
          ac.events_written },
        { "audit_events_lost_total", "counter",
          "Audit events dropped: queue full, or unwritable at shutdown.",
          ac.events_lost },
        { "audit_write_errors_total", "counter",
          "Failed writes, fdatasyncs and opens of the audit file.",
          ac.write_errors },
        { "audit_events_queued", "gauge",
          "Audit events waiting for the writer.", ac.queued },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cc_metrics_one(b, rows[i].name, rows[i].type, rows[i].help,
                       (double)rows[i].v);
}

/* The notifier's counts (notifier.h). */
static void notify_samples(struct cc_sbuf *b)
{
    struct cc_notifier_counters n;

    cc_notifier_counters(&n);
    cc_metrics_one(b, "notifications_sent_total", "counter",
                   "Notifications the notify plugin delivered.",
                   (double)n.sent);
    cc_metrics_one(b, "notifications_failed_total", "counter",
                   "Deliveries that failed and are tried again.",
                   (double)n.failed);
    cc_metrics_one(b, "notifications_dropped_total", "counter",
                   "Notifications given up (max_age, or refused by the "
                   "receiver).", (double)n.dropped);
    cc_metrics_one(b, "notifications_pending", "gauge",
                   "Notifications handed to the plugin, not answered yet.",
                   (double)n.in_flight);
}

void cc_admin_render(char **out, size_t *len)
{
    struct cc_sbuf b = { 0 };
    struct cc_chatcache_stats cs;
    char why[128];

    cc_metrics_head(&b, "build_info", "gauge",
                    "carechatd's version and plugin ABI.");
    cc_sbuf_printf(&b, "carechat_build_info{version=\"%s\",abi=\"%d.%d\"} "
                   "1\n", PACKAGE_VERSION, CC_ABI_MAJOR, CC_ABI_MINOR);
    cc_metrics_one(&b, "plugins_healthy", "gauge", "1 when no plugin "
                   "reports its backend down and accepting is not paused "
                   "(GET /readyz also reads through storage).",
                   cc_ready(why, sizeof why));
    cc_metrics_render_core(&b);
    cc_chatcache_stats(&cs);
    cc_metrics_one(&b, "chat_cache_hits_total", "counter",
                   "Handshakes whose chat parties came from the chat "
                   "cache.", (double)cs.hits);
    cc_metrics_one(&b, "chat_cache_misses_total", "counter",
                   "Handshakes that asked storage for the chat's parties.",
                   (double)cs.misses);
    cc_metrics_one(&b, "messages_purged_total", "counter",
                   "Messages deleted by retention ([storage] retention).",
                   (double)cc_retention_purged_total());
    cc_metrics_one(&b, "log_lines_suppressed_total", "counter",
                   "Log lines the rate limiter counted instead of writing.",
                   (double)cc_loglimit_suppressed_total());
    audit_samples(&b);
    notify_samples(&b);
    plugins(&b);
    *out = b.p;
    *len = b.len;
}

static void metrics_route(struct cc_conn *c, const struct cc_route_match *m)
{
    char *body;
    size_t len;

    (void)m;
    cc_admin_render(&body, &len);
    cc_conn_respond_typed(c, 200, "text/plain; version=0.0.4; "
                          "charset=utf-8", NULL, body, len);
    free(body);
}

void cc_admin_routes(void)
{
    cc_route_add(CC_PORT_ADMIN, CC_M_GET, "/metrics", metrics_route, NULL);
}
