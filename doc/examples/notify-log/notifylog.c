/*
 * notifylog.c - an example carechat notify plugin: it writes one log
 * line per notification, with its ids and counts, and reports it
 * delivered.  The smallest complete notify plugin, written the way
 * doc/plugin-guide.md explains and built out of tree against the
 * installed headers only:
 *
 *     cc $(pkg-config --cflags carechat-plugin) -fPIC -shared \
 *        -o notify-log.so notifylog.c
 *
 * carechat.conf:
 *
 *     [notify]
 *     plugin = log               (as <plugin_dir>/notify-log.so; or a
 *                                 path to the .so)
 *     level = info               (or debug; the default is info)
 *
 * A starting point for a pager or SMS gateway: replace the log line with
 * your request, and answer from its completion instead of the timer.
 * What it shows: the strings of a notification are borrowed for the call
 * of send() (what is kept is copied); the answer comes exactly once, on
 * the loop thread, never from inside send() (here from a 0 ms timer);
 * stop() answers what is still pending.
 */
#include <carechat/notify.h>
#include <carechat/plugin.h>
#include <carechat/storage.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One notification waiting for its answer. */
struct pending {
    struct notifylog *nl;
    cc_timer *timer;
    cc_notify_cb cb;
    void *arg;
    char id[64];             /* copied: n->id is borrowed */
    struct pending *next;
};

/* The plugin instance: one per [notify] section. */
struct notifylog {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    int level;               /* CC_LOG_INFO or CC_LOG_DEBUG */
    struct pending *pending; /* answers not yet given */
};

/* ---------------------------------------------------------- config */

/* cfg_iter callback: one key of [notify].  The host keeps its own keys
 * (plugin, delay, urgent_repeat, urgent_max, max_age) to itself. */
static int nl_cfg_key(void *arg, const char *key, const char *value,
                      const char **reason)
{
    struct notifylog *nl = arg;

    if (strcmp(key, "level") != 0) {
        *reason = "unknown key (log takes level)";
        return CC_E_INVAL;
    }
    if (strcmp(value, "info") == 0)
        nl->level = CC_LOG_INFO;
    else if (strcmp(value, "debug") == 0)
        nl->level = CC_LOG_DEBUG;
    else {
        *reason = "must be info or debug";
        return CC_E_INVAL;
    }
    return CC_OK;
}

static int nl_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct notifylog *nl = calloc(1, sizeof *nl);

    if (!nl)
        return CC_E_NOMEM;
    nl->host = host;
    nl->ctx = ctx;
    nl->level = CC_LOG_INFO;
    if (host->cfg_iter(ctx, nl_cfg_key, nl) != CC_OK) {
        free(nl);
        return CC_E_INVAL; /* the host has reported file:line already */
    }
    *inst = nl;
    return CC_OK;
}

/* ------------------------------------------------------------- send */

/* Take p out of the pending list, answer status, free it. */
static void answer(struct pending *p, int status)
{
    struct pending **pp = &p->nl->pending;

    while (*pp != p)
        pp = &(*pp)->next;
    *pp = p->next;
    p->nl->host->timer_cancel(p->timer);
    p->cb(p->arg, status);
    free(p);
}

static void on_timer(void *arg)
{
    struct pending *p = arg;

    p->nl->host->log(p->nl->ctx, CC_LOG_DEBUG, "notification %s answered",
                     p->id);
    answer(p, CC_OK);
}

static int nl_send(void *inst, const struct cc_notification *n,
                   cc_notify_cb cb, void *arg)
{
    struct notifylog *nl = inst;
    struct pending *p;

    if (!n->id || strlen(n->id) >= sizeof p->id)
        return CC_E_INVAL;  /* never deliverable: the host drops it */
    p = calloc(1, sizeof *p);
    if (!p)
        return CC_E_NOMEM;  /* and cb is never called */
    /* Ids and counts only: a notification never carries content. */
    nl->host->log(nl->ctx, nl->level, "notification %s: chat %s, %s %s "
                  "(user %s), %lld unread from %s%s, try %d", n->id,
                  n->chat_id, n->side == CC_SIDE_PATIENT ? "patient"
                                                         : "professional",
                  n->profile_id, n->user_id ? n->user_id : "unknown",
                  (long long)n->unread, n->first_unread_id,
                  n->urgent ? ", urgent" : "", n->attempts + 1);
    p->nl = nl;
    p->cb = cb;
    p->arg = arg;
    memcpy(p->id, n->id, strlen(n->id) + 1);
    /* Answer later, from the loop: never from inside send(). */
    p->timer = nl->host->timer_add(nl->ctx, 0, 0, on_timer, p);
    if (!p->timer) {
        free(p);
        return CC_E_NOMEM;
    }
    p->next = nl->pending;
    nl->pending = p;
    return CC_OK;
}

/* -------------------------------------------------------- lifecycle */

static int nl_start(void *inst)
{
    (void)inst;
    return CC_OK;
}

/* Answer what is still pending (not delivered: the host keeps it due and
 * sends it again after a restart), then done. */
static void nl_stop(void *inst, cc_post_cb done, void *arg)
{
    struct notifylog *nl = inst;

    while (nl->pending)
        answer(nl->pending, CC_E_UNAVAIL);
    done(arg);
}

static void nl_destroy(void *inst)
{
    free(inst);
}

static const struct cc_notify_api nl_api = {
    .struct_size = sizeof(struct cc_notify_api),
    .send = nl_send,
};

static const void *nl_get_interface(void *inst, uint32_t kind)
{
    (void)inst;
    return kind == CC_KIND_NOTIFY ? &nl_api : NULL;
}

static const struct cc_plugin nl_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 4,      /* the notify kind came with ABI 1.4 */
    .kinds = CC_KIND_NOTIFY,
    .name = "log",
    .version = "1.0.0",
    .create = nl_create,
    .start = nl_start,
    .reload = NULL,
    .stop = nl_stop,
    .destroy = nl_destroy,
    .get_interface = nl_get_interface,
};

/* The one exported symbol: a host of ABI 1.4 or later, which knows the
 * notify kind and has the timers used here. */
CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 4) || !host ||
        !CC_HAS_MEMBER(host, struct cc_host_api, timer_cancel))
        return CC_E_ABI;
    *out = &nl_plugin;
    return CC_OK;
}
