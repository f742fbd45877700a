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

void *stq_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);

    if (!p)
        abort();
    return p;
}

void stq_copy_id(char dst[STQ_ID_LEN + 1], const char *src)
{
    size_t n = src ? strnlen(src, STQ_ID_LEN) : 0;

    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

/* ------------------------------------------------------------ queues */

void stq_queue_init(struct stq_queue *q, size_t max)
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

void stq_queue_destroy(struct stq_queue *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    pthread_cond_destroy(&q->wait_cv);
}

int stq_queue_put(struct stq_queue *q, struct stq_req *r)
{
    pthread_mutex_lock(&q->mu);
    if (q->stop || q->n >= q->max) {
        int stopped = q->stop;
        pthread_mutex_unlock(&q->mu);
        stq_req_free(r);
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
static struct stq_req *unlink_head(struct stq_queue *q, int max)
{
    struct stq_req *head = q->head, *last = head;
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

struct stq_req *stq_queue_take(struct stq_queue *q, int max)
{
    struct stq_req *head;

    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->stop)
        pthread_cond_wait(&q->cv, &q->mu);
    head = unlink_head(q, max);
    pthread_mutex_unlock(&q->mu);
    return head;
}

int stq_queue_wait(struct stq_queue *q, int ms, int until_work)
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

void stq_queue_stop(struct stq_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_cond_broadcast(&q->wait_cv);
    pthread_mutex_unlock(&q->mu);
}

size_t stq_queue_len(struct stq_queue *q)
{
    size_t n;

    pthread_mutex_lock(&q->mu);
    n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void stq_queue_metrics(struct stq_queue *wq, struct stq_queue *rq,
                      cc_metric_cb emit, void *arg)
{
    emit(arg, "storage_queued_writes", "Writes waiting for the writer "
         "thread.", CC_METRIC_GAUGE, (double)stq_queue_len(wq));
    emit(arg, "storage_queued_reads", "Reads waiting for a reader thread.",
         CC_METRIC_GAUGE, (double)stq_queue_len(rq));
}

uint64_t stq_queue_mark(struct stq_queue *q)
{
    uint64_t mark;

    pthread_mutex_lock(&q->mu);
    mark = q->seq;
    pthread_mutex_unlock(&q->mu);
    return mark;
}

void stq_queue_fail_upto(struct stq_backend *b, struct stq_queue *q,
                        uint64_t mark, int status, const char *error)
{
    struct stq_req *group, *r;
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
    b->host->post(b->ctx, stq_deliver, group);
}

void stq_queue_fail_all(struct stq_backend *b, struct stq_queue *q, int status,
                       const char *error)
{
    stq_queue_fail_upto(b, q, UINT64_MAX, status, error);
}

static void free_outputs(struct stq_req *r)
{
    for (size_t i = 0; r->chats && i < r->n; i++) {
        free(r->chats[i].last.content);
        for (int side = 0; side < 3; side++)
            free(r->chats[i].name[side]);
    }
    for (size_t i = 0; r->ntfs && i < r->nn; i++)
        free(r->ntfs[i].user);
    free(r->ntfs);
    free(r->ntf_ptrs);
    free(r->owner);
    free(r->ticket.user);
    for (size_t i = 0; r->msgs && i < r->nm; i++)
        free(r->msgs[i].content);
    free(r->chats);
    free(r->chat_ptrs);
    free(r->msgs);
    free(r->msg_ptrs);
}

void stq_group_rewind(struct stq_req *group)
{
    for (struct stq_req *r = group; r; r = r->next)
        stq_req_rewind(r);
}

void stq_req_rewind(struct stq_req *r)
{
    /* An append's result took the content over (stq_append_result). */
    if (r->op == STQ_MSG_APPEND && !r->content && r->msgs &&
        r->nm == 1) {
        r->content = r->msgs[0].content;
        r->msgs[0].content = NULL;
    }
    free_outputs(r);
    r->chats = NULL;
    r->chat_ptrs = NULL;
    r->msgs = NULL;
    r->msg_ptrs = NULL;
    r->n = r->nm = r->nn = 0;
    r->ntfs = NULL;
    r->ntf_ptrs = NULL;
    r->owner = NULL;
    memset(&r->mark, 0, sizeof r->mark);
    memset(&r->ticket, 0, sizeof r->ticket);
    r->status = CC_OK;
    r->error[0] = '\0';
    memset(&r->res, 0, sizeof r->res);
}

void stq_req_free(struct stq_req *r)
{
    free_outputs(r);
    free(r->user);
    free(r->name);
    free(r->content);
    free(r);
}

void stq_deliver(void *arg)
{
    struct stq_req *r = arg, *next;

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
            r->res.owner = NULL;
            r->res.mark = NULL;
            r->res.ticket = NULL;
            r->res.notifications = NULL;
            r->res.n_notifications = 0;
            if (r->error[0])
                r->res.error = r->error;
        }
        r->cb(r->arg, r->status, &r->res);
        stq_req_free(r);
    }
}

/* ----------------------------------------------------------- results */

void stq_alloc_chats(struct stq_req *r, size_t n)
{
    r->chats = stq_xcalloc(n, sizeof *r->chats);
}

void stq_alloc_msgs(struct stq_req *r, size_t n)
{
    r->msgs = stq_xcalloc(n, sizeof *r->msgs);
}

struct stq_chat *stq_one_chat(struct stq_req *r)
{
    if (!r->chats)
        stq_alloc_chats(r, 1);
    r->n = 1;
    r->res.chat = &r->chats[0].c;
    return &r->chats[0];
}

int stq_viewer_side(const struct stq_req *r, const struct stq_chat *o)
{
    if (r->vpat[0] && strcmp(r->vpat, o->pat) == 0)
        return CC_SIDE_PATIENT;
    if (r->vpro[0] && strcmp(r->vpro, o->pro) == 0)
        return CC_SIDE_PROFESSIONAL;
    return CC_SIDE_NONE;
}

void stq_finish_chats(struct stq_req *r, int rev)
{
    r->chat_ptrs = stq_xcalloc(r->n + 1, sizeof *r->chat_ptrs);
    for (size_t i = 0; i < r->n; i++)
        r->chat_ptrs[rev ? r->n - 1 - i : i] = &r->chats[i].c;
    r->res.chats = r->chat_ptrs;
    r->res.n_chats = r->n;
}

void stq_finish_msgs(struct stq_req *r, size_t n, int desc)
{
    r->msg_ptrs = stq_xcalloc(n + 1, sizeof *r->msg_ptrs);
    for (size_t i = 0; i < n; i++)
        r->msg_ptrs[desc ? n - 1 - i : i] = &r->msgs[i].m;
    r->res.messages = r->msg_ptrs;
    r->res.n_messages = n;
}

void stq_msg_link(struct stq_msg *o, size_t content_len, int64_t seq,
                 int32_t sender_type, int64_t created_at_us, int32_t is_read,
                 int32_t priority)
{
    o->m = (struct cc_message){
        .struct_size = sizeof o->m, .id = o->id, .chat_id = o->chat,
        .sender_id = o->sender, .content = o->content,
        .content_len = content_len, .created_at_us = created_at_us,
        .seq = seq, .sender_type = sender_type, .is_read = is_read,
        .client_id = o->client_id[0] ? o->client_id : NULL,
        .priority = priority,
    };
}

void stq_chat_link(struct stq_chat *o, int64_t created_at_us,
                  int64_t updated_at_us)
{
    o->c.struct_size = sizeof o->c;
    o->c.id = o->id;
    o->c.patient_id = o->pat;
    o->c.professional_id = o->pro;
    o->c.created_at_us = created_at_us;
    o->c.updated_at_us = updated_at_us;
}

void stq_append_result(struct stq_req *r, int64_t seq)
{
    struct stq_msg *o;

    r->res.chat = NULL;
    stq_alloc_msgs(r, 1);
    r->nm = 1;
    o = &r->msgs[0];
    stq_copy_id(o->id, r->id);
    stq_copy_id(o->chat, r->chat);
    stq_copy_id(o->sender, r->sender);
    memcpy(o->client_id, r->cid, sizeof o->client_id);
    o->content = r->content;   /* ownership moves to the result */
    r->content = NULL;
    stq_msg_link(o, r->content_len, seq, r->side, r->at_us, 0, r->priority);
    r->res.message = &o->m;
}

/* ---------------------------------------------- ABI 1.4 results */

static char *xstrdup(const char *s)
{
    char *p = s ? strdup(s) : NULL;

    if (s && !p)
        abort();
    return p;
}

void stq_chat_marks(struct stq_chat *o, int32_t side, const char *read,
                   const char *dlv)
{
    stq_copy_id(o->read[side], read);
    stq_copy_id(o->dlv[side], dlv);
    o->c.read_up_to[side] = o->read[side][0] ? o->read[side] : NULL;
    o->c.delivered_up_to[side] = o->dlv[side][0] ? o->dlv[side] : NULL;
}

void stq_chat_name(struct stq_chat *o, int32_t side, const char *name)
{
    free(o->name[side]);
    o->name[side] = name && name[0] ? xstrdup(name) : NULL;
    o->c.name[side] = o->name[side];
}

void stq_set_owner(struct stq_req *r, const char *owner)
{
    free(r->owner);
    r->owner = xstrdup(owner);
    r->res.owner = r->owner;
}

void stq_set_mark(struct stq_req *r, int32_t kind, const struct stq_mark *m,
                 int moved)
{
    memcpy(r->mark.id, m->id, sizeof r->mark.id);
    r->mark.m = (struct cc_mark){
        .struct_size = sizeof r->mark.m, .kind = kind, .side = r->side,
        .up_to_id = m->seq > 0 && r->mark.id[0] ? r->mark.id : NULL,
        .up_to_seq = m->seq, .at_us = m->at, .moved = moved,
    };
    r->res.mark = &r->mark.m;
}

struct stq_ntf *stq_add_ntf(struct stq_req *r)
{
    if (!r->ntfs)
        r->ntfs = stq_xcalloc(r->limit, sizeof *r->ntfs);
    return &r->ntfs[r->nn++];
}

void stq_ntf_link(struct stq_ntf *n, int32_t side, int64_t unread,
                 int64_t episode_at_us, const struct stq_episode *e)
{
    n->n = (struct cc_notification){
        .struct_size = sizeof n->n, .id = n->id, .chat_id = n->chat,
        .side = side, .profile_id = n->profile, .user_id = n->user,
        .first_unread_id = n->first[0] ? n->first : NULL,
        .unread = unread, .urgent = e->urgent,
        .episode_at_us = episode_at_us, .attempts = e->attempts,
        .sent = e->sent,
    };
}

void stq_finish_ntfs(struct stq_req *r)
{
    r->ntf_ptrs = stq_xcalloc(r->nn + 1, sizeof *r->ntf_ptrs);
    for (size_t i = 0; i < r->nn; i++)
        r->ntf_ptrs[i] = &r->ntfs[i].n;
    r->res.notifications = r->ntf_ptrs;
    r->res.n_notifications = r->nn;
}

void stq_ticket_link(struct stq_req *r, int32_t is_admin, int64_t token_exp,
                    int64_t expires_at_us)
{
    struct stq_ticket *k = &r->ticket;

    k->t = (struct cc_ticket){
        .struct_size = sizeof k->t, .id = k->id, .user_id = k->user,
        .patient_id = k->pat[0] ? k->pat : NULL,
        .professional_id = k->pro[0] ? k->pro : NULL,
        .is_admin = is_admin, .token_expires_at = token_exp,
        .expires_at_us = expires_at_us,
    };
    r->res.ticket = &k->t;
}

/* ------------------------------------ ABI 1.4 marks and episodes */

int stq_mark_forward(struct stq_mark *m, int64_t seq, const char *id,
                    int64_t at)
{
    if (seq <= m->seq)
        return 0;
    m->seq = seq;
    m->at = at;
    stq_copy_id(m->id, id);
    return 1;
}

/* The earlier of two due times, 0 meaning none. */
static int64_t earlier(int64_t a, int64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

int stq_episode_append(struct stq_episode *e, int32_t priority, int64_t due)
{
    int64_t was = e->due;

    if (!due)
        return 0;
    if (!e->open) {
        memset(e, 0, sizeof *e);
        e->open = 1;
        e->urgent = priority == CC_PRIORITY_URGENT;
        e->due = due;
        return 1;
    }
    if (priority != CC_PRIORITY_URGENT)
        return 0;
    e->due = earlier(e->due, due);
    if (e->urgent && e->due == was)
        return 0;
    e->urgent = 1;
    return 1;
}

void stq_episode_read(struct stq_episode *e, int64_t remaining,
                     int64_t oldest_at, int32_t any_urgent, int64_t at,
                     int64_t delay)
{
    memset(e, 0, sizeof *e);
    if (remaining <= 0 || delay <= 0)
        return;
    e->open = 1;
    e->urgent = any_urgent != 0;
    e->due = any_urgent ? at : oldest_at + delay;
    if (e->due <= 0)
        e->due = 1;
}

int stq_mark_apply(struct stq_req *r, struct stq_state *st, int64_t seq,
                  const char *id, const struct stq_mark_io *io)
{
    int side = r->side, other = 3 - side, rc;
    struct stq_mark *m = r->kind == CC_MARK_READ ? &st->read[side]
                                                : &st->dlv[side];
    int64_t from = m->seq, n = 0, left = 0, at = 0;
    int32_t urgent = 0;
    int moved = seq > 0 && stq_mark_forward(m, seq, id, r->at_us);

    if (moved &&
        (rc = io->count(io->arg, r, from, seq, other, &n)) != CC_OK)
        return rc;
    r->res.count = n;
    stq_set_mark(r, r->kind, m, moved);
    if (!moved || r->kind != CC_MARK_READ)
        return moved;
    stq_mark_forward(&st->dlv[side], seq, id, r->at_us);
    if (n == 0)
        return 1;   /* only its own messages: the episode goes on */
    if (r->delay > 0 &&
        (rc = io->unread(io->arg, r, seq, other, &left, &at, &urgent)) !=
            CC_OK)
        return rc;
    stq_episode_read(&st->ep[side], left, at, urgent, r->at_us, r->delay);
    return 1;
}

int stq_episode_claimable(const struct stq_episode *e, int64_t now)
{
    return e->open && e->due > 0 && e->due <= now && e->lease <= now;
}

/* A UUIDv4 from the host's random bytes, canonical lower-case text. */
static int uuid4(const struct cc_host_api *host, char out[STQ_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int j = 0;

    if (host->random_bytes(b, sizeof b) != CC_OK)
        return CC_E_FAIL;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 15];
    }
    out[j] = '\0';
    return CC_OK;
}

int stq_episode_claim(struct stq_episode *e, int64_t now, int64_t lease,
                     const struct cc_host_api *host)
{
    if (!e->id[0] && uuid4(host, e->id) != CC_OK)
        return CC_E_FAIL;
    e->lease = e->due = now + lease;
    return CC_OK;
}

int stq_episode_done(struct stq_episode *e, const char *id, int32_t result,
                    int64_t next_due, int64_t now)
{
    /* What an urgent message asked for while it was handed out. */
    int64_t keep = !e->lease ? e->due : e->due < e->lease ? e->due : 0;

    if (!e->open || !e->id[0] || strcmp(e->id, id) != 0)
        return 0;
    e->lease = 0;
    if (result == CC_NOTIFY_RETRY) {
        e->attempts++;
        e->due = earlier(keep, next_due > 0 ? next_due : now);
        return 1;
    }
    if (result == CC_NOTIFY_SENT) {
        e->sent++;
        e->due = earlier(keep, next_due > 0 ? next_due : 0);
    } else {
        e->due = keep;
    }
    e->attempts = 0;
    e->id[0] = '\0';
    return 1;
}

/* ------------------------------------------------- the storage API */

static int valid_id(const char *s)
{
    return s && strlen(s) == STQ_ID_LEN;
}

static int valid_side(int32_t side)
{
    return side == CC_SIDE_PATIENT || side == CC_SIDE_PROFESSIONAL;
}

static struct stq_req *new_req(struct stq_backend *b, enum stq_op op,
                              cc_store_cb cb, void *arg)
{
    struct stq_req *r = stq_xcalloc(1, sizeof *r);

    r->op = op;
    r->cb = cb;
    r->arg = arg;
    r->at_us = b->host->now_real_us();
    return r;
}

static int submit(void *inst, struct stq_req *r)
{
    struct stq_backend *b = inst;

    return b->submit(b, r);
}

static int api_profile_put(void *inst, int32_t side, const char *id,
                           const char *user, cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!valid_side(side) || !valid_id(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, STQ_PROFILE_PUT, cb, arg);
    r->side = side;
    stq_copy_id(r->id, id);
    if (user && !(r->user = strdup(user)))
        abort();
    return submit(inst, r);
}

static int api_profile_get(void *inst, int32_t side, const char *id,
                           cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!valid_side(side) || !valid_id(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, STQ_PROFILE_GET, cb, arg);
    r->side = side;
    stq_copy_id(r->id, id);
    return submit(inst, r);
}

static int api_chat_open(void *inst, const char *new_id, const char *pat,
                         const char *pro, int64_t now_us, cc_store_cb cb,
                         void *arg)
{
    struct stq_req *r;

    if (!valid_id(new_id) || !valid_id(pat) || !valid_id(pro) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, STQ_CHAT_OPEN, cb, arg);
    stq_copy_id(r->chat, new_id);
    stq_copy_id(r->pat, pat);
    stq_copy_id(r->pro, pro);
    r->at_us = now_us;
    return submit(inst, r);
}

static void set_viewer(struct stq_req *r, const struct cc_viewer *v)
{
    if (!v)
        return;
    if (valid_id(v->patient_id))
        stq_copy_id(r->vpat, v->patient_id);
    if (valid_id(v->professional_id))
        stq_copy_id(r->vpro, v->professional_id);
}

static int api_chat_get(void *inst, const char *chat_id,
                        const struct cc_viewer *viewer, cc_store_cb cb,
                        void *arg)
{
    struct stq_req *r;

    if (!valid_id(chat_id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, STQ_CHAT_GET, cb, arg);
    stq_copy_id(r->chat, chat_id);
    set_viewer(r, viewer);
    return submit(inst, r);
}

static int api_chat_list(void *inst, const struct cc_chat_query *q,
                         cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!q || !cb || q->limit < 1 || q->limit > 100000)
        return CC_E_INVAL;
    r = new_req(inst, STQ_CHAT_LIST, cb, arg);
    set_viewer(r, &q->viewer);
    r->cursor_us = q->before_updated_us > 0 ? q->before_updated_us : 0;
    stq_copy_id(r->cursor_id, q->before_id);
    if (q->struct_size >= offsetof(struct cc_chat_query, after_id) +
                              sizeof q->after_id &&
        q->after_updated_us > 0 && q->after_id) {
        r->after = q->after_updated_us; /* newer than (after, c) */
        stq_copy_id(r->cursor_id, q->after_id);
        r->cursor_us = 0;
    }
    r->limit = q->limit;
    return submit(inst, r);
}

static int api_message_append(void *inst, const struct cc_message *m,
                              cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!m || !cb || !valid_id(m->id) || !valid_id(m->chat_id) ||
        !valid_id(m->sender_id) || !m->content ||
        m->content_len > 0x7fffffff || !valid_side(m->sender_type))
        return CC_E_INVAL;
    r = new_req(inst, STQ_MSG_APPEND, cb, arg);
    stq_copy_id(r->id, m->id);
    stq_copy_id(r->chat, m->chat_id);
    stq_copy_id(r->sender, m->sender_id);
    r->side = m->sender_type;
    r->at_us = m->created_at_us;
    if (CC_HAS_MEMBER(m, struct cc_message, client_id) && m->client_id) {
        if (!valid_id(m->client_id)) {
            stq_req_free(r);
            return CC_E_INVAL;
        }
        stq_copy_id(r->cid, m->client_id);
    }
    if (CC_HAS_MEMBER(m, struct cc_message, priority)) {
        if (m->priority != CC_PRIORITY_NORMAL &&
            m->priority != CC_PRIORITY_URGENT) {
            stq_req_free(r);
            return CC_E_INVAL;
        }
        r->priority = m->priority;
    }
    if (CC_HAS_MEMBER(m, struct cc_message, notify_due_us))
        r->due = m->notify_due_us > 0 ? m->notify_due_us : 0;
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
    struct stq_req *r;

    if (!q || !cb || !valid_id(q->chat_id) || q->limit < 1 ||
        q->limit > 100000 || q->after_seq < 0 || q->before_seq < 0)
        return CC_E_INVAL;
    r = new_req(inst, STQ_MSG_LIST, cb, arg);
    stq_copy_id(r->chat, q->chat_id);
    r->side = q->viewer_side;
    r->after = q->after_seq;
    r->before = q->before_seq;
    r->limit = q->limit;
    if (CC_HAS_MEMBER(q, struct cc_message_query, after_id) &&
        q->after_id && !q->after_seq && !q->before_seq) {
        if (!valid_id(q->after_id)) {
            stq_req_free(r);
            return CC_E_INVAL;
        }
        stq_copy_id(r->id, q->after_id);
    }
    return submit(inst, r);
}

static int api_mark_read(void *inst, const char *chat_id, int32_t side,
                         cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!valid_id(chat_id) || !valid_side(side) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, STQ_MARK_READ, cb, arg);
    stq_copy_id(r->chat, chat_id);
    r->side = side;
    return submit(inst, r);
}

