/*
 * test_jwks.c - the `jwks` auth plugin, loaded from its built .so through
 * the real host with a JWKS file: every algorithm it verifies, how keys
 * are bound to algorithms, which JWKs it skips, and the key-selection
 * rules.  Keys are generated and tokens signed here with OpenSSL.
 *
 * Fetching over HTTPS, rotation and the rate limit are exercised against
 * a real carechatd in tests/integration/test_jwks.py.
 */
#include "tap.h"
#include "plugintest.h"

#include <carechat/auth.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ISS "https://idp.test/"
#define BUF 16384

static long long now;
static struct cc_auth_req req;
static char jwks_path[64];

/* ----------------------------------------------------------- encoding */

/* base64url of p[0..n), no padding, appended to out at *o. */
static void b64u(const void *p, size_t n, char *out, size_t *o)
{
    unsigned char tmp[BUF];
    int len = EVP_EncodeBlock(tmp, p, (int)n);

    for (int i = 0; i < len && tmp[i] != '='; i++)
        out[(*o)++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_'
                                                           : (char)tmp[i];
    out[*o] = '\0';
}

/* The base64url of a big-endian number, padded to pad bytes. */
static const char *b64u_bn(const BIGNUM *bn, int pad, char *out)
{
    unsigned char bin[1100];
    int n = pad ? BN_bn2binpad(bn, bin, pad) : BN_bn2bin(bn, bin);
    size_t o = 0;

    b64u(bin, (size_t)n, out, &o);
    return out;
}

/* ------------------------------------------------------------- keys */

static EVP_PKEY *rsa_key(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

static EVP_PKEY *ec_key(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static int coord_of(EVP_PKEY *k)
{
    return (EVP_PKEY_get_bits(k) + 7) / 8;
}

/* The public JWK of k with kid and extra members (",\"alg\":..." or
 * ""), into out. */
static const char *jwk(EVP_PKEY *k, const char *kid, const char *extra,
                       char *out, size_t size)
{
    char a[1500], b[1500];
    BIGNUM *x = NULL, *y = NULL;

    if (EVP_PKEY_is_a(k, "RSA")) {
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &x);
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &y);
        snprintf(out, size, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\","
                 "\"e\":\"%s\"%s}", kid, b64u_bn(x, 0, a), b64u_bn(y, 0, b),
                 extra);
    } else {
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        snprintf(out, size, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-%d\","
                 "\"x\":\"%s\",\"y\":\"%s\"%s}", kid, EVP_PKEY_get_bits(k),
                 b64u_bn(x, coord_of(k), a), b64u_bn(y, coord_of(k), b),
                 extra);
    }
    BN_free(x);
    BN_free(y);
    return out;
}

/* ---------------------------------------------------------- signing */

static const EVP_MD *md_of(const char *alg)
{
    return strstr(alg, "256") ? EVP_sha256()
           : strstr(alg, "384") ? EVP_sha384() : EVP_sha512();
}

/* Sign in[0..n) with k for alg; the JWS signature bytes into sig. */
static size_t sign(EVP_PKEY *k, const char *alg, const char *in, size_t n,
                   unsigned char *sig)
{
    unsigned char der[1100];
    size_t len = sizeof der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    ECDSA_SIG *es;
    const unsigned char *p = der;

    if (EVP_DigestSignInit(md, &pctx, md_of(alg), NULL, k) != 1)
        abort();
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    if (EVP_DigestSign(md, der, &len, (const unsigned char *)in, n) != 1)
        abort();
    EVP_MD_CTX_free(md);
    if (alg[0] != 'E') {
        memcpy(sig, der, len);
        return len;
    }
    es = d2i_ECDSA_SIG(NULL, &p, (long)len);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, coord_of(k));
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + coord_of(k), coord_of(k));
    ECDSA_SIG_free(es);
    return 2 * (size_t)coord_of(k);
}

/* A token: header {"alg":alg,"kid":kid} (no kid when NULL; extra header
 * members in hextra), the claims, signed by k; the signature cut by
 * chop bytes. */
static const char *token_x(EVP_PKEY *k, const char *alg, const char *kid,
                           const char *hextra, const char *claims,
                           size_t chop)
{
    static char tok[BUF];
    char hdr[512];
    unsigned char sig[1100];
    size_t o = 0, n;

    snprintf(hdr, sizeof hdr, "{\"alg\":\"%s\"%s%s%s%s}", alg,
             kid ? ",\"kid\":\"" : "", kid ? kid : "", kid ? "\"" : "",
             hextra);
    b64u(hdr, strlen(hdr), tok, &o);
    tok[o++] = '.';
    b64u(claims, strlen(claims), tok, &o);
    n = sign(k, alg, tok, o, sig);
    tok[o++] = '.';
    b64u(sig, n - chop, tok, &o);
    return tok;
}

/* Claims good for the default test configuration. */
static const char *good_claims(void)
{
    static char buf[512];

    snprintf(buf, sizeof buf, "{\"sub\":\"alice\",\"iss\":\"" ISS "\","
             "\"aud\":\"carechat\",\"exp\":%lld,\"patient_id\":"
             "\"5b9f3c1e-2f6a-4d8b-9c0e-1a2b3c4d5e6f\"}", now + 600);
    return buf;
}

