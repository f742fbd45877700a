/*
 * uuid.c - UUID parsing and UUIDv7 generation (see uuid.h).
 */
#include "uuid.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cc_uuid_canon(const char *s, size_t n, char out[CC_UUID_LEN + 1])
{
    if (n != CC_UUID_LEN)
        return -1;
    for (size_t i = 0; i < CC_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return -1;
            out[i] = '-';
            continue;
        }
        int v = hexval((unsigned char)s[i]);
        if (v < 0)
            return -1;
        out[i] = "0123456789abcdef"[v];
    }
    out[CC_UUID_LEN] = '\0';
    return 0;
}

int cc_uuid_valid(const char *s)
{
    char tmp[CC_UUID_LEN + 1];

    return s && cc_uuid_canon(s, strlen(s), tmp) == 0;
}

/* The random half of an id, from a per-thread pool that RAND_bytes fills
 * 64 ids at a time: one call per id was 4% of the event loop's time under
 * load (OpenSSL's DRBG, its parameters and locks).  carechatd does not
 * fork, so no two processes share a pool. */
static void random8(unsigned char out[8])
{
    static __thread unsigned char pool[512];
    static __thread size_t left;

    if (left < 8) {
        if (RAND_bytes(pool, sizeof pool) != 1)
            abort();
        left = sizeof pool;
    }
    left -= 8;
    memcpy(out, pool + left, 8);
    memset(pool + left, 0, 8);
}

void cc_uuid_v7(int64_t unix_us, char out[CC_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    static uint64_t last;   /* ms << 12 | frac of the newest id */
    /* sub-millisecond fraction scaled to 12 bits (RFC 9562 6.2 method 3) */
    uint64_t want = ((uint64_t)unix_us / 1000) << 12 |
                    ((uint64_t)unix_us % 1000) * 4096 / 1000;
    uint64_t prev = __atomic_load_n(&last, __ATOMIC_RELAXED), t;
    uint64_t ms;
    uint32_t frac;
    size_t o = 0;

    /* Ids made within 244 ns of each other would share the fraction and
     * sort by their random bits: take the next step instead, so ids
     * sort in the order they were made (the counter of RFC 9562 6.2). */
    do
        t = want > prev ? want : prev + 1;
    while (!__atomic_compare_exchange_n(&last, &prev, t, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED));
    ms = t >> 12;
    frac = (uint32_t)(t & 0xfff);

    random8(b + 8);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((frac >> 8) & 0x0f));
    b[7] = (unsigned char)(frac & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}
