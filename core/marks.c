/*
 * marks.c - read and delivered marks and their events (see marks.h).
 */
#include "marks.h"
#include "fanout.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "notifier.h"
#include "server.h"
#include "store.h"
#include "strhash.h"
#include "timefmt.h"
#include "uuid.h"
#include "xalloc.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------ events */

/* Tell every node's opted-in connections of chat_id that m moved. */
static void publish(const char *chat_id, const struct cc_mark *m)
{
    struct cc_sbuf b = { 0 };
    char at[CC_TIME_LEN + 1];

    if (!m || !m->up_to_id)
        return;
    cc_sbuf_printf(&b, "{\"%s\": {\"by\": \"%s\", \"up_to\": ",
                   m->kind == CC_MARK_READ ? "read" : "delivered",
                   cc_side_name(m->side));
    cc_json_str(&b, m->up_to_id, strlen(m->up_to_id));
    cc_sbuf_printf(&b, ", \"at\": \"%s\"}}", cc_time_format(m->at_us, at));
    cc_fanout_publish(chat_id, 0, b.p, b.len);
    cc_sbuf_free(&b);
}

/* ------------------------------------------------------------ table */

/* One chat's side, on loop 0: the messages of the other party lately
 * delivered to it (what its reads may name), the newest of them and its
 * coalesced DELIVERED write, and the side's READ writes in flight with
 * the reads merged behind them. */
#define SEEN 64

struct read_op;

struct side {
    char key[CC_UUID_LEN + 3];  /* "<chat id>:<side>" */
    char chat_id[CC_UUID_LEN + 1];
    int side;
    /* the last SEEN messages delivered to the side, a ring */
    struct {
        int64_t seq;
        char id[CC_UUID_LEN + 1];
    } seen[SEEN];
    unsigned seen_at;           /* the next slot */
    int64_t noted;              /* the newest seq noted */
    int64_t written;            /* the newest seq storage has */
    uint64_t written_ms;        /* when it was written */
    int in_flight;              /* a DELIVERED write is with storage */
    struct event *timer;        /* the next write, coalesced */
    int reads_in_flight;        /* READ writes with storage */
    struct read_op *merged;     /* reads waiting to go as one write */
    struct read_op **merged_end;
    int64_t merged_seq;         /* the newest of them */
    char merged_id[CC_UUID_LEN + 1];
    struct side *next;          /* hash chain */
};

#define BUCKETS 4096
static struct side *table[BUCKETS];

static uint64_t now_ms(void)
{
    return cc_time_mono_ns() / 1000000;
}

/* "<chat id>:<side>".  Every message delivered comes here: no format
 * engine. */
static void key_of(char key[CC_UUID_LEN + 3], const char *chat_id, int side)
{
    size_t n;

    cc_uuid_copy(key, chat_id);
    n = strlen(key);
    key[n] = ':';
    key[n + 1] = (char)('0' + side);
    key[n + 2] = '\0';
}

static struct side **slot(const char *key)
{
    struct side **pp = &table[cc_strhash(key) & (BUCKETS - 1)];

    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg);

static struct side *side_get(const char *chat_id, int side)
{
    char key[CC_UUID_LEN + 3];
    struct side **pp, *d;

    key_of(key, chat_id, side);
    pp = slot(key);
    if ((d = *pp))
        return d;
    d = cc_xcalloc(1, sizeof *d);
    memcpy(d->key, key, sizeof key);
    cc_uuid_copy(d->chat_id, chat_id);
    d->side = side;
    d->timer = evtimer_new(cc_loop_base(cc_main_loop), timer_cb, d);
    if (!d->timer)
        abort();
    *pp = d;
    return d;
}

/* Forget d when nothing is left to do: nothing noted beyond what storage
 * has, no write on its way, and a whole window passed since the last
 * DELIVERED write (so a chat that goes quiet and speaks again still gets
 * one write per window at most).  1 when d is gone. */
static int drop_if_idle(struct side *d, int window_over)
{
    struct side **pp;

    if (!window_over || d->in_flight || d->noted > d->written ||
        d->reads_in_flight || d->merged ||
        event_pending(d->timer, EV_TIMEOUT, NULL))
        return 0;
    pp = slot(d->key);
    *pp = d->next;
    event_free(d->timer);
    free(d);
    return 1;
}

