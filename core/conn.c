/*
 * conn.c - client connections and HTTP/1.1 request handling (see conn.h).
 *
 * State machine per connection:
 *   HEAD -> (BODY) -> BUSY -> respond -> HEAD (keep-alive) or DRAIN
 *                         \-> WS (upgraded: c->proto takes the bytes)
 * One timer per connection bounds the time to receive a request (against
 * slow clients) and the idle time between requests.
 */
#include "conn.h"
#include "listen.h"
#include "metrics.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "router.h"
#include "server.h"
#include "tally.h"
#include "tls.h"
#include "xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Loop 0's counts; a worker's connection reports its end by mail. */
static uint64_t n_conns;
static struct cc_tally per_ip;  /* open connections by client address */

/* A connection on a worker is gone (worker -> loop 0). */
struct gone_mail {
    struct cc_mail m;
    char ip[48];
};

/* A loop's connections (its state under conn_key). */
struct conn_loop {
    struct cc_conn *all;        /* every connection it owns */
    struct cc_conn *dirty;      /* those with output queued this turn */
    struct event *flush;        /* writes it, at the end of the turn */
};

static unsigned conn_key;

/* A WebSocket moves to a worker (loop 0 -> worker). */
struct move_mail {
    struct cc_mail m;
    struct cc_conn *conn;
    struct evbuffer *in;        /* what it sent that was not read yet */
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_process(struct cc_conn *c);

/* Loop l's connections, made on first use (on l's thread). */
static struct conn_loop *on_loop(struct cc_loop *l)
{
    struct conn_loop *cl = cc_loop_get(l, conn_key);

    if (!cl) {
        cl = cc_xcalloc(1, sizeof *cl);
        cl->flush = event_new(cc_loop_base(l), -1, 0, cc_conn_flush, l);
        if (!cl->flush)
            abort();
        cc_loop_set(l, conn_key, cl);
    }
    return cl;
}

static void conn_loop_free(struct cc_loop *l, void *state)
{
    struct conn_loop *cl = state;

    (void)l;
    event_free(cl->flush);
    free(cl);
}

void cc_conn_init(void)
{
    conn_key = cc_loop_key(conn_loop_free);
}

uint64_t cc_conn_count(void)
{
    return n_conns;
}

/* "addr:port" (or "[v6]:port") into out, the address alone into ip. */
static void format_peer(char *out, size_t n, char *ip, size_t ip_size,
                        const struct sockaddr *sa)
{
    snprintf(ip, ip_size, "?");
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)ip_size);
        snprintf(out, n, "%s:%d", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)ip_size);
        snprintf(out, n, "[%s]:%d", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(ip, ip_size, "unix");
        snprintf(out, n, "unix");
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_conn *c = arg;

    if (c->state == CC_CONN_HEAD && c->bev &&
        evbuffer_get_length(bufferevent_get_input(c->bev)) == 0) {
        cc_conn_close(c); /* idle keep-alive connection */
        return;
    }
    if (c->state == CC_CONN_HEAD || c->state == CC_CONN_BODY) {
        cc_log(CC_LOG_INFO, "http", "%s: request timeout", c->peer);
        c->keep_alive = 0;
        if (!c->req)
            c->req = cc_xcalloc(1, sizeof *c->req);
        c->state = CC_CONN_BUSY;
        cc_conn_respond_error(c, 408, "Request timeout");
        return;
    }
    if (c->state == CC_CONN_DRAIN)
        cc_conn_close(c); /* client stopped reading our last response */
}

static void arm_timer(struct cc_conn *c, uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000),
                          (suseconds_t)(ms % 1000) * 1000 };

    evtimer_add(c->timer, &tv);
}

