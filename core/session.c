/*
 * session.c - chat over WebSocket (see session.h).
 *
 * Life of a session:
 *   upgrade request -> handshake checks (HTTP errors) -> token -> auth
 *   -> chat lookup -> 101 -> either joined (messages flow) or an error
 *   frame / close with a 4xxx code.
 * Frames are decoded by ws.c; this file decides what they mean.
 */
#include "session.h"
#include "audit.h"
#include "auth.h"
#include "chatcache.h"
#include "conn.h"
#include "frame.h"
#include "hub.h"
#include "log.h"
#include "marks.h"
#include "loop.h"
#include "metrics.h"
#include "msg.h"
#include "resume.h"
#include "router.h"
#include "send.h"
#include "server.h"
#include "store.h"
#include "ticket.h"
#include "timefmt.h"
#include "uuid.h"
#include "ws.h"

#include <carechat/auth.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include "tally.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLOSE_WAIT_MS 3000   /* how long we wait for the client's close */
#define TOKEN_MAX 8192

struct cc_ws {
    struct cc_ws_reader rd;
    struct cc_auth_req auth;        /* the principal once authenticated */
    char chat_id[CC_UUID_LEN + 1];
    char chat_patient[CC_UUID_LEN + 1];
    char chat_professional[CC_UUID_LEN + 1];
    struct cc_hub_member *member;   /* set while joined */
    struct event *timer;            /* ping / pong / close wait */
    struct event *expiry;           /* token expiry */
    uint64_t last_rx_ms;            /* last frame from the client */
    int open;                       /* 101 sent */
    int ping_outstanding;
    int close_sent;
    int auth_pending;
    int handshaking;                /* counted in pending_handshakes */
    int user_counted;               /* counted in per_user */
    struct cc_loop *move_to;        /* worker to hand over to, once idle */
    char since[CC_UUID_LEN + 1];    /* ?since=, canonical; "" if none */
    int since_bad;                  /* ?since= was not a UUID */
    struct cc_resume *resume;       /* set while catching up (resume.h) */
    int ordered;                    /* resumed: frames go out once, by seq */
    int64_t sent_seq;               /* with ordered: the last seq sent */
    int close_code;                 /* sent or echoed; 0: none (audit) */
    int receipts;                   /* ?receipts=1: events too */
    int sides;                      /* bits (1 << side): the user's sides
                                       in the chat, once joined */
    uint64_t typing_ms;             /* last typing relayed (send.h) */
};

static uint64_t pending_handshakes;
static struct cc_tally per_user;    /* open WebSockets by user id */

/* A WebSocket of a counted user closed on a worker (worker -> loop 0). */
struct forget_mail {
    struct cc_mail m;
    char user[CC_USER_ID_MAX];
};

static const struct cc_conn_proto ws_proto;
static void member_send(void *owner, struct cc_frame *f);

static uint64_t now_ms(void)
{
    return cc_time_mono_ns() / 1000000;
}

static void arm(struct event *ev, uint64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000),
                          (suseconds_t)(ms % 1000) * 1000 };

    evtimer_add(ev, &tv);
}

/* ---------------------------------------------------------------- frames */

static void frame_cleanup(const void *data, size_t len, void *arg)
{
    cc_frame_unref(arg);
}

/* Drop a client that does not read (design invariant 5).  Returns 1 when
 * c was dropped. */
static int over_high_water(struct cc_conn *c)
{
    size_t queued = cc_conn_out_len(c);

    if (queued <= cc_srv->lim.out_high_water)
        return 0;
    /* Frames queued in this turn of the event loop (a burst of stored
     * messages) have not been offered to the socket yet: hand them to the
     * kernel (non-blocking) before judging the client. */
    if (!cc_conn_write_now(c))
        return 1; /* the TLS filter failed: c is closed */
    queued = cc_conn_out_len(c);
    if (queued <= cc_srv->lim.out_high_water)
        return 0;
    cc_log(CC_LOG_WARN, "ws", "%s: client is not reading (%zu bytes "
           "queued); disconnecting", c->peer, queued);
    cc_conn_close(c);
    return 1;
}

/* Frames up to this size are copied into the connection's output, larger
 * ones referenced.  A reference costs libevent a chain of its own (an
 * allocation, a free, and a pointer to chase on every writev), more than
 * copying a small frame into the chain already there; the frame is still
 * encoded once per message. */
#define FRAME_COPY_MAX 1024

