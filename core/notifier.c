/*
 * notifier.c - due notifications: claim, send, record (see notifier.h).
 */
#include "notifier.h"
#include "audit.h"
#include "config.h"
#include "host.h"
#include "log.h"
#include "loop.h"
#include "store.h"
#include "timefmt.h"
#include "uuid.h"
#include "xalloc.h"

#include <carechat/notify.h>
#include <carechat/storage.h>

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#define TICK_MS 1000            /* how often due notifications are asked */
#define LEASE_US (60LL * 1000000) /* a claim not answered: out again then */
#define CLAIM_LIMIT 64
#define RETRY_MIN_MS 1000       /* backoff of a failed delivery ... */
#define RETRY_MAX_MS 300000     /* ... doubling up to this */

static struct {
    struct cc_notifier_conf conf;
    const struct cc_notify_api *api;  /* NULL: off */
    void *inst;
    struct event *timer;
    int claiming;               /* a claim is with storage */
    int stopping;
    struct cc_notifier_counters n;
} nt;

/* One notification, from the claim to its outcome. */
struct job {
    char id[CC_UUID_LEN + 1];
    char chat_id[CC_UUID_LEN + 1];
    char profile_id[CC_UUID_LEN + 1];
    char user_id[CC_USER_ID_MAX];
    char first_unread[CC_UUID_LEN + 1];
    int side, urgent, sent, attempts;
    int64_t episode_at_us;
};

/* ------------------------------------------------------------ config */

int cc_notifier_host_key(const char *section, const char *key)
{
    static const char *const keys[] = { "delay", "urgent_repeat",
                                        "urgent_max", "max_age" };

    if (strcmp(section, "notify") != 0)
        return 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(key, keys[i]) == 0)
            return 1;
    return 0;
}

int cc_notifier_parse(const struct cc_conf *conf,
                      struct cc_notifier_conf *out)
{
    const struct cc_conf_section *sec = cc_conf_section(conf, "notify");
    const struct cc_conf_entry *e;

    out->on = sec != NULL;
    out->delay_ms = 60000;
    out->urgent_repeat_ms = 120000;
    out->urgent_max = 10;
    out->max_age_ms = 3600000;
    for (e = sec ? sec->entries : NULL; e; e = e->next) {
        const char *why = NULL;
        int rc = 0;

        if (strcmp(e->key, "delay") == 0)
            rc = cc_conf_parse_duration_ms(e->value, 1000, 86400000,
                                           &out->delay_ms, &why);
        else if (strcmp(e->key, "urgent_repeat") == 0)
            rc = cc_conf_parse_duration_ms(e->value, 1000, 86400000,
                                           &out->urgent_repeat_ms, &why);
        else if (strcmp(e->key, "urgent_max") == 0)
            rc = cc_conf_parse_u64(e->value, 1, 1000, &out->urgent_max,
                                   &why);
        else if (strcmp(e->key, "max_age") == 0)
            rc = cc_conf_parse_duration_ms(e->value, 1000, 7 * 86400000ULL,
                                           &out->max_age_ms, &why);
        if (rc < 0) {
            cc_log(CC_LOG_ERROR, "config", "%s:%d: [notify] %s: %s",
                   conf->path, e->line, e->key, why);
            return -1;
        }
    }
    return 0;
}

int64_t cc_notifier_due(int64_t created_us, int priority)
{
    if (!nt.api)
        return 0;
    if (priority == CC_PRIORITY_URGENT)
        return created_us;
    return created_us + (int64_t)nt.conf.delay_ms * 1000;
}

int64_t cc_notifier_delay_us(void)
{
    return nt.api ? (int64_t)nt.conf.delay_ms * 1000 : 0;
}

void cc_notifier_counters(struct cc_notifier_counters *out)
{
    *out = nt.n;
}

/* ---------------------------------------------------------- outcomes */

static void done_cb(void *arg, int status, const struct cc_store_result *res)
{
    (void)arg;
    if (status != CC_OK)
        cc_log(CC_LOG_WARN, "notify", "an outcome was not recorded (%s): "
               "the notification goes out again when its lease ends",
               res && res->error ? res->error : "storage error");
}

static void audit(const struct job *j, const char *result)
{
    struct cc_principal who = { .expires_at = 0 };
    struct cc_audit_event ev = {
        .event = "notify", .result = result, .who = &who,
        .chat_id = j->chat_id, .message_id = j->first_unread,
    };

    snprintf(who.user_id, sizeof who.user_id, "%s", j->user_id);
    snprintf(j->side == CC_SIDE_PATIENT ? who.patient_id
                                        : who.professional_id,
             CC_UUID_LEN + 1, "%s", j->profile_id);
    cc_audit(&ev);
}

/* The next try of a failed delivery: 1 s, doubling, at most 5 min. */
static int64_t backoff_us(int attempts)
{
    uint64_t ms = RETRY_MIN_MS;

    for (int i = 0; i < attempts && ms < RETRY_MAX_MS; i++)
        ms *= 2;
    return (int64_t)(ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS) * 1000;
}

