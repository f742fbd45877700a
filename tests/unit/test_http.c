/* test_http.c - the HTTP/1.1 request head parser and its helpers. */
#include "http.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define MAXH 8192

static struct cc_http_request req;

static int parse(const char *s)
{
    return cc_http_parse_head(s, strlen(s), MAXH, &req);
}

/* 1 when s equals the n bytes at p. */
static int str_is(struct cc_http_str v, const char *s)
{
    return v.n == strlen(s) && memcmp(v.p, s, v.n) == 0;
}

static void test_request_line(void)
{
    const char *get = "GET /ws/chat/abc/?token=x&y=1 HTTP/1.1\r\n"
                      "Host: a\r\n\r\n";
    int rc = parse(get);

    is_int(rc, (int)strlen(get), "complete head: length including CRLFCRLF");
    is_int(req.method, CC_HTTP_GET, "method GET");
    ok(str_is(req.target, "/ws/chat/abc/?token=x&y=1"), "target as sent");
    ok(str_is(req.path, "/ws/chat/abc/"), "path stops at '?'");
    ok(str_is(req.query, "token=x&y=1"), "query after '?'");
    is_int(req.version_minor, 1, "HTTP/1.1");
    is_int(req.content_length, -1, "no Content-Length: -1");
    is_int(req.keep_alive, 1, "HTTP/1.1 defaults to keep-alive");
    is_int(req.n_headers, 1, "one header");

    parse("POST /chat/chats/ HTTP/1.0\r\n\r\n");
    is_int(req.method, CC_HTTP_POST, "method POST");
    is_int(req.version_minor, 0, "HTTP/1.0");
    is_int(req.keep_alive, 0, "HTTP/1.0 defaults to close");
    is_int(req.query.n, 0, "no query: empty");

    parse("BREW /pot HTTP/1.1\r\n\r\n");
    is_int(req.method, CC_HTTP_OTHER, "unknown token method is OTHER");
    ok(str_is(req.method_str, "BREW"), "method string kept");
    parse("get / HTTP/1.1\r\n\r\n");
    is_int(req.method, CC_HTTP_OTHER, "methods are case-sensitive");

    is_int(parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 22,
           "leading empty lines ignored (RFC 9112 2.2)");
    is_int(parse("GET / HTTP/1.1\n\n"), 16, "bare LF line ends accepted");

    is_int(parse("GET / HTTP/2.0\r\n\r\n"), -505, "HTTP/2.0: 505");
    is_int(parse("GET / HTTP/1.2\r\n\r\n"), -505, "HTTP/1.2: 505");
    is_int(parse("GET / HTTP/0.9\r\n\r\n"), -505, "HTTP/0.9: 505");
    is_int(parse("GET / HTTP/1.10\r\n\r\n"), -400, "long version: 400");
    is_int(parse("GET / http/1.1\r\n\r\n"), -400, "lower-case HTTP: 400");
    is_int(parse("GET /\r\n\r\n"), -400, "no version: 400");
    is_int(parse("GET  / HTTP/1.1\r\n\r\n"), -400, "double space: 400");
    is_int(parse(" GET / HTTP/1.1\r\n\r\n"), -400, "leading space: 400");
    is_int(parse("G(T / HTTP/1.1\r\n\r\n"), -400, "non-token method: 400");
    is_int(parse("GET /a b HTTP/1.1\r\n\r\n"), -400, "space in target: 400");
    is_int(parse("GET /a\x7f HTTP/1.1\r\n\r\n"), -400, "DEL in target: 400");
    /* A TLS ClientHello has no line end; refuse it at the first byte
     * rather than waiting for a line that never comes. */
    is_int(cc_http_parse_head("\x16\x03\x01\x02\x00\x01", 6, MAXH, &req),
           -400, "TLS ClientHello on a plain port: 400 at once");
    is_int(cc_http_parse_head("GE", 2, MAXH, &req), 0,
           "partial method: incomplete");
}

