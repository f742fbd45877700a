#!/usr/bin/python3
"""The audit trail ([audit], doc/operations.md "Audit trail"): one JSON
line per access to PHI, with who, which chat, from where, when and the
result; never a token, never message content.

Every REST route and WebSocket action is driven through a real carechatd
and its line is found with the right fields (a message sent: every
outcome over both transports, in tests/cases); a failed authentication and
an access denied have theirs; SIGHUP after a rename (logrotate) starts a
new file; SIGTERM leaves the last events on disk; with required = yes an
audit file on a full disk makes PHI access answer 503 / close 1013 until
space is freed, without a restart; a writer stuck on its file (a FIFO
nobody reads) does not stop the chat, and the events it cannot take are
counted and logged as lost."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import unittest
import urllib.request
import uuid

import ccharness as h

TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def audit_metrics(port):
    """The carechat_audit_* samples of /metrics on the admin port."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=5) as r:
        text = r.read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r"^carechat_(audit_[a-z_]+) (\S+)$", text, re.M)}


class AuditServer:
    """A server auditing to <tmp>/audit/audit.log (audit: extra keys)."""

    def __init__(self, audit=None, audit_dir=None):
        self.dir = audit_dir or tempfile.mkdtemp(prefix="carechat-audit-")
        self.path = os.path.join(self.dir, "audit.log")
        conf = {"audit": {"file": self.path}}
        conf["audit"].update(audit or {})
        self.srv = h.Server(conf)

    def lines(self):
        return h.read_json_lines(self.path)

    def find(self, timeout=5, **want):
        """The first line whose fields include want (waits for it)."""
        def match():
            for line in self.lines():
                if all(line.get(k) == v for k, v in want.items()):
                    return line
            return None
        return h.wait_for(match, timeout, "an audit line with %r" % (want,))

    def close(self):
        self.srv.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class EveryAccess(unittest.TestCase):
    """Each route and action has its line; tokens and content never."""

    @classmethod
    def setUpClass(cls):
        cls.a = AuditServer()
        cls.srv = cls.a.srv.start()
        cls.world = h.World(cls.srv)
        cls.tokens = [cls.world.admin]
        cls.contents = []

    @classmethod
    def tearDownClass(cls):
        cls.a.close()

    def pair(self):
        chat, pt, rt, pat, pro = self.world.pair()
        self.tokens += [pt, rt]
        return chat, pt, rt, pat, pro

    def content(self):
        c = "secret-content-" + uuid.uuid4().hex
        self.contents.append(c)
        return c

    def test_rest_routes(self):
        chat, pt, rt, pat, pro = self.pair()
        line = self.a.find(event="profile_register", result="ok",
                           status=201)
        self.assertEqual(line["user_id"], "admin")
        self.assertTrue(line.get("admin"))
        self.assertRegex(line["time"], TIME_RE)
        self.assertRegex(line["remote"], r"^127\.0\.0\.1:\d+$")
        created = self.a.find(event="chat_create", status=201,
                              chat_id=chat)
        self.assertEqual(created["user_id"], "u-" + pat[:8])
        self.assertEqual(created["profile"], "patient")
        self.assertEqual(created["patient_id"], pat)

        st, _, _ = self.srv.request("POST", "/chat/chats/",
                                    {"patient": pat}, token=rt)
        self.assertEqual(st, 200)
        got = self.a.find(event="chat_create", status=200, chat_id=chat)
        self.assertEqual(got["profile"], "professional")
        self.assertEqual(got["professional_id"], pro)

        self.assertEqual(self.srv.request("GET", "/chat/chats/",
                                          token=pt)[0], 200)
        self.a.find(event="chat_list", status=200, user_id="u-" + pat[:8])
        self.assertEqual(self.srv.request(
            "GET", "/chat/chats/%s/" % chat, token=pt)[0], 200)
        self.a.find(event="chat_read", status=200, chat_id=chat)

        # A send's line, for each outcome over both transports, is in
        # tests/cases (audit:); here the content, for test_zz.
        st, _, msg = self.srv.request(
            "POST", "/chat/chats/%s/send_message/" % chat,
            {"content": self.content()}, token=pt)
        self.assertEqual(st, 201, msg)

        st, _, _ = self.srv.request(
            "GET", "/chat/chats/%s/messages/?page_size=5" % chat, token=rt)
        self.assertEqual(st, 200)
        self.a.find(event="history_read", status=200, chat_id=chat,
                    user_id="u-" + pro[:8])
        st, _, _ = self.srv.request(
            "POST", "/chat/chats/%s/mark_read/" % chat, token=rt)
        self.assertEqual(st, 200)
        self.a.find(event="mark_read", status=200, chat_id=chat)

    def test_rest_send_by_a_sender_that_left(self):
        """A REST sender that resets its connection before the answer:
        the message is still stored and sent to the chat, and the trail
        says so, with who sent it (the pipeline audits the outcome, not
        the answer: none was delivered)."""
        chat, pt, _, pat, _ = self.pair()
        body = json.dumps({"content": self.content()}).encode()
        with h.hold_writes(self.srv):   # the append waits for storage
            s = socket.create_connection(("127.0.0.1", self.srv.port), 10)
            s.sendall(b"POST /chat/chats/%s/send_message/ HTTP/1.1\r\n"
                      b"Host: x\r\nAuthorization: Bearer %s\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" %
                      (chat.encode(), pt.encode(), len(body), body))
            time.sleep(0.5)     # read, authorized, queued to storage
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()           # a reset: the answer has nowhere to go
            time.sleep(0.3)

        def stored():
            st, _, page = self.srv.request(
                "GET", "/chat/chats/%s/messages/" % chat, token=pt)
            return st == 200 and page["results"]
        msg = h.wait_for(stored, what="the message in the history")[0]
        line = self.a.find(event="message_send", chat_id=chat,
                           message_id=msg["id"])
        self.assertEqual(line["result"], "ok")
        self.assertEqual(line["status"], 201)
        self.assertEqual(line["via"], "rest")
        self.assertEqual(line["user_id"], "u-" + pat[:8])
        self.assertNotIn('"POST /chat/chats/%s/send_message/" 201' % chat,
                         self.srv.read_log(),
                         "the sender was still there: nothing tested")

    def test_websocket(self):
        chat, pt, rt, pat, pro = self.pair()
        ws = h.raw_ws(self.srv, chat, pt)
        self.assertEqual(ws.status, 101)
        join = self.a.find(event="ws_join", chat_id=chat)
        self.assertEqual(join["result"], "ok")
        self.assertEqual(join["user_id"], "u-" + pat[:8])
        self.assertEqual(join["profile"], "patient")
        # A send's line: tests/cases (audit:); here the content, for
        # test_zz, accepted and refused.
        ws.send_json({"content": self.content()})
        self.assertIn("message", ws.recv_json())
        ws.send_json({"content": self.content(), "role": "professional"})
        self.assertIn("error", ws.recv_json())
        ws.send_text("not json " + self.content())
        self.assertIn("error", ws.recv_json())
        ws.send(0x8, b"\x03\xe8")  # close 1000
        self.assertEqual(ws.recv_close()[0], 1000)
        ws.close()
        leave = self.a.find(event="ws_leave", chat_id=chat)
        self.assertEqual(leave["status"], 1000)
        self.assertEqual(leave["result"], "ok")
        self.assertEqual(leave["user_id"], "u-" + pat[:8])

        # A connection that just drops leaves with 1006.
        ws = h.raw_ws(self.srv, chat, rt)
        self.a.find(event="ws_join", chat_id=chat, user_id="u-" + pro[:8])
        ws.close()
        self.a.find(event="ws_leave", chat_id=chat, user_id="u-" + pro[:8],
                    status=1006)

    def test_auth_failure_and_access_denied(self):
        chat, pt, rt, pat, pro = self.pair()
        bad = h.token("mallory", patient=pat, secret="x" * 40)
        self.tokens.append(bad)
        st, _, _ = self.srv.request("GET", "/chat/chats/%s/" % chat)
        self.assertEqual(st, 401)
        st, _, _ = self.srv.request("GET", "/chat/chats/%s/messages/" %
                                    chat, token=bad)
        self.assertEqual(st, 401)
        def rest_failures():
            got = [l for l in self.a.lines() if l["event"] == "auth_failure"
                   and l.get("chat_id") == chat and l["status"] == 401]
            return got if len(got) == 2 else None
        fails = h.wait_for(rest_failures, what="two REST auth failures")
        for line in fails:
            self.assertEqual(line["result"], "denied")
            self.assertNotIn("user_id", line)  # never the refused claims
        ws = h.raw_ws(self.srv, chat, bad)
        self.assertEqual(ws.recv_close()[0], 4401)
        ws.close()
        self.a.find(event="auth_failure", chat_id=chat, status=4401)

        other = str(uuid.uuid4())
        eve = h.token("eve", patient=other)
        self.tokens.append(eve)
        st, _, _ = self.srv.request("GET", "/chat/chats/%s/messages/" %
                                    chat, token=eve)
        self.assertEqual(st, 404)
        line = self.a.find(event="access_denied", user_id="eve", status=404)
        self.assertEqual(line["chat_id"], chat)
        self.assertEqual(line["result"], "denied")
        ws = h.raw_ws(self.srv, chat, eve)
        self.assertEqual(ws.recv_close()[0], 4403)
        ws.close()
        self.a.find(event="access_denied", user_id="eve", status=4403,
                    chat_id=chat)

    def test_zz_no_token_no_content(self):
        """Last (zz): everything the other tests sent is written by now."""
        time.sleep(0.3)
        with open(self.a.path) as f:
            trail = f.read()
        log = self.srv.read_log()
        self.assertGreater(len(trail.splitlines()), 20)
        for secret in self.tokens + self.contents:
            self.assertNotIn(secret, trail)
            self.assertNotIn(secret, log)
            # Nor a piece of a token that a truncated field could hold.
            for part in secret.split(".")[1:]:
                self.assertNotIn(part, trail)
        self.assertNotIn("token=", trail)
        self.assertNotIn("secret-content", trail)
        self.assertEqual(os.stat(self.a.path).st_mode & 0o077 & ~0o040, 0,
                         "the file is not world-readable")


