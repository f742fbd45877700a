/*
 * claims.c - strict JWS compact parsing and JWT claim mapping shared by
 * the auth plugins (see claims.h).  No libjwt here: signature checking is
 * the plugin's business, this file only reads bytes and JSON.
 */
#include "claims.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ----------------------------------------------------------- base64url */

static int b64url_val(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

int cc_b64url_decode(const char *src, size_t len, unsigned char *out,
                     size_t out_size, size_t *out_len)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (len % 4 == 1 || out_size < CC_B64URL_DECODED_MAX(len))
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_val((unsigned char)src[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical: leftover bits must be zero */
        return -1;
    *out_len = o;
    return 0;
}

/* Decode a segment and parse it as a JSON object, refusing duplicate
 * member names.  Returns a new reference or NULL. */
static json_t *segment_json(const char *seg, size_t len)
{
    size_t cap = CC_B64URL_DECODED_MAX(len), n;
    unsigned char *buf;
    json_t *j = NULL;
    json_error_t jerr;

    if (len == 0 || len > CC_TOKEN_MAX)
        return NULL;
    buf = malloc(cap);
    if (!buf)
        return NULL;
    if (cc_b64url_decode(seg, len, buf, cap, &n) == 0)
        j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &jerr);
    free(buf);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

/* ------------------------------------------------------- JWS compact */

int cc_jws_split(const char *tok, size_t len, struct cc_jws_parts *p)
{
    size_t dots[2], ndots = 0;

    if (!tok || len == 0 || len > CC_TOKEN_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (tok[i] == '.') {
            if (ndots == 2)
                return -1;
            dots[ndots++] = i;
        } else if (b64url_val((unsigned char)tok[i]) < 0) {
            return -1;
        }
    }
    if (ndots != 2 || dots[0] == 0 || dots[1] == dots[0] + 1)
        return -1;
    p->header = tok;
    p->header_len = dots[0];
    p->payload = tok + dots[0] + 1;
    p->payload_len = dots[1] - dots[0] - 1;
    p->signature = tok + dots[1] + 1;
    p->signature_len = len - dots[1] - 1;
    p->signing_input_len = dots[1];
    return 0;
}

/* Copy the string member name of obj into out.  Returns 0 when absent
 * (out = ""), 1 when copied, -1 when not a string or too long. */
static int header_string(json_t *obj, const char *name, char *out,
                         size_t out_size)
{
    json_t *v = json_object_get(obj, name);
    size_t n;

    out[0] = '\0';
    if (!v)
        return 0;
    if (!json_is_string(v))
        return -1;
    n = json_string_length(v);
    if (n >= out_size)
        return -1;
    memcpy(out, json_string_value(v), n + 1);
    return 1;
}

int cc_jws_header_parse(const char *seg, size_t len,
                        struct cc_jws_header *h)
{
    json_t *hdr = segment_json(seg, len);
    char typ[16];
    int rc = CC_JWS_OK, t;

    memset(h, 0, sizeof *h);
    if (!hdr)
        return CC_JWS_MALFORMED;
    h->has_kid = header_string(hdr, "kid", h->kid, sizeof h->kid);
    t = header_string(hdr, "typ", typ, sizeof typ);
    if (h->has_kid < 0) {
        rc = CC_JWS_MALFORMED;
    } else if (json_object_get(hdr, "crit")) {
        rc = CC_JWS_CRIT;
    } else if (header_string(hdr, "alg", h->alg, sizeof h->alg) != 1) {
        rc = CC_JWS_BAD_ALG;
    } else {
        /* A typ too long for typ[] is not "JWT": refused, not malformed. */
        h->typ_ok = t == 0 || (t == 1 && strcasecmp(typ, "JWT") == 0);
    }
    json_decref(hdr);
    return rc;
}

const char *cc_jws_parse(const char *tok, size_t len, struct cc_jws_parts *p,
                         struct cc_jws_header *h)
{
    if (cc_jws_split(tok, len, p) < 0)
        return CC_MSG_MALFORMED;
    switch (cc_jws_header_parse(p->header, p->header_len, h)) {
    case CC_JWS_OK:
        return NULL;
    case CC_JWS_BAD_ALG:
        return CC_MSG_ALG;
    default:
        return CC_MSG_MALFORMED;
    }
}

json_t *cc_jws_payload_parse(const char *seg, size_t len)
{
    return segment_json(seg, len);
}

/* ------------------------------------------------------- auth input */

const char *cc_auth_remote(const struct cc_auth_input *in)
{
    if (in && CC_HAS_MEMBER(in, struct cc_auth_input, remote_addr) &&
        in->remote_addr)
        return in->remote_addr;
    return "?";
}

const char *cc_auth_token_check(const struct cc_auth_input *in)
{
    if (!in || !CC_HAS_MEMBER(in, struct cc_auth_input, token_len) ||
        !in->token || in->token_len == 0)
        return CC_MSG_MALFORMED;
    if (in->token_len > CC_TOKEN_MAX)
        return CC_MSG_TOO_LONG;
    return NULL;
}

/* ------------------------------------------------------- claims config */

static int set_string(char **field, const char *value)
{
    char *s = strdup(value);

    if (!s)
        return -1;
    free(*field);
    *field = s;
    return 0;
}

int cc_claims_conf_init(struct cc_claims_conf *c)
{
    memset(c, 0, sizeof *c);
    c->leeway_s = 30;
    c->require_exp = 1;
    if (set_string(&c->user_claim, "user_id") < 0 ||
        set_string(&c->patient_claim, "patient_id") < 0 ||
        set_string(&c->professional_claim, "professional_id") < 0 ||
        set_string(&c->admin_claim, "carechat_admin") < 0 ||
        set_string(&c->name_claim, "name") < 0)
        return CC_E_NOMEM;
    return CC_OK;
}

void cc_claims_conf_free(struct cc_claims_conf *c)
{
    free(c->user_claim);
    free(c->patient_claim);
    free(c->professional_claim);
    free(c->admin_claim);
    free(c->name_claim);
    free(c->issuer);
    free(c->audience);
    memset(c, 0, sizeof *c);
}

/* A claim name: 1..CC_CLAIM_NAME_MAX visible ASCII characters. */
static int valid_claim_name(const char *v)
{
    size_t n = strlen(v);

    if (n == 0 || n > CC_CLAIM_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
            return 0;
    return 1;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };

    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Decimal seconds 0..CC_LEEWAY_MAX, digits only. */
static int parse_leeway(const char *v, int64_t *out)
{
    char *end;
    long long n;

    if (*v < '0' || *v > '9')
        return -1;
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || *end || n < 0 || n > CC_LEEWAY_MAX)
        return -1;
    *out = n;
    return 0;
}

/* The audience setting as stored: the comma-separated items of value
 * without the blanks around them.  Returns a new string, or NULL with a
 * static reason (an empty item, or out of memory). */
static char *audience_list(const char *value, const char **reason)
{
    char *out = malloc(strlen(value) + 1), *o = out;
    const char *p = value;

    if (!out) {
        *reason = "out of memory";
        return NULL;
    }
    for (;;) {
        size_t n;

        p += strspn(p, " \t");
        n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0) {
            free(out);
            *reason = "an empty audience in the list (separate "
                      "audiences with commas)";
            return NULL;
        }
        memcpy(o, p, n);
        o += n;
        p += strcspn(p, ",");
        if (!*p++)
            break;
        *o++ = ',';
    }
    *o = '\0';
    return out;
}

int cc_claims_conf_set(struct cc_claims_conf *c, const char *key,
                       const char *value, const char **reason)
{
    static const struct {
        const char *key;
        size_t off;
    } names[] = {
        { "user_claim", offsetof(struct cc_claims_conf, user_claim) },
        { "patient_claim", offsetof(struct cc_claims_conf, patient_claim) },
        { "professional_claim",
          offsetof(struct cc_claims_conf, professional_claim) },
        { "admin_claim", offsetof(struct cc_claims_conf, admin_claim) },
        { "name_claim", offsetof(struct cc_claims_conf, name_claim) },
    };

    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(key, names[i].key) != 0)
            continue;
        if (!valid_claim_name(value)) {
            *reason = "must be a claim name of 1 to 64 visible ASCII "
                      "characters";
            return -1;
        }
        if (set_string((char **)((char *)c + names[i].off), value) < 0)
            goto nomem;
        return 1;
    }
    if (strcmp(key, "issuer") == 0 || strcmp(key, "audience") == 0) {
        size_t n = strlen(value);

        if (n == 0 || n > CC_CLAIM_VALUE_MAX) {
            *reason = "must be 1 to 512 characters (leave the key out "
                      "to skip the check)";
            return -1;
        }
        if (key[0] == 'a') {
            char *list = audience_list(value, reason);

            if (!list)
                return -1;
            free(c->audience);
            c->audience = list;
        } else if (set_string(&c->issuer, value) < 0) {
            goto nomem;
        }
        return 1;
    }
    if (strcmp(key, "leeway") == 0) {
        if (parse_leeway(value, &c->leeway_s) < 0) {
            *reason = "must be a whole number of seconds from 0 to 3600";
            return -1;
        }
        return 1;
    }
    if (strcmp(key, "require_exp") == 0) {
        if (parse_bool(value, &c->require_exp) < 0) {
            *reason = "must be true or false";
            return -1;
        }
        return 1;
    }
    return 0;
