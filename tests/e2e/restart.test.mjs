// Reconnects: when only this page's connection drops while others keep chatting, it
// comes back by itself and the missed chats are replayed, each once and in order; when
// the whole server restarts mid-conversation, the same holds.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, done, eventually, inRoom, join, say, setup, signIn } from "./harness.mjs";

const env = setup(before, after);

const messages = (page) => page.locator("#messages .message").evaluateAll((items) =>
  items.map((m) => ({ id: m.dataset.id, text: m.querySelector(".text").textContent })));

/** Records every connection state the page shows, in order. */
async function watchStates(page) {
  const seen = [];
  await page.exposeFunction("recordState", (state) => seen.push(state));
  await page.evaluate(() => {
    const node = document.querySelector("#conn-state");
    new MutationObserver(() => window.recordState(node.dataset.state)).observe(node, { attributes: true });
  });
  return seen;
}

/** Chromium reports refused connection attempts while a server is unreachable. */
const REFUSED = /WebSocket connection to .* failed/;

test("a page whose connection drops gets the chats it missed, once each, in order", async () => {
  const { browser, server } = env;
  // Judy's socket goes through a switch the test controls; everything else is direct.
  const sockets = [];
  let offline = false;
  const prepare = (page) => page.routeWebSocket(/\/ws/, (socket) => {
    if (offline) {
      socket.close({ code: 4500, reason: "test: offline" });
      return;
    }
    sockets.push({ socket, upstream: socket.connectToServer() });
  });
  const judy = await signIn(browser, server, "judy", { prepare });
  const kim = await signIn(browser, server, "kim");
  await join(judy.page, "e2e-drop");
  await join(kim.page, "e2e-drop");
  await say(kim.page, "one");
  await eventually("judy has the first", async () => (await messages(judy.page)).length === 1);
  const states = await watchStates(judy.page);

  offline = true;
  for (const { socket, upstream } of sockets.splice(0)) {
    socket.close({ code: 4500, reason: "test: dropped" });
    upstream.close();
  }
  await eventually("judy's page shows the drop", async () => states.includes("reconnecting"));
  for (const text of ["two", "three", "four"]) await say(kim.page, text);
  await eventually("kim has them all", async () => (await messages(kim.page)).length === 4);
  assert.equal((await messages(judy.page)).length, 1, "judy is really offline");
  offline = false;

  await judy.page.locator("#conn-state[data-state=open]").waitFor({ timeout: 30_000 });
  await eventually("judy has them all", async () => (await messages(judy.page)).length >= 4, WAIT);
  await say(kim.page, "five");
  await eventually("and the next live one", async () => (await messages(judy.page)).length >= 5, WAIT);
  const shown = await messages(judy.page);
  assert.deepEqual(shown.map((m) => m.text), ["one", "two", "three", "four", "five"]);
  assert.deepEqual(shown.map((m) => m.id), (await messages(kim.page)).map((m) => m.id), "the same messages");
  await done([judy], REFUSED);
  await done([kim]);
});

test("after a server restart the page reconnects by itself and shows every message once", async () => {
  const { server } = env;
  const [judy, kim] = await inRoom(env, ["judy", "kim"], "e2e-restart");
  for (const n of [1, 2, 3]) await say(kim.page, `before ${n}`);
  await eventually("judy has the first three", async () => (await messages(judy.page)).length === 3);
  const states = await watchStates(judy.page);

  await server.restart();
  await eventually("judy saw the drop", async () => states.includes("reconnecting"), 15_000);
  await judy.page.locator("#conn-state[data-state=open]").waitFor({ timeout: 30_000 });
  await kim.page.locator("#conn-state[data-state=open]").waitFor({ timeout: 30_000 });
  for (const n of [4, 5]) await say(kim.page, `after ${n}`);
  await eventually("judy has all five", async () => (await messages(judy.page)).length >= 5, 15_000);

  const shown = await messages(judy.page);
  assert.deepEqual(shown.map((m) => m.text), ["before 1", "before 2", "before 3", "after 4", "after 5"]);
  // A reload loads the same conversation from the stored history.
  await judy.page.reload();
  await judy.page.locator("#conn-state[data-state=open]").waitFor({ timeout: WAIT });
  await join(judy.page, "e2e-restart");
  await eventually("history after a reload", async () => (await messages(judy.page)).length === 5);
  assert.deepEqual((await messages(judy.page)).map((m) => m.id), shown.map((m) => m.id));

  await done([judy, kim], REFUSED);
});
