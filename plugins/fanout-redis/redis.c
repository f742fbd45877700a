/*
 * redis.c - the fan-out plugin `redis`: one conversation across several
 * carechatd nodes, through Redis pub/sub (hiredis, async, on the host's
 * event loop through host->watch_fd; no thread, no libevent coupling).
 *
 * Channels: one per chat, "<prefix><chat id>".  A node subscribes only to
 * the chats it has local connections for, so Redis sends each message
 * only to the nodes that can use it; a sharded scheme (N channels, every
 * node on all) would make every node receive and drop every message.
 * Redis keeps per-channel subscriptions cheaply, and chats per node are
 * bounded by its connections.
 *
 * Payload: "<node id> <seq> <encoded message>".  The encoded message is
 * the exact JSON the host delivers, so receivers neither re-encode nor
 * read storage.  A node delivers its own messages at once (no round trip
 * through Redis, and they still arrive when Redis is down) and ignores
 * their echo.
 *
 * Order (DESIGN invariant 2): storage gives each message of a chat the
 * next seq, but two nodes may publish in the other order, and a local
 * delivery can race a remote one.  Every delivery to a subscribed chat
 * therefore goes through a small per-chat sequencer: in-order messages
 * pass at once, one that comes early waits (at most `reorder_window` ms,
 * at most `reorder_max` messages) for the gap to fill, then everything
 * waiting is delivered in seq order.  A gap that never fills (a message
 * whose node could not publish) costs one window, once; so does the
 * first message after a node subscribes to a chat, since where the
 * chat's sequence stands is learnt from it.
 *
 * Outage: two connections (publish, subscribe), each reconnected with
 * exponential backoff and logged; the subscriber resubscribes every local
 * chat on reconnect.  While Redis is away, local deliveries go on and
 * nothing is buffered for Redis (publishes in flight are capped by
 * `max_inflight`).  Once every chat is subscribed again, the plugin asks
 * the host to resync (ABI 1.2): the host reads what this node's clients
 * missed from storage and delivers it, in order, once.  A gap noticed in
 * a chat's sequence is filled by the host the same way.  hiredis 0.14 has
 * no timeouts: a link not ready CONNECT_TIMEOUT_MS after it was opened is
 * dropped and tried again.
 *
 * Where Redis is: `address`, or (sentinel.c) the master that Redis
 * Sentinel names, looked up again on every reconnect and followed at
 * once when a failover switches it; after a switch the same resync
 * delivers what the node's clients missed.
 */
#include "redis.h"

#include "pconf.h"
#include "strhash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PASSWORD_MAX 1024       /* bytes of a password_file */

/* A message waiting for a gap in its chat's sequence to fill. */
struct pend {
    int64_t seq;
    size_t len;
    char *payload;
};

struct chan {
    struct rd *rd;
    char id[ID_LEN + 1];
    int64_t next_seq;          /* 0: not known yet */
    struct pend *pend;         /* sorted by seq */
    size_t n_pend, cap_pend;
    cc_timer *gap;
    struct chan *next;         /* hash chain */
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        abort();
    return p;
}

/* ----------------------------------------------------------- config */

/* "host:port", "[v6]:port", "unix:/path" or "/path". */
static int set_address(struct rd *rd, const char *v)
{
    const char *colon;
    long port;

    free(rd->addr_host);
    free(rd->unix_path);
    rd->addr_host = rd->unix_path = NULL;
    if (strncmp(v, "unix:", 5) == 0 || v[0] == '/') {
        rd->unix_path = strdup(v[0] == '/' ? v : v + 5);
        return rd->unix_path[0] ? 0 : -1;
    }
    colon = strrchr(v, ':');
    if (!colon || colon == v || cc_pconf_long(colon + 1, 1, 65535, &port) < 0)
        return -1;
    if (v[0] == '[' && colon[-1] == ']')
        rd->addr_host = strndup(v + 1, (size_t)(colon - v - 2));
    else
        rd->addr_host = strndup(v, (size_t)(colon - v));
    rd->port = (int)port;
    return 0;
}

int rd_set_password(char **dst, const char *key, const char *value,
                    const char *conflict, const char **reason)
{
    size_t n = strlen(key);
    int from_file = n > 5 && strcmp(key + n - 5, "_file") == 0;
    char *pw = from_file ? cc_pconf_read_secret(value, PASSWORD_MAX, NULL,
                                                reason)
                         : strdup(value);

    if (!pw || !pw[0]) {
        if (pw)
            *reason = "is empty";
        free(pw);
        return CC_E_INVAL;
    }
    if (*dst) {
        free(pw);
        *reason = conflict;
        return CC_E_INVAL;
    }
    *dst = pw;
    return CC_OK;
}

