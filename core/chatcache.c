/*
 * chatcache.c - parties of chats seen lately (see chatcache.h).
 *
 * Set-associative: the chat id's hash picks a set of WAYS entries, looked
 * through in full (four compares of a 36-byte id); a put into a full set
 * overwrites the entry the set's clock hand points at and moves the hand,
 * so the set forgets its oldest chat first.
 */
#include "chatcache.h"
#include "strhash.h"
#include "uuid.h"

#include <carechat/storage.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct set {
    struct cc_chat_parties e[WAYS];
    unsigned hand;
};

static struct set *sets;
static size_t n_sets; /* a power of two, or 0 when off */
static size_t want_sets;

void cc_chatcache_init(size_t n)
{
    size_t s = 1;

    cc_chatcache_free();
    if (n < WAYS) {
        want_sets = 0;
        return;
    }
    while (s * 2 <= n / WAYS)
        s *= 2;
    want_sets = s;
}

static int is_id(const char *s)
{
    return s && strnlen(s, CC_UUID_LEN + 1) == CC_UUID_LEN;
}

void cc_chatcache_put(const struct cc_chat *chat)
{
    struct set *set;
    struct cc_chat_parties *e = NULL;

    if (!want_sets || !is_id(chat->id) || !is_id(chat->patient_id) ||
        !is_id(chat->professional_id))
        return;
    if (!sets) {
        sets = calloc(want_sets, sizeof *sets);
        if (!sets)
            return; /* a cache: storage still answers */
        n_sets = want_sets;
    }
    set = &sets[cc_strhash(chat->id) & (n_sets - 1)];
    for (int i = 0; i < WAYS && !e; i++)
        if (memcmp(set->e[i].chat_id, chat->id, CC_UUID_LEN) == 0)
            e = &set->e[i]; /* known: parties never change */
    if (e)
        return;
    e = &set->e[set->hand];
    set->hand = (set->hand + 1) % WAYS;
    memcpy(e->chat_id, chat->id, CC_UUID_LEN + 1);
    memcpy(e->patient_id, chat->patient_id, CC_UUID_LEN + 1);
    memcpy(e->professional_id, chat->professional_id, CC_UUID_LEN + 1);
}

static struct cc_chatcache_stats stats;

const struct cc_chat_parties *cc_chatcache_get(const char *chat_id)
{
    struct set *set;

    if (!sets || !is_id(chat_id)) {
        stats.misses++;
        return NULL;
    }
    set = &sets[cc_strhash(chat_id) & (n_sets - 1)];
    for (int i = 0; i < WAYS; i++)
        if (memcmp(set->e[i].chat_id, chat_id, CC_UUID_LEN + 1) == 0) {
            stats.hits++;
            return &set->e[i];
        }
    stats.misses++;
    return NULL;
}

void cc_chatcache_stats(struct cc_chatcache_stats *out)
{
    *out = stats;
}

void cc_chatcache_free(void)
{
    free(sets);
    sets = NULL;
    n_sets = 0;
}
