/*
 * tally.h - counts by string key (connections per client address, open
 * WebSockets per user): a small chained hash table whose entries vanish
 * when their count returns to zero.  Loop thread only.
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

/* key's count (0 when absent). */
uint64_t cc_tally_get(const struct cc_tally *t, const char *key);

void cc_tally_free(struct cc_tally *t);

#endif
