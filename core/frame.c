/*
 * frame.c - shared, refcounted WebSocket text frames (see frame.h).
 */
#include "frame.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

struct cc_frame *cc_frame_text(const char *payload, size_t len)
{
    unsigned char hdr[10];
    size_t hlen = cc_ws_header_encode(hdr, CC_WS_OP_TEXT, len);
    struct cc_frame *f = malloc(sizeof *f + hlen + len);

    if (!f)
        abort();
    __atomic_store_n(&f->refs, 1, __ATOMIC_RELAXED);
    f->seq = 0;
    f->len = hlen + len;
    memcpy(f->data, hdr, hlen);
    memcpy(f->data + hlen, payload, len);
    return f;
}

struct cc_frame *cc_frame_ref(struct cc_frame *f)
{
    __atomic_add_fetch(&f->refs, 1, __ATOMIC_RELAXED);
    return f;
}

void cc_frame_unref(struct cc_frame *f)
{
    if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(f);
}
