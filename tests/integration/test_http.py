#!/usr/bin/python3
"""HTTP/1.1 handling of carechatd on raw sockets (core/conn.c, core/http.c):
keep-alive and Connection: close, pipelining, the 400/408/413/431/501/505
answers, Expect: 100-continue, slow clients and idle keep-alive
connections, clients that half-close after sending, HEAD, unknown,
traversal and absolute-form paths, requests written one byte at a time,
and max_connections.

Responses are parsed here, not by http.client, so that framing mistakes
(a missing Content-Length, a body after HEAD, a response out of order)
show up.
"""
import json
import socket
import time
import unittest
import uuid

import ccharness as h

HOST = b"Host: 127.0.0.1\r\n"


# ------------------------------------------------------------ raw client
class Conn:
    """One client connection with a receive buffer."""

    def __init__(self, port, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server; buffered: %r"
                           % self.buf[:300])
        self.buf += data

    def read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, head_request=False):
        """The next response: (status, headers lower-cased, body).  Every
        response must carry a Content-Length (there is no other framing:
        the server never sends chunked responses)."""
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        lines = head.split("\r\n")
        version, status = lines[0].split(" ")[:2]
        assert version == "HTTP/1.1", lines[0]
        hdrs = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        status = int(status)
        if status == 100:
            return status, hdrs, b""
        assert "content-length" in hdrs, "no Content-Length: %r" % head
        assert "transfer-encoding" not in hdrs, head
        n = int(hdrs["content-length"])
        body = b"" if head_request else self.read_n(n)
        return status, hdrs, body

    def closed(self, timeout=3):
        """True when the server closes the connection within timeout
        (any bytes still buffered or arriving are ignored)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def get(path="/healthz", extra=b"", version=b"HTTP/1.1", method=b"GET"):
    return method + b" " + path.encode() + b" " + version + b"\r\n" + \
        HOST + extra + b"\r\n"


def daemon_socket(pid, peer):
    """A duplicate of the daemon's socket whose peer is `peer`."""
    import ctypes
    import os
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pidfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_open")
    try:
        for name in os.listdir("/proc/%d/fd" % pid):
            if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith(
                    "socket:"):
                continue
            fd = libc.syscall(438, pidfd, int(name), 0)  # pidfd_getfd
            if fd < 0:
                raise OSError(ctypes.get_errno(), "pidfd_getfd")
            s = socket.socket(fileno=fd)
            try:
                if s.type == socket.SOCK_STREAM and s.getpeername() == peer:
                    return s
            except OSError:
                pass
            s.close()
    finally:
        os.close(pidfd)
    raise AssertionError("no socket of the daemon has peer %r" % (peer,))


class HttpCase(unittest.TestCase):
    CONF = None

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server(cls.CONF).start()
        cls.port = cls.srv.port

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def setUp(self):
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        self.assertIsNone(self.srv.proc.poll(),
                          "carechatd died:\n" + self.srv.read_log()[-3000:])

    def conn(self, timeout=5):
        c = Conn(self.port, timeout)
        self.conns.append(c)
        return c

    def assert_json_error(self, resp, status):
        st, hdrs, body = resp
        self.assertEqual(st, status, (hdrs, body))
        self.assertEqual(hdrs.get("content-type"), "application/json")
        obj = json.loads(body)
        self.assertEqual(set(obj), {"error"}, obj)
        self.assertIsInstance(obj["error"], str)
        self.assertTrue(obj["error"])
        return obj["error"]

    def assert_refused(self, request, status, closes=True):
        """Send request on a fresh connection: a JSON error with status,
        Connection: close, and the connection closed."""
        c = self.conn()
        c.send(request)
        resp = c.response()
        msg = self.assert_json_error(resp, status)
        if closes:
            self.assertEqual(resp[1].get("connection"), "close", resp)
            self.assertTrue(c.closed(), "connection left open")
        return msg


