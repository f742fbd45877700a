// page.mjs - the page as a clinic hands it out, in Debian's Chromium
// (playwright-core), at a desktop's 1280x800 and a phone's 390x844.
// Driven by test_www.py, which starts carechatd and seeds it: per size, a
// patient ("Sam Patel", a name claim) and a professional ("Dr. Ada
// Lovelace", registered with display_name) with a chat of 200 messages,
// most of them the professional's and unread.  Each check runs on its
// own, with its own time limit, so that a page that fails one still
// answers the others.  Ends with one JSON line: per size, per check,
// {"ok": bool, "detail": "..."}; also the axe-core violations.
//
// env: PLAYWRIGHT_CORE (the module's directory), AXE_CORE (axe.min.js),
//      CC_PAGE (JSON: url, sizes {WxH: {pt, rt, chat, last}}, rate {url,
//      pt, chat}), CC_SHOTS (directory for the screenshots).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const AXE = fs.readFileSync(process.env.AXE_CORE, "utf8");
const DATA = JSON.parse(process.env.CC_PAGE);
const SHOTS = process.env.CC_SHOTS;
const T = 10000;

const result = { errors: [] };

// check(out, name, fn): fn's value (true, or a detail string meaning a
// failure) or its exception, within ms.
async function check(out, name, fn, ms = 20000) {
  let timer;
  try {
    const v = await Promise.race([
      fn(),
      new Promise((_, no) => {
        timer = setTimeout(() => no(new Error(`no answer in ${ms} ms`)), ms);
      }),
    ]);
    out[name] = v === true ? { ok: true }
      : { ok: false, detail: String(v) };
  } catch (e) {
    out[name] = { ok: false, detail: String(e && e.message || e)
      .split("\n").slice(0, 6).join("\n") };
  } finally {
    clearTimeout(timer);
  }
}

async function rest(url, token, p, opts = {}) {
  const res = await fetch(url + p, { ...opts, headers: {
    Authorization: "Bearer " + token, "Content-Type": "application/json" } });
  return res.json();
}

async function waitFor(what, fn, ms = T) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last === true) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: ${last}`);
}

const noSideScroll = (page) => page.evaluate(() => {
  const w = document.documentElement.scrollWidth;
  return w <= innerWidth ||
    `the page is ${w} px wide in a ${innerWidth} px window`;
});

// Is the element (selector) wholly on screen: inside the window and
// inside every scrolling box around it?
const onScreen = (page, sel) => page.evaluate((sel) => {
  const e = document.querySelector(sel);
  if (!e) return `${sel}: not on the page`;
  const r = e.getBoundingClientRect();
  if (!r.height) return `${sel}: not shown`;
  let top = 0, bottom = innerHeight;
  for (let p = e.parentElement; p; p = p.parentElement) {
    const s = getComputedStyle(p);
    if (/(auto|scroll|hidden)/.test(s.overflowY)) {
      const pr = p.getBoundingClientRect();
      top = Math.max(top, pr.top);
      bottom = Math.min(bottom, pr.bottom);
    }
  }
  return (r.top >= top - 1 && r.bottom <= bottom + 1) ||
    `${sel}: at ${Math.round(r.top)}-${Math.round(r.bottom)} px, ` +
    `the visible part is ${Math.round(top)}-${Math.round(bottom)} px`;
}, sel);

async function axe(page, where) {
  await page.evaluate(AXE);
  const r = await page.evaluate(async () => {
    const res = await window.axe.run(document,
      { resultTypes: ["violations", "incomplete"] });
    const slim = (v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ")) });
    return { violations: res.violations.map(slim),
             incomplete: res.incomplete.map(slim) };
  });
  return { where, ...r };
}

function watchFrames(page) {
  const sent = [];
  page.on("websocket", (ws) => {
    sent.push({ url: ws.url(), frames: [] });
    const mine = sent[sent.length - 1];
    ws.on("framesent", (f) => mine.frames.push(String(f.payload)));
  });
  return sent;
}

async function open(browser, size, token, chat, base = DATA.url) {
  const [width, height] = size.split("x").map(Number);
  const ctx = await browser.newContext({ viewport: { width, height },
                                         colorScheme: "light" });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => result.errors.push(`${size}: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error") result.errors.push(`${size}: ${m.text()}`);
  });
  const sockets = watchFrames(page);
  const hash = `#token=${token}` + (chat ? `&chat=${chat}` : "");
  await page.goto(`${base}/${hash}`);
  return { ctx, page, sockets };
}

// If the link did not open the chat (deep_link_opens_the_chat failed),
// open it from the list, so that the other checks still say something.
async function openByHand(page) {
  const shown = page.locator("#messages [data-id]").first();
  try {
    await shown.waitFor({ state: "attached", timeout: 3000 });
  } catch (e) {
    await page.locator("#chat-list button").first()
      .click({ timeout: T }).catch(() => {});
  }
}

const log = (page) => page.getByRole("log");
const msgBox = (page) => page.getByLabel("Message", { exact: true });

