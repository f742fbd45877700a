/*
 * multi.c - libcurl's multi interface on the host's loop (multi.h).
 *
 * The shape is libcurl's own hiperfifo/evhiperfifo examples, with the
 * host's watches and timers in place of libevent's:
 *  - socket callback: CURL_POLL_IN/OUT/INOUT make or change the socket's
 *    watch (kept as curl's socketp, curl_multi_assign); CURL_POLL_REMOVE
 *    closes it (curl closes the socket after, and forgets the socketp);
 *  - timer callback: one one-shot timer, replaced on each call; -1 means
 *    none.  Neither callback drives libcurl (curl_multi_assign is all
 *    they call): the timer, 0 ms included, fires from the loop later;
 *  - each watch event and the timer call curl_multi_socket_action(), and
 *    then curl_multi_info_read() until empty: every CURLMSG_DONE is taken
 *    out of the multi handle and reported.
 */
#include "multi.h"

#include <stdlib.h>

/* One socket curl asked us to watch. */
struct wh_sock {
    struct wh_multi *m;
    curl_socket_t fd;
    cc_watch *watch;
    uint32_t events;            /* CC_WATCH_* the watch has now */
    struct wh_sock *prev, *next;
};

struct wh_multi {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    CURLM *multi;
    cc_timer *timer;            /* curl's timeout; NULL: none asked */
    struct wh_sock *socks;      /* every watch we hold */
    wh_multi_done_cb done;
    void *arg;
};

static void sock_free(struct wh_multi *m, struct wh_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        m->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    m->host->watch_close(s->watch);
    free(s);
}

/* Report every transfer that ended.  msg is read before the handle is
 * removed: curl_multi_remove_handle() invalidates it. */
static void read_done(struct wh_multi *m)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_multi_remove_handle(m->multi, easy);
        m->done(m->arg, easy, result);
    }
}

static void on_io(int fd, uint32_t events, void *arg)
{
    struct wh_sock *s = arg;
    struct wh_multi *m = s->m;  /* s may be freed by the action */
    int action = ((events & CC_WATCH_READ) ? CURL_CSELECT_IN : 0) |
                 ((events & CC_WATCH_WRITE) ? CURL_CSELECT_OUT : 0);
    int running;

    curl_multi_socket_action(m->multi, fd, action, &running);
    read_done(m);
}

static void on_timeout(void *arg)
{
    struct wh_multi *m = arg;
    int running;

    m->host->timer_cancel(m->timer);
    m->timer = NULL;     /* before the action: it may set a new one */
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    read_done(m);
}

/* CURLMOPT_SOCKETFUNCTION.  Returns 0; -1 when no watch can be made
 * (libcurl then fails the transfers on that socket). */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    struct wh_multi *m = userp;
    struct wh_sock *s = socketp;
    uint32_t events = ((what & CURL_POLL_IN) ? CC_WATCH_READ : 0) |
                      ((what & CURL_POLL_OUT) ? CC_WATCH_WRITE : 0);

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (s)
            sock_free(m, s);
        return 0;
    }
    if (s) {
        if (events != s->events && m->host->watch_set(s->watch, events)
                                       != CC_OK)
            return -1;
        s->events = events;
        return 0;
    }
    s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->m = m;
    s->fd = fd;
    s->events = events;
    s->watch = m->host->watch_fd(m->ctx, fd, events, on_io, s);
    if (!s->watch) {
        free(s);
        return -1;
    }
    s->next = m->socks;
    if (m->socks)
        m->socks->prev = s;
    m->socks = s;
    curl_multi_assign(m->multi, fd, s);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: replace the timer; -1 deletes it. */
static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    struct wh_multi *m = userp;

    (void)multi;
    m->host->timer_cancel(m->timer);
    m->timer = NULL;
    if (timeout_ms < 0)
        return 0;
    m->timer = m->host->timer_add(m->ctx, (uint64_t)timeout_ms, 0,
                                  on_timeout, m);
    return m->timer ? 0 : -1;
}

struct wh_multi *wh_multi_new(const struct cc_host_api *host,
                              cc_plugin_ctx *ctx, wh_multi_done_cb done,
                              void *arg)
{
    struct wh_multi *m = calloc(1, sizeof *m);

    if (!m)
        abort();
    m->host = host;
    m->ctx = ctx;
    m->done = done;
    m->arg = arg;
    m->multi = curl_multi_init();
    if (!m->multi) {
        free(m);
        return NULL;
    }
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    return m;
}

int wh_multi_add(struct wh_multi *m, CURL *easy)
{
    /* Only arms the timer (at 0 ms): the transfer starts from the loop,
     * after the caller has returned. */
    return curl_multi_add_handle(m->multi, easy) == CURLM_OK ? 0 : -1;
}

void wh_multi_remove(struct wh_multi *m, CURL *easy)
{
    curl_multi_remove_handle(m->multi, easy);
}

void wh_multi_free(struct wh_multi *m)
{
    if (!m)
        return;
    /* May still call on_socket (REMOVE) for the connections it closes. */
    curl_multi_cleanup(m->multi);
    while (m->socks)
        sock_free(m, m->socks);
    m->host->timer_cancel(m->timer);
    free(m);
}

int wh_multi_async_dns(void)
{
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);

    return v && (v->features & CURL_VERSION_ASYNCHDNS) != 0;
}
