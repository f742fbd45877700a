/*
 * audit.h - the audit trail of access to PHI (HIPAA 164.312(b)): one JSON
 * line per access (a WebSocket join or leave, a history read, a chat
 * listed, read or opened, a message sent, mark_read, a profile
 * registered, a failed authentication, an access denied), kept apart
 * from the debug log, to a file and/or syslog ([audit] section).
 *
 * Owns the [audit] settings, a bounded in-memory queue of formatted lines
 * and the writer thread "cc-audit" that appends them to the file (and
 * hands them to syslog) in batches, fdatasync'ing at most every
 * sync_interval.  The event loops never wait on the disk: cc_audit()
 * takes a mutex for a copy into the queue and returns.  An event that
 * does not fit the queue is counted as lost and logged (rate-limited);
 * a batch the file refuses (ENOSPC, EIO) is kept and tried again, counted
 * and logged once per episode.  With required = yes, cc_audit_refusing()
 * tells the routes to refuse PHI access while the trail is failing.
 *
 * Never pass a token, a URL's query string or message content: an event
 * has no field that could hold them.  Without an [audit] section every
 * call is a no-op.
 */
#ifndef CC_AUDIT_H
#define CC_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct cc_conf;
struct cc_principal;
struct cc_sbuf;

/* The error of a PHI request refused because the trail is failing. */
#define CC_AUDIT_UNAVAILABLE "Audit trail unavailable; try again later"

/* One access.  Strings are borrowed for the call; NULL or "": absent. */
struct cc_audit_event {
    const char *event;              /* "ws_join", "history_read", ... */
    const char *result;             /* "ok", "denied", "error"; NULL:
                                       derived from status */
    int status;                     /* HTTP status or close code; 0 none */
    const char *peer;               /* the client's address:port */
    const struct cc_principal *who; /* NULL when not authenticated */
    const char *chat_id;
    const char *message_id;
    const char *via;                /* a message's way: "ws", "rest" */
};

/* Validate [audit] with no other effect (carechatd -t, and a SIGHUP
 * reload, which does not change the running trail's settings): unknown
 * keys, bad values, neither file nor syslog are errors with file:line.
 * Returns 0 or -1 after logging. */
int cc_audit_check(const struct cc_conf *conf);

/* Read [audit] for this process (once).  Loop 0, before cc_audit_start.
 * Returns 0 or -1 after logging. */
int cc_audit_configure(const struct cc_conf *conf);

/* Open the file (O_APPEND|O_CLOEXEC, created 0640), openlog, start the
 * writer.  A file that cannot be opened is fatal with required = yes
 * (-1 after logging), a warning otherwise (the trail is failing until a
 * SIGHUP opens it).  0 when auditing is off. */
int cc_audit_start(void);

/* SIGHUP (logrotate): the writer closes the file and opens the path
 * again before its next write.  Any thread; does not block. */
void cc_audit_reopen(void);

/* Write what is queued, fdatasync, join the writer, close.  What still
 * cannot be written is counted lost and logged.  Loop 0, after the
 * loops stopped (shutdown). */
void cc_audit_stop(void);

/* Queue one event.  Any thread, never blocks on I/O. */
void cc_audit(const struct cc_audit_event *ev);

/* cc_audit in one line for the call sites (result NULL: from status). */
void cc_audit_log(const char *event, const char *result, int status,
                  const char *peer, const struct cc_principal *who,
                  const char *chat_id, const char *message_id);

/* A WebSocket of who joins chat_id: audited as "ws_join".  Returns 0, or
 * -1 when the join is to be refused (cc_audit_refusing; audited with
 * 1013): close with CC_CLOSE_TRY_AGAIN and CC_AUDIT_UNAVAILABLE. */
int cc_audit_join(const char *peer, const struct cc_principal *who,
                  const char *chat_id);

/* 1 when required = yes and the trail is failing (write errors since the
 * last successful write, no file, or events lost to a full queue since
 * the writer last caught up): PHI access is to be refused (REST 503,
 * WebSocket close 1013).  Any thread. */
int cc_audit_refusing(void);

/* Append ev as one JSON object line (with '\n') at time unix_us to b.
 * Every string is escaped (ids come from tokens and URLs; bytes that are
 * not UTF-8 become '?').  Pure; any thread. */
void cc_audit_format(struct cc_sbuf *b, int64_t unix_us,
                     const struct cc_audit_event *ev);

/* Counters since start, for metrics.  Any thread (atomics). */
struct cc_audit_counters {
    uint64_t events_written;  /* lines written (file) or sent (syslog) */
    uint64_t events_lost;     /* dropped: queue full, or unwritable at
                                 shutdown */
    uint64_t write_errors;    /* failed write/fdatasync/open calls */
    uint64_t queued;          /* waiting now (queue and current batch) */
};
void cc_audit_counters(struct cc_audit_counters *out);

#endif
