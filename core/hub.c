/*
 * hub.c - chats with live connections on this node (see hub.h).
 *
 * Per loop, a hash table from chat id to the chat's member list.  On
 * loop 0 a chat also counts the members each worker loop has (remote[]),
 * so a delivery is mailed only to the loops that have someone to give it
 * to: one mail per loop, carrying the shared frame, whatever the number of
 * members there.
 */
#include "hub.h"
#include "fanout.h"
#include "frame.h"
#include "log.h"
#include "marks.h"
#include "loop.h"
#include "metrics.h"
#include "order.h"
#include "strhash.h"

#include <carechat/storage.h>
#include "uuid.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

struct hub_chat {
    char id[CC_UUID_LEN + 1];
    struct cc_order *order;  /* loop 0: the chat's order here (order.h) */
    uint32_t side_n[3];      /* loop 0: members of each side, any loop */
    struct cc_hub_member *members;
    size_t n_members;
    uint32_t *remote;        /* loop 0: members on each loop (by index) */
    size_t n_remote;         /* their sum */
    struct hub_chat *next;   /* hash chain */
};

struct cc_hub_member {
    cc_hub_send_fn send;
    void *owner;
    struct cc_loop *loop;
    int sides;
    struct hub_chat *chat;
    struct cc_hub_member *prev, *next;
};

/* One loop's chats (its state under hub_key). */
struct cc_hub {
    struct cc_loop *loop;    /* whose */
    struct hub_chat **table;
    size_t n_buckets, n_chats;
};

static unsigned hub_key;

/* A worker's member left chat_id (worker -> loop 0). */
struct leave_mail {
    struct cc_mail m;
    unsigned from;
    int sides;
    char chat_id[CC_UUID_LEN + 1];
};

/* A stored message for the members on one loop (loop 0 -> worker). */
struct deliver_mail {
    struct cc_mail m;
    struct cc_frame *frame;
    char chat_id[CC_UUID_LEN + 1];
};

/* Double the table when chains get long (load factor 1). */
static void maybe_grow(struct cc_hub *h)
{
    size_t nb = h->n_buckets ? h->n_buckets * 2 : 1024;
    struct hub_chat **t;

    if (h->n_buckets && h->n_chats < h->n_buckets)
        return;
    t = cc_xcalloc(nb, sizeof *t);
    for (size_t i = 0; i < h->n_buckets; i++) {
        struct hub_chat *ch = h->table[i], *next;
        for (; ch; ch = next) {
            next = ch->next;
            size_t b = cc_strhash(ch->id) & (nb - 1);
            ch->next = t[b];
            t[b] = ch;
        }
    }
    free(h->table);
    h->table = t;
    h->n_buckets = nb;
}

static struct hub_chat **find_slot(struct cc_hub *h, const char *id)
{
    struct hub_chat **pp;

    if (!h->n_buckets)
        return NULL;
    for (pp = &h->table[cc_strhash(id) & (h->n_buckets - 1)]; *pp;
         pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0)
            return pp;
    return NULL;
}

static void hub_free(struct cc_loop *l, void *state);

/* Loop l's hub, made on first use (on l's thread). */
static struct cc_hub *hub_of(struct cc_loop *l)
{
    struct cc_hub *h = cc_loop_get(l, hub_key);

    if (!h) {
        h = cc_xcalloc(1, sizeof *h);
        h->loop = l;
        cc_loop_set(l, hub_key, h);
    }
    return h;
}

void cc_hub_init(void)
{
    hub_key = cc_loop_key(hub_free);
}

static int is_main(const struct cc_hub *h)
{
    return h->loop == cc_main_loop;
}

static void deliver_cb(struct cc_loop *on, struct cc_mail *mail);
static void send_all(struct hub_chat *ch, struct cc_frame *f);

