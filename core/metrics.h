/*
 * metrics.h - what carechatd counts, and GET /metrics in the Prometheus
 * text format (version 0.0.4) on the admin listener ([server]
 * admin_listen; never on the public port).
 *
 * Owns the counters and histograms of the core and their exposition:
 *  - per-loop counters (connections, WebSockets, messages received and
 *    delivered): each loop writes only its own slot, with a relaxed
 *    atomic store of load + n, which on every target we build for is a
 *    plain add with no lock and no bus-locked instruction; a scrape on
 *    loop 0 sums the slots with relaxed loads;
 *  - loop 0 counters and histograms (handshakes by result, messages
 *    stored and refused, storage latency by operation, fan-out publish
 *    failures and delivery lag): plain, loop 0 only;
 *  - the storage latency is measured by wrapping the storage plugin's
 *    table (cc_metrics_wrap_storage) so that every call site is timed
 *    without a line of its own;
 *  - and, on scrape, the chat cache, the log limiter, the plugins' own
 *    samples (ABI 1.3 metrics()) and build information.
 */
#ifndef CC_METRICS_H
#define CC_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct cc_conn;
struct cc_loop;
struct cc_storage_api;

/* Per-loop counters (index = loop index). */
enum cc_loop_stat {
    CC_STAT_CONNS,        /* gauge: client connections on the loop */
    CC_STAT_WEBSOCKETS,   /* gauge: joined WebSockets on the loop */
    CC_STAT_RECEIVED,     /* chat messages received (WebSocket, REST) */
    CC_STAT_DELIVERED,    /* message frames queued to a client */
    CC_STAT_ACCEPTED,     /* connections accepted */
    CC_STAT_N
};

/* Add n (may be negative for gauges) to loop l's counter.  Only on l's
 * thread. */
void cc_metrics_add(const struct cc_loop *l, enum cc_loop_stat which,
                    int64_t n);

/* WebSocket handshake outcomes (loop 0). */
enum cc_handshake {
    CC_HS_JOINED,         /* 101 and joined the chat */
    CC_HS_BAD_REQUEST,    /* not a valid upgrade (400, 405, 426) */
    CC_HS_ORIGIN,         /* Origin not allowed (403) */
    CC_HS_UNAUTHORIZED,   /* token missing or refused (4401) */
    CC_HS_FORBIDDEN,      /* not a party of the chat (4403) */
    CC_HS_NOT_FOUND,      /* no such chat (4404, 404) */
    CC_HS_TOO_MANY,       /* max_websockets_per_user (4429) */
    CC_HS_BUSY,           /* max_pending_handshakes, auth busy (503) */
    CC_HS_UNAVAILABLE,    /* storage failed (503) */
    CC_HS_N
};
void cc_metrics_handshake(enum cc_handshake result);

/* A chat message was stored (ok) or refused (loop 0). */
void cc_metrics_stored(int ok);

/* The fan-out plugin refused to publish a stored message (loop 0). */
void cc_metrics_publish_failed(void);

/* A message (its encoded object, as published) reached this node's hub
 * through fan-out now: its lag since created_at (loop 0). */
void cc_metrics_fanout_lag(const char *payload, size_t len);

/* An instrumented copy of the storage table: the same functions, each
 * call timed from the call to its callback.  Loop 0; the copy lives
 * until cc_metrics_free. */
const struct cc_storage_api *
cc_metrics_wrap_storage(const struct cc_storage_api *real);

/* Serve a request that came to the admin listener: GET /metrics,
 * /readyz and /healthz; anything else 404. */
void cc_metrics_admin(struct cc_conn *c);

/* The exposition now, into *out (malloc'd, *len bytes); for tests. */
void cc_metrics_render(char **out, size_t *len);

void cc_metrics_free(void);

#endif
