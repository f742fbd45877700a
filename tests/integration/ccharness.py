"""ccharness - start a real carechatd and talk to it as clients do.

One helper to start the daemon (Redis' start_server idea): a temporary
directory with a config, a SQLite database and a secret; a free loopback
port; the daemon's stderr in a log file the tests can read.  Also: HS256
token minting (stdlib only), a small REST client, a raw RFC 6455 client for
protocol cases, and a unittest runner that prints TAP for automake.

The suites' shared pieces live here and only here: ServerCase (a server
per class, or per test with FRESH), the clients (raw_ws, and connect for
the websockets library) and what tests wait for on them (recv_json,
recv_message, recv_error, nothing_more, closed_with, silent, wait_for).

Runs with Debian's /usr/bin/python3 (python3-websockets 10.x).
"""
import asyncio
import atexit
import base64
import glob
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import uuid
import pwd

BUILDDIR = os.environ.get("CC_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SRCDIR = os.environ.get("CC_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
SECRET = "integration-test-secret-0123456789abcdef"
# The storage backend the suite runs against: sqlite (default) or
# postgres (tests/integration/postgres.py sets it).
STORAGE = os.environ.get("CC_TEST_STORAGE", "sqlite")
# The event loops every server runs with ([server] threads); threads.py
# runs the suite again with 3, so WebSockets move to worker loops.
THREADS = os.environ.get("CC_TEST_THREADS")
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer",
                     "UndefinedBehaviorSanitizer",
                     "runtime error:", "definitely lost in",
                     "Invalid read of", "Invalid write of",
                     "uninitialised value", "Invalid free")
# CC_VALGRIND=1: run every daemon under valgrind (make check-valgrind).
VALGRIND = bool(os.environ.get("CC_VALGRIND"))


def skip_or_fail(reason):
    """A missing real component: a skip locally, a failure under CI."""
    raise unittest.SkipTest(reason)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims, secret=SECRET, alg="HS256", header=None):
    """A signed JWT for claims (dict)."""
    hdr = {"alg": alg, "typ": "JWT"}
    if header:
        hdr.update(header)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384,
              "HS512": hashlib.sha512}.get(alg, hashlib.sha256)
    signing = b64url(json.dumps(hdr).encode()) + "." + \
        b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), signing.encode(), digest).digest()
    return signing + "." + b64url(sig)


