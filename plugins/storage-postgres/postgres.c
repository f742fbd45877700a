/*
 * postgres.c - the storage plugin `postgres` (libpq): the hospital
 * database, shared by several carechatd nodes.
 *
 * Threads, not libpq's async API on the loop.  One writer thread owns a
 * connection and drains the write queue in groups: one BEGIN ... COMMIT
 * per group (group commit: one WAL flush for many messages).  A group of
 * appends goes in one round trip (pipeline mode, append_pipelined); any
 * other group, or one in which an append failed, runs with a SAVEPOINT
 * per request, so one failing request rolls back only itself.
 * A small fixed pool of reader threads (`readers`, default 2) answers
 * queries, each on its own connection.  Why threads: the storage ABI is
 * already asynchronous behind a queue, group commit needs requests
 * batched anyway, the blocking libpq API is the well-trodden one, and the
 * queue, request and result code is shared with `sqlite`
 * (plugins/common/storeq.c) instead of written twice.  The event loop
 * never waits on the database: it only queues and receives host->post.
 *
 * Order and races across nodes: a message's sequence number comes from
 * `UPDATE chats SET last_seq = last_seq + 1 ... RETURNING` (in the same
 * statement as the insert), whose row lock serialises appends to one chat
 * across every node until COMMIT.
 * Chat create-or-get is INSERT ... ON CONFLICT DO NOTHING on the unique
 * (patient, professional) pair, then a read: race-free without a lock.
 * Retention (message_purge) deletes the oldest messages in one statement
 * and its own transaction (write_group), skipping rows others hold; it
 * leaves chats alone, so seq numbering goes on from last_seq.
 *
 * Outages: a worker that loses its connection fails the request in hand
 * and everything queued behind it with CC_E_UNAVAIL (never acknowledged,
 * so never broadcast) and reconnects with exponential backoff; a request
 * that arrives meanwhile makes it try at once (at most every
 * RETRY_MIN_MS), so the first request after the database is back is
 * served, and while it is down requests are refused after one quick
 * attempt.  Connections heal before they are used: one the server closed
 * while it sat idle (a restart) has left its notice and EOF on the
 * socket, which is read without waiting before each group, and the
 * connection replaced.  A read whose connection is lost under it is
 * retried once on a fresh connection before it fails.  A write is never
 * retried once sent: a COMMIT whose answer is lost may have been stored,
 * and it is reported as failed (never the reverse).
 *
 * Failover: with a multi-host conninfo and target_session_attrs=
 * read-write (pg_auto_failover, Patroni), a reconnect walks the host list
 * to the primary.  A connection a switchover left behind is treated as
 * lost, not as a server that refuses the request for good: an error that
 * says the server turned read-only (SQLSTATE 25006), is shutting down or
 * restarting (57P01, 57P02, 57P03) or that the link failed (class 08)
 * fails the request as unavailable and replaces the connection; and when
 * the conninfo asks for a primary, a connection whose server reported
 * that it is a standby or read-only now (PostgreSQL 14 and later report
 * both with the answer to the next statement, no round trip of their
 * own) is replaced before it is used again, so readers move to the new
 * primary too instead of reading a demoted server's history from then
 * on.
 *
 * Schema: versioned in carechat_schema and migrated at start under a
 * transaction-scoped advisory lock, so nodes starting together apply a
 * migration once.  Only prepared statements with bound parameters.
 * Built like a third-party plugin: public headers only.
 */
#include <carechat/storage.h>

#include "pconf.h"
#include "storeq.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_VERSION 4
#define MAX_READERS 32
#define CONNINFO_MAX 4096       /* bytes of a conninfo_file */
/* Reconnect attempts that waiting requests ask for are this far apart. */
#define RETRY_MIN_MS 50
/* libpq's connect_timeout when the conninfo sets none (seconds): a
 * server that does not answer must not hold requests for minutes. */
#define CONNECT_TIMEOUT "5"
/* pg_advisory_xact_lock key for migrations: "care" */
#define MIGRATION_LOCK "1667330661"

/* Microseconds <-> timestamptz, exactly (extract returns numeric). */
#define US(col) "(extract(epoch from " col ") * 1000000)::int8"
#define TS(par) \
    "(timestamptz 'epoch' + " par "::int8 * interval '1 microsecond')"

#define MSG_COLS "m.id, m.seq, m.sender_type, m.sender_id, m.content, " \
                 US("m.created_at") ", m.is_read, m.client_id"
#define CHAT_COLS "c.id, c.patient_id, c.professional_id, " \
                  US("c.created_at") ", " US("c.updated_at")
/* A chat row with its last message and the viewer's unread count:
 * $V1/$V2 are the viewer's patient and professional ids.  The last
 * message is the highest seq still stored (one backward step of the
 * primary key), not seq = last_seq: retention may have purged that one
 * (message_purge), and last_seq stays where it was. */
#define CHAT_FULL(vp, vr)                                                 \
    "SELECT " CHAT_COLS ", " MSG_COLS ", (SELECT count(*) FROM messages u " \
    "WHERE u.chat_id = c.id AND NOT u.is_read AND u.sender_type = "      \
    "CASE WHEN c.patient_id = " vp "::uuid THEN 2 "                       \
    "WHEN c.professional_id = " vr "::uuid THEN 1 ELSE 0 END) "           \
    "FROM chats c LEFT JOIN LATERAL (SELECT * FROM messages l "          \
    "WHERE l.chat_id = c.id ORDER BY l.seq DESC LIMIT 1) m ON true "

enum stmt {
    S_PROFILE_PUT, S_PROFILE_GET, S_CHAT_INSERT, S_CHAT_BY_PAIR, S_CHAT_GET,
    S_CHAT_EXISTS,
    S_APPEND, S_LOCK_CHATS, S_BUMPS, S_APPEND_ALL, S_MARK_READ,
    S_CHAT_LIST, S_CHAT_NEWER, S_CHAT_COUNT,
    S_MSG_AFTER, S_MSG_BEFORE, S_MSG_BY_CLIENT, S_MSG_SEQ, S_PURGE, N_STMT
};

