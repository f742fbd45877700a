/*
 * tap.h - a tiny Test Anything Protocol emitter for the C unit tests.
 *
 * Each check prints "ok N - name" or "not ok N - name" with the failing
 * values; done_testing() prints the plan and returns the exit status.
 * automake's tap-driver counts every check, so CI's totals are per case.
 */
#ifndef CC_TAP_H
#define CC_TAP_H

#include <stdio.h>
#include <string.h>
#include <stdarg.h>

static int tap_n, tap_failed;

static inline int tap_report(int pass, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static inline int tap_report(int pass, const char *fmt, va_list ap)
{
    tap_n++;
    if (!pass)
        tap_failed++;
    printf("%sok %d - ", pass ? "" : "not ", tap_n);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    return pass;
}

static inline int ok(int pass, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int ok(int pass, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tap_report(pass, fmt, ap);
    va_end(ap);
    return pass;
}

#define is_int(got, want, ...)                                          \
    do {                                                                \
        long long g_ = (long long)(got), w_ = (long long)(want);        \
        if (!ok(g_ == w_, __VA_ARGS__))                                 \
            printf("#   got %lld, want %lld\n", g_, w_);                \
    } while (0)

#define is_str(got, want, ...)                                          \
    do {                                                                \
        const char *g_ = (got), *w_ = (want);                           \
        int p_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;           \
        if (!ok(p_, __VA_ARGS__))                                       \
            printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", \
                   w_ ? w_ : "(null)");                                 \
    } while (0)

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
