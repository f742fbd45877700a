/*
 * daemon.h - starting and stopping the running server: the plugins (and
 * the wrappers the core reaches them through: store.h, fanout.h), every
 * module's routes, the event loops, listeners, signals and housekeeping,
 * and the shutdown sequence.
 *
 * The top of the core: it calls every module, none calls it (but for the
 * signal that starts a shutdown).  Loop 0.
 */
#ifndef CC_DAEMON_H
#define CC_DAEMON_H

struct cc_server;

/* Load and start plugins, register routes, bind listeners.  Returns 0 or
 * -1 after logging; on success the caller runs the loop. */
int cc_daemon_start(struct cc_server *s);

/* Begin graceful shutdown: stop accepting, close WebSockets with 1001,
 * let requests in flight finish, then break the loop. */
void cc_daemon_shutdown(struct cc_server *s);

/* Load (create and destroy) the plugins to check their configuration,
 * without starting them (carechatd -t).  Returns 0 or -1 after logging. */
int cc_daemon_check(struct cc_server *s);

/* Stop and free everything after the loop returned: storage first (its
 * stop() finishes queued writes, published through the fan-out plugin),
 * then fan-out and auth. */
void cc_daemon_free(struct cc_server *s);

#endif