static const char *token(EVP_PKEY *k, const char *alg, const char *kid)
{
    return token_x(k, alg, kid, "", good_claims(), 0);
}

/* ----------------------------------------------------------- loading */

static void write_jwks(const char *keys)
{
    FILE *f = fopen(jwks_path, "w");

    if (!f)
        abort();
    fprintf(f, "{\"keys\":[%s]}", keys);
    fclose(f);
}

/* Load the plugin on the JWKS file with keys and extra config lines. */
static int load(struct pt_env *env, const char *keys, const char *extra)
{
    char conf[1024], err[512];

    write_jwks(keys);
    snprintf(conf, sizeof conf, "[auth]\nplugin = jwks\njwks_file = %s\n"
             "issuer = " ISS "\naudience = carechat\n%s", jwks_path, extra);
    if (pt_load(env, pt_plugin_path("auth-jwks"), CC_KIND_AUTH, "auth",
                conf, err, sizeof err) < 0) {
        printf("# load failed: %s\n", err);
        return -1;
    }
    return 0;
}

static int auth(struct pt_env *env, const char *tok)
{
    const struct cc_auth_api *api = env->plugin.iface;
    struct cc_auth_input in = { sizeof in, tok, strlen(tok), "127.0.0.1",
                                9 };

    cc_auth_req_init(&req, 9);
    return api->authenticate(env->plugin.inst, &in, &req);
}

#define ACCEPTED(rc, name)                                             \
    do {                                                               \
        is_int(rc, CC_AUTH_OK, "%s: accepted", name);                  \
        is_str(req.error, "", "%s: no error", name);                   \
    } while (0)

#define DENIED(rc, msg, name)                                          \
    do {                                                               \
        is_int(rc, CC_AUTH_DENY, "%s: denied", name);                  \
        is_str(req.error, msg, "%s: message", name);                   \
    } while (0)

/* ------------------------------------------------------------- cases */

static const char *const all_algs =
    "algorithms = RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384\n";

/* Every algorithm, each with the key type and curve it needs. */
static void test_algorithms(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384)
{
    static const char *const rs[] = { "RS256", "RS384", "RS512",
                                      "PS256", "PS384", "PS512" };
    char keys[BUF], a[4096], b[1024], c[1024];
    struct pt_env env;

    snprintf(keys, sizeof keys, "%s,%s,%s", jwk(rsa, "r", "", a, sizeof a),
             jwk(p256, "e256", "", b, sizeof b),
             jwk(p384, "e384", "", c, sizeof c));
    if (ok(load(&env, keys, all_algs) == 0, "all algorithms: loads")) {
        for (size_t i = 0; i < sizeof rs / sizeof *rs; i++)
            ACCEPTED(auth(&env, token(rsa, rs[i], "r")), rs[i]);
        ACCEPTED(auth(&env, token(p256, "ES256", "e256")), "ES256");
        is_str(req.principal.user_id, "alice", "ES256: user from sub");
        is_str(req.principal.patient_id,
               "5b9f3c1e-2f6a-4d8b-9c0e-1a2b3c4d5e6f", "ES256: patient id");
        is_int(req.principal.expires_at, now + 600 + 30,
               "ES256: expiry is exp plus the leeway");
        ACCEPTED(auth(&env, token(p384, "ES384", "e384")), "ES384");
        DENIED(auth(&env, token(p384, "ES256", "e384")),
               "Token algorithm not allowed", "ES256 on a P-384 key");
        DENIED(auth(&env, token(p256, "ES384", "e256")),
               "Token algorithm not allowed", "ES384 on a P-256 key");
        DENIED(auth(&env, token(rsa, "RS256", "e256")),
               "Token algorithm not allowed", "RS256 on an EC key");
        DENIED(auth(&env, token(p256, "ES256", "r")),
               "Token algorithm not allowed", "ES256 on an RSA key");
        DENIED(auth(&env, token_x(p256, "ES256", "e256", "", good_claims(),
                                  1)),
               "Invalid token signature", "ES256 signature one byte short");
        DENIED(auth(&env, token_x(rsa, "RS256", "r", "", good_claims(), 1)),
               "Invalid token signature", "RS256 signature one byte short");
        DENIED(auth(&env, token(rsa, "RS256", NULL)),
               "Token has no key id (kid)", "no kid among three keys");
        DENIED(auth(&env, token_x(rsa, "RS256", "r", ",\"typ\":\"at+jwt\"",
                                  good_claims(), 0)),
               "Token type not allowed", "typ at+jwt");
        DENIED(auth(&env, token_x(rsa, "RS256", "r", ",\"crit\":[\"exp\"]",
                                  good_claims(), 0)),
               "Malformed token", "crit header");
    }
    pt_unload(&env);
}