static int cfg_key(void *arg, const char *key, const char *value,
                   const char **reason)
{
    struct rd *rd = arg;
    static const struct {
        const char *key;
        long min, max;
        size_t off;
        const char *reason;
    } nums[] = {
        { "db", 0, 1000000, offsetof(struct rd, db),
          "expected a database number" },
        { "reorder_window", 0, 10000, offsetof(struct rd, reorder_ms),
          "expected milliseconds, 0 to 10000" },
        { "reorder_max", 1, 1000000, offsetof(struct rd, reorder_max),
          "expected a number from 1 to 1000000" },
        { "max_inflight", 1, 10000000, offsetof(struct rd, max_inflight),
          "expected a number from 1 to 10000000" },
        { "reconnect_max", 100, 600000, offsetof(struct rd, backoff_max_ms),
          "expected milliseconds, 100 to 600000" },
    };
    int rc;

    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (strcmp(key, nums[i].key) == 0) {
            if (cc_pconf_long(value, nums[i].min, nums[i].max,
                           (long *)((char *)rd + nums[i].off)) < 0) {
                *reason = nums[i].reason;
                return CC_E_INVAL;
            }
            return CC_OK;
        }
    if ((rc = rd_sentinel_key(rd, key, value, reason)) != 1)
        return rc;
    if (strcmp(key, "address") == 0) {
        if (set_address(rd, value) < 0) {
            *reason = "expected host:port, [v6]:port or unix:/path";
            return CC_E_INVAL;
        }
        rd->address_set = 1;
    } else if (strcmp(key, "password") == 0 ||
               strcmp(key, "password_file") == 0) {
        return rd_set_password(&rd->password, key, value,
                               "give one of password and password_file",
                               reason);
    } else if (strcmp(key, "channel_prefix") == 0) {
        free(rd->prefix);
        rd->prefix = strdup(value);
    } else {
        *reason = "unknown key (redis takes address or sentinels and "
                  "master_name, password, password_file, "
                  "sentinel_password, sentinel_password_file, db, "
                  "channel_prefix, reorder_window, reorder_max, "
                  "max_inflight, reconnect_max)";
        return CC_E_INVAL;
    }
    return CC_OK;
}

static void rd_free(struct rd *rd)
{
    rd_sentinel_free(rd);
    free(rd->addr_host);
    free(rd->unix_path);
    free(rd->password);
    free(rd->prefix);
    free(rd->cmd);
    free(rd->table);
    free(rd);
}

static int rd_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct rd *rd = xcalloc(1, sizeof *rd);
    unsigned char rnd[NODE_LEN / 2];

    rd->host = host;
    rd->ctx = ctx;
    rd->reorder_ms = 100;
    rd->reorder_max = 1000;
    rd->max_inflight = 10000;
    rd->backoff_max_ms = 1000;
    rd->prefix = strdup("carechat:chat:");
    set_address(rd, "127.0.0.1:6379");
    if (host->cfg_iter(ctx, cfg_key, rd) != CC_OK ||
        rd_sentinel_check(rd) != CC_OK) {
        rd_free(rd);
        return CC_E_INVAL;
    }
    host->random_bytes(rnd, sizeof rnd);
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(rd->node + 2 * i, 3, "%02x", rnd[i]);
    rd->pub = (struct rconn){ .rd = rd, .name = "publisher", .kind = K_PUB };
    rd->sub = (struct rconn){ .rd = rd, .name = "subscriber",
                              .kind = K_SUB };
    rd->query = (struct rconn){ .rd = rd, .name = "sentinel lookup",
                                .kind = K_QUERY };
    rd->watch = (struct rconn){ .rd = rd, .name = "sentinel watch",
                                .kind = K_WATCH };
    *inst = rd;
    return CC_OK;
}

/* -------------------------------------------------------- sequencer */

static struct chan **chan_slot(struct rd *rd, const char *id)
{
    struct chan **pp;

    if (!rd->n_buckets)
        return NULL;
    for (pp = &rd->table[cc_strhash(id) & (rd->n_buckets - 1)]; *pp;
         pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0)
            return pp;
    return NULL;
}

static struct chan *chan_find(struct rd *rd, const char *id)
{
    struct chan **pp = chan_slot(rd, id);

