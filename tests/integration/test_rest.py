#!/usr/bin/python3
"""The REST API against the real daemon: create-or-get chats, listing and
cursor pagination, one chat, history, send_message, mark_read, admin
profile registration, and the status codes of doc/protocol.md.  What one
send_message gets back (errors, roles, Content-Type) is a protocol case:
tests/cases.
"""
import asyncio
import json
import re
import socket
import struct
import time
import unittest
import urllib.parse
import uuid

import ccharness as h

ISO_US = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
CHAT_KEYS = {"id", "patient", "professional", "last_message", "unread_count",
             "created_at", "updated_at"}
# Since ABI 1.4 (issues 26, 27): each side's marks and names.
SIDE_KEYS = {"read_up_to", "delivered_up_to", "names"}
LIST_KEYS = {"count", "next", "previous", "results"}
ITEM_KEYS = {"id", "content", "sender_type", "created_at", "is_read"}
JSON_CT = {"Content-Type": "application/json"}


class RestCase(h.ServerCase):
    """A server per class, and the REST helpers."""

    # ---- helpers
    def req(self, method, path, body=None, token=None, **kw):
        return self.srv.request(method, path, body, token=token, **kw)

    def ok(self, method, path, body=None, token=None, status=200):
        st, _, out = self.req(method, path, body, token)
        self.assertEqual(st, status, (method, path, out))
        return out

    def error(self, want_status, want_msg, method, path, body=None,
              token=None, **kw):
        st, hdrs, out = self.req(method, path, body, token, **kw)
        self.assertEqual(st, want_status, (method, path, out))
        self.assertTrue(hdrs.get("content-type", "").startswith(
            "application/json"), hdrs)
        self.assertIsInstance(out, dict, out)
        self.assertEqual(set(out), {"error"}, out)
        if want_msg is not None:
            self.assertEqual(out["error"], want_msg)
        return hdrs, out

    def users(self):
        """A fresh patient and professional: (pat id, pat tok, pro id,
        pro tok)."""
        pat = self.world.profile("patient")
        pro = self.world.profile("professional")
        return (pat, h.token("p-" + pat[:8], patient=pat),
                pro, h.token("r-" + pro[:8], professional=pro))

    def send(self, chat_id, tok, content, role=None):
        body = {"content": content}
        if role:
            body["role"] = role
        return self.ok("POST", "/chat/chats/%s/send_message/" % chat_id,
                       body, tok, status=201)

    def assert_chat(self, chat):
        self.assertEqual(set(chat), CHAT_KEYS | SIDE_KEYS, chat)
        for k in SIDE_KEYS:
            self.assertEqual(set(chat[k]), {"patient", "professional"}, k)
        self.assertEqual(uuid.UUID(chat["id"]).version, 7)
        self.assertRegex(chat["created_at"], ISO_US)
        self.assertRegex(chat["updated_at"], ISO_US)
        self.assertIsInstance(chat["unread_count"], int)
        if chat["last_message"] is not None:
            self.assertEqual(set(chat["last_message"]), ITEM_KEYS)

    def walk(self, first_path, tok, key="next"):
        """Follow key links from first_path: the list of pages."""
        pages, path = [], first_path
        while path:
            page = self.ok("GET", path, token=tok)
            self.assertEqual(set(page), LIST_KEYS)
            pages.append(page)
            link = page[key]
            if link is None:
                break
            u = urllib.parse.urlsplit(link)
            self.assertEqual((u.scheme, u.netloc),
                             ("http", "127.0.0.1:%d" % self.srv.port), link)
            path = u.path + "?" + u.query
            self.assertLess(len(pages), 100, "link loop")
        return pages


