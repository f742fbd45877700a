/*
 * order.c - a chat's delivery order on this node: gaps filled from
 * storage, duplicates dropped (see order.h).
 */
#include "order.h"
#include "frame.h"
#include "log.h"
#include "loop.h"
#include "msg.h"
#include "store.h"
#include "uuid.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

/* Reads of a gap that come back empty before it is given up. */
#define EMPTY_TRIES 3

struct cc_order {
    char chat_id[CC_UUID_LEN + 1];
    cc_order_deliver_fn deliver;
    void *arg;
    int known;           /* last is set: a message was delivered, or a
                            gap or resync started from base */
    int64_t last;        /* the last seq delivered here (known) */
    int64_t want;        /* the highest seq offered, not delivered */
    int based;           /* base was read */
    int64_t base;        /* the chat's newest seq soon after it got its
                            first member here */
    int drain;           /* resync: read until storage has no more */
    int reading;         /* a storage read is in flight */
    int reading_base;    /* it is the read of where the chat stands */
    int gone;            /* freed while reading or delivering: free when
                            that returns */
    int delivering;      /* deliver_page is handing messages out: one may
                            drop the chat's last member, and free o */
    int empty;           /* gap reads that found nothing, in a row */
    struct event *retry; /* a failed read is tried again */
};

static void read_next(struct cc_order *o);

/* Send a page's messages after o->last, in order. */
static void deliver_page(struct cc_order *o, const struct cc_store_result *res)
{
    struct cc_sbuf b = { 0 };

    o->delivering = 1;
    for (size_t i = 0; i < res->n_messages && !o->gone; i++) {
        const struct cc_message *m = res->messages[i];
        struct cc_frame *f;

        if (m->seq <= o->last)
            continue;
        b.len = 0;
        cc_sbuf_adds(&b, "{\"message\": ");
        cc_json_message(&b, m, 0);
        cc_sbuf_adds(&b, "}");
        f = cc_frame_text(b.p, b.len);
        f->seq = m->seq;
        o->last = m->seq;
        o->deliver(o->arg, f);
        cc_frame_unref(f);
    }
    o->delivering = 0;
    cc_sbuf_free(&b);
}

/* The answer to the read of where the chat stands (no message was
 * delivered before it came, or the first message showed a gap). */
static void took_base(struct cc_order *o, const struct cc_store_result *res)
{
    o->based = 1;
    o->base = res->n_messages ? res->messages[0]->seq : 0;
    if (o->known)
        return; /* a message came first: it set last */
    if (o->want || o->drain) {
        /* A gap before the first message, or a resync: from the base. */
        o->known = 1;
        o->last = o->base;
    }
}

static void read_done(void *arg, int status,
                      const struct cc_store_result *res)
{
    struct cc_order *o = arg;
    int64_t before;
    int was_base = o->reading_base;

    o->reading = o->reading_base = 0;
    if (o->gone) {
        cc_order_free(o);
        return;
    }
    if (status != CC_OK && status != CC_E_NOTFOUND) {
        cc_log(CC_LOG_WARN, "hub", "chat %s: cannot read missed messages "
               "(%s); trying again", o->chat_id,
               res->error ? res->error : "storage error");
        event_add(o->retry, &(struct timeval){ 0,
                                               CC_ORDER_RETRY_MS * 1000 });
        return;
    }
    if (was_base) {
        took_base(o, res);
    } else {
        before = o->last;
        deliver_page(o, res);
        if (o->gone) {
            cc_order_free(o); /* its last member left meanwhile */
            return;
        }
        if (o->last == before && o->want > o->last &&
            ++o->empty >= EMPTY_TRIES) {
            cc_log(CC_LOG_WARN, "hub", "chat %s: messages %lld to %lld "
                   "are not in storage; going on without them",
                   o->chat_id, (long long)o->last + 1,
                   (long long)o->want - 1);
            o->last = o->want - 1;
        } else if (o->last != before) {
            o->empty = 0;
        }
        if (!res->more)
            o->drain = 0;
    }
    read_next(o);
}

/* Read again when something is still to come. */
static void read_next(struct cc_order *o)
{
    struct cc_message_query q = {
        .chat_id = o->chat_id, .viewer_side = CC_SIDE_NONE,
        .limit = CC_ORDER_PAGE,
    };
    int rc;

    if (o->reading || event_pending(o->retry, EV_TIMEOUT, NULL))
        return;
    if (o->known && !o->drain && o->want <= o->last)
        return;
    if (!o->known && o->based)
        return; /* nothing to read until a message comes */
    if (o->known) {
        q.after_seq = o->last;
    } else {
        q.before_seq = INT64_MAX; /* the newest message */
        q.limit = 1;
        o->reading_base = 1;
    }
    o->reading = 1;
    rc = cc_store_message_list(&q, read_done, o);
    if (rc != CC_OK) {
        struct cc_store_result none = { .struct_size = sizeof none };
        read_done(o, rc, &none);
    }
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_next(arg);
}

struct cc_order *cc_order_new(const char *chat_id,
                              cc_order_deliver_fn deliver, void *arg)
{
    struct cc_order *o = calloc(1, sizeof *o);

    if (!o)
        abort();
    memcpy(o->chat_id, chat_id, sizeof o->chat_id - 1);
    o->deliver = deliver;
    o->arg = arg;
    o->retry = evtimer_new(cc_loop_base(cc_main_loop), retry_cb, o);
    if (!o->retry)
        abort();
    read_next(o);
    return o;
}

int cc_order_offer(struct cc_order *o, int64_t seq)
{
    if (!o->known) {
        /* The first message here.  The read of where the chat stands
         * may count it already (it was stored first), so it decides
         * nothing about this one: deliver it, unless it shows a gap
         * after that newest message, which storage then fills. */
        if (!o->based || seq <= o->base + 1) {
            o->known = 1;
            o->last = seq;
            return 1;
        }
        o->known = 1;
        o->last = o->base;
    } else if ((!o->reading || o->reading_base) && seq == o->last + 1 &&
               o->want <= o->last) {
        o->last = seq;
        return 1;
    } else if (seq <= o->last) {
        return 0; /* delivered already */
    }
    if (seq > o->want)
        o->want = seq;
    read_next(o);
    return 0;
}

void cc_order_resync(struct cc_order *o)
{
    o->drain = 1;
    if (!o->known && o->based) {
        o->known = 1;
        o->last = o->base;
    }
    read_next(o);
}

void cc_order_free(struct cc_order *o)
{
    if (o->reading || o->delivering) {
        o->gone = 1;
        return;
    }
    event_free(o->retry);
    free(o);
}
