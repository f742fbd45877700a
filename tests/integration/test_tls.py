#!/usr/bin/python3
"""TLS listeners (https:// and wss://) with real handshakes: a test CA
made at test time with the openssl CLI, Python's ssl module and
websockets as verifying clients."""
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import ccharness as h

import websockets


def openssl(*args, cwd):
    r = subprocess.run(("openssl",) + args, cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (args[0], r.stdout.decode()))


class Pki:
    """A CA, server certificates (valid, expired, a second one for
    reload) and a client certificate, in a temporary directory."""

    def __init__(self):
        if not shutil.which("openssl"):
            h.skip_or_fail("the openssl command is not installed")
        self.dir = h.tempfile.mkdtemp(prefix="carechat-pki-")
        d = self.dir
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj",
                "/CN=carechat test CA", cwd=d)
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        with open(os.path.join(d, "client.ext"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        self.issue("server", "localhost", "server.ext", 2)
        self.issue("server2", "localhost", "server.ext", 2)
        self.issue("expired", "localhost", "server.ext", 0)
        self.issue("client", "back-office", "client.ext", 2)

    def issue(self, name, cn, ext, days):
        openssl("req", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                cwd=self.dir)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-out",
                name + ".pem", "-days", str(days), "-extfile", ext,
                cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def client_ctx(self, cert=None):
        ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        if cert:
            ctx.load_cert_chain(self.path(cert + ".pem"),
                                self.path(cert + ".key"))
        return ctx

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def tls_server(pki, cert="server", **extra):
    port = h.free_port()
    conf = {"server": {"tls_listen": "127.0.0.1:%d" % port,
                       "tls_certificate": pki.path(cert + ".pem"),
                       "tls_key": pki.path(cert + ".key")}}
    conf["server"].update(extra)
    srv = h.Server(conf)
    srv.tls_port = port
    return srv


def https_get(port, ctx, path="/healthz", timeout=10, headers=None):
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                       timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        if headers is not None:
            headers.update({k.lower(): v for k, v in resp.getheaders()})
        return resp.status, resp.read(), conn.sock.version()
    finally:
        conn.close()


class Tls(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        # Copies the server reads, so a test can replace them for reload.
        for n in ("server.pem", "server.key"):
            shutil.copy(cls.pki.path(n), cls.pki.path("live-" + n))
        cls.srv = tls_server(cls.pki, cert="live-server").start()
        cls.ctx = cls.pki.client_ctx()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.pki.close()

    def test_https_rest_with_a_verifying_client(self):
        status, body, version = https_get(self.srv.tls_port, self.ctx)
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body), {"status": "ok"})
        self.assertEqual(version, "TLSv1.3", "1.3 preferred")

    def test_answers_over_tls_carry_hsts(self):
        """A browser that once reached carechat over TLS never tries it in
        clear again (a year by default)."""
        for path in ("/healthz", "/nope", "/chat/chats/"):
            hdrs = {}
            https_get(self.srv.tls_port, self.ctx, path, headers=hdrs)
            self.assertEqual(hdrs.get("strict-transport-security"),
                             "max-age=31536000", path)
            self.assertEqual(hdrs.get("x-content-type-options"), "nosniff")
        st, hdrs, _ = self.srv.request("GET", "/healthz")
        self.assertNotIn("strict-transport-security", hdrs,
                         "not on the plain port")
        off = tls_server(self.pki, hsts_max_age="0").start()
        try:
            hdrs = {}
            https_get(off.tls_port, self.ctx, headers=hdrs)
            self.assertNotIn("strict-transport-security", hdrs,
                             "hsts_max_age = 0 turns it off")
        finally:
            off.close()

    def test_links_over_tls_are_https(self):
        """A next link written over TLS is https: a client that follows
        it never sends its token in clear."""
        chat, pt, _, _, _ = h.World(self.srv).pair()
        for i in range(2):
            self.srv.request("POST", "/chat/chats/%s/send_message/" % chat,
                             {"content": "m%d" % i}, token=pt)
        conn = http.client.HTTPSConnection("127.0.0.1", self.srv.tls_port,
                                           context=self.ctx, timeout=10)
        try:
            conn.request("GET", "/chat/chats/%s/messages/?page_size=1" %
                         chat, headers={"Authorization": "Bearer " + pt})
            page = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        self.assertTrue(page["next"].startswith(
            "https://127.0.0.1:%d/chat/chats/" % self.srv.tls_port),
            page["next"])

    def test_tls12_accepted_and_older_refused(self):
        ctx = self.pki.client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        status, _, version = https_get(self.srv.tls_port, ctx)
        self.assertEqual((status, version), (200, "TLSv1.2"))
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(self.pki.path("ca.pem"))
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
        with self.assertRaises((ssl.SSLError, OSError)):
            https_get(self.srv.tls_port, old)

    def test_wss_chat(self):
        chat, pt, rt, _, _ = h.World(self.srv).pair()
        url = "wss://127.0.0.1:%d/ws/chat/%s/" % (self.srv.tls_port, chat)

        async def go():
            a = await websockets.connect(url + "?token=" + pt, ssl=self.ctx)
            b = await websockets.connect(
                url, ssl=self.ctx,
                extra_headers={"Authorization": "Bearer " + rt})
            await a.send(json.dumps({"content": "over TLS 🔒"}))
            got_a = json.loads(await a.recv())
            got_b = json.loads(await b.recv())
            await a.close()
            await b.close()
            return got_a, got_b

        got_a, got_b = h.run(go())
        self.assertEqual(got_a, got_b)
        self.assertEqual(got_a["message"]["content"], "over TLS 🔒")
        self.assertNotIn(pt, self.srv.read_log())

    def test_wss_resume_of_a_backlog_larger_than_the_socket_takes(self):
        """A phone that comes back over wss to 27 MB it missed, and reads
        it slowly: the server pages history as the socket drains, so every
        page after the first waits for a short write to finish.  Under
        valgrind (make check-valgrind) 2.7 MB, still many times what the
        socket takes, and more time: 3,000 acknowledged sends did not fit
        in 30 s there."""
        chat, pt, rt, _, _ = h.World(self.srv).pair()
        url = "wss://127.0.0.1:%d/ws/chat/%s/" % (self.srv.tls_port, chat)
        n, body = (300 if h.VALGRIND else 3000), "x" * 9000

        async def go():
            a = await websockets.connect(url + "?token=" + pt, ssl=self.ctx,
                                         max_size=None)
            sent = []
            for i in range(n):
                await a.send(json.dumps({"content": "%d %s" % (i, body)}))
                sent.append(json.loads(await a.recv())["message"]["id"])
            await a.close()
            b = await websockets.connect(
                url + "?since=" + sent[0], ssl=self.ctx, max_queue=1,
                extra_headers={"Authorization": "Bearer " + rt})
            await asyncio.sleep(1)  # not reading: the server's writes stall
            got = []
            while len(got) < n - 1:
                m = json.loads(await asyncio.wait_for(b.recv(), 20))
                got.append(m["message"]["id"])
            await b.close()
            return sent, got

        sent, got = h.run(go(), timeout=180 if h.VALGRIND else 30)
        self.assertEqual(got, sent[1:], "every message once, in order")

    def test_reconnect_resumes_the_last_session(self):
        """A client that comes back offers the session of the last ticket
        it got and is resumed (no certificate, no signature), also when it
        dropped the connection without a close_notify, as a phone losing
        its network does (Python's close() sends none).  Before, carechatd
        freed every connection unshut, and OpenSSL took that session out
        of the cache: never resumed."""
        def visit(session=None):
            raw = socket.create_connection(("127.0.0.1", self.srv.tls_port),
                                           timeout=10)
            s = self.ctx.wrap_socket(raw, server_hostname="127.0.0.1",
                                     session=session)
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                # The tickets come before the answer.
                self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 200"))
                return s.session_reused, s.session
            finally:
                s.close()

        reused, session = visit()
        self.assertFalse(reused)
        for i in range(3):
            reused, session = visit(session)
            self.assertTrue(reused, "reconnect %d was a full handshake" % i)

    def test_plain_http_to_the_tls_port(self):
        with socket.create_connection(("127.0.0.1", self.srv.tls_port),
                                      timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.1 400 "), data[:80])
        self.assertIn(b"TLS", data)
        # And the server carries on.
        self.assertEqual(https_get(self.srv.tls_port, self.ctx)[0], 200)

    def test_silent_client_is_dropped(self):
        with socket.create_connection(("127.0.0.1", self.srv.tls_port),
                                      timeout=30) as s:
            start = time.time()
            self.assertEqual(s.recv(100), b"")
            self.assertLess(time.time() - start, 15,
                            "request_timeout covers the TLS handshake")

    def test_reload_on_sighup_keeps_connections(self):
        chat, pt, rt, _, _ = h.World(self.srv).pair()
        url = "wss://127.0.0.1:%d/ws/chat/%s/?token=" % (self.srv.tls_port,
                                                         chat)

        def serial():
            with socket.create_connection(
                    ("127.0.0.1", self.srv.tls_port), timeout=10) as raw:
                with self.ctx.wrap_socket(raw,
                                          server_hostname="127.0.0.1") as s:
                    return s.getpeercert()["serialNumber"]

        before = serial()

        async def go():
            a = await websockets.connect(url + pt, ssl=self.ctx)
            b = await websockets.connect(url + rt, ssl=self.ctx)
            for n in ("pem", "key"):
                shutil.copy(self.pki.path("server2." + n),
                            self.pki.path("live-server." + n))
            self.srv.proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.5)
            await a.send(json.dumps({"content": "after reload"}))
            got = json.loads(await b.recv())
            await a.close()
            await b.close()
            return got

        got = h.run(go())
        self.assertEqual(got["message"]["content"], "after reload",
                         "open connections survive the reload")
        self.assertNotEqual(serial(), before, "new handshakes use the new "
                            "certificate")
        self.assertIn("certificate reloaded", self.srv.read_log())


class TlsErrors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.close()

    def test_expired_certificate_refused_by_a_verifying_client(self):
        srv = tls_server(self.pki, cert="expired").start()
        try:
            time.sleep(1.1)  # notAfter was "now" when it was issued
            with self.assertRaises(ssl.SSLCertVerificationError) as cm:
                https_get(srv.tls_port, self.pki.client_ctx())
            self.assertIn("expired", str(cm.exception))
        finally:
            srv.close()

    def test_key_not_matching_the_certificate(self):
        srv = tls_server(self.pki, tls_key=self.pki.path("server2.key"))
        try:
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            self.assertIn("does not match", str(cm.exception))
        finally:
            srv.close()

    def test_missing_certificate_file(self):
        srv = tls_server(self.pki, tls_certificate="/nonexistent/cert.pem")
        try:
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            self.assertIn("/nonexistent/cert.pem", str(cm.exception))
        finally:
            srv.close()

    def test_client_certificate_required(self):
        srv = tls_server(self.pki, tls_verify_client="require",
                         tls_client_ca=self.pki.path("ca.pem")).start()
        try:
            status, _, _ = https_get(srv.tls_port,
                                     self.pki.client_ctx(cert="client"))
            self.assertEqual(status, 200)
            with self.assertRaises((ssl.SSLError, OSError,
                                    http.client.HTTPException)):
                https_get(srv.tls_port, self.pki.client_ctx())
        finally:
            srv.close()


if __name__ == "__main__":
    h.main()


class TlsLoops(unittest.TestCase):
    """threads = 3: a TLS WebSocket moves to a worker loop with its TLS
    session; frames sent with the handshake, split across the move and
    after it all arrive, in order."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.srv = tls_server(cls.pki, threads=3).start()
        cls.ctx = cls.pki.client_ctx()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.pki.close()

    def test_frames_around_the_move(self):
        chat, pt, _, _, _ = h.World(self.srv).pair()
        n = 60
        frames = b"".join(h.RawWS.frame(0x1, json.dumps(
            {"content": "t %d" % i})) for i in range(n))
        cut = len(frames) // 2 + 3  # inside a frame
        raw = socket.create_connection(("127.0.0.1", self.srv.tls_port),
                                       timeout=10)
        s = self.ctx.wrap_socket(raw, server_hostname="localhost")
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        req = ("GET /ws/chat/%s/?token=%s HTTP/1.1\r\nHost: localhost\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
               % (chat, pt, key)).encode()
        s.sendall(req + frames[:cut])
        ws = h.RawWS.__new__(h.RawWS)
        ws.sock, ws.buf = s, b""
        self.assertIn(b" 101 ", ws._read_until(b"\r\n\r\n"))
        deadline = time.time() + 5
        while "moves to loop" not in self.srv.read_log():
            self.assertLess(time.time(), deadline, "did not move")
            time.sleep(0.02)
        s.sendall(frames[cut:])
        got = []
        for _ in range(n):
            fin, op, payload = ws.recv()
            got.append(json.loads(payload)["message"]["content"])
        self.assertEqual(got, ["t %d" % i for i in range(n)])
        s.close()
