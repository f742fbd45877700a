#!/usr/bin/python3
"""A phone that reconnects: idempotent sends (client_id) and resuming a
chat from the last message seen (since).

since: /ws/chat/{id}/?since=<message id> first sends every message of the
chat stored after that one, oldest first, then live ones, with no gap and
no duplicate at the seam; it is read from storage in pages as the socket
drains, so no backlog is cut off by output_high_water.

client_id: a message may carry a UUID the client chose; a resend with the
same client_id in the same chat from the same sender, at any later time,
is stored once and answered with the original message (same id and
created_at) to the sender alone; the message object carries client_id on
the WebSocket, in history and from REST.  One resend, over either
transport, and client_id's format are protocol cases (tests/cases); here,
resends after a reconnect and whose client_id it is."""
import threading
import time
import uuid

import ccharness as h


class ClientId(h.ServerCase):

    def setUp(self):
        self.chat, self.pt, self.rt, self.pat, self.pro = self.world.pair()
        self.a = h.raw_ws(self.srv, self.chat, self.pt)
        self.b = h.raw_ws(self.srv, self.chat, self.rt)

    def tearDown(self):
        self.a.close()
        self.b.close()
        super().tearDown()

    def history(self, tok=None):
        return h.history(self.srv, self.chat, tok or self.pt)

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
        self.a = h.raw_ws(self.srv, self.chat, self.pt)
        for i, cid in enumerate(cids):
            self.a.send_json({"content": "m%d" % i, "client_id": cid})
        again = [self.a.recv_json()["message"] for _ in cids]
        self.assertEqual(again, first, "the originals, ids and times")
        self.assertTrue(h.silent(self.b), "nobody else sees a resend")
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



def send_many(ws, texts):
    """Send texts pipelined and read back their acknowledgements."""
    for t in texts:
        ws.send_json({"content": t})
    return [ws.recv_json()["message"] for _ in texts]


def recv_n(ws, n, timeout=60):
    """The next n messages (message objects) on ws."""
    out = []
    deadline = time.time() + timeout
    ws.sock.settimeout(timeout)
    while len(out) < n:
        if time.time() > deadline:
            raise AssertionError("%d of %d messages" % (len(out), n))
        got = ws.recv_json()
        assert "message" in got, got
        out.append(got["message"])
    return out


