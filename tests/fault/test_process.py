#!/usr/bin/python3
"""Fault: carechatd killed with SIGKILL under load, and started again.

Every message acknowledged before the kill is in history afterwards,
once and in order; clients reconnect by themselves (with backoff, as the
spec asks) and go on chatting; the new process starts with a short
log."""
import signal
import time

import faults as f


class Kill(f.FaultCase):

    def test_kill_9_under_load(self):
        srv = self.server()
        c = self.chatter(srv)
        load = self.chatter(srv, interval=0, window=16, label="load")
        load.wait_acked(500)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        srv.log.close()
        acked_before = (len(c.acked), len(load.acked))
        time.sleep(0.5)
        srv.start()
        meter = f.Meter(srv)
        # Both reconnect and carry on.
        c.wait_acked(10)
        load.wait_acked(500)
        self.assertGreater(c.reconnects + load.reconnects, 0)
        self.assert_bounded(meter, cpu=10.0, lines=40, what="after kill")
        for who in (c, load):
            self.assert_nothing_lost(who)
        self.assertGreater(acked_before[1], 0)


if __name__ == "__main__":
    f.main()
