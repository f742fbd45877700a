#!/usr/bin/python3
"""Closing the loop (issue 26, design invariant 8): read and delivered
marks, typing and urgent messages, as clients see them.

The spec's clients send none of the new fields and get exactly today's
frames; a connection opened with ?receipts=1 also gets events:
  {"read": {"by": side, "up_to": id, "at": time}}
  {"delivered": {"by": side, "up_to": id, "at": time}}
  {"typing": {"sender_type": side}}   (the other party's only)
Marks are durable (chat list and detail: read_up_to, delivered_up_to),
only move forward, and unread_count and history's is_read agree with
them.  Runs on SQLite, and on PostgreSQL from postgres.py.
"""
import json
import time
import unittest

import ccharness as h

ISO_US = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"


def events(ws, kind, wait=1.0, limit=200):
    """The frames of kind ("read", "delivered", "typing", "message") that
    arrive on RawWS ws within wait seconds (others are kept aside)."""
    got = []
    deadline = time.time() + wait
    old = ws.sock.gettimeout()
    try:
        while time.time() < deadline and len(got) < limit:
            ws.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                f = ws.recv_json()
            except OSError:
                break
            if kind in f:
                got.append(f[kind])
    finally:
        ws.sock.settimeout(old)
    return got


def next_of(ws, kind, timeout=5):
    """The next frame of kind on ws (other kinds skipped)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        f = ws.recv_json()
        if kind in f:
            return f[kind]
    raise AssertionError("no %s frame within %s s" % (kind, timeout))


class Receipts(h.ServerCase):

    def setUp(self):
        super().setUp()
        self.chat, self.pt, self.rt, self.pat, self.pro = self.world.pair()

    def ws(self, tok, receipts=True, query=""):
        return self.raw_ws(self.chat, tok,
                           query=("&receipts=1" if receipts else "") + query)

    def send(self, ws, content, **extra):
        ws.send_json(dict(content=content, **extra))
        return next_of(ws, "message")

    def chat_obj(self, tok):
        st, _, body = self.srv.request("GET", "/chat/chats/%s/" % self.chat,
                                       token=tok)
        self.assertEqual(st, 200, body)
        return body

    # ---------------------------------------------------------- reads
    def test_read_mark_reaches_both_parties_opted_in_only(self):
        pa = self.ws(self.pt)                  # the patient, events
        plain = self.ws(self.pt, receipts=False)  # a spec client
        ra = self.ws(self.rt)                  # the professional, events
        rb = self.ws(self.rt)                  # another of their devices
        ids = [self.send(pa, "m%d" % i)["id"] for i in range(3)]
        for ws in (plain, ra, rb):
            for i in ids:
                self.assertEqual(next_of(ws, "message")["id"], i)
        ra.send_json({"read": ids[1]})
        for ws in (pa, ra, rb):
            ev = next_of(ws, "read")
            self.assertEqual(set(ev), {"by", "up_to", "at"})
            self.assertEqual((ev["by"], ev["up_to"]),
                             ("professional", ids[1]))
            self.assertRegex(ev["at"], ISO_US)
        # The spec client gets nothing but messages, ever.
        self.assertTrue(h.silent(plain, 0.5))
        # Durable: the chat says so to both, unread and is_read agree.
        for tok in (self.pt, self.rt):
            c = self.chat_obj(tok)
            self.assertEqual(c["read_up_to"],
                             {"patient": None, "professional": ids[1]})
        self.assertEqual(self.chat_obj(self.rt)["unread_count"], 1)
        page = h.history(self.srv, self.chat, self.pt)
        self.assertEqual([m["is_read"] for m in page], [True, True, False])

    def test_read_marks_only_move_forward(self):
        pa = self.ws(self.pt)
        ra = self.ws(self.rt)
        ids = [self.send(pa, "f%d" % i)["id"] for i in range(3)]
        for _ in ids:
            next_of(ra, "message")
        ra.send_json({"read": ids[2]})
        self.assertEqual(next_of(pa, "read")["up_to"], ids[2])
        ra.send_json({"read": ids[0]})     # older: ignored, no event
        self.assertEqual(events(pa, "read", wait=0.6), [])
        self.assertEqual(self.chat_obj(self.pt)["read_up_to"]["professional"],
                         ids[2])
        self.assertEqual(self.chat_obj(self.rt)["unread_count"], 0)

    def test_read_of_an_unknown_message_is_an_error(self):
        ra = self.ws(self.rt)
        other, opt, _, _, _ = self.world.pair()
        pa2 = self.raw_ws(other, opt)
        foreign = self.send(pa2, "elsewhere")["id"]
        for mid in (foreign, "00000000-0000-7000-8000-000000000000"):
            ra.send_json({"read": mid})
            self.assertEqual(ra.recv_json(), {
                "error": "read: no such message in this chat"})
        ra.send_json({"read": "nope"})
        self.assertEqual(ra.recv_json(), {
            "error": "read must be a message id (a UUID)"})

    def test_reads_in_a_burst_go_as_few_writes_unknown_still_refused(self):
        """A reader who marks each message as it arrives: the reads that
        come while one is being written go as one write, so the other
        party's devices get a few events, not one per message; an
        unknown id among them is still refused."""
        pa = self.ws(self.pt)
        ra = self.ws(self.rt)
        ids = [self.send(pa, "b%d" % i)["id"] for i in range(40)]
        for i in ids:
            self.assertEqual(next_of(ra, "message")["id"], i)
        unknown = "00000000-0000-7000-8000-000000000001"
        burst = [json.dumps({"read": i}) for i in ids[:20]]
        burst += [json.dumps({"read": unknown})]
        burst += [json.dumps({"read": i}) for i in ids[20:]]
        ra.sock.sendall(b"".join(h.RawWS.frame(0x1, t) for t in burst))
        self.assertEqual(next_of(ra, "error"),
                         "read: no such message in this chat")
        evs = events(pa, "read", wait=1.5)
        self.assertTrue(evs, "no read event")
        self.assertEqual(evs[-1]["up_to"], ids[-1])
        self.assertLessEqual(len(evs), 10, "one event per read: %d" %
                             len(evs))
        self.assertEqual(self.chat_obj(self.pt)["read_up_to"]["professional"],
                         ids[-1])
        self.assertEqual(self.chat_obj(self.rt)["unread_count"], 0)
        self.assertTrue(all(m["is_read"] for m in
                            h.history(self.srv, self.chat, self.pt)))

    def test_rest_mark_read_is_the_same_action(self):
        pa = self.ws(self.pt)
        ids = [self.send(pa, "r%d" % i)["id"] for i in range(4)]
        path = "/chat/chats/%s/mark_read/" % self.chat
        st, _, body = self.srv.request("POST", path, {"read": ids[1]},
                                       token=self.rt)
        self.assertEqual((st, body), (200, {"marked_read": 2}))
        self.assertEqual(next_of(pa, "read")["up_to"], ids[1])
        st, _, body = self.srv.request("POST", path, token=self.rt)
        self.assertEqual((st, body), (200, {"marked_read": 2}))
        self.assertEqual(next_of(pa, "read")["up_to"], ids[3])
        st, _, body = self.srv.request("POST", path, {"read": ids[0]},
                                       token=self.rt)
        self.assertEqual((st, body), (200, {"marked_read": 0}))
        st, _, body = self.srv.request("POST", path, {"content": "x"},
                                       token=self.rt)
        self.assertEqual(st, 400, body)

    # ------------------------------------------------------ delivered
    def test_delivered_when_written_to_the_recipient_coalesced(self):
        pa = self.ws(self.pt)
        ra = self.ws(self.rt, receipts=False)  # delivered needs no opt-in
        last = None
        t0 = time.time()
        for i in range(30):
            last = self.send(pa, "d%d" % i)["id"]
        for _ in range(30):
            next_of(ra, "message")
        evs = events(pa, "delivered", wait=1.5)
        took = time.time() - t0
        self.assertTrue(evs, "no delivered event")
        self.assertEqual(evs[-1]["by"], "professional")
        self.assertEqual(evs[-1]["up_to"], last)
        # Coalesced: the first at once, then one a second at most, not
        # one per message.
        self.assertLessEqual(len(evs), int(took) + 2, evs)
        self.assertEqual(
            self.chat_obj(self.pt)["delivered_up_to"]["professional"], last)
        self.assertIsNone(self.chat_obj(self.pt)["read_up_to"]["professional"])

    def test_delivered_by_reading_history(self):
        pa = self.ws(self.pt)
        mid = self.send(pa, "while away")["id"]
        self.assertEqual(events(pa, "delivered", wait=0.6), [],
                         "nobody of the professional's side saw it")
        h.history(self.srv, self.chat, self.rt)
        ev = next_of(pa, "delivered")
        self.assertEqual((ev["by"], ev["up_to"]), ("professional", mid))

    def test_delivered_by_resuming(self):
        pa = self.ws(self.pt)
        first = self.send(pa, "one")["id"]
        second = self.send(pa, "two")["id"]
        ra = self.ws(self.rt, query="&since=" + first)
        self.assertEqual(next_of(ra, "message")["id"], second)
        ev = next_of(pa, "delivered")
        self.assertEqual((ev["by"], ev["up_to"]), ("professional", second))

    # ---------------------------------------------------------- typing
    def test_typing_reaches_the_other_party_only(self):
        pa = self.ws(self.pt)
        pb = self.ws(self.pt)                  # the patient's other device
        ra = self.ws(self.rt)
        plain = self.ws(self.rt, receipts=False)
        pa.send_json({"typing": True})
        self.assertEqual(next_of(ra, "typing"), {"sender_type": "patient"})
        self.assertTrue(h.silent(pb, 0.4), "not to the typist's side")
        self.assertTrue(h.silent(plain, 0.1), "not without receipts=1")
        self.assertTrue(h.silent(pa, 0.1), "nothing answered")
        # At most one relayed per two seconds per connection.
        for _ in range(10):
            pa.send_json({"typing": True})
        self.assertEqual(len(events(ra, "typing", wait=1.0)), 0)
        time.sleep(1.2)
        pa.send_json({"typing": True})
        self.assertEqual(len(events(ra, "typing", wait=0.5)), 1)
        # Never stored.
        self.assertEqual(h.history(self.srv, self.chat, self.pt), [])
        pa.send_json({"typing": "yes"})
        self.assertEqual(pa.recv_json(),
                         {"error": "typing must be true or false"})

    # --------------------------------------------------------- priority
    def test_urgent_messages(self):
        pa = self.ws(self.pt, receipts=False)
        ra = self.ws(self.rt, receipts=False)
        urgent = self.send(pa, "now please", priority="urgent")
        self.assertEqual(urgent["priority"], "urgent")
        self.assertEqual(next_of(ra, "message"), urgent)
        normal = self.send(pa, "later", priority="normal")
        self.assertNotIn("priority", normal, "the spec's shape")
        next_of(ra, "message")
        pa.send_json({"content": "x", "priority": "high"})
        self.assertEqual(pa.recv_json(),
                         {"error": "Invalid priority: use normal or urgent"})
        st, _, body = self.srv.request(
            "POST", "/chat/chats/%s/send_message/" % self.chat,
            {"content": "rest urgent", "priority": "urgent"}, token=self.rt)
        self.assertEqual((st, body["priority"]), (201, "urgent"))
        page = h.history(self.srv, self.chat, self.pt)
        self.assertEqual([m.get("priority") for m in page],
                         ["urgent", None, "urgent"])
        # Through since too.
        rb = self.ws(self.rt, receipts=False, query="&since=" + normal["id"])
        self.assertEqual(next_of(rb, "message")["priority"], "urgent")


class ReceiptsTwoNodes(unittest.TestCase):
    """Events cross nodes like messages: two carechatd on one database
    (SQLite file here; PostgreSQL in postgres.py) and one Redis."""

    @classmethod
    def setUpClass(cls):
        if not h.plugin_built("fanout-redis"):
            h.skip_or_fail("redis fan-out plugin not built (hiredis)")
        cls.redis = h.RedisServer()
        cls.tmp = h.tempfile.mkdtemp(prefix="carechat-receipts-")
        cls.nodes = h.two_nodes(cls.redis, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            h.stop_checked(n)
        cls.redis.close()

    def test_events_on_every_node(self):
        a, b = self.nodes
        chat, pt, rt, _, _ = h.World(a).pair()
        pa = h.raw_ws(a, chat, pt, query="&receipts=1")
        rb = h.raw_ws(b, chat, rt, query="&receipts=1")
        try:
            # Typing is relayed, never stored: it crosses to node B once
            # B's subscription to the chat is in Redis.
            self.redis.wait_subscribers(chat, 2)
            pa.send_json({"typing": True})
            self.assertEqual(next_of(rb, "typing"),
                             {"sender_type": "patient"})
            pa.send_json({"content": "across"})
            mid = next_of(pa, "message")["id"]
            self.assertEqual(next_of(rb, "message")["id"], mid)
            self.assertEqual(next_of(pa, "delivered")["up_to"], mid)
            rb.send_json({"read": mid})
            self.assertEqual(next_of(pa, "read"), {
                "by": "professional", "up_to": mid,
                "at": next_of(rb, "read")["at"]})
        finally:
            pa.close()
            rb.close()


if __name__ == "__main__":
    h.main()
