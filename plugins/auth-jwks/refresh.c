/*
 * refresh.c - the fetch thread (see refresh.h).
 *
 * The thread sleeps on a condition variable until the loop asks for a
 * refresh, fetches and parses without holding the lock, and posts the
 * result.  Results and the final "stopped" notice travel through the
 * host's post(), which runs callbacks from one thread in order: the
 * plugin therefore sees every result before it learns the thread is
 * gone.
 */
#include "refresh.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct refresher {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    const struct fetch_src *src;
    unsigned allowed;
    refresh_done_fn done;
    void *done_arg;
    pthread_t thread;
    int started;             /* thread is running or joinable */
    pthread_mutex_t lock;    /* guards wanted and stopping */
    pthread_cond_t wake;
    int wanted;              /* a refresh asked for, not yet begun */
    int stopping;            /* also read without the lock by fetch_get */
    cc_post_cb stopped;
    void *stopped_arg;
};

/* One result on its way to the loop. */
struct result {
    struct refresher *r;
    struct jwk_set *set;
    char error[256];
};

struct jwk_set *refresh_once(const struct fetch_src *src, unsigned allowed,
                             const int *cancel, char *err, size_t err_size)
{
    char why[200];
    size_t len = 0;
    char *doc = fetch_get(src, cancel, &len, err, err_size);
    struct jwk_set *set;

    if (!doc)
        return NULL;
    set = jwk_set_parse(doc, len, allowed, why, sizeof why);
    if (!set)
        snprintf(err, err_size, "not a usable JWKS: %s", why);
    free(doc);
    return set;
}

/* On the loop thread: hand a result to the plugin. */
static void deliver(void *arg)
{
    struct result *res = arg;

    res->r->done(res->r->done_arg, res->set, res->set ? NULL : res->error);
    free(res);
}

/* One fetch, its result posted.  Thread; lock not held. */
static void fetch_and_post(struct refresher *r)
{
    struct result *res = calloc(1, sizeof *res);

    if (!res)
        abort(); /* the loop waits for an answer: never lose one */
    res->r = r;
    res->set = refresh_once(r->src, r->allowed, &r->stopping, res->error,
                            sizeof res->error);
    if (r->host->post(r->ctx, deliver, res) != CC_OK) {
        jwk_set_free(res->set);
        free(res);
    }
}

static void *run(void *arg)
{
    struct refresher *r = arg;

    pthread_setname_np(pthread_self(), "jwks-refresh");
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->wanted && !r->stopping)
            pthread_cond_wait(&r->wake, &r->lock);
        if (r->stopping)
            break;
        r->wanted = 0;
        pthread_mutex_unlock(&r->lock);
        fetch_and_post(r);
        pthread_mutex_lock(&r->lock);
    }
    pthread_mutex_unlock(&r->lock);
    r->host->post(r->ctx, r->stopped, r->stopped_arg);
    return NULL;
}

struct refresher *refresher_new(const struct cc_host_api *host,
                                cc_plugin_ctx *ctx,
                                const struct fetch_src *src,
                                unsigned allowed, refresh_done_fn done,
                                void *arg)
{
    struct refresher *r = calloc(1, sizeof *r);

    if (!r)
        return NULL;
    r->host = host;
    r->ctx = ctx;
    r->src = src;
    r->allowed = allowed;
    r->done = done;
    r->done_arg = arg;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    return r;
}

int refresher_start(struct refresher *r)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&r->thread, NULL, run, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return CC_E_FAIL;
    r->started = 1;
    return CC_OK;
}

void refresher_request(struct refresher *r)
{
    pthread_mutex_lock(&r->lock);
    r->wanted = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

void refresher_stop(struct refresher *r, cc_post_cb stopped, void *arg)
{
    if (!r->started) {
        stopped(arg);
        return;
    }
    pthread_mutex_lock(&r->lock);
    r->stopped = stopped;
    r->stopped_arg = arg;
    __atomic_store_n(&r->stopping, 1, __ATOMIC_RELEASE);
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

void refresher_free(struct refresher *r)
{
    if (!r)
        return;
    if (r->started)
        pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
