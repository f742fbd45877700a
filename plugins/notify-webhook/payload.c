/*
 * payload.c - the webhook's JSON body and its signature (payload.h).
 */
#include "payload.h"

#include <carechat/storage.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A growing string; aborts on out of memory. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;

        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p)
            abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at s (1 to 4), or 0 when s does
 * not start one (RFC 3629: no overlong forms, no surrogates, at most
 * U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4
               : 0;

    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) ||
        (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

/* s as a JSON string, quotes included. */
static void sb_json_str(struct sbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    sb_put(b, "\"", 1);
    while (*p) {
        size_t n = utf8_len(p);
        char esc[8];

        if (n == 0) {
            sb_puts(b, "\\ufffd");
            p++;
        } else if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p++;
            sb_put(b, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p++);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, (const char *)p, n);
            p += n;
        }
    }
    sb_put(b, "\"", 1);
}

char *wh_time(int64_t unix_us, char out[WH_TIME_LEN + 1])
{
    int64_t secs = unix_us >= 0 ? unix_us / 1000000
                                : -((-unix_us + 999999) / 1000000);
    unsigned us = (unsigned)(unix_us - secs * 1000000);
    time_t t = (time_t)secs;
    struct tm tm;

    if (!gmtime_r(&t, &tm) ||
        strftime(out, WH_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
        memcpy(out, "1970-01-01T00:00:00", 20);
        us = 0;
    }
    snprintf(out + 19, WH_TIME_LEN + 1 - 19, ".%06uZ", us);
    return out;
}

char *wh_body(const struct cc_notification *n, size_t *len)
{
    struct sbuf b = { 0 };
    char num[32], at[WH_TIME_LEN + 1];

    if (!n->id || !n->chat_id || !n->profile_id || !n->first_unread_id ||
        (n->side != CC_SIDE_PATIENT && n->side != CC_SIDE_PROFESSIONAL))
        return NULL;
    sb_puts(&b, "{\"id\": ");
    sb_json_str(&b, n->id);
    sb_puts(&b, ", \"event\": \"unread\", \"chat_id\": ");
    sb_json_str(&b, n->chat_id);
    sb_puts(&b, ", \"recipient\": {\"role\": ");
    sb_puts(&b, n->side == CC_SIDE_PATIENT ? "\"patient\""
                                           : "\"professional\"");
    sb_puts(&b, ", \"profile_id\": ");
    sb_json_str(&b, n->profile_id);
    sb_puts(&b, ", \"user_id\": ");
    if (n->user_id)
        sb_json_str(&b, n->user_id);
    else
        sb_puts(&b, "null");
    sb_puts(&b, "}, \"first_unread\": ");
    sb_json_str(&b, n->first_unread_id);
    snprintf(num, sizeof num, "%" PRId64, n->unread);
    sb_puts(&b, ", \"unread\": ");
    sb_puts(&b, num);
    sb_puts(&b, n->urgent ? ", \"urgent\": true" : ", \"urgent\": false");
    sb_puts(&b, ", \"at\": \"");
    sb_puts(&b, wh_time(n->at_us, at));
    sb_puts(&b, "\"}");
    *len = b.len;
    return b.p;
}

int wh_sign(const unsigned char *key, size_t key_len, const char *body,
            size_t len, char out[WH_SIGNATURE_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;

    out[0] = '\0';
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)body,
              len, mac, &mac_len) || mac_len != 32) {
        ERR_clear_error();
        return -1;
    }
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < mac_len; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[7 + 2 * i + 1] = hex[mac[i] & 15];
    }
    out[WH_SIGNATURE_LEN] = '\0';
    return 0;
}
