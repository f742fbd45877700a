/*
 * chatcache.h - the two parties of chats seen lately, so that a
 * WebSocket handshake checks access without a storage round trip.
 *
 * A chat's parties never change: the storage interface has no call that
 * edits or deletes a chat, so an entry is never stale and nothing needs
 * invalidating, on this node or across nodes (a chat another node made is
 * simply a miss, answered by storage).  The table is bounded: four
 * entries per set, a new chat replaces the oldest of its set.  A hit
 * saves a trip to the storage thread and back; the answer is the same.
 * Loop 0 only.
 */
#ifndef CC_CHATCACHE_H
#define CC_CHATCACHE_H

#include <stddef.h>
#include <stdint.h>
#include "uuid.h"

struct cc_chat;

/* The parties of one chat, as storage gave them. */
struct cc_chat_parties {
    char chat_id[CC_UUID_LEN + 1];
    char patient_id[CC_UUID_LEN + 1];
    char professional_id[CC_UUID_LEN + 1];
};

/* Size the cache to n entries (rounded down to a power of two, at least
 * four; 0 turns it off).  Memory is taken at the first put. */
void cc_chatcache_init(size_t n);

/* Remember chat's parties (ignored when an id is not 36 characters). */
void cc_chatcache_put(const struct cc_chat *chat);

/* The parties of chat_id (canonical UUID text), or NULL on a miss.  The
 * pointer is good until the next put. */
const struct cc_chat_parties *cc_chatcache_get(const char *chat_id);

/* Lookups since start (loop 0). */
struct cc_chatcache_stats {
    uint64_t hits, misses;
};
void cc_chatcache_stats(struct cc_chatcache_stats *out);

void cc_chatcache_free(void);

#endif
