/*
 * diskfull.c - full-disk episodes of the sqlite writer (see diskfull.h).
 */
#include "diskfull.h"

#include <stddef.h>
#include <sys/statvfs.h>

/* Bytes free to us on the file system holding path; 0 when unknown. */
static uint64_t free_bytes(const char *path)
{
    struct statvfs st;

    if (statvfs(path, &st) < 0)
        return 0;
    return (uint64_t)st.f_bavail * st.f_frsize;
}

int diskfull_may_try(struct diskfull *f, uint64_t now_ms, const char *path)
{
    if (!f->on || now_ms >= f->next_ms)
        return 1;
    if (now_ms - f->looked_ms < DISKFULL_LOOK_MS)
        return 0;
    f->looked_ms = now_ms;
    return free_bytes(path) > f->free_at_fail + DISKFULL_ROOM;
}

int diskfull_failed(struct diskfull *f, uint64_t now_ms, const char *path,
                    uint64_t n)
{
    int began = !f->on;

    f->free_at_fail = free_bytes(path);
    f->looked_ms = now_ms;
    if (began) {
        f->on = 1;
        f->since_ms = now_ms;
        f->backoff_ms = DISKFULL_FIRST_MS;
        f->refused = 0;
    } else if (f->backoff_ms < DISKFULL_MAX_MS) {
        f->backoff_ms = f->backoff_ms * 2 > DISKFULL_MAX_MS
                            ? DISKFULL_MAX_MS : f->backoff_ms * 2;
    }
    f->refused += n;
    f->next_ms = now_ms + (uint64_t)f->backoff_ms;
    return began;
}

void diskfull_refused(struct diskfull *f, uint64_t n)
{
    f->refused += n;
}

int diskfull_ok(struct diskfull *f, uint64_t now_ms, uint64_t *lasted_ms,
                uint64_t *refused)
{
    if (!f->on)
        return 0;
    f->on = 0;
    *lasted_ms = now_ms - f->since_ms;
    *refused = f->refused;
    return 1;
}
