/*
 * sqlite.c - the storage plugin `sqlite`: the embedded default backend.
 *
 * Threads (DESIGN invariant 4: the event loop never waits on disk):
 *  - the loop thread validates a request, copies what it needs into a
 *    struct stq_req and queues it; it never touches SQLite;
 *  - one writer thread owns the read-write connection and drains its
 *    queue in groups: one BEGIN IMMEDIATE ... COMMIT per group (group
 *    commit: one fsync for many messages); a request that fails halfway
 *    rolls back only itself (write_group);
 *  - one reader thread owns a read-only connection (WAL lets it read
 *    while the writer commits) and answers the queries.
 *  - one checkpointer thread runs WAL checkpoints (PASSIVE) on its own
 *    connection every 200 ms, or sooner when the log grows, so the writer
 *    never stalls on the checkpoint's fsync in the middle of a group
 *    (auto-checkpoint off); the writer itself only finishes a long log's
 *    checkpoint between groups so the log restarts (WAL_RESTART_FRAMES).
 * Results travel back with one host->post per group, and callbacks run on
 * the loop in queue order, so messages of a chat are acknowledged in the
 * order they were appended.  A request's callback runs only after its
 * COMMIT, so anything read after that sees it.
 *
 * Only prepared statements with bound parameters; never SQL built from
 * data.  Built like any third-party plugin: public headers only.  The
 * requests, queues, results and the API table are plugins/common/storeq.c
 * (shared with `postgres`); this file is what is SQLite's.
 */
#include <carechat/storage.h>

#include "diskfull.h"
#include "pconf.h"
#include "storeq.h"
#include "strhash.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define SCHEMA_VERSION 6

/* The WAL is kept short: past WAL_RESTART_FRAMES pages the writer
 * finishes the checkpoint itself between groups, so its next transaction
 * starts the log over from the beginning; after that the file is cut back
 * to WAL_KEEP_BYTES.  Without this a steady load never lets the log
 * restart and it grows without bound (a gigabyte a minute under flood). */
#define WAL_RESTART_FRAMES 4096
/* Past this the writer waits for a checkpointer run in progress rather
 * than trying again after the next group (a loaded machine where the
 * two keep colliding would otherwise let the log grow). */
#define WAL_HARD_FRAMES(restart) ((restart) * 3 / 2)
/* A disk that filled up lowers the restart point to half the log it had
 * room for (not below WAL_MIN_FRAMES), so the log stops outgrowing the
 * disk; WAL_RELAX_MS without a full disk restores it. */
#define WAL_MIN_FRAMES 128
#define WAL_RELAX_MS (10 * 60 * 1000)
/* The page cache of the writer's and the reader's connection each
 * (`cache_size`).  SQLite's own default, about 2 MB, is smaller than
 * what a flood's groups touch (the newest leaf of each active chat, the
 * id and time indexes' right edges): the writer read ~1,400 pages a
 * second back from the file, and with 32m stored 2-12% more messages a
 * second (five alternating pairs; doc/benchmarks.md, "The writer's page
 * cache").  The default stays SQLite's: the faster writer let the log
 * outgrow its restart point in the disk-full fault test (tests/fault/
 * test_disk.py) in one CI run of four, and a hospital's rate is far
 * below a flood's. */
#define CACHE_DEFAULT (2LL << 20)
#define WAL_KEEP_BYTES (64LL << 20)
#define WAL_PAGE_BYTES 4096       /* SQLite's default page size, ours */

/* Statements, prepared once per connection. */
enum stmt {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
    S_PROFILE_PUT, S_PROFILE_GET, S_CHAT_INSERT, S_CHAT_BY_PAIR, S_CHAT_GET,
    S_CHAT_SEQ, S_LAST_MSG, S_MSG_INSERT, S_CHAT_BUMP,
    S_CHAT_LIST, S_CHAT_NEWER, S_CHAT_COUNT, S_MSG_AFTER, S_MSG_BEFORE,
    S_MSG_BY_CLIENT, S_MSG_SEQ, S_READ_BEGIN, S_READ_END,
    S_PURGE_PICK, S_PURGE_DEL, S_PURGE_UNREAD,
    /* ABI 1.4 */
    S_OWNER_SET, S_NAME_SET, S_MSG_NEWEST, S_COUNT_AFTER, S_COUNT_RANGE,
    S_FIRST_UNREAD,
    S_CHAT_STATE, S_DUE, S_TICKET_PUT,
    S_TICKET_PRUNE, S_TICKET_GET, S_TICKET_DEL, S_CHAT_READS, S_STATE_GET,
    N_STMT
};

/* A message row as read_msg() takes it (is_read, column 6, is no longer
 * kept: the chat's read marks say it, since schema 6). */
#define MSG_COLS "id, seq, sender_type, sender_id, content, created_at, " \
                 "is_read, client_id, priority "

/* Parameters ?n0 to ?n9 then ?m0 to ?m2 (m is n + 1): numbered from
 * n0 to n0 + 12 in STQ_SIDE_COLS order. */
#define SIDE_SET(x, n, m)                                                \
    x "_read_upto = ?" n "0, " x "_read_id = ?" n "1, "                   \
    x "_read_at = ?" n "2, " x "_dlv_upto = ?" n "3, "                    \
    x "_dlv_id = ?" n "4, " x "_dlv_at = ?" n "5, "                       \
    x "_ntf_open = ?" n "6, " x "_ntf_urgent = ?" n "7, "                 \
    x "_ntf_attempts = ?" n "8, " x "_ntf_sent = ?" n "9, "               \
    x "_ntf_due = ?" m "0, " x "_ntf_lease = ?" m "1, "                   \
    x "_ntf_id = ?" m "2"

/* A chat row as read_chat() takes it: the chat, the unread counts and
 * the delivered ones among them, each side's marks and episode (columns
 * 10 and 23), the parties' names (36, 37). */
#define CHAT_ROW "SELECT id, patient_id, professional_id, created_at, " \
                 "updated_at, last_seq, unread_from_pat, unread_from_pro, " \
                 "gap_from_pat, gap_from_pro, "                       \
                 STQ_SIDE_COLS("pat") ", " STQ_SIDE_COLS("pro") ", "      \
                 "(SELECT name FROM profiles WHERE side = 1 AND "        \
                 "id = patient_id), (SELECT name FROM profiles WHERE "   \
                 "side = 2 AND id = professional_id) FROM chats "
#define COL_SIDE(side) ((side) == CC_SIDE_PATIENT ? 10 : 23)
#define COL_NAME(side) ((side) == CC_SIDE_PATIENT ? 36 : 37)

