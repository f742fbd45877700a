/*
 * strhash.h - FNV-1a of a NUL-terminated string, for the core's small
 * hash tables (hub, tally, auth's replay set, chat cache).  Plugins build
 * without the core and have their own copy (plugins/common/strhash.h).
 */
#ifndef CC_STRHASH_H
#define CC_STRHASH_H

#include <stdint.h>

static inline uint32_t cc_strhash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

#endif
