/*
 * rest.c - the REST API (see rest.h).
 *
 *   POST /chat/chats/                          create or get a chat
 *   GET  /chat/chats/                          the caller's chats
 *   GET  /chat/chats/{id}/                     one chat
 *   GET  /chat/chats/{id}/messages/            history, oldest first
 *   POST /chat/chats/{id}/send_message/        store and broadcast
 *   POST /chat/chats/{id}/mark_read/           mark the other side's read
 *   POST /chat/profiles/                       admin: register a profile
 *
 * Trailing slashes are optional.  Every error is {"error": "..."}.
 */
#include "rest.h"
#include "audit.h"
#include "auth.h"
#include "chatcache.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "marks.h"
#include "loop.h"
#include "msg.h"
#include "router.h"
#include "send.h"
#include "server.h"
#include "store.h"
#include "ticket.h"
#include "timefmt.h"
#include "uuid.h"

#include <carechat/auth.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_DEFAULT 64
#define PAGE_MAX 200

enum route {
    R_CHATS, R_CHAT, R_MESSAGES, R_SEND, R_MARK_READ, R_PROFILES, R_TICKET
};

/* The routes (router.h); each entry is its route's arg. */
static const struct rest_route {
    const char *pattern;
    unsigned methods;
    enum route route;
} routes[] = {
    { "/chat/chats/", CC_M_GET | CC_M_POST, R_CHATS },
    { "/chat/chats/{}/", CC_M_GET, R_CHAT },
    { "/chat/chats/{}/messages/", CC_M_GET, R_MESSAGES },
    { "/chat/chats/{}/send_message/", CC_M_POST, R_SEND },
    { "/chat/chats/{}/mark_read/", CC_M_POST, R_MARK_READ },
    { "/chat/profiles/", CC_M_POST, R_PROFILES },
    { "/chat/ws-ticket/", CC_M_POST, R_TICKET },
};

/* One REST request in flight; the connection is held while it exists. */
struct op {
    struct cc_conn *c;
    enum route route;
    char chat_id[CC_UUID_LEN + 1];
    json_t *body;           /* parsed JSON body, or NULL */
    int side;               /* resolved side of the caller in the chat */
    uint32_t limit;
    int64_t after, before;  /* message cursors; chat list: the cursor's
                               time, chat_id its id */
    char since[CC_UUID_LEN + 1]; /* history: ?since=<message id>, or "" */
    const char *audit_as;   /* the audit event, when not the route's */
    int audited;            /* the pipeline audits a send (send.h) */
};

static const struct cc_principal *me(const struct op *op)
{
    return &op->c->req->auth.principal;
}

static void op_free(struct op *op)
{
    json_decref(op->body);
    free(op);
}

/* The audit line of op's answer (audit.h): event NULL for the route's
 * own, or op->audit_as when set. */
static void audit(const struct op *op, const char *event, int status)
{
    static const char *const names[] = {
        [R_CHATS] = "chat_list", [R_CHAT] = "chat_read",
        [R_MESSAGES] = "history_read", [R_SEND] = "message_send",
        [R_MARK_READ] = "mark_read", [R_PROFILES] = "profile_register",
        [R_TICKET] = "ticket_issue",
    };
    int open = op->c->req->h.method == CC_HTTP_POST &&
               (op->route == R_CHATS || op->route == R_CHAT);
    int list = op->route == R_CHATS && !open; /* chat_id: a cursor's */

    if (op->audited)
        return;
    event = event ? event : op->audit_as ? op->audit_as
          : open ? "chat_create" : names[op->route];
    cc_audit_log(event, NULL, status, op->c->peer,
                 strcmp(event, "auth_failure") ? me(op) : NULL,
                 list ? NULL : op->chat_id, NULL);
}

static void respond_sbuf(struct op *op, int status, struct cc_sbuf *b)
{
    audit(op, NULL, status);
    cc_conn_respond(op->c, status, NULL, b->p, b->len);
    cc_sbuf_free(b);
}

static void fail(struct op *op, int status, const char *msg)
{
    audit(op, NULL, status);
    cc_conn_respond_error(op->c, status, msg);
    op_free(op);
}