static const char *const sql[N_STMT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT item",
    [S_RELEASE] = "RELEASE item",
    [S_ROLLBACK_TO] = "ROLLBACK TO item",
    /* A profile without an owner takes the first user who presents it
     * (ABI 1.4); one with an owner keeps it. */
    [S_PROFILE_PUT] = "INSERT INTO profiles(side, id, user_id, created_at) "
                      "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (side, id) DO "
                      "UPDATE SET user_id = excluded.user_id WHERE "
                      "user_id IS NULL AND excluded.user_id IS NOT NULL",
    [S_PROFILE_GET] = "SELECT user_id FROM profiles WHERE side = ?1 "
                      "AND id = ?2",
    [S_CHAT_INSERT] = "INSERT INTO chats(id, patient_id, professional_id, "
                      "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4) "
                      "ON CONFLICT(patient_id, professional_id) DO NOTHING",
    [S_CHAT_BY_PAIR] = CHAT_ROW "WHERE patient_id = ?1 "
                       "AND professional_id = ?2",
    [S_CHAT_GET] = CHAT_ROW "WHERE id = ?1",
    [S_CHAT_SEQ] = "SELECT last_seq FROM chats WHERE id = ?1",
    [S_LAST_MSG] = "SELECT " MSG_COLS "FROM messages "
                   "WHERE chat_id = ?1 AND seq = ?2",
    [S_MSG_INSERT] = "INSERT INTO messages(chat_id, seq, id, sender_type, "
                     "sender_id, content, created_at, client_id, priority) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [S_CHAT_BUMP] = "UPDATE chats SET last_seq = ?2, "
                    "updated_at = max(updated_at, ?3), "
                    "unread_from_pat = unread_from_pat + ?4, "
                    "unread_from_pro = unread_from_pro + ?5 WHERE id = ?1",
    [S_CHAT_LIST] = CHAT_ROW "WHERE id IN ("
                    "SELECT id FROM chats WHERE patient_id = ?1 UNION "
                    "SELECT id FROM chats WHERE professional_id = ?2) "
                    "AND (?3 = 0 OR updated_at < ?3 OR "
                    "(updated_at = ?3 AND id < ?4)) "
                    "ORDER BY updated_at DESC, id DESC LIMIT ?5",
    [S_CHAT_NEWER] = CHAT_ROW "WHERE id IN ("
                     "SELECT id FROM chats WHERE patient_id = ?1 UNION "
                     "SELECT id FROM chats WHERE professional_id = ?2) "
                     "AND (updated_at > ?3 OR "
                     "(updated_at = ?3 AND id > ?4)) "
                     "ORDER BY updated_at, id LIMIT ?5",
    [S_CHAT_COUNT] = "SELECT count(*) FROM (SELECT id FROM chats WHERE "
                     "patient_id = ?1 UNION SELECT id FROM chats WHERE "
                     "professional_id = ?2)",
    [S_MSG_AFTER] = "SELECT " MSG_COLS "FROM messages WHERE chat_id = ?1 "
                    "AND seq > ?2 ORDER BY seq LIMIT ?3",
    [S_MSG_BEFORE] = "SELECT " MSG_COLS "FROM messages WHERE chat_id = ?1 "
                     "AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
    [S_MSG_BY_CLIENT] = "SELECT " MSG_COLS "FROM messages WHERE "
                        "chat_id = ?1 AND sender_id = ?2 AND client_id = ?3",
    [S_MSG_SEQ] = "SELECT seq FROM messages WHERE chat_id = ?1 AND id = ?2",
    [S_READ_BEGIN] = "BEGIN",
    [S_READ_END] = "COMMIT",
    /* Retention: the oldest messages before ?1, at most ?2 (and one more,
     * to tell whether more remain). */
    [S_PURGE_PICK] = "SELECT m.chat_id, m.seq, m.sender_type, m.seq <= "
                     "CASE m.sender_type WHEN 1 THEN c.pro_read_upto "
                     "ELSE c.pat_read_upto END, m.seq <= "
                     "CASE m.sender_type WHEN 1 THEN c.pro_dlv_upto "
                     "ELSE c.pat_dlv_upto END FROM messages m JOIN chats c "
                     "ON c.id = m.chat_id WHERE m.created_at < ?1 "
                     "ORDER BY m.created_at LIMIT ?2",
    [S_PURGE_DEL] = "DELETE FROM messages WHERE chat_id = ?1 AND seq = ?2",
    /* An unread message that goes is no longer counted unread. */
    /* ... and an unread but delivered one (?3) the gap between the
     * marks. */
    [S_PURGE_UNREAD] = "UPDATE chats SET "
                       "unread_from_pat = max(0, unread_from_pat - "
                       "(?2 = 1)), "
                       "unread_from_pro = max(0, unread_from_pro - "
                       "(?2 = 2)), "
                       "gap_from_pat = max(0, gap_from_pat - "
                       "(?2 = 1) * ?3), "
                       "gap_from_pro = max(0, gap_from_pro - "
                       "(?2 = 2) * ?3) WHERE id = ?1",
    /* ABI 1.4.  An admin moves a profile to a user (creating it). */
    [S_OWNER_SET] = "INSERT INTO profiles(side, id, user_id, created_at) "
                    "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (side, id) DO "
                    "UPDATE SET user_id = excluded.user_id",
    [S_NAME_SET] = "INSERT INTO profiles(side, id, name, created_at) "
                   "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (side, id) DO "
                   "UPDATE SET name = excluded.name",
    [S_MSG_NEWEST] = "SELECT seq, id FROM messages WHERE chat_id = ?1 "
                     "ORDER BY seq DESC LIMIT 1",
    /* Messages of side ?3 after ?2 (do_mark_set). */
    [S_COUNT_AFTER] = "SELECT count(*) FROM messages WHERE chat_id = ?1 "
                      "AND seq > ?2 AND sender_type = ?3",
    /* ... and of them those up to ?4 (count_from: the shorter scan). */
    [S_COUNT_RANGE] = "SELECT count(*) FROM messages WHERE chat_id = ?1 "
                      "AND seq > ?2 AND seq <= ?4 AND sender_type = ?3",
    /* The oldest message of side ?3 after ?2, when it was stored,
     * whether one of them is urgent, how many. */
    [S_FIRST_UNREAD] = "SELECT id, created_at, (SELECT max(priority) FROM "
                       "messages u WHERE u.chat_id = ?1 AND u.seq > ?2 AND "
                       "u.sender_type = ?3), (SELECT count(*) FROM "
                       "messages u WHERE u.chat_id = ?1 AND u.seq > ?2 AND "
                       "u.sender_type = ?3) FROM messages WHERE "
                       "chat_id = ?1 AND seq > ?2 AND sender_type = ?3 "
                       "ORDER BY seq LIMIT 1",
    /* A chat row as a write group's marks, outcomes and appends with a
     * due time leave it (write_chat_state). */
    [S_CHAT_STATE] = "UPDATE chats SET last_seq = ?2, "
                     "updated_at = max(updated_at, ?3), "
                     "unread_from_pat = ?4, unread_from_pro = ?5, "
                     "gap_from_pat = ?6, gap_from_pro = ?7, "
                     SIDE_SET("pat", "1", "2") ", "
                     SIDE_SET("pro", "3", "4") " WHERE id = ?1",
    /* Episodes due at ?1 and not handed out, oldest due first (the
     * partial indexes chats_pat_due and chats_pro_due). */
    [S_DUE] = "SELECT id, 1, pat_ntf_due FROM chats WHERE pat_ntf_due > 0 "
              "AND pat_ntf_due <= ?1 AND pat_ntf_lease <= ?1 UNION ALL "
              "SELECT id, 2, pro_ntf_due FROM chats WHERE pro_ntf_due > 0 "
              "AND pro_ntf_due <= ?1 AND pro_ntf_lease <= ?1 "
              "ORDER BY 3 LIMIT ?2",
    [S_TICKET_PUT] = "INSERT OR REPLACE INTO tickets (id, user_id, "
                     "patient_id, professional_id, is_admin, "
                     "token_expires_at, expires_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_TICKET_PRUNE] = "DELETE FROM tickets WHERE expires_at < ?1",
    [S_TICKET_GET] = "SELECT user_id, patient_id, professional_id, "
                     "is_admin, token_expires_at, expires_at FROM tickets "
                     "WHERE id = ?1",
    [S_TICKET_DEL] = "DELETE FROM tickets WHERE id = ?1",
    [S_CHAT_READS] = "SELECT pat_read_upto, pro_read_upto FROM chats "
                     "WHERE id = ?1",
    /* CHAT_ROW's columns without the times and names: what the 1.4 ops
     * read and write. */
    [S_STATE_GET] = "SELECT id, patient_id, professional_id, 0, 0, "
                    "last_seq, unread_from_pat, unread_from_pro, "
                    "gap_from_pat, gap_from_pro, "
                    STQ_SIDE_COLS("pat") ", " STQ_SIDE_COLS("pro")
                    ", NULL, NULL FROM chats WHERE id = ?1",
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

/* Version 1 to 2: unread counts and "read up to" sequences move into the
 * chat row (written once per group anyway) and the partial index
 * messages_unread goes: clustered by chat, it cost a page write per chat
 * per group, a third of the writer's WAL frames.  unread_from_X: messages
 * sent by side X that the other side has not read; X_read_upto: side X
 * has read every message of the other side up to this sequence. */
static const char schema_v1_to_v2[] =
    "ALTER TABLE chats ADD COLUMN unread_from_pat INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE chats ADD COLUMN unread_from_pro INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE chats ADD COLUMN pat_read_upto INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE chats ADD COLUMN pro_read_upto INTEGER NOT NULL DEFAULT 0;"
    "UPDATE chats SET"
    " unread_from_pat = (SELECT count(*) FROM messages m WHERE"
    "  m.chat_id = chats.id AND m.sender_type = 1 AND m.is_read = 0),"
    " unread_from_pro = (SELECT count(*) FROM messages m WHERE"
    "  m.chat_id = chats.id AND m.sender_type = 2 AND m.is_read = 0),"
    " pat_read_upto = coalesce((SELECT min(seq) - 1 FROM messages m WHERE"
    "  m.chat_id = chats.id AND m.sender_type = 2 AND m.is_read = 0),"
    "  last_seq),"
    " pro_read_upto = coalesce((SELECT min(seq) - 1 FROM messages m WHERE"
    "  m.chat_id = chats.id AND m.sender_type = 1 AND m.is_read = 0),"
    "  last_seq);"
    "DROP INDEX messages_unread;";

/* Version 2 to 3: the id a client gave its message (resent after a lost
 * acknowledgement, it is stored once: the unique index finds it). */
static const char schema_v2_to_v3[] =
    "ALTER TABLE messages ADD COLUMN client_id TEXT;"
    "CREATE UNIQUE INDEX messages_by_client ON messages"
    " (chat_id, sender_id, client_id) WHERE client_id IS NOT NULL;";

/* Version 3 to 4: messages by time, for retention (message_purge reads
 * the oldest first).  Appended in time order, the index grows at its
 * right edge: about a page written per group, not per message. */
static const char schema_v3_to_v4[] =
    "CREATE INDEX messages_by_time ON messages (created_at);";

/* Version 4 to 5: the chat-list indexes lose updated_at.  The list of a
 * user's chats is the union of those as patient and as professional,
 * sorted after (a temporary B-tree): the time in the index never gave
 * the order, but every message moved the chat's entry in both, two page
 * writes per group of about nine.  By side and id they cover the union's
 * subqueries, and an append writes neither. */
static const char schema_v4_to_v5[] =
    "DROP INDEX chats_by_patient;"
    "DROP INDEX chats_by_professional;"
    "CREATE INDEX chats_by_patient ON chats (patient_id, id);"
    "CREATE INDEX chats_by_professional ON chats (professional_id, id);";

/* Version 5 to 6 (ABI 1.4): messages keep their priority; profiles a
 * display name (the owner was user_id all along: the first user who
 * presented the profile, or the admin's registration); each side's read
 * and delivered marks (a message's seq, id and the mark's time) and
 * notification episode go on the chat row, which every append writes
 * anyway, so an append writes no second row.  The read marks replace
 * messages.is_read, which is no longer written: a side's READ mark is
 * the newest message of the other party it had read (its time that
 * message's, the best known), DELIVERED the same, and the unread counts
 * follow from them.  Due episodes are found through partial indexes
 * that hold only the due ones.  WebSocket tickets live in their own
 * table until taken or expired. */
#define SIDE_V6(x)                                                       \
    "ALTER TABLE chats ADD COLUMN " x "_read_id TEXT;"                    \
    "ALTER TABLE chats ADD COLUMN " x "_read_at INTEGER NOT NULL"         \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_dlv_upto INTEGER NOT NULL"        \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_dlv_id TEXT;"                     \
    "ALTER TABLE chats ADD COLUMN " x "_dlv_at INTEGER NOT NULL"          \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_open INTEGER NOT NULL"        \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_urgent INTEGER NOT NULL"      \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_attempts INTEGER NOT NULL"    \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_sent INTEGER NOT NULL"        \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_due INTEGER NOT NULL"         \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_lease INTEGER NOT NULL"       \
    " DEFAULT 0;"                                                        \
    "ALTER TABLE chats ADD COLUMN " x "_ntf_id TEXT;"                     \
    "CREATE INDEX chats_" x "_due ON chats (" x "_ntf_due)"               \
    " WHERE " x "_ntf_due > 0;"
/* x's read mark from is_read: the newest message of side `from` that
 * was read. */
#define MARK_V6(x, from)                                                 \
    "UPDATE chats SET " x "_read_upto = coalesce((SELECT max(seq) FROM"   \
    " messages m WHERE m.chat_id = chats.id AND m.sender_type = " from    \
    " AND m.is_read = 1), 0);"                                           \
    "UPDATE chats SET " x "_read_id = (SELECT id FROM messages m"         \
    " WHERE m.chat_id = chats.id AND m.seq = chats." x "_read_upto),"     \
    " " x "_read_at = coalesce((SELECT created_at FROM messages m"        \
    " WHERE m.chat_id = chats.id AND m.seq = chats." x "_read_upto), 0);"
static const char schema_v5_to_v6[] =
    "ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE profiles ADD COLUMN name TEXT;"
    "ALTER TABLE chats ADD COLUMN gap_from_pat INTEGER NOT NULL"
    " DEFAULT 0;"
    "ALTER TABLE chats ADD COLUMN gap_from_pro INTEGER NOT NULL"
    " DEFAULT 0;"   /* DELIVERED is READ here: no gap */
    SIDE_V6("pat") SIDE_V6("pro")
    MARK_V6("pat", "2") MARK_V6("pro", "1")
    "UPDATE chats SET pat_dlv_upto = pat_read_upto, pat_dlv_id = pat_read_id,"
    " pat_dlv_at = pat_read_at, pro_dlv_upto = pro_read_upto,"
    " pro_dlv_id = pro_read_id, pro_dlv_at = pro_read_at,"
    " unread_from_pat = (SELECT count(*) FROM messages m WHERE"
    "  m.chat_id = chats.id AND m.sender_type = 1 AND"
    "  m.seq > chats.pro_read_upto),"
    " unread_from_pro = (SELECT count(*) FROM messages m WHERE"
    "  m.chat_id = chats.id AND m.sender_type = 2 AND"
    "  m.seq > chats.pat_read_upto);"
    "CREATE TABLE tickets (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,"
    " patient_id TEXT, professional_id TEXT, is_admin INTEGER NOT NULL,"
    " token_expires_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE INDEX tickets_by_expiry ON tickets (expires_at);";

/* What a chat row holds beyond the struct cc_chat parts, by side
 * (CC_SIDE_PATIENT, CC_SIDE_PROFESSIONAL; [0] unused). */
struct chat_row {
    int64_t last_seq;
    int64_t unread_from[3];     /* sent by that side, not read yet */
    int64_t gap_from[3];        /* of those, delivered: between the other
                                   side's READ and DELIVERED marks */
    struct stq_state st;         /* each side's marks and episode */
};

/* A chat that appends of the writer's current group went to: its row is
 * read once per group and written once (flush_bumps), where each append
 * used to rewrite it and both its updated_at indexes. */
struct bump {
    const char *id;             /* the first append's (lives the group) */
    int dirty;                  /* appended to: the row needs writing */
    int64_t seq;                /* last_seq, this group's appends counted */
    int64_t t;                  /* the newest append's time */
    int64_t n_from[3];          /* the group's appends, by side, not
                                   counted in row */
    int state;                  /* row read: a mark, an outcome or an
                                   append with a due time needed it */
    int state_dirty;            /* row changed: S_CHAT_STATE writes it */
    struct chat_row row;        /* with state: the row as it will be */
};

struct db {
    sqlite3 *h;
    sqlite3_stmt *st[N_STMT];
    /* Writer only: the group's chats, open addressing into bump[]. */
    struct bump *bump;
    int32_t *slot;              /* 2 * bump_cap entries, -1 empty */
    size_t n_bump, bump_cap;
    int defer;                  /* keep bumps until flush_bumps() */
    int full;                   /* writer: this group met SQLITE_FULL */
};

struct sq {
    struct stq_backend base;     /* first: the storage API's inst */
    const struct cc_host_api *host;
    cc_plugin_ctx *ctx;
    char *path;
    int busy_timeout;
    int batch_max;
    size_t queue_max;
    int full_sync;
    long long cache_bytes;      /* page cache per connection */
    struct db w, r;
    struct stq_queue wq, rq;
    pthread_t writer, reader, checkpointer;
    int running;
    int wal_frames;             /* pages in the WAL (writer thread) */
    int wal_restart;            /* writer: restart the log past this */
    sqlite3 *ck;                /* the checkpointer's connection */
    pthread_mutex_t ck_mu;
    pthread_cond_t ck_cv;
    pthread_cond_t ck_done;     /* a checkpointer run ended */
    int ck_running;             /* the checkpointer is mid-run */
    int ck_stop;
    struct diskfull df;         /* writer thread: full-disk episode */
    uint64_t full_last_ms;      /* writer: the last write the disk refused */
    atomic_int disk_full;       /* df.on, for the loop thread (health) */
};

/* ----------------------------------------------------------- config */

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
        if (cc_pconf_long(value, 0, 600000, &n) < 0) {
            *reason = "expected milliseconds, 0 to 600000";
            return CC_E_INVAL;
        }
        sq->busy_timeout = (int)n;
    } else if (strcmp(key, "batch_max") == 0) {
        if (cc_pconf_long(value, 1, 100000, &n) < 0) {
            *reason = "expected a number from 1 to 100000";
            return CC_E_INVAL;
        }
        sq->batch_max = (int)n;
    } else if (strcmp(key, "queue_max") == 0) {
        if (cc_pconf_long(value, 1, 100000000, &n) < 0) {
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
    } else if (strcmp(key, "cache_size") == 0) {
        if (cc_pconf_size(value, 1LL << 20, 64LL << 30,
                          &sq->cache_bytes) < 0) {
            *reason = "expected a size from 1m to 64g, such as 32m";
            return CC_E_INVAL;
        }
    } else {
        *reason = "unknown key (sqlite takes path, synchronous, "
                  "busy_timeout, batch_max, queue_max, cache_size)";
        return CC_E_INVAL;
    }
    return CC_OK;
}