# ----------------------------------------------------------- create / get
class CreateChat(RestCase):

    def test_create_then_get(self):
        pat, pt, pro, rt = self.users()
        st, _, chat = self.req("POST", "/chat/chats/", {"professional": pro},
                               pt)
        self.assertEqual(st, 201, chat)
        self.assert_chat(chat)
        self.assertEqual((chat["patient"], chat["professional"]), (pat, pro))
        self.assertIsNone(chat["last_message"])
        self.assertEqual(chat["unread_count"], 0)
        self.assertEqual(chat["created_at"], chat["updated_at"])

        again = self.ok("POST", "/chat/chats/", {"professional": pro}, pt)
        self.assertEqual(again, chat)
        # the other side opens it too: the same chat
        self.assertEqual(self.ok("POST", "/chat/chats/", {"patient": pat},
                                 rt), chat)
        # ids are compared canonically
        self.assertEqual(self.ok("POST", "/chat/chats/",
                                 {"patient": pat.upper()}, rt)["id"],
                         chat["id"])
        # and GET shows the same object
        self.assertEqual(self.ok("GET", "/chat/chats/%s/" % chat["id"],
                                 token=pt), chat)

    def test_get_existing_reports_the_callers_unread_count(self):
        pat, pt, pro, rt = self.users()
        chat = self.ok("POST", "/chat/chats/", {"professional": pro}, pt,
                       status=201)
        last = None
        for i in range(3):
            last = self.send(chat["id"], pt, "unread %d" % i)
        seen_by_pro = self.ok("GET", "/chat/chats/%s/" % chat["id"],
                              token=rt)
        self.assertEqual(seen_by_pro["unread_count"], 3)
        self.assertEqual(seen_by_pro["last_message"], last)
        opened_by_pro = self.ok("POST", "/chat/chats/", {"patient": pat}, rt)
        self.assertEqual(opened_by_pro, seen_by_pro)
        opened_by_pat = self.ok("POST", "/chat/chats/",
                                {"professional": pro}, pt)
        self.assertEqual(opened_by_pat["unread_count"], 0)
        self.assertEqual(opened_by_pat,
                         self.ok("GET", "/chat/chats/%s/" % chat["id"],
                                 token=pt))

    def test_unknown_profiles_404(self):
        pat, pt, pro, rt = self.users()
        self.error(404, "Professional not found", "POST", "/chat/chats/",
                   {"professional": str(uuid.uuid4())}, pt)
        self.error(404, "Patient not found", "POST", "/chat/chats/",
                   {"patient": str(uuid.uuid4())}, rt)
        # a profile of the other kind is not the one asked for
        self.error(404, "Professional not found", "POST", "/chat/chats/",
                   {"professional": pat}, pt)
        self.error(404, "Patient not found", "POST", "/chat/chats/",
                   {"patient": pro}, rt)
        # nothing was created
        self.assertEqual(self.ok("GET", "/chat/chats/", token=pt)["count"],
                         0)

    def test_wrong_side_and_bad_bodies_400(self):
        pat, pt, pro, rt = self.users()
        other_pat = self.world.profile("patient")
        other_pro = self.world.profile("professional")
        cases = [
            (pt, {"patient": other_pat}),           # a patient naming a patient
            (rt, {"professional": other_pro}),      # and vice versa
            (pt, {}),
            (rt, {}),
            (pt, {"professional": None}),
            (pt, {"professional": "not-a-uuid"}),
            (pt, {"professional": 42}),
            (pt, {"professional": [pro]}),
            (rt, {"patient": pat + "0"}),
            # both ids, neither of them the caller's
            (pt, {"patient": other_pat, "professional": pro}),
            (rt, {"patient": pat, "professional": other_pro}),
        ]
        for tok, body in cases:
            self.error(400, None, "POST", "/chat/chats/", body, tok)
        self.assertEqual(self.ok("GET", "/chat/chats/", token=pt)["count"],
                         0)
        self.assertEqual(self.ok("GET", "/chat/chats/", token=rt)["count"],
                         0)

    def test_single_profile_caller_may_send_both_ids(self):
        pat, pt, pro, rt = self.users()
        chat = self.ok("POST", "/chat/chats/",
                       {"patient": pat, "professional": pro}, pt,
                       status=201)
        self.assertEqual(self.ok("POST", "/chat/chats/",
                                 {"patient": pat, "professional": pro},
                                 rt)["id"], chat["id"])

    def test_multi_profile_caller(self):
        u_pat = self.world.profile("patient")
        u_pro = self.world.profile("professional")
        x_pro = self.world.profile("professional")
        y_pat = self.world.profile("patient")
        u = h.token("multi", patient=u_pat, professional=u_pro)
        as_pat = self.ok("POST", "/chat/chats/",
                         {"patient": u_pat, "professional": x_pro}, u,
                         status=201)
        self.assertEqual((as_pat["patient"], as_pat["professional"]),
                         (u_pat, x_pro))
        as_pro = self.ok("POST", "/chat/chats/",
                         {"patient": y_pat, "professional": u_pro}, u,
                         status=201)
        self.assertEqual((as_pro["patient"], as_pro["professional"]),
                         (y_pat, u_pro))
        with_self = self.ok("POST", "/chat/chats/",
                            {"patient": u_pat, "professional": u_pro}, u,
                            status=201)
        # one id: the side is taken from what the body names
        self.assertEqual(self.ok("POST", "/chat/chats/",
                                 {"professional": x_pro}, u)["id"],
                         as_pat["id"])
        self.assertEqual(self.ok("POST", "/chat/chats/",
                                 {"patient": y_pat}, u)["id"],
                         as_pro["id"])
        # neither id is the caller's
        self.error(400, None, "POST", "/chat/chats/",
                   {"patient": y_pat, "professional": x_pro}, u)
        page = self.ok("GET", "/chat/chats/", token=u)
        self.assertEqual(page["count"], 3)
        self.assertEqual({c["id"] for c in page["results"]},
                         {as_pat["id"], as_pro["id"], with_self["id"]})

    def test_token_without_profiles_403(self):
        pat, pt, pro, rt = self.users()
        self.error(403, None, "POST", "/chat/chats/", {"professional": pro},
                   h.token("nobody"))

    def test_invalid_json_400(self):
        _, pt, pro, _ = self.users()
        for raw in (b"{not json", b"[1, 2]", b'"string"', b"42",
                    b'{"professional": "%s", "professional": "%s"}' %
                    (pro.encode(), pro.encode()),
                    b'{"professional": "' + pro.encode() + b'"',
                    b"\xff\xfe"):
            self.error(400, "Invalid JSON", "POST", "/chat/chats/",
                       token=pt, raw_body=raw, headers=JSON_CT)

    def test_content_type_415(self):
        _, pt, pro, _ = self.users()
        raw = json.dumps({"professional": pro}).encode()
        for ct in ("text/plain", "application/x-www-form-urlencoded",
                   "application/jsonp", None):
            self.error(415, None, "POST", "/chat/chats/", token=pt,
                       raw_body=raw,
                       headers={"Content-Type": ct} if ct else {})
        # parameters and case are fine
        for ct in ("application/json; charset=utf-8", "Application/JSON"):
            st, _, out = self.req("POST", "/chat/chats/", token=pt,
                                  raw_body=raw, headers={"Content-Type": ct})
            self.assertIn(st, (200, 201), (ct, out))

    def test_authentication_401(self):
        pat, pt, pro, rt = self.users()
        chat = self.ok("POST", "/chat/chats/", {"professional": pro}, pt,
                       status=201)
        bad = [None, "garbage", "a.b.c",
               h.token("x", patient=pat, secret="s" * 40),
               h.token("x", patient=pat, exp_in=-3600),
               h.mint({"user_id": "x", "patient_id": pat}, alg="HS256",
                      header={"alg": "none"})]
        routes = [("GET", "/chat/chats/", None),
                  ("POST", "/chat/chats/", {"professional": pro}),
                  ("GET", "/chat/chats/%s/" % chat["id"], None),
                  ("GET", "/chat/chats/%s/messages/" % chat["id"], None),
                  ("POST", "/chat/chats/%s/send_message/" % chat["id"],
                   {"content": "sneaky"}),
                  ("POST", "/chat/chats/%s/mark_read/" % chat["id"], None),
                  ("POST", "/chat/profiles/",
                   {"kind": "patient", "id": str(uuid.uuid4())})]
        for method, path, body in routes:
            for tok in bad:
                hdrs, _ = self.error(401, None, method, path, body, tok)
                self.assertEqual(hdrs.get("www-authenticate"), "Bearer")
            hdrs, _ = self.error(401, None, method, path, body,
                                 headers={"Authorization": "Basic dTpw"})
        # the send above was not stored
        self.assertEqual(self.ok("GET", "/chat/chats/%s/messages/" %
                                 chat["id"], token=pt)["count"], 0)


