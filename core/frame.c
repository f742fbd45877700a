/*
 * frame.c - shared, refcounted WebSocket text frames (see frame.h).
 */
#include "frame.h"
#include "msg.h"
#include "ws.h"

#include <carechat/storage.h>

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
    cc_frame_classify(f, payload, len);
    return f;
}

static int starts(const char *p, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);

    return n >= k && memcmp(p, prefix, k) == 0;
}

/* The side named right after key (", \"sender_type\": \"" ...) in p. */
static int side_after(const char *p, size_t n, const char *key)
{
    const char *at = cc_msg_key_from_end(p, n, key);
    size_t rest;

    if (!at)
        return 0;
    rest = n - (size_t)(at - p);
    return starts(at, rest, "patient\"") ? CC_SIDE_PATIENT
         : starts(at, rest, "professional\"") ? CC_SIDE_PROFESSIONAL
                                               : 0;
}

void cc_frame_classify(struct cc_frame *f, const char *payload, size_t len)
{
    int side;

    static const char head[] = "{\"message\": {\"id\": \"";

    f->kind = CC_FRAME_MESSAGE;
    f->audience = 0;
    f->sender = 0;
    f->id[0] = '\0';
    if (starts(payload, len, head) && len > sizeof head + CC_UUID_LEN) {
        memcpy(f->id, payload + sizeof head - 1, CC_UUID_LEN);
        f->id[CC_UUID_LEN] = '\0';
    }
    if (starts(payload, len, "{\"message\": ")) {
        /* Its own quotes are escaped in content: the first unescaped
         * key of this name is the message's. */
        f->sender = side_after(payload, len, ", \"sender_type\": \"");
        return;
    }
    f->kind = CC_FRAME_EVENT;
    if (starts(payload, len, "{\"typing\": ")) {
        side = side_after(payload, len, "\"sender_type\": \"");
        if (side)
            f->audience = 1 << (side == CC_SIDE_PATIENT
                                    ? CC_SIDE_PROFESSIONAL
                                    : CC_SIDE_PATIENT);
    }
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
