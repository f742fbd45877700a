/*
 * jwks.c - the auth plugin `jwks`: JWTs signed by an identity provider
 * (Keycloak, Entra ID, Okta, Auth0) with RS256/384/512, PS256/384/512,
 * ES256 or ES384, checked against the provider's published JSON Web Key
 * Set.  No shared secret.
 *
 * This file is the plugin as the ABI sees it, and meant as the model for
 * integrators: configuration through host->cfg_iter, lifecycle, and
 * authenticate() answering at once or later.  The pieces live next door:
 * jwk.c (keys and signatures), fetch.c (file or HTTPS), refresh.c (the
 * fetch thread); token parsing and claim mapping are shared with the jwt
 * plugin in plugins/common/claims.c.
 *
 * Threads: everything here runs on the loop thread.  Key sets are built on
 * the fetch thread and handed over whole through host->post; the loop
 * swaps its pointer, so verification takes no lock.
 *
 * authenticate() answers at once when the token names a key we hold (or
 * is refused early).  A token naming an unknown kid may mean the provider
 * rotated its keys: the plugin refreshes the set (at most once per
 * min_refresh_interval, so a flood of made-up kids cannot hammer the
 * provider) and answers CC_AUTH_PENDING, completing the request through
 * host->auth_complete when the refresh is in.  Outside the rate limit an
 * unknown kid is refused at once.  Tokens never reach a log line.
 */
#include <carechat/auth.h>
#include <carechat/plugin.h>

#include "claims.h"
#include "fetch.h"
#include "jwk.h"
#include "pconf.h"
#include "refresh.h"
#include "tokcache.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define WAITERS_MAX 1024  /* requests held for one refresh; more denied */
#define SIG_MAX 1100      /* decoded signature bytes: RSA 8192 bits fits */
#define ALLOW_DEFAULT (JWK_RS256 | JWK_ES256)

/* Client-safe deny messages of this plugin (the shared ones are in
 * claims.h). */
#define MSG_UNKNOWN_KID "Unknown token signing key"
#define MSG_NEED_KID "Token has no key id (kid)"
#define MSG_SHUTDOWN "Server shutting down"

#define UNKNOWN_KID (-1) /* check_token(): not an answer yet */

/* A request waiting for a refresh because its token names an unknown
 * kid.  Holds a copy of the token: wiped when freed. */
struct waiter {
    uint64_t req_id;
    char *token;
    size_t len;
    char remote[64];
    struct waiter *next;
};

struct jwks_auth {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;

    /* configuration, fixed after create() */
    char *jwks_file;            /* exactly one of jwks_file, jwks_url */
    char *jwks_url;
    char *ca_file;              /* https only; NULL: the system store */
    int n_sources;              /* jwks_file / jwks_url lines seen */
    unsigned allowed;           /* JWK_* bits of `algorithms` */
    uint64_t refresh_ms;        /* periodic refresh */
    uint64_t min_refresh_ms;    /* least time between two fetches */
    uint64_t timeout_ms;        /* one fetch, start to end */
    struct cc_claims_conf claims;
    long token_cache;           /* entries; 0: off */
    struct fetch_src *src;

    /* state, loop thread only */
    struct cc_tokcache *cache;  /* accepted tokens; emptied by new keys */
    struct jwk_set *keys;       /* current set; non-NULL once started */
    char keys_desc[512];        /* jwk_set_describe() of keys */
    struct refresher *refresher;
    cc_timer *timer;            /* periodic refresh */
    int fetching;               /* a refresh asked for, not answered */
    uint64_t last_fetch_ns;     /* when the last one was asked for */
    struct waiter *waiters;
    size_t n_waiters;
    cc_post_cb stop_done;       /* stop()'s completion, until called */
    void *stop_arg;
};

/* ------------------------------------------------------ configuration */

/* Keep a copy of value in *field (replacing what was there).  Returns
 * NULL or "out of memory". */
static const char *keep(char **field, const char *value)
{
    free(*field);
    *field = strdup(value);
    return *field ? NULL : "out of memory";
}

