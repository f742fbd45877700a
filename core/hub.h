/*
 * hub.h - chats and their live members on this node: who is joined to
 * which chat, and delivery of a published message to all of them.
 *
 * Each event loop has its own hub (its state under a loop.h key) holding
 * the members it owns.  Loop 0's hub is also the node's routing table:
 * for every chat it knows how many members each worker loop has, it
 * alone talks to the fan-out plugin (fanout.h: subscribe when a chat
 * gains its first member anywhere, unsubscribe when it loses its last),
 * and it keeps each chat's order: every message passes its chat's order
 * first (order.h), which drops what was delivered already and fills gaps
 * from storage.  A delivered message is encoded into one WebSocket frame
 * on loop 0 and shared, refcounted, by every member on every loop (design
 * invariant 3).  A member is a callback and its owner: the hub knows
 * nothing of connections.  Each call runs on the thread of the loop it
 * names.
 */
#ifndef CC_HUB_H
#define CC_HUB_H

#include <stddef.h>
#include <stdint.h>

struct cc_frame;
struct cc_loop;
struct cc_hub_member;

/* Give a member a frame of its chat (f is borrowed: take a reference to
 * keep it); owner is what the member joined with.  May drop the member
 * (cc_hub_leave) from inside. */
typedef void (*cc_hub_send_fn)(void *owner, struct cc_frame *f);

/* Take the hub's per-loop state key (loop.h).  Once, at start. */
void cc_hub_init(void);

/* Join owner to chat_id on loop l (the caller's own loop) for sides
 * (bits 1 << CC_SIDE_*: whose connection it is; both for a user who is
 * both parties): from now on every message and event of the chat on this
 * node reaches send(owner, frame), and a message of the other party that
 * reaches a member of a side is delivered to that side (marks.h).
 * Returns the membership handle. */
struct cc_hub_member *cc_hub_join(struct cc_loop *l, const char *chat_id,
                                  int sides, cc_hub_send_fn send,
                                  void *owner);

/* Leave; m may be NULL.  The chat is unsubscribed when its last member
 * anywhere has left (a worker tells loop 0 by mail). */
void cc_hub_leave(struct cc_hub_member *m);

/* Loop 0: count one more member of chat_id (of sides) on worker loop `to`
 * (before the connection is mailed there, so no message falls between). */
void cc_hub_route_add(const char *chat_id, struct cc_loop *to, int sides);

/* The fan-out hook (loop 0): write payload (an encoded message object) as
 * one text frame to every connection of chat_id on this node. */
void cc_hub_deliver(const char *chat_id, int64_t seq, const char *payload,
                    size_t len);

/* Loop 0: this node may have missed messages of chat_id (NULL: of any
 * chat): read them from storage and deliver them, in order, once
 * (order.h).  The fan-out plugin asks for it through the host. */
void cc_hub_resync(const char *chat_id);

#endif
