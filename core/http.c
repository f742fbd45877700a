/*
 * http.c - HTTP/1.1 request head parsing (see http.h).
 *
 * A single pass over the buffer: request line, then header lines until
 * the empty line.  Strict where ambiguity could be abused (request
 * smuggling: conflicting Content-Length, Content-Length with
 * Transfer-Encoding, whitespace before the colon, obsolete folding),
 * lenient where RFC 9112 allows (bare LF, leading empty lines).
 */
#include "http.h"

#include <ctype.h>

#include <stddef.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";

    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
        (c >= 'A' && c <= 'Z'))
        return 1;
    return c && memchr(extra, c, sizeof extra - 1) != NULL;
}

/* Bytes allowed in a field value: VCHAR, obs-text, SP, HTAB. */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Find the end of the line starting at p: sets *eol to the first byte of
 * the terminator and returns the start of the next line, or NULL when no
 * LF is in [p, end). */
static const char *line_end(const char *p, const char *end, const char **eol)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));

    if (!lf)
        return NULL;
    *eol = (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
    return lf + 1;
}

static int str_ieq(struct cc_http_str s, const char *lit)
{
    size_t n = strlen(lit);

    return s.n == n && strncasecmp(s.p, lit, n) == 0;
}

static enum cc_http_method method_of(struct cc_http_str m)
{
    static const struct {
        const char *name;
        enum cc_http_method m;
    } tab[] = {
        { "GET", CC_HTTP_GET },       { "HEAD", CC_HTTP_HEAD },
        { "POST", CC_HTTP_POST },     { "PUT", CC_HTTP_PUT },
        { "PATCH", CC_HTTP_PATCH },   { "DELETE", CC_HTTP_DELETE },
        { "OPTIONS", CC_HTTP_OPTIONS },
    };

    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (m.n == strlen(tab[i].name) &&
            memcmp(m.p, tab[i].name, m.n) == 0)
            return tab[i].m;
    return CC_HTTP_OTHER;
}

/* A server must accept a target in absolute form ("http://host/path",
 * RFC 9112 3.2.2), as proxies and some clients send it: the path is what
 * follows the authority ("/" when nothing does). */
static void absolute_form_path(struct cc_http_request *r)
{
    static const char root[] = "/";
    const char *p = r->path.p, *end = r->path.p + r->path.n, *slash;
    size_t skip;

    if (r->path.n >= 7 && strncasecmp(p, "http://", 7) == 0)
        skip = 7;
    else if (r->path.n >= 8 && strncasecmp(p, "https://", 8) == 0)
        skip = 8;
    else
        return;
    slash = memchr(p + skip, '/', (size_t)(end - p - (ptrdiff_t)skip));
    r->path.p = slash ? slash : root;
    r->path.n = slash ? (size_t)(end - slash) : 1;
}

/* "METHOD SP target SP HTTP/1.x" in [p, eol).  Returns 0 or -status. */
static int parse_request_line(const char *p, const char *eol,
                              struct cc_http_request *r)
{
    const char *s = p, *q;

    while (p < eol && is_tchar((unsigned char)*p))
        p++;
    if (p == s || p >= eol || *p != ' ')
        return -400;
    r->method_str.p = s;
    r->method_str.n = (size_t)(p - s);
    r->method = method_of(r->method_str);
    s = ++p;
    while (p < eol && (unsigned char)*p > 0x20 && *p != 0x7f)
        p++;
    if (p == s || p >= eol || *p != ' ')
        return -400;
    r->target.p = s;
    r->target.n = (size_t)(p - s);
    q = memchr(s, '?', r->target.n);
    r->path.p = s;
    r->path.n = q ? (size_t)(q - s) : r->target.n;
    absolute_form_path(r);
    r->query.p = q ? q + 1 : p;
    r->query.n = q ? (size_t)(p - q - 1) : 0;
    p++;
    if (eol - p != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
        p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
        return -400;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return -505;
    r->version_minor = p[7] - '0';
    return 0;
}

/* Parse a Content-Length value (a comma list whose members must agree).
 * Returns 0 and merges into r->content_length, or -400. */
static int content_length(struct cc_http_str v, struct cc_http_request *r)
{
    const char *p = v.p, *end = v.p + v.n;

    if (v.n == 0)
        return -400;
    while (p < end) {
        int64_t n = 0;
        const char *digits;

        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        digits = p;
        while (p < end && *p >= '0' && *p <= '9') {
            if (n > (INT64_MAX - 9) / 10)
                return -400;
            n = n * 10 + (*p++ - '0');
        }
        if (p == digits)
            return -400;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p < end && *p++ != ',')
            return -400;
        if (r->content_length >= 0 && r->content_length != n)
            return -400;
        r->content_length = n;
    }
    return 0;
}

/* One header line [p, eol).  Returns 0 or -status. */
static int parse_header(const char *p, const char *eol,
                        struct cc_http_request *r)
{
    const char *name = p, *v, *ve;
    struct cc_http_header *h;

