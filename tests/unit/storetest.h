/*
 * storetest.h - a storage plugin loaded through the real host, and each
 * storage call as a function that waits for its callback and copies the
 * result: what the storage plugin tests (test_sqlite.c, test_pgstore.c)
 * share.
 *
 * Header-only; include once per test program, after tap.h and
 * plugintest.h, with STORETEST_PLUGIN defined as the plugin's file name
 * ("storage-sqlite").
 */
#ifndef CC_STORETEST_H
#define CC_STORETEST_H

#include <carechat/storage.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------- results, copied */

/* Results are borrowed for the callback only, so the callback copies
 * everything a check may look at later. */
struct mcopy {
    char id[37], chat_id[37], sender_id[37];
    char client_id[37];   /* "(null)" when the message has none */
    char *content;
    size_t content_len;
    int64_t created_at_us, seq;
    int32_t sender_type, is_read;
    int32_t priority;
};

struct ccopy {
    char id[37], patient_id[37], professional_id[37];
    int64_t created_at_us, updated_at_us, unread_count;
    int has_last;
    struct mcopy last;
    char read[3][37], dlv[3][37];   /* marks by side, "(null)" none */
    char name[3][208];              /* names by side, "(null)" none */
};

/* A notification handed out by notify_claim. */
struct ncopy {
    char id[37], chat_id[37], profile_id[37], first_unread_id[37];
    char user_id[64];
    int32_t side, urgent, attempts, sent;
    int64_t unread, episode_at_us;
};

struct outcome {
    volatile int done;
    int queued;           /* what the call returned */
    int calls;            /* callbacks received */
    int status;
    int32_t created, missing_side, more, duplicate;
    int64_t count;
    int has_error;
    char error[256];
    struct ccopy *chat;   /* NULL when res->chat was */
    struct mcopy *message;
    size_t n_chats, n_messages;
    struct ccopy *chats;
    struct mcopy *messages;
    char owner[64];       /* res->owner, "(null)" none */
    int has_mark;         /* res->mark, copied: */
    struct cc_mark mark;  /* its up_to_id in mark_id */
    char mark_id[37];
    int has_ticket;
    struct cc_ticket ticket;    /* strings in tk_* */
    char tk_id[65], tk_user[64], tk_pat[37], tk_pro[37];
    size_t n_ntfs;
    struct ncopy *ntfs;
};

static int in_api;      /* set while a storage call runs */
static int reentrant;   /* callbacks that ran inside their call */
static int bad_results; /* callbacks given NULL or a short result */

static inline void copy_str(char dst[37], const char *s)
{
    snprintf(dst, 37, "%s", s ? s : "(null)");
}

static inline void copy_msg(struct mcopy *d, const struct cc_message *m)
{
    copy_str(d->id, m->id);
    copy_str(d->chat_id, m->chat_id);
    copy_str(d->sender_id, m->sender_id);
    copy_str(d->client_id, m->struct_size >= offsetof(struct cc_message,
                                                      client_id) +
                                                 sizeof m->client_id
                               ? m->client_id : NULL);
    d->content = malloc(m->content_len + 1);
    if (!d->content)
        abort();
    if (m->content_len)
        memcpy(d->content, m->content, m->content_len);
    d->content[m->content_len] = '\0';
    d->content_len = m->content_len;
    d->created_at_us = m->created_at_us;
    d->seq = m->seq;
    d->sender_type = m->sender_type;
    d->is_read = m->is_read;
    d->priority = CC_HAS_MEMBER(m, struct cc_message, priority)
                      ? m->priority : -1;
}

static inline void copy_chat(struct ccopy *d, const struct cc_chat *c)
{
    copy_str(d->id, c->id);
    copy_str(d->patient_id, c->patient_id);
    copy_str(d->professional_id, c->professional_id);
    d->created_at_us = c->created_at_us;
    d->updated_at_us = c->updated_at_us;
    d->unread_count = c->unread_count;
    d->has_last = c->last_message != NULL;
    if (c->last_message)
        copy_msg(&d->last, c->last_message);
    for (int side = 0; side < 3; side++) {
        copy_str(d->read[side], c->read_up_to[side]);
        copy_str(d->dlv[side], c->delivered_up_to[side]);
        snprintf(d->name[side], sizeof d->name[side], "%s",
                 c->name[side] ? c->name[side] : "(null)");
    }
}

