/*
 * host.c - the host services table for plugins, on the core's libevent
 * loop, and plugin loading with ABI checks (see host.h).
 */
#include "host.h"
#include "config.h"
#include "log.h"
#include "msg.h"
#include "timefmt.h"
#include "utf8.h"
#include "uuid.h"
#include "xalloc.h"

#include <carechat/auth.h>
#include <carechat/fanout.h>
#include <carechat/notify.h>
#include <carechat/storage.h>

#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct cc_plugin_ctx {
    char name[64];                         /* "storage:sqlite", for logs */
    const struct cc_conf *conf;
    const struct cc_conf_section *section;
};

struct cc_watch {
    struct event *ev;
    int fd;
    cc_fd_cb cb;
    void *arg;
};

struct cc_timer {
    struct event *ev;
    cc_timer_cb cb;
    void *arg;
};

struct post_item {
    cc_post_cb cb;
    void *arg;
    struct post_item *next;
};

static struct {
    struct event_base *base;
    struct cc_host_hooks hooks;
    pthread_mutex_t lock;           /* guards the post queue */
    struct post_item *head, *tail;
    struct event *post_ev;
    int post_pending;               /* post_ev was activated, not yet run */
} host = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ------------------------------------------------------------- services */

static void h_log(cc_plugin_ctx *ctx, int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cc_logv(level, ctx ? ctx->name : "plugin", fmt, ap);
    va_end(ap);
}

static const char *h_cfg_get(cc_plugin_ctx *ctx, const char *key)
{
    return cc_conf_get(ctx->section, key);
}

static int h_cfg_iter(cc_plugin_ctx *ctx, cc_cfg_cb cb, void *arg)
{
    const struct cc_conf_entry *e;

    for (e = ctx->section ? ctx->section->entries : NULL; e; e = e->next) {
        const char *why = NULL;
        int rc;

        if (strcmp(e->key, "plugin") == 0 ||
            (host.hooks.host_key &&
             host.hooks.host_key(ctx->section->name, e->key)))
            continue; /* the host's own keys */
        rc = cb(arg, e->key, e->value, &why);
        if (rc != CC_OK) {
            cc_log(CC_LOG_ERROR, "config", "%s:%d: [%s] %s: %s",
                   ctx->conf ? ctx->conf->path : "?", e->line,
                   ctx->section->name, e->key, why ? why : "refused");
            return rc < 0 ? rc : CC_E_INVAL;
        }
    }
    return CC_OK;
}

static void h_cfg_error(cc_plugin_ctx *ctx, const char *key,
                        const char *fmt, ...)
{
    const struct cc_conf_entry *e = key ? cc_conf_entry(ctx->section, key)
                                        : NULL;
    const char *path = ctx->conf ? ctx->conf->path : "?";
    char msg[512], where[2048]; /* as long as a log line */
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ctx->section)
        snprintf(where, sizeof where, "%s:%d: [%s]", path,
                 e ? e->line : ctx->section->line, ctx->section->name);
    else /* no section in the file: the plugin runs on its defaults */
        snprintf(where, sizeof where, "%s: no [%.*s] section (plugin %s)",
                 path, (int)strcspn(ctx->name, ":"), ctx->name, ctx->name);
    cc_log(CC_LOG_ERROR, "config", "%s%s%s: %s", where, key ? " " : "",
           key ? key : "", msg);
}

static int h_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? CC_OK : CC_E_FAIL;
}

static void watch_trampoline(evutil_socket_t fd, short what, void *arg)
{
    struct cc_watch *w = arg;
    uint32_t ev = 0;

    if (what & EV_READ)
        ev |= CC_WATCH_READ;
    if (what & EV_WRITE)
        ev |= CC_WATCH_WRITE;
    w->cb((int)fd, ev, w->arg);
}

static short watch_flags(uint32_t events)
{
    return (short)(EV_PERSIST | ((events & CC_WATCH_READ) ? EV_READ : 0) |
                   ((events & CC_WATCH_WRITE) ? EV_WRITE : 0));
}

static int h_watch_set(cc_watch *w, uint32_t events)
{
    event_del(w->ev);
    if (event_assign(w->ev, host.base, w->fd, watch_flags(events),
                     watch_trampoline, w) < 0)
        return CC_E_FAIL;
    if (events && event_add(w->ev, NULL) < 0)
        return CC_E_FAIL;
    return CC_OK;
}

static cc_watch *h_watch_fd(cc_plugin_ctx *ctx, int fd, uint32_t events,
                            cc_fd_cb cb, void *arg)
{
    struct cc_watch *w = cc_xcalloc(1, sizeof *w);

    w->fd = fd;
    w->cb = cb;
    w->arg = arg;
    w->ev = event_new(host.base, fd, watch_flags(events), watch_trampoline,
                      w);
    if (!w->ev || (events && event_add(w->ev, NULL) < 0)) {
        if (w->ev)
            event_free(w->ev);
        free(w);
        return NULL;
    }
    return w;
}

