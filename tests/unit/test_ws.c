/*
 * test_ws.c - RFC 6455 framing: header parsing at every length and fault,
 * masking, message assembly with interleaved control frames, close frames,
 * frame encoding and the handshake accept key.  Frames marked "RFC 5.7"
 * are the examples from RFC 6455 section 5.7, byte for byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "ws.h"

#define MAXP 1000000 /* max_payload when the limit is not under test */

/* ----------------------------------------------------------- helpers */

/* What the handler saw; data is copied so it outlives the callback. */
struct rec {
    int n_text, n_ping, n_pong, n_close;
    int code;
    const void *ptr;          /* data pointer of the last callback */
    unsigned char data[70000];
    size_t len;
};

static void rec_store(struct rec *r, const void *p, size_t n)
{
    r->ptr = p;
    r->len = n;
    if (n > 0)
        memcpy(r->data, p, n);
}

static void on_text(void *arg, const char *p, size_t n)
{
    ((struct rec *)arg)->n_text++;
    rec_store(arg, p, n);
}

static void on_ping(void *arg, const unsigned char *p, size_t n)
{
    ((struct rec *)arg)->n_ping++;
    rec_store(arg, p, n);
}

static void on_pong(void *arg, const unsigned char *p, size_t n)
{
    ((struct rec *)arg)->n_pong++;
    rec_store(arg, p, n);
}

static void on_close(void *arg, int code, const char *p, size_t n)
{
    ((struct rec *)arg)->n_close++;
    ((struct rec *)arg)->code = code;
    rec_store(arg, p, n);
}

static const struct cc_ws_handler H = { on_text, on_ping, on_pong, on_close };
static const unsigned char MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

static int rec_is(const struct rec *r, const char *s)
{
    return r->len == strlen(s) && memcmp(r->data, s, r->len) == 0;
}

/* Build a masked client frame (or unmasked when mask is NULL) into out. */
static size_t build(unsigned char *out, int fin, int opcode,
                    const unsigned char *mask, const void *p, size_t n)
{
    size_t h = cc_ws_header_encode(out, opcode, n), i;

    if (!fin)
        out[0] &= 0x7F;
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + h, mask, 4);
        h += 4;
    }
    for (i = 0; i < n; i++)
        out[h + i] = ((const unsigned char *)p)[i] ^ (mask ? mask[i & 3] : 0);
    return h + n;
}

/* Parse a whole frame from buf and run it through the reader. */
static int feed(struct cc_ws_reader *r, unsigned char *buf, size_t n,
                struct rec *rc)
{
    struct cc_ws_frame f;
    int hl = cc_ws_parse_header(buf, n, 0, MAXP, &f);

    if (hl <= 0 || (size_t)hl + f.payload_len != n)
        return -1;
    return cc_ws_reader_frame(r, &f, buf + hl, &H, rc);
}

/* Build a masked frame and feed it. */
static int send_frame(struct cc_ws_reader *r, int fin, int opcode,
                      const void *p, size_t n, struct rec *rc)
{
    static unsigned char buf[70000];

    return feed(r, buf, build(buf, fin, opcode, MASK, p, n), rc);
}

static int parse(const unsigned char *b, size_t n, int require_mask,
                 uint64_t max)
{
    struct cc_ws_frame f;

    return cc_ws_parse_header(b, n, require_mask, max, &f);
}

/* ------------------------------------------------------------ header */

