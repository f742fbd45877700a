/*
 * jwk.c - JWKS documents to OpenSSL public keys, and JWS signature checks
 * (see jwk.h).
 *
 * Keys are built with OpenSSL 3's public API only: OSSL_PARAM_BLD and
 * EVP_PKEY_fromdata(), then EVP_PKEY_public_check(); no RSA_ or EC_KEY_
 * calls.  Signatures are checked with EVP_DigestVerify directly rather
 * than through libjwt, whose 1.10 takes the algorithm from the token.
 */
#include "jwk.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KTY_RSA 1
#define KTY_EC 2
#define RSA_N_MAX (JWK_RSA_MAX_BITS / 8 + 1) /* bytes, a zero lead allowed */
#define RSA_E_MAX 16                         /* bytes of the exponent */
#define EC_COORD_MAX 48                      /* P-384 */
#define ECDSA_DER_MAX 128                    /* DER of a P-384 (r, s) */

/* The algorithms of RFC 7518 this module verifies. */
static const struct alg {
    const char *name;
    unsigned bit;
    int kty;                   /* KTY_* of the keys it needs */
    int pss;                   /* RSASSA-PSS rather than PKCS#1 v1.5 */
    const char *crv;           /* EC: the JWK curve name */
    const char *group;         /* EC: OpenSSL's group name */
    size_t coord;              /* EC: bytes of one coordinate */
    const EVP_MD *(*md)(void); /* the digest */
} algs[] = {
    { "RS256", JWK_RS256, KTY_RSA, 0, NULL, NULL, 0, EVP_sha256 },
    { "RS384", JWK_RS384, KTY_RSA, 0, NULL, NULL, 0, EVP_sha384 },
    { "RS512", JWK_RS512, KTY_RSA, 0, NULL, NULL, 0, EVP_sha512 },
    { "PS256", JWK_PS256, KTY_RSA, 1, NULL, NULL, 0, EVP_sha256 },
    { "PS384", JWK_PS384, KTY_RSA, 1, NULL, NULL, 0, EVP_sha384 },
    { "PS512", JWK_PS512, KTY_RSA, 1, NULL, NULL, 0, EVP_sha512 },
    { "ES256", JWK_ES256, KTY_EC, 0, "P-256", "prime256v1", 32, EVP_sha256 },
    { "ES384", JWK_ES384, KTY_EC, 0, "P-384", "secp384r1", 48, EVP_sha384 },
};
#define N_ALGS (sizeof algs / sizeof *algs)

struct jwk {
    char kid[CC_JWS_KID_MAX]; /* "" when the JWK has none */
    int has_kid;
    unsigned algs;            /* JWK_* bits it may verify, never 0 */
    int kty;
    const struct alg *ec;     /* EC: the curve's algorithm, else NULL */
    int bits;
    EVP_PKEY *pkey;
};

struct jwk_set {
    size_t n;                 /* usable keys, >= 1 */
    struct jwk *keys;
    size_t skipped;           /* JWKs left out */
    char first_skip[160];     /* why the first one was, for the log */
};

static const struct alg *alg_by_bit(unsigned bit)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (algs[i].bit == bit)
            return &algs[i];
    return NULL;
}

unsigned jwk_alg_bit(const char *name)
{
    for (size_t i = 0; i < N_ALGS; i++)
        if (strcmp(algs[i].name, name) == 0)
            return algs[i].bit;
    return 0;
}

/* ------------------------------------------------------- key building */

/* Decode the base64url string member name of obj into out (size
 * out_size).  Returns the decoded length, or -1 (absent, not a string,
 * not strict base64url, or too long). */
static long b64_member(json_t *obj, const char *name, unsigned char *out,
                       size_t out_size)
{
    json_t *v = json_object_get(obj, name);
    size_t len = json_string_length(v), n;

    if (!json_is_string(v) || len == 0 ||
        CC_B64URL_DECODED_MAX(len) > out_size ||
        cc_b64url_decode(json_string_value(v), len, out, out_size, &n) < 0)
        return -1;
    return (long)n;
}

