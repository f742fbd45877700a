/*
 * router.h - the route table of both ports: which handler answers which
 * method and path, on the public port and on the admin listener.
 *
 * Modules register their own routes when the server starts (REST, the
 * WebSocket chat path, /healthz and /readyz, /metrics, the demo page);
 * conn.c, once a request is read, looks its route up here and calls the
 * handler, or answers 404 or 405 itself.  Nothing below this table knows
 * a module by name.
 *
 * A pattern is a path of literal segments and "{}", which matches any
 * one non-empty segment and captures it (not decoded); the request's
 * trailing slash is optional ("/chat/chats/{}/" matches both
 * /chat/chats/ID/ and /chat/chats/ID).  Routes are tried in the order
 * they were added; the first whose pattern matches decides: its handler
 * when it takes the method, else 405 with the methods it takes.
 *
 * Owns the table.  Loop 0; routes are added before the listeners
 * accept and never removed until cc_route_free.
 */
#ifndef CC_ROUTER_H
#define CC_ROUTER_H

#include <stddef.h>
#include "http.h"

struct cc_conn;

/* Ports a route is served on (bits). */
#define CC_PORT_PUBLIC 1u
#define CC_PORT_ADMIN 2u

/* Methods (bits of enum cc_http_method). */
#define CC_M(m) (1u << (m))
#define CC_M_GET (CC_M(CC_HTTP_GET) | CC_M(CC_HTTP_HEAD))
#define CC_M_POST CC_M(CC_HTTP_POST)
#define CC_M_ANY 0xffffu /* the handler answers 405 itself */

#define CC_ROUTE_MAX_ARGS 2

/* What a matched route hands its handler: the registered arg and the
 * captured segments, pointing into the request (valid while it is). */
struct cc_route_match {
    const void *arg;
    size_t n_seg;
    struct cc_http_str seg[CC_ROUTE_MAX_ARGS];
};

/* Answer the request on c (conn.h: the connection is the handler's until
 * it responds or upgrades). */
typedef void (*cc_route_fn)(struct cc_conn *c,
                            const struct cc_route_match *m);

/* Serve pattern on ports for methods with fn(c, {arg, segments}).
 * pattern is borrowed (a literal); at most CC_ROUTE_MAX_ARGS "{}". */
void cc_route_add(unsigned ports, unsigned methods, const char *pattern,
                  cc_route_fn fn, const void *arg);

/* The route for method and path on port: returns its handler and fills
 * *m; NULL when no pattern matches (404), or when one matches but not
 * the method (405: *allowed gets its methods, else 0). */
cc_route_fn cc_route_find(unsigned port, enum cc_http_method method,
                          struct cc_http_str path,
                          struct cc_route_match *m, unsigned *allowed);

/* "GET, HEAD, POST" for methods, into out (n bytes). */
void cc_route_allow(unsigned methods, char *out, size_t n);

/* Forget every route (shutdown). */
void cc_route_free(void);

#endif