static inline void copy_ntf(struct ncopy *d, const struct cc_notification *n)
{
    copy_str(d->id, n->id);
    copy_str(d->chat_id, n->chat_id);
    copy_str(d->profile_id, n->profile_id);
    copy_str(d->first_unread_id, n->first_unread_id);
    snprintf(d->user_id, sizeof d->user_id, "%s",
             n->user_id ? n->user_id : "(null)");
    d->side = n->side;
    d->urgent = n->urgent;
    d->attempts = n->attempts;
    d->sent = n->sent;
    d->unread = n->unread;
    d->episode_at_us = n->episode_at_us;
}

/* The 1.4 members of a result (the plugin is built for 1.4). */
static inline void copy_14(struct outcome *o, const struct cc_store_result *res)
{
    snprintf(o->owner, sizeof o->owner, "%s",
             res->owner ? res->owner : "(null)");
    if ((o->has_mark = res->mark != NULL)) {
        o->mark = *res->mark;
        copy_str(o->mark_id, res->mark->up_to_id);
    }
    if ((o->has_ticket = res->ticket != NULL)) {
        const struct cc_ticket *t = res->ticket;

        o->ticket = *t;
        snprintf(o->tk_id, sizeof o->tk_id, "%s", t->id);
        snprintf(o->tk_user, sizeof o->tk_user, "%s", t->user_id);
        copy_str(o->tk_pat, t->patient_id);
        copy_str(o->tk_pro, t->professional_id);
    }
    o->n_ntfs = res->n_notifications;
    o->ntfs = calloc(res->n_notifications + 1, sizeof *o->ntfs);
    if (!o->ntfs)
        abort();
    for (size_t i = 0; i < res->n_notifications; i++)
        copy_ntf(&o->ntfs[i], res->notifications[i]);
}

static inline void free_chat(struct ccopy *c)
{
    if (c->has_last)
        free(c->last.content);
}

static inline void outcome_free(struct outcome *o)
{
    if (o->chat) {
        free_chat(o->chat);
        free(o->chat);
    }
    if (o->message) {
        free(o->message->content);
        free(o->message);
    }
    for (size_t i = 0; i < o->n_chats; i++)
        free_chat(&o->chats[i]);
    free(o->chats);
    for (size_t i = 0; i < o->n_messages; i++)
        free(o->messages[i].content);
    free(o->messages);
    free(o->ntfs);
    memset(o, 0, sizeof *o);
}

static inline void
store_cb(void *arg, int status, const struct cc_store_result *res)
{
    struct outcome *o = arg;

    if (in_api)
        reentrant++;
    o->calls++;
    o->status = status;
    if (!res || res->struct_size < sizeof *res) {
        bad_results++;
        o->done = 1;
        return;
    }
    o->created = res->created;
    o->missing_side = res->missing_side;
    o->more = res->more;
    o->duplicate = res->duplicate;
    o->count = res->count;
    if (res->error) {
        o->has_error = 1;
        snprintf(o->error, sizeof o->error, "%s", res->error);
    }
    if (res->chat) {
        o->chat = calloc(1, sizeof *o->chat);
        if (!o->chat)
            abort();
        copy_chat(o->chat, res->chat);
    }
    if (res->message) {
        o->message = calloc(1, sizeof *o->message);
        if (!o->message)
            abort();
        copy_msg(o->message, res->message);
    }
    o->n_chats = res->n_chats;
    o->chats = calloc(res->n_chats + 1, sizeof *o->chats);
    for (size_t i = 0; i < res->n_chats; i++)
        copy_chat(&o->chats[i], res->chats[i]);
    o->n_messages = res->n_messages;
    o->messages = calloc(res->n_messages + 1, sizeof *o->messages);
    for (size_t i = 0; i < res->n_messages; i++)
        copy_msg(&o->messages[i], res->messages[i]);
    if (!o->chats || !o->messages)
        abort();
    copy_14(o, res);
    o->done = 1;
}