/* ------------------------------------------------------------- output
 *
 * A plain socket's output is written at the end of the event loop's turn
 * (cc_conn_flush), not when the socket is next found writable: left to
 * itself, a bufferevent watches the socket for writability whenever
 * output is queued (epoll_ctl), waits for the next epoll_wait to say so,
 * writes, and stops watching (epoll_ctl again), for every answer and
 * every batch of frames.  Here EV_WRITE stays off; what a turn queued is
 * written once, and only what the kernel does not take (a slow reader)
 * is left to the bufferevent, with EV_WRITE on until it has written it
 * all (conn_write_cb turns it off again).
 *
 * TLS is the same socket bufferevent (c->raw) with OpenSSL as a filter
 * over it (c->bev), not libevent's TLS socket bufferevent: that one reads
 * a record with two read()s and turns EV_WRITE on and off (two
 * epoll_ctl) for every batch it writes, six system calls a message
 * under load where a plain socket makes one.  Here raw reads what the
 * socket has in one readv and the filter decrypts it from memory; the
 * filter's EV_WRITE stays off, so what a turn queued is encrypted at its
 * end (one record per chain of frames) into raw, written like a plain
 * socket's output.  The filter calls no write callback (it would run
 * before raw is written): raw's output says when it has drained
 * (out_cb, write_wait) and the flush reports it (conn_write_cb). */

/* The loop's lists of connections (doubly linked through c->in[l]). */
static void list_push(struct cc_conn **head, struct cc_conn *c, int l)
{
    c->in[l].prev = NULL;
    c->in[l].next = *head;
    if (*head)
        (*head)->in[l].prev = c;
    *head = c;
}

static void list_unlink(struct cc_conn **head, struct cc_conn *c, int l)
{
    if (c->in[l].prev)
        c->in[l].prev->in[l].next = c->in[l].next;
    else
        *head = c->in[l].next;
    if (c->in[l].next)
        c->in[l].next->in[l].prev = c->in[l].prev;
    c->in[l].prev = c->in[l].next = NULL;
}

static void dirty_unlink(struct cc_conn *c)
{
    if (c->dirty)
        list_unlink(&on_loop(c->loop)->dirty, c, CC_LIST_DIRTY);
    c->dirty = 0;
}

static void out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                   void *arg)
{
    struct cc_conn *c = arg;
    struct conn_loop *cl;

    if (!info->n_added) {
        /* TLS: raw's own write took the last of a short write. */
        if (!c->write_wait || evbuffer_get_length(buf))
            return;
        c->write_wait = 0;
    }
    if (c->dirty)
        return;
    cl = on_loop(c->loop);
    if (!cl->dirty)
        event_active(cl->flush, 0, 0);
    c->dirty = 1;
    list_push(&cl->dirty, c, CC_LIST_DIRTY);
}

size_t cc_conn_out_len(const struct cc_conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev)) +
           (c->raw ? evbuffer_get_length(bufferevent_get_output(c->raw)) : 0);
}

/* TLS: encrypt what bev holds into raw (the filter writes while its
 * EV_WRITE is on, see output above).  A filter that fails closes c from
 * inside (conn_event_cb): c is held meanwhile.  Returns 0 when c was
 * closed (and may be gone). */
static int tls_seal(struct cc_conn *c)
{
    if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
        return 1;
    cc_conn_hold(c);
    bufferevent_enable(c->bev, EV_WRITE);
    if (!c->dead)
        bufferevent_disable(c->bev, EV_WRITE);
    return cc_conn_release(c);
}

int cc_conn_write_now(struct cc_conn *c)
{
    struct evbuffer *out;

    if (c->raw && !tls_seal(c))
        return 0;
    out = bufferevent_get_output(c->raw ? c->raw : c->bev);
    if (!evbuffer_get_length(out))
        return 1;
    /* As the bufferevent does: the output's start is frozen but while
     * it writes. */
    evbuffer_unfreeze(out, 1);
    evbuffer_write(out, c->fd);
    evbuffer_freeze(out, 1);
    return 1;
}

