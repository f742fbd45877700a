/*
 * admin.h - the admin listener's own route: GET /metrics, the whole
 * exposition in the Prometheus text format (version 0.0.4): build
 * information, readiness, the core's counters (metrics.h), the chat
 * cache, retention, the log limiter, the audit trail and the plugins'
 * own samples (ABI 1.3 metrics()).  Never on the public port; /readyz
 * and /healthz are ready.h's, on both.
 *
 * Owns composing the page from the modules that count.  Loop 0.
 */
#ifndef CC_ADMIN_H
#define CC_ADMIN_H

#include <stddef.h>

/* Register GET /metrics on the admin port (at start). */
void cc_admin_routes(void);

/* The exposition now, into *out (malloc'd, *len bytes); for tests. */
void cc_admin_render(char **out, size_t *len);

#endif
