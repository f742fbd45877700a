#!/usr/bin/python3
"""Fault: each storage call fails in turn (after SQLite's *fault.test).

The storage is tests/fault/storage-faulty.c around the real plugin
(SQLite, and PostgreSQL where it is installed).  For each operation a
chat uses and each way a call can fail, the Nth call of that operation
from the start of a short conversation fails, for N = 1, 2, ... until the
conversation makes fewer than N such calls.  The conversation is a
well-behaved patient and professional (Conversation): the professional
logs in, the patient opens a chat with it, both join over the WebSocket,
the patient sends three messages there and one over REST (each with a
client_id, resent with it after an error), the professional answers,
reads the history, resumes from the first message, and marks the chat
read.  Every failure must be answered with its documented error (a REST
503 with a JSON error, the exact error frame of a send, a 503 to the
WebSocket handshake, a close 1013 to a resume; a REST resend after a
lost answer gets the original, 200); the same request again must work;
and at the end every acknowledged message is in history once, in order,
and reached the professional once, in order, live and on resume; nothing
else is stored; the daemon still runs (and exits 0 at the end).

A profile that could not be recorded when a token showed it is not an
error for that request, but it must be recorded the next time the token
is shown, and a request that needs the caller's own profile gets a 503
and works when tried again (not "Patient not found").

Kinds (storage-faulty.c): refused at the call (busy, unavail), failed in
the callback (fail, cb_unavail; the host sees the two alike, so reads
take only fail), and done but reported failed (lost: for writes, the
commit happened; for reads it is fail again, so reads skip it)."""
import json
import os
import uuid

import ccharness as h
import faults as f

BUSY = "Server busy: message not stored; try again"
FAILED = "Message could not be stored; try again"
TRIES = 3       # a call fails once: the second try must work
MAX_NTH = 12    # more calls of one operation than a conversation makes
# mark_set: the REST read, and the DELIVERED marks of what reached the
# professional (ABI 1.4; the 1.x mark_read is no longer called).
WRITES = ("profile_put", "chat_open", "message_append", "mark_set")
READS = ("chat_get", "chat_list", "message_list")
WRITE_KINDS = ("busy", "unavail", "fail", "cb_unavail", "lost")
# Failures no client is told of: recording a profile (logged; recorded
# at the next login), the hub's own reads of a chat's order (tried
# again after 500 ms), and a DELIVERED mark (logged; the next message
# writes it; a failed read is seen, and tried again, by the client).
UNSEEN = ("profile_put", "message_list", "mark_set")
READ_KINDS = ("busy", "unavail", "fail")