static int sq_submit(struct stq_backend *b, struct stq_req *r);

static int sq_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct sq *sq = stq_xcalloc(1, sizeof *sq);

    sq->base.host = sq->host = host;
    sq->base.ctx = sq->ctx = ctx;
    sq->base.submit = sq_submit;
    sq->busy_timeout = 5000;
    sq->batch_max = 256;
    sq->queue_max = 65536;
    sq->cache_bytes = CACHE_DEFAULT;
    if (host->cfg_iter(ctx, cfg_key, sq) != CC_OK)
        goto fail;
    if (!sq->path) {
        host->cfg_error(ctx, NULL, "missing required key \"path\" (the "
                        "database file)");
        goto fail;
    }
    sq->wal_restart = WAL_RESTART_FRAMES;
    stq_queue_init(&sq->wq, sq->queue_max);
    stq_queue_init(&sq->rq, sq->queue_max);
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
    free(d->bump);
    free(d->slot);
    d->bump = NULL;
    d->slot = NULL;
    d->n_bump = d->bump_cap = 0;
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
    if (sqlite3_exec(h, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) !=
        SQLITE_OK)
        goto fail;
    if (version == SCHEMA_VERSION)
        return 0;
    /* 0: a new database; older ones step up.  One transaction. */
    if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, &err) != SQLITE_OK ||
        (version < 1 &&
         sqlite3_exec(h, schema_v1, NULL, NULL, &err) != SQLITE_OK) ||
        (version < 2 &&
         sqlite3_exec(h, schema_v1_to_v2, NULL, NULL, &err) != SQLITE_OK) ||
        (version < 3 &&
         sqlite3_exec(h, schema_v2_to_v3, NULL, NULL, &err) != SQLITE_OK) ||
        (version < 4 &&
         sqlite3_exec(h, schema_v3_to_v4, NULL, NULL, &err) != SQLITE_OK) ||
        (version < 5 &&
         sqlite3_exec(h, schema_v4_to_v5, NULL, NULL, &err) != SQLITE_OK) ||
        sqlite3_exec(h, schema_v5_to_v6, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(h, "PRAGMA user_version = 6; COMMIT", NULL, NULL,
                     &err) != SQLITE_OK) {
        sq->host->log(sq->ctx, CC_LOG_ERROR, "%s: %s the schema failed: %s",
                      sq->path, version ? "migrating" : "creating",
                      err ? err : "?");
        sqlite3_free(err);
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (version)
        sq->host->log(sq->ctx, CC_LOG_INFO, "%s: migrated schema version "
                      "%d to %d", sq->path, version, SCHEMA_VERSION);
    else
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
    char pragmas[200];
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
    /* journal_mode = WAL is set by migrate(), once the file is accepted:
     * it is a lasting change to the file. */
    snprintf(pragmas, sizeof pragmas, "PRAGMA foreign_keys = ON; "
             "PRAGMA synchronous = %s; PRAGMA temp_store = MEMORY; "
             "PRAGMA journal_size_limit = %lld; PRAGMA cache_size = -%lld;",
             sq->full_sync ? "FULL" : "NORMAL", (long long)WAL_KEEP_BYTES,
             sq->cache_bytes / 1024);
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

static void col_id(sqlite3_stmt *q, int i, char dst[STQ_ID_LEN + 1])
{
    stq_copy_id(dst, (const char *)sqlite3_column_text(q, i));
}

/* A message row (MSG_COLS).  is_read from the chat's read marks (row;
 * NULL: unread): read by the other side. */
static void read_msg(sqlite3_stmt *q, const char *chat_id, struct stq_msg *o,
                     const struct chat_row *row)
{
    int n = sqlite3_column_bytes(q, 4);
    const void *p = sqlite3_column_text(q, 4);
    int64_t seq = sqlite3_column_int64(q, 1);
    int side = sqlite3_column_int(q, 2);

    col_id(q, 0, o->id);
    stq_copy_id(o->chat, chat_id);
    col_id(q, 3, o->sender);
    if (sqlite3_column_type(q, 7) == SQLITE_NULL)
        o->client_id[0] = '\0';
    else
        col_id(q, 7, o->client_id);
    o->content = malloc((size_t)n + 1);
    if (!o->content)
        abort();
    memcpy(o->content, p ? p : "", (size_t)n);
    o->content[n] = '\0';
    stq_msg_link(o, (size_t)n, seq, side, sqlite3_column_int64(q, 5),
                row && (side == CC_SIDE_PATIENT ||
                        side == CC_SIDE_PROFESSIONAL) &&
                    seq <= row->st.read[3 - side].seq,
                sqlite3_column_int(q, 8));
}

/* Fill last_message, unread_count, marks and names of a chat row already
 * read into o.  viewer_side decides whose unread count. */
static int complete_chat(struct db *d, struct stq_chat *o,
                         const struct chat_row *row, int viewer_side)
{
    int64_t last_seq = row->last_seq;
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
            read_msg(q, o->id, &o->last, row);
            o->c.last_message = &o->last.m;
        }
        sqlite3_reset(q);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return -1;
    }
    if (viewer_side == CC_SIDE_PATIENT)
        o->c.unread_count = row->unread_from[CC_SIDE_PROFESSIONAL];
    else if (viewer_side == CC_SIDE_PROFESSIONAL)
        o->c.unread_count = row->unread_from[CC_SIDE_PATIENT];
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        const struct stq_state *st = &row->st;

        stq_chat_marks(o, side, st->read[side].seq ? st->read[side].id : "",
                      st->dlv[side].seq ? st->dlv[side].id : "");
    }
    return 0;
}

static void col_text(sqlite3_stmt *q, int i, char dst[STQ_ID_LEN + 1])
{
    if (sqlite3_column_type(q, i) == SQLITE_NULL)
        dst[0] = '\0';
    else
        col_id(q, i, dst);
}

/* The episode columns from i on (STQ_SIDE_COLS' order: open, urgent,
 * attempts, sent, due, lease, id). */
