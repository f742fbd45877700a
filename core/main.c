/*
 * main.c - carechatd's command line.
 *
 *   carechatd [-c FILE] [-t] [--version] [--help]
 */
#include "ccbuild.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "sdnotify.h"
#include "server.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_CONF CC_SYSCONFDIR "/carechat/carechat.conf"

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: carechatd [-c FILE] [-t] [--version]\n"
            "\n"
            "  -c, --config FILE  configuration file (default %s)\n"
            "  -t, --test         check the configuration and plugins, "
            "then exit\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n",
            DEFAULT_CONF);
}

int main(int argc, char **argv)
{
    const char *conf_path = DEFAULT_CONF;
    int test_only = 0, rc;
    struct cc_server srv = { 0 };
    struct cc_conf *conf;
    char err[1024];

    /* Before anything opens a file (DESIGN invariant 9, "safe at rest"):
     * whatever carechatd creates (the SQLite database, its -wal and -shm,
     * the audit file) is readable by its owner and group at most, even
     * when started from a shell or a script with umask 022.  The bits of
     * a stricter umask (077) are kept. */
    umask(umask(027) | 027);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) &&
            i + 1 < argc) {
            conf_path = argv[++i];
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--test") == 0) {
            test_only = 1;
        } else if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("carechatd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
                   CC_ABI_MAJOR, CC_ABI_MINOR);
            return 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "carechatd: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (cc_conf_load(conf_path, &conf, err, sizeof err) < 0) {
        cc_log(CC_LOG_ERROR, "config", "%s", err);
        return 1;
    }
    if (cc_server_configure(&srv, conf) < 0) {
        cc_server_settings_free(&srv);
        cc_conf_free(conf);
        return 1;
    }
    evthread_use_pthreads();
    srv.base = event_base_new();
    if (!srv.base) {
        cc_log(CC_LOG_ERROR, "server", "cannot create the event loop");
        return 1;
    }
    if (test_only) {
        rc = cc_daemon_check(&srv);
        if (rc == 0)
            printf("carechatd: configuration %s is valid\n", conf_path);
        cc_daemon_free(&srv);
        event_base_free(srv.base);
        cc_conf_free(conf);
        return rc == 0 ? 0 : 1;
    }
    rc = cc_daemon_start(&srv);
    if (rc == 0) {
        cc_log(CC_LOG_INFO, "server", "carechatd %s ready", PACKAGE_VERSION);
        cc_sd_notify_ready(srv.base);
        event_base_dispatch(srv.base);
        cc_log(CC_LOG_INFO, "server", "stopped");
    }
    cc_daemon_free(&srv);
    cc_sd_notify_free();
    event_base_free(srv.base);
    cc_conf_free(conf);
    return rc == 0 ? 0 : 1;
}
