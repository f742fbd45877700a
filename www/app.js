/*
 * app.js - the carechat page: signing in and out, which screen shows,
 * and the open chat's wiring (connection.js, outbox.js, view.js).
 *
 * - Sign in with a token pasted into "Token", or with a link
 *   /#token=T&chat=ID (what `make run` prints, what an app opens from a
 *   notification): the token leaves the address bar at once and stays in
 *   this tab (sessionStorage) until "Sign out" forgets it.  The socket
 *   opens with a one-use ticket, never with the token in a URL.
 * - A phone shows the chat list or the open chat; a wider screen both.
 *   The open chat is in the address (#chat=ID), so Back returns to the
 *   list and a reload reopens it.
 * - The other party's messages are marked read once they are on screen;
 *   the user's own show Sent / Delivered / Read; typing is shown and
 *   sent (at most every 2 s); a message can be sent as urgent.
 * - The connection state is role="status"; while offline it counts down
 *   to the next try, with "Reconnect now".
 */
import { Api, claims, otherSide, sideIn } from "./api.js";
import { ChatList, otherName } from "./chatlist.js";
import { Connection } from "./connection.js";
import { Outbox, aboutMessage } from "./outbox.js";
import { Log } from "./view.js";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "carechat.token";
const TYPING_EVERY = 2000;
const TYPING_SHOWN = 5000;
const LIST_EVERY = 30000;

const S = {
  api: null,
  claims: {},
  chat: null,        /* the open chat */
  side: "",          /* the user's side in it */
  lastId: "",        /* the newest stored message: resume from it */
  readSent: null,    /* the newest of the other's messages marked read */
  conn: null,
  outbox: null,
  typingSent: 0,
  typingTimer: null,
  countdown: null,
  listTimer: null,
  listSoon: null,
  autoOpened: false,
};

let log, list;

/* ------------------------------------------------------------- status */

function announce(text) {
  const a = $("announce");
  a.textContent = "";
  setTimeout(() => { a.textContent = text; }, 50);
}

/* The connection state: words for everyone (role="status", said once),
 * and a countdown to the next try for the eye. */
function setConn({ kind, text, at }) {
  clearInterval(S.countdown);
  const bar = $("conn-bar");
  bar.className = "conn-bar " + kind;
  const count = $("conn-count");
  count.textContent = "";
  $("retry").hidden = kind !== "waiting";
  if (kind === "waiting") {
    $("conn-text").textContent = `Offline: ${text}. Reconnecting`;
    const tick = () => {
      const s = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      count.textContent = s ? ` in ${s} s` : "…";
    };
    tick();
    S.countdown = setInterval(tick, 250);
  } else if (kind === "stopped") {
    $("conn-text").textContent = `Disconnected: ${text}`;
  } else {
    $("conn-text").textContent = text;
  }
}

/* ------------------------------------------------------------ screens */

function show(view) {
  $("app").dataset.view = view;
  $("chat").hidden = view !== "chat";
  $("pick").hidden = view !== "list";
}

function signedIn(on) {
  $("account").hidden = !on;
  $("signin").hidden = on;
  $("chats").hidden = !on;
}

function myName() {
  const c = S.claims;
  if (typeof c.name === "string" && c.name) return c.name;
  const side = c.professional_id ? "professional"
    : c.patient_id ? "patient" : "";
  for (const chat of list.chats) {
    const s = sideIn(chat, c);
    if (s && chat.names && chat.names[s]) return chat.names[s];
  }
  return side === "professional" ? "a professional"
    : side === "patient" ? "a patient" : "your token";
}

/* "Signed in as NAME" ("Signed in as" only for screen readers on a
 * phone). */
function showMe() {
  const lead = document.createElement("span");
  lead.className = "lead";
  lead.textContent = "Signed in as ";
  const name = document.createElement("span");
  name.textContent = myName();
  $("me").replaceChildren(lead, name);
}

async function refreshList() {
  clearTimeout(S.listSoon);
  S.listSoon = null;
  if (!S.api) return;
  try {
    const page = await S.api.chats();
    list.render(page.results, S.claims);
    showMe();
  } catch (e) {
    if (e.status === 401) signOut(`Your sign-in was refused: ${e.message}`);
  }
}

/* The list again within a second (once, however much happens). */
function refreshSoon() {
  if (!S.listSoon) S.listSoon = setTimeout(refreshList, 1000);
}

/* ------------------------------------------------------------ sign in */

