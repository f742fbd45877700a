// demo.mjs - the demo page in Debian's Chromium (playwright-core), as a
// patient and a professional would use it.  Driven by test_www.py, which
// owns the server: this script prints "STOP" and "START" and waits for
// "STOPPED" and "STARTED" on stdin around a restart of carechatd.  Ends
// with one JSON line: what each page's message log shows.
//
// env: PLAYWRIGHT_CORE (the module's directory), CC_URL, CC_PT, CC_RT,
//      CC_SHOT (screenshot path; the offline one beside it, -offline.png).
import { createRequire } from "node:module";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const lines = readline.createInterface({ input: process.stdin });
const waiting = [];
lines.on("line", (l) => { const w = waiting.shift(); if (w) w(l.trim()); });
const nextLine = () => new Promise((r) => waiting.push(r));
const T = 20000;

async function say(what, answer) {
  console.log(what);
  const got = await nextLine();
  if (got !== answer) throw new Error(`expected ${answer}, got ${got}`);
}

// The texts of the stored messages a page shows, in order.
const shown = (page) => page.locator("#messages .msg:not(.pending) .text")
  .allTextContents();

async function waitShown(page, want) {
  const deadline = Date.now() + 30000;
  let got = [];
  while (Date.now() < deadline) {
    got = await shown(page);
    const pending = await page.locator("#messages .pending").count();
    if (!pending && got.length >= want.length) return got;
    await page.waitForTimeout(100);
  }
  return got;
}

async function send(page, text) {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
}

async function open(browser, token) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // While carechatd is down, failed requests are expected, not errors.
  page.on("console", (m) => {
    if (m.type() === "error" &&
        !/^Failed to load resource: net::|^WebSocket connection to /
          .test(m.text()))
      errors.push(m.text());
  });
  // The only chat opens by itself.
  await page.goto(`${process.env.CC_URL}/#token=${token}`);
  await page.getByRole("status").filter({ hasText: "Connected" })
    .waitFor({ timeout: T });
  return { page, errors };
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update",
         "--disable-sync"],
});
const result = {};
try {
  const pat = await open(browser, process.env.CC_PT);
  const pro = await open(browser, process.env.CC_RT);
  result.token_in_url = pat.page.url().includes("token=");
  result.labels = {
    token: await pat.page.getByLabel("Token").count(),
    message: await pat.page.getByLabel("Message", { exact: true }).count(),
    send: await pat.page.getByRole("button", { name: "Send" }).count(),
    log: await pat.page.getByRole("log").count(),
    status: await pat.page.getByRole("status").count(),
  };
  await send(pat.page, "Hello, doctor");
  await pro.page.getByRole("log").getByText("Hello, doctor")
    .waitFor({ timeout: T });
  await send(pro.page, "Hello! How are you feeling?");
  await pat.page.getByRole("log").getByText("Hello! How are you feeling?")
    .waitFor({ timeout: T });

  await say("STOP", "STOPPED");
  await pat.page.getByRole("status").filter({ hasText: /Offline|Reconnect/ })
    .waitFor({ timeout: T });
  result.offline_status = await pat.page.getByRole("status").textContent();
  for (const t of ["Typed offline 1", "Typed offline 2", "Typed offline 3"])
    await send(pat.page, t);
  result.pending_while_offline = await pat.page
    .locator("#messages .pending").count();
  await pat.page.screenshot({
    path: process.env.CC_SHOT.replace(/\.png$/, "-offline.png") });
  await say("START", "STARTED");

  const want = ["Hello, doctor", "Hello! How are you feeling?",
                "Typed offline 1", "Typed offline 2", "Typed offline 3"];
  result.patient = await waitShown(pat.page, want);
  result.professional = await waitShown(pro.page, want);
  result.status_after = await pat.page.getByRole("status").textContent();
  await pat.page.screenshot({ path: process.env.CC_SHOT, fullPage: true });
  result.errors = [...pat.errors, ...pro.errors];
} catch (e) {
  result.failure = String(e && e.stack || e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
lines.close();
process.exit(0);