nomem:
    *reason = "out of memory";
    return -1;
}

/* ------------------------------------------------------ claims mapping */

/* The member name of claims, JSON null counting as absent. */
static json_t *claim(json_t *claims, const char *name)
{
    json_t *v = json_object_get(claims, name);

    return json_is_null(v) ? NULL : v;
}

/* A NumericDate claim (RFC 7519 2): 0 absent, 1 set, -1 not a number. */
static int numeric_date(json_t *claims, const char *name, double *out)
{
    json_t *v = claim(claims, name);

    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 1;
}

/* exp as whole unix seconds for the host: the integer as given, a real
 * rounded down, both clamped to int64_t. */
static int64_t expiry_seconds(json_t *claims, const char *name)
{
    json_t *v = claim(claims, name);
    double d;

    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    d = json_number_value(v);
    if (d >= 9.2e18)
        return INT64_MAX;
    if (d <= -9.2e18)
        return INT64_MIN;
    return (int64_t)d - (d < (double)(int64_t)d);
}

/* The moment the token stops being accepted: exp plus the leeway that
 * check_times() grants, saturating. */
static int64_t expiry_with_leeway(int64_t exp, int64_t leeway)
{
    return exp > INT64_MAX - leeway ? INT64_MAX : exp + leeway;
}

