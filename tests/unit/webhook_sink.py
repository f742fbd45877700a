"""A webhook receiver for tests/unit/test_webhook.c.

    webhook_sink.py SECRET_FILE PKI_DIR

Makes a test CA, a second CA that signed nothing, and a certificate for
127.0.0.1 signed by the first (openssl CLI, into PKI_DIR), then serves
HTTP and HTTPS on 127.0.0.1 and prints "ports <http> <https>" (https 0
when openssl is missing).  Each request is printed as one JSON line,
before it is answered: method, path, headers, the body as received, and
whether X-Carechat-Signature is the HMAC-SHA256 of the body with the
secret (checked here with Python's hmac, independently of the plugin).
The path chooses the answer:
    /status/N     HTTP N (302 with Location: /ok)
    /stall/S      wait S seconds, then 200
    /flaky        500 the first time a notification id is seen, then 200
    /stallonce    stall 5 s the first time an id is seen, then 200
    anything else 200
Exits when its stdin closes.
"""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time

SECRET = open(sys.argv[1], "rb").read().rstrip(b"\r\n")
PKI = sys.argv[2]
seen = set()
lock = threading.Lock()


def first_time(nid):
    with lock:
        if nid in seen:
            return False
        seen.add(nid)
        return True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        sig = self.headers.get("X-Carechat-Signature", "")
        want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        try:
            json.loads(body)
            json_ok = True
        except ValueError:
            json_ok = False
        nid = self.headers.get("X-Carechat-Notification", "")
        rec = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("utf-8", "backslashreplace"),
               "sig_ok": hmac.compare_digest(sig, want), "json_ok": json_ok}
        with lock:
            sys.stdout.write(json.dumps(rec) + "\n")
            sys.stdout.flush()
        status = 200
        if self.path.startswith("/status/"):
            status = int(self.path[8:])
        elif self.path.startswith("/stall/"):
            time.sleep(float(self.path[7:]))
        elif self.path == "/flaky" and first_time(nid):
            status = 500
        elif self.path == "/stallonce" and first_time(nid):
            time.sleep(5)
        try:
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/ok")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        except OSError:
            pass  # the client gave up (its timeout)

    do_GET = do_PUT = do_HEAD = do_POST   # a followed redirect shows

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that closed its kept-alive connection


def openssl(*args):
    subprocess.run(("openssl",) + args, cwd=PKI, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki():
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *ec, "-keyout", ca + ".key", "-out",
                ca + ".pem", "-days", "2", "-subj", "/CN=carechat " + ca)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")
    with open(os.path.join(PKI, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey",
            "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2",
            "-extfile", "ext")


def serve(srv):
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    http_port = serve(Server(("127.0.0.1", 0), Handler))
    https_port = 0
    if shutil.which("openssl"):
        make_pki()
        tls = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(PKI, "server.pem"),
                            os.path.join(PKI, "server.key"))
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        https_port = serve(tls)
    sys.stdout.write("ports %d %d\n" % (http_port, https_port))
    sys.stdout.flush()
    sys.stdin.read()


main()