def token(user_id=None, patient=None, professional=None, exp_in=3600,
          admin=False, secret=SECRET, **extra):
    """A token for a user with the given profile ids."""
    now = int(time.time())
    claims = {"user_id": user_id or str(uuid.uuid4()), "iat": now,
              "exp": now + exp_in}
    if patient:
        claims["patient_id"] = patient
    if professional:
        claims["professional_id"] = professional
    if admin:
        claims["carechat_admin"] = True
    claims.update(extra)
    return mint(claims, secret=secret)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A carechatd process on a free loopback port.

    conf: {"server": {...}, "storage": {...}, ...} merged over defaults.
    """

    def __init__(self, conf=None, tmpdir=None, storage=None):
        self.storage = storage or STORAGE
        self.own_tmp = tmpdir is None
        self.tmp = tmpdir or tempfile.mkdtemp(prefix="carechat-test-")
        self.port = free_port()
        self.conf = {
            "server": {"listen": "127.0.0.1:%d" % self.port,
                       "plugin_dir": os.path.join(BUILDDIR, "plugins",
                                                  ".libs"),
                       "log_level": "debug",
                       # Tests flood from one user; the per-user limit,
                       # on by default, has tests of its own.
                       "message_rate": 0},
            "storage": {"plugin": "sqlite",
                        "path": os.path.join(self.tmp, "carechat.db")},
            "auth": {"plugin": "jwt", "secret": SECRET},
            "fanout": {"plugin": "local"},
        }
        if THREADS:
            self.conf["server"]["threads"] = THREADS
        if self.storage == "postgres":
            # A fresh database per server on the shared test cluster.
            self.conf["storage"] = {"plugin": "postgres",
                                    "conninfo": pg_cluster().new_db()}
        for sec, kv in (conf or {}).items():
            self.conf.setdefault(sec, {}).update(kv)
            for k, v in list(self.conf[sec].items()):
                if v is None:
                    del self.conf[sec][k]
        self.conf_path = os.path.join(self.tmp, "carechat.conf")
        self.log_path = os.path.join(self.tmp, "carechatd.log")
        self.proc = None
        self.wrapper = []   # argv to run the daemon under (prlimit ...)

    def write_conf(self):
        # Readable by its owner only: carechatd refuses a secret in a
        # configuration file other users can read.
        fd = os.open(self.conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                     0o600)
        os.fchmod(fd, 0o600)
        with open(fd, "w") as f:
            for sec, kv in self.conf.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")

    def start(self, wait=True):
        self.write_conf()
        self.log = open(self.log_path, "ab")
        argv = self.wrapper + [os.path.join(BUILDDIR, "carechatd"), "-c",
                               self.conf_path]
        if VALGRIND:
            # make check-valgrind: definite leaks and memory errors in the
            # daemon fail the test (through the sanitizer-marker check).
            argv = ["valgrind", "--quiet", "--leak-check=full",
                    "--errors-for-leak-kinds=definite",
                    "--show-leak-kinds=definite", "--num-callers=30",
                    "--log-file=" + self.log_path + ".vg"] + argv
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=self.log)
        if wait:
            self.wait_ready(timeout=120 if VALGRIND else 15)
        return self

    def wait_ready(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("carechatd exited with %s:\n%s" %
                                   (self.proc.returncode, self.read_log()))
            try:
                status, _, _ = self.request("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("carechatd did not become ready:\n" +
                           self.read_log())

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signal the daemon and return its exit status."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("carechatd did not stop within %ss" % timeout)
        finally:
            self.log.close()

    def restart(self):
        self.stop()
        return self.start()

    def close(self):
        """Stop the daemon; fail when its log holds a sanitizer report
        (an --enable-sanitizers build reports leaks and UB there)."""
        report = None
        try:
            self.stop()
            log = self.read_log() if os.path.exists(self.log_path) else ""
            if os.path.exists(self.log_path + ".vg"):
                with open(self.log_path + ".vg", errors="replace") as f:
                    log += f.read()
            for marker in SANITIZER_MARKERS:
                at = log.find(marker)
                if at >= 0:
                    report = log[max(0, at - 200):at + 3000]
                    break
        finally:
            if self.own_tmp and not os.environ.get("CC_KEEP_TMP") and \
                    report is None:
                shutil.rmtree(self.tmp, ignore_errors=True)
        if report is not None:
            raise AssertionError("sanitizer report in %s:\n%s" %
                                 (self.log_path, report))

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # -------------------------------------------------------------- REST
    def request(self, method, path, body=None, token=None, headers=None,
                raw_body=None):
        """(status, headers dict lower-cased, parsed JSON or None)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        data = raw_body
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        parsed = None
        if payload:
            try:
                parsed = json.loads(payload)
            except ValueError:
                parsed = payload
        return resp.status, rh, parsed

    def ws_url(self, chat_id, tok=None):
        url = "ws://127.0.0.1:%d/ws/chat/%s/" % (self.port, chat_id)
        if tok:
            url += "?token=" + tok
        return url


def plugin_built(name):
    """True when plugins/<name>.so was built (configure found its
    library)."""
    return os.path.exists(os.path.join(BUILDDIR, "plugins", ".libs",
                                       name + ".so"))


def two_nodes(redis, tmp, conf=None):
    """Two started carechatd sharing storage (the suite's backend: one
    PostgreSQL database, or one SQLite file in tmp) and the Redis server
    redis for fan-out; conf merged over both."""
    if STORAGE == "postgres":
        storage = {"plugin": "postgres", "conninfo": pg_cluster().new_db()}
    else:
        storage = {"plugin": "sqlite",
                   "path": os.path.join(tmp, "shared.db")}
    nodes = []
    for _ in range(2):
        c = {"storage": dict(storage),
             "fanout": {"plugin": "redis", "address": redis.address()}}
        for sec, kv in (conf or {}).items():
            c.setdefault(sec, {}).update(kv)
        nodes.append(Server(c, storage=storage["plugin"]).start())
    return nodes


def history(srv, chat, tok):
    """A chat's whole history, oldest first, following the next links
    (asserts each page answers 200)."""
    path = "/chat/chats/%s/messages/?page_size=200" % chat
    out = []
    while path:
        st, _, body = srv.request("GET", path, token=tok)
        assert st == 200, (st, body)
        out += body["results"]
        nxt = body["next"]
        path = urllib.parse.urlsplit(nxt)._replace(
            scheme="", netloc="").geturl() if nxt else None
    return out