/* The seq of message id among those lately delivered to d's side, 0 when
 * it is not one of them. */
static int64_t seen_seq(const struct side *d, const char *id)
{
    /* Newest first: a reader marks what has just arrived.  Ids here are
     * canonical, CC_UUID_LEN bytes. */
    for (unsigned k = 1; k <= SEEN; k++) {
        unsigned i = (d->seen_at + SEEN - k) % SEEN;

        if (!d->seen[i].seq)
            return 0;
        if (memcmp(d->seen[i].id, id, CC_UUID_LEN) == 0)
            return d->seen[i].seq;
    }
    return 0;
}

/* ------------------------------------------------------------- reads */

/* A READ mark's write: one client's read, or the reads merged behind the
 * side's write in flight (then done for each of them). */
struct read_op {
    struct cc_mail m;          /* a refusal at the call is posted */
    char chat_id[CC_UUID_LEN + 1];
    int side;
    cc_marks_done_fn done;
    void *arg;
    int status;
    struct side *d;            /* counted in d->reads_in_flight */
    struct read_op *merged;    /* a merged write's reads */
    struct read_op *next;      /* in d->merged, or a write's list */
};

static void issue(struct read_op *op, const char *up_to_id);

/* The reads merged behind d's writes go as one write, for the newest. */
static void write_merged(struct side *d)
{
    struct read_op *op;

    if (d->reads_in_flight || !d->merged)
        return;
    op = cc_xcalloc(1, sizeof *op);
    cc_uuid_copy(op->chat_id, d->chat_id);
    op->side = d->side;
    op->merged = d->merged;
    op->d = d;
    d->merged = NULL;
    d->merged_seq = 0;
    issue(op, d->merged_id);
}

/* A write's answer, to its client or to each read merged into it. */
static void answer(struct read_op *op, int status, const struct cc_mark *m,
                   int64_t count)
{
    struct read_op *w, *next;

    if (op->done)
        op->done(op->arg, status, m, count);
    for (w = op->merged; w; w = next) {
        next = w->next;
        /* Each was a read of the other party's messages up to one at or
         * before the mark written: counted in the written one. */
        w->done(w->arg, status, m, 0);
        free(w);
    }
}

/* A write is over (stored, failed or refused): answered, and its side
 * sends the reads that waited behind it. */
static void write_over(struct read_op *op, int status,
                       const struct cc_mark *m, int64_t count)
{
    struct side *d = op->d;

    answer(op, status, m, count);
    free(op);
    if (d) {
        d->reads_in_flight--;
        write_merged(d);
        drop_if_idle(d, now_ms() >= d->written_ms + CC_MARKS_COALESCE_MS);
    }
}

static void read_done(void *arg, int status, const struct cc_store_result *res)
{
    struct read_op *op = arg;
    const struct cc_mark *m = status == CC_OK ? cc_store_mark(res) : NULL;

    if (m && m->moved)
        publish(op->chat_id, m);
    write_over(op, status, m, status == CC_OK ? res->count : 0);
}

static void refused_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct read_op *op = (struct read_op *)mail;

    (void)on;
    write_over(op, op->status, NULL, 0);
}

static void issue(struct read_op *op, const char *up_to_id)
{
    struct cc_mark_req r = {
        .chat_id = op->chat_id, .side = op->side, .kind = CC_MARK_READ,
        .up_to_id = up_to_id && up_to_id[0] ? up_to_id : NULL,
        .at_us = cc_time_now_us(),
        .notify_delay_us = cc_notifier_delay_us(),
    };

    if (op->d)
        op->d->reads_in_flight++;
    op->status = cc_store_mark_set(&r, read_done, op);
    if (op->status != CC_OK)
        cc_loop_post(cc_main_loop, &op->m, refused_cb);
}