void cc_conn_flush(evutil_socket_t fd, short what, void *arg)
{
    struct cc_loop *l = arg;
    struct cc_conn *c;

    while ((c = on_loop(l)->dirty)) {
        struct bufferevent *sock;

        dirty_unlink(c);
        if (!cc_conn_write_now(c))
            continue; /* the TLS filter failed: c is closed */
        sock = c->raw ? c->raw : c->bev;
        if (evbuffer_get_length(bufferevent_get_output(sock))) {
            /* Short write, or an error that the bufferevent's own
             * write then reports (conn_event_cb). */
            c->write_wait = c->raw != NULL;
            bufferevent_enable(sock, EV_WRITE);
        } else if (!evbuffer_get_length(bufferevent_get_output(c->bev))) {
            conn_write_cb(sock, c); /* all written (c may be gone) */
        }
    }
}

/* Wrap c's socket (and TLS session) in a bufferevent on c's loop and
 * link c into the loop's list.  The bufferevent never closes them: c
 * does (drop_transport), so they can outlive it when c moves. */
static void attach(struct cc_conn *c, enum bufferevent_ssl_state st)
{
    struct event_base *base = cc_loop_base(c->loop);
    struct cc_conn **list = &on_loop(c->loop)->all;
    struct bufferevent *sock = bufferevent_socket_new(base, c->fd, 0);

    if (!sock)
        abort();
    if (c->ssl) {
        c->raw = sock;
        c->bev = bufferevent_openssl_filter_new(base, sock, c->ssl, st, 0);
        if (!c->bev)
            abort();
        /* A TLS close_notify is not owed to a peer that just vanished. */
        bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    } else {
        c->bev = sock;
    }
    c->timer = evtimer_new(base, timer_cb, c);
    if (!c->timer)
        abort();
    bufferevent_setcb(c->bev, conn_read_cb, c->raw ? NULL : conn_write_cb,
                      conn_event_cb, c);
    /* A new bufferevent has EV_WRITE on: off, see output above. */
    bufferevent_disable(sock, EV_WRITE);
    bufferevent_enable(sock, EV_READ);
    if (!evbuffer_add_cb(bufferevent_get_output(sock), out_cb, c))
        abort();
    if (c->raw) {
        bufferevent_disable(c->bev, EV_WRITE);
        bufferevent_enable(c->bev, EV_READ);
        if (!evbuffer_add_cb(bufferevent_get_output(c->bev), out_cb, c))
            abort();
    }
    list_push(list, c, CC_LIST_ALL);
    cc_metrics_add(c->loop, CC_STAT_CONNS, 1);
}

static void detach(struct cc_conn *c)
{
    list_unlink(&on_loop(c->loop)->all, c, CC_LIST_ALL);
    cc_metrics_add(c->loop, CC_STAT_CONNS, -1);
}

