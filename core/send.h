/*
 * send.h - the message pipeline: every chat message a client sends, over
 * a WebSocket or through REST, enters here and nowhere else.
 *
 * In: who sends (a principal), to which chat (its id and two parties: the
 * caller has checked that the sender is one of them), what (the client's
 * JSON text, {"content": ..., "role"?: ..., "client_id"?: ...}), from
 * where (the peer, for the audit) and by which way (WebSocket, REST).
 * Out: exactly one completion, on the caller's loop and never inside
 * cc_send: refused with an error (and the status a REST client gets),
 * stored (the message as stored), or a duplicate (the original message of
 * a client_id resend).
 *
 * Owns, in this order: counting the message received; the rate limit per
 * user ([server] message_rate, message_burst: one bucket per user id,
 * whichever way the message comes); parsing and validating (msg.h); the
 * sender's side in the chat; client_id support; priority; stamping the
 * id and time, and when the recipient is due a notification
 * (notifier.h); the append (store.h), the only one in the core; encoding
 * the stored message once and publishing it (fanout.h), only once
 * storage has it (design invariant 1); the stored and refused counts
 * (metrics.h); and the audit line of the send ("message_send", audit.h),
 * whether or not the sender is still there to hear the outcome.
 *
 * The other things a client sends come in here too and go their own
 * way after the side check: a read mark {"read": id} to marks.h (audited
 * as "mark_read"), typing {"typing": true} relayed to the other party at
 * most once per CC_TYPING_MS per connection, never stored, never
 * audited, never answered.
 *
 * Parsing runs on the caller's loop; everything from the rate limit on
 * runs on loop 0 (the only loop that calls storage), and a worker's
 * message goes there and its outcome comes back by mail (loop.h).
 */
#ifndef CC_SEND_H
#define CC_SEND_H

#include <stddef.h>
#include <stdint.h>

struct cc_loop;
struct cc_message;
struct cc_principal;

#define CC_TYPING_MS 2000

/* How the message came. */
#define CC_VIA_WS 0
#define CC_VIA_REST 1

/* What became of it. */
#define CC_SENT 0           /* stored and published */
#define CC_SENT_DUPLICATE 1 /* its client_id was stored: the original */
#define CC_SEND_REFUSED 2   /* not stored: error says why */
#define CC_SEND_MARKED 3    /* a read mark: stored (maybe not moved) */
#define CC_SEND_QUIET 4     /* typing: relayed or dropped; no answer */

/* What a caller takes (cc_send_req.kinds, bits); 0: all of them. */
#define CC_TAKE_MESSAGE 1u
#define CC_TAKE_READ 2u
#define CC_TAKE_TYPING 4u

struct cc_send_result {
    int outcome;             /* CC_SENT, CC_SENT_DUPLICATE, ... */
    int status;              /* as REST answers it: 201, 200, 400, 403,
                                404, 429, 503 */
    const char *error;       /* refused: the client-facing message */
    const struct cc_message *message; /* sent or original: borrowed for
                                         the callback, else NULL */
    int64_t count;           /* marked: messages newly read */
};

typedef void (*cc_send_done_fn)(void *arg, const struct cc_send_result *r);

struct cc_send_req {
    struct cc_loop *loop;    /* the caller's: the completion runs there */
    /* Or, when set, on the loop this names when the outcome is known
     * (called on loop 0 then): a WebSocket may move from loop 0 to a
     * worker while its message is with storage. */
    struct cc_loop *(*loop_of)(void *arg);
    int via;                 /* CC_VIA_* */
    /* Borrowed until done runs (the caller holds what they live in). */
    const struct cc_principal *who;
    const char *peer;        /* the client's address, for the audit */
    /* Borrowed for the call. */
    const char *chat_id;     /* canonical */
    const char *patient_id;  /* the chat's parties */
    const char *professional_id;
    const char *text;        /* the client's JSON, len bytes */
    size_t len;
    unsigned kinds;          /* CC_TAKE_* it may be; 0: any */
    /* Typing: when this connection last relayed one (ms, monotonic);
     * the caller's, on its loop.  NULL: typing is not taken. */
    uint64_t *typing_ms;
    cc_send_done_fn done;
    void *arg;
};

/* Send a message: done(arg, result) follows exactly once, on req->loop,
 * after this call returned.  Any loop. */
void cc_send(const struct cc_send_req *req);

/* Free the rate limiter's table (shutdown, loop 0). */
void cc_send_free(void);

#endif
