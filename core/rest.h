/*
 * rest.h - the REST API under /chat/: its routes, bearer authentication,
 * JSON bodies, and the handlers that answer from storage (store.h); a
 * message sent goes to the pipeline (send.h) like a WebSocket's.
 *
 * Loop 0 only.  A handler answers through cc_conn_respond, possibly
 * after an asynchronous storage call (holding the connection).
 */
#ifndef CC_REST_H
#define CC_REST_H

/* Register the API's routes with the router (at start). */
void cc_rest_routes(void);

#endif