/* One name of an `algorithms` list into *bits.  Returns NULL or why
 * not. */
static const char *add_algorithm(const char *name, size_t n, unsigned *bits)
{
    char buf[16];
    unsigned b;

    if (n == 0 || n >= sizeof buf)
        return "expected a comma-separated list such as RS256, ES256";
    memcpy(buf, name, n);
    buf[n] = '\0';
    b = jwk_alg_bit(buf);
    if (b) {
        *bits |= b;
        return NULL;
    }
    if (strncmp(buf, "HS", 2) == 0)
        return "HS256/HS384/HS512 need a shared secret: that is the jwt "
               "plugin";
    if (strcmp(buf, "none") == 0)
        return "\"none\" (unsigned tokens) is never accepted";
    return "unknown algorithm (RS256, RS384, RS512, PS256, PS384, PS512, "
           "ES256, ES384)";
}

/* `algorithms`: a comma-separated list of names, blanks ignored. */
static const char *parse_algorithms(const char *v, unsigned *out)
{
    unsigned bits = 0;
    const char *why;

    for (;;) {
        size_t n;

        v += strspn(v, " \t");
        n = strcspn(v, ", \t");
        if ((why = add_algorithm(v, n, &bits)) != NULL)
            return why;
        v += n;
        v += strspn(v, " \t");
        if (*v == '\0')
            break;
        if (*v++ != ',')
            return "expected a comma-separated list such as RS256, ES256";
    }
    *out = bits;
    return NULL;
}

/* The duration keys: name, range, and where the value goes. */
static const struct {
    const char *key;
    uint64_t min_ms, max_ms;
    size_t off;
    const char *reason;
} durations[] = {
    { "refresh_interval", 1000, 7 * 86400000ull,
      offsetof(struct jwks_auth, refresh_ms),
      "must be a duration from 1s to 168h (such as 3600, 15m or 1h)" },
    { "min_refresh_interval", 1000, 3600000,
      offsetof(struct jwks_auth, min_refresh_ms),
      "must be a duration from 1s to 1h (such as 30s)" },
    { "fetch_timeout", 100, 120000,
      offsetof(struct jwks_auth, timeout_ms),
      "must be a duration from 100ms to 120s (such as 10s)" },
};

/* The source keys: exactly one of jwks_file and jwks_url. */
static const char *set_source(struct jwks_auth *a, const char *key,
                              const char *value)
{
    int url = strcmp(key, "jwks_url") == 0;
    const char *why;

    if (a->n_sources++ > 0)
        return "set exactly one of jwks_file and jwks_url";
    if (!value[0])
        return url ? "needs a URL" : "needs a file name";
    if (url && (why = fetch_url_check(value)) != NULL)
        return why;
    return keep(url ? &a->jwks_url : &a->jwks_file, value);
}

/* cfg_iter callback: one key of [auth]. */
static int jwks_cfg_key(void *arg, const char *key, const char *value,
                        const char **reason)
{
    struct jwks_auth *a = arg;
    int rc;

    for (size_t i = 0; i < sizeof durations / sizeof *durations; i++) {
        if (strcmp(key, durations[i].key) == 0) {
            uint64_t *out = (uint64_t *)((char *)a + durations[i].off);

            if (cc_pconf_duration_ms(value, durations[i].min_ms,
                               durations[i].max_ms, out) < 0)
                *reason = durations[i].reason;
            return *reason ? CC_E_INVAL : CC_OK;
        }
    }
    if (strcmp(key, "jwks_file") == 0 || strcmp(key, "jwks_url") == 0)
        *reason = set_source(a, key, value);
    else if (strcmp(key, "ca_file") == 0)
        *reason = value[0] ? keep(&a->ca_file, value) : "needs a file name";
    else if (strcmp(key, "algorithms") == 0)
        *reason = parse_algorithms(value, &a->allowed);
    else if (cc_tokcache_conf(key, value, &a->token_cache, reason))
        ;
    else if ((rc = cc_claims_conf_set(&a->claims, key, value, reason)) != 0)
        return rc > 0 ? CC_OK : CC_E_INVAL;
    else
        *reason = "unknown key";
    return *reason ? CC_E_INVAL : CC_OK;
}

