/*
 * carechat/storage.h - the storage interface (CC_KIND_STORAGE).
 *
 * A storage plugin keeps profiles, chats and messages.  Every operation is
 * asynchronous and follows one contract:
 *
 *  - It returns CC_OK when the request was queued, and then calls cb
 *    exactly once, on the loop thread, never from inside the call that
 *    started it (use host->post for an immediate answer).
 *  - It returns an error (CC_E_BUSY when its queue is full, CC_E_UNAVAIL
 *    when the backend is down) when the request was not queued; cb is then
 *    never called.
 *  - The result passed to cb, and every string in it, is borrowed for the
 *    duration of the callback.
 *  - Messages of one chat are committed in the order message_append was
 *    called for them, and each gets the next per-chat sequence number.
 *
 * Identifiers are canonical lower-case UUID text (36 characters).  Times
 * are microseconds since the Unix epoch.
 */
#ifndef CARECHAT_STORAGE_H
#define CARECHAT_STORAGE_H

#include <carechat/plugin.h>
#include <carechat/notify.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CC_STORAGE_API_VERSION 1

/* The two sides of a chat; also the kind of a profile. */
#define CC_SIDE_NONE 0
#define CC_SIDE_PATIENT 1
#define CC_SIDE_PROFESSIONAL 2

/* Since ABI 1.4: a message's priority. */
#define CC_PRIORITY_NORMAL 0
#define CC_PRIORITY_URGENT 1

/* Since ABI 1.4: the two marks of a chat's side (mark_set). */
#define CC_MARK_READ 1
#define CC_MARK_DELIVERED 2

/* Since ABI 1.4: what became of a notification (notify_done). */
#define CC_NOTIFY_SENT 1    /* delivered */
#define CC_NOTIFY_RETRY 2   /* not delivered: the same id again later */
#define CC_NOTIFY_DROP 3    /* given up: nothing more until they read */

struct cc_message {
    uint32_t struct_size;
    const char *id;         /* message UUID */
    const char *chat_id;
    const char *sender_id;  /* the sender's profile id */
    const char *content;    /* UTF-8, not NUL-terminated: use content_len */
    size_t content_len;
    int64_t created_at_us;
    int64_t seq;            /* per-chat order, from 1; 0 before append */
    int32_t sender_type;    /* CC_SIDE_PATIENT or CC_SIDE_PROFESSIONAL */
    int32_t is_read;        /* read by the other side */
    /* Since ABI 1.2 (present when struct_size covers it): the id the
     * sending client gave the message (a canonical UUID), or NULL.
     * message_append keeps it with the message; an append whose
     * (chat_id, sender_id, client_id) is already stored stores nothing
     * and answers with the stored message (res->duplicate = 1), at any
     * later time. */
    const char *client_id;
    /* Since ABI 1.4 (the host sets them only for plugins built for 1.4
     * or later, and reads them only when struct_size covers them). */
    int32_t priority;       /* CC_PRIORITY_*: kept with the message and
                               returned with it everywhere */
    int64_t notify_due_us;  /* message_append only: when the recipient's
                               side (the other party) is to be notified
                               if it has not read this message by then;
                               0: never (see notify_claim) */
};

struct cc_chat {
    uint32_t struct_size;
    const char *id;
    const char *patient_id;
    const char *professional_id;
    int64_t created_at_us;
    int64_t updated_at_us;  /* last activity: creation or last message */
    int64_t unread_count;   /* messages from the other side the viewer
                               has not marked read; 0 without a viewer */
    const struct cc_message *last_message; /* NULL when no message */
    /* Since ABI 1.4: each side's marks, indexed by CC_SIDE_PATIENT and
     * CC_SIDE_PROFESSIONAL ([CC_SIDE_NONE] is NULL): the message up to
     * which that side has read, and has been delivered, the other
     * party's messages (mark_set); NULL: none yet. */
    const char *read_up_to[3];
    const char *delivered_up_to[3];
};

/* Who is asking: the viewer's profile ids (either may be NULL). */
struct cc_viewer {
    uint32_t struct_size;
    const char *patient_id;
    const char *professional_id;
};

struct cc_chat_query {
    uint32_t struct_size;
    struct cc_viewer viewer;   /* chats where the viewer is either side */
    int64_t before_updated_us; /* cursor: 0 for the first page */
    const char *before_id;     /* cursor tie-break, NULL for first page */
    uint32_t limit;            /* page size, at least 1 */
    /* Since ABI 1.1 (read only when struct_size covers them, and sent
     * only to plugins built for 1.1 or later): the page of chats NEWER
     * than (after_updated_us, after_id), the ones nearest to it, still
     * most recent first; res->more then says newer ones remain. */
    int64_t after_updated_us;  /* 0: not this kind of query */
    const char *after_id;
};

