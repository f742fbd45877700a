/*
 * router.c - the route table (see router.h).  A handful of routes,
 * matched in order by segments: no trie is worth it at this size.
 */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route {
    unsigned ports, methods;
    const char *pattern;
    cc_route_fn fn;
    const void *arg;
};

static struct route *table;
static size_t n_routes;

void cc_route_add(unsigned ports, unsigned methods, const char *pattern,
                  cc_route_fn fn, const void *arg)
{
    struct route *t = realloc(table, (n_routes + 1) * sizeof *t);

    if (!t)
        abort();
    table = t;
    table[n_routes++] = (struct route){ ports, methods, pattern, fn, arg };
}

/* The next segment of s[*i..n) after its '/', or -1 at the end / on an
 * empty segment (which no route matches). */
static int next_seg(const char *s, size_t n, size_t *i, struct cc_http_str *out)
{
    size_t start;

    if (*i >= n)
        return -1;
    if (s[*i] != '/')
        return -2;
    start = ++*i;
    while (*i < n && s[*i] != '/')
        (*i)++;
    out->p = s + start;
    out->n = *i - start;
    return out->n ? 0 : -2;
}

/* 1 when path matches pattern (captures into m). */
static int match(const char *pattern, struct cc_http_str path,
                 struct cc_route_match *m)
{
    size_t pn = strlen(pattern), pi = 0, si = 0;
    size_t n = path.n;
    struct cc_http_str ps, ss;
    int rp, rs;

    m->n_seg = 0;
    if (pn == 1 || n <= 1) /* "/" matches "/" alone */
        return pn == n && n == 1 && path.p[0] == '/' && pattern[0] == '/';
    if (pattern[pn - 1] == '/')
        pn--;
    if (path.p[n - 1] == '/')
        n--; /* the trailing slash is optional */
    for (;;) {
        rp = next_seg(pattern, pn, &pi, &ps);
        rs = next_seg(path.p, n, &si, &ss);
        if (rp == -1 || rs == -1)
            return rp == rs;
        if (rp < 0 || rs < 0)
            return 0;
        if (ps.n == 2 && memcmp(ps.p, "{}", 2) == 0) {
            if (m->n_seg == CC_ROUTE_MAX_ARGS)
                return 0;
            m->seg[m->n_seg++] = ss;
        } else if (ps.n != ss.n || memcmp(ps.p, ss.p, ss.n) != 0) {
            return 0;
        }
    }
}

cc_route_fn cc_route_find(unsigned port, enum cc_http_method method,
                          struct cc_http_str path,
                          struct cc_route_match *m, unsigned *allowed)
{
    *allowed = 0;
    for (size_t i = 0; i < n_routes; i++) {
        const struct route *r = &table[i];
        if (!(r->ports & port) || !match(r->pattern, path, m))
            continue;
        m->arg = r->arg;
        if (r->methods & CC_M(method))
            return r->fn;
        *allowed = r->methods;
        return NULL;
    }
    return NULL;
}

void cc_route_allow(unsigned methods, char *out, size_t n)
{
    static const struct { enum cc_http_method m; const char *name; } names[] = {
        { CC_HTTP_GET, "GET" }, { CC_HTTP_HEAD, "HEAD" },
        { CC_HTTP_POST, "POST" }, { CC_HTTP_PUT, "PUT" },
        { CC_HTTP_PATCH, "PATCH" }, { CC_HTTP_DELETE, "DELETE" },
        { CC_HTTP_OPTIONS, "OPTIONS" },
    };
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(methods & CC_M(names[i].m)))
            continue;
        len += (size_t)snprintf(out + len, len < n ? n - len : 0, "%s%s",
                                len ? ", " : "", names[i].name);
        if (len >= n)
            return;
    }
}

void cc_route_free(void)
{
    free(table);
    table = NULL;
    n_routes = 0;
}