static void storage_fail(struct op *op, int status,
                         const struct cc_store_result *res)
{
    if (status == CC_E_NOTFOUND) {
        fail(op, 404, CC_ERR_NOT_FOUND);
        return;
    }
    cc_log(CC_LOG_WARN, "rest", "storage error %d: %s", status,
           res && res->error ? res->error : "-");
    fail(op, 503, status == CC_E_BUSY ? "Server busy; try again"
                                      : "Storage unavailable; try again");
}

/* Queue-time failure of a storage call: the op is still ours. */
static int check_queued(struct op *op, int rc)
{
    if (rc == CC_OK) {
        cc_conn_hold(op->c);
        return 0;
    }
    storage_fail(op, rc, NULL);
    return -1;
}

/* In a storage callback: 1 when the connection is still there. */
static int op_alive(struct op *op)
{
    if (cc_conn_release(op->c))
        return 1;
    op_free(op);
    return 0;
}

/* A link to path?cursor=...&page_size=... into b (a JSON string): on
 * [server] public_url when set; else this request's scheme (https on a
 * TLS listener) and its Host (one valid host[:port]: conn.c refused any
 * other); else, without a Host (HTTP/1.0), relative.  A client follows
 * it with its token: it must never lead elsewhere, or to clear text. */
static void add_link(struct cc_sbuf *b, struct op *op, const char *path,
                     const char *cursor, uint32_t limit)
{
    const struct cc_http_header *host = cc_http_header(&op->c->req->h,
                                                       "Host");
    struct cc_sbuf u = { 0 };

    if (cc_srv->public_url)
        cc_sbuf_adds(&u, cc_srv->public_url);
    else if (host)
        cc_sbuf_printf(&u, "%s://%.*s", op->c->tls ? "https" : "http",
                       (int)host->value.n, host->value.p);
    cc_sbuf_printf(&u, "%s?cursor=%s&page_size=%u", path, cursor, limit);
    cc_json_str(b, u.p, u.len);
    cc_sbuf_free(&u);
}

/* Parse page_size and cursor.  Returns 0 or -1 after answering 400. */
static int parse_paging(struct op *op, char *cursor, size_t cursor_size)
{
    struct cc_http_str q = op->c->req->h.query;
    char ps[16];
    long n = cc_http_query_param(q, "page_size", ps, sizeof ps);

    op->limit = PAGE_DEFAULT;
    if (n != -1) {
        uint64_t v;
        const char *why;
        if (n < 0 || cc_conf_parse_u64(ps, 1, 1000000000, &v, &why) < 0) {
            fail(op, 400, "page_size must be a positive integer");
            return -1;
        }
        op->limit = v > PAGE_MAX ? PAGE_MAX : (uint32_t)v;
    }
    cursor[0] = '\0';
    n = cc_http_query_param(q, "cursor", cursor, cursor_size);
    if (n == -2) {
        fail(op, 400, "Invalid cursor");
        return -1;
    }
    return 0;
}

/* ----------------------------------------------------------- chats */

static struct cc_viewer viewer_of(const struct op *op);

static void chat_done(void *arg, int status, const struct cc_store_result *res)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };

    if (!op_alive(op))
        return;
    if (status != CC_OK) {
        if (status == CC_E_NOTFOUND && res->missing_side)
            fail(op, 404, res->missing_side == CC_SIDE_PATIENT
                              ? "Patient not found"
                              : "Professional not found");
        else
            storage_fail(op, status, res);
        return;
    }
    cc_chatcache_put(res->chat);
    snprintf(op->chat_id, sizeof op->chat_id, "%s", res->chat->id);
    if (op->route == R_CHATS && !res->created) {
        /* An existing chat: chat_open knows no viewer, so fetch it again
         * for the caller's unread_count (answered 200 as R_CHAT). */
        struct cc_viewer v = viewer_of(op);
        snprintf(op->chat_id, sizeof op->chat_id, "%s", res->chat->id);
        op->route = R_CHAT;
        check_queued(op, cc_store_chat_get(op->chat_id, &v, chat_done, op));
        return;
    }
    cc_json_chat(&b, res->chat);
    respond_sbuf(op, op->route == R_CHATS && res->created ? 201 : 200, &b);
    op_free(op);
}

/* A UUID member of the body: 0 absent, 1 present (canonical in out),
 * -1 present but not a UUID. */
