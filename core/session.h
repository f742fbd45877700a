/*
 * session.h - a chat over WebSocket: the upgrade handshake on
 * /ws/chat/{chat_id}/, authentication and access check, then frames in
 * (ws.c decodes; a chat message goes to the pipeline, send.h) and frames
 * out (the hub's, as a member of the chat), pings, token expiry and
 * closing.
 *
 * A session lives inside its connection (struct cc_conn, state
 * CC_CONN_WS, c->proto its events) and is freed with it.  It runs on its
 * connection's loop: loop 0 until joined, then (threads > 1) on the
 * worker it moves to.
 */
#ifndef CC_SESSION_H
#define CC_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct cc_conn;

/* Application close codes (documented in doc/protocol.md). */
#define CC_CLOSE_UNAUTHORIZED 4401  /* no, malformed or refused token */
#define CC_CLOSE_FORBIDDEN 4403     /* not the chat's patient/professional */
#define CC_CLOSE_NOT_FOUND 4404     /* no such chat */
#define CC_CLOSE_TOKEN_EXPIRED 4408 /* token expired while connected */
#define CC_CLOSE_TOO_MANY 4429      /* max_websockets_per_user reached */
#define CC_CLOSE_TRY_AGAIN 1013     /* resume: storage unavailable */


/* Register the WebSocket chat path with the router (at start). */
void cc_session_routes(void);

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

#endif