/* ------------------------------------------------ the loaded plugin */

static struct pt_env env;
static const struct cc_storage_api *api;
static void *inst;

static inline int load_conf(const char *conf)
{
    char err[512];

    if (pt_load(&env, pt_plugin_path(STORETEST_PLUGIN), CC_KIND_STORAGE,
                "storage", conf, err, sizeof err) < 0) {
        printf("# load failed: %s\n", err);
        api = NULL;
        inst = NULL;
        return -1;
    }
    api = env.plugin.iface;
    inst = env.plugin.inst;
    return 0;
}

static inline void unload(void)
{
    pt_unload(&env);
    api = NULL;
    inst = NULL;
}

/* Every request: free what o held from the last one (o starts zeroed)
 * and mark that a call is running, make the call (as the argument of
 * finish), then wait for its callback.  Returns the callback's status,
 * or what the call returned when it was not queued. */
static inline void begin(struct outcome *o)
{
    outcome_free(o);
    in_api = 1;
}

static inline int finish(struct outcome *o, int queued)
{
    in_api = 0;
    o->queued = queued;
    if (queued != CC_OK)
        return queued;
    if (pt_run_until(&env, &o->done, 10000) < 0) {
        /* o may still be written by a late callback: stop here. */
        printf("Bail out! no callback within 10 s\n");
        exit(1);
    }
    return o->status;
}

static inline int profile_put(struct outcome *o, int32_t side, const char *id,
                       const char *user)
{
    begin(o);
    return finish(o, api->profile_put(inst, side, id, user, store_cb, o));
}

static inline int profile_get(struct outcome *o, int32_t side, const char *id)
{
    begin(o);
    return finish(o, api->profile_get(inst, side, id, store_cb, o));
}

static inline int
chat_open(struct outcome *o, const char *new_id, const char *pat,
          const char *pro, int64_t now_us)
{
    begin(o);
    return finish(o, api->chat_open(inst, new_id, pat, pro, now_us,
                                    store_cb, o));
}

/* viewer: a patient or professional id or NULL. */
static inline int chat_get(struct outcome *o, const char *id, const char *pat,
                    const char *pro)
{
    struct cc_viewer v = { sizeof v, pat, pro };

    begin(o);
    return finish(o, api->chat_get(inst, id, pat || pro ? &v : NULL,
                                   store_cb, o));
}

static inline int chat_list(struct outcome *o, const char *pat, const char *pro,
                     int64_t before_us, const char *before_id,
                     uint32_t limit)
{
    struct cc_chat_query q = {
        .struct_size = sizeof q,
        .viewer = { sizeof q.viewer, pat, pro },
        .before_updated_us = before_us,
        .before_id = before_id,
        .limit = limit,
    };

    begin(o);
    return finish(o, api->chat_list(inst, &q, store_cb, o));
}

static inline int
append_cid(struct outcome *o, const char *id, const char *chat,
           const char *sender, int32_t side, const char *content, size_t len,
           int64_t t, const char *client_id)
{
    struct cc_message m = {
        .struct_size = sizeof m, .id = id, .chat_id = chat,
        .sender_id = sender, .content = content, .content_len = len,
        .created_at_us = t, .sender_type = side, .client_id = client_id,
    };

    begin(o);
    return finish(o, api->message_append(inst, &m, store_cb, o));
}

static inline int append(struct outcome *o, const char *id, const char *chat,
                  const char *sender, int32_t side, const char *content,
                  size_t len, int64_t t)
{
    return append_cid(o, id, chat, sender, side, content, len, t, NULL);
}

