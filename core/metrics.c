/*
 * metrics.c - the core's counters and histograms (see metrics.h).
 */
#include "metrics.h"
#include "loop.h"
#include "msg.h"
#include "timefmt.h"

#include <carechat/plugin.h>

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

static const char *const op_names[CC_MSO_N] = { "append", "read",
                                                "write" };

static const char *const hs_names[CC_HS_N] = {
    "joined", "bad_request", "origin", "unauthorized", "forbidden",
    "not_found", "too_many", "busy", "unavailable",
};

static struct {
    uint64_t handshakes[CC_HS_N];
    uint64_t stored, refused, publish_failed;
    struct hist storage[CC_MSO_N];
    uint64_t storage_errors[CC_MSO_N];
    struct hist lag;
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
    const char *p = cc_msg_key_from_end(payload, len, "\"created_at\": \"");
    int64_t at, d;

    if (!p || (size_t)(payload + len - p) < CC_TIME_LEN ||
        cc_time_parse(p, &at) < 0)
        return;
    d = cc_time_now_us() - at;
    observe(&m0.lag, d > 0 ? (double)d / 1e6 : 0.0); /* clocks differ */
}

void cc_metrics_storage(enum cc_metrics_store_op op, double seconds,
                        int status)
{
    observe(&m0.storage[op], seconds);
    if (status != CC_OK && status != CC_E_NOTFOUND &&
        status != CC_E_CONFLICT)
        m0.storage_errors[op]++;
}

void cc_metrics_storage_refused(enum cc_metrics_store_op op)
{
    m0.storage_errors[op]++;
}

/* ------------------------------------------------------- exposition */

void cc_metrics_head(struct cc_sbuf *b, const char *name, const char *type,
                     const char *help)
{
    cc_sbuf_printf(b, "# HELP carechat_%s %s\n# TYPE carechat_%s %s\n",
                   name, help, name, type);
}

void cc_metrics_one(struct cc_sbuf *b, const char *name, const char *type,
                    const char *help, double v)
{
    cc_metrics_head(b, name, type, help);
    cc_sbuf_printf(b, "carechat_%s %.17g\n", name, v);
}

static void per_loop(struct cc_sbuf *b, const char *name, const char *type,
                     const char *help, enum cc_loop_stat which)
{
    cc_metrics_head(b, name, type, help);
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

void cc_metrics_render_core(struct cc_sbuf *b)
{
    per_loop(b, "connections", "gauge",
             "Open client connections, by event loop.", CC_STAT_CONNS);
    per_loop(b, "websockets", "gauge",
             "Joined WebSockets, by event loop.", CC_STAT_WEBSOCKETS);
    cc_metrics_one(b, "connections_accepted_total", "counter",
                   "Client connections accepted.",
                   (double)slot_sum(CC_STAT_ACCEPTED));
    cc_metrics_head(b, "handshakes_total", "counter",
                    "WebSocket handshakes, by result.");
    for (int i = 0; i < CC_HS_N; i++)
        cc_sbuf_printf(b, "carechat_handshakes_total{result=\"%s\"} %llu\n",
                       hs_names[i], (unsigned long long)m0.handshakes[i]);
    cc_metrics_one(b, "messages_received_total", "counter",
                   "Chat messages received from clients (WebSocket and "
                   "REST).", (double)slot_sum(CC_STAT_RECEIVED));
    cc_metrics_one(b, "messages_stored_total", "counter",
                   "Chat messages storage confirmed.", (double)m0.stored);
    cc_metrics_one(b, "messages_refused_total", "counter",
                   "Chat messages not stored (the sender was told).",
                   (double)m0.refused);
    cc_metrics_one(b, "messages_delivered_total", "counter",
                   "Message frames queued to clients.",
                   (double)slot_sum(CC_STAT_DELIVERED));
    cc_metrics_head(b, "storage_seconds", "histogram",
                    "Storage calls, from the call to its answer, by "
                    "operation.");
    for (int i = 0; i < CC_MSO_N; i++) {
        char l[32];
        snprintf(l, sizeof l, "op=\"%s\",", op_names[i]);
        hist_series(b, "storage_seconds", l, &m0.storage[i]);
    }
    cc_metrics_head(b, "storage_errors_total", "counter",
                    "Storage calls that failed, by operation.");
    for (int i = 0; i < CC_MSO_N; i++)
        cc_sbuf_printf(b, "carechat_storage_errors_total{op=\"%s\"} %llu\n",
                       op_names[i], (unsigned long long)m0.storage_errors[i]);
    cc_metrics_one(b, "fanout_publish_failures_total", "counter",
                   "Stored messages the fan-out plugin refused to publish.",
                   (double)m0.publish_failed);
    cc_metrics_head(b, "fanout_lag_seconds", "histogram",
                    "From a message's creation to its arrival at this "
                    "node's connections, through fan-out.");
    hist_series(b, "fanout_lag_seconds", "", &m0.lag);
}

void cc_metrics_free(void)
{
    memset(&m0, 0, sizeof m0);
}