/* Loop 0: sides' member counts of ch, by delta. */
static void count_sides(struct hub_chat *ch, int sides, int delta)
{
    for (int s = CC_SIDE_PATIENT; s <= CC_SIDE_PROFESSIONAL; s++)
        if (sides & (1 << s))
            ch->side_n[s] += (uint32_t)delta;
}

/* Loop 0: f to every member of ch, here and on the worker loops; a
 * message of one party reaching a member of the other is delivered to
 * that side. */
static void hub_send(void *arg, struct cc_frame *f)
{
    struct hub_chat *ch = arg;
    int other = f->sender == CC_SIDE_PATIENT      ? CC_SIDE_PROFESSIONAL
              : f->sender == CC_SIDE_PROFESSIONAL ? CC_SIDE_PATIENT
                                                  : 0;

    if (f->kind == CC_FRAME_MESSAGE && f->seq > 0 && other &&
        ch->side_n[other])
        cc_marks_delivered(ch->id, other, f->seq, f->id);

    for (unsigned i = 1; ch->n_remote && i < cc_n_loops; i++) {
        struct deliver_mail *dm;
        if (!ch->remote[i])
            continue;
        dm = malloc(sizeof *dm);
        if (!dm)
            abort();
        dm->frame = cc_frame_ref(f);
        memcpy(dm->chat_id, ch->id, sizeof dm->chat_id);
        cc_loop_post(cc_loops[i], &dm->m, deliver_cb);
    }
    send_all(ch, f);
}

/* The chat id on hub h, created (and on loop 0 subscribed) if new. */
static struct hub_chat *chat_get(struct cc_hub *h, const char *id)
{
    struct hub_chat **pp = find_slot(h, id), *ch;

    if (pp)
        return *pp;
    maybe_grow(h);
    ch = cc_xcalloc(1, sizeof *ch);
    memcpy(ch->id, id, sizeof ch->id - 1);
    size_t b = cc_strhash(ch->id) & (h->n_buckets - 1);
    ch->next = h->table[b];
    h->table[b] = ch;
    h->n_chats++;
    if (!is_main(h))
        return ch;
    ch->order = cc_order_new(ch->id, hub_send, ch);
    cc_fanout_subscribe(ch->id);
    return ch;
}

/* Drop ch from h when nobody is left in it (on loop 0: anywhere). */
static void chat_release(struct cc_hub *h, struct hub_chat *ch)
{
    struct hub_chat **pp;

    if (ch->n_members || ch->n_remote)
        return;
    if (is_main(h))
        cc_fanout_unsubscribe(ch->id);
    if (ch->order)
        cc_order_free(ch->order);
    pp = find_slot(h, ch->id);
    *pp = ch->next;
    h->n_chats--;
    free(ch->remote);
    free(ch);
}

struct cc_hub_member *cc_hub_join(struct cc_loop *l, const char *chat_id,
                                  int sides, cc_hub_send_fn send,
                                  void *owner)
{
    struct hub_chat *ch = chat_get(hub_of(l), chat_id);
    struct cc_hub_member *m = cc_xcalloc(1, sizeof *m);

    m->send = send;
    m->owner = owner;
    m->loop = l;
    m->sides = sides;
    m->chat = ch;
    if (l == cc_main_loop)
        count_sides(ch, sides, 1);
    m->next = ch->members;
    if (ch->members)
        ch->members->prev = m;
    ch->members = m;
    ch->n_members++;
    cc_metrics_add(l, CC_STAT_WEBSOCKETS, 1);
    return m;
}

/* Loop 0: delta members of chat_id (of sides) on loop index `on`. */
static void route(const char *chat_id, unsigned on, int sides, int delta)
{
    struct cc_hub *h = hub_of(cc_main_loop);
    struct hub_chat *ch;

    if (delta > 0) {
        ch = chat_get(h, chat_id);
        if (!ch->remote)
            ch->remote = cc_xcalloc(CC_LOOPS_MAX, sizeof *ch->remote);
    } else {
        struct hub_chat **pp = find_slot(h, chat_id);
        if (!pp || !(*pp)->remote || !(*pp)->remote[on])
            return;
        ch = *pp;
    }
    ch->remote[on] += (uint32_t)delta;
    ch->n_remote += (size_t)delta;
    count_sides(ch, sides, delta);
    chat_release(h, ch);
}

