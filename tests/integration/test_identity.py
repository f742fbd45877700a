#!/usr/bin/python3
"""Who may be whom (issue 25, items 7 and 8; design invariant 9):

  - a profile belongs to the user who first presents it (a token, or
    admin registration with user_id); a token pairing it with another
    user is refused (REST 401, WebSocket 4401) and audited; an admin
    moves it knowingly ("rebind": true);
  - a browser opens its WebSocket with a one-use ticket
    (POST /chat/ws-ticket/), never with its token in the URL; tickets
    work on any node and only once; the token's expiry still closes.
"""
import time
import unittest
import uuid

import ccharness as h

PROFILE_TAKEN = "Token's profile belongs to another user"


class Owners(h.ServerCase):


    @classmethod
    def start_server(cls, holder):
        srv = h.Server()
        srv.conf["audit"] = {"file": srv.tmp + "/audit.log"}
        holder.srv = srv.start()
        holder.world = h.World(holder.srv)

    def audit(self):
        return h.read_json_lines(self.srv.tmp + "/audit.log")

    def test_first_user_owns_the_profile(self):
        chat, pt, _, pat, _ = self.world.pair()     # u-<pat> presented it
        st, _, _ = self.srv.request("GET", "/chat/chats/%s/" % chat,
                                    token=pt)
        self.assertEqual(st, 200)
        mallory = h.token("mallory", patient=pat)
        st, _, body = self.srv.request("GET", "/chat/chats/%s/messages/" %
                                       chat, token=mallory)
        self.assertEqual((st, body), (401, {"error": PROFILE_TAKEN}))
        ws = h.raw_ws(self.srv, chat, mallory)
        self.assertEqual(ws.recv_close(), (4401, PROFILE_TAKEN))
        ws.close()
        line = h.wait_for(lambda: [l for l in self.audit()
                                   if l["event"] == "profile_denied" and
                                   l.get("user_id") == "mallory"],
                          what="profile_denied in the audit trail")[0]
        self.assertEqual((line["user_id"], line["patient_id"]),
                         ("mallory", pat))
        # The owner still gets in.
        st, _, _ = self.srv.request("GET", "/chat/chats/%s/" % chat,
                                    token=pt)
        self.assertEqual(st, 200)

    def test_admin_registration_binds_and_rebinds(self):
        pid = str(uuid.uuid4())
        admin = self.world.admin
        st, _, body = self.srv.request("POST", "/chat/profiles/", {
            "kind": "professional", "id": pid, "user_id": "dr-who",
            "display_name": "Dr. Who"}, token=admin)
        self.assertEqual(st, 201, body)
        self.assertEqual(body["user_id"], "dr-who")
        st, _, body = self.srv.request("POST", "/chat/profiles/", {
            "kind": "professional", "id": pid, "user_id": "dr-no"},
            token=admin)
        self.assertEqual(st, 409, body)
        other = h.token("dr-no", professional=pid)
        self.assertEqual(self.srv.request("GET", "/chat/chats/",
                                          token=other)[0], 401)
        st, _, body = self.srv.request("POST", "/chat/profiles/", {
            "kind": "professional", "id": pid, "user_id": "dr-no",
            "rebind": True}, token=admin)
        self.assertEqual((st, body["user_id"]), (201, "dr-no"), body)
        self.assertEqual(self.srv.request("GET", "/chat/chats/",
                                          token=other)[0], 200)
        self.assertEqual(self.srv.request(
            "GET", "/chat/chats/",
            token=h.token("dr-who", professional=pid))[0], 401)
        h.wait_for(lambda: [l for l in self.audit()
                            if l["event"] == "profile_rebind"],
                   what="profile_rebind in the audit trail")

    def test_display_names(self):
        pat, pro = str(uuid.uuid4()), str(uuid.uuid4())
        admin = self.world.admin
        self.srv.request("POST", "/chat/profiles/", {
            "kind": "professional", "id": pro, "display_name": "Dr. Ana"},
            token=admin)
        pt = h.token("p-1", patient=pat, name="Bea \u00c1lvarez")
        st, _, chat = self.srv.request("POST", "/chat/chats/",
                                       {"professional": pro}, token=pt)
        self.assertEqual(st, 201, chat)
        got = h.wait_for(lambda: self.srv.request(
            "GET", "/chat/chats/%s/" % chat["id"], token=pt)[2]["names"],
            what="names")
        self.assertEqual(got, {"patient": "Bea \u00c1lvarez",
                               "professional": "Dr. Ana"})
        st, _, body = self.srv.request("POST", "/chat/profiles/", {
            "kind": "patient", "id": pat, "display_name": "a\nb"},
            token=admin)
        self.assertEqual(st, 400, body)


