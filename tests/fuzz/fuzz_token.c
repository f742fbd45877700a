/* fuzz_token.c - libFuzzer target: bearer token handling shared by the
 * auth plugins (plugins/common/claims.c): JWS compact splitting, the
 * protected header, the payload, and claim mapping with the default
 * claims configuration.  No signature: that is the plugins' (and
 * OpenSSL's) part. */
#include "claims.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The host setters claims mapping calls, checking what they are given. */
static int set_str(cc_auth_req *r, const char *s)
{
    if (!s || strlen(s) > 4096)
        abort();
    (void)r;
    return CC_OK;
}

static int set_i64(cc_auth_req *r, int64_t v)
{
    (void)r;
    (void)v;
    return CC_OK;
}

static int set_int(cc_auth_req *r, int v)
{
    (void)r;
    (void)v;
    return CC_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cc_host_api host;
    static struct cc_claims_conf conf;
    static int ready;
    struct cc_jws_parts p;
    struct cc_jws_header h;
    char *tok = malloc(size ? size : 1), why[128];
    json_t *claims;

    if (!ready) {
        host.struct_size = sizeof host;
        host.auth_set_user = set_str;
        host.auth_set_patient = set_str;
        host.auth_set_professional = set_str;
        host.auth_set_error = set_str;
        host.auth_set_expiry = set_i64;
        host.auth_set_admin = set_int;
        cc_claims_conf_init(&conf);
        ready = 1;
    }
    memcpy(tok, data, size);
    if (size <= CC_TOKEN_MAX && cc_jws_split(tok, size, &p) == 0 &&
        cc_jws_header_parse(p.header, p.header_len, &h) == CC_JWS_OK &&
        (claims = cc_jws_payload_parse(p.payload, p.payload_len))) {
        cc_claims_apply(&conf, claims, 1765103400000000LL, &host, NULL,
                        why, sizeof why);
        json_decref(claims);
    }
    free(tok);
    return 0;
}
