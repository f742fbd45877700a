/*
 * sentinel.c - where the Redis master is, as Redis Sentinel says, after
 * Redis' guidelines for Sentinel clients (the "Sentinel client spec"):
 *
 *  - Lookup: the sentinels in turn, the last one that answered first,
 *    each with a short timeout (SENTINEL_TIMEOUT_MS), are asked SENTINEL
 *    get-master-addr-by-name; the one that answers moves to the front.
 *    Every (re)connect of a data link looks up again: an answer is never
 *    kept for the next one.  One lookup at a time serves every link
 *    waiting for it.
 *  - Check: a data link sends ROLE before anything else and is used only
 *    when the server says it is the master; otherwise it is dropped and
 *    the lookup runs again (a failover under way, a stale answer).
 *  - Follow: one more link (the watch) stays subscribed to
 *    +switch-master on a sentinel, so a failover moves both data links
 *    at once, not at their next error.  When the watch (re)connects it
 *    asks for the master first, in case a switch happened while it was
 *    away.  After a switch the subscriber resubscribes and the host
 *    resyncs from storage (redis.c), as after any reconnect.
 *
 * Addresses are numeric: hiredis 0.14 resolves a name with a blocking
 * getaddrinfo(), which would stop the loop; a sentinel that names the
 * master by host name (announce-hostnames yes) is refused, and the log
 * says so.  The sentinel password is sent with AUTH, never logged.
 * Loop thread only.
 */
#include "redis.h"

#include "pconf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------- config */

/* 1 when host is a numeric IPv4 or IPv6 address. */
static int numeric(const char *host)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

/* "host:port" or "[v6]:port", the n bytes at s, into *hp: 0, or -1 when
 * it is not one with a numeric host. */
static int parse_hostport(const char *s, size_t n, struct hostport *hp)
{
    const char *colon = NULL, *host = s;
    char port[8];
    size_t hlen;
    long p;

    for (size_t i = n; i > 0 && !colon; i--)
        if (s[i - 1] == ':')
            colon = s + i - 1;
    if (!colon || (size_t)(s + n - colon - 1) >= sizeof port)
        return -1;
    memcpy(port, colon + 1, (size_t)(s + n - colon - 1));
    port[s + n - colon - 1] = '\0';
    if (cc_pconf_long(port, 1, 65535, &p) < 0)
        return -1;
    hlen = (size_t)(colon - s);
    if (hlen > 2 && s[0] == '[' && colon[-1] == ']') {
        host = s + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= sizeof hp->host)
        return -1;
    memcpy(hp->host, host, hlen);
    hp->host[hlen] = '\0';
    hp->port = (int)p;
    return numeric(hp->host) ? 0 : -1;
}

/* `sentinels`: a comma-separated list. */
static int set_sentinels(struct rd *rd, const char *v)
{
    rd->n_sentinels = 0;
    while (*v) {
        size_t n, m;

        v += strspn(v, " \t");
        n = strcspn(v, ",");
        for (m = n; m > 0 && (v[m - 1] == ' ' || v[m - 1] == '\t'); m--)
            ;
        if (rd->n_sentinels == SENTINELS_MAX ||
            parse_hostport(v, m, &rd->sentinel[rd->n_sentinels]) < 0)
            return -1;
        rd->n_sentinels++;
        v += n;
        if (*v == ',')
            v++;
    }
    return rd->n_sentinels ? 0 : -1;
}

int rd_sentinel_key(struct rd *rd, const char *key, const char *value,
                    const char **reason)
{
    if (strcmp(key, "sentinels") == 0) {
        if (set_sentinels(rd, value) == 0)
            return CC_OK;
        rd->n_sentinels = 0;
        *reason = "expected ip:port or [ipv6]:port, comma-separated, at "
                  "most 16 (numeric: a host name would be looked up on "
                  "the event loop)";
        return CC_E_INVAL;
    }
    if (strcmp(key, "master_name") == 0) {
        if (!value[0] || strpbrk(value, " \t")) {
            *reason = "expected the name the sentinels monitor the master "
                      "under (sentinel monitor <name> ...)";
            return CC_E_INVAL;
        }
        free(rd->master_name);
        rd->master_name = strdup(value);
        return CC_OK;
    }
    if (strcmp(key, "sentinel_password") == 0 ||
        strcmp(key, "sentinel_password_file") == 0)
        return rd_set_password(&rd->sentinel_password, key, value,
                               "give one of sentinel_password and "
                               "sentinel_password_file", reason);
    return 1;
}

