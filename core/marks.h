/*
 * marks.h - read and delivered marks (design invariant 8): per chat and
 * side, durable in storage (store.h mark_set), moving forward only, and
 * told as events to the connections that asked for them (?receipts=1),
 * of both parties, on every node (through fan-out, like messages).
 *
 *   {"read": {"by": "professional", "up_to": "<id>", "at": "<time>"}}
 *   {"delivered": {"by": "patient", "up_to": "<id>", "at": "<time>"}}
 *
 * "by" is the side whose mark moved: the reader, the receiver.
 *
 * A read mark is a client's action (the pipeline, send.h, hands it here):
 * one storage call each, its outcome back to the caller.  A delivered
 * mark follows what reached the recipient's side (a message written to
 * one of its connections, a page of history it read): noted here for
 * each message, written at most once per CC_MARKS_COALESCE_MS per chat
 * and side, the newest noted (the first at once).  A second: at 250 ms
 * the marks of a flood's 100 chats cost its server 5 to 10% more CPU
 * per message (doc/benchmarks.md), and a person does not tell the two
 * apart.
 *
 * Owns the coalescing table and the event encoding.  Loop 0 only.
 * Storage plugins before ABI 1.4 keep no marks: then nothing is noted
 * and a read answers with an error.
 */
#ifndef CC_MARKS_H
#define CC_MARKS_H

#include <stdint.h>

struct cc_mark;

#define CC_MARKS_COALESCE_MS 1000

/* A read mark's outcome: status CC_OK (m the mark after it; count the
 * other party's messages it newly covers) or CC_E_* (CC_E_NOTFOUND: the
 * message is not in the chat; CC_E_NOTSUP: storage keeps no marks). */
typedef void (*cc_marks_done_fn)(void *arg, int status,
                                 const struct cc_mark *m, int64_t count);

/* side reads chat_id up to message up_to_id (NULL: the newest).  done
 * runs exactly once, never inside this call.  merge: the caller does not
 * need the count (a WebSocket read); such a read of a message lately
 * delivered to side may wait for the side's write in flight and go with
 * the next one, for the newest of those waiting (count 0). */
void cc_marks_read(const char *chat_id, int side, const char *up_to_id,
                   int merge, cc_marks_done_fn done, void *arg);

/* Message (seq, id) of chat_id has reached side (the other party's
 * message, written to one of side's connections or read by side). */
void cc_marks_delivered(const char *chat_id, int side, int64_t seq,
                        const char *id);

/* Forget the coalescing table (shutdown, after storage stopped). */
void cc_marks_free(void);

#endif