static inline int
message_list(struct outcome *o, const char *chat, int32_t side, int64_t after,
             int64_t before, uint32_t limit)
{
    struct cc_message_query q = {
        .struct_size = sizeof q, .chat_id = chat, .viewer_side = side,
        .after_seq = after, .before_seq = before, .limit = limit,
    };

    begin(o);
    return finish(o, api->message_list(inst, &q, store_cb, o));
}

static inline int list_after_id(struct outcome *o, const char *chat,
                         const char *after_id, uint32_t limit)
{
    struct cc_message_query q = {
        .struct_size = sizeof q, .chat_id = chat,
        .viewer_side = CC_SIDE_PATIENT, .limit = limit, .after_id = after_id,
    };

    begin(o);
    return finish(o, api->message_list(inst, &q, store_cb, o));
}

static inline int mark_read(struct outcome *o, const char *chat, int32_t side)
{
    begin(o);
    return finish(o, api->mark_read(inst, chat, side, store_cb, o));
}

/* A message id, distinct per (group, n). */
static inline void make_id(char out[37], unsigned group, unsigned n)
{
    snprintf(out, 37, "%08x-0000-4000-8000-%012x", group, n);
}

static inline int same_bytes(const struct mcopy *m, const char *p, size_t n)
{
    return m->content_len == n && memcmp(m->content, p, n) == 0;
}

/* ------------------------------------------------ ABI 1.4 calls */

/* An append with a priority and a due time (notify_due_us). */
static inline int append14(struct outcome *o, const char *id, const char *chat,
                    const char *sender, int32_t side, const char *content,
                    int64_t t, int32_t priority, int64_t due)
{
    struct cc_message m = {
        .struct_size = sizeof m, .id = id, .chat_id = chat,
        .sender_id = sender, .content = content,
        .content_len = strlen(content), .created_at_us = t,
        .sender_type = side, .priority = priority, .notify_due_us = due,
    };

    begin(o);
    return finish(o, api->message_append(inst, &m, store_cb, o));
}

static inline int owner_set(struct outcome *o, int32_t side, const char *id,
                     const char *user)
{
    begin(o);
    return finish(o, api->profile_owner_set(inst, side, id, user, store_cb,
                                            o));
}

static inline int name_set(struct outcome *o, int32_t side, const char *id,
                    const char *name)
{
    begin(o);
    return finish(o, api->profile_name_set(inst, side, id, name, store_cb,
                                           o));
}

/* side's kind mark in chat to up_to (NULL: the newest). */
static inline int mark_set(struct outcome *o, const char *chat, int32_t side,
                    int32_t kind, const char *up_to, int64_t at,
                    int64_t delay)
{
    struct cc_mark_req m = {
        .struct_size = sizeof m, .chat_id = chat, .side = side,
        .kind = kind, .up_to_id = up_to, .at_us = at,
        .notify_delay_us = delay,
    };

    begin(o);
    return finish(o, api->mark_set(inst, &m, store_cb, o));
}

static inline int ticket_put(struct outcome *o, const struct cc_ticket *t)
{
    begin(o);
    return finish(o, api->ticket_put(inst, t, store_cb, o));
}

static inline int ticket_take(struct outcome *o, const char *id, int64_t now)
{
    begin(o);
    return finish(o, api->ticket_take(inst, id, now, store_cb, o));
}

static inline int notify_claim(struct outcome *o, int64_t now, int64_t lease,
                        uint32_t limit)
{
    struct cc_notify_claim q = {
        .struct_size = sizeof q, .now_us = now, .lease_us = lease,
        .limit = limit,
    };

    begin(o);
    return finish(o, api->notify_claim(inst, &q, store_cb, o));
}

static inline int notify_done(struct outcome *o, const char *chat, int32_t side,
                       const char *id, int32_t result, int64_t next_due)
{
    struct cc_notify_outcome q = {
        .struct_size = sizeof q, .chat_id = chat, .side = side, .id = id,
        .result = result, .next_due_us = next_due,
    };

    begin(o);
    return finish(o, api->notify_done(inst, &q, store_cb, o));
}

#endif
