#!/usr/bin/python3
"""SIGHUP re-reads the configuration file (core/reload.c): log_level,
the [server] limits and allowed_origins change at once; keys read only at
start are named in one log line and keep their running values; a file
that does not parse or has a bad value changes nothing, and carechatd -t
says the same of it.
"""
import os
import signal
import subprocess
import time

import ccharness as h

CARECHATD = os.path.join(h.BUILDDIR, "carechatd")
DONE = ("config: reloaded ", "keeping all current settings")


class Reload(h.ServerCase):
    FRESH = True   # a server per test: each reloads its own
    CONF = {"server": {"log_level": "info", "max_content_length": "100",
                       "allowed_origins": "https://a.example, "
                                          "https://b.example"}}

    def hup(self, server=None, text=None):
        """Rewrite the file (server: {key: value} merged into [server], or
        text: the whole file), send SIGHUP and wait until the reload is
        logged; returns the log lines it wrote."""
        if text is not None:
            with open(self.srv.conf_path, "w") as f:
                f.write(text)
        else:
            self.srv.conf["server"].update(server or {})
            self.srv.write_conf()
        before = self.srv.read_log()
        self.srv.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 5
        while True:
            new = self.srv.read_log()[len(before):]
            if any(d in new for d in DONE):
                time.sleep(0.05)  # the lines that follow in the same turn
                return self.srv.read_log()[len(before):]
            self.assertLess(time.time(), deadline, "reload not logged")
            time.sleep(0.02)

    def ws(self, chat, tok, origin=None):
        return self.raw_ws(chat, tok, status=None,
                           headers={"Origin": origin} if origin else None)

    def send(self, ws, content):
        ws.send_json({"content": content})
        return ws.recv_json()

    def assert_length_limit(self, ws, limit):
        over = self.send(ws, "x" * (limit + 1))
        self.assertEqual(over, {"error": "Message content too long (max %d "
                                         "characters)" % limit})
        under = self.send(ws, "y" * limit)
        self.assertEqual(under["message"]["content"], "y" * limit)

    def test_log_level_and_content_length(self):
        chat, pt, _, _, _ = self.world.pair()
        a = self.ws(chat, pt)
        self.assertEqual(a.status, 101)
        self.assertEqual(self.send(a, "z" * 80)["message"]["content"],
                         "z" * 80)
        self.assertNotIn(" debug ", self.srv.read_log())
        out = self.hup({"log_level": "debug", "max_content_length": "50"})
        self.assertIn("applied max_content_length, log_level", out)
        self.assertNotIn("restart", out)
        # The connection open before the reload has the new limit too.
        self.assert_length_limit(a, 50)
        # Debug lines now: a join says so.
        b = self.ws(chat, pt)
        self.assertEqual(b.status, 101)
        deadline = time.time() + 5
        while "joined chat" not in self.srv.read_log():
            self.assertLess(time.time(), deadline, "no debug line")
            time.sleep(0.02)
        self.assertIn(" debug ws: ", self.srv.read_log())
        # And back: no change is a reload too.
        self.assertIn("no change applied", self.hup())

    def test_broken_file_keeps_every_setting(self):
        chat, pt, _, _, _ = self.world.pair()
        a = self.ws(chat, pt)
        self.hup({"max_content_length": "50"})
        # A good change before a bad value in the same file: neither.
        self.srv.conf["server"].update({"log_level": "error",
                                        "max_content_length": "20"})
        self.srv.conf["server"]["max_body_size"] = "lots"
        out = self.hup({})
        self.assertRegex(out, r"carechat\.conf:\d+: \[server\] "
                              r"max_body_size: expected a non-negative")
        self.assertIn("keeping all current settings", out)
        self.assert_length_limit(a, 50)
        # Still at info: this line is logged.
        self.srv.request("GET", "/nope")
        self.assertIn("GET /nope", self.srv.read_log())
        # carechatd -t refuses it with the same words.
        r = subprocess.run([CARECHATD, "-t", "-c", self.srv.conf_path],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr.decode(),
                         r"carechat\.conf:\d+: \[server\] "
                         r"max_body_size: expected a non-negative")
        # Not a config file at all.
        out = self.hup(text="[server]\nthis is not ini\n")
        self.assertRegex(out, r"carechat\.conf:2: syntax error")
        self.assertIn("keeping all current settings", out)
        out = self.hup(text="[server]\n[nosuch]\nkey = 1\n")
        self.assertIn("unknown section [nosuch]", out)
        self.assert_length_limit(a, 50)
        self.assertIsNone(self.srv.proc.poll())

    def test_allowed_origins(self):
        chat, pt, _, _, _ = self.world.pair()
        self.assertEqual(self.ws(chat, pt, "https://b.example").status, 101)
        out = self.hup({"allowed_origins": "https://a.example"})
        self.assertIn("applied allowed_origins", out)
        b = self.ws(chat, pt, "https://b.example")
        self.assertEqual(b.status, 403, b.body)
        self.assertEqual(self.ws(chat, pt, "https://a.example").status, 101)
        self.hup({"allowed_origins": ""})
        self.assertEqual(self.ws(chat, pt, "https://c.example").status, 101)

    def test_restart_keys_are_named_and_kept(self):
        port = self.srv.port
        self.srv.conf["storage"]["path"] += ".other"
        out = self.hup({"listen": "127.0.0.1:%d" % h.free_port(),
                        "threads": "2", "chat_cache": "10",
                        "message_rate": "5"})
        self.assertIn("applied message_rate", out)
        self.assertIn("only applied by a restart: listen, [storage], "
                      "threads, chat_cache", out)
        self.assertEqual(self.srv.port, port)
        self.assertEqual(self.srv.request("GET", "/healthz")[0], 200)


if __name__ == "__main__":
    h.main()
