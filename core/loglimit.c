/*
 * loglimit.c - per-kind windows for log lines (see loglimit.h).
 */
#include "loglimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Kinds live in sets of WAYS slots: two kinds that hash alike share a
 * set instead of taking one slot from each other (each time the other
 * logs, which would restart the window and let a storm of both through
 * CC_LOGLIMIT_BURST lines at a time). */
#define WAYS 4
#define N_SETS 256   /* a power of two */
#define N_SLOTS (WAYS * N_SETS)
#define WINDOW_NS ((uint64_t)CC_LOGLIMIT_WINDOW_S * 1000000000u)

struct slot {
    const char *component;  /* the key: pointers, as call sites pass */
    const char *fmt;        /* literals that live as long as the process */
    unsigned sub;
    uint64_t win_start;     /* ns; the window's first line */
    unsigned written;       /* lines written in this window */
    uint64_t suppressed;    /* lines counted in this window */
    int level;              /* most severe suppressed (lowest number) */
    char name[CC_LOGLIMIT_NAME]; /* the component, copied: a plugin's name
                               is gone once it is unloaded, and the
                               last summaries are written after that */
    char text[CC_LOGLIMIT_TEXT];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[N_SLOTS];
static atomic_uint_fast64_t suppressed_total;

static uint64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t (*clock_fn)(void) = mono_ns;

void cc_loglimit_set_clock(uint64_t (*now_ns)(void))
{
    clock_fn = now_ns ? now_ns : mono_ns;
}

void cc_loglimit_reset(void)
{
    pthread_mutex_lock(&mu);
    memset(slots, 0, sizeof slots);
    atomic_store(&suppressed_total, 0);
    pthread_mutex_unlock(&mu);
}

uint64_t cc_loglimit_suppressed_total(void)
{
    return atomic_load(&suppressed_total);
}

static int same_kind(const struct slot *s, const char *component,
                     const char *fmt, unsigned sub)
{
    return s->fmt == fmt && s->component == component && s->sub == sub;
}

/* The slot of this kind, or (with evict) the one it is to take over: an
 * empty one of its set, else the one whose window began longest ago.
 * NULL without evict when the kind holds none.  Lock held. */
static struct slot *slot_of(const char *component, const char *fmt,
                            unsigned sub, int evict)
{
    uint64_t h = (uint64_t)(uintptr_t)fmt * 0x9e3779b97f4a7c15ull;
    struct slot *set, *victim;

    h ^= (uint64_t)(uintptr_t)component * 0xc2b2ae3d27d4eb4full;
    h ^= (uint64_t)sub * 0x165667b19e3779f9ull;
    set = &slots[((h >> 32) & (N_SETS - 1)) * WAYS];
    for (int i = 0; i < WAYS; i++)
        if (same_kind(&set[i], component, fmt, sub))
            return &set[i];
    if (!evict)
        return NULL;
    victim = &set[0];
    for (int i = 0; i < WAYS; i++) {
        if (!set[i].fmt)
            return &set[i];
        if (set[i].win_start < victim->win_start)
            victim = &set[i];
    }
    return victim;
}

/* Copy s's summary into sum (when it suppressed lines) and clear its
 * window.  Lock held. */
static void take_summary(struct slot *s, uint64_t now,
                         struct cc_loglimit_summary *sum)
{
    uint64_t span = now > s->win_start ? now - s->win_start : 0;

    sum->count = s->suppressed;
    if (s->suppressed) {
        sum->seconds = (unsigned)((span + 500000000u) / 1000000000u);
        if (sum->seconds == 0)
            sum->seconds = 1;
        sum->level = s->level;
        memcpy(sum->component, s->name, sizeof sum->component);
        memcpy(sum->text, s->text, sizeof sum->text);
    }
    s->suppressed = 0;
    s->written = 0;
    s->win_start = now;
}

int cc_loglimit_admit(int level, const char *component, const char *fmt,
                      unsigned sub, struct cc_loglimit_summary *sum)
{
    uint64_t now = clock_fn();
    struct slot *s;
    int write;

    sum->count = 0;
    pthread_mutex_lock(&mu);
    s = slot_of(component, fmt, sub, 1);
    if (!same_kind(s, component, fmt, sub)) {
        take_summary(s, now, sum); /* the kind it held, if any */
        s->component = component;
        s->fmt = fmt;
        s->sub = sub;
        snprintf(s->name, sizeof s->name, "%s",
                 component ? component : "carechatd");
        s->text[0] = '\0';
    } else if (now - s->win_start >= WINDOW_NS) {
        take_summary(s, now, sum);
    }
    write = s->written < CC_LOGLIMIT_BURST;
    if (write) {
        s->written++;
    } else {
        if (!s->suppressed || level < s->level)
            s->level = level;
        s->suppressed++;
        atomic_fetch_add_explicit(&suppressed_total, 1,
                                  memory_order_relaxed);
    }
    pthread_mutex_unlock(&mu);
    return write;
}

void cc_loglimit_written(const char *component, const char *fmt,
                         unsigned sub, const char *text)
{
    struct slot *s;

    pthread_mutex_lock(&mu);
    s = slot_of(component, fmt, sub, 0);
    if (s)
        snprintf(s->text, sizeof s->text, "%s", text);
    pthread_mutex_unlock(&mu);
}

void cc_loglimit_flush(int force,
                       void (*emit)(const struct cc_loglimit_summary *))
{
    uint64_t now = clock_fn();

    for (size_t i = 0; i < N_SLOTS; i++) {
        struct cc_loglimit_summary sum = { 0 };

        pthread_mutex_lock(&mu);
        if (slots[i].suppressed &&
            (force || now - slots[i].win_start >= WINDOW_NS))
            take_summary(&slots[i], now, &sum);
        pthread_mutex_unlock(&mu);
        if (sum.count)
            emit(&sum);
    }
}
