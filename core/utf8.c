/*
 * utf8.c - strict UTF-8 validation (RFC 3629) as a table-driven DFA after
 * Bjoern Hoehrmann's decoder (bjoern.hoehrmann.de/utf-8/decoder/dfa/), with
 * a word-at-a-time skip over ASCII runs, which chat text mostly is.
 *
 * The first 256 entries map a byte to its class; the rest is the transition
 * table, 16 entries per state, indexed by class.  States:
 *   0 accept; 1 reject (sticky); 2 one continuation byte left; 3 two left;
 *   4 after E0 (needs A0..BF); 5 after ED (needs 80..9F: no surrogates);
 *   6 after F0 (needs 90..BF); 7 three left; 8 after F4 (needs 80..8F).
 * Classes: 0 ASCII; 1 80..8F; 9 90..9F; 7 A0..BF; 8 C0 C1 F5..FF (never
 * valid); 2 C2..DF; 10 E0; 3 E1..EC EE EF; 4 ED; 11 F0; 6 F1..F3; 5 F4.
 */
#include <string.h>

#include "utf8.h"

#define UTF8_NSTATES 9

static const uint8_t utf8d[256 + 16 * UTF8_NSTATES] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F, 90..9F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9,
    /* A0..BF */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    /* C0..DF */
    8, 8, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* E0..EF */
    10, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3,
    /* F0..FF */
    11, 6, 6, 6, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8,

    /* transitions; columns are classes 0..15 */
    0, 1, 2, 3, 5, 8, 7, 1, 1, 1, 4, 6, 1, 1, 1, 1, /* 0 accept */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 1 reject */
    1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, /* 2 */
    1, 2, 1, 1, 1, 1, 1, 2, 1, 2, 1, 1, 1, 1, 1, 1, /* 3 */
    1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, /* 4 E0 */
    1, 2, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, /* 5 ED */
    1, 1, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1, /* 6 F0 */
    1, 3, 1, 1, 1, 1, 1, 3, 1, 3, 1, 1, 1, 1, 1, 1, /* 7 */
    1, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 8 F4 */
};

#define UTF8_HIGH_BITS 0x8080808080808080ull

/* Return the first byte in [p, end) that is not ASCII, or end.  Reads
 * eight bytes at a time through memcpy, so any alignment is fine. */
static const unsigned char *skip_ascii(const unsigned char *p,
                                       const unsigned char *end)
{
    uint64_t w;

    while (end - p >= 8) {
        memcpy(&w, p, 8);
        if (w & UTF8_HIGH_BITS)
            break;
        p += 8;
    }
    while (p < end && *p < 0x80)
        p++;
    return p;
}

/* See utf8.h.  A state outside the DFA is treated as CC_UTF8_REJECT. */
uint32_t cc_utf8_feed(uint32_t state, const void *buf, size_t n)
{
    const unsigned char *p = buf, *end;

    if (state >= UTF8_NSTATES)
        return CC_UTF8_REJECT;
    if (n == 0 || state == CC_UTF8_REJECT)
        return state;
    end = p + n;
    while (p < end) {
        if (state == CC_UTF8_ACCEPT) {
            p = skip_ascii(p, end);
            if (p == end)
                break;
        }
        state = utf8d[256 + state * 16 + utf8d[*p++]];
        if (state == CC_UTF8_REJECT)
            break;
    }
    return state;
}

/* See utf8.h. */
int cc_utf8_valid(const void *buf, size_t n)
{
    return cc_utf8_feed(CC_UTF8_ACCEPT, buf, n) == CC_UTF8_ACCEPT;
}