/* Close the socket: the bufferevent first (it stops watching the fd). */
static void drop_transport(struct cc_conn *c)
{
    dirty_unlink(c);
    if (c->bev) {
        bufferevent_free(c->bev); /* a filter first: it lets raw go */
        c->bev = NULL;
    }
    if (c->raw) {
        bufferevent_free(c->raw);
        c->raw = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* Loop 0: a connection ended (here, or on a worker by mail). */
static void forget(const char *ip)
{
    n_conns--;
    cc_listen_conn_closed();
    cc_tally_dec(&per_ip, ip);
    if (!n_conns)
        cc_tally_free(&per_ip);
}

static void gone_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct gone_mail *g = (struct gone_mail *)mail;

    forget(g->ip);
    free(g);
}

void cc_conn_accept(int fd, const struct sockaddr *sa, int socklen,
                    int kind)
{
    int tls = kind & CC_ACCEPT_TLS;
    struct cc_conn *c;

    if (cc_srv->shutting_down) {
        close(fd);
        return;
    }
    if (n_conns >= cc_srv->lim.max_connections) {
        /* At the limit: closed before anything is allocated for it. */
        close(fd);
        cc_log(CC_LOG_WARN, "http", "%llu connections open "
               "(max_connections): new connections closed at accept",
               (unsigned long long)n_conns);
        return;
    }
    c = cc_xcalloc(1, sizeof *c);
    format_peer(c->peer, sizeof c->peer, c->ip, sizeof c->ip, sa);
    if (cc_tally_inc(&per_ip, c->ip) > cc_srv->lim.max_conns_per_ip &&
        cc_srv->lim.max_conns_per_ip) {
        cc_log(CC_LOG_WARN, "http", "%s: more than %llu connections from "
               "this address: refused", c->peer,
               (unsigned long long)cc_srv->lim.max_conns_per_ip);
        cc_tally_dec(&per_ip, c->ip);
        close(fd);
        free(c);
        return;
    }
#ifndef __linux__
    /* Linux copies TCP_NODELAY from the listening socket (set in
     * server.c): one system call less per connection. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
#endif
    c->id = ++cc_srv->next_id;
    c->tls = tls;
    c->admin = (kind & CC_ACCEPT_ADMIN) != 0;
    c->fd = fd;
    cc_metrics_add(cc_main_loop, CC_STAT_ACCEPTED, 1);
    c->loop = cc_main_loop;
    if (tls) {
        c->ssl = cc_tls_ctx() ? SSL_new(cc_tls_ctx()) : NULL;
        if (!c->ssl) {
            cc_tally_dec(&per_ip, c->ip);
            close(fd);
            free(c);
            return;
        }
    }
    n_conns++;
    attach(c, c->ssl ? BUFFEREVENT_SSL_ACCEPTING : BUFFEREVENT_SSL_OPEN);
    c->state = CC_CONN_HEAD;
    c->reading = 1;
    arm_timer(c, cc_srv->lim.request_timeout_ms);
}

static void request_free(struct cc_conn *c)
{
    if (!c->req)
        return;
    free(c->req->head);
    free(c->req->body);
    free(c->req);
    c->req = NULL;
}

static void conn_free(struct cc_conn *c)
{
    if (c->loop != cc_main_loop) {
        struct gone_mail *g = cc_xcalloc(1, sizeof *g);
        memcpy(g->ip, c->ip, sizeof g->ip);
        cc_loop_post(cc_main_loop, &g->m, gone_cb);
    } else {
        forget(c->ip);
    }
    if (c->proto)
        c->proto->on_free(c);
    request_free(c);
    if (c->timer)
        event_free(c->timer);
    drop_transport(c);
    /* The TLS session outlives the transport until here: a filter that
     * fails while encrypting closes c from inside its own call (tls_seal
     * holds c), and must not find its session freed when it returns.
     * Marked as shut down first: OpenSSL takes the session of a
     * connection freed without a close_notify out of the cache, so the
     * ticket a phone got last could never resume (its network went, or
     * it just closed the socket).  A fatal TLS error has already taken
     * it out. */
    if (c->ssl)
        SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(c->ssl);
    detach(c);
    free(c);
}

void cc_conn_close(struct cc_conn *c)
{
    if (c->dead)
        return;
    c->dead = 1;
    drop_transport(c);
    evtimer_del(c->timer);
    if (c->pending == 0)
        conn_free(c);
}

int cc_conn_movable(const struct cc_conn *c)
{
    /* TLS: raw's input would be left behind, and SSL_has_pending() also
     * counts a record read in part. */
    return c->bev && !cc_conn_out_len(c) &&
           !(c->raw && evbuffer_get_length(bufferevent_get_input(c->raw))) &&
           !(c->ssl && SSL_has_pending(c->ssl));
}

static void move_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct move_mail *mm = (struct move_mail *)mail;
    struct cc_conn *c = mm->conn;

    struct evbuffer *in;
    int rc;

    attach(c, BUFFEREVENT_SSL_OPEN);
    /* A socket bufferevent keeps its input's end frozen except while it
     * reads; do as it does (a TLS one does not freeze it). */
    in = bufferevent_get_input(c->bev);
    if (!c->ssl)
        evbuffer_unfreeze(in, 0);
    rc = evbuffer_add_buffer(in, mm->in);
    if (!c->ssl)
        evbuffer_freeze(in, 0);
    if (rc < 0)
        abort(); /* cannot fail but for a frozen buffer */
    evbuffer_free(mm->in);
    free(mm);
    c->proto->on_adopted(c);
}

