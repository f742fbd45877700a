/*
 * test_jwt.c - the `jwt` auth plugin, loaded from its built .so through
 * the real host: configuration refusals, and tokens good and bad (minted
 * with libjwt, or crafted by hand with OpenSSL's HMAC when libjwt would
 * refuse to make them).
 *
 * Each token case states what the plugin must answer: CC_AUTH_OK with the
 * principal, or CC_AUTH_DENY with the exact client-safe message.
 */
#include "tap.h"
#include "plugintest.h"

#include <carechat/auth.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_MAX 8192 /* the plugin's documented limit */
#define SECRET "0123456789abcdef0123456789abcdef-test-key" /* 41 bytes */
#define SECRET64 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define PATIENT "5b9f3c1e-2f6a-4d8b-9c0e-1a2b3c4d5e6f"
#define PRO "0e8c6d4a-7b1f-4e2d-8a9b-c0d1e2f3a4b5"

static long long now;

/* ------------------------------------------------------------ helpers */

/* base64url without padding of p[0..n) into out (NUL-terminated). */
static char *b64url(const void *p, size_t n, char *out)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *s = p;
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        out[o++] = tab[s[i] >> 2];
        out[o++] = tab[(s[i] & 3) << 4];
    } else if (n - i == 2) {
        out[o++] = tab[s[i] >> 2];
        out[o++] = tab[((s[i] & 3) << 4) | (s[i + 1] >> 4)];
        out[o++] = tab[(s[i + 1] & 15) << 2];
    }
    out[o] = '\0';
    return out;
}

/* Append "." and the HMAC(md, key) signature of the signing input tok
 * (no signature when md is NULL).  tok has room for 16384 bytes. */
static const char *sign(char *tok, const EVP_MD *md, const char *key)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    size_t n = strlen(tok);

    if (md)
        HMAC(md, key, (int)strlen(key), (unsigned char *)tok, n, mac,
             &mac_len);
    tok[n++] = '.';
    b64url(mac, mac_len, tok + n);
    return tok;
}

/* Craft "b64(header).b64(payload).sig" into a static buffer (see
 * sign()). */
static const char *craft(const char *header, const char *payload,
                         const EVP_MD *md, const char *key)
{
    static char tok[16384];
    size_t n;

    b64url(header, strlen(header), tok);
    n = strlen(tok);
    tok[n++] = '.';
    b64url(payload, strlen(payload), tok + n);
    return sign(tok, md, key);
}

#define HDR "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Mint a token with libjwt; claims is a JSON object.  Caller frees. */
static char *mint(jwt_alg_t alg, const char *key, const char *claims)
{
    jwt_t *j = NULL;
    char *t;

    if (jwt_new(&j) != 0 || jwt_add_grants_json(j, claims) != 0 ||
        jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)))
        abort();
    t = jwt_encode_str(j);
    jwt_free(j);
    if (!t)
        abort();
    return t;
}

/* A JSON payload with exp = now + 3600 and extra members. */
static const char *claims_exp(const char *extra)
{
    static char buf[4096];

    snprintf(buf, sizeof buf, "{\"exp\":%lld%s%s}", now + 3600,
             extra[0] ? "," : "", extra);
    return buf;
}

static struct cc_auth_req req;

/* Run authenticate on tok[0..len) and return the status; req holds the
 * principal or the error. */
static int auth_n(struct pt_env *env, const char *tok, size_t len)
{
    const struct cc_auth_api *api = env->plugin.iface;
    struct cc_auth_input in = { sizeof in, tok, len, "127.0.0.1", 7 };

    cc_auth_req_init(&req, 7);
    return api->authenticate(env->plugin.inst, &in, &req);
}

static int auth(struct pt_env *env, const char *tok)
{
    return auth_n(env, tok, strlen(tok));
}

/* Authenticate tok again and check the answer is the one req holds now:
 * for an accepted token the second comes from the cache of accepted
 * tokens (only the claims it checks are kept), for a denied one from the
 * full check again. */
static void same_again(struct pt_env *env, const char *tok, int rc)
{
    struct cc_auth_req first = req;
    int rc2 = auth(env, tok);

    ok(rc2 == rc && strcmp(first.principal.user_id,
                           req.principal.user_id) == 0 &&
           strcmp(first.principal.patient_id, req.principal.patient_id) == 0 &&
           strcmp(first.principal.professional_id,
                  req.principal.professional_id) == 0 &&
           first.principal.expires_at == req.principal.expires_at &&
           first.principal.is_admin == req.principal.is_admin &&
           strcmp(first.error, req.error) == 0,
       "asked again: the same answer (%d, %d)", rc, rc2);
}