/* Queue a shared frame to c (no copy for a large one).  Disconnects a
 * client whose unread output passed the high-water mark.  A frame with a
 * seq is not sent to a connection that is catching up (resume.h), nor
 * when that connection was sent that seq or a later one already. */
static void send_frame(struct cc_conn *c, struct cc_frame *f)
{
    struct cc_ws *ws = c->ws;
    struct evbuffer *out;

    if (c->dead || !ws || ws->close_sent)
        return;
    if (f->kind == CC_FRAME_EVENT &&
        (!ws->receipts || (f->audience && !(f->audience & ws->sides))))
        return; /* events go to those who asked, for whom they are */
    if (f->seq > 0 && ws->resume) {
        cc_resume_live(ws->resume, f->seq); /* a page will carry it */
        return;
    }
    if (f->seq > 0 && ws->ordered) {
        if (f->seq <= ws->sent_seq)
            return; /* a page of history carried it already */
        ws->sent_seq = f->seq;
    }
    if (over_high_water(c))
        return;
    if (f->kind == CC_FRAME_MESSAGE)
        cc_metrics_add(c->loop, CC_STAT_DELIVERED, 1);
    out = bufferevent_get_output(c->bev);
    if (f->len <= FRAME_COPY_MAX) {
        if (evbuffer_add(out, f->data, f->len) < 0)
            abort(); /* out of memory, as everywhere in the core */
        return;
    }
    if (evbuffer_add_reference(out, f->data, f->len, frame_cleanup,
                               cc_frame_ref(f)) < 0)
        cc_frame_unref(f);
}

/* A hub member's frame (hub.h). */
static void member_send(void *owner, struct cc_frame *f)
{
    send_frame(owner, f);
}

/* Send a control or small text frame built here. */
static void send_raw(struct cc_conn *c, int opcode, const void *data,
                     size_t len)
{
    unsigned char hdr[10];
    size_t hlen = cc_ws_header_encode(hdr, opcode, len);
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_add(out, hdr, hlen);
    if (len)
        evbuffer_add(out, data, len);
}

static void send_error(struct cc_conn *c, const char *msg)
{
    struct cc_sbuf b = { 0 };

    if (c->dead || c->ws->close_sent)
        return;
    cc_json_error(&b, msg);
    send_raw(c, CC_WS_OP_TEXT, b.p, b.len);
    cc_sbuf_free(&b);
}

void cc_session_send_error(struct cc_conn *c, const char *msg)
{
    send_error(c, msg);
}

void cc_session_send_resumed(struct cc_conn *c, const char *payload,
                             size_t len, int64_t seq)
{
    struct cc_frame f;
    int other;

    send_raw(c, CC_WS_OP_TEXT, payload, len);
    c->ws->sent_seq = seq;
    /* The other party's message reached this side: delivered. */
    cc_frame_classify(&f, payload, len);
    other = f.sender == CC_SIDE_PATIENT ? CC_SIDE_PROFESSIONAL
                                        : CC_SIDE_PATIENT;
    if (f.sender && f.id[0] && (c->ws->sides & (1 << other)))
        cc_marks_delivered(c->ws->chat_id, other, seq, f.id);
}

void cc_session_has_upto(struct cc_conn *c, int64_t seq)
{
    if (seq > c->ws->sent_seq)
        c->ws->sent_seq = seq;
}

int cc_session_closing(const struct cc_conn *c)
{
    return !c->ws || c->ws->close_sent;
}

const char *cc_session_chat_id(const struct cc_conn *c)
{
    return c->ws->chat_id;
}

static void send_close(struct cc_conn *c, int code, const char *reason)
{
    unsigned char p[125];
    size_t n = 0;

    if (code != CC_WS_CLOSE_NO_STATUS)
        n = cc_ws_close_payload(p, code, reason);
    send_raw(c, CC_WS_OP_CLOSE, p, n);
    c->ws->close_sent = 1;
    c->ws->close_code = code;
}

void cc_session_close(struct cc_conn *c, int code, const char *reason)
{
    struct cc_ws *ws = c->ws;

    if (c->dead || !ws || ws->close_sent)
        return;
    if (!ws->open) {
        c->keep_alive = 0;
        cc_conn_respond_error(c, 503, reason);
        return;
    }
    send_close(c, code, reason);
    cc_hub_leave(ws->member);
    ws->member = NULL;
    arm(ws->timer, CLOSE_WAIT_MS); /* then drop, answered or not */
}