void cc_conn_move(struct cc_conn *c, struct cc_loop *to)
{
    struct move_mail *mm = calloc(1, sizeof *mm);

    if (!mm || !(mm->in = evbuffer_new()))
        abort();
    mm->conn = c;
    evbuffer_add_buffer(mm->in, bufferevent_get_input(c->bev));
    dirty_unlink(c);
    bufferevent_free(c->bev); /* leaves the socket and TLS open */
    c->bev = NULL;
    if (c->raw) {
        bufferevent_free(c->raw);
        c->raw = NULL;
    }
    event_free(c->timer);
    c->timer = NULL;
    detach(c);
    c->loop = to;
    cc_loop_post(to, &mm->m, move_cb);
}

void cc_conn_close_after_write(struct cc_conn *c)
{
    if (c->dead)
        return;
    c->state = CC_CONN_DRAIN;
    bufferevent_disable(c->bev, EV_READ);
    if (cc_conn_out_len(c) == 0) {
        cc_conn_close(c);
        return;
    }
    arm_timer(c, cc_srv->lim.request_timeout_ms);
}

void cc_conn_hold(struct cc_conn *c)
{
    c->pending++;
}

int cc_conn_release(struct cc_conn *c)
{
    c->pending--;
    if (!c->dead)
        return 1;
    if (c->pending == 0)
        conn_free(c);
    return 0;
}

void cc_conn_access_log(struct cc_conn *c, int status)
{
    char target[512];
    const struct cc_http_request *h = &c->req->h;

    if (cc_log_level() < CC_LOG_INFO)
        return; /* not written: spare the redaction */
    if (!c->req->head) {
        cc_log_kind(CC_LOG_INFO, "http", (unsigned)status, "%s - %d",
                    c->peer, status);
        return;
    }
    cc_log_target(target, sizeof target, h->target.p, h->target.n);
    /* One kind per status for the rate limit: a storm of 401s does not
     * hide the 200s. */
    cc_log_kind(CC_LOG_INFO, "http", (unsigned)status, "%s \"%.*s %s\" %d",
                c->peer, (int)h->method_str.n, h->method_str.p, target,
                status);
}

void cc_conn_respond(struct cc_conn *c, int status, const char *extra_headers,
                     const char *body, size_t len)
{
    cc_conn_respond_typed(c, status, "application/json", extra_headers, body,
                          len);
}

void cc_conn_respond_typed(struct cc_conn *c, int status, const char *type,
                           const char *extra_headers, const char *body,
                           size_t len)
{
    struct evbuffer *out;
    char hsts[64] = "";

    if (c->dead)
        return;
    out = bufferevent_get_output(c->bev);
    if (cc_srv->shutting_down ||
        (c->eof && !evbuffer_get_length(bufferevent_get_input(c->bev))))
        c->keep_alive = 0;
    if (c->tls && cc_srv->lim.hsts_max_age_ms >= 1000)
        snprintf(hsts, sizeof hsts, "Strict-Transport-Security: "
                 "max-age=%llu\r\n",
                 (unsigned long long)(cc_srv->lim.hsts_max_age_ms / 1000));
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\n"
                        "Server: carechat\r\n"
                        "Cache-Control: no-store\r\n"
                        "X-Content-Type-Options: nosniff\r\n"
                        "%s"
                        "Content-Length: %zu\r\n"
                        "%s%s%s%s%s\r\n",
                        status, cc_http_reason(status), hsts, len,
                        len ? "Content-Type: " : "", len ? type : "",
                        len ? "\r\n" : "",
                        !c->keep_alive ? "Connection: close\r\n"
                        : c->http10   ? "Connection: keep-alive\r\n"
                                      : "",
                        extra_headers ? extra_headers : "");
    if (len && !(c->req && c->req->h.method == CC_HTTP_HEAD))
        evbuffer_add(out, body, len);
    if (c->req)
        cc_conn_access_log(c, status);
    request_free(c);
    if (!c->keep_alive) {
        cc_conn_close_after_write(c);
        return;
    }
    c->state = CC_CONN_HEAD;
    c->reading = 0;
    if (!c->eof)
        bufferevent_enable(c->bev, EV_READ);
    arm_timer(c, cc_srv->lim.keepalive_timeout_ms);
    /* A pipelined request may already be buffered: handle it from the
     * loop, not by recursion (thousands of pipelined requests would
     * otherwise overflow the stack). */
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS |
                                                 BEV_TRIG_DEFER_CALLBACKS);
}