static int api_message_purge(void *inst, int64_t before_us, uint32_t limit,
                             cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!cb || limit < 1 || limit > 100000 || before_us <= 0)
        return CC_E_INVAL;
    r = new_req(inst, STQ_MSG_PURGE, cb, arg);
    r->at_us = before_us;
    r->limit = limit;
    return submit(inst, r);
}

/* ------------------------------------------------ the ABI 1.4 calls */

/* A ticket id: 1 to STQ_TICKET_LEN lower-case hex digits. */
static int valid_ticket(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n < 1 || n > STQ_TICKET_LEN)
        return 0;
    return strspn(s, "0123456789abcdef") == n;
}

/* profile_owner_set and profile_name_set: a profile and a string. */
static int profile_set(void *inst, enum stq_op op, int32_t side,
                       const char *id, const char *value, cc_store_cb cb,
                       void *arg)
{
    struct stq_req *r;

    if (!valid_side(side) || !valid_id(id) || !cb ||
        (op == STQ_PROFILE_NAME && value && strlen(value) > STQ_NAME_MAX))
        return CC_E_INVAL;
    r = new_req(inst, op, cb, arg);
    r->side = side;
    stq_copy_id(r->id, id);
    if (op == STQ_PROFILE_NAME)
        r->name = value && value[0] ? xstrdup(value) : NULL;
    else
        r->user = xstrdup(value);
    return submit(inst, r);
}

