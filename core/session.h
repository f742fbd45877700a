/*
 * session.h - a chat over WebSocket: the upgrade handshake on
 * /ws/chat/{chat_id}/, authentication and access check, then frames in
 * (ws.c decodes) and messages out, pings, token expiry and closing.
 *
 * A session lives inside its connection (struct cc_conn, state
 * CC_CONN_WS) and is freed with it.  It runs on its connection's loop:
 * loop 0 until joined, then (threads > 1) on the worker it moves to.
 */
#ifndef CC_SESSION_H
#define CC_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct cc_conn;

/* Application close codes (documented in README). */
#define CC_CLOSE_UNAUTHORIZED 4401  /* no, malformed or refused token */
#define CC_CLOSE_FORBIDDEN 4403     /* not the chat's patient/professional */
#define CC_CLOSE_NOT_FOUND 4404     /* no such chat */
#define CC_CLOSE_TOKEN_EXPIRED 4408 /* token expired while connected */
#define CC_CLOSE_TOO_MANY 4429      /* max_websockets_per_user reached */
#define CC_CLOSE_TRY_AGAIN 1013     /* resume: storage unavailable */


/* A text frame shared by every recipient (design invariant 3), on every
 * loop: the count is atomic, the bytes never change. */
struct cc_frame {
    int refs;
    int64_t seq;     /* the message's place in its chat; 0: not ordered */
    size_t len;
    unsigned char data[];
};

/* A new frame holding the whole text frame for payload; refs = 1,
 * seq = 0 (set it for a chat's message). */
struct cc_frame *cc_frame_text(const char *payload, size_t len);
struct cc_frame *cc_frame_ref(struct cc_frame *f);
void cc_frame_unref(struct cc_frame *f);

/* 1 when the request on c is a WebSocket chat path (/ws/chat/...). */
int cc_session_is_ws_path(const struct cc_conn *c);

/* Take over c for the request that asked for /ws/chat/...: validate the
 * handshake (answering 400/405/426 itself), authenticate, look up the
 * chat, then switch protocols. */
void cc_session_upgrade(struct cc_conn *c);

/* Bytes arrived on an upgraded connection. */
void cc_session_on_read(struct cc_conn *c);

/* Output drained (bufferevent write callback). */
void cc_session_on_write(struct cc_conn *c);

/* Queue a shared frame to c (no copy).  Disconnects a client whose unread
 * output passed the high-water mark.  A frame with a seq is not sent to
 * a connection that is catching up (resume.h), nor when that connection
 * was sent that seq or a later one already. */
void cc_session_send_frame(struct cc_conn *c, struct cc_frame *f);

/* For resume.c (loop 0).  Send a message of seq from history to c: no
 * high-water check (the next page waits for the output to drain). */
void cc_session_send_resumed(struct cc_conn *c, const char *payload,
                             size_t len, int64_t seq);
/* c has every message up to seq already (its since): a later live copy of
 * one of them is not sent. */
void cc_session_has_upto(struct cc_conn *c, int64_t seq);
/* c is caught up (or gave up resuming): live from now on, and off to a
 * worker loop if there are any. */
void cc_session_resumed(struct cc_conn *c);
/* Send {"error": msg} to c. */
void cc_session_send_error(struct cc_conn *c, const char *msg);
/* 1 once c's session is closing. */
int cc_session_closing(const struct cc_conn *c);
/* The chat c is joined to (canonical id). */
const char *cc_session_chat_id(const struct cc_conn *c);

/* Start the closing handshake with code and reason. */
void cc_session_close(struct cc_conn *c, int code, const char *reason);

/* c has arrived on its worker loop (conn.c moved the socket): start its
 * timers there, join its chat, read what it sent meanwhile. */
void cc_session_adopted(struct cc_conn *c);

/* The user c counts against max_websockets_per_user, or NULL. */
const char *cc_session_counted_user(const struct cc_conn *c);

/* Loop 0: a WebSocket of user_id has gone (from any loop). */
void cc_session_forget_user(const char *user_id);

/* Free the session state of c (called when c is freed).  On loop 0 it
 * also forgets c's user; a worker leaves that to conn.c's mail. */
void cc_session_free(struct cc_conn *c);

#endif
