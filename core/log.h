/*
 * log.h - one line per event on stderr: time, level, component, message.
 *
 * Every line goes through the rate limit of loglimit.h: a few lines a
 * second of one kind (call site), then a count in a summary line.
 *
 * Never pass a token or secret.  Every line's text goes through
 * textsafe.h (control and invisible characters escaped, JWT-shaped runs
 * replaced), so one event stays one line whatever a value held; values
 * that come from a client or a token are shown quoted (cc_log_q).
 * Request targets are logged through cc_log_target.  Thread-safe (one
 * write(2) per line).
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

/* The request target src[0..n) as the access log shows it, into dst
 * (NUL-terminated, truncated to dst_size): the path, percent-decoded
 * where it decodes, and of the query only the parameter names, each
 * value "[redacted]": any value may be a credential, whatever its
 * parameter is called.  Returns dst. */
char *cc_log_target(char *dst, size_t dst_size, const char *src, size_t n);

/* s (a value from a client or a token) in double quotes, escaped as
 * textsafe.h says with quotes and backslashes too, into buf.  Returns
 * buf ("" when size < 3). */
const char *cc_log_q(char *buf, size_t size, const char *s);

#endif
