/*
 * carechat/fanout.h - the fan-out interface (CC_KIND_FANOUT).
 *
 * After storage confirmed a message, the host publishes it once.  The
 * fan-out plugin carries it to every node that has a subscriber for the
 * chat (itself included) and there calls host->fanout_deliver(), which
 * writes it to the chat's local connections.  Within one chat, deliveries
 * must reach fanout_deliver in publish order (seq lets a plugin restore
 * it).  The host subscribes a chat when its first local connection joins
 * and unsubscribes it when the last one leaves.  All calls are made on
 * the loop thread.
 */
#ifndef CARECHAT_FANOUT_H
#define CARECHAT_FANOUT_H

#include <carechat/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CC_FANOUT_API_VERSION 1

struct cc_fanout_api {
    uint32_t struct_size;
    int (*subscribe)(void *inst, const char *chat_id);
    int (*unsubscribe)(void *inst, const char *chat_id);
    /* payload: the encoded message, borrowed for the call. */
    int (*publish)(void *inst, const char *chat_id, int64_t seq,
                   const char *payload, size_t len);
};

#ifdef __cplusplus
}
#endif

#endif /* CARECHAT_FANOUT_H */