int rd_sentinel_check(struct rd *rd)
{
    const char *key = NULL, *why = NULL;

    if (rd->n_sentinels && rd->address_set) {
        key = "sentinels";
        why = "give either address (one Redis) or sentinels and "
              "master_name (Redis Sentinel), not both";
    } else if (rd->n_sentinels && !rd->master_name) {
        key = "sentinels";
        why = "needs master_name, the name the sentinels monitor the "
              "master under";
    } else if (!rd->n_sentinels && rd->master_name) {
        key = "master_name";
        why = "needs sentinels, the addresses of the sentinels to ask";
    } else if (!rd->n_sentinels && rd->sentinel_password) {
        key = rd->host->cfg_get(rd->ctx, "sentinel_password")
                  ? "sentinel_password" : "sentinel_password_file";
        why = "needs sentinels, the addresses of the sentinels to ask";
    }
    if (!why)
        return CC_OK;
    rd->host->cfg_error(rd->ctx, key, "%s", why);
    return CC_E_INVAL;
}

/* ---------------------------------------------------------- helpers */

static int same(const struct hostport *a, const struct hostport *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/* Move the sentinel at hp (if it is one of the list) to the front: it
 * is asked first next time. */
static void to_front(struct rd *rd, const struct hostport *hp)
{
    struct hostport s;

    for (size_t i = 1; i < rd->n_sentinels; i++)
        if (same(&rd->sentinel[i], hp)) {
            s = rd->sentinel[i];
            memmove(rd->sentinel + 1, rd->sentinel, i * sizeof s);
            rd->sentinel[0] = s;
            return;
        }
}

/* A sentinel's answer to get-master-addr-by-name: 1 with *hp, or 0 with
 * why (it does not know the master, an error, a host name). */
static int master_address(const struct rd *rd, const redisReply *reply,
                          struct hostport *hp, char *why, size_t n)
{
    long port;

    if (reply->type == REDIS_REPLY_NIL) {
        snprintf(why, n, "does not know master %s", rd->master_name);
        return 0;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, n, "%s", reply->str);
        return 0;
    }
    if (!rd_reply_strings(reply, 2) ||
        reply->element[0]->len >= sizeof hp->host ||
        cc_pconf_long(reply->element[1]->str, 1, 65535, &port) < 0) {
        snprintf(why, n, "gave an answer that is not an address");
        return 0;
    }
    if (!numeric(reply->element[0]->str)) {
        snprintf(why, n, "names the master by a host name (%.60s); "
                 "carechat needs an address (sentinel "
                 "announce-hostnames no)", reply->element[0]->str);
        return 0;
    }
    memcpy(hp->host, reply->element[0]->str, reply->element[0]->len + 1);
    hp->port = (int)port;
    return 1;
}

/* ---------------------------------------------------------- follow */

/* The master is at hp (a switch a sentinel announced, or one the watch
 * found on reconnect): every data link not already there or on its way
 * goes there now, without waiting for its backoff. */
static void follow(struct rd *rd, const struct hostport *hp,
                   const struct hostport *by)
{
    struct rconn *links[] = { &rd->pub, &rd->sub };

    if (!same(&rd->master, hp)) {
        rd->switches++;
        LOG(rd, CC_LOG_WARN, "sentinel %s:%d: master %s is %s:%d now "
            "(was %s:%d); moving there (switch %ld)", by->host, by->port,
            rd->master_name, hp->host, hp->port,
            rd->master.host[0] ? rd->master.host : "?", rd->master.port,
            rd->switches);
        rd->master = *hp;
    }
    for (size_t i = 0; i < 2; i++) {
        struct rconn *c = links[i];

        if (c->ac && same(&c->to, hp))
            continue;   /* there, or connecting there */
        rd_conn_reset(c);
        rd_conn_open(c, hp->host, hp->port, NULL);
    }
}

/* ---------------------------------------------------------- lookup */

static void ask_next(struct rd *rd);

/* No sentinel answered: the waiting links retry with backoff (and look
 * up again then); one log line for the first and every 20th lookup. */
