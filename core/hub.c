/*
 * hub.c - chats with live connections on this node (see hub.h).
 *
 * A hash table from chat id to the chat's member list.  Delivery encodes
 * the frame once and hands the same refcounted frame to every member.
 */
#include "hub.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "session.h"

#include <carechat/fanout.h>

#include <stdlib.h>
#include <string.h>

struct hub_chat {
    char id[37];
    struct cc_hub_member *members;
    size_t n_members;
    struct hub_chat *next;   /* hash chain */
};

struct cc_hub_member {
    struct cc_conn *conn;
    struct hub_chat *chat;
    struct cc_hub_member *prev, *next;
};

static struct hub_chat **table;
static size_t n_buckets, n_chats;

static uint32_t hash_id(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p)
        abort();
    return p;
}

/* Double the table when chains get long (load factor 1). */
static void maybe_grow(void)
{
    size_t nb = n_buckets ? n_buckets * 2 : 1024;
    struct hub_chat **t;

    if (n_buckets && n_chats < n_buckets)
        return;
    t = xcalloc(nb, sizeof *t);
    for (size_t i = 0; i < n_buckets; i++) {
        struct hub_chat *ch = table[i], *next;
        for (; ch; ch = next) {
            next = ch->next;
            size_t b = hash_id(ch->id) & (nb - 1);
            ch->next = t[b];
            t[b] = ch;
        }
    }
    free(table);
    table = t;
    n_buckets = nb;
}

static struct hub_chat **find_slot(const char *id)
{
    struct hub_chat **pp;

    if (!n_buckets)
        return NULL;
    for (pp = &table[hash_id(id) & (n_buckets - 1)]; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0)
            return pp;
    return NULL;
}

struct cc_hub_member *cc_hub_join(struct cc_conn *c, const char *chat_id)
{
    struct hub_chat **pp = find_slot(chat_id), *ch;
    struct cc_hub_member *m = xcalloc(1, sizeof *m);

    if (pp) {
        ch = *pp;
    } else {
        maybe_grow();
        ch = xcalloc(1, sizeof *ch);
        memcpy(ch->id, chat_id, sizeof ch->id - 1);
        size_t b = hash_id(ch->id) & (n_buckets - 1);
        ch->next = table[b];
        table[b] = ch;
        n_chats++;
        if (cc_srv->fo->subscribe(cc_srv->fanout.inst, ch->id) != CC_OK)
            cc_log(CC_LOG_WARN, "hub", "fan-out could not subscribe chat "
                   "%s; only local messages will arrive", ch->id);
    }
    m->conn = c;
    m->chat = ch;
    m->next = ch->members;
    if (ch->members)
        ch->members->prev = m;
    ch->members = m;
    ch->n_members++;
    return m;
}

void cc_hub_leave(struct cc_hub_member *m)
{
    struct hub_chat *ch, **pp;

    if (!m)
        return;
    ch = m->chat;
    if (m->prev)
        m->prev->next = m->next;
    else
        ch->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    ch->n_members--;
    free(m);
    if (ch->n_members)
        return;
    cc_srv->fo->unsubscribe(cc_srv->fanout.inst, ch->id);
    pp = find_slot(ch->id);
    *pp = ch->next;
    n_chats--;
    free(ch);
}

void cc_hub_deliver(const char *chat_id, int64_t seq, const char *payload,
                    size_t len)
{
    struct hub_chat **pp = find_slot(chat_id);
    struct cc_hub_member *m, *next;
    struct cc_frame *f;

    if (!pp)
        return; /* nobody here for this chat */
    f = cc_frame_text(payload, len);
    for (m = (*pp)->members; m; m = next) {
        next = m->next; /* sending may drop a slow member */
        cc_session_send_frame(m->conn, f);
    }
    cc_frame_unref(f);
}

size_t cc_hub_chats(void)
{
    return n_chats;
}

void cc_hub_free(void)
{
    free(table);
    table = NULL;
    n_buckets = n_chats = 0;
}