class Conversation:
    """One run of the conversation against srv, with the fault (op, kind)
    armed; every answer is checked as it comes (test's assertions)."""

    def __init__(self, test, srv, op, kind):
        self.t, self.srv, self.op, self.kind = test, srv, op, kind
        self.errors = []      # (what, error) the clients were shown
        self.acked = []       # the patient's messages, acknowledged
        self.socks = []

    def close(self):
        for ws in self.socks:
            ws.close()

    # ---- one request, retried as a spec client does
    def rest(self, what, method, path, tok, body=None, ok=(200,)):
        """The answer of method path once it is not a storage error: a
        storage error is a 503 with a JSON error ({"error": the send
        string} for a message), and a retry must work."""
        for _ in range(TRIES):
            st, _, out = self.srv.request(method, path, body, token=tok)
            if st in ok:
                return st, out
            self.t.assertEqual(st, 503, (what, st, out))
            self.t.assertIsInstance(out, dict, (what, out))
            self.t.assertEqual(set(out), {"error"}, (what, out))
            if what == "send" and self.op == "message_append":
                self.t.assertEqual(out["error"], self.send_error(), what)
            self.errors.append((what, out["error"]))
        self.t.fail("%s: %d tries, all refused: %s" % (what, TRIES,
                                                       self.errors[-3:]))

    def send_error(self):
        return BUSY if self.kind == "busy" else FAILED

    def join(self, what, tok, query=""):
        """A WebSocket joined to the chat: a storage error is a 503 to
        the handshake."""
        for _ in range(TRIES):
            ws = h.raw_ws(self.srv, self.chat, tok, query, timeout=5,
                          status=None)
            if ws.status == 101:
                self.socks.append(ws)
                return ws
            ws.close()
            self.t.assertEqual(ws.status, 503, (what, ws.body))
            self.t.assertIn("error", json.loads(ws.body), what)
            self.errors.append((what, ws.status))
        self.t.fail("%s: %d handshakes, all refused" % (what, TRIES))

    @staticmethod
    def frame(ws):
        """The next text frame as JSON, or {"close": code} (pings are
        skipped, a few: each read waits 5 s at most)."""
        for _ in range(10):
            fin, op, data = ws.recv()
            if op == 0x1:
                return json.loads(data)
            if op == 0x8:
                return {"close": int.from_bytes(data[:2], "big")}
        raise AssertionError("no text or close frame among 10")

    def ws_send(self, ws, content, others=None):
        """Send content (unique in the conversation) with a client_id over
        ws until it is acknowledged (the message back, with that
        client_id); an error frame must be the send's string, and the
        resend carries the same client_id.  Other messages that come
        first are added to others."""
        cid = str(uuid.uuid4())
        for _ in range(TRIES):
            ws.send_json({"content": content, "client_id": cid})
            got, skipped = self.frame(ws), 0
            while got.get("message", {}).get("content", content) != content:
                if others is not None:
                    others.append(got["message"])
                skipped += 1
                self.t.assertLess(skipped, 50, content)
                got = self.frame(ws)
            if "message" in got:
                self.t.assertEqual(got["message"].get("client_id"), cid,
                                   content)
                return got["message"]
            self.t.assertEqual(got, {"error": self.send_error()}, content)
            self.errors.append(("ws send", got["error"]))
        self.t.fail("%s: %d sends, all refused" % (content, TRIES))

    def until(self, ws, last_id, what):
        """The messages on ws up to the one with last_id."""
        got = []
        while not got or got[-1]["id"] != last_id:
            frame = self.frame(ws)
            self.t.assertIn("message", frame, (what, frame))
            got.append(frame["message"])
            self.t.assertLess(len(got), 50, what)
        return got

    def resume(self, tok, since, last_id):
        """The messages after since, up to last_id, on a resuming
        WebSocket: a storage error is a close 1013, and the client
        reconnects."""
        for _ in range(TRIES):
            ws = self.join("resume", tok, "&since=" + since)
            got = self.frame(ws)
            if got.get("close") != 1013:
                self.t.assertIn("message", got, ("resume", got))
                if got["message"]["id"] == last_id:
                    return [got["message"]]
                return [got["message"]] + self.until(ws, last_id, "resume")
            self.errors.append(("resume", 1013))
        self.t.fail("resume: %d tries, all closed 1013" % TRIES)

    # ---- the conversation
    def run(self):
        pat, pro = str(uuid.uuid4()), str(uuid.uuid4())
        pt = h.token("p-" + pat[:8], patient=pat)
        rt = h.token("r-" + pro[:8], professional=pro)
        # The professional logs in (its profile is recorded), twice: a
        # profile that could not be recorded is recorded the next time.
        for _ in range(2):
            st, page = self.rest("list", "GET", "/chat/chats/", rt)
            self.t.assertEqual(page["results"], [])
        st, chat = self.rest("open", "POST", "/chat/chats/", pt,
                             {"professional": pro}, ok=(200, 201))
        self.chat = chat["id"]
        st, page = self.rest("list", "GET", "/chat/chats/", pt)
        self.t.assertEqual([c["id"] for c in page["results"]], [self.chat])
        a = self.join("join", pt)
        b = self.join("join", rt)
        for i in range(3):
            self.acked.append(self.ws_send(a, "ws %d" % i))
        cid, refused = str(uuid.uuid4()), len(self.errors)
        st, m = self.rest("send", "POST", "/chat/chats/%s/send_message/" %
                          self.chat, pt, {"content": "rest", "client_id": cid},
                          ok=(200, 201))
        lost = self.op == "message_append" and self.kind == "lost" and \
            len(self.errors) > refused
        self.t.assertEqual(st, 200 if lost else 201, "a resend after an "
                           "answer was lost gets the original, 200")
        self.t.assertEqual(m["client_id"], cid)
        self.t.assertEqual(m.pop("is_read"), False)
        self.acked.append(m)
        live = []
        reply = self.ws_send(b, "reply", live)
        self.check(live + [reply], self.history(rt), reply)
        resumed = self.resume(rt, self.acked[0]["id"], reply["id"])
        self.t.assertEqual([x["id"] for x in resumed],
                           [x["id"] for x in self.acked[1:] + [reply]],
                           "resumed from the first message")
        self.rest("read", "POST", "/chat/chats/%s/mark_read/" % self.chat,
                  rt)
        st, seen = self.rest("chat", "GET", "/chat/chats/%s/" % self.chat,
                             rt)
        self.t.assertEqual(seen["unread_count"], 0, "marked read")
        self.t.assertEqual(seen["last_message"]["id"], reply["id"])

    def history(self, tok):
        st, page = self.rest("history", "GET",
                             "/chat/chats/%s/messages/?page_size=200" %
                             self.chat, tok)
        return page["results"]

    def check(self, live, hist, reply):
        """History holds the acknowledged messages and the reply, once
        each, in order, and nothing else; the professional got them live,
        once each, in that order."""
        want = [x["id"] for x in self.acked] + [reply["id"]]
        self.t.assertEqual([x["id"] for x in hist], want,
                           "history: %s" % [x["content"] for x in hist])
        self.t.assertEqual([x["id"] for x in live], want, "live: %s" %
                           [x["content"] for x in live])


