/*
 * auth.c - tokens to principals through the auth plugin (see auth.h).
 *
 * Pending requests (plugins answering CC_AUTH_PENDING, or waiting for
 * storage to say who owns a profile) are kept in a short list keyed by
 * request id, so a late completion for a connection that has gone finds
 * nothing and is ignored.
 */
#include "auth.h"
#include "audit.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "strhash.h"
#include "timefmt.h"
#include "xalloc.h"

#include <carechat/auth.h>
#include <carechat/storage.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct pending {
    struct cc_auth_req *req;
    cc_auth_done_fn done;
    void *arg;
    char remote[64];            /* for the audit of a refusal */
    int binding;                /* waiting for a profile's owner */
    struct pending *next;
};

static struct pending *pending_list;

/* Profiles seen during this run: an open-addressing table of "side:uuid"
 * keys, cleared when half full (recording again is harmless: profile_put
 * is idempotent).  known once storage recorded it; since ABI 1.4 also who
 * owns it and the display name last written, for OWNER_TTL_MS: an owner
 * an admin moved on another node is seen here within that time. */
#define SEEN_SLOTS 65536
#define OWNER_TTL_MS 60000
struct seen {
    char key[40];               /* "side:uuid"; "" when free */
    int known;                  /* storage said who owns it, at at_ms */
    char *owner;                /* NULL: nobody */
    char *name;                 /* the display name storage has */
    uint64_t at_ms;             /* when owner was learnt */
};
static struct seen *seen;
static size_t n_seen;

/* Read a profile's owner from storage (profile_put binds an unowned one
 * to the user who presents it first). */
struct bind_op {
    uint64_t req_id;
    char key[40];
};

int cc_auth_find_token(const struct cc_http_request *r, int allow_query,
                       char *out, size_t out_size)
{
    const struct cc_http_header *h = cc_http_header(r, "Authorization");

    if (h) {
        const char *v = h->value.p;
        size_t n = h->value.n;
        if (n > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
            v += 7;
            n -= 7;
            while (n && *v == ' ') {
                v++;
                n--;
            }
            if (n == 0 || n >= out_size)
                return CC_TOKEN_NONE;
            memcpy(out, v, n);
            out[n] = '\0';
            return CC_TOKEN_HEADER;
        }
    }
    if (allow_query) {
        long n = cc_http_query_param(r->query, "token", out, out_size);
        if (n > 0)
            return CC_TOKEN_QUERY;
    }
    return CC_TOKEN_NONE;
}

static uint64_t now_ms(void)
{
    return cc_time_mono_ns() / 1000000;
}

static void seen_clear(void)
{
    for (size_t i = 0; seen && i < SEEN_SLOTS; i++) {
        free(seen[i].owner);
        free(seen[i].name);
    }
    if (seen)
        memset(seen, 0, SEEN_SLOTS * sizeof *seen);
    n_seen = 0;
}

/* The entry of key, added when absent (*added set then). */
static struct seen *seen_get(const char *key, int *added)
{
    uint32_t i;

    *added = 0;
    if (!seen)
        seen = cc_xcalloc(SEEN_SLOTS, sizeof *seen);
    if (n_seen >= SEEN_SLOTS / 2)
        seen_clear();
    for (i = cc_strhash(key) & (SEEN_SLOTS - 1); seen[i].key[0];
         i = (i + 1) & (SEEN_SLOTS - 1))
        if (strcmp(seen[i].key, key) == 0)
            return &seen[i];
    memcpy(seen[i].key, key, strlen(key) + 1); /* key is at most 39 bytes */
    n_seen++;
    *added = 1;
    return &seen[i];
}

static void key_of(char key[40], int side, const char *id)
{
    key[0] = (char)('0' + side);
    key[1] = ':';
    memcpy(key + 2, id, CC_UUID_LEN + 1);
}

static void put_done(void *arg, int status, const struct cc_store_result *res)
{
    (void)arg;
    if (status != CC_OK)
        cc_log(CC_LOG_WARN, "auth", "recording a profile failed: %s",
               res->error ? res->error : "storage error");
}

