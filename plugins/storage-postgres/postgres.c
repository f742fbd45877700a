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

#define SCHEMA_VERSION 5
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

/* A message (read_msg), with c its chat: read when the other side's
 * read mark (schema 5) is at or after it. */
#define MSG_COLS "m.id, m.seq, m.sender_type, m.sender_id, m.content, " \
                 US("m.created_at") ", m.seq <= CASE m.sender_type "    \
                 "WHEN 1 THEN c.pro_read_upto ELSE c.pat_read_upto END, " \
                 "m.client_id, m.priority"
#define CHAT_COLS "c.id, c.patient_id, c.professional_id, " \
                  US("c.created_at") ", " US("c.updated_at")
/* A chat row with its last message, the viewer's unread count, each
 * side's marks and the parties' names: $V1/$V2 are the viewer's patient
 * and professional ids.  The last message is the highest seq still
 * stored (one backward step of the primary key), not seq = last_seq:
 * retention may have purged that one (message_purge), and last_seq stays
 * where it was.  Unread: the other party's messages after the viewer's
 * read mark (a range of the primary key). */
#define CHAT_FULL(vp, vr)                                                 \
    "SELECT " CHAT_COLS ", " MSG_COLS ", (SELECT count(*) FROM messages u " \
    "WHERE u.chat_id = c.id AND u.sender_type = "                        \
    "CASE WHEN c.patient_id = " vp "::uuid THEN 2 "                       \
    "WHEN c.professional_id = " vr "::uuid THEN 1 ELSE 0 END "            \
    "AND u.seq > CASE WHEN c.patient_id = " vp "::uuid THEN c.pat_read_upto " \
    "WHEN c.professional_id = " vr "::uuid THEN c.pro_read_upto "          \
    "ELSE 9223372036854775807 END), c.pat_read_id, c.pat_dlv_id, "        \
    "c.pro_read_id, c.pro_dlv_id, (SELECT name FROM profiles WHERE "     \
    "side = 1 AND id = c.patient_id), (SELECT name FROM profiles WHERE " \
    "side = 2 AND id = c.professional_id) "                              \
    "FROM chats c LEFT JOIN LATERAL (SELECT * FROM messages l "          \
    "WHERE l.chat_id = c.id ORDER BY l.seq DESC LIMIT 1) m ON true "

/* S_STATE_SET's assignments of side x, from 13 parameter numbers in
 * STQ_SIDE_COLS order. */
#define STATE_SET(x, a, b, c, d, e, f, g, h, i, j, k, l, m)               \
    x "_read_upto = $" a "::int8, " x "_read_id = $" b "::uuid, "         \
    x "_read_at = $" c "::int8, " x "_dlv_upto = $" d "::int8, "          \
    x "_dlv_id = $" e "::uuid, " x "_dlv_at = $" f "::int8, "             \
    x "_ntf_open = $" g "::int2, " x "_ntf_urgent = $" h "::int2, "       \
    x "_ntf_attempts = $" i "::int4, " x "_ntf_sent = $" j "::int4, "     \
    x "_ntf_due = $" k "::int8, " x "_ntf_lease = $" l "::int8, "         \
    x "_ntf_id = $" m "::uuid"

/* S_BUMPS_NTF's assignments of side x's episode, f the first due time
 * of the group's appends to x (0: none; then u is 0 too), u the
 * earliest due time of the urgent ones: f opens a closed episode (due f,
 * or u when earlier), u makes an open one urgent and due no later. */
#define NTF_BUMP(x, f, u)                                                \
    x "_ntf_due = CASE WHEN " f " = 0 THEN c." x "_ntf_due "              \
    "WHEN c." x "_ntf_open = 0 THEN CASE WHEN " u " > 0 AND " u " < " f   \
    " THEN " u " ELSE " f " END WHEN " u " > 0 AND (c." x "_ntf_due = 0 " \
    "OR " u " < c." x "_ntf_due) THEN " u " ELSE c." x "_ntf_due END, "   \
    x "_ntf_urgent = CASE WHEN " f " = 0 THEN c." x "_ntf_urgent "        \
    "WHEN " u " > 0 THEN 1 WHEN c." x "_ntf_open = 0 THEN 0 "             \
    "ELSE c." x "_ntf_urgent END, "                                       \
    x "_ntf_attempts = CASE WHEN " f " > 0 AND c." x "_ntf_open = 0 "     \
    "THEN 0 ELSE c." x "_ntf_attempts END, "                              \
    x "_ntf_sent = CASE WHEN " f " > 0 AND c." x "_ntf_open = 0 THEN 0 "  \
    "ELSE c." x "_ntf_sent END, "                                         \
    x "_ntf_lease = CASE WHEN " f " > 0 AND c." x "_ntf_open = 0 THEN 0 " \
    "ELSE c." x "_ntf_lease END, "                                        \
    x "_ntf_id = CASE WHEN " f " > 0 AND c." x "_ntf_open = 0 THEN NULL " \
    "ELSE c." x "_ntf_id END, "                                           \
    x "_ntf_open = CASE WHEN " f " > 0 THEN 1 ELSE c." x "_ntf_open END"

enum stmt {
    S_PROFILE_PUT, S_PROFILE_GET, S_CHAT_INSERT, S_CHAT_BY_PAIR, S_CHAT_GET,
    S_CHAT_EXISTS,
    S_APPEND, S_LOCK_CHATS, S_BUMPS, S_APPEND_ALL,
    S_CHAT_LIST, S_CHAT_NEWER, S_CHAT_COUNT,
    S_MSG_AFTER, S_MSG_BEFORE, S_MSG_BY_CLIENT, S_MSG_SEQ, S_PURGE,
    /* ABI 1.4 */
    S_OWNER_SET, S_NAME_SET, S_MSG_NEWEST, S_COUNT_FROM, S_FIRST_UNREAD,
    S_STATE_GET, S_STATE_SET, S_BUMPS_NTF, S_DUE_PAT, S_DUE_PRO,
    S_TICKET_PUT, S_TICKET_PRUNE, S_TICKET_TAKE, N_STMT
};