void cc_hub_route_add(const char *chat_id, struct cc_loop *to, int sides)
{
    route(chat_id, cc_loop_index(to), sides, 1);
}

static void leave_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct leave_mail *lm = (struct leave_mail *)mail;

    route(lm->chat_id, lm->from, lm->sides, -1);
    free(lm);
}

void cc_hub_leave(struct cc_hub_member *m)
{
    struct cc_loop *l;
    struct hub_chat *ch;
    int sides;

    if (!m)
        return;
    l = m->loop;
    ch = m->chat;
    sides = m->sides;
    if (l == cc_main_loop)
        count_sides(ch, sides, -1);
    if (m->prev)
        m->prev->next = m->next;
    else
        ch->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    ch->n_members--;
    cc_metrics_add(l, CC_STAT_WEBSOCKETS, -1);
    free(m);
    if (l != cc_main_loop) {
        struct leave_mail *lm = cc_xcalloc(1, sizeof *lm);
        lm->from = cc_loop_index(l);
        lm->sides = sides;
        memcpy(lm->chat_id, ch->id, sizeof lm->chat_id);
        cc_loop_post(cc_main_loop, &lm->m, leave_cb);
    }
    chat_release(hub_of(l), ch);
}

/* Hand f to every member of ch (sending may drop a slow member). */
static void send_all(struct hub_chat *ch, struct cc_frame *f)
{
    struct cc_hub_member *m, *next;

    for (m = ch->members; m; m = next) {
        next = m->next;
        m->send(m->owner, f);
    }
}

static void deliver_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct deliver_mail *dm = (struct deliver_mail *)mail;
    struct hub_chat **pp = find_slot(hub_of(on), dm->chat_id);

    if (pp) /* else its members left while the mail was on its way */
        send_all(*pp, dm->frame);
    cc_frame_unref(dm->frame);
    free(dm);
}

void cc_hub_deliver(const char *chat_id, int64_t seq, const char *payload,
                    size_t len)
{
    struct hub_chat **pp = find_slot(hub_of(cc_main_loop), chat_id);
    struct cc_frame *f;

    if (!pp)
        return; /* nobody here for this chat */
    if (seq > 0 && (*pp)->order && !cc_order_offer((*pp)->order, seq))
        return; /* delivered already, or it comes from storage in order */
    f = cc_frame_text(payload, len);
    f->seq = seq;
    hub_send(*pp, f);
    cc_frame_unref(f);
}

void cc_hub_resync(const char *chat_id)
{
    struct cc_hub *h = hub_of(cc_main_loop);
    struct hub_chat **pp;

    if (chat_id) {
        if ((pp = find_slot(h, chat_id)) && (*pp)->order)
            cc_order_resync((*pp)->order);
        return;
    }
    for (size_t i = 0; i < h->n_buckets; i++)
        for (struct hub_chat *ch = h->table[i]; ch; ch = ch->next)
            if (ch->order)
                cc_order_resync(ch->order);
}

/* The loop's hub at exit (loop.h calls it; every member has left). */
static void hub_free(struct cc_loop *l, void *state)
{
    struct cc_hub *h = state;

    (void)l;
    for (size_t i = 0; i < h->n_buckets; i++) {
        struct hub_chat *ch, *next;
        for (ch = h->table[i]; ch; ch = next) {
            next = ch->next;
            while (ch->members) {
                struct cc_hub_member *m = ch->members;
                ch->members = m->next;
                free(m);
            }
            if (ch->order)
                cc_order_free(ch->order);
            free(ch->remote);
            free(ch);
        }
    }
    free(h->table);
    free(h);
}
