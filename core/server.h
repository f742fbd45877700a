/*
 * server.h - the running server's settings ([server] section) and parts
 * (the loaded plugins, the configuration, the shutdown flag).
 *
 * One server per process, reachable as cc_srv from the modules that need
 * its settings.  Data and parsing only: daemon.h starts and stops it, and
 * the plugins are called through store.h, fanout.h and auth.h, not
 * through these tables.  Loop 0 only, except the settings (lim), which
 * every loop reads and only a SIGHUP reload changes, on loop 0 (reload.c
 * says why a worker's read of them is safe).
 */
#ifndef CC_SERVER_H
#define CC_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "host.h"
#include "notifier.h"
#include "retention.h"
#include "tls.h"

struct event_base;
struct cc_conf;

struct cc_limits {
    uint64_t max_head;            /* request line + headers, bytes */
    uint64_t max_body;            /* REST body, bytes */
    uint64_t max_ws_message;      /* one WebSocket message, bytes */
    uint64_t max_content_chars;   /* chat message content, code points */
    uint64_t out_high_water;      /* unread output before disconnect */
    uint64_t request_timeout_ms;  /* to receive a whole request */
    uint64_t keepalive_timeout_ms;/* idle between requests */
    uint64_t ping_interval_ms;    /* idle WebSocket gets a ping */
    uint64_t pong_timeout_ms;     /* no answer to the ping: dropped */
    uint64_t max_connections;     /* process-wide */
    uint64_t max_conns_per_ip;    /* 0: no limit */
    uint64_t max_ws_per_user;     /* open WebSockets per user; 0: none */
    uint64_t max_handshakes;      /* WebSockets being authenticated */
    uint64_t message_rate;        /* chat messages/s per user; 0: none */
    uint64_t message_burst;       /* bucket size for message_rate */
    uint64_t threads;             /* event loops (see loop.h) */
    uint64_t chat_cache;          /* chats whose parties are kept */
    uint64_t hsts_max_age_ms;     /* TLS answers' HSTS; 0: none */
    uint64_t ws_ticket_ms;        /* a WebSocket ticket's lifetime */
};

struct cc_server {
    struct event_base *base;
    struct cc_conf *conf;
    struct cc_limits lim;
    char *listen;                 /* "addr:port[,addr:port...]" */
    char *tls_listen;             /* the same, for TLS; NULL: none */
    char *admin_listen;           /* /metrics, /readyz; NULL: none */
    char *public_url;             /* links' base, no trailing '/'; NULL:
                                   * the request's scheme and Host */
    struct cc_retention_conf retention; /* [storage] (retention.h) */
    struct cc_notifier_conf notify;     /* [notify] (notifier.h) */
    char *allowed_origins;        /* "a, b" or NULL: any Origin; read by
                                   * handshakes, on loop 0 only */
    int log_level;                /* [server] log_level, as parsed */
    struct cc_tls_conf tls;
    char *plugin_dir;
    int demo;                     /* [server] demo: the page at / */
    char *demo_dir;               /* its files; NULL: CC_WWWDIR */
    struct cc_plugin_inst storage, auth, fanout, notify_plugin;
    const struct cc_storage_api *st;
    const struct cc_fanout_api *fo;
    const struct cc_auth_api *au;
    int shutting_down;
    uint64_t n_conns;
    uint64_t next_id;             /* ids for connections and auth reqs */
};

extern struct cc_server *cc_srv;

/* Read and validate the section names and [server] of conf into s, over
 * the defaults, with no other effect (the log level is only stored):
 * what carechatd -t and a SIGHUP reload both accept.  Unknown keys and
 * bad values are errors with file:line.  conf is borrowed; s's strings
 * are s's (cc_server_settings_free).  Returns 0 or -1 after logging. */
int cc_server_parse(struct cc_server *s, const struct cc_conf *conf);

/* cc_server_parse, then keep conf (s->conf, the plugins' sections) and
 * apply the log level.  Start and -t.  Returns 0 or -1 after logging. */
int cc_server_configure(struct cc_server *s, struct cc_conf *conf);

/* Free the strings cc_server_parse set (not the plugins, not conf). */
void cc_server_settings_free(struct cc_server *s);

/* The i-th [server] limit: its key, its offset in struct cc_limits and
 * whether it needs a restart to change; NULL past the last one. */
const char *cc_server_limit(size_t i, size_t *offset, int *restart);

/* The loaded plugins, by index (0 .. cc_server_n_plugins() - 1), each
 * with its kind's section name ("storage", ...) in *kind (may be NULL). */
size_t cc_server_n_plugins(void);
struct cc_plugin_inst *cc_server_plugin(size_t i, const char **kind);

#endif
