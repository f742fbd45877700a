#!/usr/bin/python3
"""The protocol cases of tests/cases (its README gives the format): each
case is run over the WebSocket and over REST, where it applies, on a
fresh chat with the other party connected, and every line of its file is
checked.  A test per case and transport (test_<name>__ws, __rest); cases
that share a configuration share a server.

The runner, in order: make the parties (who), connect the other party
(and the sender, over the WebSocket), send the before bodies, arm the
fault, send the case's body, check the answer (error, message, original
or close), check history (stored), then have the other party send a
marker message: the first frame either connection gets next must be the
case's message (seen) or the marker, so nothing else reached anyone and
the sender's socket is still open.  Then the send's audit line; last,
over the WebSocket, the sender sends once more and both get it."""
import collections
import json
import os
import re
import unittest
import uuid

import ccharness as h

CASES = os.path.join(h.SRCDIR, "tests", "cases")
ISO_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
MESSAGE_KEYS = {"id", "content", "sender_type", "created_at"}
MARKER = "(marker)"   # short: it must fit any max_content_length here
AGAIN = "(again)"
RATE = "Too many messages: not stored; slow down"
KEYS = {"over", "who", "conf", "storage", "fault", "before", "before-over",
        "content-type", "send", "error", "message", "original", "close",
        "status", "stored", "seen", "audit"}
REPEATED = {"conf", "before"}
WHO = {"patient", "professional", "dual-patient", "dual-professional",
       "self", "stranger", "stranger-professional", "stranger-dual",
       "no-profile", "swapped"}
# The audit events of a send attempt (and of a stranger's refusal).
SEND_EVENTS = ("message_send", "access_denied")
MACRO = re.compile(r"%repeat\[(\d+) x (.*?)\]%|%hex\[([0-9a-fA-F ]*)\]%")


# ------------------------------------------------------------- the files
class Case:
    """One parsed case file: values by (scope, key), scope "" for both
    transports, "ws" or "rest" for one."""

    def __init__(self, path):
        self.name = os.path.basename(path)[:-len(".case")]
        self.values = collections.defaultdict(list)
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f.read().split("\n"), 1):
                if not line.strip() or line.startswith("#"):
                    continue
                key, sep, value = line.partition(":")
                scope, _, bare = key.rpartition(".")
                if not sep or bare not in KEYS or \
                        scope not in ("", "ws", "rest"):
                    raise ValueError("%s:%d: not a case line: %r" %
                                     (path, n, line))
                value = value[1:] if value.startswith(" ") else value
                if bare != "send":
                    value = value.strip()
                self.values[scope, bare].append(value)
        for (scope, key), vals in self.values.items():
            if len(vals) > 1 and key not in REPEATED:
                raise ValueError("%s: %s given %d times" %
                                 (path, key, len(vals)))
        over = self.one("over", "ws", "both")
        self.transports = ["ws", "rest"] if over == "both" else [over]
        for over in self.transports:
            why = self.problem(over)
            if why:
                raise ValueError("%s: over %s: %s" % (path, over, why))

    def problem(self, over):
        """What makes the file unusable over transport over, or None."""
        answers = [k for k in ("error", "message", "original", "close")
                   if self.one(k, over) is not None]
        audit = (self.one("audit", over) or "- - 0").split()
        checks = [
            (self.one("over", over, "both") in ("both", "ws", "rest"),
             "over: both, ws or rest"),
            (self.one("who", over) in WHO, "who: one of %s" % sorted(WHO)),
            (len(answers) == 1, "one of error, message, original, close"),
            (self.one("message", over) in (None, "patient", "professional"),
             "message: patient or professional"),
            (over == "ws" or "close" not in answers, "close over REST"),
            (over == "ws" or "error" not in answers or
             (self.one("status", over) or "").isdigit(),
             "an error over REST needs its status"),
            (self.one("stored", over) in ("yes", "no"), "stored: yes or no"),
            (self.one("seen", over, "no") in ("yes", "no"),
             "seen: yes or no"),
            (len(audit) == 3 and audit[2].isdigit(),
             "audit: EVENT RESULT STATUS"),
            (self.one("storage", over, "") in ("", "faulty", "faulty-1.1"),
             "storage: faulty or faulty-1.1"),
            (not self.one("fault", over) or
             (self.one("storage", over) == "faulty" and
              len(self.one("fault", over).split()) == 2),
             "fault: OP KIND, with storage: faulty"),
        ]
        return next((why for ok, why in checks if not ok), None)

    def all(self, key, over):
        """Every value of key over transport over (its own, else the
        common ones)."""
        return self.values.get((over, key)) or self.values.get(("", key),
                                                               [])

    def one(self, key, over, default=None):
        vals = self.all(key, over)
        return vals[0] if vals else default

    def group(self):
        """What decides the server: its conf and storage."""
        return (tuple(sorted(self.all("conf", "ws"))),
                self.one("storage", "ws", ""))