void cc_conn_respond_error(struct cc_conn *c, int status, const char *msg)
{
    struct cc_sbuf b = { 0 };

    cc_json_error(&b, msg);
    cc_conn_respond(c, status, NULL, b.p, b.len);
    cc_sbuf_free(&b);
}

/* Fail the request being read: answer status and close. */
static void fail_request(struct cc_conn *c, int status, const char *msg)
{
    c->keep_alive = 0;
    c->state = CC_CONN_BUSY;
    bufferevent_disable(c->bev, EV_READ);
    if (!c->req)
        c->req = cc_xcalloc(1, sizeof *c->req);
    cc_conn_respond_error(c, status, msg);
}

static const char *head_error_message(int status)
{
    switch (status) {
    case 431: return "Request header fields too large";
    case 505: return "HTTP version not supported";
    default: return "Malformed HTTP request";
    }
}

/* curl and others send "Expect: 100-continue" before a body and wait for
 * the interim answer: give it once the head was accepted. */
static void expect_continue(struct cc_conn *c)
{
    const struct cc_http_header *e = cc_http_header(&c->req->h, "Expect");
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

    if (!e || c->req->h.content_length <= 0 || c->req->h.version_minor < 1)
        return;
    if (e->value.n == 12 && strncasecmp(e->value.p, "100-continue", 12) == 0)
        evbuffer_add(bufferevent_get_output(c->bev), cont, sizeof cont - 1);
}

/* Parse a buffered request head.  Returns 1 when a request is ready for
 * its body, 0 to wait for more bytes, -1 when the request failed. */
static int read_head(struct cc_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    size_t look = avail < cc_srv->lim.max_head ? avail
                                                : cc_srv->lim.max_head;
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    struct cc_http_request h;
    int rc = cc_http_parse_head(p, look, cc_srv->lim.max_head, &h);

    if (rc == 0 && look >= cc_srv->lim.max_head)
        rc = -431;
    if (rc == 0)
        return 0;
    if (rc < 0) {
        fail_request(c, -rc, head_error_message(-rc));
        return -1;
    }
    c->req = cc_xcalloc(1, sizeof *c->req);
    c->req->head = malloc((size_t)rc + 1);
    if (!c->req->head)
        abort();
    memcpy(c->req->head, p, (size_t)rc);
    c->req->head[rc] = '\0';
    c->req->head_len = (size_t)rc;
    evbuffer_drain(in, (size_t)rc);
    /* Re-parse over our own copy so the request's pointers stay valid. */
    cc_http_parse_head(c->req->head, (size_t)rc, (size_t)rc + 1,
                       &c->req->h);
    c->keep_alive = c->req->h.keep_alive;
    c->http10 = c->req->h.version_minor == 0;
    if (c->req->h.has_transfer_encoding) {
        fail_request(c, 501, "Transfer-Encoding is not supported; "
                             "send a Content-Length");
        return -1;
    }
    if (c->req->h.content_length > (int64_t)cc_srv->lim.max_body) {
        fail_request(c, 413, "Request body too large");
        return -1;
    }
    c->state = CC_CONN_BODY;
    expect_continue(c);
    return 1;
}

