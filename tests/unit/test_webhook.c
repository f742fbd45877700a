/*
 * test_webhook.c - the `webhook` notify plugin, loaded from its built .so
 * through the real host, posting to a receiver written in a few lines of
 * Python (webhook_sink.py, on 127.0.0.1) that reports every request it
 * gets and checks its signature itself.
 *
 * What must hold: the body is exactly the documented JSON (ids, counts,
 * no content, no token) and its signature verifies; a retry carries the
 * same id; each HTTP answer and each transport failure maps to the
 * documented status; the callback comes once, on the loop thread, never
 * inside send(); a stalled receiver costs the loop nothing; https checks
 * the receiver against cafile and its name; stop() finishes or aborts
 * what is in flight; configuration errors name file:line; nothing of the
 * secret or of a body reaches the log.
 */
#include "tap.h"
#include "plugintest.h"

#include <carechat/notify.h>
#include <carechat/storage.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SECRET "webhook-test-secret-0123456789abcdef-0123456789" /* 47 */
#define NID "4f1c2b7e-0d6a-4e0b-9a53-1c2d3e4f5a6b"
#define CHAT "8a7b6c5d-4e3f-4a1b-8c9d-0e1f2a3b4c5d"
#define PROFILE "11111111-2222-4333-8444-555555555555"
#define USER "dr.house@example.org"
#define FIRST "99999999-8888-4777-8666-555544443333"
#define AT_US 1796644800123456LL /* 2026-12-07T12:00:00.123456Z */

static char dir[64], secret_path[128], short_path[128];
static int http_port, https_port;
static pid_t sink_pid = -1;
static int sink_out = -1, sink_in = -1;
static char sink_buf[1 << 16];
static size_t sink_len;

static struct pt_env env;
static const struct cc_notify_api *api;
static pthread_t loop_thread;
static int in_send;

/* ------------------------------------------------------------ helpers */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
}

/* One line of the sink's output (without the newline) into line, or -1
 * when none came within timeout_ms. */
static int sink_line(char *line, size_t size, int timeout_ms)
{
    double end = now_s() + timeout_ms / 1000.0;

    for (;;) {
        char *nl = memchr(sink_buf, '\n', sink_len);
        struct pollfd p = { sink_out, POLLIN, 0 };
        ssize_t n;
        int left = (int)((end - now_s()) * 1000);

        if (nl) {
            size_t len = (size_t)(nl - sink_buf);

            snprintf(line, size, "%.*s", (int)len, sink_buf);
            memmove(sink_buf, nl + 1, sink_len - len - 1);
            sink_len -= len + 1;
            return 0;
        }
        if (left < 0 || poll(&p, 1, left) <= 0)
            return -1;
        n = read(sink_out, sink_buf + sink_len, sizeof sink_buf - sink_len);
        if (n <= 0)
            return -1;
        sink_len += (size_t)n;
    }
}

/* The next request the sink reported (the caller json_decref()s it), or
 * NULL when none came within timeout_ms. */
static json_t *sink_next(int timeout_ms)
{
    static char line[1 << 16];

    if (sink_line(line, sizeof line, timeout_ms) < 0)
        return NULL;
    return json_loads(line, 0, NULL);
}

static const char *jstr(json_t *rec, const char *key)
{
    const char *s = json_string_value(json_object_get(rec, key));

    return s ? s : "";
}

static const char *jheader(json_t *rec, const char *name)
{
    const char *s = json_string_value(
        json_object_get(json_object_get(rec, "headers"), name));

    return s ? s : "";
}

