/*
 * tokcache.c - accepted tokens by digest (see tokcache.h).
 */
#include "tokcache.h"
#include "pconf.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

struct entry {
    unsigned char key[CC_TOKCACHE_KEY];
    json_t *claims; /* NULL: empty */
};

struct set {
    struct entry e[WAYS];
    unsigned hand; /* the next to overwrite when the set is full */
};

struct cc_tokcache {
    EVP_MD *sha256; /* fetched once: no provider lookup per token */
    uint64_t hits, misses;
    size_t n_sets;  /* a power of two */
    struct set sets[];
};

struct cc_tokcache *cc_tokcache_new(size_t n)
{
    struct cc_tokcache *tc;
    size_t s = 1;

    if (n < WAYS)
        return NULL;
    while (s * 2 <= n / WAYS)
        s *= 2;
    tc = calloc(1, sizeof *tc + s * sizeof(struct set));
    if (!tc)
        return NULL;
    tc->n_sets = s;
    tc->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!tc->sha256) {
        free(tc);
        return NULL;
    }
    return tc;
}

void cc_tokcache_clear(struct cc_tokcache *tc)
{
    if (!tc)
        return;
    for (size_t i = 0; i < tc->n_sets; i++)
        for (int w = 0; w < WAYS; w++) {
            json_decref(tc->sets[i].e[w].claims);
            memset(&tc->sets[i].e[w], 0, sizeof tc->sets[i].e[w]);
        }
}

void cc_tokcache_free(struct cc_tokcache *tc)
{
    if (!tc)
        return;
    cc_tokcache_clear(tc);
    EVP_MD_free(tc->sha256);
    free(tc);
}

int cc_tokcache_key(const struct cc_tokcache *tc, const char *tok,
                    size_t len, unsigned char key[CC_TOKCACHE_KEY])
{
    unsigned int n = 0;

    if (!EVP_Digest(tok, len, key, &n, tc->sha256, NULL) ||
        n != CC_TOKCACHE_KEY)
        return -1;
    return 0;
}

static struct set *set_of(struct cc_tokcache *tc,
                          const unsigned char key[CC_TOKCACHE_KEY])
{
    uint32_t h;

    memcpy(&h, key, sizeof h); /* a digest: its bits are uniform */
    return &tc->sets[h & (tc->n_sets - 1)];
}

static struct entry *find(struct cc_tokcache *tc,
                          const unsigned char key[CC_TOKCACHE_KEY])
{
    struct set *set = set_of(tc, key);

    for (int w = 0; w < WAYS; w++)
        if (set->e[w].claims &&
            CRYPTO_memcmp(set->e[w].key, key, CC_TOKCACHE_KEY) == 0)
            return &set->e[w];
    return NULL;
}

json_t *cc_tokcache_get(struct cc_tokcache *tc,
                        const unsigned char key[CC_TOKCACHE_KEY])
{
    struct entry *e = find(tc, key);

    if (e)
        tc->hits++;
    else
        tc->misses++;
    return e ? e->claims : NULL;
}

void cc_tokcache_metrics(const struct cc_tokcache *tc, cc_metric_cb emit,
                         void *arg)
{
    if (!tc)
        return;
    emit(arg, "token_cache_hits_total", "Tokens accepted from the cache "
         "of accepted tokens.", CC_METRIC_COUNTER, (double)tc->hits);
    emit(arg, "token_cache_misses_total", "Tokens checked in full.",
         CC_METRIC_COUNTER, (double)tc->misses);
}

void cc_tokcache_put(struct cc_tokcache *tc,
                     const unsigned char key[CC_TOKCACHE_KEY],
                     json_t *claims)
{
    struct set *set = set_of(tc, key);
    struct entry *e = find(tc, key);

    if (!e) {
        e = &set->e[set->hand];
        set->hand = (set->hand + 1) % WAYS;
    }
    json_incref(claims);
    json_decref(e->claims);
    memcpy(e->key, key, CC_TOKCACHE_KEY);
    e->claims = claims;
}

void cc_tokcache_keep(struct cc_tokcache *tc,
                      const unsigned char key[CC_TOKCACHE_KEY],
                      const struct cc_claims_conf *conf, json_t *claims)
{
    json_t *kept = cc_claims_subset(conf, claims);

    if (kept) {
        cc_tokcache_put(tc, key, kept);
        json_decref(kept);
    }
}

void cc_tokcache_drop(struct cc_tokcache *tc,
                      const unsigned char key[CC_TOKCACHE_KEY])
{
    struct entry *e = find(tc, key);

    if (e) {
        json_decref(e->claims);
        memset(e, 0, sizeof *e);
    }
}

int cc_tokcache_conf(const char *key, const char *value, long *n,
                     const char **reason)
{
    if (strcmp(key, "token_cache") != 0)
        return 0;
    if (cc_pconf_long(value, 0, CC_TOKCACHE_MAX, n) < 0)
        *reason = "must be a number of tokens from 0 (off) to 1048576";
    return 1;
}

int cc_tokcache_check(struct cc_tokcache *tc,
                      const struct cc_claims_conf *conf,
                      const struct cc_host_api *host,
                      const struct cc_auth_input *in, cc_auth_req *req,
                      unsigned char key[CC_TOKCACHE_KEY], int *keyed,
                      char *why, size_t why_size)
{
    json_t *claims;
    int rc;

    *keyed = tc && cc_tokcache_key(tc, in->token, in->token_len, key) == 0;
    if (!*keyed || !(claims = cc_tokcache_get(tc, key)))
        return CC_AUTH_DECLINE;
    rc = cc_claims_apply(conf, claims, host->now_real_us(), host, req, why,
                         why_size);
    if (rc != CC_AUTH_OK)
        cc_tokcache_drop(tc, key); /* expired: it stays so */
    return rc;
}
