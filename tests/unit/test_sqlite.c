/*
 * test_sqlite.c - the `sqlite` storage plugin, loaded from its built .so
 * through the real host, on database files in a fresh temporary
 * directory: configuration refusals, the schema it creates, profiles,
 * chats, message history (byte-exact contents, paging, read marks), the
 * chat list, group commit under load, flushing on stop, durability across
 * a restart, refusing a database made by a newer schema, migrations
 * (from schemas 1 and 5), and the ABI 1.4 contract (store14.h: marks,
 * owners, episodes and their claims, tickets, priority).
 *
 * Every request goes through the public storage ABI and waits for its
 * callback on the loop, as the core does; the files themselves are then
 * checked with the sqlite3 C API.
 */
#include "tap.h"
#include "plugintest.h"

#include <carechat/storage.h>

#include <dirent.h>
#include <dlfcn.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAT1 "11111111-1111-4111-8111-111111111111"
#define PAT2 "22222222-2222-4222-8222-222222222222"
#define PAT3 "33333333-3333-4333-8333-333333333333"
#define PRO1 "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define PRO2 "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"
#define NOBODY "99999999-9999-4999-8999-999999999999"
#define CHAT_A "c0000000-0000-4000-8000-00000000000a"
#define CHAT_B "c0000000-0000-4000-8000-00000000000b"
#define CHAT_C "c0000000-0000-4000-8000-00000000000c"
#define CHAT_X "c0000000-0000-4000-8000-0000000000ff" /* never stored */

#define BULK 2000   /* appends in flight at once */
#define FLUSH 50    /* appends still queued when the plugin stops */
#define BIG 65536   /* the 64 KiB message */

static char dir[64];      /* the temporary directory */
static char db_path[128]; /* the main database */
static int64_t t0;        /* base of the message times */

/* ------------------------------------------------ direct sqlite3 access */

/* The test links only libcccore, like every plugin test; the sqlite3 C
 * API comes from the same libsqlite3 the plugin itself was linked with. */
static struct {
    void *dl;
    int (*open_v2)(const char *, sqlite3 **, int, const char *);
    int (*close)(sqlite3 *);
    int (*exec)(sqlite3 *, const char *,
                int (*)(void *, int, char **, char **), void *, char **);
    void (*free)(void *);
} lite;

static int lite_init(void)
{
    if (lite.dl)
        return 0;
    lite.dl = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!lite.dl)
        lite.dl = dlopen("libsqlite3.so", RTLD_NOW | RTLD_LOCAL);
    if (!lite.dl) {
        printf("# cannot load libsqlite3: %s\n", dlerror());
        return -1;
    }
    *(void **)&lite.open_v2 = dlsym(lite.dl, "sqlite3_open_v2");
    *(void **)&lite.close = dlsym(lite.dl, "sqlite3_close");
    *(void **)&lite.exec = dlsym(lite.dl, "sqlite3_exec");
    *(void **)&lite.free = dlsym(lite.dl, "sqlite3_free");
    if (!lite.open_v2 || !lite.close || !lite.exec || !lite.free) {
        printf("# libsqlite3 lacks a function we need\n");
        dlclose(lite.dl);
        lite.dl = NULL;
        return -1;
    }
    return 0;
}

struct first_row {
    int rows;
    char value[256];
};

static int first_row_cb(void *arg, int n, char **vals, char **names)
{
    struct first_row *f = arg;

    if (f->rows++ == 0 && n > 0)
        snprintf(f->value, sizeof f->value, "%s", vals[0] ? vals[0] : "");
    return 0;
}

/* Run sql on the file at path (which must exist unless create is set);
 * the first column of the first row goes to out.  Returns 0 or -1. */
static int lite_run(const char *path, int create, const char *sql,
                    char *out, size_t out_size)
{
    struct first_row f = { 0, "" };
    sqlite3 *h = NULL;
    char *err = NULL;
    int rc;

    if (out_size)
        out[0] = '\0';
    if (lite_init() < 0)
        return -1;
    rc = lite.open_v2(path, &h, SQLITE_OPEN_READWRITE |
                      (create ? SQLITE_OPEN_CREATE : 0), NULL);
    if (rc == SQLITE_OK)
        rc = lite.exec(h, sql, first_row_cb, &f, &err);
    if (rc != SQLITE_OK)
        printf("# sqlite3 on %s: %s: error %d %s\n", path, sql, rc,
               err ? err : "");
    lite.free(err);
    lite.close(h);
    if (out_size)
        snprintf(out, out_size, "%s", f.value);
    return rc == SQLITE_OK ? 0 : -1;
}

/* The first column of sql's first row on path, in a static buffer, or
 * "(error)". */
static const char *lite_value(const char *path, const char *sql)
{
    static char buf[256];

    if (lite_run(path, 0, sql, buf, sizeof buf) < 0)
        snprintf(buf, sizeof buf, "(error)");
    return buf;
}

/* Remove the temporary directory and the database files in it. */
static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    char file[512];

    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(file, sizeof file, "%s/%s", path, de->d_name);
            unlink(file);
        }
    }
    if (d)
        closedir(d);
    if (rmdir(path) < 0)
        printf("# could not remove %s\n", path);
}

/* ------------------------------------------------ the loaded plugin */

#define STORETEST_PLUGIN "storage-sqlite"
#include "storetest.h"
#include "store14.h"

static int load(const char *path)
{
    char conf[512];

    snprintf(conf, sizeof conf, "[storage]\nplugin = sqlite\npath = %s\n",
             path);
    return load_conf(conf);
}

/* ----------------------------------------- the expected history of A */

/* Chat A's messages as appended, to compare with what comes back before
 * and after the restart. */
struct expect {
    char id[37];
    const char *content;
    size_t len;
    int64_t t;
    int32_t side;
};

static struct expect hist_a[32];
static int n_a;
static char big[BIG];

/* Append to chat A and record it; returns the status. */
static int append_a(struct outcome *o, int32_t side, const char *content,
                    size_t len, int64_t t)
{
    struct expect *e = &hist_a[n_a];
    int rc;

    make_id(e->id, 0xa, (unsigned)n_a + 1);
    e->content = content;
    e->len = len;
    e->t = t;
    e->side = side;
    rc = append(o, e->id, CHAT_A, side == CC_SIDE_PATIENT ? PAT1 : PRO1,
                side, content, len, t);
    if (rc == CC_OK)
        n_a++;
    return rc;
}

/* Chat A's whole history equals hist_a, field by field. */
static void check_history_a(const char *when)
{
    struct outcome o = { 0 };
    int bad = 0;

    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, 0, 1000), CC_OK,
           "%s: history of A listed", when);
    is_int(o.n_messages, n_a, "%s: every message of A is there", when);
    is_int(o.count, n_a, "%s: count of A", when);
    for (size_t i = 0; i < o.n_messages && i < (size_t)n_a; i++) {
        const struct mcopy *m = &o.messages[i];
        const struct expect *e = &hist_a[i];

        if (strcmp(m->id, e->id) || m->seq != (int64_t)i + 1 ||
            !same_bytes(m, e->content, e->len) || m->created_at_us != e->t ||
            m->sender_type != e->side || strcmp(m->chat_id, CHAT_A) ||
            strcmp(m->sender_id,
                   e->side == CC_SIDE_PATIENT ? PAT1 : PRO1)) {
            printf("#   message %zu differs: id %s seq %lld len %zu\n", i,
                   m->id, (long long)m->seq, m->content_len);
            bad++;
        }
    }
    is_int(bad, 0, "%s: ids, order, bytes, times and senders all kept",
           when);
    outcome_free(&o);
}

/* -------------------------------------------------------------- config */

/* Load conf; expect a refusal whose log contains want. */
static void refused(const char *conf, const char *want, const char *name)
{
    struct pt_env e;
    char err[512] = "";
    const char *log;
    int rc;

    capture_begin();
    rc = pt_load(&e, pt_plugin_path("storage-sqlite"), CC_KIND_STORAGE,
                 "storage", conf, err, sizeof err);
    log = capture_end();
    is_int(rc, -1, "config refused: %s", name);
    ok(err[0] != '\0', "config refused with an error: %s", name);
    if (!ok(strstr(log, want) != NULL, "config reason: %s", name))
        printf("#   log: %s#   want: %s\n", log, want);
    pt_unload(&e);
}

