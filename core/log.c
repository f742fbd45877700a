/*
 * log.c - one line per event on stderr (see log.h).
 */
#include "log.h"
#include "http.h"
#include "loglimit.h"
#include "textsafe.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

static int log_level = CC_LOG_INFO;
static const char *level_names[] = { "error", "warn", "info", "debug" };

void cc_log_set_level(int level)
{
    /* Any thread reads it (cc_log); loop 0 sets it on a reload. */
    __atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int cc_log_level(void)
{
    return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

int cc_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return CC_LOG_WARN;
    return -1;
}

/* "1,234,567" into buf. */
static const char *with_commas(char *buf, size_t size, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;

    for (int i = 0; i < n && o + 1 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0 && o + 2 < size)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* "TIME LEVEL component: " into line; returns its length. */
static size_t line_head(char *line, size_t size, int level,
                        const char *component)
{
    struct timeval tv;
    struct tm tm;
    size_t n;
    int r;

    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, size, "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, size - n, ".%03ldZ %-5s %s: ",
                 (long)tv.tv_usec / 1000, level_names[level],
                 component ? component : "carechatd");
    if (r > 0)
        n += (size_t)r < size - n ? (size_t)r : size - n - 1;
    return n;
}

/* Terminate line[0..n) with a newline and write it with a single
 * write(2), so lines from several threads never interleave. */
static void line_write(char *line, size_t size, size_t n)
{
    if (n >= size - 1)
        n = size - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

static void write_summary(const struct cc_loglimit_summary *sum)
{
    char line[512], count[32];
    size_t n = line_head(line, sizeof line, sum->level, sum->component);
    int r = snprintf(line + n, sizeof line - n, "... %s similar messages "
                     "suppressed in %u s (the last written: \"%s\")",
                     with_commas(count, sizeof count, sum->count),
                     sum->seconds, sum->text);

    if (r > 0)
        n += (size_t)r < sizeof line - n ? (size_t)r : sizeof line - n - 1;
    line_write(line, sizeof line, n);
}

void cc_log_kind_v(int level, const char *component, unsigned kind,
                   const char *fmt, va_list ap)
{
    struct cc_loglimit_summary sum;
    char line[2048], msg[1536];
    size_t n, head;
    int r, pass;

    if (level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;
    pass = cc_loglimit_admit(level, component, fmt, kind, &sum);
    if (sum.count)
        write_summary(&sum);
    if (!pass)
        return;
    head = n = line_head(line, sizeof line, level, component);
    r = vsnprintf(msg, sizeof msg, fmt, ap);
    /* One event, one line, no token: whatever a value carried. */
    n += cc_safe_text(line + n, sizeof line - n, msg,
                      r < 0 ? 0 : (size_t)r < sizeof msg ? (size_t)r
                                                          : sizeof msg - 1,
                      0);
    cc_loglimit_written(component, fmt, kind, line + head);
    line_write(line, sizeof line, n);
}

void cc_logv(int level, const char *component, const char *fmt, va_list ap)
{
    cc_log_kind_v(level, component, 0, fmt, ap);
}

void cc_log(int level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cc_logv(level, component, fmt, ap);
    va_end(ap);
}

void cc_log_kind(int level, const char *component, unsigned kind,
                 const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    cc_log_kind_v(level, component, kind, fmt, ap);
    va_end(ap);
}

void cc_log_flush_suppressed(int force)
{
    cc_loglimit_flush(force, write_summary);
}

const char *cc_log_q(char *buf, size_t size, const char *s)
{
    size_t n;

    if (size < 3)
        return "";
    buf[0] = '"';
    n = 1 + cc_safe_text(buf + 1, size - 2, s ? s : "", s ? strlen(s) : 0,
                         CC_SAFE_QUOTE);
    buf[n++] = '"';
    buf[n] = '\0';
    return buf;
}

/* Append src[0..n) to dst at *o, percent-decoded when it decodes (else
 * as it is); the log line's own escaping follows later. */
static void put_decoded(char *dst, size_t dst_size, size_t *o,
                        const char *src, size_t n)
{
    char tmp[1024];
    struct cc_http_str in = { src, n < sizeof tmp - 1 ? n : sizeof tmp - 1 };
    long d = cc_http_pct_decode(in, tmp, 0);
    const char *p = d >= 0 ? tmp : src;
    size_t len = d >= 0 ? (size_t)d : in.n;

    if (*o + len >= dst_size)
        len = dst_size - *o - 1;
    memcpy(dst + *o, p, len);
    *o += len;
}

char *cc_log_target(char *dst, size_t dst_size, const char *src, size_t n)
{
    static const char mark[] = "=[redacted]";
    const char *q = memchr(src, '?', n), *end = src + n, *p;
    size_t o = 0;

    if (dst_size == 0)
        return dst;
    put_decoded(dst, dst_size, &o, src, q ? (size_t)(q - src) : n);
    for (p = q; p && p < end && o + 1 < dst_size;) {
        const char *name = ++p, *eq;
        while (p < end && *p != '&' && *p != ';')
            p++;
        eq = memchr(name, '=', (size_t)(p - name));
        dst[o++] = name == q + 1 ? '?' : '&';
        put_decoded(dst, dst_size, &o, name,
                    (size_t)((eq ? eq : p) - name));
        if (eq && o + sizeof mark < dst_size) {
            memcpy(dst + o, mark, sizeof mark - 1);
            o += sizeof mark - 1;
        }
    }
    dst[o] = '\0';
    return dst;
}