static int check_times(const struct cc_claims_conf *c, json_t *claims,
                       int64_t now_us, const char **msg)
{
    double now = (double)now_us / 1e6, leeway = (double)c->leeway_s;
    double exp = 0, nbf = 0;
    int has_exp = numeric_date(claims, "exp", &exp);
    int has_nbf = numeric_date(claims, "nbf", &nbf);

    if (has_exp < 0 || has_nbf < 0)
        *msg = CC_MSG_MALFORMED;
    else if (has_exp == 0 && c->require_exp)
        *msg = CC_MSG_NO_EXP;
    else if (has_exp && now >= exp + leeway)
        *msg = CC_MSG_EXPIRED;
    else if (has_nbf && now + leeway < nbf)
        *msg = CC_MSG_NOT_YET;
    else
        return 0;
    return -1;
}

/* 1 when the JSON string v is one of the items of list (the normalized
 * comma-separated audience setting). */
static int in_list(json_t *v, const char *list)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (!s)
        return 0;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");

        if (len == n && memcmp(p, s, n) == 0)
            return 1;
        p += len;
        if (!*p)
            return 0;
    }
}

/* aud (RFC 7519 4.1.3): a string, or an array of strings, containing one
 * of the configured audiences. */
static int audience_ok(json_t *aud, const char *list)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud))
        return in_list(aud, list);
    if (!json_is_array(aud))
        return 0;
    json_array_foreach(aud, i, v) {
        if (in_list(v, list))
            return 1;
    }
    return 0;
}

static int check_iss_aud(const struct cc_claims_conf *c, json_t *claims,
                         const char **msg)
{
    json_t *iss = claim(claims, "iss");

    if (c->issuer && !(json_is_string(iss) &&
                       strcmp(json_string_value(iss), c->issuer) == 0)) {
        *msg = CC_MSG_ISSUER;
        return -1;
    }
    if (c->audience && !audience_ok(claim(claims, "aud"), c->audience)) {
        *msg = CC_MSG_AUDIENCE;
        return -1;
    }
    return 0;
}

/* The user id: the configured claim, else "sub"; a string (valid UTF-8,
 * jansson's guarantee, without control characters) or an integer.  Fills
 * out (CC_USER_ID_LEN_MAX + 1 bytes).  Returns 0 or -1. */
