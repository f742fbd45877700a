#!/usr/bin/python3
"""The redis fan-out plugin: several carechatd nodes, one conversation,
with a real redis-server and a shared database (PostgreSQL; SQLite shared
on one host as the second configuration)."""
import os
import signal
import time
import unittest

import ccharness as h

PLUGIN = os.path.join(h.BUILDDIR, "plugins", ".libs", "fanout-redis.so")


def need_plugin():
    if not os.path.exists(PLUGIN):
        h.skip_or_fail("the redis plugin was not built (configure found no "
                       "hiredis; Debian: apt-get install libhiredis-dev)")


def collect(ws, n, timeout=15):
    """The next n messages on ws (their "message" objects)."""
    got = []
    deadline = time.time() + timeout
    ws.sock.settimeout(timeout)
    while len(got) < n and time.time() < deadline:
        obj = ws.recv_json()
        assert "message" in obj, obj
        got.append(obj["message"])
    return got


def history_ids(srv, chat, tok):
    status, _, body = srv.request(
        "GET", "/chat/chats/%s/messages/?page_size=200" % chat, token=tok)
    assert status == 200, (status, body)
    return [m["id"] for m in body["results"]]


def serves_locally(srv):
    """Two parties on srv chat: its own deliveries work."""
    chat, pt, rt, _, _ = h.World(srv).pair()
    a, b = h.raw_ws(srv, chat, pt), h.raw_ws(srv, chat, rt)
    a.send_json({"content": "local"})
    assert collect(b, 1)[0]["content"] == "local"
    a.close()
    b.close()


