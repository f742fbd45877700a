/*
 * xalloc.h - allocation that cannot fail: out of memory aborts, as
 * everywhere in the core (STYLE.md: error paths stay about real errors).
 * Header only; any thread.
 */
#ifndef CC_XALLOC_H
#define CC_XALLOC_H

#include <stdlib.h>

/* calloc(n, size), or abort(). */
static inline void *cc_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (!p)
        abort();
    return p;
}

/* malloc(size), or abort(). */
static inline void *cc_xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (!p)
        abort();
    return p;
}

#endif