static int sink_start(void)
{
    const char *src = getenv("CC_SRCDIR");
    const char *py = getenv("CC_TEST_PYTHON");
    char script[4096], line[256];
    int out[2], in[2];

    snprintf(script, sizeof script, "%s/tests/unit/webhook_sink.py",
             src ? src : ".");
    if (!py)
        py = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3"
                                                   : "python3";
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(in, O_CLOEXEC) < 0)
        return -1;
    sink_pid = fork();
    if (sink_pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(in[0], STDIN_FILENO);
        execlp(py, py, script, secret_path, dir, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    sink_out = out[0];
    sink_in = in[1];
    if (sink_line(line, sizeof line, 60000) < 0 ||
        sscanf(line, "ports %d %d", &http_port, &https_port) != 2)
        return -1;
    return 0;
}

static void sink_stop(void)
{
    if (sink_in >= 0)
        close(sink_in);   /* the sink exits when its stdin closes */
    if (sink_pid > 0)
        waitpid(sink_pid, NULL, 0);
    if (sink_out >= 0)
        close(sink_out);
}

/* Load the plugin with [notify] of text (the plugin line is added).
 * Returns 0, or -1 with the host's reason in err. */
static int load_conf(const char *text, char *err, size_t size)
{
    char conf[4096];

    snprintf(conf, sizeof conf, "[notify]\nplugin = webhook\n%s", text);
    if (pt_load(&env, pt_plugin_path("notify-webhook"), CC_KIND_NOTIFY,
                "notify", conf, err, size) < 0) {
        pt_unload(&env);
        return -1;
    }
    api = env.plugin.iface;
    return 0;
}

/* Load with url = http://127.0.0.1:<sink>/<path> (or url as given when it
 * has "://") and the secret, plus extra lines.  Fails the test and
 * returns -1 when the plugin refuses. */
static int load(const char *path, const char *extra)
{
    char text[2048], url[512], err[1024];

    if (strstr(path, "://"))
        snprintf(url, sizeof url, "%s", path);
    else
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", http_port, path);
    snprintf(text, sizeof text, "url = %s\nsecret_file = %s\n%s", url,
             secret_path, extra ? extra : "");
    if (load_conf(text, err, sizeof err) < 0) {
        ok(0, "load %s: %s", url, err);
        return -1;
    }
    return 0;
}

/* One send's callback: how often, with what, from where. */
struct outcome {
    int calls;
    int status;
    int inside_send;        /* a call came from inside send() */
    int off_loop;           /* a call came from another thread */
    double at;
};

static void on_result(void *arg, int status)
{
    struct outcome *o = arg;

    o->calls++;
    o->status = status;
    o->inside_send |= in_send;
    o->off_loop |= !pthread_equal(pthread_self(), loop_thread);
    o->at = now_s();
}

static int send_n(const struct cc_notification *n, struct outcome *o)
{
    int rc;

    memset(o, 0, sizeof *o);
    in_send = 1;
    rc = api->send(env.plugin.inst, n, on_result, o);
    in_send = 0;
    return rc;
}

/* Run the loop until o's callback came, at most ms. */
static int wait_for(struct outcome *o, int ms)
{
    return pt_run_until(&env, (volatile int *)&o->calls, ms);
}

/* Run the loop for ms. */
static void settle(int ms)
{
    int never = 0;

    pt_run_until(&env, &never, ms);
}

static struct cc_notification notification(void)
{
    struct cc_notification n = {
        .struct_size = sizeof n,
        .id = NID,
        .chat_id = CHAT,
        .side = CC_SIDE_PROFESSIONAL,
        .profile_id = PROFILE,
        .user_id = USER,
        .first_unread_id = FIRST,
        .unread = 3,
        .urgent = 0,
        .episode_at_us = AT_US - 60000000,
        .attempts = 0,
        .sent = 0,
        .at_us = AT_US,
    };
    return n;
}

/* Send n and wait for its callback; checks it came once, from the loop,
 * not inside send().  Returns the status, or 1 when send() refused. */
static int deliver(const struct cc_notification *n, struct outcome *o,
                   const char *what)
{
    int rc = send_n(n, o);

    if (rc != CC_OK) {
        ok(0, "%s: send() returned %d", what, rc);
        return 1;
    }
    if (o->calls != 0)
        ok(0, "%s: the callback ran inside send()", what);
    if (wait_for(o, 10000) < 0) {
        ok(0, "%s: no callback within 10 s", what);
        return 1;
    }
    settle(50);
    if (o->calls != 1 || o->inside_send || o->off_loop)
        ok(0, "%s: callback %d times, inside send %d, off the loop %d",
           what, o->calls, o->inside_send, o->off_loop);
    return o->status;
}

/* A sample of the plugin's metrics by name (-1 when not emitted). */
struct sample {
    const char *name;
    double value;
};

static void on_metric(void *arg, const char *name, const char *help,
                      int type, double value)
{
    struct sample *s = arg;

    if (strcmp(name, s->name) == 0)
        s->value = value;
}

static double metric(const char *name)
{
    struct sample s = { name, -1 };

    env.plugin.desc->metrics(env.plugin.inst, on_metric, &s);
    return s.value;
}

/* --------------------------------------------------------------- cases */

static void t_config(void)
{
    static char texts[16][512];
    struct {
        const char *text, *want;
    } cases[] = {
        { "secret_file = %S\n",
          "test.conf:1: [notify]: missing required key \"url\"" },
        { "url = ftp://127.0.0.1/x\nsecret_file = %S\n",
          "test.conf:3: [notify] url: must be an http:// or https:// URL" },
        { "url = 127.0.0.1:8080/hook\nsecret_file = %S\n",
          "test.conf:3: [notify] url: is not a URL" },
        { "url = http://127.0.0.1/\n",
          "test.conf:1: [notify]: missing required key \"secret_file\"" },
        { "url = http://127.0.0.1/\nsecret_file = %s\n",
          "test.conf:4: [notify] secret_file: the secret is shorter than "
          "32 bytes" },
        { "url = http://127.0.0.1/\nsecret_file = /nonexistent/secret\n",
          "test.conf:4: [notify] secret_file: cannot read the secret "
          "file" },
        { "url = http://127.0.0.1/\nsecret_file = %S\ntimeout = 50ms\n",
          "test.conf:5: [notify] timeout: must be a duration from 100ms "
          "to 120s" },
        { "url = http://127.0.0.1/\nsecret_file = %S\ntimeout = 10x\n",
          "test.conf:5: [notify] timeout: must be a duration" },
        { "url = http://127.0.0.1/\nsecret_file = %S\nmax_in_flight = 0\n",
          "test.conf:5: [notify] max_in_flight: must be a number from 1 "
          "to 100000" },
        { "url = http://127.0.0.1/\nsecret_file = %S\nsecret = " SECRET
          "\n", "test.conf:5: [notify] secret: unknown key" },
        { "url = http://127.0.0.1/\nsecret_file = %S\ncafile = %C\n",
          "test.conf:5: [notify] cafile: is for an https url" },
        { "url = https://127.0.0.1/\nsecret_file = %S\n"
          "cafile = /nonexistent.pem\n",
          "test.conf:5: [notify] cafile: cannot be read" },
        { "url = https://127.0.0.1/\nsecret_file = %S\ncafile = %S\n",
          "test.conf:5: [notify] cafile: holds no PEM certificate" },
    };
    char ca[128], err[1024];
    const char *log;
    int rc;

    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *t = cases[i].text;
        char *o = texts[i];

        /* %S: the secret file, %s: the short one, %C: the test CA. */
        for (; *t; t++) {
            if (t[0] == '%' && t[1]) {
                t++;
                o += snprintf(o, 128, "%s", *t == 'S' ? secret_path
                                            : *t == 's' ? short_path : ca);
            } else {
                *o++ = *t;
            }
        }
        *o = '\0';
        capture_begin();
        rc = load_conf(texts[i], err, sizeof err);
        log = capture_end();
        if (rc == 0)
            pt_unload(&env);
        ok(rc < 0 && strstr(log, cases[i].want), "refused: %s",
           cases[i].want);
        if (rc == 0 || !strstr(log, cases[i].want))
            printf("#   log: %s\n", log);
        ok(!strstr(log, SECRET) && !strstr(log, "short-secret"),
           "no secret in the log of case %zu", i + 1);
    }
    snprintf(texts[15], sizeof texts[15], "url = https://user:pw@127.0.0.1/"
             "hook-token-9f8e?k=v\nsecret_file = %s\ncafile = %s\n"
             "timeout = 2500ms\nmax_in_flight = 8\n", secret_path, ca);
    capture_begin();
    rc = load_conf(texts[15], err, sizeof err);
    if (rc == 0)
        pt_unload(&env);
    log = capture_end();
    ok(rc == 0, "every key, good values: loads (%s)", rc ? err : "");
    ok(strstr(log, "https://127.0.0.1:443") && !strstr(log, "hook-token") &&
       !strstr(log, "pw@"), "the log names the receiver as "
       "scheme://host:port, never its path, query or user info");
}

