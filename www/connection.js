/*
 * connection.js - one chat's WebSocket, kept open.
 *
 * Every (re)connect asks for a fresh ticket and opens
 * /ws/chat/{id}/?ticket=...&receipts=1[&since=<the newest message we
 * have>], so nothing sent meanwhile is missed or arrives twice.  After a
 * drop it waits 1 s, doubling to 30 s, with jitter, and says when the
 * next try is (state "waiting", with its time); a close that will not
 * change by trying again (4401 twice, 4403, 4404, 4408, no tickets)
 * stops it (state "stopped", with the reason).
 *
 * The owner gives: api (api.js), chatId, since() (the id to resume from,
 * or ""), and callbacks onOpen(), onFrame(object), onDown() and
 * onState({kind, text, at}) where kind is "connecting", "online",
 * "waiting" or "stopped".
 */
const FIRST_WAIT = 1000;
const LONGEST_WAIT = 30000;

/* Close codes that trying again will not change. */
const FOR_GOOD = {
  4403: "you are not a member of this chat",
  4404: "this chat does not exist",
  4408: "your sign-in has expired: sign in again",
};

const WHY = {
  1001: "the server is restarting",
  1013: "the server is busy",
  4429: "too many open connections",
};

export class Connection {
  constructor(opts) {
    this.o = opts;
    this.ws = null;
    this.wait = FIRST_WAIT;
    this.timer = null;
    this.stopped = false;
    this.refusals = 0;   /* 4401s in a row */
    this.attempt = 0;    /* to drop answers of an attempt given up */
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  /* Close for good (the chat was left, or the user signed out). */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.attempt++;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000);
  }

  isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  send(obj) {
    if (!this.isOpen()) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  /* "Reconnect now", or the browser says it is online again. */
  retryNow() {
    if (this.stopped || this.ws) return;
    this.wait = FIRST_WAIT;
    this.connect();
  }

  state(kind, text, at) {
    this.o.onState({ kind, text, at: at || 0 });
  }

  giveUp(text) {
    this.stopped = true;
    clearTimeout(this.timer);
    this.state("stopped", text);
  }

  later(why) {
    if (this.stopped) return;
    const ms = this.wait * (0.75 + Math.random() / 2);
    this.wait = Math.min(this.wait * 2, LONGEST_WAIT);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), ms);
    this.state("waiting", why, Date.now() + ms);
  }

  async connect() {
    clearTimeout(this.timer);
    if (this.stopped || this.ws) return;
    const attempt = ++this.attempt;
    this.state("connecting", this.o.since() ? "Reconnecting…"
                                              : "Connecting…");
    let ticket;
    try {
      ticket = await this.o.api.ticket();
    } catch (e) {
      if (attempt !== this.attempt) return;
      if (e.status === 401)
        this.giveUp("your sign-in was refused: sign in again");
      else if (e.status === 501)
        this.giveUp("this server cannot open chats in a browser " +
                    "(no WebSocket tickets)");
      else
        this.later(e.status ? e.message : "the server cannot be reached");
      return;
    }
    if (attempt !== this.attempt) return;
    this.open(ticket);
  }

  open(ticket) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const since = this.o.since();
    const url = `${scheme}//${location.host}/ws/chat/` +
      `${encodeURIComponent(this.o.chatId)}/` +
      `?ticket=${encodeURIComponent(ticket)}&receipts=1` +
      (since ? `&since=${encodeURIComponent(since)}` : "");
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.wait = FIRST_WAIT;
      this.refusals = 0;
      this.state("online", "Connected");
      this.o.onOpen();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      let data;
      try { data = JSON.parse(ev.data); } catch (e) { return; }
      if (data && typeof data === "object") this.o.onFrame(data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.o.onDown();
      this.closed(ev.code, ev.reason);
    };
  }

  closed(code, reason) {
    if (FOR_GOOD[code]) {
      this.giveUp(FOR_GOOD[code]);
      return;
    }
    if (code === 4401) {
      /* A ticket is fresh and used once: a second refusal in a row is
       * the token's. */
      if (++this.refusals >= 2) {
        this.giveUp("your sign-in was refused: sign in again");
        return;
      }
    }
    if (code === 4429) this.wait = Math.max(this.wait, 8000);
    this.later(WHY[code] || reason || "the connection was lost");
  }
}
