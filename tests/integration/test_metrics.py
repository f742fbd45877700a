#!/usr/bin/python3
"""Operations: GET /metrics on the admin listener (Prometheus text
format, checked by promtool and scraped by a real Prometheus server) and
GET /readyz (storage, fan-out, accepting)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import ccharness as h


def get(port, path, timeout=5):
    """(status, headers, body text) of GET http://127.0.0.1:port/path."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            out[key] = float(val)
    return out


def chat(srv, world, n):
    """n messages from a patient to a professional over WebSockets; both
    stay joined (returned)."""
    chat_id, pt, rt, _, _ = world.pair()
    pat = h.raw_ws(srv, chat_id, pt)
    pro = h.raw_ws(srv, chat_id, rt)
    time.sleep(0.2)
    for i in range(n):
        pat.send_json({"content": "m%d" % i})
    for _ in range(n):
        assert "message" in pro.recv_json()
    return pat, pro


class Metrics(h.ServerCase):

    @classmethod
    def setUpClass(cls):
        cls.admin = h.free_port()
        cls.CONF = {"server": {"admin_listen": "127.0.0.1:%d" % cls.admin}}
        super().setUpClass()

    def test_only_on_the_admin_listener(self):
        st, _, _ = get(self.srv.port, "/metrics")
        self.assertEqual(st, 404, "not on the public port")
        st, hd, body = get(self.admin, "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hd["Content-Type"].startswith("text/plain; "
                                                      "version=0.0.4"))
        self.assertIn("carechat_build_info{", body)
        # The admin port serves no chat.
        st, _, _ = get(self.admin, "/chat/chats/")
        self.assertEqual(st, 404)

    def test_counters_move_with_traffic(self):
        before = samples(get(self.admin, "/metrics")[2])
        pat, pro = chat(self.srv, self.world, 25)
        after = samples(get(self.admin, "/metrics")[2])

        def moved(key):
            return after.get(key, 0) - before.get(key, 0)

        self.assertEqual(moved("carechat_messages_received_total"), 25)
        self.assertEqual(moved("carechat_messages_stored_total"), 25)
        # each message to both parties
        self.assertEqual(moved("carechat_messages_delivered_total"), 50)
        self.assertEqual(moved('carechat_handshakes_total{result="joined"}'),
                         2)
        self.assertGreaterEqual(
            moved('carechat_storage_seconds_count{op="append"}'), 25)
        ws = sum(v for k, v in after.items()
                 if k.startswith("carechat_websockets{"))
        self.assertGreaterEqual(ws, 2)
        self.assertGreater(moved("carechat_connections_accepted_total"), 0)
        self.assertIn('carechat_plugin_token_cache_misses_total{kind="auth",'
                      'plugin="jwt"}', after)
        self.assertIn('carechat_plugin_storage_queued_writes{kind="storage",'
                      'plugin="%s"}' % self.srv.storage, after)
        pat.close()
        pro.close()
        # A refused handshake is counted by its result.
        chat_id, _, _, _, _ = self.world.pair()
        ws = h.raw_ws(self.srv, chat_id, "bad")
        ws.recv_close()
        later = samples(get(self.admin, "/metrics")[2])
        self.assertEqual(later['carechat_handshakes_total'
                               '{result="unauthorized"}'] -
                         after['carechat_handshakes_total'
                               '{result="unauthorized"}'], 1)

    def test_promtool_finds_nothing_to_fix(self):
        promtool = shutil.which("promtool")
        if not promtool:
            h.skip_or_fail("promtool not installed (Debian: apt-get install "
                           "prometheus)")
        pat, pro = chat(self.srv, self.world, 3)
        body = get(self.admin, "/metrics")[2]
        r = subprocess.run([promtool, "check", "metrics"], input=body,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).strip(), "")
        pat.close()
        pro.close()

    def test_readyz(self):
        st, _, body = get(self.srv.port, "/readyz")
        self.assertEqual((st, json.loads(body)), (200, {"status": "ready"}))
        st, _, body = get(self.admin, "/readyz")
        self.assertEqual(st, 200)
        st, _, body = get(self.srv.port, "/healthz")
        self.assertEqual((st, json.loads(body)), (200, {"status": "ok"}))

    def test_no_token_in_metrics(self):
        chat_id, pt, _, _, _ = self.world.pair()
        self.srv.request("GET", "/chat/chats/?token=" + pt)
        body = get(self.admin, "/metrics")[2]
        self.assertNotIn(pt, body)


class Prometheus(unittest.TestCase):
    """Debian's prometheus scrapes carechatd's admin port; its HTTP API
    sees the target up and carechat's counters move after traffic."""

    def setUp(self):
        self.binary = shutil.which("prometheus")
        if not self.binary:
            h.skip_or_fail("prometheus not installed (Debian: apt-get "
                           "install prometheus)")
        self.admin = h.free_port()
        self.srv = h.Server({"server": {
            "admin_listen": "127.0.0.1:%d" % self.admin}}).start()
        self.addCleanup(self.srv.close)
        self.world = h.World(self.srv)
        self.tmp = tempfile.mkdtemp(prefix="carechat-prom-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.port = h.free_port()
        conf = os.path.join(self.tmp, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n"
                    "  - job_name: carechat\n"
                    "    static_configs:\n"
                    "      - targets: ['127.0.0.1:%d']\n" % self.admin)
        self.log = open(os.path.join(self.tmp, "prometheus.log"), "wb")
        self.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [self.binary, "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(self.tmp, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=self.log)
        self.addCleanup(self.stop)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def query(self, expr):
        """The instant vector of expr as {labels-json: value}."""
        url = "/api/v1/query?query=" + urllib.parse.quote(expr)
        st, _, body = get(self.port, url)
        if st != 200:
            return None
        data = json.loads(body)["data"]["result"]
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
                for r in data}

    def wait_for(self, expr, pred, timeout=30):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = self.query(expr)
            except OSError:
                last = None
            if last and pred(list(last.values())):
                return last
            time.sleep(0.5)
        with open(os.path.join(self.tmp, "prometheus.log"), "rb") as f:
            log = f.read().decode(errors="replace")[-2000:]
        self.fail("%s: %r within %d s\n%s" % (expr, last, timeout, log))

    def test_scraped_by_prometheus(self):
        self.wait_for('up{job="carechat"}', lambda v: v == [1.0], timeout=60)
        stored = 'carechat_messages_stored_total{job="carechat"}'
        self.wait_for(stored, lambda v: v == [0.0])
        pat, pro = chat(self.srv, self.world, 10)
        self.wait_for(stored, lambda v: v == [10.0])
        self.wait_for('sum(carechat_websockets{job="carechat"})',
                      lambda v: v == [2.0])
        self.wait_for('carechat_storage_seconds_count{job="carechat",'
                      'op="append"}', lambda v: v and v[0] >= 10)
        pat.close()
        pro.close()
        self.wait_for('sum(carechat_websockets{job="carechat"})',
                      lambda v: v == [0.0])


if __name__ == "__main__":
    h.main()
