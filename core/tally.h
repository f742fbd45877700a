/*
 * tally.h - a number by string key (connections per client address, open
 * WebSockets per user, a user's rate limit): a small chained hash table.
 * As counts, entries vanish when they return to zero; as values, when a
 * sweep says so.  Loop thread only.
 */
#ifndef CC_TALLY_H
#define CC_TALLY_H

#include <stddef.h>
#include <stdint.h>

struct cc_tally_entry;

struct cc_tally {
    struct cc_tally_entry **buckets;
    size_t n_buckets, n_entries;
};

/* Add one to key's count; returns the new count. */
uint64_t cc_tally_inc(struct cc_tally *t, const char *key);

/* Take one from key's count (no-op when absent). */
void cc_tally_dec(struct cc_tally *t, const char *key);

/* key's value, to read and write; a new key's is 0.  Valid until the
 * next call that adds or removes a key. */
uint64_t *cc_tally_value(struct cc_tally *t, const char *key);

/* Remove every key for which drop(value, arg) returns 1. */
void cc_tally_sweep(struct cc_tally *t, int (*drop)(uint64_t v, void *arg),
                    void *arg);

void cc_tally_free(struct cc_tally *t);

#endif