/* A protocol fault: close with code and drop without waiting. */
static void fail(struct cc_conn *c, int code, const char *reason)
{
    cc_log(CC_LOG_INFO, "ws", "%s: closing with %d: %s", c->peer, code,
           reason);
    if (!c->ws->close_sent)
        send_close(c, code, reason);
    cc_conn_close_after_write(c);
}

static const char *fault_reason(int code)
{
    switch (code) {
    case CC_WS_CLOSE_UNSUPPORTED: return "Binary frames are not supported";
    case CC_WS_CLOSE_INVALID_DATA: return "Invalid UTF-8";
    case CC_WS_CLOSE_TOO_BIG: return "Message too big";
    default: return "Protocol error";
    }
}

/* -------------------------------------------------------------- messages */

/* The pipeline's answer to c's message (send.h), on c's loop.  A stored
 * message reaches c as it reaches every member (the hub); only a refusal
 * and the original of a client_id resend are c's alone. */
static void sent(void *arg, const struct cc_send_result *r)
{
    struct cc_conn *c = arg;
    struct cc_sbuf b = { 0 };

    if (!cc_conn_release(c) || c->dead || !c->ws || c->ws->close_sent)
        return;
    /* A stored message reaches c through the hub; a read mark as the
     * event (when c asked for events); typing is never answered. */
    if (r->outcome == CC_SEND_REFUSED) {
        send_error(c, r->error);
    } else if (r->outcome == CC_SENT_DUPLICATE) {
        cc_sbuf_adds(&b, "{\"message\": ");
        cc_json_message(&b, r->message, 0);
        cc_sbuf_adds(&b, "}");
        send_raw(c, CC_WS_OP_TEXT, b.p, b.len);
        cc_sbuf_free(&b);
    }
}

/* Where c is now (loop 0: c->loop changes only there, when c moves). */
static struct cc_loop *loop_of(void *arg)
{
    return ((struct cc_conn *)arg)->loop;
}

static void on_text(void *arg, const char *data, size_t len)
{
    struct cc_conn *c = arg;
    struct cc_ws *ws = c->ws;
    struct cc_send_req req = {
        .loop = c->loop, .loop_of = loop_of, .via = CC_VIA_WS,
        .who = &ws->auth.principal,
        .peer = c->peer, .chat_id = ws->chat_id,
        .patient_id = ws->chat_patient,
        .professional_id = ws->chat_professional,
        .text = data, .len = len, .typing_ms = &ws->typing_ms,
        .done = sent, .arg = c,
    };

    if (ws->close_sent)
        return;
    cc_conn_hold(c);
    cc_send(&req);
}

static void on_ping(void *arg, const unsigned char *data, size_t len)
{
    struct cc_conn *c = arg;

    if (!c->ws->close_sent)
        send_raw(c, CC_WS_OP_PONG, data, len);
}

static void on_pong(void *arg, const unsigned char *data, size_t len)
{
}

static void on_close(void *arg, int code, const char *reason, size_t len)
{
    struct cc_conn *c = arg;

    if (!c->ws->close_sent)
        send_close(c, code, ""); /* echo the code (RFC 6455 5.5.1) */
    cc_conn_close_after_write(c);
}

static const struct cc_ws_handler handler = {
    .on_text = on_text,
    .on_ping = on_ping,
    .on_pong = on_pong,
    .on_close = on_close,
};

/* Decode and handle one buffered frame.  Returns 1 to continue, 0 when
 * more bytes are needed or the connection is closing. */
static int read_frame(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t avail = evbuffer_get_length(in);
    unsigned char hdr[CC_WS_MAX_HEADER];
    struct cc_ws_frame f;
    ev_ssize_t n = evbuffer_copyout(in, hdr, sizeof hdr);
    int rc = cc_ws_parse_header(hdr, n > 0 ? (size_t)n : 0, 1,
                                cc_srv->lim.max_ws_message, &f);
    unsigned char *p;

    if (rc < 0) {
        fail(c, -rc, fault_reason(-rc));
        return 0;
    }
    if (rc == 0 || avail < f.header_len + f.payload_len)
        return 0;
    p = evbuffer_pullup(in, (ev_ssize_t)(f.header_len + f.payload_len));
    ws->last_rx_ms = now_ms();
    ws->ping_outstanding = 0;
    cc_conn_hold(c);
    rc = cc_ws_reader_frame(&ws->rd, &f, p + f.header_len, &handler, c);
    if (!cc_conn_release(c) || c->dead)
        return 0;
    if (c->state != CC_CONN_WS || !c->bev)
        return 0;
    evbuffer_drain(in, f.header_len + f.payload_len);
    if (rc) {
        fail(c, rc, fault_reason(rc));
        return 0;
    }
    return c->state == CC_CONN_WS;
}