    if (*p == ' ' || *p == '\t')
        return -400; /* obsolete line folding */
    while (p < eol && is_tchar((unsigned char)*p))
        p++;
    if (p == name || p >= eol || *p != ':')
        return -400; /* empty name, bad byte, or space before ':' */
    if (r->n_headers == CC_HTTP_MAX_HEADERS)
        return -431;
    v = p + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    ve = eol;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    for (const char *c = v; c < ve; c++)
        if (!is_value_char((unsigned char)*c))
            return -400;
    h = &r->headers[r->n_headers++];
    h->name.p = name;
    h->name.n = (size_t)(p - name);
    h->value.p = v;
    h->value.n = (size_t)(ve - v);
    if (str_ieq(h->name, "Content-Length"))
        return content_length(h->value, r);
    if (str_ieq(h->name, "Transfer-Encoding"))
        r->has_transfer_encoding = 1;
    return 0;
}

static void decide_keep_alive(struct cc_http_request *r)
{
    const struct cc_http_header *c = cc_http_header(r, "Connection");

    if (r->version_minor >= 1)
        r->keep_alive = !(c && cc_http_has_token(c->value, "close"));
    else
        r->keep_alive = c && cc_http_has_token(c->value, "keep-alive");
}

int cc_http_parse_head(const char *buf, size_t len, size_t max_head,
                       struct cc_http_request *req)
{
    const char *p = buf, *end = buf + (len < max_head ? len : max_head);
    const char *eol, *next;
    int rc;

    memset(req, 0, sizeof *req);
    req->content_length = -1;
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    while (p < end && (*p == '\n' || (*p == '\r' && p + 1 < end &&
                                      p[1] == '\n')))
        p += *p == '\r' ? 2 : 1;
    next = line_end(p, end, &eol);
    if (!next)
        goto incomplete;
    rc = parse_request_line(p, eol, req);
    if (rc)
        return rc;
    for (p = next;; p = next) {
        next = line_end(p, end, &eol);
        if (!next)
            goto incomplete;
        if (eol == p)
            break; /* the empty line */
        rc = parse_header(p, eol, req);
        if (rc)
            return rc;
    }
    if (req->content_length >= 0 && req->has_transfer_encoding)
        return -400;
    decide_keep_alive(req);
    return (int)(next - buf);
incomplete:
    /* No complete head within the limit: wait, or refuse when the limit
     * is reached; stray bytes are judged when the line completes. */
    if (len >= max_head)
        return -431;
    for (const char *c = p; c < end; c++)
        if (*c == '\0')
            return -400;
    if (req->method_str.p == NULL) {
        /* Still in the request line: a method is tchars then SP, so a
         * TLS handshake or binary junk is refused now, not at timeout. */
        const char *c = p;
        while (c < end && is_tchar((unsigned char)*c))
            c++;
        if (c < end && *c != ' ' && *c != '\r' && *c != '\n')
            return -400;
    }
    return 0;
}

const struct cc_http_header *cc_http_header(const struct cc_http_request *r,
                                            const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (str_ieq(r->headers[i].name, name))
            return &r->headers[i];
    return NULL;
}

size_t cc_http_header_count(const struct cc_http_request *r,
                            const char *name)
{
    size_t n = 0;

    for (size_t i = 0; i < r->n_headers; i++)
        n += str_ieq(r->headers[i].name, name);
    return n;
}

int cc_http_host_valid(struct cc_http_str v)
{
    const char *p = v.p, *end = v.p + v.n;
    unsigned long port = 0;
    size_t digits = 0;

    if (v.n == 0 || v.n > 255)
        return 0;
    if (*p == '[') {
        for (p++; p < end && *p != ']'; p++)
            if (!(isxdigit((unsigned char)*p) || *p == ':' || *p == '.'))
                return 0;
        if (p == end || p == v.p + 1)
            return 0;
        p++;
    } else {
        const char *start = p;
        for (; p < end && *p != ':'; p++)
            if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' ||
                  *p == '.'))
                return 0;
        if (p == start)
            return 0;
    }
    if (p == end)
        return 1;
    if (*p++ != ':')
        return 0;
    for (; p < end; p++, digits++) {
        if (!isdigit((unsigned char)*p) || digits == 5)
            return 0;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    return digits > 0 && port >= 1 && port <= 65535;
}

int cc_http_has_token(struct cc_http_str value, const char *token)
{
    const char *p = value.p, *end = value.p + value.n;
    size_t tlen = strlen(token);

    while (p < end) {
        const char *s, *e;

        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        s = p;
        while (p < end && *p != ',' && *p != ';')
            p++;
        e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0)
            return 1;
        while (p < end && *p != ',')
            p++; /* skip ;parameters */
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long cc_http_pct_decode(struct cc_http_str src, char *dst, int plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < src.n; i++) {
        char c = src.p[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= src.n)
                return -1;
            hi = hexval((unsigned char)src.p[i + 1]);
            lo = hexval((unsigned char)src.p[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

long cc_http_query_param(struct cc_http_str query, const char *name,
                         char *out, size_t out_size)
{
    const char *p = query.p, *end = query.p + query.n;
    size_t nlen = strlen(name);

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;

        if ((size_t)(ke - p) == nlen && memcmp(p, name, nlen) == 0) {
            struct cc_http_str v = { eq ? eq + 1 : pe,
                                     eq ? (size_t)(pe - eq - 1) : 0 };
            if (v.n + 1 > out_size)
                return -2;
            long n = cc_http_pct_decode(v, out, 1);
            return n < 0 ? -2 : n;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return -1;
}

const char *cc_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