static int body_uuid(json_t *body, const char *key, char out[CC_UUID_LEN + 1])
{
    json_t *v = json_object_get(body, key);

    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) ||
        cc_uuid_canon(json_string_value(v), json_string_length(v), out) < 0)
        return -1;
    return 1;
}

/* POST /chat/chats/: the caller's side is inferred from their profile. */
static void open_chat(struct op *op)
{
    const struct cc_principal *p = me(op);
    char pat[CC_UUID_LEN + 1], pro[CC_UUID_LEN + 1];
    const char *use_pat = NULL, *use_pro = NULL;
    int hp = body_uuid(op->body, "patient", pat);
    int hr = body_uuid(op->body, "professional", pro);
    char id[CC_UUID_LEN + 1];
    int64_t now = cc_time_now_us();

    if (hp < 0 || hr < 0) {
        fail(op, 400, hp < 0 ? "patient must be a UUID"
                             : "professional must be a UUID");
        return;
    }
    if (!p->patient_id[0] && !p->professional_id[0] && !p->is_admin) {
        fail(op, 403, "Your token carries no patient or professional "
                      "profile");
        return;
    }
    if (hp && hr) {
        if (p->is_admin || strcmp(pat, p->patient_id) == 0) {
            use_pat = pat;
            use_pro = pro;
        } else if (strcmp(pro, p->professional_id) == 0) {
            use_pat = pat;
            use_pro = pro;
        } else {
            fail(op, 400, "One of patient or professional must be your "
                          "own profile");
            return;
        }
    } else if (hr) {
        if (!p->patient_id[0]) {
            fail(op, 400, "You have no patient profile: as a professional, "
                          "send the patient's id as \"patient\"");
            return;
        }
        use_pat = p->patient_id;
        use_pro = pro;
    } else if (hp) {
        if (!p->professional_id[0]) {
            fail(op, 400, "You have no professional profile: as a patient, "
                          "send the professional's id as \"professional\"");
            return;
        }
        use_pat = pat;
        use_pro = p->professional_id;
    } else {
        fail(op, 400, p->patient_id[0]
                          ? "professional is required"
                          : "patient is required");
        return;
    }
    cc_uuid_v7(now, id);
    check_queued(op, cc_store_chat_open(id, use_pat, use_pro, now, chat_done,
                                        op));
}

static struct cc_viewer viewer_of(const struct op *op)
{
    const struct cc_principal *p = me(op);
    struct cc_viewer v = { .struct_size = sizeof v };

    v.patient_id = p->patient_id[0] ? p->patient_id : NULL;
    v.professional_id = p->professional_id[0] ? p->professional_id : NULL;
    return v;
}

/* A chat-list cursor link: "u" older than, "n" newer than a chat. */
static void chat_link(struct cc_sbuf *b, struct op *op, char dir,
                      int64_t us, const char *id)
{
    char cursor[80];

    snprintf(cursor, sizeof cursor, "%c%lld_%s", dir, (long long)us, id);
    add_link(b, op, "/chat/chats/", cursor, op->limit);
}

static void list_done(void *arg, int status, const struct cc_store_result *res)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };
    const struct cc_chat *first, *last;
    /* Storage plugins built for ABI 1.0 cannot page towards newer chats:
     * no previous link then. */
    int can_back = cc_store_can(CC_STORE_PAGE_BACK);
    int newer = op->after > 0;

    if (!op_alive(op))
        return;
    if (status != CC_OK) {
        storage_fail(op, status, res);
        return;
    }
    first = res->n_chats ? res->chats[0] : NULL;
    last = res->n_chats ? res->chats[res->n_chats - 1] : NULL;
    cc_sbuf_printf(&b, "{\"count\": %lld, \"next\": ", (long long)res->count);
    if (last && (newer || res->more))
        chat_link(&b, op, 'u', last->updated_at_us, last->id);
    else if (!last && newer)
        chat_link(&b, op, 'u', op->after, op->chat_id);
    else
        cc_sbuf_adds(&b, "null");
    cc_sbuf_adds(&b, ", \"previous\": ");
    if (can_back && first && (newer ? res->more : op->before > 0))
        chat_link(&b, op, 'n', first->updated_at_us, first->id);
    else if (can_back && !first && op->before > 0)
        chat_link(&b, op, 'n', op->before, op->chat_id);
    else
        cc_sbuf_adds(&b, "null");
    cc_sbuf_adds(&b, ", \"results\": [");
    for (size_t i = 0; i < res->n_chats; i++) {
        if (i)
            cc_sbuf_adds(&b, ", ");
        cc_json_chat(&b, res->chats[i]);
    }
    cc_sbuf_adds(&b, "]}");
    respond_sbuf(op, 200, &b);
    op_free(op);
}