static void session_on_read(struct cc_conn *c)
{
    if (!c->ws || !c->ws->open)
        return; /* bytes wait until the handshake completes */
    while (!c->dead && c->state == CC_CONN_WS && read_frame(c))
        ;
}

/* Loop 0: hand a joined WebSocket to its worker once everything queued
 * for it here has been written (conn.c's condition): from the moment
 * loop 0 counts it on the worker, its chat's frames go there by mail,
 * behind the connection itself. */
static void move_to_worker(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;
    struct cc_loop *to = ws->move_to;

    if (c->dead || ws->close_sent || !ws->member || !cc_conn_movable(c))
        return;
    ws->move_to = NULL;
    cc_log(CC_LOG_DEBUG, "ws", "%s: moves to loop %u", c->peer,
           cc_loop_index(to));
    cc_hub_route_add(ws->chat_id, to, ws->sides);
    cc_hub_leave(ws->member);
    ws->member = NULL;
    event_free(ws->timer);
    ws->timer = NULL;
    if (ws->expiry) {
        event_free(ws->expiry);
        ws->expiry = NULL;
    }
    cc_conn_move(c, to);
}

static void session_on_write(struct cc_conn *c)
{
    if (c->ws && c->ws->resume)
        cc_resume_on_write(c->ws->resume);
    else if (c->ws && c->ws->move_to)
        move_to_worker(c);
}

void cc_session_resumed(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;

    cc_resume_free(ws->resume);
    ws->resume = NULL;
    ws->move_to = cc_loop_next_worker();
    if (ws->move_to && cc_conn_out_len(c) == 0)
        move_to_worker(c);
}

/* ------------------------------------------------------------ liveness */

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_conn *c = arg;
    struct cc_ws *ws = c->ws;
    uint64_t idle = now_ms() - ws->last_rx_ms;

    if (ws->close_sent) {
        cc_conn_close(c); /* no close reply in time */
        return;
    }
    if (ws->ping_outstanding) {
        cc_log(CC_LOG_INFO, "ws", "%s: no answer to ping; dropping",
               c->peer);
        cc_conn_close(c);
        return;
    }
    if (idle + 50 >= cc_srv->lim.ping_interval_ms) {
        send_raw(c, CC_WS_OP_PING, "", 0);
        ws->ping_outstanding = 1;
        arm(ws->timer, cc_srv->lim.pong_timeout_ms);
        return;
    }
    arm(ws->timer, cc_srv->lim.ping_interval_ms - idle);
}

static void expiry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_conn *c = arg;

    cc_log(CC_LOG_INFO, "ws", "%s: token expired; closing", c->peer);
    cc_session_close(c, CC_CLOSE_TOKEN_EXPIRED, "Token expired");
}

/* ------------------------------------------------------------ handshake */

/* Check the upgrade request; on failure answer it and return -1. */
/* Browsers send Origin: with allowed_origins set, only those pages may
 * open a chat (Cross-Site WebSocket Hijacking).  Clients that send no
 * Origin (apps, scripts) are not browsers and pass. */
static int origin_allowed(const struct cc_http_header *origin)
{
    const char *p = cc_srv->allowed_origins;

    if (!p || !origin)
        return 1;
    while (*p) {
        size_t n;
        while (*p == ' ' || *p == ',')
            p++;
        n = strcspn(p, ", ");
        if (n && ((n == 1 && *p == '*') ||
                  (n == origin->value.n &&
                   strncasecmp(p, origin->value.p, n) == 0)))
            return 1;
        p += n;
    }
    return 0;
}