static void t_delivered(void)
{
    struct cc_notification n = notification();
    struct outcome o;
    json_t *rec;

    if (load("/ok", NULL) < 0)
        return;
    is_int(deliver(&n, &o, "delivered"), CC_OK, "2xx: CC_OK");
    ok(o.calls == 1 && !o.inside_send && !o.off_loop,
       "one callback, on the loop thread, after send() returned");
    rec = sink_next(5000);
    is_str(jstr(rec, "method"), "POST", "POST");
    is_str(jstr(rec, "path"), "/ok", "to the url's path");
    is_str(jheader(rec, "content-type"), "application/json",
           "Content-Type: application/json");
    is_str(jheader(rec, "x-carechat-notification"), NID,
           "X-Carechat-Notification: the notification id");
    is_str(jstr(rec, "body"),
           "{\"id\": \"" NID "\", \"event\": \"unread\", \"chat_id\": \""
           CHAT "\", \"recipient\": {\"role\": \"professional\", "
           "\"profile_id\": \"" PROFILE "\", \"user_id\": \"" USER "\"}, "
           "\"first_unread\": \"" FIRST "\", \"unread\": 3, "
           "\"urgent\": false, \"at\": \"2026-12-07T12:00:00.123456Z\"}",
           "the body: ids, counts, the time; nothing else");
    ok(json_is_true(json_object_get(rec, "sig_ok")),
       "X-Carechat-Signature is the HMAC-SHA256 of the body (checked by "
       "the receiver)");
    ok(!json_object_get(json_object_get(rec, "headers"), "authorization") &&
       !json_object_get(json_object_get(rec, "headers"), "cookie"),
       "no credentials sent");
    json_decref(rec);

    n.side = CC_SIDE_PATIENT;
    n.user_id = NULL;
    n.urgent = 1;
    n.unread = 1;
    n.at_us = -1;
    is_int(deliver(&n, &o, "patient"), CC_OK, "a patient, urgent: CC_OK");
    rec = sink_next(5000);
    ok(strstr(jstr(rec, "body"), "\"recipient\": {\"role\": \"patient\", "
              "\"profile_id\": \"" PROFILE "\", \"user_id\": null}") &&
       strstr(jstr(rec, "body"), "\"unread\": 1, \"urgent\": true, "
              "\"at\": \"1969-12-31T23:59:59.999999Z\"}"),
       "role patient, user_id null, urgent true, a time before 1970");
    if (!strstr(jstr(rec, "body"), "\"user_id\": null"))
        printf("#   body: %s\n", jstr(rec, "body"));
    json_decref(rec);

    n.user_id = "q\"b\\s\x01\xff\xc3\xa9";
    is_int(deliver(&n, &o, "odd user"), CC_OK, "an odd user id: CC_OK");
    rec = sink_next(5000);
    ok(strstr(jstr(rec, "body"),
              "\"user_id\": \"q\\\"b\\\\s\\u0001\\ufffd\xc3\xa9\"") &&
       json_is_true(json_object_get(rec, "json_ok")) &&
       json_is_true(json_object_get(rec, "sig_ok")),
       "quotes, backslashes and control bytes escaped, invalid UTF-8 "
       "replaced, UTF-8 kept: valid JSON, signed");
    json_decref(rec);

    n = notification();
    n.side = CC_SIDE_NONE;
    is_int(send_n(&n, &o), CC_E_INVAL, "no recipient side: CC_E_INVAL");
    n = notification();
    n.id = NID "\r\nX-Injected: 1";
    is_int(send_n(&n, &o), CC_E_INVAL, "an id that is not a UUID's "
           "characters: CC_E_INVAL (it goes into a header)");
    settle(100);
    is_int(o.calls, 0, "refused sends: no callback");
    ok(sink_next(100) == NULL, "refused sends: nothing posted");
    is_int(metric("webhook_requests_total"), 3, "metrics: 3 requests");
    is_int(metric("webhook_delivered_total"), 3, "metrics: 3 delivered");
    is_int(metric("webhook_in_flight"), 0, "metrics: none in flight");
    pt_unload(&env);
}