static void test_config(void)
{
    char conf[512], want[256];

    refused("[storage]\nplugin = sqlite\npath = /tmp/x.db\nbogus = 1\n",
            "test.conf:4: [storage] bogus: unknown key", "unknown key");
    refused("[storage]\nplugin = sqlite\n",
            "missing required key \"path\"", "no path");
    refused("[storage]\nplugin = sqlite\npath =\n",
            "test.conf:3: [storage] path: needs a file name", "empty path");
    refused("[storage]\nplugin = sqlite\npath = /tmp/x.db\n"
            "synchronous = off\n",
            "synchronous: expected normal or full", "synchronous off");
    refused("[storage]\nplugin = sqlite\npath = /tmp/x.db\nbatch_max = 0\n",
            "batch_max: expected a number from 1 to 100000", "batch_max 0");
    refused("[storage]\nplugin = sqlite\npath = /tmp/x.db\n"
            "busy_timeout = 5s\n",
            "busy_timeout: expected milliseconds", "busy_timeout 5s");
    refused("[storage]\nplugin = sqlite\npath = /tmp/x.db\n"
            "cache_size = 512k\n",
            "cache_size: expected a size from 1m to 64g", "cache_size 512k");
    refused("[storage]\nplugin = sqlite\npath = /tmp/x.db\n"
            "cache_size = 32 pages\n",
            "cache_size: expected a size from 1m to 64g", "cache_size pages");

    /* The directory does not exist: refused at start, naming the file. */
    snprintf(conf, sizeof conf,
             "[storage]\nplugin = sqlite\npath = %s/no/such/dir/chat.db\n",
             dir);
    snprintf(want, sizeof want, "cannot open %s/no/such/dir/chat.db", dir);
    refused(conf, want, "path in a missing directory");
}

/* --------------------------------------------------- a fresh database */

static void test_fresh(void)
{
    struct stat st;
    const char *log;
    int rc;

    capture_begin();
    rc = load(db_path);
    log = capture_end();
    ok(rc == 0, "fresh database opens");
    ok(strstr(log, "created schema version 6") != NULL,
       "fresh database: schema created (log says so)");
    ok(stat(db_path, &st) == 0 && S_ISREG(st.st_mode),
       "fresh database: the file exists");
    if (rc < 0) { /* nothing else can run */
        unload();
        remove_dir(dir);
        exit(done_testing() | 1);
    }
}

static void test_profiles(void)
{
    struct outcome o = { 0 };

    is_int(profile_put(&o, CC_SIDE_PATIENT, PAT1, "user-p1"), CC_OK,
           "patient profile registered");
    is_int(o.calls, 1, "profile_put: one callback");
    is_int(profile_put(&o, CC_SIDE_PATIENT, PAT2, NULL), CC_OK,
           "patient profile without an owner registered");
    is_int(profile_put(&o, CC_SIDE_PATIENT, PAT3, "user-p3"), CC_OK,
           "third patient registered");
    is_int(profile_put(&o, CC_SIDE_PROFESSIONAL, PRO1, "user-d1"), CC_OK,
           "professional profile registered");
    is_int(profile_put(&o, CC_SIDE_PROFESSIONAL, PRO2, "user-d2"), CC_OK,
           "second professional registered");
    is_int(profile_put(&o, CC_SIDE_PATIENT, PAT1, "someone-else"), CC_OK,
           "registering again is idempotent");

    is_int(profile_get(&o, CC_SIDE_PATIENT, PAT1), CC_OK,
           "registered patient found");
    is_int(profile_get(&o, CC_SIDE_PROFESSIONAL, PRO1), CC_OK,
           "registered professional found");
    is_int(profile_get(&o, CC_SIDE_PROFESSIONAL, PAT1), CC_E_NOTFOUND,
           "a patient is not a professional");
    is_int(o.calls, 1, "not found is a callback, not a refusal");
    is_int(profile_get(&o, CC_SIDE_PATIENT, NOBODY), CC_E_NOTFOUND,
           "unknown profile not found");

    is_int(profile_put(&o, CC_SIDE_NONE, PAT1, NULL), CC_E_INVAL,
           "profile_put without a side refused");
    is_int(profile_get(&o, CC_SIDE_PATIENT, "1111"), CC_E_INVAL,
           "profile_get with a short id refused");
    is_int(o.calls, 0, "refused call: no callback");
    outcome_free(&o);
}

static void test_chats(void)
{
    struct outcome o = { 0 };

    is_int(chat_open(&o, CHAT_A, PAT1, PRO1, t0), CC_OK, "chat A opened");
    is_int(o.created, 1, "chat A: first open creates it");
    if (ok(o.chat != NULL, "chat A: result has the chat")) {
        is_str(o.chat->id, CHAT_A, "chat A: the new id is used");
        is_str(o.chat->patient_id, PAT1, "chat A: patient");
        is_str(o.chat->professional_id, PRO1, "chat A: professional");
        is_int(o.chat->created_at_us, t0, "chat A: created at now_us");
        is_int(o.chat->updated_at_us, t0, "chat A: updated at creation");
        is_int(o.chat->has_last, 0, "chat A: no last message yet");
    }
    outcome_free(&o);

    is_int(chat_open(&o, CHAT_X, PAT1, PRO1, t0 + 99), CC_OK,
           "chat A opened again with another new id");
    is_int(o.created, 0, "second open does not create");
    if (ok(o.chat != NULL, "second open: result has the chat")) {
        is_str(o.chat->id, CHAT_A, "second open: the same chat");
        is_int(o.chat->created_at_us, t0,
               "second open: creation time unchanged");
    }
    outcome_free(&o);

    is_int(chat_get(&o, CHAT_A, PAT1, NULL), CC_OK, "chat A by id");
    if (ok(o.chat != NULL, "chat_get: result has the chat")) {
        is_str(o.chat->id, CHAT_A, "chat_get: id");
        is_str(o.chat->patient_id, PAT1, "chat_get: patient");
        is_str(o.chat->professional_id, PRO1, "chat_get: professional");
        is_int(o.chat->unread_count, 0, "chat_get: nothing unread");
    }
    outcome_free(&o);
    is_int(chat_get(&o, CHAT_X, NULL, NULL), CC_E_NOTFOUND,
           "the id of the second open was never stored");
    is_int(o.calls, 1, "chat_get not found: one callback");
    is_int(chat_get(&o, NOBODY, PAT1, NULL), CC_E_NOTFOUND,
           "unknown chat id not found");
    outcome_free(&o);

    is_int(chat_open(&o, CHAT_X, NOBODY, PRO1, t0), CC_E_NOTFOUND,
           "open with an unknown patient refused");
    is_int(o.missing_side, CC_SIDE_PATIENT, "missing side: patient");
    outcome_free(&o);
    is_int(chat_open(&o, CHAT_X, PAT1, NOBODY, t0), CC_E_NOTFOUND,
           "open with an unknown professional refused");
    is_int(o.missing_side, CC_SIDE_PROFESSIONAL, "missing side: professional");
    outcome_free(&o);
    is_int(chat_open(&o, CHAT_X, PRO1, PAT1, t0), CC_E_NOTFOUND,
           "open with the sides swapped refused");
    outcome_free(&o);
    is_int(chat_get(&o, CHAT_X, NULL, NULL), CC_E_NOTFOUND,
           "refused opens created nothing");
    outcome_free(&o);

    is_int(append(&o, NOBODY, NOBODY, PAT1, CC_SIDE_PATIENT, "x", 1, t0),
           CC_E_NOTFOUND, "append to an unknown chat not found");
    outcome_free(&o);
    is_int(message_list(&o, NOBODY, CC_SIDE_PATIENT, 0, 0, 10),
           CC_E_NOTFOUND, "history of an unknown chat not found");
    outcome_free(&o);
    is_int(mark_read(&o, NOBODY, CC_SIDE_PATIENT), CC_E_NOTFOUND,
           "mark_read of an unknown chat not found");
    outcome_free(&o);
}

/* ------------------------------------------------------------ messages */

static const char emoji[] = /* woman health worker (a ZWJ sequence), pill,
                               stethoscope */
    "\xf0\x9f\x91\xa9\xe2\x80\x8d\xe2\x9a\x95\xef\xb8\x8f \xf0\x9f\x92\x8a "
    "\xf0\x9f\xa9\xba ok";
static const char rtl[] = /* Arabic, a right-to-left mark, Hebrew, digits,
                             a right-to-left override */
    "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7\xd8\x8c \xd9\x83\xd9\x8a\xd9\x81"
    " \xd8\xad\xd8\xa7\xd9\x84\xd9\x83\xd8\x9f \xe2\x80\x8f\xd7\xa9\xd7\x9c"
    "\xd7\x95\xd7\x9d 123\xe2\x80\xae";
static const char quotes[] =
    "She said \"don't\" \\ C:\\temp\\new 'x' `y` \\\" \\\\ \"\"";
static const char lines[] = "line 1\nline 2\r\nline 3\n\n\ttabbed\n";
static const char injection[] = "'); DROP TABLE messages; --";
static const char percents[] = "100% sure: %s %n %d";