class Rotation(unittest.TestCase):
    """logrotate: rename, SIGHUP; the next events go to a new file."""

    def test_sighup_reopens(self):
        a = AuditServer()
        try:
            srv = a.srv.start()
            world = h.World(srv)
            chat, pt, rt, pat, pro = world.pair()
            a.find(event="chat_create", chat_id=chat)
            os.rename(a.path, a.path + ".1")
            srv.proc.send_signal(signal.SIGHUP)
            h.wait_for(lambda: "reopened" in srv.read_log(), what="reopen")
            self.assertTrue(os.path.exists(a.path), "a new file")
            srv.request("GET", "/chat/chats/%s/" % chat, token=pt)
            a.find(event="chat_read", chat_id=chat)
            old = h.read_json_lines(a.path + ".1")
            self.assertFalse([l for l in old if l["event"] == "chat_read"])
            self.assertTrue([l for l in old if l["event"] == "chat_create"])
        finally:
            a.close()


    def test_reload_keeps_the_settings(self):
        """A SIGHUP that changes [audit] says it needs a restart."""
        a = AuditServer()
        try:
            srv = a.srv.start()
            srv.conf["audit"]["sync_interval"] = "1s"
            srv.write_conf()
            srv.proc.send_signal(signal.SIGHUP)
            h.wait_for(lambda: "only applied by a restart: [audit]" in
                       srv.read_log(), what="the restart warning")
        finally:
            a.close()


