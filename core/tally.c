/*
 * tally.c - counts by string key (see tally.h).
 */
#include "tally.h"
#include "strhash.h"

#include <stdlib.h>
#include <string.h>

struct cc_tally_entry {
    struct cc_tally_entry *next;
    uint64_t count;
    char key[];
};

static struct cc_tally_entry **slot(const struct cc_tally *t,
                                    const char *key)
{
    struct cc_tally_entry **pp;

    if (!t->n_buckets)
        return NULL;
    for (pp = &t->buckets[cc_strhash(key) & (t->n_buckets - 1)]; *pp;
         pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0)
            return pp;
    return NULL;
}

static void grow(struct cc_tally *t)
{
    size_t nb = t->n_buckets ? t->n_buckets * 2 : 256;
    struct cc_tally_entry **b;

    if (t->n_buckets && t->n_entries < t->n_buckets)
        return;
    b = calloc(nb, sizeof *b);
    if (!b)
        abort();
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct cc_tally_entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            size_t k = cc_strhash(e->key) & (nb - 1);
            next = e->next;
            e->next = b[k];
            b[k] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = nb;
}

uint64_t *cc_tally_value(struct cc_tally *t, const char *key)
{
    struct cc_tally_entry **pp = slot(t, key), *e;
    size_t n;

    if (pp)
        return &(*pp)->count;
    grow(t);
    n = strlen(key);
    e = malloc(sizeof *e + n + 1);
    if (!e)
        abort();
    memcpy(e->key, key, n + 1);
    e->count = 0;
    pp = &t->buckets[cc_strhash(key) & (t->n_buckets - 1)];
    e->next = *pp;
    *pp = e;
    t->n_entries++;
    return &e->count;
}

uint64_t cc_tally_inc(struct cc_tally *t, const char *key)
{
    return ++*cc_tally_value(t, key);
}

void cc_tally_dec(struct cc_tally *t, const char *key)
{
    struct cc_tally_entry **pp = slot(t, key), *e;

    if (!pp)
        return;
    e = *pp;
    if (--e->count > 0)
        return;
    *pp = e->next;
    free(e);
    t->n_entries--;
}

void cc_tally_sweep(struct cc_tally *t, int (*drop)(uint64_t v, void *arg),
                    void *arg)
{
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct cc_tally_entry **pp = &t->buckets[i];
        while (*pp) {
            struct cc_tally_entry *e = *pp;
            if (!drop(e->count, arg)) {
                pp = &e->next;
                continue;
            }
            *pp = e->next;
            free(e);
            t->n_entries--;
        }
    }
}

void cc_tally_free(struct cc_tally *t)
{
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct cc_tally_entry *e = t->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof *t);
}