# ----------------------------------------------------------- lists
class ListChats(RestCase):

    def test_pages_both_ways(self):
        _, pt, _, _ = self.users()
        made = [self.ok("POST", "/chat/chats/",
                        {"professional": self.world.profile("professional")},
                        pt, status=201)["id"] for _ in range(7)]
        newest_first = list(reversed(made))
        fwd = self.walk("/chat/chats/?page_size=3", pt)
        self.assertEqual([len(p["results"]) for p in fwd], [3, 3, 1])
        self.assertEqual([c["id"] for p in fwd for c in p["results"]],
                         newest_first)
        self.assertIsNone(fwd[0]["previous"])
        for p in fwd:
            self.assertEqual(p["count"], 7)
        for p in fwd[1:]:
            self.assertIsNotNone(p["previous"])
        # From the last page back to the first, by previous links.
        u = urllib.parse.urlsplit(fwd[-1]["previous"])
        back = self.walk(u.path + "?" + u.query, pt, key="previous")
        self.assertEqual([[c["id"] for c in p["results"]] for p in back],
                         [[c["id"] for c in p["results"]]
                          for p in reversed(fwd[:-1])])
        self.assertIsNone(back[-1]["previous"])
        self.assertIsNotNone(back[-1]["next"])
        status, _, body = self.srv.request(
            "GET", "/chat/chats/?cursor=x1_abc", token=pt)
        self.assertEqual((status, body), (400, {"error": "Invalid cursor"}))

    def test_most_recent_activity_first(self):
        pat, pt, _, _ = self.users()
        pros = [self.world.profile("professional") for _ in range(3)]
        chats = [self.ok("POST", "/chat/chats/", {"professional": p}, pt,
                         status=201) for p in pros]
        page = self.ok("GET", "/chat/chats/", token=pt)
        self.assertEqual(set(page), LIST_KEYS)
        self.assertEqual((page["count"], page["next"], page["previous"]),
                         (3, None, None))
        self.assertEqual([c["id"] for c in page["results"]],
                         [c["id"] for c in reversed(chats)])
        for c in page["results"]:
            self.assert_chat(c)
        # activity in the oldest chat moves it to the top
        msg = self.send(chats[0]["id"], pt, "bump")
        page = self.ok("GET", "/chat/chats/", token=pt)
        self.assertEqual([c["id"] for c in page["results"]],
                         [chats[0]["id"], chats[2]["id"], chats[1]["id"]])
        top = page["results"][0]
        self.assertEqual(top["last_message"], msg)
        self.assertEqual(top["updated_at"], msg["created_at"])
        self.assertEqual(top["unread_count"], 0)   # the caller's own
        # the professional sees only their chat, with one unread
        pro_tok = h.token("r", professional=pros[0])
        page = self.ok("GET", "/chat/chats/", token=pro_tok)
        self.assertEqual(page["count"], 1)
        self.assertEqual(page["results"][0]["id"], chats[0]["id"])
        self.assertEqual(page["results"][0]["unread_count"], 1)

    def test_list_pages(self):
        pat, pt, _, _ = self.users()
        ids = [self.ok("POST", "/chat/chats/",
                       {"professional": self.world.profile("professional")},
                       pt, status=201)["id"] for _ in range(7)]
        pages = self.walk("/chat/chats/?page_size=3", pt)
        self.assertEqual([len(p["results"]) for p in pages], [3, 3, 1])
        self.assertTrue(all(p["count"] == 7 for p in pages))
        got = [c["id"] for p in pages for c in p["results"]]
        self.assertEqual(got, list(reversed(ids)))
        self.assertEqual(self.ok("GET", "/chat/chats/?page_size=7",
                                 token=pt)["next"], None)

    def test_no_chats(self):
        _, pt, _, _ = self.users()
        self.assertEqual(self.ok("GET", "/chat/chats/", token=pt),
                         {"count": 0, "next": None, "previous": None,
                          "results": []})


