#!/usr/bin/python3
"""The carechatd process: command line, configuration and plugin errors
(with -t and at start), a busy port, SIGTERM/SIGINT shutdown (WebSockets
closed with 1001, exit 0), SIGHUP, durability of stored messages across
a restart (nothing acknowledged is ever lost), and its log (one
timestamped line per event, levels honored, tokens never written).
"""
import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import ccharness as h
import websockets

CARECHATD = os.path.join(h.BUILDDIR, "carechatd")
PLUGIN_DIR = os.path.join(h.BUILDDIR, "plugins", ".libs")
ABI_DIR = os.path.join(h.BUILDDIR, "tests", "abi", ".libs")
LOG_LINE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z "
                      r"(error|warn |info |debug) [A-Za-z0-9_:.-]+: ")


def run(args, timeout=15):
    """Run carechatd with args: (returncode, stdout, stderr)."""
    r = subprocess.run([CARECHATD] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), \
        r.stderr.decode(errors="replace")


def no_sanitizer_report(testcase, text):
    for marker in h.SANITIZER_MARKERS:
        testcase.assertNotIn(marker, text)


# ------------------------------------------------------------ command line
class CommandLine(unittest.TestCase):
    def run_ok(self, args):
        rc, out, err = run(args)
        no_sanitizer_report(self, err)
        return rc, out, err

    def test_version(self):
        for opt in ("--version", "-V"):
            rc, out, err = self.run_ok([opt])
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"^carechatd \d+\.\d+(\.\d+)?\S* "
                                  r"\(plugin ABI \d+\.\d+\)\n$")

    def test_help(self):
        for opt in ("-h", "--help"):
            rc, out, err = self.run_ok([opt])
            self.assertEqual(rc, 0, err)
            self.assertTrue(out.startswith("Usage: carechatd"), out)
            for word in ("-c", "-t", "--version"):
                self.assertIn(word, out)
            self.assertEqual(err, "")

    def test_unknown_option(self):
        for args in (["--bogus"], ["-x"], ["-c"], ["-t", "extra"]):
            rc, out, err = self.run_ok(args)
            self.assertNotEqual(rc, 0, args)
            self.assertIn("unknown option", err)
            self.assertIn("Usage: carechatd", err)
            self.assertEqual(out, "")


# ------------------------------------------------------- configuration
class ConfigCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="carechat-daemon-")
        self.port = h.free_port()

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def base(self, server="", storage="", auth=None, fanout=""):
        """A complete config as text; extra lines per section."""
        if auth is None:
            auth = "plugin = jwt\nsecret = %s\n" % h.SECRET
        return ("[server]\n"
                "listen = 127.0.0.1:%d\n"
                "plugin_dir = %s\n"
                "log_level = info\n%s\n"
                "[storage]\n"
                "plugin = sqlite\n"
                "path = %s\n%s\n"
                "[auth]\n%s\n"
                "[fanout]\n"
                "plugin = local\n%s" % (
                    self.port, PLUGIN_DIR, server,
                    os.path.join(self.tmp, "carechat.db"), storage, auth,
                    fanout))

    def write(self, text, name="carechat.conf", mode=0o600):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def check(self, text, extra_args=()):
        """carechatd -t on text: (rc, stdout, stderr, path)."""
        path = self.write(text)
        rc, out, err = run(["-t", "-c", path] + list(extra_args))
        no_sanitizer_report(self, err)
        return rc, out, err, path

    @staticmethod
    def line_of(text, line):
        return text.splitlines().index(line) + 1

    def assert_refused(self, text, *needles, test_only=True):
        if test_only:
            rc, out, err, path = self.check(text)
        else:
            path = self.write(text)
            rc, out, err = run(["-c", path])
            no_sanitizer_report(self, err)
        self.assertNotEqual(rc, 0, err)
        self.assertNotIn("is valid", out)
        for n in needles:
            self.assertIn(n.replace("{path}", path), err)
        self.assertRegex(err, r"(^|\n)\S+Z error ", err)
        return err