static int check_handshake(struct cc_conn *c, char accept[29])
{
    const struct cc_http_request *h = &c->req->h;
    const struct cc_http_header *up = cc_http_header(h, "Upgrade");
    const struct cc_http_header *conn = cc_http_header(h, "Connection");
    const struct cc_http_header *ver =
        cc_http_header(h, "Sec-WebSocket-Version");
    const struct cc_http_header *key = cc_http_header(h, "Sec-WebSocket-Key");

    c->keep_alive = 0; /* whatever happens, this connection is not reused */
    if (h->method != CC_HTTP_GET) {
        cc_conn_respond_lit(c, 405, "Allow: GET\r\n",
                        "{\"error\": \"Method not allowed\"}");
        return -1;
    }
    if (!origin_allowed(cc_http_header(h, "Origin"))) {
        cc_log(CC_LOG_INFO, "ws", "%s: Origin not in allowed_origins: 403",
               c->peer);
        cc_conn_respond_error(c, 403, "Origin not allowed");
        return -2;
    }
    if (!up || !cc_http_has_token(up->value, "websocket")) {
        cc_conn_respond_lit(c, 426, "Upgrade: websocket\r\n"
                        "Sec-WebSocket-Version: 13\r\n",
                        "{\"error\": \"WebSocket upgrade required\"}");
        return -1;
    }
    if (!ver || ver->value.n != 2 || memcmp(ver->value.p, "13", 2) != 0) {
        cc_conn_respond_lit(c, 426, "Sec-WebSocket-Version: 13\r\n",
                        "{\"error\": \"Unsupported WebSocket version\"}");
        return -1;
    }
    if (h->version_minor < 1 || !cc_http_header(h, "Host") || !conn ||
        !cc_http_has_token(conn->value, "upgrade") || !key ||
        cc_ws_accept_key(key->value.p, key->value.n, accept) < 0) {
        cc_conn_respond_error(c, 400, "Invalid WebSocket handshake");
        return -1;
    }
    return 0;
}

static void send_101(struct cc_conn *c, const char *accept)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);

    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n"
                        "Server: carechat\r\n\r\n", accept);
}

/* Switch protocols; from here on the client hears close codes. */
static void open_session(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;
    const struct cc_http_request *h = &c->req->h;
    char accept[29];
    const struct cc_http_header *key = cc_http_header(h, "Sec-WebSocket-Key");

    cc_ws_accept_key(key->value.p, key->value.n, accept);
    send_101(c, accept);
    cc_conn_access_log(c, 101);
    free(c->req->head);
    free(c->req->body);
    free(c->req);
    c->req = NULL;
    ws->open = 1;
    if (ws->handshaking) {
        ws->handshaking = 0;
        pending_handshakes--;
    }
    ws->last_rx_ms = now_ms();
    arm(ws->timer, cc_srv->lim.ping_interval_ms);
}

/* Close when the token lapses.  Tokens valid for more than ten years
 * need no timer (and would overflow the arithmetic). */
static void arm_expiry(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;
    int64_t exp = ws->auth.principal.expires_at;
    int64_t now_s = cc_time_now_us() / 1000000;

    if (exp <= 0 || exp - now_s >= 10LL * 365 * 86400)
        return;
    ws->expiry = evtimer_new(cc_loop_base(c->loop), expiry_cb, c);
    if (!ws->expiry)
        abort();
    arm(ws->expiry, exp > now_s ? (uint64_t)(exp - now_s) * 1000 : 0);
}

static void chat_found(struct cc_conn *c, const struct cc_chat *chat)
{
    struct cc_ws *ws = c->ws;
    const struct cc_principal *p = &ws->auth.principal;

    open_session(c);
    if (p->patient_id[0] && strcmp(p->patient_id, chat->patient_id) == 0)
        ws->sides |= 1 << CC_SIDE_PATIENT;
    if (p->professional_id[0] &&
        strcmp(p->professional_id, chat->professional_id) == 0)
        ws->sides |= 1 << CC_SIDE_PROFESSIONAL;
    if (!ws->sides) {
        char q[2 * CC_USER_ID_MAX];
        cc_log(CC_LOG_INFO, "ws", "%s: user %s is not a party of chat %s",
               c->peer, cc_log_q(q, sizeof q, p->user_id), ws->chat_id);
        cc_metrics_handshake(CC_HS_FORBIDDEN);
        cc_audit_log("access_denied", NULL, CC_CLOSE_FORBIDDEN, c->peer, p,
                     ws->chat_id, NULL);
        cc_session_close(c, CC_CLOSE_FORBIDDEN, "Access denied");
        return;
    }
    if (cc_audit_join(c->peer, p, ws->chat_id) < 0) {
        cc_session_close(c, CC_CLOSE_TRY_AGAIN, CC_AUDIT_UNAVAILABLE);
        return;
    }
    cc_metrics_handshake(CC_HS_JOINED);
    snprintf(ws->chat_patient, sizeof ws->chat_patient, "%s",
             chat->patient_id);
    snprintf(ws->chat_professional, sizeof ws->chat_professional, "%s",
             chat->professional_id);
    ws->member = cc_hub_join(c->loop, ws->chat_id, ws->sides, member_send,
                             c);
    arm_expiry(c);
    if (cc_log_level() >= CC_LOG_DEBUG) {
        char q[2 * CC_USER_ID_MAX];
        cc_log(CC_LOG_DEBUG, "ws", "%s: user %s joined chat %s", c->peer,
               cc_log_q(q, sizeof q, p->user_id), ws->chat_id);
    }
    if (ws->since_bad ||
        (ws->since[0] && !cc_store_can(CC_STORE_SINCE))) {
        send_error(c, ws->since_bad ? CC_ERR_SINCE_BAD : CC_ERR_SINCE_OLD);
    } else if (ws->since[0]) {
        /* Caught up on loop 0 first, then moved (cc_session_resumed). */
        ws->ordered = 1;
        cc_resume_start(&ws->resume, c, ws->since);
    }
    if (!ws->resume)
        ws->move_to = cc_loop_next_worker();
    session_on_read(c); /* frames sent before the 101 was read */
}

