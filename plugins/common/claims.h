/*
 * claims.h - the token handling shared by the auth plugins (jwt, jwks):
 * strict JWS compact parsing (segments, base64url, the protected header)
 * and mapping verified JWT claims to a carechat principal.
 *
 * Compiled into each auth plugin (a static convenience library): it uses
 * only libc, jansson and the public ABI headers, never libjwt, so a plugin
 * with its own signature code can reuse it.  Nothing here verifies a
 * signature: the caller does that between cc_jws_split()/
 * cc_jws_header_parse() and cc_claims_apply().
 *
 * Pure functions apart from the host calls of cc_claims_apply(); safe on
 * any thread for distinct objects.  Never logs: the caller decides what
 * to log, and a token or secret must never reach a log line.
 */
#ifndef CC_CLAIMS_H
#define CC_CLAIMS_H

#include <carechat/auth.h>

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Limits.  A token longer than CC_TOKEN_MAX is refused before any
 * parsing; claim names are configuration, kept short so every deny
 * message fits the host's error buffer. */
#define CC_TOKEN_MAX 8192
#define CC_CLAIM_NAME_MAX 64
#define CC_CLAIM_VALUE_MAX 512  /* issuer and audience settings */
#define CC_USER_ID_LEN_MAX 127  /* bytes, without the NUL */
#define CC_LEEWAY_MAX 3600

/* Client-safe deny messages shared by the auth plugins. */
#define CC_MSG_MALFORMED "Malformed token"
#define CC_MSG_TOO_LONG "Token too long"
#define CC_MSG_ALG "Token algorithm not allowed"
#define CC_MSG_TYP "Token type not allowed"
#define CC_MSG_SIGNATURE "Invalid token signature"
#define CC_MSG_EXPIRED "Token expired"
#define CC_MSG_NOT_YET "Token not yet valid"
#define CC_MSG_NO_EXP "Token has no expiry"
#define CC_MSG_ISSUER "Invalid token issuer"
#define CC_MSG_AUDIENCE "Invalid token audience"
#define CC_MSG_NO_USER "Token has no user id"

/* ------------------------------------------------------- auth input */

/* The client address of in, for log lines: remote_addr when in has it
 * (an input of any size), else "?".  Borrowed from in. */
const char *cc_auth_remote(const struct cc_auth_input *in);

/* NULL when in carries a token worth parsing (present, non-empty, at
 * most CC_TOKEN_MAX bytes), else the deny message (CC_MSG_MALFORMED or
 * CC_MSG_TOO_LONG).  in may be NULL or of any size. */
const char *cc_auth_token_check(const struct cc_auth_input *in);

/* ------------------------------------------------------- claims config */

/* How claims map to a principal, and which registered claims are checked.
 * Owned strings (malloc'd); issuer/audience NULL when not configured. */
struct cc_claims_conf {
    char *user_claim;         /* default "user_id"; "sub" when absent */
    char *patient_claim;      /* default "patient_id" */
    char *professional_claim; /* default "professional_id" */
    char *admin_claim;        /* default "carechat_admin" */
    char *name_claim;         /* default "name": a display name */
    char *issuer;             /* if set, iss must equal it */
    char *audience;           /* if set, aud must contain one of its
                                 comma-separated items (normalized: no
                                 blanks, no empty items) */
    int64_t leeway_s;         /* 0..CC_LEEWAY_MAX, applied to exp, nbf */
    int require_exp;          /* deny tokens without exp */
};

/* Fill c with the defaults (leeway 30 s, require_exp on).  Returns CC_OK
 * or CC_E_NOMEM (c is then safe to pass to cc_claims_conf_free). */
int cc_claims_conf_init(struct cc_claims_conf *c);

/* Apply one config key if it is a claims key: user_claim, patient_claim,
 * professional_claim, admin_claim, name_claim, issuer, audience, leeway,
 * require_exp.
 * audience may list several audiences, comma-separated (blanks around
 * the commas ignored): a token is accepted when its aud names any one.
 * Returns 1 when the key was taken, 0 when it is not a claims key (the
 * caller handles or refuses it), -1 for a bad value with a static reason
 * in *reason (or a memory failure, reason "out of memory").  value is
 * borrowed; a repeated key replaces the earlier value. */
int cc_claims_conf_set(struct cc_claims_conf *c, const char *key,
                       const char *value, const char **reason);

/* Free the strings of c (not c itself); c is left zeroed. */
void cc_claims_conf_free(struct cc_claims_conf *c);

/* ------------------------------------------------------ claims mapping */