class ShutdownDrains(unittest.TestCase):
    """SIGTERM with a backlog the file has not taken yet (a FIFO read
    only after the signal): carechatd exits once all of it is written,
    the last leaves (1001) included."""

    def test_sigterm_writes_the_backlog(self):
        d = tempfile.mkdtemp(prefix="carechat-audit-")
        fifo = os.path.join(d, "audit.log")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        srv = h.Server({"audit": {"file": fifo}})
        try:
            srv.start()
            world = h.World(srv)
            chat, pt, rt, pat, pro = world.pair()
            n = 400  # about 150 KiB: more than a pipe holds
            for i in range(n):
                srv.request("GET", "/chat/chats/%s/" % chat, token=pt)
            ws = h.raw_ws(srv, chat, rt)
            srv.proc.send_signal(signal.SIGTERM)
            self.assertEqual(ws.recv_close()[0], 1001)
            ws.send(0x8, b"\x03\xe9")  # answered: nothing holds the exit
            time.sleep(0.5)              # but the backlog
            got = b""
            deadline = time.time() + 20
            while time.time() < deadline:
                try:
                    data = os.read(reader, 65536)
                except BlockingIOError:
                    data = None
                if data:
                    got += data
                elif srv.proc.poll() is not None and data == b"":
                    break
                else:
                    time.sleep(0.01)
            self.assertEqual(srv.proc.wait(5), 0)
            ws.close()
            lines = [json.loads(l) for l in got.decode().splitlines()]
            reads = [l for l in lines if l["event"] == "chat_read"]
            self.assertEqual(len(reads), n)
            self.assertEqual([l["status"] for l in lines
                              if l["event"] == "ws_leave"], [1001])
        finally:
            srv.close()
            os.close(reader)
            shutil.rmtree(d, ignore_errors=True)


