#!/usr/bin/python3
"""Fault: PostgreSQL stopped for 2 s and started again under load.

While it is down, senders are told their message could not be stored
and REST answers 503; once the database accepts connections again, every
REST read and write and every WebSocket send succeeds at once (readers
whose connections died are replaced, a read that finds its connection
lost runs again on a fresh one, a waiting request makes a reconnecting
worker try at once), and no acknowledged message is lost or doubled."""
import time

import ccharness as h
import faults as f


class PostgresRestart(f.FaultCase):

    def setUp(self):
        super().setUp()
        f.need_plugin("storage-postgres", "libpq")
        self.pg = h.PgCluster()   # our own: this case stops it
        self.cleanups.append(self.pg.close)

    def test_stopped_and_started_under_load(self):
        # reconnect_max as shipped: recovery must not wait for a backoff.
        srv = self.server({"storage": {"plugin": "postgres",
                                       "conninfo": self.pg.new_db(),
                                       "path": None}})
        c = self.chatter(srv)
        load = self.chatter(srv, interval=0, window=16, label="load")
        rest = self.probe(srv)
        time.sleep(1.0)
        meter = f.Meter(srv)
        self.pg.stop("fast")
        down = f.Meter(srv)
        time.sleep(2.0)
        down_cpu = down.cpu()
        self.pg.start()           # returns once it accepts connections
        up = time.time()
        time.sleep(3.0)
        rest.stop()
        c.wait_acked(10)
        # While down: the fault was real, and it was said so.
        self.assertIn(503, [st for _, _, st in rest.results],
                      "REST answered 503 while the database was down")
        self.assertTrue(c.refused or load.refused, "senders were told")
        # Once it accepts connections again: everything succeeds.
        after = rest.after(up)
        self.assertGreater(len(after), 20)
        bad = [(w, st) for w, st in after if st not in (200, 201)]
        self.assertEqual(bad, [], "REST after the database was back")
        for who in (c, load):
            acked, refused = who.sent_after(up)
            self.assertGreater(acked, 0, "%s: nothing sent after the "
                               "database was back was acknowledged "
                               "(reconnects %d, unknown %d, errors %s)" % (
                                   who.label, who.reconnects,
                                   len(who.unknown), who.errors[-3:]))
            self.assertEqual(refused, 0, "%s: sends refused after the "
                             "database was back" % who.label)
        self.assertLess(down_cpu, 1.0 * f.CPU_SCALE,
                        "CPU while the database was down: %.2f s" % down_cpu)
        self.assert_bounded(meter, cpu=8.0, lines=100, what="postgres")
        for who in (c, load):
            self.assert_nothing_lost(who, refused_may_be_stored=True)
        hist = {m["id"] for m in h.history(srv, rest.chat, rest.tok)}
        for mid in rest.sent:
            self.assertIn(mid, hist, "a REST message answered 201 is lost")
        self.assertIn("reconnected", srv.read_log())

    def test_readyz_follows_the_database(self):
        """An idle node: /readyz says 503 with the reason soon after
        PostgreSQL stops (a load balancer takes the node out), /healthz
        stays 200, and /readyz is 200 again once it is back."""
        srv = self.server({"storage": {"plugin": "postgres",
                                       "conninfo": self.pg.new_db(),
                                       "path": None}})
        self.assertEqual(f.readyz(srv)[0], 200)
        self.pg.stop("fast")
        st, why = f.wait_readyz(srv, 503, timeout=10)
        self.assertEqual(st, 503, "not ready while the database is down")
        self.assertTrue(why.startswith("storage: "), why)
        self.assertEqual(srv.request("GET", "/healthz")[0], 200)
        self.pg.start()
        self.assertEqual(f.wait_readyz(srv, 200, timeout=10)[0], 200,
                         "ready again once the database is back")


if __name__ == "__main__":
    f.main()