/* The plugin's answer for j: what to record. */
static void sent_cb(void *arg, int status)
{
    struct job *j = arg;
    int64_t now = cc_time_now_us();
    struct cc_notify_outcome o = { .chat_id = j->chat_id, .side = j->side,
                                   .id = j->id };

    nt.n.in_flight--;
    if (status == CC_OK) {
        nt.n.sent++;
        o.result = CC_NOTIFY_SENT;
        if (j->urgent && (uint64_t)j->sent + 1 < nt.conf.urgent_max)
            o.next_due_us = now + (int64_t)nt.conf.urgent_repeat_ms * 1000;
        audit(j, "ok");
    } else if (status == CC_E_INVAL ||
               now - j->episode_at_us >= (int64_t)nt.conf.max_age_ms * 1000) {
        nt.n.dropped++;
        o.result = CC_NOTIFY_DROP;
        cc_log(CC_LOG_WARN, "notify", "notification %s for chat %s dropped "
               "after %d attempts (%s)", j->id, j->chat_id, j->attempts + 1,
               status == CC_E_INVAL ? "refused by the receiver"
                                    : "max_age reached");
        audit(j, "dropped");
    } else {
        nt.n.failed++;
        o.result = CC_NOTIFY_RETRY;
        o.next_due_us = now + backoff_us(j->attempts);
        audit(j, "error");
    }
    if (cc_store_notify_done(&o, done_cb, NULL) != CC_OK)
        done_cb(NULL, CC_E_BUSY, NULL);
    free(j);
}

/* ------------------------------------------------------------ claims */

static struct job *job_of(const struct cc_notification *n)
{
    struct job *j = cc_xcalloc(1, sizeof *j);

    snprintf(j->id, sizeof j->id, "%s", n->id);
    snprintf(j->chat_id, sizeof j->chat_id, "%s", n->chat_id);
    snprintf(j->profile_id, sizeof j->profile_id, "%s",
             n->profile_id ? n->profile_id : "");
    snprintf(j->user_id, sizeof j->user_id, "%s",
             n->user_id ? n->user_id : "");
    snprintf(j->first_unread, sizeof j->first_unread, "%s",
             n->first_unread_id ? n->first_unread_id : "");
    j->side = n->side;
    j->urgent = n->urgent;
    j->sent = n->sent;
    j->attempts = n->attempts;
    j->episode_at_us = n->episode_at_us;
    return j;
}

static void send_one(const struct cc_notification *claimed, int64_t now)
{
    struct cc_notification n = *claimed;
    struct job *j = job_of(claimed);
    int rc;

    n.struct_size = sizeof n;
    n.at_us = now;
    nt.n.in_flight++;
    rc = nt.api->send(nt.inst, &n, sent_cb, j);
    if (rc != CC_OK) /* busy: counted, tried again; never sendable: dropped */
        sent_cb(j, rc == CC_E_INVAL ? CC_E_INVAL : CC_E_UNAVAIL);
}

static void claimed_cb(void *arg, int status,
                       const struct cc_store_result *res)
{
    int64_t now = cc_time_now_us();

    (void)arg;
    nt.claiming = 0;
    if (status != CC_OK) {
        cc_log(CC_LOG_WARN, "notify", "cannot ask storage what is due: %s",
               res && res->error ? res->error : "storage error");
        return;
    }
    if (!CC_HAS_MEMBER(res, struct cc_store_result, notifications))
        return;
    for (size_t i = 0; i < res->n_notifications && !nt.stopping; i++)
        send_one(res->notifications[i], now);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct cc_notify_claim q = { .lease_us = LEASE_US,
                                 .limit = CLAIM_LIMIT };

    (void)fd;
    (void)what;
    (void)arg;
    if (nt.claiming || nt.stopping || nt.n.in_flight >= CLAIM_LIMIT)
        return;
    q.now_us = cc_time_now_us();
    nt.claiming = 1;
    if (cc_store_notify_claim(&q, claimed_cb, NULL) != CC_OK)
        nt.claiming = 0; /* busy: the next tick */
}

int cc_notifier_start(const struct cc_notifier_conf *conf,
                      struct cc_plugin_inst *plugin)
{
    struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };

    nt.conf = *conf;
    if (!plugin || !plugin->desc)
        return 0;
    if (!cc_store_can(CC_STORE_NOTIFY)) {
        cc_log(CC_LOG_ERROR, "config", "[notify]: the storage plugin cannot "
               "keep notifications (it predates plugin ABI 1.4)");
        return -1;
    }
    nt.api = plugin->iface;
    nt.inst = plugin->inst;
    nt.timer = event_new(cc_loop_base(cc_main_loop), -1, EV_PERSIST, tick,
                         NULL);
    if (!nt.timer)
        abort();
    event_add(nt.timer, &tv);
    cc_log(CC_LOG_INFO, "notify", "unread messages notify after %llu s "
           "(urgent: at once, then every %llu s, %llu times at most)",
           (unsigned long long)(conf->delay_ms / 1000),
           (unsigned long long)(conf->urgent_repeat_ms / 1000),
           (unsigned long long)conf->urgent_max);
    return 0;
}

void cc_notifier_stop(void)
{
    nt.stopping = 1;
    if (nt.timer) {
        event_free(nt.timer);
        nt.timer = NULL;
    }
}
