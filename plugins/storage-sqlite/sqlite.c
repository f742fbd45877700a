/*
 * sqlite.c - the storage plugin `sqlite`: the embedded default backend.
 *
 * Threads (DESIGN invariant 4: the event loop never waits on disk):
 *  - the loop thread validates a request, copies what it needs into a
 *    struct req and queues it; it never touches SQLite;
 *  - one writer thread owns the read-write connection and drains its
 *    queue in groups: one BEGIN IMMEDIATE ... COMMIT per group, with a
 *    SAVEPOINT per request so one failing request rolls back only itself
 *    (group commit: one fsync for many messages);
 *  - one reader thread owns a read-only connection (WAL lets it read
 *    while the writer commits) and answers the queries.
 * Results travel back with one host->post per group, and callbacks run on
 * the loop in queue order, so messages of a chat are acknowledged in the
 * order they were appended.  A request's callback runs only after its
 * COMMIT, so anything read after that sees it.
 *
 * Only prepared statements with bound parameters; never SQL built from
 * data.  Built like any third-party plugin: public headers only.
 */
#include <carechat/storage.h>

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1

enum op {
    OP_PROFILE_PUT, OP_CHAT_OPEN, OP_MSG_APPEND, OP_MARK_READ, /* writes */
    OP_PROFILE_GET, OP_CHAT_GET, OP_CHAT_LIST, OP_MSG_LIST     /* reads */
};

/* A message or chat as handed to a callback, with the memory behind it. */
struct omsg {
    struct cc_message m;
    char id[37], chat[37], sender[37];
    char *content;
};

struct ochat {
    struct cc_chat c;
    char id[37], pat[37], pro[37];
    struct omsg last;
};

/* One request, from the loop to a worker and back. */
struct req {
    enum op op;
    struct sq *sq;
    cc_store_cb cb;
    void *arg;
    /* inputs (copies) */
    int32_t side;
    char a[37], b[37], c[37];   /* ids, by op */
    char vpat[37], vpro[37];    /* viewer */
    char *user;
    char *content;
    size_t content_len;
    int64_t t, after, before, cursor_us;
    uint32_t limit;
    /* outputs */
    int status;
    char error[160];
    struct cc_store_result res;
    struct ochat *chats;
    const struct cc_chat **chat_ptrs;
    struct omsg *msgs;
    const struct cc_message **msg_ptrs;
    size_t n;                   /* chats filled */
    size_t nm;                  /* messages filled */
    struct req *next;
};

struct queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct req *head, *tail;
    size_t n;
    int stop;
};

/* Statements, prepared once per connection. */
enum stmt {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
    S_PROFILE_PUT, S_PROFILE_GET, S_CHAT_INSERT, S_CHAT_BY_PAIR, S_CHAT_GET,
    S_LAST_MSG, S_UNREAD, S_MSG_INSERT, S_CHAT_BUMP, S_MARK_READ,
    S_CHAT_LIST, S_CHAT_COUNT, S_MSG_AFTER, S_MSG_BEFORE, S_READ_BEGIN,
    S_READ_END, N_STMT
};

static const char *const sql[N_STMT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT item",
    [S_RELEASE] = "RELEASE item",
    [S_ROLLBACK_TO] = "ROLLBACK TO item",
    [S_PROFILE_PUT] = "INSERT INTO profiles(side, id, user_id, created_at) "
                      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    [S_PROFILE_GET] = "SELECT 1 FROM profiles WHERE side = ?1 AND id = ?2",
    [S_CHAT_INSERT] = "INSERT INTO chats(id, patient_id, professional_id, "
                      "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) "
                      "ON CONFLICT(patient_id, professional_id) DO NOTHING",
    [S_CHAT_BY_PAIR] = "SELECT id, patient_id, professional_id, created_at, "
                       "updated_at, last_seq FROM chats "
                       "WHERE patient_id = ?1 AND professional_id = ?2",
    [S_CHAT_GET] = "SELECT id, patient_id, professional_id, created_at, "
                   "updated_at, last_seq FROM chats WHERE id = ?1",
    [S_LAST_MSG] = "SELECT id, seq, sender_type, sender_id, content, "
                   "created_at, is_read FROM messages "
                   "WHERE chat_id = ?1 AND seq = ?2",
    [S_UNREAD] = "SELECT count(*) FROM messages WHERE chat_id = ?1 "
                 "AND sender_type = ?2 AND is_read = 0",
    [S_MSG_INSERT] = "INSERT INTO messages(chat_id, seq, id, sender_type, "
                     "sender_id, content, created_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_CHAT_BUMP] = "UPDATE chats SET last_seq = ?2, updated_at = ?3 "
                    "WHERE id = ?1",
    [S_MARK_READ] = "UPDATE messages SET is_read = 1 WHERE chat_id = ?1 "
                    "AND sender_type <> ?2 AND is_read = 0",
    [S_CHAT_LIST] = "SELECT id, patient_id, professional_id, created_at, "
                    "updated_at, last_seq FROM chats WHERE id IN ("
                    "SELECT id FROM chats WHERE patient_id = ?1 UNION "
                    "SELECT id FROM chats WHERE professional_id = ?2) "
                    "AND (?3 = 0 OR updated_at < ?3 OR "
                    "(updated_at = ?3 AND id < ?4)) "
                    "ORDER BY updated_at DESC, id DESC LIMIT ?5",
    [S_CHAT_COUNT] = "SELECT count(*) FROM (SELECT id FROM chats WHERE "
                     "patient_id = ?1 UNION SELECT id FROM chats WHERE "
                     "professional_id = ?2)",
    [S_MSG_AFTER] = "SELECT id, seq, sender_type, sender_id, content, "
                    "created_at, is_read FROM messages WHERE chat_id = ?1 "
                    "AND seq > ?2 ORDER BY seq LIMIT ?3",
    [S_MSG_BEFORE] = "SELECT id, seq, sender_type, sender_id, content, "
                     "created_at, is_read FROM messages WHERE chat_id = ?1 "
                     "AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_READ_BEGIN] = "BEGIN",
    [S_READ_END] = "COMMIT",
};