static void t_statuses(void)
{
    static const struct {
        const char *path;
        int want;
        const char *name;
    } cases[] = {
        { "/status/204", CC_OK, "CC_OK" },
        { "/status/400", CC_E_INVAL, "CC_E_INVAL" },
        { "/status/404", CC_E_INVAL, "CC_E_INVAL" },
        { "/status/408", CC_E_UNAVAIL, "CC_E_UNAVAIL" },
        { "/status/429", CC_E_UNAVAIL, "CC_E_UNAVAIL" },
        { "/status/500", CC_E_UNAVAIL, "CC_E_UNAVAIL" },
        { "/status/503", CC_E_UNAVAIL, "CC_E_UNAVAIL" },
        { "/status/302", CC_E_UNAVAIL, "CC_E_UNAVAIL" },
    };
    struct cc_notification n = notification();

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct outcome o;
        const char *log;
        json_t *rec;

        capture_begin();
        if (load(cases[i].path, NULL) < 0) {
            capture_end();
            continue;
        }
        is_int(deliver(&n, &o, cases[i].path), cases[i].want,
               "HTTP %s: %s", cases[i].path + 8, cases[i].name);
        rec = sink_next(5000);
        json_decref(rec);
        if (strcmp(cases[i].path, "/status/302") == 0)
            ok(sink_next(300) == NULL, "a redirect is not followed");
        pt_unload(&env);
        log = capture_end();
        if (cases[i].want != CC_OK)
            ok(strstr(log, NID) && !strstr(log, CHAT) &&
               !strstr(log, PROFILE) && !strstr(log, USER) &&
               !strstr(log, SECRET), "HTTP %s: logged by notification "
               "id, with nothing else of the body", cases[i].path + 8);
    }
}

