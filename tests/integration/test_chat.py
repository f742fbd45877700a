#!/usr/bin/python3
"""Chat semantics over the WebSocket, against the real daemon.

Who may join a chat, the exact shape of a delivered message, delivery to
every device of both parties (sender included, once each, one order), a
user holding both profiles in two chats at once, content kept byte for
byte, store-before-show, REST sends reaching WebSockets, and history
surviving a restart.

What one message gets back (the spec's error strings, the role rules,
the length limit) is a protocol case: tests/cases, run by test_cases.py
over the WebSocket and REST.
"""
import asyncio
import json
import re
import time
import uuid

import ccharness as h
import websockets

ISO_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
MESSAGE_KEYS = {"id", "content", "sender_type", "created_at"}


# ------------------------------------------------------------- helpers
async def send(ws, content, role=None, ensure_ascii=True):
    body = {"content": content}
    if role is not None:
        body["role"] = role
    await ws.send(json.dumps(body, ensure_ascii=ensure_ascii))


def uuid7_ms(s):
    u = uuid.UUID(s)
    return u.int >> 80


def iso_us(s):
    """Microseconds since the epoch of a protocol timestamp."""
    import calendar
    secs = calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S"))
    return secs * 1000000 + int(s[20:26])


# ------------------------------------------------------------- access
class Access(h.ServerCase):

    def test_parties_join_others_get_4403(self):
        cid, pt, rt, pat, pro = self.world.pair()
        other_pat = self.world.profile("patient")
        other_pro = self.world.profile("professional")
        strangers = [
            h.token("stranger-pat", patient=other_pat),
            h.token("stranger-pro", professional=other_pro),
            # (profiles of their own: a profile belongs to the first
            # user who presents it, test_identity)
            h.token("stranger-both",
                    patient=self.world.profile("patient"),
                    professional=self.world.profile("professional")),
            h.token("no-profiles"),
            # the party's profile ids, but on the wrong sides
            h.token("swapped", patient=pro, professional=pat),
        ]

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt, header=True)
            for tok in strangers:
                ws = await h.connect(self.srv, cid, tok)
                code, _, frames = await h.closed_with(ws)
                self.assertEqual(code, 4403)
                self.assertEqual(frames, [])
            await send(a, "parties only")
            ma, mb = await h.recv_message(a), await h.recv_message(b)
            self.assertEqual(ma, mb)
            self.assertIsNone(await h.nothing_more(a))
            await a.close()
            await b.close()

        self.run_async(go())
        self.assertEqual([m["content"] for m in h.history(self.srv, cid, pt)],
                         ["parties only"])

    def test_unknown_chat_4404(self):
        _, pt, _, _, _ = self.world.pair()

        async def go():
            ws = await h.connect(self.srv, str(uuid.uuid4()), pt)
            code, _, frames = await h.closed_with(ws)
            self.assertEqual(code, 4404)
            self.assertEqual([json.loads(f) for f in frames],
                             [{"error": "Chat not found"}])

        self.run_async(go())

    def test_no_or_bad_token_4401(self):
        cid, _, _, _, _ = self.world.pair()

        async def go():
            for tok in (None, "not-a-jwt", h.token("x", secret="x" * 40),
                        h.token("late", exp_in=-3600)):
                ws = await h.connect(self.srv, cid, tok) if tok else \
                    await websockets.connect(self.srv.ws_url(cid),
                                             open_timeout=5)
                code, _, frames = await h.closed_with(ws)
                self.assertEqual(code, 4401, tok)
                self.assertEqual(frames, [])

        self.run_async(go())


class AccessFromStorage(Access):
    """The same rules with the chat cache off: each handshake asks storage
    (as for a chat another node made, or one the cache let go)."""
    CONF = {"server": {"chat_cache": 0}}