class Startup(unittest.TestCase):
    def test_required_file_unopenable_refuses_to_start(self):
        d = tempfile.mkdtemp(prefix="carechat-audit-")
        try:
            srv = h.Server({"audit": {
                "file": os.path.join(d, "missing", "audit.log"),
                "required": "yes"}})
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            self.assertIn("cannot open the audit file", str(cm.exception))
            self.assertIn("required = yes: not starting", str(cm.exception))
            srv.close()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_bad_keys_stop_the_start(self):
        for audit, why in (({"file": "/tmp/x", "rotate": "yes"},
                            "[audit] rotate: unknown key"),
                           ({"required": "yes"}, "needs file = PATH"),
                           ({"syslog": "yes", "syslog_facility": "mail"},
                            "syslog_facility: expected")):
            srv = h.Server({"audit": audit})
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            self.assertIn(why, str(cm.exception))
            srv.close()

    def test_no_section_no_file(self):
        srv = h.Server().start()
        try:
            world = h.World(srv)
            world.pair()
            self.assertNotIn(" audit: ", srv.read_log())
        finally:
            srv.close()


class Stuck(unittest.TestCase):
    """The writer blocked in write(2) (a FIFO nobody reads): the chat
    goes on; events beyond queue_size are lost, counted and logged."""

    def test_blocked_writer_does_not_stop_the_loop(self):
        d = tempfile.mkdtemp(prefix="carechat-audit-")
        fifo = os.path.join(d, "audit.log")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        admin = h.free_port()
        srv = h.Server({"audit": {"file": fifo, "queue_size": "16k"},
                        "server": {"admin_listen": "127.0.0.1:%d" % admin}})
        try:
            srv.start()
            world = h.World(srv)
            chat, pt, rt, pat, pro = world.pair()
            ws = h.raw_ws(srv, chat, rt)
            # 64 KiB of pipe, then 16 KiB of queue, then losses.
            t0 = time.time()
            for i in range(600):
                st, _, _ = srv.request("GET", "/chat/chats/%s/" % chat,
                                       token=pt)
                self.assertEqual(st, 200)
            st, _, msg = srv.request(
                "POST", "/chat/chats/%s/send_message/" % chat,
                {"content": "still flowing"}, token=pt)
            self.assertEqual(st, 201)
            self.assertEqual(ws.recv_json()["message"]["id"], msg["id"])
            self.assertLess(time.time() - t0, 30)
            log = h.wait_for(lambda: "audit queue full" in srv.read_log()
                             and srv.read_log(), what="the queue-full line")
            self.assertEqual(log.count("audit queue full"), 1,
                             "one line per episode")
            # Drain the FIFO: the writer catches up and says how many
            # were lost.
            def drained():
                try:
                    while os.read(reader, 65536):
                        pass
                except BlockingIOError:
                    pass
                m = re.search(r"(\d+) audit events were lost",
                              srv.read_log())
                return m
            m = h.wait_for(drained, 10, "the lost-events count")
            self.assertGreater(int(m.group(1)), 0)
            got = audit_metrics(admin)
            self.assertEqual(got["audit_events_lost_total"],
                             float(m.group(1)))
            self.assertGreater(got["audit_events_written_total"], 100)
            ws.close()
        finally:
            srv.close()
            os.close(reader)
            shutil.rmtree(d, ignore_errors=True)


