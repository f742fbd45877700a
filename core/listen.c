/*
 * listen.c - listeners, the open-file limit and the accept back-off (see
 * listen.h).
 */
#include "listen.h"
#include "config.h"
#include "conn.h"
#include "log.h"
#include "server.h"
#include "timefmt.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MAX_LISTENERS 16
#define BACKOFF_FIRST_MS 10
#define BACKOFF_MAX_MS 1000

static struct evconnlistener *listeners[MAX_LISTENERS];
static size_t n_listeners;
static uint64_t fd_reserve = CC_LISTEN_FD_RESERVE; /* set at start */

/* The current episode of failed accepts; started == 0: none. */
static struct {
    struct event *timer;   /* ends the pause */
    int paused;            /* listeners disabled, timer pending */
    uint64_t started_ms;   /* monotonic, first failure */
    uint64_t failures;     /* accept calls that failed in it */
    unsigned backoff_ms;   /* the next pause */
    int err;               /* the errno that began it */
} ep;

static uint64_t mono_ms(void)
{
    return cc_time_mono_ns() / 1000000;
}

/* ------------------------------------------------- open-file limit */

/* Descriptors open in this process now; 64 when it cannot tell. */
static uint64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    uint64_t n = 0;

    if (!d)
        return 64;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own */
}

/* The soft open-file limit (RLIM_INFINITY as a large number). */
static uint64_t fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 1024;
    return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX / 2 : rl.rlim_cur;
}

/* Lower max_connections to what limit leaves; warn says how loudly. */
static void clamp_connections(struct cc_server *s, uint64_t limit,
                              int warn)
{
    uint64_t room = limit > fd_reserve ? limit - fd_reserve : 1;

    if (s->lim.max_connections <= room)
        return;
    cc_log(warn ? CC_LOG_WARN : CC_LOG_INFO, "server", "max_connections "
           "= %llu needs %llu open files but the limit is %llu: at most "
           "%llu connections (%llu descriptors kept for storage, plugins "
           "and logs; raise LimitNOFILE= or ulimit -n for more)",
           (unsigned long long)s->lim.max_connections,
           (unsigned long long)(s->lim.max_connections + fd_reserve),
           (unsigned long long)limit, (unsigned long long)room,
           (unsigned long long)fd_reserve);
    s->lim.max_connections = room;
}

uint64_t cc_listen_connection_room(void)
{
    uint64_t limit = fd_limit();

    return limit > fd_reserve ? limit - fd_reserve : 1;
}

void cc_listen_fit_fd_limit(struct cc_server *s)
{
    const struct cc_conf_section *sec = cc_conf_section(s->conf, "server");
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            cc_log(CC_LOG_WARN, "server", "cannot raise the open-file "
                   "limit to %llu: %s", (unsigned long long)rl.rlim_max,
                   strerror(errno));
    }
    /* Each further loop holds an epoll descriptor and a wake-up pair. */
    fd_reserve = open_fds() + CC_LISTEN_FD_RESERVE + 4 * s->lim.threads;
    clamp_connections(s, fd_limit(), cc_conf_get(sec, "max_connections")
                                         != NULL);
}

/* ------------------------------------------------------ back-off */

static void set_enabled(int on)
{
    for (size_t i = 0; i < n_listeners; i++)
        if (on)
            evconnlistener_enable(listeners[i]);
        else
            evconnlistener_disable(listeners[i]);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ep.paused = 0;
    if (!cc_srv->shutting_down)
        set_enabled(1);
}

/* An accept succeeded: the episode, if any, is over. */
static void episode_end(void)
{
    if (!ep.started_ms)
        return;
    cc_log(CC_LOG_INFO, "server", "accepting again after %.1f s of \"%s\" "
           "(%llu failed accept%s, connections waited meanwhile)",
           (double)(mono_ms() - ep.started_ms) / 1000.0, strerror(ep.err),
           (unsigned long long)ep.failures, ep.failures == 1 ? "" : "s");
    ep.started_ms = 0;
}