static void h_watch_close(cc_watch *w)
{
    if (!w)
        return;
    event_free(w->ev);
    free(w);
}

static void timer_trampoline(evutil_socket_t fd, short what, void *arg)
{
    struct cc_timer *t = arg;

    t->cb(t->arg);
}

static cc_timer *h_timer_add(cc_plugin_ctx *ctx, uint64_t ms, int repeat,
                             cc_timer_cb cb, void *arg)
{
    struct cc_timer *t = cc_xcalloc(1, sizeof *t);
    struct timeval tv = { (time_t)(ms / 1000),
                          (suseconds_t)(ms % 1000) * 1000 };

    t->cb = cb;
    t->arg = arg;
    t->ev = event_new(host.base, -1, repeat ? EV_PERSIST : 0,
                      timer_trampoline, t);
    if (!t->ev || event_add(t->ev, &tv) < 0) {
        if (t->ev)
            event_free(t->ev);
        free(t);
        return NULL;
    }
    return t;
}

static void h_timer_cancel(cc_timer *t)
{
    if (!t)
        return;
    event_free(t->ev);
    free(t);
}

/* Runs on the loop: take the whole queue under the lock, run it in order
 * outside the lock (callbacks may post again). */
static void post_run(evutil_socket_t fd, short what, void *arg)
{
    struct post_item *it, *next;

    pthread_mutex_lock(&host.lock);
    it = host.head;
    host.head = host.tail = NULL;
    host.post_pending = 0;
    pthread_mutex_unlock(&host.lock);
    for (; it; it = next) {
        next = it->next;
        it->cb(it->arg);
        free(it);
    }
}

static int h_post(cc_plugin_ctx *ctx, cc_post_cb cb, void *arg)
{
    struct post_item *it = cc_xcalloc(1, sizeof *it);
    int wake;

    it->cb = cb;
    it->arg = arg;
    pthread_mutex_lock(&host.lock);
    if (host.tail)
        host.tail->next = it;
    else
        host.head = it;
    host.tail = it;
    wake = !host.post_pending;
    host.post_pending = 1;
    pthread_mutex_unlock(&host.lock);
    if (wake)
        event_active(host.post_ev, EV_READ, 0);
    return CC_OK;
}

void cc_auth_req_init(struct cc_auth_req *r, uint64_t id)
{
    memset(r, 0, sizeof *r);
    r->id = id;
}

static int h_auth_set_user(cc_auth_req *req, const char *user_id)
{
    size_t n = user_id ? strlen(user_id) : 0;

    if (n == 0 || n >= CC_USER_ID_MAX)
        return CC_E_INVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)user_id[i] < 0x20 || user_id[i] == 0x7f)
            return CC_E_INVAL;
    memcpy(req->principal.user_id, user_id, n + 1);
    return CC_OK;
}

static int set_profile(char out[CC_UUID_LEN + 1], const char *id)
{
    if (!id || cc_uuid_canon(id, strlen(id), out) < 0) {
        out[0] = '\0';
        return CC_E_INVAL;
    }
    return CC_OK;
}

static int h_auth_set_patient(cc_auth_req *req, const char *id)
{
    return set_profile(req->principal.patient_id, id);
}

static int h_auth_set_professional(cc_auth_req *req, const char *id)
{
    return set_profile(req->principal.professional_id, id);
}

static int h_auth_set_expiry(cc_auth_req *req, int64_t unix_s)
{
    req->principal.expires_at = unix_s;
    return CC_OK;
}

static int h_auth_set_admin(cc_auth_req *req, int is_admin)
{
    req->principal.is_admin = is_admin != 0;
    return CC_OK;
}

/* A display name: valid UTF-8, no control characters, at most
 * CC_NAME_MAX - 1 bytes, not blank.  Shown, never trusted. */
static int h_auth_set_name(cc_auth_req *req, const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n >= CC_NAME_MAX || !cc_utf8_valid(name, n) ||
        cc_text_blank(name, n))
        return CC_E_INVAL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return CC_E_INVAL;
    memcpy(req->principal.name, name, n + 1);
    return CC_OK;
}

static int h_auth_set_error(cc_auth_req *req, const char *message)
{
    snprintf(req->error, sizeof req->error, "%s", message ? message : "");
    return CC_OK;
}

static cc_auth_req *h_auth_lookup(cc_plugin_ctx *ctx, uint64_t req_id)
{
    return host.hooks.auth_lookup ? host.hooks.auth_lookup(req_id) : NULL;
}