static void read_episode(sqlite3_stmt *q, int i, struct stq_episode *e)
{
    e->open = sqlite3_column_int(q, i);
    e->urgent = sqlite3_column_int(q, i + 1);
    e->attempts = sqlite3_column_int(q, i + 2);
    e->sent = sqlite3_column_int(q, i + 3);
    e->due = sqlite3_column_int64(q, i + 4);
    e->lease = sqlite3_column_int64(q, i + 5);
    col_text(q, i + 6, e->id);
}

/* A side's STQ_SIDE_COLS from column i on. */
static void read_side(sqlite3_stmt *q, int i, struct chat_row *row,
                      int side)
{
    row->st.read[side].seq = sqlite3_column_int64(q, i);
    col_text(q, i + 1, row->st.read[side].id);
    row->st.read[side].at = sqlite3_column_int64(q, i + 2);
    row->st.dlv[side].seq = sqlite3_column_int64(q, i + 3);
    col_text(q, i + 4, row->st.dlv[side].id);
    row->st.dlv[side].at = sqlite3_column_int64(q, i + 5);
    read_episode(q, i + 6, &row->st.ep[side]);
}

/* A chat row (CHAT_ROW): id, patient, professional, created, updated
 * and the names into o, the rest into row. */
static void read_chat(sqlite3_stmt *q, struct stq_chat *o,
                      struct chat_row *row)
{
    memset(row, 0, sizeof *row);
    col_id(q, 0, o->id);
    col_id(q, 1, o->pat);
    col_id(q, 2, o->pro);
    stq_chat_link(o, sqlite3_column_int64(q, 3), sqlite3_column_int64(q, 4));
    row->last_seq = sqlite3_column_int64(q, 5);
    row->unread_from[CC_SIDE_PATIENT] = sqlite3_column_int64(q, 6);
    row->unread_from[CC_SIDE_PROFESSIONAL] = sqlite3_column_int64(q, 7);
    row->gap_from[CC_SIDE_PATIENT] = sqlite3_column_int64(q, 8);
    row->gap_from[CC_SIDE_PROFESSIONAL] = sqlite3_column_int64(q, 9);
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        read_side(q, COL_SIDE(side), row, side);
        stq_chat_name(o, side,
                     (const char *)sqlite3_column_text(q, COL_NAME(side)));
    }
}

/* Look chat id up into o and row with s (S_CHAT_GET, or S_STATE_GET:
 * no times or names).  Returns SQLITE_ROW, DONE (not found) or an error
 * code. */
static int read_chat_by_id(struct db *d, enum stmt s, const char *id,
                           struct stq_chat *o, struct chat_row *row)
{
    sqlite3_stmt *q = stmt(d, s);
    int rc;

    if (!q)
        return SQLITE_ERROR;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_chat(q, o, row);
    sqlite3_reset(q);
    return rc;
}

/* A chat's parties and state (row), no more. */
static int chat_state(struct db *d, const char *id, struct stq_chat *o,
                      struct chat_row *row)
{
    return read_chat_by_id(d, S_STATE_GET, id, o, row);
}

/* Look a chat up by id into r (res.chat). */
static int load_chat(struct db *d, struct stq_req *r, const char *id,
                     struct chat_row *row)
{
    struct stq_chat *o = stq_one_chat(r);
    int rc = read_chat_by_id(d, S_CHAT_GET, id, o, row);

    if (rc != SQLITE_ROW) {
        r->n = 0;
        r->res.chat = NULL;
    }
    return rc;
}

/* Bind episode e from parameter i on (STQ_SIDE_COLS' order). */
static void bind_episode(sqlite3_stmt *q, int i, const struct stq_episode *e)
{
    sqlite3_bind_int(q, i, e->open);
    sqlite3_bind_int(q, i + 1, e->urgent);
    sqlite3_bind_int(q, i + 2, e->attempts);
    sqlite3_bind_int(q, i + 3, e->sent);
    sqlite3_bind_int64(q, i + 4, e->due);
    sqlite3_bind_int64(q, i + 5, e->lease);
    bind_text(q, i + 6, e->id[0] ? e->id : NULL);
}

/* Write back a chat's row (row: last_seq, counts, marks, episodes; its
 * updated_at no earlier than t). */
static int write_chat_state(struct db *d, const char *id,
                            const struct chat_row *row, int64_t t)
{
    sqlite3_stmt *q = stmt(d, S_CHAT_STATE);
    int rc;

    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, row->last_seq);
    sqlite3_bind_int64(q, 3, t);
    sqlite3_bind_int64(q, 4, row->unread_from[CC_SIDE_PATIENT]);
    sqlite3_bind_int64(q, 5, row->unread_from[CC_SIDE_PROFESSIONAL]);
    sqlite3_bind_int64(q, 6, row->gap_from[CC_SIDE_PATIENT]);
    sqlite3_bind_int64(q, 7, row->gap_from[CC_SIDE_PROFESSIONAL]);
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        int i = side == CC_SIDE_PATIENT ? 10 : 30;

        sqlite3_bind_int64(q, i, row->st.read[side].seq);
        bind_text(q, i + 1, row->st.read[side].id[0] ? row->st.read[side].id
                                                  : NULL);
        sqlite3_bind_int64(q, i + 2, row->st.read[side].at);
        sqlite3_bind_int64(q, i + 3, row->st.dlv[side].seq);
        bind_text(q, i + 4, row->st.dlv[side].id[0] ? row->st.dlv[side].id
                                                 : NULL);
        sqlite3_bind_int64(q, i + 5, row->st.dlv[side].at);
        bind_episode(q, i + 6, &row->st.ep[side]);
    }
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* ---------------------------------------------------------- the ops */

static int fail(struct stq_req *r, struct db *d)
{
    if (sqlite3_errcode(d->h) == SQLITE_FULL)
        d->full = 1;
    snprintf(r->error, sizeof r->error, "sqlite: %s", sqlite3_errmsg(d->h));
    return CC_E_FAIL;
}

/* Whether profile id of side exists (*yes), and its owner into r's
 * result when r is not NULL.  0 or -1. */
static int profile_lookup(struct db *d, int side, const char *id, int *yes,
                          struct stq_req *r)
{
    sqlite3_stmt *q = stmt(d, S_PROFILE_GET);
    int rc;

    if (!q)
        return -1;
    sqlite3_bind_int(q, 1, side);
    sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && r)
        stq_set_owner(r, (const char *)sqlite3_column_text(q, 0));
    sqlite3_reset(q);
    *yes = rc == SQLITE_ROW;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int profile_exists(struct db *d, int side, const char *id, int *yes)
{
    return profile_lookup(d, side, id, yes, NULL);
}

/* PROFILE_PUT, PROFILE_OWNER (id = profile, user) and PROFILE_NAME (name):
 * the upsert of op, then the owner it leaves (res.owner). */
static int do_profile_write(struct db *d, struct stq_req *r, enum stmt s)
{
    sqlite3_stmt *q = stmt(d, s);
    int yes;

    if (!q)
        return fail(r, d);
    sqlite3_bind_int(q, 1, r->side);
    sqlite3_bind_text(q, 2, r->id, -1, SQLITE_STATIC);
    bind_text(q, 3, s == S_NAME_SET ? r->name : r->user);
    sqlite3_bind_int64(q, 4, r->at_us);
    if (sqlite3_step(q) != SQLITE_DONE) {
        sqlite3_reset(q);
        return fail(r, d);
    }
    sqlite3_reset(q);
    if (profile_lookup(d, r->side, r->id, &yes, r) < 0)
        return fail(r, d);
    return CC_OK;
}

static int do_profile_get(struct db *d, struct stq_req *r)
{
    int yes;

    if (profile_lookup(d, r->side, r->id, &yes, r) < 0)
        return fail(r, d);
    return yes ? CC_OK : CC_E_NOTFOUND;
}

/* chat = the new one's id, pat, pro. */
static int do_chat_open(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q;
    int yes, rc;
    struct chat_row row;

    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        if (profile_exists(d, side, side == CC_SIDE_PATIENT ? r->pat : r->pro,
                           &yes) < 0)
            return fail(r, d);
        if (!yes) {
            r->res.missing_side = side;
            return CC_E_NOTFOUND;
        }
    }
    if (!(q = stmt(d, S_CHAT_INSERT)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->pat, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, r->pro, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 4, r->at_us);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    r->res.created = sqlite3_changes(d->h) > 0;
    if (!(q = stmt(d, S_CHAT_BY_PAIR)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->pat, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->pro, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_chat(q, stq_one_chat(r), &row);
    sqlite3_reset(q);
    if (rc != SQLITE_ROW || complete_chat(d, &r->chats[0], &row,
                                          CC_SIDE_NONE) < 0)
        return fail(r, d);
    return CC_OK;
}

/* ------------------------------------------------- the group's chats */

static void slots_clear(struct db *d)
{
    memset(d->slot, 0xff, 2 * d->bump_cap * sizeof *d->slot);
}

/* The slot of chat `id`: where it is, or the empty one it would take. */
static int32_t *slot_of(struct db *d, const char *id)
{
    size_t mask = 2 * d->bump_cap - 1, i = cc_strhash(id) & mask;

    while (d->slot[i] >= 0 && strcmp(d->bump[d->slot[i]].id, id) != 0)
        i = (i + 1) & mask;
    return &d->slot[i];
}

static void bumps_grow(struct db *d)
{
    size_t cap = d->bump_cap ? 2 * d->bump_cap : 64;
    struct bump *v = realloc(d->bump, cap * sizeof *v);
    int32_t *slot = malloc(2 * cap * sizeof *slot);

    if (!v || !slot)
        abort();
    d->bump = v;
    free(d->slot);
    d->slot = slot;
    d->bump_cap = cap;
    slots_clear(d);
    for (size_t i = 0; i < d->n_bump; i++)
        *slot_of(d, d->bump[i].id) = (int32_t)i;
}

/* Forget the group's chats (the rows were written, or rolled back). */
static void bumps_drop(struct db *d)
{
    if (d->n_bump) {
        slots_clear(d);
        d->n_bump = 0;
    }
}

/* The chat `id` for an append, read from its row the first time in the
 * group.  Returns SQLITE_ROW, SQLITE_DONE (no such chat) or an error. */
static int bump_get(struct db *d, const char *id, struct bump **out)
{
    int32_t *slot;
    sqlite3_stmt *q;
    int rc;

    if (d->n_bump == d->bump_cap)
        bumps_grow(d);
    slot = slot_of(d, id);
    if (*slot >= 0) {
        *out = &d->bump[*slot];
        return SQLITE_ROW;
    }
    if (!(q = stmt(d, S_CHAT_SEQ)))
        return SQLITE_ERROR;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        struct bump *b = &d->bump[d->n_bump];

        b->id = id;
        b->dirty = 0;
        b->seq = sqlite3_column_int64(q, 0);
        b->t = 0;
        memset(b->n_from, 0, sizeof b->n_from);
        b->state = b->state_dirty = 0;
        *slot = (int32_t)d->n_bump++;
        *out = b;
    }
    sqlite3_reset(q);
    return rc;
}

/* The group's appends to b so far counted in its row (b->row, read
 * once a group: bump_state): the row is then written whole. */
static void bump_fold(struct bump *b)
{
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        if (b->n_from[side])
            b->state_dirty = 1;
        b->row.unread_from[side] += b->n_from[side];
        b->n_from[side] = 0;
    }
    b->row.last_seq = b->seq;
}

