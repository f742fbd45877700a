/*
 * loop.c - event loops and their mailboxes (see loop.h).
 *
 * The mailbox is Vyukov's intrusive MPSC queue: producers swap
 * themselves in at the head with one atomic exchange and then link the
 * previous node; the single consumer walks from the tail.  A producer that
 * has swapped but not yet linked leaves the queue briefly inconsistent:
 * the consumer then stops and wakes itself again instead of waiting.
 * `armed` makes posting cost one event_active() per batch, not per mail.
 */
#include "loop.h"
#include "log.h"
#include "xalloc.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

struct cc_loop {
    unsigned index;
    struct event_base *base;
    int own_base;                  /* workers create theirs */
    pthread_t thread;
    int running;                   /* the thread was started */
    struct event *wake;            /* runs the mailbox */
    struct cc_mail *head;          /* newest; producers swap here */
    struct cc_mail *tail;          /* oldest; consumer only */
    struct cc_mail stub;
    int armed;                     /* a wake-up is on its way */
    void *state[CC_LOOP_KEYS_MAX]; /* the modules' (cc_loop_key) */
};

struct cc_loop *cc_loops[CC_LOOPS_MAX];
unsigned cc_n_loops;
static unsigned next_worker;
static cc_loop_free_fn key_free[CC_LOOP_KEYS_MAX];
static unsigned n_keys;

/* ------------------------------------------------------------ mailbox */

static void push(struct cc_loop *l, struct cc_mail *m)
{
    struct cc_mail *prev;

    __atomic_store_n(&m->next, NULL, __ATOMIC_RELAXED);
    prev = __atomic_exchange_n(&l->head, m, __ATOMIC_ACQ_REL);
    __atomic_store_n(&prev->next, m, __ATOMIC_RELEASE);
}

/* The oldest mail, or NULL: *busy is set when a producer is midway. */
static struct cc_mail *pop(struct cc_loop *l, int *busy)
{
    struct cc_mail *tail = l->tail;
    struct cc_mail *next = __atomic_load_n(&tail->next, __ATOMIC_ACQUIRE);

    if (tail == &l->stub) {
        if (!next)
            return NULL;
        l->tail = tail = next;
        next = __atomic_load_n(&next->next, __ATOMIC_ACQUIRE);
    }
    if (next) {
        l->tail = next;
        return tail;
    }
    if (tail != __atomic_load_n(&l->head, __ATOMIC_ACQUIRE)) {
        *busy = 1;
        return NULL;
    }
    push(l, &l->stub);
    next = __atomic_load_n(&tail->next, __ATOMIC_ACQUIRE);
    if (next) {
        l->tail = next;
        return tail;
    }
    *busy = 1;
    return NULL;
}

/* Run what is queued.  Returns how many ran, or -1 when a producer was
 * caught midway (more is coming). */
static int run_mail(struct cc_loop *l)
{
    struct cc_mail *m;
    int busy = 0, n = 0;

    while ((m = pop(l, &busy))) {
        m->fn(l, m);
        n++;
    }
    return busy ? -1 : n;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cc_loop *l = arg;

    __atomic_store_n(&l->armed, 0, __ATOMIC_SEQ_CST);
    if (run_mail(l) < 0 && !__atomic_exchange_n(&l->armed, 1, __ATOMIC_SEQ_CST))
        event_active(l->wake, EV_READ, 0);
}

void cc_loop_post(struct cc_loop *to, struct cc_mail *m, cc_mail_fn fn)
{
    m->fn = fn;
    push(to, m);
    if (!__atomic_exchange_n(&to->armed, 1, __ATOMIC_SEQ_CST))
        event_active(to->wake, EV_READ, 0);
}

/* -------------------------------------------------------------- loops */

static struct cc_loop *loop_new(unsigned index, struct event_base *base)
{
    struct cc_loop *l = cc_xcalloc(1, sizeof *l);

    l->index = index;
    l->base = base;
    l->head = l->tail = &l->stub;
    l->wake = event_new(base, -1, 0, wake_cb, l);
    if (!l->wake)
        abort();
    return l;
}

