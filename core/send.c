/*
 * send.c - the message pipeline (see send.h).
 *
 * A send is one job, from cc_send to its completion:
 *
 *   caller's loop: count, parse ------------------ mail (a worker's) --.
 *   loop 0: rate -> parse error? -> side -> client_id -> stamp -> append
 *   loop 0, storage's answer: encode once, publish, count, audit
 *   caller's loop: done(arg, result) <------------ mail (a worker's) --'
 *
 * A refusal before storage is audited on loop 0 too, and its completion
 * posted, so that done never runs inside cc_send.
 */
#include "send.h"
#include "audit.h"
#include "fanout.h"
#include "host.h"
#include "log.h"
#include "marks.h"
#include "loop.h"
#include "metrics.h"
#include "msg.h"
#include "notifier.h"
#include "server.h"
#include "store.h"
#include "tally.h"
#include "timefmt.h"
#include "uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_RATE "Too many messages: not stored; slow down"
#define ERR_BUSY "Server busy: message not stored; try again"
#define ERR_STORE "Message could not be stored; try again"
#define ERR_READ_NONE "read: no such message in this chat"
#define ERR_READ_STORE "Read mark not stored; try again"
#define ERR_NO_MARKS "Read marks are not supported by this server's " \
                     "storage plugin"
#define ERR_EXPECT_READ "Expected {\"read\": \"<message id>\"}"

struct job {
    struct cc_mail m;           /* to loop 0 and back, for a worker */
    struct cc_loop *origin;
    struct cc_loop *(*loop_of)(void *arg);
    int via;
    const struct cc_principal *who;
    const char *peer;
    cc_send_done_fn done;
    void *arg;
    int in_call;                /* inside cc_send: completion is posted */
    unsigned kinds;             /* what the caller takes (CC_TAKE_*) */
    char chat_id[CC_UUID_LEN + 1];
    char patient[CC_UUID_LEN + 1];
    char professional[CC_UUID_LEN + 1];
    struct cc_inbound in;       /* parsed; owns the content */
    const char *parse_error;    /* NULL: parsed */
    char ebuf[96];              /* parse_error's text, when built */
    char id[CC_UUID_LEN + 1];   /* stamped on loop 0 */
    struct cc_send_result res;  /* the outcome */
    /* The outcome's message, copied when it crosses to another loop. */
    struct cc_message msg;
    char msg_id[CC_UUID_LEN + 1], msg_sender[CC_UUID_LEN + 1];
    char msg_client_id[CC_UUID_LEN + 1];
    char *msg_content;          /* malloc'd: the original's, when not ours */
};

/* The per-user buckets: a GCRA (the generic cell rate algorithm), one
 * number per user: the time its bucket is full again ("tat", us).  A
 * user whose tat has passed has a full bucket and no entry; the table
 * is swept of those when it has doubled since the last sweep. */
static struct cc_tally rate_tat;
static size_t rate_sweep_at = 1024;

/* ------------------------------------------------------------ the end */

static void job_free(struct job *j)
{
    cc_inbound_free(&j->in);
    free(j->msg_content);
    free(j);
}

static void done_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct job *j = (struct job *)mail;

    (void)on;
    j->done(j->arg, &j->res);
    job_free(j);
}

/* Keep m in j (its message may live only until the caller of finish
 * returns).  The content is the job's own when it is the same text. */
static void keep_message(struct job *j, const struct cc_message *m)
{
    j->msg = *m;
    cc_uuid_copy(j->msg_id, m->id);
    cc_uuid_copy(j->msg_sender, m->sender_id);
    j->msg.id = j->msg_id;
    j->msg.chat_id = j->chat_id;
    j->msg.sender_id = j->msg_sender;
    j->msg.client_id = NULL;
    if (CC_HAS_MEMBER(m, struct cc_message, client_id) && m->client_id) {
        cc_uuid_copy(j->msg_client_id, m->client_id);
        j->msg.client_id = j->msg_client_id;
    }
    j->msg.struct_size = sizeof j->msg;
    if (m->content_len == j->in.content_len &&
        memcmp(m->content, j->in.content, m->content_len) == 0) {
        j->msg.content = j->in.content;
        return;
    }
    j->msg_content = malloc(m->content_len + 1);
    if (!j->msg_content)
        abort();
    memcpy(j->msg_content, m->content, m->content_len);
    j->msg.content = j->msg_content;
}

