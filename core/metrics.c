/*
 * metrics.c - counters, histograms and GET /metrics (see metrics.h).
 */
#include "metrics.h"
#include "audit.h"
#include "ccbuild.h"
#include "chatcache.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "loglimit.h"
#include "loop.h"
#include "msg.h"
#include "ready.h"
#include "retention.h"
#include "server.h"
#include "timefmt.h"

#include <carechat/storage.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- per loop */

/* One cache line per loop: no false sharing between loops. */
struct loop_slot {
    int64_t v[CC_STAT_N];
} __attribute__((aligned(64)));

static struct loop_slot slots[CC_LOOPS_MAX];

void cc_metrics_add(const struct cc_loop *l, enum cc_loop_stat which,
                    int64_t n)
{
    int64_t *p = &slots[cc_loop_index(l)].v[which];

    /* The owner is the only writer: load + store, no read-modify-write. */
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n,
                     __ATOMIC_RELAXED);
}

static int64_t slot_get(unsigned loop, enum cc_loop_stat which)
{
    return __atomic_load_n(&slots[loop].v[which], __ATOMIC_RELAXED);
}

static int64_t slot_sum(enum cc_loop_stat which)
{
    int64_t s = 0;

    for (unsigned i = 0; i < cc_n_loops; i++)
        s += slot_get(i, which);
    return s;
}

/* ------------------------------------------------------- loop 0 */

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1, 2.5, 5, 10 };
#define NB (sizeof bounds / sizeof bounds[0])

struct hist {
    uint64_t bucket[NB + 1]; /* not cumulative; [NB]: above the last */
    uint64_t count;
    double sum;
};