static const char *const sql[N_STMT] = {
    [S_PROFILE_PUT] = "INSERT INTO profiles (side, id, user_id, created_at) "
                      "VALUES ($1::int2, $2::uuid, $3, " TS("$4") ") "
                      "ON CONFLICT DO NOTHING",
    [S_PROFILE_GET] = "SELECT 1 FROM profiles WHERE side = $1::int2 "
                      "AND id = $2::uuid",
    [S_CHAT_INSERT] = "INSERT INTO chats (id, patient_id, professional_id, "
                      "created_at, updated_at) VALUES ($1::uuid, $2::uuid, "
                      "$3::uuid, " TS("$4") ", " TS("$4") ") "
                      "ON CONFLICT (patient_id, professional_id) DO NOTHING",
    [S_CHAT_BY_PAIR] = CHAT_FULL("NULL", "NULL")
                       "WHERE c.patient_id = $1::uuid "
                       "AND c.professional_id = $2::uuid",
    [S_CHAT_GET] = CHAT_FULL("$2", "$3") "WHERE c.id = $1::uuid",
    [S_CHAT_EXISTS] = "SELECT 1 FROM chats WHERE id = $1::uuid",
    /* The next sequence (the chat row's lock orders appends to a chat
     * across nodes until COMMIT) and the message, in one statement: no
     * row back when the chat does not exist. */
    [S_APPEND] = "WITH s AS (UPDATE chats SET last_seq = last_seq + 1, "
                 "updated_at = greatest(updated_at, " TS("$2") ") "
                 "WHERE id = $1::uuid "
                 "RETURNING last_seq) "
                 "INSERT INTO messages (chat_id, seq, id, sender_type, "
                 "sender_id, content, created_at, client_id) SELECT "
                 "$1::uuid, s.last_seq, $3::uuid, $4::int2, $5::uuid, $6, "
                 TS("$2") ", $7::uuid FROM s RETURNING seq",
    /* A pipelined group of appends (append_pipelined), in three
     * statements: its chats locked in id order, each chat's last_seq
     * moved on by its count of messages ($2, newest time $3), then every
     * message (arrays, by chat), its sequence counted back from the
     * row's new last_seq; no row for a chat that does not exist. */
    [S_LOCK_CHATS] = "SELECT 1 FROM chats WHERE id = ANY ($1::uuid[]) "
                     "ORDER BY id FOR UPDATE",
    [S_BUMPS] = "UPDATE chats c SET last_seq = c.last_seq + v.n, "
                "updated_at = greatest(c.updated_at, " TS("v.t") ") "
                "FROM unnest($1::uuid[], $2::int8[], $3::int8[]) "
                "WITH ORDINALITY AS v (id, n, t, i) WHERE c.id = v.id "
                "RETURNING v.i, c.last_seq",
    [S_APPEND_ALL] = "INSERT INTO messages (chat_id, seq, id, sender_type, "
                     "sender_id, content, created_at) SELECT v.chat, "
                     "c.last_seq - v.back, v.id, v.st, v.sid, v.content, "
                     TS("v.t") " FROM unnest($1::uuid[], $2::int8[], "
                     "$3::uuid[], $4::int2[], $5::uuid[], $6::text[], "
                     "$7::int8[]) AS v (chat, back, id, st, sid, content, "
                     "t) JOIN chats c ON c.id = v.chat",
    /* An append that carries the client's id runs alone (not
     * pipelined), after looking for it: */
    [S_MSG_BY_CLIENT] = "SELECT " MSG_COLS " FROM messages m WHERE "
                        "m.chat_id = $1::uuid AND m.sender_id = $2::uuid "
                        "AND m.client_id = $3::uuid",
    [S_MSG_SEQ] = "SELECT seq FROM messages WHERE chat_id = $1::uuid AND "
                  "id = $2::uuid",
    [S_MARK_READ] = "UPDATE messages SET is_read = true WHERE "
                    "chat_id = $1::uuid AND sender_type <> $2::int2 "
                    "AND NOT is_read",
    [S_CHAT_LIST] = CHAT_FULL("$1", "$2")
                    "WHERE (c.patient_id = $1::uuid OR "
                    "c.professional_id = $2::uuid) AND ($3::int8 = 0 OR "
                    "c.updated_at < " TS("$3") " OR (c.updated_at = "
                    TS("$3") " AND c.id < $4::uuid)) "
                    "ORDER BY c.updated_at DESC, c.id DESC LIMIT $5::int8",
    [S_CHAT_NEWER] = CHAT_FULL("$1", "$2")
                     "WHERE (c.patient_id = $1::uuid OR "
                     "c.professional_id = $2::uuid) AND (c.updated_at > "
                     TS("$3") " OR (c.updated_at = " TS("$3")
                     " AND c.id > $4::uuid)) "
                     "ORDER BY c.updated_at, c.id LIMIT $5::int8",
    [S_CHAT_COUNT] = "SELECT count(*) FROM chats WHERE patient_id = $1::uuid "
                     "OR professional_id = $2::uuid",
    /* One statement, one snapshot: the chat's last_seq (the total) and a
     * page; no row at all when the chat does not exist. */
    [S_MSG_AFTER] = "SELECT c.last_seq, " MSG_COLS " FROM chats c "
                    "LEFT JOIN LATERAL (SELECT * FROM messages "
                    "WHERE chat_id = c.id AND seq > $2::int8 ORDER BY seq "
                    "LIMIT $3::int8) m ON true WHERE c.id = $1::uuid "
                    "ORDER BY m.seq",
    [S_MSG_BEFORE] = "SELECT c.last_seq, " MSG_COLS " FROM chats c "
                     "LEFT JOIN LATERAL (SELECT * FROM messages "
                     "WHERE chat_id = c.id AND seq < $2::int8 "
                     "ORDER BY seq DESC LIMIT $3::int8) m ON true "
                     "WHERE c.id = $1::uuid ORDER BY m.seq DESC",
    /* Retention: at most $2 of the oldest messages created before $1
     * (messages_by_time), and whether more than $2 were there.  Rows
     * another transaction holds (a mark_read, another node's purge) are
     * skipped, not waited for: the one writer never blocks on them, and
     * purges lock in created_at order, so they cannot deadlock.  Chats
     * are not touched: last_seq stays (the next message gets the next
     * seq), and last message and unread counts are read from what is
     * left (CHAT_FULL). */
    [S_PURGE] = "WITH v AS (SELECT chat_id, seq, created_at FROM messages "
                "WHERE created_at < " TS("$1") " ORDER BY created_at "
                "LIMIT $2::int8 + 1 FOR UPDATE SKIP LOCKED), "
                "d AS (DELETE FROM messages m USING (SELECT chat_id, seq "
                "FROM v ORDER BY created_at LIMIT $2::int8) w "
                "WHERE m.chat_id = w.chat_id AND m.seq = w.seq RETURNING 1) "
                "SELECT (SELECT count(*) FROM d), "
                "(SELECT count(*) FROM v) > $2::int8",
};

/* Most appends sent in one pipeline (see append_pipelined). */
#define PIPE_MAX 256

static const char schema_v1[] =
    "CREATE TABLE profiles ("
    " side int2 NOT NULL, id uuid NOT NULL, user_id text,"
    " created_at timestamptz NOT NULL, PRIMARY KEY (side, id));"
    "CREATE TABLE chats ("
    " id uuid PRIMARY KEY, patient_id uuid NOT NULL,"
    " professional_id uuid NOT NULL, created_at timestamptz NOT NULL,"
    " updated_at timestamptz NOT NULL, last_seq int8 NOT NULL DEFAULT 0,"
    " UNIQUE (patient_id, professional_id));"
    "CREATE INDEX chats_by_patient ON chats"
    " (patient_id, updated_at DESC, id DESC);"
    "CREATE INDEX chats_by_professional ON chats"
    " (professional_id, updated_at DESC, id DESC);"
    "CREATE TABLE messages ("
    " chat_id uuid NOT NULL REFERENCES chats (id), seq int8 NOT NULL,"
    " id uuid NOT NULL UNIQUE, sender_type int2 NOT NULL,"
    " sender_id uuid NOT NULL, content text NOT NULL,"
    " created_at timestamptz NOT NULL, is_read bool NOT NULL DEFAULT false,"
    " PRIMARY KEY (chat_id, seq));"
    "CREATE INDEX messages_unread ON messages (chat_id, sender_type)"
    " WHERE NOT is_read;";

/* Version 1 to 2: the id a client gave its message (resent after a lost
 * acknowledgement, it is stored once: the unique index says so, across
 * nodes too). */
static const char schema_v1_to_v2[] =
    "ALTER TABLE messages ADD COLUMN client_id uuid;"
    "CREATE UNIQUE INDEX messages_by_client ON messages"
    " (chat_id, sender_id, client_id) WHERE client_id IS NOT NULL;";

/* Version 2 to 3: retention (message_purge) finds the oldest messages
 * of every chat by time; created_at only grows, so the index is cheap to
 * keep.  Built under the migration's transaction: writes to messages
 * wait for it at the first start of this version. */
static const char schema_v2_to_v3[] =
    "CREATE INDEX messages_by_time ON messages (created_at);";

/* Version 3 to 4: the chat-list indexes lose updated_at.  The list is
 * the chats where the user is patient OR professional, sorted after (a
 * bitmap OR of the two): the time in the index never gave the order, but
 * with it indexed every append's update of the chat row was a new index
 * entry in four indexes and a dead one left behind.  Without it that
 * update is HOT (no index entry at all), and the row's old versions are
 * pruned from its page as it goes. */
static const char schema_v3_to_v4[] =
    "DROP INDEX chats_by_patient;"
    "DROP INDEX chats_by_professional;"
    "CREATE INDEX chats_by_patient ON chats (patient_id, id);"
    "CREATE INDEX chats_by_professional ON chats (professional_id, id);";

struct pg;

/* One connection and the thread that owns it. */
struct worker {
    struct pg *pg;
    struct sq_queue *q;
    PGconn *conn;
    pthread_t thread;
    int writer;
    int up;                     /* thread-local view: conn is usable */
    char lost[96];              /* why conn counts as lost although libpq
                                   may call it open (note_lost), or "" */
    char *arr;                  /* the writer's array parameters */
    size_t arr_cap;
};

struct pg {
    struct sq_backend base;     /* first: the storage API's inst */
    char *conninfo;
    char *conninfo_source;      /* "conninfo" or the file, for messages */
    int n_readers;
    int batch_max;
    size_t queue_max;
    int backoff_max_ms;
    int want_primary;           /* target_session_attrs read-write or
                                   primary: conn_unusable() checks */
    struct sq_queue wq, rq;
    struct worker writer;
    struct worker readers[MAX_READERS];
    atomic_int readers_up;
    atomic_int writer_up;       /* the writer's view, for health() */
    int running;
};

#define LOG(pg, lvl, ...) (pg)->base.host->log((pg)->base.ctx, lvl, __VA_ARGS__)

/* ----------------------------------------------------------- config */

