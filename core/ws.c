/*
 * ws.c - RFC 6455 framing: header parsing, unmasking, message assembly,
 * close frames, server frame headers and the handshake accept key.
 *
 * No I/O and no allocation except the reader's reassembly buffer, which
 * aborts on out-of-memory like the rest of core.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "utf8.h"
#include "ws.h"

#define WS_FIN 0x80
#define WS_RSV 0x70
#define WS_OPCODE 0x0F
#define WS_MASK 0x80
#define WS_LEN7 0x7F
#define WS_MAX_CONTROL 125
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24          /* base64 of 16 bytes, with "==" */
#define WS_MIN_BUF 256         /* first reassembly buffer size */

/* ------------------------------------------------------------ header */

static int is_control(int opcode)
{
    return (opcode & 0x8) != 0;
}

static int opcode_known(int opcode)
{
    return opcode <= CC_WS_OP_BINARY ||
           (opcode >= CC_WS_OP_CLOSE && opcode <= CC_WS_OP_PONG);
}

/* Faults visible in the first two bytes, or 0. */
static int check_first_bytes(unsigned b0, unsigned b1, int require_mask)
{
    int opcode = (int)(b0 & WS_OPCODE);

    if ((b0 & WS_RSV) || !opcode_known(opcode))
        return -CC_WS_CLOSE_PROTOCOL;
    if (is_control(opcode) &&
        (!(b0 & WS_FIN) || (b1 & WS_LEN7) > WS_MAX_CONTROL))
        return -CC_WS_CLOSE_PROTOCOL;
    if (require_mask && !(b1 & WS_MASK))
        return -CC_WS_CLOSE_PROTOCOL;
    return 0;
}

static uint64_t read_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Decode the payload length of a header whose first two bytes are in
 * buf: 0 with *plen set, 1 when the extended length has not arrived, or
 * -1002 when it is not minimal or has its top bit set. */
static int read_length(const unsigned char *buf, size_t len, uint64_t *plen,
                       size_t *pext)
{
    unsigned len7 = buf[1] & WS_LEN7;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    uint64_t v;

    *pext = ext;
    if (ext == 0) {
        *plen = len7;
        return 0;
    }
    if (len < 2 + ext)
        return 1;
    v = read_be(buf + 2, ext);
    if (ext == 2 && v < 126)
        return -CC_WS_CLOSE_PROTOCOL;
    if (ext == 8 && (v >> 63 || v <= 0xFFFF))
        return -CC_WS_CLOSE_PROTOCOL;
    *plen = v;
    return 0;
}

/* See ws.h.  A fault is reported as soon as the bytes that show it have
 * arrived, even if the rest of the header has not (it cannot become
 * valid).  Faults of -1002 take precedence over -1009.  *f is written only
 * when a header length is returned. */
int cc_ws_parse_header(const unsigned char *buf, size_t len, int require_mask,
                       uint64_t max_payload, struct cc_ws_frame *f)
{
    uint64_t plen = 0;
    size_t ext = 0, hlen;
    int rc, masked;

    if (len < 2)
        return 0;
    rc = check_first_bytes(buf[0], buf[1], require_mask);
    if (rc)
        return rc;
    rc = read_length(buf, len, &plen, &ext);
    if (rc)
        return rc < 0 ? rc : 0;
    if (plen > max_payload)
        return -CC_WS_CLOSE_TOO_BIG;
    masked = (buf[1] & WS_MASK) != 0;
    hlen = 2 + ext + (masked ? 4 : 0);
    if (len < hlen)
        return 0;
    f->fin = (buf[0] & WS_FIN) != 0;
    f->opcode = buf[0] & WS_OPCODE;
    f->masked = masked;
    memset(f->mask, 0, sizeof(f->mask));
    if (masked)
        memcpy(f->mask, buf + 2 + ext, 4);
    f->payload_len = plen;
    f->header_len = hlen;
    return (int)hlen;
}

/* ----------------------------------------------------------- masking */

/* See ws.h.  Bytes up to an 8-byte boundary of p are done one at a time,
 * the rest a word at a time (memcpy keeps it free of aliasing and
 * alignment UB; compilers turn it into plain loads and stores). */
void cc_ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4],
                  uint64_t off)
{
    unsigned k = (unsigned)(off & 3);
    unsigned char pat[8];
    uint64_t m, w;
    size_t i;

    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        *p++ ^= mask[k];
        k = (k + 1) & 3;
        n--;
    }
    for (i = 0; i < 8; i++)
        pat[i] = mask[(k + i) & 3];
    memcpy(&m, pat, 8);
    for (; n >= 8; n -= 8, p += 8) {
        memcpy(&w, p, 8);
        w ^= m;
        memcpy(p, &w, 8);
    }
    for (i = 0; i < n; i++)
        p[i] ^= pat[i];
}