class World:
    """Profiles, tokens and chats on a server, made through the API."""

    def __init__(self, server):
        self.srv = server
        self.admin = token("admin", admin=True)

    def profile(self, kind):
        pid = str(uuid.uuid4())
        status, _, body = self.srv.request(
            "POST", "/chat/profiles/", {"kind": kind, "id": pid},
            token=self.admin)
        assert status == 201, (status, body)
        return pid

    def pair(self):
        """A new patient and professional with a chat between them:
        (chat_id, patient_token, professional_token, patient_id, pro_id)."""
        pat, pro = self.profile("patient"), self.profile("professional")
        pt = token("u-" + pat[:8], patient=pat)
        rt = token("u-" + pro[:8], professional=pro)
        status, _, chat = self.srv.request(
            "POST", "/chat/chats/", {"professional": pro}, token=pt)
        assert status == 201, (status, chat)
        return chat["id"], pt, rt, pat, pro


class ServerCase(unittest.TestCase):
    """The one base class of the suites: a carechatd (conf: CONF) and a
    World on it, for all of a class's tests, or for each test when FRESH
    is true (a test that signals or restarts its daemon).

    After each test of a shared server the daemon must still be running;
    when the class is done it must exit 0 on SIGTERM, with no sanitizer
    report in its log (Server.close).  self.socks: raw clients a test
    made, closed after it."""
    CONF = None
    FRESH = False

    @classmethod
    def start_server(cls, holder):
        holder.srv = Server(cls.CONF).start()
        holder.world = World(holder.srv)

    @classmethod
    def setUpClass(cls):
        if not cls.FRESH:
            cls.start_server(cls)

    @classmethod
    def tearDownClass(cls):
        if not cls.FRESH:
            stop_checked(cls.srv)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.socks = []   # a test instance runs once: no reset needed

    def setUp(self):
        if self.FRESH:
            self.start_server(self)

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.socks.clear()
        if self.FRESH:
            self.srv.close()
            return
        self.assertIsNone(self.srv.proc.poll(),
                          "carechatd died:\n" + self.srv.read_log()[-3000:])

    def run_async(self, coro, timeout=20):
        return run(coro, timeout)

    def raw_ws(self, chat, tok, header=False, **kw):
        """raw_ws() on this class's server, closed after the test."""
        ws = raw_ws(self.srv, chat, tok, header=header, **kw)
        self.socks.append(ws)
        return ws


def stop_checked(srv):
    """Stop srv (SIGTERM) and close it: it must exit 0, and its log must
    hold no sanitizer report."""
    log = ""
    try:
        rc = srv.stop()
        if rc != 0 and os.path.exists(srv.log_path):
            log = srv.read_log()[-4000:]
    finally:
        srv.close()
    if rc != 0:
        raise AssertionError("carechatd exited %r; log tail:\n%s" %
                             (rc, log))


# ------------------------------------------------------------ PostgreSQL
class PgCluster:
    """A throwaway PostgreSQL server on a free loopback port: initdb into a
    temporary directory and pg_ctl, as the `postgres` user when running as
    root (the server refuses root).  No fsync: tests, not durability of
    the test cluster itself."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(p.split("/")[4]))
        if not bins:
            skip_or_fail("PostgreSQL server not installed (Debian: "
                         "apt-get install postgresql)")
        self.bindir = os.path.dirname(bins[-1])
        self.tmp = tempfile.mkdtemp(prefix="carechat-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                skip_or_fail("running as root and there is no `postgres` "
                             "user to run the test server as")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
            self.user = "postgres"
        self.n_db = 0
        self._pg(["initdb", "-D", self.data, "-A", "trust", "-U",
                  "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        self.start()

    def _pg(self, argv, check=True):
        cmd = [os.path.join(self.bindir, argv[0])] + argv[1:]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed:\n%s" % (argv[0],
                                                    r.stdout.decode()))
        return r

    def start(self):
        self._pg(["pg_ctl", "-D", self.data, "-l",
                  os.path.join(self.tmp, "server.log"), "-w", "-t", "60",
                  "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=300" % (self.port,
                                                            self.tmp),
                  "start"])

    def stop(self, mode="fast"):
        self._pg(["pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60",
                  "stop"], check=False)

    def conninfo(self, db="postgres"):
        return "host=127.0.0.1 port=%d user=postgres dbname=%s " \
               "connect_timeout=5" % (self.port, db)

    def new_db(self):
        self.n_db += 1
        name = "carechat_%d_%d" % (os.getpid(), self.n_db)
        self._pg(["createdb", "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", "postgres", name])
        return self.conninfo(name)

    def psql(self, conninfo, sql):
        """Run sql; the output rows as text (unaligned, no headers)."""
        r = self._pg(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                      "-d", conninfo, "-c", sql])
        return r.stdout.decode()

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def hold_writes(srv):
    """While inside, srv's storage cannot commit a message: another
    connection holds the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL:
    chats locked EXCLUSIVE, which every append's update of its chat waits
    for).  Reads go on.  Keep it short: SQLite's writer waits busy_timeout
    (5 s by default)."""
    if srv.storage == "postgres":
        cluster = pg_cluster()
        cmd = [os.path.join(cluster.bindir, "psql"), "-X", "-A", "-t", "-q",
               "-v", "ON_ERROR_STOP=1", "-d", srv.conf["storage"]["conninfo"]]
        if cluster.user:
            cmd = ["runuser", "-u", cluster.user, "--"] + cmd
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        try:
            p.stdin.write("BEGIN; LOCK TABLE chats IN EXCLUSIVE MODE; "
                          "SELECT 'locked';\n")
            p.stdin.flush()
            if p.stdout.readline().strip() != "locked":
                raise RuntimeError("psql could not lock chats")
            yield
            p.stdin.write("ROLLBACK;\n")
        finally:
            p.stdin.close()
            p.wait(timeout=30)
        return
    import sqlite3
    db = sqlite3.connect(srv.conf["storage"]["path"], timeout=10,
                         isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("ROLLBACK")
    finally:
        db.close()


_pg_shared = None


def pg_cluster():
    """The process' shared test cluster, started on first use."""
    global _pg_shared
    if _pg_shared is None:
        _pg_shared = PgCluster()
        atexit.register(_pg_shared.close)
    return _pg_shared


