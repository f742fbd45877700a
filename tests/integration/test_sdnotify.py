#!/usr/bin/python3
"""carechatd and systemd's notify protocol (Type=notify, core/sdnotify.c):
the test binds the datagram socket systemd would (NOTIFY_SOCKET) and reads
what the daemon says: READY=1 only once its port accepts, RELOADING=1
then READY=1 around a SIGHUP, STOPPING=1 on SIGTERM, and WATCHDOG=1 pings
at half of WATCHDOG_USEC when WATCHDOG_PID is the daemon's.

Skipped (a failure under CI=true) in a build without libsystemd.
"""
import os
import re
import signal
import socket
import time
import unittest

import ccharness as h


def built_with_systemd():
    try:
        with open(os.path.join(h.BUILDDIR, "ccbuild.h")) as f:
            return re.search(r"^#define HAVE_LIBSYSTEMD 1$", f.read(), re.M)
    except OSError:
        return False


class NotifyCase(unittest.TestCase):
    """A daemon with NOTIFY_SOCKET on a socket of ours; WATCHDOG_USEC and
    WATCHDOG_PID ("self": the daemon's) when the class sets them."""
    WATCHDOG_USEC = None
    WATCHDOG_PID = "self"

    def setUp(self):
        if not built_with_systemd():
            h.skip_or_fail("carechatd built without libsystemd (configure "
                           "--with-systemd; Debian: libsystemd-dev)")
        self.srv = h.Server()
        self.path = os.path.join(self.srv.tmp, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.seen = []
        env = ["env", "NOTIFY_SOCKET=" + self.path]
        if self.WATCHDOG_USEC:
            env.append("WATCHDOG_USEC=%d" % self.WATCHDOG_USEC)
        if self.WATCHDOG_PID == "self":
            # The shell's pid, which exec keeps: the daemon's.
            env += ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"']
        else:
            env.append("WATCHDOG_PID=" + self.WATCHDOG_PID)
        self.srv.wrapper = env
        self.srv.start(wait=False)

    def tearDown(self):
        self.sock.close()
        self.srv.close()

    def recv(self, timeout):
        """The next datagram's assignments, as a dict, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            return None
        return dict(kv.split("=", 1) for kv in data.split("\n") if kv)

    def wait_for(self, key, timeout=15):
        """Read until a datagram sets key and return it; every datagram
        read is kept in self.seen."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            msg = self.recv(deadline - time.time())
            if msg is None:
                break
            self.seen.append(msg)
            if key in msg:
                return msg
        self.fail("no %s from carechatd within %ss; log:\n%s" %
                  (key, timeout, self.srv.read_log()[-2000:]))

    def pings(self, seconds):
        """WATCHDOG=1 datagrams in the next seconds."""
        t0, n = time.time(), 0
        while time.time() - t0 < seconds:
            msg = self.recv(t0 + seconds - time.time())
            if msg and msg.get("WATCHDOG") == "1":
                n += 1
        return n

    def accepts(self):
        try:
            return self.srv.request("GET", "/healthz")[0] == 200
        except OSError:
            return False


class Notify(NotifyCase):
    def test_ready_reload_stopping(self):
        ready = self.wait_for("READY")
        self.assertEqual(ready["READY"], "1")
        # READY=1 comes only once the port accepts.
        self.assertTrue(self.accepts(), "READY=1 before the port accepts")
        self.srv.proc.send_signal(signal.SIGHUP)
        reloading = self.wait_for("RELOADING", timeout=5)
        self.assertEqual(reloading["RELOADING"], "1")
        self.assertRegex(reloading.get("MONOTONIC_USEC", ""), r"^\d+$")
        self.assertEqual(self.wait_for("READY", timeout=5)["READY"], "1")
        self.assertTrue(self.accepts())
        self.srv.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.wait_for("STOPPING", timeout=5)["STOPPING"],
                         "1")
        self.assertEqual(self.srv.proc.wait(10), 0)
        # No watchdog was asked for: no pings.
        self.assertFalse([m for m in self.seen if "WATCHDOG" in m],
                         self.seen)


class Watchdog(NotifyCase):
    WATCHDOG_USEC = 200000  # a ping every 100 ms

    def test_pings_at_half_the_period(self):
        self.wait_for("READY")
        n = self.pings(1.0)
        # About 10 in a second; a loaded machine may delay a few.
        self.assertGreaterEqual(n, 5, self.srv.read_log()[-2000:])
        self.assertLessEqual(n, 14)
        self.assertIn("watchdog: a ping every 100 ms", self.srv.read_log())


class WatchdogOtherPid(NotifyCase):
    """WATCHDOG_PID of another process: the pings are not ours to send."""
    WATCHDOG_USEC = 200000
    WATCHDOG_PID = "1"

    def test_no_pings_for_another_pid(self):
        self.wait_for("READY")
        self.assertEqual(self.pings(0.5), 0)


if __name__ == "__main__":
    h.main()