/* Checks that need the whole section, then the source (which loads
 * ca_file). */
static int check_section(struct jwks_auth *a)
{
    char err[256];

    if (a->n_sources == 0) {
        a->host->cfg_error(a->ctx, NULL, "missing required key "
                           "\"jwks_url\" (or \"jwks_file\")");
        return CC_E_INVAL;
    }
    if (a->ca_file && (!a->jwks_url || strncasecmp(a->jwks_url,
                                                   "https:", 6) != 0)) {
        a->host->cfg_error(a->ctx, "ca_file", "only for an https:// "
                           "jwks_url");
        return CC_E_INVAL;
    }
    /* A provider's keys sign tokens for every application it serves (and
     * Entra ID's for every tenant): without iss and aud checks, any of
     * them would sign in here. */
    if (!a->claims.issuer || !a->claims.audience) {
        a->host->cfg_error(a->ctx, NULL, "missing required key \"%s\": "
                           "the provider's keys also sign tokens meant for "
                           "other applications", a->claims.issuer
                                                     ? "audience"
                                                     : "issuer");
        return CC_E_INVAL;
    }
    a->src = fetch_new(a->jwks_file, a->jwks_url, a->ca_file,
                       (unsigned)a->timeout_ms, err, sizeof err);
    if (!a->src) {
        a->host->cfg_error(a->ctx, a->ca_file ? "ca_file" : NULL, "%s",
                           err);
        return CC_E_INVAL;
    }
    return CC_OK;
}

/* -------------------------------------------------------- lifecycle */

static void free_waiter(struct waiter *w)
{
    explicit_bzero(w->token, w->len);
    free(w->token);
    free(w);
}

static void jwks_destroy(void *inst)
{
    struct jwks_auth *a = inst;

    if (!a)
        return;
    refresher_free(a->refresher);
    while (a->waiters) {
        struct waiter *w = a->waiters;

        a->waiters = w->next;
        free_waiter(w);
    }
    jwk_set_free(a->keys);
    fetch_free(a->src);
    cc_tokcache_free(a->cache);
    cc_claims_conf_free(&a->claims);
    free(a->jwks_file);
    free(a->jwks_url);
    free(a->ca_file);
    free(a);
}

static int jwks_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                       void **inst)
{
    struct jwks_auth *a = calloc(1, sizeof *a);
    int rc;

    if (!a)
        return CC_E_NOMEM;
    a->host = host;
    a->ctx = ctx;
    a->allowed = ALLOW_DEFAULT;
    a->refresh_ms = 3600000;
    a->min_refresh_ms = 30000;
    a->timeout_ms = 10000;
    a->token_cache = CC_TOKCACHE_DEFAULT;
    rc = cc_claims_conf_init(&a->claims);
    if (rc == CC_OK)
        rc = host->cfg_iter(ctx, jwks_cfg_key, a);
    if (rc == CC_OK && a->token_cache > 0 &&
        !(a->cache = cc_tokcache_new((size_t)a->token_cache)))
        rc = CC_E_NOMEM;
    if (rc == CC_OK)
        rc = check_section(a);
    if (rc != CC_OK) {
        jwks_destroy(a);
        return rc;
    }
    *inst = a;
    return CC_OK;
}

/* Make set the current key set (taking it), logging what changed. */
static void install_keys(struct jwks_auth *a, struct jwk_set *set)
{
    char desc[sizeof a->keys_desc];

    jwk_set_describe(set, desc, sizeof desc);
    a->host->log(a->ctx, strcmp(desc, a->keys_desc) ? CC_LOG_INFO
                                                    : CC_LOG_DEBUG,
                 "JWKS from %s: %s", fetch_where(a->src), desc);
    memcpy(a->keys_desc, desc, sizeof desc);
    jwk_set_free(a->keys);
    a->keys = set;
    /* Tokens accepted under the old keys are checked again. */
    cc_tokcache_clear(a->cache);
}