/* Move the body into the request once it is all here.  Returns 1 when
 * complete, 0 to wait. */
static int read_body(struct cc_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t need = c->req->h.content_length > 0
                      ? (size_t)c->req->h.content_length : 0;

    if (evbuffer_get_length(in) < need)
        return 0;
    c->req->body = malloc(need + 1);
    if (!c->req->body)
        abort();
    evbuffer_remove(in, c->req->body, need);
    c->req->body[need] = '\0';
    c->req->body_len = need;
    return 1;
}

/* What every request must be before any route sees it: exactly one valid
 * Host in HTTP/1.1, at most one in 1.0 (RFC 9112 3.2: 400 otherwise; a
 * link built from it, rest.c, must not point elsewhere), and at most one
 * Origin (a browser sends one; which of two would be checked?).  Returns
 * 1, or 0 after answering. */
static int request_ok(struct cc_conn *c)
{
    const struct cc_http_request *h = &c->req->h;
    size_t hosts = cc_http_header_count(h, "Host");
    const struct cc_http_header *host = cc_http_header(h, "Host");

    if (hosts > 1 || (hosts == 0 && h->version_minor >= 1) ||
        (host && !cc_http_host_valid(host->value))) {
        c->keep_alive = 0;
        cc_conn_respond_error(c, 400, "Host header missing, repeated or "
                                      "invalid");
        return 0;
    }
    if (cc_http_header_count(h, "Origin") > 1) {
        c->keep_alive = 0;
        cc_conn_respond_error(c, 403, "More than one Origin header");
        return 0;
    }
    return 1;
}

/* The request is read: its route's handler answers it (router.h). */
static void dispatch(struct cc_conn *c)
{
    const struct cc_http_request *h = &c->req->h;
    struct cc_route_match m;
    unsigned allowed;
    cc_route_fn fn;
    char methods[64], allow[80];

    c->state = CC_CONN_BUSY;
    evtimer_del(c->timer);
    if (!request_ok(c))
        return;
    fn = cc_route_find(c->admin ? CC_PORT_ADMIN : CC_PORT_PUBLIC, h->method,
                       h->path, &m, &allowed);
    if (fn) {
        fn(c, &m);
        return;
    }
    if (!allowed) {
        cc_conn_respond_error(c, 404, "Not found");
        return;
    }
    cc_route_allow(allowed, methods, sizeof methods);
    snprintf(allow, sizeof allow, "Allow: %s\r\n", methods);
    cc_conn_respond_lit(c, 405, allow, "{\"error\": \"Method not allowed\"}");
}