static void test_messages(void)
{
    struct outcome o = { 0 };
    const struct {
        const char *p;
        size_t n;
        int32_t side;
        int64_t dt;
    } in[] = {
        { "Hello, doctor.", 14, CC_SIDE_PATIENT, 1000 },
        { emoji, sizeof emoji - 1, CC_SIDE_PROFESSIONAL, 2000 },
        { rtl, sizeof rtl - 1, CC_SIDE_PATIENT, 3000 },
        { quotes, sizeof quotes - 1, CC_SIDE_PROFESSIONAL, 4000 },
        /* same microsecond as the one before: order is by sequence */
        { lines, sizeof lines - 1, CC_SIDE_PATIENT, 4000 },
        { injection, sizeof injection - 1, CC_SIDE_PROFESSIONAL, 5000 },
        { big, BIG, CC_SIDE_PATIENT, 6000 },
        { "", 0, CC_SIDE_PROFESSIONAL, 7000 },
        { percents, sizeof percents - 1, CC_SIDE_PATIENT, 8000 },
    };
    const size_t n_in = sizeof in / sizeof in[0];
    int64_t prev_t = 0;
    int dup_ids = 0, bad_times = 0;

    for (size_t i = 0; i < BIG; i++)
        big[i] = i % 64 == 63 ? '\n' : (char)('a' + i % 26);

    for (size_t i = 0; i < n_in; i++) {
        is_int(append_a(&o, in[i].side, in[i].p, in[i].n, t0 + in[i].dt),
               CC_OK, "append %zu (%zu bytes)", i + 1, in[i].n);
        if (!o.message) {
            ok(0, "append %zu: result has the stored message", i + 1);
            outcome_free(&o);
            continue;
        }
        is_int(o.message->seq, (int64_t)i + 1,
               "append %zu: next per-chat sequence", i + 1);
        is_str(o.message->id, hist_a[i].id, "append %zu: id as given", i + 1);
        ok(same_bytes(o.message, in[i].p, in[i].n),
           "append %zu: stored content byte-exact", i + 1);
        outcome_free(&o);
    }

    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, 0, 100), CC_OK,
           "history of A");
    is_int(o.n_messages, n_in, "history: all messages");
    is_int(o.count, n_in, "history: count is the total");
    is_int(o.more, 0, "history: nothing more");
    for (size_t i = 0; i < o.n_messages && i < n_in; i++) {
        const struct mcopy *m = &o.messages[i];

        is_int(m->seq, (int64_t)i + 1, "history %zu: oldest first", i + 1);
        ok(same_bytes(m, in[i].p, in[i].n),
           "history %zu: content byte-exact (%zu bytes)", i + 1, in[i].n);
        is_int(m->is_read, 0, "history %zu: unread", i + 1);
        is_int(m->sender_type, in[i].side, "history %zu: sender side", i + 1);
        if (m->created_at_us < prev_t)
            bad_times++;
        prev_t = m->created_at_us;
        for (size_t j = 0; j < i; j++)
            dup_ids += strcmp(o.messages[j].id, m->id) == 0;
    }
    is_int(dup_ids, 0, "history: message ids distinct");
    is_int(bad_times, 0, "history: created_at never goes back");
    outcome_free(&o);

    /* The same id again: refused; its savepoint is rolled back, so the
     * next message takes the next sequence number with no gap. */
    is_int(append(&o, hist_a[0].id, CHAT_A, PAT1, CC_SIDE_PATIENT, "dup", 3,
                  t0 + 9000) == CC_OK, 0, "a duplicate message id refused");
    ok(o.has_error && o.error[0], "duplicate: result says why (%s)",
       o.error);
    outcome_free(&o);
    is_int(append_a(&o, CC_SIDE_PROFESSIONAL, "after the duplicate", 19,
                    t0 + 9000), CC_OK, "append after a refusal");
    is_int(o.message ? o.message->seq : -1, n_a,
           "append after a refusal: no gap in sequence");
    outcome_free(&o);

    is_int(append(&o, "short", CHAT_A, PAT1, CC_SIDE_PATIENT, "x", 1, t0),
           CC_E_INVAL, "append with a bad message id refused");
    is_int(append(&o, hist_a[0].id, CHAT_A, PAT1, CC_SIDE_NONE, "x", 1, t0),
           CC_E_INVAL, "append without a sender side refused");
    is_int(o.calls, 0, "refused append: no callback");
    outcome_free(&o);
}

/* Forward and backward paging over chat A. */
static void test_paging(void)
{
    struct outcome o = { 0 };
    int seen[64] = { 0 };
    int64_t after = 0;
    int pages = 0, overlaps = 0, gaps = 0;
    const uint32_t page = 3;

    for (;;) {
        if (message_list(&o, CHAT_A, CC_SIDE_PATIENT, after, 0, page) !=
            CC_OK || ++pages > 20)
            break;
        if (pages == 1) {
            is_int(o.n_messages, page, "page 1: page_size messages");
            is_int(o.more, 1, "page 1: more");
            is_int(o.count, n_a, "page 1: count is the total");
            is_int(o.n_messages ? o.messages[0].seq : 0, 1,
                   "page 1: starts at the oldest");
        }
        for (size_t i = 0; i < o.n_messages; i++) {
            int64_t s = o.messages[i].seq;

            if (s < 1 || s >= 64 || seen[s]++)
                overlaps++;
            if (s != after + 1 + (int64_t)i)
                gaps++;
        }
        if (!o.more || !o.n_messages) {
            is_int(o.n_messages, (n_a - 1) % page + 1,
                   "last page: the remainder");
            is_int(o.count, n_a, "last page: count is the total");
            outcome_free(&o);
            break;
        }
        after = o.messages[o.n_messages - 1].seq;
        outcome_free(&o);
    }
    is_int(pages, (n_a + page - 1) / page, "paging forward: pages");
    is_int(overlaps, 0, "paging forward: no overlap");
    is_int(gaps, 0, "paging forward: no gap");
    for (int s = 1; s <= n_a; s++)
        if (!seen[s])
            gaps++;
    is_int(gaps, 0, "paging forward: every message seen once");

    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, n_a + 1, page),
           CC_OK, "newest page (before_seq)");
    is_int(o.n_messages, page, "newest page: page_size messages");
    is_int(o.n_messages == page ? o.messages[0].seq : 0, n_a - page + 1,
           "newest page: ascending, from n-2");
    is_int(o.n_messages == page ? o.messages[page - 1].seq : 0, n_a,
           "newest page: ends at the newest");
    is_int(o.more, 1, "newest page: more before it");
    outcome_free(&o);
    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, 3, page), CC_OK,
           "page before seq 3");
    is_int(o.n_messages, 2, "before seq 3: two messages");
    is_int(o.more, 0, "before seq 3: nothing more");
    outcome_free(&o);
    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, n_a, 0, page), CC_OK,
           "page after the newest");
    is_int(o.n_messages, 0, "after the newest: empty");
    is_int(o.more, 0, "after the newest: nothing more");
    outcome_free(&o);
    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, 0, 0), CC_E_INVAL,
           "page size 0 refused");
    outcome_free(&o);
}

/* Read marks: each side marks the other's messages. */
static void test_mark_read(void)
{
    struct outcome o = { 0 };
    int64_t from_pat = 0, from_pro = 0;
    int wrong = 0;

    for (int i = 0; i < n_a; i++) {
        if (hist_a[i].side == CC_SIDE_PATIENT)
            from_pat++;
        else
            from_pro++;
    }
    chat_get(&o, CHAT_A, PAT1, NULL);
    is_int(o.chat ? o.chat->unread_count : -1, from_pro,
           "patient's unread: the professional's messages");
    outcome_free(&o);
    chat_get(&o, CHAT_A, NULL, PRO1);
    is_int(o.chat ? o.chat->unread_count : -1, from_pat,
           "professional's unread: the patient's messages");
    outcome_free(&o);
    chat_get(&o, CHAT_A, NULL, NULL);
    is_int(o.chat ? o.chat->unread_count : -1, 0,
           "no viewer: unread count 0");
    outcome_free(&o);
    chat_get(&o, CHAT_A, PAT2, NULL);
    is_int(o.chat ? o.chat->unread_count : -1, 0,
           "a viewer not in the chat: unread count 0");
    outcome_free(&o);

    is_int(mark_read(&o, CHAT_A, CC_SIDE_PATIENT), CC_OK,
           "patient marks read");
    is_int(o.count, from_pro, "mark_read: count of newly read");
    outcome_free(&o);
    chat_get(&o, CHAT_A, PAT1, NULL);
    is_int(o.chat ? o.chat->unread_count : -1, 0,
           "patient's unread drops to 0");
    outcome_free(&o);
    chat_get(&o, CHAT_A, NULL, PRO1);
    is_int(o.chat ? o.chat->unread_count : -1, from_pat,
           "professional's unread unchanged");
    outcome_free(&o);
    message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, 0, 100);
    for (size_t i = 0; i < o.n_messages; i++)
        wrong += o.messages[i].is_read !=
                 (o.messages[i].sender_type == CC_SIDE_PROFESSIONAL);
    is_int(o.n_messages, n_a, "history after mark_read: complete");
    is_int(wrong, 0, "only the professional's messages are read");
    outcome_free(&o);
    is_int(mark_read(&o, CHAT_A, CC_SIDE_PATIENT), CC_OK,
           "marking read again");
    is_int(o.count, 0, "marking read again changes nothing");
    outcome_free(&o);

    is_int(mark_read(&o, CHAT_A, CC_SIDE_PROFESSIONAL), CC_OK,
           "professional marks read");
    is_int(o.count, from_pat, "professional: count of newly read");
    outcome_free(&o);
    chat_get(&o, CHAT_A, NULL, PRO1);
    is_int(o.chat ? o.chat->unread_count : -1, 0,
           "professional's unread drops to 0");
    outcome_free(&o);

    append_a(&o, CC_SIDE_PROFESSIONAL, "one more", 8, t0 + 10000);
    outcome_free(&o);
    chat_get(&o, CHAT_A, PAT1, NULL);
    is_int(o.chat ? o.chat->unread_count : -1, 1,
           "a new message is unread for the patient");
    outcome_free(&o);
    chat_get(&o, CHAT_A, NULL, PRO1);
    is_int(o.chat ? o.chat->unread_count : -1, 0,
           "but not for its sender");
    outcome_free(&o);
}