/* EVP_PKEY_fromdata() for a public key of type ("RSA", "EC") from the
 * parameters in bld, then OpenSSL's own public-key check.  Returns the
 * key or NULL. */
static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY_CTX *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (!check || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
    }
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* An RSA JWK (n, e) into k.  Returns NULL or why not. */
static const char *rsa_key(json_t *obj, struct jwk *k)
{
    unsigned char nb[RSA_N_MAX + 2], eb[RSA_E_MAX + 2];
    long nlen = b64_member(obj, "n", nb, sizeof nb);
    long elen = b64_member(obj, "e", eb, sizeof eb);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = NULL, *e = NULL;
    const char *why = NULL;

    if (nlen < 0 || elen < 0) {
        why = "n or e missing, not base64url, or too large";
        goto out;
    }
    n = BN_bin2bn(nb, (int)nlen, NULL);
    e = BN_bin2bn(eb, (int)elen, NULL);
    if (!bld || !n || !e ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
        !(k->pkey = pkey_from("RSA", bld))) {
        why = "not a valid RSA public key";
        goto out;
    }
    k->bits = EVP_PKEY_get_bits(k->pkey);
    if (k->bits < JWK_RSA_MIN_BITS || k->bits > JWK_RSA_MAX_BITS)
        why = "RSA modulus outside 2048 to 8192 bits";
out:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_BLD_free(bld);
    return why;
}

/* An EC JWK (crv, x, y) into k.  Returns NULL or why not. */
static const char *ec_key(json_t *obj, struct jwk *k)
{
    const char *crv = json_string_value(json_object_get(obj, "crv"));
    unsigned char pt[1 + 2 * EC_COORD_MAX], c[EC_COORD_MAX + 2];
    OSSL_PARAM_BLD *bld = NULL;
    const char *why = NULL;
    long n;

    for (size_t i = 0; crv && i < N_ALGS; i++)
        if (algs[i].crv && strcmp(algs[i].crv, crv) == 0)
            k->ec = &algs[i];
    if (!k->ec)
        return "curve missing or not P-256 or P-384";
    /* RFC 7518 6.2.1.2: each coordinate is the full size of the field */
    pt[0] = 0x04; /* an uncompressed point: 04 || x || y */
    n = b64_member(obj, "x", c, sizeof c);
    if (n != (long)k->ec->coord)
        return "x missing or not the size of the curve";
    memcpy(pt + 1, c, (size_t)n);
    n = b64_member(obj, "y", c, sizeof c);
    if (n != (long)k->ec->coord)
        return "y missing or not the size of the curve";
    memcpy(pt + 1 + n, c, (size_t)n);
    bld = OSSL_PARAM_BLD_new();
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        k->ec->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                         1 + 2 * k->ec->coord) != 1 ||
        !(k->pkey = pkey_from("EC", bld)))
        why = "not a point on the curve";
    else
        k->bits = EVP_PKEY_get_bits(k->pkey);
    OSSL_PARAM_BLD_free(bld);
    return why;
}

/* 1 when the JSON array ops holds the string "verify". */
static int has_verify(json_t *ops)
{
    size_t i;
    json_t *v;

    json_array_foreach(ops, i, v) {
        if (json_is_string(v) && strcmp(json_string_value(v), "verify") == 0)
            return 1;
    }
    return 0;
}

/* The algorithms the JWK obj may verify once built into k: those of its
 * type and curve, narrowed by its "alg" member and by allowed.  Returns
 * NULL with k->algs set (non-zero), or why the key is of no use. */
static const char *bind_algs(json_t *obj, struct jwk *k, unsigned allowed)
{
    json_t *alg = json_object_get(obj, "alg");
    unsigned bits = 0;

    for (size_t i = 0; i < N_ALGS; i++)
        if (algs[i].kty == k->kty && (!k->ec || k->ec == &algs[i]))
            bits |= algs[i].bit;
    if (alg) {
        unsigned b = json_is_string(alg)
                         ? jwk_alg_bit(json_string_value(alg)) : 0;

        if (!(bits & b))
            return "its \"alg\" is not one this key type can verify";
        bits = b;
    }
    k->algs = bits & allowed;
    return k->algs ? NULL : "bound to no allowed algorithm";
}

