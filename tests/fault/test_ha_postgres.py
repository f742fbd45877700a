#!/usr/bin/python3
"""High availability: PostgreSQL failovers under two nodes that reach it
through libpq's multi-host conninfo with target_session_attrs=read-write.

A pg_auto_failover formation started on loopback (a monitor, a primary
and a synchronous secondary; the monitor's health checks tuned to see a
lost node in seconds), two carechatd nodes sharing its database and one
Redis for fan-out, clients chatting across throughout:

  - `pg_autoctl perform failover` (a switchover), and
  - the primary's node killed (SIGKILL to its keeper and PostgreSQL),
    never restarted.

In both, senders are told `Message could not be stored; try again` for a
moment (never an acknowledged message lost); every acknowledged message
reaches the live client on the other node once, in history order, and
nobody's WebSocket is closed; service resumes by itself on the new
primary, where both nodes' writers are; the log and CPU stay bounded.

And a switchover that leaves the old primary up with the sessions open,
read-only (what Patroni's demotion can look like to a client): the
writer's first write there fails with SQLSTATE 25006 and the reader
hears that the server is read-only now; both move to the new primary
through the host list instead of failing for good (with that reverted,
every later send is refused and the reader stays on the old server).
"""
import os
import time

import ccharness as h
import faults as f
import ha


def carechat_backends(psql):
    """Connections of carechatd (application_name carechat) where psql
    runs its SQL."""
    return int(psql("SELECT count(*) FROM pg_stat_activity WHERE "
                    "application_name = 'carechat'"))


class Formation(f.FaultCase):

    def setUp(self):
        super().setUp()
        f.need_plugin("storage-postgres", "libpq")
        f.need_plugin("fanout-redis", "hiredis")
        self.pgaf = ha.PgFormation()
        self.cleanups.append(self.pgaf.close)
        self.redis = h.RedisServer()
        self.cleanups.append(self.redis.close)

    def tearDown(self):
        if self.failed():
            for name in sorted(self.pgaf.procs):
                print("# --- pg_autoctl %s" % name)
                for line in self.pgaf.log_tail(name):
                    print("#   " + line[:300])
        super().tearDown()

    def nodes(self):
        conninfo = self.pgaf.uri() + "&application_name=carechat"
        a, b = [self.server({
            "storage": {"plugin": "postgres", "conninfo": conninfo,
                        "path": None},
            "fanout": {"plugin": "redis",
                       "address": self.redis.address()}})
            for _ in range(2)]
        chatters = (self.chatter(a, recv_srv=b, label="across"),
                    self.chatter(b, recv_srv=a, label="back"),
                    self.chatter(a, recv_srv=b, interval=0, window=8,
                                 label="load"))
        return (a, b), chatters

    def fail_over(self, fault, what, downtime):
        """Run fault() while clients chat; then check what must hold.
        downtime: the longest the senders may be refused, in seconds."""
        servers, chatters = self.nodes()
        time.sleep(1.0)
        meters = [f.Meter(srv) for srv in servers]
        old = self.pgaf.primary()
        t0 = time.time()
        fault(old)
        self.wait_for(lambda: self.pgaf.primary() not in (None, old),
                      timeout=60 * ha.SCALE, what="a new primary")
        promoted = time.time() - t0
        # Service resumes by itself: sends are acknowledged again.
        for c in chatters:
            c.wait_acked(5, timeout=downtime * ha.SCALE)
        resumed = time.time() - t0
        time.sleep(1.0)
        after = time.time()
        time.sleep(1.5)
        refused = [c.sent_after(after)[1] for c in chatters]
        refused_total = sum(len(c.refused) for c in chatters)
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# %s: new primary after %.1f s; sends acknowledged "
                  "again %.1f s after it began; %d sends refused" % (
                      what, promoted, resumed, refused_total))
        self.assertEqual(refused, [0, 0, 0], "sends refused after service "
                         "resumed")
        for c in chatters:
            self.assert_all_delivered(c, refused_may_be_stored=True)
        for m, srv in zip(meters, ("node A", "node B")):
            self.assert_bounded(m, cpu=8.0 * ha.SCALE, lines=60 * ha.SCALE,
                                what=srv)
        new = self.pgaf.primary()
        writers = carechat_backends(lambda sql: self.pgaf.psql(
            self.pgaf.ports[new], sql))
        self.assertGreaterEqual(writers, 2, "both writers on the new "
                                "primary")
        for srv in servers:
            self.assertIn("writer reconnected", srv.read_log())
        return promoted, resumed

    def test_perform_failover(self):
        self.fail_over(lambda old: self.pgaf.perform_failover(),
                       "pg_autoctl perform failover", downtime=30)
        # The old primary is a standby now: nothing of carechat there.
        old = [n for n in self.pgaf.ports if n != self.pgaf.primary()][0]
        self.pgaf.wait_states({old: "secondary"}, timeout=60)
        self.assertEqual(carechat_backends(lambda sql: self.pgaf.psql(
            self.pgaf.ports[old], sql)), 0)

    def test_primary_node_killed(self):
        self.fail_over(self.pgaf.kill_node, "the primary's node killed",
                       downtime=60)