/* The outcome is known (loop 0): hand it to the caller, now when it is
 * loop 0's and cc_send has returned, else by mail. */
static void finish(struct job *j, int outcome, int status, const char *error,
                   const struct cc_message *m)
{
    j->res.outcome = outcome;
    j->res.status = status;
    j->res.error = error;
    j->res.message = m;
    if (j->loop_of)
        j->origin = j->loop_of(j->arg);
    if (j->origin == cc_main_loop && !j->in_call) {
        j->done(j->arg, &j->res);
        job_free(j);
        return;
    }
    if (m) {
        keep_message(j, m);
        j->res.message = &j->msg;
    }
    cc_loop_post(j->origin, &j->m, done_cb);
}

static void audit(const struct job *j, const char *result, int status,
                  const char *message_id)
{
    struct cc_audit_event ev = {
        .event = j->in.kind == CC_IN_READ ? "mark_read" : "message_send",
        .result = result, .status = status,
        .peer = j->peer, .who = j->who, .chat_id = j->chat_id,
        .message_id = message_id,
        .via = j->via == CC_VIA_WS ? "ws" : "rest",
    };

    cc_audit(&ev);
}

static void refuse(struct job *j, const char *result, int status,
                   const char *error)
{
    if (j->in.kind != CC_IN_TYPING)
        audit(j, result, status, NULL);
    finish(j, CC_SEND_REFUSED, status, error, NULL);
}

/* ------------------------------------------------------------ loop 0 */

static int drop_full(uint64_t tat, void *now)
{
    return tat <= *(uint64_t *)now;
}

/* One more message of user now?  message_rate per second, at most
 * message_burst in a row; 0 (rate): no limit. */
static int rate_ok(const char *user)
{
    uint64_t rate = cc_srv->lim.message_rate;
    uint64_t burst = cc_srv->lim.message_burst;
    uint64_t now = cc_time_mono_ns() / 1000, t, *tat;

    if (!rate)
        return 1;
    t = 1000000 / rate; /* us per message */
    if (rate_tat.n_entries >= rate_sweep_at) {
        cc_tally_sweep(&rate_tat, drop_full, &now);
        rate_sweep_at = rate_tat.n_entries * 2 > 1024
                            ? rate_tat.n_entries * 2 : 1024;
    }
    tat = cc_tally_value(&rate_tat, user);
    if (*tat < now)
        *tat = now;
    if (*tat - now > (burst ? burst - 1 : 0) * t)
        return 0;
    *tat += t;
    return 1;
}

static const char *store_error(int status, int *http)
{
    *http = status == CC_E_NOTFOUND ? 404 : 503;
    return status == CC_E_NOTFOUND ? CC_ERR_NOT_FOUND
         : status == CC_E_BUSY     ? ERR_BUSY
                                   : ERR_STORE;
}