class Resume(h.ServerCase):
    CONF = {"server": {"output_high_water": "64k"}}

    def setUp(self):
        self.chat, self.pt, self.rt, _, _ = self.world.pair()
        self.pat = h.raw_ws(self.srv, self.chat, self.pt)
        self.seen = send_many(self.pat, ["before"])[0]

    def tearDown(self):
        self.pat.close()
        super().tearDown()

    def missed_while_away(self, n, size=0):
        """The professional is away while the patient sends n messages;
        it comes back with since = the last message it saw."""
        pad = "x" * size
        texts = ["away %d %s" % (i, pad) for i in range(n)]
        sent = []
        for i in range(0, n, 500):
            sent += send_many(self.pat, texts[i:i + 500])
        pro = h.raw_ws(self.srv, self.chat, self.rt,
                       "&since=" + self.seen["id"])
        return pro, sent

    def test_100_missed(self):
        pro, sent = self.missed_while_away(100)
        got = recv_n(pro, 100)
        self.assertEqual(got, sent, "exactly those, in order")
        live = send_many(self.pat, ["live"])[0]
        self.assertEqual(recv_n(pro, 1)[0], live, "then live ones")
        self.assertTrue(h.silent(pro), "nothing twice")
        pro.close()

    def test_5000_missed_past_high_water(self):
        """5,000 messages of about 300 bytes (1.5 MB) to a client whose
        output_high_water is 64k: read in pages as it drains, all of it
        arrives, and the client is not dropped."""
        pro, sent = self.missed_while_away(5000, size=280)
        got = recv_n(pro, 5000)
        self.assertEqual([m["id"] for m in got], [m["id"] for m in sent])
        live = send_many(self.pat, ["live"])[0]
        self.assertEqual(recv_n(pro, 1)[0], live)
        self.assertNotIn("client is not reading", self.srv.read_log())
        pro.close()

    def test_seam_while_the_other_party_keeps_sending(self):
        """The patient sends without pause while the professional's phone
        drops and resumes again and again (each time with since = the
        last message it got): every message once, in order, none missing
        or doubled where catching up turns into live delivery."""
        n, every = 15000, 25
        sent, done = [], threading.Event()

        def sender():
            for i in range(0, n, 20):
                sent.extend(send_many(self.pat, ["seam %d" % j for j in
                                                 range(i, i + 20)]))
            done.set()

        got, seam_at = [], []
        pro = h.raw_ws(self.srv, self.chat, self.rt)
        t = threading.Thread(target=sender)
        t.start()
        seams = 0
        while len(got) < n:
            want = min(every, n - len(got))
            got += recv_n(pro, want, timeout=120)
            if len(got) < n:
                pro.close()               # the phone drops, comes back
                pro = h.raw_ws(self.srv, self.chat, self.rt,
                               "&since=" + got[-1]["id"])
                seams += 1
                seam_at.append(len(got))
        t.join(60)
        ids = [m["id"] for m in got]
        if len(ids) != len(set(ids)):
            first = {}
            where = []
            for i, mid in enumerate(ids):
                if mid in first:
                    where.append((first[mid], i, got[i]["content"]))
                first.setdefault(mid, i)
            self.fail("%d messages twice (first index, again, content): "
                      "%s; seams after %s" % (len(where), where[:10],
                                              [x for x in seam_at if
                                               any(a <= x <= b + 1 for a, b,
                                                   _ in where[:10])][:10]))
        self.assertEqual(ids, [m["id"] for m in sent], "a gap")
        self.assertTrue(h.silent(pro))
        self.assertGreater(seams, 500)
        pro.close()

    def test_since_the_latest_message(self):
        pro = h.raw_ws(self.srv, self.chat, self.rt,
                       "&since=" + self.seen["id"])
        self.assertTrue(h.silent(pro), "nothing after it yet")
        live = send_many(self.pat, ["now"])[0]
        self.assertEqual(recv_n(pro, 1)[0], live)
        pro.close()

    def test_unknown_and_bad_since(self):
        """An id the chat does not have: an error frame, then live
        messages (the client reads history over REST); not a UUID: the
        same with its own error."""
        chat2, pt2, _, _, _ = self.world.pair()
        other = send_many(h.raw_ws(self.srv, chat2, pt2), ["elsewhere"])[0]
        for since, error in ((str(uuid.uuid4()), "since: no such message "
                              "in this chat"),
                             (other["id"], "since: no such message in this "
                              "chat"),
                             ("not-an-id", "since must be a message id "
                              "(a UUID)")):
            pro = h.raw_ws(self.srv, self.chat, self.rt, "&since=" + since)
            self.assertEqual(pro.recv_json(), {"error": error})
            live = send_many(self.pat, ["after %s" % since])[0]
            self.assertEqual(recv_n(pro, 1)[0], live, "then live")
            pro.close()

    def test_bearer_header_and_since(self):
        ws = h.raw_ws(self.srv, self.chat, self.rt,
                      "&since=" + self.seen["id"], header=True)
        self.assertEqual(ws.status, 101)
        live = send_many(self.pat, ["with a header"])[0]
        self.assertEqual(recv_n(ws, 1)[0], live)
        ws.close()

    def test_rest_since(self):
        sent = send_many(self.pat, ["r%d" % i for i in range(12)])
        path = "/chat/chats/%s/messages/?since=%s&page_size=5" % (
            self.chat, sent[3]["id"])
        st, _, body = self.srv.request("GET", path, token=self.pt)
        self.assertEqual(st, 200, body)
        self.assertEqual([m["content"] for m in body["results"]],
                         ["r4", "r5", "r6", "r7", "r8"])
        self.assertIsNotNone(body["next"])
        nxt = body["next"].split("/chat/", 1)[1]
        st, _, body = self.srv.request("GET", "/chat/" + nxt, token=self.pt)
        self.assertEqual([m["content"] for m in body["results"]],
                         ["r9", "r10", "r11"])
        for since, code, error in (
                (str(uuid.uuid4()), 404, "since: no such message in this "
                 "chat"),
                ("nope", 400, "since must be a message id (a UUID)")):
            st, _, body = self.srv.request(
                "GET", "/chat/chats/%s/messages/?since=%s" % (self.chat,
                                                              since),
                token=self.pt)
            self.assertEqual((st, body), (code, {"error": error}))


if __name__ == "__main__":
    h.main()