static void list_chats(struct op *op)
{
    struct cc_chat_query q = { .struct_size = sizeof q };
    char cursor[80];
    long long us = 0;

    if (parse_paging(op, cursor, sizeof cursor) < 0)
        return;
    if (cursor[0]) {
        char *us_end;
        int can_back = cc_store_can(CC_STORE_PAGE_BACK);
        if ((cursor[0] != 'u' && (cursor[0] != 'n' || !can_back)) ||
            (us = strtoll(cursor + 1, &us_end, 10)) <= 0 ||
            *us_end != '_' ||
            cc_uuid_canon(us_end + 1, strlen(us_end + 1), op->chat_id) < 0) {
            fail(op, 400, "Invalid cursor");
            return;
        }
        if (cursor[0] == 'u') {
            q.before_updated_us = op->before = us;
            q.before_id = op->chat_id;
        } else {
            q.after_updated_us = op->after = us;
            q.after_id = op->chat_id;
        }
    }
    q.viewer = viewer_of(op);
    q.limit = op->limit;
    check_queued(op, cc_store_chat_list(&q, list_done, op));
}

/* ------------------------------------------------ one chat, its messages */

/* The caller read a page of history: the newest message of the other
 * party in it has been delivered to the caller's side (marks.h). */
static void delivered(const struct op *op, const struct cc_store_result *res)
{
    for (size_t i = res->n_messages; op->side != CC_SIDE_NONE && i > 0; i--) {
        const struct cc_message *m = res->messages[i - 1];
        if (m->sender_type != op->side) {
            cc_marks_delivered(op->chat_id, op->side, m->seq, m->id);
            return;
        }
    }
}

static void messages_done(void *arg, int status,
                          const struct cc_store_result *res)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };
    char path[80], cursor[32];
    int64_t first = 0, last = 0;
    int has_newer, has_older;

    if (!op_alive(op))
        return;
    if (status == CC_E_NOTFOUND && op->since[0]) {
        fail(op, 404, CC_ERR_SINCE); /* the chat was found before */
        return;
    }
    if (status != CC_OK) {
        storage_fail(op, status, res);
        return;
    }
    if (op->since[0] && res->n_messages)
        op->after = res->messages[0]->seq - 1; /* for the links */
    delivered(op, res);
    if (res->n_messages) {
        first = res->messages[0]->seq;
        last = res->messages[res->n_messages - 1]->seq;
    }
    if (op->before > 0) {
        has_older = res->more;
        has_newer = res->n_messages ? last < res->count
                                    : op->before <= res->count;
        if (!res->n_messages)
            last = op->before - 1;
    } else {
        has_newer = res->more;
        has_older = res->n_messages ? first > 1 : op->after > 0;
        if (!res->n_messages)
            first = op->after + 1;
    }
    snprintf(path, sizeof path, "/chat/chats/%s/messages/", op->chat_id);
    cc_sbuf_printf(&b, "{\"count\": %lld, \"next\": ", (long long)res->count);
    if (has_newer) {
        snprintf(cursor, sizeof cursor, "a%lld", (long long)last);
        add_link(&b, op, path, cursor, op->limit);
    } else {
        cc_sbuf_adds(&b, "null");
    }
    cc_sbuf_adds(&b, ", \"previous\": ");
    if (has_older) {
        snprintf(cursor, sizeof cursor, "b%lld", (long long)first);
        add_link(&b, op, path, cursor, op->limit);
    } else {
        cc_sbuf_adds(&b, "null");
    }
    cc_sbuf_adds(&b, ", \"results\": [");
    for (size_t i = 0; i < res->n_messages; i++) {
        if (i)
            cc_sbuf_adds(&b, ", ");
        cc_json_message(&b, res->messages[i], 1);
    }
    cc_sbuf_adds(&b, "]}");
    respond_sbuf(op, 200, &b);
    op_free(op);
}