/* Mint with HS256 and SECRET, authenticate (twice: same_again), free. */
static int auth_claims(struct pt_env *env, const char *claims)
{
    char *t = mint(JWT_ALG_HS256, SECRET, claims);
    int rc = auth(env, t);

    same_again(env, t, rc);
    free(t);
    return rc;
}

/* Check a denial with its exact message. */
#define DENIED(rc, msg, name)                                          \
    do {                                                               \
        is_int(rc, CC_AUTH_DENY, "%s: denied", name);                  \
        is_str(req.error, msg, "%s: message", name);                   \
    } while (0)

/* ------------------------------------------------- stderr capture */

/* Load conf; expect a refusal whose log contains want. */
static void refused(const char *conf, const char *want, const char *name)
{
    struct pt_env env;
    char err[512];
    const char *log;
    int rc;

    capture_begin();
    rc = pt_load(&env, pt_plugin_path("auth-jwt"), CC_KIND_AUTH, "auth",
                 conf, err, sizeof err);
    log = capture_end();
    is_int(rc, -1, "config refused: %s", name);
    if (!ok(strstr(log, want) != NULL, "config reason: %s", name))
        printf("#   log: %s#   want: %s\n", log, want);
    pt_unload(&env);
}

static int load(struct pt_env *env, const char *conf)
{
    char err[512];

    if (pt_load(env, pt_plugin_path("auth-jwt"), CC_KIND_AUTH, "auth", conf,
                err, sizeof err) < 0) {
        printf("# load failed: %s\n", err);
        return -1;
    }
    return 0;
}

/* Write content to a new temporary file; returns its path (static). */
static const char *temp_file(const char *content)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof path, "/tmp/test_jwt_XXXXXX");
    fd = mkstemp(path);
    if (fd < 0 || write(fd, content, strlen(content)) < 0)
        abort();
    close(fd);
    return path;
}

/* -------------------------------------------------------------- config */

static void test_config(void)
{
    char conf[512];
    const char *path;
    struct pt_env env;
    char *t;

    refused("[auth]\nplugin = jwt\nsecret =\n", "the secret is empty",
            "empty secret");
    refused("[auth]\nplugin = jwt\nsecret = 0123456789abcdef0123456789abcde\n",
            "test.conf:3: [auth] secret: the secret is shorter than 32 bytes",
            "31-byte secret");
    refused("[auth]\nplugin = jwt\nalgorithm = HS384\nsecret = " SECRET "\n",
            "the secret is 41 bytes; HS384 needs at least 48",
            "HS384 secret shorter than 48");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nalgorithm = HS512\n",
            "HS512 needs at least 64", "HS512 secret shorter than 64");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nbogus = 1\n",
            "test.conf:4: [auth] bogus: unknown key", "unknown key");
    path = temp_file(SECRET "\n");
    snprintf(conf, sizeof conf,
             "[auth]\nplugin = jwt\nsecret = %s\nsecret_file = %s\n", SECRET,
             path);
    refused(conf, "secret_file: set exactly one of secret and secret_file",
            "both secret and secret_file");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nalgorithm = RS256\n",
            "algorithm: must be HS256, HS384 or HS512", "algorithm RS256");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nalgorithm = hs256\n",
            "algorithm: must be HS256", "algorithm in lower case");
    refused("[auth]\nplugin = jwt\nsecret_file = /nonexistent/jwt.key\n",
            "secret_file: cannot read the secret file",
            "secret_file missing");
    refused("[auth]\nplugin = jwt\nleeway = 10\n",
            "missing required key \"secret\"", "no secret at all");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nleeway = 3601\n",
            "leeway: must be a whole number of seconds from 0 to 3600",
            "leeway out of range");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nleeway = -1\n",
            "leeway: must be a whole number", "negative leeway");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nrequire_exp = maybe\n",
            "require_exp: must be true or false", "require_exp not a bool");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nuser_claim = a b\n",
            "user_claim: must be a claim name", "claim name with a space");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\ntoken_cache = -1\n",
            "token_cache: must be a number of tokens from 0 (off) to 1048576",
            "negative token_cache");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\ntoken_cache = lots\n",
            "token_cache: must be a number", "token_cache not a number");
    refused("[auth]\nplugin = jwt\nsecret = " SECRET "\nissuer =\n",
            "issuer: must be 1 to 512 characters", "empty issuer");
    unlink(path);

    path = temp_file("\n");
    snprintf(conf, sizeof conf, "[auth]\nplugin = jwt\nsecret_file = %s\n",
             path);
    refused(conf, "secret_file: the secret is empty", "empty secret file");
    unlink(path);

    /* secret_file: content minus one trailing newline is the key */
    path = temp_file(SECRET "\n");
    snprintf(conf, sizeof conf, "[auth]\nplugin = jwt\nsecret_file = %s\n",
             path);
    if (ok(load(&env, conf) == 0, "secret_file loads")) {
        t = mint(JWT_ALG_HS256, SECRET, claims_exp("\"user_id\":\"f\""));
        is_int(auth(&env, t), CC_AUTH_OK, "secret_file: key without newline");
        free(t);
        t = mint(JWT_ALG_HS256, SECRET "\n", claims_exp("\"user_id\":\"f\""));
        DENIED(auth(&env, t), "Invalid token signature",
               "secret_file: newline is not part of the key");
        free(t);
    }
    pt_unload(&env);
    unlink(path);
}