void cc_marks_read(const char *chat_id, int side, const char *up_to_id,
                   int merge, cc_marks_done_fn done, void *arg)
{
    struct read_op *op = cc_xcalloc(1, sizeof *op);
    struct side *d = NULL;
    int64_t seq;

    cc_uuid_copy(op->chat_id, chat_id);
    op->side = side;
    op->done = done;
    op->arg = arg;
    if (merge && up_to_id && up_to_id[0] && cc_store_can(CC_STORE_MARKS)) {
        char key[CC_UUID_LEN + 3];

        key_of(key, chat_id, side);
        d = *slot(key);
    }
    /* A read of a message lately delivered to this side while one of
     * its writes is with storage waits and goes with the next write, as
     * one: a reader who marks each message as it arrives costs storage a
     * write per round trip, not per message.  Its id is known to be in
     * the chat; any other read is written alone, and told if it is not. */
    if (d && d->reads_in_flight && (seq = seen_seq(d, up_to_id)) > 0) {
        if (!d->merged)
            d->merged_end = &d->merged;
        *d->merged_end = op;
        d->merged_end = &op->next;
        if (seq > d->merged_seq) {
            d->merged_seq = seq;
            cc_uuid_copy(d->merged_id, up_to_id);
        }
        return;
    }
    op->d = d;
    issue(op, up_to_id);
}

/* -------------------------------------------------------- delivered */

static void write_due(struct side *d);

static void written_cb(void *arg, int status, const struct cc_store_result *res)
{
    struct side *d = arg;
    const struct cc_mark *m = status == CC_OK ? cc_store_mark(res) : NULL;

    d->in_flight = 0;
    d->written_ms = now_ms();
    if (m) {
        if (m->up_to_seq > d->written)
            d->written = m->up_to_seq;
        if (m->moved)
            publish(d->chat_id, m);
    } else {
        if (status != CC_E_NOTFOUND)
            cc_log(CC_LOG_WARN, "marks", "delivered mark not stored: %s",
                   res && res->error ? res->error : "storage error");
        d->written = d->noted; /* not again and again: the next message
                                  tries afresh */
    }
    write_due(d);
}

/* The window ended: write what was noted since, or forget d. */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct side *d = arg;
    struct cc_mark_req r = { .side = d->side, .kind = CC_MARK_DELIVERED };

    (void)fd;
    (void)what;
    if (d->noted <= d->written) {
        drop_if_idle(d, 1);
        return;
    }
    r.chat_id = d->chat_id;
    r.up_to_id = d->seen[(d->seen_at + SEEN - 1) % SEEN].id;
    r.at_us = cc_time_now_us();
    d->in_flight = 1;
    if (cc_store_mark_set(&r, written_cb, d) != CC_OK) {
        d->in_flight = 0;
        d->written = d->noted; /* storage is busy: a later message again */
        d->written_ms = now_ms();
        write_due(d);
    }
}

/* Write what was noted when the window since the last write ends (at
 * once when it has); with nothing to write, forget d then. */
static void write_due(struct side *d)
{
    uint64_t now, due = d->written_ms + CC_MARKS_COALESCE_MS, wait;
    struct timeval tv;

    if (d->in_flight || event_pending(d->timer, EV_TIMEOUT, NULL))
        return;
    now = now_ms();
    wait = due > now ? due - now : 0;
    if (!wait && d->noted <= d->written) {
        drop_if_idle(d, 1);
        return;
    }
    tv.tv_sec = (time_t)(wait / 1000);
    tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
    evtimer_add(d->timer, &tv);
}

void cc_marks_delivered(const char *chat_id, int side, int64_t seq,
                        const char *id)
{
    struct side *d;

    if (!cc_store_can(CC_STORE_MARKS) || !id || !id[0])
        return;
    d = side_get(chat_id, side);
    if (seq <= d->noted)
        return;
    d->noted = seq;
    d->seen[d->seen_at].seq = seq;
    cc_uuid_copy(d->seen[d->seen_at].id, id);
    d->seen_at = (d->seen_at + 1) % SEEN;
    write_due(d);
}

void cc_marks_free(void)
{
    for (size_t i = 0; i < BUCKETS; i++)
        while (table[i]) {
            struct side *d = table[i];
            table[i] = d->next;
            event_free(d->timer);
            free(d);
        }
}
