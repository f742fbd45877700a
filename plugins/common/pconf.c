/*
 * pconf.c - config value helpers shared by the plugins (see pconf.h).
 */
#include "pconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

int cc_pconf_long(const char *v, long min, long max, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

int cc_pconf_size(const char *v, long long min, long long max,
                  long long *out)
{
    static const char units[] = "kmg";
    const char *u;
    char *end;
    long long n, mult = 1;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0)
        return -1;
    if (*end && (u = strchr(units, end[0] | 0x20))) {
        for (long i = 0; i <= u - units; i++)
            mult *= 1024;
        end++;
        if (!strcasecmp(end, "b") || !strcasecmp(end, "ib"))
            end += strlen(end);
    }
    if (*end || n > max / mult || n * mult < min)
        return -1;
    *out = n * mult;
    return 0;
}

int cc_pconf_duration_ms(const char *v, uint64_t min_ms, uint64_t max_ms,
                         uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = { { "", 1000 }, { "s", 1000 }, { "ms", 1 },
                  { "m", 60000 }, { "h", 3600000 } };
    uint64_t n = 0;

    if (*v < '0' || *v > '9')
        return -1;
    for (; *v >= '0' && *v <= '9'; v++) {
        n = n * 10 + (uint64_t)(*v - '0');
        if (n > max_ms)
            return -1;
    }
    for (size_t i = 0; i < sizeof units / sizeof *units; i++) {
        if (strcmp(v, units[i].unit) == 0) {
            n *= units[i].ms;
            if (n < min_ms || n > max_ms)
                return -1;
            *out = n;
            return 0;
        }
    }
    return -1;
}

char *cc_pconf_read_secret(const char *path, size_t max, size_t *len,
                           const char **reason)
{
    FILE *f = fopen(path, "re");
    struct stat st;
    char *buf, *out = NULL;
    size_t n;

    if (!f || fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        if (f)
            fclose(f);
        *reason = "cannot be read";
        return NULL;
    }
    buf = malloc(max + 2);
    if (!buf)
        abort();
    n = fread(buf, 1, max + 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n == 0)
        *reason = "is empty";
    else if (n > max)
        *reason = "is too large";
    else if (!(out = malloc(n + 1)))
        abort();
    if (out) {
        memcpy(out, buf, n);
        out[n] = '\0';
        if (len)
            *len = n;
    }
    explicit_bzero(buf, max + 2);
    free(buf);
    return out;
}