def expand(text):
    """The bytes a send or before line stands for (README: macros)."""
    out, at = b"", 0
    for m in MACRO.finditer(text):
        out += text[at:m.start()].encode()
        if m.group(1):
            out += (m.group(2) * int(m.group(1))).encode()
        else:
            out += bytes.fromhex(m.group(3))
        at = m.end()
    return out + text[at:].encode()


def load():
    """The cases, and (name, why) of the files that are not cases."""
    cases, bad = [], []
    for f in sorted(os.listdir(CASES)):
        if f.endswith(".case"):
            try:
                cases.append(Case(os.path.join(CASES, f)))
            except ValueError as e:
                bad.append((f[:-len(".case")], str(e)))
    return cases, bad


# ------------------------------------------------------------- the runs
Party = collections.namedtuple("Party", "tok user side")


class Parties:
    """The chat of a run, its sender and the other party (watcher), made
    for who (README)."""

    def __init__(self, srv, world, who):
        self.srv, self.world = srv, world
        make = {"patient": self.single, "professional": self.single,
                "dual-patient": self.dual, "dual-professional": self.dual,
                "self": self.both_sides}.get(who, self.stranger)
        make(who)

    def user(self, patient=None, professional=None):
        uid = "case-" + uuid.uuid4().hex[:12]
        return h.token(uid, patient=patient, professional=professional), uid

    def open_chat(self, tok, patient, professional):
        st, _, chat = self.srv.request(
            "POST", "/chat/chats/", {"patient": patient,
                                     "professional": professional},
            token=tok)
        assert st == 201, (st, chat)
        return chat["id"]

    def single(self, side):
        """A chat of two users with one profile each; side sends."""
        pat, pro = (self.world.profile("patient"),
                    self.world.profile("professional"))
        pt, pu = self.user(patient=pat)
        rt, ru = self.user(professional=pro)
        self.chat = self.open_chat(pt, pat, pro)
        self.ids = (pat, pro)
        p = Party(pt, pu, "patient")
        r = Party(rt, ru, "professional")
        self.sender, self.watcher = (p, r) if side == "patient" else (r, p)

    def dual(self, who):
        """dual-patient, dual-professional: a user holding both profiles,
        on that side of a chat with a one-profile user."""
        side = who.split("-", 1)[1]
        other_side = "professional" if side == "patient" else "patient"
        mine = {"patient": self.world.profile("patient"),
                "professional": self.world.profile("professional")}
        ut, uu = self.user(**mine)
        other = self.world.profile(other_side)
        ot, ou = self.user(**{other_side: other})
        ids = dict(mine, **{other_side: other})
        self.chat = self.open_chat(ut, ids["patient"], ids["professional"])
        self.sender = Party(ut, uu, side)
        self.watcher = Party(ot, ou, other_side)

    def both_sides(self, who):
        """self: one user on both sides of the chat (the other party is
        another connection of that user, speaking as the professional)."""
        pat, pro = (self.world.profile("patient"),
                    self.world.profile("professional"))
        ut, uu = self.user(patient=pat, professional=pro)
        self.chat = self.open_chat(ut, pat, pro)
        self.sender = Party(ut, uu, None)
        self.watcher = Party(ut, uu, "professional")

    def stranger(self, who):
        """stranger, stranger-professional, stranger-dual, no-profile,
        swapped: a pair's chat, and a sender who is not a party."""
        self.single("patient")
        pat, pro = self.ids
        other = {"stranger": {"patient": self.world.profile("patient")},
                 "stranger-professional": {
                     "professional": self.world.profile("professional")},
                 "stranger-dual": {
                     "patient": self.world.profile("patient"),
                     "professional": self.world.profile("professional")},
                 "no-profile": {},
                 "swapped": {"patient": pro, "professional": pat}}[who]
        st, su = self.user(**other)
        self.sender = Party(st, su, None)


