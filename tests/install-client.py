#!/usr/bin/python3
"""install-client.py PORT SECRET_FILE - a first chat with an installed
carechatd, as its operator would have one: wait for /healthz, mint an
admin token from the installed secret, register a patient and a
professional, open their chat, send a message and read it back.  Exits 0
when all of that worked, else with the reason.  Used by tests/install.sh
and tests/sysinstall.sh (PYTHONPATH: tests/integration, for ccharness)."""
import sys
import time
import uuid

import ccharness as h


def main(port, secret_file):
    srv = h.Server.__new__(h.Server)  # the client half only
    srv.port = int(port)
    with open(secret_file) as f:
        secret = f.read().strip()
    deadline = time.time() + 15
    while True:
        try:
            if srv.request("GET", "/healthz")[0] == 200:
                break
        except OSError:
            pass
        if time.time() > deadline:
            return "no answer on /healthz within 15 s"
        time.sleep(0.1)
    admin = h.token("admin", admin=True, secret=secret)
    pat, pro = str(uuid.uuid4()), str(uuid.uuid4())
    for kind, pid in (("patient", pat), ("professional", pro)):
        st, _, body = srv.request("POST", "/chat/profiles/",
                                  {"kind": kind, "id": pid}, token=admin)
        if st != 201:
            return "registering a %s: %s %s" % (kind, st, body)
    pt = h.token("u-patient", patient=pat, secret=secret)
    st, _, chat = srv.request("POST", "/chat/chats/",
                              {"professional": pro}, token=pt)
    if st != 201:
        return "opening the chat: %s %s" % (st, chat)
    path = "/chat/chats/%s/" % chat["id"]
    st, _, msg = srv.request("POST", path + "send_message/",
                             {"content": "as installed"}, token=pt)
    if st != 201:
        return "sending: %s %s" % (st, msg)
    st, _, page = srv.request("GET", path + "messages/", token=pt)
    got = [m["content"] for m in page["results"]] if st == 200 else page
    if got != ["as installed"]:
        return "reading the history: %s %s" % (st, got)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