static int user_id(const struct cc_claims_conf *c, json_t *claims,
                   char *out)
{
    json_t *v = claim(claims, c->user_claim);
    const char *s;
    size_t n;

    if (!v)
        v = claim(claims, "sub");
    if (json_is_integer(v)) {
        snprintf(out, CC_USER_ID_LEN_MAX + 1, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    s = json_string_value(v);
    n = json_string_length(v);
    if (n == 0 || n > CC_USER_ID_LEN_MAX || strlen(s) != n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        /* C0, DEL, and C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F) */
        if (ch < 0x20 || ch == 0x7f ||
            (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0))
            return -1;
    }
    memcpy(out, s, n + 1);
    return 0;
}

/* 8-4-4-4-12 hex digits, either case. */
static int is_uuid(const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdefABCDEF";

    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!s[i] || !strchr(hex, s[i])) {
            return 0;
        }
    }
    return 1;
}

/* A profile id claim: NULL when absent, the UUID string, or *bad = 1. */
static const char *profile_id(json_t *claims, const char *name, int *bad)
{
    json_t *v = claim(claims, name);

    if (!v)
        return NULL;
    if (json_is_string(v) &&
        is_uuid(json_string_value(v), json_string_length(v)))
        return json_string_value(v);
    *bad = 1;
    return NULL;
}

static int is_admin(json_t *claims, const char *name)
{
    json_t *v = claim(claims, name);

    return json_is_true(v) ||
           (json_is_string(v) && strcmp(json_string_value(v), "true") == 0);
}

static int deny(const struct cc_host_api *host, cc_auth_req *req,
                const char *msg, char *why, size_t why_size)
{
    host->auth_set_error(req, msg);
    if (why_size > 0)
        snprintf(why, why_size, "%s", msg);
    return CC_AUTH_DENY;
}

/* Keep cc_claims_subset() in step: it copies what this reads. */
int cc_claims_apply(const struct cc_claims_conf *c, json_t *claims,
                    int64_t now_us, const struct cc_host_api *host,
                    cc_auth_req *req, char *why, size_t why_size)
{
    char user[CC_USER_ID_LEN_MAX + 1], msg[CC_CLAIM_NAME_MAX + 32];
    const char *m = NULL, *patient, *professional;
    int bad_patient = 0, bad_professional = 0;

    if (!json_is_object(claims))
        return deny(host, req, CC_MSG_MALFORMED, why, why_size);
    if (check_times(c, claims, now_us, &m) < 0 ||
        check_iss_aud(c, claims, &m) < 0)
        return deny(host, req, m, why, why_size);
    if (user_id(c, claims, user) < 0)
        return deny(host, req, CC_MSG_NO_USER, why, why_size);
    patient = profile_id(claims, c->patient_claim, &bad_patient);
    professional = profile_id(claims, c->professional_claim,
                              &bad_professional);
    if (bad_patient || bad_professional) {
        snprintf(msg, sizeof msg, "Invalid %s claim",
                 bad_patient ? c->patient_claim : c->professional_claim);
        return deny(host, req, msg, why, why_size);
    }
    /* All checks passed: only now does the principal take shape, so a
     * denied request never carries half of one. */
    if (host->auth_set_user(req, user) != CC_OK)
        return deny(host, req, CC_MSG_NO_USER, why, why_size);
    if (patient && host->auth_set_patient(req, patient) != CC_OK) {
        snprintf(msg, sizeof msg, "Invalid %s claim", c->patient_claim);
        return deny(host, req, msg, why, why_size);
    }
    if (professional &&
        host->auth_set_professional(req, professional) != CC_OK) {
        snprintf(msg, sizeof msg, "Invalid %s claim", c->professional_claim);
        return deny(host, req, msg, why, why_size);
    }
    if (claim(claims, "exp"))
        host->auth_set_expiry(req, expiry_with_leeway(
                                       expiry_seconds(claims, "exp"),
                                       c->leeway_s));
    host->auth_set_admin(req, is_admin(claims, c->admin_claim));
    if (CC_HAS_MEMBER(host, struct cc_host_api, auth_set_name) &&
        host->auth_set_name &&
        json_is_string(json_object_get(claims, c->name_claim)))
        host->auth_set_name(req, json_string_value(
                                     json_object_get(claims, c->name_claim)));
    return CC_AUTH_OK;
}

json_t *cc_claims_subset(const struct cc_claims_conf *c, json_t *claims)
{
    const char *names[] = { "exp", "nbf", "iss", "aud", "sub",
                            c->user_claim, c->patient_claim,
                            c->professional_claim, c->admin_claim,
                            c->name_claim };
    json_t *out = json_object();

    if (!out)
        return NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        json_t *v = json_object_get(claims, names[i]);

        if (v && json_object_set(out, names[i], v) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