/* ----------------------------------------------------------- chat list */

static void test_chat_list(void)
{
    struct outcome o = { 0 };
    static const char last_a[] = "latest in A";

    /* Activity: B opened at +0.5 s, C opened at +0.6 s with a message at
     * +0.7 s, A's last message at +0.8 s: the list is A, C, B. */
    chat_open(&o, CHAT_B, PAT2, PRO1, t0 + 500000);
    is_int(o.created, 1, "chat B created");
    outcome_free(&o);
    chat_open(&o, CHAT_C, PAT3, PRO1, t0 + 600000);
    is_int(o.created, 1, "chat C created");
    outcome_free(&o);
    {
        char id[37];

        make_id(id, 0xc, 1);
        is_int(append(&o, id, CHAT_C, PRO1, CC_SIDE_PROFESSIONAL,
                      "hello C", 7, t0 + 700000), CC_OK, "message in C");
        outcome_free(&o);
    }
    is_int(append_a(&o, CC_SIDE_PATIENT, last_a, sizeof last_a - 1,
                    t0 + 800000), CC_OK, "latest message in A");
    outcome_free(&o);

    is_int(chat_list(&o, NULL, PRO1, 0, NULL, 10), CC_OK,
           "professional's chat list");
    is_int(o.n_chats, 3, "chat list: three chats");
    is_int(o.count, 3, "chat list: count 3");
    is_int(o.more, 0, "chat list: nothing more");
    if (o.n_chats == 3) {
        is_str(o.chats[0].id, CHAT_A, "most recent first: A");
        is_str(o.chats[1].id, CHAT_C, "then C");
        is_str(o.chats[2].id, CHAT_B, "then B");
        is_int(o.chats[0].updated_at_us, t0 + 800000,
               "A: updated at its last message");
        ok(o.chats[0].has_last &&
           same_bytes(&o.chats[0].last, last_a, sizeof last_a - 1),
           "A: last_message is the latest");
        is_int(o.chats[0].has_last ? o.chats[0].last.seq : 0, n_a,
               "A: last_message has the last sequence");
        is_int(o.chats[0].unread_count, 1,
               "A: professional's unread in the list");
        ok(o.chats[1].has_last &&
           same_bytes(&o.chats[1].last, "hello C", 7),
           "C: last_message");
        is_int(o.chats[1].unread_count, 0, "C: own message is not unread");
        is_int(o.chats[2].has_last, 0, "B: no last message");
        is_int(o.chats[2].updated_at_us, t0 + 500000,
               "B: updated at creation");
    }
    outcome_free(&o);

    /* Paging with the (updated_at, id) cursor. */
    is_int(chat_list(&o, NULL, PRO1, 0, NULL, 2), CC_OK, "chat list page 1");
    is_int(o.n_chats, 2, "page 1: two chats");
    is_int(o.more, 1, "page 1: more");
    is_int(o.count, 3, "page 1: count is the total");
    if (o.n_chats == 2) {
        char id[37];
        int64_t upd = o.chats[1].updated_at_us;

        snprintf(id, sizeof id, "%s", o.chats[1].id);
        outcome_free(&o);
        is_int(chat_list(&o, NULL, PRO1, upd, id, 2), CC_OK,
               "chat list page 2");
        is_int(o.n_chats, 1, "page 2: the remaining chat");
        is_str(o.n_chats ? o.chats[0].id : "", CHAT_B, "page 2: B");
        is_int(o.more, 0, "page 2: nothing more");
    }
    outcome_free(&o);

    is_int(chat_list(&o, PAT2, NULL, 0, NULL, 10), CC_OK,
           "patient's chat list");
    is_int(o.n_chats, 1, "patient 2: one chat");
    is_str(o.n_chats ? o.chats[0].id : "", CHAT_B, "patient 2: B");
    outcome_free(&o);
    is_int(chat_list(&o, NULL, PRO2, 0, NULL, 10), CC_OK,
           "chat list of a professional with no chats");
    is_int(o.n_chats, 0, "no chats");
    is_int(o.count, 0, "no chats: count 0");
    outcome_free(&o);
}

/* ------------------------------------------- many requests in flight */

struct pending {
    int queued, calls, status, order, duplicate;
    int64_t seq;
};

static struct pending bulk[BULK];
static int n_finished, n_expected;
static volatile int all_finished;

static void pending_cb(void *arg, int status,
                       const struct cc_store_result *res)
{
    struct pending *p = arg;

    if (in_api)
        reentrant++;
    p->calls++;
    p->status = status;
    p->order = n_finished++;
    p->seq = res && res->message ? res->message->seq : -1;
    p->duplicate = res ? res->duplicate : 0;
    if (n_finished == n_expected)
        all_finished = 1;
}

/* From now on, expect n answers through pending_cb into bulk[]. */
static void bulk_begin(int n)
{
    memset(bulk, 0, sizeof bulk);
    n_finished = 0;
    n_expected = n;
    all_finished = 0;
}

/* Load the plugin on a database of its own, <dir>/<file>, with the extra
 * keys, and open chat B between PAT2 and PRO1 in it.  Returns 0, or -1
 * (unloaded) when it does not load. */
static int own_db(const char *file, const char *keys, const char *what)
{
    char conf[512];
    struct outcome o = { 0 };

    snprintf(conf, sizeof conf, "[storage]\nplugin = sqlite\npath = %s/%s\n"
             "%s", dir, file, keys);
    if (!ok(load_conf(conf) == 0, "%s: loads", what)) {
        unload();
        return -1;
    }
    profile_put(&o, CC_SIDE_PATIENT, PAT2, NULL);
    profile_put(&o, CC_SIDE_PROFESSIONAL, PRO1, NULL);
    is_int(chat_open(&o, CHAT_B, PAT2, PRO1, t0), CC_OK, "%s: chat opened",
           what);
    outcome_free(&o);
    return 0;
}

/* Issue n appends of "<tag> <i>" by patient sender to chat without
 * waiting; returns how many were queued. */
static int issue(const char *chat, const char *sender, unsigned group,
                 int n, int64_t t, const char *tag)
{
    int queued = 0;

    bulk_begin(n);
    for (int i = 0; i < n; i++) {
        char id[37], text[64];
        struct cc_message m = {
            .struct_size = sizeof m, .id = id, .chat_id = chat,
            .sender_id = sender, .content = text, .created_at_us = t + i,
            .sender_type = CC_SIDE_PATIENT,
        };

        make_id(id, group, (unsigned)i + 1);
        m.content_len = (size_t)snprintf(text, sizeof text, "%s %d", tag, i);
        in_api = 1;
        bulk[i].queued = api->message_append(inst, &m, pending_cb, &bulk[i]);
        in_api = 0;
        queued += bulk[i].queued == CC_OK;
    }
    return queued;
}

/* After issue(): every call answered once, with success, in issue order,
 * with consecutive sequences from first_seq. */
static void check_issued(int n, int64_t first_seq, const char *what)
{
    int failed = 0, unordered = 0, badseq = 0, calls = 0;

    for (int i = 0; i < n; i++) {
        calls += bulk[i].calls == 1;
        failed += bulk[i].status != CC_OK;
        unordered += bulk[i].order != i;
        badseq += bulk[i].seq != first_seq + i;
    }
    is_int(calls, n, "%s: every append answered once", what);
    is_int(failed, 0, "%s: all succeeded", what);
    is_int(unordered, 0, "%s: answered in issue order", what);
    is_int(badseq, 0, "%s: consecutive sequences in issue order", what);
}

/* The history of chat from first_seq holds "<tag> <i>" for i < n. */
static void check_tagged(const char *chat, int64_t first_seq, int n,
                         const char *tag, const char *what)
{
    struct outcome o = { 0 };
    int bad = 0;

    is_int(message_list(&o, chat, CC_SIDE_PROFESSIONAL, first_seq - 1, 0,
                        (uint32_t)n + 1), CC_OK, "%s: history listed", what);
    is_int(o.n_messages, n, "%s: all messages in the history", what);
    for (size_t i = 0; i < o.n_messages && i < (size_t)n; i++) {
        char text[64];
        int len = snprintf(text, sizeof text, "%s %zu", tag, i);

        if (o.messages[i].seq != first_seq + (int64_t)i ||
            !same_bytes(&o.messages[i], text, (size_t)len))
            bad++;
    }
    is_int(bad, 0, "%s: history in issue order, contents intact", what);
    outcome_free(&o);
}

