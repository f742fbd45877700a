/*
 * store.c - the storage plugin, reached through one wrapper (see
 * store.h): capability checks, the guard after stop, and timings.
 */
#include "store.h"
#include "metrics.h"
#include "timefmt.h"

#include <stdlib.h>

static struct {
    const struct cc_storage_api *api; /* NULL: not attached */
    void *inst;
    unsigned minor;                   /* the plugin's ABI minor */
} st;

void cc_store_attach(const struct cc_storage_api *api, void *inst,
                     uint32_t plugin_abi)
{
    st.api = api;
    st.inst = inst;
    st.minor = CC_ABI_MINOR_OF(plugin_abi);
}

void cc_store_detach(void)
{
    st.api = NULL;
    st.inst = NULL;
}

/* The plugin's table holds member m, and it is set. */
#define HAS(m) (CC_HAS_MEMBER(st.api, struct cc_storage_api, m) && st.api->m)

int cc_store_can(enum cc_store_cap cap)
{
    if (!st.api)
        return 0;
    switch (cap) {
    case CC_STORE_PAGE_BACK:
        return st.minor >= 1;
    case CC_STORE_CLIENT_ID:
    case CC_STORE_SINCE:
        return st.minor >= 2;
    case CC_STORE_PURGE:
        return st.minor >= 3 &&
               CC_HAS_MEMBER(st.api, struct cc_storage_api,
                             message_purge) &&
               st.api->message_purge;
    case CC_STORE_OWNERS:
        return st.minor >= 4 && HAS(profile_owner_set) &&
               HAS(profile_name_set);
    case CC_STORE_MARKS:
        return st.minor >= 4 && HAS(mark_set);
    case CC_STORE_TICKETS:
        return st.minor >= 4 && HAS(ticket_put) && HAS(ticket_take);
    case CC_STORE_NOTIFY:
        return st.minor >= 4 && HAS(notify_claim) && HAS(notify_done);
    }
    return 0;
}

const char *cc_store_owner(const struct cc_store_result *res)
{
    return CC_HAS_MEMBER(res, struct cc_store_result, owner) ? res->owner
                                                             : NULL;
}

const struct cc_mark *cc_store_mark(const struct cc_store_result *res)
{
    return CC_HAS_MEMBER(res, struct cc_store_result, mark) ? res->mark
                                                            : NULL;
}

int cc_store_priority(const struct cc_message *m)
{
    return CC_HAS_MEMBER(m, struct cc_message, priority) ? m->priority
                                                         : 0;
}

int cc_store_is_duplicate(const struct cc_store_result *res)
{
    return CC_HAS_MEMBER(res, struct cc_store_result, duplicate) &&
           res->duplicate;
}

/* ------------------------------------------------------------ timing */

/* One call in flight: its caller's callback, and when it started. */
struct timed {
    cc_store_cb cb;
    void *arg;
    uint64_t t0;
    enum cc_metrics_store_op op;
};

static void timed_done(void *arg, int status,
                       const struct cc_store_result *res)
{
    struct timed t = *(struct timed *)arg;

    free(arg);
    cc_metrics_storage(t.op, (double)(cc_time_mono_ns() - t.t0) / 1e9,
                       status);
    t.cb(t.arg, status, res);
}

static struct timed *timed_new(enum cc_metrics_store_op op, cc_store_cb cb,
                               void *arg)
{
    struct timed *t = malloc(sizeof *t);

    if (!t)
        abort();
    t->cb = cb;
    t->arg = arg;
    t->op = op;
    t->t0 = cc_time_mono_ns();
    return t;
}

/* A call the plugin refused at once never reaches its callback. */
static int timed_rc(struct timed *t, int rc)
{
    if (rc != CC_OK) {
        cc_metrics_storage_refused(t->op);
        free(t);
    }
    return rc;
}

/* The guard of every call: attached, and what it needs. */
#define ENTER(op, cb, arg)                                   \
    struct timed *t;                                         \
    if (!st.api) {                                           \
        cc_metrics_storage_refused(op);                      \
        return CC_E_UNAVAIL;                                 \
    }                                                        \
    t = timed_new(op, cb, arg)

int cc_store_profile_put(int32_t side, const char *profile_id,
                         const char *user_id, cc_store_cb cb, void *arg)
{
    ENTER(CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->profile_put(st.inst, side, profile_id,
                                           user_id, timed_done, t));
}

int cc_store_profile_get(int32_t side, const char *profile_id,
                         cc_store_cb cb, void *arg)
{
    ENTER(CC_MSO_READ, cb, arg);
    return timed_rc(t, st.api->profile_get(st.inst, side, profile_id,
                                           timed_done, t));
}