/* ?since=<message id> on history (without a cursor): the messages after
 * that one.  Returns 0 (op->since set or left ""), or -1 after 400. */
static int parse_since(struct op *op)
{
    char v[64];
    long n = cc_http_query_param(op->c->req->h.query, "since", v, sizeof v);

    if (n == -1)
        return 0;
    if (n < 0 || cc_uuid_canon(v, (size_t)n, op->since) < 0) {
        fail(op, 400, CC_ERR_SINCE_BAD);
        return -1;
    }
    if (!cc_store_can(CC_STORE_SINCE)) {
        fail(op, 400, CC_ERR_SINCE_OLD);
        return -1;
    }
    return 0;
}

static void list_messages(struct op *op)
{
    struct cc_message_query q = { .struct_size = sizeof q };
    char cursor[32];
    char *end;
    long long v;

    if (parse_paging(op, cursor, sizeof cursor) < 0)
        return;
    if (cursor[0]) {
        v = strtoll(cursor + 1, &end, 10);
        if ((cursor[0] != 'a' && cursor[0] != 'b') || *end || v < 0 ||
            (cursor[0] == 'b' && v < 1) || end == cursor + 1) {
            fail(op, 400, "Invalid cursor");
            return;
        }
        if (cursor[0] == 'a')
            op->after = v;
        else
            op->before = v;
    } else if (parse_since(op) < 0) {
        return;
    }
    q.chat_id = op->chat_id;
    q.viewer_side = op->side;
    q.after_seq = op->after;
    q.before_seq = op->before;
    q.limit = op->limit;
    if (op->since[0])
        q.after_id = op->since;
    check_queued(op, cc_store_message_list(&q, messages_done, op));
}

/* The pipeline's answer (send.h): 201 and the message, 200 and the
 * original for a resend, or the refusal.  The pipeline audited it. */
static void sent(void *arg, const struct cc_send_result *r)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };

    if (!op_alive(op))
        return;
    if (r->outcome == CC_SEND_REFUSED) {
        fail(op, r->status, r->error);
        return;
    }
    cc_json_message(&b, r->message, 1);
    respond_sbuf(op, r->status, &b);
    op_free(op);
}

/* The body goes to the pipeline as it came: the same rules, errors,
 * limits and audit as a WebSocket's message. */
static void send_message(struct op *op, const struct cc_chat *chat)
{
    const struct cc_request *r = op->c->req;
    struct cc_send_req req = {
        .loop = cc_main_loop, .via = CC_VIA_REST, .who = me(op),
        .peer = op->c->peer, .chat_id = op->chat_id,
        .patient_id = chat->patient_id,
        .professional_id = chat->professional_id,
        .text = r->body ? r->body : "", .len = r->body_len,
        .done = sent, .arg = op,
    };

    op->audited = 1;
    cc_conn_hold(op->c);
    cc_send(&req);
}

static void marked_done(void *arg, int status,
                        const struct cc_store_result *res)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };

    if (!op_alive(op))
        return;
    if (status != CC_OK) {
        storage_fail(op, status, res);
        return;
    }
    cc_sbuf_printf(&b, "{\"marked_read\": %lld}", (long long)res->count);
    respond_sbuf(op, 200, &b);
    op_free(op);
}

/* The pipeline's answer to a read mark: {"marked_read": n}. */
static void read_sent(void *arg, const struct cc_send_result *r)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };

    if (!op_alive(op))
        return;
    if (r->outcome == CC_SEND_REFUSED) {
        fail(op, r->status, r->error);
        return;
    }
    cc_sbuf_printf(&b, "{\"marked_read\": %lld}", (long long)r->count);
    respond_sbuf(op, 200, &b);
    op_free(op);
}

/* POST .../mark_read/ with no body (or one without "read"): everything
 * the other party sent is read; {"read": "<id>"}: up to that message, as
 * a WebSocket's read mark (the same pipeline: send.h; "role" chooses the
 * side of a user who is both parties).  A storage plugin before 1.4
 * keeps no marks: everything, its old way. */