static void lookup_failed(struct rd *rd)
{
    struct rconn *links[] = { &rd->pub, &rd->sub };

    rd->lookups_failed++;
    if (rd->lookups_failed == 1 || rd->lookups_failed % 20 == 0)
        LOG(rd, CC_LOG_WARN, "no sentinel said where master %s is (%zu "
            "asked, lookup %ld in a row; last: %s); retrying",
            rd->master_name, rd->n_sentinels, rd->lookups_failed,
            rd->ask_why);
    for (size_t i = 0; i < 2; i++)
        if (links[i]->waiting) {
            links[i]->waiting = 0;
            rd_conn_failed(links[i], NULL);
        }
}

/* The lookup found the master at hp: the waiting links go there.  An
 * answer nobody waits for any more (a switch came first) is dropped. */
static void master_found(struct rd *rd, const struct hostport *hp,
                         const struct hostport *by)
{
    struct rconn *links[] = { &rd->pub, &rd->sub };

    if (!links[0]->waiting && !links[1]->waiting)
        return;
    rd->lookups_failed = 0;
    if (rd->master.host[0] && !same(&rd->master, hp)) {
        rd->switches++;
        LOG(rd, CC_LOG_WARN, "sentinel %s:%d: master %s is %s:%d now "
            "(was %s:%d; switch %ld)", by->host, by->port, rd->master_name,
            hp->host, hp->port, rd->master.host, rd->master.port,
            rd->switches);
    }
    rd->master = *hp;
    for (size_t i = 0; i < 2; i++)
        if (links[i]->waiting) {
            links[i]->waiting = 0;
            rd_conn_open(links[i], hp->host, hp->port, NULL);
        }
}

static void on_query_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct rconn *c = ac->data;
    struct rd *rd = c->rd;
    struct hostport hp, by = c->to;
    char why[160];

    (void)priv;
    if (!reply || c->ac != ac)
        return;
    if (!master_address(rd, reply, &hp, why, sizeof why)) {
        rd_conn_drop(c, why);
        return;
    }
    to_front(rd, &by);
    rd_conn_reset(c);   /* hiredis frees it when this returns */
    master_found(rd, &hp, &by);
}

/* Ask sentinel number rd->asking, or give up after the last. */
static void ask_next(struct rd *rd)
{
    const struct hostport *s;

    if (rd->asking >= rd->n_sentinels) {
        lookup_failed(rd);
        return;
    }
    s = &rd->sentinel[rd->asking];
    rd_conn_open(&rd->query, s->host, s->port, NULL);
}

void rd_sentinel_resolve(struct rconn *c)
{
    struct rd *rd = c->rd;

    c->waiting = 1;
    if (rd->query.ac)
        return;     /* a lookup is under way: it answers c too */
    rd->asking = 0;
    ask_next(rd);
}

/* ----------------------------------------------------------- watch */

static void on_watch_addr(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct rconn *c = ac->data;
    struct rd *rd = c->rd;
    struct hostport hp;
    char why[160];

    (void)priv;
    if (!reply || c->ac != ac)
        return;
    if (!master_address(rd, reply, &hp, why, sizeof why)) {
        rd_conn_drop(c, why);   /* no use watching this one */
        return;
    }
    /* Before the first lookup answered there is nothing to compare. */
    if (rd->master.host[0] && !same(&rd->master, &hp))
        follow(rd, &hp, &c->to);
}

/* "+switch-master <name> <old ip> <old port> <new ip> <new port>" */
static void on_switch(struct rd *rd, struct rconn *c, const char *msg)
{
    char name[256], old_host[HOST_LEN], host[HOST_LEN];
    struct hostport hp;
    int old_port, port;

    if (sscanf(msg, "%255s %45s %d %45s %d", name, old_host, &old_port,
               host, &port) != 5 ||
        strcmp(name, rd->master_name) != 0)
        return;
    if (!numeric(host) || port < 1 || port > 65535) {
        LOG(rd, CC_LOG_WARN, "sentinel %s:%d announced master %s at "
            "%.60s:%d, not an address carechat can use (sentinel "
            "announce-hostnames no)", c->to.host, c->to.port, name, host,
            port);
        return;
    }
    snprintf(hp.host, sizeof hp.host, "%s", host);
    hp.port = port;
    to_front(rd, &c->to);   /* it knows the new master */
    follow(rd, &hp, &c->to);
}

