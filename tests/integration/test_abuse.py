#!/usr/bin/python3
"""Hostile input against one server while a well-behaved patient and
professional keep chatting on it: every abuse gets its documented answer
(status, close code or error), and after each one the good pair's
messages all arrive.  Abusers connect from 127.0.0.2 so the per-address
limit bites them and not the good client on 127.0.0.1."""
import json
import socket
import struct
import time
import unittest

import ccharness as h

EVIL = "127.0.0.2"


def raw_http(port, data, source=EVIL, timeout=10):
    """Send bytes, return everything the server answers until it closes
    (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                 source_address=(source, 0))
    out = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        s.close()
    return out


class Abuse(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server({"server": {
            "request_timeout": "2s",
            "max_header_size": "8k",
            "max_body_size": "16k",
            "max_message_size": "16k",
            "message_rate": 100, "message_burst": 100,
            "max_connections_per_ip": 40,
            "max_websockets_per_user": 4,
            "allowed_origins": "https://app.example.org",
            "log_level": "info"}}).start()
        w = h.World(cls.srv)
        cls.chat, cls.pt, cls.rt, cls.pat, cls.pro = w.pair()
        cls.good_p = cls.ws(cls.chat, cls.pt, source="127.0.0.1")
        cls.good_r = cls.ws(cls.chat, cls.rt, source="127.0.0.1")
        cls.n_good = 0

    @classmethod
    def tearDownClass(cls):
        cls.good_p.close()
        cls.good_r.close()
        cls.srv.close()

    @classmethod
    def ws(cls, chat, tok, source=EVIL, headers=None):
        return h.raw_ws(cls.srv, chat, tok, headers=headers, timeout=20,
                        source=source, status=None)

    def assert_good_chat(self, n=5):
        """The well-behaved pair: every message arrives on both sides."""
        sent = []
        for i in range(n):
            text = "good %d-%d" % (self.n_good, i)
            sent.append(text)
            self.good_p.send_json({"content": text})
        type(self).n_good += 1
        for ws in (self.good_p, self.good_r):
            got = []
            for _ in sent:
                obj = ws.recv_json()
                self.assertIn("message", obj, obj)
                got.append(obj["message"]["content"])
            self.assertEqual(got, sent)

    def evil_chat(self):
        w = h.World(self.srv)
        return w.pair()

    # ------------------------------------------------------------ frames
    def test_oversize_frame_1009(self):
        chat, pt, _, _, _ = self.evil_chat()
        ws = self.ws(chat, pt)
        ws.send(0x1, b'{"content": "' + b"x" * 20000 + b'"}')
        self.assertEqual(ws.recv_close()[0], 1009)
        ws.close()
        self.assert_good_chat()

    def test_a_million_tiny_fragments(self):
        chat, pt, rt, _, _ = self.evil_chat()
        ws = self.ws(chat, pt)
        peer = self.ws(chat, rt)
        empty = h.RawWS.frame(0x0, b"", fin=False)
        ws.sock.sendall(h.RawWS.frame(0x1, b'{"content": "', fin=False))
        burst = empty * 100000
        start = time.time()
        for _ in range(10):
            ws.sock.sendall(burst)
        ws.sock.sendall(h.RawWS.frame(0x0, b'many"}', fin=True))
        got = peer.recv_json()
        self.assertEqual(got["message"]["content"], "many")
        self.assertLess(time.time() - start, 60)
        ws.close()
        peer.close()
        self.assert_good_chat()

    def test_invalid_utf8_1007(self):
        chat, pt, _, _, _ = self.evil_chat()
        ws = self.ws(chat, pt)
        ws.send(0x1, b'{"content": "\xc3\x28"}')
        self.assertEqual(ws.recv_close()[0], 1007)
        ws.close()
        self.assert_good_chat()

    def test_deep_json_nesting(self):
        chat, pt, _, _, _ = self.evil_chat()
        ws = self.ws(chat, pt)
        ws.send_text('{"content": ' + "[" * 5000 + "]" * 5000 + "}")
        err = ws.recv_json()
        self.assertEqual(set(err), {"error"})
        self.assertIn(err["error"], ("Invalid JSON",
                                     "Message content must be a string"))
        ws.send_json({"content": "still open"})
        self.assertEqual(ws.recv_json()["message"]["content"], "still open")
        ws.close()
        self.assert_good_chat()

    # ----------------------------------------------------------- floods
    def test_message_flood_is_rate_limited(self):
        chat, pt, rt, _, _ = self.evil_chat()
        ws = self.ws(chat, pt)
        peer = self.ws(chat, rt)
        for i in range(600):
            ws.send_json({"content": "flood %d" % i})
        stored = errors = 0
        for _ in range(600):
            obj = ws.recv_json()
            if "message" in obj:
                stored += 1
            else:
                self.assertEqual(obj, {"error": "Too many messages: not "
                                                "stored; slow down"})
                errors += 1
        self.assertGreater(errors, 0)
        self.assertLess(stored, 400, "burst 100 plus 100/s")
        status, _, body = self.srv.request(
            "GET", "/chat/chats/%s/messages/?page_size=1" % chat,
            token=rt)
        self.assertEqual(body["count"], stored, "refused means not stored")
        ws.close()
        peer.close()
        self.assert_good_chat()

    # ------------------------------------------------- one rate per user
    def test_rate_is_per_user_whichever_way(self):
        """message_rate is one bucket per user, shared by the WebSocket
        and REST (and by a user's several sockets): a script cannot get
        round it by sending over REST or opening another socket."""
        srv = h.Server({"server": {"message_rate": 1,
                                   "message_burst": 5}}).start()
        try:
            chat, pt, rt, _, _ = h.World(srv).pair()
            path = "/chat/chats/%s/send_message/" % chat
            a = h.RawWS(srv.port, "/ws/chat/%s/?token=%s" % (chat, pt))
            b = h.RawWS(srv.port, "/ws/chat/%s/?token=%s" % (chat, pt))
            for i in range(3):
                a.send_json({"content": "a %d" % i})
            for i in range(2):
                b.send_json({"content": "b %d" % i})
            for ws in (a, b):
                for _ in range(5):
                    self.assertIn("message", ws.recv_json())
            # The burst is spent: the same user over REST, then a third
            # socket, are refused; the other party is not.
            st, _, body = srv.request("POST", path, {"content": "rest"},
                                      token=pt)
            self.assertEqual((st, body), (429, {
                "error": "Too many messages: not stored; slow down"}))
            a.send_json({"content": "a again"})
            self.assertEqual(a.recv_json(), {
                "error": "Too many messages: not stored; slow down"})
            st, _, _ = srv.request("POST", path, {"content": "other"},
                                   token=rt)
            self.assertEqual(st, 201)
            # One message a second comes back.
            time.sleep(1.1)
            st, _, _ = srv.request("POST", path, {"content": "later"},
                                   token=pt)
            self.assertEqual(st, 201)
            st, _, page = srv.request("GET", "/chat/chats/%s/messages/" %
                                      chat, token=rt)
            self.assertEqual(page["count"], 7, "refused means not stored")
            a.close()
            b.close()
        finally:
            srv.close()

    def test_rate_limit_is_on_by_default(self):
        """Without message_rate in the file: 50 in a row, then 10 a
        second per user (doc/operations.md, carechat.conf(5))."""
        srv = h.Server({"server": {"message_rate": None}}).start()
        try:
            chat, pt, _, _, _ = h.World(srv).pair()
            a = h.RawWS(srv.port, "/ws/chat/%s/?token=%s" % (chat, pt))
            a.sock.sendall(b"".join(a.frame(0x1, json.dumps(
                {"content": "m%d" % i})) for i in range(60)))
            got = [a.recv_json() for _ in range(60)]
            stored = sum("message" in g for g in got)
            # 50 in a row, and about one more per 100 ms they took.
            self.assertGreaterEqual(stored, 50)
            self.assertLess(stored, 56)
            self.assertIn({"error": "Too many messages: not stored; slow "
                                    "down"}, got)
            a.close()
        finally:
            srv.close()

    def test_connection_flood_from_one_address(self):
        socks, refused = [], 0
        for _ in range(120):
            s = socket.create_connection(("127.0.0.1", self.srv.port),
                                         timeout=5,
                                         source_address=(EVIL, 0))
            socks.append(s)
        time.sleep(0.5)
        for s in socks:
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                refused += 1
        self.assertGreaterEqual(refused, 80, "beyond 40 per address, "
                                "connections are closed at accept")
        self.assert_good_chat()
        for s in socks:
            s.close()
        self.assertIn("connections from this address: refused",
                      self.srv.read_log())

    def test_slowloris(self):
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", self.srv.port),
                                         timeout=10,
                                         source_address=(EVIL, 0))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        self.assert_good_chat()
        start = time.time()
        for s in socks:
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 408"), data[:40])
            s.close()
        self.assertLess(time.time() - start, 8)
        self.assert_good_chat()

    def test_too_many_websockets_for_one_user(self):
        chat, pt, _, _, _ = self.evil_chat()
        conns = [self.ws(chat, pt) for _ in range(4)]
        extra = self.ws(chat, pt)
        self.assertEqual(extra.recv_close(), (4429, "Too many connections"))
        extra.close()
        conns.pop().close()
        time.sleep(0.3)
        again = self.ws(chat, pt)
        again.send_json({"content": "a slot freed"})
        self.assertEqual(again.recv_json()["message"]["content"],
                         "a slot freed")
        for ws in conns + [again]:
            ws.close()
        self.assert_good_chat()

    # ------------------------------------------------------------- HTTP
    def test_oversize_body_413(self):
        body = b'{"content": "' + b"x" * 20000 + b'"}'
        out = raw_http(self.srv.port,
                       b"POST /chat/chats/%s/send_message/ HTTP/1.1\r\n"
                       b"Host: x\r\nAuthorization: Bearer %s\r\n"
                       b"Content-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % (
                           self.chat.encode(), self.pt.encode(),
                           len(body)) + body)
        self.assertTrue(out.startswith(b"HTTP/1.1 413"), out[:40])
        self.assert_good_chat()

    def test_huge_headers_431(self):
        out = raw_http(self.srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                       b"X-Junk: " + b"a" * 20000 + b"\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:40])
        self.assert_good_chat()

    def test_path_traversal_and_bogus_ids(self):
        for path in ("/../../etc/passwd", "/chat/%2e%2e/%2e%2e/etc/passwd",
                     "/chat/chats/../../../etc/passwd",
                     "/chat/chats/not-a-uuid/",
                     "/chat/chats/00000000-0000-0000-0000-000000000000/",
                     "/chat/chats/%00/messages/"):
            status, _, body = self.srv.request("GET", path, token=self.pt)
            self.assertIn(status, (400, 404), path)
            self.assertIsInstance(body, dict, path)
            self.assertNotIn(b"root:", json.dumps(body).encode())
        for bogus in ("not-a-uuid", "0" * 36, "%27%3B--",
                      "00000000-0000-0000-0000-000000000000"):
            ws = self.ws(bogus, self.pt)
            self.assertEqual(ws.recv_json(), {"error": "Chat not found"})
            self.assertEqual(ws.recv_close()[0], 4404)
            ws.close()
        ws = self.ws("../../etc/passwd", self.pt)
        self.assertEqual(ws.status, 404, "not a chat path at all")
        ws.close()
        self.assert_good_chat()

    def test_origin_not_allowed_403(self):
        chat, pt, _, _, _ = self.evil_chat()
        ws = self.ws(chat, pt, headers={"Origin": "https://evil.example"})
        self.assertEqual(ws.status, 403)
        self.assertEqual(json.loads(ws.body), {"error": "Origin not allowed"})
        ws.close()
        ok = self.ws(chat, pt, headers={"Origin": "https://app.example.org"})
        self.assertEqual(ok.status, 101)
        ok.close()
        self.assert_good_chat()

    def test_garbage_frames_do_not_disturb_others(self):
        chat, pt, _, _, _ = self.evil_chat()
        for junk in (b"\xff" * 64, struct.pack("!BB", 0x81, 0x7f) +
                     b"\xff" * 8, b"\x00" * 32):
            ws = self.ws(chat, pt)
            ws.sock.sendall(junk)
            code, _ = ws.recv_close()
            self.assertIn(code, (1002, 1009))
            ws.close()
        self.assert_good_chat()


if __name__ == "__main__":
    h.main()
