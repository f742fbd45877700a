#!/usr/bin/python3
"""A phone that reconnects: idempotent sends (client_id) and resuming a
chat from the last message seen (since).

client_id: a message may carry a UUID the client chose; a resend with the
same client_id in the same chat from the same sender, at any later time,
is stored once and answered with the original message (same id and
created_at) to the sender alone; the message object carries client_id on
the WebSocket, in history and from REST."""
import json
import time
import unittest
import uuid

import ccharness as h


def connect(srv, chat, tok, query=""):
    ws = h.RawWS(srv.port, "/ws/chat/%s/?token=%s%s" % (chat, tok, query),
                 timeout=10)
    assert ws.status == 101, ws.status
    return ws


def silent(ws, wait=0.5):
    """True when nothing arrives on ws within wait seconds."""
    ws.sock.settimeout(wait)
    try:
        got = ws.recv_json()
    except OSError:
        return True
    finally:
        ws.sock.settimeout(10)
    raise AssertionError("unexpected frame: %r" % (got,))


class ClientId(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server().start()
        cls.world = h.World(cls.srv)

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def setUp(self):
        self.chat, self.pt, self.rt, self.pat, self.pro = self.world.pair()
        self.a = connect(self.srv, self.chat, self.pt)
        self.b = connect(self.srv, self.chat, self.rt)

    def tearDown(self):
        self.a.close()
        self.b.close()

    def history(self, tok=None):
        return h.history(self.srv, self.chat, tok or self.pt)

    def test_carried_everywhere(self):
        cid = str(uuid.uuid4())
        self.a.send_json({"content": "hello", "client_id": cid})
        mine = self.a.recv_json()["message"]
        self.assertEqual(mine["client_id"], cid)
        self.assertEqual(self.b.recv_json()["message"], mine)
        [stored] = self.history()
        self.assertEqual(stored["client_id"], cid)
        self.assertEqual(stored["id"], mine["id"])

    def test_no_client_id_no_field(self):
        """The spec's clients send none and see the spec's shape."""
        self.a.send_json({"content": "plain"})
        mine = self.a.recv_json()["message"]
        self.assertEqual(sorted(mine), ["content", "created_at", "id",
                                        "sender_type"])

    def test_fifty_resends_after_reconnect(self):
        """The phone sends 50 messages, loses every acknowledgement (the
        connection drops), reconnects and sends the same 50 again: the
        other side and history see each once; the sender gets the
        original ids back, in order."""
        cids = [str(uuid.uuid4()) for _ in range(50)]
        for i, cid in enumerate(cids):
            self.a.send_json({"content": "m%d" % i, "client_id": cid})
        first = [self.a.recv_json()["message"] for _ in cids]
        got_b = [self.b.recv_json()["message"] for _ in cids]
        self.assertEqual(got_b, first)
        self.a.close()
        time.sleep(0.2)          # a later time, a new connection
        self.a = connect(self.srv, self.chat, self.pt)
        for i, cid in enumerate(cids):
            self.a.send_json({"content": "m%d" % i, "client_id": cid})
        again = [self.a.recv_json()["message"] for _ in cids]
        self.assertEqual(again, first, "the originals, ids and times")
        self.assertTrue(silent(self.b), "nobody else sees a resend")
        hist = self.history()
        self.assertEqual([m["id"] for m in hist], [m["id"] for m in first])

    def test_same_id_other_sender_or_chat(self):
        """A client_id is the sender's own, in its chat."""
        cid = str(uuid.uuid4())
        self.a.send_json({"content": "from patient", "client_id": cid})
        p = self.a.recv_json()["message"]
        self.b.recv_json()
        self.b.send_json({"content": "from professional", "client_id": cid})
        r = self.b.recv_json()["message"]
        self.assertNotEqual(p["id"], r["id"])
        chat2, pt2, _, _, _ = self.world.pair()
        st, _, body = self.srv.request(
            "POST", "/chat/chats/%s/send_message/" % chat2,
            {"content": "elsewhere", "client_id": cid}, token=pt2)
        self.assertEqual(st, 201, body)
        self.assertEqual(len(self.history()), 2)

    def test_rest_resend(self):
        cid = str(uuid.uuid4())
        path = "/chat/chats/%s/send_message/" % self.chat
        st, _, first = self.srv.request(
            "POST", path, {"content": "rest", "client_id": cid},
            token=self.pt)
        self.assertEqual(st, 201, first)
        self.assertEqual(first["client_id"], cid)
        self.assertEqual(self.b.recv_json()["message"]["id"], first["id"])
        self.a.recv_json()
        st, _, again = self.srv.request(
            "POST", path, {"content": "rest", "client_id": cid.upper()},
            token=self.pt)
        self.assertEqual(st, 200, "a resend answers 200, not 201")
        self.assertEqual(again, first)
        self.assertTrue(silent(self.b))
        # The WebSocket resend of a REST message is the same message too.
        self.a.send_json({"content": "rest", "client_id": cid})
        self.assertEqual(self.a.recv_json()["message"]["id"], first["id"])
        self.assertEqual(len(self.history()), 1)

    def test_bad_client_ids(self):
        for bad in ("nope", 42, "", {"a": 1},
                    "0b7e4c9d-8a21-4f6e-b3d5-7c19e2a4f80"):
            self.a.send_json({"content": "x", "client_id": bad})
            self.assertEqual(self.a.recv_json(),
                             {"error": "client_id must be a UUID"}, bad)
            st, _, body = self.srv.request(
                "POST", "/chat/chats/%s/send_message/" % self.chat,
                {"content": "x", "client_id": bad}, token=self.pt)
            self.assertEqual((st, body),
                             (400, {"error": "client_id must be a UUID"}))
        self.a.send_json({"content": "null is none", "client_id": None})
        self.assertNotIn("client_id", self.a.recv_json()["message"])
        self.assertEqual(len(self.history()), 1)


if __name__ == "__main__":
    h.main()