class Config(ConfigCase):
    def test_good_config(self):
        rc, out, err, path = self.check(self.base())
        self.assertEqual(rc, 0, err)
        self.assertIn("configuration %s is valid" % path, out)
        no_sanitizer_report(self, err)
        self.assertNotIn(" error ", err)

    def test_check_neither_binds_nor_serves(self):
        """-t loads the plugins' settings only: the port may be taken."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            self.port = s.getsockname()[1]
            rc, out, err, _ = self.check(self.base())
        self.assertEqual(rc, 0, err)

    def test_missing_file(self):
        path = os.path.join(self.tmp, "nope.conf")
        rc, out, err = run(["-t", "-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn(path, err)
        self.assertIn("cannot open", err)
        self.assertIn("No such file", err)
        rc, out, err = run(["-c", path])
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot open", err)

    def test_unknown_section(self):
        text = self.base() + "\n[bogus]\nx = 1\n"
        path = os.path.join(self.tmp, "carechat.conf")
        err = self.assert_refused(text, "unknown section [bogus]")
        lines = (self.line_of(text, "[bogus]"), self.line_of(text, "x = 1"))
        self.assertTrue(any("%s:%d:" % (path, n) in err for n in lines),
                        err)

    def test_empty_unknown_section(self):
        # A misspelt, empty section is still a mistake worth stopping for.
        for header in ("[bogus]", "  [storge]  "):
            text = self.base() + "\n" + header + "\n"
            n = self.line_of(text, header)
            self.assert_refused(text, "{path}:%d: unknown section [%s]"
                                % (n, header.strip()[1:-1]))

    def test_section_line_is_its_header(self):
        text = self.base() + "\n[bogus]\n\n# note\nx = 1\n"
        self.assert_refused(text, "{path}:%d: unknown section [bogus]"
                            % self.line_of(text, "[bogus]"))

    def test_missing_plugin_section_named(self):
        # No [storage] section: sqlite on its defaults needs a path, and
        # the message says which section to add (never "line 0").
        text = "\n".join(l for l in self.base().splitlines()
                         if not l.startswith(("[storage]", "path =",
                                              "plugin = sqlite")))
        err = self.assert_refused(text, "no [storage] section",
                                  "storage:sqlite", "path")
        self.assertNotIn(":0:", err)

    def test_unknown_key(self):
        text = self.base(server="frobnicate = 1\n")
        n = self.line_of(text, "frobnicate = 1")
        self.assert_refused(text, "{path}:%d: [server] frobnicate: "
                                  "unknown key" % n)
        # Plugin sections too: the plugin names the key and line.
        text = self.base(storage="frobnicate = 1\n")
        n = self.line_of(text, "frobnicate = 1")
        self.assert_refused(text, "{path}:%d: [storage] frobnicate" % n)
        text = self.base(auth="plugin = jwt\nsecret = %s\nbogus = 2\n" %
                         h.SECRET)
        n = self.line_of(text, "bogus = 2")
        self.assert_refused(text, "{path}:%d: [auth] bogus" % n)

    def test_bad_values(self):
        cases = [("listen = notanaddress", "listen"),
                 ("listen = 127.0.0.1", "listen"),
                 ("listen = 127.0.0.1:0", "listen"),
                 ("listen = 127.0.0.1:99999", "listen"),
                 ("tls_listen = notanaddress", "tls_listen"),
                 ("tls_listen = 127.0.0.1:0", "tls_listen"),
                 ("max_body_size = -5", "max_body_size"),
                 ("max_body_size = 5 potatoes", "max_body_size"),
                 ("max_header_size = 10", "max_header_size"),
                 ("request_timeout = forever", "request_timeout"),
                 ("keepalive_timeout = 10 days", "keepalive_timeout"),
                 ("max_connections = 0", "max_connections"),
                 ("threads = 0", "threads"),
                 ("threads = 65", "threads"),
                 ("chat_cache = -1", "chat_cache"),
                 ("chat_cache = 16777217", "chat_cache"),
                 ("log_level = loud", "log_level")]
        for line, key in cases:
            with self.subTest(line=line):
                text = self.base(server=line + "\n")
                n = self.line_of(text, line)
                err = self.assert_refused(text, "{path}:%d: [server] %s: "
                                          % (n, key))
                # The reason follows the key.
                self.assertRegex(err, r"\[server\] %s: \S" % key)

    def test_bad_listen_at_start(self):
        text = self.base().replace("listen = 127.0.0.1:%d" % self.port,
                                   "listen = notanaddress")
        self.assert_refused(text, "[server] listen", test_only=False)

    def test_syntax_error(self):
        text = self.base(server="this is not a key value line\n")
        n = self.line_of(text, "this is not a key value line")
        self.assert_refused(text, "{path}:%d: syntax error" % n)

    def test_bad_jwt_config(self):
        err = self.assert_refused(self.base(auth="plugin = jwt\n"),
                                  'missing required key "secret"',
                                  "auth-jwt.so")
        self.assertIn("[auth]", err)
        # Too short for HS256: names the key and why.
        text = self.base(auth="plugin = jwt\nsecret = short\n")
        n = self.line_of(text, "secret = short")
        err = self.assert_refused(text, "{path}:%d: [auth] secret" % n,
                                  "32 bytes")
        self.assertNotIn("= short", err)
        # Both secret and secret_file.
        other = self.write(h.SECRET, "other-secret")
        self.assert_refused(self.base(
            auth="plugin = jwt\nsecret = %s\nsecret_file = %s\n"
            % (h.SECRET, other)), "exactly one of secret and secret_file")
        # And when starting for real, not only with -t.
        self.assert_refused(self.base(auth="plugin = jwt\n"),
                            'missing required key "secret"',
                            test_only=False)

    def test_exposed_secrets_stop_the_start(self):
        """A secret other local users can read stops the start and -t, as
        OpenSSH refuses such a private key: an inline secret in a
        readable configuration file, or a secret file readable by
        others.  Readable by the service's group is fine."""
        text = self.base()  # secret = ... inline
        path = self.write(text, mode=0o644)
        n = self.line_of(text, "secret = %s" % h.SECRET)
        for args in (["-t", "-c", path], ["-c", path]):
            rc, out, err = run(args)
            self.assertNotEqual(rc, 0, err)
            self.assertIn("%s:%d: [auth] secret: a secret in a file other "
                          "users can read (mode 0644): chmod o-rwx %s" %
                          (path, n, path), err)
            self.assertNotIn(h.SECRET, err)
        self.write(text, mode=0o640)
        rc, out, err = run(["-t", "-c", path])
        self.assertEqual(rc, 0, err)
        # A secret file of mode 0644; 0640 passes.
        sf = self.write(h.SECRET, "jwt-secret", mode=0o644)
        text = self.base(auth="plugin = jwt\nsecret_file = %s\n" % sf)
        err = self.assert_refused(text, "[auth] secret_file: %s can be read "
                                  "by other users (mode 0644): chmod o-rwx %s"
                                  % (sf, sf))
        self.assert_refused(text, "can be read by other users",
                            test_only=False)
        os.chmod(sf, 0o640)
        rc, out, err = self.check(text)[:3]
        self.assertEqual(rc, 0, err)
        # Other plugins' secrets: a password in a connection string, a
        # password file.
        text = self.base(storage="plugin = postgres\nconninfo = "
                         "postgresql://cc:hunter2@db/carechat\n")
        path = self.write(text, mode=0o604)
        rc, out, err = run(["-t", "-c", path])
        self.assertIn("[storage] conninfo: a secret in a file other users "
                      "can read", err)
        self.assertNotIn("hunter2", err)
        pw = self.write("hunter2", "redis-password", mode=0o666)
        err = self.assert_refused(self.base(
            fanout="plugin = redis\npassword_file = %s\n" % pw),
            "[fanout] password_file: %s can be read by other users" % pw)

    def test_bad_storage_config(self):
        text = self.base().replace(
            "path = %s\n" % os.path.join(self.tmp, "carechat.db"), "")
        self.assert_refused(text, 'missing required key "path"')


