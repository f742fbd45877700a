#!/usr/bin/python3
"""High availability: a carechatd node lost behind a load balancer.

Two nodes (one PostgreSQL database, Redis fan-out) behind HAProxy on
loopback (TCP mode, GET /readyz checks every 500 ms); patients and
professionals connect through the balancer only, so some land on each
node.  One node is killed (SIGKILL) and stays down.  Clients whose
connection dropped reconnect through the balancer, which sends them to
the node that is left; a professional resumes with since=<the last
message it got> and receives everything it missed, once, in history
order; patients' sends are acknowledged again within seconds; the node
that is left logs little."""
import os
import time

import ccharness as h
import faults as f
import ha


def joins(srv):
    """{(professional id, chat id)} of the WebSockets that joined srv."""
    got = set()
    for ev in h.read_json_lines(srv.conf["audit"]["file"]):
        if ev["event"] == "ws_join" and ev.get("professional_id"):
            got.add((ev["professional_id"], ev["chat_id"]))
    return got


class NodeLost(f.FaultCase):

    def setUp(self):
        super().setUp()
        f.need_plugin("storage-postgres", "libpq")
        f.need_plugin("fanout-redis", "hiredis")
        self.pg = h.PgCluster()
        self.cleanups.append(self.pg.close)
        self.redis = h.RedisServer()
        self.cleanups.append(self.redis.close)

    def node(self, conninfo):
        """A node that keeps an audit trail (who joined which chat)."""
        srv = h.Server({"server": {"log_level": "info"},
                        "storage": {"plugin": "postgres",
                                    "conninfo": conninfo, "path": None},
                        "fanout": {"plugin": "redis",
                                   "address": self.redis.address()}})
        srv.conf["audit"] = {"file": os.path.join(srv.tmp, "audit.log")}
        self.cleanups.append(srv.close)
        self.servers.append(srv)
        return srv.start()

    def test_node_killed(self):
        conninfo = self.pg.new_db()
        a, b = self.node(conninfo), self.node(conninfo)

        proxy = ha.HAProxy([a, b])
        self.cleanups.append(proxy.close)
        chatters, pros = [], []
        for i in range(4):
            chat, pt, rt, _, pro = h.World(b).pair()
            c = f.Chatter(proxy, chat, pt, rt, recv_srv=proxy, resume=True,
                          label="chat%d" % i)
            self.cleanups.append(c.stop)
            chatters.append(c.start())
            pros.append((pro, chat))
        time.sleep(1.0)
        # The node with more professionals goes: some must resume.
        on = [len(joins(srv) & set(pros)) for srv in (a, b)]
        victim, b = (a, b) if on[0] >= on[1] else (b, a)
        meter = f.Meter(b)
        t0 = time.time()
        victim.proc.kill()
        victim.proc.wait(10)
        for c in chatters:
            c.wait_acked(5, timeout=20)
        resumed = time.time() - t0
        # Each professional has what was acknowledged so far.
        self.wait_delivered(chatters, timeout=10)
        caught_up = time.time() - t0
        time.sleep(1.0)
        dropped = sum(c.reconnects + c.recv_reconnects for c in chatters)
        self.assertEqual(sum(c.recv_reconnects for c in chatters),
                         max(on), "the professionals of the lost node "
                         "reconnected, once each")
        if os.environ.get("CC_TEST_VERBOSE"):
            print("# node killed: sends acknowledged again %.1f s later; "
                  "every professional had everything %.1f s later; %d "
                  "connections reconnected" % (resumed, caught_up, dropped))
        self.assertGreater(dropped, 0, "some clients were on the node "
                           "that was killed")
        for c in chatters:
            self.assertEqual(c.refused, [], c.label)
            self.assert_all_delivered(c, srv=b, reconnected=True)
        self.assert_bounded(meter, cpu=4.0, lines=40, what="node B")


if __name__ == "__main__":
    f.main()
