/*
 * tls.c - the server's TLS context (see tls.h).
 *
 * Policy: TLS 1.2 at least (1.3 preferred: OpenSSL negotiates the highest
 * both sides have), forward-secret AEAD suites only for 1.2, server
 * cipher preference, no compression, no renegotiation, no session
 * tickets (stateless tickets would need key rotation across nodes; the
 * session cache is per process).  TLS 1.3 clients get stateful tickets
 * from that cache and resume on the same node (conn.c keeps a session
 * resumable when its connection ends without a close_notify).
 */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:" \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
    "ECDHE-RSA-CHACHA20-POLY1305"

static SSL_CTX *current;

/* OpenSSL's last error as text, after what. */
static void ssl_error(char *err, size_t size, const char *what,
                      const char *file)
{
    unsigned long e = ERR_get_error();
    char buf[256];

    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    snprintf(err, size, "%s%s%s: %s", what, file ? " " : "",
             file ? file : "", e ? buf : "unknown error");
}

int cc_tls_load(const struct cc_tls_conf *c, char *err, size_t err_size)
{
    SSL_CTX *ctx;
    long opts = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET;

    if (!c->certificate || !c->key) {
        snprintf(err, err_size, "TLS needs tls_certificate and tls_key");
        return -1;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error(err, err_size, "SSL_CTX_new", NULL);
        return -1;
    }
    SSL_CTX_set_options(ctx, (uint64_t)opts);
    SSL_CTX_set_min_proto_version(ctx, c->min_version == 13
                                           ? TLS1_3_VERSION
                                           : TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (!SSL_CTX_set_cipher_list(ctx, c->ciphers ? c->ciphers
                                                 : DEFAULT_CIPHERS)) {
        ssl_error(err, err_size, "tls_ciphers: no usable cipher in",
                  c->ciphers);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, c->certificate) != 1) {
        ssl_error(err, err_size, "cannot load the certificate chain",
                  c->certificate);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
        ssl_error(err, err_size,
                  ERR_GET_REASON(ERR_peek_last_error()) ==
                          X509_R_KEY_VALUES_MISMATCH
                      ? "the key does not match the certificate"
                      : "cannot load the private key",
                  c->key);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, err_size, "the key does not match the certificate",
                  c->key);
        goto fail;
    }
    if (c->verify_client != CC_TLS_VERIFY_OFF) {
        STACK_OF(X509_NAME) *names;

        if (!c->client_ca) {
            snprintf(err, err_size, "tls_verify_client needs "
                     "tls_client_ca");
            goto fail;
        }
        if (SSL_CTX_load_verify_locations(ctx, c->client_ca, NULL) != 1) {
            ssl_error(err, err_size, "cannot load the client CA",
                      c->client_ca);
            goto fail;
        }
        if ((names = SSL_load_client_CA_file(c->client_ca)))
            SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
                                    (c->verify_client ==
                                             CC_TLS_VERIFY_REQUIRE
                                         ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                         : 0),
                           NULL);
    }
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"carechat",
                                   8);
    if (current)
        SSL_CTX_free(current); /* open connections hold their own ref */
    current = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    return -1;
}

struct ssl_ctx_st *cc_tls_ctx(void)
{
    return current;
}

void cc_tls_free(void)
{
    if (current)
        SSL_CTX_free(current);
    current = NULL;
}