static void test_bulk(void)
{
    struct outcome o = { 0 };
    uint64_t start = cc_host_api_table()->now_mono_ns();
    char last[64];
    int last_len = snprintf(last, sizeof last, "bulk %d", BULK - 1);

    is_int(issue(CHAT_B, PAT2, 0xb, BULK, t0 + 1000000, "bulk"), BULK,
           "%d appends queued without waiting", BULK);
    ok(pt_run_until(&env, &all_finished, 20000) == 0,
       "%d appends all answered", BULK);
    check_issued(BULK, 1, "bulk");
    printf("# %d appends in %.0f ms\n", BULK,
           (double)(cc_host_api_table()->now_mono_ns() - start) / 1e6);
    check_tagged(CHAT_B, 1, BULK, "bulk", "bulk");

    is_int(chat_list(&o, NULL, PRO1, 0, NULL, 1), CC_OK,
           "chat list after the bulk");
    is_str(o.n_chats ? o.chats[0].id : "", CHAT_B,
           "chat list follows activity: B first");
    ok(o.n_chats && o.chats[0].has_last &&
       same_bytes(&o.chats[0].last, last, (size_t)last_len),
       "B: last message is the last appended");
    outcome_free(&o);
}

/* A tiny queue: calls beyond it are refused with CC_E_BUSY and never
 * answered; the queued ones still commit in order. */
static void test_small_queue(void)
{
    int n = 200, queued, busy = 0, other = 0;

    /* Every key set. */
    if (own_db("small.db", "synchronous = full\nbusy_timeout = 1000\n"
               "batch_max = 3\nqueue_max = 2\n", "small queue") < 0)
        return;
    queued = issue(CHAT_B, PAT2, 0x5, n, t0, "small");
    for (int i = 0; i < n; i++) {
        busy += bulk[i].queued == CC_E_BUSY;
        other += bulk[i].queued != CC_OK && bulk[i].queued != CC_E_BUSY;
    }
    printf("# queue_max 2: %d of %d queued, %d busy\n", queued, n, busy);
    is_int(other, 0, "small queue: each call queued or CC_E_BUSY");
    n_expected = queued;
    if (queued)
        pt_run_until(&env, &all_finished, 10000);
    {
        int calls_ok = 0, calls_busy = 0, unordered = 0, failed = 0;
        int64_t next = 1;

        for (int i = 0; i < n; i++) {
            if (bulk[i].queued != CC_OK) {
                calls_busy += bulk[i].calls;
                continue;
            }
            calls_ok += bulk[i].calls;
            failed += bulk[i].status != CC_OK;
            unordered += bulk[i].seq != next++;
        }
        is_int(calls_ok, queued, "small queue: each queued call answered");
        is_int(calls_busy, 0, "small queue: refused calls never answered");
        is_int(failed, 0, "small queue: queued calls succeeded");
        is_int(unordered, 0, "small queue: sequences in order, no gap");
    }
    unload();
}

/* A request that fails halfway inside a group (here: a duplicate message
 * id, refused by the insert) loses only itself: the group is run again
 * with a savepoint per request, and the others commit in order with
 * consecutive sequences.  All are queued at once so they share groups. */
static void test_group_failure(void)
{
    char id[37], text[64];
    struct outcome o = { 0 };
    int n = 100, dup = 50, failed = 0, badseq = 0, calls = 0;
    int64_t next = 1;

    if (own_db("group.db", "", "group") < 0)
        return;
    bulk_begin(n);
    for (int i = 0; i < n; i++) {
        struct cc_message m = {
            .struct_size = sizeof m, .id = id, .chat_id = CHAT_B,
            .sender_id = PAT2, .content = text, .created_at_us = t0 + i,
            .sender_type = CC_SIDE_PATIENT,
        };

        /* Request dup reuses the id of request 10. */
        make_id(id, 0x6, (unsigned)(i == dup ? 10 : i) + 1);
        m.content_len = (size_t)snprintf(text, sizeof text, "group %d", i);
        bulk[i].queued = api->message_append(inst, &m, pending_cb, &bulk[i]);
    }
    ok(pt_run_until(&env, &all_finished, 10000) == 0, "group: all answered");
    for (int i = 0; i < n; i++) {
        calls += bulk[i].calls;
        if (i == dup)
            continue;
        failed += bulk[i].status != CC_OK;
        badseq += bulk[i].seq != next++;
    }
    is_int(calls, n, "group: each append answered once");
    ok(bulk[dup].status != CC_OK, "group: the duplicate id is refused");
    is_int(failed, 0, "group: the other %d appends are stored", n - 1);
    is_int(badseq, 0, "group: their sequences are consecutive, in order");
    is_int(message_list(&o, CHAT_B, CC_SIDE_PROFESSIONAL, 0, 0, 200), CC_OK,
           "group: history listed");
    is_int((int)o.n_messages, n - 1, "group: history holds exactly them");
    outcome_free(&o);
    unload();
}

/* Appends to two chats, queued at once so they share groups, with a
 * chat_open and a mark_read of one of them among them and a duplicate id
 * that sends its group down the savepoint path: each chat's sequences
 * stay consecutive, and the ops in between see every append before them
 * (a group writes a chat's row once, before any other op and COMMIT). */
/* client_id: a resend is stored once, at any later time and in the same
 * group, answered with the original; another sender or chat may use the
 * same id; history carries it.  after_id: the messages after one named
 * by id, or "not found" for an id the chat does not have. */
static void test_client_ids(void)
{
    enum { N = 30 };
    struct outcome o = { 0 };
    char id[37], cid[37], first_id[37] = "";
    int64_t first_seq = 0, first_t = 0;
    int dups = 0, same = 0;

    if (own_db("ids.db", "batch_max = 8\n", "client ids") < 0)
        return;
    make_id(cid, 0xc, 1);
    make_id(id, 0xd, 1);
    is_int(append_cid(&o, id, CHAT_B, PAT2, CC_SIDE_PATIENT, "hello", 5,
                      t0 + 1, cid), CC_OK, "client ids: stored");
    if (o.message) {
        snprintf(first_id, sizeof first_id, "%s", o.message->id);
        first_seq = o.message->seq;
        first_t = o.message->created_at_us;
        is_str(o.message->client_id, cid, "client ids: result carries it");
    }
    is_int(o.duplicate, 0, "client ids: first is no duplicate");
    /* The retry: a new message id and time, the same client id. */
    make_id(id, 0xd, 2);
    is_int(append_cid(&o, id, CHAT_B, PAT2, CC_SIDE_PATIENT, "hello", 5,
                      t0 + 99, cid), CC_OK, "client ids: resend answered");
    is_int(o.duplicate, 1, "client ids: resend is a duplicate");
    ok(o.message && strcmp(o.message->id, first_id) == 0 &&
       o.message->seq == first_seq && o.message->created_at_us == first_t,
       "client ids: resend gets the original id, seq and time");
    /* Many resends queued at once land in shared groups. */
    bulk_begin(N);
    for (int i = 0; i < N; i++) {
        char mid[37], c[37];
        struct cc_message m = {
            .struct_size = sizeof m, .id = mid, .chat_id = CHAT_B,
            .sender_id = PAT2, .content = "again", .content_len = 5,
            .created_at_us = t0 + 200 + i, .sender_type = CC_SIDE_PATIENT,
            .client_id = c,
        };
        make_id(mid, 0xe, (unsigned)i + 1);
        make_id(c, 0xc, (unsigned)(i % 3) + 2); /* three ids, ten each */
        in_api = 1;
        bulk[i].queued = api->message_append(inst, &m, pending_cb, &bulk[i]);
        in_api = 0;
    }
    if (pt_run_until(&env, &all_finished, 10000) < 0) {
        printf("Bail out! client ids: no answers within 10 s\n");
        exit(1);
    }
    for (int i = 0; i < N; i++) {
        dups += bulk[i].duplicate;
        same += bulk[i].status == CC_OK;
    }
    is_int(same, N, "client ids: every resend answered");
    is_int(dups, N - 3, "client ids: three stored, the rest duplicates");
    /* Same client id, other sender: a message of its own. */
    make_id(id, 0xd, 3);
    is_int(append_cid(&o, id, CHAT_B, PRO1, CC_SIDE_PROFESSIONAL, "mine",
                      4, t0 + 300, cid), CC_OK, "client ids: other sender");
    is_int(o.duplicate, 0, "client ids: not the patient's message");
    is_int(message_list(&o, CHAT_B, CC_SIDE_PATIENT, 0, 0, 100), CC_OK,
           "client ids: history");
    is_int((int)o.n_messages, 5, "client ids: five messages stored");
    if (o.n_messages == 5) {
        is_str(o.messages[0].client_id, cid, "client ids: history has it");
        is_str(o.messages[4].client_id, cid,
               "client ids: the professional's too");
    }
    /* after_id */
    is_int(list_after_id(&o, CHAT_B, first_id, 100), CC_OK,
           "after id: listed");
    is_int((int)o.n_messages, 4, "after id: the four after the first");
    ok(o.n_messages == 4 && o.messages[0].seq == first_seq + 1,
       "after id: starts right after it");
    is_int(list_after_id(&o, CHAT_B, first_id, 2), CC_OK,
           "after id: a page");
    ok(o.n_messages == 2 && o.more == 1, "after id: more beyond the page");
    make_id(id, 0xf, 9);
    is_int(list_after_id(&o, CHAT_B, id, 100), CC_E_NOTFOUND,
           "after id: unknown id is not found");
    is_int(list_after_id(&o, CHAT_A, first_id, 100), CC_E_NOTFOUND,
           "after id: an id of another chat is not found");
    outcome_free(&o);
    unload();
}

