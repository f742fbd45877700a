/*
 * textsafe.c - escaping untrusted text for the log and the audit trail
 * (see textsafe.h).
 */
#include "textsafe.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* The run of base64url characters at s[i..n). */
static size_t b64_run(const char *s, size_t n, size_t i)
{
    size_t k = i;

    while (k < n && b64url((unsigned char)s[k]))
        k++;
    return k - i;
}

size_t cc_jwt_shape_at(const char *s, size_t n, size_t i)
{
    size_t k = i, part;

    if (n - i < 3 || memcmp(s + i, "eyJ", 3) != 0 ||
        (i > 0 && b64url((unsigned char)s[i - 1])))
        return 0;
    part = b64_run(s, n, k);           /* the header */
    if (part < 4 || k + part >= n || s[k + part] != '.')
        return 0;
    k += part + 1;
    part = b64_run(s, n, k);           /* the claims */
    if (part < 2 || k + part >= n || s[k + part] != '.')
        return 0;
    k += part + 1;
    k += b64_run(s, n, k);             /* the signature, maybe empty */
    return k - i;
}

/* The code point of the UTF-8 sequence at s[i..n) and its length in *len;
 * -1 (len 1) when the bytes there are not valid UTF-8. */
static int32_t utf8_at(const unsigned char *s, size_t n, size_t i,
                       size_t *len)
{
    unsigned char c = s[i];
    int32_t cp, min;
    size_t k, need;

    *len = 1;
    if (c < 0x80)
        return c;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3, cp = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (n - i <= need)
        return -1;
    for (k = 1; k <= need; k++) {
        if ((s[i + k] & 0xc0) != 0x80)
            return -1;
        cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = need + 1;
    return cp;
}

/* Characters that change how a line reads and show nothing themselves. */
static int invisible(int32_t cp)
{
    return cp == 0x85 || cp == 0xad || cp == 0x61c || cp == 0x180e ||
           (cp >= 0x200b && cp <= 0x200f) ||
           (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2060 && cp <= 0x206f) || cp == 0xfeff ||
           (cp >= 0xfff9 && cp <= 0xfffb) ||
           (cp >= 0xe0000 && cp <= 0xe007f) ||
           (cp >= 0x80 && cp < 0xa0);
}

/* Append what[0..wn) to out if it fits whole. */
static int put(char *out, size_t cap, size_t *o, const char *what,
               size_t wn)
{
    if (*o + wn + 1 > cap)
        return 0;
    memcpy(out + *o, what, wn);
    *o += wn;
    return 1;
}

size_t cc_safe_text(char *out, size_t cap, const char *src, size_t n,
                    unsigned flags)
{
    const unsigned char *s = (const unsigned char *)src;
    int json = (flags & CC_SAFE_JSON) != 0;
    int quote = json || (flags & CC_SAFE_QUOTE);
    size_t o = 0, i = 0, len, jwt;
    char esc[16];
    int ok = 1;

    if (!cap)
        return 0;
    while (i < n && ok) {
        int32_t cp;

        if ((jwt = cc_jwt_shape_at(src, n, i))) {
            ok = put(out, cap, &o, "[jwt]", 5);
            i += jwt;
            continue;
        }
        cp = utf8_at(s, n, i, &len);
        if (cp < 0 && json) {
            ok = put(out, cap, &o, "\\ufffd", 6); /* not UTF-8 */
        } else if (cp < 0 || cp < 0x20 || cp == 0x7f) {
            unsigned v = cp < 0 ? s[i] : (unsigned)cp;
            snprintf(esc, sizeof esc, json ? "\\u%04x" : "\\x%02x", v);
            ok = put(out, cap, &o, esc, strlen(esc));
        } else if (invisible(cp)) {
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned)cp);
            ok = put(out, cap, &o, esc, strlen(esc));
        } else if (quote && (cp == '"' || cp == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)cp;
            ok = put(out, cap, &o, esc, 2);
        } else {
            ok = put(out, cap, &o, src + i, len);
        }
        i += len;
    }
    out[o] = '\0';
    return o;
}