/* The default allow list is RS256 and ES256 only. */
static void test_default_allow_list(EVP_PKEY *rsa, EVP_PKEY *p256)
{
    char keys[BUF], a[4096], b[1024];
    struct pt_env env;

    snprintf(keys, sizeof keys, "%s,%s", jwk(rsa, "r", "", a, sizeof a),
             jwk(p256, "e", "", b, sizeof b));
    if (ok(load(&env, keys, "") == 0, "default algorithms: loads")) {
        ACCEPTED(auth(&env, token(rsa, "RS256", "r")), "default: RS256");
        ACCEPTED(auth(&env, token(p256, "ES256", "e")), "default: ES256");
        DENIED(auth(&env, token(rsa, "RS512", "r")),
               "Token algorithm not allowed", "default: RS512");
        DENIED(auth(&env, token(rsa, "PS256", "r")),
               "Token algorithm not allowed", "default: PS256");
    }
    pt_unload(&env);
}

/* A JWK's own "alg" narrows what its key may verify. */
static void test_jwk_alg_pin(EVP_PKEY *rsa)
{
    char a[4096];
    struct pt_env env;

    if (ok(load(&env, jwk(rsa, "r", ",\"alg\":\"PS256\"", a, sizeof a),
                all_algs) == 0, "alg pin: loads")) {
        ACCEPTED(auth(&env, token(rsa, "PS256", "r")), "pinned PS256");
        DENIED(auth(&env, token(rsa, "RS256", "r")),
               "Token algorithm not allowed", "RS256 on a PS256 key");
        ACCEPTED(auth(&env, token(rsa, "PS256", NULL)),
                 "one key: no kid needed");
    }
    pt_unload(&env);
}

/* JWKs that must be skipped, next to one good key: a token naming any
 * of them names an unknown key. */
static void test_skipped_keys(EVP_PKEY *rsa, EVP_PKEY *p256)
{
    EVP_PKEY *small = rsa_key(1024), *p521 = ec_key("P-521");
    char keys[BUF], a[4096], b[1024], c[1024], d[1024], e[1024], f[1024];
    char g[1024], *y;
    struct pt_env env;
    size_t o;

    jwk(p256, "off-curve", "", f, sizeof f);
    y = strstr(f, "\"y\":\"") + 5; /* flip the point off the curve */
    y[0] = y[0] == 'A' ? 'B' : 'A';
    o = (size_t)snprintf(keys, sizeof keys, "%s,%s,%s,%s,%s,%s",
                         jwk(rsa, "enc", ",\"use\":\"enc\"", a, sizeof a),
                         jwk(p256, "ops", ",\"key_ops\":[\"encrypt\"]", b,
                             sizeof b),
                         jwk(small, "small", "", c, sizeof c),
                         jwk(p521, "p521", "", d, sizeof d),
                         jwk(p256, "good", "", e, sizeof e), f);
    snprintf(keys + o, sizeof keys - o, ",%s,%s",
             "{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}",
             jwk(p256, "es384", ",\"alg\":\"ES384\"", g, sizeof g));
    if (ok(load(&env, keys, all_algs) == 0, "skipped keys: loads")) {
        ACCEPTED(auth(&env, token(p256, "ES256", "good")), "the good key");
        DENIED(auth(&env, token(rsa, "RS256", "enc")),
               "Unknown token signing key", "use enc");
        DENIED(auth(&env, token(p256, "ES256", "ops")),
               "Unknown token signing key", "key_ops without verify");
        DENIED(auth(&env, token(small, "RS256", "small")),
               "Unknown token signing key", "RSA 1024");
        DENIED(auth(&env, token(p256, "ES256", "off-curve")),
               "Unknown token signing key", "point off the curve");
        DENIED(auth(&env, token(p256, "ES256", "es384")),
               "Unknown token signing key", "alg ES384 on a P-256 key");
    }
    pt_unload(&env);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p521);
}

/* A document without one usable key stops the start. */
static void test_unusable_documents(EVP_PKEY *p384)
{
    char a[1024];
    struct pt_env env;

    ok(load(&env, "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", "") < 0,
       "a tiny RSA modulus only: start refused");
    pt_unload(&env);
    ok(load(&env, jwk(p384, "e384", "", a, sizeof a), "") < 0,
       "a P-384 key with ES384 not allowed: start refused");
    pt_unload(&env);
    ok(load(&env, "", "") < 0, "no keys: start refused");
    pt_unload(&env);
}

int main(void)
{
    EVP_PKEY *rsa = rsa_key(2048), *p256 = ec_key("P-256");
    EVP_PKEY *p384 = ec_key("P-384");
    int fd;

    now = (long long)time(NULL);
    snprintf(jwks_path, sizeof jwks_path, "/tmp/test_jwks_XXXXXX");
    fd = mkstemp(jwks_path);
    if (fd < 0 || !rsa || !p256 || !p384)
        abort();
    close(fd);
    test_algorithms(rsa, p256, p384);
    test_default_allow_list(rsa, p256);
    test_jwk_alg_pin(rsa);
    test_skipped_keys(rsa, p256);
    test_unusable_documents(p384);
    unlink(jwks_path);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    return done_testing();
}