/* c has arrived on its worker loop (conn.c moved the socket): start its
 * timers there, join its chat, read what it sent meanwhile. */
static void session_adopted(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;

    ws->timer = evtimer_new(cc_loop_base(c->loop), timer_cb, c);
    if (!ws->timer)
        abort();
    arm(ws->timer, cc_srv->lim.ping_interval_ms);
    arm_expiry(c);
    ws->member = cc_hub_join(c->loop, ws->chat_id, ws->sides, member_send,
                             c);
    session_on_read(c); /* frames that came while it moved */
}

static void chat_lookup_done(void *arg, int status,
                             const struct cc_store_result *res)
{
    struct cc_conn *c = arg;

    if (!cc_conn_release(c))
        return;
    if (status == CC_OK && res->chat) {
        cc_chatcache_put(res->chat);
        chat_found(c, res->chat);
        return;
    }
    if (status == CC_E_NOTFOUND) {
        cc_metrics_handshake(CC_HS_NOT_FOUND);
        cc_audit_log("ws_join", NULL, CC_CLOSE_NOT_FOUND, c->peer,
                     &c->ws->auth.principal, c->ws->chat_id, NULL);
        open_session(c);
        send_error(c, CC_ERR_NOT_FOUND);
        cc_session_close(c, CC_CLOSE_NOT_FOUND, CC_ERR_NOT_FOUND);
        return;
    }
    cc_log(CC_LOG_WARN, "ws", "chat lookup failed: %s",
           res->error ? res->error : "storage error");
    cc_metrics_handshake(CC_HS_UNAVAILABLE);
    cc_conn_respond_error(c, 503, "Storage unavailable; try again");
}

static void lookup_chat(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;
    struct cc_viewer v = { .struct_size = sizeof v };
    const struct cc_chat_parties *known;
    char canon[CC_UUID_LEN + 1];

    if (cc_uuid_canon(ws->chat_id, strlen(ws->chat_id), canon) < 0) {
        struct cc_store_result none = { .struct_size = sizeof none };
        cc_conn_hold(c);
        chat_lookup_done(c, CC_E_NOTFOUND, &none);
        return;
    }
    memcpy(ws->chat_id, canon, sizeof canon);
    known = cc_chatcache_get(ws->chat_id);
    if (known) {
        struct cc_chat chat = { .struct_size = sizeof chat,
                                .id = known->chat_id,
                                .patient_id = known->patient_id,
                                .professional_id = known->professional_id };
        chat_found(c, &chat);
        return;
    }
    cc_conn_hold(c);
    if (cc_store_chat_get(ws->chat_id, &v, chat_lookup_done, c) != CC_OK) {
        cc_conn_release(c);
        cc_metrics_handshake(CC_HS_BUSY);
        cc_conn_respond_error(c, 503, "Server busy; try again");
    }
}