class ReadOnlyPrimary(f.FaultCase):
    """The old primary stays up, read-only, with carechat's sessions
    open; the standby is promoted."""

    def setUp(self):
        super().setUp()
        f.need_plugin("storage-postgres", "libpq")
        self.pg = h.PgCluster()
        self.cleanups.append(self.pg.close)

    def test_sessions_move_to_the_new_primary(self):
        db = self.pg.new_db()
        dbname = db.split("dbname=")[1].split()[0]
        standby_port = h.free_port()
        conninfo = "host=127.0.0.1,127.0.0.1 port=%d,%d user=postgres " \
                   "dbname=%s target_session_attrs=read-write " \
                   "connect_timeout=2 application_name=carechat" % (
                       self.pg.port, standby_port, dbname)
        srv = self.server({"storage": {"plugin": "postgres",
                                       "conninfo": conninfo, "readers": 1,
                                       "path": None}})
        c = self.chatter(srv)
        # Made now, after the schema: the daemon's conninfo names its port.
        standby = ha.PgStandby(self.pg, port=standby_port)
        self.cleanups.append(standby.close)
        c.wait_acked(5)

        def primary_psql(sql):
            return self.pg.psql(db, sql).strip()

        self.assertEqual(carechat_backends(primary_psql), 2)
        meter = f.Meter(srv)
        t0 = time.time()
        primary_psql("ALTER SYSTEM SET default_transaction_read_only = on")
        primary_psql("SELECT pg_reload_conf()")
        self.wait_for(standby.caught_up, timeout=20, what="the standby")
        standby.promote()
        c.wait_acked(10, timeout=20)
        resumed = time.time() - t0
        # A read makes the reader look at its connection.
        for _ in range(3):
            h.history(srv, c.chat, c.pt)
        time.sleep(1.0)
        after = time.time()
        time.sleep(1.0)
        self.assertEqual(c.sent_after(after)[1], 0, "sends refused after "
                         "the switchover; errors %s" % c.errors[-3:])
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# read-only primary: sends acknowledged again %.1f s "
                  "later, %d refused" % (resumed, len(c.refused)))
        self.assertEqual(carechat_backends(primary_psql), 0,
                         "carechat left the read-only server")
        self.assertEqual(carechat_backends(lambda sql: standby.psql(
            standby.conninfo(dbname), sql)), 2,
            "writer and reader on the new primary")
        self.assert_nothing_lost(c)
        self.assert_bounded(meter, cpu=4.0, lines=30, what="read-only")
        log = srv.read_log()
        self.assertIn("writer connection lost (the server is read-only now, "
                      "SQLSTATE 25006)", log)
        self.assertIn("reader connection replaced: the server is read-only "
                      "now", log)


if __name__ == "__main__":
    f.main()