static const char *const sql[N_STMT] = {
    /* A profile without an owner takes the first user who presents it
     * (ABI 1.4); one with an owner keeps it. */
    [S_PROFILE_PUT] = "INSERT INTO profiles (side, id, user_id, created_at) "
                      "VALUES ($1::int2, $2::uuid, $3, " TS("$4") ") "
                      "ON CONFLICT (side, id) DO UPDATE SET user_id = "
                      "excluded.user_id WHERE profiles.user_id IS NULL AND "
                      "excluded.user_id IS NOT NULL",
    [S_PROFILE_GET] = "SELECT user_id FROM profiles WHERE side = $1::int2 "
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
                 "sender_id, content, created_at, client_id, priority) "
                 "SELECT $1::uuid, s.last_seq, $3::uuid, $4::int2, "
                 "$5::uuid, $6, " TS("$2") ", $7::uuid, $8::int2 FROM s "
                 "RETURNING seq",
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
                     "sender_id, content, created_at, priority) SELECT "
                     "v.chat, c.last_seq - v.back, v.id, v.st, v.sid, "
                     "v.content, " TS("v.t") ", v.pr FROM unnest("
                     "$1::uuid[], $2::int8[], $3::uuid[], $4::int2[], "
                     "$5::uuid[], $6::text[], $7::int8[], $8::int2[]) AS v "
                     "(chat, back, id, st, sid, content, t, pr) "
                     "JOIN chats c ON c.id = v.chat",
    /* An append that carries the client's id runs alone (not
     * pipelined), after looking for it: */
    [S_MSG_BY_CLIENT] = "SELECT " MSG_COLS " FROM messages m JOIN chats c "
                        "ON c.id = m.chat_id WHERE m.chat_id = $1::uuid "
                        "AND m.sender_id = $2::uuid AND "
                        "m.client_id = $3::uuid",
    [S_MSG_SEQ] = "SELECT seq FROM messages WHERE chat_id = $1::uuid AND "
                  "id = $2::uuid",
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
    /* ABI 1.4.  An admin moves a profile to a user (creating it). */
    [S_OWNER_SET] = "INSERT INTO profiles (side, id, user_id, created_at) "
                    "VALUES ($1::int2, $2::uuid, $3, " TS("$4") ") "
                    "ON CONFLICT (side, id) DO UPDATE SET "
                    "user_id = excluded.user_id",
    [S_NAME_SET] = "INSERT INTO profiles (side, id, name, created_at) "
                   "VALUES ($1::int2, $2::uuid, $3, " TS("$4") ") "
                   "ON CONFLICT (side, id) DO UPDATE SET name = excluded.name",
    [S_MSG_NEWEST] = "SELECT seq, id FROM messages WHERE chat_id = $1::uuid "
                     "ORDER BY seq DESC LIMIT 1",
    /* Messages of side $4 in ($2, $3]: what a mark newly covers. */
    [S_COUNT_FROM] = "SELECT count(*) FROM messages WHERE chat_id = $1::uuid "
                     "AND seq > $2::int8 AND seq <= $3::int8 AND "
                     "sender_type = $4::int2",
    /* Side $3's messages after $2: the oldest, when it was stored, how
     * many, whether one is urgent. */
    [S_FIRST_UNREAD] = "SELECT f.id, " US("f.created_at") ", a.n, a.u "
                       "FROM (SELECT count(*) AS n, coalesce(max(priority), "
                       "0) AS u FROM messages WHERE chat_id = $1::uuid AND "
                       "seq > $2::int8 AND sender_type = $3::int2) a "
                       "LEFT JOIN LATERAL (SELECT id, created_at FROM "
                       "messages WHERE chat_id = $1::uuid AND seq > $2::int8 "
                       "AND sender_type = $3::int2 ORDER BY seq LIMIT 1) f "
                       "ON true",
    /* A chat's marks and episodes, its row locked until COMMIT: marks,
     * claims and outcomes of one chat take turns, on every node. */
    [S_STATE_GET] = "SELECT patient_id, professional_id, "
                    STQ_SIDE_COLS("pat") ", " STQ_SIDE_COLS("pro")
                    " FROM chats WHERE id = $1::uuid FOR UPDATE",
    [S_STATE_SET] = "UPDATE chats SET " STATE_SET("pat", "2", "3", "4", "5",
                    "6", "7", "8", "9", "10", "11", "12", "13", "14") ", "
                    STATE_SET("pro", "15", "16", "17", "18", "19", "20",
                              "21", "22", "23", "24", "25", "26", "27")
                    " WHERE id = $1::uuid",
    /* A pipelined group whose appends carry due times: S_BUMPS, and each
     * side's episode as stq_episode_append would leave it after the
     * group: $4/$6 the first due time of an append to the patient / the
     * professional (0: none), $5/$7 the earliest of the urgent ones. */
    [S_BUMPS_NTF] = "UPDATE chats c SET last_seq = c.last_seq + v.n, "
                    "updated_at = greatest(c.updated_at, " TS("v.t") "), "
                    NTF_BUMP("pat", "v.fa", "v.ua") ", "
                    NTF_BUMP("pro", "v.fr", "v.ur") " FROM unnest("
                    "$1::uuid[], $2::int8[], $3::int8[], $4::int8[], "
                    "$5::int8[], $6::int8[], $7::int8[]) WITH ORDINALITY "
                    "AS v (id, n, t, fa, ua, fr, ur, i) WHERE c.id = v.id "
                    "RETURNING v.i, c.last_seq",
    /* Episodes due at $1 and not handed out, oldest first, at most $2,
     * locked until COMMIT; rows another node holds are skipped, and one
     * it claimed meanwhile is looked at again once locked (its lease
     * then excludes it): two nodes never hand out the same episode. */
    [S_DUE_PAT] = "SELECT id, pat_ntf_due FROM chats WHERE pat_ntf_due > 0 "
                  "AND pat_ntf_due <= $1::int8 AND pat_ntf_lease <= $1::int8 "
                  "ORDER BY pat_ntf_due LIMIT $2::int8 "
                  "FOR UPDATE SKIP LOCKED",
    [S_DUE_PRO] = "SELECT id, pro_ntf_due FROM chats WHERE pro_ntf_due > 0 "
                  "AND pro_ntf_due <= $1::int8 AND pro_ntf_lease <= $1::int8 "
                  "ORDER BY pro_ntf_due LIMIT $2::int8 "
                  "FOR UPDATE SKIP LOCKED",
    [S_TICKET_PUT] = "INSERT INTO tickets (id, user_id, patient_id, "
                     "professional_id, is_admin, token_expires_at, "
                     "expires_at) VALUES ($1, $2, $3::uuid, $4::uuid, "
                     "$5::bool, $6::int8, $7::int8) ON CONFLICT (id) DO "
                     "UPDATE SET user_id = excluded.user_id, patient_id = "
                     "excluded.patient_id, professional_id = "
                     "excluded.professional_id, is_admin = "
                     "excluded.is_admin, token_expires_at = "
                     "excluded.token_expires_at, expires_at = "
                     "excluded.expires_at",
    [S_TICKET_PRUNE] = "DELETE FROM tickets WHERE expires_at < $1::int8",
    /* Taken and deleted in one statement: of two nodes taking one
     * ticket, the second finds it gone. */
    [S_TICKET_TAKE] = "DELETE FROM tickets WHERE id = $1 RETURNING user_id, "
                      "patient_id, professional_id, is_admin, "
                      "token_expires_at, expires_at",
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

/* Version 4 to 5 (ABI 1.4): messages keep their priority, profiles a
 * display name (the owner was user_id all along: the first user who
 * presented the profile, or the admin's registration).  Each side's read
 * and delivered marks (a message's seq and id, the mark's time) and its
 * notification episode go on the chat row, which every append updates
 * anyway: an append writes no second row.  The read marks replace
 * messages.is_read, which goes with its partial index (an entry per
 * message appended): a side's READ mark is the newest message of the
 * other party it had read (its time that message's, the best known),
 * DELIVERED the same.  Due episodes are found through partial indexes
 * that hold only the due ones; times are microseconds (int8), as the
 * host gives them.  WebSocket tickets live in their own table until
 * taken or expired. */
#define SIDE_V5(x)                                                       \
    "ALTER TABLE chats ADD COLUMN " x "_read_upto int8 NOT NULL DEFAULT 0," \
    " ADD COLUMN " x "_read_id uuid,"                                    \
    " ADD COLUMN " x "_read_at int8 NOT NULL DEFAULT 0,"                 \
    " ADD COLUMN " x "_dlv_upto int8 NOT NULL DEFAULT 0,"                \
    " ADD COLUMN " x "_dlv_id uuid,"                                     \
    " ADD COLUMN " x "_dlv_at int8 NOT NULL DEFAULT 0,"                  \
    " ADD COLUMN " x "_ntf_open int2 NOT NULL DEFAULT 0,"                \
    " ADD COLUMN " x "_ntf_urgent int2 NOT NULL DEFAULT 0,"              \
    " ADD COLUMN " x "_ntf_attempts int4 NOT NULL DEFAULT 0,"            \
    " ADD COLUMN " x "_ntf_sent int4 NOT NULL DEFAULT 0,"                \
    " ADD COLUMN " x "_ntf_due int8 NOT NULL DEFAULT 0,"                 \
    " ADD COLUMN " x "_ntf_lease int8 NOT NULL DEFAULT 0,"               \
    " ADD COLUMN " x "_ntf_id uuid;"                                     \
    "CREATE INDEX chats_" x "_due ON chats (" x "_ntf_due)"               \
    " WHERE " x "_ntf_due > 0;"
/* x's marks from is_read: the newest message of side `from` read. */
#define MARK_V5(x, from)                                                 \
    "UPDATE chats c SET " x "_read_upto = m.seq, " x "_read_id = m.id, "  \
    x "_read_at = " US("m.created_at") ", " x "_dlv_upto = m.seq, "       \
    x "_dlv_id = m.id, " x "_dlv_at = " US("m.created_at")                \
    " FROM (SELECT DISTINCT ON (chat_id) chat_id, seq, id, created_at"   \
    " FROM messages WHERE sender_type = " from " AND is_read"             \
    " ORDER BY chat_id, seq DESC) m WHERE m.chat_id = c.id;"
static const char schema_v4_to_v5[] =
    "ALTER TABLE messages ADD COLUMN priority int2 NOT NULL DEFAULT 0;"
    "ALTER TABLE profiles ADD COLUMN name text;"
    SIDE_V5("pat") SIDE_V5("pro")
    MARK_V5("pat", "2") MARK_V5("pro", "1")
    "DROP INDEX messages_unread;"
    "ALTER TABLE messages DROP COLUMN is_read;"
    "CREATE TABLE tickets (id text PRIMARY KEY, user_id text NOT NULL,"
    " patient_id uuid, professional_id uuid, is_admin bool NOT NULL,"
    " token_expires_at int8 NOT NULL, expires_at int8 NOT NULL);"
    "CREATE INDEX tickets_by_expiry ON tickets (expires_at);";

struct pg;

/* One connection and the thread that owns it. */
struct worker {
    struct pg *pg;
    struct stq_queue *q;
    PGconn *conn;
    pthread_t thread;
    int writer;
    int up;                     /* thread-local view: conn is usable */
    char lost[96];              /* why conn counts as lost although libpq
                                   may call it open (note_lost), or "" */
    char *arr;                  /* the writer's array parameters */
    size_t arr_cap;
    int conflict;               /* a statement failed with is_conflict */
};

struct pg {
    struct stq_backend base;     /* first: the storage API's inst */
    char *conninfo;
    char *conninfo_source;      /* "conninfo" or the file, for messages */
    int n_readers;
    int batch_max;
    size_t queue_max;
    int backoff_max_ms;
    int want_primary;           /* target_session_attrs read-write or
                                   primary: conn_unusable() checks */
    struct stq_queue wq, rq;
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

static int pg_submit(struct stq_backend *b, struct stq_req *r);

static int pg_create(const struct cc_host_api *host, cc_plugin_ctx *ctx,
                     void **inst)
{
    struct pg *pg = stq_xcalloc(1, sizeof *pg);
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
    if (version < 5 &&
        (command(c, schema_v4_to_v5, err, sizeof err) < 0 ||
         command(c, "INSERT INTO carechat_schema (version) VALUES (5)",
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
        rc = stq_queue_wait(w->q, (int)(last_ms + delay_ms - now), 1);
        if (rc <= 0)
            return rc;
        now = mono_ms();
    }
    if (now < last_ms + RETRY_MIN_MS &&
        stq_queue_wait(w->q, (int)(last_ms + RETRY_MIN_MS - now), 0) < 0)
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
        mark = stq_queue_mark(w->q);
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
            stq_queue_fail_upto(&pg->base, w->q, mark, CC_E_UNAVAIL,
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

/* A statement the server aborted because of other transactions (chosen
 * as a deadlock's victim, or a serialization failure: SQLSTATE 40P01,
 * 40001).  Its transaction stored nothing, and run again once the others
 * are done it succeeds: two nodes' groups that lock one profile and one
 * chat in opposite order (a user's first requests on two nodes at once)
 * meet this. */
static int is_conflict(const PGresult *res)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    return s && (strcmp(s, "40P01") == 0 || strcmp(s, "40001") == 0);
}

/* Record the failure of r; a dead connection makes it CC_E_UNAVAIL. */
static int fail(struct worker *w, struct stq_req *r, PGresult *res)
{
    char err[160];

    if (PQstatus(w->conn) != CONNECTION_OK || note_lost(w, res)) {
        snprintf(r->error, sizeof r->error, "postgres: connection lost");
        PQclear(res);
        return CC_E_UNAVAIL;
    }
    if (is_conflict(res))
        w->conflict = 1;
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

/* A message at columns [c0, c0+9): id, seq, sender_type, sender_id,
 * content, created_at, is_read, client_id, priority.  0 when the row has
 * no message. */
static int read_msg(const PGresult *res, int row, int c0,
                    const char *chat_id, struct stq_msg *o)
{
    int len;

    if (PQgetisnull(res, row, c0))
        return 0;
    len = PQgetlength(res, row, c0 + 4);
    stq_copy_id(o->id, PQgetvalue(res, row, c0));
    stq_copy_id(o->chat, chat_id);
    stq_copy_id(o->sender, PQgetvalue(res, row, c0 + 3));
    o->content = malloc((size_t)len + 1);
    if (!o->content)
        abort();
    memcpy(o->content, PQgetvalue(res, row, c0 + 4), (size_t)len + 1);
    if (PQgetisnull(res, row, c0 + 7))
        o->client_id[0] = '\0';
    else
        stq_copy_id(o->client_id, PQgetvalue(res, row, c0 + 7));
    stq_msg_link(o, (size_t)len, col_i64(res, row, c0 + 1),
                (int32_t)col_i64(res, row, c0 + 2),
                col_i64(res, row, c0 + 5),
                PQgetvalue(res, row, c0 + 6)[0] == 't',
                (int32_t)col_i64(res, row, c0 + 8));
    return 1;
}

/* A CHAT_FULL row: chat (5), last message (9), unread count (1), marks
 * (4: the patient's read and delivered, the professional's), names
 * (2). */
static void read_chat(const PGresult *res, int row, struct stq_chat *o)
{
    stq_copy_id(o->id, PQgetvalue(res, row, 0));
    stq_copy_id(o->pat, PQgetvalue(res, row, 1));
    stq_copy_id(o->pro, PQgetvalue(res, row, 2));
    stq_chat_link(o, col_i64(res, row, 3), col_i64(res, row, 4));
    if (read_msg(res, row, 5, o->id, &o->last))
        o->c.last_message = &o->last.m;
    o->c.unread_count = col_i64(res, row, 14);
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        int col = side == CC_SIDE_PATIENT ? 15 : 17;

        stq_chat_marks(o, side, PQgetvalue(res, row, col),
                      PQgetvalue(res, row, col + 1));
        stq_chat_name(o, side, PQgetisnull(res, row, 18 + side)
                                  ? NULL : PQgetvalue(res, row, 18 + side));
    }
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

/* Whether profile id of side exists (*yes); with owner, its owner into
 * r's result (res.owner).  CC_OK or an error. */
static int profile_lookup(struct worker *w, struct stq_req *r, int32_t side,
                          const char *id, int *yes, int owner)
{
    const char *p[] = { side_str(side), id };
    PGresult *res = run(w, S_PROFILE_GET, 2, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    *yes = PQntuples(res) > 0;
    if (*yes && owner)
        stq_set_owner(r, PQgetisnull(res, 0, 0) ? NULL
                                               : PQgetvalue(res, 0, 0));
    PQclear(res);
    return CC_OK;
}

static int profile_exists(struct worker *w, struct stq_req *r, int32_t side,
                          const char *id, int *yes)
{
    return profile_lookup(w, r, side, id, yes, 0);
}

/* PROFILE_PUT, PROFILE_OWNER (id = profile, user) and PROFILE_NAME (name):
 * the upsert s, then the owner it leaves (res.owner). */
static int do_profile_write(struct worker *w, struct stq_req *r, enum stmt s)
{
    char t[24];
    const char *p[] = { side_str(r->side), r->id,
                        s == S_NAME_SET ? r->name : r->user, t };
    PGresult *res;
    int yes;

    snprintf(t, sizeof t, "%lld", (long long)r->at_us);
    res = run(w, s, 4, p);
    if (!ok_cmd(res))
        return fail(w, r, res);
    PQclear(res);
    return profile_lookup(w, r, r->side, r->id, &yes, 1);
}

static int do_profile_get(struct worker *w, struct stq_req *r)
{
    int yes, rc = profile_lookup(w, r, r->side, r->id, &yes, 1);

    return rc != CC_OK ? rc : yes ? CC_OK : CC_E_NOTFOUND;
}

static int do_chat_open(struct worker *w, struct stq_req *r)
{
    char t[24];
    const char *ins[] = { r->chat, r->pat, r->pro, t };
    const char *pair[] = { r->pat, r->pro };
    PGresult *res;
    int yes, rc;

    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        rc = profile_exists(w, r, side,
                            side == CC_SIDE_PATIENT ? r->pat : r->pro, &yes);
        if (rc != CC_OK)
            return rc;
        if (!yes) {
            r->res.missing_side = side;
            return CC_E_NOTFOUND;
        }
    }
    snprintf(t, sizeof t, "%lld", (long long)r->at_us);
    res = run(w, S_CHAT_INSERT, 4, ins);
    if (!ok_cmd(res))
        return fail(w, r, res);
    r->res.created = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = run(w, S_CHAT_BY_PAIR, 2, pair);
    if (!ok_rows(res) || PQntuples(res) != 1)
        return fail(w, r, res);
    read_chat(res, 0, stq_one_chat(r));
    PQclear(res);
    return CC_OK;
}

static int do_chat_get(struct worker *w, struct stq_req *r)
{
    const char *p[] = { r->chat, opt_id(r->vpat), opt_id(r->vpro) };
    PGresult *res = run(w, S_CHAT_GET, 3, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    read_chat(res, 0, stq_one_chat(r));
    PQclear(res);
    return CC_OK;
}

static int do_chat_list(struct worker *w, struct stq_req *r)
{
    char cur[24], lim[24];
    const char *cnt[] = { opt_id(r->vpat), opt_id(r->vpro) };
    const char *p[] = { opt_id(r->vpat), opt_id(r->vpro), cur,
                        r->after || r->cursor_us ? opt_id(r->cursor_id) : NULL,
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
    stq_alloc_chats(r, (size_t)rows);
    for (int i = 0; i < rows && r->n < r->limit; i++)
        read_chat(res, i, &r->chats[r->n++]);
    r->res.more = rows > (int)r->limit;
    PQclear(res);
    stq_finish_chats(r, r->after > 0);
    return CC_OK;
}

/* The parameters of S_APPEND for r; t holds the time's text. */
static void append_params(const struct stq_req *r, char t[24],
                          const char *p[6])
{
    snprintf(t, 24, "%lld", (long long)r->at_us);
    p[0] = r->chat;
    p[1] = t;
    p[2] = r->id;
    p[3] = side_str(r->side);
    p[4] = r->sender;
    p[5] = r->content;
}

/* S_APPEND's answer: the stored message, or no row (no such chat). */
static int append_result(struct worker *w, struct stq_req *r, PGresult *res)
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
    stq_append_result(r, n);
    return CC_OK;
}

/* The message r's client_id names, if stored: CC_OK with it as r's
 * result (res.duplicate set), 1 when there is none, or an error.  Two
 * nodes storing one client_id at once: the unique index fails the
 * second, whose client retries and is answered here. */
static int find_by_client(struct worker *w, struct stq_req *r)
{
    const char *p[] = { r->chat, r->sender, r->cid };
    PGresult *res = run(w, S_MSG_BY_CLIENT, 3, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 1;
    }
    stq_alloc_msgs(r, 1);
    r->nm = read_msg(res, 0, 0, r->chat, &r->msgs[0]);
    PQclear(res);
    r->res.message = &r->msgs[0].m;
    r->res.duplicate = 1;
    return CC_OK;
}

/* Run statement s for r, whose answer is only its success: CC_OK, or
 * r's failure. */
static int run_for(struct worker *w, struct stq_req *r, enum stmt s, int n,
                   const char *const *p)
{
    PGresult *res = run(w, s, n, p);

    if (!ok_cmd(res) && !ok_rows(res))
        return fail(w, r, res);
    PQclear(res);
    return CC_OK;
}

/* An append that went through S_APPEND (alone, or with a client id)
 * and carries a due time: its episode, by S_BUMPS_NTF for its chat
 * with no message counted.  (The row is already locked and written by
 * S_APPEND in this transaction.) */
static int append_episode(struct worker *w, struct stq_req *r)
{
    char id[48], t[32], f[32], u[32];
    const char *none = "{0}", *p[7];
    int to_pat = r->side == CC_SIDE_PROFESSIONAL;

    snprintf(id, sizeof id, "{%s}", r->chat);
    snprintf(t, sizeof t, "{%lld}", (long long)r->at_us);
    snprintf(f, sizeof f, "{%lld}", (long long)r->due);
    snprintf(u, sizeof u, "{%lld}",
             (long long)(r->priority == CC_PRIORITY_URGENT ? r->due : 0));
    p[0] = id;
    p[1] = none;
    p[2] = t;
    p[3] = to_pat ? f : none;
    p[4] = to_pat ? u : none;
    p[5] = to_pat ? none : f;
    p[6] = to_pat ? none : u;
    return run_for(w, r, S_BUMPS_NTF, 7, p);
}

static int do_msg_append(struct worker *w, struct stq_req *r)
{
    char t[24];
    const char *p[8];
    int rc;

    if (r->cid[0] && (rc = find_by_client(w, r)) != 1)
        return rc;
    append_params(r, t, p);
    p[6] = opt_id(r->cid);
    p[7] = r->priority == CC_PRIORITY_URGENT ? "1" : "0";
    rc = append_result(w, r, run(w, S_APPEND, 8, p));
    return rc == CC_OK && r->due ? append_episode(w, r) : rc;
}

/* ------------------------------------------ marks and notifications */

/* A chat's parties and its marks and episodes (S_STATE_GET). */
struct chat_state {
    char pat[STQ_ID_LEN + 1], pro[STQ_ID_LEN + 1];
    struct stq_state st;
};

/* Side's STQ_SIDE_COLS from column col on. */
static void read_state_side(const PGresult *res, int col,
                            struct stq_state *st, int side)
{
    struct stq_episode *e = &st->ep[side];

    st->read[side].seq = col_i64(res, 0, col);
    stq_copy_id(st->read[side].id, PQgetvalue(res, 0, col + 1));
    st->read[side].at = col_i64(res, 0, col + 2);
    st->dlv[side].seq = col_i64(res, 0, col + 3);
    stq_copy_id(st->dlv[side].id, PQgetvalue(res, 0, col + 4));
    st->dlv[side].at = col_i64(res, 0, col + 5);
    e->open = (int32_t)col_i64(res, 0, col + 6);
    e->urgent = (int32_t)col_i64(res, 0, col + 7);
    e->attempts = (int32_t)col_i64(res, 0, col + 8);
    e->sent = (int32_t)col_i64(res, 0, col + 9);
    e->due = col_i64(res, 0, col + 10);
    e->lease = col_i64(res, 0, col + 11);
    stq_copy_id(e->id, PQgetvalue(res, 0, col + 12));
}

/* Lock chat id's row and read its state: CC_OK, CC_E_NOTFOUND or an
 * error. */
static int state_get(struct worker *w, struct stq_req *r, const char *id,
                     struct chat_state *cs)
{
    const char *p[] = { id };
    PGresult *res = run(w, S_STATE_GET, 1, p);

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    memset(cs, 0, sizeof *cs);
    stq_copy_id(cs->pat, PQgetvalue(res, 0, 0));
    stq_copy_id(cs->pro, PQgetvalue(res, 0, 1));
    read_state_side(res, 2, &cs->st, CC_SIDE_PATIENT);
    read_state_side(res, 2 + STQ_N_SIDE_COLS, &cs->st, CC_SIDE_PROFESSIONAL);
    PQclear(res);
    return CC_OK;
}

/* Write chat id's state back (S_STATE_SET). */
static int state_set(struct worker *w, struct stq_req *r, const char *id,
                     const struct stq_state *st)
{
    char num[2][STQ_N_SIDE_COLS][24];
    const char *p[1 + 2 * STQ_N_SIDE_COLS];

    p[0] = id;
    for (int side = CC_SIDE_PATIENT; side <= CC_SIDE_PROFESSIONAL; side++) {
        const struct stq_episode *e = &st->ep[side];
        const int64_t v[STQ_N_SIDE_COLS] = {
            st->read[side].seq, 0, st->read[side].at, st->dlv[side].seq, 0,
            st->dlv[side].at, e->open, e->urgent, e->attempts, e->sent,
            e->due, e->lease, 0,
        };
        const char **q = p + 1 + (side - 1) * STQ_N_SIDE_COLS;

        for (int i = 0; i < STQ_N_SIDE_COLS; i++) {
            snprintf(num[side - 1][i], 24, "%lld", (long long)v[i]);
            q[i] = num[side - 1][i];
        }
        q[1] = opt_id(st->read[side].id);   /* the ids, in STQ_SIDE_COLS */
        q[4] = opt_id(st->dlv[side].id);
        q[12] = opt_id(e->id);
    }
    return run_for(w, r, S_STATE_SET, 1 + 2 * STQ_N_SIDE_COLS, p);
}

/* The message a mark goes to: r->id in chat r->chat, or its newest when r->id
 * is "" (*seq 0: the chat has none).  CC_OK, CC_E_NOTFOUND (r->id is not
 * one of its messages) or an error. */
static int mark_target(struct worker *w, struct stq_req *r, int64_t *seq,
                       char id[STQ_ID_LEN + 1])
{
    const char *p[] = { r->chat, r->id };
    PGresult *res = run(w, r->id[0] ? S_MSG_SEQ : S_MSG_NEWEST,
                        r->id[0] ? 2 : 1, p);

    *seq = 0;
    id[0] = '\0';
    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 1) {
        *seq = col_i64(res, 0, 0);
        stq_copy_id(id, r->id[0] ? r->id : PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return *seq || !r->id[0] ? CC_OK : CC_E_NOTFOUND;
}

/* stq_mark_io's count (S_COUNT_FROM). */
static int count_from(void *arg, struct stq_req *r, int64_t after,
                      int64_t upto, int from, int64_t *n)
{
    char a[24], u[24];
    const char *p[] = { r->chat, a, u, side_str(from) };
    PGresult *res;

    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(u, sizeof u, "%lld", (long long)upto);
    res = run(arg, S_COUNT_FROM, 4, p);
    if (!ok_rows(res) || PQntuples(res) != 1)
        return fail(arg, r, res);
    *n = col_i64(res, 0, 0);
    PQclear(res);
    return CC_OK;
}

/* Side from's messages in chat `chat` after seq (S_FIRST_UNREAD): the
 * oldest one's id into first ("" none) and time, how many, whether one
 * is urgent. */
static int first_unread(struct worker *w, struct stq_req *r,
                        const char *chat, int64_t seq, int from,
                        char first[STQ_ID_LEN + 1], int64_t *at, int64_t *n,
                        int32_t *urgent)
{
    char a[24];
    const char *p[] = { chat, a, side_str(from) };
    PGresult *res;

    snprintf(a, sizeof a, "%lld", (long long)seq);
    res = run(w, S_FIRST_UNREAD, 3, p);
    if (!ok_rows(res) || PQntuples(res) != 1)
        return fail(w, r, res);
    stq_copy_id(first, PQgetvalue(res, 0, 0));
    *at = col_i64(res, 0, 1);
    *n = col_i64(res, 0, 2);
    *urgent = col_i64(res, 0, 3) == CC_PRIORITY_URGENT;
    PQclear(res);
    return CC_OK;
}

/* stq_mark_io's unread. */
static int unread_after(void *arg, struct stq_req *r, int64_t after,
                        int from, int64_t *n, int64_t *oldest_at,
                        int32_t *urgent)
{
    char first[STQ_ID_LEN + 1];

    return first_unread(arg, r, r->chat, after, from, first, oldest_at, n,
                        urgent);
}

/* chat, id = up to ("" the newest), side, kind, at_us, delay: the
 * chat's row locked, its marks moved as stq_mark_apply decides, written
 * back when they moved. */
static int do_mark_set(struct worker *w, struct stq_req *r)
{
    const struct stq_mark_io io = { count_from, unread_after, w };
    struct chat_state cs;
    char id[STQ_ID_LEN + 1];
    int64_t seq;
    int rc = state_get(w, r, r->chat, &cs);

    if (rc == CC_OK)
        rc = mark_target(w, r, &seq, id);
    if (rc != CC_OK)
        return rc;
    rc = stq_mark_apply(r, &cs.st, seq, id, &io);
    return rc <= 0 ? rc : state_set(w, r, r->chat, &cs.st);
}

/* The old mark_read (chat, side = reader): a READ mark to the
 * chat's newest message, now. */
static int do_mark_read(struct worker *w, struct stq_req *r)
{
    int rc;

    r->id[0] = '\0';
    r->kind = CC_MARK_READ;
    r->delay = 0;
    rc = do_mark_set(w, r);
    r->res.mark = NULL;
    return rc;
}

/* One due (chat, side) of a claim (its row locked by S_DUE_*): checked
 * again, handed out, its notification added. */
static int claim_one(struct worker *w, struct stq_req *r, const char *chat,
                     int side)
{
    struct chat_state cs;
    struct stq_episode *e = &cs.st.ep[side];
    struct stq_ntf *n;
    int64_t at, unread;
    int32_t urgent;
    int yes, rc = state_get(w, r, chat, &cs);

    if (rc == CC_E_NOTFOUND ||
        (rc == CC_OK && !stq_episode_claimable(e, r->at_us)))
        return CC_OK;
    if (rc != CC_OK)
        return rc;
    if (stq_episode_claim(e, r->at_us, r->delay, w->pg->base.host) != CC_OK) {
        snprintf(r->error, sizeof r->error, "postgres: no random bytes");
        return CC_E_FAIL;
    }
    if ((rc = state_set(w, r, chat, &cs.st)) != CC_OK)
        return rc;
    n = stq_add_ntf(r);
    stq_copy_id(n->id, e->id);
    stq_copy_id(n->chat, chat);
    stq_copy_id(n->profile, side == CC_SIDE_PATIENT ? cs.pat : cs.pro);
    rc = first_unread(w, r, chat, cs.st.read[side].seq, 3 - side, n->first,
                      &at, &unread, &urgent);
    if (rc == CC_OK)
        rc = profile_lookup(w, r, side, n->profile, &yes, 1);
    if (rc != CC_OK)
        return rc;
    n->user = r->owner;         /* the lookup's copy moves to n */
    r->owner = NULL;
    r->res.owner = NULL;
    stq_ntf_link(n, side, unread, at, e);
    return CC_OK;
}

/* A due (chat, side) a claim locked. */
struct due {
    char chat[STQ_ID_LEN + 1];
    int side;
    int64_t due;
};

/* Lock and read the due episodes of side (S_DUE_PAT or S_DUE_PRO) into
 * v from *n on. */
static int lock_due(struct worker *w, struct stq_req *r, int side,
                    struct due *v, size_t *n)
{
    char now[24], lim[24];
    const char *p[] = { now, lim };
    PGresult *res;

    snprintf(now, sizeof now, "%lld", (long long)r->at_us);
    snprintf(lim, sizeof lim, "%u", r->limit);
    res = run(w, side == CC_SIDE_PATIENT ? S_DUE_PAT : S_DUE_PRO, 2, p);
    if (!ok_rows(res))
        return fail(w, r, res);
    for (int i = 0; i < PQntuples(res); i++, (*n)++) {
        stq_copy_id(v[*n].chat, PQgetvalue(res, i, 0));
        v[*n].side = side;
        v[*n].due = col_i64(res, i, 1);
    }
    PQclear(res);
    return CC_OK;
}

static int by_due(const void *a, const void *b)
{
    const struct due *x = a, *y = b;

    return x->due < y->due ? -1 : x->due > y->due;
}

/* at_us = now, delay = lease, limit.  One transaction (the group's):
 * each side's due episodes locked, skipping what another node holds
 * (S_DUE_*), the oldest `limit` of both handed out.  A node that claims
 * the same rows waits for none of them and, once this commits, sees
 * their leases: no episode is handed out twice. */
static int do_notify_claim(struct worker *w, struct stq_req *r)
{
    struct due *v = stq_xcalloc(2 * (size_t)r->limit, sizeof *v);
    size_t n = 0;
    int rc = lock_due(w, r, CC_SIDE_PATIENT, v, &n);

    if (rc == CC_OK)
        rc = lock_due(w, r, CC_SIDE_PROFESSIONAL, v, &n);
    qsort(v, n, sizeof *v, by_due);
    for (size_t i = 0; rc == CC_OK && i < n && i < r->limit; i++)
        rc = claim_one(w, r, v[i].chat, v[i].side);
    free(v);
    if (rc == CC_OK)
        stq_finish_ntfs(r);
    return rc;
}

/* chat, side, id, kind = result, due = next: notify_done.  An
 * outcome for an episode that ended, or another id, changes nothing. */
static int do_notify_done(struct worker *w, struct stq_req *r)
{
    struct chat_state cs;
    int rc = state_get(w, r, r->chat, &cs);

    if (rc == CC_E_NOTFOUND)
        return CC_OK;
    if (rc != CC_OK ||
        !stq_episode_done(&cs.st.ep[r->side], r->id, r->kind, r->due, r->at_us))
        return rc;
    return state_set(w, r, r->chat, &cs.st);
}

/* tid, user, pat, pro, kind = is_admin, after = token exp, at_us =
 * expires, before = now: expired tickets go first. */
static int do_ticket_put(struct worker *w, struct stq_req *r)
{
    char now[24], exp[24], expires[24];
    const char *prune[] = { now };
    const char *p[] = { r->tid, r->user, opt_id(r->pat), opt_id(r->pro),
                        r->kind ? "true" : "false", exp, expires };
    int rc;

    snprintf(now, sizeof now, "%lld", (long long)r->before);
    snprintf(exp, sizeof exp, "%lld", (long long)r->after);
    snprintf(expires, sizeof expires, "%lld", (long long)r->at_us);
    rc = run_for(w, r, S_TICKET_PRUNE, 1, prune);
    return rc != CC_OK ? rc : run_for(w, r, S_TICKET_PUT, 7, p);
}

/* tid, at_us = now: taken and deleted in one statement (S_TICKET_TAKE). */
static int do_ticket_take(struct worker *w, struct stq_req *r)
{
    const char *p[] = { r->tid };
    PGresult *res = run(w, S_TICKET_TAKE, 1, p);
    struct stq_ticket *k = &r->ticket;
    int64_t expires;

    if (!ok_rows(res))
        return fail(w, r, res);
    if (PQntuples(res) == 0 || (expires = col_i64(res, 0, 5)) < r->at_us) {
        PQclear(res);
        return CC_E_NOTFOUND;
    }
    memcpy(k->id, r->tid, sizeof k->id);
    if (!(k->user = strdup(PQgetvalue(res, 0, 0))))
        abort();
    stq_copy_id(k->pat, PQgetvalue(res, 0, 1));
    stq_copy_id(k->pro, PQgetvalue(res, 0, 2));
    stq_ticket_link(r, PQgetvalue(res, 0, 3)[0] == 't', col_i64(res, 0, 4),
                   expires);
    PQclear(res);
    return CC_OK;
}

static int do_msg_purge(struct worker *w, struct stq_req *r)
{
    char t[24], lim[24];
    const char *p[] = { t, lim };
    PGresult *res;

    snprintf(t, sizeof t, "%lld", (long long)r->at_us);
    snprintf(lim, sizeof lim, "%lu", (unsigned long)r->limit);
    res = run(w, S_PURGE, 2, p);
    if (!ok_rows(res) || PQntuples(res) != 1)
        return fail(w, r, res);
    r->res.count = col_i64(res, 0, 0);
    r->res.more = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    return CC_OK;
}

/* r->after from the seq of message r->id (after_id): CC_OK, or
 * CC_E_NOTFOUND when the chat has no such message. */
static int seq_of(struct worker *w, struct stq_req *r)
{
    const char *p[] = { r->chat, r->id };
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

static int do_msg_list(struct worker *w, struct stq_req *r)
{
    char cur[24], lim[24];
    const char *p[] = { r->chat, cur, lim };
    int desc = r->before > 0, rows, rc;
    size_t n = 0;
    PGresult *res;

    if (r->id[0] && (rc = seq_of(w, r)) != CC_OK)
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
    stq_alloc_msgs(r, (size_t)rows);
    for (int i = 0; i < rows && n < r->limit; i++)
        if (read_msg(res, i, 1, r->chat, &r->msgs[n]))
            r->nm = ++n;
    r->res.more = rows > (int)r->limit;
    PQclear(res);
    stq_finish_msgs(r, n, desc);
    return CC_OK;
}

static int run_op(struct worker *w, struct stq_req *r)
{
    switch (r->op) {
    case STQ_PROFILE_PUT: return do_profile_write(w, r, S_PROFILE_PUT);
    case STQ_PROFILE_OWNER: return do_profile_write(w, r, S_OWNER_SET);
    case STQ_PROFILE_NAME: return do_profile_write(w, r, S_NAME_SET);
    case STQ_MARK_SET: return do_mark_set(w, r);
    case STQ_TICKET_PUT: return do_ticket_put(w, r);
    case STQ_TICKET_TAKE: return do_ticket_take(w, r);
    case STQ_NOTIFY_CLAIM: return do_notify_claim(w, r);
    case STQ_NOTIFY_DONE: return do_notify_done(w, r);
    case STQ_CHAT_OPEN: return do_chat_open(w, r);
    case STQ_MSG_APPEND: return do_msg_append(w, r);
    case STQ_MARK_READ: return do_mark_read(w, r);
    case STQ_MSG_PURGE: return do_msg_purge(w, r);
    case STQ_PROFILE_GET: return do_profile_get(w, r);
    case STQ_CHAT_GET: return do_chat_get(w, r);
    case STQ_CHAT_LIST: return do_chat_list(w, r);
    default: return do_msg_list(w, r);
    }
}

/* ------------------------------------------------------------ workers */

static void fail_group(struct stq_req *group, int status, const char *why)
{
    for (struct stq_req *r = group; r; r = r->next) {
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
    struct stq_req *req[PIPE_MAX];       /* in group order */
    int order[PIPE_MAX];                /* indexes into req, by chat */
    int chat[PIPE_MAX];                 /* req[i]'s chat: index in bumps */
    int64_t back[PIPE_MAX];             /* seq = new last_seq - back */
    int64_t last[PIPE_MAX];             /* a chat's new last_seq, or -1 */
    int due;                            /* an append has a due time */
};

static const struct pipe_plan *sort_plan;

static int by_chat(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    int c = strcmp(sort_plan->req[x]->chat, sort_plan->req[y]->chat);

    return c ? c : x - y;
}

/* Order the group by chat and count each chat's appends: pl->chat and
 * pl->back for each request, pl->n_chats. */
static void plan_group(struct pipe_plan *pl, struct stq_req *group)
{
    int start = 0;

    pl->n = pl->n_chats = pl->due = 0;
    for (struct stq_req *r = group; r; r = r->next) {
        pl->order[pl->n] = pl->n;
        pl->req[pl->n++] = r;
        pl->due |= r->due != 0;
    }
    sort_plan = pl;     /* the writer thread is the only caller */
    qsort(pl->order, (size_t)pl->n, sizeof pl->order[0], by_chat);
    for (int i = 1; i <= pl->n; i++) {
        if (i < pl->n && strcmp(pl->req[pl->order[i]]->chat,
                                pl->req[pl->order[i - 1]]->chat) == 0)
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

/* The most arrays a group sends: S_BUMPS' 3, S_APPEND_ALL's 8 and
 * S_BUMPS_NTF's 4 more. */
#define N_ARRAYS 15

struct arrays {
    struct worker *w;
    size_t n;
    int k, oom, bad, count;
    size_t off[N_ARRAYS];
    int len[N_ARRAYS];
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

/* The episode arrays of S_BUMPS_NTF (ABI 1.4), one element a chat: col
 * 0 and 1 the first due time and the earliest urgent one of the chat's
 * appends to the patient (sent by the professional), 2 and 3 to the
 * professional; 0: none.  i is the chat's first request in pl->order. */
static int64_t chat_due(const struct pipe_plan *pl, int i, int col)
{
    int to = col < 2 ? CC_SIDE_PATIENT : CC_SIDE_PROFESSIONAL;
    int64_t v = 0;

    for (int j = i; j <= i + (int)pl->back[pl->order[i]]; j++) {
        const struct stq_req *r = pl->req[pl->order[j]];

        if (!r->due || r->side == to)
            continue;
        if (col % 2 == 0 && !v)
            return r->due;      /* the first opens the episode */
        if (col % 2 && r->priority == CC_PRIORITY_URGENT &&
            (!v || r->due < v))
            v = r->due;
    }
    return v;
}

/* Fill p[0..2] for S_BUMPS (the group's chats in order, how many appends
 * each, the newest time), p[3..10] for S_APPEND_ALL (each request, by
 * chat) and, when the group has due times, p[11..14] for S_BUMPS_NTF
 * (chat_due); len[] their sizes.  0, or -1 (out of memory, or an id that
 * is not a UUID). */
static int group_arrays(struct worker *w, const struct pipe_plan *pl,
                        const char *p[N_ARRAYS], int len[N_ARRAYS])
{
    static const uint32_t bump_oid[3] = { OID_UUID, OID_INT8, OID_INT8 };
    static const uint32_t all_oid[8] = { OID_UUID, OID_INT8, OID_UUID,
                                         OID_INT2, OID_UUID, OID_TEXT,
                                         OID_INT8, OID_INT2 };
    struct arrays a = { .w = w };

    for (int col = 0; col < 3; col++) {
        arr_begin(&a, bump_oid[col]);
        for (int i = 0; i < pl->n; i += (int)pl->back[pl->order[i]] + 1) {
            /* a chat's first request: its back + 1 are the chat's */
            int64_t n = pl->back[pl->order[i]];
            const struct stq_req *last = pl->req[pl->order[i + n]];

            if (col == 0)
                arr_uuid(&a, last->chat);
            else
                arr_int(&a, col == 1 ? n + 1 : last->at_us, 8);
        }
        arr_end(&a);
    }
    for (int col = 0; col < 8; col++) {
        arr_begin(&a, all_oid[col]);
        for (int i = 0; i < pl->n; i++) {
            const struct stq_req *r = pl->req[pl->order[i]];

            if (col == 0 || col == 2 || col == 4)
                arr_uuid(&a, col == 0 ? r->chat : col == 2 ? r->id : r->sender);
            else if (col == 5)
                arr_text(&a, r->content);
            else if (col == 3 || col == 7)
                arr_int(&a, col == 3 ? r->side : r->priority, 2);
            else
                arr_int(&a, col == 1 ? pl->back[pl->order[i]] : r->at_us, 8);
        }
        arr_end(&a);
    }
    for (int col = 0; pl->due && col < 4; col++) {
        arr_begin(&a, OID_INT8);
        for (int i = 0; i < pl->n; i += (int)pl->back[pl->order[i]] + 1)
            arr_int(&a, chat_due(pl, i, col), 8);
        arr_end(&a);
    }
    if (a.oom || a.bad)
        return -1;
    for (int k = 0; k < a.k; k++) {
        p[k] = w->arr + a.off[k];
        len[k] = a.len[k];
    }
    return 0;
}

/* The parameters of S_BUMPS (p[0..2]), or of S_BUMPS_NTF when the
 * group has due times (p[0..2] and p[11..14]), into bp and blen. */
static void bump_params(const struct pipe_plan *pl, const char *p[],
                        const int len[], const char *bp[7], int blen[7])
{
    for (int k = 0; k < 7; k++) {
        int from = k < 3 ? k : k + 8;

        bp[k] = k < 3 || pl->due ? p[from] : NULL;
        blen[k] = k < 3 || pl->due ? len[from] : 0;
    }
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
static int append_pipelined(struct worker *w, struct stq_req *group)
{
    static struct pipe_plan pl; /* writer thread only */
    PGconn *c = w->conn;
    PGresult *res;
    char lock[16], bumps[16], all[16];
    static const int binary[N_ARRAYS] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                          1, 1, 1, 1 };
    const char *p[N_ARRAYS], *bp[7];
    int len[N_ARRAYS], blen[7], sent, ok, found = 0;

    plan_group(&pl, group);
    if (group_arrays(w, &pl, p, len) < 0 || !PQenterPipelineMode(c))
        return 0;
    bump_params(&pl, p, len, bp, blen);
    sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
           PQsendQueryPrepared(c, stmt_name(S_LOCK_CHATS, lock), 1, p,
                               len, binary, 0) &&
           PQsendQueryPrepared(c, stmt_name(pl.due ? S_BUMPS_NTF : S_BUMPS,
                                            bumps), pl.due ? 7 : 3, bp,
                               blen, binary, 0) &&
           PQsendQueryPrepared(c, stmt_name(S_APPEND_ALL, all), 8, p + 3,
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
                stq_append_result(pl.req[i], last - pl.back[i]);
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
    stq_group_rewind(group);
    return 0;
}

/* 1 when the group is only appends without a client's id (those look
 * for it first), few enough for one pipeline. */
static int pipelinable(const struct stq_req *group)
{
    int n = 0;

    for (; group; group = group->next)
        if (group->op != STQ_MSG_APPEND || group->cid[0] || ++n > PIPE_MAX)
            return 0;
    return 1;
}

/* Tries of a group that conflicts (is_conflict) before a conflicting
 * request fails alone like any other. */
#define CONFLICT_TRIES 3

/* One try of write_txn: 1 when a request conflicted and last is false
 * (nothing is stored: run the group again), else as write_txn. */
static int write_txn_try(struct worker *w, struct stq_req *group, int last)
{
    char err[300];
    struct stq_req *r;

    w->conflict = 0;
    /* A group of one append (a quiet node's usual group): S_APPEND is one
     * statement and its own transaction, so one round trip and none of
     * the BEGIN, locks and COMMIT a group needs.  (One with a due time
     * goes pipelined: its episode is on the same row, in the same
     * statement.) */
    if (!group->next && group->op == STQ_MSG_APPEND && !group->due) {
        group->status = run_op(w, group);
        if (group->status != CC_E_UNAVAIL)
            return w->conflict && !last;
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
        w->conflict = 0;
        r->status = run_op(w, r);
        if (r->status == CC_E_UNAVAIL)
            goto failed;
        if (w->conflict && !last) {
            if (command(w->conn, "ROLLBACK", err, sizeof err) < 0)
                goto failed;
            return 1;
        }
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

/* One group of writes in one transaction: appends pipelined in one round
 * trip; otherwise (other writes, or an append that failed) a savepoint
 * per request, so one failing request rolls back only itself.  A group
 * in which a request conflicts with another node's transaction
 * (is_conflict) is rolled back and run again, in order (it has released
 * its locks, so the other goes on); on the last try the request fails
 * alone.  Returns -1 when the connection died (the group has failed). */
static int write_txn(struct worker *w, struct stq_req *group)
{
    int rc, tries = 1;

    while ((rc = write_txn_try(w, group, tries == CONFLICT_TRIES)) == 1) {
        tries++;
        for (struct stq_req *r = group; r; r = r->next)
            stq_req_rewind(r);
    }
    return rc;
}

/* A group of writes.  Purges run first, each alone in its own
 * transaction, and then the rest of the group in one (write_txn): the
 * appends around a purge still go pipelined, in one commit, and a large
 * delete is no part of their transaction.  The group is then linked
 * again in queue order, which keeps its head (the lowest qseq) first.
 * Returns -1 when the connection died (all that was not committed has
 * failed). */
static int write_group(struct worker *w, struct stq_req *group)
{
    struct stq_req *purges = NULL, *rest = NULL, **pt = &purges, **rt = &rest;
    struct stq_req *r, *next, **from, **tail = &group;
    int rc = 0;

    for (r = group; r && r->op != STQ_MSG_PURGE; r = r->next)
        ;
    if (!r)
        return write_txn(w, group);
    for (r = group; r; r = next) {
        next = r->next;
        r->next = NULL;
        if (r->op == STQ_MSG_PURGE) {
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
static int read_group(struct worker *w, struct stq_req *group)
{
    for (struct stq_req *r = group; r; r = r->next) {
        r->status = run_op(w, r);
        if (r->status == CC_E_UNAVAIL &&
            replace(w, w->lost[0] ? w->lost : "lost during a read") == 0) {
            stq_req_rewind(r);
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
    struct stq_req *group;
    const char *why;

    pthread_setname_np(pthread_self(), w->writer ? "pg-writer" : "pg-reader");
    for (;;) {
        if (!w->conn && reconnect(w, "no connection") < 0)
            break;
        group = stq_queue_take(w->q, w->writer ? pg->batch_max : 16);
        if (!group)
            break;
        if ((why = conn_unusable(w)) && replace(w, why) < 0) {
            fail_group(group, CC_E_UNAVAIL, "database unavailable");
            pg->base.host->post(pg->base.ctx, stq_deliver, group);
            if (reconnect(w, "the server closed it") < 0)
                break;
            continue;
        }
        if ((w->writer ? write_group(w, group) : read_group(w, group)) < 0) {
            pg->base.host->post(pg->base.ctx, stq_deliver, group);
            if (reconnect(w, "server closed the connection") < 0)
                break;
            continue;
        }
        pg->base.host->post(pg->base.ctx, stq_deliver, group);
    }
    return NULL;
}

/* ------------------------------------------------------- lifecycle */

static int pg_start(void *inst)
{
    struct pg *pg = inst;
    char err[300];

    stq_queue_init(&pg->wq, pg->queue_max);
    stq_queue_init(&pg->rq, pg->queue_max);
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
    stq_queue_destroy(&pg->wq);
    stq_queue_destroy(&pg->rq);
    return CC_E_FAIL;
}

/* Drain the queues (while connected), join, answer leftovers, done. */
static void pg_stop(void *inst, cc_post_cb done, void *arg)
{
    struct pg *pg = inst;

    if (pg->running) {
        stq_queue_stop(&pg->wq);
        stq_queue_stop(&pg->rq);
        pthread_join(pg->writer.thread, NULL);
        for (int i = 0; i < pg->n_readers; i++)
            pthread_join(pg->readers[i].thread, NULL);
        /* A worker that stopped while reconnecting left its queue. */
        stq_queue_fail_all(&pg->base, &pg->wq, CC_E_UNAVAIL,
                          "postgres: shutting down");
        stq_queue_fail_all(&pg->base, &pg->rq, CC_E_UNAVAIL,
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
        stq_queue_destroy(&pg->wq);
        stq_queue_destroy(&pg->rq);
    }
    pg_free(pg);
}

/* Queued even while the workers are down: a waiting request makes a
 * reconnecting worker try at once, and is failed if that attempt fails
 * (reconnect). */
static int pg_submit(struct stq_backend *b, struct stq_req *r)
{
    struct pg *pg = (struct pg *)b;

    return stq_queue_put(STQ_IS_WRITE(r->op) ? &pg->wq : &pg->rq, r);
}

static const void *pg_get_interface(void *inst, uint32_t kind)
{
    (void)inst;
    return kind == CC_KIND_STORAGE ? &stq_storage_api : NULL;
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

    stq_queue_metrics(&pg->wq, &pg->rq, emit, arg);
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