/* ----------------------------------------------------- default config */

static void test_good_tokens(struct pt_env *env)
{
    char extra[512];

    is_int(auth_claims(env, claims_exp("\"user_id\":\"alice\"")), CC_AUTH_OK,
           "minimal token accepted");
    is_str(req.principal.user_id, "alice", "minimal: user id");
    is_int(req.principal.expires_at, now + 3600 + 30,
           "minimal: expiry is exp plus the 30 s leeway");
    is_int(req.principal.is_admin, 0, "minimal: not admin");
    is_str(req.principal.patient_id, "", "minimal: no patient");
    is_str(req.error, "", "minimal: no error");

    snprintf(extra, sizeof extra,
             "\"user_id\":\"u1\",\"patient_id\":\"%s\","
             "\"professional_id\":\"%s\",\"carechat_admin\":true",
             "5B9F3C1E-2F6A-4D8B-9C0E-1A2B3C4D5E6F", PRO);
    is_int(auth_claims(env, claims_exp(extra)), CC_AUTH_OK, "full token");
    is_str(req.principal.patient_id, PATIENT,
           "full: patient id, canonical lower case");
    is_str(req.principal.professional_id, PRO, "full: professional id");
    is_int(req.principal.is_admin, 1, "full: admin true");

    auth_claims(env,
                claims_exp("\"user_id\":\"a\",\"carechat_admin\":\"true\""));
    is_int(req.principal.is_admin, 1, "admin \"true\" is admin");
    auth_claims(env, claims_exp("\"user_id\":\"a\",\"carechat_admin\":false"));
    is_int(req.principal.is_admin, 0, "admin false is not admin");
    auth_claims(env, claims_exp("\"user_id\":\"a\",\"carechat_admin\":1"));
    is_int(req.principal.is_admin, 0, "admin 1 is not admin");
    auth_claims(env,
                claims_exp("\"user_id\":\"a\",\"carechat_admin\":\"yes\""));
    is_int(req.principal.is_admin, 0, "admin \"yes\" is not admin");

    is_int(auth_claims(env, claims_exp("\"user_id\":12345")), CC_AUTH_OK,
           "integer user id accepted");
    is_str(req.principal.user_id, "12345", "integer user id as decimal");
    auth_claims(env, claims_exp("\"sub\":\"bob\""));
    is_str(req.principal.user_id, "bob", "sub when user_id is absent");
    auth_claims(env, claims_exp("\"user_id\":\"carol\",\"sub\":\"bob\""));
    is_str(req.principal.user_id, "carol", "user_id wins over sub");
    auth_claims(env, claims_exp("\"user_id\":null,\"sub\":\"bob\""));
    is_str(req.principal.user_id, "bob", "user_id null falls back to sub");
    is_int(auth_claims(env,
                       claims_exp("\"user_id\":\"a\",\"patient_id\":null")),
           CC_AUTH_OK, "patient_id null counts as absent");

    snprintf(extra, sizeof extra, "{\"user_id\":\"a\",\"exp\":%lld}",
             now - 10);
    is_int(auth_claims(env, extra), CC_AUTH_OK,
           "exp 10 s ago passes with the 30 s leeway");
    snprintf(extra, sizeof extra, "{\"user_id\":\"a\",\"exp\":%lld.75}",
             now + 100);
    is_int(auth_claims(env, extra), CC_AUTH_OK, "real exp accepted");
    is_int(req.principal.expires_at, now + 100 + 30,
           "real exp rounded down, plus leeway");
    snprintf(extra, sizeof extra, "\"user_id\":\"a\",\"nbf\":%lld", now + 10);
    is_int(auth_claims(env, claims_exp(extra)), CC_AUTH_OK,
           "nbf 10 s ahead passes with the leeway");

    is_int(auth(env, craft("{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
                           claims_exp("\"user_id\":\"a\""), EVP_sha256(),
                           SECRET)),
           CC_AUTH_OK, "typ \"jwt\" in lower case accepted");
    is_int(auth(env, craft("{\"alg\":\"HS256\"}",
                           claims_exp("\"user_id\":\"a\""), EVP_sha256(),
                           SECRET)),
           CC_AUTH_OK, "no typ accepted");
}

