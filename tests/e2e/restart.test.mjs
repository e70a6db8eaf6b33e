// The server restarts mid-conversation: the page shows it reconnecting, comes back by
// itself, and shows every message once, in order.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Server, WAIT, eventually, launchBrowser, signIn } from "./harness.mjs";

let server;
let browser;
before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.dispose();
});

async function join(page, room) {
  await page.fill("#room-input", room);
  await page.click("#room-join");
  await page.locator(`#rooms [data-room="${room}"]`).waitFor({ timeout: WAIT });
  await page.click(`#rooms [data-room="${room}"]`);
}

async function say(page, text) {
  await page.fill("#chat-input", text);
  await page.click("#chat-send");
}

const messages = (page) => page.locator("#messages .message").evaluateAll((items) =>
  items.map((m) => ({ id: m.dataset.id, text: m.querySelector(".text").textContent })));

test("after a restart the page reconnects by itself and shows every message once", async () => {
  const judy = await signIn(browser, server, "judy");
  const kim = await signIn(browser, server, "kim");
  await join(judy.page, "e2e-restart");
  await join(kim.page, "e2e-restart");
  for (const n of [1, 2, 3]) await say(kim.page, `before ${n}`);
  await eventually("judy has the first three", async () => (await messages(judy.page)).length === 3);

  const seen = [];
  await judy.page.exposeFunction("recordState", (state) => seen.push(state));
  await judy.page.evaluate(() => {
    const observer = new MutationObserver(() =>
      window.recordState(document.querySelector("#conn-state").dataset.state));
    observer.observe(document.querySelector("#conn-state"), { attributes: true });
  });
  await server.restart();
  await eventually("judy saw the drop", async () => seen.includes("reconnecting"), 15_000);
  await judy.page.locator("#conn-state[data-state=open]").waitFor({ timeout: 30_000 });
  await kim.page.locator("#conn-state[data-state=open]").waitFor({ timeout: 30_000 });
  for (const n of [4, 5]) await say(kim.page, `after ${n}`);
  await eventually("judy has all five", async () => (await messages(judy.page)).length >= 5, 15_000);

  const shown = await messages(judy.page);
  assert.deepEqual(shown.map((m) => m.text), ["before 1", "before 2", "before 3", "after 4", "after 5"]);
  assert.equal(new Set(shown.map((m) => m.id)).size, 5, "each id once");
  // A reload loads the same conversation from history.
  await judy.page.reload();
  await judy.page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
  await join(judy.page, "e2e-restart");
  await eventually("history after a reload", async () => (await messages(judy.page)).length === 5);

  // Chromium reports the refused connection attempts while the server was down.
  const unexpected = (problems) => problems.filter((p) => !/WebSocket connection to .* failed/.test(p));
  assert.deepEqual(unexpected(judy.problems), []);
  assert.deepEqual(unexpected(kim.problems), []);
  await judy.context.close();
  await kim.context.close();
});