# -------------------------------------------------------- faulty storage
class Faulty:
    """The control socket of tests/fault/storage-faulty.c, the test storage
    plugin that wraps the usual one and makes the Nth call of a storage
    operation fail (its header lists the operations and the kinds)."""

    def __init__(self, path):
        self.path = path

    @staticmethod
    def around(srv, build=""):
        """Make srv (not started yet) store through the faulty plugin
        around its usual one (build "11": the one claiming ABI 1.1);
        returns the Faulty that controls it."""
        so = os.path.join(BUILDDIR, "tests", "fault", ".libs",
                          "storage-faulty%s.so" % build)
        if not os.path.exists(so):
            raise RuntimeError("%s is not built (make check builds it)" % so)
        st = srv.conf["storage"]
        st["fault_inner"] = os.path.join(srv.conf["server"]["plugin_dir"],
                                         "storage-%s.so" % st["plugin"])
        st["plugin"] = so
        st["fault_socket"] = os.path.join(srv.tmp, "fault.sock")
        return Faulty(st["fault_socket"])

    def ask(self, text, timeout=5):
        """Send one command; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.bind("")            # an address of its own, for the answer
            s.settimeout(timeout)
            s.sendto(text.encode(), self.path)
            return s.recv(4096).decode()

    def arm(self, op, kind, nth=1):
        """The nth call of op from now fails as kind."""
        got = self.ask("arm %s %d %s" % (op, nth, kind))
        assert got == "ok", got

    def disarm(self):
        got = self.ask("disarm")
        assert got == "ok", got

    def status(self):
        """{"fired": n, "armed": "op/left/kind" or "-", "calls": {op: n}}"""
        out = dict(kv.split("=", 1) for kv in self.ask("status").split())
        out["fired"] = int(out["fired"])
        out["calls"] = {op: int(n) for op, n in
                        (c.split(":") for c in out["calls"].split(","))}
        return out


# ----------------------------------------------------------------- Redis
class RedisServer:
    """A throwaway redis-server on a free loopback port (no persistence).
    stop() and start() again keep the port, for outage tests."""

    def __init__(self, password=None):
        self.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.path.exists(self.binary):
            skip_or_fail("redis-server not installed (Debian: apt-get "
                         "install redis-server)")
        self.tmp = tempfile.mkdtemp(prefix="carechat-redis-")
        self.port = free_port()
        self.password = password
        self.proc = None
        self.start()

    def start(self):
        argv = [self.binary, "--port", str(self.port), "--bind",
                "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.tmp, "--logfile",
                os.path.join(self.tmp, "redis.log")]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                if self.command("PING").startswith((b"+PONG", b"-NOAUTH")):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def command(self, *args):
        """Send one command (inline RESP); the raw first reply line."""
        with socket.create_connection(("127.0.0.1", self.port),
                                      timeout=5) as s:
            out = b""
            if self.password:
                s.sendall(b"AUTH %s\r\n" % self.password.encode())
                s.recv(64)
            s.sendall((" ".join(args) + "\r\n").encode())
            while not out.endswith(b"\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                out += chunk
            return out

    def wait_subscribers(self, chat, n, timeout=10):
        """Wait until n nodes subscribe to a chat's channel (a node
        subscribes when its first client joins the chat, asynchronously):
        what is relayed and never stored, like typing, reaches a node only
        from then on."""
        channel = "carechat:chat:" + chat
        deadline = time.time() + timeout
        while True:
            out = self.command("PUBSUB", "NUMSUB", channel)
            m = re.search(rb":(\d+)\r\n$", out)
            if m and int(m.group(1)) >= n:
                return
            if time.time() > deadline:
                raise AssertionError("%d node(s) never subscribed to %s: %r"
                                     % (n, channel, out))
            time.sleep(0.02)

    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)

    def close(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- raw WS
class RawWS:
    """A minimal RFC 6455 client over a socket, for protocol cases."""

    def __init__(self, port, path, headers=None, timeout=5, source=None,
                 rcvbuf=None):
        """rcvbuf: a small receive buffer, set before connecting (a
        client that reads slowly, or not at all)."""
        if rcvbuf:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source:
                self.sock.bind((source, 0))
            self.sock.connect(("127.0.0.1", port))
        else:
            self.sock = socket.create_connection(
                ("127.0.0.1", port), timeout=timeout,
                source_address=(source, 0) if source else None)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        hdrs = {"Host": "127.0.0.1:%d" % port, "Upgrade": "websocket",
                "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13"}
        hdrs.update(headers or {})
        req = "GET %s HTTP/1.1\r\n" % path + "".join(
            "%s: %s\r\n" % kv for kv in hdrs.items() if kv[1] is not None)
        self.sock.sendall((req + "\r\n").encode())
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.body = b""
        if self.status != 101:
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill()
            self.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()
            ).digest()).decode()
            assert self.headers.get("sec-websocket-accept") == want

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read_n(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    @staticmethod
    def frame(opcode, payload=b"", fin=True, mask=True, rsv=0,
              length=None):
        if isinstance(payload, str):
            payload = payload.encode()
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            hdr += key
        return hdr + payload

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(self.frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send(0x1, text)

    def send_json(self, obj):
        self.send(0x1, json.dumps(obj))

    def recv(self):
        """(fin, opcode, payload bytes) of the next frame."""
        b0, b1 = self._read_n(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_n(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_n(8))[0]
        assert not b1 & 0x80, "server frames must not be masked"
        return bool(b0 & 0x80), b0 & 0x0F, self._read_n(n)

    def recv_json(self):
        """The next text message as JSON (skipping pings)."""
        while True:
            fin, op, data = self.recv()
            if op == 0x9:
                continue
            assert op == 0x1, "expected text, got opcode %d" % op
            return json.loads(data)

    def recv_close(self):
        """(code, reason) of the close frame, skipping other frames."""
        while True:
            fin, op, data = self.recv()
            if op == 0x8:
                if len(data) < 2:
                    return 1005, ""
                return struct.unpack("!H", data[:2])[0], \
                    data[2:].decode()

    def closed_by_peer(self, timeout=5):
        """True when the server closes the TCP connection in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