static void mark_read(struct op *op, const struct cc_chat *chat)
{
    struct cc_send_req req = {
        .loop = cc_main_loop, .via = CC_VIA_REST, .who = me(op),
        .peer = op->c->peer, .chat_id = op->chat_id,
        .patient_id = chat->patient_id,
        .professional_id = chat->professional_id,
        .kinds = CC_TAKE_READ, .done = read_sent, .arg = op,
    };
    char *text;

    if (!cc_store_can(CC_STORE_MARKS)) {
        check_queued(op, cc_store_mark_read(op->chat_id, op->side,
                                            marked_done, op));
        return;
    }
    if (!json_object_get(op->body, "read"))
        json_object_set_new(op->body, "read", json_null());
    text = json_dumps(op->body, JSON_COMPACT);
    if (!text)
        abort();
    req.text = text;
    req.len = strlen(text);
    op->audited = 1;
    cc_conn_hold(op->c);
    cc_send(&req);
    free(text);
}

/* The chat exists: check the caller is a party, then do the route. */
static void chat_checked(void *arg, int status,
                         const struct cc_store_result *res)
{
    struct op *op = arg;
    const struct cc_principal *p;
    struct cc_sbuf b = { 0 };
    int is_pat, is_pro;

    if (!op_alive(op))
        return;
    if (status != CC_OK) {
        storage_fail(op, status, res);
        return;
    }
    p = me(op);
    is_pat = p->patient_id[0] &&
             strcmp(p->patient_id, res->chat->patient_id) == 0;
    is_pro = p->professional_id[0] &&
             strcmp(p->professional_id, res->chat->professional_id) == 0;
    if (!is_pat && !is_pro) {
        op->audit_as = "access_denied";
        fail(op, 404, CC_ERR_NOT_FOUND); /* other people's chats */
        return;
    }
    op->side = is_pat && is_pro ? CC_SIDE_NONE
               : is_pat        ? CC_SIDE_PATIENT
                               : CC_SIDE_PROFESSIONAL;
    switch (op->route) {
    case R_CHAT:
        cc_json_chat(&b, res->chat);
        respond_sbuf(op, 200, &b);
        op_free(op);
        break;
    case R_MESSAGES:
        list_messages(op);
        break;
    case R_SEND:
        send_message(op, res->chat);
        break;
    default:
        mark_read(op, res->chat);
        break;
    }
}

static void with_chat(struct op *op)
{
    struct cc_viewer v = viewer_of(op);

    check_queued(op, cc_store_chat_get(op->chat_id, &v, chat_checked, op));
}

/* ------------------------------------------------------------- admin */

/* The registration's answer: what was registered, with the profile's
 * owner as storage has it now. */
static void profile_answer(struct op *op)
{
    char *out;

    json_object_del(op->body, "rebind");
    if (json_is_null(json_object_get(op->body, "display_name")))
        json_object_del(op->body, "display_name");
    out = json_dumps(op->body, JSON_COMPACT | JSON_SORT_KEYS);
    if (!out)
        abort();
    audit(op, NULL, 201);
    cc_conn_respond(op->c, 201, NULL, out, strlen(out));
    free(out);
    op_free(op);
}

static int profile_side(const struct op *op)
{
    json_t *kind = json_object_get(op->body, "kind");

    return cc_role_parse(json_string_value(kind), json_string_length(kind));
}

static const char *body_str(const struct op *op, const char *key)
{
    return json_string_value(json_object_get(op->body, key));
}

static void profile_named(void *arg, int status,
                          const struct cc_store_result *res)
{
    struct op *op = arg;

    if (!op_alive(op))
        return;
    if (status != CC_OK)
        storage_fail(op, status, res);
    else
        profile_answer(op);
}

/* The display name last (since 1.4). */
static void profile_name(struct op *op)
{
    const char *name = body_str(op, "display_name");

    if (!name || !cc_store_can(CC_STORE_OWNERS)) {
        json_object_del(op->body, "display_name");
        profile_answer(op);
        return;
    }
    check_queued(op, cc_store_profile_name_set(profile_side(op),
                                               body_str(op, "id"), name,
                                               profile_named, op));
}