static void test_claim_denials(struct pt_env *env)
{
    char extra[512], big[200];

    snprintf(extra, sizeof extra, "{\"user_id\":\"a\",\"exp\":%lld}",
             now - 3600);
    DENIED(auth_claims(env, extra), "Token expired", "exp an hour ago");
    snprintf(extra, sizeof extra, "\"user_id\":\"a\",\"nbf\":%lld",
             now + 3600);
    DENIED(auth_claims(env, claims_exp(extra)), "Token not yet valid",
           "nbf an hour ahead");
    DENIED(auth_claims(env, "{\"user_id\":\"a\"}"), "Token has no expiry",
           "no exp with require_exp");
    DENIED(auth_claims(env, "{\"user_id\":\"a\",\"exp\":\"9999999999\"}"),
           "Malformed token", "exp as a string");
    DENIED(auth_claims(env, claims_exp("\"iss\":\"x\"")),
           "Token has no user id", "neither user_id nor sub");
    DENIED(auth_claims(env, claims_exp("\"user_id\":\"\"")),
           "Token has no user id", "empty user id");
    DENIED(auth_claims(env, claims_exp("\"user_id\":\"a\\nb\"")),
           "Token has no user id", "user id with a control character");
    DENIED(auth_claims(env, claims_exp("\"user_id\":\"a\\u0085b\"")),
           "Token has no user id", "user id with a C1 control character");
    is_int(auth_claims(env, claims_exp("\"user_id\":\"J\\u00f6rg\"")),
           CC_AUTH_OK, "user id in UTF-8 accepted");
    is_str(req.principal.user_id, "J\xc3\xb6rg", "UTF-8 user id kept");
    DENIED(auth_claims(env, claims_exp("\"user_id\":true")),
           "Token has no user id", "boolean user id");
    memset(big, 'x', 128);
    big[128] = '\0';
    snprintf(extra, sizeof extra, "\"user_id\":\"%s\"", big);
    DENIED(auth_claims(env, claims_exp(extra)), "Token has no user id",
           "128-byte user id");
    big[127] = '\0';
    snprintf(extra, sizeof extra, "\"user_id\":\"%s\"", big);
    is_int(auth_claims(env, claims_exp(extra)), CC_AUTH_OK,
           "127-byte user id accepted");
    DENIED(auth_claims(env, claims_exp("\"user_id\":\"a\","
                                       "\"patient_id\":\"not-a-uuid\"")),
           "Invalid patient_id claim", "patient_id not a UUID");
    DENIED(auth_claims(env, claims_exp("\"user_id\":\"a\","
                                       "\"professional_id\":42")),
           "Invalid professional_id claim", "professional_id an integer");
    is_str(req.principal.user_id, "", "denied: no user id left behind");
}