# ------------------------------------------------------------ clients
# One of each client helper for every suite: a raw client (RawWS) joined
# to a chat, a websockets (asyncio) one, and what a test waits for on
# them.
QUIET = 0.3   # how long "nothing more arrives" is watched for


def raw_ws(srv, chat, tok, query="", header=False, timeout=10,
           status=101, **kw):
    """A RawWS on srv's /ws/chat/{chat}/ with tok in the query, or in the
    Authorization header when header is true; query: more of the query
    ("&since=...").  The handshake must answer status (None: any)."""
    path = "/ws/chat/%s/" % chat
    headers = dict(kw.pop("headers", None) or {})
    if header:
        headers["Authorization"] = "Bearer " + tok
        if query:
            path += "?" + query.lstrip("&")
    else:
        path += "?token=%s%s" % (tok, query)
    ws = RawWS(srv.port, path, headers=headers, timeout=timeout, **kw)
    if status is not None and ws.status != status:
        ws.close()
        raise AssertionError("handshake answered %d, not %d: %r" %
                             (ws.status, status, ws.body))
    return ws


def silent(ws, wait=0.5):
    """True when no frame arrives on RawWS ws within wait seconds; a frame
    that does is an AssertionError naming it."""
    old = ws.sock.gettimeout()
    ws.sock.settimeout(wait)
    try:
        got = ws.recv_json()
    except OSError:
        return True
    finally:
        ws.sock.settimeout(old)
    raise AssertionError("unexpected frame: %r" % (got,))