static void profile_moved(void *arg, int status,
                          const struct cc_store_result *res)
{
    struct op *op = arg;

    if (!op_alive(op))
        return;
    if (status != CC_OK) {
        storage_fail(op, status, res);
        return;
    }
    cc_auth_forget_profile(profile_side(op), body_str(op, "id"));
    profile_name(op);
}

static void profile_done(void *arg, int status,
                         const struct cc_store_result *res)
{
    struct op *op = arg;
    const char *user = body_str(op, "user_id");
    const char *owner;

    if (!op_alive(op))
        return;
    if (status != CC_OK) {
        storage_fail(op, status, res);
        return;
    }
    owner = cc_store_owner(res);
    if (user && owner && strcmp(owner, user) != 0) {
        if (!json_is_true(json_object_get(op->body, "rebind"))) {
            fail(op, 409, "Profile belongs to another user; send "
                          "\"rebind\": true to move it to this one");
            return;
        }
        /* An admin moves it, knowingly: a new identity provider's ids. */
        op->audit_as = "profile_rebind";
        check_queued(op, cc_store_profile_owner_set(profile_side(op),
                                                    body_str(op, "id"), user,
                                                    profile_moved, op));
        return;
    }
    if (owner && !user)
        json_object_set_new(op->body, "user_id", json_string(owner));
    profile_name(op);
}

/* POST /chat/profiles/ {"kind": "patient"|"professional"|"provider",
 * "id": uuid, "user_id"?: string, "display_name"?: string, "rebind"?:
 * bool}; admin tokens only.  A profile belongs to the user who first
 * presents it (in a token, or here); another user_id here is a 409 unless
 * "rebind": true moves it (storage plugins since ABI 1.4). */
static void register_profile(struct op *op)
{
    json_t *kind = json_object_get(op->body, "kind");
    json_t *user = json_object_get(op->body, "user_id");
    json_t *name = json_object_get(op->body, "display_name");
    json_t *rebind = json_object_get(op->body, "rebind");
    char id[CC_UUID_LEN + 1];
    int side;

    if (!me(op)->is_admin) {
        fail(op, 403, "Admin privileges required");
        return;
    }
    side = json_is_string(kind) ? cc_role_parse(json_string_value(kind),
                                                json_string_length(kind))
                                : -1;
    if (side < 0) {
        fail(op, 400, "kind must be patient or professional");
        return;
    }
    if (body_uuid(op->body, "id", id) != 1) {
        fail(op, 400, "id must be a UUID");
        return;
    }
    if (user && !json_is_null(user) && !json_is_string(user)) {
        fail(op, 400, "user_id must be a string");
        return;
    }
    if (name && !json_is_null(name) &&
        (!json_is_string(name) || json_string_length(name) == 0 ||
         json_string_length(name) >= CC_NAME_MAX ||
         cc_text_blank(json_string_value(name), json_string_length(name)) ||
         strpbrk(json_string_value(name), "\r\n\t"))) {
        fail(op, 400, "display_name must be a name (at most 200 bytes, "
                      "one line)");
        return;
    }
    if (rebind && !json_is_boolean(rebind)) {
        fail(op, 400, "rebind must be true or false");
        return;
    }
    json_t *echo = json_pack("{s:s, s:s, s:o, s:O, s:O}", "kind",
                             cc_side_name(side), "id", id, "user_id",
                             json_is_string(user) ? json_copy(user)
                                                  : json_null(),
                             "display_name", name && json_is_string(name)
                                                 ? name : json_null(),
                             "rebind", json_is_true(rebind) ? rebind
                                                           : json_false());
    json_decref(op->body);
    op->body = echo;
    user = json_object_get(echo, "user_id"); /* the old one is freed */
    check_queued(op, cc_store_profile_put(
                         side, id,
                         json_is_string(user) ? json_string_value(user) : NULL,
                         profile_done, op));
}

/* ------------------------------------------------------------ tickets */

