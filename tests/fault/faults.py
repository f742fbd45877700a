"""faults - one helper for fault cases (after SQLite's *fault.test and
Redis's tests/integration): a well-behaved client keeps chatting while a
case injects a fault (kill the daemon, stop a database, fill a disk,
lower a limit, flood it), and each case then states what must still
hold: every acknowledged message in history once and in order, nothing
refused shown to anyone, service back without a restart, and the log and
the daemon's CPU bounded over the fault.

A case is a short method on a FaultCase; adding a fault is adding one.
"""
import collections
import contextlib
import json
import os
import resource
import select
import subprocess
import threading
import time
import unittest

import ccharness as h

STORE_ERROR = {"error": "Message could not be stored; try again"}


def sanitized():
    """True for an --enable-sanitizers build (ASan slows the daemon down
    several times: CPU bounds are scaled for it, never dropped)."""
    with open(os.path.join(h.BUILDDIR, "carechatd"), "rb") as f:
        return b"__asan_init" in f.read()


CPU_SCALE = 4.0 if sanitized() else 1.0


def cpu_seconds(pid):
    """User + system CPU seconds of process pid so far (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_lines(srv):
    with open(srv.log_path, "rb") as f:
        return f.read().count(b"\n")


def raise_fd_limit():
    """This test process may need thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Meter:
    """The daemon's CPU seconds and log lines from now on."""

    def __init__(self, srv):
        self.srv = srv
        self.pid = srv.proc.pid
        self.cpu0 = cpu_seconds(self.pid)
        self.lines0 = log_lines(srv)
        self.t0 = time.time()

    def cpu(self):
        return cpu_seconds(self.pid) - self.cpu0

    def lines(self):
        return log_lines(self.srv) - self.lines0

    def new_log(self):
        """The log lines written since the meter started."""
        with open(self.srv.log_path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()[
                self.lines0:]


class Chatter:
    """A patient and a professional chatting throughout a fault.

    The patient sends one message every `interval` seconds over its
    WebSocket (or keeps `window` unanswered, for load) and waits for the
    answer: the message back (acknowledged)
    or an error frame (refused; a spec client shows it and lets the user
    resend).  The professional, on `recv_srv` (another node) or the same
    server, records every message it receives.  Either side whose
    connection is lost reconnects with backoff, as the spec asks, and
    carries on; a message whose answer was lost with the connection is
    "unknown" (it may or may not have been stored).  With `resume`, the
    professional reconnects with since=<the last message it got>, and
    must then get what it missed, once.  srv and recv_srv need only a
    port (a load balancer in front of nodes will do).
    """

    def __init__(self, srv, chat, pt, rt, interval=0.05, recv_srv=None,
                 label="chat", window=1, resume=False):
        self.srv, self.recv_srv = srv, recv_srv or srv
        self.chat, self.pt, self.rt = chat, pt, rt
        self.interval = interval
        self.window = window
        self.label = label
        self.resume = resume
        self.outcomes = []    # (time sent, acknowledged?) per answer
        self.acked = []       # message objects, in the order acknowledged
        self.refused = []     # contents answered with an error
        self.unknown = []     # contents whose answer was lost
        self.not_acked = set()  # refused + unknown
        self.errors = []      # the error frames themselves
        self.received = []    # message objects the professional got
        self.reconnects = 0
        self.recv_reconnects = 0  # the professional's lost connections
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()   # the professional's side
        self.send_stop = threading.Event()
        self.recv_joined = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._recv, daemon=True)]

    # -------------------------------------------------------- running
    def start(self):
        """The professional joins first, so it can see every message."""
        self.threads[1].start()
        if not self.recv_joined.wait(15):
            raise AssertionError("%s: the professional could not join" %
                                 self.label)
        self.threads[0].start()
        self.wait_acked(3)
        return self

    def stop(self):
        """Stop sending; give the professional a moment for the last
        acknowledged message; then stop receiving."""
        self.send_stop.set()
        self.threads[0].join(20)
        with self.lock:
            last = self.acked[-1]["id"] if self.acked else None
        deadline = time.time() + 3
        while last and time.time() < deadline:
            with self.lock:
                if any(m["id"] == last for m in self.received[-50:]):
                    break
            time.sleep(0.02)
        self.stop_ev.set()
        self.threads[1].join(20)

    def wait_acked(self, n, timeout=30):
        """Wait until n more messages are acknowledged than now."""
        self._wait_more(self.acked, n, timeout, "acknowledged")

    def wait_received(self, n, timeout=30):
        """Wait until the professional has received n more than now."""
        self._wait_more(self.received, n, timeout, "received")

    def _wait_more(self, items, n, timeout, what):
        with self.lock:
            want = len(items) + n
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(items) >= want:
                    return
            time.sleep(0.02)
        raise AssertionError("%s: %d %s, %d wanted; last errors %s" %
                             (self.label, len(items), what, want,
                              self.errors[-3:]))

    def counts(self):
        with self.lock:
            return len(self.acked), len(self.received)

    def _connect(self, srv, tok, stop, extra=""):
        delay = 0.05
        while not stop.is_set():
            try:
                ws = h.raw_ws(srv, self.chat, tok, query=extra, timeout=5,
                              status=None)
                if ws.status == 101:
                    return ws
                ws.close()
            except (OSError, EOFError, ValueError, IndexError):
                pass
            stop.wait(delay)
            delay = min(delay * 2, 0.5)
        return None

    def _send(self):
        """Send, keeping up to `window` messages unanswered; the server
        answers a connection's messages in the order they were sent."""
        i, ws, inflight = 0, None, collections.deque()
        while not self.send_stop.is_set():
            if ws is None:
                ws = self._connect(self.srv, self.pt, self.send_stop)
                if ws is None:
                    return
                ws.sock.settimeout(10)
            try:
                while len(inflight) < self.window:
                    content = "%s %d" % (self.label, i)
                    i += 1
                    ws.send_json({"content": content})
                    inflight.append((time.time(), content))
                got = ws.recv_json()
                while "message" in got and not self._answer(got):
                    got = ws.recv_json()
            except (OSError, EOFError, AssertionError, ValueError):
                with self.lock:
                    self.unknown += [text for _, text in inflight]
                    self.not_acked.update(text for _, text in inflight)
                    self.reconnects += 1
                inflight.clear()
                ws.close()
                ws = None
                continue
            sent_at, content = inflight.popleft()
            with self.lock:
                if "message" in got:
                    assert got["message"]["content"] == content, \
                        (got, content)
                    self.acked.append(got["message"])
                    self.outcomes.append((sent_at, True))
                else:
                    self.refused.append(content)
                    self.not_acked.add(content)
                    self.errors.append(got)
                    self.outcomes.append((sent_at, False))
            if self.interval:
                self.send_stop.wait(self.interval)
        with self.lock:  # stopped with answers outstanding
            self.unknown += [text for _, text in inflight]
        if ws:
            ws.close()

    def _answer(self, got):
        """False for a message frame that is not the answer to one of
        ours: another sender's in this chat, or one of ours that was
        refused or lost its answer and was stored all the same (a COMMIT
        cut short by a failover), which the node delivers from history
        when it fills the gap in the chat's sequence."""
        content = got["message"]["content"]
        if not content.startswith(self.label + " "):
            return False
        with self.lock:
            return content not in self.not_acked

    def sent_after(self, t):
        """(acknowledged, refused) counts of messages sent after time t."""
        with self.lock:
            done = [ok for at, ok in self.outcomes if at > t]
        return done.count(True), done.count(False)

    def _recv(self):
        ws = None
        while not self.stop_ev.is_set():
            if ws is None:
                with self.lock:
                    since = "&since=" + self.received[-1]["id"] \
                        if self.resume and self.received else ""
                ws = self._connect(self.recv_srv, self.rt, self.stop_ev,
                                   since)
                if ws is None:
                    return
                self.recv_joined.set()
                ws.sock.settimeout(10)
            # Wait in short steps (to see stop), then read whole frames.
            if not ws.buf and not select.select([ws.sock], [], [], 0.5)[0]:
                continue
            try:
                got = recv_answering_pings(ws)
            except (OSError, EOFError, AssertionError, ValueError):
                ws.close()
                ws = None
                with self.lock:
                    self.recv_reconnects += 1
                continue
            if got and "message" in got:
                with self.lock:
                    self.received.append(got["message"])
        if ws:
            ws.close()