def wait_log(srv, text, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in srv.read_log():
            return True
        time.sleep(0.1)
    return False


class ThreeNodesPostgres(unittest.TestCase):
    """Patient on node A, the professional on B and on C."""

    STORAGE = "postgres"

    @classmethod
    def storage_conf(cls, tmp):
        return {"plugin": "postgres", "path": None,
                "conninfo": h.pg_cluster().new_db()}

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.redis = h.RedisServer()
        cls.tmp = h.tempfile.mkdtemp(prefix="carechat-nodes-")
        storage = cls.storage_conf(cls.tmp)
        fanout = {"plugin": "redis", "address": cls.redis.address(),
                  "reconnect_max": 300}
        cls.nodes = []
        for _ in range(3):
            cls.nodes.append(h.Server({"storage": dict(storage),
                                       "fanout": fanout},
                                      storage=cls.STORAGE).start())
        cls.a, cls.b, cls.c = cls.nodes

    @classmethod
    def tearDownClass(cls):
        for n in cls.nodes:
            n.close()
        cls.redis.close()
        h.shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_message_everywhere_once_in_order(self):
        chat, pt, rt, _, _ = h.World(self.a).pair()
        pat = h.raw_ws(self.a, chat, pt)
        pro_b = h.raw_ws(self.b, chat, rt)
        pro_c = h.raw_ws(self.c, chat, rt)
        conns = [pat, pro_b, pro_c]
        # Subscriptions travel to Redis asynchronously after the join.
        time.sleep(0.5)
        n = 20
        for i in range(n):
            # From both sides and all three nodes, without waiting.
            pat.send_json({"content": "patient %d" % i})
            pro_b.send_json({"content": "pro via B %d" % i})
            pro_c.send_json({"content": "pro via C %d" % i})
        received = [collect(ws, 3 * n) for ws in conns]
        ids = history_ids(self.b, chat, rt)
        self.assertEqual(len(ids), 3 * n, "all stored")
        for name, got in zip(("patient@A", "pro@B", "pro@C"), received):
            got_ids = [m["id"] for m in got]
            self.assertEqual(len(got_ids), 3 * n, name + ": all arrived")
            self.assertEqual(len(set(got_ids)), 3 * n,
                             name + ": exactly once")
            self.assertEqual(got_ids, ids, name + ": in history order")
        for ws in conns:
            self.assertTrue(h.silent(ws), "no duplicate arrives late")
            ws.close()

    def test_resume_on_another_node(self):
        """The professional was on node B, the patient on A sent 30
        messages while it was away; it comes back on node C with since:
        exactly those, then live ones."""
        chat, pt, rt, _, _ = h.World(self.a).pair()
        pat = h.raw_ws(self.a, chat, pt)
        pat.send_json({"content": "seen"})
        seen = collect(pat, 1)[0]
        sent = []
        for i in range(30):
            pat.send_json({"content": "away %d" % i})
            sent.append(collect(pat, 1)[0])
        ws = h.raw_ws(self.c, chat, rt, "&since=" + seen["id"])
        self.assertEqual(ws.status, 101)
        self.assertEqual(collect(ws, 30), sent)
        time.sleep(0.5)     # C's subscription reaches Redis
        pat.send_json({"content": "live"})
        live = collect(pat, 1)[0]
        self.assertEqual(collect(ws, 1), [live])
        self.assertTrue(h.silent(ws))
        pat.close()
        ws.close()

    def test_resume_from_the_newest_while_fanout_lags(self):
        """The professional's phone saw the newest message in history
        (node B's REST) before B had it live: Redis lags.  Resuming on B
        with since = that message, the phone must not get it again when
        Redis hands it over late; the next one arrives once."""
        chat, pt, rt, _, _ = h.World(self.a).pair()
        other = h.raw_ws(self.b, chat, rt)    # keeps B subscribed
        time.sleep(0.5)                      # B's subscription in Redis
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            status, _, m = self.a.request(
                "POST", "/chat/chats/%s/send_message/" % chat,
                {"content": "newest"}, token=pt)
            self.assertEqual(status, 201, m)
            self.assertEqual(history_ids(self.b, chat, rt)[-1], m["id"])
            ws = h.raw_ws(self.b, chat, rt, "&since=" + m["id"])
            self.assertEqual(ws.status, 101)
            self.assertTrue(h.silent(ws), "nothing after since yet")
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.assertEqual(collect(other, 1)[0]["id"], m["id"],
                         "Redis delivers it late to B")
        self.assertTrue(h.silent(ws), "not again to the phone that had it")
        status, _, live = self.a.request(
            "POST", "/chat/chats/%s/send_message/" % chat,
            {"content": "live"}, token=pt)
        self.assertEqual(status, 201, live)
        self.assertEqual([x["id"] for x in collect(ws, 1)], [live["id"]])
        self.assertTrue(h.silent(ws))
        for c in (other, ws):
            c.close()

    def test_rest_send_reaches_other_nodes(self):
        chat, pt, rt, _, _ = h.World(self.a).pair()
        pro_c = h.raw_ws(self.c, chat, rt)
        time.sleep(0.3)
        status, _, body = self.a.request(
            "POST", "/chat/chats/%s/send_message/" % chat,
            {"content": "from REST on A"}, token=pt)
        self.assertEqual(status, 201, body)
        got = collect(pro_c, 1)
        self.assertEqual(got[0]["content"], "from REST on A")
        self.assertEqual(got[0]["id"], body["id"])
        pro_c.close()

    def test_only_chats_with_local_connections_are_subscribed(self):
        chat, pt, rt, _, _ = h.World(self.a).pair()
        ws = h.raw_ws(self.b, chat, rt)
        time.sleep(0.3)
        out = self.redis.command("PUBSUB", "NUMSUB",
                                 "carechat:chat:" + chat)
        # *2 $..channel.. :1 -- one subscriber: node B only.
        self.assertIn(b"*2", out)
        ws.close()
        time.sleep(0.3)
        s = h.socket.create_connection(("127.0.0.1", self.redis.port))
        s.sendall(b"PUBSUB NUMSUB carechat:chat:" + chat.encode() + b"\r\n")
        time.sleep(0.2)
        reply = s.recv(4096)
        s.close()
        self.assertTrue(reply.endswith(b":0\r\n"),
                        "unsubscribed when the last local client left: %r"
                        % reply)


class ThreeNodesSqlite(ThreeNodesPostgres):
    """The same, on one SQLite file shared by the nodes of one host."""

    STORAGE = "sqlite"

    @classmethod
    def storage_conf(cls, tmp):
        return {"plugin": "sqlite", "path": os.path.join(tmp, "shared.db")}


class Outage(unittest.TestCase):
    """Redis stopped and restarted during a conversation."""

    @classmethod
    def setUpClass(cls):
        need_plugin()
        cls.redis = h.RedisServer(password="redis-test-password")
        cls.tmp = h.tempfile.mkdtemp(prefix="carechat-nodes-")
        pwfile = os.path.join(cls.tmp, "redis.pw")
        with open(pwfile, "w") as f:
            f.write("redis-test-password\n")
        os.chmod(pwfile, 0o600)  # a secret: others may not read it
        storage = {"plugin": "sqlite",
                   "path": os.path.join(cls.tmp, "shared.db")}
        cls.a = h.Server({"storage": storage, "fanout": {
            "plugin": "redis", "address": cls.redis.address(),
            "password": "redis-test-password", "reconnect_max": 300}},
            storage="sqlite").start()
        cls.b = h.Server({"storage": storage, "fanout": {
            "plugin": "redis", "address": cls.redis.address(),
            "password_file": pwfile, "reconnect_max": 300}},
            storage="sqlite").start()

    @classmethod
    def tearDownClass(cls):
        cls.a.close()
        cls.b.close()
        cls.redis.close()
        h.shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_outage_and_recovery(self):
        chat, pt, rt, _, _ = h.World(self.a).pair()
        pat = h.raw_ws(self.a, chat, pt)
        pro_a = h.raw_ws(self.a, chat, rt)
        pro_b = h.raw_ws(self.b, chat, rt)
        time.sleep(0.5)
        pat.send_json({"content": "before"})
        for ws in (pat, pro_a, pro_b):
            self.assertEqual(collect(ws, 1)[0]["content"], "before")
        pids = (self.a.proc.pid, self.b.proc.pid)

        self.redis.stop()
        self.assertTrue(wait_log(self.a, "retrying"), "A noticed")
        pat.send_json({"content": "during"})
        # Local deliveries go on: both connections on node A.
        for ws in (pat, pro_a):
            self.assertEqual(collect(ws, 1)[0]["content"], "during")
        self.assertTrue(h.silent(pro_b, 1.0), "node B cannot get it now")

        self.redis.start()
        up = time.time()
        # Node B reads what it missed from storage once resubscribed,
        # without a new message and without the client reconnecting.
        self.assertEqual(collect(pro_b, 1, timeout=5)[0]["content"],
                         "during")
        self.assertLess(time.time() - up, 3.0)
        for srv in (self.a, self.b):
            self.assertTrue(wait_log(srv, "subscriber reconnected"),
                            srv.read_log()[-2000:])
        self.assertEqual((self.a.proc.pid, self.b.proc.pid), pids,
                         "no restart")
        pat.send_json({"content": "after"})
        for ws in (pat, pro_a, pro_b):
            self.assertEqual(collect(ws, 1)[0]["content"], "after")
        for ws in (pat, pro_a, pro_b):
            self.assertTrue(h.silent(ws, 0.5), "nothing twice")
        # History agrees.
        status, _, body = self.b.request(
            "GET", "/chat/chats/%s/messages/" % chat, token=rt)
        self.assertEqual([m["content"] for m in body["results"]],
                         ["before", "during", "after"])
        for ws in (pat, pro_a, pro_b):
            ws.close()

    def test_wrong_password_is_logged(self):
        srv = h.Server({"fanout": {"plugin": "redis",
                                   "address": self.redis.address(),
                                   "password": "wrong-password"}})
        try:
            srv.start()
            self.assertTrue(wait_log(srv, "redis refused AUTH"),
                            srv.read_log())
            self.assertNotIn("wrong-password", srv.read_log(),
                             "the password is never logged")
            # Still serving (local fan-out keeps working).
            serves_locally(srv)
        finally:
            srv.close()


class SentinelConfig(unittest.TestCase):
    """[fanout] sentinels, master_name, sentinel_password(_file): the keys
    that go together, checked at start with the file, line and reason."""

    def setUp(self):
        need_plugin()

    def check(self, fanout):
        """carechatd -t with these [fanout] keys: (exit status, stderr)."""
        srv = h.Server({"fanout": dict({"plugin": "redis"}, **fanout)})
        try:
            srv.write_conf()
            r = h.subprocess.run([os.path.join(h.BUILDDIR, "carechatd"),
                                  "-t", "-c", srv.conf_path],
                                 stdout=h.subprocess.DEVNULL,
                                 stderr=h.subprocess.PIPE, timeout=30)
        finally:
            srv.close()
        return r.returncode, r.stderr.decode()

    def refused(self, fanout, key, why):
        rc, err = self.check(fanout)
        self.assertNotEqual(rc, 0, err)
        self.assertRegex(err, r"carechat\.conf:\d+: \[fanout\] %s: .*%s" %
                         (key, why))
        self.assertNotIn("hunter2", err, "a password is never logged")

    def test_sentinels_and_address(self):
        self.refused({"address": "127.0.0.1:6379",
                      "sentinels": "127.0.0.1:26379", "master_name": "m"},
                     "sentinels", "give either address .* or sentinels")

    def test_sentinels_need_master_name(self):
        self.refused({"sentinels": "127.0.0.1:26379"}, "sentinels",
                     "needs master_name")

    def test_master_name_needs_sentinels(self):
        self.refused({"master_name": "m"}, "master_name", "needs sentinels")

    def test_sentinel_password_needs_sentinels(self):
        self.refused({"sentinel_password": "hunter2"}, "sentinel_password",
                     "needs sentinels")

    def test_one_sentinel_password(self):
        path = os.path.join(h.tempfile.mkdtemp(prefix="carechat-pw-"), "pw")
        with open(path, "w") as f:
            f.write("hunter2\n")
        os.chmod(path, 0o600)
        self.refused({"sentinels": "127.0.0.1:26379", "master_name": "m",
                      "sentinel_password": "hunter2",
                      "sentinel_password_file": path},
                     "sentinel_password_file", "give one of "
                     "sentinel_password and sentinel_password_file")
        h.shutil.rmtree(os.path.dirname(path))

    def test_numeric_addresses_only(self):
        for bad in ("localhost:26379", "127.0.0.1", "127.0.0.1:0",
                    "127.0.0.1:26379,,127.0.0.2:26379", "[::1]:x"):
            self.refused({"sentinels": bad, "master_name": "m"},
                         "sentinels", "expected ip:port")

    def test_good(self):
        rc, err = self.check({"sentinels": "127.0.0.1:26379, [::1]:26380",
                              "master_name": "mymaster",
                              "sentinel_password": "hunter2"})
        self.assertEqual(rc, 0, err)

    def test_not_a_sentinel(self):
        """A "sentinel" that is a plain Redis answers the question with an
        error: the node serves its own clients, /readyz says Redis is
        unreachable, and the log says why once, not once per lookup."""
        redis = h.RedisServer()
        srv = h.Server({"fanout": {"plugin": "redis", "master_name": "m",
                                   "sentinels": redis.address(),
                                   "reconnect_max": 100}})
        try:
            srv.start()
            serves_locally(srv)
            st, _, body = srv.request("GET", "/readyz")
            self.assertEqual(st, 503)
            self.assertIn("redis unreachable", body["reason"])
            time.sleep(1.5)   # 100 ms backoff: a dozen lookups or more
            log = srv.read_log()
            self.assertIn("no sentinel said where master m is (1 asked, "
                          "lookup 1 in a row; last: %s: ERR unknown "
                          "command" % redis.address(), log)
            self.assertLess(log.count("no sentinel said"), 3, log)
        finally:
            srv.close()
            redis.close()


if __name__ == "__main__":
    h.main()