static void test_group_chats(void)
{
    enum { N = 120, MID = 60, DUP = 110 };
    struct outcome open_o = { 0 }, read_o = { 0 }, o = { 0 };
    int64_t next[2] = { 1, 1 };
    int failed = 0, badseq = 0, calls = 0;
    const char *chat[2] = { CHAT_B, CHAT_C }, *who[2] = { PAT2, PAT3 };

    if (own_db("chats.db", "batch_max = 50\n", "two chats") < 0)
        return;
    profile_put(&o, CC_SIDE_PATIENT, PAT3, NULL);
    is_int(chat_open(&o, CHAT_C, PAT3, PRO1, t0), CC_OK,
           "two chats: second chat opened");
    bulk_begin(N);
    for (int i = 0; i < N; i++) {
        char id[37], text[64];
        struct cc_message m = {
            .struct_size = sizeof m, .id = id, .chat_id = chat[i % 2],
            .sender_id = who[i % 2], .content = text,
            .created_at_us = t0 + 1000 + i, .sender_type = CC_SIDE_PATIENT,
        };

        make_id(id, 0x7, (unsigned)(i == DUP ? 2 : i) + 1);
        m.content_len = (size_t)snprintf(text, sizeof text, "mixed %d", i);
        in_api = 1;
        bulk[i].queued = api->message_append(inst, &m, pending_cb, &bulk[i]);
        if (i == MID) {
            begin(&open_o);
            open_o.queued = api->chat_open(inst, NOBODY, PAT2, PRO1, t0,
                                           store_cb, &open_o);
            begin(&read_o);
            read_o.queued = api->mark_read(inst, CHAT_B,
                                           CC_SIDE_PROFESSIONAL, store_cb,
                                           &read_o);
        }
        in_api = 0;
    }
    ok(pt_run_until(&env, &all_finished, 10000) == 0 &&
       pt_run_until(&env, &read_o.done, 10000) == 0,
       "two chats: all answered");
    for (int i = 0; i < N; i++) {
        calls += bulk[i].calls;
        if (i == DUP)
            continue;
        failed += bulk[i].status != CC_OK;
        badseq += bulk[i].seq != next[i % 2]++;
    }
    is_int(calls, N, "two chats: each append answered once");
    ok(bulk[DUP].status != CC_OK, "two chats: the duplicate id is refused");
    is_int(failed, 0, "two chats: the other appends are stored");
    is_int(badseq, 0, "two chats: each chat's sequences consecutive");

    is_int(open_o.status, CC_OK, "two chats: chat_open among the appends");
    ok(open_o.chat && !open_o.created && strcmp(open_o.chat->id, CHAT_B) == 0,
       "two chats: chat_open found the chat");
    ok(open_o.chat && open_o.chat->has_last &&
       same_bytes(&open_o.chat->last, "mixed 60", 8) &&
       open_o.chat->updated_at_us == t0 + 1000 + MID,
       "two chats: chat_open sees the appends queued before it");
    is_int(read_o.status, CC_OK, "two chats: mark_read among the appends");
    is_int((int)read_o.count, MID / 2 + 1,
           "two chats: mark_read marked the appends before it");

    is_int(chat_get(&o, CHAT_B, NULL, PRO1), CC_OK, "two chats: B read");
    ok(o.chat && o.chat->has_last && same_bytes(&o.chat->last, "mixed 118", 9)
       && o.chat->last.seq == next[0] - 1 &&
       o.chat->updated_at_us == t0 + 1000 + 118,
       "two chats: B's last message and time are its last append's");
    is_int(o.chat ? (int)o.chat->unread_count : -1, N / 2 - MID / 2 - 2,
           "two chats: B unread = appends after mark_read, less the refused");
    is_int(chat_list(&o, NULL, PRO1, 0, NULL, 2), CC_OK,
           "two chats: listed");
    ok(o.n_chats == 2 && strcmp(o.chats[0].id, CHAT_C) == 0 &&
       o.chats[0].updated_at_us == t0 + 1000 + 119 &&
       same_bytes(&o.chats[0].last, "mixed 119", 9),
       "two chats: C first, by its last append");
    outcome_free(&o);
    outcome_free(&open_o);
    outcome_free(&read_o);
    unload();
}

/* Under a steady load the WAL must not grow without end: checkpoints
 * copy it into the database while the plugin runs, and the log restarts
 * from its beginning.  Writes 8 rounds of BULK appends of 4000 bytes
 * (64 MB of content) into a database of its own. */
static off_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_wal_bounded(void)
{
    char path[128], wal[140], id[37];
    static char text[4000];
    off_t wal_max = 0;
    int rounds = 8, failed = 0;

    snprintf(path, sizeof path, "%s/wal.db", dir);
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (own_db("wal.db", "", "wal") < 0)
        return;
    memset(text, 'w', sizeof text);
    for (int round = 0; round < rounds; round++) {
        bulk_begin(BULK);
        for (int i = 0; i < BULK; i++) {
            struct cc_message m = {
                .struct_size = sizeof m, .id = id, .chat_id = CHAT_B,
                .sender_id = PAT2, .content = text,
                .content_len = sizeof text,
                .created_at_us = t0 + round * BULK + i,
                .sender_type = CC_SIDE_PATIENT,
            };

            make_id(id, 0x700 + (unsigned)round, (unsigned)i + 1);
            bulk[i].queued = api->message_append(inst, &m, pending_cb,
                                                 &bulk[i]);
            failed += bulk[i].queued != CC_OK;
        }
        if (pt_run_until(&env, &all_finished, 30000) < 0) {
            failed++;
            break;
        }
        for (int i = 0; i < BULK; i++)
            failed += bulk[i].status != CC_OK;
        if (file_size(wal) > wal_max)
            wal_max = file_size(wal);
    }
    is_int(failed, 0, "wal: %d appends of %zu bytes stored", rounds * BULK,
           sizeof text);
    printf("# wal: largest log %lld bytes, database %lld bytes\n",
           (long long)wal_max, (long long)file_size(path));
    ok(wal_max < (off_t)40 << 20, "wal: the log stays under 40 MB while "
       "64 MB are written (largest %lld)", (long long)wal_max);
    ok(file_size(path) > (off_t)48 << 20, "wal: checkpoints fill the "
       "database while it runs (%lld bytes)", (long long)file_size(path));
    unload();
}

/* ------------------------------------------------- the page cache */

#define CACHE_CHATS 6000

/* Read system calls the plugin's writer thread has made so far (its
 * pages read back from the files), or -1. */
static long long writer_reads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *de;
    long long n = -1;

    while (d && n < 0 && (de = readdir(d))) {
        char path[300], comm[32] = "", line[128];
        FILE *f;

        snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = '\0';
        fclose(f);
        if (strcmp(comm, "sqlite-writer\n"))
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/io", de->d_name);
        if (!(f = fopen(path, "r")))
            break;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "syscr: %lld", &n) == 1)
                break;
        fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

/* One message of 700 bytes to each of the CACHE_CHATS chats; the
 * failures. */
static int cache_round(int round)
{
    static char text[700];
    int failed = 0;

    memset(text, 'p', sizeof text);
    for (int first = 0; first < CACHE_CHATS; first += BULK) {
        bulk_begin(BULK);
        for (int i = 0; i < BULK; i++) {
            char id[37], chat[37];
            struct cc_message m = {
                .struct_size = sizeof m, .id = id, .chat_id = chat,
                .sender_id = PAT2, .content = text,
                .content_len = sizeof text,
                .created_at_us = t0 + round * CACHE_CHATS + first + i,
                .sender_type = CC_SIDE_PATIENT,
            };

            make_id(chat, 0xd0000000u, (unsigned)(first + i));
            make_id(id, 0xca000000u + (unsigned)round,
                    (unsigned)(first + i));
            bulk[i].queued = api->message_append(inst, &m, pending_cb,
                                                 &bulk[i]);
            failed += bulk[i].queued != CC_OK;
        }
        if (pt_run_until(&env, &all_finished, 30000) < 0)
            return failed + BULK;
        for (int i = 0; i < BULK; i++)
            failed += bulk[i].status != CC_OK;
    }
    return failed;
}

/* Appends to CACHE_CHATS chats, a round after a first: what a round
 * touches (the newest leaf of each chat, about 4 MB, twice the default
 * 2 MB cache) is in the writer's cache with cache_size = 32m, and read
 * back from the file with cache_size = 1m.  Now and then something else
 * makes SQLite drop the writer's cache between two groups (a few hundred
 * reads in a round, more on a loaded machine), so three rounds are
 * counted and the fewest reads returned, or -1.  The database is
 * <dir>/<file>. */