async function useToken(token, chatId) {
  token = token.trim();
  if (!token) return;
  const api = new Api(token);
  $("signin-error").textContent = "";
  setConn({ kind: "connecting", text: "Signing in…" });
  let page;
  try {
    page = await api.chats();
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    setConn({ kind: "idle", text: "Not signed in" });
    $("signin-error").textContent = e.status === 401
      ? `This token was refused: ${e.message}`
      : `Cannot sign in: ${e.message}`;
    signedIn(false);
    show("signin");
    return;
  }
  S.api = api;
  S.claims = claims(token);
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  list.render(page.results, S.claims);
  showMe();
  signedIn(true);
  setConn({ kind: "idle", text: "Signed in" });
  clearInterval(S.listTimer);
  S.listTimer = setInterval(refreshList, LIST_EVERY);
  const only = page.results.length === 1 ? page.results[0] : null;
  if (chatId) {
    await openChat(chatId, "replace");
  } else if (only && !S.autoOpened) {
    S.autoOpened = true;
    await openChat(only, "replace");
  } else {
    show("list");
  }
}

function signOut(why) {
  closeChat();
  clearInterval(S.listTimer);
  S.api = null;
  S.claims = {};
  S.autoOpened = false;
  for (const k of Object.keys(sessionStorage))
    if (k.startsWith("carechat.")) sessionStorage.removeItem(k);
  list.render([], {});
  history.replaceState(null, "", location.pathname + location.search);
  signedIn(false);
  show("signin");
  $("signin-error").textContent = why || "";
  setConn({ kind: "idle", text: why ? "Not signed in" : "Signed out" });
  $("token").focus();
}

/* --------------------------------------------------------- the chat */

function closeChat() {
  if (S.conn) S.conn.stop();
  if (S.outbox) clearTimeout(S.outbox.timer);
  S.conn = S.outbox = S.chat = null;
  S.lastId = "";
  S.readSent = null;
  clearTimeout(S.typingTimer);
  $("typing").textContent = "";
  log.reset("", {});
  list.current("");
  document.title = "carechat";
}

/* Open chat (an object from the list, or an id), pushing or replacing
 * the address (#chat=ID), or leaving it ("keep": from Back/Forward). */
async function openChat(chat, how = "push") {
  if (typeof chat === "string") {
    chat = list.find(chat) || chat;
    if (typeof chat === "string") {
      try {
        chat = await S.api.chat(chat);
      } catch (e) {
        show("list");
        setConn({ kind: "idle", text: `Cannot open the chat: ${e.message}` });
        return;
      }
    }
  }
  closeChat();
  S.chat = chat;
  S.side = sideIn(chat, S.claims);
  const hash = `#chat=${encodeURIComponent(chat.id)}`;
  if (how === "push" && location.hash !== hash)
    history.pushState({ chat: chat.id, pushed: true }, "", hash);
  else if (how !== "keep")
    history.replaceState({ chat: chat.id }, "", hash);
  list.current(chat.id);
  const other = otherSide(S.side);
  $("chat-h").textContent = otherName(chat, S.side);
  document.title = `${otherName(chat, S.side)} – carechat`;
  $("chat-sub").textContent = other && chat.names && chat.names[other]
    ? (other === "professional" ? "Professional" : "Patient") : "";
  show("chat");
  $("chat-h").focus();
  $("chat-note").hidden = true;
  log.reset(S.side, chat.names || {});
  await loadChat(chat);
}

async function loadChat(chat) {
  const me = chat;
  log.busy(true);
  let msgs = [];
  try {
    const fresh = await S.api.chat(chat.id);
    if (S.chat !== me) return;
    marks(fresh);
    msgs = await S.api.messages(chat.id);
  } catch (e) {
    if (S.chat !== me) return;
    note(`History could not be read (${e.message}); new messages follow.`);
  }
  if (S.chat !== me) return;
  for (const m of msgs) {
    log.add(m);
    S.lastId = m.id;
  }
  S.outbox = new Outbox({
    key: "carechat.outbox." + chat.id,
    send: (frame) => S.conn && S.conn.send(frame),
    changed: (item) => log.outbox(item),
  });
  for (const item of S.outbox.items) log.outbox(item);
  log.busy(false);
  S.conn = new Connection({
    api: S.api, chatId: chat.id, since: () => S.lastId,
    onOpen: connected, onFrame: frame, onDown: () => S.outbox.down(),
    onState: setConn,
  });
  S.conn.start();
}

/* The marks of a chat object (REST) into the view. */
function marks(chat) {
  for (const kind of ["read", "delivered"]) {
    const m = chat[`${kind}_up_to`] || {};
    for (const side of ["patient", "professional"])
      if (m[side]) log.mark(kind, side, m[side]);
  }
  const mine = (chat.read_up_to || {})[S.side];
  if (mine) S.readSent = mine;
}

async function connected() {
  const me = S.chat;
  S.outbox.pump();
  refreshSoon(); /* the list missed what came while away */
  try {
    const fresh = await S.api.chat(me.id); /* marks missed while away */
    if (S.chat !== me) return;
    S.readSent = null;
    marks(fresh);
  } catch (e) {
    /* the socket carries the next marks */
  }
  log.report();
}

function note(text) {
  const n = $("chat-note");
  n.textContent = text;
  n.hidden = false;
}

