/*
 * view.js - one open chat's messages on screen.
 *
 * Owns the list inside the role="log" element: stored messages in the
 * order of the chat's history with a line per day, then what the outbox
 * still holds (sending, trying again, or refused with the reason and
 * Edit / Discard).  Owns the scrolling: the newest message stays in view
 * as messages arrive unless the reader scrolled up, and then a "new
 * messages" button counts them.  Says which of the other party's
 * messages have been on screen (onSeen), and shows Sent / Delivered /
 * Read on the user's own, from the chat's marks.
 *
 * Text goes in with textContent only.
 */
import { otherSide } from "./api.js";

const NEAR_END = 48; /* px from the end that still counts as "at the end" */

const dayFmt = new Intl.DateTimeFormat(undefined,
  { weekday: "long", day: "numeric", month: "long" });
const dayYearFmt = new Intl.DateTimeFormat(undefined,
  { weekday: "long", day: "numeric", month: "long", year: "numeric" });
const timeFmt = new Intl.DateTimeFormat(undefined,
  { hour: "2-digit", minute: "2-digit" });
const fullFmt = new Intl.DateTimeFormat(undefined,
  { dateStyle: "full", timeStyle: "short" });

function dayKey(d) {
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/* "Today", "Yesterday", or the date. */
export function dayLabel(d, now = new Date()) {
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (dayKey(d) === dayKey(now)) return "Today";
  if (dayKey(d) === dayKey(y)) return "Yesterday";
  return (d.getFullYear() === now.getFullYear() ? dayFmt : dayYearFmt)
    .format(d);
}

export function timeLabel(d) {
  return timeFmt.format(d);
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const TICKS = {
  sent: ["✓", "Sent"],
  delivered: ["✓✓", "Delivered"],
  read: ["✓✓", "Read"],
};

export class Log {
  /* opts: root (the scrolling role="log" element), list (its <ol>),
   * jump (the "new messages" button), and callbacks onSeen(id),
   * onEdit(clientId), onDiscard(clientId). */
  constructor(opts) {
    this.o = opts;
    this.side = "";
    this.names = {};
    this.stick = true;
    this.n = 0;
    this.io = new IntersectionObserver((es) => this.seen(es),
      { root: opts.root, threshold: [0, 0.5, 1] });
    this.visible = new Set();
    opts.root.addEventListener("scroll", () => this.scrolled(),
                                { passive: true });
    opts.jump.addEventListener("click", () => this.toEnd(true));
    new ResizeObserver(() => { if (this.stick) this.toEnd(); })
      .observe(opts.root);
    document.addEventListener("visibilitychange", () => this.report());
    this.reset("", {});
  }

  /* A new chat (side: the user's; names: side -> display name). */
  reset(side, names) {
    this.side = side;
    this.names = names;
    this.io.disconnect();
    this.visible.clear();
    this.o.list.replaceChildren();
    this.byId = new Map();       /* id -> {m, li, rank} */
    this.pending = new Map();    /* client_id -> li */
    this.lastDay = "";
    this.lastSender = "";
    this.mine = [];              /* the user's own, in order */
    this.marks = { read: {}, delivered: {} };
    this.unseen = 0;
    this.stick = true;
    this.loading = false;
    this.showJump();
  }

  nameOf(side) {
    if (side === this.side) return "You";
    return this.names[side] ||
      (side === "professional" ? "Professional" : "Patient");
  }

  /* While the history loads: no scrolling per message, and screen
   * readers wait for the whole (aria-busy); then to the newest. */
  busy(on) {
    this.loading = on;
    this.o.root.setAttribute("aria-busy", on ? "true" : "false");
    if (!on) {
      this.words();
      this.toEnd();
    }
  }

  atEnd() {
    const r = this.o.root;
    return r.scrollHeight - r.scrollTop - r.clientHeight < NEAR_END;
  }

  toEnd(focusLast) {
    const r = this.o.root;
    r.scrollTop = r.scrollHeight;
    this.stick = true;
    this.unseen = 0;
    this.showJump();
    if (focusLast) r.focus({ preventScroll: true });
  }

  scrolled() {
    this.stick = this.atEnd();
    if (this.stick && this.unseen) {
      this.unseen = 0;
      this.showJump();
    }
  }

  showJump() {
    const j = this.o.jump;
    j.hidden = !this.unseen;
    j.textContent = this.unseen === 1 ? "1 new message"
                                      : `${this.unseen} new messages`;
  }

  has(id) {
    return this.byId.has(id);
  }

  /* -------------------------------------------------------- messages */

  /* A stored message, shown once, in order.  Returns true when new. */
  add(m) {
    if (this.byId.has(m.id)) return false;
    const end = this.loading || this.stick || this.atEnd();
    const when = new Date(m.created_at);
    const day = dayKey(when);
    const before = this.o.list.querySelector(".pending");
    if (day !== this.lastDay) {
      const sep = el("li", "day");
      sep.append(el("span", "", dayLabel(when)));
      this.o.list.insertBefore(sep, before);
      this.lastDay = day;
      this.lastSender = "";
    }
    const mine = m.sender_type === this.side;
    const li = this.bubble(m.sender_type, m.content, m.priority, mine);
    li.dataset.id = m.id;
    if (m.sender_type === this.lastSender) li.classList.add("cont");
    this.lastSender = m.sender_type;
    const meta = li.querySelector(".meta");
    const t = el("time", "", timeLabel(when));
    t.dateTime = m.created_at;
    t.title = fullFmt.format(when);
    meta.prepend(t);
    this.o.list.insertBefore(li, before);
    const entry = { m, li, rank: this.n++ };
    this.byId.set(m.id, entry);
    if (mine) {
      meta.append(el("span", "tick"));
      this.mine.push(entry);
      this.tick(entry);
      if (!this.loading) this.words();
    } else if (this.side) {
      this.io.observe(li);
    }
    if (this.loading) {
      /* busy(false) scrolls once */
    } else if (end || mine) {
      this.toEnd();
    } else {
      this.unseen++;
      this.showJump();
    }
    return true;
  }

  bubble(side, content, priority, mine) {
    const li = el("li", "msg " + (mine ? "mine" : "theirs"));
    const who = el("p", "who", this.nameOf(side));
    who.append(el("span", "sr-only", ":"));
    li.append(who);
    if (priority === "urgent") {
      li.classList.add("urgent");
      li.append(el("p", "flag", "Urgent"));
    }
    li.append(el("p", "text", content), el("p", "meta"));
    return li;
  }

  /* An outbox item (outbox.js): shown after the stored messages until it
   * is stored ("gone"), with its state. */
  outbox(item) {
    let li = this.pending.get(item.client_id);
    if (item.state === "gone") {
      if (li) li.remove();
      this.pending.delete(item.client_id);
      return;
    }
    if (!li) {
      li = this.bubble(this.side, item.content, item.priority, true);
      li.classList.add("pending");
      li.dataset.clientId = item.client_id;
      li.querySelector(".text").id = "p-" + item.client_id;
      this.pending.set(item.client_id, li);
      this.o.list.append(li);
      this.toEnd();
    }
    li.classList.toggle("failed", item.state === "failed");
    const meta = li.querySelector(".meta");
    meta.replaceChildren(el("span", "state", this.pendingText(item)));
    if (item.state === "failed" || item.state === "retry" ||
        item.state === "queued") {
      const actions = el("span", "actions");
      if (item.state === "failed")
        actions.append(this.action("Edit", item, this.o.onEdit));
      actions.append(this.action("Discard", item, this.o.onDiscard));
      meta.append(actions);
    }
  }

  pendingText(item) {
    switch (item.state) {
    case "sending": return "Sending…";
    case "retry": return `Not stored yet (${item.error}); trying again`;
    case "failed": return `Not sent: ${item.error}`;
    default: return "Waiting for the connection";
    }
  }

  action(label, item, fn) {
    const b = el("button", "small", label);
    b.type = "button";
    b.setAttribute("aria-describedby", "p-" + item.client_id);
    b.addEventListener("click", () => fn(item.client_id));
    return b;
  }

  /* ----------------------------------------------------------- marks */

  /* Is message a at or before b in this chat?  By position when both are
   * here, else by id (UUIDv7: time-ordered). */
  upTo(a, b) {
    if (!b) return false;
    const ea = this.byId.get(a), eb = this.byId.get(b);
    if (ea && eb) return ea.rank <= eb.rank;
    return a <= b;
  }

  /* A read or delivered mark of side moved to upTo (it only moves
   * forward).  Returns true when it moved. */
  mark(kind, side, upTo) {
    const cur = this.marks[kind][side];
    if (!upTo || (cur && this.upTo(upTo, cur))) return false;
    this.marks[kind][side] = upTo;
    if (side !== this.side) {
      for (const e of this.mine) this.tick(e);
      this.words();
    }
    return true;
  }

  /* The state's word is shown where it changes (under the newest read
   * message, the newest delivered one, the newest of all); elsewhere
   * only screen readers get it, after the icon. */
  words() {
    let next = "";
    for (let i = this.mine.length - 1; i >= 0; i--) {
      const t = this.mine[i].li.querySelector(".tick");
      t.classList.toggle("shown", t.dataset.state !== next);
      next = t.dataset.state;
    }
  }

  tick(e) {
    const other = otherSide(this.side);
    const state = this.upTo(e.m.id, this.marks.read[other]) ? "read"
      : this.upTo(e.m.id, this.marks.delivered[other]) ? "delivered"
      : "sent";
    const t = e.li.querySelector(".tick");
    if (!t || t.dataset.state === state) return;
    t.dataset.state = state;
    const [icon, word] = TICKS[state];
    const i = el("span", "icon", icon);
    i.setAttribute("aria-hidden", "true");
    t.replaceChildren(i, el("span", "word", word));
  }

  /* ---------------------------------------------------------- seeing */

  seen(entries) {
    for (const en of entries) {
      const id = en.target.dataset.id;
      const root = en.rootBounds;
      const tall = root && en.intersectionRect.height >= root.height / 2;
      if (en.isIntersecting && (en.intersectionRatio >= 0.5 || tall))
        this.visible.add(id);
      else
        this.visible.delete(id);
    }
    this.report();
  }

  /* The newest of the other party's messages on screen, to onSeen, when
   * the page is seen at all. */
  report() {
    if (document.visibilityState !== "visible" || !this.visible.size)
      return;
    let best = null;
    for (const id of this.visible) {
      const e = this.byId.get(id);
      if (e && (!best || e.rank > best.rank)) best = e;
    }
    if (best) this.o.onSeen(best.m.id);
  }

  /* The newest message of the other party, or null. */
  newestTheirs() {
    let best = null;
    for (const e of this.byId.values())
      if (e.m.sender_type !== this.side && (!best || e.rank > best.rank))
        best = e;
    return best ? best.m.id : null;
  }
}