/* Build the JWK obj into k (zeroed).  Returns NULL, or why it was
 * skipped. */
static const char *build_key(json_t *obj, struct jwk *k, unsigned allowed)
{
    json_t *kid = json_object_get(obj, "kid");
    json_t *use = json_object_get(obj, "use");
    json_t *ops = json_object_get(obj, "key_ops");
    const char *kty = json_string_value(json_object_get(obj, "kty"));
    const char *why;

    if (!json_is_object(obj))
        return "not a JSON object";
    if (kid && (!json_is_string(kid) ||
                json_string_length(kid) >= sizeof k->kid ||
                strlen(json_string_value(kid)) != json_string_length(kid)))
        return "kid not a string of at most 255 bytes";
    if (kid) {
        memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
        k->has_kid = 1;
    }
    if (use && !(json_is_string(use) &&
                 strcmp(json_string_value(use), "sig") == 0))
        return "use is not \"sig\"";
    if (ops && !(json_is_array(ops) && has_verify(ops)))
        return "key_ops without \"verify\"";
    if (kty && strcmp(kty, "RSA") == 0)
        k->kty = KTY_RSA;
    else if (kty && strcmp(kty, "EC") == 0)
        k->kty = KTY_EC;
    else
        return "kty is not RSA or EC";
    why = k->kty == KTY_RSA ? rsa_key(obj, k) : ec_key(obj, k);
    return why ? why : bind_algs(obj, k, allowed);
}

/* --------------------------------------------------------------- sets */

static void note_skip(struct jwk_set *s, size_t i, const struct jwk *k,
                      const char *why)
{
    if (s->skipped++ > 0)
        return;
    if (k->has_kid)
        snprintf(s->first_skip, sizeof s->first_skip, "kid \"%.64s\": %s",
                 k->kid, why);
    else
        snprintf(s->first_skip, sizeof s->first_skip, "key %zu: %s", i,
                 why);
}

/* The "keys" array of the document in doc[0..len), or NULL with err. */
static json_t *keys_array(const char *doc, size_t len, json_t **root,
                          char *err, size_t err_size)
{
    json_error_t jerr;
    json_t *keys;

    *root = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        snprintf(err, err_size, "not JSON (line %d: %s)", jerr.line,
                 jerr.text);
        return NULL;
    }
    keys = json_object_get(*root, "keys");
    if (!json_is_array(keys)) {
        snprintf(err, err_size, "not a JWKS document (no \"keys\" array)");
        return NULL;
    }
    if (json_array_size(keys) > JWK_SET_MAX) {
        snprintf(err, err_size, "more than %d keys", JWK_SET_MAX);
        return NULL;
    }
    return keys;
}

/* Add the JWK obj (element i of "keys") to s, or count it skipped. */
static void add_key(struct jwk_set *s, size_t i, json_t *obj,
                    unsigned allowed)
{
    struct jwk *k = &s->keys[s->n];
    const char *why = build_key(obj, k, allowed);

    if (!why) {
        s->n++;
        return;
    }
    note_skip(s, i, k, why);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

struct jwk_set *jwk_set_parse(const char *doc, size_t len, unsigned allowed,
                              char *err, size_t err_size)
{
    json_t *root = NULL, *keys, *obj;
    struct jwk_set *s = NULL;
    size_t i;

    keys = keys_array(doc, len, &root, err, err_size);
    if (!keys)
        goto out;
    s = calloc(1, sizeof *s);
    if (s)
        s->keys = calloc(json_array_size(keys) + 1, sizeof *s->keys);
    if (!s || !s->keys) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }
    json_array_foreach(keys, i, obj)
        add_key(s, i, obj, allowed);
    if (s->n > 0)
        goto out;
    if (s->skipped)
        snprintf(err, err_size, "no usable key (first skipped: %s)",
                 s->first_skip);
    else
        snprintf(err, err_size, "no keys");
fail:
    jwk_set_free(s);
    s = NULL;
out:
    ERR_clear_error();
    json_decref(root);
    return s;
}