/* b's row, read the first time in the group that an op needs its marks,
 * episodes or counts (a mark, an outcome, an append with a due time:
 * appends without one never read it), with the group's appends so far
 * counted in.  0 or -1. */
static int bump_state(struct db *d, struct bump *b)
{
    struct stq_chat o = { 0 };

    if (!b->state) {
        if (chat_state(d, b->id, &o, &b->row) != SQLITE_ROW)
            return -1;
        b->state = 1;
    }
    bump_fold(b);
    return 0;
}

/* Write b's row: the group's appends to it so far, or the whole row when
 * an op changed its state (b stays in the group's cache, clean).
 * SQLITE_DONE or an error. */
static int write_bump(struct db *d, struct bump *b)
{
    sqlite3_stmt *q;
    int rc;

    if (b->state)
        bump_fold(b);
    if (b->state_dirty) {
        rc = write_chat_state(d, b->id, &b->row, b->t) < 0 ? SQLITE_ERROR
                                                           : SQLITE_DONE;
    } else {
        if (!(q = stmt(d, S_CHAT_BUMP)))
            return SQLITE_ERROR;
        sqlite3_bind_text(q, 1, b->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, b->seq);
        sqlite3_bind_int64(q, 3, b->t);
        sqlite3_bind_int64(q, 4, b->n_from[CC_SIDE_PATIENT]);
        sqlite3_bind_int64(q, 5, b->n_from[CC_SIDE_PROFESSIONAL]);
        rc = sqlite3_step(q);
        sqlite3_reset(q);
    }
    b->dirty = b->state_dirty = 0;
    memset(b->n_from, 0, sizeof b->n_from);
    return rc;
}

/* Write the rows of the chats the group appended to.  Before any other
 * op of the group (it may read them) and before COMMIT.  Episodes are
 * written only when an append changed them: without notifications the
 * statement is the one it always was. */
static int flush_bumps(struct db *d)
{
    int rc = SQLITE_DONE;

    for (size_t i = 0; i < d->n_bump && rc == SQLITE_DONE; i++)
        if (d->bump[i].dirty)
            rc = write_bump(d, &d->bump[i]);
    bumps_drop(d);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Before an op of the group that is not an append: write the rows it
 * reads that the group's cache holds (flush_bumps).  Marks and outcomes
 * work on the cache themselves (their chat's row is written once with
 * the appends'); profiles and tickets read no chat; anything else has
 * every row written. */
static int flush_for(struct db *d, const struct stq_req *r)
{
    switch (r->op) {
    case STQ_PROFILE_PUT: case STQ_PROFILE_OWNER: case STQ_PROFILE_NAME:
    case STQ_TICKET_PUT: case STQ_TICKET_TAKE:
    case STQ_MARK_SET: case STQ_MARK_READ: case STQ_NOTIFY_DONE:
        return 0;
    default:
        return flush_bumps(d);
    }
}

/* The message r's client_id names, if it is stored: 1 (then it is r's
 * result, res.duplicate set), 0 when not, -1 on error. */
static int find_by_client(struct db *d, struct stq_req *r,
                          const struct bump *b)
{
    sqlite3_stmt *q = stmt(d, S_CHAT_READS);
    struct chat_row row;
    int rc;

    if (!q)
        return -1;
    memset(&row, 0, sizeof row);
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    if (b->state) {     /* the group's marks, not written yet */
        row = b->row;
    } else if (sqlite3_step(q) == SQLITE_ROW) {
        row.st.read[CC_SIDE_PATIENT].seq = sqlite3_column_int64(q, 0);
        row.st.read[CC_SIDE_PROFESSIONAL].seq = sqlite3_column_int64(q, 1);
    }
    sqlite3_reset(q);
    if (!(q = stmt(d, S_MSG_BY_CLIENT)))
        return -1;
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, r->cid, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        stq_alloc_msgs(r, 1);
        read_msg(q, r->chat, &r->msgs[0], &row);
        r->nm = 1;
        r->res.message = &r->msgs[0].m;
        r->res.duplicate = 1;
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static int do_msg_append(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q;
    struct bump *b;
    int64_t seq;
    int rc = bump_get(d, r->chat, &b);

    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW)
        return fail(r, d);
    if (r->cid[0]) {
        rc = find_by_client(d, r, b);
        if (rc)
            return rc > 0 ? CC_OK : fail(r, d);
    }
    if (!(q = stmt(d, S_MSG_INSERT)))
        return fail(r, d);
    seq = b->seq + 1;
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, seq);
    sqlite3_bind_text(q, 3, r->id, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, r->side);
    sqlite3_bind_text(q, 5, r->sender, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 6, r->content, (int)r->content_len, SQLITE_STATIC);
    sqlite3_bind_int64(q, 7, r->at_us);
    if (r->cid[0])
        sqlite3_bind_text(q, 8, r->cid, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 8);
    sqlite3_bind_int(q, 9, r->priority);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    /* Notifications: the other party's episode (none without a due). */
    if (r->due) {
        if (bump_state(d, b) < 0)
            return fail(r, d);
        b->state_dirty |= stq_episode_append(&b->row.st.ep[3 - r->side],
                                            r->priority, r->due);
    }
    b->seq = seq;
    b->t = r->at_us;
    if (r->side == CC_SIDE_PATIENT || r->side == CC_SIDE_PROFESSIONAL)
        b->n_from[r->side]++;
    b->dirty = 1;
    if (!d->defer && flush_bumps(d) < 0)
        return fail(r, d);
    stq_append_result(r, seq);
    return CC_OK;
}

/* The message a mark goes to: r->id in chat r->chat, or its newest when r->id
 * is "" (*seq 0: the chat has none).  SQLITE_ROW, SQLITE_DONE (r->id is
 * not one of its messages) or an error. */
static int mark_target(struct db *d, struct stq_req *r, int64_t *seq,
                       char id[STQ_ID_LEN + 1])
{
    sqlite3_stmt *q = stmt(d, r->id[0] ? S_MSG_SEQ : S_MSG_NEWEST);
    int rc;

    *seq = 0;
    id[0] = '\0';
    if (!q)
        return SQLITE_ERROR;
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    if (r->id[0])
        sqlite3_bind_text(q, 2, r->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(q, 0);
        stq_copy_id(id, r->id[0] ? r->id
                               : (const char *)sqlite3_column_text(q, 1));
    }
    sqlite3_reset(q);
    return rc == SQLITE_DONE && !r->id[0] ? SQLITE_ROW : rc;
}

/* mark_set's counting on SQLite: the chat row's counts of the other
 * party's messages after each mark (unread_from after READ, less gap_from
 * after DELIVERED; appends only add to the first) say how many a mark
 * newly covers, less those after its target: none when the target is the
 * chat's newest message (the usual mark).  Else one scan, of the shorter
 * span of seqs: after the target (a reader back after a long absence
 * covers many messages), or what the mark covers (a reader who marks
 * each message as it arrives, while the other side writes on: scanning
 * what came after it cost the writer more than the appends did). */
struct mark_count {
    struct db *d;
    struct chat_row *row;
    int64_t after;              /* the other party's, after the target */
};

/* stq_mark_io's count: of side `from`, after < seq <= upto (after being
 * the kind's mark). */
static int count_from(void *arg, struct stq_req *r, int64_t after,
                      int64_t upto, int from, int64_t *n)
{
    struct mark_count *mc = arg;
    const struct chat_row *row = mc->row;
    int64_t have = row->unread_from[from] -
                   (r->kind == CC_MARK_READ ? 0 : row->gap_from[from]);
    sqlite3_stmt *q;
    int rc;

    int range = upto - after < row->last_seq - upto;
    int64_t c;

    mc->after = 0;
    if (upto >= row->last_seq) {
        *n = have > 0 ? have : 0;
        return CC_OK;
    }
    if (!(q = stmt(mc->d, range ? S_COUNT_RANGE : S_COUNT_AFTER)))
        return fail(r, mc->d);
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, range ? after : upto);
    sqlite3_bind_int(q, 3, from);
    if (range)
        sqlite3_bind_int64(q, 4, upto);
    rc = sqlite3_step(q);
    c = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW)
        return fail(r, mc->d);
    if (range) {
        *n = c;
        mc->after = have > c ? have - c : 0;
    } else {
        mc->after = c;
        *n = have > c ? have - c : 0;
    }
    return CC_OK;
}

/* The oldest message of side `from` in chat id after seq: its id into
 * first ("" none), when it was stored, whether one of those after seq
 * is urgent, how many there are.  0 or -1. */
static int first_unread(struct db *d, const char *id, int64_t seq, int from,
                        char first[STQ_ID_LEN + 1], int64_t *at,
                        int32_t *urgent, int64_t *n)
{
    sqlite3_stmt *q = stmt(d, S_FIRST_UNREAD);
    int rc;

    first[0] = '\0';
    *at = *n = 0;
    *urgent = 0;
    if (!q)
        return -1;
    sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, seq);
    sqlite3_bind_int(q, 3, from);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        col_id(q, 0, first);
        *at = sqlite3_column_int64(q, 1);
        *urgent = sqlite3_column_int(q, 2) == CC_PRIORITY_URGENT;
        *n = sqlite3_column_int64(q, 3);
    }
    sqlite3_reset(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* stq_mark_io's unread. */
static int unread_after(void *arg, struct stq_req *r, int64_t after,
                        int from, int64_t *n, int64_t *oldest_at,
                        int32_t *urgent)
{
    struct mark_count *mc = arg;
    char first[STQ_ID_LEN + 1];

    return first_unread(mc->d, r->chat, after, from, first, oldest_at, urgent,
                        n) < 0 ? fail(r, mc->d) : CC_OK;
}

/* chat, id = up to ("" the newest), side, kind, at_us, delay: move
 * side's kind mark forward (stq_mark_apply decides), with the counts
 * that follow (mark_count), on the group's cache of the chat's row: the
 * row is written once for the group's appends and marks together. */
static int do_mark_set(struct db *d, struct stq_req *r)
{
    struct mark_count mc = { d, NULL, 0 };
    const struct stq_mark_io io = { count_from, unread_after, &mc };
    char id[STQ_ID_LEN + 1];
    struct chat_row *row;
    struct bump *b;
    int64_t seq, dlv;
    int other = 3 - r->side, rc = bump_get(d, r->chat, &b);

    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW || bump_state(d, b) < 0)
        return fail(r, d);
    mc.row = row = &b->row;
    rc = mark_target(d, r, &seq, id);
    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW)
        return fail(r, d);
    dlv = row->st.dlv[r->side].seq;
    rc = stq_mark_apply(r, &row->st, seq, id, &io);
    if (rc <= 0)
        return rc;
    if (r->kind == CC_MARK_READ) {
        int64_t *gap = &row->gap_from[other];

        row->unread_from[other] = mc.after;
        *gap = row->st.dlv[r->side].seq != dlv || *gap < r->res.count
                   ? 0 : *gap - r->res.count;
    } else {
        row->gap_from[other] = row->unread_from[other] - mc.after;
    }
    b->dirty = b->state_dirty = 1;
    return !d->defer && flush_bumps(d) < 0 ? fail(r, d) : CC_OK;
}

