#!/usr/bin/python3
"""Safe at rest (DESIGN invariant 9): every file carechatd creates is
readable by its owner and group at most, whatever umask it was started
with, and a database that is already readable by others gets one warning
naming the files and the chmod that makes them private.

carechatd is started from a shell with umask 000 (the most permissive: a
script, an init system or a container that sets none), chats over REST
with the audit trail on, and every file it made in its directory (the
database, -wal, -shm, the audit file) has no bit for others.  SQLite gives
a new -wal and -shm the mode of the database file, whatever the umask, so
a database copied in as 0644 exposes them too: that start logs one
warning, and the chmod it prints leaves the next start silent."""
import os
import signal
import stat
import subprocess
import time
import unittest

import ccharness as h

WARNING = "readable by every local account"
# The daemon as an operator's script would start it: umask 000.
PERMISSIVE = ["/bin/sh", "-c", 'umask 000 && exec "$@"', "sh"]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def chat_a_little(srv):
    """A chat and two messages over REST: the writer commits (-wal),
    the reader reads (-shm) and the audit trail records both."""
    world = h.World(srv)
    chat, pt, rt, _, _ = world.pair()
    for tok in (pt, rt):
        st, _, body = srv.request(
            "POST", "/chat/chats/%s/send_message/" % chat,
            {"content": "blood pressure 120/80"}, token=tok)
        assert st == 201, (st, body)
    st, _, body = srv.request("GET", "/chat/chats/%s/messages/" % chat,
                              token=pt)
    assert st == 200 and len(body["results"]) == 2, (st, body)


class FileModes(unittest.TestCase):
    SQLITE_ONLY = True

    def setUp(self):
        self.srv = h.Server()
        self.audit = os.path.join(self.srv.tmp, "audit.log")
        self.srv.conf["audit"] = {"file": self.audit}
        self.srv.wrapper = PERMISSIVE
        # The test's own files, written by this process, not carechatd.
        self.ours = {os.path.basename(self.srv.conf_path),
                     os.path.basename(self.srv.log_path)}

    def tearDown(self):
        self.srv.close()

    def created(self):
        return sorted(f for f in os.listdir(self.srv.tmp)
                      if f not in self.ours)

    def test_nothing_for_others_under_umask_000(self):
        self.srv.start()
        chat_a_little(self.srv)
        db = self.srv.conf["storage"]["path"]
        deadline = time.time() + 5  # the audit writer syncs every 100 ms
        while time.time() < deadline and not (
                os.path.exists(self.audit) and os.path.getsize(self.audit)):
            time.sleep(0.05)
        made = self.created()
        for f in (db, db + "-wal", db + "-shm", self.audit):
            self.assertIn(os.path.basename(f), made)
        # Checked while it runs (-wal and -shm exist) and after it stopped.
        for when in ("running", "stopped"):
            if when == "stopped":
                self.assertEqual(self.srv.stop(), 0)
            for f in self.created():
                m = mode(os.path.join(self.srv.tmp, f))
                self.assertEqual(m & 0o007, 0, "%s is %04o (%s)" %
                                 (f, m, when))
        self.assertNotIn(WARNING, self.srv.read_log())

    def test_exposed_database_warned_once(self):
        db = self.srv.conf["storage"]["path"]
        self.srv.start()
        chat_a_little(self.srv)
        # A crash leaves the -wal and -shm beside the database; then the
        # three are made 0644, as a copy under umask 022 would be.
        self.srv.stop(sig=signal.SIGKILL)
        files = [db, db + "-wal", db + "-shm"]
        for f in files:
            self.assertTrue(os.path.exists(f), f)
            os.chmod(f, 0o644)
        seen = len(self.srv.read_log())
        self.srv.start()
        chat_a_little(self.srv)
        lines = [ln for ln in self.srv.read_log()[seen:].splitlines()
                 if WARNING in ln]
        self.assertEqual(len(lines), 1, lines)
        line = lines[0]
        self.assertIn("WARN", line.upper())
        for f in files:
            self.assertIn("%s (0644)" % f, line)
        cmd = "chmod o-rwx " + " ".join("'%s'" % f for f in files)
        self.assertTrue(line.endswith(cmd), line)
        # The command, as printed, makes them private; the next start is
        # silent.
        subprocess.run(["/bin/sh", "-c", cmd], check=True)
        for f in files:
            self.assertEqual(mode(f), 0o640, f)
        self.srv.stop()
        seen = len(self.srv.read_log())
        self.srv.start()
        self.assertNotIn(WARNING, self.srv.read_log()[seen:])


if __name__ == "__main__":
    h.main()