function frame(data) {
  if (data.message) {
    const m = data.message;
    S.outbox.stored(m);
    if (log.add(m)) S.lastId = m.id;
    if (m.sender_type !== S.side) typing(false);
    refreshSoon();
  } else if (data.read || data.delivered) {
    const kind = data.read ? "read" : "delivered";
    const ev = data[kind];
    if (log.mark(kind, ev.by, ev.up_to) && kind === "read") {
      if (ev.by === S.side) refreshSoon();
      else announce(`Read by ${otherName(S.chat, S.side)}`);
    }
  } else if (data.typing) {
    if (data.typing.sender_type !== S.side) typing(true);
  } else if (typeof data.error === "string") {
    refusal(data.error);
  }
}

function refusal(error) {
  if (/^since\b/i.test(error)) {
    /* The message we resumed from is gone (retention): read it all
     * again. */
    const chat = S.chat;
    closeChat();
    openChat(chat, "keep");
    return;
  }
  const item = aboutMessage(error) ? S.outbox.refused(error) : null;
  if (item && item.state === "failed")
    announce(`Message not sent: ${error}`);
  else if (!item && !/^read\b/i.test(error))
    note(error);
}

function typing(on) {
  clearTimeout(S.typingTimer);
  $("typing").textContent = on
    ? `${otherName(S.chat, S.side)} is typing…` : "";
  if (on) S.typingTimer = setTimeout(() => typing(false), TYPING_SHOWN);
}

/* One of the other's messages was on screen: read up to it. */
function seen(id) {
  if (!S.chat || (S.readSent && log.upTo(id, S.readSent))) return;
  S.readSent = id;
  if (!S.conn || !S.conn.send({ read: id }))
    S.api.markRead(S.chat.id, id).catch(() => { S.readSent = null; });
  if (id === log.newestTheirs()) refreshSoon();
}

/* -------------------------------------------------------- composing */

function submit(ev) {
  ev.preventDefault();
  const box = $("message");
  const content = box.value;
  if (!content.trim() || !S.outbox) return;
  S.outbox.add(content, $("urgent").checked ? "urgent" : "normal");
  box.value = "";
  $("urgent").checked = false;
  grow();
}

function grow() {
  const box = $("message");
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight + 2, 160)}px`;
}

function typed() {
  grow();
  const now = Date.now();
  if ($("message").value.trim() && now - S.typingSent >= TYPING_EVERY &&
      S.conn && S.conn.send({ typing: true }))
    S.typingSent = now;
}

function edit(clientId) {
  const item = S.outbox.remove(clientId);
  if (!item) return;
  const box = $("message");
  box.value = box.value ? `${item.content}\n${box.value}` : item.content;
  $("urgent").checked = item.priority === "urgent";
  grow();
  box.focus();
}

function discard(clientId) {
  if (S.outbox.remove(clientId)) announce("Message discarded");
  $("message").focus();
}

/* ------------------------------------------------------------- start */

function fromHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { token: p.get("token"), chat: p.get("chat") };
}

function route() {
  if (!S.api) return;
  const { chat } = fromHash();
  if (chat && (!S.chat || S.chat.id !== chat)) {
    openChat(chat, "keep");
  } else if (!chat && S.chat) {
    const id = S.chat.id;
    closeChat();
    show("list");
    setConn({ kind: "idle", text: "Signed in" });
    list.focus(id);
  }
}

function back() {
  if (history.state && history.state.pushed) {
    history.back();
    return;
  }
  history.replaceState(null, "", location.pathname + location.search);
  route();
}

function init() {
  log = new Log({
    root: $("messages"), list: $("msg-list"), jump: $("jump"),
    onSeen: seen, onEdit: edit, onDiscard: discard,
  });
  list = new ChatList({
    list: $("chat-list"), empty: $("no-chats"),
    onOpen: (chat) => openChat(chat, "push"),
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useToken($("token").value, fromHash().chat);
  });
  $("signout").addEventListener("click", () => signOut());
  $("retry").addEventListener("click", () => S.conn && S.conn.retryNow());
  $("back").addEventListener("click", back);
  $("send-form").addEventListener("submit", submit);
  $("message").addEventListener("input", typed);
  $("message").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("send-form").requestSubmit();
    }
  });
  window.addEventListener("popstate", route);
  window.addEventListener("online", () => S.conn && S.conn.retryNow());
  signedIn(false);
  show("signin");

  const link = fromHash();
  let token = link.token;
  if (token) {
    /* Out of the address bar (and its history) before anything else. */
    const rest = link.chat ? `#chat=${encodeURIComponent(link.chat)}` : "";
    history.replaceState(null, "", location.pathname + location.search +
                         rest);
  } else {
    token = sessionStorage.getItem(TOKEN_KEY);
  }
  if (token) useToken(token, link.chat);
}

init();