/* POST /chat/ws-ticket/ (ticket.h): {"ticket": "...", "expires_in": 30}. */
static void ticket_issued(void *arg, int status, const char *ticket)
{
    struct op *op = arg;
    struct cc_sbuf b = { 0 };

    if (!op_alive(op))
        return;
    if (status == CC_E_NOTSUP) {
        fail(op, 501, "Tickets are not supported by this server's storage "
                      "plugin");
        return;
    }
    if (status != CC_OK) {
        storage_fail(op, status, NULL);
        return;
    }
    cc_sbuf_printf(&b, "{\"ticket\": \"%s\", \"expires_in\": %llu}",
                   ticket,
                   (unsigned long long)(cc_srv->lim.ws_ticket_ms / 1000));
    respond_sbuf(op, 200, &b);
    op_free(op);
}

/* --------------------------------------------------------------- entry */

/* Parse a JSON object body.  Returns 0 or -1 after answering. */
static int parse_body(struct op *op)
{
    const struct cc_request *r = op->c->req;
    const struct cc_http_header *ct = cc_http_header(&r->h, "Content-Type");
    json_error_t jerr;

    if (r->body_len == 0) {
        if (op->route != R_SEND)
            op->body = json_object();
        return 0;
    }
    if (!ct || ct->value.n < 16 ||
        strncasecmp(ct->value.p, "application/json", 16) != 0 ||
        (ct->value.n > 16 && ct->value.p[16] != ';' &&
         ct->value.p[16] != ' ')) {
        fail(op, 415, "Content-Type must be application/json");
        return -1;
    }
    if (op->route == R_SEND)
        return 0; /* parsed by the message rules (exact spec errors) */
    op->body = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES,
                          &jerr);
    if (!op->body || !json_is_object(op->body)) {
        fail(op, 400, CC_ERR_JSON);
        return -1;
    }
    return 0;
}

static void run_route(struct op *op)
{
    if (cc_audit_refusing()) {
        fail(op, 503, CC_AUDIT_UNAVAILABLE); /* not served unaudited */
        return;
    }
    switch (op->route) {
    case R_CHATS:
        if (op->c->req->h.method == CC_HTTP_POST)
            open_chat(op);
        else
            list_chats(op);
        break;
    case R_PROFILES:
        register_profile(op);
        break;
    case R_TICKET:
        cc_conn_hold(op->c);
        cc_ticket_issue(me(op), ticket_issued, op);
        break;
    default:
        with_chat(op);
        break;
    }
}

static void authed(void *arg, int status, struct cc_auth_req *req)
{
    struct op *op = arg;

    if (!op_alive(op))
        return;
    if (status == CC_AUTH_RETRY) {
        fail(op, 503, req->error); /* the token may be good: try again */
        return;
    }
    if (status != CC_AUTH_OK) {
        struct cc_sbuf b = { 0 };
        audit(op, "auth_failure", 401);
        cc_json_error(&b, req->error);
        cc_conn_respond(op->c, 401, "WWW-Authenticate: Bearer\r\n", b.p,
                        b.len);
        cc_sbuf_free(&b);
        op_free(op);
        return;
    }
    if (parse_body(op) == 0)
        run_route(op);
}

/* A REST route (router.h): the chat id checked, the token found, then
 * authentication, then the route. */
static void handle(struct cc_conn *c, const struct cc_route_match *m)
{
    const struct rest_route *rr = m->arg;
    struct op *op;
    char token[8192];

    op = calloc(1, sizeof *op);
    if (!op)
        abort();
    op->c = c;
    op->route = rr->route;
    if (m->n_seg &&
        cc_uuid_canon(m->seg[0].p, m->seg[0].n, op->chat_id) < 0) {
        op_free(op);
        cc_conn_respond_error(c, 404, CC_ERR_NOT_FOUND);
        return;
    }
    if (cc_auth_find_token(&c->req->h, 0, token, sizeof token) ==
        CC_TOKEN_NONE) {
        audit(op, "auth_failure", 401);
        cc_conn_respond_lit(c, 401, "WWW-Authenticate: Bearer\r\n",
                            "{\"error\": \"Authentication required\"}");
        op_free(op);
        return;
    }
    cc_auth_req_init(&c->req->auth, ++cc_srv->next_id);
    cc_conn_hold(c);
    cc_auth_run(&c->req->auth, token, strlen(token), c->peer, authed, op);
}

void cc_rest_routes(void)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        cc_route_add(CC_PORT_PUBLIC, routes[i].methods, routes[i].pattern,
                     handle, &routes[i]);
}
