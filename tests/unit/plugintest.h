/*
 * plugintest.h - load a built plugin through the real host (core/host.c)
 * on a private libevent loop, for plugin unit tests.
 *
 * Header-only; include once per test program, after tap.h.
 */
#ifndef CC_PLUGINTEST_H
#define CC_PLUGINTEST_H

#include "config.h"
#include "host.h"
#include "log.h"
#include "loglimit.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The log (stderr) of what runs between capture_begin() and
 * capture_end(), which returns it (a static buffer).  Each capture starts
 * the rate limit afresh: a test starts many plugin instances in one
 * process, each of whose lines a real daemon would write once. */
static int saved_stderr = -1;
static FILE *cap_file;
static char captured[16384];

static inline void capture_begin(void)
{
    fflush(stderr);
    cc_loglimit_reset();
    cap_file = tmpfile();
    if (!cap_file)
        abort();
    saved_stderr = dup(STDERR_FILENO);
    dup2(fileno(cap_file), STDERR_FILENO);
}

static inline const char *capture_end(void)
{
    size_t n;

    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    rewind(cap_file);
    n = fread(captured, 1, sizeof captured - 1, cap_file);
    captured[n] = '\0';
    fclose(cap_file);
    return captured;
}

struct pt_env {
    struct event_base *base;
    struct cc_conf *conf;
    struct cc_plugin_inst plugin;
    int loaded;
};

/* Path of a built plugin: $CC_PLUGIN_DIR/<name>.so, else
 * $CC_BUILDDIR/plugins/.libs/<name>.so, else plugins/.libs/<name>.so.
 * Returns a static buffer. */
static inline const char *pt_plugin_path(const char *name)
{
    static char buf[4096];
    const char *dir = getenv("CC_PLUGIN_DIR");
    const char *bd = getenv("CC_BUILDDIR");

    if (dir)
        snprintf(buf, sizeof buf, "%s/%s.so", dir, name);
    else
        snprintf(buf, sizeof buf, "%s/plugins/.libs/%s.so", bd ? bd : ".",
                 name);
    return buf;
}

/* Parse conf_text, load the plugin at path as kind from [section], and
 * start it.  Returns 0, or -1 with the reason in err (the loop and config
 * are still set up, so pt_unload is always safe). */
static inline int pt_load(struct pt_env *env, const char *path,
                          uint32_t kind, const char *section,
                          const char *conf_text, char *err, size_t err_size)
{
    static int threads_on;

    memset(env, 0, sizeof *env);
    if (!threads_on) {
        evthread_use_pthreads();
        threads_on = 1;
        if (getenv("CC_TEST_DEBUG"))
            cc_log_set_level(CC_LOG_DEBUG);
    }
    env->base = event_base_new();
    cc_host_init(env->base, NULL);
    if (cc_conf_load_string(conf_text, "test.conf", &env->conf, err,
                            err_size) < 0)
        return -1;
    if (cc_plugin_load(path, kind, env->conf,
                       cc_conf_section(env->conf, section), &env->plugin,
                       err, err_size) < 0)
        return -1;
    if (cc_plugin_start(&env->plugin, err, err_size) < 0) {
        env->plugin.desc->destroy(env->plugin.inst);
        free(env->plugin.ctx);
        free(env->plugin.path);
        memset(&env->plugin, 0, sizeof env->plugin);
        return -1;
    }
    env->loaded = 1;
    return 0;
}

static inline void pt_timeout_cb(evutil_socket_t fd, short w, void *arg)
{
    *(int *)arg = 1;
}

/* Run the loop until *flag != 0 or timeout_ms passed.  Returns 0 when the
 * flag was set, -1 on timeout. */
static inline int pt_run_until(struct pt_env *env, volatile int *flag,
                               int timeout_ms)
{
    int timed_out = 0;
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    struct event *t = evtimer_new(env->base, pt_timeout_cb, &timed_out);

    evtimer_add(t, &tv);
    while (!*flag && !timed_out)
        event_base_loop(env->base, EVLOOP_ONCE);
    event_free(t);
    return *flag ? 0 : -1;
}

/* Stop and destroy the plugin (if loaded), free config and loop. */
static inline void pt_unload(struct pt_env *env)
{
    if (env->loaded)
        cc_plugin_unload(&env->plugin);
    cc_conf_free(env->conf);
    cc_host_shutdown();
    if (env->base)
        event_base_free(env->base);
    memset(env, 0, sizeof *env);
}

#endif
