/*
 * ready.h - is this node fit to take work?  GET /readyz (public port and
 * admin listener) answers 200 {"status": "ready"}, or 503 {"status":
 * "not ready", "reason": "..."} so that a load balancer takes the node
 * out; /healthz stays "the process is up".
 *
 * Owns the readiness rule.  Not ready while: shutting down; accepting is
 * paused for want of descriptors (listen.h); a plugin's health() (ABI
 * 1.3) says its backend is unreachable (but for the notify plugin's: a
 * receiver that is down does not stop the chat); or storage does not answer a
 * read (of a profile that does not exist) with a result within 2 s:
 * that read goes the whole way (queue, thread, connection, database),
 * so an outage shows even on an idle node and with plugins older than
 * 1.3.  Loop 0 only.
 */
#ifndef CC_READY_H
#define CC_READY_H

#include <stddef.h>

/* 1 when ready; else 0 with the reason in why. */
int cc_ready(char *why, size_t why_len);

/* Register GET /readyz and /healthz on both ports (at start). */
void cc_ready_routes(void);

#endif
