/*
 * storeq.h - the part of a threaded storage plugin that does not depend
 * on the database: requests, worker queues, results, and the
 * struct cc_storage_api that validates and copies a call into a request.
 *
 * A backend embeds struct stq_backend first in its instance, sets submit,
 * and implements the operations on its worker threads.  Every request
 * goes loop -> submit (queue) -> worker (fills status and outputs) ->
 * host->post(stq_deliver, group) -> callbacks on the loop in queue order
 * -> freed.  Shared by `sqlite` and `postgres`; linked statically into
 * each, so plugins still use nothing but the public ABI.
 */
#ifndef CC_STOREQ_H
#define CC_STOREQ_H

#include <carechat/storage.h>

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define STQ_ID_LEN 36

struct stq_req;

enum stq_op {
    STQ_PROFILE_PUT, STQ_CHAT_OPEN, STQ_MSG_APPEND, STQ_MARK_READ, /* writes */
    STQ_MSG_PURGE,   /* retention: t = before_us, limit (ABI 1.3) */
    STQ_PROFILE_OWNER, STQ_PROFILE_NAME, STQ_MARK_SET,   /* writes, ABI 1.4 */
    STQ_TICKET_PUT, STQ_TICKET_TAKE, STQ_NOTIFY_CLAIM, STQ_NOTIFY_DONE,
    STQ_PROFILE_GET, STQ_CHAT_GET, STQ_CHAT_LIST, STQ_MSG_LIST     /* reads */
};

#define STQ_IS_WRITE(op) ((op) < STQ_PROFILE_GET)

/* A ticket id: the host's hex digest (storage.h struct cc_ticket). */
#define STQ_TICKET_LEN 64
/* A display name's bytes at most (profile_name_set). */
#define STQ_NAME_MAX 200

/* A message or chat as handed to a callback, with the memory behind it. */
struct stq_msg {
    struct cc_message m;
    char id[STQ_ID_LEN + 1], chat[STQ_ID_LEN + 1], sender[STQ_ID_LEN + 1];
    char client_id[STQ_ID_LEN + 1];  /* "" when the message has none */
    char *content;
};

struct stq_chat {
    struct cc_chat c;
    char id[STQ_ID_LEN + 1], pat[STQ_ID_LEN + 1], pro[STQ_ID_LEN + 1];
    struct stq_msg last;
    /* ABI 1.4: each side's marks ("" none) and name (NULL none, owned) */
    char read[3][STQ_ID_LEN + 1], dlv[3][STQ_ID_LEN + 1];
    char *name[3];
};

/* ABI 1.4: a side's mark as a backend keeps it on the chat's row. */
struct stq_mark {
    int64_t seq;                /* 0: none */
    int64_t at;                 /* when it last moved */
    char id[STQ_ID_LEN + 1];     /* the message at seq ("" none) */
};

/* ABI 1.4: a side's notification episode, kept on the chat's row (the
 * side is the recipient).  The rules that move it are stq_episode_*. */
struct stq_episode {
    int32_t open;               /* from the first unread message of the
                                   other party appended with a due time,
                                   until the side reads */
    int32_t urgent;             /* one of its messages is urgent */
    int32_t attempts;           /* failed tries of id */
    int32_t sent;               /* notifications sent in it */
    int64_t due;                /* when to hand it out; 0: nothing due */
    int64_t lease;              /* handed out until then, 0: not; a claim
                                   sets due = lease, so a lower due means
                                   an urgent message came meanwhile */
    char id[STQ_ID_LEN + 1];     /* the notification's, "" none yet */
};

/* ABI 1.4: a chat's marks and episodes, as a backend keeps them on the
 * chat's row; by side ([0] unused). */
struct stq_state {
    struct stq_mark read[3];     /* the side has read the other's up to */
    struct stq_mark dlv[3];      /* and been delivered them up to */
    struct stq_episode ep[3];    /* the side's episode, as recipient */
};

/* What mark_set asks of a backend, on the worker running it: the
 * messages of side `from` in chat r->chat (0 or a CC_E_* code). */
struct stq_mark_io {
    /* how many with after < seq <= upto */
    int (*count)(void *arg, struct stq_req *r, int64_t after, int64_t upto,
                 int from, int64_t *n);
    /* of those after `after`: how many, the oldest one's time, whether
     * one is urgent */
    int (*unread)(void *arg, struct stq_req *r, int64_t after, int from,
                  int64_t *n, int64_t *oldest_at, int32_t *urgent);
    void *arg;
};