def recv_answering_pings(ws):
    """The next frame on ws: a text message as JSON, or None for a ping,
    answered as a browser does (a professional idle through a long
    outage is pinged every ping_interval and dropped without a pong)."""
    fin, op, data = ws.recv()
    if op == 0x9:
        ws.send(0xA, data)
        return None
    assert op == 0x1, "expected text, got opcode %d" % op
    return json.loads(data)


class RestProbe:
    """A REST client reading history and sending a message in turn every
    `interval` seconds, recording (time issued, what, status) of each."""

    def __init__(self, srv, chat, tok, interval=0.02):
        self.srv, self.chat, self.tok = srv, chat, tok
        self.interval = interval
        self.results = []
        self.sent = []        # ids of the messages it sent (201)
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.thread.join(20)

    def _run(self):
        i = 0
        while not self.stop_ev.is_set():
            at = time.time()
            if i % 2:
                what = "POST send_message"
                path = "/chat/chats/%s/send_message/" % self.chat
                body = {"content": "rest %d" % i}
            else:
                what = "GET messages"
                path = "/chat/chats/%s/messages/?page_size=5" % self.chat
                body = None
            try:
                st, _, got = self.srv.request("POST" if body else "GET",
                                              path, body, token=self.tok)
            except (OSError, ValueError) as e:
                st, got = repr(e), None
            self.results.append((at, what, st))
            if st == 201:
                self.sent.append(got["id"])
            i += 1
            self.stop_ev.wait(self.interval)

    def after(self, t):
        """(what, status) of the requests issued after time t."""
        return [(w, st) for at, w, st in self.results if at > t]