/* The old mark_read (chat, side = reader): a READ mark to the
 * chat's newest message, now. */
static int do_mark_read(struct db *d, struct stq_req *r)
{
    int rc;

    r->id[0] = '\0';
    r->kind = CC_MARK_READ;
    r->delay = 0;
    rc = do_mark_set(d, r);
    r->res.mark = NULL;
    return rc;
}

static int do_chat_get(struct db *d, struct stq_req *r)
{
    struct chat_row row;
    int rc = load_chat(d, r, r->chat, &row);

    if (rc == SQLITE_DONE) {
        r->res.chat = NULL;
        return CC_E_NOTFOUND;
    }
    if (rc != SQLITE_ROW ||
        complete_chat(d, &r->chats[0], &row,
                      stq_viewer_side(r, &r->chats[0])) < 0)
        return fail(r, d);
    return CC_OK;
}

static int do_chat_list(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q = stmt(d, S_CHAT_COUNT);
    struct chat_row *rows;
    int rc;

    if (!q)
        return fail(r, d);
    bind_text(q, 1, r->vpat[0] ? r->vpat : NULL);
    bind_text(q, 2, r->vpro[0] ? r->vpro : NULL);
    rc = sqlite3_step(q);
    r->res.count = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_reset(q);
    if (rc != SQLITE_ROW ||
        !(q = stmt(d, r->after ? S_CHAT_NEWER : S_CHAT_LIST)))
        return fail(r, d);
    bind_text(q, 1, r->vpat[0] ? r->vpat : NULL);
    bind_text(q, 2, r->vpro[0] ? r->vpro : NULL);
    sqlite3_bind_int64(q, 3, r->after ? r->after : r->cursor_us);
    sqlite3_bind_text(q, 4, r->cursor_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, (int64_t)r->limit + 1);
    stq_alloc_chats(r, r->limit + 1);
    rows = stq_xcalloc(r->limit + 1, sizeof *rows);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && r->n <= r->limit)
        read_chat(q, &r->chats[r->n], &rows[r->n]), r->n++;
    sqlite3_reset(q);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        free(rows);
        return fail(r, d);
    }
    if (r->n > r->limit) {
        r->res.more = 1;
        r->n = r->limit;
        for (int side = 0; side < 3; side++)    /* the one beyond */
            stq_chat_name(&r->chats[r->n], side, NULL);
    }
    for (size_t i = 0; i < r->n; i++)
        if (complete_chat(d, &r->chats[i], &rows[i],
                          stq_viewer_side(r, &r->chats[i])) < 0) {
            free(rows);
            return fail(r, d);
        }
    free(rows);
    stq_finish_chats(r, r->after > 0);
    return CC_OK;
}

/* The seq of message id in chat (r->after), for a query after it:
 * SQLITE_ROW, SQLITE_DONE when the chat has no such message, or an
 * error. */
static int seq_of(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q = stmt(d, S_MSG_SEQ);
    int rc;

    if (!q)
        return SQLITE_ERROR;
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, r->id, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        r->after = sqlite3_column_int64(q, 0);
    sqlite3_reset(q);
    return rc;
}

/* chat; id = the message to list after (after_id), or "". */
static int do_msg_list(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q;
    struct chat_row row;
    size_t n = 0;
    int rc = load_chat(d, r, r->chat, &row), desc = r->before > 0;

    r->res.chat = NULL;
    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc == SQLITE_ROW && r->id[0]) {
        rc = seq_of(d, r);
        if (rc == SQLITE_DONE)
            return CC_E_NOTFOUND;
    }
    if (rc != SQLITE_ROW || !(q = stmt(d, desc ? S_MSG_BEFORE : S_MSG_AFTER)))
        return fail(r, d);
    r->res.count = row.last_seq;
    sqlite3_bind_text(q, 1, r->chat, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, desc ? r->before : r->after);
    sqlite3_bind_int64(q, 3, (int64_t)r->limit + 1);
    stq_alloc_msgs(r, r->limit + 1);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && n <= r->limit)
        read_msg(q, r->chat, &r->msgs[n++], &row);
    sqlite3_reset(q);
    r->nm = n; /* so the contents are freed */
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return fail(r, d);
    if (n > r->limit) {
        r->res.more = 1;
        n = r->limit;
    }
    stq_finish_msgs(r, n, desc);
    return CC_OK;
}

/* Retention (ABI 1.3 message_purge): the oldest r->limit messages
 * created before r->at_us go, one by one through the primary key, and the
 * unread ones leave their chat's unread count.  A chat's last_seq stays:
 * later messages get the next seq; last_message is read by last_seq, so
 * a chat whose newest message went has none. */
static int do_msg_purge(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *pick = stmt(d, S_PURGE_PICK), *del = stmt(d, S_PURGE_DEL);
    sqlite3_stmt *unread = stmt(d, S_PURGE_UNREAD);
    struct victim {
        char chat[STQ_ID_LEN + 1];
        int64_t seq;
        int side, is_read, is_dlv;
    } *v;
    size_t n = 0, i;
    int rc = SQLITE_DONE;

    if (!pick || !del || !unread)
        return fail(r, d);
    v = calloc(r->limit, sizeof *v);
    if (!v)
        return CC_E_NOMEM;
    /* Picked first, then deleted: no row goes under a running SELECT. */
    sqlite3_bind_int64(pick, 1, r->at_us);
    sqlite3_bind_int64(pick, 2, (int64_t)r->limit + 1);
    while ((rc = sqlite3_step(pick)) == SQLITE_ROW) {
        if (n == r->limit) {
            r->res.more = 1;
            break;
        }
        snprintf(v[n].chat, sizeof v[n].chat, "%s",
                 (const char *)sqlite3_column_text(pick, 0));
        v[n].seq = sqlite3_column_int64(pick, 1);
        v[n].side = sqlite3_column_int(pick, 2);
        v[n].is_read = sqlite3_column_int(pick, 3);
        v[n].is_dlv = sqlite3_column_int(pick, 4);
        n++;
    }
    sqlite3_reset(pick);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_DONE;
    for (i = 0; i < n && rc == SQLITE_DONE; i++) {
        sqlite3_bind_text(del, 1, v[i].chat, -1, SQLITE_STATIC);
        sqlite3_bind_int64(del, 2, v[i].seq);
        rc = sqlite3_step(del);
        sqlite3_reset(del);
        if (rc == SQLITE_DONE && !v[i].is_read) {
            sqlite3_bind_text(unread, 1, v[i].chat, -1, SQLITE_STATIC);
            sqlite3_bind_int(unread, 2, v[i].side);
            sqlite3_bind_int(unread, 3, v[i].is_dlv);
            rc = sqlite3_step(unread);
            sqlite3_reset(unread);
        }
    }
    free(v);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    r->res.count = (int64_t)n;
    return CC_OK;
}

/* ------------------------------------------------ notifications */

/* Fill the notification of side in chat o (row just claimed). */
static int fill_ntf(struct db *d, struct stq_req *r, const struct stq_chat *o,
                    const struct chat_row *row, int side)
{
    struct stq_ntf *n = stq_add_ntf(r);
    int64_t at, left;
    int32_t urgent;
    int yes;

    stq_copy_id(n->id, row->st.ep[side].id);
    stq_copy_id(n->chat, o->id);
    stq_copy_id(n->profile, side == CC_SIDE_PATIENT ? o->pat : o->pro);
    if (first_unread(d, o->id, row->st.read[side].seq, 3 - side, n->first,
                     &at, &urgent, &left) < 0 ||
        profile_lookup(d, side, n->profile, &yes, r) < 0)
        return -1;
    n->user = r->owner;         /* the lookup's copy moves to n */
    r->owner = NULL;
    r->res.owner = NULL;
    stq_ntf_link(n, side, row->unread_from[3 - side], at, &row->st.ep[side]);
    return 0;
}

/* Claim one (chat, side) found due: checked again on its row, handed out
 * and its notification added.  0 or -1. */
static int claim_one(struct db *d, struct stq_req *r, const char *chat,
                     int side, const struct cc_host_api *host)
{
    struct stq_chat o = { 0 };
    struct chat_row row;
    struct stq_episode *e = &row.st.ep[side];
    int rc = chat_state(d, chat, &o, &row);

    if (rc == SQLITE_DONE ||
        (rc == SQLITE_ROW && !stq_episode_claimable(e, r->at_us)))
        return 0;
    if (rc != SQLITE_ROW ||
        stq_episode_claim(e, r->at_us, r->delay, host) != CC_OK ||
        write_chat_state(d, chat, &row, 0) < 0)
        return -1;
    return fill_ntf(d, r, &o, &row, side);
}

/* at_us = now, delay = lease, limit: the due episodes, oldest due first.
 * The candidates are read first, then claimed (no row changes under a
 * running SELECT). */
static int do_notify_claim(struct db *d, struct stq_req *r,
                           const struct cc_host_api *host)
{
    sqlite3_stmt *q = stmt(d, S_DUE);
    struct due {
        char chat[STQ_ID_LEN + 1];
        int side;
    } *v;
    size_t n = 0;
    int rc;

    if (!q)
        return fail(r, d);
    v = stq_xcalloc(r->limit, sizeof *v);
    sqlite3_bind_int64(q, 1, r->at_us);
    sqlite3_bind_int64(q, 2, r->limit);
    while (n < r->limit && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        col_id(q, 0, v[n].chat);
        v[n++].side = sqlite3_column_int(q, 1);
    }
    sqlite3_reset(q);
    for (size_t i = 0; i < n; i++)
        if (claim_one(d, r, v[i].chat, v[i].side, host) < 0) {
            free(v);
            return fail(r, d);
        }
    free(v);
    stq_finish_ntfs(r);
    return CC_OK;
}