static int out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS ||
           err == ENOMEM;
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv;

    (void)l;
    if (!out_of_resources(err)) {
        cc_log(CC_LOG_WARN, "server", "accept failed: %s", strerror(err));
        return;
    }
    if (!ep.started_ms) {
        ep.started_ms = mono_ms();
        ep.failures = 0;
        ep.err = err;
        ep.backoff_ms = BACKOFF_FIRST_MS;
        cc_log(CC_LOG_WARN, "server", "accept failed: %s; pausing new "
               "connections (%d ms, doubling up to %d ms, while it lasts)",
               strerror(err), BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
        /* The limit may have been lowered while we ran (prlimit). */
        if (err == EMFILE)
            clamp_connections(cc_srv, fd_limit(), 1);
    } else if (ep.backoff_ms < BACKOFF_MAX_MS) {
        ep.backoff_ms = ep.backoff_ms * 2 > BACKOFF_MAX_MS
                            ? BACKOFF_MAX_MS : ep.backoff_ms * 2;
    }
    ep.failures++;
    set_enabled(0);
    ep.paused = 1;
    tv.tv_sec = ep.backoff_ms / 1000;
    tv.tv_usec = (suseconds_t)(ep.backoff_ms % 1000) * 1000;
    evtimer_add(ep.timer, &tv);
}

void cc_listen_conn_closed(void)
{
    /* A descriptor is free again: the pause has done its work. */
    if (ep.paused)
        event_active(ep.timer, EV_TIMEOUT, 0);
}

int cc_listen_paused(void)
{
    return ep.paused;
}

/* ------------------------------------------------------ listeners */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *sa, int socklen, void *arg)
{
    (void)l;
    episode_end();
    cc_conn_accept(fd, sa, socklen, *(const int *)arg);
}

/* Bind one "host:port" or "[v6]:port". */
static int bind_one(struct cc_server *s, const char *spec, int kind)
{
    /* The callback's arg: the kind of the listener (CC_ACCEPT_*). */
    static const int kinds[] = { 0, CC_ACCEPT_TLS, CC_ACCEPT_ADMIN };
    struct sockaddr_storage ss;
    int sslen;
    struct evconnlistener *l;

    if (n_listeners == MAX_LISTENERS) {
        cc_log(CC_LOG_ERROR, "server", "too many listen addresses");
        return -1;
    }
    if (cc_conf_parse_addr(spec, &ss, &sslen) < 0) {
        /* The config check refuses these; never fail silently. */
        cc_log(CC_LOG_ERROR, "server", "\"%s\" is not an address:port",
               spec);
        return -1;
    }
    l = evconnlistener_new_bind(s->base, on_accept, (void *)&kinds[kind],
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                    LEV_OPT_CLOSE_ON_EXEC,
                                1024, (struct sockaddr *)&ss, sslen);
    if (!l) {
        cc_log(CC_LOG_ERROR, "server", "cannot listen on %s: %s", spec,
               strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    /* Replies go out as they are written (no Nagle delay); accepted
     * sockets inherit it on Linux (conn.c sets it elsewhere). */
    setsockopt(evconnlistener_get_fd(l), IPPROTO_TCP, TCP_NODELAY,
               &(int){ 1 }, sizeof(int));
    listeners[n_listeners++] = l;
    cc_log(CC_LOG_INFO, "server", "listening on %s%s", spec,
           kind == 1 ? " (TLS)" : kind == 2 ? " (admin: /metrics, /readyz)"
                                            : "");
    return 0;
}

static int bind_list(struct cc_server *s, const char *spec, int kind)
{
    char *list = strdup(spec), *save = NULL, *tok;
    int rc = 0;

    if (!list)
        abort();
    for (tok = strtok_r(list, ", ", &save); tok && rc == 0;
         tok = strtok_r(NULL, ", ", &save))
        rc = bind_one(s, tok, kind);
    free(list);
    return rc;
}

int cc_listen_start(struct cc_server *s)
{
    int rc = bind_list(s, s->listen, 0);

    if (rc == 0 && s->tls_listen)
        rc = bind_list(s, s->tls_listen, 1);
    if (rc == 0 && s->admin_listen)
        rc = bind_list(s, s->admin_listen, 2);
    if (rc == 0 && n_listeners == 0) {
        cc_log(CC_LOG_ERROR, "config", "%s: [server] listen is empty",
               s->conf->path);
        rc = -1;
    }
    if (!ep.timer)
        ep.timer = evtimer_new(s->base, resume_cb, NULL);
    return rc;
}

void cc_listen_close(void)
{
    for (size_t i = 0; i < n_listeners; i++)
        evconnlistener_free(listeners[i]);
    n_listeners = 0;
    if (ep.timer) {
        event_free(ep.timer);
        ep.timer = NULL;
    }
    ep.paused = 0;
}