static void test_headers(void)
{
    const struct cc_http_header *h;

    parse("GET / HTTP/1.1\r\n"
          "Host:  example  \r\n"
          "X-Empty:\r\n"
          "connection: Upgrade, keep-alive\r\n"
          "Upgrade:\twebsocket\t\r\n\r\n");
    is_int(req.n_headers, 4, "four headers");
    h = cc_http_header(&req, "host");
    ok(h && str_is(h->value, "example"), "lookup is case-insensitive, "
       "value trimmed");
    h = cc_http_header(&req, "X-Empty");
    ok(h && h->value.n == 0, "empty value allowed");
    h = cc_http_header(&req, "Upgrade");
    ok(h && str_is(h->value, "websocket"), "tabs trimmed");
    ok(cc_http_header(&req, "Missing") == NULL, "absent header: NULL");
    h = cc_http_header(&req, "Connection");
    ok(h && cc_http_has_token(h->value, "upgrade"), "token in list");
    ok(h && cc_http_has_token(h->value, "Keep-Alive"), "second token");
    ok(h && !cc_http_has_token(h->value, "keep"), "no prefix match");

    is_int(parse("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), -400,
           "space before colon: 400 (request smuggling guard)");
    is_int(parse("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), -400,
           "obsolete line folding: 400");
    is_int(parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), -400,
           "header without colon: 400");
    is_int(parse("GET / HTTP/1.1\r\n: v\r\n\r\n"), -400, "empty name: 400");
    is_int(parse("GET / HTTP/1.1\r\nX: a\x01" "b\r\n\r\n"), -400,
           "control byte in value: 400");
    is_int(parse("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), -400,
           "bare CR in value: 400");
    is_int(parse("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n") > 0, 1,
           "obs-text (UTF-8) in value accepted");

    /* The 64-header cap. */
    {
        char buf[4096];
        size_t n = (size_t)snprintf(buf, sizeof buf, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < CC_HTTP_MAX_HEADERS; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "X%d: v\r\n", i);
        memcpy(buf + n, "\r\n", 3);
        ok(parse(buf) > 0, "%d headers accepted", CC_HTTP_MAX_HEADERS);
        memcpy(buf + n, "Y: v\r\n\r\n", 9);
        is_int(parse(buf), -431, "%d headers: 431", CC_HTTP_MAX_HEADERS + 1);
    }
}

static void test_connection(void)
{
    parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    is_int(req.keep_alive, 0, "1.1 with Connection: close");
    parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n");
    is_int(req.keep_alive, 0, "close token anywhere, any case");
    parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    is_int(req.keep_alive, 1, "1.0 with Connection: keep-alive");
}

static void test_content_length(void)
{
    parse("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n");
    is_int(req.content_length, 42, "Content-Length parsed");
    parse("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    is_int(req.content_length, 0, "Content-Length 0");
    parse("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n");
    is_int(req.content_length, 7, "agreeing list accepted");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n"
                 "Content-Length: 5\r\n\r\n") > 0, 1,
           "repeated equal values accepted");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n"
                 "Content-Length: 6\r\n\r\n"), -400,
           "conflicting Content-Length: 400");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"), -400,
           "conflicting list: 400");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), -400,
           "negative: 400");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"), -400,
           "hex: 400");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"), -400,
           "empty: 400");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: "
                 "99999999999999999999\r\n\r\n"), -400, "overflow: 400");
    parse("POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n");
    ok(req.content_length == 1000000000000000LL, "10^15 parses (limits are "
       "the caller's)");
    is_int(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"), -400,
           "Content-Length with Transfer-Encoding: 400");
    parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    is_int(req.has_transfer_encoding, 1, "Transfer-Encoding noted");
}

static void test_incremental(void)
{
    const char *full = "POST /chat/chats/ HTTP/1.1\r\nHost: h\r\n"
                       "Content-Length: 2\r\n\r\n{}";
    size_t head = strlen(full) - 2;
    int bad = 0;

    /* Every proper prefix of the head is "incomplete", never an error. */
    for (size_t i = 0; i < head; i++)
        if (cc_http_parse_head(full, i, MAXH, &req) != 0)
            bad++;
    is_int(bad, 0, "every prefix of a valid head is incomplete (0)");
    is_int(cc_http_parse_head(full, strlen(full), MAXH, &req), (int)head,
           "body bytes after the head are not consumed");

    is_int(cc_http_parse_head("GET / HTTP/1.1\r\nHost: a", 23, 16, &req),
           -431, "head larger than max_head without an end: 431");
    is_int(cc_http_parse_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, 16,
                              &req), -431,
           "complete head larger than max_head: 431");
    is_int(cc_http_parse_head("GET / HTTP/1.1\r\n\r\n", 18, 18, &req), 18,
           "head exactly max_head: accepted");
    is_int(cc_http_parse_head("GET /\0 HTTP", 11, MAXH, &req), -400,
           "NUL in an incomplete line: 400 at once");
}

static void test_query(void)
{
    char out[64];
    struct cc_http_str q = { "a=1&token=ab%2Ecd+e&empty=&flag&x=%zz", 37 };

    is_int(cc_http_query_param(q, "a", out, sizeof out), 1, "a found");
    is_str(out, "1", "a = 1");
    is_int(cc_http_query_param(q, "token", out, sizeof out), 7,
           "token decoded length");
    is_str(out, "ab.cd e", "percent and plus decoded");
    is_int(cc_http_query_param(q, "empty", out, sizeof out), 0,
           "empty value");
    is_int(cc_http_query_param(q, "flag", out, sizeof out), 0,
           "key without '='");
    is_int(cc_http_query_param(q, "tok", out, sizeof out), -1,
           "prefix of a key is not the key");
    is_int(cc_http_query_param(q, "missing", out, sizeof out), -1,
           "absent: -1");
    is_int(cc_http_query_param(q, "x", out, sizeof out), -2,
           "bad escape: -2");
    is_int(cc_http_query_param(q, "token", out, 4), -2,
           "output too small: -2");
    {
        struct cc_http_str nul = { "t=a%00b", 7 };
        is_int(cc_http_query_param(nul, "t", out, sizeof out), -2,
               "encoded NUL refused");
    }
    {
        struct cc_http_str s = { "%2e%2E/x%", 9 };
        char d[16];
        is_int(cc_http_pct_decode(s, d, 0), -1, "truncated escape: -1");
        s.n = 8;
        is_int(cc_http_pct_decode(s, d, 0), 4, "decode length");
        is_str(d, "../x", "upper/lower hex escapes");
        s.p = "a+b";
        s.n = 3;
        cc_http_pct_decode(s, d, 0);
        is_str(d, "a+b", "'+' kept outside queries");
    }
}

static void test_reason(void)
{
    is_str(cc_http_reason(101), "Switching Protocols", "101 reason");
    is_str(cc_http_reason(413), "Content Too Large", "413 reason (RFC 9110)");
    is_str(cc_http_reason(426), "Upgrade Required", "426 reason");
    is_str(cc_http_reason(799), "Unknown", "unknown status");
}

int main(void)
{
    test_request_line();
    test_headers();
    test_connection();
    test_content_length();
    test_incremental();
    test_query();
    test_reason();
    return done_testing();
}