class Plugins(ConfigCase):
    def test_missing_plugin(self):
        want = os.path.join(PLUGIN_DIR, "fanout-nosuch.so")
        for test_only in (True, False):
            self.assert_refused(self.base(fanout="plugin = nosuch\n")
                                .replace("plugin = local\n", ""),
                                want, "No such file", test_only=test_only)
        missing = os.path.join(self.tmp, "gone", "storage-x.so")
        self.assert_refused(self.base(storage="").replace(
            "plugin = sqlite", "plugin = " + missing), missing)

    def test_plugin_dir_missing(self):
        text = self.base().replace("plugin_dir = " + PLUGIN_DIR,
                                   "plugin_dir = " + self.tmp + "/none")
        self.assert_refused(text, self.tmp + "/none/storage-sqlite.so")

    def test_wrong_kind(self):
        jwt = os.path.join(PLUGIN_DIR, "auth-jwt.so")
        self.assert_refused(
            self.base().replace("plugin = sqlite", "plugin = " + jwt),
            jwt, 'plugin "jwt" is not a storage plugin')
        sqlite = os.path.join(PLUGIN_DIR, "storage-sqlite.so")
        self.assert_refused(
            self.base().replace("plugin = local", "plugin = " + sqlite),
            sqlite, "is not a fanout plugin", test_only=False)

    def abi_plugin(self, name):
        path = os.path.join(ABI_DIR, name)
        if not os.path.exists(path):
            h.skip_or_fail("%s not built (make tests/abi/%s)" %
                           (path, name.replace(".so", ".la")))
        return path

    def test_wrong_abi_major(self):
        path = self.abi_plugin("abi-badmajor.so")
        for test_only in (True, False):
            self.assert_refused(
                self.base().replace("plugin = local", "plugin = " + path),
                path, "incompatible plugin ABI", "built for 2.",
                test_only=test_only)

    def test_not_a_plugin(self):
        path = self.abi_plugin("abi-noentry.so")
        self.assert_refused(
            self.base().replace("plugin = local", "plugin = " + path),
            path, "not a carechat plugin", "cc_plugin_entry")

    def test_not_a_shared_object(self):
        junk = self.write("not ELF\n", "fanout-junk.so")
        self.assert_refused(
            self.base().replace("plugin = local", "plugin = " + junk),
            junk, "cannot load")

    def test_good_abi_plugin_loads(self):
        """A plugin built against the frozen 1.0 headers loads."""
        path = os.path.join(ABI_DIR, "abi-good.so")
        if not os.path.exists(path):
            self.skipTest("abi-good.so not built")
        rc, out, err, _ = self.check(
            self.base().replace("plugin = local", "plugin = " + path))
        self.assertEqual(rc, 0, err)


