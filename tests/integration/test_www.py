#!/usr/bin/python3
"""The demo page ([server] demo = yes), in Debian's Chromium driven by
playwright-core (tests/browser/demo.mjs): a patient and a professional
exchange messages both ways; carechatd is restarted; the patient types
while it is down; after the page has reconnected by itself (with since)
and sent its queue (with client_id), both pages show every message
exactly once, in order.  A screenshot is kept (tests/browser/demo.png in
the build tree).  Also: the page is off by default, and what it is served
with."""
import json
import os
import shutil
import subprocess
import unittest

import ccharness as h

PLAYWRIGHT_VERSION = "1.57.0"


def playwright_core():
    """The playwright-core module directory: tests/browser/node_modules
    (npm install there), else npm's global one (tests/deps.sh)."""
    cands = [os.path.join(h.SRCDIR, "tests", "browser", "node_modules")]
    if shutil.which("npm"):
        r = subprocess.run(["npm", "root", "-g"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        cands.append(r.stdout.strip())
    for c in cands:
        d = os.path.join(c, "playwright-core")
        if os.path.exists(os.path.join(d, "package.json")):
            return d
    return None


class DemoPage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.srv = h.Server({"server": {
            "demo": "yes", "demo_dir": os.path.join(h.SRCDIR, "www"),
            "log_level": "info"}}).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()

    def get(self, path):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port,
                                       timeout=10)
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        c.close()
        return r.status, headers, body

    def test_served_with_a_strict_policy(self):
        st, hd, body = self.get("/")
        self.assertEqual(st, 200)
        self.assertTrue(hd["content-type"].startswith("text/html"))
        self.assertIn(b'role="log"', body)
        csp = hd["content-security-policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertEqual(hd["x-content-type-options"], "nosniff")
        st, hd, _ = self.get("/app.js")
        self.assertEqual((st, hd["content-type"].split(";")[0]),
                         (200, "text/javascript"))
        self.assertEqual(self.get("/../etc/passwd")[0], 404)
        self.assertEqual(self.get("/www/app.js")[0], 404)

    def test_off_by_default(self):
        srv = h.Server().start()
        try:
            st, _, body = srv.request("GET", "/")
            self.assertEqual((st, body), (404, {"error": "Not found"}))
        finally:
            srv.close()

    def test_missing_files_stop_the_start(self):
        srv = h.Server({"server": {"demo": "yes",
                                   "demo_dir": "/nonexistent/www"}})
        try:
            with self.assertRaises(RuntimeError) as cm:
                srv.start()
            self.assertIn("[server] demo: cannot read "
                          "/nonexistent/www/index.html", str(cm.exception))
        finally:
            srv.close()

    def test_two_people_and_a_restart(self):
        mod = playwright_core()
        if not mod:
            h.skip_or_fail("playwright-core %s is not installed (npm "
                           "install -g playwright-core@%s; tests/deps.sh "
                           "does)" % (PLAYWRIGHT_VERSION, PLAYWRIGHT_VERSION))
        if not os.path.exists("/usr/bin/chromium"):
            h.skip_or_fail("chromium is not installed (Debian: apt-get "
                           "install chromium)")
        chat, pt, rt, _, _ = h.World(self.srv).pair()
        shot = os.path.join(h.BUILDDIR, "tests", "browser", "demo.png")
        os.makedirs(os.path.dirname(shot), exist_ok=True)
        env = dict(os.environ, PLAYWRIGHT_CORE=mod, CC_PT=pt, CC_RT=rt,
                   CC_URL="http://127.0.0.1:%d" % self.srv.port,
                   CC_SHOT=shot)
        node = subprocess.Popen(
            ["node", os.path.join(h.SRCDIR, "tests", "browser", "demo.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        out = None
        try:
            for line in node.stdout:
                line = line.strip()
                if line == "STOP":
                    self.srv.stop()
                    node.stdin.write("STOPPED\n")
                    node.stdin.flush()
                elif line == "START":
                    self.srv.start()
                    node.stdin.write("STARTED\n")
                    node.stdin.flush()
                elif line.startswith("{"):
                    out = json.loads(line)
            node.wait(60)
        finally:
            if node.poll() is None:
                node.kill()
        self.assertIsNotNone(out, "no result from the browser")
        self.assertNotIn("failure", out, out.get("failure"))
        want = ["Hello, doctor", "Hello! How are you feeling?",
                "Typed offline 1", "Typed offline 2", "Typed offline 3"]
        self.assertEqual(out["patient"], want, "the patient's page")
        self.assertEqual(out["professional"], want, "the professional's")
        self.assertEqual(out["pending_while_offline"], 3,
                         "typed while offline: queued, shown as sending")
        self.assertIn("Offline", out["offline_status"])
        self.assertEqual(out["status_after"], "Connected")
        self.assertEqual(out["labels"], {"token": 1, "message": 1, "send": 1,
                                         "log": 1, "status": 1})
        self.assertFalse(out["token_in_url"], "the token left the URL bar")
        self.assertEqual(out["errors"], [])
        self.assertTrue(os.path.getsize(shot) > 1000)
        hist = h.history(self.srv, chat, pt)
        self.assertEqual([m["content"] for m in hist], want,
                         "history holds each once")
        self.assertTrue(all(m.get("client_id") for m in hist))
        self.assertNotIn(pt, self.srv.read_log(), "no token in the log")


if __name__ == "__main__":
    h.main()
