"""The `jwks` auth plugin against a real carechatd and a test-side JWKS
server on loopback (plain HTTP, and HTTPS with a CA made for the run).

Keys, certificates and signatures come from the openssl command line, the
way an identity provider's would: RS256 and PS256 (`openssl dgst -sign`),
ES256 (its DER signature turned into the raw r || s that JWS carries).
Each case says what the server must answer for a token.
"""
import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import uuid

import ccharness
from ccharness import BUILDDIR, Server, b64url

ISS = "https://idp.test/realms/hospital"
AUD = "carechat"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def openssl(*args, data=None):
    """Run the openssl CLI; its stdout (bytes)."""
    if not os.path.exists(OPENSSL):
        ccharness.skip_or_fail("the openssl command is needed to make test "
                               "keys and certificates (Debian: openssl)")
    r = subprocess.run([OPENSSL] + list(args), input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args),
                                               r.stderr.decode()))
    return r.stdout


def der_items(buf):
    """The (tag, content) items of a DER sequence's content."""
    items, i = [], 0
    while i < len(buf):
        tag, n = buf[i], buf[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(buf[i:i + k], "big")
            i += k
        items.append((tag, buf[i:i + n]))
        i += n
    return items


def der_seq(buf):
    tag, content = der_items(buf)[0]
    assert tag == 0x30
    return der_items(content)


def unsigned(b):
    return b.lstrip(b"\0") or b"\0"


class Key:
    """A signing key made with openssl, and its public JWK."""

    def __init__(self, tmp, kty="RSA", kid=None, bits=2048, crv="P-256"):
        self.kid = kid
        self.path = os.path.join(tmp, "key-%s.pem" % uuid.uuid4().hex[:8])
        if kty == "RSA":
            openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:%d" % bits, "-out", self.path)
        else:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:%s" % crv, "-out", self.path)
        self.public_pem = openssl("pkey", "-in", self.path, "-pubout")
        spki = der_seq(openssl("pkey", "-in", self.path, "-pubout",
                               "-outform", "DER"))
        bits_ = spki[1][1][1:]  # the BIT STRING, less its unused-bits byte
        if kty == "RSA":
            n, e = der_seq(bits_)
            self.jwk = {"kty": "RSA", "n": b64url(unsigned(n[1])),
                        "e": b64url(unsigned(e[1]))}
        else:
            self.coord = (len(bits_) - 1) // 2
            self.jwk = {"kty": "EC", "crv": crv,
                        "x": b64url(bits_[1:1 + self.coord]),
                        "y": b64url(bits_[1 + self.coord:])}
        if kid:
            self.jwk["kid"] = kid
        self.jwk["use"] = "sig"

    def sign(self, data, alg):
        digest = "-sha" + alg[2:]
        args = ["dgst", digest, "-sign", self.path]
        if alg.startswith("PS"):
            args += ["-sigopt", "rsa_padding_mode:pss",
                     "-sigopt", "rsa_pss_saltlen:digest"]
        sig = openssl(*args, data=data)
        if alg.startswith("ES"):  # DER (r, s) to JWS's raw r || s
            r, s = der_seq(sig)
            sig = b"".join(unsigned(x[1]).rjust(self.coord, b"\0")
                           for x in (r, s))
        return sig


def claims(user=None, exp_in=3600, **extra):
    now = int(time.time())
    c = {"sub": user or "u-" + uuid.uuid4().hex[:8], "iss": ISS, "aud": AUD, "iat": now,
         "exp": now + exp_in}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def jws(key, body=None, alg=None, kid="key", header=None, sign_with=None):
    """A compact JWS of body (claims) signed by key (or sign_with);
    kid="key" takes the key's kid, None leaves it out."""
    alg = alg or ("RS256" if key.jwk["kty"] == "RSA" else "ES256")
    hdr = {"alg": alg, "typ": "JWT"}
    if kid == "key":
        kid = key.kid
    if kid is not None:
        hdr["kid"] = kid
    hdr.update(header or {})
    signing = (b64url(json.dumps(hdr).encode()) + "." +
               b64url(json.dumps(body or claims()).encode()))
    sig = (sign_with or key).sign(signing.encode(), alg)
    return signing + "." + b64url(sig)


def jwks_doc(*keys):
    return json.dumps({"keys": [k.jwk for k in keys]}).encode()


# ------------------------------------------------------ the JWKS server
class JwksServer:
    """Serves one document at /jwks.json on 127.0.0.1, over TLS when given
    a certificate; counts the GETs.  publish() swaps the document."""

    def __init__(self, tmp, cert=None, key=None):
        self.path = os.path.join(tmp, "jwks-%s.json" % uuid.uuid4().hex[:6])
        self.status = 200
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                with open(outer.path, "rb") as f:
                    body = f.read()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client hung up (a size limit)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.httpd.daemon_threads = True
        if cert:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                                server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def publish(self, doc, status=200):
        with open(self.path + ".tmp", "wb") as f:
            f.write(doc)
        os.replace(self.path + ".tmp", self.path)
        self.status = status

    def url(self, host="127.0.0.1", scheme="https"):
        return "%s://%s:%d/jwks.json" % (scheme, host, self.port)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def make_ca(tmp):
    """A throwaway CA and a server certificate for localhost (DNS name
    only, so https://127.0.0.1 must fail the host check)."""
    ca_key, ca = os.path.join(tmp, "ca.key"), os.path.join(tmp, "ca.pem")
    key, csr = os.path.join(tmp, "srv.key"), os.path.join(tmp, "srv.csr")
    cert, ext = os.path.join(tmp, "srv.pem"), os.path.join(tmp, "ext.cnf")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days",
            "2", "-subj", "/CN=carechat test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign")
    openssl("req", *ec, "-keyout", key, "-out", csr, "-subj",
            "/CN=localhost")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
            "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