/*
 * Check the registered claims of a VERIFIED token and map it to the
 * principal of req.  claims is the payload object (borrowed).  now_us is
 * the wall clock (host->now_real_us()).
 *
 * Checks, in order: exp (a number; expired when now >= exp + leeway;
 * absent is denied when require_exp), nbf (now + leeway < nbf is denied),
 * iss, aud (a string or an array of strings), then the user id (string,
 * or integer as decimal; non-empty, no control characters, at most
 * CC_USER_ID_LEN_MAX bytes), the patient and professional ids (UUID
 * strings when present; JSON null counts as absent) and the admin flag
 * (true or "true").  Only when all pass does it call the host setters:
 * auth_set_user, auth_set_patient / auth_set_professional when present,
 * auth_set_expiry (when exp is present), auth_set_admin and, with a host
 * of ABI 1.4 or later, auth_set_name when the name claim is a string (a
 * display name the host refuses is left out, never a reason to deny).
 *
 * Returns CC_AUTH_OK, or CC_AUTH_DENY after host->auth_set_error(req,
 * message); the message is also copied to why (when why_size > 0) so the
 * caller can log it at debug level.  Never logs by itself.
 */
int cc_claims_apply(const struct cc_claims_conf *c, json_t *claims,
                    int64_t now_us, const struct cc_host_api *host,
                    cc_auth_req *req, char *why, size_t why_size);

/* A new object holding only the members of claims that cc_claims_apply()
 * reads under c: exp, nbf, iss, aud, sub and the four configured claims.
 * cc_claims_apply() answers the same for it as for claims; what else a
 * provider puts in a token (roles, groups, names) is left out, so a
 * cache of accepted tokens holds a few hundred bytes each.  NULL when
 * out of memory. */
json_t *cc_claims_subset(const struct cc_claims_conf *c, json_t *claims);

/* ------------------------------------------------------- JWS compact */

/* Strict base64url (RFC 4648 section 5) as JWS uses it: alphabet
 * A-Z a-z 0-9 - _, no padding, no whitespace, canonical (unused trailing
 * bits zero).  Decodes src[0..len) into out.  Returns 0 and sets
 * *out_len, or -1 when src is not strict base64url or out_size is smaller
 * than CC_B64URL_DECODED_MAX(len). */
#define CC_B64URL_DECODED_MAX(len) ((len) / 4 * 3 + 2)
int cc_b64url_decode(const char *src, size_t len, unsigned char *out,
                     size_t out_size, size_t *out_len);

/* The three segments of a compact JWS, as offsets into the token. */
struct cc_jws_parts {
    const char *header;       /* borrowed from the token */
    size_t header_len;
    const char *payload;
    size_t payload_len;
    const char *signature;
    size_t signature_len;     /* may be 0: the caller decides */
    size_t signing_input_len; /* header "." payload */
};

/* Split tok[0..len) (need not be NUL-terminated) into exactly three
 * segments separated by '.', every byte in the base64url alphabet, header
 * and payload non-empty.  Returns 0, or -1 (malformed). */
int cc_jws_split(const char *tok, size_t len, struct cc_jws_parts *p);

/* The protected header fields the plugins act on. */
#define CC_JWS_ALG_MAX 16
#define CC_JWS_KID_MAX 256
struct cc_jws_header {
    char alg[CC_JWS_ALG_MAX];  /* as in the token, case preserved */
    char kid[CC_JWS_KID_MAX];  /* "" when absent */
    int has_kid;
    int typ_ok;                /* typ absent or "JWT" (any case) */
};

/* cc_jws_header_parse() results. */
#define CC_JWS_OK 0
#define CC_JWS_MALFORMED (-1) /* not base64url / not a JSON object / bad
                                 member types / duplicate members */
#define CC_JWS_BAD_ALG (-2)   /* alg missing, not a string or too long */
#define CC_JWS_CRIT (-3)      /* "crit" present: extensions we cannot
                                 honour (RFC 7515 4.1.11), refuse */

/* Decode and parse the header segment seg[0..len).  Fills h; the caller
 * compares h->alg with its pinned algorithm and checks h->typ_ok.
 * Returns one of CC_JWS_*. */
int cc_jws_header_parse(const char *seg, size_t len,
                        struct cc_jws_header *h);

/* cc_jws_split() then cc_jws_header_parse(), with the result as a deny
 * message: NULL when both passed, else CC_MSG_MALFORMED, or CC_MSG_ALG
 * when alg is missing or not a short string.  The caller still checks
 * h->alg against what it accepts, and h->typ_ok. */
const char *cc_jws_parse(const char *tok, size_t len, struct cc_jws_parts *p,
                         struct cc_jws_header *h);

/* Decode the payload segment into a JSON object (duplicate member names
 * refused, as RFC 7519 section 4 allows).  Returns a new reference, or
 * NULL when the segment is not base64url or not a JSON object. */
json_t *cc_jws_payload_parse(const char *seg, size_t len);

#endif