async def connect(srv, chat, tok=None, header=False, **kw):
    """A websockets client on srv's /ws/chat/{chat}/: tok in the query, or
    in the Authorization header when header is true (no tok: none)."""
    import websockets
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 2)
    kw.setdefault("max_size", None)
    if header:
        kw["extra_headers"] = dict(kw.get("extra_headers") or {},
                                   Authorization="Bearer " + tok)
        return await websockets.connect(srv.ws_url(chat), **kw)
    return await websockets.connect(srv.ws_url(chat, tok), **kw)


async def recv_json(ws, timeout=5):
    """The next frame of websockets client ws, as JSON."""
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_message(ws, timeout=5):
    """The next frame, which must be a chat message: its inner object."""
    data = await recv_json(ws, timeout)
    assert set(data) == {"message"}, data
    return data["message"]


async def recv_error(ws, timeout=5):
    """The next frame, which must be an error: its text."""
    data = await recv_json(ws, timeout)
    assert set(data) == {"error"}, data
    return data["error"]


async def nothing_more(ws, wait=QUIET):
    """None when no frame arrives within wait, else the frame."""
    try:
        return await asyncio.wait_for(ws.recv(), wait)
    except asyncio.TimeoutError:
        return None


async def closed_with(ws, timeout=5):
    """(close code, reason, text frames seen first) once the server
    closes."""
    import websockets
    frames = []
    try:
        while True:
            frames.append(await asyncio.wait_for(ws.recv(), timeout))
    except websockets.ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), timeout)
    return ws.close_code, ws.close_reason, frames


def read_json_lines(path):
    """The JSON objects of a file with one per line (an audit trail);
    [] when it does not exist yet.  A last line without its newline is
    being written (the daemon appends while we read): left for the next
    read."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        text = f.read()
    lines = text.split("\n")[:-1]      # whole lines only
    return [json.loads(line) for line in lines if line.strip()]


def wait_for(pred, timeout=5, what="a condition"):
    """pred()'s first true value, polled every 50 ms for at most timeout
    seconds (for what no event tells: a log line, a file)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def run(coro, timeout=30):
    """Run an asyncio coroutine with a time bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ------------------------------------------------------------ TAP runner
class TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n = 0

    def _line(self, ok, test, extra=""):
        self.n += 1
        name = test.id().split(".", 1)[-1]
        print("%sok %d - %s%s" % ("" if ok else "not ", self.n, name, extra))
        sys.stdout.flush()

    def addSuccess(self, test):
        self._line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line(False, test)
        self._diag(err)

    def addError(self, test, err):
        super().addError(test, err)
        self._line(False, test)
        self._diag(err)

    def addSkip(self, test, reason):
        if os.environ.get("CI") == "true":
            self._line(False, test, " # skipped under CI: %s" % reason)
            self.failures.append((test, reason))
        else:
            self._line(True, test, " # SKIP %s" % reason)

    def addExpectedFailure(self, test, err):
        self._line(True, test, " # TODO expected failure")

    def addUnexpectedSuccess(self, test):
        self._line(False, test, " # unexpected success")

    def _diag(self, err):
        import traceback
        for line in "".join(traceback.format_exception(*err)).splitlines():
            print("# " + line)


def main(modules=None):
    """Run the calling module's tests (or those of the named modules),
    printing TAP.  A TestCase class with SQLITE_ONLY = True is left out
    when the suite runs against another backend."""
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite()
    for mod in modules or [sys.modules["__main__"]]:
        if isinstance(mod, str):
            mod = __import__(mod)
        for name in dir(mod):
            obj = getattr(mod, name)
            if isinstance(obj, type) and issubclass(obj, unittest.TestCase) \
                    and obj.__module__ == mod.__name__ and \
                    not (STORAGE != "sqlite" and
                         getattr(obj, "SQLITE_ONLY", False)):
                suite.addTests(loader.loadTestsFromTestCase(obj))
    result = TapResult()
    suite.run(result)
    print("1..%d" % result.n)
    sys.exit(0 if result.wasSuccessful() else 1)
