#!/usr/bin/python3
"""High availability: the Redis master lost for good, under two nodes that
find it through Redis Sentinel ([fanout] sentinels, master_name).

A master, a replica and three sentinels (quorum 2) on loopback; two
carechatd nodes share one PostgreSQL database and chat across while the
master is killed (SIGKILL) and never comes back.  Sentinel promotes the
replica; both nodes follow +switch-master to it without a restart, and
every message acknowledged before, during and after the switch reaches
the live client on the other node once, in history order, without that
client reconnecting (the subscriber resubscribes and the node reads what
it missed from storage).  Nobody is told a message could not be stored
(storage is fine), and the log and CPU stay bounded.

Node A also lists a "sentinel" that accepts connections and never
answers, first: it costs one short timeout, then the sentinel that
answered is asked first.  Node B reads the sentinel password from a
file, node A from the key.

With `address` pointing at the first master instead of the sentinels
(Sentinel support reverted), node B never hears another message.
"""
import os
import socket
import time

import ccharness as h
import faults as f
import ha


class SentinelFailover(f.FaultCase):

    def setUp(self):
        super().setUp()
        f.need_plugin("fanout-redis", "hiredis")
        f.need_plugin("storage-postgres", "libpq")
        self.redis = ha.RedisSentinels()
        self.cleanups.append(self.redis.close)
        self.pg = h.PgCluster()
        self.cleanups.append(self.pg.close)
        # Listens, never answers: a sentinel on a host that hangs.
        self.silent = socket.socket()
        self.silent.bind(("127.0.0.1", 0))
        self.silent.listen(16)
        self.cleanups.append(self.silent.close)
        self.tmp = h.tempfile.mkdtemp(prefix="carechat-ha-redis-")
        self.cleanups.append(lambda: h.shutil.rmtree(self.tmp, True))

    def node(self, conninfo, silent_first=False, password_file=False):
        fanout = {"plugin": "redis", "master_name": self.redis.NAME,
                  "sentinels": self.redis.sentinels()}
        if silent_first:
            fanout["sentinels"] = "127.0.0.1:%d, %s" % (
                self.silent.getsockname()[1], fanout["sentinels"])
        if password_file:
            path = os.path.join(self.tmp, "sentinel-password")
            with open(path, "w") as pw:
                pw.write(self.redis.password + "\n")
            os.chmod(path, 0o600)
            fanout["sentinel_password_file"] = path
        else:
            fanout["sentinel_password"] = self.redis.password
        return self.server({"storage": {"plugin": "postgres",
                                        "conninfo": conninfo, "path": None},
                            "fanout": fanout})

    def test_master_killed_for_good(self):
        conninfo = self.pg.new_db()
        a = self.node(conninfo, silent_first=True)
        b = self.node(conninfo, password_file=True)
        for srv in (a, b):
            self.assertEqual(f.wait_readyz(srv, 200, timeout=15)[0], 200,
                             srv.read_log()[-2000:])
        across = self.chatter(a, recv_srv=b, label="across")
        back = self.chatter(b, recv_srv=a, label="back")
        # Busy, but what node B misses while the master is away (read
        # back from storage at once when it returns) stays well under
        # the 1 MB a client may have queued (output_high_water).
        load = self.chatter(a, recv_srv=b, interval=0.005 * ha.SCALE,
                            window=2, label="load")
        chatters = (across, back, load)
        self.wait_delivered(chatters, timeout=10)
        time.sleep(1.0)
        meters = [f.Meter(a), f.Meter(b)]
        old, new = self.redis.ports["master"], self.redis.ports["replica"]
        self.assertEqual(self.redis.master_says(), old)

        t0 = time.time()
        self.redis.kill("master")
        self.wait_for(lambda: self.redis.master_says() == new,
                      timeout=30 * ha.SCALE,
                      what="the sentinels to promote the replica")
        promoted = time.time() - t0
        # Every message acknowledged so far, and everything after, is
        # delivered across without anyone reconnecting.
        self.wait_delivered(chatters, timeout=10)
        caught_up = time.time() - t0
        across.wait_received(20, timeout=10)
        self.wait_delivered(chatters, timeout=5)
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# master killed: sentinels promoted the replica after "
                  "%.1f s; node B had every acknowledged message %.1f s "
                  "after the kill" % (promoted, caught_up))
        self.assertLess(caught_up - promoted, 5.0,
                        "the nodes took %.1f s to follow the switch" %
                        (caught_up - promoted))
        for c in chatters:
            self.assertEqual(c.refused, [], c.label)
            self.assert_all_delivered(c)
        for m, what in zip(meters, ("node A", "node B")):
            self.assert_bounded(m, cpu=6.0 * ha.SCALE, lines=40 * ha.SCALE,
                                what=what)
        for srv in (a, b):
            log = srv.read_log()
            self.assertIn("master %s is 127.0.0.1:%d now (was 127.0.0.1:%d)"
                          % (self.redis.NAME, new, old), log)
            self.assertIn("subscriber reconnected to redis 127.0.0.1:%d" %
                          new, log)
            self.assertNotIn(self.redis.password, log,
                             "the sentinel password is never logged")
        # Node A asked the silent "sentinel" at most a few times: the one
        # that answered went first.
        timeouts = a.read_log().count("no answer within")
        self.assertLess(timeouts, 4, a.read_log()[-3000:])


if __name__ == "__main__":
    f.main()