/* The token's display name for the profile, written when storage has
 * another (once per run and change). */
static void record_name(struct seen *e, int side, const char *id,
                        const char *name)
{
    if (!name[0] || (e->name && strcmp(e->name, name) == 0))
        return;
    free(e->name);
    e->name = strdup(name);
    if (!e->name)
        abort();
    if (cc_store_profile_name_set(side, id, name, put_done, NULL) != CC_OK)
        cc_log(CC_LOG_WARN, "auth", "storage busy: name not recorded");
}

static struct pending **find_pending(uint64_t id);
static void finish(struct cc_auth_req *req, int status, cc_auth_done_fn done,
                   void *arg, const char *remote);

/* A token whose user is not the owner of a profile it names: refused,
 * audited (who tried, with which claims). */
static int refuse_profile(struct cc_auth_req *req, const char *remote)
{
    char q[2 * CC_USER_ID_MAX];

    cc_log(CC_LOG_WARN, "auth", "%s: user %s presented a profile that "
           "belongs to another user: refused", remote,
           cc_log_q(q, sizeof q, req->principal.user_id));
    cc_audit_log("profile_denied", "denied", 0, remote, &req->principal,
                 NULL, NULL);
    snprintf(req->error, sizeof req->error, "Token's profile belongs to "
             "another user");
    return CC_AUTH_DENY;
}

static void owner_done(void *arg, int status,
                       const struct cc_store_result *res)
{
    struct bind_op *b = arg;
    struct pending **pp = find_pending(b->req_id), *p;
    const char *owner = status == CC_OK ? cc_store_owner(res) : NULL;
    struct seen *e;
    int added;

    if (status == CC_OK) {
        e = seen_get(b->key, &added);
        free(e->owner);
        e->owner = owner ? strdup(owner) : NULL;
        if (owner && !e->owner)
            abort();
        e->known = 1;
        e->at_ms = now_ms();
    } else {
        cc_log(CC_LOG_WARN, "auth", "cannot read a profile's owner: %s",
               res->error ? res->error : "storage error");
    }
    free(b);
    if (!pp || !(*pp)->binding)
        return; /* its connection went away */
    p = *pp;
    *pp = p->next;
    if (status != CC_OK) {
        snprintf(p->req->error, sizeof p->req->error, "Storage unavailable; "
                 "try again");
        p->done(p->arg, CC_AUTH_RETRY, p->req);
    } else {
        finish(p->req, CC_AUTH_OK, p->done, p->arg, p->remote);
    }
    free(p);
}

/* Are the token's profiles recorded, and (storage 1.4) its user's?
 * CC_AUTH_OK, CC_AUTH_DENY or CC_AUTH_RETRY now, or CC_AUTH_PENDING when
 * storage was asked (owner_done goes on).  A chat with a profile needs
 * it in storage: the first token that names one waits for it there. */
static int check_owners(struct cc_auth_req *req, const char *remote)
{
    int bound = cc_store_can(CC_STORE_OWNERS);
    const struct cc_principal *p = &req->principal;
    const char *ids[] = { NULL, p->patient_id, p->professional_id };
    char key[40];
    struct bind_op *b;
    struct seen *e;
    int added;

    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        if (!ids[side][0])
            continue;
        key_of(key, side, ids[side]);
        e = seen_get(key, &added);
        if (e->known && (!bound || now_ms() - e->at_ms < OWNER_TTL_MS)) {
            if (bound && e->owner && strcmp(e->owner, p->user_id) != 0)
                return refuse_profile(req, remote);
            if (bound)
                record_name(e, side, ids[side], p->name);
            continue;
        }
        b = cc_xcalloc(1, sizeof *b);
        b->req_id = req->id;
        memcpy(b->key, key, sizeof key);
        if (cc_store_profile_put(side, ids[side], p->user_id, owner_done,
                                 b) != CC_OK) {
            free(b);
            snprintf(req->error, sizeof req->error, "Server busy; try "
                     "again");
            return CC_AUTH_RETRY;
        }
        return CC_AUTH_PENDING;
    }
    return CC_AUTH_OK;
}

