/*
 * utf8.h - UTF-8 validation, whole or incremental (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF).
 *
 * Owns nothing; pure functions, safe on any thread.  Used by ws.c for
 * text frames split over fragments and for close reasons.
 */
#ifndef CC_UTF8_H
#define CC_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define CC_UTF8_ACCEPT 0u /* state at a character boundary */
#define CC_UTF8_REJECT 1u /* sticky: the input is not UTF-8 */

/* Feed n bytes to the validator whose state starts as CC_UTF8_ACCEPT.
 * Returns the new state: CC_UTF8_ACCEPT at a character boundary,
 * CC_UTF8_REJECT once invalid (stays so), another value inside a
 * character (the text is valid only if it ends in CC_UTF8_ACCEPT). */
uint32_t cc_utf8_feed(uint32_t state, const void *buf, size_t n);

/* 1 when buf[0..n) is complete, valid UTF-8; 0 otherwise. */
int cc_utf8_valid(const void *buf, size_t n);

#endif