    return pp ? *pp : NULL;
}

static void chan_grow(struct rd *rd)
{
    size_t nb = rd->n_buckets ? rd->n_buckets * 2 : 256;
    struct chan **t;

    if (rd->n_buckets && rd->n_chans < rd->n_buckets)
        return;
    t = xcalloc(nb, sizeof *t);
    for (size_t i = 0; i < rd->n_buckets; i++) {
        struct chan *ch = rd->table[i], *next;
        for (; ch; ch = next) {
            size_t b = cc_strhash(ch->id) & (nb - 1);
            next = ch->next;
            ch->next = t[b];
            t[b] = ch;
        }
    }
    free(rd->table);
    rd->table = t;
    rd->n_buckets = nb;
}

static void deliver(struct rd *rd, const char *chat, int64_t seq,
                    const char *payload, size_t len)
{
    rd->host->fanout_deliver(rd->ctx, chat, seq, payload, len);
}

/* Deliver every waiting message in order and forget the gap. */
static void chan_flush(struct rd *rd, struct chan *ch)
{
    for (size_t i = 0; i < ch->n_pend; i++) {
        struct pend *p = &ch->pend[i];
        deliver(rd, ch->id, p->seq, p->payload, p->len);
        if (p->seq >= ch->next_seq)
            ch->next_seq = p->seq + 1;
        free(p->payload);
    }
    ch->n_pend = 0;
    if (ch->gap) {
        rd->host->timer_cancel(ch->gap);
        ch->gap = NULL;
    }
}

/* Deliver the waiting messages that are now in order. */
static void chan_drain(struct rd *rd, struct chan *ch)
{
    size_t i = 0;

    if (!ch->n_pend)
        return;
    while (i < ch->n_pend && ch->pend[i].seq <= ch->next_seq) {
        struct pend *p = &ch->pend[i++];
        if (p->seq == ch->next_seq) {
            deliver(rd, ch->id, p->seq, p->payload, p->len);
            ch->next_seq++;
        }
        free(p->payload);
    }
    memmove(ch->pend, ch->pend + i, (ch->n_pend - i) * sizeof *ch->pend);
    ch->n_pend -= i;
    if (!ch->n_pend && ch->gap) {
        rd->host->timer_cancel(ch->gap);
        ch->gap = NULL;
    }
}

static void on_gap_timeout(void *arg)
{
    struct chan *ch = arg;
    struct rd *rd = ch->rd;

    rd->host->timer_cancel(ch->gap);
    ch->gap = NULL;
    LOG(rd, CC_LOG_DEBUG, "chat %s: seq %lld never arrived; delivering "
        "%zu waiting message(s)", ch->id, (long long)ch->next_seq,
        ch->n_pend);
    chan_flush(rd, ch);
}

/* Hold an early message until the gap before it fills. */
static void chan_hold(struct rd *rd, struct chan *ch, int64_t seq,
                      const char *payload, size_t len)
{
    size_t i = ch->n_pend;

    if (ch->n_pend == ch->cap_pend) {
        ch->cap_pend = ch->cap_pend ? ch->cap_pend * 2 : 8;
        ch->pend = realloc(ch->pend, ch->cap_pend * sizeof *ch->pend);
        if (!ch->pend)
            abort();
    }
    while (i > 0 && ch->pend[i - 1].seq > seq)
        i--;
    memmove(ch->pend + i + 1, ch->pend + i,
            (ch->n_pend - i) * sizeof *ch->pend);
    ch->pend[i].seq = seq;
    ch->pend[i].len = len;
    ch->pend[i].payload = malloc(len ? len : 1);
    if (!ch->pend[i].payload)
        abort();
    memcpy(ch->pend[i].payload, payload, len);
    ch->n_pend++;
    if ((long)ch->n_pend >= rd->reorder_max || rd->reorder_ms == 0) {
        chan_flush(rd, ch);
        return;
    }
    if (!ch->gap)
        ch->gap = rd->host->timer_add(rd->ctx, (uint64_t)rd->reorder_ms, 0,
                                      on_gap_timeout, ch);
}