class FaultCase(unittest.TestCase):
    """Servers and chatters made by a case are cleaned up after it."""

    def setUp(self):
        self.cleanups = []
        self.servers = []

    def tearDown(self):
        if self.failed():
            for srv in self.servers:
                self.print_log_tail(srv)
        for fn in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                fn()

    def failed(self):
        result = getattr(self._outcome, "result", None)
        return result is not None and any(
            t is self for t, _ in result.failures + result.errors)

    @staticmethod
    def print_log_tail(srv, n=25):
        """The last lines of srv's log but access lines, as TAP notes."""
        with contextlib.suppress(OSError):
            lines = [l for l in srv.read_log().splitlines()
                     if ' "GET ' not in l and ' "POST ' not in l]
            print("# --- %s (last %d lines)" % (srv.log_path, n))
            for line in lines[-n:]:
                print("#   " + line[:300])

    def server(self, conf=None, **kw):
        conf = dict(conf or {})
        conf.setdefault("server", {})
        # The level an operator runs at: the bounds are about that log.
        conf["server"].setdefault("log_level", "info")
        srv = h.Server(conf, **kw).start()
        self.cleanups.append(srv.close)
        self.servers.append(srv)
        return srv

    def probe(self, srv, interval=0.02):
        """A RestProbe on a chat of its own."""
        chat, pt, _, _, _ = h.World(srv).pair()
        p = RestProbe(srv, chat, pt, interval=interval).start()
        self.cleanups.append(p.stop)
        return p

    def chatter(self, srv, recv_srv=None, interval=0.05, label="chat",
                window=1):
        chat, pt, rt, _, _ = h.World(srv).pair()
        c = Chatter(srv, chat, pt, rt, interval=interval,
                    recv_srv=recv_srv, label=label, window=window)
        self.cleanups.append(c.stop)
        return c.start()

    # ------------------------------------------------------ assertions
    def assert_nothing_lost(self, c, srv=None, refused_may_be_stored=False):
        """Every acknowledged message is in history once, in the order
        acknowledged; nothing refused is there (refused_may_be_stored: a
        database that went away under a COMMIT may have stored what it
        could not confirm: then a refusal is "unknown"); the professional
        saw nothing twice, nothing out of order, nothing not stored."""
        c.stop()
        hist = h.history(srv or c.srv, c.chat, c.pt)
        ids = [m["id"] for m in hist]
        self.assertEqual(len(ids), len(set(ids)), "a message stored twice")
        pos = {m["id"]: i for i, m in enumerate(hist)}
        lost = [m for m in c.acked if m["id"] not in pos]
        self.assertEqual(lost[:5], [], "%d acknowledged messages lost" %
                         len(lost))
        order = [pos[m["id"]] for m in c.acked]
        self.assertEqual(order, sorted(order), "acknowledged out of order")
        contents = {m["content"] for m in hist}
        if not refused_may_be_stored:
            stored = [t for t in c.refused if t in contents]
            self.assertEqual(stored[:5], [], "refused messages stored")
        acked_or_unknown = {m["content"] for m in c.acked} | set(c.unknown)
        if refused_may_be_stored:
            acked_or_unknown |= set(c.refused)
        strange = [m["content"] for m in hist
                   if m["content"] not in acked_or_unknown]
        self.assertEqual(strange[:5], [], "history holds messages nobody "
                         "sent")
        got = [m["id"] for m in c.received]
        self.assertEqual(len(got), len(set(got)), "delivered twice")
        unstored = [mid for mid in got if mid not in pos]
        self.assertEqual(unstored[:5], [], "delivered but not stored")
        rpos = [pos[mid] for mid in got]
        self.assertEqual(rpos, sorted(rpos), "delivered out of order")
        return hist

    def assert_bounded(self, meter, cpu, lines, what):
        """The daemon's CPU seconds and log lines over the fault."""
        used, n = meter.cpu(), meter.lines()
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# %s: %.2f s CPU, %d log lines" % (what, used, n))
        self.assertLess(used, cpu * CPU_SCALE,
                        "%s: the daemon used %.2f s of CPU" % (what, used))
        self.assertLess(n, lines, "%s: %d log lines:\n%s" % (
            what, n, "\n".join(meter.new_log()[:40])))

    def assert_all_delivered(self, c, srv=None, refused_may_be_stored=False,
                             reconnected=False):
        """assert_nothing_lost, and the professional got every message
        acknowledged (live, or on resuming); unless `reconnected`,
        neither side's connection dropped."""
        self.assert_nothing_lost(c, srv, refused_may_be_stored)
        got = {m["id"] for m in c.received}
        missed = [m["content"] for m in c.acked if m["id"] not in got]
        self.assertEqual(missed, [], "%s: missed, of %d (the professional "
                         "reconnected %d times)" % (
                             c.label, len(c.acked), c.recv_reconnects))
        if not reconnected:
            self.assertEqual((c.reconnects, c.recv_reconnects), (0, 0),
                             "%s: connections dropped" % c.label)

    def wait_delivered(self, chatters, timeout):
        """Wait until each chatter's professional has every message its
        patient had acknowledged when this was called."""
        want = []
        for c in chatters:
            with c.lock:
                want.append({m["id"] for m in c.acked})
        self.wait_for(lambda: all(
            w <= {m["id"] for m in c.received}
            for c, w in zip(chatters, want)), timeout=timeout,
            what="every acknowledged message to be delivered")

    def wait_for(self, pred, timeout=20, what="condition"):
        return wait_until(pred, timeout, what)