class DiskFull(unittest.TestCase):
    """required = yes, the audit file on a full 1 MB tmpfs: PHI access is
    refused (503, close 1013) until there is room again; no restart."""

    def setUp(self):
        if os.geteuid() != 0:
            h.skip_or_fail("mounting a small tmpfs needs root (run the "
                           "suite as root)")
        self.disk = tempfile.mkdtemp(prefix="carechat-auditdisk-")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m",
                            "tmpfs", self.disk], stderr=subprocess.PIPE)
        if r.returncode != 0:
            os.rmdir(self.disk)
            h.skip_or_fail("cannot mount a tmpfs: %s" % r.stderr.decode())

    def tearDown(self):
        subprocess.run(["umount", "-l", self.disk])
        os.rmdir(self.disk)

    def fill(self):
        path = os.path.join(self.disk, "filler")
        with open(path, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        return path

    def test_full_disk_refuses_then_resumes(self):
        admin = h.free_port()
        a = AuditServer({"required": "yes"}, audit_dir=self.disk)
        a.srv.conf["server"]["admin_listen"] = "127.0.0.1:%d" % admin
        try:
            srv = a.srv.start()
            world = h.World(srv)
            chat, pt, rt, pat, pro = world.pair()
            a.find(event="chat_create", chat_id=chat)
            filler = self.fill()

            # The events that fill the audit file's last page are kept;
            # from the first refused write on, PHI access is refused.
            def refused():
                st, _, body = srv.request("GET", "/chat/chats/%s/" % chat,
                                          token=pt)
                return st == 503 and body
            body = h.wait_for(refused, 10, "a 503")
            self.assertEqual(body, {"error": "Audit trail unavailable; "
                                             "try again later"})
            for path in ("/chat/chats/", "/chat/chats/%s/messages/" % chat):
                self.assertEqual(srv.request("GET", path, token=pt)[0], 503)
            ws = h.raw_ws(srv, chat, pt)
            self.assertEqual(ws.status, 101)
            code, reason = ws.recv_close()
            self.assertEqual(code, 1013)
            self.assertIn("Audit trail unavailable", reason)
            ws.close()
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
            st, _, body = srv.request("GET", "/readyz")
            self.assertEqual((st, body["reason"]),
                             (503, "audit trail failing (required = yes)"))
            self.assertIn("(required = yes: PHI access refused meanwhile)",
                          srv.read_log())

            os.unlink(filler)
            h.wait_for(lambda: srv.request("GET", "/chat/chats/%s/" % chat,
                                           token=pt)[0] == 200, 10,
                       "service to resume")
            ws = h.raw_ws(srv, chat, pt)
            ws.send_json({"content": "after the disk was freed"})
            self.assertIn("message", ws.recv_json())
            ws.close()
            self.assertIn("writable again", srv.read_log())
            self.assertEqual(srv.request("GET", "/readyz")[0], 200)
            # The refused requests' own lines were kept, not lost.
            lines = a.lines()
            self.assertTrue([l for l in lines if l.get("status") == 503])
            self.assertTrue([l for l in lines if l.get("status") == 1013])
            self.assertNotIn("were lost", srv.read_log())
            got = audit_metrics(admin)
            self.assertGreater(got["audit_write_errors_total"], 0)
            self.assertEqual(got["audit_events_lost_total"], 0)
        finally:
            a.srv.close()


if __name__ == "__main__":
    h.main()