static void h_auth_complete(cc_plugin_ctx *ctx, uint64_t req_id, int status)
{
    if (host.hooks.auth_complete)
        host.hooks.auth_complete(req_id, status);
}

static void h_fanout_deliver(cc_plugin_ctx *ctx, const char *chat_id,
                             int64_t seq, const char *payload, size_t len)
{
    if (host.hooks.fanout_deliver)
        host.hooks.fanout_deliver(chat_id, seq, payload, len);
}

static void h_fanout_resync(cc_plugin_ctx *ctx, const char *chat_id)
{
    if (host.hooks.fanout_resync)
        host.hooks.fanout_resync(chat_id);
}

static const struct cc_host_api host_api = {
    .struct_size = sizeof(struct cc_host_api),
    .abi_version = CC_ABI_VERSION,
    .log = h_log,
    .cfg_get = h_cfg_get,
    .cfg_iter = h_cfg_iter,
    .cfg_error = h_cfg_error,
    .now_mono_ns = cc_time_mono_ns,
    .now_real_us = cc_time_now_us,
    .random_bytes = h_random_bytes,
    .watch_fd = h_watch_fd,
    .watch_set = h_watch_set,
    .watch_close = h_watch_close,
    .timer_add = h_timer_add,
    .timer_cancel = h_timer_cancel,
    .post = h_post,
    .auth_set_user = h_auth_set_user,
    .auth_set_patient = h_auth_set_patient,
    .auth_set_professional = h_auth_set_professional,
    .auth_set_expiry = h_auth_set_expiry,
    .auth_set_admin = h_auth_set_admin,
    .auth_set_error = h_auth_set_error,
    .auth_lookup = h_auth_lookup,
    .auth_complete = h_auth_complete,
    .auth_set_name = h_auth_set_name,
    .fanout_deliver = h_fanout_deliver,
    .fanout_resync = h_fanout_resync,
};

void cc_host_shutdown(void)
{
    post_run(-1, 0, NULL); /* run what is still queued */
    if (host.post_ev)
        event_free(host.post_ev);
    host.post_ev = NULL;
    host.base = NULL;
}

int cc_host_init(struct event_base *base, const struct cc_host_hooks *hooks)
{
    if (host.post_ev)
        cc_host_shutdown();
    host.base = base;
    memset(&host.hooks, 0, sizeof host.hooks);
    if (hooks)
        host.hooks = *hooks;
    host.post_ev = event_new(base, -1, 0, post_run, NULL);
    return host.post_ev ? 0 : -1;
}

const struct cc_host_api *cc_host_api_table(void)
{
    return &host_api;
}

/* -------------------------------------------------------------- loading */

static const char *kind_name(uint32_t kind)
{
    switch (kind) {
    case CC_KIND_STORAGE: return "storage";
    case CC_KIND_AUTH: return "auth";
    case CC_KIND_FANOUT: return "fanout";
    case CC_KIND_NOTIFY: return "notify";
    default: return "unknown";
    }
}

/* The smallest table accepted for each interface: the one its kind had
 * when it came (storage, auth and fan-out in 1.0, notify in 1.4); what
 * was appended since is tested for by size where it is used.  (Storage
 * asked for its whole current table until 1.4, so a storage plugin
 * built for an older minor was refused.) */
static size_t iface_min_size(uint32_t kind)
{
    switch (kind) {
    case CC_KIND_STORAGE:
        return offsetof(struct cc_storage_api, message_purge);
    case CC_KIND_AUTH: return offsetof(struct cc_auth_api, cancel);
    case CC_KIND_FANOUT: return sizeof(struct cc_fanout_api);
    case CC_KIND_NOTIFY: return sizeof(struct cc_notify_api);
    default: return SIZE_MAX;
    }
}

char *cc_plugin_path(const char *plugin_dir, const char *kind_name_s,
                     const char *value)
{
    size_t n;
    char *p;

    if (strchr(value, '/')) {
        p = strdup(value);
    } else {
        n = strlen(plugin_dir) + strlen(kind_name_s) + strlen(value) + 6;
        p = malloc(n);
        if (p)
            snprintf(p, n, "%s/%s-%s.so", plugin_dir, kind_name_s, value);
    }
    if (!p)
        abort();
    return p;
}