static void t_retry(void)
{
    struct cc_notification n = notification();
    struct outcome o;
    json_t *a, *b;

    if (load("/flaky", NULL) < 0)
        return;
    is_int(deliver(&n, &o, "first try"), CC_E_UNAVAIL,
           "first try answered 500: CC_E_UNAVAIL");
    n.attempts = 1;
    n.at_us += 30000000;
    is_int(deliver(&n, &o, "retry"), CC_OK, "the retry: CC_OK");
    a = sink_next(5000);
    b = sink_next(5000);
    is_str(jheader(b, "x-carechat-notification"),
           jheader(a, "x-carechat-notification"),
           "the retry's X-Carechat-Notification is the first's");
    ok(strstr(jstr(a, "body"), "{\"id\": \"" NID "\"") &&
       strstr(jstr(b, "body"), "{\"id\": \"" NID "\""),
       "both bodies carry the same id");
    ok(json_is_true(json_object_get(a, "sig_ok")) &&
       json_is_true(json_object_get(b, "sig_ok")), "both signed");
    json_decref(a);
    json_decref(b);
    is_int(metric("webhook_failed_status_total"), 1,
           "metrics: 1 failed with a status");
    pt_unload(&env);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    ++*(int *)arg;
}

/* A free port nobody listens on. */
static int closed_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        abort();
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* A proxy in the environment is not used: the url is the whole route. */
static void t_no_proxy(void)
{
    static const char *vars[] = { "http_proxy", "https_proxy", "all_proxy",
                                  "HTTPS_PROXY", "ALL_PROXY" };
    struct cc_notification n = notification();
    struct outcome o;
    char proxy[64];

    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", closed_port());
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        setenv(vars[i], proxy, 1);
    if (load("/ok", NULL) == 0) {
        is_int(deliver(&n, &o, "proxy"), CC_OK,
               "http_proxy and the like set: delivered directly");
        json_decref(sink_next(5000));
        pt_unload(&env);
    }
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        unsetenv(vars[i]);
}

static void t_refused(void)
{
    struct cc_notification n = notification();
    struct outcome o;
    char url[128], why[256] = "";
    const char *log;
    int rc = CC_OK;

    snprintf(url, sizeof url, "http://127.0.0.1:%d/", closed_port());
    capture_begin();
    if (load(url, NULL) < 0) {
        capture_end();
        return;
    }
    is_int(env.plugin.desc->health(env.plugin.inst, why, sizeof why),
           CC_OK, "healthy before any request");
    for (int i = 0; i < 3; i++)
        rc |= deliver(&n, &o, "refused") != CC_E_UNAVAIL;
    ok(!rc, "a refused connection: CC_E_UNAVAIL (3 times)");
    is_int(env.plugin.desc->health(env.plugin.inst, why, sizeof why),
           CC_E_UNAVAIL, "3 transport failures in a row: unhealthy");
    ok(strstr(why, "unreachable") != NULL, "with a reason: %s", why);
    is_int(metric("webhook_failed_transport_total"), 3,
           "metrics: 3 transport failures");
    pt_unload(&env);
    log = capture_end();
    ok(strstr(log, "not delivered") &&
       !strstr(strstr(log, "not delivered") + 1, "not delivered"),
       "one log line for three failures alike");
    ok(sink_next(100) == NULL, "nothing reached the receiver");
}

