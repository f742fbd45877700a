/*
 * strhash.h - FNV-1a of a NUL-terminated string, for the plugins' small
 * hash tables (sqlite's group of chats, redis's channels).  Plugins build
 * like a third party's, without the core, so the core keeps the same
 * function in core/strhash.h.
 */
#ifndef CC_PLUGIN_STRHASH_H
#define CC_PLUGIN_STRHASH_H

#include <stdint.h>

static inline uint32_t cc_strhash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

#endif