class Port(ConfigCase):
    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            self.port = s.getsockname()[1]
            t0 = time.time()
            path = self.write(self.base())
            rc, out, err = run(["-c", path], timeout=10)
            took = time.time() - t0
        no_sanitizer_report(self, err)
        self.assertNotEqual(rc, 0)
        self.assertIn("cannot listen on 127.0.0.1:%d" % self.port, err)
        self.assertIn("Address already in use", err)
        self.assertLess(took, 5)

    def test_two_listen_addresses(self):
        srv = h.Server()
        p2 = h.free_port()
        srv.conf["server"]["listen"] = "127.0.0.1:%d, 127.0.0.1:%d" % (
            srv.port, p2)
        try:
            srv.start()
            srv.port = p2
            self.assertEqual(srv.request("GET", "/healthz")[0], 200)
        finally:
            srv.close()


# --------------------------------------------------------------- signals
class DaemonCase(h.ServerCase):
    """A fresh carechatd per test: these tests signal it."""
    FRESH = True

    def wait_exit(self, timeout=8):
        t0 = time.time()
        try:
            rc = self.srv.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.fail("carechatd still running %ss after the signal:\n%s" %
                      (timeout, self.srv.read_log()[-2000:]))
        return rc, time.time() - t0


class Signals(DaemonCase):
    def shutdown_closes_websockets(self, sig, name):
        chat, pt, rt, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        b = self.raw_ws(chat, rt, header=True)
        a.send_json({"content": "before " + name})
        self.assertEqual(a.recv_json()["message"]["content"],
                         "before " + name)
        self.assertEqual(b.recv_json()["message"]["content"],
                         "before " + name)
        # An idle keep-alive HTTP connection must not hold the exit.
        idle = socket.create_connection(("127.0.0.1", self.srv.port),
                                        timeout=5)
        self.socks.append(idle)
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertIn(b"200 OK", idle.recv(4096))
        self.srv.proc.send_signal(sig)
        for ws in (a, b):
            code, reason = ws.recv_close()
            self.assertEqual(code, 1001, reason)
            ws.send(0x8, b"\x03\xe9")  # answer the close
        rc, took = self.wait_exit()
        self.assertEqual(rc, 0, self.srv.read_log()[-2000:])
        self.assertLess(took, 5)
        self.assertEqual(idle.recv(4096), b"")
        log = self.srv.read_log()
        self.assertIn("%s: shutting down" % name, log)
        self.assertIn("server: stopped", log)

    def test_sigterm(self):
        self.shutdown_closes_websockets(signal.SIGTERM, "SIGTERM")

    def test_sigint(self):
        self.shutdown_closes_websockets(signal.SIGINT, "SIGINT")

    def test_sigterm_with_websockets_client(self):
        """The websockets library sees a clean close with 1001."""
        chat, pt, _, _, _ = self.world.pair()
        url = self.srv.ws_url(chat, pt)

        async def go():
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"content": "hi"}))
                json.loads(await ws.recv())
                self.srv.proc.send_signal(signal.SIGTERM)
                with self.assertRaises(websockets.ConnectionClosedOK):
                    await asyncio.wait_for(ws.recv(), 5)
                return ws.close_code
        self.assertEqual(h.run(go(), 15), 1001)
        self.assertEqual(self.wait_exit()[0], 0)

    def test_sigterm_with_silent_client(self):
        """A client that never answers the close does not keep the
        daemon for long, and no new connection is accepted meanwhile."""
        chat, pt, _, _, _ = self.world.pair()
        ws = self.raw_ws(chat, pt)
        self.srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(ws.recv_close()[0], 1001)
        time.sleep(0.2)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.srv.port),
                                     timeout=2).close()
        rc, took = self.wait_exit(timeout=12)
        self.assertEqual(rc, 0)
        self.assertTrue(ws.closed_by_peer(1))

    def test_second_signal_exits_at_once(self):
        chat, pt, _, _, _ = self.world.pair()
        ws = self.raw_ws(chat, pt)
        self.srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(ws.recv_close()[0], 1001)
        self.srv.proc.send_signal(signal.SIGTERM)
        rc, took = self.wait_exit()
        self.assertEqual(rc, 0)
        self.assertLess(took, 2)
        self.assertIn("second signal", self.srv.read_log())

    def test_sighup_keeps_running(self):
        chat, pt, rt, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        b = self.raw_ws(chat, rt, header=True)
        self.srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while "SIGHUP" not in self.srv.read_log():
            self.assertLess(time.time(), deadline, "SIGHUP not logged")
            time.sleep(0.05)
        self.assertIsNone(self.srv.proc.poll())
        a.send_json({"content": "after HUP"})
        self.assertEqual(a.recv_json()["message"]["content"], "after HUP")
        self.assertEqual(b.recv_json()["message"]["content"], "after HUP")
        self.assertEqual(self.srv.request("GET", "/healthz")[0], 200)
        # Several in a row are harmless too.
        for _ in range(3):
            self.srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        b.send_json({"content": "still here"})
        self.assertEqual(a.recv_json()["message"]["content"], "still here")
        self.assertIsNone(self.srv.proc.poll())


