/*
 * hub.h - chats and their live connections on this node: who is joined to
 * which chat, and delivery of a published message to all of them.
 *
 * The hub encodes a delivered message into one WebSocket frame and shares
 * it, refcounted, among the chat's connections (design invariant 3).  It
 * tells the fan-out plugin when a chat gains its first or loses its last
 * local connection.  Loop thread only.
 */
#ifndef CC_HUB_H
#define CC_HUB_H

#include <stddef.h>
#include <stdint.h>

struct cc_conn;
struct cc_hub_member;

/* Join c to chat_id; returns the membership handle (never NULL). */
struct cc_hub_member *cc_hub_join(struct cc_conn *c, const char *chat_id);

/* Leave; m may be NULL.  Unsubscribes the chat when it empties. */
void cc_hub_leave(struct cc_hub_member *m);

/* The fan-out hook: write payload (an encoded message object) as one text
 * frame to every local connection of chat_id. */
void cc_hub_deliver(const char *chat_id, int64_t seq, const char *payload,
                    size_t len);

/* Number of chats with local connections. */
size_t cc_hub_chats(void);

/* Free the hub's tables (all members must have left). */
void cc_hub_free(void);

#endif