static void loop_free(struct cc_loop *l)
{
    for (unsigned k = 0; k < n_keys; k++)
        if (l->state[k])
            key_free[k](l, l->state[k]);
    event_free(l->wake);
    if (l->own_base)
        event_base_free(l->base);
    free(l);
}

int cc_loops_init(struct event_base *base)
{
    cc_loops[0] = loop_new(0, base);
    cc_n_loops = 1;
    return 0;
}

static void *worker_main(void *arg)
{
    struct cc_loop *l = arg;
    char name[16];

    /* Named for top -H, perf and gdb: cc-loop-1 ... */
    snprintf(name, sizeof name, "cc-loop-%u", l->index);
    pthread_setname_np(pthread_self(), name);
    event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void stop_cb(struct cc_loop *on, struct cc_mail *m)
{
    free(m);
    event_base_loopbreak(on->base);
}

int cc_loops_start(unsigned n)
{
    sigset_t all, old;
    int rc = 0;

    if (n > CC_LOOPS_MAX)
        n = CC_LOOPS_MAX;
    /* Signals are the main loop's: workers never take them. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (unsigned i = 1; i < n && rc == 0; i++) {
        struct event_base *base = event_base_new();
        struct cc_loop *l;
        if (!base) {
            cc_log(CC_LOG_ERROR, "server", "cannot create event loop %u", i);
            rc = -1;
            break;
        }
        l = loop_new(i, base);
        l->own_base = 1;
        cc_loops[i] = l;
        cc_n_loops = i + 1;
        rc = pthread_create(&l->thread, NULL, worker_main, l);
        if (rc) {
            cc_log(CC_LOG_ERROR, "server", "cannot start thread %u: %s", i,
                   strerror(rc));
            rc = -1;
            break;
        }
        l->running = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        cc_loops_stop();
    return rc;
}

void cc_loops_stop(void)
{
    for (unsigned i = 1; i < cc_n_loops; i++)
        if (cc_loops[i]->running)
            cc_loop_post(cc_loops[i], cc_xcalloc(1, sizeof(struct cc_mail)),
                         stop_cb);
    for (unsigned i = 1; i < cc_n_loops; i++)
        if (cc_loops[i]->running) {
            pthread_join(cc_loops[i]->thread, NULL);
            cc_loops[i]->running = 0;
        }
}

void cc_loops_drain_main(void)
{
    if (cc_loops[0])
        while (run_mail(cc_loops[0]) > 0)
            ;
}

void cc_loops_free(void)
{
    int ran;

    cc_loops_stop();
    /* Mail between the loops may still be queued (a worker's last leave,
     * the frames of messages storage finished while stopping): every
     * thread but this one has stopped, so run it all here. */
    do {
        ran = 0;
        for (unsigned i = 0; i < cc_n_loops; i++)
            ran |= run_mail(cc_loops[i]) != 0;
    } while (ran);
    for (unsigned i = 0; i < cc_n_loops; i++) {
        loop_free(cc_loops[i]);
        cc_loops[i] = NULL;
    }
    cc_n_loops = 0;
}

struct event_base *cc_loop_base(const struct cc_loop *l)
{
    return l->base;
}

unsigned cc_loop_index(const struct cc_loop *l)
{
    return l->index;
}

unsigned cc_loop_key(cc_loop_free_fn free_fn)
{
    if (n_keys == CC_LOOP_KEYS_MAX)
        abort(); /* a build with more modules than slots: raise the max */
    key_free[n_keys] = free_fn;
    return n_keys++;
}

void *cc_loop_get(const struct cc_loop *l, unsigned key)
{
    return l->state[key];
}

void cc_loop_set(struct cc_loop *l, unsigned key, void *state)
{
    l->state[key] = state;
}

struct cc_loop *cc_loop_next_worker(void)
{
    if (cc_n_loops < 2)
        return NULL;
    next_worker = next_worker % (cc_n_loops - 1) + 1;
    return cc_loops[next_worker];
}
