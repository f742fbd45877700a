/*
 * daemon.c - starting and stopping the server: plugins, routes, loops,
 * listeners, signals, housekeeping, the shutdown sequence (see daemon.h).
 */
#include "daemon.h"
#include "admin.h"
#include "audit.h"
#include "auth.h"
#include "chatcache.h"
#include "config.h"
#include "conn.h"
#include "fanout.h"
#include "hub.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "marks.h"
#include "metrics.h"
#include "notifier.h"
#include "sdnotify.h"
#include "ready.h"
#include "reload.h"
#include "rest.h"
#include "retention.h"
#include "router.h"
#include "send.h"
#include "server.h"
#include "session.h"
#include "store.h"
#include "www.h"

#include <carechat/auth.h>
#include <carechat/fanout.h>
#include <carechat/storage.h>

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHUTDOWN_GRACE_MS 10000

static struct event *sig_events[3];
static struct event *drain_timer;
static struct event *tick_timer;   /* once a second: log summaries */
static uint64_t drain_ticks;

/* ---------------------------------------------------------- plugins */

static int load_one(struct cc_server *s, uint32_t kind, const char *section,
                    const char *def, struct cc_plugin_inst *out)
{
    const struct cc_conf_section *sec = cc_conf_section(s->conf, section);
    const char *name = cc_conf_get(sec, "plugin");
    char err[1024];
    char *path;
    int rc;

    if (!name || !name[0])
        name = def;
    path = cc_plugin_path(s->plugin_dir, section, name);
    rc = cc_plugin_load(path, kind, s->conf, sec, out, err, sizeof err);
    free(path);
    if (rc < 0) {
        cc_log(CC_LOG_ERROR, "plugin", "%s", err);
        return -1;
    }
    cc_log(CC_LOG_INFO, "plugin", "%s plugin \"%s\" %s loaded from %s",
           section, out->desc->name,
           out->desc->version ? out->desc->version : "", out->path);
    return 0;
}

static int load_plugins(struct cc_server *s)
{
    if (load_one(s, CC_KIND_STORAGE, "storage", "sqlite", &s->storage) < 0 ||
        load_one(s, CC_KIND_AUTH, "auth", "jwt", &s->auth) < 0 ||
        load_one(s, CC_KIND_FANOUT, "fanout", "local", &s->fanout) < 0 ||
        (s->notify.on && load_one(s, CC_KIND_NOTIFY, "notify", "webhook",
                                  &s->notify_plugin) < 0))
        return -1;
    s->st = s->storage.iface;
    s->au = s->auth.iface;
    s->fo = s->fanout.iface;
    return 0;
}

/* ------------------------------------------------------------ signals */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct cc_server *s = arg;

    if (sig == SIGHUP) {
        cc_audit_reopen(); /* logrotate */
        cc_reload(s);
        return;
    }
    if (s->shutting_down) {
        cc_log(CC_LOG_WARN, "server", "second signal: exiting now");
        event_base_loopbreak(s->base);
        return;
    }
    cc_log(CC_LOG_INFO, "server", "%s: shutting down",
           sig == SIGTERM ? "SIGTERM" : "SIGINT");
    cc_daemon_shutdown(s);
}

static void host_fanout_deliver(const char *chat_id, int64_t seq,
                                const char *payload, size_t len)
{
    cc_metrics_fanout_lag(payload, len);
    cc_hub_deliver(chat_id, seq, payload, len);
}

/* Load the TLS context when TLS listeners are configured (also for -t);
 * TLS keys without tls_listen are a mistake worth stopping for. */
static int tls_start(struct cc_server *s)
{
    char err[512];

    if (!s->tls_listen) {
        if (s->tls.certificate || s->tls.key) {
            cc_log(CC_LOG_ERROR, "config", "%s: [server] tls_certificate "
                   "is set but tls_listen is not: no TLS port would use it",
                   s->conf->path);
            return -1;
        }
        return 0;
    }
    if (cc_tls_load(&s->tls, err, sizeof err) < 0) {
        cc_log(CC_LOG_ERROR, "tls", "%s: %s", s->conf->path, err);
        return -1;
    }
    return 0;
}

/* Once a second on loop 0: the summaries of rate-limited log lines. */
static void tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    cc_log_flush_suppressed(0);
}

/* The demo page's files, when demo = yes (also checked by -t). */
static int demo_start(struct cc_server *s)
{
    return s->demo ? cc_www_load(s->demo_dir ? s->demo_dir : CC_WWWDIR)
                   : 0;
}

/* The keys of a plugin's section that are the host's (host.h). */
static int host_key(const char *section, const char *key)
{
    return cc_retention_host_key(section, key) ||
           cc_notifier_host_key(section, key);
}

/* Every module's routes (router.h). */
static void add_routes(void)
{
    cc_rest_routes();
    cc_session_routes();
    cc_ready_routes();
    cc_admin_routes();
    cc_www_routes();
}

