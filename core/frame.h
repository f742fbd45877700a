/*
 * frame.h - a WebSocket text frame encoded once and shared (design
 * invariant 3): the hub hands the same frame, by reference, to every
 * member of a chat on every loop.
 *
 * Owns the frame's bytes (header and payload) and its reference count,
 * which is atomic: a frame is handed between loops by mail.  The bytes
 * never change once made, so any loop may read them.  Pure; any thread.
 */
#ifndef CC_FRAME_H
#define CC_FRAME_H

#include <stddef.h>
#include <stdint.h>

struct cc_frame {
    int refs;        /* atomic; freed at 0 */
    int64_t seq;     /* the message's place in its chat; 0: not ordered */
    size_t len;      /* of data: header and payload */
    unsigned char data[];
};

/* A new frame holding the whole text frame for payload (copied); refs =
 * 1, seq = 0 (set it for a chat's message).  Aborts when out of
 * memory, as the core does everywhere. */
struct cc_frame *cc_frame_text(const char *payload, size_t len);

/* One more reference to f; returns f. */
struct cc_frame *cc_frame_ref(struct cc_frame *f);

/* Drop a reference; the last one frees f. */
void cc_frame_unref(struct cc_frame *f);

#endif