static void test_bad_tokens(struct pt_env *env)
{
    const char *body = claims_exp("\"user_id\":\"a\"");
    char *t, tok[16384], *p;
    size_t n;

    t = mint(JWT_ALG_HS256, SECRET, body);
    snprintf(tok, sizeof tok, "%s", t);

    /* alg pinning */
    DENIED(auth(env, craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", body, NULL,
                           "")),
           "Token algorithm not allowed", "alg none, empty signature");
    DENIED(auth(env, craft("{\"alg\":\"none\"}", body, EVP_sha256(), SECRET)),
           "Token algorithm not allowed", "alg none with a signature");
    DENIED(auth(env, craft("{\"alg\":\"RS256\"}", body, EVP_sha256(), SECRET)),
           "Token algorithm not allowed", "alg RS256 with an HS256 signature");
    DENIED(auth(env, craft("{\"alg\":\"HS512\"}", body, EVP_sha512(), SECRET)),
           "Token algorithm not allowed", "alg HS512 (not the pinned one)");
    DENIED(auth(env, craft("{\"alg\":\"HS512\"}", body, EVP_sha256(), SECRET)),
           "Token algorithm not allowed", "alg HS512 with an HS256 signature");
    DENIED(auth(env, craft("{\"alg\":\"hs256\"}", body, EVP_sha256(), SECRET)),
           "Token algorithm not allowed", "alg hs256 in lower case");
    DENIED(auth(env, craft("{\"typ\":\"JWT\"}", body, EVP_sha256(), SECRET)),
           "Token algorithm not allowed", "no alg");
    DENIED(auth(env, craft("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", body,
                           EVP_sha256(), SECRET)),
           "Token type not allowed", "typ at+jwt");
    DENIED(auth(env, craft("{\"alg\":\"HS256\",\"crit\":[\"b64\"],"
                           "\"b64\":false}", body, EVP_sha256(), SECRET)),
           "Malformed token", "crit header");

    /* signature */
    DENIED(auth(env, craft(HDR, body, EVP_sha256(),
                           "another secret of 32 bytes or more, surely")),
           "Invalid token signature", "wrong secret");
    DENIED(auth(env, craft(HDR, body, NULL, "")), "Invalid token signature",
           "HS256 with an empty signature");
    p = strrchr(tok, '.'); /* ".signature" */
    {
        /* tampered payload: another body with the original signature */
        char forged[16384], pl[4096];
        const char *other = claims_exp("\"user_id\":\"mallory\"");

        b64url(other, strlen(other), pl);
        snprintf(forged, sizeof forged, "%.*s.%s%s",
                 (int)(strchr(tok, '.') - tok), tok, pl, p);
        DENIED(auth(env, forged), "Invalid token signature",
               "tampered payload");
    }
    n = strlen(tok);
    tok[n - 1] = tok[n - 1] == 'A' ? 'B' : 'A'; /* last sig char */
    DENIED(auth(env, tok), "Invalid token signature", "altered signature");
    snprintf(tok, sizeof tok, "%s", t);
    tok[strlen(tok) - 1] = '\0';
    DENIED(auth(env, tok), "Invalid token signature", "truncated signature");

    /* shape */
    snprintf(tok, sizeof tok, "%s", t);
    tok[1] = '!';
    DENIED(auth(env, tok), "Malformed token", "bad base64url character");
    snprintf(tok, sizeof tok, "%s=", t);
    DENIED(auth(env, tok), "Malformed token", "padding character");
    snprintf(tok, sizeof tok, "%s", t);
    *strrchr(tok, '.') = '\0';
    DENIED(auth(env, tok), "Malformed token", "two segments");
    snprintf(tok, sizeof tok, "%s.AAAA", t);
    DENIED(auth(env, tok), "Malformed token", "four segments");
    DENIED(auth(env, ".."), "Malformed token", "empty segments");
    DENIED(auth_n(env, "", 0), "Malformed token", "empty token");
    /* '{"alg":"HS256"} ' is 16 bytes: its last base64url character
     * carries 4 unused bits.  'B' instead of 'A' sets one: lenient
     * decoders read the same header, a strict one refuses it, even with
     * a valid signature over the altered text. */
    b64url("{\"alg\":\"HS256\"} ", 16, tok);
    n = strlen(tok);
    tok[n - 1] = 'B';
    tok[n++] = '.';
    b64url(body, strlen(body), tok + n);
    DENIED(auth(env, sign(tok, EVP_sha256(), SECRET)), "Malformed token",
           "non-canonical base64url, validly signed");
    DENIED(auth(env, craft("not json", body, EVP_sha256(), SECRET)),
           "Malformed token", "header not JSON");
    DENIED(auth(env, craft("[\"HS256\"]", body, EVP_sha256(), SECRET)),
           "Malformed token", "header a JSON array");
    DENIED(auth(env, craft(HDR, "{\"user_id\":", EVP_sha256(), SECRET)),
           "Malformed token", "payload not JSON");
    DENIED(auth(env, craft(HDR, "{\"user_id\":\"a\",\"user_id\":\"b\"}",
                           EVP_sha256(), SECRET)),
           "Malformed token", "duplicate claim");
    snprintf(tok, sizeof tok, "%s", t);
    n = strlen(tok);
    tok[5] = '\0';
    DENIED(auth_n(env, tok, n), "Malformed token", "NUL byte inside");

    /* the token is (ptr, len): bytes after len are not part of it */
    snprintf(tok, sizeof tok, "%sGARBAGE", t);
    is_int(auth_n(env, tok, strlen(t)), CC_AUTH_OK,
           "token_len bounds the token (not NUL-terminated)");

    /* length */
    {
        char *huge = malloc(TOKEN_MAX + 2);

        memset(huge, 'A', TOKEN_MAX + 1);
        huge[TOKEN_MAX + 1] = '\0';
        DENIED(auth(env, huge), "Token too long", "8193-byte token");
        huge[TOKEN_MAX] = '\0';
        DENIED(auth(env, huge), "Malformed token",
               "8192-byte token is not too long");
        free(huge);
    }
    free(t);
}

