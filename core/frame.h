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
#include "uuid.h"

/* What a frame carries, for whom. */
#define CC_FRAME_MESSAGE 0  /* a chat message: every member */
#define CC_FRAME_EVENT 1    /* read, delivered, typing: the members that
                               asked for events (?receipts=1) */

struct cc_frame {
    int refs;        /* atomic; freed at 0 */
    int64_t seq;     /* the message's place in its chat; 0: not ordered */
    int kind;        /* CC_FRAME_* */
    int audience;    /* bits (1 << side) of the sides it is for; 0: both */
    int sender;      /* a message's sender_type; 0: not known */
    char id[CC_UUID_LEN + 1]; /* a message's id; "": not known */
    size_t len;      /* of data: header and payload */
    unsigned char data[];
};

/* A new frame holding the whole text frame for payload (copied); refs =
 * 1, seq = 0 (set it for a chat's message), kind, audience and sender
 * as cc_frame_classify says.  Aborts when out of memory, as the core
 * does everywhere. */
struct cc_frame *cc_frame_text(const char *payload, size_t len);

/* What payload (the core's own JSON, as encoded by msg.c and marks.c)
 * is: a message (its id and sender_type) or an event (and its audience: a
 * typing event is for the other side).  Looks at a few bytes, parses
 * nothing.  Sets f's kind, audience, sender and id. */
void cc_frame_classify(struct cc_frame *f, const char *payload, size_t len);

/* One more reference to f; returns f. */
struct cc_frame *cc_frame_ref(struct cc_frame *f);

/* Drop a reference; the last one frees f. */
void cc_frame_unref(struct cc_frame *f);

#endif