def jwks_server_conf(**auth):
    conf = {"plugin": "jwks", "secret": None, "issuer": ISS,
            "audience": AUD}
    conf.update(auth)
    return {"auth": conf}


def wait_for(pred, timeout=10, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Base(unittest.TestCase):
    def assertAccepted(self, srv, tok, msg=None):
        status, _, body = srv.request("GET", "/chat/chats/", token=tok)
        self.assertEqual(status, 200, msg or body)

    def assertRefused(self, srv, tok, error):
        status, _, body = srv.request("GET", "/chat/chats/", token=tok)
        self.assertEqual((status, body), (401, {"error": error}))

    def start_fails(self, conf, want):
        """The daemon refuses to start with conf; its log says want."""
        srv = Server(conf)
        try:
            srv.start(wait=False)
            rc = srv.proc.wait(20)
            log = srv.read_log()
            self.assertNotEqual(rc, 0, log)
            self.assertIn(want, log)
        finally:
            srv.close()


# ------------------------------------------------------------ jwks_file
class FileKeys(Base):
    """Tokens against a JWKS file with an RSA and an EC key."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="carechat-jwks-")
        cls.rsa = Key(cls.tmp, "RSA", kid="rsa-1")
        cls.ec = Key(cls.tmp, "EC", kid="ec-1")
        cls.other = Key(cls.tmp, "RSA", kid="rsa-1")  # not published
        path = os.path.join(cls.tmp, "jwks.json")
        with open(path, "wb") as f:
            f.write(jwks_doc(cls.rsa, cls.ec))
        cls.srv = Server(jwks_server_conf(
            jwks_file=path, algorithms="RS256, PS256, ES256",
            audience="carechat, carechat-mobile")).start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.srv.close()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_rs256_accepted(self):
        self.assertAccepted(self.srv, jws(self.rsa))

    def test_es256_accepted(self):
        self.assertAccepted(self.srv, jws(self.ec))

    def test_ps256_accepted(self):
        self.assertAccepted(self.srv, jws(self.rsa, alg="PS256"))

    def test_websocket_with_rs256_and_es256(self):
        """A patient (RS256) and a professional (ES256) chat."""
        admin = jws(self.rsa, claims(user="admin", carechat_admin=True))
        pat, pro = str(uuid.uuid4()), str(uuid.uuid4())
        for kind, pid in (("patient", pat), ("professional", pro)):
            status, _, body = self.srv.request(
                "POST", "/chat/profiles/", {"kind": kind, "id": pid},
                token=admin)
            self.assertEqual(status, 201, body)
        pt = jws(self.rsa, claims(patient_id=pat))
        rt = jws(self.ec, claims(professional_id=pro))
        status, _, chat = self.srv.request(
            "POST", "/chat/chats/", {"professional": pro}, token=pt)
        self.assertEqual(status, 201, chat)
        ws = ccharness.raw_ws(self.srv, chat["id"], rt)
        try:
            self.assertEqual(ws.status, 101)
            ws.send_json({"content": "hello from ES256"})
            msg = ws.recv_json()
            self.assertEqual(msg["message"]["content"], "hello from ES256")
            self.assertEqual(msg["message"]["sender_type"], "professional")
        finally:
            ws.close()

    def test_wrong_key(self):
        """Signed by a key that is not published, under a published kid."""
        self.assertRefused(self.srv, jws(self.other),
                           "Invalid token signature")

    def test_tampered_payload(self):
        h, _, s = jws(self.rsa).split(".")
        p = b64url(json.dumps(claims(user="mallory")).encode())
        self.assertRefused(self.srv, "%s.%s.%s" % (h, p, s),
                           "Invalid token signature")

    def test_hs256_with_the_public_key_as_secret(self):
        """The classic algorithm confusion: HMAC keyed with the PEM."""
        import hashlib
        import hmac

        class Hmac:
            def sign(self, data, alg):
                return hmac.new(self.pem, data, hashlib.sha256).digest()
        h = Hmac()
        h.pem = self.rsa.public_pem
        self.assertRefused(self.srv, jws(self.rsa, alg="HS256",
                                         sign_with=h),
                           "Token algorithm not allowed")

    def test_alg_none(self):
        signing = jws(self.rsa).rsplit(".", 1)[0]
        hdr = b64url(json.dumps({"alg": "none", "kid": "rsa-1"}).encode())
        tok = hdr + "." + signing.split(".")[1] + "."
        self.assertRefused(self.srv, tok, "Token algorithm not allowed")

    def test_alg_not_matching_the_key_type(self):
        """ES256 claimed for the RSA key's kid, signed with the EC key."""
        self.assertRefused(self.srv, jws(self.ec, kid="rsa-1"),
                           "Token algorithm not allowed")

    def test_alg_not_in_the_allow_list(self):
        self.assertRefused(self.srv, jws(self.rsa, alg="RS384"),
                           "Token algorithm not allowed")

    def test_unknown_kid(self):
        self.assertRefused(self.srv, jws(self.rsa, kid="who-is-this"),
                           "Unknown token signing key")

    def test_kid_required_with_several_keys(self):
        self.assertRefused(self.srv, jws(self.rsa, kid=None),
                           "Token has no key id (kid)")

    def test_expired(self):
        self.assertRefused(self.srv, jws(self.rsa, claims(exp_in=-120)),
                           "Token expired")

    def test_not_yet_valid(self):
        tok = jws(self.rsa, claims(nbf=int(time.time()) + 600))
        self.assertRefused(self.srv, tok, "Token not yet valid")

    def test_wrong_issuer(self):
        self.assertRefused(self.srv, jws(self.rsa, claims(iss=ISS + "x")),
                           "Invalid token issuer")
        self.assertRefused(self.srv, jws(self.rsa, claims(iss=None)),
                           "Invalid token issuer")

    def test_wrong_audience(self):
        self.assertRefused(self.srv, jws(self.rsa, claims(aud="other")),
                           "Invalid token audience")
        self.assertRefused(self.srv, jws(self.rsa, claims(aud=None)),
                           "Invalid token audience")

    def test_audience_lists(self):
        """aud may be a list in the token, and the config may list
        several audiences."""
        self.assertAccepted(self.srv, jws(self.rsa, claims(
            aud=["account", "carechat"])))
        self.assertAccepted(self.srv, jws(self.rsa, claims(
            aud="carechat-mobile")))

    def test_token_never_logged(self):
        tok = jws(self.rsa, claims(exp_in=-120))
        self.assertRefused(self.srv, tok, "Token expired")
        log = self.srv.read_log()
        self.assertNotIn(tok.split(".")[2], log)
        self.assertNotIn(tok.split(".")[1], log)


# ---------------------------------------------------- jwks_url (HTTPS)
class UrlKeys(Base):
    """Keys fetched over HTTPS from the test-side server: rotation,
    refresh, rate limit, and the failures that must stop the start."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="carechat-jwks-")
        cls.ca, cls.cert, cls.key = make_ca(cls.tmp)
        cls.k1 = Key(cls.tmp, "RSA", kid="2024-01")
        cls.k2 = Key(cls.tmp, "EC", kid="2024-02")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.jwks = JwksServer(self.tmp, self.cert, self.key)
        self.jwks.publish(jwks_doc(self.k1))

    def tearDown(self):
        self.jwks.close()

    def conf(self, **kw):
        auth = {"jwks_url": self.jwks.url("localhost"), "ca_file": self.ca,
                "min_refresh_interval": "1s"}
        auth.update(kw)
        return jwks_server_conf(**auth)

    def test_rotation_without_restart(self):
        """A new key published and the old one removed: a token naming
        the new kid triggers a refresh and is accepted; the old key's
        tokens are refused from then on."""
        srv = Server(self.conf()).start()
        old = jws(self.k1)
        try:
            self.assertAccepted(srv, old)
            self.assertAccepted(srv, old)  # again: from the token cache
            self.jwks.publish(jwks_doc(self.k2))
            time.sleep(1.1)  # past min_refresh_interval since the start
            self.assertAccepted(srv, jws(self.k2))
            self.assertEqual(self.jwks.hits, 2)
            # The same bytes accepted before: new keys empty the cache.
            self.assertRefused(srv, old, "Unknown token signing key")
            self.assertIn('kid "2024-02" (EC P-256)', srv.read_log())
        finally:
            srv.close()

    def test_periodic_refresh(self):
        srv = Server(self.conf(refresh_interval="1s")).start()
        try:
            self.jwks.publish(jwks_doc(self.k2))
            self.assertTrue(wait_for(lambda: 'kid "2024-02"' in
                                     srv.read_log()), srv.read_log())
            self.assertAccepted(srv, jws(self.k2))
        finally:
            srv.close()

    def test_unknown_kid_flood_is_rate_limited(self):
        """Made-up kids cause at most one fetch per min_refresh_interval
        (here 1 s, so two fetches at the most in about a second)."""
        srv = Server(self.conf()).start()
        try:
            time.sleep(1.1)
            base = self.jwks.hits
            t0 = time.time()
            for i in range(40):
                tok = jws(self.k1, kid="bogus-%d" % i)
                self.assertRefused(srv, tok, "Unknown token signing key")
            elapsed = time.time() - t0
            self.assertLessEqual(self.jwks.hits - base, 1 + int(elapsed),
                                 "fetches in %.1f s" % elapsed)
            self.assertAccepted(srv, jws(self.k1))
        finally:
            srv.close()

    def test_refresh_failure_keeps_the_last_good_keys(self):
        srv = Server(self.conf()).start()
        try:
            self.jwks.publish(b"<html>maintenance</html>", status=503)
            time.sleep(1.1)
            self.assertRefused(srv, jws(self.k2), "Unknown token signing key")
            self.assertTrue(wait_for(lambda: "keeping the keys loaded "
                                     "before" in srv.read_log()))
            self.assertIn("HTTP status 503", srv.read_log())
            self.assertAccepted(srv, jws(self.k1))
            self.jwks.publish(b"{not json", status=200)
            time.sleep(1.1)
            self.assertRefused(srv, jws(self.k2), "Unknown token signing key")
            self.assertTrue(wait_for(lambda: "not a usable JWKS: not JSON"
                                     in srv.read_log()))
            self.assertAccepted(srv, jws(self.k1))
        finally:
            srv.close()

    def test_sighup_refreshes(self):
        import signal
        srv = Server(self.conf()).start()
        try:
            self.jwks.publish(jwks_doc(self.k1, self.k2))
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: 'kid "2024-02"' in
                                     srv.read_log()), srv.read_log())
        finally:
            srv.close()

    def test_plain_http_on_loopback(self):
        plain = JwksServer(self.tmp)
        try:
            plain.publish(jwks_doc(self.k2))
            srv = Server(jwks_server_conf(
                jwks_url=plain.url(scheme="http"))).start()
            try:
                self.assertAccepted(srv, jws(self.k2))
            finally:
                srv.close()
        finally:
            plain.close()

    def test_start_fails_on_an_unparsable_jwks(self):
        self.jwks.publish(b'{"keys": "none"}')
        self.start_fails(self.conf(), "cannot load the JWKS from https://"
                         "localhost:%d/jwks.json: not a usable JWKS: not a "
                         "JWKS document" % self.jwks.port)

    def test_start_fails_without_a_usable_key(self):
        self.jwks.publish(json.dumps({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]}).encode())
        self.start_fails(self.conf(), 'no usable key (first skipped: kid '
                         '"hmac": kty is not RSA or EC)')

    def test_start_fails_on_an_oversized_jwks(self):
        self.jwks.publish(b'{"keys": [], "pad": "' + b"x" * 300000 + b'"}')
        self.start_fails(self.conf(), "response larger than 256 KiB")

    def test_start_fails_on_an_untrusted_certificate(self):
        self.start_fails(self.conf(ca_file=None),
                         "certificate verification failed")

    def test_start_fails_on_a_host_name_mismatch(self):
        """The certificate names localhost, not 127.0.0.1."""
        self.start_fails(self.conf(jwks_url=self.jwks.url("127.0.0.1")),
                         "certificate verification failed: "
                         "IP address mismatch")

    def test_start_fails_when_the_server_is_down(self):
        self.jwks.close()
        self.start_fails(self.conf(fetch_timeout="2s"),
                         "cannot load the JWKS from")
        self.jwks = JwksServer(self.tmp)  # for tearDown


# -------------------------------------------------------- configuration
class Config(unittest.TestCase):
    """`carechatd -t` refuses bad [auth] settings with file:line and the
    reason."""

    def check(self, auth, want):
        srv = Server(jwks_server_conf(**auth))
        try:
            srv.write_conf()
            r = subprocess.run([os.path.join(BUILDDIR, "carechatd"), "-t",
                                "-c", srv.conf_path],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
            out = r.stdout.decode()
            self.assertNotEqual(r.returncode, 0, out)
            self.assertIn(want, out)
        finally:
            srv.close()

    def test_refusals(self):
        url = "https://idp.test/certs"
        cases = [
            ({}, 'missing required key "jwks_url" (or "jwks_file")'),
            ({"jwks_url": url, "jwks_file": "/x"},
             "jwks_file: set exactly one of jwks_file and jwks_url"),
            ({"jwks_url": "http://idp.example.org/certs"},
             "jwks_url: http:// is only for loopback tests"),
            ({"jwks_url": "ftp://idp.test/certs"},
             "jwks_url: must be an https:// URL"),
            ({"jwks_url": url, "algorithms": "RS256, HS256"},
             "algorithms: HS256/HS384/HS512 need a shared secret"),
            ({"jwks_url": url, "algorithms": "none"},
             'algorithms: "none" (unsigned tokens) is never accepted'),
            ({"jwks_url": url, "algorithms": "RS256,,ES256"},
             "algorithms: expected a comma-separated list"),
            ({"jwks_url": url, "bogus": "1"}, "[auth] bogus: unknown key"),
            ({"jwks_url": url, "refresh_interval": "0"},
             "refresh_interval: must be a duration from 1s to 168h"),
            ({"jwks_url": url, "fetch_timeout": "10x"},
             "fetch_timeout: must be a duration"),
            ({"jwks_file": "/x", "ca_file": "/y"},
             "ca_file: only for an https:// jwks_url"),
            ({"jwks_url": url, "ca_file": "/nonexistent/ca.pem"},
             "ca_file: cannot load CA certificates from "
             "/nonexistent/ca.pem"),
            ({"jwks_url": url, "issuer": None},
             'missing required key "issuer"'),
            ({"jwks_url": url, "audience": None},
             'missing required key "audience"'),
            ({"jwks_url": url, "audience": "a,,b"},
             "audience: an empty audience in the list"),
            ({"jwks_url": url, "leeway": "-1"}, "leeway: must be a whole"),
            ({"jwks_url": url, "token_cache": "1048577"},
             "token_cache: must be a number of tokens from 0 (off)"),
        ]
        for auth, want in cases:
            with self.subTest(auth=auth):
                self.check(auth, want)


if __name__ == "__main__":
    ccharness.main()
