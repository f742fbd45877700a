#!/usr/bin/python3
"""Reaching whoever is not connected (issue 26): [notify] with the
webhook plugin, against a webhook sink of a few lines (below).

What a hospital relies on:
  - a message still unread `delay` after it was stored notifies its
    recipient once per chat until they read; reading in time, nothing;
  - an urgent one notifies at once, then every `urgent_repeat` while
    unread, `urgent_max` times at most, and stops once read;
  - the POST is signed (X-Carechat-Signature: sha256=HMAC of the body)
    and carries ids and counts: never content, never a token;
  - a failed delivery is tried again with the same id, and dropped after
    `max_age` (a log line, a metric);
  - what is due survives kill -9, and with two nodes on one storage each
    notification is sent by exactly one of them.
"""
import hashlib
import hmac
import http.server
import json
import os
import signal
import threading
import time
import unittest

import ccharness as h

WEBHOOK_SECRET = "webhook-test-secret-0123456789abcdef-0123"
BODY_KEYS = {"id", "event", "chat_id", "recipient", "first_unread", "unread",
             "urgent", "at"}


class Sink:
    """An HTTP receiver on 127.0.0.1: records each POST; answers with
    self.status (200 unless a test says otherwise)."""

    def __init__(self):
        self.posts = []
        self.status = 200
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with sink.lock:
                    sink.posts.append((dict(self.headers), body))
                    code = sink.status
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/hook" % self.port

    def bodies(self):
        with self.lock:
            return [json.loads(b) for _, b in self.posts]

    def wait(self, n, timeout=10):
        return h.wait_for(lambda: len(self.bodies()) >= n and self.bodies(),
                          timeout, "%d webhook POST(s)" % n)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def need_plugin():
    if not h.plugin_built("notify-webhook"):
        h.skip_or_fail("the webhook notify plugin was not built (configure "
                       "found no libcurl; Debian: libcurl4-openssl-dev)")


def notify_conf(tmp, sink, **keys):
    path = os.path.join(tmp, "webhook-secret")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
              "w") as f:
        f.write(WEBHOOK_SECRET)
    conf = {"plugin": "webhook", "url": sink.url(), "secret_file": path,
            "delay": "1s", "urgent_repeat": "1s", "urgent_max": "3"}
    conf.update(keys)
    return {"notify": conf}


class NotifyCase(unittest.TestCase):
    """A fresh server and sink per test; KEYS: more [notify] keys."""
    KEYS = {}

    def setUp(self):
        need_plugin()
        self.sink = Sink()
        self.addCleanup(self.sink.close)
        self.tmp = h.tempfile.mkdtemp(prefix="carechat-notify-")
        self.srv = h.Server(notify_conf(self.tmp, self.sink,
                                        **self.KEYS)).start()
        self.addCleanup(h.stop_checked, self.srv)
        self.world = h.World(self.srv)
        self.chat, self.pt, self.rt, self.pat, self.pro = self.world.pair()

    def send(self, content, tok=None, **extra):
        st, _, body = self.srv.request(
            "POST", "/chat/chats/%s/send_message/" % self.chat,
            dict(content=content, **extra), token=tok or self.pt)
        self.assertEqual(st, 201, body)
        return body

    def read(self, tok=None):
        st, _, body = self.srv.request(
            "POST", "/chat/chats/%s/mark_read/" % self.chat,
            token=tok or self.rt)
        self.assertEqual(st, 200, body)

    def quiet(self, n, wait):
        """No more than n POSTs arrive within wait seconds."""
        time.sleep(wait)
        self.assertEqual(len(self.sink.bodies()), n, self.sink.bodies())