/* ------------------------------------------------------------ reader */

/* See ws.h.  Allocates nothing; the buffer comes with the first
 * fragmented message. */
void cc_ws_reader_init(struct cc_ws_reader *r, uint64_t max_message)
{
    memset(r, 0, sizeof(*r));
    r->max_message = max_message;
    r->utf8_state = CC_UTF8_ACCEPT;
}

/* See ws.h.  Frees the reassembly buffer and drops any partial message;
 * the reader may be used again with the same max_message. */
void cc_ws_reader_free(struct cc_ws_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
    r->in_message = 0;
    r->msg_opcode = 0;
    r->utf8_state = CC_UTF8_ACCEPT;
}

/* Make room for need bytes, doubling but never past max_message (need is
 * known to be within it).  Aborts on out-of-memory. */
static void reserve(struct cc_ws_reader *r, size_t need)
{
    size_t cap = r->cap ? r->cap : WS_MIN_BUF;
    unsigned char *nb;

    if (need <= r->cap)
        return;
    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    if (cap < need)
        cap = need;
    if ((uint64_t)cap > r->max_message)
        cap = (size_t)r->max_message;
    nb = realloc(r->buf, cap);
    if (nb == NULL)
        abort();
    r->buf = nb;
    r->cap = cap;
}

static void deliver_text(const struct cc_ws_handler *h, void *arg,
                         const unsigned char *p, size_t n)
{
    if (h->on_text)
        h->on_text(arg, p ? (const char *)p : "", n);
}

/* An unfragmented text frame: checked and handed up in place. */
static int whole_text(struct cc_ws_reader *r, const unsigned char *p,
                      size_t n, const struct cc_ws_handler *h, void *arg)
{
    if ((uint64_t)n > r->max_message)
        return CC_WS_CLOSE_TOO_BIG;
    if (!cc_utf8_valid(p, n))
        return CC_WS_CLOSE_INVALID_DATA;
    deliver_text(h, arg, p, n);
    return 0;
}

/* Append one fragment of the message in progress; on the final one,
 * check it ends on a character boundary, hand it up and reset. */
static int add_fragment(struct cc_ws_reader *r, const unsigned char *p,
                        size_t n, int fin, const struct cc_ws_handler *h,
                        void *arg)
{
    if ((uint64_t)n > r->max_message - r->len)
        return CC_WS_CLOSE_TOO_BIG;
    r->utf8_state = cc_utf8_feed(r->utf8_state, p, n);
    if (r->utf8_state == CC_UTF8_REJECT)
        return CC_WS_CLOSE_INVALID_DATA;
    if (n > 0) {
        reserve(r, r->len + n);
        memcpy(r->buf + r->len, p, n);
        r->len += n;
    }
    if (!fin)
        return 0;
    if (r->utf8_state != CC_UTF8_ACCEPT)
        return CC_WS_CLOSE_INVALID_DATA;
    deliver_text(h, arg, r->buf, r->len);
    r->in_message = 0;
    r->len = 0;
    return 0;
}

/* TEXT, BINARY or CONT. */
static int data_frame(struct cc_ws_reader *r, const struct cc_ws_frame *f,
                      const unsigned char *p, size_t n,
                      const struct cc_ws_handler *h, void *arg)
{
    if (f->opcode == CC_WS_OP_CONT) {
        if (!r->in_message)
            return CC_WS_CLOSE_PROTOCOL;
        return add_fragment(r, p, n, f->fin, h, arg);
    }
    if (r->in_message)
        return CC_WS_CLOSE_PROTOCOL;
    if (f->opcode != CC_WS_OP_TEXT)
        return CC_WS_CLOSE_UNSUPPORTED;
    if (f->fin)
        return whole_text(r, p, n, h, arg);
    r->in_message = 1;
    r->msg_opcode = f->opcode;
    r->utf8_state = CC_UTF8_ACCEPT;
    r->len = 0;
    return add_fragment(r, p, n, 0, h, arg);
}