class History(RestCase):
    """Pagination over a long history: 150 and 250 messages."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.chats = {}
        for n in (150, 250):
            cid, pt, rt, _, _ = cls.world.pair()

            async def fill(cid=cid, pt=pt, rt=rt, n=n):
                a = await h.connect(cls.srv, cid, pt)
                b = await h.connect(cls.srv, cid, rt)
                ids = []
                for i in range(n):
                    # one at a time: two connections race each other
                    await (a if i % 2 == 0 else b).send(
                        json.dumps({"content": "msg %03d" % i}))
                    ids.append(json.loads(await asyncio.wait_for(
                        a.recv(), 5))["message"]["id"])
                for _ in range(n):
                    await b.recv()
                await a.close()
                await b.close()
                return ids
            cls.chats[n] = (cid, pt, rt, h.run(fill(), 20))

    def contents(self, pages):
        return [m["content"] for p in pages for m in p["results"]]

    def test_walk_forward(self):
        cid, pt, rt, ids = self.chats[150]
        base = "/chat/chats/%s/messages/" % cid
        for size, shape in ((50, [50, 50, 50]), (40, [40, 40, 40, 30]),
                            (149, [149, 1]), (150, [150]), (200, [150])):
            pages = self.walk(base + "?page_size=%d" % size, rt)
            self.assertEqual([len(p["results"]) for p in pages], shape, size)
            self.assertTrue(all(p["count"] == 150 for p in pages))
            self.assertEqual(self.contents(pages),
                             ["msg %03d" % i for i in range(150)])
            self.assertEqual([m["id"] for p in pages for m in p["results"]],
                             ids)
            self.assertIsNone(pages[0]["previous"])
            for p in pages[1:]:
                self.assertIsNotNone(p["previous"])
            for p in pages:
                for m in p["results"]:
                    self.assertEqual(set(m), ITEM_KEYS)
                    self.assertEqual(m["sender_type"],
                                     "patient" if int(m["content"][4:]) % 2
                                     == 0 else "professional")

    def test_walk_backward(self):
        cid, pt, rt, ids = self.chats[150]
        base = "/chat/chats/%s/messages/" % cid
        fwd = self.walk(base + "?page_size=50", pt)
        last = fwd[-1]["previous"]
        u = urllib.parse.urlsplit(last)
        back = self.walk(u.path + "?" + u.query, pt, key="previous")
        self.assertEqual([p["results"] for p in back],
                         [p["results"] for p in reversed(fwd[:-1])])
        # a previous page links forward again
        self.assertIsNotNone(back[-1]["next"])
        self.assertIsNone(back[-1]["previous"])

    def test_default_page_size_is_64(self):
        cid, pt, rt, ids = self.chats[150]
        base = "/chat/chats/%s/messages/" % cid
        pages = self.walk(base, pt)
        self.assertEqual([len(p["results"]) for p in pages], [64, 64, 22])
        self.assertIn("page_size=64", pages[0]["next"])
        self.assertEqual([m["id"] for p in pages for m in p["results"]],
                         ids)

    def test_page_size_is_capped_at_200(self):
        cid, pt, rt, ids = self.chats[250]
        base = "/chat/chats/%s/messages/" % cid
        for size in (201, 1000, 10 ** 9):
            pages = self.walk(base + "?page_size=%d" % size, pt)
            self.assertEqual([len(p["results"]) for p in pages], [200, 50])
            self.assertIn("page_size=200", pages[0]["next"])
            self.assertEqual([m["id"] for p in pages for m in p["results"]],
                             ids)
            self.assertEqual(pages[0]["count"], 250)

    def test_bad_paging_400(self):
        cid, pt, rt, ids = self.chats[150]
        base = "/chat/chats/%s/messages/" % cid
        for q in ("page_size=0", "page_size=-1", "page_size=abc",
                  "page_size=1.5", "page_size=", "cursor=zzz", "cursor=a-1",
                  "cursor=b0", "cursor=a", "cursor=a1x"):
            self.error(400, None, "GET", base + "?" + q, token=pt)
        for q in ("page_size=0", "cursor=zzz", "cursor=u1_nope"):
            self.error(400, None, "GET", "/chat/chats/?" + q, token=pt)

    def test_cursors_are_stable_under_new_messages(self):
        cid, pt, rt, _, _ = self.world.pair()
        for i in range(10):
            self.send(cid, pt, "early %d" % i)
        base = "/chat/chats/%s/messages/" % cid
        first = self.ok("GET", base + "?page_size=4", token=rt)
        for i in range(3):
            self.send(cid, rt, "late %d" % i)
        rest, path = [], first["next"]
        while path:
            u = urllib.parse.urlsplit(path)
            page = self.ok("GET", u.path + "?" + u.query, token=rt)
            self.assertEqual(page["count"], 13)
            rest.extend(page["results"])
            path = page["next"]
        got = [m["content"] for m in first["results"] + rest]
        self.assertEqual(got, ["early %d" % i for i in range(10)] +
                         ["late %d" % i for i in range(3)])


# ----------------------------------------------------------- one chat
class Links(unittest.TestCase):
    """next/previous lead only where the client came: the request's
    scheme and a valid Host, or [server] public_url; never to a Host an
    attacker chose, never to clear text from TLS."""

    def pages(self, srv, headers=None):
        w = h.World(srv)
        chat, pt, _, _, _ = w.pair()
        for i in range(3):
            st, _, _ = srv.request("POST", "/chat/chats/%s/send_message/" %
                                   chat, {"content": "m%d" % i}, token=pt)
            self.assertEqual(st, 201)
        st, _, page = srv.request("GET", "/chat/chats/%s/messages/"
                                  "?page_size=1" % chat, token=pt,
                                  headers=headers)
        self.assertEqual(st, 200, page)
        self.pt = pt
        return chat, page["next"]

    def test_links_follow_scheme_and_host(self):
        srv = h.Server().start()
        try:
            chat, nxt = self.pages(srv, {"Host": "chat.example.org:8443"})
            self.assertTrue(nxt.startswith(
                "http://chat.example.org:8443/chat/chats/%s/messages/?" %
                chat), nxt)
            st, _, _ = srv.request("GET", "/chat/chats/", headers={
                "Host": "evil.example/steal?x="})
            self.assertEqual(st, 400, "no link can carry that Host")
            # HTTP/1.0 without Host: a relative link.
            with socket.create_connection(("127.0.0.1", srv.port), 5) as c:
                c.sendall(b"GET /chat/chats/%s/messages/?page_size=1 "
                          b"HTTP/1.0\r\nAuthorization: Bearer %s\r\n\r\n"
                          % (chat.encode(), self.pt.encode()))
                data = b""
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    data += d
            head, _, body = data.partition(b"\r\n\r\n")
            self.assertIn(b" 200 ", head.split(b"\r\n")[0])
            self.assertTrue(json.loads(body)["next"].startswith(
                "/chat/chats/%s/messages/?" % chat), body)
        finally:
            srv.close()

    def test_public_url(self):
        srv = h.Server({"server": {
            "public_url": "https://chat.example.org/carechat/"}}).start()
        try:
            chat, nxt = self.pages(srv, {"Host": "10.0.0.7:8000"})
            self.assertTrue(nxt.startswith(
                "https://chat.example.org/carechat/chat/chats/%s/messages/?"
                % chat), nxt)
        finally:
            srv.close()
        for bad in ("ftp://x", "https://evil.example/x?y", "chat.example.org",
                    "https://u@host/", "https://host/a b"):
            srv = h.Server({"server": {"public_url": bad}})
            with self.assertRaises(RuntimeError, msg=bad):
                srv.start()
            self.assertIn("public_url", srv.read_log())
            srv.close()


class OneChat(RestCase):

    def test_parties_see_it_others_get_404(self):
        cid, pt, rt, pat, pro = self.world.pair()
        a = self.ok("GET", "/chat/chats/%s/" % cid, token=pt)
        b = self.ok("GET", "/chat/chats/%s/" % cid, token=rt)
        self.assert_chat(a)
        self.assertEqual(a, b)
        # trailing slash optional, ids case-insensitive
        self.assertEqual(self.ok("GET", "/chat/chats/%s" % cid, token=pt), a)
        self.assertEqual(self.ok("GET", "/chat/chats/%s/" % cid.upper(),
                                 token=pt), a)
        strangers = [h.token("s1", patient=self.world.profile("patient")),
                     h.token("s2", professional=self.world.profile(
                         "professional")),
                     h.token("s3", patient=pro, professional=pat),
                     h.token("s4")]
        for tok in strangers:
            # send_message: tests/cases/stranger*.case
            for method, suffix, body in (
                    ("GET", "", None), ("GET", "messages/", None),
                    ("POST", "mark_read/", None)):
                self.error(404, "Chat not found", method,
                           "/chat/chats/%s/%s" % (cid, suffix), body, tok)
        self.assertEqual(self.ok("GET", "/chat/chats/%s/messages/" % cid,
                                 token=pt)["count"], 0)

    def test_unknown_and_malformed_ids_404(self):
        _, pt, _, _, _ = self.world.pair()
        for cid in (str(uuid.uuid4()), "not-a-uuid", "1234",
                    str(uuid.uuid4())[:-1] + "g", str(uuid.uuid4()) + "0"):
            for suffix in ("", "messages/"):
                self.error(404, None, "GET",
                           "/chat/chats/%s/%s" % (cid, suffix), token=pt)
            for suffix in ("send_message/", "mark_read/"):
                self.error(404, None, "POST",
                           "/chat/chats/%s/%s" % (cid, suffix),
                           {"content": "x"}, pt)


# ----------------------------------------------------------- send / read
class SendAndRead(RestCase):

    def test_sender_gone_before_storage_answers(self):
        """A phone that posts a message and drops at once: the message is
        still stored and shown to the other party (the request's state is
        freed with the connection, its chat id must not be read after)."""
        cid, pt, rt, _, _ = self.world.pair()
        pro = h.raw_ws(self.srv, cid, rt)
        time.sleep(0.2)
        n = 40
        for i in range(n):
            body = json.dumps({"content": "gone %d" % i}).encode()
            s = socket.create_connection(("127.0.0.1", self.srv.port))
            s.sendall(b"POST /chat/chats/%s/send_message/ HTTP/1.1\r\n"
                      b"Host: x\r\nAuthorization: Bearer %s\r\n"
                      b"Content-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" %
                      (cid.encode(), pt.encode(), len(body), body))
            time.sleep(0.002 * (i % 4))     # read, not yet answered
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
            s.close()                       # reset: gone before the answer
        got = set()
        pro.sock.settimeout(5)
        try:
            while len(got) < n:
                got.add(pro.recv_json()["message"]["content"])
        except OSError:
            pass
        stored = {m["content"] for m in h.history(self.srv, cid, rt)}
        # A request reset before it was read is not a message; every one
        # that was stored reached the other party.
        self.assertEqual(got, stored)
        self.assertGreater(len(stored), 0)
        pro.close()

    def test_send_message(self):
        cid, pt, rt, _, _ = self.world.pair()
        before = self.ok("GET", "/chat/chats/%s/" % cid, token=pt)
        m = self.send(cid, pt, "hello over REST")
        self.assertEqual(set(m), ITEM_KEYS)
        self.assertEqual((m["content"], m["sender_type"], m["is_read"]),
                         ("hello over REST", "patient", False))
        self.assertEqual(uuid.UUID(m["id"]).version, 7)
        self.assertRegex(m["created_at"], ISO_US)
        r = self.send(cid, rt, "reply", role="provider")
        self.assertEqual(r["sender_type"], "professional")
        hist = self.ok("GET", "/chat/chats/%s/messages/" % cid, token=rt)
        self.assertEqual(hist["results"], [m, r])
        self.assertEqual(hist["count"], 2)
        after = self.ok("GET", "/chat/chats/%s/" % cid, token=pt)
        self.assertEqual(after["last_message"], r)
        self.assertEqual(after["updated_at"], r["created_at"])
        self.assertGreater(after["updated_at"], before["updated_at"])
        self.assertEqual(after["created_at"], before["created_at"])

    def test_mark_read(self):
        cid, pt, rt, _, _ = self.world.pair()
        for i in range(3):
            self.send(cid, pt, "from patient %d" % i)
        for i in range(2):
            self.send(cid, rt, "from professional %d" % i)

        def unread(tok):
            one = self.ok("GET", "/chat/chats/%s/" % cid, token=tok)
            listed = self.ok("GET", "/chat/chats/", token=tok)["results"]
            self.assertEqual(listed[0]["unread_count"], one["unread_count"])
            return one["unread_count"]

        self.assertEqual((unread(rt), unread(pt)), (3, 2))
        self.assertEqual(self.ok("POST", "/chat/chats/%s/mark_read/" % cid,
                                 token=rt), {"marked_read": 3})
        self.assertEqual((unread(rt), unread(pt)), (0, 2))
        hist = self.ok("GET", "/chat/chats/%s/messages/" % cid,
                       token=pt)["results"]
        self.assertEqual([m["is_read"] for m in hist],
                         [True, True, True, False, False])
        # nothing left to mark; the caller's own messages are untouched
        self.assertEqual(self.ok("POST", "/chat/chats/%s/mark_read/" % cid,
                                 token=rt), {"marked_read": 0})
        self.assertEqual(self.ok("POST", "/chat/chats/%s/mark_read/" % cid,
                                 token=pt), {"marked_read": 2})
        self.assertEqual((unread(rt), unread(pt)), (0, 0))
        hist = self.ok("GET", "/chat/chats/%s/messages/" % cid,
                       token=rt)["results"]
        self.assertTrue(all(m["is_read"] for m in hist))
        # a new message is unread again, for the other side only
        self.send(cid, pt, "one more")
        self.assertEqual((unread(rt), unread(pt)), (1, 0))


# ----------------------------------------------------------- admin
class Profiles(RestCase):

    def test_admin_only(self):
        body = {"kind": "patient", "id": str(uuid.uuid4())}
        pat, pt, pro, rt = self.users()
        for tok in (pt, rt, h.token("plain"),
                    h.token("fake", carechat_admin=False),
                    h.token("fake", carechat_admin=1),
                    h.token("fake", carechat_admin="yes")):
            self.error(403, "Admin privileges required", "POST",
                       "/chat/profiles/", body, tok)
        self.error(401, None, "POST", "/chat/profiles/", body)
        # none of those registered anything
        self.error(404, "Patient not found", "POST", "/chat/chats/",
                   {"patient": body["id"]}, rt)

    def test_register_and_use(self):
        admin = self.world.admin
        pro = str(uuid.uuid4())
        st, _, out = self.req("POST", "/chat/profiles/",
                              {"kind": "professional", "id": pro,
                               "user_id": "dr-who"}, admin)
        self.assertEqual(st, 201, out)
        self.assertEqual(out, {"kind": "professional", "id": pro,
                               "user_id": "dr-who"})
        # "provider" is the professional kind; ids come back canonical
        pro2 = str(uuid.uuid4())
        out = self.ok("POST", "/chat/profiles/",
                      {"kind": "provider", "id": pro2.upper()}, admin,
                      status=201)
        self.assertEqual(out, {"kind": "professional", "id": pro2,
                               "user_id": None})
        # a patient can now open chats with professionals who never
        # logged in
        pat = self.world.profile("patient")
        pt = h.token("pat", patient=pat)
        for p in (pro, pro2):
            chat = self.ok("POST", "/chat/chats/", {"professional": p}, pt,
                           status=201)
            self.assertEqual(chat["professional"], p)

    def test_duplicate_registration_is_idempotent(self):
        admin = self.world.admin
        pid = str(uuid.uuid4())
        for user in ("first-owner", "first-owner", None):
            body = {"kind": "patient", "id": pid}
            if user:
                body["user_id"] = user
            st, _, out = self.req("POST", "/chat/profiles/", body, admin)
            self.assertIn(st, (200, 201), out)
            # without a user_id the answer names the owner it has
            self.assertEqual(out["user_id"], "first-owner")
        # another user is refused unless the admin moves it knowingly
        # (test_identity.Owners)
        st, _, out = self.req("POST", "/chat/profiles/",
                              {"kind": "patient", "id": pid,
                               "user_id": "second-owner"}, admin)
        self.assertEqual(st, 409, out)
        # still one profile: one chat with it
        pro = self.world.profile("professional")
        rt = h.token("r", professional=pro)
        self.ok("POST", "/chat/chats/", {"patient": pid}, rt, status=201)
        self.ok("POST", "/chat/chats/", {"patient": pid}, rt, status=200)
        # the same id may also be registered as the other kind
        self.ok("POST", "/chat/profiles/", {"kind": "professional",
                                            "id": pid}, admin, status=201)

    def test_bad_registrations_400(self):
        admin = self.world.admin
        good = str(uuid.uuid4())
        for body in ({"kind": "doctor", "id": good},
                     {"kind": "Patient", "id": good},
                     {"kind": "", "id": good},
                     {"kind": 1, "id": good},
                     {"id": good},
                     {"kind": "patient"},
                     {"kind": "patient", "id": "nope"},
                     {"kind": "patient", "id": 5},
                     {"kind": "patient", "id": good, "user_id": 5},
                     {"kind": "patient", "id": good, "user_id": ["x"]}):
            self.error(400, None, "POST", "/chat/profiles/", body, admin)
        self.error(400, "Invalid JSON", "POST", "/chat/profiles/",
                   token=admin, raw_body=b"{", headers=JSON_CT)
        self.error(415, None, "POST", "/chat/profiles/", token=admin,
                   raw_body=json.dumps({"kind": "patient",
                                        "id": good}).encode(),
                   headers={"Content-Type": "text/plain"})
        # none of them registered the id
        _, _, pro, rt = self.users()
        self.error(404, "Patient not found", "POST", "/chat/chats/",
                   {"patient": good}, rt)


# ----------------------------------------------------------- routing
class Routing(RestCase):

    def test_healthz(self):
        st, hdrs, out = self.req("GET", "/healthz")
        self.assertEqual((st, out), (200, {"status": "ok"}))
        self.assertTrue(hdrs["content-type"].startswith("application/json"))

    def test_wrong_method_405(self):
        cid, pt, _, _, _ = self.world.pair()
        cases = [("DELETE", "/chat/chats/", "GET, HEAD, POST"),
                 ("PUT", "/chat/chats/", "GET, HEAD, POST"),
                 ("POST", "/chat/chats/%s/" % cid, "GET, HEAD"),
                 ("DELETE", "/chat/chats/%s/" % cid, "GET, HEAD"),
                 ("POST", "/chat/chats/%s/messages/" % cid, "GET, HEAD"),
                 ("GET", "/chat/chats/%s/send_message/" % cid, "POST"),
                 ("GET", "/chat/chats/%s/mark_read/" % cid, "POST"),
                 ("GET", "/chat/profiles/", "POST"),
                 ("POST", "/healthz", "GET, HEAD")]
        for method, path, allow in cases:
            for tok in (pt, None):
                hdrs, out = self.error(405, "Method not allowed", method,
                                       path, token=tok)
                self.assertEqual(hdrs.get("allow"), allow, (method, path))

    def test_unknown_route_404(self):
        cid, pt, _, _, _ = self.world.pair()
        for path in ("/", "/nope", "/chat/", "/chat", "/chat/chatsx/",
                     "/chat/chats/%s/bogus/" % cid,
                     "/chat/chats/%s/messages/extra/" % cid,
                     "/chat/profiles/x/", "/healthz/x", "/api/chat/chats/"):
            for tok in (pt, None):
                self.error(404, None, "GET", path, token=tok)


if __name__ == "__main__":
    h.main()