static void on_watch_msg(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct rconn *c = ac->data;
    struct rd *rd = c->rd;

    (void)priv;
    if (!reply || c->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        rd_conn_drop(c, reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "subscribe") == 0) {
        rd_conn_settle(c);
        c->ready = 1;
        if (c->failures || !c->was_ready)
            LOG(rd, CC_LOG_INFO, "following failovers of master %s "
                "through sentinel %s:%d", rd->master_name, c->to.host,
                c->to.port);
        c->was_ready = 1;
        c->failures = 0;
        c->backoff_ms = 0;
    } else if (strcmp(reply->element[0]->str, "message") == 0 &&
               rd_reply_strings(reply, 3)) {
        on_switch(rd, c, reply->element[2]->str);
    }
}

void rd_sentinel_start(struct rd *rd)
{
    const struct hostport *s = &rd->sentinel[rd->watch_at %
                                             rd->n_sentinels];

    rd_conn_open(&rd->watch, s->host, s->port, NULL);
}

/* ------------------------------------------------------ the links */

static void on_role_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct rconn *c = ac->data;
    char why[160];

    (void)priv;
    if (!reply || c->ac != ac)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "master") == 0) {
        rd_conn_ready(c);
        return;
    }
    snprintf(why, sizeof why, "%s:%d is not the master (ROLE: %.40s); "
             "asking the sentinels again", c->to.host, c->to.port,
             reply->type == REDIS_REPLY_ERROR ? reply->str
             : reply->type == REDIS_REPLY_ARRAY && reply->elements &&
               reply->element[0]->type == REDIS_REPLY_STRING
                 ? reply->element[0]->str : "?");
    rd_conn_drop(c, why);
}

void rd_sentinel_setup(struct rconn *c)
{
    struct rd *rd = c->rd;

    switch (c->kind) {
    case K_QUERY:
        redisAsyncCommand(c->ac, on_query_reply, NULL,
                          "SENTINEL get-master-addr-by-name %s",
                          rd->master_name);
        break;
    case K_WATCH:
        redisAsyncCommand(c->ac, on_watch_addr, NULL,
                          "SENTINEL get-master-addr-by-name %s",
                          rd->master_name);
        redisAsyncCommand(c->ac, on_watch_msg, NULL,
                          "SUBSCRIBE +switch-master");
        break;
    default:
        redisAsyncCommand(c->ac, on_role_reply, NULL, "ROLE");
        break;
    }
}

/* Where sentinel hp is in the list, or -1. */
static long index_of(const struct rd *rd, const struct hostport *hp)
{
    for (size_t i = 0; i < rd->n_sentinels; i++)
        if (same(&rd->sentinel[i], hp))
            return (long)i;
    return -1;
}

void rd_sentinel_lost(struct rconn *c, const char *why)
{
    struct rd *rd = c->rd;

    c->ac = NULL;
    c->ready = 0;
    if (rd->stopping)
        return;
    if (c->kind == K_QUERY) {
        snprintf(rd->ask_why, sizeof rd->ask_why, "%s:%d: %s",
                 c->to.host, c->to.port, why ? why : "lost");
        rd->asking++;
        ask_next(rd);
        return;
    }
    /* The watch: the next sentinel at once; after a round, a backoff. */
    c->failures++;
    if (c->failures == 1 || c->failures % 20 == 0)
        LOG(rd, CC_LOG_WARN, "sentinel %s:%d: %s; following failovers "
            "through the next sentinel (attempt %d)", c->to.host,
            c->to.port, why ? why : "lost", c->failures);
    rd->watch_at = (size_t)(index_of(rd, &c->to) + 1) % rd->n_sentinels;
    if (c->failures % (int)rd->n_sentinels == 0)
        rd_conn_retry(c);
    else
        rd_sentinel_start(rd);
}

/* ------------------------------------------------------- lifecycle */

void rd_sentinel_stop(struct rd *rd)
{
    rd_conn_reset(&rd->query);
    rd_conn_reset(&rd->watch);
}

void rd_sentinel_free(struct rd *rd)
{
    free(rd->master_name);
    free(rd->sentinel_password);
}

void rd_sentinel_metrics(struct rd *rd, cc_metric_cb emit, void *arg)
{
    if (!rd->n_sentinels)
        return;
    emit(arg, "redis_sentinel_watching", "1 while subscribed to "
         "+switch-master on a sentinel.", CC_METRIC_GAUGE,
         rd->watch.ready);
    emit(arg, "redis_master_switches_total", "Master changes followed "
         "(Sentinel failovers).", CC_METRIC_COUNTER, (double)rd->switches);
}
