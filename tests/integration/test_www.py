#!/usr/bin/python3
"""The demo page ([server] demo = yes), in Debian's Chromium driven by
playwright-core.

tests/browser/demo.mjs: a patient and a professional exchange messages
both ways; carechatd is restarted; the patient types while it is down;
after the page has reconnected by itself (with since) and sent its queue
(with client_id), both pages show every message exactly once, in order.

tests/browser/page.mjs: the page as a clinic hands it out, at 1280x800
and 390x844: a deep link opens a 200-message chat at its newest message,
marks it read, shows read ticks, typing, urgent messages, a refused
message that can be discarded or edited (and is never retried), names
instead of ids, no sideways scrolling, and axe-core finds no serious or
critical violation in either colour scheme.  The screenshots stay in
tests/browser/ of the build tree.

Also: the page is off by default, and what it is served with."""
import json
import os
import re
import shutil
import subprocess
import unittest
import uuid

import ccharness as h

PLAYWRIGHT_VERSION = "1.57.0"
AXE_VERSION = "4.14.1"
SIZES = ("1280x800", "390x844")


def node_module(name):
    """A module's directory: tests/browser/node_modules (npm install
    there), else npm's global one (tests/deps.sh)."""
    cands = [os.path.join(h.SRCDIR, "tests", "browser", "node_modules")]
    if shutil.which("npm"):
        r = subprocess.run(["npm", "root", "-g"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        cands.append(r.stdout.strip())
    for c in cands:
        d = os.path.join(c, name)
        if os.path.exists(os.path.join(d, "package.json")):
            return d
    return None


def playwright_core():
    return node_module("playwright-core")


def need_tickets(case, srv):
    """The page opens every WebSocket with a ticket: a storage plugin
    without them (ABI 1.4) fails the test with that reason, not with a
    browser's time-out."""
    st, _, body = srv.request("POST", "/chat/ws-ticket/", None,
                              token=h.token("ticket-probe"))
    case.assertEqual(st, 200, "POST /chat/ws-ticket/: %s %s (the page "
                     "needs a storage plugin with tickets, ABI 1.4)"
                     % (st, body))


def need_browser(axe=False):
    """playwright-core (and axe-core) and Chromium, or a skip (a failure
    under CI) with what to install."""
    if not playwright_core():
        h.skip_or_fail("playwright-core %s is not installed (npm "
                       "install -g playwright-core@%s; tests/deps.sh "
                       "does)" % (PLAYWRIGHT_VERSION, PLAYWRIGHT_VERSION))
    if axe and not node_module("axe-core"):
        h.skip_or_fail("axe-core %s is not installed (npm install -g "
                       "axe-core@%s; tests/deps.sh does)"
                       % (AXE_VERSION, AXE_VERSION))
    if not os.path.exists("/usr/bin/chromium"):
        h.skip_or_fail("chromium is not installed (Debian: apt-get "
                       "install chromium)")
    if not shutil.which("node"):
        h.skip_or_fail("node is not installed (Debian: apt-get install "
                       "nodejs)")


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
        # Every file of www/ is served (core/www.c's table), as its type.
        types = {".js": "text/javascript", ".css": "text/css",
                 ".html": "text/html"}
        for name in sorted(os.listdir(os.path.join(h.SRCDIR, "www"))):
            st, hd, _ = self.get("/" + name)
            self.assertEqual(
                (st, hd.get("content-type", "").split(";")[0]),
                (200, types[os.path.splitext(name)[1]]), name)
        # Nothing inline: the policy would refuse it.
        self.assertIsNone(re.search(rb"<script(?![^>]*\ssrc=)|<style|"
                                    rb"\sstyle=|\son[a-z]+=", body))
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
        need_browser()
        need_tickets(self, self.srv)
        mod = playwright_core()
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


class PageChecks(unittest.TestCase):
    """tests/browser/page.mjs, once for both sizes; each test reads its
    check of each size from the one result."""

    @classmethod
    def setUpClass(cls):
        cls.out = None
        cls.srv = h.Server({"server": {
            "demo": "yes", "demo_dir": os.path.join(h.SRCDIR, "www"),
            "message_rate": "0", "log_level": "info"}}).start()
        cls.slow = h.Server({"server": {
            "demo": "yes", "demo_dir": os.path.join(h.SRCDIR, "www"),
            "message_rate": "1", "message_burst": "1",
            "log_level": "info"}}).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.close()
        cls.slow.close()

    @staticmethod
    def seed(srv, n):
        """A patient named by a claim, a professional registered with a
        display name, and a chat of n messages (two in three the
        professional's); with n, also a chat with a nurse, three unread
        messages older than those: the ids, the tokens, the newest
        message's id."""
        admin = h.token("admin", admin=True)
        pat, pro = str(uuid.uuid4()), str(uuid.uuid4())
        for kind, pid, name in (("patient", pat, None),
                                ("professional", pro, "Dr. Ada Lovelace")):
            body = {"kind": kind, "id": pid}
            if name:
                body["display_name"] = name
            st, _, b = srv.request("POST", "/chat/profiles/", body,
                                   token=admin)
            assert st == 201, (st, b)
        pt = h.token("u-" + pat[:8], patient=pat, name="Sam Patel")
        rt = h.token("u-" + pro[:8], professional=pro)
        st, _, chat = srv.request("POST", "/chat/chats/",
                                  {"professional": pro}, token=pt)
        assert st == 201, (st, chat)
        if n:
            # A second chat, with a nurse, three messages unread, older
            # than the first chat's: opened from the list after it.
            nurse = str(uuid.uuid4())
            st, _, b = srv.request(
                "POST", "/chat/profiles/",
                {"kind": "professional", "id": nurse,
                 "display_name": "Nurse Jo Park"}, token=admin)
            assert st == 201, (st, b)
            nt = h.token("u-" + nurse[:8], professional=nurse)
            st, _, chat2 = srv.request("POST", "/chat/chats/",
                                       {"patient": pat}, token=nt)
            assert st == 201, (st, chat2)
            for i in range(3):
                st, _, m = srv.request(
                    "POST", "/chat/chats/%s/send_message/" % chat2["id"],
                    {"content": "From the nurse %d" % i}, token=nt)
                assert st == 201, (st, m)
            chat2_id = chat2["id"]
        last = None
        for i in range(n):
            st, _, m = srv.request(
                "POST", "/chat/chats/%s/send_message/" % chat["id"],
                {"content": "Message %d" % i}, token=rt if i % 3 else pt)
            assert st == 201, (st, m)
            last = m["id"]
        out = {"chat": chat["id"], "pt": pt, "rt": rt, "last": last}
        if n:
            out["chat2"] = chat2_id
        return out

    def result(self):
        """The browser's result, run once for the class."""
        need_browser(axe=True)
        need_tickets(self, self.srv)
        cls = type(self)
        if cls.out is not None:
            return cls.out
        data = {"url": "http://127.0.0.1:%d" % self.srv.port,
                "sizes": {s: self.seed(self.srv, 200) for s in SIZES}}
        cls.unread_before = {
            s: self.srv.request("GET", "/chat/chats/%s/" % d["chat"],
                                token=d["pt"])[2]["unread_count"]
            for s, d in data["sizes"].items()}
        rate = self.seed(self.slow, 0)
        rate["url"] = "http://127.0.0.1:%d" % self.slow.port
        data["rate"] = rate
        shots = os.path.join(h.BUILDDIR, "tests", "browser")
        os.makedirs(shots, exist_ok=True)
        env = dict(os.environ, PLAYWRIGHT_CORE=playwright_core(),
                   AXE_CORE=os.path.join(node_module("axe-core"),
                                         "axe.min.js"),
                   CC_PAGE=json.dumps(data), CC_SHOTS=shots)
        r = subprocess.run(
            ["node", os.path.join(h.SRCDIR, "tests", "browser", "page.mjs")],
            stdout=subprocess.PIPE, env=env, text=True, timeout=600)
        lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
        cls.out = json.loads(lines[-1]) if lines else {
            "failure": "no result from the browser: " + r.stdout[-2000:]}
        with open(os.path.join(shots, "page.json"), "w") as f:
            json.dump(cls.out, f, indent=1)
        return cls.out

    def checks(self, *names, sizes=SIZES):
        out = self.result()
        self.assertNotIn("failure", out, out.get("failure"))
        bad = []
        for s in sizes:
            for n in names:
                c = out.get(s, {}).get(n)
                if not c or not c["ok"]:
                    bad.append("%s %s: %s" % (
                        s, n, c["detail"] if c else "not run"))
        self.assertEqual(bad, [], "\n".join(bad))

    def test_deep_link_signs_in_and_opens_the_chat(self):
        self.checks("token_leaves_the_address_bar",
                    "deep_link_opens_the_chat")

    def test_newest_message_in_view_after_opening_200(self):
        self.checks("newest_message_in_view_on_open")

    def test_no_horizontal_scroll(self):
        self.checks("no_horizontal_scroll_on_open", "long_word_wraps",
                    "no_horizontal_scroll_at_the_end")

    def test_unread_cleared_on_open(self):
        self.checks("unread_cleared_on_open")
        self.assertTrue(all(n > 100 for n in self.unread_before.values()),
                        self.unread_before)
        self.checks("phone_back_to_the_list", sizes=("390x844",))
        self.checks("second_chat_read_on_open")

    def test_read_ticks_on_the_other_page(self):
        self.checks("read_ticks_on_the_other_page")

    def test_refused_message_discarded_or_edited(self):
        self.checks("refused_message_discarded", "refused_message_edited")

    def test_transient_refusals_retried(self):
        out = self.result()
        c = out.get("rate", {}).get("transient_refusals_retried")
        self.assertTrue(c and c["ok"], c)

    def test_names_dates_typing_urgent(self):
        self.checks("names_not_ids", "date_separator",
                    "sender_and_text_are_separate_phrases", "typing_shown",
                    "urgent_sent_and_marked",
                    "new_messages_control_when_scrolled_up")

    def test_sign_out_forgets_the_token(self):
        self.checks("sign_out_forgets_the_token")

    def test_axe_no_serious_or_critical(self):
        out = self.result()
        bad = []
        for s in SIZES:
            runs = out.get(s, {}).get("axe", [])
            self.assertTrue(runs, "axe did not run at %s" % s)
            for run in runs:
                for v in run["violations"]:
                    if v["impact"] in ("serious", "critical"):
                        bad.append("%s %s: %s (%s) %s" % (
                            s, run["where"], v["id"], v["impact"],
                            v["nodes"]))
        self.assertEqual(bad, [], "\n".join(bad))

    def test_no_page_errors_and_screenshots_kept(self):
        out = self.result()
        self.assertEqual(out.get("errors"), [])
        for s in SIZES:
            shot = os.path.join(h.BUILDDIR, "tests", "browser",
                                "page-%s.png" % s)
            self.assertTrue(os.path.exists(shot) and
                            os.path.getsize(shot) > 1000, shot)


if __name__ == "__main__":
    h.main()
