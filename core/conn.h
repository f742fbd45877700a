/*
 * conn.h - one client TCP connection: accept, HTTP/1.1 request reading
 * with limits and timeouts, keep-alive, responses, and the hand-over to
 * the WebSocket session (session.c) on upgrade.
 *
 * A connection owns all its memory (request, body, WebSocket state) and
 * closing it frees everything - once no asynchronous operation still
 * refers to it (cc_conn_hold/cc_conn_release).  Connections are accepted
 * on loop 0; a joined WebSocket may move to a worker loop (threads > 1),
 * after which only that loop touches it.
 *
 * A request, once read, goes to the handler its route names (router.h);
 * an upgraded connection's bytes and events go to the protocol that took
 * it over (struct cc_conn_proto).  conn.c knows neither by name.
 */
#ifndef CC_CONN_H
#define CC_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <event2/util.h>

#include "http.h"
#include "host.h"

struct bufferevent;
struct event;
struct ssl_st;
struct cc_loop;
struct sockaddr;
struct cc_ws;

enum cc_conn_state {
    CC_CONN_HEAD,   /* reading a request head */
    CC_CONN_BODY,   /* reading a request body */
    CC_CONN_BUSY,   /* a request is being answered (maybe async) */
    CC_CONN_DRAIN,  /* closing once the output is written */
    CC_CONN_WS      /* upgraded: c->proto owns the bytes */
};

struct cc_conn;

/* What an upgraded connection speaks (the WebSocket session sets it when
 * it takes the connection over).  Each runs on the connection's loop. */
struct cc_conn_proto {
    void (*on_read)(struct cc_conn *c);     /* bytes arrived */
    void (*on_write)(struct cc_conn *c);    /* the output drained */
    void (*on_adopted)(struct cc_conn *c);  /* arrived on its worker loop
                                               (cc_conn_move) */
    void (*on_shutdown)(struct cc_conn *c); /* the server stops */
    void (*on_free)(struct cc_conn *c);     /* c is being freed */
};

/* The request being answered; freed when the response is written. */
struct cc_request {
    struct cc_http_request h;  /* points into head */
    char *head;
    size_t head_len;
    char *body;                /* NUL-terminated, body_len bytes */
    size_t body_len;
    struct cc_auth_req auth;   /* principal once authenticated */
    int status;                /* response status, for the access log */
};

enum { CC_LIST_ALL, CC_LIST_DIRTY };

struct cc_conn_link {
    struct cc_conn *prev, *next;
};

struct cc_conn {
    uint64_t id;
    struct cc_loop *loop;      /* the loop that owns it (see loop.h) */
    int fd;                    /* the socket, owned here, not by bev */
    struct ssl_st *ssl;        /* TLS session, owned here; NULL: plain */
    struct bufferevent *bev;   /* what the session reads and writes */
    struct bufferevent *raw;   /* TLS: the socket's, under bev's filter */
    int write_wait;            /* TLS: raw's socket drains a short write */
    struct event *timer;       /* request deadline or keep-alive idle */
    enum cc_conn_state state;
    int pending;               /* async operations referring to this */
    int dead;                  /* socket gone; free when pending == 0 */
    int keep_alive;            /* keep the connection after the response */
    int http10;                /* the request was HTTP/1.0 */
    int eof;                   /* the client shut down its sending side */
    int reading;               /* a request has begun: its deadline runs */
    struct cc_request *req;
    const struct cc_conn_proto *proto; /* set when upgraded */
    struct cc_ws *ws;          /* the WebSocket session's (session.c) */
    /* Its loop's lists: CC_LIST_ALL, and CC_LIST_DIRTY while output is
     * queued and not yet written (plain sockets; `dirty` says so). */
    struct cc_conn_link in[2];
    int dirty;
    char peer[64];             /* client address, for logs */
    int tls;                   /* accepted on a TLS listener */
    int admin;                 /* accepted on the admin listener */
    char ip[48];               /* client address without the port */
};

/* The listener a socket came to (bits). */
#define CC_ACCEPT_TLS 1   /* TLS: the handshake runs under request_timeout */
#define CC_ACCEPT_ADMIN 2 /* admin_listen: /metrics, /readyz only */

/* Accept a new client socket (nonblocking, owned from now on). */
void cc_conn_accept(int fd, const struct sockaddr *sa, int socklen,
                    int kind);

/* Send the response to the current request and finish it: the status
 * line, Content-Type: application/json (when body), Content-Length,
 * Connection, extra_headers (CRLF-terminated lines, or NULL), the body.
 * Then read the next request or close, per keep-alive. */
void cc_conn_respond(struct cc_conn *c, int status, const char *extra_headers,
                     const char *body, size_t len);

/* cc_conn_respond with a Content-Type of its own (type, e.g.
 * "text/html; charset=utf-8"). */
void cc_conn_respond_typed(struct cc_conn *c, int status, const char *type,
                           const char *extra_headers, const char *body,
                           size_t len);

/* Access log: one INFO line for the answered request (c->req); the
 * target shows the path and parameter names only (cc_log_target). */
void cc_conn_access_log(struct cc_conn *c, int status);

/* cc_conn_respond with a string literal body. */
#define cc_conn_respond_lit(c, status, headers, body) \
    cc_conn_respond(c, status, headers, body, sizeof(body) - 1)

/* cc_conn_respond with {"error": msg}. */
void cc_conn_respond_error(struct cc_conn *c, int status, const char *msg);

/* An async operation starts / ends.  cc_conn_release returns 1 when the
 * connection is still alive (so the callback may use it), 0 when it is
 * gone (it may have been freed by this call). */
void cc_conn_hold(struct cc_conn *c);
int cc_conn_release(struct cc_conn *c);

/* Close now: stop reading and writing, free when no operation holds c. */
void cc_conn_close(struct cc_conn *c);

/* Close after everything queued has been written. */
void cc_conn_close_after_write(struct cc_conn *c);

/* 1 when c (loop 0) can move now: nothing is left to write and TLS holds
 * no bytes back (read from the socket, not yet decrypted). */
int cc_conn_movable(const struct cc_conn *c);

/* Move c (loop 0, movable) to worker loop to: its socket, TLS session and
 * unread input go there by mail, where c->proto->on_adopted runs.  After
 * this call loop 0 must not touch c. */
void cc_conn_move(struct cc_conn *c, struct cc_loop *to);

/* Take the connections' per-loop state key (loop.h).  Once, at start. */
void cc_conn_init(void);

/* Shutdown: close idle HTTP connections, tell upgraded ones (their
 * on_shutdown), on every loop. */
void cc_conn_shutdown_all(void);

/* Offer c's queued output to its socket now, without blocking (TLS: its
 * records first); what the kernel does not take stays queued.  Returns 0
 * when encrypting failed and closed c (which may then be gone). */
int cc_conn_write_now(struct cc_conn *c);

/* Bytes queued for c's peer and not yet taken by the kernel (TLS: the
 * frames not yet encrypted and the records not yet written). */
size_t cc_conn_out_len(const struct cc_conn *c);

/* The end of a loop's turn (its flush event; arg: the loop): write the
 * output queued for its connections in that turn, one writev each (TLS:
 * encrypted in one go first), and watch for writability only those the
 * kernel did not take whole. */
void cc_conn_flush(evutil_socket_t fd, short what, void *arg);

/* Close every connection loop `on` still has (shutdown, after the loops
 * stopped: the grace period ran out or a second signal came). */
void cc_conn_close_all(struct cc_loop *on);

/* Live connections on all loops (loop 0). */
uint64_t cc_conn_count(void);

#endif