void jwk_set_free(struct jwk_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->keys && i < s->n; i++)
        EVP_PKEY_free(s->keys[i].pkey);
    free(s->keys);
    free(s);
}

size_t jwk_set_count(const struct jwk_set *s)
{
    return s->n;
}

void jwk_set_describe(const struct jwk_set *s, char *out, size_t out_size)
{
    size_t o;

    o = (size_t)snprintf(out, out_size, "%zu key%s:", s->n,
                         s->n == 1 ? "" : "s");
    for (size_t i = 0; i < s->n && o < out_size; i++) {
        const struct jwk *k = &s->keys[i];

        char kid[80] = "no kid";

        if (k->has_kid)
            snprintf(kid, sizeof kid, "kid \"%.64s\"", k->kid);
        if (k->kty == KTY_RSA)
            o += (size_t)snprintf(out + o, out_size - o, "%s %s (RSA %d)",
                                  i ? "," : "", kid, k->bits);
        else
            o += (size_t)snprintf(out + o, out_size - o, "%s %s (EC %s)",
                                  i ? "," : "", kid, k->ec->crv);
    }
    if (s->skipped && o < out_size)
        snprintf(out + o, out_size - o, "; %zu skipped (first: %s)",
                 s->skipped, s->first_skip);
}

int jwk_set_find(const struct jwk_set *s, const struct cc_jws_header *h,
                 unsigned alg, const struct jwk **key)
{
    int seen = 0;

    if (!h->has_kid) {
        if (s->n > 1)
            return JWK_NEED_KID;
        *key = &s->keys[0];
        return (s->keys[0].algs & alg) ? JWK_FOUND : JWK_WRONG_ALG;
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct jwk *k = &s->keys[i];

        if (!k->has_kid || strcmp(k->kid, h->kid) != 0)
            continue;
        if (k->algs & alg) {
            *key = k;
            return JWK_FOUND;
        }
        seen = 1;
    }
    return seen ? JWK_WRONG_ALG : JWK_UNKNOWN_KID;
}

/* ------------------------------------------------------ verification */

/* JWS carries an ECDSA signature as raw r || s (RFC 7518 3.4); OpenSSL
 * verifies DER.  Converts sig (2 * coord bytes) into der (ECDSA_DER_MAX
 * bytes).  Returns the DER length, or -1. */
static int ecdsa_der(const unsigned char *sig, size_t coord,
                     unsigned char *der)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)coord, NULL);
    BIGNUM *s = BN_bin2bn(sig + coord, (int)coord, NULL);
    unsigned char *p = der;
    int n = -1;

    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        if (i2d_ECDSA_SIG(es, NULL) <= ECDSA_DER_MAX)
            n = i2d_ECDSA_SIG(es, &p);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n;
}

int jwk_verify(const struct jwk *key, unsigned alg, const char *in,
               size_t in_len, const unsigned char *sig, size_t sig_len)
{
    const struct alg *a = alg_by_bit(alg);
    unsigned char der[ECDSA_DER_MAX];
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    int n, ok = 0;

    if (!a || !(key->algs & alg))
        return 0;
    if (a->kty == KTY_EC) {
        if (sig_len != 2 * a->coord || (n = ecdsa_der(sig, a->coord,
                                                      der)) < 0)
            goto out;
        sig = der;
        sig_len = (size_t)n;
    } else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
        goto out;
    }
    md = EVP_MD_CTX_new();
    if (!md ||
        EVP_DigestVerifyInit(md, &pctx, a->md(), NULL, key->pkey) != 1)
        goto out;
    /* RFC 7518 3.5: MGF1 with the same hash, a salt the size of the hash
     * (OpenSSL's MGF1 digest defaults to the signature digest) */
    if (a->pss &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto out;
    ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)in,
                          in_len) == 1;
out:
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}
