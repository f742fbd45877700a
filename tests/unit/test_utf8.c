/*
 * test_utf8.c - the UTF-8 validator: every RFC 3629 boundary, every class
 * of invalid input, incremental feeding split at every byte, and the
 * ASCII fast path at every alignment.
 */
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "utf8.h"

#define VALID(lit) cc_utf8_valid(lit, sizeof(lit) - 1)

static void test_valid(void)
{
    is_int(cc_utf8_valid("", 0), 1, "empty input is valid");
    is_int(cc_utf8_valid(NULL, 0), 1, "NULL with length 0 is valid");
    is_int(VALID("hello, ward 7"), 1, "ASCII text");
    is_int(VALID("\xC3\xA9"), 1, "2-byte char U+00E9");
    is_int(VALID("\xE2\x82\xAC"), 1, "3-byte char U+20AC");
    is_int(VALID("\xF0\x9D\x84\x9E"), 1, "4-byte char U+1D11E");
    is_int(VALID("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80!"), 1,
           "mixed 1-4 byte text");
    is_int(VALID("a\0b"), 1, "U+0000 inside text is valid");
}

static void test_boundaries(void)
{
    is_int(VALID("\x7F"), 1, "U+007F, last 1-byte");
    is_int(VALID("\xC2\x80"), 1, "U+0080, first 2-byte");
    is_int(VALID("\xDF\xBF"), 1, "U+07FF, last 2-byte");
    is_int(VALID("\xE0\xA0\x80"), 1, "U+0800, first 3-byte");
    is_int(VALID("\xED\x9F\xBF"), 1, "U+D7FF, last before surrogates");
    is_int(VALID("\xEE\x80\x80"), 1, "U+E000, first after surrogates");
    is_int(VALID("\xEF\xBF\xBF"), 1, "U+FFFF, last 3-byte");
    is_int(VALID("\xF0\x90\x80\x80"), 1, "U+10000, first 4-byte");
    is_int(VALID("\xF4\x8F\xBF\xBF"), 1, "U+10FFFF, last code point");
}

static void test_invalid(void)
{
    is_int(VALID("\xC0\x80"), 0, "overlong C0 80 (NUL)");
    is_int(VALID("\xC1\xBF"), 0, "overlong C1 BF");
    is_int(VALID("\xE0\x80\x80"), 0, "overlong E0 80 80");
    is_int(VALID("\xE0\x9F\xBF"), 0, "overlong E0 9F BF");
    is_int(VALID("\xF0\x80\x80\x80"), 0, "overlong F0 80 80 80");
    is_int(VALID("\xF0\x8F\xBF\xBF"), 0, "overlong F0 8F BF BF");
    is_int(VALID("\xED\xA0\x80"), 0, "surrogate U+D800");
    is_int(VALID("\xED\xBF\xBF"), 0, "surrogate U+DFFF");
    is_int(VALID("\xED\xA0\xBD\xED\xB2\xA9"), 0, "CESU-8 surrogate pair");
    is_int(VALID("\xF4\x90\x80\x80"), 0, "U+110000 (F4 90)");
    is_int(VALID("\xF5\x80\x80\x80"), 0, "lead byte F5");
    is_int(VALID("\xFE"), 0, "byte FE");
    is_int(VALID("\xFF"), 0, "byte FF");
    is_int(VALID("\x80"), 0, "lone continuation 80");
    is_int(VALID("a\xBF" "b"), 0, "lone continuation BF between ASCII");
    is_int(VALID("\xC3"), 0, "truncated 2-byte");
    is_int(VALID("\xE2\x82"), 0, "truncated 3-byte");
    is_int(VALID("\xF0\x9D\x84"), 0, "truncated 4-byte");
    is_int(VALID("\xC3" "A"), 0, "ASCII where continuation expected");
    is_int(VALID("\xE2\x28\xA1"), 0, "bad second byte of 3-byte");
    is_int(VALID("\xF0\x9D\x84\xC3"), 0, "lead byte as 4th byte");
    is_int(VALID("\xC3\xA9\xA9"), 0, "extra continuation byte");
}

static void test_states(void)
{
    uint32_t s;

    s = cc_utf8_feed(CC_UTF8_ACCEPT, "\xE2", 1);
    ok(s != CC_UTF8_ACCEPT && s != CC_UTF8_REJECT,
       "inside a char the state is neither accept nor reject");
    is_int(cc_utf8_feed(CC_UTF8_ACCEPT, "ab", 2), CC_UTF8_ACCEPT,
           "feed ASCII returns ACCEPT");
    is_int(cc_utf8_feed(CC_UTF8_ACCEPT, "\xFF", 1), CC_UTF8_REJECT,
           "feed FF returns REJECT");
    is_int(cc_utf8_feed(CC_UTF8_REJECT, "ok", 2), CC_UTF8_REJECT,
           "REJECT is sticky");
    is_int(cc_utf8_feed(CC_UTF8_REJECT, "", 0), CC_UTF8_REJECT,
           "REJECT stays with no input");
    is_int(cc_utf8_feed(12345, "a", 1), CC_UTF8_REJECT,
           "an out-of-range state is REJECT");
    s = cc_utf8_feed(CC_UTF8_ACCEPT, "\xE2\x82", 2);
    is_int(cc_utf8_feed(s, "", 0), s, "empty feed keeps a partial state");
    is_int(cc_utf8_feed(s, "\xAC", 1), CC_UTF8_ACCEPT,
           "partial state completes with the last byte");
}