int cc_store_chat_open(const char *new_id, const char *patient_id,
                       const char *professional_id, int64_t now_us,
                       cc_store_cb cb, void *arg)
{
    ENTER(CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->chat_open(st.inst, new_id, patient_id,
                                         professional_id, now_us,
                                         timed_done, t));
}

int cc_store_chat_get(const char *chat_id, const struct cc_viewer *viewer,
                      cc_store_cb cb, void *arg)
{
    ENTER(CC_MSO_READ, cb, arg);
    return timed_rc(t, st.api->chat_get(st.inst, chat_id, viewer,
                                        timed_done, t));
}

int cc_store_chat_list(struct cc_chat_query *q, cc_store_cb cb, void *arg)
{
    if ((q->after_updated_us || q->after_id) &&
        !cc_store_can(CC_STORE_PAGE_BACK))
        return CC_E_NOTSUP;
    q->struct_size = sizeof *q;
    q->viewer.struct_size = sizeof q->viewer;
    ENTER(CC_MSO_READ, cb, arg);
    return timed_rc(t, st.api->chat_list(st.inst, q, timed_done, t));
}

int cc_store_append(struct cc_message *m, cc_store_cb cb, void *arg)
{
    if (m->client_id && !cc_store_can(CC_STORE_CLIENT_ID))
        return CC_E_NOTSUP;
    m->struct_size = sizeof *m;
    ENTER(CC_MSO_APPEND, cb, arg);
    return timed_rc(t, st.api->message_append(st.inst, m, timed_done, t));
}

int cc_store_message_list(struct cc_message_query *q, cc_store_cb cb,
                          void *arg)
{
    if (q->after_id && !cc_store_can(CC_STORE_SINCE))
        return CC_E_NOTSUP;
    q->struct_size = sizeof *q;
    ENTER(CC_MSO_READ, cb, arg);
    return timed_rc(t, st.api->message_list(st.inst, q, timed_done, t));
}

int cc_store_mark_read(const char *chat_id, int32_t reader_side,
                       cc_store_cb cb, void *arg)
{
    ENTER(CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->mark_read(st.inst, chat_id, reader_side,
                                         timed_done, t));
}

int cc_store_purge(int64_t before_us, uint32_t limit, cc_store_cb cb,
                   void *arg)
{
    if (!cc_store_can(CC_STORE_PURGE))
        return CC_E_NOTSUP;
    ENTER(CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->message_purge(st.inst, before_us, limit,
                                             timed_done, t));
}

/* ----------------------------------------------------------- ABI 1.4 */

/* The guard of a 1.4 call: the capability, then ENTER. */
#define ENTER14(cap, op, cb, arg)                            \
    if (!cc_store_can(cap))                                  \
        return CC_E_NOTSUP;                                  \
    ENTER(op, cb, arg)

int cc_store_profile_owner_set(int32_t side, const char *profile_id,
                               const char *user_id, cc_store_cb cb,
                               void *arg)
{
    ENTER14(CC_STORE_OWNERS, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->profile_owner_set(st.inst, side, profile_id,
                                                 user_id, timed_done, t));
}

int cc_store_profile_name_set(int32_t side, const char *profile_id,
                              const char *name, cc_store_cb cb, void *arg)
{
    ENTER14(CC_STORE_OWNERS, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->profile_name_set(st.inst, side, profile_id,
                                                name, timed_done, t));
}

int cc_store_mark_set(struct cc_mark_req *m, cc_store_cb cb, void *arg)
{
    m->struct_size = sizeof *m;
    ENTER14(CC_STORE_MARKS, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->mark_set(st.inst, m, timed_done, t));
}

int cc_store_ticket_put(struct cc_ticket *tk, cc_store_cb cb, void *arg)
{
    tk->struct_size = sizeof *tk;
    ENTER14(CC_STORE_TICKETS, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->ticket_put(st.inst, tk, timed_done, t));
}

int cc_store_ticket_take(const char *id, int64_t now_us, cc_store_cb cb,
                         void *arg)
{
    ENTER14(CC_STORE_TICKETS, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->ticket_take(st.inst, id, now_us, timed_done,
                                           t));
}

int cc_store_notify_claim(struct cc_notify_claim *q, cc_store_cb cb,
                          void *arg)
{
    q->struct_size = sizeof *q;
    ENTER14(CC_STORE_NOTIFY, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->notify_claim(st.inst, q, timed_done, t));
}

int cc_store_notify_done(struct cc_notify_outcome *o, cc_store_cb cb,
                         void *arg)
{
    o->struct_size = sizeof *o;
    ENTER14(CC_STORE_NOTIFY, CC_MSO_WRITE, cb, arg);
    return timed_rc(t, st.api->notify_done(st.inst, o, timed_done, t));
}
