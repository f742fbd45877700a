#!/usr/bin/python3
"""carechat-bench smoke run: it works against the real daemon (every
message delivered, handshakes and RSS reported).  Not a speed test: the
figures are in doc/benchmarks.md, produced by `make bench`."""
import json
import os
import socket
import subprocess
import sys
import time
import unittest

import ccharness as h

BENCH = os.path.join(h.BUILDDIR, "carechat-bench")
MINCLIENT = os.path.join(h.BUILDDIR, "tests", "bench", "minclient")
ECHOPEER = os.path.join(h.BUILDDIR, "tests", "bench", "echopeer")
# The latency comparison's rate (messages/s in all) and seconds: the
# issue's 5,000/s; lower it on a crowded machine, for both alike.
RATE = int(os.environ.get("CC_BENCH_RATE", "5000"))
SECONDS = os.environ.get("CC_BENCH_SECONDS", "3")


def rss_kib(pid):
    """VmRSS of process pid, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def assert_shares_add_up(tc, out):
    """The machine's busy and stolen shares hold the servers' and the
    bench's own (they count every process), to a clock tick (1/100 s)
    for each of the three counts, which the kernel rounds and which are
    read a few microseconds apart."""
    slack = 100.0 * 3 / (out["duration_s"] * 100 * out["cpus"])
    tc.assertGreaterEqual(out["cpu_busy_pct"] + out["cpu_steal_pct"] +
                          slack, out["cpu_server_pct"] +
                          out["cpu_bench_pct"], out)
    return slack


def all_delivered(tc, r):
    """The JSON of a finished messages run (subprocess result r), checked:
    exit 0, over 100 messages, each delivered to both parties, no error
    frame, no unexpected close."""
    tc.assertEqual(r.returncode, 0, r.stdout + r.stderr)
    out = json.loads(r.stdout)
    tc.assertGreater(out["sent"], 100)
    tc.assertEqual(out["lost"], 0)
    tc.assertEqual(out["deliveries"], 2 * out["sent"])
    tc.assertEqual(out["errors"] + out["unexpected_closes"], 0)
    return out


class BenchSmoke(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server({"server": {"log_level": "warn"}}).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def bench(self, *args):
        r = subprocess.run([BENCH, "-p", str(self.srv.port), "-s", h.SECRET,
                            "--pid", str(self.srv.proc.pid), "--json"] +
                           list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertIn(r.returncode, (0, 1), r.stderr.decode())
        return r.returncode, json.loads(r.stdout)

    def test_messages_all_delivered(self):
        rc, out = self.bench("-c", "12", "-m", "6", "-d", "1", "-w", "4")
        self.assertEqual(rc, 0, out)
        self.assertGreater(out["sent"], 100)
        self.assertEqual(out["deliveries"], out["expected_deliveries"])
        # Each message reaches both devices of its chat: sender included.
        self.assertEqual(out["expected_deliveries"], 2 * out["sent"])
        self.assertEqual(out["lost"], 0)
        self.assertEqual(out["errors"], 0)
        self.assertEqual(out["unexpected_closes"], 0)
        self.assertGreater(out["latency_us"]["max"], 0)
        self.assertLessEqual(out["latency_us"]["p50"],
                             out["latency_us"]["p99"])
        # The machine's CPU over the run, from /proc/stat: the bench and
        # the server kept it busy; steal (a VM's lost time) is a share.
        self.assertGreater(out["cpu_busy_pct"], 0)
        self.assertLessEqual(out["cpu_busy_pct"], 100)
        self.assertGreaterEqual(out["cpu_steal_pct"], 0)
        self.assertLessEqual(out["cpu_busy_pct"] + out["cpu_steal_pct"], 100)

    def test_cpu_shares_add_up(self):
        """Under a flood the machine's busy and stolen shares (clock
        minus idle, /proc/stat) hold the server's and the bench's own
        (/proc/PID/stat): they count every process.  Not busy alone:
        under heavy steal it fell short once (busy 50.2% + 27.0% stolen
        against 43.5% + 8.3%), likely a vCPU held while waking from idle,
        which the guest counts as idle and as stolen both.  Slack: a clock tick (1/100 s) for each of the
        three counts, which the kernel rounds and which are read a few
        microseconds apart."""
        rc, out = self.bench("-c", "20", "-m", "10", "-d", "2", "-w", "4")
        self.assertEqual(rc, 0, out)
        self.assertGreater(out["cpus"], 0)
        self.assertGreater(out["cpu_server_pct"], 0)
        self.assertGreater(out["cpu_bench_pct"], 0)
        slack = assert_shares_add_up(self, out)
        self.assertLessEqual(out["cpu_busy_pct"] + out["cpu_steal_pct"],
                             100.0 + slack)
        print("# CPU over 2 s of flood: machine %.1f%% busy, %.1f%% stolen; "
              "carechatd %.1f%%, carechat-bench %.1f%%" % (
                  out["cpu_busy_pct"], out["cpu_steal_pct"],
                  out["cpu_server_pct"], out["cpu_bench_pct"]),
              file=sys.stderr)

    def test_fixed_rate(self):
        rc, out = self.bench("-c", "4", "-m", "2", "-d", "1", "-r", "200")
        self.assertEqual(rc, 0, out)
        self.assertGreater(out["sent"], 100)
        self.assertLess(out["sent"], 300)
        self.assertEqual(out["lost"], 0)

    def test_handshakes(self):
        rc, out = self.bench("--handshakes", "-c", "20", "-m", "10", "-d",
                             "1", "--pending", "8")
        self.assertEqual(rc, 0, out)
        self.assertGreater(out["handshakes"], 20)
        self.assertEqual(out["handshake_failures"], 0)
        self.assertGreater(out["handshakes_per_s"], 0)

    def test_idle_reports_rss(self):
        rc, out = self.bench("--idle", "-c", "50", "-m", "25", "-d",
                             "0.5")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["open"], 50)
        self.assertGreater(out["server_rss_kib"], 0)

    def test_latency_beside_a_minimal_client(self):
        """carechat-bench and tests/bench/minclient, one after the other,
        the same 100 chats (200 sockets) on the same server at the same
        rate: both deliver every message; their p50s are printed, not
        compared (the machine is shared: doc/benchmarks.md has the
        comparison, measured when it was quiet)."""
        world = h.World(self.srv)
        tokens = os.path.join(self.srv.tmp, "tokens")
        with open(tokens, "w") as f:
            for _ in range(100):
                chat, pt, rt, _, _ = world.pair()
                f.write("%s %s %s\n" % (chat, pt, rt))
        rc, out = self.bench("--tokens-file", tokens, "-c", "200", "-m",
                             "100", "-r", str(RATE), "-d", SECONDS)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["lost"], 0)
        self.assertEqual(out["deliveries"], 2 * out["sent"])
        r = subprocess.run([MINCLIENT, str(self.srv.port), tokens,
                            str(RATE), SECONDS], stdout=subprocess.PIPE,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout)
        mc = json.loads(r.stdout)
        self.assertEqual(mc["connections"], 200)
        self.assertGreater(mc["sent"], 0)
        self.assertEqual(mc["deliveries"], mc["expected_deliveries"])
        print("# %d messages/s, 200 sockets, 100 chats: carechat-bench "
              "p50 %.0f us p99 %.0f us; minclient p50 %.0f us p99 %.0f us "
              "(figures only: a shared machine)" %
              (RATE, out["latency_us"]["p50"], out["latency_us"]["p99"],
               mc["latency_us"]["p50"], mc["latency_us"]["p99"]),
              file=sys.stderr)

    def test_bad_secret_is_a_clear_error(self):
        r = subprocess.run([BENCH, "-p", str(self.srv.port), "-s",
                            "wrong-secret-0123456789abcdef0123", "-c",
                            "2", "-m", "1", "-d", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"HTTP 401", r.stderr)


class TwoNodes(unittest.TestCase):
    """Two carechatd nodes on one SQLite file with the redis fan-out and a
    real redis-server; -H twice puts each chat's patient on one node and
    its professional on the other: every message reaches both."""

    @classmethod
    def setUpClass(cls):
        plugin = os.path.join(h.BUILDDIR, "plugins", ".libs",
                              "fanout-redis.so")
        if not os.path.exists(plugin):
            h.skip_or_fail("the redis plugin was not built (no hiredis)")
        cls.redis = h.RedisServer()
        cls.tmp = h.tempfile.mkdtemp(prefix="carechat-bench-nodes-")
        conf = {"server": {"log_level": "warn"},
                "storage": {"plugin": "sqlite",
                            "path": os.path.join(cls.tmp, "shared.db")},
                "fanout": {"plugin": "redis",
                           "address": cls.redis.address()}}
        cls.nodes = [h.Server(conf, storage="sqlite").start()
                     for _ in range(2)]

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            n.close()
        cls.redis.close()
        h.shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_parties_on_two_nodes_all_delivered(self):
        hosts = []
        for n in self.nodes:
            hosts += ["-H", "127.0.0.1:%d" % n.port,
                      "--pid", str(n.proc.pid)]
        r = subprocess.run([BENCH, "-s", h.SECRET, "--json", "-c", "40",
                            "-m", "20", "-w", "4", "-d", "2"] + hosts,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        out = all_delivered(self, r)
        for n in self.nodes:
            self.assertIsNone(n.proc.poll(), "carechatd exited")
        # --pid once per node: the servers' figures are both nodes'.
        rss = [rss_kib(n.proc.pid) for n in self.nodes]
        self.assertLess(abs(out["server_rss_kib"] - sum(rss)),
                        0.25 * sum(rss), (out["server_rss_kib"], rss))
        self.assertGreater(out["cpu_server_pct"], 0)
        assert_shares_add_up(self, out)
        print("# two nodes, redis fan-out: %d messages, p50 %.0f us "
              "(figures only)" % (out["sent"], out["latency_us"]["p50"]),
              file=sys.stderr)


class Wss(unittest.TestCase):
    """--tls: set-up over https and every WebSocket over wss, verified
    with --cafile (the certificates of test_tls.py)."""

    @classmethod
    def setUpClass(cls):
        import test_tls
        cls.pki = test_tls.Pki()
        cls.srv = test_tls.tls_server(cls.pki, log_level="warn").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.pki.close()

    def wss_bench(self, *args):
        return subprocess.run([BENCH, "-p", str(self.srv.tls_port), "-s",
                               h.SECRET, "--tls", "--json"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=120)

    def test_messages_over_wss_all_delivered(self):
        all_delivered(self, self.wss_bench("--cafile", self.pki.path(
            "ca.pem"), "-c", "20", "-m", "10", "-w", "4", "-d", "2"))

    def test_handshakes_name_tls_and_resume(self):
        """--handshakes over TLS names what was negotiated (the test
        server's certificate is EC P-256); with --resume every connection
        after its first offers its last session, as a reconnecting phone
        does, and carechatd resumes it (its session cache)."""
        args = ["--cafile", self.pki.path("ca.pem"), "--handshakes", "-c",
                "4", "-m", "2", "--pending", "2", "-d", "1"]
        r = self.wss_bench(*args)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertGreater(out["handshakes"], 4)
        self.assertEqual(out["tls_protocol"], "TLSv1.3")
        self.assertRegex(out["tls_certificate"], r"^EC prime256v1 256 bits$")
        self.assertNotIn(out["tls_group"], ("", "?"))
        self.assertEqual(out["tls_resumed"], 0)
        r = self.wss_bench(*(args + ["--resume"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        full = out["handshakes"] - out["tls_resumed"]
        self.assertGreater(out["handshakes"], 8)
        self.assertLessEqual(full, 4 + out["handshakes"] // 10, out)
        print("# TLS handshakes: %s, %s, %s; %d of %d resumed" % (
            out["tls_protocol"], out["tls_group"], out["tls_certificate"],
            out["tls_resumed"], out["handshakes"]), file=sys.stderr)

    def test_unverified_server_is_a_clear_error(self):
        """Without --cafile the test CA is unknown: the bench stops."""
        r = self.wss_bench("-c", "2", "-m", "1", "-d", "0.5")
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"TLS handshake", r.stderr)


class HarnessFloor(unittest.TestCase):
    """carechat-bench against tests/bench/echopeer, which only hands each
    message back to the chat's members: what the harness costs alone
    (doc/benchmarks.md, "The harness floor").  Figures printed only."""

    @classmethod
    def setUpClass(cls):
        cls.port = h.free_port()
        cls.peer = subprocess.Popen([ECHOPEER, str(cls.port)])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", cls.port), 1).close()
                break
            except OSError:
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        cls.peer.terminate()
        cls.peer.wait(10)

    def test_floor_at_the_latency_rate(self):
        r = subprocess.run([BENCH, "-p", str(self.port), "-s", "unused",
                            "-c", "200", "-m", "100", "-r", str(RATE), "-d",
                            SECONDS, "--json"], stdout=subprocess.PIPE,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout)
        out = json.loads(r.stdout)
        self.assertGreater(out["sent"], 0)
        self.assertEqual(out["lost"], 0)
        self.assertEqual(out["deliveries"], 2 * out["sent"])
        self.assertEqual(out["errors"] + out["protocol_errors"], 0)
        print("# harness floor, %d messages/s against echopeer: p50 %.0f "
              "us p99 %.0f us (figures only)" % (
                  RATE, out["latency_us"]["p50"], out["latency_us"]["p99"]),
              file=sys.stderr)


if __name__ == "__main__":
    h.main()
