#!/usr/bin/python3
"""Fault: Redis stopped for 2 s and started again while two nodes serve
one conversation.

Each node keeps delivering its own clients' messages throughout (a
chat whose parties are both on node A loses nothing); the live client on
node B, whose patient on node A sends every 50 ms, gets every
acknowledged message once and in history order soon after Redis is back
(node B reads what it missed from storage, without the client
reconnecting); reconnecting costs no busy loop and a bounded log.  On a
shared SQLite file and on PostgreSQL."""
import os
import select
import time

import ccharness as h
import faults as f


class RedisRestart(f.FaultCase):

    def setUp(self):
        super().setUp()
        f.need_plugin("fanout-redis", "hiredis")
        self.redis = h.RedisServer()
        self.cleanups.append(self.redis.close)

    def storage(self):
        """Both nodes' storage: a SQLite file they share."""
        tmp = h.tempfile.mkdtemp(prefix="carechat-nodes-")
        self.cleanups.append(lambda: h.shutil.rmtree(tmp, True))
        return {"plugin": "sqlite", "path": os.path.join(tmp, "shared.db")}

    def node(self, storage):
        # reconnect_max as shipped.
        return self.server({
            "storage": storage,
            "fanout": {"plugin": "redis", "address": self.redis.address()}},
            storage="sqlite")

    def test_stopped_and_started_under_load(self):
        storage = self.storage()
        a, b = self.node(storage), self.node(storage)
        local = self.chatter(a, label="local")
        across = self.chatter(a, recv_srv=b, label="across")
        across.wait_received(5)
        load = self.chatter(a, interval=0, window=8, label="load")
        meters = [f.Meter(a), f.Meter(b)]
        before = f.Meter(a)
        time.sleep(2.0)
        base_cpu = before.cpu()   # node A's 2 s under this load
        self.redis.stop()
        down = [f.Meter(a), f.Meter(b)]
        t0 = time.time()
        # Local deliveries go on while Redis is away.
        local.wait_acked(20, timeout=2)
        local.wait_received(20, timeout=2)
        time.sleep(max(0.0, 2.0 - (time.time() - t0)))
        down_cpu = [m.cpu() for m in down]
        self.redis.start()
        up = time.time()
        # Across the nodes: everything acknowledged meanwhile arrives,
        # without a restart or a reconnect, within about a second.
        with across.lock:
            acked_up = [m["id"] for m in across.acked]
        self.wait_for(lambda: {m["id"] for m in across.received} >=
                      set(acked_up), timeout=5,
                      what="node B to get what it missed")
        resumed = time.time() - up
        time.sleep(1.0)
        self.assertLess(resumed, 2.0, "node B had what it missed %.1f s "
                        "after Redis was back" % resumed)
        # Nobody was told a message could not be stored: storage is fine.
        for c in (local, across, load):
            self.assertEqual(c.refused, [], c.label)
        for m, what in zip(meters, ("node A", "node B")):
            self.assert_bounded(m, cpu=6.0, lines=60, what=what)
        # No busy reconnect loop: node A works as hard as with Redis up
        # (the load goes on), node B, which only listens, idles.
        self.assertLess(down_cpu[0], 1.5 * base_cpu + 0.3 * f.CPU_SCALE,
                        "node A's CPU while Redis was down: %.2f s (%.2f s "
                        "before)" % (down_cpu[0], base_cpu))
        self.assertLess(down_cpu[1], 0.3 * f.CPU_SCALE,
                        "node B's CPU while Redis was down: %.2f s" %
                        down_cpu[1])
        hist_local = self.assert_nothing_lost(local)
        # Same node: every acknowledged message was delivered too.
        got = {m["id"] for m in local.received}
        missed = [(i, m["content"], m["created_at"])
                  for i, m in enumerate(local.acked) if m["id"] not in got]
        self.assertEqual(missed, [], "local deliveries missed, of %d "
                         "acknowledged (Redis down %.3f-%.3f); the "
                         "professional reconnected %d times" % (
                             len(local.acked), t0, up,
                             local.recv_reconnects))
        self.assertGreater(len(hist_local), 40)
        self.assert_nothing_lost(across)
        # The live client on the other node: every acknowledged message,
        # once (assert_nothing_lost checked once and in order).
        got = {m["id"] for m in across.received}
        missed = [m["content"] for m in across.acked if m["id"] not in got]
        self.assertEqual(missed, [], "missed on node B, of %d" %
                         len(across.acked))
        self.assertEqual(across.recv_reconnects, 0)
        self.assert_nothing_lost(load)
        for srv in (a, b):
            self.assertIn("reconnected", srv.read_log())

    def test_readyz_follows_redis(self):
        """/readyz is 503 naming Redis while it is down, 200 once back."""
        srv = self.node(self.storage())
        self.assertEqual(f.wait_readyz(srv, 200, timeout=10)[0], 200)
        self.redis.stop()
        st, why = f.wait_readyz(srv, 503, timeout=10)
        self.assertEqual(st, 503)
        self.assertTrue(why.startswith("fanout: redis unreachable"), why)
        self.redis.start()
        self.assertEqual(f.wait_readyz(srv, 200, timeout=10)[0], 200)

    def test_many_chats_resync(self):
        """Node B holds 1,000 chats, each with a live professional; while
        Redis is down the patients send one message each on node A.
        Once Redis is back B delivers every one of them (one storage read
        per chat, not all at once on the loop) and answers /healthz
        promptly meanwhile."""
        n = 1000
        f.raise_fd_limit()
        storage = self.storage()
        a, b = self.node(storage), self.node(storage)
        w = h.World(a)
        pairs = [w.pair() for _ in range(n)]
        socks = {}
        for chat, pt, rt, _, _ in pairs:
            ws = h.raw_ws(b, chat, rt)
            self.assertEqual(ws.status, 101)
            socks[ws.sock] = ws
        self.cleanups.append(lambda: [ws.close() for ws in socks.values()])
        time.sleep(1.0)                    # B's subscriptions reach Redis
        self.redis.stop()
        sent = {}
        for chat, pt, rt, _, _ in pairs:
            st, _, m = a.request("POST", "/chat/chats/%s/send_message/" %
                                 chat, {"content": "while away"}, token=pt)
            self.assertEqual(st, 201, m)
            sent[m["id"]] = chat
        meter = f.Meter(b)
        self.redis.start()
        up = time.time()
        got, worst = set(), 0.0
        deadline = up + 20
        while len(got) < n and time.time() < deadline:
            t0 = time.time()
            st, _, _ = b.request("GET", "/healthz")
            worst = max(worst, time.time() - t0)
            self.assertEqual(st, 200)
            ready, _, _ = select.select(list(socks), [], [], 0.2)
            for sock in ready:
                ws = socks[sock]
                msg = ws.recv_json()
                got.add(msg["message"]["id"])
        took = time.time() - up
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# %d chats: all in %.1f s, /healthz at most %.0f ms" %
                  (n, took, worst * 1000))
        self.assertEqual(got, set(sent), "every chat got its message")
        self.assertLess(worst, 0.5, "/healthz while resyncing")
        self.assert_bounded(meter, cpu=5.0, lines=60, what="node B")
        time.sleep(0.3)                    # anything sent twice arrives
        ready, _, _ = select.select(list(socks), [], [], 0)
        twice = [socks[s] for s in ready if not _silent(socks[s])]
        self.assertEqual(twice, [], "nothing twice")


def _silent(ws, wait=0.05):
    """True when no text frame is waiting on ws (pings are skipped)."""
    ws.sock.settimeout(wait)
    try:
        ws.recv_json()
    except OSError:                    # a timeout: nothing there
        return True
    return False


class RedisRestartPostgres(RedisRestart):
    """The same, both nodes on one PostgreSQL database."""

    test_many_chats_resync = None   # once is enough (SQLite above)
    test_readyz_follows_redis = None

    def storage(self):
        f.need_plugin("storage-postgres", "libpq")
        self.pg = h.PgCluster()
        self.cleanups.append(self.pg.close)
        return {"plugin": "postgres", "conninfo": self.pg.new_db(),
                "path": None}


if __name__ == "__main__":
    f.main()