class Notifications(NotifyCase):

    def test_unread_notifies_once_per_episode(self):
        secret_text = "blood results for room 12"
        m = self.send(secret_text)
        [b] = self.sink.wait(1)
        headers, raw = self.sink.posts[0]
        # Signed with the secret, over the exact body.
        want = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw,
                                    hashlib.sha256).hexdigest()
        self.assertEqual(headers.get("X-Carechat-Signature"), want)
        self.assertEqual(set(b), BODY_KEYS)
        self.assertEqual((b["event"], b["chat_id"], b["first_unread"],
                          b["unread"], b["urgent"]),
                         ("unread", self.chat, m["id"], 1, False))
        self.assertEqual(b["recipient"]["role"], "professional")
        self.assertEqual(b["recipient"]["profile_id"], self.pro)
        # Ids and counts only: no content, no token, anywhere.
        blob = raw.decode() + json.dumps(headers)
        for secret in (secret_text, self.pt, self.rt, h.SECRET):
            self.assertNotIn(secret, blob)
        # More messages in the same episode: no more notifications.
        self.send("and another")
        self.quiet(1, 2.5)
        # Read: the episode ends; a new message starts another.
        self.read()
        m2 = self.send("new episode")
        b2 = self.sink.wait(2)[1]
        self.assertNotEqual(b2["id"], b["id"])
        self.assertEqual((b2["first_unread"], b2["unread"]), (m2["id"], 1))

    def test_read_in_time_sends_nothing(self):
        self.send("seen at once")
        self.read()
        self.quiet(0, 2.5)

    def test_urgent_repeats_until_read(self):
        t0 = time.time()
        self.send("come now", priority="urgent")
        [b] = self.sink.wait(1, timeout=3)
        self.assertLess(time.time() - t0, 2.5, "urgent: at once")
        self.assertTrue(b["urgent"])
        bodies = self.sink.wait(2, timeout=5)
        self.assertNotEqual(bodies[0]["id"], bodies[1]["id"],
                            "each repeat is a notification of its own")
        self.read()
        time.sleep(0.3)
        n = len(self.sink.bodies())
        self.quiet(n, 2.5)
        self.assertLessEqual(n, 3, "urgent_max")

    def test_urgent_stops_at_urgent_max(self):
        self.send("nobody answers", priority="urgent")
        self.sink.wait(3, timeout=8)
        self.quiet(3, 2.5)

    def test_audit_and_metrics(self):
        self.send("counted")
        self.sink.wait(1)
        # The trail, if configured, is checked in test_audit; here the
        # log says nothing of the content either.
        self.assertNotIn("counted", self.srv.read_log())


class Retries(NotifyCase):
    KEYS = {"max_age": "60s"}

    def test_retried_under_the_same_id_while_the_sink_fails(self):
        self.sink.status = 500
        self.send("try again")
        first = self.sink.wait(1)[0]
        self.sink.wait(2, timeout=6)
        self.sink.status = 200
        bodies = self.sink.wait(3, timeout=10)
        self.assertEqual({b["id"] for b in bodies}, {first["id"]},
                         "a retry keeps its id")
        self.quiet(len(self.sink.bodies()), 2.0)


class Dropped(NotifyCase):
    KEYS = {"max_age": "3s"}

    def test_dropped_after_max_age(self):
        self.sink.status = 500
        self.send("never delivered")
        self.sink.wait(1)
        h.wait_for(lambda: "dropped" in self.srv.read_log(), 10,
                   "the drop in the log")
        n = len(self.sink.bodies())
        self.quiet(n, 3.0)


class Durable(unittest.TestCase):
    """Due across kill -9: the notification goes out after the restart."""

    def test_due_across_kill9(self):
        need_plugin()
        sink = Sink()
        tmp = h.tempfile.mkdtemp(prefix="carechat-notify-")
        srv = h.Server(notify_conf(tmp, sink, delay="2s")).start()
        try:
            chat, pt, _, _, _ = h.World(srv).pair()
            st, _, m = srv.request("POST", "/chat/chats/%s/send_message/" %
                                   chat, {"content": "x"}, token=pt)
            self.assertEqual(st, 201)
            srv.proc.send_signal(signal.SIGKILL)
            srv.proc.wait(10)
            srv.log.close()
            time.sleep(2.5)
            self.assertEqual(sink.bodies(), [], "nobody was there to send")
            srv.start()
            [b] = sink.wait(1)
            self.assertEqual(b["first_unread"], m["id"])
        finally:
            srv.close()
            sink.close()


class TwoNodes(unittest.TestCase):
    """Several nodes on one storage: each notification sent once."""

    def test_exactly_once(self):
        need_plugin()
        if not h.plugin_built("fanout-redis"):
            h.skip_or_fail("redis fan-out plugin not built (hiredis)")
        sink = Sink()
        redis = h.RedisServer()
        tmp = h.tempfile.mkdtemp(prefix="carechat-notify-")
        nodes = h.two_nodes(redis, tmp, notify_conf(tmp, sink))
        try:
            w = h.World(nodes[0])
            chats = []
            for i in range(12):
                chat, pt, _, _, _ = w.pair()
                node = nodes[i % 2]
                st, _, _ = node.request(
                    "POST", "/chat/chats/%s/send_message/" % chat,
                    {"content": "n%d" % i}, token=pt)
                self.assertEqual(st, 201)
                chats.append(chat)
            sink.wait(12, timeout=15)
            time.sleep(2.5)
            bodies = sink.bodies()
            self.assertEqual(sorted(b["chat_id"] for b in bodies),
                             sorted(chats), "each chat exactly once")
            self.assertEqual(len({b["id"] for b in bodies}), 12)
        finally:
            for n in nodes:
                h.stop_checked(n)
            redis.close()
            sink.close()


if __name__ == "__main__":
    h.main()
