/*
 * rest.h - the REST API under /chat/ (and /healthz): routing, bearer
 * authentication, JSON bodies, and the handlers that answer from storage.
 *
 * Loop thread only.  A handler answers through cc_conn_respond, possibly
 * after an asynchronous storage call (holding the connection).
 */
#ifndef CC_REST_H
#define CC_REST_H

struct cc_conn;

/* Answer the current request of c (state CC_CONN_BUSY, body read). */
void cc_rest_handle(struct cc_conn *c);

#endif