int cc_daemon_start(struct cc_server *s)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    struct cc_host_hooks hooks = {
        .auth_lookup = cc_auth_lookup,
        .auth_complete = cc_auth_complete,
        .fanout_deliver = host_fanout_deliver,
        .fanout_resync = cc_hub_resync,
        .host_key = host_key,
    };
    char err[1024];

    cc_srv = s;
    signal(SIGPIPE, SIG_IGN);
    cc_host_init(s->base, &hooks);
    cc_loops_init(s->base);
    cc_conn_init();
    cc_hub_init();
    cc_chatcache_init((size_t)s->lim.chat_cache);
    if (tls_start(s) < 0 || demo_start(s) < 0 || cc_audit_start() < 0 ||
        load_plugins(s) < 0)
        return -1;
    if (cc_plugin_start(&s->storage, err, sizeof err) < 0 ||
        cc_plugin_start(&s->auth, err, sizeof err) < 0 ||
        cc_plugin_start(&s->fanout, err, sizeof err) < 0 ||
        (s->notify_plugin.desc &&
         cc_plugin_start(&s->notify_plugin, err, sizeof err) < 0)) {
        cc_log(CC_LOG_ERROR, "plugin", "%s", err);
        return -1;
    }
    cc_store_attach(s->st, s->storage.inst, s->storage.desc->abi_version);
    cc_fanout_attach(s->fo, s->fanout.inst);
    add_routes();
    if (cc_retention_start(s) < 0 ||
        cc_notifier_start(&s->notify, s->notify_plugin.desc
                                          ? &s->notify_plugin : NULL) < 0)
        return -1;
    cc_listen_fit_fd_limit(s);
    if (cc_listen_start(s) < 0 || cc_loops_start((unsigned)s->lim.threads) < 0)
        return -1;
    if (s->lim.threads > 1)
        cc_log(CC_LOG_INFO, "server", "%llu event loops: WebSockets move "
               "to loops 1-%llu once joined",
               (unsigned long long)s->lim.threads,
               (unsigned long long)s->lim.threads - 1);
    /* Loops that outnumber the CPUs take turns on them, and the storage
     * threads need a share too. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus > 0 && s->lim.threads > (uint64_t)cpus)
        cc_log(CC_LOG_WARN, "server", "threads = %llu but %ld CPUs online: "
               "the loops will compete for them (use at most %ld)",
               (unsigned long long)s->lim.threads, cpus, cpus);
    for (int i = 0; i < 3; i++) {
        sig_events[i] = evsignal_new(s->base, sigs[i], on_signal, s);
        event_add(sig_events[i], NULL);
    }
    tick_timer = event_new(s->base, -1, EV_PERSIST, tick, NULL);
    event_add(tick_timer, &(struct timeval){ 1, 0 });
    return 0;
}

/* Load the plugins' configuration only (carechatd -t). */
int cc_daemon_check(struct cc_server *s)
{
    struct cc_host_hooks hooks = { .host_key = host_key };
    int rc;

    cc_srv = s;
    cc_host_init(s->base, &hooks);
    rc = tls_start(s) < 0 || demo_start(s) < 0 ? -1 : load_plugins(s);
    struct cc_plugin_inst *ps[] = { &s->storage, &s->auth, &s->fanout,
                                    &s->notify_plugin };
    for (int i = 0; i < 4; i++) {
        if (ps[i]->desc)
            ps[i]->desc->destroy(ps[i]->inst);
        free(ps[i]->ctx);
        free(ps[i]->path);
        memset(ps[i], 0, sizeof *ps[i]);
    }
    return rc;
}

/* ----------------------------------------------------------- shutdown */

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct cc_server *s = arg;

    drain_ticks++;
    if (cc_conn_count() == 0 || drain_ticks * 50 >= SHUTDOWN_GRACE_MS) {
        if (cc_conn_count())
            cc_log(CC_LOG_WARN, "server", "%llu connections still open "
                   "after %d ms; exiting", (unsigned long long)cc_conn_count(),
                   SHUTDOWN_GRACE_MS);
        event_base_loopexit(s->base, NULL);
    }
}

void cc_daemon_shutdown(struct cc_server *s)
{
    struct timeval tv = { 0, 50000 };

    s->shutting_down = 1;
    cc_sd_notify_stopping();
    cc_listen_close();
    cc_conn_shutdown_all();
    drain_timer = event_new(s->base, -1, EV_PERSIST, drain_tick, s);
    event_add(drain_timer, &tv);
}

void cc_daemon_free(struct cc_server *s)
{
    cc_listen_close();
    cc_retention_stop();
    /* Workers first, and their last mail (a chat's last member leaving
     * unsubscribes it) while the fan-out plugin is still there. */
    cc_loops_stop();
    cc_loops_drain_main();
    /* What the grace period or a second signal left open goes now, while
     * storage can still answer what such a connection waits for. */
    for (unsigned i = 0; i < cc_n_loops; i++)
        cc_conn_close_all(cc_loops[i]);
    /* Notifications first: what is in flight ends, and its outcome is
     * recorded in storage (what is not goes out again after its lease).
     * Then storage: its stop() finishes the writes still queued, and
     * what they store is published through the fan-out plugin, which is
     * still there (then no more: neither plugin is called once gone). */
    cc_notifier_stop();
    cc_plugin_unload(&s->notify_plugin);
    cc_plugin_unload(&s->storage);
    cc_store_detach();
    cc_fanout_detach();
    cc_plugin_unload(&s->fanout);
    cc_plugin_unload(&s->auth);
    s->st = NULL;
    s->fo = NULL;
    s->au = NULL;
    cc_audit_stop(); /* the last events, leaves included, on disk */
    for (int i = 0; i < 3; i++)
        if (sig_events[i])
            event_free(sig_events[i]);
    if (drain_timer)
        event_free(drain_timer);
    if (tick_timer)
        event_free(tick_timer);
    cc_auth_free();
    cc_marks_free();
    cc_send_free();
    cc_route_free();
    cc_chatcache_free();
    cc_metrics_free();
    cc_host_shutdown();
    cc_loops_free();
    cc_log_flush_suppressed(1); /* no count is lost at exit */
    cc_server_settings_free(s);
    cc_tls_free();
    cc_www_free();
}