static void start_refresh(struct jwks_auth *a)
{
    a->fetching = 1;
    a->last_fetch_ns = a->host->now_mono_ns();
    refresher_request(a->refresher);
}

static void on_refresh_done(void *arg, struct jwk_set *set,
                            const char *error);

static void on_timer(void *arg)
{
    struct jwks_auth *a = arg;

    if (!a->fetching)
        start_refresh(a);
}

/* The first fetch happens here, synchronously (start() may block
 * briefly, and the loop is not running yet): a daemon that cannot get
 * its keys should not start. */
static int jwks_start(void *inst)
{
    static const int no_cancel;
    struct jwks_auth *a = inst;
    struct jwk_set *set;
    char err[256];

    a->last_fetch_ns = a->host->now_mono_ns();
    set = refresh_once(a->src, a->allowed, &no_cancel, err, sizeof err);
    if (!set) {
        a->host->log(a->ctx, CC_LOG_ERROR, "cannot load the JWKS from %s: "
                     "%s", fetch_where(a->src), err);
        return CC_E_FAIL;
    }
    install_keys(a, set);
    a->refresher = refresher_new(a->host, a->ctx, a->src, a->allowed,
                                 on_refresh_done, a);
    a->timer = a->host->timer_add(a->ctx, a->refresh_ms, 1, on_timer, a);
    if (!a->refresher || !a->timer ||
        refresher_start(a->refresher) != CC_OK) {
        a->host->log(a->ctx, CC_LOG_ERROR, "cannot start the JWKS "
                     "refresh thread");
        if (a->timer)
            a->host->timer_cancel(a->timer);
        a->timer = NULL;
        return CC_E_FAIL;
    }
    return CC_OK;
}

/* SIGHUP: fetch the keys now (an operator asked; no rate limit). */
static int jwks_reload(void *inst)
{
    struct jwks_auth *a = inst;

    if (a->refresher && !a->fetching)
        start_refresh(a);
    return CC_OK;
}

/* ------------------------------------------------------ authenticate */

/* Refuse: log why at debug level (never the token), set the client-safe
 * message. */
static int deny(struct jwks_auth *a, const char *remote, cc_auth_req *req,
                const char *msg)
{
    a->host->log(a->ctx, CC_LOG_DEBUG, "token from %s denied: %s", remote,
                 msg);
    a->host->auth_set_error(req, msg);
    return CC_AUTH_DENY;
}

/* Split tok and read its header: the shape, an allowed alg (its bit in
 * *alg), typ.  Returns NULL or the deny message. */
static const char *parse_header(const struct jwks_auth *a, const char *tok,
                                size_t len, struct cc_jws_parts *p,
                                struct cc_jws_header *h, unsigned *alg)
{
    const char *msg = cc_jws_parse(tok, len, p, h);

    if (msg)
        return msg;
    *alg = jwk_alg_bit(h->alg);
    if (!(*alg & a->allowed))
        return CC_MSG_ALG;
    if (!h->typ_ok)
        return CC_MSG_TYP;
    return NULL;
}

/* Check the signature of tok with key, then its claims.  Returns
 * CC_AUTH_OK with the principal set, or CC_AUTH_DENY. */
