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

void cc_uuid_v7(int64_t unix_us, char out[CC_UUID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t ms = (uint64_t)unix_us / 1000;
    /* sub-millisecond fraction scaled to 12 bits (RFC 9562 6.2 method 3) */
    uint32_t frac = (uint32_t)(((uint64_t)unix_us % 1000) * 4096 / 1000);
    size_t o = 0;

    if (RAND_bytes(b + 8, 8) != 1)
        abort();
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