class Tickets(h.ServerCase):
    # No leeway: a token's exp is when its socket closes.
    CONF = {"server": {"ws_ticket_lifetime": "2s"}, "auth": {"leeway": 0}}

    def ticket(self, tok):
        st, _, body = self.srv.request("POST", "/chat/ws-ticket/",
                                       token=tok)
        self.assertEqual(st, 200, body)
        self.assertEqual(set(body), {"ticket", "expires_in"})
        self.assertEqual(body["expires_in"], 2)
        return body["ticket"]

    def open(self, chat, ticket):
        return h.RawWS(self.srv.port, "/ws/chat/%s/?ticket=%s" %
                       (chat, ticket))

    def test_a_ticket_opens_one_socket_once(self):
        chat, pt, rt, _, _ = self.world.pair()
        t = self.ticket(pt)
        a = self.open(chat, t)
        self.socks.append(a)
        self.assertEqual(a.status, 101, a.body)
        a.send_json({"content": "by ticket"})
        self.assertEqual(a.recv_json()["message"]["sender_type"], "patient")
        again = self.open(chat, t)
        self.socks.append(again)
        self.assertEqual(again.recv_close(), (4401,
                                              "Invalid or expired ticket"))
        bogus = self.open(chat, "x" * 43)
        self.socks.append(bogus)
        self.assertEqual(bogus.recv_close()[0], 4401)
        # No token, no ticket in the access log.
        log = self.srv.read_log()
        self.assertNotIn(t, log)
        self.assertNotIn(pt, log)
        self.assertIn("?ticket=[redacted]", log)

    def test_expired_ticket_refused(self):
        chat, pt, _, _, _ = self.world.pair()
        t = self.ticket(pt)
        time.sleep(2.2)
        ws = self.open(chat, t)
        self.socks.append(ws)
        self.assertEqual(ws.recv_close(), (4401, "Invalid or expired ticket"))

    def test_the_tokens_expiry_still_closes(self):
        chat, pt, _, pat, _ = self.world.pair()
        short = h.token("u-" + pat[:8], patient=pat, exp_in=2)
        ws = self.open(chat, self.ticket(short))
        self.socks.append(ws)
        self.assertEqual(ws.status, 101)
        self.assertEqual(ws.recv_close()[0], 4408)

    def test_no_ticket_without_a_token(self):
        st, _, _ = self.srv.request("POST", "/chat/ws-ticket/")
        self.assertEqual(st, 401)


class TicketsAcrossNodes(unittest.TestCase):
    def test_issued_on_one_node_used_on_another_once(self):
        if not h.plugin_built("fanout-redis"):
            h.skip_or_fail("redis fan-out plugin not built (hiredis)")
        redis = h.RedisServer()
        tmp = h.tempfile.mkdtemp(prefix="carechat-tickets-")
        a, b = h.two_nodes(redis, tmp)
        try:
            chat, pt, _, _, _ = h.World(a).pair()
            st, _, body = a.request("POST", "/chat/ws-ticket/", token=pt)
            self.assertEqual(st, 200)
            ws = h.RawWS(b.port, "/ws/chat/%s/?ticket=%s" %
                         (chat, body["ticket"]))
            self.assertEqual(ws.status, 101)
            ws.close()
            again = h.RawWS(a.port, "/ws/chat/%s/?ticket=%s" %
                            (chat, body["ticket"]))
            self.assertEqual(again.recv_close()[0], 4401)
            again.close()
        finally:
            for n in (a, b):
                h.stop_checked(n)
            redis.close()


if __name__ == "__main__":
    h.main()