static void test_header_basic(void)
{
    static const unsigned char hello[] =          /* RFC 5.7 */
        { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    static const unsigned char mhello[] =         /* RFC 5.7 */
        { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
          0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    struct cc_ws_frame f;

    is_int(cc_ws_parse_header(hello, 7, 0, MAXP, &f), 2,
           "RFC 5.7 unmasked Hello: header length 2");
    ok(f.fin == 1 && f.opcode == CC_WS_OP_TEXT && f.masked == 0 &&
       f.payload_len == 5 && f.header_len == 2,
       "RFC 5.7 unmasked Hello: fin, opcode, mask bit, length");
    is_int(parse(hello, 7, 1, MAXP), -1002,
           "unmasked client frame with require_mask: -1002");
    is_int(cc_ws_parse_header(mhello, 11, 1, MAXP, &f), 6,
           "RFC 5.7 masked Hello: header length 6");
    ok(f.masked == 1 && memcmp(f.mask, MASK, 4) == 0 && f.payload_len == 5,
       "RFC 5.7 masked Hello: mask key and length");
}

/* A masked header of each length form must return 0 at every truncation
 * and its full length once complete. */
static void check_truncations(const unsigned char *b, size_t hlen)
{
    size_t i;

    for (i = 0; i < hlen; i++)
        is_int(parse(b, i, 1, MAXP), 0, "%zu-byte header cut to %zu: 0",
               hlen, i);
    is_int(parse(b, hlen, 1, MAXP), (int)hlen, "%zu-byte header complete",
           hlen);
}

static void test_header_truncation(void)
{
    check_truncations((const unsigned char *)"\x81\xFD\x37\xfa\x21\x3d", 6);
    check_truncations((const unsigned char *)
                      "\x81\xFE\x00\x7E\x37\xfa\x21\x3d", 8);
    check_truncations((const unsigned char *)"\x81\xFF\0\0\0\0\0\1\0\0"
                      "\x37\xfa\x21\x3d", 14);
}

static void test_header_lengths(void)
{
    unsigned char b[16];
    struct cc_ws_frame f;

    memcpy(b, "\x82\x7D", 2);
    is_int(cc_ws_parse_header(b, 2, 0, MAXP, &f), 2, "7-bit length 125");
    is_int(f.payload_len, 125, "7-bit length value 125");
    memcpy(b, "\x82\x7E\x00\x7E", 4);
    is_int(cc_ws_parse_header(b, 4, 0, MAXP, &f), 4, "16-bit length 126");
    is_int(f.payload_len, 126, "16-bit length value 126");
    memcpy(b, "\x82\x7E\xFF\xFF", 4);
    cc_ws_parse_header(b, 4, 0, MAXP, &f);
    is_int(f.payload_len, 65535, "16-bit length value 65535");
    memcpy(b, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    is_int(cc_ws_parse_header(b, 10, 0, MAXP, &f), 10,
           "64-bit length 65536");
    is_int(f.payload_len, 65536, "64-bit length value 65536");
    memcpy(b, "\x82\x7F\x00\x00\x00\x01\x00\x00\x00\x01", 10);
    cc_ws_parse_header(b, 10, 0, UINT64_MAX, &f);
    is_int(f.payload_len, 0x100000001LL, "64-bit length value 2^32+1");
    memcpy(b, "\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 10);
    is_int(parse(b, 10, 0, UINT64_MAX), 10, "64-bit length 2^63-1 parses");
}

static void test_header_faults(void)
{
    unsigned char b[16];
    int op, all;

    is_int(parse((const unsigned char *)"\xC1\x00", 2, 0, MAXP), -1002,
           "RSV1 set: -1002");
    is_int(parse((const unsigned char *)"\xA1\x00", 2, 0, MAXP), -1002,
           "RSV2 set: -1002");
    is_int(parse((const unsigned char *)"\x91\x00", 2, 0, MAXP), -1002,
           "RSV3 set: -1002");
    all = 1;
    for (op = 3; op <= 0xF; op++) {
        b[0] = (unsigned char)(0x80 | op);
        b[1] = 0;
        if ((op <= 7 || op >= 0xB) && parse(b, 2, 0, MAXP) != -1002)
            all = 0;
        if (op >= 8 && op <= 0xA && parse(b, 2, 0, MAXP) != 2)
            all = 0;
    }
    ok(all, "opcodes 3-7 and B-F: -1002; 8-A accepted");
    is_int(parse((const unsigned char *)"\x83\x00", 2, 0, MAXP), -1002,
           "opcode 3: -1002");
    is_int(parse((const unsigned char *)"\x8B\x00", 2, 0, MAXP), -1002,
           "opcode B: -1002");
    is_int(parse((const unsigned char *)"\x09\x00", 2, 0, MAXP), -1002,
           "ping with FIN=0: -1002");
    is_int(parse((const unsigned char *)"\x88\x7E\x00\x7E", 4, 0, MAXP),
           -1002, "close with length 126: -1002");
    is_int(parse((const unsigned char *)"\x89\x7D", 2, 0, MAXP), 2,
           "ping with length 125 accepted");
    is_int(parse((const unsigned char *)"\x89\x7E\x00\x7E", 4, 0, 10), -1002,
           "control length 126 over max_payload: -1002 before -1009");
    is_int(parse((const unsigned char *)"\x89\x64", 2, 0, 10), -1009,
           "ping of 100 over max_payload 10: -1009");
    is_int(parse((const unsigned char *)"\x81\x7E\x00\x7D", 4, 0, MAXP),
           -1002, "16-bit form for 125: -1002");
    memcpy(b, "\x81\x7F\x00\x00\x00\x00\x00\x00\xFF\xFF", 10);
    is_int(parse(b, 10, 0, MAXP), -1002, "64-bit form for 65535: -1002");
    memcpy(b, "\x81\x7F\x80\x00\x00\x00\x00\x00\x00\x00", 10);
    is_int(parse(b, 10, 0, UINT64_MAX), -1002, "64-bit top bit set: -1002");
    is_int(parse((const unsigned char *)"\x81\x0B", 2, 0, 10), -1009,
           "payload 11 over max_payload 10: -1009");
    is_int(parse((const unsigned char *)"\x81\x0A", 2, 0, 10), 2,
           "payload 10 at max_payload 10 accepted");
    is_int(parse((const unsigned char *)"\xC1", 1, 0, MAXP), 0,
           "1 byte is never enough, even with RSV set");
    is_int(parse((const unsigned char *)"\x81\xFE\x01\x00", 4, 1, 10), -1009,
           "-1009 reported before the mask key arrives");
}

/* ----------------------------------------------------------- masking */

static void test_unmask(void)
{
    unsigned char m[] = { 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    unsigned char a[64 + 8], ref[64];
    size_t al, off, n, i;
    int all = 1;

    cc_ws_unmask(m, 5, MASK, 0);
    ok(memcmp(m, "Hello", 5) == 0, "RFC 5.7 Hello unmasks");
    memcpy(m, "\x7f\x9f\x4d\x51\x58", 5);
    cc_ws_unmask(m, 3, MASK, 0);
    cc_ws_unmask(m + 3, 2, MASK, 3);
    ok(memcmp(m, "Hello", 5) == 0, "unmask in two parts with offset 3");
    for (al = 0; al < 8; al++)
        for (off = 0; off < 8; off++)
            for (n = 0; n <= 64; n++) {
                for (i = 0; i < n; i++)
                    ref[i] = a[al + i] = (unsigned char)(i * 7 + n);
                cc_ws_unmask(a + al, n, MASK, off);
                for (i = 0; i < n; i++)
                    if (a[al + i] != (ref[i] ^ MASK[(off + i) & 3]))
                        all = 0;
            }
    ok(all, "word unmask matches bytewise at all alignments and offsets");
    memcpy(a, "chart note", 10);
    cc_ws_unmask(a, 10, MASK, 2);
    cc_ws_unmask(a, 10, MASK, 2);
    ok(memcmp(a, "chart note", 10) == 0, "unmask twice restores input");
    is_int((cc_ws_unmask(a, 0, MASK, 1), a[0]), 'c', "zero length is a no-op");
}

/* ------------------------------------------------------------ reader */

static void test_reader_rfc(void)
{
    unsigned char s[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                          0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    unsigned char f1[] = { 0x01, 0x03, 0x48, 0x65, 0x6c };
    unsigned char f2[] = { 0x80, 0x02, 0x6c, 0x6f };
    unsigned char ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    unsigned char pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                             0x7f, 0x9f, 0x4d, 0x51, 0x58 };
    struct cc_ws_reader r;
    static struct rec rc;

    cc_ws_reader_init(&r, 1000);
    memset(&rc, 0, sizeof(rc));
    is_int(feed(&r, s, sizeof(s), &rc), 0, "RFC 5.7 masked Hello: 0");
    ok(rc.n_text == 1 && rec_is(&rc, "Hello"), "RFC 5.7 masked Hello text");
    ok(rc.ptr == s + 6, "single text frame handed up without a copy");
    ok(r.buf == NULL, "single text frame leaves no reassembly buffer");
    memset(&rc, 0, sizeof(rc));
    is_int(feed(&r, f1, sizeof(f1), &rc), 0, "RFC 5.7 fragment Hel: 0");
    is_int(rc.n_text, 0, "RFC 5.7 nothing delivered before FIN");
    is_int(feed(&r, f2, sizeof(f2), &rc), 0, "RFC 5.7 fragment lo: 0");
    ok(rc.n_text == 1 && rec_is(&rc, "Hello"), "RFC 5.7 Hel+lo is Hello");
    memset(&rc, 0, sizeof(rc));
    is_int(feed(&r, ping, sizeof(ping), &rc), 0, "RFC 5.7 ping: 0");
    ok(rc.n_ping == 1 && rec_is(&rc, "Hello"), "RFC 5.7 ping Hello");
    memset(&rc, 0, sizeof(rc));
    is_int(feed(&r, pong, sizeof(pong), &rc), 0, "RFC 5.7 masked pong: 0");
    ok(rc.n_pong == 1 && rec_is(&rc, "Hello"), "RFC 5.7 pong Hello");
    cc_ws_reader_free(&r);
}

static void test_reader_fragments(void)
{
    struct cc_ws_reader r;
    static struct rec rc;
    int rv = 0;

    cc_ws_reader_init(&r, 1000);
    memset(&rc, 0, sizeof(rc));
    rv |= send_frame(&r, 0, CC_WS_OP_TEXT, "{\"to\":", 6, &rc);
    rv |= send_frame(&r, 1, CC_WS_OP_PING, "p1", 2, &rc);
    rv |= send_frame(&r, 0, CC_WS_OP_CONT, "\"ward-7\",", 9, &rc);
    rv |= send_frame(&r, 1, CC_WS_OP_PONG, "p2", 2, &rc);
    is_int(rc.n_text, 0, "3 fragments: nothing before the last");
    rv |= send_frame(&r, 1, CC_WS_OP_CONT, "\"x\":1}", 6, &rc);
    is_int(rv, 0, "3 fragments with ping and pong between: all 0");
    ok(rc.n_text == 1 && rc.n_ping == 1 && rc.n_pong == 1,
       "3 fragments: one text, one ping, one pong");
    ok(rec_is(&rc, "{\"to\":\"ward-7\",\"x\":1}"), "3 fragments: bytes");
    ok(r.in_message == 0 && r.len == 0, "reader idle after the message");
    memset(&rc, 0, sizeof(rc));
    rv = send_frame(&r, 0, CC_WS_OP_TEXT, "", 0, &rc);
    rv |= send_frame(&r, 0, CC_WS_OP_CONT, "ab", 2, &rc);
    rv |= send_frame(&r, 1, CC_WS_OP_CONT, "", 0, &rc);
    ok(rv == 0 && rc.n_text == 1 && rec_is(&rc, "ab"),
       "empty fragments around data; buffer reused");
    memset(&rc, 0, sizeof(rc));
    rv = send_frame(&r, 1, CC_WS_OP_TEXT, "", 0, &rc);
    ok(rv == 0 && rc.n_text == 1 && rc.len == 0, "empty text frame");
    cc_ws_reader_free(&r);
}

static void test_reader_sequence(void)
{
    struct cc_ws_reader r;
    static struct rec rc;

    cc_ws_reader_init(&r, 1000);
    is_int(send_frame(&r, 1, CC_WS_OP_CONT, "x", 1, &rc), 1002,
           "continuation without a message: 1002");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 1000);
    send_frame(&r, 0, CC_WS_OP_TEXT, "a", 1, &rc);
    is_int(send_frame(&r, 1, CC_WS_OP_TEXT, "b", 1, &rc), 1002,
           "text frame inside a message: 1002");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 1000);
    send_frame(&r, 0, CC_WS_OP_TEXT, "a", 1, &rc);
    is_int(send_frame(&r, 1, CC_WS_OP_BINARY, "b", 1, &rc), 1002,
           "binary frame inside a message: 1002");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 1000);
    is_int(send_frame(&r, 1, CC_WS_OP_BINARY, "b", 1, &rc), 1003,
           "binary message: 1003");
    is_int(send_frame(&r, 0, CC_WS_OP_BINARY, "b", 1, &rc), 1003,
           "binary first fragment: 1003");
    cc_ws_reader_free(&r);
}

static void test_reader_utf8(void)
{
    struct cc_ws_reader r;
    static struct rec rc;
    int rv;

    cc_ws_reader_init(&r, 1000);
    memset(&rc, 0, sizeof(rc));
    is_int(send_frame(&r, 1, CC_WS_OP_TEXT, "a\xFF", 2, &rc), 1007,
           "invalid single text frame: 1007");
    is_int(send_frame(&r, 1, CC_WS_OP_TEXT, "a\xE2\x82", 3, &rc), 1007,
           "single text frame ending mid-char: 1007");
    is_int(rc.n_text, 0, "invalid text never delivered");
    rv = send_frame(&r, 0, CC_WS_OP_TEXT, "\xE2", 1, &rc);
    rv |= send_frame(&r, 0, CC_WS_OP_CONT, "\x82", 1, &rc);
    rv |= send_frame(&r, 1, CC_WS_OP_CONT, "\xAC", 1, &rc);
    ok(rv == 0 && rec_is(&rc, "\xE2\x82\xAC"),
       "3-byte char split over 3 fragments");
    rv = send_frame(&r, 0, CC_WS_OP_TEXT, "x\xF0\x9F", 3, &rc);
    rv |= send_frame(&r, 1, CC_WS_OP_CONT, "\x98\x80", 2, &rc);
    ok(rv == 0 && rec_is(&rc, "x\xF0\x9F\x98\x80"),
       "4-byte char split over 2 fragments");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 1000);
    is_int(send_frame(&r, 0, CC_WS_OP_TEXT, "ok\xC0", 3, &rc), 1007,
           "bad byte in the first fragment: 1007 at once");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 1000);
    is_int(send_frame(&r, 0, CC_WS_OP_TEXT, "ab\xE2", 3, &rc), 0,
           "fragment ending mid-char: 0");
    is_int(send_frame(&r, 0, CC_WS_OP_CONT, "\x28", 1, &rc), 1007,
           "bad continuation in a non-final fragment: 1007");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 1000);
    send_frame(&r, 0, CC_WS_OP_TEXT, "ab", 2, &rc);
    is_int(send_frame(&r, 1, CC_WS_OP_CONT, "\xED\x9F", 2, &rc), 1007,
           "final fragment ending mid-char: 1007");
    cc_ws_reader_free(&r);
}

