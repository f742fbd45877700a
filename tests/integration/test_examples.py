"""The integrator's examples in doc/examples, built the way
doc/plugin-guide.md tells an integrator to: out of tree, with their own
Makefiles, $(CC) and `pkg-config carechat-plugin` (pointed at this
source tree's public headers, since nothing is installed here), then
loaded into a real carechatd.  A WebSocket connects with one of
auth-tokenfile's tokens, so the guide's promise is checked, not just its
compilation; notify-log passes `carechatd -t`.
"""
import os
import shutil
import subprocess
import tempfile
import unittest
import uuid

import ccharness
from ccharness import BUILDDIR, SRCDIR, Server

EXAMPLES = os.path.join(SRCDIR, "doc", "examples")


def build_example(tmp, name="auth-tokenfile"):
    """Copy the example doc/examples/<name> out of the tree and run its
    Makefile; the path of the plugin it built (<name>.so) and the build's
    output."""
    if not shutil.which("pkg-config") or not shutil.which("make"):
        ccharness.skip_or_fail("pkg-config and make are needed to build "
                               "the example (Debian: pkg-config make)")
    src = os.path.join(tmp, name)
    shutil.copytree(os.path.join(EXAMPLES, name), src)
    env = dict(os.environ, PKG_CONFIG_PATH=BUILDDIR)
    r = subprocess.run(
        ["make", "-C", src, "CC=" + os.environ.get("CC", "cc"),
         "CFLAGS=-O2 -g -Wall -Wextra -Werror",
         # carechat-plugin.pc of this build, but the headers of the
         # source tree: what an install would put in $(includedir).
         "PKG_CONFIG=pkg-config --define-variable=includedir=" +
         os.path.join(SRCDIR, "include")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=120)
    if r.returncode != 0:
        raise AssertionError("building the example failed:\n" +
                             r.stdout.decode())
    return os.path.join(src, name + ".so"), r.stdout.decode()


def check_public_only(test, plugin, build_log):
    """Built with the public headers only; exports cc_plugin_entry only."""
    test.assertIn("-I" + os.path.join(SRCDIR, "include"), build_log)
    test.assertNotIn("/core", build_log)
    if shutil.which("nm"):
        out = subprocess.run(["nm", "-D", "--defined-only", plugin],
                             stdout=subprocess.PIPE,
                             timeout=30).stdout.decode()
        exported = [line.split()[-1] for line in out.splitlines()
                    if line.split()[1:2] == ["T"]]
        test.assertEqual(exported, ["cc_plugin_entry"])


def check_conf(conf):
    """carechatd -t -c on conf (a Server's sections): its exit status and
    output."""
    srv = Server(conf)
    try:
        srv.write_conf()
        r = subprocess.run([os.path.join(BUILDDIR, "carechatd"), "-t",
                            "-c", srv.conf_path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        return r.returncode, r.stdout.decode()
    finally:
        srv.close()


class TokenFileExample(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="carechat-example-")
        cls.plugin, cls.build_log = build_example(cls.tmp)
        cls.pat, cls.pro = str(uuid.uuid4()), str(uuid.uuid4())
        cls.tokens = {k: "tok-%s-%s" % (k, uuid.uuid4().hex)
                      for k in ("admin", "patient", "pro")}
        cls.tokens_file = os.path.join(cls.tmp, "tokens")
        with open(cls.tokens_file, "w") as f:
            f.write("# test tokens\n\n"
                    "%s admin-1 admin\n" % cls.tokens["admin"] +
                    "%s alice patient=%s\n" % (cls.tokens["patient"],
                                               cls.pat) +
                    "%s dr-who professional=%s\n" % (cls.tokens["pro"],
                                                     cls.pro))
        cls.srv = Server({"auth": {"plugin": cls.plugin, "secret": None,
                                   "tokens_file": cls.tokens_file}})
        cls.srv.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.close()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_built_with_public_headers_only(self):
        check_public_only(self, self.plugin, self.build_log)

    def test_websocket_connects_with_a_listed_token(self):
        for kind, pid in (("patient", self.pat),
                          ("professional", self.pro)):
            status, _, body = self.srv.request(
                "POST", "/chat/profiles/", {"kind": kind, "id": pid},
                token=self.tokens["admin"])
            self.assertEqual(status, 201, body)
        status, _, chat = self.srv.request(
            "POST", "/chat/chats/", {"professional": self.pro},
            token=self.tokens["patient"])
        self.assertEqual(status, 201, chat)
        ws = ccharness.raw_ws(self.srv, chat["id"], self.tokens["pro"],
                              header=True)
        try:
            self.assertEqual(ws.status, 101)
            ws.send_json({"content": "signed in by a tokens file"})
            msg = ws.recv_json()["message"]
            self.assertEqual(msg["content"], "signed in by a tokens file")
            self.assertEqual(msg["sender_type"], "professional")
        finally:
            ws.close()

    def test_unlisted_token_refused(self):
        status, _, body = self.srv.request("GET", "/chat/chats/",
                                           token="tok-nobody")
        self.assertEqual((status, body), (401, {"error": "Unknown token"}))
        ws = ccharness.raw_ws(self.srv, uuid.uuid4(), "tok-nobody")
        try:
            self.assertEqual(ws.recv_close(), (4401, "Unknown token"))
        finally:
            ws.close()

    def test_bad_tokens_file_stops_the_start(self):
        bad = os.path.join(self.tmp, "bad-tokens")
        with open(bad, "w") as f:
            f.write("ok-token someone\nlonely-token\n")
        rc, out = check_conf({"auth": {"plugin": self.plugin,
                                       "secret": None,
                                       "tokens_file": bad}})
        self.assertNotEqual(rc, 0)
        self.assertIn("[auth] tokens_file: %s:2: expected TOKEN "
                      "USER_ID" % bad, out)


class NotifyLogExample(unittest.TestCase):
    """doc/examples/notify-log, the notify plugin of the guide."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="carechat-example-")
        cls.plugin, cls.build_log = build_example(cls.tmp, "notify-log")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check(self, **keys):
        rc, out = check_conf({"notify": dict(plugin=self.plugin, **keys)})
        if "unknown section [notify]" in out:
            self.skipTest("this carechatd has no [notify] section yet")
        return rc, out

    def test_built_with_public_headers_only(self):
        check_public_only(self, self.plugin, self.build_log)

    def test_loads(self):
        rc, out = self.check(level="debug")
        self.assertEqual(rc, 0, out)

    def test_bad_value_refused_with_its_line(self):
        rc, out = self.check(level="loud")
        self.assertNotEqual(rc, 0)
        self.assertRegex(out, r":\d+: \[notify\] level: must be info or "
                              r"debug")


if __name__ == "__main__":
    ccharness.main()
