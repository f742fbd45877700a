/*
 * outbox.js - what the user sent that the server has not stored yet.
 *
 * One chat's queue, kept in sessionStorage (a reload keeps it; closing
 * the tab or signing out forgets it).  Each item carries a client_id: a
 * message sent again after a lost answer is stored once.
 *
 * One message is on the wire at a time, so the server's answer (the
 * stored message, or an {"error"}) is known to be about it.  A refusal
 * that trying again can fix ("... try again", "... slow down") is tried
 * again after 1 s, doubling to 30 s; any other refusal (too long, empty,
 * invalid) will not change, so the item stops, marked "failed" with the
 * server's reason, until the user edits or discards it.
 *
 * The owner gives: key (the storage key), send(frame) -> bool (false when
 * the socket is not open) and changed(item) (after every change of an
 * item; item.state "gone" when it left the queue).
 */
const FIRST_RETRY = 1000;
const LONGEST_RETRY = 30000;
const NO_ANSWER = 20000;   /* then the message is sent again */

/* A refusal that may pass: the server says so in its words. */
export function transient(error) {
  return /try again|slow down/i.test(error);
}

/* An {"error"} that answers a message (not a read mark, typing or the
 * since of the URL). */
export function aboutMessage(error) {
  return !/^(read\b|read marks?\b|since\b|typing\b|expected \{"read")/i
    .test(error);
}

export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-` +
         `${h.slice(16, 20)}-${h.slice(20)}`;
}

export class Outbox {
  constructor({ key, send, changed }) {
    this.key = key;
    this.sendFrame = send;
    this.changed = changed;
    this.flying = null;   /* client_id of the item on the wire */
    this.timer = null;
    this.items = this.load();
    for (const it of this.items)
      if (it.state !== "failed") it.state = "queued";
  }

  load() {
    try {
      const q = JSON.parse(sessionStorage.getItem(this.key) || "[]");
      return Array.isArray(q) ? q : [];
    } catch (e) {
      return [];
    }
  }

  save() {
    if (this.items.length)
      sessionStorage.setItem(this.key, JSON.stringify(this.items));
    else
      sessionStorage.removeItem(this.key);
  }

  find(clientId) {
    return this.items.find((i) => i.client_id === clientId);
  }

  add(content, priority) {
    const item = { client_id: uuid(), content, priority, state: "queued",
                   tries: 0, retry_at: 0, error: "" };
    this.items.push(item);
    this.save();
    this.changed(item);
    this.pump();
    return item;
  }

  /* Send the next item that is due, unless one is on the wire. */
  pump() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.flying) return;
    const now = Date.now();
    const due = this.items.filter((i) => i.state === "queued" ||
                                         i.state === "retry");
    const next = due.find((i) => i.retry_at <= now);
    if (!next) {
      const soonest = Math.min(...due.map((i) => i.retry_at));
      if (isFinite(soonest))
        this.timer = setTimeout(() => this.pump(), soonest - now);
      return;
    }
    const frame = { content: next.content, client_id: next.client_id };
    if (next.priority === "urgent") frame.priority = "urgent";
    if (!this.sendFrame(frame)) return; /* offline: onOpen pumps */
    this.flying = next.client_id;
    next.state = "sending";
    this.changed(next);
    this.timer = setTimeout(() => { this.down(); this.pump(); }, NO_ANSWER);
  }

  /* A stored message: if it is one of ours, it leaves the queue. */
  stored(message) {
    const item = message.client_id && this.find(message.client_id);
    if (!item) return false;
    this.items = this.items.filter((i) => i !== item);
    this.save();
    item.state = "gone";
    this.changed(item);
    if (this.flying === item.client_id) {
      this.flying = null;
      this.pump();
    }
    return true;
  }

  /* The server's {"error"} about the message on the wire.  Returns the
   * item it was about, or null (nothing was on the wire). */
  refused(error) {
    const item = this.flying && this.find(this.flying);
    this.flying = null;
    clearTimeout(this.timer);
    if (!item) {
      this.pump();
      return null;
    }
    item.error = error;
    if (transient(error)) {
      item.tries++;
      item.state = "retry";
      item.retry_at = Date.now() +
        Math.min(FIRST_RETRY * 2 ** (item.tries - 1), LONGEST_RETRY);
    } else {
      item.state = "failed";
    }
    this.save();
    this.changed(item);
    this.pump();
    return item;
  }

  /* The socket closed (or an answer never came): what was on the wire
   * goes again, with its client_id, once the socket is back. */
  down() {
    const item = this.flying && this.find(this.flying);
    this.flying = null;
    clearTimeout(this.timer);
    this.timer = null;
    if (item && item.state === "sending") {
      item.state = "queued";
      this.changed(item);
    }
  }

  /* Take an item out of the queue (discard, or edit: the caller puts its
   * text back in the message box). */
  remove(clientId) {
    const item = this.find(clientId);
    if (!item) return null;
    this.items = this.items.filter((i) => i !== item);
    if (this.flying === clientId) this.flying = null;
    this.save();
    item.state = "gone";
    this.changed(item);
    this.pump();
    return item;
  }
}