#define CACHE_ROUNDS 3
static long long cache_reads(const char *file, const char *keys,
                             const char *what)
{
    char path[128], sql[512];
    long long fewest = -1;
    int failed;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (own_db(file, keys, what) < 0)
        return -1;
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 "
             "FROM n WHERE i < %d) INSERT INTO chats (id, patient_id, "
             "professional_id, created_at, updated_at) SELECT "
             "printf('d0000000-0000-4000-8000-%%012x', i), '%s', "
             "printf('e0000000-0000-4000-8000-%%012x', i), %lld, %lld "
             "FROM n", CACHE_CHATS - 1, PAT2, (long long)t0,
             (long long)t0);
    if (lite_run(path, 0, sql, NULL, 0) < 0) {
        unload();
        return -1;
    }
    failed = cache_round(0);
    for (int round = 1; round <= CACHE_ROUNDS; round++) {
        long long before = writer_reads(), after, reads;

        failed += cache_round(round);
        after = writer_reads();
        reads = before < 0 || after < 0 ? -1 : after - before;
        printf("# %s: the writer read %lld times in round %d\n", what,
               reads, round);
        if (reads >= 0 && (fewest < 0 || reads < fewest))
            fewest = reads;
    }
    is_int(failed, 0, "%s: %d appends stored", what,
           (CACHE_ROUNDS + 1) * CACHE_CHATS);
    unload();
    return fewest;
}

static void test_page_cache(void)
{
    long long large = cache_reads("cache32.db", "cache_size = 32m\n",
                                  "page cache, 32m");
    long long small = cache_reads("cache1.db", "cache_size = 1m\n",
                                  "page cache, 1m");

    ok(large >= 0 && large < CACHE_CHATS / 6, "page cache: with "
       "cache_size = 32m a round to %d chats is served from the writer's "
       "cache (%lld reads in the best of %d)", CACHE_CHATS, large,
       CACHE_ROUNDS);
    ok(small > CACHE_CHATS / 4, "page cache: with cache_size = 1m the "
       "writer reads pages back (%lld reads in the best of %d)", small,
       CACHE_ROUNDS);
}

/* ------------------------------------------------ restart, on disk */

/* Appends still queued when the plugin stops are committed and answered
 * before stop completes. */
static void test_flush_on_stop(void)
{
    is_int(issue(CHAT_C, PAT3, 0xf, FLUSH, t0 + 3000000, "flush"), FLUSH,
           "%d appends queued just before stop", FLUSH);
    unload();
    ok(all_finished, "stop answered every queued append");
    check_issued(FLUSH, 2, "stop");
}

/* 2 when both chat-list indexes are by side and id: schema 5 took
 * updated_at out of them (every append moved the chat's entries). */
#define CHAT_LIST_INDEXES                                                \
    "SELECT count(*) FROM sqlite_master WHERE name IN "                  \
    "('chats_by_patient', 'chats_by_professional') AND "                 \
    "sql NOT LIKE '%updated_at%' AND sql LIKE '%_id, id)'"

/* The file, read directly after the plugin closed it. */
static void test_on_disk(const char *when, int64_t messages)
{
    char want[32];

    is_str(lite_value(db_path, "PRAGMA journal_mode"), "wal",
           "%s: journal_mode is WAL", when);
    is_str(lite_value(db_path, "PRAGMA user_version"), "6",
           "%s: schema version 5 (user_version)", when);
    is_str(lite_value(db_path, CHAT_LIST_INDEXES), "2",
           "%s: the chat-list indexes by side and id (no updated_at)",
           when);
    is_str(lite_value(db_path, "SELECT count(*) FROM sqlite_master WHERE "
                      "type = 'table' AND name IN "
                      "('profiles', 'chats', 'messages')"), "3",
           "%s: the three tables", when);
    snprintf(want, sizeof want, "%lld", (long long)messages);
    is_str(lite_value(db_path, "SELECT count(*) FROM messages"), want,
           "%s: %lld message rows, no duplicates", when,
           (long long)messages);
    is_str(lite_value(db_path, "SELECT count(*) FROM chats"), "3",
           "%s: three chat rows", when);
    is_str(lite_value(db_path, "PRAGMA integrity_check"), "ok",
           "%s: integrity check", when);
}

static void test_reopen(void)
{
    struct outcome o = { 0 };
    const char *log;
    int rc;

    capture_begin();
    rc = load(db_path);
    log = capture_end();
    if (!ok(rc == 0, "existing database reopens")) {
        unload();
        return;
    }
    ok(strstr(log, "created schema") == NULL,
       "reopen: the schema is not created again");
    is_int(profile_get(&o, CC_SIDE_PATIENT, PAT1), CC_OK,
           "reopen: profiles kept");
    is_int(chat_open(&o, CHAT_X, PAT1, PRO1, t0 + 5000000), CC_OK,
           "reopen: chat open");
    is_int(o.created, 0, "reopen: the chat is not created again");
    is_str(o.chat ? o.chat->id : "", CHAT_A, "reopen: same chat id");
    outcome_free(&o);
    check_history_a("reopen");
    check_tagged(CHAT_B, 1, BULK, "bulk", "reopen, B");
    check_tagged(CHAT_C, 2, FLUSH, "flush", "reopen, C (flushed on stop)");
    is_int(message_list(&o, CHAT_A, CC_SIDE_PATIENT, 0, 0, 100), CC_OK,
           "reopen: read marks");
    is_int(o.n_messages > 1 ? o.messages[1].is_read : -1, 1,
           "reopen: read marks kept");
    outcome_free(&o);
    unload();
    outcome_free(&o);
}

/* A database from a newer carechat is refused, and left as it was. */
/* A database of schema version 1 (made by hand, as the plugin of that
 * version made it) is migrated to 2: the unread counts and what each side
 * has read move into the chat row, the partial index goes, and what the
 * API says is what version 1 said; then appends and mark_read keep the
 * counts. */
/* The profiles table and the head of the chats one, as schema 1 made
 * them. */
#define OLD_TABLES                                                       \
    "CREATE TABLE profiles (side INTEGER NOT NULL, id TEXT NOT NULL,"     \
    " user_id TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (side, id))" \
    " WITHOUT ROWID;"                                                    \
    "CREATE TABLE chats (id TEXT PRIMARY KEY, patient_id TEXT NOT NULL,"  \
    " professional_id TEXT NOT NULL, created_at INTEGER NOT NULL,"        \
    " updated_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,"
static const char v1_db[] =
    OLD_TABLES
    " UNIQUE (patient_id, professional_id));"
    "CREATE INDEX chats_by_patient ON chats (patient_id, updated_at, id);"
    "CREATE INDEX chats_by_professional"
    " ON chats (professional_id, updated_at, id);"
    "CREATE TABLE messages (chat_id TEXT NOT NULL REFERENCES chats (id),"
    " seq INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,"
    " sender_type INTEGER NOT NULL, sender_id TEXT NOT NULL,"
    " content TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " is_read INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (chat_id, seq))"
    " WITHOUT ROWID;"
    "CREATE INDEX messages_unread ON messages (chat_id, sender_type)"
    " WHERE is_read = 0;"
    "INSERT INTO profiles VALUES (1, '" PAT1 "', NULL, 1), (2, '" PRO1 "',"
    " NULL, 1);"
    "INSERT INTO chats VALUES ('" CHAT_A "', '" PAT1 "', '" PRO1 "', 1, 7, 6);"
    /* patient 1, 2 read; professional 3 read, 4 not; patient 5, 6 not */
    "INSERT INTO messages VALUES"
    " ('" CHAT_A "', 1, 'a0000000-0000-4000-8000-000000000001', 1, '" PAT1
    "', 'p1', 1, 1),"
    " ('" CHAT_A "', 2, 'a0000000-0000-4000-8000-000000000002', 1, '" PAT1
    "', 'p2', 2, 1),"
    " ('" CHAT_A "', 3, 'a0000000-0000-4000-8000-000000000003', 2, '" PRO1
    "', 'r3', 3, 1),"
    " ('" CHAT_A "', 4, 'a0000000-0000-4000-8000-000000000004', 2, '" PRO1
    "', 'r4', 4, 0),"
    " ('" CHAT_A "', 5, 'a0000000-0000-4000-8000-000000000005', 1, '" PAT1
    "', 'p5', 5, 0),"
    " ('" CHAT_A "', 6, 'a0000000-0000-4000-8000-000000000006', 1, '" PAT1
    "', 'p6', 6, 0);"
    "PRAGMA user_version = 1;";

/* Make <dir>/v<from>.db with sql (as the plugin of schema `from` left
 * it), load it, and check it was migrated to 6 (the log, user_version).
 * Its path into path; 0, or -1 (nothing loaded). */
static int load_old(int from, const char *sql, char path[128])
{
    char ignored[8], want[64];
    const char *log;
    int rc;

    snprintf(path, 128, "%s/v%d.db", dir, from);
    if (!ok(lite_run(path, 1, sql, ignored, sizeof ignored) == 0,
            "v%d: database made by hand", from))
        return -1;
    capture_begin();
    rc = load(path);
    log = capture_end();
    if (!ok(rc == 0, "v%d: loads", from)) {
        unload();
        return -1;
    }
    snprintf(want, sizeof want, "migrated schema version %d to 6", from);
    ok(strstr(log, want) != NULL, "v%d: the log says it was migrated", from);
    is_str(lite_value(path, "PRAGMA user_version"), "6",
           "v%d: now version 6", from);
    return 0;
}