/* Every delivery goes through here: in seq order per chat. */
static void sequence(struct rd *rd, const char *chat, int64_t seq,
                     const char *payload, size_t len)
{
    struct chan *ch = chan_find(rd, chat);

    if (!ch || seq <= 0) {
        deliver(rd, chat, seq, payload, len);
        return;
    }
    if (ch->next_seq == 0 && seq > 1) {
        /* Where the chat stands is not known yet (just subscribed): a
         * smaller seq may still be on its way, so the first message
         * waits one window.  A new chat's first message (1) cannot. */
        chan_hold(rd, ch, seq, payload, len);
    } else if (ch->next_seq == 0 || seq == ch->next_seq) {
        deliver(rd, chat, seq, payload, len);
        ch->next_seq = seq + 1;
        chan_drain(rd, ch);
    } else if (seq < ch->next_seq) {
        /* Late (its gap was given up on): late beats lost. */
        deliver(rd, chat, seq, payload, len);
    } else {
        chan_hold(rd, ch, seq, payload, len);
    }
}

/* ------------------------------------------------ hiredis on the loop */

/* One hiredis context's place on the loop (its ev.data): made with the
 * context and freed with it (ev_cleanup), so a context that a link let go
 * of never touches the watch of the one the link opened next. */
struct hlink {
    struct rconn *c;
    redisAsyncContext *ac;
    cc_watch *watch;
    uint32_t events;
};

static void on_io(int fd, uint32_t events, void *arg)
{
    struct hlink *l = arg;
    struct rconn *c = l->c;
    redisAsyncContext *ac = l->ac;

    (void)fd;
    if (events & CC_WATCH_READ)
        redisAsyncHandleRead(ac);   /* may free ac and l */
    if ((events & CC_WATCH_WRITE) && c->ac == ac)
        redisAsyncHandleWrite(ac);
}

static void ev_update(struct hlink *l, uint32_t set, uint32_t clear)
{
    uint32_t ev = (l->events | set) & ~clear;

    if (ev == l->events || !l->watch)
        return;
    l->events = ev;
    l->c->rd->host->watch_set(l->watch, ev);
}

static void ev_add_read(void *p) { ev_update(p, CC_WATCH_READ, 0); }
static void ev_del_read(void *p) { ev_update(p, 0, CC_WATCH_READ); }
static void ev_add_write(void *p) { ev_update(p, CC_WATCH_WRITE, 0); }
static void ev_del_write(void *p) { ev_update(p, 0, CC_WATCH_WRITE); }

/* hiredis is done with the context: close its watch.  Once only, even
 * if a hiredis version calls it again (the hooks are cleared). */
static void ev_cleanup(void *p)
{
    struct hlink *l = p;

    if (l->watch)
        l->c->rd->host->watch_close(l->watch);
    memset(&l->ac->ev, 0, sizeof l->ac->ev);
    free(l);
}

/* ------------------------------------------------------ connections */

static void conn_start(struct rconn *c);
static void subscribe_all(struct rd *rd);

void rd_conn_settle(struct rconn *c)
{
    if (c->deadline)
        c->rd->host->timer_cancel(c->deadline);
    c->deadline = NULL;
}

static void on_retry(void *arg)
{
    struct rconn *c = arg;

    c->rd->host->timer_cancel(c->retry);
    c->retry = NULL;
    conn_start(c);
}

void rd_conn_retry(struct rconn *c)
{
    struct rd *rd = c->rd;

    if (rd->stopping || c->retry)
        return;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
    if (c->backoff_ms > rd->backoff_max_ms)
        c->backoff_ms = (int)rd->backoff_max_ms;
    c->retry = rd->host->timer_add(rd->ctx, (uint64_t)c->backoff_ms, 0,
                                   on_retry, c);
}

void rd_conn_failed(struct rconn *c, const char *why)
{
    struct rd *rd = c->rd;

    c->ac = NULL;   /* hiredis frees it */
    rd_conn_settle(c);
    if (c->ready || !c->failures)
        c->lost_ns = rd->host->now_mono_ns();
    c->ready = 0;
    if (c == &rd->pub)
        rd->inflight = 0;   /* their callbacks ran with NULL replies */
    if (rd->stopping)
        return;
    c->failures++;
    if (why && (c->failures == 1 || c->failures % 20 == 0))
        LOG(rd, CC_LOG_WARN, "%s: %s; retrying (attempt %d, every %d ms "
            "at most)", c->name, why, c->failures, (int)rd->backoff_max_ms);
    rd_conn_retry(c);
}

/* A link's failure, to whoever owns its kind. */
static void conn_lost(struct rconn *c, const char *why)
{
    if (c->kind == K_QUERY || c->kind == K_WATCH)
        rd_sentinel_lost(c, why);
    else
        rd_conn_failed(c, why);
}