static void t_stalled(void)
{
    struct cc_notification n = notification();
    struct event *tick;
    struct timeval tv = { 0, 10000 };
    struct outcome o;
    int ticks = 0;
    double t0, sent;

    if (load("/stall/3", "timeout = 500ms\n") < 0)
        return;
    tick = event_new(env.base, -1, EV_PERSIST, on_tick, &ticks);
    event_add(tick, &tv);
    t0 = now_s();
    is_int(send_n(&n, &o), CC_OK, "send to a stalled receiver");
    sent = now_s() - t0;
    ok(sent < 0.2, "send() returned at once (%.3f s, not the 0.5 s a "
       "blocking request would take)", sent);
    wait_for(&o, 5000);
    event_free(tick);
    is_int(o.calls, 1, "one callback");
    is_int(o.status, CC_E_UNAVAIL, "past the timeout: CC_E_UNAVAIL");
    ok(o.at - t0 >= 0.45 && o.at - t0 < 2.0,
       "after the 500 ms timeout, not the receiver's 3 s (%.2f s)",
       o.at - t0);
    ok(ticks >= 20, "the loop kept running meanwhile (%d ticks of 10 ms "
       "in 500 ms)", ticks);
    json_decref(sink_next(1000));
    pt_unload(&env);
}

static void t_health_recovers(void)
{
    static const char *ids[] = { "a1", "a2", "a3" };
    struct cc_notification n = notification();
    struct outcome o;
    char why[256];
    int rc = 0;

    capture_begin();
    if (load("/stallonce", "timeout = 300ms\n") < 0) {
        capture_end();
        return;
    }
    for (int i = 0; i < 3; i++) {
        n.id = ids[i];
        rc |= deliver(&n, &o, "stallonce") != CC_E_UNAVAIL;
    }
    ok(!rc, "3 timeouts: CC_E_UNAVAIL");
    is_int(env.plugin.desc->health(env.plugin.inst, why, sizeof why),
           CC_E_UNAVAIL, "3 timeouts in a row: unhealthy");
    is_int(deliver(&n, &o, "answered"), CC_OK, "the receiver answers");
    is_int(env.plugin.desc->health(env.plugin.inst, why, sizeof why),
           CC_OK, "an answer: healthy again");
    pt_unload(&env);
    ok(strstr(capture_end(), "takes notifications again (3 failed") != NULL,
       "the recovery is logged with the count of failures");
    for (int i = 0; i < 4; i++)
        json_decref(sink_next(1000));
}

static void t_busy(void)
{
    struct cc_notification n = notification();
    struct outcome o1, o2, o3, o4;

    if (load("/stall/1", "max_in_flight = 2\n") < 0)
        return;
    is_int(send_n(&n, &o1), CC_OK, "1 of max_in_flight = 2");
    is_int(send_n(&n, &o2), CC_OK, "2 of 2");
    is_int(send_n(&n, &o3), CC_E_BUSY, "a third: CC_E_BUSY");
    wait_for(&o1, 5000);
    wait_for(&o2, 5000);
    ok(o1.status == CC_OK && o2.status == CC_OK, "the two delivered");
    settle(50);
    is_int(o3.calls, 0, "the refused one: no callback");
    is_int(deliver(&n, &o4, "after"), CC_OK, "room again: delivered");
    is_int(metric("webhook_busy_total"), 1, "metrics: 1 busy");
    for (int i = 0; i < 3; i++)
        json_decref(sink_next(1000));
    pt_unload(&env);
}

/* Load path (timeout 5 s), send, let the request reach the receiver,
 * then stop and destroy the plugin: its callback in *o, how long the stop
 * took in *took.  Returns 0, or -1 when it could not be set up. */
static int stop_during(const char *path, struct outcome *o, double *took)
{
    struct cc_notification n = notification();
    double t0;

    memset(o, 0, sizeof *o);
    if (load(path, "timeout = 5s\n") < 0)
        return -1;
    if (send_n(&n, o) != CC_OK) {
        pt_unload(&env);
        return -1;
    }
    settle(200);
    t0 = now_s();
    pt_unload(&env);
    *took = now_s() - t0;
    json_decref(sink_next(1000));
    return 0;
}

