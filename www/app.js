/*
 * carechat demo page: a client written from the spec, with its best
 * practices done properly.
 *
 * - Reconnects with exponential backoff (1 s doubling to 30 s, with
 *   jitter), resuming with ?since=<the last message it has>, so nothing
 *   sent while it was away is missed and nothing arrives twice.
 * - Queues what is typed while offline (kept in sessionStorage, so a
 *   reload keeps it) and sends each message with a client_id: a message
 *   resent after a lost acknowledgement is stored once.
 * - Shows the connection state (role="status") and the messages
 *   (role="log").  Text goes in with textContent only.
 *
 * The token stays in this tab (sessionStorage); a #token=... in the URL
 * is taken and removed from the address bar.  No external resources.
 */
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  token: "",
  me: { patient: "", professional: "" },
  chat: null,        // the open chat object
  seen: new Map(),   // message id -> element
  lastId: "",        // the newest message we have: resume from it
  ws: null,
  backoff: 1000,
  retryTimer: null,
  resendTimer: null,
  stopped: false,    // the server refused us for good (4401, 4403, 4404)
};

/* ----------------------------------------------------------- helpers */

function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-` +
         `${h.slice(16, 20)}-${h.slice(20)}`;
}

function claims(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(p + "=".repeat((4 - p.length % 4) % 4)));
  } catch (e) {
    return {};
  }
}

function setStatus(text, cls) {
  const el = $("conn");
  el.textContent = text;
  el.className = cls || "";
}

async function api(path, opts = {}) {
  const res = await fetch(path, {
    ...opts,
    headers: { "Authorization": "Bearer " + state.token,
               "Content-Type": "application/json" },
  });
  const body = res.status === 204 ? null : await res.json();
  if (!res.ok) throw new Error((body && body.error) || res.statusText);
  return body;
}

/* The path and query of a link the server gave (it names its host). */
function local(link) {
  const u = new URL(link);
  return u.pathname + u.search;
}

/* ------------------------------------------------------------- queue */

function queueKey() { return "carechat.queue." + state.chat.id; }

function queue() {
  try {
    return JSON.parse(sessionStorage.getItem(queueKey()) || "[]");
  } catch (e) {
    return [];
  }
}

function saveQueue(q) { sessionStorage.setItem(queueKey(), JSON.stringify(q)); }

function sendQueued() {
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  for (const item of queue())
    ws.send(JSON.stringify({ content: item.content,
                             client_id: item.client_id }));
}

/* ---------------------------------------------------------- messages */

function mine(m) {
  const c = state.chat;
  return (m.sender_type === "patient" && c.patient === state.me.patient) ||
         (m.sender_type === "professional" &&
          c.professional === state.me.professional);
}

function render(m, pending) {
  const div = document.createElement("div");
  div.className = "msg" + (pending || mine(m) ? " mine" : "") +
                  (pending ? " pending" : "");
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = pending ? "you (sending…)" : m.sender_type;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.content;
  div.append(who, text);
  if (!pending) {
    const t = document.createElement("time");
    t.dateTime = m.created_at;
    t.textContent = new Date(m.created_at).toLocaleTimeString();
    div.append(t);
    div.dataset.id = m.id;
  } else {
    div.dataset.clientId = m.client_id;
  }
  return div;
}

/* A stored message: shown once, in order; it acknowledges its queued
 * copy, if any. */
function addMessage(m) {
  const log = $("messages");
  if (m.client_id) {
    const q = queue().filter((i) => i.client_id !== m.client_id);
    saveQueue(q);
    const p = log.querySelector(`.pending[data-client-id="${m.client_id}"]`);
    if (p) p.remove();
  }
  state.lastId = m.id;
  if (state.seen.has(m.id)) return;
  const el = render(m, false);
  state.seen.set(m.id, el);
  const firstPending = log.querySelector(".pending");
  log.insertBefore(el, firstPending);
  log.scrollTop = log.scrollHeight;
}

function note(text) {
  const p = document.createElement("p");
  p.className = "note";
  p.textContent = text;
  $("messages").append(p);
}

/* --------------------------------------------------------- websocket */

function connect() {
  clearTimeout(state.retryTimer);
  if (state.stopped || !state.chat) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  let url = `${scheme}//${location.host}/ws/chat/${state.chat.id}/` +
            `?token=${encodeURIComponent(state.token)}`;
  if (state.lastId) url += `&since=${state.lastId}`;
  setStatus(state.lastId ? "Reconnecting…" : "Connecting…", "offline");
  const ws = new WebSocket(url);
  state.ws = ws;
  ws.onopen = () => {
    state.backoff = 1000;
    setStatus("Connected", "online");
    sendQueued();
  };
  ws.onmessage = (ev) => {
    let data;
    try { data = JSON.parse(ev.data); } catch (e) { return; }
    if (data.message) {
      addMessage(data.message);
    } else if (data.error) {
      note(data.error);
      // Not stored: what is still queued goes again (same client_ids,
      // so nothing is stored twice).
      clearTimeout(state.resendTimer);
      state.resendTimer = setTimeout(sendQueued, 2000);
    }
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    if ([4401, 4403, 4404].includes(ev.code)) {
      state.stopped = true;
      setStatus(`Disconnected: ${ev.reason || ev.code}`, "offline");
      return;
    }
    const wait = state.backoff * (0.75 + Math.random() / 2);
    state.backoff = Math.min(state.backoff * 2, 30000);
    setStatus(`Offline: reconnecting in ${Math.ceil(wait / 1000)} s`,
              "offline");
    state.retryTimer = setTimeout(connect, wait);
  };
}

