/*
 * timefmt.c - protocol timestamps (see timefmt.h).
 */
#include "timefmt.h"

#include <stdio.h>
#include <time.h>

/* Days since 1970-01-01 to civil date (Howard Hinnant's algorithm), so
 * formatting needs no libc time zone state and no gmtime_r call. */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static void put_digits(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

char *cc_time_format(int64_t unix_us, char out[CC_TIME_LEN + 1])
{
    static const int64_t min_us = -62167219200LL * 1000000; /* 0000-01-01 */
    static const int64_t max_us = 253402300799999999LL;     /* 9999-12-31 */
    int y;
    unsigned mo, d;

    if (unix_us < min_us)
        unix_us = min_us;
    if (unix_us > max_us)
        unix_us = max_us;
    int64_t secs = unix_us >= 0 ? unix_us / 1000000
                                : -((-unix_us + 999999) / 1000000);
    unsigned us = (unsigned)(unix_us - secs * 1000000);
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    unsigned sod = (unsigned)(secs - days * 86400);
    civil_from_days(days, &y, &mo, &d);
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    put_digits(out + 5, mo, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, sod / 3600, 2);
    out[13] = ':';
    put_digits(out + 14, sod / 60 % 60, 2);
    out[16] = ':';
    put_digits(out + 17, sod % 60, 2);
    out[19] = '.';
    put_digits(out + 20, us, 6);
    out[26] = 'Z';
    out[27] = '\0';
    return out;
}

static int64_t days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int get_digits(const char *p, int width, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < width; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        *v = *v * 10 + (unsigned)(p[i] - '0');
    }
    return 0;
}

int cc_time_parse(const char *s, int64_t *unix_us)
{
    unsigned y, mo, d, h, mi, se, us;

    if (get_digits(s, 4, &y) || s[4] != '-' || get_digits(s + 5, 2, &mo) ||
        s[7] != '-' || get_digits(s + 8, 2, &d) || s[10] != 'T' ||
        get_digits(s + 11, 2, &h) || s[13] != ':' ||
        get_digits(s + 14, 2, &mi) || s[16] != ':' ||
        get_digits(s + 17, 2, &se) || s[19] != '.' ||
        get_digits(s + 20, 6, &us) || s[26] != 'Z' || mo < 1 || mo > 12 ||
        d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    *unix_us = ((days_from_civil((int)y, mo, d) * 86400 + h * 3600 +
                 mi * 60 + se) * 1000000) + us;
    return 0;
}

int64_t cc_time_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

uint64_t cc_time_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
