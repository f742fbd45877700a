/*
 * carechat/notify.h - the notify interface (CC_KIND_NOTIFY, since ABI
 * 1.4): reaching a chat's party who has not read a message (a push
 * gateway, a pager, SMS, a webhook).
 *
 * The host decides when: a message still unread by its recipient's side
 * some time after it was stored (the [notify] section's delay; at once
 * for an urgent one, then again while unread), once per chat and
 * recipient until they read.  What is due lives in storage, which hands
 * each due notification to exactly one node (struct cc_storage_api
 * notify_claim), so it survives restarts and is sent once however many
 * nodes run.  The plugin only delivers: send() hands it one notification
 * and it answers through cb, exactly once, on the loop thread, never
 * from inside send().  A failed delivery is tried again later by the
 * host, under the same notification id (receivers deduplicate by it).
 *
 * A notification carries ids and counts: never message content, never a
 * token.  The app that receives it fetches the messages itself.
 *
 * All calls are made on the loop thread.  The strings of a notification
 * are borrowed for the call of send() only: copy what is kept.
 */
#ifndef CARECHAT_NOTIFY_H
#define CARECHAT_NOTIFY_H

#include <carechat/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CC_NOTIFY_API_VERSION 1

/* One notification: the chat's party (side) who has unread messages. */
struct cc_notification {
    uint32_t struct_size;
    const char *id;              /* UUID; the same on every retry */
    const char *chat_id;
    int32_t side;                /* the recipient: CC_SIDE_PATIENT or
                                    CC_SIDE_PROFESSIONAL (storage.h) */
    const char *profile_id;      /* the recipient's profile */
    const char *user_id;         /* the user that profile belongs to, or
                                    NULL when none is known yet */
    const char *first_unread_id; /* the oldest message they have not read */
    int64_t unread;              /* messages they have not read */
    int32_t urgent;              /* 1 when one of them is urgent */
    int64_t episode_at_us;       /* when the first of them was stored */
    int32_t attempts;            /* failed tries of this id so far */
    int32_t sent;                /* notifications of this episode sent
                                    before this one */
    int64_t at_us;               /* now, as the host sends it */
};

/* The outcome of one send(): CC_OK delivered; CC_E_UNAVAIL or CC_E_FAIL
 * not delivered, try again later; CC_E_INVAL never deliverable (the
 * host drops it). */
typedef void (*cc_notify_cb)(void *arg, int status);

struct cc_notify_api {
    uint32_t struct_size;
    /* Deliver n.  Returns CC_OK and calls cb(arg, status) exactly once
     * later, or returns an error (CC_E_BUSY: too many in flight) and
     * never calls cb. */
    int (*send)(void *inst, const struct cc_notification *n,
                cc_notify_cb cb, void *arg);
};

#ifdef __cplusplus
}
#endif

#endif /* CARECHAT_NOTIFY_H */
