/*
 * server.c - settings, plugins, signals, housekeeping, shutdown (see
 * server.h; the listeners are listen.c's).
 */
#include "server.h"
#include "audit.h"
#include "auth.h"
#include "chatcache.h"
#include "config.h"
#include "conn.h"
#include "hub.h"
#include "listen.h"
#include "metrics.h"
#include "retention.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "reload.h"
#include "www.h"

#include <carechat/auth.h>
#include <carechat/fanout.h>
#include <carechat/storage.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHUTDOWN_GRACE_MS 10000

struct cc_server *cc_srv;

static struct event *sig_events[3];
static struct event *drain_timer;
static struct event *tick_timer;   /* once a second: log summaries */
static uint64_t drain_ticks;

/* --------------------------------------------------------- settings */

enum kind { K_SIZE, K_DURATION, K_COUNT };

static const struct setting {
    const char *key;
    enum kind kind;
    size_t offset;
    uint64_t def, min, max;
    int restart;                  /* 1: a SIGHUP reload cannot apply it */
} settings[] = {
#define L(f) offsetof(struct cc_limits, f)
    { "max_header_size", K_SIZE, L(max_head), 16384, 1024, 1 << 20, 0 },
    { "max_body_size", K_SIZE, L(max_body), 65536, 1024, 64 << 20, 0 },
    { "max_message_size", K_SIZE, L(max_ws_message), 65536, 1024,
      64 << 20, 0 },
    { "max_content_length", K_COUNT, L(max_content_chars), 10000, 1,
      16 << 20, 0 },
    { "output_high_water", K_SIZE, L(out_high_water), 1 << 20, 4096,
      1ull << 32, 0 },
    { "request_timeout", K_DURATION, L(request_timeout_ms), 10000, 100,
      3600000, 0 },
    { "keepalive_timeout", K_DURATION, L(keepalive_timeout_ms), 60000, 100,
      3600000, 0 },
    { "ping_interval", K_DURATION, L(ping_interval_ms), 30000, 100,
      3600000, 0 },
    { "pong_timeout", K_DURATION, L(pong_timeout_ms), 10000, 100, 3600000, 0 },
    { "max_connections", K_COUNT, L(max_connections), 100000, 1, 10000000, 0 },
    { "max_connections_per_ip", K_COUNT, L(max_conns_per_ip), 0, 0,
      10000000, 0 },
    { "max_websockets_per_user", K_COUNT, L(max_ws_per_user), 20, 0,
      1000000, 0 },
    { "max_pending_handshakes", K_COUNT, L(max_handshakes), 1000, 1,
      10000000, 0 },
    { "message_rate", K_COUNT, L(message_rate), 0, 0, 1000000, 0 },
    { "message_burst", K_COUNT, L(message_burst), 20, 1, 1000000, 0 },
    { "threads", K_COUNT, L(threads), 1, 1, CC_LOOPS_MAX, 1 },
    { "chat_cache", K_COUNT, L(chat_cache), 65536, 0, 1 << 24, 1 },
#undef L
};

static const char *known_sections[] = { "server", "storage", "auth",
                                        "fanout", "audit" };
#define N_SECTIONS (sizeof known_sections / sizeof known_sections[0])

static int set_limit(struct cc_limits *lim, const struct setting *st,
                     const char *v, const char **why)
{
    uint64_t *dst = (uint64_t *)((char *)lim + st->offset);

    switch (st->kind) {
    case K_SIZE:
        return cc_conf_parse_size(v, st->min, st->max, dst, why);
    case K_DURATION:
        return cc_conf_parse_duration_ms(v, st->min, st->max, dst, why);
    default:
        return cc_conf_parse_u64(v, st->min, st->max, dst, why);
    }
}

/* The tls_* file and policy keys: 0 taken, -1 bad (*why set), 1 not a
 * TLS key. */
static int tls_key(struct cc_server *s, const struct cc_conf_entry *e,
                   const char **why)
{
    static const struct {
        const char *key;
        size_t off;
    } files[] = {
        { "tls_certificate", offsetof(struct cc_tls_conf, certificate) },
        { "tls_key", offsetof(struct cc_tls_conf, key) },
        { "tls_client_ca", offsetof(struct cc_tls_conf, client_ca) },
        { "tls_ciphers", offsetof(struct cc_tls_conf, ciphers) },
    };

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (strcmp(e->key, files[i].key) == 0) {
            char **dst = (char **)((char *)&s->tls + files[i].off);
            free(*dst);
            *dst = strdup(e->value);
            return 0;
        }
    if (strcmp(e->key, "tls_min_version") == 0) {
        if (strcmp(e->value, "1.2") && strcmp(e->value, "1.3")) {
            *why = "expected 1.2 or 1.3";
            return -1;
        }
        s->tls.min_version = e->value[2] == '3' ? 13 : 12;
        return 0;
    }
    if (strcmp(e->key, "tls_verify_client") == 0) {
        static const char *modes[] = { "off", "optional", "require" };
        for (int m = 0; m < 3; m++)
            if (strcmp(e->value, modes[m]) == 0) {
                s->tls.verify_client = m;
                return 0;
            }
        *why = "expected off, optional or require";
        return -1;
    }
    return 1;
}

