#!/usr/bin/python3
"""Fault: the SQLite database's file system fills up under a flood of
messages, then space is freed.

While it is full every sender is told its message could not be stored
and nothing refused reaches anyone; space freed during the flood goes
to messages (not to a growing log); once space is back (and the flood
that filled it is over), sending works again by itself; the log of the whole episode stays short (it is
usually on the disk that is full)."""
import os
import subprocess
import tempfile
import time

import ccharness as h
import faults as f

SIZE_MB = 16
LEAVE = 2 << 20         # bytes left free before the flood


class DiskFull(f.FaultCase):

    def setUp(self):
        super().setUp()
        f.need_root("mounting a small tmpfs")
        self.tmp = tempfile.mkdtemp(prefix="carechat-disk-")
        self.disk = os.path.join(self.tmp, "disk")
        os.mkdir(self.disk)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % SIZE_MB,
                            "tmpfs", self.disk], stderr=subprocess.PIPE)
        if r.returncode != 0:
            h.skip_or_fail("cannot mount a tmpfs: %s" % r.stderr.decode())
        if not os.environ.get("CC_KEEP_TMP"):
            self.cleanups.append(lambda: h.shutil.rmtree(self.tmp, True))
        self.cleanups.append(lambda: subprocess.run(["umount", "-l",
                                                     self.disk]))

    def fill(self, name, leave=None, size=None):
        """Write a file of size bytes, or one that leaves `leave` free."""
        st = os.statvfs(self.disk)
        n = size if size else st.f_bavail * st.f_frsize - leave
        path = os.path.join(self.disk, name)
        with open(path, "wb") as fp:
            fp.write(b"\0" * max(0, n))
        return path

    def test_fills_and_frees(self):
        srv = self.server({"storage": {"path": os.path.join(
            self.disk, "carechat.db")}}, tmpdir=self.tmp, storage="sqlite")
        meter = f.Meter(srv)
        c = self.chatter(srv)
        load = self.chatter(srv, interval=0, window=16, label="load")
        kept = self.fill("kept", size=2 << 20)  # freed at the end
        filler = self.fill("filler", LEAVE)
        self.wait_for(lambda: c.refused and load.refused, timeout=60,
                      what="the disk to fill")
        time.sleep(1.0)           # full for a while, under the flood
        st, why = f.readyz(srv)
        self.assertEqual((st, why), (503, "storage: database or disk is "
                                          "full"), "/readyz while full")
        # Space freed while the flood goes on: it fills it again, with
        # messages that are stored (megabytes a second).
        os.unlink(filler)
        time.sleep(3.0)
        refused_full = len(c.refused) + len(load.refused)
        # The flood is over; the operator frees more space.
        load.stop()
        os.unlink(kept)
        freed = time.time()
        # Back by itself: the next sends are stored.
        self.wait_for(lambda: c.sent_after(freed + 0.5)[0] >= 5,
                      timeout=10, what="sends to be stored again")
        time.sleep(1.0)
        self.assertEqual(f.readyz(srv)[0], 200, "ready once there is room")
        wal = os.path.getsize(os.path.join(self.disk, "carechat.db-wal"))
        self.assertEqual(c.sent_after(freed + 0.5)[1], 0,
                         "refused after space came back")
        for err in c.errors + load.errors:
            self.assertEqual(err, f.STORE_ERROR)
        self.assertGreater(refused_full, 20)
        # The space holds messages, not log: once writes resume, the log
        # restarts sooner and its file is cut back to what the disk had
        # room for, so what it took goes to the database (the WAL kept
        # 8.7-9.3 MB of this 16 MB file system before; 3.5-4.6 MB now,
        # with two other processes spinning too).
        self.assertLess(wal, 0.4 * (SIZE_MB << 20), "the WAL took %.1f MB of "
                        "the %d MB disk" % (wal / 1e6, SIZE_MB))
        elapsed = time.time() - meter.t0
        self.assert_bounded(meter, cpu=0.8 * elapsed, lines=200,
                            what="disk full")
        for who in (c, load):
            self.assert_nothing_lost(who)


if __name__ == "__main__":
    f.main()