static void auth_done(void *arg, int status, struct cc_auth_req *req)
{
    struct cc_conn *c = arg;

    c->ws->auth_pending = 0;
    if (status == CC_AUTH_RETRY) {
        /* The token may be good; storage could not record its profile:
         * answered before the switch, as a busy storage is. */
        cc_metrics_handshake(CC_HS_UNAVAILABLE);
        cc_conn_respond_error(c, 503, req->error);
        return;
    }
    if (status != CC_AUTH_OK) {
        char q[2 * sizeof req->error];
        cc_log(CC_LOG_INFO, "ws", "%s: authentication failed: %s", c->peer,
               cc_log_q(q, sizeof q, req->error));
        cc_metrics_handshake(CC_HS_UNAUTHORIZED);
        cc_audit_log("auth_failure", NULL, CC_CLOSE_UNAUTHORIZED, c->peer,
                     NULL, c->ws->chat_id, NULL);
        open_session(c);
        cc_session_close(c, CC_CLOSE_UNAUTHORIZED, req->error);
        return;
    }
    if (cc_srv->lim.max_ws_per_user) {
        c->ws->user_counted = 1;
        if (cc_tally_inc(&per_user, req->principal.user_id) >
            cc_srv->lim.max_ws_per_user) {
            char q[2 * CC_USER_ID_MAX];
            cc_log(CC_LOG_WARN, "ws", "%s: user %s has %llu WebSockets "
                   "open already: 4429", c->peer,
                   cc_log_q(q, sizeof q, req->principal.user_id),
                   (unsigned long long)cc_srv->lim.max_ws_per_user);
            cc_metrics_handshake(CC_HS_TOO_MANY);
            open_session(c);
            cc_session_close(c, CC_CLOSE_TOO_MANY, "Too many connections");
            return;
        }
    }
    lookup_chat(c);
}

/* ?since=<message id> (resume.h): kept canonical, or flagged as bad
 * (answered once the session is open). */
static void parse_since(struct cc_conn *c, struct cc_ws *ws)
{
    char v[64];
    long n = cc_http_query_param(c->req->h.query, "receipts", v, sizeof v);

    /* ?receipts=1: events (read, delivered, typing) too. */
    ws->receipts = n == 1 && v[0] == '1';
    n = cc_http_query_param(c->req->h.query, "since", v, sizeof v);
    if (n == -1)
        return; /* absent */
    if (n < 0 || cc_uuid_canon(v, (size_t)n, ws->since) < 0) {
        ws->since[0] = '\0';
        ws->since_bad = 1;
    }
}

/* A ticket's principal came back (ticket.h), or not. */
static void ticket_taken(void *arg, int status, const struct cc_principal *who)
{
    struct cc_conn *c = arg;

    if (!cc_conn_release(c) || c->dead)
        return;
    if (status != CC_OK) {
        snprintf(c->ws->auth.error, sizeof c->ws->auth.error,
                 status == CC_E_NOTFOUND ? "Invalid or expired ticket"
                 : status == CC_E_NOTSUP ? "Tickets are not supported by "
                                           "this server's storage plugin"
                                         : "Ticket could not be checked; "
                                           "try again");
        auth_done(c, CC_AUTH_DENY, &c->ws->auth);
        return;
    }
    c->ws->auth.principal = *who;
    auth_done(c, CC_AUTH_OK, &c->ws->auth);
}

/* ?ticket=: redeem it instead of a token.  Returns 1 when there is one
 * (the answer comes later), 0 when there is none. */
static int redeem_ticket(struct cc_conn *c)
{
    char t[CC_TICKET_LEN + 2];
    long n = cc_http_query_param(c->req->h.query, "ticket", t, sizeof t);

    if (n == -1)
        return 0;
    c->ws->auth_pending = 1;
    cc_conn_hold(c);
    cc_ticket_redeem(t, n < 0 ? 0 : (size_t)n, ticket_taken, c);
    return 1;
}

/* GET /ws/chat/{id}/ (router.h): validate the handshake (answering
 * 400/403/405/426 itself), authenticate, look up the chat, then switch
 * protocols.  Any method comes here, for the handshake's own 405. */
