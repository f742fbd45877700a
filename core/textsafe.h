/*
 * textsafe.h - what may be written out of text that came from a client
 * or a token (a user id claim, a URL, an error a plugin built from a
 * claim): every log line (log.c) and every audit field (audit.c) goes
 * through here, so that one event is one line that says what happened.
 *
 * Owns the rules:
 *  - control bytes (below 0x20, 0x7f) and bytes that are not valid UTF-8
 *    become \xHH (JSON: \u00XX, and \ufffd for a byte that is not
 *    UTF-8);
 *  - Unicode characters that change how a line reads without showing
 *    themselves (line and paragraph separators, bidirectional controls
 *    such as U+202E, zero-width and other format characters, U+0085)
 *    become \uXXXX;
 *  - a JWT-shaped run (eyJ..., then two more base64url parts joined by
 *    dots) becomes [jwt], so no token is written whatever carried it;
 *  - with CC_SAFE_QUOTE, '"' and '\' are escaped too, for a value shown
 *    inside quotes.
 * Pure; any thread.
 */
#ifndef CC_TEXTSAFE_H
#define CC_TEXTSAFE_H

#include <stddef.h>

#define CC_SAFE_QUOTE 1u  /* escape '"' and '\' as \" and \\ */
#define CC_SAFE_JSON 2u   /* escapes in JSON's syntax (\u00XX for bytes,
                             which must be ASCII then); implies QUOTE */

/* Write src[0..n) into out (cap bytes, always NUL-terminated, cut short
 * on an escape boundary when it does not fit).  Returns the length
 * written. */
size_t cc_safe_text(char *out, size_t cap, const char *src, size_t n,
                    unsigned flags);

/* The length of the JWT-shaped run starting at s[i] (s is n bytes), or
 * 0 when none starts there. */
size_t cc_jwt_shape_at(const char *s, size_t n, size_t i);

#endif
