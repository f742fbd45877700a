/*
 * store.h - the host's one way to the storage plugin.
 *
 * Every call the core makes to storage goes through here.  Owns:
 *  - the plugin's table and instance (attached once it started,
 *    detached when it has stopped: a call after that is refused with
 *    CC_E_UNAVAIL, never passed to a plugin that has gone);
 *  - which appended ABI members the plugin can honour, asked by name
 *    (cc_store_can) rather than by minor numbers at the call sites: a
 *    member is sent only to a plugin built for the minor that added it,
 *    and a table entry is used only when the plugin's table holds it
 *    (CC_HAS_MEMBER);
 *  - the timings and error counts of every call, which metrics.h
 *    exposes.
 * Each function has the contract of the storage.h function it names
 * (CC_OK and one callback on the loop thread, or an error and none),
 * and sets the struct_size of what it sends.  Loop 0 only.
 */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <carechat/storage.h>

/* What a plugin may or may not be able to do. */
enum cc_store_cap {
    CC_STORE_PAGE_BACK,  /* 1.1: chat lists towards newer chats */
    CC_STORE_CLIENT_ID,  /* 1.2: idempotent appends (client_id) */
    CC_STORE_SINCE,      /* 1.2: history after a message id */
    CC_STORE_PURGE,      /* 1.3: message_purge (retention) */
    CC_STORE_OWNERS,     /* 1.4: profiles bound to users, display names */
    CC_STORE_MARKS,      /* 1.4: read and delivered marks, priorities */
    CC_STORE_TICKETS,    /* 1.4: WebSocket tickets */
    CC_STORE_NOTIFY      /* 1.4: notification episodes */
};

/* Attach the started plugin: its table, instance and the ABI version
 * its descriptor says it was built for. */
void cc_store_attach(const struct cc_storage_api *api, void *inst,
                     uint32_t plugin_abi);

/* The plugin has stopped: refuse every call from now on. */
void cc_store_detach(void);

/* 1 when the attached plugin can do cap. */
int cc_store_can(enum cc_store_cap cap);

int cc_store_profile_put(int32_t side, const char *profile_id,
                         const char *user_id, cc_store_cb cb, void *arg);
int cc_store_profile_get(int32_t side, const char *profile_id,
                         cc_store_cb cb, void *arg);
int cc_store_chat_open(const char *new_id, const char *patient_id,
                       const char *professional_id, int64_t now_us,
                       cc_store_cb cb, void *arg);
int cc_store_chat_get(const char *chat_id, const struct cc_viewer *viewer,
                      cc_store_cb cb, void *arg);
/* A query towards newer chats (after_*) needs CC_STORE_PAGE_BACK, else
 * CC_E_NOTSUP. */
int cc_store_chat_list(struct cc_chat_query *q, cc_store_cb cb, void *arg);
/* m->client_id needs CC_STORE_CLIENT_ID, else CC_E_NOTSUP. */
int cc_store_append(struct cc_message *m, cc_store_cb cb, void *arg);
/* q->after_id needs CC_STORE_SINCE, else CC_E_NOTSUP. */
int cc_store_message_list(struct cc_message_query *q, cc_store_cb cb,
                          void *arg);
int cc_store_mark_read(const char *chat_id, int32_t reader_side,
                       cc_store_cb cb, void *arg);
/* CC_E_NOTSUP without CC_STORE_PURGE. */
int cc_store_purge(int64_t before_us, uint32_t limit, cc_store_cb cb,
                   void *arg);

/* Since 1.4: each CC_E_NOTSUP without its capability. */
int cc_store_profile_owner_set(int32_t side, const char *profile_id,
                               const char *user_id, cc_store_cb cb,
                               void *arg);
int cc_store_profile_name_set(int32_t side, const char *profile_id,
                              const char *name, cc_store_cb cb, void *arg);
int cc_store_mark_set(struct cc_mark_req *m, cc_store_cb cb, void *arg);
int cc_store_ticket_put(struct cc_ticket *t, cc_store_cb cb, void *arg);
int cc_store_ticket_take(const char *id, int64_t now_us, cc_store_cb cb,
                         void *arg);
int cc_store_notify_claim(struct cc_notify_claim *q, cc_store_cb cb,
                          void *arg);
int cc_store_notify_done(struct cc_notify_outcome *o, cc_store_cb cb,
                         void *arg);

/* 1 when res (an append's) says nothing was stored because the message's
 * client_id was (res->message is the original). */
int cc_store_is_duplicate(const struct cc_store_result *res);

/* The members of a result or message that a plugin built for an older
 * ABI does not set: NULL / 0 then. */
const char *cc_store_owner(const struct cc_store_result *res);
const struct cc_mark *cc_store_mark(const struct cc_store_result *res);
int cc_store_priority(const struct cc_message *m);

#endif