static void upgrade(struct cc_conn *c, const struct cc_route_match *rm)
{
    struct cc_ws *ws;
    char accept[29];
    struct cc_http_str chat = rm->seg[0];
    char *token;
    int where;

    if (chat.n > 63) {
        c->keep_alive = 0; /* no chat has an id like it */
        cc_metrics_handshake(CC_HS_NOT_FOUND);
        cc_conn_respond_error(c, 404, "Not found");
        return;
    }
    if ((where = check_handshake(c, accept)) < 0) {
        cc_metrics_handshake(where == -2 ? CC_HS_ORIGIN : CC_HS_BAD_REQUEST);
        return;
    }
    if (pending_handshakes >= cc_srv->lim.max_handshakes) {
        cc_metrics_handshake(CC_HS_BUSY);
        cc_log(CC_LOG_WARN, "ws", "%s: %llu handshakes in progress: 503",
               c->peer, (unsigned long long)pending_handshakes);
        cc_conn_respond_error(c, 503, "Server busy; try again");
        return;
    }
    ws = calloc(1, sizeof *ws);
    if (!ws)
        abort();
    ws->handshaking = 1;
    pending_handshakes++;
    c->ws = ws;
    c->proto = &ws_proto;
    c->state = CC_CONN_WS;
    cc_ws_reader_init(&ws->rd, cc_srv->lim.max_ws_message);
    ws->timer = evtimer_new(cc_loop_base(c->loop), timer_cb, c);
    /* Not a UUID: "Chat not found" once authenticated (lookup_chat). */
    if (chat.n == CC_UUID_LEN)
        memcpy(ws->chat_id, chat.p, CC_UUID_LEN);
    parse_since(c, ws);
    cc_auth_req_init(&ws->auth, ++cc_srv->next_id);
    token = malloc(TOKEN_MAX);
    if (!token)
        abort();
    /* An Authorization header first, then ?ticket= (ticket.h), then
     * ?token= (the spec's clients). */
    where = cc_auth_find_token(&c->req->h, 0, token, TOKEN_MAX);
    if (where == CC_TOKEN_NONE && redeem_ticket(c)) {
        free(token);
        return;
    }
    if (where == CC_TOKEN_NONE)
        where = cc_auth_find_token(&c->req->h, 1, token, TOKEN_MAX);
    if (where == CC_TOKEN_NONE) {
        free(token);
        snprintf(ws->auth.error, sizeof ws->auth.error,
                 "Authentication required");
        auth_done(c, CC_AUTH_DENY, &ws->auth);
        return;
    }
    ws->auth_pending = 1;
    cc_auth_run(&ws->auth, token, strlen(token), c->peer, auth_done, c);
    OPENSSL_cleanse(token, TOKEN_MAX);
    free(token);
}

/* Loop 0: a WebSocket of user_id has gone (from any loop). */
static void forget_user(const char *user_id)
{
    cc_tally_dec(&per_user, user_id);
    if (!per_user.n_entries)
        cc_tally_free(&per_user);
}

static void forget_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct forget_mail *fm = (struct forget_mail *)mail;

    (void)on;
    forget_user(fm->user);
    free(fm);
}

/* c's user no longer counts against max_websockets_per_user: here on
 * loop 0, by mail from a worker. */
static void uncount_user(struct cc_conn *c)
{
    struct forget_mail *fm;

    if (c->loop == cc_main_loop) {
        forget_user(c->ws->auth.principal.user_id);
        return;
    }
    fm = calloc(1, sizeof *fm);
    if (!fm)
        abort();
    snprintf(fm->user, sizeof fm->user, "%s", c->ws->auth.principal.user_id);
    cc_loop_post(cc_main_loop, &fm->m, forget_cb);
}

/* Free the session state of c (conn.c frees c). */
static void session_free(struct cc_conn *c)
{
    struct cc_ws *ws = c->ws;

    if (!ws)
        return;
    if (ws->auth_pending)
        cc_auth_cancel(&ws->auth);
    if (ws->resume)
        cc_resume_free(ws->resume);
    if (ws->handshaking)
        pending_handshakes--;
    if (ws->user_counted)
        uncount_user(c);
    if (ws->chat_patient[0]) /* joined: 1006 when it just dropped */
        cc_audit_log("ws_leave", "ok", ws->close_code ? ws->close_code
                     : 1006, c->peer, &ws->auth.principal, ws->chat_id, NULL);
    cc_hub_leave(ws->member);
    if (ws->timer)
        event_free(ws->timer);
    if (ws->expiry)
        event_free(ws->expiry);
    cc_ws_reader_free(&ws->rd);
    free(ws);
    c->ws = NULL;
}

static void session_shutdown(struct cc_conn *c)
{
    cc_session_close(c, 1001, "Server shutting down");
}

static const struct cc_conn_proto ws_proto = {
    .on_read = session_on_read,
    .on_write = session_on_write,
    .on_adopted = session_adopted,
    .on_shutdown = session_shutdown,
    .on_free = session_free,
};

void cc_session_routes(void)
{
    cc_route_add(CC_PORT_PUBLIC, CC_M_ANY, "/ws/chat/{}/", upgrade, NULL);
}
