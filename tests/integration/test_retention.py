#!/usr/bin/python3
"""Retention: [storage] retention = DAYS deletes older messages in
batches, on both backends (postgres.py runs this file again).  What is
left reads right: history, the chat's last_message and unread_count,
resume with since across the purged range (doc/operations.md), the next
message."""
import os
import sqlite3
import time
import unittest

import ccharness as h

DAY_US = 86400 * 1000000


class Retention(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server({"storage": {"retention": "30",
                                        "retention_interval": "1s"}}).start()
        cls.world = h.World(cls.srv)

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def tearDown(self):
        self.assertIsNone(self.srv.proc.poll(), "carechatd exited")

    def age(self, chat, upto_seq_or_all, days=40):
        """Make a chat's messages (its first n, or all) days older, in the
        database behind carechatd."""
        if self.srv.storage == "postgres":
            where = "chat_id = '%s'" % chat
            if upto_seq_or_all is not None:
                where += " AND seq <= %d" % upto_seq_or_all
            h.pg_cluster().psql(
                self.srv.conf["storage"]["conninfo"],
                "UPDATE messages SET created_at = created_at - "
                "interval '%d days' WHERE %s" % (days, where))
            return
        db = sqlite3.connect(self.srv.conf["storage"]["path"], timeout=10)
        q = "UPDATE messages SET created_at = created_at - ? WHERE chat_id = ?"
        args = [days * DAY_US, chat]
        if upto_seq_or_all is not None:
            q += " AND seq <= ?"
            args.append(upto_seq_or_all)
        with db:
            db.execute(q, args)
        db.close()

    def send(self, chat, tok, n, what="m"):
        ids = []
        for i in range(n):
            st, _, m = self.srv.request(
                "POST", "/chat/chats/%s/send_message/" % chat,
                {"content": "%s %d" % (what, i)}, token=tok)
            self.assertEqual(st, 201, m)
            ids.append(m["id"])
        return ids

    def wait_history(self, chat, tok, n, timeout=15):
        deadline = time.time() + timeout
        while True:
            got = h.history(self.srv, chat, tok)
            if len(got) == n or time.time() > deadline:
                return got
            time.sleep(0.2)

    def chat_of(self, chat, tok):
        st, _, body = self.srv.request("GET", "/chat/chats/%s/" % chat,
                                       token=tok)
        self.assertEqual(st, 200, body)
        return body

    def test_older_messages_go_what_is_left_reads_right(self):
        chat, pt, rt, _, _ = self.world.pair()
        ids = self.send(chat, pt, 10)
        self.assertEqual(self.chat_of(chat, rt)["unread_count"], 10)
        self.age(chat, 6)
        got = self.wait_history(chat, rt, 4)
        self.assertEqual([m["id"] for m in got], ids[6:],
                         "the six oldest went, the rest in order")
        detail = self.chat_of(chat, rt)
        self.assertEqual(detail["unread_count"], 4,
                         "unread counts what is left")
        self.assertEqual(detail["last_message"]["id"], ids[-1])
        # The list agrees with the detail.
        st, _, lst = self.srv.request("GET", "/chat/chats/", token=rt)
        mine = [c for c in lst["results"] if c["id"] == chat][0]
        self.assertEqual(mine["unread_count"], 4)
        # Resume from a purged message: the documented error, then live.
        ws = h.raw_ws(self.srv, chat, rt, "&since=" + ids[2])
        self.assertEqual(ws.status, 101)
        self.assertEqual(ws.recv_json(),
                         {"error": "since: no such message in this chat"})
        live = self.send(chat, pt, 1, "live")[0]
        self.assertEqual(ws.recv_json()["message"]["id"], live)
        ws.close()
        # Resume from one that is left: exactly what came after it.
        ws = h.raw_ws(self.srv, chat, rt, "&since=" + ids[7])
        want = ids[8:] + [live]
        self.assertEqual([ws.recv_json()["message"]["id"] for _ in want],
                         want)
        ws.close()
        self.assertIn("retention: deleted", self.srv.read_log())

    def test_a_chat_whose_every_message_went(self):
        chat, pt, rt, _, _ = self.world.pair()
        self.send(chat, pt, 3)
        self.age(chat, None)
        self.assertEqual(self.wait_history(chat, rt, 0), [])
        detail = self.chat_of(chat, rt)
        self.assertIsNone(detail["last_message"])
        self.assertEqual(detail["unread_count"], 0)
        # It goes on: the next message is stored, shown, and stays.
        new = self.send(chat, pt, 1, "after")[0]
        self.assertEqual([m["id"] for m in h.history(self.srv, chat, rt)],
                         [new])
        self.assertEqual(self.chat_of(chat, rt)["last_message"]["id"], new)
        time.sleep(1.5)           # a purge runs again: a new one stays
        self.assertEqual(len(h.history(self.srv, chat, rt)), 1)

    def test_a_large_backlog_goes_in_batches(self):
        """1,200 old messages (more than two batches) all go, while a live
        chat keeps being served."""
        chat, pt, rt, _, _ = self.world.pair()
        self.send(chat, pt, 1200, "old")
        other, opt, ort, _, _ = self.world.pair()
        self.age(chat, None)
        deadline = time.time() + 20
        served = 0
        while time.time() < deadline:
            self.send(other, opt, 1, "meanwhile")
            served += 1
            if not h.history(self.srv, chat, rt):
                break
        self.assertEqual(h.history(self.srv, chat, rt), [])
        self.assertEqual(len(h.history(self.srv, other, ort)), served)


class RetentionConfig(unittest.TestCase):
    SQLITE_ONLY = True

    def test_bad_values_stop_the_start(self):
        for key, value in (("retention", "-1"), ("retention", "a week"),
                           ("retention_interval", "0")):
            srv = h.Server({"storage": {key: value}})
            self.addCleanup(srv.close)
            srv.write_conf()
            r = h.subprocess.run([os.path.join(h.BUILDDIR, "carechatd"), "-t",
                                  "-c", srv.conf_path], capture_output=True,
                                 text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, (key, value))
            self.assertIn("[storage] %s" % key, r.stdout + r.stderr)

    def test_off_by_default(self):
        srv = h.Server().start()
        self.addCleanup(srv.close)
        self.assertNotIn("retention", srv.read_log())


if __name__ == "__main__":
    h.main()
