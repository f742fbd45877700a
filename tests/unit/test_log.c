/*
 * test_log.c - the log rate limit (loglimit.h) as a reader of the log
 * sees it: a storm of one kind costs a few lines and a summary with the
 * exact count; other kinds, and other statuses of the access log, pass
 * untouched; plugins' lines (host->log) obey the same rule; nothing is
 * counted that the level would drop; no count is lost at a forced flush
 * or across threads.  stderr goes to a temporary file the test reads.
 */
#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"
#include "log.h"
#include "loglimit.h"
#include "tap.h"

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

static FILE *capture;
static long capture_pos;

/* stderr into a temporary file from here on. */
static void capture_start(void)
{
    capture = tmpfile();
    if (!capture || dup2(fileno(capture), STDERR_FILENO) < 0)
        abort();
}

/* What was written to stderr since the last call (caller frees). */
static char *captured(void)
{
    long end;
    char *buf;

    fflush(stderr);
    fseek(capture, 0, SEEK_END);
    end = ftell(capture);
    buf = calloc(1, (size_t)(end - capture_pos) + 1);
    fseek(capture, capture_pos, SEEK_SET);
    if (fread(buf, 1, (size_t)(end - capture_pos), capture) !=
        (size_t)(end - capture_pos))
        abort();
    capture_pos = end;
    return buf;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The N of the first "... N similar messages suppressed" (commas
 * removed), or -1. */
static long long summary_count(const char *text)
{
    const char *p = strstr(text, "... ");
    long long n = 0;

    if (!p || !strstr(p, "similar messages suppressed"))
        return -1;
    for (p += 4; *p && *p != ' '; p++)
        if (*p >= '0' && *p <= '9')
            n = n * 10 + (*p - '0');
    return n;
}

static void storm(int n)
{
    for (int i = 0; i < n; i++)
        cc_log(CC_LOG_WARN, "test", "refused request %d", i);
}

static void test_burst_then_summary(void)
{
    char *out;

    cc_loglimit_reset();
    storm(1000);
    out = captured();
    is_int(count_of(out, "refused request"), CC_LOGLIMIT_BURST,
           "a storm of 1,000 lines writes %d of them", CC_LOGLIMIT_BURST);
    is_int(summary_count(out), -1, "no summary before the window ends");
    free(out);
    cc_log_flush_suppressed(0);
    out = captured();
    is_int(strlen(out), 0, "flush before the window ends writes nothing");
    free(out);
    fake_now += (uint64_t)CC_LOGLIMIT_WINDOW_S * 1000000000u;
    cc_log_flush_suppressed(0);
    out = captured();
    is_int(summary_count(out), 1000 - CC_LOGLIMIT_BURST,
           "the summary counts every suppressed line");
    ok(strstr(out, "... 995 similar messages suppressed in 5 s") != NULL,
       "summary says how many and over how long");
    ok(strstr(out, "\"refused request 4\"") != NULL,
       "summary quotes the last line written");
    ok(strstr(out, " warn  test: ") != NULL,
       "summary at the level and component of the storm");
    free(out);
    is_int(cc_loglimit_suppressed_total(), 995, "suppressed total");
    storm(3);
    out = captured();
    is_int(count_of(out, "refused request"), 3,
           "after the window the kind writes again");
    free(out);
}

static void test_summary_on_next_line(void)
{
    char *out;

    cc_loglimit_reset();
    storm(20);
    free(captured());
    fake_now += (uint64_t)CC_LOGLIMIT_WINDOW_S * 1000000000u;
    storm(1);
    out = captured();
    is_int(summary_count(out), 15,
           "the next line of the kind writes the summary first");
    ok(strstr(out, "suppressed") < strstr(out, "refused request 0"),
       "summary before the new line");
    free(out);
}

static void test_kinds_apart(void)
{
    char *out;

    cc_loglimit_reset();
    storm(100);
    cc_log(CC_LOG_ERROR, "test", "another event");
    for (int i = 0; i < 20; i++)
        cc_log_kind(CC_LOG_INFO, "http", 200, "GET / %d", 200);
    for (int i = 0; i < 20; i++)
        cc_log_kind(CC_LOG_INFO, "http", 401, "GET / %d", 401);
    out = captured();
    is_int(count_of(out, "another event"), 1,
           "another call site is not suppressed by a storm");
    is_int(count_of(out, "GET / 200"), CC_LOGLIMIT_BURST,
           "one kind per status: 200s limited on their own");
    is_int(count_of(out, "GET / 401"), CC_LOGLIMIT_BURST,
           "and 401s on their own");
    free(out);
    cc_log_flush_suppressed(1);
    out = captured();
    is_int(count_of(out, "similar messages suppressed"), 3,
           "a forced flush writes every pending summary");
    ok(strstr(out, "... 95 similar") && strstr(out, "... 15 similar"),
       "each with its own count");
    free(out);
}

/* Many kinds storming at once, interleaved: each keeps its own window.
 * (A direct-mapped table let two kinds that hash alike take the slot
 * from each other on every line, so each wrote a burst per turn.) */
static void test_many_kinds_interleaved(void)
{
    enum { KINDS = 40 };
    char *fmts[KINDS], *pad[KINDS];
    char *out;
    int lines = 0;

    /* Call sites are format strings scattered over memory: here, copies
     * at irregular heap addresses (a direct-mapped table of 256 collides
     * for 40 such kinds about 19 times in 20). */
    srand(7);
    for (int k = 0; k < KINDS; k++) {
        pad[k] = malloc(16 + (size_t)(rand() % 4000));
        fmts[k] = strdup("kind %d failed");
    }
    cc_loglimit_reset();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    for (int round = 0; round < 20; round++)
        for (int k = 0; k < KINDS; k++)
            cc_log(CC_LOG_WARN, "storm", fmts[k], k);
#pragma GCC diagnostic pop
    out = captured();
    for (const char *p = out; (p = strstr(p, " failed")); p++)
        lines++;
    is_int(lines, KINDS * CC_LOGLIMIT_BURST,
           "40 kinds x 20 lines: %d each written, the rest counted",
           CC_LOGLIMIT_BURST);
    free(out);
    cc_log_flush_suppressed(1);
    free(captured());
    cc_loglimit_reset(); /* before the formats it points to go */
    for (int k = 0; k < KINDS; k++) {
        free(fmts[k]);
        free(pad[k]);
    }
}

static void test_level_and_severity(void)
{
    char *out;

    cc_loglimit_reset();
    cc_log_set_level(CC_LOG_WARN);
    for (int i = 0; i < 100; i++)
        cc_log(CC_LOG_DEBUG, "test", "chatty %d", i);
    is_int(cc_loglimit_suppressed_total(), 0,
           "lines below the level are not counted");
    for (int i = 0; i < 10; i++)
        cc_log(i == 8 ? CC_LOG_ERROR : CC_LOG_WARN, "test", "mixed %d", i);
    cc_log_set_level(CC_LOG_DEBUG);
    free(captured());
    cc_log_flush_suppressed(1);
    out = captured();
    ok(strstr(out, " error test: ... 5 similar") != NULL,
       "the summary takes the most severe suppressed level");
    free(out);
}

static void test_plugins_too(void)
{
    struct event_base *base = event_base_new();
    const struct cc_host_api *api;
    char *out;

    cc_loglimit_reset();
    cc_host_init(base, NULL);
    api = cc_host_api_table();
    for (int i = 0; i < 50; i++)
        api->log(NULL, CC_LOG_ERROR, "append failed: %s", "disk full");
    out = captured();
    is_int(count_of(out, "append failed"), CC_LOGLIMIT_BURST,
           "a plugin's host->log storm is limited as well");
    free(out);
    cc_log_flush_suppressed(1);
    out = captured();
    is_int(summary_count(out), 50 - CC_LOGLIMIT_BURST,
           "and its count kept");
    free(out);
    cc_host_shutdown();
    event_base_free(base);
}

/* A plugin's component name is freed when it is unloaded, before the
 * last summaries are written at exit. */
static void test_component_outlived(void)
{
    char *name = strdup("storage:gone");
    char *out;

    cc_loglimit_reset();
    for (int i = 0; i < 12; i++)
        cc_log(CC_LOG_WARN, name, "write failed %d", i);
    free(captured());
    memset(name, 'X', strlen(name));
    free(name);
    cc_log_flush_suppressed(1);
    out = captured();
    ok(strstr(out, " storage:gone: ... 7 similar") != NULL,
       "a summary written after its component's name was freed names it");
    free(out);
}

static void *thread_storm(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++)
        cc_log(CC_LOG_WARN, "test", "from a thread %d", i);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[4];
    char *out;
    long long total = 0;

    cc_loglimit_reset();
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_storm, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cc_log_flush_suppressed(1);
    out = captured();
    total = count_of(out, "from a thread") - count_of(out, "(the last");
    total += summary_count(out);
    is_int(total, 80000,
           "four threads: lines written plus counted = lines logged");
    free(out);
}

