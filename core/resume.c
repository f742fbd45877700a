/*
 * resume.c - catching a reconnecting WebSocket up from history (see
 * resume.h).
 */
#include "resume.h"
#include "conn.h"
#include "log.h"
#include "msg.h"
#include "session.h"
#include "store.h"
#include "uuid.h"

#include <stdlib.h>
#include <string.h>

struct cc_resume {
    struct cc_conn *conn;
    char since[CC_UUID_LEN + 1]; /* the client's message id, until one
                            after it was sent or its seq was read; "" from
                            then on */
    int64_t last_seq;    /* the last message sent from storage (or since) */
    int64_t live_max;    /* the highest live seq that reached it meanwhile */
    int in_flight;       /* a page is being read (conn held) */
    int due;             /* the next page waits for the output to drain */
};

static void read_page(struct cc_resume *r);
static void read_newest(struct cc_resume *r);

/* More to send before going live?  Storage said so, or a live message
 * came that no page has carried yet. */
static int behind(const struct cc_resume *r, int more)
{
    return more || r->live_max > r->last_seq;
}

static void send_page(struct cc_resume *r, const struct cc_store_result *res)
{
    struct cc_sbuf b = { 0 };

    for (size_t i = 0; i < res->n_messages; i++) {
        const struct cc_message *m = res->messages[i];
        b.len = 0;
        cc_sbuf_adds(&b, "{\"message\": ");
        cc_json_message(&b, m, 0);
        cc_sbuf_adds(&b, "}");
        cc_session_send_resumed(r->conn, b.p, b.len, m->seq);
        r->last_seq = m->seq;
        r->since[0] = '\0';
    }
    cc_sbuf_free(&b);
}

/* A read came back: 1 when r goes on with res (status CC_OK), 0 when
 * the connection is gone, or was told and handled here. */
static int read_ok(struct cc_resume *r, int status,
                   const struct cc_store_result *res)
{
    struct cc_conn *c = r->conn;

    r->in_flight = 0;
    if (!cc_conn_release(c) || c->dead || cc_session_closing(c))
        return 0; /* gone or going (r is freed with the session) */
    if (status == CC_E_NOTFOUND && r->since[0]) {
        /* Documented: the error, then live messages from now on. */
        cc_session_send_error(c, CC_ERR_SINCE);
        cc_session_resumed(c);
        return 0;
    }
    if (status != CC_OK) {
        cc_log(CC_LOG_WARN, "ws", "%s: cannot resume chat from history: %s",
               c->peer, res && res->error ? res->error : "storage error");
        cc_session_close(c, CC_CLOSE_TRY_AGAIN,
                         "Storage unavailable; reconnect later");
        return 0;
    }
    return 1;
}

/* Live from now on, or the next page once the output has drained. */
static void go_on(struct cc_resume *r, int more)
{
    struct cc_conn *c = r->conn;

    if (!behind(r, more)) {
        cc_session_resumed(c);
        return;
    }
    r->due = 1;
    if (cc_conn_out_len(c) == 0)
        read_page(r);
}

static void page_done(void *arg, int status,
                      const struct cc_store_result *res)
{
    struct cc_resume *r = arg;

    if (!read_ok(r, status, res))
        return;
    if (res->n_messages == 0 && r->since[0]) {
        read_newest(r); /* nothing after since: where does it stand? */
        return;
    }
    send_page(r, res);
    go_on(r, res->more);
}

/* Nothing was stored after since when its page was read.  If since is
 * still the chat's newest message, the client has every message up to
 * its seq, and a live copy of one of them that is still on its way here
 * (stored, not yet fanned out) must not reach it again; if a newer one
 * came meanwhile, read after since again. */
static void newest_done(void *arg, int status,
                        const struct cc_store_result *res)
{
    struct cc_resume *r = arg;

    if (!read_ok(r, status, res))
        return;
    if (res->n_messages != 1 || strcmp(res->messages[0]->id, r->since)) {
        read_page(r);
        return;
    }
    r->last_seq = res->messages[0]->seq;
    r->since[0] = '\0';
    cc_session_has_upto(r->conn, r->last_seq);
    go_on(r, 0);
}

static void read_messages(struct cc_resume *r, struct cc_message_query *q,
                          cc_store_cb cb)
{
    int rc;

    cc_conn_hold(r->conn);
    r->in_flight = 1;
    rc = cc_store_message_list(q, cb, r);
    if (rc != CC_OK) {
        struct cc_store_result none = { .struct_size = sizeof none };
        cb(r, rc, &none);
    }
}

static void read_newest(struct cc_resume *r)
{
    struct cc_message_query q = {
        .chat_id = cc_session_chat_id(r->conn),
        .viewer_side = CC_SIDE_NONE, .before_seq = INT64_MAX, .limit = 1,
    };

    read_messages(r, &q, newest_done);
}

static void read_page(struct cc_resume *r)
{
    struct cc_message_query q = {
        .chat_id = cc_session_chat_id(r->conn),
        .viewer_side = CC_SIDE_NONE, .limit = CC_RESUME_PAGE,
    };

    r->due = 0;
    if (r->since[0])
        q.after_id = r->since;
    else
        q.after_seq = r->last_seq;
    read_messages(r, &q, page_done);
}

void cc_resume_start(struct cc_resume **slot, struct cc_conn *c,
                     const char *since)
{
    struct cc_resume *r = calloc(1, sizeof *r);

    if (!r)
        abort();
    r->conn = c;
    memcpy(r->since, since, sizeof r->since);
    *slot = r; /* before the first page: a refusal may end it at once */
    read_page(r);
}

void cc_resume_live(struct cc_resume *r, int64_t seq)
{
    if (seq > r->live_max)
        r->live_max = seq;
}

void cc_resume_on_write(struct cc_resume *r)
{
    if (r->due && !r->in_flight)
        read_page(r);
}

void cc_resume_free(struct cc_resume *r)
{
    free(r); /* never while a page is read: that holds the connection */
}