static int api_profile_owner_set(void *inst, int32_t side, const char *id,
                                 const char *user, cc_store_cb cb,
                                 void *arg)
{
    return profile_set(inst, STQ_PROFILE_OWNER, side, id, user, cb, arg);
}

static int api_profile_name_set(void *inst, int32_t side, const char *id,
                                const char *name, cc_store_cb cb, void *arg)
{
    return profile_set(inst, STQ_PROFILE_NAME, side, id, name, cb, arg);
}

static int api_mark_set(void *inst, const struct cc_mark_req *m,
                        cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!m || !cb || !valid_id(m->chat_id) || !valid_side(m->side) ||
        (m->kind != CC_MARK_READ && m->kind != CC_MARK_DELIVERED) ||
        (m->up_to_id && !valid_id(m->up_to_id)) || m->notify_delay_us < 0)
        return CC_E_INVAL;
    r = new_req(inst, STQ_MARK_SET, cb, arg);
    stq_copy_id(r->chat, m->chat_id);
    stq_copy_id(r->id, m->up_to_id);
    r->side = m->side;
    r->kind = m->kind;
    r->at_us = m->at_us;
    r->delay = m->kind == CC_MARK_READ ? m->notify_delay_us : 0;
    return submit(inst, r);
}

static int api_ticket_put(void *inst, const struct cc_ticket *t,
                          cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!t || !cb || !valid_ticket(t->id) || !t->user_id ||
        (t->patient_id && !valid_id(t->patient_id)) ||
        (t->professional_id && !valid_id(t->professional_id)))
        return CC_E_INVAL;
    r = new_req(inst, STQ_TICKET_PUT, cb, arg);
    memcpy(r->tid, t->id, strlen(t->id) + 1);
    r->user = xstrdup(t->user_id);
    stq_copy_id(r->pat, t->patient_id);
    stq_copy_id(r->pro, t->professional_id);
    r->kind = t->is_admin != 0;
    r->after = t->token_expires_at;
    r->before = r->at_us;           /* now: expired tickets may go */
    r->at_us = t->expires_at_us;
    return submit(inst, r);
}