/* Every address of a comma-separated list parses: 0, or -1. */
static int check_addr_list(const char *value)
{
    char *list = strdup(value), *save = NULL, *tok;
    int rc = 0;

    if (!list)
        abort();
    for (tok = strtok_r(list, ", ", &save); tok && rc == 0;
         tok = strtok_r(NULL, ", ", &save)) {
        struct sockaddr_storage ss;
        int len;
        rc = cc_listen_parse_addr(tok, &ss, &len);
    }
    free(list);
    return rc;
}

static int server_key(struct cc_server *s, const struct cc_conf_entry *e,
                      const char **why)
{
    size_t i;

    if (strcmp(e->key, "listen") == 0 ||
        strcmp(e->key, "tls_listen") == 0 ||
        strcmp(e->key, "admin_listen") == 0) {
        /* Check the addresses now, so that -t and file:line report them. */
        int tls = e->key[0] == 't';

        if (check_addr_list(e->value) < 0) {
            *why = "expected host:port, comma-separated (e.g. "
                   "127.0.0.1:8000 or [::1]:8000)";
            return -1;
        }
        if (e->key[0] == 'a') {
            free(s->admin_listen); /* empty: no admin listener */
            s->admin_listen = e->value[0] ? strdup(e->value) : NULL;
        } else if (tls) {
            free(s->tls_listen); /* empty: no TLS listener */
            s->tls_listen = e->value[0] ? strdup(e->value) : NULL;
        } else {
            free(s->listen);
            s->listen = strdup(e->value);
        }
        return 0;
    }
    if (strcmp(e->key, "allowed_origins") == 0) {
        free(s->allowed_origins);
        s->allowed_origins = e->value[0] ? strdup(e->value) : NULL;
        return 0;
    }
    if (tls_key(s, e, why) != 1)
        return *why ? -1 : 0;
    if (strcmp(e->key, "plugin_dir") == 0) {
        free(s->plugin_dir);
        s->plugin_dir = strdup(e->value);
        return 0;
    }
    if (strcmp(e->key, "demo") == 0)
        return cc_conf_parse_bool(e->value, &s->demo, why);
    if (strcmp(e->key, "demo_dir") == 0) {
        free(s->demo_dir);
        s->demo_dir = strdup(e->value);
        return 0;
    }
    if (strcmp(e->key, "log_level") == 0) {
        int lvl = cc_log_level_parse(e->value);
        if (lvl < 0) {
            *why = "expected error, warn, info or debug";
            return -1;
        }
        s->log_level = lvl;
        return 0;
    }
    for (i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (strcmp(e->key, settings[i].key) == 0)
            return set_limit(&s->lim, &settings[i], e->value, why);
    *why = "unknown key";
    return -1;
}

int cc_server_parse(struct cc_server *s, const struct cc_conf *conf)
{
    const struct cc_conf_section *sec;
    const struct cc_conf_entry *e;
    size_t i;

    for (i = 0; i < sizeof settings / sizeof settings[0]; i++)
        *(uint64_t *)((char *)&s->lim + settings[i].offset) = settings[i].def;
    s->log_level = CC_LOG_INFO;
    s->listen = strdup("127.0.0.1:8000");
    s->plugin_dir = strdup(CC_PLUGINDIR);
    for (sec = conf->sections; sec; sec = sec->next) {
        for (i = 0; i < N_SECTIONS; i++)
            if (strcmp(sec->name, known_sections[i]) == 0)
                break;
        if (i == N_SECTIONS) {
            cc_log(CC_LOG_ERROR, "config", "%s:%d: unknown section [%s] "
                   "(expected server, storage, auth, fanout or audit)",
                   conf->path, sec->line, sec->name);
            return -1;
        }
    }
    sec = cc_conf_section(conf, "server");
    for (e = sec ? sec->entries : NULL; e; e = e->next) {
        const char *why = NULL;
        if (server_key(s, e, &why) < 0) {
            cc_log(CC_LOG_ERROR, "config", "%s:%d: [server] %s: %s",
                   conf->path, e->line, e->key, why);
            return -1;
        }
    }
    if (cc_retention_parse(conf, &s->retention) < 0)
        return -1;
    return cc_audit_check(conf);
}

int cc_server_configure(struct cc_server *s, struct cc_conf *conf)
{
    s->conf = conf;
    if (cc_server_parse(s, conf) < 0 || cc_audit_configure(conf) < 0)
        return -1;
    cc_log_set_level(s->log_level);
    return 0;
}

void cc_server_settings_free(struct cc_server *s)
{
    free(s->listen);
    free(s->tls_listen);
    free(s->admin_listen);
    free(s->allowed_origins);
    free(s->tls.certificate);
    free(s->tls.key);
    free(s->tls.client_ca);
    free(s->tls.ciphers);
    free(s->plugin_dir);
    free(s->demo_dir);
}

const char *cc_server_limit(size_t i, size_t *offset, int *restart)
{
    if (i >= sizeof settings / sizeof settings[0])
        return NULL;
    *offset = settings[i].offset;
    *restart = settings[i].restart;
    return settings[i].key;
}

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
        load_one(s, CC_KIND_FANOUT, "fanout", "local", &s->fanout) < 0)
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
    cc_server_shutdown(s);
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

