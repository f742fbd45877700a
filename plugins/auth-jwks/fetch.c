/*
 * fetch.c - JWKS documents from a file or over HTTP(S) (see fetch.h).
 *
 * One GET per call, on a private event_base made for it: evhttp for the
 * protocol (status, Content-Length or chunked bodies, a body limit), a
 * bufferevent_openssl under it for https, and evdns so that name lookup
 * is bounded by the same deadline as the rest.  libevent verifies no
 * certificates by itself: the SSL object gets SSL_VERIFY_PEER, the host
 * name (SSL_set1_host, or the IP address for a literal) and SNI, as
 * libevent's sample/https-client.c shows.
 */
#include "fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TICK_MS 100 /* how often a running fetch looks at *cancel */

struct fetch_src {
    char *path;         /* jwks_file, or NULL for a URL */
    char *url;          /* jwks_url as configured */
    char *host;         /* from the URL, without IPv6 brackets */
    char *host_header;  /* the Host: value */
    char *target;       /* path and query: the request target */
    int port;
    int tls;            /* https */
    int host_is_ip;     /* verify the certificate's IP, no SNI */
    SSL_CTX *ssl_ctx;   /* https only; shared, read-only after setup */
    unsigned timeout_ms;
};

/* One GET in progress: lives on fetch_get()'s stack. */
struct get {
    struct event_base *base;
    struct evhttp_connection *conn;
    const int *cancel;
    char *body;         /* the 200 response body, malloc'd */
    size_t len;
    int verify_error;   /* first certificate error, X509_V_* */
    int request_error;  /* EVREQ_HTTP_* + 1, 0 when none */
    char err[192];      /* set once, on failure */
};

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int is_ip(const char *host)
{
    unsigned char buf[16];

    return inet_pton(AF_INET, host, buf) == 1 ||
           inet_pton(AF_INET6, host, buf) == 1;
}

static int is_loopback(const char *host)
{
    struct in_addr a4;

    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return 1;
    return inet_pton(AF_INET, host, &a4) == 1 &&
           (ntohl(a4.s_addr) >> 24) == 127;
}

/* Parse url into s (host, port, target, Host header).  Returns NULL or
 * why the URL is refused. */
static const char *parse_url(const char *url, struct fetch_src *s)
{
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    const char *scheme, *host, *path, *query, *why = NULL;
    char hostbuf[256], hdr[300];
    int tls, port;
    size_t n;

    if (!u)
        return "not a URL";
    scheme = evhttp_uri_get_scheme(u);
    host = evhttp_uri_get_host(u);
    path = evhttp_uri_get_path(u);
    query = evhttp_uri_get_query(u);
    port = evhttp_uri_get_port(u);
    tls = scheme && strcasecmp(scheme, "https") == 0;
    n = host ? strlen(host) : 0;
    if (!tls && !(scheme && strcasecmp(scheme, "http") == 0))
        why = "must be an https:// URL (http:// only on loopback)";
    else if (n == 0 || n >= sizeof hostbuf)
        why = "the URL has no host (or too long a one)";
    else if (evhttp_uri_get_userinfo(u) || evhttp_uri_get_fragment(u))
        why = "no user name or fragment in the URL, please";
    if (why)
        goto out;
    if (host[0] == '[' && host[n - 1] == ']')
        snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)n - 2, host + 1);
    else
        snprintf(hostbuf, sizeof hostbuf, "%s", host);
    if (!tls && !is_loopback(hostbuf)) {
        why = "http:// is only for loopback tests: use https:// (keys "
              "fetched in the clear could be replaced on the way)";
        goto out;
    }
    s->tls = tls;
    s->port = port > 0 ? port : tls ? 443 : 80;
    s->host_is_ip = is_ip(hostbuf);
    if (port > 0)
        snprintf(hdr, sizeof hdr, "%s:%d", host, port);
    else
        snprintf(hdr, sizeof hdr, "%s", host);
    s->host = xstrdup(hostbuf);
    s->host_header = xstrdup(hdr);
    n = (path && *path ? strlen(path) : 1) + (query ? strlen(query) + 1 : 0);
    s->target = malloc(n + 1);
    if (!s->host || !s->host_header || !s->target) {
        why = "out of memory";
        goto out;
    }
    snprintf(s->target, n + 1, "%s%s%s", path && *path ? path : "/",
             query ? "?" : "", query ? query : "");
out:
    evhttp_uri_free(u);
    return why;
}

/* Free what s holds, not s. */
static void clear_src(struct fetch_src *s)
{
    SSL_CTX_free(s->ssl_ctx);
    free(s->path);
    free(s->url);
    free(s->host);
    free(s->host_header);
    free(s->target);
}

const char *fetch_url_check(const char *url)
{
    struct fetch_src s = { 0 };
    const char *why = parse_url(url, &s);

    clear_src(&s);
    return why;
}