/* A value from a token or a client cannot make a line that lies: control
 * and invisible characters stay escapes, a token is never written, and
 * a quoted value cannot close its quotes. */
static void test_values_escaped(void)
{
    static const char jwt[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoieCJ9."
        "dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ";
    char q[256], t[512], *out;

    fake_now += 60ull * 1000000000u; /* a fresh window for these kinds */
    cc_log(CC_LOG_WARN, "esc", "user %s joined", "eve\n2026 error forged");
    cc_log(CC_LOG_WARN, "esc", "user %s",
           "mallory\xe2\x80\xa8" "admin\xe2\x80\xae" "!dlrow");
    cc_log(CC_LOG_WARN, "esc", "claim %s", jwt);
    cc_log(CC_LOG_WARN, "esc", "quoted %s",
           cc_log_q(q, sizeof q, "a\" b=\"c\\"));
    out = captured();
    is_int(count_of(out, "\n"), 4, "four events, four lines");
    ok(strstr(out, "user eve\\x0a2026 error forged joined") != NULL,
       "a newline is \\x0a: %s", out);
    ok(strstr(out, "mallory\\u2028admin\\u202e!dlrow") != NULL &&
       !strstr(out, "\xe2\x80"), "separator and override escaped");
    ok(strstr(out, "claim [jwt]\n") != NULL && !strstr(out, "eyJ"),
       "no token written");
    ok(strstr(out, "quoted \"a\\\" b=\\\"c\\\\\"") != NULL,
       "a quoted value keeps its quotes closed: %s", out);
    free(out);

    /* The access log's target: the path, and the query's names only. */
    cc_log_target(t, sizeof t, "/ws/chat/x/?token=abc&since=1", 29);
    is_str(t, "/ws/chat/x/?token=[redacted]&since=[redacted]",
           "every value redacted, names kept");
    snprintf(q, sizeof q, "/a?%%74oken=%s&jwt=%s&x", jwt, jwt);
    cc_log_target(t, sizeof t, q, strlen(q));
    is_str(t, "/a?token=[redacted]&jwt=[redacted]&x",
           "whatever the name, however it is encoded");
    snprintf(q, sizeof q, "/ws/chat/%%65%s/", jwt + 1);
    cc_log_target(t, sizeof t, q, strlen(q));
    cc_log(CC_LOG_WARN, "esc", "target %s", t);
    out = captured();
    ok(strstr(out, "target /ws/chat/[jwt]/") != NULL,
       "a token in the path, percent-encoded: %s", out);
    free(out);
}

int main(void)
{
    cc_log_set_level(CC_LOG_DEBUG);
    cc_loglimit_set_clock(fake_clock);
    fake_now = 1000000000u;
    capture_start();
    test_burst_then_summary();
    test_summary_on_next_line();
    test_kinds_apart();
    test_many_kinds_interleaved();
    test_level_and_severity();
    test_plugins_too();
    test_component_outlived();
    test_threads();
    test_values_escaped();
    return done_testing();
}