static int cfg_key(void *arg, const char *key, const char *value,
                   const char **reason)
{
    struct pg *pg = arg;
    long n;

    if (strcmp(key, "conninfo") == 0 || strcmp(key, "conninfo_file") == 0) {
        char *ci = key[8] ? cc_pconf_read_secret(value, CONNINFO_MAX, NULL,
                                                 reason)
                          : strdup(value);
        if (!ci)
            return CC_E_INVAL;
        if (pg->conninfo) {
            free(ci);
            *reason = "give one of conninfo and conninfo_file";
            return CC_E_INVAL;
        }
        pg->conninfo = ci;
        pg->conninfo_source = strdup(key[8] ? value : "conninfo");
    } else if (strcmp(key, "readers") == 0) {
        if (cc_pconf_long(value, 1, MAX_READERS, &n) < 0) {
            *reason = "expected a number from 1 to 32";
            return CC_E_INVAL;
        }
        pg->n_readers = (int)n;
    } else if (strcmp(key, "batch_max") == 0) {
        if (cc_pconf_long(value, 1, 100000, &n) < 0) {
            *reason = "expected a number from 1 to 100000";
            return CC_E_INVAL;
        }
        pg->batch_max = (int)n;
    } else if (strcmp(key, "queue_max") == 0) {
        if (cc_pconf_long(value, 1, 100000000, &n) < 0) {
            *reason = "expected a number from 1 to 100000000";
            return CC_E_INVAL;
        }
        pg->queue_max = (size_t)n;
    } else if (strcmp(key, "reconnect_max") == 0) {
        if (cc_pconf_long(value, 100, 600000, &n) < 0) {
            *reason = "expected milliseconds, 100 to 600000";
            return CC_E_INVAL;
        }
        pg->backoff_max_ms = (int)n;
    } else {
        *reason = "unknown key (postgres takes conninfo, conninfo_file, "
                  "readers, batch_max, queue_max, reconnect_max)";
        return CC_E_INVAL;
    }
    return CC_OK;
}

static void pg_free(struct pg *pg)
{
    free(pg->writer.arr);
    free(pg->conninfo);
    free(pg->conninfo_source);
    free(pg);
}

static int pg_submit(struct sq_backend *b, struct sq_req *r);

static int pg_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct pg *pg = sq_xcalloc(1, sizeof *pg);
    char *err;
    PQconninfoOption *opts;

    pg->base.host = host;
    pg->base.ctx = ctx;
    pg->base.submit = pg_submit;
    pg->n_readers = 2;
    pg->batch_max = 256;
    pg->queue_max = 65536;
    pg->backoff_max_ms = 5000;
    if (host->cfg_iter(ctx, cfg_key, pg) != CC_OK)
        goto fail;
    if (!pg->conninfo) {
        host->cfg_error(ctx, NULL, "missing required key \"conninfo\" (or "
                        "\"conninfo_file\"), e.g. conninfo = "
                        "host=/run/postgresql dbname=carechat");
        goto fail;
    }
    /* Catch a malformed conninfo now, without printing it (it may hold a
     * password). */
    opts = PQconninfoParse(pg->conninfo, &err);
    if (!opts) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s is not a valid libpq connection "
                 "string: %s", pg->conninfo_source,
                 err ? err : "out of memory");
        if (msg[strlen(msg) - 1] == '\n')
            msg[strlen(msg) - 1] = '\0';
        PQfreemem(err);
        host->cfg_error(ctx, NULL, "%s", msg);
        goto fail;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "target_session_attrs") == 0 && o->val &&
            (strcmp(o->val, "read-write") == 0 ||
             strcmp(o->val, "primary") == 0))
            pg->want_primary = 1;
    PQconninfoFree(opts);
    *inst = pg;
    return CC_OK;
fail:
    pg_free(pg);
    return CC_E_INVAL;
}

/* ------------------------------------------------------ connections */

/* libpq's last error without its trailing newline. */
static const char *conn_error(PGconn *c, char *buf, size_t size)
{
    size_t n;

    snprintf(buf, size, "%s", c ? PQerrorMessage(c) : "out of memory");
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' '; /* one line: libpq's hints follow a newline, tab */
    return buf;
}

static void notice_quiet(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res; /* NOTICEs (e.g. "relation exists") are not events */
}

/* The name statement s is prepared under on every connection. */
static const char *stmt_name(enum stmt s, char name[16])
{
    snprintf(name, 16, "s%d", (int)s);
    return name;
}

/* Prepare every statement on c (the schema must exist); 0 or -1. */
static int prepare_all(PGconn *c, char *err, size_t err_size)
{
    for (int i = 0; i < N_STMT; i++) {
        char name[16];
        PGresult *res;

        res = PQprepare(c, stmt_name((enum stmt)i, name), sql[i], 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            snprintf(err, err_size, "preparing statement %d: %s", i,
                     PQresultErrorMessage(res));
            PQclear(res);
            return -1;
        }
        PQclear(res);
    }
    return 0;
}

/* A connection, with the statements prepared when prepare is set. */
static PGconn *connect_db(struct pg *pg, int prepare, char *err,
                          size_t err_size)
{
    /* Later keywords win: the conninfo's own connect_timeout, if any,
     * overrides ours. */
    static const char *const keys[] = { "connect_timeout", "dbname", NULL };
    const char *vals[] = { CONNECT_TIMEOUT, pg->conninfo, NULL };
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    if (!c || PQstatus(c) != CONNECTION_OK) {
        conn_error(c, err, err_size);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeReceiver(c, notice_quiet, NULL);
    /* Every statement we run finds its rows by an index (ids, or time
     * for retention), and its plan does not depend on the values: left
     * to choose, PostgreSQL planned the group statements (arrays of
     * unknown size) again at every execution, a third of its time for
     * groups of one message.  And a plan is made once per connection,
     * often when the tables are new and nearly empty, where scanning a
     * whole table looks cheapest: the chats table, whose row each message
     * updates, then grows with dead row versions that every later scan
     * reads (a fifth of PostgreSQL's time at 2,000 messages/s), and the
     * foreign key's check plans the same way.  Before 12 plan_cache_mode
     * does not exist and that choice stays PostgreSQL's. */
    PQclear(PQexec(c, "SET plan_cache_mode = force_generic_plan"));
    PQclear(PQexec(c, "SET enable_seqscan = off"));
    if (prepare && prepare_all(c, err, err_size) < 0) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* SQLSTATEs after which a connection is no use, whatever libpq says of
 * it: the server turned read-only under it (a switchover demoted it),
 * is shutting down, crashed or is not ready yet, or the link failed
 * (the whole class 08).  Matched as prefixes. */
static const struct {
    const char *code, *what;
} lost_states[] = {
    { "25006", "the server is read-only now" },
    { "57P01", "the server is shutting down" },
    { "57P02", "the server crashed" },
    { "57P03", "the server cannot take connections now" },
    { "08", "the connection failed" },
};

/* When res is an error after which w's connection is no use (a
 * failover), say so in w->lost: 1, else 0.  The request then fails as
 * unavailable (a client's retry is served once the connection is
 * replaced), never as refused for good.  w may be NULL. */
static int note_lost(struct worker *w, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE)
                         : NULL;

    if (!w || !st)
        return 0;
    for (size_t i = 0; i < sizeof lost_states / sizeof lost_states[0]; i++)
        if (strncmp(st, lost_states[i].code,
                    strlen(lost_states[i].code)) == 0) {
            snprintf(w->lost, sizeof w->lost, "%s, SQLSTATE %s",
                     lost_states[i].what, st);
            return 1;
        }
    return 0;
}

/* Run a plain command on c; 0 or -1 with the error in err.  With w (c
 * is w's connection), an error that means the connection is lost is
 * noted (note_lost). */
static int exec_on(PGconn *c, struct worker *w, const char *q, char *err,
                   size_t err_size)
{
    PGresult *res = PQexec(c, q);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
             PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok) {
        note_lost(w, res);
        conn_error(c, err, err_size);
    }
    PQclear(res);
    return ok ? 0 : -1;
}

static int command(PGconn *c, const char *q, char *err, size_t err_size)
{
    return exec_on(c, NULL, q, err, err_size);
}

/* command() on w's connection. */
static int wcommand(struct worker *w, const char *q, char *err,
                    size_t err_size)
{
    return exec_on(w->conn, w, q, err, err_size);
}

/* 1 when w's connection is lost: libpq says so, or note_lost did. */
static int conn_lost(const struct worker *w)
{
    return PQstatus(w->conn) != CONNECTION_OK || w->lost[0];
}