/* ABI 1.4: the columns of a chat row that hold side x's (pat or pro)
 * marks and episode, in the order both backends read them: the read
 * mark's seq, id, time, the delivered mark's, then the episode's open,
 * urgent, attempts, sent, due, lease and id. */
#define STQ_SIDE_COLS(x)                                                  \
    x "_read_upto, " x "_read_id, " x "_read_at, " x "_dlv_upto, "        \
    x "_dlv_id, " x "_dlv_at, " x "_ntf_open, " x "_ntf_urgent, "         \
    x "_ntf_attempts, " x "_ntf_sent, " x "_ntf_due, " x "_ntf_lease, "   \
    x "_ntf_id"
#define STQ_N_SIDE_COLS 13

/* ABI 1.4 results that are not chats or messages. */
struct stq_mark_out {
    struct cc_mark m;
    char id[STQ_ID_LEN + 1];
};

struct stq_ticket {
    struct cc_ticket t;
    char id[STQ_TICKET_LEN + 1], pat[STQ_ID_LEN + 1], pro[STQ_ID_LEN + 1];
    char *user;
};

struct stq_ntf {
    struct cc_notification n;
    char id[STQ_ID_LEN + 1], chat[STQ_ID_LEN + 1], profile[STQ_ID_LEN + 1];
    char first[STQ_ID_LEN + 1];  /* the oldest unread message, "" none */
    char *user;                 /* the profile's owner, NULL none */
};

/* One request, from the loop to a worker and back.  Inputs by op:
 *   PROFILE_PUT/GET  side, id = profile, user (PUT)
 *   PROFILE_OWNER    side, id = profile, user (NULL: none)
 *   PROFILE_NAME     side, id = profile, name (NULL: none)
 *   CHAT_OPEN        chat = the new one's id, pat, pro, at_us = now
 *   CHAT_GET         chat, vpat/vpro
 *   CHAT_LIST        vpat/vpro, cursor_us + cursor_id (older than), or
 *                    after + cursor_id (newer than), limit
 *   MSG_APPEND       id = the message's, chat, sender, side, content,
 *                    at_us = created, cid (the client's id, or ""),
 *                    priority, due
 *   MSG_LIST         chat, side (viewer), after, before, limit,
 *                    id = the message to list after (after_id), or ""
 *   MARK_READ        chat, side (reader)
 *   MARK_SET         chat, side, kind, id = up to ("" the newest),
 *                    at_us = the mark's time, delay (notify_delay_us)
 *   MSG_PURGE        at_us = before_us (created before), limit
 *   TICKET_PUT       tid, user, pat, pro (or ""), kind = is_admin,
 *                    after = token_expires_at, at_us = expires_at_us,
 *                    before = now
 *   TICKET_TAKE      tid, at_us = now
 *   NOTIFY_CLAIM     at_us = now, delay = lease_us, limit
 *   NOTIFY_DONE      chat, side, id = the notification's, kind = result,
 *                    due = next_due_us */
struct stq_req {
    enum stq_op op;
    cc_store_cb cb;
    void *arg;
    int32_t side;
    char id[STQ_ID_LEN + 1];        /* the object of the op (above) */
    char chat[STQ_ID_LEN + 1];      /* the chat it is about */
    char pat[STQ_ID_LEN + 1], pro[STQ_ID_LEN + 1]; /* the parties */
    char sender[STQ_ID_LEN + 1];    /* MSG_APPEND: the sender's profile */
    char cursor_id[STQ_ID_LEN + 1]; /* CHAT_LIST: the page's edge */
    char vpat[STQ_ID_LEN + 1], vpro[STQ_ID_LEN + 1];
    char cid[STQ_ID_LEN + 1];
    char tid[STQ_TICKET_LEN + 1];
    char *user;
    char *name;
    char *content;
    size_t content_len;
    int64_t at_us, after, before, cursor_us;
    int32_t priority, kind;
    int64_t due, delay;
    uint32_t limit;
    /* outputs */
    int status;
    char error[160];
    struct cc_store_result res;
    struct stq_chat *chats;
    const struct cc_chat **chat_ptrs;
    struct stq_msg *msgs;
    const struct cc_message **msg_ptrs;
    size_t n;                   /* chats filled */
    size_t nm;                  /* messages filled */
    char *owner;                /* res.owner's memory */
    struct stq_mark_out mark;    /* res.mark points here when set */
    struct stq_ticket ticket;    /* res.ticket points here when set */
    struct stq_ntf *ntfs;
    const struct cc_notification **ntf_ptrs;
    size_t nn;                  /* notifications filled */
    uint64_t qseq;              /* its place in its queue (put order) */
    struct stq_req *next;
};

