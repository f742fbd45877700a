/*
 * test_caches.c - the two lookup caches on the handshake path: chat
 * parties (core/chatcache.c) and accepted tokens by digest
 * (plugins/common/tokcache.c).  What a caller relies on: a hit returns
 * exactly what was put, a miss is NULL (never another chat's or token's
 * entry), memory stays bounded, and the newest entry survives.
 */
#include "tap.h"
#include "chatcache.h"
#include "tokcache.h"

#include <carechat/storage.h>

#include <stdio.h>
#include <string.h>

/* A UUID-shaped id from a number and a tag letter. */
static const char *id(char *buf, char tag, unsigned n)
{
    snprintf(buf, 37, "%08x-0000-4000-8000-%c0000000000%c", n, tag, tag);
    return buf;
}

static void put_chat(unsigned n)
{
    char c[37], p[37], q[37];
    struct cc_chat chat = { .struct_size = sizeof chat,
                            .id = id(c, 'c', n),
                            .patient_id = id(p, 'a', n),
                            .professional_id = id(q, 'b', n) };

    cc_chatcache_put(&chat);
}

/* 1 when chat n is cached with its own parties, 0 on a miss, -1 when
 * the entry found is wrong. */
static int chat_state(unsigned n)
{
    char c[37], p[37], q[37];
    const struct cc_chat_parties *e = cc_chatcache_get(id(c, 'c', n));

    if (!e)
        return 0;
    return strcmp(e->chat_id, c) == 0 &&
                   strcmp(e->patient_id, id(p, 'a', n)) == 0 &&
                   strcmp(e->professional_id, id(q, 'b', n)) == 0
               ? 1
               : -1;
}

static void test_chatcache(void)
{
    char c[37];
    int hits = 0, wrong = 0;
    struct cc_chat odd = { .struct_size = sizeof odd, .id = "short",
                           .patient_id = id(c, 'a', 1),
                           .professional_id = id(c, 'b', 1) };

    cc_chatcache_init(0);
    put_chat(1);
    is_int(chat_state(1), 0, "chat cache off: nothing is kept");

    cc_chatcache_init(64);
    is_int(chat_state(1), 0, "empty cache: a miss");
    put_chat(1);
    is_int(chat_state(1), 1, "a chat put is found with its two parties");
    is_int(chat_state(2), 0, "another chat is a miss");
    ok(cc_chatcache_get("short") == NULL, "a non-UUID id is a miss");
    cc_chatcache_put(&odd);
    ok(cc_chatcache_get("short") == NULL, "a non-UUID chat is not kept");
    put_chat(1);
    is_int(chat_state(1), 1, "putting a chat again keeps one entry");

    /* 1,000 chats through a 64-entry cache: at most 64 stay, the last
     * one put always does, and no lookup returns another chat's row. */
    for (unsigned n = 100; n < 1100; n++) {
        put_chat(n);
        if (chat_state(n) != 1)
            wrong++;
    }
    for (unsigned n = 100; n < 1100; n++) {
        int s = chat_state(n);
        hits += s == 1;
        wrong += s < 0;
    }
    is_int(wrong, 0, "every lookup returns its own chat or a miss");
    ok(hits > 0 && hits <= 64, "bounded: %d of 1000 chats kept in 64", hits);
    cc_chatcache_free();
    is_int(chat_state(1099), 0, "freed: a miss");
}

static void test_tokcache(void)
{
    struct cc_tokcache *tc = cc_tokcache_new(16);
    unsigned char k1[CC_TOKCACHE_KEY], k2[CC_TOKCACHE_KEY];
    json_t *claims = json_pack("{s:s}", "user_id", "alice");
    int kept = 0;

    ok(cc_tokcache_new(0) == NULL, "token cache 0: off");
    if (!ok(tc != NULL, "token cache of 16"))
        return;
    is_int(cc_tokcache_key(tc, "a.b.c", 5, k1), 0, "a key is a digest");
    is_int(cc_tokcache_key(tc, "a.b.d", 5, k2), 0, "a second key");
    ok(memcmp(k1, k2, sizeof k1) != 0, "one byte apart: other keys");
    ok(cc_tokcache_get(tc, k1) == NULL, "empty: a miss");
    cc_tokcache_put(tc, k1, claims);
    ok(cc_tokcache_get(tc, k1) == claims, "put: the same claims back");
    ok(cc_tokcache_get(tc, k2) == NULL, "the other token is a miss");
    is_int((int)claims->refcount, 2, "the cache holds a reference");
    cc_tokcache_put(tc, k1, claims);
    is_int((int)claims->refcount, 2, "put again: still one reference");
    cc_tokcache_drop(tc, k1);
    ok(cc_tokcache_get(tc, k1) == NULL, "dropped: a miss");
    is_int((int)claims->refcount, 1, "dropped: reference given back");

    for (unsigned n = 0; n < 1000; n++) {
        char tok[32];
        unsigned char k[CC_TOKCACHE_KEY];

        snprintf(tok, sizeof tok, "tok-%u", n);
        cc_tokcache_key(tc, tok, strlen(tok), k);
        cc_tokcache_put(tc, k, claims);
        if (cc_tokcache_get(tc, k) != claims)
            kept = -10000; /* the newest must be there */
    }
    ok((int)claims->refcount - 1 <= 16,
       "bounded: %d references held for 1000 tokens in 16",
       (int)claims->refcount - 1);
    ok(kept == 0, "the newest token is always found");
    cc_tokcache_clear(tc);
    is_int((int)claims->refcount, 1, "cleared: every reference given back");
    cc_tokcache_put(tc, k2, claims);
    cc_tokcache_free(tc); /* with an entry: ASan checks the release */
    is_int((int)claims->refcount, 1, "freed with entries: references back");
    json_decref(claims);
}

/* What a cache entry holds of a token's claims: the members the checks
 * read, under the configured names, and nothing else. */
static void test_claims_subset(void)
{
    struct cc_claims_conf conf;
    json_t *claims, *kept, *groups = json_array();
    const char *key;
    json_t *v;
    int extra = 0;

    if (!ok(cc_claims_conf_init(&conf) == CC_OK, "claims config"))
        return;
    for (int i = 0; i < 500; i++)
        json_array_append_new(groups, json_sprintf("hospital-group-%d", i));
    claims = json_pack("{s:i, s:i, s:s, s:[s,s], s:s, s:s, s:s, s:s, s:b,"
                       " s:o, s:{s:[s]}}",
                       "exp", 2000000000, "nbf", 1, "iss", "https://idp",
                       "aud", "carechat", "other", "sub", "s1",
                       "user_id", "u1", "patient_id", "p", "professional_id",
                       "q", "carechat_admin", 1, "groups", groups,
                       "realm_access", "roles", "nurse");
    kept = cc_claims_subset(&conf, claims);
    if (!ok(kept != NULL, "a subset"))
        goto out;
    is_int((int)json_object_size(kept), 9, "nine members kept");
    json_object_foreach(kept, key, v) {
        if (!json_equal(v, json_object_get(claims, key)))
            extra++;
    }
    is_int(extra, 0, "each kept member equals the token's");
    ok(!json_object_get(kept, "groups") &&
           !json_object_get(kept, "realm_access"),
       "groups and roles are not kept");
    json_decref(kept);
out:
    json_decref(claims);
    cc_claims_conf_free(&conf);
}

int main(void)
{
    test_chatcache();
    test_tokcache();
    test_claims_subset();
    return done_testing();
}
