/*
 * reload.c - SIGHUP reload (see reload.h).
 *
 * Why a worker loop may read cc_srv->lim while loop 0 changes it: each
 * limit is one aligned uint64_t, stored here with one relaxed atomic
 * store, so a reader sees the old value or the new one, never a mix of
 * their bytes.  That holds where a uint64_t is one machine word; where it
 * is not (32-bit targets) and workers run, limits are left for a restart
 * instead.  Limits are checked one by one (no limit's validity depends on
 * another's), so a reader that sees some new values and some old ones for
 * a moment sees a valid combination.  allowed_origins is read by
 * handshakes, which run on loop 0 like this code, so swapping its pointer
 * here races with nothing.  The log level is an int read and stored
 * atomically (log.c).
 */
#include "reload.h"
#include "config.h"
#include "listen.h"
#include "log.h"
#include "loop.h"
#include "sdnotify.h"
#include "server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A comma-separated list of key names, cut short (with "...") when it
 * would not fit: it is for a log line. */
struct keys {
    char buf[512];
    size_t n;
};

static void keys_add(struct keys *k, const char *key)
{
    int r = snprintf(k->buf + k->n, sizeof k->buf - k->n, "%s%s",
                     k->n ? ", " : "", key);

    if (r < 0 || (size_t)r >= sizeof k->buf - k->n) {
        memcpy(k->buf + sizeof k->buf - 4, "...", 4);
        k->n = sizeof k->buf - 1;
        return;
    }
    k->n += (size_t)r;
}

