/*
 * timefmt.h - timestamps as the protocol writes them: ISO 8601 / RFC 3339
 * in UTC with microseconds and "Z" (2025-12-07T10:30:00.123456Z); and the
 * two clocks the core reads.
 *
 * Pure, thread-safe.
 */
#ifndef CC_TIMEFMT_H
#define CC_TIMEFMT_H

#include <stdint.h>

#define CC_TIME_LEN 27 /* 2025-12-07T10:30:00.123456Z */

/* Format unix_us into out (28 bytes with NUL); returns out.  Years
 * outside 0000..9999 are clamped. */
char *cc_time_format(int64_t unix_us, char out[CC_TIME_LEN + 1]);

/* Wall-clock now in microseconds since the epoch. */
int64_t cc_time_now_us(void);

/* Monotonic now in nanoseconds (CLOCK_MONOTONIC), for durations. */
uint64_t cc_time_mono_ns(void);

/* The inverse of cc_time_format for its exact form (CC_TIME_LEN bytes at
 * s): 0 and *unix_us, or -1. */
int cc_time_parse(const char *s, int64_t *unix_us);

#endif