static void test_reader_size(void)
{
    struct cc_ws_reader r;
    static struct rec rc;
    static char big[10000];
    size_t i;
    int rv = 0;

    cc_ws_reader_init(&r, 10);
    is_int(send_frame(&r, 1, CC_WS_OP_TEXT, "0123456789a", 11, &rc), 1009,
           "single frame over max_message: 1009");
    is_int(send_frame(&r, 1, CC_WS_OP_TEXT, "0123456789", 10, &rc), 0,
           "single frame at max_message: 0");
    is_int(send_frame(&r, 0, CC_WS_OP_TEXT, "012345", 6, &rc), 0,
           "first fragment within max_message");
    is_int(send_frame(&r, 0, CC_WS_OP_CONT, "6789a", 5, &rc), 1009,
           "fragments over max_message: 1009 at the second");
    cc_ws_reader_free(&r);
    cc_ws_reader_init(&r, 10);
    send_frame(&r, 0, CC_WS_OP_TEXT, "01234", 5, &rc);
    is_int(send_frame(&r, 1, CC_WS_OP_CONT, "56789", 5, &rc), 0,
           "fragments totalling max_message: 0");
    ok(r.cap == 10, "buffer capped at max_message (cap %zu)", r.cap);
    cc_ws_reader_free(&r);
    ok(r.buf == NULL && r.cap == 0, "reader_free releases the buffer");

    for (i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    cc_ws_reader_init(&r, sizeof(big));
    memset(&rc, 0, sizeof(rc));
    for (i = 0; i < sizeof(big); i += 100)
        rv |= send_frame(&r, i + 100 >= sizeof(big), i ? CC_WS_OP_CONT
                   : CC_WS_OP_TEXT, big + i, 100, &rc);
    ok(rv == 0 && rc.n_text == 1 && rc.len == sizeof(big) &&
       memcmp(rc.data, big, sizeof(big)) == 0,
       "10000 bytes in 100 fragments reassembled");
    ok(r.cap >= r.len && r.cap == sizeof(big),
       "buffer grew to max_message (cap %zu)", r.cap);
    cc_ws_reader_free(&r);
}

static void test_reader_close(void)
{
    unsigned char c1[] = { 0x88, 0x01, 0x03, 0xE8 };
    struct cc_ws_reader r;
    static struct rec rc;

    cc_ws_reader_init(&r, 1000);
    memset(&rc, 0, sizeof(rc));
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "", 0, &rc), 0, "empty close: 0");
    ok(rc.n_close == 1 && rc.code == 1005 && rc.len == 0,
       "empty close: on_close(1005, \"\", 0)");
    /* the byte after the payload would complete code 1000 if read */
    is_int(feed(&r, c1, 3, &rc), 1002, "1-byte close payload: 1002");
    memset(&rc, 0, sizeof(rc));
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xE8" "bye", 5, &rc), 0,
           "close 1000 bye: 0");
    ok(rc.n_close == 1 && rc.code == 1000 && rec_is(&rc, "bye"),
       "close 1000 bye: code and reason");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x0F\x9F", 2, &rc), 0,
           "close 3999 accepted");
    is_int(rc.code, 3999, "close 3999 code");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xED", 2, &rc), 1002,
           "close 1005 on the wire: 1002");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xE7", 2, &rc), 1002,
           "close 999: 1002");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x13\x88", 2, &rc), 1002,
           "close 5000: 1002");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xE8\xC3\xA9", 4, &rc), 0,
           "close reason with a 2-byte char: 0");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xE8" "a\xE9", 4, &rc), 1007,
           "close reason not UTF-8: 1007");
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xE8\xE2\x82", 4, &rc), 1007,
           "close reason ending mid-char: 1007");
    send_frame(&r, 0, CC_WS_OP_TEXT, "a", 1, &rc);
    memset(&rc, 0, sizeof(rc));
    is_int(send_frame(&r, 1, CC_WS_OP_CLOSE, "\x03\xE9", 2, &rc), 0,
           "close inside a fragmented message: 0");
    is_int(rc.code, 1001, "close inside a message: code 1001");
    cc_ws_reader_free(&r);
}

