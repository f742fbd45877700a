/*
 * metrics.h - what carechatd counts: the core's counters and histograms,
 * and their lines of the Prometheus text format (version 0.0.4).
 *
 * Owns:
 *  - per-loop counters (connections, WebSockets, messages received and
 *    delivered): each loop writes only its own slot, with a relaxed
 *    atomic store of load + n, which on every target we build for is a
 *    plain add with no lock and no bus-locked instruction; a scrape on
 *    loop 0 sums the slots with relaxed loads;
 *  - loop 0 counters and histograms (handshakes by result, messages
 *    stored and refused, storage latency by operation as store.c
 *    reports it, fan-out publish failures and delivery lag): plain,
 *    loop 0 only.
 * Serving them is admin.c's (GET /metrics on the admin listener), which
 * adds what other modules count.  Calls nothing but the clock.
 */
#ifndef CC_METRICS_H
#define CC_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct cc_loop;
struct cc_sbuf;

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

/* A chat message was stored (ok) or refused (loop 0; the pipeline,
 * send.h; a resend of a stored message is neither). */
void cc_metrics_stored(int ok);

/* Storage calls by kind, for the latency histogram (store.c). */
enum cc_metrics_store_op { CC_MSO_APPEND, CC_MSO_READ, CC_MSO_WRITE,
                           CC_MSO_N };

/* A storage call of kind op answered status after seconds (loop 0). */
void cc_metrics_storage(enum cc_metrics_store_op op, double seconds,
                        int status);

/* A storage call of kind op was refused at once (no answer will come). */
void cc_metrics_storage_refused(enum cc_metrics_store_op op);

/* The fan-out plugin refused to publish a stored message (loop 0). */
void cc_metrics_publish_failed(void);

/* A message (its encoded object, as published) reached this node's hub
 * through fan-out now: its lag since created_at (loop 0). */
void cc_metrics_fanout_lag(const char *payload, size_t len);

/* Append the core's samples (every counter and histogram above) in the
 * text format to b.  Loop 0. */
void cc_metrics_render_core(struct cc_sbuf *b);

/* Append a metric's HELP and TYPE lines to b (name without the
 * "carechat_" prefix, which is added); cc_metrics_one also its one
 * sample, value v. */
void cc_metrics_head(struct cc_sbuf *b, const char *name, const char *type,
                     const char *help);
void cc_metrics_one(struct cc_sbuf *b, const char *name, const char *type,
                    const char *help, double v);

void cc_metrics_free(void);

#endif