# ------------------------------------------------------------- messages
class Messages(h.ServerCase):

    def test_message_shape(self):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            before = time.time()
            await send(a, "shape")
            raw_a = json.loads(await asyncio.wait_for(a.recv(), 5))
            raw_b = json.loads(await asyncio.wait_for(b.recv(), 5))
            after = time.time()
            await send(b, "reply")
            reply = await h.recv_message(a)
            await h.recv_message(b)
            await a.close()
            await b.close()
            return raw_a, raw_b, reply, before, after

        raw_a, raw_b, reply, before, after = self.run_async(go())
        self.assertEqual(raw_a, raw_b)
        self.assertEqual(set(raw_a), {"message"})
        m = raw_a["message"]
        self.assertEqual(set(m), MESSAGE_KEYS)
        self.assertEqual(m["content"], "shape")
        self.assertEqual(m["sender_type"], "patient")
        self.assertEqual(reply["sender_type"], "professional")
        for msg in (m, reply):
            u = uuid.UUID(msg["id"])
            self.assertEqual(str(u), msg["id"], "canonical lower-case form")
            self.assertEqual(u.version, 7)
            self.assertEqual(u.variant, uuid.RFC_4122)
            self.assertRegex(msg["created_at"], ISO_US)
            # the id's timestamp is the message's creation time
            self.assertEqual(uuid7_ms(msg["id"]),
                             iso_us(msg["created_at"]) // 1000)
        self.assertNotEqual(m["id"], reply["id"])
        t = iso_us(m["created_at"]) / 1e6
        self.assertTrue(before - 1 <= t <= after + 1, (before, t, after))
        self.assertLessEqual(m["created_at"], reply["created_at"])
        self.assertLess(m["id"], reply["id"], "ids are time-ordered")

    def test_every_device_gets_every_message_once_in_one_order(self):
        cid, pt, rt, _, _ = self.world.pair()
        per_conn = 10

        async def go():
            conns = [await h.connect(self.srv, cid, pt),
                     await h.connect(self.srv, cid, pt, header=True),
                     await h.connect(self.srv, cid, rt),
                     await h.connect(self.srv, cid, rt, header=True)]
            # all four send at once, interleaved
            async def talk(d, ws):
                for i in range(per_conn):
                    await send(ws, "dev%d-msg%d" % (d, i))
            await asyncio.gather(*[talk(d, ws)
                                   for d, ws in enumerate(conns)])
            total = per_conn * len(conns)
            got = []
            for ws in conns:
                got.append([await h.recv_message(ws) for _ in range(total)])
            extra = await asyncio.gather(*[h.nothing_more(ws)
                                           for ws in conns])
            for ws in conns:
                await ws.close()
            return got, extra

        got, extra = self.run_async(go())
        self.assertEqual(extra, [None] * 4, "a message arrived twice")
        ids = [m["id"] for m in got[0]]
        self.assertEqual(len(set(ids)), len(ids), "duplicate deliveries")
        for other in got[1:]:
            self.assertEqual(other, got[0], "devices disagree on order")
        self.assertEqual(sorted(m["content"] for m in got[0]),
                         sorted("dev%d-msg%d" % (d, i) for d in range(4)
                                for i in range(per_conn)))
        for m in got[0]:
            want = "patient" if m["content"].startswith(("dev0", "dev1")) \
                else "professional"
            self.assertEqual(m["sender_type"], want)
        # each device's own messages keep the order it sent them in
        for d in range(4):
            mine = [m["content"] for m in got[0]
                    if m["content"].startswith("dev%d-" % d)]
            self.assertEqual(mine, ["dev%d-msg%d" % (d, i)
                                    for i in range(per_conn)])
        # and history is the live order
        stored = h.history(self.srv, cid, rt)
        self.assertEqual([m["id"] for m in stored], ids)

    def test_stored_before_shown(self):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            for i in range(20):
                await send(a if i % 2 else b, "durable %d" % i)
                seen = await h.recv_message(a if i % 2 == 0 else b)
                # the other party has it live: it is already in history
                status, _, body = self.srv.request(
                    "GET", "/chat/chats/%s/messages/?page_size=200" % cid,
                    token=pt)
                self.assertEqual(status, 200)
                self.assertEqual(body["count"], i + 1)
                self.assertEqual(body["results"][-1]["id"], seen["id"])
                await h.recv_message(b if i % 2 == 0 else a)
            await a.close()
            await b.close()

        self.run_async(go())

    def test_rest_send_is_broadcast(self):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            conns = [await h.connect(self.srv, cid, pt),
                     await h.connect(self.srv, cid, pt),
                     await h.connect(self.srv, cid, rt)]
            status, _, msg = self.srv.request(
                "POST", "/chat/chats/%s/send_message/" % cid,
                {"content": "from REST"}, token=rt)
            self.assertEqual(status, 201, msg)
            got = [await h.recv_message(ws) for ws in conns]
            extra = [await h.nothing_more(ws) for ws in conns]
            for ws in conns:
                await ws.close()
            return msg, got, extra

        msg, got, extra = self.run_async(go())
        self.assertEqual(extra, [None] * 3)
        live = dict(msg)
        self.assertIs(live.pop("is_read"), False)
        for m in got:
            self.assertEqual(m, live)
        self.assertEqual(live["sender_type"], "professional")

    def test_messages_stay_in_their_chat(self):
        c1, pt1, rt1, _, _ = self.world.pair()
        c2, pt2, rt2, _, _ = self.world.pair()

        async def go():
            a1 = await h.connect(self.srv, c1, pt1)
            a2 = await h.connect(self.srv, c2, pt2)
            await send(a1, "for chat one")
            m = await h.recv_message(a1)
            self.assertIsNone(await h.nothing_more(a2))
            await a1.close()
            await a2.close()
            return m

        self.run_async(go())
        self.assertEqual(h.history(self.srv, c2, rt2), [])
        self.assertEqual(len(h.history(self.srv, c1, rt1)), 1)


# ------------------------------------------------------------- roles
class Roles(h.ServerCase):
    """A user holding both profiles, in chats on either side at once (what
    one message gets under the role rules: tests/cases)."""

    def setUp(self):
        w = self.world
        # user U holds both a patient and a professional profile
        self.u_pat, self.u_pro = w.profile("patient"), w.profile(
            "professional")
        self.x_pro = w.profile("professional")
        self.y_pat = w.profile("patient")
        self.u = h.token("user-u", patient=self.u_pat,
                         professional=self.u_pro)
        self.x = h.token("user-x", professional=self.x_pro)
        self.y = h.token("user-y", patient=self.y_pat)

        def open_chat(body):
            status, _, chat = self.srv.request("POST", "/chat/chats/", body,
                                               token=self.u)
            self.assertEqual(status, 201, chat)
            return chat
        # A: U is the patient; B: U is the professional; C: both sides
        self.a = open_chat({"professional": self.x_pro})
        self.b = open_chat({"patient": self.y_pat})
        self.c = open_chat({"patient": self.u_pat,
                            "professional": self.u_pro})
        self.assertEqual((self.a["patient"], self.a["professional"]),
                         (self.u_pat, self.x_pro))
        self.assertEqual((self.b["patient"], self.b["professional"]),
                         (self.y_pat, self.u_pro))
        self.assertEqual((self.c["patient"], self.c["professional"]),
                         (self.u_pat, self.u_pro))

    def test_patient_in_one_chat_professional_in_another(self):
        """One token, two chats open at once: the side follows the chat."""
        async def go():
            in_a = await h.connect(self.srv, self.a["id"], self.u)
            in_b = await h.connect(self.srv, self.b["id"], self.u)
            x = await h.connect(self.srv, self.a["id"], self.x)
            y = await h.connect(self.srv, self.b["id"], self.y)
            await send(in_a, "as patient in A")
            await send(in_b, "as professional in B")
            ma = await h.recv_message(in_a)
            mb = await h.recv_message(in_b)
            self.assertEqual(await h.recv_message(x), ma)
            self.assertEqual(await h.recv_message(y), mb)
            self.assertEqual(ma["sender_type"], "patient")
            self.assertEqual(mb["sender_type"], "professional")
            # nothing crosses between the chats
            for ws in (in_a, in_b, x, y):
                self.assertIsNone(await h.nothing_more(ws, 0.15))
            await send(x, "doctor x to U")
            await send(y, "patient y to U")
            self.assertEqual((await h.recv_message(in_a))["content"],
                             "doctor x to U")
            self.assertEqual((await h.recv_message(in_b))["content"],
                             "patient y to U")
            for ws in (in_a, in_b, x, y):
                await ws.close()

        self.run_async(go())
        # and U's chat list shows both (and the self chat), each with U
        # on the right side
        status, _, page = self.srv.request("GET", "/chat/chats/",
                                           token=self.u)
        self.assertEqual(status, 200)
        ids = {c["id"] for c in page["results"]}
        self.assertEqual(ids, {self.a["id"], self.b["id"], self.c["id"]})


# ------------------------------------------------------------- content
TRICKY = [
    "plain ascii",
    "emoji 😀👩🏽‍⚕️🏳️‍🌈 and a flag 🇫🇷",
    "مرحبا، كيف يمكنني مساعدتك؟",                    # Arabic (RTL)
    "שלום, מה שלומך?",                                  # Hebrew (RTL)
    "mixed עברית and English و عربي 123",
    "\u202eoverride\u202c and \u200f marks \u200e",
    'double "quotes" and \'single\'',
    "back\\slash \\n not a newline \\u0041 \\\\",
    "line one\nline two\r\nline three\n",
    "\ttabs\tand\x0bvertical\x0cform\x08back",
    "controls \x01\x02\x1f\x7f",
    "  leading and trailing spaces  ",
    "\n\nsurrounded by newlines\n\n",
    "e\u0301 vs \u00e9 (not normalised)",
    "\ufeffBOM and zero\u200bwidth",
    "line\u2028sep and para\u2029sep",
    "</script><script>alert(1)</script> & <b>",
    "CJK 漢字 かな 한글, math 𝔸𝔹ℂ, old 𐌰𐌱",
    "\U0010fffd last plane and \ufffd replacement",
    "x" * 5000,
]


class Content(h.ServerCase):

    def round_trip(self, ensure_ascii):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            live = []
            for text in TRICKY:
                await send(a, text, ensure_ascii=ensure_ascii)
                m = await h.recv_message(a)
                self.assertEqual(await h.recv_message(b), m)
                self.assertEqual(m["content"], text)
                self.assertEqual(m["content"].encode("utf-8"),
                                 text.encode("utf-8"))
                live.append(m)
            await a.close()
            await b.close()
            return live

        live = self.run_async(go())
        stored = h.history(self.srv, cid, rt)
        self.assertEqual([m["content"] for m in stored], TRICKY)
        self.assertEqual([m["id"] for m in stored], [m["id"] for m in live])

    def test_round_trip_escaped(self):
        self.round_trip(ensure_ascii=True)

    def test_round_trip_raw_utf8(self):
        self.round_trip(ensure_ascii=False)

    def test_frame_sizes_either_side_of_the_copy_limit(self):
        """Frames up to 1 KB are copied into each connection's output and
        larger ones shared by reference (session.c): contents whose frames
        fall either side of that line, back to back, reach both parties
        whole and in order."""
        cid, pt, rt, _, _ = self.world.pair()
        texts = ["%d:" % n + "é" * (n // 2) + "x" * (n % 2)
                 for n in range(700, 1100, 3)] + ["y" * 9000, "z"]

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            for text in texts:
                await send(a, text)
            for who in (a, b):
                got = [(await h.recv_message(who))["content"] for _ in texts]
                self.assertEqual(got, texts)
            await a.close()
            await b.close()

        self.run_async(go())

    def test_rest_send_round_trip(self):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            b = await h.connect(self.srv, cid, rt)
            for text in TRICKY:
                status, _, msg = self.srv.request(
                    "POST", "/chat/chats/%s/send_message/" % cid,
                    {"content": text}, token=pt)
                self.assertEqual(status, 201, msg)
                self.assertEqual(msg["content"], text)
                m = await h.recv_message(b)
                self.assertEqual(m["content"], text)
                self.assertEqual(m["id"], msg["id"])
            await b.close()

        self.run_async(go())
        self.assertEqual([m["content"] for m in h.history(self.srv, cid, pt)],
                         TRICKY)

    def test_nul_character(self):
        """\\u0000 is either kept byte for byte or refused with an error
        (and nothing stored); the connection stays open either way."""
        cid, pt, rt, _, _ = self.world.pair()
        text = "before\x00after"

        async def go():
            a = await h.connect(self.srv, cid, pt)
            await a.send('{"content": "before\\u0000after"}')
            data = await h.recv_json(a)
            await send(a, "next")
            self.assertEqual((await h.recv_message(a))["content"], "next")
            await a.close()
            return data

        data = self.run_async(go())
        stored = [m["content"] for m in h.history(self.srv, cid, rt)]
        if "message" in data:
            self.assertEqual(data["message"]["content"], text)
            self.assertEqual(stored, [text, "next"])
        else:
            self.assertEqual(set(data), {"error"})
            self.assertIsInstance(data["error"], str)
            self.assertTrue(data["error"])
            self.assertEqual(stored, ["next"])

# ------------------------------------------------------------- restart
class Durability(h.ServerCase):

    def test_history_survives_restart(self):
        cid, pt, rt, _, _ = self.world.pair()
        n = 30

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            for i in range(n):
                await send(a if i % 3 else b, "before restart %d" % i)
            live = [await h.recv_message(a) for _ in range(n)]
            self.assertEqual([await h.recv_message(b) for _ in range(n)],
                             live)
            status, _, rest_msg = self.srv.request(
                "POST", "/chat/chats/%s/send_message/" % cid,
                {"content": "via REST"}, token=rt)
            self.assertEqual(status, 201)
            self.assertEqual(await h.recv_message(a), await h.recv_message(b))
            # stop while the clients are still connected and reading
            loop = asyncio.get_running_loop()
            stopping = loop.run_in_executor(None, self.srv.stop)
            closes = await asyncio.gather(h.closed_with(a, 10),
                                          h.closed_with(b, 10))
            self.assertEqual(await stopping, 0)
            self.assertEqual([c[0] for c in closes], [1001, 1001])
            return live, rest_msg

        live, rest_msg = self.run_async(go(), 30)
        self.srv.start()

        expect = [{k: m[k] for k in MESSAGE_KEYS} for m in live]
        rest_msg.pop("is_read")
        expect.append(rest_msg)
        stored = h.history(self.srv, cid, pt)
        self.assertEqual([{k: m[k] for k in MESSAGE_KEYS} for m in stored],
                         expect)
        status, _, chat = self.srv.request("GET", "/chat/chats/%s/" % cid,
                                           token=pt)
        self.assertEqual(status, 200)
        self.assertEqual(chat["last_message"]["id"], rest_msg["id"])

        # the chat carries on after the restart, after the old messages
        async def after():
            a = await h.connect(self.srv, cid, pt)
            await send(a, "after restart")
            m = await h.recv_message(a)
            await a.close()
            return m

        m = self.run_async(after())
        stored = h.history(self.srv, cid, rt)
        self.assertEqual(len(stored), n + 2)
        self.assertEqual(stored[-1]["id"], m["id"])
        self.assertGreater(m["id"], rest_msg["id"])


if __name__ == "__main__":
    h.main()
