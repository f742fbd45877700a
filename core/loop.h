/*
 * loop.h - the event loops of the process ([server] threads = N) and the
 * mailboxes between them.
 *
 * Loop 0 is the main loop: it owns the plugins, the listeners, REST,
 * WebSocket handshakes and authentication, and it is the only loop that
 * calls storage, auth or fan-out.  Loops 1..N-1 are workers: each owns the
 * WebSocket connections handed to it after their 101 and does their
 * reading, frame decoding, JSON parsing and writing.  Loops talk only by
 * mail: a worker mails each chat message to loop 0 to be stored; loop 0
 * mails each stored message's frame (encoded once, shared by reference)
 * to every loop that has members of the chat.
 *
 * A mailbox is a lock-free multi-producer, single-consumer queue; posting
 * wakes the owning loop at most once per batch.  Mail from one thread is
 * handled in the order it was posted.
 */
#ifndef CC_LOOP_H
#define CC_LOOP_H

#include <stdint.h>

struct event_base;
struct cc_loop;

struct cc_mail;
typedef void (*cc_mail_fn)(struct cc_loop *on, struct cc_mail *m);

/* The head of every mail; the handler frees the whole mail. */
struct cc_mail {
    struct cc_mail *next;   /* accessed atomically */
    cc_mail_fn fn;
};

#define CC_LOOPS_MAX 64

/* The loops; cc_loops[0] is the main loop (it exists with threads = 1).
 * cc_n_loops is fixed once cc_loops_start returned. */
extern struct cc_loop *cc_loops[CC_LOOPS_MAX];
extern unsigned cc_n_loops;

#define cc_main_loop (cc_loops[0])

/* Create loop 0 around base (the main thread's loop).  Returns 0 or -1. */
int cc_loops_init(struct event_base *base);

/* Create and start workers so that there are n loops in all.  Returns 0,
 * or -1 after logging (no worker is left running then). */
int cc_loops_start(unsigned n);

/* Ask every worker to stop and wait for their threads (each runs the mail
 * queued before it stops).  Shutdown, after loop 0's loop returned. */
void cc_loops_stop(void);

/* Run loop 0's queued mail now (shutdown, workers stopped, plugins still
 * loaded: a worker's last leave may unsubscribe a chat). */
void cc_loops_drain_main(void);

/* Stop the workers, run all mail still queued on this thread, free every
 * loop (not loop 0's base, which main.c owns).  Last, after the plugins
 * were unloaded. */
void cc_loops_free(void);

/* Post m to loop to; fn(to, m) runs on to's thread.  Any thread. */
void cc_loop_post(struct cc_loop *to, struct cc_mail *m, cc_mail_fn fn);

/* A loop's parts. */
struct event_base *cc_loop_base(const struct cc_loop *l);
unsigned cc_loop_index(const struct cc_loop *l);

/* Per-loop state of a module (the hub's chats, the connections a loop
 * owns): the module takes a key once, before the loops run its code
 * (its init, at start); each loop then holds one pointer for that key,
 * NULL until the module sets it, read and written only on that loop's
 * thread (by any thread once the loops stopped).  cc_loops_free calls
 * free_fn(loop, state) for each pointer still set.  The loop knows
 * nothing else of the module. */
#define CC_LOOP_KEYS_MAX 8
typedef void (*cc_loop_free_fn)(struct cc_loop *l, void *state);
unsigned cc_loop_key(cc_loop_free_fn free_fn);
void *cc_loop_get(const struct cc_loop *l, unsigned key);
void cc_loop_set(struct cc_loop *l, unsigned key, void *state);

/* The worker to hand the next WebSocket to (round robin), or NULL when
 * there are no workers. */
struct cc_loop *cc_loop_next_worker(void);

#endif
