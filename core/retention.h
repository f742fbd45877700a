/*
 * retention.h - deleting messages past their keeping time.
 *
 * [storage] retention = DAYS (0, the default: keep forever) and
 * retention_interval (how often a purge runs, 1h by default) are the
 * host's keys in the storage section, whatever the plugin.  A purge runs
 * at start and then every interval on loop 0: it asks storage (ABI 1.3
 * message_purge) to delete the oldest messages created before now - DAYS
 * in batches of CC_RETENTION_BATCH, one batch at a time with a pause
 * between, so the writer keeps serving appends; one log line per purge
 * that deleted something.  A storage plugin without message_purge and
 * retention > 0 is a configuration error (the daemon does not start).
 *
 * Owns the parsing of those keys (the values live in the server's
 * settings), the purge timer and its counts.
 */
#ifndef CC_RETENTION_H
#define CC_RETENTION_H

#include <stdint.h>

struct cc_conf;
struct cc_server;

#define CC_RETENTION_BATCH 500
#define CC_RETENTION_PAUSE_MS 20 /* between two batches */

/* [storage] retention and retention_interval, as parsed. */
struct cc_retention_conf {
    uint64_t days;         /* 0: keep forever */
    uint64_t interval_ms;
};

/* Parse them into *out (file:line errors); cc_server_parse keeps them in
 * the server's settings, and they take effect at start (a reload only
 * checks them).  Returns 0 or -1 after logging. */
int cc_retention_parse(const struct cc_conf *conf,
                       struct cc_retention_conf *out);

/* 1 when key of [storage] belongs to the host (the plugin never sees
 * it): "plugin", "retention", "retention_interval". */
int cc_retention_host_key(const char *section, const char *key);

/* After the storage plugin started: check it can purge (when
 * s->retention.days is set) and arm the first purge.  Returns 0 or -1
 * after logging. */
int cc_retention_start(struct cc_server *s);

/* Messages deleted since start (for metrics). */
uint64_t cc_retention_purged_total(void);

void cc_retention_stop(void);

#endif
