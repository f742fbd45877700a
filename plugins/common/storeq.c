/*
 * storeq.c - requests, queues and results shared by the threaded storage
 * plugins (see storeq.h).
 */
#include "storeq.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *sq_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        abort();
    return p;
}

void sq_copy_id(char dst[SQ_ID_LEN + 1], const char *src)
{
    size_t n = src ? strnlen(src, SQ_ID_LEN) : 0;

    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------ queues */

void sq_queue_init(struct sq_queue *q, size_t max)
{
    memset(q, 0, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;

    pthread_cond_init(&q->cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->wait_cv, &ca);
    pthread_condattr_destroy(&ca);
    q->max = max;
}

void sq_queue_destroy(struct sq_queue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    pthread_cond_destroy(&q->wait_cv);
}

int sq_queue_put(struct sq_queue *q, struct sq_req *r)
{
    pthread_mutex_lock(&q->mu);
    if (q->stop || q->n >= q->max) {
        int stopped = q->stop;
        pthread_mutex_unlock(&q->mu);
        sq_req_free(r);
        return stopped ? CC_E_UNAVAIL : CC_E_BUSY;
    }
    r->qseq = ++q->seq;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
    pthread_cond_signal(&q->cv);
    if (q->n_waiting)
        pthread_cond_broadcast(&q->wait_cv);
    pthread_mutex_unlock(&q->mu);
    return CC_OK;
}

/* Unlink up to max requests from the head; the caller holds q->mu. */
static struct sq_req *unlink_head(struct sq_queue *q, int max)
{
    struct sq_req *head = q->head, *last = head;
    int n = 1;

    if (!head)
        return NULL;
    while (last->next && n < max) {
        last = last->next;
        n++;
    }
    q->head = last->next;
    if (!q->head)
        q->tail = NULL;
    last->next = NULL;
    q->n -= (size_t)n;
    return head;
}

struct sq_req *sq_queue_take(struct sq_queue *q, int max)
{
    struct sq_req *head;

    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->stop)
        pthread_cond_wait(&q->cv, &q->mu);
    head = unlink_head(q, max);
    pthread_mutex_unlock(&q->mu);
    return head;
}

int sq_queue_wait(struct sq_queue *q, int ms, int until_work)
{
    struct timespec ts;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    q->n_waiting++;
    while (!q->stop && !(until_work && q->head))
        if (pthread_cond_timedwait(&q->wait_cv, &q->mu, &ts) == ETIMEDOUT)
            break;
    q->n_waiting--;
    rc = q->stop ? -1 : q->head != NULL;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void sq_queue_stop(struct sq_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_cond_broadcast(&q->wait_cv);
    pthread_mutex_unlock(&q->mu);
}

size_t sq_queue_len(struct sq_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void sq_queue_metrics(struct sq_queue *wq, struct sq_queue *rq,
                      cc_metric_cb emit, void *arg)
{
    emit(arg, "storage_queued_writes", "Writes waiting for the writer "
         "thread.", CC_METRIC_GAUGE, (double)sq_queue_len(wq));
    emit(arg, "storage_queued_reads", "Reads waiting for a reader thread.",
         CC_METRIC_GAUGE, (double)sq_queue_len(rq));
}

uint64_t sq_queue_mark(struct sq_queue *q)
{
    uint64_t mark;

    pthread_mutex_lock(&q->mu);
    mark = q->seq;
    pthread_mutex_unlock(&q->mu);
    return mark;
}

void sq_queue_fail_upto(struct sq_backend *b, struct sq_queue *q,
                        uint64_t mark, int status, const char *error)
{
    struct sq_req *group, *r;
    int n = 0;

    pthread_mutex_lock(&q->mu);
    for (r = q->head; r && r->qseq <= mark; r = r->next)
        n++;
    group = n ? unlink_head(q, n) : NULL;
    pthread_mutex_unlock(&q->mu);
    if (!group)
        return;
    for (r = group; r; r = r->next) {
        r->status = status;
        snprintf(r->error, sizeof r->error, "%s", error);
    }
    b->host->post(b->ctx, sq_deliver, group);
}

void sq_queue_fail_all(struct sq_backend *b, struct sq_queue *q, int status,
                       const char *error)
{
    sq_queue_fail_upto(b, q, UINT64_MAX, status, error);
}

static void free_outputs(struct sq_req *r)
{
    for (size_t i = 0; r->chats && i < r->n; i++)
        free(r->chats[i].last.content);
    for (size_t i = 0; r->msgs && i < r->nm; i++)
        free(r->msgs[i].content);
    free(r->chats);
    free(r->chat_ptrs);
    free(r->msgs);
    free(r->msg_ptrs);
}

void sq_group_rewind(struct sq_req *group)
{
    for (struct sq_req *r = group; r; r = r->next)
        sq_req_rewind(r);
}

void sq_req_rewind(struct sq_req *r)
{
    /* An append's result took the content over (sq_append_result). */
    if (r->op == SQ_MSG_APPEND && !r->content && r->msgs &&
        r->nm == 1) {
        r->content = r->msgs[0].content;
        r->msgs[0].content = NULL;
    }
    free_outputs(r);
    r->chats = NULL;
    r->chat_ptrs = NULL;
    r->msgs = NULL;
    r->msg_ptrs = NULL;
    r->n = r->nm = 0;
    r->status = CC_OK;
    r->error[0] = '\0';
    memset(&r->res, 0, sizeof r->res);
}

void sq_req_free(struct sq_req *r)
{
    free_outputs(r);
    free(r->user);
    free(r->content);
    free(r);
}

void sq_deliver(void *arg)
{
    struct sq_req *r = arg, *next;

    for (; r; r = next) {
        next = r->next;
        r->res.struct_size = sizeof r->res;
        if (r->status != CC_OK) {
            /* A failed request hands back no half-built result. */
            if (r->status != CC_E_NOTFOUND) {
                r->res.chat = NULL;
                r->res.message = NULL;
                r->res.n_chats = r->res.n_messages = 0;
            }
            if (r->error[0])
                r->res.error = r->error;
        }
        r->cb(r->arg, r->status, &r->res);
        sq_req_free(r);
    }
}

/* ----------------------------------------------------------- results */

void sq_alloc_chats(struct sq_req *r, size_t n)
{
    r->chats = sq_xcalloc(n, sizeof *r->chats);
}

void sq_alloc_msgs(struct sq_req *r, size_t n)
{
    r->msgs = sq_xcalloc(n, sizeof *r->msgs);
}

struct sq_chat *sq_one_chat(struct sq_req *r)
{
    if (!r->chats)
        sq_alloc_chats(r, 1);
    r->n = 1;
    r->res.chat = &r->chats[0].c;
    return &r->chats[0];
}

int sq_viewer_side(const struct sq_req *r, const struct sq_chat *o)
{
    if (r->vpat[0] && strcmp(r->vpat, o->pat) == 0)
        return CC_SIDE_PATIENT;
    if (r->vpro[0] && strcmp(r->vpro, o->pro) == 0)
        return CC_SIDE_PROFESSIONAL;
    return CC_SIDE_NONE;
}

void sq_finish_chats(struct sq_req *r, int rev)
{
    r->chat_ptrs = sq_xcalloc(r->n + 1, sizeof *r->chat_ptrs);
    for (size_t i = 0; i < r->n; i++)
        r->chat_ptrs[rev ? r->n - 1 - i : i] = &r->chats[i].c;
    r->res.chats = r->chat_ptrs;
    r->res.n_chats = r->n;
}

void sq_finish_msgs(struct sq_req *r, size_t n, int desc)
{
    r->msg_ptrs = sq_xcalloc(n + 1, sizeof *r->msg_ptrs);
    for (size_t i = 0; i < n; i++)
        r->msg_ptrs[desc ? n - 1 - i : i] = &r->msgs[i].m;
    r->res.messages = r->msg_ptrs;
    r->res.n_messages = n;
}

void sq_msg_link(struct sq_msg *o, size_t content_len, int64_t seq,
                 int32_t sender_type, int64_t created_at_us, int32_t is_read)
{
    o->m = (struct cc_message){
        .struct_size = sizeof o->m, .id = o->id, .chat_id = o->chat,
        .sender_id = o->sender, .content = o->content,
        .content_len = content_len, .created_at_us = created_at_us,
        .seq = seq, .sender_type = sender_type, .is_read = is_read,
        .client_id = o->client_id[0] ? o->client_id : NULL,
    };
}

void sq_chat_link(struct sq_chat *o, int64_t created_at_us,
                  int64_t updated_at_us)
{
    o->c.struct_size = sizeof o->c;
    o->c.id = o->id;
    o->c.patient_id = o->pat;
    o->c.professional_id = o->pro;
    o->c.created_at_us = created_at_us;
    o->c.updated_at_us = updated_at_us;
}

void sq_append_result(struct sq_req *r, int64_t seq)
{
    struct sq_msg *o;

    r->res.chat = NULL;
    sq_alloc_msgs(r, 1);
    r->nm = 1;
    o = &r->msgs[0];
    sq_copy_id(o->id, r->a);
    sq_copy_id(o->chat, r->b);
    sq_copy_id(o->sender, r->c);
    memcpy(o->client_id, r->cid, sizeof o->client_id);
    o->content = r->content;   /* ownership moves to the result */
    r->content = NULL;
    sq_msg_link(o, r->content_len, seq, r->side, r->t, 0);
    r->res.message = &o->m;
}

/* ------------------------------------------------- the storage API */

static int valid_id(const char *s)
{
    return s && strlen(s) == SQ_ID_LEN;
}

static int valid_side(int32_t side)
{
    return side == CC_SIDE_PATIENT || side == CC_SIDE_PROFESSIONAL;
}

static struct sq_req *new_req(struct sq_backend *b, enum sq_op op,
                              cc_store_cb cb, void *arg)
{
    struct sq_req *r = sq_xcalloc(1, sizeof *r);

    r->op = op;
    r->cb = cb;
    r->arg = arg;
    r->t = b->host->now_real_us();
    return r;
}

static int submit(void *inst, struct sq_req *r)
{
    struct sq_backend *b = inst;

    return b->submit(b, r);
}

static int api_profile_put(void *inst, int32_t side, const char *id,
                           const char *user, cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!valid_side(side) || !valid_id(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, SQ_PROFILE_PUT, cb, arg);
    r->side = side;
    sq_copy_id(r->a, id);
    if (user && !(r->user = strdup(user)))
        abort();
    return submit(inst, r);
}

static int api_profile_get(void *inst, int32_t side, const char *id,
                           cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!valid_side(side) || !valid_id(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, SQ_PROFILE_GET, cb, arg);
    r->side = side;
    sq_copy_id(r->a, id);
    return submit(inst, r);
}

static int api_chat_open(void *inst, const char *new_id, const char *pat,
                         const char *pro, int64_t now_us, cc_store_cb cb,
                         void *arg)
{
    struct sq_req *r;

    if (!valid_id(new_id) || !valid_id(pat) || !valid_id(pro) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, SQ_CHAT_OPEN, cb, arg);
    sq_copy_id(r->a, new_id);
    sq_copy_id(r->b, pat);
    sq_copy_id(r->c, pro);
    r->t = now_us;
    return submit(inst, r);
}

static void set_viewer(struct sq_req *r, const struct cc_viewer *v)
{
    if (!v)
        return;
    if (valid_id(v->patient_id))
        sq_copy_id(r->vpat, v->patient_id);
    if (valid_id(v->professional_id))
        sq_copy_id(r->vpro, v->professional_id);
}

static int api_chat_get(void *inst, const char *chat_id,
                        const struct cc_viewer *viewer, cc_store_cb cb,
                        void *arg)
{
    struct sq_req *r;

    if (!valid_id(chat_id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, SQ_CHAT_GET, cb, arg);
    sq_copy_id(r->a, chat_id);
    set_viewer(r, viewer);
    return submit(inst, r);
}

static int api_chat_list(void *inst, const struct cc_chat_query *q,
                         cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!q || !cb || q->limit < 1 || q->limit > 100000)
        return CC_E_INVAL;
    r = new_req(inst, SQ_CHAT_LIST, cb, arg);
    set_viewer(r, &q->viewer);
    r->cursor_us = q->before_updated_us > 0 ? q->before_updated_us : 0;
    sq_copy_id(r->a, q->before_id);
    if (q->struct_size >= offsetof(struct cc_chat_query, after_id) +
                              sizeof q->after_id &&
        q->after_updated_us > 0 && q->after_id) {
        r->after = q->after_updated_us; /* newer than (after, c) */
        sq_copy_id(r->c, q->after_id);
        r->cursor_us = 0;
    }
    r->limit = q->limit;
    return submit(inst, r);
}

static int api_message_append(void *inst, const struct cc_message *m,
                              cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!m || !cb || !valid_id(m->id) || !valid_id(m->chat_id) ||
        !valid_id(m->sender_id) || !m->content ||
        m->content_len > 0x7fffffff || !valid_side(m->sender_type))
        return CC_E_INVAL;
    r = new_req(inst, SQ_MSG_APPEND, cb, arg);
    sq_copy_id(r->a, m->id);
    sq_copy_id(r->b, m->chat_id);
    sq_copy_id(r->c, m->sender_id);
    r->side = m->sender_type;
    r->t = m->created_at_us;
    if (CC_HAS_MEMBER(m, struct cc_message, client_id) && m->client_id) {
        if (!valid_id(m->client_id)) {
            sq_req_free(r);
            return CC_E_INVAL;
        }
        sq_copy_id(r->cid, m->client_id);
    }
    r->content_len = m->content_len;
    r->content = malloc(m->content_len + 1);
    if (!r->content)
        abort();
    memcpy(r->content, m->content, m->content_len);
    r->content[m->content_len] = '\0';
    return submit(inst, r);
}

static int api_message_list(void *inst, const struct cc_message_query *q,
                            cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!q || !cb || !valid_id(q->chat_id) || q->limit < 1 ||
        q->limit > 100000 || q->after_seq < 0 || q->before_seq < 0)
        return CC_E_INVAL;
    r = new_req(inst, SQ_MSG_LIST, cb, arg);
    sq_copy_id(r->b, q->chat_id);
    r->side = q->viewer_side;
    r->after = q->after_seq;
    r->before = q->before_seq;
    r->limit = q->limit;
    if (CC_HAS_MEMBER(q, struct cc_message_query, after_id) &&
        q->after_id && !q->after_seq && !q->before_seq) {
        if (!valid_id(q->after_id)) {
            sq_req_free(r);
            return CC_E_INVAL;
        }
        sq_copy_id(r->a, q->after_id);
    }
    return submit(inst, r);
}

static int api_mark_read(void *inst, const char *chat_id, int32_t side,
                         cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!valid_id(chat_id) || !valid_side(side) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, SQ_MARK_READ, cb, arg);
    sq_copy_id(r->b, chat_id);
    r->side = side;
    return submit(inst, r);
}

static int api_message_purge(void *inst, int64_t before_us, uint32_t limit,
                             cc_store_cb cb, void *arg)
{
    struct sq_req *r;

    if (!cb || limit < 1 || limit > 100000 || before_us <= 0)
        return CC_E_INVAL;
    r = new_req(inst, SQ_MSG_PURGE, cb, arg);
    r->t = before_us;
    r->limit = limit;
    return submit(inst, r);
}

const struct cc_storage_api sq_storage_api = {
    .struct_size = sizeof(struct cc_storage_api),
    .profile_put = api_profile_put,
    .profile_get = api_profile_get,
    .chat_open = api_chat_open,
    .chat_get = api_chat_get,
    .chat_list = api_chat_list,
    .message_append = api_message_append,
    .message_list = api_message_list,
    .mark_read = api_mark_read,
    .message_purge = api_message_purge,
};
