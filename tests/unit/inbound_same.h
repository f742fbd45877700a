/* inbound_same.h - do msg.c's two parsers of inbound frames agree?  The
 * flat fast path must take only frames whose meaning jansson gives too:
 * the same outcome, error, and fields.  For test_msg.c and fuzz_msg.c. */
#ifndef CC_TEST_INBOUND_SAME_H
#define CC_TEST_INBOUND_SAME_H

#include "msg.h"

#include <string.h>

/* 1 when the fast path and jansson give text the same answer. */
static inline int inbound_parsers_agree(const char *text, size_t len,
                                        size_t max_chars)
{
    struct cc_inbound a, b;
    const char *ea = NULL, *eb = NULL;
    char ba[96], bb[96];
    int ra = cc_inbound_parse_with(text, len, max_chars, &a, &ea, ba,
                                   sizeof ba, 1);
    int rb = cc_inbound_parse_with(text, len, max_chars, &b, &eb, bb,
                                   sizeof bb, 0);
    int same = ra == rb;

    if (same && ra < 0)
        same = strcmp(ea, eb) == 0;
    if (same && ra == 0)
        same = a.kind == b.kind && a.role == b.role &&
               a.priority == b.priority && a.typing == b.typing &&
               strcmp(a.client_id, b.client_id) == 0 &&
               strcmp(a.read_id, b.read_id) == 0 &&
               a.content_len == b.content_len &&
               (!a.content) == (!b.content) &&
               (!a.content || memcmp(a.content, b.content,
                                     a.content_len) == 0);
    if (ra == 0)
        cc_inbound_free(&a);
    if (rb == 0)
        cc_inbound_free(&b);
    return same;
}

#endif