/* Create or check the schema, once across nodes (advisory lock). */
static int migrate(struct pg *pg, PGconn *c)
{
    char err[300];
    PGresult *res;
    int version = 0;

    if (command(c, "BEGIN", err, sizeof err) < 0 ||
        command(c, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", err,
                sizeof err) < 0 ||
        command(c, "CREATE TABLE IF NOT EXISTS carechat_schema "
                "(version int4 NOT NULL, applied_at timestamptz NOT NULL "
                "DEFAULT now())", err, sizeof err) < 0)
        goto fail;
    res = PQexec(c, "SELECT coalesce(max(version), 0) FROM carechat_schema");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        conn_error(c, err, sizeof err);
        goto fail;
    }
    version = (int)strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (version > SCHEMA_VERSION) {
        snprintf(err, sizeof err, "the database has schema version %d; "
                 "this plugin knows up to %d (a newer carechat made it): "
                 "refusing to touch it", version, SCHEMA_VERSION);
        goto fail;
    }
    if (version < 1 &&
        (command(c, schema_v1, err, sizeof err) < 0 ||
         command(c, "INSERT INTO carechat_schema (version) VALUES (1)",
                 err, sizeof err) < 0))
        goto fail;
    if (version < 2 &&
        (command(c, schema_v1_to_v2, err, sizeof err) < 0 ||
         command(c, "INSERT INTO carechat_schema (version) VALUES (2)",
                 err, sizeof err) < 0))
        goto fail;
    if (version < 3 &&
        (command(c, schema_v2_to_v3, err, sizeof err) < 0 ||
         command(c, "INSERT INTO carechat_schema (version) VALUES (3)",
                 err, sizeof err) < 0))
        goto fail;
    if (version < 4 &&
        (command(c, schema_v3_to_v4, err, sizeof err) < 0 ||
         command(c, "INSERT INTO carechat_schema (version) VALUES (4)",
                 err, sizeof err) < 0))
        goto fail;
    if (version == 0)
        LOG(pg, CC_LOG_INFO, "created schema version %d", SCHEMA_VERSION);
    else if (version < SCHEMA_VERSION)
        LOG(pg, CC_LOG_INFO, "migrated schema version %d to %d", version,
            SCHEMA_VERSION);
    if (command(c, "COMMIT", err, sizeof err) < 0)
        goto fail;
    return 0;
fail:
    LOG(pg, CC_LOG_ERROR, "schema migration failed: %s", err);
    command(c, "ROLLBACK", err, sizeof err);
    return -1;
}

