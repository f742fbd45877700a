/*
 * storeq.h - the part of a threaded storage plugin that does not depend
 * on the database: requests, worker queues, results, and the
 * struct cc_storage_api that validates and copies a call into a request.
 *
 * A backend embeds struct sq_backend first in its instance, sets submit,
 * and implements the operations on its worker threads.  Every request
 * goes loop -> submit (queue) -> worker (fills status and outputs) ->
 * host->post(sq_deliver, group) -> callbacks on the loop in queue order
 * -> freed.  Shared by `sqlite` and `postgres`; linked statically into
 * each, so plugins still use nothing but the public ABI.
 */
#ifndef CC_STOREQ_H
#define CC_STOREQ_H

#include <carechat/storage.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SQ_ID_LEN 36

enum sq_op {
    SQ_PROFILE_PUT, SQ_CHAT_OPEN, SQ_MSG_APPEND, SQ_MARK_READ, /* writes */
    SQ_MSG_PURGE,   /* retention: t = before_us, limit (ABI 1.3) */
    SQ_PROFILE_GET, SQ_CHAT_GET, SQ_CHAT_LIST, SQ_MSG_LIST     /* reads */
};

#define SQ_IS_WRITE(op) ((op) <= SQ_MSG_PURGE)

/* A message or chat as handed to a callback, with the memory behind it. */
struct sq_msg {
    struct cc_message m;
    char id[SQ_ID_LEN + 1], chat[SQ_ID_LEN + 1], sender[SQ_ID_LEN + 1];
    char client_id[SQ_ID_LEN + 1];  /* "" when the message has none */
    char *content;
};

struct sq_chat {
    struct cc_chat c;
    char id[SQ_ID_LEN + 1], pat[SQ_ID_LEN + 1], pro[SQ_ID_LEN + 1];
    struct sq_msg last;
};

/* One request, from the loop to a worker and back.  Inputs by op:
 *   PROFILE_PUT/GET  side, a = profile, user (PUT)
 *   CHAT_OPEN        a = new id, b = patient, c = professional, t
 *   CHAT_GET         a = chat, vpat/vpro
 *   CHAT_LIST        vpat/vpro, cursor_us + a (older than), or after + c
 *                    (newer than), limit
 *   MSG_APPEND       a = id, b = chat, c = sender, side, content, t,
 *                    cid (the client's id, or "")
 *   MSG_LIST         b = chat, side (viewer), after, before, limit,
 *                    a = the message to list after (after_id), or ""
 *   MARK_READ        b = chat, side (reader)
 *   MSG_PURGE        t = before_us (created before), limit */
struct sq_req {
    enum sq_op op;
    cc_store_cb cb;
    void *arg;
    int32_t side;
    char a[SQ_ID_LEN + 1], b[SQ_ID_LEN + 1], c[SQ_ID_LEN + 1];
    char vpat[SQ_ID_LEN + 1], vpro[SQ_ID_LEN + 1];
    char cid[SQ_ID_LEN + 1];
    char *user;
    char *content;
    size_t content_len;
    int64_t t, after, before, cursor_us;
    uint32_t limit;
    /* outputs */
    int status;
    char error[160];
    struct cc_store_result res;
    struct sq_chat *chats;
    const struct cc_chat **chat_ptrs;
    struct sq_msg *msgs;
    const struct cc_message **msg_ptrs;
    size_t n;                   /* chats filled */
    size_t nm;                  /* messages filled */
    uint64_t qseq;              /* its place in its queue (put order) */
    struct sq_req *next;
};

struct sq_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* workers waiting in take() */
    pthread_cond_t wait_cv;     /* workers waiting in sq_queue_wait() */
    int n_waiting;              /* how many */
    struct sq_req *head, *tail;
    size_t n, max;
    uint64_t seq;               /* requests ever queued */
    int stop;
};