# ------------------------------------------------------------ durability
class Durability(DaemonCase):

    def test_history_survives_restart(self):
        chat, pt, rt, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        sent = []
        for i in range(6):
            if i % 2 == 0:
                a.send_json({"content": "ws %d" % i})
                m = a.recv_json()["message"]
            else:
                st, _, body = self.srv.request(
                    "POST", "/chat/chats/%s/send_message/" % chat,
                    {"content": "rest %d" % i}, token=rt)
                self.assertEqual(st, 201, body)
                m = body
                self.assertEqual(a.recv_json()["message"]["id"], m["id"])
            sent.append((m["id"], m["content"], m["sender_type"]))
        before = h.history(self.srv, chat, pt)
        self.srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(a.recv_close()[0], 1001)
        a.send(0x8, b"\x03\xe9")
        self.assertEqual(self.wait_exit()[0], 0)
        self.srv.start()
        after = h.history(self.srv, chat, pt)
        self.assertEqual([(m["id"], m["content"], m["sender_type"])
                          for m in after], sent)
        self.assertEqual(after, before)
        # The chat itself and its read state survived too.
        st, _, c = self.srv.request("GET", "/chat/chats/%s/" % chat,
                                    token=rt)
        self.assertEqual(st, 200)
        self.assertEqual(c["last_message"]["id"], sent[-1][0])

    def test_appends_in_flight_at_exit(self):
        """Messages storage is still committing when the daemon stops
        (SIGTERM, then a second signal: exit now) are finished by
        storage's stop(): the daemon exits cleanly (status 0, no
        sanitizer report: nothing is published through a fan-out that
        was already unloaded), and every one of them is in history after
        the restart, once and in order."""
        chat, pt, rt, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        n = 12
        with h.hold_writes(self.srv):
            for i in range(n):
                a.send_json({"content": "in flight %d" % i})
            a.send_json({"content": "sync"})
            time.sleep(0.3)  # all taken and queued for storage
            self.srv.proc.send_signal(signal.SIGTERM)
            self.assertEqual(a.recv_close()[0], 1001)
            a.send(0x8, b"\x03\xe9")
            time.sleep(0.2)
            self.srv.proc.send_signal(signal.SIGTERM)  # exit now
            deadline = time.time() + 5
            while "second signal" not in self.srv.read_log():
                self.assertLess(time.time(), deadline, "not logged")
                time.sleep(0.05)
            time.sleep(0.3)  # the loop has returned; storage is stopping
        self.assertEqual(self.wait_exit()[0], 0, self.srv.read_log()[-3000:])
        log = self.srv.read_log()
        for marker in h.SANITIZER_MARKERS:
            self.assertNotIn(marker, log)
        self.srv.start()
        contents = [m["content"] for m in h.history(self.srv, chat, pt)]
        self.assertEqual(contents, ["in flight %d" % i for i in range(n)] +
                         ["sync"])

    def test_acknowledged_is_never_lost(self):
        """A burst over WebSocket and REST right up to SIGTERM: every
        message acknowledged before the daemon stopped is in history
        after the restart, in the order sent."""
        chat, pt, rt, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        n = 300
        rest_acked = []
        stop = threading.Event()

        def rest_sender():
            i = 0
            while not stop.is_set():
                try:
                    st, _, body = self.srv.request(
                        "POST", "/chat/chats/%s/send_message/" % chat,
                        {"content": "rest %d" % i}, token=rt)
                except (OSError, http.client.HTTPException):
                    return  # the daemon is gone
                if st == 201:
                    rest_acked.append(body["id"])
                i += 1

        t = threading.Thread(target=rest_sender, daemon=True)
        t.start()
        deadline = time.time() + 5
        while len(rest_acked) < 5 and time.time() < deadline:
            time.sleep(0.01)
        burst = b"".join(a.frame(0x1, json.dumps({"content": "ws %d" % i}))
                         for i in range(n))
        a.sock.sendall(burst)
        # Let part of the burst through, then stop the daemon mid-flow.
        first = a.recv_json()["message"]
        self.srv.proc.send_signal(signal.SIGTERM)
        ws_acked = []
        if first["content"].startswith("ws "):
            ws_acked.append(first["id"])
        while True:
            fin, op, data = a.recv()
            if op == 0x8:
                self.assertEqual(int.from_bytes(data[:2], "big"), 1001)
                a.send(0x8, b"\x03\xe9")
                break
            if op == 0x1:
                m = json.loads(data)["message"]
                if m["content"].startswith("ws "):
                    ws_acked.append(m["id"])
        self.assertEqual(self.wait_exit()[0], 0)
        stop.set()
        t.join(10)
        self.srv.start()
        after = h.history(self.srv, chat, pt)
        ids = [m["id"] for m in after]
        for mid in ws_acked + rest_acked:
            self.assertIn(mid, ids, "acknowledged message lost")
        # WebSocket messages are stored in order, without gaps.
        ws_contents = [m["content"] for m in after
                       if m["content"].startswith("ws ")]
        self.assertEqual(ws_contents,
                         ["ws %d" % i for i in range(len(ws_contents))])
        rest_contents = [int(m["content"].split()[1]) for m in after
                         if m["content"].startswith("rest ")]
        self.assertEqual(rest_contents, sorted(rest_contents))
        self.assertEqual(ids, sorted(ids), "history out of id order")
        self.assertGreaterEqual(len(ws_contents), len(ws_acked))
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# ws acked %d stored %d; rest acked %d stored %d" % (
                len(ws_acked), len(ws_contents), len(rest_acked),
                len(rest_contents)))
        # Nothing new sneaks in after the restart.
        self.assertEqual(len(set(ids)), len(ids))


