/*
 * jwk.h - JSON Web Key Sets (RFC 7517) as OpenSSL public keys, and JWS
 * signature verification with them (RFC 7518: RS*, PS*, ES256, ES384).
 *
 * Owns the cryptography of the jwks plugin and nothing else: no I/O, no
 * host calls, no logging.  A key set is built on any thread (the fetch
 * thread does it) and is immutable afterwards; verification reads it
 * without locks, so a set must only be freed by the thread that uses it
 * (the loop, after swapping in a new one).
 *
 * Every key is bound at load time to the algorithms it may verify: its
 * type and curve (RSA: RS* and PS*; EC P-256: ES256; P-384: ES384),
 * narrowed by its own "alg" member and the configured allow list.  A
 * token's "alg" header selects nothing by itself; it must be one of the
 * bound algorithms of the key its "kid" names.  That is what keeps an
 * RS256 public key from ever serving as an HS256 secret, and "none" out.
 */
#ifndef JWK_H
#define JWK_H

#include "claims.h"

#include <stddef.h>

/* Algorithms as bits, for allow lists and key bindings. */
#define JWK_RS256 0x001u
#define JWK_RS384 0x002u
#define JWK_RS512 0x004u
#define JWK_PS256 0x008u
#define JWK_PS384 0x010u
#define JWK_PS512 0x020u
#define JWK_ES256 0x040u
#define JWK_ES384 0x080u

#define JWK_SET_MAX 64    /* keys read from one document; more refused */
#define JWK_RSA_MIN_BITS 2048
#define JWK_RSA_MAX_BITS 8192 /* bounds the cost of one verification */

struct jwk;     /* one public key with its kid and bound algorithms */
struct jwk_set; /* the usable keys of one JWKS document */

/* The bit of the JWS algorithm name (exact case), or 0 when it is not one
 * this module verifies (HS*, none, EdDSA, ES512, ...). */
unsigned jwk_alg_bit(const char *name);

/* Parse the JWKS document doc[0..len) and build the keys usable with the
 * algorithms in allowed.  Keys that are not for signatures ("use" other
 * than "sig", "key_ops" without "verify"), of an unsupported type or
 * curve, bound to an algorithm not allowed, or malformed are skipped and
 * counted (jwk_set_describe says why for the first).  Returns a new set
 * with at least one key, or NULL with the reason in err (not JSON, no
 * "keys" array, no usable key).  Thread-safe; never logs. */
struct jwk_set *jwk_set_parse(const char *doc, size_t len, unsigned allowed,
                              char *err, size_t err_size);

/* Free a set and its keys.  NULL is fine. */
void jwk_set_free(struct jwk_set *s);

/* Number of usable keys (at least 1). */
size_t jwk_set_count(const struct jwk_set *s);

/* A one-line summary for the log: the key ids and types, then what was
 * skipped and why ("2 keys: kid \"a\" (RSA 2048), kid \"b\" (EC P-256);
 * 1 skipped: kid \"c\": use is not \"sig\"").  Never secret material. */
void jwk_set_describe(const struct jwk_set *s, char *out, size_t out_size);

/* jwk_set_find() results. */
#define JWK_FOUND 0
#define JWK_UNKNOWN_KID (-1) /* the token names a kid the set lacks */
#define JWK_NEED_KID (-2)    /* no kid in the token, several keys */
#define JWK_WRONG_ALG (-3)   /* the key exists but is not bound to alg */

/* The key for a token whose protected header is h and whose algorithm is
 * alg (a single JWK_* bit): the first key with h's kid that is bound to
 * alg; without a kid, the only key of the set.  Sets *key on JWK_FOUND;
 * the key is borrowed from s. */
int jwk_set_find(const struct jwk_set *s, const struct cc_jws_header *h,
                 unsigned alg, const struct jwk **key);

/* Verify the JWS signature sig[0..sig_len) (decoded bytes: PKCS#1 v1.5
 * or PSS for RSA, raw r||s for ECDSA) of the signing input
 * in[0..in_len) with key and alg (a bit the key is bound to).  Returns 1
 * when valid, 0 otherwise (including a signature of the wrong length).
 * Leaves no error on OpenSSL's per-thread error queue. */
int jwk_verify(const struct jwk *key, unsigned alg, const char *in,
               size_t in_len, const unsigned char *sig, size_t sig_len);

#endif
