/*
 * server.c - the [server] settings and the running server's parts (see
 * server.h; starting and stopping them is daemon.c's).
 */
#include "server.h"
#include "audit.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "retention.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

struct cc_server *cc_srv;

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
    /* On by default, above anyone typing (send.c: per user). */
    { "message_rate", K_COUNT, L(message_rate), 10, 0, 1000000, 0 },
    { "message_burst", K_COUNT, L(message_burst), 50, 1, 1000000, 0 },
    { "threads", K_COUNT, L(threads), 1, 1, CC_LOOPS_MAX, 1 },
    { "chat_cache", K_COUNT, L(chat_cache), 65536, 0, 1 << 24, 1 },
    /* A year; 0 turns it off (seconds, or with a unit: 8760h). */
    { "hsts_max_age", K_DURATION, L(hsts_max_age_ms), 31536000000ull, 0,
      2ull * 31536000000ull, 0 },
    { "ws_ticket_lifetime", K_DURATION, L(ws_ticket_ms), 30000, 1000,
      300000, 0 },
#undef L
};

static const char *known_sections[] = { "server", "storage", "auth",
                                        "fanout", "audit", "notify" };
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
        rc = cc_conf_parse_addr(tok, &ss, &len);
    }
    free(list);
    return rc;
}

/* public_url = http(s)://host[:port][/path]: kept without a trailing
 * slash; empty: unset.  0, or -1 with *why. */
static int public_url(struct cc_server *s, const char *v, const char **why)
{
    const char *p = strncmp(v, "https://", 8) == 0 ? v + 8
                  : strncmp(v, "http://", 7) == 0  ? v + 7
                                                    : NULL;
    size_t n = strlen(v);
    struct cc_http_str host;

    free(s->public_url);
    s->public_url = NULL;
    if (!v[0])
        return 0;
    if (p)
        host = (struct cc_http_str){ p, strcspn(p, "/") };
    if (!p || !cc_http_host_valid(host) || strpbrk(v, "?#\\ \"<>'") ||
        strstr(p, "//")) {
        *why = "expected http(s)://host[:port][/path], e.g. "
               "https://chat.example.org";
        return -1;
    }
    while (n > 0 && v[n - 1] == '/')
        n--;
    s->public_url = strndup(v, n);
    if (!s->public_url)
        abort();
    return 0;
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
            free(s->admin_listen);
    free(s->public_url); /* empty: no admin listener */
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
    if (strcmp(e->key, "public_url") == 0)
        return public_url(s, e->value, why);
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

/* ----------------------------------------------------------- secrets */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);

    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A key that names a file holding a secret (any plugin's). */
static int secret_file_key(const char *name)
{
    return strcmp(name, "secret_file") == 0 ||
           strcmp(name, "password_file") == 0 ||
           strcmp(name, "conninfo_file") == 0 ||
           ends_with(name, "_secret_file") || ends_with(name, "_password_file");
}

/* A key whose value is a secret, or may carry one (a connection string
 * with a password). */
static int inline_secret(const char *name, const char *value)
{
    const char *at, *colon;

    if (!value[0])
        return 0;
    if (strcmp(name, "secret") == 0 || strcmp(name, "password") == 0 ||
        ends_with(name, "_secret") || ends_with(name, "_password"))
        return 1;
    if (strcmp(name, "conninfo") != 0)
        return 0;
    if (strstr(value, "password="))
        return 1;
    /* postgresql://user:password@host */
    colon = strstr(value, "://");
    at = colon ? strchr(colon + 3, '@') : NULL;
    return at && memchr(colon + 3, ':', (size_t)(at - colon - 3)) != NULL;
}

/* A secret other local users can read stops the start (and -t), as
 * OpenSSH refuses such a private key: a secret_file (password_file, ...)
 * readable or writable by others, or a secret written in a configuration
 * file others can read.  Returns 0, or -1 after logging file:line. */
static int check_secrets(const struct cc_conf *conf)
{
    const struct cc_conf_section *sec;
    const struct cc_conf_entry *e;
    struct stat st;
    int conf_open = stat(conf->path, &st) == 0 &&
                    (st.st_mode & (S_IROTH | S_IWOTH));
    mode_t conf_mode = st.st_mode & 07777;

    for (sec = conf->sections; sec; sec = sec->next)
        for (e = sec->entries; e; e = e->next) {
            if (secret_file_key(e->key) && e->value[0] &&
                stat(e->value, &st) == 0 &&
                (st.st_mode & (S_IROTH | S_IWOTH))) {
                cc_log(CC_LOG_ERROR, "config", "%s:%d: [%s] %s: %s can be "
                       "read by other users (mode %04o): chmod o-rwx %s",
                       conf->path, e->line, sec->name, e->key, e->value,
                       (unsigned)(st.st_mode & 07777), e->value);
                return -1;
            }
            if (conf_open && inline_secret(e->key, e->value)) {
                cc_log(CC_LOG_ERROR, "config", "%s:%d: [%s] %s: a secret "
                       "in a file other users can read (mode %04o): chmod "
                       "o-rwx %s, or keep the secret in a file of its own "
                       "(%s_file)", conf->path, e->line, sec->name, e->key,
                       (unsigned)conf_mode, conf->path, e->key);
                return -1;
            }
        }
    return 0;
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
                   "(expected server, storage, auth, fanout, audit or notify)",
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
    if (cc_retention_parse(conf, &s->retention) < 0 ||
        cc_notifier_parse(conf, &s->notify) < 0 || check_secrets(conf) < 0)
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
    free(s->public_url);
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

/* ----------------------------------------------------------- plugins */

static const char *const plugin_kinds[] = { "storage", "auth", "fanout",
                                            "notify" };

size_t cc_server_n_plugins(void)
{
    return sizeof plugin_kinds / sizeof plugin_kinds[0];
}

struct cc_plugin_inst *cc_server_plugin(size_t i, const char **kind)
{
    struct cc_plugin_inst *ps[] = { &cc_srv->storage, &cc_srv->auth,
                                    &cc_srv->fanout, &cc_srv->notify_plugin };

    if (kind)
        *kind = plugin_kinds[i];
    return ps[i];
}
