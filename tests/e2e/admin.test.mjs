// The admin view: live charts from stats_update and the connection list with a working
// disconnect button, for admins only.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, done, eventually, screenshot, setup, signIn } from "./harness.mjs";

const env = setup(before, after);

/** The last value of `key` in the legend of chart `name` (connections, rooms, messages). */
async function last(page, name, key) {
  const value = page.locator(`#legend-${name} .series[data-key="${key}"] .value`);
  if ((await value.count()) === 0) return NaN;
  return Number.parseFloat(await value.textContent());
}

test("an admin sees live charts and can disconnect a user; a user sees no admin view", async () => {
  const { browser, server } = env;
  const alice = await signIn(browser, server, "alice", { role: "admin" });
  const bob = await signIn(browser, server, "bob");
  assert.equal(await bob.page.locator("#tab-admin").count(), 0, "no admin tab for bob");
  assert.equal(await bob.page.locator("#view-admin:visible").count(), 0);

  await alice.page.click("#tab-admin");
  for (const chart of ["#chart-connections", "#chart-rooms", "#chart-messages"]) {
    assert.ok(await alice.page.locator(chart).isVisible(), chart);
  }
  await eventually("the connections chart counts both", async () =>
    (await last(alice.page, "connections", "connections")) === 2);
  await eventually("the messages chart shows traffic", async () =>
    (await last(alice.page, "messages", "messagesOutPerSec")) > 0);
  // Both pages are in lobby and game-1 to game-3.
  await eventually("the rooms chart counts the rooms", async () =>
    (await last(alice.page, "rooms", "rooms")) === 4);

  const stats = await server.api("GET", "/api/connections?active=true");
  const bobs = stats.items.find((c) => c.user.userId === "bob");
  const row = alice.page.locator(`#connections .connection[data-client="${bobs.clientId}"]`);
  await row.waitFor({ timeout: WAIT });
  assert.match(await row.textContent(), /bob/);
  await screenshot(alice.page, "admin", { settleMs: 10_000 });

  await row.locator(".disconnect").click();
  // 4000 (disconnected by the server API) is final: bob's page stops and says so.
  await bob.page.locator("#conn-state[data-state=closed]").waitFor({ timeout: WAIT });
  await eventually("bob's row is gone", async () => (await row.count()) === 0);

  await done([alice, bob]);
});