static int str_differs(const char *a, const char *b)
{
    return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

/* 1 when the section called name has other keys or values in a than in
 * b (order counts: the last value of a key wins). */
static int section_differs(const struct cc_conf *a, const struct cc_conf *b,
                           const char *name)
{
    const struct cc_conf_section *sa = cc_conf_section(a, name);
    const struct cc_conf_section *sb = cc_conf_section(b, name);
    const struct cc_conf_entry *ea = sa ? sa->entries : NULL;
    const struct cc_conf_entry *eb = sb ? sb->entries : NULL;

    for (; ea && eb; ea = ea->next, eb = eb->next)
        if (strcmp(ea->key, eb->key) || strcmp(ea->value, eb->value))
            return 1;
    return ea != NULL || eb != NULL;
}

/* The keys that changed but are only read at start. */
static void needs_restart(const struct cc_server *s,
                          const struct cc_server *nw,
                          const struct cc_conf *conf, struct keys *k)
{
    static const char *sections[] = { "storage", "auth", "fanout",
                                      "audit" };
    const struct {
        const char *key;
        const char *was, *is;
    } strs[] = {
        { "listen", s->listen, nw->listen },
        { "tls_listen", s->tls_listen, nw->tls_listen },
        { "admin_listen", s->admin_listen, nw->admin_listen },
        { "tls_certificate", s->tls.certificate, nw->tls.certificate },
        { "tls_key", s->tls.key, nw->tls.key },
        { "tls_client_ca", s->tls.client_ca, nw->tls.client_ca },
        { "tls_ciphers", s->tls.ciphers, nw->tls.ciphers },
        { "plugin_dir", s->plugin_dir, nw->plugin_dir },
        { "demo_dir", s->demo_dir, nw->demo_dir },
    };
    char name[32];

    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (str_differs(strs[i].was, strs[i].is))
            keys_add(k, strs[i].key);
    if (s->tls.min_version != nw->tls.min_version)
        keys_add(k, "tls_min_version");
    if (s->tls.verify_client != nw->tls.verify_client)
        keys_add(k, "tls_verify_client");
    if (s->demo != nw->demo)
        keys_add(k, "demo");
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        if (section_differs(s->conf, conf, sections[i])) {
            snprintf(name, sizeof name, "[%s]", sections[i]);
            keys_add(k, name);
        }
}

/* max_connections is cut to what the open-file limit leaves, as at
 * start. */
static uint64_t fit_connections(uint64_t want)
{
    uint64_t room = cc_listen_connection_room();

    if (want <= room)
        return want;
    cc_log(CC_LOG_WARN, "config", "reload: max_connections = %llu does "
           "not fit the open-file limit: at most %llu connections",
           (unsigned long long)want, (unsigned long long)room);
    return room;
}

/* Store the reloadable limits of nw that differ; the others, and all of
 * them where a torn read could happen, go to *restart. */
static void apply_limits(struct cc_server *s, struct cc_server *nw,
                         struct keys *applied, struct keys *restart)
{
    int torn = sizeof(void *) < sizeof(uint64_t) && cc_n_loops > 1;
    size_t off;
    int needs;
    const char *key;

    nw->lim.max_connections = fit_connections(nw->lim.max_connections);
    for (size_t i = 0; (key = cc_server_limit(i, &off, &needs)); i++) {
        uint64_t *dst = (uint64_t *)((char *)&s->lim + off);
        uint64_t v = *(uint64_t *)((char *)&nw->lim + off);

        if (*dst == v)
            continue;
        if (needs || torn) {
            keys_add(restart, key);
            continue;
        }
        __atomic_store_n(dst, v, __ATOMIC_RELAXED);
        keys_add(applied, key);
    }
}

int cc_reload_settings(struct cc_server *s)
{
    struct cc_server nw = { 0 };
    struct cc_conf *conf;
    struct keys applied = { .n = 0 }, restart = { .n = 0 };
    char err[1024];

    if (cc_conf_load(s->conf->path, &conf, err, sizeof err) < 0) {
        cc_log(CC_LOG_ERROR, "config", "reload: %s; keeping all current "
               "settings", err);
        return -1;
    }
    if (cc_server_parse(&nw, conf) < 0) {
        cc_log(CC_LOG_ERROR, "config", "reload: %s refused (see above); "
               "keeping all current settings", conf->path);
        cc_server_settings_free(&nw);
        cc_conf_free(conf);
        return -1;
    }
    needs_restart(s, &nw, conf, &restart);
    apply_limits(s, &nw, &applied, &restart);
    if (nw.log_level != cc_log_level()) {
        cc_log_set_level(nw.log_level);
        keys_add(&applied, "log_level");
    }
    if (str_differs(s->allowed_origins, nw.allowed_origins)) {
        char *was = s->allowed_origins;
        s->allowed_origins = nw.allowed_origins;
        nw.allowed_origins = was;
        keys_add(&applied, "allowed_origins");
    }
    if (str_differs(s->public_url, nw.public_url)) { /* loop 0's too */
        char *was = s->public_url;
        s->public_url = nw.public_url;
        nw.public_url = was;
        keys_add(&applied, "public_url");
    }
    cc_log(CC_LOG_INFO, "config", "reloaded %s: %s%s", conf->path,
           applied.n ? "applied " : "no change applied",
           applied.buf);
    if (restart.n)
        cc_log(CC_LOG_WARN, "config", "reload: changed but only applied "
               "by a restart: %s", restart.buf);
    /* The plugins keep the file they were started with: their sections
     * point into it. */
    cc_server_settings_free(&nw);
    cc_conf_free(conf);
    return 0;
}

/* The certificate, from the files named at start. */
static void reload_tls(struct cc_server *s)
{
    char err[512];

    if (!s->tls_listen)
        return;
    if (cc_tls_load(&s->tls, err, sizeof err) == 0)
        cc_log(CC_LOG_INFO, "tls", "certificate reloaded from %s",
               s->tls.certificate);
    else
        cc_log(CC_LOG_ERROR, "tls", "reload failed, keeping the current "
               "certificate: %s", err);
}

void cc_reload(struct cc_server *s)
{
    struct cc_plugin_inst *ps[] = { &s->storage, &s->auth, &s->fanout };

    cc_sd_notify_reloading();
    cc_log(CC_LOG_INFO, "server", "SIGHUP: reloading the configuration, "
           "certificate and plugins");
    cc_reload_settings(s);
    reload_tls(s);
    for (int i = 0; i < 3; i++)
        if (ps[i]->desc->reload)
            ps[i]->desc->reload(ps[i]->inst);
    cc_sd_notify_reloaded();
}