static void set_up(struct worker *w, int up)
{
    if (w->up == up)
        return;
    w->up = up;
    if (!w->writer)
        atomic_fetch_add(&w->pg->readers_up, up ? 1 : -1);
    else
        atomic_store(&w->pg->writer_up, up);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for w's next reconnect attempt: delay_ms after the last one
 * (last_ms), or sooner once a request is queued, but no sooner than
 * RETRY_MIN_MS after the last.  -1 when the plugin stops. */
static int wait_attempt(struct worker *w, uint64_t last_ms, int delay_ms)
{
    uint64_t now = mono_ms();
    int rc;

    if (now < last_ms + (uint64_t)delay_ms) {
        rc = sq_queue_wait(w->q, (int)(last_ms + delay_ms - now), 1);
        if (rc <= 0)
            return rc;
        now = mono_ms();
    }
    if (now < last_ms + RETRY_MIN_MS &&
        sq_queue_wait(w->q, (int)(last_ms + RETRY_MIN_MS - now), 0) < 0)
        return -1;
    return 0;
}

/* The connection is gone: reconnect with backoff (and at once when
 * requests wait), failing what is queued after each failed attempt while
 * nothing else can serve it, until it is back (0) or the plugin stops
 * (-1). */
static int reconnect(struct worker *w, const char *why)
{
    struct pg *pg = w->pg;
    int delay = 100, attempts = 0;
    uint64_t since = mono_ms(), last = 0, mark;
    char err[300];

    set_up(w, 0);
    PQfinish(w->conn);
    w->conn = NULL;
    LOG(pg, CC_LOG_ERROR, "%s connection lost (%s); reconnecting",
        w->writer ? "writer" : "reader", w->lost[0] ? w->lost : why);
    w->lost[0] = '\0';
    for (;;) {
        if (attempts > 0 && wait_attempt(w, last, delay) < 0)
            return -1;
        attempts++;
        last = mono_ms();
        mark = sq_queue_mark(w->q);
        w->conn = connect_db(pg, 1, err, sizeof err);
        if (w->conn) {
            set_up(w, 1);
            LOG(pg, CC_LOG_INFO, "%s reconnected after %d attempt%s "
                "(%.1f s)", w->writer ? "writer" : "reader", attempts,
                attempts == 1 ? "" : "s",
                (double)(mono_ms() - since) / 1000.0);
            return 0;
        }
        if ((attempts & (attempts - 1)) == 0) /* 1, 2, 4, 8, ... */
            LOG(pg, CC_LOG_WARN, "reconnect attempt %d failed: %s",
                attempts, err);
        /* With no connection left for this queue, what waited for this
         * attempt cannot be served soon: refuse it now rather than keep
         * clients waiting.  What came during the attempt waits for the
         * next, which it makes happen soon. */
        if (w->writer || atomic_load(&pg->readers_up) == 0)
            sq_queue_fail_upto(&pg->base, w->q, mark, CC_E_UNAVAIL,
                               "postgres: database unavailable");
        delay = delay * 2 > pg->backoff_max_ms ? pg->backoff_max_ms
                                               : delay * 2;
    }
}

/* NULL while w's connection can be used as far as can be told without
 * a round trip, else why not: an error said it is lost (w->lost); the
 * server closed it (a restart, an idle timeout, a terminated backend
 * leave their notice and EOF on the socket, and reading what is there
 * says so); or, when the conninfo asks for a primary, the server
 * reported that it is a standby or read-only now (PostgreSQL 14 and
 * later report in_hot_standby and default_transaction_read_only to the
 * client whenever they change: a failover left the connection on a
 * demoted server, whose history is no longer the truth). */
static const char *conn_unusable(struct worker *w)
{
    PGconn *c = w->conn;
    struct pollfd p = { .fd = PQsocket(c), .events = POLLIN };
    const char *v;

    if (w->lost[0])
        return w->lost;
    if (PQstatus(c) != CONNECTION_OK || p.fd < 0 ||
        (poll(&p, 1, 0) > 0 &&
         (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK)))
        return "the server closed it while idle";
    if (!w->pg->want_primary)
        return NULL;
    if ((v = PQparameterStatus(c, "in_hot_standby")) &&
        strcmp(v, "on") == 0)
        return "the server is a standby now";
    if ((v = PQparameterStatus(c, "default_transaction_read_only")) &&
        strcmp(v, "on") == 0)
        return "the server is read-only now";
    return NULL;
}

/* Replace w's lost connection with a fresh one, one attempt, no wait.
 * Returns 0, or -1 (w->conn NULL; reconnect() takes over). */
static int replace(struct worker *w, const char *why)
{
    char err[300], was[sizeof w->lost];

    snprintf(was, sizeof was, "%s", why);
    w->lost[0] = '\0';
    set_up(w, 0);
    PQfinish(w->conn);
    w->conn = connect_db(w->pg, 1, err, sizeof err);
    if (!w->conn) {
        snprintf(w->lost, sizeof w->lost, "%s", was);
        return -1;
    }
    set_up(w, 1);
    LOG(w->pg, CC_LOG_INFO, "%s connection replaced: %s",
        w->writer ? "writer" : "reader", was);
    return 0;
}

/* ------------------------------------------------------- statements */

/* Execute prepared statement s with text parameters (NULL = SQL NULL). */
static PGresult *run(struct worker *w, enum stmt s, int n,
                     const char *const *params)
{
    char name[16];

    return PQexecPrepared(w->conn, stmt_name(s, name), n, params, NULL,
                          NULL, 0);
}

/* Record the failure of r; a dead connection makes it CC_E_UNAVAIL. */
static int fail(struct worker *w, struct sq_req *r, PGresult *res)
{
    char err[160];

    if (PQstatus(w->conn) != CONNECTION_OK || note_lost(w, res)) {
        snprintf(r->error, sizeof r->error, "postgres: connection lost");
        PQclear(res);
        return CC_E_UNAVAIL;
    }
    snprintf(r->error, sizeof r->error, "postgres: %s",
             res ? PQresultErrorMessage(res) : conn_error(w->conn, err,
                                                          sizeof err));
    for (char *p = r->error; *p; p++)
        if (*p == '\n')
            *p = ' ';
    PQclear(res);
    return CC_E_FAIL;
}

static int ok_cmd(PGresult *res)
{
    return PQresultStatus(res) == PGRES_COMMAND_OK;
}

static int ok_rows(PGresult *res)
{
    return PQresultStatus(res) == PGRES_TUPLES_OK;
}

static int64_t col_i64(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0
                                      : strtoll(PQgetvalue(res, row, col),
                                                NULL, 10);
}

/* A message at columns [c0, c0+8): id, seq, sender_type, sender_id,
 * content, created_at, is_read, client_id.  0 when the row has no
 * message. */
static int read_msg(const PGresult *res, int row, int c0,
                    const char *chat_id, struct sq_msg *o)
{
    int len;

    if (PQgetisnull(res, row, c0))
        return 0;
    len = PQgetlength(res, row, c0 + 4);
    sq_copy_id(o->id, PQgetvalue(res, row, c0));
    sq_copy_id(o->chat, chat_id);
    sq_copy_id(o->sender, PQgetvalue(res, row, c0 + 3));
    o->content = malloc((size_t)len + 1);
    if (!o->content)
        abort();
    memcpy(o->content, PQgetvalue(res, row, c0 + 4), (size_t)len + 1);
    if (PQgetisnull(res, row, c0 + 7))
        o->client_id[0] = '\0';
    else
        sq_copy_id(o->client_id, PQgetvalue(res, row, c0 + 7));
    sq_msg_link(o, (size_t)len, col_i64(res, row, c0 + 1),
                (int32_t)col_i64(res, row, c0 + 2),
                col_i64(res, row, c0 + 5),
                PQgetvalue(res, row, c0 + 6)[0] == 't');
    return 1;
}

/* A CHAT_FULL row: chat (5), last message (8), unread count (1). */
static void read_chat(const PGresult *res, int row, struct sq_chat *o)
{
    sq_copy_id(o->id, PQgetvalue(res, row, 0));
    sq_copy_id(o->pat, PQgetvalue(res, row, 1));
    sq_copy_id(o->pro, PQgetvalue(res, row, 2));
    sq_chat_link(o, col_i64(res, row, 3), col_i64(res, row, 4));
    if (read_msg(res, row, 5, o->id, &o->last))
        o->c.last_message = &o->last.m;
    o->c.unread_count = col_i64(res, row, 13);
}

static const char *side_str(int32_t side)
{
    return side == CC_SIDE_PATIENT ? "1" : side == CC_SIDE_PROFESSIONAL
                                               ? "2" : "0";
}

static const char *opt_id(const char *id)
{
    return id[0] ? id : NULL;
}

/* ---------------------------------------------------------- the ops */

static int profile_exists(struct worker *w, struct sq_req *r, int32_t side,
                          const char *id, int *yes)
{
    const char *p[] = { side_str(side), id };
    PGresult *res = run(w, S_PROFILE_GET, 2, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    *yes = PQntuples(res) > 0;
    PQclear(res);
    return CC_OK;
}

static int do_profile_put(struct worker *w, struct sq_req *r)
{
    char t[24];
    const char *p[] = { side_str(r->side), r->a, r->user, t };
    PGresult *res;

    snprintf(t, sizeof t, "%lld", (long long)r->t);
    res = run(w, S_PROFILE_PUT, 4, p);
    if (!ok_cmd(res))
        return fail(w, r, res);
    PQclear(res);
    return CC_OK;
}

static int do_profile_get(struct worker *w, struct sq_req *r)
{
    int yes, rc = profile_exists(w, r, r->side, r->a, &yes);

    return rc != CC_OK ? rc : yes ? CC_OK : CC_E_NOTFOUND;
}

static int do_chat_open(struct worker *w, struct sq_req *r)
{
    char t[24];
    const char *ins[] = { r->a, r->b, r->c, t };
    const char *pair[] = { r->b, r->c };
    PGresult *res;
    int yes, rc;

    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        rc = profile_exists(w, r, side, side == CC_SIDE_PATIENT ? r->b : r->c,
                            &yes);
        if (rc != CC_OK)
            return rc;
        if (!yes) {
            r->res.missing_side = side;
            return CC_E_NOTFOUND;
        }
    }
    snprintf(t, sizeof t, "%lld", (long long)r->t);
    res = run(w, S_CHAT_INSERT, 4, ins);
    if (!ok_cmd(res))
        return fail(w, r, res);
    r->res.created = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = run(w, S_CHAT_BY_PAIR, 2, pair);
    if (!ok_rows(res) || PQntuples(res) != 1)
        return fail(w, r, res);
    read_chat(res, 0, sq_one_chat(r));
    PQclear(res);
    return CC_OK;
}

static int do_chat_get(struct worker *w, struct sq_req *r)
{
    const char *p[] = { r->a, opt_id(r->vpat), opt_id(r->vpro) };
    PGresult *res = run(w, S_CHAT_GET, 3, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    read_chat(res, 0, sq_one_chat(r));
    PQclear(res);
    return CC_OK;
}

static int do_chat_list(struct worker *w, struct sq_req *r)
{
    char cur[24], lim[24];
    const char *cnt[] = { opt_id(r->vpat), opt_id(r->vpro) };
    const char *p[] = { opt_id(r->vpat), opt_id(r->vpro), cur,
                        r->after ? r->c
                                 : r->cursor_us ? opt_id(r->a) : NULL,
                        lim };
    PGresult *res = run(w, S_CHAT_COUNT, 2, cnt);
    int rows;

    if (!ok_rows(res))
        return fail(w, r, res);
    r->res.count = col_i64(res, 0, 0);
    PQclear(res);
    snprintf(cur, sizeof cur, "%lld",
             (long long)(r->after ? r->after : r->cursor_us));
    snprintf(lim, sizeof lim, "%lld", (long long)r->limit + 1);
    res = run(w, r->after ? S_CHAT_NEWER : S_CHAT_LIST, 5, p);
    if (!ok_rows(res))
        return fail(w, r, res);
    rows = PQntuples(res);
    sq_alloc_chats(r, (size_t)rows);
    for (int i = 0; i < rows && r->n < r->limit; i++)
        read_chat(res, i, &r->chats[r->n++]);
    r->res.more = rows > (int)r->limit;
    PQclear(res);
    sq_finish_chats(r, r->after > 0);
    return CC_OK;
}

/* The parameters of S_APPEND for r; t holds the time's text. */
static void append_params(const struct sq_req *r, char t[24],
                          const char *p[6])
{
    snprintf(t, 24, "%lld", (long long)r->t);
    p[0] = r->b;
    p[1] = t;
    p[2] = r->a;
    p[3] = side_str(r->side);
    p[4] = r->c;
    p[5] = r->content;
}

/* S_APPEND's answer: the stored message, or no row (no such chat). */
static int append_result(struct worker *w, struct sq_req *r, PGresult *res)
{
    int64_t n;

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    n = col_i64(res, 0, 0);
    PQclear(res);
    sq_append_result(r, n);
    return CC_OK;
}

/* The message r's client_id names, if stored: CC_OK with it as r's
 * result (res.duplicate set), 1 when there is none, or an error.  Two
 * nodes storing one client_id at once: the unique index fails the
 * second, whose client retries and is answered here. */
static int find_by_client(struct worker *w, struct sq_req *r)
{
    const char *p[] = { r->b, r->c, r->cid };
    PGresult *res = run(w, S_MSG_BY_CLIENT, 3, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 1;
    }
    sq_alloc_msgs(r, 1);
    r->nm = read_msg(res, 0, 0, r->b, &r->msgs[0]);
    PQclear(res);
    r->res.message = &r->msgs[0].m;
    r->res.duplicate = 1;
    return CC_OK;
}

static int do_msg_append(struct worker *w, struct sq_req *r)
{
    char t[24];
    const char *p[7];
    int rc;

    if (r->cid[0] && (rc = find_by_client(w, r)) != 1)
        return rc;
    append_params(r, t, p);
    p[6] = opt_id(r->cid);
    return append_result(w, r, run(w, S_APPEND, 7, p));
}

static int do_mark_read(struct worker *w, struct sq_req *r)
{
    const char *g[] = { r->b };
    const char *p[] = { r->b, side_str(r->side) };
    PGresult *res = run(w, S_CHAT_EXISTS, 1, g);
    int found;

    if (!ok_rows(res))
        return fail(w, r, res);
    found = PQntuples(res) > 0;
    PQclear(res);
    if (!found)
        return CC_E_NOTFOUND;
    res = run(w, S_MARK_READ, 2, p);
    if (!ok_cmd(res))
        return fail(w, r, res);
    r->res.count = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return CC_OK;
}

static int do_msg_purge(struct worker *w, struct sq_req *r)
{
    char t[24], lim[24];
    const char *p[] = { t, lim };
    PGresult *res;

    snprintf(t, sizeof t, "%lld", (long long)r->t);
    snprintf(lim, sizeof lim, "%lu", (unsigned long)r->limit);
    res = run(w, S_PURGE, 2, p);
    if (!ok_rows(res) || PQntuples(res) != 1)
        return fail(w, r, res);
    r->res.count = col_i64(res, 0, 0);
    r->res.more = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    return CC_OK;
}

/* r->after from the seq of message r->a (after_id): CC_OK, or
 * CC_E_NOTFOUND when the chat has no such message. */
static int seq_of(struct worker *w, struct sq_req *r)
{
    const char *p[] = { r->b, r->a };
    PGresult *res = run(w, S_MSG_SEQ, 2, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    r->after = col_i64(res, 0, 0);
    PQclear(res);
    return CC_OK;
}

static int do_msg_list(struct worker *w, struct sq_req *r)
{
    char cur[24], lim[24];
    const char *p[] = { r->b, cur, lim };
    int desc = r->before > 0, rows, rc;
    size_t n = 0;
    PGresult *res;

    if (r->a[0] && (rc = seq_of(w, r)) != CC_OK)
        return rc;
    snprintf(cur, sizeof cur, "%lld",
             (long long)(desc ? r->before : r->after));
    snprintf(lim, sizeof lim, "%lld", (long long)r->limit + 1);
    res = run(w, desc ? S_MSG_BEFORE : S_MSG_AFTER, 3, p);
    if (!ok_rows(res))
        return fail(w, r, res);
    rows = PQntuples(res);
    if (rows == 0) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    r->res.count = col_i64(res, 0, 0);
    sq_alloc_msgs(r, (size_t)rows);
    for (int i = 0; i < rows && n < r->limit; i++)
        if (read_msg(res, i, 1, r->b, &r->msgs[n]))
            r->nm = ++n;
    r->res.more = rows > (int)r->limit;
    PQclear(res);
    sq_finish_msgs(r, n, desc);
    return CC_OK;
}

static int run_op(struct worker *w, struct sq_req *r)
{
    switch (r->op) {
    case SQ_PROFILE_PUT: return do_profile_put(w, r);
    case SQ_CHAT_OPEN: return do_chat_open(w, r);
    case SQ_MSG_APPEND: return do_msg_append(w, r);
    case SQ_MARK_READ: return do_mark_read(w, r);
    case SQ_MSG_PURGE: return do_msg_purge(w, r);
    case SQ_PROFILE_GET: return do_profile_get(w, r);
    case SQ_CHAT_GET: return do_chat_get(w, r);
    case SQ_CHAT_LIST: return do_chat_list(w, r);
    default: return do_msg_list(w, r);
    }
}

/* ------------------------------------------------------------ workers */

static void fail_group(struct sq_req *group, int status, const char *why)
{
    for (struct sq_req *r = group; r; r = r->next) {
        r->status = status;
        snprintf(r->error, sizeof r->error, "postgres: %s", why);
    }
}

/* The next result of w's pipeline and the NULL that ends it; an error
 * that means the connection is lost is noted (note_lost). */
static PGresult *pipe_result(struct worker *w)
{
    PGresult *res = PQgetResult(w->conn), *end;

    if (res && PQresultStatus(res) != PGRES_PIPELINE_SYNC)
        while ((end = PQgetResult(w->conn)))
            PQclear(end);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR)
        note_lost(w, res);
    return res;
}

/* The appends of a pipelined group, by chat. */
struct pipe_plan {
    int n, n_chats;
    struct sq_req *req[PIPE_MAX];       /* in group order */
    int order[PIPE_MAX];                /* indexes into req, by chat */
    int chat[PIPE_MAX];                 /* req[i]'s chat: index in bumps */
    int64_t back[PIPE_MAX];             /* seq = new last_seq - back */
    int64_t last[PIPE_MAX];             /* a chat's new last_seq, or -1 */
};

static const struct pipe_plan *sort_plan;

static int by_chat(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int c = strcmp(sort_plan->req[x]->b, sort_plan->req[y]->b);

    return c ? c : x - y;
}

/* Order the group by chat and count each chat's appends: pl->chat and
 * pl->back for each request, pl->n_chats. */
static void plan_group(struct pipe_plan *pl, struct sq_req *group)
{
    int start = 0;

    pl->n = pl->n_chats = 0;
    for (struct sq_req *r = group; r; r = r->next) {
        pl->order[pl->n] = pl->n;
        pl->req[pl->n++] = r;
    }
    sort_plan = pl;     /* the writer thread is the only caller */
    qsort(pl->order, (size_t)pl->n, sizeof pl->order[0], by_chat);
    for (int i = 1; i <= pl->n; i++) {
        if (i < pl->n && strcmp(pl->req[pl->order[i]]->b,
                                pl->req[pl->order[i - 1]]->b) == 0)
            continue;
        for (int j = start; j < i; j++) {
            pl->back[pl->order[j]] = i - 1 - j;
            pl->chat[pl->order[j]] = pl->n_chats;
        }
        pl->last[pl->n_chats++] = -1;
        start = i;
    }
}

/* PostgreSQL arrays in the binary format (array_recv), built one after
 * the other in the writer's buffer: the server copies each element
 * instead of parsing its text (array_in, uuid_in and strtoull were 9% of
 * PostgreSQL's time under the two-node flood).  a->off[k] is where the
 * k-th begins, a->len[k] its size.  An array is: dimensions (1), a flag
 * (no nulls), the element type, then the dimension's size and lower
 * bound; then each element as its length and its bytes, integers big
 * endian. */
#define OID_INT8 20
#define OID_INT2 21
#define OID_TEXT 25
#define OID_UUID 2950

struct arrays {
    struct worker *w;
    size_t n;
    int k, oom, bad, count;
    size_t off[10];
    int len[10];
};

static void arr_put(struct arrays *a, const void *s, size_t len)
{
    struct worker *w = a->w;

    if (a->oom)
        return;
    if (a->n + len > w->arr_cap) {
        size_t cap = w->arr_cap ? w->arr_cap : 16384;
        char *p;

        while (cap < a->n + len)
            cap *= 2;
        if (!(p = realloc(w->arr, cap))) {
            a->oom = 1;
            return;
        }
        w->arr = p;
        w->arr_cap = cap;
    }
    memcpy(w->arr + a->n, s, len);
    a->n += len;
}

/* v as n bytes, big endian. */
static void arr_be(struct arrays *a, uint64_t v, int n)
{
    unsigned char b[8];

    for (int i = n - 1; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)(v & 0xff);
    arr_put(a, b, (size_t)n);
}

static void arr_begin(struct arrays *a, uint32_t elem_oid)
{
    a->off[a->k] = a->n;
    a->count = 0;
    arr_be(a, 1, 4);            /* dimensions */
    arr_be(a, 0, 4);            /* no null element */
    arr_be(a, elem_oid, 4);
    arr_be(a, 0, 4);            /* the size: arr_end() */
    arr_be(a, 1, 4);            /* lower bound */
}

static void arr_end(struct arrays *a)
{
    int k = a->k++;

    if (a->oom)
        return;
    for (int i = 0; i < 4; i++)
        a->w->arr[a->off[k] + 12 + (size_t)i] =
            (char)((unsigned)a->count >> (24 - 8 * i));
    a->len[k] = (int)(a->n - a->off[k]);
}

static void arr_int(struct arrays *a, int64_t v, int bytes)
{
    a->count++;
    arr_be(a, (uint64_t)bytes, 4);
    arr_be(a, (uint64_t)v, bytes);
}

static void arr_text(struct arrays *a, const char *s)
{
    size_t len = strlen(s);

    a->count++;
    arr_be(a, len, 4);
    arr_put(a, s, len);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A canonical UUID's 16 bytes; a->bad when it is not one (the group
 * then runs the slow way, where PostgreSQL names what is wrong). */
static void arr_uuid(struct arrays *a, const char *s)
{
    unsigned char u[16];
    int j = 0;

    if (strlen(s) != 36) {
        a->bad = 1;
        return;
    }
    for (int i = 0; i < 36; i++) {
        int hi, lo;

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                break;
            continue;
        }
        if ((hi = hexval(s[i])) < 0 || (lo = hexval(s[++i])) < 0)
            break;
        u[j++] = (unsigned char)(hi << 4 | lo);
    }
    if (j != 16) {
        a->bad = 1;
        return;
    }
    a->count++;
    arr_be(a, 16, 4);
    arr_put(a, u, 16);
}

/* Fill p[0..2] for S_BUMPS (the group's chats in order, how many appends
 * each, the newest time) and p[3..9] for S_APPEND_ALL (each request, by
 * chat), len[] their sizes.  0, or -1 (out of memory, or an id that is
 * not a UUID). */
static int group_arrays(struct worker *w, const struct pipe_plan *pl,
                        const char *p[10], int len[10])
{
    static const uint32_t bump_oid[3] = { OID_UUID, OID_INT8, OID_INT8 };
    static const uint32_t all_oid[7] = { OID_UUID, OID_INT8, OID_UUID,
                                         OID_INT2, OID_UUID, OID_TEXT,
                                         OID_INT8 };
    struct arrays a = { .w = w };

    for (int col = 0; col < 3; col++) {
        arr_begin(&a, bump_oid[col]);
        for (int i = 0; i < pl->n; i += (int)pl->back[pl->order[i]] + 1) {
            /* a chat's first request: its back + 1 are the chat's */
            int64_t n = pl->back[pl->order[i]];
            const struct sq_req *last = pl->req[pl->order[i + n]];

            if (col == 0)
                arr_uuid(&a, last->b);
            else
                arr_int(&a, col == 1 ? n + 1 : last->t, 8);
        }
        arr_end(&a);
    }
    for (int col = 0; col < 7; col++) {
        arr_begin(&a, all_oid[col]);
        for (int i = 0; i < pl->n; i++) {
            const struct sq_req *r = pl->req[pl->order[i]];

            if (col == 0 || col == 2 || col == 4)
                arr_uuid(&a, col == 0 ? r->b : col == 2 ? r->a : r->c);
            else if (col == 5)
                arr_text(&a, r->content);
            else if (col == 3)
                arr_int(&a, r->side, 2);
            else
                arr_int(&a, col == 1 ? pl->back[pl->order[i]] : r->t, 8);
        }
        arr_end(&a);
    }
    if (a.oom || a.bad)
        return -1;
    for (int k = 0; k < 10; k++) {
        p[k] = w->arr + a.off[k];
        len[k] = a.len[k];
    }
    return 0;
}

/* S_BUMPS's answer: each chat's new last_seq, by its place (1-based) in
 * the group's chats; a chat that does not exist has no row. */
static int read_bumps(struct pipe_plan *pl, PGresult *res)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return 0;
    for (int row = 0; row < PQntuples(res); row++) {
        int64_t i = col_i64(res, row, 0);

        if (i < 1 || i > pl->n_chats)
            return 0;
        pl->last[i - 1] = col_i64(res, row, 1);
    }
    return 1;
}

