/*
 * carechat/auth.h - the authentication interface (CC_KIND_AUTH).
 *
 * An auth plugin turns a bearer token into a principal.  authenticate()
 * answers at once or later:
 *
 *  CC_AUTH_OK       the token is good; the principal was set through the
 *                   host's auth_set_* calls on req (at least a user id).
 *  CC_AUTH_DENY     the token is bad; auth_set_error says why.
 *  CC_AUTH_DECLINE  not a token this plugin understands; the next auth
 *                   plugin decides (the last one's decline is a deny).
 *  CC_AUTH_PENDING  the answer comes later through host->auth_lookup and
 *                   host->auth_complete with in->req_id; a completion for a
 *                   request that is gone is ignored by the host.
 *
 * The token is a secret: never log it, not even in part.
 */
#ifndef CARECHAT_AUTH_H
#define CARECHAT_AUTH_H

#include <carechat/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CC_AUTH_API_VERSION 1

#define CC_AUTH_OK 0
#define CC_AUTH_DENY 1
#define CC_AUTH_DECLINE 2
#define CC_AUTH_PENDING 3

struct cc_auth_input {
    uint32_t struct_size;
    const char *token;      /* the raw token, without "Bearer " */
    size_t token_len;
    const char *remote_addr; /* client address as text, for the log */
    uint64_t req_id;        /* for CC_AUTH_PENDING completions */
};

struct cc_auth_api {
    uint32_t struct_size;
    int (*authenticate)(void *inst, const struct cc_auth_input *in,
                        cc_auth_req *req);
    /* The connection behind a pending request went away.  May be NULL. */
    void (*cancel)(void *inst, uint64_t req_id);
};

#ifdef __cplusplus
}
#endif

#endif /* CARECHAT_AUTH_H */