/* Debug logging of denials never carries the token or the secret. */
static void test_no_secrets_in_log(struct pt_env *env)
{
    char *t = mint(JWT_ALG_HS256, "x-wrong-secret-x-wrong-secret-x-wrong",
                   claims_exp("\"user_id\":\"a\""));
    const char *log, *sig = strrchr(t, '.') + 1;

    cc_log_set_level(CC_LOG_DEBUG);
    capture_begin();
    auth(env, t);
    auth(env, craft("{\"alg\":\"none\"}", "{}", NULL, ""));
    log = capture_end();
    cc_log_set_level(CC_LOG_INFO);
    ok(strstr(log, "token from 127.0.0.1 denied: Invalid token signature")
           != NULL, "debug log says who was denied and why");
    ok(!strstr(log, sig) && !strstr(log, "eyJ") && !strstr(log, SECRET),
       "log has neither token nor secret");
    free(t);
}

/* --------------------------------------------------- non-default config */

static void test_configured(void)
{
    struct pt_env env;
    char c[512];
    char *t;

    if (!ok(load(&env, "[auth]\nplugin = jwt\nalgorithm = HS512\n"
                       "secret = " SECRET64 "\nissuer = https://idp.example\n"
                       "audience = carechat\nleeway = 0\nrequire_exp = false\n"
                       "user_claim = uid\npatient_claim = pid\n"
                       "professional_claim = prid\nadmin_claim = adm\n") == 0,
            "HS512 configuration loads")) {
        pt_unload(&env);
        return;
    }
#define TOK512(claims) mint(JWT_ALG_HS512, SECRET64, claims)
#define CHECK512(claims, body)                                         \
    do {                                                               \
        t = TOK512(claims);                                            \
        body;                                                          \
        same_again(&env, t, req.error[0] ? CC_AUTH_DENY : CC_AUTH_OK); \
        free(t);                                                       \
    } while (0)
    CHECK512("{\"uid\":\"u9\",\"iss\":\"https://idp.example\","
             "\"aud\":\"carechat\",\"adm\":true}",
             is_int(auth(&env, t), CC_AUTH_OK,
                    "HS512, iss and aud match, no exp allowed"));
    is_str(req.principal.user_id, "u9", "custom user claim");
    is_int(req.principal.expires_at, 0, "no exp: expiry 0");
    is_int(req.principal.is_admin, 1, "custom admin claim");
    CHECK512("{\"sub\":\"s\",\"iss\":\"https://idp.example\","
             "\"aud\":[\"other\",\"carechat\"]}",
             is_int(auth(&env, t), CC_AUTH_OK, "aud array containing ours"));
    is_str(req.principal.user_id, "s", "custom user claim falls back to sub");
    CHECK512("{\"uid\":\"u\",\"iss\":\"https://idp.example\","
             "\"aud\":[\"other\",\"more\"]}",
             DENIED(auth(&env, t), "Invalid token audience",
                    "aud array without ours"));
    CHECK512("{\"uid\":\"u\",\"iss\":\"https://idp.example\"}",
             DENIED(auth(&env, t), "Invalid token audience", "aud missing"));
    CHECK512("{\"uid\":\"u\",\"iss\":\"https://evil.example\","
             "\"aud\":\"carechat\"}",
             DENIED(auth(&env, t), "Invalid token issuer", "iss mismatch"));
    CHECK512("{\"uid\":\"u\",\"aud\":\"carechat\"}",
             DENIED(auth(&env, t), "Invalid token issuer", "iss missing"));
    snprintf(c, sizeof c, "{\"uid\":\"u\",\"iss\":\"https://idp.example\","
             "\"aud\":\"carechat\",\"exp\":%lld}", now - 1);
    CHECK512(c, DENIED(auth(&env, t), "Token expired",
                       "exp 1 s ago with leeway 0"));
    CHECK512("{\"uid\":\"u\",\"iss\":\"https://idp.example\","
             "\"aud\":\"carechat\",\"pid\":\"nope\"}",
             DENIED(auth(&env, t), "Invalid pid claim",
                    "message names the configured patient claim"));
    CHECK512("{\"uid\":\"u\",\"iss\":\"https://idp.example\","
             "\"aud\":\"carechat\",\"prid\":\"" PATIENT "x\"}",
             DENIED(auth(&env, t), "Invalid prid claim",
                    "message names the configured professional claim"));
    t = mint(JWT_ALG_HS256, SECRET64, "{\"uid\":\"u\","
             "\"iss\":\"https://idp.example\",\"aud\":\"carechat\"}");
    DENIED(auth(&env, t), "Token algorithm not allowed",
           "HS256 token against an HS512 pin");
    free(t);
    pt_unload(&env);
}

