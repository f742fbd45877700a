#!/usr/bin/python3
"""The postgres storage plugin against a real PostgreSQL: outages, several
nodes on one database, race-free create-or-get, migrations, config errors.

The behaviour shared with sqlite is proven by the whole integration suite
run against postgres (tests/integration/postgres.py); this file holds what
only a networked database has.
"""
import json
import os
import subprocess
import threading
import time
import unittest

import ccharness as h

PLUGIN = os.path.join(h.BUILDDIR, "plugins", ".libs", "storage-postgres.so")


def need_plugin():
    if not os.path.exists(PLUGIN):
        h.skip_or_fail("the postgres plugin was not built (configure found "
                       "no libpq; Debian: apt-get install libpq-dev)")


def pg_server(cluster, conninfo=None, **storage):
    conf = {"storage": {"plugin": "postgres", "path": None,
                        "conninfo": conninfo or cluster.new_db()}}
    conf["storage"].update(storage)
    return h.Server(conf, storage="postgres")


def history_page(srv, chat, tok):
    """(status, body) of the first page of history: it may fail."""
    status, _, body = srv.request(
        "GET", "/chat/chats/%s/messages/?page_size=200" % chat, token=tok)
    return status, body


class Outage(unittest.TestCase):
    """PostgreSQL stopped and started under a live conversation."""

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.pg = h.PgCluster()   # our own: this test stops it
        cls.srv = pg_server(cls.pg, reconnect_max=300).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.pg.close()

    def test_outage_and_recovery(self):
        srv = self.srv
        chat, pt, rt, _, _ = h.World(srv).pair()
        a = h.raw_ws(srv, chat, pt, timeout=20)
        b = h.raw_ws(srv, chat, rt, timeout=20)
        acked = []

        def send(text):
            a.send_json({"content": text})
            got = a.recv_json()
            if "message" in got:
                self.assertEqual(b.recv_json(), got, "both parties see it")
                acked.append(got["message"])
            return got

        for i in range(3):
            self.assertIn("message", send("before %d" % i))
        pid = srv.proc.pid
        self.pg.stop("fast")
        try:
            errors = [send("during %d" % i) for i in range(3)]
            for e in errors:
                self.assertEqual(e, {"error": "Message could not be "
                                              "stored; try again"})
            status, _ = history_page(srv, chat, pt)
            self.assertEqual(status, 503, "REST answers 503 while down")
            status, _, body = srv.request(
                "POST", "/chat/chats/%s/send_message/" % chat,
                {"content": "rest during"}, token=pt)
            self.assertEqual(status, 503, body)
        finally:
            self.pg.start()
        # Recovers by itself: no restart of carechatd.
        deadline = time.time() + 30
        while time.time() < deadline:
            if history_page(srv, chat, pt)[0] == 200:
                break
            time.sleep(0.2)
        self.assertEqual(history_page(srv, chat, pt)[0], 200,
                         "reads recovered")
        self.assertIsNone(srv.proc.poll(), "carechatd kept running")
        self.assertEqual(srv.proc.pid, pid)
        deadline = time.time() + 30
        while time.time() < deadline:
            if "message" in send("after 0"):
                break
            time.sleep(0.2)
        for i in range(1, 3):
            self.assertIn("message", send("after %d" % i))
        status, body = history_page(srv, chat, rt)
        self.assertEqual(status, 200)
        got = [(m["id"], m["content"]) for m in body["results"]]
        want = [(m["id"], m["content"]) for m in acked]
        self.assertEqual(got, want, "history is exactly the acknowledged "
                         "messages, in order, none duplicated")
        self.assertEqual([c for _, c in got],
                         ["before 0", "before 1", "before 2",
                          "after 0", "after 1", "after 2"])
        log = srv.read_log()
        self.assertIn("connection lost", log)
        self.assertIn("reconnected", log)
        a.close()
        b.close()