/* A group of appends in one round trip (libpq pipeline mode) and three
 * statements whatever its size: BEGIN, lock the group's chats (in id
 * order: two nodes' groups lock the rows they share in the same order, no
 * deadlock), add each chat's count to its last_seq, insert every message
 * (from arrays: unnest), COMMIT, sync.  Each chat's row is written once
 * per group, not once per message (its indexes with it, and one dead row
 * version, not one per message), and the statements' fixed cost (most of
 * PostgreSQL's time when it was one insert per message) once per group.
 * An append that fails aborts the pipeline and with it the transaction,
 * so nothing is stored.  Returns 1 when committed (each request has its
 * result), 0 when not (requests rewound: run the group the slow way), -1
 * when the connection died. */
static int append_pipelined(struct worker *w, struct sq_req *group)
{
    static struct pipe_plan pl; /* writer thread only */
    PGconn *c = w->conn;
    PGresult *res;
    char lock[16], bumps[16], all[16];
    static const int binary[10] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    const char *p[10];
    int len[10], sent, ok, found = 0;

    plan_group(&pl, group);
    if (group_arrays(w, &pl, p, len) < 0 || !PQenterPipelineMode(c))
        return 0;
    sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
           PQsendQueryPrepared(c, stmt_name(S_LOCK_CHATS, lock), 1, p,
                               len, binary, 0) &&
           PQsendQueryPrepared(c, stmt_name(S_BUMPS, bumps), 3, p, len,
                               binary, 0) &&
           PQsendQueryPrepared(c, stmt_name(S_APPEND_ALL, all), 7, p + 3,
                               len + 3, binary, 0) &&
           PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) &&
           PQpipelineSync(c);
    if (!sent) {
        /* Nothing was committed; a connection left in pipeline mode
         * cannot be used again: it is replaced (-1). */
        return PQexitPipelineMode(c) && PQstatus(c) == CONNECTION_OK
                   ? 0 : -1;
    }
    res = pipe_result(w);                       /* BEGIN */
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    res = pipe_result(w);                       /* the locks */
    ok = ok && PQresultStatus(res) == PGRES_TUPLES_OK;
    PQclear(res);
    res = pipe_result(w);
    ok = ok && read_bumps(&pl, res);
    PQclear(res);
    for (int i = 0; i < pl.n; i++)
        found += pl.last[pl.chat[i]] >= 0;
    res = pipe_result(w);                       /* the messages */
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK &&
         strtol(PQcmdTuples(res), NULL, 10) == found;
    PQclear(res);
    res = pipe_result(w);                       /* COMMIT */
    ok = ok && PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    /* Then the sync. */
    while ((res = PQgetResult(c)) &&
           PQresultStatus(res) != PGRES_PIPELINE_SYNC)
        PQclear(res);
    PQclear(res);
    if (!PQexitPipelineMode(c) || PQstatus(c) != CONNECTION_OK ||
        (!ok && w->lost[0]))
        return -1;
    if (ok) {
        for (int i = 0; i < pl.n; i++) {
            int64_t last = pl.last[pl.chat[i]];

            if (last < 0) {
                pl.req[i]->status = CC_E_NOTFOUND;
            } else {
                pl.req[i]->status = CC_OK;
                sq_append_result(pl.req[i], last - pl.back[i]);
            }
        }
        return 1;
    }
    LOG(w->pg, CC_LOG_DEBUG, "a write of a pipelined group failed: the "
        "group runs again, a savepoint per request");
    if (PQtransactionStatus(c) != PQTRANS_IDLE) {
        char err[300];
        command(c, "ROLLBACK", err, sizeof err);
    }
    sq_group_rewind(group);
    return 0;
}