/* A token seen again comes from the cache of accepted tokens: the same
 * principal, and its times still checked against the clock. */
static void test_cache(const char *conf, const char *name)
{
    long long exp = (long long)time(NULL) + 2;
    struct pt_env env;
    char c[256], spliced[1024];
    char *t, *other;

    if (!ok(load(&env, conf) == 0, "%s: loads", name)) {
        pt_unload(&env);
        return;
    }
    snprintf(c, sizeof c, "{\"user_id\":\"u\",\"patient_id\":\"%s\","
             "\"professional_id\":\"%s\",\"exp\":%lld}", PATIENT, PRO, exp);
    t = mint(JWT_ALG_HS256, SECRET, c);
    for (int i = 0; i < 2; i++) {
        is_int(auth(&env, t), CC_AUTH_OK, "%s: accepted, time %d", name, i);
        is_str(req.principal.user_id, "u", "%s: user id, time %d", name, i);
        is_str(req.principal.patient_id, PATIENT, "%s: patient, time %d",
               name, i);
        is_str(req.principal.professional_id, PRO,
               "%s: professional, time %d", name, i);
        is_int(req.principal.expires_at, exp, "%s: expiry, time %d", name,
               i);
    }
    /* The accepted token's header and signature around another user's
     * payload. */
    other = mint(JWT_ALG_HS256, SECRET,
                 claims_exp("\"user_id\":\"mallory\""));
    snprintf(spliced, sizeof spliced, "%.*s%.*s%s",
             (int)(strchr(t, '.') - t), t,
             (int)(strrchr(other, '.') - strchr(other, '.')),
             strchr(other, '.'), strrchr(t, '.'));
    DENIED(auth(&env, spliced), "Invalid token signature",
           "accepted token's signature on another payload");
    free(other);
    sleep(3); /* exp passes (leeway 0) */
    DENIED(auth(&env, t), "Token expired", "accepted before, expired now");
    DENIED(auth(&env, t), "Token expired", "expired, asked again");
    free(t);
    pt_unload(&env);
}

int main(void)
{
    struct pt_env env;

    now = (long long)time(NULL);
    test_config();
    if (ok(load(&env, "[auth]\nplugin = jwt\nsecret = " SECRET "\n") == 0,
           "default configuration loads")) {
        test_good_tokens(&env);
        test_claim_denials(&env);
        test_bad_tokens(&env);
        test_no_secrets_in_log(&env);
    }
    pt_unload(&env);
    test_configured();
    test_cache("[auth]\nplugin = jwt\nsecret = " SECRET "\nleeway = 0\n",
               "token cache");
    test_cache("[auth]\nplugin = jwt\nsecret = " SECRET "\nleeway = 0\n"
               "token_cache = 0\n", "no token cache");
    return done_testing();
}