struct sq_backend {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    /* Queue r (a write when SQ_IS_WRITE(r->op)); on failure free it with
     * sq_req_free and return the CC_E_* code. */
    int (*submit)(struct sq_backend *b, struct sq_req *r);
};

/* The storage interface; inst must point at a struct sq_backend. */
extern const struct cc_storage_api sq_storage_api;

void *sq_xcalloc(size_t n, size_t size);
void sq_copy_id(char dst[SQ_ID_LEN + 1], const char *src);

void sq_queue_init(struct sq_queue *q, size_t max);
void sq_queue_destroy(struct sq_queue *q);
/* Queue r: CC_OK, or CC_E_BUSY when full / CC_E_UNAVAIL when stopped
 * (r is then freed). */
int sq_queue_put(struct sq_queue *q, struct sq_req *r);
/* Up to max requests in order, waiting for the first; NULL when the
 * queue is stopped and empty. */
struct sq_req *sq_queue_take(struct sq_queue *q, int max);
/* For a worker that cannot serve now (its connection is down): wait up
 * to ms milliseconds, or until a request is queued when until_work.
 * Returns -1 when the queue is stopped, else 1 when a request is queued,
 * 0 when none is.  Requests stay queued. */
int sq_queue_wait(struct sq_queue *q, int ms, int until_work);
/* Stop: take() drains what is queued, then returns NULL. */
void sq_queue_stop(struct sq_queue *q);
/* Fail every queued request with status and error (they are delivered
 * through host->post); used when a backend goes down. */
void sq_queue_fail_all(struct sq_backend *b, struct sq_queue *q,
                       int status, const char *error);
/* The number of requests queued so far: a mark for sq_queue_fail_upto. */
uint64_t sq_queue_mark(struct sq_queue *q);

/* Requests waiting in q now (for metrics; any thread). */
size_t sq_queue_len(struct sq_queue *q);

/* The samples both storage plugins give GET /metrics: their two queues'
 * lengths (ABI 1.3 metrics()). */
void sq_queue_metrics(struct sq_queue *wq, struct sq_queue *rq,
                      cc_metric_cb emit, void *arg);
/* Fail the queued requests that were queued before mark was taken (those
 * queued since stay queued): a reconnect attempt that failed fails only
 * what was waiting when it began. */
void sq_queue_fail_upto(struct sq_backend *b, struct sq_queue *q,
                        uint64_t mark, int status, const char *error);

/* host->post callback: run a group's callbacks in order, then free. */
void sq_deliver(void *group);
void sq_req_free(struct sq_req *r);
/* Undo what running each request of the group produced (results,
 * status, error) so the group can run again after its transaction was
 * rolled back. */
void sq_group_rewind(struct sq_req *group);
/* The same for one request. */
void sq_req_rewind(struct sq_req *r);

/* Result builders used by the backends' operations. */
struct sq_chat *sq_one_chat(struct sq_req *r);
/* The viewer's side in chat o per r->vpat/vpro. */
int sq_viewer_side(const struct sq_req *r, const struct sq_chat *o);
/* Allocate room for up to n chats or messages. */
void sq_alloc_chats(struct sq_req *r, size_t n);
void sq_alloc_msgs(struct sq_req *r, size_t n);
/* Point res.chats at the first r->n chats, in reverse when rev (a
 * "newer than" page is read oldest first). */
void sq_finish_chats(struct sq_req *r, int rev);
/* Point res.messages at the first n of r->msgs; reversed when desc. */
void sq_finish_msgs(struct sq_req *r, size_t n, int desc);
/* Fill o->m from the fields already copied into o (client_id included:
 * "" for none). */
void sq_msg_link(struct sq_msg *o, size_t content_len, int64_t seq,
                 int32_t sender_type, int64_t created_at_us,
                 int32_t is_read);
void sq_chat_link(struct sq_chat *o, int64_t created_at_us,
                  int64_t updated_at_us);
/* Make r's stored message the result of an append (content moves). */
void sq_append_result(struct sq_req *r, int64_t seq);


#endif
