/*
 * ticket.c - WebSocket tickets (see ticket.h).
 */
#include "ticket.h"
#include "host.h"
#include "loop.h"
#include "server.h"
#include "store.h"
#include "timefmt.h"
#include "xalloc.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* One issue or redeem in flight; also its mail, when refused at once. */
struct op {
    struct cc_mail m;
    int status;
    cc_ticket_issued_fn issued;
    cc_ticket_taken_fn taken;
    void *arg;
    char ticket[CC_TICKET_LEN + 1];
};

/* The hex SHA-256 of ticket, what storage keeps. */
static void digest(const char *ticket, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];

    SHA256((const unsigned char *)ticket, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "abcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static void refused_cb(struct cc_loop *on, struct cc_mail *mail)
{
    struct op *op = (struct op *)mail;

    (void)on;
    if (op->issued)
        op->issued(op->arg, op->status, NULL);
    else
        op->taken(op->arg, op->status, NULL);
    free(op);
}

/* A call storage refused at once: answered from the loop, not inside. */
static void refused(struct op *op, int status)
{
    op->status = status;
    cc_loop_post(cc_main_loop, &op->m, refused_cb);
}

static void put_done(void *arg, int status, const struct cc_store_result *res)
{
    struct op *op = arg;

    (void)res;
    op->issued(op->arg, status, status == CC_OK ? op->ticket : NULL);
    OPENSSL_cleanse(op->ticket, sizeof op->ticket);
    free(op);
}

void cc_ticket_issue(const struct cc_principal *who,
                     cc_ticket_issued_fn issued, void *arg)
{
    struct op *op = cc_xcalloc(1, sizeof *op);
    unsigned char raw[32];
    char id[65];
    struct cc_ticket t = { .user_id = who->user_id, .is_admin = who->is_admin,
                           .token_expires_at = who->expires_at };
    int rc;

    op->issued = issued;
    op->arg = arg;
    if (RAND_bytes(raw, sizeof raw) != 1) {
        refused(op, CC_E_FAIL);
        return;
    }
    b64url(raw, sizeof raw, op->ticket);
    OPENSSL_cleanse(raw, sizeof raw);
    digest(op->ticket, CC_TICKET_LEN, id);
    t.id = id;
    t.patient_id = who->patient_id[0] ? who->patient_id : NULL;
    t.professional_id = who->professional_id[0] ? who->professional_id
                                                : NULL;
    t.expires_at_us = cc_time_now_us() +
                      (int64_t)cc_srv->lim.ws_ticket_ms * 1000;
    rc = cc_store_ticket_put(&t, put_done, op);
    if (rc != CC_OK)
        refused(op, rc);
}

static void take_done(void *arg, int status, const struct cc_store_result *res)
{
    struct op *op = arg;
    const struct cc_ticket *t =
        status == CC_OK && CC_HAS_MEMBER(res, struct cc_store_result, ticket)
            ? res->ticket : NULL;
    struct cc_principal who = { .expires_at = 0 };

    if (!t) {
        op->taken(op->arg, status == CC_OK ? CC_E_NOTFOUND : status, NULL);
        free(op);
        return;
    }
    snprintf(who.user_id, sizeof who.user_id, "%s", t->user_id);
    snprintf(who.patient_id, sizeof who.patient_id, "%s",
             t->patient_id ? t->patient_id : "");
    snprintf(who.professional_id, sizeof who.professional_id, "%s",
             t->professional_id ? t->professional_id : "");
    who.is_admin = t->is_admin;
    who.expires_at = t->token_expires_at;
    op->taken(op->arg, CC_OK, &who);
    free(op);
}

void cc_ticket_redeem(const char *ticket, size_t len,
                      cc_ticket_taken_fn taken, void *arg)
{
    struct op *op = cc_xcalloc(1, sizeof *op);
    char id[65];
    int rc;

    op->taken = taken;
    op->arg = arg;
    if (len != CC_TICKET_LEN) {
        refused(op, CC_E_NOTFOUND); /* not one of ours */
        return;
    }
    digest(ticket, len, id);
    rc = cc_store_ticket_take(id, cc_time_now_us(), take_done, op);
    if (rc != CC_OK)
        refused(op, rc);
}