struct stq_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* workers waiting in take() */
    pthread_cond_t wait_cv;     /* workers waiting in stq_queue_wait() */
    int n_waiting;              /* how many */
    struct stq_req *head, *tail;
    size_t n, max;
    uint64_t seq;               /* requests ever queued */
    int stop;
};

struct stq_backend {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    /* Queue r (a write when STQ_IS_WRITE(r->op)); on failure free it with
     * stq_req_free and return the CC_E_* code. */
    int (*submit)(struct stq_backend *b, struct stq_req *r);
};

/* The storage interface; inst must point at a struct stq_backend. */
extern const struct cc_storage_api stq_storage_api;

void *stq_xcalloc(size_t n, size_t size);
void stq_copy_id(char dst[STQ_ID_LEN + 1], const char *src);

void stq_queue_init(struct stq_queue *q, size_t max);
void stq_queue_destroy(struct stq_queue *q);
/* Queue r: CC_OK, or CC_E_BUSY when full / CC_E_UNAVAIL when stopped
 * (r is then freed). */
int stq_queue_put(struct stq_queue *q, struct stq_req *r);
/* Up to max requests in order, waiting for the first; NULL when the
 * queue is stopped and empty. */
struct stq_req *stq_queue_take(struct stq_queue *q, int max);
/* For a worker that cannot serve now (its connection is down): wait up
 * to ms milliseconds, or until a request is queued when until_work.
 * Returns -1 when the queue is stopped, else 1 when a request is queued,
 * 0 when none is.  Requests stay queued. */
int stq_queue_wait(struct stq_queue *q, int ms, int until_work);
/* Stop: take() drains what is queued, then returns NULL. */
void stq_queue_stop(struct stq_queue *q);
/* Fail every queued request with status and error (they are delivered
 * through host->post); used when a backend goes down. */
void stq_queue_fail_all(struct stq_backend *b, struct stq_queue *q,
                       int status, const char *error);
/* The number of requests queued so far: a mark for stq_queue_fail_upto. */
uint64_t stq_queue_mark(struct stq_queue *q);

/* Requests waiting in q now (for metrics; any thread). */
size_t stq_queue_len(struct stq_queue *q);

/* The samples both storage plugins give GET /metrics: their two queues'
 * lengths (ABI 1.3 metrics()). */
void stq_queue_metrics(struct stq_queue *wq, struct stq_queue *rq,
                      cc_metric_cb emit, void *arg);
/* Fail the queued requests that were queued before mark was taken (those
 * queued since stay queued): a reconnect attempt that failed fails only
 * what was waiting when it began. */
void stq_queue_fail_upto(struct stq_backend *b, struct stq_queue *q,
                        uint64_t mark, int status, const char *error);

/* host->post callback: run a group's callbacks in order, then free. */
void stq_deliver(void *group);
void stq_req_free(struct stq_req *r);
/* Undo what running each request of the group produced (results,
 * status, error) so the group can run again after its transaction was
 * rolled back. */
void stq_group_rewind(struct stq_req *group);
/* The same for one request. */
void stq_req_rewind(struct stq_req *r);

/* Result builders used by the backends' operations. */
struct stq_chat *stq_one_chat(struct stq_req *r);
/* The viewer's side in chat o per r->vpat/vpro. */
int stq_viewer_side(const struct stq_req *r, const struct stq_chat *o);
/* Allocate room for up to n chats or messages. */
void stq_alloc_chats(struct stq_req *r, size_t n);
void stq_alloc_msgs(struct stq_req *r, size_t n);
/* Point res.chats at the first r->n chats, in reverse when rev (a
 * "newer than" page is read oldest first). */
void stq_finish_chats(struct stq_req *r, int rev);
/* Point res.messages at the first n of r->msgs; reversed when desc. */
void stq_finish_msgs(struct stq_req *r, size_t n, int desc);
/* Fill o->m from the fields already copied into o (client_id included:
 * "" for none). */