/* 1 when the group is only appends without a client's id (those look
 * for it first), few enough for one pipeline. */
static int pipelinable(const struct sq_req *group)
{
    int n = 0;

    for (; group; group = group->next)
        if (group->op != SQ_MSG_APPEND || group->cid[0] || ++n > PIPE_MAX)
            return 0;
    return 1;
}

/* One group of writes in one transaction: appends pipelined in one round
 * trip; otherwise (other writes, or an append that failed) a savepoint
 * per request, so one failing request rolls back only itself.  Returns -1
 * when the connection died (the group has failed). */
static int write_txn(struct worker *w, struct sq_req *group)
{
    char err[300];
    struct sq_req *r;

    /* A group of one append (a quiet node's usual group): S_APPEND is one
     * statement and its own transaction, so one round trip and none of
     * the BEGIN, locks and COMMIT a group needs. */
    if (!group->next && group->op == SQ_MSG_APPEND) {
        group->status = run_op(w, group);
        if (group->status != CC_E_UNAVAIL)
            return 0;
        fail_group(group, CC_E_UNAVAIL, "database unavailable");
        return -1;
    }
    if (pipelinable(group)) {
        switch (append_pipelined(w, group)) {
        case 1:
            return 0;
        case -1:
            fail_group(group, CC_E_UNAVAIL, "database unavailable");
            return -1;
        default:
            break;
        }
    }
    if (wcommand(w, "BEGIN", err, sizeof err) < 0)
        goto failed;
    for (r = group; r; r = r->next) {
        if (wcommand(w, "SAVEPOINT item", err, sizeof err) < 0)
            goto failed;
        r->status = run_op(w, r);
        if (r->status == CC_E_UNAVAIL)
            goto failed;
        if (wcommand(w, r->status == CC_OK
                            ? "RELEASE item"
                            : "ROLLBACK TO item; RELEASE item",
                     err, sizeof err) < 0)
            goto failed;
    }
    if (wcommand(w, "COMMIT", err, sizeof err) == 0)
        return 0;
failed:
    if (conn_lost(w)) {
        fail_group(group, CC_E_UNAVAIL, "database unavailable");
        return -1;
    }
    /* Nothing of the group was stored: every request fails. */
    LOG(w->pg, CC_LOG_ERROR, "commit failed: %s", err);
    command(w->conn, "ROLLBACK", err, sizeof err);
    fail_group(group, CC_E_FAIL, "commit failed");
    return 0;
}

/* A group of writes.  Purges run first, each alone in its own
 * transaction, and then the rest of the group in one (write_txn): the
 * appends around a purge still go pipelined, in one commit, and a large
 * delete is no part of their transaction.  The group is then linked
 * again in queue order, which keeps its head (the lowest qseq) first.
 * Returns -1 when the connection died (all that was not committed has
 * failed). */