/* The plugin's verdict; with storage 1.4, the profiles' owners next. */
static void finish(struct cc_auth_req *req, int status, cc_auth_done_fn done,
                   void *arg, const char *remote)
{
    if (status == CC_AUTH_OK && !req->principal.user_id[0]) {
        cc_log(CC_LOG_ERROR, "auth", "auth plugin accepted a token without "
               "setting a user id; refusing it");
        status = CC_AUTH_DENY;
        snprintf(req->error, sizeof req->error, "Token has no user id");
    }
    if (status == CC_AUTH_OK) {
        status = check_owners(req, remote);
        if (status == CC_AUTH_PENDING) {
            struct pending *p = cc_xcalloc(1, sizeof *p);
            p->req = req;
            p->done = done;
            p->arg = arg;
            p->binding = 1;
            snprintf(p->remote, sizeof p->remote, "%s", remote);
            p->next = pending_list;
            pending_list = p;
            return;
        }
    }
    if (status != CC_AUTH_OK && status != CC_AUTH_RETRY) {
        status = CC_AUTH_DENY;
        if (!req->error[0])
            snprintf(req->error, sizeof req->error, "Invalid token");
    }
    done(arg, status, req);
}

void cc_auth_run(struct cc_auth_req *req, const char *token, size_t len,
                 const char *remote, cc_auth_done_fn done, void *arg)
{
    struct cc_auth_input in = {
        .struct_size = sizeof in,
        .token = token,
        .token_len = len,
        .remote_addr = remote,
        .req_id = req->id,
    };
    int rc = cc_srv->au->authenticate(cc_srv->auth.inst, &in, req);

    if (rc == CC_AUTH_PENDING) {
        struct pending *p = cc_xcalloc(1, sizeof *p);
        p->req = req;
        p->done = done;
        p->arg = arg;
        snprintf(p->remote, sizeof p->remote, "%s", remote ? remote : "");
        p->next = pending_list;
        pending_list = p;
        return;
    }
    finish(req, rc == CC_AUTH_OK ? CC_AUTH_OK : CC_AUTH_DENY, done, arg,
           remote ? remote : "");
}

static struct pending **find_pending(uint64_t id)
{
    struct pending **pp;

    for (pp = &pending_list; *pp; pp = &(*pp)->next)
        if ((*pp)->req->id == id)
            return pp;
    return NULL;
}

void cc_auth_cancel(struct cc_auth_req *req)
{
    struct pending **pp = find_pending(req->id), *p;

    if (!pp)
        return;
    p = *pp;
    *pp = p->next;
    if (!p->binding && CC_HAS_MEMBER(cc_srv->au, struct cc_auth_api,
                                     cancel) && cc_srv->au->cancel)
        cc_srv->au->cancel(cc_srv->auth.inst, req->id);
    free(p);
}

cc_auth_req *cc_auth_lookup(uint64_t req_id)
{
    struct pending **pp = find_pending(req_id);

    return pp && !(*pp)->binding ? (*pp)->req : NULL;
}

void cc_auth_complete(uint64_t req_id, int status)
{
    struct pending **pp = find_pending(req_id), *p;

    if (!pp || (*pp)->binding)
        return; /* its connection went away: ignored by design */
    p = *pp;
    *pp = p->next;
    finish(p->req, status, p->done, p->arg, p->remote);
    free(p);
}

void cc_auth_forget_profile(int side, const char *profile_id)
{
    char key[40];
    struct seen *e;
    int added;

    if (!profile_id || strlen(profile_id) != CC_UUID_LEN)
        return;
    key_of(key, side, profile_id);
    e = seen_get(key, &added);
    e->known = 0;
}

void cc_auth_free(void)
{
    while (pending_list) {
        struct pending *p = pending_list;
        pending_list = p->next;
        free(p);
    }
    seen_clear();
    free(seen);
    seen = NULL;
}