/* chat, side, id, kind = result, due = next: notify_done, on
 * the group's cache of the chat's row.  An outcome for an episode that
 * ended, or another id, changes nothing. */
static int do_notify_done(struct db *d, struct stq_req *r)
{
    struct bump *b;
    int rc = bump_get(d, r->chat, &b);

    if (rc == SQLITE_DONE)
        return CC_OK;
    if (rc != SQLITE_ROW || bump_state(d, b) < 0)
        return fail(r, d);
    if (!stq_episode_done(&b->row.st.ep[r->side], r->id, r->kind, r->due,
                         r->at_us))
        return CC_OK;
    b->dirty = b->state_dirty = 1;
    return !d->defer && flush_bumps(d) < 0 ? fail(r, d) : CC_OK;
}

/* ------------------------------------------------------- tickets */

/* tid, user, pat, pro, kind = is_admin, after = token exp, at_us =
 * expires, before = now: expired tickets go first. */
static int do_ticket_put(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q = stmt(d, S_TICKET_PRUNE);
    int rc;

    if (!q)
        return fail(r, d);
    sqlite3_bind_int64(q, 1, r->before);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE || !(q = stmt(d, S_TICKET_PUT)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->tid, -1, SQLITE_STATIC);
    bind_text(q, 2, r->user);
    bind_text(q, 3, r->pat[0] ? r->pat : NULL);
    bind_text(q, 4, r->pro[0] ? r->pro : NULL);
    sqlite3_bind_int(q, 5, r->kind);
    sqlite3_bind_int64(q, 6, r->after);
    sqlite3_bind_int64(q, 7, r->at_us);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_DONE ? CC_OK : fail(r, d);
}

/* tid, at_us = now: the ticket, deleted in the same transaction (one writer:
 * nobody else can take it meanwhile). */
static int do_ticket_take(struct db *d, struct stq_req *r)
{
    sqlite3_stmt *q = stmt(d, S_TICKET_GET);
    struct stq_ticket *k = &r->ticket;
    int rc, admin = 0;
    int64_t exp = 0, expires = 0;

    if (!q)
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->tid, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        k->user = strdup((const char *)sqlite3_column_text(q, 0));
        if (!k->user)
            abort();
        col_text(q, 1, k->pat);
        col_text(q, 2, k->pro);
        admin = sqlite3_column_int(q, 3);
        exp = sqlite3_column_int64(q, 4);
        expires = sqlite3_column_int64(q, 5);
    }
    sqlite3_reset(q);
    if (rc == SQLITE_DONE)
        return CC_E_NOTFOUND;
    if (rc != SQLITE_ROW || !(q = stmt(d, S_TICKET_DEL)))
        return fail(r, d);
    sqlite3_bind_text(q, 1, r->tid, -1, SQLITE_STATIC);
    rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return fail(r, d);
    if (expires < r->at_us)
        return CC_E_NOTFOUND;
    memcpy(k->id, r->tid, sizeof k->id);
    stq_ticket_link(r, admin, exp, expires);
    return CC_OK;
}

static int run_op(struct db *d, struct stq_req *r,
                  const struct cc_host_api *host)
{
    switch (r->op) {
    case STQ_PROFILE_PUT: return do_profile_write(d, r, S_PROFILE_PUT);
    case STQ_PROFILE_OWNER: return do_profile_write(d, r, S_OWNER_SET);
    case STQ_PROFILE_NAME: return do_profile_write(d, r, S_NAME_SET);
    case STQ_MARK_SET: return do_mark_set(d, r);
    case STQ_TICKET_PUT: return do_ticket_put(d, r);
    case STQ_TICKET_TAKE: return do_ticket_take(d, r);
    case STQ_NOTIFY_CLAIM: return do_notify_claim(d, r, host);
    case STQ_NOTIFY_DONE: return do_notify_done(d, r);
    case STQ_CHAT_OPEN: return do_chat_open(d, r);
    case STQ_MSG_APPEND: return do_msg_append(d, r);
    case STQ_MARK_READ: return do_mark_read(d, r);
    case STQ_MSG_PURGE: return do_msg_purge(d, r);
    case STQ_PROFILE_GET: return do_profile_get(d, r);
    case STQ_CHAT_GET: return do_chat_get(d, r);
    case STQ_CHAT_LIST: return do_chat_list(d, r);
    default: return do_msg_list(d, r);
    }
}

/* ----------------------------------------------------------- workers */

/* Fail every request of a group that cannot start. */
static void fail_group(struct db *d, struct stq_req *group)
{
    for (struct stq_req *r = group; r; r = r->next)
        r->status = fail(r, d);
}

/* Run each request of the group inside its own SAVEPOINT, so one that
 * fails halfway rolls back only itself. */
static void run_guarded(struct db *d, struct stq_req *group,
                        const struct cc_host_api *host)
{
    for (struct stq_req *r = group; r; r = r->next) {
        if (exec_simple(d, S_SAVEPOINT) < 0) {
            r->status = fail(r, d);
            continue;
        }
        r->status = run_op(d, r, host);
        if (r->status != CC_OK) {
            bumps_drop(d);
            exec_simple(d, S_ROLLBACK_TO);
        }
        exec_simple(d, S_RELEASE);
    }
}

/* One group on the writer: one BEGIN ... COMMIT.  The requests run
 * straight: an op fails either before it writes (CC_E_NOTFOUND) or in the
 * middle of its writes (anything else, rare: a constraint, a full disk).
 * Only in that second case is the transaction rolled back and the group
 * run again with a savepoint per request (run_guarded).  Savepoints on
 * every request cost a statement journal of each page it touches: a
 * quarter of the writer's time under load.  Appends to one chat write its
 * row once per group (flush_bumps), not once each. */
