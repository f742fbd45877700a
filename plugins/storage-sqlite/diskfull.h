/*
 * diskfull.h - the sqlite writer's full-disk episodes.
 *
 * When a write fails with SQLITE_FULL, the writer stops touching the
 * disk for a back-off (100 ms, doubling to 2 s while it lasts): groups
 * that arrive meanwhile are refused at once, without I/O.  Retrying every
 * group would let a flood take freed space faster than a checkpoint can
 * hand it back: the WAL only starts over once its frames are copied into
 * the database, which needs room in the database file.  Each retry
 * therefore checkpoints first (sqlite.c), then writes.  Space that is
 * freed is noticed sooner: during the pause the free space of the
 * database's file system is looked at (statvfs, at most every
 * DISKFULL_LOOK_MS), and a write is tried as soon as DISKFULL_ROOM bytes
 * more are free than when the disk refused.
 *
 * One log line when an episode begins, one with its count and length
 * when a write succeeds again.  Writer thread only.
 */
#ifndef CC_SQLITE_DISKFULL_H
#define CC_SQLITE_DISKFULL_H

#include <stdint.h>

#define DISKFULL_FIRST_MS 100
#define DISKFULL_MAX_MS 2000
#define DISKFULL_LOOK_MS 10
#define DISKFULL_ROOM (1u << 20)

struct diskfull {
    int on;                  /* an episode is under way */
    uint64_t since_ms;       /* when it began (monotonic) */
    uint64_t next_ms;        /* the next write may be tried then */
    int backoff_ms;
    uint64_t refused;        /* requests refused in it */
    uint64_t free_at_fail;   /* bytes free when the disk last refused */
    uint64_t looked_ms;      /* the last look at the free space */
};

/* 1 when a write may be tried at now_ms (no episode, its pause is over,
 * or room was freed on the file system of path); 0: refuse without
 * touching the disk. */
int diskfull_may_try(struct diskfull *f, uint64_t now_ms, const char *path);

/* A write to path failed for want of space (n requests refused).
 * Returns 1 when this begins an episode (the caller logs it). */
int diskfull_failed(struct diskfull *f, uint64_t now_ms, const char *path,
                    uint64_t n);

/* n requests refused during the pause. */
void diskfull_refused(struct diskfull *f, uint64_t n);

/* A write succeeded.  Returns 1 when that ends an episode: then
 * *lasted_ms and *refused say how long and how many (for the log). */
int diskfull_ok(struct diskfull *f, uint64_t now_ms, uint64_t *lasted_ms,
                uint64_t *refused);

#endif