# ------------------------------------------------------------------ logs
class Logs(DaemonCase):
    CONF = {"server": {"log_level": "debug"}}

    def test_tokens_never_logged(self):
        chat, pt, rt, pat, _ = self.world.pair()
        secret_tokens = [pt, rt]
        # WebSocket with ?token= and with the Authorization header.
        a = self.raw_ws(chat, pt)
        b = self.raw_ws(chat, rt, header=True)
        a.send_json({"content": "hello"})
        a.recv_json()
        b.recv_json()
        # REST with a bearer token, and a token in a query string.
        self.assertEqual(self.srv.request("GET", "/chat/chats/",
                                          token=pt)[0], 200)
        self.assertEqual(self.srv.request(
            "GET", "/chat/chats/?token=%s" % pt, token=pt)[0], 200)
        self.srv.request("GET", "/nope?a=1&token=%s&b=2" % rt)
        self.srv.request("GET", "/nope?access_token=%s" % rt)
        # Whatever the parameter is called, however it is encoded, and in
        # the path too.
        self.srv.request("GET", "/nope?%%74oken=%s" % rt)
        self.srv.request("GET", "/nope?jwt=%s&x=%s" % (rt, pt))
        self.srv.request("GET", "/nope/%%65%s/" % rt[1:])
        ws = h.RawWS(self.srv.port, "/ws/chat/%s/?%%74oken=%s" % (chat, rt))
        self.socks.append(ws)
        # Refused tokens: bad signature, expired, garbage, alg none.
        bad = [h.token("u1", patient=pat, secret="x" * 40),
               h.token("u2", patient=pat, exp_in=-3600),
               "SECRETTOKEN-" + uuid.uuid4().hex,
               h.b64url(b'{"alg":"none","typ":"JWT"}') + "." +
               h.b64url(json.dumps({"user_id": "u3",
                                    "exp": int(time.time()) + 60})
                        .encode()) + "."]
        for tok in bad:
            secret_tokens.append(tok)
            ws = h.raw_ws(self.srv, chat, tok, status=None)
            self.socks.append(ws)
            if ws.status == 101:
                self.assertEqual(ws.recv_close()[0], 4401)
            st, _, _ = self.srv.request("GET", "/chat/chats/", token=tok)
            self.assertEqual(st, 401)
            ws = h.raw_ws(self.srv, chat, tok, header=True, status=None)
            self.socks.append(ws)
            if ws.status == 101:
                self.assertEqual(ws.recv_close()[0], 4401)
        for ws in (a, b):
            ws.send(0x8, b"\x03\xe8")
            ws.recv_close()
        self.srv.stop()
        log = self.srv.read_log()
        self.assertIn("[redacted]", log)
        # The upgrade is in the access log, its token redacted.
        self.assertIn('"GET /ws/chat/%s/?token=[redacted]" 101' % chat, log)
        for tok in secret_tokens:
            self.assertNotIn(tok, log)
            parts = tok.split(".")
            if len(parts) == 3 and parts[2]:
                self.assertNotIn(parts[2], log, "signature logged")
            if len(parts) == 3:
                self.assertNotIn(parts[1], log, "claims logged")
        self.assertNotIn("SECRETTOKEN", log)
        self.assertNotIn(h.SECRET, log)

    def test_claims_cannot_forge_a_line(self):
        """A signed token whose user_id holds a line separator and a
        right-to-left override (and a quote): the lines that name the
        user keep it on one line, escaped, inside quotes."""
        chat, pt, rt, pat, pro = self.world.pair()
        evil = 'eve\u2028error admin\u202e"x'
        tok = h.token(evil, patient=str(uuid.uuid4()))
        ws = h.RawWS(self.srv.port, "/ws/chat/%s/?token=%s" % (chat, tok))
        self.socks.append(ws)
        self.assertEqual(ws.recv_close()[0], 4403)  # not a party
        deadline = time.time() + 5
        while "is not a party" not in self.srv.read_log():
            self.assertLess(time.time(), deadline, "not logged")
            time.sleep(0.05)
        raw = open(self.srv.log_path, "rb").read()
        self.assertNotIn("\u2028".encode(), raw)
        self.assertNotIn("\u202e".encode(), raw)
        self.assertIn(b'user "eve\\u2028error admin\\u202e\\"x" is not a '
                      b'party', raw)

    def test_every_line_has_timestamp_and_level(self):
        chat, pt, _, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        a.send_json({"content": "x"})
        a.recv_json()
        a.send(0x2, b"binary")  # a protocol-level close, logged
        a.recv_close()
        for req in (b"GET /\x7f HTTP/1.1\r\n\r\n",
                    b"GET /\"\\\xff\xfe?token=x HTTP/1.1\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", self.srv.port),
                                          timeout=5) as s:
                s.sendall(req)
                s.recv(4096)
        self.srv.stop()
        log = self.srv.read_log()
        lines = log.splitlines()
        self.assertGreater(len(lines), 5)
        for line in lines:
            self.assertRegex(line, LOG_LINE)
        self.assertTrue(log.endswith("\n"))
        levels = {LOG_LINE.match(l).group(1).strip() for l in lines}
        self.assertIn("info", levels)
        self.assertIn("debug", levels)


class QuietLogs(DaemonCase):
    CONF = {"server": {"log_level": "error"}}

    def test_error_level_suppresses_info(self):
        chat, pt, _, _, _ = self.world.pair()
        a = self.raw_ws(chat, pt)
        a.send_json({"content": "x"})
        a.recv_json()
        a.send(0x2, b"binary")
        a.recv_close()
        self.srv.request("GET", "/nope")
        self.srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        self.assertEqual(self.srv.stop(), 0)
        log = self.srv.read_log()
        for line in log.splitlines():
            self.assertRegex(line, LOG_LINE)
            self.assertIn(" error ", line)
        for word in ("info ", "debug ", "warn ", "ready", "listening",
                     "GET /nope", "SIGHUP", "shutting down"):
            self.assertNotIn(word, log)


class WarnLogs(DaemonCase):
    CONF = {"server": {"log_level": "warn"}}

    def test_warn_level_suppresses_info_keeps_warnings(self):
        self.srv.request("GET", "/healthz")
        self.srv.stop()
        log = self.srv.read_log()
        self.assertNotIn(" info ", log)
        self.assertNotIn(" debug ", log)
        self.assertNotIn("GET /healthz", log)


if __name__ == "__main__":
    h.main()
