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

/* ------------------------------------------------------------- reads */

struct read_op {
    struct cc_mail m;          /* a refusal at the call is posted */
    char chat_id[CC_UUID_LEN + 1];
    cc_marks_done_fn done;
    void *arg;
    int status;
};

static void read_done(void *arg, int status, const struct cc_store_result *res)
{
    struct read_op *op = arg;
    const struct cc_mark *m = status == CC_OK ? cc_store_mark(res) : NULL;

    if (m && m->moved)
        publish(op->chat_id, m);
    op->done(op->arg, status, m, status == CC_OK ? res->count : 0);
    free(op);
}

static void refused_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct read_op *op = (struct read_op *)mail;

    (void)on;
    op->done(op->arg, op->status, NULL, 0);
    free(op);
}

void cc_marks_read(const char *chat_id, int side, const char *up_to_id,
                   cc_marks_done_fn done, void *arg)
{
    struct read_op *op = cc_xcalloc(1, sizeof *op);
    struct cc_mark_req r = {
        .chat_id = chat_id, .side = side, .kind = CC_MARK_READ,
        .up_to_id = up_to_id && up_to_id[0] ? up_to_id : NULL,
        .at_us = cc_time_now_us(),
        .notify_delay_us = cc_notifier_delay_us(),
    };

    snprintf(op->chat_id, sizeof op->chat_id, "%s", chat_id);
    op->done = done;
    op->arg = arg;
    op->status = cc_store_mark_set(&r, read_done, op);
    if (op->status != CC_OK)
        cc_loop_post(cc_main_loop, &op->m, refused_cb);
}

/* -------------------------------------------------------- delivered */

/* One chat's side: the newest message noted, and the write of it. */
struct dlv {
    char key[CC_UUID_LEN + 3];  /* "<chat id>:<side>" */
    char chat_id[CC_UUID_LEN + 1];
    int side;
    int64_t noted;              /* the newest seq noted */
    char noted_id[CC_UUID_LEN + 1];
    int64_t written;            /* the newest seq storage has */
    uint64_t written_ms;        /* when it was written */
    int in_flight;              /* a write is with storage */
    struct event *timer;        /* the next write, coalesced */
    struct dlv *next;           /* hash chain */
};

#define DLV_BUCKETS 4096
static struct dlv *table[DLV_BUCKETS];

static uint64_t now_ms(void)
{
    return cc_time_mono_ns() / 1000000;
}

static struct dlv **slot(const char *key)
{
    struct dlv **pp = &table[cc_strhash(key) & (DLV_BUCKETS - 1)];

    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* Nothing noted beyond what storage has, nothing on its way: forget it
 * (it is found again on the chat's next message). */
static void drop_if_idle(struct dlv *d)
{
    struct dlv **pp;

    if (d->in_flight || d->noted > d->written)
        return;
    pp = slot(d->key);
    *pp = d->next;
    event_free(d->timer);
    free(d);
}

static void write_due(struct dlv *d);

static void written_cb(void *arg, int status, const struct cc_store_result *res)
{
    struct dlv *d = arg;
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

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct dlv *d = arg;
    struct cc_mark_req r = { .side = d->side, .kind = CC_MARK_DELIVERED };

    (void)fd;
    (void)what;
    r.chat_id = d->chat_id;
    r.up_to_id = d->noted_id;
    r.at_us = cc_time_now_us();
    d->in_flight = 1;
    if (cc_store_mark_set(&r, written_cb, d) != CC_OK) {
        d->in_flight = 0;
        d->written = d->noted; /* storage is busy: a later message again */
        drop_if_idle(d);
    }
}

/* Write what was noted, no sooner than CC_MARKS_COALESCE_MS after the
 * last write; or forget d when there is nothing to write. */
static void write_due(struct dlv *d)
{
    uint64_t now = now_ms(), due = d->written_ms + CC_MARKS_COALESCE_MS;
    struct timeval tv = { 0, 0 };

    if (d->in_flight || event_pending(d->timer, EV_TIMEOUT, NULL))
        return;
    if (d->noted <= d->written) {
        drop_if_idle(d);
        return;
    }
    if (due > now)
        tv.tv_usec = (suseconds_t)(due - now) * 1000;
    evtimer_add(d->timer, &tv);
}

void cc_marks_delivered(const char *chat_id, int side, int64_t seq,
                        const char *id)
{
    char key[CC_UUID_LEN + 3];
    struct dlv **pp, *d;

    if (!cc_store_can(CC_STORE_MARKS) || !id || !id[0])
        return;
    snprintf(key, sizeof key, "%.36s:%d", chat_id, side);
    pp = slot(key);
    if (!(d = *pp)) {
        d = cc_xcalloc(1, sizeof *d);
        memcpy(d->key, key, sizeof key);
        snprintf(d->chat_id, sizeof d->chat_id, "%s", chat_id);
        d->side = side;
        d->timer = evtimer_new(cc_loop_base(cc_main_loop), timer_cb, d);
        if (!d->timer)
            abort();
        *pp = d;
    }
    if (seq <= d->noted)
        return;
    d->noted = seq;
    snprintf(d->noted_id, sizeof d->noted_id, "%s", id);
    write_due(d);
}

void cc_marks_free(void)
{
    for (size_t i = 0; i < DLV_BUCKETS; i++)
        while (table[i]) {
            struct dlv *d = table[i];
            table[i] = d->next;
            event_free(d->timer);
            free(d);
        }
}
