/*
 * auth.h - the core's side of authentication: take the bearer token from a
 * request (Authorization header or ?token=), run the auth plugin, record
 * newly seen profiles in storage, and answer with a principal.
 *
 * The core never parses tokens itself.  Loop thread only.
 */
#ifndef CC_AUTH_H
#define CC_AUTH_H

#include <stddef.h>
#include "host.h"

struct cc_http_request;

/* Where the token came from, or did not. */
#define CC_TOKEN_NONE 0
#define CC_TOKEN_HEADER 1
#define CC_TOKEN_QUERY 2

/* Find the token: "Authorization: Bearer X" first, then ?token=X when
 * allow_query.  Copies it into out (NUL-terminated); returns where it
 * came from, or CC_TOKEN_NONE (also for a malformed header or a token
 * longer than out_size - 1). */
int cc_auth_find_token(const struct cc_http_request *r, int allow_query,
                       char *out, size_t out_size);

typedef void (*cc_auth_done_fn)(void *arg, int status,
                                struct cc_auth_req *req);

/* The core's own outcome beside the ABI's: the token may be good, but
 * storage could not record or check its profiles now (503 / try again). */
#define CC_AUTH_RETRY 100

/* Authenticate token.  done(arg, CC_AUTH_OK, CC_AUTH_DENY or
 * CC_AUTH_RETRY, req) is called exactly once, possibly before
 * cc_auth_run returns (synchronous plugins, profiles known).  req is
 * owned by the caller and must outlive the call or be cancelled with
 * cc_auth_cancel.  Before OK the token's profiles are recorded in storage
 * (the first time this process sees each), and with storage of ABI 1.4
 * checked to belong to its user (DENY when another user owns one). */
void cc_auth_run(struct cc_auth_req *req, const char *token, size_t len,
                 const char *remote, cc_auth_done_fn done, void *arg);

/* The request's connection is gone: forget it (no callback follows). */
void cc_auth_cancel(struct cc_auth_req *req);

/* Host hooks for pending (asynchronous) auth plugins. */
cc_auth_req *cc_auth_lookup(uint64_t req_id);
void cc_auth_complete(uint64_t req_id, int status);

/* An admin moved a profile to another user: forget who owned it here
 * (the next token that names it asks storage). */
void cc_auth_forget_profile(int side, const char *profile_id);

void cc_auth_free(void);

#endif