/* --------------------------------------------------------- close codes */

static int expect_valid(int c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
           (c >= 3000 && c <= 4999);
}

static void test_close_codes(void)
{
    static const int codes[] = { -1, 0, 999, 1000, 1001, 1002, 1003, 1004,
                                 1005, 1006, 1007, 1008, 1009, 1010, 1011,
                                 1012, 1013, 1014, 1015, 1016, 2999, 3000,
                                 4999, 5000, 65535 };
    size_t i;
    int c, all = 1;

    for (i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        is_int(cc_ws_close_code_valid(codes[i]), expect_valid(codes[i]),
               "close code %d %s", codes[i],
               expect_valid(codes[i]) ? "valid" : "invalid");
    for (c = -10; c < 70000; c++)
        if (cc_ws_close_code_valid(c) != expect_valid(c))
            all = 0;
    ok(all, "close code matrix -10..69999");
}

/* ------------------------------------------------------------ encode */

static void test_encode(void)
{
    unsigned char b[10];
    struct cc_ws_frame f;

    is_int(cc_ws_header_encode(b, CC_WS_OP_TEXT, 0), 2, "encode len 0: 2");
    ok(b[0] == 0x81 && b[1] == 0x00, "encode len 0: 81 00");
    is_int(cc_ws_header_encode(b, CC_WS_OP_TEXT, 125), 2,
           "encode len 125: 2");
    ok(b[1] == 125, "encode len 125: 7D");
    is_int(cc_ws_header_encode(b, CC_WS_OP_TEXT, 126), 4,
           "encode len 126: 4");
    ok(memcmp(b, "\x81\x7E\x00\x7E", 4) == 0, "encode len 126: bytes");
    is_int(cc_ws_header_encode(b, CC_WS_OP_BINARY, 65535), 4,
           "encode len 65535: 4");
    ok(memcmp(b, "\x82\x7E\xFF\xFF", 4) == 0, "encode len 65535: bytes");
    is_int(cc_ws_header_encode(b, CC_WS_OP_TEXT, 65536), 10,
           "encode len 65536: 10");
    ok(memcmp(b, "\x81\x7F\0\0\0\0\0\1\0\0", 10) == 0,
       "encode len 65536: bytes");
    cc_ws_header_encode(b, CC_WS_OP_CLOSE, 2);
    ok(b[0] == 0x88 && b[1] == 2, "encode close: 88 02");
    cc_ws_header_encode(b, CC_WS_OP_TEXT, 70000);
    ok(cc_ws_parse_header(b, 10, 0, MAXP, &f) == 10 &&
       f.payload_len == 70000 && f.fin && !f.masked,
       "encoded header parses back");
}

static void test_close_payload(void)
{
    unsigned char out[125];
    char r[200];

    is_int(cc_ws_close_payload(out, 1000, ""), 2, "close payload no reason");
    ok(out[0] == 0x03 && out[1] == 0xE8, "close payload code 1000 bytes");
    is_int(cc_ws_close_payload(out, 1000, NULL), 2, "NULL reason");
    is_int(cc_ws_close_payload(out, 1008, "bye"), 5, "reason bye: 5");
    ok(memcmp(out, "\x03\xF0" "bye", 5) == 0, "reason bye: bytes");
    memset(r, 'x', sizeof(r));
    r[199] = '\0';
    is_int(cc_ws_close_payload(out, 1000, r), 125, "long reason cut to 125");
    r[123] = '\0';
    is_int(cc_ws_close_payload(out, 1000, r), 125, "123-byte reason fits");
    memcpy(r + 122, "\xC3\xA9", 3);           /* 124 bytes, char at 122 */
    is_int(cc_ws_close_payload(out, 1000, r), 124,
           "2-byte char across the limit dropped whole");
    memcpy(r + 121, "\xE2\x82\xAC", 4);       /* 124 bytes, char at 121 */
    is_int(cc_ws_close_payload(out, 1000, r), 123,
           "3-byte char across the limit dropped whole");
    memset(r, 'x', sizeof(r));
    memcpy(r + 119, "\xF0\x9F\x98\x80", 4);   /* ends exactly at 123 */
    r[123] = 'y';
    r[124] = '\0';
    is_int(cc_ws_close_payload(out, 1000, r), 125,
           "4-byte char ending at the limit kept");
    ok(memcmp(out + 121, "\xF0\x9F\x98\x80", 4) == 0,
       "4-byte char ending at the limit: bytes");
}

/* --------------------------------------------------------- handshake */

static void test_accept_key(void)
{
    char out[29];

    memset(out, 'z', sizeof(out));
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0,
           "RFC 6455 sample key: 0");
    /* RFC 6455 section 1.3 */
    is_str(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "RFC 6455 sample accept");
    is_int(cc_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out), 0,
           "second key: 0");
    is_str(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=", "second key accept");
    is_int(cc_ws_accept_key("", 0, out), -1, "empty key: -1");
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ", 22, out), -1,
           "unpadded key: -1");
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 23, out), -1,
           "key_len 23: -1");
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", 25, out), -1,
           "25 characters: -1");
    is_int(cc_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAAA=", 24, out), -1,
           "base64 of 17 bytes: -1");
    is_int(cc_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 28, out), -1,
           "base64 of 20 bytes: -1");
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub2*jZQ==", 24, out), -1,
           "character outside base64: -1");
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZR==", 24, out), -1,
           "non-zero padding bits: -1");
    is_int(cc_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ\0=", 24, out), -1,
           "NUL inside key: -1");
}

int main(void)
{
    test_header_basic();
    test_header_truncation();
    test_header_lengths();
    test_header_faults();
    test_unmask();
    test_reader_rfc();
    test_reader_fragments();
    test_reader_sequence();
    test_reader_utf8();
    test_reader_size();
    test_reader_close();
    test_close_codes();
    test_encode();
    test_close_payload();
    test_accept_key();
    return done_testing();
}