static void write_group(struct sq *sq, struct stq_req *group)
{
    struct db *d = &sq->w;
    struct stq_req *r;
    int clean = 1;

    d->full = 0;
    if (exec_simple(d, S_BEGIN) < 0) {
        fail_group(d, group);
        return;
    }
    d->defer = 1;
    for (r = group; r && clean; r = r->next) {
        if (r->op != STQ_MSG_APPEND && flush_for(d, r) < 0) {
            clean = 0;
            break;
        }
        r->status = run_op(d, r, sq->host);
        clean = r->status == CC_OK || r->status == CC_E_NOTFOUND;
    }
    if (clean && flush_bumps(d) < 0)
        clean = 0;
    if (!clean) {
        bumps_drop(d);
        exec_simple(d, S_ROLLBACK);
        stq_group_rewind(group);
        if (exec_simple(d, S_BEGIN) < 0) {
            fail_group(d, group);
            return;
        }
        d->defer = 0;
        run_guarded(d, group, sq->host);
    }
    if (exec_simple(d, S_COMMIT) < 0) {
        /* Nothing of the group was stored: every request fails. */
        char err[160];
        snprintf(err, sizeof err, "sqlite: commit failed: %s",
                 sqlite3_errmsg(d->h));
        if (sqlite3_errcode(d->h) == SQLITE_FULL)
            d->full = 1;  /* an episode: writer_group says so once */
        else
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

/* SQLite's WAL hook on the writer: after each commit, the log's size. */
static int wal_committed(void *arg, sqlite3 *h, const char *db, int frames)
{
    struct sq *sq = arg;

    (void)h;
    (void)db;
    sq->wal_frames = frames;
    if (frames >= sq->wal_restart / 2) {
        pthread_mutex_lock(&sq->ck_mu);     /* wake the checkpointer */
        pthread_cond_signal(&sq->ck_cv);
        pthread_mutex_unlock(&sq->ck_mu);
    }
    return SQLITE_OK;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Copy the WAL into the database so the next transaction starts the log
 * over in the file space it already has (writer thread). */
static void checkpoint_now(struct sq *sq)
{
    int n_log, n_done;

    if (sqlite3_wal_checkpoint_v2(sq->w.h, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                  &n_log, &n_done) == SQLITE_OK &&
        n_done == n_log)
        sq->wal_frames = 0;
}

/* The size the WAL file is cut back to when the log restarts: what a
 * full disk's log took beyond it goes back to the file system, for the
 * database (writer thread). */
static void wal_keep(struct sq *sq, int64_t bytes)
{
    char pragma[64];

    snprintf(pragma, sizeof pragma, "PRAGMA journal_size_limit = %lld",
             (long long)bytes);
    sqlite3_exec(sq->w.h, pragma, NULL, NULL, NULL);
}

/* The disk was full with the log at wal_frames pages: restart it past
 * half that from now on, and keep the file that small (writer thread). */
static void wal_fit(struct sq *sq, uint64_t now)
{
    int fit = sq->wal_frames / 2;

    sq->full_last_ms = now;
    if (fit < WAL_MIN_FRAMES)
        fit = WAL_MIN_FRAMES;
    if (fit >= sq->wal_restart)
        return;
    sq->wal_restart = fit;
    wal_keep(sq, (int64_t)fit * 2 * WAL_PAGE_BYTES);
    sq->host->log(sq->ctx, CC_LOG_WARN, "%s: the disk had room for a log "
                  "of about %d pages: it now restarts past %d", sq->path,
                  sq->wal_frames, fit);
}

/* One group, through the full-disk episode rules (diskfull.h). */
static void writer_group(struct sq *sq, struct stq_req *group)
{
    uint64_t now = mono_ms(), lasted, refused, n = 0;
    struct stq_req *r;

    for (r = group; r; r = r->next)
        n++;
    if (!diskfull_may_try(&sq->df, now, sq->path)) {
        for (r = group; r; r = r->next) {
            r->status = CC_E_FAIL;
            snprintf(r->error, sizeof r->error,
                     "sqlite: database or disk is full");
        }
        diskfull_refused(&sq->df, n);
        return;
    }
    if (sq->df.on)
        checkpoint_now(sq);
    write_group(sq, group);
    if (sq->w.full) {
        wal_fit(sq, now);
        if (diskfull_failed(&sq->df, now, sq->path, n))
            sq->host->log(sq->ctx, CC_LOG_ERROR, "%s: database or disk is "
                          "full: writes are refused until there is room "
                          "(tried again every %d ms to %d s)", sq->path,
                          DISKFULL_FIRST_MS, DISKFULL_MAX_MS / 1000);
    } else if (diskfull_ok(&sq->df, mono_ms(), &lasted, &refused)) {
        sq->host->log(sq->ctx, CC_LOG_INFO, "%s: room again: writes "
                      "resumed after %.1f s (%llu refused meanwhile)",
                      sq->path, (double)lasted / 1000.0,
                      (unsigned long long)refused);
    } else if (sq->wal_restart < WAL_RESTART_FRAMES &&
               now - sq->full_last_ms > WAL_RELAX_MS) {
        sq->wal_restart = WAL_RESTART_FRAMES;
        wal_keep(sq, WAL_KEEP_BYTES);
        sq->host->log(sq->ctx, CC_LOG_INFO, "%s: no full disk for %d "
                      "minutes: the log restarts past %d pages again",
                      sq->path, WAL_RELAX_MS / 60000, WAL_RESTART_FRAMES);
    }
    atomic_store(&sq->disk_full, sq->df.on);
}

static void *writer_main(void *arg)
{
    struct sq *sq = arg;
    struct stq_req *group;
    int n_log, n_done, rc;

    pthread_setname_np(pthread_self(), "sqlite-writer");

    while ((group = stq_queue_take(&sq->wq, sq->batch_max))) {
        writer_group(sq, group);
        sq->host->post(sq->ctx, stq_deliver, group);
        /* After the group's answers are on their way: the checkpointer
         * has copied most of the log; copy the rest so the next BEGIN
         * restarts it (busy when the checkpointer is mid-run: next time).
         */
        if (sq->wal_frames < sq->wal_restart)
            continue;
        rc = sqlite3_wal_checkpoint_v2(sq->w.h, NULL,
                                       SQLITE_CHECKPOINT_PASSIVE, &n_log,
                                       &n_done);
        if (rc == SQLITE_BUSY &&
            sq->wal_frames >= WAL_HARD_FRAMES(sq->wal_restart)) {
            pthread_mutex_lock(&sq->ck_mu);
            while (sq->ck_running)
                pthread_cond_wait(&sq->ck_done, &sq->ck_mu);
            pthread_mutex_unlock(&sq->ck_mu);
            rc = sqlite3_wal_checkpoint_v2(sq->w.h, NULL,
                                           SQLITE_CHECKPOINT_PASSIVE, &n_log,
                                           &n_done);
        }
        if (rc == SQLITE_OK && n_done == n_log)
            sq->wal_frames = 0;
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    struct sq *sq = arg;
    struct stq_req *group, *r;

    pthread_setname_np(pthread_self(), "sqlite-reader");

    while ((group = stq_queue_take(&sq->rq, 64))) {
        for (r = group; r; r = r->next) {
            /* One read transaction per query: a consistent snapshot. */
            exec_simple(&sq->r, S_READ_BEGIN);
            r->status = run_op(&sq->r, r, sq->host);
            exec_simple(&sq->r, S_READ_END);
        }
        sq->host->post(sq->ctx, stq_deliver, group);
    }
    return NULL;
}

/* ------------------------------------------------------- lifecycle */

/* Checkpoint the WAL every 200 ms, off the writer's path.  PASSIVE
 * never waits for readers or the writer; the WAL file is truncated on
 * stop. */
static void *checkpointer_main(void *arg)
{
    struct sq *sq = arg;
    struct timespec ts;

    pthread_setname_np(pthread_self(), "sqlite-ckpt");

    pthread_mutex_lock(&sq->ck_mu);
    while (!sq->ck_stop) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&sq->ck_cv, &sq->ck_mu, &ts);
        if (sq->ck_stop)
            break;
        sq->ck_running = 1;
        pthread_mutex_unlock(&sq->ck_mu);
        sqlite3_wal_checkpoint_v2(sq->ck, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                  NULL, NULL);
        pthread_mutex_lock(&sq->ck_mu);
        sq->ck_running = 0;
        pthread_cond_broadcast(&sq->ck_done);
    }
    pthread_mutex_unlock(&sq->ck_mu);
    return NULL;
}

/* ------------------------------------------------------ file modes */

/* Append " 'path'" to the shell command in buf (of size n, *at bytes
 * used), a ' in it written '\'', so the command can be pasted as is.  A
 * path that does not fit is cut (the warning also names it whole). */
static void append_quoted(char *buf, size_t n, size_t *at, const char *path)
{
    if (*at + 3 >= n)
        return;
    buf[(*at)++] = ' ';
    buf[(*at)++] = '\'';
    for (const char *p = path; *p && *at + 6 < n; p++) {
        if (*p == '\'') {
            memcpy(buf + *at, "'\\''", 4);
            *at += 4;
        } else {
            buf[(*at)++] = *p;
        }
    }
    buf[(*at)++] = '\'';
    buf[*at] = 0;
}

/* DESIGN invariant 9: carechatd creates its files readable by owner and
 * group at most (main() sets the umask), but a database made before
 * that, by hand, or restored with cp under umask 022 may be readable by
 * every local account, and SQLite gives a new -wal and -shm the mode of
 * the database file.  When the database, its -wal or its -shm exists
 * with a bit for others, log one warning naming them, their modes and the
 * chmod that fixes it.  Changes nothing (the operator decides) and never
 * fails the start.  Called once, from sq_start(), before SQLite opens
 * the file. */
static void warn_exposed_files(struct sq *sq)
{
    static const char *const suffix[] = { "", "-wal", "-shm" };
    char files[1024] = "", cmd[1024] = "chmod o-rwx";
    size_t nfiles = 0, ncmd = strlen(cmd);
    int exposed = 0;

    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        char path[4096];
        struct stat st;
        int r;

        snprintf(path, sizeof path, "%s%s", sq->path, suffix[i]);
        if (stat(path, &st) < 0 || !(st.st_mode & (S_IROTH | S_IWOTH)))
            continue;
        r = snprintf(files + nfiles, sizeof files - nfiles, "%s%s (%04o)",
                     exposed ? ", " : "", path,
                     (unsigned)(st.st_mode & 07777));
        if (r > 0)
            nfiles += (size_t)r < sizeof files - nfiles
                          ? (size_t)r : sizeof files - nfiles - 1;
        append_quoted(cmd, sizeof cmd, &ncmd, path);
        exposed++;
    }
    if (exposed)
        sq->host->log(sq->ctx, CC_LOG_WARN, "readable by every local "
                      "account: %s; the chat history is health data, "
                      "make it private with: %s", files, cmd);
}

static int sq_start(void *inst)
{
    struct sq *sq = inst;

    warn_exposed_files(sq);
    if (db_open(sq, &sq->w, 0) < 0)
        return CC_E_FAIL;
    if (migrate(sq) < 0 || db_open(sq, &sq->r, 1) < 0) {
        db_close(&sq->w);
        return CC_E_FAIL;
    }
    /* The checkpointer's connection.  A connection learns the file is in
     * WAL mode on its first read; until then a checkpoint through it does
     * nothing at all. */
    if (sqlite3_open_v2(sq->path, &sq->ck, SQLITE_OPEN_READWRITE |
                                               SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK ||
        sqlite3_exec(sq->ck, "SELECT count(*) FROM sqlite_master", NULL,
                     NULL, NULL) != SQLITE_OK) {
        sq->host->log(sq->ctx, CC_LOG_ERROR, "cannot open %s: %s", sq->path,
                      sq->ck ? sqlite3_errmsg(sq->ck) : "out of memory");
        sqlite3_close(sq->ck);
        sq->ck = NULL;
        db_close(&sq->r);
        db_close(&sq->w);
        return CC_E_FAIL;
    }
    pthread_mutex_init(&sq->ck_mu, NULL);
    pthread_cond_init(&sq->ck_cv, NULL);
    pthread_cond_init(&sq->ck_done, NULL);
    /* Replaces the automatic checkpoint (that is a WAL hook too). */
    sqlite3_wal_hook(sq->w.h, wal_committed, sq);
    if (pthread_create(&sq->writer, NULL, writer_main, sq) != 0 ||
        pthread_create(&sq->reader, NULL, reader_main, sq) != 0 ||
        pthread_create(&sq->checkpointer, NULL, checkpointer_main, sq) != 0)
        abort();
    sq->running = 1;
    sq->host->log(sq->ctx, CC_LOG_INFO, "database %s open (WAL, "
                  "synchronous=%s, cache %lld KiB a connection)", sq->path,
                  sq->full_sync ? "full" : "normal", sq->cache_bytes / 1024);
    return CC_OK;
}

/* Drain both queues (their callbacks are posted), join, then done. */
static void sq_stop(void *inst, cc_post_cb done, void *arg)
{
    struct sq *sq = inst;

    if (sq->running) {
        stq_queue_stop(&sq->wq);
        stq_queue_stop(&sq->rq);
        pthread_join(sq->writer, NULL);
        pthread_join(sq->reader, NULL);
        pthread_mutex_lock(&sq->ck_mu);
        sq->ck_stop = 1;
        pthread_cond_signal(&sq->ck_cv);
        pthread_mutex_unlock(&sq->ck_mu);
        pthread_join(sq->checkpointer, NULL);
        /* Everything is written: fold the WAL into the database. */
        sqlite3_wal_checkpoint_v2(sq->ck, NULL, SQLITE_CHECKPOINT_TRUNCATE,
                                  NULL, NULL);
        sqlite3_close(sq->ck);
        sq->ck = NULL;
        pthread_mutex_destroy(&sq->ck_mu);
        pthread_cond_destroy(&sq->ck_cv);
        pthread_cond_destroy(&sq->ck_done);
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
    stq_queue_destroy(&sq->wq);
    stq_queue_destroy(&sq->rq);
    free(sq->path);
    free(sq);
}

/* ------------------------------------------------- the storage API */

static int sq_submit(struct stq_backend *b, struct stq_req *r)
{
    struct sq *sq = (struct sq *)b;

    return stq_queue_put(STQ_IS_WRITE(r->op) ? &sq->wq : &sq->rq, r);
}

static const void *sq_get_interface(void *inst, uint32_t kind)
{
    return kind == CC_KIND_STORAGE ? &stq_storage_api : NULL;
}

/* Not ready while the disk refuses writes (reads still work, but no
 * message can be stored). */
static int sq_health(void *inst, char *why, size_t why_len)
{
    struct sq *sq = inst;

    if (!atomic_load(&sq->disk_full))
        return CC_OK;
    snprintf(why, why_len, "database or disk is full");
    return CC_E_UNAVAIL;
}

static void sq_metrics(void *inst, cc_metric_cb emit, void *arg)
{
    struct sq *sq = inst;

    stq_queue_metrics(&sq->wq, &sq->rq, emit, arg);
    emit(arg, "sqlite_disk_full", "1 while the disk refuses writes.",
         CC_METRIC_GAUGE, atomic_load(&sq->disk_full));
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
    .health = sq_health,
    .metrics = sq_metrics,
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
