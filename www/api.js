/*
 * api.js - the REST side of carechat, and what a token says.
 *
 * Owns the token while signed in (the caller keeps it in sessionStorage)
 * and every fetch the page makes.  The token goes in an Authorization
 * header, never in a URL: a WebSocket is opened with a one-use ticket
 * (POST /chat/ws-ticket/), asked for just before each (re)connect.
 */

/* A refused request: the HTTP status (0: no answer) and the server's
 * {"error": ...} text. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/* The path and query of a link the server wrote (it names its host). */
export function local(link) {
  const u = new URL(link, location.href);
  return u.pathname + u.search;
}

/* A token's claims (unverified: only to recognise ourselves). */
export function claims(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = atob(p + "=".repeat((4 - p.length % 4) % 4));
    const bytes = Uint8Array.from(json, (ch) => ch.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) || {};
  } catch (e) {
    return {};
  }
}

/* Which side of chat the token's holder is: "patient", "professional"
 * or "" (not known).  Claim names are configurable on the server, so
 * this looks for the chat's profile ids among every claim's values. */
export function sideIn(chat, tokenClaims) {
  const values = new Set(Object.values(tokenClaims)
    .filter((v) => typeof v === "string").map((v) => v.toLowerCase()));
  const pat = values.has(String(chat.patient).toLowerCase());
  const pro = values.has(String(chat.professional).toLowerCase());
  if (pat && !pro) return "patient";
  if (pro && !pat) return "professional";
  return "";
}

export function otherSide(side) {
  return side === "patient" ? "professional"
    : side === "professional" ? "patient" : "";
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  /* One request; the parsed JSON answer, or an ApiError. */
  async req(path, { method = "GET", body } = {}) {
    const headers = { "Authorization": "Bearer " + this.token };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, {
        method, headers, cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "The server cannot be reached");
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok)
      throw new ApiError(res.status, (data && data.error) || res.statusText);
    return data;
  }

  chats() {
    return this.req("/chat/chats/?page_size=200");
  }

  chat(id) {
    return this.req(`/chat/chats/${encodeURIComponent(id)}/`);
  }

  /* A chat's whole history, oldest first, page by page. */
  async messages(id) {
    let path = `/chat/chats/${encodeURIComponent(id)}/messages/` +
               "?page_size=200";
    const out = [];
    while (path) {
      const page = await this.req(path);
      out.push(...page.results);
      path = page.next ? local(page.next) : null;
    }
    return out;
  }

  markRead(id, upTo) {
    return this.req(`/chat/chats/${encodeURIComponent(id)}/mark_read/`,
                    { method: "POST", body: { read: upTo } });
  }

  /* A one-use ticket for the next WebSocket (30 s). */
  async ticket() {
    const t = await this.req("/chat/ws-ticket/", { method: "POST" });
    return t.ticket;
  }
}
