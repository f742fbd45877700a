/*
 * retention.c - purging messages past their keeping time (see
 * retention.h).
 */
#include "retention.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "timefmt.h"

#include <event2/event.h>
#include <string.h>
#include <time.h>

#define DAY_US (86400LL * 1000000)
#define FIRST_RUN_MS 2000 /* after start: let the node settle first */

/* The settings are cc_srv->retention (server.h); this is the state. */
static struct {
    struct event *timer;
    int running;           /* a purge is under way (batches) */
    int in_flight;         /* a batch is with storage */
    int64_t cutoff_us;     /* this purge: created before it */
    uint64_t deleted;      /* this purge so far */
    uint64_t started_ns;
    uint64_t total;        /* since start */
} rt;

int cc_retention_host_key(const char *section, const char *key)
{
    if (strcmp(key, "plugin") == 0)
        return 1;
    return strcmp(section, "storage") == 0 &&
           (strcmp(key, "retention") == 0 ||
            strcmp(key, "retention_interval") == 0);
}

int cc_retention_parse(const struct cc_conf *conf,
                       struct cc_retention_conf *out)
{
    const struct cc_conf_section *sec = cc_conf_section(conf, "storage");
    const struct cc_conf_entry *e;
    uint64_t days = 0, interval_ms = 3600 * 1000;

    for (e = sec ? sec->entries : NULL; e; e = e->next) {
        const char *why = NULL;
        int rc = 0;

        if (strcmp(e->key, "retention") == 0)
            rc = cc_conf_parse_u64(e->value, 0, 36500, &days, &why);
        else if (strcmp(e->key, "retention_interval") == 0)
            rc = cc_conf_parse_duration_ms(e->value, 1000,
                                           7ULL * 24 * 3600 * 1000,
                                           &interval_ms, &why);
        if (rc < 0) {
            cc_log(CC_LOG_ERROR, "config", "%s:%d: [storage] %s: %s",
                   conf->path, e->line, e->key, why);
            return -1;
        }
    }
    out->days = days;
    out->interval_ms = interval_ms;
    return 0;
}

static void arm(uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000),
                          (suseconds_t)(ms % 1000) * 1000 };

    event_add(rt.timer, &tv);
}

static void batch(void);

static void batch_done(void *arg, int status,
                       const struct cc_store_result *res)
{
    (void)arg;
    rt.in_flight = 0;
    if (status != CC_OK) {
        cc_log(CC_LOG_WARN, "retention", "purge stopped after %llu "
               "messages: %s; trying again in %llu s",
               (unsigned long long)rt.deleted,
               res && res->error ? res->error : "storage error",
               (unsigned long long)(cc_srv->retention.interval_ms / 1000));
        rt.running = 0;
        if (rt.timer)
            arm(cc_srv->retention.interval_ms);
        return;
    }
    rt.deleted += (uint64_t)res->count;
    rt.total += (uint64_t)res->count;
    if (res->more && res->count > 0 && rt.timer) {
        arm(CC_RETENTION_PAUSE_MS); /* the next batch, after a breath */
        return;
    }
    if (rt.deleted)
        cc_log(CC_LOG_INFO, "retention", "deleted %llu messages older than "
               "%llu days in %.1f s", (unsigned long long)rt.deleted,
               (unsigned long long)cc_srv->retention.days,
               (double)(cc_time_mono_ns() - rt.started_ns) / 1e9);
    rt.running = 0;
    if (rt.timer)
        arm(cc_srv->retention.interval_ms);
}

static void batch(void)
{
    int rc;

    rt.in_flight = 1;
    rc = cc_store_purge(rt.cutoff_us, CC_RETENTION_BATCH, batch_done, NULL);
    if (rc != CC_OK) {
        struct cc_store_result none = { .struct_size = sizeof none,
                                        .error = "refused (queue full?)" };
        batch_done(NULL, rc, &none);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    if (rt.in_flight || cc_srv->shutting_down)
        return;
    if (!rt.running) {
        rt.running = 1;
        rt.deleted = 0;
        rt.started_ns = cc_time_mono_ns();
        rt.cutoff_us = cc_time_now_us() -
                       (int64_t)cc_srv->retention.days * DAY_US;
    }
    batch();
}

int cc_retention_start(struct cc_server *s)
{
    if (!s->retention.days)
        return 0;
    if (!cc_store_can(CC_STORE_PURGE)) {
        cc_log(CC_LOG_ERROR, "config", "%s: [storage] retention = %llu, "
               "but the storage plugin \"%s\" cannot delete messages (it "
               "predates plugin ABI 1.3 message_purge)", s->conf->path,
               (unsigned long long)s->retention.days, s->storage.desc->name);
        return -1;
    }
    rt.timer = evtimer_new(s->base, timer_cb, NULL);
    if (!rt.timer)
        return -1;
    arm(FIRST_RUN_MS);
    cc_log(CC_LOG_INFO, "retention", "messages older than %llu days are "
           "deleted (a purge at start and every %llu s)",
           (unsigned long long)cc_srv->retention.days,
           (unsigned long long)(cc_srv->retention.interval_ms / 1000));
    return 0;
}

uint64_t cc_retention_purged_total(void)
{
    return rt.total;
}

void cc_retention_stop(void)
{
    if (rt.timer) {
        event_free(rt.timer);
        rt.timer = NULL;
    }
}
