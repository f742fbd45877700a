/*
 * jwt.c - the auth plugin `jwt`: HMAC-signed JWTs (HS256/384/512) with a
 * shared secret, verified with libjwt 1.10.
 *
 * libjwt 1.10 takes the algorithm from the token, accepts alg "none"
 * without a key and checks no claims at all.  So this plugin never lets
 * the token choose: the algorithm is pinned by configuration and checked
 * on the header we parse ourselves BEFORE jwt_decode() and again with
 * jwt_get_alg() after it; the token's shape (three strict base64url
 * segments, a JSON object header without "crit", a signature of the
 * exact HMAC length) is checked first too, so libjwt only ever sees
 * well-formed input.  Claims (exp, nbf, iss, aud, ids) are checked by
 * plugins/common/claims.c.
 *
 * Synchronous: authenticate() answers CC_AUTH_OK or CC_AUTH_DENY at once
 * (HMAC costs microseconds), so there is no cancel().  Loop thread only.
 * The token and the secret never reach a log line.
 */
#include <carechat/auth.h>
#include <carechat/plugin.h>

#include "claims.h"
#include "pconf.h"
#include "tokcache.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_MAX 4096 /* bytes; far above any sane HMAC key */

struct jwt_auth {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    jwt_alg_t alg;               /* pinned: the only alg accepted */
    const char *alg_name;        /* "HS256"..., static */
    size_t sig_len;              /* base64url length of its signature */
    unsigned char *secret;       /* wiped and freed on destroy */
    size_t secret_len;           /* > 0 once configured */
    int secret_keys;             /* secret / secret_file lines seen */
    const char *secret_key_name; /* which of the two set it, static */
    struct cc_claims_conf claims;
    long token_cache;            /* entries; 0: off */
    struct cc_tokcache *cache;   /* accepted tokens; NULL when off */
};

/* The algorithms this plugin accepts, with their minimum key length (RFC
 * 7518 3.2: a key at least the size of the hash output) and the length
 * of a base64url signature. */
static const struct {
    const char *name;
    jwt_alg_t alg;
    size_t min_key;
    size_t sig_len;
} algs[] = {
    { "HS256", JWT_ALG_HS256, 32, 43 },
    { "HS384", JWT_ALG_HS384, 48, 64 },
    { "HS512", JWT_ALG_HS512, 64, 86 },
};

static void wipe_secret(struct jwt_auth *a)
{
    if (a->secret) {
        explicit_bzero(a->secret, a->secret_len);
        free(a->secret);
    }
    a->secret = NULL;
    a->secret_len = 0;
}

/* Take a copy of the secret bytes.  Returns NULL or a static reason. */
static const char *set_secret(struct jwt_auth *a, const void *s, size_t n)
{
    if (n == 0)
        return "the secret is empty";
    if (n < algs[0].min_key)
        return "the secret is shorter than 32 bytes (RFC 7518 3.2 wants "
               "at least the hash size)";
    if (n > SECRET_MAX)
        return "the secret is longer than 4096 bytes";
    a->secret = malloc(n);
    if (!a->secret)
        return "out of memory";
    memcpy(a->secret, s, n);
    a->secret_len = n;
    return NULL;
}

/* secret_file: the secret is the file's content (pconf.h). */
static const char *read_secret_file(struct jwt_auth *a, const char *path)
{
    const char *why;
    size_t n = 0;
    char *buf = cc_pconf_read_secret(path, SECRET_MAX, &n, &why);

    if (!buf) {
        if (strcmp(why, "is empty") == 0)
            return "the secret is empty";
        a->host->log(a->ctx, CC_LOG_ERROR, "secret_file %s %s", path, why);
        return strcmp(why, "is too large") == 0
                   ? "the secret file is larger than 4096 bytes"
                   : "cannot read the secret file";
    }
    why = set_secret(a, buf, n);
    explicit_bzero(buf, n);
    free(buf);
    return why;
}

static int set_algorithm(struct jwt_auth *a, const char *v)
{
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
        if (strcmp(v, algs[i].name) == 0) {
            a->alg = algs[i].alg;
            a->alg_name = algs[i].name;
            a->sig_len = algs[i].sig_len;
            return 0;
        }
    }
    return -1;
}

