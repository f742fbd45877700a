"""demo.py - run carechatd from the build tree on its embedded defaults
(SQLite, HS256, local fan-out) and print how to connect.

Used by `make run`.  State lives in ./run/ of the build directory: the
database, a random JWT secret (kept, so printed tokens stay valid across
runs) and the generated config.  Stop with Ctrl-C.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "integration"))
import ccharness  # noqa: E402  (token minting, REST client)

PATIENT = "6f1d8a52-3c47-4b0e-9a51-2d0c7e9b1a01"
PROFESSIONAL = "0b7e4c9d-8a21-4f6e-b3d5-7c19e2a4f802"
PORT = int(os.environ.get("CARECHAT_PORT", "8000"))


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def main():
    build = os.path.abspath(os.environ.get("CC_BUILDDIR", "."))
    run = os.path.join(build, "run")
    os.makedirs(run, exist_ok=True)
    secret_path = os.path.join(run, "jwt-secret")
    if not os.path.exists(secret_path):
        with open(os.open(secret_path, os.O_WRONLY | os.O_CREAT, 0o600),
                  "w") as f:
            f.write(os.urandom(32).hex())
    secret = open(secret_path).read().strip()
    www = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "www")
    listen = "127.0.0.1:%d" % PORT
    if ipv6_loopback():
        listen += ", [::1]:%d" % PORT  # "localhost" may resolve to ::1
    conf = os.path.join(run, "carechat.conf")
    with open(conf, "w") as f:
        f.write("[server]\nlisten = %s\nplugin_dir = %s\nlog_level = info\n"
                "demo = yes\ndemo_dir = %s\n"
                "\n[storage]\nplugin = sqlite\npath = %s\n\n[auth]\n"
                "plugin = jwt\nsecret_file = %s\n\n[fanout]\nplugin = local\n"
                % (listen, os.path.join(build, "plugins", ".libs"), www,
                   os.path.join(run, "carechat.db"), secret_path))
    daemon = subprocess.Popen([os.path.join(build, "carechatd"), "-c", conf])
    srv = ccharness.Server.__new__(ccharness.Server)
    srv.port, srv.proc = PORT, daemon
    srv.log_path = "/dev/null"
    try:
        srv.wait_ready()
    except RuntimeError:
        print("carechatd did not start; see the log above (is port %d "
              "free? set CARECHAT_PORT)" % PORT, file=sys.stderr)
        daemon.kill()
        return 1
    day = 24 * 3600
    admin = ccharness.token("demo-admin", admin=True, secret=secret)
    for kind, pid, name in (("patient", PATIENT, "Alex Morgan"),
                            ("professional", PROFESSIONAL, "Dr. Robin Lee")):
        srv.request("POST", "/chat/profiles/",
                    {"kind": kind, "id": pid, "display_name": name},
                    token=admin)
    pt = ccharness.token("demo-patient", patient=PATIENT, exp_in=day,
                         secret=secret)
    rt = ccharness.token("demo-professional", professional=PROFESSIONAL,
                         exp_in=day, secret=secret)
    status, _, chat = srv.request("POST", "/chat/chats/",
                                  {"professional": PROFESSIONAL}, token=pt)
    if status not in (200, 201):
        print("creating the demo chat failed: %s %s" % (status, chat))
        daemon.terminate()
        return 1
    cid = chat["id"]
    base = "ws://localhost:%d/ws/chat/%s/?token=" % (PORT, cid)
    print("""
carechat is running on http://localhost:%(port)d (Ctrl-C stops it).

Try it in a browser (the demo page, [server] demo = yes), one window each
(narrow one to a phone's width to see the phone layout):
  patient (Alex Morgan):
    http://localhost:%(port)d/#token=%(pt)s&chat=%(cid)s
  professional (Dr. Robin Lee):
    http://localhost:%(port)d/#token=%(rt)s&chat=%(cid)s

Chat id:             %(cid)s
Patient token:       %(pt)s
Professional token:  %(rt)s
(tokens valid for 24 hours; state in %(run)s)

Connect as the patient and as the professional, in two terminals:
  wscat -c "%(base)s%(pt)s"
  wscat -c "%(base)s%(rt)s"
then type: {"content": "Hello!"}

Browser console:
  const ws = new WebSocket('%(base)s%(pt)s');
  ws.onmessage = (e) => console.log(JSON.parse(e.data));
  ws.onopen = () => ws.send(JSON.stringify({content: 'Test message'}));

REST:
  curl -H "Authorization: Bearer %(pt)s" http://localhost:%(port)d/chat/chats/%(cid)s/messages/
""" % {"port": PORT, "cid": cid, "pt": pt, "rt": rt, "run": run,
       "base": base})
    sys.stdout.flush()
    signal.signal(signal.SIGINT, lambda *a: daemon.send_signal(signal.SIGTERM))
    signal.signal(signal.SIGTERM,
                  lambda *a: daemon.send_signal(signal.SIGTERM))
    while daemon.poll() is None:
        try:
            daemon.wait()
        except InterruptedError:
            pass
    return daemon.returncode


if __name__ == "__main__":
    sys.exit(main())
