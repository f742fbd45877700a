/*
 * sdnotify.c - sd_notify to the service manager (see sdnotify.h).
 */
#include "ccbuild.h"
#include "sdnotify.h"
#include "log.h"

#ifdef HAVE_LIBSYSTEMD
#include <event2/event.h>
#include <stdint.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

static struct event *watchdog_timer;

static void send_state(const char *state)
{
    int rc = sd_notify(0, state);

    if (rc < 0)
        cc_log(CC_LOG_WARN, "notify", "cannot tell the service manager "
               "\"%s\": error %d", state, -rc);
}

static void ping(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    sd_notify(0, "WATCHDOG=1");
}

/* Ping at half of WATCHDOG_USEC when the manager wants pings from us. */
static void watchdog_start(struct event_base *base)
{
    uint64_t usec = 0;
    struct timeval tv;

    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return;
    usec /= 2;
    tv.tv_sec = (time_t)(usec / 1000000);
    tv.tv_usec = (suseconds_t)(usec % 1000000);
    watchdog_timer = event_new(base, -1, EV_PERSIST, ping, NULL);
    if (!watchdog_timer || event_add(watchdog_timer, &tv) < 0) {
        cc_log(CC_LOG_ERROR, "notify", "cannot start the watchdog timer");
        return;
    }
    sd_notify(0, "WATCHDOG=1");
    cc_log(CC_LOG_INFO, "notify", "watchdog: a ping every %llu ms",
           (unsigned long long)(usec / 1000));
}

void cc_sd_notify_ready(struct event_base *base)
{
    send_state("READY=1");
    watchdog_start(base);
}

void cc_sd_notify_reloading(void)
{
    struct timespec ts;
    char state[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(state, sizeof state, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull +
                 (unsigned long long)ts.tv_nsec / 1000ull);
    send_state(state);
}

void cc_sd_notify_reloaded(void)
{
    send_state("READY=1");
}

void cc_sd_notify_stopping(void)
{
    send_state("STOPPING=1");
}

void cc_sd_notify_free(void)
{
    if (watchdog_timer)
        event_free(watchdog_timer);
    watchdog_timer = NULL;
}

#else /* !HAVE_LIBSYSTEMD */

void cc_sd_notify_ready(struct event_base *base)
{
    (void)base;
}

void cc_sd_notify_reloading(void)
{
}

void cc_sd_notify_reloaded(void)
{
}

void cc_sd_notify_stopping(void)
{
}

void cc_sd_notify_free(void)
{
}

#endif