static void observe(struct hist *h, double s)
{
    size_t i = 0;

    while (i < NB && s > bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += s;
}

enum st_op { OP_APPEND, OP_READ, OP_WRITE, OP_N };
static const char *const op_names[OP_N] = { "append", "read", "write" };

static const char *const hs_names[CC_HS_N] = {
    "joined", "bad_request", "origin", "unauthorized", "forbidden",
    "not_found", "too_many", "busy", "unavailable",
};

static struct {
    uint64_t handshakes[CC_HS_N];
    uint64_t stored, refused, publish_failed;
    struct hist storage[OP_N];
    uint64_t storage_errors[OP_N];
    struct hist lag;
    struct cc_storage_api *wrapped;
    const struct cc_storage_api *real;
} m0;

void cc_metrics_handshake(enum cc_handshake result)
{
    m0.handshakes[result]++;
}

void cc_metrics_stored(int ok)
{
    if (ok)
        m0.stored++;
    else
        m0.refused++;
}

void cc_metrics_publish_failed(void)
{
    m0.publish_failed++;
}

void cc_metrics_fanout_lag(const char *payload, size_t len)
{
    static const char key[] = "\"created_at\": \"";
    const char *p = memmem(payload, len, key, sizeof key - 1);
    int64_t at, d;

    if (!p || (size_t)(payload + len - p) < sizeof key - 1 + CC_TIME_LEN ||
        cc_time_parse(p + sizeof key - 1, &at) < 0)
        return;
    d = cc_time_now_us() - at;
    observe(&m0.lag, d > 0 ? (double)d / 1e6 : 0.0); /* clocks differ */
}

/* ------------------------------------------------ timed storage */

struct timed {
    cc_store_cb cb;
    void *arg;
    uint64_t t0;
    enum st_op op;
};

static void timed_done(void *arg, int status,
                       const struct cc_store_result *res)
{
    struct timed t = *(struct timed *)arg;

    free(arg);
    observe(&m0.storage[t.op], (double)(cc_time_mono_ns() - t.t0) / 1e9);
    if (t.op == OP_APPEND && !(status == CC_OK && res->message &&
                               CC_HAS_MEMBER(res, struct cc_store_result,
                                             duplicate) && res->duplicate))
        cc_metrics_stored(status == CC_OK);
    if (status != CC_OK && status != CC_E_NOTFOUND &&
        status != CC_E_CONFLICT)
        m0.storage_errors[t.op]++;
    t.cb(t.arg, status, res);
}

static struct timed *timed_new(enum st_op op, cc_store_cb cb, void *arg)
{
    struct timed *t = malloc(sizeof *t);

    if (!t)
        abort();
    t->cb = cb;
    t->arg = arg;
    t->op = op;
    t->t0 = cc_time_mono_ns();
    return t;
}

/* A call the plugin refused at once never reaches its callback. */
static int timed_rc(struct timed *t, int rc)
{
    if (rc != CC_OK) {
        m0.storage_errors[t->op]++;
        free(t);
    }
    return rc;
}

#define REAL (m0.real)

static int w_profile_put(void *inst, int32_t side, const char *profile_id,
                         const char *user_id, cc_store_cb cb, void *arg)
{
    struct timed *t = timed_new(OP_WRITE, cb, arg);
    return timed_rc(t, REAL->profile_put(inst, side, profile_id, user_id,
                                         timed_done, t));
}

static int w_profile_get(void *inst, int32_t side, const char *profile_id,
                         cc_store_cb cb, void *arg)
{
    struct timed *t = timed_new(OP_READ, cb, arg);
    return timed_rc(t, REAL->profile_get(inst, side, profile_id,
                                         timed_done, t));
}

static int w_chat_open(void *inst, const char *new_id, const char *pat,
                       const char *pro, int64_t now_us, cc_store_cb cb,
                       void *arg)
{
    struct timed *t = timed_new(OP_WRITE, cb, arg);
    return timed_rc(t, REAL->chat_open(inst, new_id, pat, pro, now_us,
                                       timed_done, t));
}

static int w_chat_get(void *inst, const char *chat_id,
                      const struct cc_viewer *viewer, cc_store_cb cb,
                      void *arg)
{
    struct timed *t = timed_new(OP_READ, cb, arg);
    return timed_rc(t, REAL->chat_get(inst, chat_id, viewer, timed_done, t));
}

static int w_chat_list(void *inst, const struct cc_chat_query *q,
                       cc_store_cb cb, void *arg)
{
    struct timed *t = timed_new(OP_READ, cb, arg);
    return timed_rc(t, REAL->chat_list(inst, q, timed_done, t));
}

static int w_message_append(void *inst, const struct cc_message *m,
                            cc_store_cb cb, void *arg)
{
    struct timed *t = timed_new(OP_APPEND, cb, arg);
    return timed_rc(t, REAL->message_append(inst, m, timed_done, t));
}

static int w_message_list(void *inst, const struct cc_message_query *q,
                          cc_store_cb cb, void *arg)
{
    struct timed *t = timed_new(OP_READ, cb, arg);
    return timed_rc(t, REAL->message_list(inst, q, timed_done, t));
}

static int w_mark_read(void *inst, const char *chat_id, int32_t side,
                       cc_store_cb cb, void *arg)
{
    struct timed *t = timed_new(OP_WRITE, cb, arg);
    return timed_rc(t, REAL->mark_read(inst, chat_id, side, timed_done, t));
}

const struct cc_storage_api *
cc_metrics_wrap_storage(const struct cc_storage_api *real)
{
    struct cc_storage_api *w = calloc(1, sizeof *w);
    size_t n = real->struct_size < sizeof *w ? real->struct_size
                                              : sizeof *w;

    if (!w)
        abort();
    memcpy(w, real, n); /* members the plugin lacks stay NULL */
    w->struct_size = (uint32_t)n;
    m0.real = real;
    m0.wrapped = w;
    w->profile_put = w_profile_put;
    w->profile_get = w_profile_get;
    w->chat_open = w_chat_open;
    w->chat_get = w_chat_get;
    w->chat_list = w_chat_list;
    w->message_append = w_message_append;
    w->message_list = w_message_list;
    w->mark_read = w_mark_read;
    return w;
}

/* ------------------------------------------------------- exposition */

static void head(struct cc_sbuf *b, const char *name, const char *type,
                 const char *help)
{
    cc_sbuf_printf(b, "# HELP carechat_%s %s\n# TYPE carechat_%s %s\n",
                   name, help, name, type);
}

static void one(struct cc_sbuf *b, const char *name, const char *type,
                const char *help, double v)
{
    head(b, name, type, help);
    cc_sbuf_printf(b, "carechat_%s %.17g\n", name, v);
}

static void per_loop(struct cc_sbuf *b, const char *name, const char *type,
                     const char *help, enum cc_loop_stat which)
{
    head(b, name, type, help);
    for (unsigned i = 0; i < cc_n_loops; i++)
        cc_sbuf_printf(b, "carechat_%s{loop=\"%u\"} %lld\n", name, i,
                       (long long)slot_get(i, which));
}

/* One histogram's series; labels: "" or `op="append",` style. */
static void hist_series(struct cc_sbuf *b, const char *name,
                        const char *labels, const struct hist *h)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < NB; i++) {
        cum += h->bucket[i];
        cc_sbuf_printf(b, "carechat_%s_bucket{%sle=\"%g\"} %llu\n", name,
                       labels, bounds[i], (unsigned long long)cum);
    }
    cum += h->bucket[NB];
    cc_sbuf_printf(b, "carechat_%s_bucket{%sle=\"+Inf\"} %llu\n", name,
                   labels, (unsigned long long)cum);
    size_t ln = strlen(labels);
    /* "op=\"x\"," -> "{op=\"x\"}" for _sum and _count */
    if (ln) {
        cc_sbuf_printf(b, "carechat_%s_sum{%.*s} %.9g\n", name,
                       (int)(ln - 1), labels, h->sum);
        cc_sbuf_printf(b, "carechat_%s_count{%.*s} %llu\n", name,
                       (int)(ln - 1), labels,
                       (unsigned long long)h->count);
    } else {
        cc_sbuf_printf(b, "carechat_%s_sum %.9g\n", name, h->sum);
        cc_sbuf_printf(b, "carechat_%s_count %llu\n", name,
                       (unsigned long long)h->count);
    }
}

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
    struct cc_plugin_inst *ps[] = { &cc_srv->storage, &cc_srv->auth,
                                    &cc_srv->fanout };
    static const char *const kinds[] = { "storage", "auth", "fanout" };

    for (int i = 0; i < 3; i++) {
        const struct cc_plugin *d = ps[i]->desc;
        struct plug_emit e = { b, kinds[i], d ? d->name : "" };
        if (d && CC_HAS_MEMBER(d, struct cc_plugin, metrics) && d->metrics)
            d->metrics(ps[i]->inst, plug_sample, &e);
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
        one(b, rows[i].name, rows[i].type, rows[i].help, (double)rows[i].v);
}

