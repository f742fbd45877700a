/*
 * www.c - the demo page, from memory (see www.h).
 */
#include "www.h"
#include "conn.h"
#include "log.h"
#include "router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_MAX (1 << 20)

static struct page {
    const char *path;       /* as requested */
    const char *file;       /* in the directory */
    const char *type;
    char *body;
    size_t len;
} pages[] = {
    { "/", "index.html", "text/html; charset=utf-8", NULL, 0 },
    { "/index.html", "index.html", "text/html; charset=utf-8", NULL, 0 },
    { "/app.js", "app.js", "text/javascript; charset=utf-8", NULL, 0 },
    { "/api.js", "api.js", "text/javascript; charset=utf-8", NULL, 0 },
    { "/chatlist.js", "chatlist.js", "text/javascript; charset=utf-8",
      NULL, 0 },
    { "/connection.js", "connection.js", "text/javascript; charset=utf-8",
      NULL, 0 },
    { "/outbox.js", "outbox.js", "text/javascript; charset=utf-8", NULL, 0 },
    { "/view.js", "view.js", "text/javascript; charset=utf-8", NULL, 0 },
    { "/style.css", "style.css", "text/css; charset=utf-8", NULL, 0 },
};

#define N_PAGES (sizeof pages / sizeof pages[0])

/* Headers of every demo answer: nothing but this server's own. */
static const char headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; "
    "style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
    "Referrer-Policy: no-referrer\r\n";

static int read_file(const char *dir, struct page *p)
{
    char path[4096];
    FILE *f;
    long n;

    snprintf(path, sizeof path, "%s/%s", dir, p->file);
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
        n > FILE_MAX || fseek(f, 0, SEEK_SET) < 0) {
        cc_log(CC_LOG_ERROR, "www", "[server] demo: cannot read %s: %s",
               path, f ? "too large or not a file" : strerror(errno));
        if (f)
            fclose(f);
        return -1;
    }
    p->body = malloc((size_t)n + 1);
    if (!p->body)
        abort();
    p->len = fread(p->body, 1, (size_t)n, f);
    fclose(f);
    return 0;
}

int cc_www_load(const char *dir)
{
    for (size_t i = 0; i < N_PAGES; i++)
        if (read_file(dir, &pages[i]) < 0)
            return -1;
    cc_log(CC_LOG_INFO, "www", "demo page served at / (from %s)", dir);
    return 0;
}

static void serve(struct cc_conn *c, const struct cc_route_match *m)
{
    const struct page *p = m->arg;

    cc_conn_respond_typed(c, 200, p->type, headers, p->body, p->len);
}

void cc_www_routes(void)
{
    if (!pages[0].body)
        return; /* demo = no */
    for (size_t i = 0; i < N_PAGES; i++)
        cc_route_add(CC_PORT_PUBLIC, CC_M_GET, pages[i].path, serve,
                     &pages[i]);
}

void cc_www_free(void)
{
    for (size_t i = 0; i < N_PAGES; i++) {
        free(pages[i].body);
        pages[i].body = NULL;
        pages[i].len = 0;
    }
}