static void test_migrate_v1(void)
{
    char path[128];
    struct outcome o = { 0 };

    if (load_old(1, v1_db, path) < 0)
        return;
    is_str(lite_value(path, CHAT_LIST_INDEXES), "2",
           "v1: the chat-list indexes no longer hold updated_at");
    is_str(lite_value(path, "SELECT count(*) FROM sqlite_master WHERE name "
                      "= 'messages_by_time'"), "1",
           "v1: the index by time is there");
    is_str(lite_value(path, "SELECT count(*) FROM sqlite_master WHERE name "
                      "= 'messages_by_client'"), "1",
           "v1: the client_id index is there");
    is_str(lite_value(path, "SELECT count(*) FROM sqlite_master WHERE name "
                      "= 'messages_unread'"), "0", "v1: the index is gone");
    is_int(chat_get(&o, CHAT_A, PAT1, NULL), CC_OK, "v1: chat read");
    is_int(o.chat ? (int)o.chat->unread_count : -1, 1,
           "v1: the patient has 1 unread (r4)");
    ok(o.chat && o.chat->has_last && same_bytes(&o.chat->last, "p6", 2),
       "v1: last message kept");
    is_int(chat_get(&o, CHAT_A, NULL, PRO1), CC_OK, "v1: chat read (pro)");
    is_int(o.chat ? (int)o.chat->unread_count : -1, 2,
           "v1: the professional has 2 unread (p5, p6)");
    is_int(append(&o, "a0000000-0000-4000-8000-000000000007", CHAT_A, PAT1,
                  CC_SIDE_PATIENT, "p7", 2, 8), CC_OK, "v1: append");
    is_int(o.message ? (int)o.message->seq : -1, 7, "v1: next seq is 7");
    is_int(chat_get(&o, CHAT_A, NULL, PRO1), CC_OK, "v1: chat read again");
    is_int(o.chat ? (int)o.chat->unread_count : -1, 3,
           "v1: the professional has 3 unread");
    is_int(mark_read(&o, CHAT_A, CC_SIDE_PROFESSIONAL), CC_OK,
           "v1: professional marks read");
    is_int((int)o.count, 3, "v1: p5, p6, p7 marked");
    is_int(mark_read(&o, CHAT_A, CC_SIDE_PROFESSIONAL), CC_OK,
           "v1: again");
    is_int((int)o.count, 0, "v1: nothing left to mark");
    is_int(chat_get(&o, CHAT_A, NULL, PRO1), CC_OK, "v1: chat read (pro)");
    is_int(o.chat ? (int)o.chat->unread_count : -1, 0,
           "v1: the professional has 0 unread");
    is_int(chat_get(&o, CHAT_A, PAT1, NULL), CC_OK, "v1: chat read (pat)");
    is_int(o.chat ? (int)o.chat->unread_count : -1, 1,
           "v1: the patient still has 1 unread");
    is_int(mark_read(&o, CHAT_A, CC_SIDE_PATIENT), CC_OK,
           "v1: patient marks read");
    is_int((int)o.count, 1, "v1: r4 marked");
    is_str(lite_value(path, "SELECT pat_read_upto || ' ' || "
                      "pro_read_upto || ' ' || unread_from_pat || ' ' || "
                      "unread_from_pro FROM chats"),
           "7 7 0 0", "v1: every message read, on disk (the read marks)");
    outcome_free(&o);
    unload();
}

/* The ABI 1.4 contract (store14.h) on a database of its own. */
static void test_abi14(void)
{
    char path[128];

    snprintf(path, sizeof path, "%s/abi14.db", dir);
    if (!ok(load(path) == 0, "abi 1.4: loads")) {
        unload();
        return;
    }
    run_store14();
    unload();
}

/* A database of schema version 5 (as that plugin left it: read state in
 * messages.is_read, counts and "read up to" in the chat row) is migrated
 * to 6: each side's READ and DELIVERED marks are the newest message of
 * the other party it had read, unread counts and is_read follow from
 * them, owners stay, priorities are normal; then marks move on. */
#define V5_MSG(seq, side, who, read)                                     \
    " ('" CHAT_A "', " #seq ", 'a0000000-0000-4000-8000-00000000000"     \
    #seq "', " #side ", '" who "', 'm" #seq "', " #seq ", " #read ", NULL)"
static const char v5_db[] =
    OLD_TABLES
    " unread_from_pat INTEGER NOT NULL DEFAULT 0,"
    " unread_from_pro INTEGER NOT NULL DEFAULT 0,"
    " pat_read_upto INTEGER NOT NULL DEFAULT 0,"
    " pro_read_upto INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (patient_id, professional_id));"
    "CREATE INDEX chats_by_patient ON chats (patient_id, id);"
    "CREATE INDEX chats_by_professional ON chats (professional_id, id);"
    "CREATE TABLE messages (chat_id TEXT NOT NULL REFERENCES chats (id),"
    " seq INTEGER NOT NULL, id TEXT NOT NULL UNIQUE,"
    " sender_type INTEGER NOT NULL, sender_id TEXT NOT NULL,"
    " content TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " is_read INTEGER NOT NULL DEFAULT 0, client_id TEXT,"
    " PRIMARY KEY (chat_id, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX messages_by_client ON messages"
    " (chat_id, sender_id, client_id) WHERE client_id IS NOT NULL;"
    "CREATE INDEX messages_by_time ON messages (created_at);"
    "INSERT INTO profiles VALUES (1, '" PAT1 "', 'u-pat', 1),"
    " (2, '" PRO1 "', NULL, 1);"
    "INSERT INTO chats VALUES ('" CHAT_A "', '" PAT1 "', '" PRO1 "', 1, 7,"
    " 6, 2, 1, 3, 2);"
    /* patient 1, 2 read; professional 3 read, 4 not; patient 5, 6 not */
    "INSERT INTO messages VALUES" V5_MSG(1, 1, PAT1, 1) ","
    V5_MSG(2, 1, PAT1, 1) "," V5_MSG(3, 2, PRO1, 1) ","
    V5_MSG(4, 2, PRO1, 0) "," V5_MSG(5, 1, PAT1, 0) ","
    V5_MSG(6, 1, PAT1, 0) ";"
    "PRAGMA user_version = 5;";

static void test_migrate_v5(void)
{
    char path[128];

    if (load_old(5, v5_db, path) < 0)
        return;
    is_str(lite_value(path, "SELECT count(*) FROM sqlite_master WHERE name "
                      "IN ('tickets', 'chats_pat_due', 'chats_pro_due')"),
           "3", "v5: the tickets table and the due indexes are there");
    migrated14(PAT1, PRO1, CHAT_A, "v5");
    unload();
}

static void test_future_version(void)
{
    char path[128], err[512] = "", ignored[8];
    struct pt_env e;
    char conf[512];
    const char *log;
    int rc;

    snprintf(path, sizeof path, "%s/future.db", dir);
    if (!ok(lite_run(path, 1, "CREATE TABLE future (x); "
                     "PRAGMA user_version = 7", ignored, sizeof ignored) == 0,
            "future database made by hand")) {
        return;
    }
    snprintf(conf, sizeof conf, "[storage]\nplugin = sqlite\npath = %s\n",
             path);
    capture_begin();
    rc = pt_load(&e, pt_plugin_path("storage-sqlite"), CC_KIND_STORAGE,
                 "storage", conf, err, sizeof err);
    log = capture_end();
    is_int(rc, -1, "schema version 7 refused");
    ok(err[0] != '\0', "refusal has an error (%s)", err);
    if (!ok(strstr(log, "schema version 7") != NULL &&
            strstr(log, "knows up to 6") != NULL,
            "refusal names the versions"))
        printf("#   log: %s", log);
    ok(strstr(log, path) != NULL, "refusal names the file");
    pt_unload(&e);
    is_str(lite_value(path, "PRAGMA user_version"), "7",
           "future database: version untouched");
    is_str(lite_value(path, "PRAGMA journal_mode"), "delete",
           "future database: journal mode untouched (not switched to WAL)");
    is_str(lite_value(path, "SELECT count(*) FROM sqlite_master "
                      "WHERE name = 'messages'"), "0",
           "future database: no tables added");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_sqlite_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(db_path, sizeof db_path, "%s/chat.db", dir);
    /* Message times are t0 plus fixed offsets, so every expected order
     * and updated_at is known exactly. */
    t0 = (int64_t)time(NULL) * 1000000;

    test_config();
    test_fresh();
    test_profiles();
    test_chats();
    test_messages();
    test_paging();
    test_mark_read();
    test_chat_list();
    test_bulk();
    test_flush_on_stop(); /* unloads */
    test_on_disk("after stop", n_a + 1 + BULK + FLUSH);
    test_reopen();
    test_on_disk("after reopen", n_a + 1 + BULK + FLUSH);
    test_future_version();
    test_migrate_v1();
    test_migrate_v5();
    test_small_queue();
    test_group_failure();
    test_group_chats();
    test_client_ids();
    test_abi14();
    test_wal_bounded();
    test_page_cache();
    is_int(reentrant, 0, "no callback ran inside the call that started it");
    is_int(bad_results, 0, "every callback had a full result");
    remove_dir(dir);
    if (lite.dl)
        dlclose(lite.dl);
    return done_testing();
}