/* Feed s split at every position, and byte by byte: all must end in
 * ACCEPT for a valid s and never in ACCEPT for an invalid one. */
static int splits_agree(const char *s, size_t n, int valid)
{
    uint32_t st;
    size_t i;

    for (i = 0; i <= n; i++) {
        st = cc_utf8_feed(CC_UTF8_ACCEPT, s, i);
        st = cc_utf8_feed(st, s + i, n - i);
        if ((st == CC_UTF8_ACCEPT) != valid)
            return 0;
    }
    st = CC_UTF8_ACCEPT;
    for (i = 0; i < n; i++)
        st = cc_utf8_feed(st, s + i, 1);
    return (st == CC_UTF8_ACCEPT) == valid;
}

static void test_incremental(void)
{
    ok(splits_agree("\xC3\xA9", 2, 1), "2-byte char split anywhere");
    ok(splits_agree("\xE2\x82\xAC", 3, 1), "3-byte char split anywhere");
    ok(splits_agree("\xF4\x8F\xBF\xBF", 4, 1), "4-byte char split anywhere");
    ok(splits_agree("ab\xF0\x9F\x98\x80\xE2\x82\xAC" "cd", 11, 1),
       "mixed text split anywhere");
    ok(splits_agree("\xED\xA0\x80", 3, 0), "surrogate split anywhere");
    ok(splits_agree("\xE0\x9F\xBF", 3, 0), "overlong split anywhere");
    ok(splits_agree("\xF4\x90\x80\x80", 4, 0), "U+110000 split anywhere");
}

/* The ASCII skip reads 8 bytes at a time: a non-ASCII byte must be seen
 * at every position and every start alignment. */
static void test_fast_path(void)
{
    char buf[80], big[4096];
    int bad_ok = 1, good_ok = 1;
    size_t start, pos;

    for (start = 0; start < 8; start++) {
        for (pos = 0; pos < 40; pos++) {
            memset(buf, 'x', sizeof(buf));
            buf[start + pos] = (char)0xFF;
            if (cc_utf8_valid(buf + start, 40))
                bad_ok = 0;
            memset(buf, 'x', sizeof(buf));
            memcpy(buf + start + pos, "\xC3\xA9", 2);
            if (!cc_utf8_valid(buf + start, 41))
                good_ok = 0;
        }
    }
    ok(bad_ok, "FF found at every offset and alignment in ASCII");
    ok(good_ok, "2-byte char accepted at every offset and alignment");
    memset(big, 'a', sizeof(big));
    is_int(cc_utf8_valid(big, sizeof(big)), 1, "4 KiB of ASCII");
    big[4000] = (char)0x80;
    is_int(cc_utf8_valid(big, sizeof(big)), 0, "bad byte deep in ASCII");
    memcpy(big, "\xC3\xA9", 2);
    big[4000] = 'a';
    big[4095] = (char)0xC3;
    is_int(cc_utf8_valid(big, sizeof(big)), 0,
           "truncated char after a long ASCII run");
}

/* Exact counts over every 1-, 2- and 3-byte input. */
static void test_exhaustive(void)
{
    unsigned char b[3];
    unsigned long n1 = 0, n2 = 0, n3 = 0;
    unsigned a, c, d;

    for (a = 0; a < 256; a++) {
        b[0] = (unsigned char)a;
        n1 += (unsigned long)cc_utf8_valid(b, 1);
        for (c = 0; c < 256; c++) {
            b[1] = (unsigned char)c;
            n2 += (unsigned long)cc_utf8_valid(b, 2);
            for (d = 0; d < 256; d++) {
                b[2] = (unsigned char)d;
                n3 += (unsigned long)cc_utf8_valid(b, 3);
            }
        }
    }
    is_int(n1, 128, "valid 1-byte inputs: 128");
    /* 128^2 ASCII pairs + 30 * 64 two-byte chars */
    is_int(n2, 18304, "valid 2-byte inputs: 18304");
    /* 128^3 + 2 * 128 * 1920 + U+0800..U+FFFF less 2048 surrogates */
    is_int(n3, 2650112, "valid 3-byte inputs: 2650112");
}

int main(void)
{
    test_valid();
    test_boundaries();
    test_invalid();
    test_states();
    test_incremental();
    test_fast_path();
    test_exhaustive();
    return done_testing();
}
