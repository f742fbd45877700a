#!/usr/bin/python3
"""Fault: slow clients.  Slowloris connections that send their headers
a byte at a time, and WebSockets that join a busy chat and never read.

The well-behaved pair keeps chatting with nothing lost; the slow ones
are cut off by the documented limits (408 after request_timeout; a
reader that does not read is dropped once output_high_water bytes wait
for it), and neither costs a log line or a busy loop per connection."""
import socket
import time

import ccharness as h
import faults as f

SLOW = 200          # slowloris connections
DEAF = 20           # WebSockets that never read


def established(server_port, client_ports):
    """Of the connections from client_ports to server_port, those the
    server still holds ESTABLISHED (its side, from /proc/net/tcp: seen
    without reading, which would make a deaf client a reader)."""
    held = set()
    with open("/proc/net/tcp") as fp:
        for line in fp.readlines()[1:]:
            local, remote, state = line.split()[1:4]
            if int(local.split(":")[1], 16) == server_port and \
                    state == "01":
                port = int(remote.split(":")[1], 16)
                if port in client_ports:
                    held.add(port)
    return held


class SlowClients(f.FaultCase):

    def test_slowloris_and_never_read(self):
        srv = self.server({"server": {"request_timeout": "2s",
                                      "output_high_water": "64k"}})
        c = self.chatter(srv)
        # Never-read members of a chat that a flood keeps busy.
        load = self.chatter(srv, interval=0, window=4, label="load")
        deaf = []
        for _ in range(DEAF):
            deaf.append(h.raw_ws(srv, load.chat, load.rt, rcvbuf=4096))
        self.cleanups.append(lambda: [w.close() for w in deaf])
        base = f.Meter(srv)
        time.sleep(2.0)
        base_cpu = base.cpu() / 2.0   # a second of this load alone
        meter = f.Meter(srv)
        slow = []
        for _ in range(SLOW):
            s = socket.create_connection(("127.0.0.1", srv.port),
                                         source_address=("127.0.0.3", 0))
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        self.cleanups.append(lambda: [s.close() for s in slow])
        start = time.time()
        while time.time() - start < 4.0:      # a byte every 0.5 s each
            for s in slow:
                try:
                    s.send(b"X")
                except OSError:
                    pass
            time.sleep(0.5)
        # Every slow request was answered 408 and closed.
        answered = 0
        for s in slow:
            s.settimeout(2)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            answered += data.startswith(b"HTTP/1.1 408")
        self.assertEqual(answered, SLOW, "408 for every slow request")
        # Every deaf reader is dropped (the server closed it), in time:
        # the kernel's buffers take a few MB before the server's own
        # output_high_water counts.
        ports = {w.sock.getsockname()[1] for w in deaf}
        self.wait_for(lambda: not established(srv.port, ports), timeout=30,
                      what="the readers that never read to be dropped")
        c.wait_acked(20)
        # The slow ones cost no busy loop: CPU as for the load alone.
        elapsed = time.time() - meter.t0
        self.assert_bounded(meter, cpu=1.5 * base_cpu * elapsed + 0.5,
                            lines=60, what="slow clients")
        self.assert_nothing_lost(c)
        self.assert_nothing_lost(load)


if __name__ == "__main__":
    f.main()