static int verify_and_map(struct jwks_auth *a, const char *tok,
                          const struct cc_jws_parts *p,
                          const struct jwk *key, unsigned alg,
                          const char *remote, cc_auth_req *req,
                          const unsigned char *cache_key)
{
    unsigned char sig[SIG_MAX];
    size_t n = 0;
    json_t *claims;
    char why[160];
    int rc;

    if (p->signature_len == 0 ||
        CC_B64URL_DECODED_MAX(p->signature_len) > sizeof sig ||
        cc_b64url_decode(p->signature, p->signature_len, sig, sizeof sig,
                         &n) < 0 ||
        !jwk_verify(key, alg, tok, p->signing_input_len, sig, n))
        return deny(a, remote, req, CC_MSG_SIGNATURE);
    claims = cc_jws_payload_parse(p->payload, p->payload_len);
    if (!claims)
        return deny(a, remote, req, CC_MSG_MALFORMED);
    rc = cc_claims_apply(&a->claims, claims, a->host->now_real_us(),
                         a->host, req, why, sizeof why);
    if (rc != CC_AUTH_OK)
        a->host->log(a->ctx, CC_LOG_DEBUG, "token from %s denied: %s",
                     remote, why);
    else if (cache_key)
        cc_tokcache_keep(a->cache, cache_key, &a->claims, claims);
    json_decref(claims);
    return rc;
}

/* The whole check of tok[0..len) against the current keys.  Returns
 * CC_AUTH_OK, CC_AUTH_DENY (error set), or UNKNOWN_KID (nothing set: the
 * token names a key we do not hold). */
static int check_token(struct jwks_auth *a, const char *tok, size_t len,
                       const char *remote, cc_auth_req *req,
                       const unsigned char *cache_key)
{
    struct cc_jws_parts p;
    struct cc_jws_header h;
    const struct jwk *key = NULL;
    const char *msg;
    unsigned alg = 0;

    msg = parse_header(a, tok, len, &p, &h, &alg);
    if (msg)
        return deny(a, remote, req, msg);
    switch (jwk_set_find(a->keys, &h, alg, &key)) {
    case JWK_FOUND:
        return verify_and_map(a, tok, &p, key, alg, remote, req,
                              cache_key);
    case JWK_UNKNOWN_KID:
        return UNKNOWN_KID;
    case JWK_NEED_KID:
        return deny(a, remote, req, MSG_NEED_KID);
    default:
        return deny(a, remote, req, CC_MSG_ALG);
    }
}

/* Hold req until the refresh that may bring its key: a copy of the token
 * joins the waiters, and a refresh starts unless one is under way.
 * Outside the rate limit, or with too many waiting, deny at once. */
static int wait_for_keys(struct jwks_auth *a, const struct cc_auth_input *in,
                         const char *remote, cc_auth_req *req)
{
    uint64_t since = a->host->now_mono_ns() - a->last_fetch_ns;
    struct waiter *w;

    if (!a->fetching && since < a->min_refresh_ms * 1000000u)
        return deny(a, remote, req, MSG_UNKNOWN_KID);
    if (a->n_waiters >= WAITERS_MAX ||
        !CC_HAS_MEMBER(in, struct cc_auth_input, req_id))
        return deny(a, remote, req, MSG_UNKNOWN_KID);
    w = calloc(1, sizeof *w);
    if (!w || !(w->token = malloc(in->token_len))) {
        free(w);
        return deny(a, remote, req, MSG_UNKNOWN_KID);
    }
    memcpy(w->token, in->token, in->token_len);
    w->len = in->token_len;
    w->req_id = in->req_id;
    snprintf(w->remote, sizeof w->remote, "%s", remote);
    w->next = a->waiters;
    a->waiters = w;
    a->n_waiters++;
    if (!a->fetching) {
        a->host->log(a->ctx, CC_LOG_INFO, "a token names a key the JWKS "
                     "does not hold; refreshing it");
        start_refresh(a);
    }
    return CC_AUTH_PENDING;
}

static int jwks_authenticate(void *inst, const struct cc_auth_input *in,
                             cc_auth_req *req)
{
    struct jwks_auth *a = inst;
    const char *remote = cc_auth_remote(in);
    const char *msg = cc_auth_token_check(in);
    unsigned char key[CC_TOKCACHE_KEY];
    char why[160];
    int rc, keyed;

    if (msg)
        return deny(a, remote, req, msg);
    rc = cc_tokcache_check(a->cache, &a->claims, a->host, in, req, key,
                           &keyed, why, sizeof why);
    if (rc == CC_AUTH_DENY)
        a->host->log(a->ctx, CC_LOG_DEBUG, "token from %s denied: %s",
                     remote, why);
    if (rc != CC_AUTH_DECLINE)
        return rc;
    rc = check_token(a, in->token, in->token_len, remote, req,
                     keyed ? key : NULL);
    return rc == UNKNOWN_KID ? wait_for_keys(a, in, remote, req) : rc;
}