/* Entry and descriptor checks.  Returns the descriptor or NULL with err. */
static const struct cc_plugin *check_entry(void *dl, const char *path,
                                           uint32_t kind, char *err,
                                           size_t err_size)
{
    cc_plugin_entry_fn entry;
    const struct cc_plugin *d = NULL;
    int rc;

    *(void **)&entry = dlsym(dl, CC_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, err_size,
                 "%s: not a carechat plugin (no %s symbol)", path,
                 CC_PLUGIN_ENTRY_SYMBOL);
        return NULL;
    }
    rc = entry(&host_api, CC_ABI_VERSION, &d);
    if (rc == CC_E_ABI || (rc == CC_OK && d &&
            d->struct_size >= offsetof(struct cc_plugin, abi_version) + 4 &&
            CC_ABI_MAJOR_OF(d->abi_version) != CC_ABI_MAJOR)) {
        snprintf(err, err_size,
                 "%s: incompatible plugin ABI (built for %u.%u, this "
                 "carechatd provides %u.%u)", path,
                 d ? CC_ABI_MAJOR_OF(d->abi_version) : 0,
                 d ? CC_ABI_MINOR_OF(d->abi_version) : 0,
                 CC_ABI_MAJOR, CC_ABI_MINOR);
        return NULL;
    }
    if (rc != CC_OK || !d) {
        snprintf(err, err_size, "%s: plugin entry failed (code %d)", path,
                 rc);
        return NULL;
    }
    if (d->struct_size < offsetof(struct cc_plugin, get_interface) +
                             sizeof d->get_interface ||
        !d->create || !d->start || !d->stop || !d->destroy ||
        !d->get_interface || !d->name) {
        snprintf(err, err_size,
                 "%s: plugin descriptor too small or incomplete", path);
        return NULL;
    }
    if (d->min_host_minor > CC_ABI_MINOR) {
        snprintf(err, err_size,
                 "%s: plugin needs carechat ABI %u.%u, this carechatd "
                 "provides %u.%u", path, CC_ABI_MAJOR, d->min_host_minor,
                 CC_ABI_MAJOR, CC_ABI_MINOR);
        return NULL;
    }
    if (!(d->kinds & kind)) {
        snprintf(err, err_size, "%s: plugin \"%s\" is not a %s plugin",
                 path, d->name, kind_name(kind));
        return NULL;
    }
    return d;
}

int cc_plugin_load(const char *path, uint32_t kind,
                   const struct cc_conf *conf,
                   const struct cc_conf_section *section,
                   struct cc_plugin_inst *out, char *err, size_t err_size)
{
    struct stat st;
    void *dl;
    const struct cc_plugin *d;
    const uint32_t *iface;

    memset(out, 0, sizeof *out);
    if (stat(path, &st) < 0) {
        snprintf(err, err_size, "%s: cannot load %s plugin: %s", path,
                 kind_name(kind), strerror(errno));
        return -1;
    }
    dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, err_size, "%s: cannot load: %s", path, dlerror());
        return -1;
    }
    /* From here on the object stays mapped: plugins may have registered
     * atexit handlers or thread-locals, so we never dlclose. */
    d = check_entry(dl, path, kind, err, err_size);
    if (!d)
        return -1;
    out->desc = d;
    out->path = strdup(path);
    out->ctx = cc_xcalloc(1, sizeof *out->ctx);
    snprintf(out->ctx->name, sizeof out->ctx->name, "%s:%s",
             kind_name(kind), d->name);
    out->ctx->conf = conf;
    out->ctx->section = section;
    if (d->create(&host_api, out->ctx, &out->inst) != CC_OK) {
        snprintf(err, err_size, "%s: %s plugin \"%s\" refused its "
                 "configuration (see above)", path, kind_name(kind),
                 d->name);
        goto fail;
    }
    iface = d->get_interface(out->inst, kind);
    if (!iface || *iface < iface_min_size(kind)) {
        snprintf(err, err_size, "%s: plugin \"%s\" has no usable %s "
                 "interface", path, d->name, kind_name(kind));
        d->destroy(out->inst);
        goto fail;
    }
    out->iface = iface;
    return 0;
fail:
    free(out->ctx);
    free(out->path);
    memset(out, 0, sizeof *out);
    return -1;
}

int cc_plugin_start(struct cc_plugin_inst *p, char *err, size_t err_size)
{
    if (p->desc->start(p->inst) != CC_OK) {
        snprintf(err, err_size, "%s: plugin \"%s\" failed to start (see "
                 "above)", p->path, p->desc->name);
        return -1;
    }
    return 0;
}

static void stop_done(void *arg)
{
    *(int *)arg = 1;
}

void cc_plugin_unload(struct cc_plugin_inst *p)
{
    int done = 0;

    if (!p || !p->desc)
        return;
    p->desc->stop(p->inst, stop_done, &done);
    while (!done) {
        if (event_base_loop(host.base, EVLOOP_ONCE) == 1) {
            struct timespec ts = { 0, 1000000 };
            nanosleep(&ts, NULL); /* nothing pending yet: a thread is
                                     about to post the completion */
        }
    }
    p->desc->destroy(p->inst);
    free(p->ctx);
    free(p->path);
    memset(p, 0, sizeof *p);
}