/* ----------------------------------------------------------- screens */

async function loadHistory(chat) {
  let path = `/chat/chats/${chat.id}/messages/?page_size=200`;
  while (path) {
    const page = await api(path);
    for (const m of page.results) addMessage(m);
    path = page.next ? local(page.next) : null;
  }
}

async function openChat(chat) {
  if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
  state.chat = chat;
  state.seen.clear();
  state.lastId = "";
  state.stopped = false;
  $("messages").replaceChildren();
  const other = chat.patient === state.me.patient
    ? `professional ${chat.professional}` : `patient ${chat.patient}`;
  $("chat-h").textContent = `Chat with ${other}`;
  $("chat").hidden = false;
  await loadHistory(chat);
  for (const item of queue())
    $("messages").append(render(item, true));
  connect();
}

async function loadChats() {
  const list = $("chat-list");
  list.replaceChildren();
  let page;
  try {
    page = await api("/chat/chats/?page_size=200");
  } catch (e) {
    setStatus(`Not signed in: ${e.message}`, "offline");
    return;
  }
  for (const chat of page.results) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    const other = chat.patient === state.me.patient
      ? chat.professional : chat.patient;
    b.textContent = `Chat with ${other}` + (chat.unread_count
      ? ` (${chat.unread_count} unread)` : "");
    b.addEventListener("click", () => openChat(chat));
    li.append(b);
    list.append(li);
  }
  if (!page.results.length) list.textContent = "No chats yet.";
  setStatus("Signed in", "");
}

function useToken(token) {
  state.token = token.trim();
  sessionStorage.setItem("carechat.token", state.token);
  const c = claims(state.token);
  state.me.patient = c.patient_id || "";
  state.me.professional = c.professional_id || "";
  $("who").textContent = [
    c.patient_id ? `patient ${c.patient_id}` : "",
    c.professional_id ? `professional ${c.professional_id}` : "",
  ].filter(Boolean).join(", ");
  return loadChats();
}

function init() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    $("token").value = decodeURIComponent(m[1]);
    history.replaceState(null, "", location.pathname);
  } else {
    $("token").value = sessionStorage.getItem("carechat.token") || "";
  }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useToken($("token").value);
  });
  $("send-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("message");
    const content = input.value;
    if (!content.trim() || !state.chat) return;
    const item = { client_id: uuid(), content };
    saveQueue([...queue(), item]);
    $("messages").append(render(item, true));
    input.value = "";
    const ws = state.ws;
    if (ws && ws.readyState === WebSocket.OPEN)
      ws.send(JSON.stringify({ content, client_id: item.client_id }));
  });
  if ($("token").value) useToken($("token").value);
}

document.addEventListener("DOMContentLoaded", init);
