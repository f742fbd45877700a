/*
 * chatlist.js - the list of the user's chats: who with (by name, else
 * the role), the last message and when, unread counts.  One button per
 * chat; the open one is aria-current.  Text goes in with textContent.
 */
import { otherSide, sideIn } from "./api.js";
import { dayLabel, timeLabel } from "./view.js";

const shortDay = new Intl.DateTimeFormat(undefined,
  { day: "numeric", month: "short" });

/* The other party of chat as the user should see them. */
export function otherName(chat, side) {
  const other = otherSide(side);
  const names = chat.names || {};
  if (other) return names[other] || (other === "professional"
    ? "Professional" : "Patient");
  return [names.patient || "Patient",
          names.professional || "Professional"].join(" and ");
}

function when(iso) {
  const d = new Date(iso);
  const label = dayLabel(d);
  if (label === "Today") return timeLabel(d);
  if (label === "Yesterday") return label;
  return shortDay.format(d);
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

export class ChatList {
  /* opts: list (the <ul>), empty (the "no chats" note), onOpen(chat). */
  constructor(opts) {
    this.o = opts;
    this.chats = [];
    this.openId = "";
  }

  /* Draw the list again (keyboard focus stays on its chat). */
  render(chats, tokenClaims) {
    const a = document.activeElement;
    const focused = a && a.classList.contains("chat-item")
      ? a.dataset.id : "";
    this.chats = chats;
    const items = chats.map((chat) => this.item(chat, tokenClaims));
    this.o.list.replaceChildren(...items);
    this.o.empty.hidden = chats.length > 0;
    this.current(this.openId);
    if (focused) this.focus(focused);
  }

  item(chat, tokenClaims) {
    const side = sideIn(chat, tokenClaims);
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "chat-item";
    b.dataset.id = chat.id;
    const top = span("line", "");
    top.append(span("name", otherName(chat, side)));
    const last = chat.last_message;
    if (last) {
      const t = document.createElement("time");
      t.dateTime = last.created_at;
      t.textContent = when(last.created_at);
      top.append(t);
    }
    b.append(top);
    const bottom = span("line", "");
    let preview = "No messages yet";
    if (last)
      preview = (last.sender_type === side ? "You: " : "") + last.content;
    bottom.append(span("preview", preview));
    if (chat.unread_count) {
      if (last && last.priority === "urgent" && last.sender_type !== side)
        bottom.append(span("badge urgent", "Urgent"));
      bottom.append(span("badge", `${chat.unread_count} unread`));
    }
    b.append(bottom);
    b.addEventListener("click", () => this.o.onOpen(chat));
    li.append(b);
    return li;
  }

  /* Mark the open chat (id, or "" for none). */
  current(id) {
    this.openId = id;
    for (const b of this.o.list.querySelectorAll(".chat-item")) {
      if (b.dataset.id === id) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
  }

  find(id) {
    return this.chats.find((c) => c.id === id) || null;
  }

  focus(id) {
    const b = [...this.o.list.querySelectorAll(".chat-item")]
      .find((x) => x.dataset.id === id);
    if (b) b.focus();
  }
}
