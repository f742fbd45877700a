/*
 * pconf.h - config value helpers shared by the plugins (storage sqlite
 * and postgres, fan-out redis, auth jwks, notify webhook): a ranged
 * integer, a size, a duration and a small secret file (a password, a
 * connection string, an HMAC key).  Compiled into each plugin that
 * uses them; libc only.
 */
#ifndef CC_PCONF_H
#define CC_PCONF_H

#include <stddef.h>
#include <stdint.h>

/* Parse a decimal in [min, max] into *out: 0, or -1. */
int cc_pconf_long(const char *v, long min, long max, long *out);

/* Parse a size, bytes with an optional k, m or g suffix (powers of
 * 1024, as the core's size settings take), in [min, max]: 0, or -1. */
int cc_pconf_size(const char *v, long long min, long long max,
                  long long *out);

/* Parse a duration, digits with an optional unit ms, s (the default), m
 * or h, in [min_ms, max_ms], into *out in milliseconds: 0, or -1. */
int cc_pconf_duration_ms(const char *v, uint64_t min_ms, uint64_t max_ms,
                         uint64_t *out);

/* The content of the regular file at path, less trailing CR/LF, as a new
 * NUL-terminated buffer of *len bytes (len may be NULL; the content may
 * hold NUL bytes: use *len); NULL with a static reason ("cannot be read",
 * "is empty", "is too large") when it cannot be used.  At most max bytes
 * are accepted.  The read buffer is wiped; the content is never logged.
 * The host has already refused a secret file other users can read
 * (carechat.conf(5), SECRETS): this is the one reader of the plugins. */
char *cc_pconf_read_secret(const char *path, size_t max, size_t *len,
                           const char **reason);

#endif
