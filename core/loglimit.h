/*
 * loglimit.h - the rate limit on log lines: one rule for the core and
 * for every plugin (their host->log goes through cc_logv), so a storm of
 * one event (a refused accept, a failed append, a failed login) costs a
 * few lines and a count, not a line per event.
 *
 * A "kind" is one call site: the component and the format string (and,
 * for callers that say so, a small number such as an HTTP status).  Each
 * kind may write CC_LOGLIMIT_BURST lines per CC_LOGLIMIT_WINDOW_S
 * seconds; further lines of that kind in the window are counted, not
 * written.  When the window ends, one summary line says how many were
 * suppressed and quotes the last line written, at the most severe level
 * among them: security-relevant events stay countable.
 *
 * Owns a fixed table of kinds (sets of four: kinds that hash alike share
 * a set; a fifth replaces the one whose window began longest ago, after
 * its summary is written).  Thread-safe:
 * one mutex, taken once per line that passes the level check.
 */
#ifndef CC_LOGLIMIT_H
#define CC_LOGLIMIT_H

#include <stddef.h>
#include <stdint.h>

#define CC_LOGLIMIT_BURST 5
#define CC_LOGLIMIT_WINDOW_S 5
#define CC_LOGLIMIT_TEXT 200   /* bytes of the last line a summary quotes */
#define CC_LOGLIMIT_NAME 48    /* bytes of a component name kept */

/* A summary to write: count lines of component were suppressed over
 * seconds; text is the last line of that kind that was written. */
struct cc_loglimit_summary {
    uint64_t count;
    unsigned seconds;
    int level;
    char component[CC_LOGLIMIT_NAME];
    char text[CC_LOGLIMIT_TEXT];
};

/* Decide for one line of kind (component, fmt, sub) at level.  Returns 1
 * when the line is to be written, 0 when it was counted instead.  When a
 * window of this kind's slot ended with lines suppressed (or another
 * kind held the slot), *sum is filled and sum->count > 0: the caller
 * writes that summary first.  Any thread. */
int cc_loglimit_admit(int level, const char *component, const char *fmt,
                      unsigned sub, struct cc_loglimit_summary *sum);

/* Remember text (the message part of a line just written) as the last
 * line of its kind, for that kind's next summary.  Any thread. */
void cc_loglimit_written(const char *component, const char *fmt,
                         unsigned sub, const char *text);

/* Call emit for every kind whose window has ended with lines suppressed
 * (all such kinds when force: shutdown), resetting them.  Any thread;
 * emit runs without the lock held. */
void cc_loglimit_flush(int force,
                       void (*emit)(const struct cc_loglimit_summary *));

/* Lines suppressed since start (for metrics). */
uint64_t cc_loglimit_suppressed_total(void);

/* Tests: replace the monotonic clock (nanoseconds); NULL restores it. */
void cc_loglimit_set_clock(uint64_t (*now_ns)(void));

/* Tests: forget every kind and the total. */
void cc_loglimit_reset(void);

#endif