/* The TLS client context: TLS 1.2 or later, peers verified against
 * ca_file or the system store.  Returns NULL with err. */
static SSL_CTX *tls_context(const char *ca_file, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int ok;

    if (!ctx) {
        snprintf(err, err_size, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* OpenSSL 3 reports a peer's close without close_notify as an error,
     * which libevent 2.1 then reports as a failed read. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(err, err_size, "cannot load CA certificates from %s",
                 ca_file ? ca_file : "the system store");
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

struct fetch_src *fetch_new(const char *path, const char *url,
                            const char *ca_file, unsigned timeout_ms,
                            char *err, size_t err_size)
{
    struct fetch_src *s = calloc(1, sizeof *s);
    const char *why = NULL;

    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->timeout_ms = timeout_ms;
    if (path)
        why = (s->path = xstrdup(path)) ? NULL : "out of memory";
    else if ((why = parse_url(url, s)) == NULL)
        why = (s->url = xstrdup(url)) ? NULL : "out of memory";
    if (why) {
        snprintf(err, err_size, "%s", why);
        fetch_free(s);
        return NULL;
    }
    if (s->tls && !(s->ssl_ctx = tls_context(ca_file, err, err_size))) {
        fetch_free(s);
        return NULL;
    }
    return s;
}

const char *fetch_where(const struct fetch_src *s)
{
    return s->path ? s->path : s->url;
}

void fetch_free(struct fetch_src *s)
{
    if (!s)
        return;
    clear_src(s);
    free(s);
}

/* ------------------------------------------------------------- files */

/* The whole of the regular file path, at most FETCH_BODY_MAX bytes. */
static char *get_file(const char *path, size_t *len, char *err,
                      size_t err_size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    char *buf = NULL;
    struct stat st;
    size_t n = 0;
    ssize_t r = 0;

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, err_size, "cannot read %s: %s", path,
                 fd < 0 ? strerror(errno) : "not a regular file");
        goto out;
    }
    buf = malloc(FETCH_BODY_MAX + 1);
    while (buf && n < FETCH_BODY_MAX + 1) {
        r = read(fd, buf + n, FETCH_BODY_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    if (!buf || r < 0 || n > FETCH_BODY_MAX) {
        snprintf(err, err_size, "cannot read %s: %s", path,
                 !buf ? "out of memory" : r < 0 ? strerror(errno)
                                               : "larger than 256 KiB");
        free(buf);
        buf = NULL;
        goto out;
    }
    buf[n] = '\0';
    *len = n;
out:
    if (fd >= 0)
        close(fd);
    return buf;
}

/* -------------------------------------------------------------- HTTP */

/* Remember the first certificate problem, to say why a handshake
 * failed. */
static int on_verify(int ok, X509_STORE_CTX *x)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(
        x, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct get *g = ssl ? SSL_get_app_data(ssl) : NULL;

    if (!ok && g && !g->verify_error)
        g->verify_error = X509_STORE_CTX_get_error(x);
    return ok;
}

static void on_request_error(enum evhttp_request_error e, void *arg)
{
    struct get *g = arg;

    g->request_error = (int)e + 1;
}

/* Why a request ended without a response. */
static void explain_failure(struct get *g)
{
    static const char *const why[] = {
        [EVREQ_HTTP_TIMEOUT] = "timed out",
        [EVREQ_HTTP_EOF] = "connection closed before a complete response",
        [EVREQ_HTTP_INVALID_HEADER] = "malformed HTTP response",
        [EVREQ_HTTP_BUFFER_ERROR] = "connection failed (refused, reset or "
                                    "TLS handshake failure)",
        [EVREQ_HTTP_REQUEST_CANCEL] = "request cancelled",
        [EVREQ_HTTP_DATA_TOO_LONG] = "response larger than 256 KiB",
    };
    struct bufferevent *bev = NULL;
    int e = g->request_error - 1, dns = 0;

    if (g->err[0])
        return;
    if (g->conn)
        bev = evhttp_connection_get_bufferevent(g->conn);
    if (bev)
        dns = bufferevent_socket_get_dns_error(bev);
    if (dns)
        snprintf(g->err, sizeof g->err, "cannot resolve the host name: %s",
                 evutil_gai_strerror(dns));
    else if (g->verify_error)
        snprintf(g->err, sizeof g->err, "certificate verification failed: "
                 "%s", X509_verify_cert_error_string(g->verify_error));
    else if (e >= 0 && (size_t)e < sizeof why / sizeof *why && why[e])
        snprintf(g->err, sizeof g->err, "%s", why[e]);
    else
        snprintf(g->err, sizeof g->err, "connection failed (refused, "
                 "reset or TLS handshake failure)");
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct get *g = arg;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    struct evbuffer *in;

    if (code == 200) {
        in = evhttp_request_get_input_buffer(req);
        g->len = evbuffer_get_length(in);
        g->body = malloc(g->len + 1);
        if (g->body) {
            evbuffer_remove(in, g->body, g->len);
            g->body[g->len] = '\0';
        } else {
            snprintf(g->err, sizeof g->err, "out of memory");
        }
    } else if (code != 0) {
        snprintf(g->err, sizeof g->err, "HTTP status %d (expected 200; "
                 "redirects are not followed)", code);
    } else {
        explain_failure(g);
    }
    event_base_loopbreak(g->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct get *g = arg;

    if (__atomic_load_n(g->cancel, __ATOMIC_ACQUIRE)) {
        snprintf(g->err, sizeof g->err, "stopped");
        event_base_loopbreak(g->base);
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct get *g = arg;

    snprintf(g->err, sizeof g->err, "timed out");
    event_base_loopbreak(g->base);
}

/* The TLS bufferevent for s: the peer's chain verified, and its name
 * (or IP address) checked; SNI for names.  NULL on failure. */
static struct bufferevent *tls_bev(const struct fetch_src *s,
                                   struct get *g)
{
    SSL *ssl = SSL_new(s->ssl_ctx);
    struct bufferevent *bev = NULL;
    int ok;

    if (!ssl)
        return NULL;
    SSL_set_app_data(ssl, g);
    SSL_set_verify(ssl, SSL_VERIFY_PEER, on_verify);
    if (s->host_is_ip)
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                           s->host) == 1;
    else
        ok = SSL_set_tlsext_host_name(ssl, s->host) == 1 &&
             SSL_set1_host(ssl, s->host) == 1;
    if (ok)
        bev = bufferevent_openssl_socket_new(
            g->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
            BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Connect (lazily: evhttp connects when the request is made) and send
 * the GET.  Returns the connection, or NULL. */
static struct evhttp_connection *send_get(const struct fetch_src *s,
                                          struct get *g,
                                          struct evdns_base *dns)
{
    struct bufferevent *bev = s->tls ? tls_bev(s, g) : NULL;
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    struct timeval tv = { s->timeout_ms / 1000,
                          (s->timeout_ms % 1000) * 1000 };

    if (!s->tls || bev)
        conn = evhttp_connection_base_bufferevent_new(
            g->base, dns, bev, s->host, (unsigned short)s->port);
    if (!conn) {
        if (bev)
            bufferevent_free(bev);
        return NULL;
    }
    g->conn = conn; /* before any callback can run */
    evhttp_connection_set_timeout_tv(conn, &tv);
    evhttp_connection_set_max_body_size(conn, FETCH_BODY_MAX);
    evhttp_connection_set_max_headers_size(conn, 64 * 1024);
    req = evhttp_request_new(on_response, g);
    if (!req)
        goto fail;
    evhttp_request_set_error_cb(req, on_request_error);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", s->host_header);
    evhttp_add_header(h, "Accept", "application/jwk-set+json, "
                      "application/json");
    evhttp_add_header(h, "User-Agent", "carechat-jwks/1.0");
    evhttp_add_header(h, "Connection", "close");
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, s->target) == 0)
        return conn;
fail:
    evhttp_connection_free(conn);
    g->conn = NULL;
    return NULL;
}

static char *get_url(const struct fetch_src *s, const int *cancel,
                     size_t *len, char *err, size_t err_size)
{
    struct get g = { .cancel = cancel };
    struct timeval tick = { 0, TICK_MS * 1000 };
    struct timeval deadline = { s->timeout_ms / 1000,
                                (s->timeout_ms % 1000) * 1000 };
    struct evdns_base *dns = NULL;
    struct evhttp_connection *conn = NULL;
    struct event *t = NULL, *d = NULL;

    g.base = event_base_new();
    /* Without evdns (no resolver configuration), evhttp resolves with
     * getaddrinfo(): blocking, but this is the fetch thread. */
    if (g.base && !s->host_is_ip)
        dns = evdns_base_new(g.base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (g.base) {
        t = event_new(g.base, -1, EV_PERSIST, on_tick, &g);
        d = evtimer_new(g.base, on_deadline, &g);
    }
    if (t && d)
        conn = send_get(s, &g, dns);
    if (conn && event_add(t, &tick) == 0 && event_add(d, &deadline) == 0)
        event_base_dispatch(g.base);
    else
        snprintf(g.err, sizeof g.err, "cannot start the request");
    if (conn)
        evhttp_connection_free(conn);
    if (t)
        event_free(t);
    if (d)
        event_free(d);
    if (dns)
        evdns_base_free(dns, 0);
    if (g.base)
        event_base_free(g.base);
    ERR_clear_error();
    if (!g.body) {
        snprintf(err, err_size, "%s", g.err[0] ? g.err : "no response");
        return NULL;
    }
    *len = g.len;
    return g.body;
}

char *fetch_get(const struct fetch_src *s, const int *cancel, size_t *len,
                char *err, size_t err_size)
{
    return s->path ? get_file(s->path, len, err, err_size)
                   : get_url(s, cancel, len, err, err_size);
}