class Run:
    """One case over one transport on the class's server."""

    def __init__(self, test, case, over):
        self.t, self.case, self.over = test, case, over
        self.srv = test.srv
        self.p = Parties(test.srv, test.world, case.one("who", over))
        self.conns = []       # open RawWS clients of the parties

    def get(self, key, default=None):
        return self.case.one(key, self.over, default)

    def ws(self, party):
        ws = h.raw_ws(self.srv, self.p.chat, party.tok, timeout=5)
        self.conns.append(ws)
        return ws

    def close(self):
        for ws in self.conns:
            ws.close()

    # ---- sending
    def post(self, body, content_type="application/json"):
        headers = {} if content_type == "none" else \
            {"Content-Type": content_type}
        return self.srv.request(
            "POST", "/chat/chats/%s/send_message/" % self.p.chat,
            raw_body=body, headers=headers, token=self.p.sender.tok)

    @staticmethod
    def answer(ws):
        """The next frame on ws: ("json", object) or ("close", code);
        pings and pongs are skipped (a few: each read waits 5 s at most)."""
        for _ in range(10):
            fin, op, data = ws.recv()
            if op == 0x1:
                return "json", json.loads(data)
            if op == 0x8:
                code = int.from_bytes(data[:2], "big") if data else 1005
                return "close", code
        raise AssertionError("no text or close frame among 10")

    def before(self, sender_ws, watcher):
        """Send the before bodies, each of which must be stored and shown
        to everyone connected; returns the messages (as frames carry
        them)."""
        via = self.over
        if self.get("before-over") == "other":
            via = "rest" if self.over == "ws" else "ws"
        stored = []
        for text in self.case.all("before", self.over):
            body = expand(text)
            if via == "ws":
                ws = sender_ws or self.ws(self.p.sender)
                ws.send(0x1, body)
                kind, got = self.answer(ws)
                self.t.assertEqual(kind, "json", got)
                self.t.assertIn("message", got, ("before", text, got))
                m = got["message"]
                if ws is not sender_ws:
                    ws.close()
            else:
                st, _, m = self.post(body)
                self.t.assertEqual(st, 201, ("before", text, m))
                m = dict(m)
                m.pop("is_read")
                if sender_ws:
                    self.t.assertEqual(self.answer(sender_ws),
                                       ("json", {"message": m}))
            self.t.assertEqual(self.answer(watcher), ("json", {"message": m}),
                               "the other party sees the before message")
            stored.append(m)
        return stored

    def send(self, sender_ws):
        """Send the case's body; (kind, value, status): ("json", object,
        REST status or None) or ("close", code, None)."""
        body = expand(self.get("send", ""))
        if self.over == "ws":
            try:
                sender_ws.send(0x1, body)
            except OSError:
                pass   # refused at the join: its close frame tells
            kind, value = self.answer(sender_ws)
            return kind, value, None
        st, hdrs, out = self.post(body, self.get("content-type",
                                                 "application/json"))
        self.t.assertTrue(hdrs.get("content-type", "").startswith(
            "application/json"), hdrs)
        return "json", out, st

    # ---- checking
    def body_json(self):
        try:
            return json.loads(expand(self.get("send", "")))
        except ValueError:
            return {}

    def check_message(self, m, sender_type):
        """m is the message the case's body makes, as sender_type."""
        sent = self.body_json()
        cid = sent.get("client_id")
        self.t.assertEqual(set(m), MESSAGE_KEYS | ({"client_id"} if cid
                                                   else set()), m)
        self.t.assertEqual(m["sender_type"], sender_type)
        self.t.assertEqual(m["content"], sent["content"])
        if cid:
            self.t.assertEqual(m["client_id"], cid.lower())
        self.t.assertEqual(uuid.UUID(m["id"]).version, 7)
        self.t.assertRegex(m["created_at"], ISO_US)

    def check_answer(self, kind, got, status, befores):
        """The answer the case says; returns the message it carries (as a
        frame carries it) or None."""
        t, want_status = self.t, self.get("status")
        if self.get("close"):
            t.assertEqual((kind, got), ("close", int(self.get("close"))))
            return None
        t.assertEqual(kind, "json", got)
        if self.get("error") is not None:
            t.assertEqual(got, {"error": self.get("error")})
            if self.over == "rest":
                t.assertEqual(status, int(want_status))
            return None
        if self.over == "rest":
            t.assertIsInstance(got, dict, got)
            t.assertIs(got.pop("is_read", None), False, got)
            got = {"message": got}
            t.assertEqual(status, int(want_status or (
                200 if self.get("original") else 201)))
        t.assertEqual(set(got), {"message"}, got)
        m = got["message"]
        if self.get("original"):
            t.assertEqual(m, befores[-1], "the original message")
        else:
            self.check_message(m, self.get("message"))
        return m

    def check_history(self, befores, m):
        """History holds the before messages, then the case's when it
        stored one."""
        stored = self.get("stored") == "yes"
        hist = h.history(self.srv, self.p.chat, self.p.watcher.tok)
        for x in hist:
            x.pop("is_read")
        self.t.assertEqual(len(hist), len(befores) + stored,
                           [x["content"] for x in hist])
        self.t.assertEqual(hist[:len(befores)], befores)
        if stored and m and not self.get("original"):
            self.t.assertEqual(hist[-1], m)
        elif stored:
            self.t.assertEqual(hist[-1]["content"],
                               self.body_json().get("content"))

    def check_quiet(self, watcher, sender_ws, m):
        """The other party sends a marker: the next frame on each socket
        is the marker, but for the case's message first where it is to be
        seen (on the sender's, when its answer did not carry it)."""
        seen = self.get("seen", self.get("stored")) == "yes" and \
            not self.get("original")
        unanswered = self.get("stored") == "yes" and m is None
        watcher.send_json({"content": MARKER, "role": self.p.watcher.side})
        self.next_is_marker(watcher, (m or "stored") if seen else None,
                            "other party")
        if sender_ws and not self.get("close"):
            self.next_is_marker(sender_ws, "stored" if unanswered else None,
                                "sender")

    def next_is_marker(self, ws, m, who):
        """The next frames on ws are m (a message, or "stored": the case's
        stored message, whose answer was an error) and then the marker;
        without m, the marker at once."""
        kind, got = self.answer(ws)
        if m:
            self.t.assertEqual(kind, "json", got)
            if m == "stored":
                self.t.assertEqual(got.get("message", got).get("content"),
                                   self.body_json().get("content"),
                                   "%s: the stored message" % who)
            else:
                self.t.assertEqual(got, {"message": m}, who)
            kind, got = self.answer(ws)
        self.t.assertEqual(kind, "json", got)
        self.t.assertEqual(got.get("message", got).get("content"), MARKER,
                           "the %s got another frame (or its socket "
                           "closed): %r" % (who, got))

    def check_audit(self, n_before, m):
        want = self.get("audit")
        if not want:
            return
        event, result, status = want.split()

        def lines():
            got = [l for l in h.read_json_lines(self.t.audit_path)
                   if l.get("chat_id") == self.p.chat and
                   l.get("user_id") == self.p.sender.user and
                   l.get("event") in SEND_EVENTS]
            return got if len(got) > n_before else None
        line = h.wait_for(lines, 5, "the send's audit line")[n_before]
        self.t.assertEqual((line["event"], line["result"],
                            line.get("status")),
                           (event, result, int(status)), line)
        self.t.assertEqual(line.get("message_id"), m["id"] if m else None,
                           line)
        if event == "message_send":
            self.t.assertEqual(line.get("via"), self.over, line)

    def check_sends_again(self, watcher, sender_ws):
        """Over the WebSocket, the sender goes on chatting: its next
        message reaches both (not over the rate: that waits for the
        bucket to refill)."""
        if not sender_ws or self.get("close") or self.get("error") == RATE:
            return
        sender_ws.send_json({"content": AGAIN,
                             "role": self.p.sender.side or "patient"})
        for ws, who in ((sender_ws, "sender"), (watcher, "other party")):
            kind, got = self.answer(ws)
            self.t.assertEqual(got.get("message", got).get("content"),
                               AGAIN, "%s: the sender's next message" % who)

    def go(self):
        faulty = self.t.faulty
        watcher = self.ws(self.p.watcher)
        sender_ws = self.ws(self.p.sender) if self.over == "ws" else None
        befores = self.before(sender_ws, watcher)
        if self.get("fault"):
            op, kind = self.get("fault").split()
            faulty.arm(op, kind)
            fired = faulty.status()["fired"]
        kind, got, status = self.send(sender_ws)
        if self.get("fault"):
            self.t.assertEqual(faulty.status()["fired"], fired + 1,
                               "the fault was not reached")
        m = self.check_answer(kind, got, status, befores)
        self.check_history(befores, m)
        self.check_quiet(watcher, sender_ws, m)
        self.check_audit(len(befores), m)
        self.check_sends_again(watcher, sender_ws)