struct cc_message_query {
    uint32_t struct_size;
    const char *chat_id;
    int32_t viewer_side;  /* CC_SIDE_*, decides is_read's meaning */
    int64_t after_seq;    /* > 0: the oldest `limit` messages after it */
    int64_t before_seq;   /* > 0: the newest `limit` messages before it */
    uint32_t limit;       /* neither cursor: the oldest `limit` messages */
    /* Since ABI 1.2 (read only when struct_size covers it, and sent only
     * to plugins built for 1.2 or later): with after_seq and before_seq
     * 0, the oldest `limit` messages after the message with this id;
     * CC_E_NOTFOUND when the chat has no such message. */
    const char *after_id;
};

struct cc_store_result {
    uint32_t struct_size;
    int32_t created;      /* chat_open: 1 when the chat was created */
    int32_t missing_side; /* chat_open CC_E_NOTFOUND: the missing profile */
    int32_t more;         /* lists: 1 when items lie beyond this page in
                             the direction of the query */
    int64_t count;        /* mark_read: messages newly marked;
                             chat_list: the viewer's chats in all;
                             message_list: the chat's messages in all */
    const struct cc_chat *chat;       /* chat_open, chat_get */
    const struct cc_message *message; /* message_append: as stored */
    size_t n_chats;
    const struct cc_chat *const *chats;        /* chat_list */
    size_t n_messages;
    const struct cc_message *const *messages;  /* message_list, ascending */
    const char *error;    /* on failure: a cause for the log, or NULL */
    /* Since ABI 1.2 (read only when struct_size covers it):
     * message_append: 1 when nothing was stored because a message with
     * the same client_id from the same sender is in the chat already;
     * res->message is that message. */
    int32_t duplicate;
    /* Since ABI 1.4 (read only when struct_size covers them). */
    const char *owner;                /* profile_put, profile_get,
                                         profile_owner_set: the user the
                                         profile belongs to, or NULL */
    const struct cc_mark *mark;       /* mark_set */
    const struct cc_ticket *ticket;   /* ticket_take */
    size_t n_notifications;
    const struct cc_notification *const *notifications; /* notify_claim */
};

/* Since ABI 1.4: a mark to move (mark_set). */
struct cc_mark_req {
    uint32_t struct_size;
    const char *chat_id;
    int32_t side;            /* whose mark: the reader, the receiver */
    int32_t kind;            /* CC_MARK_READ or CC_MARK_DELIVERED */
    const char *up_to_id;    /* a message of the chat, either party's;
                                NULL: the chat's newest */
    int64_t at_us;           /* the mark's time */
    int64_t notify_delay_us; /* CC_MARK_READ: when messages of the other
                                party are still unread after the mark, a
                                new notification episode is due this long
                                after the oldest of them was stored (at
                                once when one is urgent); 0: none */
};

/* Since ABI 1.4: a side's mark, as mark_set leaves it. */
struct cc_mark {
    uint32_t struct_size;
    int32_t kind;
    int32_t side;
    const char *up_to_id;    /* NULL: none */
    int64_t up_to_seq;       /* 0: none */
    int64_t at_us;           /* when it last moved */
    int32_t moved;           /* 1 when this call moved it */
};

/* Since ABI 1.4: a WebSocket ticket (the host's POST /chat/ws-ticket/):
 * a principal that may open one WebSocket, once, before expires_at_us. */
struct cc_ticket {
    uint32_t struct_size;
    const char *id;              /* the host's digest of the ticket: at
                                    most 64 characters of [0-9a-f] */
    const char *user_id;
    const char *patient_id;      /* NULL: none */
    const char *professional_id; /* NULL: none */
    int32_t is_admin;
    int64_t token_expires_at;    /* the token's exp, unix seconds; 0 */
    int64_t expires_at_us;
};

/* Since ABI 1.4: which due notifications to hand out (notify_claim). */
struct cc_notify_claim {
    uint32_t struct_size;
    int64_t now_us;
    int64_t lease_us;        /* not handed out again before now + lease,
                                but by notify_done */
    uint32_t limit;
};

/* Since ABI 1.4: what became of one (notify_done). */
struct cc_notify_outcome {
    uint32_t struct_size;
    const char *chat_id;
    int32_t side;            /* the recipient */
    const char *id;          /* the notification's */
    int32_t result;          /* CC_NOTIFY_* */
    int64_t next_due_us;     /* SENT: the next of this episode (an urgent
                                repeat), 0: none until they read; RETRY:
                                when to try the same id again */
};

/* status is CC_OK or a CC_E_* code; res is never NULL. */
typedef void (*cc_store_cb)(void *arg, int status,
                            const struct cc_store_result *res);

struct cc_storage_api {
    uint32_t struct_size;

    /* Record that profile_id of kind side exists (owned by user_id, which
     * may be NULL).  Idempotent; an existing profile keeps its owner.
     * Since 1.4: a profile without an owner takes user_id as its owner
     * (the first user who presents it), and res->owner says who owns it
     * after the call (the host refuses a token that pairs the profile
     * with another user). */
    int (*profile_put)(void *inst, int32_t side, const char *profile_id,
                       const char *user_id, cc_store_cb cb, void *arg);

    /* CC_OK when the profile exists, CC_E_NOTFOUND otherwise.  Since 1.4
     * res->owner is its owner. */
    int (*profile_get)(void *inst, int32_t side, const char *profile_id,
                       cc_store_cb cb, void *arg);

