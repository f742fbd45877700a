/*
 * order.h - one chat's delivery order on this node (design invariant 6:
 * history is the truth, live delivery an optimisation of it).
 *
 * Every message the fan-out plugin hands over has its chat's seq.  The
 * hub on loop 0 offers each to its chat's order first: the next seq goes
 * out at once; one already delivered (an echo, a late copy) is dropped;
 * one after a gap (a message this node never got: Redis was down, a
 * subscription was lost, a node died between commit and publish) starts
 * a read from storage of what follows the last delivered seq, and the
 * messages come out of storage in order, each once.  A resync (the
 * fan-out plugin's link came back, cc_host_api.fanout_resync) reads what
 * follows the last delivered seq until storage has nothing more.
 *
 * Where the chat stands when it gets its first member on this node is
 * read from storage (its newest message).  That read can already count
 * a message whose live copy is still on its way, so it never drops one:
 * the first message here is delivered as it comes, unless it shows a gap
 * after that newest message (filled from storage); and a resync before
 * any message starts from it.
 * One read in flight per chat, at most CC_ORDER_PAGE messages each; a
 * failed read is tried again after CC_ORDER_RETRY_MS.
 *
 * Owns the per-chat state and its reads.  Loop 0 only.
 */
#ifndef CC_ORDER_H
#define CC_ORDER_H

#include <stdint.h>

struct cc_frame;
struct cc_order;

#define CC_ORDER_PAGE 200
#define CC_ORDER_RETRY_MS 500

/* Deliver f (a message frame with its seq) to the chat's members on this
 * node; f is borrowed. */
typedef void (*cc_order_deliver_fn)(void *arg, struct cc_frame *f);

/* The order of chat_id, whose messages read from storage go to
 * deliver(arg, frame).  Starts the read of where the chat stands. */
struct cc_order *cc_order_new(const char *chat_id,
                              cc_order_deliver_fn deliver, void *arg);

/* A message of seq reached this node: 1 when it is the next one (the
 * caller delivers it now), 0 when not (a duplicate, dropped; or it will
 * come from storage, in order). */
int cc_order_offer(struct cc_order *o, int64_t seq);

/* Messages may have been missed: read what follows the last delivered
 * seq from storage until there is nothing more. */
void cc_order_resync(struct cc_order *o);

/* The chat has no member left here: free o (now, or when its read
 * returns; nothing is delivered after this call). */
void cc_order_free(struct cc_order *o);

#endif
