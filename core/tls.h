/*
 * tls.h - the server's TLS context (OpenSSL, for libevent_openssl
 * bufferevents): certificate chain and key, protocol floor, ciphers,
 * optional client-certificate verification, and reload on SIGHUP.
 *
 * One context at a time, reachable through cc_tls_ctx().  A reload builds
 * a new context and swaps it in only when it loaded; connections already
 * open keep the context they were accepted with (OpenSSL reference
 * counts it), so a reload drops nobody.  Loop thread only.
 */
#ifndef CC_TLS_H
#define CC_TLS_H

#include <stddef.h>

struct ssl_ctx_st;

#define CC_TLS_VERIFY_OFF 0
#define CC_TLS_VERIFY_OPTIONAL 1
#define CC_TLS_VERIFY_REQUIRE 2

struct cc_tls_conf {
    char *certificate;   /* PEM chain: leaf first */
    char *key;           /* PEM private key */
    char *client_ca;     /* PEM CA bundle for client certificates */
    char *ciphers;       /* TLS 1.2 cipher list (TLS 1.3 suites fixed) */
    int min_version;     /* 12 or 13 */
    int verify_client;   /* CC_TLS_VERIFY_* */
};

/* Build and install the context from c.  Returns 0, or -1 with the
 * reason (naming the file) in err; on failure the previous context, if
 * any, stays in use. */
int cc_tls_load(const struct cc_tls_conf *c, char *err, size_t err_size);

/* The current context, or NULL when TLS is not configured. */
struct ssl_ctx_st *cc_tls_ctx(void);

/* Drop the current context (at exit). */
void cc_tls_free(void);

#endif