/* Read as far as the buffered bytes allow. */
static void conn_process(struct cc_conn *c)
{
    if (c->state == CC_CONN_HEAD) {
        if (!c->reading) {
            /* First byte of a request on a kept-alive connection: the
             * request deadline replaces the idle timeout, once (so a
             * client trickling bytes cannot extend it). */
            c->reading = 1;
            arm_timer(c, cc_srv->lim.request_timeout_ms);
        }
        switch (read_head(c)) {
        case 0:
            goto incomplete;
        case -1:
            return;
        }
    }
    if (c->state == CC_CONN_BODY) {
        if (!read_body(c))
            goto incomplete;
        dispatch(c);
    }
    return;
incomplete:
    /* The client has shut down its side: the rest will not come. */
    if (c->eof)
        cc_conn_close_after_write(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
    struct cc_conn *c = arg;

    switch (c->state) {
    case CC_CONN_HEAD:
    case CC_CONN_BODY:
        conn_process(c);
        break;
    case CC_CONN_WS:
        c->proto->on_read(c);
        break;
    default:
        break; /* BUSY/DRAIN: later bytes wait (pipelining) */
    }
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
    struct cc_conn *c = arg;

    bufferevent_disable(bev, EV_WRITE); /* written: see output */
    if (c->state == CC_CONN_DRAIN)
        cc_conn_close(c);
    else if (c->state == CC_CONN_WS)
        c->proto->on_write(c);
}

/* OpenSSL recognised plain HTTP on a TLS port: answer it in plain text
 * (as nginx does) so a misconfigured client says why, then close.
 * Returns 1 when that was the case. */
static int tls_refuse_plain_http(struct cc_conn *c)
{
    static const char body[] =
        "{\"error\": \"This port speaks TLS: use https:// or wss://\"}";
    char resp[256];
    unsigned long e;
    int http = 0, n;

    while ((e = bufferevent_get_openssl_error(c->bev)))
        if (ERR_GET_REASON(e) == SSL_R_HTTP_REQUEST)
            http = 1;
    if (!http)
        return 0;
    cc_log(CC_LOG_INFO, "http", "%s: plain HTTP on a TLS port: 400",
           c->peer);
    /* Read what the client sent, so closing does not reset the
     * connection before it has read the answer. */
    for (int i = 0; i < 16; i++) {
        char sink[4096];
        if (recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
    }
    n = snprintf(resp, sizeof resp, "HTTP/1.1 400 Bad Request\r\n"
                 "Content-Type: application/json\r\n"
                 "X-Content-Type-Options: nosniff\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s", sizeof body - 1, body);
    if (send(c->fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        cc_log(CC_LOG_DEBUG, "http", "%s: %s", c->peer, strerror(errno));
    cc_conn_close(c);
    return 1;
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct cc_conn *c = arg;

    if ((what & BEV_EVENT_ERROR) && c->tls && !c->proto &&
        tls_refuse_plain_http(c))
        return;
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !c->proto) {
        /* The client shut down its sending side: what it asked for is
         * still owed.  A request being answered is answered, with any
         * complete request pipelined behind it, then the connection
         * closes (cc_conn_respond); an answer still queued is written
         * first. */
        c->eof = 1;
        if (c->state == CC_CONN_BUSY || c->state == CC_CONN_DRAIN)
            return;
        if (evbuffer_get_length(bufferevent_get_input(c->bev))) {
            /* Requests pipelined before the FIN: answer them in turn
             * (a partial one ends the connection, conn_process). */
            conn_process(c);
            return;
        }
        if (cc_conn_out_len(c)) {
            cc_conn_close_after_write(c);
            return;
        }
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state == CC_CONN_WS)
            cc_log(CC_LOG_DEBUG, "ws", "%s: connection lost", c->peer);
        cc_conn_close(c);
    }
}

/* Close what loop `on` owns (see cc_conn_shutdown_all). */
static void shutdown_loop(struct cc_loop *on)
{
    struct cc_conn *c, *next;

    for (c = on_loop(on)->all; c; c = next) {
        next = c->in[CC_LIST_ALL].next;
        if (c->dead)
            continue;
        if (c->state == CC_CONN_WS)
            c->proto->on_shutdown(c);
        else if (c->state == CC_CONN_HEAD)
            cc_conn_close(c);
        else
            c->keep_alive = 0; /* answer the request in flight, then close */
    }
}

void cc_conn_close_all(struct cc_loop *on)
{
    struct cc_conn *c, *next;

    for (c = on_loop(on)->all; c; c = next) {
        next = c->in[CC_LIST_ALL].next;
        cc_conn_close(c);
    }
}

static void shutdown_cb(struct cc_loop *on, struct cc_mail *mail)
{
    free(mail);
    shutdown_loop(on);
}

void cc_conn_shutdown_all(void)
{
    for (unsigned i = 1; i < cc_n_loops; i++) {
        struct cc_mail *m = calloc(1, sizeof *m);
        if (!m)
            abort();
        cc_loop_post(cc_loops[i], m, shutdown_cb);
    }
    shutdown_loop(cc_main_loop);
}
