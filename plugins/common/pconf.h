/*
 * pconf.h - config value helpers shared by the plugins (storage sqlite
 * and postgres, fan-out redis): a ranged integer, a size and a small
 * secret file (a password, a connection string).  Compiled into each
 * plugin that uses them; libc only.
 */
#ifndef CC_PCONF_H
#define CC_PCONF_H

#include <stddef.h>

/* Parse a decimal in [min, max] into *out: 0, or -1. */
int cc_pconf_long(const char *v, long min, long max, long *out);

/* Parse a size, bytes with an optional k, m or g suffix (powers of
 * 1024, as the core's size settings take), in [min, max]: 0, or -1. */
int cc_pconf_size(const char *v, long long min, long long max,
                  long long *out);

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