static int api_ticket_take(void *inst, const char *id, int64_t now_us,
                           cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!valid_ticket(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, STQ_TICKET_TAKE, cb, arg);
    memcpy(r->tid, id, strlen(id) + 1);
    r->at_us = now_us;
    return submit(inst, r);
}

static int api_notify_claim(void *inst, const struct cc_notify_claim *q,
                            cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!q || !cb || q->limit < 1 || q->limit > 10000 || q->lease_us < 1 ||
        q->now_us < 1)
        return CC_E_INVAL;
    r = new_req(inst, STQ_NOTIFY_CLAIM, cb, arg);
    r->at_us = q->now_us;
    r->delay = q->lease_us;
    r->limit = q->limit;
    return submit(inst, r);
}

static int api_notify_done(void *inst, const struct cc_notify_outcome *o,
                           cc_store_cb cb, void *arg)
{
    struct stq_req *r;

    if (!o || !cb || !valid_id(o->chat_id) || !valid_side(o->side) ||
        !valid_id(o->id) || o->result < CC_NOTIFY_SENT ||
        o->result > CC_NOTIFY_DROP)
        return CC_E_INVAL;
    r = new_req(inst, STQ_NOTIFY_DONE, cb, arg);
    stq_copy_id(r->chat, o->chat_id);
    stq_copy_id(r->id, o->id);
    r->side = o->side;
    r->kind = o->result;
    r->due = o->next_due_us > 0 ? o->next_due_us : 0;
    return submit(inst, r);
}

const struct cc_storage_api stq_storage_api = {
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
    .profile_owner_set = api_profile_owner_set,
    .profile_name_set = api_profile_name_set,
    .mark_set = api_mark_set,
    .ticket_put = api_ticket_put,
    .ticket_take = api_ticket_take,
    .notify_claim = api_notify_claim,
    .notify_done = api_notify_done,
};