/* Answer every waiter: with the current keys, or with deny_msg when not
 * NULL.  A waiter whose connection has gone is dropped. */
static void answer_waiters(struct jwks_auth *a, const char *deny_msg)
{
    struct waiter *w = a->waiters, *next;

    a->waiters = NULL; /* completions may start new requests */
    a->n_waiters = 0;
    for (; w; w = next) {
        cc_auth_req *req = a->host->auth_lookup(a->ctx, w->req_id);
        int rc;

        next = w->next;
        if (req) {
            rc = deny_msg ? deny(a, w->remote, req, deny_msg)
                          : check_token(a, w->token, w->len, w->remote,
                                        req, NULL);
            if (rc == UNKNOWN_KID)
                rc = deny(a, w->remote, req, MSG_UNKNOWN_KID);
            a->host->auth_complete(a->ctx, w->req_id, rc);
        }
        free_waiter(w);
    }
}

/* A refresh is in (loop thread): take the new keys, or keep the old ones
 * and say why; then answer the requests that waited for it. */
static void on_refresh_done(void *arg, struct jwk_set *set,
                            const char *error)
{
    struct jwks_auth *a = arg;

    a->fetching = 0;
    if (set)
        install_keys(a, set);
    else
        a->host->log(a->ctx, CC_LOG_WARN, "refreshing the JWKS from %s "
                     "failed: %s; keeping the keys loaded before (%s)",
                     fetch_where(a->src), error, a->keys_desc);
    answer_waiters(a, NULL);
}

/* The connection behind a pending request went away. */
static void jwks_cancel(void *inst, uint64_t req_id)
{
    struct jwks_auth *a = inst;

    for (struct waiter **pw = &a->waiters; *pw; pw = &(*pw)->next) {
        if ((*pw)->req_id == req_id) {
            struct waiter *w = *pw;

            *pw = w->next;
            a->n_waiters--;
            free_waiter(w);
            return;
        }
    }
}

/* ------------------------------------------------------------- stop */

static void on_stopped(void *arg)
{
    struct jwks_auth *a = arg;

    answer_waiters(a, MSG_SHUTDOWN);
    a->stop_done(a->stop_arg);
}

static void jwks_stop(void *inst, cc_post_cb done, void *arg)
{
    struct jwks_auth *a = inst;

    if (a->timer)
        a->host->timer_cancel(a->timer);
    a->timer = NULL;
    a->stop_done = done;
    a->stop_arg = arg;
    if (a->refresher)
        refresher_stop(a->refresher, on_stopped, a);
    else
        on_stopped(a);
}

/* ------------------------------------------------------------- entry */

static const struct cc_auth_api jwks_api = {
    .struct_size = sizeof(struct cc_auth_api),
    .authenticate = jwks_authenticate,
    .cancel = jwks_cancel,
};

static const void *jwks_get_interface(void *inst, uint32_t kind)
{
    return kind == CC_KIND_AUTH ? &jwks_api : NULL;
}

static void jwks_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    cc_tokcache_metrics(((struct jwks_auth *)inst)->cache, emit, arg);
}

static const struct cc_plugin jwks_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_AUTH,
    .name = "jwks",
    .version = "1.0.0",
    .create = jwks_create,
    .start = jwks_start,
    .reload = jwks_reload,
    .stop = jwks_stop,
    .destroy = jwks_destroy,
    .get_interface = jwks_get_interface,
    .metrics = jwks_metrics,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) || !host ||
        !CC_HAS_MEMBER(host, struct cc_host_api, auth_complete))
        return CC_E_ABI;
    *out = &jwks_plugin;
    return CC_OK;
}