static void t_stop(void)
{
    struct outcome o;
    const char *log;
    double took = 0;
    int rc;

    rc = stop_during("/stall/1", &o, &took);
    ok(rc == 0 && o.calls == 1 && o.status == CC_OK, "stop() lets a "
       "request of 1 s finish: CC_OK (%d call(s), status %d)", o.calls,
       o.status);
    ok(rc == 0 && took < 1.9, "stop() ended with it (%.2f s)", took);
    capture_begin();
    rc = stop_during("/stall/4", &o, &took);
    log = capture_end();
    ok(rc == 0 && o.calls == 1 && o.status == CC_E_UNAVAIL, "stop() "
       "aborts a request of 4 s after its grace: CC_E_UNAVAIL (%d "
       "call(s), status %d)", o.calls, o.status);
    ok(rc == 0 && took >= 1.9 && took < 3.5, "after the 2 s grace "
       "(%.2f s)", took);
    ok(strstr(log, "1 notification(s) in flight aborted") != NULL,
       "the abort is logged");
}

static void t_https(void)
{
    static const struct {
        const char *host, *ca;
        int want;
        const char *what, *log;
    } cases[] = {
        { "127.0.0.1", "ca.pem", CC_OK, "cafile with the receiver's CA: "
          "CC_OK", NULL },
        { "127.0.0.1", "other-ca.pem", CC_E_UNAVAIL, "another CA: "
          "CC_E_UNAVAIL", "certificate problem" },
        { "127.0.0.1", NULL, CC_E_UNAVAIL, "the system's CAs: "
          "CC_E_UNAVAIL", "certificate problem" },
        { "localhost", "ca.pem", CC_E_UNAVAIL, "a name the certificate "
          "does not hold: CC_E_UNAVAIL", "subject name" },
    };
    struct cc_notification n = notification();

    if (!https_port) {
        printf("ok %d # SKIP the openssl command is not installed: no "
               "https\n", ++tap_n);
        return;
    }
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char url[128], extra[256] = "";
        struct outcome o;
        const char *log;
        json_t *rec;

        snprintf(url, sizeof url, "https://%s:%d/ok", cases[i].host,
                 https_port);
        if (cases[i].ca)
            snprintf(extra, sizeof extra, "cafile = %s/%s\n", dir,
                     cases[i].ca);
        capture_begin();
        if (load(url, extra) < 0) {
            capture_end();
            continue;
        }
        is_int(deliver(&n, &o, cases[i].what), cases[i].want, "https, %s",
               cases[i].what);
        pt_unload(&env);
        log = capture_end();
        rec = sink_next(cases[i].want == CC_OK ? 5000 : 200);
        if (cases[i].want == CC_OK)
            ok(json_is_true(json_object_get(rec, "sig_ok")),
               "https: received, signed");
        else
            ok(!rec && strstr(log, cases[i].log), "https: nothing "
               "received; the log says why (%s)", cases[i].log);
        json_decref(rec);
    }
}

int main(void)
{
    char text[512], err[1024];
    int rc;

    signal(SIGPIPE, SIG_IGN);
    loop_thread = pthread_self();
    snprintf(dir, sizeof dir, "/tmp/test_webhook_XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(secret_path, sizeof secret_path, "%s/secret", dir);
    snprintf(short_path, sizeof short_path, "%s/short", dir);
    write_file(secret_path, SECRET);
    write_file(short_path, "short-secret-of-31-bytes-012345");
    if (access(pt_plugin_path("notify-webhook"), R_OK) < 0) {
        printf("1..0 # SKIP %s not built (configure found no libcurl)\n",
               pt_plugin_path("notify-webhook"));
        return 0;
    }
    if (sink_start() < 0) {
        ok(0, "the webhook sink (tests/unit/webhook_sink.py) started");
        sink_stop();
        return done_testing();
    }
    /* A host that predates the notify kind (ABI 1.4) names it
     * "unknown" and has no use for the plugin yet. */
    snprintf(text, sizeof text, "url = http://127.0.0.1:%d/\n"
             "secret_file = %s\n", http_port, secret_path);
    capture_begin();
    rc = load_conf(text, err, sizeof err);
    capture_end();
    if (rc < 0 && strstr(err, "usable unknown interface")) {
        sink_stop();
        printf("1..0 # SKIP this carechatd does not load notify plugins "
               "yet\n");
        return 0;
    }
    if (rc == 0)
        pt_unload(&env);
    t_config();
    t_delivered();
    t_statuses();
    t_retry();
    t_refused();
    t_no_proxy();
    t_stalled();
    t_health_recovers();
    t_busy();
    t_stop();
    t_https();
    sink_stop();
    return done_testing();
}
