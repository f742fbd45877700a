#!/usr/bin/python3
"""carechat-bench smoke run: it works against the real daemon (every
message delivered, handshakes and RSS reported).  Not a speed test: the
figures are in doc/benchmarks.md, produced by `make bench`."""
import json
import os
import subprocess
import unittest

import ccharness as h

BENCH = os.path.join(h.BUILDDIR, "carechat-bench")


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

    def test_bad_secret_is_a_clear_error(self):
        r = subprocess.run([BENCH, "-p", str(self.srv.port), "-s",
                            "wrong-secret-0123456789abcdef0123", "-c",
                            "2", "-m", "1", "-d", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn(b"HTTP 401", r.stderr)


if __name__ == "__main__":
    h.main()