/* cfg_iter callback: one key of [auth]. */
static int jwt_cfg_key(void *arg, const char *key, const char *value,
                       const char **reason)
{
    struct jwt_auth *a = arg;
    int rc;

    if ((strcmp(key, "secret") == 0 || strcmp(key, "secret_file") == 0) &&
        a->secret_keys++ > 0)
        *reason = "set exactly one of secret and secret_file";
    else if (strcmp(key, "secret") == 0) {
        a->secret_key_name = "secret";
        *reason = set_secret(a, value, strlen(value));
    } else if (strcmp(key, "secret_file") == 0) {
        a->secret_key_name = "secret_file";
        *reason = value[0] ? read_secret_file(a, value)
                           : "needs a file name";
    }
    else if (strcmp(key, "algorithm") == 0)
        *reason = set_algorithm(a, value) < 0
                      ? "must be HS256, HS384 or HS512 (RS and ES tokens "
                        "need the jwks plugin)"
                      : NULL;
    else if (cc_tokcache_conf(key, value, &a->token_cache, reason))
        ;
    else if ((rc = cc_claims_conf_set(&a->claims, key, value, reason)) != 0)
        return rc > 0 ? CC_OK : CC_E_INVAL;
    else
        *reason = "unknown key";
    return *reason ? CC_E_INVAL : CC_OK;
}

/* Checks that need the whole section: a secret is there and is long
 * enough for the algorithm chosen. */
static int check_section(struct jwt_auth *a)
{
    size_t min_key = 0;

    if (!a->secret) {
        a->host->cfg_error(a->ctx, NULL, "missing required key \"secret\" "
                           "(or \"secret_file\")");
        return CC_E_INVAL;
    }
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++)
        if (algs[i].alg == a->alg)
            min_key = algs[i].min_key;
    if (a->secret_len < min_key) {
        a->host->cfg_error(a->ctx, a->secret_key_name,
                           "the secret is %zu bytes; %s needs at least %zu "
                           "(RFC 7518 3.2: a key at least the hash size)",
                           a->secret_len, a->alg_name, min_key);
        return CC_E_INVAL;
    }
    return CC_OK;
}

static void jwt_destroy(void *inst)
{
    struct jwt_auth *a = inst;

    if (!a)
        return;
    wipe_secret(a);
    cc_tokcache_free(a->cache);
    cc_claims_conf_free(&a->claims);
    free(a);
}

static int jwt_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                      void **inst)
{
    struct jwt_auth *a = calloc(1, sizeof *a);
    int rc;

    if (!a)
        return CC_E_NOMEM;
    a->host = host;
    a->ctx = ctx;
    set_algorithm(a, "HS256");
    a->token_cache = CC_TOKCACHE_DEFAULT;
    rc = cc_claims_conf_init(&a->claims);
    if (rc == CC_OK)
        rc = host->cfg_iter(ctx, jwt_cfg_key, a);
    if (rc == CC_OK)
        rc = check_section(a);
    if (rc == CC_OK && a->token_cache > 0) {
        a->cache = cc_tokcache_new((size_t)a->token_cache);
        if (!a->cache)
            rc = CC_E_NOMEM;
    }
    if (rc != CC_OK) {
        jwt_destroy(a);
        return rc;
    }
    *inst = a;
    return CC_OK;
}

static int jwt_start(void *inst)
{
    return CC_OK;
}

static void jwt_stop(void *inst, cc_post_cb done, void *arg)
{
    done(arg);
}

/* ------------------------------------------------------ authenticate */

/* Refuse: log why at debug level (never the token), set the client-safe
 * message. */
static int deny(struct jwt_auth *a, const struct cc_auth_input *in,
                cc_auth_req *req, const char *msg)
{
    a->host->log(a->ctx, CC_LOG_DEBUG, "token from %s denied: %s",
                 cc_auth_remote(in), msg);
    a->host->auth_set_error(req, msg);
    return CC_AUTH_DENY;
}

/* Everything libjwt cannot be trusted with: shape, header, alg, typ,
 * signature length, payload JSON.  Returns NULL and the parsed payload in
 * *claims (the caller's), or the deny message. */
