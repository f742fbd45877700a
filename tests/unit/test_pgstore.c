/*
 * test_pgstore.c - the `postgres` storage plugin's ABI 1.4 contract
 * (store14.h, the cases test_sqlite runs too), loaded from its built .so
 * through the real host, against a real PostgreSQL; and what only a
 * shared database has: two nodes claiming the same due notifications at
 * once hand each one out once.
 *
 * The database comes from the environment, a fresh one each run:
 *   CC_TEST_PG      libpq conninfo of an empty database (required; the
 *                   test is skipped without it)
 *   CC_TEST_PG_V4   conninfo of a database of schema version 4 holding
 *                   migrated14()'s data set (optional): checked migrated
 * tests/integration/test_postgres.py (Storage14) makes both on its
 * throwaway cluster and runs this.
 */
#include "tap.h"
#include "plugintest.h"

#define STORETEST_PLUGIN "storage-postgres"
#include "storetest.h"
#include "store14.h"

#include <inttypes.h>

#define RACE_CHATS 240          /* due episodes both nodes claim */
#define RACE_LIMIT 7            /* a claim's limit */

static int load_pg(const char *conninfo)
{
    char conf[1024];

    snprintf(conf, sizeof conf, "[storage]\nplugin = postgres\n"
             "conninfo = %s\n", conninfo);
    return load_conf(conf);
}

/* ------------------------------------------------ two nodes, one DB */

/* A second instance of the plugin on the same database: its own writer
 * connection, as another carechatd would have. */
static struct cc_plugin_inst node2;

static int load_node2(void)
{
    char err[512];

    if (cc_plugin_load(pt_plugin_path(STORETEST_PLUGIN), CC_KIND_STORAGE,
                       env.conf, cc_conf_section(env.conf, "storage"),
                       &node2, err, sizeof err) < 0 ||
        cc_plugin_start(&node2, err, sizeof err) < 0) {
        printf("# second node: %s\n", err);
        return -1;
    }
    return 0;
}

/* Every request of a batch: answered, then counted. */
static int answered, failures;
static volatile int batch_done;
static int batch_size;

static void batch_cb(void *arg, int status, const struct cc_store_result *res)
{
    (void)arg;
    (void)res;
    failures += status != CC_OK;
    if (++answered == batch_size)
        batch_done = 1;
}

static void batch_begin(int n)
{
    answered = failures = 0;
    batch_size = n;
    batch_done = n == 0;
}

static int batch_wait(const char *what)
{
    if (pt_run_until(&env, &batch_done, 60000) < 0) {
        printf("Bail out! %s: no answers within 60 s\n", what);
        exit(1);
    }
    return failures;
}

/* RACE_CHATS chats of one patient, each with a message due at t. */
static int race_setup(char chats[][37], int64_t t)
{
    char pat[37], pro[RACE_CHATS][37], id[37];

    make_id(pat, 0x15000000u, 0);
    batch_begin(1 + RACE_CHATS);
    api->profile_put(inst, CC_SIDE_PATIENT, pat, "racer", batch_cb, NULL);
    for (int i = 0; i < RACE_CHATS; i++) {
        make_id(pro[i], 0x15000001u, (unsigned)i);
        api->profile_put(inst, CC_SIDE_PROFESSIONAL, pro[i], NULL, batch_cb,
                         NULL);
    }
    if (batch_wait("race profiles"))
        return -1;
    batch_begin(RACE_CHATS);
    for (int i = 0; i < RACE_CHATS; i++) {
        make_id(chats[i], 0x15000002u, (unsigned)i);
        api->chat_open(inst, chats[i], pat, pro[i], t, batch_cb, NULL);
    }
    if (batch_wait("race chats"))
        return -1;
    batch_begin(RACE_CHATS);
    for (int i = 0; i < RACE_CHATS; i++) {
        struct cc_message m = {
            .struct_size = sizeof m, .id = id, .chat_id = chats[i],
            .sender_id = pat, .content = "due", .content_len = 3,
            .created_at_us = t, .sender_type = CC_SIDE_PATIENT,
            .notify_due_us = t + i,
        };

        make_id(id, 0x15000003u, (unsigned)i);
        api->message_append(inst, &m, batch_cb, NULL);
    }
    return batch_wait("race appends") ? -1 : 0;
}