/* Schema version 1.  Ids are canonical UUID text, times microseconds. */
static const char schema_v1[] =
    "CREATE TABLE profiles ("
    " side INTEGER NOT NULL, id TEXT NOT NULL, user_id TEXT,"
    " created_at INTEGER NOT NULL, PRIMARY KEY (side, id)) WITHOUT ROWID;"
    "CREATE TABLE chats ("
    " id TEXT PRIMARY KEY, patient_id TEXT NOT NULL,"
    " professional_id TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (patient_id, professional_id));"
    "CREATE INDEX chats_by_patient ON chats (patient_id, updated_at, id);"
    "CREATE INDEX chats_by_professional"
    " ON chats (professional_id, updated_at, id);"
    "CREATE TABLE messages ("
    " chat_id TEXT NOT NULL REFERENCES chats (id), seq INTEGER NOT NULL,"
    " id TEXT NOT NULL UNIQUE, sender_type INTEGER NOT NULL,"
    " sender_id TEXT NOT NULL, content TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, is_read INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (chat_id, seq)) WITHOUT ROWID;"
    "CREATE INDEX messages_unread ON messages (chat_id, sender_type)"
    " WHERE is_read = 0;";

struct db {
    sqlite3 *h;
    sqlite3_stmt *st[N_STMT];
};

struct sq {
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    char *path;
    int busy_timeout;
    int batch_max;
    size_t queue_max;
    int full_sync;
    struct db w, r;
    struct queue wq, rq;
    pthread_t writer, reader;
    int running;
};

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n, sz);
    if (!p)
        abort();
    return p;
}

static void copy_id(char dst[37], const char *src)
{
    snprintf(dst, 37, "%s", src ? src : "");
}

/* ----------------------------------------------------------- config */

static int parse_int(const char *v, long min, long max, long *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max)
        return -1;
    *out = n;
    return 0;
}

static int cfg_key(void *arg, const char *key, const char *value,
                   const char **reason)
{
    struct sq *sq = arg;
    long n;

    if (strcmp(key, "path") == 0) {
        if (!value[0]) {
            *reason = "needs a file name";
            return CC_E_INVAL;
        }
        free(sq->path);
        sq->path = strdup(value);
    } else if (strcmp(key, "busy_timeout") == 0) {
        if (parse_int(value, 0, 600000, &n) < 0) {
            *reason = "expected milliseconds, 0 to 600000";
            return CC_E_INVAL;
        }
        sq->busy_timeout = (int)n;
    } else if (strcmp(key, "batch_max") == 0) {
        if (parse_int(value, 1, 100000, &n) < 0) {
            *reason = "expected a number from 1 to 100000";
            return CC_E_INVAL;
        }
        sq->batch_max = (int)n;
    } else if (strcmp(key, "queue_max") == 0) {
        if (parse_int(value, 1, 100000000, &n) < 0) {
            *reason = "expected a number from 1 to 100000000";
            return CC_E_INVAL;
        }
        sq->queue_max = (size_t)n;
    } else if (strcmp(key, "synchronous") == 0) {
        if (strcmp(value, "normal") && strcmp(value, "full")) {
            *reason = "expected normal or full";
            return CC_E_INVAL;
        }
        sq->full_sync = strcmp(value, "full") == 0;
    } else {
        *reason = "unknown key (sqlite takes path, synchronous, "
                  "busy_timeout, batch_max, queue_max)";
        return CC_E_INVAL;
    }
    return CC_OK;
}