/* Storage answered the append. */
static void appended(void *arg, int status, const struct cc_store_result *res)
{
    struct job *j = arg;
    const struct cc_message *m = res->message;
    struct cc_sbuf b = { 0 };
    int http;

    if (status != CC_OK || !m) {
        const char *e = store_error(status == CC_OK ? CC_E_FAIL : status,
                                    &http);
        cc_metrics_stored(0);
        cc_log(CC_LOG_WARN, "send", "message not stored in chat %s: %s",
               j->chat_id, res->error ? res->error : "storage error");
        refuse(j, "error", http, e);
        return;
    }
    if (cc_store_is_duplicate(res)) {
        audit(j, "ok", 200, m->id);
        finish(j, CC_SENT_DUPLICATE, 200, NULL, m);
        return;
    }
    cc_metrics_stored(1);
    /* Encoded once: every node's hub sends these bytes to its members. */
    cc_sbuf_adds(&b, "{\"message\": ");
    cc_json_message(&b, m, 0);
    cc_sbuf_adds(&b, "}");
    cc_fanout_publish(j->chat_id, m->seq, b.p, b.len);
    cc_sbuf_free(&b);
    audit(j, "ok", 201, m->id);
    finish(j, CC_SENT, 201, NULL, m);
}

/* The read mark of marks.h came back. */
static void marked(void *arg, int status, const struct cc_mark *m,
                   int64_t count)
{
    struct job *j = arg;

    if (status != CC_OK) {
        if (status != CC_E_NOTFOUND && status != CC_E_NOTSUP)
            cc_log(CC_LOG_WARN, "send", "read mark not stored in chat %s",
                   j->chat_id);
        refuse(j, status == CC_E_NOTFOUND ? "denied" : "error",
               status == CC_E_NOTFOUND ? 404
               : status == CC_E_NOTSUP ? 501 : 503,
               status == CC_E_NOTFOUND ? ERR_READ_NONE
               : status == CC_E_NOTSUP ? ERR_NO_MARKS : ERR_READ_STORE);
        return;
    }
    audit(j, "ok", 200, m && m->up_to_id ? m->up_to_id : NULL);
    j->res.count = count;
    finish(j, CC_SEND_MARKED, 200, NULL, NULL);
}

/* {"typing": true} from side: to the other party's opted-in
 * connections, on every node (the hub sends an event frame only to the
 * side it is for). */
static void relay_typing(struct job *j, int side)
{
    char p[64];
    int n = snprintf(p, sizeof p, "{\"typing\": {\"sender_type\": \"%s\"}}",
                     cc_side_name(side));

    if (j->in.typing)
        cc_fanout_publish(j->chat_id, 0, p, (size_t)n);
    finish(j, CC_SEND_QUIET, 200, NULL, NULL);
}

/* Decide and store (loop 0). */
static void run(struct job *j)
{
    struct cc_message m = { .struct_size = sizeof m };
    const char *error;
    int side, rc, http;

    if (!j->parse_error && j->in.kind != CC_IN_MESSAGE) {
        side = cc_role_resolve(j->who->patient_id,
                               j->who->professional_id, j->patient,
                               j->professional, j->in.role, &error);
        if (side < 0)
            refuse(j, "denied", 403, error);
        else if (j->in.kind == CC_IN_TYPING)
            relay_typing(j, side);
        else
            cc_marks_read(j->chat_id, side, j->in.read_id,
                          j->via == CC_VIA_WS, marked, j);
        return;
    }
    if (!rate_ok(j->who->user_id)) {
        cc_log(CC_LOG_DEBUG, "send", "%s: user over message_rate: refused",
               j->peer);
        refuse(j, "denied", 429, ERR_RATE);
        return;
    }
    if (j->parse_error) {
        refuse(j, "error", 400, j->parse_error);
        return;
    }
    side = cc_role_resolve(j->who->patient_id, j->who->professional_id,
                           j->patient, j->professional, j->in.role, &error);
    if (side < 0) {
        refuse(j, "denied", 403, error);
        return;
    }
    if (j->in.client_id[0] && !cc_store_can(CC_STORE_CLIENT_ID)) {
        refuse(j, "error", 400, "client_id is not supported by this "
                                "server's storage plugin");
        return;
    }
    /* Stamped here, on loop 0, so that ids, times and storage order
     * agree whichever loop the message came from. */
    m.created_at_us = cc_time_now_us();
    cc_uuid_v7(m.created_at_us, j->id);
    m.id = j->id;
    m.chat_id = j->chat_id;
    m.sender_id = side == CC_SIDE_PATIENT ? j->patient : j->professional;
    m.sender_type = side;
    m.content = j->in.content;
    m.content_len = j->in.content_len;
    m.client_id = j->in.client_id[0] ? j->in.client_id : NULL;
    m.priority = j->in.priority;
    m.notify_due_us = cc_notifier_due(m.created_at_us, m.priority);
    rc = cc_store_append(&m, appended, j);
    if (rc != CC_OK) {
        cc_metrics_stored(0);
        error = store_error(rc, &http);
        refuse(j, "error", http, error);
    }
}

