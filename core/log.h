/*
 * log.h - one line per event on stderr: time, level, component, message.
 *
 * Every line goes through the rate limit of loglimit.h: a few lines a
 * second of one kind (call site), then a count in a summary line.
 *
 * Never pass a token or secret.  cc_log_redact() exists for text that may
 * carry one (request targets with ?token=).  Thread-safe (one write(2) per
 * line).
 */
#ifndef CC_LOG_H
#define CC_LOG_H

#include <stddef.h>
#include <stdarg.h>

#define CC_LOG_ERROR 0
#define CC_LOG_WARN 1
#define CC_LOG_INFO 2
#define CC_LOG_DEBUG 3

/* Lines above this level are dropped. Default CC_LOG_INFO. */
void cc_log_set_level(int level);
int cc_log_level(void);
/* Parse "error", "warn", "info", "debug"; -1 when unknown. */
int cc_log_level_parse(const char *s);

void cc_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cc_logv(int level, const char *component, const char *fmt, va_list ap);

/* cc_log for a call site whose lines are several kinds for the rate
 * limit, told apart by kind (the access log: one kind per status). */
void cc_log_kind(int level, const char *component, unsigned kind,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void cc_log_kind_v(int level, const char *component, unsigned kind,
                   const char *fmt, va_list ap);

/* Write the summary lines of kinds whose window ended (all of them when
 * force, at shutdown).  Loop 0 calls it every second. */
void cc_log_flush_suppressed(int force);

/* Copy src[0..n) into dst (NUL-terminated, truncated to dst_size) with
 * the value of every token=/access_token= query parameter replaced by
 * "[redacted]" and control characters escaped.  Returns dst. */
char *cc_log_redact(char *dst, size_t dst_size, const char *src, size_t n);

#endif