class TwoNodes(unittest.TestCase):
    """Two carechatd processes sharing one database."""

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.pg = h.pg_cluster()
        db = cls.pg.new_db()
        # Both start at once on an empty database: the migration runs
        # once under the advisory lock, and both come up.
        cls.a = pg_server(cls.pg, db).start(wait=False)
        cls.b = pg_server(cls.pg, db).start(wait=False)
        cls.a.wait_ready()
        cls.b.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.a.close()
        cls.b.close()

    def test_one_migration(self):
        logs = self.a.read_log() + self.b.read_log()
        self.assertEqual(logs.count("created schema version"), 1, logs)

    def test_create_or_get_race(self):
        # A user's first requests, on both nodes at once: each node's
        # writer records the profiles' owner and inserts the chat, in
        # either order, so the two transactions can deadlock; the one
        # PostgreSQL aborts runs again.  Several rounds: one alone
        # deadlocks about one time in ten.
        for _ in range(4):
            self.race_round()

    def race_round(self):
        w = h.World(self.a)
        pat, pro = w.profile("patient"), w.profile("professional")
        pt = h.token("u-" + pat[:8], patient=pat)
        rt = h.token("u-" + pro[:8], professional=pro)
        results = []

        def call(srv, tok, body):
            results.append(srv.request("POST", "/chat/chats/", body,
                                       token=tok))

        threads = []
        for i in range(10):
            srv = self.a if i % 2 else self.b
            threads.append(threading.Thread(
                target=call, args=(srv, pt, {"professional": pro})))
            threads.append(threading.Thread(
                target=call, args=(srv, rt, {"patient": pat})))
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 20)
        statuses = sorted(s for s, _, _ in results)
        self.assertEqual(statuses.count(201), 1, statuses)
        self.assertEqual(statuses.count(200), 19, statuses)
        self.assertEqual(len({b["id"] for _, _, b in results}), 1,
                         "every caller got the same chat")

    def test_interleaved_appends(self):
        chat, pt, rt, _, _ = h.World(self.a).pair()
        sent = []
        errors = []

        def sender(srv, tok, tag):
            for i in range(25):
                s, _, body = srv.request(
                    "POST", "/chat/chats/%s/send_message/" % chat,
                    {"content": "%s %d" % (tag, i)}, token=tok)
                (sent if s == 201 else errors).append(body)

        ts = [threading.Thread(target=sender, args=(self.a, pt, "A")),
              threading.Thread(target=sender, args=(self.b, rt, "B"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        self.assertEqual(errors, [])
        for srv in (self.a, self.b):
            status, body = history_page(srv, chat, pt)
            self.assertEqual(status, 200)
            self.assertEqual(body["count"], 50)
            got = [m["content"] for m in body["results"]]
            self.assertEqual(sorted(got), sorted(m["content"]
                                                 for m in sent))
            # Each sender's own messages keep their order.
            for tag in "AB":
                mine = [c for c in got if c.startswith(tag)]
                self.assertEqual(mine, ["%s %d" % (tag, i)
                                        for i in range(25)])


class GroupFailure(unittest.TestCase):
    """Appends go to PostgreSQL in one pipelined transaction per group; one
    that fails (here a trigger refuses it, as a DBA's rule might) must lose
    only itself: the group is run again with a savepoint per request."""

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.pg = h.pg_cluster()
        cls.db = cls.pg.new_db()
        cls.srv = pg_server(cls.pg, cls.db).start()
        cls.pg.psql(cls.db, """
            CREATE FUNCTION refuse_poison() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN
                IF NEW.content = 'poison' THEN
                    RAISE EXCEPTION 'poisoned message';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER poison BEFORE INSERT ON messages
            FOR EACH ROW EXECUTE FUNCTION refuse_poison();""")

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def test_one_refused_append_in_a_burst(self):
        chat, pt, rt, _, _ = h.World(self.srv).pair()
        ws = h.raw_ws(self.srv, chat, pt, timeout=20)
        texts = ["burst %d" % i for i in range(60)]
        texts[30] = "poison"
        # All frames in one write: they reach storage as one or a few
        # groups.
        ws.sock.sendall(b"".join(
            ws.frame(0x1, json.dumps({"content": t}).encode())
            for t in texts))
        got, errors = [], []
        for _ in texts:
            m = ws.recv_json()
            (got if "message" in m else errors).append(m)
        ws.close()
        self.assertEqual(len(errors), 1, errors)
        self.assertEqual([m["message"]["content"] for m in got],
                         [t for t in texts if t != "poison"])
        status, body = history_page(self.srv, chat, pt)
        self.assertEqual(status, 200)
        self.assertEqual([m["content"] for m in body["results"]],
                         [t for t in texts if t != "poison"])
        self.assertIn("a write of a pipelined group failed",
                      self.srv.read_log())


class GroupsByChat(unittest.TestCase):
    """A pipelined group writes each chat's row once: bursts to several
    chats at once, from two nodes that take the chats in opposite orders,
    store every message with consecutive sequences per chat, leave each
    chat's last_seq and updated_at those of its last message, and never
    send a group down the slow path (two groups locking the same rows in
    opposite orders would deadlock)."""

    N = 40

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.pg = h.pg_cluster()
        cls.db = cls.pg.new_db()
        conf = {"server": {"log_level": "debug"},
                "storage": {"plugin": "postgres", "path": None,
                            "conninfo": cls.db}}
        cls.a = h.Server(conf, storage="postgres").start()
        cls.b = h.Server(conf, storage="postgres").start()

    @classmethod
    def tearDownClass(cls):
        cls.a.close()
        cls.b.close()

    def burst(self, srv, chats, tag):
        """Open one WebSocket per chat, then write N messages on each
        back to back; return the sockets (their echoes unread)."""
        socks = [h.raw_ws(srv, chat, tok, timeout=20) for chat, tok in chats]
        for ws in socks:
            ws.sock.sendall(b"".join(
                ws.frame(0x1, json.dumps(
                    {"content": "%s %d" % (tag, i)}).encode())
                for i in range(self.N)))
        return socks

    def test_bursts_to_several_chats(self):
        w = h.World(self.a)
        chats = [w.pair()[:2] for _ in range(3)]
        socks = (self.burst(self.a, chats, "A") +
                 self.burst(self.b, chats[::-1], "B"))
        for ws in socks:
            for _ in range(self.N):
                m = ws.recv_json()
                self.assertIn("message", m)
            ws.close()
        ids = ",".join("'%s'" % chat for chat, _ in chats)
        rows = self.pg.psql(self.db, """
            SELECT c.id, count(m.seq), min(m.seq), max(m.seq), c.last_seq,
                   c.updated_at = max(m.created_at)
            FROM chats c JOIN messages m ON m.chat_id = c.id
            WHERE c.id IN (%s) GROUP BY c.id, c.last_seq, c.updated_at
            ORDER BY c.id""" % ids).split()
        n = 2 * self.N
        self.assertEqual(sorted(r.split("|", 1)[1] for r in rows),
                         ["%d|1|%d|%d|t" % (n, n, n)] * 3, rows)
        for chat, tok in chats:
            status, body = history_page(self.a, chat, tok)
            got = [m["content"] for m in body["results"]]
            for tag in "AB":
                self.assertEqual([c for c in got if c.startswith(tag)],
                                 ["%s %d" % (tag, i) for i in range(self.N)])
        logs = self.a.read_log() + self.b.read_log()
        self.assertNotIn("a write of a pipelined group failed", logs)


class GroupContents(unittest.TestCase):
    """A pipelined group sends its messages as PostgreSQL arrays (in the
    binary format; an element type or length off by one fails the group
    into the slow path): what an array literal would give a meaning to
    (quotes, backslashes, braces, commas, NULL, spaces at the ends, new
    lines) must come back exactly as sent, in order, each with its own
    sequence, without the slow path."""

    TEXTS = ['he said "hi"', "back\\slash", "\\", '\\"', '"',
             "{braces}", "a,b", "NULL", "null", " leading", "trailing ",
             "two\nlines", "tab\there", "\u00fcn\u00efc\u00f8d\u00e9 "
             "\U0001f691", "'single'", "}{", "x" * 10000, "end"]

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.pg = h.pg_cluster()
        cls.srv = pg_server(cls.pg).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def test_contents_an_array_literal_quotes(self):
        chat, pt, _, _, _ = h.World(self.srv).pair()
        ws = h.raw_ws(self.srv, chat, pt, timeout=20)
        ws.sock.sendall(b"".join(
            ws.frame(0x1, json.dumps({"content": t}).encode())
            for t in self.TEXTS))
        got = [ws.recv_json()["message"] for _ in self.TEXTS]
        ws.close()
        self.assertEqual([m["content"] for m in got], self.TEXTS)
        status, body = history_page(self.srv, chat, pt)
        self.assertEqual(status, 200)
        self.assertEqual([m["content"] for m in body["results"]],
                         self.TEXTS)
        self.assertEqual(sorted(m["id"] for m in got),
                         sorted(m["id"] for m in body["results"]))
        self.assertNotIn("a write of a pipelined group failed",
                         self.srv.read_log())


class Config(unittest.TestCase):
    """Start-up errors are clear and never print a password."""

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.pg = h.pg_cluster()

    def failed_start(self, **storage):
        srv = pg_server(self.pg, **storage)
        try:
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            return str(cm.exception)
        finally:
            srv.close()

    def test_unreachable_server(self):
        log = self.failed_start(
            conninfo="host=127.0.0.1 port=%d user=carechat "
                     "password=hunter2secret connect_timeout=2" %
                     h.free_port())
        self.assertIn("cannot connect", log)
        self.assertNotIn("hunter2secret", log, "password never logged")

    def test_malformed_conninfo(self):
        log = self.failed_start(conninfo="host=x password=hunter2 = =")
        self.assertIn("not a valid libpq connection string", log)
        self.assertNotIn("hunter2", log)

    def test_conninfo_and_file_conflict(self):
        srv = pg_server(self.pg)
        path = os.path.join(srv.tmp, "pg.conninfo")
        with open(path, "w") as f:
            f.write(self.pg.conninfo() + "\n")
        os.chmod(path, 0o600)  # a secret: others may not read it
        srv.conf["storage"]["conninfo_file"] = path
        srv.write_conf()
        r = subprocess.run([os.path.join(h.BUILDDIR, "carechatd"), "-t",
                            "-c", srv.conf_path], stderr=subprocess.PIPE,
                           timeout=30)
        srv.close()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"one of conninfo and conninfo_file", r.stderr)

    def test_conninfo_file(self):
        srv = pg_server(self.pg)
        path = os.path.join(srv.tmp, "pg.conninfo")
        with open(path, "w") as f:
            f.write(srv.conf["storage"].pop("conninfo") + "\n")
        os.chmod(path, 0o600)
        srv.conf["storage"]["conninfo_file"] = path
        try:
            srv.start()
            chat, pt, _, _, _ = h.World(srv).pair()
            self.assertEqual(history_page(srv, chat, pt)[0], 200)
        finally:
            srv.close()

    def test_newer_schema_refused(self):
        db = self.pg.new_db()
        self.pg.psql(db, "CREATE TABLE carechat_schema (version int4 NOT "
                         "NULL, applied_at timestamptz NOT NULL DEFAULT "
                         "now()); INSERT INTO carechat_schema VALUES (99)")
        log = self.failed_start(conninfo=db)
        self.assertIn("schema version 99", log)

    def test_migrates_version_1(self):
        """A database made by schema 1 (no client_id) is migrated at start
        and keeps its messages; client_id works afterwards."""
        db = self.pg.new_db()
        chat, pt, old, _ = self.seeded(db, "from version 1")
        # Back to what schema 1 was.
        self.pg.psql(db, V5_UNDO + V3_CHAT_INDEXES +
                     "DROP INDEX messages_by_time; "
                     "DROP INDEX messages_by_client; ALTER TABLE "
                     "messages DROP COLUMN client_id; DELETE FROM "
                     "carechat_schema WHERE version IN (2, 3, 4)")
        srv = pg_server(self.pg, conninfo=db)
        srv.start()
        try:
            self.assertIn("migrated schema version 1 to 5", srv.read_log())
            self.assertEqual(self.schema(db), ("5", "1"))
            cid = "5e1a2b3c-4d5e-4f60-8172-8394a5b6c7d8"
            path = "/chat/chats/%s/send_message/" % chat
            st1, _, m1 = srv.request("POST", path, {"content": "new",
                                                    "client_id": cid},
                                     token=pt)
            st2, _, m2 = srv.request("POST", path, {"content": "new",
                                                    "client_id": cid},
                                     token=pt)
            self.assertEqual((st1, st2), (201, 200))
            self.assertEqual(m1, m2)
            hist = h.history(srv, chat, pt)
            self.assertEqual([m["content"] for m in hist],
                             ["from version 1", "new"])
            self.assertEqual(hist[0]["id"], old["id"])
        finally:
            srv.close()

    def seeded(self, db, content):
        """A server on db with one chat and one message, content, in it:
        (chat, patient token, the message, the server's log)."""
        srv = pg_server(self.pg, conninfo=db).start()
        try:
            chat, pt, _, _, _ = h.World(srv).pair()
            st, _, msg = srv.request(
                "POST", "/chat/chats/%s/send_message/" % chat,
                {"content": content}, token=pt)
            self.assertEqual(st, 201)
            return chat, pt, msg, srv.read_log()
        finally:
            srv.close()

    def schema(self, db):
        """(the schema version, how many messages_by_time indexes)."""
        out = self.pg.psql(db, "SELECT (SELECT max(version) FROM "
                           "carechat_schema), (SELECT count(*) FROM "
                           "pg_indexes WHERE tablename = 'messages' AND "
                           "indexname = 'messages_by_time')")
        return tuple(out.strip().split("|"))

    def test_migrates_version_2(self):
        """A database made by schema 2 gets messages_by_time (retention)
        at start and keeps its messages; a fresh one has it too."""
        db = self.pg.new_db()
        chat, pt, _, log = self.seeded(db, "from version 2")
        self.assertIn("created schema version 5", log)
        self.assertEqual(self.schema(db), ("5", "1"))
        self.pg.psql(db, V5_UNDO + V3_CHAT_INDEXES +
                     "DROP INDEX messages_by_time; "
                     "DELETE FROM carechat_schema WHERE version IN (3, 4)")
        self.assertEqual(self.schema(db), ("2", "0"))
        srv = pg_server(self.pg, conninfo=db).start()
        try:
            self.assertIn("migrated schema version 2 to 5", srv.read_log())
            self.assertEqual(self.schema(db), ("5", "1"))
            self.assertEqual([m["content"] for m in h.history(srv, chat,
                                                              pt)],
                             ["from version 2"])
        finally:
            srv.close()

    def chat_indexes(self, db):
        """The definitions of the chat-list indexes, sorted."""
        return sorted(self.pg.psql(
            db, "SELECT indexdef FROM pg_indexes WHERE tablename = 'chats' "
            "AND indexname IN ('chats_by_patient', 'chats_by_professional')"
        ).strip().splitlines())

    def test_migrates_version_3(self):
        """A database made by schema 3 (the chat-list indexes held
        updated_at) is migrated: the indexes by side and id, the messages
        kept, the list still newest first; and an append's update of the
        chat row is HOT (no new index entries, no index bloat), which it
        could not be while updated_at was indexed."""
        db = self.pg.new_db()
        chat, pt, _, _ = self.seeded(db, "from version 3")
        self.pg.psql(db, V5_UNDO + V3_CHAT_INDEXES +
                     "DELETE FROM carechat_schema WHERE version = 4")
        self.assertTrue(all("updated_at" in d
                            for d in self.chat_indexes(db)))
        srv = pg_server(self.pg, conninfo=db).start()
        try:
            self.assertIn("migrated schema version 3 to 5", srv.read_log())
            self.assertEqual(self.schema(db), ("5", "1"))
            defs = self.chat_indexes(db)
            self.assertEqual(len(defs), 2, defs)
            self.assertTrue(all("updated_at" not in d for d in defs), defs)
            path = "/chat/chats/%s/send_message/" % chat
            for i in range(5):
                st, _, _ = srv.request("POST", path, {"content": "m%d" % i},
                                       token=pt)
                self.assertEqual(st, 201)
            self.assertEqual([m["content"] for m in h.history(srv, chat,
                                                              pt)],
                             ["from version 3"] +
                             ["m%d" % i for i in range(5)])
            # The server's connections report their counts when idle
            # (within a second or so, PostgreSQL 15).
            deadline = time.time() + 20
            while True:
                upd, hot = map(int, self.pg.psql(
                    db, "SELECT n_tup_upd, n_tup_hot_upd FROM "
                    "pg_stat_user_tables WHERE relname = 'chats'"
                ).strip().split("|"))
                if upd >= 5 or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertGreaterEqual(upd, 5)
            self.assertEqual(hot, upd, "chat row updates that were not HOT")
        finally:
            srv.close()


class Storage14(unittest.TestCase):
    """The plugin's ABI 1.4 storage contract against PostgreSQL, through
    the real host (tests/unit/test_pgstore.c): the cases test_sqlite runs
    (tests/unit/store14.h: marks, owners, episodes and claims, tickets,
    priority), two nodes claiming the same due notifications at once
    (each handed out once), and the migration of a schema 4 database
    whose read state was messages.is_read."""

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.binary = os.path.join(h.BUILDDIR, "tests", "unit",
                                  "test_pgstore")
        if not os.path.exists(cls.binary):
            h.skip_or_fail("tests/unit/test_pgstore is not built "
                           "(make check builds it)")
        cls.pg = h.pg_cluster()

    def test_contract_race_and_migration(self):
        v4 = self.pg.new_db()
        self.pg.psql(v4, V4_DB)
        env = dict(os.environ, CC_TEST_PG=self.pg.new_db(),
                   CC_TEST_PG_V4=v4, CC_BUILDDIR=h.BUILDDIR)
        r = subprocess.run([self.binary], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=600)
        out = r.stdout.decode(errors="replace")
        failed = [line for line in out.splitlines()
                  if line.startswith("not ok")]
        self.assertEqual(failed, [], out[-6000:])
        self.assertEqual(r.returncode, 0, out[-6000:])
        self.assertRegex(out, r"(?m)^1\.\.[1-9][0-9]{2,}$", out[-2000:])
        for case in ("race: no episode handed out twice",
                     "v4: the log says it was migrated",
                     "episodes: RETRY keeps the id"):
            self.assertIn(case, out)
        self.assertEqual(self.pg.psql(v4, "SELECT max(version) FROM "
                                      "carechat_schema").strip(), "5")


# A database as schema 4 left it (schemas 1 to 4 applied), with the data
# set of store14.h's migrated14(): the patient's m1, m2, the
# professional's m3, m4, the patient's m5, m6; m1 to m3 read.
V4_CHAT = "c0000000-0000-4000-8000-00000000000a"
V4_PAT = "11111111-1111-4111-8111-111111111111"
V4_PRO = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
V4_DB = """
CREATE TABLE carechat_schema (version int4 NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO carechat_schema (version) VALUES (1), (2), (3), (4);
CREATE TABLE profiles (side int2 NOT NULL, id uuid NOT NULL, user_id text,
    created_at timestamptz NOT NULL, PRIMARY KEY (side, id));
CREATE TABLE chats (id uuid PRIMARY KEY, patient_id uuid NOT NULL,
    professional_id uuid NOT NULL, created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL, last_seq int8 NOT NULL DEFAULT 0,
    UNIQUE (patient_id, professional_id));
CREATE INDEX chats_by_patient ON chats (patient_id, id);
CREATE INDEX chats_by_professional ON chats (professional_id, id);
CREATE TABLE messages (chat_id uuid NOT NULL REFERENCES chats (id),
    seq int8 NOT NULL, id uuid NOT NULL UNIQUE, sender_type int2 NOT NULL,
    sender_id uuid NOT NULL, content text NOT NULL,
    created_at timestamptz NOT NULL, is_read bool NOT NULL DEFAULT false,
    client_id uuid, PRIMARY KEY (chat_id, seq));
CREATE INDEX messages_unread ON messages (chat_id, sender_type)
    WHERE NOT is_read;
CREATE UNIQUE INDEX messages_by_client ON messages
    (chat_id, sender_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX messages_by_time ON messages (created_at);
INSERT INTO profiles VALUES (1, '%(pat)s', 'u-pat', now()),
    (2, '%(pro)s', NULL, now());
INSERT INTO chats VALUES ('%(chat)s', '%(pat)s', '%(pro)s', now(), now(), 6);
INSERT INTO messages (chat_id, seq, id, sender_type, sender_id, content,
    created_at, is_read)
SELECT '%(chat)s', s, ('a0000000-0000-4000-8000-00000000000' || s)::uuid,
    CASE WHEN s IN (3, 4) THEN 2 ELSE 1 END,
    CASE WHEN s IN (3, 4) THEN '%(pro)s'::uuid ELSE '%(pat)s'::uuid END,
    'm' || s, timestamptz 'epoch' + s * interval '1 microsecond', s <= 3
FROM generate_series(1, 6) AS s;
""" % {"chat": V4_CHAT, "pat": V4_PAT, "pro": V4_PRO}


# Back from schema 5 to 4: what 4 to 5 added goes (the due indexes with
# their columns), messages.is_read and its index come back.
V5_UNDO = (
    "ALTER TABLE messages DROP COLUMN priority, "
    "ADD COLUMN is_read bool NOT NULL DEFAULT false; "
    "CREATE INDEX messages_unread ON messages (chat_id, sender_type) "
    "WHERE NOT is_read; ALTER TABLE profiles DROP COLUMN name; "
    "ALTER TABLE chats " + ", ".join(
        "DROP COLUMN %s_%s" % (side, col) for side in ("pat", "pro")
        for col in ("read_upto", "read_id", "read_at", "dlv_upto", "dlv_id",
                    "dlv_at", "ntf_open", "ntf_urgent", "ntf_attempts",
                    "ntf_sent", "ntf_due", "ntf_lease", "ntf_id")) +
    "; DROP TABLE tickets; DELETE FROM carechat_schema WHERE version = 5; ")

# The chat-list indexes as schemas 1 to 3 made them.
V3_CHAT_INDEXES = (
    "DROP INDEX chats_by_patient; DROP INDEX chats_by_professional; "
    "CREATE INDEX chats_by_patient ON chats "
    "(patient_id, updated_at DESC, id DESC); "
    "CREATE INDEX chats_by_professional ON chats "
    "(professional_id, updated_at DESC, id DESC); ")


if __name__ == "__main__":
    h.main()