static void run_cb(struct cc_loop *on, struct cc_mail *mail)
{
    (void)on;
    run((struct job *)mail);
}

/* -------------------------------------------------------------- entry */

/* Does the caller take what j is?  A message where only read marks go
 * (REST mark_read) or the reverse is the error that entry's clients
 * know; typing more often than CC_TYPING_MS per connection is dropped
 * here, on the connection's loop.  Returns 1 to go on, 0 when j is
 * answered (parse_error set for an error, else quiet). */
static int taken(struct job *j, uint64_t *typing_ms)
{
    uint64_t now;

    /* Refused as what the entry takes, and audited as that. */
    if (j->in.kind == CC_IN_MESSAGE && !(j->kinds & CC_TAKE_MESSAGE)) {
        j->parse_error = ERR_EXPECT_READ;
        j->in.kind = CC_IN_READ;
        return 0;
    }
    if ((j->in.kind == CC_IN_READ && !(j->kinds & CC_TAKE_READ)) ||
        (j->in.kind == CC_IN_TYPING &&
         (!(j->kinds & CC_TAKE_TYPING) || !typing_ms))) {
        j->parse_error = CC_ERR_EMPTY;
        j->in.kind = CC_IN_MESSAGE;
        return 0;
    }
    if (j->in.kind != CC_IN_TYPING)
        return 1;
    now = cc_time_mono_ns() / 1000000;
    if (!j->in.typing || (*typing_ms && now - *typing_ms < CC_TYPING_MS))
        return 0;
    *typing_ms = now;
    return 1;
}

void cc_send(const struct cc_send_req *req)
{
    struct job *j = calloc(1, sizeof *j);

    if (!j)
        abort();
    j->origin = req->loop;
    j->loop_of = req->loop_of;
    j->via = req->via;
    j->who = req->who;
    j->peer = req->peer;
    j->done = req->done;
    j->arg = req->arg;
    cc_uuid_copy(j->chat_id, req->chat_id);
    cc_uuid_copy(j->patient, req->patient_id);
    cc_uuid_copy(j->professional, req->professional_id);
    cc_metrics_add(req->loop, CC_STAT_RECEIVED, 1);
    /* On failure parse_error says why (and the job stays unparsed). */
    cc_inbound_parse(req->text, req->len, cc_srv->lim.max_content_chars,
                     &j->in, &j->parse_error, j->ebuf, sizeof j->ebuf);
    j->kinds = req->kinds ? req->kinds : ~0u;
    if (!j->parse_error && !taken(j, req->typing_ms)) {
        /* Not what this entry takes (REST), or typing too soon. */
        j->in_call = 1;
        if (j->parse_error)
            refuse(j, "error", 400, j->parse_error);
        else
            finish(j, CC_SEND_QUIET, 200, NULL, NULL);
        j->in_call = 0;
        return;
    }
    if (req->loop != cc_main_loop) {
        cc_loop_post(cc_main_loop, &j->m, run_cb);
        return;
    }
    /* A refusal in run() posts its completion; j lives until it runs, or
     * until storage answers (never inside the append call). */
    j->in_call = 1;
    run(j);
    j->in_call = 0;
}

void cc_send_free(void)
{
    cc_tally_free(&rate_tat);
    rate_sweep_at = 1024;
}