class StorageCalls(f.FaultCase):
    """The faults on SQLite; StorageCallsPostgres runs them again."""
    STORAGE = "sqlite"

    @classmethod
    def setUpClass(cls):
        if cls.STORAGE == "postgres":
            f.need_plugin("storage-postgres", "libpq")
        # chat_cache 0: every join asks storage for the chat.
        srv = h.Server({"server": {"chat_cache": 0, "log_level": "info"}},
                       storage=cls.STORAGE)
        cls.faulty = h.Faulty.around(srv)
        cls.srv = srv.start()

    @classmethod
    def tearDownClass(cls):
        h.stop_checked(cls.srv)

    def setUp(self):
        super().setUp()
        self.servers.append(self.srv)
        self.cleanups.append(self.faulty.disarm)

    def each_call(self, op, kind):
        """The conversation with the 1st, 2nd, ... call of op failing as
        kind, until it makes fewer calls of op than that."""
        for nth in range(1, MAX_NTH + 1):
            fired = self.faulty.status()["fired"]
            self.faulty.arm(op, kind, nth)
            talk = Conversation(self, self.srv, op, kind)
            try:
                talk.run()
            except AssertionError as e:
                raise AssertionError("call %d of %s failing as %s: %s" %
                                     (nth, op, kind, e)) from None
            finally:
                talk.close()
            self.assertIsNone(self.srv.proc.poll(), "carechatd died")
            if self.faulty.status()["fired"] == fired:
                self.faulty.disarm()
                self.assertGreater(nth, 1, "%s was never called" % op)
                return nth - 1
            if op not in UNSEEN:
                self.assertTrue(talk.errors, "call %d of %s failed as %s "
                                "and nobody was told" % (nth, op, kind))
        self.fail("%s: more than %d calls" % (op, MAX_NTH))


def test_for(op, kind):
    def test(self):
        n = self.each_call(op, kind)
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# %s %s: %d calls failed in turn" % (op, kind, n))
    test.__doc__ = "each call of %s failing as %s" % (op, kind)
    return test


for _op in WRITES + READS:
    for _kind in (WRITE_KINDS if _op in WRITES else READ_KINDS):
        setattr(StorageCalls, "test_%s_%s" % (_op, _kind),
                test_for(_op, _kind))


class StorageCallsPostgres(StorageCalls):
    STORAGE = "postgres"


if __name__ == "__main__":
    f.main()