static int sq_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct sq *sq = xcalloc(1, sizeof *sq);

    sq->host = host;
    sq->ctx = ctx;
    sq->busy_timeout = 5000;
    sq->batch_max = 256;
    sq->queue_max = 65536;
    if (host->cfg_iter(ctx, cfg_key, sq) != CC_OK)
        goto fail;
    if (!sq->path) {
        host->cfg_error(ctx, NULL, "missing required key \"path\" (the "
                        "database file)");
        goto fail;
    }
    *inst = sq;
    return CC_OK;
fail:
    free(sq->path);
    free(sq);
    return CC_E_INVAL;
}

/* --------------------------------------------------------- database */

static void db_close(struct db *d)
{
    for (int i = 0; i < N_STMT; i++)
        sqlite3_finalize(d->st[i]);
    memset(d->st, 0, sizeof d->st);
    sqlite3_close(d->h);
    d->h = NULL;
}

/* The statement, reset and unbound, ready for binding. */
static sqlite3_stmt *stmt(struct db *d, enum stmt s)
{
    if (!d->st[s] &&
        sqlite3_prepare_v3(d->h, sql[s], -1, SQLITE_PREPARE_PERSISTENT,
                           &d->st[s], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(d->st[s]);
    sqlite3_clear_bindings(d->st[s]);
    return d->st[s];
}

static int exec_simple(struct db *d, enum stmt s)
{
    sqlite3_stmt *q = stmt(d, s);
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;

    if (q)
        sqlite3_reset(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static void bind_text(sqlite3_stmt *q, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(q, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, i);
}

/* Create or check the schema (writer connection, at start). */
static int migrate(struct sq *sq)
{
    sqlite3 *h = sq->w.h;
    sqlite3_stmt *q;
    int version = -1;
    char *err = NULL;

    if (sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &q, NULL) ==
            SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version < 0)
        goto fail;
    if (version > SCHEMA_VERSION) {
        sq->host->log(sq->ctx, CC_LOG_ERROR, "%s has schema version %d; "
                      "this plugin knows up to %d (a newer carechat made "
                      "it): refusing to touch it", sq->path, version,
                      SCHEMA_VERSION);
        return -1;
    }
    if (version == SCHEMA_VERSION)
        return 0;
    /* version 0: a new database */
    if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(h, schema_v1, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(h, "PRAGMA user_version = 1; COMMIT", NULL, NULL,
                     &err) != SQLITE_OK) {
        sq->host->log(sq->ctx, CC_LOG_ERROR, "%s: creating the schema "
                      "failed: %s", sq->path, err ? err : "?");
        sqlite3_free(err);
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    sq->host->log(sq->ctx, CC_LOG_INFO, "%s: created schema version %d",
                  sq->path, SCHEMA_VERSION);
    return 0;
fail:
    sq->host->log(sq->ctx, CC_LOG_ERROR, "%s: %s", sq->path,
                  sqlite3_errmsg(h));
    return -1;
}

static int db_open(struct sq *sq, struct db *d, int readonly)
{
    int flags = readonly ? SQLITE_OPEN_READONLY
                         : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    char pragmas[160];
    char *err = NULL;

    /* Each connection is used by one thread only. */
    if (sqlite3_open_v2(sq->path, &d->h, flags | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        sq->host->log(sq->ctx, CC_LOG_ERROR, "cannot open %s: %s", sq->path,
                      d->h ? sqlite3_errmsg(d->h) : "out of memory");
        db_close(d);
        return -1;
    }
    sqlite3_busy_timeout(d->h, sq->busy_timeout);
    snprintf(pragmas, sizeof pragmas, "%sPRAGMA foreign_keys = ON; "
             "PRAGMA synchronous = %s;",
             readonly ? "" : "PRAGMA journal_mode = WAL; ",
             sq->full_sync ? "FULL" : "NORMAL");
    if (sqlite3_exec(d->h, pragmas, NULL, NULL, &err) != SQLITE_OK) {
        sq->host->log(sq->ctx, CC_LOG_ERROR, "%s: %s", sq->path,
                      err ? err : sqlite3_errmsg(d->h));
        sqlite3_free(err);
        db_close(d);
        return -1;
    }
    return 0;
}

/* --------------------------------------------------------- row readers */

static void col_id(sqlite3_stmt *q, int i, char dst[37])
{
    copy_id(dst, (const char *)sqlite3_column_text(q, i));
}

/* A message row: id, seq, sender_type, sender_id, content, created_at,
 * is_read. */
static void read_msg(sqlite3_stmt *q, const char *chat_id, struct omsg *o)
{
    int n = sqlite3_column_bytes(q, 4);
    const void *p = sqlite3_column_text(q, 4);

    col_id(q, 0, o->id);
    copy_id(o->chat, chat_id);
    col_id(q, 3, o->sender);
    o->content = malloc((size_t)n + 1);
    if (!o->content)
        abort();
    memcpy(o->content, p ? p : "", (size_t)n);
    o->content[n] = '\0';
    o->m.struct_size = sizeof o->m;
    o->m.id = o->id;
    o->m.chat_id = o->chat;
    o->m.sender_id = o->sender;
    o->m.content = o->content;
    o->m.content_len = (size_t)n;
    o->m.seq = sqlite3_column_int64(q, 1);
    o->m.sender_type = sqlite3_column_int(q, 2);
    o->m.created_at_us = sqlite3_column_int64(q, 5);
    o->m.is_read = sqlite3_column_int(q, 6);
}

/* Fill last_message and unread_count of a chat row already read into o
 * (last_seq in seq).  viewer_side decides whose unread count. */
static int complete_chat(struct db *d, struct ochat *o, int64_t last_seq,
                         int viewer_side)
{
    sqlite3_stmt *q;
    int rc;

    if (last_seq > 0) {
        q = stmt(d, S_LAST_MSG);
        if (!q)
            return -1;
        sqlite3_bind_text(q, 1, o->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, last_seq);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW) {
            read_msg(q, o->id, &o->last);
            o->c.last_message = &o->last.m;
        }
        sqlite3_reset(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return -1;
    }
    if (viewer_side != CC_SIDE_NONE) {
        q = stmt(d, S_UNREAD);
        if (!q)
            return -1;
        sqlite3_bind_text(q, 1, o->id, -1, SQLITE_STATIC);
        sqlite3_bind_int(q, 2, viewer_side == CC_SIDE_PATIENT
                                   ? CC_SIDE_PROFESSIONAL : CC_SIDE_PATIENT);
        rc = sqlite3_step(q);
        if (rc == SQLITE_ROW)
            o->c.unread_count = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        if (rc != SQLITE_ROW)
            return -1;
    }
    return 0;
}

/* A chat row: id, patient, professional, created, updated, last_seq. */
static int64_t read_chat(sqlite3_stmt *q, struct ochat *o)
{
    col_id(q, 0, o->id);
    col_id(q, 1, o->pat);
    col_id(q, 2, o->pro);
    o->c.struct_size = sizeof o->c;
    o->c.id = o->id;
    o->c.patient_id = o->pat;
    o->c.professional_id = o->pro;
    o->c.created_at_us = sqlite3_column_int64(q, 3);
    o->c.updated_at_us = sqlite3_column_int64(q, 4);
    return sqlite3_column_int64(q, 5);
}

static int viewer_side_of(const struct req *r, const struct ochat *o)
{
    if (r->vpat[0] && strcmp(r->vpat, o->pat) == 0)
        return CC_SIDE_PATIENT;
    if (r->vpro[0] && strcmp(r->vpro, o->pro) == 0)
        return CC_SIDE_PROFESSIONAL;
    return CC_SIDE_NONE;
}

static struct ochat *one_chat(struct req *r)
{
    r->chats = xcalloc(1, sizeof *r->chats);
    r->n = 1;
    r->res.chat = &r->chats[0].c;
    return &r->chats[0];
}

/* Look a chat up by id into r (res.chat).  Returns SQLITE_ROW, DONE (not
 * found) or an error code. */
static int load_chat(struct db *d, struct req *r, const char *id,
                     int64_t *last_seq)
{
    sqlite3_stmt *q = stmt(d, S_CHAT_GET);
    int rc;

    if (!q)
        return SQLITE_ERROR;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *last_seq = read_chat(q, one_chat(r));
    sqlite3_reset(q);
    return rc;
}

/* ---------------------------------------------------------- the ops */

static int fail(struct req *r, struct db *d)
{
    snprintf(r->error, sizeof r->error, "sqlite: %s", sqlite3_errmsg(d->h));
    return CC_E_FAIL;
}

static int profile_exists(struct db *d, int side, const char *id, int *yes)
{
    sqlite3_stmt *q = stmt(d, S_PROFILE_GET);
    int rc;

    if (!q)
        return -1;
    sqlite3_bind_int(q, 1, side);
    sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    *yes = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int do_profile_put(struct db *d, struct req *r)
{
    sqlite3_stmt *q = stmt(d, S_PROFILE_PUT);

    if (!q)
        return fail(r, d);
    sqlite3_bind_int(q, 1, r->side);
    sqlite3_bind_text(q, 2, r->a, -1, SQLITE_STATIC);
    bind_text(q, 3, r->user);
    sqlite3_bind_int64(q, 4, r->t);
    if (sqlite3_step(q) != SQLITE_DONE) {
        sqlite3_reset(q);
        return fail(r, d);
    }
    sqlite3_reset(q);
    return CC_OK;
}

static int do_profile_get(struct db *d, struct req *r)
{
    int yes;

    if (profile_exists(d, r->side, r->a, &yes) < 0)
        return fail(r, d);
    return yes ? CC_OK : CC_E_NOTFOUND;
}

/* a = new id, b = patient, c = professional. */
static int do_chat_open(struct db *d, struct req *r)
{
    sqlite3_stmt *q;
    int yes, rc;
    int64_t last_seq;

    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        if (profile_exists(d, side, side == CC_SIDE_PATIENT ? r->b : r->c,
                           &yes) < 0)
            return fail(r, d);
        if (!yes) {
            r->res.missing_side = side;
            return CC_E_NOTFOUND;
        }
    }
    if (!(q = stmt(d, S_CHAT_INSERT)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->a, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->b, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, r->c, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, r->t);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    r->res.created = sqlite3_changes(d->h) > 0;
    if (!(q = stmt(d, S_CHAT_BY_PAIR)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->b, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->c, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        last_seq = read_chat(q, one_chat(r));
    sqlite3_reset(q);
    if (rc != SQLITE_ROW || complete_chat(d, &r->chats[0], last_seq,
                                          CC_SIDE_NONE) < 0)
        return fail(r, d);
    return CC_OK;
}

/* a = message id, b = chat id, c = sender id. */
static int do_msg_append(struct db *d, struct req *r)
{
    sqlite3_stmt *q;
    int64_t last_seq;
    struct omsg *o;
    int rc = load_chat(d, r, r->b, &last_seq);

    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW || !(q = stmt(d, S_MSG_INSERT)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->b, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, last_seq + 1);
    sqlite3_bind_text(q, 3, r->a, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, r->side);
    sqlite3_bind_text(q, 5, r->c, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, r->content, (int)r->content_len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 7, r->t);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE || !(q = stmt(d, S_CHAT_BUMP)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->b, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, last_seq + 1);
    sqlite3_bind_int64(q, 3, r->t);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    r->res.chat = NULL;
    r->msgs = xcalloc(1, sizeof *r->msgs);
    r->nm = 1;
    o = &r->msgs[0];
    copy_id(o->id, r->a);
    copy_id(o->chat, r->b);
    copy_id(o->sender, r->c);
    o->content = r->content;   /* ownership moves to the result */
    r->content = NULL;
    o->m = (struct cc_message){
        .struct_size = sizeof o->m, .id = o->id, .chat_id = o->chat,
        .sender_id = o->sender, .content = o->content,
        .content_len = r->content_len, .created_at_us = r->t,
        .seq = last_seq + 1, .sender_type = r->side, .is_read = 0,
    };
    r->res.message = &o->m;
    return CC_OK;
}

static int do_mark_read(struct db *d, struct req *r)
{
    sqlite3_stmt *q;
    int64_t last_seq;
    int rc = load_chat(d, r, r->b, &last_seq);

    r->res.chat = NULL;
    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW || !(q = stmt(d, S_MARK_READ)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->b, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, r->side);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    r->res.count = sqlite3_changes(d->h);
    return CC_OK;
}

static int do_chat_get(struct db *d, struct req *r)
{
    int64_t last_seq;
    int rc = load_chat(d, r, r->a, &last_seq);

    if (rc == SQLITE_DONE) {
        r->res.chat = NULL;
        return CC_E_NOTFOUND;
    }
    if (rc != SQLITE_ROW ||
        complete_chat(d, &r->chats[0], last_seq,
                      viewer_side_of(r, &r->chats[0])) < 0)
        return fail(r, d);
    return CC_OK;
}

static int do_chat_list(struct db *d, struct req *r)
{
    sqlite3_stmt *q = stmt(d, S_CHAT_COUNT);
    int64_t *seqs;
    int rc;

    if (!q)
        return fail(r, d);
    bind_text(q, 1, r->vpat[0] ? r->vpat : NULL);
    bind_text(q, 2, r->vpro[0] ? r->vpro : NULL);
    rc = sqlite3_step(q);
    r->res.count = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW || !(q = stmt(d, S_CHAT_LIST)))
        return fail(r, d);
    bind_text(q, 1, r->vpat[0] ? r->vpat : NULL);
    bind_text(q, 2, r->vpro[0] ? r->vpro : NULL);
    sqlite3_bind_int64(q, 3, r->cursor_us);
    sqlite3_bind_text(q, 4, r->a, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, (int64_t)r->limit + 1);
    r->chats = xcalloc(r->limit + 1, sizeof *r->chats);
    seqs = xcalloc(r->limit + 1, sizeof *seqs);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && r->n <= r->limit)
        seqs[r->n] = read_chat(q, &r->chats[r->n]), r->n++;
    sqlite3_reset(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        free(seqs);
        return fail(r, d);
    }
    if (r->n > r->limit) {
        r->res.more = 1;
        r->n = r->limit;
    }
    for (size_t i = 0; i < r->n; i++)
        if (complete_chat(d, &r->chats[i], seqs[i],
                          viewer_side_of(r, &r->chats[i])) < 0) {
            free(seqs);
            return fail(r, d);
        }
    free(seqs);
    r->chat_ptrs = xcalloc(r->n + 1, sizeof *r->chat_ptrs);
    for (size_t i = 0; i < r->n; i++)
        r->chat_ptrs[i] = &r->chats[i].c;
    r->res.chats = r->chat_ptrs;
    r->res.n_chats = r->n;
    return CC_OK;
}

/* b = chat id. */
static int do_msg_list(struct db *d, struct req *r)
{
    sqlite3_stmt *q;
    int64_t last_seq;
    size_t n = 0;
    int rc = load_chat(d, r, r->b, &last_seq), desc = r->before > 0;

    r->res.chat = NULL;
    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW || !(q = stmt(d, desc ? S_MSG_BEFORE : S_MSG_AFTER)))
        return fail(r, d);
    r->res.count = last_seq;
    sqlite3_bind_text(q, 1, r->b, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, desc ? r->before : r->after);
    sqlite3_bind_int64(q, 3, (int64_t)r->limit + 1);
    r->msgs = xcalloc(r->limit + 1, sizeof *r->msgs);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && n <= r->limit)
        read_msg(q, r->b, &r->msgs[n++]);
    sqlite3_reset(q);
    r->nm = n; /* so the contents are freed */
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return fail(r, d);
    if (n > r->limit) {
        r->res.more = 1;
        n = r->limit;
    }
    r->msg_ptrs = xcalloc(n + 1, sizeof *r->msg_ptrs);
    for (size_t i = 0; i < n; i++)
        r->msg_ptrs[desc ? n - 1 - i : i] = &r->msgs[i].m;
    r->res.messages = r->msg_ptrs;
    r->res.n_messages = n;
    return CC_OK;
}

static int run_op(struct db *d, struct req *r)
{
    switch (r->op) {
    case OP_PROFILE_PUT: return do_profile_put(d, r);
    case OP_CHAT_OPEN: return do_chat_open(d, r);
    case OP_MSG_APPEND: return do_msg_append(d, r);
    case OP_MARK_READ: return do_mark_read(d, r);
    case OP_PROFILE_GET: return do_profile_get(d, r);
    case OP_CHAT_GET: return do_chat_get(d, r);
    case OP_CHAT_LIST: return do_chat_list(d, r);
    default: return do_msg_list(d, r);
    }
}

/* ------------------------------------------------------------ queues */

static void req_free(struct req *r)
{
    for (size_t i = 0; r->chats && i < r->n; i++)
        free(r->chats[i].last.content);
    for (size_t i = 0; r->msgs && i < r->nm; i++)
        free(r->msgs[i].content);
    free(r->chats);
    free(r->chat_ptrs);
    free(r->msgs);
    free(r->msg_ptrs);
    free(r->user);
    free(r->content);
    free(r);
}

/* On the loop: run a group's callbacks in queue order, then free. */
static void deliver(void *arg)
{
    struct req *r = arg, *next;

    for (; r; r = next) {
        next = r->next;
        r->res.struct_size = sizeof r->res;
        if (r->status != CC_OK && r->error[0])
            r->res.error = r->error;
        r->cb(r->arg, r->status, &r->res);
        req_free(r);
    }
}

/* Take up to max requests off q, waiting for the first.  NULL when the
 * queue is stopped and empty. */
static struct req *take(struct queue *q, int max)
{
    struct req *head, *last;
    int n = 1;

    pthread_mutex_lock(&q->mu);
    while (!q->head && !q->stop)
        pthread_cond_wait(&q->cv, &q->mu);
    head = last = q->head;
    if (head) {
        while (last->next && n < max) {
            last = last->next;
            n++;
        }
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        last->next = NULL;
        q->n -= (size_t)n;
    }
    pthread_mutex_unlock(&q->mu);
    return head;
}

static int put(struct sq *sq, struct queue *q, struct req *r)
{
    pthread_mutex_lock(&q->mu);
    if (q->stop || q->n >= sq->queue_max) {
        int stopped = q->stop;
        pthread_mutex_unlock(&q->mu);
        req_free(r);
        return stopped ? CC_E_UNAVAIL : CC_E_BUSY;
    }
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->n++;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return CC_OK;
}

/* One group on the writer: BEGIN, a savepoint per request, COMMIT. */
static void write_group(struct sq *sq, struct req *group)
{
    struct db *d = &sq->w;
    struct req *r;

    if (exec_simple(d, S_BEGIN) < 0) {
        for (r = group; r; r = r->next)
            r->status = fail(r, d);
        return;
    }
    for (r = group; r; r = r->next) {
        if (exec_simple(d, S_SAVEPOINT) < 0) {
            r->status = fail(r, d);
            continue;
        }
        r->status = run_op(d, r);
        if (r->status != CC_OK)
            exec_simple(d, S_ROLLBACK_TO);
        exec_simple(d, S_RELEASE);
    }
    if (exec_simple(d, S_COMMIT) < 0) {
        /* Nothing of the group was stored: every request fails. */
        char err[160];
        snprintf(err, sizeof err, "sqlite: commit failed: %s",
                 sqlite3_errmsg(d->h));
        sq->host->log(sq->ctx, CC_LOG_ERROR, "%s", err);
        exec_simple(d, S_ROLLBACK);
        for (r = group; r; r = r->next) {
            r->status = CC_E_FAIL;
            memcpy(r->error, err, sizeof err);
            r->res.message = NULL;
            r->res.chat = NULL;
        }
    }
}

static void *writer_main(void *arg)
{
    struct sq *sq = arg;
    struct req *group;

    while ((group = take(&sq->wq, sq->batch_max))) {
        write_group(sq, group);
        sq->host->post(sq->ctx, deliver, group);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    struct sq *sq = arg;
    struct req *group, *r;

    while ((group = take(&sq->rq, 64))) {
        for (r = group; r; r = r->next) {
            /* One read transaction per query: a consistent snapshot. */
            exec_simple(&sq->r, S_READ_BEGIN);
            r->status = run_op(&sq->r, r);
            exec_simple(&sq->r, S_READ_END);
        }
        sq->host->post(sq->ctx, deliver, group);
    }
    return NULL;
}

static void queue_init(struct queue *q)
{
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
}

static void queue_stop(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* ------------------------------------------------------- lifecycle */

static int sq_start(void *inst)
{
    struct sq *sq = inst;

    queue_init(&sq->wq);
    queue_init(&sq->rq);
    if (db_open(sq, &sq->w, 0) < 0)
        return CC_E_FAIL;
    if (migrate(sq) < 0 || db_open(sq, &sq->r, 1) < 0) {
        db_close(&sq->w);
        return CC_E_FAIL;
    }
    if (pthread_create(&sq->writer, NULL, writer_main, sq) != 0 ||
        pthread_create(&sq->reader, NULL, reader_main, sq) != 0)
        abort();
    sq->running = 1;
    sq->host->log(sq->ctx, CC_LOG_INFO, "database %s open (WAL, "
                  "synchronous=%s)", sq->path,
                  sq->full_sync ? "full" : "normal");
    return CC_OK;
}

/* Drain both queues (their callbacks are posted), join, then done. */
static void sq_stop(void *inst, cc_post_cb done, void *arg)
{
    struct sq *sq = inst;

    if (sq->running) {
        queue_stop(&sq->wq);
        queue_stop(&sq->rq);
        pthread_join(sq->writer, NULL);
        pthread_join(sq->reader, NULL);
        sq->running = 0;
    }
    /* Posted after the last results, so it runs after their callbacks. */
    sq->host->post(sq->ctx, done, arg);
}

static void sq_destroy(void *inst)
{
    struct sq *sq = inst;

    db_close(&sq->r);
    db_close(&sq->w);
    free(sq->path);
    free(sq);
}

/* ------------------------------------------------- the storage API */

static int valid_id(const char *s)
{
    return s && strlen(s) == 36;
}

static struct req *new_req(struct sq *sq, enum op op, cc_store_cb cb,
                           void *arg)
{
    struct req *r = xcalloc(1, sizeof *r);

    r->op = op;
    r->sq = sq;
    r->cb = cb;
    r->arg = arg;
    r->t = sq->host->now_real_us();
    return r;
}

static int submit(struct sq *sq, struct req *r)
{
    return put(sq, r->op <= OP_MARK_READ ? &sq->wq : &sq->rq, r);
}

static int api_profile_put(void *inst, int32_t side, const char *id,
                           const char *user, cc_store_cb cb, void *arg)
{
    struct req *r;

    if ((side != CC_SIDE_PATIENT && side != CC_SIDE_PROFESSIONAL) ||
        !valid_id(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, OP_PROFILE_PUT, cb, arg);
    r->side = side;
    copy_id(r->a, id);
    if (user && !(r->user = strdup(user)))
        abort();
    return submit(inst, r);
}

static int api_profile_get(void *inst, int32_t side, const char *id,
                           cc_store_cb cb, void *arg)
{
    struct req *r;

    if ((side != CC_SIDE_PATIENT && side != CC_SIDE_PROFESSIONAL) ||
        !valid_id(id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, OP_PROFILE_GET, cb, arg);
    r->side = side;
    copy_id(r->a, id);
    return submit(inst, r);
}

static int api_chat_open(void *inst, const char *new_id, const char *pat,
                         const char *pro, int64_t now_us, cc_store_cb cb,
                         void *arg)
{
    struct req *r;

    if (!valid_id(new_id) || !valid_id(pat) || !valid_id(pro) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, OP_CHAT_OPEN, cb, arg);
    copy_id(r->a, new_id);
    copy_id(r->b, pat);
    copy_id(r->c, pro);
    r->t = now_us;
    return submit(inst, r);
}

static void set_viewer(struct req *r, const struct cc_viewer *v)
{
    if (!v)
        return;
    if (v->patient_id && valid_id(v->patient_id))
        copy_id(r->vpat, v->patient_id);
    if (v->professional_id && valid_id(v->professional_id))
        copy_id(r->vpro, v->professional_id);
}

static int api_chat_get(void *inst, const char *chat_id,
                        const struct cc_viewer *viewer, cc_store_cb cb,
                        void *arg)
{
    struct req *r;

    if (!valid_id(chat_id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, OP_CHAT_GET, cb, arg);
    copy_id(r->a, chat_id);
    set_viewer(r, viewer);
    return submit(inst, r);
}

static int api_chat_list(void *inst, const struct cc_chat_query *q,
                         cc_store_cb cb, void *arg)
{
    struct req *r;

    if (!q || !cb || q->limit < 1 || q->limit > 100000)
        return CC_E_INVAL;
    r = new_req(inst, OP_CHAT_LIST, cb, arg);
    set_viewer(r, &q->viewer);
    r->cursor_us = q->before_updated_us > 0 ? q->before_updated_us : 0;
    copy_id(r->a, q->before_id);
    r->limit = q->limit;
    return submit(inst, r);
}

static int api_message_append(void *inst, const struct cc_message *m,
                              cc_store_cb cb, void *arg)
{
    struct req *r;

    if (!m || !cb || !valid_id(m->id) || !valid_id(m->chat_id) ||
        !valid_id(m->sender_id) || !m->content ||
        m->content_len > 0x7fffffff ||
        (m->sender_type != CC_SIDE_PATIENT &&
         m->sender_type != CC_SIDE_PROFESSIONAL))
        return CC_E_INVAL;
    r = new_req(inst, OP_MSG_APPEND, cb, arg);
    copy_id(r->a, m->id);
    copy_id(r->b, m->chat_id);
    copy_id(r->c, m->sender_id);
    r->side = m->sender_type;
    r->t = m->created_at_us;
    r->content_len = m->content_len;
    r->content = malloc(m->content_len + 1);
    if (!r->content)
        abort();
    memcpy(r->content, m->content, m->content_len);
    r->content[m->content_len] = '\0';
    return submit(inst, r);
}

static int api_message_list(void *inst, const struct cc_message_query *q,
                            cc_store_cb cb, void *arg)
{
    struct req *r;

    if (!q || !cb || !valid_id(q->chat_id) || q->limit < 1 ||
        q->limit > 100000 || q->after_seq < 0 || q->before_seq < 0)
        return CC_E_INVAL;
    r = new_req(inst, OP_MSG_LIST, cb, arg);
    copy_id(r->b, q->chat_id);
    r->side = q->viewer_side;
    r->after = q->after_seq;
    r->before = q->before_seq;
    r->limit = q->limit;
    return submit(inst, r);
}

static int api_mark_read(void *inst, const char *chat_id, int32_t side,
                         cc_store_cb cb, void *arg)
{
    struct req *r;

    if (!valid_id(chat_id) || !cb)
        return CC_E_INVAL;
    r = new_req(inst, OP_MARK_READ, cb, arg);
    copy_id(r->b, chat_id);
    r->side = side;
    return submit(inst, r);
}

static const struct cc_storage_api sq_api = {
    .struct_size = sizeof(struct cc_storage_api),
    .profile_put = api_profile_put,
    .profile_get = api_profile_get,
    .chat_open = api_chat_open,
    .chat_get = api_chat_get,
    .chat_list = api_chat_list,
    .message_append = api_message_append,
    .message_list = api_message_list,
    .mark_read = api_mark_read,
};

static const void *sq_get_interface(void *inst, uint32_t kind)
{
    return kind == CC_KIND_STORAGE ? &sq_api : NULL;
}

static const struct cc_plugin sq_plugin = {
    .struct_size = sizeof(struct cc_plugin),
    .abi_version = CC_ABI_VERSION,
    .min_host_minor = 0,
    .kinds = CC_KIND_STORAGE,
    .name = "sqlite",
    .version = "1.0.0",
    .create = sq_create,
    .start = sq_start,
    .reload = NULL,
    .stop = sq_stop,
    .destroy = sq_destroy,
    .get_interface = sq_get_interface,
};

CC_PLUGIN_EXPORT int cc_plugin_entry(const struct cc_host_api *host,
                                     uint32_t host_abi,
                                     const struct cc_plugin **out)
{
    if (!CC_ABI_COMPATIBLE(host_abi, 0) ||
        host->struct_size < offsetof(struct cc_host_api, post) +
                                sizeof host->post)
        return CC_E_ABI;
    *out = &sq_plugin;
    return CC_OK;
}
