// Notifications: one sent by a backend through the HTTP API reaches every tab of the
// user; marking it read in one tab updates the others at once; a global notification
// shows as a banner.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { WAIT, done, eventually, screenshot, setup, signIn, troubles } from "./harness.mjs";

const env = setup(before, after);

const unread = (page) => page.locator("#unread-count").textContent().then((t) => Number(t.trim() || 0));

test("a notification reaches every tab, and reading it in one tab updates the other", async () => {
  const { browser, server } = env;
  const first = await signIn(browser, server, "erin");
  const second = await signIn(browser, server, "erin", { context: first.context });
  const sent = await server.api("POST", "/api/notify", {
    userId: "erin", title: "Invoice paid", content: "Invoice #1042 was paid.", priority: "high",
  });
  for (const tab of [first, second]) {
    await eventually("the bell counts it", async () => (await unread(tab.page)) === 1);
  }
  await first.page.click("#bell");
  const item = first.page.locator(`#notifications .notification[data-id="${sent.id}"]`);
  await item.waitFor({ timeout: WAIT });
  // Live and loaded at sign-in: shown once all the same.
  assert.equal(await first.page.locator("#notifications .notification").count(), 1);
  assert.equal((await item.locator(".title").textContent()).trim(), "Invoice paid");
  assert.equal((await item.locator(".content").textContent()).trim(), "Invoice #1042 was paid.");
  assert.match(await item.getAttribute("class"), /\bunread\b/);
  await screenshot(first.page, "notifications");

  await item.locator(".mark-read").click();
  for (const tab of [first, second]) {
    await eventually("read everywhere", async () => (await unread(tab.page)) === 0);
  }
  await second.page.click("#bell");
  const other = second.page.locator(`#notifications .notification[data-id="${sent.id}"]`);
  await other.waitFor({ timeout: WAIT });
  assert.doesNotMatch(await other.getAttribute("class"), /\bunread\b/);

  // A tab opened later lists it too, read.
  const third = await signIn(browser, server, "erin", { context: first.context });
  await third.page.click("#bell");
  await third.page.locator(`#notifications .notification[data-id="${sent.id}"]`).waitFor({ timeout: WAIT });
  assert.equal(await unread(third.page), 0);

  for (const tab of [first, second, third]) assert.deepEqual(await troubles(tab), []);
  await first.context.close();
});

test("a notification sent while the user was away is waiting when they come back", async () => {
  const { browser, server } = env;
  await server.api("POST", "/api/notify", { userId: "frank", title: "While you were out", content: "x" });
  const frank = await signIn(browser, server, "frank");
  await eventually("the bell counts it", async () => (await unread(frank.page)) === 1);
  await frank.page.click("#bell");
  await frank.page.locator("#notifications .notification").first().waitFor({ timeout: WAIT });
  assert.equal(await frank.page.locator("#notifications .notification").count(), 1);
  await done([frank]);
});

test("a global notification shows as a banner that can be dismissed", async () => {
  const { browser, server } = env;
  const grace = await signIn(browser, server, "grace");
  await server.api("POST", "/api/notify_all", { title: "Maintenance", content: "Back at noon" });
  const banner = grace.page.locator("#banners .banner", { hasText: "Maintenance" });
  await banner.waitFor({ timeout: WAIT });
  assert.match(await banner.textContent(), /Back at noon/);
  await screenshot(grace.page, "banner");
  await banner.locator(".close").click();
  await eventually("dismissed", async () => (await banner.count()) === 0);
  await done([grace]);
});