# ------------------------------------------------------------ basics
class Basics(HttpCase):
    CONF = {"server": {"max_body_size": "1k", "max_header_size": "2k"}}

    def healthz_ok(self, resp):
        st, hdrs, body = resp
        self.assertEqual(st, 200, resp)
        self.assertEqual(json.loads(body), {"status": "ok"})
        self.assertEqual(hdrs.get("content-type"), "application/json")

    def test_accepted_sockets_have_nodelay(self):
        """Replies leave at once: the daemon's socket for a connection has
        TCP_NODELAY (Nagle would hold a small write back up to 40 ms
        behind an unacknowledged one).  carechatd sets it on the
        listening socket and Linux copies it to each accepted one; read
        here off the daemon's own descriptor (pidfd_getfd)."""
        c = self.conn()
        c.send(get())
        self.assertEqual(c.response()[0], 200)
        theirs = daemon_socket(self.srv.proc.pid, c.sock.getsockname())
        try:
            self.assertEqual(theirs.getsockopt(socket.IPPROTO_TCP,
                                               socket.TCP_NODELAY), 1)
        finally:
            theirs.close()

    # ---- keep-alive
    def test_keepalive_two_requests(self):
        c = self.conn()
        c.send(get())
        r1 = c.response()
        self.healthz_ok(r1)
        self.assertNotIn("connection", r1[1])
        c.send(get("/nope"))
        self.assert_json_error(c.response(), 404)
        c.send(get())
        self.healthz_ok(c.response())
        self.assertFalse(c.closed(0.2), "keep-alive connection was closed")

    def test_http10_closed_after_response(self):
        c = self.conn()
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        r = c.response()
        self.healthz_ok(r)
        self.assertEqual(r[1].get("connection"), "close")
        self.assertTrue(c.closed(), "HTTP/1.0 connection left open")

    def test_http10_keepalive_kept(self):
        c = self.conn()
        c.send(get(version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n"))
        r = c.response()
        self.healthz_ok(r)
        self.assertNotEqual(r[1].get("connection"), "close")
        c.send(get(version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n"))
        self.healthz_ok(c.response())

    def test_http10_keepalive_says_so(self):
        # An HTTP/1.0 client closes unless the response says keep-alive.
        c = self.conn()
        c.send(get(version=b"HTTP/1.0", extra=b"Connection: keep-alive\r\n"))
        r = c.response()
        self.healthz_ok(r)
        self.assertEqual(r[1].get("connection"), "keep-alive", r[1])
        c.send(get())
        r = c.response()
        self.healthz_ok(r)
        self.assertNotIn("connection", r[1], "HTTP/1.1 default is implied")

    # ---- half-close: the client shuts down its side after sending
    def authed_get(self):
        tok = h.token(patient=str(uuid.uuid4())).encode()
        return get("/chat/chats/", extra=b"Authorization: Bearer " + tok +
                   b"\r\n")

    def test_half_close_after_request_is_answered(self):
        # The answer needs the auth plugin and storage (asynchronous):
        # it must still arrive after the client's FIN, then the close.
        c = self.conn()
        c.send(self.authed_get())
        c.sock.shutdown(socket.SHUT_WR)
        st, hdrs, body = c.response()
        self.assertEqual(st, 200, body)
        self.assertIn("results", json.loads(body))
        # (Connection: close only when the FIN was seen before the answer.)
        self.assertTrue(c.closed(), "connection left open after the answer")

    def test_half_close_sync_answer_never_lost(self):
        # /healthz is answered at once, before the server sees the FIN:
        # the queued answer must be written, not dropped with the socket.
        for i in range(200):
            c = Conn(self.port)
            try:
                c.send(get() + get("/nope"))
                c.sock.shutdown(socket.SHUT_WR)
                self.healthz_ok(c.response())
                self.assert_json_error(c.response(), 404)
            finally:
                c.close()

    def test_half_close_after_pipelined_requests(self):
        c = self.conn()
        c.send(self.authed_get() + get() + self.authed_get())
        c.sock.shutdown(socket.SHUT_WR)
        statuses = [c.response()[0] for _ in range(3)]
        self.assertEqual(statuses, [200, 200, 200])
        self.assertTrue(c.closed(), "connection left open after the answers")

    def test_connection_close_honored(self):
        for value in (b"close", b"Close", b"foo, close"):
            c = self.conn()
            c.send(get(extra=b"Connection: " + value + b"\r\n"))
            r = c.response()
            self.healthz_ok(r)
            self.assertEqual(r[1].get("connection"), "close", value)
            self.assertTrue(c.closed(), value)

    def test_requests_after_connection_close_ignored(self):
        c = self.conn()
        c.send(get(extra=b"Connection: close\r\n") + get("/nope"))
        r = c.response()
        self.healthz_ok(r)
        self.assertEqual(r[1].get("connection"), "close")
        self.assertTrue(c.closed())
        self.assertEqual(c.buf, b"", "answered a request after close")

    # ---- pipelining
    def test_pipelining_in_order(self):
        """Three requests in one write; the first needs the auth thread
        and storage, the others are answered inline: still in order."""
        pat = str(uuid.uuid4())
        tok = h.token("pipe-user", patient=pat)
        c = self.conn()
        c.send(get("/chat/chats/",
                   extra=b"Authorization: Bearer " + tok.encode() + b"\r\n")
               + get("/nope") + get())
        st, _, body = c.response()
        self.assertEqual(st, 200, body)
        self.assertIn("results", json.loads(body))
        self.assert_json_error(c.response(), 404)
        self.healthz_ok(c.response())
        self.assertFalse(c.closed(0.2))

    def test_pipelining_many(self):
        """Thousands of requests pipelined behind a slow one are answered
        one by one (they once recursed until the stack overflowed)."""
        n = 5000
        tok = h.token("pipe-many")
        c = self.conn(timeout=20)
        c.send(get("/chat/chats/",
                   extra=b"Authorization: Bearer " + tok.encode() + b"\r\n")
               + get("/healthz") * n)
        st, _, body = c.response()
        self.assertEqual(st, 200, body)
        for i in range(n):
            st, _, body = c.response()
            self.assertEqual((st, body), (200, b'{"status": "ok"}'), i)
        c.send(get("/nope", extra=b"Connection: close\r\n"))
        self.assert_json_error(c.response(), 404)

    def test_host_exactly_one_and_valid(self):
        """RFC 9112 3.2: HTTP/1.1 needs exactly one valid Host; the links
        the server writes are built from it, so nothing else passes."""
        for head in (b"GET /healthz HTTP/1.1\r\n",
                     b"GET /healthz HTTP/1.1\r\n" + HOST + HOST,
                     b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost: evil.example/x?y=\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost: u@evil.example\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost: a b\r\n",
                     b"GET /healthz HTTP/1.1\r\nHost: x:99999\r\n",
                     b"GET /healthz HTTP/1.0\r\n" + HOST + HOST):
            self.assertEqual(self.assert_refused(head + b"\r\n", 400),
                             "Host header missing, repeated or invalid", head)
        for host in (b"localhost:8000", b"127.0.0.1", b"[::1]:8000",
                     b"chat.example.org", b"my_service:80"):
            c = self.conn()
            c.send(b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.healthz_ok(c.response())
        c = self.conn()  # HTTP/1.0 may go without
        c.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(c.response()[0], 200)

    def test_two_origins_403(self):
        c = self.conn()
        c.send(get("/healthz", extra=b"Origin: https://a.example\r\n"
                                     b"Origin: https://b.example\r\n"))
        st, _, body = c.response()
        self.assertEqual((st, json.loads(body)),
                         (403, {"error": "More than one Origin header"}))

    def test_every_answer_says_nosniff(self):
        c = self.conn()
        for req in (get("/healthz"), get("/nope"), get("/chat/chats/"),
                    get("/healthz", method=b"POST")):
            c.send(req)
            st, hdrs, _ = c.response()
            self.assertEqual(hdrs.get("x-content-type-options"), "nosniff",
                             (st, req))
            self.assertNotIn("strict-transport-security", hdrs,
                             "HSTS is for TLS answers only")

    def test_pipelined_request_after_post_body(self):
        """The body of the first request is not read as the second."""
        body = b'{"x": "GET /healthz HTTP/1.1\\r\\n\\r\\n"}'
        c = self.conn()
        c.send(b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
               b"Content-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body + get())
        self.assert_json_error(c.response(), 401)
        self.healthz_ok(c.response())
        self.assertFalse(c.closed(0.2))

    # ---- limits and malformed requests
    def test_body_too_large_413(self):
        msg = self.assert_refused(
            b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
            b"Content-Type: application/json\r\nContent-Length: 1025\r\n\r\n",
            413)
        self.assertIn("too large", msg)

    def test_body_at_limit_accepted(self):
        body = b'{"professional": "' + b"x" * 1000 + b'"}'
        body += b" " * (1024 - len(body))
        c = self.conn()
        c.send(b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
               b"Content-Type: application/json\r\n"
               b"Content-Length: 1024\r\n\r\n" + body)
        # Read whole, then refused for want of a token, not for size.
        self.assert_json_error(c.response(), 401)

    def test_header_too_large_431(self):
        self.assert_refused(get(extra=b"X-Big: " + b"a" * 3000 + b"\r\n"),
                            431)

    def test_header_too_large_without_end_431(self):
        """A head that never ends is refused once it passes the limit,
        not at the request timeout."""
        c = self.conn(timeout=3)
        c.send(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 4000)
        self.assert_json_error(c.response(), 431)
        self.assertTrue(c.closed())

    def test_too_many_headers_431(self):
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(70))
        self.assert_refused(get(extra=extra), 431)

    def test_chunked_request_501(self):
        msg = self.assert_refused(
            b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
            b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 501)
        self.assertIn("Content-Length", msg)

    def test_garbage_request_line_400(self):
        for req in (b"HELLO\r\n\r\n", b"GET\r\n\r\n",
                    b"GET /healthz\r\n\r\n",
                    b"GET  /healthz HTTP/1.1\r\n\r\n",
                    b"GET /healthz HTTP/1.1 extra\r\n\r\n",
                    b"GET /healthz HTTX/1.1\r\n\r\n",
                    b"G@T /healthz HTTP/1.1\r\n\r\n"):
            self.assert_refused(req, 400)

    def test_binary_junk_refused_at_once(self):
        """A TLS ClientHello is not an HTTP request: 400 now, not 408
        at the request timeout."""
        c = self.conn(timeout=3)
        t0 = time.time()
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        self.assert_json_error(c.response(), 400)
        self.assertLess(time.time() - t0, 2)
        self.assertTrue(c.closed())

    def test_bad_header_lines_400(self):
        for extra in (b"Bad Name: x\r\n", b"Name : x\r\n",
                      b"X: a\r\n folded\r\n", b": empty\r\n",
                      b"X: a\x01b\r\n"):
            self.assert_refused(get(extra=extra), 400)

    def test_unsupported_version_505(self):
        for v in (b"HTTP/2.0", b"HTTP/3.1", b"HTTP/1.2", b"HTTP/0.9"):
            msg = self.assert_refused(get(version=v), 505)
            self.assertIn("version", msg.lower())

    def test_content_length_and_transfer_encoding_400(self):
        self.assert_refused(
            b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
            b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n", 400)
        self.assert_refused(
            b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
            b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
            b"0\r\n\r\n", 400)

    def test_bad_content_length_400(self):
        for cl in (b"Content-Length: 2\r\nContent-Length: 3\r\n",
                   b"Content-Length: -1\r\n", b"Content-Length: 1x\r\n",
                   b"Content-Length: \r\n",
                   b"Content-Length: 99999999999999999999999\r\n"):
            self.assert_refused(
                b"POST /chat/chats/ HTTP/1.1\r\n" + HOST + cl + b"\r\n{}",
                400)

    # ---- Expect: 100-continue
    def test_expect_100_continue(self):
        body = json.dumps({"kind": "patient",
                           "id": str(uuid.uuid4())}).encode()
        admin = h.token("admin", admin=True)
        c = self.conn()
        c.send(b"POST /chat/profiles/ HTTP/1.1\r\n" + HOST +
               b"Authorization: Bearer " + admin.encode() + b"\r\n"
               b"Content-Type: application/json\r\n"
               b"Expect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        st, _, _ = c.response()
        self.assertEqual(st, 100)
        c.send(body)
        st, _, out = c.response()
        self.assertEqual(st, 201, out)
        # Still a working keep-alive connection.
        c.send(get())
        self.healthz_ok(c.response())

    def test_expect_100_continue_refused_body_gets_no_continue(self):
        """Over max_body_size: the final 413 comes instead of 100."""
        c = self.conn()
        c.send(b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
               b"Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n")
        self.assert_json_error(c.response(), 413)
        self.assertTrue(c.closed())

    # ---- responses
    def test_head_healthz_has_no_body(self):
        c = self.conn()
        c.send(get(method=b"HEAD") + get())
        st, hdrs, _ = c.response(head_request=True)
        self.assertEqual(st, 200)
        self.assertEqual(hdrs.get("content-length"), "16")
        # The next bytes are the GET's response, not a HEAD body.
        self.assertTrue(c.read_n(9) == b"HTTP/1.1 ", c.buf[:100])
        c.buf = b"HTTP/1.1 " + c.buf
        self.healthz_ok(c.response())

    def test_head_error_has_no_body(self):
        c = self.conn()
        c.send(get("/nope", method=b"HEAD") + get())
        st, hdrs, _ = c.response(head_request=True)
        self.assertEqual(st, 404)
        self.assertGreater(int(hdrs["content-length"]), 0)
        self.healthz_ok(c.response())

    def test_unknown_paths_404(self):
        for path in ("/", "/nope", "/chat", "/chat/chatsx/", "/healthzz",
                     "/chat/chats/not-a-uuid/messages/x/", "/ws/",
                     "/favicon.ico"):
            c = self.conn()
            c.send(get(path, extra=b"Connection: close\r\n"))
            self.assert_json_error(c.response(), 404)

    def test_absolute_form_target(self):
        # RFC 9112 3.2.2: a server must accept "http://host/path".
        for target in ("http://127.0.0.1/healthz", "HTTP://example/healthz",
                       "https://127.0.0.1:8443/healthz?x=1"):
            c = self.conn()
            c.send(get(target, extra=b"Connection: close\r\n"))
            self.healthz_ok(c.response())
        for target in ("http://127.0.0.1", "http://127.0.0.1/nope",
                       "ftp://127.0.0.1/healthz"):
            c = self.conn()
            c.send(get(target, extra=b"Connection: close\r\n"))
            self.assert_json_error(c.response(), 404)

    def test_path_traversal_is_not_a_file(self):
        for path in ("/../etc/passwd", "/../../../../etc/passwd",
                     "/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E%2Fetc%2Fpasswd",
                     "/chat/chats/../../../etc/passwd",
                     "/chat/chats/%2e%2e/%2e%2e/etc/passwd",
                     "/ws/chat/../../etc/passwd", "/healthz/../etc/passwd",
                     "/..%2f..%2fetc%2fpasswd", "//etc/passwd"):
            c = self.conn()
            c.send(get(path, extra=b"Connection: close\r\n"))
            st, hdrs, body = c.response()
            self.assertIn(st, (400, 404), (path, body))
            self.assert_json_error((st, hdrs, body), st)
            self.assertNotIn(b"root:", body)

    def test_method_not_allowed_405(self):
        c = self.conn()
        c.send(get(method=b"DELETE") + get(method=b"BREW"))
        resp = c.response()
        self.assert_json_error(resp, 405)
        self.assertIn("GET", resp[1].get("allow", ""))
        self.assert_json_error(c.response(), 405)

    def test_every_response_has_content_length(self):
        """Errors from every layer: parser, conn.c, REST, auth, the
        WebSocket handshake."""
        reqs = [get(), get(method=b"HEAD"), get("/nope"),
                get("/chat/chats/"),
                get("/chat/chats/", extra=b"Authorization: Bearer x.y.z\r\n"),
                get("/ws/chat/%s/" % uuid.uuid4()),
                get("/ws/chat/%s/" % uuid.uuid4(),
                    extra=b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Version: 12\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
                b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
                b"Content-Length: 2\r\n\r\n{}"]
        for req in reqs:
            c = self.conn()
            c.send(req)
            st, hdrs, body = c.response(head_request=req.startswith(b"HEAD"))
            self.assertIn("content-length", hdrs, req)
            if body:
                self.assertEqual(hdrs.get("content-type"),
                                 "application/json", req)
                json.loads(body)

    # ---- framing leniency
    def test_one_byte_writes(self):
        body = json.dumps({"kind": "professional",
                           "id": str(uuid.uuid4())}).encode()
        admin = h.token("admin", admin=True)
        req = (b"POST /chat/profiles/ HTTP/1.1\r\n" + HOST +
               b"Authorization: Bearer " + admin.encode() + b"\r\n"
               b"Content-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body) + body)
        c = self.conn()
        for i in range(len(req)):
            c.send(req[i:i + 1])
            if i % 8 == 0:
                time.sleep(0.001)
        st, _, out = c.response()
        self.assertEqual(st, 201, out)
        for b in get():
            c.send(bytes([b]))
        self.healthz_ok(c.response())

    def test_bare_lf_and_leading_empty_lines(self):
        c = self.conn()
        c.send(b"\r\n\r\nGET /healthz HTTP/1.1\nHost: x\n\n")
        self.healthz_ok(c.response())


# ------------------------------------------------------- slow clients
class Timeouts(HttpCase):
    """Short timers: request_timeout 1 s, keepalive_timeout 2 s."""
    CONF = {"server": {"request_timeout": "1", "keepalive_timeout": "2s"}}
    REQ = 1.0
    IDLE = 2.0

    def test_slowloris_half_header(self):
        c = self.conn(timeout=self.REQ + 3)
        t0 = time.time()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0")
        self.assert_json_error(c.response(), 408)
        took = time.time() - t0
        self.assertTrue(c.closed())
        self.assertGreater(took, self.REQ * 0.8)
        self.assertLess(took, self.REQ + 1.5)

    def test_trickling_bytes_do_not_extend_deadline(self):
        c = self.conn(timeout=0.25)
        t0 = time.time()
        head = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"a" * 200
        got = b""
        for b in head:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            try:
                data = c.sock.recv(4096)
                if not data:
                    break
                got += data
                if b"\r\n\r\n" in got:
                    break
            except socket.timeout:
                pass
            if time.time() - t0 > self.REQ + 3:
                break
        took = time.time() - t0
        self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got)
        self.assertLess(took, self.REQ + 1.5)

    def test_slow_body_408(self):
        c = self.conn(timeout=self.REQ + 3)
        t0 = time.time()
        c.send(b"POST /chat/chats/ HTTP/1.1\r\n" + HOST +
               b"Content-Length: 10\r\n\r\n{\"a")
        self.assert_json_error(c.response(), 408)
        self.assertLess(time.time() - t0, self.REQ + 1.5)
        self.assertTrue(c.closed())

    def test_idle_keepalive_closed(self):
        c = self.conn(timeout=5)
        c.send(get())
        self.assertEqual(c.response()[0], 200)
        t0 = time.time()
        # Longer than request_timeout: the idle timer is the keep-alive
        # one, and the close is silent (no 408 for a request never sent).
        self.assertTrue(c.closed(self.IDLE + 2), "idle connection kept")
        took = time.time() - t0
        self.assertEqual(c.buf, b"")
        self.assertGreater(took, self.IDLE * 0.8)
        self.assertLess(took, self.IDLE + 1.5)

    def test_keepalive_connection_usable_before_timeout(self):
        c = self.conn()
        c.send(get())
        self.assertEqual(c.response()[0], 200)
        time.sleep(self.REQ + 0.3)  # past request_timeout, within idle
        c.send(get())
        self.assertEqual(c.response()[0], 200)

    def test_slow_second_request_408(self):
        """On a kept-alive connection the request deadline starts with
        the first byte of the next request."""
        c = self.conn(timeout=self.IDLE + 3)
        c.send(get())
        self.assertEqual(c.response()[0], 200)
        time.sleep(0.5)
        t0 = time.time()
        c.send(b"GET /heal")
        self.assert_json_error(c.response(), 408)
        took = time.time() - t0
        self.assertGreater(took, self.REQ * 0.8)
        self.assertLess(took, self.REQ + 1.5)
        self.assertTrue(c.closed())

    def test_silent_new_connection_closed(self):
        c = self.conn(timeout=5)
        t0 = time.time()
        self.assertTrue(c.closed(self.REQ + 2))
        self.assertLess(time.time() - t0, self.REQ + 1.5)
        self.assertEqual(c.buf, b"")

    def test_slow_clients_do_not_block_others(self):
        slow = [self.conn() for _ in range(5)]
        for s in slow:
            s.send(b"GET /healthz HTTP/1.1\r\n")
        c = self.conn()
        t0 = time.time()
        c.send(get())
        self.assertEqual(c.response()[0], 200)
        self.assertLess(time.time() - t0, 0.5)


# ------------------------------------------------------ max_connections
class MaxConnections(HttpCase):
    CONF = {"server": {"max_connections": "3"}}

    def open_working(self, deadline=3):
        """A connection that answers a request (retrying while the
        server still counts a connection the client already closed)."""
        end = time.time() + deadline
        while True:
            c = Conn(self.port, timeout=2)
            try:
                c.send(get())
                if c.response()[0] == 200:
                    self.conns.append(c)
                    return c
            except (EOFError, OSError):
                pass
            c.close()
            if time.time() > end:
                self.fail("no connection slot came free")
            time.sleep(0.05)

    def test_connection_over_limit_closed_at_accept(self):
        held = [self.open_working() for _ in range(3)]
        t0 = time.time()
        extra = self.conn(timeout=3)
        try:
            extra.send(get())
        except OSError:
            pass
        self.assertTrue(extra.closed(2), "connection over the limit served")
        self.assertEqual(extra.buf, b"")
        self.assertLess(time.time() - t0, 1.5)
        # The existing ones keep working.
        for c in held:
            c.send(get())
            self.assertEqual(c.response()[0], 200)
        # A slot frees when one closes.
        held[0].close()
        self.conns.remove(held[0])
        self.open_working()


if __name__ == "__main__":
    h.main()