static const char *precheck(const struct jwt_auth *a, const char *tok,
                            size_t len, json_t **claims)
{
    struct cc_jws_parts p;
    struct cc_jws_header h;
    const char *msg = cc_jws_parse(tok, len, &p, &h);
    json_t *payload;

    if (msg)
        return msg;
    if (strcmp(h.alg, a->alg_name) != 0)
        return CC_MSG_ALG;
    if (!h.typ_ok)
        return CC_MSG_TYP;
    payload = cc_jws_payload_parse(p.payload, p.payload_len);
    if (!payload)
        return CC_MSG_MALFORMED;
    if (p.signature_len != a->sig_len) {
        json_decref(payload);
        return CC_MSG_SIGNATURE;
    }
    *claims = payload;
    return NULL;
}

/* Verify tok (NUL-terminated, prechecked) with libjwt and map claims,
 * its payload as precheck() parsed it: the same bytes libjwt verified
 * (no second parse of libjwt's copy).  Returns CC_AUTH_OK or
 * CC_AUTH_DENY with the error set. */
static int verify_and_map(struct jwt_auth *a, const char *tok,
                          json_t *claims, const struct cc_auth_input *in,
                          cc_auth_req *req)
{
    char why[160];
    jwt_t *jwt = NULL;
    int rc, err;

    err = jwt_decode(&jwt, tok, a->secret, (int)a->secret_len);
    if (err != 0 || !jwt) {
        rc = deny(a, in, req, CC_MSG_SIGNATURE);
        goto out;
    }
    if (jwt_get_alg(jwt) != a->alg) {
        rc = deny(a, in, req, CC_MSG_ALG);
        goto out;
    }
    rc = cc_claims_apply(&a->claims, claims, a->host->now_real_us(), a->host,
                         req, why, sizeof why);
    if (rc != CC_AUTH_OK)
        a->host->log(a->ctx, CC_LOG_DEBUG, "token from %s denied: %s",
                     cc_auth_remote(in), why);
out:
    jwt_free(jwt);
    return rc;
}

static int jwt_authenticate(void *inst, const struct cc_auth_input *in,
                            cc_auth_req *req)
{
    struct jwt_auth *a = inst;
    unsigned char key[CC_TOKCACHE_KEY];
    char buf[CC_TOKEN_MAX + 1], why[160];
    json_t *claims = NULL;
    const char *msg;
    int keyed;
    size_t len;
    int rc;

    msg = cc_auth_token_check(in);
    if (msg)
        return deny(a, in, req, msg);
    rc = cc_tokcache_check(a->cache, &a->claims, a->host, in, req, key,
                           &keyed, why, sizeof why);
    if (rc == CC_AUTH_DENY)
        a->host->log(a->ctx, CC_LOG_DEBUG, "token from %s denied: %s",
                     cc_auth_remote(in), why);
    if (rc != CC_AUTH_DECLINE)
        return rc;
    len = in->token_len;
    memcpy(buf, in->token, len);
    buf[len] = '\0';
    msg = precheck(a, buf, len, &claims);
    rc = msg ? deny(a, in, req, msg)
             : verify_and_map(a, buf, claims, in, req);
    if (rc == CC_AUTH_OK && keyed)
        cc_tokcache_keep(a->cache, key, &a->claims, claims);
    json_decref(claims);
    explicit_bzero(buf, len);
    return rc;
}

/* ------------------------------------------------------------- entry */

static const struct cc_auth_api jwt_api = {
    .struct_size = sizeof(struct cc_auth_api),
    .authenticate = jwt_authenticate,
    .cancel = NULL,
};

static const void *jwt_get_interface(void *inst, uint32_t kind)
{
    return kind == CC_KIND_AUTH ? &jwt_api : NULL;
}

static void jwt_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    cc_tokcache_metrics(((struct jwt_auth *)inst)->cache, emit, arg);
}

static const struct cc_plugin jwt_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_AUTH,
    .name = "jwt",
    .version = "1.0.0",
    .create = jwt_create,
    .start = jwt_start,
    .reload = NULL,
    .stop = jwt_stop,
    .destroy = jwt_destroy,
    .get_interface = jwt_get_interface,
    .metrics = jwt_metrics,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) || !host ||
        !CC_HAS_MEMBER(host, struct cc_host_api, auth_set_error))
        return CC_E_ABI;
    *out = &jwt_plugin;
    return CC_OK;
}