async function send(page, text, urgent = false) {
  await msgBox(page).fill(text);
  if (urgent) await page.getByLabel("Urgent").check();
  await page.getByRole("button", { name: "Send", exact: true }).click();
}

// The stored message showing text, on page.
const bubble = (page, text) => page.locator("#messages [data-id]")
  .filter({ hasText: text }).last();

async function size(browser, size) {
  const d = DATA.sizes[size];
  const out = { axe: [] };
  result[size] = out;
  const pat = await open(browser, size, d.pt, d.chat);
  const p = pat.page;
  const name = `page-${size}`;

  await check(out, "token_leaves_the_address_bar", async () =>
    !p.url().includes("token=") || `the address is ${p.url()}`);
  await check(out, "deep_link_opens_the_chat", async () => {
    await p.getByRole("heading", { name: "Dr. Ada Lovelace" })
      .waitFor({ timeout: T });
    return true;
  });
  await openByHand(p);
  await check(out, "newest_message_in_view_on_open", async () => {
    await p.locator(`[data-id="${d.last}"]`).waitFor({ timeout: T });
    await p.waitForTimeout(300);
    const a = await onScreen(p, `[data-id="${d.last}"]`);
    const b = await onScreen(p, "#message");
    return a === true ? b : a;
  });
  await check(out, "no_horizontal_scroll_on_open", () => noSideScroll(p));
  await check(out, "names_not_ids", async () => {
    const body = await p.locator("body").innerText();
    if (/[0-9a-f]{8}-[0-9a-f]{4}-/.test(body)) return "an id is shown";
    await p.getByText("Sam Patel").first().waitFor({ timeout: T });
    return true;
  });
  await check(out, "date_separator", async () => {
    await p.locator("#messages").getByText("Today", { exact: true })
      .first().waitFor({ state: "attached", timeout: T });
    return true;
  });
  await check(out, "sender_and_text_are_separate_phrases", async () => {
    const last = p.locator(`[data-id="${d.last}"]`);
    const snap = await last.ariaSnapshot({ timeout: T });
    const lines = snap.split("\n");
    const who = lines.filter((l) => l.includes("Dr. Ada Lovelace"));
    return (who.length && !who.some((l) => l.includes("Message 199"))) ||
      `reads as: ${snap}`;
  });
  await check(out, "unread_cleared_on_open", async () => {
    await waitFor("unread_count", async () => {
      const c = await rest(DATA.url, d.pt, `/chat/chats/${d.chat}/`);
      return c.unread_count === 0 || `unread_count ${c.unread_count}`;
    });
    return true;
  });

  // The professional opens the same chat on another device.
  const pro = await open(browser, size, d.rt, d.chat);
  const q = pro.page;
  await openByHand(q);
  await check(out, "read_ticks_on_the_other_page", async () => {
    await q.getByRole("heading", { name: "Sam Patel" })
      .waitFor({ timeout: T });
    await p.getByRole("status").filter({ hasText: "Connected" })
      .waitFor({ timeout: T });
    await send(p, "Can you see this?");
    await log(q).getByText("Can you see this?").waitFor({ timeout: T });
    const mine = bubble(p, "Can you see this?");
    await waitFor("the tick", async () => {
      const t = await mine.innerText();
      return /\bRead\b/.test(t) || `it says: ${t}`;
    });
    return true;
  });
  await check(out, "typing_shown", async () => {
    await msgBox(q).pressSequentially("I am wri", { delay: 30 });
    await p.getByText("Dr. Ada Lovelace is typing").waitFor({ timeout: T });
    await msgBox(q).fill("");
    return true;
  });
  await check(out, "urgent_sent_and_marked", async () => {
    await send(q, "Please call the ward today", true);
    const b = bubble(p, "Please call the ward today");
    await b.waitFor({ timeout: T });
    const t = await b.innerText();
    return /urgent/i.test(t) || `it says: ${t}`;
  });
  await check(out, "new_messages_control_when_scrolled_up", async () => {
    await p.locator("#messages").evaluate((e) => { e.scrollTop = 0; });
    await p.waitForTimeout(300);
    await send(q, "Sent while you read older ones");
    await bubble(p, "Sent while you read older ones")
      .waitFor({ state: "attached", timeout: T });
    const jump = p.getByRole("button", { name: /new message/ });
    await jump.waitFor({ timeout: T });
    const top = await p.locator("#messages").evaluate((e) => e.scrollTop);
    if (top > 200) return `the log scrolled by itself to ${top}`;
    await jump.click();
    await p.waitForTimeout(300);
    return onScreen(p, "#messages [data-id]:last-of-type");
  });
  await check(out, "long_word_wraps", async () => {
    await send(p, "W" + "o".repeat(400) + "rd");
    await bubble(p, "Woooo").waitFor({ timeout: T });
    return noSideScroll(p);
  });
  await check(out, "refused_message_discarded", async () => {
    const text = `TOO-LONG-${size}-` + "x".repeat(10000);
    await send(p, text);
    const item = p.locator("#messages li, #messages div.msg")
      .filter({ hasText: "Message content too long" }).first();
    await item.waitFor({ timeout: T });
    await p.waitForTimeout(5000); /* a retry would go out meanwhile */
    const sent = pat.sockets.flatMap((s) => s.frames)
      .filter((f) => f.includes(`TOO-LONG-${size}-`)).length;
    if (sent !== 1) return `sent ${sent} times`;
    await item.getByRole("button", { name: "Discard" }).click();
    await waitFor("discarded", async () =>
      (await log(p).getByText(`TOO-LONG-${size}-`).count()) === 0 ||
      "still shown");
    const kept = await p.evaluate(() => Object.keys(sessionStorage)
      .filter((k) => sessionStorage.getItem(k).includes("TOO-LONG")));
    return !kept.length || `still kept in ${kept}`;
  });
  await check(out, "refused_message_edited", async () => {
    const text = `EDIT-ME-${size}-` + "y".repeat(10000);
    await send(p, text);
    const item = p.locator("#messages li")
      .filter({ hasText: "Message content too long" }).first();
    await item.getByRole("button", { name: "Edit" }).click({ timeout: T });
    const v = await msgBox(p).inputValue();
    await msgBox(p).fill("");
    return v === text || `the message box holds ${v.length} characters`;
  });
  await check(out, "no_horizontal_scroll_at_the_end", () => noSideScroll(p));

  await p.waitForTimeout(500);
  await p.screenshot({ path: path.join(SHOTS, `${name}.png`) });
  await q.screenshot({ path: path.join(SHOTS, `${name}-professional.png`) });
  out.axe.push(await axe(p, "chat, light"));
  await p.emulateMedia({ colorScheme: "dark" });
  out.axe.push(await axe(p, "chat, dark"));
  await p.screenshot({ path: path.join(SHOTS, `${name}-dark.png`) });
  await p.emulateMedia({ colorScheme: "light" });

  if (size.startsWith("390")) {
    await check(out, "phone_back_to_the_list", async () => {
      await p.getByRole("button", { name: "Chats" }).click({ timeout: T });
      const item = p.getByRole("button", { name: /Dr\. Ada Lovelace/ });
      await item.waitFor({ timeout: T });
      const t = await item.innerText();
      return !/unread/.test(t) || `the list says: ${t}`;
    });
    await p.screenshot({ path: path.join(SHOTS, `${name}-list.png`) });
    out.axe.push(await axe(p, "chat list, light"));
  }
  // Another chat, opened from the list: read once shown, as the first.
  await check(out, "second_chat_read_on_open", async () => {
    await p.getByRole("button", { name: /Nurse Jo Park/ })
      .click({ timeout: T });
    await p.getByRole("heading", { name: "Nurse Jo Park" })
      .waitFor({ timeout: T });
    await waitFor("unread_count", async () => {
      const c = await rest(DATA.url, d.pt, `/chat/chats/${d.chat2}/`);
      return c.unread_count === 0 || `unread_count ${c.unread_count}`;
    });
    return true;
  });

  await check(out, "sign_out_forgets_the_token", async () => {
    await p.getByRole("button", { name: "Sign out" }).click({ timeout: T });
    await p.getByLabel("Token").waitFor({ timeout: T });
    const kept = await p.evaluate(() => Object.keys(sessionStorage)
      .filter((k) => k.startsWith("carechat.")));
    if (kept.length) return `sessionStorage keeps ${kept}`;
    await p.reload();
    await p.getByLabel("Token").waitFor({ timeout: T });
    return (await p.getByRole("log").isVisible()) === false ||
      "the chat is still shown after a reload";
  });
  out.axe.push(await axe(p, "sign-in, light"));
  await p.emulateMedia({ colorScheme: "dark" });
  out.axe.push(await axe(p, "sign-in, dark"));
  await p.screenshot({ path: path.join(SHOTS, `${name}-signin-dark.png`) });
  await pat.ctx.close();
  await pro.ctx.close();
}

// Transient refusals: a server with message_rate = 1 and message_burst
// = 1; three messages typed at once are all stored, once each, in order.
async function transient(browser) {
  const r = DATA.rate;
  const out = {};
  result.rate = out;
  const pat = await open(browser, "1280x800", r.pt, r.chat, r.url);
  const p = pat.page;
  await check(out, "transient_refusals_retried", async () => {
    await p.getByRole("status").filter({ hasText: "Connected" })
      .waitFor({ timeout: T });
    for (const t of ["First", "Second", "Third"]) await send(p, t);
    await waitFor("all three stored", async () => {
      const h = await rest(r.url, r.pt, `/chat/chats/${r.chat}/messages/`);
      const got = h.results.map((m) => m.content).join(",");
      return got === "First,Second,Third" || got;
    }, 15000);
    return true;
  }, 30000);
  await pat.ctx.close();
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync"],
});
try {
  for (const s of Object.keys(DATA.sizes)) await size(browser, s);
  if (DATA.rate) await transient(browser);
} catch (e) {
  result.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
process.exit(0);
