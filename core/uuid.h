/*
 * uuid.h - UUID text: parsing/validation into canonical lower-case form,
 * and generation of time-ordered UUIDv7 (RFC 9562) for new ids.
 *
 * Pure apart from cc_uuid_v7(), which reads the clock and OpenSSL's
 * CSPRNG; thread-safe.
 */
#ifndef CC_UUID_H
#define CC_UUID_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CC_UUID_LEN 36   /* xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx */

/* Parse s[0..n) as a UUID in 8-4-4-4-12 hex form (either case) into
 * canonical lower case in out (37 bytes with NUL).  Returns 0, or -1 when
 * s is not a UUID. */
int cc_uuid_canon(const char *s, size_t n, char out[CC_UUID_LEN + 1]);

/* 1 when the NUL-terminated s is a UUID (any case). */
int cc_uuid_valid(const char *s);

/* A new UUIDv7 for the given wall-clock time in microseconds: 48-bit
 * millisecond timestamp, 12 bits of sub-millisecond fraction, 62 random
 * bits.  Ids made by one process sort in the order they were made: when
 * the time would not order them, the 60-bit time field steps past the
 * previous id's. */
void cc_uuid_v7(int64_t unix_us, char out[CC_UUID_LEN + 1]);

/* Copy an id (at most CC_UUID_LEN bytes of s; NULL: "") into out: what
 * snprintf("%s") did on every message, without the format engine. */
static inline void cc_uuid_copy(char out[CC_UUID_LEN + 1], const char *s)
{
    size_t n = s ? strnlen(s, CC_UUID_LEN) : 0;

    memcpy(out, s ? s : "", n);
    out[n] = '\0';
}

#endif