static int close_frame(const unsigned char *p, size_t n,
                       const struct cc_ws_handler *h, void *arg)
{
    int code;

    if (n == 0) {
        if (h->on_close)
            h->on_close(arg, CC_WS_CLOSE_NO_STATUS, "", 0);
        return 0;
    }
    if (n == 1)
        return CC_WS_CLOSE_PROTOCOL;
    code = (p[0] << 8) | p[1];
    if (!cc_ws_close_code_valid(code))
        return CC_WS_CLOSE_PROTOCOL;
    if (!cc_utf8_valid(p + 2, n - 2))
        return CC_WS_CLOSE_INVALID_DATA;
    if (h->on_close)
        h->on_close(arg, code, (const char *)p + 2, n - 2);
    return 0;
}

static int control_frame(const struct cc_ws_frame *f, const unsigned char *p,
                         size_t n, const struct cc_ws_handler *h, void *arg)
{
    if (!f->fin || n > WS_MAX_CONTROL)
        return CC_WS_CLOSE_PROTOCOL;
    switch (f->opcode) {
    case CC_WS_OP_CLOSE:
        return close_frame(p, n, h, arg);
    case CC_WS_OP_PING:
        if (h->on_ping)
            h->on_ping(arg, p, n);
        return 0;
    case CC_WS_OP_PONG:
        if (h->on_pong)
            h->on_pong(arg, p, n);
        return 0;
    default:
        return CC_WS_CLOSE_PROTOCOL;
    }
}

/* See ws.h.  f is trusted to come from cc_ws_parse_header (payload_len
 * fits in memory); control-frame limits and opcodes are checked again.
 * A NULL callback ignores its event.  After a non-zero return the reader
 * is in no useful state: close the connection, then cc_ws_reader_free(). */
int cc_ws_reader_frame(struct cc_ws_reader *r, const struct cc_ws_frame *f,
                       unsigned char *payload, const struct cc_ws_handler *h,
                       void *arg)
{
    size_t n = (size_t)f->payload_len;

    if (f->masked && n > 0)
        cc_ws_unmask(payload, n, f->mask, 0);
    if (is_control(f->opcode))
        return control_frame(f, payload, n, h, arg);
    if (f->opcode > CC_WS_OP_BINARY)
        return CC_WS_CLOSE_PROTOCOL;
    return data_frame(r, f, payload, n, h, arg);
}

/* ------------------------------------------------------------ encode */

/* See ws.h.  1004-1006 and 1015 are reserved, 1016-2999 unassigned. */
int cc_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) ||
           (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* See ws.h.  Only the low four bits of opcode are used. */
size_t cc_ws_header_encode(unsigned char out[10], int opcode, uint64_t len)
{
    size_t ext, i;

    out[0] = (unsigned char)(WS_FIN | (opcode & WS_OPCODE));
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    ext = len <= 0xFFFF ? 2 : 8;
    out[1] = ext == 2 ? 126 : 127;
    for (i = 0; i < ext; i++)
        out[2 + i] = (unsigned char)(len >> (8 * (ext - 1 - i)));
    return 2 + ext;
}

/* See ws.h.  reason may be NULL (no reason); it should be UTF-8, and is
 * cut before a continuation byte so no character is split. */
size_t cc_ws_close_payload(unsigned char out[125], int code,
                           const char *reason)
{
    size_t n = reason ? strnlen(reason, 124) : 0;

    if (n > 123) {
        n = 123;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--;
    }
    out[0] = (unsigned char)((code >> 8) & 0xFF);
    out[1] = (unsigned char)(code & 0xFF);
    if (n > 0)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

/* ---------------------------------------------------------- handshake */

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* 1 when key is the canonical base64 of 16 bytes: 22 alphabet characters,
 * the last carrying 2 data bits (its low 4 bits zero), then "==". */
static int key_is_16_bytes(const char *key, size_t key_len)
{
    size_t i;
    int v = 0;

    if (key_len != WS_KEY_LEN || key[22] != '=' || key[23] != '=')
        return 0;
    for (i = 0; i < 22; i++) {
        v = b64_value((unsigned char)key[i]);
        if (v < 0)
            return 0;
    }
    return (v & 0x0F) == 0;
}

/* See ws.h.  Also returns -1 if OpenSSL's digest fails, which it does not
 * short of memory exhaustion. */
int cc_ws_accept_key(const char *key, size_t key_len, char out[29])
{
    unsigned char in[WS_KEY_LEN + sizeof(WS_GUID) - 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (key == NULL || !key_is_16_bytes(key, key_len))
        return -1;
    memcpy(in, key, WS_KEY_LEN);
    memcpy(in + WS_KEY_LEN, WS_GUID, sizeof(WS_GUID) - 1);
    if (!EVP_Digest(in, sizeof(in), md, &md_len, EVP_sha1(), NULL) ||
        md_len != 20)
        return -1;
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    return 0;
}