/* One node's claim of a round: the chats it was handed. */
struct claim {
    volatile int done;
    int status;
    size_t n;
    char chat[RACE_LIMIT][37];
};

static void claim_cb(void *arg, int status, const struct cc_store_result *r)
{
    struct claim *c = arg;

    c->status = status;
    c->n = status == CC_OK ? r->n_notifications : 0;
    for (size_t i = 0; i < c->n && i < RACE_LIMIT; i++)
        snprintf(c->chat[i], 37, "%s", r->notifications[i]->chat_id);
    c->done = 1;
}

/* Both nodes claim at once, round after round, until neither gets any:
 * each episode is handed out once, to one of them, and all are. */
static void test_claim_race(void)
{
    static char chats[RACE_CHATS][37];
    static int times[RACE_CHATS];
    const struct cc_storage_api *api2;
    const int64_t t = T14(0x40);
    struct cc_notify_claim q = {
        .struct_size = sizeof q, .now_us = t + RACE_CHATS,
        .lease_us = 600 * SEC14, .limit = RACE_LIMIT,
    };
    int rounds = 0, twice = 0, never = 0, both = 0, failed = 0;
    size_t got[2] = { 0, 0 };

    if (!ok(load_node2() == 0, "race: a second node on the database"))
        return;
    api2 = node2.iface;
    if (!ok(race_setup(chats, t) == 0, "race: %d chats with a due message",
            RACE_CHATS))
        goto out;
    for (;;) {
        struct claim c[2] = { { 0 }, { 0 } };

        api->notify_claim(inst, &q, claim_cb, &c[0]);
        api2->notify_claim(node2.inst, &q, claim_cb, &c[1]);
        pt_run_until(&env, &c[0].done, 30000);
        pt_run_until(&env, &c[1].done, 30000);
        failed += c[0].status != CC_OK || c[1].status != CC_OK;
        both += c[0].n > 0 && c[1].n > 0;
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < c[k].n; i++) {
                got[k]++;
                for (int j = 0; j < RACE_CHATS; j++)
                    times[j] += strcmp(chats[j], c[k].chat[i]) == 0;
            }
        if ((!c[0].n && !c[1].n) || ++rounds > RACE_CHATS || failed)
            break;
    }
    for (int j = 0; j < RACE_CHATS; j++) {
        twice += times[j] > 1;
        never += times[j] == 0;
    }
    printf("# race: %d rounds; node 1 got %zu, node 2 %zu; both got some "
           "in %d rounds\n", rounds, got[0], got[1], both);
    is_int(failed, 0, "race: every claim succeeded");
    is_int(twice, 0, "race: no episode handed out twice");
    is_int(never, 0, "race: every episode handed out");
    ok(both > 0, "race: the claims overlapped (both nodes got some in one "
       "round)");
out:
    cc_plugin_unload(&node2);
}

/* ------------------------------------------------------ migration */

static void test_migrated_v4(const char *conninfo)
{
    const char *log;
    int rc;

    capture_begin();
    rc = load_pg(conninfo);
    log = capture_end();
    if (!ok(rc == 0, "v4: loads")) {
        printf("# %s", log);
        unload();
        return;
    }
    ok(strstr(log, "migrated schema version 4 to 5") != NULL,
       "v4: the log says it was migrated");
    migrated14("11111111-1111-4111-8111-111111111111",
               "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
               "c0000000-0000-4000-8000-00000000000a", "v4");
    unload();
}

int main(void)
{
    const char *conninfo = getenv("CC_TEST_PG");
    const char *v4 = getenv("CC_TEST_PG_V4");
    const char *log;
    int rc;

    if (!conninfo || !conninfo[0]) {
        printf("1..0 # SKIP CC_TEST_PG is not set (test_postgres.py sets "
               "it)\n");
        return 0;
    }
    capture_begin();
    rc = load_pg(conninfo);
    log = capture_end();
    if (!ok(rc == 0, "loads")) {
        printf("# %s", log);
        unload();
        return done_testing();
    }
    ok(strstr(log, "created schema version 5") != NULL,
       "a fresh database gets schema 5");
    run_store14();
    test_claim_race();
    unload();
    if (v4 && v4[0])
        test_migrated_v4(v4);
    is_int(reentrant, 0, "no callback ran inside the call that started it");
    is_int(bad_results, 0, "every callback had a full result");
    return done_testing();
}
