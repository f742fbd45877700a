/*
 * payload.h - what the webhook plugin sends: the JSON body of one
 * notification and its signature.  Pure functions, any thread; no I/O.
 *
 * The body carries ids, a count, a flag and a time (notify.h): never
 * message content, never a token.  Its exact bytes are what is signed,
 * so it is built once and sent as built.
 */
#ifndef WH_PAYLOAD_H
#define WH_PAYLOAD_H

#include <carechat/notify.h>

#include <stddef.h>
#include <stdint.h>

/* "sha256=" and 64 lowercase hex digits. */
#define WH_SIGNATURE_LEN (7 + 64)

/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
#define WH_TIME_LEN 27

/* The JSON body of n as a new NUL-terminated string of *len bytes, the
 * caller frees it:
 *   {"id": "...", "event": "unread", "chat_id": "...",
 *    "recipient": {"role": "patient", "profile_id": "...",
 *                  "user_id": "..." or null},
 *    "first_unread": "...", "unread": N, "urgent": true or false,
 *    "at": "2026-12-07T10:00:00.000000Z"}
 * on one line, keys in that order.  Strings are JSON-escaped; a byte that
 * is not part of valid UTF-8 becomes U+FFFD, so the body is always valid
 * JSON.  NULL (nothing allocated) when n lacks a required member (id,
 * chat_id, profile_id, first_unread_id) or its side is neither
 * CC_SIDE_PATIENT nor CC_SIDE_PROFESSIONAL.  Aborts on out of memory. */
char *wh_body(const struct cc_notification *n, size_t *len);

/* Unix microseconds as ISO 8601 UTC with microseconds and a Z, into out
 * (WH_TIME_LEN + 1 bytes).  Returns out. */
char *wh_time(int64_t unix_us, char out[WH_TIME_LEN + 1]);

/* "sha256=<lowercase hex HMAC-SHA256 of body[0..len) keyed with key>"
 * into out (WH_SIGNATURE_LEN + 1 bytes).  Returns 0, or -1 when OpenSSL
 * fails (out is then empty). */
int wh_sign(const unsigned char *key, size_t key_len, const char *body,
            size_t len, char out[WH_SIGNATURE_LEN + 1]);

#endif