void rd_conn_drop(struct rconn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;

    c->ac = NULL;
    rd_conn_settle(c);
    if (ac)
        redisAsyncFree(ac); /* pending callbacks run with NULL replies */
    conn_lost(c, why);
}

void rd_conn_reset(struct rconn *c)
{
    redisAsyncContext *ac = c->ac;

    c->ac = NULL;
    rd_conn_settle(c);
    if (c->retry)
        c->rd->host->timer_cancel(c->retry);
    c->retry = NULL;
    c->waiting = 0;
    if (ac)
        redisAsyncFree(ac);
    if (c->ready || !c->failures)
        c->lost_ns = c->rd->host->now_mono_ns();
    c->ready = 0;
    c->backoff_ms = 0;
    if (c == &c->rd->pub)
        c->rd->inflight = 0;
}

static void on_deadline(void *arg)
{
    struct rconn *c = arg;
    char why[64];

    snprintf(why, sizeof why, "no answer within %d ms",
             c->kind == K_QUERY || c->kind == K_WATCH ? SENTINEL_TIMEOUT_MS
                                                      : CONNECT_TIMEOUT_MS);
    rd_conn_settle(c);
    rd_conn_drop(c, why);
}

/* "host:port" of c (or its unix socket) for the log. */
static const char *conn_where(const struct rconn *c, char *buf, size_t n)
{
    const struct rd *rd = c->rd;

    if (!c->to.host[0])
        snprintf(buf, n, "%s", rd->unix_path ? rd->unix_path : "?");
    else if (strchr(c->to.host, ':'))
        snprintf(buf, n, "[%s]:%d", c->to.host, c->to.port);
    else
        snprintf(buf, n, "%s:%d", c->to.host, c->to.port);
    return buf;
}

void rd_conn_ready(struct rconn *c)
{
    struct rd *rd = c->rd;
    char where[HOST_LEN + 16], after[64] = "";

    rd_conn_settle(c);
    c->ready = 1;
    c->backoff_ms = 0;
    if (c->was_ready)
        snprintf(after, sizeof after, " after %.1f s (%d failed "
                 "attempt%s)", (double)(rd->host->now_mono_ns() -
                                        c->lost_ns) / 1e9,
                 c->failures, c->failures == 1 ? "" : "s");
    LOG(rd, CC_LOG_INFO, "%s %s to redis %s%s%s%s%s", c->name,
        c->was_ready ? "reconnected" : "connected",
        conn_where(c, where, sizeof where),
        rd->master_name ? " (master " : "",
        rd->master_name ? rd->master_name : "",
        rd->master_name ? ")" : "", after);
    if (c->was_ready && c == &rd->sub) {
        LOG(rd, CC_LOG_INFO, "resubscribing %zu chat(s)", rd->n_chans);
        /* Once they are all confirmed, what was published meanwhile is
         * read from storage (cc_host_api.fanout_resync). */
        rd->resub_pending = rd->n_chans;
    }
    c->was_ready = 1;
    c->failures = 0;
    if (c == &rd->sub)
        subscribe_all(rd);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->data;
    struct rd *rd = c->rd;

    if (c->ac != ac)
        return;     /* let go of already */
    if (status != REDIS_OK) {
        c->ac = NULL;   /* hiredis frees it */
        conn_lost(c, ac->errstr[0] ? ac->errstr : "cannot connect");
        return;
    }
    /* Data links in `address` mode are ready now (AUTH and SELECT are
     * queued ahead of anything else); the others when answered. */
    if ((c->kind == K_PUB || c->kind == K_SUB) && !rd->n_sentinels)
        rd_conn_ready(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->data;

    if (c->ac != ac)
        return;     /* let go of already (stopping, dropped, reset) */
    c->ac = NULL;
    conn_lost(c, status == REDIS_OK ? "disconnected" : ac->errstr);
}

/* AUTH and SELECT answers: an error means a wrong setting (or a server
 * that is not ready); the link is dropped and tried again. */
static void on_setup_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct rconn *c = ac->data;
    char why[256];

    if (reply && reply->type == REDIS_REPLY_ERROR && c->ac == ac) {
        snprintf(why, sizeof why, "%s refused %s: %s",
                 c->kind == K_QUERY || c->kind == K_WATCH ? "sentinel"
                                                          : "redis",
                 (const char *)priv, reply->str);
        rd_conn_drop(c, why);
    }
}