void stq_msg_link(struct stq_msg *o, size_t content_len, int64_t seq,
                 int32_t sender_type, int64_t created_at_us,
                 int32_t is_read, int32_t priority);
void stq_chat_link(struct stq_chat *o, int64_t created_at_us,
                  int64_t updated_at_us);
/* Make r's stored message the result of an append (content moves). */
void stq_append_result(struct stq_req *r, int64_t seq);

/* ---------------------------------------------- ABI 1.4 results */

/* Set o's marks of side (read_up_to, delivered_up_to) from a backend's
 * ids ("" or NULL: none), copied. */
void stq_chat_marks(struct stq_chat *o, int32_t side, const char *read,
                   const char *dlv);
/* Set o's name of side (NULL or "": none), copied. */
void stq_chat_name(struct stq_chat *o, int32_t side, const char *name);
/* res.owner = a copy of owner (NULL: none). */
void stq_set_owner(struct stq_req *r, const char *owner);
/* res.mark = side's kind mark m, moved by this call or not. */
void stq_set_mark(struct stq_req *r, int32_t kind, const struct stq_mark *m,
                 int moved);
/* The next notification of a claim (zeroed, linked into res on
 * stq_finish_ntfs); room for r->limit. */
struct stq_ntf *stq_add_ntf(struct stq_req *r);
/* Fill n->n from the fields copied into n. */
void stq_ntf_link(struct stq_ntf *n, int32_t side, int64_t unread,
                 int64_t episode_at_us, const struct stq_episode *e);
void stq_finish_ntfs(struct stq_req *r);
/* res.ticket from the fields copied into r->ticket. */
void stq_ticket_link(struct stq_req *r, int32_t is_admin, int64_t token_exp,
                    int64_t expires_at_us);

/* ------------------------------------ ABI 1.4 marks and episodes
 *
 * The contract of storage.h's mark_set, notify_claim and notify_done,
 * on the state a backend reads from a chat's row and writes back: the
 * backends do the I/O, these decide.  Pure functions, any thread. */

/* Move m forward to (seq, id, at): 1 when it moved, 0 when seq is at or
 * before it (a mark never moves back). */
int stq_mark_forward(struct stq_mark *m, int64_t seq, const char *id,
                    int64_t at);

/* A message of the other party was appended with due (notify_due_us,
 * not 0): it opens the episode, due then, when none is open; an urgent
 * one makes an open episode urgent and due no later than due; a normal
 * one changes nothing.  Returns 1 when e changed. */
int stq_episode_append(struct stq_episode *e, int32_t priority, int64_t due);

/* The side read messages of the other party: the episode ends.  When
 * `remaining` of them are still unread and delay is not 0, a new one
 * begins: due at at when one of those is urgent, else delay after the
 * oldest of them (stored at oldest_at). */
void stq_episode_read(struct stq_episode *e, int64_t remaining,
                     int64_t oldest_at, int32_t any_urgent, int64_t at,
                     int64_t delay);

/* 1 when e is due at now and not leased. */
int stq_episode_claimable(const struct stq_episode *e, int64_t now);

/* Hand e out until now + lease: a new id (UUIDv4 from host) when it
 * has none.  CC_OK, or CC_E_FAIL when no random bytes. */
int stq_episode_claim(struct stq_episode *e, int64_t now, int64_t lease,
                     const struct cc_host_api *host);

/* mark_set (storage.h) on st, for request r (b = chat, side, kind,
 * t = at, delay), the mark going to message (seq, id) (seq 0: the chat
 * has none): a mark only moves forward; READ moves DELIVERED up to it
 * and, when it covered messages of the other party, ends the side's
 * episode and begins the next for what remains.  Sets res.count and
 * res.mark.  Returns 1 when st changed (write it back), 0 when not, or
 * io's error. */
int stq_mark_apply(struct stq_req *r, struct stq_state *st, int64_t seq,
                  const char *id, const struct stq_mark_io *io);

/* notify_done: result (CC_NOTIFY_*) of notification id, at now.
 * Returns 0 (e unchanged) when the episode has ended or id is not its
 * notification's, else 1. */
int stq_episode_done(struct stq_episode *e, const char *id, int32_t result,
                    int64_t next_due, int64_t now);

#endif
