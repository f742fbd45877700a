/*
 * notifier.h - reaching whoever has not read (design invariant 8): when
 * a notification is due, and what becomes of it.
 *
 * [notify] names the notify plugin (carechat/notify.h) and holds the
 * host's keys, whatever the plugin:
 *   delay = 60s          a message still unread this long after it was
 *                        stored notifies its recipient's side, once per
 *                        chat and recipient until they read (an episode);
 *   urgent_repeat = 2m   an urgent one notifies at once, then again this
 *   urgent_max = 10      often while unread, at most this many times;
 *   max_age = 1h         a notification that cannot be delivered is
 *                        tried again, with backoff, under the same id,
 *                        until its episode is this old; then dropped
 *                        (a log line, a metric).
 * What is due lives in storage (ABI 1.4 notify_claim): the pipeline
 * stamps each message with when its recipient is due (cc_notifier_due),
 * a read mark ends the episode, and once a second loop 0 claims what is
 * due (each claim goes to exactly one node however many share storage),
 * hands it to the plugin and records the outcome (notify_done).  A
 * restart or kill -9 loses nothing: a claim not answered is handed out
 * again when its lease ends.
 *
 * Owns the [notify] host keys, the claim timer, the retry policy, the
 * metrics (sent, failed, dropped, in flight) and the audit line of each
 * outcome ("notify": recipient, chat, first unread message, result;
 * never content).  Without a [notify] section nothing is due and nothing
 * runs.  Loop 0 only.
 */
#ifndef CC_NOTIFIER_H
#define CC_NOTIFIER_H

#include <stdint.h>

struct cc_conf;
struct cc_plugin_inst;

/* The [notify] host keys, as parsed. */
struct cc_notifier_conf {
    int on;                     /* a [notify] section is there */
    uint64_t delay_ms;
    uint64_t urgent_repeat_ms;
    uint64_t urgent_max;
    uint64_t max_age_ms;
};

/* Parse [notify]'s host keys into *out (file:line errors).  Returns 0 or
 * -1 after logging. */
int cc_notifier_parse(const struct cc_conf *conf,
                      struct cc_notifier_conf *out);

/* 1 when key of section is one of those host keys. */
int cc_notifier_host_key(const char *section, const char *key);

/* Start with the loaded notify plugin (its instance; NULL: no [notify]):
 * check that storage can keep notifications, arm the claim timer.
 * Returns 0 or -1 after logging. */
int cc_notifier_start(const struct cc_notifier_conf *conf,
                      struct cc_plugin_inst *plugin);

/* Stop claiming (shutdown, before the plugins stop; what is in flight
 * ends through the plugin's stop). */
void cc_notifier_stop(void);

/* When a message stored now (created_us, priority) is due to notify its
 * recipient if unread: created + delay, now for an urgent one; 0 when
 * notifications are off. */
int64_t cc_notifier_due(int64_t created_us, int priority);

/* The delay after a read mark for what is still unread (0: off). */
int64_t cc_notifier_delay_us(void);

/* Counts since start, for metrics. */
struct cc_notifier_counters {
    uint64_t sent, failed, dropped, in_flight;
};
void cc_notifier_counters(struct cc_notifier_counters *out);

#endif
