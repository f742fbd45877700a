/*
 * listen.h - the listening sockets: bind, accept, and accepting under
 * pressure.
 *
 * Owns the listeners of [server] listen and tls_listen, the open-file
 * limit and what it allows for max_connections, and the accept back-off:
 * when accept(2) fails for want of a resource (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) every listener stops for a pause that doubles while the
 * condition lasts (10 ms up to 1 s, as nginx pauses its accept events)
 * instead of spinning on a socket that stays readable; a connection that
 * closes ends the pause at once.  One line when such an episode begins,
 * one with its count when accepting works again.
 *
 * Loop 0 only.
 */
#ifndef CC_LISTEN_H
#define CC_LISTEN_H

#include <stdint.h>

struct cc_server;
struct sockaddr_storage;

/* Open files kept for storage, plugins, logs and the loops, beyond the
 * descriptors open at start: max_connections gets the rest. */
#define CC_LISTEN_FD_RESERVE 32

/* Raise the soft open-file limit to the hard one and lower
 * s->lim.max_connections to what the limit leaves after the descriptors
 * open now and the reserve (a warning when a configured value is cut,
 * an info line when the default is).  Call after the plugins started,
 * before the loops start. */
void cc_listen_fit_fd_limit(struct cc_server *s);

/* The connections the open-file limit leaves room for, less the reserve
 * cc_listen_fit_fd_limit measured (a reload's max_connections is cut to
 * it).  Loop 0. */
uint64_t cc_listen_connection_room(void);

/* Bind every address of s->listen and s->tls_listen.  Returns 0, or -1
 * after logging. */
int cc_listen_start(struct cc_server *s);

/* Close every listener (shutdown); accepting stops for good. */
void cc_listen_close(void);

/* A connection was closed: when accepting is paused for want of
 * descriptors, try again now. */
void cc_listen_conn_closed(void);

/* 1 while accepting is paused by the back-off. */
int cc_listen_paused(void);

#endif
