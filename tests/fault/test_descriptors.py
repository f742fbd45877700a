#!/usr/bin/python3
"""Fault: a flood of connections past the daemon's open-file limit.

The limit is lowered on the running daemon (prlimit), as an operator's
mistake or a container's small default would leave it; one client then
opens 5,000 silent TCP connections and holds them for 6 s.  Established
WebSockets must keep delivering throughout, accepting must back off
instead of spinning (CPU) and say so once (log), and a new client must
be served as soon as the flood ends."""
import socket
import subprocess
import time

import ccharness as h
import faults as f

FLOOD = 5000
HOLD_S = 6.0
LIMIT = 3000


def open_silent(n, port, source="127.0.0.2"):
    """n TCP connections that never send a byte (non-blocking connects:
    the kernel completes them into the listen backlog or drops them)."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((source, 0))
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def healthy(srv):
    try:
        return srv.request("GET", "/healthz")[0] == 200
    except OSError:
        return False


class DescriptorFlood(f.FaultCase):

    def setUp(self):
        super().setUp()
        if not f.have("prlimit"):
            h.skip_or_fail("prlimit not installed (Debian: util-linux)")
        if f.raise_fd_limit() < FLOOD + 200:
            h.skip_or_fail("this process may not open %d sockets" % FLOOD)

    def test_flood_past_the_open_file_limit(self):
        srv = self.server()
        c = self.chatter(srv, interval=0.02)
        subprocess.run(["prlimit", "--pid", str(srv.proc.pid),
                        "--nofile=%d:%d" % (LIMIT, LIMIT)], check=True)
        meter = f.Meter(srv)
        start = time.time()
        socks = open_silent(FLOOD, srv.port)
        self.cleanups.append(lambda: [s.close() for s in socks])
        acked0, recv0 = c.counts()
        # Established WebSockets keep delivering during the flood.
        c.wait_acked(50, timeout=HOLD_S)
        c.wait_received(50, timeout=HOLD_S)
        time.sleep(max(0.0, HOLD_S - (time.time() - start)))
        acked1, recv1 = c.counts()
        for s in socks:
            s.close()
        ended = time.time()
        # A new client is served as soon as the flood ends.
        status, _, _ = srv.request("GET", "/healthz")
        served = time.time() - ended
        self.assertEqual(status, 200)
        self.assertLess(served, 1.0, "the first request after the flood "
                        "waited %.2f s" % served)
        w = h.World(srv)
        chat, pt, _, _, _ = w.pair()
        ws = h.raw_ws(srv, chat, pt)
        self.assertEqual(ws.status, 101)
        ws.close()
        self.assertGreater(acked1 - acked0, 100, "sends during the flood")
        self.assertGreater(recv1 - recv0, 100, "deliveries during the flood")
        self.assert_bounded(meter, cpu=1.5, lines=100, what="flood")
        self.assertIsNone(srv.proc.poll())
        self.assert_nothing_lost(c)
        log = srv.read_log()
        # The operator is told, once, and what the limit allows.
        self.assertIn("pausing new connections", log)
        self.assertIn("at most", log)

    def test_started_under_a_small_limit(self):
        """max_connections is cut to what the limit leaves at start, so a
        flood is closed at accept and the daemon keeps descriptors for
        itself: no accept ever fails, storage keeps working."""
        srv = h.Server({"server": {"log_level": "info",
                                   "max_connections": 5000}})
        srv.wrapper = ["prlimit", "--nofile=400:400", "--"]
        srv.start()
        self.cleanups.append(srv.close)
        log = srv.read_log()
        self.assertRegex(log, r"warn  server: max_connections = 5000 needs "
                         r"\d+ open files but the limit is 400: at most "
                         r"\d+ connections")
        c = self.chatter(srv, interval=0.02)
        meter = f.Meter(srv)
        socks = open_silent(1000, srv.port)
        self.cleanups.append(lambda: [s.close() for s in socks])
        c.wait_acked(30, timeout=5)
        c.wait_received(30, timeout=5)
        # Refused at the limit without a failed accept or a pause.
        time.sleep(0.5)
        new = "\n".join(meter.new_log())
        self.assertIn("new connections closed at accept", new)
        self.assertNotIn("pausing new connections", new)
        self.assert_bounded(meter, cpu=1.0, lines=40, what="small limit")
        for s in socks:
            s.close()
        self.wait_for(lambda: healthy(srv), what="served after the flood")
        self.assert_nothing_lost(c)


if __name__ == "__main__":
    f.main()