class CaseServer(h.ServerCase):
    """A server for cases of one conf and storage, auditing to a file."""
    STORAGE = ""

    @classmethod
    def start_server(cls, holder):
        srv = h.Server(cls.CONF)
        holder.audit_path = os.path.join(srv.tmp, "audit.log")
        srv.conf["audit"] = {"file": holder.audit_path}
        builds = {"": None, "faulty": "", "faulty-1.1": "11"}
        build = builds[cls.STORAGE]
        holder.faulty = None if build is None else \
            h.Faulty.around(srv, build)
        holder.srv = srv.start()
        holder.world = h.World(srv)

    def tearDown(self):
        if self.faulty:
            self.faulty.disarm()
        super().tearDown()


def test_for(case, over):
    def test(self):
        run = Run(self, case, over)
        try:
            run.go()
        finally:
            run.close()
    test.__doc__ = "%s over %s" % (case.name, over)
    return test


def failing(why):
    def test(self):
        self.fail(why)
    return test


def conf_dict(lines):
    conf = {}
    for line in lines:
        key, _, value = line.partition("=")
        section, _, name = key.strip().partition(".")
        conf.setdefault(section, {})[name] = value.strip()
    return conf


def make_classes():
    """One TestCase class per (conf, storage), named after its first
    case; one test per case and transport."""
    groups = collections.OrderedDict()
    cases, bad = load()
    for case in cases:
        groups.setdefault(case.group(), []).append(case)
    if bad:
        globals()["CaseFiles"] = type("CaseFiles", (unittest.TestCase,), {
            "__module__": __name__,
            **{"test_%s__file" % name.replace("-", "_"): failing(why)
               for name, why in bad}})
    for (conf, storage), cases in groups.items():
        name = "_".join(["Cases"] + [re.sub(r"\W+", "_", c.split(".", 1)[1])
                                     for c in conf] +
                        ([storage.replace("-1.1", "11")] if storage else []))
        attrs = {"CONF": conf_dict(conf), "STORAGE": storage,
                 "__module__": __name__,
                 "__doc__": "conf %s, storage %s" % (list(conf),
                                                     storage or "usual")}
        for case in cases:
            for over in case.transports:
                attrs["test_%s__%s" % (case.name.replace("-", "_"),
                                       over)] = test_for(case, over)
        globals()[name] = type(name, (CaseServer,), attrs)


make_classes()

if __name__ == "__main__":
    h.main()