def wait_until(pred, timeout=20, what="condition", step=0.05):
    """pred()'s first true value, polled every `step` seconds; an
    AssertionError after timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("timed out after %s s waiting for %s" %
                         (timeout, what))


def need_plugin(name, library):
    """Skip (fail under CI) when plugins/<name>.so was not built because
    configure did not find library."""
    if not os.path.exists(os.path.join(h.BUILDDIR, "plugins", ".libs",
                                       name + ".so")):
        h.skip_or_fail("the %s plugin was not built (configure found no "
                       "%s)" % (name, library))


def need_root(what):
    if os.geteuid() != 0:
        h.skip_or_fail("%s needs root (run the suite as root)" % what)


def have(cmd):
    return subprocess.run(["sh", "-c", "command -v " + cmd],
                          stdout=subprocess.DEVNULL).returncode == 0


main = h.main


def readyz(srv):
    """(status, reason or "") of GET /readyz."""
    st, _, body = srv.request("GET", "/readyz")
    return st, (body or {}).get("reason", "")


def wait_readyz(srv, want, timeout=10):
    """Poll /readyz until it answers want (or timeout): (status, reason)."""
    deadline = time.time() + timeout
    while True:
        st, why = readyz(srv)
        if st == want or time.time() > deadline:
            return st, why
        time.sleep(0.1)
