#!/usr/bin/python3
"""The WebSocket layer against the real daemon.

What a client observes, byte for byte: the HTTP answers to bad upgrade
requests (405, 400, 426), the 101 and its accept key, authentication and
chat access as close codes (4401, 4403, 4404), RFC 6455 framing faults as
close codes (1002, 1003, 1007, 1009), close-frame handling, ping/pong and
liveness (ping_interval / pong_timeout), the message path over several
devices per party, content kept exactly, a client that stops reading
(output_high_water), a token expiring while connected (4408), and
connections moving between event loops (threads = 3).  The answers to
one message (the spec's error strings) are protocol cases: tests/cases.

Every class starts one daemon; a class whose cases need other limits
starts its own.  Each class also checks, when its daemon stops, that it
exits 0 and that its log holds no sanitizer report.
"""
import asyncio
import base64
import hashlib
import json
import os
import re
import socket
import struct
import time
import uuid

import ccharness as h
import websockets

ISO_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

ERR_JSON = "Invalid JSON"
ERR_NOT_FOUND = "Chat not found"

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA


# ------------------------------------------------------------- helpers
def accept_for(key):
    return base64.b64encode(hashlib.sha1(
        (key + WS_GUID).encode()).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def raw_http(port, request, timeout=5):
    """Send request bytes; (status, lower-cased headers, body) of the
    answer.  Reads the whole answer (Content-Length) or up to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise EOFError("closed before an answer: %r" % buf)
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        while len(body) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return status, hdrs, body


def upgrade_request(path, port, method="GET", omit=(), extra=None,
                    version="1.1"):
    """A WebSocket upgrade request; headers named in omit are left out,
    extra ones added (or replaced)."""
    hdrs = {"Host": "127.0.0.1:%d" % port, "Upgrade": "websocket",
            "Connection": "Upgrade", "Sec-WebSocket-Key": new_key(),
            "Sec-WebSocket-Version": "13"}
    hdrs.update(extra or {})
    for k in omit:
        hdrs.pop(k, None)
    text = "%s %s HTTP/%s\r\n" % (method, path, version) + "".join(
        "%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    return text.encode()


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


def check_message(test, m, content, sender_type):
    test.assertEqual(set(m), {"id", "content", "sender_type", "created_at"})
    test.assertEqual(m["content"], content)
    test.assertEqual(m["sender_type"], sender_type)
    test.assertEqual(uuid.UUID(m["id"]).version, 7)
    test.assertRegex(m["created_at"], ISO_US)


# ------------------------------------------------------------ handshake
class Handshake(h.ServerCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cid, cls.pt, cls.rt, cls.pat, cls.pro = cls.world.pair()

    def path(self, tok=None, cid=None, slash=True):
        p = "/ws/chat/%s%s" % (cid or self.cid, "/" if slash else "")
        return p + ("?token=" + tok if tok else "")

    def http(self, **kw):
        return raw_http(self.srv.port, upgrade_request(
            self.path(self.pt), self.srv.port, **kw))

    def test_non_get_is_405(self):
        for method in ("POST", "PUT", "DELETE", "HEAD"):
            status, hdrs, body = self.http(method=method)
            self.assertEqual(status, 405, method)
            self.assertEqual(hdrs.get("allow"), "GET")
            if method != "HEAD":
                self.assertEqual(json.loads(body),
                                 {"error": "Method not allowed"})

    def test_bad_or_missing_key_is_400(self):
        bad_keys = ["", "abc", "dGhlIHNhbXBsZSBub25jZQ",   # no padding
                    base64.b64encode(os.urandom(15)).decode(),
                    base64.b64encode(os.urandom(17)).decode(),
                    "dGhlIHNhbXBsZSBub25jZR==",   # non-canonical last char
                    "!!!!!!!!!!!!!!!!!!!!!!=="]
        for key in bad_keys:
            status, _, body = self.http(extra={"Sec-WebSocket-Key": key})
            self.assertEqual(status, 400, key)
            self.assertEqual(json.loads(body),
                             {"error": "Invalid WebSocket handshake"})
        status, _, _ = self.http(omit=["Sec-WebSocket-Key"])
        self.assertEqual(status, 400)

    def test_missing_connection_or_host_is_400(self):
        for omit in (["Connection"], ["Host"]):
            status, _, _ = self.http(omit=omit)
            self.assertEqual(status, 400, omit)
        status, _, _ = self.http(extra={"Connection": "keep-alive"})
        self.assertEqual(status, 400)
        status, _, _ = self.http(version="1.0")
        self.assertEqual(status, 400)

    def test_missing_upgrade_is_426(self):
        # doc/protocol.md: "426 `Unsupported WebSocket version` with
        # `Sec-WebSocket-Version: 13` (no `Upgrade: websocket`, or another
        # version)".
        for extra, omit in (({}, ["Upgrade"]), ({"Upgrade": "h2c"}, [])):
            status, hdrs, body = self.http(extra=extra, omit=omit)
            self.assertEqual(status, 426)
            self.assertEqual(hdrs.get("sec-websocket-version"), "13")
            self.assertEqual(hdrs.get("upgrade"), "websocket")
            self.assertEqual(json.loads(body),
                             {"error": "WebSocket upgrade required"})

    def test_wrong_version_is_426(self):
        for ver in ("8", "12", "14", "13, 8", None):
            if ver is None:
                status, hdrs, body = self.http(
                    omit=["Sec-WebSocket-Version"])
            else:
                status, hdrs, body = self.http(
                    extra={"Sec-WebSocket-Version": ver})
            self.assertEqual(status, 426, ver)
            self.assertEqual(hdrs.get("sec-websocket-version"), "13")
            self.assertEqual(json.loads(body),
                             {"error": "Unsupported WebSocket version"})

    def test_accept_key(self):
        # RFC 6455 section 1.3's example, then a random key.
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        for k in (key, new_key()):
            with socket.create_connection(("127.0.0.1", self.srv.port),
                                          timeout=5) as s:
                s.sendall(upgrade_request(self.path(self.pt), self.srv.port,
                                          extra={"Sec-WebSocket-Key": k}))
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, buf)
                    buf += chunk
            head = buf.split(b"\r\n\r\n")[0].decode()
            lines = head.split("\r\n")
            self.assertEqual(lines[0], "HTTP/1.1 101 Switching Protocols")
            hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip()
                    for l in lines[1:]}
            self.assertEqual(hdrs["sec-websocket-accept"], accept_for(k))
            self.assertEqual(hdrs["upgrade"].lower(), "websocket")
            self.assertEqual(hdrs["connection"].lower(), "upgrade")
        self.assertEqual(accept_for(key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

    def test_path_with_and_without_trailing_slash(self):
        async def go():
            a = await websockets.connect(
                "ws://127.0.0.1:%d%s" % (self.srv.port,
                                         self.path(self.pt, slash=False)),
                open_timeout=5)
            b = await websockets.connect(
                "ws://127.0.0.1:%d%s" % (self.srv.port,
                                         self.path(self.rt, slash=True)),
                open_timeout=5)
            await a.send(json.dumps({"content": "no slash"}))
            for ws in (a, b):
                check_message(self, await h.recv_message(ws), "no slash",
                              "patient")
            await b.send(json.dumps({"content": "slash"}))
            for ws in (a, b):
                check_message(self, await h.recv_message(ws), "slash",
                              "professional")
            await a.close()
            await b.close()

        self.run_async(go())

    def test_other_paths_are_404(self):
        for p in ("/ws/chat/%s/extra/" % self.cid, "/ws/chat/",
                  "/ws/chat", "/ws/chat//", "/ws/other/%s/" % self.cid,
                  "/ws/chat/" + "a" * 80 + "/"):
            status, _, _ = raw_http(self.srv.port, upgrade_request(
                p + "?token=" + self.pt, self.srv.port))
            self.assertEqual(status, 404, p)

    def test_browser_like_request_declines_extensions(self):
        rw = h.RawWS(self.srv.port, self.path(self.pt), headers={
            "Origin": "http://localhost:3000",
            "Connection": "keep-alive, Upgrade",
            "Upgrade": "WebSocket",
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
            "Accept-Language": "en-US,en;q=0.5",
            "Cache-Control": "no-cache", "Pragma": "no-cache",
            "Sec-WebSocket-Extensions":
                "permessage-deflate; client_max_window_bits",
            "Sec-Fetch-Mode": "websocket"})
        try:
            self.assertEqual(rw.status, 101)
            self.assertNotIn("sec-websocket-extensions", rw.headers)
            self.assertNotIn("sec-websocket-protocol", rw.headers)
            rw.send_json({"content": "from a browser"})
            m = rw.recv_json()["message"]
            check_message(self, m, "from a browser", "patient")
        finally:
            rw.close()

        # The websockets library offers permessage-deflate by default.
        async def go():
            ws = await h.connect(self.srv, self.cid, self.pt)
            self.assertEqual(ws.extensions, [])
            self.assertIsNone(
                ws.response_headers.get("Sec-WebSocket-Extensions"))
            await ws.close()

        self.run_async(go())

    def test_no_token_4401(self):
        async def go():
            ws = await websockets.connect(self.srv.ws_url(self.cid),
                                          open_timeout=5)
            code, reason, frames = await h.closed_with(ws)
            self.assertEqual((code, reason, frames),
                             (4401, "Authentication required", []))
            # Not a Bearer token, and an empty one: the same.
            for hdrs, url in (
                    ({"Authorization": "Basic dXNlcjpwYXNz"},
                     self.srv.ws_url(self.cid)),
                    ({"Authorization": "Bearer "},
                     self.srv.ws_url(self.cid)),
                    ({}, self.srv.ws_url(self.cid) + "?token=")):
                ws = await websockets.connect(url, extra_headers=hdrs,
                                              open_timeout=5)
                code, reason, frames = await h.closed_with(ws)
                self.assertEqual((code, frames), (4401, []), (hdrs, url))

        self.run_async(go())

    def test_refused_tokens_4401(self):
        now = int(time.time())
        claims = {"user_id": "u-" + self.pat[:8], "patient_id": self.pat,
                  "iat": now, "exp": now + 3600}
        good = h.mint(claims)
        hdr, body, sig = good.split(".")
        none_hdr = h.b64url(json.dumps({"alg": "none",
                                        "typ": "JWT"}).encode())
        bad = {
            "bad signature": h.mint(claims, secret="x" * 40),
            "tampered payload": hdr + "." + h.b64url(json.dumps(
                dict(claims, patient_id=self.pro)).encode()) + "." + sig,
            "expired": h.token("u-" + self.pat[:8], patient=self.pat,
                               exp_in=-3600),
            "alg none": none_hdr + "." + body + ".",
            "alg none, signature kept": none_hdr + "." + body + "." + sig,
            "HS512 not configured": h.mint(claims, alg="HS512"),
            "no exp": h.mint({"user_id": "x", "patient_id": self.pat}),
            "not a jwt": "not-a-jwt",
        }

        async def go():
            for what, tok in bad.items():
                for header in (False, True):
                    ws = await h.connect(self.srv, self.cid, tok,
                                       header=header)
                    code, reason, frames = await h.closed_with(ws)
                    self.assertEqual(code, 4401, what)
                    self.assertTrue(reason, what)
                    self.assertEqual(frames, [], what)

        self.run_async(go())
        self.assertNotIn(bad["bad signature"], self.srv.read_log())

    def test_token_by_query_and_by_header(self):
        async def go():
            a = await h.connect(self.srv, self.cid, self.pt)
            b = await h.connect(self.srv, self.cid, self.rt, header=True)
            await b.send(json.dumps({"content": "header works"}))
            for ws in (a, b):
                check_message(self, await h.recv_message(ws), "header works",
                              "professional")
            await a.send(json.dumps({"content": "query works"}))
            for ws in (a, b):
                check_message(self, await h.recv_message(ws), "query works",
                              "patient")
            # The header wins over the query when both are given.
            c = await websockets.connect(
                self.srv.ws_url(self.cid, "garbage"), open_timeout=5,
                extra_headers={"Authorization": "Bearer " + self.pt})
            await c.send(json.dumps({"content": "both given"}))
            check_message(self, await h.recv_message(c), "both given",
                          "patient")
            for ws in (a, b, c):
                await ws.close()

        self.run_async(go())
        log = self.srv.read_log()
        self.assertNotIn(self.pt, log)
        self.assertNotIn(self.rt, log)

    def test_not_a_party_4403(self):
        stranger = h.token("stranger", patient=self.world.profile("patient"))

        async def go():
            ws = await h.connect(self.srv, self.cid, stranger)
            code, reason, frames = await h.closed_with(ws)
            self.assertEqual((code, reason, frames),
                             (4403, "Access denied", []))

        self.run_async(go())

    def test_unknown_chat_4404(self):
        async def go():
            ws = await h.connect(self.srv, str(uuid.uuid4()), self.pt)
            code, reason, frames = await h.closed_with(ws)
            self.assertEqual(code, 4404)
            self.assertEqual(reason, ERR_NOT_FOUND)
            self.assertEqual([json.loads(f) for f in frames],
                             [{"error": ERR_NOT_FOUND}])

        self.run_async(go())

    def test_malformed_chat_id_4404(self):
        bad_ids = ["not-a-uuid", "123",
                   "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
                   self.cid.replace("-", ""),           # no dashes
                   self.cid + "0",                       # too long
                   self.cid[:-1]]                        # too short

        async def go():
            for cid in bad_ids:
                ws = await h.connect(self.srv, cid, self.pt)
                code, _, frames = await h.closed_with(ws)
                self.assertEqual(code, 4404, cid)
                self.assertEqual([json.loads(f) for f in frames],
                                 [{"error": ERR_NOT_FOUND}], cid)
            # Upper-case hex is the same chat.
            ws = await h.connect(self.srv, self.cid.upper(), self.pt)
            await ws.send(json.dumps({"content": "upper"}))
            check_message(self, await h.recv_message(ws), "upper", "patient")
            await ws.close()

        self.run_async(go())

    def test_auth_checked_before_chat(self):
        # An unauthenticated client learns nothing about chat existence.
        async def go():
            ws = await websockets.connect(
                self.srv.ws_url(str(uuid.uuid4())), open_timeout=5)
            code, _, frames = await h.closed_with(ws)
            self.assertEqual((code, frames), (4401, []))

        self.run_async(go())


# -------------------------------------------------------------- framing
class Framing(h.ServerCase):
    MAX = 4096
    CONF = {"server": {"max_message_size": "4k"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cid, cls.pt, cls.rt, cls.pat, cls.pro = cls.world.pair()

    def open(self):
        return self.raw_ws(self.cid, self.pt)

    def assert_closed(self, data, code, reason=None):
        """Send data (one frame or several, as bytes) on a fresh
        connection: the server answers close with code and hangs up."""
        rw = self.open()
        try:
            rw.sock.sendall(data if isinstance(data, bytes)
                            else b"".join(data))
            got, why = rw.recv_close()
            self.assertEqual(got, code, data[:40])
            if reason is not None:
                self.assertEqual(why, reason)
            self.assertTrue(rw.closed_by_peer(3), "no hang-up after close")
        finally:
            rw.close()

    def assert_alive(self, rw, content="still here"):
        rw.send_json({"content": content})
        m = rw.recv_json()
        self.assertEqual(m["message"]["content"], content)

    F = staticmethod(h.RawWS.frame)

    def test_unmasked_frame_1002(self):
        self.assert_closed(self.F(OP_TEXT, '{"content": "x"}', mask=False),
                           1002, "Protocol error")

    def test_reserved_bits_1002(self):
        for rsv in (1, 2, 4, 7):
            self.assert_closed(self.F(OP_TEXT, '{"content": "x"}', rsv=rsv),
                               1002)

    def test_unknown_opcodes_1002(self):
        for op in (0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF):
            self.assert_closed(self.F(op, b"x"), 1002)

    def test_binary_1003(self):
        self.assert_closed(self.F(OP_BINARY, b'{"content": "x"}'), 1003,
                           "Binary frames are not supported")
        # also as the first fragment of a message
        self.assert_closed(self.F(OP_BINARY, b'{"content"', fin=False),
                           1003)

    def test_fragmented_with_interleaved_ping(self):
        rw = self.open()
        try:
            rw.send(OP_TEXT, '{"content": "frag', fin=False)
            rw.send(OP_PING, b"mid-message")
            rw.send(OP_CONT, "mented \u20ac ".encode(),
                    fin=False)
            rw.send(OP_CONT, 'message"}')
            fin, op, data = rw.recv()
            self.assertEqual((fin, op, data), (True, OP_PONG,
                                               b"mid-message"))
            fin, op, data = rw.recv()
            self.assertEqual((fin, op), (True, OP_TEXT))
            m = json.loads(data)["message"]
            check_message(self, m, "fragmented \u20ac message", "patient")
            # Empty fragments are fine too.
            rw.send(OP_TEXT, b"", fin=False)
            rw.send(OP_CONT, b'{"content": "e"}', fin=False)
            rw.send(OP_CONT, b"")
            self.assertEqual(rw.recv_json()["message"]["content"], "e")
        finally:
            rw.close()

    def test_control_frame_too_long_or_fragmented_1002(self):
        for op in (OP_PING, OP_PONG, OP_CLOSE):
            payload = close_payload(1000, b"x" * 124) if op == OP_CLOSE \
                else b"x" * 126
            self.assert_closed(self.F(op, payload), 1002)
            self.assert_closed(self.F(op, payload[:10], fin=False), 1002)

    def test_control_frame_125_bytes_ok(self):
        rw = self.open()
        try:
            rw.send(OP_PING, b"p" * 125)
            self.assertEqual(rw.recv(), (True, OP_PONG, b"p" * 125))
            rw.send(OP_CLOSE, close_payload(1000, b"r" * 123))
            code, _ = rw.recv_close()
            self.assertEqual(code, 1000)
            self.assertTrue(rw.closed_by_peer(3))
        finally:
            rw.close()

    def test_continuation_without_start_1002(self):
        self.assert_closed(self.F(OP_CONT, b'{"content": "x"}'), 1002)
        self.assert_closed(self.F(OP_CONT, b'{"content"', fin=False), 1002)

    def test_new_message_inside_message_1002(self):
        self.assert_closed([self.F(OP_TEXT, b'{"content"', fin=False),
                            self.F(OP_TEXT, b'{"content": "x"}')], 1002)
        self.assert_closed([self.F(OP_TEXT, b'{"content"', fin=False),
                            self.F(OP_BINARY, b'x')], 1002)

    def test_non_minimal_length_1002(self):
        # Length 5 in the 16-bit form, and 200 in the 64-bit form.
        def masked(b0, lenbytes, payload):
            key = os.urandom(4)
            return bytes([b0]) + lenbytes + key + bytes(
                c ^ key[i % 4] for i, c in enumerate(payload))
        p = b"hello"
        self.assert_closed(masked(0x81, bytes([0x80 | 126]) +
                                  struct.pack("!H", 5), p), 1002)
        self.assert_closed(masked(0x81, bytes([0x80 | 127]) +
                                  struct.pack("!Q", 200), b"x" * 200), 1002)
        # 64-bit length with the top bit set
        self.assert_closed(bytes([0x81, 0x80 | 127]) +
                           struct.pack("!Q", 1 << 63) + os.urandom(4), 1002)

    def test_invalid_utf8_1007(self):
        for bad in (b'{"content": "\xff"}', b'{"content": "\xc0\xaf"}',
                    b'{"content": "\xed\xa0\x80"}',          # surrogate
                    b'{"content": "\xf4\x90\x80\x80"}',      # > U+10FFFF
                    b'{"content": "\xe2\x82"}'):             # truncated
            self.assert_closed(self.F(OP_TEXT, bad), 1007, "Invalid UTF-8")

    def test_invalid_utf8_across_fragments_1007(self):
        # A 3-byte sequence cut after 2 bytes, resumed with a non
        # continuation byte: the fault is found in the second fragment.
        self.assert_closed([self.F(OP_TEXT, b'{"content": "\xe2\x82',
                                   fin=False),
                            self.F(OP_CONT, b'("}')], 1007)
        # Fails as soon as the bad byte arrives, before the message ends.
        self.assert_closed([self.F(OP_TEXT, b'{"content": "', fin=False),
                            self.F(OP_CONT, b'\xff', fin=False)], 1007)
        # A message ending inside a character.
        self.assert_closed([self.F(OP_TEXT, b'{"content": "x"}', fin=False),
                            self.F(OP_CONT, b'\xf0\x9f')], 1007)

    def test_utf8_split_across_fragments_ok(self):
        rw = self.open()
        try:
            text = '{"content": "\U0001f600 ok"}'.encode()
            i = text.index(b"\xf0") + 1
            j = i + 2
            rw.send(OP_TEXT, text[:i], fin=False)
            rw.send(OP_CONT, text[i:j], fin=False)
            rw.send(OP_CONT, text[j:])
            self.assertEqual(rw.recv_json()["message"]["content"],
                             "\U0001f600 ok")
        finally:
            rw.close()

    def test_message_too_big_1009(self):
        big = b'{"content": "' + b"x" * self.MAX + b'"}'
        self.assert_closed(self.F(OP_TEXT, big), 1009, "Message too big")
        # Fragments that are each small but too big together.
        half = self.MAX // 2 + 10
        self.assert_closed([self.F(OP_TEXT, b'{"content": "' + b"x" * half,
                                   fin=False),
                            self.F(OP_CONT, b"x" * half + b'"}')], 1009)

    def test_message_of_exactly_max_size_ok(self):
        prefix, suffix = b'{"content": "', b'"}'
        content = "y" * (self.MAX - len(prefix) - len(suffix))
        rw = self.open()
        try:
            payload = prefix + content.encode() + suffix
            self.assertEqual(len(payload), self.MAX)
            rw.send(OP_TEXT, payload)
            self.assertEqual(rw.recv_json()["message"]["content"], content)
            # ... and in fragments
            rw.send(OP_TEXT, payload[:1000], fin=False)
            rw.send(OP_CONT, payload[1000:3000], fin=False)
            rw.send(OP_CONT, payload[3000:])
            self.assertEqual(rw.recv_json()["message"]["content"], content)
        finally:
            rw.close()

    def test_close_with_valid_code_is_echoed(self):
        for code in (1000, 1001, 1003, 1011, 3000, 4000, 4999):
            rw = self.open()
            try:
                rw.send(OP_CLOSE, close_payload(code, "bye \u00e9".encode()))
                got, _ = rw.recv_close()
                self.assertEqual(got, code)
                self.assertTrue(rw.closed_by_peer(3))
            finally:
                rw.close()
        # An empty close is answered with an empty close.
        rw = self.open()
        try:
            rw.send(OP_CLOSE, b"")
            self.assertEqual(rw.recv(), (True, OP_CLOSE, b""))
            self.assertTrue(rw.closed_by_peer(3))
        finally:
            rw.close()

    def test_close_with_invalid_code_1002(self):
        for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999,
                     5000, 65535):
            self.assert_closed(self.F(OP_CLOSE, close_payload(code)), 1002)

    def test_close_reason_invalid_utf8_1007(self):
        self.assert_closed(self.F(OP_CLOSE, close_payload(1000, b"\xff\xfe")),
                           1007)
        self.assert_closed(self.F(OP_CLOSE, close_payload(1000, b"ok\xe2")),
                           1007)

    def test_close_with_one_byte_1002(self):
        self.assert_closed(self.F(OP_CLOSE, b"\x03"), 1002)

    def test_ping_gets_identical_pong(self):
        rw = self.open()
        try:
            for payload in (b"", b"hello", bytes(range(125)),
                            "\u00e9\U0001f600".encode()):
                rw.send(OP_PING, payload)
                self.assertEqual(rw.recv(), (True, OP_PONG, payload))
            # An unsolicited pong is ignored.
            rw.send(OP_PONG, b"unsolicited")
            self.assert_alive(rw)
        finally:
            rw.close()

    def test_frames_split_across_tcp_segments(self):
        rw = self.open()
        try:
            data = self.F(OP_TEXT, '{"content": "dribbled"}')
            rw.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                rw.sock.sendall(data[i:i + 1])
                time.sleep(0.002)
            self.assertEqual(rw.recv_json()["message"]["content"],
                             "dribbled")
            # Several frames in one segment.
            rw.sock.sendall(b"".join(self.F(OP_TEXT, json.dumps(
                {"content": "batch %d" % i})) for i in range(5)))
            self.assertEqual([rw.recv_json()["message"]["content"]
                              for _ in range(5)],
                             ["batch %d" % i for i in range(5)])
        finally:
            rw.close()

    def test_frames_sent_with_the_handshake(self):
        # A client that sends frames right behind its upgrade request,
        # before the 101 (allowed by RFC 6455 4.1 in practice).
        key = new_key()
        req = upgrade_request("/ws/chat/%s/?token=%s" % (self.cid, self.pt),
                              self.srv.port,
                              extra={"Sec-WebSocket-Key": key})
        frame = self.F(OP_TEXT, '{"content": "early"}')
        with socket.create_connection(("127.0.0.1", self.srv.port),
                                      timeout=5) as s:
            s.sendall(req + frame)
            buf = b""
            while b"early" not in buf:
                chunk = s.recv(65536)
                self.assertTrue(chunk, buf)
                buf += chunk
        self.assertIn(accept_for(key).encode(), buf)


# ------------------------------------------------------------- liveness
class Liveness(h.ServerCase):
    CONF = {"server": {"ping_interval": "1s", "pong_timeout": "1s"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cid, cls.pt, cls.rt, cls.pat, cls.pro = cls.world.pair()

    def test_answering_clients_stay_connected(self):
        stay = 3.5
        pings = []

        def raw_answerer():
            rw = self.raw_ws(self.cid, self.rt)
            try:
                end = time.time() + stay
                while time.time() < end:
                    rw.sock.settimeout(max(0.05, end - time.time()))
                    try:
                        fin, op, data = rw.recv()
                    except socket.timeout:
                        break
                    if op == OP_PING:
                        pings.append(time.time())
                        rw.send(OP_PONG, data)
                rw.sock.settimeout(5)
                rw.send_json({"content": "raw still here"})
                while True:
                    msg = rw.recv_json()
                    if msg["message"]["content"] == "raw still here":
                        return True
            finally:
                rw.close()

        async def go():
            # The library answers pings itself; it sends none of its own
            # here, so only the server's pings keep the link alive.
            ws = await h.connect(self.srv, self.cid, self.pt,
                               ping_interval=None)
            raw_ok = asyncio.create_task(asyncio.to_thread(raw_answerer))
            await asyncio.sleep(stay)
            self.assertTrue(ws.open)
            await ws.send(json.dumps({"content": "still here"}))
            while True:
                m = await h.recv_message(ws)
                if m["content"] == "still here":
                    break
            self.assertTrue(await raw_ok)
            await ws.close()

        t0 = time.time()
        self.run_async(go())
        self.assertGreaterEqual(len(pings), 2, "server pinged %d times in "
                                "%.1fs" % (len(pings), time.time() - t0))

    def test_silent_client_is_dropped(self):
        rw = self.raw_ws(self.cid, self.pt)
        t0 = time.time()
        first_ping = None
        try:
            rw.sock.settimeout(6)
            with self.assertRaises((EOFError, ConnectionResetError)):
                while time.time() - t0 < 6:
                    fin, op, data = rw.recv()
                    if op == OP_PING and first_ping is None:
                        first_ping = time.time() - t0
            dropped = time.time() - t0
        finally:
            rw.close()
        self.assertIsNotNone(first_ping)
        self.assertLess(first_ping, 1.8)
        # ping at ~1 s, no pong within 1 s: gone at ~2 s.
        self.assertGreater(dropped, 1.5)
        self.assertLess(dropped, 3.5)
        self.assertIn("no answer to ping", self.srv.read_log())

    def test_client_traffic_counts_as_alive(self):
        # A client that sends frames (here its own pings) but ignores the
        # server's pings is not dropped: any frame shows it is alive.
        rw = self.raw_ws(self.cid, self.pt)
        try:
            end = time.time() + 2.6
            while time.time() < end:
                rw.send(OP_PING, b"me")
                time.sleep(0.3)
            self.assertFalse(rw.closed_by_peer(0.1))
            rw.sock.settimeout(5)
            rw.send_json({"content": "chatty"})
            while True:
                fin, op, data = rw.recv()
                if op == OP_TEXT:
                    self.assertEqual(json.loads(data)["message"]["content"],
                                     "chatty")
                    break
        finally:
            rw.close()


# --------------------------------------------------------- message path
class MessagePath(h.ServerCase):

    def test_all_devices_get_every_message_once_in_order(self):
        cid, pt, rt, _, _ = self.world.pair()
        n = 15

        async def go():
            pa1 = await h.connect(self.srv, cid, pt)
            pa2 = await h.connect(self.srv, cid, pt, header=True)
            pr1 = await h.connect(self.srv, cid, rt)
            pr2 = await h.connect(self.srv, cid, rt, header=True)
            conns = [pa1, pa2, pr1, pr2]

            async def sender(ws, who):
                for i in range(n):
                    await ws.send(json.dumps({"content": "%s %d" % (who, i)}))

            await asyncio.gather(sender(pa1, "patient"),
                                 sender(pr2, "professional"))
            seen = []
            for ws in conns:
                msgs = [await h.recv_message(ws) for _ in range(2 * n)]
                self.assertIsNone(await h.nothing_more(ws))
                seen.append(msgs)
            # Everyone sees the same messages in the same order ...
            for msgs in seen[1:]:
                self.assertEqual(msgs, seen[0])
            ids = [m["id"] for m in seen[0]]
            self.assertEqual(len(set(ids)), 2 * n)
            # ... each sender's in the order sent, with the right side.
            for who in ("patient", "professional"):
                mine = [m for m in seen[0] if m["sender_type"] == who]
                self.assertEqual([m["content"] for m in mine],
                                 ["%s %d" % (who, i) for i in range(n)])
                for m in mine:
                    check_message(self, m, m["content"], who)
            for ws in conns:
                await ws.close()
            return ids

        ids = self.run_async(go())
        status, _, body = self.srv.request(
            "GET", "/chat/chats/%s/messages/?page_size=200" % cid, token=pt)
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in body["results"]], ids)

    def test_content_byte_exact(self):
        cid, pt, rt, _, _ = self.world.pair()
        contents = [
            "Hello, doctor! \U0001f600",
            "\U0001f468\u200d\U0001f469\u200d\U0001f467 family, "
            "\U0001f44d\U0001f3fd skin tone, \U0001f1eb\U0001f1f7 flag",
            "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd "
            "mixed RTL \u202eoverride\u202c",
            'She said "hello" and \'bye\'',
            "C:\\path\\to\\file \\n is not a newline \\\\ \\u0041",
            "line 1\nline 2\r\nline 3\ttab\x0bvt\x0cff\x08bs",
            "\x01\x1f control and \x7f DEL",
            "  leading and trailing spaces  ",
            "</script><script>alert(1)</script> & &amp; <b>",
            "\u2028\u2029 separators, \ufeff BOM, \ufffd replacement",
            "\U0010ffff max code point, \u00e9 vs e\u0301",
            '{"content": "json inside"}',
        ]

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            for i, text in enumerate(contents):
                # raw UTF-8 and \u escapes both decode to the same text
                await a.send(json.dumps({"content": text},
                                        ensure_ascii=bool(i % 2)))
                raw_a = await asyncio.wait_for(a.recv(), 5)
                raw_b = await asyncio.wait_for(b.recv(), 5)
                self.assertEqual(raw_a, raw_b)
                self.assertEqual(json.loads(raw_a)["message"]["content"],
                                 text)
            await a.close()
            await b.close()

        self.run_async(go())
        status, _, body = self.srv.request(
            "GET", "/chat/chats/%s/messages/?page_size=200" % cid, token=rt)
        self.assertEqual(status, 200)
        self.assertEqual([m["content"] for m in body["results"]], contents)

    def test_client_close_is_clean(self):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            a = await h.connect(self.srv, cid, pt)
            b = await h.connect(self.srv, cid, rt)
            await a.close(code=1000, reason="done")
            self.assertEqual(a.close_code, 1000)   # echoed by the server
            await b.send(json.dumps({"content": "after a left"}))
            check_message(self, await h.recv_message(b), "after a left",
                          "professional")
            await b.close(code=4000)
            self.assertEqual(b.close_code, 4000)

        self.run_async(go())


# ---------------------------------------------------------- slow reader
class SlowReader(h.ServerCase):
    CONF = {"server": {"output_high_water": "4k"}}

    def small_window_client(self, chat_id, tok):
        """A raw client whose receive window stays small: a small receive
        buffer and MSS, set before connecting, so the kernel on both sides
        holds only a few kilobytes for it once it stops reading."""
        real = socket.create_connection

        def create(addr, timeout=None, source_address=None):
            s = socket.socket()
            if source_address:
                s.bind(source_address)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1400)
            s.settimeout(timeout)
            s.connect(addr)
            return s

        socket.create_connection = create
        try:
            return self.raw_ws(chat_id, tok)
        finally:
            socket.create_connection = real

    def test_non_reading_client_dropped_others_keep_receiving(self):
        cid, pt, rt, _, _ = self.world.pair()
        slow = self.small_window_client(cid, pt)
        content = "z" * 2000
        batch, cap = 10, 1500

        def dropped():
            return "client is not reading" in self.srv.read_log()

        async def go():
            kw = {"max_queue": None, "ping_interval": None}
            fast = await h.connect(self.srv, cid, pt, **kw)
            sender = await h.connect(self.srv, cid, rt, header=True, **kw)
            got = {"fast": [], "sender": []}
            total = [None]

            async def consume(ws, name):
                while total[0] is None or len(got[name]) < total[0]:
                    try:
                        m = await h.recv_message(ws, timeout=0.2)
                    except asyncio.TimeoutError:
                        continue   # the total may be known by now
                    got[name].append(m["content"])

            tasks = [asyncio.create_task(consume(fast, "fast")),
                     asyncio.create_task(consume(sender, "sender"))]
            sent, after_drop = 0, None
            while sent < cap and (after_drop is None or after_drop > 0):
                # bursts of messages: each is stored and delivered in a
                # group, within one turn of the daemon's event loop
                for _ in range(batch):
                    await sender.send(json.dumps(
                        {"content": "%05d %s" % (sent, content)}))
                    sent += 1
                await asyncio.sleep(0.02)
                if after_drop is not None:
                    after_drop -= 1
                elif dropped():
                    after_drop = 3   # keep going after the drop
            total[0] = sent
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), 15)
            finally:
                for t in tasks:
                    t.cancel()
            expect = ["%05d %s" % (i, content) for i in range(sent)]
            self.assertEqual(len(got["fast"]), sent)
            self.assertEqual(got["fast"], expect)
            self.assertEqual(got["sender"], expect)
            self.assertIsNone(await h.nothing_more(fast))
            await fast.close()
            await sender.close()
            return sent

        try:
            sent = self.run_async(go(), timeout=30)
            self.assertTrue(dropped(), "slow client never dropped after "
                            "%d messages" % sent)
            # The slow client gets what was already in flight, then EOF,
            # and never all of the messages.
            slow.sock.settimeout(5)
            n_frames = 0
            with self.assertRaises((EOFError, ConnectionResetError)):
                while True:
                    fin, op, data = slow.recv()
                    n_frames += op == OP_TEXT
            self.assertLess(n_frames, sent - 2 * batch)
        finally:
            slow.close()


# --------------------------------------------------------- token expiry

class PausedReader(h.ServerCase):
    """output_high_water at its default (1 MB): a client may fall behind
    and catch up."""
    small_window_client = SlowReader.small_window_client

    def test_paused_reader_gets_everything_after(self):
        # A client that stops reading while 400 KB pile up for it (the
        # kernel takes a few KB, the server queues the rest) and then
        # reads: every message arrives, in order, and so does the next
        # one, sent once the backlog is gone.
        cid, pt, rt, _, _ = self.world.pair()
        slow = self.small_window_client(cid, pt)
        sender = self.raw_ws(cid, rt)
        n, content = 200, "y" * 2000
        sender.sock.sendall(b"".join(
            h.RawWS.frame(OP_TEXT, json.dumps(
                {"content": "%d %s" % (i, content)})) for i in range(n)))
        for i in range(n):
            self.assertEqual(sender.recv_json()["message"]["content"],
                             "%d %s" % (i, content))
        time.sleep(0.5)   # the backlog sits in the server a while
        got = [slow.recv_json()["message"]["content"] for _ in range(n)]
        self.assertEqual(got, ["%d %s" % (i, content) for i in range(n)])
        sender.send_json({"content": "after"})
        self.assertEqual(slow.recv_json()["message"]["content"], "after")


class TokenExpiry(h.ServerCase):
    CONF = {"auth": {"leeway": "0"}}

    def test_expiring_token_closed_4408(self):
        cid, pt, rt, pat, pro = self.world.pair()
        short = h.token("u-" + pat[:8], patient=pat, exp_in=2)
        short_raw = h.token("u-" + pro[:8], professional=pro, exp_in=2)
        raw_result = {}

        def raw_client():
            rw = self.raw_ws(cid, short_raw)
            t0 = time.time()
            try:
                rw.sock.settimeout(6)
                code, reason = rw.recv_close()
                raw_result["close"] = (code, reason, time.time() - t0)
                rw.send(OP_CLOSE, close_payload(code))
                raw_result["hangup"] = rw.closed_by_peer(2)
            finally:
                rw.close()

        async def go():
            t0 = time.time()
            raw_task = asyncio.create_task(asyncio.to_thread(raw_client))
            ws = await h.connect(self.srv, cid, short, ping_interval=None)
            other = await h.connect(self.srv, cid, rt, ping_interval=None)
            await ws.send(json.dumps({"content": "before expiry"}))
            check_message(self, await h.recv_message(ws), "before expiry",
                          "patient")
            check_message(self, await h.recv_message(other), "before expiry",
                          "patient")
            code, reason, frames = await h.closed_with(ws, timeout=6)
            elapsed = time.time() - t0
            self.assertEqual((code, reason, frames),
                             (4408, "Token expired", []))
            self.assertGreater(elapsed, 0.9)
            self.assertLess(elapsed, 4.5)
            # The other party, with a long token, carries on.
            await other.send(json.dumps({"content": "after expiry"}))
            check_message(self, await h.recv_message(other), "after expiry",
                          "professional")
            await other.close()
            await raw_task

        self.run_async(go())
        code, reason, elapsed = raw_result["close"]
        self.assertEqual((code, reason), (4408, "Token expired"))
        self.assertLess(elapsed, 4.5)
        self.assertTrue(raw_result["hangup"])

    def test_token_expired_at_connect_4401(self):
        cid, pt, rt, pat, pro = self.world.pair()
        gone = h.token("u-" + pat[:8], patient=pat, exp_in=-1)

        async def go():
            ws = await h.connect(self.srv, cid, gone)
            code, _, frames = await h.closed_with(ws)
            self.assertEqual((code, frames), (4401, []))

        self.run_async(go())



# ---------------------------------------------------------- event loops
class Loops(h.ServerCase):
    """threads = 3: a joined WebSocket moves from loop 0 to a worker loop.
    What it sent while it moved, and what was sent to it, arrives once and
    in order; members on different loops hear each other."""
    CONF = {"server": {"threads": 3}}

    def test_messages_around_the_move_arrive_once_in_order(self):
        cid, pt, rt, _, _ = self.world.pair()
        n = 120
        peer = self.raw_ws(cid, rt)  # joined first: the other worker
        frames = [h.RawWS.frame(OP_TEXT, json.dumps({"content": "m %d" % i}))
                  for i in range(n)]
        # Half behind the upgrade request (handled on loop 0, some still
        # being stored when the connection moves), half after the 101.
        s = socket.create_connection(("127.0.0.1", self.srv.port),
                                     timeout=10)
        s.sendall(upgrade_request("/ws/chat/%s/?token=%s" % (cid, pt),
                                  self.srv.port) + b"".join(frames[:n // 2]))
        me = h.RawWS.__new__(h.RawWS)
        me.sock, me.buf = s, b""
        self.assertIn(b" 101 ", me._read_until(b"\r\n\r\n"))
        s.sendall(b"".join(frames[n // 2:]))
        for ws in (me, peer):
            got = []
            for _ in range(n):
                fin, op, payload = ws.recv()
                self.assertEqual(op, OP_TEXT, payload)
                got.append(json.loads(payload)["message"]["content"])
            self.assertEqual(got, ["m %d" % i for i in range(n)])
        status, _, body = self.srv.request(
            "GET", "/chat/chats/%s/messages/?page_size=200" % cid, token=pt)
        self.assertEqual(status, 200)
        self.assertEqual(len(body["results"]), n)
        s.close()
        peer.sock.close()
        # Connections moved, to each worker in turn.
        moved = set(re.findall(r"moves to loop (\d+)", self.srv.read_log()))
        self.assertEqual(moved, {"1", "2"})

    def test_close_codes_and_errors_from_a_worker(self):
        cid, pt, rt, _, _ = self.world.pair()

        async def go():
            ws = await h.connect(self.srv, cid, pt)
            await ws.send("not json")
            self.assertEqual(await h.recv_error(ws), ERR_JSON)
            await ws.send(json.dumps({"content": "after the error"}))
            m = await h.recv_message(ws)
            self.assertEqual(m["content"], "after the error")
            await ws.close(4000, "bye")
            self.assertEqual(ws.close_code, 4000)

        self.run_async(go())

    def test_frame_split_across_the_move(self):
        # Half a frame is waiting when the connection moves: the worker
        # gets those bytes and completes the frame with the rest.
        cid, pt, _, _, _ = self.world.pair()
        frame = h.RawWS.frame(OP_TEXT, json.dumps({"content": "halves"}))
        moves = len(re.findall(r"moves to loop", self.srv.read_log()))
        s = socket.create_connection(("127.0.0.1", self.srv.port),
                                     timeout=10)
        s.sendall(upgrade_request("/ws/chat/%s/?token=%s" % (cid, pt),
                                  self.srv.port) + frame[:5])
        me = h.RawWS.__new__(h.RawWS)
        me.sock, me.buf = s, b""
        self.assertIn(b" 101 ", me._read_until(b"\r\n\r\n"))
        deadline = time.time() + 5
        while len(re.findall(r"moves to loop",
                             self.srv.read_log())) <= moves:
            self.assertLess(time.time(), deadline, "did not move")
            time.sleep(0.02)
        s.sendall(frame[5:])
        fin, op, payload = me.recv()
        self.assertEqual(json.loads(payload)["message"]["content"], "halves")
        s.close()

    def test_threads_are_named(self):
        # What an operator sees in top -H, perf or gdb.
        task = "/proc/%d/task" % self.srv.proc.pid
        if not os.path.isdir(task):
            self.skipTest("no /proc here")
        pid = str(self.srv.proc.pid)
        names = sorted(open("%s/%s/comm" % (task, t)).read().strip()
                       for t in os.listdir(task) if t != pid)
        main = open("%s/%s/comm" % (task, pid)).read().strip()
        storage = (["pg-reader"] * 2 + ["pg-writer"]
                   if self.srv.storage == "postgres" else
                   ["sqlite-ckpt", "sqlite-reader", "sqlite-writer"])
        self.assertEqual(names, ["cc-loop-1", "cc-loop-2"] + storage)
        if not h.VALGRIND:  # there the main thread is valgrind's tool
            self.assertEqual(main, "carechatd")

    def test_more_loops_than_cpus_is_warned(self):
        log = self.srv.read_log()
        self.assertIn("3 event loops", log)
        warned = "threads = 3 but %d CPUs online" % os.cpu_count() in log
        self.assertEqual(warned, os.cpu_count() < 3, log[-2000:])


if __name__ == "__main__":
    h.main()
