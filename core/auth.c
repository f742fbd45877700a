/*
 * auth.c - tokens to principals through the auth plugin (see auth.h).
 *
 * Pending requests (plugins answering CC_AUTH_PENDING) are kept in a short
 * list keyed by request id, so a late completion for a connection that has
 * gone finds nothing and is ignored.
 */
#include "auth.h"
#include "http.h"
#include "log.h"
#include "server.h"
#include "store.h"
#include "strhash.h"

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
    struct pending *next;
};

static struct pending *pending_list;

/* Profiles already recorded during this run: a small open-addressing set
 * of "side:uuid" keys, cleared when it fills (re-recording is harmless,
 * profile_put is idempotent). */
#define SEEN_SLOTS 65536
static char (*seen)[40];
static size_t n_seen;

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

/* 1 when key was not in the set (and is now). */
static int seen_add(const char *key)
{
    uint32_t i;

    if (!seen) {
        seen = calloc(SEEN_SLOTS, sizeof *seen);
        if (!seen)
            abort();
    }
    if (n_seen >= SEEN_SLOTS / 2) {
        memset(seen, 0, SEEN_SLOTS * sizeof *seen);
        n_seen = 0;
    }
    for (i = cc_strhash(key) & (SEEN_SLOTS - 1); seen[i][0];
         i = (i + 1) & (SEEN_SLOTS - 1))
        if (strcmp(seen[i], key) == 0)
            return 0;
    memcpy(seen[i], key, strlen(key) + 1); /* key is at most 39 bytes */
    n_seen++;
    return 1;
}

static void profile_put_done(void *arg, int status,
                             const struct cc_store_result *res)
{
    if (status != CC_OK)
        cc_log(CC_LOG_WARN, "auth", "recording a profile failed: %s",
               res->error ? res->error : "storage error");
}

static void record_profile(int side, const char *id, const char *user)
{
    char key[40];

    if (!id[0])
        return;
    key[0] = (char)('0' + side);
    key[1] = ':';
    memcpy(key + 2, id, CC_UUID_LEN + 1);
    if (!seen_add(key))
        return;
    if (cc_store_profile_put(side, id, user, profile_put_done, NULL) !=
        CC_OK)
        cc_log(CC_LOG_WARN, "auth", "storage busy: profile not recorded");
}

static void finish(struct cc_auth_req *req, int status, cc_auth_done_fn done,
                   void *arg)
{
    if (status == CC_AUTH_OK && !req->principal.user_id[0]) {
        cc_log(CC_LOG_ERROR, "auth", "auth plugin accepted a token without "
               "setting a user id; refusing it");
        status = CC_AUTH_DENY;
        snprintf(req->error, sizeof req->error, "Token has no user id");
    }
    if (status == CC_AUTH_OK) {
        record_profile(CC_SIDE_PATIENT, req->principal.patient_id,
                       req->principal.user_id);
        record_profile(CC_SIDE_PROFESSIONAL, req->principal.professional_id,
                       req->principal.user_id);
    } else {
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
        struct pending *p = calloc(1, sizeof *p);
        if (!p)
            abort();
        p->req = req;
        p->done = done;
        p->arg = arg;
        p->next = pending_list;
        pending_list = p;
        return;
    }
    finish(req, rc == CC_AUTH_OK ? CC_AUTH_OK : CC_AUTH_DENY, done, arg);
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
    free(p);
    if (CC_HAS_MEMBER(cc_srv->au, struct cc_auth_api, cancel) &&
        cc_srv->au->cancel)
        cc_srv->au->cancel(cc_srv->auth.inst, req->id);
}

cc_auth_req *cc_auth_lookup(uint64_t req_id)
{
    struct pending **pp = find_pending(req_id);

    return pp ? (*pp)->req : NULL;
}

void cc_auth_complete(uint64_t req_id, int status)
{
    struct pending **pp = find_pending(req_id), *p;

    if (!pp)
        return; /* its connection went away: ignored by design */
    p = *pp;
    *pp = p->next;
    finish(p->req, status, p->done, p->arg);
    free(p);
}

void cc_auth_free(void)
{
    while (pending_list) {
        struct pending *p = pending_list;
        pending_list = p->next;
        free(p);
    }
    free(seen);
    seen = NULL;
    n_seen = 0;
}