static int write_group(struct worker *w, struct sq_req *group)
{
    struct sq_req *purges = NULL, *rest = NULL, **pt = &purges, **rt = &rest;
    struct sq_req *r, *next, **from, **tail = &group;
    int rc = 0;

    for (r = group; r && r->op != SQ_MSG_PURGE; r = r->next)
        ;
    if (!r)
        return write_txn(w, group);
    for (r = group; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->op == SQ_MSG_PURGE) {
            *pt = r;
            pt = &r->next;
        } else {
            *rt = r;
            rt = &r->next;
        }
    }
    for (r = purges; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (rc == 0)
            rc = write_txn(w, r);
        else
            fail_group(r, CC_E_UNAVAIL, "database unavailable");
        r->next = next;
    }
    if (rest && rc == 0)
        rc = write_txn(w, rest);
    else if (rest)
        fail_group(rest, CC_E_UNAVAIL, "database unavailable");
    while (purges || rest) {
        from = !rest || (purges && purges->qseq < rest->qseq) ? &purges
                                                              : &rest;
        *tail = *from;
        *from = (*from)->next;
        tail = &(*tail)->next;
    }
    *tail = NULL;
    return rc;
}

/* One group of reads, each its own statement (one snapshot each).  A
 * read whose connection was lost under it runs once more on a fresh
 * one. */
static int read_group(struct worker *w, struct sq_req *group)
{
    for (struct sq_req *r = group; r; r = r->next) {
        r->status = run_op(w, r);
        if (r->status == CC_E_UNAVAIL &&
            replace(w, w->lost[0] ? w->lost : "lost during a read") == 0) {
            sq_req_rewind(r);
            r->status = run_op(w, r);
        }
        if (r->status == CC_E_UNAVAIL) {
            fail_group(group, CC_E_UNAVAIL, "database unavailable");
            return -1;
        }
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pg *pg = w->pg;
    struct sq_req *group;
    const char *why;

    pthread_setname_np(pthread_self(), w->writer ? "pg-writer" : "pg-reader");
    for (;;) {
        if (!w->conn && reconnect(w, "no connection") < 0)
            break;
        group = sq_queue_take(w->q, w->writer ? pg->batch_max : 16);
        if (!group)
            break;
        if ((why = conn_unusable(w)) && replace(w, why) < 0) {
            fail_group(group, CC_E_UNAVAIL, "database unavailable");
            pg->base.host->post(pg->base.ctx, sq_deliver, group);
            if (reconnect(w, "the server closed it") < 0)
                break;
            continue;
        }
        if ((w->writer ? write_group(w, group) : read_group(w, group)) < 0) {
            pg->base.host->post(pg->base.ctx, sq_deliver, group);
            if (reconnect(w, "server closed the connection") < 0)
                break;
            continue;
        }
        pg->base.host->post(pg->base.ctx, sq_deliver, group);
    }
    return NULL;
}

/* ------------------------------------------------------- lifecycle */

static int pg_start(void *inst)
{
    struct pg *pg = inst;
    char err[300];

    sq_queue_init(&pg->wq, pg->queue_max);
    sq_queue_init(&pg->rq, pg->queue_max);
    pg->writer = (struct worker){ .pg = pg, .q = &pg->wq, .writer = 1 };
    /* Connect everything now: a wrong password or database name is a
     * start-up error, not a stream of 503s. */
    pg->writer.conn = connect_db(pg, 0, err, sizeof err);
    if (!pg->writer.conn) {
        LOG(pg, CC_LOG_ERROR, "cannot connect (%s): %s",
            pg->conninfo_source, err);
        goto fail;
    }
    if (migrate(pg, pg->writer.conn) < 0)
        goto fail;
    if (prepare_all(pg->writer.conn, err, sizeof err) < 0) {
        LOG(pg, CC_LOG_ERROR, "%s", err);
        goto fail;
    }
    for (int i = 0; i < pg->n_readers; i++) {
        struct worker *w = &pg->readers[i];
        *w = (struct worker){ .pg = pg, .q = &pg->rq };
        w->conn = connect_db(pg, 1, err, sizeof err);
        if (!w->conn) {
            LOG(pg, CC_LOG_ERROR, "cannot connect reader %d: %s", i, err);
            goto fail;
        }
    }
    set_up(&pg->writer, 1);
    for (int i = 0; i < pg->n_readers; i++)
        set_up(&pg->readers[i], 1);
    if (pthread_create(&pg->writer.thread, NULL, worker_main,
                       &pg->writer) != 0)
        abort();
    for (int i = 0; i < pg->n_readers; i++)
        if (pthread_create(&pg->readers[i].thread, NULL, worker_main,
                           &pg->readers[i]) != 0)
            abort();
    pg->running = 1;
    LOG(pg, CC_LOG_INFO, "connected to PostgreSQL %d (server %s), "
        "1 writer and %d reader connection%s",
        PQserverVersion(pg->writer.conn) / 10000,
        PQparameterStatus(pg->writer.conn, "server_version"),
        pg->n_readers, pg->n_readers == 1 ? "" : "s");
    return CC_OK;
fail:
    PQfinish(pg->writer.conn);
    pg->writer.conn = NULL;
    for (int i = 0; i < pg->n_readers; i++) {
        PQfinish(pg->readers[i].conn);
        pg->readers[i].conn = NULL;
    }
    sq_queue_destroy(&pg->wq);
    sq_queue_destroy(&pg->rq);
    return CC_E_FAIL;
}

/* Drain the queues (while connected), join, answer leftovers, done. */
static void pg_stop(void *inst, cc_post_cb done, void *arg)
{
    struct pg *pg = inst;

    if (pg->running) {
        sq_queue_stop(&pg->wq);
        sq_queue_stop(&pg->rq);
        pthread_join(pg->writer.thread, NULL);
        for (int i = 0; i < pg->n_readers; i++)
            pthread_join(pg->readers[i].thread, NULL);
        /* A worker that stopped while reconnecting left its queue. */
        sq_queue_fail_all(&pg->base, &pg->wq, CC_E_UNAVAIL,
                          "postgres: shutting down");
        sq_queue_fail_all(&pg->base, &pg->rq, CC_E_UNAVAIL,
                          "postgres: shutting down");
        pg->running = 0;
    }
    pg->base.host->post(pg->base.ctx, done, arg);
}

static void pg_destroy(void *inst)
{
    struct pg *pg = inst;

    if (pg->writer.q) {
        PQfinish(pg->writer.conn);
        for (int i = 0; i < pg->n_readers; i++)
            PQfinish(pg->readers[i].conn);
        sq_queue_destroy(&pg->wq);
        sq_queue_destroy(&pg->rq);
    }
    pg_free(pg);
}

/* Queued even while the workers are down: a waiting request makes a
 * reconnecting worker try at once, and is failed if that attempt fails
 * (reconnect). */
static int pg_submit(struct sq_backend *b, struct sq_req *r)
{
    struct pg *pg = (struct pg *)b;

    return sq_queue_put(SQ_IS_WRITE(r->op) ? &pg->wq : &pg->rq, r);
}

static const void *pg_get_interface(void *inst, uint32_t kind)
{
    (void)inst;
    return kind == CC_KIND_STORAGE ? &sq_storage_api : NULL;
}

/* What the workers last found: a connection that works (GET /readyz
 * also reads through storage, which tells an idle outage). */
static int pg_health(void *inst, char *why, size_t why_len)
{
    struct pg *pg = inst;

    if (atomic_load(&pg->writer_up) && atomic_load(&pg->readers_up) > 0)
        return CC_OK;
    snprintf(why, why_len, "database unreachable");
    return CC_E_UNAVAIL;
}

static void pg_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    struct pg *pg = inst;

    sq_queue_metrics(&pg->wq, &pg->rq, emit, arg);
    emit(arg, "postgres_writer_up", "1 while the writer's connection works.",
         CC_METRIC_GAUGE, atomic_load(&pg->writer_up));
    emit(arg, "postgres_readers_up", "Reader connections that work.",
         CC_METRIC_GAUGE, atomic_load(&pg->readers_up));
}

static const struct cc_plugin pg_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_STORAGE,
    .name = "postgres",
    .version = "1.0.0",
    .create = pg_create,
    .start = pg_start,
    .reload = NULL,
    .stop = pg_stop,
    .destroy = pg_destroy,
    .get_interface = pg_get_interface,
    .health = pg_health,
    .metrics = pg_metrics,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) ||
        host->struct_size < offsetof(struct cc_host_api, post) +
                                sizeof host->post)
        return CC_E_ABI;
    *out = &pg_plugin;
    return CC_OK;
}