    /* Create the chat between the two profiles, or get the existing one
     * (one chat per pair, race-free).  new_id is used when creating.
     * CC_E_NOTFOUND with res->missing_side when a profile is unknown. */
    int (*chat_open)(void *inst, const char *new_id, const char *patient_id,
                     const char *professional_id, int64_t now_us,
                     cc_store_cb cb, void *arg);

    /* The chat, with last_message and the viewer's unread_count
     * (viewer may be NULL).  CC_E_NOTFOUND when it does not exist. */
    int (*chat_get)(void *inst, const char *chat_id,
                    const struct cc_viewer *viewer, cc_store_cb cb,
                    void *arg);

    /* The viewer's chats, most recent activity first. */
    int (*chat_list)(void *inst, const struct cc_chat_query *q,
                     cc_store_cb cb, void *arg);

    /* Store a message (id, chat_id, sender_id, sender_type, content,
     * created_at_us set by the caller; seq ignored) and bump the chat's
     * updated_at.  res->message is the stored message with its seq. */
    int (*message_append)(void *inst, const struct cc_message *m,
                          cc_store_cb cb, void *arg);

    /* A page of a chat's history, in ascending order. */
    int (*message_list)(void *inst, const struct cc_message_query *q,
                        cc_store_cb cb, void *arg);

    /* Mark read every message of chat_id sent by the side other than
     * reader_side; res->count says how many changed.  (Since 1.4 the
     * host calls mark_set instead.) */
    int (*mark_read)(void *inst, const char *chat_id, int32_t reader_side,
                     cc_store_cb cb, void *arg);

    /* Since ABI 1.3 (may be NULL: no retention).  Delete at most limit
     * of the oldest messages created before before_us (any chat);
     * res->count says how many went, res->more = 1 when more such
     * messages remain.  A chat keeps its seq numbering (a message
     * appended later gets the next seq, never a purged one); its
     * last_message and unread counts are those of what is left. */
    int (*message_purge)(void *inst, int64_t before_us, uint32_t limit,
                         cc_store_cb cb, void *arg);

    /* Since ABI 1.4.  None may be NULL in a plugin built for 1.4. */

    /* An admin moves profile_id of kind side to user_id (creating the
     * profile when it does not exist): the one way a profile changes
     * owner.  res->owner is user_id. */
    int (*profile_owner_set)(void *inst, int32_t side,
                             const char *profile_id, const char *user_id,
                             cc_store_cb cb, void *arg);

    /* Move side's kind mark in m->chat_id forward to m->up_to_id.  A mark
     * only moves forward: a message at or before it leaves it as it is
     * (res->mark->moved = 0, CC_OK).  CC_E_NOTFOUND: no such chat, or
     * up_to_id is not one of its messages.  A CC_MARK_READ mark also
     * moves the side's CC_MARK_DELIVERED mark up to it, and ends the
     * side's notification episode (notify_claim): when messages of the
     * other party remain unread after it, a new episode begins, due as
     * m->notify_delay_us says.  res->mark is the kind's mark after the
     * call; res->count the messages of the other party it newly covers.
     * Marks, message is_read and chat unread_count agree at all times. */
    int (*mark_set)(void *inst, const struct cc_mark_req *m, cc_store_cb cb,
                    void *arg);

    /* Keep ticket t until it is taken or expires (expired tickets may be
     * deleted at any time, by this call for instance). */
    int (*ticket_put)(void *inst, const struct cc_ticket *t, cc_store_cb cb,
                      void *arg);

    /* Take ticket id: res->ticket, deleted in the same step, so that one
     * caller at most, on any node, gets it.  CC_E_NOTFOUND when there is
     * none, it was taken, or it expired before now_us. */
    int (*ticket_take)(void *inst, const char *id, int64_t now_us,
                       cc_store_cb cb, void *arg);

    /* Notifications (carechat/notify.h).  A chat's side has an episode
     * from the first message of the other party it has not read (an
     * append with notify_due_us opens it, due then) until it reads them
     * (mark_set).  An urgent message in an open episode makes it urgent
     * and due no later than its notify_due_us; another message changes
     * nothing.  notify_claim hands out up to q->limit episodes due at
     * q->now_us and not leased, oldest due first, each leased to the
     * caller until now + lease_us, with an id (a new UUID when it has
     * none; kept until notify_done says SENT), the recipient's profile
     * and owner, its oldest unread message and unread count:
     * res->notifications.  Storage shared by several nodes hands each
     * to one of them. */
    int (*notify_claim)(void *inst, const struct cc_notify_claim *q,
                        cc_store_cb cb, void *arg);

    /* Record what became of notification o->id (ignored when its episode
     * has ended since: they read): SENT counts it, and the next one gets
     * a new id, due o->next_due_us (0: none until they read); RETRY
     * counts an attempt and keeps the id, due o->next_due_us; DROP: none
     * until they read.  The lease ends. */
    int (*notify_done)(void *inst, const struct cc_notify_outcome *o,
                       cc_store_cb cb, void *arg);
};

#ifdef __cplusplus
}
#endif

#endif /* CARECHAT_STORAGE_H */