void rd_conn_open(struct rconn *c, const char *host, int port,
                  const char *path)
{
    struct rd *rd = c->rd;
    redisAsyncContext *ac;
    struct hlink *l;
    const char *pw = c->kind == K_QUERY || c->kind == K_WATCH
                         ? rd->sentinel_password : rd->password;

    c->to = (struct hostport){ .port = path ? 0 : port };
    if (!path)
        snprintf(c->to.host, sizeof c->to.host, "%s", host);
    ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(host, port);
    if (!ac) {
        conn_lost(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_lost(c, why);
        return;
    }
    l = xcalloc(1, sizeof *l);
    l->c = c;
    l->ac = ac;
    c->ac = ac;
    ac->data = c;
    redisEnableKeepAlive(&ac->c);
    l->watch = rd->host->watch_fd(rd->ctx, ac->c.fd, 0, on_io, l);
    ac->ev.data = l;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    c->deadline = rd->host->timer_add(
        rd->ctx, c->kind == K_QUERY || c->kind == K_WATCH
                     ? SENTINEL_TIMEOUT_MS : CONNECT_TIMEOUT_MS,
        0, on_deadline, c);
    /* Queued now, sent first once connected. */
    if (pw)
        redisAsyncCommand(ac, on_setup_reply, "AUTH", "AUTH %s", pw);
    if (rd->db && (c->kind == K_PUB || c->kind == K_SUB))
        redisAsyncCommand(ac, on_setup_reply, "SELECT", "SELECT %ld",
                          rd->db);
    if (rd->n_sentinels)
        rd_sentinel_setup(c);
    /* hiredis waits for writability to finish the connect. */
    ev_update(l, CC_WATCH_WRITE, 0);
}

/* (Re)connect data link c: to `address`, or where the sentinels say. */
static void conn_start(struct rconn *c)
{
    struct rd *rd = c->rd;

    if (c->kind == K_WATCH)
        rd_sentinel_start(rd);
    else if (rd->n_sentinels)
        rd_sentinel_resolve(c);
    else
        rd_conn_open(c, rd->addr_host, rd->port, rd->unix_path);
}

int rd_reply_strings(const redisReply *reply, size_t n)
{
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (reply->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    return 1;
}

/* ---------------------------------------------------------- pub/sub */

/* "<node> <seq> <payload>" from a channel. */
static void on_message(struct rd *rd, const char *chan, size_t chan_len,
                       const char *data, size_t len)
{
    size_t plen = strlen(rd->prefix);
    char chat[ID_LEN + 1], *end;
    long long seq;

    if (chan_len != plen + ID_LEN || memcmp(chan, rd->prefix, plen) != 0 ||
        len < NODE_LEN + 3 || data[NODE_LEN] != ' ')
        goto bad;
    if (memcmp(data, rd->node, NODE_LEN) == 0)
        return; /* our own, delivered already */
    memcpy(chat, chan + plen, ID_LEN);
    chat[ID_LEN] = '\0';
    errno = 0;
    seq = strtoll(data + NODE_LEN + 1, &end, 10);
    if (errno || end == data + NODE_LEN + 1 || *end != ' ' ||
        (size_t)(end + 1 - data) > len)
        goto bad;
    end++;
    sequence(rd, chat, seq, end, len - (size_t)(end - data));
    return;
bad:
    LOG(rd, CC_LOG_WARN, "ignoring a malformed message on channel %.*s",
        (int)(chan_len > 200 ? 200 : chan_len), chan);
}

/* The link was down: let the host read what this node missed (a host
 * older than ABI 1.2 has no resync: clients there read history). */
static void resync(struct rd *rd)
{
    if (CC_HAS_MEMBER(rd->host, struct cc_host_api, fanout_resync)) {
        LOG(rd, CC_LOG_INFO, "resubscribed: reading what was missed from "
            "storage");
        rd->host->fanout_resync(rd->ctx, NULL);
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    redisReply *reply = r;
    struct rconn *c = ac->data;

    (void)priv;
    if (!reply || c->ac != ac)
        return; /* disconnecting, or let go of */
    if (reply->type == REDIS_REPLY_ERROR) {
        LOG(c->rd, CC_LOG_ERROR, "subscribe failed: %s", reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "subscribe") == 0 &&
        c->rd->resub_pending && --c->rd->resub_pending == 0)
        resync(c->rd);
    if (strcmp(reply->element[0]->str, "message") == 0 &&
        reply->element[1]->type == REDIS_REPLY_STRING &&
        reply->element[2]->type == REDIS_REPLY_STRING)
        on_message(c->rd, reply->element[1]->str, reply->element[1]->len,
                   reply->element[2]->str, reply->element[2]->len);
}

static void sub_command(struct rd *rd, const char *verb, const char *chat)
{
    char channel[256];

    if (!rd->sub.ready || !rd->sub.ac)
        return; /* subscribe_all runs on (re)connect */
    snprintf(channel, sizeof channel, "%s%s", rd->prefix, chat);
    redisAsyncCommand(rd->sub.ac, on_sub_reply, NULL, "%s %s", verb,
                      channel);
}

static void subscribe_all(struct rd *rd)
{
    for (size_t i = 0; i < rd->n_buckets; i++)
        for (struct chan *ch = rd->table[i]; ch; ch = ch->next)
            sub_command(rd, "SUBSCRIBE", ch->id);
}

static void on_pub_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct rconn *c = ac->data;
    redisReply *reply = r;

    (void)priv;
    if (c->rd->inflight > 0)
        c->rd->inflight--;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        LOG(c->rd, CC_LOG_WARN, "publish refused: %s", reply->str);
}

static int rd_subscribe(void *inst, const char *chat_id)
{
    struct rd *rd = inst;
    struct chan *ch;
    size_t b;

    if (!chat_id || strlen(chat_id) != ID_LEN)
        return CC_E_INVAL;
    if (chan_find(rd, chat_id))
        return CC_OK;
    chan_grow(rd);
    ch = xcalloc(1, sizeof *ch);
    ch->rd = rd;
    memcpy(ch->id, chat_id, ID_LEN);
    b = cc_strhash(ch->id) & (rd->n_buckets - 1);
    ch->next = rd->table[b];
    rd->table[b] = ch;
    rd->n_chans++;
    sub_command(rd, "SUBSCRIBE", chat_id);
    return CC_OK;
}

static void chan_free(struct rd *rd, struct chan *ch)
{
    for (size_t i = 0; i < ch->n_pend; i++)
        free(ch->pend[i].payload);
    if (ch->gap)
        rd->host->timer_cancel(ch->gap);
    free(ch->pend);
    free(ch);
}

static int rd_unsubscribe(void *inst, const char *chat_id)
{
    struct rd *rd = inst;
    struct chan **pp = chat_id ? chan_slot(rd, chat_id) : NULL, *ch;

    if (!pp)
        return CC_E_NOTFOUND;
    ch = *pp;
    *pp = ch->next;
    rd->n_chans--;
    sub_command(rd, "UNSUBSCRIBE", ch->id);
    chan_free(rd, ch);
    return CC_OK;
}

/* "*3\r\n$7\r\nPUBLISH\r\n" (17), then "$<len>\r\n" (at most 23) and
 * a closing "\r\n" around each of the two arguments, and snprintf's NUL.
 */
#define RESP_PUBLISH_OVERHEAD (17 + 2 * (23 + 2) + 1)

/* PUBLISH <prefix><chat> "<node> <seq> <payload>" in the protocol's own
 * form (RESP), written once into a buffer the plugin keeps: hiredis then
 * copies it to its output buffer and nothing is allocated per message. */
static int format_publish(struct rd *rd, const char *chat_id, int64_t seq,
                          const char *payload, size_t len, size_t *out_len)
{
    char head[NODE_LEN + 24];
    size_t chan_len = strlen(rd->prefix) + strlen(chat_id);
    int hlen = snprintf(head, sizeof head, "%s %lld ", rd->node,
                        (long long)seq);
    size_t need = RESP_PUBLISH_OVERHEAD + chan_len + (size_t)hlen + len;
    int n;

    if (need > rd->cmd_size) {
        char *p = realloc(rd->cmd, need);
        if (!p)
            return CC_E_NOMEM;
        rd->cmd = p;
        rd->cmd_size = need;
    }
    n = snprintf(rd->cmd, rd->cmd_size,
                 "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s%s\r\n$%zu\r\n%s",
                 chan_len, rd->prefix, chat_id, (size_t)hlen + len, head);
    memcpy(rd->cmd + n, payload, len);
    memcpy(rd->cmd + (size_t)n + len, "\r\n", 2);
    *out_len = (size_t)n + len + 2;
    return CC_OK;
}

static int rd_publish(void *inst, const char *chat_id, int64_t seq,
                      const char *payload, size_t len)
{
    struct rd *rd = inst;
    size_t n;

    /* Ours first, at once: it must not wait for, or depend on, Redis. */
    sequence(rd, chat_id, seq, payload, len);
    if (!rd->pub.ready || !rd->pub.ac)
        return CC_OK;
    if (rd->inflight >= rd->max_inflight) {
        if (rd->dropped++ % 1000 == 0)
            LOG(rd, CC_LOG_WARN, "redis is not keeping up (%ld publishes "
                "in flight): other nodes miss messages until it does; "
                "their clients can fetch them from history", rd->inflight);
        return CC_OK;
    }
    if (format_publish(rd, chat_id, seq, payload, len, &n) != CC_OK)
        return CC_E_NOMEM;
    if (redisAsyncFormattedCommand(rd->pub.ac, on_pub_reply, NULL, rd->cmd,
                                   n) == REDIS_OK)
        rd->inflight++;
    return CC_OK;
}

/* ------------------------------------------------------- lifecycle */

static int rd_start(void *inst)
{
    struct rd *rd = inst;

    /* Connecting is asynchronous: carechatd starts (and serves local
     * deliveries) even while Redis is still down. */
    conn_start(&rd->pub);
    conn_start(&rd->sub);
    if (rd->n_sentinels) {
        rd_sentinel_start(rd);
        LOG(rd, CC_LOG_INFO, "node %s; channels %s<chat id>; master %s "
            "as %zu sentinel(s) say", rd->node, rd->prefix,
            rd->master_name, rd->n_sentinels);
    } else {
        LOG(rd, CC_LOG_INFO, "node %s; channels %s<chat id>", rd->node,
            rd->prefix);
    }
    return CC_OK;
}

static void rd_stop(void *inst, cc_post_cb done, void *arg)
{
    struct rd *rd = inst;

    rd->stopping = 1;
    rd_conn_reset(&rd->pub);
    rd_conn_reset(&rd->sub);
    rd_sentinel_stop(rd);
    done(arg);
}

static void rd_destroy(void *inst)
{
    struct rd *rd = inst;

    for (size_t i = 0; i < rd->n_buckets; i++) {
        struct chan *ch = rd->table[i], *next;
        for (; ch; ch = next) {
            next = ch->next;
            chan_free(rd, ch);
        }
    }
    rd_free(rd);
}

static const struct cc_fanout_api rd_api = {
    .struct_size = sizeof(struct cc_fanout_api),
    .subscribe = rd_subscribe,
    .unsubscribe = rd_unsubscribe,
    .publish = rd_publish,
};

static const void *rd_get_interface(void *inst, uint32_t kind)
{
    (void)inst;
    return kind == CC_KIND_FANOUT ? &rd_api : NULL;
}

/* Ready when both links are up: a node that cannot publish or hear
 * other nodes serves its clients only half. */
static int rd_health(void *inst, char *why, size_t why_len)
{
    struct rd *rd = inst;

    if (rd->pub.ready && rd->sub.ready)
        return CC_OK;
    snprintf(why, why_len, "redis unreachable (%s down)",
             !rd->pub.ready && !rd->sub.ready ? "publisher and subscriber"
             : !rd->pub.ready ? "publisher" : "subscriber");
    return CC_E_UNAVAIL;
}

static void rd_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    struct rd *rd = inst;

    emit(arg, "redis_connected", "1 when both Redis links are up.",
         CC_METRIC_GAUGE, rd->pub.ready && rd->sub.ready);
    emit(arg, "redis_publishes_in_flight", "PUBLISH commands not yet "
         "answered.", CC_METRIC_GAUGE, (double)rd->inflight);
    emit(arg, "redis_publishes_dropped_total", "Publishes skipped because "
         "max_inflight were unanswered (clients read them from history).",
         CC_METRIC_COUNTER, (double)rd->dropped);
    rd_sentinel_metrics(rd, emit, arg);
}

static const struct cc_plugin rd_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_FANOUT,
    .name = "redis",
    .version = "1.0.0",
    .create = rd_create,
    .start = rd_start,
    .reload = NULL,
    .stop = rd_stop,
    .destroy = rd_destroy,
    .get_interface = rd_get_interface,
    .health = rd_health,
    .metrics = rd_metrics,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) ||
        host->struct_size < offsetof(struct cc_host_api, fanout_deliver) +
                                sizeof host->fanout_deliver)
        return CC_E_ABI;
    *out = &rd_plugin;
    return CC_OK;
}