int cc_server_start(struct cc_server *s)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    struct cc_host_hooks hooks = {
        .auth_lookup = cc_auth_lookup,
        .auth_complete = cc_auth_complete,
        .fanout_deliver = host_fanout_deliver,
        .fanout_resync = cc_hub_resync,
    };
    char err[1024];

    cc_srv = s;
    signal(SIGPIPE, SIG_IGN);
    cc_host_init(s->base, &hooks);
    cc_loops_init(s->base);
    cc_chatcache_init((size_t)s->lim.chat_cache);
    if (tls_start(s) < 0 || demo_start(s) < 0 || cc_audit_start() < 0 ||
        load_plugins(s) < 0)
        return -1;
    s->st = cc_metrics_wrap_storage(s->st); /* timed (metrics.h) */
    if (cc_plugin_start(&s->storage, err, sizeof err) < 0 ||
        cc_plugin_start(&s->auth, err, sizeof err) < 0 ||
        cc_plugin_start(&s->fanout, err, sizeof err) < 0) {
        cc_log(CC_LOG_ERROR, "plugin", "%s", err);
        return -1;
    }
    if (cc_retention_start(s) < 0)
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

unsigned cc_server_storage_minor(void)
{
    return CC_ABI_MINOR_OF(cc_srv->storage.desc->abi_version);
}

int cc_server_client_id_ok(const char *client_id, const char **error)
{
    if (!client_id || !client_id[0] || cc_server_storage_minor() >= 2)
        return 1;
    *error = "client_id is not supported by this server's storage plugin";
    return 0;
}

/* Load the plugins' configuration only (carechatd -t). */
int cc_server_check(struct cc_server *s)
{
    struct cc_host_hooks hooks = { 0 };
    int rc;

    cc_srv = s;
    cc_host_init(s->base, &hooks);
    rc = tls_start(s) < 0 || demo_start(s) < 0 ? -1 : load_plugins(s);
    struct cc_plugin_inst *ps[] = { &s->storage, &s->auth, &s->fanout };
    for (int i = 0; i < 3; i++) {
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

void cc_server_shutdown(struct cc_server *s)
{
    struct timeval tv = { 0, 50000 };

    s->shutting_down = 1;
    cc_notify_stopping();
    cc_listen_close();
    cc_conn_shutdown_all();
    drain_timer = event_new(s->base, -1, EV_PERSIST, drain_tick, s);
    event_add(drain_timer, &tv);
}

void cc_server_free(struct cc_server *s)
{
    struct cc_plugin_inst *ps[] = { &s->fanout, &s->auth, &s->storage };

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
    /* Storage last: its stop() finishes queued writes. */
    for (int i = 0; i < 3; i++)
        cc_plugin_unload(ps[i]);
    s->fo = NULL;
    cc_audit_stop(); /* the last events, leaves included, on disk */
    for (int i = 0; i < 3; i++)
        if (sig_events[i])
            event_free(sig_events[i]);
    if (drain_timer)
        event_free(drain_timer);
    if (tick_timer)
        event_free(tick_timer);
    cc_auth_free();
    cc_chatcache_free();
    cc_metrics_free();
    cc_host_shutdown();
    cc_loops_free();
    cc_log_flush_suppressed(1); /* no count is lost at exit */
    cc_server_settings_free(s);
    cc_tls_free();
    cc_www_free();
}
