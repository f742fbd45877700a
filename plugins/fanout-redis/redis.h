/*
 * redis.h - what the redis fan-out plugin's two files share (not
 * installed): the plugin's state, its hiredis links on the host's loop,
 * and the calls between redis.c (config, pub/sub, order, links) and
 * sentinel.c (where the master is, when Redis Sentinel says so).
 *
 * Everything here runs on the loop thread; nothing blocks it.  A link's
 * hiredis context is owned by the link (c->ac) until the link lets it go
 * (rd_conn_drop, rd_conn_reset, a disconnect): then hiredis frees it, and any
 * callback still to come for it finds c->ac != ac and does nothing.
 */
#ifndef CC_REDIS_H
#define CC_REDIS_H

#include <carechat/fanout.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#define ID_LEN 36
#define NODE_LEN 16
#define HOST_LEN 46             /* INET6_ADDRSTRLEN: a numeric address */
#define SENTINELS_MAX 16
/* One sentinel's answer (connect and reply): Redis' client guidelines
 * ask for a short timeout, a few hundred milliseconds. */
#define SENTINEL_TIMEOUT_MS 500
/* A Redis link from connect to ready (AUTH, SELECT, ROLE answered):
 * hiredis 0.14 has no timeouts of its own. */
#define CONNECT_TIMEOUT_MS 2000

struct rd;

/* The kinds of link. */
enum { K_PUB, K_SUB, K_QUERY, K_WATCH };

struct hostport {
    char host[HOST_LEN];        /* numeric; "" when unset */
    int port;
};

/* One link to Redis or to a sentinel, and its reconnection. */
struct rconn {
    struct rd *rd;
    const char *name;           /* "publisher", "subscriber", ... */
    int kind;                   /* K_* */
    redisAsyncContext *ac;      /* NULL while not connected */
    struct hostport to;         /* where ac goes (TCP) */
    int ready;                  /* usable (data links: ROLE said master) */
    int was_ready;              /* for "reconnected" vs "connected" */
    int waiting;                /* a data link waiting for the sentinels */
    int backoff_ms;
    int failures;               /* in a row, since it was last ready */
    uint64_t lost_ns;           /* when it was last lost (mono) */
    cc_timer *retry;
    cc_timer *deadline;         /* connect or answer timeout */
};

struct rd {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    /* config */
    char *addr_host;
    int port;
    char *unix_path;
    int address_set;            /* `address` was given */
    char *password;
    long db;
    char *prefix;
    long reorder_ms;
    long reorder_max;
    long max_inflight;
    long backoff_max_ms;
    /* Sentinel (sentinel.c): none when n_sentinels is 0 */
    struct hostport sentinel[SENTINELS_MAX]; /* the last to answer first */
    size_t n_sentinels;
    char *master_name;
    char *sentinel_password;
    struct rconn query;         /* asks where the master is */
    struct rconn watch;         /* follows +switch-master */
    size_t asking;              /* the sentinel the query asks */
    size_t watch_at;            /* the sentinel the watch tries next */
    char ask_why[160];          /* the last sentinel's failure */
    long lookups_failed;        /* lookups in a row no sentinel answered */
    long switches;              /* master changes followed */
    struct hostport master;     /* where the sentinels last said */
    /* state */
    char node[NODE_LEN + 1];
    struct rconn pub, sub;
    long inflight;
    long dropped;              /* publishes skipped since the last log */
    char *cmd;                 /* the PUBLISH being formatted (reused) */
    size_t cmd_size;
    struct chan **table;
    size_t n_buckets, n_chans;
    size_t resub_pending;      /* SUBSCRIBEs after a reconnect, unanswered */
    int stopping;
};

#define LOG(rd, lvl, ...) (rd)->host->log((rd)->ctx, lvl, __VA_ARGS__)

/* ---------------------------------------------------------- redis.c */

/* Open c to host:port (a numeric address, or any name in `address`
 * mode) or to the unix socket path, queue its setup commands and arm
 * its deadline.  A failure, now or later, goes to the link's kind:
 * rd_conn_failed (data), rd_sentinel_lost (query, watch). */
void rd_conn_open(struct rconn *c, const char *host, int port,
                  const char *path);

/* Let go of c's context now, from anywhere on the loop (hiredis frees
 * it, at once or when its callback returns), then report the link lost
 * with why (NULL: lost quietly, nothing logged). */
void rd_conn_drop(struct rconn *c, const char *why);

/* Let go of c's context and timers without reporting anything: the
 * caller opens it again (a master switch). */
void rd_conn_reset(struct rconn *c);

/* c answered in time: its deadline is off. */
void rd_conn_settle(struct rconn *c);

/* A data link can be used: log it, and (subscriber) subscribe. */
void rd_conn_ready(struct rconn *c);

/* A data link failed: retry with backoff, the log bounded (the first
 * failure and every 20th; why NULL: none). */
void rd_conn_failed(struct rconn *c, const char *why);

/* Retry c after its backoff (doubling, at most reconnect_max). */
void rd_conn_retry(struct rconn *c);

/* *dst = the secret in value (key ends in "_file": the file's content),
 * once: CC_OK, or CC_E_INVAL with *reason (conflict when *dst is set
 * already).  Never logged. */
int rd_set_password(char **dst, const char *key, const char *value,
                    const char *conflict, const char **reason);

/* 1 when reply is an array of n strings. */
int rd_reply_strings(const redisReply *reply, size_t n);

/* ------------------------------------------------------- sentinel.c */

/* A key of [fanout] that is sentinel.c's: CC_OK or CC_E_INVAL (with
 * *reason), or 1 when key is not one of them. */
int rd_sentinel_key(struct rd *rd, const char *key, const char *value,
                    const char **reason);

/* After every key was read: the keys that go together, or CC_E_INVAL
 * after host->cfg_error said which and why. */
int rd_sentinel_check(struct rd *rd);

/* Start following the sentinels (watch link); rd->n_sentinels > 0. */
void rd_sentinel_start(struct rd *rd);

/* Data link c wants the master's address: asked of the sentinels (one
 * lookup serves every link waiting), then c is opened there. */
void rd_sentinel_resolve(struct rconn *c);

/* Queue the setup commands of c: AUTH for a sentinel link and its
 * question; ROLE for a data link, whose answer makes it ready. */
void rd_sentinel_setup(struct rconn *c);

/* A query or watch link was lost (rd_conn_open's failure path). */
void rd_sentinel_lost(struct rconn *c, const char *why);

/* Stop (timers, contexts) and free what the keys allocated. */
void rd_sentinel_stop(struct rd *rd);
void rd_sentinel_free(struct rd *rd);

/* The Sentinel samples of GET /metrics (none without sentinels). */
void rd_sentinel_metrics(struct rd *rd, cc_metric_cb emit, void *arg);

#endif
