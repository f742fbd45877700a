/*
 * tokcache.h - tokens an auth plugin accepted lately, kept by the SHA-256
 * of their bytes together with their parsed claims.  A token seen again
 * skips the parse and the signature check; its claims are still checked
 * again, against the time now (exp, nbf, iss, aud, ids), by the caller.
 *
 * Why a hit answers what a full check would: equal digests mean equal
 * bytes (SHA-256 is collision resistant), and the same bytes under the
 * same keys pass or fail the signature check alike.  So a plugin whose
 * keys can change (jwks after a refresh) empties the cache when they do.
 * Only accepted tokens go in, so bad tokens cannot push good ones out;
 * the table is bounded (four entries per set, the oldest of a set goes
 * first).  The digest, not the token, is kept (no bearer token stays in
 * memory longer than its request), and of the claims only those that are
 * checked (cc_tokcache_keep).  One thread at a time.
 */
#ifndef CC_TOKCACHE_H
#define CC_TOKCACHE_H

#include "claims.h"

#include <carechat/plugin.h>

#include <jansson.h>
#include <stddef.h>

#define CC_TOKCACHE_KEY 32 /* SHA-256 */
#define CC_TOKCACHE_DEFAULT 8192
#define CC_TOKCACHE_MAX (1L << 20)

struct cc_tokcache;

/* A cache of about n tokens (rounded down to a power of two, at least
 * four); NULL when n is 0 or memory is short (then nothing is cached). */
struct cc_tokcache *cc_tokcache_new(size_t n);
void cc_tokcache_free(struct cc_tokcache *tc);

/* The key of tok[0..len): 0, or -1 when the digest failed. */
int cc_tokcache_key(const struct cc_tokcache *tc, const char *tok,
                    size_t len, unsigned char key[CC_TOKCACHE_KEY]);

/* The claims of an accepted token with this key (borrowed: valid until
 * the next put, drop or clear), or NULL. */
json_t *cc_tokcache_get(struct cc_tokcache *tc,
                        const unsigned char key[CC_TOKCACHE_KEY]);

/* Keep claims (a reference is taken) for key. */
void cc_tokcache_put(struct cc_tokcache *tc,
                     const unsigned char key[CC_TOKCACHE_KEY],
                     json_t *claims);

/* Keep, for key, only what cc_claims_apply() reads of claims under conf
 * (cc_claims_subset); nothing is kept when memory is short. */
void cc_tokcache_keep(struct cc_tokcache *tc,
                      const unsigned char key[CC_TOKCACHE_KEY],
                      const struct cc_claims_conf *conf, json_t *claims);

/* Forget key (its claims no longer pass), or everything. */
void cc_tokcache_drop(struct cc_tokcache *tc,
                      const unsigned char key[CC_TOKCACHE_KEY]);
void cc_tokcache_clear(struct cc_tokcache *tc);

/* Its hits and misses for GET /metrics (ABI 1.3 metrics(); tc may be
 * NULL: the cache is off, nothing is emitted). */
void cc_tokcache_metrics(const struct cc_tokcache *tc, cc_metric_cb emit,
                         void *arg);

/* The [auth] key token_cache: 1 when key is it (*n set, or *reason when
 * the value is bad), 0 when key is another. */
int cc_tokcache_conf(const char *key, const char *value, long *n,
                     const char **reason);

/* Answer in from the cache, when tc is not NULL: CC_AUTH_OK with the
 * principal set, CC_AUTH_DENY when the claims no longer pass (the entry
 * is dropped; the message is also in why), or CC_AUTH_DECLINE on a miss.
 * *keyed says whether key holds the token's key, for a later put. */
int cc_tokcache_check(struct cc_tokcache *tc,
                      const struct cc_claims_conf *conf,
                      const struct cc_host_api *host,
                      const struct cc_auth_input *in, cc_auth_req *req,
                      unsigned char key[CC_TOKCACHE_KEY], int *keyed,
                      char *why, size_t why_size);

#endif