void cc_metrics_render(char **out, size_t *len)
{
    struct cc_sbuf b = { 0 };
    char why[128];

    head(&b, "build_info", "gauge", "carechatd's version and plugin ABI.");
    cc_sbuf_printf(&b, "carechat_build_info{version=\"%s\",abi=\"%d.%d\"} "
                   "1\n", PACKAGE_VERSION, CC_ABI_MAJOR, CC_ABI_MINOR);
    one(&b, "plugins_healthy", "gauge", "1 when no plugin reports its "
        "backend down and accepting is not paused (GET /readyz also reads "
        "through storage).", cc_ready(why, sizeof why));
    per_loop(&b, "connections", "gauge",
             "Open client connections, by event loop.", CC_STAT_CONNS);
    per_loop(&b, "websockets", "gauge",
             "Joined WebSockets, by event loop.", CC_STAT_WEBSOCKETS);
    one(&b, "connections_accepted_total", "counter",
        "Client connections accepted.", (double)slot_sum(CC_STAT_ACCEPTED));
    head(&b, "handshakes_total", "counter",
         "WebSocket handshakes, by result.");
    for (int i = 0; i < CC_HS_N; i++)
        cc_sbuf_printf(&b, "carechat_handshakes_total{result=\"%s\"} %llu\n",
                       hs_names[i], (unsigned long long)m0.handshakes[i]);
    one(&b, "messages_received_total", "counter",
        "Chat messages received from clients (WebSocket and REST).",
        (double)slot_sum(CC_STAT_RECEIVED));
    one(&b, "messages_stored_total", "counter",
        "Chat messages storage confirmed.", (double)m0.stored);
    one(&b, "messages_refused_total", "counter",
        "Chat messages not stored (the sender was told).",
        (double)m0.refused);
    one(&b, "messages_delivered_total", "counter",
        "Message frames queued to clients.",
        (double)slot_sum(CC_STAT_DELIVERED));
    head(&b, "storage_seconds", "histogram",
         "Storage calls, from the call to its answer, by operation.");
    for (int i = 0; i < OP_N; i++) {
        char l[32];
        snprintf(l, sizeof l, "op=\"%s\",", op_names[i]);
        hist_series(&b, "storage_seconds", l, &m0.storage[i]);
    }
    head(&b, "storage_errors_total", "counter",
         "Storage calls that failed, by operation.");
    for (int i = 0; i < OP_N; i++)
        cc_sbuf_printf(&b, "carechat_storage_errors_total{op=\"%s\"} %llu\n",
                       op_names[i], (unsigned long long)m0.storage_errors[i]);
    one(&b, "fanout_publish_failures_total", "counter",
        "Stored messages the fan-out plugin refused to publish.",
        (double)m0.publish_failed);
    head(&b, "fanout_lag_seconds", "histogram",
         "From a message's creation to its arrival at this node's "
         "connections, through fan-out.");
    hist_series(&b, "fanout_lag_seconds", "", &m0.lag);
    {
        struct cc_chatcache_stats cs;
        cc_chatcache_stats(&cs);
        one(&b, "chat_cache_hits_total", "counter",
            "Handshakes whose chat parties came from the chat cache.",
            (double)cs.hits);
        one(&b, "chat_cache_misses_total", "counter",
            "Handshakes that asked storage for the chat's parties.",
            (double)cs.misses);
    }
    one(&b, "messages_purged_total", "counter",
        "Messages deleted by retention ([storage] retention).",
        (double)cc_retention_purged_total());
    one(&b, "log_lines_suppressed_total", "counter",
        "Log lines the rate limiter counted instead of writing.",
        (double)cc_loglimit_suppressed_total());
    audit_samples(&b);
    plugins(&b);
    *out = b.p;
    *len = b.len;
}

/* ------------------------------------------------------- admin port */

void cc_metrics_admin(struct cc_conn *c)
{
    struct cc_http_str path = c->req->h.path;
    int get = c->req->h.method == CC_HTTP_GET ||
              c->req->h.method == CC_HTTP_HEAD;

    if (path.n == 8 && memcmp(path.p, "/metrics", 8) == 0) {
        char *body;
        size_t len;
        if (!get) {
            cc_conn_respond_lit(c, 405, "Allow: GET, HEAD\r\n",
                                "{\"error\": \"Method not allowed\"}");
            return;
        }
        cc_metrics_render(&body, &len);
        cc_conn_respond_typed(c, 200, "text/plain; version=0.0.4; "
                              "charset=utf-8", NULL, body, len);
        free(body);
        return;
    }
    if ((path.n == 7 && memcmp(path.p, "/readyz", 7) == 0) ||
        (path.n == 8 && memcmp(path.p, "/healthz", 8) == 0)) {
        cc_ready_respond(c, path.n == 7);
        return;
    }
    cc_conn_respond_error(c, 404, "Not found");
}

void cc_metrics_free(void)
{
    free(m0.wrapped);
    memset(&m0, 0, sizeof m0);
}
