/*
 * http.h - HTTP/1.1 request head parsing (RFC 9112) and the small helpers
 * around it: header lookup, comma-list tokens, query parameters, path
 * matching.  Requests only; no chunked request bodies.
 *
 * Pure functions over a caller-owned buffer: the parsed request points
 * into it, so it lives as long as the buffer.  No I/O, no allocation.
 */
#ifndef CC_HTTP_H
#define CC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define CC_HTTP_MAX_HEADERS 64

enum cc_http_method {
    CC_HTTP_OTHER = 0,
    CC_HTTP_GET,
    CC_HTTP_HEAD,
    CC_HTTP_POST,
    CC_HTTP_PUT,
    CC_HTTP_PATCH,
    CC_HTTP_DELETE,
    CC_HTTP_OPTIONS
};

struct cc_http_str {
    const char *p;
    size_t n;
};

struct cc_http_header {
    struct cc_http_str name;  /* as sent; compare case-insensitively */
    struct cc_http_str value; /* leading/trailing whitespace removed */
};

struct cc_http_request {
    enum cc_http_method method;
    struct cc_http_str method_str;
    struct cc_http_str target;    /* request-target as sent */
    struct cc_http_str path;      /* target up to '?' (not decoded) */
    struct cc_http_str query;     /* after '?', may be empty */
    int version_minor;            /* HTTP/1.x: 0 or 1 */
    size_t n_headers;
    struct cc_http_header headers[CC_HTTP_MAX_HEADERS];
    int64_t content_length;       /* -1 when absent */
    int keep_alive;               /* per version and Connection header */
    int has_transfer_encoding;    /* any Transfer-Encoding header */
};

/* Parse the request head at buf[0..len).  Returns the head's length
 * including the blank line (> 0); 0 when the head is incomplete and
 * shorter than max_head; or minus an HTTP status:
 *   -400 malformed request line or header, bad or repeated conflicting
 *        Content-Length, both Content-Length and Transfer-Encoding,
 *        whitespace before a colon, control characters;
 *   -431 the head exceeds max_head bytes or CC_HTTP_MAX_HEADERS headers;
 *   -505 a version other than HTTP/1.0 or HTTP/1.1.
 * Bare LF line endings are accepted (RFC 9112 section 2.2). */
int cc_http_parse_head(const char *buf, size_t len, size_t max_head,
                       struct cc_http_request *req);

/* The first header named name (case-insensitive), or NULL. */
const struct cc_http_header *cc_http_header(const struct cc_http_request *r,
                                            const char *name);

/* How many headers are named name (case-insensitive). */
size_t cc_http_header_count(const struct cc_http_request *r,
                            const char *name);

/* 1 when v is a Host value this server accepts and may repeat in a link:
 * a DNS name (letters, digits, '-', '_', '.'), an IPv4 address or an
 * [IPv6] literal, optionally ":port" (digits, 1 to 65535); nothing else
 * (no user info, path, space or percent sign). */
int cc_http_host_valid(struct cc_http_str v);

/* 1 when the comma-separated list value contains token
 * (case-insensitive, whitespace and ;parameters ignored). */
int cc_http_has_token(struct cc_http_str value, const char *token);

/* Find query parameter name in a query string and percent-decode its value
 * ('+' is a space) into out (NUL-terminated).  Returns the decoded length,
 * -1 when absent, -2 when out is too small or the encoding is bad. */
long cc_http_query_param(struct cc_http_str query, const char *name,
                         char *out, size_t out_size);

/* Percent-decode src into dst (at least src.n + 1 bytes); returns the
 * length or -1 on a bad escape or an encoded NUL. */
long cc_http_pct_decode(struct cc_http_str src, char *dst, int plus_is_space);

/* The standard reason phrase for status ("Unknown" if none). */
const char *cc_http_reason(int status);

#endif
